/*
 * The client's startup packet (proxy/client_startup.c): SSL and GSS encryption requests, cancel
 * requests, the StartupMessage (user, database, settings, refused parameters, protocol version), and
 * the check of the startup settings by a server of the pool, whose accepted values the pool keeps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/client_internal.h"
#include "proxy/proxy.h"
#include "proxy/state.h"

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

/* A 1.x or 2.x startup packet: PostgreSQL 15 refuses it in that protocol's own format, which a client
 * of that age can read (the type byte and the text, no length word), and so does pglane. */
static void refuse_old_protocol(struct px_client *cl, const char *message)
{
    char msg[160];
    int n = snprintf(msg, sizeof(msg), "EFATAL:  %s\n", message);

    CLOG(cl, CONF_LOG_INFO, "closing: %.300s (0A000)", message);
    if (n > 0 && (size_t)n < sizeof(msg))
        (void)px_conn_send_copy(&cl->conn, msg, (size_t)n + 1);   /* with its NUL */
    px_client_close(cl, message);
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

void client_startup_clear(struct px_client *cl)
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

/* A startup setting: recorded, and seen by routing by identity before the check. 0, or -1 (refused). */
static int setting_add(struct px_client *cl, const char *name, const char *value)
{
    if (startup_add(cl, name, value) < 0) {
        client_fatal(cl, "53200", "pglane: out of memory");
        return -1;
    }
    if (px_param_find(name) >= 0)
        px_params_set(&cl->want, px_param_find(name), value);
    return 0;
}

/*
 * The settings of the "options" parameter (-c name=value, --name=value), as PostgreSQL applies them:
 * before the other startup parameters, which win over them. They are the client's startup settings
 * like any other (checked by a server, then applied in each transaction); any other switch or word
 * is refused. 0, or -1 (refused).
 */
static int options_add(struct px_client *cl, const char *opts)
{
    struct proto_option *items;
    const char *sqlstate = "08P01";
    char err[256], *work;
    size_t len;
    int n, rc = 0;

    if (!opts || !*opts)
        return 0;
    len = strlen(opts) + 1;
    work = malloc(len);
    items = calloc(len / 2 + 1, sizeof(*items));   /* each setting takes at least "--=" */
    if (!work || !items) {
        free(work);
        free(items);
        client_fatal(cl, "53200", "pglane: out of memory");
        return -1;
    }
    n = proto_split_options(opts, work, len, items, (int)(len / 2 + 1), err, sizeof(err), &sqlstate);
    if (n < 0) {
        client_fatal(cl, sqlstate, err);
        rc = -1;
    }
    for (int i = 0; i < n && rc == 0; i++)
        rc = setting_add(cl, items[i].name, items[i].value);
    free(work);
    free(items);
    return rc;
}

static int copy_startup(struct px_client *cl, const struct proto_startup *st)
{
    const char *user = proto_startup_get(st, "user");
    const char *db = proto_startup_get(st, "database"), *value;

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
    if (options_add(cl, proto_startup_get(st, "options")) < 0)
        return -1;
    if ((value = proto_startup_get(st, "replication")) != NULL) {   /* the last one, as PostgreSQL reads it */
        int b = parse_bool(value);

        if (b < 0 && strcmp(value, "database") != 0) {
            char msg[128];

            snprintf(msg, sizeof(msg), "invalid value for parameter \"replication\": \"%.64s\"", value);
            client_fatal(cl, "22023", msg);
            return -1;
        }
        if (b != 0) {              /* true or database (false: an ordinary connection) */
            client_fatal(cl, "08004", "pglane does not proxy replication connections");
            return -1;
        }
    }
    for (int i = 0; i < st->nparams; i++) {
        const char *name = st->params[i].name;

        value = st->params[i].value;
        if (strcmp(name, "user") == 0 || strcmp(name, "database") == 0 || strncmp(name, "_pq_.", 5) == 0 ||
            strcmp(name, "replication") == 0)
            continue;
        if (strcmp(name, "options") == 0)
            continue;              /* read first, below */
        /* Any other parameter is a setting: checked by a server of the pool at login (as PostgreSQL
         * checks it), then applied for this client in each of its transactions. */
        if (setting_add(cl, name, value) < 0)
            return -1;
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

        if (strcasecmp(c->name, "standard_conforming_strings") == 0)
            cl->scs_off = strcasecmp(v, "off") == 0;
        if (p >= 0) {
            px_params_set(&cl->want, p, v);
            px_params_set(&cl->base, p, v);
        } else if (px_kvlist_set(&cl->gucs, c->name, v) < 0)
            rc = -1;
    }
    client_startup_clear(cl);
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
int client_startup_known(struct px_client *cl, const struct px_pool *pool)
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
    struct proto_buf b;

    proto_buf_init(&b);
    proto_build_error_rewrite(&b, body, len, "SV", (const char *const[]){"FATAL", "FATAL"});
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

/* A StartupMessage (used bytes): refused over max_client_conn, while draining, without TLS under
 * tls_mode = require, or in the admin reserve; else the client's names and settings are kept, it gets
 * its cancel key and authentication starts. */
static void startup_message(struct px_client *cl, const struct proto_startup *st, size_t used)
{
    struct px_buf *b = &cl->conn.in;

    if (cl->over_limit) {
        client_fatal(cl, "53300", "sorry, too many clients already (pglane max_client_conn reached)");
        return;
    }
    if (px_drain_refuses(cl)) {
        client_fatal(cl, "57P01", "pglane is shutting down");
        return;
    }
    if (cl->conn.px->conf->tls_mode == CONF_TLS_REQUIRE && !cl->conn.tls &&
        cl->conn.h.handle.type == UV_TCP) {
        client_fatal(cl, "28000", "pglane: TLS is required (tls_mode = require); connect with sslmode=require");
        return;
    }
    if (copy_startup(cl, st) < 0)
        return;
    if (client_in_admin_reserve(cl)) {
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
    px_peer_stamp_key(cl->conn.px, &cl->cancel_pid);
    px_worker_stamp_key(cl->conn.px, &cl->cancel_pid);
    client_start_auth(cl);
}

void client_startup_read(struct px_client *cl)
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
            if (err == proto_err_startup_length) {      /* PostgreSQL closes without a word */
                CLOG(cl, CONF_LOG_INFO, "closing: %s (08P01; the client is told nothing, as by PostgreSQL)", err);
                px_client_close(cl, err);
                return;
            }
            if (sqlstate && strcmp(sqlstate, "0A000") == 0 && st.version >> 16 < 3) {
                refuse_old_protocol(cl, err);
                return;
            }
            client_fatal(cl, sqlstate ? sqlstate : "08P01", err);
            return;
        }
        switch (st.kind) {
        case PROTO_STARTUP_SSL:
        case PROTO_STARTUP_GSSENC:
            /* A second request of a kind, or any after TLS began, is for PostgreSQL a startup packet
             * of protocol 1234.5679 (or .5680): refused as an unsupported version. */
            if (st.kind == PROTO_STARTUP_SSL ? cl->ssl_done : cl->gss_done) {
                client_fatal(cl, "0A000", proto_unsupported_version(st.version));
                return;
            }
            if (st.kind == PROTO_STARTUP_SSL)
                cl->ssl_done = 1;
            else
                cl->gss_done = 1;
            if (st.kind == PROTO_STARTUP_SSL && cl->conn.px->tls_ctx && !cl->conn.tls && !cl->over_limit &&
                !cl->conn.px->draining) {
                b->pos += (uint32_t)used;
                b->start = b->pos;
                cl->gss_done = 1;
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
            startup_message(cl, &st, used);
            return;
        }
        b->pos += (uint32_t)used;
        b->start = b->pos;
    }
}
