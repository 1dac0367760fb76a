#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "realtime/channel.h"
#include "realtime/error.h"
#include "net/http.h"
#include "protocol/native_sub.h"
#include "core/token.h"
#include "util/mem.h"

const char rt_native_query_id[] = "query";

static int fail(rt_native_error_t *err, int rc, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(rt_native_error_t *err, int rc, const char *code, const char *fmt, ...)
{
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return rc;
}

/* Channel names are at most 255 bytes; a longer one is shown cut, so messages stay readable. */
#define SHOWN(len) ((int)((len) > 80 ? 80 : (len)))

/* Appends one channel after validating it; duplicates are dropped. */
static int add_channel(rt_native_sub_t *sub, const char *name, size_t len, const char *where, rt_native_error_t *err)
{
    if (!rt_pattern_valid(name, len))
        return fail(err, RT_EINVAL, "invalid_channel", "%s: invalid channel \"%.*s%s\"", where, SHOWN(len), name,
                    len > 80 ? "…" : "");
    for (size_t i = 0; i < sub->n_channels; i++)
        if (strlen(sub->channels[i]) == len && memcmp(sub->channels[i], name, len) == 0)
            return 0;
    if (sub->n_channels == RT_NATIVE_SUB_MAX_CHANNELS)
        return fail(err, RT_E2BIG, "limit_exceeded", "channels: more than %d in one subscription", RT_NATIVE_SUB_MAX_CHANNELS);
    if (sub->n_channels % 8 == 0)
        sub->channels = rt_mem_realloc(sub->channels, (sub->n_channels + 8) * sizeof(*sub->channels));
    sub->channels[sub->n_channels++] = rt_strndup(name, len);
    return 0;
}

/* channels=a,b: empty items (a trailing comma) are skipped. */
static int add_channel_list(rt_native_sub_t *sub, const char *list, rt_native_error_t *err)
{
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len != 0) {
            int r = add_channel(sub, p, len, "channels", err);
            if (r != 0)
                return r;
        }
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

static int compile_tree_text(const char *text, rt_filter_t **out, rt_native_error_t *err)
{
    json_error_t jerr;
    json_t *tree = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (tree == NULL)
        return fail(err, RT_EINVAL, "invalid_filter", "filter: invalid JSON: %s", jerr.text);
    int r = rt_filter_compile_tree(tree, out, err->message, sizeof(err->message));
    json_decref(tree);
    if (r != 0)
        err->code = "invalid_filter";
    return r;
}

typedef struct st_query_filters_t {
    rt_filter_pair_t *pairs;
    size_t n;
    rt_filter_t *tree;
} query_filters_t;

static void query_filters_free(query_filters_t *qf)
{
    for (size_t i = 0; i < qf->n; i++) {
        free((char *)qf->pairs[i].key);
        free((char *)qf->pairs[i].value);
    }
    free(qf->pairs);
    rt_filter_free(qf->tree);
}

/* Handles one decoded parameter. */
static int query_param(rt_native_sub_t *sub, query_filters_t *qf, const char *key, const char *value, rt_native_error_t *err)
{
    if (strcmp(key, "channels") == 0)
        return add_channel_list(sub, value, err);
    if (strncmp(key, "filter.", 7) == 0) {
        if (qf->n == RT_FILTER_MAX_VALUES)
            return fail(err, RT_E2BIG, "invalid_filter", "filter: more than %d values", RT_FILTER_MAX_VALUES);
        if (qf->n % 8 == 0)
            qf->pairs = rt_mem_realloc(qf->pairs, (qf->n + 8) * sizeof(*qf->pairs));
        qf->pairs[qf->n++] = (rt_filter_pair_t){rt_strdup(key + 7), rt_strdup(value)};
        return 0;
    }
    if (strcmp(key, "filter") == 0) {
        if (qf->tree != NULL)
            return fail(err, RT_EINVAL, "invalid_filter", "filter: given more than once");
        return compile_tree_text(value, &qf->tree, err);
    }
    if (strcmp(key, "last_event_id") == 0) {
        free(sub->last_event_id);
        sub->last_event_id = value[0] != '\0' ? rt_strdup(value) : NULL;
    } else if (strcmp(key, "token") == 0) {
        free(sub->token);
        sub->token = value[0] != '\0' ? rt_strdup(value) : NULL;
    }
    return 0;
}

int rt_native_sub_from_query(const char *query, rt_native_sub_t *out, rt_native_error_t *err)
{
    *out = (rt_native_sub_t){.id = (char *)rt_native_query_id}; /* never written through */
    if (query == NULL)
        query = "";
    /* Decoding never lengthens, so buffers the size of the query never truncate. */
    size_t size = strlen(query) + 1;
    char *key = rt_mem_alloc(size), *value = rt_mem_alloc(size);
    query_filters_t qf = {0};
    int r = 0;
    for (size_t pos = 0; r == 0 && rt_http_query_next(query, &pos, key, size, value, size);)
        r = query_param(out, &qf, key, value, err);
    free(key);
    free(value);
    if (r == 0 && qf.n != 0) {
        rt_filter_t *simple = NULL;
        if ((r = rt_filter_compile_query(qf.pairs, qf.n, &simple, err->message, sizeof(err->message))) != 0)
            err->code = "invalid_filter";
        out->filter = simple;
    }
    if (r == 0) {
        out->filter = rt_filter_and(out->filter, qf.tree);
        qf.tree = NULL;
    }
    query_filters_free(&qf);
    if (r != 0)
        rt_native_sub_dispose(out);
    return r;
}

static int json_channels(rt_native_sub_t *sub, const json_t *channels, rt_native_error_t *err)
{
    if (!json_is_array(channels) || json_array_size(channels) == 0)
        return fail(err, RT_EINVAL, "bad_request", "channels: must be a non-empty array of channel names");
    if (json_array_size(channels) > RT_NATIVE_SUB_MAX_CHANNELS)
        return fail(err, RT_E2BIG, "limit_exceeded", "channels: more than %d in one subscription", RT_NATIVE_SUB_MAX_CHANNELS);
    size_t i;
    const json_t *ch;
    json_array_foreach(channels, i, ch) {
        char where[32];
        snprintf(where, sizeof(where), "channels[%zu]", i);
        if (!json_is_string(ch))
            return fail(err, RT_EINVAL, "invalid_channel", "%s: must be a string", where);
        int r = add_channel(sub, json_string_value(ch), json_string_length(ch), where, err);
        if (r != 0)
            return r;
    }
    return 0;
}

static int json_filters(rt_native_sub_t *sub, const json_t *msg, rt_native_error_t *err)
{
    const json_t *simple = json_object_get(msg, "filters"), *tree = json_object_get(msg, "filter");
    rt_filter_t *a = NULL, *b = NULL;
    int r = 0;
    if (simple != NULL && !json_is_null(simple))
        r = rt_filter_compile_simple(simple, &a, err->message, sizeof(err->message));
    if (r == 0 && tree != NULL && !json_is_null(tree))
        r = rt_filter_compile_tree(tree, &b, err->message, sizeof(err->message));
    if (r != 0) {
        rt_filter_free(a);
        err->code = "invalid_filter";
        return r;
    }
    sub->filter = rt_filter_and(a, b);
    return 0;
}

static int json_optional_string(const json_t *msg, const char *name, size_t max, char **out, rt_native_error_t *err)
{
    const json_t *v = json_object_get(msg, name);
    if (v == NULL || json_is_null(v))
        return 0;
    size_t len = json_string_length(v);
    if (!json_is_string(v) || len > max || memchr(json_string_value(v), '\0', len) != NULL)
        return fail(err, RT_EINVAL, "bad_request", "%s: must be a string of at most %zu bytes", name, max);
    if (len != 0)
        *out = rt_strndup(json_string_value(v), len);
    return 0;
}

int rt_native_sub_from_json(const json_t *msg, rt_native_sub_t *out, rt_native_error_t *err)
{
    *out = (rt_native_sub_t){0};
    int r;
    if (!json_is_object(msg))
        r = fail(err, RT_EINVAL, "bad_request", "subscribe: must be a JSON object");
    else if ((r = json_optional_string(msg, "id", RT_NATIVE_SUB_ID_MAX, &out->id, err)) != 0)
        ;
    else if ((r = json_channels(out, json_object_get(msg, "channels"), err)) != 0)
        ;
    else if ((r = json_filters(out, msg, err)) != 0)
        ;
    else
        r = json_optional_string(msg, "last_event_id", RT_EVENT_ID_MAX, &out->last_event_id, err);
    if (r != 0)
        rt_native_sub_dispose(out);
    return r;
}

void rt_native_sub_dispose(rt_native_sub_t *sub)
{
    for (size_t i = 0; i < sub->n_channels; i++)
        free(sub->channels[i]);
    free(sub->channels);
    rt_filter_free(sub->filter);
    rt_native_sub_free_id(sub->id);
    free(sub->last_event_id);
    free(sub->token);
    *sub = (rt_native_sub_t){0};
}

const char *rt_native_token(const rt_native_sub_t *sub, const rt_http_request_t *req)
{
    if (sub->token != NULL)
        return sub->token;
    const char *v = rt_http_header(req, "authorization");
    if (v == NULL || strncasecmp(v, "bearer ", 7) != 0)
        return NULL;
    for (v += 7; *v == ' '; v++)
        ;
    return *v != '\0' ? v : NULL;
}

int rt_native_check_token(rt_token_verifier_t *tokens, const char *token, rt_token_claims_t *claims, rt_native_error_t *err)
{
    memset(claims, 0, sizeof(*claims));
    if (token == NULL)
        return 0;
    if (!rt_token_verifier_has_keys(tokens))
        return fail(err, RT_EPERM, "unauthorized",
                    "token: no token secret or key is configured (or the JWK set is not fetched yet), so no token can be verified");
    char why[128] = "invalid token";
    int r = rt_token_verify(tokens, token, (int64_t)time(NULL), claims, why, sizeof(why));
    if (r != 0) {
        rt_token_claims_free(claims);
        return fail(err, RT_EPERM, "unauthorized", "%s", r == RT_ERANGE ? "token expired" : why);
    }
    return 0;
}

rt_grant_t rt_native_grant(const rt_token_claims_t *claims)
{
    return (rt_grant_t){.admin = claims->admin, .subscribe = (const char *const *)claims->subscribe,
                        .n_subscribe = claims->n_subscribe, .channels = (const char *const *)claims->channels,
                        .n_channels = claims->n_channels};
}

int rt_native_sub_check_access(const rt_native_sub_t *sub, const rt_access_t *a, const rt_grant_t *g, rt_native_error_t *err)
{
    for (size_t i = 0; i < sub->n_channels; i++) {
        const char *why, *ch = sub->channels[i];
        if (!rt_access_read(a, g, ch, strlen(ch), &why))
            return fail(err, RT_EPERM, "permission_denied", "channel \"%s\": %s", ch, why);
    }
    return 0;
}

bool rt_native_sub_drop_resume(rt_native_sub_t *sub, const rt_access_t *a)
{
    if (sub->last_event_id == NULL)
        return false;
    for (size_t i = 0; i < sub->n_channels; i++) {
        const char *ch = sub->channels[i];
        if (rt_namespace_any_off(a, ch, strlen(ch), offsetof(rt_namespace_t, history))) {
            free(sub->last_event_id);
            sub->last_event_id = NULL;
            return true;
        }
    }
    return false;
}

int rt_native_sub_check_size(const rt_native_sub_t *sub, size_t max_channels, rt_native_error_t *err)
{
    if (sub->n_channels <= max_channels)
        return 0;
    return fail(err, RT_E2BIG, "limit_exceeded", "channels: %zu in one subscription, at most %zu (max_channels_per_subscribe)",
                sub->n_channels, max_channels);
}

int rt_native_error_status(const rt_native_error_t *err)
{
    if (strcmp(err->code, "limit_exceeded") == 0)
        return 429;
    if (strcmp(err->code, "unauthorized") == 0)
        return 401;
    if (strcmp(err->code, "permission_denied") == 0)
        return 403;
    return 400;
}

bool rt_native_sub_pred(const rt_event_t *ev, void *ctx)
{
    return rt_subscription_matches(ctx, ev);
}

int rt_native_sub_attach(rt_native_sub_t *sub, rt_broadcaster_t *b, rt_history_t *h, rt_client_t *client,
                         rt_subscription_t **out_sub, rt_event_list_t *replay, uint64_t *upto)
{
    *replay = (rt_event_list_t){0};
    *upto = 0;
    rt_filter_t *filter = sub->filter;
    sub->filter = NULL;
    *out_sub = rt_broadcaster_subscribe(b, client, (const char *const *)sub->channels, sub->n_channels, filter);
    if (*out_sub == NULL)
        return RT_EINVAL;
    /* Read after subscribing: anything newer than *upto reaches the client live. */
    *upto = rt_history_last_seq(h);
    if (sub->last_event_id == NULL)
        return 0;
    if (*upto == 0)
        return RT_ERANGE; /* nothing in history, so the id cannot be in it */
    return rt_history_after_id(h, sub->last_event_id, *upto, rt_native_sub_pred, *out_sub, replay);
}
