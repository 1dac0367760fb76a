/*
 * /connection/uni_sse: Centrifugo's unidirectional SSE transport (centrifuge-v2.md section 11).
 *
 * The connect request comes from ?cf_connect=<URL-encoded JSON> (GET) or the JSON body (POST); no request
 * is an empty one. The client's channels are its server-side subscriptions: the token's `channels` claim
 * (recovering from the positions in the request's `subs`) and later /api/subscribe calls. Each push is one
 * `data: <push JSON>` event without the {"push":…} wrapper; pings are `data: {}`; a disconnect is a
 * disconnect push, then the end of the stream.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/version.h"
#include "realtime/error.h"
#include "protocol/centrifuge.h"
#include "server/routes.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/mem.h"

#define LOG_PREFIX "uni_sse"
#include "util/log.h"


#define CF_CONNECT_MAX 32768

typedef struct st_uni_t {
    rt_cf_t cf;
    int64_t next_ping_ms;
    bool ended; /* disconnect sent: nothing more goes out */
} uni_t;

static void uni_send_push(rt_cf_t *cf, const char *body, size_t len)
{
    uni_t *u = (uni_t *)cf;
    if (u->ended || cf->conn->closing)
        return;
    rt_buf_t buf = {0};
    rt_buf_appends(&buf, "data: ");
    rt_buf_append(&buf, body, len);
    rt_buf_appends(&buf, "\n\n");
    rt_conn_send_copy(cf->conn, buf.base, buf.len);
    rt_buf_free(&buf);
}

static void uni_disconnect(rt_cf_t *cf, uint16_t code, const char *reason)
{
    uni_t *u = (uni_t *)cf;
    if (u->ended)
        return;
    char body[192];
    int n = snprintf(body, sizeof(body), "{\"disconnect\":{\"code\":%u,\"reason\":\"%s\"}}", code,
                     reason != NULL ? reason : rt__cf_disconnect_reason(code));
    uni_send_push(cf, body, (size_t)n);
    const char *why = reason != NULL ? reason : rt__cf_disconnect_reason(code);
    if (why != NULL)
        rt_conn_note_close(cf->conn, code, why, strlen(why));
    u->ended = true;
    rt_conn_close_after_flush(cf->conn);
}

static int uni_send_pub(rt_cf_t *cf, rt_event_t *ev, size_t ci)
{
    uni_t *u = (uni_t *)cf;
    if (u->ended || cf->conn->closing || cf->conn->close_after_flush)
        return RT_ECLOSED;
    int r = rt_conn_send(cf->conn, rt__cf_pub_sse(ev, ci), false);
    if (r == RT_E2BIG) {
        atomic_fetch_add_explicit(&cf->server->stats.slow_disconnects, 1, memory_order_relaxed);
        RT_LOG_INFO("client %s: slow consumer (%zu bytes queued), closing", cf->client_id, cf->conn->queued_bytes);
        rt_conn_note_close(cf->conn, 0, "slow consumer", 13);
        u->ended = true;
        rt_conn_close(cf->conn);
    }
    return r;
}

static const rt_cf_transport_t uni_transport = {.send_push = uni_send_push, .send_pub = uni_send_pub, .disconnect = uni_disconnect};

static ssize_t uni_on_data(rt_conn_t *c, const char *buf, size_t len)
{
    return (ssize_t)len; /* nothing is read after the connect request */
}

static void uni_on_tick(rt_conn_t *c, int64_t now)
{
    uni_t *u = c->proto;
    if (u->ended)
        return;
    int r = rt__cf_tick(&u->cf, rt_clock_wall_ms());
    if (r != 0) {
        uni_disconnect(&u->cf, (uint16_t)r, NULL);
        return;
    }
    const rt_config_t *cfg = u->cf.server->config;
    if (cfg->centrifuge_ping_s > 0 && now >= u->next_ping_ms) {
        u->next_ping_ms = now + (int64_t)(cfg->centrifuge_ping_s * 1000);
        if (c->out_count == 0)
            uni_send_push(&u->cf, "{}", 2);
    }
}

static void uni_on_shutdown(rt_conn_t *c)
{
    uni_disconnect(&((uni_t *)c->proto)->cf, RT_CF_DISC_SHUTDOWN, "shutdown");
}

static void uni_on_gap(rt_conn_t *c, rt_gap_t reason)
{
    uni_t *u = c->proto;
    if (u->ended)
        return;
    int r = rt__cf_gap(&u->cf);
    if (r != 0)
        uni_disconnect(&u->cf, (uint16_t)r, NULL);
}

static void uni_on_close(rt_conn_t *c)
{
    uni_t *u = c->proto;
    rt__cf_dispose(&u->cf);
    free(u);
}

static const rt_conn_handler_t uni_handler = {
    .on_data = uni_on_data,
    .on_tick = uni_on_tick,
    .on_shutdown = uni_on_shutdown,
    .on_close = uni_on_close,
    .on_gap = uni_on_gap,
};

/* The connect request: the POST body or ?cf_connect=; NULL after answering 400. */
static json_t *read_request(rt_conn_t *c, const rt_http_request_t *req)
{
    json_t *obj = NULL;
    json_error_t jerr;
    if (strcmp(req->method, "POST") == 0) {
        obj = req->body.len != 0 ? json_loadb(req->body.base, req->body.len, 0, &jerr) : json_object();
    } else {
        char *v = rt_mem_alloc(CF_CONNECT_MAX);
        obj = rt_http_query_get(req->query, "cf_connect", v, CF_CONNECT_MAX) ? json_loads(v, 0, &jerr) : json_object();
        free(v);
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        rt_http_respond_error(c, 400, "bad_request", "cf_connect: a JSON object (Centrifuge ConnectRequest) is required");
        return NULL;
    }
    return obj;
}

void rt__uni_sse_accept(rt_conn_t *c, rt_http_request_t *req)
{
    json_t *creq = read_request(c, req);
    if (creq == NULL)
        return;
    uni_t *u = rt_mem_calloc(1, sizeof(*u));
    rt_cf_t *cf = &u->cf;
    rt__cf_init(cf, c, &uni_transport, u);
    json_t *token_channels = NULL;
    int auth = rt__cf_authenticate(cf, json_string_value(json_object_get(creq, "token")), &token_channels);

    char head[RT_HTTP_REPLY_HEADERS_MAX + 320];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nServer: realtime\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                     "Cache-Control: private, no-cache, no-store, must-revalidate, max-age=0\r\n"
                     "Pragma: no-cache\r\nExpire: 0\r\nX-Accel-Buffering: no\r\nConnection: keep-alive\r\n%s\r\n\r\n",
                     rt_http_reply_headers(c));
    rt_conn_send_copy(c, head, (size_t)n);
    rt_http_switch(c, &uni_handler, u);
    rt_conn_set_kind(c, RT_CONN_UNI_SSE);
    if (auth != 0) {
        /* The stream carries the refusal: an expired token ends like an expired connection (reconnect with a new
         * token), anything else as an invalid token. */
        int code = auth == RT_CF_ERR_TOKEN_EXPIRED ? RT_CF_DISC_EXPIRED
                   : auth == RT_CF_ERR_INTERNAL    ? RT_CF_DISC_INTERNAL /* keys not fetched yet: reconnect */
                                                   : RT_CF_DISC_INVALID_TOKEN;
        uni_disconnect(cf, (uint16_t)code, auth == RT_CF_ERR_UNAUTHORIZED ? "unauthorized" : NULL);
        json_decref(creq);
        return;
    }
    rt__cf_connected(cf);
    const rt_config_t *cfg = cf->server->config;
    rt_buf_t res = {0};
    rt_buf_appendf(&res, "{\"connect\":{\"client\":\"%s\",\"version\":\"realtime %s\",\"ping\":%d,\"session\":\"%s\"",
                   cf->client_id, RT_VERSION, (int)ceil(cfg->centrifuge_ping_s), cf->client_id);
    if (cf->expire_at_ms != 0) {
        int64_t ttl = (cf->expire_at_ms - rt_clock_wall_ms() + 999) / 1000;
        rt_buf_appendf(&res, ",\"expires\":true,\"ttl\":%lld", (long long)(ttl > 0 ? ttl : 1));
    }
    rt__cf_server_subs(cf, token_channels, json_object_get(creq, "subs"), &res);
    rt_buf_appends(&res, "}}");
    uni_send_push(cf, res.base, res.len);
    rt_buf_free(&res);
    for (size_t i = 0; i < cf->n_subs; i++)
        rt__cf_subscribed(cf, cf->subs[i]->channel);
    json_decref(token_channels);
    json_decref(creq);
    u->next_ping_ms = rt_conn_now(c) + (int64_t)(cfg->centrifuge_ping_s * 1000);
}
