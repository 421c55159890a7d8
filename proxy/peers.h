/*
 * proxy/peers.h — peering (proxy/peers.c): several pglane processes behind one port (so_reuseport) or
 * one load balancer. A cancel key carries the id of the process that issued it; a CancelRequest for
 * another process's key is forwarded to that process at its [peers] address. Included by
 * proxy/proxy.h.
 */
#ifndef PGLANE_PROXY_PEERS_H
#define PGLANE_PROXY_PEERS_H

#include <stdint.h>

struct proxy;
struct conf;

/*
 * The process id part of a cancel key (BackendKeyData's first field) with peering on:
 *   bit 31 0 | bits 30..17 peer_id | bits 16..15 hops left | bits 14..0 random
 * The secret key (the second field) stays 32 random bits. Without peer_id the process id is 31
 * random bits as before.
 */
#define PX_PEER_ID_SHIFT 17
#define PX_PEER_HOPS_SHIFT 15
#define PX_PEER_HOPS_MAX 3u

/* Start (at_start = 1: also fixes peer_id and so_reuseport for the process's life) and every
 * reload: resolves the [peers] addresses of px->conf. At start an address that does not resolve
 * fails the start (-1, logged); at a reload it is logged and cancels for that peer are dropped. */
int px_peers_configure(struct proxy *px, int at_start);
/* Puts this process's peer_id and the full hop count into a fresh random cancel process id. */
void px_peer_stamp_key(const struct proxy *px, uint32_t *cancel_pid);
/* A CancelRequest (pid, key) that arrived: 1 if it was for another process (forwarded to it, or
 * dropped with a log line); 0 if it is this process's to look up, with *pid normalised to the
 * value this process issued. */
int px_peer_route_cancel(struct proxy *px, uint32_t *pid, uint32_t key);
/* 1 if the listener on host:port (host as written in listen, or the unix_socket_dir) is this
 * process's own [peers] address: it stays open during a drain, for cancel requests. */
int px_peer_own_listener(const struct conf *c, const char *host, int port);
/* Closes the peer cancel connections still in flight (pglane exits). */
void px_peers_stop(struct proxy *px);
/* Frees what px_peers_configure built. */
void px_peers_free(struct proxy *px);

#endif
