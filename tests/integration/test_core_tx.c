/*
 * Core issue, transaction pooling: libpq simple and extended protocol, psql, pgbench (64 clients over
 * 4 and over 8 server connections), COPY in and out, errors inside transactions, cancel, large
 * results with backpressure, idle server timeout and the unix-socket listener.
 */
#include "tests/integration/harness.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct h_pg g_pg;
static struct h_pglane g_main;     /* transaction mode, lane size 4 */

static int fixtures(void)
{
    if (h_pgbench_init(&g_pg, H_DB) != 0 || h_pgbench_init(&g_pg, H_BENCH_DB) != 0)
        return -1;
    PGconn *s = h_pg_super(&g_pg, "postgres");
    if (!s)
        return -1;
    /* Every app backend seen from now on belongs to a pglane instance (or a direct-mode client). */
    long n = h_pg_wait_long(s, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'", 0, 10000);
    PQfinish(s);
    if (n != 0)
        return -1;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 4, "scram-sha-256", NULL);
    if (h_pglane_start(&g_main, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_main);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static int notices;

static void count_notice(void *arg, const PGresult *r)
{
    (void)arg;
    const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (m && strcmp(m, "hello from the server") == 0)
        notices++;
}

static void test_simple_query(void **state)
{
    (void)state;
    PGconn *c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);

    char *v = h_query1(c, "SELECT 40 + 2");
    assert_non_null(v);
    assert_string_equal(v, "42");
    free(v);

    /* Several statements in one Query message: PQexec returns the last result. */
    v = h_query1(c, "SELECT 1; SELECT 'second'");
    assert_non_null(v);
    assert_string_equal(v, "second");
    free(v);

    /* A multi-row result spanning many reads. */
    PGresult *r = PQexec(c, "SELECT i, repeat('x', i % 100) FROM generate_series(1, 20000) i");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 20000);
    long sum = 0;
    for (int i = 0; i < PQntuples(r); i++)
        sum += atol(PQgetvalue(r, i, 0)) + (long)strlen(PQgetvalue(r, i, 1));
    assert_int_equal(sum, 20000L * 20001 / 2 + 200L * (99 * 100 / 2));
    PQclear(r);

    /* Empty query, and a NOTICE relayed to the client. */
    r = PQexec(c, "");
    assert_int_equal(PQresultStatus(r), PGRES_EMPTY_QUERY);
    PQclear(r);
    PQsetNoticeReceiver(c, count_notice, NULL);
    notices = 0;
    assert_int_equal(h_exec(c, "DO $$BEGIN RAISE NOTICE 'hello from the server'; END$$"), 0);
    assert_int_equal(notices, 1);

    /* The server identity parameters were relayed at login. */
    assert_non_null(PQparameterStatus(c, "server_version"));
    assert_string_equal(PQparameterStatus(c, "client_encoding"), "UTF8");
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    PQfinish(c);
    h_pass();
}

static void test_extended_unnamed(void **state)
{
    (void)state;
    PGconn *c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);

    const char *params[2] = { "40", "2" };
    PGresult *r = PQexecParams(c, "SELECT $1::int + $2::int", 2, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    PQclear(r);

    /* A NULL parameter, and a binary bytea parameter and result. */
    const char *p2[2] = { NULL, "\x01\x00\xff" };
    int lens[2] = { 0, 3 }, fmts[2] = { 0, 1 };
    r = PQexecParams(c, "SELECT $1::text IS NULL, $2::bytea", 2, NULL, p2, lens, fmts, 1);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQgetlength(r, 0, 1), 3);
    assert_memory_equal(PQgetvalue(r, 0, 1), "\x01\x00\xff", 3);
    assert_int_equal(PQgetvalue(r, 0, 0)[0], 1);   /* binary bool true */
    PQclear(r);

    /* An error in the extended protocol, then the connection goes on. */
    r = PQexecParams(c, "SELECT 1 / $1::int", 1, NULL, (const char *[]){ "0" }, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22012");
    PQclear(r);

    /* Pipeline mode: 200 Parse/Bind/Describe/Execute batches before one Sync. */
    assert_int_equal(PQenterPipelineMode(c), 1);
    char num[16];
    for (int i = 0; i < 200; i++) {
        snprintf(num, sizeof num, "%d", i);
        const char *pv[1] = { num };
        assert_int_equal(PQsendQueryParams(c, "SELECT $1::int * 2", 1, NULL, pv, NULL, NULL, 0), 1);
    }
    assert_int_equal(PQpipelineSync(c), 1);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(h_wait_result(c, 10000), 0);
        r = PQgetResult(c);
        assert_non_null(r);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(atoi(PQgetvalue(r, 0, 0)), 2 * i);
        PQclear(r);
        assert_null(PQgetResult(c));
    }
    assert_int_equal(h_wait_result(c, 10000), 0);
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_PIPELINE_SYNC);
    PQclear(r);
    assert_int_equal(PQexitPipelineMode(c), 1);

    /* Flush: the answer must arrive before any Sync is sent (pglane must not wait for Sync). */
    assert_int_equal(PQenterPipelineMode(c), 1);
    assert_int_equal(PQsendQueryParams(c, "SELECT 'flushed'", 0, NULL, NULL, NULL, NULL, 0), 1);
    assert_int_equal(PQsendFlushRequest(c), 1);
    assert_int_equal(PQflush(c), 0);
    assert_int_equal(h_wait_result(c, 5000), 0);
    r = PQgetResult(c);
    assert_non_null(r);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "flushed");
    PQclear(r);
    assert_null(PQgetResult(c));
    assert_int_equal(PQpipelineSync(c), 1);
    assert_int_equal(h_wait_result(c, 5000), 0);
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_PIPELINE_SYNC);
    PQclear(r);
    assert_int_equal(PQexitPipelineMode(c), 1);

    /* Several clients interleaving extended-protocol queries over the 4 server connections. */
    PGconn *cs[8];
    for (int i = 0; i < 8; i++) {
        cs[i] = h_connect(&g_main, NULL);
        H_ASSERT_CONNECTED(cs[i]);
    }
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < 8; i++) {
            snprintf(num, sizeof num, "%d", round * 100 + i);
            const char *pv[1] = { num };
            r = PQexecParams(cs[i], "SELECT $1::int + 1", 1, NULL, pv, NULL, NULL, 0);
            assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
            assert_int_equal(atoi(PQgetvalue(r, 0, 0)), round * 100 + i + 1);
            PQclear(r);
        }
    for (int i = 0; i < 8; i++)
        PQfinish(cs[i]);
    PQfinish(c);
    h_pass();
}

static void test_psql(void **state)
{
    (void)state;
    char ci[1024];
    h_conninfo(&g_main, NULL, ci, sizeof ci);
    char *out = NULL;
    const char *a1[] = { "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "SELECT 40 + 2",
                         ci, NULL };
    int rc = h_run(a1, NULL, 30000, &out);
    if (rc != 0)
        print_error("psql: %s\n", out);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "42\n");
    free(out);

    /* A script with a transaction, DDL, \copy and an extended-protocol query (\bind is 16+). */
    const char *script =
        "DROP TABLE IF EXISTS psql_t;\n"
        "BEGIN;\n"
        "CREATE TABLE psql_t (id int, v text);\n"
        "INSERT INTO psql_t SELECT i, 'row ' || i FROM generate_series(1, 500) i;\n"
        "COMMIT;\n"
        "\\copy psql_t to stdout\n"
        "SELECT 'total=' || sum(id) FROM psql_t;\n";
    char path[H_PATH + 32];
    snprintf(path, sizeof path, "%s/script.sql", h_scratch_dir());
    assert_int_equal(h_write_file(path, script), 0);
    const char *a2[] = { "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-f", path, ci, NULL };
    rc = h_run(a2, NULL, 30000, &out);
    if (rc != 0)
        print_error("psql: %s\n", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "500\trow 500\n"));
    assert_non_null(strstr(out, "total=125250\n"));
    free(out);

    /* ON_ERROR_STOP makes psql exit 3 on a server error: the error came through. */
    const char *a3[] = { "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", "SELECT 1/0", ci, NULL };
    rc = h_run(a3, NULL, 30000, &out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "division by zero"));
    free(out);
    h_pass();
}

/* Runs pgbench through lane l against db, asserting success, zero failures and, when not direct, that
 * at most `size` server connections of app to db exist while it runs. */
static void run_pgbench(struct h_pglane *l, const char *db, int size, const char *const *args,
                        long expect_tx)
{
    PGconn *s = h_pg_super(&g_pg, "postgres");
    assert_non_null(s);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND datname = '%s'", db);
    struct h_proc p;
    assert_int_equal(h_pgbench_start(&p, l, db, args), 0);
    long max_seen = 0;
    int samples = 0;
    int64_t deadline = h_now_ms() + 120000;
    while (!h_proc_done(&p) && h_now_ms() < deadline) {
        long n = h_pg_long(s, sql);
        if (n > max_seen)
            max_seen = n;
        samples++;
        usleep(20000);   /* sampling period, not synchronisation */
    }
    char *out = NULL;
    int rc = h_proc_wait(&p, 1000, &out);
    if (rc != 0 || h_parse_after(out, "number of failed transactions:") != 0)
        print_error("pgbench exit %d:\n%s\n", rc, out);
    if (getenv("PGLANE_TEST_VERBOSE"))
        fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    assert_int_equal(h_parse_after(out, "number of failed transactions:"), 0);
    assert_int_equal(h_parse_after(out, "number of transactions actually processed:"), expect_tx);
    free(out);
    fprintf(stderr, "pgbench: at most %ld server connections of app to %s seen (%d samples)\n", max_seen,
            db, samples);
    if (!l->direct) {
        if (max_seen > size)
            print_error("saw %ld server connections of app to %s, lane size %d\n", max_seen, db, size);
        assert_true(max_seen <= size);
        assert_true(samples > 0);
    }
    PQfinish(s);
}

/*
 * pgbench -S and the TPC-B-like default, -M simple and -M extended, 64 clients, 2 threads. Each run
 * mixes both builtin scripts (-b select-only -b tpcb-like), which keeps the number of 64-client
 * logins (the slow part on a loaded machine) at two per lane.
 */
static void pgbench_matrix(struct h_pglane *l, const char *db, int size)
{
    PGconn *s = h_pg_super(&g_pg, db);
    assert_non_null(s);
    long hist0 = h_pg_long(s, "SELECT count(*) FROM pgbench_history");
    const char *simple[] = { "-n", "-b", "select-only@3", "-b", "tpcb-like@1", "-M", "simple",
                             "-c", "64", "-j", "2", "-t", "20", NULL };
    const char *ext[] = { "-n", "-b", "select-only@3", "-b", "tpcb-like@1", "-M", "extended",
                          "-c", "64", "-j", "2", "-t", "20", NULL };
    run_pgbench(l, db, size, simple, 64 * 20);
    run_pgbench(l, db, size, ext, 64 * 20);
    /* The TPC-B transactions really committed: each adds one history row. */
    long hist1 = h_pg_long(s, "SELECT count(*) FROM pgbench_history");
    assert_true(hist0 >= 0 && hist1 > hist0 && hist1 - hist0 < 2 * 64 * 20);
    PQfinish(s);
}

static void test_pgbench_64_over_4(void **state)
{
    (void)state;
    pgbench_matrix(&g_main, H_DB, 4);
    h_pass();
}

static void test_pgbench_64_over_8(void **state)
{
    (void)state;
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 8, "scram-sha-256", NULL);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    pgbench_matrix(&l, H_BENCH_DB, 8);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

static void test_pgbench_init_through_pglane(void **state)
{
    (void)state;
    assert_int_equal(h_pg_exec(&g_pg, "postgres", "CREATE DATABASE initdb_t OWNER app"), 0);
    const char *args[] = { "-i", "-s", "1", "-q", NULL };
    struct h_proc p;
    assert_int_equal(h_pgbench_start(&p, &g_main, "initdb_t", args), 0);
    char *out = NULL;
    int rc = h_proc_wait(&p, 120000, &out);
    if (rc != 0)
        print_error("pgbench -i:\n%s\n", out);
    assert_int_equal(rc, 0);
    free(out);
    PGconn *s = h_pg_super(&g_pg, "initdb_t");
    assert_non_null(s);
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM pgbench_accounts"), 100000);
    assert_int_equal(h_pg_long(s, "SELECT count(*) FROM pgbench_branches"), 1);
    PQfinish(s);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

static void md5_hex(EVP_MD_CTX *ctx, char out[33])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx, d, &n);
    for (unsigned int i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

#define COPY_ROWS 100000

static void test_copy_100k(void **state)
{
    (void)state;
    PGconn *c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "DROP TABLE IF EXISTS copy_t; CREATE TABLE copy_t (id int, v text)"), 0);

    /* COPY FROM STDIN in 64 kB chunks; the checksum of exactly the bytes sent. */
    PGresult *r = PQexec(c, "COPY copy_t FROM STDIN");
    assert_int_equal(PQresultStatus(r), PGRES_COPY_IN);
    PQclear(r);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    char chunk[65536];
    size_t used = 0;
    long long idsum = 0;
    unsigned x = 12345;
    for (int i = 1; i <= COPY_ROWS; i++) {
        x = x * 1103515245u + 12345u;
        char line[128];
        int n = snprintf(line, sizeof line, "%d\tvalue-%08x-%d\n", i, x, i % 977);
        if (used + (size_t)n > sizeof chunk) {
            assert_int_equal(PQputCopyData(c, chunk, (int)used), 1);
            used = 0;
        }
        memcpy(chunk + used, line, (size_t)n);
        used += (size_t)n;
        EVP_DigestUpdate(ctx, line, (size_t)n);
        idsum += i;
    }
    assert_int_equal(PQputCopyData(c, chunk, (int)used), 1);
    assert_int_equal(PQputCopyEnd(c, NULL), 1);
    char sent_md5[33];
    md5_hex(ctx, sent_md5);
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdTuples(r), "100000");
    PQclear(r);
    assert_null(PQgetResult(c));

    /* The server computes the same checksum over what it stored. */
    r = PQexec(c, "SELECT count(*), sum(id), md5(string_agg(id || E'\\t' || v || E'\\n', '' ORDER BY id))"
                  " FROM copy_t");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(atol(PQgetvalue(r, 0, 0)), COPY_ROWS);
    assert_int_equal(atoll(PQgetvalue(r, 0, 1)), idsum);
    assert_string_equal(PQgetvalue(r, 0, 2), sent_md5);
    PQclear(r);

    /* COPY TO STDOUT: the bytes received hash to the same value. */
    r = PQexec(c, "COPY (SELECT id, v FROM copy_t ORDER BY id) TO STDOUT");
    assert_int_equal(PQresultStatus(r), PGRES_COPY_OUT);
    PQclear(r);
    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    long rows = 0;
    char *buf;
    int n;
    while ((n = PQgetCopyData(c, &buf, 0)) > 0) {
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        rows++;
        PQfreemem(buf);
    }
    assert_int_equal(n, -1);
    char recv_md5[33];
    md5_hex(ctx, recv_md5);
    EVP_MD_CTX_free(ctx);
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdTuples(r), "100000");
    PQclear(r);
    assert_null(PQgetResult(c));
    assert_int_equal(rows, COPY_ROWS);
    assert_string_equal(recv_md5, sent_md5);

    /* A COPY that fails half-way (bad data), then the connection goes on. */
    r = PQexec(c, "COPY copy_t FROM STDIN");
    assert_int_equal(PQresultStatus(r), PGRES_COPY_IN);
    PQclear(r);
    const char *bad = "1\tok\nnot-a-number\tbad\n";
    assert_int_equal(PQputCopyData(c, bad, (int)strlen(bad)), 1);
    assert_int_equal(PQputCopyEnd(c, NULL), 1);
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22P02");
    PQclear(r);
    assert_null(PQgetResult(c));
    /* A COPY the client aborts with CopyFail. */
    r = PQexec(c, "COPY copy_t FROM STDIN");
    assert_int_equal(PQresultStatus(r), PGRES_COPY_IN);
    PQclear(r);
    assert_int_equal(PQputCopyData(c, "2\tx\n", 4), 1);
    assert_int_equal(PQputCopyEnd(c, "client gave up"), 1);
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014");
    PQclear(r);
    assert_null(PQgetResult(c));
    char *v = h_query1(c, "SELECT count(*) FROM copy_t");
    assert_non_null(v);
    assert_string_equal(v, "100000");
    free(v);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    PQfinish(c);
    h_pass();
}

static void test_error_in_transaction_then_rollback(void **state)
{
    (void)state;
    PGconn *c = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "DROP TABLE IF EXISTS rb_t; CREATE TABLE rb_t (id int)"), 0);

    assert_int_equal(h_exec(c, "BEGIN"), 0);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INTRANS);
    assert_int_equal(h_exec(c, "INSERT INTO rb_t VALUES (1)"), 0);
    assert_string_equal(h_exec_sqlstate(c, "SELECT 1 / 0"), "22012");
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INERROR);
    assert_string_equal(h_exec_sqlstate(c, "SELECT 1"), "25P02");
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INERROR);
    assert_int_equal(h_exec(c, "ROLLBACK"), 0);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);

    /* The same connection works, and the rolled-back insert is gone. */
    char *v = h_query1(c, "SELECT count(*) FROM rb_t");
    assert_non_null(v);
    assert_string_equal(v, "0");
    free(v);

    /* The same through the extended protocol. */
    assert_int_equal(h_exec(c, "BEGIN"), 0);
    PGresult *r = PQexecParams(c, "SELECT 1 / $1::int", 1, NULL, (const char *[]){ "0" }, NULL, NULL, 0);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22012");
    PQclear(r);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INERROR);
    assert_int_equal(h_exec(c, "ROLLBACK"), 0);

    /* An error outside a transaction, then many statements reusing the pool. */
    assert_string_equal(h_exec_sqlstate(c, "SELECT * FROM no_such_table"), "42P01");
    for (int i = 0; i < 50; i++) {
        assert_int_equal(h_exec(c, "INSERT INTO rb_t VALUES (2)"), 0);
        assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    }
    v = h_query1(c, "SELECT count(*) FROM rb_t");
    assert_non_null(v);
    assert_string_equal(v, "50");
    free(v);
    PQfinish(c);
    h_pass();
}

/* A client that goes away inside a transaction takes its server connection with it (the transaction
 * must not leak to another client); the lane's slot must still serve the clients queued behind it at
 * once, not when some other connection happens to be released. */
static void test_client_gone_mid_transaction_frees_slot(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 1, "scram-sha-256", "admin_users = app\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *holder = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(holder);
    assert_int_equal(h_exec(holder, "BEGIN"), 0);
    assert_int_equal(h_exec(holder, "SELECT 1"), 0);   /* the lane's only connection is taken */
    PGconn *waiter = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(waiter);
    assert_int_equal(PQsendQuery(waiter, "SELECT 42"), 1);
    PGconn *adm = h_console(&l, NULL);
    H_ASSERT_CONNECTED(adm);
    assert_int_equal(h_show_wait(adm, "SHOW LANES", "main", "clients_waiting", 1, 10000), 1);

    PQfinish(holder);   /* gone with its transaction open */
    assert_int_equal(h_wait_result(waiter, 10000), 0);
    PGresult *r = PQgetResult(waiter);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    while ((r = PQgetResult(waiter)) != NULL)
        PQclear(r);
    PQfinish(waiter);
    PQfinish(adm);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* A CancelRequest with a given pid and key on a fresh socket; the server closes it without a word. */
static void send_cancel(int port, uint32_t pid, uint32_t key)
{
    int fd = h_raw_connect(port);
    assert_true(fd >= 0);
    uint8_t m[16] = { 0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e };   /* 80877102 */
    for (int i = 0; i < 4; i++) {
        m[8 + i] = (uint8_t)(pid >> (24 - 8 * i));
        m[12 + i] = (uint8_t)(key >> (24 - 8 * i));
    }
    assert_int_equal(h_raw_send(fd, m, sizeof m), 0);
    assert_int_equal(h_raw_read_byte(fd, 5000), H_RAW_EOF);
    close(fd);
}

static void test_cancel(void **state)
{
    (void)state;
    PGconn *s = h_pg_super(&g_pg, "postgres");
    assert_non_null(s);
    PGconn *a = h_connect(&g_main, NULL);
    PGconn *b = h_connect(&g_main, NULL);
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(PQsendQuery(a, "SELECT pg_sleep(30)"), 1);
    assert_int_equal(PQsendQuery(b, "SELECT pg_sleep(3)"), 1);
    int64_t b_started = h_now_ms();
    long active = h_pg_wait_long(s,
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
        "AND query IN ('SELECT pg_sleep(30)', 'SELECT pg_sleep(3)')", 2, 10000);
    assert_int_equal(active, 2);

    /* Cancels with a wrong key, or for an unknown process, cancel nothing. */
    send_cancel(g_main.port, (uint32_t)PQbackendPID(b), 0xdeadbeef);
    send_cancel(g_main.port, (uint32_t)PQbackendPID(a), 0x01020304);
    send_cancel(g_main.port, 0x7ffffff0, 0x11111111);

    int64_t t0 = h_now_ms();
    PGcancel *cn = PQgetCancel(a);
    assert_non_null(cn);
    char err[256];
    int ok = PQcancel(cn, err, sizeof err);
    PQfreeCancel(cn);
    if (!ok)
        print_error("PQcancel: %s\n", err);
    assert_int_equal(ok, 1);
    assert_int_equal(h_wait_result(a, 2000), 0);
    PGresult *r = PQgetResult(a);
    int64_t took = h_now_ms() - t0;
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014");
    PQclear(r);
    assert_null(PQgetResult(a));
    assert_true(took <= 2000);

    /* The other client's query was not cancelled: it runs its full 3 seconds. */
    assert_int_equal(h_wait_result(b, 10000), 0);
    r = PQgetResult(b);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        print_error("b: %s\n", PQresultErrorMessage(r));
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    assert_null(PQgetResult(b));
    assert_true(h_now_ms() - b_started >= 2900);

    /* The cancelled client goes on. */
    char *v = h_query1(a, "SELECT 'after cancel'");
    assert_non_null(v);
    assert_string_equal(v, "after cancel");
    free(v);
    /* A cancel arriving when the client has nothing running is harmless. */
    cn = PQgetCancel(a);
    assert_int_equal(PQcancel(cn, err, sizeof err), 1);
    PQfreeCancel(cn);
    v = h_query1(b, "SELECT pg_sleep(0.2)::text || 'ok'");
    assert_non_null(v);
    assert_string_equal(v, "ok");
    free(v);
    PQfinish(a);
    PQfinish(b);
    PQfinish(s);
    h_pass();
}

static long proc_rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *s = h_read_file(path);
    long kb = h_parse_after(s, "VmRSS:");
    free(s);
    return kb;
}

/* A client that does not read a 200 MB result: the server must end up blocked writing (pglane
 * stopped reading from it) instead of pglane buffering the result. pglane's growth in RSS is
 * measured rather than its size, so that a sanitizer build's overhead does not count. */
static void test_backpressure_slow_reader(void **state)
{
    (void)state;
    PGconn *s = h_pg_super(&g_pg, "postgres");
    assert_non_null(s);
    PGconn *c = h_connect(&g_main, "application_name=slowreader");
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "SELECT 1"), 0);
    long rss0 = g_main.direct ? 0 : proc_rss_kb(g_main.pid), rss = rss0;
    assert_true(g_main.direct || rss0 > 0);
    assert_int_equal(PQsendQuery(c, "SELECT i, repeat('x', 1000) AS pad FROM generate_series(1, 200000) i"), 1);
    assert_int_equal(PQsetSingleRowMode(c), 1);
    int64_t deadline = h_now_ms() + 20000;
    long blocked = 0;
    while (h_now_ms() < deadline) {
        blocked = h_pg_long(s, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'ClientWrite' "
                               "AND query LIKE 'SELECT i, repeat%'");
        if (!g_main.direct)
            rss = proc_rss_kb(g_main.pid);
        if (blocked == 1 || rss - rss0 > 256 * 1024)
            break;
        usleep(20000);
    }
    if (blocked != 1)
        print_error("the server never blocked on ClientWrite; pglane RSS grew by %ld kB\n", rss - rss0);
    assert_int_equal(blocked, 1);
    if (!g_main.direct) {
        rss = proc_rss_kb(g_main.pid);
        fprintf(stderr, "pglane RSS %ld kB -> %ld kB while the client is not reading\n", rss0, rss);
        assert_true(rss - rss0 <= 96 * 1024);
    }
    /* Now read it all. */
    long rows = 0;
    PGresult *r;
    for (;;) {
        assert_int_equal(h_wait_result(c, 30000), 0);
        r = PQgetResult(c);
        if (!r)
            break;
        if (PQresultStatus(r) == PGRES_SINGLE_TUPLE)
            rows++;
        else
            assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
    }
    assert_int_equal(rows, 200000);
    char *v = h_query1(c, "SELECT 'still here'");
    assert_non_null(v);
    free(v);
    PQfinish(c);
    PQfinish(s);
    h_pass();
}

static void test_server_idle_timeout(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    assert_int_equal(h_pg_exec(&g_pg, "postgres", "CREATE DATABASE idle_t OWNER app"), 0);
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 4, "scram-sha-256", "server_idle_timeout = 1s\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *s = h_pg_super(&g_pg, "postgres");
    assert_non_null(s);
    const char *count_sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'idle_t'";
    PGconn *c = h_connect(&l, "dbname=idle_t");
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "SELECT 1"), 0);
    assert_true(h_pg_long(s, count_sql) >= 1);
    /* The client stays connected but idle: its idle server connection is closed after ~1 s. */
    assert_int_equal(h_pg_wait_long(s, count_sql, 0, 10000), 0);
    /* And the client gets a fresh one on its next query. */
    assert_int_equal(h_exec(c, "SELECT 1"), 0);
    PQfinish(c);
    PQfinish(s);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

static void test_unix_socket_listener(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];
    h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256",
           "server_idle_timeout = 60s\nunix_socket_dir = @SOCKDIR@\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    char extra[H_PATH + 32];
    snprintf(extra, sizeof extra, "host=%s", l.sock_dir);
    PGconn *c = h_connect(&l, extra);
    H_ASSERT_CONNECTED(c);
    char *v = h_query1(c, "SELECT 'via unix socket'");
    assert_non_null(v);
    assert_string_equal(v, "via unix socket");
    free(v);
    PQfinish(c);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_simple_query),
        H_TEST(test_extended_unnamed),
        H_TEST(test_psql),
        H_TEST(test_error_in_transaction_then_rollback),
        H_TEST(test_client_gone_mid_transaction_frees_slot),
        H_TEST(test_copy_100k),
        H_TEST(test_cancel),
        H_TEST(test_pgbench_init_through_pglane),
        H_TEST(test_pgbench_64_over_4),
        H_TEST(test_pgbench_64_over_8),
        H_TEST(test_backpressure_slow_reader),
        H_TEST(test_server_idle_timeout),
        H_TEST(test_unix_socket_listener),
    };
    return H_RUN_GROUP("integration: core, transaction pooling", tests, .pg = &g_pg, .setup = fixtures);
}
