/*
 * Integration test harness: a throwaway PostgreSQL 15 cluster, pglane processes started from a
 * config string, libpq / raw-socket client helpers and a command runner with deadlines.
 * PGLANE_TEST_DIRECT=1 points every "through pglane" connection straight at PostgreSQL.
 * PGLANE_TEST_WORKERS=N adds `workers = N` to the [pglane] section of every config the harness writes
 * for pglane, unless the config sets workers itself (unset or 0: nothing added; tests/run.sh passes it on).
 */
#ifndef PGLANE_TEST_HARNESS_H
#define PGLANE_TEST_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <sys/types.h>
#include <cmocka.h>
#include <libpq-fe.h>

#define H_PATH 512
#define H_DIR 128     /* temp directories: short, so that paths inside them fit H_PATH */

/* Credentials created in every cluster (and written to every userlist). */
#define H_USER "app"
#define H_PASSWORD "apppass"
#define H_DB "appdb"
#define H_MD5_USER "md5user"      /* stored as md5 in PostgreSQL, md5 line in pg_hba */
#define H_MD5_PASSWORD "md5pass"
#define H_BENCH_DB "benchdb"      /* second database owned by app */

/* ---------------------------------------------------------------- PostgreSQL cluster */

struct h_pg {
    char dir[H_DIR];         /* temp dir: data/, unix sockets, server.log */
    char datadir[H_PATH];
    char logfile[H_PATH];
    char bindir[H_DIR];
    char superuser[64];
    int port;
    int running;
    int pm_slot;             /* the harness's emergency-kill slot (internal) */
    int replica;             /* started by h_pg_start_replica: a standby streaming from a primary */
};

/* initdb + configure + pg_ctl start on a free port + roles and databases. 0 or -1 (reason on stderr). */
int h_pg_start(struct h_pg *pg);
/* pg_ctl stop -m immediate (falls back to SIGKILL of the pid in postmaster.pid) and removes the dir. */
void h_pg_stop(struct h_pg *pg);
/* pg_ctl -m fast -w `action` ("stop", "start", "restart") of the cluster on its own port, as postgres when
 * root; 0, or -1 with pg_ctl's output on stderr. */
int h_pg_ctl(const struct h_pg *pg, const char *action);
/*
 * A streaming replica of `primary` (a running h_pg_start cluster): pg_basebackup -R from it into the
 * replica's own temp dir, started on its own free port; returns once pg_is_in_recovery() is true and
 * its WAL receiver is streaming (60 s deadline). Stop it with h_pg_stop. 0, or -1 (reason on stderr).
 */
int h_pg_start_replica(struct h_pg *replica, const struct h_pg *primary);
/* pg_ctl promote of a standby; waits until pg_is_in_recovery() is false. 0 or -1. */
int h_pg_promote(const struct h_pg *pg);
/* Waits until the replica has replayed the primary's current WAL position (pg_current_wal_insert_lsn() now):
 * 0, or -1 after timeout_ms. */
int h_pg_wait_replay(const struct h_pg *replica, const struct h_pg *primary, int timeout_ms);
/* Superuser connection over the cluster's unix socket; NULL (and a message) on failure. */
PGconn *h_pg_super(const struct h_pg *pg, const char *dbname);
/* Runs sql as superuser in dbname; 0 or -1. */
int h_pg_exec(const struct h_pg *pg, const char *dbname, const char *sql);
/* First column of the first row of sql as a long (superuser, database appdb); -1 on any failure. */
long h_pg_long(PGconn *super, const char *sql);
/* Client backends of user `user` in pg_stat_activity (any database). -1 on failure. */
long h_pg_backends(PGconn *super, const char *user);
/* Polls until h_pg_long(sql) == want or the deadline passes. Returns the last value seen. */
long h_pg_wait_long(PGconn *super, const char *sql, long want, int timeout_ms);
/* Value of column `col` in the row of lane `lane` of an admin console SHOW (cmd), or -1. */
long h_show_val(PGconn *adm, const char *cmd, const char *lane, const char *col);
/* Polls until h_show_val(...) == want or the deadline passes. Returns the last value seen. */
long h_show_wait(PGconn *adm, const char *cmd, const char *lane, const char *col, long want, int timeout_ms);

/* A loopback TCP port that was free a moment ago (never 5432); -1 on failure. */
int h_free_port(void);

/* ---------------------------------------------------------------- pglane process */

struct h_pglane {
    char dir[H_DIR];
    char conf_path[H_PATH];
    char auth_path[H_PATH];
    char log_path[H_PATH];
    char sock_dir[H_DIR];
    int port;
    pid_t pid;
    int direct;              /* PGLANE_TEST_DIRECT: port is PostgreSQL's, nothing was started */
    int keep;                /* 1: owned by a group; per-test teardown leaves it running */
    int exit_status;         /* after h_pglane_stop / h_pglane_wait_exit: see h_pglane_wait_exit */
    const struct h_pg *pg;
};

/* 1 if PGLANE_TEST_DIRECT is set to a non-empty value other than 0. */
int h_direct(void);
/* 1 if PGLANE_TEST_CACHE_UNNAMED is set to a non-empty value other than 0: h_pglane_start adds
 * cache_unnamed = on to every lane of a config that does not mention cache_unnamed itself. */
int h_cache_unnamed(void);
/* N of PGLANE_TEST_WORKERS=N (1..999), or 0 when it is unset or not such a number: h_pglane_start and
 * h_pglane_spawn add workers = N to [pglane] of every config that does not set workers itself. */
int h_workers(void);
/* The pglane binary: $PGLANE_BIN or <repo>/build/pglane. */
const char *h_pglane_bin(void);

/*
 * A standard config template for h_pglane_start: transaction/session pool_mode, lane main of `size`
 * connections to the cluster, auth_type as given. `extra_pglane` is appended to [pglane] (may be
 * NULL, e.g. "server_idle_timeout = 1s\n").
 */
void h_conf(char *buf, size_t n, const char *pool_mode, int size, const char *auth_type,
            const char *extra_pglane);

/*
 * Writes the config (placeholders @PORT@ @PGPORT@ @DIR@ @AUTHFILE@ @SOCKDIR@ replaced) and the
 * userlist, starts pglane on a free port with its output in a log file, and waits (10 s deadline)
 * until a libpq connection as app succeeds. In direct mode only sets port to PostgreSQL's.
 * Returns 0, or -1 with the log dumped to stderr.
 */
int h_pglane_start(struct h_pglane *l, const struct h_pg *pg, const char *conf_template);
/* As h_pglane_start but does not wait for readiness (for configs that refuse app logins). */
int h_pglane_spawn(struct h_pglane *l, const struct h_pg *pg, const char *conf_template);
/* Marks l as owned by the test group: per-test teardown leaves it running. */
void h_pglane_keep(struct h_pglane *l);
/* SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit status as h_pglane_wait_exit. */
int h_pglane_stop(struct h_pglane *l);
/* kill(pid, sig); 0 or -1. No-op success in direct mode. */
int h_pglane_signal(struct h_pglane *l, int sig);
/*
 * Waits up to timeout_ms for pglane to exit. Returns 1 if it exited (l->exit_status = exit code
 * 0..255, or 1000 + signal number if killed by a signal), 0 on timeout.
 */
int h_pglane_wait_exit(struct h_pglane *l, int timeout_ms);
/* 1 if the process is still running. */
int h_pglane_alive(struct h_pglane *l);
/* The whole log so far (malloc'd, NUL-terminated; "" if none). */
char *h_pglane_log(const struct h_pglane *l);
/* After h_pglane_wait_exit: asserts pglane exited 0 with no sanitizer report in its log (printing the
 * log otherwise), then h_pglane_stop. */
void h_pglane_assert_clean_exit(struct h_pglane *l);
/* SIGTERM, asserts that pglane exits within 10 s, then h_pglane_assert_clean_exit. */
void h_pglane_assert_term_clean_exit(struct h_pglane *l);
/* Prints the last `tail` bytes of the log to stderr. */
void h_pglane_dump_log(const struct h_pglane *l, size_t tail);

/* ---------------------------------------------------------------- clients */

/* Replaces the first `from` in a config buf (capacity n) by `to`. Fails the test if absent. */
void h_conf_replace(char *buf, size_t n, const char *from, const char *to);

/* Conninfo to pglane (or PG in direct mode) as app/appdb, extra appended (may be NULL). */
void h_conninfo(const struct h_pglane *l, const char *extra, char *buf, size_t n);
/* PQconnectdb of h_conninfo; returns the connection even if bad (check PQstatus). */
PGconn *h_connect(const struct h_pglane *l, const char *extra);
/* h_connect with application_name=app (what routes by application name match on). */
PGconn *h_connect_app(const struct h_pglane *l, const char *app);
/* The admin console of l (db NULL: "pglane"; or e.g. "pgbouncer") as app over TCP, 5 s connect
 * timeout; returns the connection even if bad (check PQstatus). */
PGconn *h_console(const struct h_pglane *l, const char *db);
/* h_console(l, NULL) and h_connect_app that fail the running test unless the connection is up. */
PGconn *h_console_ok(const struct h_pglane *l);
PGconn *h_connect_app_ok(const struct h_pglane *l, const char *app);
/* PQconnectStart of h_conninfo (non-blocking). */
PGconn *h_connect_start(const struct h_pglane *l, const char *extra);
/* Drives PQconnectPoll until done: 0 connected, -1 failed, -2 still not done after timeout_ms. */
int h_connect_finish(PGconn *c, int timeout_ms);
/* Runs sql; returns the first value of the first row (malloc'd) or NULL, printing the error. */
char *h_query1(PGconn *c, const char *sql);
/* The PostgreSQL backend pid behind c (SELECT pg_backend_pid()), or -1. */
long h_backend_pid(PGconn *c);
/* Runs sql expecting PGRES_COMMAND_OK or PGRES_TUPLES_OK; 0 or -1 (error printed). */
int h_exec(PGconn *c, const char *sql);
/* Runs sql expecting an error; returns its SQLSTATE (static copy) or "" if it succeeded / no state. */
const char *h_exec_sqlstate(PGconn *c, const char *sql);
/* Waits up to timeout_ms for PQgetResult not to block (PQisBusy false). 0, or -1 on timeout. */
int h_wait_result(PGconn *c, int timeout_ms);

/* ---------------------------------------------------------------- raw sockets */

/* TCP connection to 127.0.0.1:port; -1 on failure. */
int h_raw_connect(int port);
/* Writes all bytes (MSG_NOSIGNAL); 0 or -1. */
int h_raw_send(int fd, const void *p, size_t n);
/* StartupMessage v3 with user/database (version as given). Returns its length written to buf. */
size_t h_raw_startup(uint8_t *buf, size_t cap, uint32_t version, const char *user, const char *db);

/* Big-endian 32-bit store / load (protocol lengths and codes). */
void h_put32(uint8_t *p, uint32_t v);
uint32_t h_get32(const uint8_t *p);
/* Sends req (len bytes; none if 0) to 127.0.0.1:port and returns everything received until the
 * peer closes or timeout_ms passes (malloc'd, NUL-terminated); NULL if connect or send failed. */
char *h_http(int port, const char *req, size_t len, int timeout_ms);
/* GET /metrics on a metrics_listen port: the body after the HTTP header (malloc'd). Fails the test
 * if there is no answer, the status is not 200 OK or there is no header end. */
char *h_metrics_body(int port);

/* The integer value of the metrics line that starts with `series` ("name{labels}") followed by a
 * space, or -1 if there is none. */
long h_metric(const char *text, const char *series);

/* h_metrics_body(port) and h_metric of series in it. */
long h_metric_now(int port, const char *series);
/* The same without asserting: -1 when /metrics does not answer 200 within timeout_ms (a sample taken
 * while pglane is deliberately overloaded). */
long h_metric_try(int port, const char *series, int timeout_ms);
/* Polls h_metric_now until series is want or the deadline passes. Returns the last value seen. */
long h_metric_wait(int port, const char *series, long want, int timeout_ms);

enum { H_RAW_EOF = -1, H_RAW_TIMEOUT = -2, H_RAW_BAD = -3 };
/*
 * Reads one backend message within timeout_ms. Returns its type byte (0..255) with *body
 * (malloc'd, NUL-terminated beyond len) and *len, or H_RAW_EOF (orderly close or reset),
 * H_RAW_TIMEOUT, H_RAW_BAD (impossible length).
 */
int h_raw_read_msg(int fd, int timeout_ms, uint8_t **body, uint32_t *len);
/* Reads exactly one byte within timeout_ms: the byte, H_RAW_EOF or H_RAW_TIMEOUT. */
int h_raw_read_byte(int fd, int timeout_ms);
/*
 * Reads messages until an ErrorResponse or the close. Returns 1 (ErrorResponse; its SQLSTATE in
 * sqlstate[6]), 0 (closed without one) or H_RAW_TIMEOUT. Other messages are skipped.
 */
int h_raw_expect_error_or_close(int fd, int timeout_ms, char sqlstate[6]);
/* As h_raw_expect_error_or_close, and the error's message text in msg (msgcap bytes; may be NULL). */
int h_raw_error(int fd, int timeout_ms, char sqlstate[6], char *msg, size_t msgcap);
/* The value of field `code` ('C', 'M', ...) in an ErrorResponse body, or NULL. */
const char *h_error_field(const uint8_t *body, uint32_t len, char code);

/* ---------------------------------------------------------------- commands */

struct h_proc {
    pid_t pid;
    char out_path[H_PATH];
    int done;                 /* reaped (by h_proc_done or h_proc_wait) */
    int status;               /* as h_pglane_wait_exit */
};
/* fork/exec argv (PATH searched) with env_extra ("K=V", NULL-terminated, may be NULL); output
 * (stdout + stderr) to a file. 0 or -1. */
int h_proc_start(struct h_proc *p, const char *const *argv, const char *const *env_extra);
/* Waits up to timeout_ms; on timeout kills it (SIGKILL) and returns -1. Else returns the exit code
 * (or 1000 + signal). *out (if not NULL) gets the output, malloc'd. */
int h_proc_wait(struct h_proc *p, int timeout_ms, char **out);
/* 1 if the process has exited (status set), without waiting. */
int h_proc_done(struct h_proc *p);
/* h_proc_start + h_proc_wait. */
int h_run(const char *const *argv, const char *const *env_extra, int timeout_ms, char **out);
/* Track a pid so the per-test teardown SIGKILLs and reaps it if the test fails before doing so. */
void h_track_pid(pid_t pid);
void h_untrack_pid(pid_t pid);

/* pgbench ARGS... "<conninfo to db through l>" as a process (not waited for). */
int h_pgbench_start(struct h_proc *p, const struct h_pglane *l, const char *db, const char *const *args);
/* pgbench -i -s 1 -q of db straight to the cluster as app (the tables belong to app; no pglane);
 * 0, or -1 with pgbench's output on stderr. */
int h_pgbench_init(const struct h_pg *pg, const char *db);
/* The integer after the first occurrence of `prefix` in text, or -1. */
long h_parse_after(const char *text, const char *prefix);

/* ---------------------------------------------------------------- test lifecycle */

/* Each test must finish within this many seconds, or the binary kills everything it started and
 * exits 124 (a blocking libpq call on a hung proxy must not hang CI). */
#define H_TEST_WATCHDOG_S 150

/* cmocka per-test setup/teardown: teardown of a test that did not call h_pass() dumps the logs of
 * running pglanes; it stops pglanes not marked keep and kills tracked pids. */
int h_test_setup(void **state);
int h_test_teardown(void **state);
/* A test of a group with the harness's per-test setup and teardown. */
#define H_TEST(fn) cmocka_unit_test_setup_teardown(fn, h_test_setup, h_test_teardown)
void h_pass(void);
/* Applies PGLANE_TEST_FILTER (a cmocka test-name pattern, e.g. "test_cancel*") if set. Call first
 * in main(). */
void h_filter_from_env(void);
/* Stops every pglane still registered, kills tracked pids, removes scratch files. */
void h_cleanup(void);

/*
 * A test binary's group: h_group_setup starts the cluster `pg` (unless NULL), opens `*super` (if
 * not NULL) as superuser to H_DB, then runs `setup`; h_group_teardown runs `teardown`, then
 * h_cleanup, closes `*super` and stops the cluster. With skip_direct, direct mode starts nothing
 * and runs no setup (every test of the group skips itself); teardown still runs.
 */
struct h_group {
    struct h_pg *pg;            /* the cluster, or NULL for none */
    PGconn **super;             /* if not NULL (and pg set): a superuser connection to H_DB */
    int skip_direct;
    int (*setup)(void);         /* the group's own fixtures (tables, pglanes...): 0 or -1; may be NULL */
    int (*teardown)(void);      /* first in the group teardown; non-zero fails the group; may be NULL */
};
/* cmocka group setup/teardown for the group h_run_group runs. */
int h_group_setup(void **state);
int h_group_teardown(void **state);
/* h_filter_from_env, then cmocka's group `name` of n tests with h_group_setup/h_group_teardown. */
int h_run_group(const char *name, const struct CMUnitTest *tests, size_t n, const struct h_group *g);
/* return H_RUN_GROUP("integration: ...", tests, .pg = &g_pg, .setup = fixtures); */
#define H_RUN_GROUP(name, tests, ...) \
    h_run_group((name), (tests), sizeof(tests) / sizeof((tests)[0]), &(const struct h_group){ __VA_ARGS__ })

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t h_now_ms(void);
/* Sleeps ms milliseconds (restarting on EINTR): the interval of a polling loop, never a way to wait
 * for an event. */
void h_sleep_ms(int ms);
/* A directory for scratch files of this process (created on first use). */
const char *h_scratch_dir(void);
/* Writes a whole file; 0 or -1. */
int h_write_file(const char *path, const char *text);
/* Reads a whole file (malloc'd, NUL-terminated) or NULL. */
char *h_read_file(const char *path);
/* Raises RLIMIT_NOFILE's soft limit to want (or the hard limit); returns the new soft limit. */
long h_raise_nofile(long want);

#define H_SKIP_IF_DIRECT() do { if (h_direct()) { h_pass(); skip(); } } while (0)

/* Defines the test `fn`, for the end of a group: the group's pglane `l` drains on SIGTERM and exits 0
 * with no sanitizer report (the ASan build runs every group too). */
#define H_CLEAN_EXIT_TEST(fn, l) \
    static void fn(void **state) \
    { \
        (void)state; \
        H_SKIP_IF_DIRECT(); \
        h_pglane_assert_term_clean_exit(l); \
        h_pass(); \
    }

/* Asserts that a libpq connection is up, printing libpq's message otherwise. */
#define H_ASSERT_CONNECTED(c) do { \
        if (PQstatus(c) != CONNECTION_OK) \
            print_error("connection failed: %s\n", PQerrorMessage(c)); \
        assert_int_equal(PQstatus(c), CONNECTION_OK); \
    } while (0)

#endif
