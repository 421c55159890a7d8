/* routing/: lexer tokens, statement splitting, hint comments, fingerprints and normalized text,
 * all from tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "routing/route.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static char type_letter(enum route_tok_type t)
{
    switch (t) {
    case ROUTE_TOK_EOF: return 'E';
    case ROUTE_TOK_IDENT: return 'I';
    case ROUTE_TOK_QIDENT: return 'Q';
    case ROUTE_TOK_STRING: return 'S';
    case ROUTE_TOK_DOLLAR: return 'D';
    case ROUTE_TOK_NUMBER: return 'N';
    case ROUTE_TOK_PARAM: return 'P';
    case ROUTE_TOK_OP: return 'O';
    case ROUTE_TOK_PUNCT: return 'U';
    case ROUTE_TOK_COMMENT: return 'C';
    }
    return '?';
}

/* "T:text T:text ..." with '!' after an incomplete token's letter. */
static void dump_tokens(const char *sql, size_t len, bool raw, char *out, size_t cap)
{
    size_t pos = 0, o = 0;
    struct route_token tok;
    out[0] = '\0';
    for (;;) {
        enum route_tok_type t = raw ? route_lex_next_raw(sql, len, &pos, &tok)
                                    : route_lex_next(sql, len, &pos, &tok);
        if (t == ROUTE_TOK_EOF)
            break;
        assert_true(tok.start + tok.len <= len);
        assert_int_equal(pos, tok.start + tok.len);
        o += (size_t)snprintf(out + o, cap - o, "%s%c%s:%.*s", o ? " " : "", type_letter(t),
                              tok.incomplete ? "!" : "", (int)tok.len, sql + tok.start);
        assert_true(o < cap);
    }
}

struct lex_case {
    const char *sql;
    const char *tokens;
};

static const struct lex_case lex_cases[] = {
    {"SELECT 1", "I:SELECT N:1"},
    {"select a,b from t;", "I:select I:a U:, I:b I:from I:t U:;"},
    {"  \t\n select\r\n1  ", "I:select N:1"},
    {"-- only a comment", ""},
    {"select 1 -- trailing\n+ 2", "I:select N:1 O:+ N:2"},
    {"select /* a /* nested */ still comment */ 1", "I:select N:1"},
    {"select /* unterminated /* nested */", "I:select"},
    {"\"Quoted\"\"Id\" . x", "Q:\"Quoted\"\"Id\" U:. I:x"},
    {"'it''s' 'x'", "S:'it''s' S:'x'"},
    {"E'it\\'s' e'\\\\' x", "S:E'it\\'s' S:e'\\\\' I:x"},
    {"'plain \\' y'", "S:'plain \\' I:y S!:'"},
    {"B'0101' X'1F' N'abc' U&'d\\0061t' u&\"x\"", "S:B'0101' S:X'1F' S:N'abc' S:U&'d\\0061t' Q:u&\"x\""},
    {"e 'x'", "I:e S:'x'"},
    {"$$a;b$$", "D:$$a;b$$"},
    {"$fn$ select $$x$$; $fn$", "D:$fn$ select $$x$$; $fn$"},
    {"$a$ $b$ $a$ 1", "D:$a$ $b$ $a$ N:1"},
    {"$1 + $23", "P:$1 O:+ P:$23"},
    {"a$b $x", "I:a$b U:$ I:x"},
    {"1 1.5 .5 1e10 1.5E-3 2e 3.", "N:1 N:1.5 N:.5 N:1e10 N:1.5E-3 N:2 I:e N:3."},
    {"a[1:2] x::int y := 1", "I:a U:[ N:1 U:: N:2 U:] I:x O::: I:int I:y O::= N:1"},
    {"a<=b <> c != d", "I:a O:<= I:b O:<> I:c O:!= I:d"},
    {"x=-1", "I:x O:= O:- N:1"},
    {"x@-1", "I:x O:@- N:1"},
    {"a+-- c\nb", "I:a O:+ I:b"},
    {"a*/* c */b", "I:a O:* I:b"},
    {"'unterminated", "S!:'unterminated"},
    {"E'esc\\'", "S!:E'esc\\'"},
    {"\"open", "Q!:\"open"},
    {"$tag$ never closed $ta", "D!:$tag$ never closed $ta"},
    {"/* open", ""},
    {"caf\xc3\xa9 = 1", "I:caf\xc3\xa9 O:= N:1"},
    {"f(x, y)", "I:f U:( I:x U:, I:y U:)"},
};

static void test_lex_table(void **state)
{
    (void)state;
    char out[1024];
    for (size_t i = 0; i < N_ELEMS(lex_cases); i++) {
        dump_tokens(lex_cases[i].sql, strlen(lex_cases[i].sql), false, out, sizeof out);
        if (strcmp(out, lex_cases[i].tokens) != 0)
            fail_msg("case %zu %s:\n got  %s\n want %s", i, lex_cases[i].sql, out,
                     lex_cases[i].tokens);
    }
}

static void test_lex_raw_comments(void **state)
{
    (void)state;
    char out[256];
    const char *sql = "a /* x /* y */ z */ b -- end";
    dump_tokens(sql, strlen(sql), true, out, sizeof out);
    assert_string_equal(out, "I:a C:/* x /* y */ z */ I:b C:-- end");
    sql = "/* open /* inner */";
    dump_tokens(sql, strlen(sql), true, out, sizeof out);
    assert_string_equal(out, "C!:/* open /* inner */");
}

/* Every prefix of every case must lex without reading past its length (ASan checks the bytes:
 * each prefix is copied into an exact-size heap buffer). */
static void test_lex_prefixes(void **state)
{
    (void)state;
    char out[1024];
    for (size_t i = 0; i < N_ELEMS(lex_cases); i++) {
        size_t n = strlen(lex_cases[i].sql);
        for (size_t k = 0; k <= n; k++) {
            char *buf = malloc(k ? k : 1);
            assert_non_null(buf);
            memcpy(buf, lex_cases[i].sql, k);
            dump_tokens(buf, k, true, out, sizeof out);
            struct route_scan s;
            route_scan(buf, k, &s, out, 16);
            assert_true(strlen(out) < 16);
            (void)route_split_spans(buf, k, NULL, 0);
            free(buf);
        }
    }
}

static void test_tok_is(void **state)
{
    (void)state;
    const char *sql = "SeLeCt \"select\"";
    size_t pos = 0;
    struct route_token tok;
    route_lex_next(sql, strlen(sql), &pos, &tok);
    assert_true(route_tok_is(sql, &tok, "select"));
    assert_false(route_tok_is(sql, &tok, "selec"));
    route_lex_next(sql, strlen(sql), &pos, &tok);
    assert_false(route_tok_is(sql, &tok, "select"));
}

/* ------------------------------------------------------------------------------------------ */

struct split_case {
    const char *sql;
    const char *stmts[6];   /* NULL-terminated */
};

static const struct split_case split_cases[] = {
    {"select 1; select 2", {"select 1", "select 2", NULL}},
    {"  select 1 ;\n\n  select 2 ;  ", {"select 1", "select 2", NULL}},
    {";;; ;", {NULL}},
    {"", {NULL}},
    {"select ';' ; select 2", {"select ';'", "select 2", NULL}},
    {"select 'a'';b'; x", {"select 'a'';b'", "x", NULL}},
    {"select E'\\';'; x", {"select E'\\';'", "x", NULL}},
    {"select \"a;b\" from t; x", {"select \"a;b\" from t", "x", NULL}},
    {"select 1 -- a; b\n; x", {"select 1 -- a; b", "x", NULL}},
    {"select /* ; /* ; */ ; */ 1; x", {"select /* ; /* ; */ ; */ 1", "x", NULL}},
    {"create function f() returns int as $$ select 1; select 2; $$ language sql; select f()",
     {"create function f() returns int as $$ select 1; select 2; $$ language sql", "select f()",
      NULL}},
    {"do $body$ begin perform 1; end $body$; commit",
     {"do $body$ begin perform 1; end $body$", "commit", NULL}},
    {"select $1; select $2", {"select $1", "select $2", NULL}},
    {"create rule r as on insert to t do also (insert into a values (1); insert into b values (2)); x",
     {"create rule r as on insert to t do also (insert into a values (1); insert into b values (2))",
      "x", NULL}},
    {"create function f() returns int language sql begin atomic select 1; select case when true then 2 end; end; select 3",
     {"create function f() returns int language sql begin atomic select 1; select case when true then 2 end; end",
      "select 3", NULL}},
    {"begin; update t set a = 1; commit;", {"begin", "update t set a = 1", "commit", NULL}},
    {"/* pglane lane=x */ select 1; -- trailing comment only", {"/* pglane lane=x */ select 1", NULL}},
    {"select 1; /* hint */ select 2 /* tail */ ;", {"select 1", "/* hint */ select 2 /* tail */", NULL}},
    {"select 'open; still", {"select 'open; still", NULL}},
    {"select 1; $a$ open; ", {"select 1", "$a$ open; ", NULL}},
    {"select 1; /* open ; ", {"select 1", NULL}},
};

static void test_split_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(split_cases); i++) {
        const struct split_case *c = &split_cases[i];
        struct route_span spans[8];
        size_t n = route_split_spans(c->sql, strlen(c->sql), spans, 8);
        size_t want = 0;
        while (c->stmts[want])
            want++;
        if (n != want)
            fail_msg("case %zu %s: %zu statements, want %zu", i, c->sql, n, want);
        for (size_t k = 0; k < n; k++) {
            if (spans[k].len != strlen(c->stmts[k]) ||
                memcmp(c->sql + spans[k].start, c->stmts[k], spans[k].len) != 0)
                fail_msg("case %zu stmt %zu: got [%.*s] want [%s]", i, k, (int)spans[k].len,
                         c->sql + spans[k].start, c->stmts[k]);
        }
    }
}

static int stop_at_second(const char *sql, struct route_span stmt, void *arg)
{
    (void)sql;
    (void)stmt;
    int *count = arg;
    return ++*count == 2 ? 7 : 0;
}

static void test_split_callback_stops(void **state)
{
    (void)state;
    const char *sql = "a; b; c";
    int count = 0;
    assert_int_equal(route_split(sql, strlen(sql), stop_at_second, &count), 7);
    assert_int_equal(count, 2);
    struct route_span one[1];
    assert_int_equal(route_split_spans(sql, strlen(sql), one, 1), 3);
    assert_int_equal(one[0].len, 1);
}

/* ------------------------------------------------------------------------------------------ */

struct hint_case {
    const char *sql;
    const char *lane;   /* NULL: no hint */
};

static const struct hint_case hint_cases[] = {
    {"/* pglane lane=analytics */ select 1", "analytics"},
    {"select 1 /* pglane lane=analytics */", "analytics"},
    {"select 1 -- pglane lane=bulk-load\n", "bulk-load"},
    {"select 1 -- pglane lane=bulk-load", "bulk-load"},
    {"/*pglane lane=x*/select 1", "x"},
    {"/* PGLANE  lane = reports_2 */ select 1", "reports_2"},
    {"/* pglane app=foo lane=olap other=1 */ select", "olap"},
    {"/* pglane app=foo */ select 1", NULL},
    {"/* pglanes lane=x */ select 1", NULL},
    {"/* lane=x */ select 1", NULL},
    {"select '/* pglane lane=x */'", NULL},
    {"select $$ -- pglane lane=x $$", NULL},
    {"select \"/* pglane lane=x */\"", NULL},
    {"/* outer /* pglane lane=inner */ */ select", NULL},
    {"/* pglane lane=first */ select /* pglane lane=second */", "first"},
    {"/* pglane lane= */ select", NULL},
    {"/* pglane lane=open", "open"},
    {"select 1", NULL},
    {"/* pglane tenant=acme */ select 1", NULL},
    {"/* pglane tenant=acme lane=reports */ select 1", "reports"},
    {"/* pglane lane=reports tenant=acme */ select 1", "reports"},
};

static void test_hint_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(hint_cases); i++) {
        const struct hint_case *c = &hint_cases[i];
        const char *name = NULL;
        size_t n = 0;
        bool found = route_hint(c->sql, strlen(c->sql), &name, &n);
        struct route_scan s;
        route_scan(c->sql, strlen(c->sql), &s, NULL, 0);
        if (!c->lane) {
            if (found || s.hint)
                fail_msg("case %zu %s: unexpected hint %.*s", i, c->sql, (int)n, name);
            continue;
        }
        if (!found || n != strlen(c->lane) || memcmp(name, c->lane, n) != 0)
            fail_msg("case %zu %s: got %d %.*s", i, c->sql, found, (int)n, name ? name : "");
        assert_ptr_equal(s.hint, name);
        assert_int_equal(s.hint_len, n);
    }
}

/* The tenant of fair queuing, read from the same comments as lane hints. */
static const struct hint_case tenant_cases[] = {
    {"/* pglane tenant=acme */ select pg_sleep(1)", "acme"},
    {"select 1 -- pglane tenant=t-42\n", "t-42"},
    {"/* pglane lane=reports tenant=acme */ select 1", "acme"},
    {"/* pglane tenant = Big_Co lane=x */ select 1", "Big_Co"},
    {"/* pglane lane=reports */ /* pglane tenant=second */ select 1", "second"},
    {"/* pglane lane=reports */ select 1", NULL},
    {"/* pglane tenants=acme */ select 1", NULL},
    {"/* tenant=acme */ select 1", NULL},
    {"select '/* pglane tenant=x */'", NULL},
    {"/* pglane tenant= */ select", NULL},
    {"/* pglane tenant=first */ select /* pglane tenant=second */", "first"},
};

static void test_tenant_hint_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(tenant_cases); i++) {
        const struct hint_case *c = &tenant_cases[i];
        const char *id = NULL;
        size_t n = 0;
        bool found = route_tenant_hint(c->sql, strlen(c->sql), &id, &n);

        if (!c->lane) {
            if (found)
                fail_msg("case %zu %s: unexpected tenant %.*s", i, c->sql, (int)n, id);
            continue;
        }
        if (!found || n != strlen(c->lane) || memcmp(id, c->lane, n) != 0)
            fail_msg("case %zu %s: got %d %.*s", i, c->sql, found, (int)n, id ? id : "");
    }
}

/* ------------------------------------------------------------------------------------------ */

struct norm_case {
    const char *sql;
    const char *norm;
};

static const struct norm_case norm_cases[] = {
    {"SELECT * FROM t WHERE id = 1", "select * from t where id = ?"},
    {"select *  from t where id=42", "select * from t where id = ?"},
    {"SELECT abalance FROM pgbench_accounts WHERE aid = $1",
     "select abalance from pgbench_accounts where aid = ?"},
    {"select * from t where id in (1, 2, 3)", "select * from t where id in (?)"},
    {"insert into t (a, b) values (1, 'x'), (2, 'y')", "insert into t(a, b) values (?)"},
    {"select count(*) from \"Events\" e where e.ts > now() - interval '1 day'",
     "select count(*) from \"Events\" e where e.ts > now() - interval ?"},
    {"select x::text, -1, a - 1 from t", "select x::text, ?, a - ? from t"},
    {"select E'a\\'b', $$x$$, $t$y$t$, B'01'", "select ?, ?, ?, ?"},
    {"select a /* c */ from t -- d", "select a from t"},
    {"update t set a = -2.5e3 where b in ($1, $2)", "update t set a = ? where b in (?)"},
    {"select true, null, false", "select true, null, false"},
    {"select f(a, 1)", "select f(a, ?)"},
    {"select a[1] from t", "select a[?] from t"},
};

static void test_normalized_text(void **state)
{
    (void)state;
    char buf[256];
    for (size_t i = 0; i < N_ELEMS(norm_cases); i++) {
        struct route_scan s;
        route_scan(norm_cases[i].sql, strlen(norm_cases[i].sql), &s, buf, sizeof buf);
        if (strcmp(buf, norm_cases[i].norm) != 0)
            fail_msg("case %zu:\n got  %s\n want %s", i, buf, norm_cases[i].norm);
        assert_int_equal(s.norm_len, strlen(norm_cases[i].norm));
        assert_int_equal(s.fingerprint, route_fingerprint(norm_cases[i].sql,
                                                          strlen(norm_cases[i].sql)));
    }
}

static void test_normalized_truncation(void **state)
{
    (void)state;
    const char *sql = "select aaaa, bbbb from t";
    char buf[8];
    struct route_scan s;
    route_scan(sql, strlen(sql), &s, buf, sizeof buf);
    assert_string_equal(buf, "select ");
    assert_int_equal(s.norm_len, strlen("select aaaa, bbbb from t"));
    route_scan(sql, strlen(sql), &s, buf, 1);
    assert_string_equal(buf, "");
}

/* Pairs that must share a fingerprint. */
static const char *const same_fp[][2] = {
    {"SELECT * FROM t WHERE id = 1", "select *  from t where id=42"},
    {"SELECT * FROM t WHERE id = 1", "select * from t where id = $1"},
    {"select * from t where id = 1", "select * from t where id = -7"},
    {"select * from t where name = 'bob'", "select * from t where name = E'al\\'ice'"},
    {"select * from t where name = 'bob'", "select * from t where name = $q$x$q$"},
    {"select * from t where id in (1,2,3)", "select * from t where id in (1, 2)"},
    {"select * from t where id in (1)", "select * from t where id in ($1, $2, $3, $4)"},
    {"insert into t values (1, 'a')", "insert into t values (1, 'a'), (2, 'b'), (3, 'c')"},
    {"select 1 /* comment */", "select 2 -- other comment"},
    {"SELECT\n\ta\nFROM\tT", "select a from t"},
    {"select x from t where y in ('a'::text, 'b'::text)", "select x from t where y in ('c'::text)"},
    {"select 1.5e3", "select 7"},
    {"select a from t where b = 1 -- pglane lane\n", "select a from t where b = 2"},
};

/* Pairs that must not. */
static const char *const diff_fp[][2] = {
    {"SELECT * FROM t WHERE id = 1", "SELECT * FROM u WHERE id = 1"},
    {"select a from t", "select b from t"},
    {"select * from t where id = 1", "select * from t where id > 1"},
    {"select \"A\" from t", "select a from t"},
    {"select ab from t", "select a b from t"},
    {"select * from t where a = 1 and b = 2", "select * from t where a = 1 or b = 2"},
    {"select a - 1 from t", "select a + 1 from t"},
    {"select a, 1 from t", "select a from t"},
    {"select * from t where id in (1, 2)", "select * from t where id in (a, 2)"},
    {"select * from t where id = true", "select * from t where id = 1"},
    {"select * from t where id = null", "select * from t where id = 1"},
    {"/* pglane lane=analytics */ select 1", "select 1"},
    {"/* pglane lane=analytics */ select 1", "/* pglane lane=oltp */ select 1"},
    {"select * from t for update", "select * from t"},
    {"select a.b from t", "select ab from t"},
    {"delete from t where id = 1", "select from t where id = 1"},
};

static void test_fingerprint_tables(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(same_fp); i++) {
        uint64_t a = route_fingerprint(same_fp[i][0], strlen(same_fp[i][0]));
        uint64_t b = route_fingerprint(same_fp[i][1], strlen(same_fp[i][1]));
        if (a != b)
            fail_msg("same %zu: [%s] %016llx vs [%s] %016llx", i, same_fp[i][0],
                     (unsigned long long)a, same_fp[i][1], (unsigned long long)b);
        assert_int_not_equal(a, 0);
    }
    for (size_t i = 0; i < N_ELEMS(diff_fp); i++) {
        uint64_t a = route_fingerprint(diff_fp[i][0], strlen(diff_fp[i][0]));
        uint64_t b = route_fingerprint(diff_fp[i][1], strlen(diff_fp[i][1]));
        if (a == b)
            fail_msg("diff %zu: [%s] vs [%s] share %016llx", i, diff_fp[i][0], diff_fp[i][1],
                     (unsigned long long)a);
    }
}

static void test_scan_flags(void **state)
{
    (void)state;
    struct route_scan s;
    route_scan("select 'open", 12, &s, NULL, 0);
    assert_true(s.incomplete);
    assert_int_equal(s.n_tokens, 2);
    route_scan("select 1 /* open", 16, &s, NULL, 0);
    assert_true(s.incomplete);
    route_scan("select 1", 8, &s, NULL, 0);
    assert_false(s.incomplete);
    assert_null(s.hint);
    route_scan("", 0, &s, NULL, 0);
    assert_int_equal(s.n_tokens, 0);
    assert_int_not_equal(s.fingerprint, 0);
}

/* Pseudo-random inputs over SQL's special characters: every function must stay within len and
 * agree with itself (ASan and UBSan check the rest). */
static void test_random_inputs(void **state)
{
    (void)state;
    static const char alphabet[] = "'\"$;()-/*eEuU&xb0123 \n\\.,:=tag";
    uint64_t seed = 0x243f6a8885a308d3ULL;
    char out[64];
    for (int round = 0; round < 3000; round++) {
        size_t n = (size_t)(round % 40);
        char *buf = malloc(n ? n : 1);
        assert_non_null(buf);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            buf[i] = alphabet[(seed >> 33) % (sizeof alphabet - 1)];
        }
        size_t pos = 0, count = 0;
        struct route_token tok;
        while (route_lex_next_raw(buf, n, &pos, &tok) != ROUTE_TOK_EOF) {
            assert_true(tok.len > 0 && tok.start + tok.len <= n);
            assert_true(++count <= n);
        }
        struct route_span spans[64];
        size_t ns = route_split_spans(buf, n, spans, 64);
        for (size_t i = 0; i < ns && i < 64; i++)
            assert_true(spans[i].len > 0 && spans[i].start + spans[i].len <= n);
        struct route_scan sc;
        route_scan(buf, n, &sc, out, sizeof out);
        assert_int_equal(sc.fingerprint, route_fingerprint(buf, n));
        const char *name;
        size_t name_len;
        if (route_hint(buf, n, &name, &name_len))
            assert_true(name >= buf && name + name_len <= buf + n);
        struct route_class c;
        route_classify_lexer(buf, n, &c);
        assert_int_equal(c.parsed_by, ROUTE_PARSED_BY_LEXER);
        assert_int_equal(route_classify(buf, n, &c), 0);
        assert_true(c.n_relations <= ROUTE_MAX_RELATIONS);
        free(buf);
    }
    route_classify_thread_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lex_table),
        cmocka_unit_test(test_lex_raw_comments),
        cmocka_unit_test(test_lex_prefixes),
        cmocka_unit_test(test_tok_is),
        cmocka_unit_test(test_split_table),
        cmocka_unit_test(test_split_callback_stops),
        cmocka_unit_test(test_hint_table),
        cmocka_unit_test(test_tenant_hint_table),
        cmocka_unit_test(test_normalized_text),
        cmocka_unit_test(test_normalized_truncation),
        cmocka_unit_test(test_fingerprint_tables),
        cmocka_unit_test(test_scan_flags),
        cmocka_unit_test(test_random_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
