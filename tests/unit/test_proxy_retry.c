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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_table),
        cmocka_unit_test(test_fault_error_classes),
    };
    return cmocka_run_group_tests_name("unit: proxy retry", tests, NULL, NULL);
}
