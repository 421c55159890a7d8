/* Unit tests of conf/'s userlist (auth_file) parsing: PgBouncer's "user" "secret" format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "conf/conf.h"

static void test_userlist_parse(void **state)
{
    struct conf_userlist u;
    struct conf_diag d = {0};
    const char *text = "; comment\n# comment\n\n   \n\"alice\" \"secret\"\n"
                       "  \"bob\"\t\"md5abcdef\"  \r\n\"q\"\"uote\" \"p\"\"w\"\"\"\n"
                       "\"carol\" \"SCRAM-SHA-256$4096:c2FsdA==$a:b\"\n";

    (void)state;
    assert_int_equal(conf_userlist_parse(text, "users.txt", &u, &d), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(u.n, 4);
    assert_string_equal(u.users[0].name, "alice");
    assert_string_equal(conf_userlist_find(&u, "alice"), "secret");
    assert_string_equal(conf_userlist_find(&u, "bob"), "md5abcdef");
    assert_string_equal(conf_userlist_find(&u, "q\"uote"), "p\"w\"");
    assert_string_equal(conf_userlist_find(&u, "carol"), "SCRAM-SHA-256$4096:c2FsdA==$a:b");
    assert_null(conf_userlist_find(&u, "Alice"));
    assert_null(conf_userlist_find(&u, "alic"));
    assert_null(conf_userlist_find(&u, "nobody"));
    conf_userlist_free(&u);
    assert_int_equal(u.n, 0);
    conf_userlist_free(NULL);
}

static void test_userlist_errors(void **state)
{
    static const char *const bad[] = {
        "alice secret", "\"alice\"", "\"alice\" secret", "\"alice\" \"secret\" extra",
        "\"alice\"\"secret\"", "\"alice\" \"secret", "\"alice", "\"\" \"x\"", "'alice' 'secret'",
        "\"alice\" \"a\" \"b\"",
    };
    struct conf_userlist u;
    struct conf_diag d = {0};

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *text;

        assert_true(asprintf(&text, "\"ok\" \"ok\"\n; c\n%s\n", bad[i]) > 0);
        print_message("bad: %s\n", bad[i]);
        assert_int_equal(conf_userlist_parse(text, "u.txt", &u, &d), -1);
        assert_int_equal(d.n, 1);
        assert_string_equal(d.msgs[0], "u.txt:3: expected \"user\" \"password\"");
        assert_int_equal(u.n, 0);
        assert_null(u.users);
        conf_diag_free(&d);
        free(text);
    }
}

static void test_userlist_collects_all_errors(void **state)
{
    struct conf_userlist u;
    struct conf_diag d = {0};

    (void)state;
    assert_int_equal(conf_userlist_parse("x\n\"a\" \"1\"\ny\n\"a\" \"2\"\n\"e\" \"\"\n", "u.txt", &u, &d), -1);
    assert_int_equal(d.n, 4);
    assert_string_equal(d.msgs[0], "u.txt:1: expected \"user\" \"password\"");
    assert_string_equal(d.msgs[1], "u.txt:3: expected \"user\" \"password\"");
    assert_string_equal(d.msgs[2], "u.txt:4: user 'a' is listed twice");
    assert_string_equal(d.msgs[3], "u.txt:5: user 'e' has an empty password; empty passwords are refused");
    conf_diag_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_userlist_parse),
        cmocka_unit_test(test_userlist_errors),
        cmocka_unit_test(test_userlist_collects_all_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
