/*
 * The schema of [route.NAME]: criteria lists (names, globs, CIDRs, statement kinds, tables), the
 * sql regex (checked by compiling it with PCRE2), hint and slower_than.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <stddef.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/internal.h"
#include "routing/kinds.h"

static const char *const kind_names[] = {
#define KIND_NAME(name, text) text,
    ROUTE_KINDS(KIND_NAME)
#undef KIND_NAME
    NULL};

#define CIDR_WHAT "an address or CIDR such as 10.0.0.0/8 or ::1"
#define TABLE_WHAT "a table name such as events or public.\"Reports\""

/* Validates each item of a list with check(), which may rewrite it in place; reports the first
 * bad item itself. Returns 0, -1 (empty item: the generic message) or -2. */
static int each_item(struct conf_loader *ld, const char *key, char **items, int n,
                     int (*check)(char **item), const char *what)
{
    for (int i = 0; i < n; i++) {
        if (check(&items[i]) < 0) {
            conf_errf(ld, ld->lineno, "%s: expected %s, got '%s'", key, what, items[i]);
            return -2;
        }
    }
    return 0;
}

static int check_kind(char **item)
{
    int which;

    if (conf_parse_enum(*item, kind_names, &which) < 0)
        return -1;
    for (char *p = *item; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}

static int check_table(char **item)
{
    char *norm;

    if (conf_normalize_table(*item, &norm) < 0)
        return -1;
    free(*item);
    *item = norm;
    return 0;
}

static int set_checked_list(SETTER_ARGS, int quoted, int (*check)(char **), const char *what)
{
    char ***f = CONF_FIELD(obj, kd, char **);
    int *n = (int *)(void *)((char *)obj + kd->off_n);
    int rc;

    (void)s;
    if (conf_split_list(value, quoted, f, n) < 0)
        return -1;
    rc = each_item(ld, kd->name, *f, *n, check, what);
    if (rc < 0) {
        conf_free_list(*f, *n);
        *f = NULL;
        *n = 0;
    }
    return rc;
}

/* "one of select, insert, ... utility or other", from kind_names. */
static const char *kind_what(void)
{
    static _Thread_local char what[256];   /* per thread: workers load configurations at once */

    if (what[0] == '\0') {
        strcpy(what, "one of ");
        for (int i = 0; kind_names[i]; i++) {
            if (i > 0)
                strcat(what, kind_names[i + 1] ? ", " : " or ");
            strcat(what, kind_names[i]);
        }
    }
    return what;
}

static int set_kinds(SETTER_ARGS)
{
    return set_checked_list(ld, s, obj, kd, value, 0, check_kind, kind_what());
}

static int set_tables(SETTER_ARGS)
{
    return set_checked_list(ld, s, obj, kd, value, 1, check_table, TABLE_WHAT);
}

static int parse_cidr(struct conf_loader *ld, const char *item, void *elem)
{
    struct conf_cidr *c = elem;

    if (conf_parse_cidr(item, c->addr, &c->family, &c->prefix) == 0)
        return 0;
    conf_errf(ld, ld->lineno, "client_addr: expected %s, got '%s'", CIDR_WHAT, item);
    return -2;
}

static int set_cidrs(SETTER_ARGS)
{
    struct conf_route *r = obj;
    void *arr = NULL;
    int rc;

    (void)s, (void)kd;
    rc = conf_parse_items(ld, value, sizeof *r->cidrs, &arr, &r->ncidrs, parse_cidr);
    if (rc < 0 && arr == NULL)
        return rc;             /* the list did not split */
    r->cidrs = arr;
    return rc;
}

static int set_sql(SETTER_ARGS)
{
    struct conf_route *r = obj;
    int err;
    PCRE2_SIZE off;
    PCRE2_UCHAR msg[256];
    pcre2_code *re;

    (void)s, (void)kd;
    if (*value == '\0')
        return -1;
    re = pcre2_compile((PCRE2_SPTR)value, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    if (re == NULL) {
        if (pcre2_get_error_message(err, msg, sizeof msg) < 0)
            strcpy((char *)msg, "unknown error");
        conf_errf(ld, ld->lineno, "sql: invalid regular expression at offset %zu: %s", (size_t)off,
                  (char *)msg);
        return -2;
    }
    r->sql_re = re;
    r->sql = conf_dup(ld, value);
    return 0;
}

static const char *const read_only_names[] = {"grammar", "trust", NULL};

#define KLISTF(name, fn, st, f, nf, what) {name, fn, offsetof(st, f), offsetof(st, nf), 0, 0, NULL, what}

const struct conf_keydef conf_route_keys[] = {
    KW("lane", conf_set_ref, struct conf_route, lane, "a lane name"),
    KLIST("database", struct conf_route, databases, ndatabases,
          "a comma-separated list of database names"),
    KLIST("user", struct conf_route, users, nusers, "a comma-separated list of user names"),
    KLIST("application_name", struct conf_route, app_globs, napp_globs,
          "a comma-separated list of names or globs (* and ?)"),
    KW("client_addr", set_cidrs, struct conf_route, cidrs,
       "a comma-separated list of addresses or CIDRs such as 10.0.0.0/8 or ::1"),
    KLISTF("kind", set_kinds, struct conf_route, kinds, nkinds,
           "a comma-separated list of statement kinds"),
    KLISTF("tables", set_tables, struct conf_route, tables, ntables,
           "a comma-separated list of table names"),
    KW("sql", set_sql, struct conf_route, sql, "a regular expression"),
    KBOOL("hint", struct conf_route, hint),
    KENUM("read_only", struct conf_route, read_only_trust, read_only_names),
    KDUR("slower_than", struct conf_route, slower_than_ms),
    KEND,
};
