/* Admin console: SHOW TENANTS, the tenants of fair queuing (proxy/tenant.c, proxy/fairq.c). */
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/console.h"
#include "proxy/fairq.h"

static int by_id(const void *a, const void *b)
{
    return strcmp((*(struct fq_tenant *const *)a)->id, (*(struct fq_tenant *const *)b)->id);
}

/* The longest wait of t's transactions: finished waits, and those still queued in the lane's pools. */
static uint64_t longest_wait_ms(struct proxy *px, const struct px_lane *l, const struct fq_tenant *t)
{
    uint64_t now = px_now_ms(px), longest = t->longest_wait_us / 1000;

    if (!t->waiting)
        return longest;
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (pool->lane != l)
            continue;
        for (struct px_list *w = pool->waiting.next; w != &pool->waiting; w = w->next) {
            const struct px_client *cl = px_container_of(w, struct px_client, wait_link);

            if (cl->tenant == t && now - cl->wait_start_ms > longest)
                longest = now - cl->wait_start_ms;
        }
    }
    return longest;
}

const char *const px_tenant_cols[] = {
    "lane", "tenant", "active", "waiting", "transactions", "server_seconds", "longest_wait_ms", NULL
};

void px_tenant_rows(struct px_table *t, struct proxy *px)
{
    uint64_t now = px_now_ms(px) * 1000 + 1;

    for (int i = 0; i < px->nall_lanes; i++) {
        const struct px_lane *l = px->all_lanes[i];
        const struct fq *q = l->fq;
        struct fq_tenant **rows;
        int n = 0;

        if (!q || (q->n == 0 && !q->other) || !(rows = malloc(sizeof(*rows) * (size_t)(q->n + 1))))
            continue;
        for (int k = 0; k < q->n; k++)
            rows[n++] = q->t[k];
        qsort(rows, (size_t)n, sizeof(*rows), by_id);
        if (q->other)
            rows[n++] = q->other;
        for (int k = 0; k < n; k++) {
            const struct fq_tenant *x = rows[k];

            px_table_cell(t, "%s", l->conf->name);
            px_table_cell(t, "%s", x->id[0] ? x->id : "(anonymous)");
            px_table_cell(t, "%d", x->active);
            px_table_cell(t, "%d", x->waiting);
            px_table_cell(t, "%llu", (unsigned long long)x->served);
            px_table_cell(t, "%.3f", (double)fq_service_us(x, now) / 1e6);
            px_table_cell(t, "%llu", (unsigned long long)longest_wait_ms(px, l, x));
        }
        free(rows);
    }
}

/* Each worker's tenants: counts and service summed, the longest wait the longest of any worker's. */
void px_show_tenants(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_TENANTS);
}
