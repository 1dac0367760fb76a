#include <string.h>
#include "realtime/channel.h"

static bool name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '@' ||
           c == '-';
}

/* Walks the segments of name; wildcards allowed only when patterns is true. */
static bool check(const char *name, size_t len, bool patterns)
{
    if (len == 0 || len > RT_CHANNEL_MAX)
        return false;
    size_t seg_start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '.')
            continue;
        size_t seg_len = i - seg_start;
        if (seg_len == 0)
            return false;
        const char *seg = name + seg_start;
        if (seg_len == 1 && (seg[0] == '*' || seg[0] == '>')) {
            if (!patterns || (seg[0] == '>' && i != len))
                return false;
        } else {
            for (size_t j = 0; j < seg_len; j++)
                if (!name_char((unsigned char)seg[j]))
                    return false;
        }
        seg_start = i + 1;
    }
    return true;
}

bool rt_channel_valid(const char *name, size_t len)
{
    return check(name, len, false);
}

bool rt_pattern_valid(const char *name, size_t len)
{
    return check(name, len, true);
}

bool rt_channel_is_all(const char *name, size_t len)
{
    return len == 3 && memcmp(name, RT_CHANNEL_ALL, 3) == 0;
}

bool rt_channel_is_pattern(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((name[i] == '*' || name[i] == '>') && (i == 0 || name[i - 1] == '.') && (i + 1 == len || name[i + 1] == '.'))
            return true;
    return false;
}

/* Length of the segment starting at s (up to the next '.' or end). */
static size_t seg_len(const char *s, size_t left)
{
    const char *dot = memchr(s, '.', left);
    return dot ? (size_t)(dot - s) : left;
}

bool rt_pattern_match(const char *pattern, size_t plen, const char *channel, size_t clen)
{
    size_t p = 0, c = 0;
    for (;;) {
        if (p >= plen || c >= clen)
            return p >= plen && c >= clen;
        size_t pl = seg_len(pattern + p, plen - p), cl = seg_len(channel + c, clen - c);
        if (pl == 1 && pattern[p] == '>')
            return true; /* '>' is last and c < clen: one or more segments remain */
        if (!(pl == 1 && pattern[p] == '*') && (pl != cl || memcmp(pattern + p, channel + c, pl) != 0))
            return false;
        p += pl + 1;
        c += cl + 1;
    }
}

/* One segment of a valid pattern: its kind, so the walks below compare segments, not bytes. */
static bool seg_is(const char *s, size_t len, char wildcard)
{
    return len == 1 && s[0] == wildcard;
}

bool rt_pattern_covers(const char *granted, size_t glen, const char *requested, size_t rlen)
{
    size_t g = 0, r = 0;
    for (;;) {
        if (g >= glen || r >= rlen)
            return g >= glen && r >= rlen;
        size_t gl = seg_len(granted + g, glen - g), rl = seg_len(requested + r, rlen - r);
        if (seg_is(granted + g, gl, '>'))
            return true; /* one or more segments remain in the request, whatever they are */
        if (seg_is(requested + r, rl, '>'))
            return false; /* the request reaches any depth; the grant stops at a fixed one */
        if (seg_is(requested + r, rl, '*') && !seg_is(granted + g, gl, '*'))
            return false; /* any one segment is asked for; only one value is granted */
        if (!seg_is(granted + g, gl, '*') && (gl != rl || memcmp(granted + g, requested + r, gl) != 0))
            return false;
        g += gl + 1;
        r += rl + 1;
    }
}

bool rt_pattern_intersects(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i = 0, j = 0;
    for (;;) {
        if (i >= alen || j >= blen)
            return i >= alen && j >= blen;
        size_t al = seg_len(a + i, alen - i), bl = seg_len(b + j, blen - j);
        if (seg_is(a + i, al, '>') || seg_is(b + j, bl, '>'))
            return true; /* the other has at least one segment left, which '>' takes with the rest */
        if (!seg_is(a + i, al, '*') && !seg_is(b + j, bl, '*') && (al != bl || memcmp(a + i, b + j, al) != 0))
            return false;
        i += al + 1;
        j += bl + 1;
    }
}
