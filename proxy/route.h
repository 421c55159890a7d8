/*
 * proxy/route.h — the router glue (proxy/route.c): compiles the [route.*] sections, gathers a
 * client's or a statement's facts for routing/ and keeps the classification cache and learned
 * statistics; and the --route dry run (proxy/dryrun.c). Included by proxy/proxy.h.
 */
#ifndef PGLANE_PROXY_ROUTE_H
#define PGLANE_PROXY_ROUTE_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct proxy;
struct px_client;

struct px_routing;
struct px_routing *px_routing_build(const struct conf *c, char *err, size_t errlen);
/* On reload: rt takes over old's statement classes and, with keep_stats (same capacity), its learned
 * statistics with their lanes renumbered through lane_map (old lane index -> new, -1 = gone). */
void px_routing_inherit(struct px_routing *rt, struct px_routing *old, const int *lane_map, int nmap,
                        int keep_stats);
void px_routing_free(struct px_routing *r);
/* The first route whose criteria f meets (-1: none) and, in *lane, the lane it picks (default_lane
 * when none does). */
struct route_facts;
int px_routing_match(const struct px_routing *rt, const struct route_facts *f, int default_lane, int *lane);
/* Decides the lane for a client from its identity: a lane index, or -2 when statements decide. */
int px_route_client(struct proxy *px, struct px_client *cl);
/* The same for one transaction: also counts the route's hit. */
int px_route_identity_hit(struct proxy *px, struct px_client *cl);
/* The route behind the latest px_route_identity_hit / px_route_statement decision (-1: default lane). */
int px_route_last_rule(void);
/* Decides the lane of a transaction from its first statement; remembers its fingerprint. */
int px_route_statement(struct proxy *px, struct px_client *cl, const char *sql, size_t len);
/* The classification of a statement (struct route_class, cached per fingerprint; valid until the
 * next classification). */
struct route_class;
const struct route_class *px_route_classify(struct proxy *px, const char *sql, size_t len);
/* Records a finished transaction for the learned statistics of its fingerprint. */
void px_route_record(struct proxy *px, uint64_t fingerprint, uint64_t duration_us, int lane);
/* The normalized text of a statement shape pglane routed ("" when unknown); returns buf. */
const char *px_route_text(struct proxy *px, uint64_t fingerprint, char *buf, size_t n);
uint64_t px_route_hits(const struct proxy *px, int route);
int px_routing_need_statement(const struct proxy *px);
/* pglane --route (proxy/dryrun.c): reads SQL from stdin, prints one line per statement. Returns the
 * exit code. */
int px_route_dry_run(const struct conf *c, const char *user, const char *database, const char *app,
                     const char *addr);
struct route_stats;
struct route_stats *px_route_stats(const struct proxy *px);

#endif
