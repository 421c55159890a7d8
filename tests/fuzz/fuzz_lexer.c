/*
 * libFuzzer target: routing/ on arbitrary SQL text: the lexer, statement splitting, scan
 * (fingerprint and normalized text), hints and both classifiers, on the whole input and on each
 * statement. The input is not NUL-terminated, so a read of sql[len] shows up under ASan.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "routing/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)
#define MAX_SPANS 8
#define NORM_SMALL 16
#define NORM_LARGE 4096

static void lex_all(const char *sql, size_t len, int raw)
{
    size_t pos = 0, prev = 0;
    struct route_token tok;

    for (;;) {
        enum route_tok_type t = raw ? route_lex_next_raw(sql, len, &pos, &tok)
                                    : route_lex_next(sql, len, &pos, &tok);
        CHECK(pos <= len && pos >= prev);
        if (t == ROUTE_TOK_EOF)
            break;
        CHECK(pos > prev);   /* every token consumes input: no endless loop */
        CHECK(tok.type == t && tok.start >= prev && tok.len > 0 && tok.start + tok.len <= pos);
        CHECK(raw || t != ROUTE_TOK_COMMENT);
        (void)route_tok_is(sql, &tok, "select");
        prev = pos;
    }
}

static void check_class(const struct route_class *c)
{
    CHECK(route_kind_name(c->kind) != NULL);
    CHECK(c->n_relations <= ROUTE_MAX_RELATIONS);
    for (int i = 0; i < c->n_relations; i++)
        CHECK(memchr(c->relations[i], '\0', ROUTE_REL_NAME_MAX) != NULL);
}

/* route_setting_names' callback: a name lies in the statement (set_config's literal) or in a
 * buffer of at most ROUTE_SETTING_NAME_MAX bytes (SET's dotted name, a marker); every byte is read,
 * so that AddressSanitizer sees a name that runs past either. */
struct names_arg {
    const char *sql;
    size_t len;
};

static void check_name(void *arg, const char *name, size_t n)
{
    const struct names_arg *a = arg;
    volatile char sink = 0;

    CHECK(n == 0 || name != NULL);
    CHECK(n <= ROUTE_SETTING_NAME_MAX || (name >= a->sql && name + n <= a->sql + a->len));
    for (size_t i = 0; i < n; i++)
        sink ^= name[i];
    (void)sink;
}

static void statement(const char *sql, size_t len)
{
    struct names_arg na = { sql, len };
    struct route_scan small, large;
    char norm_small[NORM_SMALL], norm_large[NORM_LARGE];
    const char *name;
    size_t name_len;
    struct route_class c;

    route_scan(sql, len, &small, norm_small, sizeof norm_small);
    route_scan(sql, len, &large, norm_large, sizeof norm_large);
    route_scan(sql, len, &large, NULL, 0);
    CHECK(small.fingerprint != 0 && small.fingerprint == large.fingerprint);
    CHECK(small.fingerprint == route_fingerprint(sql, len));
    CHECK(small.norm_len == large.norm_len && small.n_tokens == large.n_tokens);
    CHECK(strlen(norm_small) < NORM_SMALL && strlen(norm_large) < NORM_LARGE);
    if (large.norm_len < NORM_LARGE) {
        /* A NUL in the SQL is a one-byte token copied as is into the text, which then reads
         * shorter as a C string than norm_len says (see README.md, findings). */
        CHECK(memchr(sql, '\0', len) != NULL ? strlen(norm_large) <= large.norm_len
                                              : strlen(norm_large) == large.norm_len);
        CHECK(strncmp(norm_small, norm_large, NORM_SMALL - 1) == 0);
    }
    if (route_hint(sql, len, &name, &name_len)) {
        CHECK(name >= sql && name_len > 0 && name + name_len <= sql + len);
        CHECK(small.hint == NULL || (small.hint >= sql && small.hint + small.hint_len <= sql + len));
    }
    CHECK((route_text_flags(sql, len) & ~(ROUTE_TXT_CALL | ROUTE_TXT_TEMP | ROUTE_TXT_SET | ROUTE_TXT_NAMES | ROUTE_TXT_DDL)) == 0);
    route_setting_names(sql, len, check_name, &na);
    route_pin_words(sql, len, check_name, &na);
    CHECK(route_sets_tx_mode(sql, len) == 0 || route_sets_tx_mode(sql, len) == 1);
    CHECK(route_set_inert(sql, len) == 0 || route_set_inert(sql, len) == 1);
    route_classify_lexer(sql, len, &c);
    check_class(&c);
    CHECK(c.parsed_by == ROUTE_PARSED_BY_LEXER);
    CHECK(route_classify(sql, len, &c) == 0);
    check_class(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *sql = (const char *)data;
    struct route_span spans[MAX_SPANS];

    lex_all(sql, size, 0);
    lex_all(sql, size, 1);
    size_t n = route_split_spans(sql, size, spans, MAX_SPANS);
    for (size_t i = 0; i < n && i < MAX_SPANS; i++) {
        CHECK(spans[i].len > 0 && spans[i].start + spans[i].len <= size);
        CHECK(i == 0 || spans[i].start >= spans[i - 1].start + spans[i - 1].len);
        /* An exact-size copy: a read past the statement's end must not hit the next one. */
        char *stmt = malloc(spans[i].len);
        CHECK(stmt != NULL);
        memcpy(stmt, sql + spans[i].start, spans[i].len);
        statement(stmt, spans[i].len);
        free(stmt);
    }
    statement(sql, size);
    return 0;
}
