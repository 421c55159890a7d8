/*
 * Routing glue: turns the configuration's [route.*] sections into compiled rules, decides each
 * client's or transaction's lane, and keeps the classification cache and learned statistics. The
 * decisions themselves are routing/'s; this file only gathers the facts.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"
#include "routing/route.h"
#include "routing/hash.h"

#define DECISIONS 4096      /* direct-mapped cache of (identity, fingerprint) -> rule */
#define PENDING_TEXTS 64    /* direct-mapped: first-seen shapes whose transaction has not ended */
#define SLOW_SLOTS 4096     /* direct-mapped: shapes published as slow (several workers) */

/*
 * Several workers: each keeps its own learned statistics (written at every statement, without a
 * lock), and slower_than routes must see every worker's traffic. A shape whose p95 in some worker is
 * above the lowest slower_than of the routes is published here with that p95, and republished at each
 * of its executions there until it is no longer (then withdrawn); a worker that has not run the shape
 * yet takes the published p95. Shapes faster than every slower_than never touch the table. Every
 * field under lock; a fixed table, a shape replacing another in its slot.
 */
static struct {
    pthread_mutex_t lock;
    struct {
        uint64_t fp;
        int64_t p95_us;
    } s[SLOW_SLOTS];
} slow = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct px_routing {
    struct route_rules *rules;
    int *route_lane;                   /* route index -> lane index */
    uint64_t *hits;                    /* per route */
    int nroutes;
    int need_statement;
    int cacheable;
    struct route_cache *classes;
    struct route_stats *stats;
    struct {
        uint64_t key;
        int16_t rule;
        uint8_t valid;
    } decisions[DECISIONS];
    struct {                           /* normalized text of shapes not in the statistics yet */
        uint64_t fp;
        char text[ROUTE_STATS_TEXT_MAX];
    } fresh_text[PENDING_TEXTS];
    uint64_t slow_us;                  /* the lowest slower_than of the routes, 0: none */
    uint64_t published[SLOW_SLOTS];    /* shapes this worker published as slow (`slow` above) */
};

/* The p95 another worker published for fp, -1 if none. */
static int64_t slow_known(uint64_t fp)
{
    int64_t p95 = -1;

    pthread_mutex_lock(&slow.lock);
    if (slow.s[fp % SLOW_SLOTS].fp == fp)
        p95 = slow.s[fp % SLOW_SLOTS].p95_us;
    pthread_mutex_unlock(&slow.lock);
    return p95;
}

/* The shapes rt published are withdrawn. */
static void slow_withdraw(struct px_routing *rt)
{
    pthread_mutex_lock(&slow.lock);
    for (unsigned i = 0; i < SLOW_SLOTS; i++)
        if (rt->published[i] && slow.s[i].fp == rt->published[i])
            slow.s[i].fp = 0;
    pthread_mutex_unlock(&slow.lock);
    memset(rt->published, 0, sizeof(rt->published));
}

static void free_desc(struct route_rule_desc *d)
{
    free((void *)d->kinds);
    free((void *)d->cidrs);
}

static int fill_desc(const struct conf *c, const struct conf_route *r, struct route_rule_desc *d,
                     char *err, size_t errlen)
{
    enum route_kind *kinds = calloc((size_t)r->nkinds + 1, sizeof(*kinds));
    struct route_cidr *cidrs = calloc((size_t)r->ncidrs + 1, sizeof(*cidrs));

    memset(d, 0, sizeof(*d));
    d->kinds = kinds;
    d->cidrs = cidrs;
    if (!kinds || !cidrs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < r->nkinds; i++)
        if (route_kind_parse(r->kinds[i], strlen(r->kinds[i]), &kinds[i]) < 0) {
            snprintf(err, errlen, "%s:%d: route %s: unknown kind '%s'", c->file, r->line, r->name, r->kinds[i]);
            return -1;
        }
    for (int i = 0; i < r->ncidrs; i++) {
        cidrs[i].family = r->cidrs[i].family;
        memcpy(cidrs[i].addr, r->cidrs[i].addr, 16);
        cidrs[i].prefix = (unsigned)r->cidrs[i].prefix;
    }
    d->name = r->name;
    d->lane = c->lanes[r->lane].name;
    d->databases = (const char *const *)r->databases;
    d->n_databases = (size_t)r->ndatabases;
    d->users = (const char *const *)r->users;
    d->n_users = (size_t)r->nusers;
    d->applications = (const char *const *)r->app_globs;
    d->n_applications = (size_t)r->napp_globs;
    d->n_cidrs = (size_t)r->ncidrs;
    d->n_kinds = (size_t)r->nkinds;
    d->tables = (const char *const *)r->tables;
    d->n_tables = (size_t)r->ntables;
    d->sql = r->sql;
    d->sql_code = r->sql_re;
    d->hint = r->hint;
    d->slower_than_ms = (uint32_t)r->slower_than_ms;
    return 0;
}

struct px_routing *px_routing_build(const struct conf *c, char *err, size_t errlen)
{
    struct px_routing *rt = calloc(1, sizeof(*rt));
    struct route_rule_desc *descs = calloc((size_t)c->nroutes + 1, sizeof(*descs));
    int ok = rt && descs;

    for (int i = 0; ok && i < c->nroutes; i++)
        ok = fill_desc(c, &c->routes[i], &descs[i], err, errlen) == 0;
    if (ok) {
        rt->rules = route_rules_new(descs, (size_t)c->nroutes, err, errlen);
        rt->route_lane = calloc((size_t)c->nroutes + 1, sizeof(int));
        rt->hits = calloc((size_t)c->nroutes + 1, sizeof(uint64_t));
        rt->classes = route_cache_new(4096);
        rt->stats = route_stats_new((size_t)(c->stats_fingerprints > 0 ? c->stats_fingerprints : 1000));
        ok = rt->rules && rt->route_lane && rt->hits && rt->classes && rt->stats;
        if (!ok && !*err)
            snprintf(err, errlen, "out of memory building routes");
    }
    for (int i = 0; descs && i < c->nroutes; i++)
        free_desc(&descs[i]);
    free(descs);
    if (!ok) {
        px_routing_free(rt);
        return NULL;
    }
    rt->nroutes = c->nroutes;
    for (int i = 0; i < c->nroutes; i++) {
        uint64_t us = (uint64_t)c->routes[i].slower_than_ms * 1000;

        rt->route_lane[i] = c->routes[i].lane;
        if (us && (!rt->slow_us || us < rt->slow_us))
            rt->slow_us = us;
    }
    rt->need_statement = route_rules_need_statement(rt->rules);
    rt->cacheable = route_rules_fingerprint_cacheable(rt->rules);
    return rt;
}

void px_routing_inherit(struct px_routing *rt, struct px_routing *old, const int *lane_map, int nmap,
                        int keep_stats)
{
    struct route_cache *classes;
    struct route_stats *stats;

    if (!old)
        return;
    /* A statement's class depends on its text alone: the cache stays valid whatever the rules. */
    classes = rt->classes;
    rt->classes = old->classes;
    old->classes = classes;
    if (!keep_stats || !rt->slow_us) {
        slow_withdraw(old);            /* what it published no longer follows this worker's statistics */
        if (!keep_stats)
            return;
    } else {
        memcpy(rt->published, old->published, sizeof(rt->published));
    }
    stats = rt->stats;
    rt->stats = old->stats;
    old->stats = stats;
    route_stats_remap_lanes(rt->stats, lane_map, nmap);
    memcpy(rt->fresh_text, old->fresh_text, sizeof(rt->fresh_text));
}

void px_routing_free(struct px_routing *rt)
{
    if (!rt)
        return;
    route_rules_free(rt->rules);
    route_cache_free(rt->classes);
    route_stats_free(rt->stats);
    free(rt->route_lane);
    free(rt->hits);
    free(rt);
}

static void client_facts(struct px_client *cl, struct route_facts *f, struct sockaddr_storage *ss)
{
    memset(f, 0, sizeof(*f));
    memset(ss, 0, sizeof(*ss));
    f->database = cl->database;
    f->user = cl->user;
    f->application_name = cl->want.v[PX_P_APPLICATION_NAME] ? cl->want.v[PX_P_APPLICATION_NAME] : "";
    f->p95_us = -1;
    if (cl->peer_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;

        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, cl->peer_addr, 4);
        f->client_addr = (const struct sockaddr *)ss;
    } else if (cl->peer_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, cl->peer_addr, 16);
        f->client_addr = (const struct sockaddr *)ss;
    }
}

static uint64_t mix(uint64_t h, const char *s)
{
    return route_fnv1a_byte(route_fnv1a(h, s, s ? strlen(s) : 0), 0xff);
}

static _Thread_local int last_rule = -1;   /* the route the latest decision took (-1: the default lane) */

int px_route_last_rule(void)
{
    return last_rule;
}

static int lane_of_rule(struct proxy *px, int rule)
{
    struct px_routing *rt = px->routing;

    last_rule = rule;
    if (rule < 0) {
        px->lanes[px->conf->default_lane_index]->route_hits++;
        return px->conf->default_lane_index;
    }
    rt->hits[rule]++;
    return rt->route_lane[rule];
}

int px_route_client(struct proxy *px, struct px_client *cl)
{
    struct sockaddr_storage ss;
    struct route_facts f;
    int r;

    if (cl->route_gen == px->config_gen + 1u)
        return cl->route_identity;
    client_facts(cl, &f, &ss);
    r = route_rules_match_identity(px->routing->rules, &f);
    cl->identity_hash = mix(mix(mix(ROUTE_FNV_OFFSET, f.database), f.user), f.application_name);
    cl->identity_hash = route_fnv1a(cl->identity_hash, cl->peer_addr, 16);  /* bytes, not a string */
    cl->identity_hash = route_fnv1a_byte(cl->identity_hash, cl->peer_family);
    cl->identity_rule = (int16_t)r;
    cl->route_identity = (int16_t)(r == ROUTE_NEED_STATEMENT ? ROUTE_NEED_STATEMENT
                                   : r < 0 ? px->conf->default_lane_index : px->routing->route_lane[r]);
    cl->route_gen = px->config_gen + 1u;
    return cl->route_identity;
}

/* Statements above this size are classified by the lexer alone: PostgreSQL's grammar is quadratic
 * in the nesting of comments, and it runs in the event loop. */
#define GRAMMAR_MAX 8192

static const struct route_class *classify(struct px_routing *rt, uint64_t fp, const char *sql, size_t len)
{
    const struct route_class *cls = route_cache_get(rt->classes, fp);
    struct route_class fresh;

    if (cls)
        return cls;
    if (len > GRAMMAR_MAX)
        route_classify_lexer(sql, len, &fresh);
    else
        (void)route_classify(sql, len, &fresh);
    route_cache_put(rt->classes, fp, &fresh);
    return route_cache_get(rt->classes, fp);
}

int px_route_statement(struct proxy *px, struct px_client *cl, const char *sql, size_t len)
{
    struct px_routing *rt = px->routing;
    struct sockaddr_storage ss;
    struct route_facts f;
    struct route_scan sc;
    const struct route_class *cls;
    uint64_t key;
    int rule, slot;

    route_scan(sql, len, &sc, NULL, 0);
    cl->fingerprint = sc.fingerprint;
    cls = classify(rt, sc.fingerprint, sql, len);
    cl->changes_session |= cls && (cls->changes_session || cls->opaque);
    cl->stmt_pins = cls ? cls->pins : 0;
    key = sc.fingerprint ^ (cl->identity_hash * 0x9e3779b97f4a7c15ull);
    slot = (int)(key & (DECISIONS - 1));
    if (rt->cacheable && rt->decisions[slot].valid && rt->decisions[slot].key == key)
        return lane_of_rule(px, rt->decisions[slot].rule);
    client_facts(cl, &f, &ss);
    f.cls = cls;
    f.sql = sql;
    f.sql_len = len;
    f.hint = sc.hint;
    f.hint_len = sc.hint_len;
    f.p95_us = route_stats_percentile_us(rt->stats, sc.fingerprint, 95.0);
    if (f.p95_us < 0 && px->workers && rt->slow_us)
        f.p95_us = slow_known(sc.fingerprint);   /* new here: slow in another worker? */
    if (f.p95_us < 0) {                /* a new shape: keep its normalized text for SHOW QUERIES */
        int t = (int)(sc.fingerprint % PENDING_TEXTS);

        rt->fresh_text[t].fp = sc.fingerprint;
        route_scan(sql, len, &sc, rt->fresh_text[t].text, sizeof(rt->fresh_text[t].text));
    }
    rule = route_rules_match(rt->rules, &f);
    rt->decisions[slot].key = key;
    rt->decisions[slot].rule = (int16_t)rule;
    rt->decisions[slot].valid = 1;
    return lane_of_rule(px, rule);
}

const struct route_class *px_route_classify(struct proxy *px, const char *sql, size_t len)
{
    return classify(px->routing, route_fingerprint(sql, len), sql, len);
}

/* fp ran here for duration_us: published (or republished) while its p95 here is above the lowest
 * slower_than, withdrawn when it no longer is. */
static void slow_follow(struct px_routing *rt, uint64_t fp, uint64_t duration_us)
{
    unsigned i = (unsigned)(fp % SLOW_SLOTS);
    int mine = rt->published[i] == fp;
    int64_t p95;

    if (!mine && duration_us <= rt->slow_us)
        return;                        /* the fast path: a fast shape not published by this worker */
    p95 = route_stats_percentile_us(rt->stats, fp, 95.0);
    if (!mine && (p95 < 0 || (uint64_t)p95 <= rt->slow_us))
        return;
    pthread_mutex_lock(&slow.lock);
    if (p95 >= 0 && (uint64_t)p95 > rt->slow_us) {
        slow.s[i].fp = fp;
        slow.s[i].p95_us = p95;
        rt->published[i] = fp;
    } else {
        if (slow.s[i].fp == fp)
            slow.s[i].fp = 0;
        rt->published[i] = 0;
    }
    pthread_mutex_unlock(&slow.lock);
}

void px_route_record(struct proxy *px, uint64_t fingerprint, uint64_t duration_us, int lane)
{
    struct px_routing *rt = px->routing;
    int t = (int)(fingerprint % PENDING_TEXTS);

    if (!fingerprint)
        return;
    if (rt->fresh_text[t].fp == fingerprint) {
        route_stats_record(rt->stats, fingerprint, duration_us, lane, rt->fresh_text[t].text,
                           strlen(rt->fresh_text[t].text));
        rt->fresh_text[t].fp = 0;
    } else {
        route_stats_record(rt->stats, fingerprint, duration_us, lane, NULL, 0);
    }
    if (px->workers && rt->slow_us)
        slow_follow(rt, fingerprint, duration_us);
}

const char *px_route_text(struct proxy *px, uint64_t fingerprint, char *buf, size_t n)
{
    struct px_routing *rt = px->routing;
    struct route_stat_entry e;
    int t = (int)(fingerprint % PENDING_TEXTS);

    buf[0] = 0;
    if (!fingerprint || !rt)
        return buf;
    if (rt->fresh_text[t].fp == fingerprint)
        snprintf(buf, n, "%s", rt->fresh_text[t].text);
    else if (route_stats_get(rt->stats, fingerprint, &e))
        snprintf(buf, n, "%s", e.text);
    return buf;
}

int px_route_identity_hit(struct proxy *px, struct px_client *cl)
{
    int lane = px_route_client(px, cl);

    if (lane == ROUTE_NEED_STATEMENT)
        return lane;
    return lane_of_rule(px, cl->identity_rule);
}

uint64_t px_route_hits(const struct proxy *px, int route)
{
    return route < px->routing->nroutes ? px->routing->hits[route] : 0;
}

struct route_stats *px_route_stats(const struct proxy *px)
{
    return px->routing->stats;
}

int px_routing_need_statement(const struct proxy *px)
{
    return px->routing->need_statement;
}

int px_routing_match(const struct px_routing *rt, const struct route_facts *f, int default_lane, int *lane)
{
    int rule = route_rules_match(rt->rules, f);

    *lane = rule < 0 ? default_lane : rt->route_lane[rule];
    return rule;
}
