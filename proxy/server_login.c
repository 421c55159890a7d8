/*
 * Server connections, opening and closing: connect to PostgreSQL, TLS, the startup packet,
 * authentication (cleartext, MD5, SCRAM-SHA-256) and the ParameterStatus of the login; close and
 * free. The relay is proxy/server.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/nice.h"
#include "proxy/proxy.h"
#include "proxy/server_internal.h"
#include "proxy/state.h"

static void on_connect(uv_connect_t *req, int status);

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

static void linger_end(struct px_server *sv, int waited);

static void stream_closed(struct px_conn *c)
{
    linger_end((struct px_server *)c, 1);
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

    if (!sv) {
        if (pool->g) {
            px_gslot_put(pool);    /* the slots grow took for it */
            px_caps_put(pool);
        }
        return NULL;
    }
    px_conn_init(px, &sv->conn, &server_stream_ops);
    sv->pool = pool;
    px_server_set_state(sv, SV_CONNECTING);   /* onto pool->busy */
    sv->created_ms = px_now_ms(px);
    px_list_init(&sv->cancels);
    sv->connect_req.data = sv;
    r = px_sock_connect(px->loop, &sv->conn.h, &sv->connect_req, pool->ep->unix_socket ? pool->ep->unix_path : NULL,
                        (const struct sockaddr *)&pool->ep->addr, on_connect);
    if (r < 0) {
        SLOG(sv, CONF_LOG_ERROR, "connect failed: %s", uv_strerror(r));
        px_server_close(sv, "connect failed");
        return NULL;
    }
    SLOG(sv, CONF_LOG_DEBUG, "connecting (%d/%d)", pool->nidle + pool->nbusy, lane->size);
    return sv;
}

static void free_unused(uv_handle_t *h)
{
    free(h->data);
}

int px_server_adopt(struct px_pool *pool, int fd, uint32_t backend_pid, uint32_t backend_key,
                    struct px_params *have, struct px_kvlist *gucs, uint64_t created_ms, int seq_used)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    struct px_server *sv = calloc(1, sizeof(*sv));
    int r;

    if (!sv)
        return -1;
    r = pool->ep->unix_socket ? uv_pipe_init(px->loop, &sv->conn.h.pipe, 0) : uv_tcp_init(px->loop, &sv->conn.h.tcp);
    if (r == 0)
        r = pool->ep->unix_socket ? uv_pipe_open(&sv->conn.h.pipe, fd) : uv_tcp_open(&sv->conn.h.tcp, fd);
    if (r < 0) {
        /* The handle holds no descriptor yet: the caller closes fd; the handle is closed unused. */
        sv->conn.h.handle.data = sv;
        uv_close(&sv->conn.h.handle, free_unused);
        return -1;
    }
    px_conn_init(px, &sv->conn, &server_stream_ops);
    sv->pool = pool;
    px_list_init(&sv->cancels);
    px_server_set_state(sv, SV_CONNECTING);   /* onto pool->busy; the slot came with the connection */
    px_server_set_state(sv, SV_LOGIN);
    sv->backend_pid = backend_pid;
    sv->backend_key = backend_key;
    sv->have = *have;
    sv->gucs = *gucs;
    sv->created_ms = created_ms;
    sv->seq_client = seq_used ? PX_SEQ_UNKNOWN : 0;   /* another worker's client: discarded at first use */
    sv->tx_status = 'I';
    SLOG(sv, CONF_LOG_DEBUG, "handed over from another worker (backend %u)", backend_pid);
    px_workers_backend_set(px, pool->ep->server->name, backend_pid, pool->lane->conf->name);
    sv->fresh = 1;
    px_pool_server_ready(sv);
    return 0;
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
                 sv->pool->ep->server->name, uv_strerror(status));
        SLOG(sv, CONF_LOG_ERROR, "%s", msg);
        px_server_close(sv, "connect failed");
        px_pool_server_unreachable(sv->pool, msg);
        return;
    }
    px_sock_set_options(&sv->conn.h, sv->conn.px->conf);
    px_conn_read_start(&sv->conn);
    if (sv->pool->ep->tls_ctx && !sv->pool->ep->unix_socket) {
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
void tls_answer(struct px_server *sv)
{
    const struct conf_server *cs = sv->pool->ep->server;
    struct px_buf *b = &sv->conn.in;
    uint8_t answer = b->data[b->pos];

    b->pos = b->start = b->len;
    if (answer == 'S' && b->len == 1) {
        if (px_tls_start(&sv->conn, sv->pool->ep->tls_ctx, 0,
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

void login_failed(struct px_server *sv, const struct proto_frame *err, const char *message)
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
        if (passing) {
            px_pool_server_unreachable(pool, msg);
        } else {
            px_pool_login_failed(pool);
            px_pool_server_failed(pool, err->body - PROTO_HEADER_LEN, err->len + PROTO_HEADER_LEN, NULL, NULL);
        }
    } else {
        SLOG(sv, CONF_LOG_ERROR, "login failed: %s", message);
        px_server_close(sv, "login failed");
        px_pool_server_failed(pool, NULL, 0, "08006", message);
    }
}

int send_buf(struct px_server *sv, struct proto_buf *b)
{
    int r = b->failed ? -1 : px_conn_send_copy(&sv->conn, b->data, b->len);

    proto_buf_free(b);
    return r;
}

/* Why a login's authentication cannot go on. */
static const char auth_no_secret[] = "pglane: no password for this user in auth_file that the server's "
                                     "authentication method can use";
static const char auth_unsupported[] = "pglane: unsupported authentication method requested by the server";
static const char auth_scram_failed[] = "pglane: SCRAM authentication with the server failed";

/* Fails the login because the authentication cannot go on (b, the unsent response, is freed). -1. */
static int auth_failed(struct px_server *sv, struct proto_buf *b, const char *message)
{
    proto_buf_free(b);
    login_failed(sv, NULL, message);
    return -1;
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
            return auth_failed(sv, &b, auth_no_secret);
        proto_build_password(&b, secret);
        break;
    case PROTO_AUTH_MD5: {
        char resp[PROTO_MD5_LEN];

        if (!secret || (!plain && strncmp(secret, "md5", 3) != 0) || n < 4)
            return auth_failed(sv, &b, auth_no_secret);
        proto_md5_response(pool->user, secret, data, resp);
        proto_build_password(&b, resp);
        break;
    }
    case PROTO_AUTH_SASL:
        if (!memmem(data, n, "SCRAM-SHA-256\0", 14))
            return auth_failed(sv, &b, auth_unsupported);
        if (!plain && !pool->have_scram_keys)
            return auth_failed(sv, &b, auth_no_secret);
        sv->scram = calloc(1, sizeof(*sv->scram));
        if (!sv->scram || proto_scram_nonce(nonce, 24) < 0 ||
            proto_scram_client_first(sv->scram, nonce, out, sizeof(out), &outlen) < 0)
            return auth_failed(sv, &b, auth_unsupported);
        if (plain)
            sv->scram->keycache = &pool->scram_keycache;
        proto_build_sasl_initial(&b, "SCRAM-SHA-256", out, outlen);
        break;
    case PROTO_AUTH_SASL_CONTINUE: {
        uint64_t derived = pool->scram_keycache.derived;

        if (!sv->scram ||
            proto_scram_client_final(sv->scram, (const char *)data, n, plain ? secret : NULL,
                                     pool->scram_client_key, pool->scram_server_key,
                                     out, sizeof(out), &outlen, &err) < 0)
            return auth_failed(sv, &b, err ? err : auth_scram_failed);
        sv->conn.px->scram_derivations += pool->scram_keycache.derived - derived;
        proto_build_sasl_response(&b, out, outlen);
        break;
    }
    case PROTO_AUTH_SASL_FINAL:
        if (!sv->scram || proto_scram_client_verify(sv->scram, (const char *)data, n, &err) < 0)
            return auth_failed(sv, &b, err ? err : auth_scram_failed);
        free(sv->scram);
        sv->scram = NULL;
        proto_buf_free(&b);
        return 0;
    default:
        return auth_failed(sv, &b, auth_unsupported);
    }
    if (send_buf(sv, &b) < 0) {
        login_failed(sv, NULL, "pglane: cannot send authentication response to server");
        return -1;
    }
    return 0;
}

void track_param(struct px_server *sv, const struct proto_frame *f, int from_login)
{
    struct px_pool *pool = sv->pool;
    const char *name, *value;
    int i;

    if (proto_parse_param_status(f->body, f->len, &name, &value) < 0)
        return;
    i = px_param_find(name);
    if (sv->client && !from_login && (!sv->swallow_z || sv->restoring) &&
        strcmp(name, "standard_conforming_strings") == 0)
        sv->client->scs_off = strcmp(value, "off") == 0;   /* the client's own change */
    if (i >= 0) {
        px_params_set(&sv->have, i, value);
        /* While pglane's own queries run (parameter sync, session check and reset), the values are
         * pglane's, not the client's. */
        if (sv->client && !from_login && (!sv->swallow_z || sv->restoring))
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
int next_frame(struct px_server *sv, struct proto_frame *f)
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

static const char *nice_name(int nice, char *buf, size_t n)
{
    if (nice == CONF_NICE_IDLE)
        return "as SCHED_IDLE";
    snprintf(buf, n, "at nice %d", nice);
    return buf;
}

/* backend_nice: renice the new backend; the first success and the first failure of a lane are logged
 * at info and warning, the rest at debug (/metrics counts them all). */
static void renice_backend(struct px_server *sv)
{
    struct px_lane *lane = sv->pool->lane;
    int nice = lane->conf->backend_nice, fd, first;
    char why[160] = "", name[32];

    if (nice == 0)
        return;
    if (uv_fileno(&sv->conn.h.handle, &fd) < 0)
        snprintf(why, sizeof why, "no socket");
    else if (px_backend_nice(fd, sv->backend_pid, nice, why, sizeof why) == 0) {
        first = lane->niced++ == 0;
        SLOG(sv, first ? CONF_LOG_INFO : CONF_LOG_DEBUG, "backend %u runs %s%s", sv->backend_pid,
             nice_name(nice, name, sizeof name), first ? " (backend_nice; further ones are logged at debug)" : "");
        return;
    }
    first = lane->nice_failed++ == 0;
    SLOG(sv, first ? CONF_LOG_WARNING : CONF_LOG_DEBUG, "backend_nice not applied to backend %u: %s%s",
         sv->backend_pid, why, first ? " (further failures are logged at debug)" : "");
}

void login_read(struct px_server *sv)
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
            if (!sv->pool->params_ready) {
                sv->pool->params_ready = 1;
                px_gslot_params_publish(sv->pool);
            }
            sv->pool->unreachable_since_ms = 0;
            sv->tx_status = 'I';
            SLOG(sv, CONF_LOG_DEBUG, "logged in, backend pid %u", sv->backend_pid);
            px_workers_backend_set(sv->conn.px, sv->pool->ep->server->name, sv->backend_pid,
                                   sv->pool->lane->conf->name);
            renice_backend(sv);
            sv->fresh = 1;
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

/*
 * A closed server connection gives back what it counts in (its pool's share of the lane's size, the
 * connection caps, with several workers the global slot) only once its backend has ended: PostgreSQL
 * lists a backend in pg_stat_activity until the process exits, a moment after its socket was closed,
 * so a reconnect at once in the room made would show one backend too many under a size or a cap.
 * pglane shuts its side of the socket down and waits for PostgreSQL to close it, which a backend does
 * as it exits; at most LINGER_MS (then the maintenance tick closes it and the counts are given back
 * anyway: a backend busy with a query notices its client's end only when it next talks to it, which
 * is why a request left running by its client is cancelled first: px_cancel_orphan). A
 * connection whose server already closed, a TLS one, one handed over to another worker, and pglane's
 * own exit do not wait.
 */
#define LINGER_MS 1000

/* Takes over what sv counts in before it closes: 1 if the counts wait for its backend's end. */
static int linger_begin(struct px_server *sv)
{
    struct px_pool *pool = sv->pool;

    if (sv->moved || sv->conn.tls || sv->conn.eof || sv->conn.closing || sv->conn.px->exiting ||
        sv->state == SV_CONNECTING || sv->state == SV_TLS)
        return 0;
    sv->linger_g = pool->g;
    for (int k = 0; k < PX_CAP_KINDS; k++)
        if ((sv->linger_caps[k] = pool->cap[k])) {
            pool->cap[k]->refs++;
            pool->cap[k]->nlinger++;
        }
    pool->nlinger++;               /* the pool is kept (px_pool_maintain) while it counts */
    sv->lingering = 1;             /* px_server_set_state leaves the counts to linger_end */
    return 1;
}

/* The counts sv kept (if any) are given back: room for this worker's queues and the others'. From the
 * handle's close (waited: nothing of the caller's is in the way) or from px_server_close (the wait did
 * not start: only what a close did before, as the caller may be walking a pool's lists). */
static void linger_end(struct px_server *sv, int waited)
{
    struct proxy *px = sv->conn.px;
    struct px_pool *pool = sv->pool;

    if (!sv->lingering)
        return;
    sv->lingering = 0;
    if (sv->linger_until_ms) {
        px_list_remove(&sv->link);
        sv->linger_until_ms = 0;
    }
    if (sv->linger_g)
        px_gslot_release(px, sv->linger_g);
    for (int k = 0; k < PX_CAP_KINDS; k++) {
        struct px_cap *c = sv->linger_caps[k];

        if (!c)
            continue;
        c->n--;
        c->nlinger--;
        if (c->g)
            px_gslot_release(px, c->g);
        px_cap_unref(px, c);
    }
    if (px->exiting)
        return;                    /* pools may be gone: nothing more to serve */
    pool->nlinger--;
    /* Room under a cap goes to the pool that waited longest for it, room under the lane's size to
     * this pool's queue; other workers were woken by the release. */
    px_caps_released(pool);
    if (!waited)
        return;
    if (pool->nwaiting)
        px_pool_refill(pool);
    px_workers_room(px);
}

void px_server_linger_sweep(struct proxy *px, uint64_t now_ms, int all)
{
    for (struct px_list *it = px->lingering.next, *next; it != &px->lingering; it = next) {
        struct px_server *sv = px_container_of(it, struct px_server, link);

        next = it->next;
        if (all || now_ms >= sv->linger_until_ms)
            px_conn_close(&sv->conn);   /* linger_end runs at the handle's close */
    }
}

void px_server_close(struct px_server *sv, const char *reason)
{
    struct proxy *px = sv->conn.px;
    struct px_client *cl = sv->client;
    int linger;

    if (sv->state == SV_CLOSED)
        return;
    SLOG(sv, CONF_LOG_DEBUG, "closing: %s", reason);
    if (!sv->moved)
        px_workers_backend_drop(px, sv->pool->ep->server->name, sv->backend_pid);
    linger = linger_begin(sv);
    px_server_set_state(sv, SV_CLOSED);   /* off the pool's lists */
    px_cancel_server_closed(sv);
    if (cl) {
        cl->server = NULL;
        sv->client = NULL;
    }
    if (linger && px_conn_linger(&sv->conn) == 0) {
        sv->linger_until_ms = px_now_ms(px) + LINGER_MS;
        px_list_append(&px->lingering, &sv->link);
        return;                    /* linger_end makes the room */
    }
    px_conn_close(&sv->conn);
    if (linger)
        linger_end(sv, 0);         /* nothing to wait for after all */
    else
        px_caps_released(sv->pool);   /* room under a global cap: a waiting pool's turn */
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
