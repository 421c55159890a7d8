/*
 * proxy/admin/admin.h — what the rest of proxy/ calls in the admin layer: the console, the metrics
 * endpoint and the lock monitor. The console's own helpers are in console.h, the monitor's wait graph
 * in monitor.h. Included by proxy/proxy.h.
 */
#ifndef PGLANE_PROXY_ADMIN_ADMIN_H
#define PGLANE_PROXY_ADMIN_ADMIN_H

#include <stddef.h>

struct proxy;
struct px_client;

/* Runs one admin console command (admin.c; the text of a simple Query) and writes the complete answer
 * to the client: RowDescription/DataRow/CommandComplete or ErrorResponse, then ReadyForQuery. */
void px_admin_query(struct px_client *cl, const char *sql, size_t len);
/* Answers admin WAIT_CLOSE commands whose connections have closed (admin_pgb.c; each maintenance tick). */
void px_pgb_tick(struct proxy *px);
/* Starts the HTTP endpoint of metrics_listen, if set (metrics.c). 0 or -1 (logged). */
int px_metrics_start(struct proxy *px);
void px_metrics_stop(struct proxy *px);
/* Starts the per-server monitoring connections (monitor.c: lock graph, guard). 0 or -1 (logged). */
int px_monitor_start(struct proxy *px);
/* Samples server's lock graph now (another worker's protected request passed guard_wait there). */
void px_monitor_sample_now(struct proxy *px, const char *server);
void px_monitor_stop(struct proxy *px);
/* Several workers: the samples another worker published (PX_WORKERS_GRAPH) are taken. */
void px_monitor_news(struct proxy *px);
/* At the process's end, after every worker stopped: the shared samples are freed. */
void px_monitor_shared_free(void);
/* SHOW BLOCKING was asked: sample even when no lane has a guard. */
void px_monitor_want(struct proxy *px);
struct px_block_edge;
/* The latest lock-wait edges of every server (visits each; stop by returning non-zero). */
typedef int (*px_block_cb)(const struct px_block_edge *e, void *arg);
void px_monitor_foreach(struct proxy *px, px_block_cb cb, void *arg);
/* Monitor connections that answered their last sample, and those configured. */
void px_monitor_health(struct proxy *px, int *up, int *total);

/* PAUSE (paused = 1) or RESUME (0) of the named lane, or of every lane when name is "": 0, or -1 when
 * no lane has that name (also run by each worker for another worker's console, proxy/workers.c). */
int px_admin_set_paused(struct proxy *px, const char *name, int paused);

/* workers > 1 (proxy/workers.c): the DataRows of SHOW CLIENTS or SHOW SERVERS (PX_GATHER_*) for px's
 * own clients or servers, appended to out; and the answer made of rows gathered from every worker. */
struct proto_buf;
void px_show_list_rows(struct proxy *px, int which, struct proto_buf *out);
void px_show_list_send(struct px_client *cl, int which, const uint8_t *rows, size_t len);
/* A console action's part on px (PX_GATHER_ACT_*: KILL, RECONNECT), its counts as text into out. */
void px_admin_act(struct proxy *px, int which, const char *arg, struct proto_buf *out);

#endif
