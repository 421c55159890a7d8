/*
 * Lanes issue, against real PostgreSQL through pglane (transaction pooling): every route criterion
 * puts a transaction on the lane whose startup settings (statement_timeout, lock_timeout, work_mem,
 * set.<guc>) SHOW reports, also after RESET ALL; admission (analytics capped, OLTP never queues),
 * queue_timeout, reserve; BEGIN-first transactions; a client's SET does not reach the next client;
 * live reload (changed rule, broken file, changed lane settings); extended protocol routing.
 */
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static struct h_pg g_pg;
static char g_userlist[H_PATH];

#define U2 "lanes_u"
#define U2_PASSWORD "lanespass"
#define DB2 "lanesdb"

/* Lane values as PostgreSQL's SHOW prints them. */
struct lv {
    const char *st, *lt, *wm, *pw;
};
static const struct lv OLTP = { "2s", "200ms", "4MB", "2" };
static const struct lv ANALYTICS = { "10min", "1s", "256MB", "1" };
static const struct lv ANALYTICS_128 = { "10min", "1s", "128MB", "1" };
static const char *const GUCS[] = { "statement_timeout", "lock_timeout", "work_mem",
                                    "max_parallel_workers_per_gather" };

#define COLS "current_setting('statement_timeout'), current_setting('lock_timeout'), " \
             "current_setting('work_mem'), current_setting('max_parallel_workers_per_gather')"

static int fixtures(void)
{
    if (h_pg_exec(&g_pg, H_DB,
                  "CREATE TABLE big_table (id int PRIMARY KEY, v int);"
                  "INSERT INTO big_table SELECT i, i FROM generate_series(1, 100) i;"
                  "CREATE TABLE small_t (id serial PRIMARY KEY, v int);"
                  "INSERT INTO small_t (v) VALUES (0);"
                  "ALTER TABLE big_table OWNER TO " H_USER ";"
                  "ALTER TABLE small_t OWNER TO " H_USER) != 0)
        return -1;
    if (h_pg_exec(&g_pg, "postgres", "CREATE ROLE " U2 " LOGIN PASSWORD '" U2_PASSWORD "'") != 0 ||
        h_pg_exec(&g_pg, "postgres", "CREATE DATABASE " DB2 " OWNER " H_USER) != 0)
        return -1;
    snprintf(g_userlist, sizeof g_userlist, "%s/lanes-userlist.txt", h_scratch_dir());
    if (h_write_file(g_userlist, "\"" H_USER "\" \"" H_PASSWORD "\"\n"
                                 "\"" U2 "\" \"" U2_PASSWORD "\"\n") != 0 ||
        chmod(g_userlist, 0600) != 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

/*
 * A config: lanes oltp (default, size `osize`) and analytics (size `asize`, queue_timeout `aqueue`) with
 * the lane settings of the issue, `analytics_extra` appended to [lane.analytics] (may be ""), then
 * `rest` (more lanes and the routes).
 */
static void lanes_conf(char *buf, size_t n, int osize, int asize, const char *aqueue, const char *work_mem,
                       const char *analytics_extra, const char *rest)
{
    snprintf(buf, n,
             "[pglane]\n"
             "listen = 127.0.0.1:@PORT@\n"
             "auth_type = md5\n"
             "auth_file = %s\n"
             "pool_mode = transaction\n"
             "default_lane = oltp\n"
             "admin_users = " H_USER "\n"
             "log_level = info\n"
             "\n[server.pg]\nhost = 127.0.0.1\nport = @PGPORT@\n"
             "\n[lane.oltp]\nserver = pg\nsize = %d\nqueue_timeout = 30s\n"
             "statement_timeout = 2s\nlock_timeout = 200ms\nwork_mem = 4MB\n"
             "\n[lane.analytics]\nserver = pg\nsize = %d\nqueue_timeout = %s\n"
             "statement_timeout = 10min\nlock_timeout = 1s\nwork_mem = %s\n"
             "set.max_parallel_workers_per_gather = 1\n%s"
             "\n%s",
             g_userlist, osize, asize, aqueue, work_mem, analytics_extra, rest);
}

static PGconn *connect_as(const struct h_pglane *l, const char *user, const char *password,
                          const char *db, const char *app)
{
    char ci[512];

    snprintf(ci, sizeof ci,
             "host=127.0.0.1 port=%d user=%s password=%s dbname=%s application_name=%s "
             "connect_timeout=5", l->port, user, password, db, app);
    return PQconnectdb(ci);
}

static PGconn *app_client(const struct h_pglane *l, const char *app)
{
    return connect_as(l, H_USER, H_PASSWORD, H_DB, app);
}

static PGconn *console(const struct h_pglane *l)
{
    return connect_as(l, H_USER, H_PASSWORD, "pglane", "console");
}

static void check_values(const char *what, const char *const got[4], const struct lv *want)
{
    const char *w[4] = { want->st, want->lt, want->wm, want->pw };
    for (int i = 0; i < 4; i++) {
        if (!got[i] || strcmp(got[i], w[i]) != 0)
            print_error("%s: %s is %s, want %s\n", what, GUCS[i], got[i] ? got[i] : "(error)", w[i]);
        assert_non_null(got[i]);
        assert_string_equal(got[i], w[i]);
    }
}

/* BEGIN; [first;] SHOW each setting; COMMIT — the values must be want's. */
static void expect_tx(PGconn *c, const char *first, const struct lv *want, const char *what)
{
    char *got[4] = { 0 };

    assert_int_equal(h_exec(c, "BEGIN"), 0);
    if (first)
        assert_int_equal(h_exec(c, first), 0);
    for (int i = 0; i < 4; i++) {
        char sql[96];
        snprintf(sql, sizeof sql, "SHOW %s", GUCS[i]);
        got[i] = h_query1(c, sql);
    }
    assert_int_equal(h_exec(c, "COMMIT"), 0);
    check_values(what, (const char *const *)got, want);
    for (int i = 0; i < 4; i++)
        free(got[i]);
}

/* One statement returning the four settings (COLS) as its first row. */
static void expect_stmt(PGconn *c, const char *sql, const struct lv *want, const char *what)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1 || PQnfields(r) < 4)
        print_error("%s: %s: %s\n", what, sql, PQerrorMessage(c));
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_true(PQntuples(r) >= 1 && PQnfields(r) >= 4);
    const char *got[4];
    for (int i = 0; i < 4; i++)
        got[i] = PQgetvalue(r, 0, i);
    check_values(what, got, want);
    PQclear(r);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Count of `needle` in the pglane log. */
static int log_count(const struct h_pglane *l, const char *needle)
{
    char *log = h_pglane_log(l);
    int n = count_of(log, needle);
    free(log);
    return n;
}

/* Polls the log until `needle` occurs more than `before` times; 0, or -1 after timeout_ms. */
static int wait_log(const struct h_pglane *l, const char *needle, int before, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    while (h_now_ms() < deadline) {
        if (log_count(l, needle) > before)
            return 0;
        usleep(20000);
    }
    return -1;
}

static long pg_sleepers(PGconn *super, const char *app_like)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
             "query LIKE 'SELECT pg_sleep%%' AND application_name LIKE '%s'", app_like);
    return h_pg_long(super, sql);
}

/* ------------------------------------------------------------------------------------------ */

static const char ROUTES_A[] =
    "[route.addr_miss]\nclient_addr = 10.0.0.0/8\nlane = analytics\n"
    "[route.reports]\napplication_name = report-*\nlane = analytics\n"
    "[route.by_user]\nuser = " U2 "\nlane = analytics\n"
    "[route.by_db]\ndatabase = " DB2 "\nlane = analytics\n"
    "[route.hinted]\nhint = yes\nlane = analytics\n"
    "[route.inserts]\nkind = insert\nlane = analytics\n"
    "[route.big]\ntables = big_table\nlane = analytics\n"
    "[route.rx]\nsql = (?i)\\bmonthly_report\\b\nlane = analytics\n";

static void start_a(struct h_pglane *l)
{
    char conf[8192];
    lanes_conf(conf, sizeof conf, 4, 4, "30s", "256MB", "", ROUTES_A);
    assert_int_equal(h_pglane_start(l, &g_pg, conf), 0);
}

static void test_identity_criteria(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    start_a(&l);

    /* default lane: nothing matches (and 127.0.0.1 is not in 10.0.0.0/8) */
    PGconn *c = app_client(&l, "web");
    H_ASSERT_CONNECTED(c);
    expect_tx(c, NULL, &OLTP, "default lane (app web)");
    expect_stmt(c, "SELECT " COLS, &OLTP, "default lane, single statement");
    PQfinish(c);

    /* application_name glob */
    c = app_client(&l, "report-monthly");
    H_ASSERT_CONNECTED(c);
    expect_tx(c, NULL, &ANALYTICS, "application_name report-monthly");
    expect_stmt(c, "SELECT " COLS, &ANALYTICS, "application_name report-monthly, single statement");
    PQfinish(c);
    c = app_client(&l, "reporter");      /* does not match report-* */
    H_ASSERT_CONNECTED(c);
    expect_tx(c, NULL, &OLTP, "application_name reporter");
    PQfinish(c);

    /* user */
    c = connect_as(&l, U2, U2_PASSWORD, H_DB, "web");
    H_ASSERT_CONNECTED(c);
    expect_tx(c, NULL, &ANALYTICS, "user " U2);
    expect_stmt(c, "SELECT " COLS, &ANALYTICS, "user " U2 ", single statement");
    PQfinish(c);

    /* database */
    c = connect_as(&l, H_USER, H_PASSWORD, DB2, "web");
    H_ASSERT_CONNECTED(c);
    char *db = h_query1(c, "SELECT current_database()");
    assert_non_null(db);
    assert_string_equal(db, DB2);
    free(db);
    expect_tx(c, NULL, &ANALYTICS, "database " DB2);
    PQfinish(c);

    /* The default lane again, after the analytics clients (no cached decision leaks across identities). */
    c = app_client(&l, "web");
    H_ASSERT_CONNECTED(c);
    expect_tx(c, NULL, &OLTP, "default lane again");
    PQfinish(c);

    h_pglane_stop(&l);

    /* client_addr 127.0.0.1/32 matches (the 10.0.0.0/8 route above did not). */
    char conf[8192];
    lanes_conf(conf, sizeof conf, 4, 4, "30s", "256MB", "",
               "[route.addr_miss]\nclient_addr = 10.0.0.0/8\nlane = oltp\n"
               "[route.local]\nclient_addr = 127.0.0.1/32\nlane = analytics\n");
    struct h_pglane l2;
    assert_int_equal(h_pglane_start(&l2, &g_pg, conf), 0);
    c = app_client(&l2, "web");
    H_ASSERT_CONNECTED(c);
    expect_tx(c, NULL, &ANALYTICS, "client_addr 127.0.0.1/32");
    expect_stmt(c, "SELECT " COLS, &ANALYTICS, "client_addr 127.0.0.1/32, single statement");
    PQfinish(c);
    h_pass();
}

/* A raw protocol client from source address `src` (libpq cannot choose one), trust auth. */
static int raw_client(const char *src, int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint8_t buf[256];

    assert_true(fd >= 0);
    assert_int_equal(inet_pton(AF_INET, src, &a.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    a.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    size_t n = h_raw_startup(buf, sizeof buf, 196608, H_USER, H_DB);
    assert_int_equal(h_raw_send(fd, buf, n), 0);
    for (;;) {
        uint8_t *body = NULL;
        uint32_t len = 0;
        int t = h_raw_read_msg(fd, 5000, &body, &len);
        free(body);
        assert_true(t >= 0 && t != 'E');
        if (t == 'Z')
            return fd;
    }
}

/* Simple query on a raw client; the four COLS of its first DataRow checked against want. */
static void raw_expect(int fd, const char *sql, const struct lv *want, const char *what)
{
    uint8_t msg[1024];
    size_t l = strlen(sql) + 1;
    char vals[4][64] = { { 0 } };
    int rows = 0;

    assert_true(l + 5 <= sizeof msg);
    msg[0] = 'Q';
    uint32_t be = htonl((uint32_t)(l + 4));
    memcpy(msg + 1, &be, 4);
    memcpy(msg + 5, sql, l);
    assert_int_equal(h_raw_send(fd, msg, l + 5), 0);
    for (;;) {
        uint8_t *body = NULL;
        uint32_t len = 0;
        int t = h_raw_read_msg(fd, 5000, &body, &len);
        assert_true(t >= 0);
        if (t == 'E')
            print_error("%s: %s\n", what, h_error_field(body, len, 'M'));
        assert_int_not_equal(t, 'E');
        if (t == 'D' && rows++ == 0) {
            uint32_t off = 2;
            for (int i = 0; i < 4 && off + 4 <= len; i++) {
                uint32_t cl;
                memcpy(&cl, body + off, 4);
                cl = ntohl(cl);
                off += 4;
                snprintf(vals[i], sizeof vals[i], "%.*s", (int)(cl < 63 ? cl : 63), (const char *)body + off);
                off += cl;
            }
        }
        free(body);
        if (t == 'Z')
            break;
    }
    assert_true(rows >= 1);
    const char *got[4] = { vals[0], vals[1], vals[2], vals[3] };
    check_values(what, got, want);
}

/*
 * client_addr together with a statement criterion: the route decision (cached per identity and
 * fingerprint) must tell two client addresses apart. The route takes SELECTs from 127.0.0.2 only;
 * the clients connect from source addresses 127.0.0.1 and 127.0.0.2 (both loopback), same user,
 * database and (no) application_name.
 */
static void test_client_addr_and_statement(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[8192];

    lanes_conf(conf, sizeof conf, 4, 4, "30s", "256MB", "",
               "[route.second_loopback]\nclient_addr = 127.0.0.2/32\nkind = select\nlane = analytics\n"
               "[route.inserts]\nkind = insert\nlane = analytics\n");   /* every address needs statements */
    char *at = strstr(conf, "auth_type = md5\n"), full[8192];
    assert_non_null(at);
    snprintf(full, sizeof full, "%.*sauth_type = trust\n%s", (int)(at - conf), conf, at + strlen("auth_type = md5\n"));
    assert_int_equal(h_pglane_start(&l, &g_pg, full), 0);

    int one = raw_client("127.0.0.1", l.port), two = raw_client("127.0.0.2", l.port);
    /* a shape seen from 127.0.0.2 first: the route works */
    raw_expect(two, "SELECT " COLS " FROM big_table LIMIT 1", &ANALYTICS, "a SELECT from 127.0.0.2");
    raw_expect(one, "SELECT " COLS " FROM big_table LIMIT 1", &OLTP, "the same SELECT from 127.0.0.1 after 127.0.0.2");
    /* a shape seen from 127.0.0.1 first, then from 127.0.0.2: each address gets its own decision */
    raw_expect(one, "SELECT " COLS, &OLTP, "a SELECT from 127.0.0.1");
    raw_expect(two, "SELECT " COLS, &ANALYTICS, "the same SELECT from 127.0.0.2 after 127.0.0.1");
    close(one);
    close(two);
    h_pass();
}

static void test_statement_criteria(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    start_a(&l);
    PGconn *c = app_client(&l, "web");
    H_ASSERT_CONNECTED(c);

    /* kind = insert */
    expect_stmt(c, "INSERT INTO small_t (v) VALUES (1) RETURNING " COLS, &ANALYTICS, "kind insert");
    expect_stmt(c, "UPDATE small_t SET v = v WHERE id = 1 RETURNING " COLS, &OLTP, "kind update (no route)");
    expect_tx(c, "INSERT INTO small_t (v) VALUES (2)", &ANALYTICS, "BEGIN; INSERT");
    /* tables = big_table */
    expect_stmt(c, "SELECT " COLS " FROM big_table LIMIT 1", &ANALYTICS, "tables big_table");
    expect_stmt(c, "SELECT " COLS " FROM small_t LIMIT 1", &OLTP, "tables small_t (no route)");
    expect_tx(c, "SELECT count(*) FROM big_table", &ANALYTICS, "BEGIN; SELECT FROM big_table");
    /* sql regex */
    expect_stmt(c, "SELECT " COLS ", 1 AS monthly_report", &ANALYTICS, "sql regex");
    expect_stmt(c, "SELECT " COLS ", 1 AS weekly_report", &OLTP, "sql regex, no match");
    expect_tx(c, "SELECT 1 AS Monthly_Report", &ANALYTICS, "BEGIN; sql regex");
    /* hint = yes */
    expect_stmt(c, "SELECT " COLS " /* pglane lane=analytics */", &ANALYTICS, "hint analytics");
    expect_stmt(c, "SELECT " COLS, &OLTP, "same shape without hint");
    expect_stmt(c, "SELECT " COLS " /* pglane lane=oltp */", &OLTP, "hint naming another lane");
    expect_stmt(c, "-- pglane lane=analytics\nSELECT " COLS, &ANALYTICS, "line-comment hint");
    expect_stmt(c, "SELECT " COLS " /* pglane lane=analytics */", &ANALYTICS, "hint analytics again");
    expect_tx(c, "SELECT 1 /* pglane lane=analytics */", &ANALYTICS, "BEGIN; hinted");
    /* nothing matches */
    expect_tx(c, "SELECT 1", &OLTP, "BEGIN; SELECT 1 (default)");
    PQfinish(c);
    h_pass();
}

static void test_reset_all_keeps_lane_settings(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    start_a(&l);
    PGconn *c = app_client(&l, "report-x");
    H_ASSERT_CONNECTED(c);

    assert_int_equal(h_exec(c, "BEGIN"), 0);
    assert_int_equal(h_exec(c, "SET work_mem = '1MB'"), 0);
    assert_int_equal(h_exec(c, "SET statement_timeout = 0"), 0);
    char *v = h_query1(c, "SHOW work_mem");
    assert_string_equal(v, "1MB");
    free(v);
    assert_int_equal(h_exec(c, "RESET ALL"), 0);
    const char *after[4];
    char *got[4];
    for (int i = 0; i < 4; i++) {
        char sql[96];
        snprintf(sql, sizeof sql, "SHOW %s", GUCS[i]);
        after[i] = got[i] = h_query1(c, sql);
    }
    check_values("analytics after RESET ALL", after, &ANALYTICS);
    for (int i = 0; i < 4; i++)
        free(got[i]);
    assert_int_equal(h_exec(c, "COMMIT"), 0);
    expect_tx(c, NULL, &ANALYTICS, "analytics, next transaction");
    expect_tx(c, "RESET ALL", &ANALYTICS, "analytics, RESET ALL first");
    PQfinish(c);

    /* oltp: statement_timeout / lock_timeout differ from PostgreSQL's defaults */
    c = app_client(&l, "web");
    H_ASSERT_CONNECTED(c);
    expect_tx(c, "RESET ALL", &OLTP, "oltp after RESET ALL");
    expect_stmt(c, "SELECT " COLS, &OLTP, "oltp after RESET ALL, next transaction");
    PQfinish(c);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

static void test_admission(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[8192];
    enum { NREP = 6 };

    lanes_conf(conf, sizeof conf, 4, 2, "30s", "256MB", "",
               "[route.reports]\napplication_name = report-*\nlane = analytics\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *super = h_pg_super(&g_pg, H_DB);
    assert_non_null(super);
    PGconn *adm = console(&l);
    H_ASSERT_CONNECTED(adm);

    PGconn *o[2];
    for (int i = 0; i < 2; i++) {
        o[i] = app_client(&l, "web");
        H_ASSERT_CONNECTED(o[i]);
        assert_int_equal(h_exec(o[i], "SELECT 1"), 0);   /* warms the oltp lane */
    }
    long waits_before = h_show_val(adm, "SHOW STATS", "oltp", "waits");
    long wmax_before = h_show_val(adm, "SHOW STATS", "oltp", "wait_max_ms");
    assert_true(waits_before >= 0 && wmax_before >= 0);

    PGconn *rep[NREP];
    for (int i = 0; i < NREP; i++) {
        char app[32];
        snprintf(app, sizeof app, "report-%d", i);
        rep[i] = app_client(&l, app);
        H_ASSERT_CONNECTED(rep[i]);
    }
    int64_t t0 = h_now_ms();
    for (int i = 0; i < NREP; i++)
        assert_int_equal(PQsendQuery(rep[i], "SELECT pg_sleep(2)"), 1);

    /* Analytics queues: 4 of the 6 wait (all 6 count as waiting while the first 2 servers open). */
    long aw = h_show_wait(adm, "SHOW LANES", "analytics", "clients_waiting", NREP - 2, 1500);
    if (aw != NREP - 2)
        print_error("analytics clients_waiting = %ld, want %d\n", aw, NREP - 2);
    assert_int_equal(aw, NREP - 2);

    /* 20 OLTP statements meanwhile: quick, and no queue wait in oltp. */
    long max_sleepers = 0, saw_analytics_waiting = 0;
    for (int i = 0; i < 20; i++) {
        int64_t s = h_now_ms();
        assert_int_equal(h_exec(o[i % 2], "UPDATE small_t SET v = v + 1 WHERE id = 1"), 0);
        int64_t took = h_now_ms() - s;
        if (took > 500)
            print_error("OLTP statement %d took %lld ms\n", i, (long long)took);
        assert_true(took <= 500);
        long ql = h_show_val(adm, "SHOW LANES", "oltp", "queue_length");
        long cw = h_show_val(adm, "SHOW LANES", "oltp", "clients_waiting");
        long lw = h_show_val(adm, "SHOW LANES", "oltp", "longest_wait_ms");
        if (ql != 0 || cw != 0 || lw != 0)
            print_error("oltp: queue_length %ld clients_waiting %ld longest_wait_ms %ld\n", ql, cw, lw);
        assert_int_equal(ql, 0);
        assert_int_equal(cw, 0);
        assert_int_equal(lw, 0);
        if (h_show_val(adm, "SHOW LANES", "analytics", "clients_waiting") > 0)
            saw_analytics_waiting++;
        long n = pg_sleepers(super, "report-%");
        if (n > max_sleepers)
            max_sleepers = n;
    }
    assert_true(saw_analytics_waiting > 0);
    assert_true(h_now_ms() - t0 < 2000);          /* all 20 finished while the first wave still ran */

    /* Reports drain two at a time: never more than 2 pg_sleep backends. */
    int done[NREP] = { 0 }, ndone = 0;
    int64_t deadline = h_now_ms() + 15000;
    while (ndone < NREP && h_now_ms() < deadline) {
        long n = pg_sleepers(super, "report-%");
        if (n > max_sleepers)
            max_sleepers = n;
        for (int i = 0; i < NREP; i++) {
            if (done[i])
                continue;
            assert_int_equal(PQconsumeInput(rep[i]), 1);
            if (PQisBusy(rep[i]))
                continue;
            PGresult *r;
            while ((r = PQgetResult(rep[i])) != NULL) {
                if (PQresultStatus(r) != PGRES_TUPLES_OK)
                    print_error("report %d: %s\n", i, PQresultErrorMessage(r));
                assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
                PQclear(r);
            }
            done[i] = 1;
            ndone++;
        }
        usleep(20000);
    }
    int64_t total = h_now_ms() - t0;
    assert_int_equal(ndone, NREP);
    if (max_sleepers != 2)
        print_error("max concurrent analytics pg_sleep backends = %ld, want 2\n", max_sleepers);
    assert_int_equal(max_sleepers, 2);
    assert_true(total >= 5500);            /* three waves of 2 s */

    long waits_after = h_show_val(adm, "SHOW STATS", "oltp", "waits");
    long wmax_after = h_show_val(adm, "SHOW STATS", "oltp", "wait_max_ms");
    if (waits_after != waits_before || wmax_after != wmax_before)
        print_error("oltp waits %ld -> %ld, wait_max_ms %ld -> %ld\n", waits_before, waits_after,
                    wmax_before, wmax_after);
    assert_int_equal(waits_after, waits_before);
    assert_int_equal(wmax_after, wmax_before);
    assert_true(h_show_val(adm, "SHOW STATS", "analytics", "waits") >= NREP - 2);
    assert_true(h_show_val(adm, "SHOW STATS", "analytics", "wait_max_ms") >= 3000);

    for (int i = 0; i < NREP; i++)
        PQfinish(rep[i]);
    PQfinish(o[0]);
    PQfinish(o[1]);
    PQfinish(adm);
    PQfinish(super);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

/* Waits for the result of an async query; returns it (caller clears), NULL on timeout. */
static PGresult *async_result(PGconn *c, int timeout_ms)
{
    if (h_wait_result(c, timeout_ms) != 0)
        return NULL;
    PGresult *r = PQgetResult(c), *more;
    while ((more = PQgetResult(c)) != NULL)
        PQclear(more);
    return r;
}

static void test_queue_timeout_and_reserve(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[8192];

    lanes_conf(conf, sizeof conf, 4, 1, "500ms", "256MB", "",
               "[lane.burst]\nserver = pg\nsize = 1\nreserve = 1\nreserve_timeout = 1s\n"
               "queue_timeout = 30s\n"
               "[route.reports]\napplication_name = report-*\nlane = analytics\n"
               "[route.burst]\napplication_name = burst-*\nlane = burst\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *super = h_pg_super(&g_pg, H_DB);
    assert_non_null(super);

    /* queue_timeout: analytics size 1, the second pg_sleep(3) gives up after 500 ms. */
    PGconn *a = app_client(&l, "report-a"), *b = app_client(&l, "report-b");
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(PQsendQuery(a, "SELECT pg_sleep(3)"), 1);
    assert_int_equal(h_pg_wait_long(super, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                    "AND query LIKE 'SELECT pg_sleep%' AND application_name = 'report-a'",
                                    1, 3000), 1);
    int64_t t0 = h_now_ms();
    assert_int_equal(PQsendQuery(b, "SELECT pg_sleep(3)"), 1);
    PGresult *r = async_result(b, 5000);
    int64_t waited = h_now_ms() - t0;
    assert_non_null(r);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    fprintf(stderr, "queue_timeout after %lld ms: %s (%s)\n", (long long)waited, msg ? msg : "",
            PQresultErrorField(r, PG_DIAG_SQLSTATE) ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : "");
    assert_non_null(msg);
    assert_non_null(strstr(msg, "analytics"));
    assert_true(waited >= 400 && waited < 2500);
    PQclear(r);
    r = async_result(a, 5000);
    assert_non_null(r);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);   /* the first one was not disturbed */
    PQclear(r);
    PQfinish(a);
    PQfinish(b);

    /* reserve: burst size 1 + reserve 1 after 1 s; the second pg_sleep(3) starts well before 3 s. */
    a = app_client(&l, "burst-a");
    b = app_client(&l, "burst-b");
    H_ASSERT_CONNECTED(a);
    H_ASSERT_CONNECTED(b);
    assert_int_equal(PQsendQuery(a, "SELECT pg_sleep(3)"), 1);
    assert_int_equal(h_pg_wait_long(super, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                    "AND query LIKE 'SELECT pg_sleep%' AND application_name = 'burst-a'",
                                    1, 3000), 1);
    t0 = h_now_ms();
    assert_int_equal(PQsendQuery(b, "SELECT pg_sleep(3)"), 1);
    int64_t deadline = t0 + 3500, started = -1;
    while (h_now_ms() < deadline) {
        if (pg_sleepers(super, "burst-%") == 2) {
            started = h_now_ms() - t0;
            break;
        }
        usleep(20000);
    }
    fprintf(stderr, "reserve: second backend after %lld ms\n", (long long)started);
    assert_true(started >= 800);       /* not before reserve_timeout */
    assert_true(started >= 0 && started < 2800);   /* well before the first one ends (3 s) */
    r = async_result(a, 5000);
    assert_non_null(r);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    r = async_result(b, 5000);
    assert_non_null(r);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(a);
    PQfinish(b);
    PQfinish(super);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

static void test_begin_first(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    start_a(&l);
    PGconn *c = app_client(&l, "web");
    H_ASSERT_CONNECTED(c);

    /* hint on the first statement after BEGIN */
    assert_int_equal(h_exec(c, "BEGIN"), 0);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INTRANS);
    char *v = h_query1(c, "SELECT current_setting('work_mem') /* pglane lane=analytics */");
    assert_non_null(v);
    assert_string_equal(v, "256MB");
    free(v);
    v = h_query1(c, "SHOW statement_timeout");        /* same transaction, same lane */
    assert_string_equal(v, "10min");
    free(v);
    v = h_query1(c, "SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid() AND xact_start IS NOT NULL");
    assert_string_equal(v, "1");
    free(v);
    assert_int_equal(h_exec(c, "COMMIT"), 0);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);

    /* sql regex on the first statement; START TRANSACTION with options is replayed as sent */
    assert_int_equal(h_exec(c, "START TRANSACTION ISOLATION LEVEL REPEATABLE READ"), 0);
    v = h_query1(c, "SELECT current_setting('work_mem') AS monthly_report");
    assert_string_equal(v, "256MB");
    free(v);
    v = h_query1(c, "SHOW transaction_isolation");
    assert_string_equal(v, "repeatable read");
    free(v);
    assert_int_equal(h_exec(c, "COMMIT"), 0);

    /* nothing matches: default lane */
    assert_int_equal(h_exec(c, "begin"), 0);
    v = h_query1(c, "SELECT current_setting('work_mem') || ' ' || current_setting('statement_timeout')");
    assert_string_equal(v, "4MB 2s");
    free(v);
    assert_int_equal(h_exec(c, "COMMIT"), 0);

    /* BEGIN; COMMIT with nothing in between, BEGIN; ROLLBACK, and as one query string */
    PGresult *r = PQexec(c, "BEGIN");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdStatus(r), "BEGIN");
    PQclear(r);
    r = PQexec(c, "COMMIT");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdStatus(r), "COMMIT");
    PQclear(r);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    assert_int_equal(h_exec(c, "BEGIN"), 0);
    assert_int_equal(h_exec(c, "ROLLBACK"), 0);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    assert_int_equal(h_exec(c, "BEGIN; COMMIT;"), 0);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);

    /* an error as the first statement after BEGIN: aborted, ROLLBACK works, the client goes on */
    assert_int_equal(h_exec(c, "BEGIN"), 0);
    assert_string_equal(h_exec_sqlstate(c, "SELECT * FROM no_such_table /* pglane lane=analytics */"), "42P01");
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INERROR);
    assert_int_equal(h_exec(c, "ROLLBACK"), 0);
    v = h_query1(c, "SELECT current_setting('work_mem') /* pglane lane=analytics */");
    assert_string_equal(v, "256MB");
    free(v);
    PQfinish(c);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

static char *pid_and(PGconn *c, const char *guc)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT pg_backend_pid() || ' ' || current_setting('%s')", guc);
    return h_query1(c, sql);
}

/* a changes statement_timeout with `sql`; b, next on the same server connection, sees 2s. */
static void no_leak(PGconn *a, PGconn *b, const char *sql, const char *what)
{
    char *before = pid_and(b, "statement_timeout");
    assert_non_null(before);
    PGresult *r = PQexec(a, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        print_error("%s: %s\n", what, PQerrorMessage(a));
    assert_true(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
    char *after = pid_and(b, "statement_timeout");
    assert_non_null(after);
    if (strcmp(before, after) != 0)
        print_error("%s: next client saw \"%s\" (before: \"%s\")\n", what, after, before);
    assert_string_equal(after, before);          /* same backend pid, 2s */
    assert_non_null(strstr(after, " 2s"));
    free(before);
    free(after);
}

static void test_set_does_not_leak(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[8192];

    /* oltp size 1: every client shares one server connection. Round 0 without routes (queries are
     * never lexed), round 1 with a statement route (every transaction's first statement is). */
    for (int round = 0; round < 2; round++) {
        lanes_conf(conf, sizeof conf, 1, 1, "30s", "256MB", "",
                   round ? "[route.big]\ntables = big_table\nlane = analytics\n" : "");
        assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
        PGconn *a = app_client(&l, "web-a"), *b = app_client(&l, "web-b");
        H_ASSERT_CONNECTED(a);
        H_ASSERT_CONNECTED(b);

        no_leak(a, b, "SET statement_timeout = 0", "SET statement_timeout = 0");
        no_leak(a, b, "set statement_timeout to '0'", "lower-case SET");
        no_leak(a, b, "SELECT set_config('statement_timeout', '0', false)", "set_config via SELECT");
        no_leak(a, b, "SELECT 1; SET statement_timeout = 0", "SET as second statement of a query string");
        no_leak(a, b, "DO $$BEGIN PERFORM set_config('statement_timeout', '0', false); END$$",
                "set_config in a DO block");

        /* extended protocol: a Parse of set_config, then a later Bind of the named statement */
        const char *pv[1] = { "0" };
        char *before = pid_and(b, "statement_timeout");
        PGresult *r = PQexecParams(a, "SELECT set_config('statement_timeout', $1, false)", 1, NULL, pv,
                                   NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
        char *after = pid_and(b, "statement_timeout");
        assert_string_equal(after, before);
        free(after);
        r = PQprepare(a, "tune", "SELECT set_config('statement_timeout', $1, false)", 1, NULL);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        after = pid_and(b, "statement_timeout");
        assert_string_equal(after, before);
        free(after);
        r = PQexecPrepared(a, "tune", 1, pv, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
        after = pid_and(b, "statement_timeout");
        if (strcmp(after, before) != 0)
            print_error("round %d: PQexecPrepared of a set_config statement leaked: next client saw \"%s\" "
                        "(before: \"%s\")\n", round, after, before);
        assert_string_equal(after, before);
        free(after);
        free(before);

        /* a's own next transaction: a's own setting follows a (the last was set_config to 0) */
        char *own = h_query1(a, "SHOW statement_timeout");
        assert_string_equal(own, "0");
        free(own);
        PQfinish(a);
        PQfinish(b);
        h_pglane_stop(&l);
    }
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

static void rewrite_and_hup(struct h_pglane *l, const char *text, const char *expect_line)
{
    int before = log_count(l, expect_line);
    /* write via a temp file + rename: the proxy never reads a half-written file */
    char tmp[H_PATH + 8];
    snprintf(tmp, sizeof tmp, "%s.new", l->conf_path);
    char *t = strdup(text), *p;
    assert_non_null(t);
    /* replace @PORT@/@PGPORT@ like the harness did */
    char port[16], pgport[16], out[8192];
    snprintf(port, sizeof port, "%d", l->port);
    snprintf(pgport, sizeof pgport, "%d", l->pg->port);
    size_t o = 0;
    for (p = t; *p && o + 16 < sizeof out;) {
        if (strncmp(p, "@PGPORT@", 8) == 0) {
            o += (size_t)snprintf(out + o, sizeof out - o, "%s", pgport);
            p += 8;
        } else if (strncmp(p, "@PORT@", 6) == 0) {
            o += (size_t)snprintf(out + o, sizeof out - o, "%s", port);
            p += 6;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    free(t);
    assert_int_equal(h_write_file(tmp, out), 0);
    assert_int_equal(rename(tmp, l->conf_path), 0);
    assert_int_equal(h_pglane_signal(l, SIGHUP), 0);
    if (wait_log(l, expect_line, before, 5000) != 0) {
        h_pglane_dump_log(l, 4096);
        fail_msg("no \"%s\" in the log after SIGHUP", expect_line);
    }
}

static void start_reload_lane(struct h_pglane *l)
{
    char conf[8192];

    lanes_conf(conf, sizeof conf, 4, 2, "30s", "256MB", "",
               "[route.reports]\napplication_name = report-*\nlane = analytics\n");
    assert_int_equal(h_pglane_start(l, &g_pg, conf), 0);
}

/* A changed rule applies to the next transaction of clients that stay connected across SIGHUP. */
static void test_reload_changed_rule(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[8192];

    start_reload_lane(&l);
    PGconn *c = app_client(&l, "report-x"), *w = app_client(&l, "web");
    H_ASSERT_CONNECTED(c);
    H_ASSERT_CONNECTED(w);
    expect_tx(c, NULL, &ANALYTICS, "report-x before reload");
    expect_tx(w, NULL, &OLTP, "web before reload");

    /* report-* no longer matches, web does now */
    lanes_conf(conf, sizeof conf, 4, 2, "30s", "256MB", "",
               "[route.reports]\napplication_name = web\nlane = analytics\n");
    rewrite_and_hup(&l, conf, "lane(s), ");

    /* new clients get the new rule ... */
    PGconn *c2 = app_client(&l, "report-x"), *w2 = app_client(&l, "web");
    H_ASSERT_CONNECTED(c2);
    H_ASSERT_CONNECTED(w2);
    expect_tx(c2, NULL, &OLTP, "new report-x client after the rule changed");
    expect_tx(w2, NULL, &ANALYTICS, "new web client after the rule changed");
    /* ... and so do the clients connected across the reload (same PGconn) */
    expect_tx(c, NULL, &OLTP, "report-x connected across the reload");
    expect_tx(w, NULL, &ANALYTICS, "web connected across the reload");
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    assert_int_equal(PQstatus(w), CONNECTION_OK);
    PQfinish(c);
    PQfinish(w);
    PQfinish(c2);
    PQfinish(w2);
    h_pass();
}

/* A broken file on SIGHUP: file:line in the log, the old rules stay in force. */
static void test_reload_broken_file(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char broken[8192];

    start_reload_lane(&l);
    PGconn *c = app_client(&l, "report-x");
    H_ASSERT_CONNECTED(c);
    expect_tx(c, NULL, &ANALYTICS, "report-x before reload");

    /* would move report-* to oltp and web to analytics, were it valid */
    lanes_conf(broken, sizeof broken, 4, 2, "30s", "64MB", "",
               "[route.reports]\napplication_name = web\nlane = analytics\n"
               "[lane.bad]\nsize = lots\n");
    rewrite_and_hup(&l, broken, "previous configuration stays in force");
    char *log = h_pglane_log(&l), *at = strstr(log, l.conf_path);
    int file_line = 0;
    for (; at && !file_line; at = strstr(at + 1, l.conf_path)) {
        const char *q = at + strlen(l.conf_path);
        if (*q == ':' && isdigit((unsigned char)q[1])) {
            q++;
            while (isdigit((unsigned char)*q))
                q++;
            file_line = *q == ':';
        }
    }
    if (!file_line)
        print_error("no \"%s:<line>:\" in the log:\n%s\n", l.conf_path, log);
    assert_true(file_line);
    free(log);

    expect_tx(c, NULL, &ANALYTICS, "report-x connected across the broken reload");
    PGconn *c2 = app_client(&l, "report-y"), *w2 = app_client(&l, "web");
    H_ASSERT_CONNECTED(c2);
    H_ASSERT_CONNECTED(w2);
    expect_tx(c2, NULL, &ANALYTICS, "new report-y client after the broken reload");
    expect_tx(w2, NULL, &OLTP, "new web client after the broken reload");
    assert_int_equal(h_pglane_alive(&l), 1);
    PQfinish(c);
    PQfinish(c2);
    PQfinish(w2);
    h_pass();
}

/* Lane settings changed (analytics work_mem 256MB -> 128MB): new transactions get the new value. */
static void test_reload_lane_settings(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[8192];

    start_reload_lane(&l);
    PGconn *c = app_client(&l, "report-x");
    H_ASSERT_CONNECTED(c);
    expect_tx(c, NULL, &ANALYTICS, "report-x before reload");
    expect_stmt(c, "SELECT " COLS, &ANALYTICS, "report-x before reload, single statement");
    /* A transaction open across the reload stays on the retired lane's server (old settings); the
     * retired lane lives on its own copy of the old configuration, which the reload freed. */
    PGconn *t = app_client(&l, "report-t"), *adm = console(&l);
    H_ASSERT_CONNECTED(t);
    H_ASSERT_CONNECTED(adm);
    assert_int_equal(h_exec(t, "BEGIN"), 0);
    char *v = h_query1(t, "SELECT current_setting('work_mem')");
    assert_string_equal(v, "256MB");
    free(v);

    lanes_conf(conf, sizeof conf, 4, 2, "30s", "128MB", "",
               "[route.reports]\napplication_name = report-*\nlane = analytics\n");
    rewrite_and_hup(&l, conf, "lane(s), ");
    v = h_query1(t, "SELECT current_setting('work_mem')");
    assert_string_equal(v, "256MB");
    free(v);
    PGresult *r = PQexec(adm, "SHOW LANES");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int retired = 0;
    for (int i = 0; i < PQntuples(r); i++)
        retired += strcmp(PQgetvalue(r, i, 0), "analytics") == 0 && strcmp(PQgetvalue(r, i, 1), "retired") == 0;
    PQclear(r);
    assert_int_equal(retired, 1);
    assert_int_equal(h_exec(t, "COMMIT"), 0);
    expect_tx(t, NULL, &ANALYTICS_128, "report-t after its transaction across the reload");
    PQfinish(t);
    PQfinish(adm);
    expect_tx(c, NULL, &ANALYTICS_128, "report-x after analytics work_mem changed");
    expect_stmt(c, "SELECT " COLS, &ANALYTICS_128, "report-x, single statement");
    PGconn *c2 = app_client(&l, "report-y"), *w = app_client(&l, "web");
    H_ASSERT_CONNECTED(c2);
    H_ASSERT_CONNECTED(w);
    expect_tx(c2, NULL, &ANALYTICS_128, "new report-y client");
    expect_tx(w, NULL, &OLTP, "web (oltp unchanged)");
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQfinish(c);
    PQfinish(c2);
    PQfinish(w);
    h_pass();
}

/* A statement shape learned as slow keeps its lane across a reload: the statistics survive it. */
static void test_learned_slow_survives_reload(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[8192];
    const char *slow = "SELECT " COLS ", pg_sleep(0.3)";

    lanes_conf(conf, sizeof conf, 4, 2, "30s", "256MB", "",
               "[route.learned]\nslower_than = 150ms\nlane = analytics\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *c = app_client(&l, "web");
    H_ASSERT_CONNECTED(c);
    expect_stmt(c, slow, &OLTP, "first run of the shape: nothing learned yet");
    expect_stmt(c, slow, &ANALYTICS, "second run: learned as slower than 150ms");
    expect_stmt(c, "SELECT " COLS, &OLTP, "a fast shape stays on oltp");

    lanes_conf(conf, sizeof conf, 4, 2, "30s", "256MB", "",
               "[route.reports]\napplication_name = report-*\nlane = analytics\n"
               "\n[route.learned]\nslower_than = 150ms\nlane = analytics\n");
    rewrite_and_hup(&l, conf, "lane(s), ");
    expect_stmt(c, slow, &ANALYTICS, "first run after the reload: still learned");
    PGconn *c2 = app_client(&l, "web2");
    H_ASSERT_CONNECTED(c2);
    expect_stmt(c2, slow, &ANALYTICS, "a new client after the reload");
    PQfinish(c);
    PQfinish(c2);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

static void expect_params(PGconn *c, const char *sql, int n, const char *const *pv, const char *want,
                          const char *what)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, pv, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        print_error("%s: %s\n", what, PQerrorMessage(c));
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    if (strcmp(PQgetvalue(r, 0, 0), want) != 0)
        print_error("%s: got %s, want %s\n", what, PQgetvalue(r, 0, 0), want);
    assert_string_equal(PQgetvalue(r, 0, 0), want);
    PQclear(r);
}

static void test_extended_protocol(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    start_a(&l);
    PGconn *c = app_client(&l, "web");
    H_ASSERT_CONNECTED(c);
    const char *wm[1] = { "work_mem" };
    const char *wm1[2] = { "work_mem", "1" };

    expect_params(c, "SELECT current_setting($1) /* pglane lane=analytics */", 1, wm, "256MB", "hint");
    expect_params(c, "SELECT current_setting($1)", 1, wm, "4MB", "no hint");
    expect_params(c, "SELECT current_setting($1) FROM big_table WHERE id = $2::int", 2, wm1, "256MB", "tables");
    expect_params(c, "SELECT current_setting($1) FROM small_t WHERE id = $2::int", 2, wm1, "4MB", "other table");
    expect_params(c, "INSERT INTO small_t (v) VALUES ($2::int) RETURNING current_setting($1)", 2, wm1, "256MB",
                  "kind insert");
    expect_params(c, "SELECT current_setting($1) AS monthly_report", 1, wm, "256MB", "sql regex");

    /* named statements: the Bind of an earlier Parse reuses its classification */
    PGresult *r = PQprepare(c, "p_big", "SELECT current_setting($1) FROM big_table WHERE id = $2::int", 2, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQprepare(c, "p_small", "SELECT current_setting($1) FROM small_t WHERE id = $2::int", 2, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    for (int i = 0; i < 3; i++) {
        r = PQexecPrepared(c, "p_big", 2, wm1, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        if (strcmp(PQgetvalue(r, 0, 0), "256MB") != 0)
            print_error("p_big execution %d: work_mem %s\n", i, PQgetvalue(r, 0, 0));
        assert_string_equal(PQgetvalue(r, 0, 0), "256MB");
        PQclear(r);
        r = PQexecPrepared(c, "p_small", 2, wm1, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        if (strcmp(PQgetvalue(r, 0, 0), "4MB") != 0)
            print_error("p_small execution %d: work_mem %s\n", i, PQgetvalue(r, 0, 0));
        assert_string_equal(PQgetvalue(r, 0, 0), "4MB");
        PQclear(r);
    }
    PQfinish(c);
    h_pass();
}

/* A one-connection TCP relay (thread) from a loopback port to PostgreSQL, standing for any hop
 * between pglane and the server (another pooler, a tunnel): the backend pid pglane is given is then
 * not the process at the other end of its socket. */
struct relay {
    int lfd, port, pgport;
    pthread_t th;
};

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    int a = accept(r->lfd, NULL, NULL);
    if (a < 0)
        return NULL;
    int b = h_raw_connect(r->pgport);
    if (b < 0) {
        close(a);
        return NULL;
    }
    struct pollfd p[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };
    char buf[8192];
    for (;;) {
        if (poll(p, 2, 30000) <= 0)
            break;
        int from = (p[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 0 : 1;
        ssize_t n = read(p[from].fd, buf, sizeof buf);
        if (n <= 0 || h_raw_send(p[1 - from].fd, buf, (size_t)n) != 0)
            break;
    }
    close(a);
    close(b);
    return NULL;
}

static void relay_start(struct relay *r, int pgport)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sa;
    r->pgport = pgport;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->lfd >= 0);
    assert_int_equal(bind(r->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(r->lfd, 4), 0);
    assert_int_equal(getsockname(r->lfd, (struct sockaddr *)&sa, &sl), 0);
    r->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&r->th, NULL, relay_main, r), 0);
}

/* The nice value of a process; -100 if it cannot be read. */
static int proc_nice(long pid)
{
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, (id_t)pid);
    return nice == -1 && errno != 0 ? -100 : nice;
}

/* The configuration of test_backend_nice: lanes main (left alone), low (TCP, backend_nice =
 * low_nice) and lowsock (unix socket, idle), picked by application_name. */
static void backend_nice_conf(char *buf, size_t n, int mport, int low_nice)
{
    snprintf(buf, n,
             "[pglane]\nlisten = 127.0.0.1:@PORT@\nauth_type = md5\nauth_file = %s\n"
             "pool_mode = transaction\ndefault_lane = main\nlog_level = info\nmetrics_listen = 127.0.0.1:%d\n"
             "admin_users = " H_USER "\n\n"
             "[server.tcp]\nhost = 127.0.0.1\nport = @PGPORT@\n\n"
             "[server.sock]\nhost = %s\nport = @PGPORT@\n\n"
             "[lane.main]\nserver = tcp\nsize = 2\n\n"
             "[lane.low]\nserver = tcp\nsize = 2\nbackend_nice = %d\n\n"
             "[lane.lowsock]\nserver = sock\nsize = 2\nbackend_nice = idle\n\n"
             "[route.low]\napplication_name = low\nlane = low\n\n"
             "[route.lowsock]\napplication_name = lowsock\nlane = lowsock\n",
             g_userlist, mport, g_pg.dir, low_nice);
}

/* The backend that serves application app: its pid, after checking its nice value and policy. */
static void expect_backend_priority(struct h_pglane *l, const char *app, int nice, int policy)
{
    char extra[64];
    snprintf(extra, sizeof extra, "application_name=%s", app);
    PGconn *c = h_connect(l, extra);
    H_ASSERT_CONNECTED(c);
    long pid = h_backend_pid(c);
    assert_true(pid > 0);
    if (proc_nice(pid) != nice || sched_getscheduler((pid_t)pid) != policy)
        h_pglane_dump_log(l, 40);
    assert_int_equal(proc_nice(pid), nice);
    assert_int_equal(sched_getscheduler((pid_t)pid), policy);
    PQfinish(c);
}

/* backend_nice: a lane's backends run at its nice value (over TCP, loopback) or as SCHED_IDLE (over
 * the unix socket); other lanes' backends are left alone; /metrics counts them; a reload that
 * changes the value replaces the lane's connections. */
static void test_backend_nice(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];
    int mport = h_free_port();

    backend_nice_conf(conf, sizeof conf, mport, 15);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    expect_backend_priority(&l, "web", 0, SCHED_OTHER);
    expect_backend_priority(&l, "low", 15, SCHED_OTHER);
    expect_backend_priority(&l, "lowsock", 0, SCHED_IDLE);
    assert_int_equal(h_metric_now(mport, "pglane_lane_backend_nice_total{lane=\"low\",result=\"applied\"}"), 1);
    assert_int_equal(h_metric_now(mport, "pglane_lane_backend_nice_total{lane=\"lowsock\",result=\"applied\"}"), 1);
    assert_int_equal(h_metric_now(mport, "pglane_lane_backend_nice_total{lane=\"low\",result=\"failed\"}"), 0);
    char *log = h_pglane_log(&l);
    assert_non_null(strstr(log, "runs at nice 15 (backend_nice"));
    assert_non_null(strstr(log, "runs as SCHED_IDLE (backend_nice"));
    free(log);
    PGconn *adm = console(&l);
    H_ASSERT_CONNECTED(adm);
    PGresult *r = PQexec(adm, "SHOW CONFIG");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int seen = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *k = PQgetvalue(r, i, 0), *v = PQgetvalue(r, i, 1);
        seen += strcmp(k, "lane.low.backend_nice") == 0 && strcmp(v, "15") == 0;
        seen += strcmp(k, "lane.lowsock.backend_nice") == 0 && strcmp(v, "idle") == 0;
        seen += strcmp(k, "lane.main.backend_nice") == 0 && strcmp(v, "0") == 0;
    }
    PQclear(r);
    PQfinish(adm);
    assert_int_equal(seen, 3);

    backend_nice_conf(conf, sizeof conf, mport, 10);
    rewrite_and_hup(&l, conf, "lane(s), ");
    expect_backend_priority(&l, "low", 10, SCHED_OTHER);
    expect_backend_priority(&l, "lowsock", 0, SCHED_IDLE);
    h_pass();
}

/* backend_nice renices only the process at the other end of pglane's own socket: through a relay
 * the pid in BackendKeyData is another socket's, so the backend is left alone, the lane logs why
 * once and counts the failure, and the client is served as usual. */
static void test_backend_nice_checks_the_pid(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    struct relay r;
    char conf[4096];
    int mport = h_free_port();

    relay_start(&r, g_pg.port);
    snprintf(conf, sizeof conf,
             "[pglane]\nlisten = 127.0.0.1:@PORT@\nauth_type = md5\nauth_file = @AUTHFILE@\n"
             "pool_mode = transaction\ndefault_lane = low\nlog_level = info\nmetrics_listen = 127.0.0.1:%d\n\n"
             "[server.relayed]\nhost = 127.0.0.1\nport = %d\n\n"
             "[lane.low]\nserver = relayed\nsize = 1\nbackend_nice = 15\n",
             mport, r.port);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    long pid = h_backend_pid(c);
    assert_true(pid > 0);
    assert_int_equal(proc_nice(pid), 0);
    assert_int_equal(h_metric_now(mport, "pglane_lane_backend_nice_total{lane=\"low\",result=\"failed\"}"), 1);
    assert_int_equal(h_metric_now(mport, "pglane_lane_backend_nice_total{lane=\"low\",result=\"applied\"}"), 0);
    char *log = h_pglane_log(&l);
    char want[128];
    snprintf(want, sizeof want, "backend_nice not applied to backend %ld: pid %ld does not hold the server's end", pid,
             pid);
    assert_non_null(strstr(log, want));
    free(log);
    PQfinish(c);
    assert_int_equal(h_pglane_stop(&l), 0);
    pthread_join(r.th, NULL);
    close(r.lfd);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_identity_criteria),
        H_TEST(test_statement_criteria),
        H_TEST(test_client_addr_and_statement),
        H_TEST(test_reset_all_keeps_lane_settings),
        H_TEST(test_admission),
        H_TEST(test_queue_timeout_and_reserve),
        H_TEST(test_begin_first),
        H_TEST(test_set_does_not_leak),
        H_TEST(test_reload_changed_rule),
        H_TEST(test_reload_broken_file),
        H_TEST(test_reload_lane_settings),
        H_TEST(test_learned_slow_survives_reload),
        H_TEST(test_extended_protocol),
        H_TEST(test_backend_nice),
        H_TEST(test_backend_nice_checks_the_pid),
    };
    return H_RUN_GROUP("integration: lanes and routing", tests,
                       .pg = &g_pg, .skip_direct = 1, .setup = fixtures);
}
