/*
 * Security issue (#24, items 2-8): log lines escape client bytes, SCRAM does not tell unknown users
 * from wrong passwords, empty passwords are refused, SHOW BLOCKING hides literals from admins who are
 * not superusers, per-client memory and pool bounds, the admin connection reserve, and /metrics
 * timeouts and caps.
 */
#include "tests/integration/harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "protocol/proto.h"

static struct h_pg g_pg;

static int group_setup(void **state)
{
    (void)state;
    return h_pg_start(&g_pg) != 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_cleanup();
    h_pg_stop(&g_pg);
    return 0;
}

/* ------------------------------------------------------------------------------------------ helpers */

/* Replaces the first `from` in buf (capacity n) by `to`. Fails the test if absent. */
static void conf_replace(char *buf, size_t n, const char *from, const char *to)
{
    char *p = strstr(buf, from);
    assert_non_null(p);
    size_t fl = strlen(from), tl = strlen(to), rest = strlen(p + fl);
    assert_true(strlen(buf) - fl + tl < n);
    memmove(p + tl, p + fl, rest + 1);
    memcpy(p, to, tl);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Sends one frontend message: type, length, body. */
static void raw_msg(int fd, char type, const void *body, size_t n)
{
    uint8_t *b = malloc(5 + n);
    assert_non_null(b);
    b[0] = (uint8_t)type;
    put32(b + 1, (uint32_t)(4 + n));
    memcpy(b + 5, body, n);
    assert_int_equal(h_raw_send(fd, b, 5 + n), 0);
    free(b);
}

/* Reads the next message, which must be of type `want`; returns its body (malloc'd). */
static uint8_t *expect_msg(int fd, int want, uint32_t *len)
{
    uint8_t *body = NULL;
    int t = h_raw_read_msg(fd, 5000, &body, len);
    if (t != want)
        print_error("expected message '%c', got %d ('%c')\n", want, t, t > 0 ? t : '?');
    assert_int_equal(t, want);
    return body;
}

/* Reads the ErrorResponse that must come next and checks its SQLSTATE and message. */
static void expect_error(int fd, const char *sqlstate, const char *message)
{
    uint32_t len;
    uint8_t *body = expect_msg(fd, 'E', &len);
    const char *c = h_error_field(body, len, 'C'), *m = h_error_field(body, len, 'M');
    assert_non_null(c);
    assert_non_null(m);
    if (strcmp(c, sqlstate) != 0 || strcmp(m, message) != 0)
        print_error("got %s \"%s\", want %s \"%s\"\n", c, m, sqlstate, message);
    assert_string_equal(c, sqlstate);
    assert_string_equal(m, message);
    free(body);
}

/* A raw connection that sent a v3 startup packet for user/db; returns the fd. */
static int raw_start(const struct h_lane *l, const char *user, const char *db)
{
    uint8_t buf[16384];
    int fd = h_raw_connect(l->port);
    assert_true(fd >= 0);
    size_t n = h_raw_startup(buf, sizeof buf, 196608, user, db);
    assert_int_equal(h_raw_send(fd, buf, n), 0);
    return fd;
}

/*
 * One SCRAM exchange over a raw socket with `password`: checks the message sequence (SASL, then
 * SASLContinue with a server-first message whose salt goes to salt_out), then either SASLFinal +
 * AuthenticationOk (returns 1) or the 28P01 of a wrong password (returns 0).
 */
static int raw_scram(const struct h_lane *l, const char *user, const char *password, char *salt_out, size_t cap)
{
    int fd = raw_start(l, user, H_DB);
    uint32_t len;
    uint8_t *body = expect_msg(fd, 'R', &len);
    assert_true(len >= 4);
    assert_int_equal(get32(body), 10);                        /* AuthenticationSASL */
    assert_non_null(memmem(body + 4, len - 4, "SCRAM-SHA-256", 14));
    free(body);

    struct proto_scram_client sc;
    char first[PROTO_SCRAM_MAX_MSG], final[PROTO_SCRAM_MAX_MSG], init[PROTO_SCRAM_MAX_MSG + 64];
    size_t flen, finlen;
    const char *err = NULL;
    assert_int_equal(proto_scram_client_first(&sc, "rawclientnonce0123456789", first, sizeof first, &flen), 0);
    size_t il = 0;
    memcpy(init, "SCRAM-SHA-256", 14);
    il = 14;
    put32((uint8_t *)init + il, (uint32_t)flen);
    il += 4;
    memcpy(init + il, first, flen);
    il += flen;
    raw_msg(fd, 'p', init, il);

    body = expect_msg(fd, 'R', &len);
    assert_true(len > 4);
    assert_int_equal(get32(body), 11);                        /* AuthenticationSASLContinue */
    char server_first[PROTO_SCRAM_MAX_MSG];
    snprintf(server_first, sizeof server_first, "%.*s", (int)(len - 4), (const char *)body + 4);
    free(body);
    const char *s = strstr(server_first, ",s="), *i = strstr(server_first, ",i=");
    assert_non_null(s);
    assert_non_null(i);
    assert_string_equal(i, ",i=4096");
    snprintf(salt_out, cap, "%.*s", (int)(i - s - 3), s + 3);
    assert_int_equal(proto_scram_client_final(&sc, server_first, strlen(server_first), password, NULL, NULL,
                                              final, sizeof final, &finlen, &err), 0);
    raw_msg(fd, 'p', final, finlen);

    uint8_t *b2 = NULL;
    int t = h_raw_read_msg(fd, 5000, &b2, &len);
    int ok = 0;
    if (t == 'R') {
        assert_int_equal(get32(b2), 12);                      /* AuthenticationSASLFinal */
        free(b2);
        b2 = expect_msg(fd, 'R', &len);
        assert_int_equal(get32(b2), 0);                       /* AuthenticationOk */
        ok = 1;
    } else {
        char want[256];
        assert_int_equal(t, 'E');
        snprintf(want, sizeof want, "password authentication failed for user \"%s\"", user);
        assert_string_equal(h_error_field(b2, len, 'C'), "28P01");
        assert_string_equal(h_error_field(b2, len, 'M'), want);
    }
    free(b2);
    close(fd);
    return ok;
}

/* A libpq login attempt; 1 if it logged in. */
static int try_login(const struct h_lane *l, const char *user, const char *password, const char *db)
{
    char ci[512];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=%s password=%s dbname=%s connect_timeout=10 sslmode=disable",
             l->port, user, password, db);
    PGconn *c = PQconnectdb(ci);
    int ok = PQstatus(c) == CONNECTION_OK;
    PQfinish(c);
    return ok;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
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

/* ------------------------------------------------------------------------------------------ item 2 */

/* 1 if s starts with "YYYY-MM-DD HH:MM:SS.mmm ". */
static int starts_with_stamp(const char *s, size_t n)
{
    static const char pat[] = "dddd-dd-dd dd:dd:dd.ddd ";
    if (n < sizeof pat - 1)
        return 0;
    for (size_t i = 0; i < sizeof pat - 1; i++)
        if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
            return 0;
    return 1;
}

/*
 * Startup user and database names with "\n" (a whole forged line), "\r", ESC and DEL, and a 5000-byte
 * name, under SCRAM and md5 and at log_level debug: every line of pglane's log starts with a timestamp,
 * holds no control byte, no line is longer than 2.2 kB and no 200-byte run of the long name appears.
 */
static void test_log_lines_escaped(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static const char forged[] = "2026-12-03 00:00:00.000 ERROR FORGED-LINE admin ops: SHUTDOWN";
    char evil_user[256], evil_db[256], *longname = malloc(5001);
    assert_non_null(longname);
    memset(longname, 'A', 5000);
    longname[5000] = '\0';
    snprintf(evil_user, sizeof evil_user, "u\n%s", forged);
    snprintf(evil_db, sizeof evil_db, "d\r%s\x1b[31mred\x1b[0m\x7f\n%s", forged, forged);

    const char *types[2] = { "scram-sha-256", "md5" };
    for (int k = 0; k < 2; k++) {
        struct h_lane l;
        char conf[4096];
        h_conf(conf, sizeof conf, "transaction", 2, types[k], "server_idle_timeout = 60s\nadmin_users = app\n");
        conf_replace(conf, sizeof conf, "log_level = info", "log_level = debug");
        assert_int_equal(h_lane_start(&l, &g_pg, conf), 0);
        const char *users[4] = { evil_user, H_USER, longname, evil_user };
        const char *dbs[4] = { H_DB, evil_db, H_DB, evil_db };
        for (int i = 0; i < 4; i++) {
            int fd = raw_start(&l, users[i], dbs[i]);
            uint32_t len;
            uint8_t *body = expect_msg(fd, 'R', &len);   /* the auth request: then give up */
            free(body);
            raw_msg(fd, 'X', "", 0);
            close(fd);
        }
        /* A real login to a database with a newline in its name fails at the server ("login failed"). */
        char ci[512];
        PGconn *c;
        h_conninfo(&l, NULL, ci, sizeof ci);
        const char *keys[] = { "host", "port", "user", "password", "dbname", "sslmode", NULL };
        char port[16];
        snprintf(port, sizeof port, "%d", l.port);
        const char *vals[] = { "127.0.0.1", port, H_USER, H_PASSWORD, evil_db, "disable", NULL };
        c = PQconnectdbParams(keys, vals, 0);
        assert_int_not_equal(PQstatus(c), CONNECTION_OK);
        PQfinish(c);
        assert_false(try_login(&l, H_USER, "wrongpass", H_DB));
        assert_true(try_login(&l, H_USER, H_PASSWORD, H_DB));
        assert_true(h_lane_alive(&l));
        char *log = h_lane_log(&l);
        assert_int_equal(h_lane_stop(&l), 0);

        size_t lines = 0;
        int seen_escaped = 0;
        for (char *p = log; *p;) {
            char *e = strchr(p, '\n');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (!starts_with_stamp(p, n))
                print_error("log line without a timestamp: %.*s\n", (int)(n > 200 ? 200 : n), p);
            assert_true(starts_with_stamp(p, n));
            for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)p[i];
                if (ch < 0x20 || ch == 0x7f)
                    print_error("raw byte 0x%02x in log line: %.*s\n", ch, (int)(n > 200 ? 200 : n), p);
                assert_false(ch < 0x20 || ch == 0x7f);
            }
            assert_true(n < 2200);
            if (memmem(p, n, "u\\x0a2026-12-03", 15))
                seen_escaped = 1;
            lines++;
            p = e ? e + 1 : p + n;
        }
        assert_true(lines > 5);
        assert_true(seen_escaped);                  /* the names were logged, escaped */
        assert_null(strstr(log, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        free(log);
    }
    free(longname);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ item 3 */

/*
 * SCRAM: an unknown user gets the same message sequence as a known user with a wrong password
 * (SASL, SASLContinue with a salt and 4096 iterations, then 28P01 at the proof), with the same salt
 * on every try; md5 likewise asks an unknown user for a password and then says 28P01. Timing: the
 * medians of 200 alternating libpq logins (unknown user, known user with a wrong password) differ by
 * less than 20%.
 */
static void test_scram_unknown_user(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_lane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256", NULL);
    assert_int_equal(h_lane_start(&l, &g_pg, conf), 0);

    char salt_a[128], salt_b[128], salt_known[128], salt_other[128];
    assert_int_equal(raw_scram(&l, "ghost", "whatever", salt_a, sizeof salt_a), 0);
    assert_int_equal(raw_scram(&l, "ghost", "whatever", salt_b, sizeof salt_b), 0);
    assert_string_equal(salt_a, salt_b);                     /* stable, like a real user's */
    assert_int_equal(strlen(salt_a), 24);                    /* 16 bytes, as PostgreSQL's */
    assert_int_equal(raw_scram(&l, "ghost2", "whatever", salt_other, sizeof salt_other), 0);
    assert_string_not_equal(salt_a, salt_other);
    assert_int_equal(raw_scram(&l, H_USER, "wrongpass", salt_known, sizeof salt_known), 0);
    assert_int_equal(strlen(salt_known), 24);
    assert_int_equal(raw_scram(&l, H_USER, H_PASSWORD, salt_b, sizeof salt_b), 1);
    assert_string_equal(salt_known, salt_b);

    enum { TRIES = 200 };
    int64_t *unknown = calloc(TRIES, sizeof(int64_t)), *wrong = calloc(TRIES, sizeof(int64_t));
    assert_non_null(unknown);
    assert_non_null(wrong);
    for (int i = 0; i < TRIES; i++) {
        int64_t t0 = now_us();
        assert_false(try_login(&l, "ghost", "wrongpass", H_DB));
        int64_t t1 = now_us();
        assert_false(try_login(&l, H_USER, "wrongpass", H_DB));
        int64_t t2 = now_us();
        unknown[i] = t1 - t0;
        wrong[i] = t2 - t1;
    }
    qsort(unknown, TRIES, sizeof(int64_t), cmp_i64);
    qsort(wrong, TRIES, sizeof(int64_t), cmp_i64);
    double mu = (double)unknown[TRIES / 2], mw = (double)wrong[TRIES / 2];
    fprintf(stderr, "SCRAM login failure medians: unknown user %.0f us, known user wrong password %.0f us\n",
            mu, mw);
    double ratio = mu > mw ? mu / mw : mw / mu;
    assert_true(ratio < 1.2);
    free(unknown);
    free(wrong);
    assert_int_equal(h_lane_stop(&l), 0);

    /* md5: an unknown user is asked for a password too, and then fails like a wrong password. */
    h_conf(conf, sizeof conf, "transaction", 2, "md5", NULL);
    assert_int_equal(h_lane_start(&l, &g_pg, conf), 0);
    const char *users[2] = { "ghost", H_USER };
    for (int k = 0; k < 2; k++) {
        int fd = raw_start(&l, users[k], H_DB);
        uint32_t len;
        uint8_t *body = expect_msg(fd, 'R', &len);
        assert_int_equal(get32(body), 5);                   /* AuthenticationMD5Password */
        free(body);
        raw_msg(fd, 'p', "md5000102030405060708090a0b0c0d0e0f", 36);
        char want[128];
        snprintf(want, sizeof want, "password authentication failed for user \"%s\"", users[k]);
        expect_error(fd, "28P01", want);
        close(fd);
    }
    assert_int_equal(h_lane_stop(&l), 0);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ item 4 */

/*
 * An empty password in the auth_file is refused at load: --check names file:line, pglane does not
 * start with it, and a reload to such a file keeps the previous userlist.
 */
static void test_empty_password_refused(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    char auth[H_PATH + 32], text[512], conf[4096], *out = NULL;
    snprintf(auth, sizeof auth, "%s/empty-userlist.txt", h_scratch_dir());
    snprintf(text, sizeof text, "\"%s\" \"%s\"\n\"emptyu\" \"\"\n", H_USER, H_PASSWORD);
    assert_int_equal(h_write_file(auth, text), 0);
    assert_int_equal(chmod(auth, 0600), 0);
    h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256", NULL);
    conf_replace(conf, sizeof conf, "@AUTHFILE@", auth);
    conf_replace(conf, sizeof conf, "@PORT@", "16999");
    conf_replace(conf, sizeof conf, "@PGPORT@", "5432");
    assert_int_equal(pglane_check("empty.ini", conf, &out), 1);
    char want[H_PATH + 128];
    snprintf(want, sizeof want, "%s:2: user 'emptyu' has an empty password", auth);
    assert_non_null(strstr(out, want));
    free(out);

    /* A running pglane whose auth_file gains an empty password keeps its old userlist on reload. */
    struct h_lane l;
    h_conf(conf, sizeof conf, "transaction", 2, "md5", NULL);
    assert_int_equal(h_lane_start(&l, &g_pg, conf), 0);
    char *cur = h_read_file(l.auth_path);
    assert_non_null(cur);
    snprintf(text, sizeof text, "%s\"emptyu\" \"\"\n", cur);
    free(cur);
    assert_int_equal(h_write_file(l.auth_path, text), 0);
    assert_int_equal(h_lane_signal(&l, SIGHUP), 0);
    int64_t deadline = h_now_ms() + 5000;
    char *log = NULL;
    while (h_now_ms() < deadline) {
        free(log);
        log = h_lane_log(&l);
        if (strstr(log, "reload failed"))
            break;
        usleep(20000);
    }
    assert_non_null(strstr(log, "has an empty password"));
    assert_non_null(strstr(log, "reload failed"));
    free(log);
    assert_false(try_login(&l, "emptyu", "", H_DB));
    assert_false(try_login(&l, "emptyu", "x", H_DB));
    assert_true(try_login(&l, H_USER, H_PASSWORD, H_DB));
    assert_int_equal(h_lane_stop(&l), 0);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ item 5 */

/*
 * SHOW BLOCKING for an admin user who is not a PostgreSQL superuser: a lock wait between two
 * transactions whose statements hold a card number shows both sides, normalised ("?" for literals),
 * and the card number appears in no cell.
 */
static void test_show_blocking_no_literals(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    assert_int_equal(h_pg_exec(&g_pg, H_DB, "CREATE TABLE sec_card (id int PRIMARY KEY, v int, note text); "
                                            "INSERT INTO sec_card VALUES (1, 0, 'x'); "
                                            "GRANT ALL ON sec_card TO " H_USER), 0);
    struct h_lane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 4, "scram-sha-256", "server_idle_timeout = 60s\nadmin_users = " H_USER "\n");
    assert_int_equal(h_lane_start(&l, &g_pg, conf), 0);
    PGconn *super = h_pg_super(&g_pg, "postgres");
    assert_non_null(super);
    assert_int_equal(h_pg_long(super, "SELECT count(*) FROM pg_roles WHERE rolname = '" H_USER "' AND rolsuper"), 0);

    PGconn *a = h_connect(&l, NULL), *b = h_connect(&l, NULL), *adm = h_connect(&l, "dbname=pglane");
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    H_ASSERT_CONNECTED(adm);
    assert_int_equal(h_exec(a, "BEGIN"), 0);
    assert_int_equal(h_exec(a, "UPDATE sec_card SET v = v + 1 WHERE id = 1 AND note <> '4111-1111-1111-1111'"), 0);
    assert_int_equal(PQsendQuery(b, "UPDATE sec_card SET v = v + 2 WHERE id = 1 AND note <> '5500-0000-0000-0004' "
                                    "AND v < 123456789"), 1);
    int rows = 0;
    int64_t deadline = h_now_ms() + 15000;
    while (!rows && h_now_ms() < deadline) {
        PGresult *r = PQexec(adm, "SHOW BLOCKING");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        int wq = PQfnumber(r, "waiter_query"), bq = PQfnumber(r, "blocker_query");
        assert_true(wq >= 0 && bq >= 0);
        for (int i = 0; i < PQntuples(r); i++) {
            for (int c = 0; c < PQnfields(r); c++) {
                const char *v = PQgetvalue(r, i, c);
                if (strstr(v, "4111") || strstr(v, "5500") || strstr(v, "123456789"))
                    print_error("literal in SHOW BLOCKING column %s: %s\n", PQfname(r, c), v);
                assert_null(strstr(v, "4111"));
                assert_null(strstr(v, "5500"));
                assert_null(strstr(v, "123456789"));
            }
            fprintf(stderr, "SHOW BLOCKING: waiter \"%s\" blocker \"%s\"\n", PQgetvalue(r, i, wq),
                    PQgetvalue(r, i, bq));
            if (strstr(PQgetvalue(r, i, wq), "update sec_card") && strstr(PQgetvalue(r, i, wq), "?") &&
                strstr(PQgetvalue(r, i, bq), "update sec_card"))
                rows++;
        }
        PQclear(r);
        if (!rows)
            usleep(100000);
    }
    assert_true(rows > 0);
    assert_int_equal(h_exec(a, "ROLLBACK"), 0);
    assert_int_equal(h_wait_result(b, 10000), 0);
    PGresult *r;
    while ((r = PQgetResult(b)))
        PQclear(r);
    PQfinish(a);
    PQfinish(b);
    PQfinish(adm);
    PQfinish(super);
    assert_int_equal(h_lane_stop(&l), 0);
    h_pass();
}

int main(void)
{
    h_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_lines_escaped, h_test_setup, h_test_teardown),
        cmocka_unit_test_setup_teardown(test_scram_unknown_user, h_test_setup, h_test_teardown),
        cmocka_unit_test_setup_teardown(test_empty_password_refused, h_test_setup, h_test_teardown),
        cmocka_unit_test_setup_teardown(test_show_blocking_no_literals, h_test_setup, h_test_teardown),
    };
    return cmocka_run_group_tests_name("integration: security", tests, group_setup, group_teardown);
}
