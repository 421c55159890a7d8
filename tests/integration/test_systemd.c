/*
 * pglane as a systemd Type=notify service: with NOTIFY_SOCKET set (as systemd sets it), pglane
 * sends READY=1 once its listeners accept connections, RELOADING=1 (with MONOTONIC_USEC) then
 * READY=1 around a SIGHUP reload, and STOPPING=1 when SIGTERM starts the drain. The test plays the
 * service manager: it owns the datagram socket and reads what arrives.
 */
#include "tests/integration/harness.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct h_pg g_pg;

/* Reads one notification within timeout_ms into buf; its length, or -1 on timeout. */
static int recv_notify(int fd, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    ssize_t n = recv(fd, buf, cap - 1, 0);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    fprintf(stderr, "notify: %s\n", buf);
    return (int)n;
}

/* Waits for a notification containing `want` (others are skipped); 0 or -1 on timeout. */
static int expect_notify(int fd, const char *want, char *buf, size_t cap, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    while (h_now_ms() < deadline)
        if (recv_notify(fd, buf, cap, (int)(deadline - h_now_ms())) >= 0 && strstr(buf, want))
            return 0;
    return -1;
}

static void test_notify_ready_reload_stopping(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char conf[2048], buf[512];
    struct h_pglane l = { 0 };

    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify.sock", h_scratch_dir());
    unlink(sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);

    h_conf(conf, sizeof conf, "transaction", 2, "md5", NULL);
    assert_int_equal(setenv("NOTIFY_SOCKET", sa.sun_path, 1), 0);
    int rc = h_pglane_spawn(&l, &g_pg, conf);
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(rc, 0);

    /* READY=1 comes once the listener is up: a connection made right after it is accepted. */
    assert_int_equal(expect_notify(fd, "READY=1", buf, sizeof buf, 10000), 0);
    int raw = h_raw_connect(l.port);
    assert_true(raw >= 0);
    close(raw);
    PGconn *c = h_connect(&l, NULL);
    H_ASSERT_CONNECTED(c);
    char *v = h_query1(c, "SELECT 40 + 2");
    assert_non_null(v);
    assert_string_equal(v, "42");
    free(v);

    /* SIGHUP: RELOADING=1 with the monotonic time systemd asks for, then READY=1 again. */
    assert_int_equal(h_pglane_signal(&l, SIGHUP), 0);
    assert_true(recv_notify(fd, buf, sizeof buf, 10000) > 0);
    assert_non_null(strstr(buf, "RELOADING=1"));
    assert_non_null(strstr(buf, "MONOTONIC_USEC="));
    assert_true(recv_notify(fd, buf, sizeof buf, 10000) > 0);
    assert_non_null(strstr(buf, "READY=1"));
    v = h_query1(c, "SELECT 1");
    assert_non_null(v);
    free(v);
    PQfinish(c);

    /* SIGTERM: STOPPING=1 as the drain starts, then a clean exit. */
    assert_int_equal(h_pglane_signal(&l, SIGTERM), 0);
    assert_int_equal(expect_notify(fd, "STOPPING=1", buf, sizeof buf, 10000), 0);
    assert_int_equal(h_pglane_wait_exit(&l, 10000), 1);
    assert_int_equal(l.exit_status, 0);
    h_pglane_stop(&l);
    close(fd);
    unlink(sa.sun_path);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_notify_ready_reload_stopping),
    };
    return H_RUN_GROUP("integration: systemd notify", tests, .pg = &g_pg, .skip_direct = 1);
}
