/*
 * TLS for a stream (proxy/net/tls.c): OpenSSL through memory BIOs inside the libuv loop. px_tls_start
 * switches a stream's transport to TLS; the stream code never asks whether a connection is TLS.
 */
#ifndef PGLANE_PROXY_NET_TLS_H
#define PGLANE_PROXY_NET_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/net/stream.h"

struct conf;
struct conf_server;
struct px_tls;
void *px_tls_server_ctx(const struct conf *c);            /* SSL_CTX for clients, or NULL (logged) */
void *px_tls_client_ctx(const struct conf_server *s);     /* SSL_CTX towards a server, or NULL */
void px_tls_ctx_free(void *ctx);
/* Starts TLS on a connection; the client side sends its ClientHello at once. 0 or -1. */
int px_tls_start(struct px_conn *c, void *ctx, int server_side, const char *verify_host);
void px_tls_free(struct px_conn *c);
int px_tls_write(struct px_conn *c, const void *data, size_t n);
int px_tls_handshake_done(const struct px_conn *c);
const char *px_tls_version(const struct px_conn *c);
/* tls-server-end-point data (hash of our certificate, RFC 5929) into out; 0, or -1 if unavailable. */
int px_tls_endpoint_hash(const struct px_conn *c, uint8_t *out, size_t cap, size_t *outlen);
const char *px_tls_error(const struct px_conn *c);   /* why the handshake failed, or NULL */

#endif
