/*
 * Fair queuing by tenant, the proxy side (proxy/tenant.h). A lane with a tenant_key keeps a table of
 * tenants (proxy/fairq.c): a client waiting for a server connection is counted as its tenant's waiter,
 * a server attached to a client is charged to the client's tenant until it leaves SV_ACTIVE (the time
 * it was held is the tenant's service), and the next connection of a pool goes to the first waiter of
 * the tenant with the least weighted service that is under tenant_max. Counts are per lane: a tenant's
 * connections in every (database, user) pool of the lane count against its tenant_max.
 *
 * With several workers each worker keeps its own table (its queue orders its own clients), but the
 * connections a tenant holds are counted for the process (`shared` below, an atomic count per lane
 * and tenant): tenant_max holds across workers. A connection is charged only if the count is still
 * under tenant_max (compare-and-swap); a release from tenant_max wakes every worker: another's queue
 * may hold that tenant's next transaction, and the connection it needs may be idle in any worker.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/fairq.h"
#include "routing/route.h"
#include "proxy/tenant.h"

static uint64_t now_us(struct proxy *px)
{
    return px_now_ms(px) * 1000 + 1;
}

#define SHARED_TENANTS 10000          /* beyond this many (lane, tenant) pairs a worker counts alone */

/* Several workers: one count per (lane name, tenant id) ever seen; the list under lock, each count
 * atomic; entries are freed at the process's end (px_tenant_shared_free). */
struct shared_tenant {
    struct shared_tenant *next;
    char lane[64], id[FQ_ID_MAX];
    _Atomic int active;
};

static struct {
    pthread_mutex_t lock;
    struct shared_tenant *head;
    int n;
} shared = { PTHREAD_MUTEX_INITIALIZER, NULL, 0 };

static _Atomic int *shared_count(const char *lane, const char *id)
{
    struct shared_tenant *x;

    pthread_mutex_lock(&shared.lock);
    for (x = shared.head; x; x = x->next)
        if (strcmp(x->lane, lane) == 0 && strcmp(x->id, id) == 0)
            break;
    if (!x && shared.n < SHARED_TENANTS && (x = calloc(1, sizeof(*x)))) {
        snprintf(x->lane, sizeof(x->lane), "%s", lane);
        snprintf(x->id, sizeof(x->id), "%s", id);
        atomic_init(&x->active, 0);
        x->next = shared.head;
        shared.head = x;
        shared.n++;
    }
    pthread_mutex_unlock(&shared.lock);
    return x ? &x->active : NULL;
}

void px_tenant_shared_free(void)
{
    pthread_mutex_lock(&shared.lock);
    while (shared.head) {
        struct shared_tenant *x = shared.head;

        shared.head = x->next;
        free(x);
    }
    shared.n = 0;
    pthread_mutex_unlock(&shared.lock);
}

int px_tenant_on(const struct px_pool *pool)
{
    return pool->lane->conf->tenant_key != CONF_TENANT_NONE;
}

static struct fq *lane_fq(struct px_lane *lane)
{
    if (!lane->fq && (lane->fq = malloc(sizeof(*lane->fq))))
        fq_init(lane->fq, 0);
    return lane->fq;
}

static uint32_t weight_of(const struct conf_lane *lc, const char *id, size_t len)
{
    for (int i = 0; i < lc->ntenant_weights; i++)
        if (strlen(lc->tenant_weights[i].id) == len && memcmp(lc->tenant_weights[i].id, id, len) == 0)
            return (uint32_t)lc->tenant_weights[i].weight;
    return 1;
}

/* Stands in for a tenant when the table cannot grow (out of memory): shared, never in a table. */
static _Thread_local struct fq_tenant spare = { .weight = 1 };   /* per worker */

/* The tenant of cl's pending transaction in pool's lane. */
static struct fq_tenant *tenant_of(struct px_pool *pool, struct px_client *cl)
{
    struct proxy *px = cl->conn.px;
    const struct conf_lane *lc = pool->lane->conf;
    struct fq *q = lane_fq(pool->lane);
    const char *id = "";
    struct fq_tenant *t;

    switch (lc->tenant_key) {
    case CONF_TENANT_USER:
        id = pool->user;
        break;
    case CONF_TENANT_DATABASE:
        id = pool->database;
        break;
    case CONF_TENANT_APP:
        id = cl->want.v[PX_P_APPLICATION_NAME] ? cl->want.v[PX_P_APPLICATION_NAME] : "";
        break;
    case CONF_TENANT_HINT:
        id = cl->tenant_hint ? cl->tenant_hint : "";
        break;
    case CONF_TENANT_NONE:
        break;
    }
    t = q ? fq_get(q, id, strlen(id), weight_of(lc, id, strlen(id)), now_us(px)) : NULL;
    if (t && px->workers && !t->gactive)
        t->gactive = shared_count(lc->name, t->id);   /* t->id: as fairq cut it, "(other)" included */
    return t ? t : &spare;
}

void px_tenant_wait(struct px_pool *pool, struct px_client *cl)
{
    if (!px_tenant_on(pool))
        return;
    cl->tenant = tenant_of(pool, cl);
    if (pool->lane->fq && cl->tenant != &spare)
        fq_wait(pool->lane->fq, cl->tenant, now_us(cl->conn.px));
}

void px_tenant_unwait(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;

    if (!cl->tenant)
        return;
    fq_unwait(cl->tenant, (px_now_ms(px) - cl->wait_start_ms) * 1000, now_us(px));
    cl->tenant = NULL;
}

void px_tenant_release(struct px_server *sv)
{
    struct fq_tenant *t = sv->tenant;

    if (!t)
        return;
    fq_stop(t, sv->tenant_since_us, now_us(sv->conn.px));
    sv->tenant = NULL;
    /* At tenant_max until now: another worker's queue may hold this tenant's next transaction. */
    if (t->gactive && atomic_fetch_sub_explicit(t->gactive, 1, memory_order_acq_rel) ==
                          sv->pool->lane->conf->tenant_max)
        px_workers_tenant_room(sv->conn.px);
}

/* One more connection for t in the whole process, if under max (0: no cap). */
static int take(struct fq_tenant *t, int max)
{
    int n = atomic_load_explicit(t->gactive, memory_order_acquire);

    while (max <= 0 || n < max)
        if (atomic_compare_exchange_weak_explicit(t->gactive, &n, n + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return 1;
    return 0;
}

int px_tenant_charge(struct px_server *sv, struct px_client *cl)
{
    struct px_pool *pool = sv->pool;
    struct fq_tenant *t = cl->tenant;

    px_tenant_release(sv);
    if (!t && px_tenant_on(pool))
        t = tenant_of(pool, cl);
    if (!t || !pool->lane->fq)
        return 0;
    if (t->gactive && !take(t, pool->lane->conf->tenant_max))
        return -1;                 /* another worker took the last one meanwhile */
    sv->tenant = t;
    sv->tenant_since_us = now_us(sv->conn.px);
    fq_start(pool->lane->fq, t, sv->tenant_since_us);
    return 0;
}

int px_tenant_may_take(struct px_pool *pool, struct px_client *cl)
{
    if (!px_tenant_on(pool))
        return 1;
    return fq_has_room(tenant_of(pool, cl), pool->lane->conf->tenant_max);
}

/* The waiting list as fairq walks it; a client queued before its lane had a tenant_key (a reload) is
 * given its tenant when first seen. */
static void *walk_next(void *ctx, void *item)
{
    struct px_pool *pool = ctx;
    struct px_list *it = item ? ((struct px_client *)item)->wait_link.next : pool->waiting.next;

    return it == &pool->waiting ? NULL : px_container_of(it, struct px_client, wait_link);
}

static struct fq_tenant *walk_tenant(void *item)
{
    struct px_client *cl = item;

    if (!cl->tenant)
        px_tenant_wait(cl->pool, cl);
    return cl->tenant ? cl->tenant : &spare;
}

struct px_client *px_tenant_pick(struct px_pool *pool)
{
    struct fq_walk w = { walk_next, walk_tenant, pool };

    if (px_list_empty(&pool->waiting))
        return NULL;
    if (!px_tenant_on(pool) || !lane_fq(pool->lane))
        return px_container_of(pool->waiting.next, struct px_client, wait_link);
    return fq_pick(pool->lane->fq, &w, pool->lane->conf->tenant_max,
                   now_us(uv_loop_get_data(pool->queue_timer.loop)));
}

int px_tenant_servable(struct px_pool *pool)
{
    struct fq_walk w = { walk_next, walk_tenant, pool };

    if (!px_tenant_on(pool) || pool->lane->conf->tenant_max <= 0 || !lane_fq(pool->lane))
        return pool->nwaiting;
    return fq_servable(pool->lane->fq, &w, pool->lane->conf->tenant_max);
}

void px_tenant_sweep(struct proxy *px)
{
    uint64_t now = now_us(px);

    for (int i = 0; i < px->nall_lanes; i++)
        if (px->all_lanes[i]->fq)
            fq_sweep(px->all_lanes[i]->fq, now);
}

void px_tenant_lane_free(struct px_lane *lane)
{
    if (!lane->fq)
        return;
    fq_free(lane->fq);
    free(lane->fq);
    lane->fq = NULL;
}

void px_tenant_note_hint(struct px_client *cl, const char *sql, size_t len)
{
    struct proxy *px = cl->conn.px;
    const char *id;
    size_t n;
    int wanted = 0;

    if (!cl->held_begin && cl->tenant_hint)
        cl->tenant_hint[0] = '\0';     /* a new transaction: no hint until one is read */
    for (int i = 0; i < px->nlanes && !wanted; i++)
        wanted = px->lanes[i]->conf->tenant_key == CONF_TENANT_HINT;
    if (!wanted || !route_tenant_hint(sql, len, &id, &n))
        return;
    /* Most clients never send a hint: the memory comes with the first one and is kept. Without it
     * the transaction belongs to the anonymous tenant, as one without a hint does. */
    if (!cl->tenant_hint && !(cl->tenant_hint = malloc(PX_TENANT_HINT_MAX)))
        return;
    if (n >= PX_TENANT_HINT_MAX)
        n = PX_TENANT_HINT_MAX - 1;
    memcpy(cl->tenant_hint, id, n);
    cl->tenant_hint[n] = '\0';
}
