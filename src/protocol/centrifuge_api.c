/*
 * Centrifugo's server HTTP API (centrifuge-v2.md section 13): POST /api/<method> with a JSON request, answered
 * 200 with {"result":…} or {"error":{"code":N,"message":…}} (with `X-Centrifugo-Error-Mode: transport`, errors
 * map to HTTP statuses instead). The legacy POST /api takes {"method":…,"params":…}; /api/batch runs several.
 *
 * publish and broadcast create one event (RT_EVENT_RAW_DATA, type tags.type or message.published) through
 * rt_server_publish, so native and SSE clients get it too; idempotency_key becomes the event id, which makes a
 * retried publish idempotent as on /api/events. disconnect, subscribe and unsubscribe reach connections on any
 * worker through their presence mailboxes: at once on the caller's own worker, at the next loop turn of another.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "realtime/channel.h"
#include "realtime/error.h"
#include "protocol/centrifuge.h"
#include "server/routes.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/mem.h"

#ifndef RT_VERSION
#define RT_VERSION "0.1.0"
#endif

typedef int (*api_fn)(rt_conn_t *c, const json_t *req, rt_buf_t *out);

static void append_json(rt_buf_t *out, json_t *v)
{
    char *t = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    rt_buf_appends(out, t != NULL ? t : "{}");
    free(t);
}

static bool channel_ok(const char *ch)
{
    return ch != NULL && rt_channel_valid(ch, strlen(ch)) && !rt_channel_is_all(ch, strlen(ch));
}

/* The event type a publish asks for: tags.type when it is a valid type. */
static const char *type_of(const json_t *req)
{
    const char *t = json_string_value(json_object_get(json_object_get(req, "tags"), "type"));
    return t != NULL && rt_event_type_valid(t, strlen(t)) ? t : NULL;
}

/*
 * Publishes data to channels[0..n) as one event. Returns 0 with *published (a reference: the new event, or the
 * original one for a repeated idempotency key), or an error code.
 */
static int publish(rt_server_t *s, const char *const *channels, size_t n, const json_t *req, rt_event_t **published)
{
    json_t *data = json_object_get(req, "data");
    const char *key = json_string_value(json_object_get(req, "idempotency_key"));
    rt_event_t *ev;
    char err[256];
    int r = rt_event_new(key != NULL && key[0] != '\0' ? key : NULL, type_of(req) != NULL ? type_of(req) : "message.published",
                         channels, n, data, &ev, err, sizeof(err));
    if (r != 0)
        return RT_CF_ERR_BAD_REQUEST;
    ev->flags |= RT_EVENT_RAW_DATA;
    rt_event_t *existing = NULL;
    r = rt_server_publish(s, ev, &existing);
    if (r == RT_EEXIST) {
        rt_event_unref(ev);
        ev = existing;
        /* The key names an earlier publication: a retry of it is answered with its positions, but one to other
         * channels would get an offset there that the publication never had (0), and its data would be lost. */
        for (size_t i = 0; i < n; i++) {
            if (rt_event_channel_index(ev, channels[i], strlen(channels[i])) < 0) {
                rt_event_unref(ev);
                return RT_CF_ERR_BAD_REQUEST;
            }
        }
    } else if (r != 0) {
        rt_event_unref(ev);
        return RT_CF_ERR_INTERNAL;
    }
    *published = ev;
    return 0;
}

/* {"offset":N,"epoch":"…"} of ev on channel. */
static void append_position(rt_buf_t *out, rt_server_t *s, const rt_event_t *ev, const char *channel)
{
    rt_stream_pos_t top;
    rt_history_stream_top(s->history, channel, &top);
    int ci = rt_event_channel_index(ev, channel, strlen(channel));
    rt_buf_appendf(out, "{\"offset\":%llu,\"epoch\":\"%s\"}", (unsigned long long)(ci >= 0 ? ev->offsets[ci] : 0), top.epoch);
}

static int api_publish(rt_conn_t *c, const json_t *req, rt_buf_t *out)
{
    const char *channel = json_string_value(json_object_get(req, "channel"));
    if (channel == NULL || json_object_get(req, "data") == NULL)
        return RT_CF_ERR_BAD_REQUEST;
    if (!channel_ok(channel))
        return RT_CF_ERR_UNKNOWN_CHANNEL;
    rt_server_t *s = rt_conn_server(c);
    rt_event_t *ev;
    int r = publish(s, &channel, 1, req, &ev);
    if (r != 0)
        return r;
    append_position(out, s, ev, channel);
    rt_event_unref(ev);
    return 0;
}

/* One event for the valid channels (up to RT_EVENT_MAX_CHANNELS per event); a result or an error per channel. */
static int api_broadcast(rt_conn_t *c, const json_t *req, rt_buf_t *out)
{
    const json_t *jchannels = json_object_get(req, "channels");
    size_t n = json_array_size(jchannels);
    if (n == 0 || json_object_get(req, "data") == NULL)
        return RT_CF_ERR_BAD_REQUEST;
    rt_server_t *s = rt_conn_server(c);
    const char **valid = rt_mem_calloc(n, sizeof(*valid));
    int *codes = rt_mem_calloc(n, sizeof(*codes));
    rt_event_t **evs = rt_mem_calloc(n, sizeof(*evs));
    size_t nv = 0;
    for (size_t i = 0; i < n; i++) {
        const char *ch = json_string_value(json_array_get(jchannels, i));
        bool dup = false;
        for (size_t j = 0; j < nv && !dup; j++)
            dup = ch != NULL && strcmp(valid[j], ch) == 0;
        if (!channel_ok(ch))
            codes[i] = ch == NULL ? RT_CF_ERR_BAD_REQUEST : RT_CF_ERR_UNKNOWN_CHANNEL;
        else if (!dup)
            valid[nv++] = ch;
    }
    json_t *noid = json_deep_copy(req);
    json_object_del(noid, "idempotency_key"); /* one key cannot name several events */
    for (size_t off = 0; off < nv; off += RT_EVENT_MAX_CHANNELS) {
        size_t k = nv - off < RT_EVENT_MAX_CHANNELS ? nv - off : RT_EVENT_MAX_CHANNELS;
        rt_event_t *ev;
        int r = publish(s, valid + off, k, off == 0 && nv <= RT_EVENT_MAX_CHANNELS ? req : noid, &ev);
        for (size_t i = 0; i < n; i++) {
            const char *ch = json_string_value(json_array_get(jchannels, i));
            for (size_t j = off; j < off + k && codes[i] == 0 && evs[i] == NULL; j++) {
                if (strcmp(valid[j], ch) != 0)
                    continue;
                if (r == 0)
                    evs[i] = rt_event_ref(ev);
                else
                    codes[i] = r;
            }
        }
        if (r == 0)
            rt_event_unref(ev);
    }
    json_decref(noid);
    rt_buf_appends(out, "{\"responses\":[");
    for (size_t i = 0; i < n; i++) {
        if (i != 0)
            rt_buf_append(out, ",", 1);
        if (evs[i] != NULL) {
            rt_buf_appends(out, "{\"result\":");
            append_position(out, s, evs[i], json_string_value(json_array_get(jchannels, i)));
            rt_buf_append(out, "}", 1);
            rt_event_unref(evs[i]);
        } else {
            rt_buf_appends(out, "{\"error\":");
            rt__cf_append_error(out, codes[i] != 0 ? codes[i] : RT_CF_ERR_INTERNAL, NULL);
            rt_buf_append(out, "}", 1);
        }
    }
    rt_buf_appends(out, "]}");
    free(valid);
    free(codes);
    free(evs);
    return 0;
}

static int api_history(rt_conn_t *c, const json_t *req, rt_buf_t *out)
{
    return rt__cf_history(rt_conn_server(c), req, out);
}

static int api_history_remove(rt_conn_t *c, const json_t *req, rt_buf_t *out)
{
    const char *channel = json_string_value(json_object_get(req, "channel"));
    if (channel == NULL)
        return RT_CF_ERR_BAD_REQUEST;
    if (!channel_ok(channel))
        return RT_CF_ERR_UNKNOWN_CHANNEL;
    rt_history_stream_remove(rt_conn_server(c)->history, channel);
    rt_buf_appends(out, "{}");
    return 0;
}

/* The request's channel for a presence query: 0, or a code (missing channel; presence off in its namespace). */
static int presence_channel(rt_conn_t *c, const json_t *req, const char **channel)
{
    *channel = json_string_value(json_object_get(req, "channel"));
    if (*channel == NULL)
        return RT_CF_ERR_BAD_REQUEST;
    return rt_namespace_of(&rt_conn_server(c)->access, *channel, strlen(*channel))->presence ? 0 : RT_CF_ERR_NOT_AVAILABLE;
}

static int api_presence(rt_conn_t *c, const json_t *req, rt_buf_t *out)
{
    const char *channel;
    int r = presence_channel(c, req, &channel);
    if (r != 0)
        return r;
    append_json(out, json_pack("{s:o}", "presence", rt_presence_get(channel)));
    return 0;
}

static int api_presence_stats(rt_conn_t *c, const json_t *req, rt_buf_t *out)
{
    const char *channel;
    int r = presence_channel(c, req, &channel);
    if (r != 0)
        return r;
    size_t clients, users;
    rt_presence_stats(channel, &clients, &users);
    rt_buf_appendf(out, "{\"num_clients\":%zu,\"num_users\":%zu}", clients, users);
    return 0;
}

static int api_channels(rt_conn_t *c, const json_t *req, rt_buf_t *out)
{
    append_json(out, json_pack("{s:o}", "channels", rt_presence_channels(json_string_value(json_object_get(req, "pattern")))));
    return 0;
}

static int api_info(rt_conn_t *c, const json_t *req, rt_buf_t *out)
{
    rt_server_t *s = rt_conn_server(c);
    size_t clients, users, channels, subs;
    rt_presence_totals(&clients, &users, &channels, &subs);
    char host[256] = "realtime";
    gethostname(host, sizeof(host) - 1);
    append_json(out, json_pack("{s:[{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I}]}", "nodes", "uid", rt_history_epoch(s->history), "name",
                               host, "version", RT_VERSION, "num_clients", (json_int_t)clients, "num_users", (json_int_t)users,
                               "num_channels", (json_int_t)channels, "num_subs", (json_int_t)subs, "uptime",
                               (json_int_t)((rt_clock_mono_ms() - s->started_ms) / 1000)));
    return 0;
}

/* The target connection of disconnect/subscribe/unsubscribe: client, or its alias session (uni transports). */
static const char *target_client(const json_t *req)
{
    const char *client = json_string_value(json_object_get(req, "client"));
    if (client == NULL || client[0] == '\0')
        client = json_string_value(json_object_get(req, "session"));
    return client != NULL && client[0] != '\0' ? client : NULL;
}

static int api_disconnect(rt_conn_t *c, const json_t *req, rt_buf_t *out)
{
    const char *user = json_string_value(json_object_get(req, "user"));
    if (user == NULL)
        return RT_CF_ERR_BAD_REQUEST;
    rt_cf_mail_t mail = {.kind = RT_CF_MAIL_DISCONNECT, .code = RT_CF_DISC_FORCE};
    snprintf(mail.reason, sizeof(mail.reason), "force disconnect");
    const json_t *d = json_object_get(req, "disconnect");
    if (json_is_object(d)) {
        json_int_t code = json_integer_value(json_object_get(d, "code"));
        const char *reason = json_string_value(json_object_get(d, "reason"));
        if (code < 3000 || code > 4999)
            return RT_CF_ERR_BAD_REQUEST;
        mail.code = (uint16_t)code;
        snprintf(mail.reason, sizeof(mail.reason), "%s", reason != NULL ? reason : "");
    }
    rt_presence_post(user, target_client(req), json_object_get(req, "whitelist"), &mail, c->worker);
    rt_buf_appends(out, "{}");
    return 0;
}

static int user_channel_mail(rt_conn_t *c, const json_t *req, rt_buf_t *out, rt_cf_mail_kind_t kind)
{
    const char *user = json_string_value(json_object_get(req, "user"));
    const char *channel = json_string_value(json_object_get(req, "channel"));
    if (user == NULL || channel == NULL)
        return RT_CF_ERR_BAD_REQUEST;
    if (!channel_ok(channel))
        return RT_CF_ERR_UNKNOWN_CHANNEL;
    rt_cf_mail_t mail = {.kind = kind, .channel = (char *)channel};
    rt_presence_post(user, target_client(req), NULL, &mail, c->worker);
    rt_buf_appends(out, "{}");
    return 0;
}

static int api_subscribe(rt_conn_t *c, const json_t *req, rt_buf_t *out)
{
    return user_channel_mail(c, req, out, RT_CF_MAIL_SUBSCRIBE);
}

static int api_unsubscribe(rt_conn_t *c, const json_t *req, rt_buf_t *out)
{
    return user_channel_mail(c, req, out, RT_CF_MAIL_UNSUBSCRIBE);
}

static const struct {
    const char *name;
    api_fn fn;
} methods[] = {
    {"publish", api_publish},       {"broadcast", api_broadcast},   {"history", api_history},
    {"history_remove", api_history_remove}, {"presence", api_presence}, {"presence_stats", api_presence_stats},
    {"channels", api_channels},     {"info", api_info},             {"disconnect", api_disconnect},
    {"subscribe", api_subscribe},   {"unsubscribe", api_unsubscribe},
};

/* Runs method with req; appends the result object. Returns 0 or an error code. */
static int run(rt_conn_t *c, const char *method, const json_t *req, rt_buf_t *out)
{
    if (!json_is_object(req))
        return RT_CF_ERR_BAD_REQUEST;
    for (size_t i = 0; i < RT_ARRAY_SIZE(methods); i++)
        if (strcmp(methods[i].name, method) == 0)
            return methods[i].fn(c, req, out);
    return RT_CF_ERR_METHOD_NOT_FOUND;
}

/* /api/batch: {"commands":[{"<method>":{…}},…]} → {"replies":[{"<method>":{…}} or {"error":{…}},…]}. */
static void batch(rt_conn_t *c, const json_t *req, rt_buf_t *out)
{
    rt_buf_appends(out, "{\"replies\":[");
    size_t i;
    const json_t *cmd;
    json_array_foreach(json_object_get(req, "commands"), i, cmd) {
        const char *method = NULL;
        const json_t *params = NULL;
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)cmd, key, v) {
            method = key;
            params = v;
            break;
        }
        if (i != 0)
            rt_buf_append(out, ",", 1);
        rt_buf_t res = {0};
        int r = method != NULL ? run(c, method, params, &res) : RT_CF_ERR_BAD_REQUEST;
        if (r == 0) {
            rt_buf_appendf(out, "{\"%s\":", method);
            rt_buf_append(out, res.base, res.len);
        } else {
            rt_buf_appends(out, "{\"error\":");
            rt__cf_append_error(out, r, NULL);
        }
        rt_buf_append(out, "}", 1);
        rt_buf_free(&res);
    }
    rt_buf_appends(out, "]}");
}

static int transport_status(int code)
{
    switch (code) {
    case RT_CF_ERR_INTERNAL: return 500;
    case RT_CF_ERR_UNKNOWN_CHANNEL:
    case RT_CF_ERR_METHOD_NOT_FOUND: return 404;
    case RT_CF_ERR_UNRECOVERABLE_POSITION: return 416;
    case 113: return 409;
    default: return 400;
    }
}

void rt__centrifugo_api(rt_conn_t *c, rt_http_request_t *req)
{
    json_t *body = req->body.len != 0 ? json_loadb(req->body.base, req->body.len, 0, NULL) : json_object();
    if (!json_is_object(body)) {
        json_decref(body);
        static const char bad[] = "{\"error\":{\"code\":107,\"message\":\"bad request\"}}";
        rt_http_respond(c, 400, "application/json", bad, sizeof(bad) - 1, NULL);
        return;
    }
    const char *method = req->path + strlen("/api");
    const json_t *params = body;
    if (method[0] == '\0') { /* legacy POST /api: {"method":…,"params":…} */
        method = json_string_value(json_object_get(body, "method"));
        params = json_object_get(body, "params");
        if (method == NULL)
            method = "";
        if (params == NULL)
            params = body;
    } else {
        method++;
    }
    rt_buf_t res = {0}, out = {0};
    int status = 200;
    if (strcmp(method, "batch") == 0) {
        batch(c, params, &out);
    } else {
        int r = run(c, method, params, &res);
        if (r == 0) {
            rt_buf_appends(&out, "{\"result\":");
            rt_buf_append(&out, res.base, res.len);
            rt_buf_append(&out, "}", 1);
        } else {
            rt_buf_appends(&out, "{\"error\":");
            rt__cf_append_error(&out, r, NULL);
            rt_buf_append(&out, "}", 1);
            const char *mode = rt_http_header(req, "x-centrifugo-error-mode");
            if (mode != NULL && strcasecmp(mode, "transport") == 0)
                status = transport_status(r);
        }
    }
    rt_http_respond(c, status, "application/json", out.base, out.len, NULL);
    rt_buf_free(&res);
    rt_buf_free(&out);
    json_decref(body);
}
