/*
 * Core issue, robustness: authentication failures (SQLSTATE 28P01), md5 / scram / trust, SSLRequest,
 * malformed input before and after authentication while another client keeps working,
 * max_client_conn, and the signals: SIGTERM drains, SIGINT exits at once, SIGHUP reloads.
 */
#include "tests/integration/harness.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static struct h_pg g_pg;
static struct h_pglane g_main;     /* transaction mode, lane size 4, scram-sha-256 */
static PGconn *g_super;

static int fixtures(void)
{
    if (h_exec(g_super, "CREATE TABLE drain_t (id int); ALTER TABLE drain_t OWNER TO app") != 0)
        return -1;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 4, "scram-sha-256", NULL);
    if (h_pglane_start(&g_main, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_main);
    return 0;
}

/* Sends a 'p' message with the given body. */
static void send_password_msg(int fd, const void *body, size_t n)
{
    uint8_t hdr[5] = { 'p' };
    h_put32(hdr + 1, (uint32_t)(n + 4));
    assert_int_equal(h_raw_send(fd, hdr, 5), 0);
    assert_int_equal(h_raw_send(fd, body, n), 0);
}

/*
 * Logs in on a raw socket with a wrong credential, whatever method the server asks for (cleartext,
 * md5, or SCRAM-SHA-256 with a well-formed but wrong proof). Returns the SQLSTATE of the
 * ErrorResponse ("" if the connection closed without one). *method gets the auth request code.
 */
static const char *raw_wrong_login(int port, const char *user, const char *db, uint32_t *method)
{
    static char state[6];
    int fd = h_raw_connect(port);
    assert_true(fd >= 0);
    uint8_t buf[512];
    size_t n = h_raw_startup(buf, sizeof buf, 196608, user, db);
    assert_int_equal(h_raw_send(fd, buf, n), 0);
    uint8_t *body;
    uint32_t len;
    int t = h_raw_read_msg(fd, 10000, &body, &len);
    assert_int_equal(t, 'R');
    assert_true(len >= 4);
    *method = (uint32_t)body[0] << 24 | (uint32_t)body[1] << 16 | (uint32_t)body[2] << 8 | body[3];
    free(body);
    if (*method == 3) {
        send_password_msg(fd, "wrong-password", 15);
    } else if (*method == 5) {
        send_password_msg(fd, "md500000000000000000000000000000000", 36);
    } else {
        assert_int_equal(*method, 10);
        const char *first = "n,,n=,r=pglaneTestNonce0123456789ab";
        uint8_t m[256];
        size_t k = 0;
        memcpy(m, "SCRAM-SHA-256", 14);
        k = 14;
        h_put32(m + k, (uint32_t)strlen(first));
        k += 4;
        memcpy(m + k, first, strlen(first));
        k += strlen(first);
        send_password_msg(fd, m, k);
        t = h_raw_read_msg(fd, 10000, &body, &len);
        assert_int_equal(t, 'R');
        assert_true(len > 4 && body[3] == 11);   /* SASLContinue */
        const char *sf = (const char *)body + 4;
        const char *r = strstr(sf, "r=");
        assert_non_null(r);
        size_t rl = strcspn(r + 2, ",");
        char final[512];
        /* A proof of the right length (32 bytes, base64) that is simply wrong. */
        int fl = snprintf(final, sizeof final, "c=biws,r=%.*s,p=%s", (int)rl, r + 2,
                          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        free(body);
        send_password_msg(fd, final, (size_t)fl);
    }
    int rc = h_raw_expect_error_or_close(fd, 10000, state);
    close(fd);
    assert_int_not_equal(rc, H_RAW_TIMEOUT);
    return state;
}

/* The keeper client still works, a new client works, and pglane is alive. */
static void assert_service_ok(struct h_pglane *l, PGconn *keeper)
{
    char *v = h_query1(keeper, "SELECT 'keeper ok'");
    assert_non_null(v);
    assert_string_equal(v, "keeper ok");
    free(v);
    PGconn *c = h_connect(l, NULL);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "SELECT 1"), 0);
    PQfinish(c);
    assert_true(h_pglane_alive(l));
}

/* ------------------------------------------------------------------------------------------ */

static void test_wrong_password_scram(void **state)
{
    (void)state;
    uint32_t method = 0;
    const char *st = raw_wrong_login(g_main.port, H_USER, H_DB, &method);
    assert_int_equal(method, 10);
    assert_string_equal(st, "28P01");

    PGconn *c = h_connect(&g_main, "password=wrong");
    assert_int_equal(PQstatus(c), CONNECTION_BAD);
    fprintf(stderr, "libpq says: %s", PQerrorMessage(c));
    PQfinish(c);
    c = h_connect(&g_main, "user=nosuchuser");
    assert_int_equal(PQstatus(c), CONNECTION_BAD);
    PQfinish(c);

    /* md5user logs in to pglane with SCRAM; pglane logs in to PostgreSQL with md5 (pg_hba). */
    c = h_connect(&g_main, "user=" H_MD5_USER " password=" H_MD5_PASSWORD);
    H_ASSERT_CONNECTED(c);
    char *v = h_query1(c, "SELECT current_user");
    assert_non_null(v);
    assert_string_equal(v, H_MD5_USER);
    free(v);
    PQfinish(c);
    h_pass();
}

static void test_md5_and_trust_auth(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();   /* the server side of these is pglane's auth_type */
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 2, "md5", NULL);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    uint32_t method = 0;
    const char *st = raw_wrong_login(l.port, H_USER, H_DB, &method);
    assert_int_equal(method, 5);
    assert_string_equal(st, "28P01");
    PGconn *c = h_connect(&l, "password=wrong");
    assert_int_equal(PQstatus(c), CONNECTION_BAD);
    PQfinish(c);
    c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "SELECT 1"), 0);
    PQfinish(c);
    c = h_connect(&l, "user=" H_MD5_USER " password=" H_MD5_PASSWORD);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "SELECT 1"), 0);
    PQfinish(c);
    assert_int_equal(h_pglane_stop(&l), 0);

    h_conf(conf, sizeof conf, "transaction", 2, "trust", NULL);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    c = h_connect(&l, "password=anything");
    H_ASSERT_CONNECTED(c);   /* trust: the client's password is not checked ... */
    char *v = h_query1(c, "SELECT current_user");   /* ... pglane still logs in to PG with auth_file's */
    assert_non_null(v);
    assert_string_equal(v, H_USER);
    free(v);
    PQfinish(c);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

static void test_ssl_request_answered_n(void **state)
{
    (void)state;
    int fd = h_raw_connect(g_main.port);
    assert_true(fd >= 0);
    uint8_t ssl[8];
    h_put32(ssl, 8);
    h_put32(ssl + 4, 80877103);
    assert_int_equal(h_raw_send(fd, ssl, 8), 0);
    assert_int_equal(h_raw_read_byte(fd, 5000), 'N');
    /* The same connection then goes on in plaintext. */
    uint8_t buf[256];
    size_t n = h_raw_startup(buf, sizeof buf, 196608, H_USER, H_DB);
    assert_int_equal(h_raw_send(fd, buf, n), 0);
    uint8_t *body;
    uint32_t len;
    assert_int_equal(h_raw_read_msg(fd, 5000, &body, &len), 'R');
    free(body);
    close(fd);
    /* libpq with sslmode=disable (no SSLRequest at all) works too. */
    PGconn *c = h_connect(&g_main, "sslmode=disable");
    H_ASSERT_CONNECTED(c);
    PQfinish(c);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

/* Sends bytes on a fresh socket (then optionally closes at once); expects an ErrorResponse or a
 * clean close within 5 s, never a hang. Returns the SQLSTATE ("" for a close). */
static const char *abuse_preauth(const void *bytes, size_t n)
{
    static char state[6];
    int fd = h_raw_connect(g_main.port);
    assert_true(fd >= 0);
    h_raw_send(fd, bytes, n);   /* the peer may already have closed: not an error */
    int rc = h_raw_expect_error_or_close(fd, 5000, state);
    close(fd);
    if (rc == H_RAW_TIMEOUT)
        print_error("no ErrorResponse and no close within 5 s\n");
    assert_int_not_equal(rc, H_RAW_TIMEOUT);
    fprintf(stderr, "abuse answered with %s\n", rc == 1 ? state : "a close");
    return state;
}

static void test_garbage(void **state)
{
    (void)state;
    PGconn *keeper = h_connect(&g_main, "application_name=keeper");
    H_ASSERT_CONNECTED(keeper);
    const char http[] = "GET / HTTP/1.1\r\nHost: pglane\r\n\r\n";
    const char *st = abuse_preauth(http, sizeof http - 1);
    assert_true(st[0] == '\0' || strcmp(st, "08P01") == 0);
    uint8_t junk[4096];
    unsigned x = 7;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (uint8_t)(x >> 16);
    }
    st = abuse_preauth(junk, sizeof junk);
    assert_true(st[0] == '\0' || strcmp(st, "08P01") == 0);
    /* A startup packet of length 0, and one of 3 (below the minimum). */
    uint8_t zero[8] = { 0, 0, 0, 0, 0, 3, 0, 0 };
    abuse_preauth(zero, sizeof zero);
    uint8_t three[8] = { 0, 0, 0, 3, 0, 3, 0, 0 };
    abuse_preauth(three, sizeof three);
    assert_service_ok(&g_main, keeper);
    PQfinish(keeper);
    h_pass();
}

static void test_truncated_startup(void **state)
{
    (void)state;
    PGconn *keeper = h_connect(&g_main, "application_name=keeper");
    H_ASSERT_CONNECTED(keeper);
    uint8_t buf[256];
    size_t n = h_raw_startup(buf, sizeof buf, 196608, H_USER, H_DB);
    /* Half a startup packet, then close. */
    for (int i = 0; i < 20; i++) {
        int fd = h_raw_connect(g_main.port);
        assert_true(fd >= 0);
        assert_int_equal(h_raw_send(fd, buf, (size_t)(1 + i % (int)(n - 1))), 0);
        close(fd);
    }
    /* 100 half-open connections that stay silent must not block anyone else. */
    int fds[100];
    for (int i = 0; i < 100; i++) {
        fds[i] = h_raw_connect(g_main.port);
        assert_true(fds[i] >= 0);
        assert_int_equal(h_raw_send(fds[i], buf, n / 2), 0);
    }
    assert_service_ok(&g_main, keeper);
    for (int i = 0; i < 100; i++)
        close(fds[i]);
    assert_service_ok(&g_main, keeper);
    PQfinish(keeper);
    h_pass();
}

static void test_huge_startup_length(void **state)
{
    (void)state;
    PGconn *keeper = h_connect(&g_main, "application_name=keeper");
    H_ASSERT_CONNECTED(keeper);
    uint8_t m[8];
    h_put32(m, 0x7fffffff);
    h_put32(m + 4, 196608);
    const char *st = abuse_preauth(m, sizeof m);
    assert_true(st[0] == '\0' || strcmp(st, "08P01") == 0);
    /* 1 MB: far above any startup packet limit, far below 2 GB. */
    h_put32(m, 1u << 20);
    st = abuse_preauth(m, sizeof m);
    assert_true(st[0] == '\0' || strcmp(st, "08P01") == 0);
    assert_service_ok(&g_main, keeper);
    PQfinish(keeper);
    h_pass();
}

static void test_protocol_version_9_9(void **state)
{
    (void)state;
    PGconn *keeper = h_connect(&g_main, "application_name=keeper");
    H_ASSERT_CONNECTED(keeper);
    uint8_t buf[256];
    size_t n = h_raw_startup(buf, sizeof buf, (9u << 16) | 9u, H_USER, H_DB);
    const char *st = abuse_preauth(buf, n);
    assert_true(st[0] == '\0' || strcmp(st, "0A000") == 0);
    /* Protocol 2.0 is gone too. */
    n = h_raw_startup(buf, sizeof buf, 2u << 16, H_USER, H_DB);
    st = abuse_preauth(buf, n);
    assert_true(st[0] == '\0' || strcmp(st, "0A000") == 0);
    assert_service_ok(&g_main, keeper);
    PQfinish(keeper);
    h_pass();
}

/* After authentication: writes raw bytes on a logged-in libpq connection's socket and expects an
 * ErrorResponse (08P01) or a close within 5 s. */
static void abuse_postauth(const void *bytes, size_t n)
{
    PGconn *c = h_connect(&g_main, "application_name=abuser");
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "SELECT 1"), 0);
    int fd = PQsocket(c);
    h_raw_send(fd, bytes, n);
    char st[6];
    int rc = h_raw_expect_error_or_close(fd, 5000, st);
    if (rc == H_RAW_TIMEOUT)
        print_error("no ErrorResponse and no close within 5 s\n");
    assert_int_not_equal(rc, H_RAW_TIMEOUT);
    fprintf(stderr, "abuse answered with %s\n", rc == 1 ? st : "a close");
    if (rc == 1)
        assert_string_equal(st, "08P01");
    PQfinish(c);
}

static void test_postauth_bad_lengths(void **state)
{
    (void)state;
    PGconn *keeper = h_connect(&g_main, "application_name=keeper");
    H_ASSERT_CONNECTED(keeper);
    uint8_t m[5] = { 'Q' };
    h_put32(m + 1, 0x7fffffff);           /* a Query of 2 GB */
    abuse_postauth(m, 5);
    assert_service_ok(&g_main, keeper);
    m[0] = 'S';
    h_put32(m + 1, 1u << 20);             /* a 1 MB Sync: only some types may be large */
    abuse_postauth(m, 5);
    assert_service_ok(&g_main, keeper);
    m[0] = 'Q';
    h_put32(m + 1, 2);                    /* a length below 4 */
    abuse_postauth(m, 5);
    assert_service_ok(&g_main, keeper);
    uint8_t unknown[6] = { 'z', 0, 0, 0, 5, 0 };   /* no such message type */
    abuse_postauth(unknown, sizeof unknown);
    assert_service_ok(&g_main, keeper);
    PQfinish(keeper);
    h_pass();
}

static void test_max_client_conn(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256", NULL);
    char *p = strstr(conf, "max_client_conn = 2000");
    assert_non_null(p);
    memcpy(p, "max_client_conn = 5   ", strlen("max_client_conn = 5   "));
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *c[5];
    for (int i = 0; i < 5; i++) {
        c[i] = h_connect(&l, NULL);
        H_ASSERT_CONNECTED(c[i]);
    }
    int64_t t0 = h_now_ms();
    PGconn *extra = h_connect(&l, "connect_timeout=10");
    assert_int_equal(PQstatus(extra), CONNECTION_BAD);   /* refused, with an error */
    assert_true(h_now_ms() - t0 < 9000);                 /* ... not by timing out */
    fprintf(stderr, "sixth client: %s", PQerrorMessage(extra));
    PQfinish(extra);
    for (int i = 0; i < 5; i++)
        assert_int_equal(h_exec(c[i], "SELECT 1"), 0);
    PQfinish(c[0]);
    /* A slot is free again (pglane notices the close asynchronously: bounded retry). */
    int64_t deadline = h_now_ms() + 5000;
    PGconn *again = NULL;
    for (;;) {
        again = h_connect(&l, NULL);
        if (PQstatus(again) == CONNECTION_OK || h_now_ms() > deadline)
            break;
        PQfinish(again);
        usleep(20000);
    }
    H_ASSERT_CONNECTED(again);
    PQfinish(again);
    for (int i = 1; i < 5; i++)
        PQfinish(c[i]);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

static void start_private_lane(struct h_pglane *l)
{
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256", NULL);
    assert_int_equal(h_pglane_start(l, &g_pg, conf), 0);
}

static void test_sigterm_drains(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    assert_int_equal(h_exec(g_super, "TRUNCATE drain_t"), 0);
    struct h_pglane l;
    start_private_lane(&l);
    PGconn *a = h_connect(&l, NULL);
    PGconn *idle = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(idle);
    assert_int_equal(h_exec(idle, "SELECT 1"), 0);
    assert_int_equal(h_exec(a, "BEGIN"), 0);
    assert_int_equal(h_exec(a, "INSERT INTO drain_t VALUES (1)"), 0);

    assert_int_equal(h_pglane_signal(&l, SIGTERM), 0);
    /* New connections are refused once the signal is handled (bounded polling). */
    int refused = 0;
    int64_t deadline = h_now_ms() + 5000;
    while (!refused && h_now_ms() < deadline) {
        PGconn *c = h_connect(&l, "connect_timeout=2");
        refused = PQstatus(c) != CONNECTION_OK;
        if (refused)
            fprintf(stderr, "during drain: %s", PQerrorMessage(c));
        PQfinish(c);
        if (!refused)
            usleep(20000);
    }
    assert_true(refused);
    /* pglane waits for the open transaction. */
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_exec(a, "INSERT INTO drain_t VALUES (2)"), 0);
    PGresult *r = PQexec(a, "COMMIT");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        print_error("COMMIT during drain: %s\n", PQerrorMessage(a));
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdStatus(r), "COMMIT");
    PQclear(r);
    PQfinish(a);
    PQfinish(idle);
    assert_int_equal(h_pglane_wait_exit(&l, 10000), 1);
    assert_int_equal(l.exit_status, 0);
    assert_int_equal(h_pg_long(g_super, "SELECT count(*) FROM drain_t"), 2);
    h_pglane_stop(&l);
    h_pass();
}

static void test_sigint_exits_at_once(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    assert_int_equal(h_exec(g_super, "TRUNCATE drain_t"), 0);
    struct h_pglane l;
    start_private_lane(&l);
    PGconn *a = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(a);
    assert_int_equal(h_exec(a, "BEGIN; INSERT INTO drain_t VALUES (1)"), 0);
    assert_int_equal(h_pglane_signal(&l, SIGINT), 0);
    int64_t t0 = h_now_ms();
    assert_int_equal(h_pglane_wait_exit(&l, 3000), 1);
    fprintf(stderr, "SIGINT: exit status %d after %lld ms\n", l.exit_status, (long long)(h_now_ms() - t0));
    /* Its server connections closed: the open transaction is rolled back, nothing left behind. */
    assert_int_equal(h_pg_wait_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' "
                                    "AND state LIKE 'idle in transaction%'", 0, 10000), 0);
    assert_int_equal(h_pg_long(g_super, "SELECT count(*) FROM drain_t"), 0);
    PGresult *r = PQexec(a, "COMMIT");
    assert_int_not_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(a);
    h_pglane_stop(&l);
    h_pass();
}

/* ---- TCP keepalive and TCP_USER_TIMEOUT ---- */

struct sockopts {
    int keepalive, idle, intvl, cnt;
    unsigned user_timeout;
};

static int port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
           : ss->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port) : -1;
}

/*
 * The options of one of pglane's TCP sockets, the one with that local and peer port, read from the
 * socket itself: each descriptor of the process is copied with pidfd_getfd(2) until it is found.
 */
static struct sockopts opts_of(pid_t pid, int local_port, int peer_port)
{
    char dir[64];
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0), found = 0;
    struct sockopts o = { 0 };
    DIR *d;
    struct dirent *e;

    if (pfd < 0)
        fail_msg("pidfd_open(%d): %s", (int)pid, strerror(errno));
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    assert_non_null(d = opendir(dir));
    while (!found && (e = readdir(d))) {
        struct sockaddr_storage local, peer;
        socklen_t ll = sizeof local, pl = sizeof peer, ol;
        int s, type = 0;

        if (e->d_name[0] == '.')
            continue;
        if ((s = (int)syscall(SYS_pidfd_getfd, pfd, atoi(e->d_name), 0)) < 0) {
            if (errno == EBADF)
                continue;                 /* closed since readdir */
            fail_msg("pidfd_getfd(%d, %s): %s", (int)pid, e->d_name, strerror(errno));
        }
        ol = sizeof type;
        if (getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &ol) == 0 && type == SOCK_STREAM &&
            getsockname(s, (struct sockaddr *)&local, &ll) == 0 && getpeername(s, (struct sockaddr *)&peer, &pl) == 0 &&
            port_of(&local) == local_port && port_of(&peer) == peer_port) {
            found = 1;
            ol = sizeof(int);
            assert_int_equal(getsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &o.keepalive, &ol), 0);
            assert_int_equal(getsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &o.idle, &ol), 0);
            assert_int_equal(getsockopt(s, IPPROTO_TCP, TCP_KEEPINTVL, &o.intvl, &ol), 0);
            assert_int_equal(getsockopt(s, IPPROTO_TCP, TCP_KEEPCNT, &o.cnt, &ol), 0);
            ol = sizeof o.user_timeout;
            assert_int_equal(getsockopt(s, IPPROTO_TCP, TCP_USER_TIMEOUT, &o.user_timeout, &ol), 0);
        }
        close(s);
    }
    closedir(d);
    close(pfd);
    if (!found)
        fail_msg("pglane %d has no TCP socket %d -> %d", (int)pid, local_port, peer_port);
    return o;
}

static void expect_opts(const char *what, const char *side, struct sockopts got, const struct sockopts *want)
{
    if (got.keepalive != want->keepalive ||
        (want->keepalive && (got.idle != want->idle || got.intvl != want->intvl || got.cnt != want->cnt)) ||
        got.user_timeout != want->user_timeout)
        fail_msg("%s: %s socket: keepalive %d idle %d intvl %d cnt %d user_timeout %u; want %d %d %d %d %u", what,
                 side, got.keepalive, got.idle, got.intvl, got.cnt, got.user_timeout, want->keepalive, want->idle,
                 want->intvl, want->cnt, want->user_timeout);
}

/* c is in a transaction through l: its client socket and its server connection's socket have want. */
static void expect_socket_opts(const struct h_pglane *l, PGconn *c, const struct sockopts *want, const char *what)
{
    struct sockaddr_storage me;
    socklen_t ml = sizeof me;
    char *sv_port = h_query1(c, "SELECT client_port FROM pg_stat_activity WHERE pid = pg_backend_pid()");

    assert_int_equal(getsockname(PQsocket(c), (struct sockaddr *)&me, &ml), 0);
    expect_opts(what, "client", opts_of(l->pid, l->port, port_of(&me)), want);
    assert_non_null(sv_port);
    expect_opts(what, "server", opts_of(l->pid, atoi(sv_port), l->pg->port), want);
    free(sv_port);
}

/*
 * tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt and tcp_user_timeout reach the client and
 * server sockets (read back from pglane's own descriptors): the defaults (on, 60 s, 10 s, 6, the
 * kernel's user timeout), set values (a duration rounds up to whole seconds for the keepalive ones),
 * a reload's values on the connections made after it, and off.
 */
static void test_tcp_keepalive_options(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static const struct {
        const char *extra;
        struct sockopts want;
    } cases[] = {
        { "", { 1, 60, 10, 6, 0 } },
        { "tcp_keepidle = 7s\ntcp_keepintvl = 1500ms\ntcp_keepcnt = 4\ntcp_user_timeout = 9s\n", { 1, 7, 2, 4, 9000 } },
        { "tcp_keepalive = off\n", { 0, 0, 0, 0, 0 } },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct h_pglane l;
        char conf[4096], extra[512];

        snprintf(extra, sizeof extra, "server_idle_timeout = 60s\nadmin_users = " H_USER "\n%s", cases[k].extra);
        h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256", extra);
        assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
        PGconn *c = h_connect(&l, NULL);
        H_ASSERT_CONNECTED(c);
        assert_int_equal(h_exec(c, "BEGIN"), 0);
        expect_socket_opts(&l, c, &cases[k].want, cases[k].extra[0] ? cases[k].extra : "defaults");
        if (k == 0) {
            /* a reload: a client and a server connection made after it get its values (c2 uses
             * another database: a pool of its own, whose first connection is opened for it, where
             * with several workers a connection of the first pool could come from another worker's
             * idle ones, opened before the reload) */
            char *text = h_read_file(l.conf_path);
            PGconn *adm = h_console(&l, NULL), *c2;
            const struct sockopts want = { 1, 20, 5, 3, 4000 };

            assert_non_null(text);
            H_ASSERT_CONNECTED(adm);
            snprintf(conf, sizeof conf, "%s", text);
            free(text);
            h_conf_replace(conf, sizeof conf, "server_idle_timeout = 60s\n",
                           "server_idle_timeout = 60s\ntcp_keepidle = 20s\ntcp_keepintvl = 5s\ntcp_keepcnt = 3\n"
                           "tcp_user_timeout = 4s\n");
            assert_int_equal(h_write_file(l.conf_path, conf), 0);
            assert_int_equal(h_exec(adm, "RELOAD"), 0);
            PQfinish(adm);
            c2 = h_connect(&l, "dbname=postgres");
            H_ASSERT_CONNECTED(c2);
            assert_int_equal(h_exec(c2, "BEGIN"), 0);
            expect_socket_opts(&l, c2, &want, "after RELOAD");
            assert_int_equal(h_exec(c2, "COMMIT"), 0);
            PQfinish(c2);
        }
        assert_int_equal(h_exec(c, "COMMIT"), 0);
        PQfinish(c);
        assert_int_equal(h_pglane_stop(&l), 0);
    }
    h_pass();
}

static void test_sighup_keeps_serving(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    start_private_lane(&l);
    PGconn *a = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(a);
    assert_int_equal(h_exec(a, "BEGIN; SELECT 1"), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(h_pglane_signal(&l, SIGHUP), 0);
    /* The open transaction goes on, new clients work, pglane is still there. */
    assert_int_equal(h_exec(a, "SELECT 2"), 0);
    assert_int_equal(h_exec(a, "COMMIT"), 0);
    PGconn *b = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(h_exec(b, "SELECT 3"), 0);
    PQfinish(b);
    assert_true(h_pglane_alive(&l));
    /* A config made invalid is refused by the reload: pglane keeps running on the old one. */
    assert_int_equal(h_write_file(l.conf_path, "[pglane]\nlisten = nonsense\nno_such_key = 1\n"), 0);
    assert_int_equal(h_pglane_signal(&l, SIGHUP), 0);
    assert_int_equal(h_exec(a, "SELECT 4"), 0);
    b = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(b);
    PQfinish(b);
    assert_true(h_pglane_alive(&l));
    PQfinish(a);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_wrong_password_scram),
        H_TEST(test_md5_and_trust_auth),
        H_TEST(test_ssl_request_answered_n),
        H_TEST(test_garbage),
        H_TEST(test_truncated_startup),
        H_TEST(test_huge_startup_length),
        H_TEST(test_protocol_version_9_9),
        H_TEST(test_postauth_bad_lengths),
        H_TEST(test_max_client_conn),
        H_TEST(test_sigterm_drains),
        H_TEST(test_sigint_exits_at_once),
        H_TEST(test_sighup_keeps_serving),
        H_TEST(test_tcp_keepalive_options),
    };
    return H_RUN_GROUP("integration: core, robustness and signals", tests,
                       .pg = &g_pg, .super = &g_super, .setup = fixtures);
}
