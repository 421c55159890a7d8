/*
 * proxy/workers.h — several event loops in one process (workers = N, proxy/workers.c). Each worker
 * thread runs its own `struct proxy`: its own loop, listeners (SO_REUSEPORT), clients, pools and
 * server connections. What must hold across them lives in one shared `struct px_workers`:
 *   - a lane's size: the server connections of a (lane, server, database, user) pool are counted in
 *     one global slot (struct px_gslot) that every worker's pool of that key takes from;
 *   - FIFO order between workers: a worker whose queue waits for room publishes when its oldest
 *     waiter arrived, and a worker releasing a connection gives it up (closes it) when another
 *     worker's waiter is older than its own;
 *   - cancel requests: the low bits of a cancel key name the worker that issued it; another worker
 *     hands the request to that one;
 *   - SHOW WORKERS: per-worker counters;
 *   - gathers: SHOW CLIENTS, SHOW SERVERS and /metrics collect every worker's part, each rendered in its
 *     own worker's thread.
 * With workers = 1 (the default) none of this exists: px->workers is NULL and pools have no slot.
 * Included by proxy/proxy.h.
 */
#ifndef PGLANE_PROXY_WORKERS_H
#define PGLANE_PROXY_WORKERS_H

#include <stdint.h>

struct proxy;
struct px_pool;
struct px_workers;

#define PX_WORKER_MASK 63u         /* the worker id in a cancel key's process id (CONF_WORKERS_MAX 64) */

/* Made by main.c before the threads start, freed after they all ended. */
struct px_workers *px_workers_new(int n);
void px_workers_free(struct px_workers *w);
int px_workers_count(const struct px_workers *w);
/* The next place in the process-wide order of queue arrivals (from 1): a queue's head publishes it,
 * so that the waiter that arrived first is served first whatever its worker. */
uint64_t px_workers_next_seq(struct proxy *px);

/* A worker's loop is ready (its async handle is made here) / is stopping (closes it; nothing is
 * delivered to it afterwards). */
int px_worker_attach(struct proxy *px);
void px_worker_detach(struct proxy *px);

/* The admin console's RELOAD, SHUTDOWN, PAUSE and RESUME on one worker: the others do the same (each reloads the
 * file itself; a reload that fails in one keeps that worker's previous configuration). */
#define PX_WORKERS_RELOAD 1u
#define PX_WORKERS_DRAIN 2u
#define PX_WORKERS_PAUSE 3u        /* arg: the lane, "" = every lane */
#define PX_WORKERS_RESUME 4u
#define PX_WORKERS_SAMPLE 5u       /* arg: the server whose lock graph to sample now (a guard_wait passed) */
#define PX_WORKERS_AUTHQ 6u        /* an auth_query answer was published (proxy/auth_query.c) */
#define PX_WORKERS_HEALTH 7u       /* a server's health check was published (proxy/health.c) */
#define PX_WORKERS_GRAPH 8u        /* a server's lock graph sample was published (proxy/admin/monitor.c) */
#define PX_WORKERS_QUARANTINE 9u   /* a statement shape was quarantined or released (proxy/guard.c) */
#define PX_WORKERS_ADAPT 10u       /* worker 0 changed a lane's effective size (proxy/adapt_lane.c) */
void px_workers_ask(struct proxy *px, unsigned what, const char *arg);
/* A tenant at tenant_max released a connection (proxy/tenant.c): every worker, this one too, looks
 * again at its queues and at the idle connections another worker's queue may take (px_workers_room,
 * after the current callback), and the room claimed for a queue head before is spent (the waiter may
 * have been passed over as its tenant was at tenant_max). */
void px_workers_tenant_room(struct proxy *px);
/* The same for worker `to` only. */
void px_workers_ask_one(struct proxy *px, int to, unsigned what, const char *arg);

/* One worker does a job for the process (health checks of a server, its lock graph samples): the
 * holder of a lease it renews each time it does it. Kept under the caller's lock. */
struct px_lease {
    int owner;                     /* the worker doing the job, -1: none */
    uint64_t renewed_ms;           /* px_now_ms() clock (monotonic ms on every worker's loop) */
};
/* Worker me, able to do the job (can) or not: 1 if it does it now (it held the lease, or takes it:
 * none held, or silent for more than lapse_ms), the lease renewed; a holder that can no longer
 * gives it up. */
int px_lease_hold(struct px_lease *l, int me, int can, uint64_t now, uint64_t lapse_ms);

/*
 * Gathers: every worker renders the same thing from its own state, in its own thread, and the asking
 * worker gets all the parts. `which` says what: a list table's DataRows (SHOW CLIENTS, SHOW SERVERS)
 * or the Prometheus text of /metrics. A worker that stops answers with nothing.
 */
#define PX_GATHER_CLIENTS 0
#define PX_GATHER_SERVERS 1
#define PX_GATHER_METRICS 2
#define PX_GATHER_LANES 3          /* SHOW LANES and SHOW STATS: per-lane records merged by the asker */
#define PX_GATHER_STATS 4
#define PX_GATHER_LANE_SERVERS 5   /* rows merged by key columns (admin_show.c's list_specs) */
#define PX_GATHER_POOLS 6
#define PX_GATHER_PGB_STATS 7
#define PX_GATHER_PGB_DATABASES 8
#define PX_GATHER_GUARD 9
#define PX_GATHER_QUARANTINE 10
#define PX_GATHER_PREPARED 11
#define PX_GATHER_QUERIES 12
#define PX_GATHER_TENANTS 13
#define PX_GATHER_STAGES 14
#define PX_GATHER_LISTS 15
#define PX_GATHER_USERS 16
#define PX_GATHER_BLOCKING 17
#define PX_GATHER_ACT_KILL_ID 18   /* console actions: each worker acts on its own clients and servers */
#define PX_GATHER_ACT_KILL 19
#define PX_GATHER_ACT_RECONNECT 20
#define PX_GATHER_ACT_MARKED 21    /* WAIT_CLOSE: the connections RECONNECT marked still open */
struct proto_buf;
/* On the asking worker once every worker answered: parts[0] is its own, then the others' by worker id
 * (n in all, empty for a worker that gave nothing), freed once done returns.
 * requester is the id given to px_workers_gather_start: the callee looks it up and drops the parts if it
 * is gone. */
typedef void (*px_gather_done_fn)(struct proxy *px, uint64_t requester, int which, const char *arg,
                                  struct proto_buf *parts, int n);
/* 1 if the gather started (done will run, possibly before this returns), 0 with one worker or without
 * memory (the caller renders alone). */
int px_workers_gather_start(struct proxy *px, int which, uint64_t requester, px_gather_done_fn done);
/* The same with an argument for what each worker renders or does (at most PX_GATHER_ARG - 1 bytes). */
#define PX_GATHER_ARG 128
int px_workers_gather_arg(struct proxy *px, int which, const char *arg, uint64_t requester, px_gather_done_fn done);
/* A console command every worker carries out (KILL, RECONNECT: PX_GATHER_ACT_*, proxy/admin): the
 * console's reads stop until done answers it (done must restart them: px_conn_read_start). 1 if started,
 * 0 with one worker (the caller acts alone). */
int px_workers_console_act(struct px_client *cl, int which, const char *arg, px_gather_done_fn done);
/* SHOW CLIENTS, SERVERS, LANES and STATS on a console with several workers: the answer waits for every
 * worker's rows (the console's reads stop meanwhile). 1 if the gather started (it answers cl), 0 with
 * one worker (the caller answers). */
struct px_client;
int px_workers_gather(struct px_client *cl, int which);

/* Cancel keys: the worker's id in the low bits of a fresh process id; a request for another worker
 * is handed to it (1) or is this worker's own (0). */
void px_worker_stamp_key(const struct proxy *px, uint32_t *cancel_pid);
int px_worker_route_cancel(struct proxy *px, uint32_t pid, uint32_t key);

/* Global lane slots (pool.c, state.c, server_login.c). px_gslot_attach gives the pool its slot
 * (pool->g; none with one worker): -1 with *over set when its key would be one more than max_pools
 * keys in the process. take: one more connection if the global count is under cap. put: a counted
 * connection closed. */
int px_gslot_attach(struct proxy *px, struct px_pool *pool, int *over);
/* The same for any named count (proxy/caps.c: max_db_connections and the like): the slot of that
 * name, made on first use; NULL with one worker or out of memory. */
struct px_gslot;
struct px_gslot *px_gslot_named(struct proxy *px, const char *name);
/* Gives back the reference px_gslot_named took (a pool or cap detached): the slot is freed once
 * nothing refers to it and it counts no connection. NULL: nothing. */
void px_gslot_unref(struct proxy *px, struct px_gslot *g);
/* Slots in the process (tests: they do not outlive their pools). */
int px_workers_slot_count(const struct px_workers *ws);
/* The (lane, server, database, user) keys of every worker's pools, each counted once (max_pools). */
int px_workers_pool_keys(const struct px_workers *ws);
int px_gslot_count_of(const struct px_gslot *g);
int px_gslot_acquire(struct px_gslot *g, int cap);
void px_gslot_release(struct proxy *px, struct px_gslot *g);
/* This worker waits for room under g since then (the queue head's wait_seq; a starved cap) or no longer does (0);
 * others_wait: the oldest queue head (its wait_seq) of another worker that has waited since before
 * `before`, 0 if none. */
void px_gslot_set_waiting(struct proxy *px, struct px_gslot *g, uint64_t since);
uint64_t px_gslot_others_wait(const struct proxy *px, const struct px_gslot *g, uint64_t before);
/* This worker is about to close an idle connection under g to make room for another worker's queue
 * head `since`: 1 if it should (recorded), 0 if another worker already did for that head within the
 * last second (several workers woken by one waiter close one connection, not one each). */
int px_gslot_claim(struct proxy *px, struct px_gslot *g, uint64_t since);
void px_gslot_detach(struct px_pool *pool);
/* pool's open connections changed (one opened, closed, adopted or moved): published for the others. */
void px_gslot_note_conns(struct px_pool *pool);
/* server_login_retry across workers: when a login of g's pools last failed (px_now_ms), 0 once one
 * worked. */
uint64_t px_gslot_login_failed(const struct px_gslot *g);
void px_gslot_set_login_failed(struct px_gslot *g, uint64_t ms);
int px_gslot_count(const struct px_pool *pool);
int px_gslot_take(struct px_pool *pool, int cap);
void px_gslot_put(struct px_pool *pool);
/* The first login of a pool of the slot in any worker: its ParameterStatus values and defaults are
 * kept (publish) for the other workers' pools of the slot, which take them (adopt: 1 if the pool has
 * them now) instead of waiting for a login of their own. */
void px_gslot_params_publish(struct px_pool *pool);
int px_gslot_params_adopt(struct px_pool *pool);
/* The arrival number (wait_seq) of pool's queue head, UINT64_MAX with nobody waiting: what a
 * waiting worker publishes, and what a worker compares with the others' (pool.c, caps.c). */
uint64_t px_gslot_head(const struct px_pool *pool);
/* Publishes whether the pool's queue waits for a connection it cannot open, and since when. */
void px_gslot_publish(struct px_pool *pool);
/* pool's idle connections move (or are closed to make room) for other workers' pools of the same
 * slot whose queue heads waited longer than this pool's (or this pool has nobody waiting): one per
 * such head that no other worker made room for yet (px_gslot_claim), oldest first. */
void px_gslot_give_idle(struct proxy *px, struct px_pool *pool);
/* server_ready with another worker's queue waiting longer: sv (without a client) moves to that
 * worker (its socket duplicated, its session state and slot with it) or, if it cannot move, is
 * closed to free its slot. 1 if sv was given up, 0 if nobody else waits longer. */
struct px_server;
int px_gslot_give(struct px_server *sv);

/* Room in a global count may have been made (a connection closed, here or in another worker) or
 * asked for (another worker's queue waits longer): this worker's pools close idle connections others
 * wait for, and its waiting queues try to connect. */
void px_workers_room(struct proxy *px);
/*
 * Which worker owns each backend pglane holds (lock monitor, proxy/admin/monitor_attr.c and the guard):
 * set when a server connection logs in or is handed over, dropped at its close by its owner. Each
 * worker's monitor samples PostgreSQL's whole lock graph but knows only its own connections; with this
 * it also knows another worker's backend (and its lane), so that a protected waiter of one worker is
 * defended against a blocker of another: the blocker's worker acts (only the owner touches a backend).
 */
void px_workers_backend_set(struct proxy *px, const char *server, uint32_t pid, const char *lane);
void px_workers_backend_drop(struct proxy *px, const char *server, uint32_t pid);
/* The worker owning backend pid of server (its lane's name into lane), or -1. */
int px_workers_backend_find(struct proxy *px, const char *server, uint32_t pid, char *lane, size_t cap);
/* Per-worker counters for SHOW WORKERS (updated by the owning worker, read by any). */
void px_worker_count_accept(struct proxy *px);
void px_worker_client_gone(struct proxy *px);
/* Clients connected to the process (max_client_conn): every worker's. */
int px_workers_clients(const struct proxy *px);
/* The maintenance tick: publishes this worker's counts and its pools' waits again. */
void px_workers_tick(struct proxy *px);
struct px_worker_row {
    int id;
    int running;
    int64_t clients, servers, accepted;
    int64_t handed_over;           /* server connections it moved to another worker */
};
/* Fills rows (up to max) for every worker; returns how many. */
int px_workers_rows(const struct proxy *px, struct px_worker_row *rows, int max);

#endif
