/*
 * String-keyed hash map (open addressing, linear probing, backward-shift deletion, so no tombstones).
 * The map copies keys; values are opaque pointers the caller owns. Not thread-safe.
 */
#ifndef RT_UTIL_MAP_H
#define RT_UTIL_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_rt_map_entry_t {
    char *key; /* NULL = empty slot */
    uint32_t hash;
    uint32_t key_len;
    void *value;
} rt_map_entry_t;

typedef struct st_rt_map_t {
    rt_map_entry_t *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
} rt_map_t;

/** 32-bit FNV-1a; exposed so callers can hash once. */
uint32_t rt_hash(const char *s, size_t len);
/** Returns the value stored for key, or NULL. */
void *rt_map_get(const rt_map_t *map, const char *key, size_t len);
/** Stores value for key; returns the value it replaced, or NULL. Aborts on OOM. */
void *rt_map_put(rt_map_t *map, const char *key, size_t len, void *value);
/** Removes key; returns its value, or NULL when absent. */
void *rt_map_del(rt_map_t *map, const char *key, size_t len);
/** Calls cb for each entry (the map must not change meanwhile). */
void rt_map_foreach(const rt_map_t *map, void (*cb)(const char *key, size_t len, void *value, void *ctx), void *ctx);
/** Frees the map's memory (not the values). */
void rt_map_clear(rt_map_t *map);

#endif
