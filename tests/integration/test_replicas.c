/*
 * Replica lanes (issue 15): lanes that list a streaming replica and the primary. Only reads the grammar
 * proves read-only (autocommit) and READ ONLY transactions run on the replica, everything else on the
 * primary; a lagging or stopped replica's reads fall back to the primary; read_your_writes; a promoted
 * replica takes the writes without a pglane restart.
 */
#include "tests/integration/harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INTERVAL_MS 200
#define FAILURES 3
#define MAX_LAG_MS 1000
/* Slack for a loaded machine on top of the deadlines the issue sets in intervals. */
#define SLACK_MS 3000

static struct h_pg g_pg;        /* the primary */
static struct h_pg g_replica;   /* streaming from g_pg */
static struct h_pglane g_lane;
static int g_mport;

/*
 * Lanes: main (the primary alone, the default), rep (replica then primary, max_replica_lag 1s),
 * ryw (the same with read_your_writes and no lag limit), norw (no lag limit, no read_your_writes),
 * strict (replica_fallback = error, 1s), queued (replica_fallback = queue, 1s).
 */
static int fixtures(void)
{
    char conf[4096];

    if (h_pg_exec(&g_pg, H_DB, "CREATE TABLE events (id serial PRIMARY KEY, note text);"
                               "ALTER TABLE events OWNER TO " H_USER ";"
                               "CREATE TABLE ryw (v int);"
                               "ALTER TABLE ryw OWNER TO " H_USER ";"
                               "CREATE FUNCTION where_am_i() RETURNS bool LANGUAGE sql AS "
                               "'SELECT pg_is_in_recovery()'") != 0)
        return -1;
    if (h_pg_start_replica(&g_replica, &g_pg) != 0)
        return -1;
    g_mport = h_free_port();
    snprintf(conf, sizeof conf,
             "[pglane]\n"
             "listen = 127.0.0.1:@PORT@\n"
             "auth_type = md5\n"
             "auth_file = @AUTHFILE@\n"
             "pool_mode = transaction\n"
             "default_lane = main\n"
             "admin_users = app\n"
             "metrics_listen = 127.0.0.1:%d\n"
             "log_level = info\n"
             "health_check_interval = %dms\n"
             "health_check_failures = %d\n"
             /* no role keys: lanes that list several servers have them checked, roles learned */
             "\n[server.primary]\nhost = 127.0.0.1\nport = @PGPORT@\n"
             "\n[server.replica]\nhost = 127.0.0.1\nport = %d\n"
             "\n[lane.main]\nserver = primary\nsize = 4\n"
             "\n[lane.rep]\nserver = replica, primary\nsize = 4\nmax_replica_lag = %dms\nqueue_timeout = 30s\n"
             "\n[lane.ryw]\nserver = replica, primary\nsize = 4\nread_your_writes = on\n"
             "\n[lane.norw]\nserver = replica, primary\nsize = 4\n"
             "\n[lane.strict]\nserver = replica, primary\nsize = 2\nmax_replica_lag = %dms\n"
             "replica_fallback = error\n"
             "\n[lane.queued]\nserver = replica, primary\nsize = 2\nmax_replica_lag = %dms\n"
             "replica_fallback = queue\nqueue_timeout = 60s\n"
             "\n[route.queued]\napplication_name = queued\nlane = queued\n"
             "\n[lane.one]\nserver = replica, primary\nsize = 1\nqueue_timeout = 60s\n"
             "\n[route.one]\napplication_name = one\nlane = one\n"
             "\n[route.trusted]\napplication_name = trusted\nlane = rep\nread_only = trust\n"
             "\n[route.rep]\napplication_name = rep\nlane = rep\n"
             "\n[route.ryw]\napplication_name = ryw\nlane = ryw\n"
             "\n[route.norw]\napplication_name = norw\nlane = norw\n"
             "\n[route.strict]\napplication_name = strict\nlane = strict\n",
             g_mport, INTERVAL_MS, FAILURES, g_replica.port, MAX_LAG_MS, MAX_LAG_MS, MAX_LAG_MS);
    if (h_pglane_start(&g_lane, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_lane);
    return 0;
}

static int teardown(void)
{
    h_pg_stop(&g_replica);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

/* Column col of SHOW LANE SERVERS for (lane, server), malloc'd, or NULL. */
static char *ls_val(PGconn *adm, const char *lane, const char *server, const char *col)
{
    PGresult *r = PQexec(adm, "SHOW LANE SERVERS");
    char *v = NULL;

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        print_error("SHOW LANE SERVERS: %s\n", PQerrorMessage(adm));
        PQclear(r);
        return NULL;
    }
    int lc = PQfnumber(r, "lane"), sc = PQfnumber(r, "server"), cc = PQfnumber(r, col);
    for (int i = 0; lc >= 0 && sc >= 0 && cc >= 0 && i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, lc), lane) == 0 && strcmp(PQgetvalue(r, i, sc), server) == 0)
            v = strdup(PQgetvalue(r, i, cc));
    PQclear(r);
    return v;
}

/* Polls SHOW LANE SERVERS until (lane, server).col is want: the milliseconds it took, or -1. */
static long ls_wait(PGconn *adm, const char *lane, const char *server, const char *col, const char *want,
                    int timeout_ms)
{
    int64_t start = h_now_ms(), deadline = start + timeout_ms;
    char *v = NULL;

    do {
        free(v);
        v = ls_val(adm, lane, server, col);
        if (v && strcmp(v, want) == 0) {
            free(v);
            return (long)(h_now_ms() - start);
        }
        h_sleep_ms(20);
    } while (h_now_ms() < deadline);
    print_error("SHOW LANE SERVERS: %s/%s %s is %s after %d ms, wanted %s\n", lane, server, col, v ? v : "(none)",
                timeout_ms, want);
    free(v);
    return -1;
}

/* "t" or "f": where the statement ran (pg_is_in_recovery() in its result's first column). */
static void expect1(PGconn *c, const char *sql, const char *want)
{
    char *v = h_query1(c, sql);

    if (!v || strcmp(v, want) != 0)
        fail_msg("[%s] gave %s, wanted %s: %s", sql, v ? v : "(error)", want, PQerrorMessage(c));
    free(v);
}

/* Runs a multi-statement transaction given as separate Queries; the value of the one query that
 * returns a row (where_col: the result of `probe`). */
static void expect_tx(PGconn *c, const char *begin, const char *probe, const char *want)
{
    assert_int_equal(h_exec(c, begin), 0);
    expect1(c, probe, want);
    assert_int_equal(h_exec(c, "COMMIT"), 0);
}

/* Both servers' roles are known and the replica is up for lane. */
static void replica_ready(PGconn *adm, const char *lane)
{
    assert_true(ls_wait(adm, lane, "replica", "role", "replica", 4 * INTERVAL_MS + SLACK_MS) >= 0);
    assert_true(ls_wait(adm, lane, "primary", "role", "primary", 4 * INTERVAL_MS + SLACK_MS) >= 0);
    assert_true(ls_wait(adm, lane, "replica", "state", "up", 4 * INTERVAL_MS + SLACK_MS) >= 0);
}

/* Read-only autocommit statements of a replica lane run on the replica; writes, read-write
 * transactions and whatever the grammar cannot prove read-only run on the primary; nothing fails. */
static void test_reads_on_replica_writes_on_primary(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *c;

    replica_ready(adm, "rep");
    c = h_connect_app_ok(&g_lane, "rep");
    for (int i = 0; i < 20; i++) {
        char sql[128];

        expect1(c, "SELECT pg_is_in_recovery()", "t");
        snprintf(sql, sizeof sql, "INSERT INTO events (note) VALUES ('w%d') RETURNING pg_is_in_recovery()", i);
        expect1(c, sql, "f");
        expect1(c, "SELECT pg_is_in_recovery() FROM events LIMIT 1 FOR UPDATE", "f");
        expect1(c, "SELECT pg_is_in_recovery() WHERE nextval('events_id_seq') > 0", "f");
        expect1(c, "SELECT where_am_i()", "f");          /* a function pglane does not know */
        expect1(c, "WITH w AS (INSERT INTO events (note) VALUES ('cte') RETURNING id) "
                   "SELECT pg_is_in_recovery() FROM w", "f");
        expect_tx(c, "BEGIN", "SELECT pg_is_in_recovery()", "f");   /* a read-write transaction */
        /* the extended protocol: a Parse/Bind/Execute/Sync of a read */
        PGresult *r = PQexecParams(c, "SELECT pg_is_in_recovery() AND $1::int = 1", 1, NULL,
                                   (const char *const[]){ "1" }, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_string_equal(PQgetvalue(r, 0, 0), "t");
        PQclear(r);
    }
    PQfinish(c);
    /* the default lane (the primary alone) is untouched */
    c = h_connect_app_ok(&g_lane, "main");
    expect1(c, "SELECT pg_is_in_recovery()", "f");
    PQfinish(c);
    /* SHOW LANE SERVERS counted both kinds; /metrics has them per server */
    char *reads = ls_val(adm, "rep", "replica", "reads"), *writes = ls_val(adm, "rep", "primary", "writes");
    assert_non_null(reads);
    assert_non_null(writes);
    assert_true(atol(reads) >= 40);
    assert_true(atol(writes) >= 100);
    free(reads);
    free(writes);
    assert_true(h_metric_try(g_mport, "pglane_lane_server_transactions_total{lane=\"rep\",server=\"replica\",kind=\"read\"}",
                             5000) >= 40);
    /* as the worker that serves /metrics sees it: every worker follows the checking worker's news */
    assert_int_equal(h_metric_wait(g_mport, "pglane_lane_server_state{lane=\"rep\",server=\"replica\",state=\"up\"}",
                                   1, 2 * INTERVAL_MS + SLACK_MS), 1);
    PQfinish(adm);
    h_pass();
}

/* The lane's size caps its server connections across its servers: in lane one (size 1), a write
 * waits while a read holds the lane's only connection on the replica, and runs on the primary after. */
static void test_size_caps_all_servers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *c1, *c2;
    PGconn *r = h_pg_super(&g_replica, H_DB), *p = h_pg_super(&g_pg, H_DB);

    assert_non_null(r);
    assert_non_null(p);
    replica_ready(adm, "one");
    c1 = h_connect_app_ok(&g_lane, "one");
    c2 = h_connect_app_ok(&g_lane, "one");
    assert_int_equal(PQsendQuery(c1, "SELECT pg_is_in_recovery() FROM pg_sleep(1.5)"), 1);
    assert_int_equal(h_pg_wait_long(r, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                       "AND query LIKE 'SELECT pg_is_in_recovery() FROM pg_sleep%'", 1, 5000), 1);
    assert_int_equal(PQsendQuery(c2, "INSERT INTO events (note) VALUES ('one') RETURNING pg_is_in_recovery()"), 1);
    assert_true(ls_wait(adm, "one", "primary", "clients_waiting", "1", SLACK_MS) >= 0);
    /* no connection of lane one on the primary while the read runs */
    assert_int_equal(h_pg_long(p, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND "
                                  "query LIKE 'INSERT INTO events (note) VALUES (''one'')%'"), 0);
    assert_int_equal(h_wait_result(c2, 5000 + SLACK_MS), 0);
    assert_int_equal(h_wait_result(c1, SLACK_MS), 0);
    PGresult *res = PQgetResult(c2);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "f");
    PQclear(res);
    while ((res = PQgetResult(c2)) != NULL)
        PQclear(res);
    res = PQgetResult(c1);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    while ((res = PQgetResult(c1)) != NULL)
        PQclear(res);
    PQfinish(c1);
    PQfinish(c2);
    PQfinish(r);
    PQfinish(p);
    PQfinish(adm);
    h_pass();
}

/* BEGIN READ ONLY / START TRANSACTION READ ONLY / SET TRANSACTION READ ONLY transactions run on the
 * replica; a route with read_only = trust sends transactions whose first statement reads there too,
 * and a write in one gets PostgreSQL's 25006 with pglane's HINT naming the lane and the route. */
static void test_read_only_transactions(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *c;

    replica_ready(adm, "rep");
    c = h_connect_app_ok(&g_lane, "rep");
    expect_tx(c, "BEGIN READ ONLY", "SELECT pg_is_in_recovery()", "t");
    expect_tx(c, "START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", "SELECT pg_is_in_recovery()", "t");
    assert_int_equal(h_exec(c, "BEGIN"), 0);
    assert_int_equal(h_exec(c, "SET TRANSACTION READ ONLY"), 0);
    expect1(c, "SELECT pg_is_in_recovery()", "t");
    assert_int_equal(h_exec(c, "COMMIT"), 0);
    expect_tx(c, "BEGIN", "SELECT pg_is_in_recovery()", "f");      /* not trusted: the primary */
    PQfinish(c);

    c = h_connect_app_ok(&g_lane, "trusted");
    expect_tx(c, "BEGIN", "SELECT pg_is_in_recovery()", "t");
    assert_int_equal(h_exec(c, "BEGIN"), 0);
    expect1(c, "SELECT pg_is_in_recovery()", "t");
    PGresult *r = PQexec(c, "INSERT INTO events (note) VALUES ('on a standby')");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "25006");
    const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
    assert_non_null(hint);
    if (!strstr(hint, "lane \"rep\"") || !strstr(hint, "route trusted") || !strstr(hint, "\"replica\""))
        fail_msg("hint: %s", hint);
    PQclear(r);
    assert_int_equal(h_exec(c, "ROLLBACK"), 0);
    /* a write as the first statement goes to the primary even on a trusted route */
    expect1(c, "INSERT INTO events (note) VALUES ('trusted write') RETURNING pg_is_in_recovery()", "f");
    PQfinish(c);
    PQfinish(adm);
    h_pass();
}

/* Replay paused on the replica while the primary writes: the replica becomes lagging for lane rep
 * within max_replica_lag + 2 intervals and its reads go to the primary; resumed, it takes them again.
 * Lane strict (replica_fallback = error) refuses them meanwhile. */
static void test_lagging_replica_falls_back(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *c, *s, *q;
    PGconn *r = h_pg_super(&g_replica, H_DB), *p = h_pg_super(&g_pg, H_DB);
    int64_t paused;
    long took;

    assert_non_null(r);
    assert_non_null(p);
    replica_ready(adm, "rep");
    c = h_connect_app_ok(&g_lane, "rep");
    s = h_connect_app_ok(&g_lane, "strict");
    q = h_connect_app_ok(&g_lane, "queued");
    expect1(c, "SELECT pg_is_in_recovery()", "t");
    expect1(s, "SELECT pg_is_in_recovery()", "t");
    expect1(q, "SELECT pg_is_in_recovery()", "t");
    /* A quiet primary: the replica's last replayed transaction committed more than max_replica_lag
     * + 2 intervals ago (or none since it started: alone, this test runs first). The write below is
     * the first after the quiet time; the checks just before it found the replica caught up, so it
     * lags from the write on, not from the old transaction. */
    char quiet[200];
    snprintf(quiet, sizeof quiet, "SELECT coalesce(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) "
                                  "* 1000 > %d, true)::int", MAX_LAG_MS + 2 * INTERVAL_MS);
    assert_int_equal(h_pg_wait_long(r, quiet, 1, MAX_LAG_MS + 2 * INTERVAL_MS + SLACK_MS), 1);
    int64_t before = h_now_ms();
    assert_int_equal(h_exec(r, "SELECT pg_wal_replay_pause()"), 0);
    assert_int_equal(h_exec(p, "INSERT INTO events (note) VALUES ('while paused')"), 0);
    paused = h_now_ms();
    took = ls_wait(adm, "rep", "replica", "state", "lagging", MAX_LAG_MS + 2 * INTERVAL_MS + SLACK_MS);
    assert_true(took >= 0);
    print_message("replica lagging for lane rep %lld ms after the write (max_replica_lag %d ms, interval %d ms)\n",
                  (long long)(h_now_ms() - paused), MAX_LAG_MS, INTERVAL_MS);
    /* not before the write could be max_replica_lag old: the last check that saw the replica caught up
     * was at most an interval before the write (two, for a late check) */
    assert_true(h_now_ms() - before >= MAX_LAG_MS - 2 * INTERVAL_MS);
    for (int i = 0; i < 10; i++)
        expect1(c, "SELECT pg_is_in_recovery()", "f");
    /* replica_fallback = error: the client gets 57P03 */
    assert_true(ls_wait(adm, "strict", "replica", "state", "lagging", SLACK_MS) >= 0);
    assert_string_equal(h_exec_sqlstate(s, "SELECT pg_is_in_recovery()"), "57P03");
    /* ... and the connection stays usable: a write runs on the primary */
    expect1(s, "INSERT INTO events (note) VALUES ('strict') RETURNING pg_is_in_recovery()", "f");
    PQfinish(s);
    /* replica_fallback = queue: the read waits while the replica lags */
    assert_true(ls_wait(adm, "queued", "replica", "state", "lagging", SLACK_MS) >= 0);
    assert_int_equal(PQsendQuery(q, "SELECT pg_is_in_recovery()"), 1);
    assert_int_equal(h_wait_result(q, 2 * INTERVAL_MS + 1000), -1);   /* no answer while it lags */
    char *log = h_pglane_log(&g_lane);
    assert_non_null(strstr(log, "lane rep: no replica is eligible for reads: reads go to the primary"));
    free(log);
    assert_int_equal(h_exec(r, "SELECT pg_wal_replay_resume()"), 0);
    assert_true(ls_wait(adm, "rep", "replica", "state", "up", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    expect1(c, "SELECT pg_is_in_recovery()", "t");
    /* the queued read ran on the replica once it was eligible again */
    assert_int_equal(h_wait_result(q, 2 * INTERVAL_MS + SLACK_MS), 0);
    PGresult *qr = PQgetResult(q);
    assert_int_equal(PQresultStatus(qr), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(qr, 0, 0), "t");
    PQclear(qr);
    while ((qr = PQgetResult(q)) != NULL)
        PQclear(qr);
    PQfinish(q);
    PQfinish(c);
    PQfinish(r);
    PQfinish(p);
    PQfinish(adm);
    h_pass();
}

/*
 * read_your_writes: 1,000 times "insert a row, read it back in the next transaction" through lane ryw
 * never misses; the same through lane norw (off) while the replica's replay is paused misses (the test
 * can fail); and with replay paused, lane ryw still never misses (its reads go to the primary).
 */
static int ryw_round(PGconn *c, int v, int *on_replica)
{
    char sql[160];

    snprintf(sql, sizeof sql, "INSERT INTO ryw (v) VALUES (%d)", v);
    assert_int_equal(h_exec(c, sql), 0);
    snprintf(sql, sizeof sql, "SELECT count(*)::text || pg_is_in_recovery()::text FROM ryw WHERE v = %d", v);
    char *got = h_query1(c, sql);
    assert_non_null(got);
    int hit = got[0] == '1';
    *on_replica += strstr(got, "true") != NULL;
    free(got);
    return hit;
}

static void test_read_your_writes(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *r = h_pg_super(&g_replica, H_DB), *c;
    int misses = 0, on_replica = 0, v = 0;

    assert_non_null(r);
    replica_ready(adm, "ryw");
    c = h_connect_app_ok(&g_lane, "ryw");
    for (int i = 0; i < 1000; i++)
        misses += !ryw_round(c, ++v, &on_replica);
    print_message("read_your_writes on: %d misses in 1000, %d reads on the replica\n", misses, on_replica);
    assert_int_equal(misses, 0);
    /* reads with no write of the client before them still go to the replica */
    PQfinish(c);
    c = h_connect_app_ok(&g_lane, "ryw");
    expect1(c, "SELECT pg_is_in_recovery()", "t");
    /* once the replica replayed the client's write, its reads are the replica's again */
    assert_int_equal(h_exec(c, "INSERT INTO ryw (v) VALUES (-1)"), 0);
    int64_t deadline = h_now_ms() + 4 * INTERVAL_MS + SLACK_MS;
    char *w = NULL;
    do {
        free(w);
        w = h_query1(c, "SELECT pg_is_in_recovery()");
        assert_non_null(w);
    } while (strcmp(w, "t") != 0 && h_now_ms() < deadline && (h_sleep_ms(20), 1));
    assert_string_equal(w, "t");
    free(w);

    /* replay paused: off misses, on does not */
    replica_ready(adm, "norw");
    assert_int_equal(h_exec(r, "SELECT pg_wal_replay_pause()"), 0);
    PGconn *off = h_connect_app_ok(&g_lane, "norw");
    int off_misses = 0, off_replica = 0;
    for (int i = 0; i < 1000 && off_misses == 0; i++)
        off_misses += !ryw_round(off, ++v, &off_replica);
    print_message("read_your_writes off, replay paused: %d miss(es), %d reads on the replica\n", off_misses,
                  off_replica);
    assert_true(off_misses >= 1);
    misses = 0;
    on_replica = 0;
    for (int i = 0; i < 100; i++)
        misses += !ryw_round(c, ++v, &on_replica);
    assert_int_equal(misses, 0);
    assert_int_equal(h_exec(r, "SELECT pg_wal_replay_resume()"), 0);
    PQfinish(off);
    PQfinish(c);
    PQfinish(r);
    PQfinish(adm);
    h_pass();
}

/* The replica stopped: the lane's clients keep working through the fallback; started again, it
 * takes the reads again. */
static void test_replica_stopped_and_started(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *c;

    replica_ready(adm, "rep");
    c = h_connect_app_ok(&g_lane, "rep");
    expect1(c, "SELECT pg_is_in_recovery()", "t");
    assert_int_equal(h_pg_ctl(&g_replica, "stop"), 0);
    /* every statement succeeds, on the primary, before and after pglane sees the replica down */
    int64_t deadline = h_now_ms() + FAILURES * INTERVAL_MS + SLACK_MS;
    int n = 0;
    do {
        char *v = h_query1(c, "SELECT pg_is_in_recovery()");
        if (!v)
            fail_msg("a read failed while the replica was stopped: %s", PQerrorMessage(c));
        assert_string_equal(v, "f");
        free(v);
        n++;
        expect1(c, "INSERT INTO events (note) VALUES ('replica down') RETURNING pg_is_in_recovery()", "f");
    } while (h_now_ms() < deadline && (h_sleep_ms(20), 1));
    assert_true(ls_wait(adm, "rep", "replica", "state", "down", SLACK_MS) >= 0);
    assert_true(n > 5);
    assert_int_equal(h_pg_ctl(&g_replica, "start"), 0);
    assert_true(ls_wait(adm, "rep", "replica", "state", "up", 2 * INTERVAL_MS + SLACK_MS) >= 0);
    deadline = h_now_ms() + SLACK_MS;
    char *v = NULL;
    do {
        free(v);
        v = h_query1(c, "SELECT pg_is_in_recovery()");
        assert_non_null(v);
    } while (strcmp(v, "t") != 0 && h_now_ms() < deadline && (h_sleep_ms(20), 1));
    assert_string_equal(v, "t");
    free(v);
    PQfinish(c);
    PQfinish(adm);
    h_pass();
}

/* A report on the replica cancelled by a conflict with recovery reaches the client as PostgreSQL sent
 * it (40001) and is counted for the lane and the server. */
static void test_recovery_conflict_counted(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *r = h_pg_super(&g_replica, H_DB), *c;

    assert_non_null(r);
    replica_ready(adm, "rep");
    assert_int_equal(h_pg_exec(&g_pg, H_DB, "CREATE TABLE conflict_t AS SELECT 1 AS a;"
                                            "ALTER TABLE conflict_t OWNER TO " H_USER), 0);
    assert_int_equal(h_exec(r, "ALTER SYSTEM SET max_standby_streaming_delay = '100ms'"), 0);
    assert_int_equal(h_exec(r, "SELECT pg_reload_conf()"), 0);
    assert_int_equal(h_pg_wait_replay(&g_replica, &g_pg, 10000), 0);
    c = h_connect_app_ok(&g_lane, "rep");
    assert_int_equal(PQsendQuery(c, "SELECT pg_sleep(20), pg_is_in_recovery() FROM conflict_t"), 1);
    assert_int_equal(h_pg_wait_long(r, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                       "AND query LIKE 'SELECT pg_sleep(20)%'", 1, 5000), 1);
    assert_int_equal(h_pg_exec(&g_pg, H_DB, "DROP TABLE conflict_t"), 0);
    assert_int_equal(h_wait_result(c, 15000), 0);
    PGresult *res = PQgetResult(c);
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    assert_non_null(st);
    if (strcmp(st, "40001") != 0 && strcmp(st, "40P01") != 0)
        fail_msg("sqlstate %s: %s", st, PQresultErrorMessage(res));
    assert_non_null(strstr(PQresultErrorMessage(res), "conflict with recovery"));
    PQclear(res);
    while ((res = PQgetResult(c)) != NULL)
        PQclear(res);
    assert_true(ls_wait(adm, "rep", "replica", "conflicts", "1", SLACK_MS) >= 0);
    assert_int_equal(h_metric_try(g_mport, "pglane_lane_replica_conflicts_total{lane=\"rep\",server=\"replica\"}", 5000), 1);
    /* the client goes on */
    expect1(c, "SELECT pg_is_in_recovery()", "t");
    assert_int_equal(h_exec(r, "ALTER SYSTEM RESET max_standby_streaming_delay"), 0);
    assert_int_equal(h_exec(r, "SELECT pg_reload_conf()"), 0);
    PQfinish(c);
    PQfinish(r);
    PQfinish(adm);
    h_pass();
}

/* Replaces from with to in pglane's ini file and reloads it; waits for the reload's log line. */
static void reload_with(const char *from, const char *to)
{
    char *text = h_read_file(g_lane.conf_path), *at, tmp[H_PATH + 8], *log;
    size_t before, n;

    assert_non_null(text);
    at = strstr(text, from);
    assert_non_null(at);
    n = strlen(text) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    log = h_pglane_log(&g_lane);
    before = strlen(log);
    free(log);
    snprintf(tmp, sizeof tmp, "%s.new", g_lane.conf_path);
    assert_int_equal(h_write_file(tmp, out), 0);
    assert_int_equal(rename(tmp, g_lane.conf_path), 0);
    assert_int_equal(h_pglane_signal(&g_lane, SIGHUP), 0);
    int64_t deadline = h_now_ms() + 10000;
    int done = 0, want = h_workers() > 1 ? h_workers() : 1;   /* each worker reloads and logs it */
    while (!done && h_now_ms() < deadline) {
        int seen = 0;

        log = h_pglane_log(&g_lane);
        for (const char *p = strlen(log) > before ? log + before : ""; (p = strstr(p, "reload: ")); p++)
            seen++;
        done = seen >= want;
        if (!done)
            h_sleep_ms(20);
        free(log);
    }
    assert_true(done);
    free(out);
    free(text);
}

/* A reload that changes a lane's size keeps it (its pools go on); one that changes its server list
 * replaces it; both lanes keep sending reads to the replica and writes to the primary. */
static void test_reload(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *c, *n;

    replica_ready(adm, "rep");
    c = h_connect_app_ok(&g_lane, "rep");
    n = h_connect_app_ok(&g_lane, "norw");
    expect1(c, "SELECT pg_is_in_recovery()", "t");
    expect1(n, "SELECT pg_is_in_recovery()", "t");
    reload_with("[lane.rep]\nserver = replica, primary\nsize = 4\n", "[lane.rep]\nserver = replica, primary\nsize = 3\n");
    reload_with("[lane.norw]\nserver = replica, primary\n", "[lane.norw]\nserver = primary, replica\n");
    char *log = h_pglane_log(&g_lane);
    assert_non_null(strstr(log, "1 new or changed lane(s)"));
    free(log);
    assert_int_equal(h_show_val(adm, "SHOW LANES", "rep", "size"), 3);
    PGresult *r = PQexec(adm, "SHOW CONFIG");
    int found = 0;
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
        found += strcmp(PQgetvalue(r, i, 0), "lane.norw.server") == 0 && strcmp(PQgetvalue(r, i, 1), "primary, replica") == 0;
    PQclear(r);
    assert_int_equal(found, 1);
    replica_ready(adm, "norw");
    for (int i = 0; i < 5; i++) {
        expect1(c, "SELECT pg_is_in_recovery()", "t");
        expect1(n, "SELECT pg_is_in_recovery()", "t");
        expect1(c, "INSERT INTO events (note) VALUES ('reloaded') RETURNING pg_is_in_recovery()", "f");
        expect1(n, "INSERT INTO events (note) VALUES ('reloaded') RETURNING pg_is_in_recovery()", "f");
    }
    PQfinish(c);
    PQfinish(n);
    PQfinish(adm);
    h_pass();
}

/* The primary stopped and the replica promoted: writes through pglane succeed within 5 s, no restart. */
static void test_failover(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console_ok(&g_lane), *c;

    replica_ready(adm, "rep");
    c = h_connect_app_ok(&g_lane, "rep");
    expect1(c, "INSERT INTO events (note) VALUES ('before') RETURNING pg_is_in_recovery()", "f");
    assert_int_equal(h_pg_ctl(&g_pg, "stop"), 0);
    assert_int_equal(h_pg_promote(&g_replica), 0);
    int64_t promoted = h_now_ms(), ok_at = 0;
    while (h_now_ms() - promoted < 5000) {
        PGconn *w = h_connect(&g_lane, "application_name=rep");
        if (w && PQstatus(w) == CONNECTION_OK) {
            char *v = h_query1(w, "INSERT INTO events (note) VALUES ('after') RETURNING pg_is_in_recovery()");
            if (v && strcmp(v, "f") == 0)
                ok_at = h_now_ms();
            free(v);
        }
        PQfinish(w);
        if (ok_at)
            break;
        h_sleep_ms(50);
    }
    if (!ok_at)
        fail_msg("no write succeeded within 5 s of the promotion");
    print_message("a write succeeded %lld ms after the promotion\n", (long long)(ok_at - promoted));
    /* the client connected before the failover writes there too */
    int64_t deadline = h_now_ms() + SLACK_MS;
    char *v = NULL;
    do {
        free(v);
        v = h_query1(c, "INSERT INTO events (note) VALUES ('old client') RETURNING pg_is_in_recovery()");
    } while (!v && h_now_ms() < deadline && (h_sleep_ms(50), 1));
    assert_non_null(v);
    assert_string_equal(v, "f");
    free(v);
    assert_true(ls_wait(adm, "rep", "replica", "role", "primary", SLACK_MS) >= 0);
    assert_true(h_pglane_alive(&g_lane));
    PQfinish(c);
    /* the old primary back for a clean teardown */
    assert_int_equal(h_pg_ctl(&g_pg, "start"), 0);
    PQfinish(adm);
    h_pass();
}

H_CLEAN_EXIT_TEST(test_clean_exit, &g_lane)

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_reads_on_replica_writes_on_primary),
        H_TEST(test_read_only_transactions),
        H_TEST(test_size_caps_all_servers),
        H_TEST(test_lagging_replica_falls_back),
        H_TEST(test_read_your_writes),
        H_TEST(test_replica_stopped_and_started),
        H_TEST(test_recovery_conflict_counted),
        H_TEST(test_reload),
        H_TEST(test_failover),
        H_TEST(test_clean_exit),
    };
    return H_RUN_GROUP("integration_replicas", tests, .pg = &g_pg, .skip_direct = 1, .setup = fixtures,
                       .teardown = teardown);
}
