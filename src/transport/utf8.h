/*
 * Incremental UTF-8 validation (RFC 3629) for WebSocket text messages, whose fragments may split a
 * code point anywhere. Overlong forms, UTF-16 surrogates (U+D800..U+DFFF) and code points above
 * U+10FFFF are rejected. Pure: no allocation, no I/O.
 */
#ifndef RT_TRANSPORT_UTF8_H
#define RT_TRANSPORT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/** Validator state, carried from one fragment to the next. Fields are private. */
typedef struct st_rt_utf8_t {
    uint8_t _need; /* continuation bytes still expected for the current code point */
    uint8_t _lo;   /* range allowed for the next continuation byte (narrower after E0, ED, F0, F4) */
    uint8_t _hi;
    uint8_t _bad; /* sticky: an invalid byte was seen */
} rt_utf8_t;

/** Resets the state to "between code points, nothing invalid seen". */
static inline void rt_utf8_init(rt_utf8_t *u);
/**
 * Feeds the next len bytes. Returns 0 if everything so far is valid or a valid prefix (a code point
 * may still be open), -1 as soon as a byte cannot belong to valid UTF-8; -1 is sticky until init.
 * ASCII runs are checked 8 bytes at a time.
 */
int rt_utf8_feed(rt_utf8_t *u, const void *p, size_t len);
/** Ends the text: 0 if valid and no code point is left open, -1 otherwise (invalid or truncated). */
static inline int rt_utf8_finish(const rt_utf8_t *u);
/** One-shot validation of a complete text: 0 valid, -1 invalid or truncated. */
int rt_utf8_validate(const void *p, size_t len);

/* inline definitions */

static inline void rt_utf8_init(rt_utf8_t *u)
{
    u->_need = 0;
    u->_lo = 0x80;
    u->_hi = 0xbf;
    u->_bad = 0;
}

static inline int rt_utf8_finish(const rt_utf8_t *u)
{
    return u->_bad || u->_need != 0 ? -1 : 0;
}

#endif
