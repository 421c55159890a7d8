/*
 * Cancel requests: a client's CancelRequest names pglane's key; the backend running that client's
 * request gets its own key on a fresh connection to PostgreSQL. The server connection is given to
 * no one else until PostgreSQL has closed that cancel connection (see px_server_recycle).
 */
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

/*
 * How long a server connection is held for a cancel in flight. PostgreSQL's postmaster answers a
 * cancel within a process start (milliseconds); one that has not after this long may still deliver
 * it later, so the connection is then closed rather than reused.
 */
#define CANCEL_HOLD_MS 2000

struct cancel_conn {
    union px_handle h;
    uv_timer_t timer;              /* the hold limit */
    uv_connect_t connect_req;
    uv_write_t write_req;
    struct px_server *sv;          /* held for this cancel; NULL once it is done or sv has closed */
    struct px_list link;           /* in sv->cancels while sv is set */
    int handles;                   /* handles not closed yet: freed when both are */
    uint8_t closing;
    uint8_t written;               /* the request is with PostgreSQL's kernel: closing no longer stops it */
    uint8_t signal;                /* no connection: a hold for a pg_cancel_backend() the monitor runs */
    uint8_t packet[16];
    char rbuf[64];
    uint32_t pid;                  /* the backend, for the debug log */
    uint64_t start_us;
};

static void on_cancel_closed(uv_handle_t *h)
{
    struct cancel_conn *cc = h->data;

    if (--cc->handles == 0)
        free(cc);
}

/* The cancel no longer holds its server: it landed, never reached PostgreSQL, or expired. */
static void let_go(struct cancel_conn *cc, int expired)
{
    struct px_server *sv = cc->sv;

    if (!sv)
        return;
    cc->sv = NULL;
    px_list_remove(&cc->link);
    sv->ncancels--;
    if (expired) {
        sv->cancel_expired = 1;
        sv->pool->lane->stats.cancels[PX_CANCEL_EXPIRED]++;
        px_warn("S-%llu the cancel sent for backend %u did not complete within %d ms: the connection "
                "will be closed rather than reused", (unsigned long long)sv->conn.id, sv->backend_pid,
                CANCEL_HOLD_MS);
    }
    if (sv->state == SV_CANCEL_WAIT && (sv->ncancels == 0 || sv->cancel_expired))
        px_server_recycle(sv);
}

static void finish(struct cancel_conn *cc, int expired)
{
    let_go(cc, expired);
    if (cc->closing)
        return;
    cc->closing = 1;
    uv_close((uv_handle_t *)&cc->timer, on_cancel_closed);
    if (!cc->signal)
        uv_close(&cc->h.handle, on_cancel_closed);
}

static void on_cancel_timeout(uv_timer_t *t)
{
    finish(t->data, 1);
}

static void on_cancel_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct cancel_conn *cc = h->data;

    (void)suggested;
    *buf = uv_buf_init(cc->rbuf, sizeof(cc->rbuf));
}

/* PostgreSQL answers a CancelRequest with nothing: it closes the connection once the postmaster has
 * signalled the backend. Bytes, should any come, are ignored. */
static void on_cancel_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cancel_conn *cc = s->data;

    (void)buf;
    if (nread < 0) {
        px_debug("cancel for backend %u: PostgreSQL closed the cancel connection %llu us after pglane opened it",
                 cc->pid, (unsigned long long)(px_now_us() - cc->start_us));
        finish(cc, 0);
    }
}

static void on_cancel_written(uv_write_t *req, int status)
{
    struct cancel_conn *cc = req->data;

    if (cc->closing)
        return;
    cc->written = status == 0;
    /* A server that closed meanwhile needs no news of the cancel's end. */
    if (status < 0 || !cc->sv || uv_read_start(&cc->h.stream, on_cancel_alloc, on_cancel_read) < 0)
        finish(cc, 0);
}

static void on_cancel_connected(uv_connect_t *req, int status)
{
    struct cancel_conn *cc = req->data;
    uv_buf_t b = uv_buf_init((char *)cc->packet, sizeof(cc->packet));

    if (cc->closing)
        return;
    cc->write_req.data = cc;
    if (status < 0 || uv_write(&cc->write_req, &cc->h.stream, &b, 1, on_cancel_written) < 0) {
        px_warn("cancel: cannot reach the server: %s", uv_strerror(status));
        finish(cc, 0);             /* nothing reached PostgreSQL */
    }
}

/* sv runs a request of its client that a cancel may end; else the client's transaction is over (or
 * about to be handed back) and a cancel could only reach whoever gets sv next. */
static int request_running(const struct px_server *sv)
{
    const struct px_client *cl = sv->client;

    return sv->state == SV_ACTIVE && cl && !sv->release_after_write && (cl->pending_z > 0 || cl->unsynced);
}

/* A CancelRequest for sv's backend on a connection of its own; with hold, sv is held (given to no one
 * else) until PostgreSQL has closed that connection (see the top of this file). */
static int send_cancel(struct proxy *px, struct px_server *sv, int hold)
{
    struct px_ep *ep = sv->pool->ep;
    struct cancel_conn *cc;
    struct proto_buf b;
    int r = 0;

    if (!(cc = calloc(1, sizeof(*cc))))
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
    cc->pid = sv->backend_pid;
    cc->start_us = px_now_us();
    if (hold) {
        cc->sv = sv;
        px_list_append(&sv->cancels, &cc->link);
        sv->ncancels++;
    }
    uv_timer_init(px->loop, &cc->timer);
    cc->timer.data = cc;
    cc->connect_req.data = cc;
    r = px_sock_connect(px->loop, &cc->h, &cc->connect_req, ep->unix_socket ? ep->unix_path : NULL,
                        (const struct sockaddr *)&ep->addr, on_cancel_connected);
    cc->h.handle.data = cc;
    cc->handles = 2;
    if (r < 0) {
        px_warn("cancel: cannot reach the server: %s", uv_strerror(r));
        finish(cc, 0);
        return -1;
    }
    uv_timer_start(&cc->timer, on_cancel_timeout, CANCEL_HOLD_MS, 0);
    sv->pool->lane->stats.cancels[PX_CANCEL_FORWARDED]++;
    return 0;
}

int px_cancel_backend(struct proxy *px, struct px_server *sv)
{
    if (!request_running(sv))
        return -1;
    return send_cancel(px, sv, 1);
}

/*
 * sv's client went away while its request ran, and pglane closes sv. PostgreSQL notices a closed
 * socket only when it next reads or writes it: a backend in a long statement would run it to its
 * end (a report's minutes, its locks held), while the lane's slot is free again for another. The
 * cancel ends the statement now; the backend then finds its socket closed and exits.
 */
void px_cancel_orphan(struct proxy *px, struct px_server *sv)
{
    if (send_cancel(px, sv, 0) == 0)
        px_info("S-%llu its client left while its request ran: cancel sent to backend %u, connection closed",
                (unsigned long long)sv->conn.id, sv->backend_pid);
}

/*
 * The contention guard's faster way (proxy/admin/monitor.c): the monitor's own connection runs
 * pg_cancel_backend(), no new connection and no postmaster fork. sv is held as for a CancelRequest
 * until px_cancel_signalled says the backend got the signal (or CANCEL_HOLD_MS passed: then closed).
 */
int px_cancel_hold(struct proxy *px, struct px_server *sv)
{
    struct cancel_conn *cc;

    if (!request_running(sv) || !(cc = calloc(1, sizeof(*cc))))
        return -1;
    cc->sv = sv;
    cc->pid = sv->backend_pid;
    cc->start_us = px_now_us();
    cc->signal = 1;
    cc->written = 1;               /* as good as sent: a closing sv lets the hold go */
    cc->handles = 1;
    px_list_append(&sv->cancels, &cc->link);
    sv->ncancels++;
    uv_timer_init(px->loop, &cc->timer);
    cc->timer.data = cc;
    uv_timer_start(&cc->timer, on_cancel_timeout, CANCEL_HOLD_MS, 0);
    sv->pool->lane->stats.cancels[PX_CANCEL_FORWARDED]++;
    return 0;
}

void px_cancel_signalled(struct proxy *px, const struct conf_server *server, uint32_t pid, int sent)
{
    struct px_server *sv = px_pool_find_backend(px, server, pid);
    struct px_list *it;

    if (!sv)
        return;                    /* closed meanwhile: its hold went with it */
    /* Before the hold goes: with it, sv still runs that client's request or waits in cancel_wait. */
    if (!sent && px_cancel_backend(px, sv) < 0)
        px_debug("cancel for backend %u: its request is over", pid);
    for (it = sv->cancels.next; it != &sv->cancels; it = it->next) {
        struct cancel_conn *cc = px_container_of(it, struct cancel_conn, link);

        if (cc->signal) {
            px_debug("cancel for backend %u: pg_cancel_backend() %s %llu us after the guard asked", pid,
                     sent ? "signalled it" : "failed", (unsigned long long)(px_now_us() - cc->start_us));
            finish(cc, 0);
            break;
        }
    }
}

void px_cancel_server_closed(struct px_server *sv)
{
    while (!px_list_empty(&sv->cancels)) {
        struct cancel_conn *cc = px_container_of(sv->cancels.next, struct cancel_conn, link);

        px_list_remove(&cc->link);
        cc->sv = NULL;
        if (cc->written)
            finish(cc, 0);         /* only waited to hold sv (an exiting pglane does not wait) */
    }
    sv->ncancels = 0;
}

void px_cancel_forward(struct proxy *px, uint32_t pid, uint32_t key)
{
    struct px_client *cl;
    struct px_server *sv;

    if (px_peer_route_cancel(px, &pid, key))
        return;                    /* another process's key: forwarded to it, or dropped */
    if (px_worker_route_cancel(px, pid, key))
        return;                    /* another worker's: handed to it (proxy/workers.c) */
    cl = px_client_by_cancel_key(px, pid, key);
    sv = cl ? cl->server : NULL;
    if (!cl) {
        px->cancels_dropped++;
        px_debug("cancel request for an unknown key: dropped");
        return;
    }
    if (!sv && cl->state == CL_WAITING) {
        struct px_lane *lane = cl->pool->lane;

        /* Its request has not started: it never will, and gets the answer of a cancelled one. */
        if (px_client_cancel_queued(cl)) {
            lane->stats.cancels[PX_CANCEL_QUEUED]++;
            px_info("C-%llu cancel: its queued request was answered with 57014 and not sent",
                    (unsigned long long)cl->conn.id);
            return;
        }
    }
    if (sv && sv->shape_wait) {
        /* pglane's own check of a statement runs ahead of the client's request (px_prep_probe), and
         * may wait for a lock as the request would: it is cancelled, and so is the request once sent. */
        cl->cancel_deferred = 1;
        (void)px_cancel_backend(px, sv);
        px_info("C-%llu cancel: pglane's statement check ahead of its request cancelled, the request to be "
                "cancelled once sent", (unsigned long long)cl->conn.id);
        return;
    }
    if (!sv || px_cancel_backend(px, sv) < 0) {
        px->cancels_dropped++;
        px_debug("C-%llu cancel request dropped: %s", (unsigned long long)cl->conn.id,
                 cl->state == CL_WAITING ? "its queued request cannot be dropped whole"
                                         : "no request of this client runs on a server");
        return;
    }
    px_info("C-%llu cancel forwarded to backend %u (S-%llu)", (unsigned long long)cl->conn.id, sv->backend_pid,
            (unsigned long long)sv->conn.id);
}
