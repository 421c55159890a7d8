/*
 * Lanes with several servers (README, Replicas): `server = replica1, replica2, primary`.
 *
 * Each server of a lane is a struct px_ep; the lane's pools are one per (server, database, user) and
 * the lane's size caps their sum per (database, user) through a connection cap of its own
 * (PX_CAP_LANE, proxy/caps.c), so a lane with one server has exactly the pools and checks it had.
 *
 * Where a transaction runs: on an eligible replica only when pglane knows it cannot write (its first
 * statement is read-only by PostgreSQL's grammar and it is a single autocommit statement, or the
 * transaction was opened READ ONLY, or its route says read_only = trust); everything else runs on the
 * lane's primary. Roles, health and lag come from the health checks (proxy/health.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/client_internal.h"
#include "proxy/proxy.h"
#include "proxy/server_internal.h"
#include "proxy/state.h"
#include "routing/route.h"


/* ---- the lane's servers ---- */

static int ep_resolve(struct px_ep *e)
{
    const struct conf_server *s = e->server;

    if (s->host[0] == '/') {
        e->unix_socket = 1;
        snprintf(e->unix_path, sizeof(e->unix_path), "%s/.s.PGSQL.%d", s->host, s->port);
    } else if (px_resolve(s->host, s->port, &e->addr) < 0) {
        px_error("server \"%s\": cannot resolve host \"%s\"", s->name, s->host);
        return -1;
    }
    return 0;
}

int px_lane_eps_build(struct px_lane *l, const struct conf *c)
{
    const struct conf_lane *lc = l->conf;
    int n = lc->nservers > 0 ? lc->nservers : 1;

    l->eps = calloc((size_t)n, sizeof(*l->eps));
    if (!l->eps)
        return -1;
    l->neps = n;
    l->last_primary = -1;
    px_list_init(&l->rq);
    for (int i = 0; i < n; i++) {
        struct px_ep *e = &l->eps[i];

        e->index = i;
        e->server = lc->nservers > 0 ? &c->servers[lc->servers[i]] : l->server;
        if (i == 0) {              /* the lane's own server: resolved and with TLS already */
            e->unix_socket = l->unix_socket;
            e->addr = l->addr;
            memcpy(e->unix_path, l->unix_path, sizeof(e->unix_path));
            e->tls_ctx = l->tls_ctx;
            continue;
        }
        if (ep_resolve(e) < 0)
            return -1;
        if (e->server->tls_mode != CONF_STLS_DISABLE && !(e->tls_ctx = px_tls_client_ctx(e->server)))
            return -1;
    }
    return 0;
}

void px_lane_eps_point(struct px_lane *l, const struct conf *c)
{
    const struct conf_lane *lc = l->conf;

    for (int i = 0; i < l->neps; i++)
        l->eps[i].server = lc->nservers > i ? &c->servers[lc->servers[i]] : l->server;
}

int px_lane_eps_own(struct px_lane *l)
{
    for (int i = 0; i < l->neps; i++) {
        if (conf_server_copy(&l->eps[i].own_server, l->eps[i].server) < 0) {
            while (i-- > 0)
                conf_server_clear(&l->eps[i].own_server);
            return -1;
        }
    }
    for (int i = 0; i < l->neps; i++)
        l->eps[i].server = &l->eps[i].own_server;
    return 0;
}

void px_lane_eps_free(struct px_lane *l)
{
    for (int i = 0; i < l->neps; i++) {
        if (i > 0)
            px_tls_ctx_free(l->eps[i].tls_ctx);
        conf_server_clear(&l->eps[i].own_server);
    }
    free(l->eps);
    l->eps = NULL;
    l->neps = 0;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int px_lane_eps_same(const struct px_lane *l, const struct conf *c, const struct conf_lane *nl)
{
    int n = nl->nservers > 0 ? nl->nservers : 1;

    if (n != l->neps)
        return 0;
    for (int i = 0; i < n && nl->nservers > 0; i++) {
        const struct conf_server *os = l->eps[i].server, *ns = &c->servers[nl->servers[i]];

        if (strcmp(os->name, ns->name) != 0 || !same_str(os->host, ns->host) || os->port != ns->port ||
            os->tls_mode != ns->tls_mode || !same_str(os->tls_ca_file, ns->tls_ca_file))
            return 0;
    }
    return 1;
}

/* For the health checks (px_health_want): a lane in force lists the server among several. */
int px_replica_wants_server(struct proxy *px, const char *server_name)
{
    for (int i = 0; i < px->nlanes; i++)
        for (int e = 0; px->lanes[i]->neps > 1 && e < px->lanes[i]->neps; e++)
            if (strcmp(px->lanes[i]->eps[e].server->name, server_name) == 0)
                return 1;
    return 0;
}

/* ---- roles, health, eligibility ---- */

static const struct px_health *health(struct proxy *px, const struct px_ep *e)
{
    return px_health_get(px, e->server->name);
}

static int role(struct proxy *px, const struct px_ep *e)
{
    const struct px_health *h = health(px, e);

    return h ? h->role : PX_ROLE_UNKNOWN;
}

static int up(const struct px_health *h)
{
    return !h || h->up;
}

/* Over the lane's limits; a lag the checks could not measure (-1) counts as over a limit that is set. */
static int over_lag(const struct conf_lane *lc, const struct px_health *h)
{
    return (lc->max_replica_lag_ms > 0 && (h->lag_ms < 0 || h->lag_ms > lc->max_replica_lag_ms)) ||
           (lc->max_replica_lag_bytes > 0 && (h->lag_bytes < 0 || h->lag_bytes > lc->max_replica_lag_bytes));
}

int px_ep_state(struct proxy *px, const struct px_lane *lane, const struct px_ep *ep)
{
    const struct px_health *h = health(px, ep);

    if (!up(h))
        return PX_EP_DOWN;
    if (h && h->role == PX_ROLE_REPLICA && over_lag(lane->conf, h))
        return PX_EP_LAGGING;
    return PX_EP_UP;
}

const char *px_ep_state_name(int state)
{
    return state == PX_EP_DOWN ? "down" : state == PX_EP_LAGGING ? "lagging" : "up";
}

const char *px_ep_role_name(struct proxy *px, const struct px_ep *ep)
{
    int r = role(px, ep);

    return r == PX_ROLE_PRIMARY ? "primary" : r == PX_ROLE_REPLICA ? "replica" : "unknown";
}

uint64_t px_lane_conflicts(const struct px_lane *lane, int ep)
{
    return ep >= 0 && ep < lane->neps ? lane->eps[ep].conflicts : 0;
}

/* A replica the lane may send reads to: up, replica, within the lane's lag limits. */
static int read_eligible(struct proxy *px, const struct px_lane *lane, const struct px_ep *ep)
{
    const struct px_health *h = health(px, ep);

    return h && h->up && h->role == PX_ROLE_REPLICA && !over_lag(lane->conf, h);
}

/*
 * The server for the lane's writes: an up primary; else the one last seen as such (down: its pool
 * keeps the clients queued per server_connect_timeout, and px_replica_tick moves them once another
 * server is promoted); else the first server whose role is not known yet. -1: every server of the
 * lane is a replica.
 */
static int primary_of(struct proxy *px, struct px_lane *lane)
{
    int unknown = -1;

    for (int i = 0; i < lane->neps; i++) {
        const struct px_health *h = health(px, &lane->eps[i]);
        int r = h ? h->role : PX_ROLE_UNKNOWN;

        if (r == PX_ROLE_PRIMARY && up(h)) {
            lane->last_primary = i;
            return i;
        }
        if (r == PX_ROLE_PRIMARY && unknown < 0)
            unknown = i;
        else if (r == PX_ROLE_UNKNOWN && unknown < 0 && up(h))
            unknown = i;
    }
    if (lane->last_primary >= 0 && role(px, &lane->eps[lane->last_primary]) != PX_ROLE_REPLICA)
        return lane->last_primary;
    return unknown;
}

/* ---- where a transaction runs ---- */

static int route_trusts(const struct proxy *px, int rule)
{
    return rule >= 0 && rule < px->conf->nroutes && px->conf->routes[rule].read_only_trust;
}

/* The statement can run on a hot standby, by the grammar: a SELECT (or SHOW) without row locks,
 * SELECT INTO, data-modifying CTEs, writing functions (nextval, setval, ...) or calls of functions
 * pglane does not know (their volatility is unknown). */
static int grammar_reads(const struct route_class *c)
{
    return c && c->parsed_by == ROUTE_PARSED_BY_GRAMMAR && c->read_only && !c->opaque && !c->pins &&
           !c->changes_session && (c->kind == ROUTE_KIND_SELECT || c->kind == ROUTE_KIND_SHOW);
}

void px_replica_note_statement(struct px_client *cl, const char *sql, size_t len, const char *held, size_t held_len)
{
    struct proxy *px = cl->conn.px;
    const struct route_class *c;
    int reads, opened_ro = 0, trust = route_trusts(px, cl->tx_rule);

    if (held) {
        c = px_route_classify(px, held, held_len);
        opened_ro = c && c->tx_read_only;
    }
    c = px_route_classify(px, sql, len);   /* cached: valid until the next classification */
    if (held)
        /* BEGIN READ ONLY, or a BEGIN whose first statement is SET TRANSACTION READ ONLY; with
         * read_only = trust, a transaction whose first statement reads. */
        reads = opened_ro || (c && c->tx_read_only) || (trust && grammar_reads(c));
    else
        /* A statement outside a transaction block: its own transaction (a Query of several statements
         * is read-only only if all of them are). BEGIN READ ONLY not held (other options) counts too. */
        reads = grammar_reads(c) || (c && c->tx_read_only);
    cl->tx_reads = (uint8_t)reads;
}

/* The pools of (lane, database, user) by server, those that exist. */
static void lane_pools(struct proxy *px, struct px_lane *lane, const struct px_client *cl, struct px_pool **out)
{
    memset(out, 0, sizeof(*out) * (size_t)lane->neps);
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *p = px_container_of(it, struct px_pool, link);

        if (p->lane == lane && strcmp(p->database, cl->database) == 0 && strcmp(p->user, cl->user) == 0)
            out[p->ep->index] = p;
    }
}

static int load_of(const struct px_pool *p)
{
    return p ? p->nbusy + p->nwaiting : 0;
}

/* The replica for a read by balance, among eligible ones (and, for read_your_writes, those that
 * replayed the client's last write). *any_eligible: some replica was eligible apart from that. */
static int pick_replica(struct proxy *px, struct px_lane *lane, const struct px_client *cl, int *any_eligible)
{
    struct px_pool *pools[CONF_LANE_SERVERS_MAX];
    int best = -1, n = lane->neps, start;

    *any_eligible = 0;
    if (lane->conf->balance == CONF_BALANCE_LEAST_BUSY)
        lane_pools(px, lane, cl, pools);
    start = (int)(lane->rr++ % (uint32_t)n);
    for (int k = 0; k < n; k++) {
        int i = (start + k) % n;
        const struct px_health *h;

        if (!read_eligible(px, lane, &lane->eps[i]))
            continue;
        *any_eligible = 1;
        h = health(px, &lane->eps[i]);
        if (lane->conf->read_your_writes && cl->ryw_lsn && h->lsn < cl->ryw_lsn)
            continue;
        if (lane->conf->balance == CONF_BALANCE_ROUND_ROBIN)
            return i;
        if (best < 0 || load_of(pools[i]) < load_of(pools[best]))
            best = i;
    }
    return best;
}

/* The fallback of the lane's reads changed: one log line. */
static void note_fallback(struct px_lane *lane, int on)
{
    static const char *const what[] = { "go to the primary", "queue", "are refused" };

    if (lane->no_replica == on)
        return;
    lane->no_replica = on;
    if (on)
        px_warn("lane %s: no replica is eligible for reads: reads %s (replica_fallback)", lane->conf->name,
                what[lane->conf->replica_fallback]);
    else
        px_info("lane %s: a replica is eligible for reads again", lane->conf->name);
}

static void queue_client(struct px_client *cl, struct px_lane *lane)
{
    if (cl->rq_since_ms == 0)
        cl->rq_since_ms = px_now_ms(cl->conn.px);
    if (cl->rq_link.next && cl->rq_link.next != &cl->rq_link)
        px_list_remove(&cl->rq_link);
    px_list_append(&lane->rq, &cl->rq_link);
    px_conn_read_stop(&cl->conn);
}

static void unqueue_client(struct px_client *cl)
{
    if (cl->rq_link.next && cl->rq_link.next != &cl->rq_link) {
        px_list_remove(&cl->rq_link);
        px_list_init(&cl->rq_link);
    }
}

/* A transaction (not a login, whose pool is the primary's) */
static int counted(const struct px_client *cl)
{
    return cl->state == CL_IDLE || cl->state == CL_WAITING;
}

struct px_pool *px_replica_pool(struct px_client *cl, struct px_lane *lane, int *refused)
{
    struct proxy *px = cl->conn.px;
    int i = -1, any = 0;

    *refused = 0;
    if (cl->tx_reads) {
        i = pick_replica(px, lane, cl, &any);
        if (i < 0 && !any) {
            note_fallback(lane, 1);
            if (lane->conf->replica_fallback == CONF_FALLBACK_QUEUE && !px->draining) {
                uint64_t limit = (uint64_t)lane->conf->queue_timeout_ms;

                if (limit == 0 || px_now_ms(px) - (cl->rq_since_ms ? cl->rq_since_ms : px_now_ms(px)) < limit) {
                    queue_client(cl, lane);
                    *refused = 1;
                    return NULL;
                }
                cl->rq_since_ms = 0;
                *refused = 1;
                px_client_fail(cl, "57014", "pglane: queue_timeout waiting for an eligible replica (replica_fallback = queue)");
                return NULL;
            }
            /* replica_fallback = error refused it at routing (px_replica_refuse); an eligibility that
             * changed since, and primary: the primary */
        } else if (i >= 0) {
            note_fallback(lane, 0);
        }
    }
    cl->rq_since_ms = 0;
    unqueue_client(cl);
    if (i < 0) {
        i = primary_of(px, lane);
        if (i < 0 && px->conf->default_lane_index != lane->index && lane->index >= 0) {
            /* Every server of the lane is a replica: its writes run in the default lane. */
            struct px_lane *def = px->lanes[px->conf->default_lane_index];

            cl->lane = (int16_t)def->index;
            if (def->neps > 1)
                return px_replica_pool(cl, def, refused);
            return cl->pool && cl->pool->lane == def ? cl->pool : px_pool_get(px, def, cl->database, cl->user);
        }
        if (i < 0)
            i = 0;                 /* nothing better: PostgreSQL's own error (25006, with pglane's hint) */
        lane->eps[i].writes += counted(cl);
        cl->tx_on_replica = 0;
        cl->ryw_due = lane->conf->read_your_writes && !cl->tx_reads;
    } else {
        lane->eps[i].reads += counted(cl);
        cl->tx_on_replica = 1;
        cl->ryw_due = 0;
    }
    if (cl->pool && cl->pool->lane == lane && cl->pool->ep == &lane->eps[i])
        return cl->pool;
    return px_pool_get_ep(px, lane, &lane->eps[i], cl->database, cl->user);
}

int px_replica_refuse(struct px_client *cl, struct proto_buf *out)
{
    struct proxy *px = cl->conn.px;
    struct px_lane *lane;
    char msg[256];
    int any = 0;

    if (cl->lane < 0 || cl->lane >= px->nlanes)
        return 0;
    lane = px->lanes[cl->lane];
    if (lane->neps < 2 || lane->conf->replica_fallback != CONF_FALLBACK_ERROR)
        return 0;
    for (int i = 0; i < lane->neps && !any; i++)
        any = read_eligible(px, lane, &lane->eps[i]);
    if (any)
        return 0;
    note_fallback(lane, 1);
    snprintf(msg, sizeof(msg), "pglane: no replica of lane \"%s\" is eligible for reads (down or over "
             "max_replica_lag) and its replica_fallback is error", lane->conf->name);
    proto_build_error(out, "ERROR", "57P03", msg, NULL,
                      "Retry later, or set replica_fallback = primary to run such reads on the primary.");
    CLOG(cl, CONF_LOG_INFO, "%s", msg);
    return 1;
}

/* ---- a standby's errors ---- */

/* A copy of ErrorResponse body with field H (hint) set to hint (an existing hint is kept after it). */
static void build_hinted(struct proto_buf *out, const uint8_t *body, uint32_t len, const char *hint)
{
    const char *old = NULL;
    size_t start = proto_msg_begin(out, PROTO_BE_ERROR);
    uint32_t off = 0;

    while (off < len && body[off]) {
        const uint8_t *v = body + off + 1;
        const uint8_t *end = memchr(v, 0, len - off - 1);

        if (!end)
            break;
        if (body[off] == 'H')
            old = (const char *)v;
        else
            proto_put_bytes(out, body + off, (size_t)(end - (body + off)) + 1);
        off = (uint32_t)(end + 1 - body);
    }
    proto_put_u8(out, 'H');
    proto_put_bytes(out, hint, strlen(hint));
    if (old) {
        proto_put_bytes(out, " ", 1);
        proto_put_bytes(out, old, strlen(old));
    }
    proto_put_u8(out, 0);
    proto_put_u8(out, 0);
    proto_msg_end(out, start);
}

static int recovery_conflict(const struct proto_error_fields *ef)
{
    return ef->sqlstate && (strcmp(ef->sqlstate, "40001") == 0 || strcmp(ef->sqlstate, "40P01") == 0) &&
           ef->message && strstr(ef->message, "conflict with recovery");
}

int px_replica_error(struct px_server *sv, struct proto_frame *f)
{
    struct proxy *px = sv->conn.px;
    struct px_client *cl = sv->client;
    struct px_lane *lane = sv->pool->lane;
    struct proto_error_fields ef;
    struct proto_buf nb;
    char hint[400];
    int r;

    if (sv->swallow_z || proto_parse_error(f->body, f->len, &ef) < 0 || !ef.sqlstate)
        return 0;
    if (recovery_conflict(&ef)) {
        sv->pool->ep->conflicts++;
        px_health_conflict(px, sv->pool->ep->server->name);
        return 0;
    }
    if (strcmp(ef.sqlstate, "25006") != 0 || !cl)
        return 0;
    /* Only a standby's refusal: a READ ONLY transaction's own 25006 on a primary is the client's. */
    if (role(px, sv->pool->ep) != PX_ROLE_REPLICA && !(ef.message && strstr(ef.message, "during recovery")))
        return 0;
    snprintf(hint, sizeof(hint),
             "pglane sent this transaction of lane \"%s\" (route %s) to server \"%s\", a standby, because it "
             "looked read-only; open it with BEGIN, or set read_only = grammar on the route, so that it runs "
             "on the primary.",
             lane->conf->name,
             cl->tx_rule >= 0 && cl->tx_rule < px->conf->nroutes ? px->conf->routes[cl->tx_rule].name : "(default)",
             sv->pool->ep->server->name);
    proto_buf_init(&nb);
    build_hinted(&nb, f->body, f->len, hint);
    r = nb.failed ? 0 : px_server_replace_frame(sv, f, &nb);
    proto_buf_free(&nb);
    return r;
}

/* ---- read_your_writes ---- */

int px_replica_ask_lsn(struct px_server *sv, struct px_client *cl)
{
    static const char q[] = "SELECT pg_catalog.pg_current_wal_insert_lsn()";
    const struct px_lane *lane = sv->pool->lane;

    if (!lane->conf->read_your_writes || !cl->ryw_due || sv->state == SV_CLOSED)
        return 0;
    cl->ryw_due = 0;
    if (send_own_query(sv, q, sizeof(q) - 1) < 0)
        return 0;                  /* the connection is closing: nothing to learn */
    sv->ryw_wait = 1;
    sv->ryw_lsn = 0;
    px_conn_read_stop(&cl->conn);
    return 1;
}

void px_replica_lsn_row(struct px_server *sv, const uint8_t *body, uint32_t len)
{
    char text[40];
    uint32_t n;
    uint64_t lsn;

    if (len < 6 || proto_get_u16(body) != 1)
        return;
    n = proto_get_u32(body + 2);
    if (n == 0xffffffffu || n > len - 6 || n >= sizeof(text))
        return;
    memcpy(text, body + 6, n);
    text[n] = '\0';
    if (px_lsn_parse(text, &lsn) == 0)
        sv->ryw_lsn = lsn;
}

void px_replica_lsn_done(struct px_server *sv)
{
    struct px_client *cl = sv->client;

    sv->ryw_wait = 0;
    if (!cl) {                     /* the client left meanwhile */
        server_release(sv);
        return;
    }
    if (sv->ryw_lsn > cl->ryw_lsn)
        cl->ryw_lsn = sv->ryw_lsn;
    CLOG(cl, CONF_LOG_DEBUG, "read_your_writes: the primary is at %X/%X after its write",
         (unsigned)(cl->ryw_lsn >> 32), (unsigned)cl->ryw_lsn);
    cl->server = NULL;
    sv->client = NULL;
    cl->conn.blocked = 0;
    px_client_released(cl);
    if (sv->state != SV_CLOSED)
        server_release(sv);
}

/* ---- the maintenance tick ---- */

static void log_states(struct proxy *px, struct px_lane *lane)
{
    int primary = -1, unknown = 0;

    for (int i = 0; i < lane->neps; i++) {
        struct px_ep *e = &lane->eps[i];
        int st = px_ep_state(px, lane, e);

        if (st != e->state) {
            px_info("lane %s: server %s (%s) is %s", lane->conf->name, e->server->name, px_ep_role_name(px, e),
                    px_ep_state_name(st));
            e->state = st;
        }
        if (primary < 0 && role(px, e) == PX_ROLE_PRIMARY && st != PX_EP_DOWN)
            primary = i;
        unknown |= role(px, e) == PX_ROLE_UNKNOWN;
    }
    if (primary < 0 && unknown && !lane->no_primary)
        return;                    /* roles not learned yet (the first checks): nothing to say */
    if ((primary < 0) != lane->no_primary) {
        lane->no_primary = primary < 0;
        if (primary < 0)
            px_warn("lane %s: no server of the lane is an up primary: writes wait for one (server_connect_timeout)",
                    lane->conf->name);
        else
            px_info("lane %s: writes go to server %s", lane->conf->name, lane->eps[primary].server->name);
    }
}

/* Clients queued in a pool whose server is no longer where their transaction belongs (a primary that
 * went down while another was promoted, a replica that went down or lags): back through routing. */
static void move_waiters(struct proxy *px, struct px_pool *pool)
{
    struct px_lane *lane = pool->lane;
    int st = px_ep_state(px, lane, pool->ep), r = role(px, pool->ep), primary = primary_of(px, lane);
    int writes_stay = primary < 0 || &lane->eps[primary] == pool->ep;
    struct px_list *it, *next;
    int n = pool->nwaiting;

    if (st == PX_EP_UP && r != PX_ROLE_REPLICA)
        return;                    /* a healthy primary (or unknown): its waiters stay */
    /* at most the waiters there now: one sent back to this pool queues at its end */
    for (it = pool->waiting.next; it != &pool->waiting && n-- > 0; it = next) {
        struct px_client *cl = px_container_of(it, struct px_client, wait_link);
        struct px_pool *np;
        int refused;

        next = it->next;
        if (cl->state != CL_WAITING || cl->tx_forwarded)
            continue;              /* a login, or a transaction that already ran something there */
        if (cl->tx_on_replica ? st == PX_EP_UP : writes_stay)
            continue;
        px_pool_cancel_wait(cl);
        np = px_replica_pool(cl, lane, &refused);
        if (refused)
            continue;              /* answered (or queued for a replica) */
        if (!np) {
            client_no_pool(cl);
            continue;
        }
        if (np != pool)
            px_info("C-%llu moved from server %s to %s (lane %s)", (unsigned long long)cl->conn.id,
                    pool->ep->server->name, np->ep->server->name, lane->conf->name);
        px_pool_acquire(np, cl);
    }
}

void px_replica_tick(struct proxy *px)
{
    for (int i = 0; i < px->nall_lanes; i++) {
        struct px_lane *lane = px->all_lanes[i];

        if (lane->neps < 2)
            continue;
        if (!lane->retired)
            log_states(px, lane);
        /* Queued reads (replica_fallback = queue): routed again. */
        while (!px_list_empty(&lane->rq)) {
            struct px_list q;

            px_list_init(&q);
            /* take the whole queue: a client queued again lands on lane->rq, not on q */
            q.next = lane->rq.next;
            q.prev = lane->rq.prev;
            q.next->prev = &q;
            q.prev->next = &q;
            px_list_init(&lane->rq);
            while (!px_list_empty(&q)) {
                struct px_client *cl = px_container_of(q.next, struct px_client, rq_link);

                px_list_remove(&cl->rq_link);
                px_list_init(&cl->rq_link);
                px_conn_read_start(&cl->conn);
                px_client_pump(cl);
            }
            break;
        }
    }
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (pool->lane->neps > 1 && !pool->lane->retired && pool->nwaiting)
            move_waiters(px, pool);
    }
}

void px_replica_forget(struct px_client *cl)
{
    unqueue_client(cl);
}
