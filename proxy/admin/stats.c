/*
 * Statistics recorded on the forwarding path: per-lane latency histograms, errors by SQLSTATE class,
 * queue waits and the slow-statement log. Everything is a plain integer in a fixed array.
 */
#include <stdio.h>
#include <string.h>

#include "proxy/admin/stages.h"
#include "proxy/proxy.h"

#define SUB_BITS 2   /* 4 buckets per power of two */

static unsigned hist_bucket(uint64_t v)
{
    uint64_t x = v > 1 ? v - 1 : 0;
    unsigned e, i;

    if (x < 4)
        return (unsigned)x;
    e = 63u - (unsigned)__builtin_clzll(x);
    i = 4u * (e - 1u) + (unsigned)((x >> (e - SUB_BITS)) & 3u);
    return i < PX_HIST_BUCKETS ? i : PX_HIST_BUCKETS - 1;
}

uint64_t px_hist_upper(unsigned i)
{
    if (i < 4)
        return i + 1;
    return (uint64_t)(5u + i % 4u) << (i / 4u - 1u);
}

void px_hist_add(struct px_hist *h, uint64_t us)
{
    h->count++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
    h->b[hist_bucket(us)]++;
}

void px_hist_merge(struct px_hist *dst, const struct px_hist *src)
{
    dst->count += src->count;
    dst->sum_us += src->sum_us;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
    for (unsigned i = 0; i < PX_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
}

void px_lane_stats_merge(struct px_lane_stats *dst, const struct px_lane_stats *src)
{
    px_hist_merge(&dst->tx, &src->tx);
    px_hist_merge(&dst->query, &src->query);
    px_hist_merge(&dst->wait, &src->wait);
    for (int i = 0; i < PX_SQLSTATE_CLASSES; i++)
        dst->errors[i] += src->errors[i];
    dst->slow += src->slow;
    for (int i = 0; i < PX_GUARD_ACTIONS; i++) {
        dst->guard[i] += src->guard[i];
        dst->guarded[i] += src->guarded[i];
    }
    for (int i = 0; i < PX_PIN_REASONS; i++)
        dst->pins[i] += src->pins[i];
    for (int i = 0; i < PX_CANCEL_EVENTS; i++)
        dst->cancels[i] += src->cancels[i];
    for (int i = 0; i < PX_LOST_REASONS; i++)
        dst->lost[i] += src->lost[i];
    dst->retries += src->retries;
    dst->session_checks += src->session_checks;
}

uint64_t px_hist_count_le(const struct px_hist *h, uint64_t us)
{
    unsigned last = hist_bucket(us);
    uint64_t n = 0;

    if (px_hist_upper(last) > us) {       /* us is inside bucket `last`: count only full buckets */
        if (last == 0)
            return 0;
        last--;
    }
    for (unsigned i = 0; i <= last; i++)
        n += h->b[i];
    return n;
}

uint64_t px_hist_percentile(const struct px_hist *h, double pct)
{
    uint64_t rank, seen = 0;

    if (h->count == 0)
        return 0;
    rank = (uint64_t)(pct / 100.0 * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    for (unsigned i = 0; i < PX_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank)
            return px_hist_upper(i) < h->max_us ? px_hist_upper(i) : h->max_us;
    }
    return h->max_us;
}

static int class_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        return 10 + c - 'A';
    return -1;
}

int px_sqlstate_class(const char *s)
{
    int a, b;

    if (!s || strlen(s) != 5)
        return -1;
    a = class_digit(s[0]);
    b = class_digit(s[1]);
    return a < 0 || b < 0 ? -1 : a * 36 + b;
}

void px_sqlstate_class_name(int i, char out[3])
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

    out[0] = digits[(i / 36) % 36];
    out[1] = digits[i % 36];
    out[2] = 0;
}

static void slow_log(struct px_server *sv, struct px_client *cl, uint64_t us)
{
    const char *app = cl->want.v[PX_P_APPLICATION_NAME];

    sv->pool->lane->stats.slow++;
    px_warn("C-%llu slow statement: %.3f ms in lane %s, fingerprint %016llx, client %s user " PX_LOG_NAME " database " PX_LOG_NAME " "
            "application_name " PX_LOG_NAME ", server S-%llu pid %u",
            (unsigned long long)cl->conn.id, (double)us / 1000.0, sv->pool->lane->conf->name,
            (unsigned long long)cl->fingerprint, PX_CLIENT_ADDR(cl), cl->user, cl->database, app ? app : "-",
            (unsigned long long)sv->conn.id, sv->backend_pid);
}

void px_stats_query_end(struct px_server *sv, struct px_client *cl)
{
    struct px_lane_stats *st = &sv->pool->lane->stats;
    int64_t slower = sv->conn.px->conf->log_slower_than_ms;
    uint64_t now = px_now_us(), start = cl->query_start_us;

    sv->pool->queries++;
    sv->guard_for = NULL;
    if (start) {
        /* Time spent in the lane's queue is not the statement's: start at the attach. */
        if (cl->tx_start_us > start)
            start = cl->tx_start_us;
        px_hist_add(&st->query, now - start);
        sv->pool->query_us += now - start;
        if (slower > 0 && now - start >= (uint64_t)slower * 1000u)
            slow_log(sv, cl, now - start);
    }
    cl->query_start_us = cl->pending_z ? now : 0;
    if (sv->tx_status != 'I' || !cl->tx_begin_us)
        return;
    if (PX_STAGE_ON(cl->conn.id))
        px_stage_tx_end();
    start = cl->tx_begin_us > cl->tx_start_us ? cl->tx_begin_us : cl->tx_start_us;
    px_hist_add(&st->tx, now - start);
    sv->pool->xact_us += now - start;
    cl->tx_begin_us = cl->pending_z ? now : 0;
}

void px_stats_error(struct px_server *sv, const struct proto_frame *f)
{
    const uint8_t *p = f->body, *end = f->body + f->len;
    int k;

    /* Fields are (code byte, C string) pairs; only 'C' (the SQLSTATE) matters here. */
    while (p < end && *p) {
        const uint8_t *v = p + 1, *z = memchr(v, 0, (size_t)(end - v));

        if (!z)
            return;
        if (*p == 'C' && z - v == 5 && (k = px_sqlstate_class((const char *)v)) >= 0) {
            sv->pool->lane->stats.errors[k]++;
            return;
        }
        p = z + 1;
    }
}

void px_stats_wait(struct px_pool *pool, uint64_t us)
{
    px_hist_add(&pool->lane->stats.wait, us);
}
