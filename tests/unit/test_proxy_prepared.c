/*
 * The prepared-statement rewriter (proxy/prepared.c with proxy/prepared_registry.c and
 * proxy/prepared_queue.c) on a real libuv loop: a client's scanned bytes go through px_prep_forward
 * and the test reads, from the far end of socketpairs, the exact bytes that reach the server and
 * the replies pglane synthesizes to the client. The server's replies are fed to px_prep_on_reply as
 * the server relay does. Statement names are pglane's "_pgl_<id>", ids counting from 1 per registry.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf/conf.h"
#include "proxy/prepared_internal.h"
#include "proxy/proxy.h"

/* ---- bytes ---- */

struct bytes {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

/* One message: type, length, body (string literals carry their own \0s: pass sizeof - 1). */
static void msg(struct bytes *b, char type, const void *body, size_t n)
{
    uint8_t h[5] = { (uint8_t)type, (uint8_t)((n + 4) >> 24), (uint8_t)((n + 4) >> 16), (uint8_t)((n + 4) >> 8),
                     (uint8_t)(n + 4) };

    put(b, h, 5);
    put(b, body, n);
}

#define M(b, type, lit) msg((b), (type), (lit), sizeof(lit) - 1)

static void bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- a proxy, one server connection and two clients over socketpairs ---- */

struct rig {
    uv_loop_t loop;
    uv_timer_t watchdog;
    int timed_out;
    struct conf conf;
    struct proxy px;
    struct px_server sv;
    struct px_client cl[2];
    int sv_fd, cl_fd[2];           /* the raw far ends */
    int closed;
};

static void on_read(struct px_conn *c)
{
    (void)c;
}

static void on_eof(struct px_conn *c, int status)
{
    (void)c;
    (void)status;
}

static void on_sent(struct px_conn *c)
{
    (void)c;
}

static int *closed_counter;

static void on_closed(struct px_conn *c)
{
    (void)c;
    (*closed_counter)++;
}

static struct px_conn *no_peer(struct px_conn *c)
{
    (void)c;
    return NULL;
}

static const struct px_stream_ops ops = {
    .tag = 'T', .on_read = on_read, .on_eof = on_eof, .on_sent = on_sent, .on_closed = on_closed, .peer = no_peer,
};

static void on_watchdog(uv_timer_t *t)
{
    ((struct rig *)t->data)->timed_out = 1;
}

static void open_conn(struct rig *r, struct px_conn *c, int *far)
{
    int fd[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
    assert_int_equal(fcntl(fd[1], F_SETFL, fcntl(fd[1], F_GETFL) | O_NONBLOCK), 0);
    px_conn_init(&r->px, c, &ops);
    assert_int_equal(uv_pipe_init(&r->loop, &c->h.pipe, 0), 0);
    assert_int_equal(uv_pipe_open(&c->h.pipe, fd[0]), 0);
    *far = fd[1];
}

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));

    assert_non_null(r);
    assert_int_equal(uv_loop_init(&r->loop), 0);
    uv_timer_init(&r->loop, &r->watchdog);
    r->watchdog.data = r;
    uv_timer_start(&r->watchdog, on_watchdog, 20000, 0);
    uv_unref((uv_handle_t *)&r->watchdog);
    r->conf.max_prepared_statements = 200;
    r->conf.max_prepared_statements_per_client = 1000;
    r->px.conf = &r->conf;
    closed_counter = &r->closed;
    open_conn(r, &r->sv.conn, &r->sv_fd);
    r->sv.tx_status = 'I';
    for (int i = 0; i < 2; i++)
        open_conn(r, &r->cl[i].conn, &r->cl_fd[i]);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;

    for (int i = 0; i < 2; i++) {
        px_prep_client_free(&r->cl[i]);
        px_flow_free(&r->cl[i]);
        px_conn_close(&r->cl[i].conn);
        close(r->cl_fd[i]);
    }
    px_prep_server_free(&r->sv);
    px_prep_registry_free(&r->px);
    px_conn_close(&r->sv.conn);
    close(r->sv_fd);
    while (r->closed < 3)
        uv_run(&r->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&r->watchdog, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    free(r);
    return 0;
}

/*
 * Client i's scanned bytes [0, n) go through the rewriter, with `remain` body bytes of a streamed
 * last message still to come (as the client's scan leaves them in its buffer).
 */
static void client_sends(struct rig *r, int i, const void *p, size_t n, uint32_t remain)
{
    struct px_client *cl = &r->cl[i];
    struct px_buf *b = &cl->conn.in;

    cl->server = &r->sv;
    r->sv.client = cl;
    b->data = malloc(n);
    assert_non_null(b->data);
    memcpy(b->data, p, n);
    b->cap = b->len = b->pos = (uint32_t)n;
    b->start = 0;
    b->remain = remain;
    assert_int_equal(px_prep_forward(cl), 0);
    assert_int_equal(b->start, b->pos);
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* Reads exactly `want` bytes from a far end (running the loop while writes are queued), then checks
 * nothing more is there. */
static void expect_bytes(struct rig *r, int fd, const struct bytes *want)
{
    uint8_t *got = malloc(want->n + 1);
    size_t n = 0;
    ssize_t k;

    assert_non_null(got);
    uv_ref((uv_handle_t *)&r->watchdog);
    while (n < want->n && !r->timed_out) {
        k = read(fd, got + n, want->n - n);
        if (k > 0)
            n += (size_t)k;
        else
            uv_run(&r->loop, UV_RUN_NOWAIT);
    }
    uv_unref((uv_handle_t *)&r->watchdog);
    assert_false(r->timed_out);
    for (int i = 0; i < 5; i++)
        uv_run(&r->loop, UV_RUN_NOWAIT);
    k = read(fd, got + n, 1);
    assert_true(k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    assert_int_equal(n, want->n);
    for (size_t j = 0; j < n; j++)
        if (got[j] != want->p[j])
            fail_msg("byte %zu: got 0x%02x '%c', want 0x%02x '%c'", j, got[j], got[j] >= 32 && got[j] < 127 ? got[j] : '.',
                     want->p[j], want->p[j] >= 32 && want->p[j] < 127 ? want->p[j] : '.');
    free(got);
}

static void expect_server(struct rig *r, const struct bytes *want)
{
    expect_bytes(r, r->sv_fd, want);
}

static void expect_client(struct rig *r, int i, const struct bytes *want)
{
    expect_bytes(r, r->cl_fd[i], want);
}

static void expect_nothing(struct rig *r, int fd)
{
    struct bytes none = { 0 };

    expect_bytes(r, fd, &none);
}

/* The server's replies, one type letter each (bodies do not matter to the queue, errors aside). */
static void server_replies(struct rig *r, const char *types)
{
    for (const char *t = types; *t; t++) {
        struct proto_frame f = { .type = (uint8_t)*t, .len = 0, .body = NULL };

        if (*t == 'Z')
            r->sv.tx_status = 'I';
        px_prep_on_reply(&r->sv, &f);
    }
}

static void server_error(struct rig *r, const char *sqlstate)
{
    uint8_t body[64];
    struct proto_frame f;
    size_t n = 0;

    body[n++] = 'S';
    memcpy(body + n, "ERROR", 6);
    n += 6;
    body[n++] = 'C';
    memcpy(body + n, sqlstate, 6);
    n += 6;
    body[n++] = 0;
    f = (struct proto_frame){ .type = 'E', .len = (uint32_t)n, .body = body };
    px_prep_on_reply(&r->sv, &f);
}

#define SQL "SELECT $1::int"
#define PARSE_S1 "s1\0" SQL "\0\0\0"
#define PARSE_PGL1 "_pgl_1\0" SQL "\0\0\0"
#define BIND_TAIL "\0\0\0\1\0\0\0\1" "7" "\0\0"    /* no formats, one parameter "7", no result formats */

/* A fresh rig in *state (a row of a table test after its first). */
static struct rig *fresh_rig(void **state)
{
    assert_int_equal(teardown(state), 0);
    assert_int_equal(setup(state), 0);
    return *state;
}

/* Client 0 prepares "s1" (Parse, Sync): the server gets it under pglane's name and answers. */
static void client0_prepares_s1(struct rig *r)
{
    struct bytes in = { 0 }, want = { 0 };

    M(&in, 'P', PARSE_S1);
    M(&in, 'S', "");
    client_sends(r, 0, in.p, in.n, 0);
    M(&want, 'P', PARSE_PGL1);
    M(&want, 'S', "");
    expect_server(r, &want);
    server_replies(r, "1Z");
    assert_int_equal(r->sv.prepq.n, 0);
    bytes_free(&in);
    bytes_free(&want);
}

/* (1) A named Parse goes to the server under pglane's name; Bind and Describe of the client's name
 * carry it; a later Bind finds it cached (no second Parse); the client's Close is answered locally. */
static void test_named_statement_renamed(void **state)
{
    struct rig *r = *state;
    struct bytes in = { 0 }, want = { 0 }, reply = { 0 };

    M(&in, 'P', PARSE_S1);
    M(&in, 'B', "\0s1\0" BIND_TAIL);
    M(&in, 'D', "Ss1\0");
    M(&in, 'E', "\0\0\0\0\0");
    M(&in, 'S', "");
    client_sends(r, 0, in.p, in.n, 0);
    M(&want, 'P', PARSE_PGL1);
    M(&want, 'B', "\0_pgl_1\0" BIND_TAIL);
    M(&want, 'D', "S_pgl_1\0");
    M(&want, 'E', "\0\0\0\0\0");
    M(&want, 'S', "");
    expect_server(r, &want);
    expect_nothing(r, r->cl_fd[0]);            /* every reply is the server's to give */
    assert_int_equal(r->px.prep_parses, 1);
    server_replies(r, "12nCZ");
    assert_int_equal(r->sv.prepq.n, 0);

    /* Again, with a portal name: the server has _pgl_1 now, so no Parse precedes the Bind. */
    bytes_free(&in);
    bytes_free(&want);
    M(&in, 'B', "p1\0s1\0" BIND_TAIL);
    M(&in, 'D', "Ss1\0");
    M(&in, 'S', "");
    client_sends(r, 0, in.p, in.n, 0);
    M(&want, 'B', "p1\0_pgl_1\0" BIND_TAIL);
    M(&want, 'D', "S_pgl_1\0");
    M(&want, 'S', "");
    expect_server(r, &want);
    assert_int_equal(r->px.prep_parses, 1);
    server_replies(r, "2nZ");

    /* Close "s1": the shared statement stays on the server; CloseComplete is pglane's. */
    bytes_free(&in);
    bytes_free(&want);
    M(&in, 'C', "Ss1\0");
    M(&in, 'S', "");
    client_sends(r, 0, in.p, in.n, 0);
    M(&want, 'S', "");
    expect_server(r, &want);
    M(&reply, '3', "");
    expect_client(r, 0, &reply);
    server_replies(r, "Z");
    assert_int_equal(r->sv.ncached, 1);
    assert_int_equal(r->cl[0].nstmts, 0);
    bytes_free(&in);
    bytes_free(&want);
    bytes_free(&reply);
}

/*
 * (2) Client 0 prepared SQL as "s1" on the server (_pgl_1); client 1 then prepares a statement
 * on the same connection. Only the same text and parameter types share _pgl_1, and only outside a
 * transaction is its ParseComplete synthesized (in one, the server parses it as the unnamed statement
 * so that a failed transaction answers 25P02 as PostgreSQL would).
 */
struct share_row {
    const char *what;
    const char *parse;             /* client 1's Parse body ("t1" ...) */
    size_t parse_len;
    char tx_status;
    const char *want;              /* the body of the Parse the server gets before the Bind, if any */
    size_t want_len;
    int synth;                     /* ParseComplete to client 1 from pglane */
    const char *bind_name;         /* in the Bind the server gets */
};

#define ROW_STR(s) s, sizeof(s) - 1

static void test_second_client_shares_statement(void **state)
{
    static const struct share_row rows[] = {
        { "same text, idle", ROW_STR("t1\0" SQL "\0\0\0"), 'I', ROW_STR(""), 1, "_pgl_1" },
        { "other text", ROW_STR("t1\0SELECT $1::bigint\0\0\0"), 'I',
          ROW_STR("_pgl_2\0SELECT $1::bigint\0\0\0"), 0, "_pgl_2" },
        { "same text, other parameter type", ROW_STR("t1\0" SQL "\0\0\1\0\0\0\x17"), 'I',
          ROW_STR("_pgl_2\0" SQL "\0\0\1\0\0\0\x17"), 0, "_pgl_2" },
        { "same text, in a transaction", ROW_STR("t1\0" SQL "\0\0\0"), 'T',
          ROW_STR("\0" SQL "\0\0\0"), 0, "_pgl_1" },
    };
    struct rig *r = *state;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct share_row *row = &rows[i];
        struct bytes in = { 0 }, want = { 0 }, reply = { 0 };
        char bind[64];
        size_t bl = 0, nl = strlen(row->bind_name);

        print_message("row %zu: %s\n", i, row->what);
        if (i > 0)
            r = fresh_rig(state);
        client0_prepares_s1(r);
        r->sv.tx_status = row->tx_status;
        msg(&in, 'P', row->parse, row->parse_len);
        M(&in, 'B', "\0t1\0" BIND_TAIL);
        M(&in, 'E', "\0\0\0\0\0");
        M(&in, 'S', "");
        client_sends(r, 1, in.p, in.n, 0);
        if (row->want_len)
            msg(&want, 'P', row->want, row->want_len);
        bind[bl++] = 0;
        memcpy(bind + bl, row->bind_name, nl + 1);
        bl += nl + 1;
        memcpy(bind + bl, BIND_TAIL, sizeof(BIND_TAIL) - 1);
        bl += sizeof(BIND_TAIL) - 1;
        msg(&want, 'B', bind, bl);
        M(&want, 'E', "\0\0\0\0\0");
        M(&want, 'S', "");
        expect_server(r, &want);
        if (row->synth)
            M(&reply, '1', "");
        expect_client(r, 1, &reply);
        expect_nothing(r, r->cl_fd[0]);
        assert_int_equal(r->px.prep_hits, row->synth);
        server_replies(r, row->synth ? "2CZ" : "12CZ");
        assert_int_equal(r->sv.prepq.n, 0);
        assert_int_equal(r->cl[1].nstmts, 1);
        bytes_free(&in);
        bytes_free(&want);
        bytes_free(&reply);
    }
}

/* (3) Client 0's Close of "s1" leaves the shared statement that client 1's "t1" names. */
static void test_close_keeps_shared_statement(void **state)
{
    struct rig *r = *state;
    struct bytes in = { 0 }, want = { 0 }, reply = { 0 };

    M(&in, 'P', PARSE_S1);
    M(&in, 'S', "");
    client_sends(r, 0, in.p, in.n, 0);
    server_replies(r, "1Z");
    bytes_free(&in);
    M(&in, 'P', "t1\0" SQL "\0\0\0");
    M(&in, 'S', "");
    client_sends(r, 1, in.p, in.n, 0);
    server_replies(r, "Z");
    M(&want, 'P', PARSE_PGL1);
    M(&want, 'S', "");
    M(&want, 'S', "");
    expect_server(r, &want);                   /* one Parse for both */
    M(&reply, '1', "");
    expect_client(r, 1, &reply);

    bytes_free(&in);
    bytes_free(&want);
    bytes_free(&reply);
    M(&in, 'C', "Ss1\0");
    M(&in, 'S', "");
    client_sends(r, 0, in.p, in.n, 0);
    M(&want, 'S', "");                         /* no Close of _pgl_1 reaches the server */
    expect_server(r, &want);
    M(&reply, '3', "");
    expect_client(r, 0, &reply);
    server_replies(r, "Z");
    assert_int_equal(r->sv.ncached, 1);

    /* Client 1 still binds _pgl_1 without a new Parse; client 0's "s1" is gone, so its Bind goes
     * to the server as sent and PostgreSQL answers 26000. */
    bytes_free(&in);
    bytes_free(&want);
    bytes_free(&reply);
    M(&in, 'B', "\0t1\0" BIND_TAIL);
    M(&in, 'S', "");
    client_sends(r, 1, in.p, in.n, 0);
    M(&want, 'B', "\0_pgl_1\0" BIND_TAIL);
    M(&want, 'S', "");
    expect_server(r, &want);
    server_replies(r, "2Z");
    bytes_free(&in);
    bytes_free(&want);
    M(&in, 'B', "\0s1\0" BIND_TAIL);
    M(&in, 'S', "");
    client_sends(r, 0, in.p, in.n, 0);
    expect_server(r, &in);
    expect_nothing(r, r->cl_fd[0]);
    expect_nothing(r, r->cl_fd[1]);
    assert_int_equal(r->px.prep_parses, 1);
    bytes_free(&in);
    bytes_free(&want);
}

/*
 * (4) Names the client never prepared: Bind and Describe go to the server unchanged so that
 * PostgreSQL's own 26000 comes back (and the queue skips to the Sync); a Close of one is not an
 * error in PostgreSQL either and is answered by pglane without the server.
 */
struct unknown_row {
    const char *what;
    char type;
    const char *body;
    size_t len;
    int forwarded;
};

static void test_unknown_name(void **state)
{
    static const struct unknown_row rows[] = {
        { "Bind", 'B', ROW_STR("\0nope\0" BIND_TAIL), 1 },
        { "Bind with portal", 'B', ROW_STR("p\0nope\0" BIND_TAIL), 1 },
        { "Describe statement", 'D', ROW_STR("Snope\0"), 1 },
        { "Close statement", 'C', ROW_STR("Snope\0"), 0 },
    };
    struct rig *r = *state;

    /* Another name is known, so that the rewriter is in play with a statement of its own. */
    {
        struct bytes in = { 0 };

        M(&in, 'P', PARSE_S1);
        M(&in, 'S', "");
        client_sends(r, 0, in.p, in.n, 0);
        server_replies(r, "1Z");
        bytes_free(&in);
        M(&in, 'P', PARSE_PGL1);
        M(&in, 'S', "");
        expect_server(r, &in);
        bytes_free(&in);
    }
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct unknown_row *row = &rows[i];
        struct bytes in = { 0 }, want = { 0 }, reply = { 0 };

        print_message("row %zu: %s\n", i, row->what);
        msg(&in, row->type, row->body, row->len);
        M(&in, 'S', "");
        client_sends(r, 0, in.p, in.n, 0);
        if (row->forwarded) {
            expect_server(r, &in);
            expect_nothing(r, r->cl_fd[0]);
            server_error(r, "26000");
            assert_int_equal(r->sv.prepq.n, 1);    /* the Sync's entry */
        } else {
            M(&want, 'S', "");
            expect_server(r, &want);
            M(&reply, '3', "");
            expect_client(r, 0, &reply);
        }
        server_replies(r, "Z");
        assert_int_equal(r->sv.prepq.n, 0);
        assert_int_equal(r->cl[0].nstmts, 1);
        bytes_free(&in);
        bytes_free(&want);
        bytes_free(&reply);
    }
}

/* (5) The unnamed statement and portals, and other messages, pass through byte for byte. */
static void test_unnamed_passthrough(void **state)
{
    struct rig *r = *state;
    struct bytes in = { 0 };

    M(&in, 'P', "\0" SQL "\0\0\1\0\0\0\x17");
    M(&in, 'B', "\0\0" BIND_TAIL);
    M(&in, 'D', "S\0");
    M(&in, 'D', "P\0");
    M(&in, 'E', "\0\0\0\0\0");
    M(&in, 'H', "");
    M(&in, 'C', "P\0");
    M(&in, 'C', "S\0");
    M(&in, 'S', "");
    M(&in, 'Q', "SELECT 1\0");
    M(&in, 'Q', "DEALLOCATE s1\0");           /* not a name the client has */
    client_sends(r, 0, in.p, in.n, 0);
    expect_server(r, &in);
    expect_nothing(r, r->cl_fd[0]);
    assert_int_equal(r->sv.prepq.n, 10);       /* each but the Flush awaits its reply */
    assert_int_equal(r->px.prep_parses, 0);
    bytes_free(&in);
}

/* (6) A Bind streamed in chunks: its header is rewritten with the length the renamed message has,
 * and the rest follows unchanged, then the messages after it. */
static void test_streamed_bind(void **state)
{
    enum { PARAM = 200000 };
    struct rig *r = *state;
    struct bytes full = { 0 }, want = { 0 }, chunk = { 0 };
    uint8_t *param = malloc(PARAM);
    uint8_t hdr[4];
    size_t cut1, cut2, off;

    assert_non_null(param);
    for (size_t i = 0; i < PARAM; i++)
        param[i] = (uint8_t)(i * 7 + i / 251);
    /* Bind: portal "", statement "s1", no formats, one parameter of PARAM bytes, no result formats. */
    {
        struct bytes body = { 0 };

        put(&body, "\0s1\0\0\0\0\1", 8);
        hdr[0] = (uint8_t)(PARAM >> 24), hdr[1] = (uint8_t)(PARAM >> 16), hdr[2] = (uint8_t)(PARAM >> 8),
        hdr[3] = (uint8_t)PARAM;
        put(&body, hdr, 4);
        put(&body, param, PARAM);
        put(&body, "\0\0", 2);
        M(&full, 'P', PARSE_S1);
        off = full.n;
        msg(&full, 'B', body.p, body.n);
        M(&full, 'E', "\0\0\0\0\0");
        M(&full, 'S', "");

        M(&want, 'P', PARSE_PGL1);
        body.n = 0;
        put(&body, "\0_pgl_1\0\0\0\0\1", 12);
        put(&body, hdr, 4);
        put(&body, param, PARAM);
        put(&body, "\0\0", 2);
        msg(&want, 'B', body.p, body.n);
        M(&want, 'E', "\0\0\0\0\0");
        M(&want, 'S', "");
        bytes_free(&body);
    }
    /* Three batches: the Parse and the Bind's names plus a little; the middle; the rest and E S. */
    cut1 = off + 5 + 20;
    cut2 = off + 5 + PARAM / 2;
    {
        size_t bind_end = off + 5 + 8 + 4 + PARAM + 2;

        client_sends(r, 0, full.p, cut1, (uint32_t)(bind_end - cut1));
        put(&chunk, full.p + cut1, cut2 - cut1);
        client_sends(r, 0, chunk.p, chunk.n, (uint32_t)(bind_end - cut2));
        assert_int_equal(r->cl[0].fwd_remain, bind_end - cut2);
        client_sends(r, 0, full.p + cut2, full.n - cut2, 0);
        assert_int_equal(r->cl[0].fwd_remain, 0);
    }
    expect_server(r, &want);
    server_replies(r, "12CZ");
    assert_int_equal(r->sv.prepq.n, 0);
    assert_int_equal(r->cl[0].last_bound, 1);
    free(param);
    bytes_free(&full);
    bytes_free(&want);
    bytes_free(&chunk);
}

/*
 * (7) pglane prepares its statement in the group that first uses it on a server connection; an error
 * earlier in that group makes the server skip the Parse. A later group sent before that answer
 * prepares it again behind a Close (a Close never fails), so that its Bind finds the statement
 * whichever way the first group went; the cache entry follows the replies.
 */
static void test_prepare_again_in_later_group(void **state)
{
    struct rig *r = *state;

    for (int later_skipped = 0; later_skipped < 2; later_skipped++) {
        struct bytes in = { 0 }, want = { 0 };

        print_message("later group %s\n", later_skipped ? "skipped too" : "carried out");
        if (later_skipped)
            r = fresh_rig(state);
        client0_prepares_s1(r);
        px_prep_server_forget_all(&r->sv);   /* as after a DISCARD ALL on the connection */

        M(&in, 'E', "x\0\0\0\0\0");          /* a portal that does not exist: 34000 */
        M(&in, 'D', "Ss1\0");
        M(&in, 'S', "");
        if (later_skipped)
            M(&in, 'E', "y\0\0\0\0\0");      /* the later group fails ahead of the Close */
        M(&in, 'B', "\0s1\0" BIND_TAIL);
        M(&in, 'E', "\0\0\0\0\0");
        M(&in, 'S', "");
        client_sends(r, 0, in.p, in.n, 0);
        M(&want, 'E', "x\0\0\0\0\0");
        M(&want, 'P', PARSE_PGL1);
        M(&want, 'D', "S_pgl_1\0");
        M(&want, 'S', "");
        if (later_skipped)
            M(&want, 'E', "y\0\0\0\0\0");
        M(&want, 'C', "S_pgl_1\0");
        M(&want, 'P', PARSE_PGL1);
        M(&want, 'B', "\0_pgl_1\0" BIND_TAIL);
        M(&want, 'E', "\0\0\0\0\0");
        M(&want, 'S', "");
        expect_server(r, &want);
        assert_int_equal(r->sv.ncached, 1);
        assert_int_equal(r->sv.cached[0].pending, 2);

        server_error(r, "34000");            /* the first group: Parse and Describe skipped */
        server_replies(r, "Z");
        assert_int_equal(r->sv.ncached, 1);  /* the later group's Parse is still owed */
        assert_int_equal(r->sv.cached[0].pending, 1);
        if (later_skipped) {                 /* Close, Parse, Bind and Execute skipped: no statement */
            server_error(r, "34000");
            server_replies(r, "Z");
            assert_int_equal(r->sv.ncached, 0);
        } else {
            server_replies(r, "312CZ");
            assert_int_equal(r->sv.ncached, 1);
            assert_int_equal(r->sv.cached[0].pending, 0);
            assert_int_equal(r->sv.cached[0].exists, 1);
        }
        assert_int_equal(r->sv.prepq.n, 0);
        bytes_free(&in);
        bytes_free(&want);
    }
}

/*
 * (8) An unnamed "DEALLOCATE s1" is parsed as sent; its portal is bound from a DEALLOCATE of pglane's
 * statement, and the client's name goes when the Execute is sent, to come back if the server skips
 * it. Until the answer the statement counts as owed (a use would prepare it again behind a Close);
 * carried out, it is gone from the cache.
 */
static void test_extended_deallocate(void **state)
{
    struct rig *r = *state;

    for (int skipped = 0; skipped < 2; skipped++) {
        struct bytes in = { 0 }, want = { 0 };

        print_message("the DEALLOCATE %s\n", skipped ? "skipped" : "carried out");
        if (skipped)
            r = fresh_rig(state);
        client0_prepares_s1(r);
        M(&in, 'P', "\0deallocate s1\0\0\0");
        if (skipped)
            M(&in, 'E', "x\0\0\0\0\0");  /* a portal that does not exist: 34000 */
        M(&in, 'B', "\0\0\0\0\0\0\0\0");
        M(&in, 'E', "\0\0\0\0\0");
        M(&in, 'S', "");
        client_sends(r, 0, in.p, in.n, 0);
        M(&want, 'P', "\0deallocate s1\0\0\0");
        if (skipped)
            M(&want, 'E', "x\0\0\0\0\0");
        M(&want, 'P', "\0DEALLOCATE _pgl_1\0\0\0");
        M(&want, 'B', "\0\0\0\0\0\0\0\0");
        M(&want, 'E', "\0\0\0\0\0");
        M(&want, 'S', "");
        expect_server(r, &want);
        assert_int_equal(r->cl[0].nstmts, 0);      /* s1 is gone for what follows */
        assert_int_equal(r->sv.ncached, 1);
        assert_int_equal(r->sv.cached[0].pending, 1);
        if (skipped) {
            server_replies(r, "1");
            server_error(r, "34000");
            server_replies(r, "Z");
            assert_int_equal(r->cl[0].nstmts, 1);  /* back */
            assert_int_equal(r->sv.ncached, 1);
            assert_int_equal(r->sv.cached[0].pending, 0);
            assert_int_equal(r->sv.cached[0].exists, 1);
        } else {
            server_replies(r, "112CZ");
            assert_int_equal(r->cl[0].nstmts, 0);
            assert_int_equal(r->sv.ncached, 0);
        }
        assert_int_equal(r->sv.prepq.n, 0);
        bytes_free(&in);
        bytes_free(&want);
    }
}

/* A RowDescription body: n columns named by names[i], of type types[i], typmod mods[i]; table and
 * column numbers tab (ignored by the shape, as PostgreSQL's check ignores them). */
static size_t row_desc(uint8_t *out, int n, const char *const *names, const uint32_t *types, const int32_t *mods,
                       uint32_t tab)
{
    size_t o = 0;

    out[o++] = (uint8_t)(n >> 8);
    out[o++] = (uint8_t)n;
    for (int i = 0; i < n; i++) {
        uint32_t f[4] = { tab, types[i], (uint32_t)mods[i], 0 };

        strcpy((char *)out + o, names[i]);
        o += strlen(names[i]) + 1;
        for (int k = 0; k < 4; k++)
            out[o++] = (uint8_t)(f[0] >> (24 - 8 * k));            /* table OID */
        out[o++] = 0;
        out[o++] = (uint8_t)(i + 1);                              /* column number */
        for (int k = 0; k < 4; k++)
            out[o++] = (uint8_t)(f[1] >> (24 - 8 * k));            /* type OID */
        out[o++] = 0xff;
        out[o++] = 0xff;                                          /* type size */
        for (int k = 0; k < 4; k++)
            out[o++] = (uint8_t)(f[2] >> (24 - 8 * k));            /* typmod */
        out[o++] = 0;
        out[o++] = 0;                                             /* format */
    }
    return o;
}

/* The result columns as one number: a column's name, type or typmod changes it, a column more or less
 * changes it, the table's OID does not (a table dropped and made again with the same columns). */
static void test_result_shape(void **state)
{
    (void)state;
    uint8_t b[256];
    const char *names[] = { "id", "v" }, *renamed[] = { "id", "w" };
    const uint32_t types[] = { 23, 25 }, retyped[] = { 23, 23 };
    const int32_t mods[] = { -1, -1 }, remod[] = { -1, 12 };
    size_t n = row_desc(b, 2, names, types, mods, 16384);
    uint64_t base = prep_shape(PROTO_BE_ROW_DESC, b, (uint32_t)n);

    assert_true(base > 1);
    n = row_desc(b, 2, names, types, mods, 99999);
    assert_true(prep_shape(PROTO_BE_ROW_DESC, b, (uint32_t)n) == base);
    n = row_desc(b, 2, renamed, types, mods, 16384);
    assert_true(prep_shape(PROTO_BE_ROW_DESC, b, (uint32_t)n) != base);
    n = row_desc(b, 2, names, retyped, mods, 16384);
    assert_true(prep_shape(PROTO_BE_ROW_DESC, b, (uint32_t)n) != base);
    n = row_desc(b, 2, names, types, remod, 16384);
    assert_true(prep_shape(PROTO_BE_ROW_DESC, b, (uint32_t)n) != base);
    n = row_desc(b, 1, names, types, mods, 16384);
    assert_true(prep_shape(PROTO_BE_ROW_DESC, b, (uint32_t)n) != base);
    assert_true(prep_shape(PROTO_BE_NO_DATA, NULL, 0) == 1);
    n = row_desc(b, 0, names, types, mods, 16384);
    assert_true(prep_shape(PROTO_BE_ROW_DESC, b, (uint32_t)n) > 1);   /* no columns: not NoData's */
    assert_true(prep_shape(PROTO_BE_ROW_DESC, b, 1) == 1);             /* cut short: unreadable */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_named_statement_renamed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_client_shares_statement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_keeps_shared_statement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unnamed_passthrough, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streamed_bind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepare_again_in_later_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extended_deallocate, setup, teardown),
        cmocka_unit_test(test_result_shape),
    };
    return cmocka_run_group_tests_name("unit: proxy prepared statements", tests, NULL, NULL);
}
