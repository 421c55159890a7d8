/*
 * proxy/admin/stages.h — per-stage timing of sampled transactions (SHOW STAGES).
 *
 * One transaction in 64 that starts while no other is sampled is timed stage by stage, with the
 * monotonic clock, on pglane's side of each hop: the client's bytes scanned and routed, the write to
 * the server, prepared-statement bookkeeping, the wait in the lane's queue, the wait for the server,
 * the server's bytes scanned, the write to the client and the server's release. Unsampled
 * transactions pay one increment and one compare per client read; the hooks below test a global
 * first, inline. Each worker keeps its own state (thread-local); SHOW STAGES sums the workers'.
 */
#ifndef PGLANE_PROXY_STAGES_H
#define PGLANE_PROXY_STAGES_H

#include <stdint.h>

enum px_stage {
    PX_ST_CLIENT_SCAN,    /* client's read callback: scan, route, acquire (writes and prepared excluded) */
    PX_ST_SERVER_WRITE,   /* forwarding the client's bytes to the server (the write system call) */
    PX_ST_PREPARED,       /* prepared-statement mapping, local answers and the response queue's drain */
    PX_ST_QUEUE,          /* waiting in the lane's queue for a server connection */
    PX_ST_SERVER,         /* from the write to the server to the server's reply being read */
    PX_ST_SERVER_SCAN,    /* server's read callback: scan, replies bookkeeping, statistics */
    PX_ST_CLIENT_WRITE,   /* forwarding the server's bytes to the client */
    PX_ST_RELEASE,        /* handing the server back to the pool at the transaction's end */
    PX_STAGES
};

#define PX_STAGE_SAMPLE_EVERY 64

struct px_stage_totals {
    uint64_t samples;                 /* transactions timed to their end */
    uint64_t tx_ns;                   /* their whole duration, first client read to the last reply written */
    uint64_t ns[PX_STAGES];
};

/* The connection id of the client whose transaction is being timed, 0 if none. */
extern _Thread_local uint64_t px_stage_active;

uint64_t px_stage_now(void);
const char *px_stage_name(enum px_stage s);

struct px_client;
struct px_server;

/* Around the client's read callback (idle or active): may start a sample; 0 when not timing. */
uint64_t px_stage_client_enter(struct px_client *cl);
void px_stage_client_leave(uint64_t t);
/* Around the server's read callback of the sampled client's transaction. */
uint64_t px_stage_server_enter(struct px_server *sv);
void px_stage_server_leave(uint64_t t);
/* Adds now - t to stage s (t from px_stage_now()). */
void px_stage_add(enum px_stage s, uint64_t t);
/* The client's bytes went to the server (its wait for the server starts). */
void px_stage_sent(void);
/* The sampled client got a server from the queue. */
void px_stage_attached(void);
/* The sampled client's transaction ended (ReadyForQuery idle), or the client left (abandon). */
void px_stage_tx_end(void);
void px_stage_abandon(uint64_t client_id);

/* SHOW STAGES (console): one row per stage, then "transaction" (the sampled transactions whole). */
void px_show_stages(struct px_client *cl, const char *arg);

/* Whether cl's transaction is the one being timed. */
#define PX_STAGE_ON(id) (px_stage_active != 0 && px_stage_active == (id))

#endif
