/*
 * Socket chores (proxy/net/sock.c): address resolution, listening on TCP and unix sockets,
 * connecting, accepting, socket options and the text of a peer's address. Everything else of
 * proxy/ goes through here rather than calling uv_tcp_bind, uv_listen, uv_tcp_getpeername or
 * uv_tcp_nodelay itself.
 */
#ifndef PGLANE_PROXY_NET_SOCK_H
#define PGLANE_PROXY_NET_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "proxy/net/stream.h"

/* Resolves host:port once (blocking: at start and reload only). 0 or -1. */
int px_resolve(const char *host, int port, struct sockaddr_storage *out);
/* A numeric IPv4 or IPv6 address (no name lookup) into out. 0 or -1. */
int px_sock_numeric_addr(const char *host, int port, struct sockaddr_storage *out);
/* Initialises h as a TCP socket, binds it to addr and listens. h is initialised (so it must be
 * closed) whatever the result. 0 or a negative libuv error. */
int px_sock_listen_tcp(uv_loop_t *loop, uv_tcp_t *h, const struct sockaddr *addr, int backlog,
                       uv_connection_cb cb);
/* The same, with SO_REUSEPORT set before the bind when reuseport is not 0: other processes (of the
 * same user) that set it too may listen on the same address, and the kernel spreads new connections
 * over them. */
int px_sock_listen_tcp_ex(uv_loop_t *loop, uv_tcp_t *h, const struct sockaddr *addr, int backlog, int reuseport,
                          uv_connection_cb cb);
/* The same for a unix socket at path: a stale file there is removed first, and the socket is made
 * connectable by everyone (0777: PostgreSQL's authentication decides). */
int px_sock_listen_unix(uv_loop_t *loop, uv_pipe_t *h, const char *path, int backlog, uv_connection_cb cb);
/* Identity of the file at path: device, inode and change time (an inode number freed by an unlink is
 * soon reused, by a socket file made at another time). */
struct px_file_id {
    uint64_t dev, ino;
    int64_t ctime_ns;
};
/* 0 and *id, or -1 if there is no file at path. */
int px_sock_path_id(const char *path, struct px_file_id *id);
/* Initialises h as the kind of socket listener accepts (TCP or unix). 0 or a negative libuv error. */
int px_sock_init_like(uv_loop_t *loop, const uv_stream_t *listener, union px_handle *h);
/* Initialises h and connects it to the unix socket path, or to addr when path is NULL; cb gets the
 * outcome. h is initialised whatever the result. 0 or a negative libuv error. */
int px_sock_connect(uv_loop_t *loop, union px_handle *h, uv_connect_t *req, const char *path,
                    const struct sockaddr *addr, uv_connect_cb cb);
/* Options of a connected TCP socket: TCP_NODELAY, and keepalive and TCP_USER_TIMEOUT as c says
 * (tcp_keepalive, tcp_keepidle, tcp_keepintvl, tcp_keepcnt, tcp_user_timeout); nothing for a unix
 * socket. */
struct conf;
void px_sock_set_options(union px_handle *h, const struct conf *c);
/* The peer of a connected socket: family (AF_INET, AF_INET6, or 0 for a unix socket or when
 * unknown), address bytes (4 or 16) and port. */
void px_sock_peer(union px_handle *h, uint8_t *family, uint8_t addr[16], uint16_t *port);
/* The text of an address px_sock_peer returned ("unix" for family 0), written into buf. */
const char *px_sock_addr_name(uint8_t family, const uint8_t addr[16], char *buf, size_t n);

#endif
