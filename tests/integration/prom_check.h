/*
 * A strict checker of the Prometheus text exposition format 0.0.4, for tests (header-only: the
 * integration test rule links one test file and the harness). Checks: HELP/TYPE before a family's
 * samples and at most once; families contiguous; metric and label name syntax; label value escapes;
 * no duplicate label or series; float values; counters named *_total; histograms with _bucket{le}
 * series in increasing le order with non-decreasing counts, ending at +Inf equal to _count, and _sum.
 */
#ifndef PGLANE_TEST_PROM_CHECK_H
#define PGLANE_TEST_PROM_CHECK_H

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PC_MAX_FAMILIES 256
#define PC_MAX_SERIES 8192
#define PC_NAME 128
#define PC_KEY 640    /* a series: name, labels and le */
#define PC_LKEY 384   /* the labels of a sample without le */

struct pc_family {
    char name[PC_NAME];
    char type[64];
    int help, typed, samples;
};

struct pc_hist {                     /* one histogram series (labels without le) */
    char key[PC_KEY];
    double last_le, last_count, inf_count, count;
    int buckets, has_inf, has_sum, has_count;
};

struct pc_state {
    struct pc_family fam[PC_MAX_FAMILIES];
    int nfam, cur;                   /* cur: index of the family whose samples come now, or -1 */
    char (*series)[PC_KEY];
    int nseries;
    struct pc_hist *hist;
    int nhist;
    char *err;
    size_t errlen;
    int line;
};

static int pc_fail(struct pc_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int pc_fail(struct pc_state *s, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(s->err, s->errlen, "line %d: ", s->line);

    va_start(ap, fmt);
    if (n > 0 && (size_t)n < s->errlen)
        vsnprintf(s->err + n, s->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int pc_name_ok(const char *p, size_t n, int metric)
{
    if (n == 0 || !(isalpha((unsigned char)p[0]) || p[0] == '_' || (metric && p[0] == ':')))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)p[i]) || p[i] == '_' || (metric && p[i] == ':')))
            return 0;
    return 1;
}

static int pc_float(const char *v, double *out)
{
    char *end;

    if (strcmp(v, "+Inf") == 0 || strcmp(v, "Inf") == 0) {
        *out = INFINITY;
        return 0;
    }
    if (strcmp(v, "-Inf") == 0) {
        *out = -INFINITY;
        return 0;
    }
    if (strcmp(v, "NaN") == 0) {
        *out = NAN;
        return 0;
    }
    if (!*v || isspace((unsigned char)*v))
        return -1;
    *out = strtod(v, &end);
    return *end ? -1 : 0;
}

static struct pc_family *pc_family(struct pc_state *s, const char *name, int create)
{
    for (int i = 0; i < s->nfam; i++)
        if (strcmp(s->fam[i].name, name) == 0)
            return &s->fam[i];
    if (!create || s->nfam == PC_MAX_FAMILIES)
        return NULL;
    snprintf(s->fam[s->nfam].name, PC_NAME, "%s", name);
    return &s->fam[s->nfam++];
}

/* "# HELP name text" / "# TYPE name type": before the family's samples, once each. */
static int pc_meta(struct pc_state *s, const char *line)
{
    char kind[8], name[PC_NAME], rest[64] = "";
    struct pc_family *f;

    if (sscanf(line, "# %7s %127s %63s", kind, name, rest) < 2)
        return 0;                    /* a plain comment */
    if (strcmp(kind, "HELP") != 0 && strcmp(kind, "TYPE") != 0)
        return 0;
    if (!pc_name_ok(name, strlen(name), 1))
        return pc_fail(s, "bad metric name in %s: %s", kind, name);
    f = pc_family(s, name, 1);
    if (!f)
        return pc_fail(s, "too many families");
    if (f->samples)
        return pc_fail(s, "%s for %s after its samples", kind, name);
    if (strcmp(kind, "HELP") == 0) {
        if (f->help++)
            return pc_fail(s, "second HELP for %s", name);
        return 0;
    }
    if (f->typed++)
        return pc_fail(s, "second TYPE for %s", name);
    if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") && strcmp(rest, "summary") &&
        strcmp(rest, "untyped"))
        return pc_fail(s, "bad TYPE %s", rest);
    if (strcmp(rest, "counter") == 0 && (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total") != 0))
        return pc_fail(s, "counter %s is not named *_total", name);
    snprintf(f->type, sizeof f->type, "%s", rest);
    return 0;
}

/* Parses {a="x",b="y"} at *p into key (labels without le, for histograms) and *le. */
static int pc_labels(struct pc_state *s, const char **pp, char *key, size_t keycap, char *le, size_t lecap)
{
    const char *p = *pp;
    char names[16][PC_NAME];
    int nnames = 0;
    size_t k = 0;

    key[0] = le[0] = 0;
    if (*p != '{')
        return 0;
    p++;
    while (*p != '}') {
        const char *n0 = p;
        char value[256];
        size_t nv = 0;

        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        if (!pc_name_ok(n0, (size_t)(p - n0), 0) || (p - n0 >= 2 && n0[0] == '_' && n0[1] == '_'))
            return pc_fail(s, "bad label name");
        if (nnames == 16 || p - n0 >= PC_NAME)
            return pc_fail(s, "too many or too long labels");
        snprintf(names[nnames], PC_NAME, "%.*s", (int)(p - n0), n0);
        for (int i = 0; i < nnames; i++)
            if (strcmp(names[i], names[nnames]) == 0)
                return pc_fail(s, "duplicate label %s", names[i]);
        nnames++;
        if (p[0] != '=' || p[1] != '"')
            return pc_fail(s, "expected =\" after a label name");
        p += 2;
        while (*p != '"') {
            if (!*p || *p == '\n')
                return pc_fail(s, "unterminated label value");
            if (*p == '\\') {
                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                    return pc_fail(s, "bad escape in a label value");
                p++;
            }
            if (nv + 1 < sizeof value)
                value[nv++] = *p;
            p++;
        }
        value[nv] = 0;
        p++;
        if (strcmp(names[nnames - 1], "le") == 0) {
            if (nv >= lecap)
                return pc_fail(s, "le value too long");
            memcpy(le, value, nv + 1);
        }
        else
            k += (size_t)snprintf(key + k, k < keycap ? keycap - k : 0, "%s=%s,", names[nnames - 1], value);
        if (*p == ',')
            p++;
        else if (*p != '}')
            return pc_fail(s, "expected , or } in labels");
    }
    *pp = p + 1;
    return 0;
}

static struct pc_hist *pc_hist(struct pc_state *s, const char *key)
{
    for (int i = 0; i < s->nhist; i++)
        if (strcmp(s->hist[i].key, key) == 0)
            return &s->hist[i];
    if (s->nhist == PC_MAX_SERIES)
        return NULL;
    memset(&s->hist[s->nhist], 0, sizeof(s->hist[0]));
    snprintf(s->hist[s->nhist].key, PC_KEY, "%s", key);
    s->hist[s->nhist].last_le = -INFINITY;
    return &s->hist[s->nhist++];
}

static int pc_hist_sample(struct pc_state *s, const char *fam, const char *suffix, const char *key,
                          const char *le, double v)
{
    char hk[PC_KEY];
    struct pc_hist *h;
    double lev;

    snprintf(hk, sizeof hk, "%s{%s}", fam, key);
    if (!(h = pc_hist(s, hk)))
        return pc_fail(s, "too many histogram series");
    if (strcmp(suffix, "_sum") == 0) {
        h->has_sum = 1;
        return 0;
    }
    if (strcmp(suffix, "_count") == 0) {
        h->has_count = 1;
        h->count = v;
        return 0;
    }
    if (!*le || pc_float(le, &lev) < 0)
        return pc_fail(s, "bucket without a valid le");
    if (h->has_inf || lev <= h->last_le)
        return pc_fail(s, "buckets of %s not in increasing le order", hk);
    if (h->buckets && v < h->last_count)
        return pc_fail(s, "bucket counts of %s decrease", hk);
    h->last_le = lev;
    h->last_count = v;
    h->buckets++;
    if (isinf(lev)) {
        h->has_inf = 1;
        h->inf_count = v;
    }
    return 0;
}

/* Which family a sample belongs to, and the suffix for histograms. */
static struct pc_family *pc_owner(struct pc_state *s, const char *name, const char **suffix)
{
    static const char *const sfx[] = { "_bucket", "_sum", "_count" };
    struct pc_family *f = pc_family(s, name, 0);

    *suffix = "";
    if (f && strcmp(f->type, "histogram") != 0)
        return f;
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(name), m = strlen(sfx[i]);
        char base[PC_NAME];

        if (n <= m || strcmp(name + n - m, sfx[i]) != 0)
            continue;
        snprintf(base, sizeof base, "%.*s", (int)(n - m), name);
        f = pc_family(s, base, 0);
        if (f && (strcmp(f->type, "histogram") == 0 || (strcmp(f->type, "summary") == 0 && i > 0))) {
            *suffix = sfx[i];
            return f;
        }
    }
    return pc_family(s, name, 1);
}

static int pc_sample(struct pc_state *s, const char *line)
{
    const char *p = line, *suffix;
    char name[PC_NAME], key[PC_LKEY], le[64], series[PC_KEY], value[64];
    struct pc_family *f;
    double v;
    int idx;

    while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
        p++;
    if (!pc_name_ok(line, (size_t)(p - line), 1) || p - line >= PC_NAME)
        return pc_fail(s, "bad metric name");
    snprintf(name, sizeof name, "%.*s", (int)(p - line), line);
    if (pc_labels(s, &p, key, sizeof key, le, sizeof le) < 0)
        return -1;
    if (*p != ' ' || sscanf(p + 1, "%63s", value) != 1 || pc_float(value, &v) < 0)
        return pc_fail(s, "bad value for %s", name);
    p += 1 + strlen(value);
    if (*p == ' ') {                 /* optional timestamp: an integer */
        p++;
        if (*p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return pc_fail(s, "bad timestamp");
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p)
        return pc_fail(s, "trailing text after the value of %s", name);
    if (!(f = pc_owner(s, name, &suffix)))
        return pc_fail(s, "too many families");
    idx = (int)(f - s->fam);
    if (f->samples && s->cur != idx)
        return pc_fail(s, "samples of %s are not contiguous", f->name);
    s->cur = idx;
    f->samples++;
    if (strcmp(f->type, "counter") == 0 && v < 0)
        return pc_fail(s, "negative counter %s", name);
    snprintf(series, sizeof series, "%s{%s%s%s}", name, key, *le ? "le=" : "", le);
    for (int i = 0; i < s->nseries; i++)
        if (strcmp(s->series[i], series) == 0)
            return pc_fail(s, "duplicate series %s", series);
    if (s->nseries == PC_MAX_SERIES)
        return pc_fail(s, "too many series");
    snprintf(s->series[s->nseries++], PC_KEY, "%s", series);
    if (strcmp(f->type, "histogram") == 0)
        return *suffix ? pc_hist_sample(s, f->name, suffix, key, le, v)
                       : pc_fail(s, "histogram sample %s without _bucket/_sum/_count", name);
    return 0;
}

static int pc_finish(struct pc_state *s)
{
    for (int i = 0; i < s->nhist; i++) {
        const struct pc_hist *h = &s->hist[i];

        if (!h->has_inf)
            return pc_fail(s, "%s has no +Inf bucket", h->key);
        if (!h->has_count || !h->has_sum)
            return pc_fail(s, "%s lacks _count or _sum", h->key);
        if (h->inf_count != h->count)
            return pc_fail(s, "%s: +Inf bucket %g != _count %g", h->key, h->inf_count, h->count);
    }
    return 0;
}

/* 0 if text is valid exposition text, else -1 with a message in err. */
static int prom_check(const char *text, char *err, size_t errlen)
{
    struct pc_state *s = calloc(1, sizeof(*s));
    const char *p = text;
    char line[2048];
    int rc = 0;

    if (!s)
        return -1;
    s->series = calloc(PC_MAX_SERIES, sizeof(*s->series));
    s->hist = calloc(PC_MAX_SERIES, sizeof(*s->hist));
    s->err = err;
    s->errlen = errlen;
    s->cur = -1;
    if (!s->series || !s->hist)
        rc = -1;
    if (rc == 0 && *text && text[strlen(text) - 1] != '\n')
        rc = pc_fail(s, "text does not end with a newline");
    while (rc == 0 && *p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);

        s->line++;
        if (n >= sizeof line) {
            rc = pc_fail(s, "line too long");
            break;
        }
        memcpy(line, p, n);
        line[n] = 0;
        p += n + (eol ? 1 : 0);
        if (n == 0)
            continue;
        rc = line[0] == '#' ? pc_meta(s, line) : pc_sample(s, line);
    }
    if (rc == 0)
        rc = pc_finish(s);
    free(s->series);
    free(s->hist);
    free(s);
    return rc;
}

#endif
