/* Fingerprints and normalized text: one lexer pass that hashes the normalized token stream
 * (FNV-1a over the tokens, finished with a 64-bit mixer) and writes display text. */
#include "routing/route.h"
#include "routing/internal.h"
#include "routing/hash.h"

#include <string.h>

struct norm {
    const char *sql;
    size_t len;
    uint64_t h;
    char *buf;
    size_t cap;
    size_t out_len;
    struct route_token prev;   /* last emitted token; type EOF before the first */
    const char *prev_text;     /* its emitted text ("?" for literals) */
    struct route_scan *res;
};

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static void put_char(struct norm *n, char c)
{
    if (n->cap > 0 && n->out_len + 1 < n->cap)
        n->buf[n->out_len] = c;
    n->out_len++;
}

/* Keywords after which "(" is spaced and "-" is unary. Only display and the unary-minus rule
 * depend on this list, so a missing keyword costs a cosmetic difference at most. */
static bool is_spacing_keyword(const char *s, size_t n)
{
    static const char *const kws[] = {
        "select", "where", "and", "or", "not", "in", "values", "as", "from", "join", "on",
        "using", "exists", "when", "then", "else", "return", "limit", "offset", "by", "set",
        "returning", "having", "over", "any", "all", "some", "between", "like", "is", "case",
        "with", "into", "filter", "within", "lateral", "table", "distinct", NULL,
    };
    for (int i = 0; kws[i]; i++)
        if (strlen(kws[i]) == n && strncasecmp(kws[i], s, n) == 0)
            return true;
    return false;
}

static bool need_space(const struct norm *n, const char *text, size_t tlen,
                       enum route_tok_type type)
{
    const char *p = n->prev_text;
    if (n->prev.type == ROUTE_TOK_EOF)
        return false;
    if (n->prev.type == ROUTE_TOK_PUNCT && (p[0] == '(' || p[0] == '[' || p[0] == '.'))
        return false;
    if (n->prev.type == ROUTE_TOK_OP && n->prev.len == 2 && p[0] == ':' && p[1] == ':')
        return false;
    if (type == ROUTE_TOK_PUNCT && strchr(")],.;[", text[0]))
        return false;
    if (type == ROUTE_TOK_OP && tlen == 2 && text[0] == ':' && text[1] == ':')
        return false;
    if (type == ROUTE_TOK_PUNCT && text[0] == '(')
        return !(n->prev.type == ROUTE_TOK_QIDENT ||
                 (n->prev.type == ROUTE_TOK_IDENT && !is_spacing_keyword(p, n->prev.len)));
    return true;
}

/* Emits one normalized token: hashed, then appended to the display text. */
static void emit(struct norm *n, const struct route_token *tok, const char *text, size_t tlen)
{
    bool fold = tok->type == ROUTE_TOK_IDENT;
    if (need_space(n, text, tlen, tok->type))
        put_char(n, ' ');
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = fold ? lower((unsigned char)text[i]) : (unsigned char)text[i];
        n->h = route_fnv1a_byte(n->h, c);
        put_char(n, (char)c);
    }
    n->h = route_fnv1a_byte(n->h, 0xff);   /* token separator: "ab" differs from "a" "b" */
    n->prev = *tok;
    n->prev_text = text;
}

static void emit_punct(struct norm *n, const char *text)
{
    struct route_token t = {ROUTE_TOK_PUNCT, 0, strlen(text), false};
    emit(n, &t, text, t.len);
}

static void emit_placeholder(struct norm *n)
{
    struct route_token t = {ROUTE_TOK_NUMBER, 0, 1, false};
    emit(n, &t, "?", 1);
}

static bool is_literal(enum route_tok_type t)
{
    return t == ROUTE_TOK_STRING || t == ROUTE_TOK_DOLLAR || t == ROUTE_TOK_NUMBER ||
           t == ROUTE_TOK_PARAM;
}

static bool is_sign(const char *sql, const struct route_token *tok)
{
    return tok->type == ROUTE_TOK_OP && tok->len == 1 &&
           (sql[tok->start] == '-' || sql[tok->start] == '+');
}

/* Whether a '+' or '-' here can only be unary: at the start, after an operator, after one of
 * "( , [", or after a keyword such as SELECT or WHERE. */
static bool unary_context(const struct norm *n)
{
    switch (n->prev.type) {
    case ROUTE_TOK_EOF:
    case ROUTE_TOK_OP:
        return true;
    case ROUTE_TOK_PUNCT:
        return strchr("(,[", n->prev_text[0]) != NULL;
    case ROUTE_TOK_IDENT:
        return is_spacing_keyword(n->prev_text, n->prev.len);
    case ROUTE_TOK_QIDENT:
    case ROUTE_TOK_STRING:
    case ROUTE_TOK_DOLLAR:
    case ROUTE_TOK_NUMBER:
    case ROUTE_TOK_PARAM:
    case ROUTE_TOK_COMMENT:
        return false;
    }
    return false;
}

/* Next token, skipping comments but noting the first hint in them. */
static enum route_tok_type next_tok(struct norm *n, size_t *pos, struct route_token *tok)
{
    while (route_lex_next_raw(n->sql, n->len, pos, tok) == ROUTE_TOK_COMMENT) {
        if (tok->incomplete)
            n->res->incomplete = true;
        if (!n->res->hint)
            (void)route_comment_hint(n->sql, tok, &n->res->hint, &n->res->hint_len);
    }
    if (tok->incomplete)
        n->res->incomplete = true;
    return tok->type;
}

static bool is_punct(const struct norm *n, const struct route_token *tok, char c)
{
    return tok->type == ROUTE_TOK_PUNCT && n->sql[tok->start] == c;
}

/* After a '(' at *pos: "literal [::type], ... )" where a literal may carry a sign. On success
 * moves *pos past the ')'. */
static bool literal_list(struct norm *n, size_t *pos)
{
    size_t p = *pos;
    struct route_token tok;
    for (;;) {
        next_tok(n, &p, &tok);
        if (is_sign(n->sql, &tok))
            next_tok(n, &p, &tok);
        if (!is_literal(tok.type))
            return false;
        next_tok(n, &p, &tok);
        while (tok.type == ROUTE_TOK_OP && tok.len == 2 && n->sql[tok.start] == ':') {
            if (next_tok(n, &p, &tok) != ROUTE_TOK_IDENT)
                return false;
            next_tok(n, &p, &tok);
        }
        if (is_punct(n, &tok, ')')) {
            *pos = p;
            return true;
        }
        if (!is_punct(n, &tok, ','))
            return false;
    }
}

/* A '(' at tok: collapse "(lit, ...)" and any ", (lit, ...)" runs after it into "(?)". */
static bool collapse_list(struct norm *n, size_t *pos)
{
    if (!literal_list(n, pos))
        return false;
    emit_punct(n, "(");
    emit_placeholder(n);
    emit_punct(n, ")");
    for (;;) {
        size_t p = *pos;
        struct route_token tok;
        next_tok(n, &p, &tok);
        if (!is_punct(n, &tok, ','))
            return true;
        next_tok(n, &p, &tok);
        if (!is_punct(n, &tok, '(') || !literal_list(n, &p))
            return true;
        *pos = p;
    }
}

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

void route_scan(const char *sql, size_t len, struct route_scan *out, char *norm, size_t norm_cap)
{
    struct norm n = {sql, len, ROUTE_FNV_OFFSET, norm, norm_cap, 0, {0}, "", out};
    struct route_token tok;
    size_t pos = 0;

    memset(out, 0, sizeof *out);
    n.prev.type = ROUTE_TOK_EOF;
    while (next_tok(&n, &pos, &tok) != ROUTE_TOK_EOF) {
        out->n_tokens++;
        if (is_punct(&n, &tok, '(') && collapse_list(&n, &pos))
            continue;
        if (is_sign(sql, &tok) && unary_context(&n)) {
            size_t p = pos;
            struct route_token lit;
            if (next_tok(&n, &p, &lit) == ROUTE_TOK_NUMBER) {
                pos = p;
                emit_placeholder(&n);
                continue;
            }
        }
        if (is_literal(tok.type))
            emit_placeholder(&n);
        else
            emit(&n, &tok, sql + tok.start, tok.len);
    }
    if (out->hint) {
        n.h = route_fnv1a_byte(n.h, 0x01);
        for (size_t i = 0; i < out->hint_len; i++)
            n.h = route_fnv1a_byte(n.h, lower((unsigned char)out->hint[i]));
    }
    out->fingerprint = mix64(n.h);
    if (out->fingerprint == 0)
        out->fingerprint = 1;
    out->norm_len = n.out_len;
    if (norm_cap > 0)
        norm[n.out_len < norm_cap ? n.out_len : norm_cap - 1] = '\0';
}

uint64_t route_fingerprint(const char *sql, size_t len)
{
    struct route_scan s;
    route_scan(sql, len, &s, NULL, 0);
    return s.fingerprint;
}
