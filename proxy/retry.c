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
    if (c->kind != PX_RK_FIRST)
        return PX_RETRY_RELAY;       /* inside a transaction, session pooling, prepared path, streamed */
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
