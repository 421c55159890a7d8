/*
 * [peers]: the pglane processes that share a port (so_reuseport) or a load balancer with this one.
 * A key names a peer's id ("peer.3" or PgBouncer's bare "3"); its value is where that process takes
 * cancel requests: "host:port" (IPv6 as [::1]:6432) or PgBouncer's "host=H port=P" (host a
 * directory for a unix socket; port defaults to 6432). This process's own id may be listed too, so
 * that every instance can share one [peers] section.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/internal.h"

#define PEER_VALUE_WHAT "host:port (IPv6 as [::1]:6432) or host=HOST port=PORT"

/* "peer.N" or "N" with N in 1..CONF_PEER_ID_MAX; the id or -1. */
static int peer_key_id(const char *key)
{
    long long id;

    if (strncmp(key, "peer.", 5) == 0)
        key += 5;
    if (!isdigit((unsigned char)*key) || conf_parse_int(key, 1, CONF_PEER_ID_MAX, &id) < 0)
        return -1;
    return (int)id;
}

/* "host=H port=P" (either order, blanks between); 0 or -1. */
static int parse_kv(const char *value, struct conf_peer *p)
{
    char buf[256], *save = NULL, *tok;
    long long port = 6432;

    if (strlen(value) >= sizeof buf)
        return -1;
    strcpy(buf, value);
    for (tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (strncmp(tok, "host=", 5) == 0 && tok[5] && !p->host) {
            if (!(p->host = strdup(tok + 5)))
                return -1;
        } else if (strncmp(tok, "port=", 5) != 0 || conf_parse_int(tok + 5, 1, 65535, &port) < 0) {
            return -1;
        }
    }
    if (!p->host)
        return -1;
    p->port = (int)port;
    return 0;
}

void conf_peer_set(struct conf_loader *ld, const char *key, const char *value)
{
    struct conf *c = ld->c;
    struct conf_peer p = { .id = peer_key_id(key), .line = ld->lineno }, *arr;
    struct conf_listen hp = { 0 };
    int rc;

    if (p.id < 0) {
        conf_errf(ld, ld->lineno, "[peers]: key '%s' is not a peer id: expected peer.N or N with N from "
                  "1 to %d", key, CONF_PEER_ID_MAX);
        return;
    }
    if (strchr(value, '=')) {
        rc = parse_kv(value, &p);
    } else {
        rc = conf_parse_hostport(value, &hp);
        p.host = hp.host;
        p.port = hp.port;
    }
    if (rc < 0 || (p.host[0] == '/' && strlen(p.host) + sizeof("/.s.PGSQL.65535") > 108)) {
        free(p.host);
        conf_errf(ld, ld->lineno, "%s: expected " PEER_VALUE_WHAT "%s, got '%s'", key,
                  rc < 0 ? "" : " (a unix socket path shorter than 108 bytes)", value);
        return;
    }
    for (int i = 0; i < c->npeers; i++) {
        if (c->peers[i].id == p.id) {
            conf_errf(ld, ld->lineno, "[peers]: peer %d is given twice (first at line %d)", p.id,
                      c->peers[i].line);
            free(p.host);
            return;
        }
    }
    arr = realloc(c->peers, (size_t)(c->npeers + 1) * sizeof *arr);
    if (!arr) {
        free(p.host);
        ld->oom = 1;
        return;
    }
    c->peers = arr;
    c->peers[c->npeers++] = p;
}

void conf_validate_peers(struct conf_loader *ld, int peer_id_line)
{
    const struct conf *c = ld->c;
    int others = 0;

    for (int i = 0; i < c->npeers; i++)
        others += c->peers[i].id != c->peer_id;
    if (others > 0 && c->peer_id == 0)
        conf_errf(ld, peer_id_line ? peer_id_line : c->peers[0].line,
                  "[peers] lists other processes but peer_id is not set: give this process its own "
                  "peer_id (1 to %d), different from theirs", CONF_PEER_ID_MAX);
}
