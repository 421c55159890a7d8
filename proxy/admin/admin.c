/*
 * The admin console: commands sent as simple queries to the virtual database "pglane". This file
 * parses a command and runs the control commands; the SHOW commands are in admin_show*.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/admin/console.h"
#include "proxy/admin/stages.h"

#define CMD_MAX 256
#define COMMANDS "SHOW LANES | LANE SERVERS | CLIENTS | SERVERS | STATS | ROUTES | QUERIES | BLOCKING | GUARD | QUARANTINE | CONFIG | PREPARED | TENANTS | HEALTH | STAGES, " \
                 "SHOW POOLS | DATABASES | LISTS | VERSION | USERS (PgBouncer's columns), " \
                 "RELOAD, PAUSE [lane], RESUME [lane], KILL client_id | lane | db/lane, RECONNECT [lane | db/lane], " \
                 "WAIT_CLOSE [lane | db/lane], RELEASE fingerprint | ALL, SCHEMA CHANGED, SHUTDOWN"

typedef void (*cmd_fn)(struct px_client *cl, const char *arg);

static void cmd_reload(struct px_client *cl, const char *arg);
static void cmd_pause(struct px_client *cl, const char *arg);
static void cmd_resume(struct px_client *cl, const char *arg);
static void cmd_kill(struct px_client *cl, const char *arg);
static void cmd_shutdown(struct px_client *cl, const char *arg);
static void cmd_schema_changed(struct px_client *cl, const char *arg);

static const struct {
    const char *name;
    cmd_fn fn;
} commands[] = {
    { "SHOW LANES", px_show_lanes }, { "SHOW LANE SERVERS", px_show_lane_servers }, { "SHOW CLIENTS", px_show_clients }, { "SHOW SERVERS", px_show_servers },
    { "SHOW STATS", px_show_stats }, { "SHOW ROUTES", px_show_routes }, { "SHOW QUERIES", px_show_queries },
    { "SHOW BLOCKING", px_show_blocking }, { "SHOW GUARD", px_show_guard }, { "SHOW CONFIG", px_show_config },
    { "SHOW PREPARED", px_show_prepared }, { "SHOW QUARANTINE", px_show_quarantine },
    { "SHOW TENANTS", px_show_tenants }, { "SHOW STAGES", px_show_stages }, { "RELEASE", px_release },
    { "SHOW HEALTH", px_show_health }, { "SHOW WORKERS", px_show_workers },
    { "RELOAD", cmd_reload }, { "PAUSE", cmd_pause }, { "RESUME", cmd_resume }, { "KILL", cmd_kill },
    { "SHUTDOWN", cmd_shutdown }, { "SCHEMA CHANGED", cmd_schema_changed },
    /* PgBouncer's commands that pglane has no table of its own for (admin_pgb.c) */
    { "SHOW POOLS", px_pgb_show_pools }, { "SHOW DATABASES", px_pgb_show_databases },
    { "SHOW LISTS", px_pgb_show_lists }, { "SHOW VERSION", px_pgb_show_version },
    { "SHOW USERS", px_pgb_show_users }, { "RECONNECT", px_pgb_reconnect }, { "WAIT_CLOSE", px_pgb_wait_close },
};

/* Connected to the database "pgbouncer": PgBouncer's tables win where both have a name. */
static const struct {
    const char *name;
    cmd_fn fn;
} pgb_commands[] = {
    { "SHOW STATS", px_pgb_show_stats },
};

/* Copies the command with runs of blanks made one space, without surrounding blanks and ';'. */
static int normalize(const char *sql, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    int blank = 0;

    while (len > 0 && (isspace((unsigned char)sql[len - 1]) || sql[len - 1] == ';' || sql[len - 1] == 0))
        len--;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)sql[i];

        if (isspace(c)) {
            blank = n > 0;
            continue;
        }
        if (n + 2 >= cap)
            return -1;
        if (blank)
            out[n++] = ' ';
        blank = 0;
        out[n++] = (char)c;
    }
    out[n] = 0;
    return 0;
}

/* The command whose words start cmd (case-insensitive); *arg is what follows it. */
static cmd_fn lookup(const char *cmd, const char **arg, int pgbouncer)
{
    for (size_t i = 0; pgbouncer && i < sizeof(pgb_commands) / sizeof(pgb_commands[0]); i++) {
        size_t n = strlen(pgb_commands[i].name);

        if (strncasecmp(cmd, pgb_commands[i].name, n) == 0 && (cmd[n] == 0 || cmd[n] == ' ')) {
            *arg = cmd[n] ? cmd + n + 1 : cmd + n;
            return pgb_commands[i].fn;
        }
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        size_t n = strlen(commands[i].name);

        if (strncasecmp(cmd, commands[i].name, n) == 0 && (cmd[n] == 0 || cmd[n] == ' ')) {
            *arg = cmd[n] ? cmd + n + 1 : cmd + n;
            return commands[i].fn;
        }
    }
    return NULL;
}

void px_admin_query(struct px_client *cl, const char *sql, size_t len)
{
    char cmd[CMD_MAX], msg[CMD_MAX + 64];
    const char *arg = "";
    cmd_fn fn;

    if (normalize(sql, len, cmd, sizeof(cmd)) < 0) {
        px_admin_error(cl, "42601", "pglane: admin command too long", "Commands: " COMMANDS ".");
        return;
    }
    if (!cmd[0]) {
        px_admin_done(cl, "EMPTY", NULL);
        return;
    }
    fn = lookup(cmd, &arg, cl->admin == PX_ADMIN_PGBOUNCER);
    if (!fn) {
        snprintf(msg, sizeof(msg), "pglane: unknown admin command \"%s\"", cmd);
        px_admin_error(cl, "42601", msg, "Commands: " COMMANDS ".");
        return;
    }
    px_info("C-%llu admin " PX_LOG_NAME ": %.300s", (unsigned long long)cl->conn.id, cl->user, cmd);
    fn(cl, arg);
}

/* DDL pglane did not see (a migration on a direct connection): Parses from now on get statements
 * prepared afresh, as after DDL seen through pglane (proxy/prepared_registry.c). */
static void cmd_schema_changed(struct px_client *cl, const char *arg)
{
    if (*arg) {
        px_admin_error(cl, "42601", "pglane: SCHEMA CHANGED takes no argument", NULL);
        return;
    }
    px_prep_ddl_seen();
    px_admin_done(cl, "SCHEMA CHANGED", NULL);
}

static void cmd_reload(struct px_client *cl, const char *arg)
{
    if (*arg) {
        px_admin_error(cl, "42601", "pglane: RELOAD takes no argument", NULL);
        return;
    }
    if (px_reload(cl->conn.px) < 0) {
        px_admin_error(cl, "F0000", "pglane: reload failed; the previous configuration stays in force",
                       "See pglane's log for the file:line of each problem.");
        return;
    }
    px_workers_ask(cl->conn.px, PX_WORKERS_RELOAD, NULL);
    px_admin_done(cl, "RELOAD", NULL);
}

int px_admin_set_paused(struct proxy *px, const char *name, int paused)
{
    int found = 0;

    for (int i = 0; i < px->nlanes; i++) {
        struct px_lane *l = px->lanes[i];

        if (*name && strcasecmp(l->conf->name, name) != 0)
            continue;
        found = 1;
        if (l->paused == paused)
            continue;
        l->paused = paused;
        px_info("lane %s %s by the admin console", l->conf->name, paused ? "paused" : "resumed");
        if (paused)
            continue;
        for (struct px_list *it = px->pools.next, *next; it != &px->pools; it = next) {
            struct px_pool *pool = px_container_of(it, struct px_pool, link);

            next = it->next;
            if (pool->lane == l)
                px_pool_resume(pool);
        }
    }
    return found ? 0 : -1;
}

static void pause_resume(struct px_client *cl, const char *arg, int paused)
{
    char msg[160];

    if (strchr(arg, ' ') || px_admin_set_paused(cl->conn.px, arg, paused) < 0) {
        snprintf(msg, sizeof(msg), "pglane: no lane \"%.64s\"", arg);
        px_admin_error(cl, "42704", msg, "SHOW LANES lists the lanes.");
        return;
    }
    px_workers_ask(cl->conn.px, paused ? PX_WORKERS_PAUSE : PX_WORKERS_RESUME, arg);
    px_admin_done(cl, paused ? "PAUSE" : "RESUME", NULL);
}

static void cmd_pause(struct px_client *cl, const char *arg)
{
    pause_resume(cl, arg, 1);
}

static void cmd_resume(struct px_client *cl, const char *arg)
{
    pause_resume(cl, arg, 0);
}

struct px_client *px_admin_client_by_id(struct proxy *px, uint64_t id)
{
    for (struct px_list *it = px->clients.next; it != &px->clients; it = it->next) {
        struct px_client *c = px_container_of(it, struct px_client, link);

        if (c->conn.id == id)
            return c;
    }
    return NULL;
}

/* KILL client_id on this worker: 1 if that client was here (and is closing). */
static int kill_client(struct proxy *px, uint64_t id, uint64_t by)
{
    struct px_client *victim = px_admin_client_by_id(px, id);

    if (!victim)
        return 0;
    px_info("C-%llu killed by admin C-%llu", (unsigned long long)id, (unsigned long long)by);
    px_client_fail(victim, "57P01", "terminated by pglane admin");
    return 1;
}

static void on_kill_id(struct proxy *px, uint64_t console, int which, const char *arg, struct proto_buf *parts,
                       int n)
{
    long found, unused;
    struct px_client *cl = px_admin_act_sums(px, console, parts, n, &found, &unused);

    (void)which;
    (void)arg;
    if (!cl)
        return;
    if (found)
        px_admin_done(cl, "KILL", NULL);
    else
        px_admin_error(cl, "42704", "pglane: no such client", "SHOW CLIENTS lists the ids.");
}

void px_admin_act(struct proxy *px, int which, const char *arg, struct proto_buf *out)
{
    if (which == PX_GATHER_ACT_KILL_ID) {
        char text[8];

        snprintf(text, sizeof(text), "%d 0", kill_client(px, strtoull(arg, NULL, 10), 0));
        proto_put_bytes(out, text, strlen(text));
    } else {
        px_pgb_act(px, which, arg, out);
    }
}

static void cmd_kill(struct px_client *cl, const char *arg)
{
    char *end;
    unsigned long long id = strtoull(arg, &end, 10);

    if (*arg && (*arg < '0' || *arg > '9')) {
        px_pgb_kill(cl, arg);          /* KILL lane or KILL database/lane, as PgBouncer's KILL db */
        return;
    }
    if (!*arg || *end) {
        px_admin_error(cl, "42601", "pglane: KILL needs a client id", "SHOW CLIENTS lists the ids.");
        return;
    }
    if (id == cl->conn.id) {
        px_admin_error(cl, "42704", "pglane: KILL of your own console session", "SHOW CLIENTS lists the ids.");
        return;
    }
    if (kill_client(cl->conn.px, id, cl->conn.id)) {
        px_admin_done(cl, "KILL", NULL);
        return;
    }
    /* Several workers: the client may be another worker's. */
    if (px_workers_console_act(cl, PX_GATHER_ACT_KILL_ID, arg, on_kill_id))
        return;
    px_admin_error(cl, "42704", "pglane: no such client", "SHOW CLIENTS lists the ids.");
}

static void cmd_shutdown(struct px_client *cl, const char *arg)
{
    struct proxy *px = cl->conn.px;

    if (*arg) {
        px_admin_error(cl, "42601", "pglane: SHUTDOWN takes no argument", NULL);
        return;
    }
    px_info("C-%llu admin SHUTDOWN: draining", (unsigned long long)cl->conn.id);
    px_admin_done(cl, "SHUTDOWN", "pglane is draining: open transactions finish, then it exits");
    px_workers_ask(px, PX_WORKERS_DRAIN, NULL);
    px_drain(px);
}
