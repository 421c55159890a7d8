/* Freeing a loaded configuration, and lookups by name. */
#include <stdlib.h>
#include <string.h>

#include "conf/internal.h"

static void free_lane(struct conf_lane *l)
{
    free(l->name);
    for (int i = 0; i < l->nsettings; i++) {
        free(l->settings[i].name);
        free(l->settings[i].value);
    }
    free(l->settings);
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
}

static void free_servers(struct conf *c)
{
    for (int i = 0; i < c->nservers; i++) {
        free(c->servers[i].name);
        free(c->servers[i].host);
        free(c->servers[i].tls_ca_file);
    }
    free(c->servers);
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
    free_servers(c);
    for (int i = 0; i < c->nlanes; i++)
        free_lane(&c->lanes[i]);
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
