/*
 * The proxy's own monitoring connection per server: every 200 ms it samples pg_stat_activity,
 * pg_locks and pg_blocking_pids() over libpq in non-blocking mode, driven by a uv_poll_t on the
 * connection's socket, keeps the latest wait graph for SHOW BLOCKING and hands it to the guard.
 * A server is sampled only while some lane on it has a guard, or once SHOW BLOCKING was asked.
 *
 * With several workers one worker samples each server (the sampler: a worker whose monitoring
 * connection is up, holding a lease it renews at every tick; another takes over once it lapses), so
 * that the process sends one sample per period, not one per worker. It publishes each sample's rows,
 * not yet attributed, in a process-wide table (`shared` below) and wakes the others
 * (PX_WORKERS_GRAPH); every worker attributes the rows to its own connections and lets its guard act
 * on its own blockers, cancelling over its own monitoring connection. A protected request past
 * guard_wait in a worker that does not sample asks the sampler for a sample.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/monitor.h"
#include "proxy/pgpoll.h"

#define SAMPLE_MS 200
#define RETRY_MS 5000
#define CONNECT_LIMIT_MS 5000
#define MAX_EDGES 256
#define MAX_SIGNALS 16
#define LEASE_TICKS 3              /* a sampler silent for this many periods loses its server */

enum mon_state { M_IDLE, M_CONNECTING, M_READY, M_BUSY };

struct mon_server {
    struct monitor *m;
    char *name;                    /* [server.NAME], looked up in the configuration in force */
    PGconn *pg;
    struct px_pgpoll io;           /* its socket on the event loop */
    enum mon_state state;
    uint64_t state_ms, retry_ms;
    int sampled;                   /* a sample completed since the connection was made */
    int again;                     /* a triggered sample is due once the running one completes */
    int triggered;                 /* the sample in flight was triggered (for the debug log) */
    uint64_t sent_us;              /* when the sample in flight was sent */
    /* backends the guard cancels over this connection (pg_cancel_backend), waiting and in flight */
    uint32_t queued[MAX_SIGNALS], signalling[MAX_SIGNALS];
    int nqueued, nsignalling;       /* nsignalling > 0: the query in flight is the cancel, not a sample */
    int checking;                   /* the guard looks at a sample: its cancels go out together after */
    int warned;
    uint64_t seq;                   /* several workers: the shared sample last taken (`shared`) */
    struct px_block_edge *edges, *next;   /* latest snapshot, and the one being filled */
    int nedges, nnext;
};

struct monitor {
    struct proxy *px;
    uv_timer_t timer;
    uv_timer_t fast;               /* the earliest moment a protected request runs past guard_wait */
    uint64_t fast_due_us;          /* 0 = not armed */
    uint64_t periodic, triggered;  /* samples sent */
    int open_timers;               /* closing: timers not yet closed */
    int want;                      /* SHOW BLOCKING was asked */
    struct mon_server *s;
    int n;
};

/* The wait graph query; $-free so that it runs as a simple PQsendQuery. */
static const char sample_sql[] =
    "SELECT w.pid, b.pid, wl.mode, "
    "coalesce(coalesce(wl.relation, (SELECT t.relation FROM pg_locks t WHERE t.pid = w.pid AND "
    "t.locktype = 'tuple' LIMIT 1), "
    /* a row lock wait without a tuple lock (INSERT ... ON CONFLICT): the table both have open */
    "(SELECT t.relation FROM pg_locks t JOIN pg_locks bl ON bl.pid = b.pid AND bl.locktype = 'relation' "
    "AND bl.relation = t.relation JOIN pg_class c ON c.oid = t.relation AND c.relkind IN ('r', 'p', 'm') "
    "WHERE t.pid = w.pid AND t.locktype = 'relation' AND t.granted AND wl.locktype = 'transactionid' "
    "ORDER BY t.relation LIMIT 1))::regclass::text, wl.locktype), "
    "(extract(epoch FROM clock_timestamp() - coalesce(wl.waitstart, w.state_change)) * 1000)::bigint, "
    "coalesce(w.state, ''), left(coalesce(w.query, ''), 150), coalesce(w.usename::text, ''), "
    "coalesce(w.application_name, ''), coalesce(host(w.client_addr), 'local'), "
    "coalesce(b.state, ''), left(coalesce(b.query, ''), 150), coalesce(b.usename::text, ''), "
    "coalesce(b.application_name, ''), coalesce(host(b.client_addr), 'local'), "
    "(b.wait_event_type IS NOT DISTINCT FROM 'Lock')::int "
    "FROM pg_stat_activity w JOIN pg_locks wl ON wl.pid = w.pid AND NOT wl.granted "
    "CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid) "
    "JOIN pg_stat_activity b ON b.pid = bp.pid "
    "WHERE w.pid <> pg_backend_pid() ORDER BY 5 DESC LIMIT 256";

/* Several workers: one entry per server name ever sampled; every field is read and written under
 * lock only, entries are never freed before the process ends (px_monitor_shared_free). */
struct shared_graph {
    char *name;
    struct px_lease lease;         /* the sampling worker */
    uint64_t seq;                  /* bumped at every publication */
    struct px_block_edge *edges;   /* the latest sample's rows, not attributed (server NULL) */
    int nedges;
};

static struct {
    pthread_mutex_t lock;
    struct shared_graph *g;
    int n;
} shared = { PTHREAD_MUTEX_INITIALIZER, NULL, 0 };

static void mon_io(uv_poll_t *h, int status, int events);
static void mon_sample(struct mon_server *ms, int triggered);
static void mon_next(struct mon_server *ms);
static void signals_done(struct mon_server *ms);
static void take_signals(struct mon_server *ms, PGresult *r);
static int mon_cancel(void *arg, struct px_server *sv);

static const struct conf_server *mon_conf(struct mon_server *ms)
{
    const struct conf *c = ms->m->px->conf;
    int i = conf_server_find(c, ms->name);

    return i >= 0 ? &c->servers[i] : NULL;
}

/* Sampling matters when a lane on this server has a guard, or an operator asked for the graph. */
static int mon_wanted(struct mon_server *ms)
{
    struct proxy *px = ms->m->px;

    if (ms->m->want)
        return 1;
    for (int i = 0; i < px->nlanes; i++)
        if (px->lanes[i]->conf->guard != CONF_GUARD_OFF && strcmp(px->lanes[i]->server->name, ms->name) == 0)
            return 1;
    return 0;
}

static void set_state(struct mon_server *ms, enum mon_state st)
{
    ms->state = st;
    ms->state_ms = px_now_ms(ms->m->px);
}

static void signals_failed(struct mon_server *ms);

static void mon_reset(struct mon_server *ms, const char *why)
{
    if (why && !ms->warned) {
        px_warn("monitor %s: %s", ms->name, why);
        ms->warned = 1;
    }
    px_pgpoll_close(&ms->io);
    if (ms->pg)
        PQfinish(ms->pg);
    ms->pg = NULL;
    signals_failed(ms);
    ms->sampled = 0;
    ms->nedges = 0;
    ms->retry_ms = px_now_ms(ms->m->px) + RETRY_MS;
    set_state(ms, M_IDLE);
}

static void mon_connect(struct mon_server *ms)
{
    const struct conf_server *cs = mon_conf(ms);
    const struct px_pool *pool = px_pgpoll_credentials(ms->m->px, ms->name, 0);

    if (!cs || !pool)
        return;                   /* no pool yet: wait for the first client of this server */
    if (px_pgpoll_connect_pool(&ms->io, &ms->pg, cs, pool, "pglane-monitor") < 0) {
        mon_reset(ms, ms->pg ? PQerrorMessage(ms->pg) : "out of memory");
        return;
    }
    set_state(ms, M_CONNECTING);
}

static void connect_step(struct mon_server *ms)
{
    const char *why;

    switch (px_pgpoll_connect_step(&ms->io, ms->pg, &why)) {
    case 0:
        return;
    case 1:
        px_info("monitor %s: connected (backend pid %d)", ms->name, PQbackendPID(ms->pg));
        ms->warned = 0;
        set_state(ms, M_READY);
        return;
    }
    mon_reset(ms, why ? why : PQerrorMessage(ms->pg));
}

static void take_result(struct mon_server *ms, PGresult *r)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 16) {
        if (!ms->warned)
            px_warn("monitor %s: sampling failed: %s", ms->name, PQresultErrorMessage(r));
        ms->warned = 1;
        return;
    }
    ms->nnext = 0;
    for (int i = 0; i < PQntuples(r) && ms->nnext < MAX_EDGES; i++)
        px_monitor_row_to_edge(ms->m->px, ms->name, NULL, r, i, &ms->next[ms->nnext++]);
}

/* ---- several workers: one sampler per server, its samples shared ---- */

static int several(const struct mon_server *ms)
{
    return ms->m->px->workers != NULL;
}

/* The entry of name (made if missing); under lock. NULL without memory. */
static struct shared_graph *shared_find(const char *name)
{
    struct shared_graph *grown;

    for (int i = 0; i < shared.n; i++)
        if (strcmp(shared.g[i].name, name) == 0)
            return &shared.g[i];
    if (!(grown = realloc(shared.g, sizeof(*grown) * (size_t)(shared.n + 1))))
        return NULL;
    shared.g = grown;
    memset(&grown[shared.n], 0, sizeof(grown[0]));
    if (!(grown[shared.n].name = strdup(name)))
        return NULL;
    grown[shared.n].lease.owner = -1;
    return &shared.g[shared.n++];
}

/* 1 if this worker samples ms's server (one worker; or it holds the lease, or takes it: none held, or
 * lapsed, and its monitoring connection is up), 0 if another worker does; *owner (if not NULL): the
 * worker that samples it now, -1 if none. */
static int sampler(struct mon_server *ms, uint64_t now, int *owner)
{
    struct proxy *px = ms->m->px;
    int can = ms->state == M_READY || ms->state == M_BUSY, mine = can, who = can ? px->worker_id : -1;
    struct shared_graph *x;

    if (several(ms)) {
        pthread_mutex_lock(&shared.lock);
        if ((x = shared_find(ms->name)) != NULL) {  /* without memory each worker samples on its own */
            mine = px_lease_hold(&x->lease, px->worker_id, can, now, (uint64_t)LEASE_TICKS * SAMPLE_MS);
            who = x->lease.owner;
        }
        pthread_mutex_unlock(&shared.lock);
    } else {
        mine = 1;
    }
    if (owner)
        *owner = who;
    return mine;
}

/* The sampler's rows (ms->next, not attributed) for the other workers. */
static void publish(struct mon_server *ms)
{
    struct shared_graph *x;
    int wake = 0;

    pthread_mutex_lock(&shared.lock);
    if ((x = shared_find(ms->name)) != NULL && (x->edges || (x->edges = calloc(MAX_EDGES, sizeof(*x->edges))))) {
        /* The others are woken for a sample with waits in it (or the first without, which clears
         * theirs) and for a triggered one; an unchanged empty graph they take at their own tick. */
        wake = ms->triggered || ms->nnext > 0 || x->nedges > 0;
        if (ms->nnext)
            memcpy(x->edges, ms->next, sizeof(*x->edges) * (size_t)ms->nnext);
        for (int i = 0; i < ms->nnext; i++)
            x->edges[i].server = NULL;
        x->nedges = ms->nnext;
        ms->seq = ++x->seq;
    }
    pthread_mutex_unlock(&shared.lock);
    if (wake)
        px_workers_ask(ms->m->px, PX_WORKERS_GRAPH, ms->name);
}

void px_monitor_shared_free(void)
{
    pthread_mutex_lock(&shared.lock);
    for (int i = 0; i < shared.n; i++) {
        free(shared.g[i].name);
        free(shared.g[i].edges);
    }
    free(shared.g);
    shared.g = NULL;
    shared.n = 0;
    pthread_mutex_unlock(&shared.lock);
}

/* A sample's rows are in ms->next: swapped in, attributed to this worker's connections, and looked at
 * by the guard. */
static void take_graph(struct mon_server *ms, const char *how)
{
    struct px_block_edge *t = ms->edges;
    const struct conf_server *cs = mon_conf(ms);

    ms->edges = ms->next;
    ms->nedges = ms->nnext;
    ms->next = t;
    ms->nnext = 0;
    ms->sampled = 1;
    if (how)
        px_debug("monitor %s: %s, %d wait edges", ms->name, how, ms->nedges);
    if (!cs)
        return;
    for (int i = 0; i < ms->nedges; i++) {
        px_monitor_attribute(ms->m->px, cs, &ms->edges[i].waiter);
        px_monitor_attribute(ms->m->px, cs, &ms->edges[i].blocker);
    }
    ms->checking = 1;
    px_guard_check(ms->m->px, cs, ms->edges, ms->nedges, mon_cancel, ms);
    ms->checking = 0;
}

/* The sample's result arrived: published for the other workers, then taken here. */
static void sample_done(struct mon_server *ms)
{
    char how[96];

    if (several(ms))
        publish(ms);
    set_state(ms, M_READY);
    snprintf(how, sizeof(how), "%s sample answered in %llu us", ms->triggered ? "triggered" : "periodic",
             (unsigned long long)(px_now_us() - ms->sent_us));
    take_graph(ms, ms->triggered || ms->nnext ? how : NULL);
    mon_next(ms);
}

/* Another worker samples ms's server: its latest rows, if new, are taken here. */
static void follow(struct mon_server *ms)
{
    struct shared_graph *x;
    int news = 0;

    pthread_mutex_lock(&shared.lock);
    if ((x = shared_find(ms->name)) != NULL && x->seq != ms->seq && x->lease.owner != ms->m->px->worker_id) {
        if (x->nedges)
            memcpy(ms->next, x->edges, sizeof(*x->edges) * (size_t)x->nedges);
        ms->nnext = x->nedges;
        ms->seq = x->seq;
        news = 1;
    }
    pthread_mutex_unlock(&shared.lock);
    if (!news)
        return;
    for (int j = 0; j < ms->nnext; j++)
        ms->next[j].server = ms->name;
    take_graph(ms, ms->nnext ? "another worker's sample taken" : NULL);
    mon_next(ms);
}

void px_monitor_news(struct proxy *px)
{
    struct monitor *m = px->monitor;

    for (int i = 0; m && i < m->n; i++)
        follow(&m->s[i]);
}

/* ---- the guard's cancels as pg_cancel_backend() on this connection ---- */

/* Sends the queued cancels as one query; the backends are held (px_cancel_hold) until it answers. */
static void signals_send(struct mon_server *ms)
{
    char sql[64 + MAX_SIGNALS * 12];
    size_t n = (size_t)snprintf(sql, sizeof(sql), "SELECT p, pg_cancel_backend(p) FROM unnest('{");

    for (int i = 0; i < ms->nqueued; i++) {
        ms->signalling[i] = ms->queued[i];
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%u", i ? "," : "", ms->queued[i]);
    }
    snprintf(sql + n, sizeof(sql) - n, "}'::int[]) AS p");
    ms->nsignalling = ms->nqueued;
    ms->nqueued = 0;
    ms->sent_us = px_now_us();
    if (!PQsendQuery(ms->pg, sql)) {
        mon_reset(ms, PQerrorMessage(ms->pg));
        return;
    }
    set_state(ms, M_BUSY);
    if (px_pgpoll_flush(&ms->io, ms->pg) < 0)
        mon_reset(ms, PQerrorMessage(ms->pg));
}

/* The next query once one is done: queued cancels first, then a triggered sample that was due. */
static void mon_next(struct mon_server *ms)
{
    if (ms->state != M_READY)
        return;
    if (ms->nqueued) {
        signals_send(ms);
        return;
    }
    if (ms->again) {
        ms->again = 0;
        ms->m->triggered++;
        mon_sample(ms, 1);
    }
}

static void signal_done(struct mon_server *ms, uint32_t pid, int sent)
{
    const struct conf_server *cs = mon_conf(ms);

    for (int i = 0; i < ms->nsignalling; i++)
        if (ms->signalling[i] == pid) {
            ms->signalling[i] = ms->signalling[--ms->nsignalling];
            if (cs)
                px_cancel_signalled(ms->m->px, cs, pid, sent);
            return;
        }
}

static void take_signals(struct mon_server *ms, PGresult *r)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 2) {
        px_warn("monitor %s: pg_cancel_backend() failed, sending CancelRequests instead: %s", ms->name,
                PQresultErrorMessage(r));
        return;                   /* signals_done falls back for every backend */
    }
    for (int i = 0; i < PQntuples(r); i++)
        signal_done(ms, (uint32_t)strtoul(PQgetvalue(r, i, 0), NULL, 10), strcmp(PQgetvalue(r, i, 1), "t") == 0);
}

/* Cancels not confirmed (in flight; with queued also those not sent): each backend gets a
 * CancelRequest instead (px_cancel_signalled). */
static void signals_fail(struct mon_server *ms, int queued)
{
    const struct conf_server *cs = mon_conf(ms);

    while (ms->nsignalling || (queued && ms->nqueued)) {
        uint32_t pid = ms->nsignalling ? ms->signalling[--ms->nsignalling] : ms->queued[--ms->nqueued];

        if (cs)
            px_cancel_signalled(ms->m->px, cs, pid, 0);
    }
}

static void signals_failed(struct mon_server *ms)
{
    signals_fail(ms, 1);
}

static void signals_done(struct mon_server *ms)
{
    px_debug("monitor %s: pg_cancel_backend() answered in %llu us", ms->name,
             (unsigned long long)(px_now_us() - ms->sent_us));
    set_state(ms, M_READY);
    signals_fail(ms, 0);          /* any backend the answer did not name */
    mon_next(ms);
}

/* px_guard_cancel_cb: the guard's cancel of sv's request as pg_cancel_backend() on this connection,
 * sent with the other cancels of the same sample once the guard has looked at it. -1 when the
 * monitor cannot (not connected, another user's backend, nothing running): a CancelRequest goes. */
static int mon_cancel(void *arg, struct px_server *sv)
{
    struct mon_server *ms = arg;
    const char *user;

    /* pg_cancel_backend() needs the role of the backend (or pg_signal_backend): the same user. */
    if ((ms->state != M_READY && ms->state != M_BUSY) || ms->nqueued == MAX_SIGNALS || !(user = PQuser(ms->pg)) ||
        strcmp(user, sv->pool->user) != 0 || px_cancel_hold(ms->m->px, sv) < 0)
        return -1;
    ms->queued[ms->nqueued++] = sv->backend_pid;
    if (!ms->checking)
        mon_next(ms);
    return 0;
}

static void read_step(struct mon_server *ms)
{
    PGresult *r;

    if (!PQconsumeInput(ms->pg)) {
        mon_reset(ms, PQerrorMessage(ms->pg));
        return;
    }
    while (ms->state == M_BUSY && !PQisBusy(ms->pg)) {
        r = PQgetResult(ms->pg);
        if (!r) {
            if (ms->nsignalling)
                signals_done(ms);
            else
                sample_done(ms);
            return;
        }
        if (ms->nsignalling)
            take_signals(ms, r);
        else
            take_result(ms, r);
        PQclear(r);
    }
}

static void mon_io(uv_poll_t *h, int status, int events)
{
    struct mon_server *ms = h->data;

    (void)events;
    if (status < 0) {
        mon_reset(ms, uv_strerror(status));
        return;
    }
    switch (ms->state) {
    case M_CONNECTING:
        connect_step(ms);
        return;
    case M_BUSY:
        if (PQflush(ms->pg) < 0) {
            mon_reset(ms, PQerrorMessage(ms->pg));
            return;
        }
        read_step(ms);
        return;
    case M_READY:
        /* Idle connection readable: a notice, or the server closed it. */
        if (!PQconsumeInput(ms->pg) || PQstatus(ms->pg) == CONNECTION_BAD)
            mon_reset(ms, "connection lost");
        return;
    case M_IDLE:
        return;
    }
}

static void mon_sample(struct mon_server *ms, int triggered)
{
    ms->triggered = triggered;
    ms->sent_us = px_now_us();
    if (!PQsendQuery(ms->pg, sample_sql)) {
        mon_reset(ms, PQerrorMessage(ms->pg));
        return;
    }
    set_state(ms, M_BUSY);
    if (px_pgpoll_flush(&ms->io, ms->pg) < 0)
        mon_reset(ms, PQerrorMessage(ms->pg));
}

static void mon_tick_one(struct mon_server *ms, uint64_t now)
{
    if (!mon_wanted(ms)) {
        if (ms->state != M_IDLE)
            mon_reset(ms, NULL);
        ms->retry_ms = 0;
        return;
    }
    switch (ms->state) {
    case M_IDLE:
        if (now >= ms->retry_ms)
            mon_connect(ms);
        return;
    case M_CONNECTING:
        if (now - ms->state_ms > CONNECT_LIMIT_MS)
            mon_reset(ms, "connect timeout");
        return;
    case M_READY:
        if (!sampler(ms, now, NULL)) {
            follow(ms);           /* another worker samples: its rows come with PX_WORKERS_GRAPH, or now */
            return;
        }
        ms->m->periodic++;
        mon_sample(ms, 0);
        return;
    case M_BUSY:
        (void)sampler(ms, now, NULL);   /* the previous sample (or a cancel) is still running: skip this period */
        return;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct monitor *m = t->data;
    uint64_t now = px_now_ms(m->px);

    for (int i = 0; i < m->n; i++)
        mon_tick_one(&m->s[i], now);
    px_guard_expire(m->px);
}

/* ---- samples triggered by a protected request running past guard_wait ---- */

static void fast_arm(struct monitor *m, uint64_t due_us);

/* The lane's guard settings if cl runs a request of a protected lane with a guard, else NULL. */
static const struct conf_lane *guarded(struct proxy *px, const struct px_client *cl)
{
    const struct conf_lane *l;

    if (cl->admin || cl->lane < 0 || cl->lane >= px->nlanes)
        return NULL;
    l = px->lanes[cl->lane]->conf;
    return l->protect && l->guard != CONF_GUARD_OFF ? l : NULL;
}

/* A sample of server now (cl: the protected client whose request passed guard_wait; NULL when another
 * worker asked, its blocker may be this worker's). With several workers only the sampler samples:
 * another worker asks it, and an ask that finds this worker no longer sampling is not passed on. */
static void sample_now(struct monitor *m, const struct px_client *cl, const char *server, uint64_t now)
{
    enum { NONE, SENT, QUEUED, ASKED } act;
    static const char *const said[] = { "no monitor connection", "sample sent",
                                        "sample queued behind the one in flight", "sample asked of the sampling worker" };

    for (int i = 0; i < m->n; i++) {
        struct mon_server *ms = &m->s[i];
        int owner = -1;

        if (strcmp(ms->name, server) != 0)
            continue;
        if (sampler(ms, px_now_ms(m->px), &owner))
            act = ms->state == M_READY ? SENT : ms->state == M_BUSY ? QUEUED : NONE;
        else
            act = cl && owner >= 0 ? ASKED : NONE;
        px_debug("monitor %s: %s C-%llu's request ran %llu us, past guard_wait: %s", ms->name,
                 cl ? "" : "another worker's", cl ? (unsigned long long)cl->conn.id : 0ULL,
                 cl ? (unsigned long long)(now - cl->query_start_us) : 0ULL, said[act]);
        if (act == ASKED) {
            px_workers_ask_one(m->px, owner, PX_WORKERS_SAMPLE, server);
        } else if (act == SENT) {
            m->triggered++;
            mon_sample(ms, 1);
        } else if (act == QUEUED) {
            ms->again = 1;        /* that sample may predate the wait: look again when it is done */
        }
    }
}

void px_monitor_sample_now(struct proxy *px, const char *server)
{
    if (px->monitor)
        sample_now(px->monitor, NULL, server, px_now_us());
}

static void on_fast(uv_timer_t *t)
{
    struct monitor *m = t->data;
    struct proxy *px = m->px;
    uint64_t now = px_now_us(), next = 0;

    m->fast_due_us = 0;
    for (struct px_list *it = px->clients.next; it != &px->clients; it = it->next) {
        struct px_client *cl = px_container_of(it, struct px_client, link);
        const struct conf_lane *l;
        uint64_t due;

        if (!cl->query_start_us || cl->guard_seen_us == cl->query_start_us || !(l = guarded(px, cl)))
            continue;
        due = cl->query_start_us + (uint64_t)l->guard_wait_ms * 1000;
        if (due <= now) {
            cl->guard_seen_us = cl->query_start_us;   /* once per request */
            sample_now(m, cl, px->lanes[cl->lane]->server->name, now);
        } else if (!next || due < next) {
            next = due;
        }
    }
    if (next)
        fast_arm(m, next);
}

static void fast_arm(struct monitor *m, uint64_t due_us)
{
    uint64_t now;

    if (m->fast_due_us && m->fast_due_us <= due_us)
        return;                   /* an earlier check will see this request too */
    m->fast_due_us = due_us;
    now = px_now_us();
    uv_timer_start(&m->fast, on_fast, due_us > now ? (due_us - now + 999) / 1000 : 0, 0);
}

void px_guard_watch(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;
    struct monitor *m = px->monitor;
    const struct conf_lane *l;

    if (m && (l = guarded(px, cl)))
        fast_arm(m, cl->query_start_us + (uint64_t)l->guard_wait_ms * 1000);
}

void px_monitor_samples(struct proxy *px, uint64_t *periodic, uint64_t *triggered)
{
    struct monitor *m = px->monitor;

    *periodic = m ? m->periodic : 0;
    *triggered = m ? m->triggered : 0;
}

int px_monitor_start(struct proxy *px)
{
    const struct conf *c = px->conf;
    struct monitor *m = calloc(1, sizeof(*m));

    if (!m || !(m->s = calloc((size_t)(c->nservers ? c->nservers : 1), sizeof(*m->s)))) {
        free(m);
        px_error("monitor: out of memory");
        return -1;
    }
    m->px = px;
    for (int i = 0; i < c->nservers; i++) {
        struct mon_server *ms = &m->s[m->n];

        ms->m = m;
        px_pgpoll_init(&ms->io, px->loop, mon_io, ms);
        ms->name = strdup(c->servers[i].name);
        ms->edges = calloc(MAX_EDGES, sizeof(*ms->edges));
        ms->next = calloc(MAX_EDGES, sizeof(*ms->next));
        m->n++;
        if (!ms->name || !ms->edges || !ms->next) {
            px->monitor = m;
            px_monitor_stop(px);
            px_error("monitor: out of memory");
            return -1;
        }
    }
    uv_timer_init(px->loop, &m->timer);
    m->timer.data = m;
    uv_timer_start(&m->timer, on_tick, SAMPLE_MS, SAMPLE_MS);
    uv_timer_init(px->loop, &m->fast);
    m->fast.data = m;
    px->monitor = m;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct monitor *m = h->data;

    if (--m->open_timers > 0)
        return;
    free(m->s);
    free(m);
}

void px_monitor_stop(struct proxy *px)
{
    struct monitor *m = px->monitor;

    if (!m)
        return;
    px->monitor = NULL;
    for (int i = 0; i < m->n; i++) {
        px_pgpoll_close(&m->s[i].io);
        if (m->s[i].pg)
            PQfinish(m->s[i].pg);
        free(m->s[i].name);
        free(m->s[i].edges);
        free(m->s[i].next);
    }
    px_guard_free(px);
    if (uv_is_active((uv_handle_t *)&m->timer) || m->timer.loop) {
        m->open_timers = 2;
        uv_close((uv_handle_t *)&m->timer, on_timer_closed);
        uv_close((uv_handle_t *)&m->fast, on_timer_closed);
        return;
    }
    m->open_timers = 1;
    on_timer_closed((uv_handle_t *)&m->timer);
}

void px_monitor_want(struct proxy *px)
{
    struct monitor *m = px->monitor;

    if (m && !m->want) {
        m->want = 1;
        px_info("monitor: SHOW BLOCKING asked; sampling the lock graph from now on");
        on_tick(&m->timer);
    }
}

void px_monitor_foreach(struct proxy *px, px_block_cb cb, void *arg)
{
    struct monitor *m = px->monitor;

    for (int i = 0; m && i < m->n; i++)
        for (int j = 0; j < m->s[i].nedges; j++)
            if (cb(&m->s[i].edges[j], arg))
                return;
}

void px_monitor_health(struct proxy *px, int *up, int *total)
{
    struct monitor *m = px->monitor;

    *up = *total = 0;
    for (int i = 0; m && i < m->n; i++) {
        if (!mon_wanted(&m->s[i]))
            continue;
        (*total)++;
        *up += m->s[i].sampled;
    }
}
