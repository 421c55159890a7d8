/*
 * Proxy-side client timeouts, PgBouncer's keys and meanings, checked by the maintenance tick (so they
 * act within a second of their limit):
 *
 * - client_idle_timeout: a logged-in client that sends nothing between transactions for this long is
 *   closed with FATAL 57P05 (PostgreSQL's idle_session_timeout code).
 * - idle_transaction_timeout ([pglane], overridden by a lane's own): a client idle inside a
 *   transaction (its server's last ReadyForQuery said 'T' or 'E', nothing in flight) for this long:
 *   pglane closes the server connection (PostgreSQL rolls the transaction back), which frees the
 *   lane's slot for the queue, and closes the client with FATAL 25P03 (PostgreSQL's
 *   idle_in_transaction_session_timeout code). A bare BEGIN that pglane holds counts as a transaction.
 */
#include <stdio.h>

#include "proxy/client_internal.h"
#include "proxy/proxy.h"
#include "proxy/state.h"

enum idleness { BUSY, IDLE, IDLE_IN_TX };

static int input_pending(const struct px_client *cl)
{
    return cl->conn.in.pos < cl->conn.in.len || cl->conn.in.remain || cl->discard;
}

static enum idleness idleness(const struct px_client *cl)
{
    const struct px_server *sv = cl->server;

    if (input_pending(cl) || cl->conn.writing)
        return BUSY;
    if (cl->state == CL_IDLE)
        return cl->held_begin ? IDLE_IN_TX : IDLE;
    if (cl->state != CL_ACTIVE || !sv || sv->state != SV_ACTIVE)
        return BUSY;
    if (cl->pending_z || cl->unsynced || !px_flow_idle(cl) || sv->swallow_z || sv->checking || sv->replay_wait ||
        sv->ncancels || sv->conn.writing || sv->conn.in.pos < sv->conn.in.len || sv->prepq.n)
        return BUSY;
    if (sv->tx_status == 'T' || sv->tx_status == 'E')
        return IDLE_IN_TX;
    return sv->tx_status == 'I' ? IDLE : BUSY;
}

/* The idle_transaction_timeout in force for cl's transaction: its lane's own, else [pglane]'s. */
static int64_t tx_limit(struct proxy *px, const struct px_client *cl, const char **lane)
{
    const struct px_lane *l = NULL;

    if (cl->server)
        l = cl->server->pool->lane;
    else if (px_tx_route_decided(cl->tx_route) && cl->lane >= 0 && cl->lane < px->nlanes)
        l = px->lanes[cl->lane];
    *lane = l ? l->conf->name : NULL;
    if (l && l->conf->idle_transaction_timeout_ms >= 0)
        return l->conf->idle_transaction_timeout_ms;
    return px->conf->idle_transaction_timeout_ms;
}

static void end_idle_transaction(struct px_client *cl, int64_t limit, const char *lane)
{
    struct px_server *sv = cl->server;
    char msg[256];

    snprintf(msg, sizeof(msg), "pglane: idle_transaction_timeout (%lld ms)%s%s%s: the transaction was idle too long; "
             "it is rolled back and the connection closed", (long long)limit, lane ? " in lane \"" : "",
             lane ? lane : "", lane ? "\"" : "");
    CLOG(cl, CONF_LOG_WARNING, "%s", msg);
    if (sv) {
        struct px_pool *pool = sv->pool;

        px_server_close(sv, "idle_transaction_timeout: closed to roll back its client's transaction");
        px_client_fail(cl, "25P03", msg);
        px_pool_refill(pool);          /* the slot serves the lane's queue */
        return;
    }
    px_client_fail(cl, "25P03", msg);
}

void px_client_timeouts(struct proxy *px, uint64_t now_ms)
{
    int64_t idle_limit = px->conf->client_idle_timeout_ms;
    struct px_list *it, *next;

    for (it = px->clients.next; it != &px->clients; it = next) {
        struct px_client *cl = px_container_of(it, struct px_client, link);
        uint64_t since = cl->idle_since_ms > cl->connect_ms ? cl->idle_since_ms : cl->connect_ms;
        enum idleness how;
        const char *lane;
        int64_t limit;

        next = it->next;
        if (cl->state == CL_CLOSED || cl->admin || (how = idleness(cl)) == BUSY || now_ms < since)
            continue;
        if (how == IDLE_IN_TX) {
            limit = tx_limit(px, cl, &lane);
            if (limit > 0 && now_ms - since >= (uint64_t)limit)
                end_idle_transaction(cl, limit, lane);
            continue;
        }
        if (idle_limit > 0 && now_ms - since >= (uint64_t)idle_limit) {
            char msg[160];

            snprintf(msg, sizeof(msg), "pglane: client_idle_timeout (%lld ms): the client sent nothing for too long",
                     (long long)idle_limit);
            CLOG(cl, CONF_LOG_INFO, "%s", msg);
            px_client_fail(cl, "57P05", msg);
        }
    }
}
