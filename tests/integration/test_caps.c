/*
 * Global caps on server connections (issue #17), against real PostgreSQL through pglane:
 * max_db_connections holds the backends of one database under the cap across three lanes during
 * pgbench runs on every lane (0 failed transactions, each lane makes progress, pg_stat_activity never
 * shows more); max_user_connections caps one user while another user of the same database is not held
 * back; an idle lane's connections are closed to make room for a waiting lane, and a connection that
 * goes idle is handed to a lane that waits under the cap.
 */
#include "tests/integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static struct h_pg g_pg;
static PGconn *g_super;
static char g_userlist[H_PATH];

#define U2 "caps_u"
#define U2_PASSWORD "capspass"

static int fixtures(void)
{
    if (h_pg_exec(&g_pg, "postgres", "CREATE ROLE " U2 " LOGIN PASSWORD '" U2_PASSWORD "'") != 0 ||
        h_pg_exec(&g_pg, "postgres", "GRANT ALL ON DATABASE " H_DB " TO " U2) != 0)
        return -1;
    if (h_pgbench_init(&g_pg, H_BENCH_DB) != 0)
        return -1;
    snprintf(g_userlist, sizeof g_userlist, "%s/caps-userlist.txt", h_scratch_dir());
    if (h_write_file(g_userlist, "\"" H_USER "\" \"" H_PASSWORD "\"\n"
                                 "\"" U2 "\" \"" U2_PASSWORD "\"\n") != 0 ||
        chmod(g_userlist, 0600) != 0)
        return -1;
    return 0;
}

/* Lanes l1 (default), l2, l3 of `size`, routed by application_name a2 / a3; `pglane_extra` goes
 * into [pglane]. */
static void caps_conf(char *buf, size_t n, int size, const char *queue_timeout, const char *pglane_extra)
{
    snprintf(buf, n,
             "[pglane]\n"
             "listen = 127.0.0.1:@PORT@\n"
             "auth_type = md5\n"
             "auth_file = %s\n"
             "pool_mode = transaction\n"
             "default_lane = l1\n"
             "admin_users = " H_USER "\n"
             "%s"
             "\n[server.pg]\nhost = 127.0.0.1\nport = @PGPORT@\n"
             "\n[lane.l1]\nserver = pg\nsize = %d\nqueue_timeout = %s\n"
             "\n[lane.l2]\nserver = pg\nsize = %d\nqueue_timeout = %s\n"
             "\n[lane.l3]\nserver = pg\nsize = %d\nqueue_timeout = %s\n"
             "\n[route.a2]\napplication_name = a2\nlane = l2\n"
             "\n[route.a3]\napplication_name = a3\nlane = l3\n",
             g_userlist, pglane_extra, size, queue_timeout, size, queue_timeout, size, queue_timeout);
}

static PGconn *connect_as(const struct h_pglane *l, const char *user, const char *password, const char *db,
                          const char *app)
{
    char ci[512];

    snprintf(ci, sizeof ci,
             "host=127.0.0.1 port=%d user=%s password=%s dbname=%s application_name=%s connect_timeout=5",
             l->port, user, password, db, app);
    return PQconnectdb(ci);
}

static long backends_of_db(const char *db)
{
    char sql[256];

    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND backend_type = 'client backend' "
             "AND pid <> pg_backend_pid()", db);
    return h_pg_long(g_super, sql);
}

static long backends_of_user(const char *user)
{
    char sql[256];

    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE usename = '%s' AND datname = '" H_DB "' "
             "AND backend_type = 'client backend' AND pid <> pg_backend_pid()", user);
    return h_pg_long(g_super, sql);
}

static void pause_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* max_db_connections = 4, three lanes of size 4, pgbench with 64 clients in all (22, 21, 21 on the
 * three lanes). */
static void test_db_cap_under_pgbench(void **state)
{
    struct h_pglane l = { 0 };
    struct h_proc p[3];
    char conf[4096], extra[128], ci[3][512];
    const char *apps[3] = { "a1", "a2", "a3" }, *clients[3] = { "22", "21", "21" };
    long seen_max = 0;

    (void)state;
    caps_conf(conf, sizeof conf, 4, "30s", "max_db_connections = 4\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    for (int i = 0; i < 3; i++) {
        const char *argv[] = { "pgbench", "-n", "-c", clients[i], "-j", "2", "-T", "5", ci[i], NULL };

        snprintf(extra, sizeof extra, "dbname=" H_BENCH_DB " application_name=%s", apps[i]);
        h_conninfo(&l, extra, ci[i], sizeof ci[i]);
        assert_int_equal(h_proc_start(&p[i], argv, NULL), 0);
        h_track_pid(p[i].pid);
    }
    /* Sample PostgreSQL's view of the database's backends while the three runs last. */
    while (!(h_proc_done(&p[0]) && h_proc_done(&p[1]) && h_proc_done(&p[2]))) {
        long n = backends_of_db(H_BENCH_DB);

        assert_true(n >= 0);
        if (n > seen_max)
            seen_max = n;
        if (n > 4)
            print_error("pg_stat_activity shows %ld backends of " H_BENCH_DB "\n", n);
        pause_ms(2);
    }
    for (int i = 0; i < 3; i++) {
        char *out = NULL;
        int rc = h_proc_wait(&p[i], 60000, &out);
        long failed = h_parse_after(out, "number of failed transactions:");
        long done = h_parse_after(out, "number of transactions actually processed:");

        h_untrack_pid(p[i].pid);
        if (rc != 0 || failed != 0 || done <= 0)
            print_error("pgbench on lane l%d:\n%s\n", i + 1, out ? out : "");
        assert_int_equal(rc, 0);
        assert_int_equal(failed, 0);
        assert_true(done > 0);   /* every lane made progress: none starved by the others */
        free(out);
    }
    assert_true(seen_max <= 4);
    assert_true(seen_max >= 2);   /* the sampler did see the runs */
    /* The console shows the cap and the database's connections (PgBouncer's SHOW DATABASES). */
    PGconn *adm = h_console(&l, "pgbouncer");
    assert_int_equal(PQstatus(adm), CONNECTION_OK);
    PGresult *r = PQexec(adm, "SHOW DATABASES");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int col = PQfnumber(r, "max_connections"), found = 0;
    assert_true(col >= 0);
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, PQfnumber(r, "database")), H_BENCH_DB) == 0) {
            assert_string_equal(PQgetvalue(r, i, col), "4");
            found = 1;
        }
    assert_true(found);
    PQclear(r);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* max_user_connections = 2: a third transaction of app waits for one of app's to end, while caps_u
 * in the same database gets its own two at once. */
static void test_user_cap(void **state)
{
    struct h_pglane l = { 0 };
    char conf[4096];
    PGconn *a[3], *b[2];

    (void)state;
    caps_conf(conf, sizeof conf, 4, "30s", "max_user_connections = 2\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    for (int i = 0; i < 3; i++) {
        a[i] = connect_as(&l, H_USER, H_PASSWORD, H_DB, i == 1 ? "a2" : "a1");
        assert_int_equal(PQstatus(a[i]), CONNECTION_OK);
    }
    for (int i = 0; i < 2; i++) {
        b[i] = connect_as(&l, U2, U2_PASSWORD, H_DB, i ? "a3" : "a2");
        assert_int_equal(PQstatus(b[i]), CONNECTION_OK);
    }
    assert_int_equal(h_exec(a[0], "BEGIN"), 0);
    assert_int_equal(h_exec(a[0], "SELECT 1"), 0);
    assert_int_equal(h_exec(a[1], "BEGIN"), 0);
    assert_int_equal(h_exec(a[1], "SELECT 1"), 0);
    /* Two transactions of app hold two connections: a third waits (in lane l1's queue). */
    assert_int_equal(PQsendQuery(a[2], "SELECT 3"), 1);
    assert_int_equal(h_wait_result(a[2], 500), -1);
    assert_true(backends_of_user(H_USER) <= 2);
    /* The other user is not held back by app's cap. */
    assert_int_equal(h_exec(b[0], "BEGIN"), 0);
    assert_int_equal(h_exec(b[0], "SELECT 1"), 0);
    assert_int_equal(h_exec(b[1], "BEGIN"), 0);
    assert_int_equal(h_exec(b[1], "SELECT 1"), 0);
    assert_true(backends_of_user(H_USER) <= 2);
    /* One of app's transactions ends: the waiter (another lane) gets a connection. */
    assert_int_equal(h_exec(a[1], "COMMIT"), 0);
    assert_int_equal(h_wait_result(a[2], 10000), 0);
    PGresult *r = PQgetResult(a[2]);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "3");
    PQclear(r);
    assert_null(PQgetResult(a[2]));
    assert_true(backends_of_user(H_USER) <= 2);
    assert_int_equal(h_exec(a[0], "COMMIT"), 0);
    assert_int_equal(h_exec(b[0], "COMMIT"), 0);
    assert_int_equal(h_exec(b[1], "COMMIT"), 0);
    for (int i = 0; i < 3; i++)
        PQfinish(a[i]);
    PQfinish(b[0]);
    PQfinish(b[1]);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* max_db_connections = 2: lane l1's idle connections are closed for lane l2 (whose queue_timeout
 * would fail it otherwise), and a connection l1 finishes with goes to l2's waiter. */
static void test_idle_lane_gives_way(void **state)
{
    struct h_pglane l = { 0 };
    char conf[4096];
    PGconn *c1[2], *c2, *adm;
    char extra[128];
    int mport = h_free_port();
    const char *series = "pglane_capped_server_connections{kind=\"database\",name=\"" H_DB "\",limit=\"2\"}";

    (void)state;
    assert_true(mport > 0);
    snprintf(extra, sizeof extra, "max_db_connections = 2\nmetrics_listen = 127.0.0.1:%d\n", mport);
    caps_conf(conf, sizeof conf, 2, "3s", extra);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    adm = h_console(&l, NULL);
    assert_int_equal(PQstatus(adm), CONNECTION_OK);
    for (int i = 0; i < 2; i++) {
        c1[i] = connect_as(&l, H_USER, H_PASSWORD, H_DB, "a1");
        assert_int_equal(PQstatus(c1[i]), CONNECTION_OK);
    }
    c2 = connect_as(&l, H_USER, H_PASSWORD, H_DB, "a2");
    assert_int_equal(PQstatus(c2), CONNECTION_OK);
    /* l1 uses both connections the cap allows, then leaves them idle. */
    assert_int_equal(h_exec(c1[0], "BEGIN"), 0);
    assert_int_equal(h_exec(c1[0], "SELECT 1"), 0);
    assert_int_equal(h_exec(c1[1], "BEGIN"), 0);
    assert_int_equal(h_exec(c1[1], "SELECT 1"), 0);
    assert_int_equal(h_exec(c1[0], "COMMIT"), 0);
    assert_int_equal(h_exec(c1[1], "COMMIT"), 0);
    assert_int_equal(h_show_val(adm, "SHOW LANES", "l1", "servers_idle"), 2);
    assert_int_equal(h_metric_now(mport, series), 2);
    /* No user cap is configured: no series for users. */
    char *body = h_metrics_body(mport);
    assert_null(strstr(body, "pglane_capped_server_connections{kind=\"user\""));
    free(body);
    /* l2 needs one: an idle one of l1 is closed to make room. */
    char *v = h_query1(c2, "SELECT 'l2 ran'");
    assert_non_null(v);
    assert_string_equal(v, "l2 ran");
    free(v);
    assert_int_equal(h_show_val(adm, "SHOW LANES", "l1", "servers_idle"), 1);
    assert_int_equal(h_show_val(adm, "SHOW LANES", "l2", "servers_idle"), 1);
    assert_int_equal(h_metric_now(mport, series), 2);
    assert_true(backends_of_db(H_DB) <= 2);
    /* Now l1 holds both in transactions again (one reused, one taken back from idle l2). */
    assert_int_equal(h_exec(c1[0], "BEGIN"), 0);
    assert_int_equal(h_exec(c1[0], "SELECT 1"), 0);
    assert_int_equal(h_exec(c1[1], "BEGIN"), 0);
    assert_int_equal(h_exec(c1[1], "SELECT 1"), 0);
    assert_int_equal(h_show_val(adm, "SHOW LANES", "l2", "servers_idle"), 0);
    /* l2 waits; when l1's transaction ends, its connection goes to l2 instead of l1's idle list. */
    assert_int_equal(PQsendQuery(c2, "SELECT 'l2 again'"), 1);
    assert_int_equal(h_show_wait(adm, "SHOW LANES", "l2", "clients_waiting", 1, 5000), 1);
    assert_int_equal(h_exec(c1[0], "COMMIT"), 0);
    assert_int_equal(h_wait_result(c2, 2500), 0);
    PGresult *r = PQgetResult(c2);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "l2 again");
    PQclear(r);
    assert_null(PQgetResult(c2));
    assert_true(backends_of_db(H_DB) <= 2);
    assert_int_equal(h_exec(c1[1], "COMMIT"), 0);
    PQfinish(c1[0]);
    PQfinish(c1[1]);
    PQfinish(c2);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* A reload that raises max_db_connections lets a client that waits under the old cap through. */
static void test_reload_raises_cap(void **state)
{
    struct h_pglane l = { 0 };
    char conf[4096], *text;
    PGconn *a, *b, *adm;

    (void)state;
    caps_conf(conf, sizeof conf, 2, "30s", "max_db_connections = 1\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    adm = h_console(&l, NULL);
    assert_int_equal(PQstatus(adm), CONNECTION_OK);
    a = connect_as(&l, H_USER, H_PASSWORD, H_DB, "a1");
    b = connect_as(&l, H_USER, H_PASSWORD, H_DB, "a2");
    assert_int_equal(PQstatus(a), CONNECTION_OK);
    assert_int_equal(PQstatus(b), CONNECTION_OK);
    assert_int_equal(h_exec(a, "BEGIN"), 0);
    assert_int_equal(h_exec(a, "SELECT 1"), 0);
    assert_int_equal(PQsendQuery(b, "SELECT 'after reload'"), 1);
    assert_int_equal(h_show_wait(adm, "SHOW LANES", "l2", "clients_waiting", 1, 5000), 1);
    text = h_read_file(l.conf_path);
    assert_non_null(text);
    snprintf(conf, sizeof conf, "%s", text);
    free(text);
    h_conf_replace(conf, sizeof conf, "max_db_connections = 1", "max_db_connections = 2");
    assert_int_equal(h_write_file(l.conf_path, conf), 0);
    assert_int_equal(h_exec(adm, "RELOAD"), 0);
    /* a still holds its connection: b gets the second one the new cap allows. */
    assert_int_equal(h_wait_result(b, 5000), 0);
    PGresult *r = PQgetResult(b);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "after reload");
    PQclear(r);
    assert_null(PQgetResult(b));
    assert_true(backends_of_db(H_DB) <= 2);
    assert_int_equal(h_exec(a, "COMMIT"), 0);
    PQfinish(a);
    PQfinish(b);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* A cap below 0 is refused with file:line. */
static void test_bad_cap_value(void **state)
{
    char conf[4096], path[H_PATH], *out = NULL;

    (void)state;
    caps_conf(conf, sizeof conf, 2, "3s", "max_db_connections = -1\n");
    h_conf_replace(conf, sizeof conf, "@PORT@", "6999");
    h_conf_replace(conf, sizeof conf, "@PGPORT@", "5432");
    snprintf(path, sizeof path, "%s/caps-bad.ini", h_scratch_dir());
    assert_int_equal(h_write_file(path, conf), 0);
    const char *argv[] = { h_pglane_bin(), "--check", path, NULL };
    int rc = h_run(argv, NULL, 10000, &out);
    assert_int_not_equal(rc, 0);
    assert_non_null(out);
    if (!strstr(out, "caps-bad.ini:8:") || !strstr(out, "max_db_connections"))
        print_error("pglane --check:\n%s\n", out);
    assert_non_null(strstr(out, "caps-bad.ini:8:"));
    assert_non_null(strstr(out, "max_db_connections"));
    free(out);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_db_cap_under_pgbench),
        H_TEST(test_user_cap),
        H_TEST(test_idle_lane_gives_way),
        H_TEST(test_reload_raises_cap),
        H_TEST(test_bad_cap_value),
    };
    return H_RUN_GROUP("integration: global caps on server connections", tests,
                       .pg = &g_pg, .super = &g_super, .skip_direct = 1, .setup = fixtures);
}
