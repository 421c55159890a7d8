/*
 * The contention guard: when a backend of a protected lane has waited on a lock longer than that
 * lane's guard_wait and the head of its blocking chain is a backend of a preemptible lane that pglane
 * owns, log it (guard = log) or cancel that backend's statement (guard = cancel; an idle-in-
 * transaction backend is terminated by closing pglane's connection to it). Backends pglane does not
 * own are never touched. guard and guard_wait are read on the protected (waiting) lane.
 *
 * With several workers each worker acts on its own blockers (proxy/admin/monitor.c shares the lock
 * graph), but what counts towards a quarantine is process-wide (`shared` below): the actions of every
 * worker against a statement shape are counted together, and a shape quarantined (or released) in one
 * worker is copied into every worker's offender table (PX_WORKERS_QUARANTINE, px_guard_news), so that
 * every worker refuses it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/admin/monitor.h"
#include "routing/route.h"

#define MAX_DEPTH 16
#define RECENT 64
#define COUNTS 128
#define RECANCEL_MS 1000          /* a blocker still blocking this long after a cancel is cancelled again */
#define FORGET_MS 2000
#define OFFENDERS 64
#define QRING 100                 /* guard_quarantine is at most this */

struct recent {                   /* a (waiter, head) pair the guard acted on */
    uint32_t waiter, head;
    enum px_guard_action last;    /* a cancel may be followed by a terminate at once */
    uint64_t last_seen_ms, last_action_ms;
};

struct guard {
    struct recent recent[RECENT];
    int nrecent;
    struct px_guard_count counts[COUNTS];
    int ncounts;
    struct px_guard_offender off[OFFENDERS];
    uint64_t times[OFFENDERS][QRING];   /* ring of the latest actions against off[i] */
    int ntimes[OFFENDERS], ttimes[OFFENDERS];
    int noff;
};

/* Several workers: one entry per statement shape acted on; every field under lock. An entry that is
 * not quarantined is reused (the least recently acted on) when the table is full. */
struct shared_off {
    uint64_t fp;
    uint64_t times[QRING];        /* ring of the latest actions of any worker */
    int ntimes, ttimes;
    uint64_t last_ms;
    struct px_guard_offender o;   /* while quarantined: what the refusal says (lanes by name below) */
    char lane[64], protected_lane[64];
};

static struct {
    pthread_mutex_t lock;
    struct shared_off off[OFFENDERS];
    int n;
} shared = { .lock = PTHREAD_MUTEX_INITIALIZER };

const char *px_guard_action_name(enum px_guard_action a)
{
    switch (a) {
    case PX_GUARD_LOGGED: return "logged";
    case PX_GUARD_CANCELLED: return "cancelled";
    case PX_GUARD_TERMINATED: return "terminated";
    case PX_GUARD_ACTIONS: break;
    }
    return "?";
}

static struct guard *guard_of(struct proxy *px)
{
    if (!px->guard)
        px->guard = calloc(1, sizeof(struct guard));
    return px->guard;
}

void px_guard_free(struct proxy *px)
{
    free(px->guard);
    px->guard = NULL;
}

void px_guard_foreach(struct proxy *px, px_guard_cb cb, void *arg)
{
    struct guard *g = px->guard;

    for (int i = 0; g && i < g->ncounts; i++)
        if (cb(&g->counts[i], arg))
            return;
}

void px_guard_sum(struct proxy *px, const struct px_lane *lane, const struct px_lane *prot, uint64_t *n)
{
    struct guard *g = px->guard;

    for (int i = 0; g && i < g->ncounts; i++)
        if (g->counts[i].lane == lane && g->counts[i].protected_lane == prot)
            n[g->counts[i].action] += g->counts[i].count;
}

/* The head of pid's blocking chain: follow the first blocker until one that does not wait. */
static const struct px_block_edge *chain_head(const struct px_block_edge *edges, int n, const struct px_block_edge *e)
{
    for (int depth = 0; depth < MAX_DEPTH && e->blocker_waits; depth++) {
        const struct px_block_edge *next = NULL;

        for (int i = 0; i < n && !next; i++)
            if (edges[i].waiter.pid == e->blocker.pid)
                next = &edges[i];
        if (!next)
            break;
        e = next;
    }
    return e;
}

static void count(struct proxy *px, struct guard *g, const struct px_block_edge *head,
                  const struct px_lane *prot, enum px_guard_action a)
{
    struct px_lane *victim = (struct px_lane *)head->blocker.lane;
    struct px_guard_count *c = NULL;

    victim->stats.guard[a]++;
    ((struct px_lane *)prot)->stats.guarded[a]++;
    for (int i = 0; i < g->ncounts && !c; i++)
        if (g->counts[i].lane == victim && g->counts[i].protected_lane == prot && g->counts[i].action == a &&
            g->counts[i].fingerprint == head->blocker.fingerprint)
            c = &g->counts[i];
    if (!c && g->ncounts < COUNTS) {
        c = &g->counts[g->ncounts++];
        c->lane = victim;
        c->protected_lane = prot;
        c->action = a;
        c->fingerprint = head->blocker.fingerprint;
    }
    if (c) {
        c->count++;
        c->last_ms = px_now_ms(px);
    }
}

/* Finds or adds the pair; returns 1 if the guard should act on it now. */
static int due(struct guard *g, uint32_t waiter, uint32_t head, enum px_guard_action a, uint64_t now)
{
    struct recent *r = NULL;

    for (int i = 0; i < g->nrecent && !r; i++)
        if (g->recent[i].waiter == waiter && g->recent[i].head == head)
            r = &g->recent[i];
    if (r) {
        r->last_seen_ms = now;
        if (a == PX_GUARD_LOGGED || (a == r->last && now - r->last_action_ms < RECANCEL_MS))
            return 0;
        r->last = a;
        r->last_action_ms = now;
        return 1;
    }
    if (g->nrecent == RECENT)
        return 0;
    r = &g->recent[g->nrecent++];
    r->waiter = waiter;
    r->head = head;
    r->last = a;
    r->last_seen_ms = r->last_action_ms = now;
    return 1;
}

/* Another waiter's pair had this blocker cancelled less than RECANCEL_MS ago: that cancel is on its way. */
static int cancelled_lately(const struct guard *g, uint32_t waiter, uint32_t head, enum px_guard_action a,
                            uint64_t now)
{
    if (a != PX_GUARD_CANCELLED)
        return 0;
    for (int i = 0; i < g->nrecent; i++)
        if (g->recent[i].head == head && g->recent[i].waiter != waiter && g->recent[i].last == PX_GUARD_CANCELLED &&
            now - g->recent[i].last_action_ms < RECANCEL_MS)
            return 1;
    return 0;
}

static void forget_old(struct guard *g, uint64_t now)
{
    for (int i = 0; i < g->nrecent;)
        if (now - g->recent[i].last_seen_ms > FORGET_MS)
            g->recent[i] = g->recent[--g->nrecent];
        else
            i++;
}

static void log_event(const struct px_block_edge *w, const struct px_block_edge *head, const char *what)
{
    px_warn("guard: lane %s C-%llu (pid %u, fingerprint %016llx) waited %lld ms for %s on %s; head of the "
            "chain is lane %s C-%llu (pid %u, fingerprint %016llx, %s): %s",
            w->waiter.lane->conf->name, (unsigned long long)w->waiter.client_id, w->waiter.pid,
            (unsigned long long)w->waiter.fingerprint, (long long)w->wait_ms, w->mode, w->relation,
            head->blocker.lane->conf->name, (unsigned long long)head->blocker.client_id, head->blocker.pid,
            (unsigned long long)head->blocker.fingerprint, head->blocker.state, what);
}

struct canceller {                /* px_guard_check's caller's way to cancel, if any */
    px_guard_cancel_cb cb;
    void *arg;
};

/* Cancels the head's statement, or terminates its backend when it is idle in transaction. */
static enum px_guard_action preempt(struct proxy *px, const struct conf_server *server,
                                    const struct px_block_edge *head, const struct px_lane *prot,
                                    const struct canceller *how)
{
    struct px_server *sv = px_pool_find_backend(px, server, head->blocker.pid);
    struct px_client *cl = sv ? sv->client : NULL;
    char msg[256];

    if (!sv)
        return PX_GUARD_LOGGED;   /* gone since the sample */
    if (sv->tx_status == 'E')
        return PX_GUARD_LOGGED;   /* its transaction block failed since (a cancel): its locks went with it */
    if (strncmp(head->blocker.state, "idle in transaction", 19) == 0 && (!cl || cl->pending_z == 0)) {
        snprintf(msg, sizeof(msg), "pglane terminated this idle transaction to protect lane %s from a lock wait",
                 prot->conf->name);
        px_server_close(sv, "terminated by the contention guard");
        if (cl)
            px_client_fail(cl, "57P01", msg);
        return PX_GUARD_TERMINATED;
    }
    sv->guard_for = prot;
    if ((!how->cb || how->cb(how->arg, sv) < 0) && px_cancel_backend(px, sv) < 0) {
        sv->guard_for = NULL;
        return PX_GUARD_LOGGED;
    }
    return PX_GUARD_CANCELLED;
}

/* ---- advice and quarantine, per blocker fingerprint ---- */

static int starts_with_word(const char *q, const char *w)
{
    return route_starts_with_word(q, w);
}

static void classify(struct px_guard_offender *o)
{
    static const char *const ddl[] = { "ALTER", "REFRESH", "DROP", "TRUNCATE", "LOCK", "CREATE INDEX", "REINDEX",
                                       "CLUSTER", "VACUUM FULL", NULL };
    int table_lock = strcmp(o->mode, "AccessShareLock") == 0 || strcmp(o->mode, "RowShareLock") == 0 ||
                     strcmp(o->mode, "RowExclusiveLock") == 0 || strcmp(o->mode, "ShareUpdateExclusiveLock") == 0;

    for (int i = 0; ddl[i] && !table_lock; i++)
        table_lock = starts_with_word(o->blocker_query, ddl[i]);
    if (strncmp(o->blocker_state, "idle in transaction", 19) == 0) {
        o->pattern = "idle in transaction: the transaction keeps its locks while its client does other work";
        o->fix = "commit before the slow work; idle_in_transaction_session_timeout or lock_timeout on the "
                 "report's lane";
    } else if (table_lock) {
        o->pattern = "DDL or REFRESH needing an exclusive lock on a hot table";
        o->fix = "CONCURRENTLY (REFRESH MATERIALIZED VIEW CONCURRENTLY, CREATE INDEX CONCURRENTLY); lock_timeout "
                 "on the report's lane";
    } else {
        o->pattern = "row locks held across a long transaction";
        o->fix = "short transactions: do not update rows the OLTP path writes inside a long report transaction; "
                 "record the report run elsewhere, or use striped or separate counter rows";
    }
}

static struct px_guard_offender *offender(struct guard *g, uint64_t fp, int *idx)
{
    for (int i = 0; i < g->noff; i++)
        if (g->off[i].fingerprint == fp) {
            *idx = i;
            return &g->off[i];
        }
    return NULL;
}

/* The entry of fp, made if missing (reusing the least recently acted on one that is not
 * quarantined); NULL when every entry is quarantined. */
static struct px_guard_offender *offender_make(struct guard *g, uint64_t fp, int *idx)
{
    struct px_guard_offender *o = offender(g, fp, idx);
    int i;

    if (o)
        return o;
    if (g->noff == OFFENDERS) {
        int old = -1;

        for (int j = 0; j < g->noff; j++)
            if (!g->off[j].until_ms && (old < 0 || g->off[j].last_ms < g->off[old].last_ms))
                old = j;
        if (old < 0)
            return NULL;
        g->off[old] = g->off[--g->noff];
        g->ntimes[old] = g->ntimes[g->noff];
        g->ttimes[old] = g->ttimes[g->noff];
        memcpy(g->times[old], g->times[g->noff], sizeof(g->times[old]));
    }
    i = g->noff++;
    o = &g->off[i];
    memset(o, 0, sizeof(*o));
    g->ntimes[i] = g->ttimes[i] = 0;
    o->fingerprint = fp;
    *idx = i;
    return o;
}

/* ---- several workers: the process-wide count and quarantines ---- */

/* The entry of fp, made if missing (reusing the least recently acted on one not quarantined); under
 * lock. NULL when every entry is quarantined. */
static struct shared_off *shared_find(uint64_t fp, int make)
{
    int old = -1;

    for (int i = 0; i < shared.n; i++)
        if (shared.off[i].fp == fp)
            return &shared.off[i];
    if (!make)
        return NULL;
    if (shared.n < OFFENDERS) {
        old = shared.n++;
    } else {
        for (int j = 0; j < shared.n; j++)
            if (!shared.off[j].o.until_ms && (old < 0 || shared.off[j].last_ms < shared.off[old].last_ms))
                old = j;
        if (old < 0)
            return NULL;
    }
    memset(&shared.off[old], 0, sizeof(shared.off[old]));
    shared.off[old].fp = fp;
    return &shared.off[old];
}

/* One more action against o's shape, by this worker: the actions of every worker within the window
 * when that makes guard_quarantine (the shape is to be quarantined), else 0. */
static int shared_count(const struct px_guard_offender *o, const struct conf_lane *pl, uint64_t now)
{
    struct shared_off *x;
    int n = 0;

    pthread_mutex_lock(&shared.lock);
    if ((x = shared_find(o->fingerprint, 1)) != NULL) {
        if (x->o.until_ms && x->o.until_ms != UINT64_MAX && now >= x->o.until_ms) {
            x->o.until_ms = 0;    /* its time is over: a fresh window */
            x->ntimes = x->ttimes = 0;
        }
        x->last_ms = now;
        x->times[x->ttimes] = now;
        x->ttimes = (x->ttimes + 1) % QRING;
        if (x->ntimes < QRING)
            x->ntimes++;
        if (pl->guard_quarantine > 0 && !x->o.until_ms) {
            for (int j = 0; j < x->ntimes; j++)
                n += now - x->times[j] <= (uint64_t)pl->guard_quarantine_window_ms;
            if (n < pl->guard_quarantine)
                n = 0;
        }
        if (n)
            x->o.until_ms = UINT64_MAX;   /* claimed: shared_quarantined fills it in */
    }
    pthread_mutex_unlock(&shared.lock);
    return n;
}

/* o was just quarantined by this worker: published for the other workers. */
static void shared_quarantined(const struct px_guard_offender *o)
{
    struct shared_off *x;

    pthread_mutex_lock(&shared.lock);
    if ((x = shared_find(o->fingerprint, 1)) != NULL) {
        x->o = *o;
        x->o.lane = x->o.protected_lane = NULL;
        snprintf(x->lane, sizeof(x->lane), "%s", o->lane->conf->name);
        snprintf(x->protected_lane, sizeof(x->protected_lane), "%s", o->protected_lane->conf->name);
    }
    pthread_mutex_unlock(&shared.lock);
}

/* Quarantines of fp (all: every one) end in every worker: 1 if some did. */
static int shared_release(uint64_t fp, int all)
{
    int n = 0;

    pthread_mutex_lock(&shared.lock);
    for (int i = 0; i < shared.n; i++)
        if (shared.off[i].o.until_ms && (all || shared.off[i].fp == fp)) {
            shared.off[i].o.until_ms = 0;
            shared.off[i].ntimes = shared.off[i].ttimes = 0;
            n++;
        }
    pthread_mutex_unlock(&shared.lock);
    return n;
}

static const struct px_lane *lane_named(struct proxy *px, const char *name)
{
    for (int i = 0; i < px->nlanes; i++)
        if (strcmp(px->lanes[i]->conf->name, name) == 0)
            return px->lanes[i];
    return NULL;
}

/* Records what the blocker did (advice) and, for a cancel or terminate, counts it towards a quarantine. */
static void offend(struct proxy *px, struct guard *g, const struct px_block_edge *w, const struct px_block_edge *head,
                   enum px_guard_action a)
{
    const struct conf_lane *pl = w->waiter.lane->conf;
    uint64_t fp = head->blocker.fingerprint, now = px_now_ms(px);
    struct px_guard_offender *o;
    int i, n = 0;

    if (!fp)
        return;                   /* a transaction pglane did not lex: no shape to remember */
    if (!(o = offender_make(g, fp, &i)))
        return;
    o->lane = head->blocker.lane;
    o->protected_lane = w->waiter.lane;
    o->waiter_fingerprint = w->waiter.fingerprint;
    snprintf(o->relation, sizeof(o->relation), "%s", w->relation);
    snprintf(o->mode, sizeof(o->mode), "%s", w->mode);
    snprintf(o->blocker_state, sizeof(o->blocker_state), "%s", head->blocker.state);
    snprintf(o->blocker_query, sizeof(o->blocker_query), "%s", head->blocker.query);
    snprintf(o->waiter_query, sizeof(o->waiter_query), "%s", w->waiter.query);
    if (!o->shape[0])
        px_route_text(px, fp, o->shape, sizeof(o->shape));
    o->last_ms = now;
    classify(o);
    if (a == PX_GUARD_LOGGED || (o->last_client == head->blocker.client_id && o->last_tx_us == head->blocker.tx_us))
        return;                   /* a cancel then a terminate of one transaction is one attempt */
    o->last_client = head->blocker.client_id;
    o->last_tx_us = head->blocker.tx_us;
    o->actions++;
    if (px->workers) {
        if (!(n = shared_count(o, pl, now)))
            return;
    } else {
        g->times[i][g->ttimes[i]] = now;
        g->ttimes[i] = (g->ttimes[i] + 1) % QRING;
        if (g->ntimes[i] < QRING)
            g->ntimes[i]++;
        if (pl->guard_quarantine <= 0 || o->until_ms)
            return;
        for (int j = 0; j < g->ntimes[i]; j++)
            n += now - g->times[i][j] <= (uint64_t)pl->guard_quarantine_window_ms;
        if (n < pl->guard_quarantine)
            return;
    }
    o->until_ms = now + (uint64_t)pl->guard_quarantine_time_ms;
    o->since_ms = now;
    o->quarantine_count = n;
    if (px->workers) {
        shared_quarantined(o);
        px_workers_ask(px, PX_WORKERS_QUARANTINE, NULL);
    }
    px_warn("guard: quarantined statement shape %016llx of lane %s for %lld ms: %d actions in %lld ms to protect "
            "lane %s (it kept taking %s on %s; %s). Fix: %s",
            (unsigned long long)fp, o->lane->conf->name, (long long)pl->guard_quarantine_time_ms, n,
            (long long)pl->guard_quarantine_window_ms, pl->name, o->mode, o->relation, o->pattern, o->fix);
}

static void leave(struct px_guard_offender *o, const char *why)
{
    if (why)
        px_warn("guard: statement shape %016llx leaves quarantine (%s)", (unsigned long long)o->fingerprint, why);
    o->until_ms = 0;
    o->quarantine_count = 0;
}

void px_guard_expire(struct proxy *px)
{
    struct guard *g = px->guard;
    uint64_t now = px_now_ms(px);

    for (int i = 0; g && i < g->noff; i++)
        if (g->off[i].until_ms && now >= g->off[i].until_ms) {
            leave(&g->off[i], "guard_quarantine_time is over");
            g->ntimes[i] = g->ttimes[i] = 0;   /* a fresh window: a new quarantine needs new actions */
        }
}

int px_guard_release(struct proxy *px, uint64_t fp, int all)
{
    struct guard *g = px->guard;
    int n = 0, m;

    for (int i = 0; g && i < g->noff; i++)
        if (g->off[i].until_ms && (all || g->off[i].fingerprint == fp)) {
            leave(&g->off[i], "RELEASE in the admin console");
            g->ntimes[i] = g->ttimes[i] = 0;
            n++;
        }
    if (px->workers && (m = shared_release(fp, all)) > 0) {
        px_workers_ask(px, PX_WORKERS_QUARANTINE, NULL);
        if (m > n)
            n = m;
    }
    return n;
}

void px_guard_news(struct proxy *px)
{
    struct guard *g = guard_of(px);
    struct shared_off *x;
    uint64_t now = px_now_ms(px);
    int i;

    if (!g)
        return;
    pthread_mutex_lock(&shared.lock);
    /* Released in another worker (or its time over there, which is the same here). */
    for (i = 0; i < g->noff; i++)
        if (g->off[i].until_ms && (!(x = shared_find(g->off[i].fingerprint, 0)) || !x->o.until_ms)) {
            leave(&g->off[i], NULL);
            g->ntimes[i] = g->ttimes[i] = 0;
        }
    /* Quarantined in another worker. */
    for (int k = 0; k < shared.n; k++) {
        const struct px_lane *lane, *prot;
        struct px_guard_offender *o;
        uint64_t actions, last_client, last_tx;

        x = &shared.off[k];
        if (!x->o.until_ms || x->o.until_ms == UINT64_MAX || x->o.until_ms <= now ||
            !(lane = lane_named(px, x->lane)) ||
            !(prot = lane_named(px, x->protected_lane)) || !(o = offender_make(g, x->fp, &i)) ||
            o->until_ms == x->o.until_ms)
            continue;
        actions = o->actions;
        last_client = o->last_client;
        last_tx = o->last_tx_us;
        *o = x->o;
        o->lane = lane;
        o->protected_lane = prot;
        o->actions = actions;     /* this worker's own */
        o->last_client = last_client;
        o->last_tx_us = last_tx;
        px_debug("guard: statement shape %016llx quarantined by another worker", (unsigned long long)x->fp);
    }
    pthread_mutex_unlock(&shared.lock);
}

int px_guard_quarantined_count(struct proxy *px)
{
    struct guard *g = px->guard;
    int n = 0;

    px_guard_expire(px);
    for (int i = 0; g && i < g->noff; i++)
        n += g->off[i].until_ms != 0;
    return n;
}

void px_guard_offenders(struct proxy *px, px_offender_cb cb, void *arg)
{
    struct guard *g = px->guard;

    px_guard_expire(px);
    for (int i = 0; g && i < g->noff; i++)
        if (cb(&g->off[i], arg))
            return;
}

const struct px_guard_offender *px_guard_advice(struct proxy *px, uint64_t fp)
{
    struct guard *g = px->guard;
    int i;

    return g && fp ? offender(g, fp, &i) : NULL;
}

int px_guard_refuse(struct proxy *px, uint64_t fp, const struct px_lane *lane, struct proto_buf *out)
{
    struct guard *g = px->guard;
    struct px_guard_offender *o;
    char msg[400], detail[1200];
    uint64_t now;
    int i;

    if (!g || !fp || !lane->conf->preemptible || !(o = offender(g, fp, &i)) || !o->until_ms)
        return 0;
    now = px_now_ms(px);
    if (now >= o->until_ms) {
        px_guard_expire(px);
        return 0;
    }
    snprintf(msg, sizeof(msg), "pglane refuses statement shape %016llx on preemptible lane %s: quarantined after %d "
             "contention guard actions protecting lane %s (it kept taking %s on %s)",
             (unsigned long long)fp, lane->conf->name, o->quarantine_count, o->protected_lane->conf->name, o->mode,
             o->relation);
    snprintf(detail, sizeof(detail), "Pattern: %s. Shape: %s. Statement running when last acted on: %s. Statement "
             "of lane %s it blocked: %s. The quarantine ends in %llu s, or at RELEASE %016llx in the admin console.",
             o->pattern, o->shape[0] ? o->shape : "(text not known)", o->blocker_query,
             o->protected_lane->conf->name, o->waiter_query,
             (unsigned long long)((o->until_ms - now + 999) / 1000), (unsigned long long)fp);
    proto_build_error(out, "ERROR", "55P03", msg, detail, o->fix);
    return 1;
}

static void act(struct proxy *px, struct guard *g, const struct conf_server *server,
                const struct px_block_edge *w, const struct px_block_edge *head, const struct canceller *how)
{
    const struct px_lane *prot = w->waiter.lane;
    enum px_guard_action a = PX_GUARD_LOGGED;

    if (prot->conf->guard == CONF_GUARD_CANCEL)
        a = preempt(px, server, head, prot, how);
    px_debug("guard: %s backend %u; the waiting request of C-%llu has run %lld ms (PostgreSQL: waited %lld ms)",
             px_guard_action_name(a), head->blocker.pid, (unsigned long long)w->waiter.client_id,
             (long long)w->waiter.running_ms, (long long)w->wait_ms);
    log_event(w, head, a == PX_GUARD_CANCELLED ? "cancelled its statement"
                       : a == PX_GUARD_TERMINATED ? "terminated its idle transaction"
                       : prot->conf->guard == CONF_GUARD_CANCEL ? "could not act (backend gone, or its statement already over)"
                       : "logged only (guard = log)");
    count(px, g, head, prot, a);
    offend(px, g, w, head, a);
}

/* What the guard means to do about head; preempt() decides again on pglane's own state. */
static enum px_guard_action intended(const struct conf_lane *prot, const struct px_block_edge *head)
{
    if (prot->guard != CONF_GUARD_CANCEL)
        return PX_GUARD_LOGGED;
    return strncmp(head->blocker.state, "idle in transaction", 19) == 0 ? PX_GUARD_TERMINATED : PX_GUARD_CANCELLED;
}

void px_guard_check(struct proxy *px, const struct conf_server *server, const struct px_block_edge *edges, int n,
                    px_guard_cancel_cb cancel, void *arg)
{
    struct guard *g = guard_of(px);
    struct canceller how = { cancel, arg };
    uint32_t done[64];
    int ndone = 0;
    uint64_t now = px_now_ms(px);

    if (!g)
        return;
    for (int i = 0; i < n; i++) {
        const struct px_block_edge *w = &edges[i], *head;
        const struct conf_lane *pl;
        int seen = 0;

        /* The wait counts from the start of the protected request as pglane saw it, when that is
         * earlier than the lock wait PostgreSQL reports: a sample triggered at guard_wait acts at once. */
        if (!w->waiter.owned || !(pl = w->waiter.lane->conf)->protect || pl->guard == CONF_GUARD_OFF ||
            (w->wait_ms < pl->guard_wait_ms && w->waiter.running_ms < pl->guard_wait_ms))
            continue;
        head = chain_head(edges, n, w);
        if (!head->blocker.owned || head->blocker.remote || !head->blocker.lane->conf->preemptible)
            continue;             /* never act on a backend pglane (this worker) does not own, or may not preempt */
        if (strstr(head->blocker.state, "(aborted)"))
            continue;             /* a failed transaction block released its locks when it failed (a cancel
                                   * just now, say): a sample still showing it blocking read pg_locks before
                                   * the release and pg_stat_activity after; its client gets to roll back */
        for (int j = 0; j < ndone; j++)
            seen |= done[j] == head->blocker.pid;
        if (seen || cancelled_lately(g, w->waiter.pid, head->blocker.pid, intended(pl, head), now) ||
            !due(g, w->waiter.pid, head->blocker.pid, intended(pl, head), now))
            continue;             /* one action per blocker per sampling period */
        if (ndone < 64)
            done[ndone++] = head->blocker.pid;
        act(px, g, server, w, head, &how);
    }
    forget_old(g, now);
}

/* ---- the cancelled client's error message ---- */

static int build_message(struct px_server *sv, const struct proto_frame *f, struct proto_buf *out)
{
    struct proto_error_fields ef;
    char msg[200], detail[400];
    const struct px_lane *prot = sv->guard_for;

    if (proto_parse_error(f->body, f->len, &ef) < 0 || !ef.sqlstate || strcmp(ef.sqlstate, "57014") != 0)
        return -1;
    snprintf(msg, sizeof(msg), "pglane cancelled this statement to protect lane %s from a lock wait",
             prot->conf->name);
    snprintf(detail, sizeof(detail),
             "A transaction of lane %s waited longer than guard_wait (%lld ms) for a lock this statement's "
             "transaction held. PostgreSQL said: %s",
             prot->conf->name, (long long)prot->conf->guard_wait_ms, ef.message ? ef.message : "");
    proto_buf_init(out);
    proto_build_error(out, "ERROR", "57014", msg, detail,
                      "Run it when the protected lane is quiet, or take its locks in shorter transactions.");
    return out->failed ? -1 : 0;
}

int px_guard_rewrite(struct px_server *sv, struct proto_frame *f)
{
    struct px_buf *b = &sv->conn.in;
    uint32_t old = PROTO_HEADER_LEN + f->len, nlen;
    struct proto_buf nb;

    if (build_message(sv, f, &nb) < 0)
        return 0;                 /* another error: forwarded as it is */
    nlen = (uint32_t)nb.len;
    if (nlen > old && b->cap - b->len < nlen - old) {
        if (sv->conn.writing) {
            proto_buf_free(&nb);
            return -1;            /* the buffer may not move while a write is in flight */
        }
        if (px_buf_reserve(b, nlen - old) < 0) {
            proto_buf_free(&nb);
            return 0;
        }
    }
    memmove(b->data + b->pos + nlen, b->data + b->pos + old, b->len - (b->pos + old));
    memcpy(b->data + b->pos, nb.data, nlen);
    b->len = b->len + nlen - old;
    f->len = nlen - PROTO_HEADER_LEN;
    f->body = b->data + b->pos + PROTO_HEADER_LEN;
    proto_buf_free(&nb);
    px_info("S-%llu guard: told client C-%llu that pglane cancelled its statement to protect lane %s",
            (unsigned long long)sv->conn.id, sv->client ? (unsigned long long)sv->client->conn.id : 0ULL,
            sv->guard_for->conf->name);
    sv->guard_for = NULL;
    return 0;
}
