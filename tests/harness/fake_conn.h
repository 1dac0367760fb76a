/*
 * The fake connection layer, part 2 of 2 (part 1, fake_conn_names.h, says how the two are included).
 *
 * One connection, `conn`, of a server (`server`, configured by `config`, with a real history) whose one worker
 * has a real broadcaster, `bc`, dispatched only when a test says so. Everything the connection would write goes
 * to `out` (read from `out_pos` on); nothing drains, so conn.queued_bytes only grows unless a test resets it.
 * The clock is `now_ms`. feed() offers input the way conn.c does, including leftovers and handler switches.
 * A test may drive more connections of its own: what they write goes to `other_out` instead, so that `out` stays
 * one connection's stream.
 * Without part 1 (a test of the HTTP handler itself, linked with the real http.c) the HTTP fakes are left out.
 */
#ifndef TESTS_HARNESS_FAKE_CONN_H
#define TESTS_HARNESS_FAKE_CONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "realtime/broadcaster.h"
#include "realtime/error.h"
#include "realtime/history.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/access_log.h"
#include "net/worker.h"
#include "server/server.h"
#include "transport/ws_codec.h"
#include "util/buf.h"
#include "util/list.h"
#include "util/mem.h"

#define FAKE_UNUSED __attribute__((unused))

static rt_config_t config FAKE_UNUSED;
static rt_server_t server FAKE_UNUSED;
static rt_access_t fake_access FAKE_UNUSED; /* server.access points here */
static rt_broadcaster_t *bc FAKE_UNUSED;
static rt_conn_t conn FAKE_UNUSED;
static rt_buf_t out FAKE_UNUSED;       /* everything "written" to the peer */
static rt_buf_t other_out FAKE_UNUSED; /* everything connections other than conn wrote */
static size_t out_pos FAKE_UNUSED;     /* next unread byte of out */
static rt_buf_t in FAKE_UNUSED;        /* input not yet consumed by the handler */
static int64_t now_ms FAKE_UNUSED;
static unsigned fake_refused FAKE_UNUSED; /* events the broadcaster refused (its queue was full) */
static const uint8_t mask[4] FAKE_UNUSED = {0x37, 0xfa, 0x21, 0x3d};

/* ---- the connection layer ---- */

int rt_conn_send(rt_conn_t *c, rt_bytes_t *b, bool force)
{
    if (c->closing || c->close_after_flush)
        return 0;
    if (!force && c->queued_bytes + b->len > config.client_queue_bytes)
        return RT_E2BIG;
    rt_buf_append(c == &conn ? &out : &other_out, b->data, b->len);
    c->queued_bytes += b->len;
    return 0;
}

void rt_conn_send_copy(rt_conn_t *c, const void *p, size_t len)
{
    rt_bytes_t *b = rt_bytes_new(p, len);
    rt_conn_send(c, b, true);
    rt_bytes_unref(b);
}

void rt_conn_close(rt_conn_t *c)
{
    c->closing = true;
}

void rt_conn_close_after_flush(rt_conn_t *c)
{
    if (!c->closing)
        c->close_after_flush = true;
}

int64_t rt_conn_now(const rt_conn_t *c)
{
    return now_ms;
}

void rt_conn_set_kind(rt_conn_t *c, rt_conn_kind_t kind)
{
    c->kind = kind;
}

/* Deliveries counted by the handlers under test (the real counter is per worker). */
static uint64_t fake_delivered;

void rt_conn_count_delivered(rt_conn_t *c, unsigned n)
{
    fake_delivered += n;
}

rt_server_t *rt_conn_server(const rt_conn_t *c)
{
    return &server;
}

void rt_conn_peer(rt_conn_t *c, char *buf, size_t size)
{
    snprintf(buf, size, "test-peer");
}

bool rt_conn_input_waiting(rt_conn_t *c)
{
    return in.len > 0;
}

void rt_conn_pause_reading(rt_conn_t *c, bool pause)
{
    c->reading_paused = pause;
}

/* The fake connection keeps no access record: access_log is off. */
rt_conn_access_t *rt__conn_access(rt_conn_t *c)
{
    return NULL;
}

void rt_conn_note_close(rt_conn_t *c, unsigned code, const char *reason, size_t reason_len)
{
}

void rt_conn_count_disconnect(rt_conn_t *c, rt_disconnect_t reason)
{
    atomic_fetch_add_explicit(&server.stats.disconnects[reason], 1, memory_order_relaxed);
}

rt_broadcaster_t *rt__worker_broadcaster(rt_worker_t *w)
{
    return bc;
}

/* The one worker's task queue: run by feed() once the handler is done with the input, as the loop would. */
static rt_list_t fake_tasks = {&fake_tasks, &fake_tasks};

void rt__worker_run_soon(rt_worker_t *w, rt_worker_task_t *task)
{
    if (!rt_list_linked(&task->link))
        rt_list_insert_tail(&fake_tasks, &task->link);
}

void rt__worker_cancel(rt_worker_t *w, rt_worker_task_t *task)
{
    if (rt_list_linked(&task->link))
        rt_list_unlink(&task->link);
}

static inline void fake_run_tasks(void)
{
    while (!rt_list_empty(&fake_tasks)) {
        rt_worker_task_t *t = RT_STRUCT_FROM_MEMBER(rt_worker_task_t, link, fake_tasks.next);
        rt_list_unlink(&t->link);
        t->cb(t);
    }
}

#ifdef rt_http_switch
/* ---- the HTTP layer's part in a WebSocket handshake ---- */

static int http_status;      /* last plain HTTP response */
static char http_extra[128]; /* its extra headers */

void rt_http_switch(rt_conn_t *c, const rt_conn_handler_t *handler, void *proto)
{
    c->handler = handler;
    c->proto = proto;
}

void rt_http_respond(rt_conn_t *c, int status, const char *content_type, const char *body, size_t len, const char *extra)
{
    http_status = status;
    snprintf(http_extra, sizeof(http_extra), "%s", extra != NULL ? extra : "");
}

void rt_http_respond_error(rt_conn_t *c, int status, const char *code, const char *fmt, ...)
{
    http_status = status;
}
#endif

/* ---- setting up and driving ---- */

static inline void fake_no_wakeup(void *ctx)
{
}

/* A fresh server (defaults, insecure as in development; history_size 0 = the default), broadcaster and connection. */
static inline void fake_setup(size_t history_size)
{
    rt_config_defaults(&config);
    config.insecure = true;
    memset(&server, 0, sizeof(server));
    fake_delivered = 0;
    server.config = &config;
    fake_access = (rt_access_t){.insecure = true};
    server.access = &fake_access;
    rt_history_config_t hc = {.size = history_size};
    server.history = rt_history_new(&hc);
    rt_broadcaster_config_t bcfg = {.wakeup = fake_no_wakeup};
    bc = rt_broadcaster_new(&bcfg);
    memset(&conn, 0, sizeof(conn));
    out.len = in.len = out_pos = other_out.len = 0;
    now_ms = 1000000;
    fake_refused = 0;
#ifdef rt_http_switch
    http_status = 0;
    http_extra[0] = '\0';
#endif
}

/* Closes the connection the way the uv_close callback does, then frees everything. */
static inline void fake_teardown(void)
{
    if (conn.handler != NULL && conn.handler->on_close != NULL)
        conn.handler->on_close(&conn);
    conn.handler = NULL;
    rt_buf_free(&out);
    rt_buf_free(&other_out);
    rt_buf_free(&in);
    rt_broadcaster_close(bc);
    rt_history_free(server.history);
    rt_config_free(&config);
}

/* Offers input the way conn.c does: leftovers are kept and offered again with the next bytes. */
static inline void feed(const void *p, size_t len)
{
    rt_buf_append(&in, p, len);
    size_t off = 0;
    while (off < in.len && !conn.closing && !conn.close_after_flush) {
        const rt_conn_handler_t *h = conn.handler;
        ssize_t n = h->on_data(&conn, in.base + off, in.len - off);
        if (n < 0) {
            off = in.len;
            break;
        }
        off += (size_t)n;
        if (n == 0 && conn.handler == h)
            break;
    }
    rt_buf_consume(&in, off);
    fake_run_tasks();
}

/* Sends one masked client frame, offered to the handler in pieces of `piece` bytes (0: at once). */
static inline void client_frame_in_pieces(int op, int fin, const void *p, size_t len, size_t piece)
{
    uint8_t *buf = malloc(rt_ws_client_frame_size(len));
    size_t n = rt_ws_client_frame(buf, (uint8_t)op, fin, mask, p, len);
    if (piece == 0)
        piece = n;
    for (size_t off = 0; off < n && !conn.closing && !conn.close_after_flush; off += piece)
        feed(buf + off, n - off < piece ? n - off : piece);
    free(buf);
}

/* Sends one masked client frame. */
static inline void client_frame(int op, int fin, const void *p, size_t len)
{
    client_frame_in_pieces(op, fin, p, len, 0);
}

static inline void client_text(const char *s)
{
    client_frame(RT_WS_OP_TEXT, 1, s, strlen(s));
}

/*
 * Hands accept a valid WebSocket handshake for GET path?query (a route handler such as rt_native_handle_ws).
 * Returns the length of the response head written to out (the 101 and its headers; 0 when none), and moves
 * out_pos past it.
 */
static inline size_t fake_ws_open(void (*accept)(rt_conn_t *, rt_http_request_t *), const char *path, const char *query)
{
    static rt_http_request_t req;
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.path = path;
    req.query = query;
    req.http_minor = 1;
    req.upgrade = true;
    const char *h[][2] = {{"host", "localhost"},
                          {"upgrade", "websocket"},
                          {"connection", "keep-alive, Upgrade"},
                          {"sec-websocket-version", "13"},
                          {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="}};
    for (size_t i = 0; i < 5; i++)
        req.headers[req.n_headers++] = (rt_http_header_t){h[i][0], h[i][1], strlen(h[i][1])};
    size_t start = out.len;
    accept(&conn, &req);
    char *end = out.len > start ? memmem(out.base + start, out.len - start, "\r\n\r\n", 4) : NULL;
    if (end == NULL)
        return 0;
    out_pos = (size_t)(end + 4 - out.base);
    return out_pos - start;
}

/* The next server frame in out: 1 with *f and *payload (in out), 0 when none is left, -1 for a partial or bad one. */
static inline int fake_next_frame(rt_ws_frame_t *f, const char **payload)
{
    if (out_pos == out.len)
        return 0;
    memset(f, 0, sizeof(*f)); /* require_mask = 0: server frames are not masked */
    int h = rt_ws_parse_frame((const uint8_t *)out.base + out_pos, out.len - out_pos, f);
    if (h <= 0 || out.len - out_pos - (size_t)h < f->payload_len)
        return -1;
    *payload = out.base + out_pos + h;
    out_pos += (size_t)h + (size_t)f->payload_len;
    return 1;
}

/*
 * The next server frame other than a close: 1 with *f and *payload, 0 at the end of the output. Aborts on a bad
 * frame, a masked or fragmented one, or a close whose payload does not parse (for fuzz targets, which check
 * everything the server writes). verbose: print each frame to stderr.
 */
static inline int fake_next_checked_frame(rt_ws_frame_t *f, const char **payload, bool verbose)
{
    int r;
    while ((r = fake_next_frame(f, payload)) == 1) {
        if (verbose)
            fprintf(stderr, "< op %d: %.*s\n", f->opcode, (int)f->payload_len, *payload);
        if (f->masked || !f->fin)
            abort();
        if (f->opcode != RT_WS_OP_CLOSE)
            return 1;
        rt_ws_close_t cl;
        if (rt_ws_parse_close((const uint8_t *)*payload, (size_t)f->payload_len, &cl) != 0)
            abort();
    }
    if (r != 0)
        abort();
    return 0;
}

/* Hands an accepted event to the worker, as rt_server_publish does (ctx: unused). */
static inline void fake_accept_event(rt_event_t *ev, void *ctx)
{
    if (rt_broadcaster_broadcast(bc, ev) != 0)
        fake_refused++;
}

/*
 * Publishes an event of type on one channel (data_json NULL: no data): appends it to history and queues it on
 * the broadcaster, not dispatched. Returns 0, RT_EEXIST when the id is still in history, or RT_EINVAL; *ev (when
 * not NULL) gets the event, borrowed: history holds it.
 */
static inline int fake_publish(const char *id, const char *type, const char *channel, const char *data_json, rt_event_t **ev)
{
    rt_event_t *e, *existing = NULL;
    char err[128];
    const char *channels[] = {channel};
    json_t *data = data_json != NULL ? json_loads(data_json, JSON_DECODE_ANY, NULL) : NULL;
    int r = rt_event_new(id, type, channels, 1, data, &e, err, sizeof(err));
    json_decref(data);
    if (r != 0)
        return RT_EINVAL;
    r = rt_history_append(server.history, e, &existing, fake_accept_event, NULL);
    rt_event_unref(existing);
    rt_event_unref(e); /* history and broadcaster hold theirs */
    if (ev != NULL)
        *ev = r == 0 ? e : NULL;
    return r;
}

/*
 * The server's publish path, for targets linked without src/server (FAKE_SERVER_PUBLISH defined before this file):
 * appended to the real history and handed to the one broadcaster, as the memory broker does, the asynchronous form
 * completing before it returns.
 */
#ifdef FAKE_SERVER_PUBLISH
int rt_server_publish(rt_server_t *s, rt_event_t *ev, rt_event_t **existing)
{
    return rt_history_append(s->history, ev, existing, fake_accept_event, NULL);
}

void rt_server_publish_async(rt_server_t *s, rt_worker_t *w, rt_event_t *ev, void (*cb)(void *ctx, int status, rt_event_t *existing),
                             void *ctx)
{
    rt_event_t *existing = NULL;
    int r = rt_server_publish(s, ev, &existing);
    cb(ctx, r, existing);
}
#endif

#endif
