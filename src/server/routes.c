/*
 * The router: one static table of {method, path, handler}. A known path with another method is 405 with
 * Allow; a path the mode does not serve is 404, as if it did not exist (`centrifuge` serves no /ws or
 * /events, `websocket` no /connection/ paths). The server API (/api/...) needs the API key (auth.c).
 *
 * Browsers (net/origin.h): paths a page reads with fetch or EventSource answer an allowed Origin with CORS
 * headers on every reply, errors included, and OPTIONS preflights with 204; WebSocket paths refuse a foreign
 * Origin before the handshake (a browser sends Origin on every WebSocket, and no CORS protects those). A
 * foreign Origin is refused with 403 on both, so a page of another site gets nothing done, not just nothing
 * read.
 */
#include <stdio.h>
#include <string.h>
#include "net/limits.h"
#include "net/origin.h"
#include "protocol/native.h"
#include "server/api.h"
#include "server/auth.h"
#include "server/routes.h"
#include "server/server.h"
#include "transport/sse_conn.h"
#include "util/mem.h"


enum {
    API_KEY = 1,    /* the server API: needs the API key */
    NATIVE = 2,     /* served in modes websocket and hybrid */
    CENTRIFUGE = 4, /* served in modes centrifuge and hybrid */
    CORS = 8,       /* read by pages with fetch or EventSource: CORS headers, OPTIONS preflight */
    UPGRADE = 16,   /* a WebSocket endpoint: the Origin is checked before the handshake */
};

/* Request headers a page may send (preflight): tokens, API keys, JSON bodies, SSE resumption. */
#define CORS_ALLOW_HEADERS "Authorization, X-API-Key, Content-Type, Last-Event-ID"
/* How long a browser may cache a preflight's answer. */
#define CORS_MAX_AGE_S 600

typedef struct st_route_t {
    const char *method;
    const char *path;
    rt_route_cb cb;
    unsigned flags;
} route_t;

static const route_t routes[] = {
    {"GET", "/", rt__api_index, 0},
    {"GET", "/healthz", rt__api_healthz, 0},
    {"GET", "/readyz", rt__api_readyz, 0},
    {"GET", "/metrics", rt__api_metrics, 0},
    {"GET", "/events", rt_sse_accept, NATIVE | CORS},
    {"GET", "/ws", rt_native_handle_ws, NATIVE | UPGRADE},
    {"GET", "/connection/websocket", rt__centrifuge_ws_accept, CENTRIFUGE | UPGRADE},
    {"GET", "/connection/uni_sse", rt__uni_sse_accept, CENTRIFUGE | CORS},
    {"POST", "/connection/uni_sse", rt__uni_sse_accept, CENTRIFUGE | CORS},
    {"POST", "/api/events", rt__api_events, API_KEY | CORS},
    {"GET", "/api/history", rt__api_history, API_KEY | CORS},
    {"GET", "/api/stats", rt__api_stats, API_KEY | CORS},
    /* Centrifugo's server API (the module dispatches on the path). */
    {"POST", "/api", rt__centrifugo_api, API_KEY | CORS},
    {"POST", "/api/publish", rt__centrifugo_api, API_KEY | CORS},
    {"POST", "/api/broadcast", rt__centrifugo_api, API_KEY | CORS},
    {"POST", "/api/history", rt__centrifugo_api, API_KEY | CORS},
    {"POST", "/api/history_remove", rt__centrifugo_api, API_KEY | CORS},
    {"POST", "/api/presence", rt__centrifugo_api, API_KEY | CORS},
    {"POST", "/api/presence_stats", rt__centrifugo_api, API_KEY | CORS},
    {"POST", "/api/channels", rt__centrifugo_api, API_KEY | CORS},
    {"POST", "/api/info", rt__centrifugo_api, API_KEY | CORS},
    {"POST", "/api/disconnect", rt__centrifugo_api, API_KEY | CORS},
    {"POST", "/api/unsubscribe", rt__centrifugo_api, API_KEY | CORS},
    {"POST", "/api/subscribe", rt__centrifugo_api, API_KEY | CORS},
    {"POST", "/api/batch", rt__centrifugo_api, API_KEY | CORS},
};

static bool served(const route_t *r, rt_mode_t mode)
{
    if ((r->flags & NATIVE) && mode == RT_MODE_CENTRIFUGE)
        return false;
    if ((r->flags & CENTRIFUGE) && mode == RT_MODE_WEBSOCKET)
        return false;
    return true;
}

/* Served at any path the mode serves: path_flags is never 0 for a known path. */
#define KNOWN 32u

/* The flags of the routes the mode serves at path (with KNOWN), their methods as an Allow list; 0: unknown path. */
static unsigned path_flags(rt_mode_t mode, const char *path, char *allow, size_t size)
{
    unsigned flags = 0;
    size_t len = 0;
    allow[0] = '\0';
    for (size_t i = 0; i < RT_ARRAY_SIZE(routes); i++) {
        const route_t *r = &routes[i];
        if (strcmp(r->path, path) != 0 || !served(r, mode))
            continue;
        flags |= r->flags | KNOWN;
        if (strstr(allow, r->method) == NULL)
            len += (size_t)snprintf(allow + len, size - len, "%s%s", len ? ", " : "", r->method);
    }
    return flags;
}

static rt_origin_verdict_t origin_of(rt_conn_t *c, const rt_http_request_t *req)
{
    const rt_config_t *cfg = rt_conn_server(c)->config;
    return rt_origin_check(cfg->allowed_origins.items, cfg->allowed_origins.n, cfg->insecure, rt_http_header(req, "origin"),
                           rt_http_header(req, "host"));
}

/* Before the body: the CORS headers go on every reply to this request, a 413 for its body too. */
static void on_head(rt_conn_t *c, rt_http_request_t *req)
{
    rt_conn_admit_forwarded(c, rt_http_header(req, "x-forwarded-for"));
    char allow[64];
    if (!(path_flags(rt_conn_server(c)->config->mode, req->path, allow, sizeof(allow)) & CORS))
        return;
    char lines[RT_ORIGIN_MAX + 64];
    if (origin_of(c, req) == RT_ORIGIN_ALLOWED)
        snprintf(lines, sizeof(lines), "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", rt_http_header(req, "origin"));
    else
        snprintf(lines, sizeof(lines), "Vary: Origin\r\n");
    rt_http_add_reply_headers(c, lines);
}

/* OPTIONS on a CORS path: a browser's preflight (or a plain question about the methods). */
static void preflight(rt_conn_t *c, const char *allow)
{
    char hdr[384];
    snprintf(hdr, sizeof(hdr),
             "Allow: %s, OPTIONS\r\nAccess-Control-Allow-Methods: %s, OPTIONS\r\nAccess-Control-Allow-Headers: " CORS_ALLOW_HEADERS
             "\r\nAccess-Control-Max-Age: %d\r\n",
             allow, allow, CORS_MAX_AGE_S);
    rt_http_respond(c, 204, NULL, NULL, 0, hdr);
}

/* A connection accepted over max_connections or max_connections_per_ip: its first request gets 429, then it closes. */
static bool refuse_over_limit(rt_conn_t *c)
{
    int limit = rt_conn_refused(c);
    if (limit < 0)
        return false;
    const rt_config_t *cfg = rt_conn_server(c)->config;
    if (limit == RT_LIMIT_CONNECTIONS)
        rt__api_error(c, 429, "limit_exceeded", "Retry-After: 1\r\n", "the server holds max_connections (%zu) connections: try again later",
                      cfg->max_connections);
    else
        rt__api_error(c, 429, "limit_exceeded", "Retry-After: 1\r\n", "too many connections from this address (max_connections_per_ip %zu)",
                      cfg->max_connections_per_ip);
    return true; /* and the connection closes (rt_http_respond) */
}

static void on_request(rt_conn_t *c, rt_http_request_t *req)
{
    if (refuse_over_limit(c))
        return;
    rt_mode_t mode = rt_conn_server(c)->config->mode;
    char allow[64];
    unsigned flags = path_flags(mode, req->path, allow, sizeof(allow));
    if (flags == 0) {
        rt__api_error(c, 404, "not_found", NULL, "no such endpoint: %s %.200s", req->method, req->path);
        return;
    }
    if ((flags & (CORS | UPGRADE)) && origin_of(c, req) == RT_ORIGIN_FOREIGN) {
        rt__api_error(c, 403, "permission_denied", NULL, "origin %.300s may not use this server: add it to allowed_origins",
                      rt_http_header(req, "origin"));
        return;
    }
    if ((flags & CORS) && strcmp(req->method, "OPTIONS") == 0) {
        preflight(c, allow);
        return;
    }
    for (size_t i = 0; i < RT_ARRAY_SIZE(routes); i++) {
        const route_t *r = &routes[i];
        if (strcmp(r->path, req->path) != 0 || !served(r, mode) || strcmp(r->method, req->method) != 0)
            continue;
        if ((r->flags & API_KEY) && !rt_auth_api(c, req))
            return;
        r->cb(c, req);
        return;
    }
    char hdr[96];
    snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
    rt__api_error(c, 405, "bad_request", hdr, "method %s not allowed on %s (allowed: %s)", req->method, req->path, allow);
}

const rt_http_router_t rt_router = {
    .on_head = on_head,
    .on_request = on_request,
};
