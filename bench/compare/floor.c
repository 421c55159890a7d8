/* bench/compare/floor.c — the floor: the least a user-space TCP proxy can do per transaction.
 *
 * One upstream connection per client (1:1, opened when the client connects), one epoll loop, no
 * parsing, no pooling, no authentication of its own: bytes read from one side are written to the
 * other with one write per read. bench/compare/run measures its CPU per transaction the way it
 * measures pglane's and PgBouncer's, so every table shows what a proxy spends beyond relaying.
 *
 * Usage: floor LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT   (listens on 127.0.0.1)
 * Runs until killed. A pair is closed when either side closes or fails.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSZ 65536

struct side;
struct pair {
    struct side *a, *b;
};
/* One socket; buf holds bytes read from the peer side not yet written to this socket. */
struct side {
    int fd;
    struct side *peer;
    struct pair *pair;
    char *buf;
    size_t off, len;
    int want_out;   /* EPOLLOUT registered: this socket has pending bytes */
};

static int ep;
static struct sockaddr_storage up_addr;
static socklen_t up_len;

static void set_events(struct side *s)
{
    struct epoll_event ev = { 0 };
    /* Read from s only while its peer has no pending bytes (backpressure). */
    ev.events = (s->peer->len == 0 ? EPOLLIN : 0) | (s->want_out ? EPOLLOUT : 0);
    ev.data.ptr = s;
    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

static void close_pair(struct pair *p)
{
    struct side *s[2] = { p->a, p->b };
    for (int i = 0; i < 2; i++) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s[i]->fd, NULL);
        close(s[i]->fd);
        free(s[i]->buf);
        s[i]->fd = -1;
    }
    /* Freed after the current batch of events: an event of this batch may still name them. */
}

static struct pair **dead;
static int ndead, dead_cap;

static void kill_pair(struct pair *p)
{
    if (p->a->fd < 0)
        return;
    close_pair(p);
    if (ndead == dead_cap) {
        dead_cap = dead_cap ? dead_cap * 2 : 64;
        dead = realloc(dead, (size_t)dead_cap * sizeof *dead);
    }
    dead[ndead++] = p;
}

/* Write s's pending bytes; returns -1 on error. */
static int flush(struct side *s)
{
    while (s->len > 0) {
        ssize_t n = send(s->fd, s->buf + s->off, s->len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        s->off += (size_t)n;
        s->len -= (size_t)n;
    }
    if (s->len == 0)
        s->off = 0;
    return 0;
}

static void on_readable(struct side *s)
{
    struct side *d = s->peer;
    if (d->len > 0)
        return;   /* reads from s are off until d drains; an event of this batch came before */
    ssize_t n = recv(s->fd, d->buf, BUFSZ, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        kill_pair(s->pair);
        return;
    }
    if (n < 0)
        return;
    d->off = 0;
    d->len = (size_t)n;
    if (flush(d) < 0) {
        kill_pair(s->pair);
        return;
    }
    if (d->len > 0) {
        d->want_out = 1;
        set_events(d);
        set_events(s);
    }
}

static void on_writable(struct side *d)
{
    if (flush(d) < 0) {
        kill_pair(d->pair);
        return;
    }
    if (d->len == 0) {
        d->want_out = 0;
        set_events(d);
        set_events(d->peer);
    }
}

static struct side *new_side(int fd, struct pair *p)
{
    struct side *s = calloc(1, sizeof *s);
    s->fd = fd;
    s->pair = p;
    s->buf = malloc(BUFSZ);
    return s;
}

static void on_accept(int lfd)
{
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        int ufd = socket(up_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        /* Blocking connect on loopback: immediate, and keeps the relay free of a connect state. */
        if (ufd < 0 || connect(ufd, (struct sockaddr *)&up_addr, up_len) < 0) {
            if (ufd >= 0)
                close(ufd);
            close(cfd);
            continue;
        }
        fcntl(ufd, F_SETFL, fcntl(ufd, F_GETFL) | O_NONBLOCK);
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct pair *p = calloc(1, sizeof *p);
        p->a = new_side(cfd, p);
        p->b = new_side(ufd, p);
        p->a->peer = p->b;
        p->b->peer = p->a;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = p->a };
        epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
        ev.data.ptr = p->b;
        epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
    if (getaddrinfo(argv[2], argv[3], &hints, &ai) != 0) {
        fprintf(stderr, "floor: cannot resolve %s:%s\n", argv[2], argv[3]);
        return 1;
    }
    memcpy(&up_addr, ai->ai_addr, ai->ai_addrlen);
    up_len = ai->ai_addrlen;
    freeaddrinfo(ai);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in la = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
    la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&la, sizeof la) < 0 || listen(lfd, 4096) < 0) {
        perror("floor: bind/listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    static int listen_tag;
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &listen_tag };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("floor: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &listen_tag) {
                on_accept(lfd);
                continue;
            }
            struct side *s = evs[i].data.ptr;
            if (s->fd < 0)
                continue;   /* its pair closed earlier in this batch */
            if (evs[i].events & EPOLLOUT)
                on_writable(s);
            if (s->fd < 0)
                continue;
            if (evs[i].events & EPOLLIN)
                on_readable(s);
            else if (evs[i].events & (EPOLLHUP | EPOLLERR))
                kill_pair(s->pair);
        }
        for (int i = 0; i < ndead; i++) {
            free(dead[i]->a);
            free(dead[i]->b);
            free(dead[i]);
        }
        ndead = 0;
    }
}
