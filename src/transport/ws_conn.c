/*
 * The WebSocket connection state machine. Input is parsed in place: a frame is handled once its header and
 * whole payload are in the buffer the connection layer hands us (it keeps leftovers, bounded by
 * max_message_bytes plus slack), unmasked there, and an unfragmented text message goes to the protocol without
 * a copy. Only fragmented messages are copied, into a buffer that lives while the message is open.
 *
 * An idle connection is mostly this struct (with the protocol state embedded before it when the protocol asks),
 * so what is needed only between the pieces of a frame or a message lives in a block allocated just then.
 *
 * Closing: rt_ws_close sends our close frame and waits up to CLOSE_TIMEOUT_MS for the peer's; failing the
 * connection (protocol errors, slow consumers) sends the close frame and closes once it is written, without
 * waiting. Either way on_tick drops the connection when the deadline passes, so a peer that stops reading
 * cannot hold it open.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "realtime/error.h"
#include "server/server.h"
#include "transport/ws_codec.h"
#include "transport/ws_conn.h"
#include "transport/ws_handshake.h"
#include "net/access_log.h"
#include "util/mem.h"

#define LOG_PREFIX "ws"
#include "util/log.h"

/* RFC 6455 section 7.1.1 leaves the wait for the peer's close frame to us; browsers answer within milliseconds. */
#define CLOSE_TIMEOUT_MS 2000
/* The message assembler and the fragments so far, while a frame's payload or a message's next fragment is
 * still to come. Whole frames, the usual case, are assembled on the stack. */
typedef struct st_ws_partial_t {
    rt_ws_msg_t msg;
    rt_buf_t frag;
} ws_partial_t;

/*
 * conn->deadline_ms (0: none) is the pong deadline (a ping is outstanding) until close_sent, then the close
 * deadline. The other times are the loop's milliseconds cut to 32 bits, compared with wrap-around (time_reached):
 * they are never more than a day ahead (the configured heartbeat's limit).
 */
struct st_rt_ws_t {
    rt_conn_t *conn;
    const rt_ws_protocol_t *proto;
    void *state;
    ws_partial_t *partial;  /* NULL between whole frames */
    uint32_t next_ping_ms;
    uint32_t next_tick_ms;  /* the protocol's once-a-second tick */
    uint32_t rate_tat;      /* client message rate: when the next message is due, in RATE_UNITS_PER_MS (rt_ws_rate_take) */
    uint8_t ended;          /* rt_disconnect_t + 1 once we sent a close frame first; 0 otherwise */
    bool in_frame : 1;      /* rt_ws_msg_frame_begin ran for the frame at the head of the input */
    bool opened : 1;        /* on_open returned a state: on_close is owed */
    bool close_sent : 1;
    bool close_received : 1;
};

_Static_assert(_Alignof(rt_ws_t) <= 8, "RT_WS_EMBED_OFFSET aligns to 8");

static rt_bytes_t *ping_frame;
static pthread_once_t ping_once = PTHREAD_ONCE_INIT;

static void make_ping_frame(void)
{
    static const uint8_t ping[2] = {0x80 | RT_WS_OP_PING, 0};
    ping_frame = rt_bytes_new(ping, sizeof(ping)); /* shared by every connection for the life of the process */
}

static const rt_config_t *ws_config(const rt_ws_t *ws)
{
    return rt_conn_server(ws->conn)->config;
}

/* The rate limit's clock: 1/16 ms, fine enough for rates up to 16000/s, and 32 bits of it span 3 days. */
#define RATE_UNITS_PER_MS 16u

/*
 * GCRA (the generic cell rate algorithm): one time per connection, rate_tat, when the next message is due at the
 * average rate. A message moves it one interval on; it may run ahead of now by the burst. Refused messages move it
 * too, so a client that keeps sending while refused digs itself deeper, and one that keeps on for another whole
 * burst is cut.
 */
rt_ws_rate_t rt_ws_rate_take(rt_ws_t *ws)
{
    const rt_config_t *cfg = ws_config(ws);
    if (cfg->client_command_rate == 0)
        return RT_WS_RATE_OK;
    uint32_t interval = (uint32_t)(1000 * RATE_UNITS_PER_MS / cfg->client_command_rate), now;
    if (interval == 0)
        interval = 1;
    uint64_t tolerance = (uint64_t)interval * (cfg->client_command_burst - 1);
    if (tolerance > (1u << 28))
        tolerance = 1u << 28; /* 4.6 hours: far more than any burst needs, and no 32-bit wrap below */
    now = (uint32_t)rt_conn_now(ws->conn) * RATE_UNITS_PER_MS;
    if ((int32_t)(now - ws->rate_tat) > 0)
        ws->rate_tat = now;
    int32_t ahead = (int32_t)(ws->rate_tat - now);
    if ((uint64_t)ahead > 2 * tolerance + interval)
        return RT_WS_RATE_CUT;
    ws->rate_tat += interval;
    return (uint64_t)ahead <= tolerance ? RT_WS_RATE_OK : RT_WS_RATE_REFUSED;
}

static bool time_reached(int64_t now, uint32_t t)
{
    return (int32_t)((uint32_t)now - t) >= 0;
}

static bool ws_ending(const rt_ws_t *ws)
{
    return ws->close_sent || ws->conn->closing || ws->conn->close_after_flush;
}

static void log_close(rt_conn_t *c, uint16_t code, const char *reason)
{
    if (rt_log_level < RT_LOG_DEBUG)
        return; /* the peer's address costs a syscall */
    char peer[64];
    rt_conn_peer(c, peer, sizeof(peer));
    RT_LOG_DEBUG("%s: closing %u (%s)", peer, code, reason != NULL ? reason : "");
}

/* Why we close with code (and its reason text, which tells the 1008s apart). */
static rt_disconnect_t disconnect_of(uint16_t code, const char *reason)
{
    switch (code) {
    case 1001:
    case 3001: return RT_DISC_SHUTDOWN;
    case 1002:
    case 1003:
    case 1007:
    case 3501:
    case 3502: return RT_DISC_PROTOCOL_ERROR;
    case 1009: return RT_DISC_MESSAGE_TOO_BIG;
    case 3008: return RT_DISC_SLOW_CONSUMER;
    case 3012: return RT_DISC_PONG_TIMEOUT;
    case 3013: return RT_DISC_RATE_LIMIT;
    case 3005:
    case 3500: return RT_DISC_TOKEN;
    case 1008:
        if (reason != NULL && strcmp(reason, "slow consumer") == 0)
            return RT_DISC_SLOW_CONSUMER;
        if (reason != NULL && strcmp(reason, "pong timeout") == 0)
            return RT_DISC_PONG_TIMEOUT;
        if (reason != NULL && strcmp(reason, "message rate limit") == 0)
            return RT_DISC_RATE_LIMIT;
        return RT_DISC_OTHER;
    default: return RT_DISC_OTHER;
    }
}

static void send_close_frame(rt_ws_t *ws, uint16_t code, const char *reason)
{
    if (!ws->close_received && ws->ended == 0)
        ws->ended = (uint8_t)(disconnect_of(code, reason) + 1);
    uint8_t frame[2 + RT_WS_MAX_CONTROL_PAYLOAD];
    size_t n = rt_ws_close_frame(frame, code, reason, reason != NULL ? strlen(reason) : 0);
    rt_conn_note_close(ws->conn, code, reason != NULL ? reason : "server closed", reason != NULL ? strlen(reason) : 13);
    rt_conn_send_copy(ws->conn, frame, n);
    ws->close_sent = true;
    ws->conn->deadline_ms = rt_conn_now(ws->conn) + CLOSE_TIMEOUT_MS;
}

/* Fails the connection (RFC 6455 section 7.1.7): our close frame if not sent yet, then close once it is written. */
static void ws_fail(rt_ws_t *ws, uint16_t code, const char *reason)
{
    rt_conn_t *c = ws->conn;
    if (c->closing)
        return;
    if (!ws->close_sent) {
        log_close(c, code, reason);
        send_close_frame(ws, code, reason);
    }
    rt_conn_close_after_flush(c);
}

static void slow_consumer(rt_ws_t *ws)
{
    atomic_fetch_add_explicit(&rt_conn_server(ws->conn)->stats.slow_disconnects, 1, memory_order_relaxed);
    char peer[64];
    rt_conn_peer(ws->conn, peer, sizeof(peer));
    RT_LOG_INFO("%s: slow consumer (%zu bytes queued), closing", peer, ws->conn->queued_bytes);
    /* The close frame goes out with force, behind what is queued; the close deadline bounds the wait. */
    ws_fail(ws, RT_WS_CLOSE_POLICY, "slow consumer");
}

/*
 * Replies the protocol owes the peer (pongs, answers to requests) go out whatever the queue limit, but a peer
 * that keeps asking without reading would grow the queue without bound: once the queue is over the limit, the
 * next reply disconnects it as a slow consumer instead.
 */
static void send_reply(rt_ws_t *ws, rt_bytes_t *b)
{
    if (ws_ending(ws))
        return;
    if (ws->conn->queued_bytes > ws_config(ws)->client_queue_bytes) {
        slow_consumer(ws);
        return;
    }
    rt_conn_send(ws->conn, b, true);
}

rt_bytes_t *rt_ws_build_text_frame(const char *p, size_t len)
{
    size_t h = rt_ws_frame_header_size(len);
    rt_bytes_t *b = rt_bytes_new(NULL, h + len);
    rt_ws_frame_header((uint8_t *)b->data, RT_WS_OP_TEXT, 1, len);
    memcpy(b->data + h, p, len);
    return b;
}

void rt_ws_send_text(rt_ws_t *ws, const char *p, size_t len)
{
    if (ws_ending(ws))
        return;
    rt_bytes_t *b = rt_ws_build_text_frame(p, len);
    send_reply(ws, b);
    rt_bytes_unref(b);
}

int rt_ws_try_send_frame(rt_ws_t *ws, rt_bytes_t *frame)
{
    if (ws_ending(ws))
        return RT_ECLOSED;
    return rt_conn_send(ws->conn, frame, false);
}

int rt_ws_send_frame(rt_ws_t *ws, rt_bytes_t *frame)
{
    int r = rt_ws_try_send_frame(ws, frame);
    if (r == RT_E2BIG)
        slow_consumer(ws);
    return r;
}

void rt_ws_close(rt_ws_t *ws, uint16_t code, const char *reason)
{
    if (ws->close_sent || ws->conn->closing)
        return;
    log_close(ws->conn, code, reason);
    send_close_frame(ws, code, reason);
}

bool rt_ws_is_closing(const rt_ws_t *ws)
{
    return ws_ending(ws);
}

rt_conn_t *rt_ws_conn(rt_ws_t *ws)
{
    return ws->conn;
}

void *rt_ws_state(rt_ws_t *ws)
{
    return ws->state;
}

static void deliver_message(rt_ws_t *ws, const char *p, size_t len)
{
    if (ws->close_sent)
        return; /* after our close frame, data from the peer is read only to find its close frame */
    int code = ws->proto->on_message(ws, ws->state, p, len);
    if (code != 0)
        rt_ws_close(ws, (uint16_t)code, NULL);
}

/* A control frame, payload unmasked. Returns 0, or -1 when the connection is ending (the rest of the input is moot). */
static int on_control(rt_ws_t *ws, int op, const uint8_t *payload, size_t len)
{
    switch (op) {
    case RT_WS_OP_PING:
        if (!ws_ending(ws)) {
            rt_bytes_t *pong = rt_bytes_new(NULL, 2 + len);
            rt_ws_frame_header((uint8_t *)pong->data, RT_WS_OP_PONG, 1, len);
            memcpy(pong->data + 2, payload, len);
            send_reply(ws, pong);
            rt_bytes_unref(pong);
        }
        return 0;
    case RT_WS_OP_PONG:
        if (!ws->close_sent)
            ws->conn->deadline_ms = 0; /* after our close frame it is the close deadline */
        return 0;
    default: { /* RT_WS_OP_CLOSE */
        rt_ws_close_t cl;
        if (rt_ws_parse_close(payload, len, &cl) != 0) {
            ws_fail(ws, cl.error_code, cl.error);
            return -1;
        }
        ws->close_received = true;
        if (ws->conn->access_log && !ws->close_sent) {
            char why[RT_ACCESS_REASON_MAX + 1];
            int wn = snprintf(why, sizeof(why), "client close frame%s%.*s", cl.reason_len ? ": " : "", (int)cl.reason_len,
                              (const char *)cl.reason);
            rt_conn_note_close(ws->conn, cl.code, why, wn < 0 ? 0 : (size_t)wn < sizeof(why) ? (size_t)wn : sizeof(why) - 1);
        }
        if (!ws->close_sent) /* echo the peer's code; a close without one is answered without one */
            send_close_frame(ws, cl.code == RT_WS_CLOSE_NO_STATUS ? 0 : cl.code, NULL);
        rt_conn_close_after_flush(ws->conn);
        return -1;
    }
    }
}

/*
 * The payload of a data frame: delivered in place when it is a whole message, else appended to the fragments
 * (ws->partial exists then: the message is open, or was until this frame).
 */
static int on_data_frame(rt_ws_t *ws, int op, const uint8_t *payload, size_t len)
{
    if (op == RT_WS_OP_TEXT && (ws->partial == NULL || ws->partial->frag.len == 0)) {
        deliver_message(ws, (const char *)payload, len);
        return 0;
    }
    rt_buf_t *frag = &ws->partial->frag;
    size_t limit = ws_config(ws)->max_message_bytes != 0 ? ws_config(ws)->max_message_bytes : SIZE_MAX;
    if (len != 0) {
        if (rt_buf_try_reserve(frag, len, limit) != 0) {
            ws_fail(ws, RT_WS_CLOSE_TOO_BIG, "message too big");
            return -1;
        }
        rt_buf_append(frag, payload, len);
    }
    if (op == RT_WS_OP_TEXT)
        deliver_message(ws, frag->base, frag->len);
    return 0;
}

/* Moves the assembler state off the stack: it must outlive this read. */
static rt_ws_msg_t *keep_partial(rt_ws_t *ws, const rt_ws_msg_t *local)
{
    ws->partial = rt_mem_calloc(1, sizeof(*ws->partial));
    ws->partial->msg = *local;
    return &ws->partial->msg;
}

static void release_partial(rt_ws_t *ws)
{
    if (ws->partial != NULL) {
        rt_buf_free(&ws->partial->frag);
        free(ws->partial);
        ws->partial = NULL;
    }
}

/*
 * Handles the frame at p[0..len). Returns the bytes it took (header and payload), 0 when the frame is not
 * complete yet (its header is parsed again when more bytes arrive), or -1 when the connection is ending.
 */
static ssize_t handle_frame(rt_ws_t *ws, uint8_t *p, size_t len)
{
    rt_ws_frame_t f = {.require_mask = 1};
    int h = rt_ws_parse_frame(p, len, &f);
    if (h == -2)
        return 0;
    if (h < 0) {
        ws_fail(ws, f.close_code, f.error);
        return -1;
    }
    rt_ws_msg_t local, *m = ws->partial != NULL ? &ws->partial->msg : &local;
    if (!ws->in_frame) {
        if (m == &local)
            rt_ws_msg_init(&local, ws_config(ws)->max_message_bytes);
        /* Decided from the header alone, so an oversized frame is refused before its payload is buffered. */
        if (rt_ws_msg_frame_begin(m, &f) != 0) {
            ws_fail(ws, m->close_code, m->error);
            return -1;
        }
        if (f.opcode == RT_WS_OP_BINARY) {
            ws_fail(ws, RT_WS_CLOSE_UNSUPPORTED, "binary messages are not supported");
            return -1;
        }
    }
    if (len - (size_t)h < f.payload_len) {
        if (m == &local)
            keep_partial(ws, &local);
        ws->in_frame = true;
        return 0;
    }
    ws->in_frame = false;
    uint8_t *payload = p + h;
    size_t plen = (size_t)f.payload_len;
    rt_ws_unmask(payload, plen, f.mask, 0);
    if (rt_ws_msg_frame_data(m, payload, plen) != 0) {
        ws_fail(ws, m->close_code, m->error);
        return -1;
    }
    int op = rt_ws_msg_frame_end(m);
    if (op < 0) {
        ws_fail(ws, m->close_code, m->error);
        return -1;
    }
    if (m == &local && rt_ws_msg_open(m))
        m = keep_partial(ws, &local); /* a fragmented message: more frames follow */
    int r = (op & 0x8) ? on_control(ws, op, payload, plen) : on_data_frame(ws, op, payload, plen);
    if (r < 0)
        return -1;
    if (ws->partial != NULL && !rt_ws_msg_open(m))
        release_partial(ws); /* between whole messages again */
    return (ssize_t)((size_t)h + plen);
}

static ssize_t ws_on_data(rt_conn_t *c, const char *buf, size_t len)
{
    rt_ws_t *ws = c->proto;
    if (ws->close_received)
        return (ssize_t)len;
    /* The connection layer's input (its read buffer or leftovers) is writable: frames are unmasked in place. */
    uint8_t *p = (uint8_t *)(uintptr_t)buf;
    size_t off = 0;
    while (off < len) {
        ssize_t n = handle_frame(ws, p + off, len - off);
        if (n < 0 || c->closing || c->close_after_flush)
            return -1;
        if (n == 0)
            break;
        off += (size_t)n;
    }
    return (ssize_t)off;
}

static void ws_on_tick(rt_conn_t *c, int64_t now)
{
    rt_ws_t *ws = c->proto;
    if (ws->close_sent || c->close_after_flush) {
        if (!ws->close_sent || now >= c->deadline_ms)
            rt_conn_close(c);
        return;
    }
    const rt_config_t *cfg = ws_config(ws);
    uint32_t now_units = (uint32_t)now * RATE_UNITS_PER_MS;
    if ((int32_t)(now_units - ws->rate_tat) > 0)
        ws->rate_tat = now_units; /* kept near now, so its 32-bit differences never wrap */
    if (ws->proto->ping_frames && cfg->heartbeat_s > 0) {
        if (c->deadline_ms != 0 && now >= c->deadline_ms) {
            rt_ws_close(ws, RT_WS_CLOSE_POLICY, "pong timeout");
            return;
        }
        if (time_reached(now, ws->next_ping_ms)) {
            pthread_once(&ping_once, make_ping_frame);
            send_reply(ws, ping_frame);
            if (c->deadline_ms == 0)
                c->deadline_ms = now + (int64_t)(cfg->pong_timeout_s * 1000);
            ws->next_ping_ms = (uint32_t)(now + (int64_t)(cfg->heartbeat_s * 1000));
        }
    }
    if (ws->opened && ws->proto->on_tick != NULL && time_reached(now, ws->next_tick_ms) && !ws_ending(ws)) {
        ws->next_tick_ms = (uint32_t)(now + 1000);
        ws->proto->on_tick(ws, ws->state, now);
    }
}

static void ws_on_shutdown(rt_conn_t *c)
{
    rt_ws_t *ws = c->proto;
    if (ws_ending(ws))
        return;
    if (ws->opened && ws->proto->on_shutdown != NULL)
        ws->proto->on_shutdown(ws, ws->state);
    else
        rt_ws_close(ws, RT_WS_CLOSE_GOING_AWAY, "server shutting down");
}

static void ws_on_gap(rt_conn_t *c, rt_gap_t reason)
{
    rt_ws_t *ws = c->proto;
    if (ws->opened && ws->proto->on_gap != NULL && !ws_ending(ws))
        ws->proto->on_gap(ws, ws->state, reason);
}

static void ws_on_eof(rt_conn_t *c)
{
    rt_ws_t *ws = c->proto;
    if (ws->close_sent)
        rt_conn_close_after_flush(c); /* our close frame may still be queued */
    else
        rt_conn_close(c);
}

static void ws_on_close(rt_conn_t *c)
{
    rt_ws_t *ws = c->proto;
    if (ws->opened)
        rt_conn_count_disconnect(c, ws->ended != 0 ? (rt_disconnect_t)(ws->ended - 1)
                                    : ws->close_received ? RT_DISC_CLIENT
                                                         : RT_DISC_CONNECTION_LOST);
    if (ws->opened && ws->proto->on_close != NULL)
        ws->proto->on_close(ws, ws->state);
    release_partial(ws);
    size_t embedded = ws->proto->state_size;
    free(embedded != 0 ? (char *)ws - RT_WS_EMBED_OFFSET(embedded) : (void *)ws);
}

static const rt_conn_handler_t ws_handler = {
    .on_data = ws_on_data,
    .on_tick = ws_on_tick,
    .on_shutdown = ws_on_shutdown,
    .on_close = ws_on_close,
    .on_eof = ws_on_eof,
    .on_gap = ws_on_gap,
};

/*
 * The value of header `name`; several occurrences are joined with ", " into buf (cut at its size), as the
 * handshake expects. Returns NULL when absent.
 */
static const char *joined_header(const rt_http_request_t *req, const char *name, char *buf, size_t size, size_t *len)
{
    const rt_http_header_t *first = NULL;
    size_t n = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (strcmp(req->headers[i].name, name) != 0)
            continue;
        const rt_http_header_t *h = &req->headers[i];
        if (first == NULL) {
            first = h;
            *len = h->value_len;
            continue;
        }
        if (n == 0)
            n = (size_t)snprintf(buf, size, "%.*s", (int)first->value_len, first->value);
        if (n < size)
            n += (size_t)snprintf(buf + n, size - n, ", %.*s", (int)h->value_len, h->value);
    }
    if (first == NULL)
        return NULL;
    if (n == 0)
        return first->value;
    *len = n < size ? n : size - 1;
    return buf;
}

static void refuse(rt_conn_t *c, const rt_ws_handshake_t *hs)
{
    json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", "bad_request", "message", hs->error);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    const char *t = text != NULL ? text : "{\"error\":{\"code\":\"bad_request\",\"message\":\"bad WebSocket handshake\"}}";
    rt_http_respond(c, hs->status, "application/json", t, strlen(t), hs->headers);
    free(text);
}

int rt_ws_accept(rt_conn_t *c, const rt_http_request_t *req, const rt_ws_protocol_t *p)
{
    char conn_buf[256], up_buf[256], proto_buf[512];
    rt_ws_handshake_req_t hr = {.method = req->method, .method_len = strlen(req->method), .http_major = 1,
                                .http_minor = (uint8_t)req->http_minor};
    hr.upgrade = joined_header(req, "upgrade", up_buf, sizeof(up_buf), &hr.upgrade_len);
    hr.connection = joined_header(req, "connection", conn_buf, sizeof(conn_buf), &hr.connection_len);
    hr.protocol = joined_header(req, "sec-websocket-protocol", proto_buf, sizeof(proto_buf), &hr.protocol_len);
    hr.version = rt_http_header(req, "sec-websocket-version");
    hr.version_len = hr.version != NULL ? strlen(hr.version) : 0;
    hr.key = rt_http_header(req, "sec-websocket-key");
    hr.key_len = hr.key != NULL ? strlen(hr.key) : 0;
    rt_ws_handshake_t hs;
    if (rt_ws_handshake_check(&hr, &hs) != 101) {
        refuse(c, &hs);
        return -1;
    }
    char head[256];
    int n = rt_ws_handshake_response(head, sizeof(head), &hs, NULL, NULL);
    if (n < 0) {
        rt_http_respond_error(c, 500, "internal", "handshake response too long");
        return -1;
    }
    rt_conn_send_copy(c, head, (size_t)n);

    /* One block: the embedded protocol state (if any), then the connection's. */
    size_t off = p->state_size != 0 ? RT_WS_EMBED_OFFSET(p->state_size) : 0;
    char *block = rt_mem_calloc(1, off + sizeof(rt_ws_t));
    rt_ws_t *ws = (rt_ws_t *)(block + off);
    ws->conn = c;
    ws->proto = p;
    ws->state = off != 0 ? block : NULL;
    int64_t now = rt_conn_now(c);
    c->deadline_ms = 0;
    ws->next_ping_ms = (uint32_t)(now + (int64_t)(ws_config(ws)->heartbeat_s * 1000));
    ws->rate_tat = (uint32_t)now * RATE_UNITS_PER_MS;
    ws->next_tick_ms = (uint32_t)(now + 1000);
    /* req lives in the HTTP layer's state, which the switch frees: the protocol sees it before. */
    ws->state = p->on_open(ws, req);
    ws->opened = ws->state != NULL;
    rt_http_switch(c, &ws_handler, ws);
    rt_conn_set_kind(c, p->kind);
    if (!ws->opened)
        rt_ws_close(ws, RT_WS_CLOSE_INTERNAL, "internal error");
    return 0;
}
