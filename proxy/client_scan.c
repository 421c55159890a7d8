/*
 * Scanning what a client sends (proxy/client_scan.c): the messages are stepped with the frame cursor,
 * those routing or the prepared-statement mapping must read are read whole, the requests owed a
 * ReadyForQuery are counted, and messages pglane drops (oversized, skipped up to Sync) are removed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/client_internal.h"
#include "proxy/proxy.h"
#include "proxy/state.h"

/* Query and Parse messages up to this size are read whole in transaction pooling, so that routing
 * and the session-change check can look at their text; larger ones stream through. */
#define ROUTE_MAX_MSG (64u * 1024)
#define OVERSIZE_MSG "pglane: a Parse, Describe or Close message over 64 MB cannot be mapped to a shared " \
                     "prepared statement"

/* The scan looks at a whole Parse several times (the mapping, the unnamed statement, routing): it is
 * parsed at the first look. The memo (the worker's: one scan at a time) is cleared at every new
 * message (client_scan) and when a message is rewritten in place (client_refuse_rewrite), so that a
 * body at the same address is always the same message. */
int px_client_parse(struct px_client *cl, const struct proto_frame *f, struct proto_fe_parse *out)
{
    struct proxy *px = cl->conn.px;

    if (!f->body || px->scan_parse_body != f->body || px->scan_parse_client != cl) {
        px->scan_parse_rc = proto_parse_fe_parse(f->body, f->len, &px->scan_parse);
        px->scan_parse_body = f->body;
        px->scan_parse_client = cl;
    }
    *out = px->scan_parse;
    return px->scan_parse_rc;
}

/* Parse, Bind, Describe and Close name prepared statements that pglane maps in transaction pooling. */
static int names_statement(struct px_client *cl, const struct proto_frame *f)
{
    struct proto_fe_parse parse;
    struct proto_fe_bind bind;
    struct proto_fe_target t;

    switch (f->type) {
    case PROTO_FE_PARSE:
        return px_client_parse(cl, f, &parse) == 0 && parse.name_len > 0;
    case PROTO_FE_BIND:            /* of a large Bind, only its names are here */
        return proto_parse_fe_bind_names(f->body, f->len, &bind) == 0 && bind.statement_len > 0;
    case PROTO_FE_DESCRIBE:
        return proto_parse_fe_describe(f->body, f->len, &t) == 0 && t.kind == 'S' && t.name_len > 0;
    case PROTO_FE_CLOSE:
        return proto_parse_fe_close(f->body, f->len, &t) == 0 && t.kind == 'S' && t.name_len > 0;
    default:
        return 0;
    }
}

static int is_statement_message(uint8_t type)
{
    return type == PROTO_FE_PARSE || type == PROTO_FE_BIND || type == PROTO_FE_DESCRIBE || type == PROTO_FE_CLOSE;
}

/*
 * The unnamed statement and the current server (transaction pooling with prepared statements): a Bind
 * or Describe of the unnamed statement with no unnamed Parse on the current server before it goes
 * through the prepared-statement mapping, which makes sure the server's is the client's (replayed, or
 * closed). What the client's unnamed statement is, is followed by pass_on (proxy/unnamed.c).
 */
static void track_unnamed(struct px_client *cl, const struct proto_frame *f)
{
    struct proto_fe_parse parse;
    struct proto_fe_bind bind;
    struct proto_fe_target t;

    switch (f->type) {
    case PROTO_FE_PARSE:
        if (px_client_parse(cl, f, &parse) < 0 || parse.name_len > 0)
            return;
        cl->unnamed_parsed = 1;
        /* Behind other messages of its group, an error could make the server skip it: the server's
         * own unnamed statement must then be the client's already (proxy/prepared.c, group_start). */
        if (cl->unsynced && !(cl->server && px_unnamed_owned(cl->server, cl)))
            cl->prep_batch = 1;
        return;
    case PROTO_FE_BIND:            /* of a large Bind, only its names are here */
        if (proto_parse_fe_bind_names(f->body, f->len, &bind) == 0 && bind.statement_len == 0 &&
            !cl->unnamed_parsed)
            cl->prep_batch = 1;
        return;
    case PROTO_FE_DESCRIBE:
        if (proto_parse_fe_describe(f->body, f->len, &t) == 0 && t.kind == 'S' && t.name_len == 0 &&
            !cl->unnamed_parsed)
            cl->prep_batch = 1;
        return;
    default:
        return;
    }
}

/* The change a message passed on makes to the client's unnamed statement, noted to be settled by the
 * server's replies (proxy/unnamed.c). 0 or -1 (out of memory). */
static int note_unnamed(struct px_client *cl, const struct proto_frame *f)
{
    struct proto_fe_parse parse;
    struct proto_fe_target t;

    switch (f->type) {
    case PROTO_FE_QUERY:           /* a simple Query drops the unnamed statement */
        cl->unnamed_dealloc = 0;
        return px_unnamed_note(cl, PX_UNNAMED_QUERY, NULL, 0);
    case PROTO_FE_PARSE:
        if (px_client_parse(cl, f, &parse) < 0 || parse.name_len > 0)
            return 0;
        cl->group_unnamed = 1;
        cl->unnamed_dealloc = (uint8_t)px_prep_is_deallocate((const uint8_t *)parse.query, parse.query_len);
        return px_unnamed_note(cl, PX_UNNAMED_PARSE, f->body + 1, f->len - 1);
    case PROTO_FE_CLOSE:
        if (proto_parse_fe_close(f->body, f->len, &t) < 0 || t.kind != 'S' || t.name_len > 0)
            return 0;
        cl->group_unnamed = 1;
        cl->unnamed_dealloc = 0;
        return px_unnamed_note(cl, PX_UNNAMED_CLOSE, NULL, 0);
    default:
        return 0;
    }
}

/* A Parse or Close of a named statement: a message that changes the client's names (a DISCARD or
 * DEALLOCATE, by simple Query or unnamed Parse, is seen by client_look_at_statement). */
static int changes_names(struct px_client *cl, const struct proto_frame *f)
{
    struct proto_fe_parse parse;
    struct proto_fe_target t;

    switch (f->type) {
    case PROTO_FE_PARSE:
        return px_client_parse(cl, f, &parse) == 0 && parse.name_len > 0;
    case PROTO_FE_CLOSE:
        return proto_parse_fe_close(f->body, f->len, &t) == 0 && t.kind == 'S' && t.name_len > 0;
    default:
        return 0;
    }
}

/*
 * Whether the scan waits. Behind a request that changes statement names (names_hold), until the
 * server has answered it: pglane maps names as it forwards, and a Parse or Close the server fails or
 * skips (after an earlier error in its Sync group) is undone only when that answer comes; later
 * requests already mapped would bind a statement PostgreSQL no longer (or never) had. Costs a round
 * trip only when such a request has others pipelined behind it. At a Bind or Describe of the unnamed
 * statement (unnamed_hold), until the earlier requests are answered (unnamed_use_behind_change).
 * Never in front of the data of a COPY FROM STDIN the server is reading: the request being waited for
 * cannot end before that data has reached the server (asyncpg parses and describes a statement with a
 * Flush, then sends COPY as a Query, its data right behind).
 */
static int held(struct px_client *cl)
{
    const struct px_buf *b = &cl->conn.in;

    if (!cl->names_hold && !cl->unnamed_hold)
        return 0;
    if (px_flow_copy_in(cl) && b->pos < b->len && proto_fe_in_copy(b->data[b->pos]))
        return 0;
    if (cl->names_hold && (cl->pending_z || (cl->server && cl->server->prepq.n)))
        return 1;
    cl->names_hold = 0;
    if (cl->unnamed_hold && cl->pending_z)   /* the held message's own group is not ended: no prepq test */
        return 1;
    cl->unnamed_hold = 0;
    return 0;
}

void px_client_resume_held(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;

    if ((cl->names_hold || cl->unnamed_hold) && cl->state == CL_ACTIVE && !cl->conn.writing && b->pos < b->len &&
        !held(cl))
        px_client_on_read(cl);
}

/*
 * A Bind or Describe of the unnamed statement that relies on an earlier group's unnamed statement,
 * while a change of it (a Parse, a Close, a simple Query) in an earlier request is unanswered: the
 * server may skip or fail that change, and pglane's mapping (cache_unnamed, a replay) must know
 * which. Drivers Parse the unnamed statement in the group that binds it, and never wait here.
 */
static int unnamed_use_behind_change(const struct px_client *cl, const struct proto_frame *f)
{
    struct proto_fe_bind bind;
    struct proto_fe_target t;

    if (cl->group_unnamed || !cl->pending_z || !cl->nuchanges)
        return 0;
    if (f->type == PROTO_FE_BIND)
        return proto_parse_fe_bind_names(f->body, f->len, &bind) == 0 && bind.statement_len == 0;
    return f->type == PROTO_FE_DESCRIBE && proto_parse_fe_describe(f->body, f->len, &t) == 0 && t.kind == 'S' &&
           t.name_len == 0;
}

/* The length of a Bind's header, portal name and statement name, if avail bytes hold them, else 0. */
static uint32_t bind_prefix(const uint8_t *msg, uint32_t avail)
{
    struct proto_fe_bind bind;

    if (avail <= PROTO_HEADER_LEN ||
        proto_parse_fe_bind_names(msg + PROTO_HEADER_LEN, avail - PROTO_HEADER_LEN, &bind) < 0)
        return 0;
    return PROTO_HEADER_LEN + bind.names_len;
}

/*
 * What one step of client_scan decided: the scan ends with its result (STEP_WAIT 0: more bytes are
 * needed or nothing more matters, STEP_ERROR -1: a protocol error, STEP_FATAL -2: a 54000 error or
 * the client is closed), or it goes on with the next message (STEP_NEXT) or with this one (STEP_ON).
 */
enum scan_step { STEP_FATAL = -2, STEP_ERROR = -1, STEP_WAIT = 0, STEP_NEXT = 1, STEP_ON = 2 };

/* Drops the bytes of a discarded message that have arrived: in place, nothing after pos was forwarded. */
static enum scan_step drop_discarded(struct px_client *cl, uint32_t avail, const char **err)
{
    struct px_buf *b = &cl->conn.in;
    uint32_t n = cl->discard < avail ? cl->discard : avail;

    memmove(b->data + b->pos, b->data + b->pos + n, avail - n);
    b->len -= n;
    cl->discard -= n;
    if (cl->discard == 0 && cl->discard_fatal) {
        *err = OVERSIZE_MSG;
        return STEP_FATAL;
    }
    return STEP_NEXT;
}

/* After an error of the extended protocol, messages are discarded up to Sync, which is answered. */
static enum scan_step skip_to_sync(struct px_client *cl, uint32_t avail, const char **err)
{
    struct px_buf *b = &cl->conn.in;
    struct proto_frame f;

    if (proto_frame_header(b->data + b->pos, avail, PROTO_PHASE_FRONTEND, &f, err) != PROTO_FRAME_OK)
        return avail < PROTO_HEADER_LEN ? STEP_WAIT : STEP_ERROR;
    cl->discard = PROTO_HEADER_LEN + f.len;
    if (f.type == PROTO_FE_SYNC) {
        struct proto_buf z;

        cl->skip_sync = 0;
        cl->names_changed = 0;     /* the group was dropped unsent */
        cl->group_unnamed = 0;
        proto_buf_init(&z);
        proto_build_ready(&z, 'I');
        client_send(cl, &z);
        if (cl->state == CL_CLOSED)
            return STEP_FATAL;
    }
    return STEP_NEXT;
}

/*
 * A message over PX_BUF_MAX that would have to be read whole: read and dropped, so that the client
 * (still writing it) reads the error rather than a connection reset. Between transactions the
 * connection goes on as after any error of the extended protocol: skip to Sync.
 */
static enum scan_step drop_oversize(struct px_client *cl, const struct proto_frame *f)
{
    struct px_buf *b = &cl->conn.in;

    cl->discard = PROTO_HEADER_LEN + f->len;
    if (cl->state == CL_IDLE && b->pos == b->start && !cl->pending_z) {
        struct proto_buf e;

        proto_buf_init(&e);
        proto_build_error(&e, "ERROR", "54000", OVERSIZE_MSG, NULL, NULL);
        client_send(cl, &e);
        cl->skip_sync = 1;
        cl->unsynced = 0;
        if (cl->state == CL_CLOSED)
            return STEP_FATAL;
    } else {
        cl->discard_fatal = 1;
    }
    return STEP_NEXT;
}

/* A whole message: what it does to the prepared-statement mapping, then what routing makes of it. */
static enum scan_step look_at_whole(struct px_client *cl, struct proto_frame *f, int prepared, const char **err)
{
    struct px_buf *b = &cl->conn.in;

    /* (An unnamed Parse of "DEALLOCATE name" goes as sent: the Bind of it is what the mapping
     * rewrites, px_prep_binds_deallocate below.) */
    if (prepared && (names_statement(cl, f) || (f->type == PROTO_FE_QUERY && px_prep_is_deallocate(f->body, f->len))))
        cl->prep_batch = 1;
    if (prepared && (changes_names(cl, f) || px_prep_binds_deallocate(cl, f)))
        cl->names_changed = cl->prep_batch = 1;
    if (prepared && px_prep_unnamed_scan(cl, f))   /* cache_unnamed */
        cl->prep_batch = 1;
    if (prepared)
        track_unnamed(cl, f);
    if (f->type == PROTO_FE_QUERY || f->type == PROTO_FE_PARSE || f->type == PROTO_FE_BIND) {
        enum stmt_verdict r = client_look_at_statement(cl, f);

        if (r == STMT_QUARANTINED)     /* answered and dropped */
            return cl->state == CL_CLOSED ? STEP_FATAL : STEP_NEXT;
        if (r == STMT_HELD_BEGIN) {
            if (prepared)
                px_unnamed_forget_all(cl);   /* the held BEGIN is replayed: a simple Query all the same */
            b->pos += PROTO_HEADER_LEN + f->len;
            return STEP_NEXT;
        }
        if (r == STMT_PIN_REFUSED && client_refuse_rewrite(cl, f) < 0) {
            *err = "pglane: cannot refuse a pinning statement now (buffer full)";
            return STEP_ERROR;
        }
    }
    return STEP_ON;
}

/* A message routing or the prepared-statement mapping reads: waits until it is whole in the buffer
 * (of a large Bind, its names only; avail bytes of it are), then looks at it. */
static enum scan_step read_whole(struct px_client *cl, struct proto_frame *f, uint32_t avail, int prepared,
                                 const char **err)
{
    struct px_buf *b = &cl->conn.in;
    uint32_t whole = PROTO_HEADER_LEN + f->len;

    if (f->type == PROTO_FE_BIND && whole > ROUTE_MAX_MSG) {
        /* A large Bind streams through: only its names are needed, the values are not. */
        whole = bind_prefix(b->data + b->pos, avail < whole ? avail : whole);
        if (whole == 0 && avail >= PROTO_HEADER_LEN + f->len) {
            *err = "invalid Bind message";
            return STEP_ERROR;
        }
        if (whole == 0) {
            if (!cl->conn.writing && px_buf_reserve(b, PX_READ_MIN) < 0) {
                *err = "out of memory";
                return STEP_ERROR;
            }
            return STEP_WAIT;
        }
    }
    if (whole > PX_BUF_MAX)
        return drop_oversize(cl, f);
    if (avail < whole) {
        if (!cl->conn.writing && px_buf_reserve(b, whole - avail) < 0) {
            *err = "out of memory";
            return STEP_ERROR;
        }
        return STEP_WAIT;
    }
    f->body = b->data + b->pos + PROTO_HEADER_LEN;
    f->len = whole - PROTO_HEADER_LEN;   /* a streamed Bind: its names only */
    if (prepared && unnamed_use_behind_change(cl, f)) {
        cl->unnamed_hold = 1;      /* scanned again, from its header, once the change is answered */
        return STEP_WAIT;
    }
    return look_at_whole(cl, f, prepared, err);
}

/* Counts what a message asks of the server (a request owed a ReadyForQuery, an open extended-protocol
 * batch, replies owed) and steps the cursor over it. A Terminate ends the scan: nothing after it matters. */
static enum scan_step pass_on(struct px_client *cl, const struct proto_frame *f, int prepared, const char **err)
{
    struct px_buf *b = &cl->conn.in;

    switch (f->type) {
    case PROTO_FE_TERMINATE:
        cl->terminating = 1;
        b->len = b->pos;             /* nothing after Terminate matters */
        return STEP_WAIT;
    case PROTO_FE_FUNCTION_CALL:
        if (cl->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION)
            client_look_at_function_call(cl, f, b->len - (uint32_t)(f->body - b->data));
        /* fall through */
    case PROTO_FE_QUERY:
    case PROTO_FE_SYNC:
        cl->pending_z++;
        cl->unsynced = 0;
        cl->names_hold |= cl->names_changed;
        cl->names_changed = 0;
        cl->group_unnamed = 0;
        break;
    case PROTO_FE_PARSE:
    case PROTO_FE_BIND:
    case PROTO_FE_DESCRIBE:
    case PROTO_FE_EXECUTE:
    case PROTO_FE_CLOSE:
        cl->unsynced = 1;
        break;
    case PROTO_FE_FLUSH:           /* asks for the replies owed; opens nothing on the server */
    case PROTO_FE_COPY_DATA:
    case PROTO_FE_COPY_DONE:
    case PROTO_FE_COPY_FAIL:
        break;
    default: {
        static _Thread_local char msg[48];   /* read by the caller before the next scan */

        snprintf(msg, sizeof msg, "invalid frontend message type %d", f->type);
        *err = msg;
        return STEP_ERROR;
    }
    }
    if ((prepared && f->type != PROTO_FE_BIND && note_unnamed(cl, f) < 0) || px_flow_push(cl, f->type) < 0) {
        *err = "out of memory";
        return STEP_ERROR;
    }
    px_stats_query_begin(cl);
    proto_cursor_stream(b->data, &b->pos, &b->remain);
    return STEP_NEXT;
}

/* Scans forwarded messages, counting the requests that each end in a ReadyForQuery. */
int client_scan(struct px_client *cl, const char **err)
{
    struct px_buf *b = &cl->conn.in;
    struct proto_frame f;
    int tx_pooling = cl->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION;
    int prepared = tx_pooling && cl->conn.px->conf->max_prepared_statements > 0;
    enum scan_step r;
    int fr;

    while (b->pos < b->len) {
        uint32_t avail = b->len - b->pos;

        if (cl->discard) {         /* dropped in place: nothing after pos was forwarded */
            if ((r = drop_discarded(cl, avail, err)) != STEP_NEXT)
                return r;
            continue;
        }
        if (b->remain) {           /* the body of a message streaming through */
            uint32_t n = b->remain < avail ? b->remain : avail;

            b->pos += n;
            b->remain -= n;
            continue;
        }
        if (held(cl))              /* at a message boundary */
            return 0;
        cl->bad_at = b->pos;
        if (cl->skip_sync) {
            if ((r = skip_to_sync(cl, avail, err)) != STEP_NEXT)
                return r;
            continue;
        }
        fr = proto_cursor_next(b->data, &b->pos, b->len, &b->remain, PROTO_PHASE_FRONTEND, &f, err);
        cl->conn.px->scan_parse_body = NULL;   /* a new message (px_client_parse) */
        if (fr != PROTO_FRAME_OK)
            return fr == PROTO_FRAME_NEED_MORE ? 0 : -1;
        avail = b->len - b->pos;
        if ((tx_pooling && (f.type == PROTO_FE_QUERY || f.type == PROTO_FE_PARSE) &&
             PROTO_HEADER_LEN + f.len <= ROUTE_MAX_MSG) ||
            (prepared && is_statement_message(f.type))) {
            r = read_whole(cl, &f, avail, prepared, err);
            if (r == STEP_NEXT)
                continue;
            if (r != STEP_ON)
                return r;
        }
        if ((r = pass_on(cl, &f, prepared, err)) != STEP_NEXT)
            return r;
    }
    return 0;
}
