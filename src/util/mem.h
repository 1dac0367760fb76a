/*
 * Memory helpers: aborting allocators for small fixed-size objects, container-of, branch hints.
 * Anything a peer can size (frames, bodies, queues) must use the rt_*_try_* functions of the owning
 * module instead, so a failure closes one connection rather than the process.
 */
#ifndef RT_UTIL_MEM_H
#define RT_UTIL_MEM_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define RT_STRUCT_FROM_MEMBER(type, member, ptr) ((type *)((char *)(ptr) - offsetof(type, member)))
#define RT_LIKELY(x) __builtin_expect(!!(x), 1)
#define RT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/** Allocates or aborts (out of memory is not recoverable for fixed-size bookkeeping). */
void *rt_mem_alloc(size_t size);
/** Zeroed allocation, or aborts. */
void *rt_mem_calloc(size_t n, size_t size);
/** Reallocation, or aborts. */
void *rt_mem_realloc(void *p, size_t size);
/** Copies len bytes into a new NUL-terminated string, or aborts. */
char *rt_strndup(const char *s, size_t len);

static inline char *rt_strdup(const char *s)
{
    return rt_strndup(s, strlen(s));
}

#endif
