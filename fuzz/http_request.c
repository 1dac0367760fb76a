/*
 * libFuzzer target: arbitrary bytes through the HTTP/1 request handler (rt_http_handler of src/net/http.c, on
 * llhttp) on the fake connection of tests/harness/fake_conn.h, with a router that answers every request 200.
 * So the bounds (431 headers, 413 body), pipelining, chunked bodies, upgrades, timeouts and the error paths run.
 *
 * Input: one configuration byte, then the bytes a client sends, offered in pieces as conn.c does. Configuration
 * bits: 0-1 max_header_bytes (64, 256, 1024, 16384), 2-3 max_body_bytes (0, 16, 256, 1 MiB), 4-7 the piece
 * size (0: at once). At the end the clock passes the header and idle timeouts.
 *
 * Checks, besides ASan/UBSan/LSan: the router gets a well-formed request (NUL-terminated path, query, lower-case
 * header names, values of their stated length, a body within the limit); the output is a sequence of complete
 * responses (status line, Content-Length, body) in order: a 100 Continue before a request's answer, one 200 per
 * routed request, then at most one error (400, 408, 413, 431), after which the connection closes.
 */
/* fuzz-sources: src/util/buf.c src/util/bytes.c src/util/clock.c src/util/error.c src/util/log.c src/util/map.c src/util/mem.c src/util/histogram.c src/core/broadcaster.c src/core/channel.c src/core/namespace.c src/core/event.c src/core/event_id.c src/core/filter_compile.c src/core/filter_eval.c src/core/history.c src/core/sub_index.c src/server/config.c src/net/origin.c src/net/conn_names.c src/net/access_log.c src/net/addr.c src/net/http.c /usr/share/llhttp/api.c /usr/share/llhttp/http.c /usr/share/llhttp/llhttp.c */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../tests/harness/fake_conn.h"

#define CHECK(c) ((c) ? (void)0 : abort())

static bool verbose; /* FUZZ_VERBOSE=1 in the environment: print what the server sends (to debug seeds) */

static unsigned routed;

static void route(rt_conn_t *c, rt_http_request_t *req)
{
    CHECK(req->method != NULL && req->path != NULL && req->query != NULL && req->n_headers <= RT_HTTP_MAX_HEADERS);
    CHECK(strlen(req->path) + strlen(req->query) < config.max_header_bytes);
    for (size_t i = 0; i < req->n_headers; i++) {
        for (const char *p = req->headers[i].name; *p != '\0'; p++)
            CHECK(!isupper((unsigned char)*p));
        CHECK(strlen(req->headers[i].value) == req->headers[i].value_len);
    }
    CHECK(req->body.len <= config.max_body_bytes);
    routed++;
    rt_http_respond(c, 200, "text/plain", "ok", 2, NULL);
}

/* As the server's router does for CORS paths: every reply to this request carries the line. */
static void head(rt_conn_t *c, rt_http_request_t *req)
{
    CHECK(rt_http_add_reply_headers(c, "Vary: Origin\r\n"));
}

static const rt_http_router_t router = {.on_head = head, .on_request = route};

/* Parses the responses in out; returns how many 200s there were. */
static unsigned check_responses(void)
{
    unsigned ok = 0;
    bool error = false, closed = conn.closing || conn.close_after_flush;
    size_t pos = 0;
    while (pos < out.len) {
        CHECK(!error); /* nothing after an error */
        const char *head = out.base + pos, *end = memmem(head, out.len - pos, "\r\n\r\n", 4);
        CHECK(end != NULL && out.len - pos > 12 && memcmp(head, "HTTP/1.1 ", 9) == 0);
        int status = atoi(head + 9);
        size_t hlen = (size_t)(end + 4 - head), blen = 0;
        if (status == 100) {
            CHECK(hlen == 25);
        } else {
            const char *cl = memmem(head, hlen, "\r\nContent-Length: ", 18);
            CHECK(cl != NULL);
            blen = strtoul(cl + 18, NULL, 10);
            CHECK(status == 200 || status == 400 || status == 408 || status == 413 || status == 431);
            ok += status == 200;
            error = status != 200;
            /* only the error replies close: the router's 200 keeps the connection unless the request asked */
            CHECK(!error || (closed && memmem(head, hlen, "\r\nConnection: close\r\n", 21) != NULL));
        }
        CHECK(out.len - pos - hlen >= blen);
        pos += hlen + blen;
    }
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t header_limits[] = {64, 256, 1024, 16384}, body_limits[] = {0, 16, 256, 1 << 20};
    if (size < 1)
        return 0;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    uint8_t cfg = data[0];
    size_t piece = cfg >> 4;
    data++, size--;

    fake_setup(1);
    rt__http_init(&router);
    routed = 0;
    config.max_header_bytes = header_limits[cfg & 3];
    config.max_body_bytes = body_limits[(cfg >> 2) & 3];
    rt_http_start(&conn);
    if (piece == 0)
        piece = size;
    for (size_t off = 0; off < size && !conn.closing && !conn.close_after_flush; off += piece)
        feed(data + off, size - off < piece ? size - off : piece);
    if (!conn.closing && !conn.close_after_flush) {
        now_ms += 11000; /* past header_timeout: a request still arriving gets 408 */
        conn.handler->on_tick(&conn, now_ms);
        now_ms += 61000; /* past idle_timeout */
        conn.handler->on_tick(&conn, now_ms);
        CHECK(conn.closing || conn.close_after_flush);
    }
    if (verbose)
        fprintf(stderr, "%u routed, sent:\n%.*s\n", routed, (int)out.len, out.base);
    CHECK(check_responses() == routed);
    fake_teardown();
    return 0;
}
