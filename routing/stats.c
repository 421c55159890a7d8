/* Learned statistics per fingerprint: calls, total, max and a log-bucket histogram (buckets at
 * powers of 2^(1/4) microseconds) for percentiles; bounded by an LRU. Integer-only, no libm. */
#include "routing/route.h"
#include "routing/internal.h"

#include <stdlib.h>
#include <string.h>

#define N_BUCKETS 128           /* bucket 127 starts at 2^(127/4) us, about 59 minutes */
#define MAX_US    (1ULL << 40)  /* durations are clamped here before bucketing */

/* 2^(q/4) in 16.16 fixed point, q = 0..3. */
static const uint32_t quarter_q16[4] = {65536, 77936, 92682, 110218};

struct slot {
    struct route_stat_entry e;
    uint64_t min_us;
    uint32_t hist[N_BUCKETS];
};

struct route_stats {
    struct route_lru lru;
    struct slot *slots;
};

static unsigned bucket_of(uint64_t us)
{
    if (us > MAX_US)
        us = MAX_US;
    if (us < 1)
        return 0;
    unsigned e = 63u - (unsigned)__builtin_clzll(us);
    unsigned q = 0;
    while (q < 3 && (us << 16) >= ((uint64_t)quarter_q16[q + 1] << e))
        q++;
    unsigned b = 4 * e + q;
    return b < N_BUCKETS ? b : N_BUCKETS - 1;
}

/* 2^(k/4) microseconds, rounded up: the lower bound of bucket k. */
static uint64_t bucket_floor(unsigned k)
{
    return (((uint64_t)quarter_q16[k % 4] << (k / 4)) + 65535) >> 16;
}

struct route_stats *route_stats_new(size_t capacity)
{
    struct route_stats *stats = calloc(1, sizeof *stats);

    if (!stats || route_lru_init(&stats->lru, capacity, sizeof *stats->slots) < 0) {
        free(stats);
        return NULL;
    }
    stats->slots = stats->lru.values;
    return stats;
}

void route_stats_free(struct route_stats *stats)
{
    if (!stats)
        return;
    route_lru_destroy(&stats->lru);
    free(stats);
}

/* Halves every bucket when one would overflow, keeping the shape of the distribution. */
static void hist_add(struct slot *s, unsigned b)
{
    if (s->hist[b] == UINT32_MAX)
        for (unsigned k = 0; k < N_BUCKETS; k++)
            s->hist[k] = (s->hist[k] + 1) / 2;
    s->hist[b]++;
}

void route_stats_record(struct route_stats *stats, uint64_t fp, uint64_t duration_us, int lane,
                        const char *text, size_t text_len)
{
    bool fresh;
    struct slot *s = &stats->slots[route_lru_insert(&stats->lru, fp, &fresh)];
    if (fresh) {
        memset(s, 0, sizeof *s);
        s->e.fingerprint = fp;
        s->min_us = UINT64_MAX;
    }
    if (text && s->e.text[0] == '\0') {
        size_t n = text_len < ROUTE_STATS_TEXT_MAX - 1 ? text_len : ROUTE_STATS_TEXT_MAX - 1;
        memcpy(s->e.text, text, n);
        s->e.text[n] = '\0';
    }
    s->e.calls++;
    s->e.total_us += duration_us;
    if (duration_us > s->e.max_us)
        s->e.max_us = duration_us;
    if (duration_us < s->min_us)
        s->min_us = duration_us;
    s->e.lane = lane;
    hist_add(s, bucket_of(duration_us));
}

bool route_stats_get(const struct route_stats *stats, uint64_t fp, struct route_stat_entry *out)
{
    long i = route_lru_find_const(&stats->lru, fp);
    if (i < 0)
        return false;
    *out = stats->slots[i].e;
    return true;
}

int64_t route_stats_percentile_us(const struct route_stats *stats, uint64_t fp, double pct)
{
    long i = route_lru_find_const(&stats->lru, fp);
    if (i < 0)
        return -1;
    const struct slot *s = &stats->slots[i];
    uint64_t total = 0;
    for (unsigned k = 0; k < N_BUCKETS; k++)
        total += s->hist[k];
    if (total == 0)
        return -1;
    if (pct > 100)
        pct = 100;
    uint64_t rank = (uint64_t)(pct / 100.0 * (double)total);
    if ((double)rank < pct / 100.0 * (double)total)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    unsigned k = 0;
    for (; k < N_BUCKETS - 1; k++)
        if ((seen += s->hist[k]) >= rank)
            break;
    /* Every sample in bucket k is below the next bucket's floor: report that bound, within
     * the observed range. */
    uint64_t v = bucket_floor(k + 1);
    if (v > s->e.max_us)
        v = s->e.max_us;
    if (v < s->min_us)
        v = s->min_us;
    return (int64_t)v;
}

size_t route_stats_count(const struct route_stats *stats)
{
    return stats->lru.count;
}

void route_stats_remap_lanes(struct route_stats *stats, const int *map, int nmap)
{
    for (uint32_t s = stats->lru.head; s; s = stats->lru.next[s - 1]) {
        int *lane = &stats->slots[s - 1].e.lane;

        *lane = *lane >= 0 && *lane < nmap ? map[*lane] : -1;
    }
}

int route_stats_foreach(const struct route_stats *stats, route_stats_cb cb, void *arg)
{
    for (uint32_t s = stats->lru.head; s; s = stats->lru.next[s - 1]) {
        int rc = cb(&stats->slots[s - 1].e, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}
