/*
 * Reply accounting (proxy/flow.c): the ReadyForQuery count a client's messages earn, corrected as
 * the server's replies show which messages PostgreSQL skipped or read as COPY data; and the client's
 * unnamed statement (proxy/unnamed.c) as those replies settle the messages that change it.
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

/* An unnamed Parse of text (P), a Close of the unnamed statement (C), a simple Query (Q), as the
 * scan notes them before it pushes them. */
static void send_unnamed(struct px_client *cl, char type, const char *text)
{
    if (type == 'P')
        assert_int_equal(px_unnamed_note(cl, PX_UNNAMED_PARSE, (const uint8_t *)text, (uint32_t)strlen(text) + 1), 0);
    else if (type == 'C')
        assert_int_equal(px_unnamed_note(cl, PX_UNNAMED_CLOSE, NULL, 0), 0);
    else if (type == 'Q')
        assert_int_equal(px_unnamed_note(cl, PX_UNNAMED_QUERY, NULL, 0), 0);
    send_msgs(cl, (char[]){ type, 0 });
}

static void assert_unnamed(const struct px_client *cl, const char *want)
{
    if (!want) {
        assert_null(cl->unnamed);
        return;
    }
    assert_non_null(cl->unnamed);
    assert_string_equal((const char *)cl->unnamed, want);
}

/* Carried out, the Parse's text is the client's; failed, none; skipped after an error, the old one. */
static void test_unnamed_settled_by_replies(void **state)
{
    struct px_client cl;
    uint32_t len;

    (void)state;
    memset(&cl, 0, sizeof(cl));
    send_unnamed(&cl, 'P', "select 1");
    send_msgs(&cl, "BES");
    reply(&cl, "12DCZ");
    assert_unnamed(&cl, "select 1");

    /* D fails: the Parse and the Close after it are skipped, the statement stays */
    send_msgs(&cl, "D");
    send_unnamed(&cl, 'P', "select 2");
    send_unnamed(&cl, 'C', NULL);
    send_msgs(&cl, "S");
    assert_null(px_unnamed_as_of(&cl, cl.flow.pushed, &len));   /* unsettled: as sent, closed */
    reply(&cl, "EZ");
    assert_unnamed(&cl, "select 1");
    assert_int_equal(cl.nuchanges, 0);

    /* a Parse that fails itself leaves none (PostgreSQL dropped the old one first) */
    send_unnamed(&cl, 'P', "selec");
    send_msgs(&cl, "S");
    reply(&cl, "EZ");
    assert_unnamed(&cl, NULL);

    /* a simple Query drops it, even one that fails */
    send_unnamed(&cl, 'P', "select 3");
    send_msgs(&cl, "S");
    reply(&cl, "1Z");
    assert_unnamed(&cl, "select 3");
    send_unnamed(&cl, 'Q', NULL);
    reply(&cl, "EZ");
    assert_unnamed(&cl, NULL);

    /* a Query skipped inside a failed extended batch does not */
    send_unnamed(&cl, 'P', "select 4");
    send_msgs(&cl, "BE");
    send_unnamed(&cl, 'Q', NULL);
    send_msgs(&cl, "S");
    reply(&cl, "12EZ");            /* the skipped Query earns no ReadyForQuery */
    assert_unnamed(&cl, "select 4");
    assert_int_equal(cl.pending_z, 0);
    px_unnamed_free(&cl);
    px_flow_free(&cl);
}

/* A replay between messages uses the changes sent before them, the later ones not yet. */
static void test_unnamed_as_of(void **state)
{
    struct px_client cl;
    const uint8_t *t;
    uint64_t before;
    uint32_t len;

    (void)state;
    memset(&cl, 0, sizeof(cl));
    send_unnamed(&cl, 'P', "select 1");
    before = cl.flow.pushed;
    send_msgs(&cl, "BES");
    send_unnamed(&cl, 'P', "select 2");
    send_msgs(&cl, "BES");
    t = px_unnamed_as_of(&cl, before, &len);
    assert_non_null(t);
    assert_string_equal((const char *)t, "select 1");
    t = px_unnamed_as_of(&cl, cl.flow.pushed, &len);
    assert_string_equal((const char *)t, "select 2");
    assert_null(px_unnamed_as_of(&cl, 0, &len));        /* before anything: none */
    reply(&cl, "12DCZ 12DCZ");
    assert_unnamed(&cl, "select 2");

    /* the settled text again (kept without a copy): the settled text as of it, whatever follows */
    send_unnamed(&cl, 'P', "select 2");
    before = cl.flow.pushed;
    assert_true(cl.uchanges[0].same);
    send_unnamed(&cl, 'C', NULL);
    send_msgs(&cl, "S");
    t = px_unnamed_as_of(&cl, before, &len);
    assert_non_null(t);
    assert_string_equal((const char *)t, "select 2");
    assert_null(px_unnamed_as_of(&cl, cl.flow.pushed, &len));
    reply(&cl, "13Z");
    assert_unnamed(&cl, NULL);
    px_unnamed_forget_all(&cl);                          /* a held BEGIN */
    assert_unnamed(&cl, NULL);
    px_unnamed_free(&cl);
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
        cmocka_unit_test(test_unnamed_settled_by_replies),
        cmocka_unit_test(test_unnamed_as_of),
    };

    return cmocka_run_group_tests_name("unit: proxy reply accounting", tests, NULL, NULL);
}
