/*
 * Server connections: connect and log in to PostgreSQL, then relay its replies to the attached client
 * while watching ReadyForQuery (to hand the connection back in transaction pooling), ParameterStatus
 * (to follow each client's session parameters) and CommandComplete (to notice session changes).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"
#include "proxy/state.h"

#define SLOG(sv, lvl, fmt, ...) \
    px_log(lvl, "S-%llu " PX_LOG_NAME "/" PX_LOG_NAME "@%s: " fmt, (unsigned long long)(sv)->conn.id, (sv)->pool->user, \
           (sv)->pool->database, (sv)->pool->lane->conf->name, __VA_ARGS__)

static void on_connect(uv_connect_t *req, int status);
static void login_failed(struct px_server *sv, const struct proto_frame *err, const char *message);
static int send_buf(struct px_server *sv, struct proto_buf *b);
static void server_release(struct px_server *sv);

/* The server connection's stream calls these (proxy/net/stream.h). */
static void stream_read(struct px_conn *c)
{
    px_server_on_read((struct px_server *)c);
}

static void stream_eof(struct px_conn *c, int status)
{
    px_server_on_eof((struct px_server *)c, status);
}

static void stream_sent(struct px_conn *c)
{
    px_server_on_sent((struct px_server *)c);
}

static void stream_closed(struct px_conn *c)
{
    px_server_free((struct px_server *)c);
}

static void stream_handshake(struct px_conn *c)
{
    px_server_on_tls_ready((struct px_server *)c);
}

/* The stream whose bytes the server connection's writes carry: its client's. */
static struct px_conn *stream_peer(struct px_conn *c)
{
    struct px_client *cl = ((struct px_server *)c)->client;

    return cl ? &cl->conn : NULL;
}

static const struct px_stream_ops server_stream_ops = {
    .tag = 'S', .on_read = stream_read, .on_eof = stream_eof, .on_sent = stream_sent,
    .on_closed = stream_closed, .peer = stream_peer, .on_handshake = stream_handshake,
};

struct px_server *px_server_connect(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    struct px_lane *lane = pool->lane;
    struct px_server *sv = calloc(1, sizeof(*sv));
    int r;

    if (!sv)
        return NULL;
    px_conn_init(px, &sv->conn, &server_stream_ops);
    sv->pool = pool;
    px_server_set_state(sv, SV_CONNECTING);   /* onto pool->busy */
    sv->created_ms = px_now_ms(px);
    px_list_init(&sv->cancels);
    sv->connect_req.data = sv;
    r = px_sock_connect(px->loop, &sv->conn.h, &sv->connect_req, lane->unix_socket ? lane->unix_path : NULL,
                        (const struct sockaddr *)&lane->addr, on_connect);
    if (r < 0) {
        SLOG(sv, CONF_LOG_ERROR, "connect failed: %s", uv_strerror(r));
        px_server_close(sv, "connect failed");
        return NULL;
    }
    SLOG(sv, CONF_LOG_DEBUG, "connecting (%d/%d)", pool->nidle + pool->nbusy, lane->size);
    return sv;
}

static void send_startup(struct px_server *sv)
{
    const struct conf_lane *lc = sv->pool->lane->conf;
    const char *names[64], *values[64];
    struct proto_buf b;
    int n = 0;

    names[n] = "user";
    values[n++] = sv->pool->user;
    names[n] = "database";
    values[n++] = sv->pool->database;
    /* The lane's session settings are startup parameters: they hold for every transaction on this
     * connection and survive RESET ALL and DISCARD ALL. */
    for (int i = 0; i < lc->nsettings && n < 64; i++) {
        names[n] = lc->settings[i].name;
        values[n++] = lc->settings[i].value;
    }
    proto_buf_init(&b);
    proto_build_startup(&b, names, values, n);
    if (b.failed || px_conn_send_copy(&sv->conn, b.data, b.len) < 0)
        px_server_close(sv, "cannot send startup packet");
    proto_buf_free(&b);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct px_server *sv = req->data;
    char msg[256];

    if (sv->state == SV_CLOSED)
        return;
    if (status < 0) {
        snprintf(msg, sizeof(msg), "pglane: could not connect to server \"%s\": %s",
                 sv->pool->lane->server->name, uv_strerror(status));
        SLOG(sv, CONF_LOG_ERROR, "%s", msg);
        px_server_close(sv, "connect failed");
        px_pool_server_unreachable(sv->pool, msg);
        return;
    }
    px_sock_set_options(&sv->conn.h);
    px_conn_read_start(&sv->conn);
    if (sv->pool->lane->tls_ctx && !sv->pool->lane->unix_socket) {
        struct proto_buf b;

        proto_buf_init(&b);
        proto_build_ssl_request(&b);
        px_server_set_state(sv, SV_TLS);
        if (send_buf(sv, &b) < 0)
            login_failed(sv, NULL, "pglane: cannot send SSLRequest to server");
        return;
    }
    px_server_set_state(sv, SV_LOGIN);
    send_startup(sv);
}

/* The server answered the SSLRequest: 'S' starts the handshake, 'N' continues in plaintext only
 * when server_tls_mode = prefer. */
static void tls_answer(struct px_server *sv)
{
    const struct conf_server *cs = sv->pool->lane->server;
    struct px_buf *b = &sv->conn.in;
    uint8_t answer = b->data[b->pos];

    b->pos = b->start = b->len;
    if (answer == 'S' && b->len == 1) {
        if (px_tls_start(&sv->conn, sv->pool->lane->tls_ctx, 0,
                         cs->tls_mode == CONF_STLS_VERIFY_FULL ? cs->host : NULL) < 0)
            login_failed(sv, NULL, "pglane: cannot start TLS with the server");
        b->pos = b->start = b->len = 0;
        return;
    }
    if (answer == 'N' && cs->tls_mode == CONF_STLS_PREFER) {
        b->pos = b->start = b->len = 0;
        px_server_set_state(sv, SV_LOGIN);
        send_startup(sv);
        return;
    }
    login_failed(sv, NULL, answer == 'N' ? "pglane: server does not accept TLS but server_tls_mode requires it"
                                         : "pglane: unexpected answer to SSLRequest from server");
}

void px_server_on_tls_ready(struct px_server *sv)
{
    SLOG(sv, CONF_LOG_DEBUG, "TLS established (%s)", px_tls_version(&sv->conn));
    px_server_set_state(sv, SV_LOGIN);
    send_startup(sv);
}

static void login_failed(struct px_server *sv, const struct proto_frame *err, const char *message)
{
    struct px_pool *pool = sv->pool;

    if (err) {
        struct proto_error_fields ef;

        char msg[200];
        int passing = 0;

        if (proto_parse_error(err->body, err->len, &ef) == 0) {
            SLOG(sv, CONF_LOG_ERROR, "login failed: %s %s", ef.sqlstate ? ef.sqlstate : "",
                 ef.message ? ef.message : "");
            /* Starting up, shutting down, in recovery: wait for it (px_pool_server_unreachable). */
            passing = ef.sqlstate && (strcmp(ef.sqlstate, "57P03") == 0 || strcmp(ef.sqlstate, "57P01") == 0 ||
                                      strncmp(ef.sqlstate, "08", 2) == 0);
            snprintf(msg, sizeof(msg), "%s %.150s", ef.sqlstate ? ef.sqlstate : "", ef.message ? ef.message : "");
        }
        px_server_close(sv, "login failed");
        if (passing)
            px_pool_server_unreachable(pool, msg);
        else
            px_pool_server_failed(pool, err->body - PROTO_HEADER_LEN, err->len + PROTO_HEADER_LEN, NULL, NULL);
    } else {
        SLOG(sv, CONF_LOG_ERROR, "login failed: %s", message);
        px_server_close(sv, "login failed");
        px_pool_server_failed(pool, NULL, 0, "08006", message);
    }
}

static int send_buf(struct px_server *sv, struct proto_buf *b)
{
    int r = b->failed ? -1 : px_conn_send_copy(&sv->conn, b->data, b->len);

    proto_buf_free(b);
    return r;
}

/* Answers an authentication request. Returns 0, or -1 after failing the login. */
static int login_auth(struct px_server *sv, const struct proto_frame *f)
{
    struct px_pool *pool = sv->pool;
    const char *secret = pool->secret;
    const uint8_t *data;
    uint32_t code, n;
    struct proto_buf b;
    const char *err = NULL;
    char out[PROTO_SCRAM_MAX_MSG], nonce[32];
    size_t outlen;
    int plain = secret && strncmp(secret, "md5", 3) != 0 && strncmp(secret, "SCRAM-SHA-256$", 14) != 0;

    if (proto_parse_auth(f->body, f->len, &code, &data, &n) < 0) {
        login_failed(sv, NULL, "pglane: malformed authentication request from server");
        return -1;
    }
    proto_buf_init(&b);
    switch (code) {
    case PROTO_AUTH_OK:
        proto_buf_free(&b);
        return 0;
    case PROTO_AUTH_CLEARTEXT:
        if (!plain)
            goto no_secret;
        proto_build_password(&b, secret);
        break;
    case PROTO_AUTH_MD5: {
        char resp[PROTO_MD5_LEN];

        if (!secret || (!plain && strncmp(secret, "md5", 3) != 0) || n < 4)
            goto no_secret;
        proto_md5_response(pool->user, secret, data, resp);
        proto_build_password(&b, resp);
        break;
    }
    case PROTO_AUTH_SASL:
        if (!memmem(data, n, "SCRAM-SHA-256\0", 14))
            goto unsupported;
        if (!plain && !pool->have_scram_keys)
            goto no_secret;
        sv->scram = calloc(1, sizeof(*sv->scram));
        if (!sv->scram || proto_scram_nonce(nonce, 24) < 0 ||
            proto_scram_client_first(sv->scram, nonce, out, sizeof(out), &outlen) < 0)
            goto unsupported;
        proto_build_sasl_initial(&b, "SCRAM-SHA-256", out, outlen);
        break;
    case PROTO_AUTH_SASL_CONTINUE:
        if (!sv->scram ||
            proto_scram_client_final(sv->scram, (const char *)data, n, plain ? secret : NULL,
                                     pool->scram_client_key, pool->scram_server_key,
                                     out, sizeof(out), &outlen, &err) < 0)
            goto scram_failed;
        proto_build_sasl_response(&b, out, outlen);
        break;
    case PROTO_AUTH_SASL_FINAL:
        if (!sv->scram || proto_scram_client_verify(sv->scram, (const char *)data, n, &err) < 0)
            goto scram_failed;
        free(sv->scram);
        sv->scram = NULL;
        proto_buf_free(&b);
        return 0;
    default:
        goto unsupported;
    }
    if (send_buf(sv, &b) < 0) {
        login_failed(sv, NULL, "pglane: cannot send authentication response to server");
        return -1;
    }
    return 0;

no_secret:
    proto_buf_free(&b);
    login_failed(sv, NULL, "pglane: no password for this user in auth_file that the server's "
                           "authentication method can use");
    return -1;
scram_failed:
    proto_buf_free(&b);
    login_failed(sv, NULL, err ? err : "pglane: SCRAM authentication with the server failed");
    return -1;
unsupported:
    proto_buf_free(&b);
    login_failed(sv, NULL, "pglane: unsupported authentication method requested by the server");
    return -1;
}

static void track_param(struct px_server *sv, const struct proto_frame *f, int from_login)
{
    struct px_pool *pool = sv->pool;
    const char *name, *value;
    int i;

    if (proto_parse_param_status(f->body, f->len, &name, &value) < 0)
        return;
    i = px_param_find(name);
    if (i >= 0) {
        px_params_set(&sv->have, i, value);
        /* While pglane's own queries run (parameter sync, session check and reset), the values are
         * pglane's, not the client's. */
        if (sv->client && !from_login && !sv->swallow_z)
            px_params_set(&sv->client->want, i, value);
    }
    if (from_login && !pool->params_ready) {
        struct px_kv *kv = realloc(pool->params, sizeof(*kv) * (size_t)(pool->nparams + 1));

        if (!kv)
            return;
        pool->params = kv;
        kv[pool->nparams].name = strdup(name);
        kv[pool->nparams].value = strdup(value);
        if (kv[pool->nparams].name && kv[pool->nparams].value)
            pool->nparams++;
        else {
            free(kv[pool->nparams].name);
            free(kv[pool->nparams].value);
        }
        if (i >= 0)
            px_params_set(&pool->defaults, i, value);
    }
}

/* The next whole message of the server's buffer (consumed): 1, 0 if incomplete, -1 if malformed. */
static int next_frame(struct px_server *sv, struct proto_frame *f)
{
    struct px_buf *b = &sv->conn.in;
    const char *err;
    size_t used;
    int r;

    if (b->pos >= b->len)
        return 0;
    r = proto_frame_next(b->data + b->pos, b->len - b->pos, PROTO_PHASE_BACKEND, f, &used, &err);
    if (r != PROTO_FRAME_OK)
        return r == PROTO_FRAME_NEED_MORE ? 0 : -1;
    b->pos += (uint32_t)used;
    return 1;
}

static void login_read(struct px_server *sv)
{
    struct px_buf *b = &sv->conn.in;
    struct proto_frame f;
    int r;

    while ((r = next_frame(sv, &f)) > 0) {
        switch (f.type) {
        case PROTO_BE_AUTH:
            if (login_auth(sv, &f) < 0)
                return;
            break;
        case PROTO_BE_PARAM_STATUS:
            track_param(sv, &f, 1);
            break;
        case PROTO_BE_BACKEND_KEY:
            if (proto_parse_backend_key(f.body, f.len, &sv->backend_pid, &sv->backend_key) < 0) {
                login_failed(sv, NULL, "pglane: malformed BackendKeyData from server");
                return;
            }
            break;
        case PROTO_BE_ERROR:
            login_failed(sv, &f, NULL);
            return;
        case PROTO_BE_READY:
            b->start = b->pos;
            sv->pool->params_ready = 1;
            sv->pool->unreachable_since_ms = 0;
            sv->tx_status = 'I';
            SLOG(sv, CONF_LOG_DEBUG, "logged in, backend pid %u", sv->backend_pid);
            px_pool_server_ready(sv);
            return;
        default:            /* NoticeResponse, NegotiateProtocolVersion: nothing to do */
            break;
        }
        b->start = b->pos;
    }
    if (r < 0)
        login_failed(sv, NULL, "pglane: protocol error from server during login");
}

/* A string literal: quotes doubled. */
static void put_literal(struct proto_buf *q, const char *v)
{
    proto_put_bytes(q, "'", 1);
    for (const char *p = v; *p; p++) {
        proto_put_bytes(q, p, 1);
        if (*p == '\'')
            proto_put_bytes(q, "'", 1);   /* a string literal doubles its quotes */
    }
    proto_put_bytes(q, "'", 1);
}

/* One "pg_catalog.set_config('name','value',local)" item of a SELECT list. */
static void put_set_config(struct proto_buf *q, int *selects, const char *name, const char *value, int local)
{
    proto_put_bytes(q, *selects ? "," : (q->len ? ";SELECT " : "SELECT "), *selects ? 1 : (q->len ? 8 : 7));
    (*selects)++;
    proto_put_bytes(q, "pg_catalog.set_config(", 22);
    put_literal(q, name);
    proto_put_bytes(q, ",", 1);
    put_literal(q, value);
    proto_put_bytes(q, local ? ",true)" : ",false)", local ? 6 : 7);
}

/* "RESET name" with each dotted part of the name quoted. */
static void put_reset(struct proto_buf *q, const char *name)
{
    if (q->len)
        proto_put_bytes(q, ";", 1);
    proto_put_bytes(q, "RESET \"", 7);
    for (const char *p = name; *p; p++) {
        if (*p == '.')
            proto_put_bytes(q, "\".\"", 3);
        else
            proto_put_bytes(q, p, 1);
        if (*p == '"')
            proto_put_bytes(q, "\"", 1);
    }
    proto_put_bytes(q, "\"", 1);
}

/* Appends "SELECT set_config(...)" / "RESET x" for every tracked parameter and every startup GUC
 * of the client that differs from what the server has. */
static void build_param_sync(struct px_server *sv, struct px_client *cl, struct proto_buf *q)
{
    int selects = 0;

    for (int i = 0; i < PX_P_COUNT; i++) {
        const char *want = cl->want.v[i] ? cl->want.v[i] : sv->pool->defaults.v[i];
        const char *have = sv->have.v[i];

        if ((!want && !have) || (want && have && strcmp(want, have) == 0))
            continue;
        if (!want) {
            put_reset(q, px_param_name(i));
            selects = 0;
            px_params_set(&sv->have, i, NULL);
            continue;
        }
        put_set_config(q, &selects, px_param_name(i), want, 0);
        px_params_set(&sv->have, i, want);
    }
    for (int i = sv->gucs.n - 1; i >= 0; i--)
        if (!px_kvlist_find(&cl->gucs, sv->gucs.v[i].name)) {
            put_reset(q, sv->gucs.v[i].name);
            selects = 0;
            px_kvlist_remove(&sv->gucs, i);
        }
    for (int i = 0; i < cl->gucs.n; i++) {
        const struct px_kv *have = px_kvlist_find(&sv->gucs, cl->gucs.v[i].name);

        if (have && strcmp(have->value, cl->gucs.v[i].value) == 0)
            continue;
        put_set_config(q, &selects, cl->gucs.v[i].name, cl->gucs.v[i].value, 0);
        if (px_kvlist_set(&sv->gucs, cl->gucs.v[i].name, cl->gucs.v[i].value) < 0)
            q->failed = 1;
    }
}

/* Sends one of pglane's own simple queries; its replies are swallowed up to its ReadyForQuery. */
static int send_own_query(struct px_server *sv, const char *sql, size_t len)
{
    struct proto_buf b;
    size_t start;

    proto_buf_init(&b);
    start = proto_msg_begin(&b, PROTO_FE_QUERY);
    proto_put_bytes(&b, sql, len);
    proto_put_u8(&b, 0);
    proto_msg_end(&b, start);
    if (send_buf(sv, &b) < 0)
        return -1;
    sv->swallow_z++;
    return 0;
}

/* Sends the client's tracked parameters and its recorded session settings (one write, replies
 * swallowed). 0 or -1. */
static int send_client_state(struct px_server *sv, struct px_client *cl)
{
    const char *replay = px_session_replay_sql(cl);
    struct proto_buf q, m;
    uint32_t n = 0;
    size_t start;
    int r, q_sent;

    proto_buf_init(&q);
    proto_buf_init(&m);
    build_param_sync(sv, cl, &q);
    q_sent = q.len > 0;
    if (q.len) {
        start = proto_msg_begin(&m, PROTO_FE_QUERY);
        proto_put_bytes(&m, q.data, q.len);
        proto_put_u8(&m, 0);
        proto_msg_end(&m, start);
        n++;
    }
    if (replay) {
        /* In its own Query, so that a failure is the replay's: the client is then closed rather
         * than left running with settings or a role it did not ask for. */
        start = proto_msg_begin(&m, PROTO_FE_QUERY);
        proto_put_cstr(&m, replay);
        proto_msg_end(&m, start);
        n++;
        sv->replaying = 1;
        sv->dirty |= PX_DIRTY_RESET;
    }
    r = q.failed ? -1 : 0;
    proto_buf_free(&q);
    if (n == 0 || r < 0) {
        proto_buf_free(&m);
        return r;
    }
    if (send_buf(sv, &m) < 0)
        return -1;
    if (q_sent)                        /* the sync's ReadyForQuery is the first of these */
        sv->sync_wait = (uint8_t)(sv->swallow_z + 1 > 255 ? 255 : sv->swallow_z + 1);
    sv->swallow_z += n;
    return 0;
}

/* Sends the client's state; when it sets a role or a session user, the client's own messages wait
 * for its answer (a refused SET ROLE must not let a statement run as the login user). 0 or -1. */
static int restore_client(struct px_server *sv, struct px_client *cl)
{
    sv->replay_wait = 0;
    if (send_client_state(sv, cl) < 0)
        return -1;
    sv->replay_wait = sv->replaying && px_session_replay_role(cl);
    return 0;
}

/*
 * The client's startup settings, checked the way PostgreSQL checks them but without changing the
 * connection: one SELECT of set_config(name, value, true) per setting, whose row holds each value
 * as PostgreSQL reports it and whose error is the one PostgreSQL gives at login.
 */
static int send_validation(struct px_server *sv, struct px_client *cl)
{
    struct proto_buf q;
    int selects = 0, rc;

    proto_buf_init(&q);
    for (int i = 0; i < cl->nstartup; i++)
        put_set_config(&q, &selects, cl->startup[i].name, cl->startup[i].value, 1);
    rc = q.failed ? -1 : send_own_query(sv, (const char *)q.data, q.len);
    proto_buf_free(&q);
    if (rc == 0)
        sv->validating = (uint8_t)(sv->swallow_z > 255 ? 255 : sv->swallow_z);
    return rc;
}

void px_server_attach(struct px_server *sv, struct px_client *cl)
{
    sv->client = cl;
    px_server_set_state(sv, SV_ACTIVE);
    cl->server = sv;
    if (sv->unnamed_owner != cl->conn.id)
        sv->unnamed_owner = 0;     /* whatever unnamed statement it has is not this client's */
    if (cl->state == CL_LOGIN_WAIT && cl->validate && cl->nstartup > 0) {
        if (send_validation(sv, cl) < 0) {
            px_server_close(sv, "cannot send the check of startup parameters");
            px_client_fail(cl, "08006", "pglane: lost the server connection");
            return;
        }
        px_conn_read_start(&sv->conn);
        return;
    }
    px_server_attach_continue(sv, cl);
}

void px_server_attach_continue(struct px_server *sv, struct px_client *cl)
{
    /* A login in transaction pooling only reports parameters: the sync waits for a transaction. */
    int login_only = cl->state == CL_LOGIN_WAIT && sv->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION;

    sv->replay_wait = 0;
    if (!login_only && restore_client(sv, cl) < 0) {
        px_server_close(sv, "cannot send parameter sync");
        px_client_fail(cl, "08006", "pglane: lost the server connection");
        return;
    }
    px_conn_read_start(&sv->conn);
    if (!sv->replay_wait)
        px_client_attached(cl);
}

/* The replay the client waited for has answered (and succeeded). */
static void replay_done(struct px_server *sv)
{
    struct px_client *cl = sv->client;

    sv->replay_wait = 0;
    if (!cl)
        return;
    if (cl->state != CL_ACTIVE) {
        px_client_attached(cl);
        return;
    }
    px_conn_read_start(&cl->conn);          /* a pinned client, after its check */
    if (cl->conn.in.pos < cl->conn.in.len)
        px_client_on_read(cl);
    else
        px_client_pump(cl);
}

static int release_ready(const struct px_server *sv)
{
    const struct px_client *cl = sv->client;

    return cl && cl->pending_z == 0 && !cl->unsynced && sv->tx_status == 'I' && sv->swallow_z == 0 &&
           !cl->terminate_sent &&
           sv->prepq.n == 0 &&
           cl->conn.in.pos == cl->conn.in.start && cl->conn.in.remain == 0;
}

/* After a transaction that may have changed session state: reads what the session holds and resets
 * it, in one query, while the client's next messages wait (proxy/session.c). */
static void start_check(struct px_server *sv, struct px_client *cl)
{
    struct proto_buf q;

    proto_buf_init(&q);
    px_session_check_sql(cl, &q);
    sv->dirty = 0;
    sv->listen_seen = 0;
    for (int i = 0; i < PX_P_COUNT; i++)
        if (!px_param_reported(i))
            px_params_set(&sv->have, i, NULL);
    if (q.failed || px_session_check_begin(sv) < 0 || send_own_query(sv, (const char *)q.data, q.len) < 0) {
        proto_buf_free(&q);
        px_session_check_abandon(sv);
        px_server_close(sv, "cannot send the session check");
        px_client_fail(cl, "08006", "pglane: lost the server connection");
        return;
    }
    proto_buf_free(&q);
    sv->checking = 1;
    px_conn_read_stop(&cl->conn);
}

/* The session check has answered (sv->checking was set, its ReadyForQuery is consumed). */
static void check_done(struct px_server *sv)
{
    struct px_client *cl = sv->client;
    const struct px_lane *lane = sv->pool->lane;

    sv->checking = 0;
    if (sv->check_failed) {
        /* Neither read nor reset: this connection's session is unknown, so it goes; the client keeps
         * its record, and loses its connection only if state of its was pinned there. */
        struct px_pool *pool = sv->pool;

        px_session_check_abandon(sv);
        px_server_close(sv, "the session check failed");
        px_pool_refill(pool);
        if (cl && cl->pins)
            px_client_fail(cl, "08006", "pglane: lost the server connection that held this session's state");
        else if (cl)
            px_client_released(cl);
        return;
    }
    if (!cl) {                          /* the client left meanwhile */
        if (px_session_check_pins(sv))
            sv->dirty |= PX_DIRTY_DISCARD;
        px_session_check_abandon(sv);
        server_release(sv);
        return;
    }
    px_session_check_end(sv, cl);
    if (cl->pins && lane->conf->pin == CONF_PIN_REFUSE) {
        char msg[256], why[96];

        px_pin_names(cl->pins, why, sizeof(why));
        snprintf(msg, sizeof(msg), "pglane: lane \"%s\" refuses session state that pins a server connection (%s); "
                 "its setting is pin = refuse", lane->conf->name, why);
        px_server_close(sv, "client pinned in a lane with pin = refuse");
        px_client_fail(cl, "0A000", msg);
        return;
    }
    if (cl->pins) {                     /* the client keeps its server, with its settings back */
        if (restore_client(sv, cl) < 0) {
            px_server_close(sv, "cannot send parameter sync");
            px_client_fail(cl, "08006", "pglane: lost the server connection");
            return;
        }
        if (sv->replay_wait)
            return;                     /* replay_done lets the client go on */
        px_conn_read_start(&cl->conn);
        if (cl->conn.in.pos < cl->conn.in.len)
            px_client_on_read(cl);
        return;
    }
    cl->server = NULL;
    sv->client = NULL;
    px_client_released(cl);
    if (sv->state != SV_CLOSED)
        px_pool_server_ready(sv);
}

/* Gives the server back to its pool, after restoring session state a client changed. */
static void server_release(struct px_server *sv)
{
    struct px_client *cl = sv->client;
    struct proxy *px = sv->conn.px;

    sv->release_after_write = 0;
    sv->replay_wait = 0;
    /* After a forward to the client completed (release_after_write), reads are still stopped: the
     * replies to a check or a reset, and a pinned client's next replies, must be read. */
    if (sv->state != SV_CLOSED)
        px_conn_read_start(&sv->conn);
    if (cl && px->conf->pool_mode == CONF_POOL_TRANSACTION &&
        (cl->changes_session || (sv->dirty & PX_DIRTY_CHECK) || cl->pins)) {
        int suspect = cl->changes_session || (sv->dirty & PX_DIRTY_CHECK);

        sv->pool->transactions++;
        px_client_tx_end(cl);
        if (px->draining) {
            px_client_fail(cl, "57P01", "pglane is shutting down");
            return;
        }
        if (suspect)
            start_check(sv, cl);
        return;                         /* pinned: the client keeps its server */
    }
    if (cl) {
        if (cl->changes_session)
            sv->dirty |= PX_DIRTY_RESET;
        cl->server = NULL;
        sv->client = NULL;
        cl->conn.blocked = 0;          /* nothing queued towards this server concerns it now */
        sv->pool->transactions++;
        px_client_detached(cl);
    }
    if (sv->state == SV_CLOSED)
        return;
    if (sv->cancel_expired) {
        struct px_pool *pool = sv->pool;

        px_server_close(sv, "a cancel forwarded to it did not complete in time");
        px_pool_refill(pool);
        return;
    }
    if (sv->ncancels) {
        /* A cancel forwarded to this backend may still land: no one else runs a query here until
         * PostgreSQL has closed the cancel connection (proxy/cancel.c calls px_server_recycle). */
        if (sv->state != SV_CANCEL_WAIT) {
            px_server_set_state(sv, SV_CANCEL_WAIT);
            sv->pool->lane->stats.cancels[PX_CANCEL_HELD]++;
            SLOG(sv, CONF_LOG_DEBUG, "held out of the pool: %d cancel(s) in flight", sv->ncancels);
        }
        px_conn_read_start(&sv->conn);
        return;
    }
    if (sv->dirty) {
        /* UNLISTEN *: a pinned client's connection never gets here, so whatever listens now was
         * started where pglane could not see it (a trigger, say) and must not outlive the client. */
        static const char tx_reset[] = "RESET SESSION AUTHORIZATION;RESET ROLE;RESET ALL;UNLISTEN *";
        static const char discard[] = "DISCARD ALL";
        int full = px->conf->pool_mode == CONF_POOL_SESSION || (sv->dirty & PX_DIRTY_DISCARD);

        sv->dirty = 0;
        sv->listen_seen = 0;
        px_server_set_state(sv, SV_RESETTING);
        px_kvlist_clear(&sv->gucs);        /* RESET ALL and DISCARD ALL undo them */
        if (full)
            sv->unnamed_owner = 0;
        for (int i = 0; i < PX_P_COUNT; i++)
            if (!px_param_reported(i))
                px_params_set(&sv->have, i, NULL);
        if (full && px->conf->pool_mode == CONF_POOL_TRANSACTION)
            px_prep_server_forget_all(sv);   /* DISCARD ALL drops pglane's statements too */
        if (send_own_query(sv, full ? discard : tx_reset, full ? sizeof(discard) - 1 : sizeof(tx_reset) - 1) < 0)
            px_server_close(sv, "cannot send reset query");
        return;
    }
    px_pool_server_ready(sv);
}

void px_server_recycle(struct px_server *sv)
{
    assert(!sv->client);
    server_release(sv);
}

void px_server_client_gone(struct px_server *sv, int clean)
{
    struct proxy *px = sv->conn.px;

    sv->client = NULL;
    if (sv->state != SV_ACTIVE)
        return;
    if (sv->checking && !px->exiting)
        return;                         /* check_done decides */
    /* A reply to pglane's own query still to come (the check of startup values, a parameter sync)
     * would be misread once another client is attached: close rather than wait. */
    if (!clean || px->exiting || sv->swallow_z) {
        px_server_close(sv, "client disconnected with a transaction or request open");
        return;
    }
    if (px->conf->pool_mode == CONF_POOL_SESSION)
        sv->dirty = 1;
    if (sv->conn.writing)
        sv->release_after_write = 1;
    else
        server_release(sv);
}

void px_server_detach(struct px_server *sv)
{
    if (sv->conn.writing)
        sv->release_after_write = 1;
    else
        server_release(sv);
}

/* Keeps a copy of the ErrorResponse that made pglane's own query fail (the first one). */
static void keep_own_error(struct px_server *sv, const struct proto_frame *f)
{
    if (sv->own_err || !(sv->own_err = malloc(PROTO_HEADER_LEN + f->len)))
        return;
    memcpy(sv->own_err, f->body - PROTO_HEADER_LEN, PROTO_HEADER_LEN + f->len);
    sv->own_err_len = PROTO_HEADER_LEN + f->len;
}

/* A message of the check of the client's startup values (sv->validating == 1: the next swallowed
 * ReadyForQuery is the check's). */
static void validation_reply(struct px_server *sv, const struct proto_frame *f)
{
    struct px_client *cl = sv->client;
    const uint8_t *p = f->body, *end = f->body + f->len;
    uint16_t n;

    if (!cl)
        return;
    if (f->type == PROTO_BE_NOTICE) {
        if (!cl->login_notices && (cl->login_notices = malloc(sizeof(*cl->login_notices))))
            proto_buf_init(cl->login_notices);
        if (cl->login_notices)
            proto_put_bytes(cl->login_notices, f->body - PROTO_HEADER_LEN, PROTO_HEADER_LEN + f->len);
        return;
    }
    if (f->type != PROTO_BE_DATA_ROW || f->len < 2)
        return;
    n = proto_get_u16(p);
    p += 2;
    for (int i = 0; i < n && i < cl->nstartup && end - p >= 4; i++) {
        uint32_t len = proto_get_u32(p);

        p += 4;
        if (len == 0xffffffffu || len > (uint32_t)(end - p))
            return;
        free(cl->startup[i].norm);
        cl->startup[i].norm = strndup((const char *)p, len);
        p += len;
    }
}

/*
 * Command tags after which session state may have changed, so that the session is checked before the
 * server connection serves anyone else: settings, role and session user (SET, RESET, DISCARD), code
 * pglane cannot see into (DO, CALL), and what may start or end a pin (LISTEN, UNLISTEN, PREPARE,
 * DEALLOCATE, DECLARE CURSOR, CLOSE CURSOR, CREATE TABLE/VIEW/SEQUENCE, DROP, LOAD).
 */
static int tag_suspect(const char *tag)
{
    switch (tag[0]) {
    case 'S':
        return strcmp(tag, "SET") == 0;
    case 'R':
        return strcmp(tag, "RESET") == 0;
    case 'D':
        return strncmp(tag, "DISCARD", 7) == 0 || strcmp(tag, "DO") == 0 || strncmp(tag, "DEALLOCATE", 10) == 0 ||
               strcmp(tag, "DECLARE CURSOR") == 0 || strncmp(tag, "DROP ", 5) == 0;
    case 'C':
        return strcmp(tag, "CALL") == 0 || strncmp(tag, "CLOSE CURSOR", 12) == 0 ||
               strcmp(tag, "CREATE TABLE") == 0 || strcmp(tag, "CREATE TABLE AS") == 0 ||
               strcmp(tag, "CREATE VIEW") == 0 || strcmp(tag, "CREATE SEQUENCE") == 0;
    case 'L':
        return strcmp(tag, "LISTEN") == 0 || strcmp(tag, "LOAD") == 0;
    case 'U':
        return strcmp(tag, "UNLISTEN") == 0;
    case 'P':
        return strcmp(tag, "PREPARE") == 0;
    default:
        return 0;
    }
}

/* Handles a message pglane must read whole. Returns 1 if it is dropped (one of pglane's own replies). */
static int inspect(struct px_server *sv, const struct proto_frame *f)
{
    struct px_client *cl = sv->client;
    char status;
    const char *tag;

    if (sv->swallow_z && sv->validating == 1)
        validation_reply(sv, f);
    switch (f->type) {
    case PROTO_BE_READY:
        if (proto_parse_ready(f->body, f->len, &status) == 0)
            sv->tx_status = status;
        if (sv->swallow_z) {
            sv->swallow_z--;
            if (sv->validating && --sv->validating == 0)
                sv->validate_done = 1;
            if (sv->sync_wait && --sv->sync_wait == 0 && sv->own_err)
                sv->sync_failed = 1;
            if (sv->swallow_z == 0)
                sv->replaying = 0;
            return 1;
        }
        if (cl && cl->pending_z)
            cl->pending_z--;
        if (cl)
            px_stats_query_end(sv, cl);   /* counts pool->queries, durations, slow log */
        return 0;
    case PROTO_BE_PARAM_STATUS:
        track_param(sv, f, 0);
        return sv->swallow_z > 0;
    case PROTO_BE_COMMAND_COMPLETE:
        if (sv->swallow_z)
            return 1;
        if (proto_parse_command_complete(f->body, f->len, &tag) < 0)
            return 0;
        if (tag_suspect(tag)) {
            sv->dirty |= PX_DIRTY_CHECK;
            sv->listen_seen |= strcmp(tag, "LISTEN") == 0;
        }
        if (strcmp(tag, "DISCARD ALL") == 0 || strcmp(tag, "DEALLOCATE ALL") == 0) {
            /* The server dropped every prepared statement, pglane's shared ones too. */
            px_prep_server_forget_all(sv);
            sv->unnamed_owner = 0;
            if (cl)
                px_prep_client_forget_all(cl);
        }
        return 0;
    case PROTO_BE_ERROR:
        if (sv->swallow_z) {
            struct proto_error_fields ef;

            if (sv->validating == 1 || sv->sync_wait == 1)
                keep_own_error(sv, f);
            if (sv->validating != 1 && proto_parse_error(f->body, f->len, &ef) == 0)
                SLOG(sv, CONF_LOG_WARNING, "pglane's own query failed: %s %s",
                     ef.sqlstate ? ef.sqlstate : "", ef.message ? ef.message : "");
            if (sv->replaying)
                sv->replay_failed = 1;
            if (sv->checking)
                sv->check_failed = 1;
            return 1;
        }
        px_stats_error(sv, f);
        {
            struct proto_error_fields ef;

            if (proto_parse_error(f->body, f->len, &ef) == 0 && ef.severity &&
                (strcmp(ef.severity, "FATAL") == 0 || strcmp(ef.severity, "PANIC") == 0))
                sv->fatal_relayed = 1;
        }
        return 0;
    case PROTO_BE_DATA_ROW:
        if (sv->checking && sv->swallow_z)
            px_session_check_row(sv, f->body, f->len);
        return sv->swallow_z > 0;
    case PROTO_BE_NOTIFICATION:
        /* Only a client that listens gets notifications; a server connection that still listens
         * for a client that left (a path pglane could not see) keeps them to itself. */
        if (!cl || !((cl->pins & (1u << PX_PIN_LISTEN)) || sv->listen_seen)) {
            SLOG(sv, CONF_LOG_DEBUG, "%s", "dropped a notification for no listening client");
            return 1;
        }
        if (sv->swallow_z) {
            /* Among the replies to pglane's own queries (nothing for the client is pending in the
             * buffer then): sent on its own, after whatever is already on its way to the client. */
            if (px_conn_send_copy(&cl->conn, f->body - PROTO_HEADER_LEN, PROTO_HEADER_LEN + f->len) < 0)
                SLOG(sv, CONF_LOG_WARNING, "%s", "could not pass a notification to its client");
            return 1;
        }
        return 0;
    default:
        return sv->swallow_z > 0;
    }
}

static int must_read_whole(const struct px_server *sv, uint8_t type)
{
    return sv->swallow_z > 0 || type == PROTO_BE_READY || type == PROTO_BE_PARAM_STATUS ||
           type == PROTO_BE_COMMAND_COMPLETE || type == PROTO_BE_ERROR || type == PROTO_BE_NOTIFICATION;
}

/* Sends the replies scanned so far to the client; 1 if they are not all gone yet. */
static int flush_blocked(struct px_server *sv)
{
    struct px_buf *b = &sv->conn.in;

    if (b->start < b->pos && px_forward(&sv->conn, &sv->client->conn) < 0)
        return 1;
    return sv->conn.writing || b->start < b->pos;
}

/* A message of the server goes to the client: its first message(s) can no longer be resent. */
static void reply_to_client(struct px_client *cl, uint8_t type)
{
    if (cl->retry_buf)
        px_retry_disarm(cl);
    px_flow_reply(cl, type);
}

/* An ErrorResponse (whole) before any reply reached the client: 1 if it was a dead connection's
 * FATAL and the client's first message(s) went back to the queue (sv closed). */
static int retry_on_error(struct px_server *sv, const struct proto_frame *f)
{
    struct proto_error_fields ef;
    char detail[160];

    if (proto_parse_error(f->body, f->len, &ef) < 0)
        return 0;
    snprintf(detail, sizeof(detail), "%s %s %.120s", ef.severity ? ef.severity : "", ef.sqlstate ? ef.sqlstate : "",
             ef.message ? ef.message : "");
    return px_retry_try(sv, PX_RF_ERROR, ef.severity, ef.sqlstate, detail);
}

/* What scan found in the server's bytes. */
enum scan_result {
    SCAN_ERROR = -1,               /* a protocol error, or out of memory */
    SCAN_MORE,                     /* everything readable is scanned: read on */
    SCAN_RELEASABLE,               /* a ReadyForQuery made the server releasable */
    SCAN_OWN_DONE,                 /* the answer to pglane's session check or replay is complete */
    SCAN_REQUEUED                  /* the connection was closed and its client requeued (proxy/retry.c) */
};

/* Scans the server's bytes. */
static enum scan_result scan(struct px_server *sv)
{
    struct px_buf *b = &sv->conn.in;
    struct proto_frame f;
    const char *err;
    int prep;

    while (b->pos < b->len) {
        uint32_t avail;
        int r = proto_cursor_next(b->data, &b->pos, b->len, &b->remain, PROTO_PHASE_BACKEND, &f, &err);

        if (r == PROTO_FRAME_NEED_MORE)
            break;
        if (r == PROTO_FRAME_ERROR) {
            SLOG(sv, CONF_LOG_ERROR, "protocol error from server: %s", err);
            return SCAN_ERROR;
        }
        avail = b->len - b->pos;
        /* Replies to messages forwarded before the response queue was in play come first. */
        prep = sv->prepq.n > 0 && sv->swallow_z == 0 && !(sv->client && px_flow_raw_owed(sv->client));
        if (prep && px_prep_head_is_synth(sv)) {
            if (flush_blocked(sv))
                break;
            (void)px_prep_drain(sv);
            prep = sv->prepq.n > 0;
        }
        if (must_read_whole(sv, f.type) ||
            (prep && (f.type == PROTO_BE_PARSE_COMPLETE || f.type == PROTO_BE_CLOSE_COMPLETE))) {
            if (avail < PROTO_HEADER_LEN + f.len) {
                if (b->cap - b->start < PROTO_HEADER_LEN + f.len && !sv->conn.writing &&
                    px_buf_reserve(b, PROTO_HEADER_LEN + f.len - avail) < 0)
                    return SCAN_ERROR;
                break;
            }
            f.body = b->data + b->pos + PROTO_HEADER_LEN;
            if (f.type == PROTO_BE_ERROR && sv->client && sv->client->retry_buf && retry_on_error(sv, &f))
                return SCAN_REQUEUED; /* sv is closed: its client was requeued with its first message(s) */
            if (prep && px_prep_swallows(sv, f.type)) {
                /* The reply to a Parse or Close pglane added: the client never sees it. */
                if (flush_blocked(sv))
                    break;
                px_prep_on_reply(sv, &f);
                b->pos += PROTO_HEADER_LEN + f.len;
                b->start = b->pos;
                continue;
            }
            if (f.type == PROTO_BE_ERROR && sv->guard_for && px_guard_rewrite(sv, &f) < 0)
                break;            /* retried when the write in flight completes */
            if (f.type == PROTO_BE_ERROR && prep && px_prep_rewrite_error(sv, &f) < 0)
                break;
            if (inspect(sv, &f)) {
                /* Dropped: pglane's own replies always precede anything for the client. */
                if (b->start < b->pos && f.type == PROTO_BE_NOTIFICATION && sv->client) {
                    /* ... but a dropped notification may follow replies still to forward */
                    if (flush_blocked(sv))
                        break;
                }
                b->pos += PROTO_HEADER_LEN + f.len;
                b->start = b->pos;
                if ((sv->checking || sv->replay_wait) && sv->swallow_z == 0)
                    return SCAN_OWN_DONE;
                continue;
            }
            if (prep)
                px_prep_on_reply(sv, &f);
            if (sv->client)
                reply_to_client(sv->client, f.type);
            b->pos += PROTO_HEADER_LEN + f.len;
            if (f.type == PROTO_BE_READY && release_ready(sv))
                return SCAN_RELEASABLE;
            continue;
        }
        if (prep) {
            f.body = NULL;
            px_prep_on_reply(sv, &f);
        }
        if (sv->client)
            reply_to_client(sv->client, f.type);
        proto_cursor_stream(b->data, &b->pos, &b->remain);
    }
    return SCAN_MORE;
}

int px_server_replace_frame(struct px_server *sv, struct proto_frame *f, const struct proto_buf *nb)
{
    struct px_buf *b = &sv->conn.in;
    uint32_t old = PROTO_HEADER_LEN + f->len, nlen = (uint32_t)nb->len;

    if (nlen > old && b->cap - b->len < nlen - old) {
        if (sv->conn.writing)
            return -1;            /* the buffer may not move while a write is in flight */
        if (px_buf_reserve(b, nlen - old) < 0)
            return 0;             /* left as it is */
    }
    memmove(b->data + b->pos + nlen, b->data + b->pos + old, b->len - (b->pos + old));
    memcpy(b->data + b->pos, nb->data, nlen);
    b->len = b->len + nlen - old;
    f->len = nlen - PROTO_HEADER_LEN;
    f->body = b->data + b->pos + PROTO_HEADER_LEN;
    return 0;
}

/* Reads while no client is attached: asynchronous notices, or the replies to a reset query. */
static void idle_read(struct px_server *sv)
{
    struct px_buf *b = &sv->conn.in;
    struct proto_frame f;
    int r;

    while ((r = next_frame(sv, &f)) != 0) {
        if (r < 0) {
            px_server_close(sv, "protocol error from server");
            return;
        }
        b->start = b->pos;
        if (f.type == PROTO_BE_ERROR && (sv->state == SV_IDLE || sv->state == SV_CANCEL_WAIT)) {
            struct proto_error_fields ef;

            /* An idle backend only speaks up to say it is going away (terminated, shut down):
             * drop it now, before a client is handed a dead connection. */
            char detail[160];

            if (proto_parse_error(f.body, f.len, &ef) == 0)
                snprintf(detail, sizeof(detail), "%s %.120s", ef.sqlstate ? ef.sqlstate : "",
                         ef.message ? ef.message : "");
            else
                snprintf(detail, sizeof(detail), "malformed ErrorResponse");
            px_server_lost(sv, PX_LOST_IDLE_ERROR, detail);
            px_server_close(sv, "server error while idle");
            px_pool_refill(sv->pool);
            return;
        }
        (void)inspect(sv, &f);
        if (sv->state == SV_RESETTING && sv->swallow_z == 0) {
            px_pool_server_ready(sv);
            break;
        }
    }
    if (b->pos == b->len && b->remain == 0)
        b->start = b->pos;
    px_buf_release(b);
}

void px_server_pump_client(struct px_server *sv)
{
    struct px_client *cl = sv->client;
    int r;

    if (!cl)
        return;
    r = px_forward(&sv->conn, &cl->conn);
    if (r < 0) {
        px_client_close(cl, "write to client failed");
        return;
    }
}

void px_server_on_read(struct px_server *sv)
{
    enum scan_result r;

    switch (sv->state) {
    case SV_TLS:
        if (!sv->conn.tls)
            tls_answer(sv);
        return;
    case SV_LOGIN:
        login_read(sv);
        return;
    case SV_IDLE:
    case SV_RESETTING:
    case SV_CANCEL_WAIT:
        idle_read(sv);
        return;
    case SV_ACTIVE:
        break;
    case SV_CONNECTING:
    case SV_CLOSED:
        return;
    }
    r = scan(sv);
    if (r == SCAN_REQUEUED)
        return;
    if (r == SCAN_ERROR) {
        struct px_client *cl = sv->client;

        px_server_close(sv, "protocol error");
        if (cl)
            px_client_fail(cl, "08P01", "pglane: protocol error from the server");
        return;
    }
    if (sv->validate_done && sv->client) {
        sv->validate_done = 0;
        px_client_checked(sv->client, sv);   /* may hand the server on: nothing more to do here */
        return;
    }
    if (sv->sync_failed) {
        /* The client's settings could not be applied: never run its statements without them. */
        struct px_client *cl = sv->client;
        uint8_t *err = sv->own_err;

        sv->own_err = NULL;
        px_server_close(sv, "parameter sync failed");
        if (cl && err)
            px_client_fail_error(cl, err + PROTO_HEADER_LEN, sv->own_err_len - PROTO_HEADER_LEN);
        free(err);
        return;
    }
    if (sv->replay_failed) {
        struct px_client *cl = sv->client;

        px_server_close(sv, "a client's session settings could not be restored");
        if (cl)
            px_client_fail(cl, "08006", "pglane: could not restore this session's settings or role on a server "
                                        "connection (see pglane's log)");
        return;
    }
    if (r == SCAN_OWN_DONE) {
        if (sv->checking)
            check_done(sv);
        else
            replay_done(sv);
        return;
    }
    if (sv->client)
        px_server_pump_client(sv);
    if (sv->client && sv->prepq.n && !sv->conn.writing)
        (void)px_prep_drain(sv);
    if (sv->state == SV_ACTIVE && r == SCAN_RELEASABLE && sv->client &&
        sv->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION)
        px_server_detach(sv);
    else if (sv->state == SV_ACTIVE && r == SCAN_RELEASABLE && sv->client)
        px_client_session_idle(sv->client);
    else if (sv->state == SV_ACTIVE && sv->client && px_client_check_terminate(sv->client))
        return;
    if (sv->state == SV_ACTIVE && !sv->conn.writing && sv->conn.in.start == sv->conn.in.len)
        px_buf_release(&sv->conn.in);
}

void px_server_on_sent(struct px_server *sv)
{
    if (sv->release_after_write) {
        server_release(sv);
        return;
    }
    if (sv->state != SV_ACTIVE)
        return;
    if (sv->client && px_client_check_terminate(sv->client))
        return;
    px_conn_read_start(&sv->conn);
    if (sv->conn.in.pos < sv->conn.in.len)
        px_server_on_read(sv);
    else if (sv->client && sv->prepq.n && px_prep_drain(sv) == 0 && release_ready(sv) &&
             sv->conn.px->conf->pool_mode == CONF_POOL_TRANSACTION)
        px_server_detach(sv);
}

void px_server_on_eof(struct px_server *sv, int status)
{
    struct px_client *cl = sv->client;
    struct px_pool *pool = sv->pool;

    if (sv->state == SV_IDLE || sv->state == SV_CANCEL_WAIT) {
        px_server_lost(sv, PX_LOST_IDLE_CLOSED, uv_strerror(status));
        px_server_close(sv, "server closed the connection");
        px_pool_refill(pool);
        return;
    }
    if (sv->state == SV_ACTIVE && cl && !sv->fatal_relayed && px_retry_try(sv, PX_RF_CLOSED, NULL, NULL, uv_strerror(status))) {
        px_pool_refill(pool);
        return;
    }
    SLOG(sv, CONF_LOG_WARNING, "server closed the connection: %s", uv_strerror(status));
    if (sv->state == SV_TLS && px_tls_error(&sv->conn)) {
        char msg[256];

        snprintf(msg, sizeof(msg), "pglane: TLS handshake with server \"%s\" failed: %s",
                 sv->pool->lane->server->name, px_tls_error(&sv->conn));
        login_failed(sv, NULL, msg);
        return;
    }
    if (sv->state == SV_LOGIN || sv->state == SV_TLS) {
        SLOG(sv, CONF_LOG_ERROR, "login failed: %s", "server closed the connection during login");
        px_server_close(sv, "login failed");
        px_pool_server_unreachable(pool, "pglane: server closed the connection during login");
        return;
    }
    px_server_close(sv, "server closed the connection");
    if (cl && sv->fatal_relayed)            /* the client has the server's own FATAL: no second one */
        px_client_close(cl, "server closed the connection after a FATAL error");
    else if (cl)
        px_client_fail(cl, "08006", "pglane: server connection closed unexpectedly");
    px_pool_refill(sv->pool);      /* for the clients that waited for this connection */
}

void px_server_close(struct px_server *sv, const char *reason)
{
    struct px_client *cl = sv->client;

    if (sv->state == SV_CLOSED)
        return;
    SLOG(sv, CONF_LOG_DEBUG, "closing: %s", reason);
    px_server_set_state(sv, SV_CLOSED);   /* off the pool's lists */
    px_cancel_server_closed(sv);
    if (cl) {
        cl->server = NULL;
        sv->client = NULL;
    }
    px_conn_close(&sv->conn);
}

void px_server_free(struct px_server *sv)
{
    px_session_check_abandon(sv);
    px_prep_server_free(sv);
    px_params_clear(&sv->have);
    px_kvlist_clear(&sv->gucs);
    free(sv->own_err);
    free(sv->scram);
    free(sv);
}
