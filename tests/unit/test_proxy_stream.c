/*
 * The stream layer (proxy/net/stream.c) on a real libuv loop over socketpairs: bytes reach the
 * owner's callbacks as they arrive, a forward to a full socket stops the source's reads until it
 * completes, copies queued past PX_QUEUE_HIGH block the source until the queue is below half of it,
 * copies and forwards keep their order, closing either side with a write in flight frees each
 * stream once (run under ASan to see the use-after-free this would be), and the TLS transport
 * reports its handshake and delivers plaintext through the same callbacks.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proxy/net/stream.h"
#include "proxy/net/tls.h"

enum mode { FRAME, FORWARD, COPY };

struct owner {
    struct px_conn conn;       /* first: the stream's callbacks get &conn */
    enum mode mode;
    struct owner *peer;        /* where FORWARD and COPY send what is read */
    int *freed;                /* set by on_closed, which frees the owner */
    int reads, eofs, eof_status, sents;
    int refused;               /* FORWARD: px_forward answered UV_ECANCELED (the peer is closing) */
    int handshakes;
    char types[64];            /* FRAME: message types seen, in order */
    int ntypes;
    size_t peer_queue_max;     /* COPY: the peer's write queue after each copy */
    size_t unblock_queue_max;  /* COPY: the peer's write queue whenever reads resumed */
    int unblocks;
};

struct test_loop {
    uv_loop_t loop;
    uv_timer_t watchdog;
    int timed_out;
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void on_read(struct px_conn *c)
{
    struct owner *o = (struct owner *)c;
    struct px_buf *b = &c->in;
    int r;

    o->reads++;
    switch (o->mode) {
    case FRAME:
        /* Only whole messages count; a partial one waits in data[pos, len). */
        while (b->len - b->pos >= 5 && b->len - b->pos >= 1 + be32(b->data + b->pos + 1)) {
            if (o->ntypes < (int)sizeof(o->types) - 1)
                o->types[o->ntypes++] = (char)b->data[b->pos];
            b->pos += 1 + be32(b->data + b->pos + 1);
        }
        b->start = b->pos;
        break;
    case FORWARD:
        b->pos = b->len;
        if (!o->peer) {                           /* the peer is gone: drop what arrives */
            b->start = b->pos;
            break;
        }
        r = px_forward(c, &o->peer->conn);
        if (r == UV_ECANCELED) {                  /* the peer is closing */
            o->refused++;
            b->start = b->pos;
            break;
        }
        assert_int_equal(r, 0);
        break;
    case COPY:
        assert_int_equal(px_conn_send_copy(&o->peer->conn, b->data + b->start, b->len - b->start), 0);
        b->start = b->pos = b->len;
        px_conn_backpressure(c, &o->peer->conn);
        if (o->peer->conn.h.stream.write_queue_size > o->peer_queue_max)
            o->peer_queue_max = o->peer->conn.h.stream.write_queue_size;
        break;
    }
}

static void on_eof(struct px_conn *c, int status)
{
    struct owner *o = (struct owner *)c;

    o->eofs++;
    o->eof_status = status;
}

/* A forward completed, or the stream was unblocked: read again. */
static void on_sent(struct px_conn *c)
{
    struct owner *o = (struct owner *)c;

    o->sents++;
    if (o->mode == COPY && o->peer) {
        size_t q = o->peer->conn.h.stream.write_queue_size;

        o->unblocks++;
        if (q > o->unblock_queue_max)
            o->unblock_queue_max = q;
    }
    px_conn_read_start(c);
}

static void on_closed(struct px_conn *c)
{
    struct owner *o = (struct owner *)c;

    if (o->peer)
        o->peer->peer = NULL;
    *o->freed = 1;
    free(o);
}

static void on_handshake(struct px_conn *c)
{
    ((struct owner *)c)->handshakes++;
}

static struct px_conn *peer(struct px_conn *c)
{
    struct owner *o = (struct owner *)c;

    return o->peer ? &o->peer->conn : NULL;
}

static const struct px_stream_ops owner_ops = {
    .tag = 'T', .on_read = on_read, .on_eof = on_eof, .on_sent = on_sent, .on_closed = on_closed,
    .peer = peer, .on_handshake = on_handshake,
};

static void on_watchdog(uv_timer_t *t)
{
    struct test_loop *tl = t->data;

    tl->timed_out = 1;
}

static void loop_init(struct test_loop *tl)
{
    memset(tl, 0, sizeof(*tl));
    assert_int_equal(uv_loop_init(&tl->loop), 0);
    uv_timer_init(&tl->loop, &tl->watchdog);
    tl->watchdog.data = tl;
    uv_timer_start(&tl->watchdog, on_watchdog, 20000, 0);
    uv_unref((uv_handle_t *)&tl->watchdog);
}

static void loop_done(struct test_loop *tl)
{
    uv_close((uv_handle_t *)&tl->watchdog, NULL);
    uv_run(&tl->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&tl->loop), 0);
}

/* Runs the loop until *flag reaches want (the watchdog fails the test after 20 s). */
static void run_until(struct test_loop *tl, const int *flag, int want)
{
    uv_ref((uv_handle_t *)&tl->watchdog);
    while (*flag < want && !tl->timed_out)
        uv_run(&tl->loop, UV_RUN_ONCE);
    uv_unref((uv_handle_t *)&tl->watchdog);
    assert_false(tl->timed_out);
}

static void pump(struct test_loop *tl, int times)
{
    for (int i = 0; i < times; i++)
        uv_run(&tl->loop, UV_RUN_NOWAIT);
}

/* A connected pair: fd[0] for a stream, fd[1] non-blocking for the test's raw end. */
static void pair(int fd[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
    assert_int_equal(fcntl(fd[1], F_SETFL, fcntl(fd[1], F_GETFL) | O_NONBLOCK), 0);
}

static struct owner *owner_new(struct test_loop *tl, int fd, enum mode mode, int *freed)
{
    struct owner *o = calloc(1, sizeof(*o));

    assert_non_null(o);
    px_conn_init(NULL, &o->conn, &owner_ops);
    o->mode = mode;
    o->freed = freed;
    *freed = 0;
    assert_int_equal(uv_pipe_init(&tl->loop, &o->conn.h.pipe, 0), 0);
    assert_int_equal(uv_pipe_open(&o->conn.h.pipe, fd), 0);
    return o;
}

static void write_all(int fd, const void *p, size_t n)
{
    assert_int_equal(write(fd, p, n), (ssize_t)n);
}

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 7 + i / 251);
}

/* Writes pattern bytes [*sent, total) into fd as far as the socket takes them. */
static void feed(int fd, size_t *sent, size_t total)
{
    uint8_t chunk[8192];

    while (*sent < total) {
        size_t n = total - *sent < sizeof(chunk) ? total - *sent : sizeof(chunk);
        ssize_t w;

        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(*sent + i);
        w = write(fd, chunk, n);
        if (w <= 0)
            return;
        *sent += (size_t)w;
    }
}

/* Reads at most max bytes from fd and checks them against the pattern at *got. */
static void drain(int fd, size_t *got, size_t max)
{
    uint8_t chunk[8192];

    while (max > 0) {
        ssize_t r = read(fd, chunk, max < sizeof(chunk) ? max : sizeof(chunk));

        if (r <= 0)
            return;
        for (ssize_t i = 0; i < r; i++)
            if (chunk[i] != pattern(*got + (size_t)i))
                fail_msg("byte %zu differs", *got + (size_t)i);
        *got += (size_t)r;
        max -= (size_t)r;
    }
}

/* Messages reach the owner as their bytes arrive; a partial message waits; EOF is reported once. */
static void test_framing_delivery(void **state)
{
    static const uint8_t msgs[] = {
        'Q', 0, 0, 0, 9, 'a', 'b', 'c', 'd', 0,
        'S', 0, 0, 0, 4,
        'X', 0, 0, 0, 4,
    };
    struct test_loop tl;
    struct owner *a;
    int fd[2], freed;

    (void)state;
    loop_init(&tl);
    pair(fd);
    a = owner_new(&tl, fd[0], FRAME, &freed);
    px_conn_read_start(&a->conn);
    assert_true(a->conn.reading);

    write_all(fd[1], msgs, 3);
    run_until(&tl, &a->reads, 1);
    assert_int_equal(a->ntypes, 0);               /* half a header: nothing whole yet */
    write_all(fd[1], msgs + 3, 9);                /* the rest of Q and two bytes of S */
    run_until(&tl, &a->reads, 2);
    assert_int_equal(a->ntypes, 1);
    assert_int_equal(a->types[0], 'Q');
    write_all(fd[1], msgs + 12, sizeof(msgs) - 12);
    run_until(&tl, &a->ntypes, 3);
    assert_memory_equal(a->types, "QSX", 3);

    close(fd[1]);
    run_until(&tl, &a->eofs, 1);
    assert_int_equal(a->eof_status, UV_EOF);
    assert_false(a->conn.reading);
    assert_int_equal(a->sents, 0);
    px_conn_close(&a->conn);
    run_until(&tl, &freed, 1);
    loop_done(&tl);
}

/* A forward to a full socket: src's reads stop while the write is in flight and resume after it;
 * every byte arrives once and in order. */
static void test_forward_full_peer(void **state)
{
    const size_t total = 4u << 20;
    struct test_loop tl;
    struct owner *a, *b;
    int in[2], out[2], freed_a, freed_b;
    size_t sent = 0, got = 0;
    uint32_t len;
    int reads;

    (void)state;
    loop_init(&tl);
    pair(in);
    pair(out);
    a = owner_new(&tl, in[0], FORWARD, &freed_a);
    b = owner_new(&tl, out[0], FORWARD, &freed_b);
    a->peer = b;
    b->peer = a;
    px_conn_read_start(&a->conn);

    uv_ref((uv_handle_t *)&tl.watchdog);
    while (!a->conn.writing && !tl.timed_out) {
        feed(in[1], &sent, total);
        uv_run(&tl.loop, UV_RUN_NOWAIT);
    }
    assert_false(tl.timed_out);
    assert_true(a->conn.writing);
    assert_false(a->conn.reading);
    assert_non_null(a->conn.wreq);

    /* Nothing more is read while the forward waits, however much the source sends. */
    feed(in[1], &sent, total);
    len = a->conn.in.len;
    reads = a->reads;
    pump(&tl, 20);
    assert_int_equal(a->conn.in.len, len);
    assert_int_equal(a->reads, reads);
    assert_int_equal(a->sents, 0);

    while (got < total && !tl.timed_out) {
        drain(out[1], &got, SIZE_MAX);
        feed(in[1], &sent, total);
        uv_run(&tl.loop, UV_RUN_NOWAIT);
    }
    uv_unref((uv_handle_t *)&tl.watchdog);
    assert_false(tl.timed_out);
    assert_int_equal(got, total);
    assert_true(a->sents >= 1);                   /* on_sent after each completed forward */
    assert_false(a->conn.writing);
    assert_true(a->conn.reading);

    px_conn_close(&a->conn);
    px_conn_close(&b->conn);
    run_until(&tl, &freed_a, 1);
    run_until(&tl, &freed_b, 1);
    close(in[1]);
    close(out[1]);
    loop_done(&tl);
}

/* Copies queued towards a peer past PX_QUEUE_HIGH stop the source; it reads again only once the
 * queue is at most half of that. The queue never grows past PX_QUEUE_HIGH and one read. */
static void test_copy_backpressure(void **state)
{
    const size_t total = 3u << 20;
    struct test_loop tl;
    struct owner *a, *b;
    int in[2], out[2], freed_a, freed_b;
    size_t sent = 0, got = 0;

    (void)state;
    loop_init(&tl);
    pair(in);
    pair(out);
    a = owner_new(&tl, in[0], COPY, &freed_a);
    b = owner_new(&tl, out[0], FORWARD, &freed_b);
    a->peer = b;
    b->peer = a;
    px_conn_read_start(&a->conn);

    uv_ref((uv_handle_t *)&tl.watchdog);
    while (!a->conn.blocked && !tl.timed_out) {
        feed(in[1], &sent, total);
        uv_run(&tl.loop, UV_RUN_NOWAIT);
    }
    assert_false(tl.timed_out);
    assert_true(a->conn.blocked);
    assert_false(a->conn.reading);
    assert_true(b->conn.h.stream.write_queue_size > PX_QUEUE_HIGH);
    assert_int_equal(a->unblocks, 0);

    /* Drain the reader a little at a time: reads resume only at or below half the mark. */
    while (got < total && !tl.timed_out) {
        drain(out[1], &got, 16384);
        feed(in[1], &sent, total);
        uv_run(&tl.loop, UV_RUN_NOWAIT);
    }
    uv_unref((uv_handle_t *)&tl.watchdog);
    assert_false(tl.timed_out);
    assert_int_equal(got, total);
    assert_true(a->unblocks >= 1);
    assert_true(a->unblock_queue_max <= PX_QUEUE_HIGH / 2);
    assert_true(a->peer_queue_max > PX_QUEUE_HIGH);
    assert_true(a->peer_queue_max <= PX_QUEUE_HIGH + PX_BUF_SIZE);

    px_conn_close(&a->conn);
    px_conn_close(&b->conn);
    run_until(&tl, &freed_a, 1);
    run_until(&tl, &freed_b, 1);
    close(in[1]);
    close(out[1]);
    loop_done(&tl);
}

/* Copies to a socket that fills up (written at once, in part, or queued) arrive in call order, and a
 * forward issued after them arrives after them. */
static void test_send_copy_order(void **state)
{
    enum { N = 40, SZ = 100000 };                  /* over one socket buffer unit: partial writes */
    struct test_loop tl;
    struct owner *a, *b;
    int in[2], out[2], freed_a, freed_b;
    uint8_t msg[SZ], *all;
    size_t got = 0, want = (size_t)N * SZ + 5;

    (void)state;
    loop_init(&tl);
    pair(in);
    pair(out);
    a = owner_new(&tl, in[0], FORWARD, &freed_a);
    b = owner_new(&tl, out[0], FORWARD, &freed_b);
    a->peer = b;
    b->peer = a;
    for (uint32_t i = 0; i < N; i++) {
        /* The same buffer every time: the stream must have copied what it could not write. */
        memset(msg, (int)(i & 0xff), sizeof(msg));
        memcpy(msg, &i, sizeof(i));
        assert_int_equal(px_conn_send_copy(&b->conn, msg, sizeof(msg)), 0);
    }
    assert_true(b->conn.h.stream.write_queue_size > 0);
    px_conn_read_start(&a->conn);
    write_all(in[1], "tail!", 5);
    run_until(&tl, &a->reads, 1);

    all = malloc(want);
    assert_non_null(all);
    uv_ref((uv_handle_t *)&tl.watchdog);
    while (got < want && !tl.timed_out) {
        ssize_t r = read(out[1], all + got, want - got);

        if (r > 0)
            got += (size_t)r;
        uv_run(&tl.loop, UV_RUN_NOWAIT);
    }
    uv_unref((uv_handle_t *)&tl.watchdog);
    assert_false(tl.timed_out);
    for (uint32_t i = 0; i < N; i++) {
        uint32_t seq;

        memcpy(&seq, all + (size_t)i * SZ, sizeof(seq));
        assert_int_equal(seq, i);
        for (size_t k = sizeof(seq); k < SZ; k++)
            if (all[(size_t)i * SZ + k] != (i & 0xff))
                fail_msg("message %u byte %zu differs", i, k);
    }
    assert_memory_equal(all + (size_t)N * SZ, "tail!", 5);
    free(all);

    px_conn_close(&a->conn);
    px_conn_close(&b->conn);
    run_until(&tl, &freed_a, 1);
    run_until(&tl, &freed_b, 1);
    close(in[1]);
    close(out[1]);
    loop_done(&tl);
}

/* Fills b's socket through a forward from a, until a's forward is in flight. */
static void forward_in_flight(struct test_loop *tl, struct owner *a, int in_fd, size_t *sent, size_t total)
{
    px_conn_read_start(&a->conn);
    uv_ref((uv_handle_t *)&tl->watchdog);
    while (!a->conn.writing && !tl->timed_out) {
        feed(in_fd, sent, total);
        uv_run(&tl->loop, UV_RUN_NOWAIT);
    }
    uv_unref((uv_handle_t *)&tl->watchdog);
    assert_false(tl->timed_out);
    assert_true(a->conn.writing);
}

/* The source closes while its forward is in flight: its memory (the bytes being written) stays until
 * the write completes, then the owner is freed once. */
static void test_close_source_during_write(void **state)
{
    const size_t total = 4u << 20;
    struct test_loop tl;
    struct owner *a, *b;
    int in[2], out[2], freed_a, freed_b;
    size_t sent = 0, got = 0;

    (void)state;
    loop_init(&tl);
    pair(in);
    pair(out);
    a = owner_new(&tl, in[0], FORWARD, &freed_a);
    b = owner_new(&tl, out[0], FORWARD, &freed_b);
    a->peer = b;
    b->peer = a;
    forward_in_flight(&tl, a, in[1], &sent, total);

    px_conn_close(&a->conn);
    pump(&tl, 20);
    assert_int_equal(freed_a, 0);                 /* close_cb ran, the write still holds a's buffer */
    uv_ref((uv_handle_t *)&tl.watchdog);
    while (!freed_a && !tl.timed_out) {
        drain(out[1], &got, SIZE_MAX);
        uv_run(&tl.loop, UV_RUN_NOWAIT);
    }
    uv_unref((uv_handle_t *)&tl.watchdog);
    assert_false(tl.timed_out);
    assert_true(freed_a);
    drain(out[1], &got, SIZE_MAX);
    assert_true(got > 0 && got <= sent);          /* what a had read went out intact */
    assert_null(b->peer);

    px_conn_close(&b->conn);
    run_until(&tl, &freed_b, 1);
    close(in[1]);
    close(out[1]);
    loop_done(&tl);
}

/* The destination closes (its reader gone) while a forward into it is in flight: the write fails,
 * the source hears on_sent, later forwards are refused, and both are freed once. */
static void test_close_destination_during_write(void **state)
{
    const size_t total = 4u << 20;
    struct test_loop tl;
    struct owner *a, *b;
    int in[2], out[2], freed_a, freed_b;
    size_t sent = 0;

    (void)state;
    loop_init(&tl);
    pair(in);
    pair(out);
    a = owner_new(&tl, in[0], FORWARD, &freed_a);
    b = owner_new(&tl, out[0], FORWARD, &freed_b);
    a->peer = b;
    b->peer = a;
    forward_in_flight(&tl, a, in[1], &sent, total);

    close(out[1]);
    px_conn_close(&b->conn);
    assert_int_equal(px_conn_send_copy(&b->conn, "x", 1), -1);
    run_until(&tl, &freed_b, 1);
    run_until(&tl, &a->sents, 1);
    assert_false(a->conn.writing);
    assert_null(a->peer);

    px_conn_close(&a->conn);
    run_until(&tl, &freed_a, 1);
    close(in[1]);
    loop_done(&tl);
}

/* A context with a fresh self-signed P-256 certificate, for the accepting side. */
static SSL_CTX *accepting_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    X509_NAME *name;

    assert_non_null(key);
    assert_non_null(x);
    assert_non_null(ctx);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

/* Two TLS streams talk over one socketpair: each owner hears on_handshake once, then messages sent as
 * copies arrive decrypted through on_read, and a forward goes through the TLS transport too. */
static void test_tls_transport(void **state)
{
    static const uint8_t q[] = { 'Q', 0, 0, 0, 9, 'a', 'b', 'c', 'd', 0 };
    static const uint8_t sx[] = { 'S', 0, 0, 0, 4, 'X', 0, 0, 0, 4 };
    SSL_CTX *sctx = accepting_ctx(), *cctx = SSL_CTX_new(TLS_client_method());
    struct test_loop tl;
    struct owner *acc, *con, *plain;
    int fd[2], p[2], freed_acc, freed_con, freed_plain;
    uint8_t hash[64];
    size_t hlen;

    (void)state;
    assert_non_null(cctx);
    loop_init(&tl);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
    acc = owner_new(&tl, fd[0], FRAME, &freed_acc);
    con = owner_new(&tl, fd[1], FRAME, &freed_con);
    assert_int_equal(px_tls_start(&acc->conn, sctx, 1, NULL), 0);
    assert_int_equal(px_tls_start(&con->conn, cctx, 0, NULL), 0);   /* sends the ClientHello */
    px_conn_read_start(&acc->conn);
    px_conn_read_start(&con->conn);
    run_until(&tl, &con->handshakes, 1);
    run_until(&tl, &acc->handshakes, 1);
    assert_true(px_tls_handshake_done(&acc->conn));
    assert_true(px_tls_handshake_done(&con->conn));
    assert_non_null(px_tls_version(&acc->conn));
    assert_int_equal(px_tls_endpoint_hash(&acc->conn, hash, sizeof(hash), &hlen), 0);
    assert_int_equal(hlen, 32);                   /* SHA-256, the certificate's signature digest */

    assert_int_equal(px_conn_send_copy(&con->conn, q, sizeof(q)), 0);
    run_until(&tl, &acc->ntypes, 1);
    assert_int_equal(acc->types[0], 'Q');
    /* A plaintext stream forwarding into con: con's TLS transport encrypts what it is given at once,
     * so the source never has a write in flight. */
    pair(p);
    plain = owner_new(&tl, p[0], FORWARD, &freed_plain);
    plain->peer = con;
    con->peer = plain;                            /* whose reads con's written records may resume */
    px_conn_read_start(&plain->conn);
    write_all(p[1], sx, sizeof(sx));
    run_until(&tl, &acc->ntypes, 3);
    assert_int_equal(plain->reads, 1);
    assert_false(plain->conn.writing);
    assert_true(plain->conn.reading);
    assert_int_equal(plain->conn.in.start, plain->conn.in.pos);
    assert_memory_equal(acc->types, "QSX", 3);
    assert_int_equal(acc->eofs + con->eofs, 0);
    assert_int_equal(con->ntypes, 0);

    px_conn_close(&plain->conn);
    px_conn_close(&acc->conn);
    px_conn_close(&con->conn);
    run_until(&tl, &freed_plain, 1);
    run_until(&tl, &freed_acc, 1);
    run_until(&tl, &freed_con, 1);
    close(p[1]);
    loop_done(&tl);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

/* Bytes that are not TLS end the stream with UV_EPROTO and the reason is kept. */
static void test_tls_garbage(void **state)
{
    SSL_CTX *sctx = accepting_ctx();
    struct test_loop tl;
    struct owner *acc;
    int fd[2], freed;

    (void)state;
    loop_init(&tl);
    pair(fd);
    acc = owner_new(&tl, fd[0], FRAME, &freed);
    assert_int_equal(px_tls_start(&acc->conn, sctx, 1, NULL), 0);
    px_conn_read_start(&acc->conn);
    write_all(fd[1], "GET / HTTP/1.0\r\n\r\n", 18);
    run_until(&tl, &acc->eofs, 1);
    assert_int_equal(acc->eof_status, UV_EPROTO);
    assert_non_null(px_tls_error(&acc->conn));
    assert_int_equal(acc->handshakes + acc->reads, 0);
    px_conn_close(&acc->conn);
    run_until(&tl, &freed, 1);
    close(fd[1]);
    loop_done(&tl);
    SSL_CTX_free(sctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing_delivery),
        cmocka_unit_test(test_forward_full_peer),
        cmocka_unit_test(test_copy_backpressure),
        cmocka_unit_test(test_send_copy_order),
        cmocka_unit_test(test_close_source_during_write),
        cmocka_unit_test(test_close_destination_during_write),
        cmocka_unit_test(test_tls_transport),
        cmocka_unit_test(test_tls_garbage),
    };

    signal(SIGPIPE, SIG_IGN);   /* as pglane does: a write to a closed socket fails with EPIPE */
    int failed = cmocka_run_group_tests_name("unit: proxy stream", tests, NULL, NULL);

    px_buf_pool_drain();
    return failed;
}
