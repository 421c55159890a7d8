/* Freeing a loaded configuration, copies of its lane and server entries, and lookups by name. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "conf/internal.h"

void conf_lane_clear(struct conf_lane *l)
{
    free(l->name);
    for (int i = 0; i < l->nsettings; i++) {
        free(l->settings[i].name);
        free(l->settings[i].value);
    }
    free(l->settings);
    free(l->protects);
    for (int i = 0; i < l->ntenant_weights; i++)
        free(l->tenant_weights[i].id);
    free(l->tenant_weights);
    memset(l, 0, sizeof(*l));
}

static void free_route(struct conf_route *r)
{
    free(r->name);
    conf_free_list(r->databases, r->ndatabases);
    conf_free_list(r->users, r->nusers);
    conf_free_list(r->app_globs, r->napp_globs);
    free(r->cidrs);
    conf_free_list(r->kinds, r->nkinds);
    conf_free_list(r->tables, r->ntables);
    free(r->sql);
    pcre2_code_free(r->sql_re);
}

void conf_server_clear(struct conf_server *s)
{
    free(s->name);
    free(s->host);
    free(s->tls_ca_file);
    memset(s, 0, sizeof(*s));
}

static void free_servers(struct conf *c)
{
    for (int i = 0; i < c->nservers; i++)
        conf_server_clear(&c->servers[i]);
    free(c->servers);
}

static int dup_str(char **dst, const char *src)
{
    *dst = NULL;
    return src && !(*dst = strdup(src)) ? -1 : 0;
}

int conf_lane_copy(struct conf_lane *dst, const struct conf_lane *src)
{
    *dst = *src;
    dst->name = NULL;
    dst->settings = NULL;
    dst->nsettings = 0;
    dst->protects = NULL;
    dst->tenant_weights = NULL;
    dst->ntenant_weights = 0;
    if (dup_str(&dst->name, src->name) < 0)
        return -1;
    if (dup_str(&dst->protects, src->protects) < 0)
        goto fail;
    if (src->ntenant_weights > 0) {
        dst->tenant_weights = calloc((size_t)src->ntenant_weights, sizeof(*dst->tenant_weights));
        if (!dst->tenant_weights)
            goto fail;
        for (int i = 0; i < src->ntenant_weights; i++) {
            dst->ntenant_weights++;
            dst->tenant_weights[i] = src->tenant_weights[i];
            dst->tenant_weights[i].id = NULL;
            if (dup_str(&dst->tenant_weights[i].id, src->tenant_weights[i].id) < 0)
                goto fail;
        }
    }
    if (src->nsettings > 0) {
        dst->settings = calloc((size_t)src->nsettings, sizeof(*dst->settings));
        if (!dst->settings)
            goto fail;
        for (int i = 0; i < src->nsettings; i++) {
            dst->nsettings++;
            dst->settings[i].line = src->settings[i].line;
            if (dup_str(&dst->settings[i].name, src->settings[i].name) < 0 ||
                dup_str(&dst->settings[i].value, src->settings[i].value) < 0)
                goto fail;
        }
    }
    return 0;
fail:
    conf_lane_clear(dst);
    return -1;
}

int conf_server_copy(struct conf_server *dst, const struct conf_server *src)
{
    *dst = *src;
    dst->name = dst->host = dst->tls_ca_file = NULL;
    if (dup_str(&dst->name, src->name) < 0 || dup_str(&dst->host, src->host) < 0 ||
        dup_str(&dst->tls_ca_file, src->tls_ca_file) < 0) {
        conf_server_clear(dst);
        return -1;
    }
    return 0;
}

void conf_free(struct conf *c)
{
    if (c == NULL)
        return;
    free(c->file);
    for (int i = 0; i < c->nlisten; i++)
        free(c->listen[i].host);
    free(c->listen);
    free(c->unix_socket_dir);
    free(c->auth_file);
    free(c->default_lane);
    conf_free_list(c->admin_users, c->nadmin_users);
    free(c->metrics_listen);
    free(c->metrics.host);
    free(c->tls_cert_file);
    free(c->tls_key_file);
    free(c->tls_ca_file);
    free(c->tls_protocols);
    free(c->server_check_query);
    free(c->auth_user);
    free(c->auth_query);
    free(c->auth_dbname);
    for (int i = 0; i < c->npeers; i++)
        free(c->peers[i].host);
    free(c->peers);
    free_servers(c);
    for (int i = 0; i < c->nlanes; i++)
        conf_lane_clear(&c->lanes[i]);
    free(c->lanes);
    for (int i = 0; i < c->nroutes; i++)
        free_route(&c->routes[i]);
    free(c->routes);
    free(c);
}

int conf_lane_find(const struct conf *c, const char *name)
{
    for (int i = 0; i < c->nlanes; i++)
        if (strcmp(c->lanes[i].name, name) == 0)
            return i;
    return -1;
}

int conf_server_find(const struct conf *c, const char *name)
{
    for (int i = 0; i < c->nservers; i++)
        if (strcmp(c->servers[i].name, name) == 0)
            return i;
    return -1;
}
