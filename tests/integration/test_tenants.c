/*
 * Fair queuing by tenant (issue #16), against real PostgreSQL through pglane. Lane of size 2, one user:
 * tenant A sends 20 concurrent transactions of pg_sleep(0.5), then tenant B sends one. With
 * tenant_key = none (the FIFO) B waits behind A's queue (~5 s); with tenant_key = application_name or
 * hint B gets the next free connection (within 0.7 s). With tenant_max = 1, A never holds two
 * connections (pg_stat_activity and SHOW TENANTS sampled while A's transactions run) while B is
 * served at once. SHOW TENANTS and /metrics report what was served.
 */
#include "tests/integration/harness.h"
#include "tests/integration/prom_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct h_pg g_pg;
static PGconn *g_super;

#define NA 20

/* Lane main of size 2 with the given tenant lines; the console for app; /metrics on mport. */
static void tenants_conf(char *buf, size_t n, const char *tenant_lines, int mport)
{
    char extra[256];

    snprintf(extra, sizeof extra, "server_idle_timeout = 60s\nadmin_users = " H_USER "\n"
             "metrics_listen = 127.0.0.1:%d\n", mport);
    h_conf(buf, n, "transaction", 2, "md5", extra);
    strncat(buf, tenant_lines, n - strlen(buf) - 1);
}

static PGconn *connect_app(const struct h_pglane *l, const char *app)
{
    PGconn *c = h_connect_app(l, app);

    H_ASSERT_CONNECTED(c);
    return c;
}

/* Column col of the SHOW TENANTS row of (lane main, tenant), or -1. */
static double tenant_val(PGconn *adm, const char *tenant, const char *col)
{
    PGresult *r = PQexec(adm, "SHOW TENANTS");
    double v = -1;
    int ct, cc;

    if (PQresultStatus(r) == PGRES_TUPLES_OK && (ct = PQfnumber(r, "tenant")) >= 0 &&
        (cc = PQfnumber(r, col)) >= 0) {
        for (int i = 0; i < PQntuples(r); i++)
            if (strcmp(PQgetvalue(r, i, 0), "main") == 0 && strcmp(PQgetvalue(r, i, ct), tenant) == 0)
                v = atof(PQgetvalue(r, i, cc));
    } else {
        print_error("SHOW TENANTS: %s\n", PQresultErrorMessage(r));
    }
    PQclear(r);
    return v;
}

/* Waiting transactions in lane main (SHOW LANES), polled until want or 10 s. */
static void await_queue(PGconn *adm, long want)
{
    assert_int_equal(h_show_wait(adm, "SHOW LANES", "main", "clients_waiting", want, 10000), want);
}

/* 1 once c's result is in (the results are read and must all succeed). */
static int done(PGconn *c)
{
    PGresult *r;

    if (!PQconsumeInput(c))
        fail_msg("connection lost: %s", PQerrorMessage(c));
    if (PQisBusy(c))
        return 0;
    while ((r = PQgetResult(c))) {
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            fail_msg("query failed: %s", PQresultErrorMessage(r));
        PQclear(r);
    }
    return 1;
}

/* Sends A's 20 transactions (sql_a), waits until 18 queue, sends B's (sql_b) and returns how long B's
 * answer took in ms; then awaits A's (deadline 20 s). */
static int64_t storm(const struct h_pglane *l, PGconn *adm, const char *app_a, const char *app_b,
                     const char *sql_a, const char *sql_b)
{
    PGconn *a[NA], *b;
    int64_t t0, waited;

    for (int i = 0; i < NA; i++)
        a[i] = connect_app(l, app_a);
    b = connect_app(l, app_b);
    for (int i = 0; i < NA; i++)
        assert_int_equal(PQsendQuery(a[i], sql_a), 1);
    await_queue(adm, NA - 2);
    t0 = h_now_ms();
    assert_int_equal(PQsendQuery(b, sql_b), 1);
    assert_int_equal(h_wait_result(b, 15000), 0);
    waited = h_now_ms() - t0;
    assert_true(done(b));
    for (int i = 0; i < NA; i++) {
        assert_int_equal(h_wait_result(a[i], 20000), 0);
        assert_true(done(a[i]));
        PQfinish(a[i]);
    }
    PQfinish(b);
    return waited;
}

/* The FIFO control: tenant_key = none, B waits behind A's 18 queued transactions. */
static void test_fifo_without_tenant_key(void **state)
{
    struct h_pglane l = { 0 };
    char conf[4096];
    PGconn *adm;
    int64_t waited;

    (void)state;
    H_SKIP_IF_DIRECT();
    tenants_conf(conf, sizeof conf, "", h_free_port());
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    adm = h_console(&l, NULL);
    H_ASSERT_CONNECTED(adm);
    waited = storm(&l, adm, "A", "B", "SELECT pg_sleep(0.5)", "SELECT 1");
    print_message("tenant_key = none: B waited %lld ms\n", (long long)waited);
    /* Behind A's 18 (9 rounds of 0.5 s on 2 connections, 4.5 s); with several workers (the test
     * harness's PGLANE_TEST_WORKERS) the order across workers holds within one place per worker, so
     * B may pass a few of A's (2989 ms was seen at 4 workers under ThreadSanitizer). Fair queuing
     * serves B within 0.7 s; either bound is several times that. */
    assert_true(waited >= (h_workers() > 1 ? 2000 : 3000));
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* tenant_key = application_name: B gets the next free connection; SHOW TENANTS and /metrics count it. */
static void test_fair_by_application_name(void **state)
{
    struct h_pglane l = { 0 };
    char conf[4096], *body;
    int mport = h_free_port();
    PGconn *adm;
    int64_t waited;

    (void)state;
    H_SKIP_IF_DIRECT();
    tenants_conf(conf, sizeof conf, "tenant_key = application_name\n", mport);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    adm = h_console(&l, NULL);
    H_ASSERT_CONNECTED(adm);
    waited = storm(&l, adm, "A", "B", "SELECT pg_sleep(0.5)", "SELECT 1");
    print_message("tenant_key = application_name: B waited %lld ms\n", (long long)waited);
    assert_true(waited <= 700);
    assert_true(tenant_val(adm, "A", "transactions") >= NA);
    assert_true(tenant_val(adm, "A", "server_seconds") >= NA * 0.5 - 0.1);
    assert_true(tenant_val(adm, "A", "longest_wait_ms") >= 4000);
    assert_true(tenant_val(adm, "B", "transactions") >= 1);
    assert_true(tenant_val(adm, "B", "longest_wait_ms") <= 700);
    assert_true(tenant_val(adm, "A", "active") == 0 && tenant_val(adm, "A", "waiting") == 0);
    body = h_metrics_body(mport);
    {
        char err[256] = "";

        if (prom_check(body, err, sizeof err) != 0)
            print_error("/metrics: %s\n", err);
        assert_int_equal(prom_check(body, err, sizeof err), 0);
    }
    assert_true(h_metric(body, "pglane_tenant_transactions{lane=\"main\",tenant=\"A\"}") >= NA);
    assert_true(h_metric(body, "pglane_tenant_server_seconds{lane=\"main\",tenant=\"A\"}") >= 9);
    assert_true(h_metric(body, "pglane_tenant_transactions{lane=\"main\",tenant=\"B\"}") >= 1);
    free(body);
    assert_int_equal(h_exec(adm, "SHOW CONFIG"), 0);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* tenant_key = hint: the same application_name for all; the comment in the statement names the tenant. */
static void test_fair_by_hint(void **state)
{
    struct h_pglane l = { 0 };
    char conf[4096];
    PGconn *adm;
    int64_t waited;

    (void)state;
    H_SKIP_IF_DIRECT();
    tenants_conf(conf, sizeof conf, "tenant_key = hint\ntenant_weight.acme = 2\n", h_free_port());
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    adm = h_console(&l, NULL);
    H_ASSERT_CONNECTED(adm);
    waited = storm(&l, adm, "reports", "reports", "/* pglane tenant=big */ SELECT pg_sleep(0.5)",
                   "/* pglane tenant=acme */ SELECT 1");
    print_message("tenant_key = hint: B waited %lld ms\n", (long long)waited);
    assert_true(waited <= 700);
    assert_true(tenant_val(adm, "big", "transactions") >= NA);
    assert_true(tenant_val(adm, "acme", "transactions") >= 1);
    assert_true(tenant_val(adm, "reports", "transactions") < 0);   /* not the application_name */
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* tenant_max = 1: A's 20 transactions run one at a time though the lane has 2 connections; B runs
 * beside them at once. */
static void test_tenant_max(void **state)
{
    struct h_pglane l = { 0 };
    char conf[4096];
    PGconn *adm, *a[NA], *b;
    int64_t t0, waited_b;
    long most_pg = 0, most_show = 0, seen = 0;
    int left = NA;

    (void)state;
    H_SKIP_IF_DIRECT();
    tenants_conf(conf, sizeof conf, "tenant_key = application_name\ntenant_max = 1\n", h_free_port());
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    adm = h_console(&l, NULL);
    H_ASSERT_CONNECTED(adm);
    for (int i = 0; i < NA; i++)
        a[i] = connect_app(&l, "A");
    b = connect_app(&l, "B");
    t0 = h_now_ms();
    for (int i = 0; i < NA; i++)
        assert_int_equal(PQsendQuery(a[i], "SELECT pg_sleep(0.2) /* tenant A */"), 1);
    await_queue(adm, NA - 1);                  /* one of A's runs, the other 19 wait: the lane has room */
    assert_int_equal(PQsendQuery(b, "SELECT 1"), 1);
    assert_int_equal(h_wait_result(b, 5000), 0);
    waited_b = h_now_ms() - t0;
    assert_true(done(b));
    while (left > 0) {
        long pg = h_pg_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                     "AND query LIKE '%/* tenant A */%' AND pid <> pg_backend_pid()");
        double show = tenant_val(adm, "A", "active");

        assert_true(pg >= 0 && show >= 0);
        most_pg = pg > most_pg ? pg : most_pg;
        most_show = (long)show > most_show ? (long)show : most_show;
        seen += pg > 0;
        left = 0;
        for (int i = 0; i < NA; i++)
            left += !done(a[i]);
        assert_true(h_now_ms() - t0 < 20000);
        if (left)
            h_sleep_ms(20);                    /* sampling interval */
    }
    print_message("tenant_max = 1: A took %lld ms, at most %ld (pg_stat_activity) / %ld (SHOW TENANTS) "
                  "at once, B answered after %lld ms\n", (long long)(h_now_ms() - t0), most_pg, most_show,
                  (long long)waited_b);
    assert_true(seen > 0);
    assert_int_equal(most_pg, 1);
    assert_int_equal(most_show, 1);
    assert_true(h_now_ms() - t0 >= NA * 200 - 100);   /* one at a time: 20 x 0.2 s */
    assert_true(h_now_ms() - t0 < NA * 200 + 3000);   /* ... each handed on at once, not at a tick */
    assert_true(waited_b < 1000);
    assert_true(tenant_val(adm, "A", "transactions") >= NA);
    for (int i = 0; i < NA; i++)
        PQfinish(a[i]);
    PQfinish(b);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* tenant_key = user, tenant_max = 1: user app's transactions in two databases (two pools of the lane,
 * each of size 2) never hold more than one connection between them; md5user, another tenant in the
 * same database, is not held back. */
static void test_tenant_max_across_pools(void **state)
{
    struct h_pglane l = { 0 };
    char conf[4096], ci[256];
    PGconn *c[6], *other;
    long most = 0, seen = 0;
    int left = 6;
    int64_t t0;

    (void)state;
    H_SKIP_IF_DIRECT();
    tenants_conf(conf, sizeof conf, "tenant_key = user\ntenant_max = 1\n", h_free_port());
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    for (int i = 0; i < 6; i++) {
        c[i] = h_connect(&l, i % 2 ? "dbname=" H_BENCH_DB : NULL);
        H_ASSERT_CONNECTED(c[i]);
    }
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=" H_MD5_USER " password=" H_MD5_PASSWORD
             " dbname=" H_DB " connect_timeout=5", l.port);
    other = PQconnectdb(ci);
    H_ASSERT_CONNECTED(other);
    t0 = h_now_ms();
    for (int i = 0; i < 6; i++)
        assert_int_equal(PQsendQuery(c[i], "SELECT pg_sleep(0.2) /* tenant app */"), 1);
    assert_int_equal(h_exec(other, "SELECT 1"), 0);   /* another user: served beside app's */
    assert_true(h_now_ms() - t0 < 1000);
    while (left > 0) {
        long pg = h_pg_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                     "AND query LIKE '%/* tenant app */%' AND pid <> pg_backend_pid()");

        assert_true(pg >= 0);
        most = pg > most ? pg : most;
        seen += pg > 0;
        left = 0;
        for (int i = 0; i < 6; i++)
            left += !done(c[i]);
        assert_true(h_now_ms() - t0 < 15000);
        if (left)
            h_sleep_ms(20);                    /* sampling interval */
    }
    print_message("tenant_key = user, tenant_max = 1, two databases: %lld ms, at most %ld at once\n",
                  (long long)(h_now_ms() - t0), most);
    assert_true(seen > 0);
    assert_int_equal(most, 1);
    assert_true(h_now_ms() - t0 >= 6 * 200 - 100);
    assert_true(h_now_ms() - t0 < 6 * 200 + 700);   /* handed across the pools at once, not at a tick */
    for (int i = 0; i < 6; i++)
        PQfinish(c[i]);
    PQfinish(other);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* queue_timeout still applies to each transaction: A's second transaction, held back by tenant_max = 1
 * while the lane has a free connection, fails with 57014 after queue_timeout; A's first completes. */
static void test_queue_timeout_under_tenant_max(void **state)
{
    struct h_pglane l = { 0 };
    char conf[4096];
    PGconn *a1, *a2, *adm;
    PGresult *r;
    int64_t t0;

    (void)state;
    H_SKIP_IF_DIRECT();
    tenants_conf(conf, sizeof conf, "tenant_key = application_name\ntenant_max = 1\n", h_free_port());
    h_conf_replace(conf, sizeof conf, "queue_timeout = 30s", "queue_timeout = 300ms");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    adm = h_console(&l, NULL);
    H_ASSERT_CONNECTED(adm);
    a1 = connect_app(&l, "A");
    a2 = connect_app(&l, "A");
    assert_int_equal(PQsendQuery(a1, "SELECT pg_sleep(1.5)"), 1);
    assert_true(h_show_wait(adm, "SHOW LANES", "main", "servers_active", 1, 5000) == 1);
    t0 = h_now_ms();
    assert_int_equal(PQsendQuery(a2, "SELECT 2"), 1);
    assert_int_equal(h_wait_result(a2, 5000), 0);
    r = PQgetResult(a2);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014");
    assert_non_null(strstr(PQresultErrorMessage(r), "queue_timeout"));
    PQclear(r);
    while ((r = PQgetResult(a2)))
        PQclear(r);
    assert_true(h_now_ms() - t0 >= 250 && h_now_ms() - t0 < 1400);   /* before A's first ended */
    assert_int_equal(h_wait_result(a1, 5000), 0);
    assert_true(done(a1));
    PQfinish(a1);
    PQfinish(a2);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* Reload: the tenant keys change without a restart, and a bad value is refused with file:line. */
static void test_reload_tenant_keys(void **state)
{
    struct h_pglane l = { 0 };
    char conf[4096];
    PGconn *adm, *c;
    char *v;

    (void)state;
    H_SKIP_IF_DIRECT();
    tenants_conf(conf, sizeof conf, "", h_free_port());
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    adm = h_console(&l, NULL);
    H_ASSERT_CONNECTED(adm);
    c = connect_app(&l, "A");
    assert_int_equal(h_exec(c, "SELECT 1"), 0);
    assert_true(tenant_val(adm, "A", "transactions") < 0);   /* no tenants under tenant_key = none */
    v = h_read_file(l.conf_path);              /* as written, placeholders replaced */
    assert_non_null(v);
    snprintf(conf, sizeof conf, "%stenant_key = application_name\ntenant_max = 1\n", v);
    free(v);
    assert_int_equal(h_write_file(l.conf_path, conf), 0);
    assert_int_equal(h_exec(adm, "RELOAD"), 0);
    assert_int_equal(h_exec(c, "SELECT 1"), 0);
    assert_true(tenant_val(adm, "A", "transactions") == 1);
    {
        PGresult *r = PQexec(adm, "SHOW CONFIG");
        int found = 0;

        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        for (int i = 0; i < PQntuples(r); i++)
            found += (strcmp(PQgetvalue(r, i, 0), "lane.main.tenant_key") == 0 &&
                      strcmp(PQgetvalue(r, i, 1), "application_name") == 0) ||
                     (strcmp(PQgetvalue(r, i, 0), "lane.main.tenant_max") == 0 &&
                      strcmp(PQgetvalue(r, i, 1), "1") == 0);
        PQclear(r);
        assert_int_equal(found, 2);
    }
    strncat(conf, "tenant_weight.A = 0\n", sizeof conf - strlen(conf) - 1);
    assert_int_equal(h_write_file(l.conf_path, conf), 0);
    assert_string_equal(h_exec_sqlstate(adm, "RELOAD"), "F0000");
    assert_int_equal(h_exec(c, "SELECT 1"), 0);                 /* the old configuration stays */
    assert_true(tenant_val(adm, "A", "transactions") == 2);
    PQfinish(c);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_fifo_without_tenant_key),
        H_TEST(test_fair_by_application_name),
        H_TEST(test_fair_by_hint),
        H_TEST(test_tenant_max),
        H_TEST(test_tenant_max_across_pools),
        H_TEST(test_queue_timeout_under_tenant_max),
        H_TEST(test_reload_tenant_keys),
    };
    return H_RUN_GROUP("integration: fair queuing by tenant", tests, .pg = &g_pg, .super = &g_super,
                       .skip_direct = 1);
}
