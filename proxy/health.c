/*
 * Server health and roles (issue 15): see health.h. One libpq connection per checked [server.*]
 * (non-blocking, on the event loop through pgpoll.c, like the lock monitor's), one query per
 * health_check_interval: recovery state, replay / current LSN, receive LSN, the last replayed
 * transaction's time. A check that errors, does not answer within the interval, or cannot connect
 * counts as failed; health_check_failures in a row (or a refused connection) make the server down:
 * logged once, its idle pooled connections closed. The first answer makes it up again.
 *
 * With several workers one worker checks each server (the checker: the first with credentials for
 * it, holding a lease it renews at every interval; another takes over once it lapses) and publishes
 * what it learns in a process-wide table (`shared` below); the other workers take the values from
 * there when woken (PX_WORKERS_HEALTH) and at every interval, with their own change callbacks, and
 * close their own idle connections to a server that went down.
 */
#include "proxy/health.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/pgpoll.h"
#include "proxy/proxy.h"

enum hs_state { HS_IDLE, HS_CONNECTING, HS_READY, HS_BUSY };

struct hs {                        /* one [server.NAME], kept across reloads by name */
    struct health *hm;
    char *name;
    struct px_health h;
    PGconn *pg;
    struct px_pgpoll io;
    enum hs_state state;
    uint64_t state_ms;             /* when the connection attempt or the check began */
    int fails;                     /* failed checks in a row */
    int missed;                    /* intervals the connection attempt or check in progress has missed */
    int present;                   /* in the configuration in force */
    int checking;                  /* checked now (wanted at the last tick) */
    int warned_role;               /* a configured role the server contradicts was logged */
    int warned_login;              /* a refused login of the health connection was logged */
    int follows;                   /* several workers: another worker checks it (values from `shared`) */
    uint64_t seq;                  /* the publication taken last */
    char why[200];                 /* the latest failure */
};

struct health {
    struct proxy *px;
    uv_timer_t timer;
    uint64_t period_ms;            /* the timer's period; 0 = stopped */
    struct hs **s;
    int n;
    uint64_t checks;
};

/* The routing side's callback: registered at any time, before the checks start too (one proxy per
 * process). */
static _Thread_local px_health_cb g_cb;       /* per worker: each registers its own at start */
static _Thread_local void *g_cb_arg;
static _Thread_local px_health_want_fn g_want;

static const char check_sql[] =
    "SELECT pg_is_in_recovery(), "
    "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, "
    "pg_last_wal_receive_lsn(), "
    "(extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::bigint, "
    "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

static const struct px_health unknown_health = { .role = PX_ROLE_UNKNOWN, .up = 1, .lag_ms = -1, .lag_bytes = -1 };

static void hs_io(uv_poll_t *h, int status, int events);

/* ---- several workers: one checker per server, the others follow ---- */

#define LEASE_INTERVALS 3          /* a checker silent for this many intervals loses the server */

struct shared_server {
    char *name;
    struct px_lease lease;         /* the checking worker */
    uint64_t seq;                  /* bumped at every publication */
    struct px_health h;
    int checking;
    char why[200];
};

/* Every field of every entry is read and written under lock only; entries are never freed (one per
 * server name ever configured). */
static struct {
    pthread_mutex_t lock;
    struct shared_server *s;
    int n;
} shared = { PTHREAD_MUTEX_INITIALIZER, NULL, 0 };

/* The entry of name (made if missing); under lock. NULL without memory. */
static struct shared_server *shared_find(const char *name)
{
    struct shared_server *grown;

    for (int i = 0; i < shared.n; i++)
        if (strcmp(shared.s[i].name, name) == 0)
            return &shared.s[i];
    if (!(grown = realloc(shared.s, sizeof(*grown) * (size_t)(shared.n + 1))))
        return NULL;
    shared.s = grown;
    memset(&grown[shared.n], 0, sizeof(grown[0]));
    if (!(grown[shared.n].name = strdup(name)))
        return NULL;
    grown[shared.n].lease.owner = -1;
    grown[shared.n].h = (struct px_health){ .up = 1, .lag_ms = -1, .lag_bytes = -1 };
    return &shared.s[shared.n++];
}

static int several(const struct health *hm)
{
    return hm->px->workers != NULL;
}

static struct hs *find(struct health *hm, const char *name)
{
    for (int i = 0; hm && i < hm->n; i++)
        if (strcmp(hm->s[i]->name, name) == 0)
            return hm->s[i];
    return NULL;
}

static const struct conf_server *hs_conf(struct hs *s)
{
    const struct conf *c = s->hm->px->conf;
    int i = conf_server_find(c, s->name);

    return i >= 0 ? &c->servers[i] : NULL;
}

static int configured_role(const struct conf_server *cs)
{
    if (cs && cs->role == CONF_ROLE_PRIMARY)
        return PX_ROLE_PRIMARY;
    if (cs && cs->role == CONF_ROLE_REPLICA)
        return PX_ROLE_REPLICA;
    return PX_ROLE_UNKNOWN;
}

/* The [server.*] of a pool. (The routing side gives pools of one lane several servers: this is the
 * one place that maps a pool to its server.) */
static const char *pool_server(const struct px_pool *pool)
{
    return pool->ep->server->name;
}

/* Does a lane in force use this server? */
static int used(struct proxy *px, const char *name)
{
    for (int i = 0; i < px->nlanes; i++)
        for (int e = 0; e < px->lanes[i]->neps; e++)
            if (strcmp(px->lanes[i]->eps[e].server->name, name) == 0)
                return 1;
    return 0;
}

/* Checked when checks are on, a lane in force uses the server, and pglane has a use for its role:
 * its section says `role` (auto, primary or replica), or the routing side wants it (a lane lists it
 * among several servers: px_health_want). A plain single-server configuration opens no extra
 * connection. */
static int wanted(struct hs *s)
{
    struct proxy *px = s->hm->px;
    const struct conf_server *cs = hs_conf(s);

    return px->conf->health_check_interval_ms > 0 && cs && used(px, s->name) &&
           (cs->role_set || (g_want && g_want(px, s->name)));
}

/* The checker's news for the other workers: its values published, the others woken. */
static void publish(struct hs *s)
{
    struct shared_server *x;

    if (!several(s->hm) || s->follows)
        return;
    pthread_mutex_lock(&shared.lock);
    if ((x = shared_find(s->name)) != NULL) {
        x->h = s->h;
        x->checking = s->checking;
        memcpy(x->why, s->why, sizeof(x->why));
        x->seq++;
    }
    pthread_mutex_unlock(&shared.lock);
    px_workers_ask(s->hm->px, PX_WORKERS_HEALTH, NULL);
}

static void notify(struct hs *s, int changed)
{
    publish(s);
    if (g_cb)
        g_cb(s->hm->px, s->name, &s->h, changed, g_cb_arg);
}

static void hs_close(struct hs *s)
{
    px_pgpoll_close(&s->io);
    if (s->pg)
        PQfinish(s->pg);
    s->pg = NULL;
    s->state = HS_IDLE;
    s->state_ms = px_now_ms(s->hm->px);
}

/* The server is down: its idle pooled connections go (a transaction in progress keeps its own). */
static int close_idle(struct hs *s)
{
    struct proxy *px = s->hm->px;
    int n = 0;

    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (strcmp(pool_server(pool), s->name) != 0)
            continue;
        while (!px_list_empty(&pool->idle)) {
            px_server_close(px_container_of(pool->idle.next, struct px_server, link), "server down (health check)");
            n++;
        }
    }
    return n;
}

/* A check failed (why: what happened; refused: the server refused the connection); the connection
 * stays open when the check or connection attempt in progress may still answer (keep). */
static void count_failure(struct hs *s, const char *why, int refused, int keep)
{
    struct health *hm = s->hm;
    int limit = hm->px->conf->health_check_failures;

    snprintf(s->why, sizeof s->why, "%s", why && *why ? why : "unknown error");
    s->why[strcspn(s->why, "\n")] = '\0';
    s->h.failures++;
    s->fails++;
    if (!keep)
        hs_close(s);
    if (!s->h.up || (s->fails < limit && !refused)) {
        notify(s, 0);
        return;
    }
    s->h.up = 0;
    s->h.downs++;
    s->h.lag_ms = s->h.lag_bytes = -1;
    s->h.caught_up_us = 0;
    px_warn("server %s is down (%s after %d failed health check(s)): %d idle connection(s) closed", s->name, s->why,
            s->fails, close_idle(s));
    notify(s, PX_HEALTH_UP_CHANGED);
}

static void failed(struct hs *s, const char *why, int refused)
{
    count_failure(s, why, refused, 0);
}

static int refused_msg(const char *msg)
{
    return msg && (strstr(msg, "Connection refused") || strstr(msg, "No such file or directory"));
}

static void send_check(struct hs *s)
{
    s->h.checks++;
    s->hm->checks++;
    if (!PQsendQuery(s->pg, check_sql)) {
        failed(s, PQerrorMessage(s->pg), 0);
        return;
    }
    s->state = HS_BUSY;
    s->state_ms = px_now_ms(s->hm->px);
    s->missed = 0;
    if (px_pgpoll_flush(&s->io, s->pg) < 0)
        failed(s, PQerrorMessage(s->pg), 0);
}

static void hs_connect(struct hs *s)
{
    const struct conf_server *cs = hs_conf(s);
    /* any server's pool will do: a replica has the primary's roles */
    const struct px_pool *pool = px_pgpoll_credentials(s->hm->px, s->name, 1);

    if (!cs || !pool)
        return;                   /* no pool yet: the first client gives the credentials */
    s->state = HS_CONNECTING;
    s->state_ms = px_now_ms(s->hm->px);
    s->missed = 0;
    if (px_pgpoll_connect_pool(&s->io, &s->pg, cs, pool, "pglane-health") < 0) {
        const char *msg = s->pg ? PQerrorMessage(s->pg) : "out of memory";

        failed(s, msg, refused_msg(msg));
    }
}

/* A replica with nothing received left to replay. */
static int caught_up(uint64_t receive_lsn, uint64_t replay_lsn)
{
    return replay_lsn && replay_lsn >= receive_lsn;
}

/* Learned values of one answer; then the replicas' lag against the primaries' LSN. */
static uint64_t primary_lsn(struct health *hm)
{
    uint64_t best = 0;

    for (int i = 0; i < hm->n; i++) {
        const struct px_health *h = &hm->s[i]->h;

        if (hm->s[i]->checking && h->up && h->reported_role == PX_ROLE_PRIMARY && h->lsn > best)
            best = h->lsn;
    }
    return best;
}

static uint64_t lsn_at(PGresult *r, int col)
{
    uint64_t v = 0;

    if (PQgetisnull(r, 0, col) || px_lsn_parse(PQgetvalue(r, 0, col), &v) < 0)
        return 0;
    return v;
}

static int64_t int_at(PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? 0 : strtoll(PQgetvalue(r, 0, col), NULL, 10);
}

static void answered(struct hs *s, PGresult *r)
{
    struct health *hm = s->hm;
    const struct conf_server *cs = hs_conf(s);
    int conf_role = configured_role(cs), changed = 0, role, was_up = s->h.up, old_role = s->h.role;
    int64_t last_replay_us, now_us;
    uint64_t ahead;

    s->h.reported_role = strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? PX_ROLE_REPLICA : PX_ROLE_PRIMARY;
    s->h.lsn = lsn_at(r, 1);
    s->h.receive_lsn = lsn_at(r, 2);
    last_replay_us = int_at(r, 3);
    now_us = int_at(r, 4);
    s->h.checked_ms = px_now_ms(hm->px);
    s->fails = 0;
    s->why[0] = '\0';
    role = conf_role != PX_ROLE_UNKNOWN ? conf_role : s->h.reported_role;
    if (conf_role != PX_ROLE_UNKNOWN && conf_role != s->h.reported_role) {
        if (!s->warned_role)
            px_warn("server %s is configured as %s but reports %s", s->name, px_role_name(conf_role),
                    s->h.reported_role == PX_ROLE_REPLICA ? "being in recovery (a replica)" : "not being in recovery");
        s->warned_role = 1;
    } else {
        s->warned_role = 0;
    }
    if (s->h.reported_role == PX_ROLE_PRIMARY) {
        s->h.lag_ms = s->h.lag_bytes = 0;
        s->h.caught_up_us = 0;
    } else {
        ahead = primary_lsn(hm);
        s->h.lag_bytes = px_lag_bytes(ahead ? ahead : s->h.receive_lsn, s->h.lsn);
        s->h.lag_ms = px_lag_ms(s->h.receive_lsn, s->h.lsn, now_us, last_replay_us, s->h.caught_up_us);
        if (caught_up(s->h.receive_lsn, s->h.lsn))
            s->h.caught_up_us = now_us;
    }
    s->h.role = role;
    s->h.up = 1;
    if (!was_up) {
        changed |= PX_HEALTH_UP_CHANGED;
        px_info("server %s is up again (%s)", s->name, px_role_name(role));
    }
    if (old_role != role) {
        changed |= PX_HEALTH_ROLE_CHANGED;
        if (old_role == PX_ROLE_UNKNOWN)
            px_info("server %s: role %s", s->name, px_role_name(role));
        else
            px_warn("server %s: role changed from %s to %s", s->name, px_role_name(old_role), px_role_name(role));
    }
    notify(s, changed);
}

static void read_step(struct hs *s)
{
    PGresult *r;
    int ok = 0;
    char err[200] = "";

    if (!PQconsumeInput(s->pg)) {
        failed(s, PQerrorMessage(s->pg), 0);
        return;
    }
    if (PQisBusy(s->pg))
        return;
    while ((r = PQgetResult(s->pg)) != NULL) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 5 && !ok) {
            answered(s, r);
            ok = 1;
        } else if (!ok && !err[0]) {
            snprintf(err, sizeof err, "%s", PQresultErrorMessage(r));
        }
        PQclear(r);
        if (!s->pg)
            return;
        if (PQisBusy(s->pg))
            return;               /* the rest of the results is still to come */
    }
    s->state = HS_READY;
    if (!ok)
        failed(s, err[0] ? err : "the check returned no row", 0);
}

/* The server answered but refused pglane's login (no plaintext password for it, pg_hba): that says
 * nothing about the server's health. Not counted; logged once; tried again every interval. */
static int login_refused(const char *msg)
{
    return msg && (strstr(msg, "password") || strstr(msg, "authentication") || strstr(msg, "pg_hba.conf") ||
                   strstr(msg, "does not exist"));
}

static void connect_step(struct hs *s)
{
    const char *why;

    switch (px_pgpoll_connect_step(&s->io, s->pg, &why)) {
    case 0:
        return;
    case 1:
        s->state = HS_READY;
        s->warned_login = 0;
        send_check(s);           /* the first check at once */
        return;
    }
    why = why ? why : PQerrorMessage(s->pg);
    if (login_refused(why)) {
        snprintf(s->why, sizeof s->why, "%s", why);
        s->why[strcspn(s->why, "\n")] = '\0';
        if (!s->warned_login)
            px_warn("server %s: the health check cannot log in (%s); its role and health stay unknown", s->name,
                    s->why);
        s->warned_login = 1;
        hs_close(s);
        return;
    }
    failed(s, why, refused_msg(why));
}

static void hs_io(uv_poll_t *h, int status, int events)
{
    struct hs *s = h->data;

    (void)events;
    if (status < 0 && s->state == HS_CONNECTING) {
        /* libuv says UV_EBADF for a socket error (POLLERR alone): libpq reads it (ECONNREFUSED...) */
        connect_step(s);
        return;
    }
    if (status < 0) {
        failed(s, status == UV_EBADF ? "connection lost" : uv_strerror(status), 0);
        return;
    }
    switch (s->state) {
    case HS_CONNECTING:
        connect_step(s);
        return;
    case HS_BUSY:
        if (PQflush(s->pg) < 0) {
            failed(s, PQerrorMessage(s->pg), 0);
            return;
        }
        read_step(s);
        return;
    case HS_READY:
        /* Idle connection readable: a notice, or the server closed it (next check reconnects). */
        if (!PQconsumeInput(s->pg) || PQstatus(s->pg) == CONNECTION_BAD)
            hs_close(s);
        return;
    case HS_IDLE:
        return;
    }
}

/*
 * A connection attempt or check still without an answer: each interval it misses counts as a failed
 * check (so a hung server is down after health_check_failures intervals), but it may still answer
 * until GIVE_UP_MS (or that many intervals) have passed, when it is closed and opened again: a slow
 * login on a loaded server does not make pglane reconnect in a loop.
 */
#define GIVE_UP_MS 5000

static void overdue(struct hs *s, uint64_t now, uint64_t interval, const char *what)
{
    uint64_t waited = now - s->state_ms, give_up = interval * (uint64_t)s->hm->px->conf->health_check_failures;
    char why[96];

    if (waited < interval * (uint64_t)(s->missed + 1))
        return;
    s->missed++;
    snprintf(why, sizeof why, "%s within health_check_interval", what);
    count_failure(s, why, 0, waited < (give_up > GIVE_UP_MS ? give_up : GIVE_UP_MS));
}

/* No longer checked (checks off, no lane uses it, no role key): nothing known says it is down. */
static void unwatch(struct hs *s)
{
    int was_up = s->h.up;

    s->checking = 0;
    if (s->state != HS_IDLE)
        hs_close(s);
    s->fails = 0;
    s->h.up = 1;
    s->h.lag_ms = s->h.lag_bytes = -1;
    s->h.caught_up_us = 0;
    if (!was_up) {
        px_info("server %s is no longer health-checked: counted as up", s->name);
        notify(s, PX_HEALTH_UP_CHANGED);
    }
}

/* Several workers: 1 if this worker checks s (it holds the lease, or takes it: none held, or lapsed,
 * and this worker has credentials for a connection), 0 if it follows the checker. */
static int lease(struct hs *s, uint64_t now, uint64_t interval)
{
    struct proxy *px = s->hm->px;
    int can = s->state != HS_IDLE || px_pgpoll_credentials(px, s->name, 1) != NULL, mine = 1;
    struct shared_server *x;

    pthread_mutex_lock(&shared.lock);
    if ((x = shared_find(s->name)) != NULL) {   /* without memory each worker checks on its own */
        /* without pools here (can = 0) another worker with some takes over */
        mine = px_lease_hold(&x->lease, px->worker_id, can, now, (uint64_t)LEASE_INTERVALS * interval);
    }
    pthread_mutex_unlock(&shared.lock);
    return mine;
}

/* A follower takes the checker's latest values, if new; its own idle connections to a server that
 * went down are closed, and its change callback runs as the checker's did. */
static void follow(struct hs *s)
{
    struct shared_server *x, got;
    uint64_t conflicts = s->h.conflicts;
    int news = 0, changed = 0;

    pthread_mutex_lock(&shared.lock);
    if ((x = shared_find(s->name)) != NULL && x->seq != s->seq) {
        got = *x;
        news = 1;
    }
    pthread_mutex_unlock(&shared.lock);
    if (!news)
        return;
    s->seq = got.seq;
    if (got.h.up != s->h.up)
        changed |= PX_HEALTH_UP_CHANGED;
    if (got.h.role != s->h.role)
        changed |= PX_HEALTH_ROLE_CHANGED;
    s->h = got.h;
    s->h.conflicts = conflicts;    /* counted by this worker's routing */
    s->checking = got.checking;
    memcpy(s->why, got.why, sizeof(s->why));
    if ((changed & PX_HEALTH_UP_CHANGED) && !s->h.up) {
        int n = close_idle(s);     /* the checker logged the news; this worker's closes, if any */

        if (n > 0)
            px_info("server %s: down per worker %d's health check: %d idle connection(s) of this worker closed",
                    s->name, got.lease.owner, n);
    }
    notify(s, changed);
}

void px_health_news(struct proxy *px)
{
    struct health *hm = px->health;

    /* not once checks are off here: a checker that has not reloaded yet may still publish */
    for (int i = 0; hm && i < hm->n; i++)
        if (hm->s[i]->follows && hm->s[i]->present && wanted(hm->s[i]))
            follow(hm->s[i]);
}

static void tick_one(struct hs *s, uint64_t now, uint64_t interval)
{
    if (!s->present || !wanted(s)) {
        if (s->checking || s->state != HS_IDLE || !s->h.up)
            unwatch(s);
        return;
    }
    if (several(s->hm)) {
        if (!lease(s, now, interval)) {
            if (s->state != HS_IDLE)
                hs_close(s);       /* another worker took over */
            s->follows = 1;
            follow(s);
            return;
        }
        s->follows = 0;
    }
    s->checking = 1;
    switch (s->state) {
    case HS_IDLE:
        hs_connect(s);
        return;
    case HS_CONNECTING:
        overdue(s, now, interval, "not connected");
        return;
    case HS_READY:
        send_check(s);
        return;
    case HS_BUSY:
        overdue(s, now, interval, "no answer");
        return;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct health *hm = t->data;
    uint64_t now = px_now_ms(hm->px);

    for (int i = 0; i < hm->n; i++)
        tick_one(hm->s[i], now, hm->period_ms);
}

static void arm(struct health *hm)
{
    uint64_t p = (uint64_t)hm->px->conf->health_check_interval_ms;

    if (p == hm->period_ms)
        return;
    hm->period_ms = p;
    if (p)
        uv_timer_start(&hm->timer, on_tick, 0, p);
    else
        uv_timer_stop(&hm->timer);
}

static struct hs *add(struct health *hm, const struct conf_server *cs)
{
    struct hs **grown = realloc(hm->s, (size_t)(hm->n + 1) * sizeof(*grown));
    struct hs *s;

    if (!grown)
        return NULL;
    hm->s = grown;
    if (!(s = calloc(1, sizeof(*s))) || !(s->name = strdup(cs->name))) {
        free(s);
        return NULL;
    }
    s->hm = hm;
    s->h = unknown_health;
    s->h.role = configured_role(cs);
    px_pgpoll_init(&s->io, hm->px->loop, hs_io, s);
    hm->s[hm->n++] = s;
    return s;
}

static void hs_free(struct hs *s)
{
    hs_close(s);
    free(s->name);
    free(s);
}

/* Matches the servers of the configuration in force by name: new ones added, dropped ones freed,
 * kept ones keep what was learned (a configured role takes effect at once). */
static void sync_servers(struct health *hm)
{
    const struct conf *c = hm->px->conf;
    int j = 0;

    for (int i = 0; i < hm->n; i++)
        hm->s[i]->present = 0;
    for (int i = 0; i < c->nservers; i++) {
        struct hs *s = find(hm, c->servers[i].name);

        if (!s && !(s = add(hm, &c->servers[i]))) {
            px_error("health: out of memory; server %s is not checked", c->servers[i].name);
            continue;
        }
        s->present = 1;
        if (configured_role(&c->servers[i]) != PX_ROLE_UNKNOWN)
            s->h.role = configured_role(&c->servers[i]);
        else if (s->h.reported_role != PX_ROLE_UNKNOWN)
            s->h.role = s->h.reported_role;
    }
    for (int i = 0; i < hm->n; i++) {
        if (hm->s[i]->present)
            hm->s[j++] = hm->s[i];
        else
            hs_free(hm->s[i]);
    }
    hm->n = j;
}

int px_health_start(struct proxy *px)
{
    struct health *hm = calloc(1, sizeof(*hm));

    if (!hm) {
        px_error("health: out of memory");
        return -1;
    }
    hm->px = px;
    uv_timer_init(px->loop, &hm->timer);
    hm->timer.data = hm;
    px->health = hm;
    sync_servers(hm);
    arm(hm);
    return 0;
}

void px_health_reload(struct proxy *px)
{
    struct health *hm = px->health;

    if (!hm)
        return;
    sync_servers(hm);
    arm(hm);
    for (int i = 0; i < hm->n; i++)   /* stop checking servers no longer wanted, at once */
        if (!wanted(hm->s[i]) && (hm->s[i]->checking || hm->s[i]->state != HS_IDLE || !hm->s[i]->h.up))
            unwatch(hm->s[i]);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void px_health_stop(struct proxy *px)
{
    struct health *hm = px->health;

    if (!hm)
        return;
    px->health = NULL;
    if (several(hm)) {             /* this worker's leases end now: another takes over at its next tick */
        pthread_mutex_lock(&shared.lock);
        for (int i = 0; i < shared.n; i++)
            if (shared.s[i].lease.owner == px->worker_id)
                shared.s[i].lease.owner = -1;
        pthread_mutex_unlock(&shared.lock);
    }
    for (int i = 0; i < hm->n; i++)
        hs_free(hm->s[i]);
    free(hm->s);
    uv_close((uv_handle_t *)&hm->timer, on_timer_closed);
}

const struct px_health *px_health_get(struct proxy *px, const char *server_name)
{
    struct hs *s = find(px->health, server_name);

    return s ? &s->h : &unknown_health;
}

void px_health_conflict(struct proxy *px, const char *server_name)
{
    struct hs *s = find(px->health, server_name);

    if (s)
        s->h.conflicts++;
}

void px_health_on_change(struct proxy *px, px_health_cb cb, void *arg)
{
    (void)px;
    g_cb = cb;
    g_cb_arg = arg;
}

void px_health_want(struct proxy *px, px_health_want_fn fn)
{
    (void)px;
    g_want = fn;
}

void px_health_foreach(struct proxy *px, px_health_each_cb cb, void *arg)
{
    struct health *hm = px->health;

    for (int i = 0; hm && i < hm->n; i++)
        if (cb(hm->s[i]->name, &hm->s[i]->h, arg))
            return;
}

int px_health_checked(struct proxy *px, const char *server_name)
{
    struct hs *s = find(px->health, server_name);

    return s && s->present && wanted(s);
}

const char *px_health_why(struct proxy *px, const char *server_name)
{
    struct hs *s = find(px->health, server_name);

    return s ? s->why : "";
}

uint64_t px_health_checks_total(struct proxy *px)
{
    return px->health ? px->health->checks : 0;
}

/* ---- pure helpers ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* 1 to 8 hex digits: the value, or -1. */
static int64_t hex32(const char **p)
{
    uint64_t v = 0;
    int n = 0, d;

    while ((d = hexval(**p)) >= 0) {
        if (++n > 8)
            return -1;
        v = v << 4 | (uint64_t)d;
        (*p)++;
    }
    return n ? (int64_t)v : -1;
}

int px_lsn_parse(const char *text, uint64_t *out)
{
    const char *p = text;
    int64_t hi, lo;

    if (!p || (hi = hex32(&p)) < 0 || *p++ != '/' || (lo = hex32(&p)) < 0 || *p)
        return -1;
    *out = (uint64_t)hi << 32 | (uint64_t)lo;
    return 0;
}

int64_t px_lag_bytes(uint64_t ahead, uint64_t replay)
{
    if (!ahead || !replay)
        return -1;
    return ahead > replay ? (int64_t)(ahead - replay) : 0;
}

/* Whole ms from then_us to now_us (both microseconds on the replica's clock; 0 if then_us is later),
 * -1 when then_us is 0 (not known). */
static int64_t ms_since(int64_t now_us, int64_t then_us)
{
    return !then_us ? -1 : now_us > then_us ? (now_us - then_us) / 1000 : 0;
}

int64_t px_lag_ms(uint64_t receive_lsn, uint64_t replay_lsn, int64_t now_us, int64_t last_replay_us,
                  int64_t caught_up_us)
{
    int64_t since_replay = ms_since(now_us, last_replay_us), since_caught_up = ms_since(now_us, caught_up_us);

    if (caught_up(receive_lsn, replay_lsn))
        return 0;
    if (since_replay < 0 || (since_caught_up >= 0 && since_caught_up < since_replay))
        return since_caught_up;
    return since_replay;
}

const char *px_role_name(int role)
{
    switch (role) {
    case PX_ROLE_PRIMARY: return "primary";
    case PX_ROLE_REPLICA: return "replica";
    }
    return "unknown";
}
