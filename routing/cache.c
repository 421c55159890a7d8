/* The classification cache: fingerprint -> struct route_class, bounded, LRU. */
#include "routing/route.h"
#include "routing/internal.h"

#include <stdlib.h>
#include <string.h>

struct route_cache {
    struct route_lru lru;
    struct route_class *classes;   /* by slot */
};

struct route_cache *route_cache_new(size_t capacity)
{
    struct route_cache *cache = calloc(1, sizeof *cache);

    if (!cache || route_lru_init(&cache->lru, capacity, sizeof *cache->classes) < 0) {
        free(cache);
        return NULL;
    }
    cache->classes = cache->lru.values;
    return cache;
}

void route_cache_free(struct route_cache *cache)
{
    if (!cache)
        return;
    route_lru_destroy(&cache->lru);
    free(cache);
}

const struct route_class *route_cache_get(struct route_cache *cache, uint64_t fp)
{
    long s = route_lru_find(&cache->lru, fp, true);
    return s < 0 ? NULL : &cache->classes[s];
}

void route_cache_put(struct route_cache *cache, uint64_t fp, const struct route_class *cls)
{
    bool fresh;
    size_t s = route_lru_insert(&cache->lru, fp, &fresh);
    memcpy(&cache->classes[s], cls, sizeof *cls);
}

size_t route_cache_count(const struct route_cache *cache)
{
    return cache->lru.count;
}

uint64_t route_cache_evictions(const struct route_cache *cache)
{
    return cache->lru.evictions;
}
