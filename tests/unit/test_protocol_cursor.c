/*
 * Unit tests of protocol/'s frame cursor: a stream of messages stepped over whole or streamed, with
 * the bytes arriving in two and three chunks cut at every offset, headers split, a body longer than
 * any buffer streamed through a small one by `remain`, zero-length bodies and bad length fields.
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

/* A frontend batch: Parse, Bind, Describe, Execute, Sync (zero-length body), Query, Terminate. */
static const uint8_t batch[] =
    "P\0\0\0\x13" "s1\0" "select $1\0" "\0\0"
    "B\0\0\0\x13" "\0" "s1\0" "\0\0" "\0\x01" "\0\0\0\x01" "7" "\0\0"
    "D\0\0\0\x06" "P\0"
    "E\0\0\0\x09" "\0" "\0\0\0\0"
    "S\0\0\0\x04"
    "Q\0\0\0\x0d" "select 1\0"
    "X\0\0\0\x04";
#define BATCH_LEN (sizeof(batch) - 1)

struct seen {
    uint8_t type;
    uint32_t len;
    uint32_t at;      /* the offset of its header */
};

static const struct seen batch_msgs[] = {
    { 'P', 15, 0 }, { 'B', 15, 20 }, { 'D', 2, 40 }, { 'E', 5, 47 }, { 'S', 0, 57 }, { 'Q', 9, 62 },
    { 'X', 0, 76 },
};

/* How a test steps over each message it finds: streamed always, or whole when it is all held. */
enum policy { STREAM, WHOLE };

struct walk {
    uint32_t pos, remain;
    struct seen seen[16];
    int n;
};

/*
 * Steps over data[0, len) as proxy/ does after each read: until the cursor needs more bytes. With
 * WHOLE, a message whose body is not all held is left for later (the header is read again then).
 */
static void step(struct walk *w, const uint8_t *data, uint32_t len, enum policy policy)
{
    struct proto_frame f;
    const char *err = NULL;
    int r;

    while ((r = proto_cursor_next(data, &w->pos, len, &w->remain, PROTO_PHASE_FRONTEND, &f, &err)) ==
           PROTO_FRAME_OK) {
        assert_int_equal(w->remain, 0);
        assert_true(w->pos + PROTO_HEADER_LEN <= len);
        if (f.body) {
            assert_ptr_equal(f.body, data + w->pos + PROTO_HEADER_LEN);
            assert_true(w->pos + PROTO_HEADER_LEN + f.len <= len);
        } else {
            assert_true(w->pos + PROTO_HEADER_LEN + f.len > len);
        }
        if (policy == WHOLE && !f.body)
            break;
        if (w->n > 0 && w->seen[w->n - 1].at == w->pos)
            fail_msg("message at %u seen twice", w->pos);
        assert_true(w->n < (int)ARRAY_LEN(w->seen));
        w->seen[w->n++] = (struct seen){ f.type, f.len, w->pos };
        if (policy == WHOLE)
            w->pos += PROTO_HEADER_LEN + f.len;
        else
            proto_cursor_stream(data, &w->pos, &w->remain);
    }
    assert_int_not_equal(r, PROTO_FRAME_ERROR);
    assert_true(w->pos <= len);
}

static void check_batch(const struct walk *w, const char *what, size_t a, size_t b)
{
    if (w->n != (int)ARRAY_LEN(batch_msgs) || w->pos != BATCH_LEN || w->remain != 0)
        fail_msg("%s cut at %zu, %zu: %d messages, pos %u, remain %u", what, a, b, w->n, w->pos, w->remain);
    for (int i = 0; i < w->n; i++)
        if (w->seen[i].type != batch_msgs[i].type || w->seen[i].len != batch_msgs[i].len ||
            w->seen[i].at != batch_msgs[i].at)
            fail_msg("%s cut at %zu, %zu: message %d is %c/%u at %u", what, a, b, i, w->seen[i].type,
                     w->seen[i].len, w->seen[i].at);
}

/* The batch at once, streamed and whole. */
static void test_cursor_whole_batch(void **state)
{
    (void)state;
    for (int p = STREAM; p <= WHOLE; p++) {
        struct walk w = { 0 };

        step(&w, batch, BATCH_LEN, (enum policy)p);
        check_batch(&w, p == STREAM ? "stream" : "whole", 0, 0);
    }
}

/*
 * The bytes arriving in three reads cut at every pair of offsets (which includes every two-read cut
 * and every split of each header and body). Each read is in an allocation of exactly the bytes held
 * so far, so that AddressSanitizer sees the cursor read a byte that has not arrived.
 */
static void test_cursor_split_every_offset(void **state)
{
    (void)state;
    for (int p = STREAM; p <= WHOLE; p++)
        for (size_t a = 0; a <= BATCH_LEN; a++)
            for (size_t b = a; b <= BATCH_LEN; b++) {
                const size_t cuts[3] = { a, b, BATCH_LEN };
                struct walk w = { 0 };

                for (int c = 0; c < 3; c++) {
                    uint8_t *held = malloc(cuts[c] ? cuts[c] : 1);

                    assert_non_null(held);
                    memcpy(held, batch, cuts[c]);
                    step(&w, held, (uint32_t)cuts[c], (enum policy)p);
                    free(held);
                }
                check_batch(&w, p == STREAM ? "stream" : "whole", a, b);
            }
}

/* Fewer than 5 header bytes: NEED_MORE, and nothing moves. */
static void test_cursor_header_split(void **state)
{
    static const uint8_t q[] = "Q\0\0\0\x0d" "select 1\0";
    (void)state;
    for (uint32_t held = 0; held < PROTO_HEADER_LEN; held++) {
        uint32_t pos = 0, remain = 0;
        struct proto_frame f;
        const char *err = NULL;

        assert_int_equal(proto_cursor_next(q, &pos, held, &remain, PROTO_PHASE_FRONTEND, &f, &err),
                         PROTO_FRAME_NEED_MORE);
        assert_int_equal(pos, 0);
        assert_int_equal(remain, 0);
    }
}

/*
 * A CopyData of the largest length a frontend may send (1 GB - 2) streamed through a 64 KB
 * buffer, as proxy/ forwards one: `remain` counts down by exactly the bytes each read brought, and the Sync
 * after the body is found in the read that holds it.
 */
static void test_cursor_huge_streamed(void **state)
{
    enum { CHUNK = 65536 };
    const uint32_t body = PROTO_MAX_FE_LARGE_LEN - 4;
    uint8_t *buf = calloc(1, CHUNK + PROTO_HEADER_LEN);
    uint32_t pos = 0, len, remain = 0, left = body, reads = 0;
    struct proto_frame f;
    const char *err = NULL;
    (void)state;

    assert_non_null(buf);
    memcpy(buf, "d\x3f\xff\xff\xfe", 5);
    len = CHUNK;
    assert_int_equal(proto_cursor_next(buf, &pos, len, &remain, PROTO_PHASE_FRONTEND, &f, &err), PROTO_FRAME_OK);
    assert_int_equal(f.type, 'd');
    assert_int_equal(f.len, body);
    assert_null(f.body);
    proto_cursor_stream(buf, &pos, &remain);
    assert_int_equal(pos, PROTO_HEADER_LEN);
    assert_int_equal(remain, body);
    for (;;) {
        uint32_t before = remain, held = len - pos;
        int r = proto_cursor_next(buf, &pos, len, &remain, PROTO_PHASE_FRONTEND, &f, &err);

        assert_int_equal(before - remain, held < before ? held : before);
        left -= before - remain;
        assert_int_equal(remain, left);
        if (r == PROTO_FRAME_OK)
            break;
        assert_int_equal(r, PROTO_FRAME_NEED_MORE);
        assert_int_equal(pos, len);
        /* Everything held was stepped over: the next read refills the buffer from its start. */
        pos = 0;
        len = CHUNK;
        reads++;
        if (remain < CHUNK) {        /* the body's last bytes, then a Sync */
            memset(buf, 0, CHUNK);
            memcpy(buf + remain, "S\0\0\0\x04", 5);
            len = remain + PROTO_HEADER_LEN;
        }
    }
    assert_int_equal(remain, 0);
    assert_int_equal(f.type, 'S');
    assert_int_equal(f.len, 0);
    assert_int_equal(reads, (PROTO_HEADER_LEN + body) / CHUNK);
    free(buf);
}

/* Zero-length bodies (Sync, Flush, Terminate): the body pointer is set (the whole message is held)
 * and streaming one leaves nothing to come. */
static void test_cursor_zero_length(void **state)
{
    static const uint8_t m[] = "S\0\0\0\x04" "H\0\0\0\x04";
    uint32_t pos = 0, remain = 0;
    struct proto_frame f;
    const char *err = NULL;
    (void)state;

    for (int i = 0; i < 2; i++) {
        assert_int_equal(proto_cursor_next(m, &pos, 10, &remain, PROTO_PHASE_FRONTEND, &f, &err), PROTO_FRAME_OK);
        assert_int_equal(f.type, i == 0 ? 'S' : 'H');
        assert_int_equal(f.len, 0);
        assert_ptr_equal(f.body, m + pos + PROTO_HEADER_LEN);
        proto_cursor_stream(m, &pos, &remain);
        assert_int_equal(remain, 0);
    }
    assert_int_equal(pos, 10);
    assert_int_equal(proto_cursor_next(m, &pos, 10, &remain, PROTO_PHASE_FRONTEND, &f, &err),
                     PROTO_FRAME_NEED_MORE);
}

/* Length fields below 4 and above the phase's cap are errors, at the start of the buffer and after a
 * streamed body; the cursor stays at the bad header. */
static void test_cursor_bad_length(void **state)
{
    static const struct {
        const uint8_t *bytes;
        size_t n;
        enum proto_phase phase;
        uint32_t at;
    } bad[] = {
        { BYTES("Q\0\0\0\0"), PROTO_PHASE_FRONTEND, 0 },
        { BYTES("Q\0\0\0\x01"), PROTO_PHASE_FRONTEND, 0 },
        { BYTES("S\0\0\0\x03"), PROTO_PHASE_FRONTEND, 0 },
        { BYTES("Z\xff\xff\xff\xff"), PROTO_PHASE_BACKEND, 0 },
        { BYTES("S\0\0\x27\x11"), PROTO_PHASE_FRONTEND, 0 },         /* Sync over the small cap (10,001) */
        { BYTES("p\0\x01\0\0"), PROTO_PHASE_PREAUTH, 0 },            /* 65,536 before authentication */
        { BYTES("d\0\0\0\x06" "ab" "Q\0\0\0\x02"), PROTO_PHASE_FRONTEND, 7 },
        { BYTES("D\0\0\0\x05" "x" "T\0\0\0\0"), PROTO_PHASE_BACKEND, 6 },
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        uint32_t pos = 0, remain = 0, len = (uint32_t)bad[i].n;
        struct proto_frame f;
        const char *err = NULL;
        int r;

        while ((r = proto_cursor_next(bad[i].bytes, &pos, len, &remain, bad[i].phase, &f, &err)) == PROTO_FRAME_OK)
            proto_cursor_stream(bad[i].bytes, &pos, &remain);
        if (r != PROTO_FRAME_ERROR || err == NULL || pos != bad[i].at || remain != 0)
            fail_msg("bad length %zu: result %d at %u", i, r, pos);
    }
}

/* proto_cursor_stream takes the body length from the header as it is in the buffer now, which the
 * caller may have rewritten (a renamed statement) after proto_cursor_next read it. */
static void test_cursor_stream_rewritten(void **state)
{
    uint8_t m[] = "B\0\0\0\x08" "abcd" "S\0\0\0\x04";
    uint32_t pos = 0, remain = 0;
    struct proto_frame f;
    const char *err = NULL;
    (void)state;

    assert_int_equal(proto_cursor_next(m, &pos, 13, &remain, PROTO_PHASE_FRONTEND, &f, &err), PROTO_FRAME_OK);
    assert_int_equal(f.len, 4);
    m[4] = 0x0a;                     /* now 6 body bytes, of which 4 are held */
    proto_cursor_stream(m, &pos, &remain);
    assert_int_equal(remain, 6);
    assert_int_equal(proto_cursor_next(m, &pos, 9, &remain, PROTO_PHASE_FRONTEND, &f, &err), PROTO_FRAME_NEED_MORE);
    assert_int_equal(pos, 9);
    assert_int_equal(remain, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_whole_batch),
        cmocka_unit_test(test_cursor_split_every_offset),
        cmocka_unit_test(test_cursor_header_split),
        cmocka_unit_test(test_cursor_huge_streamed),
        cmocka_unit_test(test_cursor_zero_length),
        cmocka_unit_test(test_cursor_bad_length),
        cmocka_unit_test(test_cursor_stream_rewritten),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
