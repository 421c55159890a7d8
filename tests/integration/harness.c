/*
 * Integration test harness: starts a private PostgreSQL 15 cluster and pglane processes, and gives
 * the tests libpq, raw-socket and command helpers. Every wait is bounded by a deadline.
 */
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PGLANES 64
#define MAX_PIDS 256

/* Copies of every running pglane's h_pglane (tests keep theirs on the stack, which a failed assertion
 * unwinds), keyed by the unique temp dir; slot in use when dir[0] != 0. */
static struct h_pglane g_pglanes[MAX_PGLANES];
static pid_t g_pids[MAX_PIDS];
static int g_test_failed;
static char g_scratch[H_DIR];
static int g_proc_seq;
static int64_t g_test_start;
#define MAX_CLUSTERS 4
static volatile pid_t g_postmaster[MAX_CLUSTERS];   /* for the emergency handler: primary, replicas */

/*
 * Emergency exit on a watchdog alarm or an operator's SIGINT/SIGTERM: the cluster and every
 * process the harness started would otherwise outlive the test binary. Only kill() and write()
 * here, which are async-signal-safe.
 */
static void emergency(int sig)
{
    static const char msg[] = "\nharness: watchdog or signal: killing the cluster and children\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    for (int i = 0; i < MAX_PGLANES; i++)
        if (g_pglanes[i].dir[0] && g_pglanes[i].pid > 0)
            kill(g_pglanes[i].pid, SIGKILL);
    for (int i = 0; i < MAX_PIDS; i++)
        if (g_pids[i] > 0)
            kill(g_pids[i], SIGKILL);
    for (int i = 0; i < MAX_CLUSTERS; i++)
        if (g_postmaster[i] > 0)
            kill(g_postmaster[i], SIGQUIT);
    _exit(sig == SIGALRM ? 124 : 128 + sig);
}

static void install_emergency(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = emergency;
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* ---------------------------------------------------------------- small utilities */

int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int h_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    if (fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

static int append_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    int ok = fputs(text, f) >= 0;
    if (fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

char *h_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    if (dir[0] && strncmp(dir, "/tmp/", 5) == 0)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *h_scratch_dir(void)
{
    if (!g_scratch[0]) {
        snprintf(g_scratch, sizeof g_scratch, "/tmp/pglane-it-XXXXXX");
        if (!mkdtemp(g_scratch)) {
            perror("mkdtemp");
            g_scratch[0] = '\0';
            return "/tmp";
        }
    }
    return g_scratch;
}

long h_raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    rlim_t target = (rlim_t)want;
    if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max)
        target = rl.rlim_max;
    if (rl.rlim_cur < target) {
        rl.rlim_cur = target;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return -1;
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    return (long)rl.rlim_cur;
}

/* A port that was free a moment ago (the kernel's choice for port 0). The caller retries on a race. */
int h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port == 5432 ? h_free_port() : port;
}

void h_conf_replace(char *buf, size_t n, const char *from, const char *to)
{
    char *p = strstr(buf, from);
    assert_non_null(p);
    size_t fl = strlen(from), tl = strlen(to), rest = strlen(p + fl);
    assert_true(strlen(buf) - fl + tl < n);
    memmove(p + tl, p + fl, rest + 1);
    memcpy(p, to, tl);
}

/* Replaces every occurrence of `from` in s (malloc'd) by `to`; returns a new string, frees s. */
static char *replace_all(char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), count = 0;
    for (const char *p = s; (p = strstr(p, from)); p += fl)
        count++;
    char *out = malloc(strlen(s) + count * (tl > fl ? tl - fl : 0) + 1);
    if (!out) {
        free(s);
        return NULL;
    }
    char *o = out;
    const char *p = s, *q;
    while ((q = strstr(p, from))) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, tl);
        o += tl;
        p = q + fl;
    }
    strcpy(o, p);
    free(s);
    return out;
}

/* ---------------------------------------------------------------- processes */

static void track(pid_t pid)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (g_pids[i] == 0) {
            g_pids[i] = pid;
            return;
        }
}

void h_track_pid(pid_t pid)
{
    track(pid);
}

void h_untrack_pid(pid_t pid)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (g_pids[i] == pid)
            g_pids[i] = 0;
}

static void kill_tracked(void)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (g_pids[i] > 0) {
            kill(g_pids[i], SIGKILL);
            waitpid(g_pids[i], NULL, 0);
            g_pids[i] = 0;
        }
}

static void reset_child_signals(void)
{
    signal(SIGPIPE, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    alarm(0);
}

static int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 1000 + WTERMSIG(st);
    return 2000;
}

/* Waits for pid up to timeout_ms: 1 (exited, *status decoded) or 0. */
static int wait_pid(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    int delay = 1;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            *status = decode_status(st);
            return 1;
        }
        if (r < 0 && errno != EINTR) {
            *status = 3000;
            return 1;
        }
        if (h_now_ms() >= deadline)
            return 0;
        h_sleep_ms(delay);
        if (delay < 20)
            delay *= 2;
    }
}

/*
 * fork + exec of argv (PATH searched) with stdin from /dev/null and stdout + stderr into out_path
 * (truncated, or appended to with append), the harness's signal handlers reset and env_extra
 * ("K=V", may be NULL) added; in_root: the child runs in "/". The pid, or -1.
 */
static pid_t spawn_logged(const char *const *argv, const char *const *env_extra, const char *out_path, int append,
                          int in_root)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
        int in = open("/dev/null", O_RDONLY);
        if (out < 0 || in < 0)
            _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        if (in_root && chdir("/") != 0)
            _exit(126);
        reset_child_signals();
        for (int i = 0; env_extra && env_extra[i]; i++)
            putenv((char *)env_extra[i]);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int h_proc_start(struct h_proc *p, const char *const *argv, const char *const *env_extra)
{
    memset(p, 0, sizeof *p);
    snprintf(p->out_path, sizeof p->out_path, "%s/proc-%d-%d.out", h_scratch_dir(), (int)getpid(),
             ++g_proc_seq);
    pid_t pid = spawn_logged(argv, env_extra, p->out_path, 0, 1);
    if (pid < 0)
        return -1;
    p->pid = pid;
    track(pid);
    return 0;
}

int h_proc_done(struct h_proc *p)
{
    if (!p->done && wait_pid(p->pid, 0, &p->status)) {
        p->done = 1;
        h_untrack_pid(p->pid);
    }
    return p->done;
}

int h_proc_wait(struct h_proc *p, int timeout_ms, char **out)
{
    int st = 0, rc;
    if (p->done) {
        rc = p->status;
    } else if (wait_pid(p->pid, timeout_ms, &st)) {
        rc = st;
    } else {
        fprintf(stderr, "harness: pid %d timed out after %d ms, killing it\n", (int)p->pid, timeout_ms);
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        rc = -1;
    }
    h_untrack_pid(p->pid);
    p->status = rc;
    p->done = 1;
    char *text = h_read_file(p->out_path);
    if (!text)
        text = strdup("");
    if (rc == -1)
        fprintf(stderr, "harness: output so far:\n%s\n", text);
    unlink(p->out_path);
    if (out)
        *out = text;
    else
        free(text);
    return rc;
}

int h_run(const char *const *argv, const char *const *env_extra, int timeout_ms, char **out)
{
    struct h_proc p;
    if (h_proc_start(&p, argv, env_extra) != 0) {
        if (out)
            *out = strdup("");
        return -1;
    }
    return h_proc_wait(&p, timeout_ms, out);
}

/* ---------------------------------------------------------------- PostgreSQL cluster */

/* The pid in the cluster's postmaster.pid, or -1 (stopped). */
static pid_t postmaster_pid(const struct h_pg *pg)
{
    char pidpath[H_PATH + 32];
    snprintf(pidpath, sizeof pidpath, "%s/postmaster.pid", pg->datadir);
    char *pidtext = h_read_file(pidpath);
    pid_t pid = pidtext ? (pid_t)strtol(pidtext, NULL, 10) : 0;
    free(pidtext);
    return pid > 1 ? pid : -1;
}

/* The emergency handler's list of postmasters: each cluster has a slot (pg->pm_slot, 1-based) with
 * its postmaster's pid, -1 while pg_ctl stopped it, 0 when the slot is free. */
static void postmaster_track(struct h_pg *pg)
{
    pid_t pid = postmaster_pid(pg);
    if (pg->pm_slot > 0) {
        g_postmaster[pg->pm_slot - 1] = pid;
        return;
    }
    for (int i = 0; i < MAX_CLUSTERS; i++)
        if (g_postmaster[i] <= 0) {
            g_postmaster[i] = pid;
            pg->pm_slot = i + 1;
            return;
        }
}

static void postmaster_untrack(struct h_pg *pg)
{
    if (pg->pm_slot > 0)
        g_postmaster[pg->pm_slot - 1] = 0;
    pg->pm_slot = 0;
}

static int postmasters_left(void)
{
    for (int i = 0; i < MAX_CLUSTERS; i++)
        if (g_postmaster[i] != 0)
            return 1;
    return 0;
}

static int as_root(void)
{
    return geteuid() == 0;
}

/* Runs a PostgreSQL binary, as user postgres when we are root. Returns the exit code. */
static int pg_run(const struct h_pg *pg, const char *const *args, int timeout_ms, char **out)
{
    const char *argv[32];
    char exe[H_PATH + 32];
    int n = 0;
    if (as_root()) {
        argv[n++] = "runuser";
        argv[n++] = "-u";
        argv[n++] = "postgres";
        argv[n++] = "--";
    }
    snprintf(exe, sizeof exe, "%s/%s", pg->bindir, args[0]);
    argv[n++] = exe;
    for (int i = 1; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return h_run(argv, NULL, timeout_ms, out);
}

int h_pg_ctl(const struct h_pg *pg, const char *action)
{
    char opts[64];
    snprintf(opts, sizeof opts, "-p %d", pg->port);   /* the cluster's own port, never the default */
    const char *args[] = { "pg_ctl", "-D", pg->datadir, "-l", pg->logfile, "-o", opts, "-m", "fast", "-w", "-t", "60",
                           action, NULL };
    char *out = NULL;
    int rc = pg_run(pg, args, 90000, &out);
    if (rc != 0)
        fprintf(stderr, "pg_ctl %s failed (%d):\n%s\n", action, rc, out ? out : "");
    free(out);
    if (pg->pm_slot > 0)
        g_postmaster[pg->pm_slot - 1] = postmaster_pid(pg);
    return rc == 0 ? 0 : -1;
}

PGconn *h_pg_super(const struct h_pg *pg, const char *dbname)
{
    char ci[H_PATH * 2];
    snprintf(ci, sizeof ci, "host=%s port=%d user=%s dbname=%s connect_timeout=10", pg->dir, pg->port,
             pg->superuser, dbname ? dbname : "postgres");
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "harness: superuser connection failed: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

int h_pg_exec(const struct h_pg *pg, const char *dbname, const char *sql)
{
    PGconn *c = h_pg_super(pg, dbname);
    if (!c)
        return -1;
    int rc = h_exec(c, sql);
    PQfinish(c);
    return rc;
}

long h_pg_long(PGconn *super, const char *sql)
{
    char *v = h_query1(super, sql);
    if (!v)
        return -1;
    long r = strtol(v, NULL, 10);
    free(v);
    return r;
}

long h_pg_backends(PGconn *super, const char *user)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
             "AND usename = '%s'", user);
    return h_pg_long(super, sql);
}

long h_pg_wait_long(PGconn *super, const char *sql, long want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    long v;
    while ((v = h_pg_long(super, sql)) != want && h_now_ms() < deadline)
        h_sleep_ms(20);
    return v;
}

long h_show_val(PGconn *adm, const char *cmd, const char *lane, const char *col)
{
    PGresult *r = PQexec(adm, cmd);
    long v = -1;

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        print_error("%s: %s\n", cmd, PQerrorMessage(adm));
        PQclear(r);
        return -1;
    }
    int lc = PQfnumber(r, "lane"), cc = PQfnumber(r, col);
    for (int i = 0; lc >= 0 && cc >= 0 && i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, lc), lane) == 0)
            v = strtol(PQgetvalue(r, i, cc), NULL, 10);
    if (cc < 0)
        print_error("%s has no column %s\n", cmd, col);
    PQclear(r);
    return v;
}

long h_show_wait(PGconn *adm, const char *cmd, const char *lane, const char *col, long want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    long v;
    while ((v = h_show_val(adm, cmd, lane, col)) != want && h_now_ms() < deadline)
        h_sleep_ms(20);
    return v;
}

static int pg_configure(struct h_pg *pg)
{
    char path[H_PATH + 32], conf[2 * H_PATH];
    snprintf(path, sizeof path, "%s/postgresql.conf", pg->datadir);
    snprintf(conf, sizeof conf,
             "\n# pglane integration tests\n"
             "listen_addresses = '127.0.0.1'\n"
             "unix_socket_directories = '%s'\n"
             "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
             "max_connections = 300\n"
             "shared_buffers = 64MB\n"
             "max_wal_size = 1GB\n"
             "password_encryption = 'scram-sha-256'\n"
             "log_connections = off\n"
             "log_min_messages = warning\n",
             pg->dir);
    if (append_file(path, conf) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/pg_hba.conf", pg->datadir);
    snprintf(conf, sizeof conf,
             "local all %s trust\n"
             "local replication %s trust\n"
             "local all all scram-sha-256\n"
             "host all %s 127.0.0.1/32 md5\n"
             "host all all 127.0.0.1/32 scram-sha-256\n",
             pg->superuser, pg->superuser, H_MD5_USER);
    return h_write_file(path, conf);
}

static int pg_roles(struct h_pg *pg)
{
    PGconn *c = h_pg_super(pg, "postgres");
    if (!c)
        return -1;
    int rc = 0;
    rc |= h_exec(c, "SET password_encryption = 'scram-sha-256'");
    rc |= h_exec(c, "CREATE ROLE " H_USER " LOGIN PASSWORD '" H_PASSWORD "'");
    rc |= h_exec(c, "SET password_encryption = 'md5'");
    rc |= h_exec(c, "CREATE ROLE " H_MD5_USER " LOGIN PASSWORD '" H_MD5_PASSWORD "'");
    rc |= h_exec(c, "CREATE DATABASE " H_DB " OWNER " H_USER);
    rc |= h_exec(c, "CREATE DATABASE " H_BENCH_DB " OWNER " H_USER);
    rc |= h_exec(c, "GRANT ALL ON DATABASE " H_DB " TO " H_MD5_USER);
    PQfinish(c);
    return rc ? -1 : 0;
}

int h_pg_start(struct h_pg *pg)
{
    memset(pg, 0, sizeof *pg);
    signal(SIGPIPE, SIG_IGN);
    install_emergency();
    alarm(300);   /* the cluster's setup; each test then re-arms its own watchdog */
    const char *bindir = getenv("PGLANE_PG_BINDIR");
    snprintf(pg->bindir, sizeof pg->bindir, "%s", bindir ? bindir : "/usr/lib/postgresql/15/bin");
    snprintf(pg->superuser, sizeof pg->superuser, "postgres");
    snprintf(pg->dir, sizeof pg->dir, "/tmp/pglane-pg-XXXXXX");
    if (!mkdtemp(pg->dir)) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(pg->datadir, sizeof pg->datadir, "%s/data", pg->dir);
    snprintf(pg->logfile, sizeof pg->logfile, "%s/server.log", pg->dir);
    if (as_root()) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(pg->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "harness: running as root needs the user postgres\n");
            goto fail;
        }
    }
    char *out = NULL;
    const char *initdb[] = { "initdb", "-D", pg->datadir, "-U", pg->superuser, "-E", "UTF8",
                             "--locale=C", "--no-sync", "--no-instructions", "-A", "trust", NULL };
    if (pg_run(pg, initdb, 120000, &out) != 0) {
        fprintf(stderr, "harness: initdb failed:\n%s\n", out);
        free(out);
        goto fail;
    }
    free(out);
    if (pg_configure(pg) != 0) {
        fprintf(stderr, "harness: cannot write the cluster's configuration\n");
        goto fail;
    }
    for (int attempt = 0; attempt < 5 && !pg->running; attempt++) {
        char opts[64];
        pg->port = h_free_port();
        snprintf(opts, sizeof opts, "-p %d", pg->port);
        const char *start[] = { "pg_ctl", "-D", pg->datadir, "-l", pg->logfile, "-w", "-t", "60",
                                "-o", opts, "start", NULL };
        int rc = pg_run(pg, start, 90000, &out);
        if (rc == 0) {
            pg->running = 1;
        } else {
            fprintf(stderr, "harness: pg_ctl start on port %d failed (%d):\n%s\n", pg->port, rc, out);
            char *log = h_read_file(pg->logfile);
            fprintf(stderr, "%s\n", log ? log : "");
            free(log);
        }
        free(out);
    }
    if (!pg->running)
        goto fail;
    postmaster_track(pg);
    if (pg_roles(pg) != 0) {
        h_pg_stop(pg);
        return -1;
    }
    return 0;
fail:
    rm_rf(pg->dir);
    return -1;
}

void h_pg_stop(struct h_pg *pg)
{
    if (pg->running) {
        const char *stop[] = { "pg_ctl", "-D", pg->datadir, "-m", "immediate", "-w", "-t", "30",
                               "stop", NULL };
        char *out = NULL;
        if (pg_run(pg, stop, 40000, &out) != 0) {
            /* pg_ctl failed: kill the postmaster named by the cluster's own pid file. */
            char path[H_PATH + 32];
            snprintf(path, sizeof path, "%s/postmaster.pid", pg->datadir);
            char *pidtext = h_read_file(path);
            long pid = pidtext ? strtol(pidtext, NULL, 10) : 0;
            if (pid > 1)
                kill((pid_t)pid, SIGKILL);
            free(pidtext);
            fprintf(stderr, "harness: pg_ctl stop failed:\n%s\n", out);
        }
        free(out);
        pg->running = 0;
    }
    postmaster_untrack(pg);
    if (getenv("PGLANE_TEST_KEEP_PGLOG")) {
        char *log = h_read_file(pg->logfile);
        fprintf(stderr, "---- PostgreSQL log\n%s\n----\n", log ? log : "");
        free(log);
    }
    rm_rf(pg->dir);
    if (postmasters_left())  /* a replica stopped inside a test: the test's scratch and watchdog stay */
        return;
    if (g_scratch[0]) {     /* pg_ctl's output file lived there: the scratch dir may be new */
        rm_rf(g_scratch);
        g_scratch[0] = '\0';
    }
    alarm(0);
}

/* Polls `sql` (a boolean query) on the cluster as superuser until it answers "t" or timeout_ms passes.
 * 0 or -1. A failing connection (the cluster still starting) is retried. */
static int pg_wait_true(const struct h_pg *pg, const char *sql, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    do {
        char ci[H_PATH * 2];
        snprintf(ci, sizeof ci, "host=%s port=%d user=%s dbname=postgres connect_timeout=5", pg->dir, pg->port,
                 pg->superuser);
        PGconn *c = PQconnectdb(ci);
        if (PQstatus(c) == CONNECTION_OK) {
            PGresult *r = PQexec(c, sql);
            int yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                      strcmp(PQgetvalue(r, 0, 0), "t") == 0;
            PQclear(r);
            PQfinish(c);
            if (yes)
                return 0;
        } else {
            PQfinish(c);
        }
        h_sleep_ms(50);
    } while (h_now_ms() < deadline);
    fprintf(stderr, "harness: timed out waiting for \"%s\" on port %d\n", sql, pg->port);
    return -1;
}

int h_pg_start_replica(struct h_pg *replica, const struct h_pg *primary)
{
    memset(replica, 0, sizeof *replica);
    snprintf(replica->bindir, sizeof replica->bindir, "%s", primary->bindir);
    snprintf(replica->superuser, sizeof replica->superuser, "%s", primary->superuser);
    snprintf(replica->dir, sizeof replica->dir, "/tmp/pglane-pg-XXXXXX");
    if (!mkdtemp(replica->dir)) {
        perror("mkdtemp");
        return -1;
    }
    replica->replica = 1;
    snprintf(replica->datadir, sizeof replica->datadir, "%s/data", replica->dir);
    snprintf(replica->logfile, sizeof replica->logfile, "%s/server.log", replica->dir);
    if (as_root()) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(replica->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "harness: running as root needs the user postgres\n");
            goto fail;
        }
    }
    char port[16], *out = NULL;
    snprintf(port, sizeof port, "%d", primary->port);
    const char *backup[] = { "pg_basebackup", "-h", primary->dir, "-p", port, "-U", primary->superuser,
                             "-D", replica->datadir, "-R", "-X", "stream", "-c", "fast", "--no-sync", NULL };
    if (pg_run(replica, backup, 120000, &out) != 0) {
        fprintf(stderr, "harness: pg_basebackup failed:\n%s\n", out ? out : "");
        free(out);
        goto fail;
    }
    free(out);
    /* The copied postgresql.conf names the primary's socket directory: the replica gets its own. */
    char path[H_PATH + 32], conf[H_PATH + 64];
    snprintf(path, sizeof path, "%s/postgresql.conf", replica->datadir);
    snprintf(conf, sizeof conf, "\n# pglane integration tests: streaming replica\nunix_socket_directories = '%s'\n",
             replica->dir);
    if (append_file(path, conf) != 0)
        goto fail;
    for (int attempt = 0; attempt < 5 && !replica->running; attempt++) {
        replica->port = h_free_port();
        if (h_pg_ctl(replica, "start") == 0)
            replica->running = 1;
    }
    if (!replica->running) {
        char *log = h_read_file(replica->logfile);
        fprintf(stderr, "harness: the replica does not start:\n%s\n", log ? log : "");
        free(log);
        goto fail;
    }
    postmaster_track(replica);
    if (pg_wait_true(replica, "SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver "
                              "WHERE status = 'streaming')", 60000) != 0) {
        h_pg_stop(replica);
        return -1;
    }
    return 0;
fail:
    rm_rf(replica->dir);
    return -1;
}

int h_pg_promote(const struct h_pg *pg)
{
    const char *args[] = { "pg_ctl", "-D", pg->datadir, "-w", "-t", "60", "promote", NULL };
    char *out = NULL;
    int rc = pg_run(pg, args, 90000, &out);
    if (rc != 0)
        fprintf(stderr, "harness: pg_ctl promote failed (%d):\n%s\n", rc, out ? out : "");
    free(out);
    if (rc != 0)
        return -1;
    return pg_wait_true(pg, "SELECT NOT pg_is_in_recovery()", 60000);
}

int h_pg_wait_replay(const struct h_pg *replica, const struct h_pg *primary, int timeout_ms)
{
    PGconn *c = h_pg_super(primary, "postgres");
    if (!c)
        return -1;
    char *lsn = h_query1(c, "SELECT pg_current_wal_insert_lsn()");   /* commits are asynchronous here */
    PQfinish(c);
    if (!lsn)
        return -1;
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT coalesce(pg_last_wal_replay_lsn() >= '%s'::pg_lsn, false)", lsn);
    free(lsn);
    return pg_wait_true(replica, sql, timeout_ms);
}

/* ---------------------------------------------------------------- pglane */

int h_direct(void)
{
    const char *v = getenv("PGLANE_TEST_DIRECT");
    return v && *v && strcmp(v, "0") != 0;
}

int h_cache_unnamed(void)
{
    const char *v = getenv("PGLANE_TEST_CACHE_UNNAMED");
    return v && *v && strcmp(v, "0") != 0;
}

/* PGLANE_TEST_CACHE_UNNAMED: every lane of a config that does not name the key gets cache_unnamed = on. */
static char *add_cache_unnamed(char *text)
{
    if (!text || !h_cache_unnamed() || strstr(text, "cache_unnamed"))
        return text;
    return replace_all(text, "\n[lane.", "\n[lane.@CACHE_UNNAMED@");
}

/* Second step of add_cache_unnamed: the key goes on the line after each [lane.NAME] header. */
static char *place_cache_unnamed(char *text)
{
    char *p;

    while (text && (p = strstr(text, "@CACHE_UNNAMED@"))) {
        char *eol = strchr(p, '\n');
        size_t head = (size_t)(p - text), name = (size_t)((eol ? eol : p + strlen(p)) - p) - 15;
        char *out = malloc(strlen(text) + 32);

        if (!out) {
            free(text);
            return NULL;
        }
        memcpy(out, text, head);
        memcpy(out + head, p + 15, name);
        sprintf(out + head + name, "\ncache_unnamed = on%s", eol ? eol : "\n");
        free(text);
        text = out;
    }
    return text;
}

int h_workers(void)
{
    const char *v = getenv("PGLANE_TEST_WORKERS");
    long n = v && *v ? strtol(v, NULL, 10) : 0;
    return n > 0 && n < 1000 ? (int)n : 0;
}

/* 1 if a line of text sets key (in any section: a config that names it keeps its own). */
static int names_key(const char *text, const char *key)
{
    size_t n = strlen(key);

    for (const char *line = text; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        line += strspn(line, " \t");
        if (strncmp(line, key, n) == 0 && strchr(" \t=", line[n]))
            return 1;
    }
    return 0;
}

/* PGLANE_TEST_DEBUG: the config's log_level lines say debug (text freed; NULL without memory). */
static char *debug_level(char *text)
{
    char *out = malloc(strlen(text) * 2 + 1), *o = out;

    if (!out) {
        free(text);
        return NULL;
    }
    for (const char *line = text; *line;) {
        size_t len = strcspn(line, "\n");
        const char *k = line + strspn(line, " \t");

        if (strncmp(k, "log_level", 9) == 0 && strchr(" \t=", k[9]))
            o += sprintf(o, "log_level = debug");
        else
            o += sprintf(o, "%.*s", (int)len, line);
        line += len;
        if (*line == '\n')
            *o++ = *line++;
    }
    *o = 0;
    free(text);
    return out;
}

/* PGLANE_TEST_WORKERS=N: `workers = N` on the line after the [pglane] header of a config that does not
 * set workers itself (with PGLANE_TEST_DEBUG=1, log_level = debug too). */
static char *add_workers(char *text)
{
    int n = h_workers();
    char *p, *out;

    if (text && n && getenv("PGLANE_TEST_DEBUG"))
        text = debug_level(text);
    if (!text || !n || names_key(text, "workers"))
        return text;
    for (p = strstr(text, "[pglane]"); p && p != text && p[-1] != '\n'; p = strstr(p + 1, "[pglane]"))
        ;
    if (!p)
        return text;
    p += strcspn(p, "\n");
    out = malloc(strlen(text) + 64);
    if (!out) {
        free(text);
        return NULL;
    }
    memcpy(out, text, (size_t)(p - text));
    sprintf(out + (p - text), "\nworkers = %d%s%s%s", n,
            getenv("PGLANE_TEST_DEBUG") && !names_key(text, "log_level") ? "\nlog_level = debug" : "", *p ? "" : "\n", p);
    free(text);
    return out;
}

const char *h_pglane_bin(void)
{
    static char path[H_PATH];
    const char *v = getenv("PGLANE_BIN");
    if (v && *v)
        return v;
    if (!path[0] && !realpath("build/pglane", path))
        snprintf(path, sizeof path, "build/pglane");
    return path;
}

void h_conf(char *buf, size_t n, const char *pool_mode, int size, const char *auth_type,
            const char *extra_pglane)
{
    snprintf(buf, n,
             "; generated by tests/integration/harness.c\n"
             "[pglane]\n"
             "listen = 127.0.0.1:@PORT@\n"
             "auth_type = %s\n"
             "auth_file = @AUTHFILE@\n"
             "pool_mode = %s\n"
             "max_client_conn = 2000\n"
             "default_lane = main\n"
             "log_level = info\n"
             "%s"
             "\n"
             "[server.pg]\n"
             "host = 127.0.0.1\n"
             "port = @PGPORT@\n"
             "\n"
             "[lane.main]\n"
             "server = pg\n"
             "size = %d\n"
             "queue_timeout = 30s\n",
             auth_type, pool_mode,
             extra_pglane ? extra_pglane : "server_idle_timeout = 60s\n", size);
}

static struct h_pglane *registered(const struct h_pglane *l)
{
    for (int i = 0; i < MAX_PGLANES; i++)
        if (l->dir[0] && strcmp(g_pglanes[i].dir, l->dir) == 0)
            return &g_pglanes[i];
    return NULL;
}

/* Records (or refreshes) the registry's copy of l. */
static void register_lane(const struct h_pglane *l)
{
    struct h_pglane *r = registered(l);
    for (int i = 0; !r && i < MAX_PGLANES; i++)
        if (!g_pglanes[i].dir[0])
            r = &g_pglanes[i];
    if (r && r != l)
        *r = *l;
}

static void unregister_lane(const struct h_pglane *l)
{
    struct h_pglane *r = registered(l);
    if (r)
        r->dir[0] = '\0';
}

void h_pglane_keep(struct h_pglane *l)
{
    l->keep = 1;
    register_lane(l);
}

static int write_lane_files(struct h_pglane *l, const char *tmpl)
{
    char num[32];
    char *text = strdup(tmpl);
    snprintf(num, sizeof num, "%d", l->port);
    text = text ? replace_all(text, "@PORT@", num) : NULL;
    snprintf(num, sizeof num, "%d", l->pg->port);
    text = text ? replace_all(text, "@PGPORT@", num) : NULL;
    text = text ? replace_all(text, "@AUTHFILE@", l->auth_path) : NULL;
    text = text ? replace_all(text, "@SOCKDIR@", l->sock_dir) : NULL;
    text = text ? replace_all(text, "@DIR@", l->dir) : NULL;
    text = add_workers(place_cache_unnamed(add_cache_unnamed(text)));
    if (!text)
        return -1;
    int rc = h_write_file(l->conf_path, text);
    free(text);
    rc |= h_write_file(l->auth_path,
                       "\"" H_USER "\" \"" H_PASSWORD "\"\n"
                       "\"" H_MD5_USER "\" \"" H_MD5_PASSWORD "\"\n");
    rc |= chmod(l->auth_path, 0600);
    return rc;
}

static pid_t spawn_pglane(struct h_pglane *l)
{
    const char *argv[] = { h_pglane_bin(), l->conf_path, NULL };

    return spawn_logged(argv, NULL, l->log_path, 1, 0);
}

static int lane_prepare(struct h_pglane *l, const struct h_pg *pg)
{
    memset(l, 0, sizeof *l);
    l->pg = pg;
    l->direct = h_direct();
    if (l->direct) {
        l->port = pg->port;
        return 0;
    }
    snprintf(l->dir, sizeof l->dir, "/tmp/pglane-px-XXXXXX");
    if (!mkdtemp(l->dir)) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(l->conf_path, sizeof l->conf_path, "%s/pglane.ini", l->dir);
    snprintf(l->auth_path, sizeof l->auth_path, "%s/userlist.txt", l->dir);
    snprintf(l->log_path, sizeof l->log_path, "%s/pglane.log", l->dir);
    snprintf(l->sock_dir, sizeof l->sock_dir, "%s", l->dir);
    if (access(h_pglane_bin(), X_OK) != 0) {
        fprintf(stderr, "harness: pglane binary %s is missing (set PGLANE_BIN)\n", h_pglane_bin());
        rm_rf(l->dir);
        return -1;
    }
    return 0;
}

/* Polls libpq logins until one succeeds, pglane exits, or 10 s pass. 0 ready, 1 exited, -1 timeout. */
static int wait_ready(struct h_pglane *l)
{
    int64_t deadline = h_now_ms() + 10000;
    int delay = 2;
    while (h_now_ms() < deadline) {
        int st;
        if (wait_pid(l->pid, 0, &st)) {
            l->exit_status = st;
            l->pid = 0;
            return 1;
        }
        PGconn *c = h_connect(l, "connect_timeout=2");
        int ok = PQstatus(c) == CONNECTION_OK;
        PQfinish(c);
        if (ok)
            return 0;
        h_sleep_ms(delay);
        if (delay < 100)
            delay *= 2;
    }
    return -1;
}

static int lane_launch(struct h_pglane *l, const struct h_pg *pg, const char *tmpl, int wait)
{
    if (lane_prepare(l, pg) != 0)
        return -1;
    if (l->direct)
        return 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        l->port = h_free_port();
        if (write_lane_files(l, tmpl) != 0)
            return -1;
        l->pid = spawn_pglane(l);
        if (l->pid < 0)
            return -1;
        register_lane(l);
        if (!wait)
            return 0;
        int r = wait_ready(l);
        if (r == 0)
            return 0;
        char *log = h_pglane_log(l);
        int in_use = log && strstr(log, "in use") != NULL;
        free(log);
        if (r == 1 && in_use)
            continue;   /* lost the free-port race: try another port */
        fprintf(stderr, "harness: pglane on port %d did not become ready (%s)\n", l->port,
                r == 1 ? "it exited" : "10 s deadline");
        h_pglane_dump_log(l, 8192);
        h_pglane_stop(l);
        return -1;
    }
    return -1;
}

int h_pglane_start(struct h_pglane *l, const struct h_pg *pg, const char *conf_template)
{
    return lane_launch(l, pg, conf_template, 1);
}

int h_pglane_spawn(struct h_pglane *l, const struct h_pg *pg, const char *conf_template)
{
    return lane_launch(l, pg, conf_template, 0);
}

/* 1 once every thread of pid is stopped ('T' in /proc/PID/task/TID/stat), 0 if one still runs. */
static int all_threads_stopped(pid_t pid)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    int stopped = 1;

    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    if (!(d = opendir(path)))
        return 0;
    while (stopped && (e = readdir(d)) != NULL) {
        char stat_path[320], *text, *close_paren;

        if (e->d_name[0] == '.')
            continue;
        snprintf(stat_path, sizeof stat_path, "/proc/%d/task/%s/stat", (int)pid, e->d_name);
        text = h_read_file(stat_path);
        close_paren = text ? strrchr(text, ')') : NULL;
        stopped = close_paren && close_paren[1] == ' ' && (close_paren[2] == 'T' || close_paren[2] == 't');
        free(text);
    }
    closedir(d);
    return stopped;
}

int h_pglane_signal(struct h_pglane *l, int sig)
{
    if (l->direct)
        return 0;
    if (l->pid <= 0)
        return -1;
    if (kill(l->pid, sig) != 0)
        return -1;
    /* SIGSTOP reaches each thread of a process (a pglane with several workers) a moment after kill()
     * returns: a test that acts while pglane is stopped awaits it. */
    for (int64_t deadline = h_now_ms() + 5000; sig == SIGSTOP && !all_threads_stopped(l->pid); h_sleep_ms(1))
        if (h_now_ms() > deadline)
            return -1;
    return 0;
}

int h_pglane_wait_exit(struct h_pglane *l, int timeout_ms)
{
    if (l->direct)
        return 1;
    if (l->pid <= 0)
        return 1;
    int st;
    if (!wait_pid(l->pid, timeout_ms, &st))
        return 0;
    l->exit_status = st;
    l->pid = 0;
    register_lane(l);
    return 1;
}

int h_pglane_alive(struct h_pglane *l)
{
    if (l->direct)
        return 1;
    if (l->pid <= 0)
        return 0;
    int st;
    if (wait_pid(l->pid, 0, &st)) {
        l->exit_status = st;
        l->pid = 0;
        register_lane(l);
        return 0;
    }
    return 1;
}

int h_pglane_stop(struct h_pglane *l)
{
    if (l->direct) {
        l->exit_status = 0;
        return 0;
    }
    if (l->pid > 0) {
        kill(l->pid, SIGTERM);
        if (!h_pglane_wait_exit(l, 10000)) {
            fprintf(stderr, "harness: pglane %d ignored SIGTERM for 10 s, killing it\n", (int)l->pid);
            kill(l->pid, SIGKILL);
            h_pglane_wait_exit(l, 10000);
        }
    }
    if (getenv("PGLANE_TEST_VERBOSE"))
        h_pglane_dump_log(l, 1 << 20);
    rm_rf(l->dir);
    unregister_lane(l);
    l->dir[0] = '\0';
    return l->exit_status;
}

char *h_pglane_log(const struct h_pglane *l)
{
    char *s = l->direct || !l->log_path[0] ? NULL : h_read_file(l->log_path);
    return s ? s : strdup("");
}

void h_pglane_dump_log(const struct h_pglane *l, size_t tail)
{
    if (l->direct)
        return;
    char *s = h_pglane_log(l);
    size_t n = strlen(s);
    fprintf(stderr, "---- pglane log (port %d, pid %d)%s\n", l->port, (int)l->pid,
            n > tail ? ", tail" : "");
    fputs(n > tail ? s + n - tail : s, stderr);
    fprintf(stderr, "---- end of pglane log\n");
    free(s);
}

/* ---------------------------------------------------------------- clients */

void h_conninfo(const struct h_pglane *l, const char *extra, char *buf, size_t n)
{
    snprintf(buf, n, "host=127.0.0.1 port=%d user=" H_USER " password=" H_PASSWORD
             " dbname=" H_DB " connect_timeout=10 %s", l->port, extra ? extra : "");
}

PGconn *h_console(const struct h_pglane *l, const char *db)
{
    char ci[512];

    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=" H_USER " password=" H_PASSWORD
             " dbname=%s connect_timeout=5", l->port, db ? db : "pglane");
    return PQconnectdb(ci);
}

PGconn *h_connect(const struct h_pglane *l, const char *extra)
{
    char ci[1024];
    h_conninfo(l, extra, ci, sizeof ci);
    return PQconnectdb(ci);
}

PGconn *h_connect_app(const struct h_pglane *l, const char *app)
{
    char extra[128];

    snprintf(extra, sizeof extra, "application_name=%s", app);
    return h_connect(l, extra);
}

PGconn *h_console_ok(const struct h_pglane *l)
{
    PGconn *c = h_console(l, NULL);

    H_ASSERT_CONNECTED(c);
    return c;
}

PGconn *h_connect_app_ok(const struct h_pglane *l, const char *app)
{
    PGconn *c = h_connect_app(l, app);

    H_ASSERT_CONNECTED(c);
    return c;
}

PGconn *h_connect_start(const struct h_pglane *l, const char *extra)
{
    char ci[1024];
    h_conninfo(l, extra, ci, sizeof ci);
    return PQconnectStart(ci);
}

int h_connect_finish(PGconn *c, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    if (!c || PQstatus(c) == CONNECTION_BAD)
        return -1;
    for (;;) {
        if (st == PGRES_POLLING_OK)
            return 0;
        if (st == PGRES_POLLING_FAILED)
            return -1;
        int64_t left = deadline - h_now_ms();
        if (left <= 0)
            return -2;
        struct pollfd pfd = { .fd = PQsocket(c), .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT };
        if (poll(&pfd, 1, (int)left) > 0)
            st = PQconnectPoll(c);
    }
}

char *h_query1(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    char *v = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        v = strdup(PQgetvalue(r, 0, 0));
    else
        fprintf(stderr, "harness: query \"%s\" failed: %s %s", sql, PQresStatus(PQresultStatus(r)),
                PQerrorMessage(c));
    PQclear(r);
    return v;
}

long h_backend_pid(PGconn *c)
{
    char *v = h_query1(c, "SELECT pg_backend_pid()");
    long pid = v ? atol(v) : -1;
    free(v);
    return pid;
}

int h_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "harness: \"%s\" failed: %s %s", sql, PQresStatus(st), PQerrorMessage(c));
    PQclear(r);
    return ok ? 0 : -1;
}

const char *h_exec_sqlstate(PGconn *c, const char *sql)
{
    static char state[8];
    PGresult *r = PQexec(c, sql);
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(state, sizeof state, "%s", s ? s : "");
    PQclear(r);
    return state;
}

int h_wait_result(PGconn *c, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    /* Parse what is buffered first: reading more before consuming results would grow libpq's
     * input buffer without bound. */
    while (PQisBusy(c)) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
        poll(&pfd, 1, (int)left);
        if (!PQconsumeInput(c))
            return 0;   /* the connection broke: PQgetResult reports it without blocking */
    }
    return 0;
}

/* ---------------------------------------------------------------- raw sockets */

int h_raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

int h_raw_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

void h_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint32_t h_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void h_pglane_assert_clean_exit(struct h_pglane *l)
{
    char *log = h_pglane_log(l);
    if (l->exit_status != 0 || strstr(log, "Sanitizer") || strstr(log, "runtime error"))
        print_error("pglane exit %d, log:\n%s\n", l->exit_status, log);
    assert_int_equal(l->exit_status, 0);
    assert_null(strstr(log, "Sanitizer"));
    assert_null(strstr(log, "runtime error"));
    free(log);
    h_pglane_stop(l);
}

void h_pglane_assert_term_clean_exit(struct h_pglane *l)
{
    assert_int_equal(h_pglane_signal(l, SIGTERM), 0);
    assert_int_equal(h_pglane_wait_exit(l, 10000), 1);
    h_pglane_assert_clean_exit(l);
}

char *h_http(int port, const char *req, size_t len, int timeout_ms)
{
    int fd = h_raw_connect(port);
    if (fd < 0)
        return NULL;
    if (len && h_raw_send(fd, req, len) != 0) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    if (!out) {
        close(fd);
        return NULL;
    }
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int left = (int)(deadline - h_now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
        if (n + 4096 > cap) {
            char *bigger = realloc(out, cap * 2);
            if (!bigger)
                break;
            out = bigger;
            cap *= 2;
        }
        ssize_t r = recv(fd, out + n, cap - n - 1, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    out[n] = 0;
    close(fd);
    return out;
}

long h_metric(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; (p = strstr(p, series)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtol(p + n + 1, NULL, 10);
    return -1;
}

/* The whole answer to GET /metrics within timeout_ms (malloc'd), or NULL. */
static char *metrics_get(int port, int timeout_ms)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

    return h_http(port, req, sizeof req - 1, timeout_ms);
}

static int answered_ok(const char *out)
{
    return strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0;
}

/* The body of GET /metrics. The wait is long because a healthy pglane answers at once and closes,
 * while under ThreadSanitizer with several workers the first answer after a start has taken over 5 s. */
char *h_metrics_body(int port)
{
    char *out = metrics_get(port, 30000);
    assert_non_null(out);
    if (!answered_ok(out))
        print_error("GET /metrics answered:\n%s\n", out);
    assert_true(answered_ok(out));
    char *body = strstr(out, "\r\n\r\n");
    assert_non_null(body);
    char *copy = strdup(body + 4);
    free(out);
    assert_non_null(copy);
    return copy;
}

long h_metric_try(int port, const char *series, int timeout_ms)
{
    char *m = metrics_get(port, timeout_ms);
    long v = m && answered_ok(m) ? h_metric(m, series) : -1;

    free(m);
    return v;
}

long h_metric_now(int port, const char *series)
{
    char *m = h_metrics_body(port);
    long v = h_metric(m, series);

    free(m);
    return v;
}

long h_metric_wait(int port, const char *series, long want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    long v;

    while ((v = h_metric_now(port, series)) != want && h_now_ms() < deadline)
        h_sleep_ms(20);
    return v;
}

size_t h_raw_startup(uint8_t *buf, size_t cap, uint32_t version, const char *user, const char *db)
{
    size_t n = 8;
    const char *kv[] = { "user", user, "database", db };
    for (int i = 0; i < 4; i++) {
        size_t l = strlen(kv[i]) + 1;
        if (n + l + 1 > cap)
            return 0;
        memcpy(buf + n, kv[i], l);
        n += l;
    }
    buf[n++] = 0;
    h_put32(buf, (uint32_t)n);
    h_put32(buf + 4, version);
    return n;
}

/* Reads exactly n bytes by the deadline: 0, H_RAW_EOF or H_RAW_TIMEOUT. */
static int read_exact(int fd, uint8_t *buf, size_t n, int64_t deadline)
{
    while (n > 0) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0)
            return H_RAW_TIMEOUT;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return H_RAW_TIMEOUT;
        ssize_t r = read(fd, buf, n);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return H_RAW_EOF;   /* 0: orderly close; ECONNRESET and friends: closed too */
        buf += r;
        n -= (size_t)r;
    }
    return 0;
}

int h_raw_read_msg(int fd, int timeout_ms, uint8_t **body, uint32_t *len)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    uint8_t hdr[5];
    *body = NULL;
    *len = 0;
    int r = read_exact(fd, hdr, 5, deadline);
    if (r != 0)
        return r;
    uint32_t l = h_get32(hdr + 1);
    if (l < 4 || l > (64u << 20))
        return H_RAW_BAD;
    uint8_t *b = malloc(l - 4 + 1);
    if (!b)
        return H_RAW_BAD;
    r = read_exact(fd, b, l - 4, deadline);
    if (r != 0) {
        free(b);
        return r;
    }
    b[l - 4] = 0;
    *body = b;
    *len = l - 4;
    return hdr[0];
}

int h_raw_read_byte(int fd, int timeout_ms)
{
    uint8_t b;
    int r = read_exact(fd, &b, 1, h_now_ms() + timeout_ms);
    return r == 0 ? b : r;
}

const char *h_error_field(const uint8_t *body, uint32_t len, char code)
{
    uint32_t i = 0;
    while (i < len && body[i] != 0) {
        char c = (char)body[i++];
        const char *val = (const char *)body + i;
        size_t vl = strnlen(val, len - i);
        if (i + vl >= len)
            return NULL;    /* unterminated */
        if (c == code)
            return val;
        i += (uint32_t)vl + 1;
    }
    return NULL;
}

int h_raw_error(int fd, int timeout_ms, char sqlstate[6], char *msg, size_t msgcap)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    sqlstate[0] = '\0';
    if (msg && msgcap)
        msg[0] = '\0';
    for (;;) {
        int64_t left = deadline - h_now_ms();
        uint8_t *body;
        uint32_t len;
        int t = h_raw_read_msg(fd, left > 0 ? (int)left : 0, &body, &len);
        if (t == H_RAW_TIMEOUT)
            return H_RAW_TIMEOUT;
        if (t == H_RAW_EOF || t == H_RAW_BAD)
            return 0;
        if (t == 'E') {
            const char *s = h_error_field(body, len, 'C');
            snprintf(sqlstate, 6, "%s", s ? s : "");
            const char *m = h_error_field(body, len, 'M');
            if (msg && msgcap)
                snprintf(msg, msgcap, "%s", m ? m : "");
            fprintf(stderr, "harness: raw ErrorResponse %s: %s\n", sqlstate, m ? m : "");
            free(body);
            return 1;
        }
        free(body);
    }
}

int h_raw_expect_error_or_close(int fd, int timeout_ms, char sqlstate[6])
{
    return h_raw_error(fd, timeout_ms, sqlstate, NULL, 0);
}

int h_pgbench_start(struct h_proc *p, const struct h_pglane *l, const char *db, const char *const *args)
{
    char ci[1024], extra[128];
    const char *argv[40];
    int n = 0;
    snprintf(extra, sizeof extra, "dbname=%s", db);
    h_conninfo(l, extra, ci, sizeof ci);
    argv[n++] = "pgbench";
    for (int i = 0; args[i] && n < 38; i++)
        argv[n++] = args[i];
    argv[n++] = ci;
    argv[n] = NULL;
    return h_proc_start(p, argv, NULL);
}

int h_pgbench_init(const struct h_pg *pg, const char *db)
{
    struct h_pglane direct = { .port = pg->port, .direct = 1, .pg = pg };
    struct h_proc p;
    const char *args[] = { "-i", "-s", "1", "-q", NULL };
    char *out = NULL;
    if (h_pgbench_start(&p, &direct, db, args) != 0)
        return -1;
    int rc = h_proc_wait(&p, 120000, &out);
    if (rc != 0)
        fprintf(stderr, "pgbench -i %s failed (%d):\n%s\n", db, rc, out ? out : "");
    free(out);
    return rc == 0 ? 0 : -1;
}

long h_parse_after(const char *text, const char *prefix)
{
    const char *p = text ? strstr(text, prefix) : NULL;
    if (!p)
        return -1;
    p += strlen(prefix);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    return strtol(p, NULL, 10);
}

/* ---------------------------------------------------------------- test lifecycle */

int h_test_setup(void **state)
{
    (void)state;
    g_test_failed = 1;
    g_test_start = h_now_ms();
    install_emergency();
    signal(SIGPIPE, SIG_IGN);
    alarm(H_TEST_WATCHDOG_S);
    return 0;
}

void h_pass(void)
{
    g_test_failed = 0;
}

int h_test_teardown(void **state)
{
    (void)state;
    if (getenv("PGLANE_TEST_TIMING"))
        fprintf(stderr, "harness: test took %lld ms\n", (long long)(h_now_ms() - g_test_start));
    if (g_test_failed) {
        fprintf(stderr, "harness: the test failed; logs of running pglane processes follow\n");
        for (int i = 0; i < MAX_PGLANES; i++)
            if (g_pglanes[i].dir[0])
                h_pglane_dump_log(&g_pglanes[i], 16384);
    }
    kill_tracked();
    for (int i = 0; i < MAX_PGLANES; i++)
        if (g_pglanes[i].dir[0] && !g_pglanes[i].keep)
            h_pglane_stop(&g_pglanes[i]);
    g_test_failed = 0;
    alarm(60);   /* the next setup re-arms it; group teardown must not hang either */
    return 0;
}

void h_filter_from_env(void)
{
    const char *f = getenv("PGLANE_TEST_FILTER");
    if (f && *f)
        cmocka_set_test_filter(f);
}

void h_cleanup(void)
{
    kill_tracked();
    for (int i = 0; i < MAX_PGLANES; i++)
        if (g_pglanes[i].dir[0])
            h_pglane_stop(&g_pglanes[i]);
    if (g_scratch[0]) {
        rm_rf(g_scratch);
        g_scratch[0] = '\0';
    }
}

/* ---------------------------------------------------------------- test groups */

static const struct h_group *g_group;

int h_group_setup(void **state)
{
    const struct h_group *g = g_group;

    (void)state;
    if (g->skip_direct && h_direct())
        return 0;
    if (g->pg && h_pg_start(g->pg) != 0)
        return -1;
    if (g->super && !(*g->super = h_pg_super(g->pg, H_DB)))
        return -1;
    return g->setup ? g->setup() : 0;
}

int h_group_teardown(void **state)
{
    const struct h_group *g = g_group;
    int rc = g->teardown ? g->teardown() : 0;

    (void)state;
    h_cleanup();
    if (g->super && *g->super) {
        PQfinish(*g->super);
        *g->super = NULL;
    }
    if (g->pg && !(g->skip_direct && h_direct()))
        h_pg_stop(g->pg);
    return rc;
}

int h_run_group(const char *name, const struct CMUnitTest *tests, size_t n, const struct h_group *g)
{
    g_group = g;
    h_filter_from_env();
    return _cmocka_run_group_tests(name, tests, n, h_group_setup, h_group_teardown);
}
