/*
 * The process's lifecycle: listeners open at start and close at a drain or an exit, the signals
 * (SIGTERM drains, SIGINT exits, SIGHUP reloads), the maintenance tick, and the stop that closes every
 * handle so that the event loop returns. main.c starts it; the client and the admin console call down
 * into it (px_maybe_exit, px_drain).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "proxy/proxy.h"

static void on_connection(uv_stream_t *server, int status)
{
    struct px_listener *l = (struct px_listener *)server;

    if (status < 0) {
        px_warn("accept: %s", uv_strerror(status));
        return;
    }
    px_client_accept(l->px, server);
}

int px_listeners_open(struct proxy *px)
{
    struct conf *c = px->conf;
    int n = c->nlisten + (c->unix_socket_dir ? 1 : 0);

    px->listeners = calloc((size_t)n, sizeof(*px->listeners));
    if (!px->listeners)
        return -1;
    for (int i = 0; i < c->nlisten; i++) {
        struct px_listener *l = &px->listeners[px->nlisteners];
        struct sockaddr_storage ss;
        int r;

        l->px = px;
        if (px_resolve(strcmp(c->listen[i].host, "*") == 0 ? "0.0.0.0" : c->listen[i].host,
                       c->listen[i].port, &ss) < 0) {
            px_error("listen: cannot resolve %s", c->listen[i].host);
            return -1;
        }
        /* Several workers share each port: every worker's listener takes SO_REUSEPORT. */
        r = px_sock_listen_tcp_ex(px->loop, &l->h.tcp, (const struct sockaddr *)&ss, 4096,
                                  px->so_reuseport || px->workers, on_connection);
        px->nlisteners++;
        if (r < 0) {
            px_error("listen on %s:%d: %s", c->listen[i].host, c->listen[i].port, uv_strerror(r));
            return -1;
        }
        l->peer = px_peer_own_listener(c, c->listen[i].host, c->listen[i].port);
        if (px->worker_id == 0)
            px_info("listening on %s:%d%s%s", c->listen[i].host, c->listen[i].port,
                    px->so_reuseport ? " (so_reuseport)" : "", l->peer ? " (this peer's address)" : "");
    }
    /* A unix socket cannot be shared by SO_REUSEPORT: the first worker takes it alone. */
    if (c->unix_socket_dir && px->worker_id == 0) {
        struct px_listener *l = &px->listeners[px->nlisteners];
        char path[512];
        int r;

        l->px = px;
        snprintf(path, sizeof(path), "%s/.s.PGSQL.%d", c->unix_socket_dir, c->nlisten ? c->listen[0].port : 6432);
        r = px_sock_listen_unix(px->loop, &l->h.pipe, path, 4096, on_connection);
        px->nlisteners++;
        if (r < 0) {
            px_error("listen on %s: %s", path, uv_strerror(r));
            return -1;
        }
        l->path = strdup(path);
        (void)px_sock_path_id(path, &l->path_id);
        l->peer = px_peer_own_listener(c, c->unix_socket_dir, c->nlisten ? c->listen[0].port : 6432);
        px_info("listening on %s%s", path, l->peer ? " (this peer's address)" : "");
    }
    return 0;
}

/* At a drain (all = 0) this process's [peers] address stays open: a peer may still forward it the
 * cancel of a query that runs here. A unix socket file is removed only if it is still the one this
 * process made (a process started on the same path since then has replaced it). */
static void close_listeners(struct proxy *px, int all)
{
    for (int i = 0; i < px->nlisteners; i++) {
        struct px_listener *l = &px->listeners[i];
        struct px_file_id now;

        if (l->peer && !all)
            continue;
        if (!uv_is_closing(&l->h.handle))
            uv_close(&l->h.handle, NULL);
        if (l->path) {
            if (px_sock_path_id(l->path, &now) == 0 && now.dev == l->path_id.dev && now.ino == l->path_id.ino &&
                now.ctime_ns == l->path_id.ctime_ns)
                unlink(l->path);
            free(l->path);
            l->path = NULL;
        }
    }
}

/* Tells a service manager (systemd, Type=notify) what the process does; sd_notify is a no-op
 * without NOTIFY_SOCKET. Every worker sees the signals and runs its own reload or drain: worker 0
 * alone speaks for the process, so that systemd gets one RELOADING=1 and one READY=1 per reload. */
static void notify(const struct proxy *px, const char *state)
{
    if (px->worker_id == 0)
        sd_notify(0, state);
}

/* RELOADING=1 with the monotonic time systemd asks for; READY=1 ends the reload, STOPPING=1
 * announces a drain or an exit. */
static void notify_reloading(const struct proxy *px)
{
    struct timespec ts;

    if (px->worker_id != 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
}

/* Closes every handle so that uv_run returns. */
void px_stop(struct proxy *px)
{
    if (px->exiting)
        return;
    px->exiting = 1;
    notify(px, "STOPPING=1");
    close_listeners(px, 1);
    px_worker_detach(px);
    px_peers_stop(px);
    px_metrics_stop(px);
    px_monitor_stop(px);
    px_health_stop(px);
    px_authq_stop(px);
    while (!px_list_empty(&px->clients))
        px_client_close(px_container_of(px->clients.next, struct px_client, link), "pglane exiting");
    while (!px_list_empty(&px->pools)) {
        struct px_pool *pool = px_container_of(px->pools.next, struct px_pool, link);

        while (!px_list_empty(&pool->idle))
            px_server_close(px_container_of(pool->idle.next, struct px_server, link), "pglane exiting");
        while (!px_list_empty(&pool->busy))
            px_server_close(px_container_of(pool->busy.next, struct px_server, link), "pglane exiting");
        px_pool_free(pool);
    }
    px_server_linger_sweep(px, 0, 1);
    px_lifecycle_close(px);
}

void px_maybe_exit(struct proxy *px)
{
    if ((px->draining || px->drain_serving) && !px->exiting && px->nclients == 0) {
        px_info("drained: exiting");
        px_stop(px);
    }
}

/* The drain's second part: idle clients are closed at once, the others when their transaction ends. */
static void close_clients(struct proxy *px)
{
    struct px_list *it, *next;

    px->draining = 1;
    px->drain_serving = 0;
    uv_timer_stop(&px->drain_timer);
    for (it = px->clients.next; it != &px->clients; it = next) {
        struct px_client *cl = px_container_of(it, struct px_client, link);

        next = it->next;
        if (cl->state == CL_STARTUP)
            continue;             /* refused after its startup packet, where libpq reads errors */
        if (cl->state != CL_ACTIVE ||
            (cl->pins && cl->server && !cl->server->checking && cl->pending_z == 0 && !cl->unsynced &&
             cl->server->tx_status == 'I'))   /* pinned, between transactions */
            px_client_fail(cl, "57P01", "pglane is shutting down");
    }
    px_maybe_exit(px);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct proxy *px = t->data;

    px_info("client_drain_timeout: closing the %d remaining client(s) at their transaction boundary",
            px->nclients);
    close_clients(px);
}

/*
 * SIGTERM or SHUTDOWN. The listeners close at once (this process's [peers] address excepted), so
 * that new connections go to the processes still listening. With client_drain_timeout, connected
 * clients are then served as before until they disconnect or the timeout ends (a second SIGTERM or
 * SHUTDOWN ends it at once); without, or after it, close_clients.
 */
static void start_drain(struct proxy *px)
{
    struct px_list *it;
    int64_t wait_ms = px->conf->client_drain_timeout_ms;

    if (px->draining)
        return;
    if (px->drain_serving) {
        px_info("drain: asked again: closing the %d remaining client(s) at their transaction boundary",
                px->nclients);
        close_clients(px);
        return;
    }
    notify(px, "STOPPING=1");
    close_listeners(px, 0);
    if (wait_ms <= 0) {
        px_info("SIGTERM: draining %d client(s)", px->nclients);
        close_clients(px);
        return;
    }
    px->drain_serving = 1;
    px->drain_last_conn = 0;
    for (it = px->clients.next; it != &px->clients; it = it->next) {
        struct px_client *cl = px_container_of(it, struct px_client, link);

        if (cl->conn.id > px->drain_last_conn)
            px->drain_last_conn = cl->conn.id;
    }
    px_info("SIGTERM: draining: no new connections; the %d connected client(s) are served until they "
            "disconnect, for at most %lld ms (client_drain_timeout)", px->nclients, (long long)wait_ms);
    uv_timer_start(&px->drain_timer, on_drain_timeout, (uint64_t)wait_ms, 0);
    px_maybe_exit(px);
}

void px_drain(struct proxy *px)
{
    start_drain(px);
}

int px_drain_refuses(const struct px_client *cl)
{
    const struct proxy *px = cl->conn.px;

    return px->draining || (px->drain_serving && cl->conn.id > px->drain_last_conn);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct proxy *px = h->data;

    switch (signum) {
    case SIGTERM:
        start_drain(px);
        break;
    case SIGINT:
        px_info("SIGINT: exiting now");
        px_stop(px);
        break;
    case SIGHUP:
        px_info("SIGHUP: reloading %s", px->conf->file);
        notify_reloading(px);
        (void)px_reload(px);
        notify(px, "READY=1");
        break;
    }
}

static void on_maintain(uv_timer_t *t)
{
    struct proxy *px = t->data;
    uint64_t now = px_now_ms(px);
    int64_t login_limit = px->conf->client_login_timeout_ms;
    struct px_list *it, *next;

    px_pool_maintain(px, now);
    px_workers_tick(px);
    px_server_linger_sweep(px, now, 0);
    px_replica_tick(px);
    px_pgb_tick(px);                  /* answers WAIT_CLOSE once its connections have gone */
    px_client_timeouts(px, now);      /* client_idle_timeout, idle_transaction_timeout */
    if (login_limit <= 0)
        return;
    for (it = px->clients.next; it != &px->clients; it = next) {
        struct px_client *cl = px_container_of(it, struct px_client, link);

        next = it->next;
        if (cl->state <= CL_AUTH_SASL_FINAL && now - cl->connect_ms >= (uint64_t)login_limit)
            px_client_fail(cl, "08006", "pglane: client_login_timeout: startup and authentication not "
                                        "completed in time");
    }
}

/* Initializes the timers and starts the signal handles (before anything can fail: px_stop closes
 * them). main.c calls it for every worker before any worker opens a listener, so that a signal sent
 * as soon as one worker accepts reaches every worker's loop (libuv queues it for each loop that has
 * a started handle; the callback runs once that loop runs). */
void px_lifecycle_init(struct proxy *px)
{
    uv_timer_init(px->loop, &px->maint_timer);
    px->maint_timer.data = px;
    uv_timer_init(px->loop, &px->drain_timer);
    px->drain_timer.data = px;
    uv_timer_init(px->loop, &px->adapt_timer);   /* started by px_adapt_configure */
    px->adapt_timer.data = px;
    uv_signal_init(px->loop, &px->sig_term);
    uv_signal_init(px->loop, &px->sig_int);
    uv_signal_init(px->loop, &px->sig_hup);
    px->sig_term.data = px->sig_int.data = px->sig_hup.data = px;
    uv_signal_start(&px->sig_term, on_signal, SIGTERM);
    uv_signal_start(&px->sig_int, on_signal, SIGINT);
    uv_signal_start(&px->sig_hup, on_signal, SIGHUP);
}

/* A worker that could not load its configuration: closes what px_lifecycle_init made. */
void px_lifecycle_close(struct proxy *px)
{
    uv_close((uv_handle_t *)&px->maint_timer, NULL);
    uv_close((uv_handle_t *)&px->drain_timer, NULL);
    uv_close((uv_handle_t *)&px->adapt_timer, NULL);
    uv_close((uv_handle_t *)&px->sig_term, NULL);
    uv_close((uv_handle_t *)&px->sig_int, NULL);
    uv_close((uv_handle_t *)&px->sig_hup, NULL);
}

/* Once the listeners accept: the maintenance tick, and a SHUTDOWN another worker was asked before
 * this one attached (px_worker_attach counted it). */
void px_lifecycle_start(struct proxy *px)
{
    uv_timer_start(&px->maint_timer, on_maintain, 1000, 1000);
    for (unsigned i = 0; i < px->drains_before_start && i < 2; i++)
        px_drain(px);
}

void px_free(struct proxy *px)
{
    while (px->scram_cache) {
        struct px_scram_cache *c = px->scram_cache;

        px->scram_cache = c->next;
        free(c->user);
        free(c->password);
        free(c);
    }
    free(px->listeners);
    px_peers_free(px);
    px_config_free(px);
    px_prep_registry_free(px);
    px_tls_ctx_free(px->tls_ctx);
    conf_userlist_free(&px->users);
    conf_free(px->conf);
    px_buf_pool_drain();
}
