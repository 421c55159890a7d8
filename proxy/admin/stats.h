/*
 * proxy/admin/stats.h — fixed-size statistics kept per lane: log-bucket latency histograms and error
 * counts by SQLSTATE class. Plain integers and fixed arrays, so that recording allocates nothing.
 * Included by proxy/proxy.h (struct px_lane embeds struct px_lane_stats); the recording helpers are in
 * stats.c.
 */
#ifndef PGLANE_PROXY_STATS_H
#define PGLANE_PROXY_STATS_H

#include <stdint.h>

/*
 * Durations in microseconds, four buckets per power of two. Bucket i holds the values v with
 * px_hist_upper(i - 1) < v <= px_hist_upper(i), so every power of two is a bucket's upper bound and
 * "count of values <= 2^k" (a Prometheus bucket) is exact. The last bucket also takes everything
 * above about 2^42 us (51 days).
 */
#define PX_HIST_BUCKETS 164

struct px_hist {
    uint64_t count, sum_us, max_us;
    uint64_t b[PX_HIST_BUCKETS];
};

void px_hist_add(struct px_hist *h, uint64_t us);
/* dst gets src's observations too (several workers' histograms as one). */
void px_hist_merge(struct px_hist *dst, const struct px_hist *src);
/* The largest value bucket i holds. */
uint64_t px_hist_upper(unsigned i);
/* Observations <= us, exact when us is a power of two (>= 2). */
uint64_t px_hist_count_le(const struct px_hist *h, uint64_t us);
/* The pct-th percentile (0 < pct <= 100): a bucket's upper bound clamped to the maximum seen; 0 if
 * nothing was recorded. Within 25% of the true value. */
uint64_t px_hist_percentile(const struct px_hist *h, double pct);

/* SQLSTATE classes: two characters of [0-9A-Z]. */
#define PX_SQLSTATE_CLASSES (36 * 36)
/* Index of the class of sqlstate (5 characters), or -1 if it is not a valid SQLSTATE. */
int px_sqlstate_class(const char *sqlstate);
/* The two characters of class index i, NUL-terminated, into out[3]. */
void px_sqlstate_class_name(int i, char out[3]);

enum px_guard_action { PX_GUARD_LOGGED, PX_GUARD_CANCELLED, PX_GUARD_TERMINATED, PX_GUARD_ACTIONS };

#define PX_PIN_REASONS 9
/* Cancels for a lane (proxy/cancel.c): sent to PostgreSQL; server connections held out of the pool
 * after their transaction because one was still in flight; cancels that did not complete within the
 * hold limit (their server connection closed); queued requests answered with 57014 unsent. */
/* Pooled server connections PostgreSQL ended (proxy/retry.c): an unsolicited error while idle in the
 * pool, EOF while idle, or found dead when a transaction's first messages were sent on it. */
enum px_lost_reason { PX_LOST_IDLE_ERROR, PX_LOST_IDLE_CLOSED, PX_LOST_DEAD_ON_USE, PX_LOST_CHECK_FAILED, PX_LOST_REASONS };

enum px_cancel_event { PX_CANCEL_FORWARDED, PX_CANCEL_HELD, PX_CANCEL_EXPIRED, PX_CANCEL_QUEUED, PX_CANCEL_EVENTS };

struct px_lane_stats {
    struct px_hist tx;             /* client transactions, first statement to the idle ReadyForQuery */
    struct px_hist query;          /* requests, first message to their ReadyForQuery, queue wait excluded */
    struct px_hist wait;           /* time in the lane's queue before a server was attached */
    uint64_t errors[PX_SQLSTATE_CLASSES];   /* ErrorResponses from servers, by class */
    uint64_t slow;                 /* statements over log_slower_than */
    uint64_t guard[PX_GUARD_ACTIONS];       /* guard actions against this (preemptible) lane */
    uint64_t guarded[PX_GUARD_ACTIONS];     /* guard actions on behalf of this (protected) lane */
    uint64_t pins[PX_PIN_REASONS];          /* clients that became pinned, by reason */
    uint64_t cancels[PX_CANCEL_EVENTS];
    uint64_t lost[PX_LOST_REASONS];         /* server connections lost (by this lane's pools) */
    uint64_t retries;                       /* transactions' first messages resent (proxy/retry.c) */
    uint64_t session_checks;                /* session reads after a transaction that may have changed state (session.c) */
};

/* dst gets src's counts too: one lane's statistics from several workers (SHOW LANES, SHOW STATS). */
void px_lane_stats_merge(struct px_lane_stats *dst, const struct px_lane_stats *src);

/* Recording (stats.c), on the forwarding path; px_stats_query_begin is inline in proxy/proxy.h. */
struct proto_frame;
struct px_client;
struct px_pool;
struct px_server;
/* A ReadyForQuery for the attached client: query (and transaction, if idle) durations, slow log. */
void px_stats_query_end(struct px_server *sv, struct px_client *cl);
/* An ErrorResponse from the server for the attached client (f: the whole message). */
void px_stats_error(struct px_server *sv, const struct proto_frame *f);
/* A client waited `us` in the pool's queue. */
void px_stats_wait(struct px_pool *pool, uint64_t us);

#endif
