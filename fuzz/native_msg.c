/*
 * libFuzzer target: arbitrary bytes as native /ws client messages, through the real protocol handler
 * (src/protocol/native.c on the WebSocket state machine of src/transport/ws_conn.c, both included here) on the
 * fake connection of tests/harness/fake_conn.h. Broadcaster, history, subscription parsing and filters are real.
 *
 * Input: one configuration byte, then lines. The first line is the query of GET /ws (usually empty); each
 * further line is one text message, sent as a masked frame and fed in pieces. Configuration bits: 0 insecure mode
 * (everything open; otherwise only incidents.> is anonymous), 1 a token secret ("fuzz-secret"), 2 a small client queue (slow consumer, replays cut
 * to a reset), 3-7 the piece size (0: whole frames).
 * History holds e1..e4 beforehand (8 events kept, so later publishes evict them); after the messages, events on
 * several channels are published and dispatched, and the heartbeat ticks.
 *
 * Checks, besides ASan/UBSan/LSan: every server frame is complete, unmasked and final; a text frame is a JSON
 * object of a documented type, an error one with a documented code and a message; events arrive in strictly
 * increasing seq (so at most once); a close frame is valid; once closed, no subscription is left.
 */
/* fuzz-sources: src/util/buf.c src/util/bytes.c src/util/clock.c src/util/error.c src/util/log.c src/util/map.c src/util/mem.c src/util/histogram.c src/core/broadcaster.c src/core/access.c src/core/namespace.c src/core/channel.c src/core/event.c src/core/event_id.c src/core/filter_compile.c src/core/filter_eval.c src/core/history.c src/core/sub_index.c src/transport/ws_codec.c src/transport/utf8.c src/transport/ws_handshake.c src/protocol/native_sub.c src/server/config.c src/net/origin.c src/net/conn_names.c src/net/access_log.c src/net/addr.c src/core/token.c src/core/token_keys.c src/net/http.c /usr/share/llhttp/api.c /usr/share/llhttp/http.c /usr/share/llhttp/llhttp.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../tests/harness/fake_conn_names.h"
#include "transport/ws_conn.c"
#undef LOG_PREFIX
#include "protocol/native.c"
#include "../tests/harness/fake_conn.h"

#define CHECK(c) ((c) ? (void)0 : abort())

static bool verbose; /* FUZZ_VERBOSE=1 in the environment: print what the server sends (to debug seeds) */

/* The linked http.c wants a router; the WebSocket is opened without one. */
static bool one_of(const char *s, const char *const *list)
{
    for (; s != NULL && *list != NULL; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

static const char *const types[] = {"welcome", "subscribed", "unsubscribed", "event", "pong", "reset", "error", NULL};
static const char *const codes[] = {"bad_request",    "invalid_json",     "unknown_type",  "invalid_channel",
                                    "invalid_filter", "invalid_event",    "unauthorized",  "permission_denied",
                                    "not_found",      "payload_too_large", "limit_exceeded", "unavailable",
                                    "internal",       NULL};

/* Walks everything written since the last call. */
static void check_output(uint64_t *last_seq)
{
    rt_ws_frame_t f;
    const char *p = NULL;
    while (fake_next_checked_frame(&f, &p, verbose)) {
        if (f.opcode != RT_WS_OP_TEXT) {
            CHECK(f.opcode == RT_WS_OP_PING || f.opcode == RT_WS_OP_PONG);
            continue;
        }
        json_t *j = json_loadb(p, (size_t)f.payload_len, JSON_REJECT_DUPLICATES, NULL);
        CHECK(json_is_object(j));
        const char *type = json_string_value(json_object_get(j, "type"));
        CHECK(one_of(type, types));
        if (strcmp(type, "error") == 0) {
            json_t *e = json_object_get(j, "error");
            CHECK(one_of(json_string_value(json_object_get(e, "code")), codes));
            CHECK(json_is_string(json_object_get(e, "message")));
        } else if (strcmp(type, "event") == 0) {
            json_int_t seq = json_integer_value(json_object_get(json_object_get(j, "event"), "seq"));
            CHECK(seq > 0 && (uint64_t)seq > *last_seq);
            *last_seq = (uint64_t)seq;
        }
        json_decref(j);
    }
}

static void publish_after(void)
{
    static const struct {
        const char *type, *channel, *data;
    } evs[] = {
        {"incident.created", "incidents", "{\"severity\":\"SEV-1\",\"priority\":1,\"status\":\"open\"}"},
        {"incident.updated", "incidents.INC-1", "{\"severity\":\"SEV-2\",\"service\":{\"team\":\"db\"},\"ack\":true}"},
        {"sla.breach", "sla", "{\"minutes\":45,\"severity\":\"SEV-1\"}"},
        {"system.notification", "system", NULL},
        {"timeline.updated", "timeline.INC-1", "[1,\"two\",null]"},
    };
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        CHECK(fake_publish(NULL, evs[i].type, evs[i].channel, evs[i].data, NULL) == 0);
    rt_broadcaster_dispatch(bc, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    uint8_t cfg = data[0];
    size_t piece = cfg >> 3;
    data++, size--;

    fake_setup(8);
    static rt_namespace_t ns[] = {{.pattern = "incidents.>", .anonymous = true, .history = true}};
    static rt_access_t access;
    access = (rt_access_t){.namespaces = ns, .n_namespaces = 1, .insecure = cfg & 1};
    server.access = &access;
    if (cfg & 2) {
        rt_token_verifier_t *tokens;
        CHECK(rt_token_verifier_new(&(rt_token_config_t){.secret = "fuzz-secret"}, &tokens, NULL, 0) == 0);
        server.tokens = tokens;
    }
    if (cfg & 4)
        config.client_queue_bytes = 700;
    CHECK(fake_publish("e1", "incident.created", "incidents", "{\"severity\":\"SEV-1\"}", NULL) == 0);
    CHECK(fake_publish("e2", "incident.updated", "incidents.INC-1", "{\"severity\":\"SEV-2\",\"n\":2}", NULL) == 0);
    CHECK(fake_publish("e3", "sla.breach", "sla", "{\"minutes\":31}", NULL) == 0);
    CHECK(fake_publish("e4", "system.notification", "system", "\"maintenance\"", NULL) == 0);
    rt_broadcaster_dispatch(bc, 0);

    const uint8_t *nl = memchr(data, '\n', size);
    size_t qlen = nl != NULL ? (size_t)(nl - data) : size;
    char *query = strndup((const char *)data, qlen);
    size_t pos = nl != NULL ? qlen + 1 : size;
    uint64_t last_seq = 0;
    CHECK(fake_ws_open(rt_native_handle_ws, "/ws", query) > 0);
    free(query);
    check_output(&last_seq);

    while (pos < size && !conn.closing && !conn.close_after_flush) {
        nl = memchr(data + pos, '\n', size - pos);
        size_t len = nl != NULL ? (size_t)(nl - (data + pos)) : size - pos;
        client_frame_in_pieces(RT_WS_OP_TEXT, 1, data + pos, len, piece);
        pos += len + 1;
        check_output(&last_seq);
    }
    publish_after();
    now_ms += 25000;
    conn.handler->on_tick(&conn, now_ms);
    check_output(&last_seq);

    conn.handler->on_close(&conn);
    conn.handler = NULL;
    rt_broadcaster_stats_t bs;
    rt_broadcaster_stats(bc, &bs);
    CHECK(bs.clients == 0 && bs.subscriptions == 0);
    CHECK(atomic_load(&server.stats.subscriptions) == 0);
    fake_teardown();
    rt_token_verifier_free(server.tokens);
    return 0;
}
