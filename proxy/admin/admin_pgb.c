/*
 * PgBouncer-compatible admin console: SHOW POOLS, STATS, DATABASES, LISTS, VERSION and USERS with
 * PgBouncer's column names and types, so that tools written for PgBouncer's console (exporters,
 * dashboards) read pglane unchanged. PgBouncer's unit is a database; pglane's is a pool per (lane,
 * database, user). Each (database, lane) pair is shown as a PgBouncer database named
 * "database/lane"; SHOW POOLS has one row per pglane pool under that name.
 *
 * Also RECONNECT [lane] and WAIT_CLOSE [lane].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/admin/console.h"

static const char *pool_mode(const struct proxy *px)
{
    return px->conf->pool_mode == CONF_POOL_SESSION ? "session" : "transaction";
}

static int is_login_state(enum px_client_state s)
{
    return s == CL_STARTUP || s == CL_AUTH_PASSWORD || s == CL_AUTH_SASL_INIT || s == CL_AUTH_SASL_FINAL ||
           s == CL_LOGIN_WAIT;
}

struct pool_now {
    int cl_active, cl_waiting, sv_active, sv_idle, sv_login, sv_cancel, sv_tested;
    uint64_t maxwait_us;
};

static void pool_now(struct proxy *px, const struct px_pool *pool, struct pool_now *n)
{
    uint64_t now = px_now_ms(px);

    memset(n, 0, sizeof(*n));
    n->cl_waiting = pool->nwaiting;
    n->sv_idle = pool->nidle;
    for (const struct px_list *s = pool->busy.next; s != &pool->busy; s = s->next) {
        const struct px_server *sv = px_container_of(s, struct px_server, link);

        n->sv_active += sv->state == SV_ACTIVE || sv->state == SV_RESETTING;
        n->sv_login += sv->state == SV_CONNECTING || sv->state == SV_TLS || sv->state == SV_LOGIN;
        n->sv_cancel += sv->state == SV_CANCEL_WAIT;
        n->sv_tested += sv->state == SV_CHECKING;   /* server_check_query in flight */
    }
    /* PgBouncer's cl_active: clients of the pool that are not waiting (linked or idle). */
    for (const struct px_list *it = px->clients.next; it != &px->clients; it = it->next) {
        const struct px_client *c = px_container_of(it, struct px_client, link);

        if (c->pool == pool && (c->state == CL_IDLE || c->state == CL_ACTIVE))
            n->cl_active++;
    }
    if (!px_list_empty(&pool->waiting)) {
        const struct px_client *head = px_container_of(pool->waiting.next, struct px_client, wait_link);

        if (now > head->wait_start_ms)
            n->maxwait_us = (now - head->wait_start_ms) * 1000u;
    }
}

static void db_name(char *out, size_t cap, const struct px_pool *pool)
{
    snprintf(out, cap, "%s/%s", pool->database, pool->lane->conf->name);
}

/* The first pool with the same (lane, database) as pool: one PgBouncer database per such pair. */
static int first_of_db(struct proxy *px, const struct px_pool *pool)
{
    for (const struct px_list *it = px->pools.next; it != &pool->link; it = it->next) {
        const struct px_pool *p = px_container_of(it, struct px_pool, link);

        if (p->lane == pool->lane && strcmp(p->database, pool->database) == 0)
            return 0;
    }
    return 1;
}

const char *const px_pgb_pool_cols[] = {
    "database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
    "sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
    "maxwait", "maxwait_us", "pool_mode", NULL
};

void px_pgb_pool_rows(struct px_table *t, struct proxy *px)
{
    char name[256];

    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        const struct px_pool *pool = px_container_of(it, struct px_pool, link);
        struct pool_now n;

        pool_now(px, pool, &n);
        db_name(name, sizeof(name), pool);
        px_table_cell(t, "%s", name);
        px_table_cell(t, "%s", pool->user);
        px_table_cell(t, "%d", n.cl_active);
        px_table_cell(t, "%d", n.cl_waiting);
        px_table_cell(t, "%d", 0);
        px_table_cell(t, "%d", 0);
        px_table_cell(t, "%d", n.sv_active);
        px_table_cell(t, "%d", n.sv_cancel);
        px_table_cell(t, "%d", 0);
        px_table_cell(t, "%d", n.sv_idle);
        px_table_cell(t, "%d", 0);
        px_table_cell(t, "%d", n.sv_tested);
        px_table_cell(t, "%d", n.sv_login);
        px_table_cell(t, "%llu", (unsigned long long)(n.maxwait_us / 1000000u));
        px_table_cell(t, "%llu", (unsigned long long)(n.maxwait_us % 1000000u));
        px_table_cell(t, "%s", pool_mode(px));
    }
}

void px_pgb_show_pools(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_POOLS);
}

struct db_sums {
    uint64_t xacts, queries, xact_us, query_us, wait_us;
    int servers;
};

static void db_sums(struct proxy *px, const struct px_pool *first, struct db_sums *s)
{
    memset(s, 0, sizeof(*s));
    for (const struct px_list *it = &first->link; it != &px->pools; it = it->next) {
        const struct px_pool *p = px_container_of(it, struct px_pool, link);

        if (p->lane != first->lane || strcmp(p->database, first->database) != 0)
            continue;
        s->xacts += p->transactions;
        s->queries += p->queries;
        s->xact_us += p->xact_us;
        s->query_us += p->query_us;
        s->wait_us += p->wait_total_us;
        s->servers += p->nidle + p->nbusy;
    }
}

/* The first pool after `after` (NULL: from the start) that stands for its database, with that
 * database's sums and display name; NULL after the last. */
static const struct px_pool *next_db(struct proxy *px, const struct px_pool *after, struct db_sums *s,
                                     char *name, size_t cap)
{
    for (const struct px_list *it = after ? after->link.next : px->pools.next; it != &px->pools; it = it->next) {
        const struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (!first_of_db(px, pool))
            continue;
        db_sums(px, pool, s);
        db_name(name, cap, pool);
        return pool;
    }
    return NULL;
}

/* PgBouncer 1.8+ columns, then total_requests (PgBouncer before 1.8, still read by
 * prometheus-pgbouncer-exporter 1.7: the same count as total_query_count). */
const char *const px_pgb_stats_cols[] = {
    "database", "total_xact_count", "total_query_count", "total_received", "total_sent",
    "total_xact_time", "total_query_time", "total_wait_time", "avg_xact_count", "avg_query_count",
    "avg_recv", "avg_sent", "avg_xact_time", "avg_query_time", "avg_wait_time", "total_requests", NULL
};

void px_pgb_stats_rows(struct px_table *t, struct proxy *px)
{
    struct db_sums s;
    char name[256];

    for (const struct px_pool *pool = next_db(px, NULL, &s, name, sizeof(name)); pool;
         pool = next_db(px, pool, &s, name, sizeof(name))) {
        px_table_cell(t, "%s", name);
        px_table_cell(t, "%llu", (unsigned long long)s.xacts);
        px_table_cell(t, "%llu", (unsigned long long)s.queries);
        px_table_cell(t, "%d", 0);     /* bytes are not counted by pglane */
        px_table_cell(t, "%d", 0);
        px_table_cell(t, "%llu", (unsigned long long)s.xact_us);
        px_table_cell(t, "%llu", (unsigned long long)s.query_us);
        px_table_cell(t, "%llu", (unsigned long long)s.wait_us);
        /* Averages of PgBouncer's last stats period: pglane keeps no periods; averages over the
         * pool's lifetime per transaction / query instead of per second would mislead, so 0. */
        for (int i = 0; i < 4; i++)
            px_table_cell(t, "%d", 0);
        px_table_cell(t, "%llu", (unsigned long long)(s.xacts ? s.xact_us / s.xacts : 0));
        px_table_cell(t, "%llu", (unsigned long long)(s.queries ? s.query_us / s.queries : 0));
        px_table_cell(t, "%llu", (unsigned long long)(s.xacts ? s.wait_us / s.xacts : 0));
        px_table_cell(t, "%llu", (unsigned long long)s.queries);
    }
}

/* Several workers' rows summed: the average times again from the sums. */
void px_pgb_stats_fix(char **v)
{
    static const int avg[3][3] = { { 12, 5, 1 }, { 13, 6, 2 }, { 14, 7, 1 } };   /* avg, total, count */
    char buf[32];

    for (int i = 0; i < 3; i++) {
        unsigned long long n = v[avg[i][2]] ? strtoull(v[avg[i][2]], NULL, 10) : 0;
        unsigned long long us = v[avg[i][1]] ? strtoull(v[avg[i][1]], NULL, 10) : 0;

        snprintf(buf, sizeof(buf), "%llu", n ? us / n : 0);
        free(v[avg[i][0]]);
        v[avg[i][0]] = strdup(buf);
    }
}

void px_pgb_show_stats(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_PGB_STATS);
}

const char *const px_pgb_database_cols[] = {
    "name", "host", "port", "database", "force_user", "pool_size", "min_pool_size", "reserve_pool",
    "server_lifetime", "pool_mode", "max_connections", "current_connections", "paused", "disabled", NULL
};

void px_pgb_database_rows(struct px_table *t, struct proxy *px)
{
    struct db_sums s;
    char name[256];

    for (const struct px_pool *pool = next_db(px, NULL, &s, name, sizeof(name)); pool;
         pool = next_db(px, pool, &s, name, sizeof(name))) {
        const struct px_lane *l = pool->lane;

        px_table_cell(t, "%s", name);
        px_table_cell(t, "%s", l->server->host);
        px_table_cell(t, "%d", l->server->port);
        px_table_cell(t, "%s", pool->database);
        px_table_null(t);
        px_table_cell(t, "%d", l->size);
        px_table_cell(t, "%d", 0);
        px_table_cell(t, "%d", l->conf->reserve);
        px_table_cell(t, "%lld", (long long)(l->conf->server_lifetime_ms / 1000));
        px_table_cell(t, "%s", pool_mode(px));
        px_table_cell(t, "%d", px->conf->max_db_connections);   /* 0 = unlimited, as in PgBouncer */
        px_table_cell(t, "%d", s.servers);
        px_table_cell(t, "%d", l->paused);
        px_table_cell(t, "%d", l->retired);
    }
}

void px_pgb_show_databases(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_PGB_DATABASES);
}

static void list_row(struct px_table *t, const char *name, long n)
{
    px_table_cell(t, "%s", name);
    px_table_cell(t, "%ld", n);
}

/*
 * SHOW LISTS: each worker's pools as NUL-terminated fields, "P", database (db/lane), user, server
 * connections, then "C", clients, clients logging in. Databases, users and pools are counted once
 * however many workers have them.
 */
void px_pgb_list_recs(struct proxy *px, struct proto_buf *out)
{
    char name[256], num[32];
    long clients = 0, login = 0;

    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        const struct px_pool *pool = px_container_of(it, struct px_pool, link);

        db_name(name, sizeof(name), pool);
        snprintf(num, sizeof(num), "%d", pool->nidle + pool->nbusy);
        proto_put_cstr(out, "P");
        proto_put_cstr(out, name);
        proto_put_cstr(out, pool->user);
        proto_put_cstr(out, num);
    }
    for (struct px_list *it = px->clients.next; it != &px->clients; it = it->next) {
        clients++;
        login += is_login_state(px_container_of(it, struct px_client, link)->state);
    }
    proto_put_cstr(out, "C");
    snprintf(num, sizeof(num), "%ld", clients);
    proto_put_cstr(out, num);
    snprintf(num, sizeof(num), "%ld", login);
    proto_put_cstr(out, num);
}

struct list_pool {
    const char *db, *user;
};

/* Whether an earlier pool than pools[k] has its database (and its user, if both). */
static int seen_before(const struct list_pool *pools, int k, int db, int user)
{
    for (int i = 0; i < k; i++)
        if ((!db || strcmp(pools[i].db, pools[k].db) == 0) && (!user || strcmp(pools[i].user, pools[k].user) == 0))
            return 1;
    return 0;
}

void px_pgb_list_send(struct px_client *cl, const uint8_t *recs, size_t len)
{
    static const char *const cols[] = { "list", "items", NULL };
    const char *p = (const char *)recs, *end = p + (len > 0 && recs[len - 1] == 0 ? len : 0);
    long dbs = 0, pools = 0, clients = 0, login = 0, servers = 0, users = 0;
    struct list_pool *pl = malloc(sizeof(*pl) * (len / 8 + 1));   /* a pool record takes at least 8 bytes */
    int n = 0;
    struct px_table t;

    while (pl && p < end) {
        const char *f[4];
        int nf = strcmp(p, "P") == 0 ? 4 : 3, i;

        for (i = 0; i < nf && p < end; i++, p += strlen(p) + 1)
            f[i] = p;
        if (i < nf)
            break;
        if (nf == 4) {
            pl[n].db = f[1];
            pl[n].user = f[2];
            servers += strtol(f[3], NULL, 10);
            n++;
        } else {
            clients += strtol(f[1], NULL, 10);
            login += strtol(f[2], NULL, 10);
        }
    }
    for (int k = 0; k < n; k++) {
        dbs += !seen_before(pl, k, 1, 0);
        users += !seen_before(pl, k, 0, 1);
        pools += !seen_before(pl, k, 1, 1);
    }
    free(pl);
    px_table_begin_typed(&t, cols, "si");
    list_row(&t, "databases", dbs);
    list_row(&t, "users", users);
    list_row(&t, "peers", 0);
    list_row(&t, "pools", pools);
    list_row(&t, "peer_pools", 0);
    list_row(&t, "free_clients", 0);
    list_row(&t, "used_clients", clients - login);
    list_row(&t, "login_clients", login);
    list_row(&t, "free_servers", 0);
    list_row(&t, "used_servers", servers);
    list_row(&t, "dns_names", 0);
    list_row(&t, "dns_zones", 0);
    list_row(&t, "dns_queries", 0);
    list_row(&t, "dns_pending", 0);
    px_table_send(&t, cl, "SHOW");
}

void px_pgb_show_lists(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_LISTS);
}

void px_pgb_show_version(struct px_client *cl, const char *arg)
{
    static const char *const cols[] = { "version", NULL };
    struct px_table t;

    (void)arg;
    px_table_begin(&t, cols);
    px_table_cell(&t, "pglane %s (PgBouncer-compatible console)", PGLANE_VERSION);
    px_table_send(&t, cl, "SHOW");
}

const char *const px_pgb_user_cols[] = {
    "name", "pool_size", "reserve_pool", "pool_mode", "max_user_connections", "current_connections",
    "max_user_client_connections", "current_client_connections", NULL
};

void px_pgb_user_rows(struct px_table *t, struct proxy *px)
{
    const struct conf_userlist *u = &px->users;

    for (int i = 0; i < u->n; i++) {
        const char *user = u->users[i].name;
        int servers = 0, clients = 0;

        for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
            const struct px_pool *pool = px_container_of(it, struct px_pool, link);

            if (strcmp(pool->user, user) == 0)
                servers += pool->nidle + pool->nbusy;
        }
        for (struct px_list *it = px->clients.next; it != &px->clients; it = it->next) {
            const struct px_client *c = px_container_of(it, struct px_client, link);

            clients += c->user && strcmp(c->user, user) == 0;
        }
        px_table_cell(t, "%s", user);
        px_table_null(t);               /* no per-user pool size: the lane's applies */
        px_table_null(t);
        px_table_cell(t, "%s", pool_mode(px));
        px_table_cell(t, "%d", px->conf->max_user_connections);
        px_table_cell(t, "%d", servers);
        px_table_cell(t, "%d", 0);
        px_table_cell(t, "%d", clients);
    }
}

void px_pgb_show_users(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_USERS);
}

/* ---- RECONNECT, WAIT_CLOSE, KILL by name ---- */

/*
 * Whether pool is named by arg: "" names every pool, "lane" the pools of that lane, "database/lane"
 * (a PgBouncer database name as SHOW DATABASES prints it) one (lane, database) pair.
 */
static int pool_named(const struct px_pool *pool, const char *arg)
{
    const char *slash = strrchr(arg, '/');

    if (!*arg)
        return 1;
    if (!slash)
        return strcasecmp(pool->lane->conf->name, arg) == 0;
    return strcasecmp(pool->lane->conf->name, slash + 1) == 0 && strlen(pool->database) == (size_t)(slash - arg) &&
           strncmp(pool->database, arg, (size_t)(slash - arg)) == 0;
}

/* 0 if arg is "", a lane, or "database/lane" with a lane that exists; else -1 after an error reply. */
static int check_name(struct px_client *cl, const char *arg)
{
    struct proxy *px = cl->conn.px;
    const char *slash = strrchr(arg, '/'), *lane = slash ? slash + 1 : arg;
    char msg[200];

    if (!*arg)
        return 0;
    if (!strchr(arg, ' ') && *lane && (!slash || slash > arg))
        for (int i = 0; i < px->nlanes; i++)
            if (strcasecmp(px->lanes[i]->conf->name, lane) == 0)
                return 0;
    snprintf(msg, sizeof(msg), "pglane: no lane or database/lane \"%.64s\"", arg);
    px_admin_error(cl, "42704", msg, "SHOW LANES lists the lanes, SHOW DATABASES the database/lane names.");
    return -1;
}

/* RECONNECT on this worker's pools named by arg: idle connections closed, busy ones marked. */
static void reconnect_here(struct proxy *px, const char *arg, long *closed, long *marked)
{
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (!pool_named(pool, arg))
            continue;
        while (!px_list_empty(&pool->idle)) {
            px_server_close(px_container_of(pool->idle.next, struct px_server, link), "RECONNECT by the admin console");
            (*closed)++;
        }
        for (struct px_list *s = pool->busy.next; s != &pool->busy; s = s->next) {
            px_container_of(s, struct px_server, link)->reconnect = 1;
            (*marked)++;
        }
    }
}

static void reconnect_done(struct px_client *cl, const char *arg, long closed, long marked)
{
    char note[160];

    px_info("C-%llu admin RECONNECT %s: %ld idle server connection(s) closed, %ld to close when released",
            (unsigned long long)cl->conn.id, *arg ? arg : "(all)", closed, marked);
    snprintf(note, sizeof(note), "%ld idle server connection(s) closed, %ld in use will close when released", closed,
             marked);
    px_admin_done(cl, "RECONNECT", note);
}

struct px_client *px_admin_act_sums(struct proxy *px, uint64_t console, struct proto_buf *parts, int n, long *a,
                                  long *b)
{
    struct px_client *cl = px_admin_client_by_id(px, console);

    *a = *b = 0;
    for (int i = 0; i < n; i++) {
        char text[64];
        long x = 0, y = 0;

        snprintf(text, sizeof(text), "%.*s", (int)(parts[i].len < 63 ? parts[i].len : 63), (const char *)parts[i].data);
        if (parts[i].len > 0 && sscanf(text, "%ld %ld", &x, &y) >= 1) {
            *a += x;
            *b += y;
        }
    }
    if (!cl || cl->state != CL_ADMIN)
        return NULL;
    px_conn_read_start(&cl->conn);   /* the console's next command */
    return cl;
}

static void act(struct px_client *cl, int which, const char *arg);

void px_pgb_reconnect(struct px_client *cl, const char *arg)
{
    if (check_name(cl, arg) < 0)
        return;
    act(cl, PX_GATHER_ACT_RECONNECT, arg);
}

/* Server connections named by arg that RECONNECT marked and that are still open. */
static int still_marked(struct proxy *px, const char *arg)
{
    int n = 0;

    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        const struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (!pool_named(pool, arg))
            continue;
        for (const struct px_list *s = pool->busy.next; s != &pool->busy; s = s->next)
            n += px_container_of(s, struct px_server, link)->reconnect;
    }
    return n;
}

/* WAIT_CLOSE answers once the marked connections have closed; checked each maintenance tick (1 s),
 * on every worker when there are several. Waiting consoles are kept by id, so that one that
 * disconnects meanwhile is simply dropped. */
#define MAX_WAITS 32
static _Thread_local struct {   /* per worker, like the consoles they name */
    uint64_t client_id;
    int asking;                 /* the other workers' counts are being gathered */
    char arg[128];
} waits[MAX_WAITS];
static _Thread_local int nwaits;

static void wait_add(struct px_client *cl, const char *arg)
{
    if (nwaits == MAX_WAITS) {
        px_admin_error(cl, "53000", "pglane: too many WAIT_CLOSE commands waiting", NULL);
        return;
    }
    waits[nwaits].client_id = cl->conn.id;
    waits[nwaits].asking = 0;
    snprintf(waits[nwaits].arg, sizeof(waits[0].arg), "%s", arg);
    nwaits++;
    px_conn_read_stop(&cl->conn);      /* the console waits, like PgBouncer's */
}

/* Every worker's count of marked connections for a WAIT_CLOSE just asked. */
static void on_marked(struct proxy *px, uint64_t console, int which, const char *arg, struct proto_buf *parts, int n)
{
    long marked, unused;
    struct px_client *cl = px_admin_act_sums(px, console, parts, n, &marked, &unused);

    (void)which;
    if (!cl)
        return;
    if (marked == 0)
        px_admin_done(cl, "WAIT_CLOSE", NULL);
    else
        wait_add(cl, arg);
}

void px_pgb_wait_close(struct px_client *cl, const char *arg)
{
    if (check_name(cl, arg) < 0)
        return;
    if (strlen(arg) >= sizeof(waits[0].arg)) {
        px_admin_error(cl, "42601", "pglane: WAIT_CLOSE: name too long", NULL);
        return;
    }
    if (px_workers_console_act(cl, PX_GATHER_ACT_MARKED, arg, on_marked))
        return;
    if (!still_marked(cl->conn.px, arg))
        px_admin_done(cl, "WAIT_CLOSE", NULL);
    else
        wait_add(cl, arg);
}

static void wait_end(int i)
{
    waits[i] = waits[--nwaits];
}

/* A tick's count from every worker for the WAIT_CLOSE of console. */
static void on_marked_tick(struct proxy *px, uint64_t console, int which, const char *arg, struct proto_buf *parts,
                           int n)
{
    long marked, unused;
    struct px_client *c;
    int i;

    (void)which;
    (void)arg;
    for (i = 0; i < nwaits && waits[i].client_id != console; i++)
        ;
    if (i == nwaits)
        return;
    waits[i].asking = 0;
    c = px_admin_act_sums(px, console, parts, n, &marked, &unused);   /* restarts the console's reads */
    if (c && marked > 0) {
        px_conn_read_stop(&c->conn);
        return;
    }
    if (c)
        px_admin_done(c, "WAIT_CLOSE", NULL);
    wait_end(i);
}

void px_pgb_tick(struct proxy *px)
{
    for (int i = 0; i < nwaits;) {
        struct px_client *c = px_admin_client_by_id(px, waits[i].client_id);

        if (c && px->workers) {
            if (!waits[i].asking) {
                waits[i].asking = 1;   /* before: the answer may come at once */
                if (!px_workers_gather_arg(px, PX_GATHER_ACT_MARKED, waits[i].arg, waits[i].client_id,
                                           on_marked_tick))
                    waits[i].asking = 0;
            }
            i++;
            continue;
        }
        if (c && still_marked(px, waits[i].arg)) {
            i++;
            continue;
        }
        if (c) {
            px_conn_read_start(&c->conn);
            px_admin_done(c, "WAIT_CLOSE", NULL);
        }
        wait_end(i);
    }
}

/* KILL on this worker's clients and server connections of the pools named by arg (consoles, which
 * have no pool, are never killed). */
static void kill_here(struct proxy *px, const char *arg, long *clients, long *servers)
{
    for (struct px_list *it = px->clients.next, *next; it != &px->clients; it = next) {
        struct px_client *c = px_container_of(it, struct px_client, link);

        next = it->next;
        if (c->pool && !c->admin && pool_named(c->pool, arg) && c->state != CL_CLOSED) {
            px_client_fail(c, "57P01", "terminated by pglane admin (KILL)");
            (*clients)++;
        }
    }
    for (struct px_list *it = px->pools.next; it != &px->pools; it = it->next) {
        struct px_pool *pool = px_container_of(it, struct px_pool, link);

        if (!pool_named(pool, arg))
            continue;
        while (!px_list_empty(&pool->idle)) {
            px_server_close(px_container_of(pool->idle.next, struct px_server, link), "KILL by the admin console");
            (*servers)++;
        }
        for (struct px_list *s = pool->busy.next, *next; s != &pool->busy; s = next) {
            struct px_server *sv = px_container_of(s, struct px_server, link);

            next = s->next;
            if (!sv->client) {
                px_server_close(sv, "KILL by the admin console");
                (*servers)++;
            }
        }
    }
}

static void kill_done(struct px_client *cl, const char *arg, long clients, long servers)
{
    char note[160];

    px_info("C-%llu admin KILL %s: %ld client(s), %ld server connection(s) closed", (unsigned long long)cl->conn.id,
            arg, clients, servers);
    snprintf(note, sizeof(note), "%ld client(s) and %ld idle server connection(s) closed", clients, servers);
    px_admin_done(cl, "KILL", note);
}

void px_pgb_kill(struct px_client *cl, const char *arg)
{
    if (!*arg) {
        px_admin_error(cl, "42601", "pglane: KILL needs a client id, a lane or a database/lane", NULL);
        return;
    }
    if (check_name(cl, arg) < 0)
        return;
    act(cl, PX_GATHER_ACT_KILL, arg);
}

/* KILL lane, RECONNECT or WAIT_CLOSE's check on this worker: its counts (clients and servers closed,
 * connections closed and marked, or marked connections still open) into *a and *b. */
static void act_here(struct proxy *px, int which, const char *arg, long *a, long *b)
{
    if (which == PX_GATHER_ACT_KILL)
        kill_here(px, arg, a, b);
    else if (which == PX_GATHER_ACT_MARKED)
        *a = still_marked(px, arg);
    else
        reconnect_here(px, arg, a, b);
}

static void act_done(struct px_client *cl, int which, const char *arg, long a, long b)
{
    if (which == PX_GATHER_ACT_KILL)
        kill_done(cl, arg, a, b);
    else
        reconnect_done(cl, arg, a, b);
}

static void on_acted(struct proxy *px, uint64_t console, int which, const char *arg, struct proto_buf *parts, int n)
{
    long a, b;
    struct px_client *cl = px_admin_act_sums(px, console, parts, n, &a, &b);

    if (cl)
        act_done(cl, which, arg, a, b);
}

/* KILL lane or RECONNECT: on every worker (answered once all did), or on this one alone. */
static void act(struct px_client *cl, int which, const char *arg)
{
    long a = 0, b = 0;

    if (px_workers_console_act(cl, which, arg, on_acted))
        return;
    act_here(cl->conn.px, which, arg, &a, &b);
    act_done(cl, which, arg, a, b);
}

void px_pgb_act(struct proxy *px, int which, const char *arg, struct proto_buf *out)
{
    long a = 0, b = 0;
    char text[64];

    act_here(px, which, arg, &a, &b);
    snprintf(text, sizeof(text), "%ld %ld", a, b);
    proto_put_bytes(out, text, strlen(text));
}
