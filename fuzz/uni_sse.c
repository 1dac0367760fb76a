/*
 * libFuzzer target: arbitrary bytes as the Centrifugo unidirectional SSE connect request (rt__uni_sse_accept of
 * src/protocol/uni_sse.c: the ConnectRequest JSON with token, subs {recover, offset, epoch}, data…), sent as
 * GET /connection/uni_sse?cf_connect=<percent-encoded bytes> or as the body of POST /connection/uni_sse, through
 * the real HTTP handler (src/net/http.c on llhttp) on the fake connection of tests/harness/fake_conn.h. The
 * Centrifuge state (centrifuge_sub.c), tokens, recovery, presence, history and broadcaster are the real code;
 * rt_server_publish appends to history and queues on the broadcaster, as the server's does.
 *
 * Input: one configuration byte, then the request's JSON. Configuration bits: 0 POST (otherwise GET), 1 a token
 * secret ("fuzz-secret"; seeds carry tokens signed with it), 2 insecure mode (otherwise only "news" is
 * anonymous), 3 a small client queue (a slow consumer), 4-7 the piece size the request is fed in (0: at once).
 * History holds events on "news" and "chat" beforehand, with the epoch "f00dfeed" so that seeds can recover;
 * after the connect, events are published on several channels and dispatched, and the ping comes due.
 *
 * Checks, besides ASan/UBSan/LSan: the reply is either an HTTP 400 with a JSON error body
 * ({"error":{"code","message"}}) that closes the connection, or a 200 text/event-stream head carrying the
 * request's reply headers, then an empty line and well-formed SSE blocks (fuzz/sse_stream.h: `data: {json}`, a connect or
 * disconnect first, nothing after a disconnect, publication offsets growing per channel); once closed, no
 * broadcaster client, subscription or presence is left.
 */
/* fuzz-sources: src/util/buf.c src/util/bytes.c src/util/clock.c src/util/error.c src/util/log.c src/util/map.c src/util/mem.c src/core/broadcaster.c src/core/access.c src/core/namespace.c src/core/channel.c src/core/event.c src/core/event_id.c src/core/filter_compile.c src/core/filter_eval.c src/core/history.c src/core/sub_index.c src/core/token.c src/core/token_keys.c src/transport/ws_codec.c src/transport/utf8.c src/transport/ws_conn.c src/transport/ws_handshake.c src/protocol/uni_sse.c src/protocol/centrifuge_sub.c src/protocol/centrifuge_push.c src/protocol/presence.c src/server/config.c src/net/origin.c src/net/addr.c src/net/http.c /usr/share/llhttp/api.c /usr/share/llhttp/http.c /usr/share/llhttp/llhttp.c src/util/histogram.c src/net/access_log.c src/net/conn_names.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#define FAKE_SERVER_PUBLISH
#include "../tests/harness/fake_conn.h"
#include "core/token.h"
#include "protocol/centrifuge.h"
#include "protocol/presence.h"
#include "server/routes.h"

#define CHECK(c) ((c) ? (void)0 : abort())
#include "sse_stream.h"

static bool verbose; /* FUZZ_VERBOSE=1 in the environment: print what the server sends (to debug seeds) */


static unsigned routed;

static void route(rt_conn_t *c, rt_http_request_t *req)
{
    CHECK(strcmp(req->path, "/connection/uni_sse") == 0);
    routed++;
    rt__uni_sse_accept(c, req);
}

/* As the server's router does for CORS paths: every reply to the request, the stream's head too, carries it. */
static void head(rt_conn_t *c, rt_http_request_t *req)
{
    CHECK(rt_http_add_reply_headers(c, "Vary: Origin\r\n"));
}

static const rt_http_router_t router = {.on_head = head, .on_request = route};

/* Publishes an event of type on channels through rt_server_publish (raw: the data is the publication's). */
static void publish(const char *type, const char *const *channels, size_t n, const char *data_json, bool raw)
{
    rt_event_t *ev, *existing = NULL;
    char err[128];
    json_t *data = json_loads(data_json, JSON_DECODE_ANY, NULL);
    CHECK(rt_event_new(NULL, type, channels, n, data, &ev, err, sizeof(err)) == 0);
    json_decref(data);
    if (raw)
        ev->flags |= RT_EVENT_RAW_DATA;
    CHECK(rt_server_publish(&server, ev, &existing) == 0);
    rt_event_unref(ev);
}

static void publish_after(void)
{
    static const char *const chs[] = {"news", "chat", "room.1", "news.eu", "user.alice"};
    publish("incident.created", chs, 1, "{\"severity\":\"SEV-1\",\"n\":3}", false);
    publish("incident.updated", chs + 1, 2, "{\"severity\":\"SEV-2\",\"service\":{\"team\":\"db\"}}", false);
    publish("message.published", chs, 3, "{\"text\":\"hello\\nworld\"}", true);
    publish("sla.breach", chs + 3, 2, "[1,\"two\",null]", false);
    publish("message.published", chs + 2, 1, "\"line\\r\\nbreak\"", true);
    rt_broadcaster_dispatch(bc, 0);
}

/* The request: GET with the input percent-encoded into ?cf_connect=, or POST with it as the body. */
static void build_request(rt_buf_t *req, bool post, const uint8_t *data, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    if (post) {
        rt_buf_appendf(req, "POST /connection/uni_sse HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n", size);
        rt_buf_append(req, data, size);
        return;
    }
    rt_buf_appends(req, "GET /connection/uni_sse?cf_connect=");
    for (size_t i = 0; i < size; i++) {
        uint8_t b = data[i];
        if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '-' || b == '_' || b == '.') {
            rt_buf_append(req, &b, 1);
        } else {
            char e[3] = {'%', hex[b >> 4], hex[b & 15]};
            rt_buf_append(req, e, 3);
        }
    }
    rt_buf_appends(req, " HTTP/1.1\r\nHost: localhost\r\n\r\n");
}

/* Checks the reply head; returns true for a 200 event stream (*stream_at: where its blocks start). */
static bool check_head(size_t *stream_at)
{
    const char *end = memmem(out.base, out.len, "\r\n\r\n", 4);
    CHECK(end != NULL && out.len > 12 && memcmp(out.base, "HTTP/1.1 ", 9) == 0);
    int status = atoi(out.base + 9);
    size_t hlen = (size_t)(end + 4 - out.base);
    CHECK(memmem(out.base, hlen, "\r\nVary: Origin\r\n", 16) != NULL);
    if (status == 200) {
        CHECK(memmem(out.base, hlen, "\r\nContent-Type: text/event-stream", 33) != NULL);
        CHECK(conn.handler != &rt_http_handler);
        /* The body opens with an empty line, as Centrifugo's does (a line end flushes the stream through proxies). */
        CHECK(out.len >= hlen + 2 && memcmp(out.base + hlen, "\r\n", 2) == 0);
        *stream_at = hlen + 2;
        return true;
    }
    CHECK(status == 400 && conn.close_after_flush);
    const char *cl = memmem(out.base, hlen, "\r\nContent-Length: ", 18);
    CHECK(cl != NULL && memmem(out.base, hlen, "\r\nContent-Type: application/json\r\n", 34) != NULL);
    size_t blen = strtoul(cl + 18, NULL, 10);
    CHECK(out.len == hlen + blen);
    json_t *j = json_loadb(out.base + hlen, blen, JSON_REJECT_DUPLICATES, NULL);
    json_t *e = json_object_get(j, "error");
    CHECK(json_is_object(j) && json_object_size(j) == 1 && json_is_string(json_object_get(e, "code")) &&
          json_is_string(json_object_get(e, "message")));
    json_decref(j);
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    uint8_t cfg = data[0];
    size_t piece = cfg >> 4;
    data++, size--;

    fake_setup(1000);
    rt__http_init(&router);
    routed = 0;
    config.max_header_bytes = 256 * 1024; /* room for a percent-encoded cf_connect of 32 KiB */
    if (cfg & 2) {
        rt_token_verifier_t *tokens;
        CHECK(rt_token_verifier_new(&(rt_token_config_t){.secret = "fuzz-secret"}, &tokens, NULL, 0) == 0);
        server.tokens = tokens;
    }
    static rt_namespace_t ns[2];
    ns[0] = (rt_namespace_t){.pattern = "news", .anonymous = true, .history = true, .presence = true, .join_leave = true};
    ns[1] = (rt_namespace_t){.pattern = ">", .history = true, .presence = true, .join_leave = true};
    static rt_access_t access;
    access = (rt_access_t){.namespaces = ns, .n_namespaces = 2, .insecure = cfg & 4};
    server.access = &access;
    if (cfg & 8)
        config.client_queue_bytes = 700;
    rt_history_reset(server.history, "f00dfeed");
    static const char *const before[] = {"news", "chat", "news", "chat", "news"};
    for (size_t i = 0; i < 5; i++)
        publish("incident.created", before + i, 1, "{\"severity\":\"SEV-1\",\"n\":1}", false);
    rt_broadcaster_dispatch(bc, 0);

    rt_buf_t req = {0};
    build_request(&req, cfg & 1, data, size);
    rt_http_start(&conn);
    if (piece == 0)
        piece = req.len;
    for (size_t off = 0; off < req.len && !conn.closing && !conn.close_after_flush && routed == 0; off += piece)
        feed(req.base + off, req.len - off < piece ? req.len - off : piece);
    rt_buf_free(&req);
    if (verbose)
        fprintf(stderr, "%.*s\n", (int)out.len, out.base);
    CHECK(routed == 1);

    sse_stream_t stream = {0};
    if (check_head(&stream.pos)) {
        sse_check_blocks(&stream, out.base, out.len, verbose);
        CHECK(stream.blocks > 0);
        publish_after();
        sse_check_blocks(&stream, out.base, out.len, verbose);
        for (int i = 0; i < 3 && !conn.closing; i++) {
            now_ms += 25000; /* the ping is due */
            conn.handler->on_tick(&conn, now_ms);
            sse_check_blocks(&stream, out.base, out.len, verbose);
        }
        if (!conn.closing && !stream.ended) {
            conn.handler->on_shutdown(&conn);
            sse_check_blocks(&stream, out.base, out.len, verbose);
            CHECK(stream.ended);
        }
    }

    conn.handler->on_close(&conn);
    conn.handler = NULL;
    rt_broadcaster_stats_t bs;
    rt_broadcaster_stats(bc, &bs);
    CHECK(bs.clients == 0 && bs.subscriptions == 0);
    size_t clients, users, chans, subs;
    rt_presence_totals(&clients, &users, &chans, &subs);
    CHECK(clients == 0 && users == 0 && chans == 0 && subs == 0);
    fake_teardown();
    rt_token_verifier_free(server.tokens);
    return 0;
}
