/*
 * proxy/replica.h — lanes with several servers (proxy/replica.c): a lane's server list, where each
 * transaction of such a lane runs (reads on an eligible replica, everything else on the lane's
 * primary), read-your-writes, and what a standby's errors tell. Included by proxy/proxy.h. The
 * servers' roles, health and lag come from proxy/health.h.
 */
#ifndef PGLANE_PROXY_REPLICA_H
#define PGLANE_PROXY_REPLICA_H

#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf.h"

struct proxy;
struct px_lane;
struct px_pool;
struct px_client;
struct px_server;
struct proto_frame;

/* What a server of a lane is for the lane's reads (SHOW LANES state). */
enum px_ep_state { PX_EP_UP, PX_EP_DOWN, PX_EP_LAGGING };

/* One server of a lane, in the order of the lane's server list. Its pools are (lane, ep, database,
 * user): one per server, the lane's size capping their sum (PX_CAP_LANE, proxy/caps.c). */
struct px_ep {
    const struct conf_server *server;  /* into the configuration in force, or at own_server once retired */
    struct conf_server own_server;     /* a retired lane's copy (zeroed while the lane is in force) */
    int index;                         /* in the lane's list */
    int unix_socket;                   /* host is a directory: connect to its .s.PGSQL.port */
    struct sockaddr_storage addr;      /* resolved when the configuration is loaded */
    void *tls_ctx;                     /* SSL_CTX towards the server (owned by the lane for eps[0]) */
    char unix_path[256];
    int state;                         /* enum px_ep_state last logged for the lane */
    uint64_t reads, writes;            /* transactions the lane sent there, by routing decision */
    uint64_t conflicts;                /* recovery conflicts it reported to the lane's clients */
};

/* Building a lane's servers (proxy/config.c). 0 or -1 (logged). */
int px_lane_eps_build(struct px_lane *l, const struct conf *c);
/* Points the lane's servers at configuration c (after a reload kept the lane). */
void px_lane_eps_point(struct px_lane *l, const struct conf *c);
/* A retired lane keeps copies of its servers; -1 when out of memory. */
int px_lane_eps_own(struct px_lane *l);
void px_lane_eps_free(struct px_lane *l);
/* Whether the lane's servers are those nl lists in configuration c (same hosts, ports, TLS), in order. */
int px_lane_eps_same(const struct px_lane *l, const struct conf *c, const struct conf_lane *nl);

/* The pool for the client's next transaction in a lane with several servers: a replica's for a
 * transaction that only reads (when one is eligible), else the primary's. May move the client to
 * the default lane (writes of a lane without a primary). NULL: see px_pool_get_error; with *refused
 * set, the client was already answered (replica_fallback = error). */
struct px_pool *px_replica_pool(struct px_client *cl, struct px_lane *lane, int *refused);
/* The first statement of a transaction in a lane with several servers (tx_start): decides
 * cl->tx_reads. held is the text of a held BEGIN (NULL: none). */
void px_replica_note_statement(struct px_client *cl, const char *sql, size_t len, const char *held, size_t held_len);
/* A read (cl->tx_reads) of a lane with replica_fallback = error while none of its replicas is
 * eligible: appends pglane's 57P03 ErrorResponse to out and returns 1; else 0. */
struct proto_buf;
int px_replica_refuse(struct px_client *cl, struct proto_buf *out);
/* An ErrorResponse from a server of a lane with several servers (whole, at the buffer's pos):
 * 25006 gets pglane's HINT, a recovery conflict is counted. 0, or -1 when the buffer cannot grow now. */
int px_replica_error(struct px_server *sv, struct proto_frame *f);
/* Read-your-writes: at the end of the client's transaction on sv (or of the session check after it),
 * asks the server for its WAL position when the transaction may have written on a read_your_writes
 * lane's primary. 1 if asked (the client waits, as for a session check), 0 if not needed. */
int px_replica_ask_lsn(struct px_server *sv, struct px_client *cl);
void px_replica_lsn_row(struct px_server *sv, const uint8_t *body, uint32_t len);
void px_replica_lsn_done(struct px_server *sv);
/* The maintenance tick: logs state changes, moves clients queued for a server that is no longer
 * the right one (a primary that went down or became a standby). */
void px_replica_tick(struct proxy *px);
/* 1 if a lane in force lists server_name among several servers (it is then health-checked). */
int px_replica_wants_server(struct proxy *px, const char *server_name);
/* The client closes: off its lane's queue. */
void px_replica_forget(struct px_client *cl);
/* The state of a lane's server for the lane's reads. */
int px_ep_state(struct proxy *px, const struct px_lane *lane, const struct px_ep *ep);
const char *px_ep_state_name(int state);
const char *px_ep_role_name(struct proxy *px, const struct px_ep *ep);
uint64_t px_lane_conflicts(const struct px_lane *lane, int ep);

#endif
