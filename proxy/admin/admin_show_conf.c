/* Admin console: SHOW ROUTES, SHOW QUERIES, SHOW BLOCKING, SHOW GUARD and SHOW CONFIG. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/admin/console.h"
#include "proxy/admin/monitor.h"
#include "routing/route.h"

/* ---- SHOW ROUTES ---- */

struct text {
    char s[256];
    size_t n;
};

static void text_add(struct text *t, const char *key, char *const *list, int n)
{
    for (int i = 0; i < n; i++) {
        int w = snprintf(t->s + t->n, sizeof(t->s) - t->n, "%s%s%s", i ? "," : (t->n ? "; " : ""),
                         i ? "" : key, list[i]);

        if (w < 0 || (size_t)w >= sizeof(t->s) - t->n) {
            t->n = sizeof(t->s) - 1;
            return;
        }
        t->n += (size_t)w;
    }
}

static void route_criteria(const struct conf_route *r, struct text *t)
{
    char *one[1];

    memset(t, 0, sizeof(*t));
    text_add(t, "database=", r->databases, r->ndatabases);
    text_add(t, "user=", r->users, r->nusers);
    text_add(t, "application_name=", r->app_globs, r->napp_globs);
    text_add(t, "kind=", r->kinds, r->nkinds);
    text_add(t, "tables=", r->tables, r->ntables);
    if (r->ncidrs) {
        one[0] = "(cidr)";
        text_add(t, "client_addr=", one, 1);
    }
    if (r->sql) {
        one[0] = r->sql;
        text_add(t, "sql=", one, 1);
    }
    if (r->hint) {
        one[0] = "yes";
        text_add(t, "hint=", one, 1);
    }
}

void px_show_routes(struct px_client *cl, const char *arg)
{
    static const char *const cols[] = { "route", "lane", "criteria", "hits", NULL };
    struct proxy *px = cl->conn.px;
    const struct conf *c = px->conf;
    struct px_table t;
    struct text crit;

    (void)arg;
    px_table_begin(&t, cols);
    for (int i = 0; i < c->nroutes; i++) {
        route_criteria(&c->routes[i], &crit);
        px_table_cell(&t, "%s", c->routes[i].name);
        px_table_cell(&t, "%s", c->lanes[c->routes[i].lane].name);
        if (c->routes[i].slower_than_ms)
            px_table_cell(&t, "%s%sslower_than=%lldms", crit.s, crit.n ? "; " : "",
                          (long long)c->routes[i].slower_than_ms);
        else
            px_table_cell(&t, "%s", crit.s);
        px_table_cell(&t, "%llu", (unsigned long long)px_route_hits(px, i));
    }
    px_table_cell(&t, "(default)");
    px_table_cell(&t, "%s", c->default_lane);
    px_table_cell(&t, "no route matched");
    px_table_cell(&t, "%llu", (unsigned long long)px->lanes[c->default_lane_index]->route_hits);
    px_table_send(&t, cl, "SHOW");
}

/* ---- SHOW QUERIES ---- */

struct qlist {
    struct route_stat_entry *e;
    size_t n, cap;
};

static int collect(const struct route_stat_entry *e, void *arg)
{
    struct qlist *q = arg;

    if (q->n < q->cap)
        q->e[q->n++] = *e;
    return 0;
}

static int by_total_desc(const void *a, const void *b)
{
    const struct route_stat_entry *x = a, *y = b;

    return x->total_us < y->total_us ? 1 : x->total_us > y->total_us ? -1 : 0;
}

static void query_row(struct px_table *t, struct proxy *px, const struct route_stats *rs,
                      const struct route_stat_entry *e)
{
    int64_t p95 = route_stats_percentile_us(rs, e->fingerprint, 95.0);

    px_table_cell(t, "%016llx", (unsigned long long)e->fingerprint);
    px_table_cell(t, "%s", e->text);
    if (e->lane >= 0 && e->lane < px->nlanes)
        px_table_cell(t, "%s", px->lanes[e->lane]->conf->name);
    else
        px_table_null(t);
    px_table_cell(t, "%llu", (unsigned long long)e->calls);
    px_table_cell(t, "%.3f", (double)e->total_us / 1000.0);
    px_table_cell(t, "%.3f", e->calls ? (double)e->total_us / 1000.0 / (double)e->calls : 0.0);
    px_table_cell(t, "%.3f", p95 > 0 ? (double)p95 / 1000.0 : 0.0);
    px_table_cell(t, "%.3f", (double)e->max_us / 1000.0);
}

const char *const px_query_cols[] = {
    "fingerprint", "query", "lane", "calls", "total_ms", "mean_ms", "p95_ms", "max_ms", NULL
};

void px_query_rows(struct px_table *t, struct proxy *px)
{
    const struct route_stats *rs = px->routing ? px_route_stats(px) : NULL;
    struct qlist q = { 0 };

    if (!rs || route_stats_count(rs) == 0)
        return;
    q.cap = route_stats_count(rs);
    if (!(q.e = malloc(q.cap * sizeof(*q.e))))
        return;
    route_stats_foreach(rs, collect, &q);
    qsort(q.e, q.n, sizeof(*q.e), by_total_desc);
    for (size_t i = 0; i < q.n && i < PX_TOP_QUERIES; i++)
        query_row(t, px, rs, &q.e[i]);
    free(q.e);
}

/* Several workers' rows of one statement shape summed: the mean again from the sums. The p95 shown is
 * the largest of the workers' (an upper bound of the process's). */
void px_query_fix(char **v)
{
    char buf[32];
    double calls = v[3] ? strtod(v[3], NULL) : 0, total = v[4] ? strtod(v[4], NULL) : 0;

    snprintf(buf, sizeof(buf), "%.3f", calls > 0 ? total / calls : 0.0);
    free(v[5]);
    v[5] = strdup(buf);
}

void px_show_queries(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_QUERIES);
}

/* ---- SHOW BLOCKING ---- */

static void side_cells(struct px_table *t, const struct px_block_side *s)
{
    px_table_cell(t, "%u", s->pid);
    px_table_cell(t, "%s", s->owned ? s->lane->conf->name : "external");
    if (s->owned && s->client_id)
        px_table_cell(t, "C-%llu %s", (unsigned long long)s->client_id, s->addr);
    else
        px_table_cell(t, "%s", s->addr);
    px_table_cell(t, "%s", s->user);
    px_table_cell(t, "%s", s->app);
    if (s->fingerprint)
        px_table_cell(t, "%016llx", (unsigned long long)s->fingerprint);
    else
        px_table_null(t);
    px_table_cell(t, "%s", s->state);
    px_table_cell(t, "%s", s->query);
}

static int blocking_row(const struct px_block_edge *e, void *arg)
{
    struct px_table *t = arg;

    px_table_cell(t, "%s", e->server);
    side_cells(t, &e->waiter);
    side_cells(t, &e->blocker);
    px_table_cell(t, "%s", e->mode);
    px_table_cell(t, "%s", e->relation);
    px_table_cell(t, "%lld", (long long)e->wait_ms);
    return 0;
}

const char *const px_blocking_cols[] = {
    "server", "waiter_pid", "waiter_lane", "waiter_client", "waiter_user", "waiter_application",
    "waiter_fingerprint", "waiter_state", "waiter_query", "blocker_pid", "blocker_lane", "blocker_client",
    "blocker_user", "blocker_application", "blocker_fingerprint", "blocker_state", "blocker_query",
    "lock_mode", "relation", "wait_ms", NULL
};

/* Several workers: an edge whose waiter another worker owns is that worker's to show (it knows the
 * client); the others (waiter of this worker, or external) are shown by every worker sampling them and
 * merged by (server, waiter, blocker). */
static int blocking_row_here(const struct px_block_edge *e, void *arg)
{
    return e->waiter.owned && e->waiter.remote ? 0 : blocking_row(e, arg);
}

void px_blocking_rows(struct px_table *t, struct proxy *px)
{
    px_monitor_want(px);           /* each worker's monitor samples from now on */
    px_monitor_foreach(px, blocking_row_here, t);
}

void px_show_blocking(struct px_client *cl, const char *arg)
{
    static const char *const *cols = px_blocking_cols;
    struct proxy *px = cl->conn.px;
    struct px_table t;
    int up = 0, total = 0;

    (void)arg;
    if (px->workers) {
        px_show_list(cl, PX_GATHER_BLOCKING);
        return;
    }
    px_monitor_want(px);
    px_monitor_health(px, &up, &total);
    px_table_begin(&t, cols);
    px_monitor_foreach(px, blocking_row, &t);
    if (up < total) {
        /* The rows come with a notice: the graph is incomplete (the monitor is still connecting). */
        size_t start = proto_msg_begin(&t.b, 'N');

        proto_put_u8(&t.b, 'S');
        proto_put_cstr(&t.b, "NOTICE");
        proto_put_u8(&t.b, 'C');
        proto_put_cstr(&t.b, "00000");
        proto_put_u8(&t.b, 'M');
        proto_put_cstr(&t.b, "pglane: the lock monitor has sampled only some servers yet; repeat in a moment");
        proto_put_u8(&t.b, 0);
        proto_msg_end(&t.b, start);
    }
    px_table_send(&t, cl, "SHOW");
}

/* ---- SHOW GUARD ---- */

struct guard_table {
    struct px_table *t;
    struct proxy *px;
};

static void text_or_null(struct px_table *t, const char *s)
{
    if (s && *s)
        px_table_cell(t, "%s", s);
    else
        px_table_null(t);
}

static int guard_row(const struct px_guard_count *g, void *arg)
{
    struct guard_table *gt = arg;
    struct px_table *t = gt->t;
    const struct px_guard_offender *o = px_guard_advice(gt->px, g->fingerprint);

    px_table_cell(t, "%s", g->lane->conf->name);
    px_table_cell(t, "%s", g->protected_lane->conf->name);
    px_table_cell(t, "%s", px_guard_action_name(g->action));
    if (g->fingerprint)
        px_table_cell(t, "%016llx", (unsigned long long)g->fingerprint);
    else
        px_table_null(t);
    px_table_cell(t, "%llu", (unsigned long long)g->count);
    text_or_null(t, o ? o->shape : NULL);
    text_or_null(t, o ? o->relation : NULL);
    text_or_null(t, o ? o->mode : NULL);
    text_or_null(t, o ? o->blocker_query : NULL);
    if (o && o->waiter_fingerprint)
        px_table_cell(t, "%016llx", (unsigned long long)o->waiter_fingerprint);
    else
        px_table_null(t);
    text_or_null(t, o ? o->waiter_query : NULL);
    text_or_null(t, o ? o->pattern : NULL);
    text_or_null(t, o ? o->fix : NULL);
    px_table_cell(t, "%s", o && o->until_ms ? "yes" : "no");
    return 0;
}

const char *const px_guard_cols[] = { "lane", "protected_lane", "action", "fingerprint", "count", "shape",
                                     "relation", "lock_mode", "blocker_query", "blocked_fingerprint", "blocked_query",
                                     "pattern", "fix", "quarantined", NULL };

void px_guard_rows(struct px_table *t, struct proxy *px)
{
    struct guard_table gt = { .t = t, .px = px };

    px_guard_foreach(px, guard_row, &gt);
}

void px_show_guard(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_GUARD);
}

/* ---- SHOW QUARANTINE, RELEASE ---- */

static int quarantine_row(const struct px_guard_offender *o, void *arg)
{
    struct guard_table *gt = arg;
    struct px_table *t = gt->t;
    uint64_t now = px_now_ms(gt->px);

    if (!o->until_ms)
        return 0;
    px_table_cell(t, "%016llx", (unsigned long long)o->fingerprint);
    px_table_cell(t, "%s", o->lane->conf->name);
    px_table_cell(t, "%s", o->protected_lane->conf->name);
    px_table_cell(t, "%d", o->quarantine_count);
    px_table_cell(t, "%llu", (unsigned long long)o->actions);
    px_table_cell(t, "%s", o->relation);
    px_table_cell(t, "%s", o->mode);
    px_table_cell(t, "%llu", (unsigned long long)(o->until_ms > now ? (o->until_ms - now + 999) / 1000 : 0));
    text_or_null(t, o->shape);
    text_or_null(t, o->blocker_query);
    text_or_null(t, o->pattern);
    text_or_null(t, o->fix);
    return 0;
}

const char *const px_quarantine_cols[] = { "fingerprint", "lane", "protected_lane", "count", "actions", "relation",
                                          "lock_mode", "seconds_left", "shape", "blocker_query", "pattern", "fix",
                                          NULL };

void px_quarantine_rows(struct px_table *t, struct proxy *px)
{
    struct guard_table gt = { .t = t, .px = px };

    px_guard_offenders(px, quarantine_row, &gt);
}

void px_show_quarantine(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_QUARANTINE);
}

void px_release(struct px_client *cl, const char *arg)
{
    struct proxy *px = cl->conn.px;
    char *end = NULL;
    uint64_t fp = 0;
    int all = strcasecmp(arg, "ALL") == 0, n;

    if (!all) {
        errno = 0;
        fp = strtoull(arg, &end, 16);
        if (!*arg || *end || errno || fp == 0) {
            px_admin_error(cl, "42601", "pglane: RELEASE needs a fingerprint (16 hex digits) or ALL",
                           "SHOW QUARANTINE lists the quarantined fingerprints.");
            return;
        }
    }
    n = px_guard_release(px, fp, all);
    if (!all && n == 0) {
        px_admin_error(cl, "42704", "pglane: that fingerprint is not quarantined",
                       "SHOW QUARANTINE lists the quarantined fingerprints.");
        return;
    }
    px_info("admin C-%llu released %d quarantined statement shape(s)", (unsigned long long)cl->conn.id, n);
    px_admin_done(cl, "RELEASE", NULL);
}

/* Prepared statements in transaction pooling: pglane's counters and what each server holds. */
const char *const px_prepared_cols[] = { "prepares_sent", "cache_hits", "evictions", "invalidations",
                                         "statements_on_servers", "unnamed_hits", NULL };

void px_prepared_rows(struct px_table *t, struct proxy *px)
{
    long on_servers = 0;

    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);
        struct px_list *lists[] = { &pool->idle, &pool->busy };

        for (int l = 0; l < 2; l++)
            for (struct px_list *s = lists[l]->next; s != lists[l]; s = s->next)
                on_servers += px_container_of(s, struct px_server, link)->ncached;
    }
    px_table_cell(t, "%llu", (unsigned long long)px->prep_parses);
    px_table_cell(t, "%llu", (unsigned long long)px->prep_hits);
    px_table_cell(t, "%llu", (unsigned long long)px->prep_evictions);
    px_table_cell(t, "%llu", (unsigned long long)px->prep_invalidations);
    px_table_cell(t, "%ld", on_servers);
    px_table_cell(t, "%llu", (unsigned long long)px->prep_unnamed_hits);
}

void px_show_prepared(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_PREPARED);
}
