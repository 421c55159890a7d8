/*
 * Hardening issue, faults against a real PostgreSQL: a restart under pgbench load, a terminated
 * pooled backend, clients killed during COPY and during a large result, a very slow reader of a
 * 200 MB result, and a server that accepts TCP but never answers.
 */
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct h_pg g_pg;

/* The users' backends that a client's death may leave behind: in a transaction or still running. */
#define STUCK_SQL(pattern) \
    "SELECT count(*) FROM pg_stat_activity WHERE usename = '" H_USER "' AND (state LIKE 'idle in transaction%' " \
    "OR (state = 'active' AND query LIKE '" pattern "'))"

static int fixtures(void)
{
    if (h_pgbench_init(&g_pg, H_DB) != 0)
        return -1;
    return h_pg_exec(&g_pg, H_DB, "CREATE TABLE copy_kill (i int, t text); "
                                  "ALTER TABLE copy_kill OWNER TO " H_USER);
}

/* ------------------------------------------------------------------------------------------ helpers */

/* VmRSS of pid in kB (the field is tab-separated, which h_parse_after does not skip), or -1. */
static long proc_rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *s = h_read_file(path);
    const char *p = s ? strstr(s, "VmRSS:") : NULL;
    long kb = p ? strtol(p + 6, NULL, 10) : -1;
    free(s);
    return kb;
}

/* The result of a query sent earlier must arrive within timeout_ms and be an error carrying an
 * SQLSTATE (an ErrorResponse, not just libpq's "connection lost"). Returns a static copy of it. */
static const char *expect_error_result(PGconn *c, int timeout_ms)
{
    static char state[8];
    state[0] = '\0';
    assert_int_equal(h_wait_result(c, timeout_ms), 0);
    PGresult *r = PQgetResult(c);
    assert_non_null(r);
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    fprintf(stderr, "client error: status %s sqlstate %s: %s", PQresStatus(PQresultStatus(r)), s ? s : "(none)",
            PQerrorMessage(c));
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    snprintf(state, sizeof state, "%s", s ? s : "");
    PQclear(r);
    /* Drain whatever follows (nothing, or the end of a broken connection) without blocking long. */
    for (int i = 0; i < 8 && h_wait_result(c, 2000) == 0 && (r = PQgetResult(c)) != NULL; i++)
        PQclear(r);
    return state;
}

/* Connects and runs one transaction through l; 0 on success. Quiet on failure. */
static int one_transaction(const struct h_pglane *l)
{
    PGconn *c = h_connect(l, "connect_timeout=5");
    int ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, "BEGIN; SELECT abalance FROM pgbench_accounts WHERE aid = 1; COMMIT");
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    PQfinish(c);
    return ok ? 0 : -1;
}

/* Waits until a new client through l runs a transaction, up to timeout_ms. 0 or -1. */
static int wait_transaction_ok(const struct h_pglane *l, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    while (one_transaction(l) != 0) {
        if (h_now_ms() >= deadline)
            return -1;
        h_sleep_ms(100);
    }
    return 0;
}

/* A pglane in transaction mode with one lane of `size` and a short queue_timeout, so that a leaked
 * server connection shows up as a queue timeout of the next client. */
static void start_lane(struct h_pglane *l, int size, const char *auth)
{
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", size, auth, "server_idle_timeout = 60s\n");
    char *q = strstr(conf, "queue_timeout = 30s");
    assert_non_null(q);
    memcpy(q, "queue_timeout = 5s ", 19);
    assert_int_equal(h_pglane_start(l, &g_pg, conf), 0);
}

/* Forks a child that runs fn(conninfo, ready_fd) and never returns; waits (10 s) for its ready byte. */
static pid_t fork_child(const struct h_pglane *l, void (*fn)(const char *ci, int ready_fd))
{
    char ci[1024];
    int pfd[2];
    h_conninfo(l, NULL, ci, sizeof ci);
    assert_int_equal(pipe(pfd), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        signal(SIGALRM, SIG_DFL);
        alarm(120);
        fn(ci, pfd[1]);
        _exit(3);
    }
    h_track_pid(pid);
    close(pfd[1]);
    struct pollfd p = { .fd = pfd[0], .events = POLLIN };
    char b = 0;
    int ready = poll(&p, 1, 10000) == 1 && read(pfd[0], &b, 1) == 1 && b == 'r';
    close(pfd[0]);
    if (!ready)
        print_error("child %d did not report ready\n", (int)pid);
    assert_true(ready);
    return pid;
}

static void kill_child(pid_t pid)
{
    assert_int_equal(kill(pid, SIGKILL), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    h_untrack_pid(pid);
}

static void child_ready_then_hang(int ready_fd)
{
    if (write(ready_fd, "r", 1) != 1)
        _exit(2);
    for (;;)
        pause();
}

/* ------------------------------------------------------------------------------------------ tests */

/*
 * pg_ctl restart -m fast under pgbench load: the clients of broken transactions get an
 * ErrorResponse, pgbench reports errors instead of hanging, pglane keeps running, and new
 * transactions succeed afterwards without restarting pglane (no stale server connection is handed out).
 */
static void test_pg_restart_under_load(void **state)
{
    (void)state;
    struct h_pglane l;
    start_lane(&l, 10, "scram-sha-256");     /* pgbench's 8 clients and the 2 below never queue */
    pid_t lane_pid = l.pid;

    /* One client inside a transaction running a long statement, one idle inside a transaction. */
    PGconn *active = h_connect(&l, NULL), *idle = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(active);
    H_ASSERT_CONNECTED(idle);
    assert_int_equal(h_exec(idle, "BEGIN"), 0);
    assert_int_equal(h_exec(idle, "SELECT 1"), 0);
    assert_int_equal(h_exec(active, "BEGIN"), 0);
    assert_int_equal(PQsendQuery(active, "SELECT pg_sleep(60) /* restart victim */"), 1);

    struct h_proc pb;
    const char *args[] = { "-n", "-c", "8", "-j", "2", "-T", "6", NULL };
    assert_int_equal(h_pgbench_start(&pb, &l, H_DB, args), 0);

    PGconn *s = h_pg_super(&g_pg, "postgres");
    assert_non_null(s);
    assert_int_equal(h_pg_wait_long(s, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                       "AND query LIKE 'SELECT pg_sleep(60)%'", 1, 10000), 1);
    /* pgbench is running transactions: its statements show up in pg_stat_activity. */
    int64_t deadline = h_now_ms() + 15000;
    long running = 0;
    while ((running = h_pg_long(s, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' "
                                   "AND query LIKE '%pgbench_%'")) < 4 && h_now_ms() < deadline)
        h_sleep_ms(20);
    assert_true(running >= 4);
    PQfinish(s);

    int64_t t0 = h_now_ms();
    assert_int_equal(h_pg_ctl(&g_pg, "restart"), 0);
    fprintf(stderr, "restart took %lld ms\n", (long long)(h_now_ms() - t0));

    /* The statement in progress: PostgreSQL's FATAL (57P01) or pglane's own 08006. */
    const char *st = expect_error_result(active, 10000);
    assert_true(st[0] != '\0');
    /* The client idle in its transaction learns on its next statement, with an ErrorResponse. */
    assert_int_equal(PQsendQuery(idle, "SELECT 2"), 1);
    st = expect_error_result(idle, 10000);
    assert_true(st[0] != '\0');
    PQfinish(active);
    PQfinish(idle);

    char *out = NULL;
    int rc = h_proc_wait(&pb, 40000, &out);
    fprintf(stderr, "pgbench during the restart exited %d:\n%s\n", rc, out);
    assert_int_not_equal(rc, -1);                        /* it did not hang */
    assert_true(rc != 0 || strstr(out, "error") != NULL || strstr(out, "aborted") != NULL);
    free(out);

    assert_true(h_pglane_alive(&l));
    assert_int_equal(l.pid, lane_pid);
    assert_int_equal(wait_transaction_ok(&l, 20000), 0);
    /* Every client from now on succeeds at once: no dead server connection left in the pool. */
    for (int i = 0; i < 30; i++)
        assert_int_equal(one_transaction(&l), 0);
    const char *args2[] = { "-n", "-c", "8", "-j", "2", "-T", "2", NULL };
    assert_int_equal(h_pgbench_start(&pb, &l, H_DB, args2), 0);
    rc = h_proc_wait(&pb, 30000, &out);
    if (rc != 0 || h_parse_after(out, "number of failed transactions:") != 0)
        print_error("pgbench after the restart (%d):\n%s\n", rc, out);
    assert_int_equal(rc, 0);
    assert_int_equal(h_parse_after(out, "number of failed transactions:"), 0);
    assert_true(h_parse_after(out, "number of transactions actually processed:") > 0);
    free(out);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

static void terminate_and_wait(PGconn *s, long pid)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%ld)::int", pid);
    assert_int_equal(h_pg_long(s, sql), 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %ld", pid);
    assert_int_equal(h_pg_wait_long(s, sql, 0, 10000), 0);
}

/*
 * pg_terminate_backend of the server connection of a client inside a transaction (that client gets
 * an error), then of an idle pooled connection (no client notices); the lane of size 2 still runs
 * two transactions at once, so neither broken connection leaked a pool slot.
 */
static void test_terminate_backend(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    start_lane(&l, 2, "scram-sha-256");
    PGconn *s = h_pg_super(&g_pg, "postgres");
    assert_non_null(s);

    PGconn *victim = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(victim);
    assert_int_equal(h_exec(victim, "BEGIN"), 0);
    long p1 = h_backend_pid(victim);
    assert_true(p1 > 0);
    terminate_and_wait(s, p1);
    assert_int_equal(PQsendQuery(victim, "SELECT 1"), 1);
    const char *st = expect_error_result(victim, 10000);
    assert_true(st[0] != '\0');
    PQfinish(victim);

    /* An idle pooled connection dies: the next clients never see it. PostgreSQL sends its FATAL
     * 57P01 before the backend leaves pg_stat_activity, so pglane has been told by then. */
    PGconn *c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    long p2 = h_backend_pid(c);
    assert_true(p2 > 0 && p2 != p1);
    terminate_and_wait(s, p2);
    for (int i = 0; i < 10; i++) {
        long p = h_backend_pid(c);
        assert_true(p > 0 && p != p1 && p != p2);
    }
    /* Two transactions at once on a lane of size 2: both slots are back. */
    PGconn *a = h_connect(&l, NULL), *b = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(h_exec(a, "BEGIN"), 0);
    assert_int_equal(h_exec(b, "BEGIN"), 0);
    long pa = h_backend_pid(a), pb = h_backend_pid(b);
    assert_true(pa > 0 && pb > 0 && pa != pb);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND pid IN (%ld, %ld)",
             pa, pb);
    assert_int_equal(h_pg_long(s, sql), 2);
    assert_int_equal(h_exec(a, "COMMIT"), 0);
    assert_int_equal(h_exec(b, "COMMIT"), 0);
    PQfinish(a);
    PQfinish(b);
    PQfinish(c);
    PQfinish(s);
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

static void child_copy(const char *ci, int ready_fd)
{
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK)
        _exit(2);
    PGresult *r = PQexec(c, "COPY copy_kill FROM STDIN");
    if (PQresultStatus(r) != PGRES_COPY_IN)
        _exit(2);
    PQclear(r);
    char row[64];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(row, sizeof row, "%d\trow %d\n", i, i);
        if (PQputCopyData(c, row, n) != 1)
            _exit(2);
    }
    if (PQflush(c) != 0)
        _exit(2);
    child_ready_then_hang(ready_fd);
}

static void child_big_result(const char *ci, int ready_fd)
{
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK)
        _exit(2);
    if (!PQsendQuery(c, "SELECT generate_series(1, 5000000) /* killed reader */") || !PQsetSingleRowMode(c))
        _exit(2);
    for (int i = 0; i < 5; i++) {
        PGresult *r = PQgetResult(c);
        if (PQresultStatus(r) != PGRES_SINGLE_TUPLE)
            _exit(2);
        PQclear(r);
    }
    child_ready_then_hang(ready_fd);
}

/*
 * A client SIGKILLed in the middle of COPY FROM STDIN, then one killed while reading a large
 * result: no backend is left in a transaction or still running the statement, the partial COPY
 * is not committed, and a lane of size 1 still serves new clients (the connection did not leak).
 */
static void test_client_killed_mid_copy_and_result(void **state)
{
    (void)state;
    struct h_pglane l;
    start_lane(&l, 1, "scram-sha-256");
    PGconn *s = h_pg_super(&g_pg, H_DB);
    assert_non_null(s);

    pid_t child = fork_child(&l, child_copy);
    assert_int_equal(h_pg_wait_long(s, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                       "AND query LIKE 'COPY copy_kill%'", 1, 10000), 1);
    kill_child(child);
    assert_int_equal(h_pg_wait_long(s, STUCK_SQL("COPY copy_kill%"), 0, 10000), 0);
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM copy_kill"), 0);
    assert_int_equal(one_transaction(&l), 0);

    child = fork_child(&l, child_big_result);
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                  "AND query LIKE 'SELECT generate_series(1, 5000000)%'"), 1);
    kill_child(child);
    assert_int_equal(h_pg_wait_long(s, STUCK_SQL("SELECT generate_series(1, 5000000)%"), 0, 15000), 0);
    assert_int_equal(one_transaction(&l), 0);
    PGconn *c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    char *v = h_query1(c, "SELECT count(*) FROM generate_series(1, 1000)");
    assert_non_null(v);
    assert_string_equal(v, "1000");
    free(v);
    PQfinish(c);
    PQfinish(s);
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* Logs in over a raw socket with a tiny receive buffer (auth trust) and waits for ReadyForQuery. */
static int raw_login_small_rcvbuf(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    uint8_t buf[256];
    size_t n = h_raw_startup(buf, sizeof buf, 196608, H_USER, H_DB);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || h_raw_send(fd, buf, n) != 0) {
        close(fd);
        return -1;
    }
    for (;;) {
        uint8_t *body;
        uint32_t len;
        int t = h_raw_read_msg(fd, 10000, &body, &len);
        free(body);
        if (t == 'Z')
            return fd;
        if (t < 0 || t == 'E') {
            close(fd);
            return -1;
        }
    }
}

/*
 * A client that reads a 200 MB result at a few hundred kB/s: the server ends up blocked on
 * ClientWrite and pglane's RSS stays within 64 MB of its baseline while the result streams; after
 * the reader is gone the backend stops and the lane (size 1) serves the next client.
 */
static void test_slow_reader_memory_bounded(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    start_lane(&l, 1, "trust");
    PGconn *s = h_pg_super(&g_pg, "postgres");
    assert_non_null(s);
    int fd = raw_login_small_rcvbuf(l.port);
    assert_true(fd >= 0);
    long base = proc_rss_kb(l.pid), peak = base;
    assert_true(base > 0);

    static const char sql[] = "SELECT repeat('x', 1000) FROM generate_series(1, 200000) /* slow reader */";
    uint8_t q[128];
    q[0] = 'Q';
    uint32_t ql = (uint32_t)(4 + sizeof sql);
    q[1] = (uint8_t)(ql >> 24), q[2] = (uint8_t)(ql >> 16), q[3] = (uint8_t)(ql >> 8), q[4] = (uint8_t)ql;
    memcpy(q + 5, sql, sizeof sql);
    assert_int_equal(h_raw_send(fd, q, 5 + sizeof sql), 0);

    /* The workload: 4 kB every 5 ms for 8 s (about 6 MB of the 200 MB). */
    long got = 0, blocked = 0;
    int64_t end = h_now_ms() + 8000, next_sample = 0;
    char chunk[4096];
    while (h_now_ms() < end) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 5) == 1) {
            ssize_t r = read(fd, chunk, sizeof chunk);
            assert_true(r > 0);
            got += r;
        }
        usleep(5000);
        if (h_now_ms() >= next_sample) {
            long rss = proc_rss_kb(l.pid);
            assert_true(rss > 0);          /* pglane is alive */
            if (rss > peak)
                peak = rss;
            if (!blocked)
                blocked = h_pg_long(s, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'ClientWrite' "
                                       "AND query LIKE 'SELECT repeat(''x'', 1000)%'");
            next_sample = h_now_ms() + 100;
        }
    }
    fprintf(stderr, "slow reader: read %ld kB; pglane RSS baseline %ld kB, peak %ld kB\n", got / 1024, base, peak);
    assert_true(got > 64 * 1024);          /* the result was streaming */
    assert_int_equal(blocked, 1);          /* and the server was held back, not drained into pglane */
    assert_true(peak - base < 64 * 1024);

    /* The reader dies (close with unread data: a reset). */
    struct linger lg = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    assert_int_equal(h_pg_wait_long(s, STUCK_SQL("SELECT repeat(''x'', 1000)%"), 0, 15000), 0);
    assert_int_equal(one_transaction(&l), 0);
    assert_true(proc_rss_kb(l.pid) - base < 64 * 1024);
    PQfinish(s);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* A loopback listener that never accepts: the kernel completes handshakes into its backlog. */
static int blackhole_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

/* Accepts every queued connection and checks that the peer (pglane) closed each within 3 s.
 * Returns how many there were, or -1 if one stayed open. */
static int backlog_all_closed(int lfd)
{
    int n = 0;
    for (;;) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        if (poll(&p, 1, n == 0 ? 2000 : 200) != 1)
            return n;
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            return n;
        n++;
        int64_t deadline = h_now_ms() + 3000;
        char buf[512];
        ssize_t r = 1;
        while (r > 0 && h_now_ms() < deadline) {
            struct pollfd q = { .fd = c, .events = POLLIN };
            if (poll(&q, 1, 100) == 1)
                r = read(c, buf, sizeof buf);
        }
        close(c);
        if (r > 0 || (r < 0 && errno != ECONNRESET))
            return -1;
    }
}

static void test_server_never_answers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    int hole_port = 0;
    int lfd = blackhole_listener(&hole_port);
    assert_true(lfd >= 0);
    char conf[4096];
    snprintf(conf, sizeof conf,
             "[pglane]\nlisten = 127.0.0.1:@PORT@\nauth_type = scram-sha-256\nauth_file = @AUTHFILE@\n"
             "pool_mode = transaction\ndefault_lane = main\nlog_level = info\n\n"
             "[server.pg]\nhost = 127.0.0.1\nport = @PGPORT@\n\n"
             "[server.hole]\nhost = 127.0.0.1\nport = %d\n\n"
             "[lane.main]\nserver = pg\nsize = 2\nqueue_timeout = 5s\n\n"
             "[lane.hole]\nserver = hole\nsize = 2\nqueue_timeout = 30s\nserver_connect_timeout = 1s\n\n"
             "[route.hole]\napplication_name = hole*\nlane = hole\n",
             hole_port);
    struct h_pglane l;
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);

    int64_t t0 = h_now_ms();
    PGconn *c = h_connect(&l, "application_name=hole-client");
    const char *msg;
    PGresult *r = NULL;
    if (PQstatus(c) == CONNECTION_OK) {
        assert_int_equal(PQsendQuery(c, "SELECT 1"), 1);
        assert_int_equal(h_wait_result(c, 10000), 0);
        r = PQgetResult(c);
        assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        assert_non_null(st);
        assert_string_equal(st, "08006");
        msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    } else {
        msg = PQerrorMessage(c);      /* refused during login: libpq keeps only the text */
    }
    int64_t took = h_now_ms() - t0;
    fprintf(stderr, "never-answering server: error after %lld ms: %s\n", (long long)took, msg ? msg : "");
    assert_non_null(msg);
    assert_non_null(strstr(msg, "server_connect_timeout"));
    assert_true(took >= 900 && took <= 3500);
    PQclear(r);
    PQfinish(c);

    /* pglane closed the connection it had opened to the black hole. */
    assert_true(backlog_all_closed(lfd) >= 1);
    close(lfd);
    assert_true(h_pglane_alive(&l));
    PGconn *ok = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(ok);
    char *v = h_query1(ok, "SELECT 'main lane fine'");
    assert_non_null(v);
    free(v);
    PQfinish(ok);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_terminate_backend),
        H_TEST(test_client_killed_mid_copy_and_result),
        H_TEST(test_slow_reader_memory_bounded),
        H_TEST(test_server_never_answers),
        H_TEST(test_pg_restart_under_load),
    };
    return H_RUN_GROUP("integration: faults", tests, .pg = &g_pg, .setup = fixtures);
}
