/*
 * GET /connection/websocket: Centrifuge client protocol v2, JSON, on the shared WebSocket state machine.
 *
 * A text message holds one or more commands separated by '\n', handled in order (centrifuge-js sends
 * connect and its subscribes in one frame). Each reply and push goes out as its own text frame. Pings are
 * application level: `{}` every centrifuge_ping seconds, answered by `{}` within centrifuge_pong, else the
 * connection is closed with 3012 "no pong". Disconnects are WebSocket close frames carrying the code.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "realtime/version.h"
#include "realtime/channel.h"
#include "realtime/error.h"
#include "protocol/centrifuge.h"
#include "server/routes.h"
#include "server/server.h"
#include "core/token.h"
#include "transport/ws_codec.h"
#include "transport/ws_conn.h"
#include "util/clock.h"
#include "util/mem.h"

#define LOG_PREFIX "centrifuge"
#include "util/log.h"

#define SERVER_VERSION "realtime " RT_VERSION

typedef struct st_cf_ws_t {
    rt_cf_t cf;
    rt_ws_t *ws;
    int64_t connect_deadline_ms;
    int64_t next_ping_ms;
    int64_t pong_deadline_ms; /* 0: no ping outstanding */
    bool connect_failed;      /* a connect error was replied: any further command is a protocol violation */
    rt_list_t pending_pubs;   /* pending_pub_t: publishes and presence queries waiting for the broker */
} cf_ws_t;

/*
 * A client publish or presence query waiting for the broker (the worker goes on meanwhile): its connection (NULL
 * once closed), id and method.
 */
typedef struct st_pending_pub_t {
    rt_list_t link; /* in w->pending_pubs while w is there */
    cf_ws_t *w;
    uint32_t id;
    rt_event_t *ev;     /* a publish's event, NULL for a query */
    const char *method; /* a query's: "presence" or "presence_stats" */
} pending_pub_t;

static void ws_send_push(rt_cf_t *cf, const char *body, size_t len)
{
    cf_ws_t *w = (cf_ws_t *)cf;
    rt_buf_t buf = {0};
    rt_buf_appends(&buf, "{\"push\":");
    rt_buf_append(&buf, body, len);
    rt_buf_append(&buf, "}", 1);
    rt_ws_send_text(w->ws, buf.base, buf.len);
    rt_buf_free(&buf);
}

static int ws_send_pub(rt_cf_t *cf, rt_event_t *ev, size_t ci)
{
    cf_ws_t *w = (cf_ws_t *)cf;
    rt_bytes_t *frame = rt__cf_pub_frame(ev, ci);
    if (frame == NULL)
        return RT_EINVAL;
    int r = rt_ws_try_send_frame(w->ws, frame);
    if (r == RT_E2BIG) {
        atomic_fetch_add_explicit(&cf->server->stats.slow_disconnects, 1, memory_order_relaxed);
        RT_LOG_INFO("client %s: slow consumer (%zu bytes queued), closing", cf->client_id, cf->conn->queued_bytes);
        rt_ws_close(w->ws, RT_CF_DISC_SLOW, "slow");
    }
    return r;
}

static void ws_disconnect(rt_cf_t *cf, uint16_t code, const char *reason)
{
    rt_ws_close(((cf_ws_t *)cf)->ws, code, reason != NULL ? reason : rt__cf_disconnect_reason(code));
}

static const rt_cf_transport_t ws_transport = {.send_push = ws_send_push, .send_pub = ws_send_pub, .disconnect = ws_disconnect};

/* Sends {"id":N,"<method>":<result>} (result NULL = {}). */
static void reply(cf_ws_t *w, uint32_t id, const char *method, const char *result, size_t len)
{
    rt_buf_t buf = {0};
    rt_buf_appendf(&buf, "{\"id\":%u,\"%s\":", id, method);
    if (result != NULL)
        rt_buf_append(&buf, result, len);
    else
        rt_buf_appends(&buf, "{}");
    rt_buf_append(&buf, "}", 1);
    rt_ws_send_text(w->ws, buf.base, buf.len);
    rt_buf_free(&buf);
}

static void reply_error(cf_ws_t *w, uint32_t id, int code)
{
    rt_buf_t buf = {0};
    rt_buf_appendf(&buf, "{\"id\":%u,\"error\":", id);
    rt__cf_append_error(&buf, code, NULL);
    rt_buf_append(&buf, "}", 1);
    rt_ws_send_text(w->ws, buf.base, buf.len);
    rt_buf_free(&buf);
}

/* Replies with the code when it is an error code; returns it when it is a disconnect code (the caller closes). */
static int fail(cf_ws_t *w, uint32_t id, int code)
{
    if (code >= 3000)
        return code;
    reply_error(w, id, code);
    return 0;
}

static int64_t ttl_of(int64_t expire_at_ms)
{
    int64_t ttl = (expire_at_ms - rt_clock_wall_ms() + 999) / 1000;
    return ttl > 0 ? ttl : 1;
}

static void schedule_pings(cf_ws_t *w)
{
    const rt_config_t *cfg = w->cf.server->config;
    int64_t period = (int64_t)(cfg->centrifuge_ping_s * 1000);
    /* The first ping comes after a random delay in [N/2, N), so reconnect waves do not ping in step. */
    w->next_ping_ms = rt_conn_now(w->cf.conn) + period / 2 + (period > 1 ? (int64_t)(rand() % (int)(period / 2 + 1)) : 0);
}

static int cmd_connect(cf_ws_t *w, uint32_t id, const json_t *req)
{
    rt_cf_t *cf = &w->cf;
    json_t *token_channels;
    int r = rt__cf_authenticate(cf, json_string_value(json_object_get(req, "token")), &token_channels);
    if (r != 0) {
        w->connect_failed = true;
        return fail(w, id, r);
    }
    rt__cf_connected(cf);
    const rt_config_t *cfg = cf->server->config;
    rt_buf_t res = {0};
    rt_buf_appendf(&res, "{\"client\":\"%s\",\"version\":\"%s\",\"ping\":%d,\"pong\":true", cf->client_id, SERVER_VERSION,
                   (int)ceil(cfg->centrifuge_ping_s));
    if (cf->expire_at_ms != 0)
        rt_buf_appendf(&res, ",\"expires\":true,\"ttl\":%lld", (long long)ttl_of(cf->expire_at_ms));
    /* Server-side subscriptions from the token's channels, recovering from the positions in connect.subs. */
    rt__cf_server_subs(cf, token_channels, json_object_get(req, "subs"), &res);
    rt_buf_append(&res, "}", 1);
    reply(w, id, "connect", res.base, res.len);
    rt_buf_free(&res);
    for (size_t i = 0; i < cf->n_subs; i++)
        rt__cf_subscribed(cf, cf->subs[i]->channel);
    json_decref(token_channels);
    schedule_pings(w);
    return 0;
}

static int cmd_subscribe(cf_ws_t *w, uint32_t id, const json_t *req)
{
    const char *channel = json_string_value(json_object_get(req, "channel"));
    if (channel == NULL)
        return RT_CF_DISC_BAD_REQUEST;
    rt_buf_t res = {0};
    int r = rt__cf_subscribe(&w->cf, channel, req, false, &res);
    if (r == 0) {
        reply(w, id, "subscribe", res.base, res.len);
        rt__cf_subscribed(&w->cf, channel);
    }
    rt_buf_free(&res);
    return r == 0 ? 0 : fail(w, id, r);
}

static void on_client_published(void *ctx, int status, rt_event_t *existing)
{
    pending_pub_t *pp = ctx;
    rt_event_unref(existing);
    if (pp->w != NULL) {
        rt_list_unlink(&pp->link);
        if (status == 0 || status == RT_EEXIST)
            reply(pp->w, pp->id, "publish", NULL, 0);
        else
            reply_error(pp->w, pp->id, RT_CF_ERR_INTERNAL);
    }
    rt_event_unref(pp->ev);
    free(pp);
}

static int cmd_publish(cf_ws_t *w, uint32_t id, const json_t *req)
{
    rt_cf_t *cf = &w->cf;
    const char *channel = json_string_value(json_object_get(req, "channel"));
    json_t *data = json_object_get(req, "data");
    if (channel == NULL || data == NULL)
        return fail(w, id, RT_CF_ERR_BAD_REQUEST);
    size_t len = strlen(channel);
    if (!rt_channel_valid(channel, len) || rt_channel_is_all(channel, len))
        return fail(w, id, RT_CF_ERR_UNKNOWN_CHANNEL);
    /* A client publishes where its channel's namespace allows it, and only to a channel it may read. */
    const char *why;
    rt_grant_t grant = {.admin = cf->admin, .subscribe = (const char *const *)cf->granted, .n_subscribe = cf->n_granted};
    if (!rt_namespace_of(cf->server->access, channel, len)->client_publish ||
        !rt_access_read(cf->server->access, &grant, channel, len, &why))
        return fail(w, id, RT_CF_ERR_PERMISSION_DENIED);
    rt_event_t *ev;
    char err[256];
    if (rt__cf_make_event(&channel, 1, data, NULL, &ev, err, sizeof(err)) != 0)
        return fail(w, id, RT_CF_ERR_BAD_REQUEST);
    pending_pub_t *pp = rt_mem_alloc(sizeof(*pp));
    *pp = (pending_pub_t){.w = w, .id = id, .ev = ev};
    rt_list_insert_tail(&w->pending_pubs, &pp->link);
    rt_server_publish_async(cf->server, cf->conn->worker, ev, on_client_published, pp); /* replies when done */
    return 0;
}

/* A presence query answered (at once, or across nodes once Redis answered). */
static void on_presence_answered(void *ctx, int status, const char *result, size_t len)
{
    pending_pub_t *pp = ctx;
    if (pp->w != NULL) {
        rt_list_unlink(&pp->link);
        if (status == 0)
            reply(pp->w, pp->id, pp->method, result, len);
        else
            reply_error(pp->w, pp->id, RT_CF_ERR_INTERNAL);
    }
    free(pp);
}

/* presence, presence_stats, history: the client must be subscribed to the channel. */
static int cmd_channel_query(cf_ws_t *w, uint32_t id, const char *method, const json_t *req)
{
    rt_cf_t *cf = &w->cf;
    const char *channel = json_string_value(json_object_get(req, "channel"));
    if (channel == NULL)
        return fail(w, id, RT_CF_ERR_BAD_REQUEST);
    if (rt__cf_find_sub(cf, channel) == NULL)
        return fail(w, id, RT_CF_ERR_PERMISSION_DENIED);
    const rt_namespace_t *ns = rt_namespace_of(cf->server->access, channel, strlen(channel));
    if (strcmp(method, "history") == 0) {
        if (!ns->history)
            return fail(w, id, RT_CF_ERR_NOT_AVAILABLE);
        rt_buf_t res = {0};
        int r = rt__cf_history(cf->server, req, &res);
        if (r == 0)
            reply(w, id, method, res.base, res.len);
        rt_buf_free(&res);
        return r == 0 ? 0 : fail(w, id, r);
    }
    if (!ns->presence)
        return fail(w, id, RT_CF_ERR_NOT_AVAILABLE);
    pending_pub_t *pp = rt_mem_alloc(sizeof(*pp));
    *pp = (pending_pub_t){.w = w, .id = id, .method = strcmp(method, "presence") == 0 ? "presence" : "presence_stats"};
    rt_list_insert_tail(&w->pending_pubs, &pp->link);
    rt_presence_query(cf->conn->worker, channel, strcmp(method, "presence_stats") == 0, on_presence_answered, pp);
    return 0;
}

/* refresh: a new connection token for the same user. */
static int cmd_refresh(cf_ws_t *w, uint32_t id, const json_t *req)
{
    rt_cf_t *cf = &w->cf;
    const char *token = json_string_value(json_object_get(req, "token"));
    if (token == NULL || token[0] == '\0')
        return fail(w, id, RT_CF_ERR_BAD_REQUEST);
    if (!rt_token_verifier_has_keys(cf->server->tokens))
        return rt__cf_no_keys(cf, RT_CF_DISC_INVALID_TOKEN) == RT_CF_ERR_INTERNAL ? fail(w, id, RT_CF_ERR_INTERNAL)
                                                                                 : RT_CF_DISC_INVALID_TOKEN;
    rt_token_claims_t cl;
    char err[128];
    int r = rt_token_verify(cf->server->tokens, token, (int64_t)time(NULL), &cl, err, sizeof(err));
    int ret = 0;
    if (r == RT_ERANGE)
        ret = RT_CF_DISC_EXPIRED;
    else if (r != 0 || cl.channel != NULL || strcmp(cl.sub != NULL ? cl.sub : "", cf->user) != 0)
        ret = RT_CF_DISC_INVALID_TOKEN;
    else
        cf->expire_at_ms = cl.exp * 1000;
    rt_token_claims_free(&cl);
    if (ret != 0)
        return ret;
    rt_buf_t res = {0};
    rt_buf_appendf(&res, "{\"client\":\"%s\",\"version\":\"%s\"", cf->client_id, SERVER_VERSION);
    if (cf->expire_at_ms != 0)
        rt_buf_appendf(&res, ",\"expires\":true,\"ttl\":%lld", (long long)ttl_of(cf->expire_at_ms));
    rt_buf_append(&res, "}", 1);
    reply(w, id, "refresh", res.base, res.len);
    rt_buf_free(&res);
    return 0;
}

/* sub_refresh: a new subscription token for a subscribed channel. */
static int cmd_sub_refresh(cf_ws_t *w, uint32_t id, const json_t *req)
{
    rt_cf_t *cf = &w->cf;
    const char *channel = json_string_value(json_object_get(req, "channel"));
    const char *token = json_string_value(json_object_get(req, "token"));
    rt_cf_sub_t *sub = channel != NULL ? rt__cf_find_sub(cf, channel) : NULL;
    if (sub == NULL)
        return fail(w, id, RT_CF_ERR_PERMISSION_DENIED);
    if (sub->expire_at_ms == 0 || token == NULL)
        return RT_CF_DISC_BAD_REQUEST;
    int ret = rt__cf_check_sub_token(cf, channel, token, &sub->expire_at_ms);
    if (ret != 0)
        return fail(w, id, ret);
    char res[64];
    int n = sub->expire_at_ms != 0 ? snprintf(res, sizeof(res), "{\"expires\":true,\"ttl\":%lld}", (long long)ttl_of(sub->expire_at_ms))
                                   : snprintf(res, sizeof(res), "{}");
    reply(w, id, "sub_refresh", res, (size_t)n);
    return 0;
}

static const char *const methods[] = {"connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats",
                                      "history", "ping", "send", "rpc", "refresh", "sub_refresh"};

/* One command. Returns 0 or a disconnect code. */
static int handle_command(cf_ws_t *w, const json_t *cmd)
{
    rt_cf_t *cf = &w->cf;
    const json_t *jid = json_object_get(cmd, "id");
    if (jid != NULL && (!json_is_integer(jid) || json_integer_value(jid) < 0 || json_integer_value(jid) > UINT32_MAX))
        return RT_CF_DISC_BAD_REQUEST;
    uint32_t id = (uint32_t)json_integer_value(jid);
    const char *method = NULL;
    const json_t *req = NULL;
    for (size_t i = 0; i < RT_ARRAY_SIZE(methods) && method == NULL; i++) {
        req = json_object_get(cmd, methods[i]);
        if (req != NULL)
            method = methods[i];
    }
    if (method != NULL && strcmp(method, "send") == 0)
        return cf->connected ? 0 : RT_CF_DISC_BAD_REQUEST; /* async message: no handler, no reply */
    if (id == 0) {
        w->pong_deadline_ms = 0; /* {} (or anything without an id) is a pong */
        return 0;
    }
    if (method == NULL || !json_is_object(req) || w->connect_failed)
        return RT_CF_DISC_BAD_REQUEST;
    rt_ws_rate_t rate = rt_ws_rate_take(w->ws);
    if (rate != RT_WS_RATE_OK) {
        rt_server_count_limit(cf->server, RT_LIMIT_COMMAND_RATE);
        return rate == RT_WS_RATE_CUT ? RT_CF_DISC_TOO_MANY_REQUESTS : fail(w, id, RT_CF_ERR_TOO_MANY_REQUESTS);
    }
    if (strcmp(method, "connect") == 0)
        return cf->connected ? RT_CF_DISC_BAD_REQUEST : cmd_connect(w, id, req);
    if (!cf->connected)
        return RT_CF_DISC_BAD_REQUEST;
    if (strcmp(method, "subscribe") == 0)
        return cmd_subscribe(w, id, req);
    if (strcmp(method, "unsubscribe") == 0) {
        const char *channel = json_string_value(json_object_get(req, "channel"));
        if (channel != NULL)
            rt__cf_unsubscribe(cf, channel, false);
        reply(w, id, "unsubscribe", NULL, 0);
        return 0;
    }
    if (strcmp(method, "publish") == 0)
        return cmd_publish(w, id, req);
    if (strcmp(method, "presence") == 0 || strcmp(method, "presence_stats") == 0 || strcmp(method, "history") == 0)
        return cmd_channel_query(w, id, method, req);
    if (strcmp(method, "rpc") == 0)
        return fail(w, id, RT_CF_ERR_METHOD_NOT_FOUND);
    if (strcmp(method, "refresh") == 0)
        return cmd_refresh(w, id, req);
    if (strcmp(method, "sub_refresh") == 0)
        return cmd_sub_refresh(w, id, req);
    return RT_CF_DISC_BAD_REQUEST; /* "ping": the JS client never sends it; Centrifuge closes */
}

static int cf_on_message(rt_ws_t *ws, void *state, const char *msg, size_t len)
{
    cf_ws_t *w = state;
    size_t pos = 0;
    while (pos < len && !rt_ws_is_closing(ws)) {
        const char *nl = memchr(msg + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - msg) : len;
        const char *line = msg + pos;
        size_t n = end - pos;
        pos = end + 1;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
            k++;
        if (k == n)
            continue;
        json_t *cmd = json_loadb(line, n, 0, NULL);
        int r = json_is_object(cmd) ? handle_command(w, cmd) : RT_CF_DISC_BAD_REQUEST;
        json_decref(cmd);
        if (r != 0) {
            rt_ws_close(ws, (uint16_t)r, rt__cf_disconnect_reason(r));
            break;
        }
    }
    return 0;
}

static void cf_on_tick(rt_ws_t *ws, void *state, int64_t now)
{
    cf_ws_t *w = state;
    rt_cf_t *cf = &w->cf;
    if (!cf->connected) {
        if (now >= w->connect_deadline_ms)
            rt_ws_close(ws, RT_CF_DISC_STALE, "stale");
        return;
    }
    int r = rt__cf_tick(cf, rt_clock_wall_ms());
    if (r != 0) {
        rt_ws_close(ws, (uint16_t)r, rt__cf_disconnect_reason(r));
        return;
    }
    const rt_config_t *cfg = cf->server->config;
    if (w->pong_deadline_ms != 0 && now >= w->pong_deadline_ms) {
        rt_ws_close(ws, RT_CF_DISC_NO_PONG, "no pong");
        return;
    }
    if (cfg->centrifuge_ping_s > 0 && now >= w->next_ping_ms) {
        rt_ws_send_text(ws, "{}", 2);
        if (w->pong_deadline_ms == 0)
            w->pong_deadline_ms = now + (int64_t)(cfg->centrifuge_pong_s * 1000);
        w->next_ping_ms = now + (int64_t)(cfg->centrifuge_ping_s * 1000);
    }
}

static void *cf_on_open(rt_ws_t *ws, const rt_http_request_t *req)
{
    cf_ws_t *w = rt_mem_calloc(1, sizeof(*w));
    w->ws = ws;
    rt_list_init(&w->pending_pubs);
    rt__cf_init(&w->cf, rt_ws_conn(ws), &ws_transport, ws);
    w->connect_deadline_ms = rt_conn_now(w->cf.conn) + RT_CF_CONNECT_TIMEOUT_MS;
    return w;
}

static void cf_on_shutdown(rt_ws_t *ws, void *state)
{
    rt_ws_close(ws, RT_CF_DISC_SHUTDOWN, "shutdown");
}

static void cf_on_gap(rt_ws_t *ws, void *state, rt_gap_t reason)
{
    cf_ws_t *w = state;
    int r = rt__cf_gap(&w->cf);
    if (r != 0)
        rt_ws_close(ws, (uint16_t)r, rt__cf_disconnect_reason(r));
}

static void cf_on_close(rt_ws_t *ws, void *state)
{
    cf_ws_t *w = state;
    rt_list_t *l, *tmp;
    rt_list_foreach_safe(l, tmp, &w->pending_pubs)
    {
        pending_pub_t *pp = RT_STRUCT_FROM_MEMBER(pending_pub_t, link, l);
        rt_list_unlink(&pp->link);
        pp->w = NULL; /* its answer finds nobody to tell */
    }
    rt__cf_dispose(&w->cf);
    free(w);
}

static const rt_ws_protocol_t centrifuge_protocol = {
    .name = "centrifuge",
    .kind = RT_CONN_CENTRIFUGE,
    .ping_frames = false,
    .on_open = cf_on_open,
    .on_message = cf_on_message,
    .on_tick = cf_on_tick,
    .on_shutdown = cf_on_shutdown,
    .on_close = cf_on_close,
    .on_gap = cf_on_gap,
};

void rt__centrifuge_ws_accept(rt_conn_t *c, rt_http_request_t *req)
{
    rt_ws_accept(c, req, &centrifuge_protocol);
}
