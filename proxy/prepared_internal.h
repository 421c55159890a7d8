/*
 * proxy/prepared_internal.h — what the prepared-statement files share: proxy/prepared_registry.c
 * (the shared statements, each client's names for them, each server's cache), proxy/prepared.c
 * (rewriting a client's messages on their way to the server, answering locally) and
 * proxy/prepared_queue.c (each server's response queue and the replies it accounts for).
 */
#ifndef PGLANE_PROXY_PREPARED_INTERNAL_H
#define PGLANE_PROXY_PREPARED_INTERNAL_H

#include "proxy/proxy.h"

/*
 * Entry flags. Changes to a client's names and to a server's cache that depend on the server carrying
 * out a message are made when the message is sent (later messages of the batch rely on them) and
 * undone if the server skips it after an earlier error, or fails it.
 */
enum {
    Q_SWALLOW = 1,     /* the reply is pglane's own: drop it */
    Q_SYNTH = 2,       /* pglane owes the reply itself */
    Q_NEWNAME = 4,     /* a client name was created: dropped again if the Parse does not happen */
    Q_RESTORE = 8,     /* a Close dropped a client name: restored if the server skips the Close */
    Q_EVICT = 16,      /* an eviction Close: the cache keeps the statement if it is skipped */
    Q_DEALLOC = 32,    /* SQL DEALLOCATE of a mapped name: drop name and cache entry if it succeeds */
    Q_FAILED = 64,     /* a simple Query that got an ErrorResponse */
    Q_DUPNAME = 128,   /* a Parse of a name the client has: the server's 42P05 names pglane's statement */
    /* cache_unnamed (proxy/prepared_unnamed.c): the message changes the client's unnamed statement,
     * whose mapping to a shared statement (client name "") was e->prev before it. */
    Q_UNNAMED = 256,
    Q_URAW = 512,      /* ... sent as the server's unnamed Parse (no cache entry to undo) */
    Q_UMAP = 1024,     /* ... maps the client's unnamed statement to e->stmt */
    Q_UFAILED = 2048,  /* ... the server failed it (rather than skipping it): no unnamed statement */
    Q_REPREP = 4096,   /* a Close ahead of preparing a statement again (ensure_as): it is gone if done */
    Q_PREPCC = 8192,   /* a Query whose first CommandComplete (a PREPARE of pglane's) the client never sees */
    Q_XDEALLOC = 16384, /* an Execute of "DEALLOCATE _pgl_<stmt>": the statement is gone if it ran */
    Q_STALE = 32768    /* a Bind or Describe of a client statement whose result columns changed: sent
                        * naming no statement, its 26000 becomes PostgreSQL's 0A000 */
};
enum { Q_PARSE = 'P', Q_BIND = 'B', Q_DESC_STMT = 'd', Q_DESC_PORTAL = 'p', Q_EXEC = 'E', Q_CLOSE = 'C',
       Q_SYNC = 'S', Q_QUERY = 'Q' };

struct px_stmt {                   /* one statement text + parameter types, shared by clients */
    struct px_stmt *next;          /* hash chain */
    struct px_stmt *id_next;       /* chain of the by-id table */
    uint8_t validated;             /* PostgreSQL accepted this Parse at least once */
    uint8_t dealloc;               /* the text is "DEALLOCATE name" (prepared.c xdealloc_bind) */
    uint64_t hash;
    uint64_t variant;              /* named (bit 0 clear): the client's database, user and search_path
                                    * (stmt_get); cache_unnamed (bit 0 set): search_path and DDL epoch */
    uint32_t id;                   /* server-side name _pgl_<id>; replaced when invalidated */
    uint32_t refs;                 /* client names pointing here */
    uint32_t len;                  /* of body: query\0, int16 count, count * int32 type oids */
    uint16_t settings_len;         /* 0, or the settings its constants were read under follow the
                                    * body, PREP_SETTINGS in order, each with its NUL (stmt_get) */
    uint8_t body[];
};

struct px_cstmt {                  /* a client's name for a statement */
    char *name;
    struct px_stmt *stmt;
    uint64_t shape;                /* result columns the client was told (its Describe), 0: not known */
};

/* The settings PostgreSQL reads a statement's constants under, once, at its Parse (kept with each
 * shared statement: prepared_registry.c, put back around a later Parse: prepared.c). */
#define PREP_SETTINGS { PX_P_DATESTYLE, PX_P_INTERVALSTYLE, PX_P_TIMEZONE }
#define PREP_NSETTINGS 3

/* The result columns of a RowDescription or NoData (names, types, typmods) as one number, never 0. */
uint64_t prep_shape(uint8_t type, const uint8_t *body, uint32_t len);

/* proxy/prepared_registry.c */
struct px_stmt *stmt_by_id(struct proxy *px, uint32_t id);
/* The named statement of this text and parameter types for cl: one per database, user and
 * search_path, the context PostgreSQL resolves its names in, so that a text PostgreSQL accepted for
 * one client is not taken as accepted for a client that resolves it elsewhere. */
struct px_stmt *stmt_get(struct px_client *cl, const uint8_t *body, uint32_t len, uint64_t place);
/* Whether the client's session settings may not be known as of the message at `place` (0: not
 * known which): a statement before it in its transaction may have changed some that pglane has not
 * read yet (a SET whose reply is to come, a function call after which the session is checked). */
int px_settings_unsure(const struct px_client *cl, uint64_t place);
/* The hash of that context: database, user and search_path as pglane knows them. */
uint64_t stmt_context(const struct px_client *cl);
struct px_stmt *stmt_get_variant(struct proxy *px, const uint8_t *body, uint32_t len, uint64_t variant,
                                 const char *settings, uint16_t settings_len);
uint32_t *unnamed_epoch(struct proxy *px);
void stmt_invalidate(struct proxy *px, uint32_t id);
/* Several workers: s was accepted by PostgreSQL here (published); known: some worker's was (s is
 * marked validated then). */
void px_prep_shared_accepted(const struct px_stmt *s);
int px_prep_shared_known(struct px_stmt *s);
struct px_cstmt *cstmt_find(struct px_client *cl, const char *name);
void cstmt_drop(struct px_client *cl, struct px_cstmt *cs);
int cstmt_set(struct px_client *cl, const char *name, struct px_stmt *s);
int over_client_limit(struct px_client *cl);
int cache_find(const struct px_server *sv, uint32_t id);
void cache_remove(struct px_server *sv, uint32_t id);
void cache_gone(struct px_server *sv, uint32_t id);
void cache_parse_undone(struct px_server *sv, uint32_t id);
void cache_dealloc_settled(struct px_server *sv, uint32_t id, int ok);
int cache_grow(struct px_server *sv);
void cache_add_ready(struct px_server *sv, uint32_t id);

/* proxy/prepared_queue.c */
int queue_push_name(struct px_server *sv, uint8_t type, uint16_t flags, uint32_t stmt, const char *name);
int queue_push(struct px_server *sv, uint8_t type, uint16_t flags, uint32_t stmt);
int queue_push_unnamed(struct px_server *sv, uint8_t type, uint16_t flags, uint32_t stmt, uint32_t prev);
int queue_has_end(const struct px_server *sv);
struct px_prepq_entry *queue_last(struct px_server *sv);

/* proxy/prepared_unnamed.c */
uint32_t unnamed_map_id(struct px_client *cl);
void unnamed_map_set(struct px_client *cl, uint32_t id);
void unnamed_settle(struct px_client *cl, const struct px_prepq_entry *e, int ok);
struct px_stmt *unnamed_stmt(struct px_client *cl, struct px_server *sv, const uint8_t *text, uint32_t tlen);

#endif
