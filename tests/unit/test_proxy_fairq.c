/*
 * Fair queuing by tenant (proxy/fairq.c), driven by a simulated lane: waiters in a FIFO, connections
 * handed out by fq_pick, transactions that hold them for a given time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/fairq.h"

#define MAXW 256

struct waiter {
    struct fq_tenant *t;
    int seq;                       /* order of arrival within its tenant */
    uint64_t since;
    int queued;
};

struct sim {
    struct fq q;
    struct waiter w[MAXW];
    int n;
};

static void *sim_next(void *ctx, void *item)
{
    struct sim *s = ctx;
    int i = item ? (int)((struct waiter *)item - s->w) + 1 : 0;

    for (; i < s->n; i++)
        if (s->w[i].queued)
            return &s->w[i];
    return NULL;
}

static struct fq_tenant *sim_tenant(void *item)
{
    return ((struct waiter *)item)->t;
}

static struct fq_tenant *tenant(struct sim *s, const char *id, uint32_t weight)
{
    struct fq_tenant *t = fq_get(&s->q, id, strlen(id), weight, 1);

    assert_non_null(t);
    return t;
}

static struct waiter *enqueue(struct sim *s, struct fq_tenant *t, uint64_t now)
{
    struct waiter *w = &s->w[s->n];
    int seq = 0;

    assert_true(s->n < MAXW);
    for (int i = 0; i < s->n; i++)
        seq += s->w[i].t == t;
    *w = (struct waiter){ .t = t, .seq = seq, .since = now, .queued = 1 };
    s->n++;
    fq_wait(&s->q, t, now);
    return w;
}

/* The next waiter gets a connection at now (NULL if none may). */
static struct waiter *dispatch(struct sim *s, int max, uint64_t now)
{
    struct fq_walk walk = { sim_next, sim_tenant, s };
    struct waiter *w = fq_pick(&s->q, &walk, max, now);

    if (!w)
        return NULL;
    w->queued = 0;
    fq_unwait(w->t, now - w->since, now);
    fq_start(&s->q, w->t, now);
    return w;
}

static int servable(struct sim *s, int max)
{
    struct fq_walk walk = { sim_next, sim_tenant, s };

    return fq_servable(&s->q, &walk, max);
}

/* Lane of size 2: A queues 20 transactions of 0.5 s, B then queues 1; B is served at the next free
 * connection, not after A's twenty. */
static void test_late_small_tenant_goes_next(void **state)
{
    struct sim *s = calloc(1, sizeof(*s));
    struct fq_tenant *a, *b;
    struct waiter *run[2], *w;
    uint64_t now = 1000000;

    (void)state;
    fq_init(&s->q, 0);
    a = tenant(s, "A", 0);
    b = tenant(s, "B", 0);
    for (int i = 0; i < 20; i++)
        enqueue(s, a, now);
    run[0] = dispatch(s, 0, now);
    run[1] = dispatch(s, 0, now);
    assert_ptr_equal(run[0]->t, a);
    assert_ptr_equal(run[1]->t, a);
    now += 10000;
    enqueue(s, b, now);
    now += 490000;                 /* the first of A's ends */
    fq_stop(a, run[0]->since + 0, now);
    w = dispatch(s, 0, now);
    assert_non_null(w);
    assert_ptr_equal(w->t, b);
    assert_int_equal(b->served, 1);
    assert_int_equal(b->longest_wait_us, 490000);
    fq_free(&s->q);
    free(s);
}

/* Same with FIFO semantics inside a tenant: A's waiters are served in their order of arrival. */
static void test_fifo_within_tenant(void **state)
{
    struct sim *s = calloc(1, sizeof(*s));
    struct fq_tenant *a, *b;
    uint64_t now = 1000;
    int next_a = 0, next_b = 0;

    (void)state;
    fq_init(&s->q, 0);
    a = tenant(s, "A", 0);
    b = tenant(s, "B", 0);
    for (int i = 0; i < 10; i++) {
        enqueue(s, a, now);
        enqueue(s, b, now);
    }
    for (int i = 0; i < 20; i++) {
        struct waiter *w = dispatch(s, 0, now);

        assert_non_null(w);
        assert_int_equal(w->seq, w->t == a ? next_a++ : next_b++);
        now += 100;
        fq_stop(w->t, now - 100, now);
    }
    assert_int_equal(next_a, 10);
    assert_int_equal(next_b, 10);
    fq_free(&s->q);
    free(s);
}

/* Two tenants always backlogged on one connection: service follows the weights (3:1). */
static void test_weights(void **state)
{
    struct sim *s = calloc(1, sizeof(*s));
    struct fq_tenant *a, *b;
    uint64_t now = 1000;

    (void)state;
    fq_init(&s->q, 0);
    a = tenant(s, "A", 3);
    b = tenant(s, "B", 1);
    for (int i = 0; i < 100; i++) {
        enqueue(s, a, now);
        enqueue(s, b, now);
    }
    for (int i = 0; i < 80; i++) {
        struct waiter *w = dispatch(s, 0, now);

        assert_non_null(w);
        now += 1000;               /* every transaction holds its connection 1 ms */
        fq_stop(w->t, now - 1000, now);
    }
    assert_int_equal(a->served + b->served, 80);
    assert_int_equal(a->served, 60);
    assert_int_equal(b->served, 20);
    assert_int_equal(a->service_us, 60000);
    fq_free(&s->q);
    free(s);
}

/* tenant_max = 1: A's second waiter is skipped while A runs, even with connections free; B's go. */
static void test_tenant_max(void **state)
{
    struct sim *s = calloc(1, sizeof(*s));
    struct fq_tenant *a, *b;
    struct waiter *w1, *w2, *w3;
    uint64_t now = 1000;

    (void)state;
    fq_init(&s->q, 0);
    a = tenant(s, "A", 0);
    b = tenant(s, "B", 0);
    for (int i = 0; i < 5; i++)
        enqueue(s, a, now);
    enqueue(s, b, now);
    assert_int_equal(servable(s, 1), 2);       /* one of A's, B's one */
    assert_int_equal(servable(s, 0), 6);
    w1 = dispatch(s, 1, now);
    assert_ptr_equal(w1->t, a);
    assert_int_equal(servable(s, 1), 1);
    w2 = dispatch(s, 1, now);
    assert_ptr_equal(w2->t, b);
    assert_null(dispatch(s, 1, now));          /* A at its cap, B has nothing queued */
    assert_int_equal(servable(s, 1), 0);
    assert_int_equal(a->active, 1);
    now += 500;
    fq_stop(a, w1->since, now);
    w3 = dispatch(s, 1, now);
    assert_ptr_equal(w3->t, a);
    assert_int_equal(w3->seq, 1);
    assert_int_equal(a->active, 1);
    assert_int_equal(a->waiting, 3);
    fq_free(&s->q);
    free(s);
}

/* Transactions without a key share the anonymous tenant "" and compete with named ones like any other. */
static void test_anonymous_tenant(void **state)
{
    struct sim *s = calloc(1, sizeof(*s));
    struct fq_tenant *anon, *anon2, *a;
    struct waiter *w;
    uint64_t now = 1000;

    (void)state;
    fq_init(&s->q, 0);
    anon = fq_get(&s->q, "", 0, 0, now);
    anon2 = fq_get(&s->q, "", 0, 0, now);
    assert_ptr_equal(anon, anon2);
    assert_string_equal(anon->id, "");
    a = tenant(s, "A", 0);
    for (int i = 0; i < 3; i++)
        enqueue(s, anon, now);
    w = dispatch(s, 0, now);
    assert_ptr_equal(w->t, anon);
    enqueue(s, a, now + 10);
    w = dispatch(s, 0, now + 20);
    assert_ptr_equal(w->t, a);                 /* anon already holds a connection */
    assert_int_equal(anon->waiting, 2);
    fq_free(&s->q);
    free(s);
}

/* An idle tenant banks no credit: B, idle while A ran for a long time, comes back level with A (not
 * ahead of it by all that time), so A is not shut out; and a tenant that used much more recently is
 * held no further than FQ_HORIZON_US ahead. */
static void test_no_banked_credit(void **state)
{
    struct sim *s = calloc(1, sizeof(*s));
    struct fq_tenant *a, *b;
    struct waiter *w;
    uint64_t now = 1000;

    (void)state;
    fq_init(&s->q, 0);
    a = tenant(s, "A", 0);
    b = tenant(s, "B", 0);
    for (int i = 0; i < 100; i++) {            /* A alone: 100 s of service */
        enqueue(s, a, now);
        w = dispatch(s, 0, now);
        now += 1000000;
        fq_stop(a, now - 1000000, now);
    }
    enqueue(s, a, now);                        /* A stays busy */
    enqueue(s, b, now);
    assert_true(b->vtime >= a->vtime);         /* B starts level, not 100 s behind */
    w = dispatch(s, 0, now);
    assert_ptr_equal(w->t, a);                 /* tie: FIFO */
    now += 1000;
    fq_stop(a, now - 1000, now);
    enqueue(s, a, now);
    w = dispatch(s, 0, now);
    assert_ptr_equal(w->t, b);
    now += 60000000;                           /* B runs a minute, then A is idle, B comes back */
    fq_stop(b, now - 60000000, now);
    assert_true(b->vtime - a->vtime > FQ_HORIZON_US);
    w = dispatch(s, 0, now);
    assert_ptr_equal(w->t, a);
    enqueue(s, b, now);                        /* B returns from idle while A runs */
    assert_true(b->vtime - a->vtime <= FQ_HORIZON_US);
    fq_free(&s->q);
    free(s);
}

/* Bounded memory: a table of 4 tenants forgets idle ones (oldest first) for new ones; with all 4
 * busy, new tenants share "(other)"; fq_sweep forgets tenants idle for FQ_FORGET_US. */
static void test_bounded_table(void **state)
{
    struct fq q;
    struct fq_tenant *t[4], *o, *o2;
    char id[16];
    uint64_t now = 1000;

    (void)state;
    fq_init(&q, 4);
    for (int i = 0; i < 100; i++) {
        struct fq_tenant *x;

        snprintf(id, sizeof(id), "t%d", i);
        x = fq_get(&q, id, strlen(id), 0, now++);
        fq_start(&q, x, now);
        fq_stop(x, now, now + 5);
        assert_true(q.n <= 4);
    }
    assert_int_equal(q.forgotten, 96);
    assert_null(q.other);
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof(id), "busy%d", i);
        t[i] = fq_get(&q, id, strlen(id), 0, now);
        fq_wait(&q, t[i], now);
    }
    o = fq_get(&q, "new1", 4, 0, now);
    o2 = fq_get(&q, "new2", 4, 0, now);
    assert_non_null(o);
    assert_ptr_equal(o, o2);
    assert_string_equal(o->id, FQ_OTHER_ID);
    assert_int_equal(q.n, 4);
    fq_unwait(t[0], 0, now);
    fq_sweep(&q, now + FQ_FORGET_US - 1);
    assert_int_equal(q.n, 4);
    fq_sweep(&q, now + FQ_FORGET_US);
    assert_int_equal(q.n, 3);
    /* A long id is cut, and the cut form finds the same tenant. */
    {
        char longid[200];

        memset(longid, 'x', sizeof(longid));
        o = fq_get(&q, longid, sizeof(longid), 0, now);
        assert_int_equal(strlen(o->id), FQ_ID_MAX - 1);
        assert_ptr_equal(fq_get(&q, longid, FQ_ID_MAX - 1, 0, now), o);
    }
    fq_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_late_small_tenant_goes_next),
        cmocka_unit_test(test_fifo_within_tenant),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_tenant_max),
        cmocka_unit_test(test_anonymous_tenant),
        cmocka_unit_test(test_no_banked_credit),
        cmocka_unit_test(test_bounded_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
