/*
 * Client login (proxy/client_auth.c): the authentication exchange against the auth_file (trust, md5,
 * SCRAM-SHA-256 with tls-server-end-point channel binding), the admin console's login, the choice of
 * the client's pool and the end of login (ParameterStatus, BackendKeyData, ReadyForQuery).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/client_internal.h"
#include "proxy/proxy.h"
#include "proxy/state.h"

/* ParameterStatus of the pool's first login, with the client's own values (tracked ones, and any
 * other reported setting it gave at startup: standard_conforming_strings, say, by which libpq
 * escapes strings), then BackendKeyData. */
void client_finish_login(struct px_client *cl)
{
    struct px_pool *pool = cl->pool;
    struct proto_buf b;

    proto_buf_init(&b);
    for (int i = 0; i < pool->nparams; i++) {
        int p = px_param_find(pool->params[i].name);
        const struct px_kv *own = p < 0 ? px_kvlist_find(&cl->gucs, pool->params[i].name) : NULL;
        const char *value = p >= 0 && cl->want.v[p] ? cl->want.v[p] : own ? own->value : pool->params[i].value;

        proto_build_param_status(&b, pool->params[i].name, value);
    }
    proto_build_backend_key(&b, cl->cancel_pid, cl->cancel_key);
    proto_build_ready(&b, 'I');
    client_send(cl, &b);
    CLOG(cl, CONF_LOG_DEBUG, "login complete, lane %s", pool->lane->conf->name);
}

/* What the client sent behind its last login message (a Query in the same write as the startup
 * packet or the password, as PostgreSQL reads it once the login is done): scanned now, since no read
 * event will come for bytes already read. */
void client_read_pipelined(struct px_client *cl)
{
    if (cl->state != CL_CLOSED && cl->conn.in.pos < cl->conn.in.len)
        px_client_on_read(cl);
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
int client_in_admin_reserve(struct px_client *cl)
{
    const struct conf *c = cl->conn.px->conf;

    return c->nadmin_users > 0 && px_workers_clients(cl->conn.px) > c->max_client_conn - c->reserve_admin_connections &&
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

static void login_ok(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;
    struct px_pool *pool;
    int lane;
    struct proto_buf b;

    if (cl->admin) {
        admin_login(cl);
        client_read_pipelined(cl);
        return;
    }
    proto_buf_init(&b);
    proto_build_auth_ok(&b);
    client_send(cl, &b);
    if (cl->state == CL_CLOSED)
        return;
    lane = px_route_client(px, cl);
    cl->lane = (int16_t)(lane >= 0 ? lane : px->conf->default_lane_index);
    pool = client_lane_pool(cl);
    if (!pool) {
        client_no_pool(cl);
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
    if (pool->g && !pool->params_ready)
        (void)px_gslot_params_adopt(pool);   /* another worker's pool logged in already */
    cl->validate = !client_startup_known(cl, pool);
    if (!cl->validate && pool->params_ready && px->conf->pool_mode == CONF_POOL_TRANSACTION) {
        px_client_set_state(cl, CL_IDLE);
        client_finish_login(cl);
        client_read_pipelined(cl);
        return;
    }
    px_client_set_state(cl, CL_LOGIN_WAIT);
    px_pool_acquire(pool, cl);
}

/* The user's secret: auth_file's entry, else what auth_query found (proxy/auth_query.c). */
static const char *user_secret(struct px_client *cl)
{
    const char *s = conf_userlist_find(&cl->conn.px->users, cl->user);

    return s ? s : cl->authq_secret;
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
    int looked_up = s && s == cl->authq_secret;

    if (!s)
        return cl->authq_done ? "user not in auth_file nor found by auth_query" : "user not in auth_file";
    if (!*s)
        return looked_up ? "empty password from auth_query" : "empty password in auth_file";
    if (scram && strncmp(s, "md5", 3) == 0 && strlen(s) == 35)
        return looked_up ? "an md5 secret from auth_query cannot verify SCRAM"
                         : "an md5 secret in auth_file cannot verify SCRAM";
    if (!scram && strncmp(s, "SCRAM-SHA-256$", 14) == 0)
        return looked_up ? "a SCRAM secret from auth_query cannot verify md5"
                         : "a SCRAM secret in auth_file cannot verify md5";
    return NULL;
}

/*
 * The stand-in secret of a user who cannot log in (see proto_scram_mock_secret): the exchange then
 * runs as for a wrong password, so SCRAM does not tell which users exist.
 */
static uint8_t mock_key[32];       /* random per process (every worker's logins use it): written once */
static int mock_key_ok;
static pthread_once_t mock_key_once = PTHREAD_ONCE_INIT;

static void mock_key_init(void)
{
    mock_key_ok = uv_random(NULL, NULL, mock_key, sizeof(mock_key), 0, NULL) == 0;
}

static int mock_secret(struct px_client *cl, struct proto_scram_secret *out)
{
    pthread_once(&mock_key_once, mock_key_init);
    if (!mock_key_ok)
        return -1;
    return proto_scram_mock_secret(mock_key, cl->user, out);
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
    struct proto_scram_secret derived;
    uint8_t salt[16];
    char keyed[1024];

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
    /* The salt of a password kept in plain text: derived from the process's random key, the user and
     * the password, so that every worker (each with its own cache) offers the same salt to a user, as
     * PostgreSQL does, and a new password gets a new salt. */
    pthread_once(&mock_key_once, mock_key_init);
    (void)snprintf(keyed, sizeof(keyed), "%s\n%s", cl->user, secret);   /* cut the same way every time */
    if (!mock_key_ok || proto_scram_mock_secret(mock_key, keyed, &derived) < 0)
        return -1;
    memcpy(salt, derived.salt, sizeof(salt));
    if (proto_scram_make_secret(secret, salt, sizeof(salt), PROTO_SCRAM_DEFAULT_ITERATIONS, out) < 0)
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

/* A user who is not in auth_file is looked up with auth_query (auth_user set) before the password is
 * asked for: the method (md5 or SCRAM) must not depend on whether the user exists. Returns 1 when
 * authentication can go on now, 0 when it goes on in px_client_secret_ready. */
static int look_up(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;
    int r;

    if (!px->conf->auth_user || px->conf->auth_type == CONF_AUTH_TRUST || cl->admin || cl->authq_done ||
        conf_userlist_find(&px->users, cl->user))
        return 1;
    r = px_authq_lookup(cl);
    if (r == 1) {                       /* answered from the cache */
        cl->authq_done = 1;
        return 1;
    }
    if (r == 0) {
        px_conn_read_stop(&cl->conn);   /* nothing is owed to it until the answer */
        return 0;
    }
    px_client_secret_ready(cl, 1);
    return 0;
}

void px_client_secret_ready(struct px_client *cl, int failed)
{
    char msg[256];

    if (cl->state == CL_CLOSED)
        return;
    px_conn_read_start(&cl->conn);
    if (failed) {
        /* Not 28P01: the password was never checked. The cause is in pglane's log (one line). */
        snprintf(msg, sizeof(msg), "pglane: could not look up the password of user \"%.64s\" (auth_query "
                 "failed; see pglane's log)", cl->user);
        client_fatal(cl, "08006", msg);
        return;
    }
    cl->authq_done = 1;
    client_start_auth(cl);
}

void client_start_auth(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;
    struct proto_buf b;

    if (!look_up(cl))
        return;
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

/* The SCRAM exchange's refusal in PostgreSQL's words: a wrong proof is the failed password. */
static void scram_refused(struct px_client *cl)
{
    const struct proto_scram_server *st = cl->scram;

    if (st->wrong_proof)
        auth_failed(cl, st->err_msg);
    else
        client_fatal_detail(cl, st->err_state, st->err_msg, st->err_detail[0] ? st->err_detail : NULL);
}

/*
 * The SASLInitialResponse: the mechanism (checked before its data, as PostgreSQL does), then the
 * client-first-message. Without one (data length -1) the SASLContinue is empty and the
 * client-first-message comes alone in the next message. Returns 0 when the exchange may go on.
 */
static int sasl_initial(struct px_client *cl, const struct proto_frame *f, const uint8_t **data, uint32_t *n)
{
    struct proto_scram_secret secret;
    const char *mech, *err;
    int plus, bad = proto_parse_sasl_initial(f->body, f->len, &mech, data, n, &err);

    if (mech == NULL) {
        client_fatal(cl, "08P01", err);
        return -1;
    }
    plus = strcmp(mech, "SCRAM-SHA-256-PLUS") == 0;
    if (strcmp(mech, "SCRAM-SHA-256") != 0 && !(plus && scram_plus_offered(cl))) {
        client_fatal(cl, "08P01", "client selected an invalid SASL authentication mechanism");
        return -1;
    }
    if (bad) {
        client_fatal(cl, "08P01", err);
        return -1;
    }
    if (scram_secret(cl, &secret) < 0 && mock_secret(cl, &secret) < 0) {
        client_fatal(cl, "XX000", "pglane: no randomness for SCRAM");
        return -1;
    }
    cl->scram = calloc(1, sizeof(*cl->scram));
    if (!cl->scram || scram_bind(cl, plus) < 0) {
        client_fatal(cl, "XX000", "pglane: SCRAM state");
        return -1;
    }
    cl->scram->secret = secret;                  /* kept for the client-first-message */
    return 0;
}

static void sasl_step(struct px_client *cl, const struct proto_frame *f)
{
    char out[PROTO_SCRAM_MAX_MSG], nonce[32];
    const uint8_t *data;
    uint32_t n;
    size_t outlen;
    struct proto_buf b;

    if (cl->state == CL_AUTH_SASL_INIT) {
        struct proto_scram_secret secret;

        if (cl->scram == NULL) {
            if (sasl_initial(cl, f, &data, &n) < 0)
                return;
            if (data == NULL) {                  /* no initial response: ask for it */
                proto_buf_init(&b);
                proto_build_auth_sasl_continue(&b, "", 0);
                client_send(cl, &b);
                return;
            }
        } else {
            data = f->body;                      /* the client-first-message, alone */
            n = f->len;
        }
        secret = cl->scram->secret;
        if (proto_scram_nonce(nonce, 24) < 0) {
            client_fatal(cl, "XX000", "pglane: no randomness for SCRAM");
            return;
        }
        if (proto_scram_server_first(cl->scram, &secret, (const char *)data, n, nonce, out, sizeof(out), &outlen,
                                     NULL) < 0) {
            scram_refused(cl);
            return;
        }
        proto_buf_init(&b);
        proto_build_auth_sasl_continue(&b, out, outlen);
        px_client_set_state(cl, CL_AUTH_SASL_FINAL);
        client_send(cl, &b);
        return;
    }
    if (proto_scram_server_final(cl->scram, (const char *)f->body, f->len, out, sizeof(out), &outlen, NULL) < 0) {
        scram_refused(cl);
        return;
    }
    if (unusable_secret(cl, 1)) {
        auth_failed(cl, unusable_secret(cl, 1));
        return;
    }
    cl->scram_ok = 1;
    proto_buf_init(&b);
    proto_build_auth_sasl_final(&b, out, outlen);
    client_send(cl, &b);
    if (cl->state != CL_CLOSED)
        login_ok(cl);
}

void client_auth_read(struct px_client *cl)
{
    struct px_buf *b = &cl->conn.in;
    struct proto_frame f;
    const char *err;
    size_t used;
    int r;

    /* As PostgreSQL: the type is checked first (a FATAL naming it); then a length it cannot take
     * ends an md5 or password login without a word and fails a SASL exchange as a wrong password. */
    if (b->pos < b->len && b->data[b->pos] != PROTO_FE_PASSWORD) {
        char msg[64];

        snprintf(msg, sizeof(msg), "expected %s response, got message type %d",
                 cl->state == CL_AUTH_PASSWORD ? "password" : "SASL", b->data[b->pos]);
        client_fatal(cl, "08P01", msg);
        return;
    }
    r = proto_frame_next(b->data + b->pos, b->len - b->pos, PROTO_PHASE_PREAUTH, &f, &used, &err);
    if (r == PROTO_FRAME_NEED_MORE)
        return;
    if (r == PROTO_FRAME_ERROR) {
        if (cl->state != CL_AUTH_PASSWORD) {
            auth_failed(cl, err);
            return;
        }
        CLOG(cl, CONF_LOG_INFO, "closing: %s in the password message (08P01; the client is told nothing, "
             "as by PostgreSQL)", err);
        px_client_close(cl, err);
        return;
    }
    b->pos += (uint32_t)used;
    b->start = b->pos;
    if (cl->state == CL_AUTH_PASSWORD) {
        const char *resp, *secret = user_secret(cl), *why = unusable_secret(cl, 0);

        if (proto_parse_password(f.body, f.len, &resp) < 0) {    /* PostgreSQL's words for both */
            client_fatal(cl, "08P01", "invalid password packet size");
            return;
        }
        if (resp[0] == '\0') {
            client_fatal(cl, "28P01", "empty password returned by client");
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
