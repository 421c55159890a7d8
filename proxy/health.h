/*
 * proxy/health.h — each [server.*]'s role, health and replication lag (issue 15), learned by one
 * health-check query per health_check_interval on pglane's own libpq connection to that server
 * (proxy/health.c, over proxy/pgpoll.c). The routing side reads px_health_get and may register a
 * callback for changes; the console and /metrics show the same values.
 */
#ifndef PGLANE_PROXY_HEALTH_H
#define PGLANE_PROXY_HEALTH_H

#include <stdint.h>

struct proxy;

enum px_role { PX_ROLE_UNKNOWN, PX_ROLE_PRIMARY, PX_ROLE_REPLICA };

struct px_health {            /* one per [server.NAME], kept across reloads by name */
    int role;                 /* configured role, or learned when role = auto (PX_ROLE_UNKNOWN until the first check) */
    int up;                   /* 0 = down: health_check_failures failed checks in a row, or connection refused */
    int64_t lag_ms, lag_bytes;/* replica: replay lag (time since last replayed xact when WAL is pending, and bytes
                               * behind the primary's current LSN); 0 on a primary; -1 unknown */
    uint64_t lsn;             /* primary: pg_current_wal_lsn(); replica: pg_last_wal_replay_lsn() at the last check */
    uint64_t checked_ms;      /* when the last check answered (px_now_ms); 0 = never */
    uint64_t conflicts;       /* recovery conflicts seen on it (incremented by the routing side via px_health_conflict) */
    /* Added beside the brief's fields: */
    int reported_role;        /* what the server itself said at the last check (PX_ROLE_UNKNOWN: never answered) */
    uint64_t receive_lsn;     /* replica: pg_last_wal_receive_lsn() at the last check (0 if none) */
    uint64_t checks;          /* health-check queries sent to it */
    uint64_t failures;        /* checks that failed (error, timeout, refused), in total */
    uint64_t downs;           /* times it went down */
    int64_t caught_up_us;     /* replica: its clock_timestamp() at the last check with nothing left to replay (0: none) */
};

/* Never NULL for a configured server; for a name pglane does not know, a static entry that is up with
 * role unknown and lag -1. */
const struct px_health *px_health_get(struct proxy *px, const char *server_name);
/* The routing side saw a recovery conflict (40001 "conflict with recovery") on that server. */
void px_health_conflict(struct proxy *px, const char *server_name);

/* What changed at a check (a bit mask; 0: a new sample, values only). */
enum { PX_HEALTH_UP_CHANGED = 1, PX_HEALTH_ROLE_CHANGED = 2 };
/* Called after every answered or failed check of a server, with what changed. The callback may read
 * px_health_get of any server; it must not call px_health_stop. */
typedef void (*px_health_cb)(struct proxy *px, const char *server_name, const struct px_health *h, int changed,
                             void *arg);
/* One callback (a new registration replaces the previous one; NULL removes it); may be registered
 * before px_health_start. */
void px_health_on_change(struct proxy *px, px_health_cb cb, void *arg);

/* Which servers are checked: those a lane in force uses whose section says `role`, and those for which
 * fn (the routing side's: "a lane lists it among several servers") says 1. One fn; may be set
 * before px_health_start; asked at every interval and reload. */
typedef int (*px_health_want_fn)(struct proxy *px, const char *server_name);
void px_health_want(struct proxy *px, px_health_want_fn fn);

/* Lifecycle (main.c, config.c, lifecycle.c): start with the configuration, follow reloads (servers
 * kept by name, new ones added, dropped ones forgotten), stop on exit. */
int px_health_start(struct proxy *px);
void px_health_reload(struct proxy *px);
void px_health_stop(struct proxy *px);
/* Several workers: another worker published a check's values; servers this worker follows take them. */
void px_health_news(struct proxy *px);

/* Iteration in configuration order (SHOW SERVERS, /metrics): stops when cb returns non-zero. */
typedef int (*px_health_each_cb)(const char *server_name, const struct px_health *h, void *arg);
void px_health_foreach(struct proxy *px, px_health_each_cb cb, void *arg);
/* 1 if the server is health-checked now (checks on, a lane uses it, its section says role or px_health_want
 * wants it). */
int px_health_checked(struct proxy *px, const char *server_name);
/* The latest failed check's reason ("" after an answer). */
const char *px_health_why(struct proxy *px, const char *server_name);
/* Health-check queries sent so far, over all servers. */
uint64_t px_health_checks_total(struct proxy *px);

/* ---- pure helpers (unit tested) ---- */

/* "16/B374D848" (pg_lsn text) -> 0x16B374D848. 0 and *out, or -1 for anything else. */
int px_lsn_parse(const char *text, uint64_t *out);
/* Replica lag in bytes: ahead - replay when both known and ahead >= replay, 0 when ahead < replay (the
 * replica saw newer WAL than the primary's last check), -1 when either is 0 (unknown). */
int64_t px_lag_bytes(uint64_t ahead, uint64_t replay);
/* Replica lag in time, in ms: 0 when nothing received is left to replay (replay_lsn >= receive_lsn), else
 * now_us - last_replay_us (microseconds since the epoch, >= 0), but never more than now_us - caught_up_us
 * when caught_up_us is known (the replica's clock at a check that found it caught up: a lag grows no
 * faster than the clock); -1 when neither last_replay_us nor caught_up_us is known (0). */
int64_t px_lag_ms(uint64_t receive_lsn, uint64_t replay_lsn, int64_t now_us, int64_t last_replay_us,
                  int64_t caught_up_us);
const char *px_role_name(int role);

#endif
