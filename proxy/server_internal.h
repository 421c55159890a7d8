/*
 * proxy/server_internal.h — what the server connection's files share: proxy/server_login.c (connect,
 * TLS, startup, authentication, close), proxy/server_own.c (pglane's own queries on a connection:
 * parameter sync, replay, session check, check of startup values) and proxy/server.c (the relay).
 */
#ifndef PGLANE_PROXY_SERVER_INTERNAL_H
#define PGLANE_PROXY_SERVER_INTERNAL_H

#include "proxy/proxy.h"

#define SLOG(sv, lvl, fmt, ...) \
    px_log(lvl, "S-%llu " PX_LOG_NAME "/" PX_LOG_NAME "@%s: " fmt, (unsigned long long)(sv)->conn.id, (sv)->pool->user, \
           (sv)->pool->database, (sv)->pool->lane->conf->name, __VA_ARGS__)

/* proxy/server_login.c */
void login_failed(struct px_server *sv, const struct proto_frame *err, const char *message);
int send_buf(struct px_server *sv, struct proto_buf *b);
void track_param(struct px_server *sv, const struct proto_frame *f, int from_login);
int next_frame(struct px_server *sv, struct proto_frame *f);
void tls_answer(struct px_server *sv);
void login_read(struct px_server *sv);

/* proxy/server_own.c */
int send_own_query(struct px_server *sv, const char *sql, size_t len);
void replay_done(struct px_server *sv);
void start_check(struct px_server *sv, struct px_client *cl);
int px_server_restore_startup(struct px_server *sv, struct px_client *cl);
void check_done(struct px_server *sv);
void keep_own_error(struct px_server *sv, const struct proto_frame *f);
void validation_reply(struct px_server *sv, const struct proto_frame *f);
int tag_suspect(const char *tag);
int tag_may_use_sequences(const char *tag);

/* proxy/server.c */
void server_release(struct px_server *sv);

#endif
