/*
 * libFuzzer target: arbitrary WebSocket opening handshakes (RFC 6455 section 4.2), twice: straight into
 * rt_ws_handshake_check, rt_ws_handshake_offers_protocol and rt_ws_handshake_response (src/transport/ws_handshake.c),
 * and as an HTTP request through the real HTTP handler (src/net/http.c on llhttp) into rt_ws_accept
 * (src/transport/ws_conn.c: repeated headers joined with ", ") on the fake connection of tests/harness/fake_conn.h.
 *
 * Input: one configuration byte, then up to seven fields separated by '\n': method, Upgrade, Connection,
 * Sec-WebSocket-Version, Sec-WebSocket-Key, Sec-WebSocket-Protocol, an extra header line. Configuration bits: 0-1
 * the HTTP version (1.1, 1.0, 2.0, 0.9; HTTP/1.0 only on the wire), 2-7 the header fields absent (one bit each,
 * from Upgrade on). For the HTTP request, a field is stripped of CR, LF and NUL, a \x01 in it starts another
 * occurrence of the header, and a method other than GET, POST, PUT or HEAD is sent as GET.
 *
 * Checks, besides ASan/UBSan (each field is its own allocation of its exact length): the decision equals the
 * one written here from the RFC (method GET, HTTP/1.1 or later, Upgrade listing websocket and Connection listing
 * upgrade in any case, version 13, a key of 22 base64 characters and "=="); a refusal is 400, 405 (with
 * Allow: GET) or 426 (with Sec-WebSocket-Version: 13) with a message; a 101 carries
 * Sec-WebSocket-Accept = base64(SHA-1(key + GUID)), computed here with OpenSSL, and the offered protocol or extra
 * header when asked; the response builder never writes past its buffer and refuses one too small. On the wire:
 * a 101 with that accept value and the connection switched, or a refusal with a JSON error body.
 */
/* fuzz-sources: src/util/buf.c src/util/bytes.c src/util/clock.c src/util/error.c src/util/log.c src/util/map.c src/util/mem.c src/core/broadcaster.c src/core/channel.c src/core/namespace.c src/core/event.c src/core/event_id.c src/core/filter_compile.c src/core/filter_eval.c src/core/history.c src/core/sub_index.c src/transport/ws_codec.c src/transport/utf8.c src/transport/ws_conn.c src/transport/ws_handshake.c src/server/config.c src/net/origin.c src/net/addr.c src/net/http.c /usr/share/llhttp/api.c /usr/share/llhttp/http.c /usr/share/llhttp/llhttp.c src/util/histogram.c src/net/access_log.c src/net/conn_names.c */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include "../tests/harness/fake_conn.h"
#include "transport/ws_conn.h"
#include "transport/ws_handshake.h"

#define CHECK(c) ((c) ? (void)0 : abort())

enum { F_METHOD, F_UPGRADE, F_CONNECTION, F_VERSION, F_KEY, F_PROTOCOL, F_EXTRA, N_FIELDS };

typedef struct {
    char *p; /* NULL: absent */
    size_t len;
} field_t;

static bool verbose; /* FUZZ_VERBOSE=1 in the environment: print what the server sends */

/* ---- the reference, from RFC 6455 section 4.2.1 and RFC 9110 section 5.6.1 ---- */

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* s[0..len) without surrounding spaces and tabs, into *b and *n. */
static void strip(const char *s, size_t len, const char **b, size_t *n)
{
    size_t i = 0, j = len;
    while (i < j && ows(s[i]))
        i++;
    while (j > i && ows(s[j - 1]))
        j--;
    *b = s + i;
    *n = j - i;
}

/* A comma-separated list holds token: each element, stripped, compared (icase: ASCII case-insensitively). */
static bool list_has(const char *s, size_t len, const char *token, bool icase)
{
    size_t tl = strlen(token), start = 0;
    if (s == NULL)
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ',')
            continue;
        const char *e;
        size_t n;
        strip(s + start, i - start, &e, &n);
        if (n == tl && (icase ? strncasecmp(e, token, n) == 0 : memcmp(e, token, n) == 0))
            return true;
        start = i + 1;
    }
    return false;
}

static bool key_ok(const char *k, size_t len)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len != 24 || k[22] != '=' || k[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (k[i] == '\0' || strchr(b64, k[i]) == NULL)
            return false;
    return true;
}

static int reference(const field_t *f, int major, int minor)
{
    const char *v;
    size_t n;
    if (f[F_METHOD].p == NULL || f[F_METHOD].len != 3 || memcmp(f[F_METHOD].p, "GET", 3) != 0)
        return 405;
    if (major * 10 + minor < 11)
        return 400;
    if (!list_has(f[F_UPGRADE].p, f[F_UPGRADE].len, "websocket", true) ||
        !list_has(f[F_CONNECTION].p, f[F_CONNECTION].len, "upgrade", true))
        return 400;
    if (f[F_VERSION].p == NULL)
        return 400;
    strip(f[F_VERSION].p, f[F_VERSION].len, &v, &n);
    if (n == 0)
        return 400;
    if (n != 2 || memcmp(v, "13", 2) != 0)
        return 426;
    if (f[F_KEY].p == NULL)
        return 400;
    strip(f[F_KEY].p, f[F_KEY].len, &v, &n);
    return key_ok(v, n) ? 101 : 400;
}

/* base64(SHA-1(key + the RFC's GUID)) of the stripped key, with OpenSSL's one-shot digest. */
static void reference_accept(const char *key, size_t len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    const char *k;
    size_t n;
    strip(key, len, &k, &n);
    unsigned char *in = malloc(n + sizeof(guid)), md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    memcpy(in, k, n);
    memcpy(in + n, guid, sizeof(guid) - 1);
    CHECK(EVP_Digest(in, n + sizeof(guid) - 1, md, &mdlen, EVP_sha1(), NULL) == 1 && mdlen == 20);
    free(in);
    CHECK(EVP_EncodeBlock((unsigned char *)out, md, 20) == 28);
}

/* ---- straight into the handshake functions ---- */

static void check_response(const rt_ws_handshake_t *hs, const char *protocol, const char *extra, const char *accept, size_t cap)
{
    char *expect = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&expect, &n);
    fprintf(m, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
            accept);
    if (protocol != NULL)
        fprintf(m, "Sec-WebSocket-Protocol: %s\r\n", protocol);
    fprintf(m, "%s\r\n", extra != NULL ? extra : "");
    fclose(m);
    char *buf = malloc(n + 1);
    CHECK(rt_ws_handshake_response(buf, n + 1, hs, protocol, extra) == (int)n && memcmp(buf, expect, n + 1) == 0);
    free(buf);
    /* One byte short (no room for the NUL), or a size from the input: refused, nothing written past the end. */
    size_t small[2] = {n, cap % (n + 1)};
    for (int i = 0; i < 2; i++) {
        buf = malloc(small[i] != 0 ? small[i] : 1);
        int r = rt_ws_handshake_response(buf, small[i], hs, protocol, extra);
        CHECK(small[i] > n ? r == (int)n : r == RT_E2BIG);
        free(buf);
    }
    free(expect);
}

static void check_direct(const field_t *f, int major, int minor, uint8_t cap)
{
    field_t c[N_FIELDS]; /* each its own allocation of exactly len bytes, not NUL-terminated */
    for (int i = 0; i < N_FIELDS; i++) {
        c[i].len = f[i].len;
        c[i].p = f[i].p != NULL ? malloc(f[i].len != 0 ? f[i].len : 1) : NULL;
        if (c[i].p != NULL)
            memcpy(c[i].p, f[i].p, f[i].len);
    }
    rt_ws_handshake_req_t req = {
        .method = c[F_METHOD].p, .method_len = c[F_METHOD].len, .http_major = (uint8_t)major, .http_minor = (uint8_t)minor,
        .upgrade = c[F_UPGRADE].p, .upgrade_len = c[F_UPGRADE].len, .connection = c[F_CONNECTION].p,
        .connection_len = c[F_CONNECTION].len, .version = c[F_VERSION].p, .version_len = c[F_VERSION].len,
        .key = c[F_KEY].p, .key_len = c[F_KEY].len, .protocol = c[F_PROTOCOL].p, .protocol_len = c[F_PROTOCOL].len};
    rt_ws_handshake_t hs;
    int status = rt_ws_handshake_check(&req, &hs);
    CHECK(status == hs.status && status == reference(f, major, minor));
    if (status != 101) {
        CHECK(hs.error != NULL && hs.error[0] != '\0' && hs.headers != NULL);
        CHECK(status != 405 || strcmp(hs.headers, "Allow: GET\r\n") == 0);
        CHECK(status != 426 || strcmp(hs.headers, "Sec-WebSocket-Version: 13\r\n") == 0);
        CHECK(status == 400 || status == 405 || status == 426);
    } else {
        char accept[29];
        reference_accept(f[F_KEY].p, f[F_KEY].len, accept);
        CHECK(strcmp(hs.accept, accept) == 0);
        /* The first protocol offered (stripped), if any: offered by the list, as every element is. */
        char *proto = NULL;
        if (f[F_PROTOCOL].p != NULL) {
            const char *comma = memchr(f[F_PROTOCOL].p, ',', f[F_PROTOCOL].len), *e;
            size_t n;
            strip(f[F_PROTOCOL].p, comma != NULL ? (size_t)(comma - f[F_PROTOCOL].p) : f[F_PROTOCOL].len, &e, &n);
            if (n != 0 && memchr(e, '\0', n) == NULL) {
                proto = strndup(e, n);
                CHECK(rt_ws_handshake_offers_protocol(&req, proto) == 1);
            }
        }
        CHECK(rt_ws_handshake_offers_protocol(&req, "chat") == list_has(f[F_PROTOCOL].p, f[F_PROTOCOL].len, "chat", false));
        char *extra = f[F_EXTRA].p != NULL ? malloc(strnlen(f[F_EXTRA].p, f[F_EXTRA].len) + 3) : NULL;
        if (extra != NULL)
            sprintf(extra, "%.*s\r\n", (int)strnlen(f[F_EXTRA].p, f[F_EXTRA].len), f[F_EXTRA].p);
        check_response(&hs, proto, extra, accept, cap);
        check_response(&hs, NULL, NULL, accept, cap);
        free(proto);
        free(extra);
    }
    for (int i = 0; i < N_FIELDS; i++)
        free(c[i].p);
}

/* ---- through the HTTP layer into rt_ws_accept ---- */

static int opened, closed;

static void *on_open(rt_ws_t *ws, const rt_http_request_t *req)
{
    opened++;
    return &opened;
}

static int on_message(rt_ws_t *ws, void *state, const char *msg, size_t len)
{
    return 0;
}

static void on_close(rt_ws_t *ws, void *state)
{
    closed++;
}

static const rt_ws_protocol_t proto = {.name = "fuzz", .kind = RT_CONN_WS, .on_open = on_open, .on_message = on_message,
                                       .on_close = on_close};

static int wire_expect; /* the reference decision for the request as the router got it; 0 when not known */
static char wire_accept[29];

/* The values of header name joined with ", " (as the handshake is documented to get them); NULL when absent. */
static char *joined(const rt_http_request_t *req, const char *name)
{
    char *s = NULL;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (strcmp(req->headers[i].name, name) != 0)
            continue;
        char *t;
        CHECK(asprintf(&t, "%s%s%s", s != NULL ? s : "", s != NULL ? ", " : "", req->headers[i].value) >= 0);
        free(s);
        s = t;
    }
    return s;
}

static void route(rt_conn_t *c, rt_http_request_t *req)
{
    static const char *const names[] = {NULL, "upgrade", "connection", "sec-websocket-version", "sec-websocket-key"};
    field_t f[N_FIELDS] = {{(char *)req->method, strlen(req->method)}};
    bool known = true;
    for (int i = F_UPGRADE; i <= F_KEY; i++) {
        /* The version and key are taken as their first occurrence, the lists joined. */
        const char *v = i >= F_VERSION ? rt_http_header(req, names[i]) : NULL;
        f[i].p = i >= F_VERSION ? (v != NULL ? strdup(v) : NULL) : joined(req, names[i]);
        f[i].len = f[i].p != NULL ? strlen(f[i].p) : 0;
        known = known && f[i].len < 255; /* rt_ws_accept joins into 256 bytes: longer lists are cut */
    }
    wire_expect = known ? reference(f, 1, req->http_minor) : 0;
    if (f[F_KEY].p != NULL)
        reference_accept(f[F_KEY].p, f[F_KEY].len, wire_accept);
    for (int i = F_UPGRADE; i <= F_KEY; i++)
        free(f[i].p);
    rt_ws_accept(c, req, &proto);
}

static const rt_http_router_t router = {.on_request = route};

/* Appends the header lines of field f: one per \x01-separated occurrence, CR, LF and NUL left out. */
static void append_header(rt_buf_t *b, const char *name, const field_t *f)
{
    if (f->p == NULL)
        return;
    rt_buf_appends(b, name);
    rt_buf_appends(b, ": ");
    for (size_t i = 0; i < f->len; i++) {
        char ch = f->p[i];
        if (ch == '\x01') {
            rt_buf_appends(b, "\r\n");
            rt_buf_appends(b, name);
            rt_buf_appends(b, ": ");
        } else if (ch != '\r' && ch != '\n' && ch != '\0') {
            rt_buf_append(b, &ch, 1);
        }
    }
    rt_buf_appends(b, "\r\n");
}

static void check_wire(const field_t *f, bool http10)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "HEAD"};
    const char *method = "GET";
    for (size_t i = 0; i < 4; i++)
        if (f[F_METHOD].p != NULL && f[F_METHOD].len == strlen(methods[i]) && memcmp(f[F_METHOD].p, methods[i], f[F_METHOD].len) == 0)
            method = methods[i];
    rt_buf_t req = {0};
    rt_buf_appendf(&req, "%s /ws HTTP/1.%d\r\nHost: localhost\r\n", method, http10 ? 0 : 1);
    append_header(&req, "Upgrade", &f[F_UPGRADE]);
    append_header(&req, "Connection", &f[F_CONNECTION]);
    append_header(&req, "Sec-WebSocket-Version", &f[F_VERSION]);
    append_header(&req, "Sec-WebSocket-Key", &f[F_KEY]);
    append_header(&req, "Sec-WebSocket-Protocol", &f[F_PROTOCOL]);
    rt_buf_appends(&req, "\r\n");

    fake_setup(1);
    rt__http_init(&router);
    opened = closed = 0;
    wire_expect = -1;
    rt_http_start(&conn);
    feed(req.base, req.len);
    rt_buf_free(&req);
    if (verbose)
        fprintf(stderr, "%.*s\n", (int)out.len, out.base);
    if (wire_expect != -1) { /* routed (otherwise llhttp refused the request: http_request covers that) */
        const char *end = memmem(out.base, out.len, "\r\n\r\n", 4);
        CHECK(end != NULL && out.len > 12 && memcmp(out.base, "HTTP/1.1 ", 9) == 0);
        int status = atoi(out.base + 9);
        size_t hlen = (size_t)(end + 4 - out.base);
        CHECK(wire_expect == 0 || status == wire_expect);
        if (status == 101) {
            char line[64];
            snprintf(line, sizeof(line), "\r\nSec-WebSocket-Accept: %s\r\n", wire_accept);
            CHECK(memmem(out.base, hlen, line, strlen(line)) != NULL && out.len == hlen);
            CHECK(opened == 1 && conn.handler != &rt_http_handler);
        } else {
            CHECK(status == 400 || status == 405 || status == 426);
            CHECK(status != 405 || memmem(out.base, hlen, "\r\nAllow: GET\r\n", 14) != NULL);
            CHECK(status != 426 || memmem(out.base, hlen, "\r\nSec-WebSocket-Version: 13\r\n", 29) != NULL);
            const char *cl = memmem(out.base, hlen, "\r\nContent-Length: ", 18);
            CHECK(cl != NULL && out.len == hlen + strtoul(cl + 18, NULL, 10));
            json_t *j = json_loadb(out.base + hlen, out.len - hlen, JSON_REJECT_DUPLICATES, NULL);
            const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
            CHECK(msg != NULL && msg[0] != '\0');
            json_decref(j);
            CHECK(opened == 0 && conn.handler == &rt_http_handler);
        }
    }
    fake_teardown();
    CHECK(closed == opened);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int versions[4][2] = {{1, 1}, {1, 0}, {2, 0}, {0, 9}};
    if (size < 1)
        return 0;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    uint8_t cfg = data[0];
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    field_t f[N_FIELDS] = {{0}};
    for (int i = 0; i < N_FIELDS && p <= end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        f[i].p = (char *)p;
        f[i].len = (size_t)((nl != NULL ? nl : end) - p);
        if (i > 0 && (cfg >> (i + 1)) & 1)
            f[i].p = NULL, f[i].len = 0; /* absent */
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    /* The last byte of the input picks the response buffer size for the too-small check. */
    check_direct(f, versions[cfg & 3][0], versions[cfg & 3][1], data[size - 1]);
    check_wire(f, (cfg & 3) == 1);
    return 0;
}
