/*
 * The adaptive cap (issue 16) against a real PostgreSQL 15: lane analytics (size 4) protects lane
 * main with target_p99. When main's p99 misses the target, analytics' effective size shrinks (its
 * pools hand out no connection above it, running queries finish, nothing is cancelled); when the
 * target is met again it grows back to size. Each change is one log line with the p99 that caused
 * it, and the log, SHOW LANES' effective_size and pglane_lane_effective_size agree.
 *
 * test_adapt_wiring makes main miss its target for sure (pg_sleep longer than the target) and then
 * meet it for sure (a RELOAD raises the target); test_adapt_cpu_load uses real CPU contention:
 * main's p99 is measured alone and under four CPU-heavy analytics queries, and the target is set
 * between the two by RELOAD.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct h_pg g_pg;
static PGconn *g_super;

static void adapt_conf(char *buf, size_t n, int mport, const char *analytics_extra)
{
    snprintf(buf, n,
             "[pglane]\n"
             "listen = 127.0.0.1:@PORT@\n"
             "auth_type = md5\n"
             "auth_file = @AUTHFILE@\n"
             "pool_mode = transaction\n"
             "default_lane = main\n"
             "admin_users = " H_USER "\n"
             "metrics_listen = 127.0.0.1:%d\n"
             "log_level = info\n"
             "\n[server.pg]\nhost = 127.0.0.1\nport = @PGPORT@\n"
             "\n[lane.main]\nserver = pg\nsize = 8\nqueue_timeout = 60s\n"
             "\n[lane.analytics]\nserver = pg\nsize = 4\nqueue_timeout = 120s\n"
             "protects = main\n%s"
             "\n[route.reports]\napplication_name = report-*\nlane = analytics\n",
             mport, analytics_extra);
}

static PGconn *client(const struct h_pglane *l, const char *app)
{
    return h_connect_app(l, app);
}

/* Rewrites the running config with one line replaced, then RELOAD through the console. */
static void reload_with(struct h_pglane *l, PGconn *adm, const char *from, const char *to)
{
    char conf[8192], *text = h_read_file(l->conf_path);

    assert_non_null(text);
    snprintf(conf, sizeof conf, "%s", text);
    free(text);
    h_conf_replace(conf, sizeof conf, from, to);
    assert_int_equal(h_write_file(l->conf_path, conf), 0);
    assert_int_equal(h_exec(adm, "RELOAD"), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Client loops in threads: each runs `sql` on its own connection until stop is set. */

#define MAXLAT 200000

struct loop {
    const struct h_pglane *l;
    const char *app, *sql;
    int steps;             /* 0: sql alone; else BEGIN, sql `steps` times, COMMIT */
    atomic_int *stop;
    pthread_t th;
    long ok, errors;
    /* latencies of the main-lane loop: end time (ms) and duration (us) of each transaction */
    int64_t *end_ms, *lat_us;
    atomic_long *n;
};

static void *loop_run(void *arg)
{
    struct loop *lp = arg;
    PGconn *c = client(lp->l, lp->app);

    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "%s: %s\n", lp->app, PQerrorMessage(c));
        lp->errors++;
        PQfinish(c);
        return NULL;
    }
    while (!atomic_load(lp->stop)) {
        struct timespec a, b;
        PGresult *r;

        clock_gettime(CLOCK_MONOTONIC, &a);
        if (lp->steps) {
            int bad = 0;

            r = PQexec(c, "BEGIN");
            bad |= PQresultStatus(r) != PGRES_COMMAND_OK;
            PQclear(r);
            for (int i = 0; i < lp->steps; i++) {
                r = PQexec(c, lp->sql);
                bad |= PQresultStatus(r) != PGRES_TUPLES_OK;
                PQclear(r);
            }
            r = PQexec(c, bad ? "ROLLBACK" : "COMMIT");
            if (PQresultStatus(r) == PGRES_COMMAND_OK && !bad) {   /* counted below as a success */
                PQclear(r);
                r = PQmakeEmptyPGresult(c, PGRES_TUPLES_OK);
            }
        } else {
            r = PQexec(c, lp->sql);
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            lp->ok++;
        } else {
            fprintf(stderr, "%s: %s", lp->app, PQerrorMessage(c));
            lp->errors++;
        }
        PQclear(r);
        if (PQstatus(c) != CONNECTION_OK)
            break;
        if (lp->n) {
            /* This loop is n's only writer: the entry is filled, then counted (a reader of n sees it
             * whole). */
            long i = atomic_load_explicit(lp->n, memory_order_relaxed);

            if (i < MAXLAT) {
                lp->end_ms[i] = (int64_t)b.tv_sec * 1000 + b.tv_nsec / 1000000;
                lp->lat_us[i] = ((int64_t)b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000;
            }
            atomic_store_explicit(lp->n, i + 1, memory_order_release);
        }
    }
    PQfinish(c);
    return NULL;
}

static void loop_start(struct loop *lp, const struct h_pglane *l, const char *app, const char *sql,
                       atomic_int *stop)
{
    memset(lp, 0, sizeof(*lp));
    lp->l = l;
    lp->app = app;
    lp->sql = sql;
    lp->stop = stop;
    assert_int_equal(pthread_create(&lp->th, NULL, loop_run, lp), 0);
}

static long loops_join(struct loop *lps, int n)
{
    long errors = 0;

    for (int i = 0; i < n; i++) {
        pthread_join(lps[i].th, NULL);
        errors += lps[i].errors;
    }
    return errors;
}

/* ------------------------------------------------------------------------------------------ */
/* The log: "lane analytics: effective size A -> B: lane main p99 X ms over N transactions, target_p99 T ms" */

struct change { int from, to; double p99; long target; };

static int log_changes(const struct h_pglane *l, struct change *out, int max, int *reload_changes)
{
    char *log = h_pglane_log(l), *at = log;
    int n = 0;

    *reload_changes = 0;
    while ((at = strstr(at, "lane analytics: effective size ")) != NULL) {
        struct change c = { 0 };
        char lane[64];

        if (sscanf(at, "lane analytics: effective size %d -> %d: lane %63s p99 %lf ms over %*d transactions, "
                       "target_p99 %ld ms", &c.from, &c.to, lane, &c.p99, &c.target) == 5) {
            if (n < max)
                out[n++] = c;
        } else if (sscanf(at, "lane analytics: effective size %d -> %d: reload", &c.from, &c.to) == 2) {
            c.target = -1;          /* a reload's clamp */
            if (n < max)
                out[n++] = c;
            ++*reload_changes;
        }
        at++;
    }
    free(log);
    return n;
}

/* The logged changes form one chain from 4 that ends at `now`; every decrease came from a p99 over
 * its target, every increase from one under. Returns the number of decreases. */
static int check_log(const struct h_pglane *l, int now)
{
    struct change ch[512];
    int reloads, n = log_changes(l, ch, 512, &reloads), prev = 4, downs = 0;

    for (int i = 0; i < n; i++) {
        if (ch[i].from != prev)
            fail_msg("log line %d: effective size %d -> %d, but it was %d", i, ch[i].from, ch[i].to, prev);
        if (ch[i].target >= 0 && ch[i].to < ch[i].from) {
            downs++;
            if (!(ch[i].p99 > (double)ch[i].target))
                fail_msg("decrease %d -> %d with p99 %.1f ms under target %ld ms", ch[i].from, ch[i].to,
                         ch[i].p99, ch[i].target);
        }
        if (ch[i].target >= 0 && ch[i].to > ch[i].from && !(ch[i].p99 <= (double)ch[i].target))
            fail_msg("increase %d -> %d with p99 %.1f ms over target %ld ms", ch[i].from, ch[i].to, ch[i].p99,
                     ch[i].target);
        prev = ch[i].to;
    }
    assert_int_equal(prev, now);
    return downs;
}

static long effective(PGconn *adm)
{
    return h_show_val(adm, "SHOW LANES", "analytics", "effective_size");
}

/* Polls effective_size until cond(value) or the deadline; returns the last value. */
static long await_eff(PGconn *adm, int (*cond)(long), int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    long v;

    while (!cond(v = effective(adm)) && h_now_ms() < deadline)
        h_sleep_ms(50);
    return v;
}

static int below_4(long v) { return v >= 1 && v < 4; }
static int is_1(long v) { return v == 1; }
static int is_2(long v) { return v == 2; }
static int is_4(long v) { return v == 4; }

static long active_sleeps(const char *sql)
{
    char q[256];

    snprintf(q, sizeof q, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '%s'", sql);
    return h_pg_long(g_super, q);
}

/* ------------------------------------------------------------------------------------------ */

#define SLEEP_SQL "SELECT pg_sleep(0.2)"

static void test_adapt_wiring(void **state)
{
    struct h_pglane l = { 0 };
    char conf[8192], series[64];
    atomic_int stop = 0;
    struct loop an[4], oltp[2];
    int mport = h_free_port();
    int64_t until;
    long v, m;

    (void)state;
    /* main's transactions take 20 ms: a 10 ms target is missed whatever the load. */
    adapt_conf(conf, sizeof conf, mport, "target_p99 = 10ms\nadapt_interval = 200ms\nadapt_min_samples = 5\n"
                                         "set.max_parallel_workers_per_gather = 0\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *adm = h_console(&l, NULL);
    H_ASSERT_CONNECTED(adm);
    assert_int_equal(effective(adm), 4);
    snprintf(series, sizeof series, "pglane_lane_effective_size{lane=\"analytics\"}");
    assert_int_equal(h_metric_now(mport, series), 4);
    assert_int_equal(h_metric_now(mport, "pglane_lane_effective_size{lane=\"main\"}"), 8);
    {
        PGresult *r = PQexec(adm, "SHOW CONFIG");
        int found = 0;

        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        for (int i = 0; i < PQntuples(r); i++) {
            found += strcmp(PQgetvalue(r, i, 0), "lane.analytics.protects") == 0 &&
                     strcmp(PQgetvalue(r, i, 1), "main") == 0;
            found += strcmp(PQgetvalue(r, i, 0), "lane.analytics.target_p99") == 0 &&
                     strcmp(PQgetvalue(r, i, 1), "10ms") == 0;
            found += strcmp(PQgetvalue(r, i, 0), "lane.analytics.min_size") == 0 &&
                     strcmp(PQgetvalue(r, i, 1), "1") == 0;
        }
        PQclear(r);
        assert_int_equal(found, 3);
    }

    for (int i = 0; i < 4; i++)
        loop_start(&an[i], &l, "report-w", SLEEP_SQL, &stop);
    for (int i = 0; i < 2; i++)
        loop_start(&oltp[i], &l, "web", "SELECT pg_sleep(0.02)", &stop);

    /* 4 -> 2 -> 1 (min_size), each decrease once the previous one has drained. */
    v = await_eff(adm, is_1, 30000);
    assert_int_equal(v, 1);
    /* The pool comes down to the cap as queries end; the other clients wait, nothing is cancelled. */
    assert_int_equal(h_show_wait(adm, "SHOW LANES", "analytics", "servers_used", 1, 5000), 1);
    until = h_now_ms() + 1500;
    while (h_now_ms() < until) {
        assert_true(h_show_val(adm, "SHOW LANES", "analytics", "servers_used") <= 1);
        assert_true(active_sleeps(SLEEP_SQL) <= 1);
        h_sleep_ms(50);
    }
    assert_true(h_show_val(adm, "SHOW LANES", "analytics", "clients_waiting") >= 2);
    assert_int_equal(h_metric_now(mport, series), 1);
    check_log(&l, 1);

    /* A reload that raises min_size moves the effective size into the new bounds, and says so. */
    reload_with(&l, adm, "protects = main\n", "protects = main\nmin_size = 2\n");
    assert_int_equal(await_eff(adm, is_2, 5000), 2);
    {
        int reloads;
        struct change ch[512];

        (void)log_changes(&l, ch, 512, &reloads);
        assert_int_equal(reloads, 1);
    }
    /* A reload that keeps bounds keeps the effective size (the target still missed: it stays 2). */
    reload_with(&l, adm, "adapt_min_samples = 5\n", "adapt_min_samples = 6\n");
    assert_int_equal(effective(adm), 2);

    /* The target met: back to size, one step at a time. */
    reload_with(&l, adm, "target_p99 = 10ms\n", "target_p99 = 10s\n");
    v = await_eff(adm, is_4, 30000);
    assert_int_equal(v, 4);
    m = h_metric_now(mport, series);
    assert_int_equal(m, 4);
    assert_int_equal(h_show_wait(adm, "SHOW LANES", "analytics", "servers_used", 4, 5000), 4);

    atomic_store(&stop, 1);
    assert_int_equal(loops_join(an, 4), 0);        /* no analytics query was cancelled or failed */
    assert_int_equal(loops_join(oltp, 2), 0);
    assert_true(check_log(&l, 4) >= 2);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

/*
 * main's transactions: BEGIN, 10 short CPU-bound statements, COMMIT. Twelve round trips add up the
 * waits for a CPU, so a transaction's time follows the CPU share pglane's load leaves it rather than
 * the rare long stall of one statement that the rest of a loaded machine causes: the p99 alone and
 * under load are far apart.
 */
#define OLTP_SQL "SELECT count(*) FROM generate_series(1, 1000)"
#define OLTP_STEPS 10
/* A parallel scan (six workers each): the four queries keep up to 28 processes busy on the CPUs, enough
 * to stand out against whatever else loads the machine. */
#define HEAVY_SQL "SELECT count(*) FROM big WHERE v % 7 = 3"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* p99 (ms) of the main-lane transactions that ended in [from, to). */
static double p99_between(const struct loop *lp, int64_t from, int64_t to)
{
    long n = atomic_load_explicit(lp->n, memory_order_acquire), k = 0;
    int64_t *v;
    double p;

    if (n > MAXLAT)
        n = MAXLAT;
    v = malloc(sizeof(*v) * (size_t)(n ? n : 1));
    assert_non_null(v);
    for (long i = 0; i < n; i++)
        if (lp->end_ms[i] >= from && lp->end_ms[i] < to)
            v[k++] = lp->lat_us[i];
    qsort(v, (size_t)k, sizeof(*v), cmp_i64);
    p = k ? (double)v[(99 * k + 99) / 100 - 1] / 1000.0 : -1;
    print_message("  %ld transactions, p50 %.2f ms, p99 %.2f ms\n", k, k ? (double)v[k / 2] / 1000.0 : -1, p);
    free(v);
    return p;
}

static void test_adapt_cpu_load(void **state)
{
    struct h_pglane l = { 0 };
    char conf[8192], line[64];
    atomic_int stop_oltp = 0, stop_an = 0;
    atomic_long n = 0;
    struct loop an[4], oltp;
    int mport = h_free_port();
    int64_t t0, t1;
    double alone, loaded, target, mid;
    long v;

    (void)state;
    /* The controller is on from the start, with a target nothing misses. */
    adapt_conf(conf, sizeof conf, mport, "target_p99 = 1h\nadapt_interval = 1s\nadapt_min_samples = 10\n"
                                         "set.max_parallel_workers_per_gather = 6\n");
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *adm = h_console(&l, NULL);
    H_ASSERT_CONNECTED(adm);

    memset(&oltp, 0, sizeof(oltp));
    oltp.l = &l;
    oltp.app = "web";
    oltp.sql = OLTP_SQL;
    oltp.steps = OLTP_STEPS;
    oltp.stop = &stop_oltp;
    oltp.end_ms = calloc(MAXLAT, sizeof(int64_t));
    oltp.lat_us = calloc(MAXLAT, sizeof(int64_t));
    oltp.n = &n;
    assert_non_null(oltp.end_ms);
    assert_non_null(oltp.lat_us);
    assert_int_equal(pthread_create(&oltp.th, NULL, loop_run, &oltp), 0);
    h_sleep_ms(500);                   /* warm-up, not synchronisation: these are not measured */
    /* The measuring period of main alone: three windows of 1 s, the quietest one counts (a burst of
     * other work on the machine in one window must not pass for main's p99 alone). */
    alone = 0;
    for (int w = 0; w < 3; w++) {
        t0 = h_now_ms();
        h_sleep_ms(1000);
        t1 = h_now_ms();
        print_message("main alone (window %d):\n", w + 1);
        double p = p99_between(&oltp, t0, t1);
        assert_true(p > 0);
        if (alone == 0 || p < alone)
            alone = p;
    }

    for (int i = 0; i < 4; i++)
        loop_start(&an[i], &l, "report-cpu", HEAVY_SQL, &stop_an);
    assert_int_equal(h_show_wait(adm, "SHOW LANES", "analytics", "servers_used", 4, 10000), 4);
    h_sleep_ms(500);
    /* The measuring periods of main under load: up to three, until the load shows (on a machine busy
     * with other work, pglane's own load may need a longer look to stand out). */
    loaded = 0;
    for (int round = 0; round < 3 && loaded < 1.6 * alone; round++) {
        t0 = h_now_ms();
        h_sleep_ms(4000);
        t1 = h_now_ms();
        print_message("main with 4 CPU-heavy analytics queries (period %d):\n", round + 1);
        double p = p99_between(&oltp, t0, t1);
        if (p > loaded)
            loaded = p;
    }
    assert_int_equal(effective(adm), 4);          /* target 1h: never missed */
    /* Between the two, on a log scale and nearer the loaded p99 (a^1/4 b^3/4): the shrink needs one
     * window over the target under load, the growth back several in a row under it alone. */
    for (target = 1; target * target < alone * loaded; target++)
        ;
    mid = target;
    for (target = 1; target * target < mid * loaded; target++)
        ;
    print_message("target_p99 %.0f ms (alone %.2f, loaded %.2f: %.1fx)\n", target, alone, loaded,
                  loaded / alone);
    /* The scenario needs a target that the load misses and main alone meets. */
    assert_true(loaded >= 1.6 * alone);
    snprintf(line, sizeof line, "target_p99 = %.0fms\n", target);
    reload_with(&l, adm, "target_p99 = 1h\n", line);

    v = await_eff(adm, below_4, 30000);
    if (!below_4(v))
        h_pglane_dump_log(&l, 4000);
    assert_true(below_4(v));
    print_message("effective size %ld under load\n", v);
    /* Nothing above the cap once running queries have ended (the cap may move meanwhile). */
    {
        int64_t deadline = h_now_ms() + 15000;
        long used, eff;

        do {
            used = h_show_val(adm, "SHOW LANES", "analytics", "servers_used");
            eff = effective(adm);
            if (used <= eff)
                break;
            h_sleep_ms(50);
        } while (h_now_ms() < deadline);
        assert_true(used <= eff);
    }

    atomic_store(&stop_an, 1);
    assert_int_equal(loops_join(an, 4), 0);        /* every analytics query completed */
    v = await_eff(adm, is_4, 90000);
    if (v != 4)
        h_pglane_dump_log(&l, 4000);
    assert_int_equal(v, 4);
    assert_int_equal(h_metric_now(mport, "pglane_lane_effective_size{lane=\"analytics\"}"), 4);

    atomic_store(&stop_oltp, 1);
    assert_int_equal(loops_join(&oltp, 1), 0);
    assert_true(check_log(&l, 4) >= 1);
    free(oltp.end_ms);
    free(oltp.lat_us);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* A table whose scan takes six parallel workers, and room for 4 x 6 of them. */
static int fixtures(void)
{
    if (h_pg_exec(&g_pg, H_DB, "CREATE TABLE big AS SELECT g AS v FROM generate_series(1, 2000000) g;"
                               "ALTER TABLE big SET (parallel_workers = 6);"
                               "ANALYZE big; ALTER TABLE big OWNER TO " H_USER) != 0 ||
        h_pg_exec(&g_pg, "postgres", "ALTER SYSTEM SET max_worker_processes = 32") != 0 ||
        h_pg_exec(&g_pg, "postgres", "ALTER SYSTEM SET max_parallel_workers = 32") != 0 ||
        h_pg_ctl(&g_pg, "restart") != 0)
        return -1;
    PQreset(g_super);
    return PQstatus(g_super) == CONNECTION_OK ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_adapt_wiring),
        H_TEST(test_adapt_cpu_load),
    };

    return H_RUN_GROUP("integration: adaptive cap (issue 16)", tests, .pg = &g_pg, .super = &g_super,
                       .skip_direct = 1, .setup = fixtures);
}
