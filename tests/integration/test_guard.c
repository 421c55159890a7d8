/*
 * Contention guard (issue 18): a monitor sample triggered the moment a protected request runs past
 * guard_wait (and only then), the quarantine of a statement shape that keeps blocking a protected
 * lane (55P03 from pglane, SHOW QUARANTINE, RELEASE, pglane_quarantined_shapes) and the advice
 * columns of SHOW GUARD. The pattern is issue 18's: a report transaction that first updates the rows
 * OLTP upserts also update, then works for seconds, retried every 2 s, against closed-loop OLTP
 * clients of a protected lane with guard_wait = 50ms and guard_quarantine = 3.
 */
#include "tests/integration/harness.h"

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct h_pg g_pg;
static struct h_pglane g_lane;
static int g_mport;

static int fixtures(void)
{
    char conf[4096];

    if (h_pg_exec(&g_pg, H_DB, "CREATE TABLE accounts (id int PRIMARY KEY, events bigint NOT NULL DEFAULT 0, "
                               "last_report_at timestamptz);"
                               "INSERT INTO accounts SELECT i FROM generate_series(1, 9) i;"
                               "CREATE TABLE quiet (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);"
                               "INSERT INTO quiet SELECT i FROM generate_series(1, 8) i;"
                               "CREATE SEQUENCE report_attempts;"
                               "ALTER TABLE accounts OWNER TO " H_USER ";"
                               "ALTER TABLE quiet OWNER TO " H_USER ";"
                               "ALTER SEQUENCE report_attempts OWNER TO " H_USER ";"
                               "GRANT SELECT, UPDATE ON accounts TO " H_MD5_USER) != 0)
        return -1;
    /* PostgreSQL logs every lock wait longer than 10 ms with its length when it ends, and which
     * application waited: the test's measure of the longest OLTP lock wait (lock_waits()). */
    if (h_pg_exec(&g_pg, H_DB, "ALTER SYSTEM SET log_lock_waits = on") != 0 ||
        h_pg_exec(&g_pg, H_DB, "ALTER SYSTEM SET deadlock_timeout = '10ms'") != 0 ||
        h_pg_exec(&g_pg, H_DB, "ALTER SYSTEM SET log_line_prefix = '%m [%p] %a: '") != 0 ||
        h_pg_exec(&g_pg, H_DB, "SELECT pg_reload_conf()") != 0)
        return -1;
    g_mport = h_free_port();
    snprintf(conf, sizeof conf,
             "[pglane]\n"
             "listen = 127.0.0.1:@PORT@\n"
             "auth_type = md5\n"
             "auth_file = @AUTHFILE@\n"
             "pool_mode = transaction\n"
             "default_lane = oltp\n"
             "admin_users = app\n"
             "metrics_listen = 127.0.0.1:%d\n"
             "log_level = debug\n"
             "\n[server.pg]\nhost = 127.0.0.1\nport = @PGPORT@\n"
             "\n[lane.oltp]\nserver = pg\nsize = 10\nqueue_timeout = 30s\n"
             "protect = yes\nguard = cancel\nguard_wait = 50ms\n"
             "guard_quarantine = 3\nguard_quarantine_window = 10min\nguard_quarantine_time = 10min\n"
             "\n[lane.calm]\nserver = pg\nsize = 2\nqueue_timeout = 30s\n"
             "protect = yes\nguard = cancel\nguard_wait = 5s\n"
             "\n[lane.analytics]\nserver = pg\nsize = 2\nqueue_timeout = 30s\npreemptible = yes\n"
             /* statement-routed (sql), so that pglane lexes the report's first statement */
             "\n[route.reports]\napplication_name = report-*\nsql = .\nlane = analytics\n"
             "\n[route.calm]\napplication_name = calm\nlane = calm\n",
             g_mport);
    if (h_pglane_start(&g_lane, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_lane);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

static PGconn *client(const char *app)
{
    PGconn *c = h_connect_app(&g_lane, app);

    H_ASSERT_CONNECTED(c);
    return c;
}

#define TRIGGERED "pglane_monitor_samples_total{reason=\"triggered\"}"
#define PERIODIC "pglane_monitor_samples_total{reason=\"periodic\"}"
#define QUARANTINED "pglane_quarantined_shapes"

static long attempts(void)
{
    PGconn *s = h_pg_super(&g_pg, H_DB);
    assert_non_null(s);
    long n = h_pg_long(s, "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM report_attempts");
    PQfinish(s);
    return n;
}

static const char upsert_sql[] = "INSERT INTO accounts (id, events) VALUES ($1, 1) "
                                 "ON CONFLICT (id) DO UPDATE SET events = accounts.events + 1";

/* ---- lock waits, as PostgreSQL logged them ---- */

static size_t pg_log_size(void)
{
    char *t = h_read_file(g_pg.logfile);
    size_t n = t ? strlen(t) : 0;
    free(t);
    return n;
}

/* The longest lock wait PostgreSQL logged after offset `from` of its log for a backend whose
 * application_name starts with `app` (waits over deadlock_timeout, 10 ms); *n: how many. */
static double lock_wait_max(size_t from, const char *app, int *n)
{
    char *t = h_read_file(g_pg.logfile), pfx[64];
    double max = 0;

    *n = 0;
    snprintf(pfx, sizeof pfx, "] %s", app);
    for (char *line = t && strlen(t) > from ? t + from : NULL; line && *line;) {
        char *end = strchr(line, '\n'), *a, *p;
        if (end)
            *end = 0;
        if ((p = strstr(line, pfx)) && (p[strlen(pfx)] == ':' || p[strlen(pfx)] == '-') &&
            strstr(line, " acquired ") && (a = strstr(line, " after "))) {
            double ms = strtod(a + 7, NULL);
            (*n)++;
            if (ms > max)
                max = ms;
        }
        line = end ? end + 1 : NULL;
    }
    free(t);
    return max;
}

/* In pglane's debug log: how many lines contain `what` followed by a number, and the largest number. */
static int log_numbers(const char *log, const char *what, long *max)
{
    int n = 0;

    *max = 0;
    for (const char *p = strstr(log, what); p; p = strstr(p + 1, what)) {
        long v = strtol(p + strlen(what), NULL, 10);
        n++;
        if (v > *max)
            *max = v;
    }
    return n;
}

/* ---- OLTP: closed-loop upserts of the accounts rows through the protected lane ---- */

#define OLTP_CLIENTS 8            /* issue 18's closed loop */
/* Think time between a closed-loop client's transactions: without it the test's own 8 clients and
 * their 8 backends saturate a 2-core machine, and protected requests pass guard_wait for want of
 * CPU rather than for a lock (dozens of triggered samples instead of a few). */
#define THINK_US 1000
#define MAX_SAMPLES 400000

struct oltp {
    pthread_t th;
    PGconn *c;
    const char *sql;
    atomic_int *stop;
    int64_t *lat_us;             /* latencies, one per transaction */
    int row;                     /* the accounts row it upserts (a tenant's counter), 0: random */
    int n;
    int errors;
    char err[256];
};

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One upsert of o's accounts row (errors noted in o); returns when it was sent. */
static int64_t oltp_one(struct oltp *o, unsigned *seed)
{
    char id[16];
    const char *vals[1] = { id };
    snprintf(id, sizeof id, "%d", o->row ? o->row : 1 + (int)(rand_r(seed) % 8));
    int64_t t0 = now_us();
    PGresult *r = PQexecParams(o->c, o->sql, 1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        if (!o->errors++)
            snprintf(o->err, sizeof o->err, "%s", PQerrorMessage(o->c));
    }
    PQclear(r);
    return t0;
}

static void *oltp_loop(void *arg)
{
    struct oltp *o = arg;
    unsigned seed = (unsigned)(uintptr_t)o;

    while (!*o->stop && o->n < MAX_SAMPLES) {
        int64_t t0 = oltp_one(o, &seed);
        o->lat_us[o->n++] = now_us() - t0;
        usleep(THINK_US);
    }
    return NULL;
}

/* The open-loop probe: one upsert every PROBE_US on a fixed schedule, whatever the answers do; each
 * latency counts from the scheduled send time, so a stall also counts in the requests it delayed. */
#define PROBE_US 50000            /* 20/s */

static void *probe_loop(void *arg)
{
    struct oltp *o = arg;
    unsigned seed = 7;
    int64_t start = now_us();

    for (int64_t k = 0; !*o->stop && o->n < MAX_SAMPLES; k++) {
        int64_t due = start + k * PROBE_US, now = now_us();
        if (due > now)
            usleep((useconds_t)(due - now));   /* the schedule, not a synchronisation */
        oltp_one(o, &seed);
        o->lat_us[o->n++] = now_us() - due;
    }
    return NULL;
}

static void oltp_start(struct oltp *o, int n, const char *app, const char *sql, int row0, atomic_int *stop)
{
    for (int i = 0; i < n; i++) {
        memset(&o[i], 0, sizeof o[i]);
        o[i].c = client(app);
        o[i].sql = sql;
        o[i].stop = stop;
        o[i].row = row0 ? row0 + i : 0;
        o[i].lat_us = calloc(MAX_SAMPLES, sizeof(int64_t));
        assert_int_equal(pthread_create(&o[i].th, NULL, oltp_loop, &o[i]), 0);
    }
}

static void probe_start(struct oltp *o, atomic_int *stop)
{
    memset(o, 0, sizeof *o);
    o->c = client("web-probe");
    o->sql = upsert_sql;
    o->row = 9;
    o->stop = stop;
    o->lat_us = calloc(MAX_SAMPLES, sizeof(int64_t));
    assert_int_equal(pthread_create(&o->th, NULL, probe_loop, o), 0);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Joins the threads; max and p99 latency in ms over all of them; returns the transactions. */
static int oltp_stop(struct oltp *o, int n, atomic_int *stop, double *max_ms, double *p99_ms)
{
    int total = 0, k = 0;

    *stop = 1;
    for (int i = 0; i < n; i++) {
        pthread_join(o[i].th, NULL);
        total += o[i].n;
    }
    int64_t *all = malloc(sizeof(int64_t) * (size_t)(total ? total : 1));
    for (int i = 0; i < n; i++) {
        if (o[i].errors)
            print_error("OLTP client %d: %d errors, first: %s\n", i, o[i].errors, o[i].err);
        assert_int_equal(o[i].errors, 0);     /* a protected statement is never cancelled */
        memcpy(all + k, o[i].lat_us, sizeof(int64_t) * (size_t)o[i].n);
        k += o[i].n;
        free(o[i].lat_us);
        PQfinish(o[i].c);
    }
    qsort(all, (size_t)total, sizeof(int64_t), cmp64);
    *max_ms = total ? all[total - 1] / 1000.0 : 0;
    /* nearest rank: the smallest latency that at least 99% of the transactions do not exceed */
    *p99_ms = total ? all[(total * 99 + 99) / 100 - 1] / 1000.0 : 0;
    free(all);
    return total;
}

/* ---- the report job ---- */

static const char report_first[] =
    "UPDATE accounts SET last_report_at = now() WHERE id >= (SELECT nextval('report_attempts') * 0)";

/* One attempt: BEGIN; the row-locking UPDATE; pg_sleep(sleep_s); COMMIT. Returns the SQLSTATE of
 * the error that ended it ("" when it committed); *ms is how long it took. */
static const char *report_attempt(PGconn *c, double sleep_s, int64_t *ms, char *msg, size_t msgcap)
{
    static char state[8];
    char sql[64];
    int64_t t0 = h_now_ms();
    const char *steps[3] = { report_first, sql, "COMMIT" };

    snprintf(sql, sizeof sql, "SELECT pg_sleep(%.1f)", sleep_s);
    state[0] = 0;
    msg[0] = 0;
    assert_int_equal(h_exec(c, "BEGIN"), 0);
    for (int i = 0; i < 3; i++) {
        PGresult *r = PQexec(c, steps[i]);
        if (PQresultStatus(r) == PGRES_FATAL_ERROR) {
            snprintf(state, sizeof state, "%s", PQresultErrorField(r, PG_DIAG_SQLSTATE));
            snprintf(msg, msgcap, "%s", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
            PQclear(r);
            *ms = h_now_ms() - t0;
            /* The guard may also have terminated the aborted transaction before its ROLLBACK. */
            r = PQexec(c, "ROLLBACK");
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                fprintf(stderr, "note: ROLLBACK after the error: %s", PQerrorMessage(c));
                PQreset(c);
                assert_int_equal(PQstatus(c), CONNECTION_OK);
            }
            PQclear(r);
            return state;
        }
        PQclear(r);
    }
    *ms = h_now_ms() - t0;
    return state;
}

static char *show_value(PGconn *adm, const char *cmd, const char *col, int row)
{
    PGresult *r = PQexec(adm, cmd);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int c = PQfnumber(r, col);
    assert_true(c >= 0);
    char *v = row < PQntuples(r) ? strdup(PQgetvalue(r, row, c)) : NULL;
    PQclear(r);
    return v;
}

static int show_rows(PGconn *adm, const char *cmd)
{
    PGresult *r = PQexec(adm, cmd);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int n = PQntuples(r);
    PQclear(r);
    return n;
}

/* ------------------------------------------------------------------------------------------ */

/* Nothing protected runs past guard_wait: no sample beyond the periodic ones; a preemptible statement
 * that blocks no one is left alone and never quarantined. Then one protected request that does run
 * past guard_wait triggers exactly one sample. */
static void test_no_extra_samples(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    atomic_int stop = 0;
    struct oltp o[2];
    PGconn *adm = h_console(&g_lane, NULL);
    H_ASSERT_CONNECTED(adm);
    long trig0 = h_metric_now(g_mport, TRIGGERED), per0 = h_metric_now(g_mport, PERIODIC);
    int64_t t0 = h_now_ms();
    assert_true(trig0 >= 0 && per0 >= 0);

    /* Protected traffic (guard_wait 5s) on rows nobody else locks, and analytics statements that
     * run long but block nothing. */
    oltp_start(o, 2, "calm", "UPDATE quiet SET v = v + 1 WHERE id = $1", 0, &stop);
    PGconn *a = client("report-quiet");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(h_exec(a, "BEGIN"), 0);
        assert_int_equal(h_exec(a, "SELECT count(*) FROM accounts"), 0);
        assert_int_equal(h_exec(a, "SELECT pg_sleep(0.5)"), 0);
        assert_int_equal(h_exec(a, "COMMIT"), 0);
    }
    double max_ms, p99_ms;
    int n = oltp_stop(o, 2, &stop, &max_ms, &p99_ms);
    int64_t elapsed = h_now_ms() - t0;
    long trig1 = h_metric_now(g_mport, TRIGGERED), per1 = h_metric_now(g_mport, PERIODIC);
    fprintf(stderr, "note: %d protected transactions, %lld ms: %ld periodic samples, %ld triggered\n", n,
            (long long)elapsed, per1 - per0, trig1 - trig0);
    assert_true(n > 50);
    assert_int_equal(trig1 - trig0, 0);
    assert_true(per1 - per0 <= elapsed / 200 + 3);   /* one per 200 ms, nothing more */
    assert_int_equal(show_rows(adm, "SHOW QUARANTINE"), 0);
    assert_int_equal(h_metric_now(g_mport, QUARANTINED), 0);

    /* A protected request past guard_wait (50ms on lane oltp) triggers one sample, once. */
    PGconn *p = client("web");
    assert_int_equal(h_exec(p, "SELECT pg_sleep(0.4)"), 0);
    long trig2 = h_metric_now(g_mport, TRIGGERED);
    fprintf(stderr, "note: one protected 400 ms statement: %ld triggered samples\n", trig2 - trig1);
    assert_true(trig2 - trig1 >= 1 && trig2 - trig1 <= 2);
    PQfinish(p);
    PQfinish(a);
    PQfinish(adm);
    h_pass();
}

/* A protected lane's transaction that blocks another protected one is never cancelled or quarantined. */
static void test_protected_never_acted_on(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *adm = h_console(&g_lane, NULL);
    H_ASSERT_CONNECTED(adm);
    for (int i = 0; i < 4; i++) {
        PGconn *h = client("web"), *w = client("web");
        assert_int_equal(h_exec(h, "BEGIN"), 0);
        assert_int_equal(h_exec(h, "UPDATE quiet SET v = v + 1 WHERE id = 8"), 0);
        assert_int_equal(PQsendQuery(w, "UPDATE quiet SET v = v + 1 WHERE id = 8"), 1);
        assert_int_equal(h_exec(h, "SELECT pg_sleep(0.3)"), 0);
        assert_int_equal(h_exec(h, "COMMIT"), 0);
        assert_int_equal(h_wait_result(w, 5000), 0);
        PGresult *r = PQgetResult(w);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        while ((r = PQgetResult(w)))
            PQclear(r);
        PQfinish(h);
        PQfinish(w);
    }
    PGresult *r = PQexec(adm, "SHOW GUARD");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r); i++)
        assert_string_not_equal(PQgetvalue(r, i, 0), "oltp");
    PQclear(r);
    assert_int_equal(show_rows(adm, "SHOW QUARANTINE"), 0);
    PQfinish(adm);
    h_pass();
}

#define WINDOW_S 30               /* issue 18's measured period, alone and during */
#define MAX_WAIT_MS 100.0
/* The control client: lock-free requests on rows nobody else writes, through a lane whose guard_wait
 * (5 s) they never reach; their longest latency is the machine's own stall. */
#define CONTROL_SQL "UPDATE quiet SET v = v + 1 WHERE id = $1"

/* Issue 18's pattern: three attempts reach PostgreSQL and are cancelled, then the shape is refused
 * at once with 55P03 until RELEASE; OLTP lock waits stay short. */
static void test_quarantine_of_repeat_blocker(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    atomic_int stop = 0;
    struct oltp o[OLTP_CLIENTS], probe, ctl;
    double alone_max, alone_p99, max_ms, p99_ms, palone_max, palone_p99, pmax_ms, pp99_ms, cmax[2], cp99;
    char msg[512];
    int64_t ms;

    /* OLTP alone first, for the comparison: the closed loop and the open-loop probe. */
    size_t log0 = pg_log_size();
    oltp_start(o, OLTP_CLIENTS, "web", upsert_sql, 1, &stop);
    probe_start(&probe, &stop);
    oltp_start(&ctl, 1, "calm", CONTROL_SQL, 0, &stop);
    usleep(WINDOW_S * 1000000);   /* the measured period, not a synchronisation */
    int palone = oltp_stop(&probe, 1, &stop, &palone_max, &palone_p99);
    oltp_stop(&ctl, 1, &stop, &cmax[0], &cp99);
    int alone = oltp_stop(o, OLTP_CLIENTS, &stop, &alone_max, &alone_p99);

    int alone_waits;
    double alone_wait = lock_wait_max(log0, "web", &alone_waits);

    /* The same, with the report job retried every 2 s through the window. */
    size_t log1 = pg_log_size();
    long trig0 = h_metric_now(g_mport, TRIGGERED);
    stop = 0;
    oltp_start(o, OLTP_CLIENTS, "web", upsert_sql, 1, &stop);
    probe_start(&probe, &stop);
    oltp_start(&ctl, 1, "calm", CONTROL_SQL, 0, &stop);
    PGconn *rep = client("report-daily");
    int cancelled = 0, refused = 0, attempt = 0;
    int64_t t0 = h_now_ms(), refused_max = 0;
    while (h_now_ms() - t0 < WINDOW_S * 1000) {
        const char *st = report_attempt(rep, 3.0, &ms, msg, sizeof msg);
        attempt++;
        fprintf(stderr, "note: report attempt %d: %s after %lld ms: %s\n", attempt, *st ? st : "committed",
                (long long)ms, msg);
        if (attempt <= 3) {
            assert_string_equal(st, "57014");   /* reached PostgreSQL, cancelled by the guard */
            assert_non_null(strstr(msg, "pglane cancelled this statement to protect lane oltp"));
            cancelled++;
        } else {
            assert_string_equal(st, "55P03");   /* refused by pglane at once, never sent */
            assert_non_null(strstr(msg, "quarantined after 3 contention guard actions protecting lane oltp"));
            assert_non_null(strstr(msg, "accounts"));
            if (ms > refused_max)
                refused_max = ms;
            refused++;
        }
        /* Each attempt that reached PostgreSQL ran its UPDATE (and nextval) there: the first three only. */
        assert_int_equal(attempts(), attempt < 3 ? attempt : 3);
        usleep(2000000);          /* the report's scheduler retries after 2 s */
    }
    int pduring = oltp_stop(&probe, 1, &stop, &pmax_ms, &pp99_ms);
    oltp_stop(&ctl, 1, &stop, &cmax[1], &cp99);
    int during = oltp_stop(o, OLTP_CLIENTS, &stop, &max_ms, &p99_ms);
    long trig1 = h_metric_now(g_mport, TRIGGERED);
    int waits;
    double wait = lock_wait_max(log1, "web", &waits);
    fprintf(stderr, "note: OLTP lock waits over 10 ms (PostgreSQL's log): alone %d, longest %.1f ms; during the "
            "report attempts %d, longest %.1f ms (guard_wait 50 ms)\n", alone_waits, alone_wait, waits, wait);
    /* The guard's steps as pglane logged them at debug level. */
    char *plog = h_pglane_log(&g_lane);
    long signal_max, sample_max;
    int signals = log_numbers(plog, "pg_cancel_backend() signalled it ", &signal_max);
    int samples = log_numbers(plog, "triggered sample answered in ", &sample_max);
    free(plog);
    fprintf(stderr, "note: guard steps: %d triggered samples answered, the slowest in %ld us; %d cancels as "
            "pg_cancel_backend() on the monitor's connection, the slowest %ld us\n", samples, sample_max, signals,
            signal_max);
    fprintf(stderr, "note: closed loop (%d clients) alone: %d tx, p99 %.1f ms, max %.1f ms; during the report "
            "attempts: %d tx, p99 %.1f ms, longest %.1f ms (guard_wait 50 ms); %ld triggered samples\n",
            OLTP_CLIENTS, alone, alone_p99, alone_max, during, p99_ms, max_ms, trig1 - trig0);
    fprintf(stderr, "note: open-loop probe (20/s, %d s): alone %d tx, p99 %.1f ms, max %.1f ms; during %d tx, "
            "p99 %.1f ms (x%.2f), max %.1f ms; refused attempts took at most %lld ms\n",
            WINDOW_S, palone, palone_p99, palone_max, pduring, pp99_ms, pp99_ms / palone_p99, pmax_ms,
            (long long)refused_max);
    assert_int_equal(cancelled, 3);
    assert_true(attempt >= WINDOW_S / 3 && refused == attempt - 3);
    assert_int_equal(attempts(), 3);          /* the third attempt was the last to reach PostgreSQL */
    assert_true(trig1 - trig0 >= 3);
    assert_true(signals >= 3);               /* the cancels went over the monitor's own connection */
    /* "At once": a refused attempt (BEGIN, the refused UPDATE, ROLLBACK) never waits for anything. */
    /* Issue 18's targets: the longest OLTP lock wait (guard_wait, 50 ms, and the guard's reaction) at
     * most 100 ms, the probe's p99 during at most 3x its p99 alone, refused attempts "at once" (under
     * 50 ms: they never wait for anything). They hold while the machine serves a lock-free request
     * within 100 ms: the control client (lane calm, rows nobody else writes) measures that in both
     * phases. When other jobs on the 2 cores stall it longer (a load average of 25-30), the sample, the
     * signal and the waiters' wake-up all wait for a CPU, the stalls grow and hit more of the probe's
     * requests: then each bound is that stall instead. The probe's p99 alone is often under 1 ms, where
     * 3x is within the machine's own jitter (one run in four: 0.8 ms alone, 2.7 ms during, while the
     * control client's longest request was 4.6 ms): its bound is never below the longest lock-free
     * request of the same run, which a guard that failed to act (lock waits of seconds) still exceeds. */
    double stall = cmax[0] > cmax[1] ? cmax[0] : cmax[1];
    int overloaded = stall > MAX_WAIT_MS;
    double bound = overloaded ? stall : MAX_WAIT_MS, pbound = 3 * palone_p99, rbound = overloaded ? stall : 50;
    if (pbound < stall)
        pbound = stall;
    fprintf(stderr, "note: control client's longest request alone / during: %.1f / %.1f ms; bounds: lock wait %.1f "
            "ms, probe p99 during %.1f ms, refused attempts %.1f ms (%s)\n", cmax[0], cmax[1], bound, pbound, rbound,
            overloaded ? "the machine stalled a lock-free request by more than 100 ms" : "issue 18's");
    assert_true(waits >= 3);
    assert_true(wait <= bound);
    assert_true(pp99_ms <= pbound);
    assert_true(refused_max < rbound);

    /* The console shows the quarantine and the advice. */
    PGconn *adm = h_console(&g_lane, NULL);
    H_ASSERT_CONNECTED(adm);
    assert_int_equal(show_rows(adm, "SHOW QUARANTINE"), 1);
    char *fp = show_value(adm, "SHOW QUARANTINE", "fingerprint", 0);
    char *lane = show_value(adm, "SHOW QUARANTINE", "lane", 0);
    char *prot = show_value(adm, "SHOW QUARANTINE", "protected_lane", 0);
    char *count = show_value(adm, "SHOW QUARANTINE", "count", 0);
    assert_string_equal(lane, "analytics");
    assert_string_equal(prot, "oltp");
    assert_string_equal(count, "3");
    assert_int_equal(h_metric_now(g_mport, QUARANTINED), 1);
    PGresult *r = PQexec(adm, "SHOW GUARD");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int found = 0, fc = PQfnumber(r, "fingerprint");
    for (int i = 0; i < PQntuples(r); i++) {
        if (strcmp(PQgetvalue(r, i, fc), fp) != 0)
            continue;
        found = 1;
        fprintf(stderr, "note: SHOW GUARD advice: relation %s, lock_mode %s, shape \"%s\", blocker_query \"%s\", blocked_query "
                "\"%s\", pattern \"%s\"\n", PQgetvalue(r, i, PQfnumber(r, "relation")),
                PQgetvalue(r, i, PQfnumber(r, "lock_mode")), PQgetvalue(r, i, PQfnumber(r, "shape")),
                PQgetvalue(r, i, PQfnumber(r, "blocker_query")),
                PQgetvalue(r, i, PQfnumber(r, "blocked_query")), PQgetvalue(r, i, PQfnumber(r, "pattern")));
        assert_string_equal(PQgetvalue(r, i, PQfnumber(r, "relation")), "accounts");
        assert_string_equal(PQgetvalue(r, i, PQfnumber(r, "pattern")), "row locks held across a long transaction");
        assert_non_null(strstr(PQgetvalue(r, i, PQfnumber(r, "fix")), "short transactions"));
        assert_non_null(strstr(PQgetvalue(r, i, PQfnumber(r, "blocked_query")), "insert into accounts"));
        assert_non_null(strstr(PQgetvalue(r, i, PQfnumber(r, "shape")), "update accounts set last_report_at"));
        assert_string_equal(PQgetvalue(r, i, PQfnumber(r, "quarantined")), "yes");
    }
    PQclear(r);
    assert_true(found);
    char *log = h_pglane_log(&g_lane);
    assert_non_null(strstr(log, "guard: quarantined statement shape"));
    free(log);

    /* Outside a transaction block and over the extended protocol: refused the same way, and the
     * connection stays usable. */
    PGconn *x = client("report-adhoc");
    r = PQexecParams(x, report_first, 0, NULL, NULL, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "55P03");
    assert_non_null(PQresultErrorField(r, PG_DIAG_MESSAGE_HINT));
    PQclear(r);
    assert_int_equal(PQtransactionStatus(x), PQTRANS_IDLE);
    r = PQexec(x, report_first);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "55P03");
    PQclear(r);
    assert_int_equal(h_exec(x, "SELECT 1"), 0);
    PQfinish(x);
    assert_int_equal(attempts(), 3);

    /* Bad RELEASE arguments are errors; RELEASE of the fingerprint lets the report run again. */
    r = PQexec(adm, "RELEASE nothex");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42601");
    PQclear(r);
    r = PQexec(adm, "RELEASE 0123456789abcdef");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42704");
    PQclear(r);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "RELEASE %s", fp);
    r = PQexec(adm, cmd);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_int_equal(show_rows(adm, "SHOW QUARANTINE"), 0);
    assert_int_equal(h_metric_now(g_mport, QUARANTINED), 0);
    const char *st = report_attempt(rep, 0.2, &ms, msg, sizeof msg);
    assert_string_equal(st, "");              /* committed: OLTP is quiet now */
    assert_int_equal(attempts(), 4);
    log = h_pglane_log(&g_lane);
    assert_non_null(strstr(log, "leaves quarantine (RELEASE in the admin console)"));
    free(log);
    /* The connection that was refused stays usable. */
    assert_int_equal(h_exec(rep, "SELECT 1"), 0);
    free(fp);
    free(lane);
    free(prot);
    free(count);
    PQfinish(rep);
    PQfinish(adm);
    h_pass();
}

/* The blocker's backend logs in as another user than the monitor's connection, so pg_cancel_backend()
 * there would be refused: the guard sends a CancelRequest instead, and the blocker is still cancelled
 * with pglane's message while the protected statement waits well under a second. */
static void test_cancel_request_for_another_user(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    char *log0 = h_pglane_log(&g_lane);
    size_t off = strlen(log0);
    free(log0);
    PGconn *rep = client("report-other-user user=" H_MD5_USER " password=" H_MD5_PASSWORD);
    PGconn *w = client("web");
    assert_int_equal(h_exec(rep, "BEGIN"), 0);
    assert_int_equal(h_exec(rep, "UPDATE accounts SET last_report_at = now() WHERE id = 2"), 0);
    int pid = (int)h_pg_long(rep, "SELECT pg_backend_pid()");
    int64_t t0 = h_now_ms();
    assert_int_equal(PQsendQuery(w, "UPDATE accounts SET events = events + 1 WHERE id = 2"), 1);
    PGresult *r = PQexec(rep, "SELECT pg_sleep(5)");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014");
    assert_non_null(strstr(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY),
                           "pglane cancelled this statement to protect lane oltp"));
    PQclear(r);
    assert_int_equal(h_wait_result(w, 5000), 0);
    int64_t waited = h_now_ms() - t0;
    r = PQgetResult(w);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    while ((r = PQgetResult(w)))
        PQclear(r);
    assert_int_equal(h_exec(rep, "ROLLBACK"), 0);
    /* PostgreSQL closes the cancel connection after it signalled the backend, which may be after the
     * cancelled statement's error arrived: pglane logs the close when it sees it. */
    char *log = NULL, pat[96];
    snprintf(pat, sizeof pat, "cancel for backend %d: PostgreSQL closed the cancel connection", pid);
    for (int64_t until = h_now_ms() + 5000; h_now_ms() < until; h_sleep_ms(20)) {
        free(log);
        log = h_pglane_log(&g_lane);
        if (strstr(log + off, pat))
            break;
    }
    fprintf(stderr, "note: blocker of user " H_MD5_USER " (backend %d) cancelled by CancelRequest; the protected "
            "statement waited %lld ms\n", pid, (long long)waited);
    assert_non_null(strstr(log + off, pat));
    snprintf(pat, sizeof pat, "cancel for backend %d: pg_cancel_backend()", pid);
    assert_null(strstr(log + off, pat));
    free(log);
    assert_true(waited < 1000);
    PQfinish(rep);
    PQfinish(w);
    h_pass();
}

/* Last: pglane drains and exits cleanly after all of the above. */
H_CLEAN_EXIT_TEST(test_clean_exit, &g_lane)

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_no_extra_samples),
        H_TEST(test_protected_never_acted_on),
        H_TEST(test_quarantine_of_repeat_blocker),
        H_TEST(test_cancel_request_for_another_user),
        H_TEST(test_clean_exit),
    };
    return H_RUN_GROUP("integration_guard", tests, .pg = &g_pg, .skip_direct = 1, .setup = fixtures);
}
