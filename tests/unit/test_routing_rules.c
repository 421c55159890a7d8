/* routing/: rule matching from tables: each criterion alone and combined, globs, CIDRs (v4, v6,
 * v4-mapped), kinds, tables, regexes, hints, learned p95, first match wins, default lane, and
 * the identity-only shortcut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "routing/route.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define LIST(...) (const char *const[]){__VA_ARGS__}, N_ELEMS(((const char *const[]){__VA_ARGS__}))
#define KINDS(...) (const enum route_kind[]){__VA_ARGS__}, \
                   N_ELEMS(((const enum route_kind[]){__VA_ARGS__}))

/* Facts, by text. NULL fields take the default below; "-" means absent (NULL). */
struct fact_spec {
    const char *db, *user, *app, *addr;
    enum route_kind kind;      /* default SELECT */
    const char *rels;          /* comma-separated */
    const char *sql;
    const char *hint;
    int64_t p95_us;            /* default 0; -1 = unknown */
    bool no_class;
};

struct facts_buf {
    struct route_facts f;
    struct route_class cls;
    struct sockaddr_storage ss;
};

static const char *pick(const char *v, const char *dflt)
{
    if (!v)
        return dflt;
    return strcmp(v, "-") == 0 ? NULL : v;
}

static void make_facts(const struct fact_spec *s, struct facts_buf *b)
{
    memset(b, 0, sizeof *b);
    b->f.database = pick(s->db, "app");
    b->f.user = pick(s->user, "alice");
    b->f.application_name = pick(s->app, "web");
    const char *addr = pick(s->addr, "10.1.2.3");
    if (addr) {
        struct sockaddr_in *in = (struct sockaddr_in *)&b->ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&b->ss;
        if (inet_pton(AF_INET, addr, &in->sin_addr) == 1)
            in->sin_family = AF_INET;
        else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1)
            in6->sin6_family = AF_INET6;
        else
            fail_msg("bad address %s", addr);
        b->f.client_addr = (const struct sockaddr *)&b->ss;
    }
    b->cls.kind = s->kind;
    const char *rels = pick(s->rels, "events");
    while (rels && *rels) {
        const char *comma = strchr(rels, ',');
        size_t n = comma ? (size_t)(comma - rels) : strlen(rels);
        snprintf(b->cls.relations[b->cls.n_relations++], ROUTE_REL_NAME_MAX, "%.*s", (int)n, rels);
        rels = comma ? comma + 1 : NULL;
    }
    b->f.cls = s->no_class ? NULL : &b->cls;
    b->f.sql = pick(s->sql, "select * from events where id = 1");
    b->f.sql_len = b->f.sql ? strlen(b->f.sql) : 0;
    b->f.hint = pick(s->hint, "-");
    b->f.hint_len = b->f.hint ? strlen(b->f.hint) : 0;
    b->f.p95_us = s->p95_us;
}

struct rule_case {
    const char *what;
    struct route_rule_desc rule;
    struct fact_spec facts;
    bool match;
};

static const struct rule_case rule_cases[] = {
    {"no criteria matches everything", {.lane = "x"}, {0}, true},
    {"no criteria, no facts", {.lane = "x"}, {.db = "-", .user = "-", .app = "-", .addr = "-", .no_class = true}, true},
    /* database / user / application_name, with globs */
    {"database exact", {.databases = LIST("app")}, {0}, true},
    {"database other", {.databases = LIST("other")}, {0}, false},
    {"database list", {.databases = LIST("x", "app")}, {0}, true},
    {"database glob *", {.databases = LIST("ap*")}, {0}, true},
    {"database glob ?", {.databases = LIST("a?p")}, {0}, true},
    {"database glob ? too short", {.databases = LIST("app?")}, {0}, false},
    {"database absent", {.databases = LIST("*")}, {.db = "-"}, false},
    {"database case-sensitive", {.databases = LIST("APP")}, {0}, false},
    {"user exact", {.users = LIST("alice")}, {0}, true},
    {"user other", {.users = LIST("bob")}, {0}, false},
    {"user glob", {.users = LIST("*ice")}, {0}, true},
    {"app glob report-*", {.applications = LIST("report-*")}, {.app = "report-monthly"}, true},
    {"app glob report-* vs reporter", {.applications = LIST("report-*")}, {.app = "reporter"}, false},
    {"app glob middle *", {.applications = LIST("a*b*c")}, {.app = "axxbyyc"}, true},
    {"app glob middle * fails", {.applications = LIST("a*b*c")}, {.app = "axxbyy"}, false},
    {"app empty name vs *", {.applications = LIST("*")}, {.app = ""}, true},
    {"app absent", {.applications = LIST("*")}, {.app = "-"}, false},
    /* client address: see test_rule_cidr */
    /* kinds */
    {"kind select", {.kinds = KINDS(ROUTE_KIND_SELECT)}, {0}, true},
    {"kind list", {.kinds = KINDS(ROUTE_KIND_INSERT, ROUTE_KIND_UPDATE)}, {.kind = ROUTE_KIND_UPDATE}, true},
    {"kind miss", {.kinds = KINDS(ROUTE_KIND_INSERT, ROUTE_KIND_UPDATE)}, {0}, false},
    {"kind without classification", {.kinds = KINDS(ROUTE_KIND_SELECT)}, {.no_class = true}, false},
    /* tables */
    {"table exact", {.tables = LIST("events")}, {0}, true},
    {"table any of several", {.tables = LIST("reports", "events")}, {.rels = "accounts,events"}, true},
    {"table miss", {.tables = LIST("reports")}, {0}, false},
    {"table unqualified vs qualified relation", {.tables = LIST("events")}, {.rels = "public.events"}, true},
    {"table qualified exact", {.tables = LIST("public.events")}, {.rels = "public.events"}, true},
    {"table qualified vs other schema", {.tables = LIST("public.events")}, {.rels = "audit.events"}, false},
    {"table qualified vs unqualified relation", {.tables = LIST("public.events")}, {0}, false},
    {"table criterion lowercased", {.tables = LIST("Events")}, {0}, true},
    {"table no relations", {.tables = LIST("events")}, {.rels = ""}, false},
    {"table without classification", {.tables = LIST("events")}, {.no_class = true}, false},
    /* sql regex */
    {"sql group by", {.sql = "(?i)\\bgroup\\s+by\\b"}, {.sql = "SELECT a, count(*) FROM t GROUP  BY a"}, true},
    {"sql group by miss", {.sql = "(?i)\\bgroup\\s+by\\b"}, {0}, false},
    {"sql window", {.sql = "(?i)\\bover\\s*\\("}, {.sql = "select rank() over (order by x) from t"}, true},
    {"sql case-sensitive", {.sql = "GROUP BY"}, {.sql = "select 1 group by 1"}, false},
    {"sql anchored", {.sql = "^select"}, {0}, true},
    {"sql absent", {.sql = "."}, {.sql = "-"}, false},
    /* hint */
    {"hint names lane", {.lane = "analytics", .hint = true}, {.hint = "analytics"}, true},
    {"hint case-insensitive", {.lane = "analytics", .hint = true}, {.hint = "Analytics"}, true},
    {"hint names another lane", {.lane = "analytics", .hint = true}, {.hint = "oltp"}, false},
    {"hint prefix only", {.lane = "analytics", .hint = true}, {.hint = "analytic"}, false},
    {"hint absent", {.lane = "analytics", .hint = true}, {0}, false},
    /* slower_than */
    {"slower p95 above", {.slower_than_ms = 500}, {.p95_us = 500001}, true},
    {"slower p95 equal", {.slower_than_ms = 500}, {.p95_us = 500000}, false},
    {"slower p95 below", {.slower_than_ms = 500}, {.p95_us = 1000}, false},
    {"slower unknown", {.slower_than_ms = 500}, {.p95_us = -1}, false},
    /* combined: ANDed */
    {"app and kind", {.applications = LIST("report-*"), .kinds = KINDS(ROUTE_KIND_SELECT)},
     {.app = "report-x"}, true},
    {"app and kind, kind fails", {.applications = LIST("report-*"), .kinds = KINDS(ROUTE_KIND_INSERT)},
     {.app = "report-x"}, false},
    {"app and kind, app fails", {.applications = LIST("report-*"), .kinds = KINDS(ROUTE_KIND_SELECT)},
     {0}, false},
    {"user, table and sql", {.users = LIST("alice"), .tables = LIST("events"), .sql = "(?i)count"},
     {.sql = "select count(*) from events"}, true},
    {"user, table and sql, sql fails", {.users = LIST("alice"), .tables = LIST("events"), .sql = "(?i)count"},
     {0}, false},
    {"db, user, hint and slower", {.databases = LIST("app"), .users = LIST("alice"), .lane = "a", .hint = true, .slower_than_ms = 1},
     {.hint = "a", .p95_us = 2000}, true},
    {"db, user, hint and slower, slower fails", {.databases = LIST("app"), .users = LIST("alice"), .lane = "a", .hint = true, .slower_than_ms = 1},
     {.hint = "a", .p95_us = 10}, false},
};

static void check_case(const char *what, const struct route_rule_desc *d, const struct fact_spec *s,
                       bool want)
{
    char err[256] = "";
    struct route_rules *rs = route_rules_new(d, 1, err, sizeof err);
    if (!rs)
        fail_msg("%s: %s", what, err);
    struct facts_buf b;
    make_facts(s, &b);
    int got = route_rules_match(rs, &b.f);
    if (got != (want ? 0 : -1))
        fail_msg("%s: got %d", what, got);
    route_rules_free(rs);
}

static void test_rule_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(rule_cases); i++)
        check_case(rule_cases[i].what, &rule_cases[i].rule, &rule_cases[i].facts, rule_cases[i].match);
}

struct cidr_case {
    const char *cidr;
    const char *addr;   /* "-" = no address (Unix socket) */
    bool match;
};

static const struct cidr_case cidr_cases[] = {
    {"10.0.0.0/8", "10.1.2.3", true},
    {"10.0.0.0/8", "11.1.2.3", false},
    {"10.1.2.0/24", "10.1.2.255", true},
    {"10.1.2.0/24", "10.1.3.0", false},
    {"10.1.2.3", "10.1.2.3", true},
    {"10.1.2.3", "10.1.2.4", false},
    {"10.1.2.3/32", "10.1.2.3", true},
    {"0.0.0.0/0", "192.168.1.1", true},
    {"192.168.0.0/23", "192.168.1.200", true},
    {"192.168.0.0/23", "192.168.2.1", false},
    {"10.1.2.0/25", "10.1.2.127", true},
    {"10.1.2.0/25", "10.1.2.128", false},
    {"10.0.0.0/8", "::ffff:10.9.9.9", true},
    {"10.0.0.0/8", "fe80::1", false},
    {"::1", "::1", true},
    {"::1/128", "::2", false},
    {"fe80::/10", "fe80::abcd", true},
    {"fe80::/10", "febf::1", true},
    {"fe80::/10", "fec0::1", false},
    {"2001:db8::/32", "2001:db8:1::5", true},
    {"2001:db8::/32", "2001:db9::5", false},
    {"::/0", "2001:db8::1", true},
    {"::/0", "10.1.1.1", false},
    {"10.0.0.0/8", "-", false},
};

static void test_rule_cidr(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(cidr_cases); i++) {
        struct route_cidr c;
        assert_int_equal(route_cidr_parse(cidr_cases[i].cidr, &c), 0);
        struct route_rule_desc d = {.name = "r", .cidrs = &c, .n_cidrs = 1};
        struct fact_spec s = {.addr = cidr_cases[i].addr};
        char what[128];
        snprintf(what, sizeof what, "cidr %s vs %s", cidr_cases[i].cidr, cidr_cases[i].addr);
        check_case(what, &d, &s, cidr_cases[i].match);
    }
    /* Several CIDRs: any matches. */
    struct route_cidr two[2];
    assert_int_equal(route_cidr_parse("192.168.0.0/16", &two[0]), 0);
    assert_int_equal(route_cidr_parse("10.0.0.0/8", &two[1]), 0);
    struct route_rule_desc d = {.name = "r", .cidrs = two, .n_cidrs = 2};
    check_case("two cidrs", &d, &(struct fact_spec){0}, true);
}

static void test_cidr_parse_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0/8", "10.0.0.0/8x",
        "hello", "10.0.0.0/-1", "1:2:3:4:5:6:7:8:9/64",
    };
    struct route_cidr c;
    for (size_t i = 0; i < N_ELEMS(bad); i++)
        if (route_cidr_parse(bad[i], &c) == 0)
            fail_msg("accepted %s", bad[i]);
    assert_int_equal(route_cidr_parse("10.0.0.0/8", &c), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.prefix, 8);
    assert_int_equal(route_cidr_parse("::1", &c), 0);
    assert_int_equal(c.family, AF_INET6);
    assert_int_equal(c.prefix, 128);
}

static void test_glob(void **state)
{
    (void)state;
    static const struct {
        const char *p, *s;
        bool m;
    } g[] = {
        {"", "", true}, {"", "a", false}, {"*", "", true}, {"*", "abc", true}, {"?", "", false},
        {"?", "a", true}, {"a*", "a", true}, {"*a", "ba", true}, {"*a", "ab", false},
        {"a*c", "abbbc", true}, {"a*c", "abbbcd", false}, {"**", "x", true}, {"*?*", "", false},
        {"a?c*", "abcdef", true}, {"*ab*ab", "xxabyyab", true}, {"*ab*ab", "xxabyya", false},
        {"report-*", "report-", true}, {"ABC", "abc", false},
    };
    for (size_t i = 0; i < N_ELEMS(g); i++)
        if (route_glob_match(g[i].p, g[i].s) != g[i].m)
            fail_msg("glob %s vs %s", g[i].p, g[i].s);
}

/* A rule set like conf/insightsnow.ini: first match wins, default lane when none. */
static void test_first_match_wins(void **state)
{
    (void)state;
    const struct route_rule_desc descs[] = {
        {.name = "admin", .lane = "oltp", .users = LIST("admin")},
        {.name = "hinted", .lane = "analytics", .hint = true},
        {.name = "reporting_app", .lane = "analytics", .applications = LIST("report-*")},
        {.name = "heavy_sql", .lane = "analytics", .sql = "(?i)\\bgroup\\s+by\\b|\\bover\\s*\\("},
        {.name = "exports", .lane = "bulk", .kinds = KINDS(ROUTE_KIND_COPY)},
        {.name = "slow", .lane = "analytics", .slower_than_ms = 1000},
        {.name = "reports_table", .lane = "analytics", .tables = LIST("reports")},
    };
    char err[256];
    struct route_rules *rs = route_rules_new(descs, N_ELEMS(descs), err, sizeof err);
    assert_non_null(rs);
    assert_int_equal(route_rules_count(rs), N_ELEMS(descs));
    static const struct {
        struct fact_spec f;
        int want;
    } t[] = {
        {{.user = "admin", .app = "report-x", .hint = "analytics"}, 0},
        {{.app = "report-x", .hint = "analytics"}, 1},
        {{.app = "report-x", .hint = "oltp"}, 2},
        {{.sql = "select a, count(*) from t group by a"}, 3},
        {{.app = "report-x", .sql = "select a from t group by a"}, 2},
        {{.kind = ROUTE_KIND_COPY, .sql = "copy events to stdout"}, 4},
        {{.p95_us = 2000000}, 5},
        {{.rels = "reports"}, 6},
        {{0}, -1},
        {{.rels = "accounts", .p95_us = -1}, -1},
    };
    for (size_t i = 0; i < N_ELEMS(t); i++) {
        struct facts_buf b;
        make_facts(&t[i].f, &b);
        int got = route_rules_match(rs, &b.f);
        if (got != t[i].want)
            fail_msg("row %zu: got %d want %d", i, got, t[i].want);
    }
    assert_true(route_rules_need_statement(rs));
    assert_false(route_rules_fingerprint_cacheable(rs));
    assert_int_equal(route_rule_criteria(rs, 0), ROUTE_CRIT_USER);
    assert_int_equal(route_rule_criteria(rs, 1), ROUTE_CRIT_HINT);
    assert_int_equal(route_rule_criteria(rs, 5), ROUTE_CRIT_SLOWER_THAN);
    assert_int_equal(route_rule_criteria(rs, 99), 0);
    route_rules_free(rs);
}

static void test_identity_shortcut(void **state)
{
    (void)state;
    const struct route_rule_desc descs[] = {
        {.name = "reporting_app", .lane = "analytics", .applications = LIST("report-*")},
        {.name = "batch_user", .lane = "bulk", .users = LIST("etl"), .kinds = KINDS(ROUTE_KIND_COPY)},
        {.name = "office", .lane = "oltp", .databases = LIST("office")},
    };
    char err[256];
    struct route_rules *rs = route_rules_new(descs, N_ELEMS(descs), err, sizeof err);
    assert_non_null(rs);
    struct facts_buf b;
    make_facts(&(struct fact_spec){.app = "report-q"}, &b);
    assert_int_equal(route_rules_match_identity(rs, &b.f), 0);
    make_facts(&(struct fact_spec){.user = "etl"}, &b);
    assert_int_equal(route_rules_match_identity(rs, &b.f), ROUTE_NEED_STATEMENT);
    make_facts(&(struct fact_spec){.db = "office"}, &b);
    assert_int_equal(route_rules_match_identity(rs, &b.f), 2);
    make_facts(&(struct fact_spec){0}, &b);
    assert_int_equal(route_rules_match_identity(rs, &b.f), -1);
    assert_true(route_rules_need_statement(rs));
    assert_true(route_rules_fingerprint_cacheable(rs));
    route_rules_free(rs);

    /* Identity-only rules: no statement needed at all. */
    struct route_cidr c;
    assert_int_equal(route_cidr_parse("10.0.0.0/8", &c), 0);
    const struct route_rule_desc ident[] = {
        {.name = "a", .lane = "x", .applications = LIST("report-*")},
        {.name = "b", .lane = "y", .cidrs = &c, .n_cidrs = 1},
    };
    rs = route_rules_new(ident, 2, err, sizeof err);
    assert_non_null(rs);
    assert_false(route_rules_need_statement(rs));
    assert_int_equal(route_rules_criteria(rs), ROUTE_CRIT_APPLICATION | ROUTE_CRIT_CLIENT_ADDR);
    route_rules_free(rs);

    /* No rules at all: default lane for everyone. */
    rs = route_rules_new(NULL, 0, err, sizeof err);
    assert_non_null(rs);
    make_facts(&(struct fact_spec){0}, &b);
    assert_int_equal(route_rules_match(rs, &b.f), -1);
    assert_int_equal(route_rules_match_identity(rs, &b.f), -1);
    assert_false(route_rules_need_statement(rs));
    route_rules_free(rs);
}

static void test_rule_errors(void **state)
{
    (void)state;
    char err[256];
    struct route_rule_desc bad_re = {.name = "heavy", .sql = "(unclosed"};
    assert_null(route_rules_new(&bad_re, 1, err, sizeof err));
    assert_non_null(strstr(err, "route heavy: sql:"));

    struct route_rule_desc hint_no_lane = {.name = "h", .hint = true};
    assert_null(route_rules_new(&hint_no_lane, 1, err, sizeof err));
    assert_non_null(strstr(err, "route h: hint"));

    struct route_cidr c = {.family = AF_INET, .prefix = 40};
    struct route_rule_desc bad_cidr = {.name = "c", .cidrs = &c, .n_cidrs = 1};
    assert_null(route_rules_new(&bad_cidr, 1, err, sizeof err));
    assert_non_null(strstr(err, "route c: client_addr"));

    enum route_kind k = (enum route_kind)77;
    struct route_rule_desc bad_kind = {.name = "k", .kinds = &k, .n_kinds = 1};
    assert_null(route_rules_new(&bad_kind, 1, err, sizeof err));
    assert_non_null(strstr(err, "route k: kind"));

    /* A failure after good rules frees those too (checked by ASan), and err may be absent. */
    const struct route_rule_desc mixed[] = {
        {.name = "ok", .users = LIST("a", "b"), .sql = "x"},
        {.name = "broken", .sql = "[z-a]"},
    };
    assert_null(route_rules_new(mixed, 2, NULL, 0));
}

/* Descriptions are copied: the rule set outlives the caller's strings. */
static void test_rules_copy_strings(void **state)
{
    (void)state;
    char user[] = "alice";
    char pattern[] = "events";
    const char *users[] = {user};
    struct route_rule_desc d = {.name = "r", .users = users, .n_users = 1, .sql = pattern};
    char err[128];
    struct route_rules *rs = route_rules_new(&d, 1, err, sizeof err);
    assert_non_null(rs);
    memset(user, 'x', sizeof user - 1);
    memset(pattern, 'y', sizeof pattern - 1);
    struct facts_buf b;
    make_facts(&(struct fact_spec){0}, &b);
    assert_int_equal(route_rules_match(rs, &b.f), 0);
    route_rules_free(rs);

    /* The regex sees sql_len bytes, not up to a NUL. */
    struct route_rule_desc tail = {.name = "t", .sql = "x$"};
    rs = route_rules_new(&tail, 1, err, sizeof err);
    assert_non_null(rs);
    b.f.sql = "select x";
    b.f.sql_len = 7;
    assert_int_equal(route_rules_match(rs, &b.f), -1);
    b.f.sql_len = 8;
    assert_int_equal(route_rules_match(rs, &b.f), 0);
    route_rules_free(rs);
}

/* A regex compiled by the caller (conf/ does, to check it) is copied, not compiled again from
 * the text: here the text would not even compile. The copy outlives the caller's code. */
static void test_rules_precompiled_regex(void **state)
{
    (void)state;
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) "^select .* from events", PCRE2_ZERO_TERMINATED,
                                   0, &code, &off, NULL);
    assert_non_null(re);
    struct route_rule_desc d = {.name = "r", .sql = "(unbalanced", .sql_code = re};
    char err[128] = "";
    struct route_rules *rs = route_rules_new(&d, 1, err, sizeof err);
    assert_non_null(rs);
    assert_true(route_rule_criteria(rs, 0) & ROUTE_CRIT_SQL);
    pcre2_code_free(re);
    struct facts_buf b;
    make_facts(&(struct fact_spec){0}, &b);
    b.f.sql = "select * from events";
    b.f.sql_len = strlen(b.f.sql);
    assert_int_equal(route_rules_match(rs, &b.f), 0);
    b.f.sql = "select * from users";
    b.f.sql_len = strlen(b.f.sql);
    assert_int_equal(route_rules_match(rs, &b.f), -1);
    route_rules_free(rs);

    /* Without the compiled form, the same text is compiled, and fails. */
    d.sql_code = NULL;
    assert_null(route_rules_new(&d, 1, err, sizeof err));
    assert_non_null(strstr(err, "route r: sql: "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_table),
        cmocka_unit_test(test_rule_cidr),
        cmocka_unit_test(test_cidr_parse_errors),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_identity_shortcut),
        cmocka_unit_test(test_rule_errors),
        cmocka_unit_test(test_rules_copy_strings),
        cmocka_unit_test(test_rules_precompiled_regex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
