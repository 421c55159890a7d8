/*
 * pglane's own libpq connections on the event loop (the lock monitor, auth_query): libpq in
 * non-blocking mode, its socket watched by a uv_poll_t. Never the forwarding path.
 */
#ifndef PGLANE_PROXY_PGPOLL_H
#define PGLANE_PROXY_PGPOLL_H

#include <libpq-fe.h>
#include <uv.h>

#include "conf/conf.h"

struct proxy;
struct px_pool;

struct px_pgpoll {
    uv_loop_t *loop;
    uv_poll_cb cb;                 /* called with the poll handle, whose data is `data` */
    void *data;
    uv_poll_t *poll;               /* NULL while nothing is watched */
    int fd, events;
};

void px_pgpoll_init(struct px_pgpoll *p, uv_loop_t *loop, uv_poll_cb cb, void *data);
/* Starts a connection to server cs (its host, port, TLS mode and CA) as user to dbname, named app,
 * with password (NULL or "": none) and watches it: 0, or -1 (*pg NULL: out of memory; else see
 * PQerrorMessage). Then px_pgpoll_connect_step on each event until it says connected. */
int px_pgpoll_connect(struct px_pgpoll *p, PGconn **pg, const struct conf_server *cs, const char *user,
                      const char *dbname, const char *app, const char *password);
/* The pool whose user, database and secret pglane's own connections to server `name` use: the first
 * pool on that server, else, with any_server, the first pool at all (a replica has its primary's
 * roles). NULL: no pool yet (the first client gives the credentials). */
const struct px_pool *px_pgpoll_credentials(struct proxy *px, const char *name, int any_server);
/* px_pgpoll_connect as pool's user to its database; its secret is the password only when it is a
 * plaintext one (libpq cannot log in with an md5 hash or a SCRAM verifier). */
int px_pgpoll_connect_pool(struct px_pgpoll *p, PGconn **pg, const struct conf_server *cs,
                           const struct px_pool *pool, const char *app);
/* Watches pg's current socket for events (libpq may change sockets while connecting). 0 or -1. */
int px_pgpoll_for(struct px_pgpoll *p, PGconn *pg, int events);
/* After a request was queued: flushes and watches for reading (and writing while output remains). */
int px_pgpoll_flush(struct px_pgpoll *p, PGconn *pg);
void px_pgpoll_close(struct px_pgpoll *p);
/* One PQconnectPoll step: 1 connected (non-blocking, watched for reading), 0 still connecting,
 * -1 failed (*why says what; NULL: see PQerrorMessage). */
int px_pgpoll_connect_step(struct px_pgpoll *p, PGconn *pg, const char **why);
/* libpq's sslmode for a server's server_tls_mode. */
const char *px_libpq_sslmode(enum conf_server_tls m);

#endif
