#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "net/limits.h"
#include "util/map.h"
#include "util/mem.h"

const char *const rt_limit_names[RT_LIMITS] = {
    [RT_LIMIT_CONNECTIONS] = "max_connections",
    [RT_LIMIT_CONNECTIONS_PER_IP] = "max_connections_per_ip",
    [RT_LIMIT_SUBSCRIPTIONS] = "max_subscriptions",
    [RT_LIMIT_CHANNELS_PER_SUBSCRIBE] = "max_channels_per_subscribe",
    [RT_LIMIT_COMMAND_RATE] = "client_command_rate",
};

struct st_rt_admission_slot_t {
    rt_addr_t key; /* the address, an IPv6 one cut to its /64 */
    size_t count;
};

struct st_rt_admission_t {
    size_t max_connections, max_per_ip;
    rt_cidr_t *trusted;
    size_t n_trusted;
    atomic_size_t total;
    pthread_mutex_t lock; /* guards by_addr and the slots' counts */
    rt_map_t by_addr;     /* rt_addr_t bytes -> slot */
};

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

rt_admission_t *rt_admission_new(size_t max_connections, size_t max_per_ip, const rt_cidr_t *trusted, size_t n_trusted)
{
    rt_admission_t *a = rt_mem_calloc(1, sizeof(*a));
    a->max_connections = max_connections;
    a->max_per_ip = max_per_ip;
    if (n_trusted != 0) {
        a->trusted = rt_mem_alloc(n_trusted * sizeof(*trusted));
        memcpy(a->trusted, trusted, n_trusted * sizeof(*trusted));
        a->n_trusted = n_trusted;
    }
    pthread_mutex_init(&a->lock, NULL);
    return a;
}

static void free_slot(const char *key, size_t len, void *value, void *ctx)
{
    free(value);
}

void rt_admission_free(rt_admission_t *a)
{
    if (a == NULL)
        return;
    rt_map_foreach(&a->by_addr, free_slot, NULL);
    rt_map_clear(&a->by_addr);
    pthread_mutex_destroy(&a->lock);
    free(a->trusted);
    free(a);
}

bool rt_admission_per_address(const rt_admission_t *a)
{
    return a->max_per_ip != 0;
}

bool rt_admission_trusts(const rt_admission_t *a, const rt_addr_t *peer)
{
    return rt_cidr_match(a->trusted, a->n_trusted, peer);
}

const rt_cidr_t *rt_admission_trusted(const rt_admission_t *a, size_t *n)
{
    *n = a->n_trusted;
    return a->trusted;
}

bool rt_admission_enter(rt_admission_t *a)
{
    size_t now = atomic_fetch_add_explicit(&a->total, 1, memory_order_relaxed) + 1;
    return a->max_connections == 0 || now <= a->max_connections;
}

void rt_admission_leave(rt_admission_t *a)
{
    atomic_fetch_sub_explicit(&a->total, 1, memory_order_relaxed);
}

rt_admission_slot_t *rt_admission_enter_addr(rt_admission_t *a, const rt_addr_t *addr, bool *over)
{
    rt_addr_t key = *addr;
    if (memcmp(key.b, V4_MAPPED, sizeof(V4_MAPPED)) != 0)
        memset(key.b + 8, 0, 8); /* an IPv6 /64 */
    pthread_mutex_lock(&a->lock);
    rt_admission_slot_t *slot = rt_map_get(&a->by_addr, (const char *)key.b, sizeof(key.b));
    if (slot == NULL) {
        slot = rt_mem_calloc(1, sizeof(*slot));
        slot->key = key;
        rt_map_put(&a->by_addr, (const char *)slot->key.b, sizeof(slot->key.b), slot);
    }
    *over = ++slot->count > a->max_per_ip;
    pthread_mutex_unlock(&a->lock);
    return slot;
}

void rt_admission_leave_addr(rt_admission_t *a, rt_admission_slot_t *slot)
{
    pthread_mutex_lock(&a->lock);
    if (--slot->count == 0) {
        rt_map_del(&a->by_addr, (const char *)slot->key.b, sizeof(slot->key.b));
        free(slot);
    }
    pthread_mutex_unlock(&a->lock);
}
