/* The SQL lexer: PostgreSQL's token rules (comments, string and dollar quoting, quoted
 * identifiers, parameters, operators), statement splitting on top-level ';', and hint comments.
 * It never reads past len, and an unterminated construct ends at len, flagged incomplete. */
#include "routing/route.h"
#include "routing/internal.h"

#include <string.h>

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_ident_char(unsigned char c)
{
    return is_ident_start(c) || is_digit(c) || c == '$';
}

bool route_ident_char(unsigned char c)
{
    return is_ident_char(c);
}

static bool is_op_char(unsigned char c)
{
    return c != 0 && strchr("+-*/<>=~!@#%^&|`?", c) != NULL;
}

static unsigned char at(const char *sql, size_t len, size_t i)
{
    return i < len ? (unsigned char)sql[i] : 0;
}

/* Ends at the byte after the closing quote q; doubled quotes stay inside. With backslashes set
 * (E'..'), a backslash escapes the next byte. */
static size_t scan_quoted(const char *sql, size_t len, size_t i, char q, bool backslashes,
                          bool *incomplete)
{
    while (i < len) {
        char c = sql[i];
        if (backslashes && c == '\\') {
            i += 2;
            continue;
        }
        if (c == q) {
            if (i + 1 < len && sql[i + 1] == q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i++;
    }
    *incomplete = true;
    return len;
}

static size_t scan_block_comment(const char *sql, size_t len, size_t i, bool *incomplete)
{
    int depth = 1;
    i += 2;
    while (i < len) {
        if (sql[i] == '/' && at(sql, len, i + 1) == '*') {
            depth++;
            i += 2;
        } else if (sql[i] == '*' && at(sql, len, i + 1) == '/') {
            i += 2;
            if (--depth == 0)
                return i;
        } else {
            i++;
        }
    }
    *incomplete = true;
    return len;
}

static size_t scan_line_comment(const char *sql, size_t len, size_t i)
{
    while (i < len && sql[i] != '\n' && sql[i] != '\r')
        i++;
    return i;
}

/* At '$': the length of a dollar-quote delimiter "$tag$" or "$$", or 0 if there is none. */
static size_t dollar_tag_len(const char *sql, size_t len, size_t i)
{
    size_t j = i + 1;
    if (j < len && sql[j] == '$')
        return 2;
    if (!is_ident_start(at(sql, len, j)))
        return 0;
    while (j < len && is_ident_char((unsigned char)sql[j]) && sql[j] != '$')
        j++;
    return j < len && sql[j] == '$' ? j + 1 - i : 0;
}

static size_t scan_dollar(const char *sql, size_t len, size_t i, size_t tag, bool *incomplete)
{
    size_t j = i + tag;
    while (j + tag <= len) {
        if (sql[j] == '$' && memcmp(sql + j, sql + i, tag) == 0)
            return j + tag;
        j++;
    }
    *incomplete = true;
    return len;
}

static size_t scan_number(const char *sql, size_t len, size_t i)
{
    while (i < len && is_digit((unsigned char)sql[i]))
        i++;
    /* "1..5" is not a decimal; PostgreSQL reads 1 and then "..". */
    if (i < len && sql[i] == '.' && at(sql, len, i + 1) != '.') {
        i++;
        while (i < len && is_digit((unsigned char)sql[i]))
            i++;
    }
    if (i < len && (sql[i] == 'e' || sql[i] == 'E')) {
        size_t j = i + 1;
        if (at(sql, len, j) == '+' || at(sql, len, j) == '-')
            j++;
        if (is_digit(at(sql, len, j))) {
            while (j < len && is_digit((unsigned char)sql[j]))
                j++;
            i = j;
        }
    }
    return i;
}

/* PostgreSQL's operator rule: an operator stops before "--" or "/ *", and a multi-character
 * operator may end in + or - only if it contains one of ~ ! @ # % ^ & | ` ?, so that "=-1" is
 * "=" followed by "-1". */
static size_t scan_operator(const char *sql, size_t len, size_t i)
{
    size_t start = i;
    bool special = false;
    while (i < len && is_op_char((unsigned char)sql[i])) {
        if (i > start && ((sql[i] == '-' && at(sql, len, i + 1) == '-') ||
                          (sql[i] == '/' && at(sql, len, i + 1) == '*')))
            break;
        if (strchr("~!@#%^&|`?", sql[i]))
            special = true;
        i++;
    }
    if (!special)
        while (i - start > 1 && (sql[i - 1] == '+' || sql[i - 1] == '-'))
            i--;
    return i;
}

/* A string literal with a prefix: E'..', B'..', X'..', N'..', U&'..' (and U&".." identifiers).
 * Returns the end, or 0 when sql[i] starts no prefixed literal. */
static size_t scan_prefixed(const char *sql, size_t len, size_t i, struct route_token *tok)
{
    unsigned char c = (unsigned char)sql[i] | 0x20;
    unsigned char n = at(sql, len, i + 1);
    if (n == '\'' && (c == 'e' || c == 'b' || c == 'x' || c == 'n')) {
        tok->type = ROUTE_TOK_STRING;
        return scan_quoted(sql, len, i + 2, '\'', c == 'e', &tok->incomplete);
    }
    if (c == 'u' && n == '&') {
        unsigned char q = at(sql, len, i + 2);
        if (q == '\'' || q == '"') {
            tok->type = q == '\'' ? ROUTE_TOK_STRING : ROUTE_TOK_QIDENT;
            return scan_quoted(sql, len, i + 3, (char)q, false, &tok->incomplete);
        }
    }
    return 0;
}

static size_t scan_token(const char *sql, size_t len, size_t i, struct route_token *tok)
{
    unsigned char c = (unsigned char)sql[i];
    unsigned char n = at(sql, len, i + 1);
    size_t end;

    if (c == '-' && n == '-') {
        tok->type = ROUTE_TOK_COMMENT;
        return scan_line_comment(sql, len, i);
    }
    if (c == '/' && n == '*') {
        tok->type = ROUTE_TOK_COMMENT;
        return scan_block_comment(sql, len, i, &tok->incomplete);
    }
    if (c == '\'') {
        tok->type = ROUTE_TOK_STRING;
        return scan_quoted(sql, len, i + 1, '\'', false, &tok->incomplete);
    }
    if (c == '"') {
        tok->type = ROUTE_TOK_QIDENT;
        return scan_quoted(sql, len, i + 1, '"', false, &tok->incomplete);
    }
    if (is_ident_start(c)) {
        if ((end = scan_prefixed(sql, len, i, tok)) != 0)
            return end;
        tok->type = ROUTE_TOK_IDENT;
        for (end = i + 1; end < len && is_ident_char((unsigned char)sql[end]); end++)
            ;
        return end;
    }
    if (is_digit(c) || (c == '.' && is_digit(n))) {
        tok->type = ROUTE_TOK_NUMBER;
        return scan_number(sql, len, i);
    }
    if (c == '$') {
        size_t tag;
        if (is_digit(n)) {
            tok->type = ROUTE_TOK_PARAM;
            for (end = i + 1; end < len && is_digit((unsigned char)sql[end]); end++)
                ;
            return end;
        }
        if ((tag = dollar_tag_len(sql, len, i)) != 0) {
            tok->type = ROUTE_TOK_DOLLAR;
            return scan_dollar(sql, len, i, tag, &tok->incomplete);
        }
        tok->type = ROUTE_TOK_PUNCT;
        return i + 1;
    }
    if (c == ':') {
        tok->type = n == ':' || n == '=' ? ROUTE_TOK_OP : ROUTE_TOK_PUNCT;
        return i + (tok->type == ROUTE_TOK_OP ? 2 : 1);
    }
    if (is_op_char(c)) {
        tok->type = ROUTE_TOK_OP;
        return scan_operator(sql, len, i);
    }
    tok->type = ROUTE_TOK_PUNCT;
    return i + 1;
}

enum route_tok_type route_lex_next_raw(const char *sql, size_t len, size_t *pos,
                                       struct route_token *tok)
{
    size_t i = *pos;
    while (i < len && is_space((unsigned char)sql[i]))
        i++;
    tok->start = i;
    tok->incomplete = false;
    if (i >= len) {
        tok->type = ROUTE_TOK_EOF;
        tok->len = 0;
        *pos = len;
        return ROUTE_TOK_EOF;
    }
    size_t end = scan_token(sql, len, i, tok);
    tok->len = end - i;
    *pos = end;
    return tok->type;
}

enum route_tok_type route_lex_next(const char *sql, size_t len, size_t *pos,
                                   struct route_token *tok)
{
    while (route_lex_next_raw(sql, len, pos, tok) == ROUTE_TOK_COMMENT)
        ;
    return tok->type;
}

bool route_tok_is(const char *sql, const struct route_token *tok, const char *kw)
{
    size_t n = strlen(kw);
    return tok->type == ROUTE_TOK_IDENT && tok->len == n &&
           strncasecmp(sql + tok->start, kw, n) == 0;
}

/* ------------------------------------------------------------------------------------------ */

static bool tok_punct(const char *sql, const struct route_token *tok, char c)
{
    return tok->type == ROUTE_TOK_PUNCT && sql[tok->start] == c;
}

/* psql's rule for SQL-standard function bodies: inside CREATE [OR REPLACE] FUNCTION/PROCEDURE,
 * BEGIN (ATOMIC) ... END may contain ';' and CASE ... END nests in it. */
struct split_state {
    int paren;
    int begin_depth;
    int n_idents;        /* identifiers seen at the start of the statement, up to 4 */
    bool routine;        /* the statement is CREATE [OR REPLACE] FUNCTION/PROCEDURE */
};

static void split_track(const char *sql, const struct route_token *tok, struct split_state *st)
{
    if (tok_punct(sql, tok, '('))
        st->paren++;
    else if (tok_punct(sql, tok, ')') && st->paren > 0)
        st->paren--;
    if (tok->type != ROUTE_TOK_IDENT) {
        st->n_idents = 4;
        return;
    }
    if (st->n_idents < 4) {
        int k = st->n_idents++;
        if (k == 0 && !route_tok_is(sql, tok, "create"))
            st->n_idents = 4;
        else if (k > 0 && (route_tok_is(sql, tok, "function") ||
                           route_tok_is(sql, tok, "procedure")))
            st->routine = true;
    }
    if (!st->routine)
        return;
    if (route_tok_is(sql, tok, "begin") || (st->begin_depth > 0 && route_tok_is(sql, tok, "case")))
        st->begin_depth++;
    else if (route_tok_is(sql, tok, "end") && st->begin_depth > 0)
        st->begin_depth--;
}

int route_split(const char *sql, size_t len, route_split_cb cb, void *arg)
{
    size_t pos = 0, start = 0, end = 0;
    bool have_start = false, have_body = false;
    struct split_state st = {0};
    struct route_token tok;

    for (;;) {
        enum route_tok_type t = route_lex_next_raw(sql, len, &pos, &tok);
        bool at_end = t == ROUTE_TOK_EOF;
        if (at_end || (tok_punct(sql, &tok, ';') && st.paren == 0 && st.begin_depth == 0)) {
            if (have_body) {
                int rc = cb(sql, (struct route_span){start, end - start}, arg);
                if (rc != 0)
                    return rc;
            }
            if (at_end)
                return 0;
            have_start = have_body = false;
            memset(&st, 0, sizeof st);
            continue;
        }
        if (!have_start) {
            start = tok.start;
            have_start = true;
        }
        end = tok.start + tok.len;
        if (t != ROUTE_TOK_COMMENT) {
            have_body = true;
            split_track(sql, &tok, &st);
        }
    }
}

struct spans_arg {
    struct route_span *out;
    size_t cap;
    size_t n;
};

static int spans_cb(const char *sql, struct route_span stmt, void *arg)
{
    struct spans_arg *a = arg;
    (void)sql;
    if (a->n < a->cap)
        a->out[a->n] = stmt;
    a->n++;
    return 0;
}

size_t route_split_spans(const char *sql, size_t len, struct route_span *out, size_t cap)
{
    struct spans_arg a = {out, cap, 0};
    (void)route_split(sql, len, spans_cb, &a);
    return a.n;
}

/* ------------------------------------------------------------------------------------------ */

static size_t skip_spaces(const char *s, size_t len, size_t i)
{
    while (i < len && is_space((unsigned char)s[i]))
        i++;
    return i;
}

static bool is_hint_char(unsigned char c)
{
    return is_ident_char(c) || c == '-';
}

/* Reads "pglane ... KEY=VALUE ..." from a comment's text (KEY: "lane" or "tenant"). */
static bool hint_in_text(const char *s, size_t len, const char *key, const char **name, size_t *name_len)
{
    size_t keylen = strlen(key);
    size_t i = skip_spaces(s, len, 0);
    if (len - i < 6 || strncasecmp(s + i, "pglane", 6) != 0)
        return false;
    i += 6;
    if (i < len && !is_space((unsigned char)s[i]))
        return false;
    while ((i = skip_spaces(s, len, i)) < len) {
        size_t k = i;
        while (i < len && is_hint_char((unsigned char)s[i]))
            i++;
        size_t klen = i - k;
        i = skip_spaces(s, len, i);
        if (i >= len || s[i] != '=') {
            if (klen == 0)
                i++;
            continue;
        }
        i = skip_spaces(s, len, i + 1);
        size_t v = i;
        while (i < len && is_hint_char((unsigned char)s[i]))
            i++;
        if (klen == keylen && strncasecmp(s + k, key, keylen) == 0 && i > v) {
            *name = s + v;
            *name_len = i - v;
            return true;
        }
    }
    return false;
}

/* The text inside a comment token. */
static const char *comment_text(const char *sql, const struct route_token *tok, size_t *n_out)
{
    const char *s = sql + tok->start;
    size_t n = tok->len;
    if (n >= 2 && s[0] == '-') {
        s += 2;
        n -= 2;
    } else {
        s += 2;
        n -= 2;
        if (!tok->incomplete && n >= 2)
            n -= 2;
    }
    *n_out = n;
    return s;
}

bool route_comment_hint(const char *sql, const struct route_token *tok, const char **name,
                        size_t *name_len)
{
    size_t n;
    const char *s = comment_text(sql, tok, &n);

    return hint_in_text(s, n, "lane", name, name_len);
}

bool route_hint(const char *sql, size_t len, const char **name, size_t *name_len)
{
    size_t pos = 0;
    struct route_token tok;
    while (route_lex_next_raw(sql, len, &pos, &tok) != ROUTE_TOK_EOF)
        if (tok.type == ROUTE_TOK_COMMENT && route_comment_hint(sql, &tok, name, name_len))
            return true;
    return false;
}

bool route_tenant_hint(const char *sql, size_t len, const char **id, size_t *id_len)
{
    size_t pos = 0, n;
    struct route_token tok;

    while (route_lex_next_raw(sql, len, &pos, &tok) != ROUTE_TOK_EOF) {
        const char *s;

        if (tok.type != ROUTE_TOK_COMMENT)
            continue;
        s = comment_text(sql, &tok, &n);
        if (hint_in_text(s, n, "tenant", id, id_len))
            return true;
    }
    return false;
}
