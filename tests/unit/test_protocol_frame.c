/*
 * Unit tests of protocol/ framing and builders: byte-exact vectors, every vector and a stream of
 * them split at every byte offset, and length fields at and beyond each phase's caps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/proto.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* A byte string literal and its length without the literal's own NUL. */
#define BYTES(s) (const uint8_t *)(s), sizeof(s) - 1

/* ---- builders: hand-written expected bytes ---- */

static const uint8_t salt1234[4] = { 1, 2, 3, 4 };
static const char *const sasl_mechs[] = { "SCRAM-SHA-256" };
static const char *const su_names[] = { "user", "database" };
static const char *const su_values[] = { "bob", "db" };

static void b_error(struct proto_buf *b) { proto_build_error(b, "ERROR", "08P01", "bad", NULL, NULL); }
static void b_error_dh(struct proto_buf *b) { proto_build_error(b, "FATAL", "28P01", "no", "d", "h"); }
static void b_notice(struct proto_buf *b) { proto_build_notice(b, "NOTICE", "00000", "hi"); }
static void b_param(struct proto_buf *b) { proto_build_param_status(b, "client_encoding", "UTF8"); }
static void b_key(struct proto_buf *b) { proto_build_backend_key(b, 0x01020304, 0xa0b0c0d0); }
static void b_ready(struct proto_buf *b) { proto_build_ready(b, 'I'); }
static void b_auth_ok(struct proto_buf *b) { proto_build_auth_ok(b); }
static void b_auth_clear(struct proto_buf *b) { proto_build_auth_cleartext(b); }
static void b_auth_md5(struct proto_buf *b) { proto_build_auth_md5(b, salt1234); }
static void b_auth_sasl(struct proto_buf *b) { proto_build_auth_sasl(b, sasl_mechs, 1); }
static void b_sasl_cont(struct proto_buf *b) { proto_build_auth_sasl_continue(b, "r=ab", 4); }
static void b_sasl_final(struct proto_buf *b) { proto_build_auth_sasl_final(b, "v=xy", 4); }
static void b_query(struct proto_buf *b) { proto_build_query(b, "SELECT 1"); }
static void b_terminate(struct proto_buf *b) { proto_build_terminate(b); }
static void b_sync(struct proto_buf *b) { proto_build_sync(b); }
static void b_password(struct proto_buf *b) { proto_build_password(b, "secret"); }
static void b_sasl_init(struct proto_buf *b) { proto_build_sasl_initial(b, "SCRAM-SHA-256", "n,,", 3); }
static void b_sasl_init_null(struct proto_buf *b) { proto_build_sasl_initial(b, "SCRAM-SHA-256", NULL, 0); }
static void b_sasl_resp(struct proto_buf *b) { proto_build_sasl_response(b, "abc", 3); }
static void b_startup(struct proto_buf *b) { proto_build_startup(b, su_names, su_values, 2); }
static void b_cancel(struct proto_buf *b) { proto_build_cancel(b, 1234, 0x01020304); }
static void b_ssl(struct proto_buf *b) { proto_build_ssl_request(b); }

struct vector {
    const char *name;
    void (*build)(struct proto_buf *b);
    const uint8_t *bytes;
    size_t n;
    int typed;      /* 1: a typed message the framer reads; 0: a startup packet */
};

static const struct vector vectors[] = {
    { "error", b_error,
      BYTES("E\0\0\0\x1f" "SERROR\0" "VERROR\0" "C08P01\0" "Mbad\0" "\0"), 1 },
    { "error+detail+hint", b_error_dh,
      BYTES("E\0\0\0\x24" "SFATAL\0" "VFATAL\0" "C28P01\0" "Mno\0" "Dd\0" "Hh\0" "\0"), 1 },
    { "notice", b_notice,
      BYTES("N\0\0\0\x20" "SNOTICE\0" "VNOTICE\0" "C00000\0" "Mhi\0" "\0"), 1 },
    { "param status", b_param, BYTES("S\0\0\0\x19" "client_encoding\0" "UTF8\0"), 1 },
    { "backend key", b_key, BYTES("K\0\0\0\x0c\x01\x02\x03\x04\xa0\xb0\xc0\xd0"), 1 },
    { "ready", b_ready, BYTES("Z\0\0\0\x05I"), 1 },
    { "auth ok", b_auth_ok, BYTES("R\0\0\0\x08\0\0\0\0"), 1 },
    { "auth cleartext", b_auth_clear, BYTES("R\0\0\0\x08\0\0\0\x03"), 1 },
    { "auth md5", b_auth_md5, BYTES("R\0\0\0\x0c\0\0\0\x05\x01\x02\x03\x04"), 1 },
    { "auth sasl", b_auth_sasl, BYTES("R\0\0\0\x17\0\0\0\x0a" "SCRAM-SHA-256\0" "\0"), 1 },
    { "auth sasl continue", b_sasl_cont, BYTES("R\0\0\0\x0c\0\0\0\x0b" "r=ab"), 1 },
    { "auth sasl final", b_sasl_final, BYTES("R\0\0\0\x0c\0\0\0\x0c" "v=xy"), 1 },
    { "query", b_query, BYTES("Q\0\0\0\x0d" "SELECT 1\0"), 1 },
    { "terminate", b_terminate, BYTES("X\0\0\0\x04"), 1 },
    { "sync", b_sync, BYTES("S\0\0\0\x04"), 1 },
    { "password", b_password, BYTES("p\0\0\0\x0b" "secret\0"), 1 },
    { "sasl initial", b_sasl_init, BYTES("p\0\0\0\x19" "SCRAM-SHA-256\0" "\0\0\0\x03" "n,,"), 1 },
    { "sasl initial no data", b_sasl_init_null,
      BYTES("p\0\0\0\x16" "SCRAM-SHA-256\0" "\xff\xff\xff\xff"), 1 },
    { "sasl response", b_sasl_resp, BYTES("p\0\0\0\x07" "abc"), 1 },
    { "startup", b_startup,
      BYTES("\0\0\0\x1e" "\0\x03\0\0" "user\0" "bob\0" "database\0" "db\0" "\0"), 0 },
    { "cancel", b_cancel, BYTES("\0\0\0\x10" "\x04\xd2\x16\x2e" "\0\0\x04\xd2" "\x01\x02\x03\x04"), 0 },
    { "ssl request", b_ssl, BYTES("\0\0\0\x08" "\x04\xd2\x16\x2f"), 0 },
};

static void test_builders_exact(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(vectors); i++) {
        struct proto_buf b;
        proto_buf_init(&b);
        proto_put_bytes(&b, "xy", 2);           /* builders append; they must not assume offset 0 */
        vectors[i].build(&b);
        assert_false(b.failed);
        assert_int_equal(b.len, vectors[i].n + 2);
        if (memcmp(b.data + 2, vectors[i].bytes, vectors[i].n) != 0)
            fail_msg("vector %s differs", vectors[i].name);
        proto_buf_free(&b);
    }
}

static void test_buf_puts(void **state)
{
    (void)state;
    struct proto_buf b;
    proto_buf_init(&b);
    proto_put_u8(&b, 0xab);
    proto_put_u16(&b, 0x0102);
    proto_put_u32(&b, 0xdeadbeef);
    proto_put_cstr(&b, "a");
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.data, "\xab\x01\x02\xde\xad\xbe\xef" "a\0", 9);
    assert_int_equal(proto_get_u16(b.data + 1), 0x0102);
    assert_int_equal(proto_get_u32(b.data + 3), 0xdeadbeef);
    for (int i = 0; i < 10000; i++)         /* growth past the initial capacity */
        proto_put_u32(&b, (uint32_t)i);
    assert_false(b.failed);
    assert_int_equal(proto_get_u32(b.data + 9 + 4 * 9999), 9999);
    proto_buf_reset(&b);
    assert_int_equal(b.len, 0);
    proto_buf_free(&b);
    assert_null(b.data);
}

/* ---- framing ---- */

/* Copies n bytes into an exact-size heap block so that ASan catches any read past the end. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

static void check_split_one(const struct vector *v)
{
    for (size_t k = 0; k <= v->n; k++) {
        uint8_t *c = exact_copy(v->bytes, k);
        struct proto_frame f;
        size_t consumed = 0;
        const char *err = NULL;
        int r = proto_frame_next(c, k, PROTO_PHASE_BACKEND, &f, &consumed, &err);
        if (k < v->n) {
            if (r != PROTO_FRAME_NEED_MORE)
                fail_msg("%s: split at %zu gave %d", v->name, k, r);
        } else {
            assert_int_equal(r, PROTO_FRAME_OK);
            assert_int_equal(consumed, v->n);
            assert_int_equal(f.type, v->bytes[0]);
            assert_int_equal(f.len, v->n - 5);
            assert_ptr_equal(f.body, c + 5);
        }
        free(c);
    }
}

static void test_frame_split_every_offset(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(vectors); i++)
        if (vectors[i].typed)
            check_split_one(&vectors[i]);
}

/* All typed vectors back to back. */
static size_t make_stream(uint8_t *out, size_t cap, size_t ends[], size_t *count)
{
    size_t n = 0;
    *count = 0;
    for (size_t i = 0; i < ARRAY_LEN(vectors); i++) {
        if (!vectors[i].typed)
            continue;
        assert_true(n + vectors[i].n <= cap);
        memcpy(out + n, vectors[i].bytes, vectors[i].n);
        n += vectors[i].n;
        ends[(*count)++] = n;
    }
    return n;
}

/*
 * Feeds the stream in chunks whose boundaries are `cuts`, as a reader would: appends a chunk, takes
 * every complete frame, keeps the remainder. Checks each frame against the stream at its offset.
 */
static void feed_stream(const uint8_t *stream, size_t total, const size_t *ends, size_t count,
                        size_t chunk)
{
    uint8_t pending[4096];
    size_t have = 0, pos = 0, next = 0, start = 0;
    while (pos < total) {
        size_t n = total - pos < chunk ? total - pos : chunk;
        memcpy(pending + have, stream + pos, n);
        have += n;
        pos += n;
        size_t off = 0;
        for (;;) {
            struct proto_frame f;
            size_t consumed;
            const char *err;
            int r = proto_frame_next(pending + off, have - off, PROTO_PHASE_BACKEND, &f, &consumed, &err);
            if (r == PROTO_FRAME_NEED_MORE)
                break;
            assert_int_equal(r, PROTO_FRAME_OK);
            assert_true(next < count);
            assert_int_equal(start + consumed, ends[next]);
            assert_int_equal(f.type, stream[start]);
            assert_memory_equal(f.body, stream + start + 5, f.len);
            start = ends[next++];
            off += consumed;
        }
        memmove(pending, pending + off, have - off);
        have -= off;
    }
    assert_int_equal(next, count);
    assert_int_equal(have, 0);
}

static void test_frame_stream(void **state)
{
    (void)state;
    uint8_t stream[4096];
    size_t ends[64], count;
    size_t total = make_stream(stream, sizeof stream, ends, &count);
    for (size_t chunk = 1; chunk <= total; chunk++)
        feed_stream(stream, total, ends, count, chunk);
    /* Every two-chunk split: frames up to the cut, then NEED_MORE, then the rest. */
    for (size_t k = 0; k <= total; k++) {
        size_t off = 0, got = 0;
        struct proto_frame f;
        size_t consumed;
        const char *err;
        while (proto_frame_next(stream + off, k - off, PROTO_PHASE_BACKEND, &f, &consumed, &err) ==
               PROTO_FRAME_OK) {
            off += consumed;
            got++;
        }
        size_t expect = 0;
        while (expect < count && ends[expect] <= k)
            expect++;
        assert_int_equal(got, expect);
    }
}

struct len_case {
    uint8_t type;
    enum proto_phase phase;
    uint32_t len;
    int ok;
};

static const struct len_case len_cases[] = {
    { 'Q', PROTO_PHASE_FRONTEND, 0, 0 },
    { 'Q', PROTO_PHASE_FRONTEND, 3, 0 },
    { 'Q', PROTO_PHASE_FRONTEND, 4, 1 },
    { 'Q', PROTO_PHASE_FRONTEND, 0x7fffffff, 0 },
    { 'Q', PROTO_PHASE_FRONTEND, 0xffffffff, 0 },
    { 'D', PROTO_PHASE_BACKEND, 0x7fffffff, 0 },
    { 'p', PROTO_PHASE_PREAUTH, 0x7fffffff, 0 },
    { 'p', PROTO_PHASE_PREAUTH, 3, 0 },
    { 'p', PROTO_PHASE_PREAUTH, PROTO_MAX_PREAUTH_LEN, 1 },
    { 'p', PROTO_PHASE_PREAUTH, PROTO_MAX_PREAUTH_LEN + 1, 0 },
    { 'Q', PROTO_PHASE_PREAUTH, PROTO_MAX_PREAUTH_LEN + 1, 0 },
    { 'Q', PROTO_PHASE_FRONTEND, PROTO_MAX_FE_LARGE_LEN, 1 },
    { 'Q', PROTO_PHASE_FRONTEND, PROTO_MAX_FE_LARGE_LEN + 1, 0 },
    { 'Q', PROTO_PHASE_FRONTEND, 0x3ffffffe, 1 },          /* PostgreSQL's PQ_LARGE_MESSAGE_LIMIT */
    { 'Q', PROTO_PHASE_FRONTEND, 0x3fffffff, 0 },
    { 'P', PROTO_PHASE_FRONTEND, PROTO_MAX_FE_LARGE_LEN, 1 },
    { 'B', PROTO_PHASE_FRONTEND, PROTO_MAX_FE_LARGE_LEN, 1 },
    { 'd', PROTO_PHASE_FRONTEND, PROTO_MAX_FE_LARGE_LEN, 1 },
    { 'F', PROTO_PHASE_FRONTEND, PROTO_MAX_FE_LARGE_LEN, 1 },
    { 'S', PROTO_PHASE_FRONTEND, 10000, 1 },               /* PostgreSQL's PQ_SMALL_MESSAGE_LIMIT */
    { 'S', PROTO_PHASE_FRONTEND, 10001, 0 },
    { 'D', PROTO_PHASE_FRONTEND, 10001, 0 },
    { 'E', PROTO_PHASE_FRONTEND, 10001, 0 },
    { 'C', PROTO_PHASE_FRONTEND, 10001, 0 },
    { 'H', PROTO_PHASE_FRONTEND, 10001, 0 },
    { 'c', PROTO_PHASE_FRONTEND, 10001, 0 },
    { 'f', PROTO_PHASE_FRONTEND, 10001, 0 },
    { 'p', PROTO_PHASE_FRONTEND, 10001, 0 },
    { 'X', PROTO_PHASE_FRONTEND, 10001, 0 },
    { 'D', PROTO_PHASE_BACKEND, PROTO_MAX_LARGE_LEN, 1 },
    { 'D', PROTO_PHASE_BACKEND, PROTO_MAX_LARGE_LEN + 1, 0 },
    { 'T', PROTO_PHASE_BACKEND, PROTO_MAX_LARGE_LEN, 1 },
    { 'E', PROTO_PHASE_BACKEND, PROTO_MAX_LARGE_LEN, 1 },
    { 't', PROTO_PHASE_BACKEND, PROTO_MAX_LARGE_LEN, 1 },
    { 'Z', PROTO_PHASE_BACKEND, PROTO_MAX_SMALL_LEN, 1 },
    { 'Z', PROTO_PHASE_BACKEND, PROTO_MAX_SMALL_LEN + 1, 0 },
    { 'R', PROTO_PHASE_BACKEND, PROTO_MAX_SMALL_LEN + 1, 0 },
    { 'S', PROTO_PHASE_BACKEND, PROTO_MAX_SMALL_LEN + 1, 0 },
};

static void test_frame_lengths(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(len_cases); i++) {
        const struct len_case *c = &len_cases[i];
        uint8_t hdr[5] = { c->type, (uint8_t)(c->len >> 24), (uint8_t)(c->len >> 16),
                           (uint8_t)(c->len >> 8), (uint8_t)c->len };
        struct proto_frame f;
        size_t consumed = 0;
        const char *err = NULL;
        int r = proto_frame_header(hdr, sizeof hdr, c->phase, &f, &err);
        if (r != (c->ok ? PROTO_FRAME_OK : PROTO_FRAME_ERROR))
            fail_msg("case %zu ('%c' len %u): got %d", i, c->type, c->len, r);
        if (c->ok) {
            assert_int_equal(f.len, c->len - 4);
            assert_null(f.body);
        } else {
            assert_non_null(err);
        }
        /* proto_frame_next decides from the header alone: errors at once, else waits for the body. */
        r = proto_frame_next(hdr, sizeof hdr, c->phase, &f, &consumed, &err);
        if (c->len == 4)
            assert_int_equal(r, PROTO_FRAME_OK);
        else
            assert_int_equal(r, c->ok ? PROTO_FRAME_NEED_MORE : PROTO_FRAME_ERROR);
    }
    struct proto_frame f;
    const char *err;
    assert_int_equal(proto_frame_header((const uint8_t *)"Q\0\0\0", 4, PROTO_PHASE_FRONTEND, &f, &err),
                     PROTO_FRAME_NEED_MORE);
    assert_int_equal(proto_frame_header(NULL, 0, PROTO_PHASE_FRONTEND, &f, &err), PROTO_FRAME_NEED_MORE);
}

static void test_max_len(void **state)
{
    (void)state;
    assert_int_equal(proto_max_len('Q', PROTO_PHASE_PREAUTH), PROTO_MAX_PREAUTH_LEN);
    assert_int_equal(proto_max_len('p', PROTO_PHASE_PREAUTH), PROTO_MAX_PREAUTH_LEN);
    assert_int_equal(proto_max_len('Q', PROTO_PHASE_FRONTEND), PROTO_MAX_FE_LARGE_LEN);
    assert_int_equal(proto_max_len('E', PROTO_PHASE_FRONTEND), PROTO_MAX_FE_SMALL_LEN);
    assert_int_equal(proto_max_len('E', PROTO_PHASE_BACKEND), PROTO_MAX_LARGE_LEN);
    assert_int_equal(proto_max_len('A', PROTO_PHASE_BACKEND), PROTO_MAX_LARGE_LEN);
    assert_int_equal(proto_max_len('V', PROTO_PHASE_BACKEND), PROTO_MAX_LARGE_LEN);
    assert_int_equal(proto_max_len('K', PROTO_PHASE_BACKEND), PROTO_MAX_SMALL_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builders_exact),
        cmocka_unit_test(test_buf_puts),
        cmocka_unit_test(test_frame_split_every_offset),
        cmocka_unit_test(test_frame_stream),
        cmocka_unit_test(test_frame_lengths),
        cmocka_unit_test(test_max_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
