/*
 * Content filters. Both forms of DESIGN.md compile into one engine:
 *
 *  - the simple form: a JSON object {"key": value, ...}; every key must match (AND); a value is a
 *    string, number, bool or an array of them (any of); JSON values match by JSON type ("3" != 3);
 *    from a query string (filter.key=value, repeated key = any of) values are text and match a string
 *    field exactly, or a number/bool field whose JSON text equals them;
 *  - the tree form: the Centrifuge FilterNode ({"op":"and|or|not","nodes":[...]} and leaves
 *    {"key","cmp","val"|"vals"} with eq neq in nin ex nex sw ew ct lt lte gt gte); values compare as
 *    text, except lt lte gt gte which compare numerically.
 *
 * Keys: `type` is the event type; any other key is a dotted path into the event's `data`
 * (`severity`, `service.team`). A missing field does not match (except for nex/neq/nin, as in
 * Centrifuge: "not equal" holds for a missing key only for nex).
 *
 * A compiled filter is immutable: rt_filter_match may run on many threads at once and allocates nothing.
 */
#ifndef REALTIME_FILTER_H
#define REALTIME_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "realtime/event.h"

#define RT_FILTER_MAX_KEYS 32     /**< keys in a simple filter */
#define RT_FILTER_MAX_VALUES 256  /**< values in all of one filter's value lists together */
#define RT_FILTER_MAX_NODES 128   /**< nodes in a tree filter */
#define RT_FILTER_MAX_DEPTH 8     /**< nesting of a tree filter, and segments in a dotted key */
#define RT_FILTER_MAX_VALUE_LEN 1024 /**< bytes in one key or value */

typedef struct st_rt_filter_t rt_filter_t;

/** One query-string pair: key without the "filter." prefix, both NUL-terminated. */
typedef struct st_rt_filter_pair_t {
    const char *key;
    const char *value;
} rt_filter_pair_t;

/**
 * Compiles the simple form from a JSON object. An empty object compiles to NULL (matches everything).
 * Returns 0 or RT_EINVAL / RT_E2BIG with a message in err ("filters.severity: value must be a string,
 * number, bool or array of them").
 */
int rt_filter_compile_simple(const json_t *obj, rt_filter_t **out, char *err, size_t errlen);
/** Compiles query-string pairs (repeated keys are any-of) into the simple form. */
int rt_filter_compile_query(const rt_filter_pair_t *pairs, size_t n, rt_filter_t **out, char *err, size_t errlen);
/** Compiles a Centrifuge FilterNode tree (also used for Centrifuge `tf`). */
int rt_filter_compile_tree(const json_t *node, rt_filter_t **out, char *err, size_t errlen);
/** Combines two filters with AND, taking ownership of both (either may be NULL). */
rt_filter_t *rt_filter_and(rt_filter_t *a, rt_filter_t *b);
/** True when ev passes f. A NULL filter matches every event. Allocates nothing; thread-safe. */
bool rt_filter_match(const rt_filter_t *f, const rt_event_t *ev);
/** Frees a compiled filter (NULL is fine). */
void rt_filter_free(rt_filter_t *f);

#endif
