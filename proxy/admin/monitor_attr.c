/* Attribution of the backends in the lock graph: pglane knows the backend pid behind each of its
 * server connections, so a pid names a lane, a client and the client's transaction fingerprint.
 * Each row of a sample becomes an edge here, its queries normalised. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/monitor.h"
#include "routing/route.h"

void px_monitor_attribute(struct proxy *px, const struct conf_server *server, struct px_block_side *side)
{
    struct px_server *sv = px_pool_find_backend(px, server, side->pid);
    const struct px_client *cl;
    const char *app;
    char lane[64];

    if (!sv) {
        /* Another worker's backend: its lane (this worker's lane of that name) is known, its client
         * is not; external otherwise, with what pg_stat_activity said. */
        if (px_workers_backend_find(px, server->name, side->pid, lane, sizeof(lane)) >= 0)
            for (int i = 0; i < px->nlanes && !side->owned; i++)
                if (strcmp(px->lanes[i]->conf->name, lane) == 0) {
                    side->owned = side->remote = 1;
                    side->lane = px->lanes[i];
                }
        return;
    }
    side->owned = 1;
    side->lane = sv->pool->lane;
    side->server_id = sv->conn.id;
    cl = sv->client;
    /* PostgreSQL hides another role's backend state from a user without pg_read_all_stats: pglane's
     * own view of its connection then says whether it idles inside a transaction (what the guard
     * terminates rather than cancels). */
    if (!side->state[0])
        snprintf(side->state, sizeof(side->state), "%s",
                 (sv->tx_status == 'T' || sv->tx_status == 'E') && (!cl || cl->pending_z == 0) ? "idle in transaction"
                                                                                                : "active");
    if (!cl)
        return;
    app = cl->want.v[PX_P_APPLICATION_NAME];
    side->client_id = cl->conn.id;
    side->fingerprint = cl->fingerprint;
    side->tx_us = cl->tx_begin_us;
    if (cl->query_start_us) {
        uint64_t now = px_now_us();

        side->running_ms = now > cl->query_start_us ? (int64_t)((now - cl->query_start_us) / 1000) : 0;
    }
    px_client_addr(cl, side->addr, sizeof(side->addr));
    snprintf(side->user, sizeof(side->user), "%s", cl->user ? cl->user : "");
    snprintf(side->app, sizeof(side->app), "%s", app ? app : "");
}

static void copy_text(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/*
 * pg_stat_activity.query normalised as SHOW QUERIES shows statements (literals and parameters become
 * "?", comments go): SHOW BLOCKING never shows an admin a literal such as a card number in a WHERE
 * clause, whatever that admin's rights in PostgreSQL. PostgreSQL's "<insufficient privilege>" is kept.
 */
static void copy_query(char *dst, size_t cap, const char *src)
{
    struct route_scan scan;

    if (!src || strcmp(src, "<insufficient privilege>") == 0)
        copy_text(dst, cap, src);
    else
        route_scan(src, strlen(src), &scan, dst, cap);
}

/* One row of sample_sql (monitor.c) into an edge, attributed to pglane's lanes and clients. */
void px_monitor_row_to_edge(struct proxy *px, const char *server, const struct conf_server *cs, PGresult *r,
                            int i, struct px_block_edge *e)
{
    memset(e, 0, sizeof(*e));
    e->server = server;
    e->waiter.pid = (uint32_t)strtoul(PQgetvalue(r, i, 0), NULL, 10);
    e->blocker.pid = (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10);
    copy_text(e->mode, sizeof(e->mode), PQgetvalue(r, i, 2));
    copy_text(e->relation, sizeof(e->relation), PQgetvalue(r, i, 3));
    e->wait_ms = strtoll(PQgetvalue(r, i, 4), NULL, 10);
    copy_text(e->waiter.state, sizeof(e->waiter.state), PQgetvalue(r, i, 5));
    copy_query(e->waiter.query, sizeof(e->waiter.query), PQgetvalue(r, i, 6));
    copy_text(e->waiter.user, sizeof(e->waiter.user), PQgetvalue(r, i, 7));
    copy_text(e->waiter.app, sizeof(e->waiter.app), PQgetvalue(r, i, 8));
    copy_text(e->waiter.addr, sizeof(e->waiter.addr), PQgetvalue(r, i, 9));
    copy_text(e->blocker.state, sizeof(e->blocker.state), PQgetvalue(r, i, 10));
    copy_query(e->blocker.query, sizeof(e->blocker.query), PQgetvalue(r, i, 11));
    copy_text(e->blocker.user, sizeof(e->blocker.user), PQgetvalue(r, i, 12));
    copy_text(e->blocker.app, sizeof(e->blocker.app), PQgetvalue(r, i, 13));
    copy_text(e->blocker.addr, sizeof(e->blocker.addr), PQgetvalue(r, i, 14));
    e->blocker_waits = strcmp(PQgetvalue(r, i, 15), "1") == 0;
    if (cs) {
        px_monitor_attribute(px, cs, &e->waiter);
        px_monitor_attribute(px, cs, &e->blocker);
    }
}
