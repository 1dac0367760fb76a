#include <stdio.h>
#include "util/mem.h"

static void *check(void *p, size_t size)
{
    if (RT_UNLIKELY(p == NULL && size != 0)) {
        fprintf(stderr, "realtime: out of memory allocating %zu bytes\n", size);
        abort();
    }
    return p;
}

void *rt_mem_alloc(size_t size)
{
    return check(malloc(size), size);
}

void *rt_mem_calloc(size_t n, size_t size)
{
    return check(calloc(n, size), n * size);
}

void *rt_mem_realloc(void *p, size_t size)
{
    return check(realloc(p, size), size);
}

char *rt_strndup(const char *s, size_t len)
{
    char *d = rt_mem_alloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}
