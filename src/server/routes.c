/*
 * The router: one static table of {method, path, handler}. A known path with another method is 405 with
 * Allow; a path the mode does not serve is 404, as if it did not exist (`centrifuge` serves no /ws or
 * /events, `websocket` no /connection/ paths). The server API (/api/...) needs the API key (auth.c).
 */
#include <stdio.h>
#include <string.h>
#include "protocol/native.h"
#include "server/api.h"
#include "server/auth.h"
#include "server/routes.h"
#include "server/server.h"
#include "transport/sse_conn.h"


enum {
    API_KEY = 1,    /* the server API: needs the API key */
    NATIVE = 2,     /* served in modes websocket and hybrid */
    CENTRIFUGE = 4, /* served in modes centrifuge and hybrid */
};

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
    {"GET", "/events", rt_sse_accept, NATIVE},
    {"GET", "/ws", rt_native_handle_ws, NATIVE},
    {"GET", "/connection/websocket", rt__centrifuge_ws_accept, CENTRIFUGE},
    {"GET", "/connection/uni_sse", rt__uni_sse_accept, CENTRIFUGE},
    {"POST", "/connection/uni_sse", rt__uni_sse_accept, CENTRIFUGE},
    {"POST", "/api/events", rt__api_events, API_KEY},
    {"GET", "/api/history", rt__api_history, API_KEY},
    {"GET", "/api/stats", rt__api_stats, API_KEY},
    /* Centrifugo's server API (the module dispatches on the path). */
    {"POST", "/api", rt__centrifugo_api, API_KEY},
    {"POST", "/api/publish", rt__centrifugo_api, API_KEY},
    {"POST", "/api/broadcast", rt__centrifugo_api, API_KEY},
    {"POST", "/api/history", rt__centrifugo_api, API_KEY},
    {"POST", "/api/history_remove", rt__centrifugo_api, API_KEY},
    {"POST", "/api/presence", rt__centrifugo_api, API_KEY},
    {"POST", "/api/presence_stats", rt__centrifugo_api, API_KEY},
    {"POST", "/api/channels", rt__centrifugo_api, API_KEY},
    {"POST", "/api/info", rt__centrifugo_api, API_KEY},
    {"POST", "/api/disconnect", rt__centrifugo_api, API_KEY},
    {"POST", "/api/unsubscribe", rt__centrifugo_api, API_KEY},
    {"POST", "/api/subscribe", rt__centrifugo_api, API_KEY},
    {"POST", "/api/batch", rt__centrifugo_api, API_KEY},
};

static bool served(const route_t *r, rt_mode_t mode)
{
    if ((r->flags & NATIVE) && mode == RT_MODE_CENTRIFUGE)
        return false;
    if ((r->flags & CENTRIFUGE) && mode == RT_MODE_WEBSOCKET)
        return false;
    return true;
}

void rt_route_request(rt_conn_t *c, rt_http_request_t *req)
{
    rt_mode_t mode = rt_conn_server(c)->config->mode;
    char allow[64] = "";
    size_t allow_len = 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const route_t *r = &routes[i];
        if (strcmp(r->path, req->path) != 0 || !served(r, mode))
            continue;
        if (strcmp(r->method, req->method) != 0) {
            if (strstr(allow, r->method) == NULL)
                allow_len += (size_t)snprintf(allow + allow_len, sizeof(allow) - allow_len, "%s%s", allow_len ? ", " : "", r->method);
            continue;
        }
        if ((r->flags & API_KEY) && !rt_auth_api(c, req))
            return;
        r->cb(c, req);
        return;
    }
    if (allow_len != 0) {
        char hdr[96];
        snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
        rt__api_error(c, 405, "bad_request", hdr, "method %s not allowed on %s (allowed: %s)", req->method, req->path, allow);
        return;
    }
    rt__api_error(c, 404, "not_found", NULL, "no such endpoint: %s %.200s", req->method, req->path);
}
