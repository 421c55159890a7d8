/*
 * The command line of build/pglane: --version, --help, --check on valid and invalid configs
 * (file:line: message, exit 1), and a foreground start with a bad config. No cluster needed.
 */
#include "tests/integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[H_PATH];

static int scratch_dir(void)
{
    snprintf(g_dir, sizeof g_dir, "%s", h_scratch_dir());
    return 0;
}

static int run_pglane(const char *a1, const char *a2, char **out)
{
    const char *argv[] = { h_pglane_bin(), a1, a2, NULL };
    if (!a1)
        argv[1] = NULL;
    return h_run(argv, NULL, 10000, out);
}

static void write_conf(const char *name, const char *text, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", g_dir, name);
    assert_int_equal(h_write_file(path, text), 0);
}

static void test_version(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    char *out = NULL;
    int rc = run_pglane("--version", NULL, &out);
    fprintf(stderr, "--version: %s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "pglane"));
    assert_non_null(strpbrk(out, "0123456789"));
    free(out);
    h_pass();
}

static void test_help(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    char *out = NULL;
    int rc = run_pglane("--help", NULL, &out);
    assert_int_equal(rc, 0);
    assert_non_null(strcasestr(out, "usage"));
    assert_non_null(strstr(out, "--check"));
    assert_non_null(strstr(out, "--version"));
    free(out);
    /* No arguments, or an unknown option: a usage error, not a start. */
    rc = run_pglane(NULL, NULL, &out);
    assert_true(rc != 0 && rc < 1000);
    free(out);
    rc = run_pglane("--no-such-option", NULL, &out);
    assert_true(rc != 0 && rc < 1000);
    free(out);
    h_pass();
}

static void test_check_valid(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    char auth[H_PATH + 32], path[H_PATH + 32], text[4096];
    snprintf(auth, sizeof auth, "%s/userlist.txt", g_dir);
    assert_int_equal(h_write_file(auth, "\"app\" \"apppass\"\n"), 0);
    snprintf(text, sizeof text,
             "[pglane]\n"
             "listen = 127.0.0.1:6432\n"
             "unix_socket_dir = %s\n"
             "auth_type = scram-sha-256\n"
             "auth_file = %s\n"
             "pool_mode = transaction\n"
             "max_client_conn = 2000\n"
             "default_lane = main\n"
             "server_idle_timeout = 60s\n"
             "log_level = info\n"
             "\n"
             "[server.pg]\n"
             "host = 127.0.0.1\n"
             "port = 5432\n"
             "\n"
             "[lane.main]\n"
             "server = pg\n"
             "size = 4\n"
             "queue_timeout = 30s\n",
             g_dir, auth);
    write_conf("valid.ini", text, path, sizeof path);
    char *out = NULL;
    int rc = run_pglane("--check", path, &out);
    if (rc != 0)
        print_error("--check of a valid config: %d\n%s\n", rc, out);
    assert_int_equal(rc, 0);
    free(out);
    h_pass();
}

/* Asserts that out has a line starting with "path:line: " followed by a message. */
static void assert_diag(const char *out, const char *path, int line)
{
    char prefix[H_PATH + 48];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    const char *p = out;
    while ((p = strstr(p, prefix)) != NULL) {
        if (p == out || p[-1] == '\n') {
            const char *msg = p + strlen(prefix);
            if (*msg && *msg != '\n')
                return;
        }
        p++;
    }
    print_error("no \"%s<message>\" line in:\n%s\n", prefix, out);
    fail();
}

static void test_check_invalid(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    char auth[H_PATH + 32], path[H_PATH + 32], text[4096];
    snprintf(auth, sizeof auth, "%s/userlist.txt", g_dir);
    assert_int_equal(h_write_file(auth, "\"app\" \"apppass\"\n"), 0);
    snprintf(text, sizeof text,
             "[pglane]\n"                      /* 1 */
             "listen = 127.0.0.1:6432\n"       /* 2 */
             "auth_type = bogus\n"             /* 3: bad value */
             "auth_file = %s\n"                /* 4 */
             "pool_mode = transaction\n"       /* 5 */
             "no_such_key = 1\n"               /* 6: unknown key */
             "default_lane = main\n"           /* 7 */
             "\n"                              /* 8 */
             "[server.pg]\n"                   /* 9 */
             "host = 127.0.0.1\n"              /* 10 */
             "port = notanumber\n"             /* 11: bad value */
             "\n"                              /* 12 */
             "[lane.main]\n"                   /* 13 */
             "server = nosuchserver\n"         /* 14: dangling reference */
             "size = 4\n",                     /* 15 */
             auth);
    write_conf("invalid.ini", text, path, sizeof path);
    char *out = NULL;
    int rc = run_pglane("--check", path, &out);
    fprintf(stderr, "--check output:\n%s", out);
    assert_int_equal(rc, 1);
    assert_diag(out, path, 3);
    assert_diag(out, path, 6);
    assert_diag(out, path, 11);
    assert_diag(out, path, 14);
    free(out);

    /* A missing file is an error too. */
    char missing[H_PATH + 32];
    snprintf(missing, sizeof missing, "%s/does-not-exist.ini", g_dir);
    rc = run_pglane("--check", missing, &out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "does-not-exist.ini"));
    free(out);

    /* Starting (not --check) with the invalid config fails at once with the same diagnostics. */
    rc = run_pglane(path, NULL, &out);
    assert_true(rc != 0 && rc < 1000);
    assert_diag(out, path, 3);
    free(out);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_version),
        H_TEST(test_help),
        H_TEST(test_check_valid),
        H_TEST(test_check_invalid),
    };
    return H_RUN_GROUP("integration: command line", tests, .setup = scratch_dir);
}
