/*
 * The state-transition tables of clients and servers (proxy/state.c): every transition the proxy
 * makes is legal, every other one is not, and a server's pool list and the pool's counters follow
 * its state through a sequence of changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/state.h"

struct edge {
    int from, to;
};

/* Written out edge by edge, apart from the tables in proxy/state.c, so that a change to either shows. */
static const struct edge sv_legal[] = {
    { PX_SV_NEW, SV_CONNECTING },
    { SV_CONNECTING, SV_TLS }, { SV_CONNECTING, SV_LOGIN }, { SV_CONNECTING, SV_CLOSED },
    { SV_TLS, SV_LOGIN }, { SV_TLS, SV_CLOSED },
    { SV_LOGIN, SV_IDLE }, { SV_LOGIN, SV_ACTIVE }, { SV_LOGIN, SV_CLOSED },
    { SV_IDLE, SV_IDLE }, { SV_IDLE, SV_ACTIVE }, { SV_IDLE, SV_RESETTING }, { SV_IDLE, SV_CHECKING },
    { SV_IDLE, SV_CLOSED },
    { SV_ACTIVE, SV_IDLE }, { SV_ACTIVE, SV_ACTIVE }, { SV_ACTIVE, SV_RESETTING }, { SV_ACTIVE, SV_CANCEL_WAIT },
    { SV_ACTIVE, SV_CLOSED },
    { SV_RESETTING, SV_IDLE }, { SV_RESETTING, SV_ACTIVE }, { SV_RESETTING, SV_CLOSED },
    { SV_CANCEL_WAIT, SV_IDLE }, { SV_CANCEL_WAIT, SV_ACTIVE }, { SV_CANCEL_WAIT, SV_RESETTING },
    { SV_CANCEL_WAIT, SV_CLOSED },
    { SV_CHECKING, SV_IDLE }, { SV_CHECKING, SV_ACTIVE }, { SV_CHECKING, SV_CLOSED },
};

static const struct edge cl_legal[] = {
    { CL_STARTUP, CL_AUTH_PASSWORD }, { CL_STARTUP, CL_AUTH_SASL_INIT }, { CL_STARTUP, CL_ADMIN },
    { CL_STARTUP, CL_IDLE }, { CL_STARTUP, CL_LOGIN_WAIT }, { CL_STARTUP, CL_CLOSED },
    { CL_AUTH_PASSWORD, CL_ADMIN }, { CL_AUTH_PASSWORD, CL_IDLE }, { CL_AUTH_PASSWORD, CL_LOGIN_WAIT },
    { CL_AUTH_PASSWORD, CL_CLOSED },
    { CL_AUTH_SASL_INIT, CL_AUTH_SASL_FINAL }, { CL_AUTH_SASL_INIT, CL_CLOSED },
    { CL_AUTH_SASL_FINAL, CL_ADMIN }, { CL_AUTH_SASL_FINAL, CL_IDLE }, { CL_AUTH_SASL_FINAL, CL_LOGIN_WAIT },
    { CL_AUTH_SASL_FINAL, CL_CLOSED },
    { CL_LOGIN_WAIT, CL_IDLE }, { CL_LOGIN_WAIT, CL_ACTIVE }, { CL_LOGIN_WAIT, CL_CLOSED },
    { CL_IDLE, CL_WAITING }, { CL_IDLE, CL_CLOSED },
    { CL_WAITING, CL_ACTIVE }, { CL_WAITING, CL_IDLE }, { CL_WAITING, CL_CLOSED },
    { CL_ACTIVE, CL_IDLE }, { CL_ACTIVE, CL_WAITING }, { CL_ACTIVE, CL_CLOSED },
    { CL_ADMIN, CL_CLOSED },
};

static const struct edge txr_legal[] = {
    { TXR_NONE, TXR_LANE_DECIDED }, { TXR_NONE, TXR_BEGIN_HELD },
    { TXR_LANE_DECIDED, TXR_NONE }, { TXR_LANE_DECIDED, TXR_BEGIN_HELD_DECIDED },
    { TXR_BEGIN_HELD, TXR_BEGIN_HELD_DECIDED }, { TXR_BEGIN_HELD, TXR_BEGIN_REPLAY },
    { TXR_BEGIN_HELD_DECIDED, TXR_NONE }, { TXR_BEGIN_HELD_DECIDED, TXR_BEGIN_REPLAY },
    { TXR_BEGIN_REPLAY, TXR_LANE_DECIDED },
};

static int listed(const struct edge *e, size_t n, int from, int to)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].from == from && e[i].to == to)
            return 1;
    return 0;
}

/* Every pair of states: legal exactly when listed above. */
static void test_server_table(void **state)
{
    (void)state;
    for (int from = 0; from <= PX_SV_NEW; from++)
        for (int to = 0; to < PX_SV_NSTATES; to++) {
            int want = listed(sv_legal, sizeof(sv_legal) / sizeof(sv_legal[0]), from, to);

            if (px_server_transition_legal(from, (enum px_server_state)to) != want)
                fail_msg("%s -> %s: expected %s", px_server_state_id(from), px_server_state_id(to),
                         want ? "legal" : "illegal");
        }
}

static void test_client_table(void **state)
{
    (void)state;
    for (int from = 0; from < PX_CL_NSTATES; from++)
        for (int to = 0; to < PX_CL_NSTATES; to++) {
            int want = listed(cl_legal, sizeof(cl_legal) / sizeof(cl_legal[0]), from, to);

            if (px_client_transition_legal((enum px_client_state)from, (enum px_client_state)to) != want)
                fail_msg("%s -> %s: expected %s", px_client_state_id(from), px_client_state_id(to),
                         want ? "legal" : "illegal");
        }
}

static void test_tx_route_table(void **state)
{
    (void)state;
    for (int from = 0; from < PX_TXR_NSTATES; from++)
        for (int to = 0; to < PX_TXR_NSTATES; to++) {
            int want = listed(txr_legal, sizeof(txr_legal) / sizeof(txr_legal[0]), from, to);

            if (px_tx_route_legal((enum px_tx_route)from, (enum px_tx_route)to) != want)
                fail_msg("%s -> %s: expected %s", px_tx_route_id(from), px_tx_route_id(to),
                         want ? "legal" : "illegal");
        }
    assert_false(px_tx_route_decided(TXR_NONE));
    assert_true(px_tx_route_decided(TXR_LANE_DECIDED));
    assert_false(px_tx_route_decided(TXR_BEGIN_HELD));
    assert_true(px_tx_route_decided(TXR_BEGIN_HELD_DECIDED));
    assert_false(px_tx_route_decided(TXR_BEGIN_REPLAY));
}

/*
 * One transaction's routing: BEGIN held, the next statement chooses the lane, the attach replays the
 * BEGIN (its length forgotten), the forward ends the replay, the transaction's end forgets the lane.
 */
static void test_tx_route_sequence(void **state)
{
    struct px_client *cl = calloc(1, sizeof(*cl));

    (void)state;
    assert_non_null(cl);
    assert_int_equal(cl->tx_route, TXR_NONE);
    px_client_tx_route_forget(cl);                   /* nothing to forget */
    assert_int_equal(cl->tx_route, TXR_NONE);
    cl->held_begin = 11;
    px_client_set_tx_route(cl, TXR_BEGIN_HELD);
    assert_int_equal(cl->held_begin, 11);
    px_client_tx_route_decide(cl);
    assert_int_equal(cl->tx_route, TXR_BEGIN_HELD_DECIDED);
    assert_int_equal(cl->held_begin, 11);
    px_client_tx_route_decide(cl);                   /* already chosen */
    assert_int_equal(cl->tx_route, TXR_BEGIN_HELD_DECIDED);
    px_client_set_tx_route(cl, TXR_BEGIN_REPLAY);
    assert_int_equal(cl->held_begin, 0);
    px_client_tx_route_decide(cl);                   /* attached: no longer the router's concern */
    assert_int_equal(cl->tx_route, TXR_BEGIN_REPLAY);
    px_client_set_tx_route(cl, TXR_LANE_DECIDED);
    px_client_tx_route_forget(cl);
    assert_int_equal(cl->tx_route, TXR_NONE);
    /* A statement chooses the lane first; the quarantine drops everything. */
    px_client_tx_route_decide(cl);
    assert_int_equal(cl->tx_route, TXR_LANE_DECIDED);
    cl->held_begin = 7;
    px_client_set_tx_route(cl, TXR_BEGIN_HELD_DECIDED);
    px_client_set_tx_route(cl, TXR_NONE);
    assert_int_equal(cl->held_begin, 0);
    free(cl);
}

/* A sample of transitions that would be bugs, and values out of range. */
static void test_illegal_samples(void **state)
{
    (void)state;
    assert_false(px_server_transition_legal(SV_CLOSED, SV_IDLE));       /* closed is final */
    assert_false(px_server_transition_legal(SV_CLOSED, SV_CLOSED));
    assert_false(px_server_transition_legal(SV_CONNECTING, SV_ACTIVE)); /* a client on a server not logged in */
    assert_false(px_server_transition_legal(SV_LOGIN, SV_RESETTING));   /* nothing to reset yet */
    assert_false(px_server_transition_legal(SV_IDLE, SV_CANCEL_WAIT));  /* no client: nothing to cancel */
    assert_false(px_server_transition_legal(PX_SV_NEW, SV_IDLE));
    assert_false(px_server_transition_legal(SV_ACTIVE, SV_CHECKING));   /* only an idle connection is checked */
    assert_false(px_server_transition_legal(SV_CHECKING, SV_RESETTING)); /* nothing to reset: no client ran */
    assert_string_equal(px_server_state_id(SV_CHECKING), "SV_CHECKING");
    assert_int_equal(px_server_state_list(SV_CHECKING), PX_SVL_BUSY);   /* on its way to a client */
    assert_false(px_server_transition_legal(-1, SV_IDLE));
    assert_false(px_server_transition_legal(PX_SV_NEW + 1, SV_IDLE));
    assert_false(px_server_transition_legal(SV_IDLE, (enum px_server_state)PX_SV_NSTATES));
    assert_false(px_client_transition_legal(CL_CLOSED, CL_IDLE));
    assert_false(px_client_transition_legal(CL_STARTUP, CL_ACTIVE));     /* not logged in */
    assert_false(px_client_transition_legal(CL_AUTH_SASL_INIT, CL_IDLE)); /* SCRAM not finished */
    assert_false(px_client_transition_legal(CL_ADMIN, CL_WAITING));      /* the console has no server */
    assert_false(px_client_transition_legal(CL_IDLE, CL_ACTIVE));        /* attaches only after waiting */
    assert_false(px_client_transition_legal((enum px_client_state)PX_CL_NSTATES, CL_CLOSED));
    assert_false(px_tx_route_legal(TXR_NONE, TXR_BEGIN_REPLAY));      /* nothing held to replay */
    assert_false(px_tx_route_legal(TXR_BEGIN_REPLAY, TXR_BEGIN_HELD)); /* a second BEGIN is not held */
    assert_false(px_tx_route_legal(TXR_BEGIN_REPLAY, TXR_NONE));       /* the replay ends in its forward */
    assert_string_equal(px_server_state_id(SV_CANCEL_WAIT), "SV_CANCEL_WAIT");
    assert_string_equal(px_client_state_id(CL_LOGIN_WAIT), "CL_LOGIN_WAIT");
    assert_string_equal(px_server_state_id(99), "?");
}

static void test_server_lists(void **state)
{
    (void)state;
    assert_int_equal(px_server_state_list(SV_IDLE), PX_SVL_IDLE);
    assert_int_equal(px_server_state_list(SV_CLOSED), PX_SVL_NONE);
    for (int s = 0; s < PX_SV_NSTATES; s++)
        if (s != SV_IDLE && s != SV_CLOSED)
            assert_int_equal(px_server_state_list((enum px_server_state)s), PX_SVL_BUSY);
}

static int list_len(const struct px_list *head)
{
    int n = 0;

    for (const struct px_list *it = head->next; it != head; it = it->next)
        n++;
    return n;
}

static struct px_server *nth(struct px_list *head, int i)
{
    struct px_list *it = head->next;

    while (i-- > 0)
        it = it->next;
    return px_container_of(it, struct px_server, link);
}

static void assert_counts(struct px_pool *pool, int nidle, int nbusy)
{
    assert_int_equal(pool->nidle, nidle);
    assert_int_equal(pool->nbusy, nbusy);
    assert_int_equal(list_len(&pool->idle), nidle);
    assert_int_equal(list_len(&pool->busy), nbusy);
}

/* Three servers through connect, login, idle, active, reset and close: the lists and counters follow. */
static void test_pool_lists_follow_states(void **state)
{
    struct px_pool *pool = calloc(1, sizeof(*pool));
    struct px_server *sv[3];

    (void)state;
    assert_non_null(pool);
    px_list_init(&pool->idle);
    px_list_init(&pool->busy);
    for (int i = 0; i < 3; i++) {
        sv[i] = calloc(1, sizeof(*sv[i]));
        assert_non_null(sv[i]);
        sv[i]->pool = pool;
        sv[i]->conn.id = (uint64_t)i + 1;
        px_server_set_state(sv[i], SV_CONNECTING);
        assert_int_equal(sv[i]->state, SV_CONNECTING);
    }
    assert_counts(pool, 0, 3);
    assert_ptr_equal(nth(&pool->busy, 0), sv[0]);   /* appended in order */
    assert_ptr_equal(nth(&pool->busy, 2), sv[2]);

    px_server_set_state(sv[0], SV_TLS);
    px_server_set_state(sv[0], SV_LOGIN);
    px_server_set_state(sv[1], SV_LOGIN);
    assert_counts(pool, 0, 3);                       /* still busy: no move */
    px_server_set_state(sv[0], SV_IDLE);
    px_server_set_state(sv[1], SV_IDLE);
    assert_counts(pool, 2, 1);
    assert_ptr_equal(nth(&pool->idle, 0), sv[1]);    /* most recently used first */
    assert_ptr_equal(nth(&pool->idle, 1), sv[0]);

    px_server_set_state(sv[1], SV_IDLE);             /* IDLE -> IDLE keeps its place */
    assert_counts(pool, 2, 1);
    assert_ptr_equal(nth(&pool->idle, 0), sv[1]);

    px_server_set_state(sv[0], SV_CHECKING);         /* server_check_delay: off the idle list */
    assert_counts(pool, 1, 2);
    assert_ptr_equal(nth(&pool->busy, 1), sv[0]);
    px_server_set_state(sv[0], SV_IDLE);             /* checked, no one waits any more */
    assert_counts(pool, 2, 1);
    assert_ptr_equal(nth(&pool->idle, 0), sv[0]);
    px_server_set_state(sv[0], SV_CHECKING);
    px_server_set_state(sv[0], SV_ACTIVE);           /* checked, to the waiting client */
    assert_counts(pool, 1, 2);
    px_server_set_state(sv[0], SV_IDLE);
    assert_counts(pool, 2, 1);
    assert_ptr_equal(nth(&pool->idle, 0), sv[0]);
    assert_ptr_equal(nth(&pool->idle, 1), sv[1]);

    px_server_set_state(sv[1], SV_ACTIVE);           /* attached: onto the busy list's tail */
    assert_counts(pool, 1, 2);
    assert_ptr_equal(nth(&pool->busy, 1), sv[1]);
    px_server_set_state(sv[1], SV_ACTIVE);           /* straight to the next waiting client */
    assert_counts(pool, 1, 2);
    px_server_set_state(sv[1], SV_CANCEL_WAIT);
    px_server_set_state(sv[1], SV_RESETTING);
    assert_counts(pool, 1, 2);
    px_server_set_state(sv[1], SV_IDLE);
    assert_counts(pool, 2, 1);
    assert_ptr_equal(nth(&pool->idle, 0), sv[1]);

    px_server_set_state(sv[2], SV_CLOSED);           /* from busy */
    assert_counts(pool, 2, 0);
    assert_ptr_equal(sv[2]->link.next, &sv[2]->link);   /* in no list */
    px_server_set_state(sv[0], SV_CLOSED);           /* from idle */
    assert_counts(pool, 1, 0);
    assert_ptr_equal(nth(&pool->idle, 0), sv[1]);
    px_server_set_state(sv[1], SV_ACTIVE);
    px_server_set_state(sv[1], SV_CLOSED);
    assert_counts(pool, 0, 0);
    assert_int_equal(sv[1]->state, SV_CLOSED);
    for (int i = 0; i < 3; i++)
        free(sv[i]);
    free(pool);
}

/* Two pools of one database and two users: the caps' counts follow opens and closes, not moves. */
static void test_cap_counts_follow_states(void **state)
{
    struct px_cap db = { .kind = PX_CAP_DB }, u1 = { .kind = PX_CAP_USER }, u2 = { .kind = PX_CAP_USER };
    struct px_pool *pool[2];
    struct px_server *sv[3];

    (void)state;
    for (int i = 0; i < 2; i++) {
        pool[i] = calloc(1, sizeof(*pool[i]));
        assert_non_null(pool[i]);
        px_list_init(&pool[i]->idle);
        px_list_init(&pool[i]->busy);
        pool[i]->cap[PX_CAP_DB] = &db;
        pool[i]->cap[PX_CAP_USER] = i ? &u2 : &u1;   /* no server cap: left NULL */
    }
    for (int i = 0; i < 3; i++) {
        sv[i] = calloc(1, sizeof(*sv[i]));
        assert_non_null(sv[i]);
        sv[i]->pool = pool[i == 2];
        sv[i]->conn.id = (uint64_t)i + 1;
        px_server_set_state(sv[i], SV_CONNECTING);   /* counted from the moment it connects */
    }
    assert_int_equal(db.n, 3);
    assert_int_equal(u1.n, 2);
    assert_int_equal(u2.n, 1);
    px_server_set_state(sv[0], SV_LOGIN);
    px_server_set_state(sv[0], SV_IDLE);
    px_server_set_state(sv[0], SV_ACTIVE);
    px_server_set_state(sv[0], SV_IDLE);
    assert_int_equal(db.n, 3);                        /* list moves leave the counts alone */
    assert_int_equal(u1.n, 2);
    px_server_set_state(sv[0], SV_CLOSED);
    px_server_set_state(sv[2], SV_CLOSED);
    assert_int_equal(db.n, 1);
    assert_int_equal(u1.n, 1);
    assert_int_equal(u2.n, 0);
    px_server_set_state(sv[1], SV_CLOSED);
    assert_int_equal(db.n, 0);
    assert_int_equal(u1.n, 0);
    for (int i = 0; i < 3; i++)
        free(sv[i]);
    free(pool[0]);
    free(pool[1]);
}

/* A client's state is recorded through a whole life: login, transactions, a retry, the close. */
static void test_client_sequence(void **state)
{
    static const enum px_client_state seq[] = {
        CL_AUTH_SASL_INIT, CL_AUTH_SASL_FINAL, CL_LOGIN_WAIT, CL_IDLE, CL_WAITING, CL_ACTIVE, CL_WAITING,
        CL_ACTIVE, CL_IDLE, CL_WAITING, CL_IDLE, CL_CLOSED,
    };
    struct px_client *cl = calloc(1, sizeof(*cl));

    (void)state;
    assert_non_null(cl);
    assert_int_equal(cl->state, CL_STARTUP);         /* as calloc leaves it */
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        px_client_set_state(cl, seq[i]);
        assert_int_equal(cl->state, seq[i]);
    }
    free(cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_table),
        cmocka_unit_test(test_client_table),
        cmocka_unit_test(test_tx_route_table),
        cmocka_unit_test(test_tx_route_sequence),
        cmocka_unit_test(test_illegal_samples),
        cmocka_unit_test(test_server_lists),
        cmocka_unit_test(test_pool_lists_follow_states),
        cmocka_unit_test(test_cap_counts_follow_states),
        cmocka_unit_test(test_client_sequence),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
