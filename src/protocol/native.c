/*
 * The native /ws protocol. The connection is one broadcaster client, so the broadcaster already gives it
 * an event once however many of its subscriptions match. A per-connection watermark (the seq of the newest
 * event sent, or covered by a replay) keeps the stream in seq order without duplicates: a subscription with
 * a resume point is attached before history is read, so events published meanwhile arrive live too, and the
 * watermark drops the live copies of what the replay already sent.
 *
 * Control replies are small and built with jansson; events are sent as their cached RT_FORM_NATIVE_WS frame,
 * the same bytes for every connection.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "realtime/error.h"
#include "net/worker.h"
#include "protocol/native.h"
#include "protocol/native_sub.h"
#include "server/routes.h"
#include "server/server.h"
#include "transport/utf8.h"
#include "transport/ws_codec.h"
#include "util/buf.h"
#include "util/mem.h"

#define LOG_PREFIX "native"
#include "util/log.h"

typedef struct st_native_entry_t {
    char *id; /* freed with rt_native_sub_free_id */
    rt_subscription_t *sub;
} native_entry_t;

/*
 * Embedded in the connection's block (rt_ws_protocol_t.state_size), which makes the two 120 bytes: one 128-byte
 * malloc chunk per idle connection. Hence no pointers to what the connection knows (the rt_ws_t is at a fixed
 * offset, the server and broadcaster are the connection's worker's), and the one subscription most connections
 * hold is kept in place of the array.
 */
typedef struct st_native_t {
    rt_client_t client;
    uint64_t watermark; /* seq of the newest event sent or covered by a replay */
    union {
        native_entry_t one;   /* cap_subs <= 1 */
        native_entry_t *many; /* cap_subs > 1 */
    } subs;
    char **granted;     /* what the token grants beyond admin (rt_token_grants), or NULL */
    uint32_t auto_ids;  /* subscriptions given an id by us */
    uint8_t n_subs, cap_subs;
    bool admin : 1;     /* the query's token carries "admin": true */
    bool detached : 1;  /* the broadcaster dropped the client: the entries' subs are gone */
} native_t;

_Static_assert(RT_NATIVE_MAX_SUBSCRIPTIONS <= 128, "n_subs and cap_subs are 8 bits");

static rt_ws_t *native_ws(native_t *n)
{
    return rt_ws_of_state(n, sizeof(*n));
}

static rt_server_t *server_of(native_t *n)
{
    return rt_conn_server(rt_ws_conn(native_ws(n)));
}

static rt_broadcaster_t *broadcaster_of(native_t *n)
{
    return rt__worker_broadcaster(rt_ws_conn(native_ws(n))->worker);
}

static native_entry_t *entries(native_t *n)
{
    return n->cap_subs > 1 ? n->subs.many : &n->subs.one;
}

static const char EVENT_HEAD[] = "{\"type\":\"event\",\"event\":";

/* The RT_FORM_NATIVE_WS encoder: the complete text frame of {"type":"event","event":<ev->json>}. */
static rt_bytes_t *encode_event_frame(const rt_event_t *ev, size_t channel_index, void *ctx)
{
    size_t plen = sizeof(EVENT_HEAD) - 1 + ev->json_len + 1;
    size_t h = rt_ws_frame_header_size(plen);
    rt_bytes_t *b = rt_bytes_new(NULL, h + plen);
    char *p = b->data + rt_ws_frame_header((uint8_t *)b->data, RT_WS_OP_TEXT, 1, plen);
    memcpy(p, EVENT_HEAD, sizeof(EVENT_HEAD) - 1);
    p += sizeof(EVENT_HEAD) - 1;
    memcpy(p, ev->json, ev->json_len);
    p[ev->json_len] = '}';
    return b;
}

static rt_bytes_t *event_frame(rt_event_t *ev)
{
    return rt_event_form(ev, RT_FORM_NATIVE_WS, 0, encode_event_frame, NULL);
}

/* Sends obj (reference stolen) as one text message. */
static void send_json(native_t *n, json_t *obj)
{
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (text == NULL)
        return; /* only on out-of-memory inside jansson */
    rt_ws_send_text(native_ws(n), text, strlen(text));
    free(text);
}

static void send_error(native_t *n, const char *id, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void send_error(native_t *n, const char *id, const char *code, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Messages quote what the peer sent, cut to fit (here or by the parser): never in the middle of a character,
     * or jansson would refuse the string and the peer would get no answer. */
    size_t mlen = len < 0 ? 0 : (size_t)len < sizeof(msg) ? (size_t)len : sizeof(msg) - 1;
    while (mlen > 0 && rt_utf8_validate(msg, mlen) != 0)
        mlen--;
    msg[mlen] = '\0';
    json_t *obj = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "code", code, "message", msg);
    if (obj != NULL && id != NULL)
        json_object_set_new(obj, "id", json_string(id));
    send_json(n, obj);
}

static void send_reset(native_t *n, const char *id, const char *reason)
{
    send_json(n, json_pack("{s:s,s:s,s:s}", "type", "reset", "id", id, "reason", reason));
}

static int client_send(rt_client_t *client, rt_event_t *ev, rt_subscription_t *sub, size_t channel_index)
{
    native_t *n = client->data;
    if (ev->seq <= n->watermark)
        return 0;
    rt_bytes_t *frame = event_frame(ev);
    rt_ws_t *ws = native_ws(n);
    int r = rt_ws_send_frame(ws, frame);
    if (r == RT_ECLOSED)
        return 0; /* the connection is ending; its on_close removes the client */
    if (r != 0)
        return r; /* slow consumer, already counted and being closed: the broadcaster drops the client */
    n->watermark = ev->seq;
    rt_conn_count_delivered(rt_ws_conn(ws), 1);
    return 0;
}

static void client_close(rt_client_t *client, int reason)
{
    native_t *n = client->data;
    n->detached = true;
    native_entry_t *e = entries(n);
    for (size_t i = 0; i < n->n_subs; i++)
        e[i].sub = NULL;
    rt_ws_close(native_ws(n), RT_WS_CLOSE_INTERNAL, "delivery failed");
}

static const rt_client_ops_t client_ops = {.send = client_send, .close = client_close};

static ssize_t find_sub(native_t *n, const char *id)
{
    native_entry_t *e = entries(n);
    for (size_t i = 0; i < n->n_subs; i++)
        if (strcmp(e[i].id, id) == 0)
            return (ssize_t)i;
    return -1;
}

/* Room for one more entry: the first goes in place, more in an array (4, then doubling). */
static void grow_subs(native_t *n)
{
    if (n->cap_subs == 0) {
        n->cap_subs = 1;
        return;
    }
    size_t cap = n->cap_subs == 1 ? 4 : (size_t)n->cap_subs * 2;
    native_entry_t *a;
    if (n->cap_subs == 1) {
        a = rt_mem_alloc(cap * sizeof(*a));
        a[0] = n->subs.one;
    } else {
        a = rt_mem_realloc(n->subs.many, cap * sizeof(*a));
    }
    n->subs.many = a;
    n->cap_subs = (uint8_t)cap;
}

/* Sends the replayed events; what does not fit in the client's queue becomes a reset (never a silent gap). */
static void send_replay(native_t *n, const char *id, const rt_event_list_t *replay)
{
    rt_ws_t *ws = native_ws(n);
    rt_server_t *server = server_of(n);
    for (size_t i = 0; i < replay->count; i++) {
        rt_event_t *ev = replay->events[i];
        if (ev->seq <= n->watermark)
            continue;
        int r = rt_ws_try_send_frame(ws, event_frame(ev));
        if (r == RT_E2BIG) {
            RT_LOG_DEBUG("replay of %zu events over the queue limit: reset", replay->count - i);
            send_reset(n, id, "history_unavailable");
            return;
        }
        if (r != 0)
            return;
        n->watermark = ev->seq;
        rt_conn_count_delivered(rt_ws_conn(ws), 1);
        atomic_fetch_add_explicit(&server->stats.replayed, 1, memory_order_relaxed);
    }
}

/* Written by hand, not with jansson or printf: every connection with a query subscription gets one. Channel
 * names need no escaping (their alphabet has no quote, backslash or control character); the id is the client's. */
static void announce(native_t *n, const rt_native_sub_t *sub, const char *id)
{
    static const char head[] = "{\"type\":\"subscribed\",\"id\":", mid[] = ",\"channels\":[";
    rt_buf_t b = {0};
    rt_buf_append(&b, head, sizeof(head) - 1);
    rt_buf_append_json_string(&b, id);
    rt_buf_append(&b, mid, sizeof(mid) - 1);
    for (size_t i = 0; i < sub->n_channels; i++) {
        if (i > 0)
            rt_buf_append(&b, ",", 1);
        rt_buf_append(&b, "\"", 1);
        rt_buf_appends(&b, sub->channels[i]);
        rt_buf_append(&b, "\"", 1);
    }
    rt_buf_append(&b, "]}", 2);
    rt_ws_send_text(native_ws(n), b.base, b.len);
    rt_buf_free(&b);
}

/*
 * Checks and attaches a parsed subscription, announces it, then replays from its resume point (or resets).
 * Consumes sub. Errors go to the peer; the connection stays.
 */
static void subscribe(native_t *n, rt_native_sub_t *sub)
{
    rt_server_t *server = server_of(n);
    rt_broadcaster_t *broadcaster = broadcaster_of(n);
    rt_native_error_t err;
    char auto_id[24];
    if (sub->id == NULL) {
        do
            snprintf(auto_id, sizeof(auto_id), "sub-%u", ++n->auto_ids);
        while (find_sub(n, auto_id) >= 0);
        sub->id = rt_strdup(auto_id);
    }
    if (find_sub(n, sub->id) >= 0) {
        send_error(n, sub->id, "bad_request", "subscription id \"%s\" is already in use", sub->id);
        goto Done;
    }
    const rt_config_t *cfg = server->config;
    if (n->n_subs >= cfg->max_subscriptions) {
        rt_server_count_limit(server, RT_LIMIT_SUBSCRIPTIONS);
        send_error(n, sub->id, "limit_exceeded", "at most %zu subscriptions per connection (max_subscriptions)", cfg->max_subscriptions);
        goto Done;
    }
    if (rt_native_sub_check_size(sub, cfg->max_channels_per_subscribe, &err) != 0) {
        rt_server_count_limit(server, RT_LIMIT_CHANNELS_PER_SUBSCRIBE);
        send_error(n, sub->id, err.code, "%s", err.message);
        goto Done;
    }
    rt_grant_t grant = {.admin = n->admin, .subscribe = (const char *const *)n->granted};
    while (n->granted != NULL && n->granted[grant.n_subscribe] != NULL)
        grant.n_subscribe++;
    if (rt_native_sub_check_access(sub, server->access, &grant, &err) != 0) {
        send_error(n, sub->id, err.code, "%s", err.message);
        goto Done;
    }
    bool no_history = rt_native_sub_drop_resume(sub, server->access);
    if (sub->last_event_id != NULL && n->n_subs != 0) {
        /* Events already queued for this worker would be covered by the watermark the replay raises: deliver them
         * to the existing subscriptions first. */
        rt_broadcaster_dispatch(broadcaster, 0);
        if (rt_ws_is_closing(native_ws(n)) || n->detached)
            goto Done;
    }
    rt_subscription_t *s;
    rt_event_list_t replay;
    uint64_t upto;
    int r = rt_native_sub_attach(sub, broadcaster, server->history, &n->client, &s, &replay, &upto);
    if (r == RT_EINVAL) {
        send_error(n, sub->id, "unavailable", "the server is shutting down");
        goto Done;
    }
    if (n->n_subs == n->cap_subs)
        grow_subs(n);
    entries(n)[n->n_subs++] = (native_entry_t){sub->id, s};
    const char *id = sub->id;
    sub->id = NULL;
    atomic_fetch_add_explicit(&server->stats.subscriptions, 1, memory_order_relaxed);
    announce(n, sub, id);
    if (no_history)
        send_reset(n, id, "history_disabled");
    else if (r == RT_ERANGE)
        send_reset(n, id, "history_unavailable");
    else if (sub->last_event_id != NULL)
        send_replay(n, id, &replay);
    if (sub->last_event_id != NULL && upto > n->watermark)
        n->watermark = upto;
    rt_event_list_free(&replay);
Done:
    rt_native_sub_dispose(sub);
}

static void unsubscribe(native_t *n, const char *id)
{
    if (id == NULL) {
        send_error(n, NULL, "bad_request", "unsubscribe: id required");
        return;
    }
    ssize_t i = find_sub(n, id);
    if (i < 0) {
        send_error(n, id, "not_found", "no subscription with id \"%s\"", id);
        return;
    }
    native_entry_t *all = entries(n), e = all[i];
    all[i] = all[--n->n_subs];
    if (e.sub != NULL)
        rt_broadcaster_unsubscribe(broadcaster_of(n), e.sub);
    atomic_fetch_sub_explicit(&server_of(n)->stats.subscriptions, 1, memory_order_relaxed);
    send_json(n, json_pack("{s:s,s:s}", "type", "unsubscribed", "id", id));
    rt_native_sub_free_id(e.id);
}

static int native_on_message(rt_ws_t *ws, void *state, const char *text, size_t len)
{
    native_t *n = state;
    rt_ws_rate_t rate = rt_ws_rate_take(ws);
    if (rate != RT_WS_RATE_OK) {
        /* Refused before parsing: reading floods is the work the limit saves. */
        const rt_config_t *cfg = server_of(n)->config;
        rt_server_count_limit(server_of(n), RT_LIMIT_COMMAND_RATE);
        if (rate == RT_WS_RATE_CUT)
            rt_ws_close(ws, RT_WS_CLOSE_POLICY, "message rate limit");
        else
            send_error(n, NULL, "limit_exceeded", "more than %zu messages per second (client_command_rate; burst %zu): slow down",
                       cfg->client_command_rate, cfg->client_command_burst);
        return 0;
    }
    json_error_t jerr;
    json_t *msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (msg == NULL) {
        /* jansson's text for a NUL names its own option; say what the client can act on. */
        const char *why = json_error_code(&jerr) == json_error_null_character ? "\\u0000 is not allowed in strings" : jerr.text;
        send_error(n, NULL, "invalid_json", "invalid JSON: %s (column %d)", why, jerr.column);
        return 0;
    }
    const json_t *jid = json_object_get(msg, "id"), *jtype = json_object_get(msg, "type");
    const char *id = json_is_string(jid) ? json_string_value(jid) : NULL;
    const char *type = json_string_value(jtype);
    if (!json_is_object(msg)) {
        send_error(n, NULL, "bad_request", "a message must be a JSON object");
    } else if (type == NULL) {
        send_error(n, id, "bad_request", "type: required (subscribe, unsubscribe or ping)");
    } else if (strcmp(type, "subscribe") == 0) {
        rt_native_sub_t sub;
        rt_native_error_t err;
        if (rt_native_sub_from_json(msg, &sub, &err) != 0)
            send_error(n, id, err.code, "%s", err.message);
        else
            subscribe(n, &sub);
    } else if (strcmp(type, "unsubscribe") == 0) {
        unsubscribe(n, id);
    } else if (strcmp(type, "ping") == 0) {
        json_t *pong = json_pack("{s:s}", "type", "pong");
        if (pong != NULL && id != NULL)
            json_object_set_new(pong, "id", json_string(id));
        send_json(n, pong);
    } else {
        send_error(n, id, "unknown_type", "unknown message type \"%.64s\"", type);
    }
    json_decref(msg);
    return 0;
}

static uint32_t id_prefix;
static atomic_uint_fast64_t id_counter;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

static void init_id_prefix(void)
{
    if (getrandom(&id_prefix, sizeof(id_prefix), GRND_NONBLOCK) != (ssize_t)sizeof(id_prefix))
        id_prefix = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 16;
}

/* Writes v in base 10 or 16 (lowercase), at least min_digits wide; returns the end. */
static char *put_uint(char *p, uint64_t v, unsigned base, int min_digits)
{
    char tmp[20];
    int n = 0;
    do
        tmp[n++] = "0123456789abcdef"[v % base];
    while ((v /= base) != 0);
    while (n < min_digits)
        tmp[n++] = '0';
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

/*
 * "c-" + a random per-process prefix (8 hex digits) + a counter (8 or more): unique within the process, unlikely
 * to repeat across nodes. Returns the end of the id (not NUL-terminated): buf needs 26 bytes.
 */
static char *put_client_id(char *buf)
{
    pthread_once(&id_once, init_id_prefix);
    uint64_t k = atomic_fetch_add_explicit(&id_counter, 1, memory_order_relaxed) + 1;
    buf[0] = 'c', buf[1] = '-';
    return put_uint(put_uint(buf + 2, id_prefix, 16, 8), k, 16, 8);
}

/* By hand, as announce (once per connection): the client id is ours and needs no escaping. */
static void welcome(native_t *n)
{
    static const char head[] = "{\"type\":\"welcome\",\"client_id\":\"", mid[] = "\",\"heartbeat_s\":";
    char msg[128], *p = msg;
    memcpy(p, head, sizeof(head) - 1);
    p = put_client_id(p + sizeof(head) - 1);
    memcpy(p, mid, sizeof(mid) - 1);
    p += sizeof(mid) - 1;
    double hb = server_of(n)->config->heartbeat_s;
    if (hb >= 0 && hb < 1e9 && hb == (double)(uint32_t)hb)
        p = put_uint(p, (uint32_t)hb, 10, 1); /* printf's %g cost 1,700 instructions */
    else
        p += snprintf(p, (size_t)(msg + sizeof(msg) - 1 - p), "%.15g", hb);
    *p++ = '}';
    rt_ws_send_text(native_ws(n), msg, (size_t)(p - msg));
}

static void *native_on_open(rt_ws_t *ws, const rt_http_request_t *req)
{
    native_t *n = rt_ws_state(ws); /* embedded, zeroed */
    n->client = (rt_client_t){.ops = &client_ops, .data = n};
    welcome(n);

    rt_native_sub_t sub;
    rt_native_error_t err;
    if (rt_native_sub_from_query(req->query, &sub, &err) != 0) {
        send_error(n, "query", err.code, "%s", err.message);
        return n;
    }
    rt_token_claims_t claims;
    int tr = rt_native_check_token(server_of(n)->tokens, rt_native_token(&sub, req), &claims, &err);
    size_t n_granted;
    n->admin = claims.admin;
    n->granted = rt_token_grants(&claims, &n_granted);
    rt_token_claims_free(&claims);
    if (tr != 0) {
        /* A token that does not verify subscribes nothing; the connection stays, as for any refused subscription. */
        send_error(n, sub.n_channels != 0 ? "query" : NULL, err.code, "%s", err.message);
        rt_native_sub_dispose(&sub);
        return n;
    }
    if (sub.n_channels == 0) {
        rt_native_sub_dispose(&sub);
        return n;
    }
    subscribe(n, &sub);
    return n;
}

/* Events were lost: every subscription gets {"type":"reset","id":…,"reason":"events_lost","detail":…}. */
static void native_on_gap(rt_ws_t *ws, void *state, rt_gap_t reason)
{
    native_t *n = state;
    if (n->detached)
        return;
    native_entry_t *e = entries(n);
    for (size_t i = 0; i < n->n_subs; i++)
        send_json(n, json_pack("{s:s,s:s,s:s,s:s}", "type", "reset", "id", e[i].id, "reason", "events_lost", "detail",
                               rt_gap_names[reason]));
    n->watermark = 0; /* a new epoch may number its events below the old ones */
}

static void native_on_close(rt_ws_t *ws, void *state)
{
    native_t *n = state;
    rt_broadcaster_remove_client(broadcaster_of(n), &n->client);
    if (n->n_subs != 0)
        atomic_fetch_sub_explicit(&server_of(n)->stats.subscriptions, (int_fast64_t)n->n_subs, memory_order_relaxed);
    native_entry_t *e = entries(n);
    for (size_t i = 0; i < n->n_subs; i++)
        rt_native_sub_free_id(e[i].id);
    if (n->cap_subs > 1)
        free(n->subs.many);
    rt_token_grants_free(n->granted);
    /* n itself is part of the connection's block, freed by the WebSocket layer */
}

const rt_ws_protocol_t rt_native_protocol = {
    .name = "native",
    .kind = RT_CONN_WS,
    .ping_frames = true,
    .state_size = sizeof(native_t),
    .on_open = native_on_open,
    .on_message = native_on_message,
    .on_close = native_on_close,
    .on_gap = native_on_gap,
};

void rt_native_handle_ws(rt_conn_t *c, rt_http_request_t *req)
{
    rt_ws_accept(c, req, &rt_native_protocol);
}
