/*
 * The compiled filter shared by filter_compile.c and filter_eval.c.
 *
 * Every form compiles into one tree of nodes. Logical nodes (and / or / not) own their children; a
 * leaf names one field (the event type, or a path into `data` split into segments at compile time)
 * and a comparison against a list of values. Nothing here changes after compilation, so matching
 * only reads.
 */
#ifndef RT_CORE_FILTER_PRIVATE_H
#define RT_CORE_FILTER_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "realtime/filter.h"

enum { RT_FILTER_OP_AND, RT_FILTER_OP_OR, RT_FILTER_OP_NOT, RT_FILTER_OP_LEAF };

enum {
    RT_FILTER_CMP_EQ,
    RT_FILTER_CMP_NEQ,
    RT_FILTER_CMP_IN,
    RT_FILTER_CMP_NIN,
    RT_FILTER_CMP_EX,
    RT_FILTER_CMP_NEX,
    RT_FILTER_CMP_SW,
    RT_FILTER_CMP_EW,
    RT_FILTER_CMP_CT,
    RT_FILTER_CMP_LT,
    RT_FILTER_CMP_LTE,
    RT_FILTER_CMP_GT,
    RT_FILTER_CMP_GTE,
    /* The simple form from JSON: some value equals the field by JSON type. (The simple form from a query
     * string compiles to RT_FILTER_CMP_IN: text against the field's text form.) */
    RT_FILTER_CMP_JSON_ANY,
};

/* A number as an integer when it is one that fits int64, else as a double. */
typedef struct st_rt_filter_num_t {
    bool is_int;
    int64_t i;
    double d;
} rt_filter_num_t;

typedef struct st_rt_filter_value_t {
    char *text; /* the string, or the JSON text of a number or bool; NUL-terminated */
    size_t len;
    int json_type;       /* JSON_STRING, JSON_INTEGER, JSON_REAL, JSON_TRUE or JSON_FALSE (JSON_ANY compares by it) */
    rt_filter_num_t num; /* numbers for JSON_ANY; the operand of lt lte gt gte */
} rt_filter_value_t;

struct st_rt_filter_t {
    uint8_t op;
    uint8_t cmp; /* leaves */
    union {
        struct {
            rt_filter_t **children;
            size_t n;
        } logic;
        struct {
            bool is_type;   /* the key is `type`: the event type, not a data field */
            uint8_t n_segs; /* 1..RT_FILTER_MAX_DEPTH */
            char *key;      /* the key with its dots replaced by NULs; segs point into it */
            const char *segs[RT_FILTER_MAX_DEPTH];
            rt_filter_value_t *values;
            size_t n_values;
        } leaf;
    };
};

/* Longest text form of a number: "-9223372036854775808", or %.17g of a double plus ".0". */
#define RT__FILTER_NUM_TEXT_MAX 40

/* Writes the JSON text of an integer or real json_t into buf (RT__FILTER_NUM_TEXT_MAX bytes), returns its length. */
size_t rt__filter_format_number(const json_t *num, char *buf);
/* Parses text (NUL at s[len]) as a decimal number: sign, digits, fraction, exponent; false when it is not one. */
bool rt__filter_parse_number(const char *s, size_t len, rt_filter_num_t *out);

#endif
