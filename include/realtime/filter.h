/*
 * Content filters. Both forms of DESIGN.md compile into one engine (one tree of nodes):
 *
 *  - the simple form: a JSON object {"key": value, ...}; every key must match (AND); a value is a
 *    string, number, bool or a non-empty array of them (any of); JSON values match by JSON type ("3" does
 *    not match 3, true does not match "true"; numbers compare by value, so 1 matches 1.0); from a query
 *    string (filter.key=value, repeated key = any of) values are text and match a string field exactly,
 *    or a number/bool field whose JSON text equals them (filter.priority=1 matches 1, filter.ok=true
 *    matches true);
 *  - the tree form: the Centrifuge FilterNode ({"op":"and|or|not","nodes":[...]} and leaves
 *    {"key","cmp","val"|"vals"} with eq neq in nin ex nex sw ew ct lt lte gt gte); val and vals compare
 *    as text against the field's text form, except lt lte gt gte which compare numerically.
 *
 * Keys: `type` is the event type (ev->type, never a `data` field); any other key is a dotted path into
 * the event's `data` (`severity`, `service.team`), one object lookup per segment.
 *
 * Fields. A field is present when the path leads to a string, number or bool. A missing field, and one
 * that is null, an array or an object (not a scalar, so it has no text form and would not be a
 * Centrifuge tag), is absent. An absent field matches nothing in the simple form; in the tree form it
 * satisfies only nex, neq and nin (as in Centrifuge, neq and nin are the negations of eq and in), and
 * ex, eq, in, sw, ew, ct, lt, lte, gt, gte do not hold.
 *
 * Text forms: a string is itself; true/false are "true"/"false"; an integer is its decimal text; a real
 * is the shortest text that reads back as the same double, spelled like jansson ("1.0", "0.1", "1e20").
 * Tree values may be given as JSON numbers or bools too; they then compare as that same text (val 1
 * is "1", which does not equal the text "1.0" of the field 1.0).
 *
 * Numeric comparisons (lt lte gt gte): the field is a number, or a string holding a decimal number
 * ("5", "-2.5e3"); anything else does not match. val must be such a number (else RT_EINVAL at compile
 * time). Integers compare exactly, otherwise as doubles.
 *
 * Tree parsing follows Centrifuge: a missing or empty op is a leaf; "not" takes exactly one node, "and"
 * and "or" at least one; eq neq sw ew ct lt lte gt gte need val (not vals), in and nin a non-empty vals
 * (not val), ex and nex neither. A member that is null, "" or [] counts as not given where a member must
 * be absent (protobuf-style encoders emit them); unknown members are ignored.
 *
 * Bounds (over one: RT_E2BIG): RT_FILTER_MAX_KEYS keys in a simple/query filter, RT_FILTER_MAX_VALUES
 * values in the whole filter (query pairs; simple values; tree val and vals together), RT_FILTER_MAX_NODES
 * tree nodes, RT_FILTER_MAX_DEPTH tree levels (the root is level 1) and segments in one key,
 * RT_FILTER_MAX_VALUE_LEN bytes in one key or value. Keys must be non-empty dot-separated non-empty
 * segments. Messages start with where the problem is: "filters.<key>: " (simple), "filter.<key>: "
 * (query), "filter: " or "filter.nodes[1].nodes[0]: " (tree).
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
 * Compiles the simple form from a JSON object (not modified, no reference kept). An empty object compiles
 * to NULL (matches everything). Returns 0 or RT_EINVAL / RT_E2BIG with a message in err ("filters.severity:
 * value must be a string, number, bool or array of them"); *out is NULL on failure. err may be NULL.
 */
int rt_filter_compile_simple(const json_t *obj, rt_filter_t **out, char *err, size_t errlen);
/**
 * Compiles query-string pairs (repeated keys are any of) into the simple form; n == 0 compiles to NULL.
 * The pairs are copied. Errors as rt_filter_compile_simple ("filter.severity: value longer than 1024 bytes").
 */
int rt_filter_compile_query(const rt_filter_pair_t *pairs, size_t n, rt_filter_t **out, char *err, size_t errlen);
/**
 * Compiles a Centrifuge FilterNode tree (also used for Centrifuge `tf`); never NULL on success. Errors as
 * rt_filter_compile_simple (`filter.nodes[0]: unknown cmp "foo"`).
 */
int rt_filter_compile_tree(const json_t *node, rt_filter_t **out, char *err, size_t errlen);
/** Combines two filters with AND, taking ownership of both (either may be NULL: the result is then the other). */
rt_filter_t *rt_filter_and(rt_filter_t *a, rt_filter_t *b);
/** True when ev passes f. A NULL filter matches every event. Allocates nothing; thread-safe. */
bool rt_filter_match(const rt_filter_t *f, const rt_event_t *ev);
/** Frees a compiled filter (NULL is fine). */
void rt_filter_free(rt_filter_t *f);

#endif
