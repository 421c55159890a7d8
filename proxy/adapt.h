/*
 * proxy/adapt.h — the adaptive cap's controller (proxy/adapt.c), pure code: no libuv, no lanes.
 *
 * A lane with `protects = P` and `target_p99 = T` gets an effective size between min_size and size.
 * Once per adapt_interval the controller is given P's transaction p99 over the window, the number
 * of P's transactions in it, and how many connections this lane's fullest pool still holds; it
 * answers with the new effective size.
 *
 * The policy is AIMD with a remembered ceiling:
 *  - too few samples (fewer than adapt_min_samples): hold; the window keeps growing (proxy/adapt_lane.c);
 *  - the lane still holds more connections than its effective size (a decrease not yet in effect:
 *    running transactions are never cancelled): hold, the p99 seen is not yet that of the new size,
 *    and the window in which the lane came down to its size is not judged either;
 *  - p99 over target: multiplicative decrease to floor(0.7 x size), and the size that missed is
 *    remembered as the ceiling; but when the window right after a +1 step misses, only that step
 *    is undone (the step is what missed) and the next try at the ceiling waits twice as long;
 *  - p99 under target for PX_ADAPT_UP_WINDOWS windows in a row: +1; a step up to the ceiling waits
 *    for `probe_wait` good windows instead (PX_ADAPT_PROBE_FIRST, doubling on each failed try up to
 *    PX_ADAPT_PROBE_MAX). A try that holds clears the ceiling.
 * Plain AIMD saws between the largest good size and 0.7 of the first bad one; the ceiling keeps the
 * steady state within one step of the largest size that meets the target (tests/unit/test_proxy_adapt.c
 * measures both on a simulated plant).
 */
#ifndef PGLANE_PROXY_ADAPT_H
#define PGLANE_PROXY_ADAPT_H

#include <stdint.h>

#define PX_ADAPT_UP_WINDOWS 3      /* good windows in a row before +1 */
#define PX_ADAPT_PROBE_FIRST 6     /* good windows before the first try at the ceiling */
#define PX_ADAPT_PROBE_MAX 48      /* at most this many between tries */
#define PX_ADAPT_MAX_WINDOWS 10    /* a window with too few samples grows to this many intervals */

struct px_adapt_params {
    int size, min_size;
    uint64_t target_us;
    uint64_t min_samples;
};

struct px_adapt {
    int eff;          /* the effective size */
    int good;         /* good windows in a row */
    int ceiling;      /* the smallest size seen over target since the last successful try; 0: none */
    int probe_wait;   /* good windows needed before stepping up to the ceiling */
    int stepped;      /* the last decision was +1 and no window has judged it yet */
    int settling;     /* the last window found the lane above eff: the next one is not judged either */
};

enum px_adapt_verdict {
    PX_ADAPT_HOLD,          /* a judged window, no change (under target, or at min_size / size) */
    PX_ADAPT_FEW_SAMPLES,   /* fewer than min_samples: no judgement */
    PX_ADAPT_SETTLING,      /* the lane still holds more than eff: no judgement */
    PX_ADAPT_DOWN,
    PX_ADAPT_UP,
};

/* Starts at size. */
void px_adapt_init(struct px_adapt *a, const struct px_adapt_params *p);
/* New bounds (a reload): the effective size is kept if it is still within them, else clamped. */
void px_adapt_bounds(struct px_adapt *a, const struct px_adapt_params *p);
/* One window: p99_us and samples of the protected lane, held = the connections this lane's fullest
 * pool holds. Updates a->eff and says why. The caller starts a new window after every verdict but
 * PX_ADAPT_FEW_SAMPLES (that window goes on collecting, up to PX_ADAPT_MAX_WINDOWS intervals). */
enum px_adapt_verdict px_adapt_step(struct px_adapt *a, const struct px_adapt_params *p, uint64_t p99_us,
                                    uint64_t samples, int held);
const char *px_adapt_verdict_name(enum px_adapt_verdict v);

/* The pct-th percentile of what histogram `now` recorded since the copy `base` was taken, and how
 * many values that was (*count). 0 when nothing was recorded. */
struct px_hist;
uint64_t px_hist_delta_percentile(const struct px_hist *now, const struct px_hist *base, double pct,
                                  uint64_t *count);

#endif
