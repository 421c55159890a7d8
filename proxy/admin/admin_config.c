/* Admin console: SHOW CONFIG, the running configuration as key/value rows. Passwords never appear:
 * the configuration holds none (they live in auth_file, whose path alone is shown). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proxy/admin/console.h"

static void kv(struct px_table *t, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void kv(struct px_table *t, const char *key, const char *fmt, ...)
{
    char v[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    px_table_cell(t, "%s", key);
    px_table_cell(t, "%s", v);
}

static const char *str(const char *s)
{
    return s ? s : "";
}

static void general(struct px_table *t, const struct conf *c)
{
    static const char *const auth[] = { "trust", "md5", "scram-sha-256" };
    static const char *const levels[] = { "error", "warning", "info", "debug" };
    static const char *const tls[] = { "disable", "allow", "require" };
    char listen[256] = "";
    size_t n = 0;

    for (int i = 0; i < c->nlisten && n < sizeof(listen); i++)
        n += (size_t)snprintf(listen + n, sizeof(listen) - n, "%s%s:%d", i ? ", " : "", c->listen[i].host,
                              c->listen[i].port);
    kv(t, "config_file", "%s", str(c->file));
    kv(t, "listen", "%s", listen);
    kv(t, "unix_socket_dir", "%s", str(c->unix_socket_dir));
    kv(t, "auth_type", "%s", auth[c->auth_type]);
    kv(t, "auth_file", "%s", str(c->auth_file));
    kv(t, "pool_mode", "%s", c->pool_mode == CONF_POOL_SESSION ? "session" : "transaction");
    kv(t, "max_client_conn", "%d", c->max_client_conn);
    kv(t, "default_lane", "%s", c->default_lane);
    kv(t, "server_idle_timeout", "%lldms", (long long)c->server_idle_timeout_ms);
    kv(t, "log_level", "%s", levels[c->log_level]);
    n = 0;
    listen[0] = 0;
    for (int i = 0; i < c->nadmin_users && n < sizeof(listen); i++)
        n += (size_t)snprintf(listen + n, sizeof(listen) - n, "%s%s", i ? ", " : "", c->admin_users[i]);
    kv(t, "admin_users", "%s", listen);
    kv(t, "metrics_listen", "%s", str(c->metrics_listen));
    kv(t, "log_slower_than", "%lldms", (long long)c->log_slower_than_ms);
    kv(t, "client_login_timeout", "%lldms", (long long)c->client_login_timeout_ms);
    kv(t, "max_prepared_statements", "%d", c->max_prepared_statements);
    kv(t, "stats_fingerprints", "%d", c->stats_fingerprints);
    kv(t, "reserve_admin_connections", "%d", c->reserve_admin_connections);
    kv(t, "max_prepared_statements_per_client", "%d", c->max_prepared_statements_per_client);
    kv(t, "pool_idle_timeout", "%lldms", (long long)c->pool_idle_timeout_ms);
    kv(t, "max_pools", "%d", c->max_pools);
    kv(t, "max_db_connections", "%d", c->max_db_connections);
    kv(t, "max_user_connections", "%d", c->max_user_connections);
    kv(t, "allow_trust", "%s", c->allow_trust ? "yes" : "no");
    kv(t, "tls_mode", "%s", tls[c->tls_mode]);
    kv(t, "tls_cert_file", "%s", str(c->tls_cert_file));
    kv(t, "tls_key_file", "%s", str(c->tls_key_file));
    kv(t, "tls_ca_file", "%s", str(c->tls_ca_file));
    kv(t, "client_idle_timeout", "%lldms", (long long)c->client_idle_timeout_ms);
    kv(t, "idle_transaction_timeout", "%lldms", (long long)c->idle_transaction_timeout_ms);
    kv(t, "server_check_delay", "%lldms", (long long)c->server_check_delay_ms);
    kv(t, "server_check_query", "%s", str(c->server_check_query));
    kv(t, "server_login_retry", "%lldms", (long long)c->server_login_retry_ms);
    kv(t, "auth_user", "%s", str(c->auth_user));
    kv(t, "auth_query", "%s", str(c->auth_query));
    kv(t, "auth_dbname", "%s", str(c->auth_dbname));
    kv(t, "auth_cache_ttl", "%lldms", (long long)c->auth_cache_ttl_ms);
    kv(t, "health_check_interval", "%lldms", (long long)c->health_check_interval_ms);
    kv(t, "health_check_failures", "%d", c->health_check_failures);
    kv(t, "tcp_keepalive", "%s", c->tcp_keepalive ? "yes" : "no");
    kv(t, "tcp_keepidle", "%lldms", (long long)c->tcp_keepidle_ms);
    kv(t, "tcp_keepintvl", "%lldms", (long long)c->tcp_keepintvl_ms);
    kv(t, "tcp_keepcnt", "%d", c->tcp_keepcnt);
    kv(t, "tcp_user_timeout", "%lldms", (long long)c->tcp_user_timeout_ms);
}

/* so_reuseport and peer_id as in force (fixed at start), with the file's value when a reload changed
 * it; then client_drain_timeout and [peers]. */
static void peering(struct px_table *t, const struct proxy *px)
{
    const struct conf *c = px->conf;
    char key[64];

    if (c->so_reuseport != px->so_reuseport)
        kv(t, "so_reuseport", "%s (the file says %s: needs a restart)", px->so_reuseport ? "yes" : "no",
           c->so_reuseport ? "yes" : "no");
    else
        kv(t, "so_reuseport", "%s", px->so_reuseport ? "yes" : "no");
    if (c->workers != px_workers_count(px->workers))
        kv(t, "workers", "%d (the file says %d: needs a restart)", px_workers_count(px->workers), c->workers);
    else
        kv(t, "workers", "%d", c->workers);
    if (c->peer_id != px->peer_id)
        kv(t, "peer_id", "%d (the file says %d: needs a restart)", px->peer_id, c->peer_id);
    else
        kv(t, "peer_id", "%d", px->peer_id);
    kv(t, "client_drain_timeout", "%lldms", (long long)c->client_drain_timeout_ms);
    for (int i = 0; i < c->npeers; i++) {
        snprintf(key, sizeof(key), "peers.%d", c->peers[i].id);
        if (c->peers[i].host[0] == '/')
            kv(t, key, "host=%s port=%d", c->peers[i].host, c->peers[i].port);
        else
            kv(t, key, strchr(c->peers[i].host, ':') ? "[%s]:%d" : "%s:%d", c->peers[i].host, c->peers[i].port);
    }
}

static void server(struct px_table *t, const struct conf_server *s)
{
    static const char *const modes[] = { "disable", "prefer", "require", "verify-ca", "verify-full" };
    char key[128];

    snprintf(key, sizeof(key), "server.%s.host", s->name);
    kv(t, key, "%s", s->host);
    snprintf(key, sizeof(key), "server.%s.port", s->name);
    kv(t, key, "%d", s->port);
    snprintf(key, sizeof(key), "server.%s.server_tls_mode", s->name);
    kv(t, key, "%s", modes[s->tls_mode]);
    snprintf(key, sizeof(key), "server.%s.role", s->name);
    kv(t, key, "%s", s->role == CONF_ROLE_PRIMARY ? "primary" : s->role == CONF_ROLE_REPLICA ? "replica" : "auto");
}

static void lane(struct px_table *t, const struct conf *c, const struct conf_lane *l)
{
    static const char *const guards[] = { "off", "log", "cancel" };
    static const char *const tenant_keys[] = { "none", "user", "database", "application_name", "hint" };
    char key[160];

#define LANE_KV(k, ...) do { snprintf(key, sizeof(key), "lane.%s." k, l->name); kv(t, key, __VA_ARGS__); } while (0)
    if (l->nservers > 1) {
        char list[CONF_LANE_SERVERS_MAX * 52] = "";
        size_t n = 0;

        for (int i = 0; i < l->nservers && n < sizeof(list); i++)
            n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", c->servers[l->servers[i]].name);
        LANE_KV("server", "%s", list);
        LANE_KV("balance", "%s", l->balance == CONF_BALANCE_ROUND_ROBIN ? "round-robin" : "least-busy");
        LANE_KV("max_replica_lag", "%lldms", (long long)l->max_replica_lag_ms);
        LANE_KV("max_replica_lag_bytes", "%lld", (long long)l->max_replica_lag_bytes);
        LANE_KV("replica_fallback", "%s", l->replica_fallback == CONF_FALLBACK_QUEUE ? "queue"
                                          : l->replica_fallback == CONF_FALLBACK_ERROR ? "error" : "primary");
        LANE_KV("read_your_writes", "%s", l->read_your_writes ? "on" : "off");
    } else {
        LANE_KV("server", "%s", c->servers[l->server].name);
    }
    LANE_KV("size", "%d", l->size);
    LANE_KV("reserve", "%d", l->reserve);
    LANE_KV("reserve_timeout", "%lldms", (long long)l->reserve_timeout_ms);
    LANE_KV("queue_timeout", "%lldms", (long long)l->queue_timeout_ms);
    LANE_KV("server_connect_timeout", "%lldms", (long long)l->server_connect_timeout_ms);
    LANE_KV("server_lifetime", "%lldms", (long long)l->server_lifetime_ms);
    if (l->idle_transaction_timeout_ms >= 0)
        LANE_KV("idle_transaction_timeout", "%lldms", (long long)l->idle_transaction_timeout_ms);
    LANE_KV("server_retry", "%d", l->server_retry);
    LANE_KV("protect", "%s", l->protect ? "yes" : "no");
    LANE_KV("preemptible", "%s", l->preemptible ? "yes" : "no");
    LANE_KV("guard", "%s", guards[l->guard]);
    LANE_KV("guard_wait", "%lldms", (long long)l->guard_wait_ms);
    LANE_KV("pin", "%s", l->pin == CONF_PIN_REFUSE ? "refuse" : "allow");
    LANE_KV("cache_unnamed", "%s", l->cache_unnamed ? "on" : "off");
    LANE_KV("guard_quarantine", "%d", l->guard_quarantine);
    LANE_KV("guard_quarantine_window", "%lldms", (long long)l->guard_quarantine_window_ms);
    LANE_KV("guard_quarantine_time", "%lldms", (long long)l->guard_quarantine_time_ms);
    if (l->protects) {
        LANE_KV("protects", "%s", l->protects);
        LANE_KV("target_p99", "%lldms", (long long)l->target_p99_ms);
        LANE_KV("adapt_interval", "%lldms", (long long)l->adapt_interval_ms);
        LANE_KV("min_size", "%d", l->min_size);
        LANE_KV("adapt_min_samples", "%d", l->adapt_min_samples);
    }
    LANE_KV("tenant_key", "%s", tenant_keys[l->tenant_key]);
    LANE_KV("tenant_max", "%d", l->tenant_max);
    for (int i = 0; i < l->ntenant_weights; i++) {
        snprintf(key, sizeof(key), "lane.%s.tenant_weight.%s", l->name, l->tenant_weights[i].id);
        kv(t, key, "%d", l->tenant_weights[i].weight);
    }
    if (l->backend_nice == CONF_NICE_IDLE)
        LANE_KV("backend_nice", "%s", "idle");
    else
        LANE_KV("backend_nice", "%d", l->backend_nice);
#undef LANE_KV
    for (int i = 0; i < l->nsettings; i++) {
        snprintf(key, sizeof(key), "lane.%s.%s", l->name, l->settings[i].name);
        kv(t, key, "%s", l->settings[i].value);
    }
}

void px_show_config(struct px_client *cl, const char *arg)
{
    static const char *const cols[] = { "key", "value", NULL };
    const struct conf *c = cl->conn.px->conf;
    struct px_table t;
    char key[128];

    (void)arg;
    px_table_begin(&t, cols);
    general(&t, c);
    peering(&t, cl->conn.px);
    for (int i = 0; i < c->nservers; i++)
        server(&t, &c->servers[i]);
    for (int i = 0; i < c->nlanes; i++)
        lane(&t, c, &c->lanes[i]);
    for (int i = 0; i < c->nroutes; i++) {
        snprintf(key, sizeof(key), "route.%s.lane", c->routes[i].name);
        kv(&t, key, "%s", c->lanes[c->routes[i].lane].name);
        snprintf(key, sizeof(key), "route.%s.read_only", c->routes[i].name);
        kv(&t, key, "%s", c->routes[i].read_only_trust ? "trust" : "grammar");
    }
    px_table_send(&t, cl, "SHOW");
}
