/*
 * proxy/admin/console.h — shared by the admin console files (admin*.c): a builder of text result
 * sets that psql prints as tables, and the SHOW commands. What the rest of proxy/ calls is in admin.h.
 */
#ifndef PGLANE_PROXY_ADMIN_CONSOLE_H
#define PGLANE_PROXY_ADMIN_CONSOLE_H

#include "proxy/proxy.h"

/* One result set being built: RowDescription (every column text), DataRows, CommandComplete. */
struct px_table {
    struct proto_buf b;
    int ncols;
    int cells;            /* cells written in the row being built */
    size_t row_start;     /* offset of that row's DataRow message */
    long nrows;
};

/* cols: NULL-terminated column names. */
void px_table_begin(struct px_table *t, const char *const *cols);
/* Same with a type per column, one character each: 's' text, 'i' int4, 'q' int8 (values are still
 * sent as text). */
void px_table_begin_typed(struct px_table *t, const char *const *cols, const char *types);
void px_table_cell(struct px_table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void px_table_null(struct px_table *t);
/* Several workers' DataRows for the same table (t begun, no row yet) merged into t's rows: rows with
 * equal key columns become one. ops has a character per column: 'k' key, 's' sum, 'S' sum that orders
 * the rows (largest first; at most one), 'm' maximum, 'M' maximum whose row also gives the next column
 * ('F'), 'f' the first part's value. Rows in the order first seen unless a column is 'S', the first
 * `limit` of them if limit > 0; fix (if not NULL) may then rewrite a merged row's cells (malloc'd
 * text) derived from others. */
void px_table_merge_rows(struct px_table *t, const uint8_t *rows, size_t len, const char *ops,
                         void (*fix)(char **v), int limit);
/* Appends CommandComplete (tag) and ReadyForQuery, sends it all to cl and frees t. */
void px_table_send(struct px_table *t, struct px_client *cl, const char *tag);
/* A SHOW whose rows each worker renders (admin_show.c's list_specs, PX_GATHER_*): every worker's rows,
 * merged where the table says so. */
void px_show_list(struct px_client *cl, int which);
/* SHOW POOLS' table (admin_pgb.c): columns, their types, how workers' rows merge, this worker's rows. */
extern const char *const px_pgb_pool_cols[];
#define PX_PGB_POOL_TYPES "ssiiiiiiiiiiiiis"
#define PX_PGB_POOL_MERGE "kksssssssssssMFf"
void px_pgb_pool_rows(struct px_table *t, struct proxy *px);
/* The same for PgBouncer's SHOW STATS (fix: the averages again after a merge) and SHOW DATABASES. */
extern const char *const px_pgb_stats_cols[];
#define PX_PGB_STATS_TYPES "sqqqqqqqqqqqqqqq"
#define PX_PGB_STATS_MERGE "ksssssssssssffss"
void px_pgb_stats_rows(struct px_table *t, struct proxy *px);
void px_pgb_stats_fix(char **v);
extern const char *const px_pgb_database_cols[];
#define PX_PGB_DATABASE_TYPES "ssissiiiisiiii"
#define PX_PGB_DATABASE_MERGE "kffffffffffsfk"
void px_pgb_database_rows(struct px_table *t, struct proxy *px);
extern const char *const px_pgb_user_cols[];
#define PX_PGB_USER_TYPES "siisiiii"
#define PX_PGB_USER_MERGE "kffffsfs"
void px_pgb_user_rows(struct px_table *t, struct proxy *px);
/* SHOW GUARD, QUARANTINE, PREPARED and QUERIES (admin_show_conf.c), the same way. */
extern const char *const px_guard_cols[], *const px_quarantine_cols[], *const px_prepared_cols[],
    *const px_query_cols[];
void px_guard_rows(struct px_table *t, struct proxy *px);
void px_quarantine_rows(struct px_table *t, struct proxy *px);
void px_prepared_rows(struct px_table *t, struct proxy *px);
void px_query_rows(struct px_table *t, struct proxy *px);
void px_query_fix(char **v);
/* SHOW BLOCKING with several workers (each worker's lock graph; merged by server, waiter, blocker). */
extern const char *const px_blocking_cols[];
#define PX_BLOCKING_MERGE "kkfffffffkfffffffffm"
void px_blocking_rows(struct px_table *t, struct proxy *px);
#define PX_TOP_QUERIES 50          /* SHOW QUERIES: the statement shapes with the largest total time */
/* SHOW TENANTS (admin_tenants.c): one row per lane and tenant of fair queuing. */
extern const char *const px_tenant_cols[];
#define PX_TENANT_TYPES "ssiiqsq"
#define PX_TENANT_MERGE "kkssssm"
void px_tenant_rows(struct px_table *t, struct proxy *px);
/* SHOW STAGES (stages.c) and SHOW LISTS (admin_pgb.c): each worker's records into out, and the
 * asker's answer from every worker's records. */
void px_stage_recs(struct proxy *px, struct proto_buf *out);
void px_stage_send(struct px_client *cl, const uint8_t *recs, size_t len);
void px_pgb_list_recs(struct proxy *px, struct proto_buf *out);
void px_pgb_list_send(struct px_client *cl, const uint8_t *recs, size_t len);
/* Sends an ErrorResponse (ERROR) and ReadyForQuery: the console session stays usable. */
void px_admin_error(struct px_client *cl, const char *sqlstate, const char *message, const char *hint);
/* Sends CommandComplete(tag) and ReadyForQuery, with a NOTICE first when notice is not NULL. */
void px_admin_done(struct px_client *cl, const char *tag, const char *notice);

/* SHOW commands (admin_show.c, admin_show_conf.c); arg is the rest of the command (may be ""). */
void px_show_lanes(struct px_client *cl, const char *arg);
void px_show_lane_servers(struct px_client *cl, const char *arg);
void px_show_clients(struct px_client *cl, const char *arg);
void px_show_servers(struct px_client *cl, const char *arg);
void px_show_stats(struct px_client *cl, const char *arg);
void px_show_routes(struct px_client *cl, const char *arg);
void px_show_queries(struct px_client *cl, const char *arg);
void px_show_blocking(struct px_client *cl, const char *arg);
void px_show_quarantine(struct px_client *cl, const char *arg);
/* RELEASE fingerprint | ALL: ends contention guard quarantines. */
void px_release(struct px_client *cl, const char *arg);
void px_show_guard(struct px_client *cl, const char *arg);
void px_show_config(struct px_client *cl, const char *arg);
void px_show_prepared(struct px_client *cl, const char *arg);
/* Server health (admin_health.c): SHOW HEALTH, one row per [server.*]; the cells server, role,
 * server_state, lag_ms, lag_bytes of server that end each SHOW SERVERS row; state name up, down or
 * unchecked. */
void px_show_health(struct px_client *cl, const char *arg);
void px_health_server_cells(struct px_table *t, struct proxy *px, const char *server);
const char *px_health_state_name(struct proxy *px, const char *server, const struct px_health *h);
/* Fair queuing (admin_tenants.c): one row per known tenant of each lane with a tenant_key. */
void px_show_tenants(struct px_client *cl, const char *arg);
void px_show_workers(struct px_client *cl, const char *arg);

/* PgBouncer-compatible console (admin_pgb.c): PgBouncer's column names and types, each pool a
 * database named "database/lane". */
void px_pgb_show_pools(struct px_client *cl, const char *arg);
void px_pgb_show_stats(struct px_client *cl, const char *arg);
void px_pgb_show_databases(struct px_client *cl, const char *arg);
void px_pgb_show_lists(struct px_client *cl, const char *arg);
void px_pgb_show_version(struct px_client *cl, const char *arg);
void px_pgb_show_users(struct px_client *cl, const char *arg);
/* RECONNECT / WAIT_CLOSE / KILL with "" (all), a lane or "database/lane". */
void px_pgb_reconnect(struct px_client *cl, const char *arg);
void px_pgb_wait_close(struct px_client *cl, const char *arg);
void px_pgb_kill(struct px_client *cl, const char *arg);
/* KILL lane, RECONNECT and WAIT_CLOSE as one worker's part of a console action (workers > 1):
 * "clients servers", "closed marked" or "marked 0" into out. */
void px_pgb_act(struct proxy *px, int which, const char *arg, struct proto_buf *out);
/* A console action's parts ("a b" per worker) summed into *a and *b; the console that asked (its reads
 * started again) or NULL if it has gone. */
struct px_client *px_admin_act_sums(struct proxy *px, uint64_t console, struct proto_buf *parts, int n, long *a,
                                    long *b);

/* The client with connection id `id` (SHOW CLIENTS' id), or NULL. */
struct px_client *px_admin_client_by_id(struct proxy *px, uint64_t id);

/* Names used by several SHOW commands. */
const char *px_client_state_name(enum px_client_state s);
const char *px_server_state_name(enum px_server_state s);

#endif
