/*
 * The adaptive cap's controller: AIMD with a remembered ceiling (the policy is described in
 * proxy/adapt.h). Pure code, driven by proxy/adapt_lane.c and by tests/unit/test_proxy_adapt.c.
 */
#include <string.h>

#include "proxy/adapt.h"
#include "proxy/admin/stats.h"

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void px_adapt_init(struct px_adapt *a, const struct px_adapt_params *p)
{
    memset(a, 0, sizeof(*a));
    a->eff = p->size;
    a->probe_wait = PX_ADAPT_PROBE_FIRST;
}

void px_adapt_bounds(struct px_adapt *a, const struct px_adapt_params *p)
{
    a->eff = clamp(a->eff, p->min_size, p->size);
    if (a->ceiling > p->size)
        a->ceiling = 0;
    if (a->probe_wait < 1)
        a->probe_wait = PX_ADAPT_PROBE_FIRST;
}

static enum px_adapt_verdict decrease(struct px_adapt *a, const struct px_adapt_params *p)
{
    int was = a->eff;

    if (a->stepped) {
        /* The +1 step missed: undo it; the next try at that size waits longer if it failed before. */
        a->probe_wait = a->ceiling == was ? a->probe_wait * 2 : PX_ADAPT_PROBE_FIRST;
        if (a->probe_wait > PX_ADAPT_PROBE_MAX)
            a->probe_wait = PX_ADAPT_PROBE_MAX;
        a->eff = was - 1;
    } else {
        a->probe_wait = PX_ADAPT_PROBE_FIRST;
        a->eff = was * 7 / 10;
    }
    a->stepped = 0;
    a->eff = clamp(a->eff, p->min_size, p->size);
    if (a->eff == was)
        return PX_ADAPT_HOLD;   /* at min_size already */
    a->ceiling = was;
    return PX_ADAPT_DOWN;
}

enum px_adapt_verdict px_adapt_step(struct px_adapt *a, const struct px_adapt_params *p, uint64_t p99_us,
                                    uint64_t samples, int held)
{
    int need;

    px_adapt_bounds(a, p);
    if (held > a->eff) {
        a->settling = 1;
        return PX_ADAPT_SETTLING;
    }
    if (a->settling) {          /* this window still saw the drain: judge the next one */
        a->settling = 0;
        return PX_ADAPT_SETTLING;
    }
    if (samples < p->min_samples)
        return PX_ADAPT_FEW_SAMPLES;
    if (p99_us > p->target_us) {
        enum px_adapt_verdict v = decrease(a, p);

        a->good = 0;
        a->settling = held > a->eff;   /* the next window sees the drain */
        return v;
    }
    a->stepped = 0;
    if (a->ceiling && a->eff >= a->ceiling) {   /* a try at the ceiling held: forget it */
        a->ceiling = 0;
        a->probe_wait = PX_ADAPT_PROBE_FIRST;
    }
    if (a->eff >= p->size) {
        a->good = 0;
        return PX_ADAPT_HOLD;
    }
    a->good++;
    need = a->ceiling && a->eff + 1 >= a->ceiling ? a->probe_wait : PX_ADAPT_UP_WINDOWS;
    if (a->good < need)
        return PX_ADAPT_HOLD;
    a->good = 0;
    a->eff++;
    a->stepped = 1;
    return PX_ADAPT_UP;
}

const char *px_adapt_verdict_name(enum px_adapt_verdict v)
{
    static const char *const names[] = { "hold", "few samples", "settling", "down", "up" };

    return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}

uint64_t px_hist_delta_percentile(const struct px_hist *now, const struct px_hist *base, double pct,
                                  uint64_t *count)
{
    struct px_hist d;
    int top = -1;

    memset(&d, 0, sizeof(d));
    for (unsigned i = 0; i < PX_HIST_BUCKETS; i++) {
        d.b[i] = now->b[i] >= base->b[i] ? now->b[i] - base->b[i] : 0;
        d.count += d.b[i];
        if (d.b[i])
            top = (int)i;
    }
    *count = d.count;
    if (top < 0)
        return 0;
    d.max_us = px_hist_upper((unsigned)top) < now->max_us ? px_hist_upper((unsigned)top) : now->max_us;
    return px_hist_percentile(&d, pct);
}
