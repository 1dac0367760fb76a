#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/error.h"
#include "util/buf.h"
#include "util/mem.h"

int rt_buf_try_reserve(rt_buf_t *buf, size_t extra, size_t limit)
{
    if (extra > limit || buf->len > limit - extra) /* not len + extra: a peer-sized extra could wrap */
        return RT_E2BIG;
    if (buf->len + extra <= buf->cap)
        return 0;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < buf->len + extra)
        cap *= 2;
    if (cap > limit)
        cap = limit;
    char *p = realloc(buf->base, cap);
    if (p == NULL)
        return RT_ENOMEM;
    buf->base = p;
    buf->cap = cap;
    return 0;
}

static void reserve(rt_buf_t *buf, size_t extra)
{
    if (buf->len + extra <= buf->cap)
        return;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < buf->len + extra)
        cap *= 2;
    buf->base = rt_mem_realloc(buf->base, cap);
    buf->cap = cap;
}

void rt_buf_append(rt_buf_t *buf, const void *p, size_t len)
{
    reserve(buf, len);
    memcpy(buf->base + buf->len, p, len);
    buf->len += len;
}

void rt_buf_appends(rt_buf_t *buf, const char *s)
{
    rt_buf_append(buf, s, strlen(s));
}

void rt_buf_appendf(rt_buf_t *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    reserve(buf, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(buf->base + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
}

void rt_buf_consume(rt_buf_t *buf, size_t n)
{
    if (n >= buf->len) {
        buf->len = 0;
        return;
    }
    memmove(buf->base, buf->base + n, buf->len - n);
    buf->len -= n;
}

void rt_buf_free(rt_buf_t *buf)
{
    free(buf->base);
    buf->base = NULL;
    buf->len = buf->cap = 0;
}
