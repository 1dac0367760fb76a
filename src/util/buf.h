/*
 * Growable byte buffer with an explicit capacity limit, for input that peers size.
 */
#ifndef RT_UTIL_BUF_H
#define RT_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct st_rt_buf_t {
    char *base;
    size_t len;
    size_t cap;
} rt_buf_t;

/** Makes room for at least `extra` more bytes without exceeding `limit` in total; returns 0 or RT_ENOMEM / RT_E2BIG. */
__attribute__((warn_unused_result)) int rt_buf_try_reserve(rt_buf_t *buf, size_t extra, size_t limit);
/** Appends bytes (aborts on OOM: for buffers whose size the server controls). */
void rt_buf_append(rt_buf_t *buf, const void *p, size_t len);
/** Appends a string. */
void rt_buf_appends(rt_buf_t *buf, const char *s);
/** Appends printf-formatted text. */
void rt_buf_appendf(rt_buf_t *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/**
 * Appends s as a JSON string literal, quotes included: `"` and `\` and control characters escaped, everything else
 * (UTF-8 included) as it is — the same text as jansson's encoder with default flags, without building a json_t.
 */
void rt_buf_append_json_string(rt_buf_t *buf, const char *s);
/** Drops the first n bytes. */
void rt_buf_consume(rt_buf_t *buf, size_t n);
/** Releases the memory; the buffer is empty and reusable afterwards. */
void rt_buf_free(rt_buf_t *buf);

#endif
