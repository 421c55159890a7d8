/* Unit tests of conf/ loading: every key, defaults, every diagnostic, durations, example configs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "conf/conf.h"

/* [pglane] lines 1-3, [server.s] line 4, [lane.a] line 5: appended text starts at line 6. */
#define BASE "[pglane]\nauth_type = trust\ndefault_lane = a\n[server.s]\n[lane.a]\n"

static struct conf *load_ok(const char *text)
{
    struct conf *c = NULL;
    struct conf_diag d = {0};
    int rc = conf_load_string(text, "test.ini", &c, &d);

    for (int i = 0; i < d.n; i++)
        print_message("unexpected: %s\n", d.msgs[i]);
    assert_int_equal(rc, 0);
    assert_int_equal(d.n, 0);
    assert_non_null(c);
    conf_diag_free(&d);
    return c;
}

/* ---------------------------------------------------------------- defaults */

static void test_defaults(void **state)
{
    struct conf *c = load_ok(BASE);

    (void)state;
    assert_string_equal(c->file, "test.ini");
    assert_int_equal(c->nlisten, 1);
    assert_string_equal(c->listen[0].host, "127.0.0.1");
    assert_int_equal(c->listen[0].port, 6432);
    assert_null(c->unix_socket_dir);
    assert_null(c->auth_file);
    assert_int_equal(c->pool_mode, CONF_POOL_TRANSACTION);
    assert_int_equal(c->max_client_conn, 1000);
    assert_string_equal(c->default_lane, "a");
    assert_int_equal(c->default_lane_index, 0);
    assert_int_equal(c->server_idle_timeout_ms, 600000);
    assert_int_equal(c->log_level, CONF_LOG_INFO);
    assert_int_equal(c->nadmin_users, 0);
    assert_null(c->metrics_listen);
    assert_null(c->metrics.host);
    assert_int_equal(c->log_slower_than_ms, 0);
    assert_int_equal(c->client_login_timeout_ms, 60000);
    assert_int_equal(c->max_prepared_statements, 200);
    assert_int_equal(c->reserve_admin_connections, 3);
    assert_int_equal(c->max_prepared_statements_per_client, 1000);
    assert_int_equal(c->pool_idle_timeout_ms, 300000);
    assert_int_equal(c->max_pools, 5000);
    assert_int_equal(c->stats_fingerprints, 1000);
    assert_int_equal(c->allow_trust, 0);
    assert_int_equal(c->tls_mode, CONF_TLS_DISABLE);
    assert_null(c->tls_cert_file);
    assert_null(c->tls_protocols);
    assert_int_equal(c->tls_protocol_mask, CONF_TLS_V1_2 | CONF_TLS_V1_3);
    assert_int_equal(c->client_idle_timeout_ms, 0);
    assert_int_equal(c->idle_transaction_timeout_ms, 0);
    assert_int_equal(c->server_check_delay_ms, 30000);
    assert_null(c->server_check_query);
    assert_int_equal(c->server_login_retry_ms, 0);
    assert_null(c->auth_user);
    assert_string_equal(c->auth_query, "SELECT usename, passwd FROM pg_shadow WHERE usename=$1");
    assert_null(c->auth_dbname);
    assert_int_equal(c->auth_cache_ttl_ms, 60000);

    assert_int_equal(c->nservers, 1);
    assert_string_equal(c->servers[0].name, "s");
    assert_string_equal(c->servers[0].host, "127.0.0.1");
    assert_int_equal(c->servers[0].port, 5432);
    assert_int_equal(c->servers[0].tls_mode, CONF_STLS_DISABLE);
    assert_null(c->servers[0].tls_ca_file);
    assert_int_equal(c->servers[0].line, 4);

    assert_int_equal(c->nlanes, 1);
    assert_string_equal(c->lanes[0].name, "a");
    assert_int_equal(c->lanes[0].server, 0);   /* the only server */
    assert_int_equal(c->lanes[0].size, 20);
    assert_int_equal(c->lanes[0].reserve, 0);
    assert_int_equal(c->lanes[0].reserve_timeout_ms, 5000);
    assert_int_equal(c->lanes[0].queue_timeout_ms, 120000);
    assert_int_equal(c->lanes[0].server_connect_timeout_ms, 15000);
    assert_int_equal(c->lanes[0].server_lifetime_ms, 3600000);
    assert_int_equal(c->lanes[0].idle_transaction_timeout_ms, -1);   /* [pglane]'s */
    assert_int_equal(c->lanes[0].nsettings, 0);
    assert_int_equal(c->lanes[0].protect, 0);
    assert_int_equal(c->lanes[0].preemptible, 0);
    assert_int_equal(c->lanes[0].cache_unnamed, 0);
    assert_int_equal(c->lanes[0].guard, CONF_GUARD_OFF);
    assert_int_equal(c->lanes[0].guard_wait_ms, 250);
    assert_int_equal(c->lanes[0].guard_quarantine, 3);
    assert_int_equal(c->lanes[0].guard_quarantine_window_ms, 600000);
    assert_int_equal(c->lanes[0].guard_quarantine_time_ms, 600000);
    assert_int_equal(c->lanes[0].line, 5);
    assert_int_equal(c->nroutes, 0);
    assert_int_equal(conf_lane_find(c, "a"), 0);
    assert_int_equal(conf_lane_find(c, "b"), -1);
    assert_int_equal(conf_server_find(c, "s"), 0);
    assert_int_equal(conf_server_find(c, "x"), -1);
    conf_free(c);
}

static void test_default_auth_type_is_scram(void **state)
{
    struct conf *c = load_ok("[pglane]\nauth_file = u.txt\ndefault_lane = a\n[server.s]\n[lane.a]\n");

    (void)state;
    assert_int_equal(c->auth_type, CONF_AUTH_SCRAM);
    assert_string_equal(c->auth_file, "u.txt");
    conf_free(c);
}

/* ---------------------------------------------------------------- every key, table-driven */

enum where { PG, SRV, LANE, ROUTE };
enum vt { VINT, VI64, VSTR };

struct key_case {
    enum where where;
    const char *line;          /* "key = value" */
    enum vt type;
    size_t off;
    long long num;
    const char *str;
};

#define PGK(line, t, f, n, s) {PG, line, t, offsetof(struct conf, f), n, s}
#define SRVK(line, t, f, n, s) {SRV, line, t, offsetof(struct conf_server, f), n, s}
#define LANEK(line, t, f, n, s) {LANE, line, t, offsetof(struct conf_lane, f), n, s}
#define ROUTEK(line, t, f, n, s) {ROUTE, line, t, offsetof(struct conf_route, f), n, s}

static const struct key_case key_cases[] = {
    PGK("unix_socket_dir = /run/pglane", VSTR, unix_socket_dir, 0, "/run/pglane"),
    PGK("auth_type = md5", VINT, auth_type, CONF_AUTH_MD5, NULL),
    PGK("auth_type = scram-sha-256", VINT, auth_type, CONF_AUTH_SCRAM, NULL),
    PGK("auth_type = TRUST", VINT, auth_type, CONF_AUTH_TRUST, NULL),
    PGK("auth_file = /etc/pglane/users.txt", VSTR, auth_file, 0, "/etc/pglane/users.txt"),
    PGK("pool_mode = session", VINT, pool_mode, CONF_POOL_SESSION, NULL),
    PGK("pool_mode = transaction", VINT, pool_mode, CONF_POOL_TRANSACTION, NULL),
    PGK("max_client_conn = 1", VINT, max_client_conn, 1, NULL),
    PGK("max_client_conn = 1000000", VINT, max_client_conn, 1000000, NULL),
    PGK("server_idle_timeout = 30s", VI64, server_idle_timeout_ms, 30000, NULL),
    PGK("log_level = error", VINT, log_level, CONF_LOG_ERROR, NULL),
    PGK("log_level = warning", VINT, log_level, CONF_LOG_WARNING, NULL),
    PGK("log_level = debug", VINT, log_level, CONF_LOG_DEBUG, NULL),
    PGK("metrics_listen = 0.0.0.0:9127", VSTR, metrics_listen, 0, "0.0.0.0:9127"),
    PGK("log_slower_than = 1500ms", VI64, log_slower_than_ms, 1500, NULL),
    PGK("client_login_timeout = 1min", VI64, client_login_timeout_ms, 60000, NULL),
    PGK("max_prepared_statements = 0", VINT, max_prepared_statements, 0, NULL),
    PGK("stats_fingerprints = 1", VINT, stats_fingerprints, 1, NULL),
    PGK("reserve_admin_connections = 0", VINT, reserve_admin_connections, 0, NULL),
    PGK("reserve_admin_connections = 10", VINT, reserve_admin_connections, 10, NULL),
    PGK("max_prepared_statements_per_client = 0", VINT, max_prepared_statements_per_client, 0, NULL),
    PGK("max_prepared_statements_per_client = 50", VINT, max_prepared_statements_per_client, 50, NULL),
    PGK("pool_idle_timeout = 2s", VI64, pool_idle_timeout_ms, 2000, NULL),
    PGK("pool_idle_timeout = 0", VI64, pool_idle_timeout_ms, 0, NULL),
    PGK("max_pools = 1", VINT, max_pools, 1, NULL),
    PGK("allow_trust = yes", VINT, allow_trust, 1, NULL),
    PGK("allow_trust = on", VINT, allow_trust, 1, NULL),
    PGK("allow_trust = true", VINT, allow_trust, 1, NULL),
    PGK("allow_trust = 1", VINT, allow_trust, 1, NULL),
    PGK("allow_trust = off", VINT, allow_trust, 0, NULL),
    PGK("tls_ca_file = /etc/ca.pem", VSTR, tls_ca_file, 0, "/etc/ca.pem"),
    PGK("tls_protocols = TLSv1.3", VSTR, tls_protocols, 0, "TLSv1.3"),
    PGK("tls_protocols = TLSv1.3", VINT, tls_protocol_mask, CONF_TLS_V1_3, NULL),
    PGK("tls_protocols = TLSv1.2, TLSv1.3", VINT, tls_protocol_mask, 3, NULL),
    PGK("client_idle_timeout = 300ms", VI64, client_idle_timeout_ms, 300, NULL),
    PGK("idle_transaction_timeout = 2min", VI64, idle_transaction_timeout_ms, 120000, NULL),
    PGK("server_check_delay = 0", VI64, server_check_delay_ms, 0, NULL),
    PGK("server_check_query = SELECT 1", VSTR, server_check_query, 0, "SELECT 1"),
    PGK("server_login_retry = 15s", VI64, server_login_retry_ms, 15000, NULL),
    PGK("auth_user = pglane_auth", VSTR, auth_user, 0, "pglane_auth"),
    PGK("auth_query = SELECT usename, passwd FROM pglane.user_lookup($1)", VSTR, auth_query, 0,
        "SELECT usename, passwd FROM pglane.user_lookup($1)"),
    PGK("auth_dbname = postgres", VSTR, auth_dbname, 0, "postgres"),
    PGK("auth_cache_ttl = 1s", VI64, auth_cache_ttl_ms, 1000, NULL),
    PGK("auth_cache_ttl = 0", VI64, auth_cache_ttl_ms, 0, NULL),
    PGK("so_reuseport = yes", VINT, so_reuseport, 1, NULL),
    PGK("peer_id = 16383", VINT, peer_id, 16383, NULL),
    PGK("client_drain_timeout = 10min", VI64, client_drain_timeout_ms, 600000, NULL),
    PGK("tcp_keepalive = off", VINT, tcp_keepalive, 0, NULL),
    PGK("tcp_keepidle = 30s", VI64, tcp_keepidle_ms, 30000, NULL),
    PGK("tcp_keepintvl = 0", VI64, tcp_keepintvl_ms, 0, NULL),
    PGK("tcp_keepcnt = 3", VINT, tcp_keepcnt, 3, NULL),
    PGK("tcp_user_timeout = 45s", VI64, tcp_user_timeout_ms, 45000, NULL),
    SRVK("host = db.example.com", VSTR, host, 0, "db.example.com"),
    SRVK("host = /var/run/postgresql", VSTR, host, 0, "/var/run/postgresql"),
    SRVK("port = 1", VINT, port, 1, NULL),
    SRVK("port = 65535", VINT, port, 65535, NULL),
    SRVK("server_tls_mode = prefer", VINT, tls_mode, CONF_STLS_PREFER, NULL),
    SRVK("server_tls_mode = require", VINT, tls_mode, CONF_STLS_REQUIRE, NULL),
    SRVK("server_tls_mode = verify-ca", VINT, tls_mode, CONF_STLS_VERIFY_CA, NULL),
    SRVK("server_tls_mode = verify-full", VINT, tls_mode, CONF_STLS_VERIFY_FULL, NULL),
    SRVK("server_tls_ca_file = /ca.pem", VSTR, tls_ca_file, 0, "/ca.pem"),
    LANEK("server = s", VINT, server, 0, NULL),
    LANEK("size = 1", VINT, size, 1, NULL),
    LANEK("size = 10000", VINT, size, 10000, NULL),
    LANEK("reserve = 10000", VINT, reserve, 10000, NULL),
    LANEK("reserve_timeout = 1s", VI64, reserve_timeout_ms, 1000, NULL),
    LANEK("queue_timeout = 0", VI64, queue_timeout_ms, 0, NULL),
    LANEK("server_connect_timeout = 3 s", VI64, server_connect_timeout_ms, 3000, NULL),
    LANEK("server_lifetime = 1h", VI64, server_lifetime_ms, 3600000, NULL),
    LANEK("idle_transaction_timeout = 0", VI64, idle_transaction_timeout_ms, 0, NULL),
    LANEK("idle_transaction_timeout = 5s", VI64, idle_transaction_timeout_ms, 5000, NULL),
    LANEK("protect = yes", VINT, protect, 1, NULL),
    LANEK("preemptible = true", VINT, preemptible, 1, NULL),
    LANEK("cache_unnamed = on", VINT, cache_unnamed, 1, NULL),
    LANEK("cache_unnamed = off", VINT, cache_unnamed, 0, NULL),
    LANEK("guard = log", VINT, guard, CONF_GUARD_LOG, NULL),
    LANEK("guard = cancel", VINT, guard, CONF_GUARD_CANCEL, NULL),
    LANEK("guard_wait = 2s", VI64, guard_wait_ms, 2000, NULL),
    LANEK("guard_quarantine = 0", VINT, guard_quarantine, 0, NULL),
    LANEK("guard_quarantine = 5", VINT, guard_quarantine, 5, NULL),
    LANEK("guard_quarantine_window = 30s", VI64, guard_quarantine_window_ms, 30000, NULL),
    LANEK("guard_quarantine_time = 1h", VI64, guard_quarantine_time_ms, 3600000, NULL),
    LANEK("tenant_key = none", VINT, tenant_key, CONF_TENANT_NONE, NULL),
    LANEK("tenant_key = user", VINT, tenant_key, CONF_TENANT_USER, NULL),
    LANEK("tenant_key = database", VINT, tenant_key, CONF_TENANT_DATABASE, NULL),
    LANEK("tenant_key = application_name", VINT, tenant_key, CONF_TENANT_APP, NULL),
    LANEK("tenant_key = hint", VINT, tenant_key, CONF_TENANT_HINT, NULL),
    ROUTEK("sql = (?i)\\bgroup\\s+by\\b", VSTR, sql, 0, "(?i)\\bgroup\\s+by\\b"),
    ROUTEK("sql = a;b", VSTR, sql, 0, "a;b"),
    ROUTEK("sql = a ;b", VSTR, sql, 0, "a"),   /* inih: " ;" starts an inline comment */
    ROUTEK("hint = yes", VINT, hint, 1, NULL),
    ROUTEK("slower_than = 2s", VI64, slower_than_ms, 2000, NULL),
};

static char *key_case_text(const struct key_case *k)
{
    char *text;
    const char *pg = k->where == PG ? k->line : "";

    /* md5/scram need an auth_file; the row's own auth lines replace auth_type = trust. */
    const char *auth = strncmp(pg, "auth_", 5) == 0 ? "auth_file = x\n" : "auth_type = trust\n";
    if (strncmp(pg, "auth_file", 9) == 0)
        auth = "";
    if (asprintf(&text, "[pglane]\n%sdefault_lane = a\n%s\n[server.s]\n%s\n[lane.a]\n%s\n"
                 "[route.r]\nlane = a\n%s\n", auth, pg, k->where == SRV ? k->line : "",
                 k->where == LANE ? k->line : "", k->where == ROUTE ? k->line : "") < 0)
        fail();
    return text;
}

static void *key_case_obj(struct conf *c, enum where w)
{
    switch (w) {
    case PG:
        return c;
    case SRV:
        return &c->servers[0];
    case LANE:
        return &c->lanes[0];
    case ROUTE:
        return &c->routes[0];
    }
    return NULL;
}

static void test_every_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof key_cases / sizeof key_cases[0]; i++) {
        const struct key_case *k = &key_cases[i];
        char *text = key_case_text(k);
        struct conf *c;
        char *obj;

        print_message("case: %s\n", k->line);
        c = load_ok(text);
        obj = key_case_obj(c, k->where);
        if (k->type == VINT)
            assert_int_equal(*(int *)(void *)(obj + k->off), k->num);
        else if (k->type == VI64)
            assert_int_equal(*(int64_t *)(void *)(obj + k->off), k->num);
        else
            assert_string_equal(*(char **)(void *)(obj + k->off), k->str);
        conf_free(c);
        free(text);
    }
}

static void test_listen_list(void **state)
{
    struct conf *c = load_ok("[pglane]\nlisten = 127.0.0.1:6432, [::1]:6433 ,*:7000,db:1\n"
                             "auth_type = trust\nallow_trust = yes\ndefault_lane = a\n[server.s]\n[lane.a]\n");

    (void)state;
    assert_int_equal(c->nlisten, 4);
    assert_string_equal(c->listen[0].host, "127.0.0.1");
    assert_int_equal(c->listen[0].port, 6432);
    assert_string_equal(c->listen[1].host, "::1");
    assert_int_equal(c->listen[1].port, 6433);
    assert_string_equal(c->listen[2].host, "*");
    assert_int_equal(c->listen[2].port, 7000);
    assert_string_equal(c->listen[3].host, "db");
    assert_int_equal(c->listen[3].port, 1);
    conf_free(c);
}

static void test_pglane_misc(void **state)
{
    struct conf *c = load_ok("[pglane]\nauth_type = trust\ndefault_lane = b\n"
                             "admin_users = ops, Admin ,x\nmetrics_listen = [::1]:9127\n"
                             "tls_mode = require\ntls_cert_file = cert.pem\n"
                             "tls_key_file = /abs/key.pem\n[server.s]\n[lane.a]\n[lane.b]\n");

    (void)state;
    assert_int_equal(c->nadmin_users, 3);
    assert_string_equal(c->admin_users[0], "ops");
    assert_string_equal(c->admin_users[1], "Admin");
    assert_string_equal(c->admin_users[2], "x");
    assert_string_equal(c->metrics_listen, "[::1]:9127");
    assert_string_equal(c->metrics.host, "::1");
    assert_int_equal(c->metrics.port, 9127);
    assert_int_equal(c->tls_mode, CONF_TLS_REQUIRE);
    assert_string_equal(c->tls_cert_file, "cert.pem");  /* "test.ini" has no folder */
    assert_string_equal(c->tls_key_file, "/abs/key.pem");
    assert_int_equal(c->default_lane_index, 1);
    conf_free(c);
}

/* [peers]: "peer.N = host:port" and PgBouncer's "N = host=H port=P" (unix socket dir, default port). */
static void test_peers(void **state)
{
    struct conf *c = load_ok("[pglane]\nauth_type = trust\ndefault_lane = a\npeer_id = 1\nso_reuseport = yes\n"
                             "[server.s]\n[lane.a]\n[peers]\npeer.1 = 127.0.0.1:6501\n"
                             "2 = host=/run/pglane2 port=6432\npeer.3 = [::1]:6503\n7 = host=db7\n");

    (void)state;
    assert_int_equal(c->peer_id, 1);
    assert_int_equal(c->so_reuseport, 1);
    assert_int_equal(c->npeers, 4);
    assert_int_equal(c->peers[0].id, 1);
    assert_string_equal(c->peers[0].host, "127.0.0.1");
    assert_int_equal(c->peers[0].port, 6501);
    assert_int_equal(c->peers[0].line, 9);
    assert_int_equal(c->peers[1].id, 2);
    assert_string_equal(c->peers[1].host, "/run/pglane2");
    assert_int_equal(c->peers[1].port, 6432);
    assert_int_equal(c->peers[2].id, 3);
    assert_string_equal(c->peers[2].host, "::1");
    assert_int_equal(c->peers[2].port, 6503);
    assert_int_equal(c->peers[3].id, 7);
    assert_string_equal(c->peers[3].host, "db7");
    assert_int_equal(c->peers[3].port, 6432);
    conf_free(c);
    /* An empty [peers] and the defaults: no peering, no so_reuseport, no drain wait. */
    c = load_ok("[pglane]\nauth_type = trust\ndefault_lane = a\n[server.s]\n[lane.a]\n[peers]\n");
    assert_int_equal(c->npeers, 0);
    assert_int_equal(c->peer_id, 0);
    assert_int_equal(c->so_reuseport, 0);
    assert_int_equal(c->client_drain_timeout_ms, 0);
    conf_free(c);
}

static void test_paths_resolved_against_ini_folder(void **state)
{
    struct conf *c = NULL;
    struct conf_diag d = {0};
    const char *text = "[pglane]\nauth_file = users.txt\ndefault_lane = a\ntls_mode = allow\n"
                       "tls_cert_file = tls/c.pem\ntls_key_file = /k.pem\ntls_ca_file = ../ca.pem\n"
                       "[server.s]\nserver_tls_ca_file = sca.pem\n[lane.a]\n";

    (void)state;
    assert_int_equal(conf_load_string(text, "/etc/pglane/pglane.ini", &c, &d), 0);
    assert_int_equal(d.n, 0);
    assert_string_equal(c->auth_file, "/etc/pglane/users.txt");
    assert_string_equal(c->tls_cert_file, "/etc/pglane/tls/c.pem");
    assert_string_equal(c->tls_key_file, "/k.pem");
    assert_string_equal(c->tls_ca_file, "/etc/pglane/../ca.pem");
    assert_string_equal(c->servers[0].tls_ca_file, "/etc/pglane/sca.pem");
    assert_int_equal(c->tls_mode, CONF_TLS_ALLOW);
    conf_free(c);
}

static void test_lane_settings_in_file_order(void **state)
{
    struct conf *c = load_ok(BASE "work_mem = 256MB\nset.max_parallel_workers_per_gather = 4\n"
                             "statement_timeout = 2s\nlock_timeout = 500us\n"
                             "idle_in_transaction_session_timeout = 10min\n"
                             "set.search_path = \"$user\", public\nset.plan_cache_mode = "
                             "force_custom_plan\nset.my.custom = x y\n");
    static const char *const want[][2] = {
        {"work_mem", "256MB"}, {"max_parallel_workers_per_gather", "4"},
        {"statement_timeout", "2000"}, {"lock_timeout", "1"},
        {"idle_in_transaction_session_timeout", "600000"},
        {"search_path", "\"$user\", public"}, {"plan_cache_mode", "force_custom_plan"},
        {"my.custom", "x y"},
    };
    const struct conf_lane *l;

    (void)state;
    l = &c->lanes[0];
    assert_int_equal(l->nsettings, 8);
    for (int i = 0; i < 8; i++) {
        assert_string_equal(l->settings[i].name, want[i][0]);
        assert_string_equal(l->settings[i].value, want[i][1]);
        assert_int_equal(l->settings[i].line, 6 + i);
    }
    conf_free(c);
}

static void test_lane_tenants(void **state)
{
    struct conf *c = load_ok(BASE "tenant_key = application_name\ntenant_max = 3\ntenant_weight.acme = 4\n"
                             "tenant_weight.report-job = 2\n");
    const struct conf_lane *l = &c->lanes[0];
    struct conf_lane copy;

    (void)state;
    assert_int_equal(l->tenant_key, CONF_TENANT_APP);
    assert_int_equal(l->tenant_max, 3);
    assert_int_equal(l->ntenant_weights, 2);
    assert_string_equal(l->tenant_weights[0].id, "acme");
    assert_int_equal(l->tenant_weights[0].weight, 4);
    assert_int_equal(l->tenant_weights[0].line, 8);
    assert_string_equal(l->tenant_weights[1].id, "report-job");
    assert_int_equal(l->tenant_weights[1].weight, 2);
    assert_int_equal(conf_lane_copy(&copy, l), 0);
    assert_ptr_not_equal(copy.tenant_weights, l->tenant_weights);
    conf_free(c);                       /* under ASan, a string still shared would be reported below */
    assert_int_equal(copy.ntenant_weights, 2);
    assert_string_equal(copy.tenant_weights[1].id, "report-job");
    assert_int_equal(copy.tenant_max, 3);
    conf_lane_clear(&copy);
    c = load_ok(BASE);
    assert_int_equal(c->lanes[0].tenant_key, CONF_TENANT_NONE);
    assert_int_equal(c->lanes[0].tenant_max, 0);
    assert_int_equal(c->lanes[0].ntenant_weights, 0);
    conf_free(c);
}

static void test_work_mem_forms(void **state)
{
    static const char *const ok[] = {"64", "64kB", "64MB", "1GB", "1TB", "64 MB"};

    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char text[256];
        struct conf *c;

        snprintf(text, sizeof text, BASE "work_mem = %s\n", ok[i]);
        c = load_ok(text);
        assert_string_equal(c->lanes[0].settings[0].value, ok[i]);
        conf_free(c);
    }
}

static void test_route_lists(void **state)
{
    struct conf *c = load_ok(BASE "[lane.b]\n[route.r1]\nlane = b\ndatabase = app, Other\n"
                             "user = alice,bob\napplication_name = report-*, etl?\n"
                             "client_addr = 10.1.2.3/8, 192.168.1.5, ::1, 2001:db8::/32\n"
                             "kind = select, INSERT,ddl\n"
                             "tables = Events, public.Reports, \"MyTable\", s.\"A,b\"\"c\"\n"
                             "[route.r2]\nlane = a\nhint = no\n");
    const struct conf_route *r;
    static const uint8_t v6one[16] = {[15] = 1};
    static const uint8_t v6net[16] = {0x20, 0x01, 0x0d, 0xb8};

    (void)state;
    assert_int_equal(c->nroutes, 2);
    r = &c->routes[0];
    assert_string_equal(r->name, "r1");
    assert_int_equal(r->lane, 1);
    assert_int_equal(r->line, 7);
    assert_int_equal(r->ndatabases, 2);
    assert_string_equal(r->databases[0], "app");
    assert_string_equal(r->databases[1], "Other");
    assert_int_equal(r->nusers, 2);
    assert_string_equal(r->users[1], "bob");
    assert_int_equal(r->napp_globs, 2);
    assert_string_equal(r->app_globs[0], "report-*");
    assert_string_equal(r->app_globs[1], "etl?");
    assert_int_equal(r->ncidrs, 4);
    assert_int_equal(r->cidrs[0].family, AF_INET);
    assert_int_equal(r->cidrs[0].prefix, 8);
    assert_memory_equal(r->cidrs[0].addr, "\x0a\x00\x00\x00", 4);   /* host bits cleared */
    assert_int_equal(r->cidrs[1].prefix, 32);
    assert_memory_equal(r->cidrs[1].addr, "\xc0\xa8\x01\x05", 4);
    assert_int_equal(r->cidrs[2].family, AF_INET6);
    assert_int_equal(r->cidrs[2].prefix, 128);
    assert_memory_equal(r->cidrs[2].addr, v6one, 16);
    assert_int_equal(r->cidrs[3].prefix, 32);
    assert_memory_equal(r->cidrs[3].addr, v6net, 16);
    assert_int_equal(r->nkinds, 3);
    assert_string_equal(r->kinds[0], "select");
    assert_string_equal(r->kinds[1], "insert");
    assert_string_equal(r->kinds[2], "ddl");
    assert_int_equal(r->ntables, 4);
    assert_string_equal(r->tables[0], "events");
    assert_string_equal(r->tables[1], "public.reports");
    assert_string_equal(r->tables[2], "MyTable");
    assert_string_equal(r->tables[3], "s.A,b\"c");
    assert_null(r->sql);
    assert_int_equal(r->slower_than_ms, 0);
    assert_string_equal(c->routes[1].name, "r2");
    assert_int_equal(c->routes[1].lane, 0);
    assert_int_equal(c->routes[1].hint, 0);
    conf_free(c);
}

static void test_every_kind(void **state)
{
    struct conf *c = load_ok(BASE "[route.r]\nlane = a\nkind = select, insert, update, delete, "
                             "merge, copy, ddl, refresh, vacuum, analyze, call, set, show, "
                             "transaction, explain, utility, other\n");

    (void)state;
    assert_int_equal(c->routes[0].nkinds, 17);
    assert_string_equal(c->routes[0].kinds[16], "other");
    conf_free(c);
}

/* The sql regex is compiled once, when it is checked, and kept for routing/ (which copies it). */
static void test_route_sql_compiled(void **state)
{
    struct conf *c = load_ok(BASE "[route.r]\nlane = a\nsql = (?i)^select .* from events\n"
                             "[route.s]\nlane = a\nuser = bob\n");
    pcre2_match_data *md;

    (void)state;
    assert_non_null(c->routes[0].sql_re);
    assert_null(c->routes[1].sql_re);
    md = pcre2_match_data_create_from_pattern(c->routes[0].sql_re, NULL);
    assert_non_null(md);
    assert_true(pcre2_match(c->routes[0].sql_re, (PCRE2_SPTR) "SELECT 1 FROM events", 20, 0, 0, md,
                            NULL) >= 0);
    assert_true(pcre2_match(c->routes[0].sql_re, (PCRE2_SPTR) "select 1 from users", 19, 0, 0, md,
                            NULL) < 0);
    pcre2_match_data_free(md);
    conf_free(c);
}

static void test_syntax_tolerance(void **state)
{
    /* BOM, CRLF, indented keys, comments of both kinds, inline comments, "key: value". */
    struct conf *c = load_ok("\xEF\xBB\xBF[pglane]\r\n  auth_type = trust ; inline\r\n"
                             "# hash comment\r\n; semicolon comment\r\n\tdefault_lane: a\r\n"
                             "[server.s] ; comment after a header\r\n   host = h\r\n"
                             "    port = 7\r\n[lane.a]\r\n");

    (void)state;
    assert_int_equal(c->auth_type, CONF_AUTH_TRUST);
    assert_string_equal(c->servers[0].host, "h");
    assert_int_equal(c->servers[0].port, 7);
    assert_int_equal(c->servers[0].line, 6);
    conf_free(c);
}

static void test_multiple_servers(void **state)
{
    struct conf *c = load_ok("[pglane]\nauth_type = trust\ndefault_lane = b\n[lane.a]\nserver = t\n"
                             "[server.s]\n[server.t]\nhost = replica\n[lane.b]\nserver = s\n");

    (void)state;
    assert_int_equal(c->nservers, 2);
    assert_int_equal(c->lanes[0].server, 1);
    assert_int_equal(c->lanes[1].server, 0);
    assert_int_equal(c->default_lane_index, 1);
    conf_free(c);
}

/* ---------------------------------------------------------------- diagnostics */

struct err_case {
    const char *text;
    const char *msgs[5];       /* exactly these, in this order */
};

#define LONG50 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij"
#define LONG200 LONG50 LONG50 LONG50 LONG50

static const struct err_case err_cases[] = {
    /* lane values */
    {BASE "size = 0\n", {"test.ini:6: size: expected an integer from 1 to 10000, got '0'"}},
    {BASE "size = 10001\n", {"test.ini:6: size: expected an integer from 1 to 10000, got '10001'"}},
    {BASE "size = 2x\n", {"test.ini:6: size: expected an integer from 1 to 10000, got '2x'"}},
    {BASE "reserve = -1\n", {"test.ini:6: reserve: expected an integer from 0 to 10000, got '-1'"}},
    {BASE "queue_timeout = 5 parsecs\n",
     {"test.ini:6: queue_timeout: expected a duration such as 250ms, 2s or 10min, got '5 parsecs'"}},
    {BASE "statement_timeout = 2\n",
     {"test.ini:6: statement_timeout: expected a duration such as 250ms, 2s or 10min, got '2'"}},
    {BASE "lock_timeout = -1s\n",
     {"test.ini:6: lock_timeout: expected a duration such as 250ms, 2s or 10min, got '-1s'"}},
    {BASE "idle_in_transaction_session_timeout = 1m\n",
     {"test.ini:6: idle_in_transaction_session_timeout: expected a duration such as 250ms, 2s or "
      "10min, got '1m'"}},
    {BASE "idle_transaction_timeout = soon\n",
     {"test.ini:6: idle_transaction_timeout: expected a duration such as 250ms, 2s or 10min, got 'soon'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nclient_idle_timeout = -5s\n[server.s]\n[lane.a]\n",
     {"test.ini:4: client_idle_timeout: expected a duration such as 250ms, 2s or 10min, got '-5s'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nserver_check_delay = 30\n[server.s]\n[lane.a]\n",
     {"test.ini:4: server_check_delay: expected a duration such as 250ms, 2s or 10min, got '30'"}},
    /* auth_query keys */
    {"[pglane]\nauth_file = u\ndefault_lane = a\nauth_cache_ttl = 60\n[server.s]\n[lane.a]\n",
     {"test.ini:4: auth_cache_ttl: expected a duration such as 250ms, 2s or 10min, got '60'"}},
    {"[pglane]\nauth_file = u\ndefault_lane = a\nauth_cache_ttl = -1s\n[server.s]\n[lane.a]\n",
     {"test.ini:4: auth_cache_ttl: expected a duration such as 250ms, 2s or 10min, got '-1s'"}},
    {"[pglane]\nauth_file = u\ndefault_lane = a\nauth_query = SELECT usename, passwd FROM pg_shadow\n"
     "[server.s]\n[lane.a]\n",
     {"test.ini:4: auth_query: expected an SQL query that takes the user name as $1 and returns (user name, "
      "secret), got 'SELECT usename, passwd FROM pg_shadow'"}},
    {"[pglane]\nauth_file = u\ndefault_lane = a\nauth_user =\n[server.s]\n[lane.a]\n",
     {"test.ini:4: auth_user: expected a user name, got ''"}},
    {"[pglane]\nauth_file = u\ndefault_lane = a\nauth_dbname =\n[server.s]\n[lane.a]\n",
     {"test.ini:4: auth_dbname: expected a database name, got ''"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nauth_user = x\n[server.s]\n[lane.a]\n",
     {"test.ini:4: auth_user needs auth_type = md5 or scram-sha-256 (auth_type = trust checks no password)"}},
    {BASE "work_mem = 64mb\n", {"test.ini:6: work_mem: expected a memory size such as 64MB (a number "
                                "with kB, MB, GB or TB), got '64mb'"}},
    {BASE "protect = maybe\n", {"test.ini:6: protect: expected yes or no, got 'maybe'"}},
    {BASE "preemptible = 2\n", {"test.ini:6: preemptible: expected yes or no, got '2'"}},
    {BASE "cache_unnamed = sometimes\n", {"test.ini:6: cache_unnamed: expected yes or no, got 'sometimes'"}},
    {BASE "guard = kill\n", {"test.ini:6: guard: expected off, log or cancel, got 'kill'"}},
    {BASE "guard_wait = soon\n",
     {"test.ini:6: guard_wait: expected a duration such as 250ms, 2s or 10min, got 'soon'"}},
    {BASE "guard_quarantine = 101\n",
     {"test.ini:6: guard_quarantine: expected an integer from 0 to 100, got '101'"}},
    {BASE "guard_quarantine_window = 0\n",
     {"test.ini:6: lane a: guard_quarantine_window must be above 0 when guard_quarantine is not 0"}},
    {BASE "guard_quarantine_time = 0\n",
     {"test.ini:6: lane a: guard_quarantine_time must be above 0 when guard_quarantine is not 0"}},
    {BASE "reserve_timeout =\n",
     {"test.ini:6: reserve_timeout: expected a duration such as 250ms, 2s or 10min, got ''"}},
    {BASE "bogus = 1\n", {"test.ini:6: unknown key 'bogus' in [lane.a]"}},
    {BASE "tenant_key = ip\n",
     {"test.ini:6: tenant_key: expected none, user, database, application_name or hint, got 'ip'"}},
    {BASE "tenant_key = hint\ntenant_max = -1\n",
     {"test.ini:7: tenant_max: expected an integer from 0 to 10000, got '-1'"}},
    {BASE "tenant_max = 2\n",
     {"test.ini:6: lane a: tenant_max needs tenant_key (user, database, application_name or hint)"}},
    {BASE "size = 3\ntenant_weight.acme = 2\n",
     {"test.ini:7: lane a: tenant_weight.acme needs tenant_key (user, database, application_name or hint)"}},
    {BASE "tenant_key = user\ntenant_weight.acme = 0\n",
     {"test.ini:7: tenant_weight.acme: expected an integer between 1 and 1000, got '0'"}},
    {BASE "tenant_key = user\ntenant_weight.acme = 2x\n",
     {"test.ini:7: tenant_weight.acme: expected an integer between 1 and 1000, got '2x'"}},
    {BASE "tenant_key = user\ntenant_weight. = 2\n",
     {"test.ini:7: tenant_weight.: expected tenant_weight.ID with an ID of 1 to 63 characters"}},
    {BASE "tenant_key = user\ntenant_weight.a = 2\ntenant_weight.a = 3\n",
     {"test.ini:8: duplicate key 'tenant_weight.a' in [lane.a] (first at line 7)"}},
    {BASE "backend_nice = 20\n", {"test.ini:6: backend_nice: expected an integer from 0 to 19, or idle, got '20'"}},
    {BASE "backend_nice = Idle\n", {"test.ini:6: backend_nice: expected an integer from 0 to 19, or idle, got 'Idle'"}},
    {BASE "backend_nice = -5\n", {"test.ini:6: backend_nice: expected an integer from 0 to 19, or idle, got '-5'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\n[server.s]\nhost = db.example.com\n[lane.a]\nbackend_nice = 10\n",
     {"test.ini:7: lane a: backend_nice needs its servers on this host (a unix socket directory or a loopback "
      "address); server s is at db.example.com"}},
    {BASE "size = 5\nsize = 6\n", {"test.ini:7: duplicate key 'size' in [lane.a] (first at line 6)"}},
    {BASE "work_mem = 1MB\nset.work_mem = 2MB\n",
     {"test.ini:7: setting 'work_mem' is given twice in [lane.a] (first at line 6)"}},
    {BASE "set.Lock_Timeout = 1\nlock_timeout = 1s\n",
     {"test.ini:7: setting 'lock_timeout' is given twice in [lane.a] (first at line 6)"}},
    {BASE "set.1x = 1\n", {"test.ini:6: set.1x: a setting name must match [A-Za-z_][A-Za-z0-9_.]*"}},
    {BASE "set. = 1\n", {"test.ini:6: set.: a setting name must match [A-Za-z_][A-Za-z0-9_.]*"}},
    {BASE "set.a-b = 1\n", {"test.ini:6: set.a-b: a setting name must match [A-Za-z_][A-Za-z0-9_.]*"}},
    {BASE "set.user = x\n", {"test.ini:6: set.user: 'user' is a connection parameter, not a setting"}},
    {BASE "set.search_path =\n", {"test.ini:6: set.search_path: expected a value, got ''"}},
    {BASE "server = nope\n", {"test.ini:6: lane a: server 'nope' is not defined"}},
    /* sections and syntax */
    {BASE "[lane.a]\nsize = 3\n", {"test.ini:6: duplicate section [lane.a] (first at line 5)"}},
    {BASE "[pglane]\n", {"test.ini:6: duplicate section [pglane] (first at line 1)"}},
    /* trust beyond loopback needs allow_trust */
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nlisten = 0.0.0.0:6432\n[server.s]\n[lane.a]\n",
     {"test.ini:2: auth_type = trust with listen = 0.0.0.0 beyond loopback needs allow_trust = yes"}},
    {BASE "[foo]\nx = 1\n", {"test.ini:6: unknown section [foo] (expected [pglane], [server.NAME], "
                             "[lane.NAME], [route.NAME] or [peers])"}},
    {BASE "[Lane.b]\n", {"test.ini:6: unknown section [Lane.b] (expected [pglane], [server.NAME], "
                         "[lane.NAME], [route.NAME] or [peers])"}},
    {BASE "[lane.a b]\n", {"test.ini:6: bad section name [lane.a b]: the name after the dot may "
                           "contain only letters, digits, '_' and '-'"}},
    {BASE "[server.]\n", {"test.ini:6: bad section name [server.]: the name after the dot may "
                          "contain only letters, digits, '_' and '-'"}},
    {BASE "[route." LONG50 "]\n", {"test.ini:6: section name [route." LONG50 "] is longer than 49 "
                                   "characters"}},
    {BASE "[lane.b\n", {"test.ini:6: expected ']' to close the section header"}},
    {BASE "[lane.b] junk\n", {"test.ini:6: unexpected text after the section header"}},
    {BASE "just text\n", {"test.ini:6: expected 'key = value' or '[section]'"}},
    {BASE "= 5\n", {"test.ini:6: missing key name before '='"}},
    {BASE "set." LONG50 " = 1\n", {"test.ini:6: key name 'set." LONG50 "' is longer than 49 "
                                   "characters"}},
    {BASE "work_mem = " LONG200 "\n", {"test.ini:6: line is longer than 198 characters (inih's "
                                       "limit)"}},
    {"size = 1\n" BASE, {"test.ini:1: key 'size' is outside of any section"}},
    /* [pglane] values */
    {"[pglane]\nauth_type = plain\ndefault_lane = a\n[server.s]\n[lane.a]\n",
     {"test.ini:2: auth_type: expected trust, md5 or scram-sha-256, got 'plain'",
      "test.ini:2: auth_file is required unless auth_type = trust"}},
    {BASE "[pglane]\n", {"test.ini:6: duplicate section [pglane] (first at line 1)"}},
    /* trust beyond loopback needs allow_trust */
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nlisten = 0.0.0.0:6432\n[server.s]\n[lane.a]\n",
     {"test.ini:2: auth_type = trust with listen = 0.0.0.0 beyond loopback needs allow_trust = yes"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nlisten = 127.0.0.1\n[server.s]\n[lane.a]\n",
     {"test.ini:4: listen: expected a comma-separated list of host:port (IPv6 as [::1]:6432), "
      "got '127.0.0.1'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nlisten = ::1:6432\n[server.s]\n[lane.a]\n",
     {"test.ini:4: listen: expected a comma-separated list of host:port (IPv6 as [::1]:6432), "
      "got '::1:6432'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nlisten = a:1,,b:2\n[server.s]\n[lane.a]\n",
     {"test.ini:4: listen: expected a comma-separated list of host:port (IPv6 as [::1]:6432), "
      "got 'a:1,,b:2'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nlisten = h:0\n[server.s]\n[lane.a]\n",
     {"test.ini:4: listen: expected a comma-separated list of host:port (IPv6 as [::1]:6432), "
      "got 'h:0'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nlisten = [zz]:1\n[server.s]\n[lane.a]\n",
     {"test.ini:4: listen: expected a comma-separated list of host:port (IPv6 as [::1]:6432), "
      "got '[zz]:1'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nmetrics_listen = 9127\n[server.s]\n[lane.a]\n",
     {"test.ini:4: metrics_listen: expected host:port (IPv6 as [::1]:9127), got '9127'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\npool_mode = statement\n[server.s]\n[lane.a]\n",
     {"test.ini:4: pool_mode: expected session or transaction, got 'statement'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nmax_client_conn = 0\n[server.s]\n[lane.a]\n",
     {"test.ini:4: max_client_conn: expected an integer from 1 to 1000000, got '0'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nmax_prepared_statements = -1\n[server.s]\n"
     "[lane.a]\n", {"test.ini:4: max_prepared_statements: expected an integer >= 0, got '-1'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nstats_fingerprints = 0\n[server.s]\n[lane.a]\n",
     {"test.ini:4: stats_fingerprints: expected an integer >= 1, got '0'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nmax_pools = 0\n[server.s]\n[lane.a]\n",
     {"test.ini:4: max_pools: expected an integer >= 1, got '0'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nreserve_admin_connections = -1\n[server.s]\n[lane.a]\n",
     {"test.ini:4: reserve_admin_connections: expected an integer from 0 to 1000000, got '-1'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nadmin_users = ops\nmax_client_conn = 5\n"
     "reserve_admin_connections = 5\n[server.s]\n[lane.a]\n",
     {"test.ini:6: reserve_admin_connections (5) must be below max_client_conn (5)"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nlog_level = verbose\n[server.s]\n[lane.a]\n",
     {"test.ini:4: log_level: expected error, warning, info or debug, got 'verbose'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nallow_trust = si\n[server.s]\n[lane.a]\n",
     {"test.ini:4: allow_trust: expected yes or no, got 'si'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\ntls_protocols = TLSv1.1\n[server.s]\n[lane.a]\n",
     {"test.ini:4: tls_protocols: expected a comma-separated list of TLSv1.2 and TLSv1.3, got "
      "'TLSv1.1'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nserver_idle_timeout = 1.5s\n[server.s]\n"
     "[lane.a]\n", {"test.ini:4: server_idle_timeout: expected a duration such as 250ms, 2s or "
                    "10min, got '1.5s'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nunix_socket_dir =\n[server.s]\n[lane.a]\n",
     {"test.ini:4: unix_socket_dir: expected a directory, got ''"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nhost = x\n[server.s]\n[lane.a]\n",
     {"test.ini:4: unknown key 'host' in [pglane]"}},
    /* cross-checks */
    {"[pglane]\nauth_type = trust\n[server.s]\n[lane.a]\n",
     {"test.ini:1: default_lane is required in [pglane]"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = zz\n[server.s]\n[lane.a]\n",
     {"test.ini:3: default_lane: lane 'zz' is not defined"}},
    {"[server.s]\n[lane.a]\n", {"test.ini: default_lane is required in [pglane]",
                                "test.ini: auth_file is required unless auth_type = trust"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\n",
     {"test.ini: no [server.NAME] section; at least one is required",
      "test.ini: no [lane.NAME] section; at least one is required",
      "test.ini:3: default_lane: lane 'a' is not defined"}},
    {"[pglane]\ndefault_lane = a\n[server.s]\n[lane.a]\n",
     {"test.ini:1: auth_file is required unless auth_type = trust"}},
    {"[pglane]\nauth_type = md5\ndefault_lane = a\n[server.s]\n[lane.a]\n",
     {"test.ini:2: auth_file is required unless auth_type = trust"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\ntls_mode = require\ntls_cert_file = c\n"
     "[server.s]\n[lane.a]\n", {"test.ini:4: tls_mode = require needs tls_cert_file and "
                                "tls_key_file"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\ntls_mode = allow\ntls_key_file = k\n"
     "[server.s]\n[lane.a]\n", {"test.ini:4: tls_mode = allow needs tls_cert_file and "
                                "tls_key_file"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\ntls_mode = on\n[server.s]\n[lane.a]\n",
     {"test.ini:4: tls_mode: expected disable, allow or require, got 'on'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\n[server.s]\n[server.t]\n[lane.a]\n",
     {"test.ini:6: lane a: server is required when there are several [server.NAME] sections"}},
    /* [server.NAME] values */
    {"[pglane]\nauth_type = trust\ndefault_lane = a\n[server.s]\nport = 0\n[lane.a]\n",
     {"test.ini:5: port: expected an integer from 1 to 65535, got '0'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\n[server.s]\nport = 65536\n[lane.a]\n",
     {"test.ini:5: port: expected an integer from 1 to 65535, got '65536'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\n[server.s]\nhost =\n[lane.a]\n",
     {"test.ini:5: host: expected a host name, address or socket directory, got ''"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\n[server.s]\nserver_tls_mode = verify\n[lane.a]\n",
     {"test.ini:5: server_tls_mode: expected disable, prefer, require, verify-ca or verify-full, "
      "got 'verify'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\n[server.s]\nsize = 1\n[lane.a]\n",
     {"test.ini:5: unknown key 'size' in [server.s]"}},
    /* [route.NAME] */
    {BASE "[route.r]\nkind = select\n", {"test.ini:6: route r: lane is required"}},
    {BASE "[route.r]\nlane = zz\n", {"test.ini:7: route r: lane 'zz' is not defined"}},
    {BASE "[route.r]\nlane = a\nclient_addr = 10.0.0.0/33\n",
     {"test.ini:8: client_addr: expected an address or CIDR such as 10.0.0.0/8 or ::1, got "
      "'10.0.0.0/33'"}},
    {BASE "[route.r]\nlane = a\nclient_addr = 10.0.0.0/8, localhost\n",
     {"test.ini:8: client_addr: expected an address or CIDR such as 10.0.0.0/8 or ::1, got "
      "'localhost'"}},
    {BASE "[route.r]\nlane = a\nclient_addr = ::1/129\n",
     {"test.ini:8: client_addr: expected an address or CIDR such as 10.0.0.0/8 or ::1, got "
      "'::1/129'"}},
    {BASE "[route.r]\nlane = a\nkind = select, selekt\n",
     {"test.ini:8: kind: expected one of select, insert, update, delete, merge, copy, ddl, refresh, "
      "vacuum, analyze, call, set, show, transaction, explain, utility or other, got 'selekt'"}},
    {BASE "[route.r]\nlane = a\ntables = \"abc\n",
     {"test.ini:8: tables: expected a table name such as events or public.\"Reports\", got "
      "'\"abc'"}},
    {BASE "[route.r]\nlane = a\ntables = a..b\n",
     {"test.ini:8: tables: expected a table name such as events or public.\"Reports\", got 'a..b'"}},
    {BASE "[route.r]\nlane = a\ntables = a,\n",
     {"test.ini:8: tables: expected a comma-separated list of table names, got 'a,'"}},
    {BASE "[route.r]\nlane = a\nsql = (abc\n",
     {"test.ini:8: sql: invalid regular expression at offset 4: missing closing parenthesis"}},
    {BASE "[route.r]\nlane = a\nsql = a{2,1}\n",
     {"test.ini:8: sql: invalid regular expression at offset 5: numbers out of order in {} "
      "quantifier"}},
    {BASE "[route.r]\nlane = a\nhint = 2\n", {"test.ini:8: hint: expected yes or no, got '2'"}},
    {BASE "[route.r]\nlane = a\nslower_than = 1 sec\n",
     {"test.ini:8: slower_than: expected a duration such as 250ms, 2s or 10min, got '1 sec'"}},
    {BASE "[route.r]\nlane = a\ndatabase = a,,b\n",
     {"test.ini:8: database: expected a comma-separated list of database names, got 'a,,b'"}},
    {BASE "[route.r]\nlane = a\nuser =\n",
     {"test.ini:8: user: expected a comma-separated list of user names, got ''"}},
    {BASE "[route.r]\nlane = a\napplication_name = ,x\n",
     {"test.ini:8: application_name: expected a comma-separated list of names or globs (* and ?), "
      "got ',x'"}},
    {BASE "[route.r]\nlane = a\nsize = 2\n", {"test.ini:8: unknown key 'size' in [route.r]"}},
    {BASE "[route.r]\nlane =\n", {"test.ini:7: lane: expected a lane name, got ''",
                                  "test.ini:6: route r: lane is required"}},
    /* peering */
    {"[pglane]\nauth_type = trust\ndefault_lane = a\npeer_id = 16384\n[server.s]\n[lane.a]\n",
     {"test.ini:4: peer_id: expected an integer from 0 to 16383, got '16384'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\nso_reuseport = maybe\n[server.s]\n[lane.a]\n",
     {"test.ini:4: so_reuseport: expected yes or no, got 'maybe'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\ntcp_keepcnt = 200\n[server.s]\n[lane.a]\n",
     {"test.ini:4: tcp_keepcnt: expected an integer from 0 to 127, got '200'"}},
    {"[pglane]\nauth_type = trust\ndefault_lane = a\ntcp_user_timeout = soon\n[server.s]\n[lane.a]\n",
     {"test.ini:4: tcp_user_timeout: expected a duration such as 250ms, 2s or 10min, got 'soon'"}},
    {BASE "[peers]\npeer.0 = 127.0.0.1:6432\n",
     {"test.ini:7: [peers]: key 'peer.0' is not a peer id: expected peer.N or N with N from 1 to 16383"}},
    {BASE "[peers]\nfoo = 127.0.0.1:6432\n",
     {"test.ini:7: [peers]: key 'foo' is not a peer id: expected peer.N or N with N from 1 to 16383"}},
    {BASE "[peers]\npeer.2 = 127.0.0.1\n",
     {"test.ini:7: peer.2: expected host:port (IPv6 as [::1]:6432) or host=HOST port=PORT, got '127.0.0.1'"}},
    {BASE "[peers]\n2 = host=/tmp port=x\n",
     {"test.ini:7: 2: expected host:port (IPv6 as [::1]:6432) or host=HOST port=PORT, got 'host=/tmp port=x'"}},
    {BASE "[peers]\n2 = port=6432\n",
     {"test.ini:7: 2: expected host:port (IPv6 as [::1]:6432) or host=HOST port=PORT, got 'port=6432'"}},
    {BASE "[peers]\npeer.2 = 127.0.0.1:6501\n2 = 127.0.0.1:6502\n",
     {"test.ini:8: [peers]: peer 2 is given twice (first at line 7)",
      "test.ini:7: [peers] lists other processes but peer_id is not set: give this process its own "
      "peer_id (1 to 16383), different from theirs"}},
    {BASE "[peers]\npeer.2 = 127.0.0.1:6501\n",
     {"test.ini:7: [peers] lists other processes but peer_id is not set: give this process its own "
      "peer_id (1 to 16383), different from theirs"}},
};

static void check_err_case(const struct err_case *ec, int nexpect)
{
    struct conf *c = (struct conf *)&c;   /* must be reset to NULL */
    struct conf_diag d = {0};
    int rc = conf_load_string(ec->text, "test.ini", &c, &d), bad = 0;

    if (d.n != nexpect)
        bad = 1;
    for (int i = 0; i < d.n && i < nexpect && !bad; i++)
        bad = strcmp(d.msgs[i], ec->msgs[i]) != 0;
    if (bad) {
        print_error("input:\n%s\n", ec->text);
        for (int i = 0; i < nexpect; i++)
            print_error("  want: %s\n", ec->msgs[i]);
        for (int i = 0; i < d.n; i++)
            print_error("  got:  %s\n", d.msgs[i]);
    }
    assert_int_equal(rc, -1);
    assert_null(c);
    conf_diag_free(&d);
    assert_false(bad);
}

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
        int n = 0;

        while (n < 5 && err_cases[i].msgs[n] != NULL)
            n++;
        check_err_case(&err_cases[i], n);
    }
}

static void test_many_errors_all_collected(void **state)
{
    const char *text = "[pglane]\nauth_type = md5\nmax_client_conn = lots\n[server.s]\nport = x\n"
                       "[lane.a]\nsize = 0\nsize = 1\nfoo = bar\n[lane.a]\n[route.r]\nlane = b\n"
                       "sql = [\n";
    static const char *const want[] = {
        "test.ini:3: max_client_conn: expected an integer from 1 to 1000000, got 'lots'",
        "test.ini:5: port: expected an integer from 1 to 65535, got 'x'",
        "test.ini:7: size: expected an integer from 1 to 10000, got '0'",
        "test.ini:8: duplicate key 'size' in [lane.a] (first at line 7)",
        "test.ini:9: unknown key 'foo' in [lane.a]",
        "test.ini:10: duplicate section [lane.a] (first at line 6)",
        "test.ini:13: sql: invalid regular expression at offset 1: missing terminating ] for "
        "character class",
        "test.ini:12: route r: lane 'b' is not defined",
        "test.ini:1: default_lane is required in [pglane]",
        "test.ini:2: auth_file is required unless auth_type = trust",
    };
    struct conf *c;
    struct conf_diag d = {0};

    (void)state;
    assert_int_equal(conf_load_string(text, "test.ini", &c, &d), -1);
    for (int i = 0; i < d.n; i++)
        print_message("got: %s\n", d.msgs[i]);
    assert_int_equal(d.n, sizeof want / sizeof want[0]);
    for (int i = 0; i < d.n; i++)
        assert_string_equal(d.msgs[i], want[i]);
    conf_diag_free(&d);
}

static void test_diag_appends_and_null_diag(void **state)
{
    struct conf *c;
    struct conf_diag d = {0};

    (void)state;
    assert_int_equal(conf_load_string(BASE "size = 0\n", "a.ini", &c, &d), -1);
    assert_int_equal(conf_load_string(BASE "size = 0\n", "b.ini", &c, &d), -1);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.msgs[1], "b.ini:6: size: expected an integer from 1 to 10000, got '0'");
    conf_diag_free(&d);
    assert_int_equal(d.n, 0);
    assert_int_equal(conf_load_string(BASE "size = 0\n", "a.ini", &c, NULL), -1);
    assert_null(c);
    conf_diag_free(NULL);
    conf_free(NULL);
}

static void test_missing_file(void **state)
{
    struct conf *c;
    struct conf_diag d = {0};
    struct conf_userlist u;

    (void)state;
    assert_int_equal(conf_load("tests/unit/no-such.ini", &c, &d), -1);
    assert_null(c);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.msgs[0], "tests/unit/no-such.ini: cannot open: No such file or directory");
    assert_int_equal(conf_userlist_load("no-such-userlist.txt", &u, &d), -1);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.msgs[1], "no-such-userlist.txt: cannot open: No such file or directory");
    conf_diag_free(&d);
}

/* ---------------------------------------------------------------- durations */

static void test_durations(void **state)
{
    static const struct { const char *s; int64_t ms; } ok[] = {
        {"0", 0}, {"00", 0}, {"0ms", 0}, {"0s", 0}, {"1us", 1}, {"999us", 1}, {"1000us", 1},
        {"1001us", 2}, {"250ms", 250}, {"250 ms", 250}, {"2s", 2000}, {"2\ts", 2000},
        {"10min", 600000}, {"10 min", 600000}, {"1h", 3600000}, {"1d", 86400000},
        {"30d", 2592000000LL}, {"9223372036854775807us", 9223372036854776LL},
    };
    static const char *const bad[] = {
        "", "5", "-1s", "+1s", "1.5s", "2 parsecs", "s", "2S", "2MS", " 2s", "2s ", "2sec", "1m",
        "1 m", "2ss", "2 s s", "99999999999999999999s", "106751991167301d", "0x10s", "1e3ms",
    };
    int64_t ms;

    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ms = -1;
        print_message("ok: '%s'\n", ok[i].s);
        assert_int_equal(conf_parse_duration(ok[i].s, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        print_message("bad: '%s'\n", bad[i]);
        assert_int_equal(conf_parse_duration(bad[i], &ms), -1);
    }
}

/* ---------------------------------------------------------------- example configs */

static void test_example_pglane_ini(void **state)
{
    struct conf *c = NULL;
    struct conf_diag d = {0};
    struct conf_userlist u;
    const struct conf_lane *oltp, *an;

    (void)state;
    assert_int_equal(conf_load("conf/pglane.ini", &c, &d), 0);
    for (int i = 0; i < d.n; i++)
        print_error("%s\n", d.msgs[i]);
    assert_int_equal(d.n, 0);
    assert_int_equal(c->nlisten, 1);
    assert_string_equal(c->listen[0].host, "127.0.0.1");
    assert_int_equal(c->listen[0].port, 6432);
    assert_int_equal(c->auth_type, CONF_AUTH_SCRAM);
    assert_string_equal(c->auth_file, "conf/userlist.txt");
    assert_int_equal(c->pool_mode, CONF_POOL_TRANSACTION);
    assert_int_equal(c->nservers, 1);
    assert_string_equal(c->servers[0].name, "main");
    assert_string_equal(c->servers[0].host, "127.0.0.1");
    assert_int_equal(c->servers[0].port, 6543);
    assert_int_equal(c->nlanes, 2);
    oltp = &c->lanes[conf_lane_find(c, "oltp")];
    an = &c->lanes[conf_lane_find(c, "analytics")];
    assert_int_equal(oltp->size, 20);
    assert_int_equal(an->size, 4);
    assert_string_equal(oltp->settings[0].name, "statement_timeout");
    assert_string_equal(oltp->settings[0].value, "2000");
    assert_int_equal(an->nsettings, 3);
    assert_string_equal(an->settings[2].name, "work_mem");
    assert_string_equal(c->default_lane, "oltp");
    assert_int_equal(c->default_lane_index, conf_lane_find(c, "oltp"));
    assert_true(c->nroutes >= 1);
    for (int i = 0; i < c->nroutes; i++)
        assert_int_equal(c->routes[i].lane, conf_lane_find(c, "analytics"));

    assert_int_equal(conf_userlist_load(c->auth_file, &u, &d), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(u.n, 3);      /* pglane, and InsightsNow's two roles for make run */
    assert_string_equal(conf_userlist_find(&u, "pglane"), "pglane");
    assert_string_equal(conf_userlist_find(&u, "insightsuser"), "insightspass");
    conf_userlist_free(&u);
    conf_free(c);
}

static void test_example_insightsnow_ini(void **state)
{
    struct conf *c = NULL;
    struct conf_diag d = {0};

    (void)state;
    assert_int_equal(conf_load("conf/insightsnow.ini", &c, &d), 0);
    for (int i = 0; i < d.n; i++)
        print_error("%s\n", d.msgs[i]);
    assert_int_equal(d.n, 0);
    assert_string_equal(c->metrics.host, "127.0.0.1");
    assert_int_equal(c->metrics.port, 9127);
    assert_int_equal(c->lanes[1].nsettings, 4);
    assert_string_equal(c->lanes[1].settings[3].name, "max_parallel_workers_per_gather");
    assert_string_equal(c->lanes[1].settings[3].value, "0");
    assert_int_equal(c->lanes[1].size, 1);
    assert_int_equal(c->servers[0].port, 6543);    /* make run's cluster */
    assert_int_equal(c->nroutes, 6);
    conf_free(c);
}

/* A copied lane and server own their strings: they outlive the configuration they came from. */
static void test_lane_and_server_copies(void **state)
{
    struct conf *c = NULL;
    struct conf_diag d = {0};
    struct conf_lane l;
    struct conf_server s;

    (void)state;
    assert_int_equal(conf_load("conf/insightsnow.ini", &c, &d), 0);
    assert_int_equal(conf_lane_copy(&l, &c->lanes[1]), 0);
    assert_int_equal(conf_server_copy(&s, &c->servers[0]), 0);
    assert_ptr_not_equal(l.name, c->lanes[1].name);
    assert_ptr_not_equal(l.settings, c->lanes[1].settings);
    conf_free(c);                       /* under ASan, any string still shared would be reported below */
    assert_string_equal(l.name, "analytics");
    assert_int_equal(l.size, 1);
    assert_int_equal(l.nsettings, 4);
    assert_string_equal(l.settings[3].name, "max_parallel_workers_per_gather");
    assert_string_equal(l.settings[3].value, "0");
    assert_int_equal(l.preemptible, 1);
    assert_string_equal(s.name, "primary");
    assert_string_equal(s.host, "127.0.0.1");
    assert_int_equal(s.port, 6543);
    assert_null(s.tls_ca_file);
    conf_lane_clear(&l);
    conf_server_clear(&s);
    assert_null(l.name);
    assert_null(s.host);
}

/* The adaptive cap's keys: defaults, values, the checks between them, copies. */
static void test_adapt_keys(void **state)
{
    static const struct err_case cases[] = {
        {BASE "protects = nope\ntarget_p99 = 25ms\n", {"test.ini:6: lane a: protects: lane 'nope' is not defined"}},
        {BASE "protects = a\ntarget_p99 = 25ms\n", {"test.ini:6: lane a: protects: a lane cannot protect itself"}},
        {BASE "protects =\n", {"test.ini:6: protects: expected a lane name, got ''"}},
        {BASE "[lane.b]\nprotects = a\n", {"test.ini:7: lane b: target_p99 must be above 0 when protects is given"}},
        {BASE "[lane.b]\nprotects = a\ntarget_p99 = 0\n",
         {"test.ini:8: lane b: target_p99 must be above 0 when protects is given"}},
        {BASE "target_p99 = 25ms\n", {"test.ini:6: lane a: target_p99 needs protects = LANE (the lane whose p99 it is)"}},
        {BASE "[lane.b]\nprotects = a\ntarget_p99 = fast\n",
         {"test.ini:8: target_p99: expected a duration such as 250ms, 2s or 10min, got 'fast'",
          "test.ini:8: lane b: target_p99 must be above 0 when protects is given"}},
        {BASE "adapt_interval = 50ms\n", {"test.ini:6: lane a: adapt_interval must be at least 100ms"}},
        {BASE "size = 4\nmin_size = 5\n", {"test.ini:7: lane a: min_size (5) is above size (4)"}},
        {BASE "min_size = 0\n", {"test.ini:6: min_size: expected an integer from 1 to 10000, got '0'"}},
        {BASE "adapt_min_samples = 0\n",
         {"test.ini:6: adapt_min_samples: expected an integer from 1 to 1000000, got '0'"}},
    };
    struct conf *c;
    struct conf_lane l;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_err_case(&cases[i], cases[i].msgs[1] ? 2 : 1);
    c = load_ok(BASE "[lane.b]\nsize = 8\n");
    assert_null(c->lanes[1].protects);
    assert_int_equal(c->lanes[1].protects_lane, -1);
    assert_int_equal(c->lanes[1].adapt_interval_ms, 1000);
    assert_int_equal(c->lanes[1].min_size, 1);
    assert_int_equal(c->lanes[1].adapt_min_samples, 20);
    conf_free(c);
    /* a lane may protect one defined after it */
    c = load_ok("[pglane]\nauth_type = trust\ndefault_lane = a\n[server.s]\n[lane.b]\nsize = 8\nprotects = a\n"
                "target_p99 = 25ms\nadapt_interval = 250ms\nmin_size = 2\nadapt_min_samples = 50\n[lane.a]\n");
    assert_string_equal(c->lanes[0].protects, "a");
    assert_int_equal(c->lanes[0].protects_lane, 1);
    assert_int_equal(c->lanes[0].target_p99_ms, 25);
    assert_int_equal(c->lanes[0].adapt_interval_ms, 250);
    assert_int_equal(c->lanes[0].min_size, 2);
    assert_int_equal(c->lanes[0].adapt_min_samples, 50);
    assert_int_equal(conf_lane_copy(&l, &c->lanes[0]), 0);
    assert_ptr_not_equal(l.protects, c->lanes[0].protects);
    conf_free(c);                       /* the copy owns its string (ASan) */
    assert_string_equal(l.protects, "a");
    conf_lane_clear(&l);
    assert_null(l.protects);
}

/* Replicas: a lane's server list and its keys, the route's read_only. */
static void test_replica_keys(void **state)
{
#define RBASE "[pglane]\nauth_type = trust\ndefault_lane = a\n[server.p]\n[server.r1]\n[server.r2]\n[lane.a]\n"
    static const struct err_case cases[] = {
        {RBASE "server = r1, nope, p\n", {"test.ini:8: lane a: server 'nope' is not defined"}},
        {RBASE "server = r1, p, r1\n", {"test.ini:8: lane a: server 'r1' is listed twice"}},
        {RBASE "server = r1,,p\n",
         {"test.ini:8: lane a: server: expected a server name or a comma-separated list of them"}},
        {RBASE "server = p\nbalance = random\n",
         {"test.ini:9: balance: expected least-busy or round-robin, got 'random'"}},
        {RBASE "server = p\nreplica_fallback = wait\n",
         {"test.ini:9: replica_fallback: expected primary, queue or error, got 'wait'"}},
        {RBASE "server = p\nmax_replica_lag = soon\n",
         {"test.ini:9: max_replica_lag: expected a duration such as 250ms, 2s or 10min, got 'soon'"}},
        {RBASE "server = p\nmax_replica_lag_bytes = 16XB\n",
         {"test.ini:9: max_replica_lag_bytes: expected a byte count such as 16MB (a number with B, kB, MB, GB "
          "or TB, or none), got '16XB'"}},
        {RBASE "server = p\nread_your_writes = maybe\n",
         {"test.ini:9: read_your_writes: expected yes or no, got 'maybe'"}},
        {RBASE "server = p\n[route.r]\nlane = a\nread_only = always\n",
         {"test.ini:11: read_only: expected grammar or trust, got 'always'"}},
    };
    struct conf *c;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_err_case(&cases[i], 1);
    c = load_ok(RBASE "server = r2, r1 , p\nbalance = round-robin\nmax_replica_lag = 2s\n"
                "max_replica_lag_bytes = 16MB\nreplica_fallback = queue\nread_your_writes = on\n"
                "[lane.b]\nserver = p\n[route.x]\nlane = a\nread_only = trust\n");
    assert_int_equal(c->lanes[0].nservers, 3);
    assert_int_equal(c->lanes[0].servers[0], 2);
    assert_int_equal(c->lanes[0].servers[1], 1);
    assert_int_equal(c->lanes[0].servers[2], 0);
    assert_int_equal(c->lanes[0].server, 2);
    assert_int_equal(c->lanes[0].balance, CONF_BALANCE_ROUND_ROBIN);
    assert_int_equal(c->lanes[0].max_replica_lag_ms, 2000);
    assert_int_equal(c->lanes[0].max_replica_lag_bytes, 16 * 1024 * 1024);
    assert_int_equal(c->lanes[0].replica_fallback, CONF_FALLBACK_QUEUE);
    assert_int_equal(c->lanes[0].read_your_writes, 1);
    assert_int_equal(c->lanes[1].nservers, 1);
    assert_int_equal(c->lanes[1].server, 0);
    assert_int_equal(c->lanes[1].balance, CONF_BALANCE_LEAST_BUSY);
    assert_int_equal(c->lanes[1].replica_fallback, CONF_FALLBACK_PRIMARY);
    assert_int_equal(c->lanes[1].read_your_writes, 0);
    assert_int_equal(c->routes[0].read_only_trust, 1);
    conf_free(c);
    c = load_ok(BASE);
    assert_int_equal(c->lanes[0].nservers, 1);
    assert_int_equal(c->lanes[0].servers[0], 0);
    conf_free(c);
#undef RBASE
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_lane_tenants),
        cmocka_unit_test(test_default_auth_type_is_scram),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_listen_list),
        cmocka_unit_test(test_pglane_misc),
        cmocka_unit_test(test_peers),
        cmocka_unit_test(test_paths_resolved_against_ini_folder),
        cmocka_unit_test(test_lane_settings_in_file_order),
        cmocka_unit_test(test_work_mem_forms),
        cmocka_unit_test(test_route_lists),
        cmocka_unit_test(test_every_kind),
        cmocka_unit_test(test_route_sql_compiled),
        cmocka_unit_test(test_syntax_tolerance),
        cmocka_unit_test(test_multiple_servers),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_many_errors_all_collected),
        cmocka_unit_test(test_diag_appends_and_null_diag),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_example_pglane_ini),
        cmocka_unit_test(test_example_insightsnow_ini),
        cmocka_unit_test(test_lane_and_server_copies),
        cmocka_unit_test(test_adapt_keys),
        cmocka_unit_test(test_replica_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
