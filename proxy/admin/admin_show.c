/* Admin console: SHOW LANES, SHOW CLIENTS, SHOW SERVERS and SHOW STATS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/console.h"

const char *px_client_state_name(enum px_client_state s)
{
    switch (s) {
    case CL_STARTUP: return "startup";
    case CL_AUTH_PASSWORD:
    case CL_AUTH_SASL_INIT:
    case CL_AUTH_SASL_FINAL: return "auth";
    case CL_LOGIN_WAIT: return "login_wait";
    case CL_IDLE: return "idle";
    case CL_WAITING: return "waiting";
    case CL_ACTIVE: return "active";
    case CL_ADMIN: return "admin";
    case CL_CLOSED: return "closed";
    }
    return "?";
}

const char *px_server_state_name(enum px_server_state s)
{
    switch (s) {
    case SV_CONNECTING: return "connecting";
    case SV_TLS: return "tls";
    case SV_LOGIN: return "login";
    case SV_IDLE: return "idle";
    case SV_ACTIVE: return "active";
    case SV_RESETTING: return "resetting";
    case SV_CANCEL_WAIT: return "cancel_wait";
    case SV_CHECKING: return "checking";
    case SV_CLOSED: return "closed";
    }
    return "?";
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

struct lane_now {                  /* what the pools of one lane hold right now */
    int cl_active, cl_waiting, sv_active, sv_idle, sv_used, sv_cancel_wait;
    uint64_t longest_wait_ms;
};

static void lane_now(struct proxy *px, const struct px_lane *l, struct lane_now *n)
{
    uint64_t now = px_now_ms(px);

    memset(n, 0, sizeof(*n));
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (pool->lane != l)
            continue;
        n->cl_waiting += pool->nwaiting;
        n->sv_idle += pool->nidle;
        n->sv_used += pool->nidle + pool->nbusy;
        for (struct px_list *s = pool->busy.next; s != &pool->busy; s = s->next) {
            struct px_server *sv = px_container_of(s, struct px_server, link);

            n->sv_active += sv->state == SV_ACTIVE;
            n->cl_active += sv->state == SV_ACTIVE && sv->client;
            n->sv_cancel_wait += sv->state == SV_CANCEL_WAIT;
        }
        if (!px_list_empty(&pool->waiting)) {
            struct px_client *head = px_container_of(pool->waiting.next, struct px_client, wait_link);

            if (now - head->wait_start_ms > n->longest_wait_ms)
                n->longest_wait_ms = now - head->wait_start_ms;
        }
    }
}

/* Lanes in force, then retired lanes that still hold pools. */
static int lane_shown(struct proxy *px, const struct px_lane *l)
{
    if (!l->retired)
        return 1;
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next)
        if (px_container_of(it, struct px_pool, link)->lane == l)
            return 1;
    return 0;
}

/*
 * One lane as one worker sees it, for SHOW LANES and SHOW STATS: each worker writes a record for each
 * lane it shows (the lane's name follows the record), the console's worker merges the records by lane
 * (sums, the longest wait, merged histograms; state, size and effective size are its own). With one
 * worker the same path runs on that worker's records alone.
 */
struct lane_rec {
    uint32_t name_len;
    uint8_t retired, paused;
    int size, eff;
    struct lane_now n;
    struct px_lane_stats st;
};

struct lane_merged {
    const char *name;              /* into the records' buffer */
    struct lane_rec r;
};

static void lane_recs(struct proxy *px, struct proto_buf *out)
{
    struct lane_rec *r = malloc(sizeof(*r));

    if (!r) {
        out->failed = 1;
        return;
    }
    for (int i = 0; i < px->nall_lanes; i++) {
        const struct px_lane *l = px->all_lanes[i];

        if (!lane_shown(px, l))
            continue;
        memset(r, 0, sizeof(*r));
        r->name_len = (uint32_t)strlen(l->conf->name);
        r->retired = l->retired != 0;
        r->paused = l->paused != 0;
        r->size = l->size;
        r->eff = px_lane_cap(l);
        lane_now(px, l, &r->n);
        r->st = l->stats;
        proto_put_bytes(out, r, sizeof(*r));
        proto_put_bytes(out, l->conf->name, r->name_len);
    }
    free(r);
}

/* The records merged by lane (name and retired), in the order first seen: *n of them (malloc'd), NULL
 * with *n = 0 when there are none or memory ran out. */
static struct lane_merged *lanes_merge(const uint8_t *p, size_t len, int *n)
{
    struct lane_merged *m = NULL;
    struct lane_rec *r = malloc(sizeof(*r));
    int cnt = 0, cap = 0;

    *n = 0;
    while (r && len >= sizeof(*r)) {
        int j;

        memcpy(r, p, sizeof(*r));
        if (len - sizeof(*r) < r->name_len)
            break;
        for (j = 0; j < cnt; j++)
            if (m[j].r.retired == r->retired && m[j].r.name_len == r->name_len &&
                memcmp(m[j].name, p + sizeof(*r), r->name_len) == 0)
                break;
        if (j < cnt) {
            struct lane_now *a = &m[j].r.n;

            a->cl_active += r->n.cl_active;
            a->cl_waiting += r->n.cl_waiting;
            a->sv_active += r->n.sv_active;
            a->sv_idle += r->n.sv_idle;
            a->sv_used += r->n.sv_used;
            a->sv_cancel_wait += r->n.sv_cancel_wait;
            if (r->n.longest_wait_ms > a->longest_wait_ms)
                a->longest_wait_ms = r->n.longest_wait_ms;
            px_lane_stats_merge(&m[j].r.st, &r->st);
        } else {
            if (cnt == cap && px_grow((void **)&m, &cap, 8, sizeof(*m)) < 0)
                break;
            m[cnt].name = (const char *)p + sizeof(*r);
            m[cnt].r = *r;
            cnt++;
        }
        p += sizeof(*r) + r->name_len;
        len -= sizeof(*r) + r->name_len;
    }
    free(r);
    *n = cnt;
    return m;
}

static void lanes_table(struct px_client *cl, const struct lane_merged *m, int n)
{
    static const char *const cols[] = {
        "lane", "state", "size", "clients_active", "clients_waiting", "servers_active", "servers_idle",
        "servers_used", "queue_length", "longest_wait_ms", "transactions", "queries", "tx_p50_ms",
        "tx_p95_ms", "tx_p99_ms", "servers_cancel_wait", "effective_size", NULL
    };
    struct px_table t;

    px_table_begin(&t, cols);
    for (int i = 0; i < n; i++) {
        const struct lane_rec *r = &m[i].r;

        px_table_cell(&t, "%.*s", (int)r->name_len, m[i].name);
        px_table_cell(&t, "%s", r->retired ? "retired" : r->paused ? "paused" : "running");
        px_table_cell(&t, "%d", r->size);
        px_table_cell(&t, "%d", r->n.cl_active);
        px_table_cell(&t, "%d", r->n.cl_waiting);
        px_table_cell(&t, "%d", r->n.sv_active);
        px_table_cell(&t, "%d", r->n.sv_idle);
        px_table_cell(&t, "%d", r->n.sv_used);
        px_table_cell(&t, "%d", r->n.cl_waiting);
        px_table_cell(&t, "%llu", (unsigned long long)r->n.longest_wait_ms);
        px_table_cell(&t, "%llu", (unsigned long long)r->st.tx.count);
        px_table_cell(&t, "%llu", (unsigned long long)r->st.query.count);
        px_table_cell(&t, "%.3f", ms(px_hist_percentile(&r->st.tx, 50)));
        px_table_cell(&t, "%.3f", ms(px_hist_percentile(&r->st.tx, 95)));
        px_table_cell(&t, "%.3f", ms(px_hist_percentile(&r->st.tx, 99)));
        px_table_cell(&t, "%d", r->n.sv_cancel_wait);
        px_table_cell(&t, "%d", r->eff);
    }
    px_table_send(&t, cl, "SHOW");
}

static void stats_table(struct px_client *cl, const struct lane_merged *m, int n);

void px_show_lanes(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_LANES);
}

/* SHOW LANE SERVERS: each server of each lane in force, with its role and state for the lane's reads
 * (proxy/replica.c) and what the lane's pools hold there. */
static const char *const lane_server_cols[] = {
    "lane", "server", "role", "state", "servers_active", "servers_idle", "clients_waiting", "reads", "writes",
    "conflicts", NULL
};

static void lane_server_rows(struct px_table *t, struct proxy *px)
{
    for (int i = 0; i < px->nlanes; i++) {
        const struct px_lane *l = px->lanes[i];

        for (int e = 0; e < l->neps; e++) {
            int active = 0, idle = 0, waiting = 0;

            for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
                struct px_pool *pool = px_container_of(it, struct px_pool, link);

                if (pool->lane != l || pool->ep != &l->eps[e])
                    continue;
                idle += pool->nidle;
                waiting += pool->nwaiting;
                for (struct px_list *s = pool->busy.next; s != &pool->busy; s = s->next)
                    active += px_container_of(s, struct px_server, link)->state == SV_ACTIVE;
            }
            px_table_cell(t, "%s", l->conf->name);
            px_table_cell(t, "%s", l->eps[e].server->name);
            px_table_cell(t, "%s", px_ep_role_name(px, &l->eps[e]));
            px_table_cell(t, "%s", px_ep_state_name(px_ep_state(px, l, &l->eps[e])));
            px_table_cell(t, "%d", active);
            px_table_cell(t, "%d", idle);
            px_table_cell(t, "%d", waiting);
            px_table_cell(t, "%llu", (unsigned long long)l->eps[e].reads);
            px_table_cell(t, "%llu", (unsigned long long)l->eps[e].writes);
            px_table_cell(t, "%llu", (unsigned long long)l->eps[e].conflicts);
        }
    }
}

void px_show_lane_servers(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_LANE_SERVERS);
}

static void client_row(struct px_table *t, struct proxy *px, const struct px_client *c)
{
    const char *app = c->want.v[PX_P_APPLICATION_NAME];
    uint64_t now = px_now_ms(px);

    px_table_cell(t, "%llu", (unsigned long long)c->conn.id);
    px_table_cell(t, "%s", PX_CLIENT_ADDR(c));
    px_table_cell(t, "%s", c->user ? c->user : "");
    px_table_cell(t, "%s", c->database ? c->database : "");
    px_table_cell(t, "%s", app ? app : "");
    px_table_cell(t, "%s", px_client_state_name(c->state));
    if (c->pool)
        px_table_cell(t, "%s", c->pool->lane->conf->name);
    else
        px_table_null(t);
    px_table_cell(t, "%llu", (unsigned long long)(c->state == CL_WAITING || c->state == CL_LOGIN_WAIT
                                                      ? now - c->wait_start_ms : 0));
    if (c->server)
        px_table_cell(t, "%llu", (unsigned long long)c->server->conn.id);
    else
        px_table_null(t);
    px_table_cell(t, "%llu", (unsigned long long)(now - c->connect_ms) / 1000u);
    if (c->pins) {
        char why[96];

        px_pin_names(c->pins, why, sizeof(why));
        px_table_cell(t, "%s", why);
    } else {
        px_table_null(t);
    }
    px_table_cell(t, "%d", px->worker_id);
}

static const char *const client_cols[] = {
    "id", "addr", "user", "database", "application_name", "state", "lane", "wait_ms", "server_id",
    "connected_s", "pinned", "worker", NULL
};

static void client_rows(struct px_table *t, struct proxy *px)
{
    for (struct px_list *it = px->clients.next; it != &px->clients; it = it->next)
        client_row(t, px, px_container_of(it, struct px_client, link));
}

void px_show_clients(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_CLIENTS);
}

static void server_row(struct px_table *t, struct proxy *px, const struct px_server *sv)
{
    const struct px_client *c = sv->client;
    uint64_t now = px_now_us();

    px_table_cell(t, "%llu", (unsigned long long)sv->conn.id);
    px_table_cell(t, "%u", sv->backend_pid);
    px_table_cell(t, "%s", sv->pool->lane->conf->name);
    px_table_cell(t, "%s", sv->pool->database);
    px_table_cell(t, "%s", sv->pool->user);
    px_table_cell(t, "%s", px_server_state_name(sv->state));
    px_table_cell(t, "%c", sv->tx_status ? sv->tx_status : '-');
    if (c) {
        px_table_cell(t, "%llu", (unsigned long long)c->conn.id);
        if (c->fingerprint)
            px_table_cell(t, "%016llx", (unsigned long long)c->fingerprint);
        else
            px_table_null(t);
        px_table_cell(t, "%.3f", c->query_start_us && now > c->query_start_us ? ms(now - c->query_start_us) : 0.0);
    } else {
        px_table_null(t);
        px_table_null(t);
        px_table_null(t);
    }
    px_table_cell(t, "%llu", (unsigned long long)(px_now_ms(px) - sv->created_ms) / 1000u);
    px_table_cell(t, "%d", sv->ncancels);
    px_health_server_cells(t, px, sv->pool->ep->server->name);
}

static const char *const server_cols[] = {
    "id", "backend_pid", "lane", "database", "user", "state", "tx_status", "client_id", "fingerprint",
    "query_ms", "connected_s", "cancels", "server", "role", "server_state", "lag_ms", "lag_bytes", NULL
};

static void server_rows(struct px_table *t, struct proxy *px)
{
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        for (struct px_list *s = pool->busy.next; s != &pool->busy; s = s->next)
            server_row(t, px, px_container_of(s, struct px_server, link));
        for (struct px_list *s = pool->idle.next; s != &pool->idle; s = s->next)
            server_row(t, px, px_container_of(s, struct px_server, link));
    }
}

void px_show_servers(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_SERVERS);
}

/*
 * The SHOW commands whose rows every worker renders from its own state (proxy/workers.c gathers them
 * when there are several): `ops` NULL lists each worker's rows as they are (one row per client or
 * server connection); otherwise rows with the same key columns are merged (px_table_merge_rows).
 * Tables whose cells do not merge as text (histograms, shares of a total, distinct names) have each
 * worker send records instead (`recs`), which the asker merges and answers (`send`).
 */
static void lanes_send(struct px_client *cl, const uint8_t *recs, size_t len);
static void stats_send(struct px_client *cl, const uint8_t *recs, size_t len);

static const struct list_spec {
    const char *const *cols;
    const char *types;             /* px_table_begin_typed; NULL: text */
    const char *ops;
    void (*rows)(struct px_table *t, struct proxy *px);
    void (*fix)(char **v);         /* cells derived from others, again after a merge */
    int limit;                     /* rows shown after a merge (0: all) */
    void (*recs)(struct proxy *px, struct proto_buf *out);
    void (*send)(struct px_client *cl, const uint8_t *recs, size_t len);
} list_specs[] = {
    [PX_GATHER_CLIENTS] = { client_cols, NULL, NULL, client_rows },
    [PX_GATHER_SERVERS] = { server_cols, NULL, NULL, server_rows },
    [PX_GATHER_LANES] = { .recs = lane_recs, .send = lanes_send },
    [PX_GATHER_STATS] = { .recs = lane_recs, .send = stats_send },
    [PX_GATHER_LANE_SERVERS] = { lane_server_cols, NULL, "kkffssssss", lane_server_rows },
    [PX_GATHER_POOLS] = { px_pgb_pool_cols, PX_PGB_POOL_TYPES, PX_PGB_POOL_MERGE, px_pgb_pool_rows },
    [PX_GATHER_PGB_STATS] = { px_pgb_stats_cols, PX_PGB_STATS_TYPES, PX_PGB_STATS_MERGE, px_pgb_stats_rows,
                              px_pgb_stats_fix },
    [PX_GATHER_PGB_DATABASES] = { px_pgb_database_cols, PX_PGB_DATABASE_TYPES, PX_PGB_DATABASE_MERGE,
                                  px_pgb_database_rows },
    /* each worker's guard counts its own actions; quarantines are per worker (the first shown) */
    [PX_GATHER_GUARD] = { px_guard_cols, NULL, "kkkksfffffffff", px_guard_rows },
    [PX_GATHER_QUARANTINE] = { px_quarantine_cols, NULL, "kffmsffmffff", px_quarantine_rows },
    [PX_GATHER_PREPARED] = { px_prepared_cols, NULL, "ssssss", px_prepared_rows },
    /* each worker's top statements: calls and times summed, p95 the largest of the workers' */
    [PX_GATHER_QUERIES] = { px_query_cols, NULL, "kffsSfmm", px_query_rows, px_query_fix, PX_TOP_QUERIES },
    [PX_GATHER_TENANTS] = { px_tenant_cols, PX_TENANT_TYPES, PX_TENANT_MERGE, px_tenant_rows },
    [PX_GATHER_STAGES] = { .recs = px_stage_recs, .send = px_stage_send },
    [PX_GATHER_LISTS] = { .recs = px_pgb_list_recs, .send = px_pgb_list_send },
    [PX_GATHER_USERS] = { px_pgb_user_cols, PX_PGB_USER_TYPES, PX_PGB_USER_MERGE, px_pgb_user_rows },
    [PX_GATHER_BLOCKING] = { px_blocking_cols, NULL, PX_BLOCKING_MERGE, px_blocking_rows },
};

static const struct list_spec *spec_of(int which)
{
    if (which < 0 || (size_t)which >= sizeof(list_specs) / sizeof(list_specs[0]) ||
        (!list_specs[which].cols && !list_specs[which].recs))
        return NULL;
    return &list_specs[which];
}

void px_show_list(struct px_client *cl, int which)
{
    struct proto_buf b;

    if (px_workers_gather(cl, which))
        return;                    /* several workers: answered once all rows are in */
    proto_buf_init(&b);
    px_show_list_rows(cl->conn.px, which, &b);
    px_show_list_send(cl, which, b.data, b.len);
    proto_buf_free(&b);
}

void px_show_list_rows(struct proxy *px, int which, struct proto_buf *out)
{
    const struct list_spec *sp = spec_of(which);
    struct px_table t;
    size_t head;

    if (!sp)
        return;
    if (sp->recs) {
        sp->recs(px, out);
        return;
    }
    px_table_begin_typed(&t, sp->cols, sp->types);
    head = t.b.len;                /* the RowDescription: the asker sends its own */
    sp->rows(&t, px);
    if (t.b.failed)
        out->failed = 1;
    else
        proto_put_bytes(out, t.b.data + head, t.b.len - head);
    proto_buf_free(&t.b);
}

void px_show_list_send(struct px_client *cl, int which, const uint8_t *rows, size_t len)
{
    const struct list_spec *sp = spec_of(which);
    struct px_table t;

    if (!sp) {
        px_admin_error(cl, "XX000", "pglane: internal error: unknown list table", NULL);
        return;
    }
    if (sp->send) {
        sp->send(cl, rows, len);
        return;
    }
    px_table_begin_typed(&t, sp->cols, sp->types);
    if (sp->ops)
        px_table_merge_rows(&t, rows, len, sp->ops, sp->fix, sp->limit);
    else
        proto_put_bytes(&t.b, rows, len);
    px_table_send(&t, cl, "SHOW");
}

static void lanes_send(struct px_client *cl, const uint8_t *recs, size_t len)
{
    int n;
    struct lane_merged *m = lanes_merge(recs, len, &n);

    lanes_table(cl, m, n);
    free(m);
}

static void stats_send(struct px_client *cl, const uint8_t *recs, size_t len)
{
    int n;
    struct lane_merged *m = lanes_merge(recs, len, &n);

    stats_table(cl, m, n);
    free(m);
}

static uint64_t errors_total(const struct px_lane_stats *st)
{
    uint64_t n = 0;

    for (int i = 0; i < PX_SQLSTATE_CLASSES; i++)
        n += st->errors[i];
    return n;
}

static double mean_ms(const struct px_hist *h)
{
    return h->count ? ms(h->sum_us / h->count) : 0.0;
}

static void stats_table(struct px_client *cl, const struct lane_merged *m, int n)
{
    static const char *const cols[] = {
        "lane", "transactions", "queries", "tx_avg_ms", "query_avg_ms", "query_p95_ms", "query_max_ms",
        "waits", "wait_avg_ms", "wait_max_ms", "errors", "slow_queries", "guard_against", "guard_for",
        "retries", NULL
    };
    struct px_table t;

    px_table_begin(&t, cols);
    for (int i = 0; i < n; i++) {
        const struct px_lane_stats *st = &m[i].r.st;

        px_table_cell(&t, "%.*s", (int)m[i].r.name_len, m[i].name);
        px_table_cell(&t, "%llu", (unsigned long long)st->tx.count);
        px_table_cell(&t, "%llu", (unsigned long long)st->query.count);
        px_table_cell(&t, "%.3f", mean_ms(&st->tx));
        px_table_cell(&t, "%.3f", mean_ms(&st->query));
        px_table_cell(&t, "%.3f", ms(px_hist_percentile(&st->query, 95)));
        px_table_cell(&t, "%.3f", ms(st->query.max_us));
        px_table_cell(&t, "%llu", (unsigned long long)st->wait.count);
        px_table_cell(&t, "%.3f", mean_ms(&st->wait));
        px_table_cell(&t, "%.3f", ms(st->wait.max_us));
        px_table_cell(&t, "%llu", (unsigned long long)errors_total(st));
        px_table_cell(&t, "%llu", (unsigned long long)st->slow);
        px_table_cell(&t, "%llu", (unsigned long long)(st->guard[0] + st->guard[1] + st->guard[2]));
        px_table_cell(&t, "%llu", (unsigned long long)(st->guarded[0] + st->guarded[1] + st->guarded[2]));
        px_table_cell(&t, "%llu", (unsigned long long)st->retries);
    }
    px_table_send(&t, cl, "SHOW");
}

void px_show_stats(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_STATS);
}
