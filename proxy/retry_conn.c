/*
 * Transparent retry, the connection side (issue 20): keeps a transaction's first message(s) until the
 * first reply byte, and resends them on another server connection when the decision of proxy/retry.c
 * says so. Also counts and logs pooled server connections that PostgreSQL ended.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"
#include "proxy/state.h"

/* retry_buf lives in retry_store, which a client keeps between transactions up to this size: one
 * allocation per client instead of a realloc and a free per transaction. */
#define RETRY_KEEP 512u

void px_retry_disarm(struct px_client *cl)
{
    cl->retry_buf = NULL;
    if (cl->retry_cap > RETRY_KEEP)
        px_retry_free(cl);
    cl->retry_len = 0;
    cl->retry_mapped = 0;
    cl->retry_begin_wait = 0;
    cl->retry_after_begin = 0;
    cl->retry_pre_unsent = 0;
}

void px_retry_free(struct px_client *cl)
{
    free(cl->retry_store);
    cl->retry_store = NULL;
    cl->retry_cap = 0;
}

void px_retry_end_tx(struct px_client *cl)
{
    px_retry_disarm(cl);
    cl->retry_begin = 0;
    cl->retry_attempts = 0;
    cl->tx_forwarded = 0;
}

/*
 * Called by forward() before the client's scanned bytes data[start, pos) go to its server: keeps a
 * copy of the first message(s) of a transaction, and of what follows them while no reply has arrived.
 */
void px_retry_arm(struct px_client *cl)
{
    const struct px_buf *b = &cl->conn.in;
    uint32_t n = b->pos - b->start;
    uint8_t *p;

    if (cl->tx_forwarded && !cl->retry_buf)
        return;                      /* a later request of the transaction, or already not retryable */
    if (cl->retry_begin_wait) {
        px_retry_disarm(cl);         /* sent before the BEGIN's ReadyForQuery: no longer only a BEGIN */
        return;
    }
    if (!cl->tx_forwarded) {
        cl->tx_forwarded = 1;
        if (cl->conn.px->conf->pool_mode != CONF_POOL_TRANSACTION || !cl->server || cl->server->tx_status != 'I' ||
            cl->fwd_remain || cl->pins || cl->pool->lane->conf->server_retry <= 0)
            return;                  /* a pinned client's state lives on this connection: never moved */
        cl->retry_begin = cl->tx_route == TXR_BEGIN_REPLAY;   /* the bytes start with a held BEGIN */
    }
    if (b->remain || n == 0 || cl->retry_len + n > PX_RETRY_MAX) {
        px_retry_disarm(cl);         /* streamed or too large: not retried */
        return;
    }
    if (cl->retry_len + n > cl->retry_cap) {
        if (!(p = realloc(cl->retry_store, cl->retry_len + n))) {
            px_retry_disarm(cl);
            return;
        }
        cl->retry_store = p;
        cl->retry_cap = cl->retry_len + n;
    }
    memcpy(cl->retry_store + cl->retry_len, b->data + b->start, n);
    cl->retry_buf = cl->retry_store;
    cl->retry_len += n;
}

static const char *stmt_text(void *ctx, const char *name, size_t *len)
{
    return px_prep_statement_text(ctx, name, len);
}

/*
 * A request that only began the transaction (extended protocol: pgbench -M extended or prepared
 * sends BEGIN as Parse/Bind/Execute/Sync and waits for it) is answered: its reply reaches the client,
 * but nothing of the transaction ran. Its bytes are replaced by a simple Query of the same BEGIN,
 * resent like a held BEGIN (its reply swallowed) ahead of the request that follows, if that one's
 * server turns out dead before answering. 0, or -1 if it is not such a request.
 */
static int keep_as_begin(struct px_client *cl)
{
    const char *sql;
    size_t len;
    struct proto_buf q;
    size_t start;

    if (cl->retry_begin || !px_retry_begin_request(cl->retry_buf, cl->retry_len, stmt_text, cl, &sql, &len))
        return -1;
    proto_buf_init(&q);
    start = proto_msg_begin(&q, PROTO_FE_QUERY);
    proto_put_bytes(&q, sql, len);
    proto_put_u8(&q, 0);
    proto_msg_end(&q, start);
    if (q.failed || q.len > PX_RETRY_MAX) {
        proto_buf_free(&q);
        return -1;
    }
    free(cl->retry_store);
    cl->retry_store = cl->retry_buf = q.data;   /* proto_buf's data is malloc'd: ownership passes */
    cl->retry_cap = (uint32_t)q.len;
    cl->retry_len = (uint32_t)q.len;
    cl->retry_begin = 1;
    cl->retry_mapped = 0;
    cl->retry_begin_wait = 1;
    return 0;
}

void px_retry_on_reply(struct px_client *cl, uint8_t type)
{
    cl->retry_pre_unsent = 0;        /* this reply decides for the ones held back before it too */
    if (cl->retry_begin_wait) {
        /* The rest of the BEGIN's reply: its ReadyForQuery decides. */
        if (type == PROTO_BE_READY && cl->server && cl->server->tx_status == 'T') {
            cl->retry_begin_wait = 0;
            cl->retry_after_begin = 1;
        } else if (type == PROTO_BE_READY || type == PROTO_BE_ERROR) {
            px_retry_disarm(cl);
        }
        return;
    }
    if (cl->retry_after_begin || keep_as_begin(cl) < 0)
        px_retry_disarm(cl);
}

void px_retry_forwarding(struct px_client *cl)
{
    cl->retry_pre_unsent = 0;
    if (cl->retry_buf)
        px_retry_on_reply(cl, PROTO_BE_PARSE_COMPLETE);
}

static const char *const lost_names[PX_LOST_REASONS] = { "idle_error", "idle_closed", "dead_on_use",
                                                                 "check_failed" };

const char *px_lost_reason_name(int r)
{
    return r >= 0 && r < PX_LOST_REASONS ? lost_names[r] : "?";
}

void px_server_lost(struct px_server *sv, enum px_lost_reason reason, const char *detail)
{
    struct px_lane *lane = sv->pool->lane;

    lane->stats.lost[reason]++;
    px_info("S-%llu server \"%s\" backend pid %u lost (%s): %s", (unsigned long long)sv->conn.id,
            sv->pool->ep->server->name, sv->backend_pid, lost_names[reason], detail ? detail : "");
}

/* A server fault that a resend could have hidden reaches the client: why, in the log (info). 0. */
static int not_resent(const struct px_client *cl, int fault, const char *severity, const char *sqlstate,
                      const char *why)
{
    if (fault == PX_RF_CLOSED || px_retry_fault_error(severity, sqlstate))
        px_info("C-%llu server fault relayed, not resent: %s", (unsigned long long)cl->conn.id, why);
    return 0;
}

/* Closes sv and puts cl, whose unanswered bytes are in its buffer, back in its lane's queue. */
static void requeue(struct px_client *cl, struct px_server *sv, const char *why)
{
    struct px_pool *pool = sv->pool;

    px_server_close(sv, why);
    cl->server = NULL;
    px_client_set_state(cl, CL_WAITING);
    px_pool_acquire(pool, cl);
}

/*
 * sv died under cl's first message(s) (fault: PX_RF_ERROR with the error's fields, or PX_RF_CLOSED):
 * if the decision says so, closes sv, puts the kept bytes back in front of the client's scanned bytes
 * and queues the client for another server connection. Returns 1 if retried (sv is closed, the
 * caller must not touch it further), 0 to relay the fault as before.
 */
int px_retry_try(struct px_server *sv, int fault, const char *severity, const char *sqlstate, const char *detail)
{
    struct px_client *cl = sv->client;
    struct px_pool *pool = sv->pool;
    struct px_retry_case c;
    struct px_buf *b;
    int pooled;

    if (!cl || cl->state != CL_ACTIVE)
        return 0;
    if (sv->shape_wait && !cl->tx_forwarded && !cl->conn.writing && !cl->terminating && !sv->guard_for) {
        /* It died under pglane's result-shape probe: nothing of the client's went to it. */
        px_server_lost(sv, PX_LOST_DEAD_ON_USE, detail);
        px_info("C-%llu server connection lost before the client's request was sent: queued again",
                (unsigned long long)cl->conn.id);
        requeue(cl, sv, "died under pglane's own statement check: the client's request goes elsewhere");
        return 1;
    }
    /* sv->guard_for: pglane's contention guard ended this backend on purpose; running the request
     * again would defeat it. */
    if (!cl->retry_buf || cl->conn.writing || cl->terminating || sv->guard_for)
        return not_resent(cl, fault, severity, sqlstate,
                          !cl->retry_buf ? "not the transaction's first message(s), or already answered in part"
                          : cl->conn.writing ? "a write to the client was in flight"
                          : cl->terminating ? "the client is terminating" : "ended by the guard");
    c = (struct px_retry_case){ .kind = cl->retry_after_begin ? PX_RK_AFTER_BEGIN
                                      : cl->retry_mapped     ? PX_RK_FIRST_MAPPED
                                                             : PX_RK_FIRST,
                                .reply_seen = cl->retry_begin_wait, .fault = fault, .severity = severity,
                                .sqlstate = sqlstate, .attempts = cl->retry_attempts,
                                .limit = pool->lane->conf->server_retry };
    if (px_retry_decide(&c) != PX_RETRY_AGAIN)
        return not_resent(cl, fault, severity, sqlstate,
                          c.reply_seen ? "the BEGIN's reply had begun"
                          : c.attempts >= c.limit ? "server_retry used up" : "not a retryable fault");
    if (cl->retry_after_begin) {
        uint32_t held = 1 + proto_get_u32(cl->retry_buf + 1);

        if (!px_retry_after_begin_ok(cl->retry_buf + held, cl->retry_len - held))
            return 0;                /* it names what only the original BEGIN request created */
    }
    b = &cl->conn.in;
    if (px_buf_reserve(b, cl->retry_len) < 0)
        return 0;
    memmove(b->data + b->start + cl->retry_len, b->data + b->start, b->len - b->start);
    memcpy(b->data + b->start, cl->retry_buf, cl->retry_len);
    b->pos += cl->retry_len;
    b->len += cl->retry_len;
    if (cl->retry_begin && cl->retry_len > PROTO_HEADER_LEN) {
        cl->held_begin = 1 + proto_get_u32(cl->retry_buf + 1);   /* replayed (its reply swallowed) again */
        px_client_set_tx_route(cl, TXR_BEGIN_HELD_DECIDED);
    }
    if (cl->retry_mapped)
        cl->prep_batch = 1;          /* the statement names are mapped again for the next server */
    px_prep_undo_sent(sv);
    px_retry_disarm(cl);
    /* A connection that had waited in the pool and is found dead as well does not use up an attempt
     * (a kill of many idle backends at once, a restart): each one found dead is closed, so the pool
     * runs out of them; connections opened since count. */
    pooled = sv->idle_since_ms != 0;
    if (!pooled)
        cl->retry_attempts++;
    cl->tx_forwarded = 0;
    pool->lane->stats.retries++;
    px_server_lost(sv, PX_LOST_DEAD_ON_USE, detail);
    px_info("C-%llu transaction's first message(s)%s resent on another server connection (%s; %d of %d attempts used)",
            (unsigned long long)cl->conn.id, c.kind == PX_RK_AFTER_BEGIN ? ", after its BEGIN," : "",
            pooled ? "it had waited in the pool" : "a new one", cl->retry_attempts, pool->lane->conf->server_retry);
    requeue(cl, sv, "died before answering: retrying the client's request elsewhere");
    return 1;
}
