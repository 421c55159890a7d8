/*
 * Server health and roles (issue 15): the harness's streaming replica, and pglane's health checks of
 * a primary and a replica: roles learned with role = auto, replay lag in bytes and time while the
 * replica's replay is paused, a stopped replica going down (its idle connections closed) and coming
 * back, and a promoted replica becoming the primary without a pglane restart.
 */
#include "tests/integration/harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INTERVAL_MS 200
#define FAILURES 3
/* Slack for a loaded machine on top of the deadlines the issue sets in intervals. */
#define SLACK_MS 3000

static struct h_pg g_pg;        /* the primary */
static struct h_pg g_replica;   /* streaming from g_pg */
static struct h_pglane g_lane;  /* lanes main (server primary) and ro (server replica), role = auto */
static int g_mport;

static int fixtures(void)
{
    char conf[4096], port[16];

    if (h_pg_exec(&g_pg, H_DB, "CREATE TABLE events (id serial PRIMARY KEY, note text);"
                               "ALTER TABLE events OWNER TO " H_USER) != 0)
        return -1;
    if (h_pg_start_replica(&g_replica, &g_pg) != 0)
        return -1;
    g_mport = h_free_port();
    snprintf(port, sizeof port, "%d", g_replica.port);
    snprintf(conf, sizeof conf,
             "[pglane]\n"
             "listen = 127.0.0.1:@PORT@\n"
             "auth_type = md5\n"
             "auth_file = @AUTHFILE@\n"
             "pool_mode = transaction\n"
             "default_lane = main\n"
             "admin_users = app\n"
             "metrics_listen = 127.0.0.1:%d\n"
             "log_level = info\n"
             "health_check_interval = %dms\n"
             "health_check_failures = %d\n"
             "\n[server.primary]\nhost = 127.0.0.1\nport = @PGPORT@\nrole = auto\n"
             "\n[server.replica]\nhost = 127.0.0.1\nport = %s\nrole = auto\n"
             "\n[lane.main]\nserver = primary\nsize = 4\nqueue_timeout = 30s\n"
             "\n[lane.ro]\nserver = replica\nsize = 4\nqueue_timeout = 30s\n"
             "\n[route.ro]\napplication_name = ro\nlane = ro\n",
             g_mport, INTERVAL_MS, FAILURES, port);
    if (h_pglane_start(&g_lane, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_lane);
    return 0;
}

static int teardown(void)
{
    h_pg_stop(&g_replica);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

/* The harness's replica is a hot standby streaming from the primary: a row inserted on the primary
 * can be read on the replica once it has replayed the primary's current LSN, and writes fail there. */
static void test_harness_replica_streams(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *p = h_pg_super(&g_pg, H_DB), *r = h_pg_super(&g_replica, H_DB);
    assert_non_null(p);
    assert_non_null(r);
    assert_int_equal(h_pg_long(r, "SELECT pg_is_in_recovery()::int"), 1);
    assert_int_equal(h_pg_long(p, "SELECT pg_is_in_recovery()::int"), 0);
    assert_int_equal(h_pg_long(r, "SELECT count(*) FROM events WHERE note = 'harness'"), 0);
    assert_int_equal(h_exec(p, "INSERT INTO events (note) VALUES ('harness')"), 0);
    assert_int_equal(h_pg_wait_replay(&g_replica, &g_pg, 10000), 0);
    assert_int_equal(h_pg_long(r, "SELECT count(*) FROM events WHERE note = 'harness'"), 1);
    assert_string_equal(h_exec_sqlstate(r, "INSERT INTO events (note) VALUES ('on the standby')"), "25006");
    PQfinish(p);
    PQfinish(r);
    h_pass();
}

/* The value of column col in the SHOW HEALTH row of server (malloc'd), or NULL. */
static char *health_val(PGconn *adm, const char *server, const char *col)
{
    PGresult *r = PQexec(adm, "SHOW HEALTH");
    char *v = NULL;

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        print_error("SHOW HEALTH: %s\n", PQerrorMessage(adm));
        PQclear(r);
        return NULL;
    }
    int sc = PQfnumber(r, "server"), cc = PQfnumber(r, col);
    if (cc < 0)
        print_error("SHOW HEALTH has no column %s\n", col);
    for (int i = 0; sc >= 0 && cc >= 0 && i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, sc), server) == 0)
            v = strdup(PQgetisnull(r, i, cc) ? "NULL" : PQgetvalue(r, i, cc));
    PQclear(r);
    return v;
}

static long health_long(PGconn *adm, const char *server, const char *col)
{
    char *v = health_val(adm, server, col);
    long n = v && strcmp(v, "NULL") != 0 ? strtol(v, NULL, 10) : -1;

    free(v);
    return n;
}

/* Polls SHOW HEALTH every 50 ms until server's col is want; the milliseconds it took, or -1 after
 * timeout_ms (the last value printed). */
static long health_wait(PGconn *adm, const char *server, const char *col, const char *want, int timeout_ms)
{
    int64_t start = h_now_ms(), deadline = start + timeout_ms;
    char *v = NULL;

    do {
        free(v);
        v = health_val(adm, server, col);
        if (v && strcmp(v, want) == 0) {
            free(v);
            return (long)(h_now_ms() - start);
        }
        h_sleep_ms(50);
    } while (h_now_ms() < deadline);
    print_error("SHOW HEALTH: %s.%s is %s after %d ms, wanted %s\n", server, col, v ? v : "(none)", timeout_ms, want);
    free(v);
    return -1;
}

/* Occurrences of text in the pglane log so far. */
static int log_count(const char *text)
{
    char *log = h_pglane_log(&g_lane);
    int n = 0;

    for (const char *p = log; (p = strstr(p, text)); p++)
        n++;
    free(log);
    return n;
}

/* SHOW SERVERS rows (server connections) whose server column is server. */
static int server_rows(PGconn *adm, const char *server, const char *col, const char *want)
{
    PGresult *r = PQexec(adm, "SHOW SERVERS");
    int n = 0;

    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int sc = PQfnumber(r, "server"), cc = PQfnumber(r, col);
    assert_true(sc >= 0 && cc >= 0);
    /* the health columns end the row, after every column pglane had before */
    assert_true(sc > PQfnumber(r, "cancels"));
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, sc), server) == 0 && (!want || strcmp(PQgetvalue(r, i, cc), want) == 0))
            n++;
    PQclear(r);
    return n;
}

/* Both lanes have a pool (the health check's credentials come from the first client). */
static void touch_lanes(void)
{
    PGconn *m = h_connect_app_ok(&g_lane, "main"), *ro = h_connect_app_ok(&g_lane, "ro");
    char *v = h_query1(ro, "SELECT pg_is_in_recovery()");
    assert_non_null(v);
    assert_string_equal(v, "t");
    free(v);
    v = h_query1(m, "SELECT pg_is_in_recovery()");
    assert_non_null(v);
    assert_string_equal(v, "f");
    free(v);
    PQfinish(m);
    PQfinish(ro);
}

/* With role = auto, pglane learns which server is the primary and which the replica; SHOW HEALTH,
 * the health columns of SHOW SERVERS, SHOW CONFIG and /metrics say so. */
static void test_roles_learned(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane);
    touch_lanes();
    assert_true(health_wait(adm, "primary", "role", "primary", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    assert_true(health_wait(adm, "replica", "role", "replica", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    assert_true(health_wait(adm, "primary", "state", "up", SLACK_MS) >= 0);
    assert_true(health_wait(adm, "replica", "state", "up", SLACK_MS) >= 0);
    char *v = health_val(adm, "replica", "configured_role");
    assert_non_null(v);
    assert_string_equal(v, "auto");
    free(v);
    assert_int_equal(health_long(adm, "primary", "lag_bytes"), 0);
    assert_int_equal(health_long(adm, "primary", "lag_ms"), 0);
    assert_true(health_long(adm, "replica", "lag_bytes") >= 0);
    assert_true(health_long(adm, "primary", "checks") >= 1);

    /* the idle pooled connections carry their server's health */
    assert_true(server_rows(adm, "replica", "role", "replica") >= 1);
    assert_true(server_rows(adm, "replica", "server_state", "up") >= 1);
    assert_true(server_rows(adm, "primary", "role", "primary") >= 1);

    PGresult *r = PQexec(adm, "SHOW CONFIG");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int found = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        if (strcmp(PQgetvalue(r, i, 0), "server.replica.role") == 0 && strcmp(PQgetvalue(r, i, 1), "auto") == 0)
            found |= 1;
        if (strcmp(PQgetvalue(r, i, 0), "health_check_interval") == 0 && strcmp(PQgetvalue(r, i, 1), "200ms") == 0)
            found |= 2;
        if (strcmp(PQgetvalue(r, i, 0), "health_check_failures") == 0 && strcmp(PQgetvalue(r, i, 1), "3") == 0)
            found |= 4;
    }
    PQclear(r);
    assert_int_equal(found, 7);

    assert_int_equal(h_metric_now(g_mport, "pglane_server_up{server=\"primary\"}"), 1);
    assert_int_equal(h_metric_now(g_mport, "pglane_server_up{server=\"replica\"}"), 1);
    assert_int_equal(h_metric_now(g_mport, "pglane_replica_conflicts_total{server=\"replica\"}"), 0);
    assert_true(h_metric_now(g_mport, "pglane_replica_lag_bytes{server=\"replica\"}") >= 0);
    char *log = h_pglane_log(&g_lane);
    assert_non_null(strstr(log, "server replica: role replica"));
    assert_non_null(strstr(log, "server primary: role primary"));
    free(log);
    PQfinish(adm);
    h_pass();
}

/* One health connection per checked server, one query per interval on it: pglane_health_checks_total
 * grows by at most one per interval and server, and each server sees exactly one pglane-health
 * backend. */
static void test_one_check_per_interval(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *p = h_pg_super(&g_pg, H_DB), *r = h_pg_super(&g_replica, H_DB);
    assert_non_null(p);
    assert_non_null(r);
    touch_lanes();
    assert_true(health_wait(adm, "replica", "state", "up", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    static const char q[] = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pglane-health'";
    assert_int_equal(h_pg_wait_long(p, q, 1, SLACK_MS), 1);
    assert_int_equal(h_pg_wait_long(r, q, 1, SLACK_MS), 1);

    long c0 = h_metric_now(g_mport, "pglane_health_checks_total");
    int64_t t0 = h_now_ms();
    h_sleep_ms(10 * INTERVAL_MS);   /* the measured window, not a synchronisation */
    long c1 = h_metric_now(g_mport, "pglane_health_checks_total");
    int64_t elapsed = h_now_ms() - t0;
    long most = 2 * (elapsed / INTERVAL_MS + 1);
    assert_true(c0 >= 2);
    if (c1 - c0 > most || c1 - c0 < 2)
        print_error("%ld checks in %lld ms for 2 servers at %d ms\n", c1 - c0, (long long)elapsed, INTERVAL_MS);
    assert_true(c1 - c0 <= most);
    assert_true(c1 - c0 >= 2);
    assert_int_equal(h_pg_long(p, q), 1);
    assert_int_equal(h_pg_long(r, q), 1);
    PQfinish(p);
    PQfinish(r);
    PQfinish(adm);
    h_pass();
}

/* health_check_interval = 0 turns the checks off even on servers with a role; and a server without
 * a role key is not checked (existing single-server configurations open no extra connection). */
static void test_checks_off(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static const char *const variants[] = { "health_check_interval = 0\n", "health_check_interval = 20ms\n" };
    for (int v = 0; v < 2; v++) {
        struct h_pglane l;
        char conf[2048], port[16], extra[256];
        int mport = h_free_port();

        snprintf(port, sizeof port, "%d", g_replica.port);
        snprintf(extra, sizeof extra, "admin_users = app\nmetrics_listen = 127.0.0.1:%d\n%s", mport, variants[v]);
        h_conf(conf, sizeof conf, "transaction", 2, "md5", extra);
        if (v == 0) {       /* interval 0: the replica's role key is there and still nothing is checked */
            size_t n = strlen(conf);
            snprintf(conf + n, sizeof conf - n, "\n[server.replica]\nhost = 127.0.0.1\nport = %s\nrole = replica\n"
                     "\n[lane.ro]\nserver = replica\nsize = 2\n\n[route.ro]\napplication_name = ro\nlane = ro\n", port);
        }
        assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
        PGconn *c = h_connect(&l, "application_name=ro");
        H_ASSERT_CONNECTED(c);
        assert_int_equal(h_exec(c, "SELECT 1"), 0);
        PGconn *adm = h_console(&l, NULL);
        H_ASSERT_CONNECTED(adm);
        /* well past the first check's moment (at once, then every 20 ms in the second variant) */
        h_sleep_ms(300);
        assert_int_equal(h_metric_now(mport, "pglane_health_checks_total"), 0);
        assert_int_equal(h_metric_now(mport, "pglane_server_up{server=\"pg\"}"), -1);
        char *st = health_val(adm, "pg", "state");
        assert_non_null(st);
        assert_string_equal(st, "unchecked");
        free(st);
        if (v == 0) {
            st = health_val(adm, "replica", "role");
            assert_non_null(st);
            assert_string_equal(st, "replica");    /* configured */
            free(st);
        }
        PQfinish(c);
        PQfinish(adm);
        h_pglane_stop(&l);
    }
    h_pass();
}

/* Replay paused on the replica, writes on the primary: lag_bytes > 0 and lag_ms grows; resumed: back
 * to 0. */
static void test_lag_while_replay_paused(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *rs = h_pg_super(&g_replica, H_DB);
    PGconn *w = h_connect_app_ok(&g_lane, "main");
    assert_non_null(rs);
    touch_lanes();
    assert_int_equal(h_exec(w, "INSERT INTO events (note) VALUES ('before the pause')"), 0);
    assert_int_equal(h_pg_wait_replay(&g_replica, &g_pg, 10000), 0);
    assert_true(health_wait(adm, "replica", "lag_ms", "0", 2 * INTERVAL_MS + SLACK_MS) >= 0);

    assert_int_equal(h_exec(rs, "SELECT pg_wal_replay_pause()"), 0);
    int64_t paused = h_now_ms();
    assert_int_equal(h_exec(w, "INSERT INTO events (note) SELECT 'paused ' || i FROM generate_series(1, 1000) i"), 0);
    /* lag in bytes and time within two intervals of the write being received */
    int64_t deadline = h_now_ms() + 2 * INTERVAL_MS + SLACK_MS;
    long lb = -1, lm = -1;
    while (h_now_ms() < deadline) {
        lb = health_long(adm, "replica", "lag_bytes");
        lm = health_long(adm, "replica", "lag_ms");
        if (lb > 0 && lm > 0)
            break;
        h_sleep_ms(50);
    }
    if (!(lb > 0 && lm > 0))
        print_error("lag_bytes %ld lag_ms %ld\n", lb, lm);
    assert_true(lb > 0 && lm > 0);
    /* lag_ms grows with the time replay stays paused */
    long first = lm;
    assert_true(first <= h_now_ms() - paused + 10000);
    deadline = h_now_ms() + 4 * INTERVAL_MS + SLACK_MS;
    while ((lm = health_long(adm, "replica", "lag_ms")) < first + 2 * INTERVAL_MS && h_now_ms() < deadline)
        h_sleep_ms(50);
    assert_true(lm >= first + 2 * INTERVAL_MS);
    assert_true(health_long(adm, "replica", "lag_bytes") > 0);
    assert_true(h_metric_now(g_mport, "pglane_replica_lag_bytes{server=\"replica\"}") > 0);
    char *body = h_metrics_body(g_mport);
    assert_non_null(strstr(body, "pglane_replica_lag_seconds{server=\"replica\"} "));
    free(body);
    /* the primary's lag stays 0 */
    assert_int_equal(health_long(adm, "primary", "lag_bytes"), 0);

    assert_int_equal(h_exec(rs, "SELECT pg_wal_replay_resume()"), 0);
    assert_int_equal(h_pg_wait_replay(&g_replica, &g_pg, 10000), 0);
    assert_true(health_wait(adm, "replica", "lag_ms", "0", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    assert_true(health_wait(adm, "replica", "lag_bytes", "0", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    assert_int_equal(h_pg_long(rs, "SELECT count(*) FROM events WHERE note LIKE 'paused %'"), 1000);
    PQfinish(rs);
    PQfinish(w);
    PQfinish(adm);
    h_pass();
}

/* The replica stopped: down within health_check_failures + 1 intervals, its idle pooled connections
 * closed, the primary still up; started again: up. */
static void test_replica_down_and_up(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane);
    touch_lanes();
    assert_true(health_wait(adm, "replica", "state", "up", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    assert_true(server_rows(adm, "replica", "state", "idle") >= 1);
    long downs = health_long(adm, "replica", "downs");
    int down_lines = log_count("server replica is down"), up_lines = log_count("server replica is up again");

    assert_int_equal(h_pg_ctl(&g_replica, "stop"), 0);
    long took = health_wait(adm, "replica", "state", "down", (FAILURES + 1) * INTERVAL_MS + SLACK_MS);
    assert_true(took >= 0);
    fprintf(stderr, "replica down after %ld ms (interval %d ms, failures %d)\n", took, INTERVAL_MS, FAILURES);
    assert_int_equal(server_rows(adm, "replica", "state", NULL), 0);   /* no idle connection to it is left */
    assert_int_equal(health_long(adm, "replica", "downs"), downs + 1);
    assert_int_equal(h_metric_now(g_mport, "pglane_server_up{server=\"replica\"}"), 0);
    char *v = health_val(adm, "primary", "state");
    assert_non_null(v);
    assert_string_equal(v, "up");
    free(v);
    /* logged once, however many checks fail while it stays down */
    long failures = health_long(adm, "replica", "failures");
    int64_t deadline = h_now_ms() + 4 * INTERVAL_MS + SLACK_MS;
    while (health_long(adm, "replica", "failures") < failures + 2 && h_now_ms() < deadline)
        h_sleep_ms(50);
    assert_true(health_long(adm, "replica", "failures") >= failures + 2);
    assert_int_equal(log_count("server replica is down"), down_lines + 1);

    assert_int_equal(h_pg_ctl(&g_replica, "start"), 0);
    assert_true(health_wait(adm, "replica", "state", "up", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    v = health_val(adm, "replica", "role");
    assert_non_null(v);
    assert_string_equal(v, "replica");
    free(v);
    assert_int_equal(h_metric_now(g_mport, "pglane_server_up{server=\"replica\"}"), 1);
    assert_int_equal(log_count("server replica is up again"), up_lines + 1);
    assert_int_equal(h_pg_wait_replay(&g_replica, &g_pg, 30000), 0);
    PQfinish(adm);
    h_pass();
}

/* The replica hangs (pglane's backends on it stopped with SIGSTOP): its checks get no answer, it is
 * down after health_check_failures intervals and pglane closes its idle pooled connection itself;
 * SIGCONT: up again. */
static void test_replica_hung(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *rs = h_pg_super(&g_replica, "postgres");
    assert_non_null(rs);
    touch_lanes();
    assert_true(health_wait(adm, "replica", "state", "up", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    assert_true(server_rows(adm, "replica", "state", "idle") >= 1);
    /* the health connection is made at the first interval after a pool gave the credentials */
    PGresult *r = NULL;
    int n = 0;
    for (int64_t until = h_now_ms() + 2 * INTERVAL_MS + SLACK_MS; n < 2 && h_now_ms() < until;) {
        PQclear(r);
        r = PQexec(rs, "SELECT pid FROM pg_stat_activity WHERE usename = '" H_USER "'");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        if ((n = PQntuples(r)) < 2)
            h_sleep_ms(20);   /* polling interval */
    }
    pid_t pids[16];
    if (n < 2 || n > 16)
        print_error("%d backends of " H_USER " on the replica\n", n);
    assert_true(n >= 2 && n <= 16);    /* the health connection and the pooled one(s) */
    for (int i = 0; i < n; i++)
        pids[i] = (pid_t)strtol(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);
    int lines = log_count("server replica is down (no answer within health_check_interval");

    for (int i = 0; i < n; i++)
        assert_int_equal(kill(pids[i], SIGSTOP), 0);
    long took = health_wait(adm, "replica", "state", "down", (FAILURES + 1) * INTERVAL_MS + SLACK_MS);
    int idle_left = server_rows(adm, "replica", "state", "idle");
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGCONT);
    assert_true(took >= 0);
    assert_true(took >= (FAILURES - 1) * INTERVAL_MS);    /* not before the failed checks */
    assert_int_equal(idle_left, 0);
    assert_int_equal(log_count("server replica is down (no answer within health_check_interval"), lines + 1);
    char *log = h_pglane_log(&g_lane), *last = NULL;
    for (char *p = log; (p = strstr(p, "server replica is down (no answer")); p++)
        last = p;
    assert_non_null(last);
    last[strcspn(last, "\n")] = '\0';
    /* pglane closed the idle connection itself (the stopped backends could not); with several workers
     * the checking worker's line counts its own connections (idle_left above counts every worker's) */
    assert_non_null(strstr(last, "idle connection(s) closed"));
    if (strstr(last, "): 0 idle connection(s) closed") && h_workers() <= 1)
        print_error("%s\n", last);
    assert_true(!strstr(last, "): 0 idle connection(s) closed") || h_workers() > 1);
    free(log);
    assert_true(health_wait(adm, "replica", "state", "up", 2 * INTERVAL_MS + SLACK_MS + 5000) >= 0);
    PQfinish(rs);
    PQfinish(adm);
    h_pass();
}

/* Rewrites g_lane's ini with `from` replaced by `to` (the original when from is NULL) and reloads. */
static void reload_with(PGconn *adm, const char *from, const char *to)
{
    static char *original;
    char *text = h_read_file(g_lane.conf_path);
    assert_non_null(text);
    if (!original)
        original = strdup(text);
    if (from) {
        char buf[8192];
        snprintf(buf, sizeof buf, "%s", original);
        h_conf_replace(buf, sizeof buf, from, to);
        assert_int_equal(h_write_file(g_lane.conf_path, buf), 0);
    } else {
        assert_int_equal(h_write_file(g_lane.conf_path, original), 0);
    }
    free(text);
    assert_int_equal(h_exec(adm, "RELOAD"), 0);
}

/* A reload keeps what was learned about the servers it keeps; a configured role wins over what the
 * server says (logged once); health_check_interval = 0 closes the health connections at once. */
static void test_reload(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *p = h_pg_super(&g_pg, H_DB);
    assert_non_null(p);
    touch_lanes();
    assert_true(health_wait(adm, "replica", "role", "replica", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    long checks = health_long(adm, "replica", "checks");
    assert_true(checks >= 1);

    char from[128], to[128];
    snprintf(from, sizeof from, "port = %d\nrole = auto", g_replica.port);
    snprintf(to, sizeof to, "port = %d\nrole = primary", g_replica.port);
    int lines = log_count("server replica is configured as primary but reports being in recovery");
    reload_with(adm, from, to);
    char *v = health_val(adm, "replica", "role");       /* at once, before any check */
    assert_non_null(v);
    assert_string_equal(v, "primary");
    free(v);
    v = health_val(adm, "replica", "configured_role");
    assert_non_null(v);
    assert_string_equal(v, "primary");
    free(v);
    assert_true(health_long(adm, "replica", "checks") >= checks);   /* kept by name */
    long c0 = health_long(adm, "replica", "checks");
    int64_t deadline = h_now_ms() + 4 * INTERVAL_MS + SLACK_MS;
    while (health_long(adm, "replica", "checks") < c0 + 3 && h_now_ms() < deadline)
        h_sleep_ms(50);
    assert_true(health_long(adm, "replica", "checks") >= c0 + 3);
    assert_int_equal(log_count("server replica is configured as primary but reports being in recovery"), lines + 1);
    v = health_val(adm, "replica", "role");
    assert_non_null(v);
    assert_string_equal(v, "primary");
    free(v);

    /* checks off: the health connections close, nothing more is sent */
    reload_with(adm, "health_check_interval = 200ms", "health_check_interval = 0");
    static const char q[] = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pglane-health'";
    assert_int_equal(h_pg_wait_long(p, q, 0, SLACK_MS), 0);
    v = health_val(adm, "primary", "state");
    assert_non_null(v);
    assert_string_equal(v, "unchecked");
    free(v);
    v = health_val(adm, "replica", "lag_bytes");    /* nothing known any more */
    assert_non_null(v);
    assert_string_equal(v, "NULL");
    free(v);
    long t0 = h_metric_now(g_mport, "pglane_health_checks_total");
    h_sleep_ms(3 * INTERVAL_MS);    /* a window in which nothing may happen */
    assert_int_equal(h_metric_now(g_mport, "pglane_health_checks_total"), t0);

    /* back: checked again, the role learned again */
    reload_with(adm, NULL, NULL);
    assert_true(health_wait(adm, "replica", "role", "replica", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    assert_true(health_wait(adm, "primary", "state", "up", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    assert_int_equal(h_pg_wait_long(p, q, 1, SLACK_MS), 1);
    PQfinish(adm);
    PQfinish(p);
    h_pass();
}

/* Failover: the primary stopped and the replica promoted; pglane (no restart, no reload) sees the
 * replica's role become primary within two intervals of the promotion. */
static void test_promoted_replica_becomes_primary(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane);
    touch_lanes();
    assert_true(health_wait(adm, "replica", "role", "replica", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    pid_t pid = g_lane.pid;
    int reloads = log_count("reload");

    assert_int_equal(h_pg_ctl(&g_pg, "stop"), 0);
    assert_true(health_wait(adm, "primary", "state", "down", (FAILURES + 1) * INTERVAL_MS + SLACK_MS) >= 0);
    assert_int_equal(h_pg_promote(&g_replica), 0);
    long took = health_wait(adm, "replica", "role", "primary", 2 * INTERVAL_MS + SLACK_MS);
    assert_true(took >= 0);
    fprintf(stderr, "promoted replica seen as primary after %ld ms\n", took);
    assert_int_equal(health_long(adm, "replica", "lag_bytes"), 0);
    assert_int_equal(g_lane.pid, pid);
    assert_true(h_pglane_alive(&g_lane));
    char *log = h_pglane_log(&g_lane);
    assert_non_null(strstr(log, "server replica: role changed from replica to primary"));
    free(log);
    assert_int_equal(log_count("reload"), reloads);
    /* writes reach the promoted server through its lane */
    PGconn *ro = h_connect_app_ok(&g_lane, "ro");
    assert_int_equal(h_exec(ro, "INSERT INTO events (note) VALUES ('after the promotion')"), 0);
    PQfinish(ro);
    /* the old primary comes back (as a second primary, as pg_ctl starts it) for a clean teardown */
    assert_int_equal(h_pg_ctl(&g_pg, "start"), 0);
    assert_true(health_wait(adm, "primary", "state", "up", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    PQfinish(adm);
    h_pass();
}

H_CLEAN_EXIT_TEST(test_clean_exit, &g_lane)

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_harness_replica_streams),
        H_TEST(test_roles_learned),
        H_TEST(test_one_check_per_interval),
        H_TEST(test_checks_off),
        H_TEST(test_lag_while_replay_paused),
        H_TEST(test_replica_down_and_up),
        H_TEST(test_replica_hung),
        H_TEST(test_reload),
        H_TEST(test_promoted_replica_becomes_primary),
        H_TEST(test_clean_exit),
    };
    return H_RUN_GROUP("integration_replica_health", tests, .pg = &g_pg, .skip_direct = 1, .setup = fixtures,
                       .teardown = teardown);
}
