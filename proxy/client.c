/*
 * Client connections: startup and authentication against the auth_file, then the forwarding of the
 * client's messages to whatever server connection its pool hands it, one transaction (transaction
 * pooling) or one session (session pooling) at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/proxy.h"
#include "proxy/state.h"
#include "routing/route.h"

/* Query and Parse messages up to this size are read whole in transaction pooling, so that routing
 * and the session-change check can look at their text; larger ones stream through. */
#define ROUTE_MAX_MSG (64u * 1024)
#define OVERSIZE_MSG "pglane: a Parse, Describe or Close message over 64 MB cannot be mapped to a shared " \
                     "prepared statement"

#define CLOG(cl, lvl, fmt, ...) \
    px_log(lvl, "C-%llu %s " PX_LOG_NAME "/" PX_LOG_NAME ": " fmt, (unsigned long long)(cl)->conn.id, PX_CLIENT_ADDR(cl), \
           (cl)->user ? (cl)->user : "-", (cl)->database ? (cl)->database : "-", __VA_ARGS__)

static int startup_known(struct px_client *cl, const struct px_pool *pool);

static void client_send(struct px_client *cl, struct proto_buf *b)
{
    if (b->failed || px_conn_send_copy(&cl->conn, b->data, b->len) < 0)
        px_client_close(cl, "cannot write to client");
    proto_buf_free(b);
}

/* A FATAL ErrorResponse, then the connection is closed once it is written. */
static void client_fatal(struct px_client *cl, const char *sqlstate, const char *message)
{
    struct proto_buf b;

    CLOG(cl, CONF_LOG_INFO, "closing: %.300s (%s)", message, sqlstate);
    proto_buf_init(&b);
    proto_build_error(&b, "FATAL", sqlstate, message, NULL, NULL);
    if (!b.failed)
        (void)px_conn_send_copy(&cl->conn, b.data, b.len);
    proto_buf_free(&b);
    px_client_close(cl, message);
}

void px_client_fail(struct px_client *cl, const char *sqlstate, const char *message)
{
    client_fatal(cl, sqlstate, message);
}

void px_client_fail_raw(struct px_client *cl, const uint8_t *msg, uint32_t len)
{
    (void)px_conn_send_copy(&cl->conn, msg, len);
    px_client_close(cl, "server error");
}

/* The client's stream calls these (proxy/net/stream.h). */
static void stream_read(struct px_conn *c)
{
    px_client_on_read((struct px_client *)c);
}

static void stream_eof(struct px_conn *c, int status)
{
    px_client_on_eof((struct px_client *)c, status);
}

static void stream_sent(struct px_conn *c)
{
    px_client_on_sent((struct px_client *)c);
}

static void stream_closed(struct px_conn *c)
{
    px_client_free((struct px_client *)c);
}

/* The stream whose bytes the client's writes carry: its server's. */
static struct px_conn *stream_peer(struct px_conn *c)
{
    struct px_server *sv = ((struct px_client *)c)->server;

    return sv ? &sv->conn : NULL;
}

static const struct px_stream_ops client_stream_ops = {
    .tag = 'C', .on_read = stream_read, .on_eof = stream_eof, .on_sent = stream_sent,
    .on_closed = stream_closed, .peer = stream_peer,
};

void px_client_accept(struct proxy *px, uv_stream_t *listener)
{
    struct px_client *cl = calloc(1, sizeof(*cl));
    int r;

    if (!cl)
        return;
    px_conn_init(px, &cl->conn, &client_stream_ops);
    px_list_init(&cl->wait_link);
    r = px_sock_init_like(px->loop, listener, &cl->conn.h);
    if (r < 0) {
        free(cl);
        return;
    }
    _Static_assert(CL_STARTUP == 0, "a client starts in CL_STARTUP as calloc leaves it");
    cl->connect_ms = px_now_ms(px);
    px_list_append(&px->clients, &cl->link);
    px->nclients++;
    if (uv_accept(listener, &cl->conn.h.stream) < 0) {
        px_client_close(cl, "accept failed");
        return;
    }
    px_sock_set_options(&cl->conn.h);
    px_sock_peer(&cl->conn.h, &cl->peer_family, cl->peer_addr, &cl->peer_port);
    /* Over max_client_conn: answered after the startup packet, where libpq expects an error. */
    cl->over_limit = px->nclients > px->conf->max_client_conn;
    px_conn_read_start(&cl->conn);
}

const char *px_client_addr(const struct px_client *cl, char *buf, size_t n)
{
    return px_sock_addr_name(cl->peer_family, cl->peer_addr, buf, n);
}

struct px_client *px_client_by_cancel_key(struct proxy *px, uint32_t pid, uint32_t key)
{
    for (struct px_list *it = px->clients.next; it != &px->clients; it = it->next) {
        struct px_client *cl = px_container_of(it, struct px_client, link);

        if (cl->cancel_pid == pid && cl->cancel_key == key && cl->state != CL_STARTUP)
            return cl;
    }
    return NULL;
}

/* ParameterStatus of the pool's first login, with the client's own values, then BackendKeyData. */
static void finish_login(struct px_client *cl)
{
    struct px_pool *pool = cl->pool;
    struct proto_buf b;

    proto_buf_init(&b);
    for (int i = 0; i < pool->nparams; i++) {
        int p = px_param_find(pool->params[i].name);
        const char *value = p >= 0 && cl->want.v[p] ? cl->want.v[p] : pool->params[i].value;

        proto_build_param_status(&b, pool->params[i].name, value);
    }
    proto_build_backend_key(&b, cl->cancel_pid, cl->cancel_key);
    proto_build_ready(&b, 'I');
    client_send(cl, &b);
    CLOG(cl, CONF_LOG_DEBUG, "login complete, lane %s", pool->lane->conf->name);
}

static int is_admin_user(const struct conf *c, const char *user)
{
    for (int i = 0; i < c->nadmin_users; i++)
        if (strcmp(c->admin_users[i], user) == 0)
            return 1;
    return 0;
}

/*
 * reserve_admin_connections: once the clients (this one included) fill max_client_conn minus the
 * reserve, only admin_users get in, so that one user cannot lock the operators out. Without
 * admin_users nobody could use the reserve, so none is kept.
 */
static int in_admin_reserve(struct px_client *cl)
{
    const struct conf *c = cl->conn.px->conf;

    return c->nadmin_users > 0 && cl->conn.px->nclients > c->max_client_conn - c->reserve_admin_connections &&
           !is_admin_user(c, cl->user);
}

/* The virtual database "pglane": the admin console, for admin_users only. */
static void admin_login(struct px_client *cl)
{
    static const char *const params[][2] = {
        { "server_version", "15.0 (pglane " PGLANE_VERSION ")" }, { "server_encoding", "UTF8" },
        { "client_encoding", "UTF8" }, { "DateStyle", "ISO, MDY" }, { "integer_datetimes", "on" },
        { "standard_conforming_strings", "on" }, { "TimeZone", "UTC" }, { "IntervalStyle", "postgres" },
    };
    struct proto_buf b;

    if (!is_admin_user(cl->conn.px->conf, cl->user)) {
        client_fatal(cl, "42501", "pglane: only admin_users may connect to the admin console");
        return;
    }
    proto_buf_init(&b);
    proto_build_auth_ok(&b);
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
        proto_build_param_status(&b, params[i][0], params[i][1]);
    proto_build_backend_key(&b, cl->cancel_pid, cl->cancel_key);
    proto_build_ready(&b, 'I');
    px_client_set_state(cl, CL_ADMIN);
    client_send(cl, &b);
    CLOG(cl, CONF_LOG_INFO, "%s", "admin console login");
}

/* Simple-protocol commands of the admin console, one answer each. */
static void admin_read(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;
    struct proto_frame f;
    const char *err;
    size_t used;
    int r;

    while (cl->state == CL_ADMIN && b->pos < b->len) {
        r = proto_frame_next(b->data + b->pos, b->len - b->pos, PROTO_PHASE_FRONTEND, &f, &used, &err);
        if (r == PROTO_FRAME_NEED_MORE) {
            if (px_buf_reserve(b, PROTO_HEADER_LEN + 1) < 0)
                client_fatal(cl, "54000", "pglane: admin command too long");
            return;
        }
        if (r == PROTO_FRAME_ERROR) {
            client_fatal(cl, "08P01", err);
            return;
        }
        b->pos += (uint32_t)used;
        b->start = b->pos;
        if (f.type == PROTO_FE_TERMINATE) {
            px_client_close(cl, "client terminated");
            return;
        }
        if (f.type != PROTO_FE_QUERY || f.len == 0) {
            struct proto_buf out;

            proto_buf_init(&out);
            proto_build_error(&out, "ERROR", "0A000", "pglane admin console: only simple queries are supported",
                              NULL, "Use psql, or PQexec without parameters.");
            if (f.type == PROTO_FE_SYNC || f.type == PROTO_FE_QUERY)
                proto_build_ready(&out, 'I');
            client_send(cl, &out);
            continue;
        }
        px_admin_query(cl, (const char *)f.body, f.len - 1);
    }
    if (cl->state == CL_ADMIN && b->start == b->len)
        px_buf_release(b);
}

/* The pool of the lane chosen for the client's next transaction (or session). */
static struct px_pool *lane_pool(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;
    struct px_lane *lane = px->lanes[cl->lane];

    if (cl->pool && cl->pool->lane == lane)
        return cl->pool;
    return px_pool_get(px, lane, cl->database, cl->user);
}

/* lane_pool gave nothing: max_pools reached (53300) or out of memory. */
static void no_pool(struct px_client *cl)
{
    const char *sqlstate, *message;

    px_pool_get_error(cl->conn.px, &sqlstate, &message);
    client_fatal(cl, sqlstate, message);
}

static void login_ok(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;
    struct px_pool *pool;
    int lane;
    struct proto_buf b;

    if (cl->admin) {
        admin_login(cl);
        return;
    }
    proto_buf_init(&b);
    proto_build_auth_ok(&b);
    client_send(cl, &b);
    if (cl->state == CL_CLOSED)
        return;
    lane = px_route_client(px, cl);
    cl->lane = (int16_t)(lane >= 0 ? lane : px->conf->default_lane_index);
    pool = lane_pool(cl);
    if (!pool) {
        no_pool(cl);
        return;
    }
    cl->pool = pool;
    /* The pool holds the same names for as long as pglane runs: share them. */
    free(cl->user);
    free(cl->database);
    cl->user = pool->user;
    cl->database = pool->database;
    cl->names_shared = 1;
    if (cl->scram && cl->scram_ok && !pool->have_scram_keys) {
        memcpy(pool->scram_client_key, cl->scram->client_key, PROTO_SCRAM_KEY_LEN);
        memcpy(pool->scram_server_key, cl->scram->secret.server_key, PROTO_SCRAM_KEY_LEN);
        pool->have_scram_keys = 1;
    }
    free(cl->scram);
    cl->scram = NULL;
    /* Startup settings no server of the pool accepted before are checked by one now: PostgreSQL's
     * own answer (a refusal, the value as it reports it) reaches the client before login completes. */
    cl->validate = !startup_known(cl, pool);
    if (!cl->validate && pool->params_ready && px->conf->pool_mode == CONF_POOL_TRANSACTION) {
        px_client_set_state(cl, CL_IDLE);
        finish_login(cl);
        return;
    }
    px_client_set_state(cl, CL_LOGIN_WAIT);
    px_pool_acquire(pool, cl);
}

static const char *user_secret(struct px_client *cl)
{
    return conf_userlist_find(&cl->conn.px->users, cl->user);
}

static void auth_failed(struct px_client *cl, const char *why)
{
    char msg[256];

    CLOG(cl, CONF_LOG_WARNING, "authentication failed: %s", why);
    snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"", cl->user);
    client_fatal(cl, "28P01", msg);
}

/* Why no password can log this user in under md5 (scram 0) or SCRAM (scram 1), or NULL. */
static const char *unusable_secret(struct px_client *cl, int scram)
{
    const char *s = user_secret(cl);

    if (!s)
        return "user not in auth_file";
    if (!*s)
        return "empty password in auth_file";
    if (scram && strncmp(s, "md5", 3) == 0 && strlen(s) == 35)
        return "an md5 secret in auth_file cannot verify SCRAM";
    if (!scram && strncmp(s, "SCRAM-SHA-256$", 14) == 0)
        return "a SCRAM secret in auth_file cannot verify md5";
    return NULL;
}

/*
 * The stand-in secret of a user who cannot log in (see proto_scram_mock_secret): the exchange then
 * runs as for a wrong password, so SCRAM does not tell which users exist.
 */
static int mock_secret(struct px_client *cl, struct proto_scram_secret *out)
{
    struct proxy *px = cl->conn.px;

    if (!px->scram_mock_ready) {
        if (uv_random(NULL, NULL, px->scram_mock_key, sizeof(px->scram_mock_key), 0, NULL) < 0)
            return -1;
        px->scram_mock_ready = 1;
    }
    return proto_scram_mock_secret(px->scram_mock_key, cl->user, out);
}

/* SCRAM-SHA-256-PLUS (tls-server-end-point channel binding) is offered on TLS connections whose
 * certificate has a usable hash. */
static int scram_plus_offered(struct px_client *cl)
{
    uint8_t hash[PROTO_SCRAM_MAX_CBIND];
    size_t n;

    return cl->conn.tls && px_tls_endpoint_hash(&cl->conn, hash, sizeof(hash), &n) == 0;
}

/* On TLS, tells the SCRAM exchange that PLUS was offered, with the binding data. 0 or -1. */
static int scram_bind(struct px_client *cl, int plus)
{
    uint8_t hash[PROTO_SCRAM_MAX_CBIND];
    size_t n;

    if (!cl->conn.tls || px_tls_endpoint_hash(&cl->conn, hash, sizeof(hash), &n) < 0)
        return plus ? -1 : 0;
    return proto_scram_server_bind(cl->scram, hash, n, plus);
}

/* The SCRAM secret of a user: stored in the auth_file, or derived once from a plaintext password. */
static int scram_secret(struct px_client *cl, struct proto_scram_secret *out)
{
    struct proxy *px = cl->conn.px;
    const char *secret = user_secret(cl);
    struct px_scram_cache *c;
    uint8_t salt[16];

    if (unusable_secret(cl, 1))
        return -1;
    if (strncmp(secret, "SCRAM-SHA-256$", 14) == 0)
        return proto_scram_parse_secret(secret, out);
    if (strncmp(secret, "md5", 3) == 0 && strlen(secret) == 35)
        return -1;
    for (c = px->scram_cache; c; c = c->next)
        if (strcmp(c->user, cl->user) == 0 && strcmp(c->password, secret) == 0) {
            *out = c->secret;
            return 0;
        }
    if (uv_random(NULL, NULL, salt, sizeof(salt), 0, NULL) < 0 ||
        proto_scram_make_secret(secret, salt, sizeof(salt), PROTO_SCRAM_DEFAULT_ITERATIONS, out) < 0)
        return -1;
    c = calloc(1, sizeof(*c));
    if (c) {
        c->user = strdup(cl->user);
        c->password = strdup(secret);
        c->secret = *out;
        c->next = px->scram_cache;
        px->scram_cache = c;
    }
    return 0;
}

static void start_auth(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;
    struct proto_buf b;

    proto_buf_init(&b);
    switch (px->conf->auth_type) {
    case CONF_AUTH_TRUST:
        proto_buf_free(&b);
        login_ok(cl);
        return;
    case CONF_AUTH_MD5:
        if (uv_random(NULL, NULL, cl->md5_salt, sizeof(cl->md5_salt), 0, NULL) < 0) {
            proto_buf_free(&b);
            client_fatal(cl, "XX000", "pglane: no randomness for the MD5 salt");
            return;
        }
        proto_build_auth_md5(&b, cl->md5_salt);
        px_client_set_state(cl, CL_AUTH_PASSWORD);
        break;
    case CONF_AUTH_SCRAM: {
        static const char *const mechs[] = { "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256" };
        int plus = scram_plus_offered(cl);   /* over TLS only */

        proto_build_auth_sasl(&b, mechs + !plus, 2 - !plus);
        px_client_set_state(cl, CL_AUTH_SASL_INIT);
        break;
    }
    }
    client_send(cl, &b);
}

/* PostgreSQL's parse_bool: true/false, yes/no, on/off (any unique prefix), 1/0. 1, 0, or -1 if neither. */
static int parse_bool(const char *v)
{
    size_t n = strlen(v);

    if (n == 0)
        return -1;
    if (strncasecmp(v, "true", n) == 0 || strncasecmp(v, "yes", n) == 0 || strcmp(v, "1") == 0 ||
        (n >= 2 && strncasecmp(v, "on", n) == 0))
        return 1;
    if (strncasecmp(v, "false", n) == 0 || strncasecmp(v, "no", n) == 0 || strcmp(v, "0") == 0 ||
        (n >= 2 && strncasecmp(v, "off", n) == 0))
        return 0;
    return -1;
}

/* NegotiateProtocolVersion, as PostgreSQL 15 sends it for a 3.x request with x > 0 or _pq_ options. */
static void negotiate_version(struct px_client *cl, const struct proto_startup *st)
{
    struct proto_buf b;
    size_t start;
    uint32_t n = 0;

    for (int i = 0; i < st->nparams; i++)
        n += strncmp(st->params[i].name, "_pq_.", 5) == 0;
    if ((st->version & 0xffff) == 0 && n == 0)
        return;
    proto_buf_init(&b);
    start = proto_msg_begin(&b, PROTO_BE_NEGOTIATE_VERSION);
    proto_put_u32(&b, 3u << 16);
    proto_put_u32(&b, n);
    for (int i = 0; i < st->nparams; i++)
        if (strncmp(st->params[i].name, "_pq_.", 5) == 0)
            proto_put_cstr(&b, st->params[i].name);
    proto_msg_end(&b, start);
    client_send(cl, &b);
}

static void startup_clear(struct px_client *cl)
{
    for (int i = 0; i < cl->nstartup; i++) {
        free(cl->startup[i].name);
        free(cl->startup[i].value);
        free(cl->startup[i].norm);
    }
    free(cl->startup);
    cl->startup = NULL;
    cl->nstartup = 0;
}

/* Records a startup setting (a repeated name keeps its last value, as in PostgreSQL). 0 or -1. */
static int startup_add(struct px_client *cl, const char *name, const char *value)
{
    struct px_checked *c;
    char *v;

    for (int i = 0; i < cl->nstartup; i++)
        if (strcasecmp(cl->startup[i].name, name) == 0) {
            if (!(v = strdup(value)))
                return -1;
            free(cl->startup[i].value);
            cl->startup[i].value = v;
            return 0;
        }
    if (!(c = realloc(cl->startup, sizeof(*c) * (size_t)(cl->nstartup + 1))))
        return -1;
    cl->startup = c;
    c += cl->nstartup;
    c->name = strdup(name);
    c->value = strdup(value);
    c->norm = NULL;
    if (!c->name || !c->value) {
        free(c->name);
        free(c->value);
        return -1;
    }
    cl->nstartup++;
    return 0;
}

static int copy_startup(struct px_client *cl, const struct proto_startup *st)
{
    const char *user = proto_startup_get(st, "user");
    const char *db = proto_startup_get(st, "database");

    if (!user || !*user) {
        client_fatal(cl, "28000", "no PostgreSQL user name specified in startup packet");
        return -1;
    }
    cl->user = strdup(user);
    cl->database = strdup(db && *db ? db : user);
    if (!cl->user || !cl->database) {
        client_fatal(cl, "53200", "pglane: out of memory");
        return -1;
    }
    for (int i = 0; i < st->nparams; i++) {
        const char *name = st->params[i].name, *value = st->params[i].value;

        if (strcmp(name, "user") == 0 || strcmp(name, "database") == 0 || strncmp(name, "_pq_.", 5) == 0)
            continue;
        if (strcmp(name, "replication") == 0) {
            int b = parse_bool(value);

            if (b == 0)
                continue;          /* replication=false: an ordinary connection */
            if (b < 0 && strcmp(value, "database") != 0) {
                char msg[128];

                snprintf(msg, sizeof(msg), "invalid value for parameter \"replication\": \"%.64s\"", value);
                client_fatal(cl, "22023", msg);
                return -1;
            }
            client_fatal(cl, "08004", "pglane does not proxy replication connections");
            return -1;
        }
        if (strcmp(name, "options") == 0) {
            if (!*value)
                continue;
            client_fatal(cl, "08004", "pglane: startup parameter \"options\" is not supported; "
                                      "use lane settings or SET");
            return -1;
        }
        /* Any other parameter is a setting: checked by a server of the pool at login (as PostgreSQL
         * checks it), then applied for this client in each of its transactions. */
        if (startup_add(cl, name, value) < 0) {
            client_fatal(cl, "53200", "pglane: out of memory");
            return -1;
        }
        if (px_param_find(name) >= 0)   /* routing by identity looks at it before the check */
            px_params_set(&cl->want, px_param_find(name), value);
    }
    negotiate_version(cl, st);
    return cl->state == CL_CLOSED ? -1 : 0;
}

/* The pool's record of a startup value a server accepted, or NULL. */
static const struct px_checked *checked_find(const struct px_pool *pool, const struct px_checked *kv)
{
    for (int i = 0; i < pool->nchecked; i++)
        if (strcasecmp(pool->checked[i].name, kv->name) == 0 && strcmp(pool->checked[i].value, kv->value) == 0)
            return &pool->checked[i];
    return NULL;
}

static void checked_add(struct px_pool *pool, const char *name, const char *value, const char *norm)
{
    struct px_checked *c;

    if (pool->nchecked >= PX_CHECKED_MAX || !(c = realloc(pool->checked, sizeof(*c) * (size_t)(pool->nchecked + 1))))
        return;
    pool->checked = c;
    c += pool->nchecked;
    c->name = strdup(name);
    c->value = strdup(value);
    c->norm = strdup(norm);
    if (c->name && c->value && c->norm) {
        pool->nchecked++;
        return;
    }
    free(c->name);
    free(c->value);
    free(c->norm);
}

/* The startup values, now as PostgreSQL has them, become the client's wanted settings. */
static int apply_startup(struct px_client *cl)
{
    int rc = 0;

    for (int i = 0; i < cl->nstartup; i++) {
        const struct px_checked *c = &cl->startup[i];
        const char *v = c->norm ? c->norm : c->value;
        int p = px_param_find(c->name);

        if (p >= 0)
            px_params_set(&cl->want, p, v);
        else if (px_kvlist_set(&cl->gucs, c->name, v) < 0)
            rc = -1;
    }
    startup_clear(cl);
    return rc;
}

/* An application_name PostgreSQL keeps as it is: under NAMEDATALEN bytes of printable ASCII (a
 * longer one is truncated with a NOTICE, other bytes become '?': a server says how). */
static int plain_app_name(const struct px_checked *c)
{
    size_t n = 0;

    if (strcasecmp(c->name, "application_name") != 0)
        return 0;
    for (const char *p = c->value; *p; p++, n++)
        if (*p < 32 || *p > 126 || n >= 63)
            return 0;
    return 1;
}

/* A tracked parameter's value exactly as the pool's servers report it by default (UTF8, "ISO, MDY"). */
static int server_default(const struct px_checked *c, const struct px_pool *pool)
{
    int p = px_param_find(c->name);

    return p >= 0 && pool->defaults.v[p] && strcmp(pool->defaults.v[p], c->value) == 0;
}

/* 1 if every startup value is one the pool's servers accepted before (then applied), else 0. */
static int startup_known(struct px_client *cl, const struct px_pool *pool)
{
    for (int i = 0; i < cl->nstartup; i++)
        if (!plain_app_name(&cl->startup[i]) && !server_default(&cl->startup[i], pool) &&
            !checked_find(pool, &cl->startup[i]))
            return 0;
    for (int i = 0; i < cl->nstartup; i++) {
        const struct px_checked *c = checked_find(pool, &cl->startup[i]);

        free(cl->startup[i].norm);
        cl->startup[i].norm = strdup(c ? c->norm : cl->startup[i].value);
        if (!cl->startup[i].norm)
            return 0;
    }
    return apply_startup(cl) == 0;
}

/* Sends a server's ErrorResponse to the client as a FATAL one (as PostgreSQL refuses a startup
 * value), then closes the connection. */
void px_client_fail_error(struct px_client *cl, const uint8_t *body, uint32_t len)
{
    const uint8_t *p = body, *end = body + len;
    struct proto_buf b;
    size_t start;

    proto_buf_init(&b);
    start = proto_msg_begin(&b, PROTO_BE_ERROR);
    while (p < end && *p) {
        uint8_t code = *p++;
        const uint8_t *z = memchr(p, 0, (size_t)(end - p));

        if (!z)
            break;
        proto_put_u8(&b, code);
        proto_put_cstr(&b, code == 'S' || code == 'V' ? "FATAL" : (const char *)p);
        p = z + 1;
    }
    proto_put_u8(&b, 0);
    proto_msg_end(&b, start);
    if (!b.failed)
        (void)px_conn_send_copy(&cl->conn, b.data, b.len);
    proto_buf_free(&b);
    px_client_close(cl, "server refused a setting");
}

void px_client_checked(struct px_client *cl, struct px_server *sv)
{
    struct proto_buf *notices = cl->login_notices;

    cl->validate = 0;
    cl->login_notices = NULL;
    if (notices) {
        if (!notices->failed)
            (void)px_conn_send_copy(&cl->conn, notices->data, notices->len);
        proto_buf_free(notices);
        free(notices);
    }
    if (sv->own_err) {
        uint8_t *err = sv->own_err;

        sv->own_err = NULL;
        CLOG(cl, CONF_LOG_INFO, "%s", "startup parameters refused by the server");
        px_client_fail_error(cl, err + PROTO_HEADER_LEN, sv->own_err_len - PROTO_HEADER_LEN);
        free(err);
        return;
    }
    for (int i = 0; !notices && i < cl->nstartup; i++)
        if (cl->startup[i].norm && !checked_find(cl->pool, &cl->startup[i]))
            checked_add(cl->pool, cl->startup[i].name, cl->startup[i].value, cl->startup[i].norm);
    if (apply_startup(cl) < 0) {
        client_fatal(cl, "53200", "pglane: out of memory");   /* hands the server back */
        return;
    }
    px_server_attach_continue(sv, cl);
}

static void startup_read(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;
    struct proto_startup st;
    const char *err, *sqlstate;
    size_t used;
    int r;

    while (cl->state == CL_STARTUP && b->pos < b->len) {
        r = proto_parse_startup(b->data + b->pos, b->len - b->pos, &st, &used, &err, &sqlstate);
        if (r == PROTO_FRAME_NEED_MORE)
            return;
        if (r == PROTO_FRAME_ERROR) {
            client_fatal(cl, sqlstate ? sqlstate : "08P01", err);
            return;
        }
        switch (st.kind) {
        case PROTO_STARTUP_SSL:
        case PROTO_STARTUP_GSSENC:
            if (cl->ssl_answered) {
                client_fatal(cl, "08P01", "duplicate SSL or GSS encryption request");
                return;
            }
            cl->ssl_answered = 1;
            if (st.kind == PROTO_STARTUP_SSL && cl->conn.px->tls_ctx && !cl->conn.tls && !cl->over_limit &&
                !cl->conn.px->draining) {
                b->pos += (uint32_t)used;
                b->start = b->pos;
                if (px_conn_send_copy(&cl->conn, "S", 1) < 0 ||
                    px_tls_start(&cl->conn, cl->conn.px->tls_ctx, 1, NULL) < 0) {
                    px_client_close(cl, "TLS start failed");
                    return;
                }
                continue;
            }
            if (px_conn_send_copy(&cl->conn, "N", 1) < 0) {
                px_client_close(cl, "write failed");
                return;
            }
            break;
        case PROTO_STARTUP_CANCEL:
            px_cancel_forward(cl->conn.px, st.cancel_pid, st.cancel_key);
            px_client_close(cl, "cancel request");
            return;
        case PROTO_STARTUP_V3:
            if (cl->over_limit) {
                client_fatal(cl, "53300", "sorry, too many clients already (pglane max_client_conn reached)");
                return;
            }
            if (cl->conn.px->draining) {
                client_fatal(cl, "57P01", "pglane is shutting down");
                return;
            }
            if (cl->conn.px->conf->tls_mode == CONF_TLS_REQUIRE && !cl->conn.tls &&
                cl->conn.h.handle.type == UV_TCP) {
                client_fatal(cl, "28000", "pglane: TLS is required (tls_mode = require); connect with sslmode=require");
                return;
            }
            if (copy_startup(cl, &st) < 0)
                return;
            if (in_admin_reserve(cl)) {
                client_fatal(cl, "53300", "sorry, too many clients already (the remaining pglane connection "
                                          "slots are reserved for admin_users)");
                return;
            }
            b->pos += (uint32_t)used;
            b->start = b->pos;
            cl->admin = strcmp(cl->database, "pglane") == 0      ? PX_ADMIN_PGLANE
                        : strcmp(cl->database, "pgbouncer") == 0 ? PX_ADMIN_PGBOUNCER
                                                                 : 0;
            if (uv_random(NULL, NULL, &cl->cancel_pid, 4, 0, NULL) < 0 ||
                uv_random(NULL, NULL, &cl->cancel_key, 4, 0, NULL) < 0) {
                client_fatal(cl, "XX000", "pglane: no randomness for the cancel key");
                return;
            }
            cl->cancel_pid &= 0x7fffffff;
            start_auth(cl);
            return;
        }
        b->pos += (uint32_t)used;
        b->start = b->pos;
    }
}

static void sasl_step(struct px_client *cl, const struct proto_frame *f)
{
    char out[PROTO_SCRAM_MAX_MSG], nonce[32];
    const char *mech, *err = NULL;
    const uint8_t *data;
    uint32_t n;
    size_t outlen;
    struct proto_buf b;

    if (cl->state == CL_AUTH_SASL_INIT) {
        struct proto_scram_secret secret;
        int plus;

        if (proto_parse_sasl_initial(f->body, f->len, &mech, &data, &n) < 0) {
            client_fatal(cl, "08P01", "malformed SASLInitialResponse message");
            return;
        }
        plus = strcmp(mech, "SCRAM-SHA-256-PLUS") == 0;
        if (strcmp(mech, "SCRAM-SHA-256") != 0 && !(plus && scram_plus_offered(cl))) {
            client_fatal(cl, "28000", "client selected an invalid SASL authentication mechanism");
            return;
        }
        if (scram_secret(cl, &secret) < 0 && mock_secret(cl, &secret) < 0) {
            client_fatal(cl, "XX000", "pglane: no randomness for SCRAM");
            return;
        }
        cl->scram = calloc(1, sizeof(*cl->scram));
        if (!cl->scram || proto_scram_nonce(nonce, 24) < 0 || scram_bind(cl, plus) < 0 ||
            proto_scram_server_first(cl->scram, &secret, (const char *)data, n, nonce, out, sizeof(out),
                                     &outlen, &err) < 0) {
            client_fatal(cl, "08P01", err ? err : "malformed SCRAM message");
            return;
        }
        proto_buf_init(&b);
        proto_build_auth_sasl_continue(&b, out, outlen);
        px_client_set_state(cl, CL_AUTH_SASL_FINAL);
        client_send(cl, &b);
        return;
    }
    if (proto_scram_server_final(cl->scram, (const char *)f->body, f->len, out, sizeof(out), &outlen, &err) < 0 ||
        unusable_secret(cl, 1)) {
        const char *why = unusable_secret(cl, 1);

        auth_failed(cl, why ? why : err ? err : "wrong SCRAM proof");
        return;
    }
    cl->scram_ok = 1;
    proto_buf_init(&b);
    proto_build_auth_sasl_final(&b, out, outlen);
    client_send(cl, &b);
    if (cl->state != CL_CLOSED)
        login_ok(cl);
}

static void auth_read(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;
    struct proto_frame f;
    const char *err;
    size_t used;
    int r;

    r = proto_frame_next(b->data + b->pos, b->len - b->pos, PROTO_PHASE_PREAUTH, &f, &used, &err);
    if (r == PROTO_FRAME_NEED_MORE)
        return;
    if (r == PROTO_FRAME_ERROR || f.type != PROTO_FE_PASSWORD) {
        client_fatal(cl, "08P01", r == PROTO_FRAME_ERROR ? err : "expected a password message");
        return;
    }
    b->pos += (uint32_t)used;
    b->start = b->pos;
    if (cl->state == CL_AUTH_PASSWORD) {
        const char *resp, *secret = user_secret(cl), *why = unusable_secret(cl, 0);

        if (proto_parse_password(f.body, f.len, &resp) < 0) {
            client_fatal(cl, "08P01", "malformed password message");
            return;
        }
        /* An unusable secret costs the same hash as a wrong password (no timing tells them apart). */
        if (!proto_md5_verify(cl->user, why ? "md5-mock-password" : secret, cl->md5_salt, resp) || why) {
            auth_failed(cl, why ? why : "wrong password");
            return;
        }
        login_ok(cl);
        return;
    }
    sasl_step(cl, &f);
}

/* What one pass over a statement's bytes tells about session state (transaction pooling). */
enum {
    TXT_CALL = ROUTE_TXT_CALL,   /* a '(': perhaps a function call, which only the grammar can judge */
    TXT_TEMP = ROUTE_TXT_TEMP,   /* "temp": perhaps CREATE TEMP TABLE ... AS, SELECT INTO TEMP */
    TXT_SET = ROUTE_TXT_SET,     /* a statement starting with SET or RESET, or "set_config": learn the names */
};

static int text_flags(const uint8_t *p, size_t n)
{
    return route_text_flags((const char *)p, n);
}

static int lane_refuses_pins(const struct px_client *cl)
{
    const struct proxy *px = cl->conn.px;

    return cl->lane >= 0 && cl->lane < px->nlanes && px->lanes[cl->lane]->conf->pin == CONF_PIN_REFUSE;
}

/* Session state checks for one statement: custom setting names to remember, and the grammar's
 * opinion when the bytes suggest a function call or a temporary object (or the lane refuses pins). */
static void look_at_session(struct px_client *cl, const char *sql, size_t len, int tflags, int classified)
{
    const struct route_class *cls;

    if (tflags & TXT_SET)
        px_session_learn(cl, sql, len);
    if (classified)
        return;
    cl->stmt_pins = 0;
    if (!lane_refuses_pins(cl) && (cl->changes_session || !(tflags & (TXT_CALL | TXT_TEMP))))
        return;
    cls = px_route_classify(cl->conn.px, sql, len);
    if (cls) {
        cl->changes_session |= cls->changes_session || cls->opaque;
        cl->stmt_pins = cls->pins;
    }
}

/* The highest $n a statement references (0 if none). */
static uint32_t max_param(const char *sql, size_t len)
{
    return route_max_param(sql, len);
}

/*
 * Under pin = refuse, replaces a Query or Parse that would pin with a DO block that raises 0A000, so
 * that PostgreSQL itself fails it at the right place in the transaction. A Parse keeps its name and
 * declares as many parameters as the statement used (as bytea, which takes any binary value and
 * text without stray backslashes), so that the client's Bind still matches. The message is whole at
 * b->pos. Returns 0, or -1 when the buffer cannot grow now.
 */
static int refuse_rewrite(struct px_client *cl, struct proto_frame *f)
{
    static const char head[] = "DO $pglane$BEGIN RAISE EXCEPTION USING ERRCODE='0A000',MESSAGE=E'";
    struct px_buf *b = &cl->conn.in;
    const char *lane = cl->conn.px->lanes[cl->lane]->conf->name;
    char msg[256];
    struct proto_buf body;
    struct proto_fe_parse parse;
    uint32_t old_len = f->len, new_len, tail;
    int reason = 0;

    if (f->type == PROTO_FE_PARSE && proto_parse_fe_parse(f->body, f->len, &parse) < 0)
        return -1;                 /* not reached: look_at_statement parsed it */
    while (!(cl->stmt_pins & (1u << reason)))
        reason++;
    snprintf(msg, sizeof(msg), "pglane: lane \"%s\" refuses statements that pin a server connection "
             "(%s); its setting is pin = refuse", lane, px_pin_name(reason));
    proto_buf_init(&body);
    if (f->type == PROTO_FE_PARSE)
        proto_put_cstr(&body, parse.name);
    proto_put_bytes(&body, head, sizeof(head) - 1);
    for (const char *p = msg; *p; p++) {
        if (*p == '\'' || *p == '\\')
            proto_put_bytes(&body, p, 1);
        proto_put_bytes(&body, *p == '$' ? "_" : p, 1);   /* nothing may close the dollar quote */
    }
    proto_put_cstr(&body, "';END$pglane$");
    if (f->type == PROTO_FE_PARSE) {
        uint32_t used = max_param(parse.query, parse.query_len), np = used > parse.ntypes ? used : parse.ntypes;

        proto_put_u16(&body, (uint16_t)np);
        for (uint32_t i = 0; i < np; i++)
            proto_put_u32(&body, 17);                   /* bytea */
    }
    new_len = (uint32_t)body.len;
    /* Growing may move the buffer: not while a write of its bytes is in flight. */
    if (body.failed || (new_len > old_len && b->cap - b->len < new_len - old_len &&
                        (cl->conn.writing || px_buf_reserve(b, new_len - old_len) < 0))) {
        proto_buf_free(&body);
        return -1;
    }
    tail = b->pos + PROTO_HEADER_LEN + old_len;
    memmove(b->data + tail + new_len - old_len, b->data + tail, b->len - tail);
    memcpy(b->data + b->pos + PROTO_HEADER_LEN, body.data, new_len);
    proto_buf_free(&body);
    b->len = b->len + new_len - old_len;
    f->len = new_len;
    b->data[b->pos + 1] = (uint8_t)((f->len + 4) >> 24);
    b->data[b->pos + 2] = (uint8_t)((f->len + 4) >> 16);
    b->data[b->pos + 3] = (uint8_t)((f->len + 4) >> 8);
    b->data[b->pos + 4] = (uint8_t)(f->len + 4);
    f->body = b->data + b->pos + PROTO_HEADER_LEN;
    CLOG(cl, CONF_LOG_INFO, "refused a statement that pins (%s): lane %s has pin = refuse", px_pin_name(reason),
         lane);
    return 0;
}

/*
 * The tag of a BEGIN pglane may hold: a bare one, or one whose options (ISOLATION LEVEL, READ ONLY,
 * DEFERRABLE) PostgreSQL's grammar accepts, alone in its Query. NULL for anything else: a BEGIN that
 * could fail goes to a server, so that its error is PostgreSQL's.
 */
static const char *begin_tag(const char *sql, size_t len)
{
    return route_begin_tag(sql, len);
}

/* Answers a BEGIN for the server that will run the transaction: the client sees PostgreSQL's tag at
 * once, the message stays in the buffer and is replayed once the next statement picks the lane. */
static void hold_begin(struct px_client *cl, uint32_t whole, const char *tag)
{
    struct proto_buf out;
    size_t start;

    cl->held_begin = whole;
    px_client_set_tx_route(cl, cl->tx_route == TXR_LANE_DECIDED ? TXR_BEGIN_HELD_DECIDED : TXR_BEGIN_HELD);
    proto_buf_init(&out);
    start = proto_msg_begin(&out, PROTO_BE_COMMAND_COMPLETE);
    proto_put_cstr(&out, tag);
    proto_msg_end(&out, start);
    proto_build_ready(&out, 'T');
    client_send(cl, &out);
}

/* What look_at_statement found in a statement. */
enum stmt_verdict {
    STMT_FORWARD,                  /* goes on to the server as it is */
    STMT_HELD_BEGIN,               /* a bare BEGIN held until the next statement routes (not a request) */
    STMT_PIN_REFUSED,              /* would pin a client of a lane with pin = refuse */
    STMT_QUARANTINED               /* refused by the contention guard's quarantine (answered and dropped) */
};

static enum stmt_verdict route_statement(struct px_client *cl, const struct proto_frame *f, const char *sql,
                                         size_t len, int *classified);

/*
 * The first statement of a transaction has a shape the contention guard quarantined on this
 * (preemptible) lane: pglane answers it with 55P03 and it never reaches PostgreSQL. A held BEGIN goes
 * with it (its block is then a failed one: ReadyForQuery 'E'); an extended-protocol request is skipped
 * up to its Sync. Returns 1 if refused.
 */
static int refuse_quarantined(struct px_client *cl, const struct proto_frame *f)
{
    struct proxy *px = cl->conn.px;
    struct px_buf *b = &cl->conn.in;
    uint32_t held = cl->held_begin;
    struct proto_buf out;

    proto_buf_init(&out);
    if (!px_guard_refuse(px, cl->fingerprint, px->lanes[cl->lane], &out)) {
        proto_buf_free(&out);
        return 0;
    }
    px_info("C-%llu guard: refused quarantined statement shape %016llx on lane %s",
            (unsigned long long)cl->conn.id, (unsigned long long)cl->fingerprint, px->lanes[cl->lane]->conf->name);
    if (held) {
        memmove(b->data + b->start, b->data + b->start + held, b->len - (b->start + held));
        b->len -= held;
        b->pos -= held;
    }
    cl->discard = proto_get_u32(b->data + b->pos + 1) + 1;   /* the whole message, even a streamed Bind */
    if (f->type == PROTO_FE_QUERY)
        proto_build_ready(&out, held ? 'E' : 'I');
    else
        cl->skip_sync = 1;
    cl->fingerprint = 0;
    px_client_set_tx_route(cl, TXR_NONE);   /* the held BEGIN, if any, is dropped */
    cl->changes_session = 0;
    client_send(cl, &out);
    return 1;
}

/*
 * Looks at a whole Query or Parse message in transaction pooling: the session-change check for every
 * one, and the routing decision for the first of a transaction.
 */
static enum stmt_verdict look_at_statement(struct px_client *cl, const struct proto_frame *f)
{
    const char *sql = (const char *)f->body;
    size_t len = f->len ? f->len - 1 : 0;
    int tflags, classified = 0;
    enum stmt_verdict r;
    struct proto_fe_parse parse;
    struct proto_fe_bind bind;

    if (f->type == PROTO_FE_PARSE) {
        if (proto_parse_fe_parse(f->body, f->len, &parse) < 0)
            return STMT_FORWARD;
        sql = parse.query;
        len = parse.query_len;
    } else if (f->type == PROTO_FE_BIND) {
        /* A Bind runs a statement prepared earlier: look at that statement's text. */
        if (proto_parse_fe_bind_names(f->body, f->len, &bind) < 0 ||
            !(sql = px_prep_statement_text(cl, bind.statement, &len)))
            return STMT_FORWARD;
    }
    tflags = text_flags((const uint8_t *)sql, len);
    r = route_statement(cl, f, sql, len, &classified);
    if (r != STMT_FORWARD)
        return r;
    look_at_session(cl, sql, len, tflags, classified);
    return f->type != PROTO_FE_BIND && cl->stmt_pins && lane_refuses_pins(cl) ? STMT_PIN_REFUSED : STMT_FORWARD;
}

/* The routing decision for the first statement of a transaction; *classified when routing
 * classified it (and so merged its session flags). STMT_FORWARD, STMT_HELD_BEGIN or STMT_QUARANTINED. */
static enum stmt_verdict route_statement(struct px_client *cl, const struct proto_frame *f, const char *sql,
                                         size_t len, int *classified)
{
    struct proxy *px = cl->conn.px;
    int tx_start = cl->state == CL_IDLE && cl->conn.in.pos == cl->conn.in.start + cl->held_begin;
    const char *tag;
    int lane;

    if (!tx_start)
        return STMT_FORWARD;
    if (cl->tx_route == TXR_BEGIN_HELD_DECIDED)
        return STMT_FORWARD;       /* the identity chose the lane when the BEGIN was held */
    lane = px_route_identity_hit(px, cl);
    if (lane != ROUTE_NEED_STATEMENT) {
        cl->lane = (int16_t)lane;
        px_client_tx_route_decide(cl);
        /* With server_retry, a bare BEGIN is held too: it goes with the transaction's first statement,
         * so that both can be resent if the server connection turns out dead (proxy/retry.c). */
        if (f->type == PROTO_FE_QUERY && !cl->held_begin && lane >= 0 && lane < px->nlanes &&
            px->lanes[lane]->conf->server_retry > 0 && (tag = begin_tag(sql, len)) != NULL) {
            hold_begin(cl, PROTO_HEADER_LEN + f->len, tag);
            return STMT_HELD_BEGIN;
        }
        return STMT_FORWARD;
    }
    if (f->type == PROTO_FE_QUERY && !cl->held_begin && (tag = begin_tag(sql, len)) != NULL) {
        hold_begin(cl, PROTO_HEADER_LEN + f->len, tag);
        return STMT_HELD_BEGIN;
    }
    cl->lane = (int16_t)px_route_statement(px, cl, sql, len);
    px_client_tx_route_decide(cl);
    *classified = 1;
    return px->guard && refuse_quarantined(cl, f) ? STMT_QUARANTINED : STMT_FORWARD;
}

/* Parse, Bind, Describe and Close name prepared statements that pglane maps in transaction pooling. */
static int names_statement(const struct proto_frame *f)
{
    struct proto_fe_parse parse;
    struct proto_fe_bind bind;
    struct proto_fe_target t;

    switch (f->type) {
    case PROTO_FE_PARSE:
        return proto_parse_fe_parse(f->body, f->len, &parse) == 0 && parse.name_len > 0;
    case PROTO_FE_BIND:            /* of a large Bind, only its names are here */
        return proto_parse_fe_bind_names(f->body, f->len, &bind) == 0 && bind.statement_len > 0;
    case PROTO_FE_DESCRIBE:
        return proto_parse_fe_describe(f->body, f->len, &t) == 0 && t.kind == 'S' && t.name_len > 0;
    case PROTO_FE_CLOSE:
        return proto_parse_fe_close(f->body, f->len, &t) == 0 && t.kind == 'S' && t.name_len > 0;
    default:
        return 0;
    }
}

static int is_statement_message(uint8_t type)
{
    return type == PROTO_FE_PARSE || type == PROTO_FE_BIND || type == PROTO_FE_DESCRIBE || type == PROTO_FE_CLOSE;
}

static void unnamed_forget(struct px_client *cl)
{
    free(cl->unnamed);
    cl->unnamed = NULL;
    cl->unnamed_len = 0;
}

/*
 * Follows the client's unnamed statement (transaction pooling with prepared statements): the body of
 * its latest unnamed Parse, kept to replay it where the server's unnamed statement is not the
 * client's. A Bind or Describe of the unnamed statement with no unnamed Parse on the current server
 * before it goes through the prepared-statement mapping, which makes sure. 0 or -1.
 */
static int track_unnamed(struct px_client *cl, const struct proto_frame *f)
{
    const uint8_t *p = f->body;
    struct proto_fe_parse parse;
    struct proto_fe_bind bind;
    struct proto_fe_target t;

    switch (f->type) {
    case PROTO_FE_PARSE:
        if (proto_parse_fe_parse(f->body, f->len, &parse) < 0 || parse.name_len > 0)
            return 0;
        cl->unnamed_parsed = 1;
        if (cl->unnamed && cl->unnamed_len == f->len - 1 && memcmp(cl->unnamed, p + 1, f->len - 1) == 0)
            return 0;
        unnamed_forget(cl);
        if (!(cl->unnamed = malloc(f->len - 1)))
            return -1;
        memcpy(cl->unnamed, p + 1, f->len - 1);
        cl->unnamed_len = f->len - 1;
        return 0;
    case PROTO_FE_BIND:            /* of a large Bind, only its names are here */
        if (proto_parse_fe_bind_names(f->body, f->len, &bind) == 0 && bind.statement_len == 0 &&
            !cl->unnamed_parsed)
            cl->prep_batch = 1;
        return 0;
    case PROTO_FE_DESCRIBE:
    case PROTO_FE_CLOSE:
        if ((f->type == PROTO_FE_CLOSE ? proto_parse_fe_close(f->body, f->len, &t)
                                       : proto_parse_fe_describe(f->body, f->len, &t)) < 0 ||
            t.kind != 'S' || t.name_len > 0)
            return 0;
        if (f->type == PROTO_FE_CLOSE)
            unnamed_forget(cl);
        else if (!cl->unnamed_parsed)
            cl->prep_batch = 1;
        return 0;
    default:
        return 0;
    }
}

/* The length of a Bind's header, portal name and statement name, if avail bytes hold them, else 0. */
static uint32_t bind_prefix(const uint8_t *msg, uint32_t avail)
{
    struct proto_fe_bind bind;

    if (avail <= PROTO_HEADER_LEN ||
        proto_parse_fe_bind_names(msg + PROTO_HEADER_LEN, avail - PROTO_HEADER_LEN, &bind) < 0)
        return 0;
    return PROTO_HEADER_LEN + bind.names_len;
}

/* An unnamed Parse of "DEALLOCATE name" (drivers send it through the extended protocol too). */
static int unnamed_deallocate(const struct proto_frame *f)
{
    struct proto_fe_parse parse;

    return f->type == PROTO_FE_PARSE && proto_parse_fe_parse(f->body, f->len, &parse) == 0 &&
           parse.name_len == 0 && px_prep_is_deallocate((const uint8_t *)parse.query, parse.query_len);
}

/* Scans forwarded messages, counting the requests that each end in a ReadyForQuery. */
static int scan(struct px_client *cl, const char **err)
{
    struct px_buf *b = &cl->conn.in;
    struct proto_frame f;
    int tx_pooling = cl->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION;
    int prepared = tx_pooling && cl->conn.px->conf->max_prepared_statements > 0;
    int fr;

    while (b->pos < b->len) {
        uint32_t avail = b->len - b->pos;

        if (cl->discard) {         /* dropped in place: nothing after pos was forwarded */
            uint32_t n = cl->discard < avail ? cl->discard : avail;

            memmove(b->data + b->pos, b->data + b->pos + n, avail - n);
            b->len -= n;
            cl->discard -= n;
            if (cl->discard == 0 && cl->discard_fatal) {
                *err = OVERSIZE_MSG;
                return -2;
            }
            continue;
        }
        if (cl->skip_sync) {
            if (proto_frame_header(b->data + b->pos, avail, PROTO_PHASE_FRONTEND, &f, err) != PROTO_FRAME_OK)
                return avail < PROTO_HEADER_LEN ? 0 : -1;
            cl->discard = PROTO_HEADER_LEN + f.len;
            if (f.type == PROTO_FE_SYNC) {
                struct proto_buf z;

                cl->skip_sync = 0;
                proto_buf_init(&z);
                proto_build_ready(&z, 'I');
                client_send(cl, &z);
                if (cl->state == CL_CLOSED)
                    return -2;
            }
            continue;
        }
        fr = proto_cursor_next(b->data, &b->pos, b->len, &b->remain, PROTO_PHASE_FRONTEND, &f, err);
        if (fr != PROTO_FRAME_OK)
            return fr == PROTO_FRAME_NEED_MORE ? 0 : -1;
        avail = b->len - b->pos;
        if ((tx_pooling && (f.type == PROTO_FE_QUERY || f.type == PROTO_FE_PARSE) &&
             PROTO_HEADER_LEN + f.len <= ROUTE_MAX_MSG) ||
            (prepared && is_statement_message(f.type))) {
            uint32_t whole = PROTO_HEADER_LEN + f.len;

            if (f.type == PROTO_FE_BIND && whole > ROUTE_MAX_MSG) {
                /* A large Bind streams through: only its names are needed, the values are not. */
                whole = bind_prefix(b->data + b->pos, avail < whole ? avail : whole);
                if (whole == 0 && avail >= PROTO_HEADER_LEN + f.len) {
                    *err = "invalid Bind message";
                    return -1;
                }
                if (whole == 0) {
                    if (!cl->conn.writing && px_buf_reserve(b, PX_READ_MIN) < 0) {
                        *err = "out of memory";
                        return -1;
                    }
                    return 0;
                }
            }
            if (whole > PX_BUF_MAX) {
                /* Read and dropped, so that the client (still writing it) reads the error rather
                 * than a connection reset. Between transactions the connection goes on as after
                 * any error of the extended protocol: skip to Sync. */
                cl->discard = PROTO_HEADER_LEN + f.len;
                if (cl->state == CL_IDLE && b->pos == b->start && !cl->pending_z) {
                    struct proto_buf e;

                    proto_buf_init(&e);
                    proto_build_error(&e, "ERROR", "54000", OVERSIZE_MSG, NULL, NULL);
                    client_send(cl, &e);
                    cl->skip_sync = 1;
                    cl->unsynced = 0;
                    if (cl->state == CL_CLOSED)
                        return -2;
                } else {
                    cl->discard_fatal = 1;
                }
                continue;
            }
            if (avail < whole) {
                if (!cl->conn.writing && px_buf_reserve(b, whole - avail) < 0) {
                    *err = "out of memory";
                    return -1;
                }
                return 0;
            }
            f.body = b->data + b->pos + PROTO_HEADER_LEN;
            f.len = whole - PROTO_HEADER_LEN;   /* a streamed Bind: its names only */
            if (prepared && (names_statement(&f) ||
                             (f.type == PROTO_FE_QUERY && px_prep_is_deallocate(f.body, f.len)) ||
                             unnamed_deallocate(&f)))
                cl->prep_batch = 1;
            if (prepared && track_unnamed(cl, &f) < 0) {
                *err = "out of memory";
                return -1;
            }
            if (f.type == PROTO_FE_QUERY || f.type == PROTO_FE_PARSE || f.type == PROTO_FE_BIND) {
                enum stmt_verdict r = look_at_statement(cl, &f);

                if (r == STMT_QUARANTINED) {   /* answered and dropped */
                    if (cl->state == CL_CLOSED)
                        return -2;
                    continue;
                }
                if (r == STMT_HELD_BEGIN) {
                    if (prepared)
                        unnamed_forget(cl);  /* the held BEGIN is replayed: a simple Query all the same */
                    b->pos += PROTO_HEADER_LEN + f.len;
                    continue;
                }
                if (r == STMT_PIN_REFUSED && refuse_rewrite(cl, &f) < 0) {
                    *err = "pglane: cannot refuse a pinning statement now (buffer full)";
                    return -1;
                }
            }
        }
        switch (f.type) {
        case PROTO_FE_TERMINATE:
            cl->terminating = 1;
            b->len = b->pos;             /* nothing after Terminate matters */
            return 0;
        case PROTO_FE_QUERY:
            if (prepared)
                unnamed_forget(cl);      /* a simple Query drops the unnamed statement */
            /* fall through */
        case PROTO_FE_SYNC:
        case PROTO_FE_FUNCTION_CALL:
            cl->pending_z++;
            cl->unsynced = 0;
            break;
        case PROTO_FE_PARSE:
        case PROTO_FE_BIND:
        case PROTO_FE_DESCRIBE:
        case PROTO_FE_EXECUTE:
        case PROTO_FE_CLOSE:
            cl->unsynced = 1;
            break;
        case PROTO_FE_FLUSH:           /* asks for the replies owed; opens nothing on the server */
        case PROTO_FE_COPY_DATA:
        case PROTO_FE_COPY_DONE:
        case PROTO_FE_COPY_FAIL:
            break;
        default:
            *err = "invalid frontend message type";
            return -1;
        }
        if (px_flow_push(cl, f.type) < 0) {
            *err = "out of memory";
            return -1;
        }
        px_stats_query_begin(cl);
        proto_cursor_stream(b->data, &b->pos, &b->remain);
    }
    return 0;
}

/* Forwards the scanned bytes: straight from the buffer, or through the prepared-statement mapping. */
static int forward(struct px_client *cl)
{
    if (cl->conn.writing)
        return 0;
    if (cl->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION && px_prep_needed(cl)) {
        cl->tx_forwarded = 1;          /* rewritten bytes are not kept: no retry (proxy/retry.c) */
        px_retry_disarm(cl);
        return px_prep_forward(cl);
    }
    px_retry_arm(cl);                  /* before tx_route and fwd_remain change */
    if (cl->tx_route == TXR_BEGIN_REPLAY)
        px_client_set_tx_route(cl, TXR_LANE_DECIDED);
    cl->fwd_remain = cl->conn.in.remain;
    px_flow_mark_raw(cl);
    if (cl->unnamed_parsed)
        cl->server->unnamed_owner = cl->conn.id;
    int r = px_forward(&cl->conn, &cl->server->conn);

    if (r < 0 && cl->retry_buf) {
        /* The bytes are kept: the server connection died under the transaction's first message. */
        cl->conn.in.start = cl->conn.in.pos;
        if (px_retry_try(cl->server, PX_RF_CLOSED, NULL, NULL, uv_strerror(r)))
            return 0;
    }
    return r;
}

/* pglane checks the session the client's last transaction left: what the client sends waits. */
static int held_for_check(struct px_client *cl)
{
    if (cl->state != CL_ACTIVE || !cl->server || !(cl->server->checking || cl->server->replay_wait))
        return 0;
    px_conn_read_stop(&cl->conn);
    return 1;
}

/* Whether the scanned bytes are only whole messages that get no reply outside COPY IN. */
static int only_silent(const struct px_buf *b)
{
    uint32_t off = b->start;

    if (b->remain || off == b->pos)
        return 0;
    while (off < b->pos) {
        uint8_t t = b->data[off];

        if ((t != PROTO_FE_FLUSH && t != PROTO_FE_COPY_DATA && t != PROTO_FE_COPY_DONE && t != PROTO_FE_COPY_FAIL) ||
            b->pos - off < PROTO_HEADER_LEN)
            return 0;
        off += 1 + proto_get_u32(b->data + off + 1);
    }
    return off == b->pos;
}

/*
 * After a Terminate: closes the client once the server has answered everything it was sent, as
 * PostgreSQL closes after its last reply (the server connection then goes back to the pool if the
 * client left nothing open, else it is closed, which rolls back as the end of a session does).
 * Replies to messages after the last Sync, Flush, Query or FunctionCall are not waited for:
 * PostgreSQL never sends them. A server reading COPY data gets the Terminate itself and closes.
 * Returns 1 if the client was closed.
 */
int px_client_check_terminate(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;
    struct px_server *sv = cl->server;

    if (!cl->terminating)
        return 0;
    if (cl->state == CL_IDLE) {
        if (b->pos != b->start + cl->held_begin)
            return 0;
    } else if (cl->state != CL_ACTIVE || !sv || cl->terminate_sent || cl->conn.writing) {
        return 0;
    } else if (px_flow_copy_in(cl)) {
        /* PostgreSQL fails the COPY (08P01) and ends the session: let it, and relay what it says. */
        static const uint8_t terminate[5] = { PROTO_FE_TERMINATE, 0, 0, 0, 4 };

        cl->terminate_sent = 1;
        if (px_conn_send_copy(&sv->conn, terminate, sizeof(terminate)) < 0) {
            px_client_close(cl, "write to server failed");
            return 1;
        }
        return 0;
    } else if (b->pos != b->start || b->remain || cl->pending_z || px_flow_owes_flushed(cl) || sv->conn.writing ||
               sv->conn.in.start != sv->conn.in.pos) {
        return 0;
    }
    px_client_close(cl, "client terminated");
    return 1;
}

void px_client_pump(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;

    if (cl->state == CL_CLOSED || held_for_check(cl))
        return;
    if (cl->state == CL_IDLE && !cl->held_begin && only_silent(b)) {
        /* Flush or stray COPY messages with nothing before them: PostgreSQL answers nothing. */
        b->start = b->pos;
    }
    if (b->pos > b->start + (cl->state == CL_IDLE ? cl->held_begin : 0)) {
        if (cl->state == CL_IDLE) {
            struct px_pool *pool;

            if (cl->conn.px->draining) {
                client_fatal(cl, "57P01", "pglane is shutting down");
                return;
            }
            if (cl->prep_batch && cl->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION) {
                int r = px_prep_answer_locally(cl);

                if (r < 0) {
                    px_client_close(cl, "write to client failed");
                    return;
                }
                if (r > 0) {
                    px_client_pump(cl);
                    return;
                }
            }
            if (!px_tx_route_decided(cl->tx_route)) {
                /* No statement chose: the identity's lane, else the default (of the config in force). */
                int lane = px_route_identity_hit(cl->conn.px, cl);

                cl->lane = (int16_t)(lane >= 0 ? lane : cl->conn.px->conf->default_lane_index);
            }
            pool = lane_pool(cl);
            if (!pool) {
                no_pool(cl);
                return;
            }
            /* Reads go on while the client queues (bounded by PX_WAIT_BUF_MAX), which keeps
             * transactions free of epoll registration churn. */
            px_client_set_state(cl, CL_WAITING);
            px_pool_acquire(pool, cl);
            return;
        }
        if (cl->state != CL_ACTIVE)
            return;
        if (forward(cl) < 0) {
            px_client_close(cl, "write to server failed");
            return;
        }
    }
    if (px_client_check_terminate(cl))
        return;
    if (cl->state == CL_ACTIVE || cl->state == CL_IDLE)
        px_conn_read_start(&cl->conn);
    if (!cl->conn.writing && b->start == b->len)
        px_buf_release(b);
}

/* An idle client keeps no buffer: logged-in clients waiting for their next query cost only their struct. */
static void release_if_empty(struct px_client *cl)
{
    if (cl->state != CL_CLOSED && !cl->conn.writing && cl->conn.in.start == cl->conn.in.len)
        px_buf_release(&cl->conn.in);
}

void px_client_on_read(struct px_client *cl)
{
    const char *err = NULL;

    switch (cl->state) {
    case CL_STARTUP:
        startup_read(cl);
        release_if_empty(cl);
        return;
    case CL_AUTH_PASSWORD:
    case CL_AUTH_SASL_INIT:
    case CL_AUTH_SASL_FINAL:
        auth_read(cl);
        release_if_empty(cl);
        return;
    case CL_LOGIN_WAIT:
        px_conn_read_stop(&cl->conn);
        return;
    case CL_WAITING:
        /* A queued client keeps its read registration (stopping and restarting it costs two epoll_ctl
         * calls per queued transaction); what it sends meanwhile waits in its buffer, up to a bound. */
        if (cl->conn.in.len - cl->conn.in.start >= PX_WAIT_BUF_MAX)
            px_conn_read_stop(&cl->conn);
        return;
    case CL_ADMIN:
        admin_read(cl);
        return;
    case CL_IDLE:
    case CL_ACTIVE:
        break;
    case CL_CLOSED:
        return;
    }
    if (held_for_check(cl))
        return;
    int r = scan(cl, &err);

    if (r == -2) {
        if (cl->state != CL_CLOSED)
            client_fatal(cl, "54000", err);
        return;
    }
    if (r < 0) {
        client_fatal(cl, "08P01", err ? err : "protocol violation");
        return;
    }
    px_client_pump(cl);
}

void px_client_on_sent(struct px_client *cl)
{
    if (cl->state == CL_CLOSED)
        return;
    if (cl->conn.in.pos < cl->conn.in.len && !cl->terminating)
        px_client_on_read(cl);
    else
        px_client_pump(cl);
}

void px_client_on_eof(struct px_client *cl, int status)
{
    CLOG(cl, CONF_LOG_DEBUG, "client disconnected: %s", uv_strerror(status));
    px_client_close(cl, "client disconnected");
}

void px_client_attached(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;

    if (cl->state == CL_LOGIN_WAIT) {
        finish_login(cl);
        if (cl->state == CL_CLOSED)
            return;
        if (px->conf->pool_mode == CONF_POOL_TRANSACTION) {
            px_server_detach(cl->server);
            return;
        }
        px_client_set_state(cl, CL_ACTIVE);
        px_conn_read_start(&cl->conn);
        return;
    }
    px_client_set_state(cl, CL_ACTIVE);
    cl->tx_start_us = px_now_us();
    if (cl->held_begin) {
        /* The server's reply to the replayed BEGIN was answered already. */
        cl->server->swallow_z++;
        px_client_set_tx_route(cl, TXR_BEGIN_REPLAY);
    }
    if (cl->conn.in.pos < cl->conn.in.len)
        px_client_on_read(cl);
    else
        px_client_pump(cl);
}

void px_client_tx_end(struct px_client *cl)
{
    uint64_t now = px_now_us();

    px_route_record(cl->conn.px, cl->fingerprint, now - cl->tx_start_us, cl->lane);
    cl->fingerprint = 0;
    cl->changes_session = 0;
    px_client_tx_route_forget(cl);
    cl->tx_start_us = now;
}

void px_client_detached(struct px_client *cl)
{
    px_client_tx_end(cl);
    px_client_released(cl);
}

void px_client_released(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;

    px_client_set_state(cl, CL_IDLE);
    px_flow_reset(cl);
    px_retry_end_tx(cl);
    cl->unnamed_parsed = 0;
    if (px->draining) {
        client_fatal(cl, "57P01", "pglane is shutting down");
        return;
    }
    if (cl->conn.in.pos < cl->conn.in.len && !cl->terminating)
        px_client_on_read(cl);
    else
        px_client_pump(cl);
}

int px_client_cancel_queued(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;
    struct proto_buf out;
    char detail[200];

    if (cl->state != CL_WAITING || cl->held_begin || cl->prep_batch || cl->pending_z != 1 || cl->unsynced ||
        b->remain || cl->conn.writing)
        return 0;
    px_pool_cancel_wait(cl);
    b->start = b->pos;             /* the request is dropped unsent */
    cl->pending_z = 0;
    px_flow_reset(cl);             /* and so is its reply accounting */
    px_retry_end_tx(cl);
    cl->query_start_us = cl->tx_begin_us = 0;
    cl->fingerprint = 0;
    cl->changes_session = 0;
    px_client_tx_route_forget(cl);
    px_client_set_state(cl, CL_IDLE);
    snprintf(detail, sizeof(detail), "pglane: the statement waited in lane %s's queue for a server "
             "connection and did not run.", cl->pool->lane->conf->name);
    proto_buf_init(&out);
    proto_build_error(&out, "ERROR", "57014", "canceling statement due to user request", detail, NULL);
    proto_build_ready(&out, 'I');
    client_send(cl, &out);
    if (cl->state == CL_CLOSED)
        return 1;
    if (b->pos < b->len && !cl->terminating)
        px_client_on_read(cl);
    else
        px_client_pump(cl);
    return 1;
}

void px_client_session_idle(struct px_client *cl)
{
    if (cl->conn.px->draining)
        client_fatal(cl, "57P01", "pglane is shutting down");
}

void px_client_close(struct px_client *cl, const char *reason)
{
    struct proxy *px = cl->conn.px;
    struct px_server *sv = cl->server;

    if (cl->state == CL_CLOSED)
        return;
    CLOG(cl, CONF_LOG_DEBUG, "closed: %s", reason);
    if (cl->state == CL_WAITING || cl->state == CL_LOGIN_WAIT)
        px_pool_cancel_wait(cl);
    px_client_set_state(cl, CL_CLOSED);
    if (sv) {
        int clean = cl->pending_z == 0 && !cl->unsynced && sv->tx_status == 'I' && cl->conn.in.remain == 0 &&
                    sv->prepq.n == 0;

        cl->server = NULL;
        if (cl->pins)
            sv->dirty |= PX_DIRTY_DISCARD;   /* what pinned the client goes with it */
        px_server_client_gone(sv, clean);
    }
    px_list_remove(&cl->link);
    px->nclients--;
    px_conn_close(&cl->conn);
    px_maybe_exit(px);
}

void px_client_free(struct px_client *cl)
{
    px_prep_client_free(cl);
    px_session_free(cl);
    px_flow_free(cl);
    px_retry_end_tx(cl);
    px_params_clear(&cl->want);
    startup_clear(cl);
    px_kvlist_clear(&cl->gucs);
    if (cl->login_notices) {
        proto_buf_free(cl->login_notices);
        free(cl->login_notices);
    }
    free(cl->unnamed);
    free(cl->scram);
    if (!cl->names_shared) {
        free(cl->user);
        free(cl->database);
    }
    free(cl);
}
