/*
 * Centrifugo's server HTTP API (centrifuge-v2.md section 13): POST /api/<method> with a JSON request, answered
 * 200 with {"result":…} or {"error":{"code":N,"message":…}} (with `X-Centrifugo-Error-Mode: transport`, errors
 * map to HTTP statuses instead). The legacy POST /api takes {"method":…,"params":…}; /api/batch runs several.
 *
 * publish and broadcast create one event (RT_EVENT_RAW_DATA, type tags.type or message.published) through a
 * publish job (server/publish.h: the request waits, the worker does not), so native and SSE clients get it too; idempotency_key becomes the event id, which makes a
 * retried publish idempotent as on /api/events. disconnect, subscribe and unsubscribe reach connections on any
 * worker through their presence mailboxes: at once on the caller's own worker, at the next loop turn of another;
 * with the redis broker also on every other node (a control message through Redis), and presence and
 * presence_stats answer from Redis for every node (protocol/presence.h, src/broker/redis_presence.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "realtime/channel.h"
#include "realtime/error.h"
#include "protocol/centrifuge.h"
#include "server/publish.h"
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

/* The event that publishes data to channels[0..n): 0 with *ev, or an error code. */
static int make_event(const char *const *channels, size_t n, const json_t *req, rt_event_t **ev)
{
    json_t *data = json_object_get(req, "data");
    const char *key = json_string_value(json_object_get(req, "idempotency_key"));
    char err[256];
    int r = rt_event_new(key != NULL && key[0] != '\0' ? key : NULL, type_of(req) != NULL ? type_of(req) : "message.published",
                         channels, n, data, ev, err, sizeof(err));
    if (r != 0)
        return RT_CF_ERR_BAD_REQUEST;
    (*ev)->flags |= RT_EVENT_RAW_DATA;
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

/*
 * publish and broadcast publish asynchronously (the worker never waits for Redis): prepare checks the request and
 * makes the events of a publish job; done, once the job completed, writes the result.
 */
typedef struct st_cf_pub_t {
    const json_t *req;
    bool broadcast;
    /* broadcast: the request's channels, the distinct valid ones, an error code per channel, the job index of each
     * chunk of RT_EVENT_MAX_CHANNELS valid channels (-1: its event could not be made, the code is in chunk_code) */
    size_t n, nv, n_chunks;
    const char **valid;
    int *codes, *chunk_job, *chunk_code;
} cf_pub_t;

static void pub_free(cf_pub_t *p)
{
    free(p->valid);
    free(p->codes);
    free(p->chunk_job);
    free(p->chunk_code);
    *p = (cf_pub_t){0};
}

static int publish_prepare(rt_conn_t *c, const json_t *req, cf_pub_t *p, rt_publish_job_t *job)
{
    const char *channel = json_string_value(json_object_get(req, "channel"));
    if (channel == NULL || json_object_get(req, "data") == NULL)
        return RT_CF_ERR_BAD_REQUEST;
    if (!channel_ok(channel))
        return RT_CF_ERR_UNKNOWN_CHANNEL;
    int r = make_event(&channel, 1, req, &job->evs[0]);
    job->n = r == 0 ? 1 : 0;
    return r;
}

/*
 * Whether event `made` of job slot i, whose idempotency key was used already (RT_EEXIST), is a retry of that earlier
 * publication: the same channels. Then it is answered with its positions. To other channels it would get offsets
 * the publication never had (0) and its data would be lost: 107 instead.
 */
static bool is_retry(const rt_publish_job_t *job, size_t i)
{
    const rt_event_t *made = job->evs[i], *earlier = job->result[i];
    if (made->n_channels != earlier->n_channels)
        return false;
    for (size_t k = 0; k < made->n_channels; k++)
        if (rt_event_channel_index(earlier, made->channels[k], strlen(made->channels[k])) < 0)
            return false;
    return true;
}

static int publish_done(rt_server_t *s, cf_pub_t *p, rt_publish_job_t *job, rt_buf_t *out)
{
    if (job->status[0] != 0 && job->status[0] != RT_EEXIST)
        return RT_CF_ERR_INTERNAL;
    if (job->status[0] == RT_EEXIST && !is_retry(job, 0))
        return RT_CF_ERR_BAD_REQUEST;
    append_position(out, s, job->result[0], json_string_value(json_object_get(p->req, "channel")));
    return 0;
}

/* One event for the valid channels (up to RT_EVENT_MAX_CHANNELS per event); a result or an error per channel. */
static int broadcast_prepare(rt_conn_t *c, const json_t *req, cf_pub_t *p, rt_publish_job_t *job)
{
    const json_t *jchannels = json_object_get(req, "channels");
    size_t n = json_array_size(jchannels);
    if (n == 0 || json_object_get(req, "data") == NULL)
        return RT_CF_ERR_BAD_REQUEST;
    p->n = n;
    p->valid = rt_mem_calloc(n, sizeof(*p->valid));
    p->codes = rt_mem_calloc(n, sizeof(*p->codes));
    for (size_t i = 0; i < n; i++) {
        const char *ch = json_string_value(json_array_get(jchannels, i));
        bool dup = false;
        for (size_t j = 0; j < p->nv && !dup; j++)
            dup = ch != NULL && strcmp(p->valid[j], ch) == 0;
        if (!channel_ok(ch))
            p->codes[i] = ch == NULL ? RT_CF_ERR_BAD_REQUEST : RT_CF_ERR_UNKNOWN_CHANNEL;
        else if (!dup)
            p->valid[p->nv++] = ch;
    }
    p->n_chunks = (p->nv + RT_EVENT_MAX_CHANNELS - 1) / RT_EVENT_MAX_CHANNELS;
    p->chunk_job = rt_mem_calloc(p->n_chunks + 1, sizeof(*p->chunk_job));
    p->chunk_code = rt_mem_calloc(p->n_chunks + 1, sizeof(*p->chunk_code));
    json_t *noid = json_deep_copy(req);
    json_object_del(noid, "idempotency_key"); /* one key cannot name several events */
    job->n = 0;
    for (size_t k = 0; k < p->n_chunks; k++) {
        size_t off = k * RT_EVENT_MAX_CHANNELS, cnt = p->nv - off < RT_EVENT_MAX_CHANNELS ? p->nv - off : RT_EVENT_MAX_CHANNELS;
        int r = make_event(p->valid + off, cnt, p->nv <= RT_EVENT_MAX_CHANNELS ? req : noid, &job->evs[job->n]);
        p->chunk_job[k] = r == 0 ? (int)job->n++ : -1;
        p->chunk_code[k] = r;
    }
    json_decref(noid);
    return 0;
}

static int broadcast_done(rt_server_t *s, cf_pub_t *p, rt_publish_job_t *job, rt_buf_t *out)
{
    const json_t *jchannels = json_object_get(p->req, "channels");
    rt_buf_appends(out, "{\"responses\":[");
    for (size_t i = 0; i < p->n; i++) {
        const char *ch = json_string_value(json_array_get(jchannels, i));
        int code = p->codes[i];
        rt_event_t *ev = NULL;
        for (size_t j = 0; code == 0 && j < p->nv; j++) {
            if (strcmp(p->valid[j], ch) != 0)
                continue;
            int k = (int)(j / RT_EVENT_MAX_CHANNELS), ji = p->chunk_job[k];
            if (ji < 0)
                code = p->chunk_code[k];
            else if (job->status[ji] == RT_EEXIST && !is_retry(job, (size_t)ji))
                code = RT_CF_ERR_BAD_REQUEST;
            else if (job->status[ji] == 0 || job->status[ji] == RT_EEXIST)
                ev = job->result[ji];
            else
                code = RT_CF_ERR_INTERNAL;
            break;
        }
        if (i != 0)
            rt_buf_append(out, ",", 1);
        if (ev != NULL) {
            rt_buf_appends(out, "{\"result\":");
            append_position(out, s, ev, ch);
            rt_buf_append(out, "}", 1);
        } else {
            rt_buf_appends(out, "{\"error\":");
            rt__cf_append_error(out, code != 0 ? code : RT_CF_ERR_INTERNAL, NULL);
            rt_buf_append(out, "}", 1);
        }
    }
    rt_buf_appends(out, "]}");
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
    return rt_namespace_of(rt_conn_server(c)->access, *channel, strlen(*channel))->presence ? 0 : RT_CF_ERR_NOT_AVAILABLE;
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

static const struct {
    const char *name;
    api_fn fn;
} methods[] = {
    {"history", api_history},
    {"history_remove", api_history_remove},
    {"channels", api_channels},
    {"info", api_info},
};

/* Runs method with req; appends the result object. Returns 0 or an error code. */
static int run_method(rt_conn_t *c, const char *method, const json_t *req, rt_buf_t *out)
{
    if (!json_is_object(req))
        return RT_CF_ERR_BAD_REQUEST;
    for (size_t i = 0; i < RT_ARRAY_SIZE(methods); i++)
        if (strcmp(methods[i].name, method) == 0)
            return methods[i].fn(c, req, out);
    return RT_CF_ERR_METHOD_NOT_FOUND;
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

/*
 * One Centrifugo API request, run command by command (the one call, or /api/batch's list in order). A publishing
 * command waits for its publish job: the HTTP request is parked and the run goes on from the job's callback, so the
 * worker's loop never waits for the broker. If the client leaves meanwhile, the commands not run yet are dropped.
 */
typedef struct st_cf_run_t {
    rt_conn_t *conn; /* NULL once the client left */
    rt_server_t *server;
    json_t *body;
    const json_t *commands; /* /api/batch: the commands (NULL when it has none); NULL for one call (method, params) */
    bool batch;             /* /api/batch: the answer is {"replies":[...]} */
    const char *method;
    const json_t *params;
    size_t next, count;
    bool transport_errors, stepping, waiting;
    int status;
    rt_buf_t out;
    /* the publishing command in progress */
    const char *pub_method;
    int pub_code;
    cf_pub_t pub;
} cf_run_t;

static void on_run_gone(void *ctx)
{
    ((cf_run_t *)ctx)->conn = NULL;
}

/* Appends the outcome of command number i (code 0: res is its result). */
static void append_reply(cf_run_t *run, size_t i, const char *method, int code, const rt_buf_t *res)
{
    rt_buf_t *out = &run->out;
    if (run->commands != NULL && i != 0)
        rt_buf_append(out, ",", 1);
    if (code == 0) {
        if (run->commands != NULL)
            rt_buf_appendf(out, "{\"%s\":", method);
        else
            rt_buf_appends(out, "{\"result\":");
        rt_buf_append(out, res->base, res->len);
    } else {
        rt_buf_appends(out, "{\"error\":");
        rt__cf_append_error(out, code, NULL);
        if (run->commands == NULL && run->transport_errors)
            run->status = transport_status(code);
    }
    rt_buf_append(out, "}", 1);
}

static void run_next(cf_run_t *run);

static void on_cmd_published(rt_publish_job_t *job)
{
    cf_run_t *run = job->data;
    rt_buf_t res = {0};
    int code = run->pub_code;
    if (code == 0)
        code = run->pub.broadcast ? broadcast_done(run->server, &run->pub, job, &res) : publish_done(run->server, &run->pub, job, &res);
    append_reply(run, run->next - 1, run->pub_method, code, &res);
    rt_buf_free(&res);
    pub_free(&run->pub);
    run->waiting = false;
    if (!run->stepping)
        run_next(run);
}

/* Starts a publishing command; its reply is appended by on_cmd_published (maybe before this returns). */
static void start_publish(cf_run_t *run, const char *method, const json_t *req)
{
    bool broadcast = strcmp(method, "broadcast") == 0;
    size_t cap = broadcast ? (json_array_size(json_object_get(req, "channels")) + RT_EVENT_MAX_CHANNELS - 1) / RT_EVENT_MAX_CHANNELS : 1;
    rt_publish_job_t *job = rt__publish_job_new(run->conn, cap, on_cmd_published, run);
    run->pub = (cf_pub_t){.req = req, .broadcast = broadcast};
    run->pub_method = method;
    run->pub_code = !json_is_object(req)  ? RT_CF_ERR_BAD_REQUEST
                    : broadcast           ? broadcast_prepare(run->conn, req, &run->pub, job)
                                          : publish_prepare(run->conn, req, &run->pub, job);
    if (run->pub_code != 0)
        job->n = 0;
    run->waiting = true;
    rt__publish_job_start(job);
}

/*
 * presence, presence_stats, disconnect, subscribe and unsubscribe answer through a callback: at once with the memory
 * broker, across nodes (through Redis, the request parked meanwhile) with the redis broker. start_* returns 0 once
 * the command is under way (on_cmd_answered appends its reply) or an error code.
 */
static void on_cmd_answered(void *ctx, int status, const char *result, size_t len)
{
    cf_run_t *run = ctx;
    rt_buf_t res = {0};
    if (status == 0)
        rt_buf_append(&res, result, len);
    append_reply(run, run->next - 1, run->pub_method, status == 0 ? 0 : RT_CF_ERR_INTERNAL, &res);
    rt_buf_free(&res);
    run->waiting = false;
    if (!run->stepping)
        run_next(run);
}

static int start_presence(cf_run_t *run, const char *method, const json_t *req)
{
    const char *channel;
    int r = presence_channel(run->conn, req, &channel);
    if (r != 0)
        return r;
    run->waiting = true;
    run->pub_method = method;
    rt_presence_query(run->conn->worker, channel, strcmp(method, "presence_stats") == 0, on_cmd_answered, run);
    return 0;
}

static int start_disconnect(cf_run_t *run, const char *method, const json_t *req)
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
    run->waiting = true;
    run->pub_method = method;
    rt_presence_control(run->conn->worker, user, target_client(req), json_object_get(req, "whitelist"), &mail, on_cmd_answered,
                        run);
    return 0;
}

/* subscribe and unsubscribe: a user's connections (or one of them) to or from channel. */
static int start_user_channel(cf_run_t *run, const char *method, const json_t *req)
{
    const char *user = json_string_value(json_object_get(req, "user"));
    const char *channel = json_string_value(json_object_get(req, "channel"));
    if (user == NULL || channel == NULL)
        return RT_CF_ERR_BAD_REQUEST;
    if (!channel_ok(channel))
        return RT_CF_ERR_UNKNOWN_CHANNEL;
    rt_cf_mail_t mail = {.kind = strcmp(method, "subscribe") == 0 ? RT_CF_MAIL_SUBSCRIBE : RT_CF_MAIL_UNSUBSCRIBE,
                         .channel = (char *)channel};
    run->waiting = true;
    run->pub_method = method;
    rt_presence_control(run->conn->worker, user, target_client(req), NULL, &mail, on_cmd_answered, run);
    return 0;
}

static const struct {
    const char *name;
    int (*start)(cf_run_t *run, const char *method, const json_t *req);
} async_methods[] = {
    {"presence", start_presence},      {"presence_stats", start_presence}, {"disconnect", start_disconnect},
    {"subscribe", start_user_channel}, {"unsubscribe", start_user_channel},
};

/* Starts method when it answers through a callback: true when it is one (its reply is appended, maybe already). */
static bool start_async(cf_run_t *run, size_t i, const char *method, const json_t *req)
{
    for (size_t k = 0; method != NULL && k < RT_ARRAY_SIZE(async_methods); k++) {
        if (strcmp(async_methods[k].name, method) != 0)
            continue;
        int r = json_is_object(req) ? async_methods[k].start(run, method, req) : RT_CF_ERR_BAD_REQUEST;
        if (r != 0) {
            rt_buf_t none = {0};
            append_reply(run, i, method, r, &none);
        }
        return true;
    }
    return false;
}

static void finish_run(cf_run_t *run)
{
    if (run->batch)
        rt_buf_appends(&run->out, "]}");
    if (run->conn != NULL)
        rt_http_respond(run->conn, run->status, "application/json", run->out.base, run->out.len, NULL);
    rt_buf_free(&run->out);
    json_decref(run->body);
    free(run);
}

static void run_next(cf_run_t *run)
{
    run->stepping = true;
    while (!run->waiting && run->conn != NULL && run->next < run->count) {
        size_t i = run->next++;
        const char *method = run->method;
        const json_t *params = run->params;
        if (run->commands != NULL) {
            const char *key;
            const json_t *v;
            method = NULL;
            params = NULL;
            json_object_foreach((json_t *)json_array_get(run->commands, i), key, v) {
                method = key;
                params = v;
                break;
            }
        }
        if (method != NULL && (strcmp(method, "publish") == 0 || strcmp(method, "broadcast") == 0)) {
            start_publish(run, method, params);
            continue;
        }
        if (start_async(run, i, method, params))
            continue;
        rt_buf_t res = {0};
        int r = method != NULL ? run_method(run->conn, method, params, &res) : RT_CF_ERR_BAD_REQUEST;
        append_reply(run, i, method, r, &res);
        rt_buf_free(&res);
    }
    run->stepping = false;
    if (!run->waiting)
        finish_run(run);
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
    const char *mode = rt_http_header(req, "x-centrifugo-error-mode");
    cf_run_t *run = rt_mem_calloc(1, sizeof(*run));
    run->conn = c;
    run->server = rt_conn_server(c);
    run->body = body;
    run->status = 200;
    run->transport_errors = mode != NULL && strcasecmp(mode, "transport") == 0;
    if (strcmp(method, "batch") == 0) {
        run->batch = true;
        run->commands = json_is_array(json_object_get(params, "commands")) ? json_object_get(params, "commands") : NULL;
        run->count = json_array_size(run->commands);
        rt_buf_appends(&run->out, "{\"replies\":[");
    } else {
        run->method = method;
        run->params = params;
        run->count = 1;
    }
    rt_http_park(c, on_run_gone, run);
    run_next(run);
}
