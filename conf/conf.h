/*
 * conf/ — loads pglane's ini file (inih) into an immutable typed struct, validates it and reports
 * every problem as "file:line: message". Also loads the auth_file (userlist). No logging, no I/O
 * besides reading the files it is given.
 *
 * Syntax (Debian's inih r55): "key = value" (or "key: value") under [pglane], [server.NAME],
 * [lane.NAME] and [route.NAME] (NAME: letters, digits, '_', '-'); lines starting with ';' or '#' are
 * comments, and a ';' preceded by whitespace starts an inline comment, so a value (e.g. a sql regex)
 * is cut at " ;". Leading blanks are ignored (no multi-line values). A line may hold at most 198
 * characters and section and key names at most 49 (inih's fixed buffers); longer ones are errors.
 */
#ifndef PGLANE_CONF_H
#define PGLANE_CONF_H

#include <stdint.h>

#define CONF_MUSTCHECK __attribute__((warn_unused_result))

struct pcre2_real_code_8;   /* pcre2_code (8-bit) */

enum conf_auth_type { CONF_AUTH_TRUST, CONF_AUTH_MD5, CONF_AUTH_SCRAM };
enum conf_pool_mode { CONF_POOL_SESSION, CONF_POOL_TRANSACTION };
enum conf_log_level { CONF_LOG_ERROR, CONF_LOG_WARNING, CONF_LOG_INFO, CONF_LOG_DEBUG };
enum conf_tls_mode { CONF_TLS_DISABLE, CONF_TLS_ALLOW, CONF_TLS_REQUIRE };
enum conf_server_tls { CONF_STLS_DISABLE, CONF_STLS_PREFER, CONF_STLS_REQUIRE, CONF_STLS_VERIFY_CA,
                       CONF_STLS_VERIFY_FULL };
enum conf_server_role { CONF_ROLE_AUTO, CONF_ROLE_PRIMARY, CONF_ROLE_REPLICA };
enum conf_guard { CONF_GUARD_OFF, CONF_GUARD_LOG, CONF_GUARD_CANCEL };
enum conf_pin { CONF_PIN_ALLOW, CONF_PIN_REFUSE };
/* tenant_key: what names a transaction's tenant for fair queuing (proxy/fairq.c) */
enum conf_tenant_key { CONF_TENANT_NONE, CONF_TENANT_USER, CONF_TENANT_DATABASE, CONF_TENANT_APP, CONF_TENANT_HINT };
struct conf_tenant_weight { char *id; int weight; int line; };   /* tenant_weight.ID = N */
enum { CONF_TLS_V1_2 = 1, CONF_TLS_V1_3 = 2 };   /* bits of conf.tls_protocol_mask */

/* Durations are stored in milliseconds. 0 means "disabled" where the README says so. */

struct conf_listen {           /* one "host:port" of listen = (comma-separated list) */
    char *host;
    int port;
};

/* One entry of [peers]: another pglane process (or this one) that may own a cancel key. */
struct conf_peer {
    int id;                    /* 1..CONF_PEER_ID_MAX, from the key "peer.N" or "N" */
    char *host;                /* address or name; a path starting with '/' is a unix socket dir */
    int port;
    int line;
};
#define CONF_PEER_ID_MAX 16383
#define CONF_WORKERS_MAX 64        /* workers: the low 6 bits of a cancel key's process id name the worker */

struct conf_setting {          /* a GUC applied as a startup parameter of a lane's server connections */
    char *name;
    char *value;
    int line;
};

struct conf_server {
    char *name;                /* from [server.NAME] */
    char *host;                /* default 127.0.0.1; a path starting with '/' means a unix socket dir */
    int port;                  /* default 5432 */
    enum conf_server_tls tls_mode;  /* server_tls_mode, default disable */
    char *tls_ca_file;         /* server_tls_ca_file */
    int max_connections;       /* default 0 (no cap): server connections to it, all lanes and pools */
    enum conf_server_role role;     /* role, default auto: learned from pg_is_in_recovery() */
    int role_set;              /* the section says role (any value): its health is checked */
    int line;
};

#define CONF_LANE_SERVERS_MAX 16
enum conf_balance { CONF_BALANCE_LEAST_BUSY, CONF_BALANCE_ROUND_ROBIN };
enum conf_replica_fallback { CONF_FALLBACK_PRIMARY, CONF_FALLBACK_QUEUE, CONF_FALLBACK_ERROR };

#define CONF_NICE_IDLE 20    /* backend_nice = idle */

struct conf_lane {
    char *name;                /* from [lane.NAME] */
    int server;                /* index into conf.servers (resolved from server = NAME): the first of servers */
    /* Replicas (README, Replicas): server = a, b, c lists the lane's servers, each at most once. */
    int servers[CONF_LANE_SERVERS_MAX];   /* indexes into conf.servers, in the order written */
    int nservers;                          /* 1 for server = NAME */
    enum conf_balance balance;             /* balance = least-busy (default) | round-robin */
    int64_t max_replica_lag_ms;            /* 0 (default) = no limit by time */
    int64_t max_replica_lag_bytes;         /* 0 (default) = no limit by bytes */
    enum conf_replica_fallback replica_fallback;   /* default primary */
    int read_your_writes;                  /* read_your_writes = on|off, default off */
    int size;                  /* default 20: concurrent server connections per (database, user) */
    int reserve;               /* default 0 */
    int64_t reserve_timeout_ms;     /* default 5s */
    int64_t queue_timeout_ms;       /* default 120s; 0 = wait forever */
    int64_t server_connect_timeout_ms; /* default 15s */
    int64_t server_lifetime_ms;     /* default 3600s; 0 = unlimited */
    int64_t idle_transaction_timeout_ms; /* -1 (default): [pglane] idle_transaction_timeout; 0 = off */
    int server_retry;          /* default 2: resends of a transaction's first messages after its server
                                * connection died before answering; 0 = off */
    /* Session settings sent as startup parameters, in file order: statement_timeout, lock_timeout,
     * work_mem, idle_in_transaction_session_timeout and every set.<guc>. The three timeouts are
     * validated as durations and stored as milliseconds text ("2s" -> "2000"); work_mem and set.<guc>
     * values are kept as written (PostgreSQL parses them). A GUC appears at most once
     * (case-insensitively). */
    struct conf_setting *settings;
    int nsettings;
    int protect;               /* protect = yes|no, default no */
    int preemptible;           /* preemptible = yes|no, default no */
    enum conf_guard guard;     /* guard = off|log|cancel, default off */
    int64_t guard_wait_ms;     /* default 250ms */
    enum conf_pin pin;         /* pin = allow|refuse, default allow */
    int cache_unnamed;         /* cache_unnamed = on|off, default off: repeated unnamed Parse -> named */
    /* cancel_on_disconnect = on|off, default on: a client that leaves while its request runs gets that
     * request cancelled on the server (proxy/cancel.c px_cancel_orphan) before the connection closes. */
    int cancel_on_disconnect;
    /* Quarantine of repeat blockers, read on the protected lane (proxy/guard.c): after
     * guard_quarantine cancels/terminations against one statement shape within
     * guard_quarantine_window, that shape is refused on preemptible lanes for guard_quarantine_time.
     * guard_quarantine = 0 turns it off. */
    int guard_quarantine;      /* default 3, 0..100 */
    int64_t guard_quarantine_window_ms;   /* default 10min */
    int64_t guard_quarantine_time_ms;     /* default 10min */
    /* Adaptive cap (proxy/adapt*.c): with protects = LANE, this lane's effective size moves between
     * min_size and size so that LANE's transaction p99 stays under target_p99. */
    char *protects;            /* the protected lane's name, default none (NULL) */
    int protects_lane;         /* its index into conf.lanes, -1 without protects */
    int64_t target_p99_ms;     /* required with protects */
    int64_t adapt_interval_ms; /* default 1s: one controller decision per interval */
    int min_size;              /* default 1, at most size */
    int adapt_min_samples;     /* default 20: fewer protected transactions in a window = no decision */
    /* Fair queuing by tenant (README, Fairness and adaptive lanes). */
    enum conf_tenant_key tenant_key;      /* default none: one FIFO */
    int tenant_max;                       /* default 0 = no cap: connections of the lane one tenant may hold */
    struct conf_tenant_weight *tenant_weights;   /* tenant_weight.ID = N (1..1000), each ID at most once */
    int ntenant_weights;
    /* backend_nice = 0..19 | idle, default 0 (left alone): the CPU priority pglane gives each of the
     * lane's backends as it logs in (proxy/nice.c): a nice value, or CONF_NICE_IDLE for the SCHED_IDLE
     * policy; only for servers on this host (validate.c). */
    int backend_nice;
    int line;
};

/* Route criteria are all optional (NULL / 0 = not given) and ANDed. */
struct conf_route {
    char *name;                /* from [route.NAME] */
    int lane;                  /* index into conf.lanes */
    char **databases; int ndatabases;        /* database = a, b */
    char **users; int nusers;                /* user = a, b */
    char **app_globs; int napp_globs;        /* application_name = report-*, etl */
    struct conf_cidr { uint8_t addr[16]; int family; int prefix; } *cidrs; int ncidrs; /* client_addr */
    char **kinds; int nkinds;                /* kind = select, insert, ... (lowercase) */
    char **tables; int ntables;              /* tables = events, public.reports */
    char *sql;                 /* PCRE2 pattern, validated by compiling it with options 0 (write
                                  (?i) for caseless). inih cuts a value at " ;" (an inline comment),
                                  so a pattern cannot contain a ';' preceded by whitespace. */
    struct pcre2_real_code_8 *sql_re;  /* sql compiled, for routing/ to copy (not compile again) */
    int hint;                  /* hint = yes: a statement's hint comment names the lane */
    int read_only_trust;       /* read_only = trust: a transaction whose first statement reads may go to a
                                  replica even when it is not a single autocommit statement (default grammar) */
    int64_t slower_than_ms;    /* 0 = not given */
    int line;
};

struct conf {
    char *file;                /* the path it was loaded from */
    struct conf_listen *listen; int nlisten;  /* default 127.0.0.1:6432 */
    char *unix_socket_dir;     /* NULL = no unix socket */
    enum conf_auth_type auth_type;  /* default scram-sha-256 */
    char *auth_file;           /* required unless auth_type = trust; relative to the ini's folder */
    /* Every file path (auth_file, tls_*_file, server_tls_ca_file) is stored already resolved: a
     * relative path is prefixed with the ini file's folder. */
    enum conf_pool_mode pool_mode;  /* default transaction */
    int max_client_conn;       /* default 1000 */
    char *default_lane;        /* required; must name a lane */
    int default_lane_index;
    int64_t server_idle_timeout_ms; /* default 600s */
    enum conf_log_level log_level;  /* default info */
    char **admin_users; int nadmin_users;
    char *metrics_listen;      /* "host:port" or NULL */
    struct conf_listen metrics;     /* metrics_listen parsed (host without brackets); host NULL if unset */
    int64_t log_slower_than_ms;     /* 0 = off */
    int64_t client_login_timeout_ms; /* default 60s */
    int max_prepared_statements;   /* default 200 */
    int stats_fingerprints;        /* default 1000: learned statistics kept (LRU) */
    int reserve_admin_connections; /* default 3: of max_client_conn, kept for admin_users */
    int max_prepared_statements_per_client; /* default 1000; 0 = no limit */
    int64_t pool_idle_timeout_ms;  /* default 300s: an empty, unused pool is freed after this; 0 = never */
    int max_pools;                 /* default 5000: (lane, database, user) pools at once */
    int max_db_connections;        /* default 0 (no cap): server connections per database, all lanes */
    int max_user_connections;      /* default 0 (no cap): server connections per user, all lanes */
    int64_t client_idle_timeout_ms;      /* default 0 = off: a client idle between transactions is closed */
    int64_t idle_transaction_timeout_ms; /* default 0 = off: a client idle inside a transaction is closed */
    int64_t server_check_delay_ms;       /* default 30s: a pooled connection idle longer is checked first */
    char *server_check_query;            /* NULL (default): an empty Query */
    int64_t server_login_retry_ms;       /* default 0 = off: after a failed login, no new one for this long */
    char *auth_user;               /* NULL = off: a user not in auth_file is looked up with auth_query as this user */
    char *auth_query;              /* takes the user name as $1; default CONF_DEFAULT_AUTH_QUERY */
    char *auth_dbname;             /* database the lookup runs in; NULL = the client's database */
    int64_t auth_cache_ttl_ms;     /* default 60s: how long a lookup's answer (found or not) is reused */
    int so_reuseport;              /* so_reuseport = yes: TCP listeners get SO_REUSEPORT (start only) */
    int tcp_keepalive;             /* default on: keepalive probes on client and server TCP sockets */
    int64_t tcp_keepidle_ms;       /* default 60s: idle time before the first probe; 0 = the kernel's */
    int64_t tcp_keepintvl_ms;      /* default 10s: between probes; 0 = the kernel's */
    int tcp_keepcnt;               /* default 6: unanswered probes that end the connection; 0 = the kernel's */
    int64_t tcp_user_timeout_ms;   /* default 0 = the kernel's: data unacknowledged this long ends the
                                    * connection (TCP_USER_TIMEOUT) */
    int workers;                   /* default 1: event-loop threads (proxy/workers.c; start only) */
    int peer_id;                   /* 0 (default) = no peering; 1..CONF_PEER_ID_MAX (start only) */
    struct conf_peer *peers; int npeers;  /* [peers], in file order */
    int64_t client_drain_timeout_ms;      /* default 0: a drain closes idle clients at once */
    int64_t health_check_interval_ms;     /* default 1s; 0 = off: servers' role, health and lag (proxy/health.c) */
    int health_check_failures;            /* default 3: failed checks in a row that make a server down */
    int allow_trust;           /* allow_trust = yes */
    enum conf_tls_mode tls_mode;   /* default disable */
    char *tls_cert_file, *tls_key_file, *tls_ca_file, *tls_protocols;
    unsigned tls_protocol_mask;    /* CONF_TLS_V1_2 | CONF_TLS_V1_3 from tls_protocols; default both */
    struct conf_server *servers; int nservers;
    struct conf_lane *lanes; int nlanes;
    struct conf_route *routes; int nroutes;  /* in file order */
};

#define CONF_DEFAULT_AUTH_QUERY "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"

/* Diagnostics: each is "file:line: message" (or "file: message" when no line applies). */
struct conf_diag {
    char **msgs;
    int n;
};
void conf_diag_free(struct conf_diag *d);

/*
 * Loads and validates path. Returns 0 and *out on success; -1 with every problem appended to diag
 * otherwise (*out NULL). Never exits, never prints.
 */
int conf_load(const char *path, struct conf **out, struct conf_diag *diag) CONF_MUSTCHECK;
/* Same, from a string; `name` is used as the file name in diagnostics and to resolve relative paths. */
int conf_load_string(const char *text, const char *name, struct conf **out,
                     struct conf_diag *diag) CONF_MUSTCHECK;
void conf_free(struct conf *c);
/* 1 if host is a loopback address (127.x, ::1, localhost). */
int conf_is_loopback(const char *host);

/*
 * Standalone copies of one lane or server entry, owning their strings (for a lane that outlives the
 * configuration it came from). Copy: 0, or -1 on out of memory with dst zeroed. Clear frees a copy.
 */
int conf_lane_copy(struct conf_lane *dst, const struct conf_lane *src) CONF_MUSTCHECK;
void conf_lane_clear(struct conf_lane *l);
int conf_server_copy(struct conf_server *dst, const struct conf_server *src) CONF_MUSTCHECK;
void conf_server_clear(struct conf_server *s);

int conf_lane_find(const struct conf *c, const char *name);  /* index or -1 */
int conf_server_find(const struct conf *c, const char *name);  /* index or -1 */

/* auth_file: lines of "user" "secret" (PgBouncer's userlist format); secret is plaintext,
 * "md5..." or "SCRAM-SHA-256$...". Blank lines and lines starting with ';' or '#' are ignored. */
struct conf_user {
    char *name;
    char *secret;
};
struct conf_userlist {
    struct conf_user *users;
    int n;
};
int conf_userlist_load(const char *path, struct conf_userlist *out, struct conf_diag *diag) CONF_MUSTCHECK;
int conf_userlist_parse(const char *text, const char *name, struct conf_userlist *out,
                        struct conf_diag *diag) CONF_MUSTCHECK;
const char *conf_userlist_find(const struct conf_userlist *u, const char *user); /* secret or NULL */
void conf_userlist_free(struct conf_userlist *u);

/* Parses "250ms", "2s", "10min", "1h", "1d", "0". Returns 0 or -1. */
int conf_parse_duration(const char *s, int64_t *ms) CONF_MUSTCHECK;

#endif
