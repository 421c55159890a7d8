/*
 * Value parsers of conf/: integers, booleans, enums, durations, memory sizes, host:port, CIDR,
 * comma lists and table names. Pure functions returning 0 or -1; callers word the diagnostics.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "conf/internal.h"

/* Parses a run of decimal digits at *s into *v (no sign); advances *s. -1 on none or overflow. */
static int parse_digits(const char **s, long long *v)
{
    const char *p = *s;
    long long n = 0;

    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (n > (LLONG_MAX - (*p - '0')) / 10)
            return -1;
        n = n * 10 + (*p - '0');
    }
    *s = p;
    *v = n;
    return 0;
}

int conf_parse_int(const char *s, long long min, long long max, long long *out)
{
    int neg = (*s == '-');
    long long v;

    if (neg)
        s++;
    if (parse_digits(&s, &v) < 0 || *s != '\0')
        return -1;
    if (neg)
        v = -v;
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int conf_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* names is NULL-terminated; the index of the match (case-insensitive) goes to *out. */
int conf_parse_enum(const char *s, const char *const *names, int *out)
{
    for (int i = 0; names[i] != NULL; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

static const struct {
    const char *unit;
    int64_t us;                /* microseconds per unit */
} duration_units[] = {
    {"us", 1}, {"ms", 1000}, {"s", 1000000}, {"min", 60000000},
    {"h", 3600000000LL}, {"d", 86400000000LL},
};

int conf_parse_duration(const char *s, int64_t *ms)
{
    long long n;
    const char *p = s;

    if (parse_digits(&p, &n) < 0)
        return -1;
    if (*p == '\0') {
        if (n != 0)
            return -1;         /* a bare number must be 0: "30" could mean seconds or ms */
        *ms = 0;
        return 0;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
        int64_t us = duration_units[i].us;

        if (strcmp(p, duration_units[i].unit) != 0)
            continue;
        if (n > INT64_MAX / us)
            return -1;
        n *= us;
        *ms = n / 1000 + (n % 1000 != 0);   /* microseconds round up to whole milliseconds */
        return 0;
    }
    return -1;
}

/* PostgreSQL memory size: digits with an optional kB, MB, GB or TB (spaces allowed before it). */
int conf_parse_memory(const char *s)
{
    static const char *const units[] = {"", "kB", "MB", "GB", "TB"};
    long long n;

    if (parse_digits(&s, &n) < 0 || n > INT_MAX)
        return -1;
    while (*s == ' ' || *s == '\t')
        s++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(s, units[i]) == 0)
            return 0;
    return -1;
}

/* [A-Za-z_][A-Za-z0-9_.]* */
int conf_valid_guc_name(const char *s)
{
    if (!isalpha((unsigned char)*s) && *s != '_')
        return 0;
    for (s++; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.')
            return 0;
    return 1;
}

/* Names of servers, lanes and routes: [A-Za-z0-9_-]+, so they read well in SHOW output and metrics. */
int conf_valid_section_name(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return 0;
    return 1;
}

static int parse_port(const char *s, int *port)
{
    long long v;

    if (conf_parse_int(s, 1, 65535, &v) < 0)
        return -1;
    *port = (int)v;
    return 0;
}

/* "host:port" or "[v6addr]:port"; out->host is allocated. */
int conf_parse_hostport(const char *s, struct conf_listen *out)
{
    const char *colon, *host = s;
    size_t hlen;
    char *h;
    unsigned char tmp[16];

    if (*s == '[') {
        const char *rb = strchr(s, ']');

        if (rb == NULL || rb[1] != ':')
            return -1;
        host = s + 1;
        hlen = (size_t)(rb - host);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen) != NULL)
            return -1;         /* an IPv6 address must be bracketed */
    }
    if (hlen == 0 || strcspn(host, " \t") < hlen || parse_port(colon + 1, &out->port) < 0)
        return -1;
    h = strndup(host, hlen);
    if (h == NULL)
        return -1;
    if (*s == '[' && inet_pton(AF_INET6, h, tmp) != 1) {
        free(h);
        return -1;
    }
    out->host = h;
    return 0;
}

static void mask_prefix(uint8_t *addr, int bytes, int prefix)
{
    for (int i = 0; i < bytes; i++) {
        int bits = prefix - i * 8;

        if (bits >= 8)
            continue;
        addr[i] &= bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
    }
}

/* "10.0.0.0/8", "::1", "192.168.1.5": network bytes, family, prefix; host bits are cleared. */
int conf_parse_cidr(const char *s, uint8_t addr[16], int *family, int *prefix)
{
    const char *slash = strchr(s, '/');
    char buf[64];
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    long long p;
    int max;

    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, buf, addr) == 1)
        *family = AF_INET;
    else if (inet_pton(AF_INET6, buf, addr) == 1)
        *family = AF_INET6;
    else
        return -1;
    max = *family == AF_INET ? 32 : 128;
    p = max;
    if (slash != NULL && (slash[1] == '-' || conf_parse_int(slash + 1, 0, max, &p) < 0))
        return -1;
    *prefix = (int)p;
    mask_prefix(addr, max / 8, *prefix);
    return 0;
}

void conf_free_list(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* End of one comma-separated item; with quoted, commas inside "..." do not split. */
static const char *item_end(const char *p, int quoted)
{
    int inq = 0;

    for (; *p; p++) {
        if (quoted && *p == '"')
            inq = !inq;
        else if (*p == ',' && !inq)
            break;
    }
    return p;
}

static char *trimmed_dup(const char *b, const char *e)
{
    while (b < e && isspace((unsigned char)*b))
        b++;
    while (e > b && isspace((unsigned char)e[-1]))
        e--;
    return strndup(b, (size_t)(e - b));
}

/* Splits "a, b ,c" into trimmed items. -1 on an empty item (or out of memory). */
int conf_split_list(const char *s, int quoted, char ***out, int *n)
{
    char **v = NULL, **nv;
    int cnt = 0;

    for (const char *p = s;; p++) {
        const char *e = item_end(p, quoted);
        char *item = trimmed_dup(p, e);

        nv = item ? realloc(v, (size_t)(cnt + 1) * sizeof *v) : NULL;
        if (nv == NULL || *item == '\0') {
            free(item);
            conf_free_list(nv ? nv : v, cnt);
            return -1;
        }
        v = nv;
        v[cnt++] = item;
        p = e;
        if (*p == '\0')
            break;
    }
    *out = v;
    *n = cnt;
    return 0;
}

/* One part of a table name: "Quoted" keeps case (and "" is a quote), bare is lowercased. */
static const char *table_part(const char *p, char *out, size_t *olen)
{
    if (*p != '"') {
        if (*p == '\0' || *p == '.')
            return NULL;
        for (; *p && *p != '.'; p++) {
            if (*p == '"' || isspace((unsigned char)*p))
                return NULL;
            out[(*olen)++] = (char)tolower((unsigned char)*p);
        }
        return p;
    }
    for (p++;; p++) {
        if (*p == '\0')
            return NULL;
        if (*p == '"' && p[1] != '"')
            return p + 1;
        if (*p == '"')
            p++;
        out[(*olen)++] = *p;
    }
}

/* "Public.Events" -> "public.events"; "\"MyTable\"" -> "MyTable"; at most schema.name... parts. */
int conf_normalize_table(const char *s, char **out)
{
    char *buf = malloc(strlen(s) + 1);
    size_t len = 0;
    const char *p = s;

    if (buf == NULL)
        return -1;
    for (;;) {
        size_t start = len;

        p = table_part(p, buf, &len);
        if (p == NULL || (*p != '\0' && *p != '.') || len == start) {
            free(buf);
            return -1;
        }
        if (*p == '\0')
            break;
        buf[len++] = *p++;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

/* A relative path is taken relative to the folder of `file`; the result is allocated. */
char *conf_resolve_path(const char *file, const char *path)
{
    const char *slash = strrchr(file, '/');
    char *r;

    if (path[0] == '/' || slash == NULL)
        return strdup(path);
    if (asprintf(&r, "%.*s/%s", (int)(slash - file), file, path) < 0)
        return NULL;
    return r;
}
