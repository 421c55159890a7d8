/* routing/: classification by PostgreSQL's grammar (libpg_query) and by the lexer fallback,
 * from a table of statements. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "routing/route.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

enum { G = ROUTE_PARSED_BY_GRAMMAR, L = ROUTE_PARSED_BY_LEXER };
#define K(x) ROUTE_KIND_##x

struct class_case {
    const char *sql;
    enum route_kind kind;
    int read_only;
    int changes_session;
    const char *relations;   /* comma-separated, in order of appearance */
    int parsed_by;
};

static const struct class_case cases[] = {
    /* Plain reads */
    {"SELECT abalance FROM pgbench_accounts WHERE aid = 42", K(SELECT), 1, 0, "pgbench_accounts", G},
    {"select 1", K(SELECT), 1, 0, "", G},
    {"SELECT * FROM Public.Events e", K(SELECT), 1, 0, "public.events", G},
    {"select * from \"Mixed\".\"Case\"", K(SELECT), 1, 0, "Mixed.Case", G},
    {"select a from t1, t2 where t1.id = t2.id", K(SELECT), 1, 0, "t1,t2", G},
    {"select * from a join b using (id) left join c on c.id = a.id", K(SELECT), 1, 0, "a,b,c", G},
    {"values (1), (2)", K(SELECT), 1, 0, "", G},
    {"table accounts", K(SELECT), 1, 0, "accounts", G},
    {"(select 1 from a) union all (select 2 from b)", K(SELECT), 1, 0, "a,b", G},
    {"select * from t where id in (select id from u)", K(SELECT), 1, 0, "t,u", G},
    {"select exists (select 1 from users where email = $1)", K(SELECT), 1, 0, "users", G},
    {"select count(*) from events where account_id = $1", K(SELECT), 1, 0, "events", G},
    {"select * from generate_series(1, 10) g", K(SELECT), 1, 0, "", G},
    {"select * from only parent", K(SELECT), 1, 0, "parent", G},
    {"select * from a, lateral (select * from b where b.x = a.x) s", K(SELECT), 1, 0, "a,b", G},
    {"select now()", K(SELECT), 1, 0, "", G},
    {"select 'a;b' as \"semi;colon\"", K(SELECT), 1, 0, "", G},
    {"select $$ text with 'quotes' and ; $$", K(SELECT), 1, 0, "", G},
    {"select $fn$ $$ nested-looking $$ $fn$ from t", K(SELECT), 1, 0, "t", G},
    {"select E'it\\'s' from t", K(SELECT), 1, 0, "t", G},
    {"select e'\\\\' || 'x'", K(SELECT), 1, 0, "", G},
    {"select /* a /* nested */ comment */ 1 from t", K(SELECT), 1, 0, "t", G},
    {"select 1 -- comment\nfrom t", K(SELECT), 1, 0, "t", G},
    {"/* pglane lane=analytics */ select * from reports", K(SELECT), 1, 0, "reports", G},
    {"select * from db.sch.tbl", K(SELECT), 1, 0, "db.sch.tbl", G},
    {"select * from t tablesample system (10)", K(SELECT), 1, 0, "t", G},
    /* CTEs */
    {"with x as (select * from events) select * from x", K(SELECT), 1, 0, "events", G},
    {"with recursive r(n) as (select 1 union all select n + 1 from r where n < 5) select * from r",
     K(SELECT), 1, 0, "", G},
    {"with x as (delete from events where ts < now() returning *) select count(*) from x",
     K(SELECT), 0, 0, "events", G},
    {"with x as (update accounts set n = n + 1 returning id) select * from x", K(SELECT), 0, 0,
     "accounts", G},
    {"with x as (insert into log values (1) returning *) select * from x", K(SELECT), 0, 0, "log", G},
    {"with x as (select 1) insert into t select * from x", K(INSERT), 0, 0, "t", G},
    {"with a as (select 1), b as (select 2) select * from a, b", K(SELECT), 1, 0, "", G},
    {"with x as materialized (select * from t) select * from x", K(SELECT), 1, 0, "t", G},
    /* Locks, SELECT INTO, writing functions */
    {"SELECT * FROM accounts WHERE id = 1 FOR UPDATE", K(SELECT), 0, 0, "accounts", G},
    {"select * from accounts for share", K(SELECT), 0, 0, "accounts", G},
    {"select * from accounts for no key update skip locked", K(SELECT), 0, 0, "accounts", G},
    {"select * from a for key share of a nowait", K(SELECT), 0, 0, "a", G},
    {"select * into newtable from events", K(DDL), 0, 0, "newtable,events", G},
    {"select * into temp t2 from events", K(DDL), 0, 1, "t2,events", G},
    {"select nextval('seq')", K(SELECT), 0, 0, "", G},
    {"select setval('seq', 10)", K(SELECT), 0, 0, "", G},
    {"select pg_notify('c', 'x')", K(SELECT), 0, 0, "", G},
    /* Session state */
    {"select set_config('work_mem', '1GB', false)", K(SELECT), 1, 1, "", G},
    {"select set_config('work_mem', '1GB', true)", K(SELECT), 1, 0, "", G},
    {"select set_config('work_mem', $1, $2)", K(SELECT), 1, 1, "", G},
    {"select pg_advisory_lock(42)", K(SELECT), 1, 1, "", G},
    {"select pg_advisory_xact_lock(42)", K(SELECT), 1, 0, "", G},
    {"SET statement_timeout = 0", K(SET), 1, 1, "", G},
    {"set search_path to app, public", K(SET), 1, 1, "", G},
    {"SET LOCAL statement_timeout = '5s'", K(SET), 1, 0, "", G},
    {"set session characteristics as transaction read only", K(SET), 1, 1, "", G},
    {"set transaction isolation level serializable", K(SET), 1, 0, "", G},
    {"set role reporter", K(SET), 1, 1, "", G},
    {"set session authorization bob", K(SET), 1, 1, "", G},
    {"set constraints all deferred", K(SET), 1, 0, "", G},
    {"reset work_mem", K(SET), 1, 1, "", G},
    {"RESET ALL", K(SET), 1, 1, "", G},
    {"discard all", K(UTILITY), 1, 1, "", G},
    {"prepare p (int) as select * from t where id = $1", K(UTILITY), 1, 1, "t", G},
    {"execute p(1)", K(UTILITY), 0, 0, "", G},
    {"deallocate all", K(UTILITY), 1, 1, "", G},
    {"listen channel", K(UTILITY), 0, 1, "", G},
    {"unlisten *", K(UTILITY), 1, 1, "", G},
    {"notify channel, 'x'", K(UTILITY), 0, 0, "", G},
    {"load 'auto_explain'", K(UTILITY), 1, 1, "", G},
    {"create temp table scratch (a int)", K(DDL), 0, 1, "scratch", G},
    {"create temporary view v as select 1", K(DDL), 0, 1, "v", G},
    {"declare c cursor with hold for select * from t", K(UTILITY), 1, 1, "t", G},
    {"declare c cursor for select * from t", K(UTILITY), 1, 0, "t", G},
    {"fetch 10 from c", K(UTILITY), 1, 0, "", G},
    {"close c", K(UTILITY), 1, 0, "", G},
    {"show work_mem", K(SHOW), 1, 0, "", G},
    {"SHOW ALL", K(SHOW), 1, 0, "", G},
    /* DML */
    {"INSERT INTO events (account_id, kind) VALUES ($1, $2)", K(INSERT), 0, 0, "events", G},
    {"insert into events values (1, 'x') on conflict (id) do update set kind = excluded.kind",
     K(INSERT), 0, 0, "events", G},
    {"insert into a select * from b", K(INSERT), 0, 0, "a,b", G},
    {"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 7", K(UPDATE), 0, 0,
     "pgbench_accounts", G},
    {"update a set x = b.x from b where a.id = b.id", K(UPDATE), 0, 0, "a,b", G},
    {"DELETE FROM sessions WHERE expires < now()", K(DELETE), 0, 0, "sessions", G},
    {"delete from a using b where a.id = b.id", K(DELETE), 0, 0, "a,b", G},
    {"merge into t using s on t.id = s.id when matched then update set v = s.v when not matched then insert values (s.id, s.v)",
     K(MERGE), 0, 0, "t,s", G},
    {"copy events from stdin", K(COPY), 0, 0, "events", G},
    {"copy events to stdout", K(COPY), 1, 0, "events", G},
    {"copy (select * from events where ts > now()) to stdout with csv", K(COPY), 1, 0, "events", G},
    /* DDL and maintenance */
    {"create table t (id int primary key)", K(DDL), 0, 0, "t", G},
    {"create index concurrently on events (account_id)", K(DDL), 0, 0, "events", G},
    {"alter table events add column x int", K(DDL), 0, 0, "events", G},
    {"drop table a.b, c", K(DDL), 0, 0, "a.b,c", G},
    {"drop function f(int)", K(DDL), 0, 0, "", G},
    {"truncate events", K(DDL), 0, 0, "events", G},
    {"create materialized view mv as select count(*) from events", K(DDL), 0, 0, "events,mv", G},
    {"create table t2 as select * from t", K(DDL), 0, 0, "t,t2", G},
    {"create or replace function f() returns int language sql as $$ select 1; $$", K(DDL), 0, 0, "", G},
    {"create function f() returns int language plpgsql as $body$ begin return 1; end $body$",
     K(DDL), 0, 0, "", G},
    {"grant select on events to reporter", K(DDL), 0, 0, "events", G},
    {"comment on table events is 'x'", K(DDL), 0, 0, "", G},
    {"alter system set work_mem = '1GB'", K(UTILITY), 0, 0, "", G},
    {"REFRESH MATERIALIZED VIEW CONCURRENTLY monthly_report", K(REFRESH), 0, 0, "monthly_report", G},
    {"vacuum events", K(VACUUM), 0, 0, "events", G},
    {"vacuum (verbose, analyze) events", K(VACUUM), 0, 0, "events", G},
    {"analyze events", K(ANALYZE), 0, 0, "events", G},
    {"analyse", K(ANALYZE), 0, 0, "", G},
    {"reindex table events", K(UTILITY), 0, 0, "events", G},
    {"cluster events using events_pkey", K(UTILITY), 0, 0, "events", G},
    {"lock table events in access exclusive mode", K(UTILITY), 0, 0, "events", G},
    {"checkpoint", K(UTILITY), 0, 0, "", G},
    {"call refresh_all()", K(CALL), 0, 0, "", G},
    {"do $$ begin perform 1; end $$", K(CALL), 0, 0, "", G},
    /* Transactions */
    {"BEGIN", K(TRANSACTION), 1, 0, "", G},
    {"begin isolation level repeatable read", K(TRANSACTION), 1, 0, "", G},
    {"start transaction read only", K(TRANSACTION), 1, 0, "", G},
    {"COMMIT", K(TRANSACTION), 1, 0, "", G},
    {"end", K(TRANSACTION), 1, 0, "", G},
    {"rollback", K(TRANSACTION), 1, 0, "", G},
    {"abort", K(TRANSACTION), 1, 0, "", G},
    {"savepoint s1", K(TRANSACTION), 1, 0, "", G},
    {"release savepoint s1", K(TRANSACTION), 1, 0, "", G},
    {"rollback to savepoint s1", K(TRANSACTION), 1, 0, "", G},
    {"prepare transaction 'x'", K(TRANSACTION), 0, 0, "", G},
    {"commit prepared 'x'", K(TRANSACTION), 0, 0, "", G},
    /* EXPLAIN */
    {"explain select * from t", K(EXPLAIN), 1, 0, "t", G},
    {"explain analyze delete from t", K(EXPLAIN), 0, 0, "t", G},
    {"explain (analyze, buffers) select * from a join b on a.id = b.id", K(EXPLAIN), 1, 0, "a,b", G},
    /* Empty */
    {"", K(OTHER), 1, 0, "", G},
    {"-- just a comment", K(OTHER), 1, 0, "", G},
    /* Grammar rejects these: the lexer's reading */
    {"select * from t where", K(SELECT), 1, 0, "t", L},
    {"select * from accounts where id = 1 for update oops", K(SELECT), 0, 0, "accounts", L},
    {"select 'unterminated", K(SELECT), 1, 0, "", L},
    {"select * from t /* unterminated comment", K(SELECT), 1, 0, "t", L},
    {"select $a$ never closed", K(SELECT), 1, 0, "", L},
    {"insert into events values (1,", K(INSERT), 0, 0, "events", L},
    {"update \"Acc\".x set", K(UPDATE), 0, 0, "Acc.x", L},
    {"delete from sessions where", K(DELETE), 0, 0, "sessions", L},
    {"with x as (delete from t returning *) select * from x where", K(SELECT), 0, 0, "t,x", L},
    {"with x as (select 1) insert into t select * from x where", K(INSERT), 0, 0, "t,x", L},
    {"select * into t2 from t where", K(DDL), 0, 0, "t2,t", L},
    {"set work_mem = ", K(SET), 1, 1, "", L},
    {"set local work_mem = ", K(SET), 1, 0, "", L},
    {"select set_config('a', 'b', false) from", K(SELECT), 1, 1, "", L},
    {"create temp table x (", K(DDL), 0, 1, "", L},
    {"begin foo", K(TRANSACTION), 1, 0, "", L},
    {"copy t from", K(COPY), 0, 0, "t", L},
    {"copy t to", K(COPY), 1, 0, "t", L},
    {"vacuum (", K(VACUUM), 0, 0, "", L},
    {"refresh materialized view", K(REFRESH), 0, 0, "", L},
    {"frobnicate the database", K(OTHER), 0, 0, "", L},
    {"select 1 from a join b on", K(SELECT), 1, 0, "a,b", L},
    {"select 1\0 from t", K(SELECT), 1, 0, "t", L},
};

static void relations_text(const struct route_class *c, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < c->n_relations; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "," : "", c->relations[i]);
}

static void test_classify_table(void **state)
{
    (void)state;
    char rels[1024];
    int failures = 0;
    assert_true(N_ELEMS(cases) >= 100);
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const struct class_case *k = &cases[i];
        /* The one case with an embedded NUL passes its full length. */
        size_t len = strlen(k->sql);
        if (strcmp(k->sql, "select 1") == 0 && i == N_ELEMS(cases) - 1)
            len = 16;
        struct route_class c;
        assert_int_equal(route_classify(k->sql, len, &c), 0);
        relations_text(&c, rels, sizeof rels);
        if (c.kind != k->kind || c.read_only != (bool)k->read_only ||
            c.changes_session != (bool)k->changes_session || strcmp(rels, k->relations) != 0 ||
            (int)c.parsed_by != k->parsed_by) {
            print_error("case %zu [%s]: kind %s ro %d session %d rels [%s] by %d; want %s %d %d [%s] %d\n",
                        i, k->sql, route_kind_name(c.kind), c.read_only, c.changes_session, rels,
                        c.parsed_by, route_kind_name(k->kind), k->read_only, k->changes_session,
                        k->relations, k->parsed_by);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* The lexer's reading agrees with the grammar on kind and read-only for ordinary statements. */
static void test_lexer_agrees(void **state)
{
    (void)state;
    static const char *const sqls[] = {
        "select * from t", "select * from t for update", "insert into t values (1)",
        "update t set a = 1", "delete from t", "with x as (delete from t returning *) select * from x",
        "set work_mem = '1GB'", "show work_mem", "begin", "commit", "vacuum t", "analyze t",
        "truncate t", "create table t (a int)", "copy t from stdin", "explain select 1",
        "select * into t2 from t", "refresh materialized view mv", "call p()",
    };
    for (size_t i = 0; i < N_ELEMS(sqls); i++) {
        struct route_class g, l;
        assert_int_equal(route_classify(sqls[i], strlen(sqls[i]), &g), 0);
        route_classify_lexer(sqls[i], strlen(sqls[i]), &l);
        assert_int_equal(g.parsed_by, ROUTE_PARSED_BY_GRAMMAR);
        assert_int_equal(l.parsed_by, ROUTE_PARSED_BY_LEXER);
        if (g.kind != l.kind || g.read_only != l.read_only)
            fail_msg("[%s]: grammar %s/%d lexer %s/%d", sqls[i], route_kind_name(g.kind),
                     g.read_only, route_kind_name(l.kind), l.read_only);
    }
}

struct shape_case {
    const char *sql;
    int n_aggregates, n_windows, n_joins, has_group_by;
};

static const struct shape_case shapes[] = {
    {"select * from t", 0, 0, 0, 0},
    {"select count(*) from t", 1, 0, 0, 0},
    {"select account_id, count(*), sum(v), avg(v) from events group by account_id", 3, 0, 0, 1},
    {"select count(distinct a) from t", 1, 0, 0, 0},
    {"select string_agg(b, ',' order by b) from t", 1, 0, 0, 0},
    {"select my_agg(x) filter (where x > 0) from t", 1, 0, 0, 0},
    {"select percentile_cont(0.5) within group (order by v) from t", 1, 0, 0, 0},
    {"select sum(v) over (partition by k), row_number() over w from t window w as (order by v)", 0, 2, 0, 0},
    {"select * from a join b on a.id = b.id join c on c.id = b.id", 0, 0, 2, 0},
    {"select * from a, b, c", 0, 0, 2, 0},
    {"select * from a left join b using (id), c", 0, 0, 2, 0},
    {"select a, sum(x) from (select a, count(*) x from t group by a) s group by rollup (a)", 2, 0, 0, 1},
    {"select lower(name) from users", 0, 0, 0, 0},
};

static void test_classify_shapes(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(shapes); i++) {
        const struct shape_case *s = &shapes[i];
        struct route_class c;
        assert_int_equal(route_classify(s->sql, strlen(s->sql), &c), 0);
        if (c.n_aggregates != s->n_aggregates || c.n_windows != s->n_windows ||
            c.n_joins != s->n_joins || c.has_group_by != (bool)s->has_group_by)
            fail_msg("[%s]: aggs %d windows %d joins %d group %d", s->sql, c.n_aggregates,
                     c.n_windows, c.n_joins, c.has_group_by);
    }
}

static void test_transaction_flags(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        bool begin, end;
    } t[] = {
        {"BEGIN", true, false},
        {"begin transaction read write", true, false},
        {"START TRANSACTION", true, false},
        {"commit", false, true},
        {"commit and chain", false, true},
        {"END", false, true},
        {"rollback", false, true},
        {"abort", false, true},
        {"rollback to s", false, false},
        {"savepoint s", false, false},
        {"commit prepared 'x'", false, false},
        {"select 1", false, false},
        {"begin work oops", true, false},
        {"rollback to oops oops", false, false},
        {"commit oops", false, true},
    };
    for (size_t i = 0; i < N_ELEMS(t); i++) {
        struct route_class c;
        assert_int_equal(route_classify(t[i].sql, strlen(t[i].sql), &c), 0);
        if (c.is_begin != t[i].begin || c.is_commit_or_rollback != t[i].end)
            fail_msg("[%s]: begin %d end %d", t[i].sql, c.is_begin, c.is_commit_or_rollback);
    }
}

/* READ ONLY transactions, by the grammar only (replica lanes send them to a replica). */
static void test_tx_read_only(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        bool ro;
    } t[] = {
        {"BEGIN READ ONLY", true},
        {"begin transaction isolation level repeatable read, read only", true},
        {"START TRANSACTION READ ONLY", true},
        {"start transaction read only deferrable", true},
        {"SET TRANSACTION READ ONLY", true},
        {"set transaction isolation level serializable read only", true},
        {"BEGIN", false},
        {"BEGIN READ WRITE", false},
        {"SET TRANSACTION READ WRITE", false},
        {"SET default_transaction_read_only = on", false},
        {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", false},
        {"begin /* read only */", false},
        {"select 'BEGIN READ ONLY'", false},
        {"BEGIN READ ONLY oops", false},
        {"BEGIN READ ONLY; UPDATE t SET a = 1", true},
        {"commit", false},
    };
    for (size_t i = 0; i < N_ELEMS(t); i++) {
        struct route_class c;
        assert_int_equal(route_classify(t[i].sql, strlen(t[i].sql), &c), 0);
        if (c.tx_read_only != t[i].ro)
            fail_msg("[%s]: tx_read_only %d", t[i].sql, c.tx_read_only);
    }
}

/* A multi-statement string: split, then each statement classified on its own. */
static void test_split_then_classify(void **state)
{
    (void)state;
    const char *script =
        "BEGIN;\n"
        "/* pglane lane=analytics */ SELECT ';' AS semi, $x$ ; $x$ FROM reports -- ; \n;\n"
        "UPDATE accounts SET note = E'\\';' WHERE id = 1;\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; SELECT 2 $$;\n"
        "COMMIT;;";
    static const struct {
        enum route_kind kind;
        bool read_only;
        const char *rel;
    } want[] = {
        {K(TRANSACTION), true, NULL},
        {K(SELECT), true, "reports"},
        {K(UPDATE), false, "accounts"},
        {K(DDL), false, NULL},
        {K(TRANSACTION), true, NULL},
    };
    struct route_span spans[8];
    size_t n = route_split_spans(script, strlen(script), spans, 8);
    assert_int_equal(n, N_ELEMS(want));
    for (size_t i = 0; i < n; i++) {
        struct route_class c;
        assert_int_equal(route_classify(script + spans[i].start, spans[i].len, &c), 0);
        assert_int_equal(c.parsed_by, ROUTE_PARSED_BY_GRAMMAR);
        assert_int_equal(c.kind, want[i].kind);
        assert_int_equal(c.read_only, want[i].read_only);
        if (want[i].rel) {
            assert_int_equal(c.n_relations, 1);
            assert_string_equal(c.relations[0], want[i].rel);
        }
    }
}

/* Several statements in one classification: first's kind, AND of read-only, OR of session. */
static void test_classify_multi(void **state)
{
    (void)state;
    const char *sql = "select * from a; set x = 1; delete from b";
    struct route_class c;
    assert_int_equal(route_classify(sql, strlen(sql), &c), 0);
    assert_int_equal(c.kind, ROUTE_KIND_SELECT);
    assert_false(c.read_only);
    assert_true(c.changes_session);
    assert_int_equal(c.n_relations, 2);
}

/* What a pooler must check after a statement (opaque) and what pins a client (pins). */
static void test_opaque_and_pins(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        bool opaque;
        unsigned pins;
    } cases[] = {
        { "select abalance from pgbench_accounts where aid = $1", false, 0 },
        { "select now(), count(*), lower(name), coalesce(a, b) from t group by 3, 4", false, 0 },
        { "insert into t (a, b) values (1, 2) returning nextval('s')", false, 0 },
        { "select current_setting('statement_timeout')", false, 0 },
        { "select my_function(1)", true, 0 },
        { "select public.lower('x')", false, 0 },
        { "do $$begin set statement_timeout = 0; end$$", true, 0 },
        { "call proc()", true, 0 },
        { "execute p(1)", true, 0 },
        { "create temp table t (a int)", false, ROUTE_PIN_TEMP },
        { "create temporary table t as select 1", false, ROUTE_PIN_TEMP },
        { "select 1 into temp t", false, ROUTE_PIN_TEMP },
        /* objects created in pg_temp are temporary without TEMP */
        { "create table pg_temp.t as select 1", false, ROUTE_PIN_TEMP },
        { "select 1 into pg_temp_3.t", false, ROUTE_PIN_TEMP },
        { "create view v as select * from pg_temp.t", false, ROUTE_PIN_TEMP },
        { "create function pg_temp.f() returns int language sql as 'select 1'", false, ROUTE_PIN_TEMP },
        { "create type pg_temp.c as (a int)", false, ROUTE_PIN_TEMP },
        { "create type pg_temp.e as enum ('a')", false, ROUTE_PIN_TEMP },
        { "create domain pg_temp.d as int", false, ROUTE_PIN_TEMP },
        { "create operator pg_temp.=== (function = int4eq, leftarg = int, rightarg = int)", false, ROUTE_PIN_TEMP },
        { "create table pg_temporary.t (a int)", false, 0 },
        { "create table pg_temp_x.t (a int)", false, 0 },
        { "create function f() returns text language sql as 'pg_temp'", false, 0 },
        { "select pg_temp.f()", true, 0 },
        { "select 'pg_temp'", false, 0 },
        { "select pg_advisory_lock(1)", false, ROUTE_PIN_ADVISORY },
        { "select pg_advisory_xact_lock(1)", false, 0 },
        { "declare c cursor with hold for select 1", false, ROUTE_PIN_CURSOR },
        { "declare c cursor for select 1", false, 0 },
        { "listen ch", false, ROUTE_PIN_LISTEN },
        { "prepare p as select 1", false, ROUTE_PIN_PREPARE },
        { "select setseed(0.5)", false, ROUTE_PIN_SEED },
        { "set seed = 0.5", false, ROUTE_PIN_SEED },
        { "set local seed to 0", false, ROUTE_PIN_SEED },
        { "set seed to default", false, ROUTE_PIN_SEED },
        { "reset seed", false, 0 },
        { "select set_config('seed', '0.5', true)", false, ROUTE_PIN_SEED },
        { "select set_config('work_mem', '1MB', false)", false, 0 },
        { "select 1; listen ch", false, ROUTE_PIN_LISTEN },
        { "load 'auto_explain'", false, ROUTE_PIN_LOAD },
        { "select pg_replication_origin_session_setup('o')", false, ROUTE_PIN_REPLICATION },
        { "select pg_create_physical_replication_slot('s', true, true)", false, ROUTE_PIN_REPLICATION },
        { "select pg_create_physical_replication_slot('s', temporary => true)", false, ROUTE_PIN_REPLICATION },
        { "select pg_create_logical_replication_slot('s', 'test_decoding', $1)", false, ROUTE_PIN_REPLICATION },
        { "select pg_create_physical_replication_slot('s', true, false)", true, 0 },
        { "select dblink_connect('c', 'dbname=x')", false, ROUTE_PIN_DBLINK },
        { "select public.dblink_connect_u($1)", false, ROUTE_PIN_DBLINK },
        { "select dblink_disconnect('c')", true, 0 },
        { "select pg_create_physical_replication_slot('s')", true, 0 },
        { "select pg_create_logical_replication_slot('s', 'p', two_phase => true)", true, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct route_class c;
        assert_int_equal(route_classify(cases[i].sql, strlen(cases[i].sql), &c), 0);
        if (c.opaque != cases[i].opaque || c.pins != cases[i].pins)
            print_error("%s: opaque %d pins %u, want %d %u\n", cases[i].sql, c.opaque, c.pins, cases[i].opaque,
                        cases[i].pins);
        assert_int_equal(c.opaque, cases[i].opaque);
        assert_int_equal(c.pins, cases[i].pins);
    }
    /* set_config is a session change, but not opaque; a local one is neither */
    struct route_class c;
    const char *sc = "select set_config('a.b', 'c', false)";
    assert_int_equal(route_classify(sc, strlen(sc), &c), 0);
    assert_true(c.changes_session);
    assert_false(c.opaque);
    /* the grammar decodes a Unicode-escaped name: no text search would */
    sc = "select U&\"set\\005fconfig\"('statement_timeout', '0', false)";
    assert_int_equal(route_classify(sc, strlen(sc), &c), 0);
    assert_true(c.changes_session);
    sc = "select set_config('a.b', 'c', true)";
    assert_int_equal(route_classify(sc, strlen(sc), &c), 0);
    assert_false(c.changes_session);
    assert_false(c.opaque);
}

/* What the walk over libpg_query's typed tree reads, field by field: one row per node type or
 * field it looks at, with every flag and count. */
struct walk_case {
    const char *sql;
    enum route_kind kind;
    int read_only, changes_session, opaque;
    unsigned pins;
    int aggregates, windows, joins, group_by;
    const char *relations;
};

static const struct walk_case walk_cases[] = {
    /* RangeVar: catalog.schema.name, anywhere in the tree, in field order (the select list comes
     * before FROM), without duplicates */
    {"select * from c.s.t, s.t, t, t", K(SELECT), 1, 0, 0, 0, 0, 0, 3, 0, "c.s.t,s.t,t"},
    {"select (select 1 from inner_t) from outer_t", K(SELECT), 1, 0, 0, 0, 0, 0, 0, 0,
     "inner_t,outer_t"},
    /* relpersistence 't' is a temporary relation; unlogged is not */
    {"create temp sequence s", K(DDL), 0, 1, 0, ROUTE_PIN_TEMP, 0, 0, 0, 0, "s"},
    {"create unlogged table u (a int)", K(DDL), 0, 0, 0, 0, 0, 0, 0, 0, "u"},
    /* SelectStmt: lockingClause in a subquery, groupClause, fromClause items */
    {"select * from (select * from a for update) s", K(SELECT), 0, 0, 0, 0, 0, 0, 0, 0, "a"},
    {"select k from t group by grouping sets ((k), ())", K(SELECT), 1, 0, 0, 0, 0, 0, 0, 1, "t"},
    /* UpdateStmt's fromClause counts its extra items as joins */
    {"update a set x = 1 from b, c where a.id = b.id", K(UPDATE), 0, 0, 0, 0, 0, 0, 1, 0, "a,b,c"},
    /* JoinExpr, nested */
    {"select * from (a join b using (x)) join c on true", K(SELECT), 1, 0, 0, 0, 0, 0, 2, 0,
     "a,b,c"},
    /* FuncCall: over (window, not aggregate), filter, agg_star, nested calls */
    {"select count(*) over (), lower(upper(name)) from t", K(SELECT), 1, 0, 0, 0, 0, 1, 0, 0, "t"},
    {"select sum(abs(v)) filter (where v > 0) from t", K(SELECT), 1, 0, 0, 0, 1, 0, 0, 0, "t"},
    {"select pg_advisory_unlock_all()", K(SELECT), 1, 1, 0, 0, 0, 0, 0, 0, ""},
    {"select pg_catalog.set_config('a.b', 'c', true)", K(SELECT), 1, 0, 0, 0, 0, 0, 0, 0, ""},
    {"select set_config('a.b', 'c', true::boolean)", K(SELECT), 1, 1, 0, 0, 0, 0, 0, 0, ""},
    {"select lo_import('/tmp/x')", K(SELECT), 0, 0, 0, 0, 0, 0, 0, 0, ""},
    /* CALL's function is held directly by the statement, not as a call in an expression */
    {"call pg_advisory_lock(1)", K(CALL), 0, 0, 1, 0, 0, 0, 0, 0, ""},
    /* CTE names are not relations; a qualified name of the same text is */
    {"with x as (select 1) select * from x, s.x", K(SELECT), 1, 0, 0, 0, 0, 0, 1, 0, "s.x"},
    /* DROP of relation kinds lists the names; of other objects, none */
    {"drop view v", K(DDL), 0, 0, 0, 0, 0, 0, 0, 0, "v"},
    {"drop materialized view s.m", K(DDL), 0, 0, 0, 0, 0, 0, 0, 0, "s.m"},
    {"drop index i, c.s.j", K(DDL), 0, 0, 0, 0, 0, 0, 0, 0, "i,c.s.j"},
    {"drop sequence q", K(DDL), 0, 0, 0, 0, 0, 0, 0, 0, "q"},
    {"drop foreign table f", K(DDL), 0, 0, 0, 0, 0, 0, 0, 0, "f"},
    {"drop type ty", K(DDL), 0, 0, 0, 0, 0, 0, 0, 0, ""},
    /* Statement types by name: DDL prefixes and the utility rest */
    {"create trigger tr after insert on t for each row execute function f()", K(DDL), 0, 0, 0, 0,
     0, 0, 0, 0, "t"},
    {"security label on table t is 'x'", K(DDL), 0, 0, 0, 0, 0, 0, 0, 0, ""},   /* a name list */
    {"import foreign schema s from server x into y", K(DDL), 0, 0, 0, 0, 0, 0, 0, 0, ""},
    {"move next in c", K(UTILITY), 1, 0, 0, 0, 0, 0, 0, 0, ""},
    {"rollback prepared 'x'", K(TRANSACTION), 0, 0, 0, 0, 0, 0, 0, 0, ""},
    /* Several statements: pins and relations are the union */
    {"declare c cursor with hold for select 1; prepare p as select * from t",
     K(UTILITY), 1, 1, 0, ROUTE_PIN_CURSOR | ROUTE_PIN_PREPARE, 0, 0, 0, 0, "t"},
};

static void test_typed_walk(void **state)
{
    (void)state;
    char rels[1024];
    int failures = 0;
    for (size_t i = 0; i < N_ELEMS(walk_cases); i++) {
        const struct walk_case *k = &walk_cases[i];
        struct route_class c;
        assert_int_equal(route_classify(k->sql, strlen(k->sql), &c), 0);
        relations_text(&c, rels, sizeof rels);
        if (c.parsed_by != ROUTE_PARSED_BY_GRAMMAR || c.kind != k->kind ||
            c.read_only != (bool)k->read_only || c.changes_session != (bool)k->changes_session ||
            c.opaque != (bool)k->opaque || c.pins != k->pins || c.n_aggregates != k->aggregates ||
            c.n_windows != k->windows || c.n_joins != k->joins ||
            c.has_group_by != (bool)k->group_by || strcmp(rels, k->relations) != 0) {
            print_error("[%s]: by %d kind %s ro %d session %d opaque %d pins %u aggs %d windows %d "
                        "joins %d group %d rels [%s]\n", k->sql, c.parsed_by,
                        route_kind_name(c.kind), c.read_only, c.changes_session, c.opaque, c.pins,
                        c.n_aggregates, c.n_windows, c.n_joins, c.has_group_by, rels);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* A tree nested beyond the walk's depth limit is left to the lexer: "select 1+1+...+1" with 994
 * additions is read by the grammar, with 995 by the lexer (the limit of the JSON reader the typed
 * walk replaced, kept). */
static void test_depth_limit(void **state)
{
    (void)state;
    static char sql[4096];
    for (int n = 994; n <= 995; n++) {
        strcpy(sql, "select ");
        for (int i = 0; i < n; i++)
            strcat(sql, "1+");
        strcat(sql, "1 from t");
        struct route_class c;
        assert_int_equal(route_classify(sql, strlen(sql), &c), 0);
        assert_int_equal(c.parsed_by, n == 994 ? ROUTE_PARSED_BY_GRAMMAR : ROUTE_PARSED_BY_LEXER);
        assert_int_equal(c.kind, ROUTE_KIND_SELECT);
        assert_int_equal(c.n_relations, 1);
    }
}

static void test_relations_bounded(void **state)
{
    (void)state;
    char sql[2048] = "select * from ";
    for (int i = 0; i < 20; i++)
        snprintf(sql + strlen(sql), sizeof sql - strlen(sql), "%st%d", i ? ", " : "", i);
    strcat(sql, ", a_very_long_relation_name_that_is_longer_than_sixty_three_bytes_for_sure");
    struct route_class c;
    assert_int_equal(route_classify(sql, strlen(sql), &c), 0);
    assert_int_equal(c.n_relations, ROUTE_MAX_RELATIONS);
    assert_true(c.relations_truncated);

    const char *lng = "select * from s.a_very_long_relation_name_that_is_longer_than_sixty_three_bytes_x";
    assert_int_equal(route_classify(lng, strlen(lng), &c), 0);
    assert_int_equal(c.n_relations, 1);
    assert_true(c.relations_truncated);
    assert_int_equal(strlen(c.relations[0]), ROUTE_REL_NAME_MAX - 1);

    /* The lexer classifier joins qualified parts into a bounded buffer: a first part that fills
     * it must not let the dot that follows write past its end (found by fuzz_lexer). */
    char dotted[512] = "select * from ";
    memset(dotted + strlen(dotted), 'x', 200);
    strcat(dotted, ".y.z");
    route_classify_lexer(dotted, strlen(dotted), &c);
    assert_int_equal(c.n_relations, 1);
    assert_true(c.relations_truncated);
    assert_int_equal(strlen(c.relations[0]), ROUTE_REL_NAME_MAX - 1);
}

static void test_kind_names(void **state)
{
    (void)state;
    for (int k = 0; k < ROUTE_KIND_COUNT; k++) {
        const char *name = route_kind_name((enum route_kind)k);
        enum route_kind back;
        assert_non_null(name);
        assert_int_equal(route_kind_parse(name, strlen(name), &back), 0);
        assert_int_equal(back, k);
    }
    enum route_kind k;
    assert_int_equal(route_kind_parse("SELECT", 6, &k), 0);
    assert_int_equal(k, ROUTE_KIND_SELECT);
    assert_int_equal(route_kind_parse("analyse", 7, &k), 0);
    assert_int_equal(k, ROUTE_KIND_ANALYZE);
    assert_int_equal(route_kind_parse("selec", 5, &k), -1);
    assert_null(route_kind_name((enum route_kind)99));
}

/* Prints what a classification costs; informational, never asserted. */
static void test_print_timing(void **state)
{
    (void)state;
    static const char *const sqls[] = {
        "SELECT abalance FROM pgbench_accounts WHERE aid = 48213",
        "SELECT a.name, date_trunc('month', e.ts) AS month, count(*) AS events, "
        "count(DISTINCT e.user_id) AS users, sum(e.value) AS total, "
        "rank() OVER (PARTITION BY date_trunc('month', e.ts) ORDER BY sum(e.value) DESC) "
        "FROM events e JOIN accounts a ON a.id = e.account_id JOIN users u ON u.id = e.user_id "
        "WHERE e.ts >= now() - interval '1 month' GROUP BY a.name, 2 ORDER BY 2, 5 DESC LIMIT 100",
    };
    for (size_t i = 0; i < N_ELEMS(sqls); i++) {
        enum { N = 2000 };
        struct timespec t0, t1;
        struct route_class c;
        size_t len = strlen(sqls[i]);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int k = 0; k < N; k++)
            (void)route_classify(sqls[i], len, &c);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / N;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int k = 0; k < N * 10; k++)
            (void)route_fingerprint(sqls[i], len);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double fus = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / (N * 10);
        printf("# timing (not a test): %zu bytes: classify %.2f us, fingerprint %.3f us\n", len,
               us, fus);
    }
}

static int teardown(void **state)
{
    (void)state;
    route_classify_thread_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_lexer_agrees),
        cmocka_unit_test(test_classify_shapes),
        cmocka_unit_test(test_transaction_flags),
        cmocka_unit_test(test_tx_read_only),
        cmocka_unit_test(test_split_then_classify),
        cmocka_unit_test(test_classify_multi),
        cmocka_unit_test(test_opaque_and_pins),
        cmocka_unit_test(test_typed_walk),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_relations_bounded),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_print_timing),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
