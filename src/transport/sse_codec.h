/*
 * Server-Sent Events wire format (HTML Living Standard, "Server-sent events"): event blocks,
 * comments and the retry field. Pure: sizes are computed first so a block is written with one
 * allocation, and the same bytes go to every client that gets the event.
 */
#ifndef RT_TRANSPORT_SSE_CODEC_H
#define RT_TRANSPORT_SSE_CODEC_H

#include <stddef.h>
#include "realtime/bytes.h"

/** The comment a stream sends every heartbeat. */
#define RT_SSE_PING ": ping\n\n"
#define RT_SSE_PING_LEN (sizeof(RT_SSE_PING) - 1)

/** One event; fields point at the caller's memory. */
typedef struct st_rt_sse_event_t {
    const char *id; /**< the `id:` line (the resume id); NULL: no id line */
    size_t id_len;
    const char *type; /**< the `event:` line; NULL: no event line (the client sees "message") */
    size_t type_len;
    const char *data; /**< the payload; one `data:` line per line of it (split at CRLF, LF or CR) */
    size_t data_len;
} rt_sse_event_t;

/**
 * Bytes the block for ev takes: `id: <id>\n`, `event: <type>\n`, a `data: ` line per data line and
 * the blank line. Returns 0 if id or type contain CR, LF or NUL: those would end the field early (or
 * make the client ignore the id) and let event content inject fields.
 */
size_t rt_sse_event_size(const rt_sse_event_t *ev);
/** Writes the block; buf must hold rt_sse_event_size(ev) bytes, which must not be 0. Returns that size. */
size_t rt_sse_event_write(char *buf, const rt_sse_event_t *ev);
/** The block in new bytes (refcount 1, one allocation), or NULL when rt_sse_event_size(ev) is 0. */
rt_bytes_t *rt_sse_event_bytes(const rt_sse_event_t *ev);

/** Bytes of a comment block: `: <line>\n` per line of text (split as data is), then a blank line. */
size_t rt_sse_comment_size(const char *text, size_t len);
/** Writes the comment block into buf (rt_sse_comment_size bytes); returns its length. */
size_t rt_sse_comment_write(char *buf, const char *text, size_t len);


#endif
