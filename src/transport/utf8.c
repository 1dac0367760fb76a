#include <string.h>
#include "transport/utf8.h"

#define HIGH_BITS 0x8080808080808080ull

int rt_utf8_feed(rt_utf8_t *u, const void *_p, size_t len)
{
    const uint8_t *p, *end;
    unsigned need = u->_need, lo = u->_lo, hi = u->_hi;

    if (u->_bad)
        return -1;
    if (len == 0)
        return 0;
    p = _p;
    end = p + len;

    while (p != end) {
        uint8_t c;
        if (need != 0) {
            c = *p++;
            if (c < lo || c > hi)
                goto Bad;
            --need;
            lo = 0x80;
            hi = 0xbf;
            continue;
        }
        /* Between code points: JSON text is almost all ASCII, so skip it a word at a time. */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, sizeof(w));
            if (w & HIGH_BITS)
                break;
            p += 8;
        }
        while (p != end && *p < 0x80)
            ++p;
        if (p == end)
            break;
        c = *p++;
        /* The lead byte fixes the length and, for E0/ED/F0/F4, the range of the first continuation
         * byte: that is where overlongs, surrogates and > U+10FFFF are excluded. */
        if (c < 0xc2) {
            goto Bad; /* a stray continuation byte, or C0/C1 (overlong two-byte forms) */
        } else if (c < 0xe0) {
            need = 1;
        } else if (c < 0xf0) {
            need = 2;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c < 0xf5) {
            need = 3;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        } else {
            goto Bad;
        }
    }
    u->_need = (uint8_t)need;
    u->_lo = (uint8_t)lo;
    u->_hi = (uint8_t)hi;
    return 0;

Bad:
    u->_bad = 1;
    return -1;
}

int rt_utf8_validate(const void *p, size_t len)
{
    rt_utf8_t u;
    rt_utf8_init(&u);
    if (rt_utf8_feed(&u, p, len) != 0)
        return -1;
    return rt_utf8_finish(&u);
}
