/*
 * Peering and rolling restart (issue #17): pglane processes with so_reuseport = yes listen on one
 * shared port, each with its own peer_id and its own [peers] address (a second listener). A libpq
 * PQcancel opens a new connection to the shared port that the kernel may hand to either process;
 * the one that gets a key of the other forwards it, so every cancel reaches its query and no other.
 * A rolling restart (start a new process on the port, SIGTERM the old one, which stops accepting and
 * serves its connected clients until they leave: client_drain_timeout) under pgbench ends with 0
 * failed transactions. Every process started here is stopped by its pid (harness).
 */
#include "tests/integration/harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Each worker drains its own clients and logs it (PGLANE_TEST_WORKERS: every pglane runs that many). */
#define WORKERS_LOGGING (h_workers() > 1 ? h_workers() : 1)

static struct h_pg g_pg;
static PGconn *g_super;

#define NSLEEP 100
#define PEER_ID(pid) (((unsigned)(pid) >> 17) & 0x3fff)   /* README: the cancel key's layout */

struct ports {
    int shared;                /* so_reuseport: every process */
    int peer[4];               /* [1..3]: each process's own [peers] address */
};

/* Four distinct free ports: h_free_port may hand out the same one twice (it is free again once
 * probed), and with SO_REUSEPORT a port shared by mistake binds without complaint (a peer's address
 * equal to the shared port sent forwarded cancels back and forth until their hops ran out). */
static void pick_ports(struct ports *p)
{
    int got[4], n = 0;

    while (n < 4) {
        int port = h_free_port(), dup = 0;

        assert_true(port > 0);
        for (int i = 0; i < n; i++)
            dup |= got[i] == port;
        if (!dup)
            got[n++] = port;
    }
    p->shared = got[0];
    for (int i = 1; i <= 3; i++)
        p->peer[i] = got[i];
}

/* Process `id` of the group: listens on the shared port, its peer port and the harness's @PORT@
 * (the console the test uses to reach this very process); [peers] lists all three ids. */
static void peer_conf(char *buf, size_t n, const struct ports *p, int id, const char *extra)
{
    char pglane[512], listen[160], peers[256];

    snprintf(pglane, sizeof pglane, "server_idle_timeout = 60s\nadmin_users = " H_USER "\n"
             "so_reuseport = yes\npeer_id = %d\n%s", id, extra ? extra : "");
    h_conf(buf, n, "transaction", 120, "scram-sha-256", pglane);
    snprintf(listen, sizeof listen, "listen = 127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:@PORT@\n", p->shared,
             p->peer[id]);
    h_conf_replace(buf, n, "listen = 127.0.0.1:@PORT@\n", listen);
    snprintf(peers, sizeof peers, "\n[peers]\npeer.1 = 127.0.0.1:%d\npeer.2 = 127.0.0.1:%d\n3 = host=127.0.0.1 port=%d\n",
             p->peer[1], p->peer[2], p->peer[3]);
    assert_true(strlen(buf) + strlen(peers) < n);
    strcat(buf, peers);
}

static PGconn *connect_shared(const struct ports *p, const char *db)
{
    char ci[256];

    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=" H_USER " password=" H_PASSWORD " dbname=%s "
             "connect_timeout=5", p->shared, db);
    return PQconnectdb(ci);
}

/* Occurrences of `what` in the process's log. */
static int log_count(const struct h_pglane *l, const char *what)
{
    char *log = h_pglane_log(l);
    int n = 0;

    for (const char *s = log; s && (s = strstr(s, what)) != NULL; s += strlen(what))
        n++;
    free(log);
    return n;
}

/* The peer_id of the process a console connection through the shared port reached (SHOW CONFIG). */
static int console_peer_id(const struct ports *p)
{
    PGconn *c = connect_shared(p, "pglane");
    char *v;
    int id = -1;

    if (PQstatus(c) != CONNECTION_OK) {
        print_error("console through the shared port: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    PGresult *r = PQexec(c, "SHOW CONFIG");
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 0), "peer_id") == 0 && (v = PQgetvalue(r, i, 1)))
            id = atoi(v);
    PQclear(r);
    PQfinish(c);
    return id;
}

/* Cancels conns[from..to) with PQcancel (each opens a new connection to the shared port). */
static void cancel_range(PGconn **conns, int from, int to)
{
    char err[256];

    for (int i = from; i < to; i++) {
        PGcancel *cn = PQgetCancel(conns[i]);

        assert_non_null(cn);
        if (!PQcancel(cn, err, sizeof err))
            print_error("PQcancel %d: %s\n", i, err);
        PQfreeCancel(cn);
    }
}

/* The result of conns[i]'s pg_sleep(10) within timeout_ms: must be 57014. */
static void expect_cancelled(PGconn *c, int i, int timeout_ms)
{
    PGresult *r;
    const char *st;

    if (h_wait_result(c, timeout_ms) != 0)
        fail_msg("query %d was not cancelled within %d ms", i, timeout_ms);
    r = PQgetResult(c);
    st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) != PGRES_FATAL_ERROR || !st || strcmp(st, "57014") != 0)
        fail_msg("query %d: status %s, sqlstate %s: %s", i, PQresStatus(PQresultStatus(r)), st ? st : "-",
                 PQresultErrorMessage(r));
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
}

/*
 * Two processes on one port: 100 pg_sleep(10) through the shared port land on both; each is
 * cancelled by PQcancel from its own connection object (the cancel's connection lands on either
 * process). The first 50 cancels end exactly those 50 queries (the other 50 and a control query
 * still run), then the other 50; all 100 get 57014 promptly, and the control query completes.
 */
static void test_cancel_through_either_process(void **state)
{
    struct h_pglane a = { 0 }, b = { 0 };
    struct ports p;
    char conf[8192];
    PGconn *conns[NSLEEP], *control;
    PGresult *r;
    long on_a, on_b;

    (void)state;
    H_SKIP_IF_DIRECT();
    pick_ports(&p);
    peer_conf(conf, sizeof conf, &p, 1, NULL);
    assert_int_equal(h_pglane_start(&a, &g_pg, conf), 0);
    peer_conf(conf, sizeof conf, &p, 2, NULL);
    assert_int_equal(h_pglane_start(&b, &g_pg, conf), 0);

    for (int i = 0; i < NSLEEP; i++) {
        conns[i] = connect_shared(&p, H_DB);
        H_ASSERT_CONNECTED(conns[i]);
        /* The key names the process that issued it. */
        assert_true(PEER_ID(PQbackendPID(conns[i])) == 1 || PEER_ID(PQbackendPID(conns[i])) == 2);
    }
    control = connect_shared(&p, H_DB);
    H_ASSERT_CONNECTED(control);
    for (int i = 0; i < NSLEEP; i++)
        assert_int_equal(PQsendQuery(conns[i], "SELECT pg_sleep(10)"), 1);
    assert_int_equal(h_pg_wait_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE query = "
                                             "'SELECT pg_sleep(10)' AND state = 'active'", NSLEEP, 20000),
                     NSLEEP);
    /* The control query starts once the 100 run (on a loaded machine their start can take longer than
     * the control's sleep), and must still run while the first half is cancelled. */
    assert_int_equal(PQsendQuery(control, "SELECT 'control' FROM pg_sleep(6)"), 1);
    assert_int_equal(h_pg_wait_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE query = "
                                             "'SELECT ''control'' FROM pg_sleep(6)' AND state = 'active'", 1, 20000),
                     1);

    /* Both processes run some of them (each one's own console, on its @PORT@). */
    PGconn *adm_a = h_console(&a, NULL), *adm_b = h_console(&b, NULL);
    H_ASSERT_CONNECTED(adm_a);
    H_ASSERT_CONNECTED(adm_b);
    on_a = h_show_val(adm_a, "SHOW LANES", "main", "clients_active");
    on_b = h_show_val(adm_b, "SHOW LANES", "main", "clients_active");
    fprintf(stderr, "clients active: %ld on peer 1, %ld on peer 2\n", on_a, on_b);
    assert_true(on_a > 0 && on_b > 0);
    assert_int_equal(on_a + on_b, NSLEEP + 1);

    int64_t t0 = h_now_ms();
    cancel_range(conns, 0, NSLEEP / 2);
    for (int i = 0; i < NSLEEP / 2; i++)
        expect_cancelled(conns[i], i, 5000);
    /* Exactly those: the other half and the control query still run (a cancelled backend turns idle
     * in pg_stat_activity a moment after its client has the error). */
    assert_int_equal(h_pg_wait_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE query = "
                                             "'SELECT pg_sleep(10)' AND state = 'active'", NSLEEP / 2, 5000),
                     NSLEEP / 2);
    for (int i = NSLEEP / 2; i < NSLEEP; i++) {
        assert_int_equal(PQconsumeInput(conns[i]), 1);
        assert_int_equal(PQisBusy(conns[i]), 1);
    }
    assert_int_equal(PQconsumeInput(control), 1);
    assert_int_equal(PQisBusy(control), 1);
    cancel_range(conns, NSLEEP / 2, NSLEEP);
    for (int i = NSLEEP / 2; i < NSLEEP; i++)
        expect_cancelled(conns[i], i, 5000);
    int64_t took = h_now_ms() - t0;
    fprintf(stderr, "100 cancels answered in %lld ms\n", (long long)took);
    assert_true(took < 8000);            /* well before the 10 s sleeps would have ended */

    /* The control query was not cancelled. */
    assert_int_equal(h_wait_result(control, 10000), 0);
    r = PQgetResult(control);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "control");
    PQclear(r);
    while ((r = PQgetResult(control)) != NULL)
        PQclear(r);

    /* Every cancel reached its backend once (in one process or the other), and some of them reached
     * the process without the key first and were forwarded to its peer. */
    int fwd_a = log_count(&a, "cancel request for peer 2: forwarded"), fwd_b = log_count(&b, "cancel request for peer 1: forwarded");
    int hit = log_count(&a, "cancel forwarded to backend") + log_count(&b, "cancel forwarded to backend");
    fprintf(stderr, "peer forwards: %d from peer 1, %d from peer 2; backend cancels %d\n", fwd_a, fwd_b, hit);
    assert_int_equal(hit, NSLEEP);
    assert_true(fwd_a + fwd_b > 0);
    assert_int_equal(log_count(&a, "(so_reuseport)"), 3);   /* each TCP listener */

    /* A key of a peer [peers] does not list (id 9), one of this process that names no client, and
     * one of peer 2 with no hops left (as if forwarded in a loop): dropped; the processes go on. */
    {
        static const uint32_t pids[] = { (9u << 17) | (3u << 15) | 5u, (1u << 17) | (3u << 15) | 5u,
                                         (2u << 17) | (0u << 15) | 5u };
        uint8_t pkt[16];
        int fd;

        for (int k = 0; k < 3; k++) {
            h_put32(pkt, 16);
            h_put32(pkt + 4, 80877102);
            h_put32(pkt + 8, pids[k]);
            h_put32(pkt + 12, 12345);
            fd = h_raw_connect(p.peer[1]);
            assert_true(fd >= 0);
            assert_int_equal(h_raw_send(fd, pkt, sizeof pkt), 0);
            assert_int_equal(h_raw_read_byte(fd, 5000), H_RAW_EOF);
            close(fd);
        }
        assert_int_equal(h_exec(control, "SELECT 1"), 0);
        assert_int_equal(log_count(&a, "cancel request for peer 9"), 0);   /* no forward attempt */
        assert_int_equal(log_count(&a, "cancel request for peer 2 was forwarded 3 times already"), 1);
    }

    /* SHOW CONFIG shows the peering keys. */
    r = PQexec(adm_a, "SHOW CONFIG");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int seen = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *k = PQgetvalue(r, i, 0), *v = PQgetvalue(r, i, 1);
        char want[64];

        if (strcmp(k, "so_reuseport") == 0)
            seen += strcmp(v, "yes") == 0;
        if (strcmp(k, "peer_id") == 0)
            seen += strcmp(v, "1") == 0;
        snprintf(want, sizeof want, "127.0.0.1:%d", p.peer[2]);
        if (strcmp(k, "peers.2") == 0)
            seen += strcmp(v, want) == 0;
    }
    PQclear(r);
    assert_int_equal(seen, 3);

    for (int i = 0; i < NSLEEP; i++)
        PQfinish(conns[i]);
    PQfinish(control);
    PQfinish(adm_a);
    PQfinish(adm_b);
    h_pglane_assert_term_clean_exit(&a);
    h_pglane_assert_term_clean_exit(&b);
    h_pass();
}

/* A reload that changes peer_id or so_reuseport says it needs a restart and keeps the running values. */
static void test_reload_needs_restart(void **state)
{
    struct h_pglane a = { 0 };
    struct ports p;
    char conf[8192];

    (void)state;
    H_SKIP_IF_DIRECT();
    pick_ports(&p);
    peer_conf(conf, sizeof conf, &p, 1, NULL);
    assert_int_equal(h_pglane_start(&a, &g_pg, conf), 0);
    char *text = h_read_file(a.conf_path);
    assert_non_null(text);
    char *at = strstr(text, "peer_id = 1\n");
    assert_non_null(at);
    at[10] = '2';
    at = strstr(text, "so_reuseport = yes");
    assert_non_null(at);
    memcpy(at, "so_reuseport = no ", 18);
    assert_int_equal(h_write_file(a.conf_path, text), 0);
    free(text);
    assert_int_equal(h_pglane_signal(&a, SIGHUP), 0);
    int64_t deadline = h_now_ms() + 10000;
    /* With several workers each reloads; worker 0 alone warns (once for the process): its lines are
     * awaited, not the first worker's reload. */
    while ((log_count(&a, "reload: peer_id 1 -> 2 needs a restart") == 0 ||
            log_count(&a, "reload: so_reuseport = no needs a restart") == 0) && h_now_ms() < deadline)
        h_sleep_ms(20);
    assert_int_equal(log_count(&a, "reload: peer_id 1 -> 2 needs a restart"), 1);
    assert_int_equal(log_count(&a, "reload: so_reuseport = no needs a restart"), 1);
    PGconn *c = h_connect(&a, NULL);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(PEER_ID(PQbackendPID(c)), 1);   /* keys still carry the running id */
    PQfinish(c);
    PGconn *adm = h_console(&a, NULL);
    H_ASSERT_CONNECTED(adm);
    PGresult *r = PQexec(adm, "SHOW CONFIG");
    int seen = 0;
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
        if (strcmp(PQgetvalue(r, i, 0), "peer_id") == 0)
            seen += strcmp(PQgetvalue(r, i, 1), "1 (the file says 2: needs a restart)") == 0;
        if (strcmp(PQgetvalue(r, i, 0), "so_reuseport") == 0)
            seen += strcmp(PQgetvalue(r, i, 1), "yes (the file says no: needs a restart)") == 0;
    }
    PQclear(r);
    PQfinish(adm);
    assert_int_equal(seen, 2);
    h_pglane_assert_term_clean_exit(&a);
    h_pass();
}

/*
 * client_drain_timeout: after SIGTERM the connected client is still served (new transactions too),
 * a new login on the peer address is refused with 57P01, a cancel can still reach it through its
 * peer address; when the timeout ends the idle client is closed with 57P01 and pglane exits 0.
 */
static void test_drain_timeout(void **state)
{
    struct h_pglane a = { 0 };
    struct ports p;
    char conf[8192], ci[256];

    (void)state;
    H_SKIP_IF_DIRECT();
    pick_ports(&p);
    peer_conf(conf, sizeof conf, &p, 1, "client_drain_timeout = 3s\n");
    assert_int_equal(h_pglane_start(&a, &g_pg, conf), 0);
    PGconn *c = h_connect(&a, NULL);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(h_exec(c, "SELECT 1"), 0);
    assert_int_equal(h_pglane_signal(&a, SIGTERM), 0);
    int64_t t0 = h_now_ms();
    while (log_count(&a, "SIGTERM: draining: no new connections") < WORKERS_LOGGING && h_now_ms() - t0 < 5000)
        h_sleep_ms(10);
    assert_int_equal(log_count(&a, "SIGTERM: draining: no new connections"), WORKERS_LOGGING);
    /* Still served. */
    assert_int_equal(h_exec(c, "BEGIN; SELECT 1; COMMIT"), 0);
    /* The shared listener is closed; the peer address takes cancels but no logins. */
    int fd = h_raw_connect(p.shared);
    if (fd >= 0)
        close(fd);
    assert_true(fd < 0);
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=" H_USER " password=" H_PASSWORD " dbname=" H_DB
             " connect_timeout=5", p.peer[1]);
    PGconn *late = PQconnectdb(ci);
    assert_int_not_equal(PQstatus(late), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(late), "pglane is shutting down"));
    PQfinish(late);
    /* The timeout ends the wait: the idle client is closed and pglane exits. */
    assert_int_equal(h_pglane_wait_exit(&a, 10000), 1);
    assert_true(h_now_ms() - t0 >= 2500);
    PGresult *r = PQexec(c, "SELECT 1");
    assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    fprintf(stderr, "after the drain timeout the client sees: %s", PQerrorMessage(c));
    assert_non_null(strstr(PQerrorMessage(c), "pglane is shutting down"));
    PQclear(r);
    PQfinish(c);
    h_pglane_assert_clean_exit(&a);
    h_pass();
}

static long pgbench_result(struct h_proc *pb, const char *what)
{
    char *out = NULL;
    int rc = h_proc_wait(pb, 90000, &out);
    long failed = h_parse_after(out, "number of failed transactions:");
    long done = h_parse_after(out, "number of transactions actually processed:");

    h_untrack_pid(pb->pid);
    fprintf(stderr, "%s: exit %d, %ld transactions, %ld failed\n", what, rc, done, failed);
    if (rc != 0 || failed != 0 || done <= 0)
        print_error("%s:\n%s\n", what, out ? out : "");
    free(out);
    assert_int_equal(rc, 0);
    assert_int_equal(failed, 0);
    assert_true(done > 0);
    return done;
}

/*
 * Rolling restart under load: pgbench -c 32 -T 30 (long-lived connections; PGLANE_ROLLING_T sets -T) and pgbench -C -c 4 (a new
 * connection per transaction) run through the shared port of processes 1 and 2. In the middle,
 * process 3 starts on the port and process 1 gets SIGTERM: it stops accepting at once (new
 * connections reach 2 and 3 only), still serves its connected clients, takes the cancel of a
 * query it runs through its peer address, and exits once pgbench has disconnected.
 * Both pgbench runs end with 0 failed transactions and exit 0.
 */
static void test_rolling_restart(void **state)
{
    struct h_pglane a = { 0 }, b = { 0 }, c3 = { 0 };
    struct ports p;
    char conf[8192], ci[256];
    struct h_proc pb_long, pb_conn;
    const char *dur = getenv("PGLANE_ROLLING_T") ? getenv("PGLANE_ROLLING_T") : "30";

    (void)state;
    H_SKIP_IF_DIRECT();
    pick_ports(&p);
    peer_conf(conf, sizeof conf, &p, 1, "client_drain_timeout = 5min\n");
    assert_int_equal(h_pglane_start(&a, &g_pg, conf), 0);
    peer_conf(conf, sizeof conf, &p, 2, "client_drain_timeout = 5min\n");
    assert_int_equal(h_pglane_start(&b, &g_pg, conf), 0);

    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=" H_USER " password=" H_PASSWORD " dbname=" H_BENCH_DB,
             p.shared);
    const char *argv_long[] = { "pgbench", "-n", "-c", "32", "-j", "2", "-T", dur, ci, NULL };
    const char *argv_conn[] = { "pgbench", "-n", "-C", "-c", "4", "-j", "1", "-T", dur, ci, NULL };
    assert_int_equal(h_proc_start(&pb_long, argv_long, NULL), 0);
    h_track_pid(pb_long.pid);
    assert_int_equal(h_proc_start(&pb_conn, argv_conn, NULL), 0);
    h_track_pid(pb_conn.pid);

    /* A connection of process 1 (its key says so), for a cancel during the drain. */
    PGconn *on_a = NULL;
    for (int i = 0; i < 64 && !on_a; i++) {
        PGconn *x = connect_shared(&p, H_DB);

        H_ASSERT_CONNECTED(x);
        if (PEER_ID(PQbackendPID(x)) == 1)
            on_a = x;
        else
            PQfinish(x);
    }
    assert_non_null(on_a);

    /* Both processes carry pgbench traffic, then the restart: 3 starts, 1 drains. */
    PGconn *adm_a = h_console(&a, NULL), *adm_b = h_console(&b, NULL);
    H_ASSERT_CONNECTED(adm_a);
    H_ASSERT_CONNECTED(adm_b);
    int64_t deadline = h_now_ms() + 20000;
    while ((h_show_val(adm_a, "SHOW STATS", "main", "transactions") < 200 ||
            h_show_val(adm_b, "SHOW STATS", "main", "transactions") < 200) && h_now_ms() < deadline)
        h_sleep_ms(50);
    assert_true(h_show_val(adm_a, "SHOW STATS", "main", "transactions") >= 200);
    assert_true(h_show_val(adm_b, "SHOW STATS", "main", "transactions") >= 200);
    PQfinish(adm_a);
    PQfinish(adm_b);
    peer_conf(conf, sizeof conf, &p, 3, "client_drain_timeout = 5min\n");
    assert_int_equal(h_pglane_start(&c3, &g_pg, conf), 0);
    assert_int_equal(h_pglane_signal(&a, SIGTERM), 0);
    deadline = h_now_ms() + 5000;
    while (log_count(&a, "SIGTERM: draining: no new connections") < WORKERS_LOGGING && h_now_ms() < deadline)
        h_sleep_ms(10);
    assert_int_equal(log_count(&a, "SIGTERM: draining: no new connections"), WORKERS_LOGGING);
    assert_true(h_pglane_alive(&a));

    /* New connections reach 2 and 3 only. */
    int seen[4] = { 0 };
    for (int i = 0; i < 24; i++) {
        int id = console_peer_id(&p);

        assert_true(id == 2 || id == 3);
        seen[id]++;
    }
    fprintf(stderr, "24 console connections after the SIGTERM: %d on peer 2, %d on peer 3\n", seen[2], seen[3]);
    assert_true(seen[3] > 0);

    /* Process 1 still serves its client, and a cancel through the shared port (reaching 2 or 3)
     * is forwarded to 1's peer address. */
    assert_int_equal(h_exec(on_a, "SELECT 1"), 0);
    assert_int_equal(PQsendQuery(on_a, "SELECT pg_sleep(10)"), 1);
    assert_int_equal(h_pg_wait_long(g_super, "SELECT count(*) FROM pg_stat_activity WHERE query = "
                                             "'SELECT pg_sleep(10)' AND state = 'active'", 1, 10000), 1);
    cancel_range(&on_a, 0, 1);
    expect_cancelled(on_a, 0, 5000);
    assert_int_equal(log_count(&b, "cancel request for peer 1: forwarded") +
                     log_count(&c3, "cancel request for peer 1: forwarded"), 1);
    PQfinish(on_a);

    long done_long = pgbench_result(&pb_long, "pgbench -c 32");
    long done_conn = pgbench_result(&pb_conn, "pgbench -C -c 4");
    (void)done_long, (void)done_conn;
    /* The new process took transactions; the old one exits once its clients have gone. */
    PGconn *adm_c = h_console(&c3, NULL);
    H_ASSERT_CONNECTED(adm_c);
    long on_c = h_show_val(adm_c, "SHOW STATS", "main", "transactions");
    fprintf(stderr, "process 3 ran %ld transactions\n", on_c);
    assert_true(on_c > 0);
    PQfinish(adm_c);
    assert_int_equal(h_pglane_wait_exit(&a, 15000), 1);
    assert_int_equal(log_count(&a, "drained: exiting"), WORKERS_LOGGING);
    h_pglane_assert_clean_exit(&a);
    h_pglane_assert_term_clean_exit(&b);
    h_pglane_assert_term_clean_exit(&c3);
    h_pass();
}

/*
 * unix_socket_dir shared by two so_reuseport processes: the one started last takes the socket file;
 * the first one's exit leaves that file in place (it removes only its own), so local clients still
 * connect.
 */
static void test_unix_socket_handover(void **state)
{
    struct h_pglane a = { 0 }, b = { 0 };
    struct ports p;
    char conf[8192], extra[H_PATH + 64], dir[H_DIR * 2], path[H_PATH], ci[H_PATH + 256];
    struct stat st;

    (void)state;
    H_SKIP_IF_DIRECT();
    pick_ports(&p);
    snprintf(dir, sizeof dir, "%s/peers-sock", h_scratch_dir());
    mkdir(dir, 0700);
    snprintf(extra, sizeof extra, "unix_socket_dir = %s\n", dir);
    snprintf(path, sizeof path, "%s/.s.PGSQL.%d", dir, p.shared);
    peer_conf(conf, sizeof conf, &p, 1, extra);
    assert_int_equal(h_pglane_start(&a, &g_pg, conf), 0);
    peer_conf(conf, sizeof conf, &p, 2, extra);
    assert_int_equal(h_pglane_start(&b, &g_pg, conf), 0);
    h_pglane_assert_term_clean_exit(&a);
    assert_int_equal(stat(path, &st), 0);
    snprintf(ci, sizeof ci, "host=%s port=%d user=" H_USER " password=" H_PASSWORD " dbname=" H_DB
             " connect_timeout=5", dir, p.shared);
    PGconn *c = PQconnectdb(ci);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(PEER_ID(PQbackendPID(c)), 2);
    PQfinish(c);
    h_pglane_assert_term_clean_exit(&b);
    h_pass();
}

static int fixtures(void)
{
    return h_pgbench_init(&g_pg, H_BENCH_DB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_cancel_through_either_process),
        H_TEST(test_reload_needs_restart),
        H_TEST(test_drain_timeout),
        H_TEST(test_rolling_restart),
        H_TEST(test_unix_socket_handover),
    };
    return H_RUN_GROUP("integration: peers and rolling restart", tests, .pg = &g_pg, .super = &g_super,
                       .skip_direct = 1, .setup = fixtures);
}
