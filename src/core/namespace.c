/* The `namespaces` configuration: parsing, printing, lookup. The decisions made with it are in access.c. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include "core/access.h"
#include "realtime/channel.h"
#include "util/mem.h"

const rt_namespace_t rt_namespace_defaults = {.history = true, .presence = true, .join_leave = true};

static const struct {
    const char *name;
    size_t offset;
} options[] = {
    {"anonymous", offsetof(rt_namespace_t, anonymous)},   {"history", offsetof(rt_namespace_t, history)},
    {"presence", offsetof(rt_namespace_t, presence)},     {"join_leave", offsetof(rt_namespace_t, join_leave)},
    {"client_publish", offsetof(rt_namespace_t, client_publish)}, {"admin_only", offsetof(rt_namespace_t, admin_only)},
};

const rt_namespace_t *rt_namespace_of(const rt_access_t *a, const char *channel, size_t len)
{
    for (size_t i = 0; i < a->n_namespaces; i++) {
        const char *p = a->namespaces[i].pattern;
        if (rt_pattern_match(p, strlen(p), channel, len))
            return &a->namespaces[i];
    }
    return &rt_namespace_defaults;
}

static int parse_one(json_t *obj, size_t index, rt_namespace_t *ns, char *msg, size_t n)
{
    *ns = rt_namespace_defaults;
    if (!json_is_object(obj)) {
        snprintf(msg, n, "entry %zu must be an object with a \"pattern\"", index);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "pattern") == 0) {
            if (!json_is_string(v) || !rt_pattern_valid(json_string_value(v), json_string_length(v))) {
                snprintf(msg, n, "entry %zu: \"pattern\" must be a channel name or pattern (segments, * and >)", index);
                return -1;
            }
            free(ns->pattern);
            ns->pattern = rt_strdup(json_string_value(v));
            continue;
        }
        size_t i = 0;
        while (i < RT_ARRAY_SIZE(options) && strcmp(options[i].name, key) != 0)
            i++;
        if (i == RT_ARRAY_SIZE(options)) {
            snprintf(msg, n, "entry %zu: unknown option \"%.64s\" (pattern, anonymous, history, presence, join_leave, "
                     "client_publish, admin_only)", index, key);
            return -1;
        }
        if (!json_is_boolean(v)) {
            snprintf(msg, n, "entry %zu: \"%s\" must be true or false", index, key);
            return -1;
        }
        *(bool *)((char *)ns + options[i].offset) = json_is_true(v);
    }
    if (ns->pattern == NULL) {
        snprintf(msg, n, "entry %zu has no \"pattern\"", index);
        return -1;
    }
    return 0;
}

int rt_namespaces_parse(json_t *arr, rt_namespace_t **out, size_t *count, char *msg, size_t n)
{
    if (!json_is_array(arr)) {
        snprintf(msg, n, "must be a JSON array of objects, e.g. [{\"pattern\":\"public.>\",\"anonymous\":true}]");
        return -1;
    }
    size_t len = json_array_size(arr);
    rt_namespace_t *list = rt_mem_calloc(len + 1, sizeof(*list));
    for (size_t i = 0; i < len; i++) {
        if (parse_one(json_array_get(arr, i), i, &list[i], msg, n) != 0) {
            rt_namespaces_free(list, i + 1);
            return -1;
        }
    }
    *out = list;
    *count = len;
    return 0;
}

json_t *rt_namespaces_json(const rt_namespace_t *list, size_t count)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < count; i++) {
        json_t *obj = json_pack("{s:s}", "pattern", list[i].pattern);
        for (size_t j = 0; j < RT_ARRAY_SIZE(options); j++)
            json_object_set_new(obj, options[j].name, json_boolean(*(const bool *)((const char *)&list[i] + options[j].offset)));
        json_array_append_new(arr, obj);
    }
    return arr;
}

void rt_namespaces_free(rt_namespace_t *list, size_t count)
{
    for (size_t i = 0; list != NULL && i < count; i++)
        free(list[i].pattern);
    free(list);
}
