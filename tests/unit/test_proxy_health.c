/* Unit tests of proxy/health.c's pure parts (pg_lsn text, lag arithmetic, role names) and of the
 * configuration keys of server health (role, health_check_interval, health_check_failures). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "proxy/health.h"

static void test_lsn_parse(void **state)
{
    uint64_t v = 1;

    (void)state;
    assert_int_equal(px_lsn_parse("16/B374D848", &v), 0);
    assert_true(v == 0x16B374D848ull);
    assert_int_equal(px_lsn_parse("0/0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(px_lsn_parse("FFFFFFFF/FFFFFFFF", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(px_lsn_parse("0/3000148", &v), 0);
    assert_true(v == 0x3000148ull);
    assert_int_equal(px_lsn_parse("a/bc", &v), 0);     /* lower case too */
    assert_true(v == 0xA000000BCull);
    static const char *const bad[] = { "", "/", "16/", "/B374D848", "16B374D848", "16/B374D848 ", " 16/1",
                                       "1/2/3", "123456789/0", "0/123456789", "G/0", "-1/0", "0x1/0" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 42;
        if (px_lsn_parse(bad[i], &v) != -1)
            fail_msg("'%s' parsed", bad[i]);
        assert_true(v == 42);
    }
    assert_int_equal(px_lsn_parse(NULL, &v), -1);
}

static void test_lag_bytes(void **state)
{
    (void)state;
    assert_int_equal(px_lag_bytes(0x16B374D848ull, 0x16B374D000ull), 0x848);
    assert_int_equal(px_lag_bytes(0x100000000ull, 0xFFFFFFFFull), 1);   /* across the 4 GB boundary */
    assert_int_equal(px_lag_bytes(1000, 1000), 0);
    assert_int_equal(px_lag_bytes(1000, 2000), 0);       /* the replica saw WAL newer than our last look */
    assert_int_equal(px_lag_bytes(0, 2000), -1);         /* unknown */
    assert_int_equal(px_lag_bytes(2000, 0), -1);
}

static void test_lag_ms(void **state)
{
    (void)state;
    /* nothing received is waiting: no lag, however old the last replayed transaction is */
    assert_int_equal(px_lag_ms(5000, 5000, 10000000000, 1000000, 0), 0);
    assert_int_equal(px_lag_ms(5000, 6000, 10000000000, 1000000, 0), 0);
    /* WAL waits for replay: the time since the last replayed transaction */
    assert_int_equal(px_lag_ms(6000, 5000, 1700000002500000, 1700000000000000, 0), 2500);
    assert_int_equal(px_lag_ms(6000, 5000, 1700000000000999, 1700000000000000, 0), 0);   /* whole ms */
    /* clocks: a replay timestamp in the future counts as no lag */
    assert_int_equal(px_lag_ms(6000, 5000, 1700000000000000, 1700000000500000, 0), 0);
    /* nothing replayed since the replica started: unknown */
    assert_int_equal(px_lag_ms(6000, 5000, 1700000000000000, 0, 0), -1);
    /* seen caught up at a check 200 ms ago: the lag is at most 200 ms, however old the last replayed
     * transaction (the first write after a quiet primary) */
    assert_int_equal(px_lag_ms(6000, 5000, 1700000010000000, 1700000000000000, 1700000009800000), 200);
    /* caught up longer ago than the last replayed transaction committed: the replay timestamp's lag */
    assert_int_equal(px_lag_ms(6000, 5000, 1700000010000000, 1700000009900000, 1700000009000000), 100);
    /* nothing replayed since the start, but seen caught up: the time since */
    assert_int_equal(px_lag_ms(6000, 5000, 1700000010000000, 0, 1700000008500000), 1500);
    /* a caught-up time after the check's (the replica's clock stepped back) counts as no lag */
    assert_int_equal(px_lag_ms(6000, 5000, 1700000010000000, 1700000000000000, 1700000010500000), 0);
}

static void test_role_names(void **state)
{
    (void)state;
    assert_string_equal(px_role_name(PX_ROLE_PRIMARY), "primary");
    assert_string_equal(px_role_name(PX_ROLE_REPLICA), "replica");
    assert_string_equal(px_role_name(PX_ROLE_UNKNOWN), "unknown");
}

/* [pglane] lines 1-3, [server.s] line 4: appended server keys start at line 5. */
#define BASE "[pglane]\nauth_type = trust\ndefault_lane = a\n[server.s]\n"
#define LANE "[lane.a]\nserver = s\n"
/* [pglane] lines 1-3 and the key at line 4. */
#define PGLANE(key) "[pglane]\nauth_type = trust\ndefault_lane = a\n" key "\n[server.s]\n[lane.a]\n"

static struct conf *load(const char *text, const char *want_error)
{
    struct conf *c = NULL;
    struct conf_diag d = {0};
    int rc = conf_load_string(text, "test.ini", &c, &d);

    if (want_error) {
        assert_int_equal(rc, -1);
        assert_true(d.n >= 1);
        if (strcmp(d.msgs[0], want_error) != 0)
            fail_msg("got '%s', wanted '%s'", d.msgs[0], want_error);
        conf_diag_free(&d);
        return NULL;
    }
    for (int i = 0; i < d.n; i++)
        print_message("unexpected: %s\n", d.msgs[i]);
    assert_int_equal(rc, 0);
    conf_diag_free(&d);
    return c;
}

static void test_conf_keys(void **state)
{
    struct conf *c;

    (void)state;
    c = load(BASE LANE, NULL);
    assert_int_equal(c->servers[0].role, CONF_ROLE_AUTO);
    assert_int_equal(c->servers[0].role_set, 0);
    assert_int_equal(c->health_check_interval_ms, 1000);
    assert_int_equal(c->health_check_failures, 3);
    conf_free(c);

    c = load("[pglane]\nauth_type = trust\ndefault_lane = a\nhealth_check_interval = 250ms\n"
             "health_check_failures = 1\n[server.s]\nrole = replica\n" LANE
             "[server.p]\nrole = primary\n[server.q]\nrole = auto\n", NULL);
    assert_int_equal(c->servers[0].role, CONF_ROLE_REPLICA);
    assert_int_equal(c->servers[0].role_set, 1);
    assert_int_equal(c->servers[1].role, CONF_ROLE_PRIMARY);
    assert_int_equal(c->servers[2].role, CONF_ROLE_AUTO);
    assert_int_equal(c->servers[2].role_set, 1);
    assert_int_equal(c->health_check_interval_ms, 250);
    assert_int_equal(c->health_check_failures, 1);
    conf_free(c);

    c = load(PGLANE("health_check_interval = 0"), NULL);
    assert_int_equal(c->health_check_interval_ms, 0);
    conf_free(c);

    load(BASE "role = standby\n" LANE, "test.ini:5: role: expected primary, replica or auto, got 'standby'");
    load(PGLANE("health_check_interval = 5ms"),
         "test.ini:4: health_check_interval: expected a duration of at least 10ms, or 0 (off), got '5ms'");
    load(PGLANE("health_check_interval = soon"),
         "test.ini:4: health_check_interval: expected a duration of at least 10ms, or 0 (off), got 'soon'");
    load(PGLANE("health_check_failures = 0"),
         "test.ini:4: health_check_failures: expected an integer from 1 to 1000, got '0'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lsn_parse),
        cmocka_unit_test(test_lag_bytes),
        cmocka_unit_test(test_lag_ms),
        cmocka_unit_test(test_role_names),
        cmocka_unit_test(test_conf_keys),
    };
    return cmocka_run_group_tests_name("unit: proxy/health", tests, NULL, NULL);
}
