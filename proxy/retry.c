/*
 * Transparent retry of a transaction's first message(s) (issue 20): when the pooled server connection
 * a transaction was given turns out dead (PostgreSQL terminated it while it sat in the pool, restarted,
 * a network device dropped the flow) before anything of the reply reached the client, nothing of the
 * transaction ran to completion: a FATAL aborts it. pglane then sends the same bytes on another
 * connection. This file holds the pure decision (tests/unit/test_proxy_retry.c); proxy/retry_conn.c
 * keeps the bytes and resends them.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"
#include "routing/route.h"

int px_retry_fault_error(const char *severity, const char *sqlstate)
{
    if (!severity || !sqlstate || strlen(sqlstate) != 5)
        return 0;
    if (strcmp(severity, "FATAL") != 0 && strcmp(severity, "PANIC") != 0)
        return 0;
    /* 57P01 admin_shutdown (pg_terminate_backend, fast shutdown), 57P02 crash_shutdown, 57P03
     * cannot_connect_now; class 08: connection exceptions. */
    return strcmp(sqlstate, "57P01") == 0 || strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0 ||
           strncmp(sqlstate, "08", 2) == 0;
}

enum px_retry_verdict px_retry_decide(const struct px_retry_case *c)
{
    if (c->kind != PX_RK_FIRST && c->kind != PX_RK_FIRST_MAPPED && c->kind != PX_RK_AFTER_BEGIN)
        return PX_RETRY_RELAY;       /* inside a transaction, session pooling, streamed or too large */
    if (c->reply_seen)
        return PX_RETRY_RELAY;       /* the client has part of the answer: it may have run */
    if (c->attempts >= c->limit)
        return PX_RETRY_RELAY;
    if (c->fault == PX_RF_CLOSED)
        return PX_RETRY_AGAIN;
    if (c->fault == PX_RF_ERROR && px_retry_fault_error(c->severity, c->sqlstate))
        return PX_RETRY_AGAIN;
    return PX_RETRY_RELAY;
}

/* The message at p[off] is whole within n bytes: its type and body. 0, or -1 if not. */
static int message_at(const uint8_t *p, uint32_t n, uint32_t off, uint8_t *type, const uint8_t **body, uint32_t *len)
{
    uint32_t l;

    if (n - off < PROTO_HEADER_LEN || (l = proto_get_u32(p + off + 1)) < 4 || n - off - 1 < l)
        return -1;
    *type = p[off];
    *body = p + off + PROTO_HEADER_LEN;
    *len = l - 4;
    return 0;
}

int px_retry_begin_request(const uint8_t *p, uint32_t n, px_retry_stmt_text_fn text_of, void *ctx, const char **sql,
                           size_t *sql_len)
{
    const char *unnamed = NULL, *bound = NULL, *q;
    size_t unnamed_len = 0, bound_len = 0, ql;
    int binds = 0, executes = 0;
    uint32_t off = 0;

    while (off < n) {
        struct proto_fe_parse parse;
        struct proto_fe_bind bind;
        const uint8_t *body;
        uint32_t len;
        uint8_t type;

        if (message_at(p, n, off, &type, &body, &len) < 0)
            return 0;
        off += PROTO_HEADER_LEN + len;
        switch (type) {
        case PROTO_FE_PARSE:         /* a named Parse would create a name: not "only a BEGIN" */
            if (proto_parse_fe_parse(body, len, &parse) < 0 || parse.name_len > 0 ||
                !route_begin_tag(parse.query, parse.query_len))
                return 0;
            unnamed = parse.query;
            unnamed_len = parse.query_len;
            break;
        case PROTO_FE_BIND:
            if (binds++ || proto_parse_fe_bind_names(body, len, &bind) < 0)
                return 0;
            if (bind.statement_len == 0) {
                q = unnamed;         /* the unnamed statement parsed in this request */
                ql = unnamed_len;
            } else {
                q = text_of ? text_of(ctx, bind.statement, &ql) : NULL;
            }
            if (!q || !route_begin_tag(q, ql))
                return 0;
            bound = q;
            bound_len = ql;
            break;
        case PROTO_FE_EXECUTE:
            if (!binds || executes++)
                return 0;
            break;
        case PROTO_FE_DESCRIBE:
        case PROTO_FE_FLUSH:
            break;
        case PROTO_FE_SYNC:
            if (off != n || !executes)
                return 0;
            *sql = bound;
            *sql_len = bound_len;
            return 1;
        default:
            return 0;
        }
    }
    return 0;                        /* no Sync: the request is not complete */
}

int px_retry_after_begin_ok(const uint8_t *p, uint32_t n)
{
    int statement = 0, portal = 0;   /* an unnamed statement / portal of this request's own exists */
    uint32_t off = 0;

    while (off < n) {
        struct proto_fe_parse parse;
        struct proto_fe_bind bind;
        struct proto_fe_target t;
        const uint8_t *body;
        uint32_t len;
        uint8_t type;

        if (message_at(p, n, off, &type, &body, &len) < 0)
            return 1;                /* a streamed tail: names are in the whole messages before it */
        off += PROTO_HEADER_LEN + len;
        switch (type) {
        case PROTO_FE_QUERY:
            statement = portal = 1;  /* a simple Query drops the unnamed statement and portal */
            break;
        case PROTO_FE_PARSE:
            if (proto_parse_fe_parse(body, len, &parse) < 0)
                return 0;
            statement |= parse.name_len == 0;
            break;
        case PROTO_FE_BIND:
            if (proto_parse_fe_bind_names(body, len, &bind) < 0 || (bind.statement_len == 0 && !statement))
                return 0;
            portal |= bind.portal_len == 0;
            break;
        case PROTO_FE_DESCRIBE:
        case PROTO_FE_CLOSE:
            if ((type == PROTO_FE_DESCRIBE ? proto_parse_fe_describe(body, len, &t)
                                           : proto_parse_fe_close(body, len, &t)) < 0 ||
                (t.name_len == 0 && !(t.kind == 'S' ? statement : portal)))
                return 0;
            break;
        case PROTO_FE_EXECUTE:
            if (!portal)
                return 0;            /* the BEGIN's own portal, or one only the old server had */
            break;
        default:
            break;
        }
    }
    return 1;
}
