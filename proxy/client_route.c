/*
 * What a statement means for its transaction (proxy/client_route.c), in transaction pooling: the lane
 * the first statement routes the transaction to, a BEGIN held until then, the session-state checks,
 * and the statements pglane refuses (pin = refuse, the contention guard's quarantine).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/client_internal.h"
#include "proxy/proxy.h"
#include "proxy/state.h"
#include "proxy/tenant.h"
#include "routing/route.h"

/* What one pass over a statement's bytes tells about session state (transaction pooling). */
enum {
    TXT_CALL = ROUTE_TXT_CALL,   /* a '(': perhaps a function call, which only the grammar can judge */
    TXT_TEMP = ROUTE_TXT_TEMP,   /* "temp": perhaps CREATE TEMP TABLE ... AS, SELECT INTO TEMP */
    TXT_SET = ROUTE_TXT_SET,     /* a statement starting with SET or RESET, or "set_config": learn the names */
    TXT_NAMES = ROUTE_TXT_NAMES, /* DISCARD or DEALLOCATE: what follows waits for its answer (client_scan.c) */
};

static int text_flags(const uint8_t *p, size_t n)
{
    return route_text_flags((const char *)p, n);
}

static int lane_refuses_pins(const struct px_client *cl)
{
    const struct proxy *px = cl->conn.px;

    return cl->lane >= 0 && cl->lane < px->nlanes && px->lanes[cl->lane]->conf->pin == CONF_PIN_REFUSE;
}

/*
 * Whether pglane's lexer and grammar may misread where the client's strings end: with
 * standard_conforming_strings off a backslash escapes a quote in '...'; in the client encodings whose
 * characters' second bytes can be ASCII (SJIS, BIG5, GBK, ...) one of those bytes can be a backslash
 * that PostgreSQL, which converts the text first, does not see (E'\x83\x5c' is one character there).
 * Either way a call after such a string can hide from the scanners.
 */
static int text_unreliable(const struct px_client *cl)
{
    static const char *const ascii_trail[] = { "SJIS", "SHIFT_JIS_2004", "BIG5", "GBK", "UHC", "GB18030", "JOHAB" };
    const char *e = cl->want.v[PX_P_CLIENT_ENCODING];

    if (cl->scs_off)
        return 1;
    if (!e || !strchr("SBGUJ", e[0]))
        return 0;
    for (size_t i = 0; i < sizeof(ascii_trail) / sizeof(ascii_trail[0]); i++)
        if (strcasecmp(e, ascii_trail[i]) == 0)
            return 1;
    return 0;
}

/* Session state checks for one statement: custom setting names to remember, and the grammar's
 * opinion when the bytes suggest a function call or a temporary object (or the lane refuses pins).
 * had: changes_session before the statement was routed (routing may classify it). */
static void look_at_session(struct px_client *cl, const char *sql, size_t len, int tflags, int classified, int had)
{
    const struct route_class *cls;
    /* A SET of a setting that no statement's reading depends on (work_mem, statement_timeout, a
     * custom setting): the session is still checked at the transaction's end, but the settings
     * pglane keeps with statements stay known (so far only such SETs changed the session). */
    int inert = (tflags & TXT_SET) && (!had || cl->unsure_at == PX_UNSURE_NONE) && !text_unreliable(cl) &&
                route_set_inert(sql, len);

    if (tflags & TXT_SET)
        px_session_learn(cl, sql, len);
    if (text_unreliable(cl)) {
        /* Every transaction is checked, and words that pin for good count wherever they stand. */
        cl->changes_session = 1;
        px_session_learn_raw(cl, sql, len);
    }
    /* A SET (its new value comes with its reply) or a statement after which the session is checked:
     * statements parsed behind it are this client's own (stmt_get). Its place: pushed after its scan. */
    if (!inert && (cl->changes_session || (tflags & TXT_SET)) && PX_UNSURE_UNSET(cl))
        cl->unsure_at = cl->flow.pushed + 1;
    if (inert && !cl->unsure_at)
        cl->unsure_at = PX_UNSURE_NONE;   /* changes_session, but the settings are known */
    if (classified)
        return;
    cl->stmt_pins = 0;
    if (!lane_refuses_pins(cl) && (cl->changes_session || !(tflags & (TXT_CALL | TXT_TEMP))))
        return;
    cls = px_route_classify(cl->conn.px, sql, len);
    if (cls) {
        cl->changes_session |= cls->changes_session || cls->opaque;
        cl->stmt_pins = cls->pins;
    }
}

/* The highest $n a statement references (0 if none). */
static uint32_t max_param(const char *sql, size_t len)
{
    return route_max_param(sql, len);
}

/*
 * Under pin = refuse, replaces a Query or Parse that would pin with a DO block that raises 0A000, so
 * that PostgreSQL itself fails it at the right place in the transaction. A Parse keeps its name and
 * declares as many parameters as the statement used (as bytea, which takes any binary value and
 * text without stray backslashes), so that the client's Bind still matches. The message is whole at
 * b->pos. Returns 0, or -1 when the buffer cannot grow now.
 */
int client_refuse_rewrite(struct px_client *cl, struct proto_frame *f)
{
    static const char head[] = "DO $pglane$BEGIN RAISE EXCEPTION USING ERRCODE='0A000',MESSAGE=E'";
    struct px_buf *b = &cl->conn.in;
    const char *lane = cl->conn.px->lanes[cl->lane]->conf->name;
    char msg[256];
    struct proto_buf body;
    struct proto_fe_parse parse;
    uint32_t old_len = f->len, new_len, tail;
    int reason = 0;

    if (f->type == PROTO_FE_PARSE && px_client_parse(cl, f, &parse) < 0)
        return -1;                 /* not reached: client_look_at_statement parsed it */
    while (!(cl->stmt_pins & (1u << reason)))
        reason++;
    /* What the client's sticky state learnt from this statement's text: it will not run. */
    cl->sticky &= (uint16_t)~(cl->stmt_pins & (ROUTE_PIN_SEED | ROUTE_PIN_REPLICATION | ROUTE_PIN_DBLINK));
    snprintf(msg, sizeof(msg), "pglane: lane \"%s\" refuses statements that pin a server connection "
             "(%s); its setting is pin = refuse", lane, px_pin_name(reason));
    proto_buf_init(&body);
    if (f->type == PROTO_FE_PARSE)
        proto_put_cstr(&body, parse.name);
    proto_put_bytes(&body, head, sizeof(head) - 1);
    for (const char *p = msg; *p; p++) {
        if (*p == '\'' || *p == '\\')
            proto_put_bytes(&body, p, 1);
        proto_put_bytes(&body, *p == '$' ? "_" : p, 1);   /* nothing may close the dollar quote */
    }
    proto_put_cstr(&body, "';END$pglane$");
    if (f->type == PROTO_FE_PARSE) {
        uint32_t used = max_param(parse.query, parse.query_len), np = used > parse.ntypes ? used : parse.ntypes;

        proto_put_u16(&body, (uint16_t)np);
        for (uint32_t i = 0; i < np; i++)
            proto_put_u32(&body, 17);                   /* bytea */
    }
    new_len = (uint32_t)body.len;
    /* Growing may move the buffer: not while a write of its bytes is in flight. */
    if (body.failed || (new_len > old_len && b->cap - b->len < new_len - old_len &&
                        (cl->conn.writing || px_buf_reserve(b, new_len - old_len) < 0))) {
        proto_buf_free(&body);
        return -1;
    }
    tail = b->pos + PROTO_HEADER_LEN + old_len;
    memmove(b->data + tail + new_len - old_len, b->data + tail, b->len - tail);
    memcpy(b->data + b->pos + PROTO_HEADER_LEN, body.data, new_len);
    proto_buf_free(&body);
    b->len = b->len + new_len - old_len;
    f->len = new_len;
    b->data[b->pos + 1] = (uint8_t)((f->len + 4) >> 24);
    b->data[b->pos + 2] = (uint8_t)((f->len + 4) >> 16);
    b->data[b->pos + 3] = (uint8_t)((f->len + 4) >> 8);
    b->data[b->pos + 4] = (uint8_t)(f->len + 4);
    f->body = b->data + b->pos + PROTO_HEADER_LEN;
    cl->conn.px->scan_parse_body = NULL;   /* rewritten in place: parsed again if looked at (px_client_parse) */
    CLOG(cl, CONF_LOG_INFO, "refused a statement that pins (%s): lane %s has pin = refuse", px_pin_name(reason),
         lane);
    return 0;
}

/*
 * The tag of a BEGIN pglane may hold: a bare one, or one whose options (ISOLATION LEVEL, READ ONLY,
 * DEFERRABLE) PostgreSQL's grammar accepts, alone in its Query. NULL for anything else: a BEGIN that
 * could fail goes to a server, so that its error is PostgreSQL's.
 */
static const char *begin_tag(const char *sql, size_t len)
{
    return route_begin_tag(sql, len);
}

/* Answers a BEGIN for the server that will run the transaction: the client sees PostgreSQL's tag at
 * once, the message stays in the buffer and is replayed once the next statement picks the lane. */
static void hold_begin(struct px_client *cl, uint32_t whole, const char *tag)
{
    struct proto_buf out;
    size_t start;

    cl->held_begin = whole;
    px_client_set_tx_route(cl, cl->tx_route == TXR_LANE_DECIDED ? TXR_BEGIN_HELD_DECIDED : TXR_BEGIN_HELD);
    proto_buf_init(&out);
    start = proto_msg_begin(&out, PROTO_BE_COMMAND_COMPLETE);
    proto_put_cstr(&out, tag);
    proto_msg_end(&out, start);
    proto_build_ready(&out, 'T');
    client_send(cl, &out);
}

static enum stmt_verdict route_statement(struct px_client *cl, const struct proto_frame *f, const char *sql,
                                         size_t len, int *classified);

/* Answers the transaction's first request with the ErrorResponse in out instead of running it (the
 * held BEGIN, if any, is dropped with it). */
static void refuse_request(struct px_client *cl, const struct proto_frame *f, struct proto_buf *out)
{
    struct px_buf *b = &cl->conn.in;
    uint32_t held = cl->held_begin;

    if (held) {
        memmove(b->data + b->start, b->data + b->start + held, b->len - (b->start + held));
        b->len -= held;
        b->pos -= held;
    }
    cl->discard = proto_get_u32(b->data + b->pos + 1) + 1;   /* the whole message, even a streamed Bind */
    if (f->type == PROTO_FE_QUERY)
        proto_build_ready(out, held ? 'E' : 'I');
    else
        cl->skip_sync = 1;
    cl->fingerprint = 0;
    px_client_set_tx_route(cl, TXR_NONE);   /* the held BEGIN, if any, is dropped */
    cl->changes_session = 0;
    cl->unsure_at = 0;
    cl->tx_reads = 0;
    client_send(cl, out);
}

/*
 * The first statement of a transaction has a shape the contention guard quarantined on this
 * (preemptible) lane: pglane answers it with 55P03 and it never reaches PostgreSQL. A held BEGIN goes
 * with it (its block is then a failed one: ReadyForQuery 'E'); an extended-protocol request is skipped
 * up to its Sync. Returns 1 if refused.
 */
static int refuse_quarantined(struct px_client *cl, const struct proto_frame *f)
{
    struct proxy *px = cl->conn.px;
    struct proto_buf out;

    proto_buf_init(&out);
    if (!px_guard_refuse(px, cl->fingerprint, px->lanes[cl->lane], &out)) {
        proto_buf_free(&out);
        return 0;
    }
    px_info("C-%llu guard: refused quarantined statement shape %016llx on lane %s",
            (unsigned long long)cl->conn.id, (unsigned long long)cl->fingerprint, px->lanes[cl->lane]->conf->name);
    refuse_request(cl, f, &out);
    return 1;
}

/* A read of a lane with replica_fallback = error while no replica is eligible: 57P03. 1 if refused. */
static int refuse_read(struct px_client *cl, const struct proto_frame *f)
{
    struct proto_buf out;

    if (!cl->tx_reads)
        return 0;
    proto_buf_init(&out);
    if (!px_replica_refuse(cl, &out)) {
        proto_buf_free(&out);
        return 0;
    }
    refuse_request(cl, f, &out);
    return 1;
}

/*
 * Looks at a whole Query or Parse message in transaction pooling: the session-change check for every
 * one, and the routing decision for the first of a transaction.
 */
enum stmt_verdict client_look_at_statement(struct px_client *cl, const struct proto_frame *f)
{
    const char *sql = (const char *)f->body;
    size_t len = f->len ? f->len - 1 : 0;
    int tflags, classified = 0, had;
    enum stmt_verdict r;
    struct proto_fe_parse parse;
    struct proto_fe_bind bind;

    if (f->type == PROTO_FE_PARSE) {
        if (px_client_parse(cl, f, &parse) < 0)
            return STMT_FORWARD;
        sql = parse.query;
        len = parse.query_len;
    } else if (f->type == PROTO_FE_BIND) {
        /* A Bind runs a statement prepared earlier: look at that statement's text. */
        if (proto_parse_fe_bind_names(f->body, f->len, &bind) < 0 ||
            !(sql = px_prep_statement_text(cl, bind.statement, &len)))
            return STMT_FORWARD;
    }
    tflags = text_flags((const uint8_t *)sql, len);
    if (tflags & ROUTE_TXT_DDL)
        px_prep_ddl_seen();        /* Parses behind it, pipelined too, prepare afresh */
    had = cl->changes_session;
    r = route_statement(cl, f, sql, len, &classified);
    if (r != STMT_FORWARD)
        return r;
    if ((tflags & TXT_CALL) && route_mentions_sequence_change(sql, len))
        cl->seq_tx = 1;            /* may call nextval(): its server's sequence state becomes its own */
    if ((tflags & TXT_NAMES) && f->type != PROTO_FE_BIND && cl->conn.px->conf->max_prepared_statements > 0)
        cl->names_changed = 1;     /* a simple Query or an unnamed Parse that may drop statement names */
    look_at_session(cl, sql, len, tflags, classified, had);
    return f->type != PROTO_FE_BIND && cl->stmt_pins && lane_refuses_pins(cl) ? STMT_PIN_REFUSED : STMT_FORWARD;
}

/*
 * A FunctionCall names its function by OID, so pglane cannot tell what it does to the session (a
 * fast-path set_config or pg_advisory_lock, say): the transaction is checked afterwards, as after a
 * DO. The built-ins whose state no check can read are known by their OIDs, which are fixed in
 * PostgreSQL's catalog (src/include/catalog/pg_proc.dat): setseed and
 * pg_replication_origin_session_setup pin for good as their SQL calls do, nextval and setval mark the
 * sequence state; the large-object calls libpq's lo_* functions make leave nothing past the
 * transaction (PostgreSQL closes large-object descriptors at its end) and need no check.
 */
void client_look_at_function_call(struct px_client *cl, const struct proto_frame *f, uint32_t have)
{
    enum { F_NEXTVAL = 1574, F_SETVAL = 1576, F_SETVAL3 = 1765, F_SETSEED = 1599, F_ORIGIN_SETUP = 6006 };
    /* 0, no function's OID: the message is too short here to tell which one */
    uint32_t oid = f->len >= 4 && have >= 4 ? proto_get_u32(f->body) : 0;

    switch (oid) {
    case 715: case 952: case 953: case 954: case 955: case 956: case 957:   /* lo_create .. lo_creat */
    case 958: case 964: case 1004: case 3170: case 3171: case 3172:         /* lo_tell .. lo_truncate64 */
        return;
    case 0:                        /* not known which function: it may use a sequence */
    case F_NEXTVAL:
    case F_SETVAL:
    case F_SETVAL3:
        cl->seq_tx = 1;
        break;
    case F_SETSEED:
        cl->sticky |= 1u << PX_PIN_SEED;
        break;
    case F_ORIGIN_SETUP:
        cl->sticky |= 1u << PX_PIN_REPLICATION;
        break;
    default:
        break;
    }
    cl->changes_session = 1;
    if (PX_UNSURE_UNSET(cl))
        cl->unsure_at = cl->flow.pushed + 1;
}

/* A lane with several servers: whether the transaction only reads decides where it runs
 * (proxy/replica.c); the held BEGIN, if any, is at the start of the client's buffer. */
static void note_reads(struct px_client *cl, const char *sql, size_t len)
{
    struct proxy *px = cl->conn.px;
    const struct px_buf *b = &cl->conn.in;

    cl->tx_reads = 0;
    if (cl->lane < 0 || cl->lane >= px->nlanes || px->lanes[cl->lane]->neps < 2)
        return;
    if (cl->held_begin > PROTO_HEADER_LEN + 1)
        px_replica_note_statement(cl, sql, len, (const char *)b->data + b->start + PROTO_HEADER_LEN,
                                  cl->held_begin - PROTO_HEADER_LEN - 1);
    else
        px_replica_note_statement(cl, sql, len, NULL, 0);
}

/* The routing decision for the first statement of a transaction; *classified when routing
 * classified it (and so merged its session flags). STMT_FORWARD, STMT_HELD_BEGIN or STMT_QUARANTINED
 * (also: a read refused by replica_fallback = error). */
static enum stmt_verdict route_statement(struct px_client *cl, const struct proto_frame *f, const char *sql,
                                         size_t len, int *classified)
{
    struct proxy *px = cl->conn.px;
    int tx_start = cl->state == CL_IDLE && cl->conn.in.pos == cl->conn.in.start + cl->held_begin;
    const char *tag;
    int lane;

    if (!tx_start)
        return STMT_FORWARD;
    px_tenant_note_hint(cl, sql, len);
    if (cl->tx_route == TXR_BEGIN_HELD_DECIDED) {
        note_reads(cl, sql, len);  /* the identity chose the lane when the BEGIN was held */
        return refuse_read(cl, f) ? STMT_QUARANTINED : STMT_FORWARD;
    }
    lane = px_route_identity_hit(px, cl);
    if (lane != ROUTE_NEED_STATEMENT) {
        cl->lane = (int16_t)lane;
        cl->tx_rule = cl->identity_rule;
        px_client_tx_route_decide(cl);
        /* With server_retry, a bare BEGIN is held too: it goes with the transaction's first statement,
         * so that both can be resent if the server connection turns out dead (proxy/retry.c). In a
         * lane with several servers, the statement after it tells where the transaction runs. */
        if (f->type == PROTO_FE_QUERY && !cl->held_begin && lane >= 0 && lane < px->nlanes &&
            (px->lanes[lane]->conf->server_retry > 0 || px->lanes[lane]->neps > 1) &&
            (tag = begin_tag(sql, len)) != NULL) {
            hold_begin(cl, PROTO_HEADER_LEN + f->len, tag);
            return STMT_HELD_BEGIN;
        }
        note_reads(cl, sql, len);
        return refuse_read(cl, f) ? STMT_QUARANTINED : STMT_FORWARD;
    }
    if (f->type == PROTO_FE_QUERY && !cl->held_begin && (tag = begin_tag(sql, len)) != NULL) {
        hold_begin(cl, PROTO_HEADER_LEN + f->len, tag);
        return STMT_HELD_BEGIN;
    }
    cl->lane = (int16_t)px_route_statement(px, cl, sql, len);
    cl->tx_rule = (int16_t)px_route_last_rule();
    px_client_tx_route_decide(cl);
    *classified = 1;
    note_reads(cl, sql, len);
    return (px->guard && refuse_quarantined(cl, f)) || refuse_read(cl, f) ? STMT_QUARANTINED : STMT_FORWARD;
}
