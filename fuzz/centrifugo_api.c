/*
 * libFuzzer target: arbitrary bytes as the JSON body of the Centrifugo server API (rt__centrifugo_api of
 * src/protocol/centrifuge_api.c: POST /api {"method","params"}, /api/publish, /api/broadcast, /api/history,
 * /api/history_remove, /api/presence, /api/presence_stats, /api/channels, /api/info, /api/disconnect,
 * /api/subscribe, /api/unsubscribe, /api/batch, and an unknown method), through the real HTTP handler
 * (src/net/http.c on llhttp) on the fake connection of tests/harness/fake_conn.h. Publishes go through
 * rt_server_publish into the real history and broadcaster; disconnect, subscribe and unsubscribe reach a real
 * uni_sse connection (src/protocol/uni_sse.c) of user "alice", subscribed to "news" and "chat" by its token, on
 * a second fake connection whose stream is checked too.
 *
 * Input: requests separated by NUL bytes (no JSON text holds one), each a selector byte, then the body. The
 * first selector also configures the run. Selector bits: 0-3 the path, 4 `X-Centrifugo-Error-Mode: transport`;
 * of the first one only: 5 no uni_sse connection, 6 insecure mode (presence is on except under "quiet."),
 * 7 the requests are fed in pieces of 7 bytes. History holds events on "news" and "chat" beforehand (epoch
 * "f00dfeed"); after each request the broadcaster is dispatched, at the end the stream's ping comes due.
 *
 * Checks, besides ASan/UBSan/LSan: each reply is a complete HTTP response with a JSON body: a body that is not
 * an object gets 400 {"error":{"code":107,…}}; otherwise 200 with exactly `result` (an object) or `error`
 * ({"code":100..199,"message":…}), or for /api/batch {"replies":[…]} of one-key objects, `error` or the
 * method's result; in transport error mode an error comes with 400, 404, 409, 416 or 500 instead. Publication
 * results carry an offset and epoch. The uni_sse stream stays well-formed (fuzz/sse_stream.h); once everything
 * is closed, no broadcaster client, subscription or presence is left.
 */
/* fuzz-sources: src/util/buf.c src/util/bytes.c src/util/clock.c src/util/error.c src/util/log.c src/util/map.c src/util/mem.c src/core/broadcaster.c src/core/access.c src/core/namespace.c src/core/channel.c src/core/event.c src/core/event_id.c src/core/filter_compile.c src/core/filter_eval.c src/core/history.c src/core/sub_index.c src/core/token.c src/core/token_keys.c src/transport/ws_codec.c src/transport/utf8.c src/transport/ws_conn.c src/transport/ws_handshake.c src/protocol/centrifuge_api.c src/protocol/uni_sse.c src/protocol/centrifuge_sub.c src/protocol/centrifuge_push.c src/protocol/presence.c src/server/config.c src/net/origin.c src/net/addr.c src/net/http.c /usr/share/llhttp/api.c /usr/share/llhttp/http.c /usr/share/llhttp/llhttp.c src/util/histogram.c src/net/access_log.c src/net/conn_names.c src/server/publish.c */
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


static const char *const paths[16] = {
    "/api",          "/api/publish",     "/api/broadcast",  "/api/history",     "/api/history_remove", "/api/presence",
    "/api/presence_stats", "/api/channels", "/api/info",     "/api/disconnect",  "/api/subscribe",      "/api/unsubscribe",
    "/api/batch",    "/api/nope",        "/api/publish",    "/api/batch",
};

/* {"sub":"alice","channels":["news","chat","room.1"]}, HS256 with "fuzz-secret". */
static const char alice_token[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImNoYW5uZWxzIjpbIm5ld3MiLCJjaGF0Iiwicm9vbS4xIl19."
    "o4LGyMdCW886eE5eGfX1smaxVhRTIodgiCGbkzHEhxk";

static rt_conn_t peer; /* the uni_sse connection; what it writes goes to other_out */

static void route(rt_conn_t *c, rt_http_request_t *req)
{
    if (strcmp(req->path, "/connection/uni_sse") == 0)
        rt__uni_sse_accept(c, req);
    else
        rt__centrifugo_api(c, req);
}

static const rt_http_router_t router = {.on_request = route};

static void publish_before(const char *channel)
{
    rt_event_t *ev, *existing = NULL;
    char err[128];
    const char *chs[] = {channel};
    json_t *data = json_pack("{s:s,s:i}", "severity", "SEV-1", "n", 1);
    CHECK(rt_event_new(NULL, "incident.created", chs, 1, data, &ev, err, sizeof(err)) == 0);
    json_decref(data);
    CHECK(rt_server_publish(&server, ev, &existing) == 0);
    rt_event_unref(ev);
}

/* Opens the uni_sse connection of alice on peer: GET /connection/uni_sse?cf_connect={"token":…}. */
static void open_peer(sse_stream_t *st)
{
    rt_buf_t req = {0};
    rt_buf_appendf(&req, "GET /connection/uni_sse?cf_connect=%%7B%%22token%%22%%3A%%22%s%%22%%7D HTTP/1.1\r\nHost: x\r\n\r\n",
                   alice_token);
    memset(&peer, 0, sizeof(peer));
    rt_http_start(&peer);
    CHECK(peer.handler->on_data(&peer, req.base, req.len) == (ssize_t)req.len);
    rt_buf_free(&req);
    const char *end = memmem(other_out.base, other_out.len, "\r\n\r\n\r\n", 6);
    CHECK(end != NULL && memcmp(other_out.base, "HTTP/1.1 200 ", 13) == 0);
    st->pos = (size_t)(end + 6 - other_out.base);
    sse_check_blocks(st, other_out.base, other_out.len, verbose);
    CHECK(st->blocks == 1 && !st->ended);
}

static void check_error(const json_t *e)
{
    json_int_t code = json_integer_value(json_object_get(e, "code"));
    CHECK(json_is_object(e) && code >= 100 && code < 200 && json_is_string(json_object_get(e, "message")));
}

/* A publish or broadcast result: {"offset":N,"epoch":"…"}. */
static void check_position(const json_t *r)
{
    CHECK(json_integer_value(json_object_get(r, "offset")) > 0 && json_is_string(json_object_get(r, "epoch")));
}

static void check_result(const char *path, const json_t *r)
{
    CHECK(json_is_object(r));
    if (strcmp(path, "/api/publish") == 0) {
        check_position(r);
    } else if (strcmp(path, "/api/broadcast") == 0) {
        size_t i;
        json_t *resp;
        CHECK(json_is_array(json_object_get(r, "responses")));
        json_array_foreach(json_object_get(r, "responses"), i, resp) {
            CHECK(json_object_size(resp) == 1);
            if (json_object_get(resp, "error") != NULL)
                check_error(json_object_get(resp, "error"));
            else
                check_position(json_object_get(resp, "result"));
        }
    }
}

/* Checks the response to one request, out[from..); false once the connection closes. */
static bool check_reply(size_t from, const char *path, bool transport_mode, bool body_is_object)
{
    CHECK(out.len > from);
    const char *h = out.base + from, *end = memmem(h, out.len - from, "\r\n\r\n", 4);
    CHECK(end != NULL && out.len - from > 12 && memcmp(h, "HTTP/1.1 ", 9) == 0);
    int status = atoi(h + 9);
    size_t hlen = (size_t)(end + 4 - h);
    const char *cl = memmem(h, hlen, "\r\nContent-Length: ", 18);
    CHECK(cl != NULL && memmem(h, hlen, "\r\nContent-Type: application/json\r\n", 34) != NULL);
    size_t blen = strtoul(cl + 18, NULL, 10);
    CHECK(out.len - from == hlen + blen);
    if (verbose)
        fprintf(stderr, "%s -> %d %.*s\n", path, status, (int)blen, h + hlen);
    json_t *j = json_loadb(h + hlen, blen, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(j) && json_object_size(j) == 1);
    json_t *err = json_object_get(j, "error"), *res = json_object_get(j, "result"), *replies = json_object_get(j, "replies");
    if (!body_is_object) {
        CHECK(status == 400 && err != NULL && json_integer_value(json_object_get(err, "code")) == 107);
    } else if (strcmp(path, "/api/batch") == 0 || (strcmp(path, "/api") == 0 && replies != NULL)) {
        size_t i;
        json_t *rep;
        CHECK(status == 200 && json_is_array(replies));
        json_array_foreach(replies, i, rep) {
            CHECK(json_is_object(rep) && json_object_size(rep) == 1);
            const char *key = json_object_iter_key(json_object_iter(rep));
            json_t *v = json_object_iter_value(json_object_iter(rep));
            if (strcmp(key, "error") == 0) {
                check_error(v);
            } else {
                char p[64];
                snprintf(p, sizeof(p), "/api/%s", key);
                check_result(p, v);
            }
        }
    } else if (err != NULL) {
        check_error(err);
        if (transport_mode)
            CHECK(status == 400 || status == 404 || status == 409 || status == 416 || status == 500);
        else
            CHECK(status == 200);
    } else {
        CHECK(status == 200 && res != NULL);
        check_result(path, res);
    }
    json_decref(j);
    CHECK(status == 200 || conn.close_after_flush || conn.closing || transport_mode);
    return !conn.closing && !conn.close_after_flush;
}

/* Sends one request: returns false once the connection is closed. */
static bool request(uint8_t sel, const uint8_t *body, size_t len, size_t piece)
{
    const char *path = paths[sel & 15];
    bool transport_mode = sel & 16;
    rt_buf_t req = {0};
    rt_buf_appendf(&req, "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n",
                   path, transport_mode ? "X-Centrifugo-Error-Mode: transport\r\n" : "", len);
    rt_buf_append(&req, body, len);
    size_t from = out.len;
    if (piece == 0)
        piece = req.len;
    for (size_t off = 0; off < req.len && !conn.closing && !conn.close_after_flush; off += piece)
        feed(req.base + off, req.len - off < piece ? req.len - off : piece);
    rt_buf_free(&req);
    json_t *j = len != 0 ? json_loadb((const char *)body, len, 0, NULL) : json_object();
    bool is_object = json_is_object(j);
    json_decref(j);
    /* The legacy /api answers a batch when params asks for one: check_reply tells by the reply's key. */
    return check_reply(from, path, transport_mode, is_object);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    uint8_t cfg = data[0];
    size_t piece = cfg & 128 ? 7 : 0;
    bool with_peer = !(cfg & 32);

    fake_setup(1000);
    rt__http_init(&router);
    rt_token_verifier_t *tokens;
    CHECK(rt_token_verifier_new(&(rt_token_config_t){.secret = "fuzz-secret"}, &tokens, NULL, 0) == 0);
    server.tokens = tokens;
    static rt_namespace_t ns[2];
    ns[0] = (rt_namespace_t){.pattern = "quiet.>", .history = true};
    ns[1] = (rt_namespace_t){.pattern = ">", .anonymous = true, .history = true, .presence = true, .join_leave = true};
    static rt_access_t access;
    access = (rt_access_t){.namespaces = ns, .n_namespaces = 2, .insecure = cfg & 64};
    server.access = &access;
    rt_history_reset(server.history, "f00dfeed");
    publish_before("news");
    publish_before("chat");
    publish_before("news");
    rt_broadcaster_dispatch(bc, 0);

    sse_stream_t stream = {0};
    if (with_peer)
        open_peer(&stream);
    rt_http_start(&conn);
    size_t pos = 0;
    for (int n = 0; pos < size && n < 8; n++) {
        uint8_t sel = data[pos++];
        const uint8_t *nul = memchr(data + pos, '\0', size - pos);
        size_t len = nul != NULL ? (size_t)(nul - (data + pos)) : size - pos;
        bool open = request(sel, data + pos, len, piece);
        pos += len + 1;
        rt_broadcaster_dispatch(bc, 0);
        fake_run_tasks();
        if (with_peer)
            sse_check_blocks(&stream, other_out.base, other_out.len, verbose);
        if (!open)
            break;
    }
    if (with_peer && !peer.closing && !peer.close_after_flush) {
        now_ms += 25000;
        peer.handler->on_tick(&peer, now_ms);
        peer.handler->on_shutdown(&peer);
        sse_check_blocks(&stream, other_out.base, other_out.len, verbose);
        CHECK(stream.ended);
    }
    if (with_peer) {
        peer.handler->on_close(&peer);
        peer.handler = NULL;
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
