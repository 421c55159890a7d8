/* routing/: the classification cache (bounded, LRU) and learned per-fingerprint statistics
 * (LRU, log-bucket percentiles) on known inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "routing/route.h"

static struct route_class class_of(enum route_kind kind, const char *rel)
{
    struct route_class c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.n_relations = 1;
    snprintf(c.relations[0], sizeof c.relations[0], "%s", rel);
    return c;
}

static void test_cache_basic(void **state)
{
    (void)state;
    struct route_cache *cache = route_cache_new(4);
    assert_non_null(cache);
    assert_null(route_cache_get(cache, 1));
    struct route_class a = class_of(ROUTE_KIND_SELECT, "a");
    route_cache_put(cache, 1, &a);
    const struct route_class *got = route_cache_get(cache, 1);
    assert_non_null(got);
    assert_int_equal(got->kind, ROUTE_KIND_SELECT);
    assert_string_equal(got->relations[0], "a");
    /* Replace in place. */
    struct route_class b = class_of(ROUTE_KIND_DELETE, "b");
    route_cache_put(cache, 1, &b);
    assert_int_equal(route_cache_count(cache), 1);
    assert_int_equal(route_cache_get(cache, 1)->kind, ROUTE_KIND_DELETE);
    route_cache_free(cache);
    route_cache_free(NULL);
    assert_null(route_cache_new(0));
}

static void test_cache_lru_eviction(void **state)
{
    (void)state;
    struct route_cache *cache = route_cache_new(3);
    assert_non_null(cache);
    struct route_class c = class_of(ROUTE_KIND_SELECT, "t");
    route_cache_put(cache, 10, &c);
    route_cache_put(cache, 20, &c);
    route_cache_put(cache, 30, &c);
    assert_non_null(route_cache_get(cache, 10));   /* 10 becomes most recent: order 10 30 20 */
    route_cache_put(cache, 40, &c);                /* evicts 20 */
    assert_null(route_cache_get(cache, 20));
    assert_non_null(route_cache_get(cache, 10));
    assert_non_null(route_cache_get(cache, 30));
    assert_non_null(route_cache_get(cache, 40));
    assert_int_equal(route_cache_count(cache), 3);
    assert_int_equal(route_cache_evictions(cache), 1);
    route_cache_put(cache, 50, &c);                /* order was 40 30 10: evicts 10 */
    assert_null(route_cache_get(cache, 10));
    assert_int_equal(route_cache_evictions(cache), 2);
    route_cache_free(cache);
}

/* Many keys through a small cache, some colliding in buckets: the cache holds exactly the most
 * recent ones. */
static void test_cache_churn(void **state)
{
    (void)state;
    enum { CAP = 64, N = 5000 };
    struct route_cache *cache = route_cache_new(CAP);
    assert_non_null(cache);
    for (uint64_t k = 1; k <= N; k++) {
        struct route_class c = class_of((enum route_kind)(k % ROUTE_KIND_COUNT), "x");
        route_cache_put(cache, k << 40, &c);   /* high bits only: stresses the bucket hash */
    }
    assert_int_equal(route_cache_count(cache), CAP);
    assert_int_equal(route_cache_evictions(cache), N - CAP);
    for (uint64_t k = 1; k <= N; k++) {
        const struct route_class *c = route_cache_get(cache, k << 40);
        if (k > N - CAP) {
            assert_non_null(c);
            assert_int_equal(c->kind, k % ROUTE_KIND_COUNT);
        } else {
            assert_null(c);
        }
    }
    route_cache_free(cache);
}

/* The hot path as the proxy uses it: fingerprint, cache miss, classify, cache hit. */
static void test_cache_with_fingerprints(void **state)
{
    (void)state;
    struct route_cache *cache = route_cache_new(16);
    assert_non_null(cache);
    const char *q1 = "SELECT abalance FROM pgbench_accounts WHERE aid = 1";
    const char *q2 = "select abalance from pgbench_accounts where aid = 99";
    uint64_t fp1 = route_fingerprint(q1, strlen(q1));
    assert_null(route_cache_get(cache, fp1));
    struct route_class c;
    assert_int_equal(route_classify(q1, strlen(q1), &c), 0);
    route_cache_put(cache, fp1, &c);
    const struct route_class *hit = route_cache_get(cache, route_fingerprint(q2, strlen(q2)));
    assert_non_null(hit);
    assert_int_equal(hit->kind, ROUTE_KIND_SELECT);
    assert_true(hit->read_only);
    assert_string_equal(hit->relations[0], "pgbench_accounts");
    route_cache_free(cache);
    route_classify_thread_cleanup();
}

/* ------------------------------------------------------------------------------------------ */

static void assert_near(int64_t got, int64_t want)
{
    /* Buckets are 2^(1/4) wide: the estimate is the bucket's upper bound, at most 19% above. */
    if (got < want || (double)got > (double)want * 1.19 + 1)
        fail_msg("estimate %lld for true value %lld", (long long)got, (long long)want);
}

static void test_stats_percentiles(void **state)
{
    (void)state;
    struct route_stats *stats = route_stats_new(8);
    assert_non_null(stats);
    /* 1..1000 ms, shuffled deterministically. */
    for (uint64_t i = 0; i < 1000; i++) {
        uint64_t ms = (i * 7919) % 1000 + 1;
        route_stats_record(stats, 42, ms * 1000, 1, "select ?", 8);
    }
    assert_near(route_stats_percentile_us(stats, 42, 50), 500000);
    assert_near(route_stats_percentile_us(stats, 42, 95), 950000);
    assert_near(route_stats_percentile_us(stats, 42, 99), 990000);
    assert_int_equal(route_stats_percentile_us(stats, 42, 100), 1000000);   /* clamped to max */
    assert_near(route_stats_percentile_us(stats, 42, 0.1), 1000);

    struct route_stat_entry e;
    assert_true(route_stats_get(stats, 42, &e));
    assert_int_equal(e.calls, 1000);
    assert_int_equal(e.total_us, 500500ULL * 1000);
    assert_int_equal(e.max_us, 1000000);
    assert_int_equal(e.lane, 1);
    assert_string_equal(e.text, "select ?");
    assert_false(route_stats_get(stats, 43, &e));
    assert_int_equal(route_stats_percentile_us(stats, 43, 95), -1);
    route_stats_free(stats);
}

static void test_stats_single_values(void **state)
{
    (void)state;
    struct route_stats *stats = route_stats_new(4);
    assert_non_null(stats);
    static const uint64_t values[] = {0, 1, 2, 3, 7, 10, 99, 1000, 123456, 3600000000ULL,
                                      90000000000ULL};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint64_t fp = 1000 + i;
        for (int k = 0; k < 3; k++)
            route_stats_record(stats, fp, values[i], 0, NULL, 0);
        /* A single value: every percentile is that value exactly (clamped to min and max). */
        assert_int_equal(route_stats_percentile_us(stats, fp, 50), (int64_t)values[i]);
        assert_int_equal(route_stats_percentile_us(stats, fp, 99), (int64_t)values[i]);
    }
    route_stats_free(stats);
}

static void test_stats_two_modes(void **state)
{
    (void)state;
    struct route_stats *stats = route_stats_new(4);
    assert_non_null(stats);
    /* 90 fast calls at 200 us, 10 slow ones at 2 s: p50 fast, p95 slow. */
    for (int i = 0; i < 100; i++)
        route_stats_record(stats, 7, i % 10 == 0 ? 2000000 : 200, 2, NULL, 0);
    assert_near(route_stats_percentile_us(stats, 7, 50), 200);
    assert_near(route_stats_percentile_us(stats, 7, 90), 200);
    assert_int_equal(route_stats_percentile_us(stats, 7, 95), 2000000);
    route_stats_free(stats);
}

static int collect(const struct route_stat_entry *e, void *arg)
{
    uint64_t **out = arg;
    *(*out)++ = e->fingerprint;
    return 0;
}

static int stop_after_one(const struct route_stat_entry *e, void *arg)
{
    (void)e;
    (*(int *)arg)++;
    return 5;
}

static void test_stats_lru(void **state)
{
    (void)state;
    struct route_stats *stats = route_stats_new(3);
    assert_non_null(stats);
    route_stats_record(stats, 1, 10, 0, "one", 3);
    route_stats_record(stats, 2, 10, 0, "two", 3);
    route_stats_record(stats, 3, 10, 0, "three", 5);
    route_stats_record(stats, 1, 10, 0, "ignored: text already set", 25);
    route_stats_record(stats, 4, 10, 0, "four", 4);   /* evicts 2 */
    struct route_stat_entry e;
    assert_false(route_stats_get(stats, 2, &e));
    assert_true(route_stats_get(stats, 1, &e));
    assert_int_equal(e.calls, 2);
    assert_string_equal(e.text, "one");
    assert_int_equal(route_stats_count(stats), 3);

    uint64_t order[3], *p = order;
    assert_int_equal(route_stats_foreach(stats, collect, &p), 0);
    assert_int_equal(p - order, 3);
    assert_int_equal(order[0], 4);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 3);
    int calls = 0;
    assert_int_equal(route_stats_foreach(stats, stop_after_one, &calls), 5);
    assert_int_equal(calls, 1);

    /* An evicted fingerprint comes back fresh. */
    route_stats_record(stats, 2, 99, 3, NULL, 0);
    assert_true(route_stats_get(stats, 2, &e));
    assert_int_equal(e.calls, 1);
    assert_int_equal(e.max_us, 99);
    assert_int_equal(e.lane, 3);
    assert_string_equal(e.text, "");

    /* Long text is truncated to the bound. */
    char longtext[600];
    memset(longtext, 'q', sizeof longtext);
    route_stats_record(stats, 9, 1, 0, longtext, sizeof longtext);
    assert_true(route_stats_get(stats, 9, &e));
    assert_int_equal(strlen(e.text), ROUTE_STATS_TEXT_MAX - 1);
    route_stats_free(stats);
    route_stats_free(NULL);
    assert_null(route_stats_new(0));
}

/* A reload renumbers lanes: each entry's lane follows the map, unknown ones become -1. */
static void test_stats_remap_lanes(void **state)
{
    (void)state;
    struct route_stats *stats = route_stats_new(8);
    struct route_stat_entry e;
    const int map[3] = { 2, -1, 0 };   /* old 0 -> 2, old 1 gone, old 2 -> 0 */

    assert_non_null(stats);
    route_stats_record(stats, 10, 1000, 0, "a", 1);
    route_stats_record(stats, 11, 1000, 1, "b", 1);
    route_stats_record(stats, 12, 1000, 2, "c", 1);
    route_stats_record(stats, 13, 1000, 7, "d", 1);
    route_stats_remap_lanes(stats, map, 3);
    const int want[4] = { 2, -1, 0, -1 };
    for (int i = 0; i < 4; i++) {
        assert_true(route_stats_get(stats, (uint64_t)(10 + i), &e));
        assert_int_equal(e.lane, want[i]);
        assert_int_equal(e.calls, 1);
    }
    route_stats_free(stats);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_basic),
        cmocka_unit_test(test_cache_lru_eviction),
        cmocka_unit_test(test_cache_churn),
        cmocka_unit_test(test_cache_with_fingerprints),
        cmocka_unit_test(test_stats_percentiles),
        cmocka_unit_test(test_stats_single_values),
        cmocka_unit_test(test_stats_two_modes),
        cmocka_unit_test(test_stats_lru),
        cmocka_unit_test(test_stats_remap_lanes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
