/*
 * Prometheus metrics over HTTP at metrics_listen: a libuv TCP listener in the proxy's loop. Each
 * connection sends one request (at most 8 kB of headers, else 431, within 5 s, else 408); GET /metrics
 * gets the text exposition format, anything else 400, 404 or 405. Every answer closes the connection.
 * At most 64 connections: a new one pushes out the oldest that has not sent its request yet (so idle
 * connections cannot starve a scraper), or, when every one is being answered, gets 503 at once.
 * With several workers the answer waits for every worker's text (a gather, proxy/workers.c), merged
 * into one (metrics_merge.c); a connection that closes meanwhile is found gone and the texts dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/metrics_merge.h"
#include "proxy/admin/monitor.h"

#define REQ_MAX 8192
#define REQ_TIMEOUT_MS 5000
#define MAX_CONNS 64

static const char TEXT[] = "text/plain; charset=utf-8";

struct metrics {
    struct proxy *px;
    uv_tcp_t listener;
    struct px_list conns;         /* mconn.link */
    int nconns;
    uint64_t next_id;
    int listener_closed;          /* m is freed once this is set and no connection remains */
};

struct mconn {
    uv_tcp_t tcp;                 /* must be first */
    struct metrics *m;
    struct px_list link;
    uv_timer_t timer;
    uv_write_t wreq;
    struct proto_buf resp;
    size_t len;
    uint64_t id;                  /* names the connection to a gather of the workers' texts */
    int answered, closing;
    int gathering, head_only;     /* waiting for the workers' texts (a GET or HEAD) */
    uv_shutdown_t sreq;
    char req[REQ_MAX];
};

static void on_timeout(uv_timer_t *t);

static void on_timer_closed(uv_handle_t *h)
{
    struct mconn *c = h->data;

    struct metrics *m = c->m;

    proto_buf_free(&c->resp);
    px_list_remove(&c->link);
    free(c);
    if (--m->nconns == 0 && m->listener_closed)
        free(m);
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct mconn *c = (struct mconn *)h;

    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void conn_close(struct mconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
}

static void on_discard_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct mconn *c = (struct mconn *)h;

    (void)suggested;
    *buf = uv_buf_init(c->req, REQ_MAX);
}

static void on_discard(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n < 0)
        conn_close((struct mconn *)s);
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)req, (void)status;
}

/*
 * The answer is out. Closing a socket with unread request bytes makes the kernel send a reset,
 * which can destroy the answer before the client reads it (an oversized or unfinished request):
 * so the write side is shut down and what the client still sends is read and dropped until it
 * closes, for at most a second.
 */
static void on_written(uv_write_t *req, int status)
{
    struct mconn *c = req->data;

    if (status < 0 || c->closing || uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown_done) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_discard_alloc, on_discard) < 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, 1000, 0);
}

static void respond(struct mconn *c, int code, const char *reason, const char *ctype, const struct proto_buf *body)
{
    char head[256];
    uv_buf_t b;
    int n;

    uv_read_stop((uv_stream_t *)&c->tcp);
    c->answered = 1;
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", code,
                 reason, ctype, body ? body->len : strlen(reason) + 1);
    proto_buf_init(&c->resp);
    proto_put_bytes(&c->resp, head, (size_t)n);
    if (body)
        proto_put_bytes(&c->resp, body->data, body->len);
    else {
        proto_put_bytes(&c->resp, reason, strlen(reason));
        proto_put_u8(&c->resp, '\n');
    }
    if (c->resp.failed) {
        conn_close(c);
        return;
    }
    b = uv_buf_init((char *)c->resp.data, (unsigned)c->resp.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
        conn_close(c);
}

/* body: the whole text (failed: 500). */
static void send_metrics(struct mconn *c, struct proto_buf *body)
{
    if (body->failed) {
        respond(c, 500, "Internal Server Error", TEXT, NULL);
        return;
    }
    if (c->head_only)
        body->len = 0;
    respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
}

static struct mconn *conn_by_id(struct metrics *m, uint64_t id)
{
    for (struct px_list *it = m->conns.next; it != &m->conns; it = it->next) {
        struct mconn *c = px_container_of(it, struct mconn, link);

        if (c->id == id)
            return c->closing || c->answered ? NULL : c;
    }
    return NULL;
}

/* Every worker's text is in (a gather): merged, if the connection still waits for it. */
static void on_texts(struct proxy *px, uint64_t id, int which, const char *arg, struct proto_buf *parts, int n)
{
    struct mconn *c = px->metrics ? conn_by_id(px->metrics, id) : NULL;
    const char *texts[CONF_WORKERS_MAX];
    size_t lens[CONF_WORKERS_MAX];
    struct proto_buf body;
    int failed = 0;

    (void)which;
    (void)arg;
    if (!c)
        return;                    /* closed or timed out meanwhile */
    c->gathering = 0;
    for (int i = 0; i < n; i++) {
        texts[i] = (const char *)parts[i].data;
        lens[i] = parts[i].len;
        failed |= parts[i].failed; /* a worker's text is incomplete: 500 rather than a partial sum */
    }
    proto_buf_init(&body);
    if (failed || px_metrics_merge(texts, lens, n, &body) < 0)
        body.failed = 1;
    send_metrics(c, &body);
    proto_buf_free(&body);
}

static void serve_metrics(struct mconn *c, int head_only)
{
    struct proto_buf body;

    c->head_only = head_only;
    c->gathering = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (px_workers_gather_start(c->m->px, PX_GATHER_METRICS, c->id, on_texts))
        return;                    /* several workers: answered by on_texts */
    c->gathering = 0;
    proto_buf_init(&body);
    px_metrics_render(c->m->px, &body);
    send_metrics(c, &body);
    proto_buf_free(&body);
}

/* The request line is "METHOD SP target SP HTTP/1.x"; headers are not needed. */
static void handle_request(struct mconn *c)
{
    char method[16], target[256], version[16];
    const char *text = TEXT;
    char *eol = memchr(c->req, '\n', c->len);

    if (!eol || sscanf(c->req, "%15s %255s %15s", method, target, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0 || (size_t)(eol - c->req) > sizeof(target) + 40) {
        respond(c, 400, "Bad Request", text, NULL);
        return;
    }
    if (strcmp(target, "/metrics") != 0 && strncmp(target, "/metrics?", 9) != 0) {
        respond(c, 404, "Not Found", text, NULL);
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        respond(c, 405, "Method Not Allowed", text, NULL);
        return;
    }
    serve_metrics(c, strcmp(method, "HEAD") == 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct mconn *c = (struct mconn *)h;

    (void)suggested;
    *buf = uv_buf_init(c->req + c->len, (unsigned)(REQ_MAX - c->len));
}

static int request_complete(const struct mconn *c)
{
    for (size_t i = 0; i + 1 < c->len; i++)
        if (c->req[i] == '\n' && (c->req[i + 1] == '\n' || (c->req[i + 1] == '\r' && i + 2 < c->len &&
                                                             c->req[i + 2] == '\n')))
            return 1;
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct mconn *c = (struct mconn *)s;

    (void)buf;
    if (c->answered || n == 0)
        return;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    if (request_complete(c)) {
        handle_request(c);
        return;
    }
    if (c->len >= REQ_MAX)
        respond(c, 431, "Request Header Fields Too Large", TEXT, NULL);
}

/* A request not complete in time gets 408, one whose workers' texts are not all in by then 503; an
 * answer not taken in time is dropped. */
static void on_timeout(uv_timer_t *t)
{
    struct mconn *c = t->data;

    if (c->answered || c->closing) {
        conn_close(c);
        return;
    }
    if (c->gathering) {            /* a worker did not give its text in time */
        c->gathering = 0;
        respond(c, 503, "Service Unavailable", TEXT, NULL);
        uv_timer_start(&c->timer, on_timeout, REQ_TIMEOUT_MS, 0);
        return;
    }
    respond(c, 408, "Request Timeout", TEXT, NULL);
    uv_timer_start(&c->timer, on_timeout, REQ_TIMEOUT_MS, 0);   /* then the answer has 5 s to go out */
}

/* At the cap: closes the oldest connection other than fresh still waiting for its request. 1 if one was. */
static int evict_idle(struct metrics *m, const struct mconn *fresh)
{
    for (struct px_list *it = m->conns.next; it != &m->conns; it = it->next) {
        struct mconn *c = px_container_of(it, struct mconn, link);

        if (c != fresh && !c->answered && !c->closing && !c->gathering) {
            conn_close(c);
            return 1;
        }
    }
    return 0;
}

/* Connections not yet closing (closed ones linger until their handles' callbacks run). */
static int live_conns(const struct metrics *m)
{
    int n = 0;

    for (const struct px_list *it = m->conns.next; it != &m->conns; it = it->next)
        n += !px_container_of(it, struct mconn, link)->closing;
    return n;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct metrics *m = server->data;
    struct mconn *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->m = m;
    c->id = ++m->next_id;
    px_list_append(&m->conns, &c->link);
    uv_tcp_init(m->px->loop, &c->tcp);
    uv_timer_init(m->px->loop, &c->timer);
    c->timer.data = c;
    m->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, REQ_TIMEOUT_MS, 0);
    if (live_conns(m) > MAX_CONNS && !evict_idle(m, c)) {
        respond(c, 503, "Service Unavailable", TEXT, NULL);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

int px_metrics_start(struct proxy *px)
{
    const struct conf *c = px->conf;
    struct metrics *m;
    struct sockaddr_storage ss;
    int r;

    if (!c->metrics.host)
        return 0;
    if (px_sock_numeric_addr(c->metrics.host, c->metrics.port, &ss) < 0) {
        px_error("metrics_listen: %s is not a numeric IPv4 or IPv6 address", c->metrics.host);
        return -1;
    }
    m = calloc(1, sizeof(*m));
    if (!m)
        return -1;
    m->px = px;
    px_list_init(&m->conns);
    px->metrics = m;
    r = px_sock_listen_tcp(px->loop, &m->listener, (const struct sockaddr *)&ss, 128, on_connection);
    m->listener.data = m;
    if (r < 0) {
        px_error("metrics_listen %s:%d: %s", c->metrics.host, c->metrics.port, uv_strerror(r));
        return -1;
    }
    px_info("metrics at http://%s:%d/metrics", c->metrics.host, c->metrics.port);
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct metrics *m = h->data;

    m->listener_closed = 1;
    if (m->nconns == 0)
        free(m);
}

void px_metrics_stop(struct proxy *px)
{
    struct metrics *m = px->metrics;

    if (!m)
        return;
    px->metrics = NULL;
    for (struct px_list *it = m->conns.next; it != &m->conns; it = it->next)
        conn_close(px_container_of(it, struct mconn, link));
    uv_close((uv_handle_t *)&m->listener, on_listener_closed);
}
