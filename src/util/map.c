#include <stdlib.h>
#include <string.h>
#include "util/map.h"
#include "util/mem.h"

uint32_t rt_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static rt_map_entry_t *find(const rt_map_t *map, const char *key, size_t len, uint32_t hash)
{
    if (map->cap == 0)
        return NULL;
    size_t mask = map->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        rt_map_entry_t *e = &map->slots[i];
        if (e->key == NULL)
            return NULL;
        if (e->hash == hash && e->key_len == len && memcmp(e->key, key, len) == 0)
            return e;
    }
}

static void place(rt_map_entry_t *slots, size_t cap, rt_map_entry_t e)
{
    size_t mask = cap - 1;
    size_t i = e.hash & mask;
    while (slots[i].key != NULL)
        i = (i + 1) & mask;
    slots[i] = e;
}

static void grow(rt_map_t *map)
{
    size_t cap = map->cap ? map->cap * 2 : 8;
    rt_map_entry_t *slots = rt_mem_calloc(cap, sizeof(*slots));
    for (size_t i = 0; i < map->cap; i++)
        if (map->slots[i].key != NULL)
            place(slots, cap, map->slots[i]);
    free(map->slots);
    map->slots = slots;
    map->cap = cap;
}

void *rt_map_get(const rt_map_t *map, const char *key, size_t len)
{
    rt_map_entry_t *e = find(map, key, len, rt_hash(key, len));
    return e ? e->value : NULL;
}

void *rt_map_put(rt_map_t *map, const char *key, size_t len, void *value)
{
    uint32_t hash = rt_hash(key, len);
    rt_map_entry_t *e = find(map, key, len, hash);
    if (e != NULL) {
        void *old = e->value;
        e->value = value;
        return old;
    }
    if ((map->count + 1) * 4 > map->cap * 3)
        grow(map);
    place(map->slots, map->cap, (rt_map_entry_t){rt_strndup(key, len), hash, (uint32_t)len, value});
    map->count++;
    return NULL;
}

void *rt_map_del(rt_map_t *map, const char *key, size_t len)
{
    rt_map_entry_t *e = find(map, key, len, rt_hash(key, len));
    if (e == NULL)
        return NULL;
    void *value = e->value;
    free(e->key);
    size_t mask = map->cap - 1, hole = (size_t)(e - map->slots);
    /* Backward-shift: move later entries of the probe run into the hole when their home allows it. */
    for (size_t i = (hole + 1) & mask; map->slots[i].key != NULL; i = (i + 1) & mask) {
        size_t home = map->slots[i].hash & mask;
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            map->slots[hole] = map->slots[i];
            hole = i;
        }
    }
    map->slots[hole] = (rt_map_entry_t){0};
    map->count--;
    return value;
}

void rt_map_foreach(const rt_map_t *map, void (*cb)(const char *key, size_t len, void *value, void *ctx), void *ctx)
{
    for (size_t i = 0; i < map->cap; i++)
        if (map->slots[i].key != NULL)
            cb(map->slots[i].key, map->slots[i].key_len, map->slots[i].value, ctx);
}

void rt_map_clear(rt_map_t *map)
{
    for (size_t i = 0; i < map->cap; i++)
        free(map->slots[i].key);
    free(map->slots);
    *map = (rt_map_t){0};
}
