/*
 * Observability issue: the admin console (every SHOW as a table in psql, control commands, refusal
 * of non-admins), the Prometheus endpoint (checked by a strict exposition-format parser and by
 * promtool when installed), the lane-attributed lock graph and the contention guard.
 */
#include "tests/integration/harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/proto.h"
#include "tests/integration/prom_check.h"

static struct h_pg g_pg;
static struct h_pglane g_log;      /* guard = log, auth md5: console, metrics, lock graph */
static struct h_pglane g_cancel;   /* guard = cancel, auth scram */
static int g_log_mport, g_cancel_mport;

static void conf_for(char *buf, size_t n, const char *auth, const char *guard, int mport)
{
    snprintf(buf, n,
             "[pglane]\n"
             "listen = 127.0.0.1:@PORT@\n"
             "auth_type = %s\n"
             "auth_file = @AUTHFILE@\n"
             "pool_mode = transaction\n"
             "default_lane = oltp\n"
             "admin_users = app\n"
             "metrics_listen = 127.0.0.1:%d\n"
             "log_slower_than = 400ms\n"
             "log_level = info\n"
             "\n[server.pg]\nhost = 127.0.0.1\nport = @PGPORT@\n"
             "\n[lane.oltp]\nserver = pg\nsize = 4\nqueue_timeout = 30s\n"
             "protect = yes\nguard = %s\nguard_wait = 250ms\n"
             "\n[lane.analytics]\nserver = pg\nsize = 2\nqueue_timeout = 30s\npreemptible = yes\n"
             "\n[route.reports]\napplication_name = report-*\nlane = analytics\n",
             auth, mport, guard);
}

static int fixtures(void)
{
    char conf[4096];

    if (h_pg_exec(&g_pg, H_DB, "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);"
                               "INSERT INTO t SELECT i, 0 FROM generate_series(1, 20) i;"
                               "ALTER TABLE t OWNER TO " H_USER) != 0)
        return -1;
    g_log_mport = h_free_port();
    conf_for(conf, sizeof conf, "md5", "log", g_log_mport);
    if (h_pglane_start(&g_log, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_log);
    g_cancel_mport = h_free_port();
    conf_for(conf, sizeof conf, "scram-sha-256", "cancel", g_cancel_mport);
    if (h_pglane_start(&g_cancel, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_cancel);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static PGconn *client(const struct h_pglane *l, const char *app)
{
    return h_connect_app(l, app);
}

/* Runs psql -c cmd against the console; returns its output (malloc'd), asserting exit code 0. */
static char *psql(const struct h_pglane *l, const char *cmd)
{
    char ci[512], *out = NULL;

    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=" H_USER " dbname=pglane", l->port);
    const char *argv[] = { "psql", "-X", "-d", ci, "-c", cmd, NULL };
    const char *env[] = { "PGPASSWORD=" H_PASSWORD, "PGCONNECT_TIMEOUT=5", NULL };
    int rc = h_run(argv, env, 20000, &out);
    if (rc != 0)
        print_error("psql -c \"%s\" exited %d:\n%s\n", cmd, rc, out ? out : "");
    assert_int_equal(rc, 0);
    return out;
}

/* psql prints a table: a header line containing every column, a separator and "(N rows)". */
static void assert_table(const char *out, const char *const *cols)
{
    for (int i = 0; cols[i]; i++) {
        if (!strstr(out, cols[i]))
            print_error("column %s missing in:\n%s\n", cols[i], out);
        assert_non_null(strstr(out, cols[i]));
    }
    assert_non_null(strstr(out, "-+-"));
    assert_true(strstr(out, " row)") || strstr(out, " rows)"));
}

static void test_console_tables(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    /* Some traffic in both lanes first, so that the tables have rows. */
    PGconn *o = client(&g_log, "web"), *a = client(&g_log, "report-monthly");
    H_ASSERT_CONNECTED(o);
    H_ASSERT_CONNECTED(a);
    assert_int_equal(h_exec(o, "SELECT count(*) FROM t"), 0);
    assert_int_equal(h_exec(a, "SELECT count(*) FROM t"), 0);
    assert_int_equal(h_exec(o, "BEGIN"), 0);       /* keeps a server attached for SHOW SERVERS */
    assert_int_equal(h_exec(o, "SELECT 1"), 0);

    static const struct {
        const char *cmd;
        const char *cols[6];
        const char *row;
    } shows[] = {
        { "SHOW LANES", { "lane", "clients_waiting", "servers_idle", "longest_wait_ms", "tx_p99_ms" }, "analytics" },
        { "show clients;", { "id", "addr", "application_name", "lane", "server_id" }, "report-monthly" },
        { "SHOW SERVERS", { "backend_pid", "lane", "client_id", "fingerprint", "query_ms" }, "active" },
        { "SHOW STATS", { "transactions", "query_p95_ms", "wait_avg_ms", "errors" }, "oltp" },
        { "SHOW ROUTES", { "route", "lane", "criteria", "hits" }, "application_name=report-*" },
        { "SHOW QUERIES", { "fingerprint", "query", "calls", "p95_ms", "max_ms" }, NULL },
        { "SHOW BLOCKING", { "waiter_pid", "waiter_lane", "blocker_lane", "lock_mode", "relation" }, NULL },
        { "SHOW GUARD", { "lane", "protected_lane", "action", "count" }, NULL },
        { "SHOW CONFIG", { "key", "value" }, "lane.oltp.guard" },
        { "SHOW STAGES", { "stage", "samples", "total_us", "avg_us", "share" }, "client_scan" },
    };
    for (size_t i = 0; i < sizeof shows / sizeof shows[0]; i++) {
        char *out = psql(&g_log, shows[i].cmd);
        assert_table(out, shows[i].cols);
        if (shows[i].row && !strstr(out, shows[i].row))
            print_error("%s: expected %s in:\n%s\n", shows[i].cmd, shows[i].row, out);
        if (shows[i].row)
            assert_non_null(strstr(out, shows[i].row));
        assert_null(strstr(out, H_PASSWORD));       /* never a secret */
        free(out);
    }
    assert_int_equal(h_exec(o, "COMMIT"), 0);
    PQfinish(o);
    PQfinish(a);
    h_pass();
}


static void test_console_commands(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *c = h_console(&g_log, NULL);
    H_ASSERT_CONNECTED(c);

    /* An unknown command: 42601 with a hint, and the session goes on. */
    PGresult *r = PQexec(c, "SHOW NONSENSE");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42601");
    assert_non_null(strstr(PQresultErrorField(r, PG_DIAG_MESSAGE_HINT), "SHOW LANES"));
    PQclear(r);
    r = PQexec(c, "show lanes");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 2);
    assert_string_equal(PQfname(r, 0), "lane");
    assert_int_equal(PQftype(r, 0), 25);
    PQclear(r);

    /* PAUSE: a new transaction of the lane waits; RESUME lets it through. */
    assert_int_equal(h_exec(c, "PAUSE oltp"), 0);
    PGconn *o = client(&g_log, "web");
    H_ASSERT_CONNECTED(o);
    assert_int_equal(PQsendQuery(o, "SELECT 7"), 1);
    assert_int_equal(h_wait_result(o, 700), -1);     /* still queued */
    r = PQexec(c, "SHOW LANES");
    assert_string_equal(PQgetvalue(r, 0, 1), "paused");
    assert_string_equal(PQgetvalue(r, 0, 4), "1");   /* clients_waiting */
    PQclear(r);
    /* A queued client that hangs up leaves the queue at once, not when a server frees up
     * (queued clients keep reading). */
    PGconn *gone = client(&g_log, "web");
    H_ASSERT_CONNECTED(gone);
    assert_int_equal(PQsendQuery(gone, "SELECT 8"), 1);
    assert_int_equal(h_show_wait(c, "SHOW LANES", "oltp", "clients_waiting", 2, 5000), 2);
    PQfinish(gone);
    assert_int_equal(h_show_wait(c, "SHOW LANES", "oltp", "clients_waiting", 1, 5000), 1);
    assert_int_equal(h_exec(c, "RESUME"), 0);
    assert_int_equal(h_wait_result(o, 5000), 0);
    r = PQgetResult(o);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "7");
    PQclear(r);
    while ((r = PQgetResult(o)))
        PQclear(r);
    assert_string_equal(h_exec_sqlstate(c, "PAUSE nosuchlane"), "42704");

    /* KILL: the client is closed with 57P01 "terminated by pglane admin". */
    r = PQexec(c, "SHOW CLIENTS");
    const char *victim = NULL;
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 4), "web") == 0)
            victim = PQgetvalue(r, i, 0);
    assert_non_null(victim);
    char kill[64];
    snprintf(kill, sizeof kill, "KILL %s", victim);
    PQclear(r);
    assert_int_equal(h_exec(c, kill), 0);
    r = PQexec(o, "SELECT 1");
    assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_non_null(strstr(PQerrorMessage(o), "terminated by pglane admin"));
    PQclear(r);
    PQfinish(o);

    /* RELOAD of an unchanged file succeeds; the console still answers afterwards. */
    assert_int_equal(h_exec(c, "RELOAD"), 0);
    assert_int_equal(h_exec(c, "SHOW CONFIG"), 0);
    PQfinish(c);
    h_pass();
}

/* A non-admin gets 42501 after authenticating (md5, by hand, to read the SQLSTATE). */
static void test_non_admin_refused(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    uint8_t buf[256], *body = NULL;
    uint32_t len = 0;
    char sqlstate[6] = "", resp[PROTO_MD5_LEN];
    int fd = h_raw_connect(g_log.port);
    assert_true(fd >= 0);
    size_t n = h_raw_startup(buf, sizeof buf, 196608, H_MD5_USER, "pglane");
    assert_int_equal(h_raw_send(fd, buf, n), 0);
    assert_int_equal(h_raw_read_msg(fd, 5000, &body, &len), 'R');
    assert_int_equal(len, 8);
    assert_int_equal(proto_get_u32(body), 5);         /* MD5 */
    proto_md5_response(H_MD5_USER, H_MD5_PASSWORD, body + 4, resp);
    free(body);
    struct proto_buf p;
    proto_buf_init(&p);
    proto_build_password(&p, resp);
    assert_int_equal(h_raw_send(fd, p.data, p.len), 0);
    proto_buf_free(&p);
    assert_int_equal(h_raw_expect_error_or_close(fd, 5000, sqlstate), 1);
    assert_string_equal(sqlstate, "42501");
    close(fd);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

static char *get_metrics(int port)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
    char *resp = h_http(port, req, sizeof req - 1, 5000);
    assert_non_null(resp);
    assert_non_null(strstr(resp, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(resp, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(resp, "Connection: close"));
    char *body = strstr(resp, "\r\n\r\n");
    assert_non_null(body);
    char *copy = strdup(body + 4);
    free(resp);
    return copy;
}

static void promtool_check(const char *text)
{
    if (access("/usr/bin/promtool", X_OK) != 0) {
        fprintf(stderr, "note: promtool not installed; the strict test parser alone checked /metrics\n");
        return;
    }
    char path[H_PATH], cmd[H_PATH + 64], *out = NULL;
    snprintf(path, sizeof path, "%s/metrics.txt", h_scratch_dir());
    assert_int_equal(h_write_file(path, text), 0);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    const char *argv[] = { "sh", "-c", cmd, NULL };
    int rc = h_run(argv, NULL, 20000, &out);
    if (rc != 0)
        print_error("promtool check metrics failed (%d):\n%s\n", rc, out ? out : "");
    assert_int_equal(rc, 0);
    free(out);
}

static void test_metrics(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *o = client(&g_log, "web"), *a = client(&g_log, "report-x");
    H_ASSERT_CONNECTED(o);
    H_ASSERT_CONNECTED(a);
    for (int i = 0; i < 20; i++)
        assert_int_equal(h_exec(o, "SELECT v FROM t WHERE id = 5"), 0);
    assert_int_equal(h_exec(a, "SELECT sum(v) FROM t"), 0);
    assert_string_equal(h_exec_sqlstate(o, "SELECT 1/0"), "22012");

    char *m = get_metrics(g_log_mport), err[512] = "";
    if (prom_check(m, err, sizeof err) != 0)
        print_error("/metrics is not valid exposition text: %s\n%s\n", err, m);
    assert_int_equal(prom_check(m, err, sizeof err), 0);
    promtool_check(m);
    if (getenv("PGLANE_TEST_VERBOSE"))
        fprintf(stderr, "%s", m);
    assert_non_null(strstr(m, "pglane_lane_query_duration_seconds_bucket{lane=\"oltp\",le=\"+Inf\"}"));
    assert_non_null(strstr(m, "pglane_errors_total{lane=\"oltp\",class=\"22\"} 1"));
    assert_non_null(strstr(m, "pglane_route_hits_total{route=\"reports\",lane=\"analytics\"}"));
    assert_non_null(strstr(m, "pglane_servers{lane=\"analytics\",database=\"" H_DB "\",user=\"" H_USER "\",state=\"idle\"}"));
    assert_non_null(strstr(m, "pglane_clients{state=\"idle\"}"));
    assert_non_null(strstr(m, "pglane_reloads_total{result=\"success\"}"));
    free(m);

    /* Anything else: 405, 404, 400; overlong headers are dropped; the endpoint keeps serving. */
    static const struct { const char *req; const char *status; } bad[] = {
        { "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405 " },
        { "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 " },
        { "GET /metricsx HTTP/1.0\r\n\r\n", "HTTP/1.1 404 " },
        { "hello there\r\n\r\n", "HTTP/1.1 400 " },
        { "GET /metrics SPDY/9\r\n\r\n", "HTTP/1.1 400 " },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *resp = h_http(g_log_mport, bad[i].req, strlen(bad[i].req), 5000);
        assert_non_null(resp);
        if (strncmp(resp, bad[i].status, strlen(bad[i].status)) != 0)
            print_error("%s -> %s\n", bad[i].req, resp);
        assert_int_equal(strncmp(resp, bad[i].status, strlen(bad[i].status)), 0);
        free(resp);
    }
    char *big = malloc(20000);
    memset(big, 'A', 20000);
    memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
    char *resp = h_http(g_log_mport, big, 20000, 5000);
    assert_non_null(resp);
    assert_int_equal(strncmp(resp, "HTTP/1.1 431 ", 13), 0);   /* headers over 8 kB */
    free(resp);
    free(big);
    m = get_metrics(g_log_mport);
    assert_int_equal(prom_check(m, err, sizeof err), 0);
    free(m);
    /* The proxy itself kept working. */
    assert_int_equal(h_exec(o, "SELECT 1"), 0);
    PQfinish(o);
    PQfinish(a);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

/* An analytics-lane transaction that holds the row lock of t.id = id, left idle in transaction. */
static PGconn *hold_row(const struct h_pglane *l, int id)
{
    char sql[128];
    PGconn *a = client(l, "report-monthly");
    H_ASSERT_CONNECTED(a);
    snprintf(sql, sizeof sql, "UPDATE t SET v = v + 1 WHERE id = %d", id);
    assert_int_equal(h_exec(a, "BEGIN"), 0);
    assert_int_equal(h_exec(a, sql), 0);
    return a;
}

/* Starts an OLTP-lane UPDATE of t.id = id (it will wait for the lock). */
static PGconn *start_update(const struct h_pglane *l, int id)
{
    char sql[128];
    PGconn *o = client(l, "web");
    H_ASSERT_CONNECTED(o);
    snprintf(sql, sizeof sql, "UPDATE t SET v = v + 10 WHERE id = %d", id);
    assert_int_equal(PQsendQuery(o, sql), 1);
    return o;
}

static void finish_ok(PGconn *c, int timeout_ms)
{
    assert_int_equal(h_wait_result(c, timeout_ms), 0);
    PGresult *r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        print_error("unexpected: %s\n", PQerrorMessage(c));
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    while ((r = PQgetResult(c)))
        PQclear(r);
}

/* Polls SHOW BLOCKING until a row names waiter lane w and blocker lane b; returns the relation. */
/* The value of series in /metrics as a number (not only an integer), or -1 if absent. */
static double metric_value(int port, const char *series)
{
    char *m = get_metrics(port);
    size_t n = strlen(series);
    double v = -1;

    for (const char *p = m; (p = strstr(p, series)) != NULL; p += n)
        if ((p == m || p[-1] == '\n') && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
    free(m);
    return v;
}

#define LONGEST_WAIT(lane) \
    "pglane_clients_longest_wait_seconds{lane=\"" lane "\",database=\"" H_DB "\",user=\"" H_USER "\"}"
#define WAITING(lane) "pglane_clients_waiting{lane=\"" lane "\",database=\"" H_DB "\",user=\"" H_USER "\"}"

/* pglane_clients_longest_wait_seconds: the age of the oldest client now queued in a pool, 0 when none
 * waits (the queue-wait histogram sees a wait only once it has ended). */
static void test_metrics_longest_wait(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *hold[2], *w = client(&g_log, "report-waiter");
    H_ASSERT_CONNECTED(w);
    for (int i = 0; i < 2; i++) {             /* both connections of the analytics lane, held */
        hold[i] = client(&g_log, "report-holder");
        H_ASSERT_CONNECTED(hold[i]);
        assert_int_equal(h_exec(hold[i], "BEGIN"), 0);
        assert_int_equal(h_exec(hold[i], "SELECT 1"), 0);
    }
    assert_true(metric_value(g_log_mport, LONGEST_WAIT("analytics")) == 0);
    int64_t t0 = h_now_ms();
    assert_int_equal(PQsendQuery(w, "SELECT 'waiter ran'"), 1);
    /* Queued: seen in /metrics, which counts every worker's clients (SHOW LANES counts the console's
     * worker's only). */
    int64_t deadline = h_now_ms() + 5000;
    while (metric_value(g_log_mport, WAITING("analytics")) != 1 && h_now_ms() < deadline)
        usleep(20000);
    assert_true(metric_value(g_log_mport, WAITING("analytics")) == 1);
    double v = -1;
    deadline = h_now_ms() + 5000;
    while ((v = metric_value(g_log_mport, LONGEST_WAIT("analytics"))) < 0.3 && h_now_ms() < deadline)
        usleep(20000);
    double elapsed = (double)(h_now_ms() - t0) / 1000.0;
    print_message("longest wait %.3f s, %.3f s after the query was sent\n", v, elapsed);
    assert_true(v >= 0.3);
    assert_true(v <= elapsed + 0.05);
    assert_true(metric_value(g_log_mport, LONGEST_WAIT("oltp")) <= 0);   /* no oltp client waits */
    assert_int_equal(h_exec(hold[0], "COMMIT"), 0);
    assert_int_equal(h_wait_result(w, 5000), 0);
    PGresult *r = PQgetResult(w);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "waiter ran");
    PQclear(r);
    assert_null(PQgetResult(w));
    assert_true(metric_value(g_log_mport, LONGEST_WAIT("analytics")) == 0);
    assert_int_equal(h_exec(hold[1], "COMMIT"), 0);
    PQfinish(hold[0]);
    PQfinish(hold[1]);
    PQfinish(w);
    h_pass();
}

static char *wait_blocking(const struct h_pglane *l, const char *w, const char *b, int timeout_ms)
{
    PGconn *c = h_console(l, NULL);
    H_ASSERT_CONNECTED(c);
    char *rel = NULL;
    int64_t deadline = h_now_ms() + timeout_ms;
    while (!rel && h_now_ms() < deadline) {
        PGresult *r = PQexec(c, "SHOW BLOCKING");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        int wl = PQfnumber(r, "waiter_lane"), bl = PQfnumber(r, "blocker_lane"), rc = PQfnumber(r, "relation");
        for (int i = 0; i < PQntuples(r) && !rel; i++)
            if (strcmp(PQgetvalue(r, i, wl), w) == 0 && strcmp(PQgetvalue(r, i, bl), b) == 0)
                rel = strdup(PQgetvalue(r, i, rc));
        PQclear(r);
        if (!rel)
            usleep(100000);
    }
    PQfinish(c);
    return rel;
}

static void test_blocking_graph_and_guard_log(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *a = hold_row(&g_log, 1);
    PGconn *o = start_update(&g_log, 1);
    char *rel = wait_blocking(&g_log, "oltp", "analytics", 5000);
    if (!rel)
        h_pglane_dump_log(&g_log, 4000);
    assert_non_null(rel);
    assert_string_equal(rel, "t");
    free(rel);

    /* guard = log: after well over guard_wait nothing was cancelled, and one line says so. */
    usleep(1200000);
    assert_int_equal(h_wait_result(o, 0), -1);        /* the UPDATE still waits */
    char *log = h_pglane_log(&g_log);
    assert_non_null(strstr(log, "guard: lane oltp"));
    assert_non_null(strstr(log, "logged only (guard = log)"));
    assert_null(strstr(log, "cancelled its statement"));
    free(log);
    assert_int_equal(h_exec(a, "COMMIT"), 0);          /* the analytics transaction was untouched */
    finish_ok(o, 5000);
    PQfinish(a);
    PQfinish(o);
    h_pass();
}

static void test_guard_cancel(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
#define GUARD_CANCELS(event) "pglane_cancels_total{lane=\"analytics\",event=\"" event "\"}"
    long fwd0 = h_metric_now(g_cancel_mport, GUARD_CANCELS("forwarded"));
    long expired0 = h_metric_now(g_cancel_mport, GUARD_CANCELS("expired"));
    assert_true(fwd0 >= 0 && expired0 >= 0);
    PGconn *a = hold_row(&g_cancel, 2);
    assert_int_equal(PQsendQuery(a, "SELECT pg_sleep(30)"), 1);   /* a long analytic statement */
    usleep(100000);
    int64_t t0 = h_now_ms();
    PGconn *o = start_update(&g_cancel, 2);
    finish_ok(o, 250 + 1000 + 500);
    int64_t took = h_now_ms() - t0;
    fprintf(stderr, "note: OLTP UPDATE completed %lld ms after it started (guard_wait 250 ms)\n", (long long)took);
    assert_true(took <= 250 + 1000);

    /* The analytic statement got pglane's message. */
    assert_int_equal(h_wait_result(a, 2000), 0);
    PGresult *r = PQgetResult(a);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY),
                        "pglane cancelled this statement to protect lane oltp from a lock wait");
    PQclear(r);
    PQfinish(a);
    PQfinish(o);

    if (getenv("PGLANE_TEST_VERBOSE"))
        h_pglane_dump_log(&g_cancel, 3000);
    char *log = h_pglane_log(&g_cancel);
    assert_non_null(strstr(log, "cancelled its statement"));
    free(log);
    PGconn *c = h_console(&g_cancel, NULL);
    r = PQexec(c, "SHOW GUARD");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_true(PQntuples(r) >= 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "analytics");
    assert_string_equal(PQgetvalue(r, 0, 1), "oltp");
    PQclear(r);
    PQfinish(c);
    char *m = get_metrics(g_cancel_mport);
    assert_non_null(strstr(m, "pglane_guard_actions_total{lane=\"analytics\",protected_lane=\"oltp\",action=\"cancelled\"} 1"));
    /* The guard's cancel took the path of a client's (issue #22: px_cancel_backend, which holds a
     * connection whose transaction ends before the cancel has landed): counted once as forwarded for
     * the blocker's lane, none expired. */
    assert_int_equal(h_metric(m, GUARD_CANCELS("forwarded")), fwd0 + 1);
    assert_int_equal(h_metric(m, GUARD_CANCELS("expired")), expired0);
    free(m);
#undef GUARD_CANCELS
    h_pass();
}

/* An idle-in-transaction analytics blocker is terminated; its client learns why. */
static void test_guard_terminates_idle_in_transaction(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *a = hold_row(&g_cancel, 3);
    int64_t t0 = h_now_ms();
    PGconn *o = start_update(&g_cancel, 3);
    finish_ok(o, 250 + 1000 + 500);
    assert_true(h_now_ms() - t0 <= 250 + 1000);
    PGresult *r = PQexec(a, "SELECT 1");
    assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_non_null(strstr(PQerrorMessage(a), "pglane terminated this idle transaction to protect lane oltp"));
    PQclear(r);
    PQfinish(a);
    PQfinish(o);
    h_pass();
}

/* A backend pglane does not own is shown as external and never cancelled. */
static void test_external_never_cancelled(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane direct = { .port = g_pg.port, .direct = 1, .pg = &g_pg };
    PGconn *x = h_connect(&direct, "application_name=report-external");
    H_ASSERT_CONNECTED(x);
    assert_int_equal(h_exec(x, "BEGIN"), 0);
    assert_int_equal(h_exec(x, "UPDATE t SET v = v + 1 WHERE id = 4"), 0);
    PGconn *o = start_update(&g_cancel, 4);
    char *rel = wait_blocking(&g_cancel, "oltp", "external", 5000);
    assert_non_null(rel);
    free(rel);
    usleep(1200000);
    assert_int_equal(h_wait_result(o, 0), -1);         /* still waiting: nothing was done */
    assert_int_equal(h_exec(x, "COMMIT"), 0);           /* the external transaction is intact */
    finish_ok(o, 5000);
    PQfinish(x);
    PQfinish(o);
    h_pass();
}

/* SHOW STAGES: sampled transactions (1 in 64) timed stage by stage. After 640 transactions of one
 * client (simple, extended with an unnamed statement, and a named prepared statement), at least 10
 * were timed; the stages of every hop are non-zero, the prepared-statement bookkeeping too, and no
 * stage, nor their sum, exceeds the transactions' own duration. */
static double stage_avg(PGresult *r, const char *stage)
{
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 0), stage) == 0)
            return atof(PQgetvalue(r, i, 3));
    print_error("stage %s missing from SHOW STAGES\n", stage);
    fail();
    return 0;
}

static void test_show_stages(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *a = client(&g_log, "stages");
    H_ASSERT_CONNECTED(a);
    PGconn *c = h_console(&g_log, NULL);
    H_ASSERT_CONNECTED(c);
    PGresult *r = PQexec(c, "SHOW STAGES");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    long before = atol(PQgetvalue(r, 0, 1));
    PQclear(r);

    r = PQprepare(a, "st_get", "SELECT v FROM t WHERE id = $1", 1, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    for (int i = 0; i < 640; i++) {
        char id[16];
        const char *params[1] = { id };

        snprintf(id, sizeof id, "%d", 1 + i % 20);
        if (i % 3 == 0)
            r = PQexec(a, "SELECT v FROM t WHERE id = 3");
        else if (i % 3 == 1)
            r = PQexecParams(a, "SELECT v FROM t WHERE id = $1", 1, NULL, params, NULL, NULL, 0);
        else
            r = PQexecPrepared(a, "st_get", 1, params, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
    }
    r = PQexec(c, "SHOW STAGES");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQfname(r, 0), "stage");
    assert_string_equal(PQfname(r, 3), "avg_us");
    long samples = atol(PQgetvalue(r, 0, 1));
    if (samples - before < 9)
        print_error("only %ld transactions sampled of 640\n", samples - before);
    assert_true(samples - before >= 9);   /* 640 / 64, give or take one in flight */
    const char *hops[] = { "client_scan", "server_write", "prepared", "server", "server_scan", "client_write",
                           "release", NULL };
    double tx = stage_avg(r, "transaction"), sum = 0;
    for (int i = 0; hops[i]; i++) {
        double v = stage_avg(r, hops[i]);
        if (!(v > 0 && v <= tx))
            print_error("stage %s: avg %.2f us, transaction %.2f us\n", hops[i], v, tx);
        assert_true(v > 0 && v <= tx);
    }
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 0), "transaction") != 0)
            sum += atof(PQgetvalue(r, i, 3));
    if (!(sum <= tx * 1.0001 + 0.01))
        print_error("stages sum to %.2f us, transactions take %.2f us\n", sum, tx);
    assert_true(sum <= tx * 1.0001 + 0.01);   /* rounding of the printed averages */
    /* PostgreSQL's side is most of a transaction on loopback: at least the proxy's scan of it. */
    assert_true(stage_avg(r, "server") > stage_avg(r, "release"));
    PQclear(r);
    PQfinish(a);
    PQfinish(c);
    h_pass();
}

/* SHUTDOWN drains and exits 0; neither pglane left a sanitizer report (under make asan). */
static void test_shutdown_and_clean_exit(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *c = h_console(&g_log, NULL);
    H_ASSERT_CONNECTED(c);
    PGresult *r = PQexec(c, "SHUTDOWN");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    assert_int_equal(h_pglane_wait_exit(&g_log, 10000), 1);
    h_pglane_assert_clean_exit(&g_log);
    h_pglane_assert_term_clean_exit(&g_cancel);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_console_tables),
        H_TEST(test_console_commands),
        H_TEST(test_non_admin_refused),
        H_TEST(test_metrics),
        H_TEST(test_metrics_longest_wait),
        H_TEST(test_blocking_graph_and_guard_log),
        H_TEST(test_guard_cancel),
        H_TEST(test_guard_terminates_idle_in_transaction),
        H_TEST(test_external_never_cancelled),
        H_TEST(test_show_stages),
        H_TEST(test_shutdown_and_clean_exit),
    };
    return H_RUN_GROUP("integration_admin", tests, .pg = &g_pg, .skip_direct = 1, .setup = fixtures);
}
