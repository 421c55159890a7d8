/*
 * pglane's own queries on a server connection, whose replies the client never sees: the sync of the
 * client's parameters and the replay of its session settings when it is attached, the check of its
 * startup values at login, and the session check after a transaction that may have changed session
 * state (the command tags that call for it, see tag_suspect).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/proxy.h"
#include "proxy/server_internal.h"
#include "proxy/state.h"

/* A text value of the client's (px_put_text). */
static void put_literal(struct proto_buf *q, const char *v, const char *encoding)
{
    px_put_text(q, v, strlen(v), encoding);
}

/* One "pg_catalog.set_config('name',value,local)" item of a SELECT list; value is in encoding. */
static void put_set_config(struct proto_buf *q, int *selects, const char *name, const char *value, int local,
                           const char *encoding)
{
    proto_put_bytes(q, *selects ? "," : (q->len ? ";SELECT " : "SELECT "), *selects ? 1 : (q->len ? 8 : 7));
    (*selects)++;
    proto_put_bytes(q, "pg_catalog.set_config(", 22);
    put_literal(q, name, encoding);
    proto_put_bytes(q, ",", 1);
    put_literal(q, value, encoding);
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
    const char *encoding = px_client_encoding(cl);
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
        put_set_config(q, &selects, px_param_name(i), want, 0, encoding);
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
        put_set_config(q, &selects, cl->gucs.v[i].name, cl->gucs.v[i].value, 0, encoding);
        if (px_kvlist_set(&sv->gucs, cl->gucs.v[i].name, cl->gucs.v[i].value) < 0)
            q->failed = 1;
    }
}

/*
 * Session pooling: after a transaction that may have reset settings (RESET, DISCARD ALL, SET ... TO
 * DEFAULT, code pglane cannot see into), the client's startup settings the session no longer holds
 * go back to their startup values, which PostgreSQL makes the session's defaults. One query sets
 * those whose source is not 'session' any more; the ParameterStatus it brings reaches the client.
 * Returns 1 if sent (the client's messages wait for its answer), 0 if there was nothing to restore.
 */
int px_server_restore_startup(struct px_server *sv, struct px_client *cl)
{
    static const char head[] = "SELECT pg_catalog.set_config(s.n,s.v,false) FROM (VALUES ";
    static const char tail[] = ") s(n,v) WHERE NOT EXISTS(SELECT FROM pg_catalog.pg_settings p WHERE "
                               "pg_catalog.lower(p.name)=pg_catalog.lower(s.n) AND p.source='session')";
    struct proto_buf q;
    int n = 0;

    proto_buf_init(&q);
    proto_put_bytes(&q, head, sizeof(head) - 1);
    for (int i = 0; i < PX_P_COUNT + cl->gucs.n; i++) {
        const char *name = i < PX_P_COUNT ? px_param_name(i) : cl->gucs.v[i - PX_P_COUNT].name;
        const char *value = i < PX_P_COUNT ? cl->base.v[i] : cl->gucs.v[i - PX_P_COUNT].value;

        if (!value)
            continue;
        proto_put_bytes(&q, n > 0 ? ",(" : "(", n > 0 ? 2 : 1);
        n++;
        put_literal(&q, name, px_client_encoding(cl));
        proto_put_bytes(&q, ",", 1);
        put_literal(&q, value, px_client_encoding(cl));
        proto_put_bytes(&q, ")", 1);
    }
    proto_put_bytes(&q, tail, sizeof(tail) - 1);
    if (n == 0) {
        proto_buf_free(&q);
        return 0;
    }
    if (q.failed || send_own_query(sv, (const char *)q.data, q.len) < 0) {
        proto_buf_free(&q);
        px_server_close(sv, "cannot send the restore of startup settings");
        px_client_fail(cl, "08006", "pglane: lost the server connection");
        return 1;
    }
    proto_buf_free(&q);
    sv->restoring = 1;
    px_conn_read_stop(&cl->conn);
    return 1;
}

/* The server's unnamed statement is dropped by a simple Query of pglane's: no client's any more, and
 * its client's next Bind of the unnamed statement goes through the mapping, which replays it. */
static void unnamed_gone(struct px_server *sv)
{
    sv->unnamed_owner = 0;
    if (sv->client)
        sv->client->unnamed_parsed = 0;
}

/* Sends one of pglane's own simple queries; its replies are swallowed up to its ReadyForQuery. A
 * simple Query drops the server's unnamed statement: whatever client's it was, it is no longer. */
int send_own_query(struct px_server *sv, const char *sql, size_t len)
{
    struct proto_buf b;
    size_t start;

    unnamed_gone(sv);
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
    /* Sequence state (currval, lastval) another client may have left, or an older one of this
     * client's (it has called nextval() on another connection since): discarded, so that such a
     * read fails with 55000 rather than return a value that is not the client's latest. */
    if (sv->seq_client && (sv->seq_client != cl->conn.id || cl->seq_server != sv->conn.id)) {
        proto_put_bytes(&q, "DISCARD SEQUENCES", 17);   /* what follows starts with ';' */
        sv->seq_client = 0;
    }
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
    unnamed_gone(sv);                  /* simple Queries: the server's unnamed statement is gone */
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
 * A startup application_name with bytes outside printable ASCII, as PostgreSQL keeps it: at login it
 * takes the bytes as they are, whatever the encoding, and writes each such byte as '?' (up to 15) or
 * as \xNN (16 on). An SQL text must be valid in the server's encoding, so the check sends the cleaned
 * name, whose answer is then the client's. NULL when there is nothing to clean (or no memory).
 */
static char *clean_app_name(const struct px_pool *pool, const char *name, const char *value)
{
    size_t n = 0, o = 0;
    char *out;
    int major;

    if (strcasecmp(name, "application_name") != 0)
        return NULL;
    for (const char *p = value; *p; p++)
        n += (*p < 32 || *p > 126) ? 1 : 0;
    if (n == 0)
        return NULL;
    if ((major = px_pool_server_major(pool)) == 0)
        major = 15;
    if (!(out = malloc(strlen(value) + 3 * n + 1)))
        return NULL;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p >= 32 && *p <= 126)
            out[o++] = (char)*p;
        else if (major >= 16)
            o += (size_t)sprintf(out + o, "\\x%02x", *p);
        else
            out[o++] = '?';
    }
    out[o] = '\0';
    return out;
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
    for (int i = 0; i < cl->nstartup; i++) {
        char *clean = clean_app_name(sv->pool, cl->startup[i].name, cl->startup[i].value);

        put_set_config(&q, &selects, cl->startup[i].name, clean ? clean : cl->startup[i].value, 1,
                       NULL);   /* raw bytes, as PostgreSQL takes them at login */
        free(clean);
    }
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
    if (!px_unnamed_owned(sv, cl))
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
void replay_done(struct px_server *sv)
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

/* After a transaction that may have changed session state: reads what the session holds and resets
 * it, in one query, while the client's next messages wait (proxy/session.c). */
void start_check(struct px_server *sv, struct px_client *cl)
{
    struct proto_buf q;

    proto_buf_init(&q);
    px_session_check_sql(cl, &q);
    sv->dirty = 0;
    /* listen_seen stays until the check has answered: a notification that arrives meanwhile (a
     * LISTEN just committed, another session's NOTIFY) is the client's, whose pin the check is about
     * to find. */
    /* The check ends in RESET ALL: the client's startup settings are gone from the server too, and
     * go back before its next transaction (a RESET of its own had already undone them). */
    px_kvlist_clear(&sv->gucs);
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
void check_done(struct px_server *sv)
{
    struct px_client *cl = sv->client;
    const struct px_lane *lane = sv->pool->lane;

    sv->checking = 0;
    sv->listen_seen = 0;                /* from now on the client's pins say whether it listens */
    if (sv->check_failed || (!cl && sv->sticky)) {
        /* Neither read nor reset: this connection's session is unknown, so it goes; the client keeps
         * its record, and loses its connection only if state of its was pinned there. Or the client
         * left meanwhile with state on the connection that no reset undoes (a seed, a LOAD). */
        struct px_pool *pool = sv->pool;
        char why[128];

        px_session_check_abandon(sv);
        px_server_close(sv, sv->check_failed ? "the session check failed"
                                             : px_sticky_reason(sv->sticky, why, sizeof(why)));
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
    if (px_session_custom_overflow(cl)) {
        /* Its custom settings beyond the ones pglane follows were reset by the check: said, not lost
         * silently. */
        char msg[192];

        snprintf(msg, sizeof(msg), "pglane: a session in transaction pooling may set at most %d custom settings "
                 "(names with a dot); this one set more, and those beyond were not kept", PX_MAX_CUSTOM);
        px_server_close(sv, "client set more custom settings than pglane follows");
        px_client_fail(cl, "54000", msg);
        return;
    }
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
        else
            px_client_pump(cl);         /* a Terminate that came with the transaction closes it now */
        return;
    }
    if (sv->pool->lane->neps > 1 && px_replica_ask_lsn(sv, cl))
        return;                         /* read_your_writes: px_replica_lsn_done releases it */
    cl->server = NULL;
    sv->client = NULL;
    px_client_released(cl);
    if (sv->state != SV_CLOSED)
        px_pool_server_ready(sv);
}

/* Keeps a copy of the ErrorResponse that made pglane's own query fail (the first one). */
void keep_own_error(struct px_server *sv, const struct proto_frame *f)
{
    if (sv->own_err || !(sv->own_err = malloc(PROTO_HEADER_LEN + f->len)))
        return;
    memcpy(sv->own_err, f->body - PROTO_HEADER_LEN, PROTO_HEADER_LEN + f->len);
    sv->own_err_len = PROTO_HEADER_LEN + f->len;
}

/* A message of the check of the client's startup values (sv->validating == 1: the next swallowed
 * ReadyForQuery is the check's). */
void validation_reply(struct px_server *sv, const struct proto_frame *f)
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

/* Command tags of statements that may have called nextval() where pglane cannot see it: a column
 * default or a trigger of a write. (An explicit call names nextval or setval: client_look_at_statement
 * sees it.) */
int tag_may_use_sequences(const char *tag)
{
    switch (tag[0]) {
    case 'I':
        return strncmp(tag, "INSERT ", 7) == 0;
    case 'U':
        return strncmp(tag, "UPDATE ", 7) == 0;
    case 'D':
        return strncmp(tag, "DELETE ", 7) == 0;
    case 'M':
        return strncmp(tag, "MERGE ", 6) == 0;
    case 'C':
        return strncmp(tag, "COPY ", 5) == 0;
    default:
        return 0;
    }
}

/*
 * Command tags after which session state may have changed, so that the session is checked before the
 * server connection serves anyone else: settings, role and session user (SET, RESET, DISCARD), code
 * pglane cannot see into (DO, CALL), and what may start or end a pin (LISTEN, UNLISTEN, PREPARE,
 * DEALLOCATE, DECLARE CURSOR, CLOSE CURSOR, CREATE TABLE/VIEW/SEQUENCE, DROP, LOAD).
 */
int tag_suspect(const char *tag)
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
