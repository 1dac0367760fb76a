#include <stdlib.h>
#include <string.h>
#include "realtime/bytes.h"
#include "util/mem.h"

rt_bytes_t *rt_bytes_new(const void *p, size_t len)
{
    rt_bytes_t *b = rt_mem_alloc(sizeof(*b) + len + 1);
    atomic_init(&b->_refcnt, 1);
    b->_stamp_us = 0;
    b->len = len;
    if (p != NULL)
        memcpy(b->data, p, len);
    b->data[len] = '\0';
    return b;
}

void rt_bytes_unref(rt_bytes_t *b)
{
    if (atomic_fetch_sub_explicit(&b->_refcnt, 1, memory_order_acq_rel) == 1)
        free(b);
}
