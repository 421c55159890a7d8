/*
 * Client connections (proxy/client.c): the relay. The client's messages, once scanned
 * (client_scan.c, client_route.c), are forwarded to whatever server connection its pool hands it, one
 * transaction (transaction pooling) or one session (session pooling) at a time; then the transaction
 * ends, the client waits for its next one, and finally closes. Startup and login are in
 * client_startup.c and client_auth.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/stages.h"
#include "proxy/client_internal.h"
#include "proxy/proxy.h"
#include "proxy/state.h"

void client_send(struct px_client *cl, struct proto_buf *b)
{
    if (b->failed || px_conn_send_copy(&cl->conn, b->data, b->len) < 0)
        px_client_close(cl, "cannot write to client");
    proto_buf_free(b);
}

/* A FATAL ErrorResponse, then the connection is closed once it is written. */
void client_fatal(struct px_client *cl, const char *sqlstate, const char *message)
{
    client_fatal_detail(cl, sqlstate, message, NULL);
}

void client_fatal_detail(struct px_client *cl, const char *sqlstate, const char *message, const char *detail)
{
    struct proto_buf b;

    CLOG(cl, CONF_LOG_INFO, "closing: %.300s%s%.300s (%s)", message, detail ? ": " : "", detail ? detail : "",
         sqlstate);
    proto_buf_init(&b);
    proto_build_error(&b, "FATAL", sqlstate, message, detail, NULL);
    if (!b.failed)
        (void)px_conn_send_copy(&cl->conn, b.data, b.len);
    proto_buf_free(&b);
    px_client_close(cl, message);
}

void px_client_fail(struct px_client *cl, const char *sqlstate, const char *message)
{
    client_fatal(cl, sqlstate, message);
}

void px_client_fail_raw(struct px_client *cl, const uint8_t *msg, uint32_t len)
{
    (void)px_conn_send_copy(&cl->conn, msg, len);
    px_client_close(cl, "server error");
}

/* The client's stream calls these (proxy/net/stream.h). */
static void stream_read(struct px_conn *c)
{
    px_client_on_read((struct px_client *)c);
}

static void stream_eof(struct px_conn *c, int status)
{
    px_client_on_eof((struct px_client *)c, status);
}

static void stream_sent(struct px_conn *c)
{
    px_client_on_sent((struct px_client *)c);
}

static void stream_closed(struct px_conn *c)
{
    px_client_free((struct px_client *)c);
}

/* The stream whose bytes the client's writes carry: its server's. */
static struct px_conn *stream_peer(struct px_conn *c)
{
    struct px_server *sv = ((struct px_client *)c)->server;

    return sv ? &sv->conn : NULL;
}

static const struct px_stream_ops client_stream_ops = {
    .tag = 'C', .on_read = stream_read, .on_eof = stream_eof, .on_sent = stream_sent,
    .on_closed = stream_closed, .peer = stream_peer,
};

void px_client_accept(struct proxy *px, uv_stream_t *listener)
{
    struct px_client *cl = calloc(1, sizeof(*cl));
    int r;

    if (!cl)
        return;
    px_conn_init(px, &cl->conn, &client_stream_ops);
    px_list_init(&cl->wait_link);
    r = px_sock_init_like(px->loop, listener, &cl->conn.h);
    if (r < 0) {
        free(cl);
        return;
    }
    _Static_assert(CL_STARTUP == 0, "a client starts in CL_STARTUP as calloc leaves it");
    cl->connect_ms = px_now_ms(px);
    px_list_append(&px->clients, &cl->link);
    px->nclients++;
    px_worker_count_accept(px);
    if (uv_accept(listener, &cl->conn.h.stream) < 0) {
        px_client_close(cl, "accept failed");
        return;
    }
    px_sock_set_options(&cl->conn.h, px->conf);
    px_sock_peer(&cl->conn.h, &cl->peer_family, cl->peer_addr, &cl->peer_port);
    /* Over max_client_conn: answered after the startup packet, where libpq expects an error. */
    cl->over_limit = px_workers_clients(px) > px->conf->max_client_conn;
    px_conn_read_start(&cl->conn);
}

const char *px_client_addr(const struct px_client *cl, char *buf, size_t n)
{
    return px_sock_addr_name(cl->peer_family, cl->peer_addr, buf, n);
}

struct px_client *px_client_by_cancel_key(struct proxy *px, uint32_t pid, uint32_t key)
{
    for (struct px_list *it = px->clients.next; it != &px->clients; it = it->next) {
        struct px_client *cl = px_container_of(it, struct px_client, link);

        if (cl->cancel_pid == pid && cl->cancel_key == key && cl->state != CL_STARTUP)
            return cl;
    }
    return NULL;
}

/* Simple-protocol commands of the admin console, one answer each. */
static void admin_read(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;
    struct proto_frame f;
    const char *err;
    size_t used;
    int r;

    while (cl->state == CL_ADMIN && b->pos < b->len) {
        r = proto_frame_next(b->data + b->pos, b->len - b->pos, PROTO_PHASE_FRONTEND, &f, &used, &err);
        if (r == PROTO_FRAME_NEED_MORE) {
            if (px_buf_reserve(b, PROTO_HEADER_LEN + 1) < 0)
                client_fatal(cl, "54000", "pglane: admin command too long");
            return;
        }
        if (r == PROTO_FRAME_ERROR) {
            client_fatal(cl, "08P01", err);
            return;
        }
        b->pos += (uint32_t)used;
        b->start = b->pos;
        if (f.type == PROTO_FE_TERMINATE) {
            px_client_close(cl, "client terminated");
            return;
        }
        if (f.type != PROTO_FE_QUERY || f.len == 0) {
            struct proto_buf out;

            proto_buf_init(&out);
            proto_build_error(&out, "ERROR", "0A000", "pglane admin console: only simple queries are supported",
                              NULL, "Use psql, or PQexec without parameters.");
            if (f.type == PROTO_FE_SYNC || f.type == PROTO_FE_QUERY)
                proto_build_ready(&out, 'I');
            client_send(cl, &out);
            continue;
        }
        px_admin_query(cl, (const char *)f.body, f.len - 1);
    }
    if (cl->state == CL_ADMIN && b->start == b->len)
        px_buf_release(b);
}

/* The pool of the lane chosen for the client's next transaction (or session). */
struct px_pool *client_lane_pool(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;
    struct px_lane *lane = px->lanes[cl->lane];
    struct px_pool *pool;
    int refused;

    if (lane->neps > 1) {              /* several servers: proxy/replica.c picks one */
        if (!(pool = px_replica_pool(cl, lane, &refused)))
            return NULL;
    } else if (cl->pool && cl->pool->lane == lane) {
        return cl->pool;
    } else {
        pool = px_pool_get(px, lane, cl->database, cl->user);
    }
    if (pool && cl->authq_secret)   /* the user is not in auth_file; a login brings the latest secret */
        px_authq_pool_secret(pool, cl->authq_secret, cl->state <= CL_AUTH_SASL_FINAL);
    return pool;
}

/* client_lane_pool gave nothing: max_pools reached (53300) or out of memory. */
void client_no_pool(struct px_client *cl)
{
    const char *sqlstate, *message;

    if (cl->state == CL_CLOSED || cl->rq_since_ms)
        return;                        /* refused, or queued for a replica (proxy/replica.c) */
    px_pool_get_error(cl->conn.px, &sqlstate, &message);
    client_fatal(cl, sqlstate, message);
}

/* The place (flow.pushed) of the first message that begins in the scanned bytes: the messages there
 * are the last ones scanned, whatever was dropped unsent before them. */
static uint64_t pass_first_place(const struct px_client *cl)
{
    const struct px_buf *b = &cl->conn.in;
    uint32_t off = b->start + (cl->fwd_remain < b->pos - b->start ? cl->fwd_remain : b->pos - b->start);
    uint64_t n = 0;

    while (b->pos - off > PROTO_HEADER_LEN - 1) {
        n++;
        off += 1 + proto_get_u32(b->data + off + 1);
        if (off >= b->pos)
            break;
    }
    return cl->flow.pushed - n + 1;
}

/* Forwards the scanned bytes: straight from the buffer, or through the prepared-statement mapping. */
static int forward(struct px_client *cl)
{
    uint64_t st;
    int r;

    if (cl->conn.writing)
        return 0;
    px_retry_arm(cl);                  /* before tx_route and fwd_remain change */
    cl->pass_ord = pass_first_place(cl) - 1;
    st = PX_STAGE_ON(cl->conn.id) ? px_stage_now() : 0;
    if (cl->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION && px_prep_needed(cl)) {
        if (cl->retry_buf)
            cl->retry_mapped = 1;      /* the client's bytes are kept, mapped again when resent */
        r = px_prep_forward(cl) < 0 ? UV_EIO : 0;   /* its bytes are consumed either way */
        if (st)
            px_stage_add(PX_ST_PREPARED, st);
    } else {
        if (cl->tx_route == TXR_BEGIN_REPLAY)
            px_client_set_tx_route(cl, TXR_LANE_DECIDED);
        cl->fwd_remain = cl->conn.in.remain;
        px_flow_mark_raw(cl);
        if (cl->unnamed_parsed)
            px_unnamed_parse_sent(cl->server, cl, cl->pass_ord, cl->flow.pushed);
        r = px_forward(&cl->conn, &cl->server->conn);
        if (st)
            px_stage_add(PX_ST_SERVER_WRITE, st);
    }
    if (r == 0 && cl->cancel_deferred && cl->server) {
        cl->cancel_deferred = 0;           /* a cancel that came during the statement check */
        if (px_cancel_backend(cl->conn.px, cl->server) == 0)
            CLOG(cl, CONF_LOG_INFO, "%s", "cancel forwarded behind the request it was meant for");
    }
    cl->fwd_ord = cl->flow.pushed;
    cl->fwd_unsynced = cl->unsynced;
    if (st)
        px_stage_sent();
    if (r < 0 && cl->retry_buf && cl->server && cl->state == CL_ACTIVE) {
        /* The bytes are kept: the server connection died under the transaction's first message
         * (a write fails at once when PostgreSQL's reset has already arrived). Not when pglane
         * itself ended the session meanwhile (a prepared-statement limit: no server left). */
        cl->conn.in.start = cl->conn.in.pos;
        if (px_retry_try(cl->server, PX_RF_CLOSED, NULL, NULL, r == UV_EIO ? "write failed" : uv_strerror(r)))
            return 0;
    }
    return r;
}

/* pglane checks the session the client's last transaction left: what the client sends waits. */
static int held_for_check(struct px_client *cl)
{
    if (cl->state != CL_ACTIVE || !cl->server ||
        !(cl->server->checking || cl->server->replay_wait || cl->server->ryw_wait || cl->server->restoring ||
          cl->server->shape_wait))
        return 0;
    px_conn_read_stop(&cl->conn);
    return 1;
}

/* Whether the scanned bytes are only whole messages that get no reply outside COPY IN. */
static int only_silent(const struct px_buf *b)
{
    uint32_t off = b->start;

    if (b->remain || off == b->pos)
        return 0;
    while (off < b->pos) {
        uint8_t t = b->data[off];

        if ((t != PROTO_FE_FLUSH && t != PROTO_FE_COPY_DATA && t != PROTO_FE_COPY_DONE && t != PROTO_FE_COPY_FAIL) ||
            b->pos - off < PROTO_HEADER_LEN)
            return 0;
        off += 1 + proto_get_u32(b->data + off + 1);
    }
    return off == b->pos;
}

/* A Flush then a Terminate; the Terminate alone is its second half. */
static const uint8_t flush_terminate[2 * PROTO_HEADER_LEN] = { PROTO_FE_FLUSH, 0, 0, 0, 4, PROTO_FE_TERMINATE, 0, 0, 0, 4 };
#define TERMINATE_MSG (flush_terminate + PROTO_HEADER_LEN)

/* Appends messages of pglane's own to the client's input (to be scanned as if the client had sent
 * them). 0, or -1 when there is no room and none can be made (a write from the buffer in flight). */
static int input_append(struct px_client *cl, const uint8_t *msgs, uint32_t n)
{
    struct px_buf *b = &cl->conn.in;

    if (b->cap - b->len < n && (cl->conn.writing || px_buf_reserve(b, n) < 0))
        return -1;                 /* (no buffer at all: cap is 0, and one is taken) */
    memcpy(b->data + b->len, msgs, n);
    b->len += n;
    return 0;
}

/*
 * After a Terminate: closes the client once the server has answered everything it was sent, as
 * PostgreSQL closes after its last reply (the server connection then goes back to the pool if the
 * client left nothing open, else it is closed, which rolls back as the end of a session does).
 * Replies to messages after the last Sync, Flush, Query or FunctionCall are not waited for:
 * PostgreSQL never sends them. A server reading COPY data gets the Terminate itself and closes.
 * Returns 1 if the client was closed.
 */
int px_client_check_terminate(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;
    struct px_server *sv = cl->server;

    if (!cl->terminating)
        return 0;
    if (cl->state == CL_IDLE) {
        if (b->pos != b->start + cl->held_begin)
            return 0;
    } else if (cl->state != CL_ACTIVE || !sv || cl->terminate_sent || cl->conn.writing) {
        return 0;
    } else if (px_flow_copy_in(cl)) {
        /* PostgreSQL fails the COPY (08P01) and ends the session: let it, and relay what it says.
         * The end of the client's stream reaches it as the end of its own. */
        cl->terminate_sent = 1;
        if (cl->eof_terminate && !sv->conn.tls ? px_conn_shutdown(&sv->conn) < 0
                                               : px_conn_send_copy(&sv->conn, TERMINATE_MSG, PROTO_HEADER_LEN) < 0) {
            px_client_close(cl, "write to server failed");
            return 1;
        }
        return 0;
    } else if (b->pos != b->start || b->remain || cl->pending_z || px_flow_owes_flushed(cl) || sv->conn.writing ||
               sv->conn.in.start != sv->conn.in.pos) {
        return 0;
    }
    if (cl->fatal_pending)
        client_fatal(cl, "08P01", cl->fatal_msg);
    else
        px_client_close(cl, "client terminated");
    return 1;
}

/*
 * A malformed message (an unknown type, a bad length or body) ends the session with 08P01, as in
 * PostgreSQL, which first carries out and answers what came before it: the bytes from the refused
 * message on are replaced by a Flush (when extended-protocol messages before it wait for a Sync:
 * PostgreSQL's FATAL flushes their replies) and a Terminate, and fatal_msg is sent in place of the
 * plain close. Before login, in COPY, or with nothing before it: at once.
 */
static void fatal_after_work(struct px_client *cl, const char *msg)
{
    struct px_buf *b = &cl->conn.in;
    uint32_t at = cl->bad_at, n = cl->unsynced ? 2 * PROTO_HEADER_LEN : PROTO_HEADER_LEN;

    if ((cl->state != CL_IDLE && cl->state != CL_ACTIVE) || cl->terminating || cl->discard || cl->skip_sync ||
        px_flow_copy_in(cl) || at < b->start || at > b->len || (at == b->start && !cl->pending_z && !cl->unsynced)) {
        client_fatal(cl, "08P01", msg);
        return;
    }
    b->pos = b->len = at;
    b->remain = 0;
    if (input_append(cl, flush_terminate + 2 * PROTO_HEADER_LEN - n, n) < 0) {
        client_fatal(cl, "08P01", msg);
        return;
    }
    /* msg may live in a buffer the next scan rewrites; a copy is kept (clients rarely need one) */
    free(cl->fatal_msg);
    if (!(cl->fatal_msg = strdup(msg))) {
        client_fatal(cl, "08P01", msg);
        return;
    }
    cl->fatal_pending = 1;
    px_client_on_read(cl);
}

static int waits_for_others(const struct px_client *cl);
static int end_stream(struct px_client *cl);

/*
 * A message length PostgreSQL cannot take (below 4, or above its type's limit) is for PostgreSQL the
 * end of the client's stream: it carries out and answers what came before, then closes without a
 * message (the error goes to its log only). So does pglane: the stream ends where that message begins,
 * as at a half-close (end_stream); at once when that is not possible (TLS, a message being skipped...).
 */
static void end_at_bad_length(struct px_client *cl, const char *why)
{
    struct px_buf *b = &cl->conn.in;

    CLOG(cl, CONF_LOG_INFO, "closing: %s (08P01; the client is told nothing, as by PostgreSQL)", why);
    px_conn_read_stop(&cl->conn);
    if (cl->bad_at >= b->start && cl->bad_at <= b->len && !cl->discard && !cl->skip_sync && !cl->terminating) {
        b->pos = b->len = cl->bad_at;
        b->remain = 0;
        if (end_stream(cl))
            return;
    }
    px_client_close(cl, why);
}

void px_client_pump(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;

    if (cl->state == CL_CLOSED || held_for_check(cl))
        return;
    if (cl->state == CL_IDLE && !cl->held_begin && only_silent(b)) {
        /* Flush or stray COPY messages with nothing before them: PostgreSQL answers nothing. */
        b->start = b->pos;
    }
    if (b->pos > b->start + (cl->state == CL_IDLE ? cl->held_begin : 0)) {
        if (cl->state == CL_IDLE) {
            struct px_pool *pool;

            if (cl->conn.px->draining) {
                client_fatal(cl, "57P01", "pglane is shutting down");
                return;
            }
            if (cl->prep_batch && cl->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION) {
                uint64_t st = PX_STAGE_ON(cl->conn.id) ? px_stage_now() : 0;
                int r = px_prep_answer_locally(cl);

                if (st)
                    px_stage_add(PX_ST_PREPARED, st);

                if (r < 0) {
                    px_client_close(cl, "write to client failed");
                    return;
                }
                if (r > 0) {           /* answered: what a names hold kept back is scanned now */
                    if (b->pos < b->len && !cl->terminating)
                        px_client_on_read(cl);
                    else
                        px_client_pump(cl);
                    return;
                }
            }
            if (!px_tx_route_decided(cl->tx_route)) {
                /* No statement chose: the identity's lane, else the default (of the config in force). */
                int lane = px_route_identity_hit(cl->conn.px, cl);

                cl->lane = (int16_t)(lane >= 0 ? lane : cl->conn.px->conf->default_lane_index);
            }
            pool = client_lane_pool(cl);
            if (!pool) {
                client_no_pool(cl);
                return;
            }
            /* Reads go on while the client queues (bounded by PX_WAIT_BUF_MAX), which keeps
             * transactions free of epoll registration churn. */
            px_client_set_state(cl, CL_WAITING);
            px_pool_acquire(pool, cl);
            if (cl->conn.eof && waits_for_others(cl))
                px_client_close(cl, "client disconnected while queued");   /* see px_client_on_eof */
            return;
        }
        if (cl->state != CL_ACTIVE)
            return;
        if (cl->prep_batch && cl->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION) {
            int r = px_prep_probe(cl);  /* a statement's result columns, checked on this server first */

            if (r < 0) {
                px_client_close(cl, "write to server failed");
                return;
            }
            if (r > 0) {
                px_conn_read_stop(&cl->conn);   /* replay_done reads on */
                return;
            }
        }
        if (forward(cl) < 0) {
            px_client_close(cl, "write to server failed");
            return;
        }
    }
    if (px_client_check_terminate(cl))
        return;
    if ((cl->names_hold || cl->unnamed_hold) && b->len - b->pos >= PX_WAIT_BUF_MAX)
        px_conn_read_stop(&cl->conn);  /* bounded while a hold keeps bytes unscanned (client_scan.c) */
    else if ((cl->state == CL_ACTIVE || cl->state == CL_IDLE) && !cl->terminating)
        px_conn_read_start(&cl->conn);
    if (!cl->conn.writing && b->start == b->len)
        px_buf_release(b);
}

/* An idle client keeps no buffer: logged-in clients waiting for their next query cost only their struct. */
static void release_if_empty(struct px_client *cl)
{
    if (cl->state != CL_CLOSED && !cl->conn.writing && cl->conn.in.start == cl->conn.in.len)
        px_buf_release(&cl->conn.in);
}

void px_client_on_read(struct px_client *cl)
{
    const char *err = NULL;

    cl->idle_since_ms = px_now_ms(cl->conn.px);
    switch (cl->state) {
    case CL_STARTUP:
        client_startup_read(cl);
        release_if_empty(cl);
        return;
    case CL_AUTH_PASSWORD:
    case CL_AUTH_SASL_INIT:
    case CL_AUTH_SASL_FINAL:
        client_auth_read(cl);
        release_if_empty(cl);
        return;
    case CL_LOGIN_WAIT:
        px_conn_read_stop(&cl->conn);
        return;
    case CL_WAITING:
        /* A queued client keeps its read registration (stopping and restarting it costs two epoll_ctl
         * calls per queued transaction); what it sends meanwhile waits in its buffer, up to a bound. */
        if (cl->conn.in.len - cl->conn.in.start >= PX_WAIT_BUF_MAX)
            px_conn_read_stop(&cl->conn);
        return;
    case CL_ADMIN:
        admin_read(cl);
        return;
    case CL_IDLE:
    case CL_ACTIVE:
        break;
    case CL_CLOSED:
        return;
    }
    if (cl->terminating) {
        /* Past a Terminate (the client's, or one standing for the end of its stream or a malformed
         * message) nothing the client sends matters: PostgreSQL reads no further either. */
        cl->conn.in.len = cl->conn.in.pos;
        px_conn_read_stop(&cl->conn);
    }
    if (held_for_check(cl))
        return;
    uint64_t st = px_stage_client_enter(cl);
    int r = client_scan(cl, &err);

    if (r == -2) {
        if (cl->state != CL_CLOSED)
            client_fatal(cl, "54000", err);
    } else if (r < 0 && (err == proto_err_bad_length || err == proto_err_too_long)) {
        end_at_bad_length(cl, err);
    } else if (r < 0) {
        fatal_after_work(cl, err ? err : "protocol violation");
    } else {
        px_client_pump(cl);
    }
    px_stage_client_leave(st);
}

void px_client_on_sent(struct px_client *cl)
{
    if (cl->state == CL_CLOSED)
        return;
    if (cl->conn.in.pos < cl->conn.in.len && !cl->terminating)
        px_client_on_read(cl);
    else
        px_client_pump(cl);
}

/*
 * The end of a client's stream (a close, or a shutdown for writing) ends its session as a Terminate
 * after its last whole message would: PostgreSQL carries out and answers what it read before the end,
 * so a client that half-closes after its requests gets their answers, and one that has gone fails at
 * the first write. A partial last message is dropped, as PostgreSQL drops it. Not when the end comes
 * inside a message being streamed to the server (it cannot be completed), before login, on the admin
 * console or under TLS: the client is closed; nor for requests that must wait in a lane's queue
 * (px_client_on_eof). Returns 0 if the Terminate was put in.
 */
static int eof_as_terminate(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;
    uint32_t at = b->pos;

    if (cl->terminating || cl->conn.tls || b->remain ||
        (cl->state != CL_IDLE && cl->state != CL_WAITING && cl->state != CL_ACTIVE))
        return -1;
    while (b->len - at >= PROTO_HEADER_LEN) {
        uint32_t n = proto_get_u32(b->data + at + 1);

        if (n < 4)                 /* malformed: the scan answers it (08P01) */
            break;
        if (b->len - at - 1 < n) {
            b->len = at;           /* a partial message is dropped */
            break;
        }
        at += 1 + n;
    }
    if (b->len - at > 0 && b->len - at < PROTO_HEADER_LEN)
        b->len = at;               /* so is a partial header */
    if (input_append(cl, TERMINATE_MSG, PROTO_HEADER_LEN) < 0)
        return -1;
    cl->eof_terminate = 1;
    return 0;
}

/*
 * Whether a waiting client waits for other clients: its lane is paused, another client is ahead of it
 * in the queue, or a connection of its pool serves another client's transaction, requests or pinned
 * session. Not when it only waits for a connection being opened, logged in, reset or given back
 * (its own previous one, say).
 */
static int waits_for_others(const struct px_client *cl)
{
    const struct px_pool *pool = cl->pool;

    if (cl->state != CL_WAITING || !pool)
        return 0;
    if (pool->lane->paused || (!px_list_empty(&pool->waiting) && pool->waiting.next != &cl->wait_link))
        return 1;
    for (const struct px_list *it = pool->busy.next; it != &pool->busy; it = it->next) {
        const struct px_server *sv = px_container_of(it, struct px_server, link);
        const struct px_client *o = sv->client;

        if (o && o != cl && (sv->tx_status != 'I' || o->pending_z || o->unsynced || o->pins))
            return 1;
    }
    return 0;
}

/* The client's stream ends after what it holds: 1 if that is carried out and answered first (a
 * Terminate stands for the end), 0 if the client must be closed at once. */
static int end_stream(struct px_client *cl)
{
    if (waits_for_others(cl) || eof_as_terminate(cl) < 0)
        return 0;
    px_client_on_read(cl);
    return 1;
}

/*
 * A client whose requests wait behind other clients when its stream ends leaves the queue at once,
 * its requests dropped (PostgreSQL, which has no queue, would run them): a client that hung up, the
 * usual reason, must not take one of the lane's connections later.
 */
void px_client_on_eof(struct px_client *cl, int status)
{
    CLOG(cl, CONF_LOG_DEBUG, "client disconnected: %s", uv_strerror(status));
    if (status == UV_EOF && end_stream(cl))
        return;
    px_client_close(cl, "client disconnected");
}

void px_client_attached(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;

    if (cl->state == CL_LOGIN_WAIT) {
        client_finish_login(cl);
        if (cl->state == CL_CLOSED)
            return;
        if (px->conf->pool_mode == CONF_POOL_TRANSACTION) {
            px_server_detach(cl->server);
            return;
        }
        px_client_set_state(cl, CL_ACTIVE);
        px_conn_read_start(&cl->conn);
        client_read_pipelined(cl);
        return;
    }
    px_client_set_state(cl, CL_ACTIVE);
    cl->tx_start_us = px_now_us();
    if (PX_STAGE_ON(cl->conn.id))
        px_stage_attached();
    if (cl->held_begin) {
        /* The server's reply to the replayed BEGIN was answered already. */
        cl->server->swallow_z++;
        px_client_set_tx_route(cl, TXR_BEGIN_REPLAY);
    }
    if (cl->conn.in.pos < cl->conn.in.len)
        px_client_on_read(cl);
    else
        px_client_pump(cl);
}

void px_client_tx_end(struct px_client *cl)
{
    uint64_t now = px_now_us();

    px_route_record(cl->conn.px, cl->fingerprint, now - cl->tx_start_us, cl->lane);
    cl->fingerprint = 0;
    cl->changes_session = 0;
    cl->unsure_at = 0;
    cl->tx_reads = 0;
    px_client_tx_route_forget(cl);
    cl->tx_start_us = now;
}

void px_client_detached(struct px_client *cl)
{
    px_client_tx_end(cl);
    px_client_released(cl);
}

void px_client_released(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;

    px_client_set_state(cl, CL_IDLE);
    px_flow_reset(cl);
    px_retry_end_tx(cl);
    cl->unnamed_parsed = 0;
    if (px->draining) {
        client_fatal(cl, "57P01", "pglane is shutting down");
        return;
    }
    if (cl->conn.in.pos < cl->conn.in.len && !cl->terminating)
        px_client_on_read(cl);
    else
        px_client_pump(cl);
}

int px_client_cancel_queued(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;
    struct proto_buf out;
    char detail[200];

    /* One request owed a ReadyForQuery, or an extended-protocol group not yet ended by a Sync (a
     * Parse/Describe/Flush whose client waits for the description before it sends more) */
    int whole = cl->pending_z == 1 && !cl->unsynced, group = cl->pending_z == 0 && cl->unsynced;

    if (cl->state != CL_WAITING || cl->held_begin || !(whole || group) || b->remain || cl->conn.writing)
        return 0;
    px_pool_cancel_wait(cl);
    b->start = b->pos;             /* the request is dropped unsent */
    cl->pending_z = 0;
    cl->unsynced = 0;
    /* Named statements: the mapping changes when messages are sent, so an unsent request changed
     * nothing; a Parse in it creates no name, as when PostgreSQL's cancel meets the Parse. */
    cl->prep_batch = 0;
    cl->names_changed = cl->names_hold = cl->unnamed_hold = 0;
    cl->unnamed_parsed = 0;
    px_flow_reset(cl);             /* and so is its reply accounting */
    px_retry_end_tx(cl);
    cl->query_start_us = cl->tx_begin_us = 0;
    cl->fingerprint = 0;
    cl->changes_session = 0;
    cl->unsure_at = 0;
    cl->tx_reads = 0;
    px_client_tx_route_forget(cl);
    px_client_set_state(cl, CL_IDLE);
    snprintf(detail, sizeof(detail), "pglane: the statement waited in lane %s's queue for a server "
             "connection and did not run.", cl->pool->lane->conf->name);
    proto_buf_init(&out);
    proto_build_error(&out, "ERROR", "57014", "canceling statement due to user request", detail, NULL);
    if (group)
        cl->skip_sync = 1;         /* as after PostgreSQL's cancel of a message of the group: the
                                    * rest of it is dropped up to its Sync, which is answered */
    else
        proto_build_ready(&out, 'I');
    client_send(cl, &out);
    if (cl->state == CL_CLOSED)
        return 1;
    if (b->pos < b->len && !cl->terminating)
        px_client_on_read(cl);
    else
        px_client_pump(cl);
    return 1;
}

int px_client_session_idle(struct px_client *cl)
{
    if (cl->conn.px->draining) {
        client_fatal(cl, "57P01", "pglane is shutting down");
        return 1;
    }
    return px_client_check_terminate(cl);   /* a Terminate behind the requests just answered */
}

void px_client_close(struct px_client *cl, const char *reason)
{
    struct proxy *px = cl->conn.px;
    struct px_server *sv = cl->server;

    if (cl->state == CL_CLOSED)
        return;
    CLOG(cl, CONF_LOG_DEBUG, "closed: %s", reason);
    if (cl->state == CL_WAITING || cl->state == CL_LOGIN_WAIT)
        px_pool_cancel_wait(cl);
    px_replica_forget(cl);
    px_authq_forget(cl);
    px_client_set_state(cl, CL_CLOSED);
    if (sv) {
        int clean, running;

        /* Replies read for this client and not sent to it (a write to it failed, say, with a
         * ReadyForQuery in them) are nobody's now: dropped, or the next client of the connection
         * would be sent them. While a write of them is in flight they cannot be: not clean. */
        if (!sv->conn.writing)
            sv->conn.in.start = sv->conn.in.pos;
        running = cl->pending_z > 0 || cl->unsynced;   /* a request of the client's not answered yet */
        clean = !running && sv->tx_status == 'I' && cl->conn.in.remain == 0 && sv->prepq.n == 0 &&
                sv->conn.in.start == sv->conn.in.pos;

        cl->server = NULL;
        if (cl->pins)
            sv->dirty |= PX_DIRTY_DISCARD;   /* what pinned the client goes with it */
        sv->sticky |= cl->sticky;       /* no reset undoes a seed or a LOAD: the connection goes */
        px_server_client_gone(sv, clean, running);
    }
    px_list_remove(&cl->link);
    px->nclients--;
    px_worker_client_gone(px);
    px_conn_close(&cl->conn);
    px_maybe_exit(px);
}

void px_client_free(struct px_client *cl)
{
    px_stage_abandon(cl->conn.id);
    px_prep_client_free(cl);
    px_session_free(cl);
    px_flow_free(cl);
    px_retry_end_tx(cl);
    px_retry_free(cl);
    px_params_clear(&cl->want);
    px_params_clear(&cl->base);
    client_startup_clear(cl);
    px_kvlist_clear(&cl->gucs);
    if (cl->login_notices) {
        proto_buf_free(cl->login_notices);
        free(cl->login_notices);
    }
    px_unnamed_free(cl);
    free(cl->scram);
    free(cl->authq_secret);
    free(cl->fatal_msg);
    free(cl->tenant_hint);
    if (!cl->names_shared) {
        free(cl->user);
        free(cl->database);
    }
    free(cl);
}
