/*
 * The routing dry run: `pglane --route CONFIG.ini [--user U] [--database D] [--application-name A]
 * [--client-addr IP] < statements.sql` splits stdin with the lexer (a `;` inside a string, comment,
 * quoted identifier or dollar quote does not split) and prints per statement the tab-separated
 * fields lane, route, kind, read-only, tables, fingerprint (16 hex digits). No cluster needed.
 */
#include "tests/integration/harness.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_conf[H_PATH + 32];
static char g_dir[H_PATH];

static const char CONF[] =
    "[pglane]\n"
    "listen = 127.0.0.1:6432\n"
    "auth_type = md5\n"
    "auth_file = userlist.txt\n"
    "default_lane = oltp\n"
    "\n[server.pg]\nhost = 127.0.0.1\nport = 5432\n"
    "\n[lane.oltp]\nsize = 4\nstatement_timeout = 2s\n"
    "\n[lane.analytics]\nsize = 2\nstatement_timeout = 10min\nwork_mem = 256MB\n"
    "\n[lane.batch]\nsize = 1\n"
    "\n[route.addr_miss]\nclient_addr = 10.0.0.0/8\nlane = batch\n"
    "\n[route.reports]\napplication_name = report-*\nlane = analytics\n"
    "\n[route.by_user]\nuser = etl\nlane = batch\n"
    "\n[route.by_db]\ndatabase = warehouse\nlane = analytics\n"
    "\n[route.local_vacuum]\nclient_addr = 127.0.0.1/32\nkind = vacuum\nlane = batch\n"
    "\n[route.hinted]\nhint = yes\nlane = analytics\n"
    "\n[route.writes]\nkind = insert, update\ntables = events\nlane = batch\n"
    "\n[route.big]\ntables = big_table\nlane = analytics\n"
    "\n[route.rx]\nsql = (?i)\\bmonthly_report\\b\nlane = analytics\n";

static int write_config(void)
{
    char path[H_PATH + 32];

    snprintf(g_dir, sizeof g_dir, "%s", h_scratch_dir());
    snprintf(g_conf, sizeof g_conf, "%s/route.ini", g_dir);
    snprintf(path, sizeof path, "%s/userlist.txt", g_dir);
    if (h_write_file(path, "\"app\" \"secret\"\n") != 0 || chmod(path, 0600) != 0)
        return -1;
    return h_write_file(g_conf, CONF);
}

/* Runs pglane --route g_conf opts... with `sql` on stdin; returns the exit code, *out the output. */
static int route_run(const char *sql, const char *const *opts, char **out)
{
    static int seq;
    char in[H_PATH + 32];
    const char *argv[24];
    int n = 0;

    snprintf(in, sizeof in, "%s/stdin-%d.sql", g_dir, seq++);
    assert_int_equal(h_write_file(in, sql), 0);
    argv[n++] = "sh";
    argv[n++] = "-c";
    argv[n++] = "f=$1; shift; exec \"$@\" < \"$f\"";
    argv[n++] = "sh";
    argv[n++] = in;
    argv[n++] = h_pglane_bin();
    argv[n++] = "--route";
    argv[n++] = g_conf;
    for (int i = 0; opts && opts[i] && n < 23; i++)
        argv[n++] = opts[i];
    argv[n] = NULL;
    return h_run(argv, NULL, 10000, out);
}

struct line {
    char *f[6];
};

/* Splits the output into lines of exactly 6 tab-separated fields (asserted); returns the count. */
static int parse(char *out, struct line *lines, int max)
{
    int n = 0;
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        assert_true(n < max);
        int nf = 0;
        char *p = l;
        lines[n].f[nf++] = p;
        while ((p = strchr(p, '\t')) != NULL) {
            *p++ = '\0';
            if (nf < 6)
                lines[n].f[nf] = p;
            nf++;
        }
        if (nf != 6)
            print_error("line %d has %d fields, want 6\n", n + 1, nf);
        assert_int_equal(nf, 6);
        const char *fp = lines[n].f[5];
        int hex = strlen(fp) == 16;
        for (int i = 0; hex && i < 16; i++)
            hex = isxdigit((unsigned char)fp[i]) != 0;
        if (!hex)
            print_error("line %d: fingerprint \"%s\" is not 16 hex digits\n", n + 1, fp);
        assert_true(hex);
        assert_true(strcmp(lines[n].f[3], "read-only") == 0 || strcmp(lines[n].f[3], "read-write") == 0);
        n++;
    }
    return n;
}

static void expect(const struct line *l, int i, const char *lane, const char *route, const char *kind,
                   const char *ro, const char *tables)
{
    const char *want[5] = { lane, route, kind, ro, tables };
    static const char *const names[5] = { "lane", "route", "kind", "read-only", "tables" };
    for (int k = 0; k < 5; k++) {
        if (!want[k])
            continue;
        if (strcmp(l[i].f[k], want[k]) != 0)
            print_error("statement %d: %s is \"%s\", want \"%s\"\n", i + 1, names[k], l[i].f[k], want[k]);
        assert_string_equal(l[i].f[k], want[k]);
    }
}

/* ------------------------------------------------------------------------------------------ */

static void test_split_and_fields(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static const char sql[] =
        "SELECT * FROM t WHERE id = 1;\n"                                     /* 1 */
        "select *  from t where id=42;\n"                                     /* 2 */
        "SELECT 'a;b', 'it''s; here' FROM t;\n"                               /* 3 */
        "SELECT E'back\\\\slash \\'; still' FROM t;\n"                        /* 4 */
        "SELECT $$ ; $$, $fn$ a ; $$ ; b $fn$ FROM t;\n"                      /* 5 */
        "SELECT 1 /* outer /* nested ; */ still ; comment */ FROM t;\n"       /* 6 */
        "SELECT 1 -- line comment ; here\n FROM t;\n"                         /* 7 */
        "SELECT \"odd;name\" FROM t;\n"                                       /* 8 */
        "INSERT INTO events (v) VALUES (';');\n"                              /* 9 */
        "UPDATE events SET v = 2 WHERE v = 1;\n"                              /* 10 */
        "DELETE FROM events WHERE v = 3;\n"                                   /* 11 */
        "SELECT count(*) FROM big_table JOIN t ON t.id = big_table.id;\n"     /* 12 */
        "SELECT 1 AS monthly_report;\n"                                       /* 13 */
        "SELECT 1 /* pglane lane=analytics */;\n"                             /* 14 */
        "SELECT * FROM t FOR UPDATE;\n"                                       /* 15 */
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d;\n"            /* 16 */
        "CREATE TABLE x (a int);\n"                                           /* 17 */
        "INSERT INTO t VALUES (1)\n";                                         /* 18: no final ; */
    char *out = NULL;
    int rc = route_run(sql, NULL, &out);
    if (rc != 0)
        print_error("exit %d:\n%s\n", rc, out ? out : "");
    assert_int_equal(rc, 0);
    fprintf(stderr, "%s", out);
    struct line l[32];
    int n = parse(out, l, 32);
    assert_int_equal(n, 18);

    expect(l, 0, "oltp", "(default)", "select", "read-only", "t");
    expect(l, 1, "oltp", "(default)", "select", "read-only", "t");
    assert_string_equal(l[0].f[5], l[1].f[5]);             /* same shape, same fingerprint */
    for (int i = 2; i < 8; i++)
        expect(l, i, "oltp", "(default)", "select", "read-only", "t");
    assert_string_not_equal(l[0].f[5], l[2].f[5]);
    expect(l, 8, "batch", "writes", "insert", "read-write", "events");
    expect(l, 9, "batch", "writes", "update", "read-write", "events");
    expect(l, 10, "oltp", "(default)", "delete", "read-write", "events");   /* kind not in the list */
    expect(l, 11, "analytics", "big", "select", "read-only", NULL);
    assert_non_null(strstr(l[11].f[4], "big_table"));
    assert_non_null(strstr(l[11].f[4], "t"));
    expect(l, 12, "analytics", "rx", "select", "read-only", NULL);
    expect(l, 13, "analytics", "hinted", "select", "read-only", NULL);
    expect(l, 14, "oltp", "(default)", "select", "read-write", "t");         /* FOR UPDATE */
    expect(l, 15, "oltp", "(default)", NULL, "read-write", NULL);           /* CTE with DELETE */
    expect(l, 16, "oltp", "(default)", "ddl", "read-write", NULL);
    expect(l, 17, "oltp", "(default)", "insert", "read-write", "t");         /* insert, but not events */
    free(out);
    h_pass();
}

static void test_fingerprints(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static const char sql[] =
        "SELECT * FROM t WHERE id = 1;"
        "select *  from t where id=42;"
        "SELECT * /* a comment */ FROM t\n\tWHERE id = $1;"
        "SELECT * FROM t WHERE id = 'x';"
        "SELECT * FROM u WHERE id = 1;"
        "SELECT * FROM t WHERE id > 1;"
        "SELECT a FROM t WHERE id = 1;";
    char *out = NULL;
    assert_int_equal(route_run(sql, NULL, &out), 0);
    struct line l[16];
    assert_int_equal(parse(out, l, 16), 7);
    assert_string_equal(l[0].f[5], l[1].f[5]);
    assert_string_equal(l[0].f[5], l[2].f[5]);     /* comments, whitespace, parameter */
    assert_string_equal(l[0].f[5], l[3].f[5]);     /* a string literal is a literal too */
    assert_string_not_equal(l[0].f[5], l[4].f[5]); /* other table */
    assert_string_not_equal(l[0].f[5], l[5].f[5]); /* other operator */
    assert_string_not_equal(l[0].f[5], l[6].f[5]); /* other column */
    assert_string_not_equal(l[4].f[5], l[5].f[5]);
    free(out);

    /* Deterministic across runs. */
    char *again = NULL;
    assert_int_equal(route_run("select *  from t where id=42;", NULL, &again), 0);
    assert_int_equal(parse(again, l, 16), 1);
    out = NULL;
    assert_int_equal(route_run("SELECT * FROM t WHERE id = 7", NULL, &out), 0);
    struct line m[2];
    assert_int_equal(parse(out, m, 2), 1);
    assert_string_equal(l[0].f[5], m[0].f[5]);
    free(out);
    free(again);
    h_pass();
}

static void test_identity_options(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static const struct {
        const char *opts[5];
        const char *lane, *route;
    } cases[] = {
        { { NULL }, "oltp", "(default)" },
        { { "--application-name", "report-monthly", NULL }, "analytics", "reports" },
        { { "--application-name", "reporter", NULL }, "oltp", "(default)" },
        { { "--user", "etl", NULL }, "batch", "by_user" },
        { { "--user", "app", NULL }, "oltp", "(default)" },
        { { "--database", "warehouse", NULL }, "analytics", "by_db" },
        { { "--database", "appdb", NULL }, "oltp", "(default)" },
        { { "--client-addr", "10.1.2.3", NULL }, "batch", "addr_miss" },
        { { "--client-addr", "127.0.0.1", NULL }, "oltp", "(default)" },
        { { "--client-addr", "192.168.0.1", NULL }, "oltp", "(default)" },
        /* first match wins: the addr route is before the application_name route */
        { { "--client-addr", "10.0.0.1", "--application-name", "report-x", NULL }, "batch", "addr_miss" },
        { { "--user", "etl", "--database", "warehouse", NULL }, "batch", "by_user" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        int rc = route_run("SELECT * FROM t WHERE id = 1;", cases[i].opts, &out);
        if (rc != 0)
            print_error("case %zu: exit %d: %s\n", i, rc, out ? out : "");
        assert_int_equal(rc, 0);
        struct line l[2];
        assert_int_equal(parse(out, l, 2), 1);
        if (strcmp(l[0].f[0], cases[i].lane) != 0 || strcmp(l[0].f[1], cases[i].route) != 0)
            print_error("case %zu (%s %s): got %s/%s, want %s/%s\n", i,
                        cases[i].opts[0] ? cases[i].opts[0] : "", cases[i].opts[1] ? cases[i].opts[1] : "",
                        l[0].f[0], l[0].f[1], cases[i].lane, cases[i].route);
        assert_string_equal(l[0].f[0], cases[i].lane);
        assert_string_equal(l[0].f[1], cases[i].route);
        free(out);
    }

    /* client_addr AND kind: VACUUM from 127.0.0.1 goes to batch, from elsewhere not. */
    const char *local[] = { "--client-addr", "127.0.0.1", NULL };
    const char *remote[] = { "--client-addr", "192.168.1.9", NULL };
    char *out = NULL;
    struct line l[2];
    assert_int_equal(route_run("VACUUM t;", local, &out), 0);
    assert_int_equal(parse(out, l, 2), 1);
    expect(l, 0, "batch", "local_vacuum", "vacuum", NULL, NULL);
    free(out);
    assert_int_equal(route_run("VACUUM t;", remote, &out), 0);
    assert_int_equal(parse(out, l, 2), 1);
    expect(l, 0, "oltp", "(default)", "vacuum", NULL, NULL);
    free(out);
    h_pass();
}

static void test_errors(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    char *out = NULL;
    const char *bad_addr[] = { "--client-addr", "not-an-ip", NULL };
    int rc = route_run("SELECT 1;", bad_addr, &out);
    assert_true(rc != 0 && rc < 1000);
    assert_non_null(strstr(out, "not-an-ip"));
    free(out);
    const char *bad_opt[] = { "--bogus", "x", NULL };
    rc = route_run("SELECT 1;", bad_opt, &out);
    assert_true(rc != 0 && rc < 1000);
    free(out);
    const char *dangling[] = { "--user", NULL };
    rc = route_run("SELECT 1;", dangling, &out);
    assert_true(rc != 0 && rc < 1000);
    free(out);

    /* a config with a problem: file:line on stderr, non-zero exit */
    char bad[H_PATH + 32];
    snprintf(bad, sizeof bad, "%s/bad.ini", g_dir);
    assert_int_equal(h_write_file(bad, "[pglane]\ndefault_lane = oltp\nauth_type = md5\nauth_file = userlist.txt\n"
                                       "[server.pg]\n[lane.oltp]\n[route.r]\nkind = frobnicate\nlane = oltp\n"), 0);
    const char *argv[] = { "sh", "-c", "exec \"$0\" --route \"$1\" < /dev/null", h_pglane_bin(), bad, NULL };
    rc = h_run(argv, NULL, 10000, &out);
    fprintf(stderr, "bad config: exit %d: %s", rc, out);
    assert_true(rc != 0 && rc < 1000);
    char want[H_PATH + 48];
    snprintf(want, sizeof want, "%s:", bad);
    assert_non_null(strstr(out, want));
    free(out);
    h_pass();
}

/* Input without any statement: no output line, exit 0. */
static void test_no_statements(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static const char *const inputs[] = { "", " ; ;\n", "-- nothing ; here\n/* ; */\n" };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        char *out = NULL;
        int rc = route_run(inputs[i], NULL, &out);
        if (rc != 0)
            print_error("input \"%s\": exit %d (1000 + n: killed by signal n): %s\n", inputs[i], rc, out);
        assert_int_equal(rc, 0);
        assert_string_equal(out, "");
        free(out);
    }
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_split_and_fields),
        H_TEST(test_fingerprints),
        H_TEST(test_identity_options),
        H_TEST(test_errors),
        H_TEST(test_no_statements),
    };
    return H_RUN_GROUP("integration: pglane --route dry run", tests, .setup = write_config);
}
