/* The one hash of pglane: 64-bit FNV-1a, for fingerprints (routing/scan.c), prepared statement
 * bodies and client identities (proxy/). Header-only so that the per-byte step inlines. */
#ifndef PGLANE_ROUTE_HASH_H
#define PGLANE_ROUTE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define ROUTE_FNV_OFFSET 0xcbf29ce484222325ULL
#define ROUTE_FNV_PRIME  0x100000001b3ULL

/* One byte into the running hash h. */
static inline uint64_t route_fnv1a_byte(uint64_t h, uint8_t c)
{
    return (h ^ c) * ROUTE_FNV_PRIME;
}

/* n bytes into the running hash h (start from ROUTE_FNV_OFFSET). */
static inline uint64_t route_fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    while (n--)
        h = route_fnv1a_byte(h, *b++);
    return h;
}

#endif
