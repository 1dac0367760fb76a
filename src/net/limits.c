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

/* Immutable once published; replaced whole by rt_admission_configure. */
typedef struct st_trusted_t {
    struct st_trusted_t *retired; /* the one it replaced, freed with the admission (a reader may still hold it) */
    size_t n;
    rt_cidr_t nets[];
} trusted_t;

struct st_rt_admission_t {
    atomic_size_t max_connections, max_per_ip;
    trusted_t *_Atomic trusted;
    atomic_size_t total;
    pthread_mutex_t lock; /* guards by_addr and the slots' counts */
    rt_map_t by_addr;     /* rt_addr_t bytes -> slot */
};

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void rt_admission_configure(rt_admission_t *a, size_t max_connections, size_t max_per_ip, const rt_cidr_t *trusted, size_t n_trusted)
{
    trusted_t *t = rt_mem_calloc(1, sizeof(*t) + n_trusted * sizeof(t->nets[0]));
    t->n = n_trusted;
    if (n_trusted != 0)
        memcpy(t->nets, trusted, n_trusted * sizeof(t->nets[0]));
    t->retired = atomic_load(&a->trusted);
    atomic_store(&a->trusted, t);
    atomic_store_explicit(&a->max_connections, max_connections, memory_order_relaxed);
    atomic_store_explicit(&a->max_per_ip, max_per_ip, memory_order_relaxed);
}

rt_admission_t *rt_admission_new(size_t max_connections, size_t max_per_ip, const rt_cidr_t *trusted, size_t n_trusted)
{
    rt_admission_t *a = rt_mem_calloc(1, sizeof(*a));
    pthread_mutex_init(&a->lock, NULL);
    rt_admission_configure(a, max_connections, max_per_ip, trusted, n_trusted);
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
    for (trusted_t *t = atomic_load(&a->trusted), *next; t != NULL; t = next) {
        next = t->retired;
        free(t);
    }
    free(a);
}

bool rt_admission_per_address(const rt_admission_t *a)
{
    return atomic_load_explicit(&a->max_per_ip, memory_order_relaxed) != 0;
}

bool rt_admission_trusts(const rt_admission_t *a, const rt_addr_t *peer)
{
    const trusted_t *t = atomic_load(&a->trusted);
    return rt_cidr_match(t->nets, t->n, peer);
}

const rt_cidr_t *rt_admission_trusted(const rt_admission_t *a, size_t *n)
{
    const trusted_t *t = atomic_load(&a->trusted);
    *n = t->n;
    return t->nets;
}

bool rt_admission_enter(rt_admission_t *a)
{
    size_t now = atomic_fetch_add_explicit(&a->total, 1, memory_order_relaxed) + 1;
    size_t max = atomic_load_explicit(&a->max_connections, memory_order_relaxed);
    return max == 0 || now <= max;
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
    size_t max = atomic_load_explicit(&a->max_per_ip, memory_order_relaxed);
    *over = ++slot->count > max && max != 0;
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
