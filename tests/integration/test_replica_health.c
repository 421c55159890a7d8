/*
 * Server health and roles (issue 15): the harness's streaming replica, and pglane's health checks of
 * a primary and a replica: roles learned with role = auto, replay lag in bytes and time while the
 * replica's replay is paused, a stopped replica going down (its idle connections closed) and coming
 * back, and a promoted replica becoming the primary without a pglane restart.
 */
#include "tests/integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct h_pg g_pg;        /* the primary */
static struct h_pg g_replica;   /* streaming from g_pg */

static int fixtures(void)
{
    if (h_pg_exec(&g_pg, H_DB, "CREATE TABLE events (id serial PRIMARY KEY, note text);"
                               "ALTER TABLE events OWNER TO " H_USER) != 0)
        return -1;
    return h_pg_start_replica(&g_replica, &g_pg);
}

static int teardown(void)
{
    h_pg_stop(&g_replica);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

/* The harness's replica is a hot standby streaming from the primary: a row inserted on the primary
 * can be read on the replica once it has replayed the primary's current LSN, and writes fail there. */
static void test_harness_replica_streams(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    PGconn *p = h_pg_super(&g_pg, H_DB), *r = h_pg_super(&g_replica, H_DB);
    assert_non_null(p);
    assert_non_null(r);
    assert_int_equal(h_pg_long(r, "SELECT pg_is_in_recovery()::int"), 1);
    assert_int_equal(h_pg_long(p, "SELECT pg_is_in_recovery()::int"), 0);
    assert_int_equal(h_pg_long(r, "SELECT count(*) FROM events WHERE note = 'harness'"), 0);
    assert_int_equal(h_exec(p, "INSERT INTO events (note) VALUES ('harness')"), 0);
    assert_int_equal(h_pg_wait_replay(&g_replica, &g_pg, 10000), 0);
    assert_int_equal(h_pg_long(r, "SELECT count(*) FROM events WHERE note = 'harness'"), 1);
    assert_string_equal(h_exec_sqlstate(r, "INSERT INTO events (note) VALUES ('on the standby')"), "25006");
    PQfinish(p);
    PQfinish(r);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_harness_replica_streams),
    };
    return H_RUN_GROUP("integration_replica_health", tests, .pg = &g_pg, .skip_direct = 1, .setup = fixtures,
                       .teardown = teardown);
}
