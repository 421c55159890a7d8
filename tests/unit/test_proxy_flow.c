/*
 * Reply accounting (proxy/flow.c): the ReadyForQuery count a client's messages earn, corrected as
 * the server's replies show which messages PostgreSQL skipped or read as COPY data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/proxy.h"

/* Feeds client messages as the client's scan does (pending_z counted for Query, FunctionCall, Sync). */
static void send_msgs(struct px_client *cl, const char *types)
{
    for (const char *t = types; *t; t++) {
        if (*t == ' ')
            continue;
        if (*t == 'Q' || *t == 'F' || *t == 'S')
            cl->pending_z++;
        assert_int_equal(px_flow_push(cl, (uint8_t)*t), 0);
    }
}

/* Feeds server replies; a ReadyForQuery also decrements pending_z as the server's scan does. */
static void reply(struct px_client *cl, const char *types)
{
    for (const char *t = types; *t; t++) {
        if (*t == ' ')
            continue;
        if (*t == 'Z' && cl->pending_z)
            cl->pending_z--;
        px_flow_reply(cl, (uint8_t)*t);
    }
}

static void test_plain_batches(void **state)
{
    struct px_client cl;

    (void)state;
    memset(&cl, 0, sizeof(cl));
    send_msgs(&cl, "PBDES PBES Q");
    assert_int_equal(cl.pending_z, 3);
    reply(&cl, "12TDCZ");
    assert_false(px_flow_idle(&cl));
    reply(&cl, "12CZ TDCZ");
    assert_int_equal(cl.pending_z, 0);
    assert_true(px_flow_idle(&cl));
    px_flow_free(&cl);
}

/* P B E(fails) Q S: PostgreSQL skips the Query; one ReadyForQuery in all. */
static void test_query_skipped_after_extended_error(void **state)
{
    struct px_client cl;

    (void)state;
    memset(&cl, 0, sizeof(cl));
    send_msgs(&cl, "PBEQS");
    assert_int_equal(cl.pending_z, 2);
    reply(&cl, "12E");
    assert_int_equal(cl.pending_z, 1);
    reply(&cl, "Z");
    assert_int_equal(cl.pending_z, 0);
    assert_true(px_flow_idle(&cl));
    px_flow_free(&cl);
}

/* The error arrives before the rest of the batch: later messages up to Sync are skipped on arrival. */
static void test_skip_continues_into_later_messages(void **state)
{
    struct px_client cl;

    (void)state;
    memset(&cl, 0, sizeof(cl));
    send_msgs(&cl, "PBE");
    reply(&cl, "1E");                  /* the Bind failed */
    send_msgs(&cl, "FQ");
    assert_int_equal(cl.pending_z, 0); /* both skipped */
    send_msgs(&cl, "S");
    assert_int_equal(cl.pending_z, 1);
    reply(&cl, "Z");
    assert_int_equal(cl.pending_z, 0);
    assert_true(px_flow_idle(&cl));
    px_flow_free(&cl);
}

/* An error in a simple Query does not skip: its own ReadyForQuery follows. */
static void test_query_error_does_not_skip(void **state)
{
    struct px_client cl;

    (void)state;
    memset(&cl, 0, sizeof(cl));
    send_msgs(&cl, "QQ");
    reply(&cl, "EZ");
    assert_int_equal(cl.pending_z, 1);
    reply(&cl, "TDCZ");
    assert_int_equal(cl.pending_z, 0);
    assert_true(px_flow_idle(&cl));
    px_flow_free(&cl);
}

/* libpq's extended COPY: P B D E S, data, CopyDone, S. The first Sync is read as COPY data. */
static void test_extended_copy_sync_before_data(void **state)
{
    struct px_client cl;

    (void)state;
    memset(&cl, 0, sizeof(cl));
    send_msgs(&cl, "PBDES");
    reply(&cl, "12nG");
    assert_true(px_flow_copy_in(&cl));
    assert_int_equal(cl.pending_z, 0);
    send_msgs(&cl, "dddcS");
    assert_false(px_flow_copy_in(&cl));
    reply(&cl, "CZ");
    assert_int_equal(cl.pending_z, 0);
    assert_true(px_flow_idle(&cl));
    px_flow_free(&cl);
}

/* Simple COPY with Flush and Sync sent during the copy, all in one write before CopyInResponse. */
static void test_simple_copy_flush_sync_in_one_write(void **state)
{
    struct px_client cl;

    (void)state;
    memset(&cl, 0, sizeof(cl));
    send_msgs(&cl, "QHSdc");
    assert_int_equal(cl.pending_z, 2);
    reply(&cl, "G");
    assert_int_equal(cl.pending_z, 1);
    reply(&cl, "CZ");
    assert_int_equal(cl.pending_z, 0);
    assert_true(px_flow_idle(&cl));
    px_flow_free(&cl);
}

/* A failed extended COPY: the Sync after Execute is a real one, the data after it is ignored. */
static void test_failed_extended_copy(void **state)
{
    struct px_client cl;

    (void)state;
    memset(&cl, 0, sizeof(cl));
    send_msgs(&cl, "PBES");
    reply(&cl, "12EZ");
    send_msgs(&cl, "dcS");
    assert_int_equal(cl.pending_z, 1);
    reply(&cl, "Z");
    assert_int_equal(cl.pending_z, 0);
    assert_true(px_flow_idle(&cl));
    px_flow_free(&cl);
}

/* Replies owed to messages forwarded before the prepared-statement queue came into play. */
static void test_raw_owed(void **state)
{
    struct px_client cl;

    (void)state;
    memset(&cl, 0, sizeof(cl));
    send_msgs(&cl, "PBDE");
    px_flow_mark_raw(&cl);
    assert_int_equal(px_flow_raw_owed(&cl), 4);
    send_msgs(&cl, "PBES");
    reply(&cl, "12TD");
    assert_int_equal(px_flow_raw_owed(&cl), 1);
    reply(&cl, "C");
    assert_int_equal(px_flow_raw_owed(&cl), 0);
    assert_true(px_flow_owes_flushed(&cl));   /* the Sync of the second batch */
    px_flow_free(&cl);
}

/* Unflushed work (no Sync, Flush, Query after it) is not owed a reply PostgreSQL would send. */
static void test_owes_flushed(void **state)
{
    struct px_client cl;

    (void)state;
    memset(&cl, 0, sizeof(cl));
    send_msgs(&cl, "PBE");
    assert_false(px_flow_owes_flushed(&cl));
    send_msgs(&cl, "H");
    assert_true(px_flow_owes_flushed(&cl));
    reply(&cl, "12C");
    assert_false(px_flow_owes_flushed(&cl));
    assert_true(px_flow_idle(&cl));
    px_flow_free(&cl);
}

/* Runs of one type are one entry; a long pipeline of Syncs stays countable. */
static void test_long_pipeline(void **state)
{
    struct px_client cl;

    (void)state;
    memset(&cl, 0, sizeof(cl));
    for (int i = 0; i < 10000; i++)
        send_msgs(&cl, "BES");
    assert_int_equal(cl.pending_z, 10000);
    for (int i = 0; i < 10000; i++)
        reply(&cl, "2CZ");
    assert_int_equal(cl.pending_z, 0);
    assert_true(px_flow_idle(&cl));
    px_flow_free(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_batches),
        cmocka_unit_test(test_query_skipped_after_extended_error),
        cmocka_unit_test(test_skip_continues_into_later_messages),
        cmocka_unit_test(test_query_error_does_not_skip),
        cmocka_unit_test(test_extended_copy_sync_before_data),
        cmocka_unit_test(test_simple_copy_flush_sync_in_one_write),
        cmocka_unit_test(test_failed_extended_copy),
        cmocka_unit_test(test_raw_owed),
        cmocka_unit_test(test_owes_flushed),
        cmocka_unit_test(test_long_pipeline),
    };

    return cmocka_run_group_tests_name("unit: proxy reply accounting", tests, NULL, NULL);
}
