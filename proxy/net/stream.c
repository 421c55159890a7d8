/*
 * The stream: moves bytes between sockets. Each connection reads into its own lazily allocated
 * buffer; scanned bytes are written to the peer straight from that buffer (no copy): one
 * non-blocking send, and only if the socket is full a uv_write of the rest, with the source's reads
 * stopped until it completes. Events go to the owner's px_stream_ops; plaintext and TLS differ only
 * in their px_transport (plaintext here, TLS in proxy/net/tls.c).
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "protocol/proto.h"
#include "proxy/net/stream.h"

/* Free list of PX_BUF_SIZE buffers so that busy connections do not malloc per read. */
#define POOL_MAX 64
static _Thread_local uint8_t *buf_pool[POOL_MAX];   /* per worker: its loop's spare buffers */
static _Thread_local int buf_pool_n;

static uint8_t *buf_get(void)
{
    if (buf_pool_n > 0)
        return buf_pool[--buf_pool_n];
    return malloc(PX_BUF_SIZE);
}

static void buf_put(uint8_t *p, uint32_t cap)
{
    if (cap == PX_BUF_SIZE && buf_pool_n < POOL_MAX)
        buf_pool[buf_pool_n++] = p;
    else
        free(p);
}

void px_buf_pool_drain(void)
{
    while (buf_pool_n > 0)
        free(buf_pool[--buf_pool_n]);
}

void px_buf_compact(struct px_buf *b)
{
    if (b->start == 0)
        return;
    memmove(b->data, b->data + b->start, b->len - b->start);
    b->pos -= b->start;
    b->len -= b->start;
    b->start = 0;
}

int px_buf_reserve(struct px_buf *b, uint32_t need)
{
    uint32_t cap;
    uint8_t *p;

    if (!b->data) {
        b->data = buf_get();
        if (!b->data)
            return -1;
        b->cap = PX_BUF_SIZE;
        b->start = b->pos = b->len = 0;
    }
    if (b->cap - b->len >= need)
        return 0;
    px_buf_compact(b);
    if (b->cap - b->len >= need)
        return 0;
    if ((uint64_t)b->len + need > PX_BUF_MAX)
        return -1;
    cap = b->cap;
    while (cap - b->len < need)
        cap = cap * 2 > PX_BUF_MAX ? PX_BUF_MAX : cap * 2;
    p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

void px_buf_release(struct px_buf *b)
{
    if (!b->data || b->start != b->len)
        return;
    buf_put(b->data, b->cap);
    b->data = NULL;
    b->cap = b->start = b->pos = b->len = 0;
}

static void buf_free(struct px_buf *b)
{
    if (b->data)
        buf_put(b->data, b->cap);
    memset(b, 0, sizeof(*b));
}

static void plain_alloc(struct px_conn *c, uv_buf_t *buf)
{
    /* Everything read was consumed: start over at the front, so the next read gets the whole buffer
     * (a long result then costs fewer reads). Keep at least PX_READ_MIN bytes of room. */
    if (c->in.start == c->in.len && !c->writing) {
        if (c->in.cap > PX_BUF_SIZE)
            px_buf_release(&c->in); /* grown for a large message that is done: give it back */
        else
            px_buf_compact(&c->in); /* nothing to move: only the offsets go back to 0 */
    }
    if (px_buf_reserve(&c->in, PX_READ_MIN) < 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = (char *)c->in.data + c->in.len;
    buf->len = c->in.cap - c->in.len;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct px_conn *c = (struct px_conn *)h;

    (void)suggested;
    c->io->alloc(c, buf);
}

static int plain_decode(struct px_conn *c, size_t n)
{
    c->in.len += (uint32_t)n;
    return PX_IO_DATA;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct px_conn *c = (struct px_conn *)s;

    (void)buf;
    if (n > 0) {
        int r = c->io->decode(c, (size_t)n);

        if (r >= 0) {
            if ((r & PX_IO_HANDSHAKE) && c->ops->on_handshake)
                c->ops->on_handshake(c);
            if ((r & PX_IO_DATA) && !c->closing)
                c->ops->on_read(c);
            return;
        }
        n = r;
    }
    if (n == 0) {
        px_buf_release(&c->in);
        return;
    }
    px_buf_release(&c->in);
    c->eof = 1;
    px_conn_read_stop(c);
    c->ops->on_eof(c, (int)n);
}

void px_conn_init(struct proxy *px, struct px_conn *c, const struct px_stream_ops *ops)
{
    static _Atomic uint64_t next_id;   /* unique across workers */

    c->px = px;
    c->ops = ops;
    c->io = &px_plain_transport;
    c->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed) + 1;
}

void px_conn_read_start(struct px_conn *c)
{
    if (c->reading || c->closing || c->lingering || c->eof || c->writing || c->blocked)
        return;
    if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
        c->reading = 1;
}

void px_conn_read_stop(struct px_conn *c)
{
    if (!c->reading)
        return;
    uv_read_stop(&c->h.stream);
    c->reading = 0;
}

static void conn_free(struct px_conn *c)
{
    c->io->free(c);
    buf_free(&c->in);
    c->ops->on_closed(c);
}

static void on_close(uv_handle_t *h)
{
    struct px_conn *c = (struct px_conn *)h;

    c->handle_closed = 1;
    if (!c->writing)
        conn_free(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct px_conn *c = req->data;

    (void)status;
    free(req);
    uv_close(&c->h.handle, on_close);
}

static void on_linger_shutdown(uv_shutdown_t *req, int status);

void px_conn_close(struct px_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->lingering) {            /* the wait for the peer's EOF ends here */
        uv_read_stop(&c->h.stream);
        c->reading = 0;
        uv_close(&c->h.handle, on_close);   /* a shutdown still pending is cancelled */
        return;
    }
    px_conn_read_stop(c);
    /* Let queued writes (an ErrorResponse, the tail of a result) reach the peer before closing; also
     * after its end of stream, which may be a shutdown for writing only (a failed write ends it). */
    if (c->h.stream.write_queue_size > 0) {
        uv_shutdown_t *req = malloc(sizeof(*req));

        if (req) {
            req->data = c;
            if (uv_shutdown(req, &c->h.stream, on_shutdown) == 0)
                return;
            free(req);
        }
    }
    uv_close(&c->h.handle, on_close);
}

static void on_linger_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static _Thread_local char sink[4096];   /* what a closing server still sends is not kept */

    (void)h;
    (void)suggested;
    buf->base = sink;
    buf->len = sizeof(sink);
}

static void on_linger_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n < 0)                     /* EOF or an error: the peer has gone */
        px_conn_close((struct px_conn *)s);
}

static void on_linger_shutdown(uv_shutdown_t *req, int status)
{
    struct px_conn *c = req->data;

    free(req);
    if (c->closing)                /* closed meanwhile (status UV_ECANCELED) */
        return;
    if (status < 0 || uv_read_start(&c->h.stream, on_linger_alloc, on_linger_read) < 0)
        px_conn_close(c);
    else
        c->reading = 1;
}

int px_conn_linger(struct px_conn *c)
{
    uv_shutdown_t *req;

    if (c->closing || c->lingering || c->eof || c->tls || !(req = malloc(sizeof(*req))))
        return -1;
    px_conn_read_stop(c);
    req->data = c;
    if (uv_shutdown(req, &c->h.stream, on_linger_shutdown) < 0) {
        free(req);
        return -1;
    }
    c->lingering = 1;
    return 0;
}

static void on_half_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;                  /* a failure shows as an error or EOF on the read side */
    free(req);
}

int px_conn_shutdown(struct px_conn *c)
{
    uv_shutdown_t *req;

    if (c->closing || c->lingering || c->tls || !(req = malloc(sizeof(*req))))
        return -1;
    if (uv_shutdown(req, &c->h.stream, on_half_shutdown) < 0) {
        free(req);
        return -1;
    }
    return 0;
}

static void on_forward_done(uv_write_t *req, int status)
{
    struct px_conn *src = req->data;

    free(req);
    src->wreq = NULL;
    src->writing = 0;
    if (src->handle_closed) {
        conn_free(src);
        return;
    }
    if (status == 0)
        src->in.start = src->wend;
    else
        src->in.start = src->in.pos;   /* the peer is gone; its own close path reports it */
    src->ops->on_sent(src);
}

int px_forward(struct px_conn *src, struct px_conn *dst)
{
    if (src->writing || src->in.pos == src->in.start)
        return 0;
    if (dst->closing)
        return UV_ECANCELED;
    return dst->io->forward(src, dst);
}

/*
 * uv_try_write with send(2): what libuv does (nothing when its write queue holds bytes, else one
 * non-blocking write), by the socket call instead of write(2), whose path through the VFS costs
 * more per call on a socket. Bytes written, UV_EAGAIN, or a libuv error.
 */
static int try_send(uv_stream_t *s, const void *data, size_t n)
{
    uv_os_fd_t fd;
    ssize_t r;

    if (s->connect_req != NULL || s->write_queue_size != 0 || uv_fileno((const uv_handle_t *)s, &fd) < 0)
        return UV_EAGAIN;
    do
        r = send(fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r >= 0)
        return (int)r;
    return errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN : uv_translate_sys_error(errno);
}

static int plain_forward(struct px_conn *src, struct px_conn *dst)
{
    struct px_buf *b = &src->in;
    uv_buf_t ub;
    int r;

    r = try_send(&dst->h.stream, b->data + b->start, b->pos - b->start);
    if (r == (int)(b->pos - b->start)) {
        b->start = b->pos;
        return 0;
    }
    if (r < 0 && r != UV_EAGAIN)
        return r;
    if (r > 0)
        b->start += (uint32_t)r;
    ub = uv_buf_init((char *)b->data + b->start, b->pos - b->start);
    src->wreq = malloc(sizeof(*src->wreq));
    if (!src->wreq)
        return UV_ENOMEM;
    src->wreq->data = src;
    r = uv_write(src->wreq, &dst->h.stream, &ub, 1, on_forward_done);
    if (r < 0) {
        free(src->wreq);
        src->wreq = NULL;
        return r;
    }
    src->writing = 1;
    src->wend = b->pos;
    px_conn_read_stop(src);
    return 0;
}

struct copy_req {
    uv_write_t req;
    uint8_t data[];
};

void px_conn_write_done(uv_write_t *req, int status)
{
    uv_stream_t *s = req->handle;

    (void)status;
    free(req);
    px_conn_unblock_peer(s);
}

void px_conn_backpressure(struct px_conn *src, struct px_conn *dst)
{
    if (dst->h.stream.write_queue_size > PX_QUEUE_HIGH) {
        src->blocked = 1;
        px_conn_read_stop(src);
    }
}

void px_conn_unblock(struct px_conn *c)
{
    if (!c->blocked)
        return;
    c->blocked = 0;
    c->ops->on_sent(c);
}

void px_conn_unblock_peer(uv_stream_t *s)
{
    struct px_conn *peer;

    if (uv_is_closing((uv_handle_t *)s) || s->write_queue_size > PX_QUEUE_HIGH / 2)
        return;
    peer = ((struct px_conn *)s)->ops->peer((struct px_conn *)s);
    if (peer)
        px_conn_unblock(peer);
}

int px_conn_send_copy(struct px_conn *c, const void *data, size_t n)
{
    if (c->closing)
        return -1;
    return c->io->send(c, data, n);
}

static int plain_send(struct px_conn *c, const void *data, size_t n)
{
    uv_buf_t ub;
    struct copy_req *cr;
    int r;

    r = try_send(&c->h.stream, data, n);
    if (r == (int)n)
        return 0;
    if (r < 0 && r != UV_EAGAIN)
        return -1;
    if (r < 0)
        r = 0;
    cr = malloc(sizeof(*cr) + n - (size_t)r);
    if (!cr)
        return -1;
    memcpy(cr->data, (const uint8_t *)data + r, n - (size_t)r);
    ub = uv_buf_init((char *)cr->data, (unsigned)(n - (size_t)r));
    if (uv_write(&cr->req, &c->h.stream, &ub, 1, px_conn_write_done) < 0) {
        free(cr);
        return -1;
    }
    return 0;
}

void px_conn_send_error(struct px_conn *c, const char *sqlstate, const char *fmt, ...)
{
    struct proto_buf b;
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    proto_buf_init(&b);
    proto_build_error(&b, "ERROR", sqlstate, msg, NULL, NULL);
    if (!b.failed)
        (void)px_conn_send_copy(c, b.data, b.len);
    proto_buf_free(&b);
}

static void plain_free(struct px_conn *c)
{
    (void)c;
}

const struct px_transport px_plain_transport = {
    .alloc = plain_alloc,
    .decode = plain_decode,
    .forward = plain_forward,
    .send = plain_send,
    .free = plain_free,
};
