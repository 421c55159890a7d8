/* routing/text.c: the quick SQL text checks the proxy makes (DEALLOCATE names, the session-state
 * byte scan, BEGIN tags, $n parameters, custom setting names, leading keywords), from tables of
 * inputs with comments, quoting and case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "routing/route.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static void test_deallocate_name(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        const char *name;   /* NULL: not a DEALLOCATE of one name */
    } t[] = {
        {"DEALLOCATE foo", "foo"},
        {"deallocate prepare FOO;", "foo"},
        {"  DeAlLoCaTe\n\tS_1$x ;  \n", "s_1$x"},
        {"deallocate \"Mixed\"\"Q\"", "Mixed\"Q"},
        {"deallocate prepare \"a b\";", "a b"},
        {"deallocate all", NULL},
        {"DEALLOCATE PREPARE ALL;", NULL},
        {"deallocate \"all\"", NULL},
        {"deallocate", NULL},
        {"deallocate ;", NULL},
        {"deallocatefoo", NULL},
        {"deallocate foo bar", NULL},
        {"deallocate foo; select 1", NULL},
        {"deallocate \"unterminated", NULL},
        {"deallocate /* comment */ foo", NULL},   /* comments: left to the server */
        {"-- comment\ndeallocate foo", NULL},
        {"prepare foo as select 1", NULL},
        {"select 'deallocate foo'", NULL},
    };
    for (size_t i = 0; i < N_ELEMS(t); i++) {
        char name[64] = "";
        int got = route_deallocate_name(t[i].sql, strlen(t[i].sql), name, sizeof name);
        if (got != (t[i].name != NULL) || (t[i].name && strcmp(name, t[i].name) != 0))
            fail_msg("[%s]: %d [%s]", t[i].sql, got, name);
    }
    /* Trailing NULs (a Query's terminator) are ignored; the length bounds the read. */
    char name[64];
    assert_int_equal(route_deallocate_name("deallocate x\0\0", 14, name, sizeof name), 1);
    assert_string_equal(name, "x");
    assert_int_equal(route_deallocate_name("deallocate xyz", 12, name, sizeof name), 1);
    assert_string_equal(name, "x");
    /* A name longer than the buffer is cut, and then is not the whole rest: no match. */
    assert_int_equal(route_deallocate_name("deallocate abcdef", 17, name, 4), 0);
}

static void test_text_flags(void **state)
{
    (void)state;
    enum { C = ROUTE_TXT_CALL, T = ROUTE_TXT_TEMP, S = ROUTE_TXT_SET, D = ROUTE_TXT_NAMES, L = ROUTE_TXT_DDL };
    static const struct {
        const char *sql;
        int flags;
    } t[] = {
        {"select 1", 0},
        {"select now()", C},
        {"SET work_mem = '1MB'", S},
        {"  reset ALL", S},
        {"select 1; Set x.y = 2", S},
        {"settings", 0},
        {"select set_config('a.b', 'c', false)", C | S},
        {"SELECT SET_CONFIG", S},
        {"select setseed(0.5)", C | S},
        {"SELECT SETSEED", S},
        {"select setsee", 0},
        {"select pg_replication_origin_session_setup('o')", C | S},
        {"select session_setu", 0},
        {"select dblink_connect('c', 'dbname=x')", C | S},
        {"select public.DBLINK_CONNECT_U ('dbname=x')", C | S},
        {"select mydblink_connect('x'), dblink_connect_uu('x'), dblink_connect", C},
        {"create TEMP table t (a int)", C | T},
        {"create temporary table t as select 1", T},
        {"select * from attempts", T},            /* a hint only: the grammar decides */
        {"select 1 /* set x = 1 */", 0},
        {"update t set a = 1", 0},
        {"(select 1)", C},
        {"DISCARD ALL", D},
        {"deallocate prepare s1", D},
        {"select 1; Deallocate all", D},
        {"select discard from t", 0},
        {"discarded", 0},
        {"ALTER TABLE t ADD COLUMN b int", L},
        {"select 1; drop view v", L},
        {"create or replace view v as select 1", L},
        {"CREATE\n  OR\tREPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'", C | L},
        {"create view v as select 1", 0},
        {"create orreplace", 0},
        {"create or replacement", 0},
        {"select alter, dropped from t", 0},
        {"altered", 0},
        {"alter", L},
    };
    for (size_t i = 0; i < N_ELEMS(t); i++) {
        int got = route_text_flags(t[i].sql, strlen(t[i].sql));
        if (got != t[i].flags)
            fail_msg("[%s]: %d, want %d", t[i].sql, got, t[i].flags);
    }
}

/* The rule route_text_flags implements, byte by byte with no shortcut: the oracle for the test below. */
static int ci_word(const char *p, size_t n, size_t i, const char *w, int whole)
{
    size_t wl = strlen(w);

    for (size_t k = 0; k < wl; k++)
        if (i + k >= n || (p[i + k] >= 'A' && p[i + k] <= 'Z' ? p[i + k] + 32 : p[i + k]) != w[k])
            return 0;
    if (!whole || i + wl == n)
        return 1;
    char c = p[i + wl];
    return !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
}

/* Whether the '(' at p[i] closes "dblink_connect" or "dblink_connect_u" standing as a word, blanks between. */
static int ref_dblink_call(const char *p, size_t i)
{
    static const char *const w[] = { "dblink_connect", "dblink_connect_u" };

    for (size_t k = 0; k < i; k++)
        for (int v = 0; v < 2; v++) {
            size_t e = k + strlen(w[v]), b = e;
            char before = k ? p[k - 1] : ' ';

            if (!ci_word(p, i, k, w[v], 1) || before == '_' || before == '"' || (before >= '0' && before <= '9') ||
                ((before | 0x20) >= 'a' && (before | 0x20) <= 'z'))
                continue;
            while (b < i && (p[b] == ' ' || p[b] == '\t' || p[b] == '\n' || p[b] == '\r'))
                b++;
            if (b == i)
                return 1;
        }
    return 0;
}

/* "create", blanks, "or", blanks, "replace" at p[i], each a whole word. */
static int ref_create_or_replace(const char *p, size_t n, size_t i)
{
    static const char *const w[] = { "create", "or", "replace" };

    for (int k = 0; k < 3; k++) {
        size_t start = i;

        while (k > 0 && i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\t' || p[i] == '\r'))
            i++;
        if ((k > 0 && i == start) || !ci_word(p, n, i, w[k], 1))
            return 0;
        i += strlen(w[k]);
    }
    return 1;
}

static int ref_text_flags(const char *p, size_t n)
{
    int f = 0, start = 1;

    for (size_t i = 0; i < n; i++) {
        char c = p[i];

        if (c == ' ' || c == '\n' || c == '\t' || c == '\r')
            continue;
        if (c == ';') {
            start = 1;
            continue;
        }
        if (start && (ci_word(p, n, i, "set", 1) || ci_word(p, n, i, "reset", 1)))
            f |= ROUTE_TXT_SET;
        if (start && (ci_word(p, n, i, "discard", 1) || ci_word(p, n, i, "deallocate", 1)))
            f |= ROUTE_TXT_NAMES;
        if (start && (ci_word(p, n, i, "alter", 1) || ci_word(p, n, i, "drop", 1) || ref_create_or_replace(p, n, i)))
            f |= ROUTE_TXT_DDL;
        if (c == '(')
            f |= ROUTE_TXT_CALL | (ref_dblink_call(p, i) ? ROUTE_TXT_SET : 0);
        if ((c == 's' || c == 'S') && i + 10 <= n && ci_word(p, n, i + 1, "et_config", 0))
            f |= ROUTE_TXT_SET;
        if ((c == 's' || c == 'S') && i + 7 <= n && ci_word(p, n, i + 1, "etseed", 0))
            f |= ROUTE_TXT_SET;
        if ((c == 's' || c == 'S') && i + 13 <= n && ci_word(p, n, i + 1, "ession_setup", 0))
            f |= ROUTE_TXT_SET;
        if ((c == 't' || c == 'T') && i + 4 <= n && ci_word(p, n, i + 1, "emp", 0))
            f |= ROUTE_TXT_TEMP;
        start = 0;
    }
    return f;
}

/* Random texts over the bytes that matter (and their near misses: 0x08 and 0x1b fold onto '(' and ';'
 * in the 16-byte scan) at every length across the 16-byte blocks: the same flags as the oracle. */
static void test_text_flags_random(void **state)
{
    static const char *const parts[] = {
        "set ", "SET", "reset", "set_config(", "SeT_CoNfIg", "setseed(", "SetSeeD", "setsee", "session_setup",
        "SESSION_SETU", "temp", "TEMP", "tem", "discard ", "deallocate",
        "Deallocate", "(", ";", " ", "\t", "\n", "x", "s", "t", "d", "r", "_", "\x08", "\x1b", "\xd3", "\xf3",
        "select ", "abcdefghijklmnop", "1", "dblink_connect", "DBLINK_CONNECT_U", "dblink_connec", "_u", "\"",
        "alter", "ALTER ", "drop", "Drop ", "create ", "CREATE", "or ", "OR", "replace", "Replace ", "a", "c",
    };
    unsigned seed = 12345;
    char buf[256];

    (void)state;
    for (int iter = 0; iter < 200000; iter++) {
        size_t n = 0;
        int parts_n;

        seed = seed * 1103515245u + 12345u;
        parts_n = (int)((seed >> 16) % 24);
        for (int k = 0; k < parts_n; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *w = parts[(seed >> 16) % (sizeof(parts) / sizeof(parts[0]))];
            size_t wl = strlen(w);

            if (n + wl >= sizeof buf)
                break;
            memcpy(buf + n, w, wl);
            n += wl;
        }
        for (size_t cut = n > 20 ? n - 20 : 0; cut <= n; cut++) {
            int got = route_text_flags(buf, cut), want = ref_text_flags(buf, cut);

            if (got != want)
                fail_msg("[%.*s] (%zu bytes): %d, want %d", (int)cut, buf, cut, got, want);
        }
    }
}

/* Statements that set the transaction's mode (refused by PostgreSQL after a query took the snapshot). */
static void test_sets_tx_mode(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        int want;
    } t[] = {
        {"begin isolation level serializable", 1},
        {"  /* c */ BEGIN TRANSACTION ISOLATION LEVEL read committed", 1},
        {"start transaction read only", 1},
        {"begin not deferrable", 1},
        {"set transaction isolation level repeatable read", 1},
        {"SET TRANSACTION SNAPSHOT '00000003-1'", 1},
        {"begin", 0},
        {"begin work;", 0},
        {"start transaction", 0},
        {"set session characteristics as transaction isolation level serializable", 0},
        {"set transaction_isolation = 'serializable'", 0},
        {"select 'begin isolation'", 0},
        {"reset all", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (route_sets_tx_mode(t[i].sql, strlen(t[i].sql)) != t[i].want)
            fail_msg("%s: expected %d", t[i].sql, t[i].want);
}

/* SETs that leave how statements are read unchanged (statements prepared behind them may be shared). */
static void test_set_inert(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        int want;
    } t[] = {
        {"set local work_mem = '2MB'", 1},
        {"SET statement_timeout TO 5000;", 1},
        {"  /* c */ set session lock_timeout = '1s' ; ", 1},
        {"set app.tenant = 'a b'", 1},
        {"set enable_seqscan = off", 1},
        {"set search_path = public, pg_catalog", 0},
        {"RESET work_mem", 1},
        {"reset work_mem;", 1},
        {"set extra_float_digits = -3", 1},
        {"set plan_cache_mode to force_generic_plan", 1},
        {"set datestyle = 'German'", 0},
        {"set timezone = 'Asia/Tokyo'", 0},
        {"set time zone 'UTC'", 0},
        {"set intervalstyle = iso_8601", 0},
        {"set role app", 0},
        {"set session authorization app", 0},
        {"set \"work_mem\" = '1MB'", 0},
        {"reset all", 0},
        {"set work_mem = '2MB'; set datestyle = 'German'", 0},
        {"set work_mem = '2MB'; select 1", 0},
        {"set work_mem from current", 0},
        {"set work_mem = (select 1)", 0},
        {"set work_mem = 'unterminated", 0},
        {"set transaction isolation level serializable", 0},
        {"set enable_ = on", 0},
        {"select set_config('work_mem', '1MB', false)", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (route_set_inert(t[i].sql, strlen(t[i].sql)) != t[i].want)
            fail_msg("%s: expected %d", t[i].sql, t[i].want);
    assert_int_equal(route_set_inert("set work_mem = 1\0\0", 18), 1);   /* a Parse's trailing NULs */
}

static void test_begin_tags(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        const char *bare, *tag;
    } t[] = {
        {"begin", "BEGIN", "BEGIN"},
        {"BEGIN WORK;", "BEGIN", "BEGIN"},
        {"  Begin \n Transaction ; \n", "BEGIN", "BEGIN"},
        {"start   transaction", "START TRANSACTION", "START TRANSACTION"},
        {"begin isolation level serializable", NULL, "BEGIN"},
        {"START TRANSACTION READ ONLY, DEFERRABLE", NULL, "START TRANSACTION"},
        {"begin -- a comment", NULL, "BEGIN"},
        {"begin isolation level bogus", NULL, NULL},   /* the grammar rejects it */
        {"/* c */ begin", NULL, NULL},
        {"begin; select 1", NULL, NULL},
        {"begin work transaction", NULL, NULL},
        {"beginx", NULL, NULL},
        {"start", NULL, NULL},
        {"commit", NULL, NULL},
        {"", NULL, NULL},
    };
    for (size_t i = 0; i < N_ELEMS(t); i++) {
        size_t len = strlen(t[i].sql);
        const char *bare = route_bare_begin_tag(t[i].sql, len);
        const char *tag = route_begin_tag(t[i].sql, len);
        if ((bare == NULL) != (t[i].bare == NULL) || (bare && strcmp(bare, t[i].bare) != 0) ||
            (tag == NULL) != (t[i].tag == NULL) || (tag && strcmp(tag, t[i].tag) != 0))
            fail_msg("[%s]: bare %s tag %s", t[i].sql, bare ? bare : "-", tag ? tag : "-");
    }
    /* The length bounds the read, and a NUL ends the text. */
    assert_string_equal(route_bare_begin_tag("begin; x", 6), "BEGIN");
    assert_string_equal(route_bare_begin_tag("begin\0x", 7), "BEGIN");
}

static void test_max_param(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        uint32_t max;
    } t[] = {
        {"select 1", 0},
        {"select $1, $12, $3", 12},
        {"select '$99', $$ $7 $$, \"$5\", $2", 2},
        {"-- $9\nselect /* $8 */ $4", 4},
        {"select $65535, $65536", 65535},
        {"select $70000", 0},
    };
    for (size_t i = 0; i < N_ELEMS(t); i++)
        if (route_max_param(t[i].sql, strlen(t[i].sql)) != t[i].max)
            fail_msg("[%s]: %u, want %u", t[i].sql, route_max_param(t[i].sql, strlen(t[i].sql)),
                     t[i].max);
}

static void collect(void *arg, const char *name, size_t n)
{
    char *out = arg;
    size_t o = strlen(out);
    snprintf(out + o, 256 - o, "%s%.*s", o ? "," : "", n ? (int)n : 1, n ? name : "-");
}

/* What a name scanner (route_setting_names, route_pin_words) reports for sql, against want. */
static void expect_names(void (*scan)(const char *, size_t, route_name_cb, void *), const char *sql,
                         const char *want)
{
    char got[256] = "";
    scan(sql, strlen(sql), collect, got);
    if (strcmp(got, want) != 0)
        fail_msg("[%s]: [%s], want [%s]", sql, got, want);
}

static void test_setting_names(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        const char *names;   /* what the callback saw, "-" for n = 0 */
    } t[] = {
        {"SET app.user = 'x'", "app.user"},
        {"set session A.b to 2; reset c.d", "A.b,c.d"},
        {"SET a.b.c = 1", "a.b.c"},
        {"set local x.y = 1", ""},
        {"SET SEED TO 0.5", "SEED"},
        {"set local seed = 0.5; reset seed; set session seed = 0", "seed,seed"},
        {"select setseed(0.5), 1; select SetSeed (0)", "seed,seed"},
        {"select setseed", ""},
        {"select 'setseed(1)'", ""},
        {"select pg_catalog.pg_replication_origin_session_setup('o')", " replication"},
        {"select pg_replication_origin_session_setup", ""},
        {"select dblink_connect('c', 'host=h'); select public.dblink_connect_u('h')", " dblink, dblink"},
        {"select dblink_connect", ""},
        {"set work_mem = 1", "work_mem"},
        {"set \"q.x\" = 1", "-"},
        {"reset all", "all"},
        {"select set_config('a.b', 'c', false)", "a.b"},
        {"select 1, SET_CONFIG('x.y', '1', true); set z.w = 1", "x.y,z.w"},
        {"select set_config(E'a.b', 'c', false)", ""},
        {"select set_config($1, 'c', false)", ""},
        {"select set_config('unterminated", ""},
        {"/* set x.y = 1 */ select 1", ""},
        {"-- set x.y = 1\nselect 'set a.b = 2'", ""},
        {"update t set a.b = 1", ""},
        {"set a.b2345678901234567890123456789012345678901234567890123456789012 = 1", "-"},
    };
    for (size_t i = 0; i < N_ELEMS(t); i++)
        expect_names(route_setting_names, t[i].sql, t[i].names);
}

/* Words that pin for good, found wherever they stand (strings and comments too), as whole words. */
static void test_pin_words(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        const char *names;
    } t[] = {
        {"select 'a\\'', setseed(0.5) --'", "seed"},
        {"select 'x'; SET seed = 0.5", "seed"},
        {"set local\tseed to 0; set session seed = 1", "seed,seed"},
        {"select set_config('seed', '0.5', false)", "seed"},
        {"select seed from t; select seeds, myseed, setseeds()", ""},
        {"/* pg_replication_origin_session_setup('o') */", " replication"},
        {"select x.pg_replication_origin_session_setup$1", ""},
        {"select E'\\x83\\', dblink_connect_u('h') --'", " dblink"},
        {"select dblink_connect2('h'), my_dblink_connect('h')", ""},
        {"", ""},
    };
    for (size_t i = 0; i < N_ELEMS(t); i++)
        expect_names(route_pin_words, t[i].sql, t[i].names);
}

static void test_mentions_sequence_change(void **state)
{
    (void)state;
    assert_true(route_mentions_sequence_change("select nextval('s')", 19));
    assert_true(route_mentions_sequence_change("SELECT NEXTVAL('s')", 19));
    assert_true(route_mentions_sequence_change("select pg_catalog.setval('s', 3)", 32));
    assert_true(route_mentions_sequence_change("setval", 6));
    assert_false(route_mentions_sequence_change("setva", 5));
    assert_false(route_mentions_sequence_change("nextva", 6));
    assert_false(route_mentions_sequence_change("select currval('s'), lastval()", 30));
    assert_false(route_mentions_sequence_change("select count(*) from t where a in (1, 2)", 40));
}

static void test_starts_with_word(void **state)
{
    (void)state;
    assert_true(route_starts_with_word("ALTER TABLE t", "ALTER"));
    assert_true(route_starts_with_word("  ((alter table t", "ALTER"));
    assert_true(route_starts_with_word("create index i on t (a)", "CREATE INDEX"));
    assert_false(route_starts_with_word("create unique index i on t (a)", "CREATE INDEX"));
    assert_false(route_starts_with_word("xALTER", "ALTER"));
    assert_false(route_starts_with_word("\tALTER", "ALTER"));   /* only spaces and '(' skipped */
    assert_true(route_starts_with_word("ALTERNATIVE", "ALTER"));   /* a prefix match */
    assert_false(route_starts_with_word("", "ALTER"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deallocate_name),
        cmocka_unit_test(test_text_flags),
        cmocka_unit_test(test_text_flags_random),
        cmocka_unit_test(test_begin_tags),
        cmocka_unit_test(test_sets_tx_mode),
        cmocka_unit_test(test_max_param),
        cmocka_unit_test(test_setting_names),
        cmocka_unit_test(test_set_inert),
        cmocka_unit_test(test_pin_words),
        cmocka_unit_test(test_mentions_sequence_change),
        cmocka_unit_test(test_starts_with_word),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    route_classify_thread_cleanup();
    return rc;
}
