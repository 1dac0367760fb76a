/*
 * HTTP/1.1 server side, on llhttp: requests with keep-alive and pipelining, chunked bodies, bounded
 * header (431) and body (413) sizes, slow-header and idle timeouts, and replies that always carry
 * Content-Length. A parsed request is handed to the router given to rt__http_init (src/server/routes.c); the
 * handler answers with one of the rt_http_respond* functions, or upgrades the connection.
 */
#ifndef RT_NET_HTTP_H
#define RT_NET_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "net/conn.h"
#include "util/buf.h"

#define RT_HTTP_MAX_HEADERS 64
/** Room for the header lines added to every reply to a request (rt_http_add_reply_headers). */
#define RT_HTTP_REPLY_HEADERS_MAX 512

typedef struct st_rt_http_header_t {
    const char *name; /* lower-cased, NUL-terminated */
    const char *value;
    size_t value_len;
} rt_http_header_t;

typedef struct st_rt_http_request_t {
    const char *method; /**< "GET", "POST", … */
    const char *path;   /**< NUL-terminated, not decoded, without the query */
    const char *query;  /**< after '?', NUL-terminated ("" when none) */
    rt_http_header_t headers[RT_HTTP_MAX_HEADERS];
    size_t n_headers;
    rt_buf_t body;
    bool keep_alive;
    bool upgrade;       /**< Upgrade requested (a WebSocket handshake) */
    int http_minor;
} rt_http_request_t;

/** The connection handler of a fresh connection: it reads HTTP/1.1 requests. */
extern const rt_conn_handler_t rt_http_handler;
/** Where parsed requests go: the server's router. */
typedef struct st_rt_http_router_t {
    /** A request's head is parsed, its body not read yet: may add reply headers that every reply to it,
     * an error about its body (413) included, must carry. Optional. */
    void (*on_head)(rt_conn_t *c, rt_http_request_t *req);
    /** A whole request: answer it, or take the connection over. */
    void (*on_request)(rt_conn_t *c, rt_http_request_t *req);
} rt_http_router_t;

/** Prepares the shared parser settings and sets the router (process-wide); call once before workers start. */
void rt__http_init(const rt_http_router_t *router);
/** Starts HTTP on a new connection. */
void rt_http_start(rt_conn_t *c);

/**
 * Adds header lines ("Name: value\r\n" each) to every reply to the current request: the handler's, an error
 * reply, and the head of a stream that takes the connection over (rt_http_reply_headers). False, and nothing
 * added, past RT_HTTP_REPLY_HEADERS_MAX bytes in all.
 */
bool rt_http_add_reply_headers(rt_conn_t *c, const char *lines);
/** The lines added for the current request ("" when none, or once the connection left HTTP). */
const char *rt_http_reply_headers(rt_conn_t *c);
/** Value of the named header (name lower case), or NULL. */
const char *rt_http_header(const rt_http_request_t *req, const char *name);
/**
 * Finds the next query parameter after *pos (start at 0); URL-decodes key and value into the buffers
 * (truncating at their size). Returns false at the end.
 */
bool rt_http_query_next(const char *query, size_t *pos, char *key, size_t key_size, char *value, size_t value_size);
/** Decoded value of the first parameter named key, into value; false when absent. */
bool rt_http_query_get(const char *query, const char *key, char *value, size_t value_size);

/**
 * Replies to the current request. extra_headers are complete "Name: value\r\n" lines or NULL. Closes after
 * the reply when the request asked to, when status is 400/408/413/431 and the stream can't continue, or when the
 * connection is over a connection limit (rt_conn_refused).
 */
void rt_http_respond(rt_conn_t *c, int status, const char *content_type, const char *body, size_t len,
                     const char *extra_headers);
/** Replies with a JSON body (steals the reference to body). */
void rt_http_respond_json(rt_conn_t *c, int status, json_t *body);
/** Replies {"error":{"code":code,"message":…}} with the given status. */
void rt_http_respond_error(rt_conn_t *c, int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/** The standard reason phrase of status. */
const char *rt_http_reason(int status);
/**
 * Parks the current request, from the router's on_request: the handler answers it later with one of rt_http_respond*,
 * on c's worker thread (an answer before on_request returns is fine too). Meanwhile the connection stays open without
 * timeouts and later pipelined requests wait (reading stops once some arrive, so a closing peer is still noticed until
 * then). If the connection closes first (peer gone, shutdown deadline), gone(ctx) runs once from its close and c must
 * not be used after it. At shutdown a parked request is still answered, then the connection closes.
 */
void rt_http_park(rt_conn_t *c, void (*gone)(void *ctx), void *ctx);
/**
 * Hands the connection to another handler after the current request (an upgrade or a stream): the HTTP
 * parser's state is freed; input already read past the request is fed to the new handler.
 */
void rt_http_switch(rt_conn_t *c, const rt_conn_handler_t *handler, void *proto);

#endif
