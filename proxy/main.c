/* pglane's entry point: command line, configuration, listeners, signals and the event loop. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "proxy/proxy.h"

static void usage(FILE *out)
{
    fprintf(out,
            "pglane %s — a workload-aware connection proxy for PostgreSQL\n\n"
            "usage: pglane CONFIG.ini            run in the foreground\n"
            "       pglane --check CONFIG.ini    validate the configuration and exit\n"
            "       pglane --route CONFIG.ini [--user U] [--database D] [--application-name A]\n"
            "                    [--client-addr IP] < statements.sql\n"
            "                                    print lane, route, kind, read-only, tables and\n"
            "                                    fingerprint of each statement (tab-separated)\n"
            "       pglane --help | --version\n\n"
            "Signals: SIGHUP reloads the configuration, SIGTERM drains (stops accepting, lets open\n"
            "transactions finish, then exits), SIGINT exits at once.\n",
            PGLANE_VERSION);
}

static int load_config(const char *path, struct conf **conf, struct conf_userlist *users)
{
    struct conf_diag diag = { 0 };
    int rc = 0;

    if (conf_load(path, conf, &diag) < 0)
        rc = -1;
    else if ((*conf)->auth_file && conf_userlist_load((*conf)->auth_file, users, &diag) < 0) {
        conf_free(*conf);
        *conf = NULL;
        rc = -1;
    }
    for (int i = 0; i < diag.n; i++)
        fprintf(stderr, "%s\n", diag.msgs[i]);
    conf_diag_free(&diag);
    return rc;
}

/* Passwords and SCRAM secrets live in auth_file: other users should not be able to read it. */
static void check_auth_file_mode(const struct conf *c)
{
    struct stat st;

    if (c->auth_file && stat(c->auth_file, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH)))
        px_warn("auth_file %s is readable by other users; restrict it with chmod 600", c->auth_file);
}

/* /metrics has no authentication and names users, databases and lanes: say so when it is reachable
 * from beyond this machine (at --check and at start). */
static void warn_metrics_exposed(const struct conf *c, FILE *out)
{
    char msg[512];

    if (!c->metrics.host || conf_is_loopback(c->metrics.host))
        return;
    snprintf(msg, sizeof(msg), "metrics_listen = %s is not a loopback address: /metrics has no "
             "authentication and names users, databases and lanes; restrict who can reach it (firewall)",
             c->metrics_listen);
    if (out)
        fprintf(out, "%s: warning: %s\n", c->file, msg);
    else
        px_warn("%s", msg);
}

/* OpenSSL loads its providers on first use: do it now, not during the first client's login. */
static void warm_up_crypto(void)
{
    char md5[PROTO_MD5_LEN], nonce[8];

    proto_md5_stored("pglane", "pglane", md5);
    if (proto_scram_nonce(nonce, sizeof(nonce) - 1) < 0)
        px_warn("no randomness available yet: SCRAM logins will fail until there is");
}

static void on_connection(uv_stream_t *server, int status)
{
    struct px_listener *l = (struct px_listener *)server;

    if (status < 0) {
        px_warn("accept: %s", uv_strerror(status));
        return;
    }
    px_client_accept(l->px, server);
}

static int setup_listeners(struct proxy *px)
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
        r = px_sock_listen_tcp(px->loop, &l->h.tcp, (const struct sockaddr *)&ss, 4096, on_connection);
        px->nlisteners++;
        if (r < 0) {
            px_error("listen on %s:%d: %s", c->listen[i].host, c->listen[i].port, uv_strerror(r));
            return -1;
        }
        px_info("listening on %s:%d", c->listen[i].host, c->listen[i].port);
    }
    if (c->unix_socket_dir) {
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
        px_info("listening on %s", path);
    }
    return 0;
}

static void close_listeners(struct proxy *px)
{
    for (int i = 0; i < px->nlisteners; i++) {
        struct px_listener *l = &px->listeners[i];

        if (!uv_is_closing(&l->h.handle))
            uv_close(&l->h.handle, NULL);
        if (l->path) {
            unlink(l->path);
            free(l->path);
            l->path = NULL;
        }
    }
}

/* Tells a service manager (systemd, Type=notify) that a reload starts; sd_notify is a no-op
 * without NOTIFY_SOCKET. READY=1 ends the reload, STOPPING=1 announces a drain or an exit. */
static void notify_reloading(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
}

/* Closes every handle so that uv_run returns. */
static void proxy_stop(struct proxy *px)
{
    if (px->exiting)
        return;
    px->exiting = 1;
    sd_notify(0, "STOPPING=1");
    close_listeners(px);
    px_metrics_stop(px);
    px_monitor_stop(px);
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
    uv_close((uv_handle_t *)&px->maint_timer, NULL);
    uv_close((uv_handle_t *)&px->sig_term, NULL);
    uv_close((uv_handle_t *)&px->sig_int, NULL);
    uv_close((uv_handle_t *)&px->sig_hup, NULL);
}

void px_maybe_exit(struct proxy *px)
{
    if (px->draining && !px->exiting && px->nclients == 0) {
        px_info("drained: exiting");
        proxy_stop(px);
    }
}

static void start_drain(struct proxy *px)
{
    struct px_list *it, *next;

    if (px->draining)
        return;
    px->draining = 1;
    sd_notify(0, "STOPPING=1");
    px_info("SIGTERM: draining %d client(s)", px->nclients);
    close_listeners(px);
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

void px_drain(struct proxy *px)
{
    start_drain(px);
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
        proxy_stop(px);
        break;
    case SIGHUP:
        px_info("SIGHUP: reloading %s", px->conf->file);
        notify_reloading();
        (void)px_reload(px);
        sd_notify(0, "READY=1");
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

static void check_fd_limit(const struct conf *c)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)c->max_client_conn + 64;

    for (int i = 0; i < c->nlanes; i++)
        need += (rlim_t)c->lanes[i].size + (rlim_t)c->lanes[i].reserve;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need)
        px_warn("file descriptor limit %llu is below the %llu that max_client_conn = %d and the lanes need; "
                "raise it with ulimit -n",
                (unsigned long long)rl.rlim_cur, (unsigned long long)need, c->max_client_conn);
}

static void proxy_free(struct proxy *px)
{
    while (px->scram_cache) {
        struct px_scram_cache *c = px->scram_cache;

        px->scram_cache = c->next;
        free(c->user);
        free(c->password);
        free(c);
    }
    free(px->listeners);
    px_config_free(px);
    px_prep_registry_free(px);
    px_tls_ctx_free(px->tls_ctx);
    conf_userlist_free(&px->users);
    conf_free(px->conf);
    px_buf_pool_drain();
}

static int run(const char *path)
{
    struct proxy px;
    uv_loop_t loop;
    int rc = 1;

    memset(&px, 0, sizeof(px));
    if (load_config(path, &px.conf, &px.users) < 0)
        return 1;
    px_log_set_level(px.conf->log_level);
    /* Fixed thresholds (which also turn off glibc's dynamic ones, that rise to 32 MB after the first
     * large free): a buffer grown for a large message is mmap'd and goes back to the system when it
     * is freed, and freed heap above 1 MB is trimmed. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    check_auth_file_mode(px.conf);
    warn_metrics_exposed(px.conf, NULL);
    warm_up_crypto();
    signal(SIGPIPE, SIG_IGN);
    check_fd_limit(px.conf);
    if (uv_loop_init(&loop) < 0)
        goto out;
    px.loop = &loop;
    uv_loop_set_data(&loop, &px);
    px_list_init(&px.pools);
    px_list_init(&px.clients);
    uv_timer_init(&loop, &px.maint_timer);
    px.maint_timer.data = &px;
    uv_signal_init(&loop, &px.sig_term);
    uv_signal_init(&loop, &px.sig_int);
    uv_signal_init(&loop, &px.sig_hup);
    px.sig_term.data = px.sig_int.data = px.sig_hup.data = &px;
    if (px.conf->tls_mode != CONF_TLS_DISABLE && !(px.tls_ctx = px_tls_server_ctx(px.conf)))
        goto close_early;
    if (px_config_apply_initial(&px) < 0 || setup_listeners(&px) < 0 || px_metrics_start(&px) < 0 ||
        px_monitor_start(&px) < 0) {
close_early:
        proxy_stop(&px);
        uv_run(&loop, UV_RUN_DEFAULT);
        goto close;
    }
    uv_signal_start(&px.sig_term, on_signal, SIGTERM);
    uv_signal_start(&px.sig_int, on_signal, SIGINT);
    uv_signal_start(&px.sig_hup, on_signal, SIGHUP);
    uv_timer_start(&px.maint_timer, on_maintain, 1000, 1000);
    px_info("pglane %s started: pool_mode = %s, %d lane(s), default lane %s", PGLANE_VERSION,
            px.conf->pool_mode == CONF_POOL_SESSION ? "session" : "transaction", px.nlanes, px.conf->default_lane);
    sd_notify(0, "READY=1");          /* the listeners accept connections from here on */
    uv_run(&loop, UV_RUN_DEFAULT);
    px_info("pglane stopped");
    rc = 0;
close:
    if (uv_loop_close(&loop) != 0)
        px_warn("event loop closed with handles still open");
out:
    proxy_free(&px);
    return rc;
}

static int route_command(int argc, char **argv)
{
    const char *user = "", *database = "", *app = "", *addr = NULL;
    struct conf_diag diag = { 0 };
    struct conf *conf = NULL;
    int rc;

    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--user") == 0)
            user = argv[i + 1];
        else if (strcmp(argv[i], "--database") == 0)
            database = argv[i + 1];
        else if (strcmp(argv[i], "--application-name") == 0)
            app = argv[i + 1];
        else if (strcmp(argv[i], "--client-addr") == 0)
            addr = argv[i + 1];
        else {
            usage(stderr);
            return 2;
        }
    }
    if ((argc - 3) % 2 != 0) {
        usage(stderr);
        return 2;
    }
    if (conf_load(argv[2], &conf, &diag) < 0) {
        for (int i = 0; i < diag.n; i++)
            fprintf(stderr, "%s\n", diag.msgs[i]);
        conf_diag_free(&diag);
        return 1;
    }
    conf_diag_free(&diag);
    rc = px_route_dry_run(conf, user, database, app, addr);
    conf_free(conf);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("pglane %s\n", PGLANE_VERSION);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--check") == 0) {
        struct conf *conf = NULL;
        struct conf_userlist users = { 0 };

        if (load_config(argv[2], &conf, &users) < 0)
            return 1;
        check_auth_file_mode(conf);
        warn_metrics_exposed(conf, stderr);
        printf("%s: configuration OK\n", argv[2]);
        conf_userlist_free(&users);
        conf_free(conf);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "--route") == 0)
        return route_command(argc, argv);
    if (argc != 2 || argv[1][0] == '-') {
        usage(stderr);
        return 2;
    }
    return run(argv[1]);
}
