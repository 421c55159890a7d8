/*
 * proxy/state.h — the one way a client's or a server's state changes (proxy/state.c).
 *
 * Each kind has a table of legal transitions (legal[from][to]) and one function that checks the
 * change against it, moves a server between its pool's lists (idle, busy, none) keeping nidle and
 * nbusy in step, and records the new state. An illegal change is a bug: builds with
 * AddressSanitizer (or -DPX_STATE_STRICT) abort naming both states; other builds log an error and
 * carry on. The tables and the checks use no libuv (tests/unit/test_proxy_state.c).
 */
#ifndef PGLANE_PROXY_STATE_H
#define PGLANE_PROXY_STATE_H

#include "proxy/proxy.h"

#define PX_SV_NSTATES (SV_CLOSED + 1)
#define PX_CL_NSTATES (CL_CLOSED + 1)
/* The "from" of a server that was just allocated and is in no pool list yet. */
#define PX_SV_NEW PX_SV_NSTATES

/* 1 if a server may go from `from` (a state, or PX_SV_NEW) to `to`, else 0. */
int px_server_transition_legal(int from, enum px_server_state to);
/* 1 if a client may go from `from` to `to`, else 0. A client starts in CL_STARTUP (0, calloc). */
int px_client_transition_legal(enum px_client_state from, enum px_client_state to);
/* The enum's identifier ("SV_IDLE", "CL_ACTIVE"), for diagnostics; "?" when out of range. */
const char *px_server_state_id(int s);
const char *px_client_state_id(int s);

/* Which list of its pool a server in state s belongs to. */
enum px_sv_list { PX_SVL_NONE, PX_SVL_IDLE, PX_SVL_BUSY };
enum px_sv_list px_server_state_list(enum px_server_state s);

/*
 * Changes sv's state to `to`: checks the transition (from PX_SV_NEW while sv->link is unset, as
 * calloc leaves it), moves sv between pool->idle (prepended: most recently used first), pool->busy
 * (appended) and no list, keeping pool->nidle and pool->nbusy in step, and records the state.
 */
void px_server_set_state(struct px_server *sv, enum px_server_state to);
/* Changes cl's state to `to` after checking the transition. Queue membership (pool->waiting) is
 * kept by proxy/pool.c: a client waits there in CL_WAITING or, at login, in CL_LOGIN_WAIT. */
void px_client_set_state(struct px_client *cl, enum px_client_state to);


#define PX_TXR_NSTATES (TXR_BEGIN_REPLAY + 1)
int px_tx_route_legal(enum px_tx_route from, enum px_tx_route to);
const char *px_tx_route_id(int s);
/* Changes cl's transaction-routing state after checking the transition. Entering a TXR_BEGIN_HELD*
 * state needs cl->held_begin set (the held BEGIN's length); leaving them clears it. */
void px_client_set_tx_route(struct px_client *cl, enum px_tx_route to);
/* The lane of the pending transaction is chosen (TXR_NONE -> TXR_LANE_DECIDED, TXR_BEGIN_HELD ->
 * TXR_BEGIN_HELD_DECIDED), or forgotten (the reverse); other states are left as they are. */
void px_client_tx_route_decide(struct px_client *cl);
static inline int px_tx_route_decided(enum px_tx_route s)
{
    return s == TXR_LANE_DECIDED || s == TXR_BEGIN_HELD_DECIDED;
}
void px_client_tx_route_forget(struct px_client *cl);

#endif
