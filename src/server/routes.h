/*
 * The route table (routes.c) and the handlers other modules provide for it. A handler answers the request
 * (rt_http_respond*), or takes over the connection (rt_http_switch / rt_ws_accept). The router has already
 * checked the method, the mode and, for the server API (/api/...), the API key.
 */
#ifndef RT_SERVER_ROUTES_H
#define RT_SERVER_ROUTES_H

#include "net/http.h"

typedef void (*rt_route_cb)(rt_conn_t *c, rt_http_request_t *req);

/** The server's router, given to rt__http_init. */
extern const rt_http_router_t rt_router;

/* Provided by the protocol modules. */

/** GET /connection/websocket: Centrifuge protocol v2 over WebSocket. */
void rt__centrifuge_ws_accept(rt_conn_t *c, rt_http_request_t *req);
/** GET or POST /connection/uni_sse: Centrifugo's unidirectional SSE. */
void rt__uni_sse_accept(rt_conn_t *c, rt_http_request_t *req);
/** POST /api/publish, /api/broadcast, /api/history, … : the Centrifugo server API, dispatched on req->path. */
void rt__centrifugo_api(rt_conn_t *c, rt_http_request_t *req);

#endif
