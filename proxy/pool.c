/*
 * Server pools: one per (lane, database, user), holding at most the lane's `size` connections, with
 * a FIFO of clients waiting for one. A waiting client waits only in its own lane's queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "proxy/proxy.h"
#include "proxy/state.h"
#include "proxy/tenant.h"

static void queue_timer_arm(struct px_pool *pool);

struct px_pool *px_pool_get(struct proxy *px, struct px_lane *lane, const char *database, const char *user)
{
    return px_pool_get_ep(px, lane, &lane->eps[0], database, user);
}

struct px_pool *px_pool_get_ep(struct proxy *px, struct px_lane *lane, struct px_ep *ep, const char *database,
                               const char *user)
{
    struct px_pool *pool;

    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        pool = px_container_of(it, struct px_pool, link);
        if (pool->lane == lane && pool->ep == ep && strcmp(pool->database, database) == 0 &&
            strcmp(pool->user, user) == 0)
            return pool;
    }
    /* max_pools: this worker's pools, or with several workers the keys of every worker's pools (a
     * key another worker has does not count again: px_gslot_attach) */
    if ((px->pools_over = !px->workers && px->npools >= px->conf->max_pools))
        return NULL;
    pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    pool->database = strdup(database);
    pool->user = strdup(user);
    if (!pool->database || !pool->user) {
        free(pool->database);
        free(pool->user);
        free(pool);
        return NULL;
    }
    pool->lane = lane;
    pool->ep = ep;
    if (px_caps_attach(px, pool) < 0 || px_gslot_attach(px, pool, &px->pools_over) < 0) {
        px_caps_detach(px, pool);
        free(pool->database);
        free(pool->user);
        free(pool);
        return NULL;
    }
    pool->secret = conf_userlist_find(&px->users, user);
    px_list_init(&pool->idle);
    px_list_init(&pool->busy);
    px_list_init(&pool->waiting);
    uv_timer_init(px->loop, &pool->queue_timer);
    pool->queue_timer.data = pool;
    px_list_append(&px->pools, &pool->link);
    px->npools++;
    return pool;
}

void px_pool_get_error(struct proxy *px, const char **sqlstate, const char **message)
{
    if (px->pools_over) {
        *sqlstate = "53300";
        *message = "pglane: max_pools reached: too many (lane, database, user) pools at once";
    } else {
        *sqlstate = "53200";
        *message = "pglane: out of memory";
    }
}

static int by_user_ptr(const void *a, const void *b)
{
    const char *x = (*(struct px_pool *const *)a)->user, *y = (*(struct px_pool *const *)b)->user;

    return x < y ? -1 : x > y;
}

/*
 * pool_idle_timeout: frees pools that have had no server and no waiting client for that long and
 * that no client points at (its pool, or the pool whose copies of the names it shares). Clients
 * are scanned only when some pool is due.
 */
static void free_idle_pools(struct proxy *px, uint64_t now)
{
    int64_t limit = px->conf->pool_idle_timeout_ms;
    struct px_pool **due;
    struct px_list *it;
    int ndue = 0, k = 0;

    if (limit <= 0)
        return;
    for (it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        pool->referenced = 0;
        if (pool->nidle + pool->nbusy + pool->nwaiting + pool->nlinger > 0)
            pool->empty_since_ms = 0;
        else if (pool->empty_since_ms == 0)
            pool->empty_since_ms = now;
        else if (now - pool->empty_since_ms >= (uint64_t)limit)
            ndue++;
    }
    if (ndue == 0 || !(due = malloc(sizeof(*due) * (size_t)ndue)))
        return;
    for (it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (pool->empty_since_ms && now - pool->empty_since_ms >= (uint64_t)limit && k < ndue)
            due[k++] = pool;
    }
    qsort(due, (size_t)k, sizeof(*due), by_user_ptr);
    for (it = px->clients.next; it != &px->clients; it = it->next) {
        struct px_client *cl = px_container_of(it, struct px_client, link);
        struct px_pool key = { .user = cl->user }, *kp = &key, **hit;

        if (cl->pool)
            cl->pool->referenced = 1;
        /* Shared names point into the pool of the client's login (px_pool.user, by address). */
        if (cl->names_shared && (hit = bsearch(&kp, due, (size_t)k, sizeof(*due), by_user_ptr)))
            (*hit)->referenced = 1;
    }
    for (int i = 0; i < k; i++)
        if (!due[i]->referenced)
            px_pool_free(due[i]);
    free(due);
}

static int pool_total(const struct px_pool *pool)
{
    return pool->nidle + pool->nbusy;
}

/* The connections the lane's size counts: this pool's, or with several workers every worker's pool
 * of the same (lane, server, database, user) (proxy/workers.c). */
static int pool_count(const struct px_pool *pool)
{
    return pool->g ? px_gslot_count(pool) : pool_total(pool) + pool->nlinger;
}

/* The same without this pool's connections already closing (their backends ending): what closing
 * one more to come under a lowered size compares (those are on their way out already). */
static int pool_live(const struct px_pool *pool)
{
    return pool_count(pool) - pool->nlinger;
}

/* Connections on their way to serve a waiter: connecting, in TLS, logging in, or running the check
 * of server_check_delay (counted by px_server_set_state: this runs at every release while clients
 * wait, where walking the busy list cost more than the rest of the release). */
static int connecting(const struct px_pool *pool)
{
    return pool->nconnecting;
}

static int checking(const struct px_pool *pool)
{
    return pool->nchecking;
}

/* Clients wait while idle connections exist only when those must be checked first (server_check_delay):
 * checks start (or idle connections that need none are handed over) until each waiter has one on its way
 * (every waiter, with `all`: RESUME hands idle connections out ahead of those still connecting). */
static void serve_from_idle(struct px_pool *pool, int all)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);

    while (!pool->lane->paused && !px->exiting && !px_list_empty(&pool->idle) && !px_list_empty(&pool->waiting) &&
           px_tenant_servable(pool) > (all ? checking(pool) : connecting(pool))) {
        struct px_server *sv = px_container_of(pool->idle.next, struct px_server, link);

        if (px_server_check_due(sv, px_now_ms(px)))
            (void)px_server_check_start(sv);   /* SV_CHECKING, or closed: off the idle list */
        else
            px_pool_server_ready(sv);           /* to the head of the queue */
    }
}

/* server_login_retry: a login failed less than that long ago, so no new one is tried yet (the waiters
 * stay queued; the maintenance tick tries again once the time is up). */
static int login_retry_wait(const struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    int64_t retry = px->conf->server_login_retry_ms;

    uint64_t failed = pool->login_failed_ms, now = px_now_ms(px), other;

    /* Several workers: a login failed in another worker's pool of the same slot counts too (its
     * loop's clock may be a little ahead of this one's). */
    if (pool->g && (other = px_gslot_login_failed(pool->g)) > failed)
        failed = other;
    return retry > 0 && failed && (failed > now || now - failed < (uint64_t)retry);
}

/* workers > 1: the lane's global slot and the caps' counts for one more connection: 1, or 0 with
 * nothing taken. */
static int take_slots(struct px_pool *pool, int cap)
{
    if (!px_gslot_take(pool, cap))
        return 0;
    if (!px_caps_take(pool)) {
        px_gslot_put(pool);
        return 0;
    }
    return 1;
}

/* Opens a connection if the pool is below `cap`, not enough are already on their way, no failed login
 * is too recent, and the global caps have room (proxy/caps.c; else the clients wait for one under them
 * to close or go idle). */
static void grow(struct px_pool *pool, int cap)
{
    if (pool_count(pool) < cap && !pool->lane->retired && connecting(pool) < px_tenant_servable(pool) &&
        !login_retry_wait(pool) && px_caps_room(pool)) {
        /* Several workers: the lane's slot and the caps' counts are taken before the connect (room
         * seen above may have gone to another worker meanwhile). */
        if (pool->g && !take_slots(pool, cap)) {
            /* Published as waiting, then looked at again: a connection closed in another worker
             * between the first look and the publication did not see this worker wait. */
            px_gslot_publish(pool);
            if (!take_slots(pool, cap))
                return;
        }
        (void)px_server_connect(pool);
        if (pool->g)
            px_caps_refresh(pool);
    }
}

int px_pool_wants_room(const struct px_pool *pool)
{
    return pool->nwaiting > connecting(pool) && !pool->lane->paused && !pool->lane->retired &&
           px_tenant_servable((struct px_pool *)pool) > connecting(pool);
}

int px_pool_server_major(const struct px_pool *pool)
{
    for (int i = 0; i < pool->nparams; i++)
        if (strcmp(pool->params[i].name, "server_version") == 0)
            return atoi(pool->params[i].value);
    return 0;
}

int px_pool_wants_server(const struct px_pool *pool)
{
    return pool->nwaiting > connecting(pool) && pool_count(pool) < px_lane_cap(pool->lane) && !pool->lane->paused &&
           !pool->lane->retired && px_tenant_servable((struct px_pool *)pool) > connecting(pool);
}

void px_pool_grow(struct px_pool *pool)
{
    grow(pool, px_lane_cap(pool->lane));
}

void px_pool_login_failed(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);

    pool->login_failed_ms = px_now_ms(px);
    if (pool->login_failed_ms == 0)
        pool->login_failed_ms = 1;
    if (pool->g)
        px_gslot_set_login_failed(pool->g, pool->login_failed_ms);   /* every worker's pool waits too */
}

void px_pool_acquire(struct px_pool *pool, struct px_client *cl)
{
    struct proxy *px = cl->conn.px;

    cl->pool = pool;
    /* Several workers: a queue of another worker that began to wait for room after this pool's idle
     * connections went idle comes first. The wake-up that tells this worker may not have run yet
     * (px_workers_room), and a client of its own would otherwise take the connection meant for that
     * queue's head, which then waits for the next release in the lane. One load per other worker. */
    if (pool->g && !px_list_empty(&pool->idle) && px_list_empty(&pool->waiting) &&
        px_gslot_others_wait(px, pool->g, UINT64_MAX))
        px_gslot_give_idle(px, pool);
    if (!px_list_empty(&pool->idle) && px_list_empty(&pool->waiting) && !pool->lane->paused &&
        px_tenant_may_take(pool, cl)) {
        struct px_server *sv = px_container_of(pool->idle.next, struct px_server, link);

        if (!px_server_check_due(sv, px_now_ms(px)) && px_tenant_charge(sv, cl) == 0) {
            px_server_attach(sv, cl);   /* SV_ACTIVE: onto pool->busy */
            return;
        }
    }
    if (cl->state != CL_LOGIN_WAIT && cl->state != CL_WAITING)
        px_client_set_state(cl, CL_WAITING);
    cl->wait_start_ms = px_now_ms(px);
    if (px->workers)
        cl->wait_seq = px_workers_next_seq(px);
    px_list_append(&pool->waiting, &cl->wait_link);
    pool->nwaiting++;
    px_tenant_wait(pool, cl);
    if (cl->state == CL_LOGIN_WAIT)
        px_conn_read_stop(&cl->conn);
    serve_from_idle(pool, 0);
    grow(pool, px_lane_cap(pool->lane));
    queue_timer_arm(pool);
    px_gslot_publish(pool);
}

void px_pool_cancel_wait(struct px_client *cl)
{
    if (cl->wait_link.next == &cl->wait_link)
        return;
    px_list_remove(&cl->wait_link);
    cl->pool->nwaiting--;
    px_tenant_unwait(cl);
    px_gslot_publish(cl->pool);
}

static void record_wait(struct px_pool *pool, struct px_client *cl, uint64_t now)
{
    uint64_t waited = (now - cl->wait_start_ms) * 1000;

    pool->wait_count++;
    px_stats_wait(pool, waited);
    pool->wait_total_us += waited;
    if (waited > pool->wait_max_us)
        pool->wait_max_us = waited;
}

/* tenant_max counts a tenant's connections in every pool of the lane: a connection given back here
 * may leave room for that tenant's waiters in another pool of the lane, which no server of theirs
 * will tell. Those pools hand out their idle connections (or open one) now. Not nested: the
 * hand-outs it makes do not look again. */
static void serve_lane_peers(struct px_pool *pool)
{
    static _Thread_local int busy;
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);

    if (busy || !px_tenant_on(pool) || pool->lane->conf->tenant_max <= 0 || px->exiting)
        return;
    busy = 1;
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *p = px_container_of(it, struct px_pool, link);

        if (p != pool && p->lane == pool->lane && p->nwaiting > 0) {
            serve_from_idle(p, 0);
            grow(p, px_lane_cap(p->lane));
        }
    }
    busy = 0;
}

void px_pool_server_ready(struct px_server *sv)
{
    struct px_pool *pool = sv->pool;
    struct proxy *px = sv->conn.px;
    int fresh;

    if (sv->reconnect) {
        px_server_close(sv, "RECONNECT by the admin console");
        px_pool_refill(pool);
        return;
    }
    sv->client = NULL;
    px_tenant_release(sv);              /* the transaction is over: its tenant no longer holds sv */
    serve_lane_peers(pool);
    if (pool->g && px_gslot_login_failed(pool->g))
        px_gslot_set_login_failed(pool->g, 0);   /* ... in every worker */
    pool->login_failed_ms = 0;          /* a connection works */
    /* A connection just opened (or handed over) for this pool's queue serves its head: giving it up
     * at once to a queue that waited longer elsewhere would only repeat connects (each new one given up
     * in turn) without serving anyone. A connection a transaction released is given up. */
    fresh = sv->fresh && !px_list_empty(&pool->waiting);
    sv->fresh = 0;
    if (!fresh && px_caps_yield(pool)) {
        px_server_close(sv, "given up to a pool that waited longer under a connection cap");
        return;
    }
    /* Several workers: another worker's queue for this lane waited longer than this one's. */
    if (pool->g && !fresh && px_gslot_give(sv))
        return;
    if (pool->g && !fresh && px_caps_make_room(pool)) {
        px_server_close(sv, "given up to another worker's queue that waited longer under a connection cap");
        return;
    }
    /* The adaptive cap lowered the lane's effective size: no connection is handed out until the pool
     * is under it (px_lane_cap). */
    if (px_lane_cap(pool->lane) < pool->lane->size && pool_live(pool) > px_lane_cap(pool->lane)) {
        px_server_close(sv, "adaptive cap: lane's effective size lowered");
        return;
    }
    if (!px_list_empty(&pool->waiting) && !px->exiting && !pool->lane->paused) {
        /* The head of the queue; under a tenant_key, the first waiter of the tenant with the least
         * service that is under tenant_max (none: the connection goes idle). */
        struct px_client *cl = px_tenant_pick(pool);

        if (cl && px_tenant_charge(sv, cl) == 0) {
            px_pool_cancel_wait(cl);
            record_wait(pool, cl, px_now_ms(px));
            px_server_attach(sv, cl);
            queue_timer_arm(pool);
            return;
        }
    }
    if (pool->lane->retired) {
        px_server_close(sv, "lane retired by reload");
        return;
    }
    if (pool_live(pool) > px_lane_cap(pool->lane)) {
        px_server_close(sv, "reserve connection no longer needed");
        return;
    }
    /* Idle: most recently used first, so that surplus connections age out (px_server_set_state). */
    px_server_set_state(sv, SV_IDLE);
    sv->idle_since_ms = px_now_ms(px);
    px_conn_read_start(&sv->conn);
}

void px_pool_refill(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);

    if (px->exiting || px->draining)
        return;
    serve_from_idle(pool, 0);
    grow(pool, px_lane_cap(pool->lane));
    queue_timer_arm(pool);
}

void px_pool_server_failed(struct px_pool *pool, const uint8_t *err_msg, uint32_t err_len,
                           const char *sqlstate, const char *message)
{
    /* Fail the waiters that no connection still on its way can serve. */
    int on_the_way = connecting(pool);

    while (pool->nwaiting > on_the_way && !px_list_empty(&pool->waiting)) {
        struct px_client *cl = px_container_of(pool->waiting.prev, struct px_client, wait_link);

        px_pool_cancel_wait(cl);
        if (err_msg)
            px_client_fail_raw(cl, err_msg, err_len);
        else
            px_client_fail(cl, sqlstate, message);
    }
    queue_timer_arm(pool);
}

void px_pool_server_unreachable(struct px_pool *pool, const char *message)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    uint64_t now = px_now_ms(px);
    int64_t limit = pool->lane->conf->server_connect_timeout_ms;
    struct px_list *it, *next;

    if (!pool->unreachable_since_ms)
        pool->unreachable_since_ms = now;
    snprintf(pool->unreachable, sizeof(pool->unreachable), "%s", message);
    for (it = pool->waiting.next; it != &pool->waiting; it = next) {
        struct px_client *cl = px_container_of(it, struct px_client, wait_link);
        uint64_t since = cl->wait_start_ms > pool->unreachable_since_ms ? cl->wait_start_ms : pool->unreachable_since_ms;
        char msg[400];

        next = it->next;
        if (limit > 0 && now - since < (uint64_t)limit)
            continue;
        px_pool_cancel_wait(cl);
        snprintf(msg, sizeof(msg), "pglane: server \"%s\" unreachable for %llu ms (server_connect_timeout): %s",
                 pool->ep->server->name, (unsigned long long)(now - since), message);
        px_client_fail(cl, "08006", msg);
    }
    queue_timer_arm(pool);
}

static void on_queue_timer(uv_timer_t *t)
{
    struct px_pool *pool = t->data;
    struct proxy *px = uv_loop_get_data(t->loop);
    uint64_t now = px_now_ms(px);
    int64_t limit = pool->lane->conf->queue_timeout_ms;

    pool->queue_timer_on = 0;
    while (!px_list_empty(&pool->waiting)) {
        struct px_client *cl = px_container_of(pool->waiting.next, struct px_client, wait_link);
        char msg[256];

        if ((int64_t)(now - cl->wait_start_ms) < limit)
            break;
        px_pool_cancel_wait(cl);
        record_wait(pool, cl, now);
        snprintf(msg, sizeof(msg), "pglane: queue_timeout (%lld ms) waiting for a server connection in lane \"%s\"%s%.150s",
                 (long long)limit, pool->lane->conf->name, pool->unreachable_since_ms ? ": server unreachable: " : "",
                 pool->unreachable_since_ms ? pool->unreachable : "");
        px_warn("C-%llu %s", (unsigned long long)cl->conn.id, msg);
        px_client_fail(cl, "57014", msg);
    }
    queue_timer_arm(pool);
}

static void queue_timer_arm(struct px_pool *pool)
{
    int64_t limit = pool->lane->conf->queue_timeout_ms;
    struct px_client *head;
    uint64_t now, due;

    if (limit <= 0 || px_list_empty(&pool->waiting)) {
        if (pool->queue_timer_on)
            uv_timer_stop(&pool->queue_timer);
        pool->queue_timer_on = 0;
        return;
    }
    head = px_container_of(pool->waiting.next, struct px_client, wait_link);
    now = uv_now(pool->queue_timer.loop);
    due = head->wait_start_ms + (uint64_t)limit;
    uv_timer_start(&pool->queue_timer, on_queue_timer, due > now ? due - now : 0, 0);
    pool->queue_timer_on = 1;
}

void px_pool_maintain(struct proxy *px, uint64_t now)
{
    free_idle_pools(px, now);
    px_tenant_sweep(px);
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);
        const struct conf_lane *lc = pool->lane->conf;
        struct px_list *s, *next;

        /* Clients waiting with room in the lane and no connection on its way for them: under a full
         * global cap (a reload may have raised it), during an outage (one attempt per tick; after a
         * failed login once server_login_retry is up), or after any path that closed a server
         * without handing its slot on. */
        if (!px->exiting && px_pool_wants_server(pool))
            grow(pool, px_lane_cap(pool->lane));
        /* tenant_max: a tenant's connection released in another pool of the lane leaves room for its
         * waiters here, which no server of this pool was told about. */
        if (!px->exiting && px_tenant_on(pool) && pool->lane->conf->tenant_max > 0 && pool->nwaiting)
            serve_from_idle(pool, 0);
        /* reserve: extra connections once the head of the queue has waited reserve_timeout (not while
         * the adaptive cap holds the lane below its size). */
        if (lc->reserve > 0 && !px_list_empty(&pool->waiting) && !pool->lane->paused &&
            px_lane_cap(pool->lane) == pool->lane->size) {
            struct px_client *head = px_container_of(pool->waiting.next, struct px_client, wait_link);

            if (now - head->wait_start_ms >= (uint64_t)lc->reserve_timeout_ms)
                grow(pool, pool->lane->size + lc->reserve);
        }
        for (s = pool->idle.next; s != &pool->idle; s = next) {
            struct px_server *sv = px_container_of(s, struct px_server, link);

            next = s->next;
            if (px->conf->server_idle_timeout_ms > 0 &&
                now - sv->idle_since_ms >= (uint64_t)px->conf->server_idle_timeout_ms)
                px_server_close(sv, "server_idle_timeout");
            else if (lc->server_lifetime_ms > 0 && now - sv->created_ms >= (uint64_t)lc->server_lifetime_ms)
                px_server_close(sv, "server_lifetime");
        }
        for (s = pool->busy.next; s != &pool->busy; s = next) {
            struct px_server *sv = px_container_of(s, struct px_server, link);

            next = s->next;
            if ((sv->state == SV_CONNECTING || sv->state == SV_TLS || sv->state == SV_LOGIN) && lc->server_connect_timeout_ms > 0 &&
                now - sv->created_ms >= (uint64_t)lc->server_connect_timeout_ms) {
                px_server_close(sv, "server_connect_timeout");
                px_pool_server_failed(pool, NULL, 0, "08006",
                                      "pglane: server_connect_timeout while connecting to the server");
            } else if (sv->state == SV_CHECKING && lc->server_connect_timeout_ms > 0 &&
                       now - sv->check_start_ms >= (uint64_t)lc->server_connect_timeout_ms) {
                px_server_check_failed(sv, "no answer within server_connect_timeout");
            }
        }
    }
}

static void on_pool_timer_closed(uv_handle_t *h)
{
    struct px_pool *pool = h->data;

    px_params_clear(&pool->defaults);
    for (int i = 0; i < pool->nparams; i++) {
        free(pool->params[i].name);
        free(pool->params[i].value);
    }
    free(pool->params);
    for (int i = 0; i < pool->nchecked; i++) {
        free(pool->checked[i].name);
        free(pool->checked[i].value);
        free(pool->checked[i].norm);
    }
    free(pool->checked);
    free(pool->own_secret);
    free(pool->database);
    free(pool->user);
    OPENSSL_cleanse(pool->scram_client_key, sizeof pool->scram_client_key);
    OPENSSL_cleanse(pool->scram_server_key, sizeof pool->scram_server_key);
    OPENSSL_cleanse(&pool->scram_keycache, sizeof pool->scram_keycache);
    free(pool);
}

void px_pool_free(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);

    px->npools--;
    px_list_remove(&pool->link);
    px_caps_detach(px, pool);
    px_gslot_detach(pool);
    uv_close((uv_handle_t *)&pool->queue_timer, on_pool_timer_closed);
}

void px_pool_resume(struct px_pool *pool)
{
    serve_from_idle(pool, 1);          /* checks connections idle past server_check_delay first */
}

static struct px_server *find_in(struct px_list *head, uint32_t pid)
{
    for (struct px_list *s = head->next; s != head; s = s->next) {
        struct px_server *sv = px_container_of(s, struct px_server, link);

        if (sv->backend_pid == pid && sv->state != SV_CLOSED)
            return sv;
    }
    return NULL;
}

struct px_server *px_pool_find_backend(struct proxy *px, const struct conf_server *server, uint32_t pid)
{
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);
        struct px_server *sv;

        if (strcmp(pool->ep->server->name, server->name) != 0)
            continue;
        if ((sv = find_in(&pool->busy, pid)) || (sv = find_in(&pool->idle, pid)))
            return sv;
    }
    return NULL;
}
