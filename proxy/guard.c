/*
 * The contention guard: when a backend of a protected lane has waited on a lock longer than that
 * lane's guard_wait and the head of its blocking chain is a backend of a preemptible lane that pglane
 * owns, log it (guard = log) or cancel that backend's statement (guard = cancel; an idle-in-
 * transaction backend is terminated by closing pglane's connection to it). Backends pglane does not
 * own are never touched. guard and guard_wait are read on the protected (waiting) lane.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/monitor.h"

#define MAX_DEPTH 16
#define RECENT 64
#define COUNTS 128
#define RECANCEL_MS 1000          /* a blocker still blocking this long after a cancel is cancelled again */
#define FORGET_MS 2000

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
};

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

/* Cancels the head's statement, or terminates its backend when it is idle in transaction. */
static enum px_guard_action preempt(struct proxy *px, const struct conf_server *server,
                                    const struct px_block_edge *head, const struct px_lane *prot)
{
    struct px_server *sv = px_monitor_find_backend(px, server, head->blocker.pid);
    struct px_client *cl = sv ? sv->client : NULL;
    char msg[256];

    if (!sv)
        return PX_GUARD_LOGGED;   /* gone since the sample */
    if (strncmp(head->blocker.state, "idle in transaction", 19) == 0 && (!cl || cl->pending_z == 0)) {
        snprintf(msg, sizeof(msg), "pglane terminated this idle transaction to protect lane %s from a lock wait",
                 prot->conf->name);
        px_server_close(sv, "terminated by the contention guard");
        if (cl)
            px_client_fail(cl, "57P01", msg);
        return PX_GUARD_TERMINATED;
    }
    sv->guard_for = prot;
    if (px_cancel_backend(px, sv) < 0) {
        sv->guard_for = NULL;
        return PX_GUARD_LOGGED;
    }
    return PX_GUARD_CANCELLED;
}

static void act(struct proxy *px, struct guard *g, const struct conf_server *server,
                const struct px_block_edge *w, const struct px_block_edge *head)
{
    const struct px_lane *prot = w->waiter.lane;
    enum px_guard_action a = PX_GUARD_LOGGED;

    if (prot->conf->guard == CONF_GUARD_CANCEL)
        a = preempt(px, server, head, prot);
    log_event(w, head, a == PX_GUARD_CANCELLED ? "cancelled its statement"
                       : a == PX_GUARD_TERMINATED ? "terminated its idle transaction"
                       : prot->conf->guard == CONF_GUARD_CANCEL ? "could not act (backend gone, or its statement already over)"
                       : "logged only (guard = log)");
    count(px, g, head, prot, a);
}

/* What the guard means to do about head; preempt() decides again on pglane's own state. */
static enum px_guard_action intended(const struct conf_lane *prot, const struct px_block_edge *head)
{
    if (prot->guard != CONF_GUARD_CANCEL)
        return PX_GUARD_LOGGED;
    return strncmp(head->blocker.state, "idle in transaction", 19) == 0 ? PX_GUARD_TERMINATED : PX_GUARD_CANCELLED;
}

void px_guard_check(struct proxy *px, const struct conf_server *server, const struct px_block_edge *edges, int n)
{
    struct guard *g = guard_of(px);
    uint32_t done[64];
    int ndone = 0;
    uint64_t now = px_now_ms(px);

    if (!g)
        return;
    for (int i = 0; i < n; i++) {
        const struct px_block_edge *w = &edges[i], *head;
        const struct conf_lane *pl;
        int seen = 0;

        if (!w->waiter.owned || !(pl = w->waiter.lane->conf)->protect || pl->guard == CONF_GUARD_OFF ||
            w->wait_ms < pl->guard_wait_ms)
            continue;
        head = chain_head(edges, n, w);
        if (!head->blocker.owned || !head->blocker.lane->conf->preemptible)
            continue;             /* never act on a backend pglane does not own, or may not preempt */
        for (int j = 0; j < ndone; j++)
            seen |= done[j] == head->blocker.pid;
        if (seen || !due(g, w->waiter.pid, head->blocker.pid, intended(pl, head), now))
            continue;             /* one action per blocker per sampling period */
        if (ndone < 64)
            done[ndone++] = head->blocker.pid;
        act(px, g, server, w, head);
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
