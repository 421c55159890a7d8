/*
 * Global caps on server connections: max_db_connections and max_user_connections ([pglane]) and
 * max_connections ([server.NAME]), each counted across every lane and pool. A pool points at one
 * counter per kind (struct px_cap); px_server_set_state (proxy/state.c) keeps the counts, so they
 * move with the pools' lists and cannot drift. A pool that finds a cap full first closes an idle
 * connection of another pool under it; if there is none its clients wait in their own lane's queue
 * (queue_timeout applies), and the cap is marked starved: while it is, a connection that closes, or
 * that finishes with a transaction, goes to the pool under the cap whose queue waited longest.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

static _Thread_local int waking;   /* px_caps_released is not to hand out room (re-entered, or room being made) */

static const char *cap_name(const struct px_pool *pool, int k, char *buf, size_t n)
{
    switch (k) {
    case PX_CAP_DB:
        return pool->database;
    case PX_CAP_USER:
        return pool->user;
    case PX_CAP_LANE:
        /* The pools of one lane object (a reload's replacement is another) and (database, user). */
        snprintf(buf, n, "%p\x1f%s\x1f%s", (const void *)pool->lane, pool->database, pool->user);
        return buf;
    default:
        return pool->ep->server->name;
    }
}

int px_cap_limit(const struct px_pool *pool, int k)
{
    const struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);

    switch (k) {
    case PX_CAP_DB:
        return px->conf->max_db_connections;
    case PX_CAP_USER:
        return px->conf->max_user_connections;
    case PX_CAP_LANE:
        return px_lane_cap(pool->lane);
    default:
        return pool->ep->server->max_connections;
    }
}

int px_caps_attach(struct proxy *px, struct px_pool *pool)
{
    for (int k = 0; k < PX_CAP_KINDS; k++) {
        char buf[512];
        const char *name;
        struct px_cap *c;

        if (k == PX_CAP_LANE && pool->lane->neps < 2)
            continue;              /* one server: the pool's own size check is the lane's cap */
        name = cap_name(pool, k, buf, sizeof(buf));
        for (c = px->caps; c; c = c->next)
            if (c->kind == k && strcmp(c->name, name) == 0)
                break;
        if (!c) {
            if (!(c = calloc(1, sizeof(*c))) || !(c->name = strdup(name))) {
                free(c);
                px_caps_detach(px, pool);
                return -1;
            }
            if (px->workers) {
                /* One count per cap across workers: named by kind and name (a lane by its name, not
                 * by this worker's lane object). */
                char key[1024];

                if (k == PX_CAP_LANE)
                    snprintf(key, sizeof(key), "cap\x1f%d\x1f%s\x1f%s\x1f%s", k, pool->lane->conf->name,
                             pool->database, pool->user);
                else
                    snprintf(key, sizeof(key), "cap\x1f%d\x1f%s", k, name);
                if (!(c->g = px_gslot_named(px, key))) {
                    free(c->name);
                    free(c);
                    px_caps_detach(px, pool);
                    return -1;
                }
            }
            c->kind = k;
            c->next = px->caps;
            px->caps = c;
        }
        c->refs++;
        pool->cap[k] = c;
    }
    return 0;
}

void px_cap_unref(struct proxy *px, struct px_cap *c)
{
    struct px_cap **pp;

    if (!c || --c->refs > 0)
        return;
    for (pp = &px->caps; *pp != c; pp = &(*pp)->next)
        ;
    *pp = c->next;
    px_gslot_unref(px, c->g);
    free(c->name);
    free(c);
}

void px_caps_detach(struct proxy *px, struct px_pool *pool)
{
    for (int k = 0; k < PX_CAP_KINDS; k++) {
        struct px_cap *c = pool->cap[k];

        pool->cap[k] = NULL;
        px_cap_unref(px, c);
    }
}

static int full(const struct px_pool *pool, int k)
{
    int limit = px_cap_limit(pool, k);
    const struct px_cap *c = pool->cap[k];

    return limit > 0 && c && (c->g ? px_gslot_count_of(c->g) : c->n) >= limit;
}

/* starved: pool (NULL when it ends) found the cap full with clients waiting; other workers see since
 * when its queue head arrived. */
static void set_starved(struct proxy *px, struct px_cap *c, const struct px_pool *pool)
{
    uint64_t since = pool ? px_gslot_head(pool) : 0;

    c->starved = pool != NULL;
    if (c->g)
        px_gslot_set_waiting(px, c->g, since == UINT64_MAX ? 0 : since);
}

int px_caps_take(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    int k;

    for (k = 0; k < PX_CAP_KINDS; k++) {
        struct px_cap *c = pool->cap[k];
        int limit;

        if (!c || !c->g)
            continue;
        limit = px_cap_limit(pool, k);
        if (!px_gslot_acquire(c->g, limit > 0 ? limit : INT_MAX))
            break;
    }
    if (k == PX_CAP_KINDS)
        return 1;
    set_starved(px, pool->cap[k], pool);   /* full in another worker meanwhile */
    while (--k >= 0)
        if (pool->cap[k] && pool->cap[k]->g)
            px_gslot_release(px, pool->cap[k]->g);
    return 0;
}

void px_caps_put(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);

    for (int k = 0; k < PX_CAP_KINDS; k++)
        if (pool->cap[k] && pool->cap[k]->g)
            px_gslot_release(px, pool->cap[k]->g);
}

int px_caps_make_room(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    uint64_t mine = px_gslot_head(pool), since;

    for (int k = 0; k < PX_CAP_KINDS; k++)
        if (pool->cap[k] && pool->cap[k]->g && full(pool, k) &&
            (since = px_gslot_others_wait(px, pool->cap[k]->g, mine)) && px_gslot_claim(px, pool->cap[k]->g, since))
            return 1;
    return 0;
}

/* Closes the least recently used idle connection of another pool under pool's cap k: 1 if one was. */
static int evict_idle(struct proxy *px, struct px_pool *pool, int k)
{
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *p = px_container_of(it, struct px_pool, link);

        if (p != pool && p->cap[k] == pool->cap[k] && !px_list_empty(&p->idle)) {
            px_server_close(px_container_of(p->idle.prev, struct px_server, link),
                            "closed to make room for another pool under a connection cap");
            return 1;
        }
    }
    return 0;
}

int px_caps_room(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    int was = waking, ok = 1;

    waking = 1;   /* the room made here is pool's */
    for (int k = 0; k < PX_CAP_KINDS && ok; k++) {
        if (!full(pool, k))
            continue;
        /* A connection under the cap is closing already: its room comes when its backend has gone
         * (px_caps_released then), no other is closed meanwhile. */
        if (pool->cap[k]->nlinger == 0 && evict_idle(px, pool, k)) {
            /* Several workers: the room is being made for this queue head; the other workers, woken
             * when it is published as starved below, do not close one more for it. */
            if (pool->cap[k]->g && !px_list_empty(&pool->waiting))
                (void)px_gslot_claim(px, pool->cap[k]->g, px_gslot_head(pool));
            k = -1;   /* check every cap again */
            continue;
        }
        set_starved(px, pool->cap[k], pool);
        ok = 0;
    }
    waking = was;
    return ok;
}

static uint64_t head_since(const struct px_pool *pool)
{
    return px_container_of(pool->waiting.next, struct px_client, wait_link)->wait_start_ms;
}

/* The pool under starved cap c (pool->cap[k] == c), other than `except`, that wants a server and
 * whose queue head waited longest, or NULL. Clears c's flag when nobody under it wants one; with
 * several workers, publishes the head that waits now (a head served meanwhile is not waited for). */
static struct px_pool *longest_waiting_under(struct proxy *px, struct px_cap *c, int k, const struct px_pool *except)
{
    struct px_pool *best = NULL, *oldest = NULL;

    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *p = px_container_of(it, struct px_pool, link);

        if (p->cap[k] != c || !px_pool_wants_server(p))
            continue;
        if (!oldest || head_since(p) < head_since(oldest))
            oldest = p;
        if (p != except && (!best || head_since(p) < head_since(best)))
            best = p;
    }
    if (!oldest)
        set_starved(px, c, NULL);
    else if (c->g)
        set_starved(px, c, oldest);
    return best;
}

/* The pool under a starved cap of pool's (other than `except`) that wants a server and whose queue
 * head waited longest, or NULL. */
static struct px_pool *longest_waiting(struct proxy *px, struct px_pool *pool, const struct px_pool *except)
{
    struct px_pool *best = NULL;

    for (int k = 0; k < PX_CAP_KINDS; k++) {
        struct px_cap *c = pool->cap[k];
        struct px_pool *p;

        if (c && c->starved && (p = longest_waiting_under(px, c, k, except)) &&
            (!best || head_since(p) < head_since(best)))
            best = p;
    }
    return best;
}

void px_caps_refresh(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);

    for (int k = 0; k < PX_CAP_KINDS; k++)
        if (pool->cap[k] && pool->cap[k]->starved && pool->cap[k]->g)
            (void)longest_waiting_under(px, pool->cap[k], k, NULL);
}

int px_caps_yield(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    struct px_pool *other;

    if (px->exiting || !(other = longest_waiting(px, pool, pool)))
        return 0;
    return px_list_empty(&pool->waiting) || head_since(other) < head_since(pool);
}

void px_caps_released(struct px_pool *pool)
{
    struct proxy *px = uv_loop_get_data(pool->queue_timer.loop);
    struct px_pool *p;

    if (waking || px->exiting)
        return;
    waking = 1;   /* a connect that fails at once closes, which lands here again */
    /* Only where no cap is full: making room would close idle connections, and the caller may be
     * walking a pool's idle list. */
    if ((p = longest_waiting(px, pool, NULL)) && !full(p, PX_CAP_DB) && !full(p, PX_CAP_USER) &&
        !full(p, PX_CAP_SERVER) && !full(p, PX_CAP_LANE))
        px_pool_grow(p);
    waking = 0;
}
