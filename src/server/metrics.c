/*
 * GET /metrics: the server's counters in the Prometheus text exposition format (version 0.0.4).
 * Names follow Prometheus conventions: a `realtime_` prefix, `_total` on counters, base units.
 */
#include <inttypes.h>
#include "net/worker.h"
#include "server/api.h"
#include "util/buf.h"

static void metric(rt_buf_t *b, const char *name, const char *type, const char *help)
{
    rt_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(rt_buf_t *b, const char *name, const char *help, uint64_t v)
{
    metric(b, name, "counter", help);
    rt_buf_appendf(b, "%s %" PRIu64 "\n", name, v);
}

static void gauge(rt_buf_t *b, const char *name, const char *help, int64_t v)
{
    metric(b, name, "gauge", help);
    rt_buf_appendf(b, "%s %" PRId64 "\n", name, v);
}

void rt__api_metrics(rt_conn_t *c, rt_http_request_t *req)
{
    static const char *kinds[RT_CONN_KINDS] = {"http", "ws", "sse", "centrifuge", "uni_sse"};
    rt_server_t *s = rt_conn_server(c);
    rt_stats_snapshot_t ss;
    rt__stats_snapshot(s, &ss);
    rt_buf_t b = {0};

    metric(&b, "realtime_connections", "gauge", "Open connections by kind (http: plain HTTP, not yet a client).");
    for (int k = 0; k < RT_CONN_KINDS; k++)
        rt_buf_appendf(&b, "realtime_connections{kind=\"%s\"} %" PRId64 "\n", kinds[k], ss.connections[k]);
    gauge(&b, "realtime_clients", "Open client connections (ws, sse, centrifuge, uni_sse).", ss.clients);
    gauge(&b, "realtime_subscriptions", "Subscriptions, summed over workers.", (int64_t)ss.subscriptions);
    gauge(&b, "realtime_channels", "Distinct subscribed channels, summed over workers.", (int64_t)ss.channels);
    gauge(&b, "realtime_patterns", "Distinct subscribed patterns, summed over workers.", (int64_t)ss.patterns);
    counter(&b, "realtime_events_published_total", "Events accepted for publishing.", ss.published);
    counter(&b, "realtime_events_delivered_total", "Events queued to clients.", ss.delivered);
    counter(&b, "realtime_events_dropped_total", "Event deliveries to a worker refused because its queue was full.", ss.dropped);
    counter(&b, "realtime_events_replayed_total", "Events replayed from history on resume.", ss.replayed);
    counter(&b, "realtime_slow_disconnects_total", "Clients disconnected for falling behind.", ss.slow_disconnects);
    counter(&b, "realtime_send_failures_total", "Clients dropped after a failed send.", ss.send_failures);
    metric(&b, "realtime_limited_total", "counter", "Refusals by limit (connections, subscriptions, command rate).");
    for (int i = 0; i < RT_LIMITS; i++)
        rt_buf_appendf(&b, "realtime_limited_total{limit=\"%s\"} %" PRIu64 "\n", rt_limit_names[i], ss.limited[i]);
    gauge(&b, "realtime_queued_bytes", "Bytes waiting in client output queues.", ss.queued_bytes);
    gauge(&b, "realtime_worker_queued_events", "Events waiting in the workers' queues.", (int64_t)ss.worker_queued);
    gauge(&b, "realtime_history_events", "Events held in history.", (int64_t)ss.history_events);
    gauge(&b, "realtime_workers", "Worker threads.", (int64_t)s->n_workers);
    metric(&b, "realtime_uptime_seconds", "gauge", "Seconds since the server started.");
    rt_buf_appendf(&b, "realtime_uptime_seconds %.3f\n", ss.uptime_s);

    rt_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.base, b.len, NULL);
    rt_buf_free(&b);
}
