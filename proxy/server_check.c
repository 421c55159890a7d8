/*
 * The check of a pooled server connection before reuse (PgBouncer's server_check_delay and
 * server_check_query): a connection that sat idle in its pool for server_check_delay or longer runs
 * server_check_query (an empty Query by default: EmptyQueryResponse and ReadyForQuery) before a client
 * gets it, while the client waits in the lane's queue. A connection that fails the check (an error, the
 * connection closed, no answer within the lane's server_connect_timeout) is closed and counted
 * (pglane_server_connections_lost_total{reason="check_failed"}); the client gets another connection
 * and never sees the dead one. The answer is read by proxy/server.c (idle_read).
 */
#include <string.h>

#include "proxy/proxy.h"
#include "proxy/server_internal.h"
#include "proxy/state.h"

int px_server_check_due(const struct px_server *sv, uint64_t now_ms)
{
    int64_t delay = sv->conn.px->conf->server_check_delay_ms;

    return now_ms >= sv->idle_since_ms && now_ms - sv->idle_since_ms >= (uint64_t)delay;
}

int px_server_check_start(struct px_server *sv)
{
    const char *q = sv->conn.px->conf->server_check_query ? sv->conn.px->conf->server_check_query : "";

    px_server_set_state(sv, SV_CHECKING);   /* idle -> busy: counted as a connection on its way */
    sv->check_start_ms = px_now_ms(sv->conn.px);
    SLOG(sv, CONF_LOG_DEBUG, "checking a connection idle for %llu ms (server_check_delay)",
         (unsigned long long)(sv->check_start_ms - sv->idle_since_ms));
    if (send_own_query(sv, q, strlen(q)) < 0) {
        px_server_check_failed(sv, "cannot send server_check_query");
        return -1;
    }
    px_conn_read_start(&sv->conn);
    return 0;
}

void px_server_check_failed(struct px_server *sv, const char *detail)
{
    struct px_pool *pool = sv->pool;

    px_server_lost(sv, PX_LOST_CHECK_FAILED, detail);
    px_server_close(sv, "server_check_query failed");
    px_pool_refill(pool);
}
