/* The admin console: commands sent to the virtual database "pglane". */
#include <stdio.h>
#include <string.h>

#include "proxy/proxy.h"

void px_admin_query(struct px_client *cl, const char *sql, size_t len)
{
    struct proto_buf b;
    char msg[160];

    snprintf(msg, sizeof(msg), "pglane: unknown admin command \"%.*s\"", (int)(len > 80 ? 80 : len), sql);
    proto_buf_init(&b);
    proto_build_error(&b, "ERROR", "42601", msg, NULL, "Try SHOW LANES.");
    proto_build_ready(&b, 'I');
    if (!b.failed)
        (void)px_conn_send_copy(&cl->conn, b.data, b.len);
    proto_buf_free(&b);
}
