/*
 * Session state in transaction pooling: a client's own settings, role and session user follow it
 * across server connections and never reach another client, whatever path set them (SET, set_config,
 * DO, a function, a quoted identifier, SET SESSION AUTHORIZATION); state that cannot move pins the
 * client to its server connection (temporary tables, session advisory locks, LISTEN) and is counted;
 * pin = refuse turns pinning statements into 0A000; notifications reach only the listening client.
 */
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/prom_check.h"

static struct h_pg g_pg;
static struct h_pglane g_main;     /* lane main of size 2, no lane settings, metrics */
static int g_mport;

#define NCLIENTS 32

/* One lane "main" of `size` connections with lane_extra appended to its section. */
static void conf_for(char *buf, size_t n, int size, const char *lane_extra, int mport)
{
    char metrics[64] = "";

    if (mport > 0)
        snprintf(metrics, sizeof metrics, "metrics_listen = 127.0.0.1:%d\n", mport);
    snprintf(buf, n,
             "[pglane]\n"
             "listen = 127.0.0.1:@PORT@\n"
             "auth_type = md5\n"
             "auth_file = @AUTHFILE@\n"
             "pool_mode = transaction\n"
             "max_client_conn = 2000\n"
             "default_lane = main\n"
             "admin_users = app\n"
             "log_level = info\n"
             "%s"
             "\n[server.pg]\nhost = 127.0.0.1\nport = @PGPORT@\n"
             "\n[lane.main]\nserver = pg\nsize = %d\nqueue_timeout = 60s\n%s",
             metrics, size, lane_extra);
}

static int fixtures(void)
{
    char conf[4096], sql[8192];
    size_t o = 0;

    /* app may SET SESSION AUTHORIZATION (superuser) and SET ROLE to every client's role. */
    o += (size_t)snprintf(sql + o, sizeof sql - o,
                          "ALTER ROLE " H_USER " SUPERUSER; CREATE ROLE ops NOLOGIN; GRANT ops TO " H_USER ";");
    for (int i = 0; i < NCLIENTS; i++)
        o += (size_t)snprintf(sql + o, sizeof sql - o, "CREATE ROLE sess_r%d NOLOGIN; GRANT sess_r%d TO " H_USER ";",
                              i, i);
    if (h_pg_exec(&g_pg, "postgres", sql) != 0)
        return -1;
    if (h_pg_exec(&g_pg, H_DB,
                  "CREATE FUNCTION no_timeout() RETURNS int LANGUAGE plpgsql AS "
                  "$$BEGIN PERFORM set_config('statement_timeout', '0', false); RETURN 1; END$$") != 0)
        return -1;
    g_mport = h_free_port();
    conf_for(conf, sizeof conf, 2, "", g_mport);
    if (h_pglane_start(&g_main, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_main);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static PGconn *client(const struct h_pglane *l, const char *app)
{
    return h_connect_app(l, app);
}

/* SHOW CLIENTS' pinned column for the client with application_name app: "" when NULL, "?" when the
 * client is not listed. Static buffer. */
static const char *pinned_of(PGconn *adm, const char *app)
{
    static char out[128];
    PGresult *r = PQexec(adm, "SHOW CLIENTS");
    int ca, cp;

    snprintf(out, sizeof out, "?");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && (ca = PQfnumber(r, "application_name")) >= 0 &&
        (cp = PQfnumber(r, "pinned")) >= 0)
        for (int i = 0; i < PQntuples(r); i++)
            if (strcmp(PQgetvalue(r, i, ca), app) == 0)
                snprintf(out, sizeof out, "%s", PQgetisnull(r, i, cp) ? "" : PQgetvalue(r, i, cp));
    PQclear(r);
    return out;
}

/* Polls SHOW CLIENTS until the client's pinned column is want (the check runs just after the reply
 * that ended the transaction). */
static const char *wait_pinned(PGconn *adm, const char *app, const char *want)
{
    int64_t deadline = h_now_ms() + 5000;
    const char *got;

    while (strcmp(got = pinned_of(adm, app), want) != 0 && h_now_ms() < deadline)
        usleep(5000);
    return got;
}

/* ------------------------------------------------------------------------------------------ */

static const char *const zones[NCLIENTS] = {
    "Etc/GMT+1", "Etc/GMT+2", "Etc/GMT+3", "Etc/GMT+4", "Etc/GMT+5", "Etc/GMT+6", "Etc/GMT+7",
    "Etc/GMT+8", "Etc/GMT+9", "Etc/GMT+10", "Etc/GMT+11", "Etc/GMT+12", "Etc/GMT-1", "Etc/GMT-2",
    "Etc/GMT-3", "Etc/GMT-4", "Etc/GMT-5", "Etc/GMT-6", "Etc/GMT-7", "Etc/GMT-8", "Etc/GMT-9",
    "Etc/GMT-10", "Etc/GMT-11", "Etc/GMT-12", "Etc/GMT-13", "Etc/GMT-14", "UTC", "Europe/Paris",
    "America/New_York", "Asia/Tokyo", "Australia/Sydney", "Africa/Cairo",
};

struct worker {
    int i;
    int checked;             /* transactions whose values were compared */
    char err[512];           /* first difference, "" if none */
};

static int set_all(PGconn *c, int i)
{
    char sql[256];

    snprintf(sql, sizeof sql, "SET statement_timeout = '%dms'", 1001 + 7 * i);
    if (h_exec(c, sql) != 0)
        return -1;
    snprintf(sql, sizeof sql, "SET app.tenant = 'tenant-%d'", i);
    if (h_exec(c, sql) != 0)
        return -1;
    snprintf(sql, sizeof sql, "SET TIME ZONE '%s'", zones[i]);
    if (h_exec(c, sql) != 0)
        return -1;
    snprintf(sql, sizeof sql, "SET search_path = s%d, public", i);
    if (h_exec(c, sql) != 0)
        return -1;
    snprintf(sql, sizeof sql, "SET ROLE sess_r%d", i);
    return h_exec(c, sql);
}

static void *settings_worker(void *arg)
{
    struct worker *w = arg;
    char app[32], want[5][64];
    PGconn *c;

    snprintf(app, sizeof app, "w%d", w->i);
    c = client(&g_main, app);
    if (PQstatus(c) != CONNECTION_OK || set_all(c, w->i) != 0) {
        snprintf(w->err, sizeof w->err, "client %d: connect or SET failed: %s", w->i, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    snprintf(want[0], sizeof want[0], "%dms", 1001 + 7 * w->i);
    snprintf(want[1], sizeof want[1], "tenant-%d", w->i);
    snprintf(want[2], sizeof want[2], "%s", zones[w->i]);
    snprintf(want[3], sizeof want[3], "s%d, public", w->i);
    snprintf(want[4], sizeof want[4], "sess_r%d", w->i);
    for (int t = 0; t < 20 && !w->err[0]; t++) {
        int block = t % 3 == 0;
        PGresult *r;

        if (block && h_exec(c, "BEGIN") != 0)
            break;
        r = PQexec(c, "SELECT current_setting('statement_timeout'), current_setting('app.tenant'), "
                      "current_setting('TimeZone'), current_setting('search_path'), current_user");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(w->err, sizeof w->err, "client %d tx %d: %s", w->i, t, PQerrorMessage(c));
        } else {
            for (int k = 0; k < 5 && !w->err[0]; k++)
                if (strcmp(PQgetvalue(r, 0, k), want[k]) != 0)
                    snprintf(w->err, sizeof w->err, "client %d tx %d: column %d is \"%s\", want \"%s\"", w->i, t,
                             k, PQgetvalue(r, 0, k), want[k]);
            w->checked++;
        }
        PQclear(r);
        if (block && h_exec(c, "COMMIT") != 0)
            break;
    }
    PQfinish(c);
    return NULL;
}

/* 32 clients over 2 server connections: each sees its own five settings in each of 20 transactions. */
static void test_settings_follow_each_client(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct worker w[NCLIENTS];
    pthread_t t[NCLIENTS];

    for (int i = 0; i < NCLIENTS; i++) {
        w[i] = (struct worker){ .i = i };
        assert_int_equal(pthread_create(&t[i], NULL, settings_worker, &w[i]), 0);
    }
    for (int i = 0; i < NCLIENTS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < NCLIENTS; i++) {
        if (w[i].err[0])
            print_error("%s\n", w[i].err);
        assert_string_equal(w[i].err, "");
        assert_int_equal(w[i].checked, 20);
    }
    /* Nothing of theirs is left for a new client, on either server connection. */
    PGconn *a = h_connect(&g_main, NULL), *b = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(h_exec(a, "BEGIN"), 0);
    for (int k = 0; k < 2; k++) {
        PGconn *c = k ? a : b;
        PGresult *r = PQexec(c, "SELECT current_setting('statement_timeout'), current_setting('TimeZone'), "
                                "current_setting('search_path'), current_user, "
                                "coalesce(current_setting('app.tenant', true), '')");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_string_equal(PQgetvalue(r, 0, 0), "0");
        assert_string_not_equal(PQgetvalue(r, 0, 1), "Asia/Tokyo");
        assert_string_equal(PQgetvalue(r, 0, 2), "\"$user\", public");
        assert_string_equal(PQgetvalue(r, 0, 3), H_USER);
        assert_string_equal(PQgetvalue(r, 0, 4), "");
        PQclear(r);
    }
    assert_int_equal(h_exec(a, "COMMIT"), 0);
    PQfinish(a);
    PQfinish(b);
    h_pass();
}

/* A session-level statement_timeout holds for the client's next transaction. */
static void test_statement_timeout_follows(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "SET statement_timeout = '500ms'"), 0);
    int64_t t0 = h_now_ms();
    assert_string_equal(h_exec_sqlstate(c, "SELECT pg_sleep(10)"), "57014");
    int64_t took = h_now_ms() - t0;
    print_message("SET statement_timeout = '500ms'; then pg_sleep(10): 57014 after %lld ms\n", (long long)took);
    if (took >= 2000)
        print_error("pg_sleep(10) ran %lld ms under a 500ms statement_timeout\n", (long long)took);
    assert_true(took < 2000);
    PQfinish(c);
    h_pass();
}

/* set_config(.., false) follows the client onto another server connection. */
static void test_set_config_follows(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *c = h_connect(&g_main, NULL), *b = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    H_ASSERT_CONNECTED(b);
    PGresult *r = PQexec(c, "SELECT pg_backend_pid(), set_config('app.x', 'y', false)");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    char *pid1 = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    /* b holds one server connection in a transaction; c's next one runs wherever it can. */
    assert_int_equal(h_exec(b, "BEGIN"), 0);
    char *pidb = h_query1(b, "SELECT pg_backend_pid()");
    r = PQexec(c, "SELECT pg_backend_pid(), current_setting('app.x')");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 1), "y");
    assert_string_not_equal(PQgetvalue(r, 0, 0), pidb);
    if (strcmp(pidb, pid1) != 0)
        print_message("note: b took the other connection (c stayed on %s)\n", pid1);
    PQclear(r);
    /* b's transaction on c's former connection sees no app.x of c's */
    char *bx = h_query1(b, "SELECT coalesce(current_setting('app.x', true), '')");
    assert_string_equal(bx, "");
    free(bx);
    assert_int_equal(h_exec(b, "COMMIT"), 0);
    free(pid1);
    free(pidb);
    PQfinish(c);
    PQfinish(b);
    h_pass();
}

/* The check after a transaction whose last replies were still being written to the client. */
static void test_check_after_large_result(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    for (int i = 0; i < 3; i++) {
        /* a slow reader: pglane's last forward (with the ReadyForQuery) waits for the socket */
        assert_int_equal(PQsendQuery(c, "SET app.big = 'kept'; SELECT repeat('x', 4000000)"), 1);
        while (PQisBusy(c)) {
            usleep(2000);
            assert_int_equal(PQconsumeInput(c), 1);
        }
        PGresult *r, *last = NULL;
        while ((r = PQgetResult(c)) != NULL) {
            PQclear(last);
            last = r;
        }
        assert_int_equal(PQresultStatus(last), PGRES_TUPLES_OK);
        assert_int_equal(PQgetlength(last, 0, 0), 4000000);
        PQclear(last);
        char *v = h_query1(c, "SELECT current_setting('app.big')");
        assert_non_null(v);
        assert_string_equal(v, "kept");
        free(v);
    }
    PQfinish(c);
    h_pass();
}

/* RESET ALL brings back the lane's settings (startup parameters of the lane's connections). */
static void test_reset_all_restores_lane_settings(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];

    conf_for(conf, sizeof conf, 2, "statement_timeout = 3s\nwork_mem = 8MB\nset.app.lane = lanev\n", 0);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "SET statement_timeout = '1234ms'"), 0);
    assert_int_equal(h_exec(c, "SET work_mem = '9MB'"), 0);
    assert_int_equal(h_exec(c, "SET app.lane = 'mine'"), 0);
    PGresult *r = PQexec(c, "SELECT current_setting('statement_timeout'), current_setting('work_mem'), "
                            "current_setting('app.lane')");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "1234ms");
    assert_string_equal(PQgetvalue(r, 0, 1), "9MB");
    assert_string_equal(PQgetvalue(r, 0, 2), "mine");
    PQclear(r);
    assert_int_equal(h_exec(c, "RESET ALL"), 0);
    for (int k = 0; k < 3; k++) {
        r = PQexec(c, "SELECT current_setting('statement_timeout'), current_setting('work_mem'), "
                      "current_setting('app.lane')");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_string_equal(PQgetvalue(r, 0, 0), "3s");
        assert_string_equal(PQgetvalue(r, 0, 1), "8MB");
        assert_string_equal(PQgetvalue(r, 0, 2), "lanev");
        PQclear(r);
    }
    /* RESET of one setting: that one only. */
    assert_int_equal(h_exec(c, "SET work_mem = '10MB'"), 0);
    assert_int_equal(h_exec(c, "SET statement_timeout = '2222ms'"), 0);
    assert_int_equal(h_exec(c, "RESET work_mem"), 0);
    char *v = h_query1(c, "SELECT current_setting('work_mem') || ' ' || current_setting('statement_timeout')");
    assert_string_equal(v, "8MB 2222ms");
    free(v);
    /* DISCARD ALL: everything back. */
    assert_int_equal(h_exec(c, "DISCARD ALL"), 0);
    v = h_query1(c, "SELECT current_setting('statement_timeout')");
    assert_string_equal(v, "3s");
    free(v);
    /* SET LOCAL stays in its transaction. */
    assert_int_equal(h_exec(c, "BEGIN; SET LOCAL statement_timeout = '4444ms'; COMMIT"), 0);
    v = h_query1(c, "SELECT current_setting('statement_timeout')");
    assert_string_equal(v, "3s");
    free(v);
    PQfinish(c);
    h_pglane_stop(&l);
    h_pass();
}

/* A temporary table pins its client until it is dropped; others never see it. */
static void test_temp_table_pins(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console(&g_main, NULL), *c = client(&g_main, "tmp-owner"), *o = client(&g_main, "tmp-other");
    H_ASSERT_CONNECTED(adm);
    H_ASSERT_CONNECTED(c);
    H_ASSERT_CONNECTED(o);
    char *m = h_metrics_body(g_mport);
    long pins_before = h_metric(m, "pglane_pins_total{lane=\"main\",reason=\"temp_table\"}");
    free(m);
    assert_true(pins_before >= 0);
    assert_string_equal(pinned_of(adm, "tmp-owner"), "");
    assert_int_equal(h_exec(c, "CREATE TEMP TABLE tt (a int)"), 0);
    assert_string_equal(wait_pinned(adm, "tmp-owner", "temp_table"), "temp_table");
    m = h_metrics_body(g_mport);
    char err[256] = "";
    if (prom_check(m, err, sizeof err) != 0)
        print_error("metrics: %s\n", err);
    assert_int_equal(prom_check(m, err, sizeof err), 0);
    assert_int_equal(h_metric(m, "pglane_pinned_clients{lane=\"main\",reason=\"temp_table\"}"), 1);
    assert_int_equal(h_metric(m, "pglane_pins_total{lane=\"main\",reason=\"temp_table\"}"), pins_before + 1);
    free(m);
    for (int i = 1; i <= 5; i++) {
        char sql[64];

        snprintf(sql, sizeof sql, "INSERT INTO tt VALUES (%d)", i);
        assert_int_equal(h_exec(c, sql), 0);
        /* the other client runs transactions meanwhile, never on c's connection */
        char *seen = h_query1(o, "SELECT coalesce(to_regclass('pg_temp.tt')::text, 'none')");
        assert_string_equal(seen, "none");
        free(seen);
        char *n = h_query1(c, "SELECT count(*) FROM tt");
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        assert_string_equal(n, want);
        free(n);
        assert_string_equal(pinned_of(adm, "tmp-owner"), "temp_table");
    }
    assert_int_equal(h_exec(c, "DROP TABLE tt"), 0);
    assert_string_equal(wait_pinned(adm, "tmp-owner", ""), "");
    m = h_metrics_body(g_mport);
    assert_int_equal(h_metric(m, "pglane_pinned_clients{lane=\"main\",reason=\"temp_table\"}"), 0);
    free(m);
    char *one = h_query1(c, "SELECT 1");
    assert_string_equal(one, "1");
    free(one);
    PQfinish(c);
    PQfinish(o);
    PQfinish(adm);
    h_pass();
}

/* A session advisory lock pins its client until pg_advisory_unlock_all(). */
static void test_advisory_lock_pins(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console(&g_main, NULL), *c = client(&g_main, "adv-owner"), *o = client(&g_main, "adv-other");
    H_ASSERT_CONNECTED(adm);
    H_ASSERT_CONNECTED(c);
    H_ASSERT_CONNECTED(o);
    char *v = h_query1(c, "SELECT pg_advisory_lock(4242)");
    free(v);
    assert_string_equal(wait_pinned(adm, "adv-owner", "advisory_lock"), "advisory_lock");
    for (int i = 0; i < 3; i++) {
        v = h_query1(o, "SELECT pg_try_advisory_xact_lock(4242)");
        assert_string_equal(v, "f");
        free(v);
        v = h_query1(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()");
        assert_string_equal(v, "1");
        free(v);
    }
    assert_string_equal(pinned_of(adm, "adv-owner"), "advisory_lock");
    v = h_query1(c, "SELECT pg_advisory_unlock_all()");
    free(v);
    assert_string_equal(wait_pinned(adm, "adv-owner", ""), "");
    v = h_query1(o, "SELECT pg_try_advisory_xact_lock(4242)");
    assert_string_equal(v, "t");
    free(v);
    PQfinish(c);
    PQfinish(o);
    PQfinish(adm);
    h_pass();
}

/* The first value of sql's first row must be want. */
static void first_value_is(PGconn *c, const char *sql, const char *want)
{
    char *v = h_query1(c, sql);

    if (!v || strcmp(v, want) != 0)
        print_error("%s: got %s, want %s\n", sql, v ? v : "(error)", want);
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

/*
 * Closes client c (through pglane) and waits, on d (a direct connection), until the backend that
 * served it has ended (the close is asynchronous; at most 5 s). Returns that backend's pid as text
 * (free it). what names the case in a failure.
 */
static char *leave_and_await_backend_end(PGconn *c, PGconn *d, const char *what)
{
    char sql[128], *v, *pid = h_query1(c, "SELECT pg_backend_pid()");
    int64_t deadline;

    assert_non_null(pid);
    PQfinish(c);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid);
    deadline = h_now_ms() + 5000;
    while ((v = h_query1(d, sql)) && strcmp(v, "0") != 0 && h_now_ms() < deadline) {
        free(v);
        usleep(5000);
    }
    if (!v || strcmp(v, "0") != 0)
        print_error("%s: backend %s of the departed client still runs\n", what, pid);
    assert_non_null(v);
    assert_string_equal(v, "0");
    free(v);
    return pid;
}

/*
 * setseed() (or SET seed, set_config('seed', ...)) starts the backend's random() on a sequence that no
 * query can read back or move: the client keeps its server connection for good (pinned "seed"), so its
 * sequence is the one it gets directly, across transactions and session checks, and the connection is
 * closed when the client leaves, so that no later client draws from it. The build before returned the
 * connection to the pool: the next client on it got the seeded sequence's next values.
 */
static void test_seed_pins_and_closes(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static const char *const seeds[] = { "SELECT setseed(0.5)", "SET seed = 0.25",
                                         "SELECT set_config('seed', '-0.5', false)" };
    PGconn *adm = h_console(&g_main, NULL), *d = h_pg_super(&g_pg, H_DB);
    H_ASSERT_CONNECTED(adm);
    assert_non_null(d);
    for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++) {
        char want[4][64], *v;

        /* the sequence PostgreSQL gives a session after that seed */
        assert_int_equal(h_exec(d, seeds[k]), 0);
        for (int i = 0; i < 4; i++) {
            v = h_query1(d, "SELECT random()::text");
            assert_non_null(v);
            snprintf(want[i], sizeof want[i], "%s", v);
            free(v);
        }
        PGconn *c = client(&g_main, "seed-owner"), *o = client(&g_main, "seed-other");
        H_ASSERT_CONNECTED(c);
        H_ASSERT_CONNECTED(o);
        assert_int_equal(h_exec(c, seeds[k]), 0);
        assert_string_equal(wait_pinned(adm, "seed-owner", "seed"), "seed");
        for (int i = 0; i < 3; i++) {
            first_value_is(c, "SELECT random()::text", want[i]);   /* what the seed gives directly */
            assert_int_equal(h_exec(c, "SET work_mem = '5MB'"), 0);   /* a session check in between */
            first_value_is(o, "SELECT 1", "1");
        }
        assert_string_equal(pinned_of(adm, "seed-owner"), "seed");
        char *pid = leave_and_await_backend_end(c, d, seeds[k]);   /* the seeded backend ends with it */
        /* both of the lane's connections, taken at once: neither is the seeded one */
        PGconn *b = client(&g_main, "seed-next");
        H_ASSERT_CONNECTED(b);
        assert_int_equal(h_exec(o, "BEGIN"), 0);
        assert_int_equal(h_exec(b, "BEGIN"), 0);
        char *p1 = h_query1(o, "SELECT pg_backend_pid()"), *p2 = h_query1(b, "SELECT pg_backend_pid()");
        char *r2 = h_query1(b, "SELECT random()::text");
        assert_non_null(p1);
        assert_non_null(p2);
        assert_non_null(r2);
        assert_string_not_equal(p1, pid);
        assert_string_not_equal(p2, pid);
        assert_string_not_equal(r2, want[3]);
        free(p1);
        free(p2);
        free(r2);
        free(pid);
        assert_int_equal(h_exec(o, "COMMIT"), 0);
        assert_int_equal(h_exec(b, "COMMIT"), 0);
        PQfinish(b);
        PQfinish(o);
    }
    PQfinish(d);
    PQfinish(adm);
    h_pass();
}

/*
 * Backend state that no reset undoes and no other client may inherit: a library LOAD leaves in the
 * backend (auto_explain here; pg_hint_plan would change every later plan), a replication origin the
 * session took (pg_replication_origin_session_setup: later commits would carry its origin), a
 * temporary replication slot (held, and holding back WAL, as long as the backend lives; made inside
 * a function, where only the check sees it), a dblink connection (open until dblink_disconnect,
 * logged in as its client chose). Each pins its client for good (SHOW CLIENTS says why);
 * when the client leaves, its backend ends with it, and neither of the lane's two connections taken
 * afterwards holds the state. The build before gave the connection back to the pool with it.
 */
static void test_backend_state_pins_and_closes(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static const struct {
        const char *make, *reason, *shows;   /* shows: "1" on a backend with the state, "0" elsewhere */
    } cases[] = {
        { "LOAD 'auto_explain'", "load",
          "SELECT (count(*) > 0)::int FROM pg_settings WHERE name LIKE 'auto\\_explain.%'" },
        { "SELECT pg_replication_origin_session_setup('pgl_origin')", "replication",
          "SELECT pg_replication_origin_session_is_setup()::int" },
        { "SELECT make_temp_slot()", "replication",
          "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgl_tslot' "
          "AND active_pid = pg_backend_pid()" },
        { "SELECT dblink_connect('bs_link', 'bs_loop')", "dblink",
          "SELECT coalesce(array_length(dblink_get_connections(), 1), 0)" },
    };
    PGconn *adm = h_console(&g_main, NULL), *d = h_pg_super(&g_pg, H_DB);
    H_ASSERT_CONNECTED(adm);
    assert_non_null(d);
    assert_int_equal(h_exec(d, "SELECT pg_replication_origin_create('pgl_origin') WHERE NOT EXISTS "
                               "(SELECT FROM pg_replication_origin WHERE roname = 'pgl_origin')"), 0);
    assert_int_equal(h_exec(d, "CREATE OR REPLACE FUNCTION make_temp_slot() RETURNS int LANGUAGE sql AS "
                               "$$SELECT 1 FROM pg_create_physical_replication_slot('pgl_tslot', true, true)$$"), 0);
    /* a foreign server for dblink: this cluster, logged in with the password its TCP clients need */
    assert_int_equal(h_exec(d, "CREATE EXTENSION IF NOT EXISTS dblink"), 0);
    assert_int_equal(h_exec(d, "DO $$BEGIN EXECUTE format('CREATE SERVER IF NOT EXISTS bs_loop FOREIGN DATA WRAPPER "
                               "dblink_fdw OPTIONS (host %L, port %L, dbname %L)', '127.0.0.1', "
                               "current_setting('port'), current_database()); END$$"), 0);
    assert_int_equal(h_exec(d, "CREATE USER MAPPING IF NOT EXISTS FOR PUBLIC SERVER bs_loop OPTIONS (user '" H_USER
                               "', password '" H_PASSWORD "')"), 0);
    assert_int_equal(h_exec(d, "GRANT USAGE ON FOREIGN SERVER bs_loop TO PUBLIC"), 0);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        PGconn *c = client(&g_main, "bs-owner"), *o = client(&g_main, "bs-other");
        H_ASSERT_CONNECTED(c);
        H_ASSERT_CONNECTED(o);
        assert_int_equal(h_exec(c, cases[k].make), 0);
        assert_string_equal(wait_pinned(adm, "bs-owner", cases[k].reason), cases[k].reason);
        for (int i = 0; i < 3; i++) {
            first_value_is(c, cases[k].shows, "1");                 /* the client keeps its backend */
            assert_int_equal(h_exec(c, "SET work_mem = '5MB'"), 0);   /* a session check in between */
            first_value_is(o, cases[k].shows, "0");
        }
        assert_string_equal(pinned_of(adm, "bs-owner"), cases[k].reason);
        free(leave_and_await_backend_end(c, d, cases[k].make));   /* its backend ends with it */
        /* both of the lane's connections, taken at once: neither holds the state */
        PGconn *b = client(&g_main, "bs-next");
        H_ASSERT_CONNECTED(b);
        assert_int_equal(h_exec(o, "BEGIN"), 0);
        assert_int_equal(h_exec(b, "BEGIN"), 0);
        first_value_is(o, cases[k].shows, "0");
        first_value_is(b, cases[k].shows, "0");
        assert_int_equal(h_exec(o, "COMMIT"), 0);
        assert_int_equal(h_exec(b, "COMMIT"), 0);
        PQfinish(b);
        PQfinish(o);
    }
    assert_int_equal(h_exec(d, "SELECT pg_replication_origin_drop('pgl_origin')"), 0);
    PQfinish(d);
    PQfinish(adm);
    h_pass();
}

/*
 * Many custom settings follow their client (the build before followed the first 32 and reset the rest
 * silently after the transaction); past PX_MAX_CUSTOM (1024) the client is told, with 54000, instead
 * of losing the ones beyond without a word.
 */
static void test_many_custom_settings_follow(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *c = h_connect(&g_main, NULL), *o = h_connect(&g_main, NULL);
    char sql[64];
    H_ASSERT_CONNECTED(c);
    H_ASSERT_CONNECTED(o);
    for (int i = 0; i < 100; i++) {
        snprintf(sql, sizeof sql, "SET app.many%d = 'v%d'", i, i);
        assert_int_equal(h_exec(c, sql), 0);
    }
    assert_int_equal(h_exec(o, "SELECT 1"), 0);   /* another client's transaction in between */
    first_value_is(c, "SELECT current_setting('app.many0') || current_setting('app.many50') || "
                      "current_setting('app.many99')", "v0v50v99");
    PQfinish(c);
    /* 1025 names in one transaction: the check after it fails the client with 54000 */
    size_t cap = 1025 * 32, used = 0;
    char *many = malloc(cap);
    assert_non_null(many);
    for (int i = 0; i <= 1024; i++)
        used += (size_t)snprintf(many + used, cap - used, "SET app.over%d = 'x';", i);
    c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    PGresult *r = PQexec(c, many);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);   /* PostgreSQL took them all */
    PQclear(r);
    r = PQexec(c, "SELECT 1");
    assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_non_null(strstr(PQerrorMessage(c), "at most 1024 custom settings"));
    PQclear(r);
    free(many);
    PQfinish(c);
    PQfinish(o);
    h_pass();
}

/*
 * Sequence state (currval, lastval) stays with the client that made it: on a lane of one connection,
 * another client's lastval()/currval() get 55000 as on a connection of their own (the build before
 * answered with the first client's values), with the simple and the extended protocol, and a client
 * that is alone on the connection still reads its own currval() in a later transaction.
 */
static void test_sequence_state_not_shared(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];

    assert_int_equal(h_pg_exec(&g_pg, H_DB, "DROP TABLE IF EXISTS seq_t; CREATE TABLE seq_t (id serial, v int)"), 0);
    conf_for(conf, sizeof conf, 1, "", 0);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *a = h_connect(&l, NULL), *b = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    /* a serial column's default calls nextval(): the INSERT's tag is what pglane sees */
    assert_int_equal(h_exec(a, "INSERT INTO seq_t (v) VALUES (1)"), 0);
    first_value_is(a, "SELECT currval('seq_t_id_seq')", "1");   /* alone on the connection: its own */
    assert_string_equal(h_exec_sqlstate(b, "SELECT lastval()"), "55000");
    assert_string_equal(h_exec_sqlstate(b, "SELECT currval('seq_t_id_seq')"), "55000");
    /* the extended protocol, an explicit nextval() */
    PGresult *r = PQexecParams(a, "SELECT nextval('seq_t_id_seq') + $1::int", 1, NULL, (const char *const[]){ "0" },
                               NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "2");
    PQclear(r);
    r = PQexecParams(b, "SELECT lastval() + $1::int", 1, NULL, (const char *const[]){ "0" }, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "55000");
    PQclear(r);
    /* B's own: within its transaction and after */
    assert_int_equal(h_exec(b, "BEGIN"), 0);
    assert_int_equal(h_exec(b, "INSERT INTO seq_t (v) VALUES (2)"), 0);
    first_value_is(b, "SELECT lastval()", "3");
    assert_int_equal(h_exec(b, "COMMIT"), 0);
    first_value_is(b, "SELECT lastval()", "3");
    /* A's state went when B used the connection: an error, never B's 3 */
    assert_string_equal(h_exec_sqlstate(a, "SELECT lastval()"), "55000");
    PQfinish(a);
    PQfinish(b);
    h_pglane_stop(&l);
    h_pass();
}

/*
 * A WITH HOLD cursor and an SQL-level prepared statement pin their client until closed and
 * deallocated (SHOW CLIENTS lists both reasons while both exist); the pinned connection counts in the
 * lane's size (lane of 2: with the other one taken, a third client waits while the pinned client
 * goes on); other clients never see the cursor or the statement.
 */
static void test_hold_cursor_and_sql_prepare_pin(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console(&g_main, NULL), *c = client(&g_main, "hold-owner"), *o = client(&g_main, "hold-other"),
           *b = client(&g_main, "hold-busy");
    H_ASSERT_CONNECTED(adm);
    H_ASSERT_CONNECTED(c);
    H_ASSERT_CONNECTED(o);
    H_ASSERT_CONNECTED(b);
    char *m = h_metrics_body(g_mport);
    long cursor0 = h_metric(m, "pglane_pins_total{lane=\"main\",reason=\"hold_cursor\"}");
    long prep0 = h_metric(m, "pglane_pins_total{lane=\"main\",reason=\"prepared_statement\"}");
    free(m);
    assert_true(cursor0 >= 0 && prep0 >= 0);

    assert_int_equal(h_exec(c, "DECLARE hc CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 10) g"), 0);
    assert_string_equal(wait_pinned(adm, "hold-owner", "hold_cursor"), "hold_cursor");
    assert_int_equal(h_exec(c, "PREPARE sqlp(int) AS SELECT $1 * 2"), 0);
    assert_string_equal(wait_pinned(adm, "hold-owner", "hold_cursor,prepared_statement"),
                        "hold_cursor,prepared_statement");
    m = h_metrics_body(g_mport);
    assert_int_equal(h_metric(m, "pglane_pins_total{lane=\"main\",reason=\"hold_cursor\"}"), cursor0 + 1);
    assert_int_equal(h_metric(m, "pglane_pins_total{lane=\"main\",reason=\"prepared_statement\"}"), prep0 + 1);
    assert_int_equal(h_metric(m, "pglane_pinned_clients{lane=\"main\",reason=\"hold_cursor\"}"), 1);
    assert_int_equal(h_metric(m, "pglane_pinned_clients{lane=\"main\",reason=\"prepared_statement\"}"), 1);
    free(m);

    /* b takes the lane's other connection: o now waits, c goes on on its own. */
    assert_int_equal(h_exec(b, "BEGIN"), 0);
    assert_int_equal(h_exec(b, "SELECT 1"), 0);
    assert_int_equal(PQsendQuery(o, "SELECT (SELECT count(*) FROM pg_cursors) + "
                                    "(SELECT count(*) FROM pg_prepared_statements WHERE from_sql)"), 1);
    assert_int_equal(h_show_wait(adm, "SHOW LANES", "main", "clients_waiting", 1, 5000), 1);
    for (int i = 1; i <= 3; i++) {
        char want[16], *v = h_query1(c, "FETCH 1 FROM hc");
        snprintf(want, sizeof want, "%d", i);
        assert_non_null(v);
        assert_string_equal(v, want);
        free(v);
        v = h_query1(c, "EXECUTE sqlp(21)");
        assert_non_null(v);
        assert_string_equal(v, "42");
        free(v);
    }
    assert_int_equal(PQisBusy(o), 1);
    assert_int_equal(h_exec(b, "COMMIT"), 0);
    assert_int_equal(h_wait_result(o, 5000), 0);
    PGresult *r = PQgetResult(o);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "0");           /* neither is on o's connection */
    PQclear(r);
    assert_null(PQgetResult(o));

    assert_int_equal(h_exec(c, "CLOSE hc"), 0);
    assert_string_equal(wait_pinned(adm, "hold-owner", "prepared_statement"), "prepared_statement");
    assert_int_equal(h_exec(c, "DEALLOCATE sqlp"), 0);
    assert_string_equal(wait_pinned(adm, "hold-owner", ""), "");
    m = h_metrics_body(g_mport);
    assert_int_equal(h_metric(m, "pglane_pinned_clients{lane=\"main\",reason=\"hold_cursor\"}"), 0);
    assert_int_equal(h_metric(m, "pglane_pinned_clients{lane=\"main\",reason=\"prepared_statement\"}"), 0);
    free(m);
    PQfinish(c);
    PQfinish(o);
    PQfinish(b);
    PQfinish(adm);
    h_pass();
}

/* SET SESSION CHARACTERISTICS follows the client; another client keeps PostgreSQL's default. */
static void test_session_characteristics_follow(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *c = h_connect(&g_main, NULL), *b = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(h_exec(c, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, "
                               "READ ONLY"), 0);
    for (int i = 0; i < 4; i++) {
        /* every other round b holds a connection in a transaction, so c runs on the other one */
        if (i % 2) {
            assert_int_equal(h_exec(b, "BEGIN"), 0);
            assert_int_equal(h_exec(b, "SELECT 1"), 0);
        }
        PGresult *r = PQexec(c, "SELECT current_setting('transaction_isolation'), "
                                "current_setting('transaction_read_only')");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_string_equal(PQgetvalue(r, 0, 0), "repeatable read");
        assert_string_equal(PQgetvalue(r, 0, 1), "on");
        PQclear(r);
        char *v = h_query1(b, "SELECT current_setting('transaction_isolation')");
        assert_non_null(v);
        assert_string_equal(v, "read committed");
        free(v);
        if (i % 2)
            assert_int_equal(h_exec(b, "COMMIT"), 0);
    }
    assert_string_equal(h_exec_sqlstate(c, "CREATE TABLE sess_chars_ro (a int)"), "25006");
    PQfinish(c);
    PQfinish(b);
    h_pass();
}

/* Waits up to timeout_ms for a notification on c. */
static PGnotify *wait_notify(PGconn *c, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    PGnotify *n;

    for (;;) {
        if (PQconsumeInput(c) == 0)
            return NULL;
        if ((n = PQnotifies(c)) != NULL)
            return n;
        int left = (int)(deadline - h_now_ms());
        if (left <= 0)
            return NULL;
        struct pollfd p = { .fd = PQsocket(c), .events = POLLIN };
        (void)poll(&p, 1, left);
    }
}

/* LISTEN in one client, NOTIFY from another, both through transaction pooling. */
static void test_listen_notify(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console(&g_main, NULL), *a = client(&g_main, "listener"), *b = client(&g_main, "notifier");
    H_ASSERT_CONNECTED(adm);
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(h_exec(a, "LISTEN ch1"), 0);
    assert_string_equal(wait_pinned(adm, "listener", "listen"), "listen");
    for (int i = 0; i < 3; i++) {
        char sql[64];

        snprintf(sql, sizeof sql, "NOTIFY ch1, 'hello %d'", i);
        assert_int_equal(h_exec(b, sql), 0);
        PGnotify *n = wait_notify(a, 5000);
        assert_non_null(n);
        assert_string_equal(n->relname, "ch1");
        char want[32];
        snprintf(want, sizeof want, "hello %d", i);
        assert_string_equal(n->extra, want);
        PQfreemem(n);
        /* the notifier did not listen: it gets nothing */
        assert_int_equal(PQconsumeInput(b), 1);
        assert_null(PQnotifies(b));
        /* the listener keeps working between notifications */
        char *one = h_query1(a, "SELECT 1");
        assert_string_equal(one, "1");
        free(one);
    }
    /* notifications that arrive while pglane checks and restores the listener's session (each SET
     * below is followed by a check and a replay on its connection) all arrive, in order */
    for (int i = 0; i < 20; i++) {
        char sql[64];

        snprintf(sql, sizeof sql, "SET app.n = '%d'", i);
        assert_int_equal(h_exec(a, sql), 0);
        snprintf(sql, sizeof sql, "NOTIFY ch1, 'burst %d'", i);
        assert_int_equal(h_exec(b, sql), 0);
    }
    for (int i = 0; i < 20; i++) {
        PGnotify *n = wait_notify(a, 5000);
        char want[32];

        snprintf(want, sizeof want, "burst %d", i);
        if (!n)
            print_error("notification %d of the burst did not arrive\n", i);
        assert_non_null(n);
        assert_string_equal(n->extra, want);
        PQfreemem(n);
    }
    char *an = h_query1(a, "SELECT current_setting('app.n')");
    assert_string_equal(an, "19");
    free(an);
    assert_int_equal(h_exec(a, "UNLISTEN *"), 0);
    assert_string_equal(wait_pinned(adm, "listener", ""), "");
    PQfinish(a);
    PQfinish(b);
    PQfinish(adm);
    h_pass();
}

/* A listener that leaves: its server connection goes back to the pool listening to nothing. */
static void test_listener_leaves(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];

    conf_for(conf, sizeof conf, 1, "", 0);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *a = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(a);
    char *pa = h_query1(a, "SELECT pg_backend_pid()");
    assert_int_equal(h_exec(a, "LISTEN ch2"), 0);
    PQfinish(a);
    PGconn *b = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(b);
    PGresult *r = PQexec(b, "SELECT pg_backend_pid(), (SELECT count(*) FROM pg_listening_channels())");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 1), "0");
    PQclear(r);
    assert_int_equal(h_exec(b, "NOTIFY ch2, 'to nobody'"), 0);
    assert_int_equal(PQconsumeInput(b), 1);
    assert_null(PQnotifies(b));
    free(pa);
    PQfinish(b);
    h_pglane_stop(&l);
    h_pass();
}

/* pin = refuse: a pinning statement gets 0A000 and the connection stays usable. */
static void test_pin_refuse(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];

    conf_for(conf, sizeof conf, 2, "pin = refuse\n", 0);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    PGresult *r = PQexec(c, "CREATE TEMP TABLE refused (a int)");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "0A000");
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    assert_non_null(strstr(msg, "temp_table"));
    assert_non_null(strstr(msg, "\"main\""));
    PQclear(r);
    char *v = h_query1(c, "SELECT 1");
    assert_string_equal(v, "1");
    free(v);
    /* inside a transaction: the transaction fails as PostgreSQL's own errors make it fail */
    assert_int_equal(h_exec(c, "BEGIN"), 0);
    assert_string_equal(h_exec_sqlstate(c, "LISTEN nope"), "0A000");
    assert_string_equal(h_exec_sqlstate(c, "SELECT 1"), "25P02");
    assert_int_equal(h_exec(c, "ROLLBACK"), 0);
    /* extended protocol */
    r = PQexecParams(c, "SELECT pg_advisory_lock($1)", 1, NULL, (const char *const[]){ "7" }, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "0A000");
    PQclear(r);
    v = h_query1(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'");
    assert_string_equal(v, "0");
    free(v);
    /* setseed: refused too; the refusal leaves no seed behind (later checks do not close the client) */
    assert_string_equal(h_exec_sqlstate(c, "SELECT setseed(0.5)"), "0A000");
    assert_string_equal(h_exec_sqlstate(c, "SELECT set_config('seed', '0.5', false)"), "0A000");
    assert_string_equal(h_exec_sqlstate(c, "SET LOCAL seed = 0.5"), "0A000");
    /* LOAD, a replication origin session, a temporary slot: refused, none of them happened */
    assert_string_equal(h_exec_sqlstate(c, "LOAD 'auto_explain'"), "0A000");
    assert_string_equal(h_exec_sqlstate(c, "SELECT pg_replication_origin_session_setup('refused')"), "0A000");
    assert_string_equal(h_exec_sqlstate(c, "SELECT pg_create_physical_replication_slot('refused', true, true)"),
                        "0A000");
    first_value_is(c, "SELECT count(*) FROM pg_settings WHERE name LIKE 'auto\\_explain.%'", "0");
    first_value_is(c, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'refused'", "0");
    assert_int_equal(h_exec(c, "SET work_mem = '5MB'"), 0);
    first_value_is(c, "SELECT current_setting('work_mem')", "5MB");
    v = h_query1(c, "SELECT coalesce(to_regclass('pg_temp.refused')::text, 'none')");
    assert_string_equal(v, "none");
    free(v);
    PQfinish(c);
    /* pinning state made where the grammar cannot see it: found by the check, the client is closed */
    c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    r = PQexec(c, "DO $$BEGIN EXECUTE 'LISTEN hidden'; END$$");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQexec(c, "SELECT 1");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    /* the FATAL arrived while the client was idle: libpq reports it with the lost connection */
    print_message("after a hidden LISTEN: %s\n", PQerrorMessage(c));
    /* (or, when the close is seen first, only the lost connection) */
    assert_true(strstr(PQerrorMessage(c), "refuses session state that pins a server connection (listen)") ||
                PQstatus(c) == CONNECTION_BAD);
    PQclear(r);
    PQfinish(c);
    c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    v = h_query1(c, "SELECT count(*) FROM pg_listening_channels()");
    assert_string_equal(v, "0");
    free(v);
    PQfinish(c);
    h_pglane_stop(&l);
    h_pass();
}

/* A replay PostgreSQL refuses (the client's role was dropped): the client is closed, never left
 * running as the login user; other clients go on. */
static void test_replay_refused_closes_client(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    assert_int_equal(h_pg_exec(&g_pg, "postgres", "CREATE ROLE doomed NOLOGIN; GRANT doomed TO " H_USER), 0);
    PGconn *c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "SET ROLE doomed"), 0);
    char *v = h_query1(c, "SELECT current_user");
    assert_string_equal(v, "doomed");
    free(v);
    assert_int_equal(h_pg_exec(&g_pg, H_DB, "CREATE TABLE replay_audit (who text); "
                                            "GRANT ALL ON replay_audit TO PUBLIC"), 0);
    assert_int_equal(h_pg_exec(&g_pg, "postgres", "DROP ROLE doomed"), 0);
    PGresult *r = PQexec(c, "INSERT INTO replay_audit VALUES (current_user)");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    print_message("after its role was dropped: %s\n", PQerrorMessage(c));
    assert_non_null(strstr(PQerrorMessage(c), "could not restore this session's settings or role"));
    PQclear(r);
    PQfinish(c);
    /* the statement never ran (as the login user or anyone) */
    PGconn *super = h_pg_super(&g_pg, H_DB);
    assert_non_null(super);
    assert_int_equal(h_pg_long(super, "SELECT count(*) FROM replay_audit"), 0);
    PQfinish(super);
    PGconn *o = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(o);
    v = h_query1(o, "SELECT current_user");
    assert_string_equal(v, H_USER);
    free(v);
    PQfinish(o);
    h_pass();
}

struct churn {
    int from, to, failures;
};

static void *churn_worker(void *arg)
{
    struct churn *w = arg;

    for (int i = w->from; i < w->to; i++) {
        PGconn *c = h_connect(&g_main, NULL);
        char sql[128];

        snprintf(sql, sizeof sql, "SET statement_timeout = '%dms'; SET app.leak = 'client-%d'", 50 + i, i);
        if (PQstatus(c) != CONNECTION_OK || h_exec(c, sql) != 0 || h_exec(c, "SET ROLE ops") != 0 ||
            h_exec(c, "SELECT set_config('app.leak2', 'z', false)") != 0 ||
            h_exec(c, "SET TIME ZONE 'Asia/Tokyo'") != 0 || h_exec(c, "SELECT 1") != 0)
            w->failures++;
        PQfinish(c);
    }
    return NULL;
}

/* 1,000 clients set state and leave; a new client sees defaults and lane settings only. */
static void test_thousand_clients_leave_nothing(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct churn w[4];
    pthread_t t[4];

    for (int i = 0; i < 4; i++) {
        w[i] = (struct churn){ .from = i * 250, .to = i * 250 + 250 };
        assert_int_equal(pthread_create(&t[i], NULL, churn_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    PGconn *a = h_connect(&g_main, NULL), *b = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(h_exec(a, "BEGIN"), 0);   /* a holds one connection, b gets the other */
    for (int k = 0; k < 2; k++) {
        PGresult *r = PQexec(k ? a : b, "SELECT current_setting('statement_timeout'), current_user, session_user, "
                                        "coalesce(current_setting('app.leak', true), ''), "
                                        "coalesce(current_setting('app.leak2', true), ''), "
                                        "current_setting('TimeZone')");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_string_equal(PQgetvalue(r, 0, 0), "0");
        assert_string_equal(PQgetvalue(r, 0, 1), H_USER);
        assert_string_equal(PQgetvalue(r, 0, 2), H_USER);
        assert_string_equal(PQgetvalue(r, 0, 3), "");
        assert_string_equal(PQgetvalue(r, 0, 4), "");
        assert_string_not_equal(PQgetvalue(r, 0, 5), "Asia/Tokyo");
        PQclear(r);
    }
    assert_int_equal(h_exec(a, "COMMIT"), 0);
    PQfinish(a);
    PQfinish(b);
    h_pass();
}

/*
 * Issue #24 item 1: paths that set state without a SET tag or a set_config in the text. Lane size 1,
 * statement_timeout = 1s, sequential clients: the next client never sees them; the client that
 * ran them keeps them (they are its own session's). Each path twice: once with a transaction of the
 * client's own after it (its replay, then the reset of a connection that served a client's
 * settings), once leaving right after it, so that only the check after that transaction stands
 * between the path and the next client.
 */
/* A clean transaction (no path that may change session state unseen) costs no session check: the
 * counter stays still over simple, extended and multi-statement transactions, and moves by exactly
 * one for a DO block. */
static void test_clean_transactions_cost_no_check(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    const char *series = "pglane_session_checks_total{lane=\"main\"}";
    PGconn *c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "CREATE TABLE IF NOT EXISTS sess_clean (id int PRIMARY KEY, n int)"), 0);
    assert_int_equal(h_exec(c, "INSERT INTO sess_clean VALUES (1, 0) ON CONFLICT DO NOTHING"), 0);
    long before = h_metric_now(g_mport, series);
    assert_true(before >= 0);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(h_exec(c, "SELECT 1"), 0);
        assert_int_equal(h_exec(c, "BEGIN; UPDATE sess_clean SET n = n + 1 WHERE id = 1; COMMIT"), 0);
        PGresult *r = PQexecParams(c, "SELECT n FROM sess_clean WHERE id = $1", 1, NULL, (const char *[]){ "1" },
                                   NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
    }
    /* large objects through libpq's lo_* functions (fast-path FunctionCalls of known OIDs) */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(h_exec(c, "BEGIN"), 0);
        Oid lo = lo_creat(c, 0x00020000 | 0x00040000);   /* INV_WRITE | INV_READ */
        assert_true(lo != 0);
        int fd = lo_open(c, lo, 0x00020000 | 0x00040000);
        assert_true(fd >= 0);
        assert_int_equal(lo_write(c, fd, "pglane", 6), 6);
        assert_int_equal(lo_close(c, fd), 0);
        assert_int_equal(lo_unlink(c, lo), 1);
        assert_int_equal(h_exec(c, "COMMIT"), 0);
    }
    assert_int_equal(h_metric_now(g_mport, series), before);
    assert_int_equal(h_exec(c, "DO $$BEGIN PERFORM 1; END$$"), 0);
    assert_int_equal(h_exec(c, "SELECT 1"), 0);   /* the check has finished with the transaction */
    assert_int_equal(h_metric_now(g_mport, series), before + 1);
    /* any other fast-path call may change the session: checked (a set_config there follows the
     * client, rows function_call_* of the differential suite) */
    char *oid = h_query1(c, "SELECT 'pg_catalog.int4abs'::regproc::oid");
    assert_non_null(oid);
    PQArgBlock arg = { .len = 4, .isint = 1, .u.integer = -3 };
    int res = 0, rlen = 0;
    PGresult *fr = PQfn(c, (int)strtol(oid, NULL, 10), &res, &rlen, 1, &arg, 1);
    assert_int_equal(PQresultStatus(fr), PGRES_COMMAND_OK);
    assert_int_equal(res, 3);
    PQclear(fr);
    free(oid);
    assert_int_equal(h_exec(c, "SELECT 1"), 0);
    assert_int_equal(h_metric_now(g_mport, series), before + 2);
    assert_int_equal(h_exec(c, "DROP TABLE sess_clean"), 0);
    PQfinish(c);
    h_pass();
}

static void test_hidden_paths_never_reach_next_client(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static const struct {
        const char *sql, *own_check, *own_want;
    } paths[] = {
        { "DO $$BEGIN SET statement_timeout = 0; END$$", "SHOW statement_timeout", "0" },
        { "DO $$BEGIN EXECUTE 'SET statement_timeout = 0'; END$$", "SHOW statement_timeout", "0" },
        { "SELECT no_timeout()", "SHOW statement_timeout", "0" },
        { "SELECT U&\"set\\005fconfig\"('statement_timeout', '0', false)", "SHOW statement_timeout", "0" },
        { "DO $$BEGIN SET ROLE ops; END$$", "SELECT current_user", "ops" },
        { "SET SESSION AUTHORIZATION ops", "SELECT session_user", "ops" },
    };
    struct h_pglane l;
    char conf[4096];

    conf_for(conf, sizeof conf, 1, "statement_timeout = 1s\n", 0);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    for (size_t j = 0; j < 2 * (sizeof paths / sizeof paths[0]); j++) {
        size_t i = j % (sizeof paths / sizeof paths[0]);
        int leave_at_once = j >= sizeof paths / sizeof paths[0];
        PGconn *a = h_connect(&l, NULL);
        H_ASSERT_CONNECTED(a);
        assert_int_equal(h_exec(a, paths[i].sql), 0);
        if (!leave_at_once) {
            char *own = h_query1(a, paths[i].own_check);
            if (!own || strcmp(own, paths[i].own_want) != 0)
                print_error("%s: the client's own next transaction saw \"%s\"\n", paths[i].sql,
                            own ? own : "(null)");
            assert_non_null(own);
            assert_string_equal(own, paths[i].own_want);
            free(own);
        }
        PQfinish(a);

        PGconn *b = h_connect(&l, NULL);
        H_ASSERT_CONNECTED(b);
        PGresult *r = PQexec(b, "SELECT current_setting('statement_timeout'), current_user, session_user");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        if (strcmp(PQgetvalue(r, 0, 0), "1s") != 0 || strcmp(PQgetvalue(r, 0, 1), H_USER) != 0 ||
            strcmp(PQgetvalue(r, 0, 2), H_USER) != 0)
            print_error("%s leaked%s: next client saw statement_timeout %s, current_user %s, session_user %s\n",
                        paths[i].sql, leave_at_once ? " (its client left at once)" : "", PQgetvalue(r, 0, 0),
                        PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
        assert_string_equal(PQgetvalue(r, 0, 0), "1s");
        assert_string_equal(PQgetvalue(r, 0, 1), H_USER);
        assert_string_equal(PQgetvalue(r, 0, 2), H_USER);
        PQclear(r);
        assert_string_equal(h_exec_sqlstate(b, "SELECT pg_sleep(1.5)"), "57014");
        PQfinish(b);
    }
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_settings_follow_each_client),
        H_TEST(test_statement_timeout_follows),
        H_TEST(test_set_config_follows),
        H_TEST(test_many_custom_settings_follow),
        H_TEST(test_check_after_large_result),
        H_TEST(test_reset_all_restores_lane_settings),
        H_TEST(test_temp_table_pins),
        H_TEST(test_advisory_lock_pins),
        H_TEST(test_seed_pins_and_closes),
        H_TEST(test_backend_state_pins_and_closes),
        H_TEST(test_sequence_state_not_shared),
        H_TEST(test_hold_cursor_and_sql_prepare_pin),
        H_TEST(test_session_characteristics_follow),
        H_TEST(test_listen_notify),
        H_TEST(test_listener_leaves),
        H_TEST(test_pin_refuse),
        H_TEST(test_replay_refused_closes_client),
        H_TEST(test_thousand_clients_leave_nothing),
        H_TEST(test_clean_transactions_cost_no_check),
        H_TEST(test_hidden_paths_never_reach_next_client),
    };
    return H_RUN_GROUP("integration: session state in transaction pooling", tests,
                       .pg = &g_pg, .skip_direct = 1, .setup = fixtures);
}
