/* Admin console: SHOW WORKERS, one row per event-loop thread (workers = N, proxy/workers.c). */
#include "proxy/admin/console.h"

void px_show_workers(struct px_client *cl, const char *arg)
{
    static const char *const cols[] = { "worker", "clients", "servers", "accepted", "handed_over", "running", "console",
                                        NULL };
    struct proxy *px = cl->conn.px;
    struct px_worker_row rows[CONF_WORKERS_MAX];
    struct px_table t;
    int n = px_workers_rows(px, rows, CONF_WORKERS_MAX);

    (void)arg;
    px_table_begin_typed(&t, cols, "iqqqqss");
    for (int i = 0; i < n; i++) {
        px_table_cell(&t, "%d", rows[i].id);
        px_table_cell(&t, "%lld", (long long)rows[i].clients);
        px_table_cell(&t, "%lld", (long long)rows[i].servers);
        px_table_cell(&t, "%lld", (long long)rows[i].accepted);
        px_table_cell(&t, "%lld", (long long)rows[i].handed_over);
        px_table_cell(&t, "%s", rows[i].running ? "yes" : "no");
        px_table_cell(&t, "%s", rows[i].id == px->worker_id ? "yes" : "no");
    }
    px_table_send(&t, cl, "SHOW");
}
