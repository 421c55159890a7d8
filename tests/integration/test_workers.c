/*
 * Workers issue (#19), against real PostgreSQL through pglane with `workers = 4` (four event loops,
 * one process): a lane's size is one global cap (a lane of size 3 never has more than 3 backends in
 * pg_stat_activity while 64 clients spread over the workers run transactions, sampled every 10 ms),
 * its queue is one FIFO across workers (200 clients queued one after another start in their arrival
 * order, within one position per worker; the four workers' consoles together count them all),
 * max_user_connections and max_db_connections hold across workers, a login does not wait for a busy
 * lane on any worker, SIGTERM drains every worker, and PQcancel reaches the query whatever worker
 * took the cancel connection (100 of 100), and /metrics counts every worker's clients and transactions. The cap, login and drain tests also run without the key
 * (the default, one worker), so they mean something with and without the feature; tenant_max holds
 * across workers too (fair queuing's order is per worker). PGLANE_WORKERS_CAP_S sets the length of the
 * 4-worker cap run (default 20 s, the issue's).
 */
#include "tests/integration/harness.h"
#include "tests/integration/prom_check.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct h_pg g_pg;
static PGconn *g_super;
static char g_userlist[H_PATH];

#define WORKERS 4
#define CAP_USER "wk_cap"          /* routed to lane capped; its backends are the lane's */
#define CAP_PASSWORD "wkcappass"
#define MAX_WORKERS 64

static int fixtures(void)
{
    if (h_pg_exec(&g_pg, "postgres", "CREATE ROLE " CAP_USER " LOGIN PASSWORD '" CAP_PASSWORD "'") != 0 ||
        h_exec(g_super, "CREATE TABLE fifo_log (client int PRIMARY KEY, pos bigint NOT NULL);"
                        "CREATE SEQUENCE fifo_seq;"
                        "GRANT ALL ON fifo_log, fifo_seq TO " CAP_USER) != 0)
        return -1;
    snprintf(g_userlist, sizeof g_userlist, "%s/workers-userlist.txt", h_scratch_dir());
    if (h_write_file(g_userlist, "\"" H_USER "\" \"" H_PASSWORD "\"\n"
                                 "\"" CAP_USER "\" \"" CAP_PASSWORD "\"\n") != 0 ||
        chmod(g_userlist, 0600) != 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

/*
 * A config: `workers` = the given count (0: no key, the default), lane main (default, size 2) and lane
 * capped of `size`, to which user CAP_USER is routed; pglane_extra and lane_extra are added to
 * [pglane] and [lane.capped]. md5 between clients and pglane: hundreds of SCRAM logins would cost this
 * one-threaded test process more than the proxy work it tests.
 */
static void workers_conf(char *buf, size_t n, int workers, int size, const char *pglane_extra,
                         const char *lane_extra)
{
    char wk[32] = "";

    if (workers > 0)
        snprintf(wk, sizeof wk, "workers = %d\n", workers);
    snprintf(buf, n,
             "[pglane]\n"
             "%s"
             "listen = 127.0.0.1:@PORT@\n"
             "auth_type = md5\n"
             "auth_file = %s\n"
             "pool_mode = transaction\n"
             "max_client_conn = 2000\n"
             "default_lane = main\n"
             "admin_users = " H_USER "\n"
             "server_idle_timeout = 60s\n"
             "%s"
             "%s"
             "\n[server.pg]\nhost = 127.0.0.1\nport = @PGPORT@\n"
             "\n[lane.main]\nserver = pg\nsize = 2\nqueue_timeout = 30s\n"
             "\n[lane.capped]\nserver = pg\nsize = %d\nqueue_timeout = 120s\n%s"
             "\n[route.cap]\nuser = " CAP_USER "\nlane = capped\n",
             wk, g_userlist, strstr(pglane_extra, "log_level") ? "" : "log_level = info\n", pglane_extra, size,
             lane_extra);
}

#define CAP_BACKENDS "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' " \
                     "AND usename = '" CAP_USER "'"

/* Starts pglane (workers_conf) once the previous test's backends of CAP_USER are gone. */
static void start_workers_with(struct h_pglane *l, int workers, int size, const char *pglane_extra,
                               const char *lane_extra)
{
    char conf[4096];

    assert_int_equal(h_pg_wait_long(g_super, CAP_BACKENDS, 0, 10000), 0);
    workers_conf(conf, sizeof conf, workers, size, pglane_extra, lane_extra);
    assert_int_equal(h_pglane_start(l, &g_pg, conf), 0);
}

static void start_workers(struct h_pglane *l, int workers, int size)
{
    start_workers_with(l, workers, size, "", "");
}

/* The conninfo of a CAP_USER client with application_name app. */
static void cap_conninfo_app(const struct h_pglane *l, const char *app, char *buf, size_t n)
{
    snprintf(buf, n, "host=127.0.0.1 port=%d user=" CAP_USER " password=" CAP_PASSWORD " dbname=" H_DB
             " application_name=%s connect_timeout=10", l->port, app);
}

static void cap_conninfo(const struct h_pglane *l, char *buf, size_t n)
{
    cap_conninfo_app(l, "workers_test", buf, n);
}

/* n non-blocking logins at once as CAP_USER (they land on whatever worker the kernel picks), all done
 * within timeout_ms. */
static void connect_all(const struct h_pglane *l, PGconn **c, int n, int timeout_ms)
{
    PostgresPollingStatusType *st = calloc((size_t)n, sizeof *st);
    struct pollfd *pfd = calloc((size_t)n, sizeof *pfd);
    int *idx = calloc((size_t)n, sizeof *idx);
    char ci[512];

    assert_true(st && pfd && idx);
    cap_conninfo(l, ci, sizeof ci);
    for (int i = 0; i < n; i++) {
        c[i] = PQconnectStart(ci);
        assert_non_null(c[i]);
        assert_int_not_equal(PQstatus(c[i]), CONNECTION_BAD);
        st[i] = PGRES_POLLING_WRITING;
    }
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (st[i] == PGRES_POLLING_OK)
                continue;
            if (st[i] == PGRES_POLLING_FAILED)
                print_error("client %d: %s\n", i, PQerrorMessage(c[i]));
            assert_int_not_equal(st[i], PGRES_POLLING_FAILED);
            pfd[m].fd = PQsocket(c[i]);
            pfd[m].events = st[i] == PGRES_POLLING_READING ? POLLIN : POLLOUT;
            pfd[m].revents = 0;
            idx[m++] = i;
        }
        if (m == 0)
            break;
        if (h_now_ms() >= deadline)
            print_error("%d of %d logins not done after %d ms\n", m, n, timeout_ms);
        assert_true(h_now_ms() < deadline);
        assert_true(poll(pfd, (nfds_t)m, 100) >= 0);
        for (int k = 0; k < m; k++)
            if (pfd[k].revents)
                st[idx[k]] = PQconnectPoll(c[idx[k]]);
    }
    free(st);
    free(pfd);
    free(idx);
}

static void finish_all(PGconn **c, int n)
{
    for (int i = 0; i < n; i++) {
        PQfinish(c[i]);
        c[i] = NULL;
    }
}

/* ------------------------------------------------------------------------------------------ */

/* SHOW WORKERS: per row, the worker's id, clients and accepted. Returns the row count (at most max). */
struct workers_row {
    char id[32];
    long clients, servers, accepted;
};

static int show_workers(PGconn *adm, struct workers_row *rows, int max)
{
    PGresult *r = PQexec(adm, "SHOW WORKERS");

    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        print_error("SHOW WORKERS: %s\n", PQerrorMessage(adm));
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int cw = PQfnumber(r, "worker"), cc = PQfnumber(r, "clients"), cs = PQfnumber(r, "servers"),
        ca = PQfnumber(r, "accepted");
    if (cw < 0 || cc < 0 || cs < 0 || ca < 0)
        print_error("SHOW WORKERS: want columns worker, clients, servers, accepted\n");
    assert_true(cw >= 0 && cc >= 0 && cs >= 0 && ca >= 0);
    int n = PQntuples(r);
    assert_true(n >= 1 && n <= max);
    for (int i = 0; i < n; i++) {
        snprintf(rows[i].id, sizeof rows[i].id, "%s", PQgetvalue(r, i, cw));
        rows[i].clients = strtol(PQgetvalue(r, i, cc), NULL, 10);
        rows[i].servers = strtol(PQgetvalue(r, i, cs), NULL, 10);
        rows[i].accepted = strtol(PQgetvalue(r, i, ca), NULL, 10);
    }
    PQclear(r);
    return n;
}

/*
 * Connections accepted per worker between two SHOW WORKERS (same workers, same order): returns how many
 * workers accepted at least one, the total in *sum, and prints the split as `what`.
 */
static int accepted_spread(const char *what, const struct workers_row *before, int nb,
                           const struct workers_row *after, int na, long *sum)
{
    int spread = 0;
    char line[512];
    size_t off = 0;

    assert_int_equal(na, nb);
    *sum = 0;
    line[0] = 0;
    for (int i = 0; i < na; i++) {
        assert_string_equal(after[i].id, before[i].id);
        long d = after[i].accepted - before[i].accepted;
        *sum += d;
        spread += d > 0;
        if (off < sizeof line)
            off += (size_t)snprintf(line + off, sizeof line - off, " worker %s: %ld", after[i].id, d);
    }
    fprintf(stderr, "  %s accepted per worker:%s\n", what, line);
    return spread;
}

/*
 * connect_all of n clients between two SHOW WORKERS on adm (the first must list `workers` rows):
 * returns how many workers accepted some of them, with *sum the number accepted in all. after (room
 * for MAX_WORKERS rows, or NULL) keeps the second snapshot, *nafter its row count.
 */
static int connect_spread(const struct h_pglane *l, PGconn *adm, int workers, PGconn **c, int n, int timeout_ms,
                          const char *what, long *sum, struct workers_row *after, int *nafter)
{
    struct workers_row before[MAX_WORKERS], own[MAX_WORKERS];
    struct workers_row *a = after ? after : own;
    int nb = show_workers(adm, before, MAX_WORKERS), na;

    assert_int_equal(nb, workers);
    connect_all(l, c, n, timeout_ms);
    na = show_workers(adm, a, MAX_WORKERS);
    if (nafter)
        *nafter = na;
    return accepted_spread(what, before, nb, a, na, sum);
}

/* ------------------------------------------------------------------------------------------ */

/* A thread sampling a count query on its own direct connection every 10 ms until told to stop. */
struct sampler {
    PGconn *c;
    const char *sql;
    int stop;                  /* __atomic */
    long max, samples, errors, at_max;
    pthread_t thread;
};

static void *sample_loop(void *arg)
{
    struct sampler *s = arg;
    int64_t next = h_now_ms();

    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        PGresult *r = PQexec(s->c, s->sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
            if (v > s->max)
                s->max = v, s->at_max = 0;
            if (v == s->max)
                s->at_max++;
            s->samples++;
        } else {
            s->errors++;
        }
        PQclear(r);
        next += 10;
        int64_t now = h_now_ms();
        if (next > now)
            h_sleep_ms((int)(next - now));   /* the sampling interval, not a wait for an event */
        else
            next = now;
    }
    return NULL;
}

static void sampler_start(struct sampler *s, const char *sql)
{
    memset(s, 0, sizeof *s);
    s->c = h_pg_super(&g_pg, H_DB);
    assert_non_null(s->c);
    s->sql = sql;
    assert_int_equal(pthread_create(&s->thread, NULL, sample_loop, s), 0);
}

static void sampler_stop(struct sampler *s)
{
    __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(s->thread, NULL), 0);
    PQfinish(s->c);
}

/* ------------------------------------------------------------------------------------------ */

#define CAP_CLIENTS 64
#define CAP_SIZE 3
#define CAP_SQL "SELECT pg_sleep(0.01)"

struct runner {
    PGconn *c;
    int busy;                  /* a query is in flight */
    int ok;                    /* its results so far were all rows */
    long done, failed;
    char err[256];
};

static int send_tx(struct runner *r)
{
    r->ok = 1;
    r->busy = PQsendQuery(r->c, CAP_SQL) == 1;
    if (!r->busy) {
        r->failed++;
        snprintf(r->err, sizeof r->err, "send: %s", PQerrorMessage(r->c));
    }
    return r->busy;
}

/* Reads what arrived for r; at a query's end counts it and, before `end_ms`, sends the next one. */
static void step_runner(struct runner *r, int64_t end_ms)
{
    if (!PQconsumeInput(r->c)) {
        r->failed++;
        r->busy = 0;
        snprintf(r->err, sizeof r->err, "read: %s", PQerrorMessage(r->c));
        return;
    }
    while (r->busy && !PQisBusy(r->c)) {
        PGresult *res = PQgetResult(r->c);
        if (!res) {
            r->busy = 0;
            if (r->ok)
                r->done++;
            else
                r->failed++;
            if (h_now_ms() < end_ms)
                send_tx(r);
            break;
        }
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            if (r->ok)
                snprintf(r->err, sizeof r->err, "%s: %s", PQresStatus(PQresultStatus(res)),
                         PQresultErrorMessage(res));
            r->ok = 0;
        }
        PQclear(res);
    }
}

/* A cap that must hold across workers: what limits, and how PostgreSQL shows it. */
struct cap_case {
    const char *what;            /* for messages */
    int size;                    /* lane capped's size */
    const char *pglane_extra, *lane_extra;
    const char *sample_sql;      /* counted every 10 ms on a direct connection */
};

static const struct cap_case LANE_SIZE = { "lane capped (size 3)", CAP_SIZE, "", "", CAP_BACKENDS };

/*
 * A global cap of CAP_SIZE: CAP_CLIENTS clients of lane capped run CAP_SQL back to back for `seconds`,
 * while a direct connection counts what the cap limits every 10 ms. With check_workers, SHOW WORKERS
 * must list `workers` rows and the clients must have been accepted by at least 2 of them.
 */
static void run_capped(const struct cap_case *cc, int workers, int seconds, int check_workers)
{
    struct h_pglane l;
    static PGconn *c[CAP_CLIENTS];
    static struct runner run[CAP_CLIENTS];
    struct pollfd pfd[CAP_CLIENTS];
    int idx[CAP_CLIENTS];
    struct workers_row w1[MAX_WORKERS];
    long sum = 0;
    int spread = 0;
    struct sampler s;

    start_workers_with(&l, workers, cc->size, cc->pglane_extra, cc->lane_extra);
    PGconn *adm = h_console_ok(&l);
    if (check_workers)
        spread = connect_spread(&l, adm, workers, c, CAP_CLIENTS, 60000, "64 clients", &sum, NULL, NULL);
    else
        connect_all(&l, c, CAP_CLIENTS, 60000);

    sampler_start(&s, cc->sample_sql);
    int64_t start = h_now_ms(), end = start + 1000L * seconds, hard = end + 60000;
    memset(run, 0, sizeof run);
    for (int i = 0; i < CAP_CLIENTS; i++) {
        run[i].c = c[i];
        send_tx(&run[i]);
    }
    for (;;) {
        int m = 0;
        for (int i = 0; i < CAP_CLIENTS; i++)
            if (run[i].busy) {
                pfd[m].fd = PQsocket(run[i].c);
                pfd[m].events = POLLIN;
                pfd[m].revents = 0;
                idx[m++] = i;
            }
        if (m == 0 || h_now_ms() >= hard)
            break;
        if (poll(pfd, (nfds_t)m, 100) < 0)
            break;
        for (int k = 0; k < m; k++)
            if (pfd[k].revents)
                step_runner(&run[idx[k]], end);
    }
    int64_t took = h_now_ms() - start;
    sampler_stop(&s);

    long done = 0, failed = 0, min_done = -1, still_busy = 0;
    for (int i = 0; i < CAP_CLIENTS; i++) {
        done += run[i].done;
        failed += run[i].failed;
        still_busy += run[i].busy;
        if (min_done < 0 || run[i].done < min_done)
            min_done = run[i].done;
        if (run[i].failed)
            print_error("client %d: %ld failed, last: %s\n", i, run[i].failed, run[i].err);
    }
    fprintf(stderr, "  %s, workers=%d: %d clients, %ld transactions in %lld ms (%ld failed, fewest per client "
            "%ld); sampled %ld times (%ld errors): max %ld (%ld samples at the max)\n", cc->what,
            workers ? workers : 1, CAP_CLIENTS, done, (long long)took, failed, min_done, s.samples, s.errors,
            s.max, s.at_max);
    if (check_workers) {
        long clients = 0, servers = 0;
        assert_int_equal(sum, CAP_CLIENTS);
        if (spread < 2)
            print_error("the %d clients were all accepted by one worker\n", CAP_CLIENTS);
        assert_true(spread >= 2);
        /* After the run: the clients (and the console) and the server connections (lane capped's, and
         * lane main's if a login opened one), summed over the workers, are what the process holds,
         * within a few seconds (a worker may publish its counts once a second). */
        int64_t deadline = h_now_ms() + 5000;
        long pg = -1;
        for (;;) {
            int nw2 = show_workers(adm, w1, MAX_WORKERS);
            clients = servers = 0;
            for (int i = 0; i < nw2; i++)
                clients += w1[i].clients, servers += w1[i].servers;
            pg = h_pg_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                    "AND usename IN ('" H_USER "', '" CAP_USER "')");
            if ((servers == pg && clients >= CAP_CLIENTS && clients <= CAP_CLIENTS + 1) || h_now_ms() >= deadline)
                break;
            h_sleep_ms(20);   /* polling interval */
        }
        fprintf(stderr, "  SHOW WORKERS after the run: %ld clients, %ld servers (PostgreSQL: %ld backends)\n",
                clients, servers, pg);
        assert_true(clients >= CAP_CLIENTS && clients <= CAP_CLIENTS + 1);
        assert_int_equal(servers, pg);
    }
    if (s.max > CAP_SIZE)
        print_error("%s: %ld backends at once (cap %d)\n", cc->what, s.max, CAP_SIZE);
    assert_true(s.max <= CAP_SIZE);
    assert_int_equal(s.max, CAP_SIZE);                 /* the cap was reached: the test is not vacuous */
    assert_int_equal(s.errors, 0);
    assert_true(s.samples >= 20L * seconds);           /* at least 2 of every 10 ms ticks, loaded machine */
    assert_int_equal(still_busy, 0);
    assert_int_equal(failed, 0);
    assert_true(min_done >= 1);                        /* every client ran (the throughput is printed) */

    finish_all(c, CAP_CLIENTS);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
}

static void run_cap(int workers, int seconds, int check_workers)
{
    run_capped(&LANE_SIZE, workers, seconds, check_workers);
}

static int cap_seconds(void)
{
    const char *v = getenv("PGLANE_WORKERS_CAP_S");
    int s = v && *v ? atoi(v) : 20;
    return s > 0 ? s : 20;
}

static void test_lane_cap_is_global_over_4_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    run_cap(WORKERS, cap_seconds(), 1);
    h_pass();
}

/* The same test without the key (one worker, or PGLANE_TEST_WORKERS's count), 5 s. */
static void test_lane_cap_default_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    run_cap(0, 5, 0);
    h_pass();
}

/*
 * The other caps issue #19 names, 5 s each with 4 workers (lane capped of size 20, so that only the cap
 * under test limits): max_user_connections (CAP_USER's backends), max_db_connections (the database's
 * backends of pglane's users, lane main's included) and tenant_max (CAP_USER's backends running a
 * transaction: one tenant, every client's application_name is the same).
 */
static const struct cap_case USER_CAP = {
    "max_user_connections = 3", 20, "max_user_connections = 3\n", "", CAP_BACKENDS
};
static const struct cap_case DB_CAP = {
    "max_db_connections = 3", 20, "max_db_connections = 3\n", "",
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = '" H_DB "' "
    "AND usename IN ('" H_USER "', '" CAP_USER "')"
};
static const struct cap_case TENANT_CAP = {
    "tenant_max = 3", 20, "", "tenant_key = application_name\ntenant_max = 3\n",
    CAP_BACKENDS " AND state <> 'idle'"
};

/* One cmocka test per (cap, worker count): run_capped with the default worker count (no key) or 4. */
#define CAP_TEST(name, cc, workers, check)      \
    static void name(void **state)              \
    {                                           \
        (void)state;                            \
        H_SKIP_IF_DIRECT();                     \
        run_capped(&(cc), (workers), 5, check); \
        h_pass();                               \
    }

CAP_TEST(test_user_cap_default_workers, USER_CAP, 0, 0)
CAP_TEST(test_user_cap_4_workers, USER_CAP, WORKERS, 1)
CAP_TEST(test_db_cap_default_workers, DB_CAP, 0, 0)
CAP_TEST(test_db_cap_4_workers, DB_CAP, WORKERS, 1)
CAP_TEST(test_tenant_cap_default_workers, TENANT_CAP, 0, 0)
CAP_TEST(test_tenant_cap_4_workers, TENANT_CAP, WORKERS, 1)

/* ------------------------------------------------------------------------------------------ */

#define FIFO_CLIENTS 200

/*
 * Consoles, one per worker: cons[k] was accepted by the worker of SHOW WORKERS row k (found from
 * which worker's accepted count grew while it logged in: nothing else connects meanwhile). New logins
 * land on whatever worker the kernel picks, so this tries up to 400.
 */
static void worker_consoles(const struct h_pglane *l, PGconn *probe, PGconn **cons, int workers)
{
    struct workers_row w0[MAX_WORKERS], w1[MAX_WORKERS];
    int have = 0;

    for (int k = 0; k < workers; k++)
        cons[k] = NULL;
    for (int attempt = 0; attempt < 400 && have < workers; attempt++) {
        int n0 = show_workers(probe, w0, MAX_WORKERS), n1, k = -1;
        assert_int_equal(n0, workers);
        PGconn *c = h_console_ok(l);
        int64_t deadline = h_now_ms() + 5000;
        for (;;) {
            long sum = 0;
            n1 = show_workers(probe, w1, MAX_WORKERS);
            assert_int_equal(n1, workers);
            for (int i = 0; i < n1; i++) {
                sum += w1[i].accepted - w0[i].accepted;
                if (w1[i].accepted > w0[i].accepted)
                    k = i;
            }
            if (sum != 1)
                k = -1;
            if (k >= 0 || h_now_ms() >= deadline)
                break;
            h_sleep_ms(1);   /* polling interval */
        }
        if (k < 0)
            print_error("SHOW WORKERS: no worker's accepted count grew by the 1 console that logged in\n");
        assert_true(k >= 0);
        if (!cons[k]) {
            cons[k] = c;
            have++;
        } else {
            PQfinish(c);
        }
    }
    if (have < workers)
        print_error("only %d of %d workers took one of 400 console logins\n", have, workers);
    assert_int_equal(have, workers);
}

/* SHOW LANES' clients_waiting of lane capped as each console sees it; returns their sum. */
static long waiting_seen(PGconn **cons, int n, long *v)
{
    long sum = 0;

    for (int k = 0; k < n; k++) {
        v[k] = h_show_val(cons[k], "SHOW LANES", "capped", "clients_waiting");
        assert_true(v[k] >= 0);
        sum += v[k];
    }
    return sum;
}

static void print_seen(const char *what, const long *v, int n)
{
    char line[256];
    size_t off = 0;

    line[0] = 0;
    for (int k = 0; k < n && off < sizeof line; k++)
        off += (size_t)snprintf(line + off, sizeof line - off, " %ld", v[k]);
    print_error("%s: SHOW LANES clients_waiting of lane capped on the console of each worker:%s\n", what, line);
}

/*
 * Waits until client `client` is known to be queued: `want` clients waiting in lane capped, as the
 * process-wide count of any console (global) or as the sum of every worker's own count (!global).
 */
static void wait_waiting(PGconn **cons, int n, int global, int client, long want)
{
    int64_t deadline = h_now_ms() + 10000;
    long v[MAX_WORKERS], got;

    for (;;) {
        if (global)
            got = v[0] = h_show_val(cons[0], "SHOW LANES", "capped", "clients_waiting");
        else
            got = waiting_seen(cons, n, v);
        if (got == want || h_now_ms() >= deadline)
            break;
        h_sleep_ms(1);   /* polling interval */
    }
    if (got != want) {
        char what[96];
        snprintf(what, sizeof what, "client %d sent its transaction, %ld waiting after 10 s, want %ld",
                 client, got, want);
        print_seen(what, v, global ? 1 : n);
    }
    assert_int_equal(got, want);
}

/*
 * FIFO across workers: FIFO_CLIENTS clients log in (each on whatever worker); lane capped of size 1 is
 * then held by an open transaction, and the clients send one transaction each, the next only once the
 * previous is counted as waiting in the lane's queue; then the holder commits. (Logging in while the
 * lane is busy is test_login_while_lane_busy_*'s.) Each transaction takes a number from a
 * sequence as it runs: its start position, which must be within WORKERS of its arrival position.
 * The queue is watched through one console per worker, so that the order is tested whether SHOW LANES
 * counts the whole process (as issue #19 asks; asserted at the end) or only the console's worker.
 */
static void test_fifo_across_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static PGconn *c[FIFO_CLIENTS];
    struct h_pglane l;
    struct workers_row w0[MAX_WORKERS], w1[MAX_WORKERS];
    PGconn *cons[MAX_WORKERS];
    long seen[MAX_WORKERS];
    char ci[512];

    assert_int_equal(h_exec(g_super, "TRUNCATE fifo_log; ALTER SEQUENCE fifo_seq RESTART"), 0);
    start_workers(&l, WORKERS, 1);
    PGconn *adm = h_console_ok(&l);
    worker_consoles(&l, adm, cons, WORKERS);
    int nw0 = show_workers(adm, w0, MAX_WORKERS);

    cap_conninfo(&l, ci, sizeof ci);
    PGconn *holder = PQconnectdb(ci);
    H_ASSERT_CONNECTED(holder);
    connect_all(&l, c, FIFO_CLIENTS, 60000);
    assert_int_equal(h_exec(holder, "BEGIN"), 0);
    assert_int_equal(h_exec(holder, "SELECT 1"), 0);     /* holds the lane's one server connection */

    /* The first queued client tells how SHOW LANES counts: on every console (the process) or on one. */
    int global = -1;
    int64_t t0 = h_now_ms();
    for (int i = 0; i < FIFO_CLIENTS; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT INTO fifo_log VALUES (%d, nextval('fifo_seq'))", i);
        assert_int_equal(PQsendQuery(c[i], sql), 1);
        if (global >= 0) {
            wait_waiting(cons, WORKERS, global, i, i + 1);
            continue;
        }
        int64_t deadline = h_now_ms() + 10000;
        while (waiting_seen(cons, WORKERS, seen) < 1 && h_now_ms() < deadline)
            h_sleep_ms(1);   /* polling interval */
        long sum = waiting_seen(cons, WORKERS, seen);   /* it is queued: a fresh look at every console */
        int ones = 0;
        for (int k = 0; k < WORKERS; k++)
            ones += seen[k] == 1;
        if (ones == WORKERS)
            global = 1;
        else if (ones == 1 && sum == 1)
            global = 0;
        else
            print_seen("client 0 sent its transaction", seen, WORKERS);
        assert_true(global >= 0);
        fprintf(stderr, "  SHOW LANES counts %s\n",
                global ? "the whole process on every console" : "only the console's own worker");
    }
    fprintf(stderr, "  %d clients queued one after another in %lld ms\n", FIFO_CLIENTS,
            (long long)(h_now_ms() - t0));
    int nw1 = show_workers(adm, w1, MAX_WORKERS);
    long sum;
    int spread = accepted_spread("holder and 200 clients", w0, nw0, w1, nw1, &sum);
    assert_int_equal(sum, FIFO_CLIENTS + 1);
    assert_true(spread >= 2);
    /* SHOW LANES counts the whole process (README, "Several cores: workers"): every worker's console
     * sees all 200 waiting clients. */
    assert_int_equal(global, 1);
    waiting_seen(cons, WORKERS, seen);
    for (int k = 0; k < WORKERS; k++)
        if (seen[k] != FIFO_CLIENTS)
            print_seen("200 clients waiting", seen, WORKERS);
    for (int k = 0; k < WORKERS; k++)
        assert_int_equal(seen[k], FIFO_CLIENTS);

    assert_int_equal(h_exec(holder, "COMMIT"), 0);
    for (int i = 0; i < FIFO_CLIENTS; i++) {
        if (h_wait_result(c[i], 30000) != 0)
            print_error("client %d: no answer 30 s after the holder committed\n", i);
        assert_int_equal(h_wait_result(c[i], 0), 0);
        PGresult *r = PQgetResult(c[i]);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            print_error("client %d: %s\n", i, PQresultErrorMessage(r));
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        assert_null(PQgetResult(c[i]));
    }

    PGresult *r = PQexec(g_super, "SELECT client, pos FROM fifo_log ORDER BY client");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), FIFO_CLIENTS);
    long worst = 0, moved = 0;
    int worst_client = -1;
    for (int i = 0; i < FIFO_CLIENTS; i++) {
        long client = strtol(PQgetvalue(r, i, 0), NULL, 10), pos = strtol(PQgetvalue(r, i, 1), NULL, 10);
        long d = labs(pos - (client + 1));
        assert_int_equal(client, i);
        moved += d != 0;
        if (d > worst)
            worst = d, worst_client = i;
    }
    PQclear(r);
    fprintf(stderr, "  start vs arrival order: %ld of %d clients moved, at most %ld positions (client %d)\n",
            moved, FIFO_CLIENTS, worst, worst_client);
    if (worst > WORKERS)
        print_error("client %d started %ld positions away from its arrival position (at most %d allowed)\n",
                    worst_client, worst, WORKERS);
    assert_true(worst <= WORKERS);

    finish_all(c, FIFO_CLIENTS);
    finish_all(cons, WORKERS);
    PQfinish(holder);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

#define LOGINS 40

/*
 * Logging in does not wait for a lane: with lane capped's one server connection held by an open
 * transaction, LOGINS new clients of that lane (on every worker: the odds of one missed are
 * 4 x (3/4)^40) finish logging in within 10 s, and then run their transactions once the holder
 * commits. With one worker a login uses what the pool learned from its server connections; a pool of
 * another worker must not need a connection of its own to let a client in. Run with `workers` (0: the
 * default).
 */
static void run_login_while_busy(int workers)
{
    static PGconn *c[LOGINS];
    struct h_pglane l;
    char ci[512];

    start_workers(&l, workers, 1);
    PGconn *adm = h_console_ok(&l);
    cap_conninfo(&l, ci, sizeof ci);
    PGconn *holder = PQconnectdb(ci);
    H_ASSERT_CONNECTED(holder);
    assert_int_equal(h_exec(holder, "BEGIN"), 0);
    assert_int_equal(h_exec(holder, "SELECT 1"), 0);     /* holds the lane's one server connection */
    if (workers) {
        long sum;
        int spread = connect_spread(&l, adm, workers, c, LOGINS, 10000, "40 logins", &sum, NULL, NULL);
        assert_int_equal(sum, LOGINS);
        assert_int_equal(spread, workers);
    } else {
        connect_all(&l, c, LOGINS, 10000);
    }

    for (int i = 0; i < LOGINS; i++)
        assert_int_equal(PQsendQuery(c[i], "SELECT 1"), 1);
    assert_int_equal(h_exec(holder, "COMMIT"), 0);
    for (int i = 0; i < LOGINS; i++) {
        assert_int_equal(h_wait_result(c[i], 30000), 0);
        PGresult *r = PQgetResult(c[i]);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            print_error("client %d: %s\n", i, PQresultErrorMessage(r));
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        PQclear(r);
        assert_null(PQgetResult(c[i]));
    }

    finish_all(c, LOGINS);
    PQfinish(holder);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
}

static void test_login_while_lane_busy_default_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    run_login_while_busy(0);
    h_pass();
}

static void test_login_while_lane_busy_4_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    run_login_while_busy(WORKERS);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

#define DRAIN_CLIENTS 40

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Waits up to timeout_ms for pglane to close c (a read sees the end of the connection): 0, or -1. */
static int wait_closed(PGconn *c, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    PQsetNoticeProcessor(c, quiet, NULL);   /* the FATAL pglane sends before closing an idle client */
    for (;;) {
        struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
        if (pfd.fd < 0 || PQstatus(c) == CONNECTION_BAD)
            return 0;
        int64_t left = deadline - h_now_ms();
        if (left <= 0)
            return -1;
        if (poll(&pfd, 1, (int)left) > 0 && !PQconsumeInput(c))
            return 0;
        while (PQisBusy(c) == 0) {          /* a FATAL notice or error before the close */
            PGresult *r = PQgetResult(c);
            if (!r)
                break;
            PQclear(r);
        }
    }
}

/*
 * SIGTERM drains every worker (the way one worker does: idle clients closed at once, an open
 * transaction finishes, then exit 0): DRAIN_CLIENTS idle clients on every worker and one client inside
 * a transaction; after SIGTERM the idle ones are closed within 10 s, the transaction still runs a
 * statement and commits, and pglane exits within 10 s of the commit. Run with `workers` (0: the
 * default).
 */
static void run_drain(int workers)
{
    static PGconn *c[DRAIN_CLIENTS];
    struct h_pglane l;
    char ci[512];

    start_workers(&l, workers, 1);
    PGconn *adm = h_console_ok(&l);
    if (workers) {
        long sum;
        assert_int_equal(connect_spread(&l, adm, workers, c, DRAIN_CLIENTS, 60000, "40 idle clients", &sum, NULL,
                                        NULL),
                         workers);
    } else {
        connect_all(&l, c, DRAIN_CLIENTS, 60000);
    }
    PQfinish(adm);
    cap_conninfo(&l, ci, sizeof ci);
    PGconn *holder = PQconnectdb(ci);
    H_ASSERT_CONNECTED(holder);
    PQsetNoticeProcessor(holder, quiet, NULL);
    assert_int_equal(h_exec(holder, "BEGIN"), 0);
    assert_int_equal(h_exec(holder, "SELECT 1"), 0);

    int64_t t0 = h_now_ms();
    assert_int_equal(h_pglane_signal(&l, SIGTERM), 0);
    int open = 0;
    for (int i = 0; i < DRAIN_CLIENTS; i++)
        if (wait_closed(c[i], 10000 - (int)(h_now_ms() - t0)) != 0)
            open++;
    int64_t closed_ms = h_now_ms() - t0;
    if (open)
        print_error("workers=%d: %d of %d idle clients still open 10 s after SIGTERM\n", workers ? workers : 1,
                    open, DRAIN_CLIENTS);
    assert_int_equal(open, 0);
    assert_int_equal(h_exec(holder, "SELECT 2"), 0);          /* the open transaction goes on */
    assert_int_equal(h_exec(holder, "COMMIT"), 0);
    int64_t t1 = h_now_ms();
    int exited = h_pglane_wait_exit(&l, 10000);
    fprintf(stderr, "  workers=%d: idle clients closed %lld ms after SIGTERM; pglane %s %lld ms after the commit\n",
            workers ? workers : 1, (long long)closed_ms, exited ? "exited" : "still running",
            (long long)(h_now_ms() - t1));
    assert_int_equal(exited, 1);
    h_pglane_assert_clean_exit(&l);
    finish_all(c, DRAIN_CLIENTS);
    PQfinish(holder);
}

static void test_sigterm_drains_default_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    run_drain(0);
    h_pass();
}

static void test_sigterm_drains_4_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    run_drain(WORKERS);
    h_pass();
}

#define EARLY_ROUNDS 8
#define EARLY_WORKERS 8

/*
 * A drain asked the moment pglane first answers, while the other workers may still be starting
 * (loading their configuration, opening their listeners): every worker must drain and the process
 * exit 0 within 10 s. shutdown 0: SIGTERM at the first accepted TCP connection (each worker's signal
 * handles exist before any listener opens; a worker that started its handles only after its own
 * listeners missed a SIGTERM that came between, and the process never exited). shutdown 1: SHUTDOWN
 * in the first admin console that logs in (a worker that attaches after it drains when it starts).
 * EARLY_ROUNDS starts of EARLY_WORKERS workers.
 */
static void run_early_drain(int shutdown)
{
    char conf[4096];

    workers_conf(conf, sizeof conf, EARLY_WORKERS, 2, "", "");
    for (int round = 0; round < EARLY_ROUNDS; round++) {
        struct h_pglane l;
        PGconn *adm = NULL;
        int fd = -1, up = 0, exited;

        assert_int_equal(h_pglane_spawn(&l, &g_pg, conf), 0);
        for (int64_t deadline = h_now_ms() + 10000; !up; h_sleep_ms(1)) {
            if (h_now_ms() > deadline || !h_pglane_alive(&l))
                break;
            if (!shutdown) {
                up = (fd = h_raw_connect(l.port)) >= 0;
            } else {
                PQfinish(adm);
                adm = h_console(&l, NULL);
                up = PQstatus(adm) == CONNECTION_OK;
            }
        }
        if (!up)
            h_pglane_dump_log(&l, 4000);
        assert_true(up);
        if (shutdown) {
            PGresult *r;

            PQsetNoticeProcessor(adm, quiet, NULL);
            r = PQexec(adm, "SHUTDOWN");

            assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
            PQclear(r);
            PQfinish(adm);
        } else {
            assert_int_equal(h_pglane_signal(&l, SIGTERM), 0);
            close(fd);
        }
        exited = h_pglane_wait_exit(&l, 10000);
        if (!exited) {
            print_error("round %d: pglane still running 10 s after a %s at its first %s\n", round,
                        shutdown ? "SHUTDOWN" : "SIGTERM", shutdown ? "console login" : "accept");
            h_pglane_dump_log(&l, 6000);
        }
        assert_int_equal(exited, 1);
        h_pglane_assert_clean_exit(&l);
    }
    fprintf(stderr, "  %d starts of %d workers, each sent %s at its first %s: all exited 0\n", EARLY_ROUNDS,
            EARLY_WORKERS, shutdown ? "SHUTDOWN" : "SIGTERM", shutdown ? "console login" : "accept");
}

static void test_sigterm_at_first_accept(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    run_early_drain(0);
    h_pass();
}

static void test_shutdown_at_first_login(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    run_early_drain(1);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

/* PostgreSQL's max_connections here is 300 (harness): 100 server connections plus this test's own fit. */
#define CANCEL_CLIENTS 100
#define SLEEP_SQL "SELECT pg_sleep(30)"

/*
 * PQcancel across workers: CANCEL_CLIENTS clients (lane of size CANCEL_CLIENTS) each run pg_sleep(30);
 * once PostgreSQL runs all of them each is cancelled with PQcancel (a new connection, accepted by
 * whatever worker); every query must end with 57014 well before its 30 s, and every client must work
 * afterwards.
 */
static void test_cancel_across_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static PGconn *c[CANCEL_CLIENTS];
    static int64_t sent[CANCEL_CLIENTS];
    struct h_pglane l;
    struct workers_row w1[MAX_WORKERS], w2[MAX_WORKERS];

    start_workers(&l, WORKERS, CANCEL_CLIENTS);
    PGconn *adm = h_console_ok(&l);
    long sum;
    int nw1;
    int spread = connect_spread(&l, adm, WORKERS, c, CANCEL_CLIENTS, 60000, "100 clients", &sum, w1, &nw1);
    assert_int_equal(sum, CANCEL_CLIENTS);
    assert_int_equal(spread, WORKERS);   /* all 4 got clients: the odds of one missed are (3/4)^100 */

    for (int i = 0; i < CANCEL_CLIENTS; i++) {
        sent[i] = h_now_ms();
        assert_int_equal(PQsendQuery(c[i], SLEEP_SQL), 1);
    }
    long running = h_pg_wait_long(g_super,
                                  "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND usename = '"
                                  CAP_USER "' AND query = '" SLEEP_SQL "'", CANCEL_CLIENTS, 20000);
    if (running != CANCEL_CLIENTS)
        print_error("%ld of %d sleeps running in PostgreSQL after 20 s\n", running, CANCEL_CLIENTS);
    assert_int_equal(running, CANCEL_CLIENTS);

    int64_t t_cancel = h_now_ms();
    int cancelled = 0;
    for (int i = 0; i < CANCEL_CLIENTS; i++) {
        char err[256];
        PGcancel *cn = PQgetCancel(c[i]);
        assert_non_null(cn);
        int ok = PQcancel(cn, err, sizeof err);
        PQfreeCancel(cn);
        if (!ok)
            print_error("client %d: PQcancel: %s\n", i, err);
        cancelled += ok;
    }
    assert_int_equal(cancelled, CANCEL_CLIENTS);
    int nw2 = show_workers(adm, w2, MAX_WORKERS);
    spread = accepted_spread("100 cancel requests", w1, nw1, w2, nw2, &sum);

    int got_57014 = 0;
    int64_t slowest = 0;
    for (int i = 0; i < CANCEL_CLIENTS; i++) {
        int64_t left = sent[i] + 25000 - h_now_ms();
        if (h_wait_result(c[i], left > 0 ? (int)left : 0) != 0) {
            print_error("client %d: no answer %lld ms after its pg_sleep(30) was sent\n", i,
                        (long long)(h_now_ms() - sent[i]));
            continue;
        }
        int64_t took = h_now_ms() - sent[i];
        PGresult *r = PQgetResult(c[i]);
        const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (PQresultStatus(r) == PGRES_FATAL_ERROR && code && strcmp(code, "57014") == 0)
            got_57014++;
        else
            print_error("client %d: %s %s\n", i, PQresStatus(PQresultStatus(r)), PQresultErrorMessage(r));
        PQclear(r);
        assert_null(PQgetResult(c[i]));
        if (took > slowest)
            slowest = took;
    }
    fprintf(stderr, "  %d of %d sleeps ended with 57014; cancels sent %lld ms after the first query, "
            "slowest query %lld ms\n", got_57014, CANCEL_CLIENTS, (long long)(t_cancel - sent[0]),
            (long long)slowest);
    assert_int_equal(got_57014, CANCEL_CLIENTS);
    assert_true(slowest < 25000);
    /* The cancel connections themselves were spread over the workers (most reached a worker other than
     * their client's). */
    assert_int_equal(sum, CANCEL_CLIENTS);
    assert_true(spread >= 2);
    for (int i = 0; i < CANCEL_CLIENTS; i++)
        assert_int_equal(h_exec(c[i], "SELECT 1"), 0);

    finish_all(c, CANCEL_CLIENTS);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

#define METRICS_CLIENTS 24
#define TX_SERIES "pglane_lane_transaction_duration_seconds_count{lane=\"capped\"}"
#define POOL_TX_SERIES "pglane_pool_transactions_total{lane=\"capped\",database=\"" H_DB "\",user=\"" CAP_USER "\"}"

/*
 * /metrics is the whole process's with 4 workers: METRICS_CLIENTS clients spread over the workers run
 * 1 to 3 transactions each (known in all); the lane's transaction histogram and its pool counter
 * (one pool per worker, summed) show that total, pglane_clients every worker's clients, and the text
 * is still valid exposition format (each family once, its samples together). RELOAD, which every
 * worker runs, counts once (the largest count, not the sum). SHOW CLIENTS, gathered the same way,
 * lists them all; PgBouncer's SHOW LISTS counts them all and each pool once.
 */
/* The column col of the row whose first column is key in cmd's answer; -1 if there is none. */
static long row_val(PGconn *c, const char *cmd, const char *key, const char *col)
{
    PGresult *r = PQexec(c, cmd);
    int cc = PQfnumber(r, col);
    long v = -1;

    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && cc >= 0 && i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 0), key) == 0)
            v = strtol(PQgetvalue(r, i, cc), NULL, 10);
    PQclear(r);
    return v;
}

static void test_metrics_sum_over_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static PGconn *c[METRICS_CLIENTS];
    struct h_pglane l;
    char extra[128], err[512] = "";
    int mport = h_free_port();
    long sum, total = 0;

    snprintf(extra, sizeof extra, "metrics_listen = 127.0.0.1:%d\n", mport);
    start_workers_with(&l, WORKERS, 4, extra, "");
    PGconn *adm = h_console_ok(&l);
    assert_int_equal(h_exec(adm, "RELOAD"), 0);
    int spread = connect_spread(&l, adm, WORKERS, c, METRICS_CLIENTS, 60000, "24 clients", &sum, NULL, NULL);
    assert_int_equal(sum, METRICS_CLIENTS);
    if (spread < 2)
        print_error("the %d clients were all accepted by one worker\n", METRICS_CLIENTS);
    assert_true(spread >= 2);   /* some clients are not worker 0's: its share alone is not the total */

    long tx0 = h_metric_now(mport, TX_SERIES), pool0 = h_metric_now(mport, POOL_TX_SERIES);
    assert_true(tx0 >= 0);
    /* The console's tables count every worker's transactions too (merged lane records and rows). */
    PGconn *pgb = h_console(&l, "pgbouncer");
    H_ASSERT_CONNECTED(pgb);
    long stats0 = h_show_val(adm, "SHOW STATS", "capped", "transactions");
    long lanes0 = h_show_val(adm, "SHOW LANES", "capped", "transactions");
    long pgb0 = row_val(pgb, "SHOW STATS", H_DB "/capped", "total_xact_count");
    assert_true(stats0 >= 0 && lanes0 >= 0);
    for (int i = 0; i < METRICS_CLIENTS; i++)
        for (int k = 0; k <= i % 3; k++, total++)
            assert_int_equal(h_exec(c[i], "SELECT 1"), 0);
    long tx = h_metric_wait(mport, TX_SERIES, tx0 + total, 5000);
    long pool = h_metric_wait(mport, POOL_TX_SERIES, (pool0 > 0 ? pool0 : 0) + total, 5000);
    fprintf(stderr, "  %ld transactions run; /metrics: histogram count %ld (before %ld), pool counter %ld\n", total,
            tx - tx0, tx0, pool);
    assert_int_equal(tx, tx0 + total);
    assert_int_equal(pool, (pool0 > 0 ? pool0 : 0) + total);

    char *m = h_metrics_body(mport);
    if (prom_check(m, err, sizeof err) != 0)
        print_error("/metrics is not valid exposition text: %s\n%s\n", err, m);
    assert_int_equal(prom_check(m, err, sizeof err), 0);
    assert_int_equal(h_metric(m, "pglane_clients{state=\"idle\"}"), METRICS_CLIENTS);
    assert_int_equal(h_metric(m, "pglane_clients{state=\"admin\"}"), 2);   /* both consoles */
    assert_int_equal(h_metric(m, "pglane_reloads_total{result=\"success\"}"), 1);
    assert_int_equal(h_metric(m, "pglane_reloads_total{result=\"failure\"}"), 0);
    free(m);
    assert_int_equal(h_show_val(adm, "SHOW STATS", "capped", "transactions"), stats0 + total);
    assert_int_equal(h_show_val(adm, "SHOW LANES", "capped", "transactions"), lanes0 + total);
    assert_int_equal(row_val(pgb, "SHOW STATS", H_DB "/capped", "total_xact_count"), (pgb0 > 0 ? pgb0 : 0) + total);
    /* One row per (database/lane, user) in SHOW POOLS, whatever the number of workers holding a pool. */
    PGresult *pr = PQexec(pgb, "SHOW POOLS");
    assert_int_equal(PQresultStatus(pr), PGRES_TUPLES_OK);
    int pools_rows = 0;
    for (int i = 0; i < PQntuples(pr); i++)
        pools_rows += strcmp(PQgetvalue(pr, i, 0), H_DB "/capped") == 0;
    PQclear(pr);
    assert_int_equal(pools_rows, 1);
    /* SHOW LISTS: every worker's clients (and both consoles), each pool once. */
    pr = PQexec(pgb, "SHOW POOLS");
    int npools = PQntuples(pr);
    PQclear(pr);
    assert_int_equal(row_val(pgb, "SHOW LISTS", "pools", "items"), npools);
    assert_int_equal(row_val(pgb, "SHOW LISTS", "used_clients", "items"), METRICS_CLIENTS + 2);
    /* SHOW CLIENTS lists every worker's clients (and both consoles). */
    PGresult *r = PQexec(adm, "SHOW CLIENTS");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), METRICS_CLIENTS + 2);
    PQclear(r);
    PQfinish(pgb);

    finish_all(c, METRICS_CLIENTS);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/*
 * KILL, KILL lane, RECONNECT and WAIT_CLOSE from one console act on every worker's clients and
 * connections: 12 clients spread over 4 workers each hold an idle server connection; RECONNECT capped
 * counts all the idle ones; with each client in a transaction, RECONNECT marks all 12 and WAIT_CLOSE
 * waits for the last one even when another worker holds it; KILL of each client id (from SHOW CLIENTS) succeeds whatever its worker and the client
 * gets 57P01; KILL of an unknown id is 42704; KILL capped closes the rest.
 */
#define KILL_CLIENTS 12
static void test_kill_across_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    static PGconn *c[KILL_CLIENTS];
    struct h_pglane l;
    long sum;

    start_workers(&l, WORKERS, KILL_CLIENTS);
    PGconn *adm = h_console_ok(&l);
    int spread = connect_spread(&l, adm, WORKERS, c, KILL_CLIENTS, 60000, "12 clients", &sum, NULL, NULL);
    assert_int_equal(sum, KILL_CLIENTS);
    assert_true(spread >= 2);
    for (int i = 0; i < KILL_CLIENTS; i++)
        assert_int_equal(h_exec(c[i], "BEGIN"), 0);
    for (int i = 0; i < KILL_CLIENTS; i++)
        assert_int_equal(h_exec(c[i], "SELECT 1"), 0);   /* KILL_CLIENTS connections open at once */
    for (int i = 0; i < KILL_CLIENTS; i++)
        assert_int_equal(h_exec(c[i], "COMMIT"), 0);
    long idle = h_show_val(adm, "SHOW LANES", "capped", "servers_idle");
    assert_int_equal(idle, KILL_CLIENTS);

    /* RECONNECT: every worker's idle connections are closed and counted in one answer. */
    PGresult *r = PQexec(adm, "RECONNECT capped");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    char *log = h_pglane_log(&l);
    char want[128];
    snprintf(want, sizeof want, "RECONNECT capped: %d idle server connection(s) closed", KILL_CLIENTS);
    if (!strstr(log, want))
        print_error("no \"%s\" in the log:\n%s\n", want, log);
    assert_non_null(strstr(log, want));
    free(log);

    /* WAIT_CLOSE: RECONNECT marks the connections of open transactions on every worker; WAIT_CLOSE
     * answers once the last one was released, here one of a worker other than the console's (a
     * client's worker is in the low 6 bits of its BackendKeyData process id: README). */
    for (int i = 0; i < KILL_CLIENTS; i++) {
        assert_int_equal(h_exec(c[i], "BEGIN"), 0);
        assert_int_equal(h_exec(c[i], "SELECT 1"), 0);
    }
    r = PQexec(adm, "RECONNECT capped");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    int console_worker = PQbackendPID(adm) & 63, last = -1;
    for (int i = 0; i < KILL_CLIENTS; i++)
        if ((PQbackendPID(c[i]) & 63) != console_worker)
            last = i;
    assert_true(last >= 0);      /* spread >= 2: some client is another worker's */
    for (int i = 0; i < KILL_CLIENTS; i++)
        if (i != last)
            assert_int_equal(h_exec(c[i], "COMMIT"), 0);
    assert_int_equal(PQsendQuery(adm, "WAIT_CLOSE capped"), 1);
    /* Three maintenance ticks (1 s each) with one marked connection open: no answer yet. Only the
     * absence of an event can show that it waits, so this one wait is timed. */
    int64_t until = h_now_ms() + 3000;
    while (h_now_ms() < until) {
        assert_int_equal(PQconsumeInput(adm), 1);
        if (!PQisBusy(adm))
            print_error("WAIT_CLOSE answered while client %d (worker %d, console's worker %d) held a marked "
                        "connection\n", last, PQbackendPID(c[last]) & 63, console_worker);
        assert_int_equal(PQisBusy(adm), 1);
        h_sleep_ms(100);
    }
    assert_int_equal(h_exec(c[last], "COMMIT"), 0);
    r = PQgetResult(adm);      /* blocks until the next ticks find no marked connection */
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdStatus(r), "WAIT_CLOSE");
    PQclear(r);
    assert_null(PQgetResult(adm));
    log = h_pglane_log(&l);
    snprintf(want, sizeof want, "RECONNECT capped: 0 idle server connection(s) closed, %d to close", KILL_CLIENTS);
    if (!strstr(log, want))
        print_error("no \"%s\" in the log:\n%s\n", want, log);
    assert_non_null(strstr(log, want));
    free(log);

    /* KILL id: half the clients, by the ids SHOW CLIENTS gives, whatever worker holds them. */
    r = PQexec(adm, "SHOW CLIENTS");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int idc = PQfnumber(r, "id"), appc = PQfnumber(r, "application_name"), killed = 0;
    char ids[KILL_CLIENTS][32];
    for (int i = 0; i < PQntuples(r) && killed < KILL_CLIENTS; i++)
        if (strcmp(PQgetvalue(r, i, appc), "workers_test") == 0)
            snprintf(ids[killed++], sizeof ids[0], "%s", PQgetvalue(r, i, idc));
    PQclear(r);
    assert_int_equal(killed, KILL_CLIENTS);
    for (int i = 0; i < KILL_CLIENTS / 2; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "KILL %.31s", ids[i]);
        r = PQexec(adm, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            print_error("%s: %s\n", sql, PQresultErrorMessage(r));
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
    }
    r = PQexec(adm, "KILL 999999999");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42704");
    PQclear(r);
    /* KILL capped: the other half, on every worker. */
    r = PQexec(adm, "KILL capped");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    log = h_pglane_log(&l);
    snprintf(want, sizeof want, "KILL capped: %d client(s)", KILL_CLIENTS / 2);
    if (!strstr(log, want))
        print_error("no \"%s\" in the log:\n%s\n", want, log);
    assert_non_null(strstr(log, want));
    free(log);
    /* Every client was terminated: its next query fails and the connection is gone. */
    for (int i = 0; i < KILL_CLIENTS; i++) {
        PGresult *q = PQexec(c[i], "SELECT 1");
        assert_int_not_equal(PQresultStatus(q), PGRES_TUPLES_OK);
        PQclear(q);
        assert_int_equal(PQstatus(c[i]), CONNECTION_BAD);
    }
    finish_all(c, KILL_CLIENTS);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* The worker that accepted the connection made by connect(): the one whose accepted count rose. */
static int accepting_worker(PGconn *adm, PGconn **c, PGconn *(*connect)(const struct h_pglane *),
                            const struct h_pglane *l)
{
    struct workers_row a[MAX_WORKERS], b[MAX_WORKERS];
    int na = show_workers(adm, a, MAX_WORKERS);

    *c = connect(l);
    H_ASSERT_CONNECTED(*c);
    int nb = show_workers(adm, b, MAX_WORKERS);
    assert_int_equal(na, nb);
    for (int i = 0; i < na; i++)
        if (b[i].accepted > a[i].accepted)
            return i;
    return -1;
}

static PGconn *connect_blocker(const struct h_pglane *l)
{
    char ci[512];

    cap_conninfo(l, ci, sizeof ci);
    return PQconnectdb(ci);
}

static PGconn *connect_waiter(const struct h_pglane *l)
{
    return h_connect(l, "application_name=web");
}

/*
 * The guard defends a protected waiter of one worker against a blocker of another: lane main
 * (protect, guard = cancel, guard_wait 250 ms) waits on a row that CAP_USER's transaction (lane capped,
 * preemptible) holds idle in transaction, the two clients on different workers. The blocker's worker
 * learns from the backend directory that the waiter is a backend of a protected lane, and terminates
 * the idle transaction; the waiter's UPDATE completes. Without the directory neither worker acts (each
 * sees the other's backend as external) and the UPDATE waits until the test gives up.
 */
static void test_guard_across_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096], *p;
    static const char main_hdr[] = "[lane.main]\nserver = pg\nsize = 2\nqueue_timeout = 30s\n";
    static const char guard_keys[] = "protect = yes\nguard = cancel\nguard_wait = 250ms\n";

    assert_int_equal(h_exec(g_super, "CREATE TABLE IF NOT EXISTS guard_t (id int PRIMARY KEY, v int);"
                                     "INSERT INTO guard_t VALUES (1, 0) ON CONFLICT DO NOTHING;"
                                     "GRANT ALL ON guard_t TO " CAP_USER ", " H_USER), 0);
    /* Each worker's monitor logs in as the user of its first pool, which PostgreSQL may not show the
     * other role's backend state: the guard then goes by pglane's own view of the blocker's connection
     * (idle inside a transaction). */
    workers_conf(conf, sizeof conf, WORKERS, 2, "", "preemptible = yes\n");
    p = strstr(conf, main_hdr);
    assert_non_null(p);
    p += strlen(main_hdr);
    assert_true(strlen(conf) + strlen(guard_keys) < sizeof conf);
    memmove(p + strlen(guard_keys), p, strlen(p) + 1);
    memcpy(p, guard_keys, strlen(guard_keys));
    assert_int_equal(h_pg_wait_long(g_super, CAP_BACKENDS, 0, 10000), 0);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);
    PGconn *adm = h_console_ok(&l);

    PGconn *blocker, *waiter = NULL, *spare[16];
    int nspare = 0, wb = accepting_worker(adm, &blocker, connect_blocker, &l), ww = -1;
    assert_true(wb >= 0);
    while (nspare < 16) {
        PGconn *c;
        ww = accepting_worker(adm, &c, connect_waiter, &l);
        if (ww != wb) {
            waiter = c;
            break;
        }
        spare[nspare++] = c;
    }
    assert_non_null(waiter);
    fprintf(stderr, "  blocker on worker %d, waiter on worker %d\n", wb, ww);

    assert_int_equal(h_exec(blocker, "BEGIN"), 0);
    assert_int_equal(h_exec(blocker, "UPDATE guard_t SET v = v + 1 WHERE id = 1"), 0);   /* idle in transaction */
    int64_t t0 = h_now_ms();
    assert_int_equal(PQsendQuery(waiter, "UPDATE guard_t SET v = v + 10 WHERE id = 1"), 1);
    assert_int_equal(h_wait_result(waiter, 15000), 0);
    PGresult *r = PQgetResult(waiter);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        print_error("waiter: %s\n", PQerrorMessage(waiter));
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    while ((r = PQgetResult(waiter)))
        PQclear(r);
    fprintf(stderr, "  the waiter's UPDATE completed after %lld ms (guard_wait 250 ms)\n", (long long)(h_now_ms() - t0));
    /* The blocker's transaction was ended by pglane, with the guard's message. */
    r = PQexec(blocker, "SELECT 1");
    assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    if (!strstr(PQerrorMessage(blocker), "pglane terminated this idle transaction to protect lane main"))
        print_error("blocker: %s\n", PQerrorMessage(blocker));
    assert_non_null(strstr(PQerrorMessage(blocker), "pglane terminated this idle transaction to protect lane main"));
    /* SHOW GUARD on the console counts the action whatever worker took it. */
    r = PQexec(adm, "SHOW GUARD");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_true(PQntuples(r) >= 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "capped");
    assert_string_equal(PQgetvalue(r, 0, PQfnumber(r, "action")), "terminated");
    PQclear(r);

    PQfinish(blocker);
    PQfinish(waiter);
    for (int i = 0; i < nspare; i++)
        PQfinish(spare[i]);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* Lines of the pglane log containing what. */
static int log_lines(const struct h_pglane *l, const char *what)
{
    char *log = h_pglane_log(l);
    int n = 0;

    for (char *q = log; (q = strstr(q, what)); q++)
        n++;
    free(log);
    return n;
}

/*
 * A connection carrying pglane's prepared statements moves between workers too: pgbench -M prepared,
 * 16 clients over lane main (size 2) on 4 workers, 3 s. At a transaction's end where another worker's
 * queue waited longer, the connection's statements are dropped (DEALLOCATE ALL) and it is handed
 * over; it used to be closed, and the other worker logged in again at every turn (select-only at 64
 * clients over 8 fell from 28,000 to 700 transactions/s with 2 workers). The debug log counts the
 * hand-overs and the closes made to give room at a transaction's end: none of the latter.
 */
static void test_prepared_connections_move(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char script[] = "/tmp/pglane-workers-XXXXXX";
    int fd = mkstemp(script);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(h_write_file(script, "SELECT 1;\n"), 0);
    start_workers_with(&l, WORKERS, 4, "log_level = debug\n", "");
    const char *args[] = { "-n", "-M", "prepared", "-f", script, "-c", "16", "-j", "2", "-T", "3", NULL };
    struct h_proc p;
    char *out = NULL;

    assert_int_equal(h_pgbench_start(&p, &l, H_DB, args), 0);
    int rc = h_proc_wait(&p, 60000, &out);
    long done = h_parse_after(out, "number of transactions actually processed:");
    long failed = h_parse_after(out, "number of failed transactions:");
    if (rc != 0 || failed != 0)
        print_error("pgbench: exit %d\n%s\n", rc, out);
    assert_int_equal(rc, 0);
    assert_int_equal(failed, 0);
    int moved = log_lines(&l, "handed over to another worker's queue that waited longer");
    int closed = log_lines(&l, "given up to another worker's queue that waited longer");
    fprintf(stderr, "  %ld transactions; connections handed over %d times, closed to give room %d times\n", done,
            moved, closed);
    assert_true(done > 16);
    assert_true(moved > 0);        /* 16 clients on 4 workers over 2 connections: they do move */
    assert_int_equal(closed, 0);   /* never closed for carrying statements */
    free(out);
    unlink(script);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* The clients connected now are on more than one worker (else a test of what workers share shows
 * nothing): checked in SHOW CLIENTS, whose console is returned. */
static PGconn *assert_clients_spread(const struct h_pglane *l)
{
    PGconn *adm = h_console(l, NULL);
    H_ASSERT_CONNECTED(adm);
    PGresult *r = PQexec(adm, "SHOW CLIENTS");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int wc = PQfnumber(r, "worker"), seen = 0;
    for (int i = 0; i < PQntuples(r); i++)
        seen |= 1 << atoi(PQgetvalue(r, i, wc));
    PQclear(r);
    fprintf(stderr, "  clients on workers (bit mask) %#x\n", seen);
    assert_true(__builtin_popcount(seen) >= 2);
    return adm;
}

/*
 * A statement PostgreSQL accepted in one worker is answered in every worker at once: a client's
 * Parse of it does not wait for a server connection. Lane capped has one connection, held by a
 * transaction; twelve clients (spread over the workers) prepare the statement another client
 * prepared before: each gets ParseComplete within 3 s, though none can have the connection. Without
 * the shared knowledge a client of another worker waits for the connection (and a client that
 * prepares synchronously while its own thread holds that connection, as pgbench -M prepared does,
 * waits for ever).
 */
#define PREP_CLIENTS 12
static void test_prepare_known_in_every_worker(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    PGconn *c[PREP_CLIENTS];
    char ci[512];
    const char *sql = "SELECT $1::int + 41";

    start_workers(&l, WORKERS, 1);
    cap_conninfo(&l, ci, sizeof ci);
    PGconn *first = PQconnectdb(ci), *holder = PQconnectdb(ci);
    H_ASSERT_CONNECTED(first);
    H_ASSERT_CONNECTED(holder);
    PGresult *r = PQprepare(first, "known", sql, 0, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_int_equal(h_exec(holder, "BEGIN"), 0);
    assert_int_equal(h_exec(holder, "SELECT 1"), 0);   /* the lane's only connection, held */
    connect_all(&l, c, PREP_CLIENTS, 30000);
    for (int i = 0; i < PREP_CLIENTS; i++)
        assert_int_equal(PQsendPrepare(c[i], "known", sql, 0, NULL), 1);
    for (int i = 0; i < PREP_CLIENTS; i++) {
        if (h_wait_result(c[i], 3000) != 0)
            print_error("client %d: no answer to its Parse within 3 s\n", i);
        assert_int_equal(h_wait_result(c[i], 0), 0);
        r = PQgetResult(c[i]);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        assert_null(PQgetResult(c[i]));
    }
    PGconn *adm = assert_clients_spread(&l);
    /* And the statement runs once the connection is free. */
    assert_int_equal(h_exec(holder, "COMMIT"), 0);
    const char *p[1] = { "1" };
    r = PQexecPrepared(c[0], "known", 1, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    for (int i = 0; i < PREP_CLIENTS; i++)
        PQfinish(c[i]);
    PQfinish(first);
    PQfinish(holder);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/*
 * What slower_than learns in one worker routes the shape in every worker: a client runs a slow shape
 * twice (its worker learns it), then twelve clients spread over the workers run it once each, the
 * first time on their worker: each runs on lane capped (its statement_timeout shows it), not on the
 * default lane main.
 */
#define LEARN_CLIENTS 12
static void test_learned_in_every_worker(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    PGconn *c[LEARN_CLIENTS];
    const char *slow = "SELECT current_setting('statement_timeout'), pg_sleep(0.3)";

    start_workers_with(&l, WORKERS, 2, "", "statement_timeout = 77s\n\n[route.slow]\nslower_than = 150ms\n"
                                           "lane = capped\n");
    PGconn *a = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(a);
    char *v = h_query1(a, slow);
    assert_non_null(v);
    assert_string_equal(v, "0");      /* first run: nothing learned, lane main */
    free(v);
    v = h_query1(a, slow);
    assert_non_null(v);
    assert_string_equal(v, "77s");    /* learned: lane capped */
    free(v);
    for (int i = 0; i < LEARN_CLIENTS; i++) {
        c[i] = h_connect(&l, NULL);
        H_ASSERT_CONNECTED(c[i]);
    }
    PGconn *adm = assert_clients_spread(&l);
    for (int i = 0; i < LEARN_CLIENTS; i++) {
        v = h_query1(c[i], slow);
        if (!v || strcmp(v, "77s") != 0)
            print_error("client %d: statement_timeout %s: not routed as the learned shape\n", i, v ? v : "(error)");
        assert_non_null(v);
        assert_string_equal(v, "77s");
        free(v);
        PQfinish(c[i]);
    }
    PQfinish(a);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/*
 * Under a tenant_key, an idle connection in one worker serves a waiter in another worker whose tenant
 * already holds a connection (no tenant_max: only fair queuing). Lane capped (size 2), two workers:
 * y1 (worker Y) holds a connection in a transaction, x (worker X) opened the other one, idle now; y2
 * (worker Y, y1's tenant) then has no connection in its worker and the lane has no room: X hands it
 * its idle one while y1's transaction is still open. Before, a waiter whose tenant held any connection
 * was never served from another worker's idle connections (it waited for its own worker's).
 */
#define SPREAD_CLIENTS 16
static void test_idle_connection_serves_busy_tenant(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    PGconn *c[SPREAD_CLIENTS];
    int x = -1, y1 = -1, y2 = -1;

    start_workers_with(&l, 2, 2, "", "tenant_key = application_name\n");
    connect_all(&l, c, SPREAD_CLIENTS, 30000);
    /* The worker of each client: the low bits of the process id in its cancel key. */
    for (int i = 0; i < SPREAD_CLIENTS; i++) {
        int w = PQbackendPID(c[i]) & 63;

        if (w == 1 && y1 < 0)
            y1 = i;
        else if (w == 1 && y2 < 0)
            y2 = i;
        else if (w == 0 && x < 0)
            x = i;
    }
    if (x < 0 || y2 < 0)
        print_error("%d logins did not give one client of worker 0 and two of worker 1\n", SPREAD_CLIENTS);
    assert_true(x >= 0 && y1 >= 0 && y2 >= 0);
    assert_int_equal(h_exec(c[y1], "BEGIN"), 0);
    assert_int_equal(h_exec(c[y1], "SELECT 1"), 0);    /* Y's connection, held */
    assert_int_equal(h_exec(c[x], "SELECT 1"), 0);     /* X's connection (the lane's second), idle now */
    assert_int_equal(h_pg_long(g_super, CAP_BACKENDS), 2);
    assert_int_equal(PQsendQuery(c[y2], "SELECT 2"), 1);
    if (h_wait_result(c[y2], 10000) != 0)
        print_error("y2 had no answer within 10 s while worker 0 held an idle connection\n");
    assert_int_equal(h_wait_result(c[y2], 0), 0);
    PGresult *r = PQgetResult(c[y2]);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "2");
    PQclear(r);
    assert_null(PQgetResult(c[y2]));
    assert_int_equal(PQtransactionStatus(c[y1]), PQTRANS_INTRANS);   /* still holding the other one */
    assert_int_equal(h_exec(c[y1], "COMMIT"), 0);
    assert_int_equal(h_pg_long(g_super, CAP_BACKENDS), 2);
    for (int i = 0; i < SPREAD_CLIENTS; i++)
        PQfinish(c[i]);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* A client of lane capped with application_name app, on worker `worker` (found by the worker id in
 * its cancel key: logins go to whatever worker the kernel picks, so this tries up to 100). */
static PGconn *connect_on_worker(const struct h_pglane *l, const char *app, int worker)
{
    char ci[512];

    cap_conninfo_app(l, app, ci, sizeof ci);
    for (int attempt = 0; attempt < 100; attempt++) {
        PGconn *c = PQconnectdb(ci);

        H_ASSERT_CONNECTED(c);
        if ((PQbackendPID(c) & 63) == worker)
            return c;
        PQfinish(c);
    }
    print_error("100 logins of %s did not land on worker %d\n", app, worker);
    fail();
    return NULL;
}

/*
 * Between the queues of two other workers the older comes first, even one place older: lane capped
 * (size 1) on 4 workers is held by a transaction of a client of worker 0; a client of worker 2 sends a
 * statement, and once it waits, a client of worker 1 does; the holder commits. Each statement takes a
 * number from a sequence as it runs: worker 2's client must run first. Before, the one-place slack
 * that lets a worker serve its own queue ahead of another's a place older (test_fifo_across_workers)
 * applied between two other workers too, so the connection went to the worker listed first (1).
 */
static void test_fifo_between_other_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;

    start_workers(&l, WORKERS, 1);
    PGconn *adm = h_console_ok(&l);
    PGconn *holder = connect_on_worker(&l, "fifo_holder", 0);
    PGconn *first = connect_on_worker(&l, "fifo_first", 2), *second = connect_on_worker(&l, "fifo_second", 1);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(h_exec(holder, "BEGIN"), 0);
        assert_int_equal(h_exec(holder, "SELECT 1"), 0);   /* the lane's one connection, in worker 0 */
        assert_int_equal(PQsendQuery(first, "SELECT nextval('fifo_seq')"), 1);
        assert_int_equal(h_show_wait(adm, "SHOW LANES", "capped", "clients_waiting", 1, 10000), 1);
        assert_int_equal(PQsendQuery(second, "SELECT nextval('fifo_seq')"), 1);
        assert_int_equal(h_show_wait(adm, "SHOW LANES", "capped", "clients_waiting", 2, 10000), 2);
        assert_int_equal(h_exec(holder, "COMMIT"), 0);
        long pos[2];
        PGconn *both[2] = { first, second };
        for (int k = 0; k < 2; k++) {
            assert_int_equal(h_wait_result(both[k], 10000), 0);
            PGresult *r = PQgetResult(both[k]);
            assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
            pos[k] = atol(PQgetvalue(r, 0, 0));
            PQclear(r);
            assert_null(PQgetResult(both[k]));
        }
        if (pos[0] > pos[1])
            print_error("round %d: worker 2's client (waiting first) ran at %ld, worker 1's at %ld\n", round, pos[0],
                        pos[1]);
        assert_true(pos[0] < pos[1]);
    }
    PQfinish(holder);
    PQfinish(first);
    PQfinish(second);
    PQfinish(adm);
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/*
 * tenant_weight holds between workers: tenant heavy (weight 3) only on worker 0, tenant light
 * (weight 1) only on worker 1, six clients each running 50 ms statements back to back on a lane of
 * 4 for 4 s. Each worker's queue holds one tenant, so only the hand-over between workers shares the
 * lane: heavy should get 3 of the 4 connections, about 3 x light's transactions. Before, the worker
 * whose tenant held fewer connections won whatever its weight (2 and 2: about 1 x).
 */
#define WEIGHT_CLIENTS 6
static void test_tenant_weight_across_workers(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    PGconn *c[2 * WEIGHT_CLIENTS];
    long done[2] = { 0, 0 };

    start_workers_with(&l, 2, 4, "", "tenant_key = application_name\ntenant_weight.heavy = 3\n");
    for (int i = 0; i < 2 * WEIGHT_CLIENTS; i++)
        c[i] = connect_on_worker(&l, i < WEIGHT_CLIENTS ? "heavy" : "light", i < WEIGHT_CLIENTS ? 0 : 1);
    for (int i = 0; i < 2 * WEIGHT_CLIENTS; i++)
        assert_int_equal(PQsendQuery(c[i], "SELECT pg_sleep(0.05)"), 1);
    int64_t end = h_now_ms() + 4000;
    while (h_now_ms() < end) {
        struct pollfd pfd[2 * WEIGHT_CLIENTS];

        for (int i = 0; i < 2 * WEIGHT_CLIENTS; i++)
            pfd[i] = (struct pollfd){ .fd = PQsocket(c[i]), .events = POLLIN };
        (void)poll(pfd, 2 * WEIGHT_CLIENTS, 100);
        for (int i = 0; i < 2 * WEIGHT_CLIENTS; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            assert_int_equal(PQconsumeInput(c[i]), 1);
            if (PQisBusy(c[i]))
                continue;
            PGresult *r;
            while ((r = PQgetResult(c[i]))) {
                assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
                PQclear(r);
            }
            done[i >= WEIGHT_CLIENTS]++;
            assert_int_equal(PQsendQuery(c[i], "SELECT pg_sleep(0.05)"), 1);
        }
    }
    for (int i = 0; i < 2 * WEIGHT_CLIENTS; i++) {
        assert_int_equal(h_wait_result(c[i], 10000), 0);
        PGresult *r;
        while ((r = PQgetResult(c[i])))
            PQclear(r);
        PQfinish(c[i]);
    }
    print_message("4 s on a lane of 4: heavy (weight 3, worker 0) %ld transactions, light (weight 1, "
                  "worker 1) %ld\n", done[0], done[1]);
    assert_true(done[1] > 0);
    assert_true(done[0] >= 2 * done[1]);   /* 3 x expected; equal shares give about 1 x */
    h_pglane_assert_term_clean_exit(&l);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ */

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_lane_cap_default_workers),
        H_TEST(test_lane_cap_is_global_over_4_workers),
        H_TEST(test_user_cap_default_workers),
        H_TEST(test_user_cap_4_workers),
        H_TEST(test_db_cap_default_workers),
        H_TEST(test_db_cap_4_workers),
        H_TEST(test_tenant_cap_default_workers),
        H_TEST(test_tenant_cap_4_workers),
        H_TEST(test_fifo_across_workers),
        H_TEST(test_login_while_lane_busy_default_workers),
        H_TEST(test_login_while_lane_busy_4_workers),
        H_TEST(test_sigterm_drains_default_workers),
        H_TEST(test_sigterm_drains_4_workers),
        H_TEST(test_sigterm_at_first_accept),
        H_TEST(test_shutdown_at_first_login),
        H_TEST(test_cancel_across_workers),
        H_TEST(test_metrics_sum_over_workers),
        H_TEST(test_kill_across_workers),
        H_TEST(test_guard_across_workers),
        H_TEST(test_prepared_connections_move),
        H_TEST(test_prepare_known_in_every_worker),
        H_TEST(test_learned_in_every_worker),
        H_TEST(test_idle_connection_serves_busy_tenant),
        H_TEST(test_tenant_weight_across_workers),
        H_TEST(test_fifo_between_other_workers),
    };
    return H_RUN_GROUP("integration: workers", tests, .pg = &g_pg, .super = &g_super, .setup = fixtures);
}
