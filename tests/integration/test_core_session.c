/*
 * Core issue, session pooling: simple, extended and named prepared statements, psql and pgbench
 * (-M simple / extended / prepared), LISTEN/NOTIFY, cancel, clients killed mid-transaction, server
 * backends that die, and the lane's FIFO queue with queue_timeout.
 */
#include "tests/integration/harness.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct h_pg g_pg;
static struct h_pglane g_main;     /* session mode, lane size 4 */
static PGconn *g_super;

static int fixtures(void)
{
    if (h_pgbench_init(&g_pg, H_DB) != 0)
        return -1;
    if (h_exec(g_super, "CREATE TABLE killed_t (id int PRIMARY KEY, v int);"
                        "INSERT INTO killed_t VALUES (1, 0), (2, 0);"
                        "ALTER TABLE killed_t OWNER TO app") != 0)
        return -1;
    if (h_pg_exec(&g_pg, "postgres", "CREATE DATABASE qdb OWNER app") != 0)   /* queue tests */
        return -1;
    char conf[4096];
    h_conf(conf, sizeof conf, "session", 4, "scram-sha-256", NULL);
    if (h_pglane_start(&g_main, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_main);
    return 0;
}

static char *must_query1(PGconn *c, const char *sql)
{
    char *v = h_query1(c, sql);
    assert_non_null(v);
    return v;
}

/* ------------------------------------------------------------------------------------------ */

static void test_session_simple_and_extended(void **state)
{
    (void)state;
    PGconn *c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    char *v = must_query1(c, "SELECT 'simple'");
    assert_string_equal(v, "simple");
    free(v);
    const char *pv[1] = { "21" };
    PGresult *r = PQexecParams(c, "SELECT $1::int * 2", 1, NULL, pv, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    /* The unnamed statement, prepared and executed in separate round trips (fine in session mode). */
    r = PQprepare(c, "", "SELECT $1::int + 100", 1, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQexecPrepared(c, "", 1, pv, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "121");
    PQclear(r);
    /* Session state survives across transactions: a temp table and a SET. */
    assert_int_equal(h_exec(c, "CREATE TEMP TABLE sess_t AS SELECT 7 AS x"), 0);
    assert_int_equal(h_exec(c, "SET statement_timeout = '2222ms'"), 0);
    assert_int_equal(h_exec(c, "BEGIN; INSERT INTO sess_t VALUES (8); COMMIT"), 0);
    v = must_query1(c, "SELECT sum(x) FROM sess_t");
    assert_string_equal(v, "15");
    free(v);
    v = must_query1(c, "SHOW statement_timeout");
    assert_string_equal(v, "2222ms");
    free(v);
    PQfinish(c);

    /* The next session on the same server connection does not see the previous one's state. */
    c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    v = must_query1(c, "SHOW statement_timeout");
    assert_string_equal(v, "0");
    free(v);
    assert_string_equal(h_exec_sqlstate(c, "SELECT * FROM sess_t"), "42P01");
    PQfinish(c);
    h_pass();
}

static void test_named_prepared_statements(void **state)
{
    (void)state;
    PGconn *a = h_connect(&g_main, NULL);
    PGconn *b = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);

    PGresult *r = PQprepare(a, "s1", "SELECT $1::int + 1", 1, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    /* The same name, another definition, in another session. */
    r = PQprepare(b, "s1", "SELECT $1::text || '-b'", 1, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);

    r = PQdescribePrepared(a, "s1");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_int_equal(PQnparams(r), 1);
    assert_int_equal(PQnfields(r), 1);
    PQclear(r);

    char num[16];
    for (int i = 0; i < 20; i++) {
        snprintf(num, sizeof num, "%d", i);
        const char *pv[1] = { num };
        r = PQexecPrepared(a, "s1", 1, pv, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(atoi(PQgetvalue(r, 0, 0)), i + 1);
        PQclear(r);
        r = PQexecPrepared(b, "s1", 1, pv, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        char want[32];
        snprintf(want, sizeof want, "%d-b", i);
        assert_string_equal(PQgetvalue(r, 0, 0), want);
        PQclear(r);
        if (i % 5 == 0)
            assert_int_equal(h_exec(a, "BEGIN; SELECT 1; COMMIT"), 0);   /* survives transactions */
    }
    /* Through the simple protocol too, and DEALLOCATE. */
    assert_int_equal(h_exec(a, "PREPARE s2 (int) AS SELECT $1 * 10"), 0);
    char *v = must_query1(a, "EXECUTE s2 (4)");
    assert_string_equal(v, "40");
    free(v);
    assert_int_equal(h_exec(a, "DEALLOCATE s1"), 0);
    const char *pv[1] = { "1" };
    r = PQexecPrepared(a, "s1", 1, pv, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "26000");
    PQclear(r);
    r = PQexecPrepared(b, "s1", 1, pv, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);   /* b's statement is untouched */
    PQclear(r);
    PQfinish(a);
    PQfinish(b);

    /* A new session on a reused server connection does not find old statements. */
    PGconn *c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    r = PQprepare(c, "s1", "SELECT 'fresh'", 0, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_string_equal(h_exec_sqlstate(c, "EXECUTE s2 (1)"), "26000");
    PQfinish(c);
    h_pass();
}

static void test_session_psql(void **state)
{
    (void)state;
    char ci[1024];
    h_conninfo(&g_main, NULL, ci, sizeof ci);
    char *out = NULL;
    const char *argv[] = { "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                           "-c", "PREPARE p AS SELECT 6 * 7", "-c", "EXECUTE p", ci, NULL };
    int rc = h_run(argv, NULL, 30000, &out);
    if (rc != 0)
        print_error("psql: %s\n", out);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "42\n");
    free(out);
    h_pass();
}

static void session_pgbench(const char *mode, int select_only)
{
    const char *args[16];
    int n = 0;
    args[n++] = "-n";
    if (select_only)
        args[n++] = "-S";
    args[n++] = "-M";
    args[n++] = mode;
    args[n++] = "-c";
    args[n++] = "4";     /* = lane size: in session mode a fifth client would wait for a session */
    args[n++] = "-j";
    args[n++] = "2";
    args[n++] = "-t";
    args[n++] = "50";
    args[n] = NULL;
    struct h_proc p;
    assert_int_equal(h_pgbench_start(&p, &g_main, H_DB, args), 0);
    char *out = NULL;
    int rc = h_proc_wait(&p, 90000, &out);
    if (rc != 0 || h_parse_after(out, "number of failed transactions:") != 0)
        print_error("pgbench -M %s:\n%s\n", mode, out);
    assert_int_equal(rc, 0);
    assert_int_equal(h_parse_after(out, "number of failed transactions:"), 0);
    assert_int_equal(h_parse_after(out, "number of transactions actually processed:"), 200);
    free(out);
}

static void test_session_pgbench(void **state)
{
    (void)state;
    session_pgbench("prepared", 1);
    session_pgbench("prepared", 0);
    session_pgbench("extended", 0);
    session_pgbench("simple", 1);
    h_pass();
}

static void test_listen_notify(void **state)
{
    (void)state;
    PGconn *a = h_connect(&g_main, NULL);
    PGconn *b = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(h_exec(a, "LISTEN pglane_chan"), 0);
    assert_int_equal(h_exec(b, "NOTIFY pglane_chan, 'hello 1'"), 0);
    assert_int_equal(h_exec(b, "SELECT pg_notify('pglane_chan', 'hello 2')"), 0);

    /* a receives both while idle, without sending anything. */
    int got = 0;
    int64_t deadline = h_now_ms() + 10000;
    while (got < 2 && h_now_ms() < deadline) {
        struct pollfd pfd = { .fd = PQsocket(a), .events = POLLIN };
        poll(&pfd, 1, 100);
        assert_int_equal(PQconsumeInput(a), 1);
        PGnotify *nt;
        while ((nt = PQnotifies(a)) != NULL) {
            char want[32];
            snprintf(want, sizeof want, "hello %d", got + 1);
            assert_string_equal(nt->relname, "pglane_chan");
            assert_string_equal(nt->extra, want);
            assert_int_not_equal(nt->be_pid, 0);
            PQfreemem(nt);
            got++;
        }
    }
    assert_int_equal(got, 2);
    assert_int_equal(h_exec(a, "UNLISTEN pglane_chan"), 0);
    assert_int_equal(h_exec(b, "NOTIFY pglane_chan, 'after unlisten'"), 0);
    assert_int_equal(h_exec(a, "SELECT 1"), 0);
    PGnotify *nt = PQnotifies(a);
    assert_null(nt);
    PQfinish(a);
    PQfinish(b);
    h_pass();
}

static void test_session_cancel(void **state)
{
    (void)state;
    PGconn *a = h_connect(&g_main, NULL);
    PGconn *b = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(PQsendQuery(a, "SELECT pg_sleep(30)"), 1);
    assert_int_equal(PQsendQuery(b, "SELECT pg_sleep(2)"), 1);
    assert_int_equal(h_pg_wait_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                    "AND query IN ('SELECT pg_sleep(30)', 'SELECT pg_sleep(2)')", 2, 10000), 2);
    int64_t t0 = h_now_ms();
    PGcancel *cn = PQgetCancel(a);
    char err[256];
    assert_int_equal(PQcancel(cn, err, sizeof err), 1);
    PQfreeCancel(cn);
    assert_int_equal(h_wait_result(a, 2000), 0);
    PGresult *r = PQgetResult(a);
    assert_true(h_now_ms() - t0 <= 2000);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014");
    PQclear(r);
    assert_null(PQgetResult(a));
    assert_int_equal(h_wait_result(b, 10000), 0);
    r = PQgetResult(b);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    assert_null(PQgetResult(b));
    assert_int_equal(h_exec(a, "SELECT 1"), 0);
    PQfinish(a);
    PQfinish(b);
    h_pass();
}

static void test_session_client_killed_mid_transaction(void **state)
{
    (void)state;
    assert_int_equal(h_exec(g_super, "UPDATE killed_t SET v = 0"), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        PGconn *c = h_connect(&g_main, "application_name=victim");
        int ok = PQstatus(c) == CONNECTION_OK && h_exec(c, "BEGIN") == 0 &&
                 h_exec(c, "UPDATE killed_t SET v = v + 1 WHERE id = 1") == 0;
        if (write(p[1], ok ? "x" : "F", 1) != 1)
            _exit(2);
        for (;;)
            pause();
    }
    h_track_pid(pid);
    close(p[1]);
    struct pollfd pfd = { .fd = p[0], .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, 20000), 1);
    char ch = 0;
    assert_int_equal(read(p[0], &ch, 1), 1);
    close(p[0]);
    assert_int_equal(ch, 'x');
    const char *idle_tx = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' "
                          "AND state IN ('idle in transaction', 'idle in transaction (aborted)')";
    assert_int_equal(h_pg_wait_long(g_super, idle_tx, 1, 10000), 1);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    h_untrack_pid(pid);
    assert_int_equal(h_pg_wait_long(g_super, idle_tx, 0, 15000), 0);

    PGconn *c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "BEGIN; SET LOCAL lock_timeout = '5s'; "
                               "UPDATE killed_t SET v = v + 10 WHERE id = 1; COMMIT"), 0);
    char *v = must_query1(c, "SELECT v FROM killed_t WHERE id = 1");
    assert_string_equal(v, "10");
    free(v);
    PQfinish(c);
    h_pass();
}

static void test_session_server_backend_terminated(void **state)
{
    (void)state;
    PGconn *a = h_connect(&g_main, "application_name=victim_sess");
    PGconn *b = h_connect(&g_main, "application_name=bystander_sess");
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(h_exec(a, "SELECT 1"), 0);
    assert_int_equal(h_exec(b, "SELECT 1"), 0);
    /* Find a's backend by its application_name, as an operator would. */
    const char *find = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'victim_sess'";
    assert_int_equal(h_pg_wait_long(g_super, find, 1, 10000), 1);
    char *t = must_query1(g_super, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE application_name = 'victim_sess'");
    assert_string_equal(t, "t");
    free(t);
    assert_int_equal(h_pg_wait_long(g_super, find, 0, 10000), 0);

    PGresult *r = PQexec(a, "SELECT 'should not run'");
    ExecStatusType st = PQresultStatus(r);
    fprintf(stderr, "after terminate: %s %s", PQresStatus(st), PQerrorMessage(a));
    assert_true(st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR);
    PQclear(r);

    assert_int_equal(h_exec(b, "SELECT 2"), 0);
    PGconn *c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    char *v = must_query1(c, "SELECT 'fresh'");
    assert_string_equal(v, "fresh");
    free(v);
    PQfinish(a);
    PQfinish(b);
    PQfinish(c);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

/* Starts a session query on a non-blocking connection that may have to wait for a server. */
static PGconn *queued_client(struct h_pglane *l, int *connected)
{
    PGconn *c = h_connect_start(l, "application_name=queued dbname=qdb");
    assert_non_null(c);
    /* Depending on the proxy, the wait happens at login or at the first query. */
    int r = h_connect_finish(c, 500);
    *connected = r == 0;
    if (r == 0)
        assert_int_equal(PQsendQuery(c, "SELECT 'served'"), 1);
    else
        assert_int_equal(r, -2);   /* still logging in: waiting, not failed */
    return c;
}

/* Waits for the queued client's answer: 1 served, 0 an error (or failed login), -1 timeout. */
static int queued_outcome(PGconn *c, int connected, int timeout_ms, char *err, size_t errn)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    if (!connected) {
        int r = h_connect_finish(c, timeout_ms);
        if (r == -2)
            return -1;
        if (r == -1) {
            snprintf(err, errn, "%s", PQerrorMessage(c));
            return 0;
        }
        if (PQsendQuery(c, "SELECT 'served'") != 1)
            return 0;
    }
    int64_t left = deadline - h_now_ms();
    if (h_wait_result(c, left > 0 ? (int)left : 0) != 0)
        return -1;
    PGresult *r = PQgetResult(c);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    snprintf(err, errn, "%s", PQresultErrorMessage(r));
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
    return ok;
}

static void test_session_queue_fifo(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "session", 1, "scram-sha-256", NULL);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *a = h_connect(&l, "dbname=qdb");
    H_ASSERT_CONNECTED(a);
    assert_int_equal(h_exec(a, "SELECT 1"), 0);
    int connected;
    PGconn *b = queued_client(&l, &connected);
    /* While a holds the only server connection, b gets nothing (observed for 500 ms). */
    char err[512];
    assert_int_equal(queued_outcome(b, connected, 500, err, sizeof err), -1);
    assert_int_equal(h_pg_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'qdb'"), 1);
    PQfinish(a);
    /* a left: b is served. */
    int r = queued_outcome(b, connected, 10000, err, sizeof err);
    if (r != 1)
        print_error("queued client: %d %s\n", r, err);
    assert_int_equal(r, 1);
    PQfinish(b);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

static void test_session_queue_timeout(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "session", 1, "scram-sha-256", NULL);
    char *q = strstr(conf, "queue_timeout = 30s");
    assert_non_null(q);
    memcpy(q, "queue_timeout = 1s ", strlen("queue_timeout = 1s "));
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *a = h_connect(&l, "dbname=qdb");
    H_ASSERT_CONNECTED(a);
    assert_int_equal(h_exec(a, "SELECT 1"), 0);
    int64_t t0 = h_now_ms();
    int connected;
    PGconn *b = queued_client(&l, &connected);
    char err[512] = "";
    int r = queued_outcome(b, connected, 15000, err, sizeof err);
    int64_t waited = h_now_ms() - t0;
    fprintf(stderr, "queue timeout after %lld ms: %s\n", (long long)waited, err);
    assert_int_equal(r, 0);                  /* an error, not a hang and not a result */
    assert_true(waited >= 900 && waited < 10000);
    assert_true(strlen(err) > 0);
    /* a is unaffected. */
    assert_int_equal(h_exec(a, "SELECT 2"), 0);
    PQfinish(a);
    PQfinish(b);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_session_simple_and_extended),
        H_TEST(test_named_prepared_statements),
        H_TEST(test_session_psql),
        H_TEST(test_session_pgbench),
        H_TEST(test_listen_notify),
        H_TEST(test_session_cancel),
        H_TEST(test_session_client_killed_mid_transaction),
        H_TEST(test_session_server_backend_terminated),
        H_TEST(test_session_queue_fifo),
        H_TEST(test_session_queue_timeout),
    };
    return H_RUN_GROUP("integration: core, session pooling", tests,
                       .pg = &g_pg, .super = &g_super, .setup = fixtures);
}
