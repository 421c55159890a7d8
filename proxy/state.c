/*
 * The state-transition tables of clients and servers and the one function per kind that changes a
 * state (proxy/state.h). No libuv: the pool's lists are plain intrusive lists.
 */
#include <stdio.h>
#include <stdlib.h>

#include "proxy/state.h"
#include "proxy/tenant.h"

#if defined(PX_STATE_STRICT) || defined(__SANITIZE_ADDRESS__)
#define STATE_STRICT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STATE_STRICT 1
#endif
#endif
#ifndef STATE_STRICT
#define STATE_STRICT 0
#endif

#define B(s) (1u << (s))

/*
 * Servers. Connecting → (TLS →) login → idle or active (a login for a waiting client attaches at
 * once). Active → idle, or straight to the next waiting client (active again), or held while a
 * forwarded cancel is in flight (cancel_wait), or resetting session state first. Any state but
 * closed may close; closed is final. Idle → checking (server_check_delay) → active for the waiting
 * client, or idle again. Idle or active → resetting also drops pglane's prepared statements before a
 * connection moves to another worker.
 */
static const unsigned sv_next[PX_SV_NSTATES + 1] = {
    [PX_SV_NEW] = B(SV_CONNECTING),
    [SV_CONNECTING] = B(SV_TLS) | B(SV_LOGIN) | B(SV_CLOSED),
    [SV_TLS] = B(SV_LOGIN) | B(SV_CLOSED),
    [SV_LOGIN] = B(SV_IDLE) | B(SV_ACTIVE) | B(SV_CLOSED),
    [SV_IDLE] = B(SV_IDLE) | B(SV_ACTIVE) | B(SV_RESETTING) | B(SV_CHECKING) | B(SV_CLOSED),
    [SV_ACTIVE] = B(SV_IDLE) | B(SV_ACTIVE) | B(SV_RESETTING) | B(SV_CANCEL_WAIT) | B(SV_CLOSED),
    [SV_RESETTING] = B(SV_IDLE) | B(SV_ACTIVE) | B(SV_CLOSED),
    [SV_CANCEL_WAIT] = B(SV_IDLE) | B(SV_ACTIVE) | B(SV_RESETTING) | B(SV_CLOSED),
    [SV_CHECKING] = B(SV_IDLE) | B(SV_ACTIVE) | B(SV_CLOSED),
    [SV_CLOSED] = 0,
};

/*
 * Clients. Startup → authentication → the admin console, or idle (transaction pooling with known
 * startup values), or login_wait (a server finishes the login). Idle → waiting (queued for a server)
 * → active (attached) → idle at the end of the transaction. Any state but closed may close.
 */
static const unsigned cl_next[PX_CL_NSTATES] = {
    [CL_STARTUP] = B(CL_AUTH_PASSWORD) | B(CL_AUTH_SASL_INIT) | B(CL_ADMIN) | B(CL_IDLE) | B(CL_LOGIN_WAIT) |
                   B(CL_CLOSED),
    [CL_AUTH_PASSWORD] = B(CL_ADMIN) | B(CL_IDLE) | B(CL_LOGIN_WAIT) | B(CL_CLOSED),
    [CL_AUTH_SASL_INIT] = B(CL_AUTH_SASL_FINAL) | B(CL_CLOSED),
    [CL_AUTH_SASL_FINAL] = B(CL_ADMIN) | B(CL_IDLE) | B(CL_LOGIN_WAIT) | B(CL_CLOSED),
    [CL_LOGIN_WAIT] = B(CL_IDLE) | B(CL_ACTIVE) | B(CL_CLOSED),
    [CL_IDLE] = B(CL_WAITING) | B(CL_CLOSED),
    [CL_WAITING] = B(CL_ACTIVE) | B(CL_IDLE) | B(CL_CLOSED),
    [CL_ACTIVE] = B(CL_IDLE) | B(CL_WAITING) | B(CL_CLOSED),
    [CL_ADMIN] = B(CL_CLOSED),
    [CL_CLOSED] = 0,
};

/*
 * Transaction routing of a client (enum px_tx_route). The BEGIN held with a lane already chosen
 * comes from the identity's lane with server_retry, and from a transparent retry that resends the
 * replayed BEGIN. A replay ends once the held BEGIN is forwarded: the lane is the attached server's.
 */
static const unsigned txr_next[PX_TXR_NSTATES] = {
    [TXR_NONE] = B(TXR_LANE_DECIDED) | B(TXR_BEGIN_HELD),
    [TXR_LANE_DECIDED] = B(TXR_NONE) | B(TXR_BEGIN_HELD_DECIDED),
    [TXR_BEGIN_HELD] = B(TXR_BEGIN_HELD_DECIDED) | B(TXR_BEGIN_REPLAY),
    [TXR_BEGIN_HELD_DECIDED] = B(TXR_NONE) | B(TXR_BEGIN_REPLAY),
    [TXR_BEGIN_REPLAY] = B(TXR_LANE_DECIDED),
};

int px_server_transition_legal(int from, enum px_server_state to)
{
    if (from < 0 || from > PX_SV_NEW || (int)to < 0 || (int)to >= PX_SV_NSTATES)
        return 0;
    return (sv_next[from] & B(to)) != 0;
}

int px_client_transition_legal(enum px_client_state from, enum px_client_state to)
{
    if ((int)from < 0 || (int)from >= PX_CL_NSTATES || (int)to < 0 || (int)to >= PX_CL_NSTATES)
        return 0;
    return (cl_next[from] & B(to)) != 0;
}

int px_tx_route_legal(enum px_tx_route from, enum px_tx_route to)
{
    if ((int)from < 0 || (int)from >= PX_TXR_NSTATES || (int)to < 0 || (int)to >= PX_TXR_NSTATES)
        return 0;
    return (txr_next[from] & B(to)) != 0;
}

const char *px_tx_route_id(int s)
{
    static const char *const ids[PX_TXR_NSTATES] = {
        [TXR_NONE] = "TXR_NONE", [TXR_LANE_DECIDED] = "TXR_LANE_DECIDED", [TXR_BEGIN_HELD] = "TXR_BEGIN_HELD",
        [TXR_BEGIN_HELD_DECIDED] = "TXR_BEGIN_HELD_DECIDED", [TXR_BEGIN_REPLAY] = "TXR_BEGIN_REPLAY",
    };

    return s >= 0 && s < PX_TXR_NSTATES ? ids[s] : "?";
}

const char *px_server_state_id(int s)
{
    static const char *const ids[PX_SV_NSTATES + 1] = {
        [SV_CONNECTING] = "SV_CONNECTING", [SV_TLS] = "SV_TLS", [SV_LOGIN] = "SV_LOGIN", [SV_IDLE] = "SV_IDLE",
        [SV_ACTIVE] = "SV_ACTIVE", [SV_RESETTING] = "SV_RESETTING", [SV_CANCEL_WAIT] = "SV_CANCEL_WAIT",
        [SV_CHECKING] = "SV_CHECKING",
        [SV_CLOSED] = "SV_CLOSED", [PX_SV_NEW] = "(new)",
    };

    return s >= 0 && s <= PX_SV_NEW ? ids[s] : "?";
}

const char *px_client_state_id(int s)
{
    static const char *const ids[PX_CL_NSTATES] = {
        [CL_STARTUP] = "CL_STARTUP", [CL_AUTH_PASSWORD] = "CL_AUTH_PASSWORD",
        [CL_AUTH_SASL_INIT] = "CL_AUTH_SASL_INIT", [CL_AUTH_SASL_FINAL] = "CL_AUTH_SASL_FINAL",
        [CL_LOGIN_WAIT] = "CL_LOGIN_WAIT", [CL_IDLE] = "CL_IDLE", [CL_WAITING] = "CL_WAITING",
        [CL_ACTIVE] = "CL_ACTIVE", [CL_ADMIN] = "CL_ADMIN", [CL_CLOSED] = "CL_CLOSED",
    };

    return s >= 0 && s < PX_CL_NSTATES ? ids[s] : "?";
}

enum px_sv_list px_server_state_list(enum px_server_state s)
{
    switch (s) {
    case SV_IDLE:
        return PX_SVL_IDLE;
    case SV_CLOSED:
        return PX_SVL_NONE;
    case SV_CONNECTING:
    case SV_TLS:
    case SV_LOGIN:
    case SV_ACTIVE:
    case SV_RESETTING:
    case SV_CANCEL_WAIT:
    case SV_CHECKING:
        break;
    }
    return PX_SVL_BUSY;
}

static void illegal(const char *kind, uint64_t id, const char *from, const char *to)
{
    px_error("%s-%llu illegal state transition %s -> %s", kind, (unsigned long long)id, from, to);
    if (STATE_STRICT) {
        fprintf(stderr, "pglane: %s-%llu illegal state transition %s -> %s\n", kind, (unsigned long long)id,
                from, to);
        abort();
    }
}

static int server_on_the_way(enum px_server_state s)
{
    return s == SV_CONNECTING || s == SV_TLS || s == SV_LOGIN || s == SV_CHECKING;
}

void px_server_set_state(struct px_server *sv, enum px_server_state to)
{
    struct px_pool *pool = sv->pool;
    int fresh = sv->link.next == NULL;
    int from = fresh ? PX_SV_NEW : (int)sv->state;
    enum px_sv_list was = fresh ? PX_SVL_NONE : px_server_state_list(sv->state), will = px_server_state_list(to);

    if (!px_server_transition_legal(from, to))
        illegal("S", sv->conn.id, px_server_state_id(from), px_server_state_id(to));
    if (sv->tenant && to != SV_ACTIVE)
        px_tenant_release(sv);     /* the tenant's transaction no longer holds it */
    /* Opened, or closed: the caps' counts (a lingering close gives them back when its backend has
     * gone, proxy/server_login.c). */
    if ((was == PX_SVL_NONE) != (will == PX_SVL_NONE) && !sv->lingering) {
        for (int k = 0; k < PX_CAP_KINDS; k++)
            if (pool->cap[k])
                pool->cap[k]->n += will == PX_SVL_NONE ? -1 : 1;
        /* Several workers: the lane's global count was taken before the connect (pool.c grow). */
        if (pool->g && will == PX_SVL_NONE && !sv->moved) {
            px_gslot_put(pool);
            px_caps_put(pool);
        }
    }
    /* The states of a connection that is on its way to serving (pool.c counts them per waiter). */
    pool->nconnecting += server_on_the_way(to) - (!fresh && server_on_the_way(sv->state));
    pool->nchecking += (to == SV_CHECKING) - (!fresh && sv->state == SV_CHECKING);
    if (was != will) {
        if (was == PX_SVL_IDLE)
            pool->nidle--;
        else if (was == PX_SVL_BUSY)
            pool->nbusy--;
        if (was != PX_SVL_NONE)
            px_list_remove(&sv->link);
        if (will == PX_SVL_IDLE) {
            px_list_prepend(&pool->idle, &sv->link);   /* most recently used first: surplus ages out */
            pool->nidle++;
        } else if (will == PX_SVL_BUSY) {
            px_list_append(&pool->busy, &sv->link);
            pool->nbusy++;
        }
        if (pool->g && (was == PX_SVL_NONE) != (will == PX_SVL_NONE))
            px_gslot_note_conns(pool);   /* several workers: what this worker holds of the slot */
    }
    sv->state = to;
}

void px_client_set_state(struct px_client *cl, enum px_client_state to)
{
    if (!px_client_transition_legal(cl->state, to))
        illegal("C", cl->conn.id, px_client_state_id(cl->state), px_client_state_id(to));
    cl->state = to;
}

static int txr_held(enum px_tx_route s)
{
    switch (s) {
    case TXR_BEGIN_HELD:
    case TXR_BEGIN_HELD_DECIDED:
        return 1;
    case TXR_NONE:
    case TXR_LANE_DECIDED:
    case TXR_BEGIN_REPLAY:
        break;
    }
    return 0;
}

void px_client_set_tx_route(struct px_client *cl, enum px_tx_route to)
{
    if (!px_tx_route_legal(cl->tx_route, to) || (txr_held(to) && !cl->held_begin))
        illegal("C", cl->conn.id, px_tx_route_id(cl->tx_route), px_tx_route_id(to));
    if (!txr_held(to))
        cl->held_begin = 0;
    cl->tx_route = to;
}

void px_client_tx_route_decide(struct px_client *cl)
{
    if (cl->tx_route == TXR_NONE)
        px_client_set_tx_route(cl, TXR_LANE_DECIDED);
    else if (cl->tx_route == TXR_BEGIN_HELD)
        px_client_set_tx_route(cl, TXR_BEGIN_HELD_DECIDED);
}

void px_client_tx_route_forget(struct px_client *cl)
{
    if (cl->tx_route == TXR_LANE_DECIDED)
        px_client_set_tx_route(cl, TXR_NONE);
    else if (cl->tx_route == TXR_BEGIN_HELD_DECIDED)
        px_client_set_tx_route(cl, TXR_BEGIN_HELD);
}
