/* SQL text checks the proxy makes on the hot path before (or instead of) classifying: DEALLOCATE
 * names, a quick scan for calls, TEMP and SET, bare BEGINs, the highest $n, the custom settings a
 * statement sets, and a leading keyword. Moved here from proxy/ so that all SQL reading is in
 * routing/; each is a pure function of the text. */
#include "routing/route.h"
#include "routing/internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---- DEALLOCATE ---- */

/* Whether the bytes at p start with w (lowercase, wl bytes), ASCII case-insensitively. */
static int ci_prefix(const uint8_t *p, const char *w, size_t wl)
{
    for (size_t k = 0; k < wl; k++) {
        uint8_t c = p[k];

        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != (uint8_t)w[k])
            return 0;
    }
    return 1;
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static const char *skip_word(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(end - p) < n || !ci_prefix((const uint8_t *)p, word, n) ||
        (p + n < end && (isalnum((unsigned char)p[n]) || p[n] == '_')))
        return NULL;
    return p + n;
}

int route_deallocate_name(const char *sql, size_t len, char *name, size_t cap)
{
    const char *p = sql, *end = sql + len;
    size_t n = 0;

    while (end > p && end[-1] == 0)
        end--;
    p = skip_space(p, end);
    if (p == end || (*p | 0x20) != 'd' || !(p = skip_word(p, end, "deallocate")))
        return 0;
    p = skip_space(p, end);
    if (skip_word(p, end, "prepare"))
        p = skip_space(skip_word(p, end, "prepare"), end);
    if (p < end && *p == '"') {
        for (p++; p < end && n + 1 < cap; p++) {
            if (*p == '"' && (p + 1 >= end || p[1] != '"'))
                break;
            if (*p == '"')
                p++;
            name[n++] = *p;
        }
        if (p >= end || *p != '"')
            return 0;
        p++;
    } else {
        while (p < end && n + 1 < cap && (isalnum((unsigned char)*p) || *p == '_' || *p == '$'))
            name[n++] = (char)tolower((unsigned char)*p++);
    }
    name[n] = 0;
    p = skip_space(p, end);
    if (p < end && *p == ';')
        p = skip_space(p + 1, end);
    return n > 0 && p == end && strcasecmp(name, "all") != 0;
}

/* ---- one pass for session state ---- */

/* A letter, digit or '_': a byte that continues a word for the one-pass scan. */
static int word_byte(uint8_t c)
{
    return c == '_' || (unsigned)((c | 0x20) - 'a') < 26u || (unsigned)(c - '0') < 10u;
}

static int word_at(const uint8_t *p, size_t n, size_t i, const char *w, size_t wl)
{
    return i + wl <= n && ci_prefix(p + i, w, wl) && (i + wl == n || !word_byte(p[i + wl]));
}

/* Whether the '(' at p[i] follows dblink_connect or dblink_connect_u (blanks between): a connection
 * that dblink keeps in the backend, which only the text shows. */
static int dblink_connect_at(const uint8_t *p, size_t i)
{
    size_t j = i;

    while (j > 0 && (p[j - 1] == ' ' || p[j - 1] == '\t' || p[j - 1] == '\n' || p[j - 1] == '\r'))
        j--;
    if (j >= 2 && (p[j - 1] | 0x20) == 'u' && p[j - 2] == '_')
        j -= 2;
    return j >= 14 && ci_prefix(p + j - 14, "dblink_connect", 14) &&
           (j == 14 || !(word_byte(p[j - 15]) || p[j - 15] == '"'));
}

/* Bytes route_text_flags looks at at a statement's start. */
enum { TF_OTHER, TF_BLANK, TF_SEMI, TF_S, TF_R, TF_D, TF_A, TF_C };
static const uint8_t tf_class[256] = {
    [' '] = TF_BLANK, ['\n'] = TF_BLANK, ['\t'] = TF_BLANK, ['\r'] = TF_BLANK, [';'] = TF_SEMI,
    ['s'] = TF_S, ['S'] = TF_S, ['r'] = TF_R, ['R'] = TF_R, ['d'] = TF_D, ['D'] = TF_D,
    ['a'] = TF_A, ['A'] = TF_A, ['c'] = TF_C, ['C'] = TF_C,
};

/* Whether "create" at p[i] is followed by the words OR REPLACE (blanks between). */
static int create_or_replace_at(const uint8_t *p, size_t n, size_t i)
{
    const char *end = (const char *)p + n, *w = (const char *)p + i + 6, *b = skip_space(w, end);

    return b > w && (w = skip_word(b, end, "or")) && (b = skip_space(w, end)) > w && skip_word(b, end, "replace");
}
/* Bytes that matter inside a statement: '(' and ';', and the first letters of "set_config", "setseed",
 * "session_setup" and "temp". */
static const uint8_t tf_inner[256] = {
    ['('] = 1, [';'] = 1, ['s'] = 1, ['S'] = 1, ['t'] = 1, ['T'] = 1,
};

/* The first place from i on whose byte is in tf_inner, or n. With SSE2 (every x86-64) 16 bytes are
 * tested at once: OR 0x20 folds S and T to lower case and leaves '(' and ';' as they are; the few other
 * bytes it folds onto the four (0x08, 0x1b) are told apart by the caller. */
static size_t skip_inner(const uint8_t *p, size_t n, size_t i)
{
#ifdef __SSE2__
    const __m128i fold = _mm_set1_epi8(0x20), paren = _mm_set1_epi8('('), semi = _mm_set1_epi8(';');
    const __m128i s = _mm_set1_epi8('s'), t = _mm_set1_epi8('t');

    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + i)), fold);
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, paren), _mm_cmpeq_epi8(v, semi)),
                                 _mm_or_si128(_mm_cmpeq_epi8(v, s), _mm_cmpeq_epi8(v, t)));
        unsigned bits = (unsigned)_mm_movemask_epi8(m);

        if (bits)
            return i + (size_t)__builtin_ctz(bits);
    }
#endif
    while (i < n && !tf_inner[p[i]])
        i++;
    return i;
}

int route_text_flags(const char *sql, size_t n)
{
    const uint8_t *p = (const uint8_t *)sql;
    int f = 0;
    size_t i = 0;

    /* Statement by statement: the first word (SET, RESET, DISCARD, DEALLOCATE, ALTER, DROP, CREATE OR
     * REPLACE) after any blanks and empty statements, then the rest up to ';' for '(', "set_config"
     * and "temp". */
    while (i < n) {
        uint8_t k = tf_class[p[i]];

        if (k == TF_BLANK || k == TF_SEMI) {
            i++;
            continue;
        }
        if (k == TF_R && word_at(p, n, i, "reset", 5))
            f |= ROUTE_TXT_SET;
        else if (k == TF_D && (word_at(p, n, i, "discard", 7) || word_at(p, n, i, "deallocate", 10)))
            f |= ROUTE_TXT_NAMES;
        else if (k == TF_S && word_at(p, n, i, "set", 3))
            f |= ROUTE_TXT_SET;
        else if ((k == TF_A && word_at(p, n, i, "alter", 5)) || (k == TF_D && word_at(p, n, i, "drop", 4)) ||
                 (k == TF_C && word_at(p, n, i, "create", 6) && create_or_replace_at(p, n, i)))
            f |= ROUTE_TXT_DDL;
        for (; (i = skip_inner(p, n, i)) < n; i++) {
            uint8_t c = p[i];

            if (c == ';')
                break;
            if (c == '(')
                f |= ROUTE_TXT_CALL | (dblink_connect_at(p, i) ? ROUTE_TXT_SET : 0);
            else if ((c | 0x20) == 's' && i + 10 <= n && ci_prefix(p + i + 1, "et_config", 9))
                f |= ROUTE_TXT_SET;
            else if ((c | 0x20) == 's' && i + 7 <= n && ci_prefix(p + i + 1, "etseed", 6))
                f |= ROUTE_TXT_SET;
            else if ((c | 0x20) == 's' && i + 13 <= n && ci_prefix(p + i + 1, "ession_setup", 12))
                f |= ROUTE_TXT_SET;       /* pg_replication_origin_session_setup */
            else if ((c | 0x20) == 't' && i + 4 <= n && ci_prefix(p + i + 1, "emp", 3))
                f |= ROUTE_TXT_TEMP;
        }
    }
    return f;
}

int route_mentions_sequence_change(const char *sql, size_t n)
{
    const uint8_t *p = (const uint8_t *)sql;

    for (size_t i = 0; i + 6 <= n; i++) {
        uint8_t c = p[i] | 0x20;

        if ((c == 'n' && i + 7 <= n && ci_prefix(p + i + 1, "extval", 6)) ||
            (c == 's' && ci_prefix(p + i + 1, "etval", 5)))
            return 1;
    }
    return 0;
}

/* ---- BEGIN ---- */

const char *route_bare_begin_tag(const char *sql, size_t len)
{
    static const char *const forms[][2] = {
        { "begin", "BEGIN" }, { "begin work", "BEGIN" }, { "begin transaction", "BEGIN" },
        { "start transaction", "START TRANSACTION" },
    };
    char norm[24];
    size_t n = 0, i;
    int space = 0;

    /* Every form starts with "begin" or "start": most statements are told apart by their first bytes. */
    for (i = 0; i < len && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r'); i++)
        ;
    if (len - i < 5 || (!ci_prefix((const uint8_t *)sql + i, "begin", 5) && !ci_prefix((const uint8_t *)sql + i, "start", 5)))
        return NULL;
    for (i = 0; i < len && sql[i]; i++) {
        char c = sql[i];

        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            space = n > 0;
            continue;
        }
        if (c == ';')
            break;
        if (n + 2 >= sizeof(norm))
            return NULL;
        if (space)
            norm[n++] = ' ';
        space = 0;
        norm[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    for (i += i < len && sql[i] == ';'; i < len && sql[i]; i++)
        if (sql[i] != ' ' && sql[i] != '\t' && sql[i] != '\n' && sql[i] != '\r')
            return NULL;
    norm[n] = 0;
    for (size_t k = 0; k < sizeof(forms) / sizeof(forms[0]); k++)
        if (strcmp(norm, forms[k][0]) == 0)
            return forms[k][1];
    return NULL;
}

const char *route_begin_tag(const char *sql, size_t len)
{
    const char *tag, *p = sql;
    struct route_span spans[2];
    struct route_class cls;

    /* Every form starts with "begin" or "start": most statements are told apart by their first bytes. */
    while (p < sql + len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    if ((size_t)(sql + len - p) < 5 || (!ci_prefix((const uint8_t *)p, "begin", 5) && !ci_prefix((const uint8_t *)p, "start", 5)))
        return NULL;
    if ((tag = route_bare_begin_tag(sql, len)))
        return tag;
    if ((size_t)(sql + len - p) < 6 || route_split_spans(sql, len, spans, 2) != 1 || route_classify(sql, len, &cls) < 0 ||
        cls.parsed_by == ROUTE_PARSED_BY_LEXER || !cls.is_begin)
        return NULL;
    return strncasecmp(p, "start", 5) == 0 ? "START TRANSACTION" : "BEGIN";
}

int route_sets_tx_mode(const char *sql, size_t len)
{
    struct route_token tok;
    size_t pos = 0;

    if (route_lex_next(sql, len, &pos, &tok) != ROUTE_TOK_IDENT)
        return 0;
    if (route_tok_is(sql, &tok, "set"))
        return route_lex_next(sql, len, &pos, &tok) == ROUTE_TOK_IDENT && route_tok_is(sql, &tok, "transaction");
    if (!route_tok_is(sql, &tok, "begin") && !route_tok_is(sql, &tok, "start"))
        return 0;
    while (route_lex_next(sql, len, &pos, &tok) == ROUTE_TOK_IDENT)
        if (route_tok_is(sql, &tok, "isolation") || route_tok_is(sql, &tok, "read") ||
            route_tok_is(sql, &tok, "deferrable") || route_tok_is(sql, &tok, "not"))
            return 1;
    return 0;
}

/* ---- parameters ---- */

uint32_t route_max_param(const char *sql, size_t len)
{
    struct route_token tok;
    size_t pos = 0;
    uint32_t max = 0;

    while (route_lex_next(sql, len, &pos, &tok) != ROUTE_TOK_EOF)
        if (tok.type == ROUTE_TOK_PARAM) {
            uint32_t v = (uint32_t)strtoul(sql + tok.start + 1, NULL, 10);

            max = v > max && v <= 65535 ? v : max;
        }
    return max;
}

/* ---- custom settings ---- */

/* A dotted name starting at tok: a.b or a.b.c (unquoted parts), copied into out. */
static size_t dotted_name(const char *sql, size_t len, size_t *pos, struct route_token *tok, char *out,
                          size_t cap)
{
    size_t o = 0;

    for (;;) {
        if (tok->type != ROUTE_TOK_IDENT || o + tok->len + 1 >= cap)
            return 0;
        memcpy(out + o, sql + tok->start, tok->len);
        o += tok->len;
        if (route_lex_next(sql, len, pos, tok) != ROUTE_TOK_PUNCT || sql[tok->start] != '.')
            return o;
        out[o++] = '.';
        (void)route_lex_next(sql, len, pos, tok);
    }
}

/* Whether sql[i..] is the word w (lower case; any case in sql), not part of a longer identifier. */
static int whole_word(const char *sql, size_t len, size_t i, const char *w)
{
    size_t wl = strlen(w);

    return i + wl <= len && strncasecmp(sql + i, w, wl) == 0 &&
           (i == 0 || !route_ident_char((unsigned char)sql[i - 1])) &&
           (i + wl == len || !route_ident_char((unsigned char)sql[i + wl]));
}

/* The word before sql[i] (blanks between) is w. */
static int word_before(const char *sql, size_t i, const char *w)
{
    size_t wl = strlen(w), j = i;

    while (j > 0 && (sql[j - 1] == ' ' || sql[j - 1] == '\t' || sql[j - 1] == '\n' || sql[j - 1] == '\r'))
        j--;
    return j >= wl && whole_word(sql, j, j - wl, w);
}

void route_pin_words(const char *sql, size_t len, route_name_cb cb, void *arg)
{
    for (size_t i = 0; i < len; i++) {
        char c = (char)(sql[i] | 0x20);

        if (c == 's' && (whole_word(sql, len, i, "setseed") ||
                         (whole_word(sql, len, i, "seed") &&
                          (word_before(sql, i, "set") || word_before(sql, i, "local") ||
                           word_before(sql, i, "session") || (i > 0 && sql[i - 1] == '\'')))))
            cb(arg, "seed", 4);
        else if (c == 'p' && whole_word(sql, len, i, "pg_replication_origin_session_setup"))
            cb(arg, ROUTE_NAME_REPLICATION, sizeof(ROUTE_NAME_REPLICATION) - 1);
        else if (c == 'd' && (whole_word(sql, len, i, "dblink_connect") || whole_word(sql, len, i, "dblink_connect_u")))
            cb(arg, ROUTE_NAME_DBLINK, sizeof(ROUTE_NAME_DBLINK) - 1);
    }
}

void route_setting_names(const char *sql, size_t len, route_name_cb cb, void *arg)
{
    struct route_token tok;
    size_t pos = 0;
    int start = 1;
    char name[ROUTE_SETTING_NAME_MAX + 2];

    while (route_lex_next(sql, len, &pos, &tok) != ROUTE_TOK_EOF) {
        if (tok.type == ROUTE_TOK_PUNCT && sql[tok.start] == ';') {
            start = 1;
            continue;
        }
        if (start && (route_tok_is(sql, &tok, "set") || route_tok_is(sql, &tok, "reset"))) {
            int local = 0, reset = route_tok_is(sql, &tok, "reset");

            start = 0;
            if (route_lex_next(sql, len, &pos, &tok) == ROUTE_TOK_IDENT &&
                (route_tok_is(sql, &tok, "session") || (local = route_tok_is(sql, &tok, "local"))))
                (void)route_lex_next(sql, len, &pos, &tok);
            size_t n = dotted_name(sql, len, &pos, &tok, name, sizeof(name));
            /* SET LOCAL ends with the transaction, except for seed (the generator is not rolled back);
             * RESET seed does not seed. */
            int seed = n == 4 && strncasecmp(name, "seed", 4) == 0;
            if (seed ? !reset : !local)
                cb(arg, name, n);
            if (tok.type == ROUTE_TOK_PUNCT && sql[tok.start] == ';')
                start = 1;
            continue;
        }
        start = 0;
        if (tok.type == ROUTE_TOK_IDENT && route_tok_is(sql, &tok, "setseed")) {
            if (route_lex_next(sql, len, &pos, &tok) == ROUTE_TOK_PUNCT && sql[tok.start] == '(')
                cb(arg, "seed", 4);       /* seeds random() as SET seed does */
            continue;
        }
        if (tok.type == ROUTE_TOK_IDENT && route_tok_is(sql, &tok, "pg_replication_origin_session_setup")) {
            if (route_lex_next(sql, len, &pos, &tok) == ROUTE_TOK_PUNCT && sql[tok.start] == '(')
                cb(arg, ROUTE_NAME_REPLICATION, sizeof(ROUTE_NAME_REPLICATION) - 1);
            continue;
        }
        if (tok.type == ROUTE_TOK_IDENT &&
            (route_tok_is(sql, &tok, "dblink_connect") || route_tok_is(sql, &tok, "dblink_connect_u"))) {
            if (route_lex_next(sql, len, &pos, &tok) == ROUTE_TOK_PUNCT && sql[tok.start] == '(')
                cb(arg, ROUTE_NAME_DBLINK, sizeof(ROUTE_NAME_DBLINK) - 1);
            continue;
        }
        if (tok.type == ROUTE_TOK_IDENT && route_tok_is(sql, &tok, "set_config")) {
            if (route_lex_next(sql, len, &pos, &tok) != ROUTE_TOK_PUNCT || sql[tok.start] != '(')
                continue;
            if (route_lex_next(sql, len, &pos, &tok) == ROUTE_TOK_STRING && sql[tok.start] == '\'' &&
                tok.len >= 2 && !tok.incomplete)
                cb(arg, sql + tok.start + 1, tok.len - 2);
        }
    }
}

/* Settings whose value PostgreSQL never consults when it reads a statement's text (how names
 * resolve, how constants are read): the planner's costs and switches, memory and time limits,
 * logging and commit behaviour, output formats, transaction defaults. */
static const char *const inert_settings[] = {
    "application_name", "bytea_output", "client_min_messages", "commit_delay", "constraint_exclusion",
    "cpu_index_tuple_cost", "cpu_operator_cost", "cpu_tuple_cost", "cursor_tuple_fraction",
    "default_statistics_target", "default_transaction_deferrable", "default_transaction_isolation",
    "default_transaction_read_only", "effective_cache_size", "effective_io_concurrency",
    "extra_float_digits", "from_collapse_limit", "hash_mem_multiplier", "idle_in_transaction_session_timeout",
    "idle_session_timeout", "jit", "jit_above_cost", "jit_inline_above_cost", "jit_optimize_above_cost",
    "join_collapse_limit", "lock_timeout", "log_min_duration_statement", "log_statement",
    "maintenance_work_mem", "max_parallel_maintenance_workers", "max_parallel_workers",
    "max_parallel_workers_per_gather", "parallel_setup_cost", "parallel_tuple_cost", "plan_cache_mode",
    "random_page_cost", "seq_page_cost", "statement_timeout", "synchronous_commit", "temp_buffers",
    "temp_file_limit", "work_mem", NULL,
};

static int inert_setting(const char *name, size_t n)
{
    if (memchr(name, '.', n))
        return 1;                 /* a custom setting (extension or application): read when used */
    if (n > 7 && strncasecmp(name, "enable_", 7) == 0)
        return 1;                 /* the planner's switches */
    for (int i = 0; inert_settings[i]; i++)
        if (strlen(inert_settings[i]) == n && strncasecmp(name, inert_settings[i], n) == 0)
            return 1;
    return 0;
}

int route_set_inert(const char *sql, size_t len)
{
    struct route_token tok;
    size_t pos = 0, n;
    char name[ROUTE_SETTING_NAME_MAX + 2];
    int reset;

    while (len > 0 && sql[len - 1] == '\0')
        len--;
    if (route_lex_next(sql, len, &pos, &tok) != ROUTE_TOK_IDENT)
        return 0;
    reset = route_tok_is(sql, &tok, "reset");
    if (!reset && !route_tok_is(sql, &tok, "set"))
        return 0;
    (void)route_lex_next(sql, len, &pos, &tok);
    if (!reset && (route_tok_is(sql, &tok, "session") || route_tok_is(sql, &tok, "local")))
        (void)route_lex_next(sql, len, &pos, &tok);
    n = dotted_name(sql, len, &pos, &tok, name, sizeof(name));
    if (n == 0 || !inert_setting(name, n))
        return 0;
    if (!reset) {
        /* "= value" or "TO value": literals, words and numbers separated by commas */
        if (!(tok.type == ROUTE_TOK_OP && tok.len == 1 && sql[tok.start] == '=') && !route_tok_is(sql, &tok, "to"))
            return 0;
        while (route_lex_next(sql, len, &pos, &tok) != ROUTE_TOK_EOF) {
            if (tok.incomplete)
                return 0;
            if (tok.type == ROUTE_TOK_PUNCT && sql[tok.start] == ';')
                break;
            if (tok.type == ROUTE_TOK_PUNCT ? sql[tok.start] != ',' :
                tok.type == ROUTE_TOK_OP ? tok.len != 1 || sql[tok.start] != '-' :
                tok.type != ROUTE_TOK_IDENT && tok.type != ROUTE_TOK_STRING && tok.type != ROUTE_TOK_NUMBER)
                return 0;
        }
    } else if (tok.type != ROUTE_TOK_EOF && !(tok.type == ROUTE_TOK_PUNCT && sql[tok.start] == ';')) {
        return 0;
    }
    return tok.type == ROUTE_TOK_EOF || route_lex_next(sql, len, &pos, &tok) == ROUTE_TOK_EOF;
}

/* ---- keywords ---- */

int route_starts_with_word(const char *q, const char *w)
{
    size_t n = strlen(w);

    while (*q == ' ' || *q == '(')
        q++;
    return strncasecmp(q, w, n) == 0;
}
