/*
 * The retry decision (proxy/retry.c): which faults of a pooled server connection make pglane resend a
 * transaction's first message(s), and which are relayed to the client.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/proxy.h"

struct row {
    enum px_retry_kind kind;
    int reply_seen;
    int fault;
    const char *severity, *sqlstate;
    int attempts, limit;
    enum px_retry_verdict want;
};

static void test_decision_table(void **state)
{
    (void)state;
    static const struct row rows[] = {
        /* the transaction's first message(s), nothing of the reply forwarded yet */
        { PX_RK_FIRST, 0, PX_RF_ERROR, "FATAL", "57P01", 0, 2, PX_RETRY_AGAIN },   /* pg_terminate_backend */
        { PX_RK_FIRST, 0, PX_RF_ERROR, "FATAL", "57P02", 0, 2, PX_RETRY_AGAIN },   /* crash shutdown */
        { PX_RK_FIRST, 0, PX_RF_ERROR, "FATAL", "57P03", 1, 2, PX_RETRY_AGAIN },   /* cannot connect now */
        { PX_RK_FIRST, 0, PX_RF_ERROR, "FATAL", "08006", 0, 2, PX_RETRY_AGAIN },
        { PX_RK_FIRST, 0, PX_RF_ERROR, "FATAL", "08P01", 0, 2, PX_RETRY_AGAIN },
        { PX_RK_FIRST, 0, PX_RF_ERROR, "PANIC", "57P01", 0, 2, PX_RETRY_AGAIN },
        { PX_RK_FIRST, 0, PX_RF_CLOSED, NULL, NULL, 0, 2, PX_RETRY_AGAIN },       /* EOF, reset, EPIPE */
        /* errors that say something about the statement, not the connection */
        { PX_RK_FIRST, 0, PX_RF_ERROR, "ERROR", "57P01", 0, 2, PX_RETRY_RELAY },
        { PX_RK_FIRST, 0, PX_RF_ERROR, "ERROR", "08006", 0, 2, PX_RETRY_RELAY },
        { PX_RK_FIRST, 0, PX_RF_ERROR, "ERROR", "40001", 0, 2, PX_RETRY_RELAY },  /* serialization failure */
        { PX_RK_FIRST, 0, PX_RF_ERROR, "FATAL", "57P04", 0, 2, PX_RETRY_RELAY },  /* database dropped */
        { PX_RK_FIRST, 0, PX_RF_ERROR, "FATAL", "57014", 0, 2, PX_RETRY_RELAY },  /* statement timeout class */
        { PX_RK_FIRST, 0, PX_RF_ERROR, "FATAL", "28P01", 0, 2, PX_RETRY_RELAY },
        { PX_RK_FIRST, 0, PX_RF_ERROR, "FATAL", "25P03", 0, 2, PX_RETRY_RELAY },  /* idle in tx timeout */
        { PX_RK_FIRST, 0, PX_RF_ERROR, "FATAL", NULL, 0, 2, PX_RETRY_RELAY },
        { PX_RK_FIRST, 0, PX_RF_ERROR, NULL, "57P01", 0, 2, PX_RETRY_RELAY },
        { PX_RK_FIRST, 0, PX_RF_ERROR, "FATAL", "57P0", 0, 2, PX_RETRY_RELAY },
        /* a reply byte reached the client: the statement may have run */
        { PX_RK_FIRST, 1, PX_RF_ERROR, "FATAL", "57P01", 0, 2, PX_RETRY_RELAY },
        { PX_RK_FIRST, 1, PX_RF_CLOSED, NULL, NULL, 0, 2, PX_RETRY_RELAY },
        /* attempts used up, or retry off */
        { PX_RK_FIRST, 0, PX_RF_ERROR, "FATAL", "57P01", 2, 2, PX_RETRY_RELAY },
        { PX_RK_FIRST, 0, PX_RF_CLOSED, NULL, NULL, 0, 0, PX_RETRY_RELAY },
        /* first message(s) kept through the prepared-statement mapping: the client's bytes, mapped again */
        { PX_RK_FIRST_MAPPED, 0, PX_RF_ERROR, "FATAL", "57P01", 0, 2, PX_RETRY_AGAIN },
        { PX_RK_FIRST_MAPPED, 0, PX_RF_CLOSED, NULL, NULL, 1, 2, PX_RETRY_AGAIN },
        { PX_RK_FIRST_MAPPED, 0, PX_RF_ERROR, "ERROR", "26000", 0, 2, PX_RETRY_RELAY },
        { PX_RK_FIRST_MAPPED, 1, PX_RF_ERROR, "FATAL", "57P01", 0, 2, PX_RETRY_RELAY },
        { PX_RK_FIRST_MAPPED, 0, PX_RF_CLOSED, NULL, NULL, 2, 2, PX_RETRY_RELAY },
        /* the first message(s) after a request that only began the transaction (its reply forwarded) */
        { PX_RK_AFTER_BEGIN, 0, PX_RF_ERROR, "FATAL", "57P01", 0, 2, PX_RETRY_AGAIN },
        { PX_RK_AFTER_BEGIN, 0, PX_RF_ERROR, "FATAL", "08006", 0, 2, PX_RETRY_AGAIN },
        { PX_RK_AFTER_BEGIN, 0, PX_RF_CLOSED, NULL, NULL, 0, 2, PX_RETRY_AGAIN },
        { PX_RK_AFTER_BEGIN, 0, PX_RF_ERROR, "ERROR", "40P01", 0, 2, PX_RETRY_RELAY },   /* deadlock */
        { PX_RK_AFTER_BEGIN, 0, PX_RF_ERROR, "FATAL", "25P03", 0, 2, PX_RETRY_RELAY },   /* idle in tx timeout */
        { PX_RK_AFTER_BEGIN, 1, PX_RF_ERROR, "FATAL", "57P01", 0, 2, PX_RETRY_RELAY },   /* statement answered */
        { PX_RK_AFTER_BEGIN, 0, PX_RF_CLOSED, NULL, NULL, 0, 0, PX_RETRY_RELAY },
        /* a BEGIN request's reply partly forwarded (ParseComplete out, ReadyForQuery not yet) */
        { PX_RK_FIRST, 1, PX_RF_CLOSED, NULL, NULL, 0, 2, PX_RETRY_RELAY },
        /* never retried */
        { PX_RK_IN_TX, 0, PX_RF_ERROR, "FATAL", "57P01", 0, 2, PX_RETRY_RELAY },
        { PX_RK_IN_TX, 0, PX_RF_CLOSED, NULL, NULL, 0, 2, PX_RETRY_RELAY },
        { PX_RK_SESSION, 0, PX_RF_ERROR, "FATAL", "57P01", 0, 2, PX_RETRY_RELAY },
        { PX_RK_SESSION, 0, PX_RF_CLOSED, NULL, NULL, 0, 2, PX_RETRY_RELAY },
        { PX_RK_UNKEPT, 0, PX_RF_ERROR, "FATAL", "57P01", 0, 2, PX_RETRY_RELAY },
        { PX_RK_UNKEPT, 0, PX_RF_CLOSED, NULL, NULL, 0, 2, PX_RETRY_RELAY },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        struct px_retry_case c = { .kind = r->kind, .reply_seen = r->reply_seen, .fault = r->fault,
                                   .severity = r->severity, .sqlstate = r->sqlstate, .attempts = r->attempts,
                                   .limit = r->limit };
        if (px_retry_decide(&c) != r->want)
            print_error("row %zu: kind %d reply %d fault %d %s %s attempts %d/%d: want %s\n", i, r->kind,
                        r->reply_seen, r->fault, r->severity ? r->severity : "-", r->sqlstate ? r->sqlstate : "-",
                        r->attempts, r->limit, r->want == PX_RETRY_AGAIN ? "retry" : "relay");
        assert_int_equal(px_retry_decide(&c), r->want);
    }
}

static void test_fault_error_classes(void **state)
{
    (void)state;
    assert_true(px_retry_fault_error("FATAL", "57P01"));
    assert_true(px_retry_fault_error("FATAL", "08000"));
    assert_false(px_retry_fault_error("FATAL", "57P011"));
    assert_false(px_retry_fault_error("WARNING", "57P01"));
    assert_false(px_retry_fault_error("FATAL", "53300"));   /* too many connections: not a dead connection */
}

/* ---- the extended-protocol request that only begins a transaction ---- */

/* A message of a request: type, then up to two strings (Parse: name, query; Bind: portal, statement;
 * Describe / Close: kind as "S" or "P", name; Execute: portal; Query: sql). */
struct m {
    char type;
    const char *a, *b;
};

static void put(struct proto_buf *out, const struct m *ms)
{
    for (; ms->type; ms++) {
        size_t start = proto_msg_begin(out, (uint8_t)ms->type);

        switch (ms->type) {
        case 'P':
            proto_put_cstr(out, ms->a);
            proto_put_cstr(out, ms->b);
            proto_put_u16(out, 0);
            break;
        case 'B':
            proto_put_cstr(out, ms->a);
            proto_put_cstr(out, ms->b);
            proto_put_u16(out, 0);
            proto_put_u16(out, 0);
            proto_put_u16(out, 0);
            break;
        case 'D':
        case 'C':
            proto_put_u8(out, (uint8_t)ms->a[0]);
            proto_put_cstr(out, ms->b);
            break;
        case 'E':
            proto_put_cstr(out, ms->a);
            proto_put_u32(out, 0);
            break;
        case 'Q':
            proto_put_cstr(out, ms->a);
            break;
        default:                     /* Sync 'S', Flush 'H': no body */
            break;
        }
        proto_msg_end(out, start);
    }
}

static const char *lookup(void *ctx, const char *name, size_t *len)
{
    const char *sql = NULL;

    (void)ctx;
    if (strcmp(name, "b") == 0)
        sql = "BEGIN;";
    else if (strcmp(name, "ro") == 0)
        sql = "START TRANSACTION READ ONLY";
    else if (strcmp(name, "u") == 0)
        sql = "UPDATE t SET n = n + 1";
    if (sql)
        *len = strlen(sql);
    return sql;
}

#define M_END { 0, NULL, NULL }
#define SYNC { 'S', NULL, NULL }
#define FLUSH { 'H', NULL, NULL }
#define EXEC { 'E', "", NULL }
#define DESC_PORTAL { 'D', "P", "" }
#define BIND(stmt) { 'B', "", stmt }
#define PARSE(name, sql) { 'P', name, sql }
#define QUERY(sql) { 'Q', sql, NULL }

static void test_begin_request(void **state)
{
    (void)state;
    static const struct {
        struct m ms[8];
        int want;
        const char *sql;
    } rows[] = {
        /* pgbench -M extended, libpq's PQexecParams */
        { { PARSE("", "BEGIN"), BIND(""), DESC_PORTAL, EXEC, SYNC, M_END }, 1, "BEGIN" },
        /* pgbench -M prepared: a named statement of BEGIN */
        { { BIND("b"), DESC_PORTAL, EXEC, SYNC, M_END }, 1, "BEGIN;" },
        { { BIND("ro"), EXEC, SYNC, M_END }, 1, "START TRANSACTION READ ONLY" },
        { { PARSE("", "begin isolation level repeatable read"), BIND(""), FLUSH, EXEC, SYNC, M_END }, 1,
          "begin isolation level repeatable read" },
        /* not only a BEGIN */
        { { PARSE("", "UPDATE t SET n = 1"), BIND(""), EXEC, SYNC, M_END }, 0, NULL },
        { { BIND("u"), EXEC, SYNC, M_END }, 0, NULL },
        { { BIND("nosuch"), EXEC, SYNC, M_END }, 0, NULL },
        { { PARSE("s1", "BEGIN"), BIND("s1"), EXEC, SYNC, M_END }, 0, NULL },      /* creates a name */
        { { BIND(""), EXEC, SYNC, M_END }, 0, NULL },       /* an unnamed statement of an earlier request */
        { { PARSE("", "BEGIN"), BIND(""), EXEC, M_END }, 0, NULL },                /* no Sync yet */
        { { PARSE("", "BEGIN"), SYNC, M_END }, 0, NULL },                          /* nothing executed */
        { { PARSE("", "BEGIN"), BIND(""), EXEC, EXEC, SYNC, M_END }, 0, NULL },
        { { PARSE("", "BEGIN"), BIND(""), EXEC, SYNC, QUERY("SELECT 1"), M_END }, 0, NULL },
        { { PARSE("", "BEGIN"), BIND(""), BIND(""), EXEC, SYNC, M_END }, 0, NULL },
        { { QUERY("BEGIN"), M_END }, 0, NULL },             /* simple protocol: pglane holds it instead */
        { { PARSE("", "BEGIN"), BIND(""), { 'C', "S", "" }, EXEC, SYNC, M_END }, 0, NULL },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct proto_buf b;
        const char *sql = NULL;
        size_t len = 0;

        proto_buf_init(&b);
        put(&b, rows[i].ms);
        assert_false(b.failed);
        int got = px_retry_begin_request(b.data, (uint32_t)b.len, lookup, NULL, &sql, &len);
        if (got != rows[i].want)
            print_error("begin request row %zu: got %d\n", i, got);
        assert_int_equal(got, rows[i].want);
        if (got) {
            assert_int_equal(len, strlen(rows[i].sql));
            assert_memory_equal(sql, rows[i].sql, len);
        }
        /* every truncation of a request is not (yet) one */
        for (size_t cut = 0; got && cut < b.len; cut++)
            assert_int_equal(px_retry_begin_request(b.data, (uint32_t)cut, lookup, NULL, &sql, &len), 0);
        proto_buf_free(&b);
    }
}

static void test_after_begin(void **state)
{
    (void)state;
    static const struct {
        struct m ms[8];
        int want;
    } rows[] = {
        { { M_END }, 1 },                                    /* killed between the two requests */
        { { PARSE("", "UPDATE t SET n = 1"), BIND(""), DESC_PORTAL, EXEC, SYNC, M_END }, 1 },
        { { BIND("u"), DESC_PORTAL, EXEC, SYNC, M_END }, 1 },
        { { QUERY("UPDATE t SET n = 1"), M_END }, 1 },
        { { PARSE("x", "SELECT 1"), BIND("x"), EXEC, SYNC, M_END }, 1 },
        /* what only the original BEGIN request created: its unnamed statement and portal */
        { { BIND(""), EXEC, SYNC, M_END }, 0 },
        { { PARSE("x", "SELECT 1"), BIND(""), EXEC, SYNC, M_END }, 0 },
        { { EXEC, SYNC, M_END }, 0 },
        { { DESC_PORTAL, SYNC, M_END }, 0 },
        { { { 'D', "S", "" }, SYNC, M_END }, 0 },
        { { { 'C', "P", "" }, SYNC, M_END }, 0 },
        { { BIND("u"), DESC_PORTAL, EXEC, { 'C', "P", "" }, SYNC, M_END }, 1 },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct proto_buf b;

        proto_buf_init(&b);
        put(&b, rows[i].ms);
        int got = px_retry_after_begin_ok(b.data, (uint32_t)b.len);
        if (got != rows[i].want)
            print_error("after-begin row %zu: got %d\n", i, got);
        assert_int_equal(got, rows[i].want);
        proto_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_table),
        cmocka_unit_test(test_fault_error_classes),
        cmocka_unit_test(test_begin_request),
        cmocka_unit_test(test_after_begin),
    };
    return cmocka_run_group_tests_name("unit: proxy retry", tests, NULL, NULL);
}
