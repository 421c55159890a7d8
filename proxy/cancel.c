/* Cancel requests: a client's CancelRequest names pglane's key; the backend serving that client gets
 * its own key on a fresh connection. Nothing is sent if the client has no server right now. */
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

struct cancel_conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uint8_t packet[16];
};

static void on_cancel_closed(uv_handle_t *h)
{
    free(h);
}

static void on_cancel_written(uv_write_t *req, int status)
{
    struct cancel_conn *cc = req->data;

    (void)status;
    uv_close(&cc->h.handle, on_cancel_closed);
}

static void on_cancel_connected(uv_connect_t *req, int status)
{
    struct cancel_conn *cc = req->data;
    uv_buf_t b = uv_buf_init((char *)cc->packet, sizeof(cc->packet));

    cc->write_req.data = cc;
    if (status < 0 || uv_write(&cc->write_req, &cc->h.stream, &b, 1, on_cancel_written) < 0) {
        px_warn("cancel: cannot reach the server: %s", uv_strerror(status));
        uv_close(&cc->h.handle, on_cancel_closed);
    }
}

int px_cancel_backend(struct proxy *px, struct px_server *sv)
{
    struct px_lane *lane = sv->pool->lane;
    struct cancel_conn *cc = calloc(1, sizeof(*cc));
    struct proto_buf b;

    if (!cc)
        return -1;
    proto_buf_init(&b);
    proto_build_cancel(&b, sv->backend_pid, sv->backend_key);
    if (b.failed || b.len != sizeof(cc->packet)) {
        proto_buf_free(&b);
        free(cc);
        return -1;
    }
    memcpy(cc->packet, b.data, sizeof(cc->packet));
    proto_buf_free(&b);
    cc->connect_req.data = cc;
    if (lane->unix_socket) {
        uv_pipe_init(px->loop, &cc->h.pipe, 0);
        uv_pipe_connect(&cc->connect_req, &cc->h.pipe, lane->unix_path, on_cancel_connected);
        return 0;
    }
    uv_tcp_init(px->loop, &cc->h.tcp);
    if (uv_tcp_connect(&cc->connect_req, &cc->h.tcp, (const struct sockaddr *)&lane->addr, on_cancel_connected) < 0) {
        uv_close(&cc->h.handle, on_cancel_closed);
        return -1;
    }
    return 0;
}

void px_cancel_forward(struct proxy *px, uint32_t pid, uint32_t key)
{
    struct px_client *cl = px_client_by_cancel_key(px, pid, key);
    struct px_server *sv = cl ? cl->server : NULL;

    if (!sv || sv->state != SV_ACTIVE) {
        px_info("cancel request for %s: nothing to cancel", cl ? "an idle client" : "an unknown key");
        return;
    }
    px_info("C-%llu cancel forwarded to backend %u (S-%llu)", (unsigned long long)cl->conn.id, sv->backend_pid,
            (unsigned long long)sv->conn.id);
    (void)px_cancel_backend(px, sv);
}
