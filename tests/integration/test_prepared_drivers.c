/*
 * Real drivers through pglane in transaction pooling with prepared statements (issue 4): psycopg 3
 * (Debian python3-psycopg), asyncpg (Debian python3-asyncpg), node-postgres and postgres.js (npm,
 * tests/drivers/node), pgx (Go, Debian golang-github-jackc-pgx-v4-dev), tokio-postgres (Rust, Debian
 * librust-tokio-postgres-dev, built with cargo offline) and pgJDBC (Debian libpostgresql-jdbc-java). Each script in tests/drivers/
 * runs as a subprocess with the address in environment variables, more clients than the lane's 2
 * server connections, and must exit 0 with its "... OK" line last. A driver or runtime that is missing fails the test: nothing is skipped.
 * Run from the repository root (as tests/run.sh does), or set PGLANE_DRIVERS_DIR.
 *
 * Failing when written (proxy bug, passes with PGLANE_TEST_DIRECT=1): test_psycopg_prepared_max_rotation
 * (psycopg's SQL "DEALLOCATE _pg3_n" of a statement it prepared through the protocol).
 */
#include "tests/integration/harness.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"          /* Debian's, with python3-psycopg (not a pyenv one) */
#define JDBC_JAR "/usr/share/java/postgresql.jar"
#define GOPATH_DEBIAN "/usr/share/gocode"          /* Debian's Go packages (GOPATH layout) */
#define TOKIO_POSTGRES_CRATES "/usr/share/cargo/registry"   /* Debian's Rust crates */
#define DEBIAN_CARGO "/usr/bin/cargo"
#define DEBIAN_RUSTC "/usr/bin/rustc"

static struct h_pg g_pg;
static struct h_pglane g_lane;      /* transaction pooling, lane size 2 */
static char g_drivers[PATH_MAX];  /* tests/drivers, absolute */
static char g_env[6][1200];

static int fixtures(void)
{
    const char *d = getenv("PGLANE_DRIVERS_DIR");
    if (!realpath(d && *d ? d : "tests/drivers", g_drivers)) {
        fprintf(stderr, "tests/drivers not found: run from the repository root or set PGLANE_DRIVERS_DIR\n");
        return -1;
    }
    if (h_pg_exec(&g_pg, H_DB,
                  "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL);"
                  "INSERT INTO items SELECT i, 'item-' || i, i * 3 FROM generate_series(1, 1000) i;"
                  "CREATE TABLE py_rows (worker int NOT NULL, i int NOT NULL, v text, PRIMARY KEY (worker, i));"
                  "CREATE TABLE node_rows (worker int NOT NULL, i int NOT NULL);"
                  "CREATE TABLE jdbc_rows (worker int NOT NULL, i int NOT NULL, v text, PRIMARY KEY (worker, i));"
                  "ALTER TABLE items OWNER TO " H_USER ";"
                  "ALTER TABLE py_rows OWNER TO " H_USER ";"
                  "ALTER TABLE node_rows OWNER TO " H_USER ";"
                  "ALTER TABLE jdbc_rows OWNER TO " H_USER ";"
                  "CREATE TABLE apg_rows (worker int NOT NULL, i int NOT NULL, v text, PRIMARY KEY (worker, i));"
                  "CREATE TABLE apg_copy (worker int NOT NULL, i int NOT NULL, v text);"
                  "CREATE TYPE apg_mood AS ENUM ('sad', 'ok', 'happy'); CREATE TYPE apg_pair AS (a int, b text);"
                  "CREATE DOMAIN apg_pos AS int CHECK (VALUE > 0);"
                  "CREATE TABLE apg_kinds (id int PRIMARY KEY, m apg_mood, p apg_pair, d apg_pos, j jsonb, arr int[]);"
                  "ALTER TABLE apg_rows OWNER TO " H_USER ";"
                  "ALTER TABLE apg_copy OWNER TO " H_USER ";"
                  "CREATE TABLE apg_shape (id int, v text);"
                  "ALTER TABLE apg_shape OWNER TO " H_USER ";"
                  "ALTER TABLE apg_kinds OWNER TO " H_USER ";"
                  "CREATE TABLE pjs_rows (worker int NOT NULL, i int NOT NULL, v text, PRIMARY KEY (worker, i));"
                  "CREATE TABLE pjs_copy (worker int NOT NULL, i int NOT NULL, v text);"
                  "CREATE TABLE pjs_shape (id int, v text);"
                  "ALTER TABLE pjs_rows OWNER TO " H_USER ";"
                  "ALTER TABLE pjs_copy OWNER TO " H_USER ";"
                  "ALTER TABLE pjs_shape OWNER TO " H_USER ";"
                  "CREATE TABLE pgx_rows (worker int NOT NULL, i int NOT NULL, v text, PRIMARY KEY (worker, i));"
                  "CREATE TABLE pgx_shape (id int, v text);"
                  "ALTER TABLE pgx_rows OWNER TO " H_USER ";"
                  "ALTER TABLE pgx_shape OWNER TO " H_USER ";"
                  "CREATE TABLE tk_rows (worker int NOT NULL, i int NOT NULL, v text, PRIMARY KEY (worker, i));"
                  "CREATE TABLE tk_copy (worker int NOT NULL, i int NOT NULL, v text);"
                  "CREATE TABLE tk_shape (id int, v text);"
                  "ALTER TABLE tk_rows OWNER TO " H_USER ";"
                  "ALTER TABLE tk_copy OWNER TO " H_USER ";"
                  "ALTER TABLE tk_shape OWNER TO " H_USER) != 0)
        return -1;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256", "admin_users = " H_USER "\n");
    if (h_pglane_start(&g_lane, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_lane);
    char ci[1024];
    h_conninfo(&g_lane, NULL, ci, sizeof ci);
    snprintf(g_env[0], sizeof g_env[0], "PGLANE_DSN=%s", ci);
    snprintf(g_env[1], sizeof g_env[1], "PGLANE_HOST=127.0.0.1");
    snprintf(g_env[2], sizeof g_env[2], "PGLANE_PORT=%d", g_lane.port);
    snprintf(g_env[3], sizeof g_env[3], "PGLANE_USER=" H_USER);
    snprintf(g_env[4], sizeof g_env[4], "PGLANE_PASSWORD=" H_PASSWORD);
    snprintf(g_env[5], sizeof g_env[5], "PGLANE_DB=" H_DB);
    return 0;
}

/* The last non-empty line of text (static copy). */
static const char *last_line(const char *text)
{
    static char line[512];
    line[0] = 0;
    if (!text)
        return line;
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    size_t start = n;
    while (start > 0 && text[start - 1] != '\n')
        start--;
    snprintf(line, sizeof line, "%.*s", (int)(n - start), text + start);
    return line;
}

/* Runs a driver script; asserts exit 0 and a last line beginning with want. */
static void run_driver(const char *const *argv, const char *want, int timeout_ms)
{
    const char *env[] = { g_env[0], g_env[1], g_env[2], g_env[3], g_env[4], g_env[5], NULL };
    char *out = NULL;
    int64_t t0 = h_now_ms();
    int rc = h_run(argv, env, timeout_ms, &out);
    const char *last = last_line(out);
    int argc = 0;
    while (argv[argc + 1])
        argc++;
    if (rc != 0 || strncmp(last, want, strlen(want)) != 0)
        print_error("%s ... %s: exit %d (%s)\n%s\n", argv[0], argv[argc], rc,
                    rc == -1 ? "timed out" : "", out ? out : "(no output)");
    else
        fprintf(stderr, "%s (%.1f s)\n", last, (double)(h_now_ms() - t0) / 1000);
    assert_int_equal(rc, 0);
    assert_true(strncmp(last, want, strlen(want)) == 0);
    free(out);
}

static void require_file(const char *path, const char *package)
{
    if (access(path, R_OK) != 0)
        print_error("%s is missing: install %s (scripts/install-deps.sh)\n", path, package);
    assert_int_equal(access(path, R_OK), 0);
}

/* A driver's install or build step (npm ci, javac, go build): on failure its output and what it needs
 * are printed, and the test fails. */
static void driver_step(const char *const *argv, const char *const *env, int timeout_ms, const char *needs)
{
    char *out = NULL;
    int rc = h_run(argv, env, timeout_ms, &out);
    if (rc != 0)
        print_error("%s %s failed (%d): %s:\n%s\n", argv[0], argv[1], rc, needs, out ? out : "");
    free(out);
    assert_int_equal(rc, 0);
}

/* tests/drivers/<driver>_test.py <section>, whose last line must be "<driver> <section> OK ...". */
static void python_section(const char *driver, const char *section, int timeout_ms)
{
    char script[PATH_MAX + 32], want[64];
    require_file(PYTHON, "python3");
    snprintf(script, sizeof script, "%s/%s_test.py", g_drivers, driver);
    snprintf(want, sizeof want, "%s %s OK", driver, section);
    const char *argv[] = { PYTHON, script, section, NULL };
    run_driver(argv, want, timeout_ms);
}

/* ------------------------------------------------------------------------------------------ psycopg */

static void psycopg_section(const char *section)
{
    python_section("psycopg", section, 60000);
}

static void test_psycopg_prepare_threshold(void **state)
{
    (void)state;
    psycopg_section("basic");
    h_pass();
}

static void test_psycopg_executemany(void **state)
{
    (void)state;
    psycopg_section("executemany");
    /* 6 workers x 400 committed rows, nothing from the rolled-back batches. */
    PGconn *s = h_pg_super(&g_pg, H_DB);
    assert_non_null(s);
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM py_rows WHERE worker < 100"), 6 * 400);
    PQfinish(s);
    h_pass();
}

static void test_psycopg_pipeline(void **state)
{
    (void)state;
    psycopg_section("pipeline");
    h_pass();
}

/* psycopg deallocates statements beyond prepared_max (default 100) with SQL "DEALLOCATE _pg3_n". */
static void test_psycopg_prepared_max_rotation(void **state)
{
    (void)state;
    psycopg_section("rotate");
    h_pass();
}

/* ------------------------------------------------------------------------------------------ asyncpg */

static void asyncpg_section(const char *section)
{
    python_section("asyncpg", section, 120000);
}

/* 8 asyncpg pool connections over 2 server connections: every query a named statement of asyncpg's
 * own (__asyncpg_stmt_<n>__, the same names with other texts in each connection), transactions,
 * cursors (named portals), explicit prepare, atomic executemany. */
static void test_asyncpg_pool(void **state)
{
    (void)state;
    asyncpg_section("pool");
    h_pass();
}

/* copy_records_to_table: Parse/Describe/Flush of a statement, then COPY FROM STDIN as a Query with its
 * data right behind it (hung through pglane before: the data waited for the Query's answer). */
static void test_asyncpg_copy(void **state)
{
    (void)state;
    asyncpg_section("copy");
    PGconn *s = h_pg_super(&g_pg, H_DB);
    assert_non_null(s);
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM apg_copy"), 8 * 5 * 70);
    PQfinish(s);
    h_pass();
}

static void test_asyncpg_types(void **state)
{
    (void)state;
    asyncpg_section("types");
    h_pass();
}

/* A table change under statements every connection has cached: asyncpg gets PostgreSQL's 0A000 from
 * whichever server connection runs it, and prepares it again (before pglane checked the columns of a
 * statement prepared anew on a server connection: rows of the new shape, ProtocolError in asyncpg). */
static void test_asyncpg_schema_change(void **state)
{
    (void)state;
    asyncpg_section("schema");
    h_pass();
}

/* Timeouts: asyncpg cancels; a request waiting in the lane's queue is answered 57014 at once (was
 * dropped for named statements before: the sleep then ran its 30 s). */
static void test_asyncpg_cancel(void **state)
{
    (void)state;
    asyncpg_section("cancel");
    h_pass();
}

static void test_asyncpg_reset(void **state)
{
    (void)state;
    asyncpg_section("reset");
    h_pass();
}

/* ------------------------------------------------------------------------------------------ node */

/* How many of the pinned node packages dir/node_modules lacks. */
static int node_modules_missing(const char *dir)
{
    static const char *const pkgs[] = { "pg", "postgres" };
    char pkg[PATH_MAX + 64];
    int missing = 0;

    for (size_t i = 0; i < sizeof pkgs / sizeof pkgs[0]; i++) {
        snprintf(pkg, sizeof pkg, "%s/node_modules/%s/package.json", dir, pkgs[i]);
        missing += access(pkg, R_OK) != 0;
    }
    return missing;
}

/* tests/drivers/node with its pinned packages (node-postgres, postgres.js) installed: the first run
 * installs them from package-lock.json. */
static void node_modules_ready(void)
{
    char dir[PATH_MAX + 16];

    snprintf(dir, sizeof dir, "%s/node", g_drivers);
    if (!node_modules_missing(dir))
        return;
    const char *npm[] = { "npm", "ci", "--prefix", dir, "--no-audit", "--no-fund", NULL };
    driver_step(npm, NULL, 180000,
                "node-postgres and postgres.js are needed (tests/drivers/node), npm and network access");
    assert_int_equal(node_modules_missing(dir), 0);
}

static void test_node_postgres_pool(void **state)
{
    (void)state;
    char script[PATH_MAX + 32];
    node_modules_ready();
    snprintf(script, sizeof script, "%s/node/pool_test.js", g_drivers);
    const char *argv[] = { "node", script, NULL };
    run_driver(argv, "node-postgres OK", 60000);
    PGconn *s = h_pg_super(&g_pg, H_DB);
    assert_non_null(s);
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM node_rows"), 100);
    PQfinish(s);
    h_pass();
}

/* ------------------------------------------------------------------------------------- postgres.js */

/* tests/drivers/node/postgresjs_test.mjs <section>, whose last line must be "postgres.js <section> OK". */
static void postgresjs_section(const char *section)
{
    char script[PATH_MAX + 40], want[64];
    node_modules_ready();
    snprintf(script, sizeof script, "%s/node/postgresjs_test.mjs", g_drivers);
    snprintf(want, sizeof want, "postgres.js %s OK", section);
    const char *argv[] = { "node", script, section, NULL };
    run_driver(argv, want, 120000);
}

static void test_postgresjs_pool(void **state)
{
    (void)state;
    postgresjs_section("pool");
    h_pass();
}

static void test_postgresjs_pipeline(void **state)
{
    (void)state;
    postgresjs_section("pipeline");
    h_pass();
}

/* Cursors execute the unnamed portal a few rows at a time behind Flush, outside transactions too. */
static void test_postgresjs_cursor(void **state)
{
    (void)state;
    postgresjs_section("cursor");
    h_pass();
}

static void test_postgresjs_unnamed(void **state)
{
    (void)state;
    postgresjs_section("unnamed");
    h_pass();
}

static void test_postgresjs_errors(void **state)
{
    (void)state;
    postgresjs_section("errors");
    h_pass();
}

/* Cancels of queries running and of queries waiting in the lane's queue. postgres.js's first run of a
 * statement waits for its description (Parse, Describe, Flush) before it sends Bind/Execute/Sync: a
 * cancel of that group while queued was dropped before, and the sleeps ran their 30 s. */
static void test_postgresjs_cancel(void **state)
{
    (void)state;
    postgresjs_section("cancel");
    h_pass();
}

static void test_postgresjs_copy(void **state)
{
    (void)state;
    postgresjs_section("copy");
    h_pass();
}

/* postgres.js decodes later runs with the columns of the first Describe and prepares again on 0A000. */
static void test_postgresjs_schema_change(void **state)
{
    (void)state;
    postgresjs_section("schema");
    h_pass();
}

/* LISTEN on a connection of its own (pinned by pglane) receives what other connections NOTIFY. */
static void test_postgresjs_listen(void **state)
{
    (void)state;
    postgresjs_section("listen");
    h_pass();
}

/* ------------------------------------------------------------------------------------------- pgx */

static char g_pgx_bin[H_PATH];    /* tests/drivers/pgx built once (Go, Debian's pgx v4 in GOPATH mode) */

/* tests/drivers/pgx <section>, whose last line must be "pgx <section> OK". */
static void pgx_section(const char *section)
{
    char want[64];
    require_file(GOPATH_DEBIAN "/src/github.com/jackc/pgx/v4/conn.go", "golang-github-jackc-pgx-v4-dev");
    if (!g_pgx_bin[0]) {
        char src[PATH_MAX + 32], bin[H_PATH], gocache[H_PATH + 32];
        snprintf(src, sizeof src, "%s/pgx/main.go", g_drivers);
        snprintf(bin, sizeof bin, "%s/pgx_driver", h_scratch_dir());
        snprintf(gocache, sizeof gocache, "GOCACHE=%s/gocache", h_scratch_dir());
        const char *env[] = { "GO111MODULE=off", "GOPATH=" GOPATH_DEBIAN, gocache, "GOFLAGS=", NULL };
        const char *go[] = { "go", "build", "-o", bin, src, NULL };
        driver_step(go, env, 180000, "Go is needed (golang-go)");
        snprintf(g_pgx_bin, sizeof g_pgx_bin, "%s", bin);
    }
    snprintf(want, sizeof want, "pgx %s OK", section);
    const char *argv[] = { g_pgx_bin, section, NULL };
    run_driver(argv, want, 120000);
}

static void test_pgx_pool(void **state)
{
    (void)state;
    pgx_section("pool");
    h_pass();
}

/* A statement cache of 2: SQL DEALLOCATE of protocol-prepared names all the time. */
static void test_pgx_evict(void **state)
{
    (void)state;
    pgx_section("evict");
    h_pass();
}

/* A batch is one group with one Sync; an error in it rolls back the writes before it. */
static void test_pgx_batch(void **state)
{
    (void)state;
    pgx_section("batch");
    h_pass();
}

static void test_pgx_describe_mode(void **state)
{
    (void)state;
    pgx_section("describe");
    h_pass();
}

static void test_pgx_simple_protocol(void **state)
{
    (void)state;
    pgx_section("simple");
    h_pass();
}

static void test_pgx_copy(void **state)
{
    (void)state;
    pgx_section("copy");
    h_pass();
}

static void test_pgx_cancel(void **state)
{
    (void)state;
    pgx_section("cancel");
    h_pass();
}

/* pgx binds with one result format per column it was told of and describes each portal: a server
 * connection that prepared the statement after a table change answered 08P01 ("bind message has 2
 * result formats but query has 3 columns") to every later run where PostgreSQL answers 0A000 once. */
static void test_pgx_schema_change(void **state)
{
    (void)state;
    pgx_section("schema");
    h_pass();
}

/* -------------------------------------------------------------------------------- tokio-postgres */

static char g_tokio_bin[PATH_MAX + 64];  /* tests/drivers/tokio built once (cargo, offline, Debian's crates) */

/* tests/drivers/tokio <section>, whose last line must be "tokio-postgres <section> OK". The build goes
 * to tests/drivers/tokio/target, kept between runs (cargo rebuilds only what changed). */
static void tokio_section(const char *section)
{
    char want[64];
    require_file(DEBIAN_CARGO, "cargo");
    require_file(TOKIO_POSTGRES_CRATES, "librust-tokio-postgres-dev");
    if (!g_tokio_bin[0]) {
        /* Debian's cargo and rustc (a rustup install earlier on PATH would build with another
         * toolchain, and write a lock file Debian's cargo cannot read); nothing written to ~. */
        char cmd[PATH_MAX + 96], home[H_PATH + 32];
        snprintf(cmd, sizeof cmd, "cd '%s/tokio' && " DEBIAN_CARGO " build --offline --quiet", g_drivers);
        snprintf(home, sizeof home, "CARGO_HOME=%s/cargo", h_scratch_dir());
        const char *cargo[] = { "/bin/sh", "-c", cmd, NULL }, *env[] = { home, "RUSTC=" DEBIAN_RUSTC, NULL };
        driver_step(cargo, env, 600000, "Rust's cargo is needed (cargo, librust-tokio-postgres-dev)");
        snprintf(g_tokio_bin, sizeof g_tokio_bin, "%s/tokio/target/debug/pglane-tokio-postgres-test", g_drivers);
    }
    snprintf(want, sizeof want, "tokio-postgres %s OK", section);
    const char *argv[] = { g_tokio_bin, section, NULL };
    run_driver(argv, want, 120000);
}

/* Every text prepared (s<n>), run and closed again (Close and Sync) as its statement is dropped; on
 * exit every connection closes its statements and leaves without reading the answers. */
static void test_tokio_pool(void **state)
{
    (void)state;
    tokio_section("pool");
    h_pass();
}

/* Requests of one connection pipelined, each with its own Sync; an error fails only its own. */
static void test_tokio_pipeline(void **state)
{
    (void)state;
    tokio_section("pipeline");
    h_pass();
}

/* Named portals in a transaction, executed 7 rows at a time, two interleaved. */
static void test_tokio_portal(void **state)
{
    (void)state;
    tokio_section("portal");
    h_pass();
}

static void test_tokio_errors(void **state)
{
    (void)state;
    tokio_section("errors");
    h_pass();
}

static void test_tokio_cancel(void **state)
{
    (void)state;
    tokio_section("cancel");
    h_pass();
}

/* copy_in sends Bind, Execute and Sync together: PostgreSQL ignores that Sync during COPY IN. */
static void test_tokio_copy(void **state)
{
    (void)state;
    tokio_section("copy");
    h_pass();
}

static void test_tokio_schema_change(void **state)
{
    (void)state;
    tokio_section("schema");
    h_pass();
}

/* ------------------------------------------------------------------------------------------ pgJDBC */

static char g_jdbc_classes[H_PATH];    /* JdbcTest.class, compiled once */

static void jdbc_section(const char *section)
{
    char script[PATH_MAX + 32], want[64], cp[H_PATH + 64];
    require_file(JDBC_JAR, "libpostgresql-jdbc-java");
    if (!g_jdbc_classes[0]) {
        char classes[H_PATH];
        snprintf(script, sizeof script, "%s/jdbc/JdbcTest.java", g_drivers);
        snprintf(classes, sizeof classes, "%s/jdbc", h_scratch_dir());
        const char *javac[] = { "javac", "-cp", JDBC_JAR, "-d", classes, script, NULL };
        driver_step(javac, NULL, 60000, "the JDK is needed (openjdk-17-jdk-headless)");
        snprintf(g_jdbc_classes, sizeof g_jdbc_classes, "%s", classes);
    }
    snprintf(cp, sizeof cp, "%s:%s", JDBC_JAR, g_jdbc_classes);
    snprintf(want, sizeof want, "pgjdbc %s OK", section);
    const char *argv[] = { "java", "-cp", cp, "JdbcTest", section, NULL };
    run_driver(argv, want, 60000);
}

static void test_pgjdbc_prepared(void **state)
{
    (void)state;
    jdbc_section("prepared");
    h_pass();
}

static void test_pgjdbc_batch(void **state)
{
    (void)state;
    jdbc_section("batch");
    PGconn *s = h_pg_super(&g_pg, H_DB);
    assert_non_null(s);
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM jdbc_rows"), 6 * 500);
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM jdbc_rows WHERE v = 'dup'"), 0);
    PQfinish(s);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_psycopg_prepare_threshold),
        H_TEST(test_psycopg_executemany),
        H_TEST(test_psycopg_pipeline),
        H_TEST(test_psycopg_prepared_max_rotation),
        H_TEST(test_asyncpg_pool),
        H_TEST(test_asyncpg_copy),
        H_TEST(test_asyncpg_types),
        H_TEST(test_asyncpg_schema_change),
        H_TEST(test_asyncpg_cancel),
        H_TEST(test_asyncpg_reset),
        H_TEST(test_node_postgres_pool),
        H_TEST(test_postgresjs_pool),
        H_TEST(test_postgresjs_pipeline),
        H_TEST(test_postgresjs_cursor),
        H_TEST(test_postgresjs_unnamed),
        H_TEST(test_postgresjs_errors),
        H_TEST(test_postgresjs_cancel),
        H_TEST(test_postgresjs_copy),
        H_TEST(test_postgresjs_schema_change),
        H_TEST(test_postgresjs_listen),
        H_TEST(test_tokio_pool),
        H_TEST(test_tokio_pipeline),
        H_TEST(test_tokio_portal),
        H_TEST(test_tokio_errors),
        H_TEST(test_tokio_cancel),
        H_TEST(test_tokio_copy),
        H_TEST(test_tokio_schema_change),
        H_TEST(test_pgx_pool),
        H_TEST(test_pgx_evict),
        H_TEST(test_pgx_batch),
        H_TEST(test_pgx_describe_mode),
        H_TEST(test_pgx_simple_protocol),
        H_TEST(test_pgx_copy),
        H_TEST(test_pgx_cancel),
        H_TEST(test_pgx_schema_change),
        H_TEST(test_pgjdbc_prepared),
        H_TEST(test_pgjdbc_batch),
    };
    return H_RUN_GROUP("integration: prepared statements, real drivers", tests,
                       .pg = &g_pg, .setup = fixtures);
}
