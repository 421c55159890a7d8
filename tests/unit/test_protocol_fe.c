/*
 * Unit tests of protocol/'s frontend body parsers (Parse, Bind, Describe, Close, Execute): a table
 * of valid bodies with the fields each must give, a table of malformed ones (truncated, a missing
 * NUL, counts beyond the bytes, bad lengths, trailing bytes), and every valid body cut short at each
 * length and with a byte added. Each body is parsed from an allocation of exactly its length.
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

enum kind { K_PARSE, K_BIND, K_BIND_NAMES, K_DESCRIBE, K_CLOSE, K_EXECUTE };

struct want {
    const char *s1, *s2;        /* Parse: name, query; Bind: portal, statement; D/C/E: name */
    int a, b, c;                /* Parse: ntypes; Bind: nformats, nparams, nresults; D/C: kind; E: max_rows */
};

struct body_case {
    const char *what;
    enum kind kind;
    const uint8_t *bytes;
    size_t n;
    struct want want;
};

static const struct body_case valid[] = {
    { "parse unnamed", K_PARSE, BYTES("\0" "select 1\0" "\0\0"), { "", "select 1", 0, 0, 0 } },
    { "parse named, 2 types", K_PARSE, BYTES("s1\0" "select $1, $2\0" "\0\x02" "\0\0\0\x17" "\0\0\0\0"),
      { "s1", "select $1, $2", 2, 0, 0 } },
    { "parse empty query", K_PARSE, BYTES("\0\0\0\0"), { "", "", 0, 0, 0 } },
    { "bind unnamed, no params", K_BIND, BYTES("\0\0" "\0\0" "\0\0" "\0\0"), { "", "", 0, 0, 0 } },
    { "bind text params, NULL", K_BIND,
      BYTES("p1\0" "s1\0" "\0\0" "\0\x02" "\0\0\0\x02" "42" "\xff\xff\xff\xff" "\0\x01" "\0\x01"),
      { "p1", "s1", 0, 2, 1 } },
    { "bind one format for all", K_BIND, BYTES("\0" "s\0" "\0\x01" "\0\x01" "\0\x02" "\0\0\0\0" "\0\0\0\x01" "x" "\0\0"),
      { "", "s", 1, 2, 0 } },
    { "bind a format each", K_BIND, BYTES("\0" "s\0" "\0\x02" "\0\0" "\0\x01" "\0\x02" "\0\0\0\0" "\0\0\0\0" "\0\0"),
      { "", "s", 2, 2, 0 } },
    { "bind names of a whole bind", K_BIND_NAMES, BYTES("p\0" "s\0" "\0\0" "\0\0" "\0\0"), { "p", "s", 0, 0, 0 } },
    { "bind names only", K_BIND_NAMES, BYTES("\0" "stmt\0"), { "", "stmt", 0, 0, 0 } },
    { "describe statement", K_DESCRIBE, BYTES("Ss1\0"), { "s1", NULL, 'S', 0, 0 } },
    { "describe unnamed portal", K_DESCRIBE, BYTES("P\0"), { "", NULL, 'P', 0, 0 } },
    { "close statement", K_CLOSE, BYTES("Sname\0"), { "name", NULL, 'S', 0, 0 } },
    { "close portal", K_CLOSE, BYTES("Pp\0"), { "p", NULL, 'P', 0, 0 } },
    { "execute all rows", K_EXECUTE, BYTES("\0" "\0\0\0\0"), { "", NULL, 0, 0, 0 } },
    { "execute 100 rows", K_EXECUTE, BYTES("cur\0" "\0\0\0\x64"), { "cur", NULL, 100, 0, 0 } },
    { "execute negative max_rows", K_EXECUTE, BYTES("\0" "\xff\xff\xff\xff"), { "", NULL, -1, 0, 0 } },
};

static const struct body_case malformed[] = {
    { "parse empty", K_PARSE, BYTES(""), { 0 } },
    { "parse name without NUL", K_PARSE, BYTES("s1"), { 0 } },
    { "parse query without NUL", K_PARSE, BYTES("\0select 1"), { 0 } },
    { "parse no type count", K_PARSE, BYTES("\0select 1\0"), { 0 } },
    { "parse half a type count", K_PARSE, BYTES("\0select 1\0\0"), { 0 } },
    { "parse types missing", K_PARSE, BYTES("\0select $1\0\0\x01"), { 0 } },
    { "parse a type cut short", K_PARSE, BYTES("\0select $1\0\0\x01\0\0\0"), { 0 } },
    { "parse negative type count", K_PARSE, BYTES("\0select 1\0\xff\xff"), { 0 } },
    { "parse trailing byte", K_PARSE, BYTES("\0select 1\0\0\0x"), { 0 } },
    { "bind empty", K_BIND, BYTES(""), { 0 } },
    { "bind portal without NUL", K_BIND, BYTES("p"), { 0 } },
    { "bind statement without NUL", K_BIND, BYTES("\0s"), { 0 } },
    { "bind no format count", K_BIND, BYTES("\0\0"), { 0 } },
    { "bind formats missing", K_BIND, BYTES("\0\0\0\x01"), { 0 } },
    { "bind no param count", K_BIND, BYTES("\0\0\0\0"), { 0 } },
    { "bind negative param count", K_BIND, BYTES("\0\0\0\0\xff\xff\0\0"), { 0 } },
    { "bind negative format count", K_BIND, BYTES("\0\0\xff\xff\0\0\0\0"), { 0 } },
    { "bind value length -2", K_BIND, BYTES("\0\0\0\0\0\x01\xff\xff\xff\xfe\0\0"), { 0 } },
    { "bind value length huge", K_BIND, BYTES("\0\0\0\0\0\x01\x7f\xff\xff\xff\0\0"), { 0 } },
    { "bind value cut short", K_BIND, BYTES("\0\0\0\0\0\x01\0\0\0\x03" "ab"), { 0 } },
    { "bind formats neither 1 nor nparams", K_BIND,
      BYTES("\0\0\0\x02\0\0\0\0\0\x01\0\0\0\0\0\0"), { 0 } },
    { "bind no result count", K_BIND, BYTES("\0\0\0\0\0\0"), { 0 } },
    { "bind negative result count", K_BIND, BYTES("\0\0\0\0\0\0\xff\xff"), { 0 } },
    { "bind trailing byte", K_BIND, BYTES("\0\0\0\0\0\0\0\0z"), { 0 } },
    { "bind names empty", K_BIND_NAMES, BYTES(""), { 0 } },
    { "bind names, statement cut", K_BIND_NAMES, BYTES("portal\0stm"), { 0 } },
    { "describe empty", K_DESCRIBE, BYTES(""), { 0 } },
    { "describe no name", K_DESCRIBE, BYTES("S"), { 0 } },
    { "describe name without NUL", K_DESCRIBE, BYTES("Sabc"), { 0 } },
    { "describe bad kind", K_DESCRIBE, BYTES("Xabc\0"), { 0 } },
    { "describe trailing byte", K_DESCRIBE, BYTES("Sabc\0\0"), { 0 } },
    { "close empty", K_CLOSE, BYTES(""), { 0 } },
    { "close bad kind", K_CLOSE, BYTES("s\0"), { 0 } },
    { "close name without NUL", K_CLOSE, BYTES("Pp"), { 0 } },
    { "close trailing byte", K_CLOSE, BYTES("P\0P\0"), { 0 } },
    { "execute empty", K_EXECUTE, BYTES(""), { 0 } },
    { "execute portal without NUL", K_EXECUTE, BYTES("cur"), { 0 } },
    { "execute no max_rows", K_EXECUTE, BYTES("\0"), { 0 } },
    { "execute max_rows cut short", K_EXECUTE, BYTES("\0\0\0\0"), { 0 } },
    { "execute trailing byte", K_EXECUTE, BYTES("\0\0\0\0\0\0"), { 0 } },
};

/* A string field: inside the body, NUL-terminated there, of the length the parser reported. */
static void check_str(const char *what, const char *s, uint32_t n, const char *want, const uint8_t *body,
                      size_t len)
{
    if (!s || (const uint8_t *)s < body || (const uint8_t *)s + n >= body + len || s[n] != 0)
        fail_msg("%s: a string outside the body or without its NUL", what);
    if (strlen(s) != n || strcmp(s, want) != 0)
        fail_msg("%s: \"%s\" (%u), want \"%s\"", what, s, n, want);
}

/* Parses body with the case's parser; on success checks every field against want. */
static int parse(const struct body_case *c, const uint8_t *body, uint32_t len, int check)
{
    struct proto_fe_parse p;
    struct proto_fe_bind b;
    struct proto_fe_target t;
    struct proto_fe_execute e;
    int r = -1;

    switch (c->kind) {
    case K_PARSE:
        if ((r = proto_parse_fe_parse(body, len, &p)) == 0 && check) {
            check_str(c->what, p.name, p.name_len, c->want.s1, body, len);
            check_str(c->what, p.query, p.query_len, c->want.s2, body, len);
            assert_int_equal(p.ntypes, c->want.a);
            assert_ptr_equal(p.types + 4 * p.ntypes, body + len);
        }
        break;
    case K_BIND:
    case K_BIND_NAMES:
        r = c->kind == K_BIND ? proto_parse_fe_bind(body, len, &b) : proto_parse_fe_bind_names(body, len, &b);
        if (r == 0 && check) {
            check_str(c->what, b.portal, b.portal_len, c->want.s1, body, len);
            check_str(c->what, b.statement, b.statement_len, c->want.s2, body, len);
            assert_int_equal(b.names_len, b.portal_len + b.statement_len + 2);
            assert_int_equal(b.nformats, c->want.a);
            assert_int_equal(b.nparams, c->want.b);
            assert_int_equal(b.nresults, c->want.c);
            if (c->kind == K_BIND) {
                assert_ptr_equal(b.formats, body + b.names_len + 2);
                assert_ptr_equal(b.params, b.formats + 2 * b.nformats + 2);
                assert_ptr_equal(b.results + 2 * b.nresults, body + len);
            }
        }
        break;
    case K_DESCRIBE:
    case K_CLOSE:
        r = c->kind == K_DESCRIBE ? proto_parse_fe_describe(body, len, &t) : proto_parse_fe_close(body, len, &t);
        if (r == 0 && check) {
            check_str(c->what, t.name, t.name_len, c->want.s1, body, len);
            assert_int_equal(t.kind, c->want.a);
        }
        break;
    case K_EXECUTE:
        if ((r = proto_parse_fe_execute(body, len, &e)) == 0 && check) {
            check_str(c->what, e.portal, e.portal_len, c->want.s1, body, len);
            assert_int_equal(e.max_rows, c->want.a);
        }
        break;
    }
    return r;
}

/* Copies n bytes into an exact-size heap block so that ASan catches any read past the end. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);

    assert_non_null(c);
    memcpy(c, p, n);
    return c;
}

static void test_fe_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(valid); i++) {
        uint8_t *body = exact_copy(valid[i].bytes, valid[i].n);

        if (parse(&valid[i], body, (uint32_t)valid[i].n, 1) != 0)
            fail_msg("%s: refused", valid[i].what);
        free(body);
    }
}

static void test_fe_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(malformed); i++) {
        uint8_t *body = exact_copy(malformed[i].bytes, malformed[i].n);

        if (parse(&malformed[i], body, (uint32_t)malformed[i].n, 0) != -1)
            fail_msg("%s: accepted", malformed[i].what);
        free(body);
    }
}

/*
 * Every valid body cut short at each length is refused (a proxy must never take a message whose end
 * has not arrived for a whole one), except the names of a Bind, which need only the names; and one
 * byte more is refused as trailing garbage by all but the names-only parser.
 */
static void test_fe_truncated_and_trailing(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(valid); i++) {
        const struct body_case *c = &valid[i];
        uint8_t *more = malloc(c->n + 1);

        for (size_t cut = 0; cut < c->n; cut++) {
            uint8_t *body = exact_copy(c->bytes, cut);
            int r = parse(c, body, (uint32_t)cut, 0);
            int names_held = c->kind == K_BIND_NAMES && cut >= strlen(c->want.s1) + strlen(c->want.s2) + 2;

            if (r != (names_held ? 0 : -1))
                fail_msg("%s cut to %zu bytes: %d", c->what, cut, r);
            free(body);
        }
        assert_non_null(more);
        memcpy(more, c->bytes, c->n);
        more[c->n] = 0;
        if (parse(c, more, (uint32_t)c->n + 1, 0) != (c->kind == K_BIND_NAMES ? 0 : -1))
            fail_msg("%s with a trailing byte", c->what);
        free(more);
    }
}

/* A Bind's values are stepped over by their lengths, not searched: a value may hold any bytes. */
static void test_fe_bind_binary_values(void **state)
{
    static const uint8_t b[] = "\0s\0" "\0\x01\0\x01" "\0\x02" "\0\0\0\x03" "\0\0\0" "\0\0\0\x02" "\xff\xff" "\0\0";
    struct proto_fe_bind out;
    uint8_t *body = exact_copy(b, sizeof(b) - 1);
    (void)state;

    assert_int_equal(proto_parse_fe_bind(body, sizeof(b) - 1, &out), 0);
    assert_int_equal(out.nparams, 2);
    assert_memory_equal(out.params, "\0\0\0\x03\0\0\0", 7);
    free(body);
}

/* The messages PostgreSQL answers with a ReadyForQuery, and none of the others. */
static void test_fe_gets_ready(void **state)
{
    const char *all = "BCdcfDEHFPpQSX";

    (void)state;
    for (const char *t = all; *t; t++)
        assert_int_equal(proto_fe_gets_ready((uint8_t)*t), *t == 'S' || *t == 'Q' || *t == 'F');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fe_valid),
        cmocka_unit_test(test_fe_malformed),
        cmocka_unit_test(test_fe_truncated_and_trailing),
        cmocka_unit_test(test_fe_bind_binary_values),
        cmocka_unit_test(test_fe_gets_ready),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
