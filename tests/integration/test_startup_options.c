/*
 * Issue 17, startup `options`: "-c name=value" and "--name=value" in a StartupMessage's options
 * become the client's own session settings (as if it had run SET right after login), in transaction
 * pooling on a lane of size 1 where every client shares one server connection: they apply to each of
 * its transactions, never to another client's, are reported by ParameterStatus, and a bad name or
 * value fails the login with PostgreSQL's error. Each answer is compared with PostgreSQL's own
 * (a connection straight to the cluster). Other switches and stray words are refused at login.
 */
#include "tests/integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct h_pg g_pg;
static struct h_pglane g_lane;     /* transaction pooling, lane main of size 1 */
static struct h_pglane g_direct;   /* the cluster itself: only its port is used */
static PGconn *g_super;

static int fixtures(void)
{
    char conf[4096];

    if (h_exec(g_super, "CREATE SCHEMA myschema AUTHORIZATION app;"
                        "CREATE TABLE myschema.where_am_i (v text);"
                        "INSERT INTO myschema.where_am_i VALUES ('myschema');"
                        "ALTER TABLE myschema.where_am_i OWNER TO app") != 0)
        return -1;
    h_conf(conf, sizeof conf, "transaction", 1, "scram-sha-256", NULL);
    if (h_pglane_start(&g_lane, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_lane);
    g_direct.port = g_pg.port;
    g_direct.direct = 1;
    return 0;
}

/* The targets of a differential test: PostgreSQL directly, then through pglane (the same in direct
 * mode, where h_pglane_start gave the lane PostgreSQL's port). */
static const struct h_pglane *const targets[2] = { &g_direct, &g_lane };
static const char *const target_names[2] = { "postgres", "pglane" };

/* The login error of a connection with conninfo extra, verbose (with its SQLSTATE), malloc'd; NULL if
 * the login succeeded. */
static char *login_error(const struct h_pglane *l, const char *extra)
{
    PGconn *c = h_connect_start(l, extra);
    char *msg = NULL;

    assert_non_null(c);
    PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
    if (h_connect_finish(c, 10000) != 0)
        msg = strdup(PQerrorMessage(c));
    PQfinish(c);
    return msg;
}

static char *show(PGconn *c, const char *name)
{
    char sql[128];
    char *v;

    snprintf(sql, sizeof sql, "SHOW %s", name);
    v = h_query1(c, sql);
    assert_non_null(v);
    return v;
}

static void assert_show(PGconn *c, const char *name, const char *want, const char *who)
{
    char *v = show(c, name);

    if (strcmp(v, want) != 0)
        print_error("%s: SHOW %s = \"%s\", want \"%s\"\n", who, name, v, want);
    assert_string_equal(v, want);
    free(v);
}

/* ------------------------------------------------------------------------------------------ */

/* statement_timeout from options cancels the client's own pg_sleep(2) (57014) in every transaction,
 * also after another client without options used the lane's only server connection, whose
 * pg_sleep(0.5) is not cancelled: the setting does not leak. */
static void test_statement_timeout_no_leak(void **state)
{
    (void)state;
    for (int t = 0; t < 2; t++) {
        PGconn *timed = h_connect(targets[t], "options='-c statement_timeout=300ms'");
        PGconn *plain = h_connect(targets[t], NULL);

        H_ASSERT_CONNECTED(timed);
        H_ASSERT_CONNECTED(plain);
        assert_show(timed, "statement_timeout", "300ms", target_names[t]);
        assert_string_equal(h_exec_sqlstate(timed, "SELECT pg_sleep(2)"), "57014");
        assert_string_equal(h_exec_sqlstate(plain, "SELECT pg_sleep(0.5)"), "");
        assert_show(plain, "statement_timeout", "0", target_names[t]);
        assert_string_equal(h_exec_sqlstate(timed, "SELECT pg_sleep(2)"), "57014");
        /* Its own SET wins over the startup value, as in PostgreSQL, and stays its own. */
        assert_int_equal(h_exec(timed, "SET statement_timeout = '5s'"), 0);
        assert_string_equal(h_exec_sqlstate(plain, "SELECT 1"), "");
        assert_show(timed, "statement_timeout", "5s", target_names[t]);
        assert_show(plain, "statement_timeout", "0", target_names[t]);
        PQfinish(timed);
        PQfinish(plain);
    }
    h_pass();
}

/* The issue's own check: psql "... options='-c statement_timeout=300ms'" then pg_sleep(2) gets 57014. */
static void test_psql_statement_timeout(void **state)
{
    (void)state;
    for (int t = 0; t < 2; t++) {
        char ci[1024], *out = NULL;
        const char *argv[] = { "psql", "-X", "-A", "-t", "-q", "-v", "VERBOSITY=verbose", "-d", ci,
                               "-c", "SHOW statement_timeout", "-c", "SELECT pg_sleep(2)", NULL };
        int rc;

        h_conninfo(targets[t], "options='-c statement_timeout=300ms'", ci, sizeof ci);
        rc = h_run(argv, NULL, 20000, &out);
        assert_non_null(out);
        if (!strstr(out, "300ms") || !strstr(out, "57014"))
            print_error("%s: psql exit %d: %s\n", target_names[t], rc, out);
        assert_non_null(strstr(out, "300ms"));
        assert_non_null(strstr(out, "ERROR:  57014: canceling statement due to statement timeout"));
        free(out);
    }
    h_pass();
}

/* --search_path=myschema: SHOW and an unqualified name see it; a client without options does not. */
static void test_long_option_search_path(void **state)
{
    (void)state;
    for (int t = 0; t < 2; t++) {
        PGconn *c = h_connect(targets[t], "options='--search_path=myschema'");
        PGconn *plain = h_connect(targets[t], NULL);
        char *v;

        H_ASSERT_CONNECTED(c);
        H_ASSERT_CONNECTED(plain);
        assert_show(c, "search_path", "myschema", target_names[t]);
        v = h_query1(c, "SELECT v FROM where_am_i");
        assert_non_null(v);
        assert_string_equal(v, "myschema");
        free(v);
        assert_string_equal(h_exec_sqlstate(plain, "SELECT v FROM where_am_i"), "42P01");
        assert_show(plain, "search_path", "\"$user\", public", target_names[t]);
        assert_show(c, "search_path", "myschema", target_names[t]);
        PQfinish(c);
        PQfinish(plain);
    }
    h_pass();
}

/* Several settings, -cname=value without a space, a dash in a --name, a backslash-escaped space:
 * the values and the ParameterStatus PostgreSQL reports (application_name, DateStyle) are
 * PostgreSQL's; an explicit startup parameter (libpq sends PGTZ as TimeZone) wins over options, as in
 * PostgreSQL. */
static void test_forms_and_parameter_status(void **state)
{
    (void)state;
    const char *opts = "options='-c application_name=my\\\\ app  -cDateStyle=German --lock-timeout=5s "
                       "-c work_mem=8MB -c timezone=UTC -c my-ext.flag=on'";
    char *want[6] = { 0 };

    for (int t = 0; t < 2; t++) {
        PGconn *c;
        char *got[6];

        setenv("PGTZ", "Europe/Paris", 1);
        c = h_connect(targets[t], opts);
        unsetenv("PGTZ");

        H_ASSERT_CONNECTED(c);
        got[0] = strdup(PQparameterStatus(c, "application_name"));
        got[1] = strdup(PQparameterStatus(c, "DateStyle"));
        got[2] = strdup(PQparameterStatus(c, "TimeZone"));
        got[3] = show(c, "lock_timeout");
        got[4] = show(c, "work_mem");
        got[5] = show(c, "DateStyle");
        assert_string_equal(got[0], "my app");
        assert_string_equal(got[2], "Europe/Paris");
        assert_show(c, "my_ext.flag", "on", target_names[t]);
        assert_string_equal(got[3], "5s");
        for (int i = 0; i < 6; i++) {
            if (t == 0) {
                want[i] = got[i];
                continue;
            }
            if (strcmp(got[i], want[i]) != 0)
                print_error("value %d: postgres \"%s\", pglane \"%s\"\n", i, want[i], got[i]);
            assert_string_equal(got[i], want[i]);
            free(got[i]);
            free(want[i]);
        }
        /* Another client on the same server connection has none of it. */
        if (t == 1) {
            PGconn *plain = h_connect(targets[t], NULL);

            H_ASSERT_CONNECTED(plain);
            assert_string_equal(PQparameterStatus(plain, "application_name"), "");
            assert_show(plain, "lock_timeout", "0", "pglane");
            char *wm = show(plain, "work_mem");

            assert_string_not_equal(wm, "8MB");
            free(wm);
            assert_show(c, "work_mem", "8MB", "pglane");
            wm = h_query1(plain, "SELECT coalesce(current_setting('my_ext.flag', true), '')");
            assert_non_null(wm);
            assert_string_equal(wm, "");
            free(wm);
            assert_show(c, "my_ext.flag", "on", "pglane");
            PQfinish(plain);
        }
        PQfinish(c);
    }
    h_pass();
}

/*
 * standard_conforming_strings = off from options: libpq escapes string literals by the value the
 * server reported at login, so that report must be the session's (pglane reported its pool's "on":
 * PQescapeStringConn then left a backslash single and the text changed, or the statement broke). The
 * same for default_transaction_read_only, reported since PostgreSQL 14. Checked with PostgreSQL and
 * through pglane: the reports, and a string with a backslash and a quote coming back unchanged, also
 * after another client without the options used the lane's one server connection.
 */
static void test_reported_settings_from_options(void **state)
{
    static const char tricky[] = "a\\'; select 'b";

    (void)state;
    for (int t = 0; t < 2; t++) {
        PGconn *c = h_connect(targets[t], "options='-c standard_conforming_strings=off "
                                          "-c default_transaction_read_only=on'");
        PGconn *plain = h_connect(targets[t], NULL);
        char esc[64], sql[128], *v;
        int err = 0;

        H_ASSERT_CONNECTED(c);
        H_ASSERT_CONNECTED(plain);
        assert_string_equal(PQparameterStatus(c, "standard_conforming_strings"), "off");
        assert_string_equal(PQparameterStatus(c, "default_transaction_read_only"), "on");
        assert_string_equal(PQparameterStatus(plain, "standard_conforming_strings"), "on");
        assert_string_equal(PQparameterStatus(plain, "default_transaction_read_only"), "off");
        for (int round = 0; round < 2; round++) {
            PQescapeStringConn(c, esc, tricky, strlen(tricky), &err);
            assert_int_equal(err, 0);
            snprintf(sql, sizeof sql, "SELECT '%s'", esc);
            v = h_query1(c, sql);
            if (!v || strcmp(v, tricky) != 0)
                print_error("%s: %s gave %s\n", target_names[t], sql, v ? v : PQerrorMessage(c));
            assert_non_null(v);
            assert_string_equal(v, tricky);
            free(v);
            v = h_query1(plain, "SELECT 'c\\d'");
            assert_non_null(v);
            assert_string_equal(v, "c\\d");
            free(v);
        }
        PQfinish(plain);
        PQfinish(c);
    }
    h_pass();
}

/* A bad name, a bad value, a setting without a value: the login fails with PostgreSQL's error. */
static void test_bad_settings_refused_at_login(void **state)
{
    (void)state;
    static const struct {
        const char *extra, *sqlstate, *text;
    } cases[] = {
        { "options='-c no_such_setting=1'", "42704", "unrecognized configuration parameter \"no_such_setting\"" },
        { "options='-c statement_timeout=abc'", "22023", "invalid value for parameter \"statement_timeout\"" },
        { "options='--search_path'", "42601", "--search_path requires a value" },
        { "options='-c work_mem'", "42601", "-c work_mem requires a value" },
        { "options='-c'", "42601", "invalid command-line argument for server process: -c" },
        { "options='-c my-ext.x=1 -c lock_timeout=never'", "22023", "invalid value for parameter \"lock_timeout\"" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int t = 0; t < 2; t++) {
            char *msg = login_error(targets[t], cases[i].extra);

            if (!msg || !strstr(msg, cases[i].sqlstate) || !strstr(msg, cases[i].text))
                print_error("%s %s: %s\n", target_names[t], cases[i].extra, msg ? msg : "(connected)");
            assert_non_null(msg);
            assert_non_null(strstr(msg, cases[i].sqlstate));
            assert_non_null(strstr(msg, cases[i].text));
            free(msg);
        }
    /* The lane still serves. */
    PGconn *c = h_connect(&g_lane, NULL);
    H_ASSERT_CONNECTED(c);
    assert_string_equal(h_exec_sqlstate(c, "SELECT 1"), "");
    PQfinish(c);
    h_pass();
}

/* Other switches and stray words are refused at login, naming what is not supported. */
static void test_unsupported_refused(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static const struct {
        const char *extra, *sqlstate, *text;
    } cases[] = {
        { "options='-e'", "0A000", "switch \"-e\" in startup parameter \"options\" is not supported" },
        { "options='-c work_mem=8MB -d 5'", "0A000", "switch \"-d\"" },
        { "options='-c work_mem=8MB stray'", "08P01", "\"stray\" in startup parameter \"options\" is not supported" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *msg = login_error(&g_lane, cases[i].extra);

        if (!msg || !strstr(msg, cases[i].sqlstate) || !strstr(msg, cases[i].text))
            print_error("%s: %s\n", cases[i].extra, msg ? msg : "(connected)");
        assert_non_null(msg);
        assert_non_null(strstr(msg, "FATAL"));
        assert_non_null(strstr(msg, cases[i].sqlstate));
        assert_non_null(strstr(msg, cases[i].text));
        free(msg);
    }
    /* Empty options, or only white space: an ordinary login. */
    PGconn *c = h_connect(&g_lane, "options='  '");
    H_ASSERT_CONNECTED(c);
    assert_show(c, "statement_timeout", "0", "pglane");
    PQfinish(c);
    h_pass();
}

/* Last: pglane drains and exits cleanly after all of the above. */
H_CLEAN_EXIT_TEST(test_clean_exit, &g_lane)

/* A connection pool's habit: DISCARD ALL or RESET ALL when a connection is handed back. The options'
 * settings are the session's defaults, so they hold again afterwards, as in PostgreSQL; another
 * client's transaction on the lane's only server connection in between changes nothing. */
static void test_options_survive_discard_all(void **state)
{
    static const char *const resets[] = { "DISCARD ALL", "RESET ALL", "RESET statement_timeout",
                                          "SET statement_timeout TO DEFAULT" };
    (void)state;

    for (int t = 0; t < 2; t++)
        for (size_t i = 0; i < sizeof(resets) / sizeof(resets[0]); i++) {
            PGconn *c = h_connect(targets[t], "options='-c statement_timeout=4321 --search_path=myschema'");
            PGconn *o = h_connect(targets[t], NULL);
            char who[96];

            H_ASSERT_CONNECTED(c);
            H_ASSERT_CONNECTED(o);
            snprintf(who, sizeof who, "%s after %s", target_names[t], resets[i]);
            assert_int_equal(h_exec(c, "SET statement_timeout = '99ms'"), 0);
            assert_int_equal(h_exec(c, resets[i]), 0);
            assert_int_equal(h_exec(o, "SET statement_timeout = '55ms'"), 0);
            assert_show(c, "statement_timeout", "4321ms", who);
            assert_show(c, "search_path", "myschema", who);
            assert_show(o, "statement_timeout", "55ms", who);
            PQfinish(o);
            PQfinish(c);
        }
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_statement_timeout_no_leak),
        H_TEST(test_psql_statement_timeout),
        H_TEST(test_long_option_search_path),
        H_TEST(test_forms_and_parameter_status),
        H_TEST(test_reported_settings_from_options),
        H_TEST(test_bad_settings_refused_at_login),
        H_TEST(test_unsupported_refused),
        H_TEST(test_options_survive_discard_all),
        H_TEST(test_clean_exit),
    };
    return H_RUN_GROUP("integration: startup options (issue 17)", tests,
                       .pg = &g_pg, .super = &g_super, .setup = fixtures);
}
