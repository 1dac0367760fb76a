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
