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

void rt_buf_append_json_string(rt_buf_t *buf, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    rt_buf_append(buf, "\"", 1);
    const char *run = s; /* start of the bytes not yet appended */
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        rt_buf_append(buf, run, (size_t)(s - run));
        run = s + 1;
        char esc[6] = {'\\', (char)ch};
        size_t n = 2;
        switch (ch) {
        case '"':
        case '\\':
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[ch >> 4], esc[5] = hex[ch & 15];
            n = 6;
        }
        rt_buf_append(buf, esc, n);
    }
    rt_buf_append(buf, run, (size_t)(s - run));
    rt_buf_append(buf, "\"", 1);
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
