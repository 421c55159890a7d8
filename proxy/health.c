/*
 * Server health and roles (issue 15): see health.h. Stub: every server is up, role unknown until the
 * checks exist; the pure helpers are final.
 */
#include "proxy/health.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

static const struct px_health unknown_health = { .role = PX_ROLE_UNKNOWN, .up = 1, .lag_ms = -1, .lag_bytes = -1 };

const struct px_health *px_health_get(struct proxy *px, const char *server_name)
{
    (void)px;
    (void)server_name;
    return &unknown_health;
}

void px_health_conflict(struct proxy *px, const char *server_name)
{
    (void)px;
    (void)server_name;
}

void px_health_on_change(struct proxy *px, px_health_cb cb, void *arg)
{
    (void)px;
    (void)cb;
    (void)arg;
}

int px_health_start(struct proxy *px)
{
    (void)px;
    return 0;
}

void px_health_reload(struct proxy *px)
{
    (void)px;
}

void px_health_stop(struct proxy *px)
{
    (void)px;
}

void px_health_foreach(struct proxy *px, px_health_each_cb cb, void *arg)
{
    (void)px;
    (void)cb;
    (void)arg;
}

uint64_t px_health_checks_total(struct proxy *px)
{
    (void)px;
    return 0;
}

/* ---- pure helpers ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* 1 to 8 hex digits up to `end` (a char not a hex digit); the value, or -1. */
static int64_t hex32(const char **p)
{
    uint64_t v = 0;
    int n = 0, d;

    while ((d = hexval(**p)) >= 0) {
        if (++n > 8)
            return -1;
        v = v << 4 | (uint64_t)d;
        (*p)++;
    }
    return n ? (int64_t)v : -1;
}

int px_lsn_parse(const char *text, uint64_t *out)
{
    const char *p = text;
    int64_t hi, lo;

    if (!p || (hi = hex32(&p)) < 0 || *p++ != '/' || (lo = hex32(&p)) < 0 || *p)
        return -1;
    *out = (uint64_t)hi << 32 | (uint64_t)lo;
    return 0;
}

int64_t px_lag_bytes(uint64_t ahead, uint64_t replay)
{
    if (!ahead || !replay)
        return -1;
    return ahead > replay ? (int64_t)(ahead - replay) : 0;
}

int64_t px_lag_ms(uint64_t receive_lsn, uint64_t replay_lsn, int64_t now_us, int64_t last_replay_us)
{
    if (replay_lsn && replay_lsn >= receive_lsn)
        return 0;
    if (!last_replay_us)
        return -1;
    return now_us > last_replay_us ? (now_us - last_replay_us) / 1000 : 0;
}

const char *px_role_name(int role)
{
    switch (role) {
    case PX_ROLE_PRIMARY: return "primary";
    case PX_ROLE_REPLICA: return "replica";
    }
    return "unknown";
}
