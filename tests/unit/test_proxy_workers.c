/*
 * The workers' shared slots (proxy/workers.c): one slot per name whatever the number of lookups, and a
 * slot leaves the process when the last pool, cap or handoff referring to it lets go, unless it still
 * counts connections. Without this every made-up database a client named stayed in memory for good.
 * And a SHUTDOWN asked of the workers before one of them attached reaches that one when it attaches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/proxy.h"

static void test_slot_lifetime(void **state)
{
    (void)state;
    struct proxy px;
    memset(&px, 0, sizeof(px));
    px.workers = px_workers_new(2);
    assert_non_null(px.workers);

    struct px_gslot *a = px_gslot_named(&px, "lane\x1fmain\x1fpg\x1f" "db\x1fu");
    struct px_gslot *a2 = px_gslot_named(&px, "lane\x1fmain\x1fpg\x1f" "db\x1fu");
    struct px_gslot *b = px_gslot_named(&px, "cap\x1f" "0\x1f" "made_up_db");
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_equal(a, a2);   /* two pools of one key, one slot */
    assert_ptr_not_equal(a, b);
    assert_int_equal(px_workers_slot_count(px.workers), 2);

    px_gslot_unref(&px, b);    /* its only pool went: the slot goes */
    assert_int_equal(px_workers_slot_count(px.workers), 1);
    px_gslot_unref(&px, a);    /* one of two: it stays */
    assert_int_equal(px_workers_slot_count(px.workers), 1);

    assert_int_equal(px_gslot_acquire(a2, 3), 1);   /* a connection counted under it */
    px_gslot_unref(&px, a2);
    assert_int_equal(px_workers_slot_count(px.workers), 1);   /* still counting one: kept */
    a = px_gslot_named(&px, "lane\x1fmain\x1fpg\x1f" "db\x1fu");   /* found again, count intact */
    assert_int_equal(px_gslot_count_of(a), 1);
    px_gslot_release(&px, a);
    px_gslot_unref(&px, a);
    assert_int_equal(px_workers_slot_count(px.workers), 0);

    px_gslot_unref(&px, NULL); /* nothing */
    px_workers_free(px.workers);
}

/* A worker that attaches after a SHUTDOWN was passed on (PX_WORKERS_DRAIN) learns of it at attach;
 * one attached before gets the ask itself, and its count stays as it was at its attach. */
static void test_drain_before_attach(void **state)
{
    (void)state;
    struct proxy px[3];
    uv_loop_t loop[3];
    struct px_workers *ws = px_workers_new(3);

    assert_non_null(ws);
    memset(px, 0, sizeof(px));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(uv_loop_init(&loop[i]), 0);
        px[i].loop = &loop[i];
        px[i].workers = ws;
        px[i].worker_id = i;
    }
    assert_int_equal(px_worker_attach(&px[0]), 0);
    assert_int_equal(px_worker_attach(&px[1]), 0);
    assert_int_equal(px[1].drains_before_start, 0);
    px_workers_ask(&px[0], PX_WORKERS_DRAIN, NULL);      /* worker 0's console: SHUTDOWN */
    assert_int_equal(px_worker_attach(&px[2]), 0);        /* worker 2 was still starting */
    assert_int_equal(px[2].drains_before_start, 1);
    assert_int_equal(px[1].drains_before_start, 0);       /* asked directly instead */
    for (int i = 0; i < 3; i++) {
        px_worker_detach(&px[i]);
        uv_run(&loop[i], UV_RUN_DEFAULT);                 /* the async handle's close */
        assert_int_equal(uv_loop_close(&loop[i]), 0);
    }
    px_workers_free(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_lifetime),
        cmocka_unit_test(test_drain_before_attach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
