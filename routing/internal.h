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
/* A byte that may continue an unquoted identifier (letters, digits, _, $, any byte >= 0x80). */
bool route_ident_char(unsigned char c);

/* Fixed-capacity index of 64-bit keys to slots 0..capacity-1 with LRU order. A full index
 * evicts its least recently used key on insert and reports which slot it reused. `values` is the
 * owner's per-slot array (capacity elements of the size given to init, zeroed), freed with it. */
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
    void *values;
};

int route_lru_init(struct route_lru *lru, size_t capacity, size_t value_size) ROUTE_MUSTCHECK;
void route_lru_destroy(struct route_lru *lru);
/* Slot of key or -1; touch moves it to the front. */
long route_lru_find(struct route_lru *lru, uint64_t key, bool touch);
long route_lru_find_const(const struct route_lru *lru, uint64_t key);
/* Slot for key, inserted at the front (evicting when full); *fresh tells whether it is new. */
size_t route_lru_insert(struct route_lru *lru, uint64_t key, bool *fresh);

#endif
