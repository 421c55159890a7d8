/*
 * Issue 17, proxy-side timeouts and the check of pooled server connections (PgBouncer's keys):
 * client_idle_timeout closes a client idle between transactions (57P05) and leaves a busy one alone;
 * idle_transaction_timeout (here a lane's own, overriding [pglane]'s) ends a client idle inside a
 * transaction (25P03), rolls the transaction back and frees the lane's only slot for the next client;
 * server_check_delay / server_check_query catch a pooled connection whose backend was terminated
 * before a client's query could be sent on it (with server_retry = 0, so the check is what saves it).
 * server_login_retry keeps a refused login from being retried at once for the next client.
 * The timeouts are 300 ms and the maintenance tick checks them once a second: the tests poll with
 * deadlines, they never sleep to wait for an event.
 */
#include "tests/integration/harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct h_pg g_pg;

static int fixtures(void)
{
    return h_pg_exec(&g_pg, H_DB, "DROP TABLE IF EXISTS t_idle_tx; CREATE TABLE t_idle_tx (v int); "
                                  "GRANT ALL ON t_idle_tx TO " H_USER);
}

static void start(struct h_pglane *l, int size, const char *pglane_extra, const char *lane_extra)
{
    char conf[4096];

    h_conf(conf, sizeof conf, "transaction", size, "trust", pglane_extra);
    if (lane_extra)
        strncat(conf, lane_extra, sizeof conf - strlen(conf) - 1);
    assert_int_equal(h_pglane_start(l, &g_pg, conf), 0);
}

/* Reads messages up to ReadyForQuery: its transaction status, or -1 (an error is printed). */
static int raw_until_ready(int fd, int timeout_ms)
{
    for (;;) {
        uint8_t *body = NULL;
        uint32_t len = 0;
        int t = h_raw_read_msg(fd, timeout_ms, &body, &len);

        if (t < 0) {
            print_error("no ReadyForQuery (%d)\n", t);
            return -1;
        }
        if (t == 'E')
            print_error("ErrorResponse %s: %s\n", h_error_field(body, len, 'C'), h_error_field(body, len, 'M'));
        int status = t == 'Z' && len >= 1 ? body[0] : 0;
        free(body);
        if (t == 'Z')
            return status;
    }
}

/* A raw client logged in through l (trust): the socket, at its first ReadyForQuery. */
static int raw_login(const struct h_pglane *l)
{
    uint8_t buf[256];
    int fd = h_raw_connect(l->port);

    assert_true(fd >= 0);
    size_t n = h_raw_startup(buf, sizeof buf, 196608, H_USER, H_DB);
    assert_int_equal(h_raw_send(fd, buf, n), 0);
    assert_int_equal(raw_until_ready(fd, 10000), 'I');
    return fd;
}

static void raw_query(int fd, const char *sql)
{
    uint8_t buf[512];
    size_t len = strlen(sql) + 1;

    assert_true(len + 5 <= sizeof buf);
    buf[0] = 'Q';
    h_put32(buf + 1, (uint32_t)(4 + len));
    memcpy(buf + 5, sql, len);
    assert_int_equal(h_raw_send(fd, buf, 5 + len), 0);
}

static int count_substr(const char *text, const char *needle)
{
    int n = 0;

    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* An idle client is closed with 57P05 after client_idle_timeout; a client whose query runs longer
 * than that is not, and gets its answer. */
static void test_client_idle_timeout(void **state)
{
    (void)state;
    struct h_pglane l;
    start(&l, 4, "server_idle_timeout = 60s\nclient_idle_timeout = 300ms\n", NULL);

    int idle = raw_login(&l);
    raw_query(idle, "SELECT 1");
    assert_int_equal(raw_until_ready(idle, 5000), 'I');
    int busy = raw_login(&l);
    int64_t t0 = h_now_ms();
    raw_query(busy, "SELECT pg_sleep(2)");

    char st[6] = "", msg[256] = "";
    assert_int_equal(h_raw_error(idle, 5000, st, msg, sizeof msg), 1);
    int64_t waited = h_now_ms() - t0;
    fprintf(stderr, "idle client closed after %lld ms: %s %s\n", (long long)waited, st, msg);
    assert_string_equal(st, "57P05");
    assert_non_null(strstr(msg, "client_idle_timeout"));
    assert_int_equal(h_raw_read_byte(idle, 5000), H_RAW_EOF);   /* FATAL, then the close */
    close(idle);

    /* The busy client ran past the timeout (pg_sleep(2) against 300 ms) and gets its answer. */
    assert_int_equal(raw_until_ready(busy, 10000), 'I');
    assert_true(h_now_ms() - t0 >= 2000);
    /* Idle from now on: it is closed in turn. */
    assert_int_equal(h_raw_error(busy, 5000, st, msg, sizeof msg), 1);
    assert_string_equal(st, "57P05");
    close(busy);

    char *log = h_pglane_log(&l);
    assert_true(count_substr(log, "client_idle_timeout (300 ms)") >= 2);
    free(log);
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/*
 * Lane of size 1 with its own idle_transaction_timeout (300 ms, [pglane]'s is 10 min): a client that
 * inserted a row in an open transaction and then went quiet is closed with 25P03; its row is rolled
 * back, and the client queued behind it for the lane's only connection is served right after.
 */
static void test_idle_transaction_timeout(void **state)
{
    (void)state;
    struct h_pglane l;
    start(&l, 1, "server_idle_timeout = 60s\nidle_transaction_timeout = 10min\n", "idle_transaction_timeout = 300ms\n");
    assert_int_equal(h_pg_exec(&g_pg, H_DB, "TRUNCATE t_idle_tx"), 0);

    int holder = raw_login(&l);
    raw_query(holder, "BEGIN; INSERT INTO t_idle_tx VALUES (1)");
    assert_int_equal(raw_until_ready(holder, 5000), 'T');
    int64_t t0 = h_now_ms();

    PGconn *next = h_connect(&l, "application_name=next");
    H_ASSERT_CONNECTED(next);
    assert_int_equal(PQsendQuery(next, "SELECT count(*) FROM t_idle_tx"), 1);

    char st[6] = "", msg[256] = "";
    assert_int_equal(h_raw_error(holder, 5000, st, msg, sizeof msg), 1);
    fprintf(stderr, "idle transaction ended after %lld ms: %s %s\n", (long long)(h_now_ms() - t0), st, msg);
    assert_string_equal(st, "25P03");
    assert_non_null(strstr(msg, "idle_transaction_timeout (300 ms)"));
    assert_non_null(strstr(msg, "lane \"main\""));
    assert_int_equal(h_raw_read_byte(holder, 5000), H_RAW_EOF);
    close(holder);

    /* The queued client got the slot: its query sees no row (the insert was rolled back). */
    assert_int_equal(h_wait_result(next, 10000), 0);
    PGresult *r = PQgetResult(next);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "0");
    PQclear(r);
    while ((r = PQgetResult(next)) != NULL)
        PQclear(r);
    PQfinish(next);
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/*
 * Lane of size 1, server_retry = 0. A client's pooled connection is terminated by
 * pg_terminate_backend while pglane is stopped (SIGSTOP) and after the client's next query reached
 * pglane's socket, so that pglane sees the query before the backend's FATAL and close. Returns 1 if
 * the client's query succeeded on another backend, 0 if the client got an error; *lost_check gets the
 * log's "lost (check_failed)" count.
 */
static int query_after_idle_kill(const char *pglane_extra, int *lost_check)
{
    struct h_pglane l;
    start(&l, 1, pglane_extra, "server_retry = 0\n");

    PGconn *c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    long pid1 = h_backend_pid(c);
    assert_true(pid1 > 0);
    PGconn *s = h_pg_super(&g_pg, H_DB);
    assert_non_null(s);
    char sql[160];
    /* The transaction is over: the connection is idle in the pool. */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %ld AND state = 'idle'", pid1);
    assert_int_equal(h_pg_wait_long(s, sql, 1, 5000), 1);

    assert_int_equal(h_pglane_signal(&l, SIGSTOP), 0);
    assert_int_equal(PQsendQuery(c, "SELECT pg_backend_pid()"), 1);
    while (PQflush(c) == 1)
        ;
    snprintf(sql, sizeof sql, "SELECT count(pg_terminate_backend(%ld))", pid1);
    long killed = h_pg_long(s, sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %ld", pid1);
    long gone = h_pg_wait_long(s, sql, 0, 5000);
    assert_int_equal(h_pglane_signal(&l, SIGCONT), 0);
    assert_int_equal(killed, 1);
    assert_int_equal(gone, 0);

    assert_int_equal(h_wait_result(c, 10000), 0);
    PGresult *r = PQgetResult(c);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (ok)
        assert_true(atol(PQgetvalue(r, 0, 0)) != pid1);
    else
        fprintf(stderr, "the query failed: %s", PQresultErrorMessage(r));
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
    PQfinish(c);
    PQfinish(s);
    char *log = h_pglane_log(&l);
    *lost_check = count_substr(log, "lost (check_failed)");
    free(log);
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_pglane_stop(&l), 0);
    return ok;
}

static void test_server_check_catches_dead_connection(void **state)
{
    (void)state;
    int lost = -1;

    /* server_check_delay = 0: every reuse is checked; the check meets the dead backend, not the query. */
    assert_int_equal(query_after_idle_kill("server_idle_timeout = 60s\nserver_check_delay = 0\n", &lost), 1);
    assert_int_equal(lost, 1);
    /* A check query of one's own works the same way. */
    assert_int_equal(query_after_idle_kill("server_idle_timeout = 60s\nserver_check_delay = 0\n"
                                           "server_check_query = SELECT 1\n", &lost), 1);
    assert_int_equal(lost, 1);
    /* Control: the connection was idle less than server_check_delay, so it is not checked: the query
     * is sent on the dead connection and, with server_retry = 0, the client gets the error. */
    assert_int_equal(query_after_idle_kill("server_idle_timeout = 60s\nserver_check_delay = 10min\n", &lost), 0);
    assert_int_equal(lost, 0);
    h_pass();
}

/*
 * server_login_retry = 2s: PostgreSQL refuses the login of role app (NOLOGIN); the first client gets
 * that error. A second client that arrives right after is not sent into another login: it waits
 * (still connecting after 500 ms), the role may log in again meanwhile, and once the retry time is up
 * pglane logs in and the client connects. One refused login in the log: no hammering.
 */
static void test_server_login_retry(void **state)
{
    (void)state;
    struct h_pglane l;
    start(&l, 2, "server_idle_timeout = 60s\nserver_login_retry = 2s\n", NULL);
    assert_int_equal(h_pg_exec(&g_pg, H_DB, "ALTER ROLE " H_USER " NOLOGIN"), 0);

    PGconn *first = h_connect(&l, "dbname=" H_BENCH_DB);   /* a fresh pool: its login needs a server */
    int refused = PQstatus(first) != CONNECTION_OK;
    fprintf(stderr, "first client: %s", PQerrorMessage(first));
    int has_28000 = strstr(PQerrorMessage(first), "not permitted to log in") != NULL;
    PQfinish(first);
    int64_t t_fail = h_now_ms();
    PGconn *second = h_connect_start(&l, "dbname=" H_BENCH_DB);
    assert_non_null(second);
    int early = h_connect_finish(second, 500);              /* time passing is what is tested here */
    int relogin = h_pg_exec(&g_pg, H_DB, "ALTER ROLE " H_USER " LOGIN");
    assert_int_equal(relogin, 0);
    assert_true(refused);
    assert_true(has_28000);
    assert_int_equal(early, -2);                            /* no second login was tried at once */
    assert_int_equal(h_connect_finish(second, 10000), 0);
    int64_t waited = h_now_ms() - t_fail;
    fprintf(stderr, "second client connected %lld ms after the refused login\n", (long long)waited);
    assert_true(waited >= 1500);
    char *v = h_query1(second, "SELECT 'in'");
    assert_non_null(v);
    assert_string_equal(v, "in");
    free(v);
    PQfinish(second);
    char *log = h_pglane_log(&l);
    assert_int_equal(count_substr(log, "login failed: 28000"), 1);
    free(log);
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_client_idle_timeout),
        H_TEST(test_idle_transaction_timeout),
        H_TEST(test_server_check_catches_dead_connection),
        H_TEST(test_server_login_retry),
    };
    return H_RUN_GROUP("integration: timeouts and server checks", tests, .pg = &g_pg, .setup = fixtures);
}
