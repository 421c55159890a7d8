/*
 * The configuration in force: lane objects built from [lane.*], routing built from [route.*], and
 * live reload. A reload builds everything new first and swaps only when all of it is valid; lanes
 * whose server, session settings or backend_nice changed are retired (they drain) and replaced by new
 * ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"
#include "proxy/tenant.h"

struct px_retired {                /* a replaced configuration, kept only if a retired lane could not copy its part */
    struct px_retired *next;
    struct conf *conf;
    struct conf_userlist users;
};

static void lane_free(struct px_lane *l)
{
    px_tls_ctx_free(l->tls_ctx);
    px_lane_eps_free(l);
    px_tenant_lane_free(l);
    conf_lane_clear(&l->own_conf);       /* zeroed (nothing to free) unless the lane was retired */
    conf_server_clear(&l->own_server);
    free(l);
}

/* A retired lane keeps its own copy of its settings and server; -1 (still pointing into the old
 * configuration) when out of memory. */
static int lane_own_conf(struct px_lane *l)
{
    if (conf_lane_copy(&l->own_conf, l->conf) < 0)
        return -1;
    if (conf_server_copy(&l->own_server, l->server) < 0) {
        conf_lane_clear(&l->own_conf);
        return -1;
    }
    if (px_lane_eps_own(l) < 0) {
        conf_lane_clear(&l->own_conf);
        conf_server_clear(&l->own_server);
        return -1;
    }
    l->conf = &l->own_conf;
    l->server = &l->own_server;
    return 0;
}

static struct px_lane *lane_new(const struct conf *c, int i)
{
    struct px_lane *l = calloc(1, sizeof(*l));

    if (!l)
        return NULL;
    l->conf = &c->lanes[i];
    l->server = &c->servers[c->lanes[i].server];
    l->index = i;
    l->size = l->conf->size;
    if (l->server->host[0] == '/') {
        l->unix_socket = 1;
        snprintf(l->unix_path, sizeof(l->unix_path), "%s/.s.PGSQL.%d", l->server->host, l->server->port);
    } else if (px_resolve(l->server->host, l->server->port, &l->addr) < 0) {
        px_error("server \"%s\": cannot resolve host \"%s\"", l->server->name, l->server->host);
        lane_free(l);
        return NULL;
    }
    if (l->server->tls_mode != CONF_STLS_DISABLE && !(l->tls_ctx = px_tls_client_ctx(l->server))) {
        lane_free(l);
        return NULL;
    }
    if (px_lane_eps_build(l, c) < 0) {
        lane_free(l);
        return NULL;
    }
    return l;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Can existing server connections of old serve the lane described by nl? */
static int lane_compatible(const struct px_lane *old, const struct conf *c, const struct conf_lane *nl,
                           const struct conf_server *ns)
{
    const struct conf_lane *ol = old->conf;
    const struct conf_server *os = old->server;

    if (strcmp(ol->name, nl->name) != 0 || !same_str(os->host, ns->host) || os->port != ns->port ||
        os->tls_mode != ns->tls_mode || !same_str(os->tls_ca_file, ns->tls_ca_file) ||
        ol->nsettings != nl->nsettings || ol->backend_nice != nl->backend_nice ||
        !px_lane_eps_same(old, c, nl))
        return 0;
    for (int i = 0; i < ol->nsettings; i++)
        if (strcmp(ol->settings[i].name, nl->settings[i].name) != 0 ||
            strcmp(ol->settings[i].value, nl->settings[i].value) != 0)
            return 0;
    return 1;
}

static int remember_lane(struct proxy *px, struct px_lane *l)
{
    struct px_lane **all = realloc(px->all_lanes, sizeof(*all) * (size_t)(px->nall_lanes + 1));

    if (!all)
        return -1;
    px->all_lanes = all;
    all[px->nall_lanes++] = l;
    return 0;
}

/* Builds the lane array for conf c, reusing compatible lanes of the current one. */
static struct px_lane **build_lanes(struct proxy *px, const struct conf *c, struct px_lane ***fresh, int *nfresh)
{
    struct px_lane **lanes = calloc((size_t)c->nlanes, sizeof(*lanes));

    *fresh = calloc((size_t)c->nlanes, sizeof(**fresh));
    *nfresh = 0;
    if (!lanes || !*fresh)
        goto fail;
    for (int i = 0; i < c->nlanes; i++) {
        for (int j = 0; j < px->nlanes && !lanes[i]; j++)
            if (lane_compatible(px->lanes[j], c, &c->lanes[i], &c->servers[c->lanes[i].server]))
                lanes[i] = px->lanes[j];
        if (lanes[i])
            continue;
        lanes[i] = lane_new(c, i);
        if (!lanes[i])
            goto fail;
        (*fresh)[(*nfresh)++] = lanes[i];
    }
    return lanes;
fail:
    for (int i = 0; *fresh && i < *nfresh; i++)
        lane_free((*fresh)[i]);
    free(*fresh);
    *fresh = NULL;
    free(lanes);
    return NULL;
}

/* Points lanes at conf c; lanes of the old array that are not kept are retired. Returns the number
 * of retired lanes that still point into the old configuration (out of memory for their copies). */
static int install_lanes(struct proxy *px, const struct conf *c, struct px_lane **lanes,
                         struct px_lane **fresh, int nfresh)
{
    int pinned = 0;

    for (int j = 0; j < px->nlanes; j++) {
        int kept = 0;

        for (int i = 0; i < c->nlanes; i++)
            kept |= lanes[i] == px->lanes[j];
        if (!kept) {
            px->lanes[j]->retired = 1;
            px->lanes[j]->index = -1;
            pinned += lane_own_conf(px->lanes[j]) < 0;
        }
    }
    for (int i = 0; i < c->nlanes; i++) {
        lanes[i]->conf = &c->lanes[i];
        lanes[i]->server = &c->servers[c->lanes[i].server];
        px_lane_eps_point(lanes[i], c);
        lanes[i]->index = i;
        lanes[i]->size = c->lanes[i].size;
    }
    for (int i = 0; i < nfresh; i++)
        if (remember_lane(px, fresh[i]) < 0)
            px_error("out of memory remembering lane %s", fresh[i]->conf->name);
    free(px->lanes);
    px->lanes = lanes;
    px->nlanes = c->nlanes;
    return pinned;
}

int px_config_apply_initial(struct proxy *px)
{
    struct px_lane **lanes, **fresh;
    char err[512] = "";
    int nfresh;

    lanes = build_lanes(px, px->conf, &fresh, &nfresh);
    if (!lanes)
        return -1;
    (void)install_lanes(px, px->conf, lanes, fresh, nfresh);   /* nothing to retire at start */
    free(fresh);
    px_health_want(px, px_replica_wants_server);   /* the servers of lanes that list several */
    px_adapt_configure(px);
    px->routing = px_routing_build(px->conf, err, sizeof(err));
    if (!px->routing) {
        px_error("routes: %s", err);
        return -1;
    }
    return 0;
}

/* Idle servers of retired lanes close now; busy ones close when they are given back. */
static void drain_retired(struct proxy *px)
{
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (pool->secret && !pool->own_secret)
            pool->secret = conf_userlist_find(&px->users, pool->user);
        if (!pool->lane->retired)
            continue;
        while (!px_list_empty(&pool->idle))
            px_server_close(px_container_of(pool->idle.next, struct px_server, link), "lane retired by reload");
    }
}

static int lane_has_pool(const struct proxy *px, const struct px_lane *l)
{
    for (const struct px_list *it = px->pools.next; it != &px->pools; it = it->next)
        if (px_container_of(it, struct px_pool, link)->lane == l)
            return 1;
    return 0;
}

/* Retired lanes that no pool uses (no client ever reached them, ~15 kB each with their histograms)
 * are freed; the others stay while their pools do. */
static void sweep_retired_lanes(struct proxy *px)
{
    int k = 0;

    for (int i = 0; i < px->nall_lanes; i++) {
        struct px_lane *l = px->all_lanes[i];

        if (l->retired && !lane_has_pool(px, l))
            lane_free(l);
        else
            px->all_lanes[k++] = l;
    }
    px->nall_lanes = k;
}

/* What pglane learned about statements (classes, durations) survives a reload; lanes are matched
 * by name. */
static void inherit_learning(struct proxy *px, struct px_routing *rt, const struct conf *nc)
{
    const struct conf *oc = px->conf;
    int *map = calloc((size_t)oc->nlanes + 1, sizeof(*map));

    if (!map) {
        px_error("reload: out of memory; learned statement statistics start over");
        return;
    }
    for (int i = 0; i < oc->nlanes; i++)
        map[i] = conf_lane_find(nc, oc->lanes[i].name);
    px_routing_inherit(rt, px->routing, map, oc->nlanes, nc->stats_fingerprints == oc->stats_fingerprints);
    free(map);
}

/* Frees the replaced configuration and userlist, unless a retired lane still points into them. */
static void retire_conf(struct proxy *px, struct conf *oc, struct conf_userlist *ou, int pinned)
{
    struct px_retired *r = pinned ? calloc(1, sizeof(*r)) : NULL;

    if (r) {
        r->conf = oc;
        r->users = *ou;
        r->next = px->retired;
        px->retired = r;
        return;
    }
    if (pinned) {   /* out of memory twice over: keeping the lanes valid matters more than the leak */
        px_error("reload: out of memory; the previous configuration is kept");
        return;
    }
    conf_userlist_free(ou);
    conf_free(oc);
}

int px_reload(struct proxy *px)
{
    struct conf_diag diag = { 0 };
    struct conf *nc = NULL;
    struct conf_userlist nu = { 0 };
    struct px_lane **lanes, **fresh;
    struct px_routing *rt;
    struct conf *oc;
    struct conf_userlist ou;
    char err[512] = "";
    int nfresh, pinned;

    if (conf_load(px->conf->file, &nc, &diag) < 0 ||
        (nc->auth_file && conf_userlist_load(nc->auth_file, &nu, &diag) < 0)) {
        for (int i = 0; i < diag.n; i++)
            px_error("reload: %s", diag.msgs[i]);
        px_error("reload failed: the previous configuration stays in force");
        conf_diag_free(&diag);
        conf_free(nc);
        px->reload_failures++;
        return -1;
    }
    conf_diag_free(&diag);
    rt = px_routing_build(nc, err, sizeof(err));
    lanes = rt ? build_lanes(px, nc, &fresh, &nfresh) : NULL;
    if (!rt || !lanes) {
        px_error("reload failed (%s): the previous configuration stays in force", *err ? err : "lanes");
        px_routing_free(rt);
        if (lanes) {
            for (int i = 0; i < nfresh; i++)
                lane_free(fresh[i]);
            free(fresh);
            free(lanes);
        }
        conf_userlist_free(&nu);
        conf_free(nc);
        px->reload_failures++;
        return -1;
    }
    inherit_learning(px, rt, nc);
    oc = px->conf;
    ou = px->users;
    px->conf = nc;
    px->users = nu;
    pinned = install_lanes(px, nc, lanes, fresh, nfresh);
    free(fresh);
    px_routing_free(px->routing);
    px->routing = rt;
    px->config_gen++;
    px->reloads++;
    px_log_set_level(nc->log_level);
    drain_retired(px);   /* also points every pool's secret into the new userlist */
    px_adapt_configure(px);
    retire_conf(px, oc, &ou, pinned);
    sweep_retired_lanes(px);
    (void)px_peers_configure(px, 0);
    px_health_reload(px);
    px_info("reload: %d lane(s), %d route(s), %d new or changed lane(s)", nc->nlanes, nc->nroutes, nfresh);
    return 0;
}

void px_config_free(struct proxy *px)
{
    for (int i = 0; i < px->nall_lanes; i++)
        lane_free(px->all_lanes[i]);
    free(px->all_lanes);
    free(px->lanes);
    px->lanes = px->all_lanes = NULL;
    px->nlanes = px->nall_lanes = 0;
    px_routing_free(px->routing);
    px->routing = NULL;
    while (px->retired) {
        struct px_retired *r = px->retired;

        px->retired = r->next;
        conf_userlist_free(&r->users);
        conf_free(r->conf);
        free(r);
    }
}
