/*
 * Unit tests of protocol/ startup packets and message body parsers: table-driven valid and
 * malformed input, split at every byte offset, and round trips through the builders.
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

static const uint8_t salt1234[4] = { 1, 2, 3, 4 };
static const char *const sasl_mechs[] = { "SCRAM-SHA-256" };

static void b_error_dh(struct proto_buf *b) { proto_build_error(b, "FATAL", "28P01", "no", "d", "h"); }
static void b_notice(struct proto_buf *b) { proto_build_notice(b, "NOTICE", "00000", "hi"); }
static void b_param(struct proto_buf *b) { proto_build_param_status(b, "client_encoding", "UTF8"); }
static void b_key(struct proto_buf *b) { proto_build_backend_key(b, 0x01020304, 0xa0b0c0d0); }
static void b_ready(struct proto_buf *b) { proto_build_ready(b, 'I'); }
static void b_auth_ok(struct proto_buf *b) { proto_build_auth_ok(b); }
static void b_auth_md5(struct proto_buf *b) { proto_build_auth_md5(b, salt1234); }
static void b_auth_sasl(struct proto_buf *b) { proto_build_auth_sasl(b, sasl_mechs, 1); }
static void b_sasl_final(struct proto_buf *b) { proto_build_auth_sasl_final(b, "v=xy", 4); }
static void b_password(struct proto_buf *b) { proto_build_password(b, "secret"); }
static void b_sasl_init(struct proto_buf *b) { proto_build_sasl_initial(b, "SCRAM-SHA-256", "n,,", 3); }
static void b_sasl_init_null(struct proto_buf *b) { proto_build_sasl_initial(b, "SCRAM-SHA-256", NULL, 0); }

/* Copies n bytes into an exact-size heap block so that ASan catches any read past the end. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

/* ---- startup packets ---- */

struct startup_case {
    const char *name;
    const uint8_t *bytes;
    size_t n;
    int result;
    enum proto_startup_kind kind;
    const char *sqlstate;       /* on error */
};

#define V3 "\0\x03\0\0"
static const struct startup_case startup_cases[] = {
    { "v3 params", BYTES("\0\0\0\x1e" V3 "user\0bob\0database\0db\0\0"), PROTO_FRAME_OK,
      PROTO_STARTUP_V3, NULL },
    { "v3 no params", BYTES("\0\0\0\x09" V3 "\0"), PROTO_FRAME_OK, PROTO_STARTUP_V3, NULL },
    { "v3.2", BYTES("\0\0\0\x09" "\0\x03\0\x02" "\0"), PROTO_FRAME_OK, PROTO_STARTUP_V3, NULL },
    { "v3 empty value", BYTES("\0\0\0\x0f" V3 "user\0\0\0"), PROTO_FRAME_OK, PROTO_STARTUP_V3, NULL },
    { "ssl", BYTES("\0\0\0\x08\x04\xd2\x16\x2f"), PROTO_FRAME_OK, PROTO_STARTUP_SSL, NULL },
    { "gssenc", BYTES("\0\0\0\x08\x04\xd2\x16\x30"), PROTO_FRAME_OK, PROTO_STARTUP_GSSENC, NULL },
    { "cancel", BYTES("\0\0\0\x10\x04\xd2\x16\x2e\0\0\x04\xd2\x01\x02\x03\x04"), PROTO_FRAME_OK,
      PROTO_STARTUP_CANCEL, NULL },
    { "empty", BYTES(""), PROTO_FRAME_NEED_MORE, 0, NULL },
    { "3 bytes", BYTES("\0\0\0"), PROTO_FRAME_NEED_MORE, 0, NULL },
    { "truncated", BYTES("\0\0\0\x1e" V3 "user\0bo"), PROTO_FRAME_NEED_MORE, 0, NULL },
    { "len 0", BYTES("\0\0\0\0"), PROTO_FRAME_ERROR, 0, "08P01" },
    { "len 7", BYTES("\0\0\0\x07" V3), PROTO_FRAME_ERROR, 0, "08P01" },
    { "len 10004", BYTES("\0\0\x27\x14"), PROTO_FRAME_NEED_MORE, 0, NULL },
    { "len 10005", BYTES("\0\0\x27\x15"), PROTO_FRAME_ERROR, 0, "08P01" },
    { "len 2^31-1", BYTES("\x7f\xff\xff\xff"), PROTO_FRAME_ERROR, 0, "08P01" },
    { "v3 len 8", BYTES("\0\0\0\x08" V3), PROTO_FRAME_ERROR, 0, "08P01" },
    { "unterminated name", BYTES("\0\0\0\x0c" V3 "user"), PROTO_FRAME_ERROR, 0, "08P01" },
    { "no value", BYTES("\0\0\0\x0d" V3 "user\0"), PROTO_FRAME_ERROR, 0, "08P01" },
    { "unterminated value", BYTES("\0\0\0\x10" V3 "user\0bob"), PROTO_FRAME_ERROR, 0, "08P01" },
    { "no terminator", BYTES("\0\0\0\x11" V3 "user\0bob\0"), PROTO_FRAME_ERROR, 0, "08P01" },
    { "data after end", BYTES("\0\0\0\x13" V3 "user\0bob\0\0X"), PROTO_FRAME_ERROR, 0, "08P01" },
    { "version 9.9", BYTES("\0\0\0\x09" "\0\x09\0\x09" "\0"), PROTO_FRAME_ERROR, 0, "0A000" },
    { "version 2.0", BYTES("\0\0\0\x09" "\0\x02\0\0" "\0"), PROTO_FRAME_ERROR, 0, "0A000" },
    /* PostgreSQL ignores the bytes after an encryption request's code, and reads a short cancel
     * request's missing key as 0 */
    { "ssl len 12", BYTES("\0\0\0\x0c\x04\xd2\x16\x2f\0\0\0\0"), PROTO_FRAME_OK, PROTO_STARTUP_SSL, NULL },
    { "gssenc len 9", BYTES("\0\0\0\x09\x04\xd2\x16\x30\0"), PROTO_FRAME_OK, PROTO_STARTUP_GSSENC, NULL },
    { "cancel len 12", BYTES("\0\0\0\x0c\x04\xd2\x16\x2e\0\0\0\x01"), PROTO_FRAME_OK, PROTO_STARTUP_CANCEL,
      NULL },
};

static void test_startup_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(startup_cases); i++) {
        const struct startup_case *c = &startup_cases[i];
        uint8_t *buf = exact_copy(c->bytes, c->n);
        struct proto_startup s;
        size_t consumed = 0;
        const char *err = NULL, *sqlstate = NULL;
        int r = proto_parse_startup(buf, c->n, &s, &consumed, &err, &sqlstate);
        if (r != c->result)
            fail_msg("%s: got %d", c->name, r);
        if (r == PROTO_FRAME_OK) {
            assert_int_equal(s.kind, c->kind);
            assert_int_equal(consumed, c->n);
        } else if (r == PROTO_FRAME_ERROR) {
            assert_non_null(err);
            assert_string_equal(sqlstate, c->sqlstate);
            /* a bad length is told apart: PostgreSQL answers it with silence */
            assert_int_equal(err == proto_err_startup_length, strncmp(c->name, "len ", 4) == 0);
        }
        free(buf);
    }
}

static void test_startup_fields(void **state)
{
    (void)state;
    struct proto_startup s;
    size_t consumed;
    const char *err, *sqlstate;
    const struct startup_case *v3 = &startup_cases[0];
    assert_int_equal(proto_parse_startup(v3->bytes, v3->n, &s, &consumed, &err, &sqlstate), PROTO_FRAME_OK);
    assert_int_equal(s.version, PROTO_VERSION_3);
    assert_int_equal(s.nparams, 2);
    assert_string_equal(proto_startup_get(&s, "user"), "bob");
    assert_string_equal(proto_startup_get(&s, "database"), "db");
    assert_null(proto_startup_get(&s, "options"));
    assert_ptr_equal(s.params[0].name, (const char *)v3->bytes + 8);

    /* A repeated key: the last one answers, as PostgreSQL reads a repeated user or database. */
    static const uint8_t twice[] = "\0\0\0\x27\0\3\0\0user\0ann\0database\0d1\0user\0bob\0\0";
    assert_int_equal(proto_parse_startup(twice, sizeof twice - 1, &s, &consumed, &err, &sqlstate), PROTO_FRAME_OK);
    assert_int_equal(s.nparams, 3);
    assert_string_equal(proto_startup_get(&s, "user"), "bob");
    assert_string_equal(proto_startup_get(&s, "database"), "d1");

    const struct startup_case *v32 = &startup_cases[2];
    assert_int_equal(proto_parse_startup(v32->bytes, v32->n, &s, &consumed, &err, &sqlstate), PROTO_FRAME_OK);
    assert_int_equal(s.version, 0x00030002);
    assert_int_equal(s.nparams, 0);

    const struct startup_case *cancel = &startup_cases[6];
    assert_int_equal(proto_parse_startup(cancel->bytes, cancel->n, &s, &consumed, &err, &sqlstate),
                     PROTO_FRAME_OK);
    assert_int_equal(s.cancel_pid, 1234);
    assert_int_equal(s.cancel_key, 0x01020304);

    /* A packet followed by more bytes: only the packet is consumed. */
    uint8_t two[32];
    memcpy(two, "\0\0\0\x08\x04\xd2\x16\x2f" "Qxyz", 12);
    assert_int_equal(proto_parse_startup(two, 12, &s, &consumed, &err, &sqlstate), PROTO_FRAME_OK);
    assert_int_equal(consumed, 8);

    /* A short cancel request: the missing key reads as 0; an SSLRequest's extra bytes are consumed. */
    memcpy(two, "\0\0\0\x0c\x04\xd2\x16\x2e\0\0\0\x07", 12);
    assert_int_equal(proto_parse_startup(two, 12, &s, &consumed, &err, &sqlstate), PROTO_FRAME_OK);
    assert_int_equal(s.cancel_pid, 7);
    assert_int_equal(s.cancel_key, 0);
    memcpy(two, "\0\0\0\x0c\x04\xd2\x16\x2f\0\0\0\0Q", 13);
    assert_int_equal(proto_parse_startup(two, 13, &s, &consumed, &err, &sqlstate), PROTO_FRAME_OK);
    assert_int_equal(consumed, 12);
}

/* Builds a v3 packet with n parameters p0=v, p1=v, ... */
static void build_nparams(struct proto_buf *b, int n)
{
    static char names[40][8];
    const char *nv[40], *vv[40];
    for (int i = 0; i < n; i++) {
        names[i][0] = 'p';
        names[i][1] = (char)('0' + i / 10);
        names[i][2] = (char)('0' + i % 10);
        names[i][3] = '\0';
        nv[i] = names[i];
        vv[i] = "v";
    }
    proto_build_startup(b, nv, vv, n);
}

static void test_startup_param_limit(void **state)
{
    (void)state;
    struct proto_buf b;
    static struct proto_startup s;
    static const char *nv[PROTO_MAX_STARTUP_PARAMS], *vv[PROTO_MAX_STARTUP_PARAMS];
    size_t consumed;
    const char *err, *sqlstate;
    proto_buf_init(&b);
    /* 40 parameters, as PostgreSQL accepts. */
    build_nparams(&b, 40);
    assert_int_equal(proto_parse_startup(b.data, b.len, &s, &consumed, &err, &sqlstate), PROTO_FRAME_OK);
    assert_int_equal(s.nparams, 40);
    assert_string_equal(proto_startup_get(&s, "p39"), "v");
    /* The most a startup packet of the maximum length can hold: only the length limits them. */
    proto_buf_reset(&b);
    for (int i = 0; i < PROTO_MAX_STARTUP_PARAMS; i++) {
        nv[i] = "a";
        vv[i] = "";
    }
    proto_build_startup(&b, nv, vv, PROTO_MAX_STARTUP_PARAMS);
    assert_true(b.len <= PROTO_MAX_STARTUP_LEN);
    assert_int_equal(proto_parse_startup(b.data, b.len, &s, &consumed, &err, &sqlstate), PROTO_FRAME_OK);
    assert_int_equal(s.nparams, PROTO_MAX_STARTUP_PARAMS);
    /* One more does not fit the length limit. */
    proto_buf_reset(&b);
    proto_build_startup(&b, nv, vv, PROTO_MAX_STARTUP_PARAMS);
    proto_put_bytes(&b, "a\0\0", 3);    /* one more parameter a="" */
    assert_true(b.len > PROTO_MAX_STARTUP_LEN);
    proto_buf_free(&b);
}

static void test_startup_split_every_offset(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(startup_cases); i++) {
        const struct startup_case *c = &startup_cases[i];
        if (c->result != PROTO_FRAME_OK)
            continue;
        for (size_t k = 0; k < c->n; k++) {
            uint8_t *buf = exact_copy(c->bytes, k);
            struct proto_startup s;
            size_t consumed;
            const char *err, *sqlstate;
            if (proto_parse_startup(buf, k, &s, &consumed, &err, &sqlstate) != PROTO_FRAME_NEED_MORE)
                fail_msg("%s: split at %zu", c->name, k);
            free(buf);
        }
    }
}

/* ---- body parsers ---- */

/* Builds with fn, frames the result and returns its body (the buffer stays owned by b). */
static struct proto_frame frame_of(struct proto_buf *b, void (*fn)(struct proto_buf *))
{
    struct proto_frame f;
    size_t consumed;
    const char *err;
    proto_buf_reset(b);
    fn(b);
    assert_int_equal(proto_frame_next(b->data, b->len, PROTO_PHASE_BACKEND, &f, &consumed, &err),
                     PROTO_FRAME_OK);
    return f;
}

static void test_parse_roundtrip(void **state)
{
    (void)state;
    struct proto_buf b;
    proto_buf_init(&b);
    struct proto_frame f = frame_of(&b, b_error_dh);
    struct proto_error_fields ef;
    assert_int_equal(proto_parse_error(f.body, f.len, &ef), 0);
    assert_string_equal(ef.severity, "FATAL");
    assert_string_equal(ef.sqlstate, "28P01");
    assert_string_equal(ef.message, "no");
    assert_string_equal(ef.detail, "d");
    assert_string_equal(ef.hint, "h");
    f = frame_of(&b, b_notice);
    assert_int_equal(proto_parse_error(f.body, f.len, &ef), 0);
    assert_string_equal(ef.message, "hi");
    assert_null(ef.detail);
    assert_null(ef.hint);

    const char *name, *value, *s;
    f = frame_of(&b, b_param);
    assert_int_equal(proto_parse_param_status(f.body, f.len, &name, &value), 0);
    assert_string_equal(name, "client_encoding");
    assert_string_equal(value, "UTF8");

    uint32_t pid, key, code, n;
    f = frame_of(&b, b_key);
    assert_int_equal(proto_parse_backend_key(f.body, f.len, &pid, &key), 0);
    assert_int_equal(pid, 0x01020304);
    assert_int_equal(key, 0xa0b0c0d0);

    const uint8_t *data;
    f = frame_of(&b, b_auth_md5);
    assert_int_equal(proto_parse_auth(f.body, f.len, &code, &data, &n), 0);
    assert_int_equal(code, PROTO_AUTH_MD5);
    assert_int_equal(n, 4);
    assert_memory_equal(data, salt1234, 4);
    f = frame_of(&b, b_auth_sasl);
    assert_int_equal(proto_parse_auth(f.body, f.len, &code, &data, &n), 0);
    assert_int_equal(code, PROTO_AUTH_SASL);
    assert_string_equal((const char *)data, "SCRAM-SHA-256");
    f = frame_of(&b, b_sasl_final);
    assert_int_equal(proto_parse_auth(f.body, f.len, &code, &data, &n), 0);
    assert_int_equal(code, PROTO_AUTH_SASL_FINAL);
    assert_int_equal(n, 4);
    assert_memory_equal(data, "v=xy", 4);
    f = frame_of(&b, b_auth_ok);
    assert_int_equal(proto_parse_auth(f.body, f.len, &code, &data, &n), 0);
    assert_int_equal(code, PROTO_AUTH_OK);
    assert_int_equal(n, 0);

    char status;
    f = frame_of(&b, b_ready);
    assert_int_equal(proto_parse_ready(f.body, f.len, &status), 0);
    assert_int_equal(status, 'I');

    const char *mech;
    f = frame_of(&b, b_sasl_init);
    assert_int_equal(proto_parse_sasl_initial(f.body, f.len, &mech, &data, &n, NULL), 0);
    assert_string_equal(mech, "SCRAM-SHA-256");
    assert_int_equal(n, 3);
    assert_memory_equal(data, "n,,", 3);
    f = frame_of(&b, b_sasl_init_null);
    assert_int_equal(proto_parse_sasl_initial(f.body, f.len, &mech, &data, &n, NULL), 0);
    assert_null(data);
    assert_int_equal(n, 0);

    f = frame_of(&b, b_password);
    assert_int_equal(proto_parse_password(f.body, f.len, &s), 0);
    assert_string_equal(s, "secret");
    proto_buf_free(&b);

    assert_int_equal(proto_parse_command_complete(BYTES("INSERT 0 1\0"), &s), 0);
    assert_string_equal(s, "INSERT 0 1");
}

enum parser { P_ERROR, P_PARAM, P_KEY, P_AUTH, P_READY, P_COMPLETE, P_SASL_INIT, P_PASSWORD };

struct bad_body {
    enum parser parser;
    const uint8_t *bytes;
    size_t n;
};

static const struct bad_body bad_bodies[] = {
    { P_ERROR, BYTES("") },
    { P_ERROR, BYTES("SERROR\0") },             /* no terminator */
    { P_ERROR, BYTES("SERR") },                 /* unterminated value */
    { P_ERROR, BYTES("S") },
    { P_ERROR, BYTES("SERROR\0\0X") },          /* data after terminator */
    { P_PARAM, BYTES("") },
    { P_PARAM, BYTES("a\0") },
    { P_PARAM, BYTES("a\0b") },
    { P_PARAM, BYTES("a\0b\0c") },
    { P_KEY, BYTES("\0\0\0\x01\0\0\0") },
    { P_KEY, BYTES("\0\0\0\x01\0\0\0\x02\0") },
    { P_AUTH, BYTES("\0\0\0") },
    { P_AUTH, BYTES("\0\0\0\x05\x01\x02\x03") },            /* md5 salt short */
    { P_AUTH, BYTES("\0\0\0\x00\x01") },                    /* ok with data */
    { P_AUTH, BYTES("\0\0\0\x0a" "SCRAM-SHA-256") },        /* sasl list unterminated */
    { P_AUTH, BYTES("\0\0\0\x0a") },                        /* sasl list empty */
    { P_READY, BYTES("") },
    { P_READY, BYTES("II") },
    { P_READY, BYTES("X") },
    { P_COMPLETE, BYTES("") },
    { P_COMPLETE, BYTES("SELECT 1") },
    { P_COMPLETE, BYTES("SELECT 1\0x") },
    { P_SASL_INIT, BYTES("") },
    { P_SASL_INIT, BYTES("SCRAM-SHA-256") },
    { P_SASL_INIT, BYTES("SCRAM-SHA-256\0\0\0") },
    { P_SASL_INIT, BYTES("SCRAM-SHA-256\0\0\0\0\x04" "abc") },
    { P_SASL_INIT, BYTES("SCRAM-SHA-256\0\0\0\0\x02" "abc") },
    { P_SASL_INIT, BYTES("SCRAM-SHA-256\0\x7f\xff\xff\xff") },
    { P_SASL_INIT, BYTES("SCRAM-SHA-256\0\xff\xff\xff\xff" "x") },
    { P_PASSWORD, BYTES("") },
    { P_PASSWORD, BYTES("secret") },
    { P_PASSWORD, BYTES("secret\0more") },
};

static int run_parser(enum parser p, const uint8_t *body, uint32_t len)
{
    struct proto_error_fields ef;
    const char *a, *b;
    const uint8_t *d;
    uint32_t x, y;
    char c;
    switch (p) {
    case P_ERROR: return proto_parse_error(body, len, &ef);
    case P_PARAM: return proto_parse_param_status(body, len, &a, &b);
    case P_KEY: return proto_parse_backend_key(body, len, &x, &y);
    case P_AUTH: return proto_parse_auth(body, len, &x, &d, &y);
    case P_READY: return proto_parse_ready(body, len, &c);
    case P_COMPLETE: return proto_parse_command_complete(body, len, &a);
    case P_SASL_INIT: return proto_parse_sasl_initial(body, len, &a, &d, &x, NULL);
    case P_PASSWORD: return proto_parse_password(body, len, &a);
    }
    return 0;
}

/* proto_build_error_rewrite: the fields in their order, the named ones replaced; it stops at a field
 * without its NUL. */
static void test_error_rewrite(void **state)
{
    (void)state;
    struct proto_buf in, out, want;
    proto_buf_init(&in);
    proto_buf_init(&out);
    proto_buf_init(&want);
    proto_build_error(&in, "ERROR", "42P05", "old", "d", NULL);
    proto_build_error(&want, "FATAL", "42P05", "new", "d", NULL);
    proto_build_error_rewrite(&out, in.data + 5, (uint32_t)in.len - 5, "SVM",
                              (const char *const[]){"FATAL", "FATAL", "new"});
    assert_false(out.failed);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);

    static const uint8_t cut[] = {'S', 'E', 'R', 'R', 'O', 'R', 0, 'C', '4', '2'};
    static const uint8_t cut_want[] = {'E', 0, 0, 0, 12, 'S', 'E', 'R', 'R', 'O', 'R', 0, 0};
    out.len = 0;
    proto_build_error_rewrite(&out, cut, sizeof(cut), "M", (const char *const[]){"x"});
    assert_int_equal(out.len, sizeof(cut_want));
    assert_memory_equal(out.data, cut_want, sizeof(cut_want));
    proto_buf_free(&in);
    proto_buf_free(&out);
    proto_buf_free(&want);
}

static void test_parse_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad_bodies); i++) {
        uint8_t *body = exact_copy(bad_bodies[i].bytes, bad_bodies[i].n);
        if (run_parser(bad_bodies[i].parser, body, (uint32_t)bad_bodies[i].n) != -1)
            fail_msg("bad body %zu was accepted", i);
        free(body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_cases),
        cmocka_unit_test(test_startup_fields),
        cmocka_unit_test(test_startup_param_limit),
        cmocka_unit_test(test_startup_split_every_offset),
        cmocka_unit_test(test_parse_roundtrip),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_error_rewrite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
