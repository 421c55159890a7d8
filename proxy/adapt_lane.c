/*
 * The adaptive cap on the event loop: one timer (the shortest adapt_interval of the lanes with
 * protects) measures each protected lane's transaction p99 over the window since the last decision,
 * asks the controller (proxy/adapt.c) for the lane's effective size, logs a change with the p99 that
 * caused it, and applies it to the lane's pools. A lower size closes surplus idle connections at once
 * and busy ones as their transactions end (px_pool_server_ready); nothing is cancelled. A higher one
 * opens connections for the clients that wait.
 *
 * With several workers the effective size is one for the process: every worker publishes its
 * protected lane's transaction histogram at each tick (`shared` below), worker 0 alone decides on
 * their sum and on the connections the lane holds in every worker (its global slot), and the other
 * workers apply its decision when woken (PX_WORKERS_ADAPT, px_adapt_news).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

/* Several workers: one entry per adaptive lane name; every field under lock; entries are freed at
 * the process's end (px_adapt_shared_free). */
struct shared_adapt {
    char name[64];                     /* the adaptive lane */
    char prot[64];                     /* the lane it protects, whose histograms these are */
    struct px_hist tx[CONF_WORKERS_MAX];   /* worker w's histogram of that lane, as last published */
    uint64_t restarts;                 /* published histograms that started again (a reload) */
    int eff;                           /* worker 0's decision, 0 = none yet */
};

static struct {
    pthread_mutex_t lock;
    struct shared_adapt **a;
    int n;
} shared = { PTHREAD_MUTEX_INITIALIZER, NULL, 0 };

/* The entry of lane name (made if missing); under lock. NULL without memory. */
static struct shared_adapt *shared_find(const char *name)
{
    struct shared_adapt **grown, *x;

    for (int i = 0; i < shared.n; i++)
        if (strcmp(shared.a[i]->name, name) == 0)
            return shared.a[i];
    if (!(x = calloc(1, sizeof(*x))) || !(grown = realloc(shared.a, sizeof(*grown) * (size_t)(shared.n + 1)))) {
        free(x);
        return NULL;
    }
    snprintf(x->name, sizeof(x->name), "%s", name);
    shared.a = grown;
    shared.a[shared.n++] = x;
    return x;
}

void px_adapt_shared_free(void)
{
    pthread_mutex_lock(&shared.lock);
    for (int i = 0; i < shared.n; i++)
        free(shared.a[i]);
    free(shared.a);
    shared.a = NULL;
    shared.n = 0;
    pthread_mutex_unlock(&shared.lock);
}

/* This worker's histogram of the lane l protects is published; worker 0 gets the sum of every
 * worker's into *sum and the count of histograms that started again into *restarts (1), or nothing
 * (0: not worker 0, or no memory). */
static int publish(struct proxy *px, const struct px_lane *l, const struct px_lane *prot, struct px_hist *sum,
                   uint64_t *restarts)
{
    struct shared_adapt *x;
    int got = 0;

    pthread_mutex_lock(&shared.lock);
    if ((x = shared_find(l->conf->name)) != NULL) {
        if (strcmp(x->prot, prot->conf->name) != 0) {   /* new, or protects another lane since a reload */
            memset(x->tx, 0, sizeof(x->tx));
            snprintf(x->prot, sizeof(x->prot), "%s", prot->conf->name);
        }
        if (prot->stats.tx.count < x->tx[px->worker_id].count)
            x->restarts++;             /* a window spanning it would subtract more than it adds */
        x->tx[px->worker_id] = prot->stats.tx;
        *restarts = x->restarts;
        if (px->worker_id == 0 && sum) {
            memset(sum, 0, sizeof(*sum));
            for (int w = 0; w < px_workers_count(px->workers); w++)
                px_hist_merge(sum, &x->tx[w]);
            got = 1;
        }
    }
    pthread_mutex_unlock(&shared.lock);
    return got;
}

int px_lane_cap(const struct px_lane *l)
{
    return l->eff_size > 0 && l->eff_size < l->size ? l->eff_size : l->size;
}

static int adaptive(const struct px_lane *l)
{
    return !l->retired && l->conf->protects_lane >= 0;
}

static struct px_adapt_params params(const struct px_lane *l)
{
    return (struct px_adapt_params){ .size = l->size, .min_size = l->conf->min_size,
                                     .target_us = (uint64_t)l->conf->target_p99_ms * 1000,
                                     .min_samples = (uint64_t)l->conf->adapt_min_samples };
}

/* The connections the lane's fullest pool holds (with several workers: in every worker, its slot). */
static int held(struct proxy *px, const struct px_lane *l)
{
    int most = 0;

    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        const struct px_pool *pool = px_container_of(it, struct px_pool, link);
        int n = pool->g ? px_gslot_count(pool) : pool->nidle + pool->nbusy;

        if (pool->lane == l && n > most)
            most = n;
    }
    return most;
}

/* The lane's pools follow a new effective size. */
static void apply(struct proxy *px, struct px_lane *l, int was)
{
    int cap = px_lane_cap(l);

    for (struct px_list *it = px->pools.next, *next; it != &px->pools; it = next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        next = it->next;
        if (pool->lane != l)
            continue;
        while (cap < was && (pool->g ? px_gslot_count(pool) : pool->nidle + pool->nbusy) > cap &&
               !px_list_empty(&pool->idle))
            px_server_close(px_container_of(pool->idle.prev, struct px_server, link),
                            "adaptive cap: lane's effective size lowered");
        for (int k = was; k < cap; k++)
            px_pool_refill(pool);
    }
}

static void set_eff(struct proxy *px, struct px_lane *l, int eff)
{
    int was = px_lane_cap(l);

    l->eff_size = eff;
    if (px_lane_cap(l) != was)
        apply(px, l, was);
}

static void decide(struct proxy *px, struct px_lane *l, uint64_t now)
{
    const struct px_lane *prot = px->lanes[l->conf->protects_lane];
    struct px_adapt_params p = params(l);
    enum px_adapt_verdict v;
    uint64_t p99, n;
    int was = l->adapt.eff;
    struct px_hist all;
    const struct px_hist *tx = &prot->stats.tx;
    uint64_t restarts = 0;

    l->adapt_last_ms = now;
    if (px->workers) {
        if (!publish(px, l, prot, &all, &restarts))
            return;                     /* worker 0 decides for every worker */
        tx = &all;
    }
    if (l->adapt_of != prot || restarts != l->adapt_restarts) {
        /* First window, or the protected lane was replaced by a reload (here or, with several
         * workers, in another: its histogram started again). */
        l->adapt_of = prot;
        l->adapt_base = *tx;
        l->adapt_windows = 0;
        l->adapt_restarts = restarts;
        return;
    }
    p99 = px_hist_delta_percentile(tx, &l->adapt_base, 99, &n);
    v = px_adapt_step(&l->adapt, &p, p99, n, held(px, l));
    if (v != PX_ADAPT_FEW_SAMPLES || ++l->adapt_windows >= PX_ADAPT_MAX_WINDOWS) {
        l->adapt_base = *tx;
        l->adapt_windows = 0;
    }
    px_log(CONF_LOG_DEBUG, "lane %s: adaptive cap: %s at %d: lane %s p99 %.1f ms over %llu transactions",
           l->conf->name, px_adapt_verdict_name(v), l->adapt.eff, prot->conf->name, (double)p99 / 1000.0,
           (unsigned long long)n);
    if (l->adapt.eff == was)
        return;
    px_info("lane %s: effective size %d -> %d: lane %s p99 %.1f ms over %llu transactions, target_p99 %lld ms",
            l->conf->name, was, l->adapt.eff, prot->conf->name, (double)p99 / 1000.0, (unsigned long long)n,
            (long long)l->conf->target_p99_ms);
    set_eff(px, l, l->adapt.eff);
    if (px->workers) {
        struct shared_adapt *x;

        pthread_mutex_lock(&shared.lock);
        if ((x = shared_find(l->conf->name)) != NULL)
            x->eff = l->adapt.eff;
        pthread_mutex_unlock(&shared.lock);
        px_workers_ask(px, PX_WORKERS_ADAPT, NULL);
    }
}

void px_adapt_news(struct proxy *px)
{
    for (int i = 0; i < px->nlanes; i++) {
        struct px_lane *l = px->lanes[i];
        struct shared_adapt *x;
        int eff = 0;

        if (!adaptive(l))
            continue;
        pthread_mutex_lock(&shared.lock);
        if ((x = shared_find(l->conf->name)) != NULL)
            eff = x->eff;
        pthread_mutex_unlock(&shared.lock);
        if (eff < l->conf->min_size || eff > l->size || eff == l->adapt.eff)
            continue;                  /* none yet, or decided under other bounds (a reload in between) */
        l->adapt.eff = eff;
        set_eff(px, l, eff);
    }
}

static void on_adapt(uv_timer_t *t)
{
    struct proxy *px = t->data;
    uint64_t now = px_now_ms(px);

    if (px->exiting)
        return;
    for (int i = 0; i < px->nlanes; i++) {
        struct px_lane *l = px->lanes[i];

        /* Half a period early counts as due: the timer's own jitter must not skip a window. */
        if (adaptive(l) && now + px->adapt_period_ms / 2 >= l->adapt_last_ms + (uint64_t)l->conf->adapt_interval_ms)
            decide(px, l, now);
    }
}

void px_adapt_configure(struct proxy *px)
{
    uint64_t period = 0;

    for (int i = 0; i < px->nlanes; i++) {
        struct px_lane *l = px->lanes[i];
        struct px_adapt_params p = params(l);
        int was;

        if (!adaptive(l)) {
            memset(&l->adapt, 0, sizeof(l->adapt));
            l->adapt_of = NULL;
            set_eff(px, l, l->size);
            continue;
        }
        if (period == 0 || (uint64_t)l->conf->adapt_interval_ms < period)
            period = (uint64_t)l->conf->adapt_interval_ms;
        if (l->adapt.eff == 0) {
            px_adapt_init(&l->adapt, &p);
            l->adapt_of = NULL;               /* the first tick starts the first window */
            l->adapt_last_ms = 0;
            set_eff(px, l, l->adapt.eff);
            continue;
        }
        was = l->adapt.eff;                   /* a reload: kept if still within min_size..size */
        px_adapt_bounds(&l->adapt, &p);
        if (l->adapt.eff != was && (!px->workers || px->worker_id == 0))   /* one line for the process */
            px_info("lane %s: effective size %d -> %d: reload set min_size %d, size %d", l->conf->name, was,
                    l->adapt.eff, p.min_size, p.size);
        set_eff(px, l, l->adapt.eff);
    }
    if (!px->adapt_timer.loop)                /* no event loop (the --route dry run) */
        return;
    if (period != px->adapt_period_ms) {
        if (px->adapt_period_ms)
            uv_timer_stop(&px->adapt_timer);
        px->adapt_period_ms = period;
        if (period)
            uv_timer_start(&px->adapt_timer, on_adapt, period, period);
    }
}
