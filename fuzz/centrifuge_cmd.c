/*
 * libFuzzer target: arbitrary bytes as Centrifuge client frames (newline-separated JSON commands), through the
 * real protocol handler (src/protocol/centrifuge.c on the WebSocket state machine of src/transport/ws_conn.c,
 * both included here) on the fake connection of tests/harness/fake_conn.h. Subscriptions, recovery, history,
 * presence, tokens and filters are the real code; rt_server_publish appends to history and queues on the
 * broadcaster, as the server's does.
 *
 * Input: one configuration byte, then frames separated by NUL bytes (no JSON text holds a raw NUL), each sent as
 * one masked text frame in pieces. Configuration bits: 0 a token secret ("fuzz-secret"), 1 insecure mode
 * (otherwise "news" is anonymous, the rest needs a grant), 2 client publish allowed and 3 presence and
 * join/leave off (by namespace, for every channel), 4 a small client queue, 5-7 the piece size (0: whole).
 * History holds events on "news" and "chat" beforehand; after each of the first 16 frames an event is published
 * and dispatched and the clock moves a second; at the end the ping is due and then the pong overdue.
 *
 * Checks, besides ASan/UBSan/LSan: every server frame is complete, unmasked and final; a text frame is one JSON
 * object: {} (ping), a reply {"id":N,<result or error>} (an error with a numeric code and a message), or a push;
 * publication offsets increase per channel (no channel's stream goes backwards: history is big enough that no
 * channel is evicted); a close frame is valid; once closed, no subscription or presence is left.
 */
/* fuzz-sources: src/util/buf.c src/util/bytes.c src/util/clock.c src/util/error.c src/util/log.c src/util/map.c src/util/mem.c src/util/histogram.c src/core/broadcaster.c src/core/access.c src/core/namespace.c src/core/channel.c src/core/event.c src/core/event_id.c src/core/filter_compile.c src/core/filter_eval.c src/core/history.c src/core/sub_index.c src/transport/ws_codec.c src/transport/utf8.c src/transport/ws_handshake.c src/protocol/centrifuge_sub.c src/protocol/centrifuge_push.c src/protocol/presence.c src/server/config.c src/net/origin.c src/net/conn_names.c src/net/access_log.c src/net/addr.c src/core/token.c src/core/token_keys.c src/net/http.c /usr/share/llhttp/api.c /usr/share/llhttp/http.c /usr/share/llhttp/llhttp.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../tests/harness/fake_conn_names.h"
#include "transport/ws_conn.c"
#undef LOG_PREFIX
#include "protocol/centrifuge.c"
#define FAKE_SERVER_PUBLISH
#include "../tests/harness/fake_conn.h"

#define CHECK(c) ((c) ? (void)0 : abort())

static bool verbose; /* FUZZ_VERBOSE=1 in the environment: print what the server sends (to debug seeds) */

/* The linked http.c wants a router; the WebSocket is opened without one. */
/* The newest publication offset seen per channel; as many channels as max_subscriptions allows at most. */
#define MAX_SUBS 128
static struct {
    char channel[RT_CHANNEL_MAX + 1];
    json_int_t offset;
} seen[MAX_SUBS];
static size_t n_seen;

static void check_pub_offset(const char *channel, json_int_t offset)
{
    CHECK(channel != NULL && strlen(channel) <= RT_CHANNEL_MAX && offset > 0);
    size_t i = 0;
    while (i < n_seen && strcmp(seen[i].channel, channel) != 0)
        i++;
    if (i == n_seen) {
        CHECK(n_seen < MAX_SUBS);
        strcpy(seen[n_seen++].channel, channel);
    } else {
        CHECK(offset > seen[i].offset);
    }
    seen[i].offset = offset;
}

static void check_message(json_t *j)
{
    CHECK(json_is_object(j));
    if (json_object_size(j) == 0)
        return; /* ping */
    json_t *push = json_object_get(j, "push");
    if (push != NULL) {
        CHECK(json_object_size(j) == 1 && json_is_object(push));
        json_t *pub = json_object_get(push, "pub");
        if (pub != NULL)
            check_pub_offset(json_string_value(json_object_get(push, "channel")),
                             json_integer_value(json_object_get(pub, "offset")));
        return;
    }
    json_t *id = json_object_get(j, "id");
    CHECK(json_is_integer(id) && json_integer_value(id) > 0 && json_integer_value(id) <= UINT32_MAX);
    CHECK(json_object_size(j) == 2);
    json_t *err = json_object_get(j, "error");
    if (err != NULL) {
        json_int_t code = json_integer_value(json_object_get(err, "code"));
        CHECK(code >= 100 && code < 200);
        CHECK(json_is_string(json_object_get(err, "message")));
    }
}

/* Walks everything written since the last call. */
static void check_output(void)
{
    rt_ws_frame_t f;
    const char *p = NULL;
    while (fake_next_checked_frame(&f, &p, verbose)) {
        CHECK(f.opcode == RT_WS_OP_TEXT || f.opcode == RT_WS_OP_PONG);
        if (f.opcode == RT_WS_OP_TEXT) {
            json_t *j = json_loadb(p, (size_t)f.payload_len, JSON_REJECT_DUPLICATES, NULL);
            check_message(j);
            json_decref(j);
        }
    }
}

static void tick(int64_t advance_ms)
{
    now_ms += advance_ms;
    if (!conn.closing)
        conn.handler->on_tick(&conn, now_ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const channels[] = {"news", "chat", "news", "room.1", "chat"};
    if (size < 1)
        return 0;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    uint8_t cfg = data[0];
    size_t piece = cfg >> 5 ? (size_t)1 << (cfg >> 5) : 0;
    data++, size--;

    fake_setup(1000);
    n_seen = 0;
    if (cfg & 1) {
        rt_token_verifier_t *tokens;
        CHECK(rt_token_verifier_new(&(rt_token_config_t){.secret = "fuzz-secret"}, &tokens, NULL, 0) == 0);
        server.tokens = tokens;
    }
    static rt_namespace_t ns[2];
    ns[0] = (rt_namespace_t){.pattern = "news", .anonymous = true, .history = true};
    ns[1] = (rt_namespace_t){.pattern = ">", .history = true, .client_publish = cfg & 4, .presence = !(cfg & 8),
                             .join_leave = !(cfg & 8)};
    ns[0].client_publish = ns[1].client_publish, ns[0].presence = ns[1].presence, ns[0].join_leave = ns[1].join_leave;
    static rt_access_t access;
    access = (rt_access_t){.namespaces = ns, .n_namespaces = 2, .insecure = cfg & 2};
    server.access = &access;
    if (cfg & 16)
        config.client_queue_bytes = 700;
    for (int i = 0; i < 5; i++)
        CHECK(fake_publish(NULL, "incident.created", channels[i], "{\"severity\":\"SEV-1\",\"n\":1}", NULL) == 0);
    rt_broadcaster_dispatch(bc, 0);
    CHECK(fake_ws_open(rt__centrifuge_ws_accept, "/connection/websocket", "") > 0);
    check_output();

    size_t pos = 0;
    for (int frames = 0; pos < size && !conn.closing && !conn.close_after_flush; frames++) {
        const uint8_t *nul = memchr(data + pos, '\0', size - pos);
        size_t len = nul != NULL ? (size_t)(nul - (data + pos)) : size - pos;
        client_frame_in_pieces(RT_WS_OP_TEXT, 1, data + pos, len, piece);
        pos += len + 1;
        if (frames < 16) {
            CHECK(fake_publish(NULL, "sla.breach", channels[frames % 5], "{\"severity\":\"SEV-2\",\"minutes\":45}", NULL) == 0);
            rt_broadcaster_dispatch(bc, 0);
            tick(1000);
        }
        check_output();
    }
    tick(30000);
    tick(10000);
    check_output();

    conn.handler->on_close(&conn);
    conn.handler = NULL;
    rt_broadcaster_stats_t bs;
    rt_broadcaster_stats(bc, &bs);
    CHECK(bs.clients == 0 && bs.subscriptions == 0);
    CHECK(atomic_load(&server.stats.subscriptions) == 0);
    size_t clients, users, chans, subs;
    rt_presence_totals(&clients, &users, &chans, &subs);
    CHECK(clients == 0 && users == 0 && chans == 0 && subs == 0);
    fake_teardown();
    rt_token_verifier_free(server.tokens);
    return 0;
}
