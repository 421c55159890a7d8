/* The lexer's reading of a statement the grammar rejected (or an incomplete one): the first
 * keyword decides the kind, and a token scan finds row locks, SELECT INTO, DML in CTEs,
 * session-changing calls, aggregates and likely relation names. Best effort by design. */
#include "routing/route.h"
#include "routing/internal.h"

#include <string.h>

static const char *const kind_names[ROUTE_KIND_COUNT] = {
#define KIND_NAME(name, text) text,
    ROUTE_KINDS(KIND_NAME)
#undef KIND_NAME
};

const char *route_kind_name(enum route_kind kind)
{
    return (unsigned)kind < ROUTE_KIND_COUNT ? kind_names[kind] : NULL;
}

int route_kind_parse(const char *name, size_t len, enum route_kind *kind)
{
    for (int i = 0; i < ROUTE_KIND_COUNT; i++)
        if (strlen(kind_names[i]) == len && strncasecmp(kind_names[i], name, len) == 0) {
            *kind = (enum route_kind)i;
            return 0;
        }
    if (len == 7 && strncasecmp(name, "analyse", 7) == 0) {
        *kind = ROUTE_KIND_ANALYZE;
        return 0;
    }
    return -1;
}

struct first_word {
    const char *word;
    enum route_kind kind;
    bool read_only;
    bool session;
};

static const struct first_word first_words[] = {
    {"select", ROUTE_KIND_SELECT, true, false},
    {"values", ROUTE_KIND_SELECT, true, false},
    {"table", ROUTE_KIND_SELECT, true, false},
    {"with", ROUTE_KIND_SELECT, true, false},
    {"insert", ROUTE_KIND_INSERT, false, false},
    {"update", ROUTE_KIND_UPDATE, false, false},
    {"delete", ROUTE_KIND_DELETE, false, false},
    {"merge", ROUTE_KIND_MERGE, false, false},
    {"copy", ROUTE_KIND_COPY, true, false},
    {"create", ROUTE_KIND_DDL, false, false},
    {"alter", ROUTE_KIND_DDL, false, false},
    {"drop", ROUTE_KIND_DDL, false, false},
    {"truncate", ROUTE_KIND_DDL, false, false},
    {"comment", ROUTE_KIND_DDL, false, false},
    {"grant", ROUTE_KIND_DDL, false, false},
    {"revoke", ROUTE_KIND_DDL, false, false},
    {"security", ROUTE_KIND_DDL, false, false},
    {"import", ROUTE_KIND_DDL, false, false},
    {"reassign", ROUTE_KIND_DDL, false, false},
    {"refresh", ROUTE_KIND_REFRESH, false, false},
    {"vacuum", ROUTE_KIND_VACUUM, false, false},
    {"analyze", ROUTE_KIND_ANALYZE, false, false},
    {"analyse", ROUTE_KIND_ANALYZE, false, false},
    {"call", ROUTE_KIND_CALL, false, false},
    {"do", ROUTE_KIND_CALL, false, false},
    {"set", ROUTE_KIND_SET, true, true},
    {"reset", ROUTE_KIND_SET, true, true},
    {"show", ROUTE_KIND_SHOW, true, false},
    {"begin", ROUTE_KIND_TRANSACTION, true, false},
    {"start", ROUTE_KIND_TRANSACTION, true, false},
    {"commit", ROUTE_KIND_TRANSACTION, true, false},
    {"end", ROUTE_KIND_TRANSACTION, true, false},
    {"rollback", ROUTE_KIND_TRANSACTION, true, false},
    {"abort", ROUTE_KIND_TRANSACTION, true, false},
    {"savepoint", ROUTE_KIND_TRANSACTION, true, false},
    {"release", ROUTE_KIND_TRANSACTION, true, false},
    {"explain", ROUTE_KIND_EXPLAIN, true, false},
    {"prepare", ROUTE_KIND_UTILITY, true, true},
    {"deallocate", ROUTE_KIND_UTILITY, true, true},
    {"discard", ROUTE_KIND_UTILITY, true, true},
    {"listen", ROUTE_KIND_UTILITY, false, true},
    {"unlisten", ROUTE_KIND_UTILITY, true, true},
    {"load", ROUTE_KIND_UTILITY, true, true},
    {"fetch", ROUTE_KIND_UTILITY, true, false},
    {"move", ROUTE_KIND_UTILITY, true, false},
    {"close", ROUTE_KIND_UTILITY, true, false},
    {"declare", ROUTE_KIND_UTILITY, true, false},
    {"execute", ROUTE_KIND_UTILITY, false, false},
    {"notify", ROUTE_KIND_UTILITY, false, false},
    {"lock", ROUTE_KIND_UTILITY, false, false},
    {"checkpoint", ROUTE_KIND_UTILITY, false, false},
    {"reindex", ROUTE_KIND_UTILITY, false, false},
    {"cluster", ROUTE_KIND_UTILITY, false, false},
    {NULL, ROUTE_KIND_OTHER, false, false},
};

static const char *const lex_aggregates[] = {
    "count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and", "bool_or",
    "stddev", "variance", "percentile_cont", "percentile_disc", "json_agg", "jsonb_agg", NULL,
};

/* A token window: the statement's significant tokens, read one at a time. */
struct lx {
    const char *sql;
    size_t len;
    size_t pos;
    struct route_token prev;  /* previous */
    struct route_token tok;   /* current */
    struct route_token next;  /* one-token lookahead */
    size_t next_pos;
    int depth;                /* parenthesis depth of the current token */
};

static void lx_advance(struct lx *x)
{
    if (x->tok.type == ROUTE_TOK_PUNCT && x->sql[x->tok.start] == '(')
        x->depth++;
    x->prev = x->tok;
    x->tok = x->next;
    x->pos = x->next_pos;
    (void)route_lex_next(x->sql, x->len, &x->next_pos, &x->next);
    if (x->tok.type == ROUTE_TOK_PUNCT && x->sql[x->tok.start] == ')' && x->depth > 0)
        x->depth--;
}

static bool is(const struct lx *x, const struct route_token *t, const char *kw)
{
    return route_tok_is(x->sql, t, kw);
}

static bool is_punct(const struct lx *x, const struct route_token *t, char c)
{
    return t->type == ROUTE_TOK_PUNCT && x->sql[t->start] == c;
}

static bool in_words(const struct lx *x, const struct route_token *t, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (is(x, t, list[i]))
            return true;
    return false;
}

/* Appends an identifier token to name: lowercased if unquoted, unquoted if quoted. */
static void append_ident(const struct lx *x, const struct route_token *t, char *name, size_t cap)
{
    size_t o = strlen(name);
    const char *s = x->sql + t->start;
    size_t n = t->len;
    bool quoted = t->type == ROUTE_TOK_QIDENT;
    if (quoted) {
        s++;
        n = n >= 2 && !t->incomplete ? n - 2 : n - 1;
    }
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        char c = s[i];
        if (quoted && c == '"' && i + 1 < n)
            i++;
        else if (!quoted && c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        name[o++] = c;
    }
    name[o] = '\0';
}

static const char *const not_relations[] = {
    "select", "lateral", "only", "values", "with", "unnest", "generate_series", "of", "nowait",
    "skip", "set", "table", "materialized", NULL,
};

/* After FROM/JOIN/INTO/UPDATE/TABLE/...: a possibly qualified name, unless it is a subquery or a
 * function call. */
static void read_relation(struct lx *x, struct route_class *c)
{
    char name[ROUTE_REL_NAME_MAX * 2] = "";
    struct route_token t = x->next;
    if (is(x, &t, "only")) {
        lx_advance(x);
        t = x->next;
    }
    if ((t.type != ROUTE_TOK_IDENT && t.type != ROUTE_TOK_QIDENT) || in_words(x, &t, not_relations))
        return;
    for (;;) {
        lx_advance(x);
        append_ident(x, &x->tok, name, sizeof name);
        if (!is_punct(x, &x->next, '.'))
            break;
        lx_advance(x);
        if (x->next.type != ROUTE_TOK_IDENT && x->next.type != ROUTE_TOK_QIDENT)
            break;
        size_t o = strlen(name);
        if (o + 1 < sizeof name) {
            name[o] = '.';
            name[o + 1] = '\0';
        }
    }
    if (is_punct(x, &x->next, '('))
        return;   /* a function in FROM */
    route_class_add_relation(c, name, strlen(name) >= ROUTE_REL_NAME_MAX);
}

static const char *const relation_words[] = {
    "from", "join", "into", "update", "table", "truncate", "copy", NULL,
};

static const struct first_word *first_word_of(const struct lx *x)
{
    int i = 0;
    while (first_words[i].word && !is(x, &x->tok, first_words[i].word))
        i++;
    return &first_words[i];
}

/* Scans the rest of the statement after the first word. */
static void scan_body(struct lx *x, struct route_class *c, bool *writes, bool *session,
                      bool *into)
{
    bool starts_select = is(x, &x->tok, "select");
    bool starts_with = is(x, &x->tok, "with");
    bool seen_from = false;
    while (x->tok.type != ROUTE_TOK_EOF) {
        struct route_token *t = &x->tok;
        if (is(x, t, "for") && (is(x, &x->next, "update") || is(x, &x->next, "share") ||
                                is(x, &x->next, "no") || is(x, &x->next, "key")))
            *writes = true;
        else if (is(x, t, "insert") || is(x, t, "update") || is(x, t, "delete") || is(x, t, "merge"))
            *writes = true;
        else if (starts_select && x->depth == 0 && !seen_from && is(x, t, "into"))
            *into = *writes = true;
        else if ((is(x, t, "temp") || is(x, t, "temporary") || is(x, t, "pg_temp")) && c->kind == ROUTE_KIND_DDL)
            *session = true;
        else if (is(x, t, "group") && is(x, &x->next, "by"))
            c->has_group_by = true;
        else if (is(x, t, "join"))
            c->n_joins++;
        else if (is(x, t, "over") && (is_punct(x, &x->next, '(') || x->next.type == ROUTE_TOK_IDENT))
            c->n_windows++;
        if (is_punct(x, &x->next, '(')) {
            if (in_words(x, t, lex_aggregates))
                c->n_aggregates++;
            if (is(x, t, "set_config") || is(x, t, "pg_advisory_lock"))
                *session = true;
            if (is(x, t, "nextval") || is(x, t, "setval"))
                *writes = true;
        }
        if (is(x, t, "from") && x->depth == 0)
            seen_from = true;
        if (starts_with && x->depth == 0 && c->kind == ROUTE_KIND_SELECT &&
            is_punct(x, &x->prev, ')') &&
            (is(x, t, "insert") || is(x, t, "update") || is(x, t, "delete") || is(x, t, "merge"))) {
            enum route_kind k = is(x, t, "insert") ? ROUTE_KIND_INSERT
                              : is(x, t, "update") ? ROUTE_KIND_UPDATE
                              : is(x, t, "delete") ? ROUTE_KIND_DELETE : ROUTE_KIND_MERGE;
            c->kind = k;
        }
        /* FOR UPDATE and DO UPDATE name no relation. */
        if (in_words(x, t, relation_words) &&
            !(is(x, t, "update") && (is(x, &x->prev, "for") || is(x, &x->prev, "key") ||
                                     is(x, &x->prev, "do"))))
            read_relation(x, c);
        lx_advance(x);
    }
}

/* Refinements of transaction and SET statements from their second word. */
static void second_word(const struct lx *x, const char *first, struct route_class *c,
                        bool *writes, bool *session)
{
    const struct route_token *n = &x->next;
    if (strcmp(first, "begin") == 0 || strcmp(first, "start") == 0)
        c->is_begin = true;
    else if (strcmp(first, "commit") == 0 || strcmp(first, "end") == 0 ||
             strcmp(first, "abort") == 0)
        c->is_commit_or_rollback = !is(x, n, "prepared");
    else if (strcmp(first, "rollback") == 0)
        c->is_commit_or_rollback = !is(x, n, "prepared") && !is(x, n, "to");
    else if (strcmp(first, "prepare") == 0 && is(x, n, "transaction")) {
        c->kind = ROUTE_KIND_TRANSACTION;
        *session = false;
        *writes = true;
    } else if (strcmp(first, "set") == 0 && (is(x, n, "local") || is(x, n, "transaction") ||
                                            is(x, n, "constraints")))
        *session = false;
    if (strcmp(first, "commit") == 0 && is(x, n, "prepared"))
        *writes = true;
    if (strcmp(first, "rollback") == 0 && is(x, n, "prepared"))
        *writes = true;
    if (strcmp(first, "declare") == 0)
        *session = false;
}

void route_classify_lexer(const char *sql, size_t len, struct route_class *out)
{
    struct lx x = {.sql = sql, .len = len};
    bool writes = false, session = false, into = false;

    memset(out, 0, sizeof *out);
    out->parsed_by = ROUTE_PARSED_BY_LEXER;
    out->kind = ROUTE_KIND_OTHER;
    (void)route_lex_next(sql, len, &x.next_pos, &x.next);
    lx_advance(&x);
    /* A parenthesized query, "(select 1) union ...", reads like its first keyword. */
    while (is_punct(&x, &x.tok, '('))
        lx_advance(&x);
    const struct first_word *fw = first_word_of(&x);
    out->kind = fw->kind;
    session = fw->session;
    if (fw->word) {
        second_word(&x, fw->word, out, &writes, &session);
        if (strcmp(fw->word, "copy") == 0)
            writes = true;   /* refined below for COPY ... TO */
        struct lx copy = x;
        if (strcmp(fw->word, "copy") == 0) {
            while (copy.tok.type != ROUTE_TOK_EOF) {
                if (copy.depth == 0 && (is(&copy, &copy.tok, "to") || is(&copy, &copy.tok, "from"))) {
                    writes = is(&copy, &copy.tok, "from");
                    break;
                }
                lx_advance(&copy);
            }
        }
    }
    scan_body(&x, out, &writes, &session, &into);
    if (into)
        out->kind = ROUTE_KIND_DDL;
    out->read_only = fw->read_only && !writes;
    out->changes_session = session;
    out->opaque = true;   /* the lexer does not see which functions a statement calls */
}
