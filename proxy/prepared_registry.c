/*
 * The registry of prepared statements in transaction pooling (see proxy/prepared.c): statements
 * shared by text and parameter types under pglane's names, swept when unreferenced; each client's
 * names for them; and the statements each server connection has (its LRU cache).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/prepared_internal.h"
#include "proxy/proxy.h"
#include "routing/hash.h"

#define REG_BUCKETS 4096

#define REG_SWEEP 10000    /* unreferenced statements kept before a sweep frees them */
#define REG_UNREF_BYTES (4u << 20)   /* ... or this many bytes of their text */

struct prep_registry {
    struct px_stmt *buckets[REG_BUCKETS];
    struct px_stmt *by_id[REG_BUCKETS];
    uint32_t next_id;
    uint32_t count;
    uint64_t unref_bytes;          /* body bytes of statements no client name points to */
    uint32_t unnamed_epoch;        /* cache_unnamed: bumped by DDL and session changes */
};

/*
 * Several workers: the statements (text and parameter types) PostgreSQL accepted in any worker, so
 * that a worker answers a client's Parse of one at once, as one worker does once it has seen it
 * accepted, instead of waiting for a server connection to try it. A client that prepares
 * synchronously while it holds other server connections in transactions (pgbench -M prepared: one
 * thread, many connections) would otherwise wait for a connection its own transactions hold.
 * A statement is known by two independent 64-bit hashes of its body and its length (24 bytes,
 * whatever its text: the set stays small however long the statements), at most VALID_MAX of them.
 * Every field under lock; entries are only added, freed at the process's end.
 */
#define VALID_BUCKETS 1024
#define VALID_MAX 20000
#define VALID_SEED 0x84222325cbf29ce4ULL   /* the second hash's start: another FNV-1a offset */

struct valid_stmt {
    struct valid_stmt *next;
    uint64_t hash, hash2;
    uint32_t len;
};

static struct {
    pthread_mutex_t lock;
    struct valid_stmt *buckets[VALID_BUCKETS];
    int n;
} valid = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct valid_stmt **valid_slot(const struct px_stmt *s, uint64_t h2)
{
    struct valid_stmt **v = &valid.buckets[s->hash % VALID_BUCKETS];

    while (*v && !((*v)->hash == s->hash && (*v)->hash2 == h2 && (*v)->len == s->len))
        v = &(*v)->next;
    return v;
}

void px_prep_shared_accepted(const struct px_stmt *s)
{
    uint64_t h2 = route_fnv1a(VALID_SEED, s->body, s->len);
    struct valid_stmt **v, *n;

    if (s->variant & 1)
        return;                    /* cache_unnamed's variants depend on the session's DDL epoch */
    pthread_mutex_lock(&valid.lock);
    if (!*(v = valid_slot(s, h2)) && valid.n < VALID_MAX && (n = malloc(sizeof(*n)))) {
        n->next = NULL;
        n->hash = s->hash;
        n->hash2 = h2;
        n->len = s->len;
        *v = n;
        valid.n++;
    }
    pthread_mutex_unlock(&valid.lock);
}

int px_prep_shared_known(struct px_stmt *s)
{
    uint64_t h2;
    int known;

    if (s->variant & 1)
        return 0;
    h2 = route_fnv1a(VALID_SEED, s->body, s->len);
    pthread_mutex_lock(&valid.lock);
    known = *valid_slot(s, h2) != NULL;
    pthread_mutex_unlock(&valid.lock);
    if (known)
        s->validated = 1;
    return known;
}

void px_prep_shared_free(void)
{
    pthread_mutex_lock(&valid.lock);
    for (int i = 0; i < VALID_BUCKETS; i++)
        while (valid.buckets[i]) {
            struct valid_stmt *n = valid.buckets[i];

            valid.buckets[i] = n->next;
            free(n);
        }
    valid.n = 0;
    pthread_mutex_unlock(&valid.lock);
}

static struct prep_registry *registry(struct proxy *px)
{
    if (!px->prep)
        px->prep = calloc(1, sizeof(struct prep_registry));
    return px->prep;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    return route_fnv1a(ROUTE_FNV_OFFSET, p, n);
}

static void id_link(struct prep_registry *reg, struct px_stmt *s)
{
    s->id_next = reg->by_id[s->id % REG_BUCKETS];
    reg->by_id[s->id % REG_BUCKETS] = s;
}

static void id_unlink(struct prep_registry *reg, struct px_stmt *s)
{
    for (struct px_stmt **pp = &reg->by_id[s->id % REG_BUCKETS]; *pp; pp = &(*pp)->id_next)
        if (*pp == s) {
            *pp = s->id_next;
            return;
        }
}

struct px_stmt *stmt_by_id(struct proxy *px, uint32_t id)
{
    struct prep_registry *reg = px->prep;

    for (struct px_stmt *s = reg ? reg->by_id[id % REG_BUCKETS] : NULL; s; s = s->id_next)
        if (s->id == id)
            return s;
    return NULL;
}

/*
 * Unreferenced statements stay registered, so that a later client with the same text finds the name
 * servers already have; past REG_SWEEP they are freed (servers' copies then age out of their LRU).
 */
static void sweep(struct prep_registry *reg)
{
    for (int i = 0; i < REG_BUCKETS; i++)
        for (struct px_stmt **pp = &reg->buckets[i]; *pp;) {
            struct px_stmt *s = *pp;

            if (s->refs > 0) {
                pp = &s->next;
                continue;
            }
            *pp = s->next;
            id_unlink(reg, s);
            free(s);
            reg->count--;
        }
    reg->unref_bytes = 0;
}

static void stmt_ref(struct proxy *px, struct px_stmt *s)
{
    struct prep_registry *reg = px->prep;

    if (s->refs++ == 0 && reg)
        reg->unref_bytes -= s->len;
}

/*
 * What PostgreSQL's parse analysis of a text depends on, beyond the text: the database, the user, and
 * the session's settings and role. The search_path (and the role, through "$user") says which
 * objects names mean; DateStyle, TimeZone and IntervalStyle how constants such as '01/02/2024'::date
 * are read, once, at Parse; client_encoding what the bytes are; standard_conforming_strings and
 * transform_null_equals (in the replay of the session's settings, or the startup GUCs) how literals
 * and "= NULL" are read. A statement one client prepared is another's only where all of them agree:
 * the hash of the client's tracked parameters (application_name and extra_float_digits, which only
 * shape output, aside), its other startup settings, and its replay (settings, role, session user).
 */
uint64_t stmt_context(const struct px_client *cl)
{
    const char *db = cl->database ? cl->database : "", *user = cl->user ? cl->user : "";
    const char *replay = px_session_replay_sql(cl);
    uint64_t v = route_fnv1a(ROUTE_FNV_OFFSET, db, strlen(db) + 1);   /* the NULs keep the fields apart */

    v = route_fnv1a(v, user, strlen(user) + 1);
    for (int i = 0; i < PX_P_COUNT; i++) {
        const char *p = cl->want.v[i];

        if (i == PX_P_APPLICATION_NAME || i == PX_P_EXTRA_FLOAT_DIGITS)
            continue;
        v = p ? route_fnv1a(v, p, strlen(p) + 1) : route_fnv1a_byte(v, 0xff);   /* no byte of a value */
    }
    for (int i = 0; i < cl->gucs.n; i++) {
        v = route_fnv1a(v, cl->gucs.v[i].name, strlen(cl->gucs.v[i].name) + 1);
        v = route_fnv1a(v, cl->gucs.v[i].value, strlen(cl->gucs.v[i].value) + 1);
    }
    return replay ? route_fnv1a(v, replay, strlen(replay)) : v;
}

/* Statements prepared in a transaction that may have changed session state pglane has not read yet
 * (a SET in its text, whose reply may not have come back when a pipelined Parse behind it is
 * forwarded; a SET of a setting the server does not report, seen by its tag; a function's set_config) are that
 * client's own: each gets a key no other Parse gets (the counter is process-wide, as workers share
 * the registry's keys). */
static _Atomic uint64_t private_contexts;

/*
 * The settings that decide how a statement's constants are read, which PostgreSQL applies once, at
 * the Parse: DateStyle, IntervalStyle and TimeZone as pglane knows the client's (its own, or its pool's
 * defaults), into buf; 0 when one is not known.
 */
static uint16_t parse_settings(const struct px_client *cl, char *buf, size_t cap)
{
    static const int which[PREP_NSETTINGS] = PREP_SETTINGS;
    size_t n = 0;

    for (size_t i = 0; i < PREP_NSETTINGS; i++) {
        const char *v = cl->want.v[which[i]] ? cl->want.v[which[i]] : cl->pool ? cl->pool->defaults.v[which[i]] : NULL;
        size_t l = v ? strlen(v) : 0;

        if (!v || n + l + 1 > cap)
            return 0;
        memcpy(buf + n, v, l + 1);
        n += l + 1;
    }
    return (uint16_t)n;
}

int px_settings_unsure(const struct px_client *cl, uint64_t place)
{
    if (cl->unsure_at == PX_UNSURE_NONE)
        return 0;                  /* only SETs that change no statement's reading */
    if (cl->unsure_at)
        return place == 0 || cl->unsure_at < place;
    return cl->changes_session;   /* set where no place was noted: unsure throughout */
}

/*
 * PostgreSQL analyses a Parse's text against the catalogs of that moment and keeps the result columns
 * it found: a statement prepared before an ALTER TABLE under SELECT * refuses to run after it (0A000),
 * one prepared after it runs. A Parse that a server connection's earlier copy answered would get the
 * first where PostgreSQL gives the second. So the DDL that may change result columns, seen in a
 * client's text (client_route.c), in a server's command tag, and again when the transaction that ran
 * it ends (committed or rolled back), moves this count on, and it is part of every named statement's
 * key: statements prepared before stay as they are (their clients get PostgreSQL's 0A000), a Parse
 * after it gets a statement no server connection has yet. Process-wide (workers share it), relaxed:
 * only its changes matter, not their order with other memory.
 */
static _Atomic uint32_t ddl_epoch;

void px_prep_ddl_seen(void)
{
    atomic_fetch_add_explicit(&ddl_epoch, 1, memory_order_relaxed);
}

uint32_t px_prep_ddl_epoch(void)
{
    return atomic_load_explicit(&ddl_epoch, memory_order_relaxed);
}

struct px_stmt *stmt_get(struct px_client *cl, const uint8_t *body, uint32_t len, uint64_t place)
{
    uint32_t epoch = px_prep_ddl_epoch();
    uint64_t ctx = route_fnv1a(stmt_context(cl), &epoch, sizeof(epoch));
    char settings[256];
    uint16_t sl = 0;

    if (px_settings_unsure(cl, place) || (cl->server && (cl->server->dirty & PX_DIRTY_CHECK))) {
        uint64_t n = atomic_fetch_add_explicit(&private_contexts, 1, memory_order_relaxed);

        ctx = route_fnv1a(ctx ^ 0x9e3779b97f4a7c15ull, &n, sizeof(n));
    } else {
        sl = parse_settings(cl, settings, sizeof(settings));   /* the same for every client of the key */
    }
    return stmt_get_variant(cl->conn.px, body, len, ctx & ~(uint64_t)1, sl ? settings : NULL, sl);
}

uint32_t *unnamed_epoch(struct proxy *px)
{
    struct prep_registry *reg = registry(px);

    return reg ? &reg->unnamed_epoch : NULL;
}

/*
 * A new statement id, and so a new name on servers ("_pgl_<id>"): with several workers the worker's
 * index is in the top bits, so that two workers' registries never give one name to different statements
 * (a server connection handed over between workers may still hold the other worker's statements).
 */
static uint32_t next_id(struct proxy *px, struct prep_registry *reg)
{
    uint32_t n;

    if (!px->workers)
        return ++reg->next_id;
    if ((n = ++reg->next_id & 0x3ffffffu) == 0)
        n = ++reg->next_id & 0x3ffffffu;
    return ((uint32_t)px->worker_id << 26) | n;
}

/* The statement of this text and parameter types in a variant: stmt_get's for named statements,
 * else the cache_unnamed key of proxy/prepared_unnamed.c (a distinct statement per variant). */
struct px_stmt *stmt_get_variant(struct proxy *px, const uint8_t *body, uint32_t len, uint64_t variant,
                                 const char *settings, uint16_t settings_len)
{
    struct prep_registry *reg = registry(px);
    uint64_t h = hash_bytes(body, len) ^ variant;
    struct px_stmt **slot, *s;

    if (!reg)
        return NULL;
    slot = &reg->buckets[h % REG_BUCKETS];
    for (s = *slot; s; s = s->next)
        if (s->hash == h && s->variant == variant && s->len == len && memcmp(s->body, body, len) == 0)
            return s;
    /* Swept before the new statement is linked: a sweep frees every unreferenced one. */
    if (reg->count >= REG_SWEEP || reg->unref_bytes + len > REG_UNREF_BYTES)
        sweep(reg);
    s = malloc(sizeof(*s) + len + settings_len);
    if (!s)
        return NULL;
    s->settings_len = settings_len;
    if (settings_len)
        memcpy(s->body + len, settings, settings_len);
    s->hash = h;
    s->variant = variant;
    s->id = next_id(px, reg);
    s->refs = 0;
    s->validated = 0;
    s->dealloc = (uint8_t)px_prep_is_deallocate(body, strnlen((const char *)body, len));
    s->len = len;
    memcpy(s->body, body, len);
    s->next = *slot;
    *slot = s;
    id_link(reg, s);
    reg->count++;
    reg->unref_bytes += len;
    return s;
}

static void stmt_unref(struct proxy *px, struct px_stmt *s)
{
    struct prep_registry *reg = px->prep;

    if (s->refs > 0 && --s->refs == 0 && reg)
        reg->unref_bytes += s->len;
}

/* The statement's plan no longer fits its result type: every server re-prepares it under a new name. */
void stmt_invalidate(struct proxy *px, uint32_t id)
{
    struct prep_registry *reg = px->prep;
    struct px_stmt *s = stmt_by_id(px, id);

    if (!s)
        return;
    id_unlink(reg, s);
    s->id = next_id(px, reg);
    s->validated = 0;
    id_link(reg, s);
    px->prep_invalidations++;
}

void px_prep_registry_free(struct proxy *px)
{
    struct prep_registry *reg = px->prep;

    for (int i = 0; reg && i < REG_BUCKETS; i++)
        while (reg->buckets[i]) {
            struct px_stmt *s = reg->buckets[i];

            reg->buckets[i] = s->next;
            free(s);
        }
    free(reg);
    px->prep = NULL;
}

/* ---- a client's names ---- */

struct px_cstmt *cstmt_find(struct px_client *cl, const char *name)
{
    for (int i = 0; i < cl->nstmts; i++)
        if (strcmp(cl->stmts[i].name, name) == 0)
            return &cl->stmts[i];
    return NULL;
}

void cstmt_drop(struct px_client *cl, struct px_cstmt *cs)
{
    cl->dealloc_names -= cs->stmt->dealloc;
    stmt_unref(cl->conn.px, cs->stmt);
    free(cs->name);
    *cs = cl->stmts[--cl->nstmts];
}

int cstmt_set(struct px_client *cl, const char *name, struct px_stmt *s)
{
    struct px_cstmt *cs = cstmt_find(cl, name);

    if (cs) {
        stmt_ref(cl->conn.px, s);
        cl->dealloc_names += s->dealloc - cs->stmt->dealloc;
        stmt_unref(cl->conn.px, cs->stmt);
        cs->stmt = s;
        cs->shape = 0;
        return 0;
    }
    if (cl->nstmts == cl->capstmts && px_grow((void **)&cl->stmts, &cl->capstmts, 8, sizeof(*cl->stmts)) < 0)
        return -1;
    cl->stmts[cl->nstmts].name = strdup(name);
    if (!cl->stmts[cl->nstmts].name)
        return -1;
    cl->stmts[cl->nstmts].shape = 0;
    cl->stmts[cl->nstmts++].stmt = s;
    cl->dealloc_names += s->dealloc;
    stmt_ref(cl->conn.px, s);
    return 0;
}

/*
 * max_prepared_statements_per_client: a new name beyond it ends the session with 53400 (a client
 * could otherwise make pglane keep any amount of statement text). 1 if the client was failed.
 */
int over_client_limit(struct px_client *cl)
{
    int max = cl->conn.px->conf->max_prepared_statements_per_client;
    char msg[256];

    if (max <= 0 || cl->nstmts < max || (cl->nstmts == max && cstmt_find(cl, "")))
        return 0;                  /* the unnamed statement's mapping (cache_unnamed) is no name */
    snprintf(msg, sizeof(msg), "pglane: this session already has max_prepared_statements_per_client (%d) "
             "prepared statements; close (DEALLOCATE) statements it no longer needs", max);
    px_client_fail(cl, "53400", msg);
    return 1;
}

const char *px_prep_statement_text(struct px_client *cl, const char *name, size_t *len)
{
    struct px_cstmt *cs = *name ? cstmt_find(cl, name) : NULL;

    if (!cs)
        return NULL;
    /* memchr, not strnlen: libpg_query.so exports a byte-at-a-time strnlen that takes glibc's place
     * in the whole process. */
    const uint8_t *z = memchr(cs->stmt->body, 0, cs->stmt->len);

    *len = z ? (size_t)(z - cs->stmt->body) : cs->stmt->len;
    return (const char *)cs->stmt->body;
}

void px_prep_client_forget_all(struct px_client *cl)
{
    while (cl->nstmts > 0)
        cstmt_drop(cl, &cl->stmts[cl->nstmts - 1]);
}

void px_prep_client_free(struct px_client *cl)
{
    struct prep_registry *reg = cl->conn.px->prep;

    px_prep_client_forget_all(cl);
    free(cl->xdealloc_portal);     /* prepared.c's record of a DEALLOCATE portal (one pass) */
    free(cl->xdealloc_name);
    cl->xdealloc_portal = cl->xdealloc_name = NULL;
    free(cl->stmts);
    cl->stmts = NULL;
    cl->capstmts = 0;
    /* A client that leaves many statements behind does not keep their text alive; their heap pages
     * go back to the system too (glibc only trims the top of the heap by itself). */
    if (reg && reg->unref_bytes > REG_UNREF_BYTES) {
        sweep(reg);
        malloc_trim(0);
    }
}

/* ---- a server's cache ---- */

int cache_find(const struct px_server *sv, uint32_t id)
{
    for (int i = 0; i < sv->ncached; i++)
        if (sv->cached[i].id == id)
            return i;
    return -1;
}

void cache_remove(struct px_server *sv, uint32_t id)
{
    int i = cache_find(sv, id);

    if (i >= 0)
        sv->cached[i] = sv->cached[--sv->ncached];
}

void px_prep_server_forget_all(struct px_server *sv)
{
    sv->ncached = 0;
}

int cache_grow(struct px_server *sv)
{
    if (sv->ncached == sv->capcached)
        return px_grow((void **)&sv->cached, &sv->capcached, 16, sizeof(*sv->cached));
    return 0;
}

/* The server has the statement after all (an eviction it skipped, or "already exists"). */
void cache_add_ready(struct px_server *sv, uint32_t id)
{
    int i = cache_find(sv, id);

    if (i >= 0) {
        sv->cached[i].exists = 1;
        return;
    }
    if (cache_grow(sv) == 0)
        sv->cached[sv->ncached++] = (struct px_cached){ id, ++sv->tick, 0, 1, sv->groups, 0 };
}

/* The server carried out a Close of the statement (ensure_as prepares it again behind it). */
void cache_gone(struct px_server *sv, uint32_t id)
{
    int i = cache_find(sv, id);

    if (i >= 0)
        sv->cached[i].exists = 0;
}

/* The Execute of a DEALLOCATE of the statement was answered (ran: ok) or skipped or failed. */
void cache_dealloc_settled(struct px_server *sv, uint32_t id, int ok)
{
    int i = cache_find(sv, id);

    if (i < 0)
        return;
    sv->cached[i].pending -= sv->cached[i].pending > 0;
    if (ok)
        sv->cached[i].exists = 0;
    if (!sv->cached[i].pending && !sv->cached[i].exists)
        cache_remove(sv, id);
}

/* A Parse of the statement was skipped or failed: the entry goes once no other Parse of it is owed
 * an answer and no earlier one was carried out. */
void cache_parse_undone(struct px_server *sv, uint32_t id)
{
    int i = cache_find(sv, id);

    if (i < 0)
        return;
    sv->cached[i].pending -= sv->cached[i].pending > 0;
    if (!sv->cached[i].pending && !sv->cached[i].exists)
        cache_remove(sv, id);
}
