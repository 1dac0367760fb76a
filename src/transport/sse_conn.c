/*
 * The SSE stream of GET /events. The connection's client is subscribed on its worker's broadcaster
 * before history is read, so nothing published meanwhile is missed; a per-connection watermark (the
 * seq of the last event sent) then drops the live copies of what the replay already covered, so the
 * stream is in seq order without duplicates.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/error.h"
#include "net/worker.h"
#include "protocol/native_sub.h"
#include "server/server.h"
#include "transport/sse_codec.h"
#include "transport/sse_conn.h"
#include "util/mem.h"

#define LOG_PREFIX "sse"
#include "util/log.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

#define RESET_BLOCK "event: reset\ndata: {\"reason\":\"history_unavailable\"}\n\n"
/* The resume point reaches a namespace without history (no replay there can be complete). */
#define NO_HISTORY_BLOCK "event: reset\ndata: {\"reason\":\"history_disabled\"}\n\n"

/*
 * c->proto of a stream, and most of what an idle one costs beside the connection: nothing the connection knows
 * is repeated (client.data is the connection; the server and broadcaster are its worker's; the next ping is due
 * at c->deadline_ms), so that this is one 64-byte malloc chunk. A stream is counted in stats.subscriptions.
 */
typedef struct st_sse_t {
    rt_client_t client;
    uint64_t watermark; /* seq of the newest event sent or covered by the replay */
    bool detached;      /* the broadcaster dropped the client (its close op ran) */
    uint8_t ended;      /* rt_disconnect_t + 1 when the server ended the stream; 0: the client did */
} sse_t;

static rt_bytes_t *ping_bytes;
static pthread_once_t ping_once = PTHREAD_ONCE_INIT;

static void make_ping(void)
{
    ping_bytes = rt_bytes_new(RT_SSE_PING, RT_SSE_PING_LEN); /* kept for the life of the process */
}

static rt_bytes_t *encode_block(const rt_event_t *ev, size_t channel_index, void *ctx)
{
    rt_sse_event_t se = {.id = ev->id,
                         .id_len = ev->id_len,
                         .type = ev->type,
                         .type_len = strlen(ev->type),
                         .data = ev->json,
                         .data_len = ev->json_len};
    return rt_sse_event_bytes(&se);
}

/* Queues ev on c (whose stream is s) unless the watermark covers it. Returns 0 or a negative error (RT_E2BIG: slow
 * consumer). */
static int send_event(rt_conn_t *c, sse_t *s, rt_event_t *ev)
{
    if (ev->seq <= s->watermark)
        return 0;
    rt_bytes_t *block = rt_event_form(ev, RT_FORM_SSE, 0, encode_block, NULL);
    if (block == NULL)
        return RT_EINVAL; /* an id or type with a line break: cannot happen for a validated event */
    int r = rt_conn_send(c, block, false);
    if (r != 0)
        return r;
    s->watermark = ev->seq;
    rt_conn_count_delivered(c, 1);
    return 0;
}

static int client_send(rt_client_t *client, rt_event_t *ev, rt_subscription_t *sub, size_t channel_index)
{
    rt_conn_t *c = client->data;
    if (c->closing || c->close_after_flush)
        return 0;
    int r = send_event(c, c->proto, ev);
    if (r == RT_E2BIG) {
        ((sse_t *)c->proto)->ended = RT_DISC_SLOW_CONSUMER + 1;
        atomic_fetch_add_explicit(&rt_conn_server(c)->stats.slow_disconnects, 1, memory_order_relaxed);
        RT_LOG_INFO("slow consumer (%zu bytes queued), closing", c->queued_bytes);
        rt_conn_note_close(c, 0, "slow consumer", 13);
    } else if (r != 0) {
        atomic_fetch_add_explicit(&rt_conn_server(c)->stats.send_failures, 1, memory_order_relaxed);
    }
    return r; /* non-zero: the broadcaster drops the client and calls client_close */
}

static void client_close(rt_client_t *client, int reason)
{
    rt_conn_t *c = client->data;
    ((sse_t *)c->proto)->detached = true;
    rt_conn_close(c);
}

static const rt_client_ops_t client_ops = {.send = client_send, .close = client_close};

static ssize_t sse_on_data(rt_conn_t *c, const char *buf, size_t len)
{
    return (ssize_t)len; /* the client has nothing to say on an event stream */
}

static void sse_on_tick(rt_conn_t *c, int64_t now_ms)
{
    if (now_ms < c->deadline_ms)
        return;
    c->deadline_ms = now_ms + (int64_t)(rt_conn_server(c)->config->heartbeat_s * 1000);
    /* A full queue means the stream is not idle: no ping needed, and the next event decides about slowness. */
    if (c->out_count == 0)
        (void)rt_conn_send(c, ping_bytes, false);
}

static void sse_on_shutdown(rt_conn_t *c)
{
    ((sse_t *)c->proto)->ended = RT_DISC_SHUTDOWN + 1;
    rt_conn_note_close(c, 0, "server shutting down", 20);
    rt_conn_close_after_flush(c);
}

/* Events were lost: `event: reset` (reason events_lost), then live events from where the stream goes on. */
static void sse_on_gap(rt_conn_t *c, rt_gap_t reason)
{
    sse_t *s = c->proto;
    if (s->detached || c->close_after_flush)
        return;
    char block[128];
    int n = snprintf(block, sizeof(block), "event: reset\ndata: {\"reason\":\"events_lost\",\"detail\":\"%s\"}\n\n", rt_gap_names[reason]);
    rt_conn_send_copy(c, block, (size_t)n);
    s->watermark = 0; /* a new epoch may number its events below the old ones */
}

static void sse_on_close(rt_conn_t *c)
{
    sse_t *s = c->proto;
    rt_conn_count_disconnect(c, s->ended != 0 ? (rt_disconnect_t)(s->ended - 1) : RT_DISC_CLIENT);
    if (!s->detached)
        rt_broadcaster_remove_client(rt__worker_broadcaster(c->worker), &s->client);
    atomic_fetch_sub_explicit(&rt_conn_server(c)->stats.subscriptions, 1, memory_order_relaxed);
    free(s);
}

static const rt_conn_handler_t sse_handler = {
    .on_data = sse_on_data,
    .on_tick = sse_on_tick,
    .on_shutdown = sse_on_shutdown,
    .on_close = sse_on_close,
    .on_gap = sse_on_gap,
};

/* Sends the replay; when it does not fit in the client's queue, what is left becomes a reset. */
static void send_replay(rt_conn_t *c, sse_t *s, rt_event_list_t *replay, uint64_t upto)
{
    for (size_t i = 0; i < replay->count; i++) {
        if (send_event(c, s, replay->events[i]) != 0) {
            RT_LOG_DEBUG("replay of %zu events over the queue limit: reset", replay->count - i);
            rt_conn_send_copy(c, RESET_BLOCK, sizeof(RESET_BLOCK) - 1);
            break;
        }
        atomic_fetch_add_explicit(&rt_conn_server(c)->stats.replayed, 1, memory_order_relaxed);
    }
    s->watermark = upto;
}

static void refuse(rt_conn_t *c, rt_native_sub_t *sub, const rt_native_error_t *err)
{
    rt_http_respond_error(c, rt_native_error_status(err), err->code, "%s", err->message);
    rt_native_sub_dispose(sub);
}

void rt_sse_accept(rt_conn_t *c, rt_http_request_t *req)
{
    rt_server_t *server = rt_conn_server(c);
    const rt_config_t *cfg = server->config;
    rt_native_sub_t sub;
    rt_native_error_t err;
    if (rt_native_sub_from_query(req->query, &sub, &err) != 0) {
        rt_http_respond_error(c, rt_native_error_status(&err), err.code, "%s", err.message);
        return;
    }
    if (sub.n_channels == 0) {
        rt_http_respond_error(c, 400, "bad_request", "channels: required (e.g. /events?channels=incidents,system)");
        rt_native_sub_dispose(&sub);
        return;
    }
    if (rt_native_sub_check_size(&sub, cfg->max_channels_per_subscribe, &err) != 0) {
        rt_server_count_limit(server, RT_LIMIT_CHANNELS_PER_SUBSCRIBE);
        refuse(c, &sub, &err);
        return;
    }
    rt_token_claims_t claims;
    int refused = rt_native_check_token(server->tokens, rt_native_token(&sub, req), &claims, &err);
    rt_grant_t grant = rt_native_grant(&claims);
    refused = refused != 0 || rt_native_sub_check_access(&sub, server->access, &grant, &err) != 0;
    rt_token_claims_free(&claims);
    if (refused) {
        refuse(c, &sub, &err);
        return;
    }
    /* The browser's reconnect carries the newest id it saw; it beats the one in the (unchanged) URL. */
    const char *hdr = rt_http_header(req, "last-event-id");
    if (hdr != NULL && hdr[0] != '\0' && strlen(hdr) <= RT_EVENT_ID_MAX) {
        free(sub.last_event_id);
        sub.last_event_id = rt_strdup(hdr);
    }

    bool no_history = rt_native_sub_drop_resume(&sub, server->access);
    sse_t *s = rt_mem_calloc(1, sizeof(*s));
    s->client = (rt_client_t){.ops = &client_ops, .data = c};
    rt_subscription_t *subscription;
    rt_event_list_t replay;
    uint64_t upto;
    int r = rt_native_sub_attach(&sub, rt__worker_broadcaster(c->worker), server->history, &s->client, &subscription,
                                 &replay, &upto);
    rt_native_sub_dispose(&sub);
    if (r == RT_EINVAL) {
        free(s);
        rt_http_respond_error(c, 503, "unavailable", "server is shutting down");
        return;
    }
    atomic_fetch_add_explicit(&server->stats.subscriptions, 1, memory_order_relaxed);

    pthread_once(&ping_once, make_ping);
    char head[RT_HTTP_REPLY_HEADERS_MAX + 256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nServer: realtime\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     "X-Accel-Buffering: no\r\nConnection: keep-alive\r\n%s\r\nretry: " STRINGIFY(RT_SSE_RETRY_MS) "\n\n",
                     rt_http_reply_headers(c));
    rt_conn_send_copy(c, head, (size_t)n);
    /* req points into the HTTP layer's state, which the switch frees: it is not used past here. */
    rt_http_switch(c, &sse_handler, s);
    rt_conn_set_kind(c, RT_CONN_SSE);
    c->deadline_ms = rt_conn_now(c) + (int64_t)(cfg->heartbeat_s * 1000); /* the next ping */

    if (no_history || r == RT_ERANGE) {
        if (no_history)
            rt_conn_send_copy(c, NO_HISTORY_BLOCK, sizeof(NO_HISTORY_BLOCK) - 1);
        else
            rt_conn_send_copy(c, RESET_BLOCK, sizeof(RESET_BLOCK) - 1);
        s->watermark = upto;
    } else {
        send_replay(c, s, &replay, upto);
    }
    rt_event_list_free(&replay);
}
