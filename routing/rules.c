/* Rule matching: compiled rules (copied strings, CIDRs, a kind bitmask, PCRE2 regexes compiled
 * once with JIT where available) tried in order; first match wins. A built rule set is
 * immutable, so threads may share it: matching allocates its own PCRE2 match data. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "routing/route.h"
#include "routing/internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGEX_MATCH_LIMIT 1000000

struct strlist {
    char **items;
    size_t n;
};

struct rule {
    unsigned crit;
    char *name;
    char *lane;
    struct strlist databases, users, applications, tables;
    struct route_cidr *cidrs;
    size_t n_cidrs;
    uint32_t kinds;            /* bit per enum route_kind */
    pcre2_code *re;
    uint32_t slower_than_ms;
};

struct route_rules {
    size_t n;
    unsigned crit;
    pcre2_match_context *mctx;
    struct rule rules[];
};

bool route_glob_match(const char *p, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == '?' || *p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

int route_cidr_parse(const char *text, struct route_cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, text, n);
    buf[n] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, out->addr) == 1)
        out->family = AF_INET6;
    else
        return -1;
    unsigned max = out->family == AF_INET ? 32 : 128;
    out->prefix = max;
    if (slash) {
        char *end;
        const char *d = slash + 1;
        if (*d < '0' || *d > '9')
            return -1;
        unsigned long v = strtoul(d, &end, 10);
        if (*end != '\0' || v > max)
            return -1;
        out->prefix = (unsigned)v;
    }
    return 0;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

/* The client's address as (family, bytes); an IPv4-mapped IPv6 address counts as IPv4. */
static bool sockaddr_bytes(const struct sockaddr *sa, int *family, uint8_t addr[16])
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        *family = AF_INET;
        memcpy(addr, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(in6->sin6_addr.s6_addr, mapped, 12) == 0) {
            *family = AF_INET;
            memcpy(addr, in6->sin6_addr.s6_addr + 12, 4);
        } else {
            *family = AF_INET6;
            memcpy(addr, in6->sin6_addr.s6_addr, 16);
        }
        return true;
    }
    return false;
}

static bool cidr_match(const struct rule *r, const struct sockaddr *sa)
{
    int family;
    uint8_t addr[16];
    if (!sa || !sockaddr_bytes(sa, &family, addr))
        return false;
    for (size_t i = 0; i < r->n_cidrs; i++)
        if (r->cidrs[i].family == family && prefix_equal(addr, r->cidrs[i].addr, r->cidrs[i].prefix))
            return true;
    return false;
}

static bool glob_any(const struct strlist *l, const char *s)
{
    if (!s)
        return false;
    for (size_t i = 0; i < l->n; i++)
        if (route_glob_match(l->items[i], s))
            return true;
    return false;
}

/* "name" matches a relation in any schema; "schema.name" only that one. */
static bool table_any(const struct strlist *l, const struct route_class *c)
{
    for (int r = 0; r < c->n_relations; r++) {
        const char *rel = c->relations[r];
        const char *dot = strrchr(rel, '.');
        for (size_t i = 0; i < l->n; i++) {
            const char *t = l->items[i];
            if (strcmp(t, rel) == 0 || (!strchr(t, '.') && dot && strcmp(t, dot + 1) == 0))
                return true;
        }
    }
    return false;
}

static bool regex_match(const struct route_rules *rs, const struct rule *r, const char *sql,
                        size_t len)
{
    if (!sql)
        return false;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        return false;
    int rc = pcre2_match(r->re, (PCRE2_SPTR)sql, len, 0, 0, md, rs->mctx);
    pcre2_match_data_free(md);
    return rc >= 0;   /* no match, match limit and errors all count as no match */
}

static bool identity_match(const struct rule *r, const struct route_facts *f)
{
    return (!(r->crit & ROUTE_CRIT_DATABASE) || glob_any(&r->databases, f->database)) &&
           (!(r->crit & ROUTE_CRIT_USER) || glob_any(&r->users, f->user)) &&
           (!(r->crit & ROUTE_CRIT_APPLICATION) || glob_any(&r->applications, f->application_name)) &&
           (!(r->crit & ROUTE_CRIT_CLIENT_ADDR) || cidr_match(r, f->client_addr));
}

static bool statement_match(const struct route_rules *rs, const struct rule *r,
                            const struct route_facts *f)
{
    if ((r->crit & (ROUTE_CRIT_KIND | ROUTE_CRIT_TABLES)) && !f->cls)
        return false;
    if ((r->crit & ROUTE_CRIT_KIND) && !(r->kinds & (1u << f->cls->kind)))
        return false;
    if ((r->crit & ROUTE_CRIT_HINT) &&
        !(f->hint && strlen(r->lane) == f->hint_len && strncasecmp(r->lane, f->hint, f->hint_len) == 0))
        return false;
    if ((r->crit & ROUTE_CRIT_SLOWER_THAN) &&
        !(f->p95_us >= 0 && (uint64_t)f->p95_us > (uint64_t)r->slower_than_ms * 1000))
        return false;
    if ((r->crit & ROUTE_CRIT_TABLES) && !table_any(&r->tables, f->cls))
        return false;
    if ((r->crit & ROUTE_CRIT_SQL) && !regex_match(rs, r, f->sql, f->sql_len))
        return false;
    return true;
}

int route_rules_match(const struct route_rules *rs, const struct route_facts *f)
{
    for (size_t i = 0; i < rs->n; i++)
        if (identity_match(&rs->rules[i], f) && statement_match(rs, &rs->rules[i], f))
            return (int)i;
    return -1;
}

int route_rules_match_identity(const struct route_rules *rs, const struct route_facts *f)
{
    for (size_t i = 0; i < rs->n; i++) {
        if (!identity_match(&rs->rules[i], f))
            continue;
        return rs->rules[i].crit & ROUTE_CRIT_STATEMENT ? ROUTE_NEED_STATEMENT : (int)i;
    }
    return -1;
}

size_t route_rules_count(const struct route_rules *rs)
{
    return rs->n;
}

unsigned route_rule_criteria(const struct route_rules *rs, size_t i)
{
    return i < rs->n ? rs->rules[i].crit : 0;
}

unsigned route_rules_criteria(const struct route_rules *rs)
{
    return rs->crit;
}

bool route_rules_need_statement(const struct route_rules *rs)
{
    return (rs->crit & ROUTE_CRIT_STATEMENT) != 0;
}

bool route_rules_fingerprint_cacheable(const struct route_rules *rs)
{
    return (rs->crit & ROUTE_CRIT_SLOWER_THAN) == 0;
}

/* ------------------------------------------------------------------------------------------ */

static void free_list(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
}

void route_rules_free(struct route_rules *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->n; i++) {
        struct rule *r = &rs->rules[i];
        free(r->name);
        free(r->lane);
        free_list(&r->databases);
        free_list(&r->users);
        free_list(&r->applications);
        free_list(&r->tables);
        free(r->cidrs);
        pcre2_code_free(r->re);
    }
    pcre2_match_context_free(rs->mctx);
    free(rs);
}

static int copy_list(struct strlist *l, const char *const *src, size_t n, bool lower)
{
    if (n == 0)
        return 0;
    if (!src || !(l->items = calloc(n, sizeof *l->items)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!src[i] || !(l->items[i] = strdup(src[i])))
            return -1;
        l->n++;
        for (char *c = l->items[i]; lower && *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c + 32);
    }
    return 0;
}

static void set_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static int compile_regex(struct rule *r, const struct route_rule_desc *d, const char *name,
                         char *err, size_t err_cap)
{
    int code = 0;
    PCRE2_SIZE off = 0;
    if (d->sql_code)   /* compiled by the caller already: a copy, not a second compilation */
        r->re = pcre2_code_copy(d->sql_code);
    else
        r->re = pcre2_compile((PCRE2_SPTR)d->sql, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    if (!r->re && d->sql_code) {
        set_err(err, err_cap, "route %s: out of memory", name);
        return -1;
    }
    if (!r->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        set_err(err, err_cap, "route %s: sql: %s at offset %zu", name, (const char *)msg,
                (size_t)off);
        return -1;
    }
    (void)pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE);   /* the interpreter runs without JIT */
    return 0;
}

static int build_rule(struct rule *r, const struct route_rule_desc *d, char *err, size_t err_cap)
{
    const char *name = d->name ? d->name : "?";
    if (!(r->name = strdup(name)) || !(r->lane = strdup(d->lane ? d->lane : "")))
        goto nomem;
    if (copy_list(&r->databases, d->databases, d->n_databases, false) < 0 ||
        copy_list(&r->users, d->users, d->n_users, false) < 0 ||
        copy_list(&r->applications, d->applications, d->n_applications, false) < 0 ||
        copy_list(&r->tables, d->tables, d->n_tables, true) < 0)
        goto nomem;
    r->crit |= d->n_databases ? ROUTE_CRIT_DATABASE : 0;
    r->crit |= d->n_users ? ROUTE_CRIT_USER : 0;
    r->crit |= d->n_applications ? ROUTE_CRIT_APPLICATION : 0;
    r->crit |= d->n_tables ? ROUTE_CRIT_TABLES : 0;
    if (d->n_cidrs) {
        if (!d->cidrs || !(r->cidrs = calloc(d->n_cidrs, sizeof *r->cidrs)))
            goto nomem;
        for (size_t i = 0; i < d->n_cidrs; i++) {
            const struct route_cidr *c = &d->cidrs[i];
            if ((c->family != AF_INET && c->family != AF_INET6) ||
                c->prefix > (c->family == AF_INET ? 32u : 128u)) {
                set_err(err, err_cap, "route %s: client_addr: invalid CIDR", name);
                return -1;
            }
            r->cidrs[i] = *c;
        }
        r->n_cidrs = d->n_cidrs;
        r->crit |= ROUTE_CRIT_CLIENT_ADDR;
    }
    for (size_t i = 0; i < d->n_kinds; i++) {
        if ((unsigned)d->kinds[i] >= ROUTE_KIND_COUNT) {
            set_err(err, err_cap, "route %s: kind: invalid value %d", name, (int)d->kinds[i]);
            return -1;
        }
        r->kinds |= 1u << d->kinds[i];
        r->crit |= ROUTE_CRIT_KIND;
    }
    if (d->sql) {
        if (compile_regex(r, d, name, err, err_cap) < 0)
            return -1;
        r->crit |= ROUTE_CRIT_SQL;
    }
    if (d->hint) {
        if (!d->lane || !d->lane[0]) {
            set_err(err, err_cap, "route %s: hint needs the rule's lane", name);
            return -1;
        }
        r->crit |= ROUTE_CRIT_HINT;
    }
    if (d->slower_than_ms) {
        r->slower_than_ms = d->slower_than_ms;
        r->crit |= ROUTE_CRIT_SLOWER_THAN;
    }
    return 0;
nomem:
    set_err(err, err_cap, "route %s: out of memory", name);
    return -1;
}

struct route_rules *route_rules_new(const struct route_rule_desc *descs, size_t n, char *err,
                                    size_t err_cap)
{
    struct route_rules *rs = calloc(1, sizeof *rs + n * sizeof rs->rules[0]);
    if (!rs) {
        set_err(err, err_cap, "out of memory");
        return NULL;
    }
    if (!(rs->mctx = pcre2_match_context_create(NULL))) {
        set_err(err, err_cap, "out of memory");
        goto fail;
    }
    pcre2_set_match_limit(rs->mctx, REGEX_MATCH_LIMIT);
    for (size_t i = 0; i < n; i++) {
        rs->n = i + 1;   /* so that route_rules_free releases a partly built rule */
        if (build_rule(&rs->rules[i], &descs[i], err, err_cap) < 0)
            goto fail;
        rs->crit |= rs->rules[i].crit;
    }
    rs->n = n;
    return rs;
fail:
    route_rules_free(rs);
    return NULL;
}
