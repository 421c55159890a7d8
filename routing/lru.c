/* A fixed-capacity index from 64-bit keys to slots with least-recently-used eviction: chained
 * hash buckets plus a doubly linked recency list, all in preallocated arrays (slot + 1 links,
 * 0 = none), so no allocation happens after init. */
#include "routing/route.h"
#include "routing/internal.h"

#include <stdlib.h>
#include <string.h>

int route_lru_init(struct route_lru *lru, size_t capacity, size_t value_size)
{
    memset(lru, 0, sizeof *lru);
    if (capacity == 0 || capacity > UINT32_MAX / 4)
        return -1;
    lru->capacity = capacity;
    lru->n_buckets = 16;
    while (lru->n_buckets < capacity * 2)
        lru->n_buckets *= 2;
    lru->buckets = calloc(lru->n_buckets, sizeof *lru->buckets);
    lru->keys = calloc(capacity, sizeof *lru->keys);
    lru->chain = calloc(capacity, sizeof *lru->chain);
    lru->prev = calloc(capacity, sizeof *lru->prev);
    lru->next = calloc(capacity, sizeof *lru->next);
    lru->values = calloc(capacity, value_size);
    if (!lru->buckets || !lru->keys || !lru->chain || !lru->prev || !lru->next || !lru->values) {
        route_lru_destroy(lru);
        return -1;
    }
    return 0;
}

void route_lru_destroy(struct route_lru *lru)
{
    free(lru->buckets);
    free(lru->keys);
    free(lru->chain);
    free(lru->prev);
    free(lru->next);
    free(lru->values);
    memset(lru, 0, sizeof *lru);
}

static size_t bucket_of(const struct route_lru *lru, uint64_t key)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & (lru->n_buckets - 1);
}

static void list_unlink(struct route_lru *lru, uint32_t s)
{
    uint32_t p = lru->prev[s], n = lru->next[s];
    if (p)
        lru->next[p - 1] = n;
    else
        lru->head = n;
    if (n)
        lru->prev[n - 1] = p;
    else
        lru->tail = p;
    lru->prev[s] = lru->next[s] = 0;
}

static void list_push_front(struct route_lru *lru, uint32_t s)
{
    lru->prev[s] = 0;
    lru->next[s] = lru->head;
    if (lru->head)
        lru->prev[lru->head - 1] = s + 1;
    lru->head = s + 1;
    if (!lru->tail)
        lru->tail = s + 1;
}

long route_lru_find_const(const struct route_lru *lru, uint64_t key)
{
    for (uint32_t s = lru->buckets[bucket_of(lru, key)]; s; s = lru->chain[s - 1])
        if (lru->keys[s - 1] == key)
            return (long)(s - 1);
    return -1;
}

long route_lru_find(struct route_lru *lru, uint64_t key, bool touch)
{
    long s = route_lru_find_const(lru, key);
    if (s >= 0 && touch && lru->head != (uint32_t)s + 1) {
        list_unlink(lru, (uint32_t)s);
        list_push_front(lru, (uint32_t)s);
    }
    return s;
}

static void bucket_remove(struct route_lru *lru, uint32_t s)
{
    uint32_t *link = &lru->buckets[bucket_of(lru, lru->keys[s])];
    while (*link && *link != s + 1)
        link = &lru->chain[*link - 1];
    if (*link)
        *link = lru->chain[s];
    lru->chain[s] = 0;
}

size_t route_lru_insert(struct route_lru *lru, uint64_t key, bool *fresh)
{
    long found = route_lru_find(lru, key, true);
    if (found >= 0) {
        *fresh = false;
        return (size_t)found;
    }
    uint32_t s;
    if (lru->count < lru->capacity) {
        s = (uint32_t)lru->count++;
    } else {
        s = lru->tail - 1;
        list_unlink(lru, s);
        bucket_remove(lru, s);
        lru->evictions++;
    }
    size_t b = bucket_of(lru, key);
    lru->keys[s] = key;
    lru->chain[s] = lru->buckets[b];
    lru->buckets[b] = s + 1;
    list_push_front(lru, s);
    *fresh = true;
    return s;
}
