/*
 * The server API handlers (src/server/api.c, metrics.c): JSON in, JSON out, errors as
 * {"error":{"code","message"}}. The router (routes.c) checks the method, the mode and the API key first.
 */
#ifndef RT_SERVER_API_H
#define RT_SERVER_API_H

#include <stdint.h>
#include "net/http.h"
#include "server/server.h"

/** A consistent-enough copy of the server's counters, for /api/stats and /metrics. */
typedef struct st_rt_stats_snapshot_t {
    int64_t connections[RT_CONN_KINDS];
    int64_t clients;          /**< ws + sse + centrifuge + uni_sse (plain HTTP connections are not clients) */
    uint64_t subscriptions;   /**< summed over the workers' broadcasters */
    uint64_t channels;        /**< summed over the workers (a channel subscribed on two workers counts twice) */
    uint64_t patterns;
    uint64_t published, delivered, dropped, replayed, slow_disconnects, send_failures;
    int64_t queued_bytes;
    uint64_t worker_queued;   /**< events waiting in the workers' queues */
    uint64_t history_events;
    uint64_t history_bytes;   /**< JSON bytes of the events in history */
    uint64_t limited[RT_LIMITS]; /**< refusals by limit (rt_limit_names) */
    double uptime_s;
} rt_stats_snapshot_t;

/** Fills out from s (any thread). */
void rt__stats_snapshot(rt_server_t *s, rt_stats_snapshot_t *out);

/** POST /api/events: one event or {"events":[…]}; validates all, then publishes in order. */
void rt__api_events(rt_conn_t *c, rt_http_request_t *req);
/** GET /api/history?channel=…&limit=…&since=… */
void rt__api_history(rt_conn_t *c, rt_http_request_t *req);
/** GET /api/stats */
void rt__api_stats(rt_conn_t *c, rt_http_request_t *req);
/** GET /healthz */
void rt__api_healthz(rt_conn_t *c, rt_http_request_t *req);
/** GET /readyz: 503 while shutting down or while the broker is unreachable. */
void rt__api_readyz(rt_conn_t *c, rt_http_request_t *req);
/** GET /: web/index.html when it exists, else a small built-in page. */
void rt__api_index(rt_conn_t *c, rt_http_request_t *req);
/** GET /metrics: Prometheus text exposition (metrics.c). */
void rt__api_metrics(rt_conn_t *c, rt_http_request_t *req);

/** Replies with the error JSON and extra header lines (NULL = none), e.g. "Retry-After: 1\r\n". */
void rt__api_error(rt_conn_t *c, int status, const char *code, const char *extra_headers, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
