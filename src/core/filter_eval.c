/*
 * Matching a compiled filter against an event. Runs on any number of threads at once over the same
 * filter and event: it only reads both, and keeps what it computes (a number's text form) on the stack.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/filter-private.h"

/* A field resolved from the event. Arrays, objects and null are not scalars: they count as absent, the same
 * as a field missing from `data`, which is also what the Centrifuge tags built from the event would say. */
enum { FIELD_ABSENT, FIELD_STRING, FIELD_INT, FIELD_REAL, FIELD_TRUE, FIELD_FALSE };

typedef struct st_field_t {
    int kind;
    const char *s; /* FIELD_STRING */
    size_t len;
    const json_t *json; /* FIELD_INT, FIELD_REAL */
} field_t;

static size_t format_int(json_int_t v, char *buf)
{
    char tmp[24];
    size_t n = 0, len = 0;
    /* Work on the negative side so INT64_MIN needs no special case. */
    json_int_t neg = v < 0 ? v : -v;
    do {
        tmp[n++] = (char)('0' - neg % 10);
        neg /= 10;
    } while (neg != 0);
    if (v < 0)
        buf[len++] = '-';
    while (n > 0)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

/*
 * The shortest text that reads back as the same double (so 0.1 is "0.1", not jansson's default "0.10000000000000001"),
 * in jansson's spelling otherwise: "1.0" rather than "1", "1e20" rather than "1e+20".
 */
static size_t format_real(double d, char *buf)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, RT__FILTER_NUM_TEXT_MAX, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    char *e = strchr(buf, 'e');
    if (e != NULL) {
        char *digits = e + 1, *w = e + 1;
        if (*digits == '-')
            digits = ++w;
        else if (*digits == '+')
            digits++;
        while (digits[0] == '0' && digits[1] != '\0')
            digits++;
        memmove(w, digits, strlen(digits) + 1);
    } else if (strchr(buf, '.') == NULL && strspn(buf, "-0123456789") == strlen(buf)) {
        strcat(buf, ".0");
    }
    return strlen(buf);
}

size_t rt__filter_format_number(const json_t *num, char *buf)
{
    if (json_is_integer(num))
        return format_int(json_integer_value(num), buf);
    return format_real(json_real_value(num), buf);
}

static size_t skip_digits(const char *s, size_t i, size_t len)
{
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

bool rt__filter_parse_number(const char *s, size_t len, rt_filter_num_t *out)
{
    size_t i = 0, start;
    bool integral = true;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    start = i;
    i = skip_digits(s, i, len);
    size_t mantissa_digits = i - start;
    if (i < len && s[i] == '.') {
        integral = false;
        start = ++i;
        i = skip_digits(s, i, len);
        mantissa_digits += i - start;
    }
    if (mantissa_digits == 0)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        integral = false;
        if (++i < len && (s[i] == '-' || s[i] == '+'))
            i++;
        start = i;
        i = skip_digits(s, i, len);
        if (i == start)
            return false;
    }
    if (i != len)
        return false;
    if (integral) {
        errno = 0;
        long long v = strtoll(s, NULL, 10);
        if (errno == 0) {
            *out = (rt_filter_num_t){.is_int = true, .i = v, .d = (double)v};
            return true;
        }
    }
    *out = (rt_filter_num_t){.is_int = false, .d = strtod(s, NULL)};
    return true;
}

static int num_cmp(const rt_filter_num_t *a, const rt_filter_num_t *b)
{
    if (a->is_int && b->is_int)
        return (a->i > b->i) - (a->i < b->i);
    return (a->d > b->d) - (a->d < b->d);
}

static void resolve(const rt_filter_t *leaf, const rt_event_t *ev, field_t *f)
{
    *f = (field_t){.kind = FIELD_ABSENT};
    if (leaf->leaf.is_type) {
        if (ev->type != NULL) {
            f->kind = FIELD_STRING;
            f->s = ev->type;
            f->len = strlen(ev->type);
        }
        return;
    }
    const json_t *j = ev->data;
    for (size_t i = 0; i < leaf->leaf.n_segs && j != NULL; i++)
        j = json_object_get(j, leaf->leaf.segs[i]); /* NULL for a non-object */
    if (j == NULL)
        return;
    switch (json_typeof(j)) {
    case JSON_STRING:
        f->kind = FIELD_STRING;
        f->s = json_string_value(j);
        f->len = json_string_length(j);
        break;
    case JSON_INTEGER:
        f->kind = FIELD_INT;
        f->json = j;
        break;
    case JSON_REAL:
        f->kind = FIELD_REAL;
        f->json = j;
        break;
    case JSON_TRUE:
        f->kind = FIELD_TRUE;
        break;
    case JSON_FALSE:
        f->kind = FIELD_FALSE;
        break;
    default:
        break;
    }
}

/* The field as text: a string as is, a number or bool as its JSON text. */
static const char *field_text(const field_t *f, char *buf, size_t *len)
{
    switch (f->kind) {
    case FIELD_STRING:
        *len = f->len;
        return f->s;
    case FIELD_INT:
    case FIELD_REAL:
        *len = rt__filter_format_number(f->json, buf);
        return buf;
    case FIELD_TRUE:
        *len = 4;
        return "true";
    default:
        *len = 5;
        return "false";
    }
}

static bool field_number(const field_t *f, rt_filter_num_t *out)
{
    switch (f->kind) {
    case FIELD_INT:
        *out = (rt_filter_num_t){.is_int = true, .i = json_integer_value(f->json), .d = (double)json_integer_value(f->json)};
        return true;
    case FIELD_REAL:
        *out = (rt_filter_num_t){.is_int = false, .d = json_real_value(f->json)};
        return true;
    case FIELD_STRING:
        return rt__filter_parse_number(f->s, f->len, out);
    default:
        return false;
    }
}

static bool json_equal_value(const rt_filter_value_t *v, const field_t *f)
{
    switch (v->json_type) {
    case JSON_STRING:
        return f->kind == FIELD_STRING && f->len == v->len && memcmp(f->s, v->text, v->len) == 0;
    case JSON_INTEGER:
    case JSON_REAL: {
        rt_filter_num_t n;
        return (f->kind == FIELD_INT || f->kind == FIELD_REAL) && field_number(f, &n) && num_cmp(&n, &v->num) == 0;
    }
    case JSON_TRUE:
        return f->kind == FIELD_TRUE;
    default:
        return f->kind == FIELD_FALSE;
    }
}

static bool any_text_equal(const rt_filter_t *leaf, const char *s, size_t len)
{
    for (size_t i = 0; i < leaf->leaf.n_values; i++)
        if (leaf->leaf.values[i].len == len && memcmp(leaf->leaf.values[i].text, s, len) == 0)
            return true;
    return false;
}

static bool match_leaf(const rt_filter_t *leaf, const rt_event_t *ev)
{
    field_t f;
    resolve(leaf, ev, &f);
    const rt_filter_value_t *v = leaf->leaf.values; /* the first (only) value of single-valued comparisons */

    switch (leaf->cmp) {
    case RT_FILTER_CMP_EX:
        return f.kind != FIELD_ABSENT;
    case RT_FILTER_CMP_NEX:
        return f.kind == FIELD_ABSENT;
    case RT_FILTER_CMP_JSON_ANY:
        for (size_t i = 0; i < leaf->leaf.n_values; i++)
            if (json_equal_value(&leaf->leaf.values[i], &f))
                return true;
        return false;
    case RT_FILTER_CMP_LT:
    case RT_FILTER_CMP_LTE:
    case RT_FILTER_CMP_GT:
    case RT_FILTER_CMP_GTE: {
        rt_filter_num_t n;
        if (!field_number(&f, &n))
            return false;
        int c = num_cmp(&n, &v->num);
        return leaf->cmp == RT_FILTER_CMP_LT    ? c < 0
               : leaf->cmp == RT_FILTER_CMP_LTE ? c <= 0
               : leaf->cmp == RT_FILTER_CMP_GT  ? c > 0
                                                : c >= 0;
    }
    default:
        break;
    }

    /* Text comparisons. As in Centrifuge, neq and nin are the negations of eq and in, so they hold for an absent field. */
    if (f.kind == FIELD_ABSENT)
        return leaf->cmp == RT_FILTER_CMP_NEQ || leaf->cmp == RT_FILTER_CMP_NIN;
    char buf[RT__FILTER_NUM_TEXT_MAX];
    size_t len;
    const char *s = field_text(&f, buf, &len);
    switch (leaf->cmp) {
    case RT_FILTER_CMP_EQ:
    case RT_FILTER_CMP_IN:
        return any_text_equal(leaf, s, len);
    case RT_FILTER_CMP_NEQ:
    case RT_FILTER_CMP_NIN:
        return !any_text_equal(leaf, s, len);
    case RT_FILTER_CMP_SW:
        return len >= v->len && memcmp(s, v->text, v->len) == 0;
    case RT_FILTER_CMP_EW:
        return len >= v->len && memcmp(s + len - v->len, v->text, v->len) == 0;
    case RT_FILTER_CMP_CT:
        return v->len == 0 || memmem(s, len, v->text, v->len) != NULL;
    default:
        return false;
    }
}

bool rt_filter_match(const rt_filter_t *f, const rt_event_t *ev)
{
    if (f == NULL)
        return true;
    if (ev == NULL)
        return false;
    switch (f->op) {
    case RT_FILTER_OP_LEAF:
        return match_leaf(f, ev);
    case RT_FILTER_OP_AND:
        for (size_t i = 0; i < f->logic.n; i++)
            if (!rt_filter_match(f->logic.children[i], ev))
                return false;
        return true;
    case RT_FILTER_OP_OR:
        for (size_t i = 0; i < f->logic.n; i++)
            if (rt_filter_match(f->logic.children[i], ev))
                return true;
        return false;
    default:
        return !rt_filter_match(f->logic.children[0], ev);
    }
}
