/*
 * Core issue, pooling behaviour in transaction mode: 1,000 clients over 10 server connections,
 * per-client ParameterStatus after switching server connections, SETs that must not leak, clients
 * killed mid-transaction, and server backends that die.
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
static PGconn *g_super;

static int fixtures(void)
{
    return h_exec(g_super, "CREATE TABLE killed_t (id int PRIMARY KEY, v int);"
                           "INSERT INTO killed_t VALUES (1, 0), (2, 0);"
                           "ALTER TABLE killed_t OWNER TO app");
}

/* Starts a transaction-mode pglane with a lane of `size`, after the previous test's backends left. */
static void start_lane_auth(struct h_pglane *l, int size, const char *auth_type)
{
    assert_int_equal(h_pg_wait_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'",
                                    0, 10000), 0);
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", size, auth_type, NULL);
    assert_int_equal(h_pglane_start(l, &g_pg, conf), 0);
}

static void start_lane(struct h_pglane *l, int size)
{
    start_lane_auth(l, size, "scram-sha-256");
}

static void stop_lane(struct h_pglane *l)
{
    assert_true(h_pglane_alive(l));
    assert_int_equal(h_pglane_stop(l), 0);
}

static void assert_show(PGconn *c, const char *what, const char *want)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SHOW %s", what);
    char *v = h_query1(c, sql);
    assert_non_null(v);
    if (strcmp(v, want) != 0)
        print_error("SHOW %s: got \"%s\", want \"%s\"\n", what, v, want);
    assert_string_equal(v, want);
    free(v);
}

/* ------------------------------------------------------------------------------------------ */

#define NCLIENTS 1000
#define NSERVERS 10

static void sample_backends(long *max_seen)
{
    long n = h_pg_backends(g_super, H_USER);
    assert_true(n >= 0);
    if (n > *max_seen)
        *max_seen = n;
}

static void test_1000_clients_over_10_server_connections(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();   /* PostgreSQL itself allows 300 connections here */
    assert_true(h_raise_nofile(4 * NCLIENTS) >= 2 * NCLIENTS + 64);
    struct h_pglane l;
    /*
     * md5 between the clients and pglane: 1,000 SCRAM logins cost this test process (libpq's 4096
     * PBKDF2 rounds each, in one thread) up to a minute on a loaded CI machine, and this test is
     * about pooling. SCRAM is covered by every other test.
     */
    start_lane_auth(&l, NSERVERS, "md5");

    static PGconn *c[NCLIENTS];
    static PostgresPollingStatusType st[NCLIENTS];
    static struct pollfd pfd[NCLIENTS];
    static int idx[NCLIENTS];
    char ci[1024];
    h_conninfo(&l, "hostaddr=127.0.0.1 application_name=many", ci, sizeof ci);
    for (int i = 0; i < NCLIENTS; i++) {
        c[i] = PQconnectStart(ci);
        assert_non_null(c[i]);
        assert_int_not_equal(PQstatus(c[i]), CONNECTION_BAD);
        st[i] = PGRES_POLLING_WRITING;
    }

    /* Non-blocking logins of all 1,000 clients at once. */
    long max_seen = 0;
    int64_t deadline = h_now_ms() + 90000, next_sample = 0;
    for (;;) {
        int n = 0;
        for (int i = 0; i < NCLIENTS; i++) {
            if (st[i] == PGRES_POLLING_OK)
                continue;
            if (st[i] == PGRES_POLLING_FAILED)
                print_error("client %d: %s\n", i, PQerrorMessage(c[i]));
            assert_int_not_equal(st[i], PGRES_POLLING_FAILED);
            pfd[n].fd = PQsocket(c[i]);
            pfd[n].events = st[i] == PGRES_POLLING_READING ? POLLIN : POLLOUT;
            pfd[n].revents = 0;
            idx[n++] = i;
        }
        if (n == 0)
            break;
        assert_true(h_now_ms() < deadline);
        if (h_now_ms() >= next_sample) {
            sample_backends(&max_seen);
            next_sample = h_now_ms() + 50;
        }
        assert_true(poll(pfd, (nfds_t)n, 50) >= 0);
        for (int k = 0; k < n; k++)
            if (pfd[k].revents)
                st[idx[k]] = PQconnectPoll(c[idx[k]]);
    }
    for (int i = 0; i < NCLIENTS; i++)
        assert_int_equal(PQstatus(c[i]), CONNECTION_OK);

    /* Every client sends one query at once; each must get its own answer. */
    static int done[NCLIENTS];
    char sql[96];
    for (int i = 0; i < NCLIENTS; i++) {
        snprintf(sql, sizeof sql, "SELECT %d, pg_sleep(0.005)", i);
        assert_int_equal(PQsendQuery(c[i], sql), 1);
        done[i] = 0;
    }
    int remaining = NCLIENTS;
    while (remaining > 0) {
        int n = 0;
        for (int i = 0; i < NCLIENTS; i++)
            if (!done[i]) {
                pfd[n].fd = PQsocket(c[i]);
                pfd[n].events = POLLIN;
                pfd[n].revents = 0;
                idx[n++] = i;
            }
        if (h_now_ms() >= deadline)
            print_error("%d clients still waiting for their answer\n", remaining);
        assert_true(h_now_ms() < deadline);
        if (h_now_ms() >= next_sample) {
            sample_backends(&max_seen);
            next_sample = h_now_ms() + 50;
        }
        assert_true(poll(pfd, (nfds_t)n, 50) >= 0);
        for (int k = 0; k < n; k++) {
            int i = idx[k];
            if (!pfd[k].revents)
                continue;
            assert_int_equal(PQconsumeInput(c[i]), 1);
            if (PQisBusy(c[i]))
                continue;
            PGresult *r = PQgetResult(c[i]);
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                print_error("client %d: %s\n", i, PQresultErrorMessage(r));
            assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
            assert_int_equal(atoi(PQgetvalue(r, 0, 0)), i);
            PQclear(r);
            assert_null(PQgetResult(c[i]));
            done[i] = 1;
            remaining--;
        }
    }
    sample_backends(&max_seen);
    fprintf(stderr, "1000 clients: at most %ld server connections seen\n", max_seen);
    if (max_seen > NSERVERS)
        print_error("saw %ld server connections for a lane of %d\n", max_seen, NSERVERS);
    assert_true(max_seen >= 1 && max_seen <= NSERVERS);
    for (int i = 0; i < NCLIENTS; i++)
        PQfinish(c[i]);
    stop_lane(&l);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

/* Connects with startup parameters TimeZone and DateStyle (libpq sends PGTZ/PGDATESTYLE). */
static PGconn *connect_with(struct h_pglane *l, const char *extra, const char *tz, const char *datestyle)
{
    setenv("PGTZ", tz, 1);
    setenv("PGDATESTYLE", datestyle, 1);
    PGconn *c = h_connect(l, extra);
    unsetenv("PGTZ");
    unsetenv("PGDATESTYLE");
    return c;
}

static void test_parameter_status_per_client(void **state)
{
    (void)state;
    struct h_pglane l;
    start_lane(&l, 1);   /* both clients share one server connection */
    PGconn *a = connect_with(&l, "application_name=alpha client_encoding=LATIN1", "Asia/Tokyo", "SQL, DMY");
    PGconn *b = connect_with(&l, "application_name=beta client_encoding=UTF8", "America/New_York", "ISO, MDY");
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_string_equal(PQparameterStatus(a, "TimeZone"), "Asia/Tokyo");
    assert_string_equal(PQparameterStatus(b, "TimeZone"), "America/New_York");
    assert_string_equal(PQparameterStatus(a, "application_name"), "alpha");
    assert_string_equal(PQparameterStatus(b, "application_name"), "beta");

    for (int round = 0; round < 3; round++) {
        assert_show(a, "TimeZone", "Asia/Tokyo");
        assert_show(b, "TimeZone", "America/New_York");
        assert_show(a, "DateStyle", "SQL, DMY");
        assert_show(b, "DateStyle", "ISO, MDY");
        assert_show(a, "application_name", "alpha");
        assert_show(b, "application_name", "beta");
        assert_show(a, "client_encoding", "LATIN1");
        assert_show(b, "client_encoding", "UTF8");
    }
    /* The settings take effect, not just SHOW: dates render per client. */
    char *v = h_query1(a, "SELECT '2024-03-05'::date::text");
    assert_non_null(v);
    assert_string_equal(v, "05/03/2024");
    free(v);
    v = h_query1(b, "SELECT '2024-03-05'::date::text");
    assert_non_null(v);
    assert_string_equal(v, "2024-03-05");
    free(v);

    /* A client's SET of a reported parameter sticks to that client only. */
    assert_int_equal(h_exec(a, "SET TimeZone = 'Europe/Paris'"), 0);
    assert_int_equal(h_exec(a, "SET application_name = 'alpha2'"), 0);
    assert_int_equal(h_exec(b, "SET DateStyle = 'German'"), 0);
    for (int round = 0; round < 3; round++) {
        assert_show(b, "TimeZone", "America/New_York");
        assert_show(a, "TimeZone", "Europe/Paris");
        assert_show(b, "application_name", "beta");
        assert_show(a, "application_name", "alpha2");
        assert_show(a, "DateStyle", "SQL, DMY");
        assert_show(b, "DateStyle", "German, DMY");
    }
    assert_string_equal(PQparameterStatus(a, "TimeZone"), "Europe/Paris");
    assert_string_equal(PQparameterStatus(a, "application_name"), "alpha2");
    assert_string_equal(PQparameterStatus(b, "DateStyle"), "German, DMY");
    assert_string_equal(PQparameterStatus(b, "TimeZone"), "America/New_York");
    PQfinish(a);
    PQfinish(b);
    stop_lane(&l);
    h_pass();
}

static void test_set_does_not_leak(void **state)
{
    (void)state;
    struct h_pglane l;
    start_lane(&l, 1);
    PGconn *a = h_connect(&l, NULL);
    PGconn *b = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_show(b, "statement_timeout", "0");

    assert_int_equal(h_exec(a, "SET statement_timeout = '1234ms'"), 0);
    assert_int_equal(h_exec(a, "SET work_mem = '7MB'"), 0);
    assert_int_equal(h_exec(a, "SET search_path = pg_catalog"), 0);
    assert_show(b, "statement_timeout", "0");
    assert_show(b, "work_mem", "4MB");
    assert_show(b, "search_path", "\"$user\", public");

    /* A SET inside a committed transaction persists for the session: still not for b. */
    assert_int_equal(h_exec(a, "BEGIN; SET statement_timeout = '4321ms'; SET LOCAL lock_timeout = '99ms'; COMMIT"), 0);
    assert_show(b, "statement_timeout", "0");
    assert_show(b, "lock_timeout", "0");
    /* Through set_config too, and a prepared-statement-free temp setting via the extended protocol. */
    char *v = h_query1(a, "SELECT set_config('statement_timeout', '5555ms', false)");
    free(v);
    PGresult *r = PQexecParams(b, "SELECT current_setting('statement_timeout')", 0, NULL, NULL, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "0");
    PQclear(r);
    /* And a new client does not inherit anything either. */
    PGconn *c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    assert_show(c, "statement_timeout", "0");
    assert_show(c, "work_mem", "4MB");
    PQfinish(a);
    PQfinish(b);
    PQfinish(c);
    stop_lane(&l);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

/*
 * A child process opens a transaction that updates killed_t row `id` (and, if running_query,
 * leaves a pg_sleep running in it), reports through a pipe, and is SIGKILLed. Afterwards no app
 * backend may be left 'idle in transaction' and the row lock must be free.
 */
static void kill_client_mid_transaction(struct h_pglane *l, int id, int running_query)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        char upd[96];
        snprintf(upd, sizeof upd, "UPDATE killed_t SET v = v + 1 WHERE id = %d", id);
        PGconn *c = h_connect(l, "application_name=victim");
        int ok = PQstatus(c) == CONNECTION_OK && h_exec(c, "BEGIN") == 0 && h_exec(c, upd) == 0;
        if (ok && running_query)
            ok = PQsendQuery(c, "SELECT pg_sleep(4)") == 1;
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

    const char *open_sql = running_query
        ? "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND query = 'SELECT pg_sleep(4)' "
          "AND state = 'active'"
        : "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state = 'idle in transaction'";
    assert_int_equal(h_pg_wait_long(g_super, open_sql, 1, 10000), 1);   /* the test means something */

    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    h_untrack_pid(pid);

    long left = h_pg_wait_long(g_super,
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' "
        "AND state IN ('idle in transaction', 'idle in transaction (aborted)')", 0, 15000);
    assert_int_equal(left, 0);

    /* The row lock is gone and the killed transaction's update was rolled back. */
    PGconn *c = h_connect(l, NULL);
    H_ASSERT_CONNECTED(c);
    char sql[256];
    snprintf(sql, sizeof sql, "BEGIN; SET LOCAL lock_timeout = '5s'; UPDATE killed_t SET v = v + 10 "
                              "WHERE id = %d; COMMIT", id);
    assert_int_equal(h_exec(c, sql), 0);
    snprintf(sql, sizeof sql, "SELECT v FROM killed_t WHERE id = %d", id);
    char *v = h_query1(c, sql);
    assert_non_null(v);
    assert_string_equal(v, "10");
    free(v);
    PQfinish(c);
}

static void test_client_killed_mid_transaction(void **state)
{
    (void)state;
    struct h_pglane l;
    start_lane(&l, 2);
    assert_int_equal(h_exec(g_super, "UPDATE killed_t SET v = 0"), 0);
    kill_client_mid_transaction(&l, 1, 0);
    kill_client_mid_transaction(&l, 2, 1);
    stop_lane(&l);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

static void test_server_backend_terminated(void **state)
{
    (void)state;
    struct h_pglane l;
    start_lane(&l, 2);
    PGconn *a = h_connect(&l, "application_name=victim");
    PGconn *b = h_connect(&l, "application_name=bystander");
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(h_exec(b, "SELECT 1"), 0);

    /* In a transaction, a's server backend is fixed: find it and terminate it. */
    assert_int_equal(h_exec(a, "BEGIN"), 0);
    char *pid = h_query1(a, "SELECT pg_backend_pid()");
    assert_non_null(pid);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%s)", pid);
    char *t = h_query1(g_super, sql);
    assert_non_null(t);
    assert_string_equal(t, "t");
    free(t);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid);
    assert_int_equal(h_pg_wait_long(g_super, sql, 0, 10000), 0);
    free(pid);

    /* a's next query gets an error (an ErrorResponse or a closed connection), not a result. */
    PGresult *r = PQexec(a, "SELECT 'should not run'");
    ExecStatusType st = PQresultStatus(r);
    fprintf(stderr, "after terminate: %s %s", PQresStatus(st), PQerrorMessage(a));
    assert_true(st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR);
    PQclear(r);

    /* Other clients, and new ones, work. */
    assert_int_equal(h_exec(b, "SELECT 2"), 0);
    PGconn *c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    char *v = h_query1(c, "SELECT 'fresh'");
    assert_non_null(v);
    assert_string_equal(v, "fresh");
    free(v);
    PQfinish(a);
    PQfinish(b);
    PQfinish(c);
    stop_lane(&l);
    h_pass();
}

/* Idle pooled server connections that die must not cost a client (that had none attached) an error. */
static void test_idle_pooled_servers_terminated(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();   /* directly, the client's own backend dies */
    struct h_pglane l;
    start_lane(&l, 2);
    PGconn *a = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(a);
    assert_int_equal(h_exec(a, "SELECT 1"), 0);
    assert_true(h_pg_backends(g_super, H_USER) >= 1);
    char *v = h_query1(g_super, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE usename = 'app'");
    free(v);
    assert_int_equal(h_pg_wait_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'",
                                    0, 10000), 0);
    for (int i = 0; i < 3; i++) {
        PGresult *r = PQexec(a, "SELECT 'survived'");
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            print_error("query %d after idle servers died: %s\n", i, PQerrorMessage(a));
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
    }
    PQfinish(a);
    stop_lane(&l);
    h_pass();
}

/* Four server logins derived the keys once: once per worker whose pool made one (each worker has its
 * own pools), so once with one worker. */
static void assert_derivations(long n)
{
    int workers = h_workers() > 1 ? h_workers() : 1, most = workers < 4 ? workers : 4;

    if (n < 1 || n > most)
        print_error("%ld SCRAM key derivations for four server logins with %d worker(s)\n", n, workers);
    assert_true(n >= 1 && n <= most);
}

/* SCRAM to the server with a plaintext password in auth_file: the keys are derived (PBKDF2, about a
 * millisecond of pglane's CPU) once per pool, not at every server login, and again when the server's
 * salt changes (a new password, here the same one set again), so that the logins after it still work. */
static void test_server_scram_keys_derived_once(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    PGconn *c[4];
    char conf[4096], extra[128];
    int mport = h_free_port();

    assert_int_equal(h_pg_wait_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'",
                                    0, 10000), 0);
    snprintf(extra, sizeof extra, "metrics_listen = 127.0.0.1:%d\n", mport);
    h_conf(conf, sizeof conf, "transaction", 4, "scram-sha-256", extra);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    for (int i = 0; i < 4; i++) {
        c[i] = h_connect(&l, NULL);
        H_ASSERT_CONNECTED(c[i]);
        assert_int_equal(h_exec(c[i], "BEGIN; SELECT 1"), 0);   /* four transactions: four server logins */
    }
    assert_int_equal(h_pg_backends(g_super, H_USER), 4);
    long first = h_metric_now(mport, "pglane_server_scram_derivations_total");
    assert_derivations(first);
    for (int i = 0; i < 4; i++)
        assert_int_equal(h_exec(c[i], "COMMIT"), 0);

    char *before = h_query1(g_super, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'");
    assert_non_null(before);
    assert_int_equal(h_exec(g_super, "SET password_encryption = 'scram-sha-256'; "
                                     "ALTER ROLE app PASSWORD '" H_PASSWORD "'; RESET password_encryption"), 0);
    char *after = h_query1(g_super, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'");
    assert_non_null(after);
    assert_string_not_equal(before, after);   /* a new salt */
    free(before);
    free(after);
    free(h_query1(g_super, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'app'"));
    assert_int_equal(h_pg_wait_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'",
                                    0, 10000), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(h_exec(c[i], "BEGIN; SELECT 2"), 0);
    assert_int_equal(h_pg_backends(g_super, H_USER), 4);
    assert_derivations(h_metric_now(mport, "pglane_server_scram_derivations_total") - first);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(h_exec(c[i], "COMMIT"), 0);
        PQfinish(c[i]);
    }
    stop_lane(&l);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_parameter_status_per_client),
        H_TEST(test_set_does_not_leak),
        H_TEST(test_client_killed_mid_transaction),
        H_TEST(test_server_backend_terminated),
        H_TEST(test_idle_pooled_servers_terminated),
        H_TEST(test_server_scram_keys_derived_once),
        H_TEST(test_1000_clients_over_10_server_connections),
    };
    return H_RUN_GROUP("integration: core, pooling in transaction mode", tests,
                       .pg = &g_pg, .super = &g_super, .setup = fixtures);
}
