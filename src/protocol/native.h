/*
 * The native WebSocket protocol of GET /ws: one JSON object per text frame (DESIGN.md, "Native WebSocket
 * messages"). Each connection is one broadcaster client with any number of subscriptions (each with an id);
 * it receives every event at most once, in seq order, replayed events first.
 */
#ifndef RT_PROTOCOL_NATIVE_H
#define RT_PROTOCOL_NATIVE_H

#include "net/conn.h"
#include "net/http.h"
#include "transport/ws_conn.h"

/** The most max_subscriptions may allow a /ws connection (its counts are 8 bits); one more is `limit_exceeded`. */
#define RT_NATIVE_MAX_SUBSCRIPTIONS 128

/** The protocol, for rt_ws_accept: welcome, query subscription, subscribe/unsubscribe/ping, event delivery. */
extern const rt_ws_protocol_t rt_native_protocol;

/**
 * Handles GET /ws on c (the router calls it; loop thread): performs the WebSocket handshake (a bad one is
 * answered 400/405/426 with the error JSON, and the HTTP layer closes the connection), then runs the native
 * protocol. req is not used after the call.
 */
void rt_native_handle_ws(rt_conn_t *c, rt_http_request_t *req);

#endif
