/*
 * Fair queuing of a lane's transactions by tenant (proxy/fairq.h): weighted fair queuing by the server
 * time tenants' transactions held connections, FIFO within a tenant, per-tenant caps. Pure code.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/fairq.h"

static uint64_t hash_id(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

void fq_init(struct fq *q, int limit)
{
    memset(q, 0, sizeof(*q));
    q->limit = limit > 0 ? limit : FQ_TENANTS_MAX;
}

void fq_free(struct fq *q)
{
    for (int i = 0; i < q->n; i++)
        free(q->t[i]);
    free(q->t);
    free(q->other);
    memset(q, 0, sizeof(*q));
}

static int busy(const struct fq_tenant *t)
{
    return t->active > 0 || t->waiting > 0;
}

/* t goes from idle to busy: it starts no further behind the busy tenants than they are, and no further
 * ahead of them than FQ_HORIZON_US of service. */
static void wake(struct fq *q, struct fq_tenant *t)
{
    uint64_t floor = UINT64_MAX;

    for (int i = 0; i < q->n; i++)
        if (q->t[i] != t && busy(q->t[i]) && q->t[i]->vtime < floor)
            floor = q->t[i]->vtime;
    if (q->other && q->other != t && busy(q->other) && q->other->vtime < floor)
        floor = q->other->vtime;
    if (floor != UINT64_MAX) {
        if (t->vtime < floor)
            t->vtime = floor;
        else if (t->vtime - floor > FQ_HORIZON_US)
            t->vtime = floor + FQ_HORIZON_US;
    }
    t->idle_since_us = 0;
}

static void settle(struct fq_tenant *t, uint64_t now)
{
    if (!busy(t))
        t->idle_since_us = now ? now : 1;
}

static struct fq_tenant *tenant_new(const char *id, size_t len, uint64_t h, uint64_t now)
{
    struct fq_tenant *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    memcpy(t->id, id, len);
    t->hash = h;
    t->weight = 1;
    t->idle_since_us = now ? now : 1;
    return t;
}

/* Index of the idle tenant that went idle first, or -1. */
static int oldest_idle(const struct fq *q)
{
    int best = -1;

    for (int i = 0; i < q->n; i++)
        if (!busy(q->t[i]) && (best < 0 || q->t[i]->idle_since_us < q->t[best]->idle_since_us))
            best = i;
    return best;
}

static void forget(struct fq *q, int i)
{
    free(q->t[i]);
    q->t[i] = q->t[--q->n];
    q->forgotten++;
}

struct fq_tenant *fq_get(struct fq *q, const char *id, size_t len, uint32_t weight, uint64_t now)
{
    struct fq_tenant *t;
    uint64_t h;
    int i;

    if (len > FQ_ID_MAX - 1)
        len = FQ_ID_MAX - 1;
    h = hash_id(id, len);
    for (i = 0; i < q->n; i++) {
        t = q->t[i];
        if (t->hash == h && strncmp(t->id, id, len) == 0 && t->id[len] == '\0')
            goto found;
    }
    if (q->n >= q->limit && (i = oldest_idle(q)) >= 0)
        forget(q, i);
    if (q->n >= q->limit) {
        if (!q->other && !(q->other = tenant_new(FQ_OTHER_ID, strlen(FQ_OTHER_ID), 0, now)))
            return NULL;
        t = q->other;
        goto found;
    }
    if (q->n == q->cap) {
        int cap = q->cap ? q->cap * 2 : 8;
        struct fq_tenant **nt;

        if (cap > q->limit)
            cap = q->limit;
        if (!(nt = realloc(q->t, sizeof(*nt) * (size_t)cap)))
            return NULL;
        q->t = nt;
        q->cap = cap;
    }
    if (!(t = tenant_new(id, len, h, now)))
        return NULL;
    q->t[q->n++] = t;
found:
    t->weight = weight ? weight : 1;
    return t;
}

void fq_wait(struct fq *q, struct fq_tenant *t, uint64_t now)
{
    (void)now;
    if (!busy(t))
        wake(q, t);
    t->waiting++;
}

void fq_unwait(struct fq_tenant *t, uint64_t waited_us, uint64_t now)
{
    if (t->waiting > 0)
        t->waiting--;
    if (waited_us > t->longest_wait_us)
        t->longest_wait_us = waited_us;
    settle(t, now);
}

void fq_start(struct fq *q, struct fq_tenant *t, uint64_t now)
{
    if (!busy(t))
        wake(q, t);
    t->active++;
    t->served++;
    t->start_sum_us += now;
}

void fq_stop(struct fq_tenant *t, uint64_t since, uint64_t now)
{
    uint64_t held = now > since ? now - since : 0;

    if (t->active > 0) {
        t->active--;
        t->start_sum_us -= since <= t->start_sum_us ? since : t->start_sum_us;
    }
    t->service_us += held;
    t->vtime += held / t->weight;
    settle(t, now);
}

int fq_held(const struct fq_tenant *t)
{
    return t->gactive ? atomic_load_explicit(t->gactive, memory_order_acquire) : t->active;
}

int fq_has_room(const struct fq_tenant *t, int max)
{
    return max <= 0 || fq_held(t) < max;
}

uint64_t fq_key(const struct fq_tenant *t, uint64_t now)
{
    uint64_t all = (uint64_t)t->active * now, running = all > t->start_sum_us ? all - t->start_sum_us : 0;

    return t->vtime + running / t->weight;
}

uint64_t fq_service_us(const struct fq_tenant *t, uint64_t now)
{
    uint64_t all = (uint64_t)t->active * now;

    return t->service_us + (all > t->start_sum_us ? all - t->start_sum_us : 0);
}

int fq_before(const struct fq_tenant *a, const struct fq_tenant *b, uint64_t now)
{
    return fq_key(a, now) < fq_key(b, now);
}

void *fq_pick(struct fq *q, const struct fq_walk *w, int max, uint64_t now)
{
    void *best = NULL, *it;
    struct fq_tenant *bt = NULL;
    uint64_t bk = 0;

    q->mark++;
    for (it = w->next(w->ctx, NULL); it; it = w->next(w->ctx, it)) {
        struct fq_tenant *t = w->tenant(it);
        uint64_t k;

        if (t->mark == q->mark)
            continue;              /* only the first waiter of each tenant competes: FIFO within it */
        t->mark = q->mark;
        if (!fq_has_room(t, max))
            continue;
        k = fq_key(t, now);
        /* A tie (a tenant back from idle starts at the busy ones' virtual time) goes to the tenant
         * holding fewer connections: with several workers, the others' count too (fq_held). */
        if (!bt || k < bk || (k == bk && fq_held(t) < fq_held(bt))) {
            best = it;
            bt = t;
            bk = k;
        }
    }
    return best;
}

int fq_servable(struct fq *q, const struct fq_walk *w, int max)
{
    int n = 0;

    q->mark++;
    for (void *it = w->next(w->ctx, NULL); it; it = w->next(w->ctx, it)) {
        struct fq_tenant *t = w->tenant(it);

        if (t->mark != q->mark) {
            t->mark = q->mark;
            int held = fq_held(t);

            t->room = max <= 0 ? INT_MAX : max > held ? max - held : 0;
        }
        if (t->room == INT_MAX) {
            n++;
        } else if (t->room > 0) {
            t->room--;
            n++;
        }
    }
    return n;
}

void fq_sweep(struct fq *q, uint64_t now)
{
    for (int i = 0; i < q->n;) {
        struct fq_tenant *t = q->t[i];

        if (!busy(t) && t->idle_since_us && now - t->idle_since_us >= FQ_FORGET_US)
            forget(q, i);
        else
            i++;
    }
}
