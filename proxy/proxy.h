/*
 * proxy/ — the libuv side of pglane: listeners, client and server connection state machines, pools
 * and lanes, cancel forwarding, logging and signals. This header is shared by the files of proxy/ only.
 * Focused headers beside their files declare the rest and are included here: log.h, config.h (lanes
 * and reload), route.h (the router glue), lifecycle.h (start, drain, stop), admin/admin.h (console,
 * metrics endpoint, lock monitor) and admin/stats.h (histograms, per-lane counters). The layers are
 * drawn in ARCHITECTURE.md.
 */
#ifndef PGLANE_PROXY_H
#define PGLANE_PROXY_H

#include <stdint.h>
#include <uv.h>

#include "conf/conf.h"
#include "protocol/proto.h"
#include "proxy/log.h"
#include "proxy/net/stream.h"
#include "proxy/net/tls.h"
#include "proxy/net/sock.h"
#include "proxy/admin/admin.h"
#include "proxy/admin/stats.h"
#include "proxy/adapt.h"
#include "proxy/config.h"
#include "proxy/replica.h"
#include "proxy/health.h"
#include "proxy/lifecycle.h"
#include "proxy/peers.h"
#include "proxy/workers.h"
#include "proxy/route.h"

#define PGLANE_VERSION "0.1.0"

struct proxy;
struct px_client;
struct px_server;
struct fq;
struct fq_tenant;

/* ---- clocks (proxy/util.c) ---- */
uint64_t px_now_ms(struct proxy *px);   /* the event loop's cached time, in milliseconds */
uint64_t px_now_us(void);               /* a monotonic clock, in microseconds */

/* A growing array: *arr (elem bytes each) doubled from `first` slots when *cap are in use; 0, or -1
 * (*arr and *cap unchanged) without memory. */
int px_grow(void **arr, int *cap, int first, size_t elem);

/* ---- intrusive doubly linked list ---- */
struct px_list {
    struct px_list *next, *prev;
};
void px_list_init(struct px_list *l);
void px_list_append(struct px_list *head, struct px_list *item);
void px_list_prepend(struct px_list *head, struct px_list *item);
void px_list_remove(struct px_list *item);   /* leaves item self-linked */
int px_list_empty(const struct px_list *head);
#define px_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Events of a client's or server's stream (proxy/net/stream.c), registered as its px_stream_ops. */
void px_client_on_read(struct px_client *cl);
void px_client_on_eof(struct px_client *cl, int status);
void px_client_on_sent(struct px_client *cl);
void px_client_free(struct px_client *cl);
void px_server_on_read(struct px_server *sv);
void px_server_on_eof(struct px_server *sv, int status);
void px_server_on_sent(struct px_server *sv);
void px_server_on_tls_ready(struct px_server *sv);
void px_server_free(struct px_server *sv);

/* ---- tracked session parameters ---- */
enum px_param {
    PX_P_CLIENT_ENCODING, PX_P_DATESTYLE, PX_P_TIMEZONE, PX_P_INTERVALSTYLE,
    PX_P_APPLICATION_NAME, PX_P_EXTRA_FLOAT_DIGITS, PX_P_SEARCH_PATH, PX_P_COUNT
};
int px_param_find(const char *name);    /* index, or -1 if not tracked */
const char *px_param_name(int i);
int px_param_reported(int i);           /* PostgreSQL sends ParameterStatus for it */
struct px_params {
    char *v[PX_P_COUNT];
};
void px_params_set(struct px_params *p, int i, const char *value);
void px_params_clear(struct px_params *p);
/* A text value for pglane's own SQL that reads the same whatever the connection's client_encoding and
 * standard_conforming_strings: 'v' (quotes doubled) when it is ASCII without a backslash, else
 * convert_from(decode('<hex>','hex'),'<encoding>'), encoding being the one its bytes are in. */
void px_put_text(struct proto_buf *q, const char *v, size_t n, const char *encoding);
/* The client_encoding a client's values are in: its own, or its pool's default. */
const char *px_client_encoding(const struct px_client *cl);

/* ---- pools and lanes (proxy/pool.c) ---- */

struct px_kv {
    char *name, *value;
};
/* A list of settings (name, value): a client's startup parameters, a server's startup GUCs. */
struct px_kvlist {
    struct px_kv *v;
    int n;
};
int px_kvlist_set(struct px_kvlist *l, const char *name, const char *value);   /* 0 or -1 */
struct px_kv *px_kvlist_find(const struct px_kvlist *l, const char *name);     /* case-insensitive */
void px_kvlist_remove(struct px_kvlist *l, int i);
void px_kvlist_clear(struct px_kvlist *l);
/* Startup values PostgreSQL accepted for a pool: (name, value as sent) -> value as PostgreSQL has it. */
struct px_checked {
    char *name, *value, *norm;
};
#define PX_CHECKED_MAX 256

/* A cap on server connections shared by pools (proxy/caps.c): per database (max_db_connections),
 * per user (max_user_connections), per [server.NAME] (max_connections). n counts the connections of
 * every pool that points at it, kept by px_server_set_state (proxy/state.c). */
/* PX_CAP_LANE: a lane with several servers keeps one pool per (server, database, user); the lane's
 * size caps the sum of those pools of a (database, user). Lanes with one server have none. */
enum { PX_CAP_DB, PX_CAP_USER, PX_CAP_SERVER, PX_CAP_LANE, PX_CAP_KINDS };
struct px_cap {
    struct px_cap *next;           /* in proxy.caps */
    int kind;
    char *name;
    int n;                         /* server connections (connecting to closing) under it */
    int refs;                      /* pools pointing at it */
    int nlinger;                   /* of n, closed connections whose backend's end is awaited */
    uint8_t starved;               /* a pool under it found it full with clients waiting */
    struct px_gslot *g;            /* workers > 1: the count across workers (proxy/workers.c) */
};

struct px_pool {
    struct px_list link;           /* in proxy.pools */
    struct px_cap *cap[PX_CAP_KINDS]; /* its database's, user's and server's counters (proxy/caps.c) */
    struct px_lane *lane;
    struct px_ep *ep;              /* the server of the lane its connections go to (lane->eps) */
    char *database, *user;
    const char *secret;            /* server password from the userlist (owned by the userlist), or own_secret */
    char *own_secret;              /* the secret auth_query found for the user (proxy/auth_query.c) */
    uint8_t scram_client_key[PROTO_SCRAM_KEY_LEN], scram_server_key[PROTO_SCRAM_KEY_LEN];
    int have_scram_keys;
    struct proto_scram_keycache scram_keycache;   /* a plaintext secret's keys, for the server's salt */
    struct px_list idle;           /* px_server.link */
    struct px_list busy;           /* px_server.link: active, connecting, logging in, resetting */
    struct px_list waiting;        /* px_client.wait_link, FIFO */
    int nidle, nbusy, nwaiting;
    int nconnecting;               /* of busy: connecting, in TLS, logging in or checked (px_server_set_state) */
    int nchecking;                 /* of those: running server_check_query */
    int nlinger;                   /* closed connections whose backend's end is awaited: still counted */
    struct px_kv *params;          /* ParameterStatus of the first login, sent to clients */
    int nparams;
    int params_ready;
    struct px_params defaults;     /* tracked params as a fresh server connection has them */
    struct px_checked *checked;    /* startup values a server of this pool accepted (PX_CHECKED_MAX) */
    int nchecked;
    uv_timer_t queue_timer;
    int queue_timer_on;
    uint64_t transactions, queries, wait_count;
    uint64_t wait_total_us, wait_max_us;
    uint64_t empty_since_ms;       /* no server and no client in the queue since then (0: not empty) */
    uint8_t referenced;            /* scratch of px_pool_maintain: a client points at it */
    uint64_t xact_us, query_us;    /* summed durations (PgBouncer-compatible SHOW STATS) */
    uint64_t unreachable_since_ms; /* connections fail (refused, starting up): 0 = no outage known */
    char unreachable[200];         /* the latest such failure */
    uint64_t login_failed_ms;      /* a login failed then (server_login_retry): 0 once a connection works */
    struct px_gslot *g;            /* workers > 1: the lane's count across workers (proxy/workers.c) */
};

struct px_lane {
    const struct conf_lane *conf;      /* points into the configuration in force, or at own_conf once retired */
    const struct conf_server *server;  /* likewise: into the configuration in force, or at own_server */
    struct conf_lane own_conf;         /* a retired lane's copies, so that its configuration can be */
    struct conf_server own_server;     /* freed (zeroed while the lane is in force) */
    int index;                         /* in proxy.lanes; -1 once retired by a reload */
    int size;
    int retired;                       /* dropped or changed by a reload: drains, opens nothing new */
    uint64_t route_hits;               /* transactions routed here by default_lane */
    uint64_t unnamed_hits;             /* cache_unnamed: unnamed Parses run as a cached named statement */
    int unix_socket;               /* server host is a directory: connect to its .s.PGSQL.port */
    struct sockaddr_storage addr;  /* resolved when the configuration is loaded */
    void *tls_ctx;                 /* SSL_CTX towards the server, when server_tls_mode is not disable */
    char unix_path[256];
    /* observability (proxy/admin/stats.c, proxy/admin/admin.c) */
    struct px_lane_stats stats;    /* histograms and counters; kept while the lane object lives */
    int paused;                    /* PAUSE: transactions queue, no server is handed out */
    /* The adaptive cap (proxy/adapt_lane.c): with protects, pools open and hand out connections up to
     * eff_size (between min_size and size) instead of size; use px_lane_cap. */
    int eff_size;
    struct px_adapt adapt;         /* the controller (proxy/adapt.c) */
    struct px_hist adapt_base;     /* the protected lane's tx histogram when the window began */
    const struct px_lane *adapt_of;    /* the protected lane object adapt_base was taken from */
    uint64_t adapt_last_ms;        /* the last decision */
    int adapt_windows;             /* intervals in the current window (it grows while samples are few) */
    uint64_t adapt_restarts;       /* several workers: histograms started again when the window began */
    struct fq *fq;                 /* tenants of fair queuing (proxy/tenant.c), NULL until one is seen */
    /* The lane's servers in the order of its server list (proxy/replica.c); eps[0] is `server`
     * above. A lane with one server has neps 1. */
    struct px_ep *eps;
    int neps;
    uint32_t rr;                   /* balance = round-robin: the next turn */
    int no_replica;                /* the reads' fallback is in force (logged once per change) */
    int no_primary;                /* no server of the lane is an up primary (logged once per change) */
    int last_primary;              /* the index of the server last seen as an up primary, -1 = none */
    struct px_list rq;             /* clients queued for an eligible replica (replica_fallback = queue) */
    /* backend_nice (proxy/nice.c): backends reniced and not (the first of each is logged above debug) */
    uint64_t niced, nice_failed;
};

/* The number of connections a pool of lane l may hold and hand out: its size, or the adaptive cap's
 * effective size. */
int px_lane_cap(const struct px_lane *l);
/* After the lanes were installed (start, reload): sets up or drops each lane's controller, keeping
 * the effective size within its new bounds, and (re)starts the adaptive cap's timer. */
void px_adapt_configure(struct proxy *px);
/* Several workers: worker 0's effective sizes are applied here (PX_WORKERS_ADAPT). */
void px_adapt_news(struct proxy *px);
/* At the process's end, after every worker stopped. */
void px_adapt_shared_free(void);

/* The pool of (lane, database, user), made if needed; NULL when out of memory or at max_pools
 * (px_pool_get_error says which). */
struct px_pool *px_pool_get(struct proxy *px, struct px_lane *lane, const char *database, const char *user);
/* The same for one server of the lane (lanes with several servers: proxy/replica.c). */
struct px_pool *px_pool_get_ep(struct proxy *px, struct px_lane *lane, struct px_ep *ep, const char *database,
                               const char *user);
/* SQLSTATE and message for a NULL from px_pool_get. */
void px_pool_get_error(struct proxy *px, const char **sqlstate, const char **message);
/* Finds a server for the client: attaches at once, or queues the client and opens a connection. */
void px_pool_acquire(struct px_pool *pool, struct px_client *cl);
void px_pool_cancel_wait(struct px_client *cl);
/* A server finished its work (login, transaction, reset): give it to the next waiter or make it idle. */
void px_pool_server_ready(struct px_server *sv);
/* A server connection could not be made: fail the clients that were waiting for one. */
void px_pool_server_failed(struct px_pool *pool, const uint8_t *err_msg, uint32_t err_len,
                           const char *sqlstate, const char *message);
/* A connection could not be made for a reason that passes (refused, PostgreSQL starting or shutting
 * down): the waiters stay queued while the maintenance tick tries again, and fail with message only
 * once they waited server_connect_timeout into the outage. */
void px_pool_server_unreachable(struct px_pool *pool, const char *message);
/* A login failed for good (not an outage): server_login_retry starts. */
void px_pool_login_failed(struct px_pool *pool);
/* A server connection was closed while clients wait: open another if the lane has room. */
void px_pool_refill(struct px_pool *pool);
void px_pool_maintain(struct proxy *px, uint64_t now_ms);
void px_pool_free(struct px_pool *pool);
/* The server connection of pglane that runs backend pid on server, or NULL (the lock monitor and
 * the guard name backends by pid). */
struct px_server *px_pool_find_backend(struct proxy *px, const struct conf_server *server, uint32_t pid);

/* ---- prepared statements in transaction pooling (proxy/prepared*.c) ---- */
struct px_prepq_entry {            /* one reply the server owes for a message pglane sent */
    uint8_t type;
    uint16_t flags;
    uint32_t stmt;
    uint32_t prev;                 /* cache_unnamed: the client's unnamed mapping before this message */
    uint32_t copy_ends;            /* px_server.copy_ends when it was sent */
    char *name;                    /* client statement name whose change waits for this reply */
};
struct px_prepq {                  /* ring of px_prepq_entry, oldest at head */
    struct px_prepq_entry *e;
    uint32_t head, n, cap;
};
struct px_cached {                 /* a shared statement prepared on one server connection */
    uint32_t id;
    uint64_t used;
    uint16_t pending;              /* its Parses not answered yet (one more per group that sent it again) */
    uint8_t exists;                /* the server's replies so far say it has the statement */
    uint32_t group;                /* px_server.groups when its latest Parse was sent */
    uint64_t shape;                /* its result columns as this server describes them (0: not known) */
};
#define PX_PROBE_MAX 8
/* ---- session state in transaction pooling (proxy/session.c) ---- */
enum { PX_DIRTY_RESET = 1, PX_DIRTY_CHECK = 2, PX_DIRTY_DISCARD = 4 };
/* Pin reasons: bit i of px_client.pins, the same bits as routing's ROUTE_PIN_*. */
enum {
    PX_PIN_TEMP, PX_PIN_ADVISORY, PX_PIN_CURSOR, PX_PIN_LISTEN, PX_PIN_PREPARE, PX_PIN_SEED, PX_PIN_LOAD,
    PX_PIN_REPLICATION, PX_PIN_DBLINK,
};
/* The pins of backend state that no reset undoes: a client pinned by one keeps its server connection
 * for good, and the connection is closed when the client leaves. */
#define PX_PIN_STICKY ((1u << PX_PIN_SEED) | (1u << PX_PIN_LOAD) | (1u << PX_PIN_REPLICATION) | (1u << PX_PIN_DBLINK))
const char *px_pin_name(int reason);
void px_pin_names(uint16_t pins, char *buf, size_t n);   /* "temp_table,listen" */
/* "its client left state no reset undoes (seed,load)", in buf, for a server connection's close. */
const char *px_sticky_reason(uint16_t sticky, char *buf, size_t n);
struct px_session;
struct px_check;
void px_session_learn(struct px_client *cl, const char *sql, size_t len);
void px_session_learn_raw(struct px_client *cl, const char *sql, size_t len);
void px_session_check_sql(const struct px_client *cl, struct proto_buf *q);
int px_session_check_begin(struct px_server *sv);
void px_session_check_row(struct px_server *sv, const uint8_t *body, uint32_t len);
uint16_t px_session_check_pins(const struct px_server *sv);
void px_session_check_end(struct px_server *sv, struct px_client *cl);
void px_session_check_abandon(struct px_server *sv);
const char *px_session_replay_sql(const struct px_client *cl);
/* The replay sets a role or session user: the client's messages wait until it has succeeded. */
int px_session_replay_role(const struct px_client *cl);
#define PX_MAX_CUSTOM 1024    /* custom setting names pglane follows per client */
/* px_client.unsure_at: the transaction changes the session, but only by SETs of settings that no
 * statement's reading depends on (route_set_inert): its settings are known; a later statement may
 * still note its place. */
#define PX_UNSURE_NONE UINT64_MAX
#define PX_UNSURE_UNSET(cl) ((cl)->unsure_at == 0 || (cl)->unsure_at == PX_UNSURE_NONE)
int px_session_custom_overflow(const struct px_client *cl);   /* it set more than PX_MAX_CUSTOM */
void px_session_free(struct px_client *cl);

/* ---- server connections (proxy/server*.c) ---- */
/* SV_CHECKING: idle in the pool longer than server_check_delay, it runs server_check_query before a
 * client gets it (proxy/server_check.c); a waiting client is queued meanwhile.
 * SV_CANCEL_WAIT: the client's transaction ended while a CancelRequest pglane forwarded for this
 * backend was still in flight; the connection stays out of the pool until PostgreSQL has closed the
 * cancel connection (proxy/cancel.c), so that the cancel cannot land on another client's query. */
enum px_server_state {
    SV_CONNECTING, SV_TLS, SV_LOGIN, SV_IDLE, SV_ACTIVE, SV_RESETTING, SV_CANCEL_WAIT, SV_CHECKING, SV_CLOSED
};

#define PX_SEQ_UNKNOWN UINT64_MAX  /* px_server.seq_client: some client's, of another worker */

struct px_server {
    struct px_conn conn;           /* must be first */
    enum px_server_state state;
    struct px_pool *pool;
    struct px_list link;
    struct px_client *client;      /* attached client, SV_ACTIVE */
    uv_connect_t connect_req;
    uint32_t backend_pid, backend_key;
    char tx_status;                /* from the last ReadyForQuery */
    uint8_t dirty;                 /* PX_DIRTY_* bits: what must run before anyone else gets it */
    uint8_t checking;              /* pglane's session check is in flight (proxy/session.c) */
    uint8_t check_failed;          /* ... and PostgreSQL failed it (a cancel landed on it, say) */
    uint8_t replaying;             /* a client's settings are being re-applied */
    uint8_t replay_failed;         /* ... and PostgreSQL refused them */
    uint8_t replay_wait;           /* the client's messages wait for the replay's answer */
    uint8_t restoring;             /* session pooling: the client's startup settings are being restored
                                      after a RESET (its messages wait; ParameterStatus reaches it) */
    uint8_t restore_due;           /* session pooling: a tag that may have reset settings was seen */
    uint8_t listen_seen;           /* the attached client ran LISTEN in this transaction */
    uint16_t sticky;               /* PX_PIN_STICKY bits of state on the backend that no reset undoes
                                    * (a seed, a LOAD, a replication origin or slot): closed when its
                                    * client leaves, never reused */
    uint8_t seq_write;             /* a write's CommandComplete (a column default or a trigger may
                                    * have called nextval()) since the last ReadyForQuery */
    uint64_t seq_client;           /* the client (conn.id) whose transactions may have left sequence
                                    * state (currval, lastval) on the backend; PX_SEQ_UNKNOWN: some
                                    * client's, of another worker; 0: none since the last discard */
    struct px_check *check;        /* the check's answer so far */
    uint8_t release_after_write;
    uint32_t swallow_z;            /* ReadyForQuery messages of pglane's own queries still to come */
    struct px_params have;         /* tracked params as this connection has them now */
    struct px_kvlist gucs;         /* other startup GUCs of clients that pglane set on it */
    uint8_t validating;            /* runs a client's startup values through set_config(..., true) */
    uint8_t validate_done;         /* that query's ReadyForQuery arrived */
    uint8_t sync_wait;             /* the parameter sync's ReadyForQuery is still to come */
    uint8_t sync_failed;           /* ... and it failed: the connection's state is not what pglane set */
    uint8_t *own_err;              /* the ErrorResponse of a failed validation or sync (malloc'd) */
    uint32_t own_err_len;
    uint64_t unnamed_owner;        /* client (conn.id) whose unnamed statement the server holds, 0 = none known */
    uint8_t unnamed_ddl;           /* cache_unnamed: DDL ran in the open transaction (nothing cached till it ends) */
    uint8_t named_ddl;             /* DDL that may change result columns ran in the open transaction */
    struct proto_scram_client *scram;
    uint64_t created_ms, idle_since_ms;
    struct px_prepq prepq;         /* replies owed while prepared statements are in play */
    uint32_t copy_ends;            /* CopyDone and CopyFail messages sent through the response queue */
    uint8_t prep_copy_in;          /* the server reads COPY data: a Sync sent now gets no reply */
    struct px_cached *cached;      /* shared statements prepared on this connection */
    int ncached, capcached;
    uint64_t tick;
    uint32_t groups;               /* requests (Sync, Query, FunctionCall) the mapping has forwarded */
    /* Result-shape probe (proxy/prepared.c, px_prep_probe): the client's messages wait while pglane
     * prepares and describes statements here, to compare their result columns with the ones the
     * client was told. probe_ids: what was asked (probe_parsed: with a Parse); probe_got: answers. */
    uint8_t shape_wait;
    uint8_t nprobe, probe_got, probe_failed;
    uint8_t probe_skip;            /* ReadyForQuery of pglane's own queries sent before the probe */
    uint8_t probe_z;               /* ... and the probe's own still to come */
    uint8_t probe_off;             /* a probe failed: none again until the client's bytes have gone */
    uint8_t probe_parsed[PX_PROBE_MAX];
    uint32_t probe_ids[PX_PROBE_MAX];
    uint64_t probe_shapes[PX_PROBE_MAX];
    /* contention guard (proxy/guard.c) */
    const struct px_lane *guard_for;   /* pglane cancelled this backend to protect that lane: the next
                                          ErrorResponse says so (cleared at ReadyForQuery) */
    /* cancels forwarded to this backend (proxy/cancel.c) */
    struct px_list cancels;        /* cancel connections still in flight */
    int ncancels;
    uint8_t cancel_expired;        /* one did not complete in time: never reuse this connection */
    uint8_t fatal_relayed;         /* the server sent the client its own FATAL: it closes next */
    uint8_t reconnect;             /* admin RECONNECT: close instead of reusing once released */
    uint8_t moved;                 /* handed over to another worker: its slot went with it */
    uint8_t fresh;                 /* just logged in, or handed over from another worker: serves its
                                      pool's queue first (px_pool_server_ready) */
    /* Closed, its backend's end awaited (px_conn_linger) before the counts it holds (its pool's size,
     * the caps, with several workers the global slot) are given back; on px->lingering by `link`
     * meanwhile (proxy/server_login.c). */
    uint8_t lingering;
    uint64_t linger_until_ms;
    struct px_gslot *linger_g;
    struct px_cap *linger_caps[PX_CAP_KINDS];   /* each with a reference held */
    uint64_t check_start_ms;       /* SV_CHECKING since then */
    struct fq_tenant *tenant;      /* fair queuing: the tenant charged for holding it (proxy/tenant.c) */
    uint64_t tenant_since_us;      /* ... since then */
    /* read_your_writes (proxy/replica.c) */
    uint8_t ryw_wait;              /* pglane asked for the WAL position after the client's write */
    uint64_t ryw_lsn;              /* ... and the answer (0 until it came) */
};

struct px_server *px_server_connect(struct px_pool *pool);
/* workers > 1 (proxy/workers.c): an idle, logged-in server connection another worker handed over
 * (fd, its backend's key, its session state, taken over) joins pool and is made ready. 0, or -1 with
 * nothing taken. */
int px_server_adopt(struct px_pool *pool, int fd, uint32_t backend_pid, uint32_t backend_key,
                    struct px_params *have, struct px_kvlist *gucs, uint64_t created_ms, int seq_used);
void px_server_attach(struct px_server *sv, struct px_client *cl);
void px_server_close(struct px_server *sv, const char *reason);
/* Closed server connections still awaiting their backend's end (workers > 1, px_server_close): those
 * past their time, or all (pglane exiting), are closed now. */
void px_server_linger_sweep(struct proxy *px, uint64_t now_ms, int all);
/* Forward what the server has ready to the attached client. */
void px_server_pump_client(struct px_server *sv);
/* Continues an attach after the client's startup values were checked. */
void px_server_attach_continue(struct px_server *sv, struct px_client *cl);
/* Replaces the whole message f (at sv's b->pos) by nb. 0, or -1 when the buffer cannot grow now. */
int px_server_replace_frame(struct px_server *sv, struct proto_frame *f, const struct proto_buf *nb);
/* The attached client went away; clean = no transaction or request left open on the server. */
void px_server_client_gone(struct px_server *sv, int clean, int running);
/* The attached client's transaction ended: hand the server back (after the write in flight). */
void px_server_detach(struct px_server *sv);
/* A server without a client goes back to its pool: held while a cancel is in flight (SV_CANCEL_WAIT),
 * closed if a cancel expired, reset if a client changed session state, else ready. */
void px_server_recycle(struct px_server *sv);
/* Drops pglane's prepared statements on sv (a client-less connection about to move to another
 * worker, whose registry does not know them): DEALLOCATE ALL, sv resetting until its ReadyForQuery,
 * when it is ready again (px_pool_server_ready). 0, or -1 if it could not be sent (close sv). */
int px_server_drop_statements(struct px_server *sv);

struct px_cstmt;
int px_prep_needed(const struct px_client *cl);
int px_prep_is_deallocate(const uint8_t *sql, size_t len);
/* Whether a Bind (whole names at least) binds a statement "DEALLOCATE name": one that changes the
 * client's names when it runs (client_scan.c holds what is pipelined behind it). */
int px_prep_binds_deallocate(struct px_client *cl, const struct proto_frame *f);
/* proto_parse_fe_parse of the whole Parse message f the client's scan is at, done once per message
 * (proxy/client_scan.c): 0 with *out set, or -1. */
int px_client_parse(struct px_client *cl, const struct proto_frame *f, struct proto_fe_parse *out);
/* cache_unnamed (proxy/prepared_unnamed.c): while scanning a whole client message, 1 if its batch must
 * go through the prepared-statement mapping for the client's unnamed statement; notes DDL and
 * session changes that retire the cached unnamed statements. */
int px_prep_unnamed_scan(struct px_client *cl, const struct proto_frame *f);
/* A server's CommandComplete tag: DDL or a session change seen there retires cached unnamed statements. */
void px_prep_unnamed_on_tag(struct px_server *sv, const char *tag);
/* ReadyForQuery: a transaction that ran DDL ended (committed or not): cached unnamed statements retire. */
void px_prep_unnamed_tx_end(struct px_server *sv);
/* A statement that may change the result columns of statements prepared before it (ALTER, DROP, CREATE
 * OR REPLACE) was seen: a client's Parse from now on gets a shared statement of its own, prepared
 * afresh on each server connection (proxy/prepared_registry.c; also the admin console's SCHEMA
 * CHANGED). Any thread. */
void px_prep_ddl_seen(void);
uint32_t px_prep_ddl_epoch(void);
/* The query text of a client's named statement (transaction pooling), or NULL. */
const char *px_prep_statement_text(struct px_client *cl, const char *name, size_t *len);
int px_prep_answer_locally(struct px_client *cl);
int px_prep_forward(struct px_client *cl);
int px_prep_drain(struct px_server *sv);
int px_prep_head_is_synth(struct px_server *sv);
int px_prep_swallows(struct px_server *sv, uint8_t type);
/* Whether the mapping reads this reply whole (a statement's description: its columns are kept). */
int px_prep_reads_whole(struct px_server *sv, uint8_t type);
void px_prep_on_reply(struct px_server *sv, const struct proto_frame *f);
/* The server's 42P05 for a name the client re-prepared is made to name the client's statement (f at
 * sv's b->pos). 0, or -1 when the buffer cannot grow now (retry after the write in flight). */
int px_prep_rewrite_error(struct px_server *sv, struct proto_frame *f);
/* Before the client's scanned bytes go to its server: 1 if they must wait for a result-shape probe
 * (sent now, behind pglane's own queries in flight), 0 to forward them, -1 if it cannot be sent. */
int px_prep_probe(struct px_client *cl);
/* A reply to the probe (swallowed), and the probe's end (its last ReadyForQuery: probe_z reached 0). */
void px_prep_probe_reply(struct px_server *sv, const struct proto_frame *f);
void px_prep_probe_done(struct px_server *sv);
void px_prep_client_forget_all(struct px_client *cl);
void px_prep_client_free(struct px_client *cl);
void px_prep_server_forget_all(struct px_server *sv);
void px_prep_server_free(struct px_server *sv);
/* The server's response queue of the prepared-statement mapping is abandoned (its server died before
 * answering): the changes to the client's statement names made when the messages were sent are undone,
 * latest first, so that the kept messages can be sent again. */
void px_prep_undo_sent(struct px_server *sv);
void px_prep_registry_free(struct proxy *px);
/* At the process's end, after every worker stopped: the statements accepted in any worker are freed. */
void px_prep_shared_free(void);

/* ---- reply accounting (proxy/flow.c) ---- */
struct px_flow_run {               /* n consecutive client messages of one type */
    uint8_t type;
    uint32_t n;
};
struct px_flow {                   /* the client's forwarded messages the server has not answered yet */
    struct px_flow_run *e;         /* runs e[head .. head + n) */
    uint32_t head, n, cap;
    uint64_t pushed, popped;       /* messages */
    uint64_t raw_mark;             /* messages up to this count were forwarded as they came */
    uint8_t copy_in;               /* the server reads COPY data for the head message */
    uint8_t skipping;              /* an extended-protocol error: the server skips to the next Sync */
};
struct px_client;
/* A message the client's scan passed on (not Terminate, not a held BEGIN). 0 or -1 (out of memory). */
int px_flow_push(struct px_client *cl, uint8_t type);

/* A change of the client's unnamed statement (proxy/unnamed.c), by the message flow counts next. */
struct px_unnamed_change {
    uint64_t ord;                  /* the message's place: flow.pushed once it is pushed */
    uint8_t kind;                  /* PX_UNNAMED_PARSE, _CLOSE, _QUERY */
    uint8_t same;                  /* a Parse of the settled text, noted with nothing unsettled */
    uint8_t held;                  /* a Parse: its server held the client's statement when it was
                                    * forwarded, which a skip of it leaves so (px_unnamed_parse_sent) */
    uint8_t *text;                 /* a Parse's body after the name (NULL when same) */
    uint32_t len;
};
#define PX_UNNAMED_PARSE 1
#define PX_UNNAMED_CLOSE 2
#define PX_UNNAMED_QUERY 3
#define PX_UNNAMED_DONE 0          /* how messages were settled: carried out */
#define PX_UNNAMED_FAILED 1        /* its own error */
#define PX_UNNAMED_SKIPPED 2       /* skipped after an earlier error, or never answered */
/* Notes a change by the message the scan pushes next. 0 or -1 (out of memory). */
int px_unnamed_note(struct px_client *cl, uint8_t kind, const uint8_t *text, uint32_t len);
/* The messages up to place `upto` (or from `from` to `upto`) were settled `how` (proxy/flow.c). */
void px_unnamed_settle(struct px_client *cl, uint64_t upto, int how);
void px_unnamed_settle_range(struct px_client *cl, uint64_t from, uint64_t upto, int how);
/* The client's unnamed statement after the messages up to place `ord`, settled or not (NULL: none). */
const uint8_t *px_unnamed_as_of(const struct px_client *cl, uint64_t ord, uint32_t *len);
/* A held BEGIN (a simple Query replayed later): none from here on, whatever is unsettled. */
void px_unnamed_forget_all(struct px_client *cl);
/* Whether the server's unnamed statement is the client's: it was made by the client's latest change
 * of it (a server connection the client changed it on before holds an older one); and making it so. */
int px_unnamed_owned(const struct px_server *sv, const struct px_client *cl);
void px_unnamed_own(struct px_server *sv, struct px_client *cl);
/* The same as of the message at place `ord` being forwarded: changes noted behind it (pipelined in
 * the same write, scanned before it is forwarded) do not count. */
int px_unnamed_owned_at(const struct px_server *sv, const struct px_client *cl, uint64_t ord);
/* Whether the server's unnamed statement is the one the client's changes forwarded so far left (the
 * server made it, and it was the last the client's changes went to): changes noted by the scan and
 * not forwarded yet do not count, as the server has not seen them. */
int px_unnamed_held(const struct px_server *sv, const struct px_client *cl);
/* The client's unnamed Parses at places (from, upto] were sent to sv: each notes whether sv held the
 * client's statement just before it (the first: as sv's owner says; the rest: after the one before),
 * then sv owns it. */
void px_unnamed_parse_sent(struct px_server *sv, struct px_client *cl, uint64_t from, uint64_t upto);
void px_unnamed_free(struct px_client *cl);
/* A message of the server's reply stream that reaches the client (or that pglane synthesized). */
void px_flow_reply(struct px_client *cl, uint8_t type);
/* 1 when every forwarded message has been answered. */
int px_flow_idle(const struct px_client *cl);
/* 1 while replies are owed that the server will send: to a message up to a Sync, Flush, Query or
 * FunctionCall (PostgreSQL sends nothing of the rest when the session ends). */
int px_flow_owes_flushed(const struct px_client *cl);
int px_flow_copy_in(const struct px_client *cl);
/* The type of the oldest forwarded message still owed a reply (what the next reply answers), or 0. */
uint8_t px_flow_head_type(const struct px_client *cl);
/* Everything pushed so far was forwarded without the prepared-statement response queue. */
void px_flow_mark_raw(struct px_client *cl);
/* How many of those are still unanswered. */
uint64_t px_flow_raw_owed(const struct px_client *cl);
void px_flow_reset(struct px_client *cl);
void px_flow_free(struct px_client *cl);

/* ---- client connections (proxy/client.c) ---- */
enum px_client_state {
    CL_STARTUP, CL_AUTH_PASSWORD, CL_AUTH_SASL_INIT, CL_AUTH_SASL_FINAL, CL_LOGIN_WAIT,
    CL_IDLE, CL_WAITING, CL_ACTIVE, CL_ADMIN, CL_CLOSED
};

/*
 * How the pending transaction of a client in transaction pooling is routed (px_client_set_tx_route,
 * proxy/state.c). A bare BEGIN is answered at once and held (px_client.held_begin: its length) until
 * the next statement chooses the lane; once attached, it is replayed ahead of that statement and its
 * reply swallowed. Consulted while the client is idle; the end of a transaction forgets the lane.
 */
enum px_tx_route {
    TXR_NONE,                      /* nothing held, no lane chosen for the pending transaction */
    TXR_LANE_DECIDED,              /* a statement (or the identity) chose cl->lane */
    TXR_BEGIN_HELD,                /* a BEGIN is held: the next statement chooses the lane */
    TXR_BEGIN_HELD_DECIDED,        /* a BEGIN is held and the lane is chosen */
    TXR_BEGIN_REPLAY               /* attached: the held BEGIN leads the next forward, its reply swallowed */
};

/* px_client.admin: the console as "pglane" (pglane's tables) or as "pgbouncer" (PgBouncer's tables
 * where both have a name, for tools written for PgBouncer). */
#define PX_ADMIN_PGLANE 1
#define PX_ADMIN_PGBOUNCER 2

struct px_client {
    struct px_conn conn;           /* must be first */
    enum px_client_state state;
    struct px_list link;           /* in proxy.clients */
    struct px_list wait_link;      /* in pool.waiting */
    struct px_pool *pool;
    struct px_server *server;
    char *user, *database;
    struct px_params want;         /* tracked params as the client wants them */
    struct px_params base;         /* tracked params its startup packet set: what RESET comes back to */
    struct px_checked *startup;    /* startup settings as sent (norm: as PostgreSQL has them, once checked) */
    int nstartup;
    uint8_t validate;              /* startup values need a server's check before login completes */
    struct px_kvlist gucs;         /* checked startup GUCs that are not tracked params */
    struct proto_buf *login_notices; /* NoticeResponses of the check of its startup values */
    /* Its unnamed statement (proxy/unnamed.c): the body of the unnamed Parse after the name (NULL:
     * none) as the messages the server has settled left it, and the changes still unsettled. */
    uint8_t *unnamed;
    uint32_t unnamed_len;
    uint8_t unnamed_parsed;        /* a Parse of the unnamed statement went to the current server */
    uint8_t unnamed_dealloc;       /* the latest unnamed Parse scanned was "DEALLOCATE name" */
    uint64_t unnamed_at;           /* server connection (conn.id) its latest unnamed change went to, 0 = none */
    uint64_t unnamed_sent_at;      /* the same, kept when a later change is noted (until it is sent) */
    uint64_t unnamed_unsent_from;  /* the place of the first change noted since it last went to a server
                                    * (unnamed_at set), 0 = none */
    uint64_t pass_ord;             /* the place (flow.pushed) of the message px_prep_forward maps */
    struct px_unnamed_change *uchanges;
    uint32_t nuchanges, capuchanges;
    uint64_t fwd_ord;              /* flow.pushed when scanned bytes were last forwarded */
    /* While px_prep_forward maps them, pass_unnamed_set says an unnamed Parse (pass_unnamed: its body
     * in the input buffer), a Close of the unnamed statement or a simple Query (NULL) was mapped. */
    uint8_t pass_unnamed_set;
    const uint8_t *pass_unnamed;
    uint32_t pass_unnamed_len;
    uint8_t pass_group_open;       /* ... and a message since the last Sync, Query or FunctionCall */
    uint8_t pass_first_group;      /* ... and no Sync, Query or FunctionCall yet in this pass */
    const uint8_t *pass_rest;      /* ... and the bytes after the message being mapped (pass_rest_len) */
    uint32_t pass_rest_len;
    uint8_t fwd_unsynced;          /* `unsynced` as of the bytes forwarded so far */
    uint32_t discard;              /* bytes of an over-large message still to drop (then its error) */
    uint8_t skip_sync;             /* after that error: messages are dropped up to a Sync (answered 'I') */
    uint8_t discard_fatal;         /* ... or the connection is closed once the message is dropped */
    uint32_t cancel_pid, cancel_key;
    uint32_t pending_z;            /* Query/Sync/FunctionCall sent, ReadyForQuery not yet seen */
    uint8_t unsynced;              /* extended-protocol messages sent since the last Sync */
    uint8_t terminating;           /* Terminate received: close once the server is released */
    uint8_t terminate_sent;        /* ... and passed on to a server reading COPY data */
    uint8_t eof_terminate;         /* that Terminate stands for the end of the client's stream */
    uint8_t fatal_pending;         /* ... or for a malformed message: fatal_msg goes out before the close */
    uint32_t bad_at;               /* client_scan: where the message it refused begins */
    char *fatal_msg;               /* the 08P01 FATAL's text (client.c fatal_after_work), NULL until then */
    uint8_t auth_method;
    uint8_t ssl_done, gss_done;    /* an SSLRequest / GSSENCRequest was answered: another is refused */
    uint8_t scram_ok;              /* the client proved its SCRAM credential */
    uint8_t admin;                 /* PX_ADMIN_*: connected to a virtual admin database, else 0 */
    uint8_t names_shared;          /* user and database point into the pool's copies */
    uint8_t over_limit;            /* accepted beyond max_client_conn: refused after its startup packet */
    uint8_t md5_salt[4];
    uint8_t authq_wait;            /* waits in CL_STARTUP (reads stopped) for auth_query, on wait_link */
    uint8_t authq_done;            /* auth_query answered for this client */
    char *authq_secret;            /* ... with this secret (NULL: no such user) */
    struct proto_scram_server *scram;
    uint64_t wait_start_ms, connect_ms, tx_start_us;
    uint64_t wait_seq;             /* workers > 1: its place in the process-wide arrival order when queued */
    uint64_t idle_since_ms;        /* its latest bytes, or the latest ReadyForQuery it was sent (timeouts) */
    uint64_t fingerprint;          /* of the current transaction's first statement, 0 if not lexed */
    uint64_t identity_hash;        /* of (database, user, application_name, address) */
    int16_t route_identity;        /* px_route_client's answer, valid while route_gen matches */
    int16_t identity_rule;         /* the route behind it, -1 for the default lane */
    int16_t lane;                  /* lane index of the next or current transaction */
    unsigned route_gen;
    uint32_t held_begin;           /* length of a bare BEGIN held until the next statement routes */
    enum px_tx_route tx_route;     /* change through px_client_set_tx_route */
    uint8_t changes_session;       /* the transaction may have changed session state: check it */
    uint64_t unsure_at;            /* the place (flow) of the first statement of the transaction after
                                    * which its settings may not be known (a SET in its text, whose new
                                    * value comes with its reply; changes_session), 0 = none,
                                    * PX_UNSURE_NONE: none although changes_session (an inert SET) */
    uint16_t pins;                 /* 1 << PX_PIN_*: state that keeps the client on its server */
    uint8_t seq_tx;                /* a statement of its scanned since its last ReadyForQuery may call
                                    * nextval() (it names nextval or setval): marks its server's seq_client */
    uint64_t seq_server;           /* the server connection (conn.id) where it last may have called
                                    * nextval(): the only one whose currval/lastval are its own */
    uint16_t sticky;               /* PX_PIN_STICKY bits: it seeded random() (setseed, SET seed), ran
                                    * LOAD, took a replication origin or a temporary slot: pinned for
                                    * good, and the server connection closes when it leaves (proxy/session.c) */
    uint16_t stmt_pins;            /* ROUTE_PIN_* of the statement routing just classified */
    uint8_t scs_off;               /* its standard_conforming_strings is off: a backslash escapes a
                                    * quote in '...', which pglane's scanners do not follow */
    struct px_session *sess;       /* settings to replay on the next server, or NULL */
    uint8_t peer_family;
    uint8_t prep_batch;            /* scanned bytes hold a message naming a prepared statement */
    uint8_t shapes_known;          /* one of its statements' result columns is known (px_prep_probe) */
    uint8_t cancel_deferred;       /* a cancel came during that probe: sent again behind the request */
    /* A request (Sync group, Query) that defines or drops statement names must be answered before
     * anything behind it is scanned and mapped: a failed or skipped Parse or Close leaves the names as
     * they were (client_scan.c). names_changed: the request being scanned does; names_hold: the
     * scan waits for that answer. */
    uint8_t names_changed, names_hold;
    /* A Bind or Describe of the unnamed statement with no unnamed Parse or Close before it in its
     * group waits, unscanned, while an earlier change of the unnamed statement is unanswered (so it
     * binds the statement PostgreSQL would): group_unnamed says the group has one; unnamed_hold waits. */
    uint8_t group_unnamed, unnamed_hold;
    uint32_t fwd_remain;           /* body bytes of a message whose start was already forwarded */
    uint32_t last_bound;           /* shared statement of the latest Bind */
    uint32_t pdesc_stmt;           /* ... when that Bind made the unnamed portal of a client statement:
                                      a Describe of the portal tells its columns (learn_shape) */
    /* A portal bound from a statement "DEALLOCATE name" of one of the client's names (prepared.c
     * xdealloc_bind): the shared statement it names then, its portal name and the client's name; the
     * name goes when that portal is executed (NULL portal: none). */
    uint32_t xdealloc_stmt;
    char *xdealloc_portal;
    char *xdealloc_name;
    struct px_cstmt *stmts;        /* the client's statement names */
    int nstmts, capstmts;
    int dealloc_names;             /* of them, names of a "DEALLOCATE name" statement */
    uint8_t peer_addr[16];
    uint16_t peer_port;
    /* observability (proxy/admin/stats.c) */
    uint64_t query_start_us;       /* first message of the request in progress, 0 = none */
    uint64_t tx_begin_us;          /* first message of the transaction in progress, 0 = none */
    uint64_t guard_seen_us;        /* the request whose run past guard_wait triggered a monitor sample */
    struct px_flow flow;           /* forwarded messages still owed a reply (proxy/flow.c) */
    /* transparent retry (proxy/retry.c) */
    uint8_t *retry_buf;            /* the transaction's first message(s) as forwarded, until a reply */
    uint8_t *retry_store;          /* the memory retry_buf uses when armed, kept between transactions */
    uint32_t retry_len;            /* of retry_buf */
    uint32_t retry_cap;            /* of retry_store */
    uint8_t retry_attempts;        /* resends of the current transaction's first message(s) */
    uint8_t tx_forwarded;          /* something of the current transaction went to a server */
    uint8_t retry_begin;           /* retry_buf starts with a held BEGIN */
    uint8_t retry_mapped;          /* kept bytes went through the prepared-statement mapping */
    uint8_t retry_begin_wait;      /* retry_buf is a BEGIN request whose reply is on its way to the client */
    uint8_t retry_after_begin;     /* retry_buf's BEGIN stands for a request the client has the reply of */
    uint8_t retry_pre_unsent;      /* replies to Parse/Bind/Describe scanned, not yet forwarded to the client */
    /* fair queuing (proxy/tenant.c) */
    struct fq_tenant *tenant;      /* its tenant while it waits in pool.waiting under a tenant_key */
    char *tenant_hint;             /* the transaction's "pglane tenant=ID" hint (NULL or "" = none;
                                    * PX_TENANT_HINT_MAX bytes, allocated at the client's first hint) */
    /* replica lanes (proxy/replica.c) */
    uint8_t tx_reads;              /* the pending transaction only reads: a replica may run it */
    uint8_t tx_on_replica;         /* the current transaction runs on a replica */
    uint8_t ryw_due;               /* ... runs on a read_your_writes lane's primary, not as a read */
    int16_t tx_rule;               /* the route that chose the lane (-1: default lane), for hints */
    uint64_t ryw_lsn;              /* read_your_writes: the primary's WAL position after its last write */
    struct px_list rq_link;        /* replica_fallback = queue: in its lane's rq while no replica is eligible */
    uint64_t rq_since_ms;          /* ... since then (0: not queued) */
};

/* The client's address as text ("unix" for a unix socket), written into buf. */
const char *px_client_addr(const struct px_client *cl, char *buf, size_t n);
/* After a Terminate, closes the client once nothing more is owed to it; 1 if it was closed. */
int px_client_check_terminate(struct px_client *cl);
/* Goes on scanning what the client sent behind a request that changed statement names, once that
 * request is answered (client_scan.c). */
void px_client_resume_held(struct px_client *cl);
#define PX_CLIENT_ADDR(cl) px_client_addr((cl), (char[48]){ 0 }, 48)
void px_client_accept(struct proxy *px, uv_stream_t *listener);
/* The pool attached a server: finish login or forward queued messages. */
void px_client_attached(struct px_client *cl);
/* Server gave back the client (end of transaction) in transaction pooling. */
void px_client_detached(struct px_client *cl);
/* The attached server answered the check of the client's startup values (sv->own_err if refused). */
void px_client_checked(struct px_client *cl, struct px_server *sv);
/* The end of a transaction that leaves the client on its server (pinned or being checked). */
void px_client_tx_end(struct px_client *cl);
/* The server was given back after px_client_tx_end. */
void px_client_released(struct px_client *cl);
/* Session pooling: the client's server reported an idle ReadyForQuery. 1 if the client was closed
 * (pglane draining, or a Terminate behind its requests). */
int px_client_session_idle(struct px_client *cl);
void px_client_fail(struct px_client *cl, const char *sqlstate, const char *message);
void px_client_fail_raw(struct px_client *cl, const uint8_t *msg, uint32_t len);
/* Sends a server's ErrorResponse (body) as FATAL, then closes the client. */
void px_client_fail_error(struct px_client *cl, const uint8_t *body, uint32_t len);
void px_client_close(struct px_client *cl, const char *reason);
void px_client_pump(struct px_client *cl);
struct px_client *px_client_by_cancel_key(struct proxy *px, uint32_t pid, uint32_t key);
/* A CancelRequest for a client queued for a server connection: its request (one simple Query or one
 * extended-protocol batch ending in Sync, outside a transaction block) never runs and is answered
 * with 57014 and ReadyForQuery; an extended-protocol group without its Sync yet (a client waiting
 * for a Flush's replies) gets the 57014, and the rest of the group is dropped up to its Sync, which
 * is answered. 1 if so, 0 if it does not qualify (then nothing changed). */
int px_client_cancel_queued(struct px_client *cl);

/* ---- transparent retry (proxy/retry.c) ---- */
#define PX_RETRY_MAX (64u * 1024)  /* first message(s) larger than this are not kept: no retry */
enum px_retry_kind {
    PX_RK_FIRST,                   /* first message(s) of a transaction, client idle, transaction pooling */
    PX_RK_FIRST_MAPPED,            /* ... sent through the prepared-statement mapping (client's bytes kept) */
    PX_RK_AFTER_BEGIN,             /* the first message(s) after a request that only began the transaction */
    PX_RK_IN_TX,                   /* sent while the client was inside a transaction block */
    PX_RK_SESSION,                 /* session pooling, or a client holding its server */
    PX_RK_UNKEPT                   /* streamed or too large: bytes not kept */
};
enum px_retry_fault { PX_RF_ERROR, PX_RF_CLOSED };
enum px_retry_verdict { PX_RETRY_RELAY, PX_RETRY_AGAIN };
struct px_retry_case {
    enum px_retry_kind kind;
    int reply_seen;                /* a byte of the reply was forwarded to the client */
    int fault;                     /* enum px_retry_fault */
    const char *severity, *sqlstate;   /* of the ErrorResponse (PX_RF_ERROR) */
    int attempts, limit;           /* resends so far, lane server_retry */
};
/* 1 for an error that means the server connection is gone before running anything: FATAL/PANIC with
 * 57P01, 57P02, 57P03 or class 08. */
int px_retry_fault_error(const char *severity, const char *sqlstate);
enum px_retry_verdict px_retry_decide(const struct px_retry_case *c);
/* The text of the client's named statement `name` (NUL-terminated), or NULL. */
typedef const char *(*px_retry_stmt_text_fn)(void *ctx, const char *name, size_t *len);
/* 1 if p[0, n) is exactly one extended-protocol request that only begins a transaction: an unnamed
 * Parse of BEGIN / START TRANSACTION or a named statement of one, one Bind and one Execute of it,
 * Describes and Flushes, ending with its Sync; *sql, *sql_len the statement's text. Else 0. */
int px_retry_begin_request(const uint8_t *p, uint32_t n, px_retry_stmt_text_fn text_of, void *ctx, const char **sql,
                           size_t *sql_len);
/* 0 if p[0, n), resent after a BEGIN replayed as a simple Query, would use the unnamed statement or
 * portal of the original BEGIN request (a Bind, Describe, Close or Execute of one it did not create
 * first); else 1. */
int px_retry_after_begin_ok(const uint8_t *p, uint32_t n);
/* A reply message of type `type` is about to reach the client that has bytes kept. */
void px_retry_on_reply(struct px_client *cl, uint8_t type);
/* The server's scanned replies are being forwarded to cl: those held back by retry_pre_unsent count now. */
void px_retry_forwarding(struct px_client *cl);
void px_retry_arm(struct px_client *cl);          /* before forwarding data[start, pos) */
void px_retry_disarm(struct px_client *cl);       /* a reply byte reached the client */
void px_retry_end_tx(struct px_client *cl);       /* the transaction ended (or the client closes) */
void px_retry_free(struct px_client *cl);         /* the client is freed */
/* sv died under its client's first message(s): 1 if the client was requeued with them (sv closed). */
int px_retry_try(struct px_server *sv, int fault, const char *severity, const char *sqlstate, const char *detail);
/* Counts and logs (one line: server, backend pid) a pooled connection PostgreSQL ended. */
void px_server_lost(struct px_server *sv, enum px_lost_reason reason, const char *detail);
const char *px_lost_reason_name(int r);

/* ---- server check and client timeouts (proxy/server_check.c, proxy/client_timeout.c) ---- */
/* 1 if the idle server sv must be checked (server_check_delay) before a client gets it. */
int px_server_check_due(const struct px_server *sv, uint64_t now_ms);
/* Sends server_check_query on the idle sv (SV_CHECKING); its answer hands sv to px_pool_server_ready,
 * its failure closes it (px_server_check_failed). 0, or -1 when sv was closed at once. */
int px_server_check_start(struct px_server *sv);
/* The check failed (error, connection closed, no answer): counts, logs, closes sv, refills the pool. */
void px_server_check_failed(struct px_server *sv, const char *detail);
/* Maintenance tick: client_idle_timeout and idle_transaction_timeout. */
void px_client_timeouts(struct proxy *px, uint64_t now_ms);

/* ---- auth_query: secrets of users not in auth_file (proxy/auth_query.c) ---- */
/* Looks the secret of cl's user up (auth_user set, the user not in auth_file): 1 when the answer is
 * known now (cl->authq_secret, NULL for no such user), 0 when cl waits for it (on its wait_link; then
 * px_client_secret_ready is called, never from inside this call), -1 when no lookup can be made. */
int px_authq_lookup(struct px_client *cl);
/* The lookup for cl ended (proxy/client_auth.c): failed = 1 when it could not be made. */
void px_client_secret_ready(struct px_client *cl, int failed);
/* cl closes while it waits for a lookup. */
void px_authq_forget(struct px_client *cl);
/* Several workers: another worker published an answer (or gave up a lookup) this worker's logins
 * may wait for; they take it (or this worker looks it up). */
void px_authq_remote(struct proxy *px);
/* pool's server login uses secret (found by auth_query) unless auth_file has the user: always when
 * it comes from a login (fresh), else only when the pool has none (an older client's copy may be stale). */
void px_authq_pool_secret(struct px_pool *pool, const char *secret, int fresh);
/* Lookups answered from the cache, by a query, and failed. */
void px_authq_counts(struct proxy *px, uint64_t *hits, uint64_t *misses, uint64_t *errors);
void px_authq_stop(struct proxy *px);

/* ---- cancel requests (proxy/cancel.c) ---- */
/* Forwards a client's CancelRequest to the backend now running a request of that client; drops it
 * (debug log) when the client has no request running on a server (idle, or queued for one). */
void px_cancel_forward(struct proxy *px, uint32_t pid, uint32_t key);
/* sv is closing: its cancels in flight no longer hold anything. */
void px_cancel_server_closed(struct px_server *sv);

/* ---- global caps on server connections (proxy/caps.c) ---- */
/* Points the new pool at the counters of its database, user and server (made if needed): 0 or -1. */
int px_caps_attach(struct proxy *px, struct px_pool *pool);
void px_caps_detach(struct proxy *px, struct px_pool *pool);
/* One reference to c fewer (a pool's, or a lingering connection's): freed with the last. NULL: none. */
void px_cap_unref(struct proxy *px, struct px_cap *c);
/* The configured cap of kind k for pool (0: none). */
int px_cap_limit(const struct px_pool *pool, int k);
/* 1 if pool may open one more server connection under every cap. A full cap is first made room in by
 * closing an idle connection of another pool under it; if none is idle, the cap is marked starved. */
int px_caps_room(struct px_pool *pool);
/* A connection of pool is about to go idle or to its next client: 1 if it should rather be closed so
 * that another pool under a starved cap, whose queue waited longer, gets the room. */
int px_caps_yield(struct px_pool *pool);
/* A connection of pool closed: under a starved cap, the pool whose queue waited longest opens one. */
void px_caps_released(struct px_pool *pool);
/* workers > 1: takes one connection under every cap of pool across workers (1), or takes none and
 * marks the full one starved (0); px_caps_put gives them back when the connection closes.
 * make_room: a cap of pool is full, another worker waits under it and no worker made room for it
 * yet (px_gslot_claim): pool should close an idle connection. */
int px_caps_take(struct px_pool *pool);
void px_caps_put(struct px_pool *pool);
int px_caps_make_room(struct px_pool *pool);
/* pool opened a connection under its caps: a starved cap publishes the queue head that still waits
 * under it, or that nobody does (other workers do not make room for a queue already served). */
void px_caps_refresh(struct px_pool *pool);
/* For caps.c (proxy/pool.c): pool has clients that no connection on its way will serve and room
 * under its lane's size; opens a connection for them if every cap has room. */
int px_pool_wants_server(const struct px_pool *pool);
/* The same without the room: its clients need a connection that none on its way will serve
 * (proxy/workers.c publishes it for the other workers). */
int px_pool_wants_room(const struct px_pool *pool);
/* The server's major version from the pool's login ParameterStatus (server_version); 0 if not known. */
int px_pool_server_major(const struct px_pool *pool);
void px_pool_grow(struct px_pool *pool);

/* PAUSE / RESUME support (proxy/pool.c): hands idle servers of a resumed lane to its waiters. */
void px_pool_resume(struct px_pool *pool);

/* Statistics recorded on the forwarding path: plain counters, no allocation (the rest of
 * proxy/admin/stats.c is declared in proxy/admin/stats.h). */
/* A request of a protected lane with a guard began: the monitor looks once it runs past guard_wait. */
void px_guard_watch(struct px_client *cl);
static inline void px_stats_query_begin(struct px_client *cl)
{
    if (!cl->query_start_us) {
        cl->query_start_us = px_now_us();
        if (!cl->tx_begin_us)
            cl->tx_begin_us = cl->query_start_us;
        px_guard_watch(cl);
    }
}

/* Contention guard (proxy/guard.c). Before the server's ErrorResponse f (whole, at b->pos) reaches a
 * client that the guard cancelled, replaces it with pglane's own message. Returns 0 (f updated) or
 * -1 when the buffer cannot grow now (a write is in flight): retry after it completes. */
int px_guard_rewrite(struct px_server *sv, struct proto_frame *f);
/* A transaction of lane whose first statement has fingerprint fp: if that shape is quarantined and
 * the lane is preemptible, appends pglane's 55P03 ErrorResponse to out and returns 1; else 0. */
int px_guard_refuse(struct proxy *px, uint64_t fp, const struct px_lane *lane, struct proto_buf *out);
/* Sends a CancelRequest for the request running on sv for its client (proxy/cancel.c); sv is held
 * out of the pool until PostgreSQL has taken it. 0, or -1 when nothing runs there (sv idle, its
 * client's transaction over) or the request cannot be sent. */
int px_cancel_backend(struct proxy *px, struct px_server *sv);
/* A CancelRequest for the backend of sv, whose client left while its request ran (sv not held). */
void px_cancel_orphan(struct proxy *px, struct px_server *sv);
/* The same hold on sv for a cancel the lock monitor sends as pg_cancel_backend() (0, or -1 when
 * nothing runs there); px_cancel_signalled ends it once that ran (sent 0: it failed, and a
 * CancelRequest goes instead). */
int px_cancel_hold(struct proxy *px, struct px_server *sv);
void px_cancel_signalled(struct proxy *px, const struct conf_server *server, uint32_t pid, int sent);

/* ---- the process ---- */
struct px_scram_cache {            /* SCRAM secrets derived from plaintext auth_file passwords */
    struct px_scram_cache *next;
    char *user, *password;
    struct proto_scram_secret secret;
};

struct px_listener {
    union px_handle h;
    struct proxy *px;
    char *path;                    /* unix socket path to unlink at exit */
    struct px_file_id path_id;     /* the socket file made: unlinked only if the path is still it */
    int peer;                      /* this process's [peers] address: open until exit, for cancels */
};

/* Each defined by the file that owns it (the first is OpenSSL's SSL_CTX). */
struct ssl_ctx_st;
struct prep_registry;
struct metrics;
struct monitor;
struct guard;
struct authq;

struct proxy {
    uv_loop_t *loop;
    struct conf *conf;
    /* The whole Parse message a client's scan is at, parsed once for the scan's several looks at it
     * (px_client_parse; one scan runs at a time per worker): its client and body (NULL: none), the
     * parse's result and fields. */
    const struct px_client *scan_parse_client;
    const uint8_t *scan_parse_body;
    int scan_parse_rc;
    struct proto_fe_parse scan_parse;
    struct conf_userlist users;
    struct px_lane **lanes;        /* the lanes in force, in file order */
    int nlanes;
    struct px_lane **all_lanes;    /* every lane object ever made, including retired ones */
    int nall_lanes;
    struct px_routing *routing;
    struct px_retired *retired;    /* configurations replaced by reloads, kept only if copying a lane failed */
    unsigned config_gen;           /* bumped by every successful reload */
    uint64_t reloads, reload_failures;
    struct px_list pools;
    int npools;                    /* bounded by max_pools (with several workers: their keys, pool.c) */
    int pools_over;                /* the last pool refused was over max_pools (not out of memory) */
    struct px_cap *caps;           /* per database, user and server (proxy/caps.c) */
    struct px_list clients;
    int nclients;
    struct px_list lingering;      /* closed server connections awaiting their backend's end (workers > 1) */
    uint64_t accepted;             /* connections accepted (SHOW WORKERS) */
    /* workers > 1 (proxy/workers.c): the shared part and this worker's index; NULL and 0 otherwise. */
    struct px_workers *workers;
    int worker_id;
    struct px_listener *listeners;
    int nlisteners;
    uv_timer_t maint_timer;
    uv_timer_t adapt_timer;        /* the adaptive cap's decisions (proxy/adapt_lane.c) */
    uint64_t adapt_period_ms;      /* its period: the shortest adapt_interval; 0 = stopped */
    uv_signal_t sig_term, sig_int, sig_hup;
    struct px_scram_cache *scram_cache;
    struct ssl_ctx_st *tls_ctx;    /* SSL_CTX for clients, when tls_mode is not disable */
    struct prep_registry *prep;    /* shared prepared statements, owned by proxy/prepared_registry.c */
    uint64_t prep_parses, prep_hits, prep_evictions, prep_invalidations;
    uint64_t scram_derivations;    /* server logins that derived SCRAM keys from a plaintext password */
    uint64_t prep_unnamed_hits;    /* cache_unnamed hits, all lanes */
    struct metrics *metrics;       /* owned by proxy/admin/metrics.c */
    struct monitor *monitor;       /* owned by proxy/admin/monitor.c */
    struct health *health;         /* owned by proxy/health.c: servers' roles, health and lag */
    struct authq *authq;           /* owned by proxy/auth_query.c, made by the first lookup */
    int draining;
    int exiting;
    int exit_code;
    struct guard *guard;           /* owned by proxy/guard.c: counts of contention guard actions */
    uint64_t cancels_dropped;      /* client CancelRequests with nothing to cancel (proxy/cancel.c) */
    /* Peering (proxy/peers.c): fixed at start, a reload does not change them. */
    int peer_id;
    int so_reuseport;
    struct px_peers *peers;        /* owned by proxy/peers.c */
    /* A drain with client_drain_timeout (lifecycle.c): the listeners are closed, connected clients
     * are still served until they leave or the timer ends it; clients accepted after the drain
     * began (conn.id above drain_last_conn: on the peer listener) are refused at startup. */
    int drain_serving;
    uint64_t drain_last_conn;
    /* SHUTDOWNs another worker was asked before this one attached (px_worker_attach): this worker
     * drains that many times (at most 2) once it runs (px_lifecycle_start). */
    unsigned drains_before_start;
    uv_timer_t drain_timer;
};

#endif
