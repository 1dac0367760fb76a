/*
 * Who may read what (DESIGN "Trust and authorization"): namespaces, and the grants a connection's token
 * carries. The same decision serves every transport, so /ws, /events, Centrifuge and uni_sse cannot drift.
 */
#ifndef RT_CORE_ACCESS_H
#define RT_CORE_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

/** A `namespaces` entry: the options of the channels its pattern matches (the first entry that matches wins). */
typedef struct st_rt_namespace_t {
    char *pattern;       /**< channel or pattern; NULL only in rt_namespace_defaults */
    bool anonymous;      /**< read without a token (false) */
    bool history;        /**< resume and recovery (true) */
    bool presence;       /**< Centrifuge presence (true) */
    bool join_leave;     /**< Centrifuge join/leave pushes (true) */
    bool client_publish; /**< Centrifuge clients may publish (false) */
    bool admin_only;     /**< only admin tokens read it, whatever else is granted (false) */
} rt_namespace_t;

/** The options of a channel that no namespace matches. */
extern const rt_namespace_t rt_namespace_defaults;

/** The server's read policy. */
typedef struct st_rt_access_t {
    const rt_namespace_t *namespaces;
    size_t n_namespaces;
    bool insecure; /**< development mode: every read is allowed */
} rt_access_t;

/** What a connection's token grants; the strings are borrowed. A zeroed grant is an anonymous client. */
typedef struct st_rt_grant_t {
    bool admin;                    /**< claim "admin": true */
    const char *const *subscribe;  /**< claim "subscribe": channels and patterns */
    size_t n_subscribe;
    const char *const *channels;   /**< claim "channels" (Centrifugo's server-side subscriptions): concrete channels */
    size_t n_channels;
    const char *channel;           /**< a Centrifuge subscription token's "channel"; NULL otherwise */
} rt_grant_t;

/**
 * Parses a `namespaces` JSON array into a new list (free with rt_namespaces_free). Returns 0, or -1 with msg naming
 * the entry and the option ("entry 1: unknown option \"histroy\" …").
 */
int rt_namespaces_parse(json_t *arr, rt_namespace_t **out, size_t *count, char *msg, size_t n);
/** The list as a JSON array that rt_namespaces_parse reads back (every option written out). */
json_t *rt_namespaces_json(const rt_namespace_t *list, size_t count);
/** Frees a list from rt_namespaces_parse (NULL allowed). */
void rt_namespaces_free(rt_namespace_t *list, size_t count);

/** The namespace of the valid concrete channel (its first match), or &rt_namespace_defaults. */
const rt_namespace_t *rt_namespace_of(const rt_access_t *a, const char *channel, size_t len);

/**
 * True when some namespace a valid channel or pattern can reach has `flag` off: a pattern that spans a namespace
 * without history cannot be resumed. flag is the offset of one of rt_namespace_t's bools (offsetof).
 */
bool rt_namespace_any_off(const rt_access_t *a, const char *name, size_t len, size_t flag);

/**
 * Decides whether grant g (NULL = anonymous) may read the valid channel or pattern `name`. `all` and `>` need
 * admin; a namespace with admin_only needs admin; otherwise the read is allowed when every channel the name can
 * match lies in namespaces with `anonymous`, or when a grant covers the name (rt_pattern_covers). Returns true,
 * or false with *why (a static message for the client) set.
 */
bool rt_access_read(const rt_access_t *a, const rt_grant_t *g, const char *name, size_t len, const char **why);

#endif
