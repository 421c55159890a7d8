/* routing/ — pure routing decisions: SQL lexer, statement splitting, hints, fingerprints,
 * classification (libpg_query, with a lexer fallback), a bounded classification cache, rule
 * matching and learned per-fingerprint statistics. No I/O, no timers, no logging, no globals.
 * Every object here is single-threaded: give each event-loop thread its own cache and stats. */
#ifndef PGLANE_ROUTE_H
#define PGLANE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "routing/kinds.h"

#define ROUTE_MUSTCHECK __attribute__((warn_unused_result))

struct pcre2_real_code_8;   /* pcre2_code (8-bit) */

/* ------------------------------------------------------------------------------------------ */
/* Lexer                                                                                       */

enum route_tok_type {
    ROUTE_TOK_EOF = 0,
    ROUTE_TOK_IDENT,      /* unquoted identifier or keyword (compare case-insensitively) */
    ROUTE_TOK_QIDENT,     /* "quoted identifier", "" doubled inside */
    ROUTE_TOK_STRING,     /* '..', E'..', B'..', X'..', U&'..', N'..' */
    ROUTE_TOK_DOLLAR,     /* $tag$ .. $tag$ */
    ROUTE_TOK_NUMBER,     /* 42, 4.2, .5, 1e-3, 0x1F */
    ROUTE_TOK_PARAM,      /* $1 */
    ROUTE_TOK_OP,         /* operator: one or more of + - * / < > = ~ ! @ # % ^ & | ` ? and :: */
    ROUTE_TOK_PUNCT,      /* one of ; ( ) , . [ ] : */
    ROUTE_TOK_COMMENT,    /* only from route_lex_next_raw(): -- line or nested block comment */
};

struct route_token {
    enum route_tok_type type;
    size_t start;         /* offset of the first byte in the SQL */
    size_t len;           /* bytes, including quotes and delimiters */
    bool incomplete;      /* string, quoted identifier, dollar quote or comment hit the end */
};

/* Reads the next token at *pos, skipping whitespace and comments, and advances *pos past it.
 * Never reads sql[len] or beyond; sql need not be NUL-terminated. Returns the token type
 * (ROUTE_TOK_EOF at the end). An unterminated literal or comment ends at len with
 * tok->incomplete set. */
enum route_tok_type route_lex_next(const char *sql, size_t len, size_t *pos,
                                   struct route_token *tok);

/* The same, but comments are returned as ROUTE_TOK_COMMENT tokens. */
enum route_tok_type route_lex_next_raw(const char *sql, size_t len, size_t *pos,
                                       struct route_token *tok);

/* True when tok is an unquoted identifier equal to kw (kw lowercase, ASCII case-insensitive). */
bool route_tok_is(const char *sql, const struct route_token *tok, const char *kw);

/* ------------------------------------------------------------------------------------------ */
/* Statement splitting                                                                         */

struct route_span {
    size_t start;
    size_t len;
};

/* Called once per non-empty statement, trimmed of surrounding whitespace and of the ';'.
 * Leading and trailing comments are kept (they may carry a hint). Return 0 to continue, anything
 * else to stop the split, which then returns that value. */
typedef int (*route_split_cb)(const char *sql, struct route_span stmt, void *arg);

/* Splits sql on top-level ';' (a ';' inside a string, quoted identifier, comment or dollar quote,
 * or inside parentheses as in CREATE RULE ... (a; b), does not split). A statement whose body is
 * only whitespace and comments is skipped. Returns 0, or the callback's non-zero value. */
int route_split(const char *sql, size_t len, route_split_cb cb, void *arg);

/* Array form: fills up to cap spans and returns how many statements there are in total (which
 * may exceed cap; only the first cap are stored). */
size_t route_split_spans(const char *sql, size_t len, struct route_span *out, size_t cap);

/* ------------------------------------------------------------------------------------------ */
/* Hints, fingerprints and normalized text                                                     */

/* Finds the first hint comment, "/" "* pglane lane=NAME *" "/" or "-- pglane lane=NAME", anywhere
 * in sql. NAME is letters, digits, '_', '$' and '-'. On success points *name into sql and
 * returns true. */
bool route_hint(const char *sql, size_t len, const char **name, size_t *name_len);
/* The same for the tenant of fair queuing: the first "pglane ... tenant=ID ..." comment. One comment
 * may carry both, "/" "* pglane lane=reports tenant=acme *" "/". */
bool route_tenant_hint(const char *sql, size_t len, const char **id, size_t *id_len);

/* One pass over a statement for the hot path. */
struct route_scan {
    uint64_t fingerprint;   /* never 0 */
    const char *hint;       /* lane named by a hint comment, pointer into the SQL, or NULL */
    size_t hint_len;
    size_t norm_len;        /* length of the full normalized text (may exceed the buffer) */
    size_t n_tokens;
    bool incomplete;        /* an unterminated string, comment or dollar quote was seen */
};

/* Fingerprint: a 64-bit hash of the normalized token stream. Normalization:
 *  - whitespace and comments are ignored, unquoted identifiers and keywords are lowercased;
 *  - strings (all prefixes), dollar-quoted strings, numbers and $n parameters become '?';
 *    a '-' directly before a number, where it can only be unary, is part of the literal;
 *    TRUE, FALSE and NULL are kept, so are quoted identifiers (case-sensitive);
 *  - a parenthesized list made only of literals and parameters, "(1, 2, 3)", becomes "(?)",
 *    and a run of such lists separated by commas ("VALUES (1,2), (3,4)") becomes one "(?)":
 *    IN lists and multi-row VALUES of any length share a fingerprint (so do f(1) and f(1, 2));
 *  - a hint comment's lane name is mixed in, so a hinted statement has its own fingerprint and
 *    anything decided per fingerprint (classification, rule result) is also decided per hint.
 * norm (may be NULL when norm_cap is 0) receives the normalized text for display, e.g.
 * "select * from t where id = ?", truncated to norm_cap - 1 bytes and always NUL-terminated. */
void route_scan(const char *sql, size_t len, struct route_scan *out, char *norm, size_t norm_cap);

/* Just the fingerprint (same value as route_scan). */
uint64_t route_fingerprint(const char *sql, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* Quick text checks for the proxy (text.c): cheap reads of one statement's bytes               */

/* The name of "DEALLOCATE [PREPARE] name [;]" into name (cap bytes), lowercased unless quoted;
 * returns 1, or 0 if sql is not that (DEALLOCATE ALL included). Trailing NULs are ignored. */
int route_deallocate_name(const char *sql, size_t len, char *name, size_t cap);

/* Bits of route_text_flags(): what one byte pass suggests about session state. */
enum {
    ROUTE_TXT_CALL = 1,   /* a '(': perhaps a function call, which only the grammar can judge */
    ROUTE_TXT_TEMP = 2,   /* "temp": perhaps CREATE TEMP TABLE ... AS, SELECT INTO TEMP */
    ROUTE_TXT_SET = 4,    /* a statement starting with SET or RESET, or "set_config", "setseed",
                           * "session_setup": names for route_setting_names */
    ROUTE_TXT_NAMES = 8,  /* a statement starting with DISCARD or DEALLOCATE: prepared statements may go */
    ROUTE_TXT_DDL = 16,   /* a statement starting with ALTER, DROP or CREATE OR REPLACE: the result columns
                           * of statements prepared before it may change */
};
int route_text_flags(const char *sql, size_t len);
/* 1 if the text mentions nextval or setval (any case, anywhere: a hint for a text with a '('). */
int route_mentions_sequence_change(const char *sql, size_t len);

/* The command tag PostgreSQL answers a bare BEGIN with (BEGIN [WORK | TRANSACTION] or START
 * TRANSACTION, any case and spacing, an optional trailing semicolon), or NULL for anything else. */
const char *route_bare_begin_tag(const char *sql, size_t len);
/* The same, or the tag of one BEGIN / START TRANSACTION with options the grammar accepts, alone in
 * sql; NULL for anything else. */
const char *route_begin_tag(const char *sql, size_t len);
/* 1 if the statement (the first of sql) sets the transaction's mode, which PostgreSQL refuses (25001)
 * once a query took the transaction's snapshot: BEGIN or START TRANSACTION with ISOLATION LEVEL,
 * READ ONLY/WRITE or [NOT] DEFERRABLE, or SET TRANSACTION. */
int route_sets_tx_mode(const char *sql, size_t len);

/* The highest $n a statement references (0 if none; numbers above 65535 are ignored). */
uint32_t route_max_param(const char *sql, size_t len);

/* 1 if sql is one SET [SESSION | LOCAL] name {= | TO} value or RESET name (an optional ';' after it)
 * of a setting that does not change how PostgreSQL reads a statement's text: one of a fixed list
 * (planner costs and switches, memory and time limits, logging, output formats, transaction
 * defaults) or a custom setting (a dotted name). Anything else, and SET TIME ZONE, RESET ALL or a
 * quoted name: 0. */
int route_set_inert(const char *sql, size_t len);

/* Custom settings a statement sets: calls cb with each name of "SET [SESSION] a.b ..." and
 * "RESET a.b" (unquoted parts; with n = 0 where SET/RESET is followed by something else or by a
 * name longer than ROUTE_SETTING_NAME_MAX) and each first argument of "set_config('a.b', ...)"
 * (the literal's bytes, not checked); "seed" for a setseed() call; ROUTE_NAME_REPLICATION for a
 * pg_replication_origin_session_setup() call; ROUTE_NAME_DBLINK for a dblink_connect() or
 * dblink_connect_u() call. name is not NUL-terminated. */
#define ROUTE_SETTING_NAME_MAX 63
/* Not a setting's name (none starts with a blank): the session took a replication origin. */
#define ROUTE_NAME_REPLICATION " replication"
/* Nor this: the session opened a dblink connection, which dblink keeps in the backend. */
#define ROUTE_NAME_DBLINK " dblink"
typedef void (*route_name_cb)(void *arg, const char *name, size_t n);
void route_setting_names(const char *sql, size_t len, route_name_cb cb, void *arg);
/* The calls that pin for good that only the text shows, found by their words wherever they stand,
 * in strings and comments too, for a text whose strings a lexer cannot delimit (the client's
 * standard_conforming_strings is off, or its encoding can hide a backslash inside a character):
 * "seed" for setseed, or seed after SET, LOCAL or SESSION or quoted as set_config's 'seed';
 * ROUTE_NAME_REPLICATION for pg_replication_origin_session_setup; ROUTE_NAME_DBLINK for
 * dblink_connect and dblink_connect_u. Calls cb as route_setting_names does. */
void route_pin_words(const char *sql, size_t len, route_name_cb cb, void *arg);

/* True when q, after blanks and '(', starts with w (case-insensitive, a prefix match). */
int route_starts_with_word(const char *q, const char *w);

/* ------------------------------------------------------------------------------------------ */
/* Classification                                                                              */

enum route_kind {
#define ROUTE_KIND_ENUM(name, text) ROUTE_KIND_##name,
    ROUTE_KINDS(ROUTE_KIND_ENUM)
#undef ROUTE_KIND_ENUM
};
#define ROUTE_KIND_COUNT (ROUTE_KIND_OTHER + 1)

/* "select", "ddl", ...; NULL for an out-of-range value. */
const char *route_kind_name(enum route_kind kind);
/* Parses a kind name (case-insensitive); returns 0 or -1. "analyse" is accepted. */
int route_kind_parse(const char *name, size_t len, enum route_kind *kind) ROUTE_MUSTCHECK;

enum route_parsed_by {
    ROUTE_PARSED_BY_GRAMMAR = 0,  /* PostgreSQL's grammar (libpg_query) */
    ROUTE_PARSED_BY_LEXER,        /* the grammar rejected it; the lexer's reading */
};

#define ROUTE_MAX_RELATIONS 16
#define ROUTE_REL_NAME_MAX  64    /* including the NUL; longer names are truncated */

struct route_class {
    enum route_kind kind;
    enum route_parsed_by parsed_by;
    bool read_only;              /* could run on a hot standby: no writes, no row locks, no
                                    SELECT INTO, no DML in a CTE, no known writing function */
    bool changes_session;        /* leaves session state a pooler must reset: SET (not LOCAL),
                                    RESET, set_config(.., false), DISCARD, PREPARE, DEALLOCATE,
                                    LISTEN, UNLISTEN, LOAD, CREATE TEMP ..., DECLARE .. WITH HOLD,
                                    session advisory locks */
    bool opaque;                 /* may change session state by a path the grammar cannot see:
                                    DO, CALL, EXECUTE, a call of a function not known to leave
                                    session state alone (a user function may run SET ROLE or
                                    set_config), or text only the lexer read */
    uint16_t pins;               /* ROUTE_PIN_* bits: state a pooler cannot move to another
                                    server connection */
    bool is_begin;               /* BEGIN / START TRANSACTION */
    bool is_commit_or_rollback;  /* COMMIT / END / ROLLBACK / ABORT (not TO SAVEPOINT) */
    bool tx_read_only;           /* the first statement is BEGIN / START TRANSACTION / SET TRANSACTION
                                    with READ ONLY (by the grammar only) */
    uint16_t n_aggregates;
    uint16_t n_windows;
    uint16_t n_joins;            /* explicit JOINs plus extra FROM items */
    bool has_group_by;
    bool relations_truncated;    /* more than ROUTE_MAX_RELATIONS, or a name was cut */
    uint8_t n_relations;
    char relations[ROUTE_MAX_RELATIONS][ROUTE_REL_NAME_MAX];  /* "schema.name" or "name" */
};

/* Bits of route_class.pins. */
enum {
    ROUTE_PIN_TEMP     = 1u << 0,   /* CREATE TEMP ..., SELECT INTO TEMP */
    ROUTE_PIN_ADVISORY = 1u << 1,   /* pg_advisory_lock and friends (session level) */
    ROUTE_PIN_CURSOR   = 1u << 2,   /* DECLARE ... WITH HOLD */
    ROUTE_PIN_LISTEN   = 1u << 3,   /* LISTEN */
    ROUTE_PIN_PREPARE  = 1u << 4,   /* SQL-level PREPARE */
    ROUTE_PIN_SEED     = 1u << 5,   /* setseed(), SET [LOCAL] seed: the backend's random() sequence */
    ROUTE_PIN_LOAD     = 1u << 6,   /* LOAD: a library stays loaded in the backend */
    ROUTE_PIN_REPLICATION = 1u << 7, /* a replication origin session, a temporary replication slot */
    ROUTE_PIN_DBLINK   = 1u << 8,   /* dblink_connect(): a connection dblink keeps in the backend */
};

/* Classifies sql (one statement; for several, kind/flags are those of the first, read_only is
 * the AND, changes_session and opaque the OR, pins and relations the union). Parses with libpg_query; where the
 * grammar rejects the text, falls back to the lexer and sets parsed_by = ROUTE_PARSED_BY_LEXER.
 * Returns 0, or -1 when out of memory (out then holds the lexer's reading). */
int route_classify(const char *sql, size_t len, struct route_class *out);

/* The lexer's reading alone (no grammar): what route_classify falls back to. */
void route_classify_lexer(const char *sql, size_t len, struct route_class *out);

/* libpg_query keeps a per-thread memory context; call this before a thread that classified
 * exits (and at the end of the program, to keep leak checkers quiet). */
void route_classify_thread_cleanup(void);

/* ------------------------------------------------------------------------------------------ */
/* Classification cache: fingerprint -> classification, bounded, LRU. Single-threaded.         */

struct route_cache;

/* capacity >= 1. NULL when out of memory. */
struct route_cache *route_cache_new(size_t capacity);
void route_cache_free(struct route_cache *cache);
/* The cached classification (marked most recently used) or NULL. The pointer stays valid until
 * the next route_cache_put or route_cache_free. */
const struct route_class *route_cache_get(struct route_cache *cache, uint64_t fp);
/* Inserts or replaces; evicts the least recently used entry when full. */
void route_cache_put(struct route_cache *cache, uint64_t fp, const struct route_class *cls);
size_t route_cache_count(const struct route_cache *cache);
uint64_t route_cache_evictions(const struct route_cache *cache);

/* ------------------------------------------------------------------------------------------ */
/* Rules                                                                                        */

struct route_cidr {
    int family;          /* AF_INET or AF_INET6 */
    uint8_t addr[16];    /* network byte order; the first 4 bytes for AF_INET */
    unsigned prefix;     /* 0..32 or 0..128 */
};

/* A rule as described by the configuration. Every criterion is optional (NULL / 0 = any) and the
 * criteria are ANDed; within a list, any element matches. */
struct route_rule_desc {
    const char *name;                   /* for error messages */
    const char *lane;                   /* the lane a hint must name when hint is set */
    const char *const *databases;       /* globs: * and ? */
    size_t n_databases;
    const char *const *users;           /* globs */
    size_t n_users;
    const char *const *applications;    /* application_name globs */
    size_t n_applications;
    const struct route_cidr *cidrs;
    size_t n_cidrs;
    const enum route_kind *kinds;
    size_t n_kinds;
    const char *const *tables;          /* "name" matches any schema; "schema.name" exactly */
    size_t n_tables;
    const char *sql;                    /* PCRE2 pattern matched against the statement text */
    const struct pcre2_real_code_8 *sql_code;  /* sql already compiled with options 0 (conf/
                                                  does, to check it), copied instead of compiled
                                                  again; NULL: compiled here from sql */
    bool hint;                          /* the statement's hint names this rule's lane */
    uint32_t slower_than_ms;            /* the fingerprint's learned p95 exceeds this (0 = off) */
};

/* Bits of route_rule_criteria(). */
enum {
    ROUTE_CRIT_DATABASE    = 1u << 0,
    ROUTE_CRIT_USER        = 1u << 1,
    ROUTE_CRIT_APPLICATION = 1u << 2,
    ROUTE_CRIT_CLIENT_ADDR = 1u << 3,
    ROUTE_CRIT_KIND        = 1u << 4,
    ROUTE_CRIT_TABLES      = 1u << 5,
    ROUTE_CRIT_SQL         = 1u << 6,
    ROUTE_CRIT_HINT        = 1u << 7,
    ROUTE_CRIT_SLOWER_THAN = 1u << 8,
};
#define ROUTE_CRIT_IDENTITY (ROUTE_CRIT_DATABASE | ROUTE_CRIT_USER | ROUTE_CRIT_APPLICATION | \
                             ROUTE_CRIT_CLIENT_ADDR)
#define ROUTE_CRIT_STATEMENT (ROUTE_CRIT_KIND | ROUTE_CRIT_TABLES | ROUTE_CRIT_SQL | \
                              ROUTE_CRIT_HINT | ROUTE_CRIT_SLOWER_THAN)

struct route_rules;

/* Compiles n descriptions (copied; the caller's strings need not outlive the call). Regexes are
 * compiled here, or copied from sql_code, and JIT-compiled when available. On failure returns
 * NULL and writes a message naming the rule into err (err_cap bytes, may be 0). */
struct route_rules *route_rules_new(const struct route_rule_desc *descs, size_t n, char *err,
                                    size_t err_cap);
void route_rules_free(struct route_rules *rules);
size_t route_rules_count(const struct route_rules *rules);
/* ROUTE_CRIT_* bits set on rule i. */
unsigned route_rule_criteria(const struct route_rules *rules, size_t i);
/* Union of every rule's criteria bits. */
unsigned route_rules_criteria(const struct route_rules *rules);
/* True when some rule looks at the statement; when false, no lexing is needed for anyone. */
bool route_rules_need_statement(const struct route_rules *rules);
/* True when a rule's result for a client depends only on (identity, fingerprint), so the caller
 * may cache it per fingerprint: no rule uses slower_than. (The regex then runs once per shape,
 * on the first statement text of that fingerprint seen by the caller.) */
bool route_rules_fingerprint_cacheable(const struct route_rules *rules);

/* Facts about one statement of one client. */
struct route_facts {
    const char *database;                 /* NULL matches no database/user/app criterion */
    const char *user;
    const char *application_name;
    const struct sockaddr *client_addr;   /* NULL (e.g. Unix socket) matches no CIDR criterion */
    const struct route_class *cls;        /* NULL when not classified: kind/tables fail */
    const char *sql;                      /* statement text for the regex, or NULL */
    size_t sql_len;
    const char *hint;                     /* lane named by the hint, or NULL */
    size_t hint_len;
    int64_t p95_us;                       /* learned p95 of the fingerprint, < 0 if unknown */
};

/* Index of the first matching rule, or -1: use the default lane. */
int route_rules_match(const struct route_rules *rules, const struct route_facts *facts);

#define ROUTE_NEED_STATEMENT (-2)
/* Decision from the client's identity alone (facts' statement fields are ignored): the index of
 * the first rule whose identity criteria match, when that rule has no statement criteria; -1 when
 * no rule's identity criteria match (default lane for every statement); ROUTE_NEED_STATEMENT when
 * the statement must be lexed and classified. Identity is fixed per connection, so the caller can
 * compute this once per client and rule set. */
int route_rules_match_identity(const struct route_rules *rules, const struct route_facts *facts);

/* Glob match with '*' and '?' (case-sensitive), exposed for conf/ validation and tests. */
bool route_glob_match(const char *pattern, const char *s);
/* Parses "10.0.0.0/8", "::1", "fe80::/10" (no prefix = host). Returns 0 or -1. */
int route_cidr_parse(const char *text, struct route_cidr *out) ROUTE_MUSTCHECK;

/* ------------------------------------------------------------------------------------------ */
/* Learned statistics per fingerprint: bounded, LRU. Single-threaded.                          */

#define ROUTE_STATS_TEXT_MAX 256   /* normalized text kept per fingerprint, including the NUL */

struct route_stats;

struct route_stat_entry {
    uint64_t fingerprint;
    uint64_t calls;
    uint64_t total_us;
    uint64_t max_us;
    int lane;                       /* lane index of the latest call */
    char text[ROUTE_STATS_TEXT_MAX];
};

/* capacity >= 1. NULL when out of memory. */
struct route_stats *route_stats_new(size_t capacity);
void route_stats_free(struct route_stats *stats);
/* Records one call. text (normalized, may be NULL) is copied when the entry has none yet. The
 * entry becomes most recently used; the least recently used one is evicted when full. */
void route_stats_record(struct route_stats *stats, uint64_t fp, uint64_t duration_us, int lane,
                        const char *text, size_t text_len);
/* Copies the entry for fp into out; returns false when unknown. Does not change LRU order. */
bool route_stats_get(const struct route_stats *stats, uint64_t fp, struct route_stat_entry *out);
/* Estimated percentile (0 < pct <= 100) in microseconds from the log histogram (buckets at
 * powers of 2^(1/4) µs, so within 19% of the truth, clamped to the observed max); -1 when fp is
 * unknown. */
int64_t route_stats_percentile_us(const struct route_stats *stats, uint64_t fp, double pct);
size_t route_stats_count(const struct route_stats *stats);
/* Rewrites each entry's lane through map (old index -> new index, -1 = gone), for a reload that
 * renumbered the lanes; a lane outside [0, nmap) becomes -1. */
void route_stats_remap_lanes(struct route_stats *stats, const int *map, int nmap);
/* Visits entries from most to least recently used; stop early by returning non-zero. */
typedef int (*route_stats_cb)(const struct route_stat_entry *e, void *arg);
int route_stats_foreach(const struct route_stats *stats, route_stats_cb cb, void *arg);

#endif
