/*
 * proxy/client_internal.h — shared by the client files only; what the rest of proxy/ calls is in
 * proxy.h. client.c relays (reads, forwards, ends transactions, closes), client_startup.c reads the
 * startup packet, client_auth.c logs the client in, client_scan.c steps over what it sends and
 * client_route.c decides what a statement means for its transaction.
 */
#ifndef PGLANE_PROXY_CLIENT_INTERNAL_H
#define PGLANE_PROXY_CLIENT_INTERNAL_H

#include "proxy/proxy.h"

#define CLOG(cl, lvl, fmt, ...) \
    px_log(lvl, "C-%llu %s " PX_LOG_NAME "/" PX_LOG_NAME ": " fmt, (unsigned long long)(cl)->conn.id, PX_CLIENT_ADDR(cl), \
           (cl)->user ? (cl)->user : "-", (cl)->database ? (cl)->database : "-", __VA_ARGS__)

/* client.c */
/* Sends b to the client and frees it; closes the client if it cannot. */
void client_send(struct px_client *cl, struct proto_buf *b);
/* A FATAL ErrorResponse, then the connection is closed once it is written. */
void client_fatal(struct px_client *cl, const char *sqlstate, const char *message);
/* The same with a DETAIL field (NULL for none). */
void client_fatal_detail(struct px_client *cl, const char *sqlstate, const char *message, const char *detail);
/* The pool of the lane chosen for the client's next transaction (or session). */
struct px_pool *client_lane_pool(struct px_client *cl);
/* client_lane_pool gave nothing: max_pools reached (53300) or out of memory. */
void client_no_pool(struct px_client *cl);

/* client_startup.c */
/* Reads SSLRequest, GSSENCRequest, CancelRequest and StartupMessage (CL_STARTUP). */
void client_startup_read(struct px_client *cl);
void client_startup_clear(struct px_client *cl);
/* 1 if every startup value is one the pool's servers accepted before (then applied), else 0. */
int client_startup_known(struct px_client *cl, const struct px_pool *pool);

/* client_auth.c */
/* Asks for the password (md5) or starts SASL, or logs in at once (trust). */
void client_start_auth(struct px_client *cl);
/* Reads the PasswordMessage, SASLInitialResponse or SASLResponse of the state the client is in. */
void client_auth_read(struct px_client *cl);
/* Whether the client may not take one of the slots reserve_admin_connections keeps. */
int client_in_admin_reserve(struct px_client *cl);
/* ParameterStatus of the pool's first login, with the client's own values, then BackendKeyData. */
void client_finish_login(struct px_client *cl);
void client_read_pipelined(struct px_client *cl);

/* client_scan.c */
/* Scans forwarded messages, counting the requests that each end in a ReadyForQuery. 0, -1 (a
 * protocol error, *err says which) or -2 (*err is a 54000 error, or the client is closed). */
int client_scan(struct px_client *cl, const char **err);

/* client_route.c */
/* What client_look_at_statement found in a statement. */
enum stmt_verdict {
    STMT_FORWARD,                  /* goes on to the server as it is */
    STMT_HELD_BEGIN,               /* a bare BEGIN held until the next statement routes (not a request) */
    STMT_PIN_REFUSED,              /* would pin a client of a lane with pin = refuse */
    STMT_QUARANTINED               /* refused by the contention guard's quarantine (answered and dropped) */
};
/* Looks at a whole Query, Parse or Bind in transaction pooling: the session-change check for every
 * one, and the routing decision for the first of a transaction. */
enum stmt_verdict client_look_at_statement(struct px_client *cl, const struct proto_frame *f);
/* A FunctionCall (fast path) of which have bytes of the body are in the buffer: its transaction is
 * checked afterwards, and the built-ins whose effect no check shows mark the client as their SQL
 * calls do (transaction pooling). */
void client_look_at_function_call(struct px_client *cl, const struct proto_frame *f, uint32_t have);
/* Replaces a statement that would pin with one PostgreSQL fails with 0A000 (pin = refuse); the
 * message is whole at the buffer's pos. 0, or -1 when the buffer cannot grow now. */
int client_refuse_rewrite(struct px_client *cl, struct proto_frame *f);

#endif
