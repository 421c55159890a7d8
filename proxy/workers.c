/*
 * Several event loops in one process (workers = N): what the worker threads share. See
 * proxy/workers.h for the model. Ownership, in one place:
 *   - struct px_workers is made by main.c before any worker starts and freed after all have ended;
 *     `lock` guards the slot list (insertions; slots are never removed before the end) and every
 *     worker's `async` pointer and inbox.
 *   - a slot's `n` and `since[]` are atomics: n is changed only by take (compare-and-swap below the
 *     cap) and put; since[w] is written only by worker w and read by all.
 *   - a worker's counters are written only by that worker (relaxed stores) and read by any.
 * The forwarding path takes no lock: a transaction that finds an idle connection in its own pool
 * touches no shared state, and a release reads since[] (atomics) only for pools with a slot.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/proxy.h"

#define INBOX_MAX 256              /* cancel requests waiting for their worker; more are dropped */

struct px_gslot {
    struct px_gslot *next;         /* in px_workers.slots */
    char *key;                     /* lane \x1f server \x1f database \x1f user */
    _Atomic int n;                 /* server connections of this key in every worker */
    _Atomic uint64_t since[CONF_WORKERS_MAX];   /* worker w's oldest waiter (ms), 0 = none waits for room */
};

struct inbox_item {
    uint32_t pid, key;
};

/* An idle server connection moving to another worker: its socket (a duplicate of the descriptor; the
 * giver closed its own) and what pglane knows of its session. Its slot's count moves with it. */
struct handoff {
    struct px_gslot *g;
    int fd;
    uint32_t backend_pid, backend_key;
    struct px_params have;
    struct px_kvlist gucs;
    uint64_t created_ms;
};

struct px_worker {
    uv_async_t *async;             /* under lock: NULL while the worker's loop is not running */
    struct inbox_item inbox[INBOX_MAX];   /* under lock */
    int ninbox;
    struct handoff moves[INBOX_MAX];   /* under lock */
    int nmoves;
    unsigned asks;                 /* under lock: PX_WORKERS_RELOAD | PX_WORKERS_DRAIN, from another worker */
    _Atomic int running;
    _Atomic int64_t clients, servers, accepted;
};

struct px_workers {
    int n;
    _Atomic int nclients;          /* clients of every worker (max_client_conn) */
    pthread_mutex_t lock;
    struct px_gslot *slots;
    struct px_worker w[CONF_WORKERS_MAX];
};

struct px_workers *px_workers_new(int n)
{
    struct px_workers *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->n = n < 1 ? 1 : n > CONF_WORKERS_MAX ? CONF_WORKERS_MAX : n;
    pthread_mutex_init(&w->lock, NULL);
    return w;
}

void px_workers_free(struct px_workers *w)
{
    struct px_gslot *g, *next;

    if (!w)
        return;
    for (g = w->slots; g; g = next) {
        next = g->next;
        free(g->key);
        free(g);
    }
    pthread_mutex_destroy(&w->lock);
    free(w);
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

/* Wakes every other worker whose pool of slot g waits for room. */
static void wake_waiters(struct px_workers *ws, struct px_gslot *g, int self)
{
    for (int i = 0; i < ws->n; i++)
        if (i != self && atomic_load_explicit(&g->since[i], memory_order_acquire))
            wake(ws, i);
}

static void handoff_drop(struct proxy *px, struct handoff *h)
{
    close(h->fd);
    px_params_clear(&h->have);
    px_kvlist_clear(&h->gucs);
    atomic_fetch_sub_explicit(&h->g->n, 1, memory_order_acq_rel);
    wake_waiters(px->workers, h->g, px->worker_id);
}

/* A connection handed over by another worker joins this worker's pool of its slot and goes to the
 * head of the queue (or idles). Without such a pool (freed since), or before the pool's first own
 * login gave it the ParameterStatus values its clients are sent, it is closed and its slot freed. */
static void adopt(struct proxy *px, struct handoff *h)
{
    struct px_pool *pool = NULL;

    for (struct px_list *it = px->pools.next; it != &px->pools && !px->exiting; it = it->next) {
        struct px_pool *p = px_container_of(it, struct px_pool, link);

        if (p->g == h->g && p->params_ready && !p->lane->retired) {
            pool = p;
            break;
        }
    }
    if (!pool || px_server_adopt(pool, h->fd, h->backend_pid, h->backend_key, &h->have, &h->gucs,
                                 h->created_ms) < 0)
        handoff_drop(px, h);
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
    unsigned asks;

    pthread_mutex_lock(&ws->lock);
    n = me->ninbox;
    memcpy(items, me->inbox, sizeof(items[0]) * (size_t)n);
    me->ninbox = 0;
    nmoves = me->nmoves;
    memcpy(moves, me->moves, sizeof(moves[0]) * (size_t)nmoves);
    me->nmoves = 0;
    asks = me->asks;
    me->asks = 0;
    pthread_mutex_unlock(&ws->lock);
    for (int i = 0; i < n; i++)
        px_cancel_forward(px, items[i].pid, items[i].key);
    for (int i = 0; i < nmoves; i++)
        adopt(px, &moves[i]);
    if ((asks & PX_WORKERS_RELOAD) && !px->exiting)
        (void)px_reload(px);
    if ((asks & PX_WORKERS_DRAIN) && !px->exiting)
        px_drain(px);
    if (px->exiting)
        return;
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (!pool->g)
            continue;
        if (!px_list_empty(&pool->idle) && px_gslot_other_waits(pool))
            px_server_close(px_container_of(pool->idle.prev, struct px_server, link),
                            "closed to make room for another worker's queue under the lane's size");
        if (pool->nwaiting)
            px_pool_refill(pool);
        px_gslot_publish(pool);
    }
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
    uv_async_t *a;

    if (!ws)
        return;
    pthread_mutex_lock(&ws->lock);
    a = ws->w[px->worker_id].async;
    ws->w[px->worker_id].async = NULL;
    ws->w[px->worker_id].ninbox = 0;
    pthread_mutex_unlock(&ws->lock);
    atomic_store_explicit(&ws->w[px->worker_id].running, 0, memory_order_relaxed);
    if (a)
        uv_close((uv_handle_t *)a, on_async_closed);
}

void px_workers_ask(struct proxy *px, unsigned what)
{
    struct px_workers *ws = px->workers;

    if (!ws)
        return;
    pthread_mutex_lock(&ws->lock);
    for (int i = 0; i < ws->n; i++)
        if (i != px->worker_id && ws->w[i].async) {
            ws->w[i].asks |= what;
            uv_async_send(ws->w[i].async);
        }
    pthread_mutex_unlock(&ws->lock);
}

void px_worker_stamp_key(const struct proxy *px, uint32_t *cancel_pid)
{
    if (px->workers)
        *cancel_pid = (*cancel_pid & ~PX_WORKER_MASK) | (uint32_t)px->worker_id;
}

int px_worker_route_cancel(struct proxy *px, uint32_t pid, uint32_t key)
{
    struct px_workers *ws = px->workers;
    int id = (int)(pid & PX_WORKER_MASK), sent = 0;

    if (!ws || id == px->worker_id)
        return 0;
    pthread_mutex_lock(&ws->lock);
    if (id < ws->n && ws->w[id].async && ws->w[id].ninbox < INBOX_MAX) {
        ws->w[id].inbox[ws->w[id].ninbox++] = (struct inbox_item){ .pid = pid, .key = key };
        uv_async_send(ws->w[id].async);
        sent = 1;
    }
    pthread_mutex_unlock(&ws->lock);
    if (!sent) {
        px->cancels_dropped++;
        px_debug("cancel request for worker %d, which %s: dropped", id,
                 id < ws->n ? "is not running or has too many pending" : "does not exist");
    }
    return 1;
}

int px_gslot_attach(struct proxy *px, struct px_pool *pool)
{
    struct px_workers *ws = px->workers;
    struct px_gslot *g;
    char *key;
    int len;

    pool->g = NULL;
    if (!ws)
        return 0;
    len = snprintf(NULL, 0, "%s\x1f%s\x1f%s\x1f%s", pool->lane->conf->name, pool->ep->server->name,
                   pool->database, pool->user);
    if (len < 0 || !(key = malloc((size_t)len + 1)))
        return -1;
    snprintf(key, (size_t)len + 1, "%s\x1f%s\x1f%s\x1f%s", pool->lane->conf->name, pool->ep->server->name,
             pool->database, pool->user);
    pthread_mutex_lock(&ws->lock);
    for (g = ws->slots; g; g = g->next)
        if (strcmp(g->key, key) == 0)
            break;
    if (!g && (g = calloc(1, sizeof(*g)))) {
        g->key = key;
        key = NULL;
        g->next = ws->slots;
        ws->slots = g;
    }
    pthread_mutex_unlock(&ws->lock);
    free(key);
    if (!g)
        return -1;
    pool->g = g;
    return 0;
}

void px_gslot_detach(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);

    if (pool->g)
        atomic_store_explicit(&pool->g->since[px->worker_id], 0, memory_order_release);
    pool->g = NULL;
}

int px_gslot_count(const struct px_pool *pool)
{
    return atomic_load_explicit(&pool->g->n, memory_order_relaxed);
}

int px_gslot_take(struct px_pool *pool, int cap)
{
    int n = atomic_load_explicit(&pool->g->n, memory_order_relaxed);

    while (n < cap)
        if (atomic_compare_exchange_weak_explicit(&pool->g->n, &n, n + 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return 1;
    return 0;
}

void px_gslot_put(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);

    atomic_fetch_sub_explicit(&pool->g->n, 1, memory_order_acq_rel);
    wake_waiters(px->workers, pool->g, px->worker_id);
}

static uint64_t head_since(const struct px_pool *pool)
{
    uint64_t t = px_container_of(pool->waiting.next, struct px_client, wait_link)->wait_start_ms;

    return t ? t : 1;
}

void px_gslot_publish(struct px_pool *pool)
{
    struct proxy *px;
    uint64_t since = 0, was;

    if (!pool->g)
        return;
    px = uv_loop_get_data(pool->queue_timer.loop);
    if (pool->nwaiting > 0 && px_pool_wants_room(pool))
        since = head_since(pool);
    was = atomic_exchange_explicit(&pool->g->since[px->worker_id], since, memory_order_acq_rel);
    if (since && !was) {
        /* Newly waiting for room: the workers holding connections of this slot look whether they
         * should give one up (on_wake). */
        for (int i = 0; i < px->workers->n; i++)
            if (i != px->worker_id)
                wake(px->workers, i);
    }
}

/* The worker whose queue for pool's slot waited longest, if longer than pool's own head; -1 if none. */
static int oldest_other(const struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    uint64_t best = px_list_empty(&pool->waiting) ? UINT64_MAX : head_since(pool);
    int who = -1;

    for (int i = 0; i < px->workers->n; i++) {
        uint64_t t;

        if (i == px->worker_id)
            continue;
        t = atomic_load_explicit(&pool->g->since[i], memory_order_acquire);
        if (t && t < best) {
            best = t;
            who = i;
        }
    }
    return who;
}

int px_gslot_other_waits(const struct px_pool *pool)
{
    return oldest_other(pool) >= 0;
}

int px_gslot_give(struct px_server *sv)
{
    struct px_pool *pool = sv->pool;
    struct proxy *px = sv->conn.px;
    struct px_workers *ws = px->workers;
    struct handoff h = { 0 };
    uv_os_fd_t fd;
    int to = oldest_other(pool), ok = 0;

    if (to < 0)
        return 0;
    /* Only a quiet plaintext connection moves: nothing buffered or in flight, no statement of this
     * worker's registry prepared on it, no cancel pending. Any other is closed (its slot freed). */
    if (sv->conn.tls || sv->ncached > 0 || sv->ncancels > 0 || sv->dirty || sv->conn.writing || sv->conn.wreq ||
        sv->conn.in.start != sv->conn.in.len || sv->conn.in.remain || sv->conn.h.stream.write_queue_size > 0 || sv->prepq.n > 0 ||
        uv_fileno(&sv->conn.h.handle, &fd) < 0 || (h.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        px_server_close(sv, "given up to another worker's queue that waited longer");
        return 1;
    }
    h.g = pool->g;
    h.backend_pid = sv->backend_pid;
    h.backend_key = sv->backend_key;
    h.created_ms = sv->created_ms;
    pthread_mutex_lock(&ws->lock);
    if (ws->w[to].async && ws->w[to].nmoves < INBOX_MAX) {
        h.have = sv->have;
        h.gucs = sv->gucs;
        ws->w[to].moves[ws->w[to].nmoves++] = h;
        uv_async_send(ws->w[to].async);
        ok = 1;
    }
    pthread_mutex_unlock(&ws->lock);
    if (!ok) {
        close(h.fd);
        px_server_close(sv, "given up to another worker's queue that waited longer");
        return 1;
    }
    /* The session state and the slot now belong to the receiver. */
    memset(&sv->have, 0, sizeof(sv->have));
    memset(&sv->gucs, 0, sizeof(sv->gucs));
    sv->moved = 1;
    px_server_close(sv, "handed over to another worker's queue that waited longer");
    return 1;
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

/* Called by the owning worker (maintenance tick, SHOW WORKERS): its current counts. */
static void sync_counts(const struct proxy *px)
{
    struct px_worker *me = &px->workers->w[px->worker_id];
    int64_t servers = 0;

    for (const struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        const struct px_pool *pool = px_container_of(it, struct px_pool, link);

        servers += pool->nidle + pool->nbusy;
    }
    atomic_store_explicit(&me->clients, px->nclients, memory_order_relaxed);
    atomic_store_explicit(&me->servers, servers, memory_order_relaxed);
}

void px_workers_tick(struct proxy *px)
{
    if (!px->workers)
        return;
    sync_counts(px);
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next)
        px_gslot_publish(px_container_of(it, struct px_pool, link));
}

int px_workers_rows(const struct proxy *px, struct px_worker_row *rows, int max)
{
    int n = 0;

    if (!px->workers) {
        int64_t servers = 0;

        for (const struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
            const struct px_pool *pool = px_container_of(it, struct px_pool, link);

            servers += pool->nidle + pool->nbusy;
        }
        if (max < 1)
            return 0;
        rows[0] = (struct px_worker_row){ .id = 0, .running = 1, .clients = px->nclients, .servers = servers,
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
        };
    }
    return n;
}
