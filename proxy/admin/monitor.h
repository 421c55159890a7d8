/*
 * proxy/admin/monitor.h — shared by the lock monitor (monitor.c, monitor_attr.c), the contention
 * guard (proxy/guard.c), the metrics endpoint and the admin console: one lock-wait edge of the wait
 * graph, attributed to pglane's lanes and clients where pglane owns the backend.
 */
#ifndef PGLANE_PROXY_MONITOR_H
#define PGLANE_PROXY_MONITOR_H

#include "proxy/proxy.h"

#define PX_MON_TEXT 160

struct px_block_side {
    uint32_t pid;
    int owned;                        /* a backend of one of pglane's server connections */
    int remote;                       /* owned by another worker (lane only known; never acted on here) */
    const struct px_lane *lane;       /* owned only */
    uint64_t server_id, client_id;    /* owned only; client_id 0 when no client is attached */
    uint64_t fingerprint;             /* of the client's transaction, 0 if unknown */
    int64_t running_ms;               /* the client's request in progress has run this long (pglane's clock) */
    uint64_t tx_us;                   /* start of the client's transaction in progress (identifies it) */
    char addr[64], user[64], app[64]; /* client's, or pg_stat_activity's for external backends */
    char state[32];                   /* pg_stat_activity.state */
    char query[PX_MON_TEXT];          /* the start of pg_stat_activity.query */
};

struct px_block_edge {
    const char *server;               /* [server.NAME] */
    struct px_block_side waiter, blocker;
    char mode[32];                    /* lock mode the waiter asked for */
    char relation[64];                /* the relation, or the lock type */
    int64_t wait_ms;
    int blocker_waits;                /* the blocker itself waits on a lock: not a chain head */
};

/* Fills side from pid: pglane's server connection on that server with that backend pid, if any. */
void px_monitor_attribute(struct proxy *px, const struct conf_server *server, struct px_block_side *side);
/* One row of the monitor's sample query (a libpq PGresult, monitor.c's sample_sql) into an edge of
 * server, attributed to pglane's lanes and clients (cs: server's configuration, NULL if gone). */
struct pg_result;
void px_monitor_row_to_edge(struct proxy *px, const char *server, const struct conf_server *cs, struct pg_result *r,
                            int i, struct px_block_edge *e);

/* How the caller of px_guard_check cancels a blocker's request itself (the monitor: pg_cancel_backend()
 * on its own connection, with sv held as for a CancelRequest): 0 if it did, -1 to send a CancelRequest. */
typedef int (*px_guard_cancel_cb)(void *arg, struct px_server *sv);
/* Contention guard: called after each sample of one server with its edges; cancel may be NULL. */
void px_guard_check(struct proxy *px, const struct conf_server *server, const struct px_block_edge *edges, int n,
                    px_guard_cancel_cb cancel, void *arg);
/* Guard actions so far, per (preemptible lane, protected lane, action, fingerprint). */
struct px_guard_count {
    const struct px_lane *lane, *protected_lane;
    enum px_guard_action action;
    uint64_t fingerprint;
    uint64_t count;
    uint64_t last_ms;
};
typedef int (*px_guard_cb)(const struct px_guard_count *g, void *arg);
void px_guard_foreach(struct proxy *px, px_guard_cb cb, void *arg);
void px_guard_free(struct proxy *px);
/* Adds the counts of actions against lane on behalf of prot, per action, to n. */
void px_guard_sum(struct proxy *px, const struct px_lane *lane, const struct px_lane *prot, uint64_t *n);
/* The Prometheus text of every counter (metrics_text.c). */
void px_metrics_render(struct proxy *px, struct proto_buf *b);
/* Per blocker fingerprint: what it did last (advice for SHOW GUARD) and its quarantine. */
struct px_guard_offender {
    uint64_t fingerprint;
    const struct px_lane *lane, *protected_lane;   /* the blocker's lane, the lane it blocked */
    uint64_t waiter_fingerprint;      /* the protected statement shape it blocked */
    char relation[64], mode[32];      /* the lock the protected statement waited for */
    char blocker_state[32];
    char blocker_query[PX_MON_TEXT], waiter_query[PX_MON_TEXT];   /* normalized, as they ran */
    char shape[256];                  /* normalized first statement of the blocker's transactions */
    const char *pattern, *fix;        /* classification and its fix class */
    uint64_t actions;                 /* transactions cancelled or terminated so far */
    uint64_t last_client, last_tx_us; /* the transaction acted on last: counted once */
    uint64_t last_ms;
    uint64_t since_ms, until_ms;      /* quarantined while until_ms != 0 */
    int quarantine_count;             /* actions within the window when it entered quarantine */
};
typedef int (*px_offender_cb)(const struct px_guard_offender *o, void *arg);
void px_guard_offenders(struct proxy *px, px_offender_cb cb, void *arg);
const struct px_guard_offender *px_guard_advice(struct proxy *px, uint64_t fp);
/* Ends quarantines whose time is over (logged). */
void px_guard_expire(struct proxy *px);
/* Ends the quarantine of fp (or all); returns how many ended. */
int px_guard_release(struct proxy *px, uint64_t fp, int all);
/* Several workers: quarantines begun or ended in another worker are copied here (PX_WORKERS_QUARANTINE). */
void px_guard_news(struct proxy *px);
int px_guard_quarantined_count(struct proxy *px);
/* Monitor samples so far: periodic ones, and those a protected statement past guard_wait triggered. */
void px_monitor_samples(struct proxy *px, uint64_t *periodic, uint64_t *triggered);
const char *px_guard_action_name(enum px_guard_action a);

#endif
