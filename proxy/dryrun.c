/*
 * pglane --route CONFIG.ini < statements.sql: a dry run of the routing rules. Reads SQL from stdin
 * and prints, per statement, the lane and route it would take, its kind, whether it is read-only,
 * the tables it names and its fingerprint (tab-separated). No event loop, no connection.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"
#include "routing/route.h"

static char *read_all(FILE *in, size_t *len)
{
    size_t cap = 65536, n = 0, r;
    char *buf = malloc(cap), *grown;

    while (buf && (r = fread(buf + n, 1, cap - n, in)) > 0) {
        n += r;
        if (n == cap) {
            grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                return NULL;
            }
            buf = grown;
            cap *= 2;
        }
    }
    *len = n;
    return buf;
}

static void print_decision(const struct conf *c, struct px_routing *rt, const struct route_facts *base,
                           const char *sql, size_t len)
{
    struct route_facts f = *base;
    struct route_class cls;
    struct route_scan sc;
    int rule, lane;

    route_scan(sql, len, &sc, NULL, 0);
    (void)route_classify(sql, len, &cls);
    f.cls = &cls;
    f.sql = sql;
    f.sql_len = len;
    f.hint = sc.hint;
    f.hint_len = sc.hint_len;
    rule = px_routing_match(rt, &f, c->default_lane_index, &lane);
    printf("%s\t%s\t%s\t%s\t", c->lanes[lane].name,
           rule < 0 ? "(default)" : c->routes[rule].name, route_kind_name(cls.kind),
           cls.read_only ? "read-only" : "read-write");
    for (int i = 0; i < cls.n_relations; i++)
        printf("%s%s", i ? "," : "", cls.relations[i]);
    printf("\t%016llx\n", (unsigned long long)sc.fingerprint);
}

int px_route_dry_run(const struct conf *c, const char *user, const char *database, const char *app,
                     const char *addr)
{
    struct sockaddr_storage ss;
    struct route_facts f;
    struct px_routing *rt;
    char err[512] = "";
    size_t len, n;
    char *sql;

    rt = px_routing_build(c, err, sizeof(err));
    if (!rt) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    memset(&f, 0, sizeof(f));
    memset(&ss, 0, sizeof(ss));
    f.user = user;
    f.database = database;
    f.application_name = app;
    f.p95_us = -1;
    if (addr && uv_ip4_addr(addr, 0, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(addr, 0, (struct sockaddr_in6 *)&ss) != 0) {
        fprintf(stderr, "--client-addr: not an IP address: %s\n", addr);
        px_routing_free(rt);
        return 1;
    }
    f.client_addr = addr ? (const struct sockaddr *)&ss : NULL;
    sql = read_all(stdin, &len);
    if (!sql) {
        px_routing_free(rt);
        return 1;
    }
    n = route_split_spans(sql, len, NULL, 0);
    if (n > 0) {
        struct route_span *spans = calloc(n, sizeof(*spans));

        route_split_spans(sql, len, spans, n);
        for (size_t i = 0; spans && i < n; i++)
            print_decision(c, rt, &f, sql + spans[i].start, spans[i].len);
        free(spans);
        route_classify_thread_cleanup();   /* only after the grammar has been used */
    }
    free(sql);
    px_routing_free(rt);
    return 0;
}
