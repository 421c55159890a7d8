/*
 * Server connections, the relay: pass PostgreSQL's replies to the attached client while watching
 * ReadyForQuery (to hand the connection back in transaction pooling), ParameterStatus (to follow
 * each client's session parameters) and CommandComplete (to notice session changes). Connect and
 * log in: proxy/server_login.c; pglane's own queries on the connection: proxy/server_own.c.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/stages.h"
#include "proxy/proxy.h"
#include "proxy/server_internal.h"
#include "proxy/state.h"

static int release_ready(const struct px_server *sv)
{
    const struct px_client *cl = sv->client;

    return cl && cl->pending_z == 0 && !cl->unsynced && sv->tx_status == 'I' && sv->swallow_z == 0 &&
           !cl->terminate_sent &&
           sv->prepq.n == 0 &&
           cl->conn.in.pos == cl->conn.in.start && cl->conn.in.remain == 0;
}

/*
 * After server_release kept the server for its pinned client (no check to run): a Terminate the
 * client sent behind its last request closes it now, as PostgreSQL closes after its last reply.
 * Returns 1 if the client was closed.
 */
static int pinned_terminated(struct px_server *sv)
{
    return sv->state == SV_ACTIVE && sv->client && !sv->checking && !sv->ryw_wait && !sv->release_after_write &&
           px_client_check_terminate(sv->client);
}

/* Gives the server back to its pool, after restoring session state a client changed. */
void server_release(struct px_server *sv)
{
    struct px_client *cl = sv->client;
    struct proxy *px = sv->conn.px;

    sv->release_after_write = 0;
    sv->replay_wait = 0;
    /* After a forward to the client completed (release_after_write), reads are still stopped: the
     * replies to a check or a reset, and a pinned client's next replies, must be read. */
    if (sv->state != SV_CLOSED)
        px_conn_read_start(&sv->conn);
    if (cl && px->conf->pool_mode == CONF_POOL_TRANSACTION &&
        (cl->changes_session || (sv->dirty & PX_DIRTY_CHECK) || cl->pins)) {
        int suspect = cl->changes_session || (sv->dirty & PX_DIRTY_CHECK);

        sv->pool->transactions++;
        px_client_tx_end(cl);
        if (px->draining) {
            px_client_fail(cl, "57P01", "pglane is shutting down");
            return;
        }
        if (suspect)
            start_check(sv, cl);
        return;                         /* pinned: the client keeps its server */
    }
    if (cl && sv->pool->lane->neps > 1 && px->conf->pool_mode == CONF_POOL_TRANSACTION &&
        px_replica_ask_lsn(sv, cl)) {
        /* read_your_writes: the client's next messages wait for the primary's WAL position */
        sv->pool->transactions++;
        px_client_tx_end(cl);
        return;
    }
    if (cl) {
        if (cl->changes_session)
            sv->dirty |= PX_DIRTY_RESET;
        cl->server = NULL;
        sv->client = NULL;
        cl->conn.blocked = 0;          /* nothing queued towards this server concerns it now */
        sv->pool->transactions++;
        px_client_detached(cl);
    }
    if (sv->state == SV_CLOSED)
        return;
    if (sv->cancel_expired) {
        struct px_pool *pool = sv->pool;

        px_server_close(sv, "a cancel forwarded to it did not complete in time");
        px_pool_refill(pool);
        return;
    }
    if (sv->ncancels) {
        /* A cancel forwarded to this backend may still land: no one else runs a query here until
         * PostgreSQL has closed the cancel connection (proxy/cancel.c calls px_server_recycle). */
        if (sv->state != SV_CANCEL_WAIT) {
            px_server_set_state(sv, SV_CANCEL_WAIT);
            sv->pool->lane->stats.cancels[PX_CANCEL_HELD]++;
            SLOG(sv, CONF_LOG_DEBUG, "held out of the pool: %d cancel(s) in flight", sv->ncancels);
        }
        px_conn_read_start(&sv->conn);
        return;
    }
    if (sv->dirty) {
        /* UNLISTEN *: a pinned client's connection never gets here, so whatever listens now was
         * started where pglane could not see it (a trigger, say) and must not outlive the client. */
        static const char tx_reset[] = "RESET SESSION AUTHORIZATION;RESET ROLE;RESET ALL;UNLISTEN *";
        static const char discard[] = "DISCARD ALL";
        int full = px->conf->pool_mode == CONF_POOL_SESSION || (sv->dirty & PX_DIRTY_DISCARD);

        sv->dirty = 0;
        sv->listen_seen = 0;
        sv->restore_due = 0;
        px_server_set_state(sv, SV_RESETTING);
        px_kvlist_clear(&sv->gucs);        /* RESET ALL and DISCARD ALL undo them */
        for (int i = 0; i < PX_P_COUNT; i++)
            if (!px_param_reported(i))
                px_params_set(&sv->have, i, NULL);
        if (full && px->conf->pool_mode == CONF_POOL_TRANSACTION)
            px_prep_server_forget_all(sv);   /* DISCARD ALL drops pglane's statements too */
        if (full)
            sv->seq_client = 0;            /* and the sequence state */
        if (send_own_query(sv, full ? discard : tx_reset, full ? sizeof(discard) - 1 : sizeof(tx_reset) - 1) < 0)
            px_server_close(sv, "cannot send reset query");
        return;
    }
    px_pool_server_ready(sv);
}

int px_server_drop_statements(struct px_server *sv)
{
    static const char dealloc[] = "DEALLOCATE ALL";

    if (!px_server_transition_legal((int)sv->state, SV_RESETTING))
        return -1;                 /* ready after a reset or a check: closed instead, as before */
    px_server_set_state(sv, SV_RESETTING);
    px_prep_server_forget_all(sv);
    return send_own_query(sv, dealloc, sizeof(dealloc) - 1);
}

void px_server_recycle(struct px_server *sv)
{
    assert(!sv->client);
    server_release(sv);
}

void px_server_client_gone(struct px_server *sv, int clean, int running)
{
    struct proxy *px = sv->conn.px;

    sv->client = NULL;
    if (sv->state != SV_ACTIVE)
        return;
    if ((sv->checking || sv->ryw_wait) && !px->exiting)
        return;                         /* check_done (px_replica_lsn_done) decides */
    /* A reply to pglane's own query still to come (the check of startup values, a parameter sync)
     * would be misread once another client is attached: close rather than wait. A seed or a LOAD
     * cannot be reset: that connection goes too. */
    if (!clean || px->exiting || sv->swallow_z || sv->sticky) {
        char why[128];

        if (running && !px->exiting && sv->backend_pid && sv->pool->lane->conf->cancel_on_disconnect)
            px_cancel_orphan(px, sv);   /* else its statement runs on to its end */
        px_server_close(sv, sv->sticky ? px_sticky_reason(sv->sticky, why, sizeof(why))
                                       : "client disconnected with a transaction or request open");
        px_pool_refill(sv->pool);   /* the slot serves the clients queued behind it */
        return;
    }
    if (px->conf->pool_mode == CONF_POOL_SESSION)
        sv->dirty = 1;
    if (sv->conn.writing)
        sv->release_after_write = 1;
    else
        server_release(sv);
}

void px_server_detach(struct px_server *sv)
{
    if (sv->conn.writing)
        sv->release_after_write = 1;
    else
        server_release(sv);
}

/* A ReadyForQuery (inspect). Returns 1 if it ends one of pglane's own queries (dropped). */
static int inspect_ready(struct px_server *sv, const struct proto_frame *f)
{
    struct px_client *cl = sv->client;
    char status;

    if (proto_parse_ready(f->body, f->len, &status) == 0)
        sv->tx_status = status;
    if (sv->unnamed_ddl && sv->tx_status == 'I')
        px_prep_unnamed_tx_end(sv);
    if (sv->named_ddl && sv->tx_status == 'I') {
        sv->named_ddl = 0;
        px_prep_ddl_seen();
    }
    if (sv->swallow_z) {
        sv->swallow_z--;
        if (sv->validating && --sv->validating == 0)
            sv->validate_done = 1;
        if (sv->sync_wait && --sv->sync_wait == 0 && sv->own_err)
            sv->sync_failed = 1;
        if (sv->swallow_z == 0)
            sv->replaying = 0;
        return 1;
    }
    if (cl && cl->pending_z)
        cl->pending_z--;
    /* Transaction pooling: this backend's sequence state (currval, lastval) may be the client's now
     * (send_client_state discards it before another client, or this one after it moved on). A
     * function pglane cannot see into, which may call nextval(), makes changes_session. */
    if (cl && (cl->seq_tx || sv->seq_write || cl->changes_session) &&
        sv->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION) {
        sv->seq_client = cl->conn.id;
        cl->seq_server = sv->conn.id;
    }
    sv->seq_write = 0;
    if (cl && cl->pending_z == 0)
        cl->seq_tx = 0;            /* every request scanned so far is answered */
    if (cl)
        cl->idle_since_ms = px_now_ms(sv->conn.px);
    if (cl)
        px_stats_query_end(sv, cl);   /* counts pool->queries, durations, slow log */
    return 0;
}

/* An ErrorResponse (inspect). Returns 1 if it answers one of pglane's own queries (dropped). */
static int inspect_error(struct px_server *sv, const struct proto_frame *f)
{
    struct proto_error_fields ef;

    if (sv->swallow_z) {
        if (sv->validating == 1 || sv->sync_wait == 1)
            keep_own_error(sv, f);
        if (sv->validating != 1 && proto_parse_error(f->body, f->len, &ef) == 0)
            SLOG(sv, sv->nprobe ? CONF_LOG_DEBUG : CONF_LOG_WARNING, "pglane's own query failed: %s %s",
                 ef.sqlstate ? ef.sqlstate : "", ef.message ? ef.message : "");
        if (sv->replaying)
            sv->replay_failed = 1;
        if (sv->checking)
            sv->check_failed = 1;
        return 1;
    }
    px_stats_error(sv, f);
    if (proto_parse_error(f->body, f->len, &ef) == 0 && ef.severity &&
        (strcmp(ef.severity, "FATAL") == 0 || strcmp(ef.severity, "PANIC") == 0))
        sv->fatal_relayed = 1;
    return 0;
}

/* Handles a message pglane must read whole. Returns 1 if it is dropped (one of pglane's own replies). */
static int inspect(struct px_server *sv, const struct proto_frame *f)
{
    struct px_client *cl = sv->client;
    const char *tag;

    if (sv->swallow_z && sv->validating == 1)
        validation_reply(sv, f);
    if (sv->swallow_z && sv->nprobe)
        px_prep_probe_reply(sv, f);    /* the result-shape probe's replies (proxy/prepared.c) */
    switch (f->type) {
    case PROTO_BE_READY:
        return inspect_ready(sv, f);
    case PROTO_BE_PARAM_STATUS:
        track_param(sv, f, 0);
        return sv->swallow_z > 0 && !sv->restoring;   /* a restored startup value: the client's */
    case PROTO_BE_COMMAND_COMPLETE:
        if (sv->swallow_z)
            return 1;
        if (proto_parse_command_complete(f->body, f->len, &tag) < 0)
            return 0;
        px_prep_unnamed_on_tag(sv, tag);
        if (tag_may_use_sequences(tag))
            sv->seq_write = 1;
        if (tag_suspect(tag)) {
            sv->dirty |= PX_DIRTY_CHECK;
            sv->restore_due = 1;
            sv->listen_seen |= strcmp(tag, "LISTEN") == 0;
            if (strcmp(tag, "LOAD") == 0)
                sv->sticky |= 1u << PX_PIN_LOAD;   /* the library stays in the backend */
        }
        if (strcmp(tag, "DISCARD ALL") == 0 || strcmp(tag, "DEALLOCATE ALL") == 0) {
            /* The server dropped every prepared statement, pglane's shared ones too. */
            px_prep_server_forget_all(sv);
            sv->unnamed_owner = 0;
            if (cl)
                px_prep_client_forget_all(cl);
        }
        return 0;
    case PROTO_BE_ERROR:
        return inspect_error(sv, f);
    case PROTO_BE_DATA_ROW:
        if (sv->checking && sv->swallow_z)
            px_session_check_row(sv, f->body, f->len);
        else if (sv->ryw_wait && sv->swallow_z)
            px_replica_lsn_row(sv, f->body, f->len);
        return sv->swallow_z > 0;
    case PROTO_BE_NOTIFICATION:
        /* Only a client that listens gets notifications; a server connection that still listens
         * for a client that left (a path pglane could not see) keeps them to itself. */
        if (!cl || !((cl->pins & (1u << PX_PIN_LISTEN)) || sv->listen_seen)) {
            SLOG(sv, CONF_LOG_DEBUG, "%s", "dropped a notification for no listening client");
            return 1;
        }
        if (sv->swallow_z) {
            /* Among the replies to pglane's own queries (nothing for the client is pending in the
             * buffer then): sent on its own, after whatever is already on its way to the client. */
            if (px_conn_send_copy(&cl->conn, f->body - PROTO_HEADER_LEN, PROTO_HEADER_LEN + f->len) < 0)
                SLOG(sv, CONF_LOG_WARNING, "%s", "could not pass a notification to its client");
            return 1;
        }
        return 0;
    default:
        return sv->swallow_z > 0;
    }
}

static int must_read_whole(const struct px_server *sv, uint8_t type)
{
    return sv->swallow_z > 0 || type == PROTO_BE_READY || type == PROTO_BE_PARAM_STATUS ||
           type == PROTO_BE_COMMAND_COMPLETE || type == PROTO_BE_ERROR || type == PROTO_BE_NOTIFICATION;
}

/* Sends the replies scanned so far to the client; 1 if they are not all gone yet. */
static int flush_blocked(struct px_server *sv)
{
    struct px_buf *b = &sv->conn.in;

    if (b->start < b->pos && sv->client->retry_pre_unsent)
        px_retry_forwarding(sv->client);
    if (b->start < b->pos && px_forward(&sv->conn, &sv->client->conn) < 0)
        return 1;
    return sv->conn.writing || b->start < b->pos;
}

/*
 * A message of the server goes to the client: its first message(s) can no longer be resent. The
 * answers to a Parse, Bind or Describe say nothing of execution and PostgreSQL flushes them with what
 * follows (a FATAL, if it was terminated meanwhile): they count only once forwarded
 * (px_retry_forwarding), so that a FATAL scanned with them still finds the request resendable. Not on
 * the prepared-statement path, whose response queue settles as the replies are scanned.
 */
static void reply_to_client(struct px_client *cl, uint8_t type)
{
    if (cl->retry_buf) {
        uint8_t head = px_flow_head_type(cl);

        if ((head == PROTO_FE_PARSE || head == PROTO_FE_BIND || head == PROTO_FE_DESCRIBE) &&
            type != PROTO_BE_ERROR && !cl->retry_begin_wait && cl->server && cl->server->prepq.n == 0)
            cl->retry_pre_unsent = 1;
        else
            px_retry_on_reply(cl, type);
    }
    px_flow_reply(cl, type);
}

/* An ErrorResponse (whole) before any reply reached the client: 1 if it was a dead connection's
 * FATAL and the client's first message(s) went back to the queue (sv closed). */
static int retry_on_error(struct px_server *sv, const struct proto_frame *f)
{
    struct proto_error_fields ef;
    char detail[160];

    if (proto_parse_error(f->body, f->len, &ef) < 0)
        return 0;
    snprintf(detail, sizeof(detail), "%s %s %.120s", ef.severity ? ef.severity : "", ef.sqlstate ? ef.sqlstate : "",
             ef.message ? ef.message : "");
    return px_retry_try(sv, PX_RF_ERROR, ef.severity, ef.sqlstate, detail);
}

/*
 * The reply to a request that only began the transaction is complete (proxy/retry_conn.c): it is the
 * client's whatever happens next, so it goes out now, as a copy, rather than with the bytes scanned
 * after it, which a FATAL in the same read would discard with the connection. 0 or -1.
 */
static int send_scanned(struct px_server *sv)
{
    struct px_buf *b = &sv->conn.in;

    if (b->start == b->pos)
        return 0;
    if (px_conn_send_copy(&sv->client->conn, b->data + b->start, b->pos - b->start) < 0)
        return -1;
    b->start = b->pos;
    return 0;
}

/* What scan found in the server's bytes. */
enum scan_result {
    SCAN_ERROR = -1,               /* a protocol error, or out of memory */
    SCAN_MORE,                     /* everything readable is scanned: read on */
    SCAN_RELEASABLE,               /* a ReadyForQuery made the server releasable */
    SCAN_OWN_DONE,                 /* the answer to pglane's session check or replay is complete */
    SCAN_REQUEUED                  /* the connection was closed and its client requeued (proxy/retry.c) */
};

/* Scans the server's bytes. */
static enum scan_result scan(struct px_server *sv)
{
    struct px_buf *b = &sv->conn.in;
    struct proto_frame f;
    const char *err;
    int prep;

    while (b->pos < b->len) {
        uint32_t avail;
        int r = proto_cursor_next(b->data, &b->pos, b->len, &b->remain, PROTO_PHASE_BACKEND, &f, &err);

        if (r == PROTO_FRAME_NEED_MORE)
            break;
        if (r == PROTO_FRAME_ERROR) {
            SLOG(sv, CONF_LOG_ERROR, "protocol error from server: %s", err);
            return SCAN_ERROR;
        }
        avail = b->len - b->pos;
        /* Replies to messages forwarded before the response queue was in play come first. */
        prep = sv->prepq.n > 0 && sv->swallow_z == 0 && !(sv->client && px_flow_raw_owed(sv->client));
        if (prep && px_prep_head_is_synth(sv)) {
            if (flush_blocked(sv))
                break;
            (void)px_prep_drain(sv);
            prep = sv->prepq.n > 0;
        }
        if (must_read_whole(sv, f.type) || (prep && px_prep_reads_whole(sv, f.type))) {
            if (avail < PROTO_HEADER_LEN + f.len) {
                if (b->cap - b->start < PROTO_HEADER_LEN + f.len && !sv->conn.writing &&
                    px_buf_reserve(b, PROTO_HEADER_LEN + f.len - avail) < 0)
                    return SCAN_ERROR;
                break;
            }
            f.body = b->data + b->pos + PROTO_HEADER_LEN;
            if (f.type == PROTO_BE_ERROR && sv->client && sv->client->retry_buf && retry_on_error(sv, &f))
                return SCAN_REQUEUED; /* sv is closed: its client was requeued with its first message(s) */
            if (prep && px_prep_swallows(sv, f.type)) {
                /* The reply to a Parse or Close pglane added: the client never sees it. */
                if (flush_blocked(sv))
                    break;
                px_prep_on_reply(sv, &f);
                b->pos += PROTO_HEADER_LEN + f.len;
                b->start = b->pos;
                continue;
            }
            if (f.type == PROTO_BE_ERROR && sv->guard_for && px_guard_rewrite(sv, &f) < 0)
                break;            /* retried when the write in flight completes */
            if (f.type == PROTO_BE_ERROR && sv->pool->lane->neps > 1 && px_replica_error(sv, &f) < 0)
                break;
            if (f.type == PROTO_BE_ERROR && prep && px_prep_rewrite_error(sv, &f) < 0)
                break;
            if (inspect(sv, &f)) {
                /* Dropped: pglane's own replies always precede anything for the client. */
                if (b->start < b->pos && (f.type == PROTO_BE_NOTIFICATION || sv->restoring) && sv->client) {
                    /* ... but a dropped notification may follow replies still to forward, and so
                     * may the reply to a restore, which the client's ParameterStatus precedes */
                    if (flush_blocked(sv))
                        break;
                }
                b->pos += PROTO_HEADER_LEN + f.len;
                b->start = b->pos;
                if (((sv->checking || sv->replay_wait || sv->ryw_wait || sv->restoring) && sv->swallow_z == 0) ||
                    (sv->shape_wait && sv->probe_z == 0))
                    return SCAN_OWN_DONE;
                continue;
            }
            if (prep)
                px_prep_on_reply(sv, &f);
            if (sv->client)
                reply_to_client(sv->client, f.type);
            b->pos += PROTO_HEADER_LEN + f.len;
            if (f.type == PROTO_BE_READY && sv->client && sv->client->retry_after_begin && send_scanned(sv) < 0)
                return SCAN_ERROR;
            if (f.type == PROTO_BE_READY && release_ready(sv))
                return SCAN_RELEASABLE;
            continue;
        }
        if (prep) {
            f.body = NULL;
            px_prep_on_reply(sv, &f);
        }
        if (sv->client)
            reply_to_client(sv->client, f.type);
        proto_cursor_stream(b->data, &b->pos, &b->remain);
    }
    return SCAN_MORE;
}

int px_server_replace_frame(struct px_server *sv, struct proto_frame *f, const struct proto_buf *nb)
{
    struct px_buf *b = &sv->conn.in;
    uint32_t old = PROTO_HEADER_LEN + f->len, nlen = (uint32_t)nb->len;

    if (nlen > old && b->cap - b->len < nlen - old) {
        if (sv->conn.writing)
            return -1;            /* the buffer may not move while a write is in flight */
        if (px_buf_reserve(b, nlen - old) < 0)
            return 0;             /* left as it is */
    }
    memmove(b->data + b->pos + nlen, b->data + b->pos + old, b->len - (b->pos + old));
    memcpy(b->data + b->pos, nb->data, nlen);
    b->len = b->len + nlen - old;
    f->len = nlen - PROTO_HEADER_LEN;
    f->body = b->data + b->pos + PROTO_HEADER_LEN;
    return 0;
}

/* "<prefix><SQLSTATE> <message>" of an ErrorResponse, for a log line; returns buf. */
static const char *error_detail(const struct proto_frame *f, const char *prefix, char *buf, size_t n)
{
    struct proto_error_fields ef;

    if (proto_parse_error(f->body, f->len, &ef) == 0)
        snprintf(buf, n, "%s%s %.150s", prefix, ef.sqlstate ? ef.sqlstate : "", ef.message ? ef.message : "");
    else
        snprintf(buf, n, "%smalformed ErrorResponse", prefix);
    return buf;
}

/* Reads while no client is attached: asynchronous notices, or the replies to a reset query. */
static void idle_read(struct px_server *sv)
{
    struct px_buf *b = &sv->conn.in;
    struct proto_frame f;
    int r;

    while ((r = next_frame(sv, &f)) != 0) {
        if (r < 0) {
            px_server_close(sv, "protocol error from server");
            return;
        }
        b->start = b->pos;
        if (f.type == PROTO_BE_ERROR && sv->state == SV_CHECKING) {
            char detail[200];

            px_server_check_failed(sv, error_detail(&f, "server_check_query: ", detail, sizeof(detail)));
            return;
        }
        if (f.type == PROTO_BE_ERROR && (sv->state == SV_IDLE || sv->state == SV_CANCEL_WAIT)) {
            /* An idle backend only speaks up to say it is going away (terminated, shut down):
             * drop it now, before a client is handed a dead connection. */
            char detail[200];

            px_server_lost(sv, PX_LOST_IDLE_ERROR, error_detail(&f, "", detail, sizeof(detail)));
            px_server_close(sv, "server error while idle");
            px_pool_refill(sv->pool);
            return;
        }
        (void)inspect(sv, &f);
        if ((sv->state == SV_RESETTING || sv->state == SV_CHECKING) && sv->swallow_z == 0) {
            px_pool_server_ready(sv);   /* after a check: to the client waiting for it */
            break;
        }
    }
    if (b->pos == b->len && b->remain == 0)
        b->start = b->pos;
    px_buf_release(b);
}

void px_server_pump_client(struct px_server *sv)
{
    struct px_client *cl = sv->client;
    uint64_t st;
    int r;

    if (!cl)
        return;
    if (cl->retry_pre_unsent && sv->conn.in.start < sv->conn.in.pos)
        px_retry_forwarding(cl);
    st = PX_STAGE_ON(cl->conn.id) ? px_stage_now() : 0;
    r = px_forward(&sv->conn, &cl->conn);
    if (st)
        px_stage_add(PX_ST_CLIENT_WRITE, st);
    if (r < 0) {
        px_client_close(cl, "write to client failed");
        return;
    }
}

static void server_read(struct px_server *sv);

/* The relay's read callback, timed when it serves the transaction SHOW STAGES samples. */
void px_server_on_read(struct px_server *sv)
{
    uint64_t st = px_stage_server_enter(sv);

    server_read(sv);
    px_stage_server_leave(st);
}

static void server_read(struct px_server *sv)
{
    enum scan_result r;

    switch (sv->state) {
    case SV_TLS:
        if (!sv->conn.tls)
            tls_answer(sv);
        return;
    case SV_LOGIN:
        login_read(sv);
        return;
    case SV_IDLE:
    case SV_RESETTING:
    case SV_CANCEL_WAIT:
    case SV_CHECKING:
        idle_read(sv);
        return;
    case SV_ACTIVE:
        break;
    case SV_CONNECTING:
    case SV_CLOSED:
        return;
    }
    r = scan(sv);
    if (r == SCAN_REQUEUED)
        return;
    if (r == SCAN_ERROR) {
        struct px_client *cl = sv->client;

        px_server_close(sv, "protocol error");
        if (cl)
            px_client_fail(cl, "08P01", "pglane: protocol error from the server");
        return;
    }
    if (sv->validate_done && sv->client) {
        sv->validate_done = 0;
        px_client_checked(sv->client, sv);   /* may hand the server on: nothing more to do here */
        return;
    }
    if (sv->sync_failed) {
        /* The client's settings could not be applied: never run its statements without them. */
        struct px_client *cl = sv->client;
        uint8_t *err = sv->own_err;

        sv->own_err = NULL;
        px_server_close(sv, "parameter sync failed");
        if (cl && err)
            px_client_fail_error(cl, err + PROTO_HEADER_LEN, sv->own_err_len - PROTO_HEADER_LEN);
        free(err);
        return;
    }
    if (sv->replay_failed) {
        struct px_client *cl = sv->client;

        px_server_close(sv, "a client's session settings could not be restored");
        if (cl)
            px_client_fail(cl, "08006", "pglane: could not restore this session's settings or role on a server "
                                        "connection (see pglane's log)");
        return;
    }
    if (r == SCAN_OWN_DONE) {
        if (sv->checking)
            check_done(sv);
        else if (sv->ryw_wait)
            px_replica_lsn_done(sv);
        else {
            sv->restoring = 0;
            if (sv->shape_wait)
                px_prep_probe_done(sv);  /* the result-shape probe answered */
            replay_done(sv);            /* a replay or a restore of startup settings: the client goes on */
        }
        return;
    }
    if (sv->client) {
        struct px_client *cl = sv->client;

        px_server_pump_client(sv);
        if (cl->state == CL_CLOSED)
            return;                /* the write to it failed: sv was released or closed with it, and may
                                    * serve another client already, whose request the scan above was
                                    * not about (its release would leave that client's reply unread) */
    }
    if (sv->client && sv->prepq.n && !sv->conn.writing) {
        uint64_t st = PX_STAGE_ON(sv->client->conn.id) ? px_stage_now() : 0;

        (void)px_prep_drain(sv);
        if (st)
            px_stage_add(PX_ST_PREPARED, st);
    }
    if (sv->state == SV_ACTIVE && r == SCAN_RELEASABLE && sv->client &&
        sv->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION) {
        uint64_t st = PX_STAGE_ON(sv->client->conn.id) ? px_stage_now() : 0;

        px_server_detach(sv);
        if (st)
            px_stage_add(PX_ST_RELEASE, st);
        if (pinned_terminated(sv))
            return;
    } else if (sv->state == SV_ACTIVE && r == SCAN_RELEASABLE && sv->client) {
        if (px_client_session_idle(sv->client))
            return;
        if (sv->restore_due) {                /* session pooling: a RESET may have undone startup settings */
            sv->restore_due = 0;
            if (px_server_restore_startup(sv, sv->client))
                return;
        }
    } else if (sv->state == SV_ACTIVE && sv->client && px_client_check_terminate(sv->client))
        return;
    if (sv->state == SV_ACTIVE && sv->client && !sv->release_after_write)
        px_client_resume_held(sv->client);   /* the server stays the client's (a transaction, pinned) */
    if (sv->state == SV_ACTIVE && !sv->conn.writing && sv->conn.in.start == sv->conn.in.len)
        px_buf_release(&sv->conn.in);
}

void px_server_on_sent(struct px_server *sv)
{
    if (sv->release_after_write) {
        server_release(sv);
        (void)pinned_terminated(sv);
        return;
    }
    if (sv->state != SV_ACTIVE)
        return;
    if (sv->client && px_client_check_terminate(sv->client))
        return;
    px_conn_read_start(&sv->conn);
    if (sv->conn.in.pos < sv->conn.in.len)
        px_server_on_read(sv);
    else if (sv->client && sv->prepq.n && px_prep_drain(sv) == 0 && release_ready(sv) &&
             sv->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION)
        px_server_detach(sv);
    if (sv->client && sv->state == SV_ACTIVE && !sv->release_after_write && sv->conn.in.pos == sv->conn.in.len)
        px_client_resume_held(sv->client);
}

void px_server_on_eof(struct px_server *sv, int status)
{
    struct px_client *cl = sv->client;
    struct px_pool *pool = sv->pool;

    if (sv->state == SV_CHECKING) {
        char detail[120];

        snprintf(detail, sizeof(detail), "server_check_query: connection closed: %s", uv_strerror(status));
        px_server_check_failed(sv, detail);
        return;
    }
    if (sv->state == SV_IDLE || sv->state == SV_CANCEL_WAIT) {
        px_server_lost(sv, PX_LOST_IDLE_CLOSED, uv_strerror(status));
        px_server_close(sv, "server closed the connection");
        px_pool_refill(pool);
        return;
    }
    if (sv->state == SV_ACTIVE && cl && !sv->fatal_relayed && px_retry_try(sv, PX_RF_CLOSED, NULL, NULL, uv_strerror(status))) {
        px_pool_refill(pool);
        return;
    }
    SLOG(sv, CONF_LOG_WARNING, "server closed the connection: %s", uv_strerror(status));
    if (sv->state == SV_TLS && px_tls_error(&sv->conn)) {
        char msg[256];

        snprintf(msg, sizeof(msg), "pglane: TLS handshake with server \"%s\" failed: %s",
                 sv->pool->ep->server->name, px_tls_error(&sv->conn));
        login_failed(sv, NULL, msg);
        return;
    }
    if (sv->state == SV_LOGIN || sv->state == SV_TLS) {
        SLOG(sv, CONF_LOG_ERROR, "login failed: %s", "server closed the connection during login");
        px_server_close(sv, "login failed");
        px_pool_server_unreachable(pool, "pglane: server closed the connection during login");
        return;
    }
    px_server_close(sv, "server closed the connection");
    if (cl && sv->fatal_relayed)            /* the client has the server's own FATAL: no second one */
        px_client_close(cl, "server closed the connection after a FATAL error");
    else if (cl)
        px_client_fail(cl, "08006", "pglane: server connection closed unexpectedly");
    px_pool_refill(sv->pool);      /* for the clients that waited for this connection */
}
