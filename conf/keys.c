/*
 * The schema of [pglane] and [server.NAME], the generic setters every table uses, and the dispatch
 * of one key = value to its setter (with the "KEY: expected ..., got '...'" diagnostic).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/internal.h"

char *conf_dup(struct conf_loader *ld, const char *v)
{
    char *d = strdup(v);

    ld->oom |= d == NULL;
    return d;
}

/* A non-empty string, kept as written or as a path resolved against the config file's folder. */
static int set_text(struct conf_loader *ld, void *obj, const struct conf_keydef *kd, const char *value,
                    int path)
{
    char **f = CONF_FIELD(obj, kd, char *);

    if (*value == '\0')
        return -1;
    free(*f);
    *f = path ? conf_resolve_path(ld->file, value) : strdup(value);
    ld->oom |= *f == NULL;
    return 0;
}

int conf_set_str(SETTER_ARGS)
{
    (void)s;
    return set_text(ld, obj, kd, value, 0);
}

int conf_set_path(SETTER_ARGS)
{
    (void)s;
    return set_text(ld, obj, kd, value, 1);
}

int conf_set_int(SETTER_ARGS)
{
    long long v;

    (void)ld, (void)s;
    if (conf_parse_int(value, kd->min, kd->max, &v) < 0)
        return -1;
    *CONF_FIELD(obj, kd, int) = (int)v;
    return 0;
}

int conf_set_duration(SETTER_ARGS)
{
    (void)ld, (void)s;
    return conf_parse_duration(value, CONF_FIELD(obj, kd, int64_t));
}

int conf_set_bool(SETTER_ARGS)
{
    (void)ld, (void)s;
    return conf_parse_bool(value, CONF_FIELD(obj, kd, int));
}

_Static_assert(sizeof(enum conf_guard) == sizeof(int), "enums are stored through int *");
_Static_assert(sizeof(enum conf_pin) == sizeof(int), "enums are stored through int *");

int conf_set_enum(SETTER_ARGS)
{
    (void)ld, (void)s;
    return conf_parse_enum(value, kd->names, CONF_FIELD(obj, kd, int));
}

int conf_set_list(SETTER_ARGS)
{
    char ***f = CONF_FIELD(obj, kd, char **);
    int *n = (int *)(void *)((char *)obj + kd->off_n);

    (void)ld, (void)s;
    conf_free_list(*f, *n);
    *f = NULL;
    *n = 0;
    return conf_split_list(value, 0, f, n);
}

/* Stores a key's raw value; the name is resolved after the whole file is read. */
int conf_set_ref(SETTER_ARGS)
{
    (void)obj, (void)kd;
    if (*value == '\0')
        return -1;
    free(s->ref);
    s->ref = conf_dup(ld, value);
    s->ref_line = ld->lineno;
    return 0;
}

int conf_parse_items(struct conf_loader *ld, const char *value, size_t size, void **arr, int *count,
                     int (*parse)(struct conf_loader *ld, const char *item, void *elem))
{
    char **items;
    char *a;
    int n, rc = 0;

    if (conf_split_list(value, 0, &items, &n) < 0)
        return -1;
    *arr = a = calloc((size_t)n, size);
    ld->oom |= a == NULL;
    for (int i = 0; a != NULL && i < n && rc == 0; i++)
        if ((rc = parse(ld, items[i], a + (size_t)i * size)) == 0)
            (*count)++;
    conf_free_list(items, n);
    return rc;
}

static int parse_listen(struct conf_loader *ld, const char *item, void *elem)
{
    (void)ld;
    return conf_parse_hostport(item, elem);
}

static int set_listen(SETTER_ARGS)
{
    struct conf *c = obj;
    void *arr = NULL;
    int rc;

    (void)s, (void)kd;
    rc = conf_parse_items(ld, value, sizeof *c->listen, &arr, &c->nlisten, parse_listen);
    if (rc < 0 && arr == NULL)
        return rc;             /* the list did not split */
    c->listen = arr;
    if (rc < 0) {              /* keep nothing of a bad list (validate then adds the default) */
        for (int i = 0; i < c->nlisten; i++)
            free(c->listen[i].host);
        free(c->listen);
        c->listen = NULL;
        c->nlisten = 0;
    }
    return rc;
}

/* server_check_query: any text; empty (the default) sends an empty Query. */
static int set_check_query(SETTER_ARGS)
{
    struct conf *c = obj;

    (void)s, (void)kd;
    free(c->server_check_query);
    c->server_check_query = *value ? conf_dup(ld, value) : NULL;
    return 0;
}

/* auth_query: the user name reaches it only as the parameter $1 (never spliced into the text), so a
 * query without $1 cannot work. */
static int set_auth_query(SETTER_ARGS)
{
    if (strstr(value, "$1") == NULL)
        return -1;
    return conf_set_str(ld, s, obj, kd, value);
}

static int set_metrics(SETTER_ARGS)
{
    struct conf *c = obj;

    (void)s, (void)kd;
    if (conf_parse_hostport(value, &c->metrics) < 0)
        return -1;
    c->metrics_listen = conf_dup(ld, value);
    return 0;
}

static int set_tls_protocols(SETTER_ARGS)
{
    static const char *const names[] = {"TLSv1.2", "TLSv1.3", NULL};
    struct conf *c = obj;
    char **items;
    int n, which, rc = 0;
    unsigned mask = 0;

    (void)s, (void)kd;
    if (conf_split_list(value, 0, &items, &n) < 0)
        return -1;
    for (int i = 0; i < n && rc == 0; i++)
        if ((rc = conf_parse_enum(items[i], names, &which)) == 0)
            mask |= which == 0 ? CONF_TLS_V1_2 : CONF_TLS_V1_3;
    conf_free_list(items, n);
    if (rc < 0)
        return -1;
    c->tls_protocols = conf_dup(ld, value);
    c->tls_protocol_mask = mask;
    return 0;
}

static const char *const auth_names[] = {"trust", "md5", "scram-sha-256", NULL};
static const char *const pool_names[] = {"session", "transaction", NULL};
static const char *const log_names[] = {"error", "warning", "info", "debug", NULL};
static const char *const tls_names[] = {"disable", "allow", "require", NULL};
static const char *const stls_names[] = {"disable", "prefer", "require", "verify-ca",
                                         "verify-full", NULL};
static const char *const role_names[] = {"auto", "primary", "replica", NULL};

_Static_assert(sizeof(enum conf_server_role) == sizeof(int), "enums are stored through int *");

/* role: the value, and that it was given (a server with a role is health-checked). */
static int set_role(SETTER_ARGS)
{
    struct conf_server *cs = obj;

    (void)ld, (void)s;
    if (conf_parse_enum(value, role_names, CONF_FIELD(obj, kd, int)) < 0)
        return -1;
    cs->role_set = 1;
    return 0;
}

/* health_check_interval: 0 (off) or at least 10ms. */
static int set_health_interval(SETTER_ARGS)
{
    int64_t v;

    (void)ld, (void)s;
    if (conf_parse_duration(value, &v) < 0 || (v != 0 && v < 10))
        return -1;
    *CONF_FIELD(obj, kd, int64_t) = v;
    return 0;
}

/* workers: 1..CONF_WORKERS_MAX, or auto (the CPUs this process may run on, at most CONF_WORKERS_MAX). */
static int set_workers(SETTER_ARGS)
{
    char *end;
    long v;

    (void)ld, (void)s;
    if (strcmp(value, "auto") == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        v = n < 1 ? 1 : n > CONF_WORKERS_MAX ? CONF_WORKERS_MAX : n;
    } else {
        errno = 0;
        v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < 1 || v > CONF_WORKERS_MAX)
            return -1;
    }
    *CONF_FIELD(obj, kd, int) = (int)v;
    return 0;
}

static const struct conf_keydef pglane_keys[] = {
    KW("listen", set_listen, struct conf, listen,
       "a comma-separated list of host:port (IPv6 as [::1]:6432)"),
    KW("unix_socket_dir", conf_set_str, struct conf, unix_socket_dir, "a directory"),
    KENUM("auth_type", struct conf, auth_type, auth_names),
    KW("auth_file", conf_set_path, struct conf, auth_file, "a file name"),
    KENUM("pool_mode", struct conf, pool_mode, pool_names),
    KINT("max_client_conn", struct conf, max_client_conn, 1, 1000000),
    KW("default_lane", conf_set_str, struct conf, default_lane, "a lane name"),
    KDUR("server_idle_timeout", struct conf, server_idle_timeout_ms),
    KENUM("log_level", struct conf, log_level, log_names),
    KLIST("admin_users", struct conf, admin_users, nadmin_users,
          "a comma-separated list of user names"),
    KW("metrics_listen", set_metrics, struct conf, metrics_listen,
       "host:port (IPv6 as [::1]:9127)"),
    KDUR("log_slower_than", struct conf, log_slower_than_ms),
    KDUR("client_login_timeout", struct conf, client_login_timeout_ms),
    KINT("max_prepared_statements", struct conf, max_prepared_statements, 0, INT_MAX),
    KINT("stats_fingerprints", struct conf, stats_fingerprints, 1, INT_MAX),
    KINT("reserve_admin_connections", struct conf, reserve_admin_connections, 0, 1000000),
    KINT("max_prepared_statements_per_client", struct conf, max_prepared_statements_per_client, 0, INT_MAX),
    KDUR("pool_idle_timeout", struct conf, pool_idle_timeout_ms),
    KINT("max_pools", struct conf, max_pools, 1, INT_MAX),
    KINT("max_db_connections", struct conf, max_db_connections, 0, INT_MAX),
    KINT("max_user_connections", struct conf, max_user_connections, 0, INT_MAX),
    KBOOL("allow_trust", struct conf, allow_trust),
    KENUM("tls_mode", struct conf, tls_mode, tls_names),
    KW("tls_cert_file", conf_set_path, struct conf, tls_cert_file, "a file name"),
    KW("tls_key_file", conf_set_path, struct conf, tls_key_file, "a file name"),
    KW("tls_ca_file", conf_set_path, struct conf, tls_ca_file, "a file name"),
    KW("tls_protocols", set_tls_protocols, struct conf, tls_protocols,
       "a comma-separated list of TLSv1.2 and TLSv1.3"),
    KDUR("client_idle_timeout", struct conf, client_idle_timeout_ms),
    KDUR("idle_transaction_timeout", struct conf, idle_transaction_timeout_ms),
    KDUR("server_check_delay", struct conf, server_check_delay_ms),
    KW("server_check_query", set_check_query, struct conf, server_check_query, "an SQL query"),
    KDUR("server_login_retry", struct conf, server_login_retry_ms),
    KW("auth_user", conf_set_str, struct conf, auth_user, "a user name"),
    KW("auth_query", set_auth_query, struct conf, auth_query,
       "an SQL query that takes the user name as $1 and returns (user name, secret)"),
    KW("auth_dbname", conf_set_str, struct conf, auth_dbname, "a database name"),
    KDUR("auth_cache_ttl", struct conf, auth_cache_ttl_ms),
    KBOOL("so_reuseport", struct conf, so_reuseport),
    KBOOL("tcp_keepalive", struct conf, tcp_keepalive),
    KDUR("tcp_keepidle", struct conf, tcp_keepidle_ms),
    KDUR("tcp_keepintvl", struct conf, tcp_keepintvl_ms),
    KINT("tcp_keepcnt", struct conf, tcp_keepcnt, 0, 127),
    KDUR("tcp_user_timeout", struct conf, tcp_user_timeout_ms),
    KINT("peer_id", struct conf, peer_id, 0, CONF_PEER_ID_MAX),
    KDUR("client_drain_timeout", struct conf, client_drain_timeout_ms),
    KW("health_check_interval", set_health_interval, struct conf, health_check_interval_ms,
       "a duration of at least 10ms, or 0 (off)"),
    KINT("health_check_failures", struct conf, health_check_failures, 1, 1000),
    KW("workers", set_workers, struct conf, workers, "an integer from 1 to 64, or auto"),
    KEND,
};

static const struct conf_keydef server_keys[] = {
    KW("host", conf_set_str, struct conf_server, host, "a host name, address or socket directory"),
    KINT("port", struct conf_server, port, 1, 65535),
    KENUM("server_tls_mode", struct conf_server, tls_mode, stls_names),
    KW("server_tls_ca_file", conf_set_path, struct conf_server, tls_ca_file, "a file name"),
    KINT("max_connections", struct conf_server, max_connections, 0, INT_MAX),
    KW("role", set_role, struct conf_server, role, "primary, replica or auto"),
    KEND,
};

static void describe_ints(const struct conf_keydef *kd, char *buf, size_t len)
{
    if (kd->max == INT_MAX)
        snprintf(buf, len, "an integer >= %lld", kd->min);
    else
        snprintf(buf, len, "an integer from %lld to %lld", kd->min, kd->max);
}

static void describe_enum(const char *const *names, char *buf, size_t len)
{
    size_t n = 0;
    int count = 0;

    while (names[count] != NULL)
        count++;
    buf[0] = '\0';
    for (int i = 0; i < count && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i == 0 ? "" : i == count - 1 ? " or " : ", ",
                              names[i]);
}

static void bad_value(struct conf_loader *ld, const struct conf_keydef *kd, const char *key,
                      const char *value)
{
    char what[256];

    if (kd->what != NULL)
        snprintf(what, sizeof what, "%s", kd->what);
    else if (kd->names != NULL)
        describe_enum(kd->names, what, sizeof what);
    else
        describe_ints(kd, what, sizeof what);
    conf_errf(ld, ld->lineno, "%s: expected %s, got '%s'", key, what, value);
}

static void *section_object(struct conf_loader *ld, const struct conf_sect *s)
{
    switch (s->kind) {
    case SECT_PGLANE:
    case SECT_PEERS:
        return ld->c;
    case SECT_SERVER:
        return &ld->c->servers[s->index];
    case SECT_LANE:
        return &ld->c->lanes[s->index];
    case SECT_ROUTE:
        return &ld->c->routes[s->index];
    }
    return NULL;
}

static const struct conf_keydef *section_keys(const struct conf_sect *s)
{
    switch (s->kind) {
    case SECT_PGLANE:
        return pglane_keys;
    case SECT_SERVER:
        return server_keys;
    case SECT_LANE:
        return conf_lane_keys;
    case SECT_ROUTE:
        return conf_route_keys;
    case SECT_PEERS:
        break;
    }
    return NULL;
}

void conf_apply_key(struct conf_loader *ld, struct conf_sect *s, const char *key, const char *value)
{
    void *obj = section_object(ld, s);
    const struct conf_keydef *kd = section_keys(s);

    if (s->kind == SECT_PEERS) {
        conf_peer_set(ld, key, value);
        return;
    }
    if (s->kind == SECT_LANE && strncmp(key, "set.", 4) == 0) {
        conf_lane_set_guc(ld, s, obj, key, value);
        return;
    }
    if (s->kind == SECT_LANE && strncmp(key, "tenant_weight.", 14) == 0) {
        conf_lane_set_tenant_weight(ld, s, obj, key, value);
        return;
    }
    for (; kd->name != NULL; kd++) {
        if (strcmp(kd->name, key) != 0)
            continue;
        if (kd->set(ld, s, obj, kd, value) == -1)
            bad_value(ld, kd, key, value);
        return;
    }
    conf_errf(ld, ld->lineno, "unknown key '%s' in [%s]", key, s->header);
}
