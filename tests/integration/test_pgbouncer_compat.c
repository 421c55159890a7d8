/*
 * PgBouncer-compatible console (issue #17): SHOW POOLS / STATS / DATABASES / LISTS / VERSION / USERS
 * with PgBouncer's column names and types on the virtual database "pgbouncer" (pglane's own SHOW STATS
 * stays on "pglane"), and the real prometheus-pgbouncer-exporter (Debian) scraping pglane.
 */
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define EXPORTER "/usr/bin/prometheus-pgbouncer-exporter"
#define INT4_OID 23
#define INT8_OID 20

static struct h_pg g_pg;
static struct h_pglane g_lane;

static int fixtures(void)
{
    if (h_pglane_start(&g_lane, &g_pg,
                     "[pglane]\n"
                     "listen = 127.0.0.1:@PORT@\n"
                     "auth_type = md5\n"
                     "auth_file = @AUTHFILE@\n"
                     "pool_mode = transaction\n"
                     "default_lane = oltp\n"
                     "admin_users = app\n"
                     "\n[server.pg]\nhost = 127.0.0.1\nport = @PGPORT@\n"
                     "\n[lane.oltp]\nserver = pg\nsize = 3\nqueue_timeout = 30s\n"
                     "\n[lane.olap]\nserver = pg\nsize = 2\nreserve = 1\nqueue_timeout = 30s\n"
                     "\n[route.reports]\napplication_name = report-*\nlane = olap\n") != 0)
        return -1;
    h_pglane_keep(&g_lane);
    return 0;
}

static PGconn *client(const char *app)
{
    return h_connect_app(&g_lane, app);
}

static PGresult *show(PGconn *c, const char *cmd)
{
    PGresult *r = PQexec(c, cmd);

    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        print_error("%s: %s\n", cmd, PQerrorMessage(c));
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    return r;
}

static int col(const PGresult *r, const char *name)
{
    int i = PQfnumber(r, name);

    if (i < 0)
        print_error("no column %s\n", name);
    assert_true(i >= 0);
    return i;
}

/* The row whose column key has value v, or -1. */
static int row_where(const PGresult *r, const char *key, const char *v)
{
    int k = col(r, key);

    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, k), v) == 0)
            return i;
    return -1;
}

static long cell(const PGresult *r, int row, const char *name)
{
    assert_true(row >= 0);
    return atol(PQgetvalue(r, row, col(r, name)));
}

/* Runs n one-statement transactions in each lane and leaves `held` inside an open transaction in
 * oltp (one server active there). */
static void traffic(PGconn *held, int n)
{
    PGconn *o = client("web"), *a = client("report-daily");

    H_ASSERT_CONNECTED(o);
    H_ASSERT_CONNECTED(a);
    for (int i = 0; i < n; i++) {
        assert_int_equal(h_exec(o, "SELECT 1"), 0);
        assert_int_equal(h_exec(a, "SELECT 2"), 0);
    }
    PQfinish(o);
    PQfinish(a);
    assert_int_equal(h_exec(held, "BEGIN"), 0);
    assert_int_equal(h_exec(held, "SELECT pg_backend_pid()"), 0);
}

static void test_console_pgbouncer_tables(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *held = client("web");
    H_ASSERT_CONNECTED(held);
    traffic(held, 5);
    PGconn *c = h_console(&g_lane, "pgbouncer");
    H_ASSERT_CONNECTED(c);

    PGresult *r = show(c, "SHOW POOLS");
    static const char *const pool_cols[] = {
        "database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
        "sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
        "maxwait", "maxwait_us", "pool_mode"
    };
    assert_int_equal(PQnfields(r), 16);
    for (int i = 0; i < 16; i++)
        assert_string_equal(PQfname(r, i), pool_cols[i]);
    assert_int_equal(PQftype(r, col(r, "cl_active")), INT4_OID);
    assert_int_equal(PQftype(r, col(r, "maxwait_us")), INT4_OID);
    int oltp = row_where(r, "database", H_DB "/oltp"), olap = row_where(r, "database", H_DB "/olap");
    assert_true(oltp >= 0 && olap >= 0);
    assert_string_equal(PQgetvalue(r, oltp, col(r, "user")), H_USER);
    assert_int_equal(cell(r, oltp, "sv_active"), 1);       /* the held transaction */
    assert_int_equal(cell(r, oltp, "cl_active"), 1);
    assert_int_equal(cell(r, oltp, "cl_waiting"), 0);
    assert_int_equal(cell(r, olap, "sv_active"), 0);
    assert_true(cell(r, olap, "sv_idle") >= 1);
    assert_string_equal(PQgetvalue(r, oltp, col(r, "pool_mode")), "transaction");
    PQclear(r);

    r = show(c, "SHOW STATS;");
    assert_string_equal(PQfname(r, 0), "database");
    assert_int_equal(PQftype(r, col(r, "total_xact_count")), INT8_OID);
    oltp = row_where(r, "database", H_DB "/oltp");
    olap = row_where(r, "database", H_DB "/olap");
    /* 5 transactions in each lane (the held one has not ended); queries include the held ones */
    assert_true(cell(r, olap, "total_xact_count") >= 5);
    assert_true(cell(r, olap, "total_query_count") >= 5);
    assert_int_equal(cell(r, olap, "total_requests"), cell(r, olap, "total_query_count"));
    assert_true(cell(r, oltp, "total_query_count") >= 6);
    assert_true(cell(r, oltp, "total_query_time") > 0);
    assert_true(cell(r, oltp, "total_xact_time") > 0);
    PQclear(r);

    r = show(c, "SHOW DATABASES");
    assert_string_equal(PQfname(r, 0), "name");
    int d = row_where(r, "name", H_DB "/olap");
    assert_string_equal(PQgetvalue(r, d, col(r, "database")), H_DB);
    assert_string_equal(PQgetvalue(r, d, col(r, "host")), "127.0.0.1");
    assert_int_equal(cell(r, d, "port"), g_pg.port);
    assert_int_equal(cell(r, d, "pool_size"), 2);
    assert_int_equal(cell(r, d, "reserve_pool"), 1);
    assert_int_equal(cell(r, row_where(r, "name", H_DB "/oltp"), "pool_size"), 3);
    PQclear(r);

    r = show(c, "SHOW LISTS");
    assert_string_equal(PQfname(r, 0), "list");
    assert_string_equal(PQfname(r, 1), "items");
    assert_int_equal(PQftype(r, 1), INT4_OID);
    assert_int_equal(cell(r, row_where(r, "list", "databases"), "items"), 2);
    assert_int_equal(cell(r, row_where(r, "list", "pools"), "items"), 2);
    assert_int_equal(cell(r, row_where(r, "list", "users"), "items"), 1);
    assert_true(cell(r, row_where(r, "list", "used_clients"), "items") >= 2);  /* held + console */
    assert_true(row_where(r, "list", "dns_pending") >= 0);
    PQclear(r);

    r = show(c, "show version");
    assert_int_equal(PQntuples(r), 1);
    assert_non_null(strstr(PQgetvalue(r, 0, 0), "pglane"));
    PQclear(r);

    r = show(c, "SHOW USERS");
    int u = row_where(r, "name", H_USER);
    assert_true(cell(r, u, "current_connections") >= 2);
    PQclear(r);

    /* pglane's own tables are still there under their names */
    r = show(c, "SHOW LANES");
    assert_true(row_where(r, "lane", "olap") >= 0);
    PQclear(r);
    PQfinish(c);

    /* On "pglane", SHOW STATS keeps pglane's columns; PgBouncer-only names work too. */
    c = h_console(&g_lane, "pglane");
    H_ASSERT_CONNECTED(c);
    r = show(c, "SHOW STATS");
    assert_string_equal(PQfname(r, 0), "lane");
    assert_true(PQfnumber(r, "total_xact_count") < 0);
    PQclear(r);
    r = show(c, "SHOW POOLS");
    assert_true(row_where(r, "database", H_DB "/oltp") >= 0);
    PQclear(r);
    PQfinish(c);

    assert_int_equal(h_exec(held, "COMMIT"), 0);
    PQfinish(held);
    h_pass();
}

static char *http_get(int port, const char *path)
{
    char req[256];

    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    return h_http(port, req, strlen(req), 10000);
}

/* The value of the sample whose line starts with `series` ("name{labels}"), or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atof(p + n + 1);
    return -1;
}

static void test_prometheus_pgbouncer_exporter(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    /* Installed by scripts/install-deps.sh; a missing exporter fails the test. Run with Debian's python3
     * (its modules are in /usr/lib/python3/dist-packages), whatever python3 is first in PATH. */
    assert_int_equal(access(EXPORTER, X_OK), 0);
    PGconn *held = client("web");
    H_ASSERT_CONNECTED(held);
    traffic(held, 7);

    int port = h_free_port();
    char conf_path[H_PATH], conf[512];
    snprintf(conf_path, sizeof conf_path, "%s/pgbouncer-exporter.conf", g_lane.dir);
    snprintf(conf, sizeof conf,
             "host = 127.0.0.1\nport = %d\npgbouncer-host = 127.0.0.1\npgbouncer-port = %d\n"
             "pgbouncer-user = " H_USER "\n", port, g_lane.port);
    assert_int_equal(h_write_file(conf_path, conf), 0);
    const char *argv[] = { "/usr/bin/python3", EXPORTER, "--config", conf_path, NULL };
    const char *env[] = { "PGPASSWORD=" H_PASSWORD, "PGCONNECT_TIMEOUT=5", NULL };
    struct h_proc p;
    assert_int_equal(h_proc_start(&p, argv, env), 0);
    h_track_pid(p.pid);

    /* Poll until the exporter listens and answers 200 (it queries the console once at start). */
    char *resp = NULL;
    int64_t deadline = h_now_ms() + 30000;
    while (h_now_ms() < deadline && !h_proc_done(&p)) {
        resp = http_get(port, "/metrics");
        if (resp && strstr(resp, " 200 "))
            break;
        free(resp);
        resp = NULL;
        usleep(100000);
    }
    if (!resp) {
        char *out = NULL;
        kill(p.pid, SIGTERM);
        h_proc_wait(&p, 5000, &out);
        print_error("exporter did not serve /metrics; its output:\n%s\n", out ? out : "");
        free(out);
        fail();
    }
    char *body = strstr(resp, "\r\n\r\n");
    assert_non_null(body);
    double active = sample(body, "pgbouncer_active_clients{database=\"" H_DB "/oltp\",user=\"" H_USER "\"}");
    double waiting = sample(body, "pgbouncer_waiting_clients{database=\"" H_DB "/olap\",user=\"" H_USER "\"}");
    double reqs = sample(body, "pgbouncer_requests_total{database=\"" H_DB "/olap\"}");
    double qtime = sample(body, "pgbouncer_query_microseconds_total{database=\"" H_DB "/oltp\"}");
    double pools = sample(body, "pgbouncer_pools");
    if (active != 1 || waiting != 0 || reqs < 7 || qtime <= 0 || pools != 2)
        print_error("unexpected /metrics:\n%s\n", body);
    assert_true(active == 1);      /* the held client */
    assert_true(waiting == 0);
    assert_true(reqs >= 7);
    assert_true(qtime > 0);
    assert_true(pools == 2);
    assert_non_null(strstr(body, "pgbouncer_pool_size{database=\"" H_DB "\"}"));

    /* the values follow pglane: 3 more transactions in olap show up in the next scrape */
    PGconn *a = client("report-x");
    H_ASSERT_CONNECTED(a);
    for (int i = 0; i < 3; i++)
        assert_int_equal(h_exec(a, "SELECT 3"), 0);
    PQfinish(a);
    free(resp);
    resp = http_get(port, "/metrics");
    assert_non_null(resp);
    assert_non_null(strstr(resp, " 200 "));
    body = strstr(resp, "\r\n\r\n");
    assert_true(sample(body, "pgbouncer_requests_total{database=\"" H_DB "/olap\"}") >= reqs + 3);
    free(resp);

    assert_int_equal(kill(p.pid, SIGTERM), 0);
    char *out = NULL;
    assert_true(h_proc_wait(&p, 10000, &out) >= 0);
    h_untrack_pid(p.pid);
    assert_null(strstr(out ? out : "", "Traceback"));
    free(out);
    assert_int_equal(h_exec(held, "COMMIT"), 0);
    PQfinish(held);
    h_pass();
}

static long pools_val(PGconn *adm, const char *db, const char *column)
{
    PGresult *r = show(adm, "SHOW POOLS");
    int row = row_where(r, "database", db);
    long v = row >= 0 ? cell(r, row, column) : -1;
    PQclear(r);
    return v;
}

/* 1 while PostgreSQL still has a backend with this pid. */
static long backend_alive(PGconn *super, const char *pid)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid);
    return h_pg_long(super, sql);
}

/* RECONNECT closes idle connections at once and the others when released; WAIT_CLOSE answers once
 * they have closed; KILL db/lane closes that pair's clients and connections and nothing else. */
static void test_reconnect_wait_close_kill(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *held = client("web"), *other = client("web");
    H_ASSERT_CONNECTED(held);
    H_ASSERT_CONNECTED(other);
    traffic(held, 3);                                    /* held: open transaction in oltp */
    char *pid = h_query1(held, "SELECT pg_backend_pid()");
    assert_non_null(pid);
    assert_int_equal(h_exec(other, "SELECT 1"), 0);      /* oltp has an idle connection too */
    PGconn *c = h_console(&g_lane, "pgbouncer"), *super = h_pg_super(&g_pg, "postgres");
    H_ASSERT_CONNECTED(c);
    assert_non_null(super);
    assert_true(pools_val(c, H_DB "/oltp", "sv_idle") >= 1);
    long olap_idle = pools_val(c, H_DB "/olap", "sv_idle");
    assert_true(olap_idle >= 1);

    assert_string_equal(h_exec_sqlstate(c, "RECONNECT nosuchlane"), "42704");
    assert_int_equal(h_exec(c, "RECONNECT " H_DB "/oltp"), 0);
    assert_int_equal(pools_val(c, H_DB "/oltp", "sv_idle"), 0);         /* idle ones closed at once */
    assert_int_equal(pools_val(c, H_DB "/oltp", "sv_active"), 1);       /* the held one stays */
    assert_int_equal(pools_val(c, H_DB "/olap", "sv_idle"), olap_idle); /* another lane: untouched */
    assert_int_equal(backend_alive(super, pid), 1);

    /* WAIT_CLOSE waits for the held connection */
    assert_int_equal(PQsendQuery(c, "WAIT_CLOSE oltp"), 1);
    assert_int_equal(h_wait_result(c, 1500), -1);                        /* still waiting */
    assert_int_equal(h_exec(held, "COMMIT"), 0);
    assert_int_equal(h_wait_result(c, 5000), 0);
    PGresult *r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdStatus(r), "WAIT_CLOSE");
    PQclear(r);
    assert_null(PQgetResult(c));
    /* the backend that served the held transaction is gone; the client carries on with a new one */
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid);
    assert_int_equal(h_pg_wait_long(super, sql, 0, 5000), 0);
    char *pid2 = h_query1(held, "SELECT pg_backend_pid()");
    assert_non_null(pid2);
    assert_string_not_equal(pid, pid2);
    free(pid2);
    /* nothing marked: WAIT_CLOSE answers at once */
    assert_int_equal(h_exec(c, "WAIT_CLOSE"), 0);

    /* KILL appdb/olap: the olap client in a transaction is closed, oltp clients are not */
    PGconn *a = client("report-k");
    H_ASSERT_CONNECTED(a);
    assert_int_equal(h_exec(a, "BEGIN"), 0);
    assert_int_equal(h_exec(a, "SELECT 1"), 0);
    assert_int_equal(h_exec(c, "KILL " H_DB "/olap"), 0);
    const char *st = h_exec_sqlstate(a, "SELECT 2");
    assert_true(strcmp(st, "57P01") == 0 || PQstatus(a) == CONNECTION_BAD);
    assert_true(h_show_wait(c, "SHOW LANES", "olap", "servers_used", 0, 5000) == 0);
    assert_int_equal(h_exec(held, "SELECT 3"), 0);
    assert_int_equal(h_exec(other, "SELECT 4"), 0);
    PQfinish(a);

    PQfinish(c);
    PQfinish(super);
    free(pid);
    PQfinish(held);
    PQfinish(other);
    h_pass();
}

/* Last: pglane drains and exits cleanly after all of the above. */
H_CLEAN_EXIT_TEST(test_clean_exit, &g_lane)

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_console_pgbouncer_tables),
        H_TEST(test_prometheus_pgbouncer_exporter),
        H_TEST(test_reconnect_wait_close_kill),
        H_TEST(test_clean_exit),
    };
    return H_RUN_GROUP("integration_pgbouncer_compat", tests,
                       .pg = &g_pg, .skip_direct = 1, .setup = fixtures);
}
