/*
 * Reference-counted immutable byte strings: one encoded wire form shared by every client that
 * gets it (h2o_mem_alloc_shared). Safe to ref/unref from any thread.
 */
#ifndef REALTIME_BYTES_H
#define REALTIME_BYTES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_rt_bytes_t rt_bytes_t;

struct st_rt_bytes_t {
    atomic_uint _refcnt;
    uint32_t _stamp_us; /* an event's wire form: when the event was accepted (monotonic µs, low 32 bits); 0: none */
    size_t len;
    char data[];
};

/** New bytes with refcount 1 holding a copy of p[0..len) (p may be NULL: contents left for the caller to fill). */
rt_bytes_t *rt_bytes_new(const void *p, size_t len);
static inline rt_bytes_t *rt_bytes_ref(rt_bytes_t *b);
/** Drops one reference; frees on the last. */
void rt_bytes_unref(rt_bytes_t *b);

/* inline definitions */

static inline rt_bytes_t *rt_bytes_ref(rt_bytes_t *b)
{
    atomic_fetch_add_explicit(&b->_refcnt, 1, memory_order_relaxed);
    return b;
}

#endif
