/* Declarations shared between the files of routing/ only; not part of the public API. */
#ifndef PGLANE_ROUTE_INTERNAL_H
#define PGLANE_ROUTE_INTERNAL_H

#include "routing/route.h"

#include <string.h>

/* The lane named by a comment token's "pglane lane=NAME" text, if any. */
bool route_comment_hint(const char *sql, const struct route_token *tok, const char **name,
                        size_t *name_len);

/* Adds a relation name (deduplicated, bounded, truncated names flagged). */
void route_class_add_relation(struct route_class *c, const char *name, bool truncated);

/* Fixed-capacity index of 64-bit keys to slots 0..capacity-1 with LRU order. A full index
 * evicts its least recently used key on insert and reports which slot it reused. */
struct route_lru {
    size_t capacity;
    size_t count;
    size_t n_buckets;       /* power of two */
    uint32_t *buckets;      /* slot + 1, 0 = empty */
    uint64_t *keys;
    uint32_t *chain;        /* next slot + 1 in the same bucket */
    uint32_t *prev, *next;  /* LRU list, slot + 1; head is most recent */
    uint32_t head, tail;
    uint64_t evictions;
};

int route_lru_init(struct route_lru *lru, size_t capacity) ROUTE_MUSTCHECK;
void route_lru_destroy(struct route_lru *lru);
/* Slot of key or -1; touch moves it to the front. */
long route_lru_find(struct route_lru *lru, uint64_t key, bool touch);
long route_lru_find_const(const struct route_lru *lru, uint64_t key);
/* Slot for key, inserted at the front (evicting when full); *fresh tells whether it is new. */
size_t route_lru_insert(struct route_lru *lru, uint64_t key, bool *fresh);

/* JSON parse trees from libpg_query (json.c). Nodes are stored in document order; an object's
 * or array's children are linked by next, each with its member key (empty in arrays). */
enum {
    ROUTE_JSON_NULL = 0,
    ROUTE_JSON_FALSE,
    ROUTE_JSON_TRUE,
    ROUTE_JSON_NUMBER,
    ROUTE_JSON_STRING,
    ROUTE_JSON_ARRAY,
    ROUTE_JSON_OBJECT,
};

struct route_jnode {
    uint8_t type;
    uint32_t key_off, key_len;   /* raw key in the text */
    uint32_t val_off, val_len;   /* raw string contents or number text */
    uint32_t count;              /* children of a container */
    int child, next;             /* node indexes, -1 = none */
};

struct route_json {
    const char *text;
    struct route_jnode *nodes;   /* nodes[0] is the root */
    size_t n, cap;
};

/* Returns 0, or -1 on a syntax error, excessive depth or no memory (free it either way). */
int route_json_parse(struct route_json *j, const char *text, size_t len) ROUTE_MUSTCHECK;
void route_json_free(struct route_json *j);
/* The member of object obj named key, or -1. */
int route_json_get(const struct route_json *j, int obj, const char *key);
bool route_json_key_is(const struct route_json *j, int node, const char *key);
/* The same for a string literal key, without strlen: the hot path of the tree walk. */
#define ROUTE_JSON_KEY_IS(j, node, lit)                                   \
    ((j)->nodes[node].key_len == sizeof(lit) - 1 &&                       \
     memcmp((j)->text + (j)->nodes[node].key_off, lit, sizeof(lit) - 1) == 0)
bool route_json_str_is(const struct route_json *j, int node, const char *s);
bool route_json_true(const struct route_json *j, int node);
long route_json_int(const struct route_json *j, int node);
/* Copies a string node's value, unescaped, NUL-terminated; sets *truncated if it did not fit. */
size_t route_json_unescape(const struct route_json *j, int node, char *out, size_t cap,
                           bool *truncated);

#endif
