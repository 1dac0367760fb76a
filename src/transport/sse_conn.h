/*
 * GET /events: a native subscription delivered as a Server-Sent Events stream. The response has no
 * Content-Length (the stream ends when the connection does); each event is the block `id: <event id>`,
 * `event: <type>`, `data: <event JSON>`, encoded once per event and shared by every stream that gets it.
 */
#ifndef RT_TRANSPORT_SSE_CONN_H
#define RT_TRANSPORT_SSE_CONN_H

#include "net/conn.h"
#include "net/http.h"

/** The SSE stream's retry hint, in milliseconds (`retry: 3000`); a plain literal, spelled into the stream head. */
#define RT_SSE_RETRY_MS 3000

/**
 * Handles GET /events on c: parses the subscription from the query (and the Last-Event-ID header), answers
 * 400/401/403/503 with the error JSON when it can't be made, otherwise writes the stream head, switches the
 * connection to the SSE handler, replays from history (or sends `event: reset`) and goes live. Loop thread.
 */
void rt_sse_accept(rt_conn_t *c, rt_http_request_t *req);

#endif
