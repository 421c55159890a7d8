/*
 * Named prepared statements in transaction pooling. A client's statement names are its own; the
 * statements themselves are shared by text and parameter types under pglane's names ("_pgl_<id>"),
 * prepared on each server connection the first time a client needs them there, and kept in a
 * bounded per-server LRU cache. Each message sent to a server while this is in play gets an entry in
 * that server's response queue, so that replies pglane caused are dropped and replies pglane owes
 * (ParseComplete for a statement the server already has, CloseComplete) are produced at exactly the
 * place in the stream where a direct connection would have produced them. This file rewrites what
 * the client sends; the statements and names are proxy/prepared_registry.c, the response queue
 * proxy/prepared_queue.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/prepared_internal.h"
#include "proxy/proxy.h"
#include "proxy/state.h"
#include "routing/route.h"

/* ---- building what a server gets ---- */

/* A statement name no server has: a Bind or Describe of it fails as a stale statement must. */
#define STALE_NAME "_pgl_stale_result_type"

/* Whether the message at p (n bytes there) is a whole Describe of the portal named portal: a client
 * that describes the portal it binds reads the columns it is sent (libpq, node-postgres). */
static int describes_portal(const uint8_t *p, uint32_t n, const char *portal)
{
    struct proto_fe_target t;
    uint32_t len;

    if (n < PROTO_HEADER_LEN || p[0] != PROTO_FE_DESCRIBE || (len = proto_get_u32(p + 1) - 4) > n - PROTO_HEADER_LEN ||
        proto_parse_fe_describe(p + PROTO_HEADER_LEN, len, &t) != 0)
        return 0;
    return t.kind == 'P' && strcmp(t.name, portal) == 0;
}

/* Whether a client reads the columns it is sent for the whole Bind body (len bytes) followed, at p
 * (n bytes), by what the client sent next: it describes the portal (libpq, node-postgres) and asks
 * for at most one result format. A format code per column (pgx) relies on the columns it was told:
 * with a column more, PostgreSQL refuses the Bind ("bind message has 2 result formats but query has 3
 * columns"), where the connection that prepared the statement before the change answers 0A000. */
static int reads_sent_columns(const uint8_t *body, uint32_t len, const uint8_t *p, uint32_t n)
{
    struct proto_fe_bind bind;

    return describes_portal(p, n, (const char *)body) && proto_parse_fe_bind(body, len, &bind) == 0 &&
           bind.nresults <= 1;
}

/* pglane's name of statement id on servers, "_pgl_<id>", into name (at least 16 bytes); its length.
 * Written by hand: it is formatted for every Bind and Describe of a mapped statement. */
static size_t wire_name(char *name, uint32_t id)
{
    char digits[10];
    size_t n = 0, k = 0;

    do
        digits[n++] = (char)('0' + id % 10);
    while ((id /= 10) != 0);
    memcpy(name, "_pgl_", 5);
    k = 5;
    while (n > 0)
        name[k++] = digits[--n];
    name[k] = '\0';
    return k;
}

static void put_name(struct proto_buf *out, uint32_t id)
{
    char name[16];

    proto_put_bytes(out, name, wire_name(name, id) + 1);
}

/* A Close of pglane's statement id on the server, or of the server's unnamed statement (id 0). */
static void put_close(struct proto_buf *out, uint32_t id)
{
    size_t start = proto_msg_begin(out, PROTO_FE_CLOSE);

    proto_put_u8(out, 'S');
    if (id)
        put_name(out, id);
    else
        proto_put_u8(out, 0);
    proto_msg_end(out, start);
}

/* A Parse of shared statement s under pglane's name. */
static void put_parse(struct proto_buf *out, const struct px_stmt *s)
{
    size_t start = proto_msg_begin(out, PROTO_FE_PARSE);

    put_name(out, s->id);
    proto_put_bytes(out, s->body, s->len);
    proto_msg_end(out, start);
}

/* A Describe of pglane's statement id. */
static void put_describe(struct proto_buf *out, uint32_t id)
{
    size_t start = proto_msg_begin(out, PROTO_FE_DESCRIBE);

    proto_put_u8(out, 'S');
    put_name(out, id);
    proto_msg_end(out, start);
}

/* Makes room in the server's cache, closing the least recently used statement. */
static int cache_make_room(struct px_server *sv, struct proto_buf *out)
{
    struct proxy *px = sv->conn.px;
    int max = px->conf->max_prepared_statements, victim = -1;
    uint32_t id;

    if (sv->ncached < max)
        return 0;
    for (int i = 0; i < sv->ncached; i++)
        if (!sv->cached[i].pending && (victim < 0 || sv->cached[i].used < sv->cached[victim].used))
            victim = i;
    if (victim < 0)
        return 0;                   /* everything is in flight: let the cache run over for now */
    id = sv->cached[victim].id;
    put_close(out, id);
    sv->cached[victim] = sv->cached[--sv->ncached];
    px->prep_evictions++;
    return queue_push(sv, Q_CLOSE, Q_SWALLOW | Q_EVICT, id);
}

/* Makes sure the server has the statement, preparing it first if not. */
static int ensure_as(struct px_server *sv, struct px_stmt *s, struct proto_buf *out, int flags,
                     const char *name);

static int ensure(struct px_server *sv, struct px_stmt *s, struct proto_buf *out, int flags)
{
    return ensure_as(sv, s, out, flags, NULL);
}

/* The client's own Parse: its reply is the client's, and its name goes if the Parse fails. */
static int ensure_named(struct px_server *sv, struct px_stmt *s, struct proto_buf *out, const char *name)
{
    return ensure_as(sv, s, out, Q_NEWNAME, name);
}

/* ---- the settings a statement's constants were read under ---- */

#define SETTINGS_PORTAL "_pgl_settings"
static const int settings_params[PREP_NSETTINGS] = PREP_SETTINGS;

/* The server's value of tracked parameter i as pglane knows it. */
static const char *server_value(const struct px_server *sv, int i)
{
    return sv->have.v[i] ? sv->have.v[i] : sv->pool->defaults.v[i];
}

/* A literal in the statement's text (a quoted or dollar-quoted string): the only place these settings
 * are read at the Parse. */
static int has_literal(const struct px_stmt *s)
{
    for (const uint8_t *p = s->body; *p; p++)
        if (*p == '\'' || (*p == '$' && (p[1] == '$' || (p[1] >= 'A' && p[1] != '\\'))))
            return 1;
    return 0;
}

/* Parses pglane's own unnamed statement (its ParseComplete swallowed). */
static int put_own_unnamed(struct px_server *sv, const char *text, uint16_t nparams, struct proto_buf *out)
{
    size_t start = proto_msg_begin(out, PROTO_FE_PARSE);

    proto_put_u8(out, 0);
    proto_put_cstr(out, text);
    proto_put_u16(out, nparams);
    for (uint16_t i = 0; i < nparams; i++)
        proto_put_u32(out, 25);    /* text */
    proto_msg_end(out, start);
    return queue_push(sv, Q_PARSE, Q_SWALLOW, 0);
}

/* Binds and runs pglane's unnamed statement with the values vals[] (NULL: none), in a portal of its
 * own that it closes; the replies swallowed. */
static int put_settings_run(struct px_server *sv, const char *const *vals, struct proto_buf *out)
{
    size_t start = proto_msg_begin(out, PROTO_FE_BIND);
    uint16_t n = vals ? PREP_NSETTINGS : 0;

    proto_put_cstr(out, SETTINGS_PORTAL);
    proto_put_u8(out, 0);
    proto_put_u16(out, 0);
    proto_put_u16(out, n);
    for (size_t i = 0; i < n; i++) {
        proto_put_u32(out, (uint32_t)strlen(vals[i]));
        proto_put_bytes(out, vals[i], strlen(vals[i]));
    }
    proto_put_u16(out, 0);
    proto_msg_end(out, start);
    start = proto_msg_begin(out, PROTO_FE_EXECUTE);
    proto_put_cstr(out, SETTINGS_PORTAL);
    proto_put_u32(out, 0);
    proto_msg_end(out, start);
    start = proto_msg_begin(out, PROTO_FE_CLOSE);
    proto_put_u8(out, 'P');
    proto_put_cstr(out, SETTINGS_PORTAL);
    proto_msg_end(out, start);
    return queue_push(sv, Q_BIND, Q_SWALLOW, 0) < 0 || queue_push(sv, Q_EXEC, Q_SWALLOW, 0) < 0 ||
                   queue_push(sv, Q_CLOSE, Q_SWALLOW, 0) < 0
               ? -1
               : 0;
}

/* Each setting is kept in a custom setting of pglane's (for the transaction) before it is set: the
 * value is an argument of the set, so the keeping comes first. */
#define KEEP_AND_SET(name, var, n)                                                                   \
    "pg_catalog.set_config('" name "', $" n " || pg_catalog.left(pg_catalog.set_config('" var       \
    "', pg_catalog.current_setting('" name "'), true), 0), true)"
#define PUT_BACK(name, var) "pg_catalog.set_config('" name "', pg_catalog.current_setting('" var "'), true)"

/*
 * PostgreSQL reads a statement's constants ('01/02/2024'::date, a timestamptz, an interval) once, at
 * its Parse, under the DateStyle, IntervalStyle and TimeZone of that moment, and keeps that reading.
 * Prepared on this server connection later, for a client that has changed them since, the statement's
 * Parse is put between two statements of pglane's: the first keeps the server's values in custom
 * settings (pglane.datestyle, ...) and sets the statement's own (s; here), the second puts the kept
 * ones back (put_settings_back, behind the Parse). Both act for the transaction (set_config's
 * is_local): nothing outlives it, and PostgreSQL 14 and later report a setting only when it differs at
 * ReadyForQuery. The server's values are read on the server, so a SET of the client's whose reply has
 * not come back yet is kept and put back too. Only for texts with a literal, outside a failed
 * transaction. 1: the first run is written; 0: not needed; -1: out of memory.
 */
static int put_parse_settings(struct px_server *sv, const struct px_stmt *s, struct proto_buf *out)
{
    static const char keep_and_set[] =
        "select " KEEP_AND_SET("DateStyle", "pglane.datestyle", "1") ", "
        KEEP_AND_SET("IntervalStyle", "pglane.intervalstyle", "2") ", " KEEP_AND_SET("TimeZone", "pglane.timezone", "3");
    struct px_client *cl = sv->client;
    const char *vals[PREP_NSETTINGS];
    const char *p = (const char *)s->body + s->len;
    int differ = 0, known;

    if (!s->settings_len || !cl || sv->tx_status == 'E' || !has_literal(s) || px_pool_server_major(sv->pool) < 14)
        return 0;
    /* Where pglane knows the server's values (nothing before this message in its transaction may have
     * changed them unread), nothing is done when they are the statement's already. */
    known = !px_settings_unsure(cl, cl->pass_ord) && !(sv->dirty & PX_DIRTY_CHECK);
    for (size_t i = 0; i < PREP_NSETTINGS; i++) {
        const char *now = server_value(sv, settings_params[i]);

        vals[i] = p;
        differ |= !known || !now || strcmp(p, now) != 0;
        p += strlen(p) + 1;
    }
    if (!differ)
        return 0;
    sv->unnamed_owner = 0;         /* the server's unnamed statement is pglane's: a client's is replayed */
    cl->unnamed_parsed = 0;
    if (put_own_unnamed(sv, keep_and_set, PREP_NSETTINGS, out) < 0 || put_settings_run(sv, vals, out) < 0)
        return -1;
    return 1;
}

/* The server's own values back, behind the Parse put_parse_settings wrapped. */
static int put_settings_back(struct px_server *sv, struct proto_buf *out)
{
    static const char put_back[] =
        "select " PUT_BACK("DateStyle", "pglane.datestyle") ", " PUT_BACK("IntervalStyle", "pglane.intervalstyle") ", "
        PUT_BACK("TimeZone", "pglane.timezone");

    return put_own_unnamed(sv, put_back, 0, out) < 0 ? -1 : put_settings_run(sv, NULL, out);
}

static int ensure_as(struct px_server *sv, struct px_stmt *s, struct proto_buf *out, int flags,
                     const char *name)
{
    struct proxy *px = sv->conn.px;
    int i = cache_find(sv, s->id), wrapped;

    if (i >= 0) {
        struct px_cached *c = &sv->cached[i];

        c->used = ++sv->tick;
        if (!c->pending || c->group == sv->groups)
            return 1;
        /* Its Parse went in an earlier request still unanswered, which an error may have made the
         * server skip: prepared again here, behind a Close (which never fails) in case it was not. */
        put_close(out, s->id);
        if (queue_push(sv, Q_CLOSE, Q_SWALLOW | Q_REPREP, s->id) < 0)
            return -1;
        c->pending++;
        c->group = sv->groups;
        c->shape = 0;              /* a new preparation: its columns are not known yet */
    } else {
        if (cache_make_room(sv, out) < 0 || cache_grow(sv) < 0)
            return -1;
        sv->cached[sv->ncached++] = (struct px_cached){ s->id, ++sv->tick, 1, 0, sv->groups, 0 };
    }
    if ((wrapped = put_parse_settings(sv, s, out)) < 0)
        return -1;
    put_parse(out, s);
    px->prep_parses++;
    if (queue_push_name(sv, Q_PARSE, (uint8_t)flags, s->id, name) < 0)
        return -1;
    return wrapped && put_settings_back(sv, out) < 0 ? -1 : 0;
}

static void raw(struct proto_buf *out, const uint8_t *msg, uint32_t n)
{
    proto_put_bytes(out, msg, n);
}

static int deallocate_name(const char *sql, size_t len, char *name, size_t cap);

/*
 * Whether the rest of the Sync group (the bytes behind the message being mapped; with past_ready, all
 * of p[0..n), whatever groups it holds) sets the transaction's mode in a Parse or a simple Query
 * (route_sets_tx_mode): PostgreSQL refuses that (25001) after a Parse of a query, which takes the
 * snapshot, so such a Parse must reach the server rather than be answered by pglane. Only what has
 * arrived is seen.
 */
static int sets_tx_mode(const uint8_t *p, uint32_t n, int past_ready)
{
    struct proto_fe_parse parse;
    uint32_t off = 0;

    while (n - off > PROTO_HEADER_LEN) {
        uint32_t len = proto_get_u32(p + off + 1) - 4;

        if (len > n - off - PROTO_HEADER_LEN)
            return 0;
        if (p[off] == PROTO_FE_PARSE && proto_parse_fe_parse(p + off + PROTO_HEADER_LEN, len, &parse) == 0 &&
            route_sets_tx_mode(parse.query, parse.query_len))
            return 1;
        if (p[off] == PROTO_FE_QUERY && len > 0 && route_sets_tx_mode((const char *)p + off + PROTO_HEADER_LEN, len - 1))
            return 1;
        if (!past_ready && proto_fe_gets_ready(p[off]))
            return 0;
        off += PROTO_HEADER_LEN + len;
    }
    return 0;
}

static int group_sets_tx_mode_later(const uint8_t *p, uint32_t n)
{
    return sets_tx_mode(p, n, 0);
}

static int on_unnamed_parse(struct px_client *cl, struct px_server *sv, const uint8_t *msg, uint32_t len,
                            struct proto_buf *out);

static int on_parse(struct px_client *cl, struct px_server *sv, const uint8_t *msg, uint32_t len,
                    struct proto_buf *out)
{
    const uint8_t *body = msg + PROTO_HEADER_LEN;
    struct proto_fe_parse parse;
    size_t nl;
    struct px_cstmt *cs;
    struct px_stmt *s;
    int r;

    if (proto_parse_fe_parse(body, len, &parse) < 0) {
        raw(out, msg, PROTO_HEADER_LEN + len);     /* the server refuses it */
        return queue_push(sv, Q_PARSE, 0, 0);
    }
    nl = parse.name_len;
    if (nl == 0) {
        /* An unnamed "DEALLOCATE name" too is parsed as the client sent it: the name is looked up when
         * a portal of it is bound (xdealloc_bind), as PostgreSQL looks it up when it runs. */
        px_unnamed_parse_sent(sv, cl, cl->pass_ord - 1, cl->pass_ord);
        cl->pass_unnamed_set = 1;      /* the client's unnamed statement from here on in this pass */
        cl->pass_unnamed = body + 1;
        cl->pass_unnamed_len = len - 1;
        return on_unnamed_parse(cl, sv, msg, len, out);
    }
    if ((cs = cstmt_find(cl, (const char *)body)) != NULL) {
        /* The name is taken: PostgreSQL refuses with 42P05 and keeps the statement. The server is
         * asked to prepare pglane's name of the existing statement again, which it refuses the same
         * way (or with 25P02 in a failed transaction); the message is made to name the client's. */
        size_t start;

        if (ensure(sv, cs->stmt, out, Q_SWALLOW) < 0)
            return -1;
        start = proto_msg_begin(out, PROTO_FE_PARSE);
        put_name(out, cs->stmt->id);
        proto_put_bytes(out, body + nl + 1, len - nl - 1);
        proto_msg_end(out, start);
        return queue_push_name(sv, Q_PARSE, Q_DUPNAME, 0, (const char *)body);
    }
    if (over_client_limit(cl))
        return -1;
    s = stmt_get(cl, body + nl + 1, len - (uint32_t)nl - 1, cl->pass_ord);
    if (!s || cstmt_set(cl, (const char *)body, s) < 0)
        return -1;
    r = ensure_named(sv, s, out, (const char *)body);
    if (r < 0)
        return -1;
    if (r == 1 && (sv->tx_status != 'I' || queue_has_end(sv) || cl->pass_group_open ||
                   group_sets_tx_mode_later(cl->pass_rest, cl->pass_rest_len))) {
        /* The server has it, but this Parse may meet a failed transaction (PostgreSQL: 25P02 and no
         * statement), or one that a message earlier in its group began, or a later one sets the mode
         * of, where PostgreSQL's Parse of a query takes the snapshot (a SET TRANSACTION ISOLATION
         * LEVEL after it fails): the server parses the text as its unnamed statement, and its answer
         * is the client's. */
        size_t start = proto_msg_begin(out, PROTO_FE_PARSE);

        proto_put_u8(out, 0);
        proto_put_bytes(out, body + nl + 1, len - nl - 1);
        proto_msg_end(out, start);
        sv->unnamed_owner = 0;     /* the client's unnamed statement, if any, is replayed when used */
        cl->unnamed_parsed = 0;
        return queue_push_name(sv, Q_PARSE, Q_NEWNAME, 0, (const char *)body);
    }
    if (r == 1) {                  /* the server has it: ParseComplete is pglane's to give */
        cl->conn.px->prep_hits++;
        return queue_push_name(sv, Q_PARSE, Q_SYNTH | Q_NEWNAME, s->id, (const char *)body);
    }
    return 0;
}

/*
 * An unnamed Parse. With cache_unnamed on the server's lane, a text PostgreSQL accepted before runs as
 * the shared statement of its key (proxy/prepared_unnamed.c): prepared on this server connection if
 * it lacks it (the ParseComplete is the client's), else by an empty unnamed Parse. Only a Parse with nothing
 * outstanding on the server, outside a failed transaction, is mapped: it is the first message since
 * the last ReadyForQuery, so no earlier error can make the server skip it, and a Bind of the unnamed
 * statement after a later Sync knows which statement it names. Any other unnamed Parse goes to the
 * server as it is (a text seen for the first time too: its ParseComplete marks it accepted).
 */
static int on_unnamed_parse(struct px_client *cl, struct px_server *sv, const uint8_t *msg, uint32_t len,
                            struct proto_buf *out)
{
    const uint8_t *body = msg + PROTO_HEADER_LEN;
    uint32_t prev = cl->nstmts ? unnamed_map_id(cl) : 0;
    struct px_stmt *s = unnamed_stmt(cl, sv, body + 1, len - 1);
    struct px_prepq_entry *e;
    size_t start;
    int r;

    px_unnamed_own(sv, cl);
    if (prev)
        unnamed_map_set(cl, 0);
    if (!s || !s->validated || sv->prepq.n > 0 || sv->tx_status == 'E' ||
        group_sets_tx_mode_later(cl->pass_rest, cl->pass_rest_len)) {
        raw(out, msg, PROTO_HEADER_LEN + len);
        if (!s && !prev)
            return queue_push(sv, Q_PARSE, 0, 0);
        return queue_push_unnamed(sv, Q_PARSE, Q_URAW, s ? s->id : 0, prev);
    }
    if (cstmt_set(cl, "", s) < 0 || (r = ensure(sv, s, out, 0)) < 0)
        return -1;
    sv->unnamed_owner = 0;         /* the server's unnamed statement is not the client's */
    sv->pool->lane->unnamed_hits++;
    cl->conn.px->prep_unnamed_hits++;
    if (r == 0) {                  /* prepared here now: the server's ParseComplete is the client's */
        e = queue_last(sv);
        e->flags |= Q_UNNAMED | Q_UMAP;
        e->prev = prev;
        return 0;
    }
    /* The server has it. Its ParseComplete comes from an empty unnamed Parse (a few microseconds of
     * the server's time), in place in the server's replies: a ParseComplete of pglane's own would
     * cost the client a write, and a wakeup, of its own. */
    start = proto_msg_begin(out, PROTO_FE_PARSE);
    proto_put_bytes(out, "\0\0\0", 4);   /* name "", query "", no parameter types */
    proto_msg_end(out, start);
    return queue_push_unnamed(sv, Q_PARSE, Q_URAW | Q_UMAP, s->id, prev);
}

/* Closes the server's unnamed statement (its CloseComplete swallowed): a Close never fails. */
static int close_server_unnamed(struct px_server *sv, struct proto_buf *out)
{
    put_close(out, 0);
    return queue_push(sv, Q_CLOSE, Q_SWALLOW, 0);
}

/*
 * The unnamed statement is the client's until its next unnamed Parse or simple Query, across Syncs.
 * When the server's is not the client's (another client used the connection, or this is another
 * connection), the client's unnamed Parse as of this message (not one later in the same batch) is
 * replayed first (its reply swallowed), or the server's is closed so that the server answers as
 * PostgreSQL would for a client that has none.
 */
/* The client's unnamed statement as of the message being mapped (the body of its Parse after the
 * name; NULL: none). */
static const uint8_t *unnamed_text(const struct px_client *cl, uint32_t *len)
{
    if (cl->pass_unnamed_set) {    /* as of this message: mapped before it in this pass */
        *len = cl->pass_unnamed ? cl->pass_unnamed_len : 0;
        return cl->pass_unnamed;
    }
    return px_unnamed_as_of(cl, cl->fwd_ord, len);   /* as of the bytes forwarded before this pass */
}

static int unnamed_own(struct px_client *cl, struct px_server *sv, struct proto_buf *out)
{
    const uint8_t *text;
    uint32_t len;
    size_t start;

    if (px_unnamed_owned_at(sv, cl, cl->pass_ord))
        return 0;
    px_unnamed_own(sv, cl);
    text = unnamed_text(cl, &len);
    if (text) {
        start = proto_msg_begin(out, PROTO_FE_PARSE);
        proto_put_u8(out, 0);
        proto_put_bytes(out, text, len);
        proto_msg_end(out, start);
        return queue_push(sv, Q_PARSE, Q_SWALLOW, 0);
    }
    return close_server_unnamed(sv, out);
}

/* The record of xdealloc_bind's portal lives for one pass: a Bind and the Execute that runs it come
 * together (a lone Execute of it in a later batch deallocates pglane's statement on the server
 * without dropping the client's name, whose next use on that connection then gets 26000 once). */
static void xdealloc_forget(struct px_client *cl)
{
    free(cl->xdealloc_portal);
    free(cl->xdealloc_name);
    cl->xdealloc_portal = cl->xdealloc_name = NULL;
}

/*
 * A Bind of a statement whose text is "DEALLOCATE name" (unnamed or named; drivers send DEALLOCATE
 * through the extended protocol too), where name is one of the client's statement names when the
 * Bind is forwarded: the server knows that statement as pglane's _pgl_<id>, so the portal is bound
 * from a "DEALLOCATE _pgl_<id>" of pglane's, parsed as the server's unnamed statement (which is then
 * no longer the client's: a later use replays it). The client's name goes when the portal is executed
 * (xdealloc_execute). Returns 1 if the Bind was written, 0 if it is not such a Bind, -1 on error.
 */
static int xdealloc_bind(struct px_client *cl, struct px_server *sv, const uint8_t *msg, uint32_t len,
                         const struct proto_fe_bind *bind, struct px_cstmt *cs, struct proto_buf *out)
{
    const uint8_t *body = msg + PROTO_HEADER_LEN, *text;
    size_t pre = (size_t)((const uint8_t *)bind->statement - body), nl = bind->statement_len, start;
    uint32_t tlen = 0;
    char target[64], sql[48];
    struct px_cstmt *victim;

    if (cs) {
        text = cs->stmt->body;
        tlen = cs->stmt->len;
    } else if (nl > 0) {
        return 0;                  /* not the client's: the server answers */
    } else {
        text = unnamed_text(cl, &tlen);
    }
    if (!text || !deallocate_name((const char *)text, strnlen((const char *)text, tlen), target, sizeof(target)) ||
        !(victim = cstmt_find(cl, target)))
        return 0;
    if (ensure(sv, victim->stmt, out, Q_SWALLOW) < 0)
        return -1;
    snprintf(sql, sizeof(sql), "DEALLOCATE _pgl_%u", victim->stmt->id);
    start = proto_msg_begin(out, PROTO_FE_PARSE);
    proto_put_u8(out, 0);
    proto_put_cstr(out, sql);
    proto_put_u16(out, 0);
    proto_msg_end(out, start);
    sv->unnamed_owner = 0;
    cl->unnamed_parsed = 0;
    if (queue_push(sv, Q_PARSE, Q_SWALLOW, 0) < 0)
        return -1;
    start = proto_msg_begin(out, PROTO_FE_BIND);
    proto_put_bytes(out, body, pre);
    proto_put_u8(out, 0);
    proto_put_bytes(out, body + pre + nl + 1, len - pre - nl - 1);
    proto_msg_end(out, start);
    xdealloc_forget(cl);
    cl->xdealloc_portal = strdup((const char *)body);
    cl->xdealloc_name = strdup(victim->name);
    cl->xdealloc_stmt = victim->stmt->id;
    if (!cl->xdealloc_portal || !cl->xdealloc_name)
        return -1;
    cl->last_bound = 0;
    return queue_push(sv, Q_BIND, 0, 0) < 0 ? -1 : 1;
}

/*
 * An Execute: of the portal xdealloc_bind made, the client's name goes now (later messages no longer
 * find it) and comes back should the server skip or fail the Execute.
 */
static int xdealloc_execute(struct px_client *cl, struct px_server *sv, const uint8_t *msg, uint32_t len,
                            struct proto_buf *out)
{
    struct px_cstmt *cs;
    uint16_t flags;
    int i, r;

    raw(out, msg, PROTO_HEADER_LEN + len);
    if (!cl->xdealloc_portal || strcmp(cl->xdealloc_portal, (const char *)msg + PROTO_HEADER_LEN) != 0)
        return queue_push(sv, Q_EXEC, 0, cl->last_bound);
    /* Whether the server still has its statement depends on this Execute running: until the answer,
     * a use of the statement (in this group too) prepares it again behind a Close (ensure_as), which
     * is right either way. */
    i = cache_find(sv, cl->xdealloc_stmt);
    if (i >= 0) {
        sv->cached[i].pending++;
        sv->cached[i].group = sv->groups - 1;
    }
    flags = Q_XDEALLOC;
    cs = cstmt_find(cl, cl->xdealloc_name);
    if (cs && cs->stmt->id == cl->xdealloc_stmt) {
        r = queue_push_name(sv, Q_EXEC, (uint16_t)(flags | Q_RESTORE), cl->xdealloc_stmt, cs->name);
        cstmt_drop(cl, cs);
    } else {
        r = queue_push(sv, Q_EXEC, flags, cl->xdealloc_stmt);
    }
    xdealloc_forget(cl);
    return r;
}

/*
 * Rewrites a Bind or a Describe of a named statement to pglane's name, preparing it if needed. Of a
 * large Bind only `have` body bytes (at least its names) may be here: the rest streams after them.
 */
static int on_named_use(struct px_client *cl, struct px_server *sv, const uint8_t *msg, uint32_t len,
                        uint32_t have, struct proto_buf *out)
{
    const uint8_t *body = msg + PROTO_HEADER_LEN;
    uint8_t qtype = msg[0] == PROTO_FE_BIND ? Q_BIND : Q_DESC_STMT;
    const char *name = NULL;
    struct proto_fe_bind bind;
    struct proto_fe_target t;
    struct px_cstmt *cs;
    char sname[32];
    size_t pre = 0, nl = 0, snl;   /* pre: the bytes before the statement name (portal name or 'S') */
    int i, stale = 0;

    if (qtype == Q_BIND && proto_parse_fe_bind_names(body, have, &bind) == 0) {
        name = bind.statement;
        nl = bind.statement_len;
    } else if (qtype == Q_DESC_STMT && proto_parse_fe_describe(body, have, &t) == 0) {
        name = t.name;
        nl = t.name_len;
    }
    if (name)
        pre = (size_t)((const uint8_t *)name - body);
    cs = name && (nl > 0 || cl->nstmts) ? cstmt_find(cl, name) : NULL;   /* "": cache_unnamed's mapping */
    if (qtype == Q_BIND)
        cl->pdesc_stmt = 0;
    if (qtype == Q_BIND && name) {
        int r;

        if (cl->xdealloc_portal && strcmp(cl->xdealloc_portal, (const char *)body) == 0)
            xdealloc_forget(cl);       /* that portal is replaced */
        if (have == len && (r = xdealloc_bind(cl, sv, msg, len, &bind, cs, out)) != 0)
            return r < 0 ? -1 : 0;
    }
    if (name && nl == 0 && !cs && unnamed_own(cl, sv, out) < 0)
        return -1;
    if (!cs) {
        raw(out, msg, PROTO_HEADER_LEN + have);
        return queue_push(sv, qtype, 0, 0);
    }
    if (nl > 0 && cs->shape && (i = cache_find(sv, cs->stmt->id)) >= 0 && sv->cached[i].shape &&
        sv->cached[i].shape != cs->shape &&
        !(qtype == Q_BIND && have == len && reads_sent_columns(body, len, cl->pass_rest, cl->pass_rest_len))) {
        /* The statement's result columns are not the ones the client was told (a table changed
         * since): PostgreSQL refuses to run it. Sent naming a statement the server does not have,
         * so that the server fails it (and skips to Sync) as it would; the error is made PostgreSQL's
         * (px_prep_rewrite_error). */
        stale = 1;
        snl = sizeof(STALE_NAME) - 1;
        memcpy(sname, STALE_NAME, sizeof(STALE_NAME));
        if (qtype == Q_DESC_STMT) {
            /* PostgreSQL describes the parameters before it finds the columns changed: the server's
             * ParameterDescription is the client's, its RowDescription is dropped. */
            put_describe(out, cs->stmt->id);
            if (queue_push(sv, Q_DESC_STMT, Q_SWALLOW, cs->stmt->id) < 0)
                return -1;
        }
    } else {
        if (ensure(sv, cs->stmt, out, Q_SWALLOW) < 0)
            return -1;
        snl = wire_name(sname, cs->stmt->id);
    }
    proto_put_u8(out, msg[0]);
    proto_put_u32(out, (uint32_t)(4 + len - nl + snl));
    proto_put_bytes(out, body, pre);
    proto_put_bytes(out, sname, snl + 1);
    proto_put_bytes(out, body + pre + nl + 1, have - pre - nl - 1);
    if (stale)
        return queue_push(sv, qtype, Q_STALE, 0);
    if (qtype == Q_BIND)
        cl->last_bound = cs->stmt->id;
    if (qtype == Q_BIND && pre == 1 && nl > 0)
        cl->pdesc_stmt = cs->stmt->id;
    /* A Describe tells the client the statement's columns: the first one is kept (learn_shape). */
    return queue_push_name(sv, qtype, 0, cs->stmt->id, qtype == Q_DESC_STMT && nl > 0 && !cs->shape ? cs->name : NULL);
}

static int on_close(struct px_client *cl, struct px_server *sv, const uint8_t *msg, uint32_t len,
                    struct proto_buf *out)
{
    struct proto_fe_target t;
    struct px_cstmt *cs;
    uint32_t id;
    int r, bad = proto_parse_fe_close(msg + PROTO_HEADER_LEN, len, &t) < 0;

    if (bad || t.kind != 'S' || t.name_len == 0) {
        uint32_t prev = !bad && t.kind == 'S' && t.name_len == 0 ? unnamed_map_id(cl) : 0;

        if (!bad && t.kind == 'S') {
            cl->pass_unnamed_set = 1;  /* the client has none from here on */
            cl->pass_unnamed = NULL;
        }
        raw(out, msg, PROTO_HEADER_LEN + len);
        if (!prev)
            return queue_push(sv, Q_CLOSE, 0, 0);
        unnamed_map_set(cl, 0);    /* the client's unnamed statement goes (back if this is skipped) */
        return queue_push_unnamed(sv, Q_CLOSE, 0, 0, prev);
    }
    /* The shared statement stays on the server; the client's name goes (and comes back should the
     * server skip this Close after an earlier error). */
    cs = cstmt_find(cl, t.name);
    if (!cs)
        return queue_push(sv, Q_CLOSE, Q_SYNTH, 0);
    id = cs->stmt->id;
    r = queue_push_name(sv, Q_CLOSE, Q_SYNTH | Q_RESTORE, id, cs->name);
    cstmt_drop(cl, cs);
    return r;
}

/* The name of "DEALLOCATE [PREPARE] name [;]", lowercased unless quoted; 0 if sql is not that. */
static int deallocate_name(const char *sql, size_t len, char *name, size_t cap)
{
    return route_deallocate_name(sql, len, name, cap);
}

int px_prep_is_deallocate(const uint8_t *sql, size_t len)
{
    char name[64];

    return deallocate_name((const char *)sql, len, name, sizeof(name));
}

int px_prep_binds_deallocate(struct px_client *cl, const struct proto_frame *f)
{
    struct proto_fe_bind bind;
    struct px_cstmt *cs;

    if (f->type != PROTO_FE_BIND || (!cl->unnamed_dealloc && !cl->dealloc_names) ||
        proto_parse_fe_bind_names(f->body, f->len, &bind) < 0)
        return 0;                  /* most Binds: no such statement to bind, nothing to parse */
    if (bind.statement_len == 0)
        return cl->unnamed_dealloc;
    return cl->dealloc_names && (cs = cstmt_find(cl, bind.statement)) != NULL && cs->stmt->dealloc;
}

/* SQL DEALLOCATE of a name the client prepared through the protocol: deallocate pglane's statement. */
static int on_deallocate(struct px_client *cl, struct px_server *sv, const uint8_t *msg, uint32_t len,
                         struct proto_buf *out)
{
    char name[64], sql[48];
    struct px_cstmt *cs;
    size_t start;

    if (!deallocate_name((const char *)msg + PROTO_HEADER_LEN, len, name, sizeof(name)) ||
        !(cs = cstmt_find(cl, name))) {
        raw(out, msg, PROTO_HEADER_LEN + len);
        return queue_push(sv, Q_QUERY, 0, 0);
    }
    if (cache_find(sv, cs->stmt->id) < 0) {
        /* Not on this server connection. A Parse of it first would meet a failed transaction with an
         * error that skips the Query (no Sync follows): a statement of pglane's own is prepared and
         * deallocated in one Query instead, which succeeds, or fails as the client's DEALLOCATE would
         * (25P02), with the client's command tag; the PREPARE's is dropped. */
        start = proto_msg_begin(out, PROTO_FE_QUERY);
        proto_put_cstr(out, "PREPARE _pgl_dealloc AS SELECT 1; DEALLOCATE _pgl_dealloc");
        proto_msg_end(out, start);
        return queue_push_name(sv, Q_QUERY, Q_DEALLOC | Q_PREPCC, cs->stmt->id, cs->name);
    }
    snprintf(sql, sizeof(sql), "DEALLOCATE _pgl_%u", cs->stmt->id);
    start = proto_msg_begin(out, PROTO_FE_QUERY);
    proto_put_cstr(out, sql);
    proto_msg_end(out, start);
    return queue_push_name(sv, Q_QUERY, Q_DEALLOC, cs->stmt->id, cs->name);
}

/* Whether the group starting at p (n bytes of whole messages and maybe the start of one) has an
 * unnamed Parse after its first message, before its end. */
static int group_parses_unnamed_later(const uint8_t *p, uint32_t n)
{
    uint32_t off = 0;
    int first = 1;

    while (n - off > PROTO_HEADER_LEN) {
        uint32_t len = proto_get_u32(p + off + 1) - 4;

        if (!first && p[off] == PROTO_FE_PARSE && len >= 1 && off + PROTO_HEADER_LEN < n &&
            p[off + PROTO_HEADER_LEN] == 0)
            return 1;
        if (proto_fe_gets_ready(p[off]) || len > n - off - PROTO_HEADER_LEN)
            return 0;
        off += PROTO_HEADER_LEN + len;
        first = 0;
    }
    return 0;
}

/*
 * At the start of a group whose unnamed Parse comes behind other messages (which an error could make
 * the server skip, leaving whatever unnamed statement the server had: another client's), the server's
 * unnamed statement is closed first (unless it is the client's as of what was forwarded, which a skip
 * leaves as PostgreSQL would), while nothing can skip that, and stays not the client's until
 * the client's Parse makes it so; a later use replays it. Closed rather than replayed here: a Close
 * never fails (a replayed Parse meets a failed transaction with 25P02), and a Parse of a query takes
 * the transaction's snapshot, after which a BEGIN ISOLATION LEVEL or SET TRANSACTION later in the
 * group fails (25001) where PostgreSQL runs it.
 */
static int group_start(struct px_client *cl, struct px_server *sv, const uint8_t *msg, uint32_t n,
                       struct proto_buf *out)
{
    if (cl->pass_group_open || px_unnamed_owned(sv, cl) || px_unnamed_held(sv, cl) ||
        !group_parses_unnamed_later(msg, n))
        return 0;
    sv->unnamed_owner = 0;
    return close_server_unnamed(sv, out);
}

static int one_message(struct px_client *cl, struct px_server *sv, const uint8_t *msg, uint32_t len,
                       struct proto_buf *out)
{
    switch (msg[0]) {
    case PROTO_FE_PARSE:
        return on_parse(cl, sv, msg, len, out);
    case PROTO_FE_BIND:
        return on_named_use(cl, sv, msg, len, len, out);
    case PROTO_FE_DESCRIBE:
        if (len >= 1 && msg[PROTO_HEADER_LEN] == 'S')
            return on_named_use(cl, sv, msg, len, len, out);
        raw(out, msg, PROTO_HEADER_LEN + len);
        /* The unnamed portal of a client statement: its description tells the statement's columns. */
        return queue_push(sv, Q_DESC_PORTAL, 0,
                          len >= 2 && msg[PROTO_HEADER_LEN + 1] == 0 ? cl->pdesc_stmt : 0);
    case PROTO_FE_CLOSE:
        return on_close(cl, sv, msg, len, out);
    case PROTO_FE_EXECUTE:
        return xdealloc_execute(cl, sv, msg, len, out);
    case PROTO_FE_SYNC:
        raw(out, msg, PROTO_HEADER_LEN + len);
        return sv->prep_copy_in ? 0 : queue_push(sv, Q_SYNC, 0, 0);   /* COPY IN ignores it */
    case PROTO_FE_COPY_DONE:
    case PROTO_FE_COPY_FAIL:
        sv->copy_ends++;
        sv->prep_copy_in = 0;
        raw(out, msg, PROTO_HEADER_LEN + len);
        return 0;
    case PROTO_FE_QUERY:
        if (cl->nstmts)
            unnamed_map_set(cl, 0);    /* a simple Query drops the unnamed statement */
        cl->pass_unnamed_set = 1;
        cl->pass_unnamed = NULL;
        if (cl->tx_route == TXR_BEGIN_REPLAY) {   /* the held BEGIN: its reply is swallowed as pglane's own */
            px_client_set_tx_route(cl, TXR_LANE_DECIDED);
            raw(out, msg, PROTO_HEADER_LEN + len);
            return 0;
        }
        return on_deallocate(cl, sv, msg, len, out);   /* any other Query passes through as is */
    case PROTO_FE_FUNCTION_CALL:
        raw(out, msg, PROTO_HEADER_LEN + len);
        return queue_push(sv, Q_QUERY, 0, 0);
    default:                       /* Flush, COPY data: no reply of their own */
        raw(out, msg, PROTO_HEADER_LEN + len);
        return 0;
    }
}

/* Whether a Parse among the n bytes of whole Parse messages at p names name. */
static int name_earlier(const uint8_t *p, uint32_t n, const uint8_t *name)
{
    for (uint32_t off = 0; off < n; off += PROTO_HEADER_LEN + proto_get_u32(p + off + 1) - 4)
        if (strcmp((const char *)p + off + PROTO_HEADER_LEN, (const char *)name) == 0)
            return 1;
    return 0;
}

/*
 * A client outside a transaction that only prepares statements PostgreSQL has accepted before
 * (Parse... Sync, as PQprepare sends) is answered by pglane without a server connection. Besides
 * saving a round trip, this keeps drivers that prepare synchronously on one thread (pgbench
 * -M prepared) from waiting for a server that their own other connections hold. Returns 1 if the
 * batch was answered, 0 if it needs a server, -1 on error.
 */
int px_prep_answer_locally(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;
    struct proto_buf out;
    uint32_t off = b->start, parses = 0;

    if (cl->fwd_remain || b->remain)
        return 0;
    while (off < b->pos) {
        uint8_t type = b->data[off];
        uint32_t len = proto_get_u32(b->data + off + 1) - 4;
        const uint8_t *body = b->data + off + PROTO_HEADER_LEN;
        struct proto_fe_parse parse;
        size_t nl;
        struct px_stmt *s;

        if (type == PROTO_FE_SYNC && off + PROTO_HEADER_LEN + len == b->pos && parses > 0)
            break;
        if (type != PROTO_FE_PARSE || proto_parse_fe_parse(body, len, &parse) < 0 || (nl = parse.name_len) == 0)
            return 0;
        if (cl->conn.px->conf->max_prepared_statements_per_client > 0 &&
            (int64_t)cl->nstmts + parses >= cl->conn.px->conf->max_prepared_statements_per_client)
            return 0;              /* near the limit: the server path enforces it */
        if (cstmt_find(cl, (const char *)body) || name_earlier(b->data + b->start, off - b->start, body))
            return 0;              /* a name taken: PostgreSQL's 42P05 comes from the server */
        s = stmt_get(cl, body + nl + 1, len - (uint32_t)nl - 1, 0);
        if (!s || (!s->validated && !(cl->conn.px->workers && px_prep_shared_known(s))))
            return 0;
        parses++;
        off += PROTO_HEADER_LEN + len;
    }
    if (off >= b->pos)
        return 0;
    proto_buf_init(&out);
    for (off = b->start; parses > 0; parses--) {
        uint32_t len = proto_get_u32(b->data + off + 1) - 4;
        const uint8_t *body = b->data + off + PROTO_HEADER_LEN;
        size_t nl = strlen((const char *)body);    /* a Parse the first pass parsed */

        if (cstmt_set(cl, (const char *)body, stmt_get(cl, body + nl + 1, len - (uint32_t)nl - 1, 0)) < 0)
            out.failed = 1;
        proto_put_bytes(&out, "1\0\0\0\4", 5);
        cl->conn.px->prep_hits++;
        off += PROTO_HEADER_LEN + len;
    }
    proto_build_ready(&out, 'I');
    b->start = b->pos;
    cl->pending_z--;
    cl->prep_batch = 0;
    px_flow_reset(cl);
    if (out.failed || px_conn_send_copy(&cl->conn, out.data, out.len) < 0) {
        proto_buf_free(&out);
        return -1;
    }
    proto_buf_free(&out);
    return 1;
}

int px_prep_needed(const struct px_client *cl)
{
    return cl->prep_batch || (cl->server && cl->server->prepq.n > 0);
}

/*
 * Sends the client's scanned bytes to its server through the response queue, rewriting statement
 * names. Every message in [start, pos) is whole except possibly a streamed last one. 0 or -1.
 */
int px_prep_forward(struct px_client *cl)
{
    struct px_server *sv = cl->server;
    struct px_buf *b = &cl->conn.in;
    struct proto_buf out;
    uint32_t off = b->start;
    int rc = 0;

    proto_buf_init(&out);
    /* cl->pass_ord: the place before the first message here (forward); each message's, in turn */
    cl->pass_group_open = cl->fwd_unsynced;
    cl->pass_first_group = 1;
    if (cl->fwd_remain) {          /* the tail of a message begun in an earlier batch */
        uint32_t n = cl->fwd_remain < b->pos - off ? cl->fwd_remain : b->pos - off;

        raw(&out, b->data + off, n);
        off += n;
    }
    while (rc == 0 && off < b->pos) {
        uint32_t len = proto_get_u32(b->data + off + 1) - 4;

        cl->pass_ord++;
        if (off + PROTO_HEADER_LEN + len > b->pos) {   /* streamed: the rest comes later */
            if (b->data[off] == PROTO_FE_BIND && b->pos - off > PROTO_HEADER_LEN)
                rc = on_named_use(cl, sv, b->data + off, len, b->pos - off - PROTO_HEADER_LEN, &out);
            else
                raw(&out, b->data + off, b->pos - off);
            break;
        }
        rc = group_start(cl, sv, b->data + off, b->pos - off, &out);
        cl->pass_rest = b->data + off + PROTO_HEADER_LEN + len;
        cl->pass_rest_len = b->pos - (off + PROTO_HEADER_LEN + len);
        if (rc == 0)
            rc = one_message(cl, sv, b->data + off, len, &out);
        if (proto_fe_gets_ready(b->data[off])) {
            sv->groups++;
            cl->pass_group_open = 0;
            cl->pass_first_group = 0;
        }
        else if (b->data[off] != PROTO_FE_FLUSH)   /* a Flush leaves the group as it was */
            cl->pass_group_open = 1;
        off += PROTO_HEADER_LEN + len;
    }
    cl->fwd_remain = b->remain;
    cl->prep_batch = 0;
    sv->probe_off = 0;
    cl->pass_unnamed_set = 0;
    cl->pass_unnamed = NULL;
    xdealloc_forget(cl);
    b->start = b->pos;
    if (rc == 0 && (out.failed || (out.len && px_conn_send_copy(&sv->conn, out.data, out.len) < 0)))
        rc = -1;
    proto_buf_free(&out);
    if (rc == 0) {
        px_conn_backpressure(&cl->conn, &sv->conn);
        px_prep_drain(sv);
    }
    return rc;
}

/* ---- result columns: what the client was told, checked on each server connection ---- */

/* The statement a Bind or Describe of the scanned bytes names, or NULL. */
static const char *named_use(const uint8_t *msg, uint32_t len)
{
    struct proto_fe_bind bind;
    struct proto_fe_target t;

    if (msg[0] == PROTO_FE_BIND && proto_parse_fe_bind_names(msg + PROTO_HEADER_LEN, len, &bind) == 0 &&
        bind.statement_len > 0)
        return bind.statement;
    if (msg[0] == PROTO_FE_DESCRIBE && proto_parse_fe_describe(msg + PROTO_HEADER_LEN, len, &t) == 0 && t.kind == 'S' &&
        t.name_len > 0)
        return t.name;
    return NULL;
}

/*
 * PostgreSQL keeps a prepared statement's result columns: once a table change alters them, it refuses
 * to run the statement (0A000) rather than return rows the client would read with the old description.
 * A server connection that prepares pglane's shared statement after the change would run it with the
 * new columns. So, outside a failed transaction, before a client's Bind or Describe of a statement whose
 * columns the client was told goes to a server connection whose own columns for it are not known,
 * pglane prepares (if need be) and describes it there, in a Sync group of its own whose replies it
 * keeps; the client's messages wait for that answer (one round trip per statement and server
 * connection), and on_named_use refuses a statement whose columns differ.
 */
int px_prep_probe(struct px_client *cl)
{
    struct px_server *sv = cl->server;
    struct px_buf *b = &cl->conn.in;
    struct proto_buf out;
    size_t start;
    int n = 0;
    uint32_t unsent;

    if (!cl->shapes_known || !sv || sv->shape_wait || sv->probe_off || (sv->tx_status != 'I' && sv->tx_status != 'T') ||
        sv->prepq.n || px_flow_raw_owed(cl) || cl->fwd_remain || cl->fwd_unsynced || !cl->nstmts)
        return 0;                  /* (fwd_unsynced: a Sync of pglane's would end the client's group; raw_owed: a
                                    * request forwarded as it was, a Query say, is unanswered, and its
                                    * ReadyForQuery would be taken for the probe's) */
    proto_buf_init(&out);
    if (sv->tx_status == 'T') {
        /* In the client's transaction block: under a savepoint of pglane's, rolled back after the
         * describe whatever came of it (a failed Parse leaves the transaction as it was; prepared
         * statements outlive a rollback). */
        start = proto_msg_begin(&out, PROTO_FE_QUERY);
        proto_put_cstr(&out, "SAVEPOINT _pgl_probe");
        proto_msg_end(&out, start);
    }
    for (uint32_t off = b->start; off + PROTO_HEADER_LEN <= b->pos && n < PX_PROBE_MAX;) {
        uint32_t len = proto_get_u32(b->data + off + 1) - 4;
        const char *name;
        struct px_cstmt *cs;
        int i, k;

        if (off + PROTO_HEADER_LEN + len > b->pos)
            break;                 /* a message streaming through: not looked at */
        name = named_use(b->data + off, len);
        if (name && b->data[off] == PROTO_FE_BIND &&
            reads_sent_columns(b->data + off + PROTO_HEADER_LEN, len, b->data + off + PROTO_HEADER_LEN + len,
                               b->pos - off - PROTO_HEADER_LEN - len))
            name = NULL;           /* it reads the columns it is sent: not refused (on_named_use) */
        off += PROTO_HEADER_LEN + len;
        if (!name || !(cs = cstmt_find(cl, name)) || !cs->shape)
            continue;
        i = cache_find(sv, cs->stmt->id);
        if (i >= 0 && (sv->cached[i].shape || sv->cached[i].pending))
            continue;
        for (k = 0; k < n && sv->probe_ids[k] != cs->stmt->id; k++)
            ;
        if (k < n)
            continue;
        sv->probe_ids[n] = cs->stmt->id;
        sv->probe_parsed[n] = i < 0;
        if (i < 0)
            put_parse(&out, cs->stmt);
        put_describe(&out, cs->stmt->id);
        n++;
    }
    /* In a transaction block, the probe's Parse (or a Describe that analyses the statement again)
     * takes the transaction's snapshot ahead of the client's messages: a SET TRANSACTION or BEGIN
     * ISOLATION LEVEL among them would then fail (25001) where PostgreSQL runs it. No probe then; the
     * columns are not checked for that request. */
    if (n == 0 || (sv->tx_status == 'T' && sets_tx_mode(b->data + b->start, b->pos - b->start, 1))) {
        proto_buf_free(&out);
        return 0;
    }
    start = proto_msg_begin(&out, PROTO_FE_SYNC);
    proto_msg_end(&out, start);
    if (sv->tx_status == 'T') {
        start = proto_msg_begin(&out, PROTO_FE_QUERY);
        proto_put_cstr(&out, "ROLLBACK TO SAVEPOINT _pgl_probe; RELEASE SAVEPOINT _pgl_probe");
        proto_msg_end(&out, start);
        sv->unnamed_owner = 0;     /* simple Queries drop the server's unnamed statement: replayed when used */
        cl->unnamed_parsed = 0;
    }
    if (out.failed || px_conn_send_copy(&sv->conn, out.data, out.len) < 0) {
        proto_buf_free(&out);
        return -1;
    }
    proto_buf_free(&out);
    sv->nprobe = (uint8_t)n;
    sv->probe_got = sv->probe_failed = 0;
    sv->shape_wait = 1;
    /* Behind pglane's own queries already sent (their replies come first); a held BEGIN whose reply is
     * counted already goes with the client's bytes, after the probe. */
    unsent = cl->tx_route == TXR_BEGIN_REPLAY ? 1 : 0;
    sv->probe_skip = (uint8_t)(sv->swallow_z > unsent ? sv->swallow_z - unsent : 0);
    sv->probe_z = sv->tx_status == 'T' ? 3 : 1;
    sv->swallow_z += sv->probe_z;
    return 1;
}

void px_prep_probe_reply(struct px_server *sv, const struct proto_frame *f)
{
    if (f->type == PROTO_BE_READY) {
        if (sv->probe_skip)
            sv->probe_skip--;      /* one of the earlier queries' */
        else if (sv->probe_z)
            sv->probe_z--;
        return;
    }
    if (sv->probe_skip)
        return;                    /* a reply to one of pglane's earlier queries */
    if (f->type == PROTO_BE_ERROR)
        sv->probe_failed = 1;      /* what follows in the probe's group is skipped */
    else if ((f->type == PROTO_BE_ROW_DESC || f->type == PROTO_BE_NO_DATA) && sv->probe_got < sv->nprobe &&
             !sv->probe_failed)
        sv->probe_shapes[sv->probe_got++] = prep_shape(f->type, f->body, f->len);
}

void px_prep_probe_done(struct px_server *sv)
{
    for (int k = 0; k < sv->probe_got; k++) {
        int i;

        if (sv->probe_parsed[k])
            cache_add_ready(sv, sv->probe_ids[k]);
        if ((i = cache_find(sv, sv->probe_ids[k])) >= 0)
            sv->cached[i].shape = sv->probe_shapes[k];
    }
    /* A statement the probe could not prepare or describe (a table dropped, say) goes with the client's
     * messages as usual, whose answer is then the server's own: not probed again for them. */
    sv->probe_off = sv->probe_got < sv->nprobe;
    sv->shape_wait = 0;
    sv->nprobe = sv->probe_got = sv->probe_failed = sv->probe_skip = sv->probe_z = 0;
}
