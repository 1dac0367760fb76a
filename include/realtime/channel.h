/*
 * Channel names and subscription patterns.
 *
 * A channel is dot-separated segments of [A-Za-z0-9_:@-], 1..255 bytes, no empty segment.
 * A pattern may also use `*` as a whole segment (exactly one segment) and `>` as the whole last
 * segment (one or more segments). `all` is a reserved name: its subscribers get every event.
 */
#ifndef REALTIME_CHANNEL_H
#define REALTIME_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

#define RT_CHANNEL_MAX 255
#define RT_CHANNEL_ALL "all"

/** True when name is a valid concrete channel name (`all` included). */
bool rt_channel_valid(const char *name, size_t len);
/** True when name is a valid channel or pattern. */
bool rt_pattern_valid(const char *name, size_t len);
/** True when name contains a `*` or `>` segment (assumes rt_pattern_valid). */
bool rt_channel_is_pattern(const char *name, size_t len);
/** True when name is exactly `all`. */
bool rt_channel_is_all(const char *name, size_t len);
/** True when the valid pattern matches the valid concrete channel. */
bool rt_pattern_match(const char *pattern, size_t plen, const char *channel, size_t clen);
/**
 * True when the valid pattern `granted` matches every channel the valid pattern `requested` can match: grant
 * coverage. `incidents.*` is covered by `incidents.*`, `incidents.>` and `>`, not by `incidents.INC-1`; `a.>` is
 * covered by `>` and `a.>`, not by `a.*`. A concrete channel is covered by any pattern that matches it.
 */
bool rt_pattern_covers(const char *granted, size_t glen, const char *requested, size_t rlen);
/** True when some channel matches both valid patterns (`a.*` and `*.b` share `a.b`; `a.*` and `a.b.c` share none). */
bool rt_pattern_intersects(const char *a, size_t alen, const char *b, size_t blen);

#endif
