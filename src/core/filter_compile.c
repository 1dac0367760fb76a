/*
 * Compiling the filter forms (simple JSON object, query pairs, Centrifuge FilterNode tree) into one tree of
 * nodes. Everything matching needs is prepared here: keys split into segments, values copied with their
 * text form and, for numbers, their numeric value. Every bound is checked before the memory it guards is
 * allocated, so a hostile filter costs at most a few KB.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "realtime/error.h"
#include "util/mem.h"
#include "core/filter-private.h"

/* Keys and values are quoted in messages up to this many bytes. */
#define QUOTE_MAX 64
#define Q(len) (int)((len) < QUOTE_MAX ? (len) : QUOTE_MAX)

typedef struct st_errbuf_t {
    char *buf;
    size_t len;
} errbuf_t;

static int fail(errbuf_t *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(errbuf_t *e, int code, const char *fmt, ...)
{
    if (e->buf != NULL && e->len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->buf, e->len, fmt, ap);
        va_end(ap);
    }
    return code;
}

static rt_filter_t *new_logic(int op, size_t n)
{
    rt_filter_t *f = rt_mem_calloc(1, sizeof(*f));
    f->op = (uint8_t)op;
    f->logic.children = rt_mem_calloc(n, sizeof(*f->logic.children));
    return f;
}

static rt_filter_t *new_leaf(int cmp)
{
    rt_filter_t *f = rt_mem_calloc(1, sizeof(*f));
    f->op = RT_FILTER_OP_LEAF;
    f->cmp = (uint8_t)cmp;
    return f;
}

void rt_filter_free(rt_filter_t *f)
{
    if (f == NULL)
        return;
    if (f->op == RT_FILTER_OP_LEAF) {
        for (size_t i = 0; i < f->leaf.n_values; i++)
            free(f->leaf.values[i].text);
        free(f->leaf.values);
        free(f->leaf.key);
    } else {
        for (size_t i = 0; i < f->logic.n; i++)
            rt_filter_free(f->logic.children[i]);
        free(f->logic.children);
    }
    free(f);
}

/* An AND over one node is that node. */
static rt_filter_t *unwrap(rt_filter_t *f)
{
    if (f->op != RT_FILTER_OP_AND || f->logic.n != 1)
        return f;
    rt_filter_t *only = f->logic.children[0];
    free(f->logic.children);
    free(f);
    return only;
}

static void append_and(rt_filter_t *dst, rt_filter_t *src)
{
    if (src->op != RT_FILTER_OP_AND) {
        dst->logic.children[dst->logic.n++] = src;
        return;
    }
    memcpy(dst->logic.children + dst->logic.n, src->logic.children, src->logic.n * sizeof(*src->logic.children));
    dst->logic.n += src->logic.n;
    free(src->logic.children);
    free(src);
}

rt_filter_t *rt_filter_and(rt_filter_t *a, rt_filter_t *b)
{
    if (a == NULL)
        return b;
    if (b == NULL)
        return a;
    size_t na = a->op == RT_FILTER_OP_AND ? a->logic.n : 1, nb = b->op == RT_FILTER_OP_AND ? b->logic.n : 1;
    rt_filter_t *f = new_logic(RT_FILTER_OP_AND, na + nb);
    append_and(f, a);
    append_and(f, b);
    return f;
}

/*
 * Sets the leaf's key: `type`, or a dotted path into `data` split into NUL-terminated segments. `where` names
 * the filter in messages.
 */
static int set_key(rt_filter_t *leaf, const char *key, size_t len, const char *where, errbuf_t *e)
{
    if (len > RT_FILTER_MAX_VALUE_LEN)
        return fail(e, RT_E2BIG, "%s: key longer than %d bytes", where, RT_FILTER_MAX_VALUE_LEN);
    if (len == 0)
        return fail(e, RT_EINVAL, "%s: empty key", where);
    if (memchr(key, '\0', len) != NULL)
        return fail(e, RT_EINVAL, "%s: key contains a NUL byte", where);
    size_t n_segs = 1;
    for (size_t i = 0; i < len; i++) {
        if (key[i] != '.')
            continue;
        if (i == 0 || i + 1 == len || key[i + 1] == '.')
            return fail(e, RT_EINVAL, "%s: invalid key \"%.*s\" (empty segment)", where, Q(len), key);
        n_segs++;
    }
    if (n_segs > RT_FILTER_MAX_DEPTH)
        return fail(e, RT_E2BIG, "%s: key \"%.*s\" has more than %d segments", where, Q(len), key, RT_FILTER_MAX_DEPTH);

    leaf->leaf.is_type = len == 4 && memcmp(key, "type", 4) == 0;
    leaf->leaf.key = rt_strndup(key, len);
    leaf->leaf.segs[0] = leaf->leaf.key;
    leaf->leaf.n_segs = 1;
    for (char *p = leaf->leaf.key; (p = strchr(p, '.')) != NULL;) {
        *p++ = '\0';
        leaf->leaf.segs[leaf->leaf.n_segs++] = p;
    }
    return 0;
}

/* Fills v from a JSON scalar: RT_EINVAL when j is not a string, number or bool, RT_E2BIG when it is too long. */
static int set_value(rt_filter_value_t *v, const json_t *j)
{
    char buf[RT__FILTER_NUM_TEXT_MAX];
    v->json_type = json_typeof(j);
    switch (json_typeof(j)) {
    case JSON_STRING:
        if (json_string_length(j) > RT_FILTER_MAX_VALUE_LEN)
            return RT_E2BIG;
        v->len = json_string_length(j);
        v->text = rt_strndup(json_string_value(j), v->len);
        return 0;
    case JSON_INTEGER:
    case JSON_REAL:
        v->len = rt__filter_format_number(j, buf);
        v->text = rt_strndup(buf, v->len);
        v->num = (rt_filter_num_t){
            .is_int = json_is_integer(j), .i = json_is_integer(j) ? json_integer_value(j) : 0, .d = json_number_value(j)};
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        v->text = rt_strdup(json_is_true(j) ? "true" : "false");
        v->len = strlen(v->text);
        return 0;
    default:
        return RT_EINVAL;
    }
}

/* The values of one simple-form key: a scalar or a non-empty array of them, matched by JSON type. */
static int simple_values(rt_filter_t *leaf, const char *key, size_t klen, const json_t *val, size_t *total, errbuf_t *e)
{
    size_t n = json_is_array(val) ? json_array_size(val) : 1;
    if (n == 0)
        return fail(e, RT_EINVAL, "filters.%.*s: array of values must not be empty", Q(klen), key);
    if (n > RT_FILTER_MAX_VALUES - *total)
        return fail(e, RT_E2BIG, "filters: more than %d values", RT_FILTER_MAX_VALUES);
    *total += n;
    leaf->leaf.values = rt_mem_calloc(n, sizeof(*leaf->leaf.values));
    for (size_t i = 0; i < n; i++) {
        const json_t *j = json_is_array(val) ? json_array_get(val, i) : val;
        int r = set_value(&leaf->leaf.values[i], j);
        if (r == RT_E2BIG)
            return fail(e, r, "filters.%.*s: value longer than %d bytes", Q(klen), key, RT_FILTER_MAX_VALUE_LEN);
        if (r != 0)
            return fail(e, r, "filters.%.*s: value must be a string, number, bool or array of them", Q(klen), key);
        leaf->leaf.n_values++;
    }
    return 0;
}

int rt_filter_compile_simple(const json_t *obj, rt_filter_t **out, char *err, size_t errlen)
{
    errbuf_t e = {err, errlen};
    *out = NULL;
    if (!json_is_object(obj))
        return fail(&e, RT_EINVAL, "filters: must be a JSON object");
    size_t n = json_object_size(obj), total = 0;
    if (n == 0)
        return 0;
    if (n > RT_FILTER_MAX_KEYS)
        return fail(&e, RT_E2BIG, "filters: more than %d keys", RT_FILTER_MAX_KEYS);

    /* jansson's iterators take a non-const object; they only read it. */
    json_t *o = (json_t *)obj;
    rt_filter_t *root = new_logic(RT_FILTER_OP_AND, n);
    for (void *it = json_object_iter(o); it != NULL; it = json_object_iter_next(o, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        rt_filter_t *leaf = new_leaf(RT_FILTER_CMP_JSON_ANY);
        root->logic.children[root->logic.n++] = leaf;
        int r;
        if ((r = set_key(leaf, key, klen, "filters", &e)) != 0 ||
            (r = simple_values(leaf, key, klen, json_object_iter_value(it), &total, &e)) != 0) {
            rt_filter_free(root);
            return r;
        }
    }
    *out = unwrap(root);
    return 0;
}

int rt_filter_compile_query(const rt_filter_pair_t *pairs, size_t n, rt_filter_t **out, char *err, size_t errlen)
{
    errbuf_t e = {err, errlen};
    uint8_t leaf_of[RT_FILTER_MAX_VALUES];
    size_t first_of[RT_FILTER_MAX_KEYS], count[RT_FILTER_MAX_KEYS] = {0}, n_leaves = 0;

    *out = NULL;
    if (n == 0)
        return 0;
    if (pairs == NULL)
        return fail(&e, RT_EINVAL, "filter: no pairs");
    if (n > RT_FILTER_MAX_VALUES)
        return fail(&e, RT_E2BIG, "filter: more than %d values", RT_FILTER_MAX_VALUES);

    /* Group repeated keys (any of), in order of first appearance. At most 256 pairs, so quadratic is fine. */
    for (size_t i = 0; i < n; i++) {
        if (pairs[i].key == NULL || pairs[i].value == NULL)
            return fail(&e, RT_EINVAL, "filter: pair %zu has no key or value", i);
        size_t j = 0;
        while (j < i && strcmp(pairs[j].key, pairs[i].key) != 0)
            j++;
        if (j < i) {
            leaf_of[i] = leaf_of[j];
        } else {
            if (n_leaves == RT_FILTER_MAX_KEYS)
                return fail(&e, RT_E2BIG, "filter: more than %d keys", RT_FILTER_MAX_KEYS);
            first_of[n_leaves] = i;
            leaf_of[i] = (uint8_t)n_leaves++;
        }
        count[leaf_of[i]]++;
    }

    rt_filter_t *root = new_logic(RT_FILTER_OP_AND, n_leaves);
    int r = 0;
    for (size_t k = 0; k < n_leaves; k++) {
        rt_filter_t *leaf = new_leaf(RT_FILTER_CMP_IN);
        root->logic.children[root->logic.n++] = leaf;
        leaf->leaf.values = rt_mem_calloc(count[k], sizeof(*leaf->leaf.values));
        const char *key = pairs[first_of[k]].key;
        if ((r = set_key(leaf, key, strlen(key), "filter", &e)) != 0)
            goto Error;
    }
    for (size_t i = 0; i < n; i++) {
        rt_filter_t *leaf = root->logic.children[leaf_of[i]];
        size_t len = strlen(pairs[i].value);
        if (len > RT_FILTER_MAX_VALUE_LEN) {
            size_t klen = strlen(pairs[i].key);
            r = fail(&e, RT_E2BIG, "filter.%.*s: value longer than %d bytes", Q(klen), pairs[i].key, RT_FILTER_MAX_VALUE_LEN);
            goto Error;
        }
        rt_filter_value_t *v = &leaf->leaf.values[leaf->leaf.n_values++];
        v->json_type = JSON_STRING;
        v->text = rt_strndup(pairs[i].value, len);
        v->len = len;
    }
    *out = unwrap(root);
    return 0;

Error:
    rt_filter_free(root);
    return r;
}

/* ---- the tree form ---- */

typedef struct st_tree_ctx_t {
    errbuf_t e;
    size_t nodes;
    size_t values;
    char path[192]; /* "filter.nodes[1].nodes[0]": where the node being compiled is, for messages */
} tree_ctx_t;

enum { ARG_VAL, ARG_VALS, ARG_NONE };

static const struct {
    const char *name;
    int cmp;
    int arg;
} cmps[] = {
    {"eq", RT_FILTER_CMP_EQ, ARG_VAL},    {"neq", RT_FILTER_CMP_NEQ, ARG_VAL}, {"in", RT_FILTER_CMP_IN, ARG_VALS},
    {"nin", RT_FILTER_CMP_NIN, ARG_VALS}, {"ex", RT_FILTER_CMP_EX, ARG_NONE},  {"nex", RT_FILTER_CMP_NEX, ARG_NONE},
    {"sw", RT_FILTER_CMP_SW, ARG_VAL},    {"ew", RT_FILTER_CMP_EW, ARG_VAL},   {"ct", RT_FILTER_CMP_CT, ARG_VAL},
    {"lt", RT_FILTER_CMP_LT, ARG_VAL},    {"lte", RT_FILTER_CMP_LTE, ARG_VAL}, {"gt", RT_FILTER_CMP_GT, ARG_VAL},
    {"gte", RT_FILTER_CMP_GTE, ARG_VAL},
};

/* A member, with JSON null read as absent. */
static const json_t *member(const json_t *j, const char *name)
{
    const json_t *m = json_object_get(j, name);
    return json_is_null(m) ? NULL : m;
}

/* Present and not empty: a protobuf-style encoder writes "" and [] for fields it has no value for. */
static bool is_set(const json_t *m)
{
    if (m == NULL)
        return false;
    if (json_is_string(m))
        return json_string_length(m) != 0;
    if (json_is_array(m))
        return json_array_size(m) != 0;
    return true;
}

static int compile_node(const json_t *j, unsigned depth, size_t pathlen, tree_ctx_t *ctx, rt_filter_t **out);

static int leaf_values(rt_filter_t *leaf, int arg, const json_t *val, const json_t *vals, tree_ctx_t *ctx)
{
    size_t n = arg == ARG_VAL ? 1 : arg == ARG_VALS ? json_array_size(vals) : 0;
    if (n > RT_FILTER_MAX_VALUES - ctx->values)
        return fail(&ctx->e, RT_E2BIG, "filter: more than %d values", RT_FILTER_MAX_VALUES);
    ctx->values += n;
    if (n == 0)
        return 0;
    leaf->leaf.values = rt_mem_calloc(n, sizeof(*leaf->leaf.values));
    for (size_t i = 0; i < n; i++) {
        rt_filter_value_t *v = &leaf->leaf.values[i];
        int r = set_value(v, arg == ARG_VAL ? val : json_array_get(vals, i));
        if (r == RT_E2BIG)
            return fail(&ctx->e, r, "%s: value longer than %d bytes", ctx->path, RT_FILTER_MAX_VALUE_LEN);
        if (r != 0)
            return fail(&ctx->e, r, "%s: %s must be a string, number or bool", ctx->path, arg == ARG_VAL ? "val" : "each of vals");
        leaf->leaf.n_values++;
        if (leaf->cmp >= RT_FILTER_CMP_LT && leaf->cmp <= RT_FILTER_CMP_GTE && !rt__filter_parse_number(v->text, v->len, &v->num))
            return fail(&ctx->e, RT_EINVAL, "%s: val must be a number for a numeric comparison, not \"%.*s\"", ctx->path, Q(v->len),
                        v->text);
    }
    return 0;
}

static int compile_leaf(const json_t *j, tree_ctx_t *ctx, rt_filter_t **out)
{
    const char *where = ctx->path;
    const json_t *cmp = member(j, "cmp"), *key = member(j, "key"), *val = member(j, "val"), *vals = member(j, "vals");

    if (is_set(member(j, "nodes")))
        return fail(&ctx->e, RT_EINVAL, "%s: a leaf (no op) must not have nodes", where);
    if (!is_set(cmp))
        return fail(&ctx->e, RT_EINVAL, "%s: a leaf needs cmp", where);
    if (!json_is_string(cmp))
        return fail(&ctx->e, RT_EINVAL, "%s: cmp must be a string", where);
    size_t c = 0, clen = json_string_length(cmp);
    while (c < RT_ARRAY_SIZE(cmps) && !(strlen(cmps[c].name) == clen && memcmp(cmps[c].name, json_string_value(cmp), clen) == 0))
        c++;
    if (c == RT_ARRAY_SIZE(cmps))
        return fail(&ctx->e, RT_EINVAL, "%s: unknown cmp \"%.*s\"", where, Q(clen), json_string_value(cmp));
    const char *name = cmps[c].name;
    int arg = cmps[c].arg;
    if (key == NULL || !json_is_string(key))
        return fail(&ctx->e, RT_EINVAL, "%s: a leaf needs key, a string", where);
    switch (arg) {
    case ARG_VAL:
        if (val == NULL)
            return fail(&ctx->e, RT_EINVAL, "%s: \"%s\" needs val", where, name);
        if (is_set(vals))
            return fail(&ctx->e, RT_EINVAL, "%s: \"%s\" takes val, not vals", where, name);
        break;
    case ARG_VALS:
        if (!json_is_array(vals))
            return fail(&ctx->e, RT_EINVAL, "%s: \"%s\" needs vals, an array", where, name);
        if (json_array_size(vals) == 0)
            return fail(&ctx->e, RT_EINVAL, "%s: \"%s\" needs at least one value in vals", where, name);
        if (is_set(val))
            return fail(&ctx->e, RT_EINVAL, "%s: \"%s\" takes vals, not val", where, name);
        break;
    default:
        if (is_set(val) || is_set(vals))
            return fail(&ctx->e, RT_EINVAL, "%s: \"%s\" takes no val or vals", where, name);
        break;
    }

    rt_filter_t *leaf = new_leaf(cmps[c].cmp);
    int r;
    if ((r = set_key(leaf, json_string_value(key), json_string_length(key), where, &ctx->e)) != 0 ||
        (r = leaf_values(leaf, arg, val, vals, ctx)) != 0) {
        rt_filter_free(leaf);
        return r;
    }
    *out = leaf;
    return 0;
}

static int compile_logic(const json_t *j, int op, const char *opname, unsigned depth, size_t pathlen, tree_ctx_t *ctx,
                         rt_filter_t **out)
{
    const char *where = ctx->path;
    const json_t *nodes = member(j, "nodes");

    if (is_set(member(j, "key")) || is_set(member(j, "cmp")) || is_set(member(j, "val")) || is_set(member(j, "vals")))
        return fail(&ctx->e, RT_EINVAL, "%s: \"%s\" must not have key, cmp, val or vals", where, opname);
    if (nodes != NULL && !json_is_array(nodes))
        return fail(&ctx->e, RT_EINVAL, "%s: nodes must be an array", where);
    size_t n = json_array_size(nodes); /* 0 for NULL */
    if (op == RT_FILTER_OP_NOT && n != 1)
        return fail(&ctx->e, RT_EINVAL, "%s: \"not\" needs exactly one node", where);
    if (n == 0)
        return fail(&ctx->e, RT_EINVAL, "%s: \"%s\" needs at least one node", where, opname);
    if (n > RT_FILTER_MAX_NODES - ctx->nodes)
        return fail(&ctx->e, RT_E2BIG, "filter: more than %d nodes", RT_FILTER_MAX_NODES);

    rt_filter_t *f = new_logic(op, n);
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(ctx->path + pathlen, sizeof(ctx->path) - pathlen, ".nodes[%zu]", i);
        size_t child_len = pathlen + (size_t)w < sizeof(ctx->path) ? pathlen + (size_t)w : sizeof(ctx->path) - 1;
        int r = compile_node(json_array_get(nodes, i), depth + 1, child_len, ctx, &f->logic.children[f->logic.n]);
        ctx->path[pathlen] = '\0';
        if (r != 0) {
            rt_filter_free(f);
            return r;
        }
        f->logic.n++;
    }
    *out = f;
    return 0;
}

static int compile_node(const json_t *j, unsigned depth, size_t pathlen, tree_ctx_t *ctx, rt_filter_t **out)
{
    const char *where = ctx->path;

    if (!json_is_object(j))
        return fail(&ctx->e, RT_EINVAL, "%s: must be a JSON object", where);
    if (++ctx->nodes > RT_FILTER_MAX_NODES)
        return fail(&ctx->e, RT_E2BIG, "filter: more than %d nodes", RT_FILTER_MAX_NODES);
    if (depth > RT_FILTER_MAX_DEPTH)
        return fail(&ctx->e, RT_E2BIG, "%s: nested deeper than %d levels", where, RT_FILTER_MAX_DEPTH);

    const json_t *op = member(j, "op");
    if (op != NULL && !json_is_string(op))
        return fail(&ctx->e, RT_EINVAL, "%s: op must be a string", where);
    const char *ops = op != NULL ? json_string_value(op) : "";
    size_t oplen = op != NULL ? json_string_length(op) : 0;
    if (oplen == 0)
        return compile_leaf(j, ctx, out);
    static const char *const names[] = {[RT_FILTER_OP_AND] = "and", [RT_FILTER_OP_OR] = "or", [RT_FILTER_OP_NOT] = "not"};
    for (int i = 0; i < (int)RT_ARRAY_SIZE(names); i++)
        if (strlen(names[i]) == oplen && memcmp(names[i], ops, oplen) == 0)
            return compile_logic(j, i, names[i], depth, pathlen, ctx, out);
    return fail(&ctx->e, RT_EINVAL, "%s: unknown op \"%.*s\"", where, Q(oplen), ops);
}

int rt_filter_compile_tree(const json_t *node, rt_filter_t **out, char *err, size_t errlen)
{
    tree_ctx_t ctx = {.e = {err, errlen}};
    *out = NULL;
    strcpy(ctx.path, "filter");
    return compile_node(node, 1, strlen(ctx.path), &ctx, out);
}
