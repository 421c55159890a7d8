/*
 * libFuzzer target: protocol/ framing over arbitrary bytes, message after message, in each phase,
 * and every body parser on every frame. Each frame is copied into an allocation of exactly its size,
 * so that AddressSanitizer sees a parser read past the body (in the input the next message's bytes
 * would hide it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

/* A string returned by a parser must start inside the body and end (NUL included) inside it. */
static void check_str(const char *s, const uint8_t *body, uint32_t len)
{
    if (s == NULL)
        return;
    CHECK((const uint8_t *)s >= body && (const uint8_t *)s < body + len);
    size_t room = (size_t)(body + len - (const uint8_t *)s);
    CHECK(memchr(s, '\0', room) != NULL);
}

static void check_data(const uint8_t *p, uint32_t n, const uint8_t *body, uint32_t len)
{
    if (p == NULL)
        return;
    CHECK(p >= body && p + n <= body + len);
}

static void parse_error_body(const uint8_t *body, uint32_t len)
{
    struct proto_error_fields ef;
    if (proto_parse_error(body, len, &ef) == 0) {
        check_str(ef.severity, body, len);
        check_str(ef.sqlstate, body, len);
        check_str(ef.message, body, len);
        check_str(ef.detail, body, len);
        check_str(ef.hint, body, len);
    }
}

static void parse_body(const uint8_t *body, uint32_t len)
{
    const char *a, *b;
    const uint8_t *d;
    uint32_t u, v;
    char status;

    parse_error_body(body, len);
    if (proto_parse_param_status(body, len, &a, &b) == 0) {
        check_str(a, body, len);
        check_str(b, body, len);
    }
    if (proto_parse_backend_key(body, len, &u, &v) == 0)
        CHECK(len == 8);
    if (proto_parse_auth(body, len, &u, &d, &v) == 0)
        check_data(d, v, body, len);
    if (proto_parse_ready(body, len, &status) == 0)
        CHECK(status == 'I' || status == 'T' || status == 'E');
    if (proto_parse_command_complete(body, len, &a) == 0)
        check_str(a, body, len);
    if (proto_parse_sasl_initial(body, len, &a, &d, &v) == 0) {
        check_str(a, body, len);
        check_data(d, v, body, len);
    }
    if (proto_parse_password(body, len, &a) == 0)
        check_str(a, body, len);
}

/* Re-frames one message from an exact-size copy, checks the NEED_MORE edge, parses the body. */
static void one_frame(const uint8_t *msg, size_t n, enum proto_phase phase,
                      const struct proto_frame *f)
{
    uint8_t *copy = malloc(n);
    struct proto_frame g, h;
    size_t consumed = 0;
    const char *err = NULL;

    CHECK(copy != NULL);
    memcpy(copy, msg, n);
    CHECK(proto_frame_next(copy, n, phase, &g, &consumed, &err) == PROTO_FRAME_OK);
    CHECK(consumed == n && g.type == f->type && g.len == f->len && g.body == copy + PROTO_HEADER_LEN);
    CHECK(proto_frame_next(copy, n - 1, phase, &h, &consumed, &err) == PROTO_FRAME_NEED_MORE);
    CHECK(proto_frame_header(copy, n, phase, &h, &err) == PROTO_FRAME_OK);
    CHECK(h.type == f->type && h.len == f->len && h.body == NULL);
    free(copy);

    /* The body alone, in its own allocation (malloc(0) may return NULL: use one spare byte). */
    uint8_t *body = malloc(f->len ? f->len : 1);
    CHECK(body != NULL);
    memcpy(body, f->body, f->len);
    parse_body(body, f->len);
    free(body);
}

static void frame_all(const uint8_t *data, size_t size, enum proto_phase phase)
{
    size_t off = 0;

    while (off < size) {
        struct proto_frame f, h;
        size_t consumed = 0;
        const char *err = NULL;
        int r = proto_frame_next(data + off, size - off, phase, &f, &consumed, &err);
        int rh = proto_frame_header(data + off, size - off, phase, &h, &err);
        if (r == PROTO_FRAME_ERROR) {
            CHECK(rh == PROTO_FRAME_ERROR && err != NULL);
            return;
        }
        if (r == PROTO_FRAME_NEED_MORE) {
            CHECK(rh == PROTO_FRAME_NEED_MORE || (rh == PROTO_FRAME_OK && size - off < 5 + (size_t)h.len));
            return;
        }
        CHECK(rh == PROTO_FRAME_OK && h.type == f.type && h.len == f.len);
        CHECK(consumed == PROTO_HEADER_LEN + (size_t)f.len && consumed <= size - off);
        CHECK(f.body == data + off + PROTO_HEADER_LEN);
        CHECK(f.len + 4 <= proto_max_len(f.type, phase));
        one_frame(data + off, consumed, phase, &f);
        off += consumed;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    frame_all(data, size, PROTO_PHASE_PREAUTH);
    frame_all(data, size, PROTO_PHASE_FRONTEND);
    frame_all(data, size, PROTO_PHASE_BACKEND);
    return 0;
}
