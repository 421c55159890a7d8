/*
 * Named prepared statements in transaction pooling (issue 4): libpq PQprepare/PQexecPrepared and
 * PQdescribePrepared from more clients than server connections, libpq pipeline mode (errors in the
 * middle of a pipeline), pgbench -M prepared 64 clients over 8, ALTER TABLE between executions of a
 * prepared SELECT *, SQL-level PREPARE/EXECUTE, DISCARD ALL / DEALLOCATE ALL, the admin counters and
 * LRU eviction with max_prepared_statements = 3.
 *
 * Every expectation is what a direct connection to PostgreSQL gives, so PGLANE_TEST_DIRECT=1 runs
 * the same assertions against PostgreSQL itself (only the checks of pglane's own server-side names
 * and counters, and the raw-protocol tests that need a trust lane, are pglane-specific).
 *
 * Failing when written (proxy bugs, passing with PGLANE_TEST_DIRECT=1): test_failed_parse_leaves_
 * no_statement, test_duplicate_name, test_sql_deallocate_of_protocol_statement,
 * test_eviction_skipped_after_error, test_raw_close_skipped_after_error.
 */
#include "tests/integration/harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INT4OID 23
#define TEXTOID 25

static struct h_pg g_pg;
static struct h_pglane g_tx2;      /* transaction pooling, lane size 2, admin_users = app */
static struct h_pglane g_lru;      /* transaction pooling, lane size 2, max_prepared_statements = 3 */

#define N_ITEMS 1000

static int fixtures(void)
{
    if (h_pg_exec(&g_pg, H_DB,
                  "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL);"
                  "INSERT INTO items SELECT i, 'item-' || i, i * 3 FROM generate_series(1, 1000) i;"
                  "CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL);"
                  "INSERT INTO counters SELECT i, 0 FROM generate_series(1, 16) i;"
                  "CREATE TABLE ddl_t (id int PRIMARY KEY, a int NOT NULL);"
                  "INSERT INTO ddl_t SELECT i, i * 10 FROM generate_series(1, 5) i;"
                  "ALTER TABLE items OWNER TO " H_USER ";"
                  "ALTER TABLE counters OWNER TO " H_USER ";"
                  "ALTER TABLE ddl_t OWNER TO " H_USER) != 0)
        return -1;
    /* pgbench tables in benchdb, initialised directly as app (pglane is not involved). */
    if (h_pgbench_init(&g_pg, H_BENCH_DB) != 0)
        return -1;

    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256",
           "server_idle_timeout = 60s\nadmin_users = app\n");
    if (h_pglane_start(&g_tx2, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_tx2);
    h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256",
           "server_idle_timeout = 60s\nmax_prepared_statements = 3\n");
    if (h_pglane_start(&g_lru, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_lru);
    return 0;
}

/* ------------------------------------------------------------------------------------------ helpers */

/* Failures inside threads are recorded (cmocka's asserts are not thread-safe) and asserted after join. */
struct fail {
    int n;
    char msg[512];
};

#define FAIL(f, ...) do { \
        if ((f)->n++ == 0) \
            snprintf((f)->msg, sizeof (f)->msg, __VA_ARGS__); \
    } while (0)

/* A worker thread's connection, or NULL with the failure recorded in f. */
static PGconn *worker_connect(const struct h_pglane *lane, struct fail *f)
{
    PGconn *c = h_connect(lane, NULL);

    if (PQstatus(c) == CONNECTION_OK)
        return c;
    FAIL(f, "connect: %s", PQerrorMessage(c));
    PQfinish(c);
    return NULL;
}

static void assert_no_failures(const struct fail *f, int nworkers, const char *what)
{
    int total = 0;
    for (int i = 0; i < nworkers; i++) {
        if (f[i].n)
            print_error("%s worker %d: %d failures, first: %s\n", what, i, f[i].n, f[i].msg);
        total += f[i].n;
    }
    assert_int_equal(total, 0);
}

static const char *sqlstate_of(const PGresult *r)
{
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return s ? s : "";
}

/* PQexecPrepared with int parameters; 0 and the first value as a long, or -1 with the error in f. */
static int exec_long(PGconn *c, const char *stmt, int n, const long *vals, long *out, struct fail *f)
{
    char buf[8][24];
    const char *params[8];
    for (int i = 0; i < n && i < 8; i++) {
        snprintf(buf[i], sizeof buf[i], "%ld", vals[i]);
        params[i] = buf[i];
    }
    PGresult *r = PQexecPrepared(c, stmt, n, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        FAIL(f, "execute %s: %s %s", stmt, PQresStatus(PQresultStatus(r)), PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    *out = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

static int prepare(PGconn *c, const char *name, const char *sql, int n, const Oid *types, struct fail *f)
{
    PGresult *r = PQprepare(c, name, sql, n, types);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        FAIL(f, "prepare %s: %s %s", name, PQresStatus(PQresultStatus(r)), PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

static int cmd(PGconn *c, const char *sql, struct fail *f)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        FAIL(f, "%s: %s %s", sql, PQresStatus(PQresultStatus(r)), PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

/* Runs fn(arg i) in n threads and joins them. */
static void run_threads(int n, void *(*fn)(void *), void *args, size_t argsize)
{
    pthread_t t[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * argsize), 0);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

/* Count of pglane's statements (_pgl_<n>) on the server connection this transaction runs on. */
#define PGL_COUNT_SQL "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '\\_pgl\\_%'"

/* ------------------------------------------------------------------------------------------ 1. libpq */

struct libpq_worker {
    const struct h_pglane *lane;
    int k;
    int iters;
    struct fail f;
};

static void check_item_description(PGconn *c, struct fail *f)
{
    PGresult *d = PQdescribePrepared(c, "item");
    if (PQresultStatus(d) != PGRES_COMMAND_OK)
        FAIL(f, "describe item: %s", PQresultErrorMessage(d));
    else if (PQnparams(d) != 1 || PQparamtype(d, 0) != INT4OID || PQnfields(d) != 2 ||
             strcmp(PQfname(d, 0), "name") != 0 || strcmp(PQfname(d, 1), "qty") != 0 ||
             PQftype(d, 0) != TEXTOID || PQftype(d, 1) != INT4OID)
        FAIL(f, "describe item: nparams %d nfields %d", PQnparams(d), PQnfields(d));
    PQclear(d);
}

static void *libpq_worker(void *arg)
{
    struct libpq_worker *w = arg;
    struct fail *f = &w->f;
    PGconn *c = worker_connect(w->lane, f);
    if (!c)
        return NULL;
    const Oid int4[1] = { INT4OID };
    char mine[64];
    /* "mine" is the same client name in every worker, with a different text in each. */
    snprintf(mine, sizeof mine, "SELECT $1::int * %d", w->k + 2);
    if (prepare(c, "add", "SELECT $1::int + $2::int", 0, NULL, f) ||
        prepare(c, "item", "SELECT name, qty FROM items WHERE id = $1", 1, int4, f) ||
        prepare(c, "mine", mine, 0, NULL, f) ||
        prepare(c, "upd", "UPDATE counters SET n = n + 1 WHERE id = $1 RETURNING n", 1, int4, f))
        goto out;
    check_item_description(c, f);
    for (int i = 0; i < w->iters && f->n == 0; i++) {
        long v, args[2] = { i, w->k };
        if (exec_long(c, "add", 2, args, &v, f) == 0 && v != i + w->k)
            FAIL(f, "add(%d, %d) = %ld", i, w->k, v);
        if (exec_long(c, "mine", 1, args, &v, f) == 0 && v != (long)i * (w->k + 2))
            FAIL(f, "mine(%d) = %ld in worker %d", i, v, w->k);
        int tx = i % 5 == 0;
        if (tx && cmd(c, "BEGIN", f))
            break;
        long id = (i * 7 + w->k) % N_ITEMS + 1;
        char idbuf[16];
        snprintf(idbuf, sizeof idbuf, "%ld", id);
        const char *p[1] = { idbuf };
        PGresult *r = PQexecPrepared(c, "item", 1, p, NULL, NULL, 0);
        char want[32];
        snprintf(want, sizeof want, "item-%ld", id);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 2)
            FAIL(f, "item(%ld): %s %s", id, PQresStatus(PQresultStatus(r)), PQresultErrorMessage(r));
        else if (strcmp(PQgetvalue(r, 0, 0), want) != 0 || atol(PQgetvalue(r, 0, 1)) != id * 3)
            FAIL(f, "item(%ld) = %s, %s", id, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
        PQclear(r);
        long cid = w->k + 1;
        if (exec_long(c, "upd", 1, &cid, &v, f) == 0 && v != i + 1)
            FAIL(f, "counter %ld = %ld after %d increments", cid, v, i + 1);
        if (tx && cmd(c, "COMMIT", f))
            break;
        if (i % 40 == 39)
            check_item_description(c, f);
    }
out:
    PQfinish(c);
    return NULL;
}

static void test_libpq_prepared_8_over_2(void **state)
{
    (void)state;
    enum { N = 8, ITERS = 150 };
    struct libpq_worker w[N];
    assert_int_equal(h_pg_exec(&g_pg, H_DB, "UPDATE counters SET n = 0"), 0);
    /* A client holding the workers' text all along (pglane shares a statement while someone has it). */
    PGconn *c = h_connect(&g_tx2, NULL);
    H_ASSERT_CONNECTED(c);
    struct fail f1 = { 0 };
    long v, args[2] = { 20, 22 };
    assert_int_equal(prepare(c, "x", "SELECT $1::int + $2::int", 0, NULL, &f1), 0);
    assert_int_equal(exec_long(c, "x", 2, args, &v, &f1), 0);
    for (int i = 0; i < N; i++)
        w[i] = (struct libpq_worker){ .lane = &g_tx2, .k = i, .iters = ITERS };
    run_threads(N, libpq_worker, w, sizeof w[0]);
    struct fail f[N];
    for (int i = 0; i < N; i++)
        f[i] = w[i].f;
    assert_no_failures(f, N, "libpq");

    /* Every UPDATE committed exactly once. */
    PGconn *s = h_pg_super(&g_pg, H_DB);
    assert_non_null(s);
    assert_int_equal(h_pg_long(s, "SELECT sum(n) FROM counters"), N * ITERS);
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM counters WHERE n = 150"), N);
    PQfinish(s);

    /* The same text from 9 clients is one statement on a server connection (pglane shares it). */
    assert_int_equal(h_exec(c, "BEGIN"), 0);
    assert_int_equal(exec_long(c, "x", 2, args, &v, &f1), 0);
    assert_int_equal(v, 42);
    assert_int_equal(h_pg_long(c, "SELECT count(*) FROM pg_prepared_statements "
                                  "WHERE statement = 'SELECT $1::int + $2::int'"), 1);
    if (!h_direct())
        assert_true(h_pg_long(c, PGL_COUNT_SQL) >= 1);
    assert_int_equal(h_exec(c, "COMMIT"), 0);

    /* Executing a name the client never prepared: 26000, as on a direct connection. */
    const char *p[1] = { "1" };
    PGresult *r = PQexecPrepared(c, "never_prepared", 1, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(sqlstate_of(r), "26000");
    PQclear(r);
    r = PQdescribePrepared(c, "never_prepared");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(sqlstate_of(r), "26000");
    PQclear(r);

    assert_int_equal(f1.n, 0);
    PQfinish(c);
    h_pass();
}

/*
 * libpq 15 has no PQclosePrepared: SQL DEALLOCATE of a statement prepared through the protocol is how
 * a libpq client drops one. On a direct connection both share one namespace.
 */
static void test_sql_deallocate_of_protocol_statement(void **state)
{
    (void)state;
    PGconn *c = h_connect(&g_tx2, NULL);
    H_ASSERT_CONNECTED(c);
    struct fail f = { 0 };
    long v, a = 20;
    assert_int_equal(prepare(c, "x2", "SELECT $1::int * 2", 0, NULL, &f), 0);
    assert_int_equal(exec_long(c, "x2", 1, &a, &v, &f), 0);
    assert_int_equal(v, 40);
    PGresult *r = PQexec(c, "DEALLOCATE x2");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        print_error("DEALLOCATE x2 (prepared with PQprepare): %s %s\n", PQresStatus(PQresultStatus(r)),
                    PQresultErrorMessage(r));
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    /* Gone, and the name is free again. */
    r = PQexecPrepared(c, "x2", 1, (const char *const[]){ "1" }, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(sqlstate_of(r), "26000");
    PQclear(r);
    assert_int_equal(prepare(c, "x2", "SELECT $1::int * 3", 0, NULL, &f), 0);
    assert_int_equal(exec_long(c, "x2", 1, &a, &v, &f), 0);
    assert_int_equal(v, 60);
    PQfinish(c);
    h_pass();
}

/*
 * A client that deallocates one of pglane's own statements by its server-side name (read from
 * pg_prepared_statements) breaks that statement for every client on that server connection until
 * pglane notices: the first Bind that gets 26000 tells pglane the statement is gone there, and the
 * next use prepares it again. Without that, every later execution on that server connection failed.
 */
static void test_client_deallocates_pglane_statement(void **state)
{
    (void)state;
    PGconn *a = h_connect(&g_tx2, NULL);
    H_ASSERT_CONNECTED(a);
    struct fail f = { 0 };
    long v, x = 5;
    int failed = 0;
    char sql[128];

    assert_int_equal(prepare(a, "x9", "SELECT $1::int * 9", 0, NULL, &f), 0);
    assert_int_equal(exec_long(a, "x9", 1, &x, &v, &f), 0);
    /* All on one server connection (a transaction): the client deallocates pglane's copy of the text
     * there by the name it reads, then executes its statement ten times, rolling back to a savepoint
     * after a failure. */
    assert_int_equal(cmd(a, "BEGIN", &f), 0);
    assert_int_equal(exec_long(a, "x9", 1, &x, &v, &f), 0);
    PGresult *r = PQexec(a, "SELECT name FROM pg_prepared_statements WHERE statement = 'SELECT $1::int * 9'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    snprintf(sql, sizeof sql, "DEALLOCATE %s", PQgetvalue(r, 0, 0));
    PQclear(r);
    assert_int_equal(cmd(a, sql, &f), 0);
    assert_int_equal(cmd(a, "SAVEPOINT s", &f), 0);
    for (int i = 0; i < 10; i++) {
        r = PQexecPrepared(a, "x9", 1, (const char *const[]){ "3" }, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "execution %d: %s", i + 1, PQresultErrorMessage(r));
            assert_string_equal(sqlstate_of(r), "26000");
            failed++;
            assert_int_equal(cmd(a, "ROLLBACK TO SAVEPOINT s", &f), 0);
        } else {
            assert_string_equal(PQgetvalue(r, 0, 0), "27");
        }
        PQclear(r);
    }
    assert_int_equal(cmd(a, "COMMIT", &f), 0);
    fprintf(stderr, "executions after the DEALLOCATE of pglane's statement: %d of 10 failed\n", failed);
    assert_int_equal(failed, 1);
    PQfinish(a);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ pipelines */

/* Next pipeline result: checks its status (and consumes the NULL that ends it, except for a sync). */
static PGresult *pl_next(PGconn *c, ExecStatusType want, struct fail *f, const char *what)
{
    if (h_wait_result(c, 20000) != 0) {
        FAIL(f, "%s: no result within 20 s", what);
        return NULL;
    }
    PGresult *r = PQgetResult(c);
    if (!r) {
        FAIL(f, "%s: no result (NULL)", what);
        return NULL;
    }
    if (PQresultStatus(r) != want) {
        FAIL(f, "%s: %s (want %s) %s", what, PQresStatus(PQresultStatus(r)), PQresStatus(want),
             PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    if (want != PGRES_PIPELINE_SYNC) {
        PGresult *end = PQgetResult(c);
        if (end) {
            FAIL(f, "%s: extra result %s", what, PQresStatus(PQresultStatus(end)));
            PQclear(end);
        }
    }
    return r;
}

static void pl_expect_value(PGconn *c, const char *want, struct fail *f, const char *what)
{
    PGresult *r = pl_next(c, PGRES_TUPLES_OK, f, what);
    if (r && (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), want) != 0))
        FAIL(f, "%s: got %s, want %s", what, PQntuples(r) ? PQgetvalue(r, 0, 0) : "(no row)", want);
    PQclear(r);
}

static void pl_expect(PGconn *c, ExecStatusType want, const char *sqlstate, struct fail *f, const char *what)
{
    PGresult *r = pl_next(c, want, f, what);
    if (r && sqlstate && strcmp(sqlstate_of(r), sqlstate) != 0)
        FAIL(f, "%s: SQLSTATE %s, want %s (%s)", what, sqlstate_of(r), sqlstate, PQresultErrorMessage(r));
    PQclear(r);
}

static void send_exec(PGconn *c, const char *stmt, const char *val, struct fail *f)
{
    const char *p[1] = { val };
    if (!PQsendQueryPrepared(c, stmt, 1, p, NULL, NULL, 0))
        FAIL(f, "PQsendQueryPrepared %s: %s", stmt, PQerrorMessage(c));
}

struct pipe_worker {
    const struct h_pglane *lane;
    int k;
    int iters;
    struct fail f;
};

static void *pipe_worker(void *arg)
{
    struct pipe_worker *w = arg;
    struct fail *f = &w->f;
    PGconn *c = worker_connect(w->lane, f);
    if (!c)
        return NULL;
    if (prepare(c, "mul", "SELECT $1::int * 10", 0, NULL, f) ||
        prepare(c, "div", "SELECT 100 / $1::int", 0, NULL, f))
        goto out;
    for (int i = 0; i < w->iters && f->n == 0; i++) {
        char name[32], buf[32], want[32];
        snprintf(name, sizeof name, "add_%d", i);
        if (!PQenterPipelineMode(c)) {
            FAIL(f, "enter pipeline: %s", PQerrorMessage(c));
            break;
        }
        /* A Parse inside the pipeline (shared text: the server may already have it). */
        if (!PQsendPrepare(c, name, "SELECT $1::int + 1000", 0, NULL))
            FAIL(f, "sendPrepare: %s", PQerrorMessage(c));
        snprintf(buf, sizeof buf, "%d", i);
        send_exec(c, "mul", buf, f);
        send_exec(c, name, buf, f);
        send_exec(c, "div", "0", f);          /* division by zero: the pipeline aborts here */
        send_exec(c, "mul", "3", f);
        send_exec(c, name, "4", f);
        if (!PQpipelineSync(c))
            FAIL(f, "sync: %s", PQerrorMessage(c));
        send_exec(c, "div", "4", f);
        send_exec(c, name, buf, f);
        if (!PQsendDescribePrepared(c, "mul"))
            FAIL(f, "sendDescribePrepared: %s", PQerrorMessage(c));
        send_exec(c, "mul", buf, f);
        if (!PQpipelineSync(c))
            FAIL(f, "sync: %s", PQerrorMessage(c));
        if (f->n)
            break;

        pl_expect(c, PGRES_COMMAND_OK, NULL, f, "prepare in pipeline");
        snprintf(want, sizeof want, "%d", i * 10);
        pl_expect_value(c, want, f, "mul(i)");
        snprintf(want, sizeof want, "%d", i + 1000);
        pl_expect_value(c, want, f, "add(i)");
        pl_expect(c, PGRES_FATAL_ERROR, "22012", f, "div(0)");
        pl_expect(c, PGRES_PIPELINE_ABORTED, NULL, f, "mul(3) after the error");
        pl_expect(c, PGRES_PIPELINE_ABORTED, NULL, f, "add(4) after the error");
        pl_expect(c, PGRES_PIPELINE_SYNC, NULL, f, "first sync");
        pl_expect_value(c, "25", f, "div(4)");
        snprintf(want, sizeof want, "%d", i + 1000);
        pl_expect_value(c, want, f, "add(i) after sync");
        PGresult *d = pl_next(c, PGRES_COMMAND_OK, f, "describe mul");
        if (d && (PQnparams(d) != 1 || PQparamtype(d, 0) != INT4OID || PQnfields(d) != 1 ||
                  PQftype(d, 0) != INT4OID))
            FAIL(f, "describe mul: %d params, %d fields", PQnparams(d), PQnfields(d));
        PQclear(d);
        snprintf(want, sizeof want, "%d", i * 10);
        pl_expect_value(c, want, f, "mul(i) after describe");
        pl_expect(c, PGRES_PIPELINE_SYNC, NULL, f, "second sync");
        if (f->n)
            break;
        if (!PQexitPipelineMode(c)) {
            FAIL(f, "exit pipeline: %s", PQerrorMessage(c));
            break;
        }
        if (PQtransactionStatus(c) != PQTRANS_IDLE)
            FAIL(f, "transaction status %d after the pipeline", PQtransactionStatus(c));
        /* Outside the pipeline the statement prepared inside it works too. */
        long v, a = 5;
        if (exec_long(c, name, 1, &a, &v, f) == 0 && v != 1005)
            FAIL(f, "%s(5) = %ld", name, v);
    }
out:
    PQfinish(c);
    return NULL;
}

static void test_libpq_pipeline(void **state)
{
    (void)state;
    enum { N = 8, ITERS = 25 };
    struct pipe_worker w[N];
    for (int i = 0; i < N; i++)
        w[i] = (struct pipe_worker){ .lane = &g_tx2, .k = i, .iters = ITERS };
    run_threads(N, pipe_worker, w, sizeof w[0]);
    struct fail f[N];
    for (int i = 0; i < N; i++)
        f[i] = w[i].f;
    assert_no_failures(f, N, "pipeline");
    h_pass();
}

/*
 * A Parse that fails, or that PostgreSQL skips because an earlier message of the pipeline failed,
 * creates no statement: executing its name afterwards is 26000 on a direct connection.
 */
static void test_failed_parse_leaves_no_statement(void **state)
{
    (void)state;
    PGconn *c = h_connect(&g_tx2, NULL);
    H_ASSERT_CONNECTED(c);
    struct fail f = { 0 };

    /* A syntax error at Parse (PQprepare): 42601, and no statement "bad". */
    PGresult *r = PQprepare(c, "bad", "SELEC 1", 0, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(sqlstate_of(r), "42601");
    PQclear(r);
    r = PQexecPrepared(c, "bad", 0, NULL, NULL, NULL, 0);
    char bad_state[6];
    snprintf(bad_state, sizeof bad_state, "%s", sqlstate_of(r));
    if (strcmp(bad_state, "26000") != 0)
        print_error("execute of a statement whose Parse failed: %s %s %s(direct: 26000)\n",
                    PQresStatus(PQresultStatus(r)), bad_state, PQresultErrorMessage(r));
    PQclear(r);

    /* A Parse skipped after an error earlier in the pipeline: no statement "skipped". */
    assert_int_equal(prepare(c, "div", "SELECT 100 / $1::int", 0, NULL, &f), 0);
    assert_int_equal(PQenterPipelineMode(c), 1);
    send_exec(c, "div", "0", &f);
    assert_int_equal(PQsendPrepare(c, "skipped", "SELECT 42", 0, NULL), 1);
    assert_int_equal(PQpipelineSync(c), 1);
    pl_expect(c, PGRES_FATAL_ERROR, "22012", &f, "div(0)");
    pl_expect(c, PGRES_PIPELINE_ABORTED, NULL, &f, "skipped prepare");
    pl_expect(c, PGRES_PIPELINE_SYNC, NULL, &f, "sync");
    assert_int_equal(PQexitPipelineMode(c), 1);
    if (f.n)
        print_error("%s\n", f.msg);
    assert_int_equal(f.n, 0);
    r = PQexecPrepared(c, "skipped", 0, NULL, NULL, NULL, 0);
    char skipped_state[6];
    snprintf(skipped_state, sizeof skipped_state, "%s", sqlstate_of(r));
    if (strcmp(skipped_state, "26000") != 0)
        print_error("execute of a statement whose Parse was skipped: %s %s %s(direct: 26000)\n",
                    PQresStatus(PQresultStatus(r)), skipped_state,
                    PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : PQresultErrorMessage(r));
    PQclear(r);
    assert_string_equal(bad_state, "26000");
    assert_string_equal(skipped_state, "26000");

    /* The names are still free: preparing them now works. */
    assert_int_equal(prepare(c, "bad", "SELECT 7", 0, NULL, &f), 0);
    assert_int_equal(prepare(c, "skipped", "SELECT 8", 0, NULL, &f), 0);
    long v;
    assert_int_equal(exec_long(c, "bad", 0, NULL, &v, &f), 0);
    assert_int_equal(v, 7);
    assert_int_equal(exec_long(c, "skipped", 0, NULL, &v, &f), 0);
    assert_int_equal(v, 8);
    PQfinish(c);
    h_pass();
}

/* Preparing a name the client already has is 42P05 on a direct connection; the old one stays. */
static void test_duplicate_name(void **state)
{
    (void)state;
    PGconn *c = h_connect(&g_tx2, NULL);
    H_ASSERT_CONNECTED(c);
    struct fail f = { 0 };
    long v;
    assert_int_equal(prepare(c, "dup", "SELECT 1", 0, NULL, &f), 0);
    assert_int_equal(exec_long(c, "dup", 0, NULL, &v, &f), 0);
    assert_int_equal(v, 1);
    PGresult *r = PQprepare(c, "dup", "SELECT 2", 0, NULL);
    if (PQresultStatus(r) != PGRES_FATAL_ERROR)
        print_error("second Parse of \"dup\": %s (direct: 42P05 prepared statement already exists)\n",
                    PQresStatus(PQresultStatus(r)));
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(sqlstate_of(r), "42P05");
    PQclear(r);
    assert_int_equal(exec_long(c, "dup", 0, NULL, &v, &f), 0);
    assert_int_equal(v, 1);
    PQfinish(c);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ 2. pgbench */

static void run_pgbench_prepared(const struct h_pglane *l, const char *builtin)
{
    /* Direct mode: 64 SCRAM logins to PostgreSQL itself can take most of 5 s on a loaded machine. */
    const char *args[] = { "-n", "-b", builtin, "-M", "prepared", "-c", "64", "-j", "2", "-T",
                           l->direct ? "15" : "5", NULL };
    struct h_proc p;
    char *out = NULL;
    assert_int_equal(h_pgbench_start(&p, l, H_BENCH_DB, args), 0);
    int rc = h_proc_wait(&p, 60000, &out);
    long failed = h_parse_after(out, "number of failed transactions:");
    long done = h_parse_after(out, "number of transactions actually processed:");
    if (rc != 0 || failed != 0 || done <= 0)
        print_error("pgbench -M prepared -b %s: exit %d\n%s\n", builtin, rc, out);
    const char *tps = out ? strstr(out, "tps = ") : NULL;
    fprintf(stderr, "pgbench -M prepared -b %s, 64 clients over 8: %ld transactions, %.40s\n", builtin,
            done, tps ? tps : "(no tps)");
    assert_int_equal(rc, 0);
    assert_int_equal(failed, 0);
    assert_true(done > 64);
    free(out);
}

static void test_pgbench_prepared_64_over_8(void **state)
{
    (void)state;
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 8, "md5", NULL);   /* md5: cheaper logins for 64 clients */
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *s = h_pg_super(&g_pg, H_BENCH_DB);
    assert_non_null(s);
    long hist0 = h_pg_long(s, "SELECT count(*) FROM pgbench_history");
    run_pgbench_prepared(&l, "select-only");
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM pgbench_history"), hist0);
    run_pgbench_prepared(&l, "tpcb-like");
    /* TPC-B-like transactions committed: each adds a history row, and the balances agree. */
    assert_true(h_pg_long(s, "SELECT count(*) FROM pgbench_history") > hist0 + 64);
    assert_int_equal(h_pg_long(s, "SELECT (SELECT sum(abalance) FROM pgbench_accounts) - "
                                  "(SELECT sum(bbalance) FROM pgbench_branches)"), 0);
    assert_int_equal(h_pg_long(s, "SELECT (SELECT sum(delta) FROM pgbench_history) - "
                                  "(SELECT sum(tbalance) FROM pgbench_tellers)"), 0);
    if (!l.direct)
        assert_true(h_pg_long(s, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' "
                                 "AND datname = 'benchdb'") <= 8);
    PQfinish(s);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ 3. DDL */

struct ddl_worker {
    const struct h_pglane *lane;
    PGconn *c;
    int want_cols;
    int errors_0a000;       /* this round */
    int attempts;
    struct fail f;
};

/* Executes "star" until it returns want_cols columns (at most 5 attempts, only 0A000 errors allowed). */
static void *ddl_round(void *arg)
{
    struct ddl_worker *w = arg;
    struct fail *f = &w->f;
    w->errors_0a000 = 0;
    for (w->attempts = 1; w->attempts <= 5; w->attempts++) {
        const char *p[1] = { "3" };
        PGresult *r = PQexecPrepared(w->c, "star", 1, p, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_FATAL_ERROR && strcmp(sqlstate_of(r), "0A000") == 0) {
            w->errors_0a000++;
            PQclear(r);
            if (h_direct()) {
                /* PostgreSQL keeps failing this statement: a driver re-prepares it. */
                const Oid int4[1] = { INT4OID };
                cmd(w->c, "DEALLOCATE star", f);
                prepare(w->c, "star", "SELECT * FROM ddl_t WHERE id = $1", 1, int4, f);
            }
            continue;
        }
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            FAIL(f, "star: %s %s %s", PQresStatus(PQresultStatus(r)), sqlstate_of(r),
                 PQresultErrorMessage(r));
            PQclear(r);
            return NULL;
        }
        int nf = PQnfields(r);
        if (nf != w->want_cols)
            FAIL(f, "star returned %d columns, want %d", nf, w->want_cols);
        else if (atol(PQgetvalue(r, 0, 0)) != 3 || atol(PQgetvalue(r, 0, 1)) != 30 ||
                 (nf >= 3 && strcmp(PQgetvalue(r, 0, 2), "7") != 0) ||
                 (nf >= 4 && strcmp(PQgetvalue(r, 0, 3), "x") != 0))
            FAIL(f, "star row: %s %s ...", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
        /* The same client again: no further error. */
        PQclear(r);
        r = PQexecPrepared(w->c, "star", 1, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != w->want_cols)
            FAIL(f, "star again: %s %s", PQresStatus(PQresultStatus(r)), PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    FAIL(f, "no result with %d columns after 5 attempts", w->want_cols);
    return NULL;
}

static void test_alter_table_between_executions(void **state)
{
    (void)state;
    enum { N = 6 };
    struct ddl_worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct ddl_worker){ .lane = &g_tx2, .want_cols = 2 };
        w[i].c = h_connect(&g_tx2, NULL);
        H_ASSERT_CONNECTED(w[i].c);
        struct fail f = { 0 };
        const Oid int4[1] = { INT4OID };
        if (prepare(w[i].c, "star", "SELECT * FROM ddl_t WHERE id = $1", 1, int4, &f))
            print_error("%s\n", f.msg);
        assert_int_equal(f.n, 0);
    }
    /* Round 0 warms the statement on both server connections; then two schema changes. */
    static const char *const ddl[] = {
        NULL,
        "ALTER TABLE ddl_t ADD COLUMN b int NOT NULL DEFAULT 7",
        "ALTER TABLE ddl_t ADD COLUMN c text NOT NULL DEFAULT 'x'",
    };
    for (int round = 0; round < 3; round++) {
        if (ddl[round])
            assert_int_equal(h_pg_exec(&g_pg, H_DB, ddl[round]), 0);
        for (int i = 0; i < N; i++)
            w[i].want_cols = 2 + round;
        run_threads(N, ddl_round, w, sizeof w[0]);
        int errors = 0;
        struct fail f[N];
        for (int i = 0; i < N; i++) {
            f[i] = w[i].f;
            errors += w[i].errors_0a000;
            if (w[i].errors_0a000 > 1)
                print_error("round %d: client %d got %d 0A000 errors\n", round, i, w[i].errors_0a000);
        }
        assert_no_failures(f, N, "ddl");
        fprintf(stderr, "ALTER round %d: %d 0A000 errors over %d clients\n", round, errors, N);
        if (round == 0)
            assert_int_equal(errors, 0);
        /* Each client sees at most one 0A000 per change (a direct connection keeps failing). */
        for (int i = 0; i < N; i++)
            assert_true(w[i].errors_0a000 <= 1);
    }
    /* A client that prepares the text after the change gets the new columns at once. */
    PGconn *c = h_connect(&g_tx2, NULL);
    H_ASSERT_CONNECTED(c);
    PGresult *r = PQprepare(c, "star", "SELECT * FROM ddl_t WHERE id = $1", 1, (const Oid[]){ INT4OID });
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQexecPrepared(c, "star", 1, (const char *const[]){ "2" }, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQnfields(r), 4);
    assert_string_equal(PQgetvalue(r, 0, 1), "20");
    PQclear(r);
    PQfinish(c);
    for (int i = 0; i < N; i++)
        PQfinish(w[i].c);
    h_pass();
}

/*
 * A table change made on a direct connection (a migration that bypasses pglane), which pglane cannot
 * see: both server connections hold the text prepared before it. After SCHEMA CHANGED on the console
 * a client that prepares the text gets PostgreSQL's answer, the new columns; without it, the server
 * connection's copy from before would answer 0A000 (README "Result columns after a table change").
 */
static void test_schema_changed_after_direct_ddl(void **state)
{
    (void)state;
    static const char *const q = "SELECT * FROM sch_t WHERE id = $1";
    const Oid int4[1] = { INT4OID };
    PGconn *c[2];
    PGresult *r;

    assert_int_equal(h_pg_exec(&g_pg, H_DB,
                               "DROP TABLE IF EXISTS sch_t; CREATE TABLE sch_t (id int PRIMARY KEY);"
                               "INSERT INTO sch_t VALUES (1); ALTER TABLE sch_t OWNER TO " H_USER),
                     0);
    /* Two transactions open at once: the statement goes to both server connections of the lane. */
    for (int i = 0; i < 2; i++) {
        c[i] = h_connect(&g_tx2, NULL);
        H_ASSERT_CONNECTED(c[i]);
        assert_int_equal(h_exec(c[i], "BEGIN"), 0);
        r = PQprepare(c[i], "sch", q, 1, int4);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        r = PQexecPrepared(c[i], "sch", 1, (const char *const[]){ "1" }, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(PQnfields(r), 1);
        PQclear(r);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(h_exec(c[i], "COMMIT"), 0);
        PQfinish(c[i]);
    }
    assert_int_equal(h_pg_exec(&g_pg, H_DB, "ALTER TABLE sch_t ADD COLUMN c int NOT NULL DEFAULT 5"), 0);
    if (!h_direct()) {
        PGconn *adm = h_connect(&g_tx2, "dbname=pglane");

        H_ASSERT_CONNECTED(adm);
        assert_string_equal(h_exec_sqlstate(adm, "SCHEMA CHANGED extra"), "42601");
        assert_int_equal(h_exec(adm, "SCHEMA CHANGED"), 0);
        PQfinish(adm);
    }
    for (int i = 0; i < 2; i++) {
        c[i] = h_connect(&g_tx2, NULL);
        H_ASSERT_CONNECTED(c[i]);
        assert_int_equal(h_exec(c[i], "BEGIN"), 0);
    }
    for (int i = 0; i < 2; i++) {      /* each on its own server connection */
        r = PQprepare(c[i], "sch", q, 1, int4);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        r = PQexecPrepared(c[i], "sch", 1, (const char *const[]){ "1" }, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            fail_msg("client %d: %s", i, PQresultErrorMessage(r));
        assert_int_equal(PQnfields(r), 2);
        assert_string_equal(PQgetvalue(r, 0, 1), "5");
        PQclear(r);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(h_exec(c[i], "COMMIT"), 0);
        PQfinish(c[i]);
    }
    h_pass();
}

/* ------------------------------------------------------------------------------------------ 4. SQL level */

static void test_sql_prepare_in_transaction(void **state)
{
    (void)state;
    PGconn *c = h_connect(&g_tx2, NULL);
    H_ASSERT_CONNECTED(c);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(h_exec(c, "BEGIN"), 0);
        assert_int_equal(h_exec(c, "PREPARE sqlp(int) AS SELECT qty FROM items WHERE id = $1"), 0);
        char *v = h_query1(c, "EXECUTE sqlp(41)");
        assert_non_null(v);
        assert_string_equal(v, "123");
        free(v);
        v = h_query1(c, "EXECUTE sqlp(1)");
        assert_non_null(v);
        assert_string_equal(v, "3");
        free(v);
        /* The SQL-level statement is visible to the server connection of this transaction. */
        assert_int_equal(h_pg_long(c, "SELECT count(*) FROM pg_prepared_statements WHERE name = 'sqlp'"), 1);
        assert_int_equal(h_exec(c, "DEALLOCATE sqlp"), 0);
        assert_int_equal(h_exec(c, "COMMIT"), 0);
    }
    /* A protocol-level statement of the client and EXECUTE/PREPARE mixed in one transaction. */
    struct fail f = { 0 };
    long v;
    assert_int_equal(prepare(c, "proto", "SELECT $1::int - 1", 0, NULL, &f), 0);
    assert_int_equal(h_exec(c, "BEGIN"), 0);
    assert_int_equal(h_exec(c, "PREPARE sqlq AS SELECT 99"), 0);
    long a = 10;
    assert_int_equal(exec_long(c, "proto", 1, &a, &v, &f), 0);
    assert_int_equal(v, 9);
    char *s = h_query1(c, "EXECUTE sqlq");
    assert_non_null(s);
    assert_string_equal(s, "99");
    free(s);
    assert_int_equal(h_exec(c, "DEALLOCATE sqlq"), 0);
    assert_int_equal(h_exec(c, "COMMIT"), 0);
    assert_int_equal(f.n, 0);
    PQfinish(c);
    h_pass();
}

static void expect_gone(PGconn *c, const char *name)
{
    PGresult *r = PQexecPrepared(c, name, 0, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_FATAL_ERROR || !strstr(PQresultErrorMessage(r), "does not exist"))
        print_error("execute %s after DISCARD/DEALLOCATE ALL: %s %s\n", name,
                    PQresStatus(PQresultStatus(r)), PQresultErrorMessage(r));
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(sqlstate_of(r), "26000");
    assert_non_null(strstr(PQresultErrorMessage(r), "does not exist"));
    PQclear(r);
}

struct bystander {
    const struct h_pglane *lane;
    atomic_int *stop;
    int execs;
    struct fail f;
};

/* Another client executing its statements all along: unaffected by someone else's DISCARD ALL. */
static void *bystander(void *arg)
{
    struct bystander *b = arg;
    PGconn *c = h_connect(b->lane, NULL);
    if (PQstatus(c) != CONNECTION_OK) {
        FAIL(&b->f, "connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    if (prepare(c, "d1", "SELECT 'd1'::text || $1::int", 0, NULL, &b->f) == 0)
        while (!*b->stop && b->f.n == 0) {
            char want[32], buf[16];
            snprintf(buf, sizeof buf, "%d", b->execs);
            snprintf(want, sizeof want, "d1%d", b->execs);
            const char *p[1] = { buf };
            PGresult *r = PQexecPrepared(c, "d1", 1, p, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK || strcmp(PQgetvalue(r, 0, 0), want) != 0)
                FAIL(&b->f, "bystander d1: %s %s", PQresStatus(PQresultStatus(r)), PQresultErrorMessage(r));
            PQclear(r);
            b->execs++;
        }
    PQfinish(c);
    return NULL;
}

static void test_discard_all(void **state)
{
    (void)state;
    enum { NB = 3 };
    atomic_int stop = 0;
    struct bystander b[NB];
    pthread_t t[NB];
    for (int i = 0; i < NB; i++) {
        b[i] = (struct bystander){ .lane = &g_tx2, .stop = &stop };
        assert_int_equal(pthread_create(&t[i], NULL, bystander, &b[i]), 0);
    }
    PGconn *c = h_connect(&g_tx2, NULL);
    H_ASSERT_CONNECTED(c);
    struct fail f = { 0 };
    long v, a = 5;
    for (int round = 0; round < 10; round++) {
        const char *reset = round % 2 ? "DEALLOCATE ALL" : "DISCARD ALL";
        /* d1 is the bystanders' text too: the shared statement is on the servers. */
        assert_int_equal(prepare(c, "d1", "SELECT 'd1'::text || $1::int", 0, NULL, &f), 0);
        assert_int_equal(prepare(c, "mine", "SELECT $1::int * 100", 0, NULL, &f), 0);
        assert_int_equal(exec_long(c, "mine", 1, &a, &v, &f), 0);
        assert_int_equal(v, 500);
        assert_int_equal(h_exec(c, reset), 0);
        expect_gone(c, "mine");
        expect_gone(c, "d1");
        /* Re-preparing works (same names, as on a direct connection). */
        assert_int_equal(prepare(c, "mine", "SELECT $1::int * 100", 0, NULL, &f), 0);
        assert_int_equal(exec_long(c, "mine", 1, &a, &v, &f), 0);
        assert_int_equal(v, 500);
        assert_int_equal(h_exec(c, reset), 0);
        usleep(20000);   /* let the bystanders run on the server the reset ran on */
    }
    if (f.n)
        print_error("%s\n", f.msg);
    assert_int_equal(f.n, 0);
    stop = 1;
    struct fail bf[NB];
    for (int i = 0; i < NB; i++) {
        pthread_join(t[i], NULL);
        bf[i] = b[i].f;
        assert_true(b[i].execs > 10);
    }
    assert_no_failures(bf, NB, "bystander");
    PQfinish(c);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ 5. counters */

/* Index of the first column whose name contains one of the words, or -1. */
static int find_col(const PGresult *r, const char *const *words)
{
    for (int i = 0; i < PQnfields(r); i++)
        for (int w = 0; words[w]; w++)
            if (strstr(PQfname(r, i), words[w]))
                return i;
    return -1;
}

static long col_sum(const PGresult *r, int col)
{
    long s = 0;
    for (int i = 0; i < PQntuples(r); i++)
        s += atol(PQgetvalue(r, i, col));
    return s;
}

static void test_admin_counters(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    /* Some prepared-statement traffic: 4 clients, shared text, 2 server connections. */
    for (int k = 0; k < 4; k++) {
        PGconn *c = h_connect(&g_tx2, NULL);
        H_ASSERT_CONNECTED(c);
        struct fail f = { 0 };
        long v, a = k;
        assert_int_equal(prepare(c, "cnt", "SELECT $1::int + 7777", 0, NULL, &f), 0);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(exec_long(c, "cnt", 1, &a, &v, &f), 0);
            assert_int_equal(v, k + 7777);
        }
        PQfinish(c);
    }
    PGconn *adm = h_connect(&g_tx2, "dbname=pglane");
    H_ASSERT_CONNECTED(adm);
    static const char *const shows[] = { "SHOW STATS", "SHOW LANES", "SHOW SERVERS", NULL };
    static const char *const prep_words[] = { "prepare", "prep_", "parses", NULL };
    static const char *const hit_words[] = { "hit", NULL };
    static const char *const evict_words[] = { "evict", NULL };
    int found = 0;
    for (int s = 0; shows[s]; s++) {
        PGresult *r = PQexec(adm, shows[s]);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        int cp = find_col(r, prep_words), ch = find_col(r, hit_words), ce = find_col(r, evict_words);
        if (strcmp(shows[s], "SHOW STATS") != 0 && cp < 0) {
            PQclear(r);
            continue;     /* SHOW LANES/SERVERS: only if they name prepares (hits exist for routes) */
        }
        if (cp >= 0) {
            found = 1;
            fprintf(stderr, "%s: %s = %ld\n", shows[s], PQfname(r, cp), col_sum(r, cp));
            assert_true(col_sum(r, cp) >= 1);
            if (ch >= 0) {
                fprintf(stderr, "%s: %s = %ld\n", shows[s], PQfname(r, ch), col_sum(r, ch));
                assert_true(col_sum(r, ch) >= 1);
            }
            if (ce >= 0)
                assert_true(col_sum(r, ce) >= 0);
        }
        PQclear(r);
    }
    if (!found)
        fprintf(stderr, "NOTE: the admin console shows no prepared-statement counters (SHOW STATS, "
                        "SHOW LANES, SHOW SERVERS); pglane counts them internally (prep_parses, "
                        "prep_hits, prep_evictions) but does not expose them: not checked\n");
    PQfinish(adm);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ 6. LRU */

struct lru_worker {
    const struct h_pglane *lane;
    int k;
    long max_pgl;
    struct fail f;
};

static void *lru_worker(void *arg)
{
    struct lru_worker *w = arg;
    struct fail *f = &w->f;
    PGconn *c = worker_connect(w->lane, f);
    if (!c)
        return NULL;
    enum { NS = 10 };
    for (int s = 0; s < NS; s++) {
        char name[16], sql[64];
        snprintf(name, sizeof name, "s%d", s);
        snprintf(sql, sizeof sql, "SELECT $1::int + %d", s * 1000);
        if (prepare(c, name, sql, 0, NULL, f))
            goto out;
    }
    for (int round = 0; round < 8 && f->n == 0; round++) {
        int in_tx = round % 2;
        if (in_tx && cmd(c, "BEGIN", f))
            break;
        for (int s = 0; s < NS; s++) {
            char name[16];
            long v, a = round * 10 + w->k;
            snprintf(name, sizeof name, "s%d", (s + w->k) % NS);
            if (exec_long(c, name, 1, &a, &v, f) == 0 && v != a + ((s + w->k) % NS) * 1000)
                FAIL(f, "%s(%ld) = %ld", name, a, v);
        }
        if (in_tx) {
            /* Same transaction, same server connection: pglane's statements there stay bounded. */
            PGresult *r = PQexec(c, PGL_COUNT_SQL);
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                FAIL(f, "count: %s", PQresultErrorMessage(r));
            else if (atol(PQgetvalue(r, 0, 0)) > w->max_pgl)
                w->max_pgl = atol(PQgetvalue(r, 0, 0));
            PQclear(r);
            cmd(c, "COMMIT", f);
        }
    }
out:
    PQfinish(c);
    return NULL;
}

static void test_lru_eviction(void **state)
{
    (void)state;
    enum { N = 4 };
    struct lru_worker w[N];
    for (int i = 0; i < N; i++)
        w[i] = (struct lru_worker){ .lane = &g_lru, .k = i };
    run_threads(N, lru_worker, w, sizeof w[0]);
    struct fail f[N];
    long max_pgl = 0;
    for (int i = 0; i < N; i++) {
        f[i] = w[i].f;
        if (w[i].max_pgl > max_pgl)
            max_pgl = w[i].max_pgl;
    }
    assert_no_failures(f, N, "lru");
    fprintf(stderr, "LRU: at most %ld _pgl_ statements seen on a server (max_prepared_statements = 3)\n",
            max_pgl);
    if (!h_direct()) {
        assert_true(max_pgl >= 1);
        assert_true(max_pgl <= 4);
    }
    /* Single client, sequential, 10 statements round-robin: every result right. */
    PGconn *c = h_connect(&g_lru, NULL);
    H_ASSERT_CONNECTED(c);
    struct fail f1 = { 0 };
    for (int s = 0; s < 10; s++) {
        char name[16], sql[64];
        snprintf(name, sizeof name, "r%d", s);
        snprintf(sql, sizeof sql, "SELECT $1::int * %d", s + 1);
        assert_int_equal(prepare(c, name, sql, 0, NULL, &f1), 0);
    }
    for (int i = 0; i < 100; i++) {
        char name[16];
        long v, a = i;
        snprintf(name, sizeof name, "r%d", i % 10);
        assert_int_equal(exec_long(c, name, 1, &a, &v, &f1), 0);
        assert_int_equal(v, (long)i * (i % 10 + 1));
    }
    if (!h_direct()) {
        assert_int_equal(h_exec(c, "BEGIN"), 0);
        long a = 3, v;
        assert_int_equal(exec_long(c, "r9", 1, &a, &v, &f1), 0);
        assert_int_equal(v, 30);
        long n = h_pg_long(c, PGL_COUNT_SQL);
        assert_true(n >= 1 && n <= 4);
        assert_int_equal(h_exec(c, "COMMIT"), 0);
    }
    PQfinish(c);
    h_pass();
}

/*
 * An eviction whose Close PostgreSQL skips (an error earlier in the same pipeline) leaves the
 * statement on the server: using it afterwards must still work. One server connection,
 * max_prepared_statements = 3.
 */
static void test_eviction_skipped_after_error(void **state)
{
    (void)state;
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 1, "scram-sha-256",
           "server_idle_timeout = 60s\nmax_prepared_statements = 3\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    struct fail f = { 0 };
    long v, a = 1;
    static const char *const names[] = { "e0", "e1", "e2", "e3" };
    static const char *const texts[] = { "SELECT $1::int + 10", "SELECT $1::int + 20", "SELECT $1::int + 30",
                                         "SELECT $1::int + 40" };
    for (int i = 0; i < 4; i++)
        assert_int_equal(prepare(c, names[i], texts[i], 0, NULL, &f), 0);
    for (int i = 0; i < 3; i++) {      /* e0..e2 on the server: its cache is full */
        assert_int_equal(exec_long(c, names[i], 1, &a, &v, &f), 0);
        assert_int_equal(v, 11 + 10 * i);
    }
    /* A failing query, then e3 (which needs room: the least recently used, e0, is closed). */
    assert_int_equal(PQenterPipelineMode(c), 1);
    assert_int_equal(PQsendQueryParams(c, "SELECT 1 / 0", 0, NULL, NULL, NULL, NULL, 0), 1);
    send_exec(c, "e3", "1", &f);
    assert_int_equal(PQpipelineSync(c), 1);
    pl_expect(c, PGRES_FATAL_ERROR, "22012", &f, "1/0");
    pl_expect(c, PGRES_PIPELINE_ABORTED, NULL, &f, "e3 after the error");
    pl_expect(c, PGRES_PIPELINE_SYNC, NULL, &f, "sync");
    assert_int_equal(PQexitPipelineMode(c), 1);
    /* Every statement still works, in any order. */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 4; i++)
            if (exec_long(c, names[i], 1, &a, &v, &f) == 0 && v != 11 + 10 * i)
                FAIL(&f, "%s = %ld", names[i], v);
    if (f.n)
        print_error("%d failures, first: %s\n", f.n, f.msg);
    assert_int_equal(f.n, 0);
    PQfinish(c);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ raw protocol */

/* A frontend message builder for exact message sequences (libpq 15 cannot send Close or Flush alone). */
struct msgs {
    uint8_t b[8192];
    size_t n;
    size_t start;
};

static void m_begin(struct msgs *m, char type)
{
    m->b[m->n++] = (uint8_t)type;
    m->start = m->n;
    m->n += 4;
}

static void m_str(struct msgs *m, const char *s)
{
    size_t l = strlen(s) + 1;
    memcpy(m->b + m->n, s, l);
    m->n += l;
}

static void m_u16(struct msgs *m, unsigned v)
{
    m->b[m->n++] = (uint8_t)(v >> 8);
    m->b[m->n++] = (uint8_t)v;
}

static void m_u32(struct msgs *m, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        m->b[m->n++] = (uint8_t)(v >> (8 * i));
}

static void m_end(struct msgs *m)
{
    uint32_t len = (uint32_t)(m->n - m->start);
    for (int i = 0; i < 4; i++)
        m->b[m->start + (size_t)i] = (uint8_t)(len >> (8 * (3 - i)));
}

static void m_parse(struct msgs *m, const char *name, const char *sql)
{
    m_begin(m, 'P');
    m_str(m, name);
    m_str(m, sql);
    m_u16(m, 0);
    m_end(m);
}

/* Bind of statement `stmt` to the unnamed portal with zero or one text parameter. */
static void m_bind(struct msgs *m, const char *stmt, const char *param)
{
    m_begin(m, 'B');
    m_str(m, "");
    m_str(m, stmt);
    m_u16(m, 0);
    if (param) {
        m_u16(m, 1);
        m_u32(m, (uint32_t)strlen(param));
        memcpy(m->b + m->n, param, strlen(param));
        m->n += strlen(param);
    } else {
        m_u16(m, 0);
    }
    m_u16(m, 0);
    m_end(m);
}

static void m_exec(struct msgs *m)
{
    m_begin(m, 'E');
    m_str(m, "");
    m_u32(m, 0);
    m_end(m);
}

static void m_simple(struct msgs *m, char type)
{
    m_begin(m, type);
    m_end(m);
}

static void m_sync(struct msgs *m) { m_simple(m, 'S'); }
static void m_flush(struct msgs *m) { m_simple(m, 'H'); }

static void m_close(struct msgs *m, const char *name)
{
    m_begin(m, 'C');
    m->b[m->n++] = 'S';
    m_str(m, name);
    m_end(m);
}

static void m_describe(struct msgs *m, const char *name)
{
    m_begin(m, 'D');
    m->b[m->n++] = 'S';
    m_str(m, name);
    m_end(m);
}

/*
 * Sends m and reads backend messages until the `count`th ReadyForQuery (or `nmsgs` messages if count
 * is 0). Returns the type letters, with DataRow as "D(value)" and ErrorResponse as "E(sqlstate)".
 */
static const char *exchange(int fd, struct msgs *m, int count, int nmsgs)
{
    static char seq[512];
    size_t n = 0;
    seq[0] = 0;
    if (h_raw_send(fd, m->b, m->n) != 0)
        return "send failed";
    m->n = 0;
    int z = 0, got = 0;
    while ((count ? z < count : got < nmsgs) && n < sizeof seq - 40) {
        uint8_t *body = NULL;
        uint32_t len = 0;
        int t = h_raw_read_msg(fd, 5000, &body, &len);
        if (t < 0) {
            n += (size_t)snprintf(seq + n, sizeof seq - n, "<%s>", t == H_RAW_TIMEOUT ? "timeout" : "eof");
            break;
        }
        got++;
        if (t == 'Z')
            z++;
        if (t == 'D' && len >= 6) {
            uint32_t vl = (uint32_t)body[2] << 24 | (uint32_t)body[3] << 16 | (uint32_t)body[4] << 8 | body[5];
            n += (size_t)snprintf(seq + n, sizeof seq - n, "D(%.*s)", (int)(vl < 20 ? vl : 20), body + 6);
        } else if (t == 'E') {
            const char *st = h_error_field(body, len, 'C');
            n += (size_t)snprintf(seq + n, sizeof seq - n, "E(%s)", st ? st : "?");
        } else {
            seq[n++] = (char)t;
            seq[n] = 0;
        }
        free(body);
    }
    return seq;
}

#define EXPECT_SEQ(fd, m, want) do { \
        const char *got_ = exchange((fd), (m), 1, 0); \
        if (strcmp(got_, (want)) != 0) \
            print_error("line %d: got %s, want %s\n", __LINE__, got_, (want)); \
        assert_string_equal(got_, (want)); \
    } while (0)

/* A trust lane of one server connection in transaction pooling (raw clients log in without a
 * password), started in l. */
static void trust_lane(struct h_pglane *l, const char *extra)
{
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 1, "trust", extra);
    assert_int_equal(h_pglane_start(l, &g_pg, conf), 0);
}

static int raw_login(const struct h_pglane *l)
{
    uint8_t buf[256];
    int fd = h_raw_connect(l->port);
    if (fd < 0)
        return -1;
    size_t n = h_raw_startup(buf, sizeof buf, 196608, H_USER, H_DB);
    if (h_raw_send(fd, buf, n) != 0)
        return -1;
    for (;;) {
        uint8_t *body = NULL;
        uint32_t len;
        int t = h_raw_read_msg(fd, 10000, &body, &len);
        free(body);
        if (t == 'Z')
            return fd;
        if (t < 0 || t == 'E')
            return -1;
    }
}

/*
 * The exact reply sequences of batches mixing statements the server already has (ParseComplete owed
 * by pglane), Close, re-Parse of a closed name, Describe, Flush and errors, from two raw clients on
 * a trust lane of one server connection. The expected sequences are PostgreSQL's own.
 */
static void test_raw_protocol_sequences(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();   /* raw clients log in without a password: needs a trust lane */
    struct h_pglane l;
    trust_lane(&l, NULL);
    int a = raw_login(&l), b = raw_login(&l);
    assert_true(a >= 0 && b >= 0);
    static struct msgs m;
    m.n = 0;

    /* b prepares the text first, so that a's Parse finds it on the server. */
    m_parse(&m, "theirs", "SELECT 1");
    m_sync(&m);
    EXPECT_SEQ(b, &m, "1Z");

    /* Known text, Close, the same name re-parsed with another text, Describe: in one batch. */
    m_parse(&m, "s1", "SELECT 1"); m_bind(&m, "s1", NULL); m_exec(&m);
    m_close(&m, "s1"); m_parse(&m, "s1", "SELECT 2"); m_bind(&m, "s1", NULL); m_exec(&m);
    m_describe(&m, "s1"); m_sync(&m);
    EXPECT_SEQ(a, &m, "12D(1)C312D(2)CtTZ");

    /* Close of a name that does not exist is CloseComplete. */
    m_close(&m, "nope"); m_sync(&m);
    EXPECT_SEQ(a, &m, "3Z");

    /* An error before a Parse the server already has: that ParseComplete is not owed any more. */
    m_parse(&m, "p2", "SELECT $1::int"); m_bind(&m, "p2", "x"); m_exec(&m);
    m_parse(&m, "s3", "SELECT 1"); m_sync(&m);
    EXPECT_SEQ(a, &m, "1E(22P02)Z");
    m_bind(&m, "p2", "6"); m_exec(&m); m_sync(&m);
    EXPECT_SEQ(a, &m, "2D(6)CZ");

    /* Parse + Flush: the ParseComplete comes without a Sync. */
    m_parse(&m, "f1", "SELECT 1"); m_flush(&m);
    const char *got = exchange(a, &m, 0, 1);
    assert_string_equal(got, "1");
    m_bind(&m, "f1", NULL); m_exec(&m); m_sync(&m);
    EXPECT_SEQ(a, &m, "2D(1)CZ");

    /* The server's ParseComplete (unnamed) and the owed one (known text) keep their order. */
    m_parse(&m, "", "SELECT 3"); m_parse(&m, "s4", "SELECT 1"); m_bind(&m, "", NULL); m_exec(&m);
    m_bind(&m, "s4", NULL); m_exec(&m); m_sync(&m);
    EXPECT_SEQ(a, &m, "112D(3)C2D(1)CZ");

    /* The other client on the same server connection, then a's statement again. */
    m_bind(&m, "theirs", NULL); m_exec(&m); m_sync(&m);
    EXPECT_SEQ(b, &m, "2D(1)CZ");
    m_describe(&m, "s1"); m_sync(&m);
    EXPECT_SEQ(a, &m, "tTZ");

    /* A closed name is gone. */
    m_close(&m, "s1"); m_sync(&m);
    EXPECT_SEQ(a, &m, "3Z");
    m_bind(&m, "s1", NULL); m_exec(&m); m_sync(&m);
    EXPECT_SEQ(a, &m, "E(26000)Z");
    /* b's statement of the same text is unaffected by a's Close. */
    m_bind(&m, "theirs", NULL); m_exec(&m); m_sync(&m);
    EXPECT_SEQ(b, &m, "2D(1)CZ");

    close(a);
    close(b);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* A client's Close that PostgreSQL skips after an earlier error leaves the statement in place. */
static void test_raw_close_skipped_after_error(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    trust_lane(&l, NULL);
    int a = raw_login(&l);
    assert_true(a >= 0);
    static struct msgs m;
    m.n = 0;
    m_parse(&m, "k1", "SELECT 5");
    m_sync(&m);
    EXPECT_SEQ(a, &m, "1Z");
    /* Error, then Close k1: PostgreSQL skips the Close. */
    m_parse(&m, "", "SELECT 1/0");
    m_bind(&m, "", NULL);
    m_exec(&m);
    m_close(&m, "k1");
    m_sync(&m);
    EXPECT_SEQ(a, &m, "1E(22012)Z");   /* 1/0 is folded when planning, at Bind */
    /* So k1 still exists, as on a direct connection. */
    m_bind(&m, "k1", NULL);
    m_exec(&m);
    m_sync(&m);
    EXPECT_SEQ(a, &m, "2D(5)CZ");
    close(a);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/*
 * The check of a statement's result columns on a server connection that lacks the statement (a Parse
 * and Describe of pglane's, ahead of the client's Bind) is not sent while a request pglane forwarded as
 * it was, a simple Query, is still unanswered: the Query's replies would be taken for the check's and
 * the check's for the client's. Seen with postgres.js over four workers, where handed-over connections
 * lack every statement: "prepared statement "_pgl_2" already exists". Here the Query waits on an
 * advisory lock while the client's Bind of a statement pushed out of the server's cache arrives.
 */
static void test_check_waits_for_unanswered_query(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    trust_lane(&l, "max_prepared_statements = 1\n");
    int a = raw_login(&l);
    assert_true(a >= 0);
    static struct msgs m;
    m.n = 0;
    /* pa's columns are known to the client; pb then takes the server's one cache entry. */
    m_parse(&m, "pa", "SELECT $1::int AS v");
    m_describe(&m, "pa");
    m_sync(&m);
    EXPECT_SEQ(a, &m, "1tTZ");
    m_parse(&m, "pb", "SELECT $1::int + 1 AS w");
    m_describe(&m, "pb");
    m_sync(&m);
    EXPECT_SEQ(a, &m, "1tTZ");
    PGconn *s = h_pg_super(&g_pg, H_DB);
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM (SELECT pg_advisory_lock(4242)) x"), 1);
    m_begin(&m, 'Q');
    m_str(&m, "SELECT pg_advisory_lock(4242)");
    m_end(&m);
    assert_int_equal(h_raw_send(a, m.b, m.n), 0);
    m.n = 0;
    assert_int_equal(h_pg_wait_long(s, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                       "AND query = 'SELECT pg_advisory_lock(4242)'", 1, 10000), 1);
    m_bind(&m, "pa", "5");
    m_exec(&m);
    m_sync(&m);
    assert_int_equal(h_raw_send(a, m.b, m.n), 0);
    m.n = 0;
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM (SELECT pg_advisory_unlock(4242)) x"), 1);
    const char *got = exchange(a, &m, 2, 0);
    if (strcmp(got, "TD()CZ2D(5)CZ") != 0)
        print_error("got %s\n", got);
    assert_string_equal(got, "TD()CZ2D(5)CZ");
    /* And both statements go on working. */
    m_bind(&m, "pb", "5");
    m_exec(&m);
    m_bind(&m, "pa", "6");
    m_exec(&m);
    m_sync(&m);
    EXPECT_SEQ(a, &m, "2D(6)C2D(6)CZ");
    PQfinish(s);
    close(a);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/*
 * A client that closes a statement and leaves without reading the answer (Close, Sync, Terminate, then
 * its socket closed: what tokio-postgres does as its statements are dropped on exit). pglane's write
 * of the CloseComplete and ReadyForQuery fails; the ReadyForQuery it had read for that client stayed
 * in the server connection's buffer and went to the next client of the connection, ahead of its own
 * answer (tokio-postgres: "unexpected message from server"). Twenty rounds on a lane of one server
 * connection: the next client's Query gets exactly its own answer every time.
 */
static void test_departed_client_replies_not_passed_on(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    trust_lane(&l, NULL);
    static struct msgs m;
    for (int round = 0; round < 20; round++) {
        int a = raw_login(&l);
        assert_true(a >= 0);
        m.n = 0;
        m_parse(&m, "gone", "SELECT $1::int AS v");
        m_describe(&m, "gone");
        m_sync(&m);
        EXPECT_SEQ(a, &m, "1tTZ");
        m_close(&m, "gone");
        m_sync(&m);
        m_simple(&m, 'X');
        assert_int_equal(h_raw_send(a, m.b, m.n), 0);
        m.n = 0;
        close(a);
        int b = raw_login(&l);
        assert_true(b >= 0);
        m_begin(&m, 'Q');
        m_str(&m, "SELECT 42");
        m_end(&m);
        const char *got = exchange(b, &m, 1, 0);
        if (strcmp(got, "TD(42)CZ") != 0)
            print_error("round %d: got %s\n", round, got);
        assert_string_equal(got, "TD(42)CZ");
        close(b);
    }
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/*
 * cache_unnamed = on (issue 21): libpq's unnamed statements (PQexecParams: Parse "", Bind, Describe,
 * Execute, Sync) run from their second Parse as a statement pglane prepared on the server connection.
 * The results are right, SHOW PREPARED and /metrics count one hit per Parse after the first, the
 * server holds the text as one _pgl_ statement, and a lane with the key off next to it counts none.
 */
static void test_cache_unnamed_hits(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static const char sql[] = "SELECT name, qty FROM items WHERE id = $1";
    struct h_pglane l;
    char conf[4096], extra[256], full[4608], series[96];
    int mport = h_free_port();
    snprintf(extra, sizeof extra, "server_idle_timeout = 60s\nadmin_users = app\nmetrics_listen = 127.0.0.1:%d\n",
             mport);
    h_conf(conf, sizeof conf, "transaction", 1, "scram-sha-256", extra);
    snprintf(full, sizeof full, "%scache_unnamed = on\n\n[lane.plain]\nserver = pg\nsize = 1\ncache_unnamed = off\n\n"
             "[route.plain]\napplication_name = plain\nlane = plain\n", conf);
    assert_int_equal(h_pglane_start(&l, &g_pg, full), 0);
    for (int lane = 0; lane < 2; lane++) {
        PGconn *c = h_connect(&l, lane ? "application_name=plain" : NULL);
        H_ASSERT_CONNECTED(c);
        for (int i = 1; i <= 20; i++) {
            char v[16], want[32];
            const char *p[1] = { v };
            snprintf(v, sizeof v, "%d", i + lane * 100);
            snprintf(want, sizeof want, "item-%d", i + lane * 100);
            PGresult *r = PQexecParams(c, sql, 1, NULL, p, NULL, NULL, 0);
            assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
            assert_int_equal(PQntuples(r), 1);
            assert_string_equal(PQgetvalue(r, 0, 0), want);
            assert_int_equal(atol(PQgetvalue(r, 0, 1)), (i + lane * 100) * 3);
            PQclear(r);
        }
        /* The lane's one server connection: its prepared statements. */
        PGresult *r = PQexec(c, "SELECT count(*), coalesce(sum(generic_plans + custom_plans), 0) FROM pg_prepared_statements "
                                "WHERE name LIKE '\\_pgl\\_%' AND statement = 'SELECT name, qty FROM items WHERE id = $1'");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        fprintf(stderr, "lane %s: %s _pgl_ statement(s) of the text on the server, %s executions\n",
                lane ? "plain" : "main", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
        assert_int_equal(atol(PQgetvalue(r, 0, 0)), lane ? 0 : 1);
        assert_int_equal(atol(PQgetvalue(r, 0, 1)), lane ? 0 : 19);
        PQclear(r);
        PQfinish(c);
    }
    PGconn *adm = h_console(&l, NULL);
    H_ASSERT_CONNECTED(adm);
    PGresult *r = PQexec(adm, "SHOW PREPARED");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int col = PQfnumber(r, "unnamed_hits");
    assert_true(col >= 0);
    assert_int_equal(atol(PQgetvalue(r, 0, col)), 19);
    PQclear(r);
    PQfinish(adm);
    snprintf(series, sizeof series, "pglane_prepared_unnamed_hits_total{lane=\"main\"}");
    assert_int_equal(h_metric_now(mport, series), 19);
    snprintf(series, sizeof series, "pglane_prepared_unnamed_hits_total{lane=\"plain\"}");
    assert_int_equal(h_metric_now(mport, series), 0);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_libpq_prepared_8_over_2),
        H_TEST(test_libpq_pipeline),
        H_TEST(test_failed_parse_leaves_no_statement),
        H_TEST(test_duplicate_name),
        H_TEST(test_sql_deallocate_of_protocol_statement),
        H_TEST(test_client_deallocates_pglane_statement),
        H_TEST(test_pgbench_prepared_64_over_8),
        H_TEST(test_alter_table_between_executions),
        H_TEST(test_schema_changed_after_direct_ddl),
        H_TEST(test_sql_prepare_in_transaction),
        H_TEST(test_discard_all),
        H_TEST(test_admin_counters),
        H_TEST(test_lru_eviction),
        H_TEST(test_eviction_skipped_after_error),
        H_TEST(test_raw_protocol_sequences),
        H_TEST(test_raw_close_skipped_after_error),
        H_TEST(test_check_waits_for_unanswered_query),
        H_TEST(test_departed_client_replies_not_passed_on),
        H_TEST(test_cache_unnamed_hits),
    };
    return H_RUN_GROUP("integration: prepared statements in transaction pooling", tests,
                       .pg = &g_pg, .setup = fixtures);
}
