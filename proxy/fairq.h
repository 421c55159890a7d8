/*
 * proxy/fairq.h — fair queuing of a lane's transactions by tenant (proxy/fairq.c). Pure: no libuv, no
 * logging, times are passed in (microseconds, any monotonic origin above 0).
 *
 * Weighted fair queuing by server-connection time. Each tenant has a virtual time: the server time its
 * transactions held connections, divided by its weight. When a connection is free, the waiter served is
 * the first one (FIFO within a tenant) of the tenant whose virtual time plus the time its running
 * transactions have held their connections so far (also divided by its weight) is the least, skipping
 * tenants that already hold tenant_max connections. A tenant that was idle (nothing waiting, nothing
 * running) and comes back starts at the least virtual time of the tenants still busy, so that idleness
 * banks no credit; one that used more than FQ_HORIZON_US ahead of them is brought back to that lead, so
 * only recent service counts.
 *
 * Memory is bounded: at most `limit` tenants are known per queue (FQ_TENANTS_MAX by default); an idle
 * tenant is forgotten FQ_FORGET_US after it went idle (fq_sweep), or at once when the table is full and
 * a new one arrives; when every known tenant is busy, new ones share the tenant "(other)".
 */
#ifndef PGLANE_PROXY_FAIRQ_H
#define PGLANE_PROXY_FAIRQ_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define FQ_ID_MAX 64                           /* tenant ids are cut to 63 bytes */
#define FQ_TENANTS_MAX 1024                    /* known tenants per queue */
#define FQ_FORGET_US (60ull * 1000000)         /* an idle tenant is forgotten after this */
#define FQ_HORIZON_US (10ull * 1000000)        /* most service a returning tenant is held to ahead of the rest */
#define FQ_OTHER_ID "(other)"

struct fq_tenant {
    char id[FQ_ID_MAX];            /* "" = the anonymous tenant (transactions without a key) */
    uint64_t hash;
    uint32_t weight;               /* >= 1 */
    int active;                    /* server connections its transactions hold now */
    _Atomic int *gactive;          /* several workers: the process-wide count tenant_max holds to
                                      (kept by proxy/tenant.c), NULL: `active` is */
    int waiting;                   /* transactions queued for one */
    uint64_t served;               /* transactions that got a connection */
    uint64_t service_us;           /* server time of its finished holds */
    uint64_t vtime;                /* virtual time: weighted service (µs / weight), with catch-ups */
    uint64_t start_sum_us;         /* sum of the start times of its running holds */
    uint64_t longest_wait_us;      /* longest time one of its transactions waited */
    uint64_t idle_since_us;        /* nothing active or waiting since then; 0 while busy */
    uint32_t mark;                 /* scratch of fq_pick / fq_servable */
    int room;
};

struct fq {
    struct fq_tenant **t;          /* known tenants (each its own allocation: pointers stay valid) */
    int n, cap, limit;
    struct fq_tenant *other;       /* shared by new tenants while the table is full of busy ones */
    uint32_t mark;
    uint64_t forgotten;            /* tenants forgotten so far */
};

/* An empty queue knowing at most limit tenants (<= 0: FQ_TENANTS_MAX). */
void fq_init(struct fq *q, int limit);
void fq_free(struct fq *q);
/* The tenant named id (len bytes, cut to FQ_ID_MAX - 1), created if new; weight (0 = 1) is refreshed.
 * NULL only when out of memory. */
struct fq_tenant *fq_get(struct fq *q, const char *id, size_t len, uint32_t weight, uint64_t now);
/* One of t's transactions starts / stops waiting (waited_us: how long it waited). */
void fq_wait(struct fq *q, struct fq_tenant *t, uint64_t now);
void fq_unwait(struct fq_tenant *t, uint64_t waited_us, uint64_t now);
/* One of t's transactions got a server connection at `now` / gave back the one it got at `since`. */
void fq_start(struct fq *q, struct fq_tenant *t, uint64_t now);
void fq_stop(struct fq_tenant *t, uint64_t since, uint64_t now);
/* 1 if t holds fewer than max connections (max 0: no cap); with gactive, in the whole process. */
int fq_has_room(const struct fq_tenant *t, int max);
/* The connections t holds as tenant_max counts them (gactive, else active). */
int fq_held(const struct fq_tenant *t);
/* 1 if a should be served before b (less weighted service, committed plus in progress). */
int fq_before(const struct fq_tenant *a, const struct fq_tenant *b, uint64_t now);
/* Weighted service of t at now, in µs / weight (what fq_before compares). */
uint64_t fq_key(const struct fq_tenant *t, uint64_t now);

/* Server time of t's finished and running holds at now, in µs. */
uint64_t fq_service_us(const struct fq_tenant *t, uint64_t now);

/* A FIFO of waiters walked by the caller's functions: next(ctx, NULL) is the first, NULL ends it. */
struct fq_walk {
    void *(*next)(void *ctx, void *item);
    struct fq_tenant *(*tenant)(void *item);
    void *ctx;
};
/* The waiter to serve next, or NULL when every waiter's tenant is at max (or there is none). */
void *fq_pick(struct fq *q, const struct fq_walk *w, int max, uint64_t now);
/* How many of the waiters could get a connection now, given each tenant's room under max. */
int fq_servable(struct fq *q, const struct fq_walk *w, int max);
/* Forgets tenants idle for FQ_FORGET_US or longer. */
void fq_sweep(struct fq *q, uint64_t now);

#endif
