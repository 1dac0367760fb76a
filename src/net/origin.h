/*
 * Which web pages may use the server from a browser: the Origin header of a request against allowed_origins.
 * A request without Origin does not come from a page's script (curl, Node, a server): the rules for it are the
 * rules without a browser. A page on the server's own origin (Origin naming the Host it asked) is always
 * allowed, so the dashboard served at / works without configuration.
 */
#ifndef RT_NET_ORIGIN_H
#define RT_NET_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

/** Longest Origin echoed back: a scheme, a host name (at most 253) and a port fit. */
#define RT_ORIGIN_MAX 300

typedef enum en_rt_origin_verdict_t {
    RT_ORIGIN_ABSENT,  /**< no Origin header */
    RT_ORIGIN_ALLOWED, /**< listed, same-origin, or any_origin */
    RT_ORIGIN_FOREIGN, /**< not listed, or not a well-formed origin */
} rt_origin_verdict_t;

/**
 * Judges origin (the Origin header's value, or NULL) for a request that named host (the Host header, or NULL).
 * allowed[0..n) are allowed_origins entries: "*" allows every origin; a star in the host ("https://" followed by
 * "*.example.com") stands for one or more characters, none of them '/' or ':'; anything else is compared whole,
 * ignoring case. any_origin (insecure mode) allows every well-formed origin.
 */
rt_origin_verdict_t rt_origin_check(char *const *allowed, size_t n, bool any_origin, const char *origin, const char *host);

/**
 * Whether entry may appear in allowed_origins: "*", "null", or scheme://host[:port] with no path, at most one
 * '*', and only printable characters.
 */
bool rt_origin_entry_valid(const char *entry);

#endif
