/*
 * proxy/tenant.h — fair queuing of a lane's transactions by tenant, the proxy side (proxy/tenant.c):
 * which tenant a waiting client belongs to, who is charged for a server connection, which waiter gets
 * the next one. The queue discipline itself is proxy/fairq.c (pure). With tenant_key = none nothing
 * here changes the pool's FIFO.
 */
#ifndef PGLANE_PROXY_TENANT_H
#define PGLANE_PROXY_TENANT_H

#include "proxy/proxy.h"

/* The pool's lane has a tenant_key. */
int px_tenant_on(const struct px_pool *pool);
/* cl starts waiting in pool->waiting: its tenant is looked up and counted as waiting (tenant_key set). */
void px_tenant_wait(struct px_pool *pool, struct px_client *cl);
/* cl leaves pool->waiting (served, timed out, cancelled, gone). */
void px_tenant_unwait(struct px_client *cl);
/* sv is being attached to cl: the tenant that held sv until now is discharged, cl's charged. 0, or -1
 * when cl's tenant is at tenant_max in the process (several workers: another took the last one
 * meanwhile): sv is not to be attached. */
int px_tenant_charge(struct px_server *sv, struct px_client *cl);
/* At the process's end, after every worker stopped. */
void px_tenant_shared_free(void);
/* sv no longer runs the transaction of the tenant charged for it (it left SV_ACTIVE). */
void px_tenant_release(struct px_server *sv);
/* 1 if a client arriving with no one queued may take an idle connection at once (its tenant has room). */
int px_tenant_may_take(struct px_pool *pool, struct px_client *cl);
/* The waiter to serve next (FIFO head with tenant_key = none), or NULL if every waiter's tenant is at
 * tenant_max. */
struct px_client *px_tenant_pick(struct px_pool *pool);
/* How many waiters could be served now (nwaiting with tenant_key = none). */
int px_tenant_servable(struct px_pool *pool);
/* The first statement of a transaction (or the one after a held BEGIN): its "pglane tenant=ID" hint
 * names the transaction's tenant where tenant_key = hint (only read when some lane has that key). */
void px_tenant_note_hint(struct px_client *cl, const char *sql, size_t len);
/* The longest hint kept, its terminating NUL included: longer IDs are cut there. */
#define PX_TENANT_HINT_MAX 64
/* Forgets tenants idle for long (maintenance tick). */
void px_tenant_sweep(struct proxy *px);
void px_tenant_lane_free(struct px_lane *lane);

#endif
