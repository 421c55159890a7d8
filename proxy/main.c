/* pglane's entry point: the command line (--check, --version, --route) and run(), which loads the
 * configuration, starts the process (proxy/lifecycle.c) and runs the event loop. */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "proxy/proxy.h"
#include "proxy/tenant.h"

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

/* One worker: its own configuration, loop, listeners, clients and pools (with workers = 1, the
 * process). Worker 0 also serves /metrics and tells the service manager. */
struct worker {
    pthread_t t;
    const char *path;
    int rc, started;
    struct proxy px;
    uv_loop_t loop;
};

/* The worker's loop and its signal handles, made on the main thread for every worker before any
 * worker thread starts (so before any listener opens): a SIGTERM sent as soon as the port accepts
 * reaches every worker. 0 or -1. */
static int worker_prepare(struct worker *w, struct px_workers *ws, int id)
{
    struct proxy *px = &w->px;

    memset(px, 0, sizeof(*px));
    px->workers = ws;
    px->worker_id = id;
    if (uv_loop_init(&w->loop) < 0) {
        px_error("worker %d: cannot make its event loop", id);
        return -1;
    }
    px->loop = &w->loop;
    uv_loop_set_data(&w->loop, px);
    px_list_init(&px->pools);
    px_list_init(&px->clients);
    px_list_init(&px->lingering);
    px_lifecycle_init(px);
    return 0;
}

/* Runs a prepared worker until it stops. conf and users: the configuration run() loaded, taken
 * over (worker 0), or NULL to load it from the file (other workers: their own copies). 0 or 1. */
static int worker_run(struct worker *w, struct conf *conf, struct conf_userlist *users)
{
    struct proxy *px = &w->px;
    struct px_workers *ws = px->workers;
    int id = px->worker_id, rc = 1;

    if (ws)
        px_log_set_worker(id);
    if (conf) {
        px->conf = conf;
        px->users = *users;
    } else if (load_config(w->path, &px->conf, &px->users) < 0) {
        px_lifecycle_close(px);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        goto close;
    }
    if (px->conf->tls_mode != CONF_TLS_DISABLE && !(px->tls_ctx = px_tls_server_ctx(px->conf)))
        goto close_early;
    if (px_config_apply_initial(px) < 0 || px_peers_configure(px, 1) < 0 || px_worker_attach(px) < 0 ||
        px_listeners_open(px) < 0 || (id == 0 && px_metrics_start(px) < 0) || px_monitor_start(px) < 0 ||
        px_health_start(px) < 0) {
close_early:
        px_stop(px);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        goto close;
    }
    px_lifecycle_start(px);
    if (id == 0) {
        px_info("pglane %s started: pool_mode = %s, %d lane(s), default lane %s, %d worker(s)", PGLANE_VERSION,
                px->conf->pool_mode == CONF_POOL_SESSION ? "session" : "transaction", px->nlanes,
                px->conf->default_lane, px_workers_count(ws));
        sd_notify(0, "READY=1");      /* the listeners accept connections from here on */
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (id == 0)
        px_info("pglane stopped");
    rc = 0;
close:
    if (uv_loop_close(&w->loop) != 0)
        px_warn("event loop closed with handles still open");
    px_free(px);
    if (rc != 0 && ws)
        raise(SIGINT);                 /* a worker that could not start stops the others */
    return rc;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    w->rc = worker_run(w, NULL, NULL);
    return NULL;
}

static int run(const char *path)
{
    struct conf *conf = NULL;
    struct conf_userlist users = { 0 };
    struct worker *th;
    struct px_workers *ws;
    sigset_t sigs, old_sigs;
    int n, nprep, rc;

    if (load_config(path, &conf, &users) < 0)
        return 1;
    px_log_set_level(conf->log_level);
    /* Fixed thresholds (which also turn off glibc's dynamic ones, that rise to 32 MB after the first
     * large free): a buffer grown for a large message is mmap'd and goes back to the system when it
     * is freed, and freed heap above 1 MB is trimmed. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    check_auth_file_mode(conf);
    warn_metrics_exposed(conf, NULL);
    warm_up_crypto();
    signal(SIGPIPE, SIG_IGN);
    check_fd_limit(conf);
    n = conf->workers > 1 ? conf->workers : 1;
    ws = NULL;
    if ((n > 1 && !(ws = px_workers_new(n))) || !(th = calloc((size_t)n, sizeof(*th)))) {
        px_workers_free(ws);
        conf_userlist_free(&users);
        conf_free(conf);
        px_error("out of memory starting %d workers", n);
        return 1;
    }
    /* Every worker's signal handles exist before any worker opens a listener; a signal that comes
     * while they are made waits (blocked) and then reaches all of them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, &old_sigs);
    for (nprep = 0; nprep < n; nprep++) {
        th[nprep].path = path;
        if (worker_prepare(&th[nprep], ws, nprep) < 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old_sigs, NULL);
    if (nprep < n) {
        for (int i = 0; i < nprep; i++) {
            px_lifecycle_close(&th[i].px);
            uv_run(&th[i].loop, UV_RUN_DEFAULT);
            uv_loop_close(&th[i].loop);
        }
        conf_userlist_free(&users);
        conf_free(conf);
        rc = 1;
        goto out;
    }
    /* Several workers: worker 0 runs on this thread with the configuration loaded above; the others
     * load the file themselves (their own copies). */
    for (int i = 1; i < n; i++) {
        if (pthread_create(&th[i].t, NULL, worker_main, &th[i]) != 0) {
            px_error("cannot start worker %d of %d", i, n);
            raise(SIGINT);
            break;
        }
        th[i].started = 1;
    }
    rc = worker_run(&th[0], conf, &users);
    for (int i = 1; i < n; i++)
        if (th[i].started) {
            pthread_join(th[i].t, NULL);
            rc = rc ? rc : th[i].rc;
        } else {
            px_lifecycle_close(&th[i].px);       /* its thread never started: close its loop here */
            uv_run(&th[i].loop, UV_RUN_DEFAULT);
            uv_loop_close(&th[i].loop);
        }
out:
    free(th);
    px_workers_free(ws);
    px_monitor_shared_free();
    px_prep_shared_free();
    px_adapt_shared_free();
    px_tenant_shared_free();
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
