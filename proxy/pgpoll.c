/*
 * pglane's own libpq connections on the event loop: see pgpoll.h.
 */
#include "proxy/pgpoll.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

void px_pgpoll_init(struct px_pgpoll *p, uv_loop_t *loop, uv_poll_cb cb, void *data)
{
    p->loop = loop;
    p->cb = cb;
    p->data = data;
    p->poll = NULL;
    p->fd = -1;
    p->events = 0;
}

static void on_poll_closed(uv_handle_t *h)
{
    free(h);
}

void px_pgpoll_close(struct px_pgpoll *p)
{
    if (!p->poll)
        return;
    uv_poll_stop(p->poll);
    uv_close((uv_handle_t *)p->poll, on_poll_closed);
    p->poll = NULL;
    p->fd = -1;
}

int px_pgpoll_for(struct px_pgpoll *p, PGconn *pg, int events)
{
    int fd = PQsocket(pg);

    if (fd < 0)
        return -1;
    if (p->poll && p->fd != fd)
        px_pgpoll_close(p);
    if (!p->poll) {
        p->poll = calloc(1, sizeof(*p->poll));
        if (!p->poll || uv_poll_init(p->loop, p->poll, fd) < 0) {
            free(p->poll);
            p->poll = NULL;
            return -1;
        }
        p->poll->data = p->data;
        p->fd = fd;
        p->events = 0;
    }
    if (p->events != events && uv_poll_start(p->poll, events, p->cb) < 0)
        return -1;
    p->events = events;
    return 0;
}

int px_pgpoll_connect(struct px_pgpoll *p, PGconn **pg, const struct conf_server *cs, const char *user,
                      const char *dbname, const char *app, const char *password)
{
    const char *keys[10], *vals[10];
    char port[16];
    int n = 0;

    snprintf(port, sizeof(port), "%d", cs->port);
    keys[n] = "host", vals[n++] = cs->host;
    keys[n] = "port", vals[n++] = port;
    keys[n] = "user", vals[n++] = user;
    keys[n] = "dbname", vals[n++] = dbname;
    keys[n] = "application_name", vals[n++] = app;
    keys[n] = "sslmode", vals[n++] = px_libpq_sslmode(cs->tls_mode);
    if (cs->tls_ca_file)
        keys[n] = "sslrootcert", vals[n++] = cs->tls_ca_file;
    if (password && *password)
        keys[n] = "password", vals[n++] = password;
    keys[n] = NULL, vals[n] = NULL;
    *pg = PQconnectStartParams(keys, vals, 0);
    if (!*pg || PQstatus(*pg) == CONNECTION_BAD || px_pgpoll_for(p, *pg, UV_WRITABLE) < 0)
        return -1;
    return 0;
}

int px_pgpoll_flush(struct px_pgpoll *p, PGconn *pg)
{
    int r = PQflush(pg);

    return r < 0 ? -1 : px_pgpoll_for(p, pg, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

int px_pgpoll_connect_step(struct px_pgpoll *p, PGconn *pg, const char **why)
{
    *why = NULL;
    switch (PQconnectPoll(pg)) {
    case PGRES_POLLING_READING:
        if (px_pgpoll_for(p, pg, UV_READABLE) < 0)
            break;
        return 0;
    case PGRES_POLLING_WRITING:
        if (px_pgpoll_for(p, pg, UV_WRITABLE) < 0)
            break;
        return 0;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(pg, 1) < 0 || px_pgpoll_for(p, pg, UV_READABLE) < 0) {
            *why = "cannot make the connection non-blocking";
            return -1;
        }
        return 1;
    case PGRES_POLLING_FAILED:
    case PGRES_POLLING_ACTIVE:
        return -1;
    }
    *why = "cannot poll the connection";
    return -1;
}

const char *px_libpq_sslmode(enum conf_server_tls m)
{
    switch (m) {
    case CONF_STLS_DISABLE: return "disable";
    case CONF_STLS_PREFER: return "prefer";
    case CONF_STLS_REQUIRE: return "require";
    case CONF_STLS_VERIFY_CA: return "verify-ca";
    case CONF_STLS_VERIFY_FULL: return "verify-full";
    }
    return "prefer";
}

const struct px_pool *px_pgpoll_credentials(struct proxy *px, const char *name, int any_server)
{
    const struct px_pool *any = NULL;

    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        const struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (strcmp(pool->ep->server->name, name) == 0)
            return pool;
        if (!any)
            any = pool;
    }
    return any_server ? any : NULL;
}

int px_pgpoll_connect_pool(struct px_pgpoll *p, PGconn **pg, const struct conf_server *cs,
                           const struct px_pool *pool, const char *app)
{
    const char *pw = pool->secret;

    if (pw && (strncmp(pw, "md5", 3) == 0 || strncmp(pw, "SCRAM-SHA-256$", 14) == 0))
        pw = NULL;
    return px_pgpoll_connect(p, pg, cs, pool->user, pool->database, app, pw);
}
