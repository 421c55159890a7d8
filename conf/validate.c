/*
 * Checks that need the whole file: references between sections (lane -> server, route -> lane,
 * default_lane), required sections and keys, and combinations of [pglane] keys.
 */
#include <stdlib.h>
#include <string.h>

#include "conf/internal.h"

int conf_sect_key_line(const struct conf_sect *s, const char *key)
{
    for (int i = 0; i < s->nkeys; i++)
        if (strcmp(s->keys[i].name, key) == 0)
            return s->keys[i].line;
    return 0;
}

static const struct conf_sect *pglane_sect(const struct conf_loader *ld)
{
    for (int i = 0; i < ld->nsects; i++)
        if (ld->sects[i].kind == SECT_PGLANE)
            return &ld->sects[i];
    return NULL;
}

/* The line of [pglane] key `key`, else of the [pglane] header, else 0 (no section at all). */
static int pglane_line(const struct conf_loader *ld, const char *key)
{
    const struct conf_sect *s = pglane_sect(ld);
    int line = s && key ? conf_sect_key_line(s, key) : 0;

    return line ? line : s ? s->line : 0;
}

/* server = NAME, or server = a, b, c: each a defined [server.NAME], at most once. */
static void resolve_lane_server(struct conf_loader *ld, const struct conf_sect *s)
{
    struct conf_lane *lane = &ld->c->lanes[s->index];
    char **names;
    int n;

    lane->nservers = 0;
    if (s->ref == NULL) {
        if (ld->c->nservers == 1) {
            lane->server = 0;
            lane->servers[lane->nservers++] = 0;
        } else if (ld->c->nservers > 1) {
            conf_errf(ld, s->line, "lane %s: server is required when there are several "
                      "[server.NAME] sections", s->name);
        }
        return;
    }
    if (conf_split_list(s->ref, 0, &names, &n) < 0 || n < 1) {
        conf_errf(ld, s->ref_line, "lane %s: server: expected a server name or a comma-separated list of them",
                  s->name);
        return;
    }
    if (n > CONF_LANE_SERVERS_MAX)
        conf_errf(ld, s->ref_line, "lane %s: server: at most %d servers, got %d", s->name, CONF_LANE_SERVERS_MAX, n);
    lane->server = -1;
    for (int i = 0; i < n && i < CONF_LANE_SERVERS_MAX; i++) {
        int k = conf_server_find(ld->c, names[i]), dup = 0;

        for (int j = 0; j < i; j++)
            dup |= strcmp(names[j], names[i]) == 0;
        if (k < 0)
            conf_errf(ld, s->ref_line, "lane %s: server '%s' is not defined", s->name, names[i]);
        else if (dup)
            conf_errf(ld, s->ref_line, "lane %s: server '%s' is listed twice", s->name, names[i]);
        else
            lane->servers[lane->nservers++] = k;
    }
    if (lane->nservers > 0)
        lane->server = lane->servers[0];
    conf_free_list(names, n);
}

/* A quarantine needs a window to count in and a time to last. */
static void check_lane_quarantine(struct conf_loader *ld, const struct conf_sect *s)
{
    const struct conf_lane *lane = &ld->c->lanes[s->index];
    int line;

    if (lane->guard_quarantine == 0)
        return;
    if (lane->guard_quarantine_window_ms <= 0) {
        line = conf_sect_key_line(s, "guard_quarantine_window");
        conf_errf(ld, line ? line : s->line, "lane %s: guard_quarantine_window must be above 0 when "
                  "guard_quarantine is not 0", s->name);
    }
    if (lane->guard_quarantine_time_ms <= 0) {
        line = conf_sect_key_line(s, "guard_quarantine_time");
        conf_errf(ld, line ? line : s->line, "lane %s: guard_quarantine_time must be above 0 when "
                  "guard_quarantine is not 0", s->name);
    }
}

/* The adaptive cap: protects names another lane; target_p99 goes with it; min_size <= size. */
static void check_lane_adapt(struct conf_loader *ld, const struct conf_sect *s)
{
    struct conf_lane *lane = &ld->c->lanes[s->index];
    int line;

    lane->protects_lane = -1;
    if (lane->protects) {
        line = conf_sect_key_line(s, "protects");
        lane->protects_lane = conf_lane_find(ld->c, lane->protects);
        if (lane->protects_lane < 0)
            conf_errf(ld, line, "lane %s: protects: lane '%s' is not defined", s->name, lane->protects);
        else if (lane->protects_lane == s->index)
            conf_errf(ld, line, "lane %s: protects: a lane cannot protect itself", s->name);
        if (lane->target_p99_ms <= 0) {
            int tl = conf_sect_key_line(s, "target_p99");

            conf_errf(ld, tl ? tl : line, "lane %s: target_p99 must be above 0 when protects is given",
                      s->name);
        }
    } else if ((line = conf_sect_key_line(s, "target_p99")) != 0) {
        conf_errf(ld, line, "lane %s: target_p99 needs protects = LANE (the lane whose p99 it is)", s->name);
    }
    if (lane->adapt_interval_ms < 100) {
        line = conf_sect_key_line(s, "adapt_interval");
        conf_errf(ld, line ? line : s->line, "lane %s: adapt_interval must be at least 100ms", s->name);
    }
    if (lane->min_size > lane->size) {
        line = conf_sect_key_line(s, "min_size");
        conf_errf(ld, line ? line : s->line, "lane %s: min_size (%d) is above size (%d)", s->name,
                  lane->min_size, lane->size);
    }
}

static void resolve_route_lane(struct conf_loader *ld, const struct conf_sect *s)
{
    struct conf_route *r = &ld->c->routes[s->index];

    if (s->ref == NULL) {
        conf_errf(ld, s->line, "route %s: lane is required", s->name);
        return;
    }
    r->lane = conf_lane_find(ld->c, s->ref);
    if (r->lane < 0)
        conf_errf(ld, s->ref_line, "route %s: lane '%s' is not defined", s->name, s->ref);
}

static void check_default_lane(struct conf_loader *ld)
{
    struct conf *c = ld->c;

    if (c->default_lane == NULL) {
        conf_errf(ld, pglane_line(ld, NULL), "default_lane is required in [pglane]");
        return;
    }
    c->default_lane_index = conf_lane_find(c, c->default_lane);
    if (c->default_lane_index < 0)
        conf_errf(ld, pglane_line(ld, "default_lane"), "default_lane: lane '%s' is not defined",
                  c->default_lane);
}

static void check_auth_tls(struct conf_loader *ld)
{
    struct conf *c = ld->c;

    if (c->auth_type != CONF_AUTH_TRUST && c->auth_file == NULL)
        conf_errf(ld, pglane_line(ld, "auth_type"), "auth_file is required unless auth_type = trust");
    if (c->auth_user != NULL && c->auth_type == CONF_AUTH_TRUST)
        conf_errf(ld, pglane_line(ld, "auth_user"), "auth_user needs auth_type = md5 or scram-sha-256 "
                  "(auth_type = trust checks no password)");
    if (c->auth_query == NULL && (c->auth_query = strdup(CONF_DEFAULT_AUTH_QUERY)) == NULL)
        ld->oom = 1;
    if (c->tls_mode != CONF_TLS_DISABLE && (c->tls_cert_file == NULL || c->tls_key_file == NULL))
        conf_errf(ld, pglane_line(ld, "tls_mode"), "tls_mode = %s needs tls_cert_file and "
                  "tls_key_file", c->tls_mode == CONF_TLS_ALLOW ? "allow" : "require");
}

static void default_listen(struct conf_loader *ld)
{
    struct conf *c = ld->c;

    if (c->nlisten > 0)
        return;
    c->listen = calloc(1, sizeof *c->listen);
    if (c->listen == NULL || (c->listen[0].host = strdup("127.0.0.1")) == NULL) {
        ld->oom = 1;
        return;
    }
    c->listen[0].port = 6432;
    c->nlisten = 1;
}

int conf_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0;
}

/* Trust lets anyone who can reach the port in: only on loopback, unless the operator says so. */
static void check_trust(struct conf_loader *ld)
{
    struct conf *c = ld->c;

    if (c->auth_type != CONF_AUTH_TRUST || c->allow_trust)
        return;
    for (int i = 0; i < c->nlisten; i++)
        if (!conf_is_loopback(c->listen[i].host)) {
            conf_errf(ld, pglane_line(ld, "auth_type"), "auth_type = trust with listen = %s beyond loopback "
                      "needs allow_trust = yes", c->listen[i].host);
            return;
        }
}

/* The admin reserve must leave ordinary clients at least one slot. */
static void check_reserve(struct conf_loader *ld)
{
    struct conf *c = ld->c;

    if (c->nadmin_users > 0 && c->reserve_admin_connections >= c->max_client_conn)
        conf_errf(ld, pglane_line(ld, "reserve_admin_connections"),
                  "reserve_admin_connections (%d) must be below max_client_conn (%d)",
                  c->reserve_admin_connections, c->max_client_conn);
}

/* tenant_max and tenant_weight.ID name tenants: without tenant_key there are none to cap or weigh. */
static void check_lane_tenants(struct conf_loader *ld, const struct conf_sect *s)
{
    const struct conf_lane *lane = &ld->c->lanes[s->index];

    if (lane->tenant_key != CONF_TENANT_NONE)
        return;
    if (lane->tenant_max > 0)
        conf_errf(ld, conf_sect_key_line(s, "tenant_max"), "lane %s: tenant_max needs tenant_key (user, "
                  "database, application_name or hint)", s->name);
    if (lane->ntenant_weights > 0)
        conf_errf(ld, lane->tenant_weights[0].line, "lane %s: tenant_weight.%s needs tenant_key (user, "
                  "database, application_name or hint)", s->name, lane->tenant_weights[0].id);
}

/* backend_nice renices processes of this host: every server of the lane must be on it (a unix socket
 * directory or a loopback address), or pglane would be given pids of another machine. */
static void check_lane_nice(struct conf_loader *ld, const struct conf_sect *s)
{
    const struct conf_lane *lane = &ld->c->lanes[s->index];

    if (lane->backend_nice == 0)
        return;
    for (int i = 0; i < lane->nservers; i++) {
        const struct conf_server *sv = &ld->c->servers[lane->servers[i]];
        if (sv->host[0] != '/' && !conf_is_loopback(sv->host)) {
            conf_errf(ld, conf_sect_key_line(s, "backend_nice"), "lane %s: backend_nice needs its servers on "
                      "this host (a unix socket directory or a loopback address); server %s is at %s",
                      s->name, sv->name, sv->host);
            return;
        }
    }
}

void conf_validate(struct conf_loader *ld)
{
    if (ld->c->nservers == 0)
        conf_errf(ld, 0, "no [server.NAME] section; at least one is required");
    if (ld->c->nlanes == 0)
        conf_errf(ld, 0, "no [lane.NAME] section; at least one is required");
    for (int i = 0; i < ld->nsects; i++) {
        if (ld->sects[i].kind == SECT_LANE) {
            resolve_lane_server(ld, &ld->sects[i]);
            check_lane_quarantine(ld, &ld->sects[i]);
            check_lane_adapt(ld, &ld->sects[i]);
            check_lane_tenants(ld, &ld->sects[i]);
            check_lane_nice(ld, &ld->sects[i]);
        } else if (ld->sects[i].kind == SECT_ROUTE)
            resolve_route_lane(ld, &ld->sects[i]);
    }
    check_default_lane(ld);
    check_auth_tls(ld);
    default_listen(ld);
    check_trust(ld);
    check_reserve(ld);
    conf_validate_peers(ld, pglane_sect(ld) ? conf_sect_key_line(pglane_sect(ld), "peer_id") : 0);
}
