/*
 * Socket chores: resolution, listen, connect, accept, options and peer addresses, for listeners,
 * client and server connections, cancel connections and the metrics endpoint alike.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf/conf.h"
#include "proxy/net/sock.h"

int px_resolve(const char *host, int port, struct sockaddr_storage *out)
{
    struct addrinfo hints = { 0 }, *res = NULL;
    char portstr[16];

    snprintf(portstr, sizeof(portstr), "%d", port);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
        return -1;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int px_sock_numeric_addr(const char *host, int port, struct sockaddr_storage *out)
{
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) < 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) < 0)
        return -1;
    return 0;
}

int px_sock_listen_tcp(uv_loop_t *loop, uv_tcp_t *h, const struct sockaddr *addr, int backlog,
                       uv_connection_cb cb)
{
    return px_sock_listen_tcp_ex(loop, h, addr, backlog, 0, cb);
}

int px_sock_listen_tcp_ex(uv_loop_t *loop, uv_tcp_t *h, const struct sockaddr *addr, int backlog, int reuseport,
                          uv_connection_cb cb)
{
    uv_os_fd_t fd;
    int r, one = 1;

    if (!reuseport) {
        uv_tcp_init(loop, h);
    } else {
        /* The socket must exist before the bind to take the option: libuv creates it now. */
        r = uv_tcp_init_ex(loop, h, addr->sa_family);
        if (r < 0) {
            uv_tcp_init(loop, h);
            return r;
        }
        if ((r = uv_fileno((uv_handle_t *)h, &fd)) < 0)
            return r;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
            return -errno;             /* libuv's error codes are negated errno values */
    }
    r = uv_tcp_bind(h, addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)h, backlog, cb);
    return r;
}

int px_sock_listen_unix(uv_loop_t *loop, uv_pipe_t *h, const char *path, int backlog, uv_connection_cb cb)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd, r;

    /* The socket is made and bound here, not by uv_pipe_bind: libuv would remove the path when the
     * handle closes, even after another process (so_reuseport, a rolling restart) has replaced it;
     * the owner removes it itself if it is still its own (px_sock_path_id). */
    uv_pipe_init(loop, h, 0);
    if (strlen(path) >= sizeof(sa.sun_path))
        return UV_ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    r = uv_pipe_open(h, fd);
    if (r < 0) {
        close(fd);
        unlink(path);
        return r;
    }
    r = uv_listen((uv_stream_t *)h, backlog, cb);
    if (r == 0)
        chmod(path, 0777);
    return r;
}

int px_sock_path_id(const char *path, struct px_file_id *id)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return -1;
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    id->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
    return 0;
}

int px_sock_init_like(uv_loop_t *loop, const uv_stream_t *listener, union px_handle *h)
{
    if (listener->type == UV_TCP)
        return uv_tcp_init(loop, &h->tcp);
    return uv_pipe_init(loop, &h->pipe, 0);
}

int px_sock_connect(uv_loop_t *loop, union px_handle *h, uv_connect_t *req, const char *path,
                    const struct sockaddr *addr, uv_connect_cb cb)
{
    if (path) {
        uv_pipe_init(loop, &h->pipe, 0);
        uv_pipe_connect(req, &h->pipe, path, cb);
        return 0;
    }
    uv_tcp_init(loop, &h->tcp);
    return uv_tcp_connect(req, &h->tcp, addr, cb);
}

/* A duration in whole seconds for the keepalive options (at least 1: the kernel counts seconds). */
static int whole_seconds(int64_t ms)
{
    int64_t s = (ms + 999) / 1000;

    return s > 32767 ? 32767 : (int)s;    /* the kernel's limit for TCP_KEEPIDLE and TCP_KEEPINTVL */
}

void px_sock_set_options(union px_handle *h, const struct conf *c)
{
    uv_os_fd_t fd;
    int on;

    if (h->handle.type != UV_TCP)
        return;
    uv_tcp_nodelay(&h->tcp, 1);
    if (!c || uv_fileno(&h->handle, &fd) != 0)
        return;
    /* Failures are ignored: the connection works without them, as with the kernel's defaults. */
    on = c->tcp_keepalive != 0;
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    if (on) {
        int idle = whole_seconds(c->tcp_keepidle_ms), intvl = whole_seconds(c->tcp_keepintvl_ms), cnt = c->tcp_keepcnt;

        if (c->tcp_keepidle_ms > 0)
            (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        if (c->tcp_keepintvl_ms > 0)
            (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        if (cnt > 0)
            (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    }
    if (c->tcp_user_timeout_ms > 0) {
        unsigned int ut = c->tcp_user_timeout_ms > INT_MAX ? INT_MAX : (unsigned int)c->tcp_user_timeout_ms;

        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
    }
}

void px_sock_peer(union px_handle *h, uint8_t *family, uint8_t addr[16], uint16_t *port)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (h->handle.type != UV_TCP || uv_tcp_getpeername(&h->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    *family = (uint8_t)ss.ss_family;
    if (ss.ss_family == AF_INET6) {
        memcpy(addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        memcpy(addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
}

const char *px_sock_addr_name(uint8_t family, const uint8_t addr[16], char *buf, size_t n)
{
    if (family == AF_INET6)
        uv_inet_ntop(AF_INET6, addr, buf, n);
    else if (family == AF_INET)
        uv_inet_ntop(AF_INET, addr, buf, n);
    else
        snprintf(buf, n, "unix");
    return buf;
}
