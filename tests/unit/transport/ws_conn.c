/*
 * The WebSocket state machine (src/transport/ws_conn.c) and the native protocol (src/protocol/native.c), driven
 * without sockets: both files are included on the fake connection layer of tests/harness/fake_conn.h, which
 * records what would be written and lets a test set the clock. The broadcaster and history are real.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#define FAKE_CONN_BESIDE_LIBRARY
#include "../../harness/fake_conn_names.h"
#include "transport/ws_conn.c"
#undef LOG_PREFIX
#include "protocol/native.c"
#include "../../harness/fake_conn.h"

static int setup(void **state)
{
    fake_setup(0);
    return 0;
}

static int teardown(void **state)
{
    fake_teardown();
    return 0;
}

/* ---- driving the connection ---- */

static void open_ws(const char *query)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n";
    size_t n = fake_ws_open(rt_native_handle_ws, "/ws", query);
    assert_true(n > sizeof(head));
    assert_memory_equal(out.base, head, sizeof(head) - 1);
    assert_non_null(memmem(out.base, n, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", 50));
}

static rt_ws_t *ws_of(void)
{
    return conn.proto;
}

typedef struct st_sframe_t {
    int op;
    size_t len;
    char payload[70000];
} sframe_t;

static sframe_t sf;

/* The next server frame written, or false when none is left. */
static bool next_frame(void)
{
    rt_ws_frame_t f;
    const char *p = NULL;
    int r = fake_next_frame(&f, &p);
    if (r == 0)
        return false;
    assert_int_equal(r, 1);
    assert_false(f.masked);
    assert_true(f.fin);
    sf.op = f.opcode;
    sf.len = (size_t)f.payload_len;
    memcpy(sf.payload, p, sf.len);
    sf.payload[sf.len] = '\0';
    return true;
}

static void expect_no_frame(void)
{
    assert_int_equal(out.len, out_pos);
}

/* The next frame must be a text message; returns it parsed (caller decrefs). */
static json_t *next_json(void)
{
    assert_true(next_frame());
    assert_int_equal(sf.op, RT_WS_OP_TEXT);
    json_error_t e;
    json_t *j = json_loads(sf.payload, 0, &e);
    if (j == NULL)
        fail_msg("not JSON: %s", sf.payload);
    return j;
}

static const char *jstr(const json_t *o, const char *path1, const char *path2)
{
    const json_t *v = json_object_get(o, path1);
    if (path2 != NULL)
        v = json_object_get(v, path2);
    return json_string_value(v);
}

/* The next message must have this type (and error code, for errors) and id (NULL: none). */
static void expect_msg(const char *type, const char *id, const char *code)
{
    json_t *j = next_json();
    assert_string_equal(jstr(j, "type", NULL), type);
    if (id != NULL)
        assert_string_equal(jstr(j, "id", NULL), id);
    else
        assert_null(json_object_get(j, "id"));
    if (code != NULL)
        assert_string_equal(jstr(j, "error", "code"), code);
    json_decref(j);
}

static void expect_close(uint16_t code, const char *reason)
{
    assert_true(next_frame());
    assert_int_equal(sf.op, RT_WS_OP_CLOSE);
    if (code == 0) {
        assert_int_equal(sf.len, 0);
        return;
    }
    assert_true(sf.len >= 2);
    assert_int_equal(((uint8_t)sf.payload[0] << 8) | (uint8_t)sf.payload[1], code);
    if (reason != NULL)
        assert_string_equal(sf.payload + 2, reason);
}

static void skip_welcome(void)
{
    expect_msg("welcome", NULL, NULL);
}

/* Appends an event to history and queues it on the broadcaster (not dispatched). Returns it (borrowed). */
static rt_event_t *publish(const char *id, const char *channel, const char *data_json)
{
    rt_event_t *ev = NULL;
    assert_int_equal(fake_publish(id, "incident.created", channel, data_json, &ev), 0);
    assert_int_equal(fake_refused, 0);
    return ev;
}

static void dispatch(void)
{
    rt_broadcaster_dispatch(bc, 0);
}

/* The next message must be the event with this id; returns its seq. */
static uint64_t expect_event(const char *id)
{
    json_t *j = next_json();
    assert_string_equal(jstr(j, "type", NULL), "event");
    assert_string_equal(jstr(j, "event", "id"), id);
    uint64_t seq = (uint64_t)json_integer_value(json_object_get(json_object_get(j, "event"), "seq"));
    json_decref(j);
    return seq;
}

static void tick(int64_t advance_ms)
{
    now_ms += advance_ms;
    conn.handler->on_tick(&conn, now_ms);
}

/* ---- the handshake and the frame layer ---- */

static void test_handshake_refused(void **state)
{
    rt_http_request_t req = {.method = "GET", .path = "/ws", .query = "", .http_minor = 1};
    req.headers[req.n_headers++] = (rt_http_header_t){"upgrade", "websocket", 9};
    req.headers[req.n_headers++] = (rt_http_header_t){"connection", "Upgrade", 7};
    req.headers[req.n_headers++] = (rt_http_header_t){"sec-websocket-version", "13", 2};
    rt_native_handle_ws(&conn, &req); /* no key */
    assert_int_equal(http_status, 400);
    assert_null(conn.handler);
    assert_int_equal(out.len, 0);

    req.headers[2].value = "8";
    req.headers[req.n_headers++] = (rt_http_header_t){"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==", 24};
    rt_native_handle_ws(&conn, &req);
    assert_int_equal(http_status, 426);
    assert_string_equal(http_extra, "Sec-WebSocket-Version: 13\r\n");

    /* Connection given twice: the values are joined, so "Upgrade" in the second one counts. */
    req.headers[1].value = "keep-alive";
    req.headers[1].value_len = 10;
    req.headers[2].value = "13";
    req.headers[req.n_headers++] = (rt_http_header_t){"connection", "Upgrade", 7};
    http_status = 0;
    rt_native_handle_ws(&conn, &req);
    assert_int_equal(http_status, 0);
    assert_ptr_equal(conn.handler, &ws_handler);
}

static void test_welcome(void **state)
{
    open_ws("");
    assert_ptr_equal(conn.handler, &ws_handler);
    assert_int_equal(conn.kind, RT_CONN_WS);
    json_t *j = next_json();
    assert_string_equal(jstr(j, "type", NULL), "welcome");
    const char *id = jstr(j, "client_id", NULL);
    assert_non_null(id);
    assert_memory_equal(id, "c-", 2);
    assert_int_equal(strlen(id), 2 + 8 + 8); /* "c-", the process prefix, the counter */
    assert_int_equal(strspn(id + 2, "0123456789abcdef"), 16);
    assert_int_equal(json_integer_value(json_object_get(j, "heartbeat_s")), 25);
    char other[32];
    *put_client_id(other) = '\0';
    assert_memory_equal(other, id, 10); /* same prefix */
    assert_string_not_equal(other, id);
    json_decref(j);
    expect_no_frame();
}

static void test_welcome_fractional_heartbeat(void **state)
{
    config.heartbeat_s = 2.5;
    open_ws("");
    json_t *j = next_json();
    assert_true(json_is_real(json_object_get(j, "heartbeat_s")));
    assert_true(json_real_value(json_object_get(j, "heartbeat_s")) == 2.5);
    json_decref(j);
}

static void test_ping_pong_frames(void **state)
{
    open_ws("");
    skip_welcome();
    client_frame(RT_WS_OP_PING, 1, "abc", 3);
    assert_true(next_frame());
    assert_int_equal(sf.op, RT_WS_OP_PONG);
    assert_int_equal(sf.len, 3);
    assert_string_equal(sf.payload, "abc");
    client_frame(RT_WS_OP_PING, 1, "", 0);
    assert_true(next_frame());
    assert_int_equal(sf.op, RT_WS_OP_PONG);
    assert_int_equal(sf.len, 0);
    expect_no_frame();
    assert_false(conn.close_after_flush);
}

static void test_fragments_with_control_between(void **state)
{
    open_ws("");
    skip_welcome();
    client_frame(RT_WS_OP_TEXT, 0, "{\"type\":", 8);
    client_frame(RT_WS_OP_PING, 1, "x", 1);
    client_frame(RT_WS_OP_CONTINUATION, 0, "", 0);
    client_frame(RT_WS_OP_CONTINUATION, 0, "\"ping\"", 6);
    client_frame(RT_WS_OP_CONTINUATION, 1, "}", 1);
    assert_true(next_frame());
    assert_int_equal(sf.op, RT_WS_OP_PONG);
    assert_string_equal(sf.payload, "x");
    expect_msg("pong", NULL, NULL);
    /* a second fragmented message reuses the buffer cleanly */
    client_frame(RT_WS_OP_TEXT, 0, "{\"type\":\"ping\",", 15);
    client_frame(RT_WS_OP_CONTINUATION, 1, "\"id\":\"p2\"}", 10);
    expect_msg("pong", "p2", NULL);
    expect_no_frame();
}

static void test_partial_input(void **state)
{
    open_ws("");
    skip_welcome();
    const char *msg = "{\"type\":\"subscribe\",\"id\":\"s1\",\"channels\":[\"incidents\"]}";
    uint8_t buf[256];
    size_t n = rt_ws_client_frame(buf, RT_WS_OP_TEXT, 1, mask, msg, strlen(msg));
    for (size_t i = 0; i < n; i++) {
        feed(buf + i, 1);
        if (i + 1 < n)
            expect_no_frame();
    }
    expect_msg("subscribed", "s1", NULL);
    /* two frames and a half in one read: two handled, the half kept */
    uint8_t two[512];
    size_t a = rt_ws_client_frame(two, RT_WS_OP_TEXT, 1, mask, "{\"type\":\"ping\",\"id\":\"1\"}", 24);
    a += rt_ws_client_frame(two + a, RT_WS_OP_TEXT, 1, mask, "{\"type\":\"ping\",\"id\":\"2\"}", 24);
    size_t b = rt_ws_client_frame(two + a, RT_WS_OP_TEXT, 1, mask, "{\"type\":\"ping\",\"id\":\"3\"}", 24);
    feed(two, a + b / 2);
    expect_msg("pong", "1", NULL);
    expect_msg("pong", "2", NULL);
    expect_no_frame();
    assert_int_equal(in.len, b / 2);
    feed(two + a + b / 2, b - b / 2);
    expect_msg("pong", "3", NULL);
    assert_int_equal(in.len, 0);
}

static void test_unmasked_is_1002(void **state)
{
    open_ws("");
    skip_welcome();
    uint8_t frame[] = {0x81, 0x02, '{', '}'};
    feed(frame, sizeof(frame));
    expect_close(RT_WS_CLOSE_PROTOCOL_ERROR, "unmasked client frame");
    assert_true(conn.close_after_flush);
    expect_no_frame();
}

static void test_protocol_errors(void **state)
{
    open_ws("");
    skip_welcome();
    client_frame(RT_WS_OP_CONTINUATION, 1, "x", 1);
    expect_close(RT_WS_CLOSE_PROTOCOL_ERROR, "continuation frame without a message");
    assert_true(conn.close_after_flush);
}

static void test_new_message_inside_fragments_is_1002(void **state)
{
    open_ws("");
    skip_welcome();
    client_frame(RT_WS_OP_TEXT, 0, "{", 1);
    client_frame(RT_WS_OP_TEXT, 1, "}", 1);
    expect_close(RT_WS_CLOSE_PROTOCOL_ERROR, NULL);
    assert_true(conn.close_after_flush);
}

static void test_bad_utf8_is_1007(void **state)
{
    open_ws("");
    skip_welcome();
    client_text("{\"type\":\"ping\",\"id\":\"\xff\"}");
    expect_close(RT_WS_CLOSE_INVALID_DATA, NULL);
    assert_true(conn.close_after_flush);
    expect_no_frame();
}

static void test_utf8_split_across_fragments(void **state)
{
    open_ws("");
    skip_welcome();
    /* "é" (c3 a9) split between fragments is fine */
    client_frame(RT_WS_OP_TEXT, 0, "{\"type\":\"ping\",\"id\":\"\xc3", 22);
    client_frame(RT_WS_OP_CONTINUATION, 1, "\xa9\"}", 3);
    expect_msg("pong", "\xc3\xa9", NULL);
    /* a message that ends inside a sequence is not */
    client_frame(RT_WS_OP_TEXT, 1, "ab\xc3", 3);
    expect_close(RT_WS_CLOSE_INVALID_DATA, NULL);
}

static void test_oversize_is_1009(void **state)
{
    config.max_message_bytes = 64;
    open_ws("");
    skip_welcome();
    /* refused from the header alone: the 1000-byte payload never arrives */
    uint8_t head[8] = {0x81, 0x80 | 126, 0x03, 0xe8, 1, 2, 3, 4};
    feed(head, sizeof(head));
    expect_close(RT_WS_CLOSE_TOO_BIG, "message too big");
    assert_true(conn.close_after_flush);
}

static void test_oversize_fragments_is_1009(void **state)
{
    config.max_message_bytes = 64;
    open_ws("");
    skip_welcome();
    char part[40];
    memset(part, ' ', sizeof(part));
    client_frame(RT_WS_OP_TEXT, 0, part, sizeof(part));
    expect_no_frame();
    client_frame(RT_WS_OP_CONTINUATION, 1, part, sizeof(part));
    expect_close(RT_WS_CLOSE_TOO_BIG, NULL);
}

static void test_binary_is_1003(void **state)
{
    open_ws("");
    skip_welcome();
    client_frame(RT_WS_OP_BINARY, 1, "\x01\x02", 2);
    expect_close(RT_WS_CLOSE_UNSUPPORTED, NULL);
    assert_true(conn.close_after_flush);
}

static void test_peer_close_is_echoed(void **state)
{
    open_ws("");
    skip_welcome();
    uint8_t payload[RT_WS_MAX_CONTROL_PAYLOAD];
    size_t n = rt_ws_close_payload(payload, 4001, "bye", 3);
    client_frame(RT_WS_OP_CLOSE, 1, payload, n);
    expect_close(4001, "");
    assert_true(conn.close_after_flush);
    expect_no_frame();
}

static void test_peer_close_without_code(void **state)
{
    open_ws("");
    skip_welcome();
    client_frame(RT_WS_OP_CLOSE, 1, "", 0);
    expect_close(0, NULL);
    assert_true(conn.close_after_flush);
}

static void test_peer_close_with_bad_code(void **state)
{
    open_ws("");
    skip_welcome();
    client_frame(RT_WS_OP_CLOSE, 1, "\x03\xed", 2); /* 1005 may not be sent */
    expect_close(RT_WS_CLOSE_PROTOCOL_ERROR, NULL);
}

static void test_server_close_waits_for_peer(void **state)
{
    open_ws("");
    skip_welcome();
    rt_ws_close(ws_of(), RT_WS_CLOSE_NORMAL, "done");
    expect_close(RT_WS_CLOSE_NORMAL, "done");
    assert_true(rt_ws_is_closing(ws_of()));
    assert_false(conn.close_after_flush);
    /* after our close: messages and pings are ignored, nothing more is sent */
    client_text("{\"type\":\"ping\"}");
    client_frame(RT_WS_OP_PING, 1, "p", 1);
    rt_ws_send_text(ws_of(), "{}", 2);
    expect_no_frame();
    /* the peer's close completes the handshake without a second close frame */
    client_frame(RT_WS_OP_CLOSE, 1, "\x03\xe8", 2);
    assert_true(conn.close_after_flush);
    expect_no_frame();
}

static void test_server_close_times_out(void **state)
{
    open_ws("");
    skip_welcome();
    rt_ws_close(ws_of(), RT_WS_CLOSE_NORMAL, NULL);
    expect_close(RT_WS_CLOSE_NORMAL, NULL);
    tick(1000);
    assert_false(conn.closing);
    tick(1000);
    assert_true(conn.closing);
}

static void test_heartbeat_pong_timeout(void **state)
{
    open_ws("");
    skip_welcome();
    tick(24000);
    expect_no_frame();
    tick(1000);
    assert_true(next_frame());
    assert_int_equal(sf.op, RT_WS_OP_PING);
    tick(9000);
    expect_no_frame();
    tick(1000); /* 10 s without a pong */
    expect_close(RT_WS_CLOSE_POLICY, "pong timeout");
    tick(2000);
    assert_true(conn.closing);
}

static void test_heartbeat_pong_keeps_alive(void **state)
{
    open_ws("");
    skip_welcome();
    for (int round = 0; round < 3; round++) {
        tick(25000);
        assert_true(next_frame());
        assert_int_equal(sf.op, RT_WS_OP_PING);
        now_ms += 500;
        client_frame(RT_WS_OP_PONG, 1, "", 0);
    }
    tick(11000);
    expect_no_frame();
    assert_false(rt_ws_is_closing(ws_of()));
}

static void test_shutdown_is_1001(void **state)
{
    open_ws("");
    skip_welcome();
    conn.handler->on_shutdown(&conn);
    expect_close(RT_WS_CLOSE_GOING_AWAY, "server shutting down");
    conn.handler->on_shutdown(&conn); /* once only */
    expect_no_frame();
}

static void test_eof(void **state)
{
    open_ws("");
    skip_welcome();
    conn.handler->on_eof(&conn);
    assert_true(conn.closing);
}

/* ---- the native protocol ---- */

static void test_message_errors_keep_connection(void **state)
{
    open_ws("");
    skip_welcome();
    client_text("{\"type\":");
    expect_msg("error", NULL, "invalid_json");
    client_text("[1,2]");
    expect_msg("error", NULL, "bad_request");
    client_text("{\"id\":\"m\"}");
    expect_msg("error", "m", "bad_request");
    client_text("{\"type\":\"publish\",\"id\":\"x\"}");
    expect_msg("error", "x", "unknown_type");
    client_text("{\"type\":\"subscribe\",\"id\":\"s\",\"channels\":[\"a..b\"]}");
    expect_msg("error", "s", "invalid_channel");
    client_text("{\"type\":\"subscribe\",\"id\":\"s\",\"channels\":[]}");
    expect_msg("error", "s", "bad_request");
    client_text("{\"type\":\"subscribe\",\"id\":\"s\",\"channels\":[\"a\"],\"filters\":{\"x\":{}}}");
    expect_msg("error", "s", "invalid_filter");
    client_text("{\"type\":\"subscribe\",\"id\":\"s\",\"channels\":[\"a\"],\"filter\":{\"op\":\"xor\",\"nodes\":[]}}");
    expect_msg("error", "s", "invalid_filter");
    /* a channel quoted in the message is cut at 80 bytes, here inside a 2-byte character: still answered */
    char msg[256] = "{\"type\":\"subscribe\",\"id\":\"u\",\"channels\":[\"a";
    for (int i = 0; i < 50; i++)
        strcat(msg, "\xc3\xa9");
    strcat(msg, "\"]}");
    client_text(msg);
    expect_msg("error", "u", "invalid_channel");
    client_text("{\"type\":\"unsubscribe\",\"id\":\"nope\"}");
    expect_msg("error", "nope", "not_found");
    client_text("{\"type\":\"unsubscribe\"}");
    expect_msg("error", NULL, "bad_request");
    client_text("{\"type\":\"ping\"}");
    assert_true(next_frame());
    assert_string_equal(sf.payload, "{\"type\":\"pong\"}");
    expect_no_frame();
    assert_false(rt_ws_is_closing(ws_of()));
    assert_int_equal(atomic_load(&server.stats.subscriptions), 0);
}

static void test_subscribe_deliver_once(void **state)
{
    open_ws("");
    skip_welcome();
    client_text("{\"type\":\"subscribe\",\"id\":\"s1\",\"channels\":[\"incidents\",\"incidents\"]}");
    json_t *j = next_json();
    assert_string_equal(jstr(j, "type", NULL), "subscribed");
    assert_string_equal(jstr(j, "id", NULL), "s1");
    assert_int_equal(json_array_size(json_object_get(j, "channels")), 1);
    json_decref(j);
    client_text("{\"type\":\"subscribe\",\"id\":\"s2\",\"channels\":[\"incidents.*\",\"incidents\"]}");
    expect_msg("subscribed", "s2", NULL);
    assert_int_equal(atomic_load(&server.stats.subscriptions), 2);

    rt_event_t *ev = publish("e1", "incidents", "{\"severity\":\"SEV-1\"}");
    publish("e2", "other", NULL);
    dispatch();
    /* exactly the cached frame bytes: {"type":"event","event":<event JSON>} */
    assert_true(next_frame());
    char expect[1024];
    int n = snprintf(expect, sizeof(expect), "{\"type\":\"event\",\"event\":%s}", ev->json);
    assert_int_equal(sf.len, (size_t)n);
    assert_memory_equal(sf.payload, expect, (size_t)n);
    rt_bytes_t *form = rt_event_form(ev, RT_FORM_NATIVE_WS, 0, encode_event_frame, NULL);
    assert_ptr_equal(rt_event_form(ev, RT_FORM_NATIVE_WS, 0, encode_event_frame, NULL), form);
    expect_no_frame();
    assert_int_equal(fake_delivered, 1);

    client_text("{\"type\":\"unsubscribe\",\"id\":\"s1\"}");
    expect_msg("unsubscribed", "s1", NULL);
    publish("e3", "incidents", NULL);
    dispatch();
    expect_event("e3"); /* still reached through s2 */
    client_text("{\"type\":\"unsubscribe\",\"id\":\"s2\"}");
    expect_msg("unsubscribed", "s2", NULL);
    publish("e4", "incidents", NULL);
    dispatch();
    expect_no_frame();
    assert_int_equal(atomic_load(&server.stats.subscriptions), 0);
    rt_broadcaster_stats_t bs;
    rt_broadcaster_stats(bc, &bs);
    assert_int_equal(bs.subscriptions, 0);
}

static void test_filters(void **state)
{
    open_ws("");
    skip_welcome();
    client_text("{\"type\":\"subscribe\",\"id\":\"a\",\"channels\":[\"incidents\"],\"filters\":{\"severity\":\"SEV-1\"}}");
    expect_msg("subscribed", "a", NULL);
    client_text("{\"type\":\"subscribe\",\"id\":\"b\",\"channels\":[\"sla\"],"
                "\"filter\":{\"op\":\"and\",\"nodes\":[{\"key\":\"minutes\",\"cmp\":\"gt\",\"val\":\"30\"}]}}");
    expect_msg("subscribed", "b", NULL);
    publish("e1", "incidents", "{\"severity\":\"SEV-2\"}");
    publish("e2", "incidents", "{\"severity\":\"SEV-1\"}");
    publish("e3", "sla", "{\"minutes\":5}");
    publish("e4", "sla", "{\"minutes\":45}");
    dispatch();
    expect_event("e2");
    expect_event("e4");
    expect_no_frame();
}

static void test_auto_id_duplicate_and_limit(void **state)
{
    open_ws("");
    skip_welcome();
    client_text("{\"type\":\"subscribe\",\"channels\":[\"a\"]}");
    json_t *j = next_json();
    assert_string_equal(jstr(j, "type", NULL), "subscribed");
    assert_string_equal(jstr(j, "id", NULL), "sub-1");
    json_decref(j);
    client_text("{\"type\":\"subscribe\",\"id\":\"sub-1\",\"channels\":[\"b\"]}");
    expect_msg("error", "sub-1", "bad_request");
    config.max_subscriptions = 9;
    for (int i = 1; i < 9; i++) {
        char msg[128];
        snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"id\":\"x%d\",\"channels\":[\"c%d\"]}", i, i);
        client_text(msg);
        char id[16];
        snprintf(id, sizeof(id), "x%d", i);
        expect_msg("subscribed", id, NULL);
    }
    client_text("{\"type\":\"subscribe\",\"id\":\"over\",\"channels\":[\"z\"]}");
    expect_msg("error", "over", "limit_exceeded");
    assert_int_equal(atomic_load(&server.stats.subscriptions), 9);
    assert_int_equal(atomic_load(&server.stats.limited[RT_LIMIT_SUBSCRIPTIONS]), 1);
    assert_false(rt_ws_is_closing(ws_of()));
}

static void test_channels_per_subscribe(void **state)
{
    config.max_channels_per_subscribe = 3;
    open_ws("");
    skip_welcome();
    client_text("{\"type\":\"subscribe\",\"id\":\"four\",\"channels\":[\"a\",\"b\",\"c\",\"d\"]}");
    expect_msg("error", "four", "limit_exceeded");
    assert_int_equal(atomic_load(&server.stats.limited[RT_LIMIT_CHANNELS_PER_SUBSCRIBE]), 1);
    client_text("{\"type\":\"subscribe\",\"id\":\"three\",\"channels\":[\"a\",\"b\",\"c\"]}");
    expect_msg("subscribed", "three", NULL);
}

/* client_command_rate 10/s, burst 5: five at once pass, the sixth is refused, one more passes after a tenth of a
 * second; a client that keeps sending through another whole burst of refusals is cut with 1008. */
static void test_command_rate(void **state)
{
    config.client_command_rate = 10;
    config.client_command_burst = 5;
    config.heartbeat_s = 86400; /* no ping frames between the messages */
    open_ws("");
    skip_welcome();
    for (int i = 0; i < 5; i++) {
        client_text("{\"type\":\"ping\",\"id\":\"p\"}");
        expect_msg("pong", "p", NULL);
    }
    client_text("{\"type\":\"ping\",\"id\":\"p\"}");
    expect_msg("error", NULL, "limit_exceeded");
    tick(200); /* the refused one spent its interval too */
    client_text("{\"type\":\"ping\",\"id\":\"p\"}");
    expect_msg("pong", "p", NULL);
    /* waiting restores the whole burst, however long the connection was quiet */
    tick(100000);
    for (int i = 0; i < 5; i++) {
        client_text("{\"type\":\"ping\",\"id\":\"p\"}");
        expect_msg("pong", "p", NULL);
    }
    for (int i = 0; i < 5; i++) {
        client_text("{\"type\":\"ping\",\"id\":\"p\"}");
        expect_msg("error", NULL, "limit_exceeded");
    }
    assert_false(rt_ws_is_closing(ws_of()));
    client_text("{\"type\":\"ping\",\"id\":\"p\"}");
    expect_close(RT_WS_CLOSE_POLICY, "message rate limit");
    assert_int_equal(atomic_load(&server.stats.limited[RT_LIMIT_COMMAND_RATE]), 7);
}

static void test_all_needs_permission(void **state)
{
    fake_access.insecure = false;
    open_ws("");
    skip_welcome();
    client_text("{\"type\":\"subscribe\",\"id\":\"adm\",\"channels\":[\"all\"]}");
    expect_msg("error", "adm", "permission_denied");
    client_text("{\"type\":\"subscribe\",\"id\":\"inc\",\"channels\":[\"incidents\"]}");
    expect_msg("error", "inc", "permission_denied"); /* no namespace is anonymous: every channel needs a grant */
    fake_access.insecure = true; /* development mode: open */
    client_text("{\"type\":\"subscribe\",\"id\":\"adm\",\"channels\":[\"all\"]}");
    expect_msg("subscribed", "adm", NULL);
    publish("e1", "whatever.x", NULL);
    dispatch();
    expect_event("e1");
}

static void test_resume_replays_then_live(void **state)
{
    open_ws("");
    skip_welcome();
    publish("e1", "incidents", NULL);
    publish("e2", "incidents", NULL);
    publish("e3", "other", NULL);
    publish("e4", "incidents", NULL);
    dispatch(); /* nobody subscribed yet */
    client_text("{\"type\":\"subscribe\",\"id\":\"r\",\"channels\":[\"incidents\"],\"last_event_id\":\"e1\"}");
    expect_msg("subscribed", "r", NULL);
    uint64_t s2 = expect_event("e2");
    uint64_t s4 = expect_event("e4");
    assert_true(s2 < s4);
    expect_no_frame();
    publish("e5", "incidents", NULL);
    dispatch();
    assert_true(expect_event("e5") > s4);
    assert_int_equal(atomic_load(&server.stats.replayed), 2);
}

static void test_resume_overlapping_live_is_sent_once(void **state)
{
    open_ws("");
    skip_welcome();
    publish("e1", "incidents", NULL);
    dispatch();
    publish("e2", "incidents", NULL); /* in history and queued for the worker, not dispatched yet */
    client_text("{\"type\":\"subscribe\",\"id\":\"r\",\"channels\":[\"incidents\"],\"last_event_id\":\"e1\"}");
    expect_msg("subscribed", "r", NULL);
    expect_event("e2");
    dispatch(); /* the live copy of e2 is covered by the replay */
    expect_no_frame();
    publish("e3", "incidents", NULL);
    dispatch();
    expect_event("e3");
}

static void test_second_resume_keeps_first_subscription_events(void **state)
{
    open_ws("");
    skip_welcome();
    client_text("{\"type\":\"subscribe\",\"id\":\"live\",\"channels\":[\"a\"]}");
    expect_msg("subscribed", "live", NULL);
    publish("e1", "b", NULL);
    dispatch();
    publish("e2", "a", NULL); /* queued for "live", not dispatched when "r" resumes */
    publish("e3", "b", NULL);
    client_text("{\"type\":\"subscribe\",\"id\":\"r\",\"channels\":[\"b\"],\"last_event_id\":\"e1\"}");
    expect_event("e2");
    expect_msg("subscribed", "r", NULL);
    expect_event("e3");
    dispatch();
    expect_no_frame();
}

static void test_resume_unknown_id_resets(void **state)
{
    open_ws("");
    skip_welcome();
    publish("e1", "incidents", NULL);
    dispatch();
    client_text("{\"type\":\"subscribe\",\"id\":\"r\",\"channels\":[\"incidents\"],\"last_event_id\":\"gone\"}");
    expect_msg("subscribed", "r", NULL);
    json_t *j = next_json();
    assert_string_equal(jstr(j, "type", NULL), "reset");
    assert_string_equal(jstr(j, "id", NULL), "r");
    assert_string_equal(jstr(j, "reason", NULL), "history_unavailable");
    json_decref(j);
    expect_no_frame();
    publish("e2", "incidents", NULL);
    dispatch();
    expect_event("e2");
}

static void test_query_subscription(void **state)
{
    open_ws("channels=incidents,system&filter.severity=SEV-1");
    skip_welcome();
    json_t *j = next_json();
    assert_string_equal(jstr(j, "type", NULL), "subscribed");
    assert_string_equal(jstr(j, "id", NULL), "query");
    const json_t *ch = json_object_get(j, "channels");
    assert_int_equal(json_array_size(ch), 2);
    assert_string_equal(json_string_value(json_array_get(ch, 0)), "incidents");
    assert_string_equal(json_string_value(json_array_get(ch, 1)), "system");
    json_decref(j);
    publish("e1", "system", "{\"severity\":\"SEV-2\"}");
    publish("e2", "system", "{\"severity\":\"SEV-1\"}");
    dispatch();
    expect_event("e2");
    client_text("{\"type\":\"unsubscribe\",\"id\":\"query\"}");
    expect_msg("unsubscribed", "query", NULL);
    publish("e3", "system", "{\"severity\":\"SEV-1\"}");
    dispatch();
    expect_no_frame();
}

static void test_query_resume(void **state)
{
    publish("e1", "incidents", NULL);
    publish("e2", "incidents", NULL);
    dispatch();
    open_ws("channels=incidents&last_event_id=e1");
    skip_welcome();
    expect_msg("subscribed", "query", NULL);
    expect_event("e2");
    expect_no_frame();
}

static void test_query_errors(void **state)
{
    open_ws("channels=bad..channel");
    skip_welcome();
    expect_msg("error", "query", "invalid_channel");
    expect_no_frame();
    assert_false(rt_ws_is_closing(ws_of()));
}

static void test_query_bad_token(void **state)
{
    open_ws("channels=incidents&token=abc");
    skip_welcome();
    expect_msg("error", "query", "unauthorized");
    expect_no_frame();
    assert_int_equal(atomic_load(&server.stats.subscriptions), 0);
}

static void test_slow_consumer(void **state)
{
    config.client_queue_bytes = 4000;
    open_ws("channels=incidents");
    skip_welcome();
    expect_msg("subscribed", "query", NULL);
    char data[600];
    snprintf(data, sizeof(data), "{\"blob\":\"%0500d\"}", 0);
    int sent = 0;
    for (int i = 0; i < 20 && !conn.close_after_flush; i++) {
        char id[16];
        snprintf(id, sizeof(id), "e%d", i);
        publish(id, "incidents", data);
        dispatch();
        sent++;
    }
    assert_true(conn.close_after_flush);
    assert_true(sent > 3 && sent < 20);
    for (int i = 0; i < sent - 1; i++)
        assert_true(next_frame() && sf.op == RT_WS_OP_TEXT);
    expect_close(RT_WS_CLOSE_POLICY, "slow consumer");
    expect_no_frame();
    assert_int_equal(atomic_load(&server.stats.slow_disconnects), 1);
    assert_int_equal(fake_delivered, sent - 1);
    rt_broadcaster_stats_t bs;
    rt_broadcaster_stats(bc, &bs);
    assert_int_equal(bs.clients, 0); /* dropped by the broadcaster at once */
    publish("after", "incidents", NULL);
    dispatch();
    expect_no_frame();
    tick(2000);
    assert_true(conn.closing); /* a peer that never reads cannot hold the connection */
}

static void test_slow_consumer_close_frame_is_forced(void **state)
{
    open_ws("channels=incidents");
    skip_welcome();
    expect_msg("subscribed", "query", NULL);
    config.client_queue_bytes = conn.queued_bytes + 1; /* not even the close frame fits */
    publish("e1", "incidents", NULL);
    dispatch();
    expect_close(RT_WS_CLOSE_POLICY, "slow consumer");
    assert_true(conn.close_after_flush);
}

static void test_replay_over_limit_resets(void **state)
{
    config.client_queue_bytes = 4000;
    char data[600];
    snprintf(data, sizeof(data), "{\"blob\":\"%0500d\"}", 0);
    publish("first", "incidents", NULL);
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof(id), "e%d", i);
        publish(id, "incidents", data);
    }
    dispatch();
    open_ws("");
    skip_welcome();
    client_text("{\"type\":\"subscribe\",\"id\":\"r\",\"channels\":[\"incidents\"],\"last_event_id\":\"first\"}");
    expect_msg("subscribed", "r", NULL);
    int replayed = 0;
    for (;;) {
        json_t *j = next_json();
        const char *type = jstr(j, "type", NULL);
        bool reset = strcmp(type, "reset") == 0;
        if (reset)
            assert_string_equal(jstr(j, "id", NULL), "r");
        else
            assert_string_equal(type, "event");
        json_decref(j);
        if (reset)
            break;
        replayed++;
    }
    assert_true(replayed > 0 && replayed < 20);
    assert_false(rt_ws_is_closing(ws_of()));
    /* once the peer drains, live events flow again, past the replay */
    conn.queued_bytes = 0;
    publish("live", "incidents", NULL);
    dispatch();
    expect_event("live");
}

static void test_reply_flood_is_slow_consumer(void **state)
{
    config.client_queue_bytes = 2000;
    open_ws("");
    skip_welcome();
    for (int i = 0; i < 200 && !conn.close_after_flush; i++)
        client_text("{\"type\":\"ping\"}");
    assert_true(conn.close_after_flush);
    assert_int_equal(atomic_load(&server.stats.slow_disconnects), 1);
}

static void test_close_frees_subscriptions(void **state)
{
    open_ws("channels=a");
    client_text("{\"type\":\"subscribe\",\"id\":\"s\",\"channels\":[\"b\"]}");
    assert_int_equal(atomic_load(&server.stats.subscriptions), 2);
    conn.handler->on_close(&conn);
    conn.handler = NULL;
    assert_int_equal(atomic_load(&server.stats.subscriptions), 0);
    rt_broadcaster_stats_t bs;
    rt_broadcaster_stats(bc, &bs);
    assert_int_equal(bs.clients, 0);
    assert_int_equal(bs.subscriptions, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_welcome_fractional_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_welcome, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channels_per_subscribe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_pong_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragments_with_control_between, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unmasked_is_1002, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_message_inside_fragments_is_1002, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_utf8_is_1007, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8_split_across_fragments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_is_1009, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_fragments_is_1009, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_is_1003, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_close_is_echoed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_close_without_code, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_close_with_bad_code, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_close_waits_for_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_close_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_pong_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_pong_keeps_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_is_1001, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_errors_keep_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_deliver_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_id_duplicate_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_needs_permission, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_replays_then_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_overlapping_live_is_sent_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_resume_keeps_first_subscription_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_unknown_id_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_subscription, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_bad_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_consumer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_consumer_close_frame_is_forced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_over_limit_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_flood_is_slow_consumer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_frees_subscriptions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
