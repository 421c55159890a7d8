/*
 * backend_nice (README, Fairness and adaptive lanes, "CPU priority of a lane's backends"): a lane's
 * backends run at a lower CPU priority on the database host, so that the kernel gives a busy core to
 * an OLTP backend first and lends the analytics backends whatever CPU is left: a nice value
 * (setpriority), or backend_nice = idle, the SCHED_IDLE policy (sched_setscheduler), which any other
 * task preempts at once when it wakes.
 *
 * pglane can renice a backend only when PostgreSQL runs on its own host (conf/validate.c requires a
 * unix socket directory or a loopback address) and when it may (as root, as PostgreSQL's user, or
 * with CAP_SYS_NICE). Before it touches a pid it checks that the pid is the backend at the other end
 * of this very socket, since a pid from BackendKeyData is only a number the server sent:
 *  - unix socket: the socket's peer (SO_PEERCRED) is the postmaster, and the backend is its child;
 *  - TCP over loopback: the server's end of the connection, found in /proc/net/tcp or tcp6 by its
 *    two addresses, is a socket the backend holds (/proc/PID/fd).
 * This runs once per server connection as it logs in, never per transaction.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf/conf.h"
#include "proxy/nice.h"

#define WHY(...) snprintf(why, whylen, __VA_ARGS__)

/* The parent pid of pid from /proc/PID/stat ("pid (comm) state ppid ..."; comm may hold spaces and
 * parentheses, so read after the last ')'); -1 if unreadable. */
static long parent_of(uint32_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%u/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    long ppid;
    char state;
    if (!p || sscanf(p + 1, " %c %ld", &state, &ppid) != 2)
        return -1;
    return ppid;
}

/* 1 if pid holds the socket with this inode, 0 if not, -1 if its descriptors cannot be read. */
static int holds_socket(uint32_t pid, unsigned long inode)
{
    char path[64], want[64], link[64];
    snprintf(path, sizeof path, "/proc/%u/fd", pid);
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof link - 1);
        if (n > 0) {
            link[n] = '\0';
            found = strcmp(link, want) == 0;
        }
    }
    closedir(d);
    return found;
}

/* One address of a /proc/net/tcp* line ("0100007F:1538", or 32 hex digits for IPv6) against sa. */
static int addr_is(const char *tok, const struct sockaddr_storage *sa)
{
    unsigned int w[4], port;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        uint32_t raw;
        if (sscanf(tok, "%8X:%4X", &w[0], &port) != 2)
            return 0;
        memcpy(&raw, &in->sin_addr, 4);
        return w[0] == raw && port == ntohs(in->sin_port);   /* the kernel prints the address as stored */
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (sscanf(tok, "%8X%8X%8X%8X:%4X", &w[0], &w[1], &w[2], &w[3], &port) != 5)
        return 0;
    for (int i = 0; i < 4; i++) {
        uint32_t raw;
        memcpy(&raw, in6->sin6_addr.s6_addr + 4 * i, 4);
        if (w[i] != raw)
            return 0;
    }
    return port == ntohs(in6->sin6_port);
}

/* The inode of the socket whose local address is srv and remote address cli; 0 if not found. */
static unsigned long server_socket_inode(const struct sockaddr_storage *srv, const struct sockaddr_storage *cli)
{
    FILE *f = fopen(srv->ss_family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6", "r");
    if (!f)
        return 0;
    char line[512], local[64], remote[64];
    unsigned long inode, found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, " %*s %63s %63s %*s %*s %*s %*s %*s %*s %lu", local, remote, &inode) == 3 &&
            inode != 0 && addr_is(local, srv) && addr_is(remote, cli))
            found = inode;
    }
    fclose(f);
    return found;
}

static int is_loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

/* 0 if pid is the backend at the other end of fd; -1 (why says why) if not or if it cannot be told. */
static int check_backend(int fd, uint32_t pid, char *why, size_t whylen)
{
    struct sockaddr_storage mine, peer;
    socklen_t ml = sizeof mine, pl = sizeof peer;

    if (getsockname(fd, (struct sockaddr *)&mine, &ml) < 0 || getpeername(fd, (struct sockaddr *)&peer, &pl) < 0) {
        WHY("the socket's addresses: %s", strerror(errno));
        return -1;
    }
    if (mine.ss_family == AF_UNIX) {
        struct ucred cr;
        socklen_t cl = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0) {
            WHY("SO_PEERCRED: %s", strerror(errno));
            return -1;
        }
        long ppid = parent_of(pid);
        if (ppid != (long)cr.pid) {
            WHY("pid %u is not a child of the postmaster at the socket's other end (pid %ld)", pid, (long)cr.pid);
            return -1;
        }
        return 0;
    }
    if ((mine.ss_family != AF_INET && mine.ss_family != AF_INET6) || !is_loopback(&peer)) {
        WHY("the server is not on a loopback address");
        return -1;
    }
    unsigned long inode = server_socket_inode(&peer, &mine);
    if (inode == 0) {
        WHY("the server's end of the connection is not in /proc/net");
        return -1;
    }
    int h = holds_socket(pid, inode);
    if (h < 0) {
        WHY("cannot read /proc/%u/fd: %s", pid, strerror(errno));
        return -1;
    }
    if (h == 0) {
        WHY("pid %u does not hold the server's end of the connection", pid);
        return -1;
    }
    return 0;
}

int px_backend_nice(int fd, uint32_t pid, int nice, char *why, size_t whylen)
{
    struct sched_param none = { .sched_priority = 0 };

    if (pid == 0) {
        WHY("the server sent no backend pid");
        return -1;
    }
    if (check_backend(fd, pid, why, whylen) < 0)
        return -1;
    if (nice == CONF_NICE_IDLE) {
        if (sched_setscheduler((pid_t)pid, SCHED_IDLE, &none) < 0) {
            WHY("sched_setscheduler(SCHED_IDLE): %s", strerror(errno));
            return -1;
        }
    } else if (setpriority(PRIO_PROCESS, (id_t)pid, nice) < 0) {
        WHY("setpriority: %s", strerror(errno));
        return -1;
    }
    return 0;
}
