/*
 * connhold: libpq load helper for bench/compare/run.
 *
 *   connhold hold  N            CONNINFO   open N connections (non-blocking, at most 200 connecting
 *                                          at once), print "ready ok=.. fail=..", then hold them idle
 *                                          until SIGTERM / SIGINT / SIGUSR1, then close them all.
 *   connhold storm TOTAL CONC   CONNINFO [MAXSECS]
 *                                          TOTAL connections, CONC at a time: each connects, runs
 *                                          SELECT 1 and disconnects. No new connection is started
 *                                          after MAXSECS seconds (0 = no limit). Prints one line:
 *                                          "storm ok=.. fail=.. secs=.. rate=.." (rate = ok/secs).
 *
 * Everything is single-threaded: one poll() loop over the sockets of the connections in flight.
 * RLIMIT_NOFILE is raised to its hard limit first. The first few distinct errors go to stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum phase { P_FREE, P_CONNECTING, P_SENDING, P_READING, P_IDLE };

struct slot {
    PGconn *conn;
    enum phase phase;
    int want_write; /* connecting: direction PQconnectPoll asked for */
};

static volatile sig_atomic_t stop_flag;
static int errors_shown;
static double deadline; /* storm: no new connection after this time (0 = none) */

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            perror("setrlimit");
    }
}

static void show_error(const char *what, PGconn *c)
{
    if (errors_shown >= 5)
        return;
    errors_shown++;
    const char *msg = c ? PQerrorMessage(c) : "out of memory";
    fprintf(stderr, "connhold: %s: %s%s", what, msg,
            (*msg && msg[strlen(msg) - 1] == '\n') ? "" : "\n");
}

/* Starts a connection in slot s. Returns 0 on success, -1 when it failed at once. */
static int start_conn(struct slot *s, const char *conninfo)
{
    s->conn = PQconnectStart(conninfo);
    if (!s->conn || PQstatus(s->conn) == CONNECTION_BAD) {
        show_error("connect", s->conn);
        if (s->conn)
            PQfinish(s->conn);
        s->conn = NULL;
        s->phase = P_FREE;
        return -1;
    }
    s->phase = P_CONNECTING;
    s->want_write = 1;
    return 0;
}

static void finish(struct slot *s)
{
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
    s->phase = P_FREE;
}

/*
 * Advances slot s after poll() reported revents on its socket (or right after a state change).
 * Returns 1 when the slot's work completed successfully, -1 on failure, 0 when still in progress.
 * 'query' says whether a SELECT 1 follows the connect (storm) or the connection stays idle (hold).
 */
static int advance(struct slot *s, int query)
{
    switch (s->phase) {
    case P_CONNECTING: {
        PostgresPollingStatusType st = PQconnectPoll(s->conn);
        if (st == PGRES_POLLING_FAILED) {
            show_error("connect", s->conn);
            return -1;
        }
        if (st == PGRES_POLLING_OK) {
            if (!query) {
                s->phase = P_IDLE;
                return 1;
            }
            PQsetnonblocking(s->conn, 1);
            if (!PQsendQuery(s->conn, "SELECT 1")) {
                show_error("send", s->conn);
                return -1;
            }
            s->phase = P_SENDING;
            return 0;
        }
        s->want_write = (st == PGRES_POLLING_WRITING);
        return 0;
    }
    case P_SENDING: {
        int f = PQflush(s->conn);
        if (f < 0) {
            show_error("flush", s->conn);
            return -1;
        }
        if (f == 0)
            s->phase = P_READING;
        return 0;
    }
    case P_READING: {
        if (!PQconsumeInput(s->conn)) {
            show_error("read", s->conn);
            return -1;
        }
        int ok = 1;
        while (!PQisBusy(s->conn)) {
            PGresult *r = PQgetResult(s->conn);
            if (!r)
                return ok ? 1 : -1;
            if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                if (errors_shown < 5) {
                    errors_shown++;
                    fprintf(stderr, "connhold: query: %s", PQresultErrorMessage(r));
                }
                ok = 0;
            }
            PQclear(r);
        }
        return 0;
    }
    default:
        return 0;
    }
}

static short events_of(const struct slot *s)
{
    switch (s->phase) {
    case P_CONNECTING: return s->want_write ? POLLOUT : POLLIN;
    case P_SENDING: return POLLOUT | POLLIN;
    case P_READING: return POLLIN;
    default: return 0;
    }
}

/*
 * Runs connections until 'total' have been started and all have completed. conc slots at most are
 * in flight. In hold mode (query == 0) completed connections stay open in 'held'.
 */
static void run(const char *conninfo, int total, int conc, int query, long *ok, long *fail,
                PGconn **held)
{
    struct slot *slots = calloc((size_t)conc, sizeof *slots);
    struct pollfd *pfd = calloc((size_t)conc, sizeof *pfd);
    int *map = calloc((size_t)conc, sizeof *map);
    if (!slots || !pfd || !map) {
        fprintf(stderr, "connhold: out of memory\n");
        exit(2);
    }
    int started = 0, inflight = 0;
    long nheld = 0;
    *ok = *fail = 0;
    while ((started < total || inflight > 0) && !stop_flag) {
        if (deadline > 0 && started < total && now_s() > deadline)
            total = started;
        for (int i = 0; i < conc && started < total; i++) {
            if (slots[i].phase != P_FREE)
                continue;
            started++;
            if (start_conn(&slots[i], conninfo) == 0)
                inflight++;
            else
                (*fail)++;
        }
        int n = 0;
        for (int i = 0; i < conc; i++) {
            if (slots[i].phase == P_FREE)
                continue;
            pfd[n].fd = PQsocket(slots[i].conn);
            pfd[n].events = events_of(&slots[i]);
            pfd[n].revents = 0;
            map[n++] = i;
        }
        if (n == 0)
            continue;
        int r = poll(pfd, (nfds_t)n, 1000);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            exit(2);
        }
        for (int k = 0; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            struct slot *s = &slots[map[k]];
            int res;
            /* A state change may leave more to do without another readiness event. */
            do {
                enum phase before = s->phase;
                res = advance(s, query);
                if (res != 0 || s->phase == before)
                    break;
            } while (s->phase == P_SENDING);
            if (res == 0)
                continue;
            inflight--;
            if (res > 0) {
                (*ok)++;
                if (!query) {
                    held[nheld++] = s->conn;
                    s->conn = NULL;
                    s->phase = P_FREE;
                    continue;
                }
            } else {
                (*fail)++;
            }
            finish(s);
        }
    }
    for (int i = 0; i < conc; i++)
        if (slots[i].phase != P_FREE)
            finish(&slots[i]);
    free(slots);
    free(pfd);
    free(map);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: connhold hold N CONNINFO | connhold storm TOTAL CONC CONNINFO [MAXSECS]\n");
        return 2;
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    long ok = 0, fail = 0;
    if (strcmp(argv[1], "hold") == 0) {
        int n = atoi(argv[2]);
        PGconn **held = calloc((size_t)n + 1, sizeof *held);
        if (!held)
            return 2;
        double t0 = now_s();
        run(argv[3], n, n < 200 ? n : 200, 0, &ok, &fail, held);
        printf("ready ok=%ld fail=%ld secs=%.2f\n", ok, fail, now_s() - t0);
        fflush(stdout);
        while (!stop_flag)
            pause();
        for (long i = 0; i < ok; i++)
            PQfinish(held[i]);
        free(held);
        return 0;
    }
    if (strcmp(argv[1], "storm") == 0 && argc >= 5) {
        int total = atoi(argv[2]), conc = atoi(argv[3]);
        if (conc < 1)
            conc = 1;
        double t0 = now_s();
        if (argc >= 6 && atof(argv[5]) > 0)
            deadline = t0 + atof(argv[5]);
        run(argv[4], total, conc, 1, &ok, &fail, NULL);
        double secs = now_s() - t0;
        printf("storm ok=%ld fail=%ld secs=%.3f rate=%.1f\n", ok, fail, secs,
               secs > 0 ? (double)ok / secs : 0.0);
        return 0;
    }
    fprintf(stderr, "connhold: unknown mode %s\n", argv[1]);
    return 2;
}
