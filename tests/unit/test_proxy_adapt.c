/*
 * The adaptive cap's controller (proxy/adapt.c) against a simulated plant: the protected lane's p99
 * grows with the analytics lane's concurrency, p99 = base + k * max(0, n - cores), with +-3% noise;
 * analytics transactions last several windows and are never cancelled, so a decrease takes effect
 * only as they finish. Also measured here: plain AIMD (no ceiling) on the same plant, the reason the
 * controller remembers its ceiling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/adapt.h"
#include "proxy/admin/stats.h"

#define MAXJOBS 64

struct plant {
    int cores;
    double base_ms, k_ms;
    int demand;            /* analytics transactions that want to run at once */
    int job_windows;       /* how long one lasts */
    uint64_t samples;      /* protected transactions per window */
    int jobs[MAXJOBS];     /* remaining windows of each running analytics transaction */
    int njobs;
    uint32_t rng;
    int started;           /* for staggering the first jobs */
};

static double noise(struct plant *pl)
{
    pl->rng = pl->rng * 1664525u + 1013904223u;
    return 0.97 + 0.06 * (double)(pl->rng >> 8) / (double)(1u << 24);
}

static double plant_p99_ms(const struct plant *pl, int n)
{
    return pl->base_ms + pl->k_ms * (n > pl->cores ? n - pl->cores : 0);
}

/* One window at cap eff: starts what the cap and the demand allow, measures, lets time pass.
 * Returns the window's p99 (us); *held = connections still held at the end. */
static uint64_t plant_window(struct plant *pl, int eff, int *held)
{
    int want = eff < pl->demand ? eff : pl->demand;
    double p99;
    int k = 0;

    while (pl->njobs < want && pl->njobs < MAXJOBS)   /* staggered: not all finish in the same window */
        pl->jobs[pl->njobs++] = 1 + (pl->started++ % pl->job_windows);
    p99 = plant_p99_ms(pl, pl->njobs) * noise(pl);
    for (int i = 0; i < pl->njobs; i++)
        if (--pl->jobs[i] > 0)
            pl->jobs[k++] = pl->jobs[i];
    pl->njobs = k;
    *held = pl->njobs;
    return (uint64_t)(p99 * 1000.0);
}

static struct plant plant(int cores, double base_ms, double k_ms, int demand)
{
    return (struct plant){ .cores = cores, .base_ms = base_ms, .k_ms = k_ms, .demand = demand,
                           .job_windows = 3, .samples = 200, .rng = 12345 };
}

/* The largest size whose p99 (with the worst noise) keeps the target, within [min, size]. */
static int best_size(const struct plant *pl, const struct px_adapt_params *p)
{
    int best = p->min_size;

    for (int n = p->min_size; n <= p->size; n++)
        if (plant_p99_ms(pl, n) * 1.03 * 1000.0 <= (double)p->target_us)
            best = n;
    return best;
}

struct run {
    int lo, hi;            /* range of eff over the steady-state windows */
    int at_best;           /* steady-state windows at the best size */
    int over;              /* steady-state windows over target */
    double mean;           /* mean eff (the analytics lane's throughput) */
};

/* Runs `windows` windows, the last `steady` of them measured. */
static struct run simulate(struct plant *pl, struct px_adapt *a, const struct px_adapt_params *p,
                           int windows, int steady, int best)
{
    struct run r = { .lo = 1 << 30, .hi = -1 };
    int held;

    for (int w = 0; w < windows; w++) {
        uint64_t p99 = plant_window(pl, a->eff, &held);

        if (w >= windows - steady) {
            r.lo = a->eff < r.lo ? a->eff : r.lo;
            r.hi = a->eff > r.hi ? a->eff : r.hi;
            r.at_best += a->eff == best;
            r.over += p99 > p->target_us;
            r.mean += a->eff;
        }
        (void)px_adapt_step(a, p, p99, pl->samples, held);
        assert_true(a->eff >= p->min_size && a->eff <= p->size);
    }
    r.mean /= steady;
    return r;
}

/* p99 = 5 + 4 (n - 2) ms, target 26 ms: 7 connections keep it (25 ms), 8 do not (29 ms). */
static void test_converges_to_largest_good_size(void **state)
{
    struct px_adapt_params p = { .size = 10, .min_size = 1, .target_us = 26000, .min_samples = 20 };
    struct plant pl = plant(2, 5, 4, 10);
    struct px_adapt a;
    struct run r;

    (void)state;
    px_adapt_init(&a, &p);
    assert_int_equal(a.eff, 10);
    assert_int_equal(best_size(&pl, &p), 7);
    r = simulate(&pl, &a, &p, 600, 450, 7);
    /* No oscillation of more than one step: 7, with an occasional try at 8. */
    assert_int_equal(r.lo, 7);
    assert_true(r.hi <= 8);
    assert_true(r.at_best >= 450 * 9 / 10);
    assert_true(r.over <= 450 / 10);
}

/* Many plants: steady state within one step above the best size, mostly at it. */
static void test_converges_across_plants(void **state)
{
    static const int cores[] = { 1, 2, 4 };
    static const double ks[] = { 1, 2.5, 6, 15 };
    static const int mins[] = { 1, 3 };

    (void)state;
    for (size_t c = 0; c < sizeof(cores) / sizeof(cores[0]); c++)
        for (size_t k = 0; k < sizeof(ks) / sizeof(ks[0]); k++)
            for (size_t m = 0; m < sizeof(mins) / sizeof(mins[0]); m++) {
                struct px_adapt_params p = { .size = 16, .min_size = mins[m], .target_us = 30000,
                                             .min_samples = 20 };
                struct plant pl = plant(cores[c], 4, ks[k], 16);
                int best = best_size(&pl, &p);
                struct px_adapt a;
                struct run r;

                px_adapt_init(&a, &p);
                r = simulate(&pl, &a, &p, 900, 600, best);
                if (r.lo != best || r.hi > best + 1 || r.at_best < 600 * 85 / 100)
                    fail_msg("cores %d k %.1f min %d: best %d, steady %d..%d, %d/600 at best", cores[c],
                             ks[k], mins[m], best, r.lo, r.hi, r.at_best);
            }
}

/* Plain AIMD (x0.7 on a miss, +1 after 3 good windows, nothing remembered) on the same plant:
 * measured to saw between 0.7 x 8 and 8, more than one step, and to miss the target more often. */
static void test_plain_aimd_saws(void **state)
{
    struct px_adapt_params p = { .size = 10, .min_size = 1, .target_us = 26000, .min_samples = 20 };
    struct plant pl = plant(2, 5, 4, 10), pl2 = plant(2, 5, 4, 10);
    struct px_adapt a;
    struct run ours;
    int eff = 10, good = 0, lo = 100, hi = 0, over = 0, held;
    double mean = 0;

    (void)state;
    for (int w = 0; w < 600; w++) {
        uint64_t p99 = plant_window(&pl2, eff, &held);

        if (w >= 150) {
            lo = eff < lo ? eff : lo;
            hi = eff > hi ? eff : hi;
            over += p99 > p.target_us;
            mean += eff;
        }
        if (held > eff)
            continue;                  /* the same settling rule, to compare only the policy */
        if (p99 > p.target_us) {
            eff = eff * 7 / 10 < 1 ? 1 : eff * 7 / 10;
            good = 0;
        } else if (++good >= PX_ADAPT_UP_WINDOWS && eff < p.size) {
            eff++;
            good = 0;
        }
    }
    px_adapt_init(&a, &p);
    ours = simulate(&pl, &a, &p, 600, 450, 7);
    print_message("plant p99 = 5 + 4 (n - 2) ms, target 26 ms, best size 7\n"
                  "  plain AIMD:        steady %d..%d, mean %.2f, %d/450 windows over target\n"
                  "  AIMD with ceiling: steady %d..%d, mean %.2f, %d/450 windows over target\n",
                  lo, hi, mean / 450, over, ours.lo, ours.hi, ours.mean, ours.over);
    assert_true(hi - lo >= 2);
    assert_true(ours.hi - ours.lo <= 1);
    assert_true(ours.over < over);
    assert_true(ours.mean >= mean / 450);
}

/* After the load drops, the effective size climbs back to size, and stays. */
static void test_recovers_after_load_drops(void **state)
{
    struct px_adapt_params p = { .size = 10, .min_size = 1, .target_us = 26000, .min_samples = 20 };
    struct plant pl = plant(2, 5, 4, 10);
    struct px_adapt a;
    struct run r;
    int w, held;

    (void)state;
    px_adapt_init(&a, &p);
    (void)simulate(&pl, &a, &p, 600, 100, 7);
    assert_true(a.eff <= 8);
    pl.k_ms = 0;                      /* the analytics load became light */
    for (w = 0; w < 200 && a.eff < p.size; w++)
        (void)px_adapt_step(&a, &p, plant_window(&pl, a.eff, &held), pl.samples, held);
    /* At most one wait for the try at the ceiling, then +1 per PX_ADAPT_UP_WINDOWS. */
    assert_int_equal(a.eff, 10);
    assert_true(w <= PX_ADAPT_PROBE_MAX + 1 + PX_ADAPT_UP_WINDOWS * 3);
    r = simulate(&pl, &a, &p, 100, 100, 10);
    assert_int_equal(r.lo, 10);

    /* Or the analytics clients went away altogether. */
    pl.k_ms = 4;
    (void)simulate(&pl, &a, &p, 300, 10, 7);
    assert_true(a.eff < 10);
    pl.demand = 0;
    for (w = 0; w < 200 && a.eff < p.size; w++)
        (void)px_adapt_step(&a, &p, plant_window(&pl, a.eff, &held), pl.samples, held);
    assert_int_equal(a.eff, 10);
}

/* Too few protected transactions in a window: no decision either way, and nothing counted. */
static void test_holds_on_few_samples(void **state)
{
    struct px_adapt_params p = { .size = 8, .min_size = 1, .target_us = 10000, .min_samples = 20 };
    struct px_adapt a;

    (void)state;
    px_adapt_init(&a, &p);
    for (int i = 0; i < 100; i++)
        assert_int_equal(px_adapt_step(&a, &p, 900000, 19, 0), PX_ADAPT_FEW_SAMPLES);
    assert_int_equal(a.eff, 8);
    assert_int_equal(px_adapt_step(&a, &p, 900000, 20, 0), PX_ADAPT_DOWN);
    assert_int_equal(a.eff, 5);
    for (int i = 0; i < 100; i++)
        assert_int_equal(px_adapt_step(&a, &p, 1000, 0, 0), PX_ADAPT_FEW_SAMPLES);
    assert_int_equal(a.eff, 5);
    assert_int_equal(a.good, 0);
    /* Enough samples again: the usual PX_ADAPT_UP_WINDOWS good windows before +1. */
    for (int i = 1; i < PX_ADAPT_UP_WINDOWS; i++)
        assert_int_equal(px_adapt_step(&a, &p, 1000, 50, 0), PX_ADAPT_HOLD);
    assert_int_equal(px_adapt_step(&a, &p, 1000, 50, 0), PX_ADAPT_UP);
    assert_int_equal(a.eff, 6);
}

/* A decrease takes effect as running transactions finish; until then no further decision. */
static void test_settles_before_judging(void **state)
{
    struct px_adapt_params p = { .size = 10, .min_size = 1, .target_us = 10000, .min_samples = 20 };
    struct plant pl = plant(2, 5, 4, 10);
    struct px_adapt a;
    int downs = 0, held = 0;

    (void)state;
    px_adapt_init(&a, &p);
    assert_int_equal(px_adapt_step(&a, &p, 50000, 100, 10), PX_ADAPT_DOWN);
    assert_int_equal(a.eff, 7);
    assert_int_equal(px_adapt_step(&a, &p, 50000, 100, 10), PX_ADAPT_SETTLING);
    assert_int_equal(px_adapt_step(&a, &p, 50000, 100, 8), PX_ADAPT_SETTLING);
    assert_int_equal(a.eff, 7);
    /* Down to 7 during this window: it is not judged; the next one is. */
    assert_int_equal(px_adapt_step(&a, &p, 50000, 100, 7), PX_ADAPT_SETTLING);
    assert_int_equal(a.eff, 7);
    assert_int_equal(px_adapt_step(&a, &p, 50000, 100, 7), PX_ADAPT_DOWN);
    assert_int_equal(a.eff, 4);

    /* On the plant with long transactions (20 windows): each decrease waits for the drain. */
    pl.job_windows = 20;
    px_adapt_init(&a, &p);
    for (int w = 0; w < 200; w++) {
        int was = a.eff, before = held;
        uint64_t p99 = plant_window(&pl, a.eff, &held);

        (void)before;
        if (px_adapt_step(&a, &p, p99, pl.samples, held) == PX_ADAPT_DOWN) {
            downs++;
            assert_true(held <= was);
        }
    }
    /* 10 -> 7 -> 4 -> 2 (p99 at 2 is 5 ms); never below the best size 3 by more than the x0.7 step. */
    assert_true(a.eff >= 2 && a.eff <= 4);
    assert_true(downs >= 3);
}

/* min_size is a floor even when no size meets the target; a reload keeps eff within new bounds. */
static void test_bounds(void **state)
{
    struct px_adapt_params p = { .size = 10, .min_size = 3, .target_us = 2000, .min_samples = 20 };
    struct plant pl = plant(2, 5, 4, 10);   /* 5 ms > 2 ms whatever the size */
    struct px_adapt a;
    struct run r;

    (void)state;
    px_adapt_init(&a, &p);
    r = simulate(&pl, &a, &p, 200, 150, 3);
    assert_int_equal(r.lo, 3);
    assert_int_equal(r.hi, 3);

    a.eff = 5;
    p.size = 4;
    px_adapt_bounds(&a, &p);
    assert_int_equal(a.eff, 4);
    p.size = 20;
    px_adapt_bounds(&a, &p);
    assert_int_equal(a.eff, 4);         /* kept: still within bounds */
    p.min_size = 6;
    px_adapt_bounds(&a, &p);
    assert_int_equal(a.eff, 6);
    /* A target that every size meets: the lane never shrinks. */
    p = (struct px_adapt_params){ .size = 10, .min_size = 1, .target_us = 1000000, .min_samples = 20 };
    px_adapt_init(&a, &p);
    r = simulate(&pl, &a, &p, 200, 200, 10);
    assert_int_equal(r.lo, 10);
}

static void test_delta_percentile(void **state)
{
    static struct px_hist base, now;
    uint64_t n, v;

    (void)state;
    for (int i = 0; i < 1000; i++)
        px_hist_add(&now, 100000);        /* an old 100 ms era */
    base = now;
    assert_int_equal(px_hist_delta_percentile(&now, &base, 99, &n), 0);
    assert_int_equal(n, 0);
    for (int i = 0; i < 99; i++)
        px_hist_add(&now, 1000);
    px_hist_add(&now, 20000);
    v = px_hist_delta_percentile(&now, &base, 99, &n);
    assert_int_equal(n, 100);
    assert_true(v >= 1000 && v <= 1250);  /* the 99th of 100 values: 1 ms, not the old 100 ms */
    v = px_hist_delta_percentile(&now, &base, 100, &n);
    assert_true(v >= 20000 && v <= 25000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_converges_to_largest_good_size),
        cmocka_unit_test(test_converges_across_plants),
        cmocka_unit_test(test_plain_aimd_saws),
        cmocka_unit_test(test_recovers_after_load_drops),
        cmocka_unit_test(test_holds_on_few_samples),
        cmocka_unit_test(test_settles_before_judging),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_delta_percentile),
    };

    return cmocka_run_group_tests_name("unit: proxy/adapt.c (adaptive cap controller)", tests, NULL, NULL);
}
