/*
 * Several event loops in one process (workers = N): what the worker threads share. See
 * proxy/workers.h for the model. Ownership, in one place:
 *   - struct px_workers is made by main.c before any worker starts and freed after all have ended;
 *     `lock` guards the slot list, each slot's `refs`, and every worker's `async` pointer and inbox.
 *     A slot is referred to by the pools and caps attached to it (one reference per px_gslot_named)
 *     and by connections being handed over; it leaves the list and is freed when the last reference
 *     goes and it counts no connection (a made-up database's slot does not outlive its pools).
 *   - a slot's `n` and `since[]` are atomics: n is changed only by take (compare-and-swap below the
 *     cap) and put; since[w] is written only by worker w and read by all. Both sides are sequentially
 *     consistent: a worker that found no room publishes since[w] and then takes again, a worker that
 *     gives a count back then reads since[]: one of the two sees the other (no lost wake-up).
 *   - held[w] and weight[w] (under a tenant_key: the count and tenant_weight of the tenant of worker
 *     w's next waiter) are written by worker w before since[w] and read with it; held points into
 *     proxy/tenant.c's counts, which live as long as the process.
 *   - login_failed_ms is an atomic any worker's pool of the slot writes (a failed login, or 0 after a
 *     working one) and reads (server_login_retry); the latest write wins.
 *   - a worker's counters are written only by that worker (relaxed stores) and read by any.
 *   - a slot's claim_for/claim_us/claim_epoch/claim_by (the room last made for another worker's
 *     queue, and by whom) and px_workers.tenant_epoch are under `lock` (claim_by is also read without
 *     it, see its comment): written when a worker closes or hands over an idle connection to make
 *     room, when a queue starts waiting again (its head's claim cleared), when a tenant leaves
 *     tenant_max, and when a worker's claim went unused (unclaim); on the forwarding path only in
 *     that last case, which is rare.
 *   - `dir_lock` guards the backend directory (dir): entries are added or re-owned by the worker that
 *     logs in or adopts a connection, removed by their owner, read by any worker's monitor.
 * The forwarding path takes no lock: a transaction that finds an idle connection in its own pool
 * and a release read since[] (atomics) only for pools with a slot, and write no shared state.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/admin/console.h"
#include "proxy/admin/monitor.h"
#include "proxy/fairq.h"
#include "proxy/proxy.h"
#include "proxy/tenant.h"

#define INBOX_MAX 256              /* cancel requests waiting for their worker; more are dropped */
#define ACTS_MAX 16                /* admin commands waiting for a worker; more are dropped (logged) */

struct px_gslot {
    struct px_gslot *next;         /* in px_workers.slots */
    int refs;                      /* under lock: pools, caps and handoffs referring to it */
    int pool_key;                  /* a (lane, server, database, user): counted in px_workers.npool_keys */
    char *key;                     /* lane \x1f server \x1f database \x1f user */
    _Atomic int n;                 /* server connections of this key in every worker */
    _Atomic uint64_t since[CONF_WORKERS_MAX];   /* worker w's oldest waiter (its wait_seq), 0 = none waits for room */
    /* Under a tenant_key: the process-wide count of connections held by the tenant of worker w's next
     * waiter (proxy/tenant.c's counts live as long as the process), NULL: none or no tenant_key;
     * since[w] is then that waiter's wait_seq. Written by worker w before since[w]. */
    _Atomic int *_Atomic held[CONF_WORKERS_MAX];
    _Atomic int weight[CONF_WORKERS_MAX];   /* that tenant's tenant_weight (0 read as 1) */
    _Atomic int conns[CONF_WORKERS_MAX];   /* worker w's open connections of this slot (written by w) */
    _Atomic uint64_t login_failed_ms;  /* a login of this slot's pools failed then (server_login_retry), 0: none */
    /* Under lock: the queue head (its wait_seq) that an idle connection of this slot was last closed
     * for, in another worker, and when (px_gslot_claim). */
    uint64_t claim_for, claim_us, claim_epoch;
    /* The worker that made that claim, plus one (0: none). Written under lock; read without it only
     * by a worker looking for its own claim (unclaim: one load on the release path, the lock only
     * when the claim is its). */
    _Atomic int claim_by;
    /* Under lock: the ParameterStatus values and tracked defaults of the first login of any worker's
     * pool of this slot, so that another worker's pool does not need a login of its own before its
     * clients can be answered. */
    int params_ready;
    struct px_kv *params;
    int nparams;
    struct px_params defaults;
};

struct inbox_item {
    int kind;                      /* ITEM_CANCEL, ITEM_GATHER_ASK, ITEM_GATHER_PART */
    uint32_t pid, key;             /* ITEM_CANCEL */
    int from, which;               /* ITEM_GATHER_*: the asking (ASK) or answering (PART) worker; PX_GATHER_* */
    uint64_t gather_id;            /* ITEM_GATHER_*: the asker's gather */
    uint8_t *data;                 /* ITEM_GATHER_PART: what the worker rendered (malloc'd), NULL if nothing */
    size_t len;
    int failed;                    /* ITEM_GATHER_PART: the rendering ran out of memory (data NULL) */
    char arg[PX_GATHER_ARG];       /* ITEM_GATHER_ASK: what to render or do */
};

enum { ITEM_CANCEL, ITEM_GATHER_ASK, ITEM_GATHER_PART };

/* What one worker asked every worker to render (a console's SHOW CLIENTS, a scrape of /metrics), waiting
 * for their parts; owned by the asking worker (thread-local list). The requester is known by an id only:
 * it may be gone when the last part arrives (done then finds nothing and drops the parts). */
struct gather {
    struct gather *next;
    uint64_t id, requester;
    int which, pending;
    char arg[PX_GATHER_ARG];
    px_gather_done_fn done;
    struct proto_buf parts[CONF_WORKERS_MAX];   /* by worker id */
};

static _Thread_local struct gather *gathers;
static _Thread_local uint64_t gather_next_id;

/* An idle server connection moving to another worker: its socket (a duplicate of the descriptor; the
 * giver closed its own) and what pglane knows of its session. Its slot's count moves with it. */
struct handoff {
    struct px_gslot *g;
    struct px_gslot *caps[PX_CAP_KINDS];   /* the caps' counts it holds (NULL where none) */
    int fd;
    uint32_t backend_pid, backend_key;
    struct px_params have;
    struct px_kvlist gucs;
    uint64_t created_ms;
    int seq_used;                  /* sequence state of some client may be on it (px_server.seq_client) */
};

struct px_worker {
    uv_async_t *async;             /* under lock: NULL while the worker's loop is not running */
    struct inbox_item inbox[INBOX_MAX];   /* under lock */
    int ninbox;
    struct handoff moves[INBOX_MAX];   /* under lock */
    int nmoves;
    struct action {                /* under lock: admin commands another worker's console ran */
        unsigned what;             /* PX_WORKERS_* */
        char arg[128];
    } acts[ACTS_MAX];
    int nacts;
    _Atomic int running;
    _Atomic int64_t clients, servers, accepted;
    _Atomic int64_t handed_over;   /* connections this worker moved to another (written by it) */
};

#define DIR_BUCKETS 1024

/* One backend of the directory (px_workers_backend_*). */
struct dir_entry {
    struct dir_entry *next;
    uint32_t pid;
    int worker;
    char server[64], lane[64];
};

struct px_workers {
    int n;
    pthread_mutex_t dir_lock;      /* guards dir: taken at logins, closes and monitor samples only */
    struct dir_entry *dir[DIR_BUCKETS];
    _Atomic uint64_t seq;          /* arrivals in queues, every worker's: FIFO order across workers */
    _Atomic int nclients;          /* clients of every worker (max_client_conn) */
    pthread_mutex_t lock;
    struct px_gslot *slots;
    int npool_keys;                /* under lock: slots of pools (max_pools counts them) */
    /* Under lock: releases by a tenant at tenant_max (px_workers_tenant_room); a claim made before the
     * last one is spent (px_gslot_claim). */
    uint64_t tenant_epoch;
    /* Under lock: PX_WORKERS_DRAIN asks so far; a worker that attaches later drains as many times. */
    unsigned drains;
    struct px_worker w[CONF_WORKERS_MAX];
};

struct px_workers *px_workers_new(int n)
{
    struct px_workers *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->n = n < 1 ? 1 : n > CONF_WORKERS_MAX ? CONF_WORKERS_MAX : n;
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->dir_lock, NULL);
    return w;
}

static void gslot_free(struct px_gslot *g)
{
    for (int i = 0; i < g->nparams; i++) {
        free(g->params[i].name);
        free(g->params[i].value);
    }
    free(g->params);
    px_params_clear(&g->defaults);
    free(g->key);
    free(g);
}

void px_workers_free(struct px_workers *w)
{
    struct px_gslot *g, *next;

    if (!w)
        return;
    for (g = w->slots; g; g = next) {
        next = g->next;
        gslot_free(g);
    }
    for (int i = 0; i < DIR_BUCKETS; i++)
        while (w->dir[i]) {
            struct dir_entry *e = w->dir[i];

            w->dir[i] = e->next;
            free(e);
        }
    pthread_mutex_destroy(&w->dir_lock);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

uint64_t px_workers_next_seq(struct proxy *px)
{
    return atomic_fetch_add_explicit(&px->workers->seq, 1, memory_order_relaxed) + 1;
}

int px_workers_count(const struct px_workers *w)
{
    return w ? w->n : 1;
}

static void wake(struct px_workers *ws, int id)
{
    pthread_mutex_lock(&ws->lock);
    if (ws->w[id].async)
        uv_async_send(ws->w[id].async);
    pthread_mutex_unlock(&ws->lock);
}

/* Wakes every worker but self. */
static void wake_others(struct px_workers *ws, int self)
{
    for (int i = 0; i < ws->n; i++)
        if (i != self)
            wake(ws, i);
}

/* Wakes every other worker whose pool of slot g waits for room. */
static void wake_waiters(struct px_workers *ws, struct px_gslot *g, int self)
{
    for (int i = 0; i < ws->n; i++)
        if (i != self && atomic_load_explicit(&g->since[i], memory_order_seq_cst))
            wake(ws, i);
}

/* Puts an item into worker `to`'s inbox: 1, or 0 if that worker is not running or its inbox is full. */
static int post(struct px_workers *ws, int to, const struct inbox_item *it)
{
    int ok = 0;

    pthread_mutex_lock(&ws->lock);
    if (ws->w[to].async && ws->w[to].ninbox < INBOX_MAX) {
        ws->w[to].inbox[ws->w[to].ninbox++] = *it;
        uv_async_send(ws->w[to].async);
        ok = 1;
    }
    pthread_mutex_unlock(&ws->lock);
    return ok;
}

/* What a gather asks of each worker, rendered in that worker's thread from its own state. */
static void gather_render(struct proxy *px, int which, const char *arg, struct proto_buf *b)
{
    if (which == PX_GATHER_METRICS)
        px_metrics_render(px, b);
    else if (which >= PX_GATHER_ACT_KILL_ID)
        px_admin_act(px, which, arg, b);
    else
        px_show_list_rows(px, which, b);
}

static void gather_free(struct gather *g)
{
    for (int i = 0; i < CONF_WORKERS_MAX; i++)
        proto_buf_free(&g->parts[i]);
    free(g);
}

/* Every worker answered: the parts go to the requester, the asker's own first, then by worker id. */
static void gather_finish(struct proxy *px, struct gather *g)
{
    struct gather **pp;
    struct proto_buf parts[CONF_WORKERS_MAX];
    int n = 0;

    for (pp = &gathers; *pp != g; pp = &(*pp)->next)
        ;
    *pp = g->next;
    parts[n++] = g->parts[px->worker_id];
    for (int i = 0; i < px->workers->n; i++)
        if (i != px->worker_id)
            parts[n++] = g->parts[i];
    g->done(px, g->requester, g->which, g->arg, parts, n);
    gather_free(g);
}

/* Another worker's part of one of this worker's gathers (data NULL: it had nothing or stopped). */
static void gather_part(struct proxy *px, const struct inbox_item *it)
{
    struct gather *g;

    for (g = gathers; g && g->id != it->gather_id; g = g->next)
        ;
    if (!g || it->from < 0 || it->from >= CONF_WORKERS_MAX || g->parts[it->from].data) {
        free(it->data);            /* a gather that ended (its worker stopping), or a second answer */
    } else {
        g->parts[it->from].data = it->data;   /* taken over: freed with the gather */
        g->parts[it->from].len = g->parts[it->from].cap = it->len;
        g->parts[it->from].failed = it->failed;
    }
    if (g && --g->pending == 0)
        gather_finish(px, g);
}

/* Another worker asks for this worker's part. */
static void gather_answer(struct proxy *px, const struct inbox_item *ask)
{
    struct proto_buf b;
    struct inbox_item rep = { .kind = ITEM_GATHER_PART, .from = px->worker_id, .gather_id = ask->gather_id };

    proto_buf_init(&b);
    gather_render(px, ask->which, ask->arg, &b);
    if (!b.failed && b.len > 0) {
        rep.data = b.data;         /* handed over with the item */
        rep.len = b.len;
    } else {
        rep.failed = b.failed;
        proto_buf_free(&b);
    }
    if (!post(px->workers, ask->from, &rep))
        free(rep.data);            /* the asker stopped */
}

int px_workers_gather_start(struct proxy *px, int which, uint64_t requester, px_gather_done_fn done)
{
    return px_workers_gather_arg(px, which, "", requester, done);
}

int px_workers_gather_arg(struct proxy *px, int which, const char *arg, uint64_t requester, px_gather_done_fn done)
{
    struct px_workers *ws = px->workers;
    struct gather *g;

    if (!ws || !(g = calloc(1, sizeof(*g))))
        return 0;
    g->id = ++gather_next_id;
    g->requester = requester;
    g->which = which;
    g->done = done;
    snprintf(g->arg, sizeof(g->arg), "%s", arg);
    g->pending = 1;                /* released below, once every ask is out */
    for (int i = 0; i < CONF_WORKERS_MAX; i++)
        proto_buf_init(&g->parts[i]);
    gather_render(px, which, g->arg, &g->parts[px->worker_id]);
    g->next = gathers;
    gathers = g;
    for (int i = 0; i < ws->n; i++) {
        struct inbox_item ask = { .kind = ITEM_GATHER_ASK, .from = px->worker_id, .which = which,
                                  .gather_id = g->id };

        memcpy(ask.arg, g->arg, sizeof(ask.arg));

        if (i != px->worker_id && post(ws, i, &ask))
            g->pending++;
    }
    if (--g->pending == 0)
        gather_finish(px, g);
    return 1;
}

/* A console's SHOW CLIENTS or SERVERS: the rows of every worker, if the console is still there. */
static void console_done(struct proxy *px, uint64_t client_id, int which, const char *arg, struct proto_buf *parts,
                         int n)
{
    struct px_client *cl = px_admin_client_by_id(px, client_id);
    struct proto_buf rows;

    (void)arg;
    if (!cl || cl->state != CL_ADMIN)
        return;
    proto_buf_init(&rows);
    for (int i = 0; i < n; i++)
        proto_put_bytes(&rows, parts[i].data, parts[i].len);
    px_show_list_send(cl, which, rows.data, rows.len);
    proto_buf_free(&rows);
    px_conn_read_start(&cl->conn);   /* the console's next command */
}

int px_workers_console_act(struct px_client *cl, int which, const char *arg, px_gather_done_fn done)
{
    if (!cl->conn.px->workers)
        return 0;
    px_conn_read_stop(&cl->conn);  /* answers stay in order: the next command waits */
    if (px_workers_gather_arg(cl->conn.px, which, arg, cl->conn.id, done))
        return 1;
    px_conn_read_start(&cl->conn);
    return 0;
}

int px_workers_gather(struct px_client *cl, int which)
{
    return px_workers_console_act(cl, which, "", console_done);
}

/* The references a handoff holds to its slots (taken by px_gslot_give), once it is adopted or dropped. */
static void handoff_unref(struct proxy *px, struct handoff *h)
{
    px_gslot_unref(px, h->g);
    for (int k = 0; k < PX_CAP_KINDS; k++)
        px_gslot_unref(px, h->caps[k]);
}

static void handoff_drop(struct proxy *px, struct handoff *h)
{
    close(h->fd);
    px_params_clear(&h->have);
    px_kvlist_clear(&h->gucs);
    px_gslot_release(px, h->g);
    for (int k = 0; k < PX_CAP_KINDS; k++)
        if (h->caps[k])
            px_gslot_release(px, h->caps[k]);
    handoff_unref(px, h);
}

/* A connection handed over by another worker joins this worker's pool of its slot and goes to the
 * head of the queue (or idles). Without such a pool (freed since), or before the pool's first own
 * login gave it the ParameterStatus values its clients are sent, it is closed and its slot freed. */
static void adopt(struct proxy *px, struct handoff *h)
{
    struct px_pool *pool = NULL;

    for (struct px_list *it = px->pools.next; it != &px->pools && !px->exiting; it = it->next) {
        struct px_pool *p = px_container_of(it, struct px_pool, link);

        if (p->g == h->g && !p->lane->retired && (p->params_ready || px_gslot_params_adopt(p))) {
            pool = p;
            break;
        }
    }
    if (!pool || px_server_adopt(pool, h->fd, h->backend_pid, h->backend_key, &h->have, &h->gucs,
                                 h->created_ms, h->seq_used) < 0) {
        handoff_drop(px, h);
        return;
    }
    handoff_unref(px, h);          /* the adopting pool and its caps refer to the same slots */
    /* The room claimed for this queue's head is used. A queue that still waits has a new head, which
     * no other worker knows of (this worker never stopped waiting: px_gslot_set_waiting woke no one);
     * a worker that passed its idle connection over because of that claim looks again. */
    if (pool->nwaiting > 0)
        wake_others(px->workers, px->worker_id);
}

void px_workers_room(struct proxy *px)
{
    if (!px->workers || px->exiting)
        return;
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (!pool->g)
            continue;
        /* An idle connection moves to the worker that waits (or, if it cannot move, is closed). */
        if (!px_list_empty(&pool->idle))
            px_gslot_give_idle(px, pool);
        if (!px_list_empty(&pool->idle) && px_caps_make_room(pool))
            px_server_close(px_container_of(pool->idle.prev, struct px_server, link),
                            "closed to make room for another worker's queue under a connection cap");
        if (pool->nwaiting)
            px_pool_refill(pool);
        px_gslot_publish(pool);
    }
}

/*
 * Woken by another worker: cancel requests handed over, and room that may have been made in a
 * slot (a connection closed elsewhere) or asked for (another worker's queue waits longer than
 * ours: idle connections here are closed to make room there).
 */
static void on_wake(uv_async_t *h)
{
    struct proxy *px = h->data;
    struct px_workers *ws = px->workers;
    struct px_worker *me = &ws->w[px->worker_id];
    struct inbox_item items[INBOX_MAX];
    struct handoff moves[INBOX_MAX];
    int n, nmoves;
    struct action acts[ACTS_MAX];
    int nacts;

    pthread_mutex_lock(&ws->lock);
    n = me->ninbox;
    memcpy(items, me->inbox, sizeof(items[0]) * (size_t)n);
    me->ninbox = 0;
    nmoves = me->nmoves;
    memcpy(moves, me->moves, sizeof(moves[0]) * (size_t)nmoves);
    me->nmoves = 0;
    nacts = me->nacts;
    memcpy(acts, me->acts, sizeof(acts[0]) * (size_t)nacts);
    me->nacts = 0;
    pthread_mutex_unlock(&ws->lock);
    /* Admin commands and news first: a gather asked after them (SHOW QUARANTINE after a RELEASE)
     * sees their effect. */
    for (int i = 0; i < nacts && !px->exiting; i++) {
        if (acts[i].what == PX_WORKERS_RELOAD)
            (void)px_reload(px);
        else if (acts[i].what == PX_WORKERS_DRAIN)
            px_drain(px);
        else if (acts[i].what == PX_WORKERS_PAUSE || acts[i].what == PX_WORKERS_RESUME)
            (void)px_admin_set_paused(px, acts[i].arg, acts[i].what == PX_WORKERS_PAUSE);
        else if (acts[i].what == PX_WORKERS_SAMPLE)
            px_monitor_sample_now(px, acts[i].arg);
        else if (acts[i].what == PX_WORKERS_AUTHQ)
            px_authq_remote(px);
        else if (acts[i].what == PX_WORKERS_HEALTH)
            px_health_news(px);
        else if (acts[i].what == PX_WORKERS_GRAPH)
            px_monitor_news(px);
        else if (acts[i].what == PX_WORKERS_QUARANTINE)
            px_guard_news(px);
        else if (acts[i].what == PX_WORKERS_ADAPT)
            px_adapt_news(px);
    }
    for (int i = 0; i < n; i++) {
        if (items[i].kind == ITEM_CANCEL)
            px_cancel_forward(px, items[i].pid, items[i].key);
        else if (items[i].kind == ITEM_GATHER_ASK)
            gather_answer(px, &items[i]);
        else
            gather_part(px, &items[i]);
    }
    for (int i = 0; i < nmoves; i++)
        adopt(px, &moves[i]);
    px_workers_room(px);
}

int px_worker_attach(struct proxy *px)
{
    struct px_workers *ws = px->workers;
    uv_async_t *a;

    if (!ws)
        return 0;
    if (!(a = calloc(1, sizeof(*a))))
        return -1;
    if (uv_async_init(px->loop, a, on_wake) < 0) {
        free(a);
        return -1;
    }
    a->data = px;
    pthread_mutex_lock(&ws->lock);
    ws->w[px->worker_id].async = a;
    px->drains_before_start = ws->drains;
    pthread_mutex_unlock(&ws->lock);
    atomic_store_explicit(&ws->w[px->worker_id].running, 1, memory_order_relaxed);
    return 0;
}

static void on_async_closed(uv_handle_t *h)
{
    free(h);
}

void px_worker_detach(struct proxy *px)
{
    struct px_workers *ws = px->workers;
    struct handoff moves[INBOX_MAX];
    struct inbox_item items[INBOX_MAX];
    int nmoves, ninbox;
    uv_async_t *a;

    if (!ws)
        return;
    pthread_mutex_lock(&ws->lock);
    a = ws->w[px->worker_id].async;
    ws->w[px->worker_id].async = NULL;
    ninbox = ws->w[px->worker_id].ninbox;
    memcpy(items, ws->w[px->worker_id].inbox, sizeof(items[0]) * (size_t)ninbox);
    ws->w[px->worker_id].ninbox = 0;
    nmoves = ws->w[px->worker_id].nmoves;
    memcpy(moves, ws->w[px->worker_id].moves, sizeof(moves[0]) * (size_t)nmoves);
    ws->w[px->worker_id].nmoves = 0;
    pthread_mutex_unlock(&ws->lock);
    for (int i = 0; i < nmoves; i++)
        handoff_drop(px, &moves[i]);   /* handed over while this worker stopped: closed */
    /* What others asked of this worker: an empty answer (the asker does not wait for a worker that
     * stopped); parts sent to it are dropped, and so are its own gathers (their requesters close with it). */
    for (int i = 0; i < ninbox; i++) {
        struct inbox_item rep = { .kind = ITEM_GATHER_PART, .from = px->worker_id,
                                  .gather_id = items[i].gather_id };

        if (items[i].kind == ITEM_GATHER_ASK)
            (void)post(ws, items[i].from, &rep);
        else if (items[i].kind == ITEM_GATHER_PART)
            free(items[i].data);
    }
    while (gathers) {
        struct gather *g = gathers;

        gathers = g->next;
        gather_free(g);
    }
    atomic_store_explicit(&ws->w[px->worker_id].running, 0, memory_order_relaxed);
    if (a)
        uv_close((uv_handle_t *)a, on_async_closed);
}

/* Under ws->lock: worker i is asked (or, its list full, told nothing: logged for admin commands). */
static void ask_locked(struct px_workers *ws, int i, unsigned what, const char *arg)
{
    struct px_worker *w = &ws->w[i];

    if (!w->async)
        return;
    if (w->nacts == ACTS_MAX) {
        if (what < PX_WORKERS_SAMPLE)   /* news and samples are due anyway at the next tick */
            px_warn("worker %d has %d admin commands pending: this one is not passed on to it", i, ACTS_MAX);
        return;
    }
    w->acts[w->nacts].what = what;
    snprintf(w->acts[w->nacts].arg, sizeof(w->acts[0].arg), "%s", arg ? arg : "");
    w->nacts++;
    uv_async_send(w->async);
}

void px_workers_ask(struct proxy *px, unsigned what, const char *arg)
{
    struct px_workers *ws = px->workers;

    if (!ws)
        return;
    pthread_mutex_lock(&ws->lock);
    if (what == PX_WORKERS_DRAIN)
        ws->drains++;          /* for a worker that has not attached yet (px_worker_attach) */
    for (int i = 0; i < ws->n; i++)
        if (i != px->worker_id)
            ask_locked(ws, i, what, arg);
    pthread_mutex_unlock(&ws->lock);
}

void px_workers_tenant_room(struct proxy *px)
{
    struct px_workers *ws = px->workers;

    if (!ws)
        return;
    pthread_mutex_lock(&ws->lock);
    ws->tenant_epoch++;
    for (int i = 0; i < ws->n; i++)
        if (ws->w[i].async)
            uv_async_send(ws->w[i].async);
    pthread_mutex_unlock(&ws->lock);
}

void px_workers_ask_one(struct proxy *px, int to, unsigned what, const char *arg)
{
    struct px_workers *ws = px->workers;

    if (!ws || to < 0 || to >= ws->n || to == px->worker_id)
        return;
    pthread_mutex_lock(&ws->lock);
    ask_locked(ws, to, what, arg);
    pthread_mutex_unlock(&ws->lock);
}

int px_lease_hold(struct px_lease *l, int me, int can, uint64_t now, uint64_t lapse_ms)
{
    int mine;

    if (l->owner == me && !can)
        l->owner = -1;
    mine = can && (l->owner == me || l->owner < 0 || now > l->renewed_ms + lapse_ms);
    if (mine) {
        l->owner = me;
        l->renewed_ms = now;
    }
    return mine;
}

void px_worker_stamp_key(const struct proxy *px, uint32_t *cancel_pid)
{
    if (px->workers)
        *cancel_pid = (*cancel_pid & ~PX_WORKER_MASK) | (uint32_t)px->worker_id;
}

int px_worker_route_cancel(struct proxy *px, uint32_t pid, uint32_t key)
{
    struct px_workers *ws = px->workers;
    struct inbox_item it = { .kind = ITEM_CANCEL, .pid = pid, .key = key };
    int id = (int)(pid & PX_WORKER_MASK);

    if (!ws || id == px->worker_id)
        return 0;
    if (id >= ws->n || !post(ws, id, &it)) {
        px->cancels_dropped++;
        px_debug("cancel request for worker %d, which %s: dropped", id,
                 id < ws->n ? "is not running or has too many pending" : "does not exist");
    }
    return 1;
}

/* The slot of name, made on first use, with one more reference. A pool's slot (max_keys >= 0) is
 * not made when max_keys pools' slots exist already: NULL with *over set. */
static struct px_gslot *named(struct px_workers *ws, const char *name, int max_keys, int *over)
{
    struct px_gslot *g;
    char *key;

    if (!(key = strdup(name)))
        return NULL;
    pthread_mutex_lock(&ws->lock);
    for (g = ws->slots; g; g = g->next)
        if (strcmp(g->key, key) == 0)
            break;
    if (!g && max_keys >= 0 && ws->npool_keys >= max_keys)
        *over = 1;
    else if (!g && (g = calloc(1, sizeof(*g)))) {
        g->key = key;
        key = NULL;
        g->pool_key = max_keys >= 0;
        ws->npool_keys += g->pool_key;
        g->next = ws->slots;
        ws->slots = g;
    }
    if (g)
        g->refs++;
    pthread_mutex_unlock(&ws->lock);
    free(key);
    return g;
}

struct px_gslot *px_gslot_named(struct proxy *px, const char *name)
{
    int over = 0;

    return px->workers ? named(px->workers, name, -1, &over) : NULL;
}

int px_workers_pool_keys(const struct px_workers *ws)
{
    int n;

    pthread_mutex_lock((pthread_mutex_t *)&ws->lock);
    n = ws->npool_keys;
    pthread_mutex_unlock((pthread_mutex_t *)&ws->lock);
    return n;
}

void px_gslot_unref(struct proxy *px, struct px_gslot *g)
{
    struct px_workers *ws = px->workers;
    struct px_gslot **pp;

    if (!g || !ws)
        return;
    pthread_mutex_lock(&ws->lock);
    if (--g->refs > 0 || atomic_load_explicit(&g->n, memory_order_seq_cst) > 0) {
        g = NULL;                  /* still used (a slot counting connections stays, however referred) */
    } else {
        for (pp = &ws->slots; *pp != g; pp = &(*pp)->next)
            ;
        *pp = g->next;
        ws->npool_keys -= g->pool_key;
    }
    pthread_mutex_unlock(&ws->lock);
    if (g)
        gslot_free(g);
}

int px_workers_slot_count(const struct px_workers *ws)
{
    int n = 0;

    pthread_mutex_lock((pthread_mutex_t *)&ws->lock);
    for (const struct px_gslot *g = ws->slots; g; g = g->next)
        n++;
    pthread_mutex_unlock((pthread_mutex_t *)&ws->lock);
    return n;
}

int px_gslot_attach(struct proxy *px, struct px_pool *pool, int *over)
{
    char key[1024];

    pool->g = NULL;
    *over = 0;
    if (!px->workers)
        return 0;
    snprintf(key, sizeof(key), "lane\x1f%s\x1f%s\x1f%s\x1f%s", pool->lane->conf->name, pool->ep->server->name,
             pool->database, pool->user);
    return (pool->g = named(px->workers, key, px->conf->max_pools, over)) ? 0 : -1;
}

/* Deep copies of a login's ParameterStatus list and tracked defaults: 0, or -1 (nothing kept). */
static int copy_params(struct px_kv **dst, int *ndst, struct px_params *ddst, const struct px_kv *src, int n,
                       const struct px_params *dsrc)
{
    struct px_kv *kv = calloc((size_t)(n > 0 ? n : 1), sizeof(*kv));

    if (!kv)
        return -1;
    for (int i = 0; i < n; i++)
        if (!(kv[i].name = strdup(src[i].name)) || !(kv[i].value = strdup(src[i].value))) {
            for (int j = 0; j <= i; j++) {
                free(kv[j].name);
                free(kv[j].value);
            }
            free(kv);
            return -1;
        }
    *dst = kv;
    *ndst = n;
    for (int i = 0; i < PX_P_COUNT; i++)
        if (dsrc->v[i])
            px_params_set(ddst, i, dsrc->v[i]);
    return 0;
}

void px_gslot_params_publish(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    struct px_gslot *g = pool->g;

    if (!g)
        return;
    pthread_mutex_lock(&px->workers->lock);
    if (!g->params_ready && copy_params(&g->params, &g->nparams, &g->defaults, pool->params, pool->nparams,
                                        &pool->defaults) == 0)
        g->params_ready = 1;
    pthread_mutex_unlock(&px->workers->lock);
}

int px_gslot_params_adopt(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    struct px_gslot *g = pool->g;

    if (!g || pool->params_ready || pool->nparams > 0)
        return pool->params_ready;
    pthread_mutex_lock(&px->workers->lock);
    if (g->params_ready && copy_params(&pool->params, &pool->nparams, &pool->defaults, g->params, g->nparams,
                                       &g->defaults) == 0)
        pool->params_ready = 1;
    pthread_mutex_unlock(&px->workers->lock);
    return pool->params_ready;
}

int px_gslot_count_of(const struct px_gslot *g)
{
    return atomic_load_explicit(&g->n, memory_order_relaxed);
}

int px_gslot_acquire(struct px_gslot *g, int cap)
{
    int n = atomic_load_explicit(&g->n, memory_order_seq_cst);

    while (n < cap)
        if (atomic_compare_exchange_weak_explicit(&g->n, &n, n + 1, memory_order_seq_cst, memory_order_seq_cst))
            return 1;
    return 0;
}

void px_gslot_release(struct proxy *px, struct px_gslot *g)
{
    atomic_fetch_sub_explicit(&g->n, 1, memory_order_seq_cst);
    wake_waiters(px->workers, g, px->worker_id);
}

void px_gslot_set_waiting(struct proxy *px, struct px_gslot *g, uint64_t since)
{
    uint64_t was = atomic_exchange_explicit(&g->since[px->worker_id], since, memory_order_seq_cst);

    /* Newly waiting for room: the workers holding connections of g look whether they should give one
     * up (on_wake). */
    if (since && !was)
        wake_others(px->workers, px->worker_id);
}

uint64_t px_gslot_others_wait(const struct proxy *px, const struct px_gslot *g, uint64_t before)
{
    uint64_t best = 0;

    for (int i = 0; i < px->workers->n; i++) {
        uint64_t t;

        if (i == px->worker_id)
            continue;
        t = atomic_load_explicit(&g->since[i], memory_order_acquire);
        if (t && t < before && (!best || t < best))
            best = t;
    }
    return best;
}

#define CLAIM_US 1000000           /* the room made for a queue head that still waits this long is made again */

int px_gslot_claim(struct proxy *px, struct px_gslot *g, uint64_t since)
{
    uint64_t now = px_now_us();
    int ok;

    pthread_mutex_lock(&px->workers->lock);
    ok = g->claim_for != since || now - g->claim_us >= CLAIM_US || g->claim_epoch != px->workers->tenant_epoch;
    if (ok) {
        g->claim_for = since;
        g->claim_us = now;
        g->claim_epoch = px->workers->tenant_epoch;
        atomic_store_explicit(&g->claim_by, px->worker_id + 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&px->workers->lock);
    return ok;
}

/*
 * This worker claimed room for another worker's queue head and then gave no connection for it: the
 * idle connection it meant to move went to a client of its own (one that arrived while the
 * connection dropped its statements first, within FIFO_SLACK of that head). The claim goes, and the
 * other workers look again (on_wake): one of them may hold an idle connection for that head, which
 * the claim kept it from moving for CLAIM_US.
 */
static void unclaim(struct proxy *px, struct px_gslot *g)
{
    int mine;

    if (atomic_load_explicit(&g->claim_by, memory_order_relaxed) != px->worker_id + 1)
        return;
    pthread_mutex_lock(&px->workers->lock);
    mine = atomic_load_explicit(&g->claim_by, memory_order_relaxed) == px->worker_id + 1;
    if (mine) {
        g->claim_for = 0;
        atomic_store_explicit(&g->claim_by, 0, memory_order_relaxed);
    }
    pthread_mutex_unlock(&px->workers->lock);
    if (mine)
        wake_others(px->workers, px->worker_id);
}

void px_gslot_detach(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);

    if (pool->g) {
        atomic_store_explicit(&pool->g->since[px->worker_id], 0, memory_order_release);
        px_gslot_unref(px, pool->g);
    }
    pool->g = NULL;
}

void px_gslot_note_conns(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);

    atomic_store_explicit(&pool->g->conns[px->worker_id], pool->nidle + pool->nbusy, memory_order_relaxed);
}

uint64_t px_gslot_login_failed(const struct px_gslot *g)
{
    return atomic_load_explicit(&g->login_failed_ms, memory_order_relaxed);
}

void px_gslot_set_login_failed(struct px_gslot *g, uint64_t ms)
{
    atomic_store_explicit(&g->login_failed_ms, ms, memory_order_relaxed);
}

int px_gslot_count(const struct px_pool *pool)
{
    return px_gslot_count_of(pool->g);
}

int px_gslot_take(struct px_pool *pool, int cap)
{
    return px_gslot_acquire(pool->g, cap);
}

void px_gslot_put(struct px_pool *pool)
{
    px_gslot_release(uv_loop_get_data(pool->queue_timer.loop), pool->g);
}

uint64_t px_gslot_head(const struct px_pool *pool)
{
    if (px_list_empty(&pool->waiting))
        return UINT64_MAX;
    return px_container_of(pool->waiting.next, struct px_client, wait_link)->wait_seq;
}

/* pool's next waiter: its wait_seq (UINT64_MAX: none) and, under a tenant_key, its tenant's
 * process-wide count of held connections (else NULL) and its weight (else 1). */
static uint64_t next_waiter(struct px_pool *pool, _Atomic int **held, int *weight)
{
    *held = NULL;
    *weight = 1;
    if (px_list_empty(&pool->waiting))
        return UINT64_MAX;
    if (px_tenant_on(pool)) {
        struct px_client *cl = px_tenant_pick(pool);

        if (!cl)
            return UINT64_MAX;    /* every waiter's tenant is at tenant_max: none to serve here */
        if (cl->tenant) {
            *held = cl->tenant->gactive;
            *weight = (int)cl->tenant->weight;
        }
        return cl->wait_seq;
    }
    return px_gslot_head(pool);
}

void px_gslot_publish(struct px_pool *pool)
{
    struct proxy *px;
    uint64_t since = 0;
    _Atomic int *held = NULL;
    int weight = 1;

    if (!pool->g)
        return;
    px = uv_loop_get_data(pool->queue_timer.loop);
    if (pool->nwaiting > 0 && px_pool_wants_room(pool)) {
        since = next_waiter(pool, &held, &weight);
        if (since == UINT64_MAX)
            since = 0;
    }
    /* Waiting again after a pause (its tenant was at tenant_max, or the room made for it went to
     * another waiter): a claim made for this head before is spent, and a holder may make room for it
     * now, not a second later. Cleared before the head is visible again, so that one holder claims it. */
    if (since && !atomic_load_explicit(&pool->g->since[px->worker_id], memory_order_relaxed)) {
        pthread_mutex_lock(&px->workers->lock);
        if (pool->g->claim_for == since) {
            pool->g->claim_for = 0;
            atomic_store_explicit(&pool->g->claim_by, 0, memory_order_relaxed);
        }
        pthread_mutex_unlock(&px->workers->lock);
    }
    atomic_store_explicit(&pool->g->held[px->worker_id], held, memory_order_release);
    atomic_store_explicit(&pool->g->weight[px->worker_id], weight, memory_order_release);
    px_gslot_set_waiting(px, pool->g, since);
}

static int in_list(const uint64_t *v, int n, uint64_t x)
{
    for (int i = 0; i < n; i++)
        if (v[i] == x)
            return 1;
    return 0;
}

static int held_now(_Atomic int *held)
{
    return held ? atomic_load_explicit(held, memory_order_acquire) : 0;
}

/* A waiter of another worker that arrived this many places or fewer before this worker's next is
 * not served first (the order across workers holds within one place). */
#define FIFO_SLACK 1

/* Tenant share h / w below bh / bw (-1), equal (0) or above (1): held connections per unit of weight. */
static int share_cmp(int h, int w, int bh, int bw)
{
    int64_t a = (int64_t)h * (bw > 0 ? bw : 1), b = (int64_t)bh * (w > 0 ? w : 1);

    return a < b ? -1 : a > b;
}

/*
 * The worker whose next waiter for pool's slot comes before pool's own, -1 if none: the one whose
 * tenant holds the fewest connections in the process per unit of its tenant_weight (under a
 * tenant_key; fair queuing between workers, as each worker's queue orders its own by tenant), then
 * the one that waited longest. But while this worker has waiters of its own, an older waiter
 * elsewhere takes a connection from here only if its worker holds fewer of the slot's connections
 * than this one: connections are scarce there (the lane's one connection: strict order across
 * workers), where two workers with their shares of a busy lane each serve their own queue in order
 * instead of trading a connection at nearly every transaction (a move costs a dup, a wake-up and a
 * new handle: with strict order, 72% of pgbench -S transactions at 64 clients over 20 connections
 * moved one, and pglane spent 1.25 x the CPU of one worker per transaction). Between the other
 * workers' waiters the order is strict. Waiters whose wait_seq is in skip[0..nskip) are passed over
 * (room was made for them already). *since: that waiter's wait_seq.
 */
static int oldest_other(struct px_pool *pool, uint64_t *since, const uint64_t *skip, int nskip)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    _Atomic int *mine;
    int best_w;
    uint64_t best = next_waiter(pool, &mine, &best_w);
    int queued = best != UINT64_MAX, who = -1, max = pool->lane->conf->tenant_max;
    /* No waiter here: any waiter elsewhere comes first, whatever its tenant holds. */
    int best_held = queued ? held_now(mine) : INT_MAX;
    int here = pool->nidle + pool->nbusy;

    for (int i = 0; i < px->workers->n; i++) {
        uint64_t t;
        int h, w, c;

        if (i == px->worker_id)
            continue;
        t = atomic_load_explicit(&pool->g->since[i], memory_order_acquire);
        if (!t || in_list(skip, nskip, t))
            continue;
        h = held_now(atomic_load_explicit(&pool->g->held[i], memory_order_acquire));
        w = atomic_load_explicit(&pool->g->weight[i], memory_order_acquire);
        if (max > 0 && h >= max)
            continue;             /* its tenant reached tenant_max since: a connection would wait there */
        c = share_cmp(h, w, best_held, best_w);
        if (c < 0 || (c == 0 && (who >= 0 ? t < best : t + FIFO_SLACK < best) &&
                      (!queued || atomic_load_explicit(&pool->g->conns[i], memory_order_relaxed) < here))) {
            best = t;
            best_held = h;
            best_w = w;
            who = i;
        }
    }
    *since = best;
    return who;
}

/* Moves sv (idle, or just released) to worker `to`'s queue, or closes it when it cannot move: 1. */
static int give_to(struct px_server *sv, int to)
{
    struct px_pool *pool = sv->pool;
    struct proxy *px = sv->conn.px;
    struct px_workers *ws = px->workers;
    struct handoff h = { 0 };
    uv_os_fd_t fd;
    int ok = 0;

    /* Only a quiet plaintext connection moves: nothing buffered or in flight, no cancel pending. Any
     * other is closed (its slot freed). */
    if (sv->conn.tls || sv->ncancels > 0 || sv->dirty || sv->conn.writing || sv->conn.wreq ||
        sv->conn.in.start != sv->conn.in.len || sv->conn.in.remain || sv->conn.h.stream.write_queue_size > 0 ||
        sv->prepq.n > 0 || uv_fileno(&sv->conn.h.handle, &fd) < 0)
        goto give_up;
    /* Statements of this worker's registry: DEALLOCATE ALL first (one round trip, where closing costs
     * the other worker a login), then this runs again at its ReadyForQuery and the connection moves. */
    if (sv->ncached > 0) {
        if (px_server_drop_statements(sv) < 0)
            goto give_up;
        return 1;
    }
    if ((h.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
        goto give_up;
    h.g = pool->g;
    for (int k = 0; k < PX_CAP_KINDS; k++)
        h.caps[k] = pool->cap[k] ? pool->cap[k]->g : NULL;
    h.backend_pid = sv->backend_pid;
    h.backend_key = sv->backend_key;
    h.created_ms = sv->created_ms;
    h.seq_used = sv->seq_client != 0;
    pthread_mutex_lock(&ws->lock);
    if (ws->w[to].async && ws->w[to].nmoves < INBOX_MAX) {
        h.have = sv->have;
        h.gucs = sv->gucs;
        h.g->refs++;               /* the giving pool may be freed before the receiver adopts */
        for (int k = 0; k < PX_CAP_KINDS; k++)
            if (h.caps[k])
                h.caps[k]->refs++;
        ws->w[to].moves[ws->w[to].nmoves++] = h;
        uv_async_send(ws->w[to].async);
        ok = 1;
    }
    pthread_mutex_unlock(&ws->lock);
    if (!ok) {
        close(h.fd);
        goto give_up;
    }
    /* The session state and the slot now belong to the receiver. */
    atomic_fetch_add_explicit(&ws->w[px->worker_id].handed_over, 1, memory_order_relaxed);
    memset(&sv->have, 0, sizeof(sv->have));
    memset(&sv->gucs, 0, sizeof(sv->gucs));
    sv->moved = 1;
    px_server_close(sv, "handed over to another worker's queue that waited longer");
    return 1;
give_up:
    px_server_close(sv, "given up to another worker's queue that waited longer");
    return 1;
}

int px_gslot_give(struct px_server *sv)
{
    struct proxy *px = sv->conn.px;
    uint64_t since;
    int to = oldest_other(sv->pool, &since, NULL, 0);

    if (to < 0) {
        unclaim(px, sv->pool->g);
        return 0;
    }
    return give_to(sv, to);
}

void px_gslot_give_idle(struct proxy *px, struct px_pool *pool)
{
    uint64_t done[CONF_WORKERS_MAX];
    int ndone = 0;

    while (!px_list_empty(&pool->idle) && ndone < CONF_WORKERS_MAX) {
        uint64_t since;
        int to = oldest_other(pool, &since, done, ndone);

        if (to < 0)
            break;
        done[ndone++] = since;
        if (px_gslot_claim(px, pool->g, since))   /* else another worker made room for that one */
            (void)give_to(px_container_of(pool->idle.prev, struct px_server, link), to);
    }
}

void px_worker_count_accept(struct proxy *px)
{
    px->accepted++;
    if (!px->workers)
        return;
    atomic_store_explicit(&px->workers->w[px->worker_id].accepted, (int64_t)px->accepted, memory_order_relaxed);
    atomic_fetch_add_explicit(&px->workers->nclients, 1, memory_order_relaxed);
}

void px_worker_client_gone(struct proxy *px)
{
    if (px->workers)
        atomic_fetch_sub_explicit(&px->workers->nclients, 1, memory_order_relaxed);
}

int px_workers_clients(const struct proxy *px)
{
    return px->workers ? atomic_load_explicit(&px->workers->nclients, memory_order_relaxed) : px->nclients;
}

/* The server connections px's pools hold. */
static int64_t servers_of(const struct proxy *px)
{
    int64_t servers = 0;

    for (const struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        const struct px_pool *pool = px_container_of(it, struct px_pool, link);

        servers += pool->nidle + pool->nbusy;
    }
    return servers;
}

/* Called by the owning worker (maintenance tick, SHOW WORKERS): its current counts. */
static void sync_counts(const struct proxy *px)
{
    struct px_worker *me = &px->workers->w[px->worker_id];

    atomic_store_explicit(&me->clients, px->nclients, memory_order_relaxed);
    atomic_store_explicit(&me->servers, servers_of(px), memory_order_relaxed);
}

void px_workers_tick(struct proxy *px)
{
    if (!px->workers)
        return;
    sync_counts(px);
    px_workers_room(px);           /* also a safety net: a queue retries at least once a second */
}

int px_workers_rows(const struct proxy *px, struct px_worker_row *rows, int max)
{
    int n = 0;

    if (!px->workers) {
        if (max < 1)
            return 0;
        rows[0] = (struct px_worker_row){ .id = 0, .running = 1, .clients = px->nclients, .servers = servers_of(px),
                                          .accepted = (int64_t)px->accepted };
        return 1;
    }
    sync_counts(px);
    for (int i = 0; i < px->workers->n && n < max; i++, n++) {
        const struct px_worker *w = &px->workers->w[i];

        rows[n] = (struct px_worker_row){
            .id = i,
            .running = atomic_load_explicit(&w->running, memory_order_relaxed),
            .clients = atomic_load_explicit(&w->clients, memory_order_relaxed),
            .servers = atomic_load_explicit(&w->servers, memory_order_relaxed),
            .accepted = atomic_load_explicit(&w->accepted, memory_order_relaxed),
            .handed_over = atomic_load_explicit(&w->handed_over, memory_order_relaxed),
        };
    }
    return n;
}

static struct dir_entry **dir_slot(struct px_workers *ws, const char *server, uint32_t pid)
{
    struct dir_entry **pp = &ws->dir[pid % DIR_BUCKETS];

    while (*pp && ((*pp)->pid != pid || strncmp((*pp)->server, server, sizeof((*pp)->server) - 1) != 0))
        pp = &(*pp)->next;
    return pp;
}

void px_workers_backend_set(struct proxy *px, const char *server, uint32_t pid, const char *lane)
{
    struct px_workers *ws = px->workers;
    struct dir_entry **pp, *e;

    if (!ws || !pid)
        return;
    pthread_mutex_lock(&ws->dir_lock);
    pp = dir_slot(ws, server, pid);
    if (!(e = *pp) && (e = calloc(1, sizeof(*e)))) {
        e->pid = pid;
        snprintf(e->server, sizeof(e->server), "%s", server);
        *pp = e;
    }
    if (e) {
        e->worker = px->worker_id;
        snprintf(e->lane, sizeof(e->lane), "%s", lane);
    }
    pthread_mutex_unlock(&ws->dir_lock);
}

void px_workers_backend_drop(struct proxy *px, const char *server, uint32_t pid)
{
    struct px_workers *ws = px->workers;
    struct dir_entry **pp, *e;

    if (!ws || !pid)
        return;
    pthread_mutex_lock(&ws->dir_lock);
    pp = dir_slot(ws, server, pid);
    if ((e = *pp) && e->worker == px->worker_id) {   /* handed over: the new owner's entry stays */
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&ws->dir_lock);
}

int px_workers_backend_find(struct proxy *px, const char *server, uint32_t pid, char *lane, size_t cap)
{
    struct px_workers *ws = px->workers;
    struct dir_entry *e;
    int who = -1;

    if (!ws)
        return -1;
    pthread_mutex_lock(&ws->dir_lock);
    if ((e = *dir_slot(ws, server, pid))) {
        who = e->worker;
        snprintf(lane, cap, "%s", e->lane);
    }
    pthread_mutex_unlock(&ws->dir_lock);
    return who;
}
