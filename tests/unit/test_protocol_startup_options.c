/*
 * proto_split_options: a StartupMessage's "options" value split as PostgreSQL splits it
 * (pg_split_opts: white space separates, a backslash takes the next character literally), then its
 * -c name=value / -cname=value / --name=value switches; anything else refused with its SQLSTATE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/proto.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct split_case {
    const char *opts;
    const char *want;      /* settings as "name=value|name=value", or NULL if refused */
    const char *sqlstate;  /* when refused */
    const char *msg;       /* a part of the message, when refused */
};

static const struct split_case cases[] = {
    { "", "", NULL, NULL },
    { "   \t ", "", NULL, NULL },
    { "-c statement_timeout=300ms", "statement_timeout=300ms", NULL, NULL },
    { "-c a=1 -c b=2", "a=1|b=2", NULL, NULL },
    { "  -c   a=1  \t\n-c\tb=2 ", "a=1|b=2", NULL, NULL },
    { "--search_path=myschema", "search_path=myschema", NULL, NULL },
    { "-cwork_mem=8MB", "work_mem=8MB", NULL, NULL },
    { "--lock-timeout=5s", "lock_timeout=5s", NULL, NULL },
    { "-c lock-timeout=5s-x", "lock_timeout=5s-x", NULL, NULL },
    { "-c my-ext.some-name=v", "my_ext.some_name=v", NULL, NULL },
    { "-c application_name=my\\ app", "application_name=my app", NULL, NULL },
    { "-c a=x\\\\y", "a=x\\y", NULL, NULL },
    { "-c a=\\\\", "a=\\", NULL, NULL },
    { "-c a=tail\\", "a=tail", NULL, NULL },
    { "-c a=one\\ \\ two -c b=3", "a=one  two|b=3", NULL, NULL },
    { "\\-c a=1", "a=1", NULL, NULL },
    { "-c a=b=c", "a=b=c", NULL, NULL },
    { "-c search_path=", "search_path=", NULL, NULL },
    { "-c a=1 --b=2 -cc=3", "a=1|b=2|c=3", NULL, NULL },
    { "-c", NULL, "42601", "invalid command-line argument for server process: -c" },
    { "-c a=1 -c", NULL, "42601", "server process: -c" },
    { "-c work_mem", NULL, "42601", "-c work_mem requires a value" },
    { "-cwork_mem", NULL, "42601", "-c work_mem requires a value" },
    { "--search_path", NULL, "42601", "--search_path requires a value" },
    { "-e", NULL, "0A000", "switch \"-e\"" },
    { "-c a=1 -d 5", NULL, "0A000", "switch \"-d\"" },
    { "-B 100", NULL, "0A000", "switch \"-B\"" },
    { "--", "", NULL, NULL },
    { "-c a=1 --", "a=1", NULL, NULL },
    { "-c a=1 -- -c b=2", NULL, "08P01", "\"-c\" in startup parameter" },
    { "-- --", NULL, "08P01", "\"--\" in startup parameter" },
    { "stray", NULL, "08P01", "\"stray\" in startup parameter \"options\"" },
    { "-c a=1 stray", NULL, "08P01", "\"stray\"" },
    { "-", NULL, "08P01", "\"-\" in startup parameter" },
    { "a=1", NULL, "08P01", "\"a=1\"" },
};

static void join(const struct proto_option *o, int n, char *out, size_t cap)
{
    size_t len = 0;

    out[0] = '\0';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s=%s", i ? "|" : "", o[i].name, o[i].value);
}

static void test_split_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const struct split_case *c = &cases[i];
        size_t len = strlen(c->opts) + 1;
        char *work = malloc(len);   /* exactly the documented size: ASan sees any overrun */
        struct proto_option out[8];
        char err[256] = "", got[512];
        const char *sqlstate = NULL;
        int n;

        assert_non_null(work);
        n = proto_split_options(c->opts, work, len, out, 8, err, sizeof err, &sqlstate);
        if (c->want) {
            if (n < 0)
                fail_msg("\"%s\": refused (%s %s)", c->opts, sqlstate, err);
            join(out, n, got, sizeof got);
            if (strcmp(got, c->want) != 0)
                fail_msg("\"%s\": got \"%s\", want \"%s\"", c->opts, got, c->want);
        } else {
            if (n >= 0)
                fail_msg("\"%s\": accepted, want %s", c->opts, c->sqlstate);
            assert_non_null(sqlstate);
            if (strcmp(sqlstate, c->sqlstate) != 0 || !strstr(err, c->msg))
                fail_msg("\"%s\": got %s \"%s\", want %s \"...%s...\"", c->opts, sqlstate, err, c->sqlstate, c->msg);
        }
        free(work);
    }
}

/* More settings than out[] holds, or a work buffer too small: refused, nothing written past them. */
static void test_split_limits(void **state)
{
    (void)state;
    struct proto_option out[3];
    char work[64], err[128];
    const char *sqlstate = NULL;

    assert_int_equal(proto_split_options("-c a=1 -c b=2", work, sizeof work, out, 2, err, sizeof err, &sqlstate), 2);
    assert_int_equal(proto_split_options("-c a=1 -c b=2 -c c=3", work, sizeof work, out, 2, err, sizeof err,
                                         &sqlstate), -1);
    assert_string_equal(sqlstate, "54000");
    sqlstate = NULL;
    assert_int_equal(proto_split_options("-c a=1", work, 6, out, 3, err, sizeof err, &sqlstate), -1);
    assert_string_equal(sqlstate, "54000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_table),
        cmocka_unit_test(test_split_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
