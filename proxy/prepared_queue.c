/*
 * A server connection's response queue for prepared statements in transaction pooling (see
 * proxy/prepared.c): one entry per message sent while it is in play, settled by the replies, which
 * it drops when pglane caused them, produces when pglane owes them, and rewrites when the server's
 * error names pglane's statement instead of the client's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/prepared_internal.h"
#include "proxy/proxy.h"

/* ---- a server's response queue ---- */

int queue_push_name(struct px_server *sv, uint8_t type, uint16_t flags, uint32_t stmt, const char *name)
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
    q->e[(q->head + q->n) % q->cap] = (struct px_prepq_entry){ type, flags, stmt, 0, sv->copy_ends, copy };
    q->n++;
    return 0;
}

int queue_push(struct px_server *sv, uint8_t type, uint16_t flags, uint32_t stmt)
{
    return queue_push_name(sv, type, flags, stmt, NULL);
}

/* A message that changes the client's unnamed statement (cache_unnamed), prev its mapping before. */
int queue_push_unnamed(struct px_server *sv, uint8_t type, uint16_t flags, uint32_t stmt, uint32_t prev)
{
    if (queue_push_name(sv, type, flags | Q_UNNAMED, stmt, NULL) < 0)
        return -1;
    queue_last(sv)->prev = prev;
    return 0;
}

/* The entry pushed last (the queue is not empty). */
struct px_prepq_entry *queue_last(struct px_server *sv)
{
    return &sv->prepq.e[(sv->prepq.head + sv->prepq.n - 1) % sv->prepq.cap];
}

static struct px_prepq_entry *queue_head(struct px_server *sv)
{
    return sv->prepq.n ? &sv->prepq.e[sv->prepq.head] : NULL;
}

/* A Sync or Query is still to be answered: the transaction status may change before later messages. */
int queue_has_end(const struct px_server *sv)
{
    const struct px_prepq *q = &sv->prepq;

    for (uint32_t i = 0; i < q->n; i++) {
        uint8_t t = q->e[(q->head + i) % q->cap].type;

        if (t == Q_SYNC || t == Q_QUERY)
            return 1;
    }
    return 0;
}

/* What the end of entry e means for the client's names: ok when the server carried its message out,
 * else it was skipped or failed. */
static void settle_entry(struct px_server *sv, struct px_prepq_entry *e, int ok)
{
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
    if (ok && (e->flags & Q_REPREP))
        cache_gone(sv, e->stmt);
    if (e->flags & Q_XDEALLOC)
        cache_dealloc_settled(sv, e->stmt, ok);
    if (!ok && e->type == Q_PARSE && !(e->flags & (Q_SYNTH | Q_URAW)) && e->stmt)
        cache_parse_undone(sv, e->stmt);
    if (cl && (e->flags & Q_UNNAMED))
        unnamed_settle(cl, e, ok);
    free(e->name);
    e->name = NULL;
}

/* Removes the head entry (settled). */
static void queue_drop_head(struct px_server *sv)
{
    struct px_prepq *q = &sv->prepq;

    q->head = (q->head + 1) % q->cap;
    if (--q->n == 0)
        q->head = 0;
}

/* Settles the head entry and removes it. */
static void queue_settle(struct px_server *sv, int ok)
{
    settle_entry(sv, &sv->prepq.e[sv->prepq.head], ok);
    queue_drop_head(sv);
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

void px_prep_undo_sent(struct px_server *sv)
{
    struct px_prepq *q = &sv->prepq;
    struct px_client *cl = sv->client;

    for (uint32_t i = q->n; cl && i-- > 0;) {
        struct px_prepq_entry *e = &q->e[(q->head + i) % q->cap];
        struct px_cstmt *cs = e->name ? cstmt_find(cl, e->name) : NULL;
        struct px_stmt *s;

        if (e->flags & Q_UNNAMED)
            unnamed_map_set(cl, e->prev); /* the oldest one's wins: as before the first is sent again */
        if (cs && (e->flags & Q_NEWNAME))
            cstmt_drop(cl, cs);           /* the Parse that created it is sent again */
        else if (!cs && e->name && (e->flags & Q_RESTORE) && (s = stmt_by_id(sv->conn.px, e->stmt)))
            (void)cstmt_set(cl, e->name, s);   /* the Close that dropped it is sent again */
    }
    queue_clear(sv);
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

/* ---- what comes back ---- */

static void send_synth(struct px_server *sv, uint8_t type)
{
    uint8_t msg[5] = { type, 0, 0, 0, 4 };

    if (sv->client->retry_buf)
        px_retry_on_reply(sv->client, type);   /* a reply reached the client: no resend */
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

static int shape_wanted(struct px_server *sv, const struct px_prepq_entry *h);

int px_prep_reads_whole(struct px_server *sv, uint8_t type)
{
    const struct px_prepq_entry *h;

    if (type == PROTO_BE_PARSE_COMPLETE || type == PROTO_BE_CLOSE_COMPLETE)
        return 1;
    if ((type == PROTO_BE_BIND_COMPLETE || type == PROTO_BE_DATA_ROW) && (h = queue_head(sv)) &&
        (h->flags & Q_SWALLOW))
        return 1;                  /* pglane's own settings run (prepared.c put_parse_settings) */
    return (type == PROTO_BE_ROW_DESC || type == PROTO_BE_NO_DATA) && (h = queue_head(sv)) &&
           (h->type == Q_DESC_STMT || h->type == Q_DESC_PORTAL) && h->stmt &&
           ((h->flags & Q_SWALLOW) || shape_wanted(sv, h));   /* dropped (on_named_use), or learnt from */
}

/* Whether this reply is one pglane caused and the client must not see. */
int px_prep_swallows(struct px_server *sv, uint8_t type)
{
    struct px_prepq_entry *h = queue_head(sv);

    if (h && (h->flags & Q_PREPCC) && type == PROTO_BE_COMMAND_COMPLETE)
        return 1;                  /* px_prep_on_reply clears the flag: the next is the client's */
    return h && (h->flags & Q_SWALLOW) &&
           ((h->type == Q_PARSE && type == PROTO_BE_PARSE_COMPLETE) ||
            (h->type == Q_CLOSE && type == PROTO_BE_CLOSE_COMPLETE) ||
            (h->type == Q_BIND && type == PROTO_BE_BIND_COMPLETE) ||
            (h->type == Q_EXEC && (type == PROTO_BE_DATA_ROW || type == PROTO_BE_COMMAND_COMPLETE)) ||
            (h->type == Q_DESC_STMT && (type == PROTO_BE_ROW_DESC || type == PROTO_BE_NO_DATA)));
}

int px_prep_rewrite_error(struct px_server *sv, struct proto_frame *f)
{
    struct px_prepq_entry *h = queue_head(sv);
    struct proto_error_fields ef;
    struct proto_buf nb;
    char msg[160];
    int rc;

    if (h && (h->flags & Q_STALE) && proto_parse_error(f->body, f->len, &ef) == 0 && ef.sqlstate &&
        strcmp(ef.sqlstate, "26000") == 0) {
        /* PostgreSQL's answer to a statement whose result columns changed since the client was told
         * them (or, in a failed transaction, the failed transaction's, which it checks first). */
        proto_buf_init(&nb);
        if (sv->tx_status == 'E') {
            proto_build_error(&nb, "ERROR", "25P02",
                              "current transaction is aborted, commands ignored until end of transaction block",
                              NULL, NULL);
        } else {
            /* With PostgreSQL's file and routine: drivers tell this error by them (asyncpg's
             * InvalidCachedStatementError, which it answers by preparing the statement again). */
            size_t start = proto_msg_begin(&nb, PROTO_BE_ERROR);
            static const char *const fields[] = { "SERROR", "VERROR", "C0A000",
                                                  "Mcached plan must not change result type", "Fplancache.c",
                                                  "RRevalidateCachedQuery" };

            for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++)
                proto_put_cstr(&nb, fields[k]);
            proto_put_u8(&nb, 0);
            proto_msg_end(&nb, start);
        }
        rc = nb.failed ? 0 : px_server_replace_frame(sv, f, &nb);
        proto_buf_free(&nb);
        return rc;
    }
    if (!h || !(h->flags & Q_DUPNAME) || !h->name || proto_parse_error(f->body, f->len, &ef) < 0 ||
        !ef.sqlstate || strcmp(ef.sqlstate, "42P05") != 0)
        return 0;
    snprintf(msg, sizeof(msg), "prepared statement \"%s\" already exists", h->name);
    proto_buf_init(&nb);
    proto_build_error_rewrite(&nb, f->body, f->len, "M", (const char *const[]){msg});
    rc = nb.failed ? 0 : px_server_replace_frame(sv, f, &nb);
    proto_buf_free(&nb);
    return rc;
}

/*
 * After an error the server skips everything up to the next Sync, which answers with ReadyForQuery.
 * None of those messages, the failed one included, took effect: their changes to the client's names
 * (made when they were forwarded) are undone last first, so that the names are as they were before
 * the failed message (a skipped Parse of a new name and a skipped Close of it: the Close's undo puts
 * the name back, then the Parse's removes it).
 */
static void skip_to_sync(struct px_server *sv)
{
    struct px_prepq *q = &sv->prepq;
    uint32_t k = 0;

    while (k < q->n && q->e[(q->head + k) % q->cap].type != Q_SYNC)
        k++;
    for (uint32_t i = k; i-- > 0;)
        settle_entry(sv, &q->e[(q->head + i) % q->cap], 0);
    while (k-- > 0)
        queue_drop_head(sv);
}

static void on_error(struct px_server *sv, const struct proto_frame *f)
{
    struct px_prepq_entry *h = queue_head(sv);
    struct proto_error_fields ef;

    if (h->type == Q_QUERY) {
        h->flags |= Q_FAILED;      /* a simple Query still ends with its own ReadyForQuery */
        return;
    }
    h->flags |= Q_UFAILED;         /* the failed message; those after it up to Sync are skipped */
    if (!f->body || proto_parse_error(f->body, f->len, &ef) < 0)
        ef.sqlstate = NULL;
    if (ef.sqlstate && strcmp(ef.sqlstate, "0A000") == 0 && h->stmt &&
        (h->type == Q_EXEC || h->type == Q_BIND || h->type == Q_DESC_STMT)) {
        /* "cached plan must not change result type": the next use prepares it afresh. */
        cache_remove(sv, h->stmt);
        stmt_invalidate(sv->conn.px, h->stmt);
    }
    if (ef.sqlstate && strcmp(ef.sqlstate, "26000") == 0 && h->stmt && (h->type == Q_BIND || h->type == Q_DESC_STMT))
        cache_remove(sv, h->stmt); /* gone from the server (a client's DEALLOCATE of pglane's name): the
                                    * next use prepares it again */
    if (ef.sqlstate && strcmp(ef.sqlstate, "42P05") == 0 && h->type == Q_PARSE && h->stmt) {
        /* The server has this statement although pglane thought not: believe the server. */
        uint32_t id = h->stmt;
        int i = cache_find(sv, id);

        if (i >= 0)                /* this Parse is answered */
            sv->cached[i].pending -= sv->cached[i].pending > 0;
        h->stmt = 0;
        queue_settle(sv, 0);
        cache_add_ready(sv, id);
    }
    skip_to_sync(sv);
}

uint64_t prep_shape(uint8_t type, const uint8_t *body, uint32_t len)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a over each column's name, type and typmod */
    uint32_t off = 2, n;

    if (type != PROTO_BE_ROW_DESC || len < 2)
        return 1;                  /* NoData (or a description pglane cannot read) */
    n = (uint32_t)body[0] << 8 | body[1];
    for (uint32_t i = 0; i < n && off < len; i++) {
        const uint8_t *z = memchr(body + off, 0, len - off);
        uint32_t end;

        if (!z || (end = (uint32_t)(z - body) + 1) + 18 > len)
            break;
        for (uint32_t k = off; k < end; k++)
            h = (h ^ body[k]) * 1099511628211ull;
        for (uint32_t k = end + 6; k < end + 10; k++)     /* type OID */
            h = (h ^ body[k]) * 1099511628211ull;
        for (uint32_t k = end + 12; k < end + 16; k++)    /* typmod */
            h = (h ^ body[k]) * 1099511628211ull;
        off = end + 18;
    }
    h = (h ^ n) * 1099511628211ull;
    return h > 1 ? h : 2;
}

/* Whether a description of entry h's statement (a Describe of it, or of the unnamed portal bound
 * from it) tells pglane something it does not know: the columns of this server's copy, or those a
 * client name of it was told. Cheap when all is known (a client that describes every execution). */
static int shape_wanted(struct px_server *sv, const struct px_prepq_entry *h)
{
    const struct px_client *cl = sv->client;
    int i = cache_find(sv, h->stmt);

    if (i >= 0 && sv->cached[i].shape == 0)
        return 1;
    if (!cl)
        return 0;
    if (h->name) {
        const struct px_cstmt *cs = cstmt_find((struct px_client *)cl, h->name);

        return cs && cs->stmt->id == h->stmt && cs->shape == 0;
    }
    for (int k = 0; k < cl->nstmts; k++)
        if (cl->stmts[k].stmt->id == h->stmt && cl->stmts[k].shape == 0)
            return 1;
    return 0;
}

/* A description of a client statement answered: the columns of the statement as this server has it,
 * and (the first time) what the client was told, for the name described or, for a portal, every name
 * of that statement the client has. */
static void learn_shape(struct px_server *sv, const struct px_prepq_entry *h, uint64_t shape)
{
    struct px_client *cl = sv->client;
    int i = cache_find(sv, h->stmt);

    if (i >= 0)
        sv->cached[i].shape = shape;
    if (!cl)
        return;
    for (int k = 0; k < cl->nstmts; k++) {
        struct px_cstmt *cs = &cl->stmts[k];

        if (cs->stmt->id == h->stmt && cs->shape == 0 && (!h->name || strcmp(cs->name, h->name) == 0)) {
            cs->shape = shape;
            cl->shapes_known = 1;
        }
    }
}

/*
 * CopyInResponse to the head (an Execute or a Query): PostgreSQL reads COPY data now and ignores Sync
 * and Flush up to the CopyDone or CopyFail. The Syncs sent behind the head before that message (a
 * driver that sends Bind, Execute and Sync together, as tokio-postgres does) get no ReadyForQuery:
 * they leave the queue, or a reply pglane owes behind them (a CloseComplete) would wait for one
 * ReadyForQuery too many and reach the client after it. Until the CopyDone is sent, no Sync is queued.
 */
static void copy_in_started(struct px_server *sv, struct px_prepq_entry *h)
{
    struct px_prepq *q = &sv->prepq;
    uint32_t k = 0;

    while (k + 1 < q->n) {
        struct px_prepq_entry *e = &q->e[(q->head + 1 + k) % q->cap];

        if (e->type != Q_SYNC || e->copy_ends != h->copy_ends)
            break;
        k++;
    }
    if (k > 0) {                   /* the head moves up over them (Syncs carry no name) */
        q->e[(q->head + k) % q->cap] = *h;
        q->head = (q->head + k) % q->cap;
        q->n -= k;
    }
    sv->prep_copy_in = sv->copy_ends == h->copy_ends;
}

/* Advances the response queue past one server message. */
void px_prep_on_reply(struct px_server *sv, const struct proto_frame *f)
{
    struct px_prepq_entry *h = queue_head(sv);
    int done = 0;

    if (f->type == PROTO_BE_ERROR || f->type == PROTO_BE_READY)
        sv->prep_copy_in = 0;      /* an error ends COPY IN: the next Sync is answered */
    if (!h)
        return;
    switch (f->type) {
    case PROTO_BE_COPY_IN:
        copy_in_started(sv, h);
        return;
    case PROTO_BE_PARSE_COMPLETE:
        if (h->type == Q_PARSE && h->stmt) {
            int i = cache_find(sv, h->stmt);
            struct px_stmt *s = stmt_by_id(sv->conn.px, h->stmt);

            if (i >= 0 && !(h->flags & Q_URAW)) {
                sv->cached[i].pending -= sv->cached[i].pending > 0;
                sv->cached[i].exists = 1;
            }
            if (s && !s->validated) {
                s->validated = 1;
                if (sv->conn.px->workers)
                    px_prep_shared_accepted(s);
            }
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
        /* Read whole (f->body set) exactly when px_prep_reads_whole found it worth learning from. */
        if ((h->type == Q_DESC_STMT || h->type == Q_DESC_PORTAL) && h->stmt && f->body)
            learn_shape(sv, h, prep_shape(f->type, f->body, f->len));
        break;
    case PROTO_BE_COMMAND_COMPLETE:
        if (h->flags & Q_PREPCC) {  /* the PREPARE of on_deallocate's Query, dropped */
            h->flags &= (uint16_t)~Q_PREPCC;
            return;
        }
        done = h->type == Q_EXEC;
        break;
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
