/*
 * Issue 17, auth_user / auth_query / auth_dbname / auth_cache_ttl: a role that is not in pglane's
 * auth_file, created in PostgreSQL after pglane started, logs in through pglane with an md5 and with a
 * SCRAM password (pglane verifies the client against the looked-up secret, then logs in to PostgreSQL
 * with it); a wrong password and an unknown user get the same 28P01 and message; a dropped role is
 * refused once auth_cache_ttl has passed and a role created after a failed try logs in once the
 * negative answer expired; concurrent logins share one lookup; a non-superuser auth_user works through
 * a SECURITY DEFINER function, and a lookup that fails gives the client 08006 and pglane's log a line.
 *
 * pg_hba (rewritten by the fixtures) asks md5 of every role but the superuser: PostgreSQL then uses
 * SCRAM for a role whose password is stored as SCRAM, md5 otherwise, so both server logins are
 * exercised. The lookups connect over the cluster's unix socket as postgres (trust) unless a test
 * says otherwise.
 */
#include "tests/integration/harness.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct h_pg g_pg;
static PGconn *g_super;

#define LOOKUPS(r) "pglane_auth_query_lookups_total{result=\"" r "\"}"

/* A direct TCP login to the cluster as user/password: 1 if it succeeds. */
static int direct_login(const char *user, const char *password)
{
    char ci[512];

    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=%s password=%s dbname=" H_DB " connect_timeout=5",
             g_pg.port, user, password);
    PGconn *c = PQconnectdb(ci);
    int ok = PQstatus(c) == CONNECTION_OK;

    PQfinish(c);
    return ok;
}

static int fixtures(void)
{
    char path[H_PATH + 32], hba[256];

    /* md5 for every role but postgres, on the unix socket and on TCP. */
    snprintf(path, sizeof path, "%s/pg_hba.conf", g_pg.datadir);
    snprintf(hba, sizeof hba, "local all %s trust\nlocal all all md5\nhost all all 127.0.0.1/32 md5\n",
             g_pg.superuser);
    if (h_write_file(path, hba) != 0 || h_exec(g_super, "SELECT pg_reload_conf()") != 0)
        return -1;
    /* The README's function: auth_user need not be a superuser. */
    if (h_exec(g_super, "SET password_encryption = 'md5'; CREATE ROLE aq_probe LOGIN PASSWORD 'probepw'; "
                        "CREATE SCHEMA pglane; "
                        "CREATE FUNCTION pglane.user_lookup(i_username text, OUT usename name, OUT passwd text) "
                        "RETURNS record AS $$ SELECT rolname, rolpassword FROM pg_catalog.pg_authid "
                        "WHERE rolname = i_username AND rolcanlogin "
                        "AND (rolvaliduntil IS NULL OR rolvaliduntil > now()) $$ LANGUAGE sql SECURITY DEFINER "
                        "SET search_path = pg_catalog, pg_temp; "
                        "REVOKE ALL ON FUNCTION pglane.user_lookup(text) FROM public; "
                        "GRANT USAGE ON SCHEMA pglane TO " H_USER "; "
                        "GRANT EXECUTE ON FUNCTION pglane.user_lookup(text) TO " H_USER "; "
                        "RESET password_encryption") != 0)
        return -1;
    /* The reload is asynchronous: wait until an md5 role logs in over TCP (scram-sha-256 refused it). */
    for (int64_t end = h_now_ms() + 10000; !direct_login("aq_probe", "probepw"); h_sleep_ms(50))
        if (h_now_ms() > end) {
            fprintf(stderr, "pg_hba reload not seen\n");
            return -1;
        }
    return 0;
}

/* Starts pglane with auth_type, lane main (size 2) on the cluster's unix socket, and extra in [pglane]. */
static void start(struct h_pglane *l, const char *auth_type, const char *extra)
{
    char conf[4096];

    snprintf(conf, sizeof conf,
             "[pglane]\nlisten = 127.0.0.1:@PORT@\nauth_type = %s\nauth_file = @AUTHFILE@\n"
             "pool_mode = transaction\ndefault_lane = main\nlog_level = info\n%s\n"
             "[server.pg]\nhost = %s\nport = @PGPORT@\n\n[lane.main]\nserver = pg\nsize = 2\n",
             auth_type, extra, g_pg.dir);
    assert_int_equal(h_pglane_start(l, &g_pg, conf), 0);
}

static PGconn *login(const struct h_pglane *l, const char *user, const char *password)
{
    char extra[256];

    snprintf(extra, sizeof extra, "user=%s password=%s", user, password);
    return h_connect(l, extra);
}

/* Logs in as user and checks that the session is PostgreSQL's, as that user. */
static void assert_logs_in(const struct h_pglane *l, const char *user, const char *password)
{
    PGconn *c = login(l, user, password);

    H_ASSERT_CONNECTED(c);
    char *v = h_query1(c, "SELECT current_user");
    assert_non_null(v);
    assert_string_equal(v, user);
    free(v);
    PQfinish(c);
}

static void send_p(int fd, const void *body, size_t n)
{
    uint8_t hdr[5] = { 'p' };

    h_put32(hdr + 1, (uint32_t)(n + 4));
    assert_int_equal(h_raw_send(fd, hdr, 5), 0);
    assert_int_equal(h_raw_send(fd, body, n), 0);
}

/*
 * A raw login as user with a wrong credential for whatever the server asks (md5, or SCRAM with a
 * well-formed wrong proof). *method gets the request code; sqlstate and msg the ErrorResponse's.
 */
static void raw_refused(const struct h_pglane *l, const char *user, uint32_t *method, char sqlstate[6],
                        char *msg, size_t msgcap)
{
    uint8_t buf[512], *body;
    uint32_t len;
    int fd = h_raw_connect(l->port);

    assert_true(fd >= 0);
    size_t n = h_raw_startup(buf, sizeof buf, 196608, user, H_DB);
    assert_int_equal(h_raw_send(fd, buf, n), 0);
    assert_int_equal(h_raw_read_msg(fd, 10000, &body, &len), 'R');
    assert_true(len >= 4);
    *method = h_get32(body);
    free(body);
    if (*method == 5) {
        send_p(fd, "md500000000000000000000000000000000", 36);
    } else {
        assert_int_equal(*method, 10);
        const char *first = "n,,n=,r=pglaneAuthQueryNonce0123456";
        size_t k = 14;

        memcpy(buf, "SCRAM-SHA-256", 14);
        h_put32(buf + k, (uint32_t)strlen(first));
        k += 4;
        memcpy(buf + k, first, strlen(first));
        k += strlen(first);
        send_p(fd, buf, k);
        assert_int_equal(h_raw_read_msg(fd, 10000, &body, &len), 'R');
        assert_true(len > 4 && h_get32(body) == 11);   /* SASLContinue */
        const char *r = strstr((const char *)body + 4, "r=");
        assert_non_null(r);
        char final[512];
        int fl = snprintf(final, sizeof final, "c=biws,r=%.*s,p=%s", (int)strcspn(r + 2, ","), r + 2,
                          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        free(body);
        send_p(fd, final, (size_t)fl);
    }
    assert_int_equal(h_raw_error(fd, 10000, sqlstate, msg, msgcap), 1);
    close(fd);
}

/* A wrong password for `known` and any password for `unknown`: the same method, 28P01, message. */
static void assert_unknown_like_wrong(const struct h_pglane *l, const char *known, const char *unknown,
                                      uint32_t want_method)
{
    uint32_t m1 = 0, m2 = 0;
    char s1[6], s2[6], msg1[256], msg2[256], want[256];

    raw_refused(l, known, &m1, s1, msg1, sizeof msg1);
    raw_refused(l, unknown, &m2, s2, msg2, sizeof msg2);
    assert_int_equal(m1, want_method);
    assert_int_equal(m2, want_method);
    assert_string_equal(s1, "28P01");
    assert_string_equal(s2, "28P01");
    snprintf(want, sizeof want, "password authentication failed for user \"%s\"", known);
    assert_string_equal(msg1, want);
    snprintf(want, sizeof want, "password authentication failed for user \"%s\"", unknown);
    assert_string_equal(msg2, want);
}

/* ------------------------------------------------------------------------------------------ */

/* auth_type = md5, a role stored as md5, made after pglane started; the default auth_query. */
static void test_md5_role_created_after_start(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char extra[256];
    int mport = h_free_port();

    snprintf(extra, sizeof extra, "auth_user = %s\nmetrics_listen = 127.0.0.1:%d\n", g_pg.superuser, mport);
    start(&l, "md5", extra);
    assert_int_equal(h_exec(g_super, "SET password_encryption = 'md5'; "
                                     "CREATE ROLE aq_md5 LOGIN PASSWORD 'md5secret'"), 0);
    char *stored = h_query1(g_super, "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'aq_md5'");
    assert_non_null(stored);
    assert_string_equal(stored, "md5");
    free(stored);

    assert_logs_in(&l, "aq_md5", "md5secret");
    assert_logs_in(&l, "aq_md5", "md5secret");    /* the cached secret */
    assert_unknown_like_wrong(&l, "aq_md5", "aq_nobody", 5);
    PGconn *c = login(&l, "aq_md5", "wrong");
    assert_int_equal(PQstatus(c), CONNECTION_BAD);
    PQfinish(c);

    /* aq_md5 and aq_nobody were looked up once each; the other logins used the cache. */
    assert_int_equal(h_metric_now(mport, LOOKUPS("miss")), 2);
    assert_true(h_metric_now(mport, LOOKUPS("hit")) >= 3);
    assert_int_equal(h_metric_now(mport, LOOKUPS("error")), 0);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* Drives the PQconnectStart connections cs[0..n) together (their startup packets reach pglane at
 * about the same moment) until each is made or failed, or timeout_ms pass. Returns how many are made. */
static int connect_together(PGconn **cs, int n, int timeout_ms)
{
    PostgresPollingStatusType st[16];
    int made = 0, open = n;

    assert_true(n <= 16);
    for (int i = 0; i < n; i++)
        st[i] = PQstatus(cs[i]) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    for (int64_t end = h_now_ms() + timeout_ms; open > 0 && h_now_ms() < end;) {
        struct pollfd p[16];
        int idx[16], k = 0;

        open = 0;
        for (int i = 0; i < n; i++) {
            if (st[i] == PGRES_POLLING_OK || st[i] == PGRES_POLLING_FAILED)
                continue;
            p[k].fd = PQsocket(cs[i]);
            p[k].events = st[i] == PGRES_POLLING_READING ? POLLIN : POLLOUT;
            p[k].revents = 0;
            idx[k++] = i;
            open++;
        }
        if (open == 0 || poll(p, (nfds_t)k, 100) < 0)
            break;
        for (int j = 0; j < k; j++)
            if (p[j].revents)
                st[idx[j]] = PQconnectPoll(cs[idx[j]]);
    }
    for (int i = 0; i < n; i++)
        made += st[i] == PGRES_POLLING_OK;
    return made;
}

/* auth_type = scram-sha-256, a role stored as SCRAM: pglane's server login uses the client's keys.
 * Eight clients logging in at once share one lookup. */
static void test_scram_role_created_after_start(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    enum { N = 8 };
    struct h_pglane l;
    char extra[256];
    int mport = h_free_port();
    PGconn *cs[N];

    snprintf(extra, sizeof extra, "auth_user = %s\nmetrics_listen = 127.0.0.1:%d\n", g_pg.superuser, mport);
    start(&l, "scram-sha-256", extra);
    assert_int_equal(h_exec(g_super, "SET password_encryption = 'scram-sha-256'; "
                                     "CREATE ROLE aq_scram LOGIN PASSWORD 'scramsecret'"), 0);
    char *stored = h_query1(g_super, "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'aq_scram'");
    assert_non_null(stored);
    assert_string_equal(stored, "SCRAM-SHA-256$");
    free(stored);

    for (int i = 0; i < N; i++)
        cs[i] = h_connect_start(&l, "user=aq_scram password=scramsecret");
    assert_int_equal(connect_together(cs, N, 15000), N);
    for (int i = 0; i < N; i++) {
        H_ASSERT_CONNECTED(cs[i]);
        char *v = h_query1(cs[i], "SELECT current_user");
        assert_non_null(v);
        assert_string_equal(v, "aq_scram");
        free(v);
    }
    for (int i = 0; i < N; i++)
        PQfinish(cs[i]);
    assert_int_equal(h_metric_now(mport, LOOKUPS("miss")), 1);
    assert_int_equal(h_metric_now(mport, LOOKUPS("error")), 0);

    assert_unknown_like_wrong(&l, "aq_scram", "aq_ghost", 10);
    PGconn *c = login(&l, "aq_scram", "wrong");
    assert_int_equal(PQstatus(c), CONNECTION_BAD);
    assert_non_null(strstr(PQerrorMessage(c), "password authentication failed for user \"aq_scram\""));
    PQfinish(c);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* Polls logins as user/password until their outcome is `ok` or 10 s pass: 1 if it came. Every refusal
 * on the way must read as a wrong password. */
static int await_login_outcome(const struct h_pglane *l, const char *user, const char *password, int ok)
{
    char want[128];

    snprintf(want, sizeof want, "password authentication failed for user \"%s\"", user);
    for (int64_t end = h_now_ms() + 10000; h_now_ms() < end; h_sleep_ms(100)) {
        PGconn *c = login(l, user, password);
        int in = PQstatus(c) == CONNECTION_OK;

        if (!in && !strstr(PQerrorMessage(c), want))
            fail_msg("refused otherwise than as a wrong password: %s", PQerrorMessage(c));
        PQfinish(c);
        if (in == ok)
            return 1;
    }
    return 0;
}

/* auth_cache_ttl = 1s: a dropped role is refused once its answer expired, and a role that did not exist
 * at the first try (a cached "no such user") logs in once that answer expired. */
static void test_ttl_dropped_and_created_roles(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char extra[256];

    snprintf(extra, sizeof extra, "auth_user = %s\nauth_cache_ttl = 1s\n", g_pg.superuser);
    start(&l, "scram-sha-256", extra);
    assert_int_equal(h_exec(g_super, "SET password_encryption = 'scram-sha-256'; "
                                     "CREATE ROLE aq_drop LOGIN PASSWORD 'droppw'"), 0);
    assert_logs_in(&l, "aq_drop", "droppw");
    assert_int_equal(h_exec(g_super, "DROP ROLE aq_drop"), 0);
    assert_true(await_login_outcome(&l, "aq_drop", "droppw", 0));
    assert_true(await_login_outcome(&l, "aq_drop", "droppw", 0));   /* and stays refused */

    PGconn *c = login(&l, "aq_late", "latepw");                    /* no such role yet: cached */
    assert_int_equal(PQstatus(c), CONNECTION_BAD);
    PQfinish(c);
    assert_int_equal(h_exec(g_super, "SET password_encryption = 'scram-sha-256'; "
                                     "CREATE ROLE aq_late LOGIN PASSWORD 'latepw'"), 0);
    assert_true(await_login_outcome(&l, "aq_late", "latepw", 1));
    assert_logs_in(&l, "aq_late", "latepw");
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* The value of key in the console's SHOW CONFIG (malloc'd), or NULL. */
static char *show_config(PGconn *adm, const char *key)
{
    PGresult *r = PQexec(adm, "SHOW CONFIG");
    char *v = NULL;

    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r) && !v; i++)
        if (strcmp(PQgetvalue(r, i, 0), key) == 0)
            v = strdup(PQgetvalue(r, i, 1));
    PQclear(r);
    return v;
}

/* auth_user = app (not a superuser, plaintext password in auth_file) through the SECURITY DEFINER
 * function in appdb (auth_dbname), for clients of another database too. SHOW CONFIG shows the keys; a
 * reload that changes auth_query takes effect at once (the cached answers go with the old query). */
static void test_non_superuser_auth_user(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;

    start(&l, "scram-sha-256", "auth_user = " H_USER "\nauth_dbname = " H_DB "\nadmin_users = " H_USER "\n"
                               "auth_query = SELECT usename, passwd FROM pglane.user_lookup($1)\n");
    PGconn *app = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(app);
    assert_string_equal(h_exec_sqlstate(app, "SELECT passwd FROM pg_shadow"), "42501");   /* no superuser */
    PQfinish(app);
    assert_int_equal(h_exec(g_super, "SET password_encryption = 'md5'; "
                                     "CREATE ROLE aq_def_md5 LOGIN PASSWORD 'defmd5'; "
                                     "SET password_encryption = 'scram-sha-256'; "
                                     "CREATE ROLE aq_def LOGIN PASSWORD 'defpw'; "
                                     "GRANT CONNECT ON DATABASE " H_BENCH_DB " TO aq_def"), 0);
    assert_logs_in(&l, "aq_def", "defpw");
    /* A client of benchdb: the lookup still runs in appdb. */
    PGconn *c = h_connect(&l, "user=aq_def password=defpw dbname=" H_BENCH_DB);
    H_ASSERT_CONNECTED(c);
    char *v = h_query1(c, "SELECT current_database()");
    assert_non_null(v);
    assert_string_equal(v, H_BENCH_DB);
    free(v);
    PQfinish(c);
    /* An md5 secret cannot verify SCRAM: refused like a wrong password. */
    c = login(&l, "aq_def_md5", "defmd5");
    assert_int_equal(PQstatus(c), CONNECTION_BAD);
    assert_non_null(strstr(PQerrorMessage(c), "password authentication failed for user \"aq_def_md5\""));
    PQfinish(c);
    assert_unknown_like_wrong(&l, "aq_def", "aq_nobody2", 10);

    PGconn *adm = h_console(&l, NULL);
    H_ASSERT_CONNECTED(adm);
    const char *const want[][2] = { { "auth_user", H_USER }, { "auth_dbname", H_DB },
                                    { "auth_query", "SELECT usename, passwd FROM pglane.user_lookup($1)" },
                                    { "auth_cache_ttl", "60000ms" } };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char *v = show_config(adm, want[i][0]);
        assert_non_null(v);
        assert_string_equal(v, want[i][1]);
        free(v);
    }
    char *conf = h_read_file(l.conf_path);
    char *at = conf ? strstr(conf, "user_lookup($1)\n") : NULL;
    assert_non_null(at);
    char *edited;
    assert_true(asprintf(&edited, "%.*suser_lookup($1) WHERE false\n%s", (int)(at - conf), conf,
                         at + strlen("user_lookup($1)\n")) > 0);
    assert_int_equal(h_write_file(l.conf_path, edited), 0);
    free(conf);
    free(edited);
    assert_int_equal(h_pglane_signal(&l, SIGHUP), 0);
    for (int64_t end = h_now_ms() + 10000;; h_sleep_ms(50)) {
        char *v = show_config(adm, "auth_query");
        int seen = v && strstr(v, "WHERE false") != NULL;

        free(v);
        if (seen)
            break;
        assert_true(h_now_ms() < end);
    }
    PQfinish(adm);
    c = login(&l, "aq_def", "defpw");              /* cached for 60 s before the reload */
    assert_int_equal(PQstatus(c), CONNECTION_BAD);
    assert_non_null(strstr(PQerrorMessage(c), "password authentication failed for user \"aq_def\""));
    PQfinish(c);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* The lookup fails (app may not read pg_shadow): 08006 with pglane's message, one log line saying why;
 * users in auth_file are not looked up and still log in. */
static void test_lookup_failure(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    int mport = h_free_port();
    char extra[256];

    snprintf(extra, sizeof extra, "auth_user = " H_USER "\nmetrics_listen = 127.0.0.1:%d\n", mport);
    start(&l, "scram-sha-256", extra);
    assert_int_equal(h_exec(g_super, "SET password_encryption = 'scram-sha-256'; "
                                     "CREATE ROLE aq_fail LOGIN PASSWORD 'failpw'"), 0);

    int fd = h_raw_connect(l.port);
    uint8_t buf[256];
    char sqlstate[6], msg[256];

    assert_true(fd >= 0);
    size_t n = h_raw_startup(buf, sizeof buf, 196608, "aq_fail", H_DB);
    assert_int_equal(h_raw_send(fd, buf, n), 0);
    assert_int_equal(h_raw_error(fd, 10000, sqlstate, msg, sizeof msg), 1);
    close(fd);
    assert_string_equal(sqlstate, "08006");
    assert_string_equal(msg, "pglane: could not look up the password of user \"aq_fail\" (auth_query failed; "
                             "see pglane's log)");
    assert_int_equal(h_metric_now(mport, LOOKUPS("error")), 1);
    char *log = h_pglane_log(&l);
    const char *line = strstr(log, "auth_query in database \"" H_DB "\" as auth_user \"" H_USER "\": query failed");
    assert_non_null(line);
    assert_non_null(strstr(line, "permission denied"));
    free(log);

    PGconn *c = h_connect(&l, NULL);                 /* app is in auth_file */
    H_ASSERT_CONNECTED(c);
    PQfinish(c);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_md5_role_created_after_start),
        H_TEST(test_scram_role_created_after_start),
        H_TEST(test_ttl_dropped_and_created_roles),
        H_TEST(test_non_superuser_auth_user),
        H_TEST(test_lookup_failure),
    };
    return H_RUN_GROUP("integration: auth_query", tests, .pg = &g_pg, .super = &g_super, .setup = fixtures);
}
