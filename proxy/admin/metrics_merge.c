/*
 * /metrics with several workers: each worker renders its own text (metrics_text.c, in its own thread)
 * and worker 0 merges them here into one exposition of the whole process, family by family.
 */
#include "proxy/admin/metrics_merge.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing/hash.h"

/*
 * The merge rule of every gauge metrics_text.c writes, and of the counters that are not summed. A
 * counter or histogram not listed is summed (each worker counts its own events: transactions, errors,
 * cancels, lookups, health checks and lock graph samples it sent itself). A gauge not listed takes the
 * first text's value (worker 0's), the safe reading of a value that does not add up.
 */
static const struct {
    const char *family;
    enum px_merge_rule rule;
} rules[] = {
    /* Things each worker holds or counts for itself: the process has the sum. */
    { "pglane_clients", PX_MERGE_SUM },
    { "pglane_servers", PX_MERGE_SUM },
    { "pglane_clients_waiting", PX_MERGE_SUM },
    { "pglane_pinned_clients", PX_MERGE_SUM },
    { "pglane_pools", PX_MERGE_MAX },                      /* every worker gives the process's keys */
    { "pglane_capped_server_connections", PX_MERGE_SUM },  /* each worker's own connections under the cap */
    { "pglane_tenant_server_seconds", PX_MERGE_SUM },      /* fair queuing is per worker: a tenant's share in */
    { "pglane_tenant_transactions", PX_MERGE_SUM },        /* each; a tenant in one worker's top and in */
    { "pglane_tenant_active", PX_MERGE_SUM },              /* another's (other) is split between the two */
    { "pglane_tenant_waiting", PX_MERGE_SUM },
    /* Maxima. */
    { "pglane_clients_longest_wait_seconds", PX_MERGE_MAX },
    /* Each worker quarantines the shapes its own clients ran: the same shape can be in several, so the
     * largest count is the nearest to the number of distinct shapes (a lower bound of it). */
    { "pglane_quarantined_shapes", PX_MERGE_MAX },
    /* Every worker reloads on SIGHUP and RELOAD: each counts the same reloads (a failure in one only
     * shows as the largest count). */
    { "pglane_reloads_total", PX_MERGE_MAX },
    /* Configuration, or a view every worker has of the same thing (its own health checks and lock
     * monitor of the same servers; PAUSE and RESUME reach every worker): worker 0's. */
    { "pglane_build_info", PX_MERGE_FIRST },
    { "pglane_lane_paused", PX_MERGE_FIRST },
    { "pglane_lane_effective_size", PX_MERGE_FIRST },
    { "pglane_monitor_servers", PX_MERGE_FIRST },
    { "pglane_server_up", PX_MERGE_FIRST },
    { "pglane_replica_lag_seconds", PX_MERGE_FIRST },
    { "pglane_replica_lag_bytes", PX_MERGE_FIRST },
    { "pglane_lane_server_state", PX_MERGE_FIRST },
};

enum px_merge_rule px_metrics_merge_rule(const char *name, const char *type)
{
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if (strcmp(rules[i].family, name) == 0)
            return rules[i].rule;
    if (type && (strcmp(type, "counter") == 0 || strcmp(type, "histogram") == 0 || strcmp(type, "summary") == 0))
        return PX_MERGE_SUM;
    return PX_MERGE_FIRST;
}

/* A sample's value: the text it came with, and as a number once it has been combined with another. */
struct value {
    const char *raw;
    size_t rawlen;
    int ok;                        /* raw is a number */
    int is_int;                    /* an integer (exact in i), else d */
    int expo;                      /* written with an exponent (or not finite) */
    int decimals;                  /* digits after the point, without an exponent */
    long long i;
    double d;
};

struct sample {
    const char *id;                /* everything before the value's space, in its text */
    size_t idlen;
    int fam;
    int next;                      /* the family's next sample, -1 */
    int merged;                    /* v was combined: printed from the number, not raw */
    struct value v;
};

struct family {
    char name[128];
    const char *help, *type;       /* their whole lines (without the newline), NULL until seen */
    size_t helplen, typelen;
    enum px_merge_rule rule;
    int first, last;               /* samples, -1 */
};

struct merge {
    struct family *fam;
    int nfam, capfam;
    struct sample *s;
    int ns, caps;
    int *slot;                     /* hash of sample ids: index + 1, 0 empty */
    size_t nslot;
};

static void parse_value(const char *p, size_t n, struct value *v)
{
    char buf[64], *end;
    const char *dot;

    memset(v, 0, sizeof(*v));
    v->raw = p;
    v->rawlen = n;
    if (n == 0 || n >= sizeof(buf))
        return;
    memcpy(buf, p, n);
    buf[n] = 0;
    if (strspn(buf + (buf[0] == '-'), "0123456789") == n - (buf[0] == '-') && n > (size_t)(buf[0] == '-')) {
        errno = 0;
        v->i = strtoll(buf, &end, 10);
        if (errno == 0 && *end == 0) {
            v->ok = v->is_int = 1;
            v->d = (double)v->i;
            return;
        }
    }
    v->d = strtod(buf, &end);
    if (*end != 0)
        return;
    v->ok = 1;
    v->expo = strpbrk(buf, "eEnNiI") != NULL;
    if (!v->expo && (dot = strchr(buf, '.')))
        v->decimals = (int)strlen(dot + 1);
}

static void sum_into(struct value *a, const struct value *b)
{
    long long r;

    if (a->is_int && b->is_int && !__builtin_add_overflow(a->i, b->i, &r)) {
        a->i = r;
        a->d = (double)r;
        return;
    }
    a->d += b->d;
    a->is_int = 0;
    a->expo |= b->expo;
    a->decimals = a->decimals > b->decimals ? a->decimals : b->decimals;
}

/* Another text's value of sample s, combined by its family's rule. */
static void combine(struct merge *m, struct sample *s, const char *raw, size_t len)
{
    struct value b;

    parse_value(raw, len, &b);
    if (!s->v.ok || !b.ok)
        return;                    /* not a number: the first text's stays */
    switch (m->fam[s->fam].rule) {
    case PX_MERGE_SUM:
        sum_into(&s->v, &b);
        s->merged = 1;
        break;
    case PX_MERGE_MAX:
        if (s->v.is_int && b.is_int ? b.i > s->v.i : b.d > s->v.d)
            s->v = b;              /* its own text is printed */
        break;
    case PX_MERGE_FIRST:
        break;
    }
}

static uint64_t id_hash(const char *id, size_t n)
{
    return route_fnv1a(ROUTE_FNV_OFFSET, id, n);
}

/* The slot of id: holding it, or the empty one where it would go. */
static int *find_slot(struct merge *m, const char *id, size_t n)
{
    size_t mask = m->nslot - 1, k = (size_t)id_hash(id, n) & mask;

    for (;; k = (k + 1) & mask) {
        int *sl = &m->slot[k];

        if (*sl == 0)
            return sl;
        if (m->s[*sl - 1].idlen == n && memcmp(m->s[*sl - 1].id, id, n) == 0)
            return sl;
    }
}

static int grow_slots(struct merge *m)
{
    size_t n = m->nslot ? m->nslot * 2 : 256;
    int *old = m->slot;
    size_t nold = m->nslot;

    if (!(m->slot = calloc(n, sizeof(*m->slot)))) {
        m->slot = old;
        return -1;
    }
    m->nslot = n;
    for (size_t k = 0; k < nold; k++)
        if (old[k])
            *find_slot(m, m->s[old[k] - 1].id, m->s[old[k] - 1].idlen) = old[k];
    free(old);
    return 0;
}

static int add_sample(struct merge *m, int fam, const char *id, size_t idlen, const char *raw, size_t rawlen)
{
    struct family *f = &m->fam[fam];
    struct sample *s;
    int *sl;

    if ((size_t)(m->ns + 1) * 2 > m->nslot && grow_slots(m) < 0)
        return -1;
    sl = find_slot(m, id, idlen);
    if (*sl) {
        combine(m, &m->s[*sl - 1], raw, rawlen);
        return 0;
    }
    if (m->ns == m->caps) {
        int cap = m->caps ? m->caps * 2 : 256;
        struct sample *ns = realloc(m->s, sizeof(*ns) * (size_t)cap);

        if (!ns)
            return -1;
        m->s = ns;
        m->caps = cap;
    }
    s = &m->s[m->ns];
    memset(s, 0, sizeof(*s));
    s->id = id;
    s->idlen = idlen;
    s->fam = fam;
    s->next = -1;
    parse_value(raw, rawlen, &s->v);
    if (f->last >= 0)
        m->s[f->last].next = m->ns;
    else
        f->first = m->ns;
    f->last = m->ns;
    *sl = ++m->ns;
    return 0;
}

/* The family called name (n bytes), made at the end if new: its index, or -1 without memory. */
static int family_of(struct merge *m, const char *name, size_t n)
{
    struct family *f;

    if (n >= sizeof(m->fam[0].name))
        n = sizeof(m->fam[0].name) - 1;
    for (int i = 0; i < m->nfam; i++)
        if (strncmp(m->fam[i].name, name, n) == 0 && m->fam[i].name[n] == 0)
            return i;
    if (m->nfam == m->capfam) {
        int cap = m->capfam ? m->capfam * 2 : 64;
        struct family *nf = realloc(m->fam, sizeof(*nf) * (size_t)cap);

        if (!nf)
            return -1;
        m->fam = nf;
        m->capfam = cap;
    }
    f = &m->fam[m->nfam];
    memset(f, 0, sizeof(*f));
    memcpy(f->name, name, n);
    f->first = f->last = -1;
    f->rule = px_metrics_merge_rule(f->name, NULL);
    return m->nfam++;
}

/* "# HELP name ..." or "# TYPE name type": the family it names (-1: another comment, or no memory). */
static int header_line(struct merge *m, const char *line, size_t len, int *err)
{
    int is_type = len > 7 && memcmp(line, "# TYPE ", 7) == 0;
    const char *name = line + 7, *end;
    struct family *f;
    int i;

    if (!is_type && !(len > 7 && memcmp(line, "# HELP ", 7) == 0))
        return -1;
    end = memchr(name, ' ', len - 7);
    if (!end)
        end = line + len;
    if ((i = family_of(m, name, (size_t)(end - name))) < 0) {
        *err = 1;
        return -1;
    }
    f = &m->fam[i];
    if (is_type && !f->type) {
        char type[32] = "";
        size_t tl = end < line + len ? (size_t)(line + len - end - 1) : 0;

        memcpy(type, end + 1, tl < sizeof(type) ? tl : sizeof(type) - 1);
        f->type = line;
        f->typelen = len;
        f->rule = px_metrics_merge_rule(f->name, type);
    } else if (!is_type && !f->help) {
        f->help = line;
        f->helplen = len;
    }
    return i;
}

static int merge_text(struct merge *m, const char *t, size_t len)
{
    int cur = -1, err = 0;

    for (size_t at = 0; at < len;) {
        const char *line = t + at, *nl = memchr(line, '\n', len - at), *sp;
        size_t ll = nl ? (size_t)(nl - line) : len - at;

        at += ll + 1;
        if (ll == 0)
            continue;
        if (line[0] == '#') {
            int f = header_line(m, line, ll, &err);

            if (err)
                return -1;
            if (f >= 0)
                cur = f;
            continue;
        }
        for (sp = line + ll - 1; sp > line && *sp != ' '; sp--)
            ;
        if (sp == line)
            continue;              /* no value: not a sample */
        if (cur < 0) {
            size_t nn = strcspn(line, "{ ");

            if ((cur = family_of(m, line, nn < ll ? nn : ll)) < 0)
                return -1;
        }
        if (add_sample(m, cur, line, (size_t)(sp - line), sp + 1, (size_t)(line + ll - sp - 1)) < 0)
            return -1;
    }
    return 0;
}

static void put_value(struct proto_buf *out, const struct sample *s)
{
    char buf[64];
    int n;

    if (!s->merged) {
        proto_put_bytes(out, s->v.raw, s->v.rawlen);
        return;
    }
    if (s->v.is_int)
        n = snprintf(buf, sizeof(buf), "%lld", s->v.i);
    else if (isnan(s->v.d))
        n = snprintf(buf, sizeof(buf), "NaN");
    else if (isinf(s->v.d))
        n = snprintf(buf, sizeof(buf), "%sInf", s->v.d > 0 ? "+" : "-");
    else if (s->v.expo)
        n = snprintf(buf, sizeof(buf), "%.15g", s->v.d);
    else
        n = snprintf(buf, sizeof(buf), "%.*f", s->v.decimals, s->v.d);
    proto_put_bytes(out, buf, n > 0 && (size_t)n < sizeof(buf) ? (size_t)n : 0);
}

static void put_line(struct proto_buf *out, const char *line, size_t len)
{
    proto_put_bytes(out, line, len);
    proto_put_u8(out, '\n');
}

int px_metrics_merge(const char *const *texts, const size_t *lens, int n, struct proto_buf *out)
{
    struct merge m = { 0 };
    int rc = 0;

    for (int i = 0; i < n && rc == 0; i++)
        if (texts[i])
            rc = merge_text(&m, texts[i], lens[i]);
    for (int i = 0; i < m.nfam; i++) {
        const struct family *f = &m.fam[i];

        if (f->help)
            put_line(out, f->help, f->helplen);
        if (f->type)
            put_line(out, f->type, f->typelen);
        for (int k = f->first; k >= 0; k = m.s[k].next) {
            proto_put_bytes(out, m.s[k].id, m.s[k].idlen);
            proto_put_u8(out, ' ');
            put_value(out, &m.s[k]);
            proto_put_u8(out, '\n');
        }
    }
    free(m.fam);
    free(m.s);
    free(m.slot);
    return rc < 0 || out->failed ? -1 : 0;
}
