/*
 * The Centrifuge connection state shared by the WebSocket and uni_sse transports: authentication,
 * subscriptions with recovery, delivery, presence, the mailbox and history.
 *
 * Subscribing runs on the worker thread that dispatches the connection's broadcaster, in this order: attach the
 * subscription, note the newest seq in history (seq_mark), then read the stream. Everything appended after
 * seq_mark reaches the worker after the subscription exists, so it arrives live; everything up to seq_mark
 * is either in the reply (recovery) or before the position we report, and its live copy (if still queued
 * for this worker) is dropped by seq. Since the reply is queued now and live events are dispatched later on
 * this thread, the reply always precedes the channel's first live publication.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "realtime/channel.h"
#include "realtime/error.h"
#include "realtime/history.h"
#include "net/worker.h"
#include "protocol/centrifuge.h"
#include "server/server.h"
#include "core/token.h"
#include "util/clock.h"
#include "util/mem.h"

#define LOG_PREFIX "centrifuge"
#include "util/log.h"

const char *rt__cf_error_message(int code)
{
    switch (code) {
    case RT_CF_ERR_INTERNAL: return "internal server error";
    case RT_CF_ERR_UNAUTHORIZED: return "unauthorized";
    case RT_CF_ERR_UNKNOWN_CHANNEL: return "unknown channel";
    case RT_CF_ERR_PERMISSION_DENIED: return "permission denied";
    case RT_CF_ERR_METHOD_NOT_FOUND: return "method not found";
    case RT_CF_ERR_ALREADY_SUBSCRIBED: return "already subscribed";
    case RT_CF_ERR_LIMIT_EXCEEDED: return "limit exceeded";
    case RT_CF_ERR_BAD_REQUEST: return "bad request";
    case RT_CF_ERR_NOT_AVAILABLE: return "not available";
    case RT_CF_ERR_TOKEN_EXPIRED: return "token expired";
    case RT_CF_ERR_TOO_MANY_REQUESTS: return "too many requests";
    case RT_CF_ERR_UNRECOVERABLE_POSITION: return "unrecoverable position";
    default: return "error";
    }
}

const char *rt__cf_disconnect_reason(int code)
{
    switch (code) {
    case RT_CF_DISC_SHUTDOWN: return "shutdown";
    case RT_CF_DISC_EXPIRED: return "connection expired";
    case RT_CF_DISC_SLOW: return "slow";
    case RT_CF_DISC_INSUFFICIENT_STATE: return "insufficient state";
    case RT_CF_DISC_NO_PONG: return "no pong";
    case RT_CF_DISC_TOO_MANY_REQUESTS: return "too many requests";
    case RT_CF_DISC_INVALID_TOKEN: return "invalid token";
    case RT_CF_DISC_BAD_REQUEST: return "bad request";
    case RT_CF_DISC_STALE: return "stale";
    case RT_CF_DISC_FORCE: return "force disconnect";
    default: return "disconnect";
    }
}

void rt__cf_append_error(rt_buf_t *out, int code, const char *message)
{
    json_t *m = json_string(message != NULL ? message : rt__cf_error_message(code));
    char *t = m != NULL ? json_dumps(m, JSON_ENCODE_ANY) : NULL;
    json_decref(m);
    rt_buf_appendf(out, "{\"code\":%d,\"message\":%s%s}", code, t != NULL ? t : "\"error\"",
                   code == RT_CF_ERR_INTERNAL || code == RT_CF_ERR_TOO_MANY_REQUESTS ? ",\"temporary\":true" : "");
    free(t);
}

rt_cf_sub_t *rt__cf_find_sub(rt_cf_t *cf, const char *channel)
{
    for (size_t i = 0; i < cf->n_subs; i++)
        if (strcmp(cf->subs[i]->channel, channel) == 0)
            return cf->subs[i];
    return NULL;
}

static int client_send(rt_client_t *client, rt_event_t *ev, rt_subscription_t *s, size_t ci)
{
    rt_cf_t *cf = client->data;
    rt_cf_sub_t *sub = rt_subscription_data(s);
    if (sub == NULL || ev->seq <= sub->seq_mark)
        return 0;
    int r = cf->t->send_pub(cf, ev, ci);
    if (r == RT_ECLOSED)
        return 0; /* the connection is ending; its close removes the client */
    if (r != 0)
        return r;
    rt_conn_count_delivered(cf->conn, 1);
    return 0;
}

static void client_close(rt_client_t *client, int reason)
{
    rt_cf_t *cf = client->data;
    cf->detached = true;
    for (size_t i = 0; i < cf->n_subs; i++)
        cf->subs[i]->sub = NULL;
    cf->t->disconnect(cf, RT_CF_DISC_SLOW, "slow");
}

static const rt_client_ops_t client_ops = {.send = client_send, .close = client_close};

void rt__cf_init(rt_cf_t *cf, rt_conn_t *c, const rt_cf_transport_t *t, void *transport)
{
    cf->client = (rt_client_t){.ops = &client_ops, .data = cf, .flags = RT_CLIENT_PER_CHANNEL};
    cf->t = t;
    cf->transport = transport;
    cf->conn = c;
    cf->server = rt_conn_server(c);
    cf->broadcaster = rt__worker_broadcaster(c->worker);
}

/* Anonymous connect: in insecure mode, or when some namespace can be read anonymously (then only that is readable). */
static bool anonymous_allowed(const rt_access_t *a)
{
    for (size_t i = 0; i < a->n_namespaces; i++)
        if (a->namespaces[i].anonymous)
            return true;
    return a->insecure;
}

int rt__cf_no_keys(const rt_cf_t *cf, int otherwise)
{
    return cf->server->config->token_jwks_url != NULL ? RT_CF_ERR_INTERNAL : otherwise;
}

int rt__cf_authenticate(rt_cf_t *cf, const char *token, json_t **token_channels)
{
    *token_channels = NULL;
    if (token == NULL || token[0] == '\0') {
        if (!anonymous_allowed(cf->server->access))
            return RT_CF_ERR_UNAUTHORIZED;
        cf->user = rt_strdup("");
        return 0;
    }
    if (!rt_token_verifier_has_keys(cf->server->tokens))
        return rt__cf_no_keys(cf, RT_CF_DISC_INVALID_TOKEN);
    rt_token_claims_t cl;
    char err[128];
    int r = rt_token_verify(cf->server->tokens, token, (int64_t)time(NULL), &cl, err, sizeof(err));
    if (r == 0 && cl.channel != NULL)
        r = RT_EINVAL; /* a subscription token is not a connection token */
    if (r != 0) {
        RT_LOG_DEBUG("connect token refused: %s", r == RT_ERANGE ? "expired" : err);
        rt_token_claims_free(&cl);
        return r == RT_ERANGE ? RT_CF_ERR_TOKEN_EXPIRED : RT_CF_DISC_INVALID_TOKEN;
    }
    cf->user = rt_strdup(cl.sub != NULL ? cl.sub : "");
    cf->conn_info = cl.info != NULL ? rt_strdup(cl.info) : NULL;
    cf->admin = cl.admin;
    cf->granted = rt_token_grants(&cl, &cf->n_granted); /* for later subscribe commands */
    cf->expire_at_ms = cl.exp * 1000;
    if (cl.channels != NULL) {
        *token_channels = json_array();
        for (size_t i = 0; i < cl.n_channels; i++)
            json_array_append_new(*token_channels, json_string(cl.channels[i]));
    }
    rt_token_claims_free(&cl);
    return 0;
}

static void deliver_mail(void *owner);

void rt__cf_connected(rt_cf_t *cf)
{
    rt__cf_make_client_id(cf->client_id);
    cf->peer = rt_presence_register(cf->client_id, cf->user, cf->conn_info, cf->conn->worker, deliver_mail, cf);
    cf->connected = true;
}

/* Verifies a subscription token for channel. Returns 0 (with *expire_at_ms), an error code or a disconnect code. */
int rt__cf_check_sub_token(rt_cf_t *cf, const char *channel, const char *token, int64_t *expire_at_ms)
{
    if (!rt_token_verifier_has_keys(cf->server->tokens))
        return rt__cf_no_keys(cf, RT_CF_ERR_PERMISSION_DENIED);
    rt_token_claims_t cl;
    char err[128];
    int r = rt_token_verify(cf->server->tokens, token, (int64_t)time(NULL), &cl, err, sizeof(err));
    int ret = 0;
    if (r == RT_ERANGE)
        ret = RT_CF_ERR_TOKEN_EXPIRED;
    else if (r != 0)
        ret = RT_CF_ERR_PERMISSION_DENIED;
    else if (cl.channel == NULL || strcmp(cl.channel, channel) != 0 || strcmp(cl.sub != NULL ? cl.sub : "", cf->user) != 0)
        ret = RT_CF_DISC_INVALID_TOKEN;
    else
        *expire_at_ms = cl.exp * 1000;
    rt_token_claims_free(&cl);
    return ret;
}

/* Reads the request's position: recover, offset, epoch (an epoch too long to be ours never matches). */
static bool read_position(const json_t *req, rt_stream_pos_t *pos)
{
    memset(pos, 0, sizeof(*pos));
    const json_t *off = json_object_get(req, "offset"), *epoch = json_object_get(req, "epoch");
    if (json_is_integer(off) && json_integer_value(off) > 0)
        pos->offset = (uint64_t)json_integer_value(off);
    const char *e = json_string_value(epoch);
    if (e != NULL) {
        if (strlen(e) < sizeof(pos->epoch))
            strcpy(pos->epoch, e);
        else
            strcpy(pos->epoch, "_"); /* never a real epoch */
    }
    return json_is_true(json_object_get(req, "recover"));
}

/*
 * Recovery (section 7.1): the stream after pos, up to seq_mark. True with *pubs filled (those the subscription's
 * filter passes) when nothing is missing and the reply stays within the client's queue; false otherwise.
 */
static bool recover(rt_cf_t *cf, const char *channel, rt_subscription_t *s, const rt_stream_pos_t *pos, uint64_t seq_mark,
                    rt_buf_t *pubs)
{
    rt_event_list_t list;
    if (rt_history_stream_since(cf->server->history, channel, pos, 0, &list) != 0)
        return false;
    bool ok = true;
    size_t n = 0;
    for (size_t i = 0; i < list.count && ok; i++) {
        rt_event_t *ev = list.events[i];
        if (ev->seq > seq_mark)
            break; /* arrives live */
        int ci = rt_event_channel_index(ev, channel, strlen(channel));
        if (ci < 0 || (i == 0 && ev->offsets[ci] != pos->offset + 1)) {
            ok = false;
            break;
        }
        if (!rt_subscription_matches(s, ev))
            continue;
        if (n++ != 0)
            rt_buf_append(pubs, ",", 1);
        rt__cf_append_pub(pubs, ev, (size_t)ci);
        if (pubs->len > cf->server->config->client_queue_bytes) {
            RT_LOG_DEBUG("recovery of %zu events over the queue limit: not recovered", list.count);
            ok = false;
        }
    }
    atomic_fetch_add_explicit(&cf->server->stats.replayed, ok ? n : 0, memory_order_relaxed);
    rt_event_list_free(&list);
    return ok;
}

/* Checks the request and compiles its filter. Returns 0 or a code; *expire_at_ms from a subscription token. */
static int check_subscribe(rt_cf_t *cf, const char *channel, const json_t *req, bool server_side, rt_filter_t **filter,
                           int64_t *expire_at_ms)
{
    size_t len = strlen(channel);
    *filter = NULL;
    *expire_at_ms = 0;
    if (len == 0)
        return RT_CF_DISC_BAD_REQUEST;
    if (!rt_channel_valid(channel, len))
        return RT_CF_ERR_UNKNOWN_CHANNEL;
    if (rt_channel_is_all(channel, len))
        return RT_CF_ERR_PERMISSION_DENIED; /* `all` is not a stream: native clients only */
    if (rt__cf_find_sub(cf, channel) != NULL)
        return RT_CF_ERR_ALREADY_SUBSCRIBED;
    if (cf->n_subs >= cf->server->config->max_subscriptions) {
        rt_server_count_limit(cf->server, RT_LIMIT_SUBSCRIPTIONS);
        return RT_CF_ERR_LIMIT_EXCEEDED;
    }
    const char *token = json_string_value(json_object_get(req, "token")), *why;
    bool sub_token = token != NULL && token[0] != '\0';
    if (sub_token) {
        int r = rt__cf_check_sub_token(cf, channel, token, expire_at_ms);
        if (r != 0)
            return r;
    }
    /* Server-side subscriptions (the token's channels claim, the server API) are granted by whoever made them. */
    rt_grant_t grant = {.admin = cf->admin, .subscribe = (const char *const *)cf->granted, .n_subscribe = cf->n_granted,
                        .channel = sub_token ? channel : NULL};
    if (!server_side && !rt_access_read(cf->server->access, &grant, channel, len, &why)) {
        RT_LOG_DEBUG("subscribe %s refused: %s", channel, why);
        return RT_CF_ERR_PERMISSION_DENIED;
    }
    const json_t *tf = json_object_get(req, "tf");
    if (tf != NULL && !json_is_null(tf)) {
        char err[256];
        if (!json_is_object(tf) || rt_filter_compile_tree(tf, filter, err, sizeof(err)) != 0) {
            RT_LOG_DEBUG("subscribe %s: bad tf: %s", channel, json_is_object(tf) ? err : "not an object");
            return RT_CF_ERR_BAD_REQUEST;
        }
    }
    return 0;
}

int rt__cf_subscribe(rt_cf_t *cf, const char *channel, const json_t *req, bool server_side, rt_buf_t *out)
{
    rt_filter_t *filter;
    int64_t expire_at_ms;
    int r = check_subscribe(cf, channel, req, server_side, &filter, &expire_at_ms);
    if (r != 0)
        return r;
    rt_subscription_t *s = cf->detached ? NULL : rt_broadcaster_subscribe(cf->broadcaster, &cf->client, &channel, 1, filter);
    if (s == NULL && cf->detached)
        rt_filter_free(filter);
    if (s == NULL)
        return RT_CF_ERR_INTERNAL; /* the worker is shutting down */
    rt_history_t *h = cf->server->history;
    rt_cf_sub_t *sub = rt_mem_calloc(1, sizeof(*sub));
    sub->channel = rt_strdup(channel);
    sub->sub = s;
    sub->seq_mark = rt_history_last_seq(h);
    sub->expire_at_ms = expire_at_ms;
    sub->join_leave = json_is_true(json_object_get(req, "join_leave"));
    sub->server_side = server_side;
    rt_subscription_set_data(s, sub);
    rt_stream_pos_t top, pos;
    rt_history_stream_top(h, channel, &top);

    rt_buf_t pubs = {0};
    /* A namespace without history says so: not recoverable, and a recovery asked for is answered recovered=false. */
    bool recoverable = rt_namespace_of(cf->server->access, channel, strlen(channel))->history;
    bool recovering = read_position(req, &pos),
         recovered = recovering && recoverable && recover(cf, channel, s, &pos, sub->seq_mark, &pubs);
    uint64_t offset = recovered ? pos.offset : top.offset;
    rt_buf_appendf(out, "{\"recoverable\":%s,\"positioned\":%s,\"epoch\":\"%s\"", recoverable ? "true" : "false",
                   recoverable ? "true" : "false", top.epoch);
    if (offset != 0)
        rt_buf_appendf(out, ",\"offset\":%llu", (unsigned long long)offset);
    if (recovering)
        rt_buf_appends(out, ",\"was_recovering\":true");
    if (recovered)
        rt_buf_appends(out, ",\"recovered\":true");
    if (recovered && pubs.len != 0) {
        rt_buf_appends(out, ",\"publications\":[");
        rt_buf_append(out, pubs.base, pubs.len);
        rt_buf_append(out, "]", 1);
    }
    if (expire_at_ms != 0) {
        int64_t ttl = (expire_at_ms - rt_clock_wall_ms()) / 1000;
        rt_buf_appendf(out, ",\"expires\":true,\"ttl\":%lld", (long long)(ttl > 0 ? ttl : 1));
    }
    rt_buf_append(out, "}", 1);
    rt_buf_free(&pubs);

    if (cf->n_subs == cf->cap_subs) {
        cf->cap_subs = cf->cap_subs ? cf->cap_subs * 2 : 4;
        cf->subs = rt_mem_realloc(cf->subs, cf->cap_subs * sizeof(*cf->subs));
    }
    cf->subs[cf->n_subs++] = sub;
    atomic_fetch_add_explicit(&cf->server->stats.subscriptions, 1, memory_order_relaxed);
    return 0;
}

void rt__cf_server_subs(rt_cf_t *cf, const json_t *channels, const json_t *positions, rt_buf_t *out)
{
    size_t i, n = 0;
    const json_t *ch;
    json_array_foreach(channels, i, ch) {
        const char *name = json_string_value(ch);
        const json_t *sreq = json_object_get(positions, name);
        json_t *empty = json_object();
        rt_buf_t res = {0};
        if (name != NULL && rt__cf_subscribe(cf, name, json_is_object(sreq) ? sreq : empty, true, &res) == 0) {
            rt_buf_appendf(out, "%s\"%s\":", n++ == 0 ? ",\"subs\":{" : ",", name);
            rt_buf_append(out, res.base, res.len);
        } else {
            RT_LOG_DEBUG("server-side subscription of %s to %.255s refused", cf->client_id, name != NULL ? name : "?");
        }
        rt_buf_free(&res);
        json_decref(empty);
    }
    if (n != 0)
        rt_buf_append(out, "}", 1);
}

void rt__cf_subscribed(rt_cf_t *cf, const char *channel)
{
    rt_cf_sub_t *sub = rt__cf_find_sub(cf, channel);
    if (sub == NULL || cf->peer == NULL)
        return;
    const rt_namespace_t *ns = rt_namespace_of(cf->server->access, channel, strlen(channel));
    rt_presence_add(cf->peer, channel, ns->join_leave && sub->join_leave, ns->join_leave, cf->conn->worker);
}

static void free_sub(rt_cf_t *cf, rt_cf_sub_t *sub)
{
    if (sub->sub != NULL && !cf->detached)
        rt_broadcaster_unsubscribe(cf->broadcaster, sub->sub);
    atomic_fetch_sub_explicit(&cf->server->stats.subscriptions, 1, memory_order_relaxed);
    free(sub->channel);
    free(sub);
}

/* Sends {"channel":…,"unsubscribe":{"code":…,"reason":…}}. */
static void push_unsubscribe(rt_cf_t *cf, const char *channel, int code, const char *reason)
{
    char body[RT_CHANNEL_MAX + 128];
    int n = snprintf(body, sizeof(body), "{\"channel\":\"%s\",\"unsubscribe\":{\"code\":%d,\"reason\":\"%s\"}}", channel, code,
                     reason);
    cf->t->send_push(cf, body, (size_t)n);
}

void rt__cf_unsubscribe(rt_cf_t *cf, const char *channel, bool push)
{
    for (size_t i = 0; i < cf->n_subs; i++) {
        rt_cf_sub_t *sub = cf->subs[i];
        if (strcmp(sub->channel, channel) != 0)
            continue;
        cf->subs[i] = cf->subs[--cf->n_subs];
        if (push)
            push_unsubscribe(cf, sub->channel, 2000, "server unsubscribe");
        if (cf->peer != NULL)
            rt_presence_remove(cf->peer, sub->channel,
                               rt_namespace_of(cf->server->access, sub->channel, strlen(sub->channel))->join_leave,
                               cf->conn->worker);
        free_sub(cf, sub);
        return;
    }
}

/* A server-side subscription made through the API: a subscribe push with the SubscribeResult. */
static void server_subscribe(rt_cf_t *cf, const char *channel)
{
    rt_buf_t res = {0};
    json_t *req = json_object();
    int r = rt__cf_subscribe(cf, channel, req, true, &res);
    json_decref(req);
    if (r == 0) {
        rt_buf_t body = {0};
        rt_buf_appendf(&body, "{\"channel\":\"%s\",\"subscribe\":", channel);
        rt_buf_append(&body, res.base, res.len);
        rt_buf_append(&body, "}", 1);
        cf->t->send_push(cf, body.base, body.len);
        rt_buf_free(&body);
        rt__cf_subscribed(cf, channel);
    } else {
        RT_LOG_DEBUG("server-side subscribe of %s to %s refused: %d", cf->client_id, channel, r);
    }
    rt_buf_free(&res);
}

/* presence's deliver callback: drains the mailbox (join/leave pushes, API disconnect/subscribe/unsubscribe). */
static void deliver_mail(void *owner)
{
    rt_cf_t *cf = owner;
    if (cf->peer == NULL)
        return;
    rt_cf_mail_t *mail = rt_presence_take_mail(cf->peer);
    for (rt_cf_mail_t *m = mail; m != NULL; m = m->next) {
        switch (m->kind) {
        case RT_CF_MAIL_PUSH:
            if (rt__cf_find_sub(cf, m->channel) != NULL)
                cf->t->send_push(cf, m->push->data, m->push->len);
            break;
        case RT_CF_MAIL_DISCONNECT:
            cf->t->disconnect(cf, m->code, m->reason);
            rt_cf_mail_free(mail);
            return;
        case RT_CF_MAIL_UNSUBSCRIBE:
            rt__cf_unsubscribe(cf, m->channel, true);
            break;
        case RT_CF_MAIL_SUBSCRIBE:
            server_subscribe(cf, m->channel);
            break;
        }
    }
    rt_cf_mail_free(mail);
}

int rt__cf_tick(rt_cf_t *cf, int64_t now_wall_ms)
{
    if (cf->expire_at_ms != 0 && now_wall_ms >= cf->expire_at_ms + RT_CF_EXPIRED_CLOSE_DELAY_MS)
        return RT_CF_DISC_EXPIRED;
    for (size_t i = 0; i < cf->n_subs; i++) {
        rt_cf_sub_t *sub = cf->subs[i];
        if (sub->expire_at_ms == 0 || now_wall_ms < sub->expire_at_ms + RT_CF_EXPIRED_CLOSE_DELAY_MS)
            continue;
        if (sub->server_side)
            return 3006; /* subscription expired */
        push_unsubscribe(cf, sub->channel, 2501, "subscription expired");
        rt__cf_unsubscribe(cf, sub->channel, false);
        i--;
    }
    return 0;
}

int rt__cf_gap(rt_cf_t *cf)
{
    if (!cf->connected)
        return 0;
    for (size_t i = 0; i < cf->n_subs; i++)
        if (cf->subs[i]->server_side)
            return RT_CF_DISC_INSUFFICIENT_STATE; /* the client cannot subscribe to those again by itself */
    while (cf->n_subs != 0) {
        rt_cf_sub_t *sub = cf->subs[0];
        /* 2500..2999: centrifuge-js subscribes again, recovering, and is answered recovered=false. */
        push_unsubscribe(cf, sub->channel, 2500, "insufficient state");
        rt__cf_unsubscribe(cf, sub->channel, false);
    }
    return 0;
}

void rt__cf_dispose(rt_cf_t *cf)
{
    /* Also after the broadcaster dropped the client: mail may have subscribed it again since. */
    rt_broadcaster_remove_client(cf->broadcaster, &cf->client);
    cf->detached = true; /* the subscriptions are gone with the client */
    if (cf->peer != NULL)
        rt_presence_unregister(cf->peer);
    cf->peer = NULL;
    for (size_t i = 0; i < cf->n_subs; i++)
        free_sub(cf, cf->subs[i]);
    free(cf->subs);
    cf->subs = NULL;
    cf->n_subs = 0;
    free(cf->user);
    free(cf->conn_info);
    rt_token_grants_free(cf->granted);
}

/* Reverse history with `since`: the publications before since.offset, newest first (Centrifuge semantics). */
static int history_before(rt_history_t *h, const char *channel, const rt_stream_pos_t *since, size_t limit,
                          rt_event_list_t *out, rt_stream_pos_t *top)
{
    rt_event_list_t all;
    rt_history_stream_read(h, channel, SIZE_MAX, true, &all, top);
    if (since->epoch[0] != '\0' && strcmp(since->epoch, top->epoch) != 0) {
        rt_event_list_free(&all);
        return RT_CF_ERR_UNRECOVERABLE_POSITION;
    }
    out->events = rt_mem_calloc(all.count + 1, sizeof(*out->events));
    out->count = 0;
    for (size_t i = 0; i < all.count; i++) {
        rt_event_t *ev = all.events[i];
        int ci = rt_event_channel_index(ev, channel, strlen(channel));
        if (ci >= 0 && ev->offsets[ci] < since->offset && out->count < limit)
            out->events[out->count++] = rt_event_ref(ev);
    }
    rt_event_list_free(&all);
    return 0;
}

int rt__cf_history(rt_server_t *s, const json_t *req, rt_buf_t *out)
{
    const char *channel = json_string_value(json_object_get(req, "channel"));
    if (channel == NULL || channel[0] == '\0')
        return RT_CF_ERR_BAD_REQUEST;
    if (!rt_channel_valid(channel, strlen(channel)) || rt_channel_is_all(channel, strlen(channel)))
        return RT_CF_ERR_UNKNOWN_CHANNEL;
    const json_t *jlimit = json_object_get(req, "limit"), *jsince = json_object_get(req, "since");
    if ((jlimit != NULL && !json_is_integer(jlimit) && !json_is_null(jlimit)) ||
        (jsince != NULL && !json_is_object(jsince) && !json_is_null(jsince)))
        return RT_CF_ERR_BAD_REQUEST;
    json_int_t lim = json_integer_value(jlimit);
    size_t limit = lim < 0 ? SIZE_MAX : (size_t)lim;
    bool reverse = json_is_true(json_object_get(req, "reverse"));
    rt_history_t *h = s->history;
    rt_event_list_t list = {0};
    rt_stream_pos_t top;
    if (json_is_object(jsince) && limit != 0) {
        rt_stream_pos_t since;
        read_position(jsince, &since);
        if (reverse) {
            int r = history_before(h, channel, &since, limit, &list, &top);
            if (r != 0)
                return r;
        } else {
            if (rt_history_stream_since(h, channel, &since, limit == SIZE_MAX ? 0 : limit, &list) != 0)
                return RT_CF_ERR_UNRECOVERABLE_POSITION;
            rt_history_stream_top(h, channel, &top);
        }
    } else {
        rt_history_stream_read(h, channel, limit, reverse, &list, &top);
    }
    rt_buf_appends(out, "{\"publications\":[");
    for (size_t i = 0; i < list.count; i++) {
        int ci = rt_event_channel_index(list.events[i], channel, strlen(channel));
        if (ci < 0)
            continue;
        if (i != 0)
            rt_buf_append(out, ",", 1);
        rt__cf_append_pub(out, list.events[i], (size_t)ci);
    }
    rt_buf_appendf(out, "],\"epoch\":\"%s\",\"offset\":%llu}", top.epoch, (unsigned long long)top.offset);
    rt_event_list_free(&list);
    return 0;
}
