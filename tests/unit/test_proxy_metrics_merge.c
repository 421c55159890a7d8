/*
 * The merge of several workers' /metrics texts (proxy/admin/metrics_merge.c): rules per family, order,
 * samples and families only later texts have, number formats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/admin/metrics_merge.h"

/* The merge of n texts, NUL-terminated (malloc'd). */
static char *merge(const char *const *texts, int n)
{
    size_t lens[8];
    struct proto_buf out;
    char *s;

    assert_true(n <= 8);
    for (int i = 0; i < n; i++)
        lens[i] = texts[i] ? strlen(texts[i]) : 0;
    proto_buf_init(&out);
    assert_int_equal(px_metrics_merge(texts, lens, n, &out), 0);
    s = calloc(1, out.len + 1);
    assert_non_null(s);
    memcpy(s, out.data, out.len);
    proto_buf_free(&out);
    return s;
}

static void check(const char *const *texts, int n, const char *want)
{
    char *got = merge(texts, n);

    if (strcmp(got, want) != 0)
        print_error("merged:\n%s\nwanted:\n%s\n", got, want);
    assert_string_equal(got, want);
    free(got);
}

static const char W0[] =
    "# HELP pglane_build_info pglane's version.\n"
    "# TYPE pglane_build_info gauge\n"
    "pglane_build_info{version=\"1.0\"} 1\n"
    "# HELP pglane_reloads_total Reloads.\n"
    "# TYPE pglane_reloads_total counter\n"
    "pglane_reloads_total{result=\"success\"} 2\n"
    "pglane_reloads_total{result=\"failure\"} 0\n"
    "# HELP pglane_clients Client connections by state.\n"
    "# TYPE pglane_clients gauge\n"
    "pglane_clients{state=\"idle\"} 3\n"
    "pglane_clients{state=\"admin\"} 1\n"
    "# HELP pglane_clients_longest_wait_seconds Oldest wait.\n"
    "# TYPE pglane_clients_longest_wait_seconds gauge\n"
    "pglane_clients_longest_wait_seconds{lane=\"a\",database=\"d\",user=\"u\"} 0.250\n"
    "# HELP pglane_lane_paused Paused.\n"
    "# TYPE pglane_lane_paused gauge\n"
    "pglane_lane_paused{lane=\"a\"} 0\n"
    "# HELP pglane_pool_transactions_total Transactions.\n"
    "# TYPE pglane_pool_transactions_total counter\n"
    "pglane_pool_transactions_total{lane=\"a\",database=\"d\",user=\"u\"} 10\n"
    "# HELP pglane_lane_query_duration_seconds Requests.\n"
    "# TYPE pglane_lane_query_duration_seconds histogram\n"
    "pglane_lane_query_duration_seconds_bucket{lane=\"a\",le=\"0.000128\"} 1\n"
    "pglane_lane_query_duration_seconds_bucket{lane=\"a\",le=\"+Inf\"} 4\n"
    "pglane_lane_query_duration_seconds_sum{lane=\"a\"} 0.500000\n"
    "pglane_lane_query_duration_seconds_count{lane=\"a\"} 4\n";

static const char W1[] =
    "# HELP pglane_build_info pglane's version.\n"
    "# TYPE pglane_build_info gauge\n"
    "pglane_build_info{version=\"1.0\"} 1\n"
    "# HELP pglane_reloads_total Reloads.\n"
    "# TYPE pglane_reloads_total counter\n"
    "pglane_reloads_total{result=\"success\"} 2\n"
    "pglane_reloads_total{result=\"failure\"} 1\n"
    "# HELP pglane_clients Client connections by state.\n"
    "# TYPE pglane_clients gauge\n"
    "pglane_clients{state=\"idle\"} 5\n"
    "pglane_clients{state=\"admin\"} 0\n"
    "# HELP pglane_clients_longest_wait_seconds Oldest wait.\n"
    "# TYPE pglane_clients_longest_wait_seconds gauge\n"
    "pglane_clients_longest_wait_seconds{lane=\"a\",database=\"d\",user=\"u\"} 1.500\n"
    "pglane_clients_longest_wait_seconds{lane=\"a\",database=\"d\",user=\"v\"} 0.125\n"
    "# HELP pglane_lane_paused Paused.\n"
    "# TYPE pglane_lane_paused gauge\n"
    "pglane_lane_paused{lane=\"a\"} 1\n"
    "# HELP pglane_pool_transactions_total Transactions.\n"
    "# TYPE pglane_pool_transactions_total counter\n"
    "pglane_pool_transactions_total{lane=\"a\",database=\"d\",user=\"u\"} 7\n"
    "pglane_pool_transactions_total{lane=\"a\",database=\"d\",user=\"v\"} 2\n"
    "# HELP pglane_lane_query_duration_seconds Requests.\n"
    "# TYPE pglane_lane_query_duration_seconds histogram\n"
    "pglane_lane_query_duration_seconds_bucket{lane=\"a\",le=\"0.000128\"} 2\n"
    "pglane_lane_query_duration_seconds_bucket{lane=\"a\",le=\"+Inf\"} 3\n"
    "pglane_lane_query_duration_seconds_sum{lane=\"a\"} 0.750001\n"
    "pglane_lane_query_duration_seconds_count{lane=\"a\"} 3\n"
    "# HELP pglane_new_total Only worker 1 has it.\n"
    "# TYPE pglane_new_total counter\n"
    "pglane_new_total 5\n";

static const char WANT[] =
    "# HELP pglane_build_info pglane's version.\n"
    "# TYPE pglane_build_info gauge\n"
    "pglane_build_info{version=\"1.0\"} 1\n"
    "# HELP pglane_reloads_total Reloads.\n"
    "# TYPE pglane_reloads_total counter\n"
    "pglane_reloads_total{result=\"success\"} 2\n"
    "pglane_reloads_total{result=\"failure\"} 1\n"
    "# HELP pglane_clients Client connections by state.\n"
    "# TYPE pglane_clients gauge\n"
    "pglane_clients{state=\"idle\"} 8\n"
    "pglane_clients{state=\"admin\"} 1\n"
    "# HELP pglane_clients_longest_wait_seconds Oldest wait.\n"
    "# TYPE pglane_clients_longest_wait_seconds gauge\n"
    "pglane_clients_longest_wait_seconds{lane=\"a\",database=\"d\",user=\"u\"} 1.500\n"
    "pglane_clients_longest_wait_seconds{lane=\"a\",database=\"d\",user=\"v\"} 0.125\n"
    "# HELP pglane_lane_paused Paused.\n"
    "# TYPE pglane_lane_paused gauge\n"
    "pglane_lane_paused{lane=\"a\"} 0\n"
    "# HELP pglane_pool_transactions_total Transactions.\n"
    "# TYPE pglane_pool_transactions_total counter\n"
    "pglane_pool_transactions_total{lane=\"a\",database=\"d\",user=\"u\"} 17\n"
    "pglane_pool_transactions_total{lane=\"a\",database=\"d\",user=\"v\"} 2\n"
    "# HELP pglane_lane_query_duration_seconds Requests.\n"
    "# TYPE pglane_lane_query_duration_seconds histogram\n"
    "pglane_lane_query_duration_seconds_bucket{lane=\"a\",le=\"0.000128\"} 3\n"
    "pglane_lane_query_duration_seconds_bucket{lane=\"a\",le=\"+Inf\"} 7\n"
    "pglane_lane_query_duration_seconds_sum{lane=\"a\"} 1.250001\n"
    "pglane_lane_query_duration_seconds_count{lane=\"a\"} 7\n"
    "# HELP pglane_new_total Only worker 1 has it.\n"
    "# TYPE pglane_new_total counter\n"
    "pglane_new_total 5\n";

/* Sum, max and first, a sample and a family only the second text has, HELP/TYPE once. */
static void test_two_workers(void **state)
{
    const char *t[] = { W0, W1 };

    (void)state;
    check(t, 2, WANT);
}

/* One text comes out as it went in; so do texts merged with empty ones (a worker that stopped). */
static void test_one_text_unchanged(void **state)
{
    const char *one[] = { W0 };
    const char *gaps[] = { W0, NULL, "", NULL };

    (void)state;
    check(one, 1, W0);
    check(gaps, 4, W0);
}

/* A worker's family may be empty (no pool yet): the samples other workers have are still grouped. */
static void test_family_empty_in_first(void **state)
{
    const char *t[] = {
        "# HELP pglane_servers S.\n# TYPE pglane_servers gauge\n"
        "# HELP pglane_pools P.\n# TYPE pglane_pools gauge\npglane_pools 0\n",
        "# HELP pglane_servers S.\n# TYPE pglane_servers gauge\npglane_servers{state=\"idle\"} 2\n"
        "# HELP pglane_pools P.\n# TYPE pglane_pools gauge\npglane_pools 1\n",
        "# HELP pglane_servers S.\n# TYPE pglane_servers gauge\npglane_servers{state=\"active\"} 1\n"
        "pglane_servers{state=\"idle\"} 3\n"
        "# HELP pglane_pools P.\n# TYPE pglane_pools gauge\npglane_pools 1\n",
    };

    (void)state;
    check(t, 3, "# HELP pglane_servers S.\n# TYPE pglane_servers gauge\npglane_servers{state=\"idle\"} 5\n"
                "pglane_servers{state=\"active\"} 1\n"
                "# HELP pglane_pools P.\n# TYPE pglane_pools gauge\npglane_pools 1\n");   /* the process's keys */
}

/* Numbers: integers stay integers however large; decimals keep the most digits any input had; an
 * input with an exponent is summed as a float; a value that is not a number keeps the first one. */
static void test_numbers(void **state)
{
    const char *t[] = {
        "# TYPE a_total counter\na_total 9007199254740993\nb_total 0.5\nc_total 1e+06\nd_total x\n",
        "# TYPE a_total counter\na_total 9007199254740993\nb_total 0.25\nc_total 2.5e+06\nd_total 3\n",
        "# TYPE a_total counter\na_total 1\nb_total 1.125\nc_total 1\nd_total 4\n",
    };

    (void)state;
    /* b_total and the others follow a_total's TYPE line without their own: they are a_total's family. */
    check(t, 3, "# TYPE a_total counter\na_total 18014398509481987\nb_total 1.875\nc_total 3500001\nd_total x\n");
}

/* The rules: counters and histograms summed unless listed; a gauge not listed takes the first value. */
static void test_rules(void **state)
{
    (void)state;
    assert_int_equal(px_metrics_merge_rule("pglane_errors_total", "counter"), PX_MERGE_SUM);
    assert_int_equal(px_metrics_merge_rule("pglane_lane_wait_seconds", "histogram"), PX_MERGE_SUM);
    assert_int_equal(px_metrics_merge_rule("pglane_reloads_total", "counter"), PX_MERGE_MAX);
    assert_int_equal(px_metrics_merge_rule("pglane_clients", "gauge"), PX_MERGE_SUM);
    assert_int_equal(px_metrics_merge_rule("pglane_clients_longest_wait_seconds", "gauge"), PX_MERGE_MAX);
    assert_int_equal(px_metrics_merge_rule("pglane_server_up", "gauge"), PX_MERGE_FIRST);
    assert_int_equal(px_metrics_merge_rule("pglane_something_new", "gauge"), PX_MERGE_FIRST);
    assert_int_equal(px_metrics_merge_rule("pglane_something_new", NULL), PX_MERGE_FIRST);
}

/* Many samples (the id table grows several times), in several texts: every sum is right and the order
 * is the first text's, then the second's new ones. */
static void test_many_samples(void **state)
{
    enum { N = 3000 };
    struct proto_buf a, b, want;
    char line[96];
    const char *t[2];
    size_t lens[2];
    struct proto_buf out;

    (void)state;
    proto_buf_init(&a);
    proto_buf_init(&b);
    proto_buf_init(&want);
    proto_put_bytes(&a, "# TYPE x_total counter\n", 23);
    proto_put_bytes(&b, "# TYPE x_total counter\n", 23);
    proto_put_bytes(&want, "# TYPE x_total counter\n", 23);
    for (int i = 0; i < N; i++) {
        int n = snprintf(line, sizeof line, "x_total{i=\"%d\"} %d\n", i, i);
        proto_put_bytes(&a, line, (size_t)n);
    }
    for (int i = N + N / 2 - 1; i >= N / 2; i--) {
        int n = snprintf(line, sizeof line, "x_total{i=\"%d\"} 1\n", i);
        proto_put_bytes(&b, line, (size_t)n);
    }
    for (int i = 0; i < N; i++) {
        int n = snprintf(line, sizeof line, "x_total{i=\"%d\"} %d\n", i, i + (i >= N / 2));
        proto_put_bytes(&want, line, (size_t)n);
    }
    for (int i = N + N / 2 - 1; i >= N; i--) {
        int n = snprintf(line, sizeof line, "x_total{i=\"%d\"} 1\n", i);
        proto_put_bytes(&want, line, (size_t)n);
    }
    t[0] = (const char *)a.data;
    t[1] = (const char *)b.data;
    lens[0] = a.len;
    lens[1] = b.len;
    proto_buf_init(&out);
    assert_int_equal(px_metrics_merge(t, lens, 2, &out), 0);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);
    proto_buf_free(&out);
    proto_buf_free(&a);
    proto_buf_free(&b);
    proto_buf_free(&want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_workers),
        cmocka_unit_test(test_one_text_unchanged),
        cmocka_unit_test(test_family_empty_in_first),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_many_samples),
    };
    return cmocka_run_group_tests_name("unit: proxy metrics merge", tests, NULL, NULL);
}
