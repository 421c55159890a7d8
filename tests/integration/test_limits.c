/*
 * Hardening issue, limits, timeouts and security: client_login_timeout, max_client_conn,
 * pre-authentication size caps, server_lifetime; no password or SCRAM secret in the log or the
 * admin console, the auth_file permission warning, and trust beyond loopback refused by --check.
 */
#include "tests/integration/harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct h_pg g_pg;

#define SCRAM_USER "scramuser"
#define SCRAM_PASSWORD "scrampw-Secret-77"
#define WRONG_PASSWORD "WrongPass-Hunter2"

static char g_scram_secret[512];   /* SCRAM_USER's rolpassword, as PostgreSQL stores it */

static int fixtures(void)
{
    if (h_pg_exec(&g_pg, "postgres", "SET password_encryption = 'scram-sha-256'; "
                                     "CREATE ROLE " SCRAM_USER " LOGIN PASSWORD '" SCRAM_PASSWORD "'; "
                                     "GRANT ALL ON DATABASE " H_DB " TO " SCRAM_USER) != 0)
        return -1;
    PGconn *s = h_pg_super(&g_pg, "postgres");
    if (!s)
        return -1;
    char *v = h_query1(s, "SELECT rolpassword FROM pg_authid WHERE rolname = '" SCRAM_USER "'");
    PQfinish(s);
    if (!v || strncmp(v, "SCRAM-SHA-256$", 14) != 0)
        return -1;
    snprintf(g_scram_secret, sizeof g_scram_secret, "%s", v);
    free(v);
    return 0;
}

/* ------------------------------------------------------------------------------------------ helpers */

/* After an error, the connection must also be closed within timeout_ms. */
static void assert_closed(int fd, int timeout_ms)
{
    char st[6], msg[256];
    int r;
    while ((r = h_raw_error(fd, timeout_ms, st, msg, sizeof msg)) == 1) {
    }
    assert_int_equal(r, 0);
}

/* The next message's type within timeout_ms, with the 'R' code in *auth if it is one. */
static int raw_next(int fd, int timeout_ms, uint32_t *auth)
{
    uint8_t *body;
    uint32_t len;
    int t = h_raw_read_msg(fd, timeout_ms, &body, &len);
    if (t == 'R' && len >= 4)
        *auth = (uint32_t)body[0] << 24 | (uint32_t)body[1] << 16 | (uint32_t)body[2] << 8 | body[3];
    free(body);
    return t;
}

/* A StartupMessage of exactly total bytes (>= 64): user app, database appdb, and a padding parameter. */
static uint8_t *startup_of_size(size_t total)
{
    static const char fixed[] = "user\0" H_USER "\0database\0" H_DB "\0x_pad\0";
    uint8_t *b = malloc(total);
    assert_non_null(b);
    h_put32(b, (uint32_t)total);
    h_put32(b + 4, 196608);
    memcpy(b + 8, fixed, sizeof fixed - 1);
    size_t pad = total - 8 - (sizeof fixed - 1) - 2;
    memset(b + 8 + sizeof fixed - 1, 'x', pad);
    b[total - 2] = 0;
    b[total - 1] = 0;
    return b;
}

static void assert_query_ok(PGconn *c)
{
    char *v = h_query1(c, "SELECT 'still fine'");
    assert_non_null(v);
    assert_string_equal(v, "still fine");
    free(v);
}

static void assert_new_client_ok(const struct h_pglane *l)
{
    PGconn *c = h_connect(l, NULL);
    H_ASSERT_CONNECTED(c);
    assert_query_ok(c);
    PQfinish(c);
}

/* ------------------------------------------------------------------------------------------ limits */

/*
 * client_login_timeout = 1s: a client that sends nothing, and one that stops after its startup
 * packet, are closed after about a second; a client that logged in earlier is not affected.
 */
static void test_client_login_timeout(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256",
           "server_idle_timeout = 60s\nclient_login_timeout = 1s\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *early = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(early);

    int64_t t0 = h_now_ms();
    int silent = h_raw_connect(l.port), halfway = h_raw_connect(l.port);
    assert_true(silent >= 0 && halfway >= 0);
    uint8_t buf[256];
    size_t n = h_raw_startup(buf, sizeof buf, 196608, H_USER, H_DB);
    assert_int_equal(h_raw_send(halfway, buf, n), 0);
    uint32_t auth = 0;
    assert_int_equal(raw_next(halfway, 3000, &auth), 'R');
    assert_int_equal(auth, 10);   /* AuthenticationSASL, then the client says nothing */

    char st[6], msg[256];
    int r = h_raw_error(silent, 4000, st, msg, sizeof msg);
    int64_t took = h_now_ms() - t0;
    fprintf(stderr, "silent client closed after %lld ms (%s)\n", (long long)took, r == 1 ? st : "no error");
    assert_int_not_equal(r, H_RAW_TIMEOUT);
    assert_true(took >= 900 && took <= 3000);
    if (r == 1)
        assert_closed(silent, 2000);
    r = h_raw_error(halfway, 3000, st, msg, sizeof msg);
    assert_int_not_equal(r, H_RAW_TIMEOUT);
    if (r == 1) {
        assert_non_null(strstr(msg, "client_login_timeout"));
        assert_closed(halfway, 2000);
    }
    took = h_now_ms() - t0;
    assert_true(took <= 3500);
    close(silent);
    close(halfway);

    /* The client that logged in more than a second ago still works. */
    assert_query_ok(early);
    PQfinish(early);
    assert_new_client_ok(&l);
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* Connects with retries for up to 5 s (pglane may not have processed an earlier close yet). */
static PGconn *connect_retry(const struct h_pglane *l)
{
    int64_t deadline = h_now_ms() + 5000;
    for (;;) {
        PGconn *c = h_connect(l, NULL);
        if (PQstatus(c) == CONNECTION_OK || h_now_ms() >= deadline)
            return c;
        PQfinish(c);
        h_sleep_ms(50);
    }
}

static void assert_libpq_refused(const struct h_pglane *l, const char *sslmode)
{
    PGconn *c = h_connect(l, sslmode);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    if (!strstr(PQerrorMessage(c), "too many clients"))
        print_error("libpq sixth client with %s: %s\n", sslmode, PQerrorMessage(c));
    assert_non_null(strstr(PQerrorMessage(c), "too many clients"));
    PQfinish(c);
}

/* The sixth client is refused with 53300 and a message naming max_client_conn, by raw socket and by libpq. */
static void assert_sixth_refused(const struct h_pglane *l)
{
    int fd = h_raw_connect(l->port);
    assert_true(fd >= 0);
    uint8_t buf[256];
    size_t n = h_raw_startup(buf, sizeof buf, 196608, H_USER, H_DB);
    h_raw_send(fd, buf, n);     /* may fail if pglane already closed: the error is still readable */
    char st[6], msg[256];
    assert_int_equal(h_raw_error(fd, 3000, st, msg, sizeof msg), 1);
    assert_string_equal(st, "53300");
    assert_non_null(strstr(msg, "max_client_conn"));
    assert_closed(fd, 2000);
    close(fd);

    assert_libpq_refused(l, "sslmode=disable");
}

static void test_max_client_conn(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256", NULL);
    h_conf_replace(conf, sizeof conf, "max_client_conn = 2000", "max_client_conn = 5");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);

    PGconn *c[5];
    for (int i = 0; i < 5; i++) {
        c[i] = connect_retry(&l);
        H_ASSERT_CONNECTED(c[i]);
    }
    assert_sixth_refused(&l);
    assert_sixth_refused(&l);
    for (int i = 0; i < 5; i++)
        assert_query_ok(c[i]);

    /* One leaves: a new one gets in, and the limit holds again. */
    PQfinish(c[2]);
    c[2] = connect_retry(&l);
    H_ASSERT_CONNECTED(c[2]);
    assert_query_ok(c[2]);
    assert_sixth_refused(&l);

    /* Refused attempts took no slot: all five leave, five new ones get in. */
    for (int i = 0; i < 5; i++)
        PQfinish(c[i]);
    for (int i = 0; i < 5; i++) {
        c[i] = connect_retry(&l);
        H_ASSERT_CONNECTED(c[i]);
    }
    /* libpq's default sslmode=prefer sends an SSLRequest first, and libpq (since 15.10/16.6/17.2,
     * CVE-2024-10977) no longer shows an error received in answer to it: the refusal must come
     * after the SSL negotiation and the startup packet, as PostgreSQL itself does it. */
    assert_libpq_refused(&l, "sslmode=prefer");
    for (int i = 0; i < 5; i++)
        PQfinish(c[i]);
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* Sends a startup packet of `size` bytes; returns the fd. */
static int send_startup_of_size(int port, size_t size)
{
    int fd = h_raw_connect(port);
    assert_true(fd >= 0);
    uint8_t *b = startup_of_size(size);
    h_raw_send(fd, b, size);
    free(b);
    return fd;
}

/* A password-type message ('p') with a body of `size` bytes of 'a' after the auth request. */
static void send_big_p(int fd, size_t size)
{
    uint8_t *b = malloc(5 + size);
    assert_non_null(b);
    b[0] = 'p';
    h_put32(b + 1, (uint32_t)(4 + size));
    memset(b + 5, 'a', size);
    b[4 + size] = 0;
    h_raw_send(fd, b, 5 + size);    /* pglane may close before reading it all */
    free(b);
}

static void assert_refused(int fd, const char *what)
{
    char st[6], msg[256];
    int64_t t0 = h_now_ms();
    int r = h_raw_error(fd, 3000, st, msg, sizeof msg);
    fprintf(stderr, "%s: %s after %lld ms\n", what, r == 1 ? st : r == 0 ? "closed" : "TIMEOUT",
            (long long)(h_now_ms() - t0));
    assert_int_not_equal(r, H_RAW_TIMEOUT);
    if (r == 1)
        assert_closed(fd, 2000);
    close(fd);
}

/*
 * Pre-authentication caps: a 10004-byte startup packet (PostgreSQL's own limit: 10,000 after the
 * length word) is accepted, 10005 bytes is refused (closed without a word, as by PostgreSQL); a 100 kB password message (md5) and a 100 kB SASLInitialResponse
 * (SCRAM) are refused; a client logged in meanwhile is unaffected.
 */
static void test_preauth_caps(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane md5, scram;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 2, "md5", NULL);
    assert_int_equal(h_pglane_start(&md5, &g_pg, conf), 0);
    h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256", NULL);
    assert_int_equal(h_pglane_start(&scram, &g_pg, conf), 0);
    PGconn *bystander = h_connect(&md5, NULL);
    H_ASSERT_CONNECTED(bystander);

    uint32_t auth = 0;
    int fd = send_startup_of_size(md5.port, 10004);
    assert_int_equal(raw_next(fd, 3000, &auth), 'R');
    assert_int_equal(auth, 5);     /* AuthenticationMD5Password: the 10004-byte packet was accepted */
    send_big_p(fd, 100 * 1024);
    assert_refused(fd, "md5 password message of 100 kB");

    assert_refused(send_startup_of_size(md5.port, 10005), "startup packet of 10005 bytes");
    assert_refused(send_startup_of_size(md5.port, 1 << 20), "startup packet of 1 MB");

    fd = send_startup_of_size(scram.port, 200);
    assert_int_equal(raw_next(fd, 3000, &auth), 'R');
    assert_int_equal(auth, 10);    /* AuthenticationSASL */
    send_big_p(fd, 100 * 1024);
    assert_refused(fd, "SASLInitialResponse of 100 kB");

    assert_query_ok(bystander);
    PQfinish(bystander);
    assert_new_client_ok(&md5);
    assert_new_client_ok(&scram);
    assert_true(h_pglane_alive(&md5) && h_pglane_alive(&scram));
    assert_int_equal(h_pglane_stop(&md5), 0);
    assert_int_equal(h_pglane_stop(&scram), 0);
    h_pass();
}

/*
 * server_lifetime = 1s (server_idle_timeout 60s): a transaction longer than the lifetime keeps its
 * connection; afterwards the client is served by a new backend and the old one is closed.
 */
static void test_server_lifetime(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 1, "scram-sha-256", "server_idle_timeout = 60s\n");
    strncat(conf, "server_lifetime = 1s\n", sizeof conf - strlen(conf) - 1);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *s = h_pg_super(&g_pg, "postgres");
    assert_non_null(s);
    PGconn *c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);

    assert_int_equal(h_exec(c, "BEGIN"), 0);
    long p1 = h_backend_pid(c);
    assert_true(p1 > 0);
    assert_int_equal(h_exec(c, "SELECT pg_sleep(1.5)"), 0);
    assert_int_equal(h_backend_pid(c), p1);
    assert_int_equal(h_exec(c, "COMMIT"), 0);

    int64_t deadline = h_now_ms() + 10000;
    long p = p1;
    while ((p = h_backend_pid(c)) == p1 && h_now_ms() < deadline)
        h_sleep_ms(100);
    fprintf(stderr, "server_lifetime: backend %ld replaced by %ld\n", p1, p);
    assert_true(p > 0 && p != p1);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %ld", p1);
    assert_int_equal(h_pg_wait_long(s, sql, 0, 5000), 0);
    PQfinish(c);
    PQfinish(s);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ security */

/* Login attempt as user with password; 1 if it logged in (and ran a query). */
static int try_login(const struct h_pglane *l, const char *user, const char *password, const char *db)
{
    char ci[512];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=%s password=%s dbname=%s connect_timeout=10",
             l->port, user, password, db);
    PGconn *c = PQconnectdb(ci);
    int ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, "SELECT 1");
        PQclear(r);
    }
    PQfinish(c);
    return ok;
}

/* Every SHOW of the admin console as text, one value after another. */
static char *admin_dump(const struct h_pglane *l)
{
    static const char *const cmds[] = { "SHOW CONFIG", "SHOW CLIENTS", "SHOW SERVERS", "SHOW LANES",
                                        "SHOW STATS", "SHOW ROUTES", "SHOW QUERIES", NULL };
    PGconn *a = h_connect(l, "dbname=pglane");
    H_ASSERT_CONNECTED(a);
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(1, cap);
    assert_non_null(out);
    for (int i = 0; cmds[i]; i++) {
        PGresult *r = PQexec(a, cmds[i]);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            fprintf(stderr, "admin %s: %s", cmds[i], PQerrorMessage(a));
        for (int row = 0; row < PQntuples(r); row++)
            for (int col = 0; col < PQnfields(r); col++) {
                const char *v = PQgetvalue(r, row, col);
                size_t vl = strlen(v);
                if (len + vl + 2 >= cap) {
                    cap = (cap + vl) * 2;
                    out = realloc(out, cap);
                    assert_non_null(out);
                }
                memcpy(out + len, v, vl);
                len += vl;
                out[len++] = '\n';
                out[len] = '\0';
            }
        PQclear(r);
    }
    PQfinish(a);
    return out;
}

/* The SCRAM secret's parts: "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>". */
static void assert_no_secret(const char *text, const char *where)
{
    char stored[256] = "", server[256] = "", salt[128] = "";
    const char *colon = strchr(g_scram_secret, ':'), *dollar2 = strchr(g_scram_secret + 14, '$');
    assert_true(colon && dollar2 && colon < dollar2);
    snprintf(salt, sizeof salt, "%.*s", (int)(dollar2 - colon - 1), colon + 1);
    const char *colon2 = strchr(dollar2, ':');
    assert_non_null(colon2);
    snprintf(stored, sizeof stored, "%.*s", (int)(colon2 - dollar2 - 1), dollar2 + 1);
    snprintf(server, sizeof server, "%s", colon2 + 1);
    const char *forbidden[] = { H_PASSWORD, H_MD5_PASSWORD, SCRAM_PASSWORD, WRONG_PASSWORD, g_scram_secret,
                                stored, server, NULL };
    for (int i = 0; forbidden[i]; i++)
        if (forbidden[i][0] && strstr(text, forbidden[i])) {
            print_error("%s contains the secret \"%s\"\n", where, forbidden[i]);
            fail();
        }
}

/*
 * Wrong and right passwords over SCRAM and md5 (client side), a user whose auth_file entry is a
 * SCRAM secret, log_level = debug: neither the log nor the admin console shows a password or the
 * secret.
 */
static void test_no_secrets_in_log_or_console(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    char auth[H_PATH + 32], text[1024];
    snprintf(auth, sizeof auth, "%s/secrets-userlist.txt", h_scratch_dir());
    snprintf(text, sizeof text, "\"%s\" \"%s\"\n\"%s\" \"%s\"\n\"%s\" \"%s\"\n", H_USER, H_PASSWORD, H_MD5_USER,
             H_MD5_PASSWORD, SCRAM_USER, g_scram_secret);
    assert_int_equal(h_write_file(auth, text), 0);
    assert_int_equal(chmod(auth, 0600), 0);

    struct h_pglane lanes[2];
    const char *types[2] = { "scram-sha-256", "md5" };
    for (int k = 0; k < 2; k++) {
        char conf[4096];
        h_conf(conf, sizeof conf, "transaction", 2, types[k], "server_idle_timeout = 60s\nadmin_users = app\n");
        h_conf_replace(conf, sizeof conf, "log_level = info", "log_level = debug");
        h_conf_replace(conf, sizeof conf, "@AUTHFILE@", auth);
        assert_int_equal(h_pglane_start(&lanes[k], &g_pg, conf), 0);
        struct h_pglane *l = &lanes[k];
        assert_false(try_login(l, H_USER, WRONG_PASSWORD, H_DB));
        assert_false(try_login(l, H_USER, WRONG_PASSWORD, H_DB));
        assert_true(try_login(l, H_USER, H_PASSWORD, H_DB));
        assert_false(try_login(l, H_MD5_USER, WRONG_PASSWORD, H_DB));
        assert_true(try_login(l, H_MD5_USER, H_MD5_PASSWORD, H_DB));
        if (k == 0) {
            /* Verified against the stored secret; the server login may then fail for want of a
             * plaintext password, which is not what this test is about. */
            (void)try_login(l, SCRAM_USER, SCRAM_PASSWORD, H_DB);
            assert_false(try_login(l, SCRAM_USER, WRONG_PASSWORD, H_DB));
        }
        char *dump = admin_dump(l);
        assert_true(strlen(dump) > 0);
        assert_no_secret(dump, "the admin console");
        free(dump);
    }
    for (int k = 0; k < 2; k++) {
        char *log = h_pglane_log(&lanes[k]);
        assert_true(strlen(log) > 0);
        /* The failures were logged (so the log was exercised), without the secrets. */
        assert_true(strstr(log, "password") != NULL || strstr(log, "authentication") != NULL);
        assert_no_secret(log, types[k]);
        free(log);
        assert_int_equal(h_pglane_stop(&lanes[k]), 0);
    }
    h_pass();
}

/* pglane warns at start when auth_file is readable by others (mode 0644), and not for 0600. */
static void test_auth_file_permissions_warning(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    char auth[H_PATH + 32], text[256];
    snprintf(auth, sizeof auth, "%s/perm-userlist.txt", h_scratch_dir());
    snprintf(text, sizeof text, "\"%s\" \"%s\"\n", H_USER, H_PASSWORD);
    assert_int_equal(h_write_file(auth, text), 0);
    const mode_t modes[2] = { 0600, 0644 };
    for (int k = 0; k < 2; k++) {
        assert_int_equal(chmod(auth, modes[k]), 0);
        struct h_pglane l;
        char conf[4096];
        h_conf(conf, sizeof conf, "transaction", 1, "scram-sha-256", NULL);
        h_conf_replace(conf, sizeof conf, "@AUTHFILE@", auth);
        assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
        char *log = h_pglane_log(&l);
        /* A warning line that names the auth_file and says it is readable by others. */
        int warned = 0;
        for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n"))
            if (strstr(line, "WARN") && (strstr(line, "auth_file") || strstr(line, auth)) &&
                (strstr(line, "readable") || strstr(line, "permission")))
                warned = 1;
        free(log);
        if (warned != (modes[k] == 0644))
            print_error("auth_file mode %o: warning %s\n", (unsigned)modes[k], warned ? "present" : "missing");
        assert_int_equal(warned, modes[k] == 0644);
        assert_int_equal(h_pglane_stop(&l), 0);
    }
    h_pass();
}

/* Runs pglane --check on a config text; returns the exit code, output in *out. */
static int pglane_check(const char *name, const char *conf_text, char **out)
{
    char path[H_PATH + 64];
    snprintf(path, sizeof path, "%s/%s", h_scratch_dir(), name);
    assert_int_equal(h_write_file(path, conf_text), 0);
    const char *argv[] = { h_pglane_bin(), "--check", path, NULL };
    int rc = h_run(argv, NULL, 10000, out);
    fprintf(stderr, "pglane --check %s: %d\n%s", name, rc, *out);
    return rc;
}

static void trust_conf(char *buf, size_t n, const char *listen, const char *auth, const char *extra)
{
    snprintf(buf, n,
             "[pglane]\n"
             "listen = %s:16432\n"
             "auth_type = trust\n"
             "auth_file = %s\n"
             "%s"
             "default_lane = main\n\n"
             "[server.pg]\nhost = 127.0.0.1\nport = 5432\n\n"
             "[lane.main]\nserver = pg\nsize = 2\n",
             listen, auth, extra);
}

/* auth_type = trust with listen = 0.0.0.0 needs allow_trust = yes; --check says which file:line. */
static void test_trust_beyond_loopback_refused(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    char auth[H_PATH + 32];
    snprintf(auth, sizeof auth, "%s/trust-userlist.txt", h_scratch_dir());
    assert_int_equal(h_write_file(auth, "\"app\" \"apppass\"\n"), 0);
    assert_int_equal(chmod(auth, 0600), 0);
    char conf[2048];
    char *out = NULL;

    trust_conf(conf, sizeof conf, "0.0.0.0", auth, "");
    int rc = pglane_check("trust-any.ini", conf, &out);
    assert_int_not_equal(rc, 0);
    assert_int_not_equal(rc, -1);
    char want[H_PATH + 64];
    snprintf(want, sizeof want, "%s/trust-any.ini:3:", h_scratch_dir());   /* line of auth_type */
    if (!strstr(out, want))
        print_error("expected a diagnostic starting with %s\n", want);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "allow_trust"));
    free(out);

    trust_conf(conf, sizeof conf, "0.0.0.0", auth, "allow_trust = yes\n");
    assert_int_equal(pglane_check("trust-allowed.ini", conf, &out), 0);
    free(out);
    trust_conf(conf, sizeof conf, "127.0.0.1", auth, "");
    assert_int_equal(pglane_check("trust-loopback.ini", conf, &out), 0);
    free(out);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_client_login_timeout),
        H_TEST(test_max_client_conn),
        H_TEST(test_preauth_caps),
        H_TEST(test_server_lifetime),
        H_TEST(test_no_secrets_in_log_or_console),
        H_TEST(test_auth_file_permissions_warning),
        H_TEST(test_trust_beyond_loopback_refused),
    };
    return H_RUN_GROUP("integration: limits, timeouts, security", tests, .pg = &g_pg, .setup = fixtures);
}
