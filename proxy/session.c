/*
 * A client's session state in transaction pooling. After a transaction that may have changed
 * session state, the server connection runs one query of pglane's own (px_session_check_sql): it
 * reads the settings the session changed, the role, the session user, the custom settings the
 * client is known to have set and whether anything that cannot be moved (temporary tables, session
 * advisory locks, WITH HOLD cursors, LISTEN, SQL-level prepared statements, a temporary replication
 * slot) is there, then resets the session (RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL).
 * State that no reset undoes and no query shows (a seed, a LOAD, a replication origin) is known
 * from the client's text or the server's tags instead (px_client.sticky). The answer becomes the client's
 * record, replayed in front of its next transaction on any server connection (px_session_replay_sql),
 * and its pins. Owner of struct px_session and struct px_check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/proxy.h"
#include "routing/route.h"

#define NAME_MAX_LEN 63      /* PostgreSQL's NAMEDATALEN - 1 */

struct px_session {
    char *replay;            /* SQL that re-creates the client's settings and role, or NULL */
    uint8_t replay_role;     /* the replay sets a role or a session user */
    char **custom;           /* the custom setting names it set (PX_MAX_CUSTOM at most) */
    int ncustom, capcustom;
    uint8_t custom_overflow; /* it set more: the ones beyond are not followed */
};

struct px_check {
    struct proto_buf gucs;   /* "pg_catalog.set_config(...)" calls, comma-separated */
    char *role, *auth;       /* SET ROLE / SET SESSION AUTHORIZATION to replay, or NULL */
    struct px_params tracked; /* values of tracked parameters the session set */
    uint32_t reset;          /* reported parameters of the client's startup packet the session reset */
    uint16_t pins;
};

static const char *const pin_names[PX_PIN_REASONS] = {
    "temp_table", "advisory_lock", "hold_cursor", "listen", "prepared_statement", "seed", "load", "replication",
    "dblink",
};

const char *px_pin_name(int reason)
{
    return reason >= 0 && reason < PX_PIN_REASONS ? pin_names[reason] : "?";
}

void px_pin_names(uint16_t pins, char *buf, size_t n)
{
    size_t o = 0;

    buf[0] = '\0';
    for (int i = 0; i < PX_PIN_REASONS; i++)
        if (pins & (1u << i))
            o += (size_t)snprintf(buf + o, o < n ? n - o : 0, "%s%s", o ? "," : "", pin_names[i]);
}

const char *px_sticky_reason(uint16_t sticky, char *buf, size_t n)
{
    char names[96];

    px_pin_names(sticky, names, sizeof(names));
    snprintf(buf, n, "its client left state no reset undoes (%s)", names);
    return buf;
}

static struct px_session *session_of(struct px_client *cl)
{
    if (!cl->sess)
        cl->sess = calloc(1, sizeof(*cl->sess));
    return cl->sess;
}

void px_session_free(struct px_client *cl)
{
    struct px_session *s = cl->sess;

    if (!s)
        return;
    free(s->replay);
    for (int i = 0; i < s->ncustom; i++)
        free(s->custom[i]);
    free(s->custom);
    free(s);
    cl->sess = NULL;
}

/* ---- custom setting names, learned from the client's text ---- */

static void remember(struct px_client *cl, const char *name, size_t n)
{
    struct px_session *s;
    char *copy;

    /* setseed(), SET [LOCAL] seed, set_config('seed', ..): the backend's random() now follows a sequence that
     * no query can read back or move to another connection. The client keeps this server connection
     * (pin "seed", for good), and the connection is closed when the client leaves, so that no other
     * client draws from that sequence. pg_replication_origin_session_setup() likewise (pin
     * "replication"): the origin stays the backend's, and no other client may replay under it. A
     * dblink_connect() too (pin "dblink"): the connection, logged in with the client's credentials,
     * would serve the next client of the backend. */
    if (n == 4 && strncasecmp(name, "seed", 4) == 0) {
        cl->sticky |= 1u << PX_PIN_SEED;
        return;
    }
    if (n == sizeof(ROUTE_NAME_REPLICATION) - 1 && memcmp(name, ROUTE_NAME_REPLICATION, n) == 0) {
        cl->sticky |= 1u << PX_PIN_REPLICATION;
        return;
    }
    if (n == sizeof(ROUTE_NAME_DBLINK) - 1 && memcmp(name, ROUTE_NAME_DBLINK, n) == 0) {
        cl->sticky |= 1u << PX_PIN_DBLINK;
        return;
    }
    if (n == 0 || n > NAME_MAX_LEN || !memchr(name, '.', n))
        return;
    for (size_t i = 0; i < n; i++)
        if (!(name[i] == '_' || name[i] == '.' || name[i] == '$' || (name[i] >= '0' && name[i] <= '9') ||
              (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z')))
            return;
    if (!(s = session_of(cl)))
        return;
    for (int i = 0; i < s->ncustom; i++)
        if (strlen(s->custom[i]) == n && strncasecmp(s->custom[i], name, n) == 0)
            return;
    if (s->ncustom == PX_MAX_CUSTOM) {
        s->custom_overflow = 1;
        return;
    }
    if (s->ncustom == s->capcustom) {
        int cap = s->capcustom ? s->capcustom * 2 : 8;
        char **grown = realloc(s->custom, sizeof(*grown) * (size_t)cap);

        if (!grown) {
            s->custom_overflow = 1;
            return;
        }
        s->custom = grown;
        s->capcustom = cap;
    }
    if (!(copy = strndup(name, n))) {
        s->custom_overflow = 1;
        return;
    }
    for (char *p = copy; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    s->custom[s->ncustom++] = copy;
}

static void remember_cb(void *cl, const char *name, size_t n)
{
    remember(cl, name, n);
}

/* The words that pin for good, wherever they stand (route_pin_words): for a client whose strings
 * pglane cannot delimit. */
void px_session_learn_raw(struct px_client *cl, const char *sql, size_t len)
{
    route_pin_words(sql, len, remember_cb, cl);
}

/*
 * Remembers the custom settings (names with a dot) that sql sets: "SET [SESSION] a.b ...", and
 * "set_config('a.b', ...)". PostgreSQL lists custom settings nowhere, so the check can only read
 * those whose names pglane saw.
 */
void px_session_learn(struct px_client *cl, const char *sql, size_t len)
{
    route_setting_names(sql, len, remember_cb, cl);
}

/* ---- the check ---- */

static void put_str(struct proto_buf *q, const char *s)
{
    proto_put_bytes(q, s, strlen(s));
}

enum { ROW_SETTING = 0, ROW_ROLE = 1, ROW_SESSION_USER = 2, ROW_CUSTOM = 3, ROW_PIN = 4, ROW_RESET = 5 };
_Static_assert(PX_P_COUNT <= 10 && PX_PIN_REASONS <= 10, "the check's rows name them with one digit");
_Static_assert(ROUTE_PIN_SEED == 1u << PX_PIN_SEED && ROUTE_PIN_LOAD == 1u << PX_PIN_LOAD &&
               ROUTE_PIN_REPLICATION == 1u << PX_PIN_REPLICATION && ROUTE_PIN_DBLINK == 1u << PX_PIN_DBLINK &&
               PX_PIN_REASONS == PX_PIN_DBLINK + 1,
               "pin bits: routing's and the proxy's are the same, and every reason fits px_client.pins");

void px_session_check_sql(const struct px_client *cl, struct proto_buf *q)
{
    static const char *const pin_probe[PX_PIN_REASONS] = {
        /* temporary objects: relations, and the functions, types and operators created in pg_temp
         * (a backend without a temporary schema reads no more than pg_namespace) */
        "SELECT FROM pg_catalog.pg_namespace n WHERE n.oid=pg_catalog.pg_my_temp_schema() AND ("
        "EXISTS(SELECT FROM pg_catalog.pg_class WHERE relnamespace=n.oid)"
        " OR EXISTS(SELECT FROM pg_catalog.pg_proc WHERE pronamespace=n.oid)"
        " OR EXISTS(SELECT FROM pg_catalog.pg_type WHERE typnamespace=n.oid)"
        " OR EXISTS(SELECT FROM pg_catalog.pg_operator WHERE oprnamespace=n.oid))",
        "SELECT FROM pg_catalog.pg_locks WHERE locktype='advisory' AND pid=pg_catalog.pg_backend_pid()",
        "SELECT FROM pg_catalog.pg_cursors WHERE is_holdable",
        "SELECT FROM pg_catalog.pg_listening_channels()",
        "SELECT FROM pg_catalog.pg_prepared_statements WHERE from_sql",
        NULL,                      /* seed: nothing shows it; px_client.sticky says */
        NULL,                      /* load: the LOAD tag (px_server.sticky) says */
        /* a temporary replication slot (a replication origin session shows nowhere: the text says) */
        "SELECT FROM pg_catalog.pg_replication_slots WHERE temporary AND active_pid=pg_catalog.pg_backend_pid()",
        NULL,                      /* dblink: the text says (the extension may not be there to ask) */
    };
    char row[64];

    put_str(q, "SELECT 0,name,setting FROM pg_catalog.pg_settings WHERE source='session'"
               " UNION ALL SELECT 1,'',pg_catalog.current_setting('role')"
               " UNION ALL SELECT 2,'',session_user::pg_catalog.text");
    for (int i = 0; cl && cl->sess && i < cl->sess->ncustom; i++) {
        put_str(q, " UNION ALL SELECT 3,");
        px_put_text(q, cl->sess->custom[i], strlen(cl->sess->custom[i]), NULL);
        put_str(q, ",pg_catalog.current_setting(");
        px_put_text(q, cl->sess->custom[i], strlen(cl->sess->custom[i]), NULL);
        put_str(q, ",true)");
    }
    /* The reported parameters the startup packet set that the session no longer holds (a RESET, RESET
     * ALL, DISCARD ALL or SET ... TO DEFAULT of the client's): they go back to the startup value, as
     * in PostgreSQL, where that value is the session's default. */
    for (int i = 0; cl && i < PX_P_COUNT; i++)
        if (cl->base.v[i] && px_param_reported(i)) {
            snprintf(row, sizeof(row), " UNION ALL SELECT 5,'%d',NULL WHERE NOT EXISTS(", i);
            put_str(q, row);
            put_str(q, "SELECT FROM pg_catalog.pg_settings WHERE source='session' AND name=");
            px_put_text(q, px_param_name(i), strlen(px_param_name(i)), NULL);
            put_str(q, ")");
        }
    for (int i = 0; i < PX_PIN_REASONS; i++) {
        if (!pin_probe[i])
            continue;
        snprintf(row, sizeof(row), " UNION ALL SELECT 4,'%d',NULL WHERE EXISTS(", i);
        put_str(q, row);
        put_str(q, pin_probe[i]);
        put_str(q, ")");
    }
    put_str(q, ";RESET SESSION AUTHORIZATION;RESET ROLE;RESET ALL");
}

int px_session_check_begin(struct px_server *sv)
{
    sv->check = calloc(1, sizeof(*sv->check));
    if (!sv->check)
        return -1;
    sv->pool->lane->stats.session_checks++;
    proto_buf_init(&sv->check->gucs);
    return 0;
}

static void check_free(struct px_check *c)
{
    if (!c)
        return;
    proto_buf_free(&c->gucs);
    free(c->role);
    free(c->auth);
    px_params_clear(&c->tracked);
    free(c);
}

void px_session_check_abandon(struct px_server *sv)
{
    check_free(sv->check);
    sv->check = NULL;
}

uint16_t px_session_check_pins(const struct px_server *sv)
{
    return sv->check ? sv->check->pins : 0;
}

/* Column `want` of a DataRow body: 1 with its value and length (value NULL for SQL NULL), 0 if malformed. */
static int column(const uint8_t *body, uint32_t len, int want, const char **v, uint32_t *n)
{
    uint32_t o = 2;

    if (len < 2 || (int)((body[0] << 8) | body[1]) <= want)
        return 0;
    for (int i = 0;; i++) {
        int32_t l;

        if (o + 4 > len)
            return 0;
        l = (int32_t)((uint32_t)body[o] << 24 | (uint32_t)body[o + 1] << 16 | (uint32_t)body[o + 2] << 8 | body[o + 3]);
        o += 4;
        if (l >= 0 && o + (uint32_t)l > len)
            return 0;
        if (i == want) {
            *v = l < 0 ? NULL : (const char *)body + o;
            *n = l < 0 ? 0 : (uint32_t)l;
            return 1;
        }
        if (l > 0)
            o += (uint32_t)l;
    }
}

/* One DataRow of the check's answer. */
void px_session_check_row(struct px_server *sv, const uint8_t *body, uint32_t len)
{
    struct px_check *c = sv->check;
    const char *kind, *name, *value;
    uint32_t nk, nn, nv;
    char key[NAME_MAX_LEN + 1];
    int p;

    if (!c || !column(body, len, 0, &kind, &nk) || !kind || nk != 1 || !column(body, len, 1, &name, &nn) ||
        !column(body, len, 2, &value, &nv))
        return;
    switch (kind[0] - '0') {
    case ROW_SETTING:
    case ROW_CUSTOM:
        if (!name || !value || nn > NAME_MAX_LEN || (kind[0] - '0' == ROW_CUSTOM && nv == 0))
            return;
        memcpy(key, name, nn);
        key[nn] = '\0';
        if ((p = px_param_find(key)) >= 0) {
            char *v = strndup(value, nv);

            if (v)
                px_params_set(&c->tracked, p, v);
            free(v);
            return;
        }
        put_str(&c->gucs, c->gucs.len ? "," : "SELECT ");
        put_str(&c->gucs, "pg_catalog.set_config(");
        px_put_text(&c->gucs, name, nn, NULL);   /* a setting's name: ASCII */
        put_str(&c->gucs, ",");
        px_put_text(&c->gucs, value, nv, sv->client ? px_client_encoding(sv->client) : NULL);
        put_str(&c->gucs, ",false)");
        return;
    case ROW_ROLE:
        if (value && !(nv == 4 && memcmp(value, "none", 4) == 0))
            c->role = strndup(value, nv);
        return;
    case ROW_SESSION_USER:
        if (value && (strlen(sv->pool->user) != nv || memcmp(value, sv->pool->user, nv) != 0))
            c->auth = strndup(value, nv);
        return;
    case ROW_PIN:
        if (name && nn == 1 && name[0] >= '0' && name[0] < '0' + PX_PIN_REASONS)
            c->pins |= (uint16_t)(1u << (name[0] - '0'));
        return;
    case ROW_RESET:
        if (name && nn == 1 && name[0] >= '0' && name[0] < '0' + PX_P_COUNT)
            c->reset |= 1u << (name[0] - '0');
        return;
    default:
        return;
    }
}

/*
 * The check has answered: the client's record becomes what the session held, its pins what is left
 * on the server. Settings first, then the session user and the role, in the order that lets the
 * replay do what the client could do.
 */
void px_session_check_end(struct px_server *sv, struct px_client *cl)
{
    struct px_check *c = sv->check;
    struct px_lane *lane = sv->pool->lane;
    struct px_session *s;
    struct proto_buf r;

    sv->check = NULL;
    if (!c)
        return;
    for (int i = 0; i < PX_P_COUNT; i++)
        if (!px_param_reported(i))   /* reported ones follow the client through ParameterStatus */
            px_params_set(&cl->want, i, c->tracked.v[i] ? c->tracked.v[i] : cl->base.v[i]);
    for (int i = 0; i < PX_P_COUNT; i++)
        if ((c->reset & (1u << i)) && cl->base.v[i] && (!cl->want.v[i] || strcmp(cl->want.v[i], cl->base.v[i]) != 0)) {
            /* Back to its startup value, which the client is told, as PostgreSQL tells it after the
             * RESET; the next transaction's parameter sync sets it on whichever server serves it. */
            struct proto_buf ps;

            px_params_set(&cl->want, i, cl->base.v[i]);
            proto_buf_init(&ps);
            proto_build_param_status(&ps, px_param_name(i), cl->base.v[i]);
            if (!ps.failed)
                (void)px_conn_send_copy(&cl->conn, ps.data, ps.len);
            proto_buf_free(&ps);
        }
    /* A LOAD the server ran, a temporary slot the probe saw: for good, as a seed. */
    cl->sticky |= (uint16_t)(sv->sticky | (c->pins & PX_PIN_STICKY));
    c->pins |= cl->sticky;
    for (int i = 0; i < PX_PIN_REASONS; i++)
        if ((c->pins & (1u << i)) && !(cl->pins & (1u << i)))
            lane->stats.pins[i]++;
    cl->pins = c->pins;
    proto_buf_init(&r);
    if (c->gucs.len)
        proto_put_bytes(&r, c->gucs.data, c->gucs.len);
    /* set_config of session_authorization and role: SET SESSION AUTHORIZATION and SET ROLE, with the
     * same checks, and a name in any encoding (px_put_text) */
    if (c->auth) {
        put_str(&r, r.len ? ";SELECT pg_catalog.set_config('session_authorization'," :
                            "SELECT pg_catalog.set_config('session_authorization',");
        px_put_text(&r, c->auth, strlen(c->auth), px_client_encoding(cl));
        put_str(&r, ",false)");
    }
    if (c->role) {
        put_str(&r, r.len ? ";SELECT pg_catalog.set_config('role'," : "SELECT pg_catalog.set_config('role',");
        px_put_text(&r, c->role, strlen(c->role), px_client_encoding(cl));
        put_str(&r, ",false)");
    }
    s = r.len || cl->sess ? session_of(cl) : NULL;
    if (s) {
        free(s->replay);
        s->replay = NULL;
        s->replay_role = c->auth || c->role;
        if (r.len && !r.failed)
            s->replay = strndup((const char *)r.data, r.len);
    }
    check_free(c);
    proto_buf_free(&r);
}

int px_session_custom_overflow(const struct px_client *cl)
{
    return cl->sess && cl->sess->custom_overflow;
}

const char *px_session_replay_sql(const struct px_client *cl)
{
    return cl->sess ? cl->sess->replay : NULL;
}

int px_session_replay_role(const struct px_client *cl)
{
    return cl->sess && cl->sess->replay && cl->sess->replay_role;
}
