/*
 * The Prometheus text exposition format 0.0.4 of pglane's counters: each family is one HELP line, one
 * TYPE line and its samples; histograms have cumulative _bucket{le} series ending at +Inf, _sum and
 * _count. Only lanes in force are reported (a lane replaced by a reload starts again from zero).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/monitor.h"
#include "proxy/fairq.h"

/* Bucket bounds: powers of four microseconds from 128 us to about 2.4 h (exact, see stats.h). */
#define LE_FIRST_LOG2 7
#define LE_LAST_LOG2 33

static void out(struct proto_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out(struct proto_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    proto_put_bytes(b, small, (size_t)n < sizeof(small) ? (size_t)n : sizeof(small) - 1);
}

/* A label value with \, " and newline escaped. */
static void label(struct proto_buf *b, const char *name, const char *v, int last)
{
    out(b, "%s=\"", name);
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            proto_put_u8(b, '\\');
        if (*v == '\n') {
            proto_put_bytes(b, "\\n", 2);
            continue;
        }
        proto_put_u8(b, (uint8_t)*v);
    }
    proto_put_bytes(b, last ? "\"" : "\",", last ? 1 : 2);
}

static void family(struct proto_buf *b, const char *name, const char *type, const char *help)
{
    out(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(struct proto_buf *b, const char *name, const struct px_lane *l, const struct px_hist *h)
{
    for (int k = LE_FIRST_LOG2; k <= LE_LAST_LOG2; k += 2) {
        uint64_t le = 1ull << k;

        out(b, "%s_bucket{", name);
        label(b, "lane", l->conf->name, 0);
        out(b, "le=\"%llu.%06llu\"} %llu\n", (unsigned long long)(le / 1000000u),
            (unsigned long long)(le % 1000000u), (unsigned long long)px_hist_count_le(h, le));
    }
    out(b, "%s_bucket{", name);
    label(b, "lane", l->conf->name, 0);
    out(b, "le=\"+Inf\"} %llu\n", (unsigned long long)h->count);
    out(b, "%s_sum{", name);
    label(b, "lane", l->conf->name, 1);
    out(b, "} %llu.%06llu\n", (unsigned long long)(h->sum_us / 1000000u), (unsigned long long)(h->sum_us % 1000000u));
    out(b, "%s_count{", name);
    label(b, "lane", l->conf->name, 1);
    out(b, "} %llu\n", (unsigned long long)h->count);
}

static void histograms(struct proto_buf *b, struct proxy *px)
{
    static const struct {
        const char *name, *help;
        size_t offset;
    } hs[] = {
        { "pglane_lane_queue_wait_seconds", "Time clients waited in the lane's queue for a server connection.",
          offsetof(struct px_lane_stats, wait) },
        { "pglane_lane_transaction_duration_seconds", "Client transactions, first statement to idle ReadyForQuery.",
          offsetof(struct px_lane_stats, tx) },
        { "pglane_lane_query_duration_seconds", "Requests, first message to ReadyForQuery, queue wait excluded.",
          offsetof(struct px_lane_stats, query) },
    };

    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
        family(b, hs[i].name, "histogram", hs[i].help);
        for (int j = 0; j < px->nlanes; j++)
            histogram(b, hs[i].name, px->lanes[j],
                      (const struct px_hist *)((const char *)&px->lanes[j]->stats + hs[i].offset));
    }
}

static void pool_labels(struct proto_buf *b, const struct px_pool *pool, int last)
{
    label(b, "lane", pool->lane->conf->name, 0);
    if (pool->lane->neps > 1)          /* a lane with several servers has a pool per server */
        label(b, "server", pool->ep->server->name, 0);
    label(b, "database", pool->database, 0);
    label(b, "user", pool->user, last);
}

static void pool_servers(struct proto_buf *b, const struct px_pool *pool)
{
    static const char *const names[] = { "opening", "active", "idle", "resetting", "cancel_wait" };
    int n[5] = { 0, 0, pool->nidle, 0, 0 };

    for (const struct px_list *s = pool->busy.next; s != &pool->busy; s = s->next) {
        const struct px_server *sv = px_container_of(s, struct px_server, link);

        n[sv->state == SV_ACTIVE ? 1 : sv->state == SV_RESETTING ? 3 : sv->state == SV_CANCEL_WAIT ? 4 : 0]++;
    }
    for (int i = 0; i < 5; i++) {
        out(b, "pglane_servers{");
        pool_labels(b, pool, 0);
        label(b, "state", names[i], 1);
        out(b, "} %d\n", n[i]);
    }
}

/* One family over every pool of a lane in force. */
static void pools(struct proto_buf *b, struct proxy *px, int which)
{
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        const struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (pool->lane->retired)
            continue;
        if (which == 0) {
            pool_servers(b, pool);
            continue;
        }
        out(b, which == 1 ? "pglane_clients_waiting{" : which == 2 ? "pglane_pool_transactions_total{"
                                                                    : "pglane_pool_queries_total{");
        pool_labels(b, pool, 1);
        out(b, "} %llu\n", (unsigned long long)(which == 1 ? (uint64_t)pool->nwaiting
                                                : which == 2 ? pool->transactions : pool->queries));
    }
}

static void clients(struct proto_buf *b, struct proxy *px)
{
    static const char *const names[] = { "login", "idle", "waiting", "active", "admin" };
    int n[5] = { 0 };

    for (struct px_list *it = px->clients.next; it != &px->clients; it = it->next) {
        const struct px_client *cl = px_container_of(it, struct px_client, link);

        switch (cl->state) {
        case CL_STARTUP: case CL_AUTH_PASSWORD: case CL_AUTH_SASL_INIT: case CL_AUTH_SASL_FINAL:
        case CL_LOGIN_WAIT: n[0]++; break;
        case CL_IDLE: n[1]++; break;
        case CL_WAITING: n[2]++; break;
        case CL_ACTIVE: n[3]++; break;
        case CL_ADMIN: n[4]++; break;
        case CL_CLOSED: break;
        }
    }
    family(b, "pglane_clients", "gauge", "Client connections by state.");
    for (int i = 0; i < 5; i++)
        out(b, "pglane_clients{state=\"%s\"} %d\n", names[i], n[i]);
}

static void lane_counters(struct proto_buf *b, struct proxy *px)
{
    char cls[3];

    family(b, "pglane_lane_paused", "gauge", "1 while the lane is paused by the admin console.");
    for (int i = 0; i < px->nlanes; i++) {
        out(b, "pglane_lane_paused{");
        label(b, "lane", px->lanes[i]->conf->name, 1);
        out(b, "} %d\n", px->lanes[i]->paused);
    }
    family(b, "pglane_lane_effective_size", "gauge",
           "Connections each pool of the lane may hold: size, or less while the adaptive cap lowers it.");
    for (int i = 0; i < px->nlanes; i++) {
        out(b, "pglane_lane_effective_size{");
        label(b, "lane", px->lanes[i]->conf->name, 1);
        out(b, "} %d\n", px_lane_cap(px->lanes[i]));
    }
    family(b, "pglane_lane_backend_nice_total", "counter",
           "Backends of the lane given backend_nice as they logged in (result=\"applied\"), or not (\"failed\").");
    for (int i = 0; i < px->nlanes; i++) {
        if (px->lanes[i]->conf->backend_nice == 0)
            continue;
        out(b, "pglane_lane_backend_nice_total{");
        label(b, "lane", px->lanes[i]->conf->name, 0);
        out(b, "result=\"applied\"} %llu\n", (unsigned long long)px->lanes[i]->niced);
        out(b, "pglane_lane_backend_nice_total{");
        label(b, "lane", px->lanes[i]->conf->name, 0);
        out(b, "result=\"failed\"} %llu\n", (unsigned long long)px->lanes[i]->nice_failed);
    }
    family(b, "pglane_errors_total", "counter", "ErrorResponses from servers, by lane and SQLSTATE class.");
    for (int i = 0; i < px->nlanes; i++)
        for (int k = 0; k < PX_SQLSTATE_CLASSES; k++) {
            if (!px->lanes[i]->stats.errors[k])
                continue;
            px_sqlstate_class_name(k, cls);
            out(b, "pglane_errors_total{");
            label(b, "lane", px->lanes[i]->conf->name, 0);
            out(b, "class=\"%s\"} %llu\n", cls, (unsigned long long)px->lanes[i]->stats.errors[k]);
        }
    family(b, "pglane_prepared_unnamed_hits_total", "counter",
           "cache_unnamed: unnamed Parse messages run as a cached named statement, by lane.");
    for (int i = 0; i < px->nlanes; i++) {
        out(b, "pglane_prepared_unnamed_hits_total{");
        label(b, "lane", px->lanes[i]->conf->name, 1);
        out(b, "} %llu\n", (unsigned long long)px->lanes[i]->unnamed_hits);
    }
    family(b, "pglane_slow_queries_total", "counter", "Statements slower than log_slower_than.");
    for (int i = 0; i < px->nlanes; i++) {
        out(b, "pglane_slow_queries_total{");
        label(b, "lane", px->lanes[i]->conf->name, 1);
        out(b, "} %llu\n", (unsigned long long)px->lanes[i]->stats.slow);
    }
}

static void pins(struct proto_buf *b, struct proxy *px)
{
    family(b, "pglane_pinned_clients", "gauge",
           "Clients that keep their server connection between transactions, by lane and reason.");
    for (int i = 0; i < px->nlanes; i++)
        for (int r = 0; r < PX_PIN_REASONS; r++) {
            int n = 0;

            for (struct px_list *it = px->clients.next; it != &px->clients; it = it->next) {
                const struct px_client *cl = px_container_of(it, struct px_client, link);

                n += cl->pool && cl->pool->lane == px->lanes[i] && (cl->pins & (1u << r));
            }
            out(b, "pglane_pinned_clients{");
            label(b, "lane", px->lanes[i]->conf->name, 0);
            out(b, "reason=\"%s\"} %d\n", px_pin_name(r), n);
        }
    family(b, "pglane_pins_total", "counter", "Clients that became pinned to a server connection, by lane and reason.");
    for (int i = 0; i < px->nlanes; i++)
        for (int r = 0; r < PX_PIN_REASONS; r++) {
            out(b, "pglane_pins_total{");
            label(b, "lane", px->lanes[i]->conf->name, 0);
            out(b, "reason=\"%s\"} %llu\n", px_pin_name(r), (unsigned long long)px->lanes[i]->stats.pins[r]);
        }
}

/* auth_query lookups (proxy/auth_query.c): answered from the cache, by a query, or failed. */
static void authq_counts(struct proto_buf *b, struct proxy *px)
{
    uint64_t hits, misses, errors;

    px_authq_counts(px, &hits, &misses, &errors);
    family(b, "pglane_auth_query_lookups_total", "counter",
           "Secrets of users not in auth_file: answered from the cache (hit), by running auth_query (miss), "
           "or not found out because the lookup failed (error).");
    out(b, "pglane_auth_query_lookups_total{result=\"hit\"} %llu\n", (unsigned long long)hits);
    out(b, "pglane_auth_query_lookups_total{result=\"miss\"} %llu\n", (unsigned long long)misses);
    out(b, "pglane_auth_query_lookups_total{result=\"error\"} %llu\n", (unsigned long long)errors);
}

static void cancels(struct proto_buf *b, struct proxy *px)
{
    static const char *const events[PX_CANCEL_EVENTS] = { "forwarded", "held", "expired", "queued" };

    family(b, "pglane_cancels_total", "counter",
           "Cancels for a lane: sent to its backends (for clients and the guard); server connections held "
           "out of the pool after their transaction while one was in flight; cancels that did not complete "
           "in time (their server connection closed); queued requests answered with 57014 unsent.");
    for (int i = 0; i < px->nlanes; i++)
        for (int e = 0; e < PX_CANCEL_EVENTS; e++) {
            out(b, "pglane_cancels_total{");
            label(b, "lane", px->lanes[i]->conf->name, 0);
            out(b, "event=\"%s\"} %llu\n", events[e], (unsigned long long)px->lanes[i]->stats.cancels[e]);
        }
    family(b, "pglane_cancel_requests_dropped_total", "counter",
           "Client CancelRequests with nothing to cancel: unknown key, or no request of the client running on a server.");
    out(b, "pglane_cancel_requests_dropped_total %llu\n", (unsigned long long)px->cancels_dropped);
    authq_counts(b, px);
}

static void routes(struct proto_buf *b, struct proxy *px)
{
    const struct conf *c = px->conf;

    family(b, "pglane_route_hits_total", "counter", "Transactions routed by each route; route=\"(default)\" when none matched.");
    for (int i = 0; i < c->nroutes; i++) {
        out(b, "pglane_route_hits_total{");
        label(b, "route", c->routes[i].name, 0);
        label(b, "lane", c->lanes[c->routes[i].lane].name, 1);
        out(b, "} %llu\n", (unsigned long long)px_route_hits(px, i));
    }
    out(b, "pglane_route_hits_total{route=\"(default)\",");
    label(b, "lane", c->default_lane, 1);
    out(b, "} %llu\n", (unsigned long long)px->lanes[c->default_lane_index]->route_hits);
}

static void guard(struct proto_buf *b, struct proxy *px)
{
    family(b, "pglane_guard_actions_total", "counter",
           "Contention guard actions against a preemptible lane on behalf of a protected lane.");
    for (int i = 0; i < px->nlanes; i++)
        for (int j = 0; j < px->nlanes; j++) {
            uint64_t n[PX_GUARD_ACTIONS] = { 0 };   /* summed over fingerprints: see SHOW GUARD */

            px_guard_sum(px, px->lanes[i], px->lanes[j], n);
            for (int a = 0; a < PX_GUARD_ACTIONS; a++) {
                if (!n[a])
                    continue;
                out(b, "pglane_guard_actions_total{");
                label(b, "lane", px->lanes[i]->conf->name, 0);
                label(b, "protected_lane", px->lanes[j]->conf->name, 0);
                out(b, "action=\"%s\"} %llu\n", px_guard_action_name((enum px_guard_action)a),
                    (unsigned long long)n[a]);
            }
        }
}

/* max_connections of the [server.NAME] in force called name, 0 if none. */
static int cap_server_limit(const struct proxy *px, const char *name)
{
    for (int s = 0; s < px->conf->nservers; s++)
        if (strcmp(px->conf->servers[s].name, name) == 0)
            return px->conf->servers[s].max_connections;
    return 0;
}

static void process(struct proto_buf *b, struct proxy *px)
{
    int up = 0, total = 0;

    family(b, "pglane_build_info", "gauge", "pglane's version.");
    out(b, "pglane_build_info{version=\"%s\"} 1\n", PGLANE_VERSION);
    family(b, "pglane_reloads_total", "counter", "Configuration reloads (SIGHUP or RELOAD), by result.");
    out(b, "pglane_reloads_total{result=\"success\"} %llu\n", (unsigned long long)px->reloads);
    out(b, "pglane_reloads_total{result=\"failure\"} %llu\n", (unsigned long long)px->reload_failures);
    family(b, "pglane_prepared_statements_total", "counter",
           "Prepared statements in transaction pooling: Parse sent to servers, answered from the cache, "
           "evicted from a server's cache, invalidated after a result type change.");
    out(b, "pglane_prepared_statements_total{event=\"prepare\"} %llu\n", (unsigned long long)px->prep_parses);
    out(b, "pglane_prepared_statements_total{event=\"hit\"} %llu\n", (unsigned long long)px->prep_hits);
    out(b, "pglane_prepared_statements_total{event=\"eviction\"} %llu\n", (unsigned long long)px->prep_evictions);
    out(b, "pglane_prepared_statements_total{event=\"invalidation\"} %llu\n",
        (unsigned long long)px->prep_invalidations);
    family(b, "pglane_server_scram_derivations_total", "counter",
           "Server logins by SCRAM that derived the keys from a plaintext password in auth_file (PBKDF2, "
           "about a millisecond of CPU each); the other logins of a pool reuse them while the server's "
           "salt and the password stay the same.");
    out(b, "pglane_server_scram_derivations_total %llu\n", (unsigned long long)px->scram_derivations);
    px_monitor_health(px, &up, &total);
    family(b, "pglane_monitor_servers", "gauge", "Servers whose lock graph is sampled, and those answering.");
    out(b, "pglane_monitor_servers{state=\"sampled\"} %d\n", total);
    out(b, "pglane_monitor_servers{state=\"up\"} %d\n", up);
    {
        uint64_t periodic, triggered;

        px_monitor_samples(px, &periodic, &triggered);
        family(b, "pglane_monitor_samples_total", "counter",
               "Lock graph samples sent: every 200 ms, and at once when a protected request ran past guard_wait.");
        out(b, "pglane_monitor_samples_total{reason=\"periodic\"} %llu\n", (unsigned long long)periodic);
        out(b, "pglane_monitor_samples_total{reason=\"triggered\"} %llu\n", (unsigned long long)triggered);
    }
    family(b, "pglane_quarantined_shapes", "gauge",
           "Statement shapes the contention guard refuses on preemptible lanes (SHOW QUARANTINE).");
    out(b, "pglane_quarantined_shapes %d\n", px_guard_quarantined_count(px));
    family(b, "pglane_pools", "gauge", "Pools, one per (lane, database, user) in use; bounded by max_pools.");
    out(b, "pglane_pools %d\n", px->workers ? px_workers_pool_keys(px->workers) : px->npools);
    family(b, "pglane_capped_server_connections", "gauge",
           "Server connections under each configured global cap (max_db_connections, max_user_connections, "
           "[server.NAME] max_connections), all lanes and pools counted.");
    for (const struct px_cap *c = px->caps; c; c = c->next) {
        static const char *const kinds[PX_CAP_KINDS] = { "database", "user", "server", NULL };
        int limit = c->kind == PX_CAP_DB ? px->conf->max_db_connections
                    : c->kind == PX_CAP_USER ? px->conf->max_user_connections
                    : c->kind == PX_CAP_LANE ? 0 : cap_server_limit(px, c->name);

        if (limit <= 0)   /* (a lane's size over its servers' pools is not a global cap) */
            continue;
        out(b, "pglane_capped_server_connections{kind=\"%s\",", kinds[c->kind]);
        label(b, "name", c->name, 0);
        out(b, "limit=\"%d\"} %d\n", limit, c->n);
    }
}

/* Server connections lost (by server: lanes sharing a server are summed) and transactions retried. */
static void faults(struct proto_buf *b, struct proxy *px)
{
    const struct conf *c = px->conf;

    family(b, "pglane_server_connections_lost_total", "counter",
           "Pooled server connections PostgreSQL ended: an error while idle in the pool (idle_error), closed "
           "while idle (idle_closed), or found dead when a transaction's first message was sent (dead_on_use) or by the check before reuse "
           "(check_failed, server_check_delay).");
    for (int s = 0; s < c->nservers; s++)
        for (int r = 0; r < PX_LOST_REASONS; r++) {
            uint64_t n = 0;

            for (int i = 0; i < px->nall_lanes; i++)
                if (strcmp(px->all_lanes[i]->server->name, c->servers[s].name) == 0)
                    n += px->all_lanes[i]->stats.lost[r];
            out(b, "pglane_server_connections_lost_total{");
            label(b, "server", c->servers[s].name, 0);
            out(b, "reason=\"%s\"} %llu\n", px_lost_reason_name(r), (unsigned long long)n);
        }
    family(b, "pglane_transaction_retries_total", "counter",
           "Transactions whose first message(s) pglane sent again on another server connection because the "
           "first one died before answering (server_retry).");
    for (int i = 0; i < px->nlanes; i++) {
        out(b, "pglane_transaction_retries_total{");
        label(b, "lane", px->lanes[i]->conf->name, 1);
        out(b, "} %llu\n", (unsigned long long)px->lanes[i]->stats.retries);
    }
    family(b, "pglane_session_checks_total", "counter",
           "Session reads and resets after a transaction that may have changed session state by a path "
           "pglane cannot see (DO, CALL, a function); a clean transaction costs none.");
    for (int i = 0; i < px->nlanes; i++) {
        out(b, "pglane_session_checks_total{");
        label(b, "lane", px->lanes[i]->conf->name, 1);
        out(b, "} %llu\n", (unsigned long long)px->lanes[i]->stats.session_checks);
    }
}

/* How long the oldest client now queued in each pool has waited (SHOW LANES' longest_wait_ms):
 * 0 when none waits. The histogram counts a wait only once it has ended. */
static void longest_waits(struct proto_buf *b, struct proxy *px)
{
    uint64_t now = px_now_ms(px);

    family(b, "pglane_clients_longest_wait_seconds", "gauge",
           "How long the oldest client now queued for a server connection has waited (0: none waits).");
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        const struct px_pool *pool = px_container_of(it, struct px_pool, link);
        uint64_t waited = 0;

        if (pool->lane->retired)
            continue;
        if (!px_list_empty(&pool->waiting)) {
            const struct px_client *head = px_container_of(pool->waiting.next, struct px_client, wait_link);

            waited = now > head->wait_start_ms ? now - head->wait_start_ms : 0;
        }
        out(b, "pglane_clients_longest_wait_seconds{");
        pool_labels(b, pool, 1);
        out(b, "} %.3f\n", (double)waited / 1000.0);
    }
}

#define TENANTS_TOP 10

static int by_service_desc(const void *a, const void *b)
{
    uint64_t x = (*(struct fq_tenant *const *)a)->service_us, y = (*(struct fq_tenant *const *)b)->service_us;

    return x < y ? 1 : x > y ? -1 : 0;
}

/* Fair queuing: per lane with a tenant_key, the TENANTS_TOP tenants with the most server time, and the
 * rest (and the shared "(other)" tenant) summed as tenant="(other)": cardinality stays bounded. */
static void tenants(struct proto_buf *b, struct proxy *px)
{
    static const char *const names[] = { "pglane_tenant_server_seconds", "pglane_tenant_transactions",
                                         "pglane_tenant_active", "pglane_tenant_waiting" };
    static const char *const helps[] = {
        "Server time held by the tenant's transactions (top tenants of the lane; the rest as (other)).",
        "Transactions of the tenant that got a server connection (top tenants; the rest as (other)).",
        "Server connections the tenant's transactions hold now (top tenants; the rest as (other)).",
        "Transactions of the tenant queued for a server connection (top tenants; the rest as (other)).",
    };
    uint64_t now = px_now_ms(px) * 1000 + 1;

    for (int m = 0; m < 4; m++) {
        family(b, names[m], "gauge", helps[m]);
        for (int i = 0; i < px->nlanes; i++) {
            const struct fq *q = px->lanes[i]->fq;
            struct fq_tenant **rows;
            double other = 0;
            int n;

            if (!q || px->lanes[i]->conf->tenant_key == CONF_TENANT_NONE ||
                !(rows = malloc(sizeof(*rows) * (size_t)(q->n + 1))))
                continue;
            memcpy(rows, q->t, sizeof(*rows) * (size_t)q->n);
            qsort(rows, (size_t)q->n, sizeof(*rows), by_service_desc);
            n = q->n;
            if (q->other)
                rows[n++] = q->other;
            for (int k = 0; k < n; k++) {
                const struct fq_tenant *x = rows[k];
                double v = m == 0 ? (double)fq_service_us(x, now) / 1e6 : m == 1 ? (double)x->served
                         : m == 2 ? x->active : x->waiting;

                /* an application_name spelled like a label pglane writes itself goes with the rest */
                if (k >= TENANTS_TOP || x == q->other || strcmp(x->id, FQ_OTHER_ID) == 0 ||
                    strcmp(x->id, "(anonymous)") == 0) {
                    other += v;
                    continue;
                }
                out(b, "%s{", names[m]);
                label(b, "lane", px->lanes[i]->conf->name, 0);
                label(b, "tenant", x->id[0] ? x->id : "(anonymous)", 1);
                out(b, "} %.6g\n", v);
            }
            if (n > TENANTS_TOP || q->other || other > 0) {
                out(b, "%s{", names[m]);
                label(b, "lane", px->lanes[i]->conf->name, 0);
                out(b, "tenant=\"(other)\"} %.6g\n", other);
            }
            free(rows);
        }
    }
}

/* Servers' health (proxy/health.c): only the servers that are checked, except conflicts. */
struct health_family {
    struct proto_buf *b;
    struct proxy *px;
    int which;
};

static int health_line(const char *name, const struct px_health *h, void *arg)
{
    struct health_family *f = arg;
    int checked = px_health_checked(f->px, name);

    if (f->which < 3 && !checked)
        return 0;
    if ((f->which == 1 && h->lag_ms < 0) || (f->which == 2 && h->lag_bytes < 0))
        return 0;
    out(f->b, "%s{", f->which == 0 ? "pglane_server_up" : f->which == 1 ? "pglane_replica_lag_seconds"
                     : f->which == 2 ? "pglane_replica_lag_bytes" : "pglane_replica_conflicts_total");
    label(f->b, "server", name, 1);
    switch (f->which) {
    case 0: out(f->b, "} %d\n", h->up); break;
    case 1: out(f->b, "} %.3f\n", (double)h->lag_ms / 1000.0); break;
    case 2: out(f->b, "} %lld\n", (long long)h->lag_bytes); break;
    default: out(f->b, "} %llu\n", (unsigned long long)h->conflicts); break;
    }
    return 0;
}

static void health(struct proto_buf *b, struct proxy *px)
{
    static const char *const fam[][3] = {
        { "pglane_server_up", "gauge", "1 while the server answers its health checks, 0 once it is down." },
        { "pglane_replica_lag_seconds", "gauge",
          "Replay lag in time while received WAL waits for replay: since the last replayed transaction, at most "
          "since a check last found the server caught up; 0 on a primary and on a replica with nothing to replay." },
        { "pglane_replica_lag_bytes", "gauge", "WAL bytes the server has still to replay behind the primary's LSN." },
        { "pglane_replica_conflicts_total", "counter",
          "Statements cancelled on the server by a conflict with recovery." },
    };

    for (int i = 0; i < 4; i++) {
        struct health_family f = { b, px, i };

        family(b, fam[i][0], fam[i][1], fam[i][2]);
        px_health_foreach(px, health_line, &f);
    }
    family(b, "pglane_health_checks_total", "counter", "Health-check queries sent to servers.");
    out(b, "pglane_health_checks_total %llu\n", (unsigned long long)px_health_checks_total(px));
}

/* Lanes with several servers (proxy/replica.c): each server's state for the lane, the transactions
 * the lane sent there, and the recovery conflicts its clients met there. */
static void lane_servers(struct proto_buf *b, struct proxy *px)
{
    static const char *const kinds[] = { "read", "write" };

    family(b, "pglane_lane_server_state", "gauge",
           "1 for the state of each server of a lane with several servers (up, down, lagging), else 0.");
    for (int i = 0; i < px->nlanes; i++)
        for (int e = 0; px->lanes[i]->neps > 1 && e < px->lanes[i]->neps; e++)
            for (int st = PX_EP_UP; st <= PX_EP_LAGGING; st++) {
                out(b, "pglane_lane_server_state{");
                label(b, "lane", px->lanes[i]->conf->name, 0);
                label(b, "server", px->lanes[i]->eps[e].server->name, 0);
                label(b, "state", px_ep_state_name(st), 1);
                out(b, "} %d\n", px_ep_state(px, px->lanes[i], &px->lanes[i]->eps[e]) == st);
            }
    family(b, "pglane_lane_server_transactions_total", "counter",
           "Transactions of a lane with several servers sent to each server, as reads (a replica) or writes.");
    for (int i = 0; i < px->nlanes; i++)
        for (int e = 0; px->lanes[i]->neps > 1 && e < px->lanes[i]->neps; e++)
            for (int k = 0; k < 2; k++) {
                out(b, "pglane_lane_server_transactions_total{");
                label(b, "lane", px->lanes[i]->conf->name, 0);
                label(b, "server", px->lanes[i]->eps[e].server->name, 0);
                label(b, "kind", kinds[k], 1);
                out(b, "} %llu\n", (unsigned long long)(k ? px->lanes[i]->eps[e].writes : px->lanes[i]->eps[e].reads));
            }
    family(b, "pglane_lane_replica_conflicts_total", "counter",
           "Statements a standby cancelled for a conflict with recovery (40001 / 40P01), by lane and server.");
    for (int i = 0; i < px->nlanes; i++)
        for (int e = 0; px->lanes[i]->neps > 1 && e < px->lanes[i]->neps; e++) {
            out(b, "pglane_lane_replica_conflicts_total{");
            label(b, "lane", px->lanes[i]->conf->name, 0);
            label(b, "server", px->lanes[i]->eps[e].server->name, 1);
            out(b, "} %llu\n", (unsigned long long)px->lanes[i]->eps[e].conflicts);
        }
}

void px_metrics_render(struct proxy *px, struct proto_buf *b)
{
    process(b, px);
    clients(b, px);
    family(b, "pglane_servers", "gauge", "Server connections by lane, database, user and state.");
    pools(b, px, 0);
    family(b, "pglane_clients_waiting", "gauge", "Clients queued for a server connection.");
    pools(b, px, 1);
    longest_waits(b, px);
    family(b, "pglane_pool_transactions_total", "counter", "Server connections given back after a transaction.");
    pools(b, px, 2);
    family(b, "pglane_pool_queries_total", "counter", "Requests answered by ReadyForQuery.");
    pools(b, px, 3);
    histograms(b, px);
    lane_counters(b, px);
    routes(b, px);
    guard(b, px);
    pins(b, px);
    cancels(b, px);
    faults(b, px);
    tenants(b, px);
    health(b, px);
    lane_servers(b, px);
}
