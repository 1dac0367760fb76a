/*
 * HTTP/1.1 requests on llhttp. The parser streams: URL and header bytes are collected into one
 * bounded buffer (max_header_bytes, else 431) and the body into another (max_body_bytes, else 413).
 * The parser pauses at the end of each message, so pipelined requests are answered one at a time,
 * in order, and the bytes after an upgrade request go to the new handler.
 */
#include <assert.h>
#include <ctype.h>
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/access_log.h"
#include "net/http.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/mem.h"

typedef struct st_http_state_t {
    llhttp_t parser;
    rt_http_request_t req;
    rt_buf_t head; /* URL and headers, each NUL-terminated */
    uint32_t url_off;
    struct {
        uint32_t name_off, value_off, value_len;
    } hdr[RT_HTTP_MAX_HEADERS];
    size_t n_hdr;
    size_t trailer_len; /* bytes of trailer fields (after a chunked body): counted, not kept */
    bool in_value, in_message;
    bool dispatching; /* inside router->on_request */
    bool parked;      /* the current request is answered later (rt_http_park) */
    void (*gone)(void *ctx);
    void *gone_ctx;
    bool head_done;   /* the head is parsed: req's pointers are this request's, into head, which must not move any more
                       * (trailers are counted, not kept; the access log reads method and path) */
    int64_t start_us; /* when the request began, only with the access log on */
    int error_status; /* set by a callback that stops the parser */
    uint16_t reply_len;
    char reply_headers[RT_HTTP_REPLY_HEADERS_MAX + 1]; /* added to every reply to the current request */
} http_state_t;

static const llhttp_settings_t *settings(void);

static http_state_t *state_of(rt_conn_t *c)
{
    return c->proto;
}

static const rt_config_t *config_of(rt_conn_t *c)
{
    return rt_conn_server(c)->config;
}

static int fail(http_state_t *st, int status)
{
    st->error_status = status;
    return -1;
}

static int append_head(http_state_t *st, const char *at, size_t len, bool lower)
{
    rt_conn_t *c = st->parser.data;
    if (rt_buf_try_reserve(&st->head, len + 1, config_of(c)->max_header_bytes) != 0)
        return fail(st, 431);
    char *dst = st->head.base + st->head.len;
    if (lower)
        for (size_t i = 0; i < len; i++)
            dst[i] = (char)tolower((unsigned char)at[i]);
    else
        memcpy(dst, at, len);
    st->head.len += len;
    return 0;
}

static int end_piece(http_state_t *st)
{
    return append_head(st, "", 1, false);
}

/*
 * llhttp reports the trailer fields of a chunked body through the header callbacks, after the head is complete
 * and the request points into it: appending them would move the buffer under those pointers. They are dropped
 * (nothing reads them), but count against max_header_bytes, so that an endless trailer is still refused.
 */
static bool trailer(http_state_t *st, size_t len)
{
    if (!st->head_done)
        return false;
    st->trailer_len += len;
    if (st->head.len + st->trailer_len > config_of(st->parser.data)->max_header_bytes)
        fail(st, 431);
    return true;
}

static int on_message_begin(llhttp_t *p)
{
    http_state_t *st = RT_STRUCT_FROM_MEMBER(http_state_t, parser, p);
    rt_conn_t *c = p->data;
    st->in_message = true;
    if (c->access_log)
        st->start_us = rt_clock_mono_us();
    st->head.len = 0;
    st->n_hdr = 0;
    st->trailer_len = 0;
    st->in_value = st->head_done = false;
    st->req.body.len = 0;
    st->reply_len = 0;
    st->reply_headers[0] = '\0';
    c->deadline_ms = rt_conn_now(c) + (int64_t)(config_of(c)->header_timeout_s * 1000);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    return append_head(RT_STRUCT_FROM_MEMBER(http_state_t, parser, p), at, len, false);
}

static int on_url_complete(llhttp_t *p)
{
    return end_piece(RT_STRUCT_FROM_MEMBER(http_state_t, parser, p));
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    http_state_t *st = RT_STRUCT_FROM_MEMBER(http_state_t, parser, p);
    if (trailer(st, len))
        return st->error_status != 0 ? -1 : 0;
    if (st->in_value || st->n_hdr == 0 || st->hdr[st->n_hdr - 1].value_off != 0) {
        if (st->n_hdr == RT_HTTP_MAX_HEADERS)
            return fail(st, 431);
        st->hdr[st->n_hdr++].name_off = (uint32_t)st->head.len;
        st->hdr[st->n_hdr - 1].value_off = 0;
        st->in_value = false;
    }
    return append_head(st, at, len, true);
}

static int on_header_field_complete(llhttp_t *p)
{
    http_state_t *st = RT_STRUCT_FROM_MEMBER(http_state_t, parser, p);
    if (st->head_done)
        return 0;
    int r = end_piece(st);
    st->hdr[st->n_hdr - 1].value_off = (uint32_t)st->head.len;
    st->hdr[st->n_hdr - 1].value_len = 0;
    st->in_value = true;
    return r;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    http_state_t *st = RT_STRUCT_FROM_MEMBER(http_state_t, parser, p);
    if (trailer(st, len))
        return st->error_status != 0 ? -1 : 0;
    st->hdr[st->n_hdr - 1].value_len += (uint32_t)len;
    return append_head(st, at, len, false);
}

static int on_header_value_complete(llhttp_t *p)
{
    http_state_t *st = RT_STRUCT_FROM_MEMBER(http_state_t, parser, p);
    return st->head_done ? 0 : end_piece(st);
}

/* Turns the offsets collected while parsing into the request's pointers (the head buffer no longer moves). */
static void finish_head(http_state_t *st)
{
    rt_http_request_t *req = &st->req;
    char *url = st->head.base + st->url_off;
    char *q = strchr(url, '?');
    req->query = "";
    if (q != NULL) {
        *q = '\0';
        req->query = q + 1;
    }
    req->path = url;
    req->n_headers = st->n_hdr;
    for (size_t i = 0; i < st->n_hdr; i++) {
        req->headers[i].name = st->head.base + st->hdr[i].name_off;
        req->headers[i].value = st->head.base + st->hdr[i].value_off;
        req->headers[i].value_len = st->hdr[i].value_len;
    }
}

static const rt_http_router_t *router;

static int on_headers_complete(llhttp_t *p)
{
    http_state_t *st = RT_STRUCT_FROM_MEMBER(http_state_t, parser, p);
    rt_conn_t *c = p->data;
    if (st->head.len == 0 || st->n_hdr > RT_HTTP_MAX_HEADERS)
        return fail(st, 400);
    finish_head(st);
    st->head_done = true;
    st->req.method = llhttp_method_name((llhttp_method_t)p->method);
    st->req.keep_alive = llhttp_should_keep_alive(p);
    st->req.upgrade = p->upgrade;
    st->req.http_minor = p->http_minor;
    if (router->on_head != NULL)
        router->on_head(c, &st->req);
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > config_of(c)->max_body_bytes)
        return fail(st, 413);
    const char *expect = rt_http_header(&st->req, "expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0)
        rt_conn_send_copy(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    http_state_t *st = RT_STRUCT_FROM_MEMBER(http_state_t, parser, p);
    rt_conn_t *c = p->data;
    if (rt_buf_try_reserve(&st->req.body, len + 1, config_of(c)->max_body_bytes + 1) != 0)
        return fail(st, 413);
    memcpy(st->req.body.base + st->req.body.len, at, len);
    st->req.body.len += len;
    st->req.body.base[st->req.body.len] = '\0';
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    return HPE_PAUSED;
}

static const llhttp_settings_t *settings(void)
{
    static llhttp_settings_t s;
    static bool ready;
    if (!ready) { /* first use is on the main thread, before workers start (rt_http_start is called from accepts) */
        llhttp_settings_init(&s);
        s.on_message_begin = on_message_begin;
        s.on_url = on_url;
        s.on_url_complete = on_url_complete;
        s.on_header_field = on_header_field;
        s.on_header_field_complete = on_header_field_complete;
        s.on_header_value = on_header_value;
        s.on_header_value_complete = on_header_value_complete;
        s.on_headers_complete = on_headers_complete;
        s.on_body = on_body;
        s.on_message_complete = on_message_complete;
        ready = true;
    }
    return &s;
}

void rt__http_init(const rt_http_router_t *r)
{
    router = r;
    settings();
}

static void reply_parse_error(rt_conn_t *c, http_state_t *st)
{
    switch (st->error_status) {
    case 413:
        rt_http_respond_error(c, 413, "payload_too_large", "request body over %zu bytes", config_of(c)->max_body_bytes);
        break;
    case 431:
        rt_http_respond_error(c, 431, "bad_request", "request headers over %zu bytes or %d fields", config_of(c)->max_header_bytes,
                              RT_HTTP_MAX_HEADERS);
        break;
    default:
        rt_http_respond_error(c, 400, "bad_request", "malformed HTTP request: %s", llhttp_get_error_reason(&st->parser));
    }
    rt_conn_close_after_flush(c);
}

/* The current request is answered: the parser goes on to the next one. */
static void next_request(rt_conn_t *c, http_state_t *st)
{
    llhttp_resume(&st->parser);
    if (st->req.body.cap > 65536)
        rt_buf_free(&st->req.body);
    c->deadline_ms = rt_conn_now(c) + (int64_t)(config_of(c)->idle_timeout_s * 1000);
}

/* The answer to a parked request went out: go on with the input that waited (unless the reply closes). */
static void unpark(rt_conn_t *c, http_state_t *st, bool closing)
{
    st->parked = false;
    st->gone = NULL;
    st->gone_ctx = NULL;
    if (st->dispatching || closing || c->closing)
        return; /* answered from inside on_request: http_on_data goes on as usual */
    next_request(c, st);
    rt_conn_pause_reading(c, false); /* feeds what arrived meanwhile */
}

void rt_http_park(rt_conn_t *c, void (*gone)(void *ctx), void *ctx)
{
    http_state_t *st = state_of(c);
    assert(c->handler == &rt_http_handler && st->dispatching && !st->parked);
    st->parked = true;
    st->gone = gone;
    st->gone_ctx = ctx;
}

static ssize_t http_on_data(rt_conn_t *c, const char *buf, size_t len)
{
    http_state_t *st = state_of(c);
    if (st->parked) {
        /* The next pipelined request waits for the parked answer: keep it, read no more until then. */
        rt_conn_pause_reading(c, true);
        return 0;
    }
    llhttp_errno_t e = llhttp_execute(&st->parser, buf, len);
    if (e == HPE_OK)
        return (ssize_t)len;
    if (e != HPE_PAUSED && e != HPE_PAUSED_UPGRADE) {
        reply_parse_error(c, st);
        return -1;
    }
    size_t used = (size_t)(llhttp_get_error_pos(&st->parser) - buf);
    bool upgrade = st->req.upgrade;
    st->in_message = false;
    c->deadline_ms = 0;
    st->dispatching = true;
    router->on_request(c, &st->req);
    if (c->closing || c->handler != &rt_http_handler)
        return (ssize_t)used; /* switched: st belongs to nobody now */
    st->dispatching = false;
    if (st->parked)
        return (ssize_t)used; /* answered later; no timeouts meanwhile (deadline 0), the parser stays paused */
    if (upgrade) {
        /* An upgrade the router did not take: it answered with an error; nothing can follow on this stream. */
        rt_conn_close_after_flush(c);
        return -1;
    }
    next_request(c, st);
    return (ssize_t)used;
}

static void http_on_tick(rt_conn_t *c, int64_t now)
{
    if (c->deadline_ms == 0 || now < c->deadline_ms || c->close_after_flush)
        return;
    if (state_of(c)->in_message) {
        rt_http_respond_error(c, 408, "bad_request", "request not received in time");
        rt_conn_close_after_flush(c);
    } else if (!rt_conn_input_waiting(c)) {
        rt_conn_close(c);
    }
    /* Else a request came in after the loop last read this socket (a busy loop reads late; ticks run before
     * reads): the connection is not idle. Closing it would answer the request with a reset (unread input),
     * so it is read later this loop turn, and its own deadlines apply from there. */
}

static void free_state(http_state_t *st)
{
    rt_buf_free(&st->head);
    rt_buf_free(&st->req.body);
    free(st);
}

static void http_on_close(rt_conn_t *c)
{
    http_state_t *st = state_of(c);
    if (st->parked && st->gone != NULL)
        st->gone(st->gone_ctx);
    free_state(st);
}

static void http_on_shutdown(rt_conn_t *c)
{
    if (state_of(c)->parked)
        state_of(c)->req.keep_alive = false; /* the answer, which is coming, closes the connection */
    else if (state_of(c)->in_message)
        rt_conn_close_after_flush(c);
    else
        rt_conn_close(c);
}

const rt_conn_handler_t rt_http_handler = {
    .on_data = http_on_data,
    .on_tick = http_on_tick,
    .on_shutdown = http_on_shutdown,
    .on_close = http_on_close,
};

void rt_http_start(rt_conn_t *c)
{
    /* Not calloc: zeroing the header tables (2.5 KB) was a tenth of accepting a connection. They are filled
     * as headers arrive; only these fields need a start value. */
    http_state_t *st = rt_mem_alloc(sizeof(*st));
    st->req.body = (rt_buf_t){0};
    st->req.method = st->req.path = st->req.query = NULL;
    st->req.n_headers = 0;
    st->req.keep_alive = st->req.upgrade = false;
    st->head = (rt_buf_t){0};
    st->url_off = 0;
    st->n_hdr = 0;
    st->in_value = st->in_message = st->head_done = false;
    st->dispatching = st->parked = false;
    st->gone = NULL;
    st->gone_ctx = NULL;
    st->trailer_len = 0;
    st->start_us = c->access_log ? rt_clock_mono_us() : 0;
    st->error_status = 0;
    st->reply_len = 0;
    st->reply_headers[0] = '\0';
    llhttp_init(&st->parser, HTTP_REQUEST, settings());
    st->parser.data = c;
    c->handler = &rt_http_handler;
    c->proto = st;
    c->deadline_ms = rt_conn_now(c) + (int64_t)(config_of(c)->header_timeout_s * 1000);
}

void rt_http_switch(rt_conn_t *c, const rt_conn_handler_t *handler, void *proto)
{
    free_state(state_of(c));
    c->handler = handler;
    c->proto = proto;
    c->deadline_ms = 0;
}

bool rt_http_add_reply_headers(rt_conn_t *c, const char *lines)
{
    http_state_t *st = state_of(c);
    size_t len = strlen(lines);
    if (st->reply_len + len > RT_HTTP_REPLY_HEADERS_MAX)
        return false;
    memcpy(st->reply_headers + st->reply_len, lines, len + 1);
    st->reply_len = (uint16_t)(st->reply_len + len);
    return true;
}

const char *rt_http_reply_headers(rt_conn_t *c)
{
    return c->handler == &rt_http_handler ? state_of(c)->reply_headers : "";
}

const char *rt_http_header(const rt_http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* URL-decodes src[0..len) into dst (size bytes, NUL-terminated, truncated when short). */
static void url_decode(const char *src, size_t len, char *dst, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < size; i++) {
        int hi, lo;
        if (src[i] == '+') {
            dst[o++] = ' ';
        } else if (src[i] == '%' && i + 2 < len && (hi = hexval(src[i + 1])) >= 0 &&
                   (lo = hexval(src[i + 2])) >= 0) {
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dst[o++] = src[i];
        }
    }
    if (size > 0)
        dst[o] = '\0';
}

bool rt_http_query_next(const char *query, size_t *pos, char *key, size_t key_size, char *value, size_t value_size)
{
    size_t len = strlen(query);
    while (*pos < len) {
        const char *start = query + *pos;
        const char *amp = memchr(start, '&', len - *pos);
        size_t plen = amp ? (size_t)(amp - start) : len - *pos;
        *pos += plen + (amp ? 1 : 0);
        if (plen == 0)
            continue;
        const char *eq = memchr(start, '=', plen);
        size_t klen = eq ? (size_t)(eq - start) : plen;
        url_decode(start, klen, key, key_size);
        if (eq)
            url_decode(eq + 1, plen - klen - 1, value, value_size);
        else if (value_size > 0)
            value[0] = '\0';
        return true;
    }
    return false;
}

bool rt_http_query_get(const char *query, const char *key, char *value, size_t value_size)
{
    char k[256];
    size_t pos = 0;
    while (rt_http_query_next(query, &pos, k, sizeof(k), value, value_size))
        if (strcmp(k, key) == 0)
            return true;
    return false;
}

const char *rt_http_reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

void rt_http_respond(rt_conn_t *c, int status, const char *content_type, const char *body, size_t len, const char *extra_headers)
{
    http_state_t *st = c->handler == &rt_http_handler ? state_of(c) : NULL;
    bool close = st == NULL || !st->req.keep_alive || status == 400 || status == 408 || status == 413 || status == 431 ||
                 c->refused != 0; /* over a connection limit: the reply is its last */
    char head[2048], length[256] = "";
    if (status != 204) /* a 204 carries no body and so no Content-Length (RFC 9110, 8.6) */
        snprintf(length, sizeof(length), "Content-Type: %s\r\nContent-Length: %zu\r\n", content_type ? content_type : "text/plain", len);
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nServer: realtime\r\n%s%s%s%s\r\n", status, rt_http_reason(status),
                     length, close ? "Connection: close\r\n" : "", st != NULL ? st->reply_headers : "",
                     extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= sizeof(head))
        n = snprintf(head, sizeof(head), "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), len = 0,
        close = true;
    rt_bytes_t *b = rt_bytes_new(NULL, (size_t)n + len);
    memcpy(b->data, head, (size_t)n);
    if (len)
        memcpy(b->data + n, body, len);
    rt_conn_send(c, b, true);
    rt_bytes_unref(b);
    if (c->access_log && st != NULL)
        rt__access_log_request(c, st->head_done ? st->req.method : NULL, st->head_done ? st->req.path : NULL, status,
                               (size_t)n + len, st->start_us);
    if (close)
        rt_conn_close_after_flush(c);
    if (st != NULL && st->parked)
        unpark(c, st, close);
}

void rt_http_respond_json(rt_conn_t *c, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        rt_http_respond(c, 500, "application/json", "{\"error\":{\"code\":\"internal\",\"message\":\"encoding failed\"}}", 58,
                        NULL);
        return;
    }
    rt_http_respond(c, status, "application/json", text, strlen(text), NULL);
    free(text);
}

void rt_http_respond_error(rt_conn_t *c, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rt_http_respond_json(c, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}
