/* Admin console: SHOW HEALTH (one row per [server.*]: its role, health and replication lag) and the
 * health cells that end each SHOW SERVERS row. */
#include <stdio.h>

#include "proxy/admin/console.h"

struct health_rows {
    struct px_table *t;
    struct proxy *px;
};

static const char *configured(const struct conf *c, const char *name)
{
    int i = conf_server_find(c, name);

    if (i < 0)
        return "auto";
    return c->servers[i].role == CONF_ROLE_PRIMARY ? "primary" : c->servers[i].role == CONF_ROLE_REPLICA ? "replica"
                                                                                                         : "auto";
}

const char *px_health_state_name(struct proxy *px, const char *server, const struct px_health *h)
{
    if (!px_health_checked(px, server))
        return "unchecked";
    return h->up ? "up" : "down";
}

static void lsn_cell(struct px_table *t, uint64_t lsn)
{
    if (lsn)
        px_table_cell(t, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
    else
        px_table_null(t);
}

static void lag_cell(struct px_table *t, int64_t v)
{
    if (v >= 0)
        px_table_cell(t, "%lld", (long long)v);
    else
        px_table_null(t);
}

static int health_row(const char *name, const struct px_health *h, void *arg)
{
    struct health_rows *r = arg;
    struct px_table *t = r->t;
    uint64_t now = px_now_ms(r->px);

    px_table_cell(t, "%s", name);
    px_table_cell(t, "%s", px_role_name(h->role));
    px_table_cell(t, "%s", configured(r->px->conf, name));
    px_table_cell(t, "%s", px_health_state_name(r->px, name, h));
    lag_cell(t, h->lag_ms);
    lag_cell(t, h->lag_bytes);
    lsn_cell(t, h->lsn);
    lsn_cell(t, h->receive_lsn);
    if (h->checked_ms)
        px_table_cell(t, "%llu", (unsigned long long)(now > h->checked_ms ? now - h->checked_ms : 0));
    else
        px_table_null(t);
    px_table_cell(t, "%llu", (unsigned long long)h->checks);
    px_table_cell(t, "%llu", (unsigned long long)h->failures);
    px_table_cell(t, "%llu", (unsigned long long)h->downs);
    px_table_cell(t, "%llu", (unsigned long long)h->conflicts);
    px_table_cell(t, "%s", px_health_why(r->px, name));
    return 0;
}

void px_show_health(struct px_client *cl, const char *arg)
{
    static const char *const cols[] = {
        "server", "role", "configured_role", "state", "lag_ms", "lag_bytes", "lsn", "receive_lsn", "checked_ms_ago",
        "checks", "failures", "downs", "conflicts", "last_error", NULL
    };
    struct px_table t;
    struct health_rows r = { &t, cl->conn.px };

    (void)arg;
    px_table_begin(&t, cols);
    px_health_foreach(cl->conn.px, health_row, &r);
    px_table_send(&t, cl, "SHOW");
}

void px_health_server_cells(struct px_table *t, struct proxy *px, const char *server)
{
    const struct px_health *h = px_health_get(px, server);

    px_table_cell(t, "%s", server);
    px_table_cell(t, "%s", px_role_name(h->role));
    px_table_cell(t, "%s", px_health_state_name(px, server, h));
    lag_cell(t, h->lag_ms);
    lag_cell(t, h->lag_bytes);
}
