/*
 * Peering: several pglane processes take connections on one port (so_reuseport) or behind one load
 * balancer, and a client's CancelRequest opens a new connection that may reach any of them. Each
 * process stamps its peer_id into the cancel keys it issues (see peers.h); a process that receives
 * a CancelRequest for another id sends the same 16 bytes to that peer's [peers] address, where the
 * peer handles it as its own. A hop count in the key bounds the forwarding should two processes
 * be configured with one id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

/* How long a forward may take to connect and write before it is given up. */
#define PEER_FORWARD_MS 5000

struct peer_addr {
    int id;
    int ok;                        /* resolved */
    char *path;                    /* unix socket, or NULL for addr */
    struct sockaddr_storage addr;
    char name[300];                /* for the log */
};

struct px_peers {
    struct peer_addr *a;
    int n;
    struct px_list inflight;       /* struct peer_forward */
};

struct peer_forward {
    union px_handle h;
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_write_t write_req;
    struct px_list link;
    int handles;
    int closing;
    int id;
    uint8_t packet[16];
};

static void free_addrs(struct px_peers *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->a[i].path);
    free(p->a);
    p->a = NULL;
    p->n = 0;
}

static int resolve(const struct conf_peer *cp, struct peer_addr *pa)
{
    pa->id = cp->id;
    if (cp->host[0] == '/') {
        snprintf(pa->name, sizeof(pa->name), "%s/.s.PGSQL.%d", cp->host, cp->port);
        pa->path = strdup(pa->name);
        pa->ok = pa->path != NULL;
    } else {
        snprintf(pa->name, sizeof(pa->name), "%s:%d", cp->host, cp->port);
        pa->ok = px_sock_numeric_addr(cp->host, cp->port, &pa->addr) == 0 ||
                 px_resolve(cp->host, cp->port, &pa->addr) == 0;
    }
    return pa->ok ? 0 : -1;
}

int px_peers_configure(struct proxy *px, int at_start)
{
    const struct conf *c = px->conf;
    struct px_peers *p = px->peers;
    int rc = 0;

    if (at_start) {
        px->peer_id = c->peer_id;
        px->so_reuseport = c->so_reuseport;
    } else if (px->worker_id == 0) {   /* every worker reloads: one warning for the process */
        if (c->peer_id != px->peer_id)
            px_warn("reload: peer_id %d -> %d needs a restart: this process keeps %d (its clients' cancel "
                    "keys carry it)", px->peer_id, c->peer_id, px->peer_id);
        if (c->so_reuseport != px->so_reuseport)
            px_warn("reload: so_reuseport = %s needs a restart: the listeners keep so_reuseport = %s",
                    c->so_reuseport ? "yes" : "no", px->so_reuseport ? "yes" : "no");
        if (c->workers != px_workers_count(px->workers))
            px_warn("reload: workers = %d needs a restart: the process keeps %d", c->workers,
                    px_workers_count(px->workers));
    }
    if (!p) {
        if (!(p = px->peers = calloc(1, sizeof(*p))))
            return -1;
        px_list_init(&p->inflight);
    }
    free_addrs(p);
    if (c->npeers == 0)
        return 0;
    if (!(p->a = calloc((size_t)c->npeers, sizeof(*p->a))))
        return -1;
    p->n = c->npeers;
    for (int i = 0; i < c->npeers; i++) {
        if (resolve(&c->peers[i], &p->a[i]) == 0)
            continue;
        if (at_start) {
            px_error("[peers] %d: cannot resolve %s", c->peers[i].id, c->peers[i].host);
            rc = -1;
        } else {
            px_error("reload: [peers] %d: cannot resolve %s: cancel requests for it are dropped",
                     c->peers[i].id, c->peers[i].host);
        }
    }
    if (px->peer_id)
        px_info("peer_id %d, %d other peer(s)", px->peer_id, c->npeers - (px_peer_own_listener(c, NULL, 0) ? 1 : 0));
    return rc;
}

void px_peer_stamp_key(const struct proxy *px, uint32_t *cancel_pid)
{
    if (px->peer_id == 0)
        return;
    *cancel_pid = (*cancel_pid & ((1u << PX_PEER_HOPS_SHIFT) - 1)) | (PX_PEER_HOPS_MAX << PX_PEER_HOPS_SHIFT) |
                  ((uint32_t)px->peer_id << PX_PEER_ID_SHIFT);
}

static void on_forward_closed(uv_handle_t *h)
{
    struct peer_forward *f = h->data;

    if (--f->handles == 0)
        free(f);
}

static void forward_end(struct peer_forward *f)
{
    if (f->closing)
        return;
    f->closing = 1;
    px_list_remove(&f->link);
    uv_close((uv_handle_t *)&f->timer, on_forward_closed);
    uv_close(&f->h.handle, on_forward_closed);
}

static void on_forward_timeout(uv_timer_t *t)
{
    struct peer_forward *f = t->data;

    px_warn("cancel request for peer %d: not delivered within %d ms", f->id, PEER_FORWARD_MS);
    forward_end(f);
}

/* The request is with the kernel: the peer reads it, then sees the close (a CancelRequest has no
 * answer). */
static void on_forward_written(uv_write_t *req, int status)
{
    struct peer_forward *f = req->data;

    if (status < 0 && !f->closing)
        px_warn("cancel request for peer %d: %s", f->id, uv_strerror(status));
    forward_end(f);
}

static void on_forward_connected(uv_connect_t *req, int status)
{
    struct peer_forward *f = req->data;
    uv_buf_t b = uv_buf_init((char *)f->packet, sizeof(f->packet));

    if (f->closing)
        return;
    f->write_req.data = f;
    if (status < 0 || (status = uv_write(&f->write_req, &f->h.stream, &b, 1, on_forward_written)) < 0) {
        px_warn("cancel request for peer %d: cannot reach it: %s", f->id, uv_strerror(status));
        forward_end(f);
    }
}

static void forward(struct proxy *px, const struct peer_addr *pa, uint32_t pid, uint32_t key)
{
    struct peer_forward *f = calloc(1, sizeof(*f));
    struct proto_buf b;
    int r;

    if (!f)
        return;
    proto_buf_init(&b);
    proto_build_cancel(&b, pid, key);
    if (b.failed || b.len != sizeof(f->packet)) {
        proto_buf_free(&b);
        free(f);
        return;
    }
    memcpy(f->packet, b.data, sizeof(f->packet));
    proto_buf_free(&b);
    f->id = pa->id;
    px_list_append(&px->peers->inflight, &f->link);
    uv_timer_init(px->loop, &f->timer);
    f->timer.data = f;
    f->connect_req.data = f;
    r = px_sock_connect(px->loop, &f->h, &f->connect_req, pa->path, (const struct sockaddr *)&pa->addr,
                        on_forward_connected);
    f->h.handle.data = f;
    f->handles = 2;
    if (r < 0) {
        px_warn("cancel request for peer %d: cannot reach it at %s: %s", pa->id, pa->name, uv_strerror(r));
        forward_end(f);
        return;
    }
    uv_timer_start(&f->timer, on_forward_timeout, PEER_FORWARD_MS, 0);
    px_info("cancel request for peer %d: forwarded to %s", pa->id, pa->name);
}

int px_peer_route_cancel(struct proxy *px, uint32_t *pid, uint32_t key)
{
    int id = (int)((*pid >> PX_PEER_ID_SHIFT) & CONF_PEER_ID_MAX);
    unsigned hops = (*pid >> PX_PEER_HOPS_SHIFT) & PX_PEER_HOPS_MAX;
    const struct peer_addr *pa = NULL;

    if (px->peer_id == 0)
        return 0;
    if (id == px->peer_id) {
        *pid |= PX_PEER_HOPS_MAX << PX_PEER_HOPS_SHIFT;
        return 0;
    }
    for (int i = 0; px->peers && i < px->peers->n; i++)
        if (px->peers->a[i].id == id)
            pa = &px->peers->a[i];
    if (!pa || !pa->ok || hops == 0) {
        px->cancels_dropped++;
        if (hops == 0)
            px_warn("cancel request for peer %d was forwarded %u times already (do two processes share a "
                    "peer_id?): dropped", id, PX_PEER_HOPS_MAX);
        else
            px_debug("cancel request for peer %d, %s: dropped", id,
                     pa ? "whose address did not resolve" : "which [peers] does not list");
        return 1;
    }
    *pid = (*pid & ~(PX_PEER_HOPS_MAX << PX_PEER_HOPS_SHIFT)) | ((hops - 1) << PX_PEER_HOPS_SHIFT);
    forward(px, pa, *pid, key);
    return 1;
}

int px_peer_own_listener(const struct conf *c, const char *host, int port)
{
    for (int i = 0; c->peer_id && i < c->npeers; i++) {
        const struct conf_peer *p = &c->peers[i];

        if (p->id == c->peer_id && (!host || (strcmp(p->host, host) == 0 && p->port == port)))
            return 1;
    }
    return 0;
}

void px_peers_stop(struct proxy *px)
{
    if (!px->peers)
        return;
    while (!px_list_empty(&px->peers->inflight))
        forward_end(px_container_of(px->peers->inflight.next, struct peer_forward, link));
}

void px_peers_free(struct proxy *px)
{
    if (!px->peers)
        return;
    free_addrs(px->peers);
    free(px->peers);
    px->peers = NULL;
}
