/*
 * proxy/config.h — the configuration in force (proxy/config.c): lanes built from it at start and
 * swapped by a reload. Included by proxy/proxy.h.
 */
#ifndef PGLANE_PROXY_CONFIG_H
#define PGLANE_PROXY_CONFIG_H

#include <sys/socket.h>

struct proxy;

/* Resolves host:port once (blocking: at start and reload only). 0 or -1. */
int px_resolve(const char *host, int port, struct sockaddr_storage *out);
/* Builds lanes and routing for px->conf at start. 0 or -1 (logged). */
int px_config_apply_initial(struct proxy *px);
/* SIGHUP / RELOAD: re-reads the ini file; on any problem logs file:line and keeps the old one. */
int px_reload(struct proxy *px);
void px_config_free(struct proxy *px);

#endif
