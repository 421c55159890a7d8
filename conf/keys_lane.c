/*
 * The schema of [lane.NAME]. Session settings (the timeouts, work_mem, set.<guc>) are collected in
 * file order into lane->settings, each GUC at most once.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/internal.h"

static int add_setting(struct conf_loader *ld, struct conf_sect *s, struct conf_lane *lane,
                       const char *name, const char *value)
{
    struct conf_setting *v;

    for (int i = 0; i < lane->nsettings; i++) {
        if (strcasecmp(lane->settings[i].name, name) == 0) {
            conf_errf(ld, ld->lineno, "setting '%s' is given twice in [%s] (first at line %d)", name,
                      s->header, lane->settings[i].line);
            return -2;
        }
    }
    v = realloc(lane->settings, (size_t)(lane->nsettings + 1) * sizeof *v);
    if (v == NULL) {
        ld->oom = 1;
        return -2;
    }
    lane->settings = v;
    v[lane->nsettings++] = (struct conf_setting){.name = conf_dup(ld, name),
                                                 .value = conf_dup(ld, value), .line = ld->lineno};
    return 0;
}

/* statement_timeout = 2s is sent as statement_timeout=2000 (PostgreSQL's unit is ms). */
static int set_timeout_setting(SETTER_ARGS)
{
    int64_t ms;
    char buf[32];

    if (conf_parse_duration(value, &ms) < 0)
        return -1;
    snprintf(buf, sizeof buf, "%" PRId64, ms);
    return add_setting(ld, s, obj, kd->name, buf);
}

static int set_memory_setting(SETTER_ARGS)
{
    if (conf_parse_memory(value) < 0)
        return -1;
    return add_setting(ld, s, obj, kd->name, value);
}

/* backend_nice = 0..19 | idle */
static int set_backend_nice(SETTER_ARGS)
{
    long long v;

    (void)ld, (void)s;
    if (strcmp(value, "idle") == 0)
        v = CONF_NICE_IDLE;
    else if (conf_parse_int(value, 0, 19, &v) < 0)
        return -1;
    *CONF_FIELD(obj, kd, int) = (int)v;
    return 0;
}

/* Startup parameters the proxy itself sends; a lane must not override them. */
static int reserved_guc(const char *name)
{
    static const char *const names[] = {"user", "database", "replication", "options"};

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i]) == 0)
            return 1;
    return 0;
}

int conf_lane_set_guc(struct conf_loader *ld, struct conf_sect *s, struct conf_lane *lane,
                      const char *key, const char *value)
{
    const char *guc = key + 4;

    if (!conf_valid_guc_name(guc))
        conf_errf(ld, ld->lineno, "%s: a setting name must match [A-Za-z_][A-Za-z0-9_.]*", key);
    else if (reserved_guc(guc))
        conf_errf(ld, ld->lineno, "%s: '%s' is a connection parameter, not a setting", key, guc);
    else if (*value == '\0')
        conf_errf(ld, ld->lineno, "%s: expected a value, got ''", key);
    else
        return add_setting(ld, s, lane, guc, value);
    return -2;
}

/* tenant_weight.ID = N: ID as a hint or application_name would give it (at most 63 bytes). */
int conf_lane_set_tenant_weight(struct conf_loader *ld, struct conf_sect *s, struct conf_lane *lane,
                                const char *key, const char *value)
{
    const char *id = key + strlen("tenant_weight.");
    struct conf_tenant_weight *w;
    char *end;
    long n;

    if (*id == '\0' || strlen(id) > 63) {
        conf_errf(ld, ld->lineno, "%s: expected tenant_weight.ID with an ID of 1 to 63 characters", key);
        return -2;
    }
    n = strtol(value, &end, 10);
    if (*value == '\0' || *end != '\0' || n < 1 || n > 1000) {
        conf_errf(ld, ld->lineno, "%s: expected an integer between 1 and 1000, got '%s'", key, value);
        return -2;
    }
    (void)s;                       /* a repeated key is the loader's "duplicate key" */
    w = realloc(lane->tenant_weights, (size_t)(lane->ntenant_weights + 1) * sizeof *w);
    if (w == NULL) {
        ld->oom = 1;
        return -2;
    }
    lane->tenant_weights = w;
    w[lane->ntenant_weights++] = (struct conf_tenant_weight){.id = conf_dup(ld, id), .weight = (int)n,
                                                             .line = ld->lineno};
    return 0;
}

/* max_replica_lag_bytes = 16MB: a byte count, with an optional unit (B, kB, MB, GB, TB; 1024-based). */
static int set_lag_bytes(SETTER_ARGS)
{
    static const struct { const char *unit; int64_t mul; } units[] = {
        {"", 1}, {"B", 1}, {"kB", 1024}, {"MB", 1024 * 1024}, {"GB", 1024LL * 1024 * 1024},
        {"TB", 1024LL * 1024 * 1024 * 1024},
    };
    char *end;
    long long n;

    (void)ld, (void)s;
    if (*value < '0' || *value > '9')
        return -1;
    n = strtoll(value, &end, 10);
    if (n < 0 || n > (1LL << 40))
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) == 0) {
            *CONF_FIELD(obj, kd, int64_t) = (int64_t)n * units[i].mul;
            return 0;
        }
    }
    return -1;
}

static const char *const balance_names[] = {"least-busy", "round-robin", NULL};
static const char *const fallback_names[] = {"primary", "queue", "error", NULL};
static const char *const guard_names[] = {"off", "log", "cancel", NULL};
static const char *const tenant_key_names[] = {"none", "user", "database", "application_name", "hint", NULL};
static const char *const pin_names[] = {"allow", "refuse", NULL};

#define MEMORY_WHAT "a memory size such as 64MB (a number with kB, MB, GB or TB)"

const struct conf_keydef conf_lane_keys[] = {
    KW("server", conf_set_ref, struct conf_lane, server, "a server name or a comma-separated list of them"),
    KENUM("balance", struct conf_lane, balance, balance_names),
    KDUR("max_replica_lag", struct conf_lane, max_replica_lag_ms),
    KW("max_replica_lag_bytes", set_lag_bytes, struct conf_lane, max_replica_lag_bytes,
       "a byte count such as 16MB (a number with B, kB, MB, GB or TB, or none)"),
    KENUM("replica_fallback", struct conf_lane, replica_fallback, fallback_names),
    KBOOL("read_your_writes", struct conf_lane, read_your_writes),
    KINT("size", struct conf_lane, size, 1, 10000),
    KINT("reserve", struct conf_lane, reserve, 0, 10000),
    KDUR("reserve_timeout", struct conf_lane, reserve_timeout_ms),
    KDUR("queue_timeout", struct conf_lane, queue_timeout_ms),
    KDUR("server_connect_timeout", struct conf_lane, server_connect_timeout_ms),
    KDUR("server_lifetime", struct conf_lane, server_lifetime_ms),
    KDUR("idle_transaction_timeout", struct conf_lane, idle_transaction_timeout_ms),
    KINT("server_retry", struct conf_lane, server_retry, 0, 10),
    KW("statement_timeout", set_timeout_setting, struct conf_lane, settings, DURATION_WHAT),
    KW("lock_timeout", set_timeout_setting, struct conf_lane, settings, DURATION_WHAT),
    KW("idle_in_transaction_session_timeout", set_timeout_setting, struct conf_lane, settings,
       DURATION_WHAT),
    KW("work_mem", set_memory_setting, struct conf_lane, settings, MEMORY_WHAT),
    KBOOL("protect", struct conf_lane, protect),
    KBOOL("preemptible", struct conf_lane, preemptible),
    KENUM("guard", struct conf_lane, guard, guard_names),
    KDUR("guard_wait", struct conf_lane, guard_wait_ms),
    KENUM("pin", struct conf_lane, pin, pin_names),
    KBOOL("cache_unnamed", struct conf_lane, cache_unnamed),
    KBOOL("cancel_on_disconnect", struct conf_lane, cancel_on_disconnect),
    KINT("guard_quarantine", struct conf_lane, guard_quarantine, 0, 100),
    KDUR("guard_quarantine_window", struct conf_lane, guard_quarantine_window_ms),
    KDUR("guard_quarantine_time", struct conf_lane, guard_quarantine_time_ms),
    KW("protects", conf_set_str, struct conf_lane, protects, "a lane name"),
    KDUR("target_p99", struct conf_lane, target_p99_ms),
    KDUR("adapt_interval", struct conf_lane, adapt_interval_ms),
    KINT("min_size", struct conf_lane, min_size, 1, 10000),
    KINT("adapt_min_samples", struct conf_lane, adapt_min_samples, 1, 1000000),
    KENUM("tenant_key", struct conf_lane, tenant_key, tenant_key_names),
    KINT("tenant_max", struct conf_lane, tenant_max, 0, 10000),
    KW("backend_nice", set_backend_nice, struct conf_lane, backend_nice, "an integer from 0 to 19, or idle"),
    KEND,
};
