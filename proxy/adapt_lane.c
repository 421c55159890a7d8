/*
 * The adaptive cap on the event loop: one timer (the shortest adapt_interval of the lanes with
 * protects) measures each protected lane's transaction p99 over the window since the last decision,
 * asks the controller (proxy/adapt.c) for the lane's effective size, logs a change with the p99 that
 * caused it, and applies it to the lane's pools. A lower size closes surplus idle connections at once
 * and busy ones as their transactions end (px_pool_server_ready); nothing is cancelled. A higher one
 * opens connections for the clients that wait.
 */
#include <stdio.h>
#include <string.h>

#include "proxy/proxy.h"

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

/* The connections the lane's fullest pool holds. */
static int held(struct proxy *px, const struct px_lane *l)
{
    int most = 0;

    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        const struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (pool->lane == l && pool->nidle + pool->nbusy > most)
            most = pool->nidle + pool->nbusy;
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
        while (cap < was && pool->nidle + pool->nbusy > cap && !px_list_empty(&pool->idle))
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

    l->adapt_last_ms = now;
    if (l->adapt_of != prot) {          /* first window, or the protected lane was replaced by a reload */
        l->adapt_of = prot;
        l->adapt_base = prot->stats.tx;
        l->adapt_windows = 0;
        return;
    }
    p99 = px_hist_delta_percentile(&prot->stats.tx, &l->adapt_base, 99, &n);
    v = px_adapt_step(&l->adapt, &p, p99, n, held(px, l));
    if (v != PX_ADAPT_FEW_SAMPLES || ++l->adapt_windows >= PX_ADAPT_MAX_WINDOWS) {
        l->adapt_base = prot->stats.tx;
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
        if (l->adapt.eff != was)
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
