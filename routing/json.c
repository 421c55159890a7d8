/* A small JSON reader for libpg_query's parse trees: the text is parsed into one array of
 * nodes (first child / next sibling), keys and strings stay pointers into the text. */
#include "routing/route.h"
#include "routing/internal.h"

#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 2000

struct parser {
    struct route_json *j;
    const char *s;
    size_t len;
    size_t i;
};

static void skip_ws(struct parser *p)
{
    while (p->i < p->len && (p->s[p->i] == ' ' || p->s[p->i] == '\n' || p->s[p->i] == '\t' ||
                             p->s[p->i] == '\r'))
        p->i++;
}

static int new_node(struct parser *p, uint8_t type)
{
    struct route_json *j = p->j;
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 1024;
        struct route_jnode *nodes = realloc(j->nodes, cap * sizeof *nodes);
        if (!nodes)
            return -1;
        j->nodes = nodes;
        j->cap = cap;
    }
    struct route_jnode *n = &j->nodes[j->n];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->child = n->next = -1;
    return (int)j->n++;
}

/* At an opening quote: sets [*off, *off + *len) to the raw contents and moves past the string. */
static int scan_string(struct parser *p, uint32_t *off, uint32_t *len)
{
    size_t start = ++p->i;
    for (;;) {
        const char *q = memchr(p->s + p->i, '"', p->len - p->i);
        if (!q)
            return -1;
        size_t at = (size_t)(q - p->s), bs = 0;
        while (at - bs > start && p->s[at - bs - 1] == '\\')
            bs++;
        p->i = at + 1;
        if (bs % 2 == 0)
            break;
    }
    *off = (uint32_t)start;
    *len = (uint32_t)(p->i - 1 - start);
    return 0;
}

static bool ends_scalar(char c)
{
    return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static int parse_value(struct parser *p, int depth);

/* Parses the members or elements of a container whose opening bracket is at p->i. */
static int parse_container(struct parser *p, int node, int depth)
{
    bool object = p->s[p->i] == '{';
    char close = object ? '}' : ']';
    int last = -1;
    p->i++;
    skip_ws(p);
    if (p->i < p->len && p->s[p->i] == close) {
        p->i++;
        return node;
    }
    for (;;) {
        uint32_t koff = 0, klen = 0;
        skip_ws(p);
        if (object) {
            if (p->i >= p->len || p->s[p->i] != '"' || scan_string(p, &koff, &klen) < 0)
                return -1;
            skip_ws(p);
            if (p->i >= p->len || p->s[p->i] != ':')
                return -1;
            p->i++;
        }
        int child = parse_value(p, depth + 1);
        if (child < 0)
            return -1;
        p->j->nodes[child].key_off = koff;
        p->j->nodes[child].key_len = klen;
        if (last < 0)
            p->j->nodes[node].child = child;
        else
            p->j->nodes[last].next = child;
        last = child;
        p->j->nodes[node].count++;
        skip_ws(p);
        if (p->i < p->len && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->len && p->s[p->i] == close) {
            p->i++;
            return node;
        }
        return -1;
    }
}

static int parse_value(struct parser *p, int depth)
{
    int node;
    if (depth > JSON_MAX_DEPTH)
        return -1;
    skip_ws(p);
    if (p->i >= p->len)
        return -1;
    char c = p->s[p->i];
    if (c == '{' || c == '[') {
        if ((node = new_node(p, c == '{' ? ROUTE_JSON_OBJECT : ROUTE_JSON_ARRAY)) < 0)
            return -1;
        return parse_container(p, node, depth);
    }
    if (c == '"') {
        if ((node = new_node(p, ROUTE_JSON_STRING)) < 0)
            return -1;
        struct route_jnode *n = &p->j->nodes[node];
        return scan_string(p, &n->val_off, &n->val_len) < 0 ? -1 : node;
    }
    uint8_t type = c == 't' ? ROUTE_JSON_TRUE : c == 'f' ? ROUTE_JSON_FALSE
                 : c == 'n' ? ROUTE_JSON_NULL : ROUTE_JSON_NUMBER;
    if ((node = new_node(p, type)) < 0)
        return -1;
    size_t start = p->i;
    while (p->i < p->len && !ends_scalar(p->s[p->i]))
        p->i++;
    if (p->i == start)
        return -1;
    p->j->nodes[node].val_off = (uint32_t)start;
    p->j->nodes[node].val_len = (uint32_t)(p->i - start);
    return node;
}

int route_json_parse(struct route_json *j, const char *text, size_t len)
{
    struct parser p = {j, text, len, 0};
    memset(j, 0, sizeof *j);
    j->text = text;
    if (len > UINT32_MAX || parse_value(&p, 0) != 0)
        return -1;
    return 0;
}

void route_json_free(struct route_json *j)
{
    free(j->nodes);
    j->nodes = NULL;
    j->n = j->cap = 0;
}

int route_json_get(const struct route_json *j, int obj, const char *key)
{
    if (obj < 0 || j->nodes[obj].type != ROUTE_JSON_OBJECT)
        return -1;
    size_t klen = strlen(key);
    for (int c = j->nodes[obj].child; c >= 0; c = j->nodes[c].next)
        if (j->nodes[c].key_len == klen && memcmp(j->text + j->nodes[c].key_off, key, klen) == 0)
            return c;
    return -1;
}

bool route_json_key_is(const struct route_json *j, int node, const char *key)
{
    size_t klen = strlen(key);
    return j->nodes[node].key_len == klen &&
           memcmp(j->text + j->nodes[node].key_off, key, klen) == 0;
}

bool route_json_str_is(const struct route_json *j, int node, const char *s)
{
    size_t n = strlen(s);
    return node >= 0 && j->nodes[node].type == ROUTE_JSON_STRING && j->nodes[node].val_len == n &&
           memcmp(j->text + j->nodes[node].val_off, s, n) == 0;
}

bool route_json_true(const struct route_json *j, int node)
{
    return node >= 0 && j->nodes[node].type == ROUTE_JSON_TRUE;
}

long route_json_int(const struct route_json *j, int node)
{
    if (node < 0 || j->nodes[node].type != ROUTE_JSON_NUMBER)
        return 0;
    return strtol(j->text + j->nodes[node].val_off, NULL, 10);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

size_t route_json_unescape(const struct route_json *j, int node, char *out, size_t cap,
                           bool *truncated)
{
    const char *s = j->text + j->nodes[node].val_off;
    size_t n = j->nodes[node].val_len, o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            c = s[++i];
            if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
            else if (c == 'r') c = '\r';
            else if (c == 'b') c = '\b';
            else if (c == 'f') c = '\f';
            else if (c == 'u' && i + 4 < n) {
                int v = 0;
                for (int k = 1; k <= 4; k++)
                    v = v * 16 + (hexval(s[i + k]) < 0 ? 0 : hexval(s[i + k]));
                i += 4;
                c = v > 0 && v < 0x80 ? (char)v : '?';
            }
        }
        if (o + 1 < cap)
            out[o++] = c;
        else
            *truncated = true;
    }
    if (cap > 0)
        out[o] = '\0';
    return o;
}
