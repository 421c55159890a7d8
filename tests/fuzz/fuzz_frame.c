/*
 * libFuzzer target: protocol/ framing over arbitrary bytes, message after message, in each phase,
 * the frame cursor streaming over the same bytes, and every body parser on every frame. Each frame
 * is copied into an allocation of exactly its size, so that AddressSanitizer sees a parser read past
 * the body (in the input the next message's bytes would hide it).
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
    if (proto_parse_sasl_initial(body, len, &a, &d, &v, NULL) == 0) {
        check_str(a, body, len);
        check_data(d, v, body, len);
    }
    if (proto_parse_password(body, len, &a) == 0)
        check_str(a, body, len);
}

/* The frontend body parsers of the extended protocol; a Bind's names agree with the whole Bind's. */
static void parse_fe_body(const uint8_t *body, uint32_t len)
{
    struct proto_fe_parse p;
    struct proto_fe_bind b, names;
    struct proto_fe_target t;
    struct proto_fe_execute e;
    int names_ok = proto_parse_fe_bind_names(body, len, &names) == 0;

    if (proto_parse_fe_parse(body, len, &p) == 0) {
        check_str(p.name, body, len);
        check_str(p.query, body, len);
        CHECK(strlen(p.name) == p.name_len && strlen(p.query) == p.query_len);
        CHECK(p.types + 4 * (size_t)p.ntypes == body + len);
    }
    if (names_ok) {
        check_str(names.portal, body, len);
        check_str(names.statement, body, len);
        CHECK(names.names_len == names.portal_len + names.statement_len + 2 && names.names_len <= len);
    }
    if (proto_parse_fe_bind(body, len, &b) == 0) {
        CHECK(names_ok && b.names_len == names.names_len && b.statement == names.statement);
        check_data(b.formats, 2 * (uint32_t)b.nformats, body, len);
        CHECK(b.nformats <= 1 || b.nformats == b.nparams);
        CHECK(b.params == b.formats + 2 * (size_t)b.nformats + 2 && b.params <= body + len);
        CHECK(b.results + 2 * (size_t)b.nresults == body + len);
    }
    if (proto_parse_fe_describe(body, len, &t) == 0) {
        CHECK((t.kind == 'S' || t.kind == 'P') && t.name_len + 2 == len);
        check_str(t.name, body, len);
    }
    if (proto_parse_fe_close(body, len, &t) == 0) {
        CHECK((t.kind == 'S' || t.kind == 'P') && t.name_len + 2 == len);
        check_str(t.name, body, len);
    }
    if (proto_parse_fe_execute(body, len, &e) == 0) {
        CHECK(e.portal_len + 5 == len);
        check_str(e.portal, body, len);
    }
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
    parse_fe_body(body, f->len);
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

/*
 * The frame cursor over the same bytes, every message streamed, the bytes arriving in two reads cut
 * at `cut`: it finds the headers proto_frame_next finds, and stops where the framer stops.
 */
static void cursor_all(const uint8_t *data, size_t size, size_t cut, enum proto_phase phase)
{
    uint32_t pos = 0, remain = 0, len = (uint32_t)(cut < size ? cut : size);
    size_t expect = 0;      /* where proto_frame_next's next message starts */

    if (size > PROTO_MAX_LARGE_LEN)
        return;
    for (;;) {
        struct proto_frame f, g;
        size_t consumed;
        const char *err = NULL;
        int r = proto_cursor_next(data, &pos, len, &remain, phase, &f, &err);

        CHECK(pos <= len);
        if (r == PROTO_FRAME_NEED_MORE && len < size) {
            len = (uint32_t)size;               /* the second read */
            continue;
        }
        if (r != PROTO_FRAME_OK) {
            CHECK(r == PROTO_FRAME_NEED_MORE ? remain > 0 || size - pos < PROTO_HEADER_LEN
                                             : err != NULL && remain == 0);
            return;
        }
        CHECK(pos == expect && remain == 0);
        r = proto_frame_next(data + pos, size - pos, phase, &g, &consumed, &err);
        CHECK(r != PROTO_FRAME_ERROR);
        if (r == PROTO_FRAME_OK)
            CHECK(g.type == f.type && g.len == f.len);
        CHECK(f.body == NULL || (f.body == data + pos + PROTO_HEADER_LEN && pos + PROTO_HEADER_LEN + f.len <= len));
        expect = pos + PROTO_HEADER_LEN + (size_t)f.len;
        proto_cursor_stream(data, &pos, &remain);
        CHECK(remain == f.len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cursor_all(data, size, size / 2, PROTO_PHASE_FRONTEND);
    cursor_all(data, size, size, PROTO_PHASE_BACKEND);
    frame_all(data, size, PROTO_PHASE_PREAUTH);
    frame_all(data, size, PROTO_PHASE_FRONTEND);
    frame_all(data, size, PROTO_PHASE_BACKEND);
    return 0;
}
