/* Attribution of the backends in the lock graph: pglane knows the backend pid behind each of its
 * server connections, so a pid names a lane, a client and the client's transaction fingerprint. */
#include <stdio.h>

#include "proxy/admin/monitor.h"

void px_monitor_attribute(struct proxy *px, const struct conf_server *server, struct px_block_side *side)
{
    struct px_server *sv = px_pool_find_backend(px, server, side->pid);
    const struct px_client *cl;
    const char *app;

    if (!sv)
        return;                   /* external: keep what pg_stat_activity said */
    side->owned = 1;
    side->lane = sv->pool->lane;
    side->server_id = sv->conn.id;
    cl = sv->client;
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
