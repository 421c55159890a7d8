/*
 * proxy/lifecycle.h — the process's lifecycle (proxy/lifecycle.c): start, drain, reload on a signal,
 * stop. main.c starts it; the rest of proxy/ calls down into it, never the other way round.
 * Included by proxy/proxy.h.
 */
#ifndef PGLANE_PROXY_LIFECYCLE_H
#define PGLANE_PROXY_LIFECYCLE_H

struct proxy;
struct px_client;

/* Initializes the timers and starts the signal handles (px->loop set; before anything can fail and
 * before any worker opens a listener; the callbacks run once the loop runs). */
void px_lifecycle_init(struct proxy *px);
/* Closes the handles px_lifecycle_init made, when the worker stops before px_stop can run. */
void px_lifecycle_close(struct proxy *px);
/* Opens the listeners of listen and unix_socket_dir. 0 or -1 (logged). */
int px_listeners_open(struct proxy *px);
/* Starts the maintenance tick (and a drain asked before this worker attached): the process runs
 * from here on. */
void px_lifecycle_start(struct proxy *px);
/* SHUTDOWN / SIGTERM: stop accepting, let open transactions finish (serve connected clients for up to
 * client_drain_timeout first), then exit. A second call during that time closes the clients now. */
void px_drain(struct proxy *px);
/* 1 if a client's StartupMessage is refused (57P01) because of a drain: every client once clients
 * are being closed; while connected clients are still served (client_drain_timeout), those accepted
 * after the drain began. */
int px_drain_refuses(const struct px_client *cl);
/* During a drain: exits when the last client has gone. */
void px_maybe_exit(struct proxy *px);
/* Closes every handle (listeners, endpoints, clients, servers, timers) so that uv_run returns. */
void px_stop(struct proxy *px);
/* Frees what is left once the event loop has returned. */
void px_free(struct proxy *px);

#endif
