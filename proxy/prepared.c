/*
 * Named prepared statements in transaction pooling. A client's statement names are its own; the
 * statements themselves are shared by text and parameter types under pglane's names ("_pgl_<id>"),
 * prepared on each server connection the first time a client needs them there, and kept in a
 * bounded per-server LRU cache. Each message sent to a server while this is in play gets an entry in
 * that server's response queue, so that replies pglane caused are dropped and replies pglane owes
 * (ParseComplete for a statement the server already has, CloseComplete) are produced at exactly the
 * place in the stream where a direct connection would have produced them.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "proxy/proxy.h"
#include "proxy/state.h"
#include "routing/hash.h"
#include "routing/route.h"

#define REG_BUCKETS 4096

/*
 * Entry flags. Changes to a client's names and to a server's cache that depend on the server carrying
 * out a message are made when the message is sent (later messages of the batch rely on them) and
 * undone if the server skips it after an earlier error, or fails it.
 */
enum {
    Q_SWALLOW = 1,     /* the reply is pglane's own: drop it */
    Q_SYNTH = 2,       /* pglane owes the reply itself */
    Q_NEWNAME = 4,     /* a client name was created: dropped again if the Parse does not happen */
    Q_RESTORE = 8,     /* a Close dropped a client name: restored if the server skips the Close */
    Q_EVICT = 16,      /* an eviction Close: the cache keeps the statement if it is skipped */
    Q_DEALLOC = 32,    /* SQL DEALLOCATE of a mapped name: drop name and cache entry if it succeeds */
    Q_FAILED = 64,     /* a simple Query that got an ErrorResponse */
    Q_DUPNAME = 128    /* a Parse of a name the client has: the server's 42P05 names pglane's statement */
};
#define REG_SWEEP 10000    /* unreferenced statements kept before a sweep frees them */
#define REG_UNREF_BYTES (4u << 20)   /* ... or this many bytes of their text */
enum { Q_PARSE = 'P', Q_BIND = 'B', Q_DESC_STMT = 'd', Q_DESC_PORTAL = 'p', Q_EXEC = 'E', Q_CLOSE = 'C',
       Q_SYNC = 'S', Q_QUERY = 'Q' };

struct px_stmt {                   /* one statement text + parameter types, shared by clients */
    struct px_stmt *next;          /* hash chain */
    struct px_stmt *id_next;       /* chain of the by-id table */
    uint8_t validated;             /* PostgreSQL accepted this Parse at least once */
    uint64_t hash;
    uint32_t id;                   /* server-side name _pgl_<id>; replaced when invalidated */
    uint32_t refs;                 /* client names pointing here */
    uint32_t len;                  /* of body: query\0, int16 count, count * int32 type oids */
    uint8_t body[];
};

struct px_cstmt {                  /* a client's name for a statement */
    char *name;
    struct px_stmt *stmt;
};

struct prep_registry {
    struct px_stmt *buckets[REG_BUCKETS];
    struct px_stmt *by_id[REG_BUCKETS];
    uint32_t next_id;
    uint32_t count;
    uint64_t unref_bytes;          /* body bytes of statements no client name points to */
};

static struct prep_registry *registry(struct proxy *px)
{
    if (!px->prep)
        px->prep = calloc(1, sizeof(struct prep_registry));
    return px->prep;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    return route_fnv1a(ROUTE_FNV_OFFSET, p, n);
}

static void id_link(struct prep_registry *reg, struct px_stmt *s)
{
    s->id_next = reg->by_id[s->id % REG_BUCKETS];
    reg->by_id[s->id % REG_BUCKETS] = s;
}

static void id_unlink(struct prep_registry *reg, struct px_stmt *s)
{
    for (struct px_stmt **pp = &reg->by_id[s->id % REG_BUCKETS]; *pp; pp = &(*pp)->id_next)
        if (*pp == s) {
            *pp = s->id_next;
            return;
        }
}

static struct px_stmt *stmt_by_id(struct proxy *px, uint32_t id)
{
    struct prep_registry *reg = px->prep;

    for (struct px_stmt *s = reg ? reg->by_id[id % REG_BUCKETS] : NULL; s; s = s->id_next)
        if (s->id == id)
            return s;
    return NULL;
}

/*
 * Unreferenced statements stay registered, so that a later client with the same text finds the name
 * servers already have; past REG_SWEEP they are freed (servers' copies then age out of their LRU).
 */
static void sweep(struct prep_registry *reg)
{
    for (int i = 0; i < REG_BUCKETS; i++)
        for (struct px_stmt **pp = &reg->buckets[i]; *pp;) {
            struct px_stmt *s = *pp;

            if (s->refs > 0) {
                pp = &s->next;
                continue;
            }
            *pp = s->next;
            id_unlink(reg, s);
            free(s);
            reg->count--;
        }
    reg->unref_bytes = 0;
}

static void stmt_ref(struct proxy *px, struct px_stmt *s)
{
    struct prep_registry *reg = px->prep;

    if (s->refs++ == 0 && reg)
        reg->unref_bytes -= s->len;
}

static struct px_stmt *stmt_get(struct proxy *px, const uint8_t *body, uint32_t len)
{
    struct prep_registry *reg = registry(px);
    uint64_t h = hash_bytes(body, len);
    struct px_stmt **slot, *s;

    if (!reg)
        return NULL;
    slot = &reg->buckets[h % REG_BUCKETS];
    for (s = *slot; s; s = s->next)
        if (s->hash == h && s->len == len && memcmp(s->body, body, len) == 0)
            return s;
    /* Swept before the new statement is linked: a sweep frees every unreferenced one. */
    if (reg->count >= REG_SWEEP || reg->unref_bytes + len > REG_UNREF_BYTES)
        sweep(reg);
    s = malloc(sizeof(*s) + len);
    if (!s)
        return NULL;
    s->hash = h;
    s->id = ++reg->next_id;
    s->refs = 0;
    s->validated = 0;
    s->len = len;
    memcpy(s->body, body, len);
    s->next = *slot;
    *slot = s;
    id_link(reg, s);
    reg->count++;
    reg->unref_bytes += len;
    return s;
}

static void stmt_unref(struct proxy *px, struct px_stmt *s)
{
    struct prep_registry *reg = px->prep;

    if (s->refs > 0 && --s->refs == 0 && reg)
        reg->unref_bytes += s->len;
}

/* The statement's plan no longer fits its result type: every server re-prepares it under a new name. */
static void stmt_invalidate(struct proxy *px, uint32_t id)
{
    struct prep_registry *reg = px->prep;
    struct px_stmt *s = stmt_by_id(px, id);

    if (!s)
        return;
    id_unlink(reg, s);
    s->id = ++reg->next_id;
    s->validated = 0;
    id_link(reg, s);
    px->prep_invalidations++;
}

void px_prep_registry_free(struct proxy *px)
{
    struct prep_registry *reg = px->prep;

    for (int i = 0; reg && i < REG_BUCKETS; i++)
        while (reg->buckets[i]) {
            struct px_stmt *s = reg->buckets[i];

            reg->buckets[i] = s->next;
            free(s);
        }
    free(reg);
    px->prep = NULL;
}

/* ---- a client's names ---- */

static struct px_cstmt *cstmt_find(struct px_client *cl, const char *name)
{
    for (int i = 0; i < cl->nstmts; i++)
        if (strcmp(cl->stmts[i].name, name) == 0)
            return &cl->stmts[i];
    return NULL;
}

static void cstmt_drop(struct px_client *cl, struct px_cstmt *cs)
{
    stmt_unref(cl->conn.px, cs->stmt);
    free(cs->name);
    *cs = cl->stmts[--cl->nstmts];
}

static int cstmt_set(struct px_client *cl, const char *name, struct px_stmt *s)
{
    struct px_cstmt *cs = cstmt_find(cl, name);

    if (cs) {
        stmt_ref(cl->conn.px, s);
        stmt_unref(cl->conn.px, cs->stmt);
        cs->stmt = s;
        return 0;
    }
    if (cl->nstmts == cl->capstmts) {
        int cap = cl->capstmts ? cl->capstmts * 2 : 8;
        struct px_cstmt *n = realloc(cl->stmts, sizeof(*n) * (size_t)cap);

        if (!n)
            return -1;
        cl->stmts = n;
        cl->capstmts = cap;
    }
    cl->stmts[cl->nstmts].name = strdup(name);
    if (!cl->stmts[cl->nstmts].name)
        return -1;
    cl->stmts[cl->nstmts++].stmt = s;
    stmt_ref(cl->conn.px, s);
    return 0;
}

/*
 * max_prepared_statements_per_client: a new name beyond it ends the session with 53400 (a client
 * could otherwise make pglane keep any amount of statement text). 1 if the client was failed.
 */
static int over_client_limit(struct px_client *cl)
{
    int max = cl->conn.px->conf->max_prepared_statements_per_client;
    char msg[256];

    if (max <= 0 || cl->nstmts < max)
        return 0;
    snprintf(msg, sizeof(msg), "pglane: this session already has max_prepared_statements_per_client (%d) "
             "prepared statements; close (DEALLOCATE) statements it no longer needs", max);
    px_client_fail(cl, "53400", msg);
    return 1;
}

const char *px_prep_statement_text(struct px_client *cl, const char *name, size_t *len)
{
    struct px_cstmt *cs = *name ? cstmt_find(cl, name) : NULL;

    if (!cs)
        return NULL;
    *len = strnlen((const char *)cs->stmt->body, cs->stmt->len);
    return (const char *)cs->stmt->body;
}

void px_prep_client_forget_all(struct px_client *cl)
{
    while (cl->nstmts > 0)
        cstmt_drop(cl, &cl->stmts[cl->nstmts - 1]);
}

void px_prep_client_free(struct px_client *cl)
{
    struct prep_registry *reg = cl->conn.px->prep;

    px_prep_client_forget_all(cl);
    free(cl->stmts);
    cl->stmts = NULL;
    cl->capstmts = 0;
    /* A client that leaves many statements behind does not keep their text alive; their heap pages
     * go back to the system too (glibc only trims the top of the heap by itself). */
    if (reg && reg->unref_bytes > REG_UNREF_BYTES) {
        sweep(reg);
        malloc_trim(0);
    }
}

/* ---- a server's cache and response queue ---- */

static int cache_find(const struct px_server *sv, uint32_t id)
{
    for (int i = 0; i < sv->ncached; i++)
        if (sv->cached[i].id == id)
            return i;
    return -1;
}

static void cache_remove(struct px_server *sv, uint32_t id)
{
    int i = cache_find(sv, id);

    if (i >= 0)
        sv->cached[i] = sv->cached[--sv->ncached];
}

void px_prep_server_forget_all(struct px_server *sv)
{
    sv->ncached = 0;
}

static int queue_push_name(struct px_server *sv, uint8_t type, uint8_t flags, uint32_t stmt, const char *name)
{
    struct px_prepq *q = &sv->prepq;
    char *copy = NULL;

    if (name && !(copy = strdup(name)))
        return -1;
    if (q->n == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 32;
        struct px_prepq_entry *e = malloc(sizeof(*e) * cap);

        if (!e) {
            free(copy);
            return -1;
        }
        for (uint32_t i = 0; i < q->n; i++)
            e[i] = q->e[(q->head + i) % q->cap];
        free(q->e);
        q->e = e;
        q->cap = cap;
        q->head = 0;
    }
    q->e[(q->head + q->n) % q->cap] = (struct px_prepq_entry){ type, flags, stmt, copy };
    q->n++;
    return 0;
}

static int queue_push(struct px_server *sv, uint8_t type, uint8_t flags, uint32_t stmt)
{
    return queue_push_name(sv, type, flags, stmt, NULL);
}

static void cache_add_ready(struct px_server *sv, uint32_t id);

static struct px_prepq_entry *queue_head(struct px_server *sv)
{
    return sv->prepq.n ? &sv->prepq.e[sv->prepq.head] : NULL;
}

/* A Sync or Query is still to be answered: the transaction status may change before later messages. */
static int queue_has_end(const struct px_server *sv)
{
    const struct px_prepq *q = &sv->prepq;

    for (uint32_t i = 0; i < q->n; i++) {
        uint8_t t = q->e[(q->head + i) % q->cap].type;

        if (t == Q_SYNC || t == Q_QUERY)
            return 1;
    }
    return 0;
}

/* Settles the head entry: ok when the server carried its message out, else it was skipped or failed. */
static void queue_settle(struct px_server *sv, int ok)
{
    struct px_prepq *q = &sv->prepq;
    struct px_prepq_entry *e = &q->e[q->head];
    struct px_client *cl = sv->client;
    struct px_cstmt *cs = cl && e->name ? cstmt_find(cl, e->name) : NULL;

    if (ok && cs && (e->flags & Q_DEALLOC))
        cstmt_drop(cl, cs);
    if (!ok && cl && !cs && e->name && (e->flags & Q_RESTORE)) {
        struct px_stmt *s = stmt_by_id(sv->conn.px, e->stmt);

        if (s)
            (void)cstmt_set(cl, e->name, s);
    }
    if (ok && (e->flags & Q_DEALLOC))
        cache_remove(sv, e->stmt);
    if (!ok && cs && (e->flags & Q_NEWNAME))
        cstmt_drop(cl, cs);
    if (!ok && (e->flags & Q_EVICT))
        cache_add_ready(sv, e->stmt);
    if (!ok && e->type == Q_PARSE && !(e->flags & Q_SYNTH) && e->stmt)
        cache_remove(sv, e->stmt);
    free(e->name);
    e->name = NULL;
    q->head = (q->head + 1) % q->cap;
    if (--q->n == 0)
        q->head = 0;
}

static void queue_pop(struct px_server *sv)
{
    queue_settle(sv, 1);
}

static void queue_clear(struct px_server *sv)
{
    struct px_prepq *q = &sv->prepq;

    for (uint32_t i = 0; i < q->n; i++) {
        free(q->e[(q->head + i) % q->cap].name);
        q->e[(q->head + i) % q->cap].name = NULL;
    }
    q->n = q->head = 0;
}

void px_prep_server_free(struct px_server *sv)
{
    queue_clear(sv);
    free(sv->prepq.e);
    free(sv->cached);
    memset(&sv->prepq, 0, sizeof(sv->prepq));
    sv->cached = NULL;
    sv->ncached = sv->capcached = 0;
}

/* ---- building what a server gets ---- */

static void put_name(struct proto_buf *out, uint32_t id)
{
    char name[24];

    snprintf(name, sizeof(name), "_pgl_%u", id);
    proto_put_cstr(out, name);
}

/* Makes room in the server's cache, closing the least recently used statement. */
static int cache_make_room(struct px_server *sv, struct proto_buf *out)
{
    struct proxy *px = sv->conn.px;
    int max = px->conf->max_prepared_statements, victim = -1;
    uint32_t id;
    size_t start;

    if (sv->ncached < max)
        return 0;
    for (int i = 0; i < sv->ncached; i++)
        if (!sv->cached[i].pending && (victim < 0 || sv->cached[i].used < sv->cached[victim].used))
            victim = i;
    if (victim < 0)
        return 0;                   /* everything is in flight: let the cache run over for now */
    start = proto_msg_begin(out, PROTO_FE_CLOSE);
    proto_put_u8(out, 'S');
    put_name(out, sv->cached[victim].id);
    proto_msg_end(out, start);
    id = sv->cached[victim].id;
    sv->cached[victim] = sv->cached[--sv->ncached];
    px->prep_evictions++;
    return queue_push(sv, Q_CLOSE, Q_SWALLOW | Q_EVICT, id);
}

static int cache_grow(struct px_server *sv)
{
    if (sv->ncached == sv->capcached) {
        int cap = sv->capcached ? sv->capcached * 2 : 16;
        struct px_cached *n = realloc(sv->cached, sizeof(*n) * (size_t)cap);

        if (!n)
            return -1;
        sv->cached = n;
        sv->capcached = cap;
    }
    return 0;
}

/* The server has the statement after all (an eviction it skipped, or "already exists"). */
static void cache_add_ready(struct px_server *sv, uint32_t id)
{
    int i = cache_find(sv, id);

    if (i >= 0) {
        sv->cached[i].pending = 0;
        return;
    }
    if (cache_grow(sv) == 0)
        sv->cached[sv->ncached++] = (struct px_cached){ id, ++sv->tick, 0 };
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

static int ensure_as(struct px_server *sv, struct px_stmt *s, struct proto_buf *out, int flags,
                     const char *name)
{
    struct proxy *px = sv->conn.px;
    int i = cache_find(sv, s->id);
    size_t start;

    if (i >= 0) {
        sv->cached[i].used = ++sv->tick;
        return 1;
    }
    if (cache_make_room(sv, out) < 0 || cache_grow(sv) < 0)
        return -1;
    sv->cached[sv->ncached++] = (struct px_cached){ s->id, ++sv->tick, 1 };
    start = proto_msg_begin(out, PROTO_FE_PARSE);
    put_name(out, s->id);
    proto_put_bytes(out, s->body, s->len);
    proto_msg_end(out, start);
    px->prep_parses++;
    return queue_push_name(sv, Q_PARSE, (uint8_t)flags, s->id, name) < 0 ? -1 : 0;
}

static void raw(struct proto_buf *out, const uint8_t *msg, uint32_t n)
{
    proto_put_bytes(out, msg, n);
}

static int deallocate_name(const char *sql, size_t len, char *name, size_t cap);

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
    if (nl == 0)
        sv->unnamed_owner = cl->conn.id;
    if (nl == 0) {
        /* An unnamed "DEALLOCATE name" (drivers send it through the extended protocol too). */
        char name[64], sql[48];
        size_t qlen = parse.query_len, start;

        if (deallocate_name((const char *)body + 1, qlen, name, sizeof(name)) && (cs = cstmt_find(cl, name))) {
            if (ensure(sv, cs->stmt, out, Q_SWALLOW) < 0)
                return -1;
            snprintf(sql, sizeof(sql), "DEALLOCATE _pgl_%u", cs->stmt->id);
            start = proto_msg_begin(out, PROTO_FE_PARSE);
            proto_put_u8(out, 0);
            proto_put_cstr(out, sql);
            proto_put_bytes(out, body + 1 + qlen + 1, len - 1 - qlen - 1);
            proto_msg_end(out, start);
            return queue_push_name(sv, Q_PARSE, Q_DEALLOC, cs->stmt->id, cs->name);
        }
    }
    if (nl == 0) {
        raw(out, msg, PROTO_HEADER_LEN + len);
        return queue_push(sv, Q_PARSE, 0, 0);
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
    s = stmt_get(cl->conn.px, body + nl + 1, len - (uint32_t)nl - 1);
    if (!s || cstmt_set(cl, (const char *)body, s) < 0)
        return -1;
    r = ensure_named(sv, s, out, (const char *)body);
    if (r < 0)
        return -1;
    if (r == 1 && (sv->tx_status != 'I' || queue_has_end(sv))) {
        /* The server has it, but this Parse may meet a failed transaction (PostgreSQL: 25P02 and no
         * statement): the server parses the text as its unnamed statement, and its answer is the
         * client's. */
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
 * The unnamed statement is the client's until its next unnamed Parse or simple Query, across Syncs.
 * When the server's is not the client's (another client used the connection, or this is another
 * connection), the client's latest unnamed Parse is replayed first (its reply swallowed), or the
 * server's is closed so that the server answers as PostgreSQL would for a client that has none.
 */
static int unnamed_own(struct px_client *cl, struct px_server *sv, struct proto_buf *out)
{
    size_t start;

    if (sv->unnamed_owner == cl->conn.id)
        return 0;
    sv->unnamed_owner = cl->conn.id;
    if (cl->unnamed) {
        start = proto_msg_begin(out, PROTO_FE_PARSE);
        proto_put_u8(out, 0);
        proto_put_bytes(out, cl->unnamed, cl->unnamed_len);
        proto_msg_end(out, start);
        return queue_push(sv, Q_PARSE, Q_SWALLOW, 0);
    }
    start = proto_msg_begin(out, PROTO_FE_CLOSE);
    proto_put_u8(out, 'S');
    proto_put_u8(out, 0);
    proto_msg_end(out, start);
    return queue_push(sv, Q_CLOSE, Q_SWALLOW, 0);
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
    char sname[24];
    size_t pre = 0, nl = 0, snl;   /* pre: the bytes before the statement name (portal name or 'S') */

    if (qtype == Q_BIND && proto_parse_fe_bind_names(body, have, &bind) == 0) {
        name = bind.statement;
        nl = bind.statement_len;
    } else if (qtype == Q_DESC_STMT && proto_parse_fe_describe(body, have, &t) == 0) {
        name = t.name;
        nl = t.name_len;
    }
    if (name)
        pre = (size_t)((const uint8_t *)name - body);
    if (name && nl == 0 && unnamed_own(cl, sv, out) < 0)
        return -1;
    if (!name || nl == 0 || !(cs = cstmt_find(cl, name))) {
        raw(out, msg, PROTO_HEADER_LEN + have);
        return queue_push(sv, qtype, 0, 0);
    }
    if (ensure(sv, cs->stmt, out, Q_SWALLOW) < 0)
        return -1;
    snl = (size_t)snprintf(sname, sizeof(sname), "_pgl_%u", cs->stmt->id);
    proto_put_u8(out, msg[0]);
    proto_put_u32(out, (uint32_t)(4 + len - nl + snl));
    proto_put_bytes(out, body, pre);
    proto_put_bytes(out, sname, snl + 1);
    proto_put_bytes(out, body + pre + nl + 1, have - pre - nl - 1);
    if (qtype == Q_BIND)
        cl->last_bound = cs->stmt->id;
    return queue_push(sv, qtype, 0, cs->stmt->id);
}

static int on_close(struct px_client *cl, struct px_server *sv, const uint8_t *msg, uint32_t len,
                    struct proto_buf *out)
{
    struct proto_fe_target t;
    struct px_cstmt *cs;
    uint32_t id;
    int r;

    if (proto_parse_fe_close(msg + PROTO_HEADER_LEN, len, &t) < 0 || t.kind != 'S' || t.name_len == 0) {
        raw(out, msg, PROTO_HEADER_LEN + len);
        return queue_push(sv, Q_CLOSE, 0, 0);
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
    if (ensure(sv, cs->stmt, out, Q_SWALLOW) < 0)
        return -1;
    snprintf(sql, sizeof(sql), "DEALLOCATE _pgl_%u", cs->stmt->id);
    start = proto_msg_begin(out, PROTO_FE_QUERY);
    proto_put_cstr(out, sql);
    proto_msg_end(out, start);
    return queue_push_name(sv, Q_QUERY, Q_DEALLOC, cs->stmt->id, cs->name);
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
        return queue_push(sv, Q_DESC_PORTAL, 0, 0);
    case PROTO_FE_CLOSE:
        return on_close(cl, sv, msg, len, out);
    case PROTO_FE_EXECUTE:
        raw(out, msg, PROTO_HEADER_LEN + len);
        return queue_push(sv, Q_EXEC, 0, cl->last_bound);
    case PROTO_FE_SYNC:
        raw(out, msg, PROTO_HEADER_LEN + len);
        return queue_push(sv, Q_SYNC, 0, 0);
    case PROTO_FE_QUERY:
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
        s = stmt_get(cl->conn.px, body + nl + 1, len - (uint32_t)nl - 1);
        if (!s || !s->validated)
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

        if (cstmt_set(cl, (const char *)body, stmt_get(cl->conn.px, body + nl + 1, len - (uint32_t)nl - 1)) < 0)
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
    if (cl->fwd_remain) {          /* the tail of a message begun in an earlier batch */
        uint32_t n = cl->fwd_remain < b->pos - off ? cl->fwd_remain : b->pos - off;

        raw(&out, b->data + off, n);
        off += n;
    }
    while (rc == 0 && off < b->pos) {
        uint32_t len = proto_get_u32(b->data + off + 1) - 4;

        if (off + PROTO_HEADER_LEN + len > b->pos) {   /* streamed: the rest comes later */
            if (b->data[off] == PROTO_FE_BIND && b->pos - off > PROTO_HEADER_LEN)
                rc = on_named_use(cl, sv, b->data + off, len, b->pos - off - PROTO_HEADER_LEN, &out);
            else
                raw(&out, b->data + off, b->pos - off);
            break;
        }
        rc = one_message(cl, sv, b->data + off, len, &out);
        off += PROTO_HEADER_LEN + len;
    }
    cl->fwd_remain = b->remain;
    cl->prep_batch = 0;
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

/* ---- what comes back ---- */

static void send_synth(struct px_server *sv, uint8_t type)
{
    uint8_t msg[5] = { type, 0, 0, 0, 4 };

    (void)px_conn_send_copy(&sv->client->conn, msg, sizeof(msg));
    px_flow_reply(sv->client, type);
}

int px_prep_drain(struct px_server *sv)
{
    struct px_prepq_entry *h;

    while ((h = queue_head(sv)) && (h->flags & Q_SYNTH)) {
        if (!sv->client)
            return 0;
        if (sv->conn.writing || sv->conn.in.start < sv->conn.in.pos || px_flow_raw_owed(sv->client))
            return -1;             /* the server's earlier replies go first */
        send_synth(sv, h->type == Q_PARSE ? PROTO_BE_PARSE_COMPLETE : PROTO_BE_CLOSE_COMPLETE);
        queue_pop(sv);
    }
    return 0;
}

int px_prep_head_is_synth(struct px_server *sv)
{
    struct px_prepq_entry *h = queue_head(sv);

    return h && (h->flags & Q_SYNTH);
}

/* Whether this reply is one pglane caused and the client must not see. */
int px_prep_swallows(struct px_server *sv, uint8_t type)
{
    struct px_prepq_entry *h = queue_head(sv);

    return h && (h->flags & Q_SWALLOW) &&
           ((h->type == Q_PARSE && type == PROTO_BE_PARSE_COMPLETE) ||
            (h->type == Q_CLOSE && type == PROTO_BE_CLOSE_COMPLETE));
}

int px_prep_rewrite_error(struct px_server *sv, struct proto_frame *f)
{
    struct px_prepq_entry *h = queue_head(sv);
    struct proto_error_fields ef;
    const uint8_t *p = f->body, *end = f->body + f->len;
    struct proto_buf nb;
    size_t start;
    int rc;

    if (!h || !(h->flags & Q_DUPNAME) || !h->name || proto_parse_error(f->body, f->len, &ef) < 0 ||
        !ef.sqlstate || strcmp(ef.sqlstate, "42P05") != 0)
        return 0;
    proto_buf_init(&nb);
    start = proto_msg_begin(&nb, PROTO_BE_ERROR);
    while (p < end && *p) {
        uint8_t code = *p++;
        const uint8_t *z = memchr(p, 0, (size_t)(end - p));

        if (!z)
            break;
        proto_put_u8(&nb, code);
        if (code == 'M') {
            char msg[160];

            snprintf(msg, sizeof(msg), "prepared statement \"%s\" already exists", h->name);
            proto_put_cstr(&nb, msg);
        } else {
            proto_put_cstr(&nb, (const char *)p);
        }
        p = z + 1;
    }
    proto_put_u8(&nb, 0);
    proto_msg_end(&nb, start);
    rc = nb.failed ? 0 : px_server_replace_frame(sv, f, &nb);
    proto_buf_free(&nb);
    return rc;
}

/* After an error the server skips everything up to the next Sync, which answers with ReadyForQuery. */
static void skip_to_sync(struct px_server *sv)
{
    struct px_prepq_entry *h;

    while ((h = queue_head(sv)) && h->type != Q_SYNC)
        queue_settle(sv, 0);
}

static void on_error(struct px_server *sv, const struct proto_frame *f)
{
    struct px_prepq_entry *h = queue_head(sv);
    struct proto_error_fields ef;

    if (h->type == Q_QUERY) {
        h->flags |= Q_FAILED;      /* a simple Query still ends with its own ReadyForQuery */
        return;
    }
    if (!f->body || proto_parse_error(f->body, f->len, &ef) < 0)
        ef.sqlstate = NULL;
    if (ef.sqlstate && strcmp(ef.sqlstate, "0A000") == 0 && h->stmt &&
        (h->type == Q_EXEC || h->type == Q_BIND)) {
        /* "cached plan must not change result type": the next use prepares it afresh. */
        cache_remove(sv, h->stmt);
        stmt_invalidate(sv->conn.px, h->stmt);
    }
    if (ef.sqlstate && strcmp(ef.sqlstate, "42P05") == 0 && h->type == Q_PARSE && h->stmt) {
        /* The server has this statement although pglane thought not: believe the server. */
        uint32_t id = h->stmt;

        h->stmt = 0;
        queue_settle(sv, 0);
        cache_add_ready(sv, id);
    }
    skip_to_sync(sv);
}

/* Advances the response queue past one server message. */
void px_prep_on_reply(struct px_server *sv, const struct proto_frame *f)
{
    struct px_prepq_entry *h = queue_head(sv);
    int done = 0;

    if (!h)
        return;
    switch (f->type) {
    case PROTO_BE_PARSE_COMPLETE:
        if (h->type == Q_PARSE && h->stmt) {
            int i = cache_find(sv, h->stmt);
            struct px_stmt *s = stmt_by_id(sv->conn.px, h->stmt);

            if (i >= 0)
                sv->cached[i].pending = 0;
            if (s)
                s->validated = 1;
        }
        done = h->type == Q_PARSE;
        break;
    case PROTO_BE_BIND_COMPLETE:
        done = h->type == Q_BIND;
        break;
    case PROTO_BE_CLOSE_COMPLETE:
        done = h->type == Q_CLOSE;
        break;
    case PROTO_BE_ROW_DESC:
    case PROTO_BE_NO_DATA:
        done = h->type == Q_DESC_STMT || h->type == Q_DESC_PORTAL;
        break;
    case PROTO_BE_COMMAND_COMPLETE:
    case PROTO_BE_EMPTY_QUERY:
    case PROTO_BE_PORTAL_SUSPENDED:
        done = h->type == Q_EXEC;
        break;
    case PROTO_BE_READY:
        if (h->type == Q_QUERY) {
            queue_settle(sv, !(h->flags & Q_FAILED));
            return;
        }
        done = h->type == Q_SYNC;
        if (!done)             /* out of step: start over rather than misattribute replies */
            queue_clear(sv);
        break;
    case PROTO_BE_ERROR:
        on_error(sv, f);
        return;
    default:
        return;
    }
    if (done)
        queue_pop(sv);
}
