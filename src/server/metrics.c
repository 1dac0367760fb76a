/*
 * GET /metrics: the server's counters in the Prometheus text exposition format (version 0.0.4).
 * Names follow Prometheus conventions: a `realtime_` prefix, `_total` on counters, base units.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "realtime/version.h"
#include "broker/broker.h"
#include "core/broadcaster-private.h"
#include "net/worker.h"
#include "server/api.h"
#include "util/buf.h"
#include "util/histogram.h"

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

/* Open descriptors of this process: the entries of /proc/self/fd, less the one the listing holds. */
static int64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int64_t n = -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n - 2; /* . and .. */
}

/* The standard process_* metrics (Prometheus client conventions), from /proc/self. */
static void process_metrics(rt_buf_t *b)
{
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long utime = 0, stime = 0, vsize = 0;
    long rss = 0;
    unsigned long long start = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    char line[1024];
    if (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        const char *p = strrchr(line, ')'); /* the command name may hold spaces */
        if (p != NULL)
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %llu %lu %ld", &utime,
                   &stime, &start, &vsize, &rss);
    }
    if (f != NULL)
        fclose(f);
    double boot = 0; /* the start time is in ticks since boot: make it seconds since the epoch */
    struct timespec now_wall, now_boot;
    clock_gettime(CLOCK_REALTIME, &now_wall);
    clock_gettime(CLOCK_BOOTTIME, &now_boot);
    boot = (double)now_wall.tv_sec + now_wall.tv_nsec / 1e9 - ((double)now_boot.tv_sec + now_boot.tv_nsec / 1e9);
    metric(b, "process_cpu_seconds_total", "counter", "User and system CPU time of the process.");
    rt_buf_appendf(b, "process_cpu_seconds_total %.2f\n", (double)(utime + stime) / (double)ticks);
    gauge(b, "process_resident_memory_bytes", "Resident memory.", (int64_t)rss * page);
    gauge(b, "process_virtual_memory_bytes", "Virtual memory.", (int64_t)vsize);
    metric(b, "process_start_time_seconds", "gauge", "When the process started, in seconds since the epoch.");
    rt_buf_appendf(b, "process_start_time_seconds %.2f\n", boot + (double)start / (double)ticks);
    gauge(b, "process_open_fds", "Open file descriptors.", open_fds());
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        gauge(b, "process_max_fds", "The open-file limit (RLIMIT_NOFILE soft).", (int64_t)rl.rlim_cur);
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
    gauge(&b, "realtime_history_bytes", "JSON bytes of the events held in history.", (int64_t)ss.history_bytes);
    gauge(&b, "realtime_workers", "Worker threads.", (int64_t)s->n_workers);
    metric(&b, "realtime_disconnects_total", "counter", "Client connections (WebSocket, SSE) ended, by reason.");
    for (int i = 0; i < RT_DISC_REASONS; i++)
        rt_buf_appendf(&b, "realtime_disconnects_total{reason=\"%s\"} %" PRIu64 "\n", rt_disconnect_names[i],
                       (uint64_t)atomic_load_explicit(&s->stats.disconnects[i], memory_order_relaxed));
    metric(&b, "realtime_gaps_total", "counter", "Events lost to this node that it could not fill, announced to its clients, by reason.");
    for (int i = 0; i < RT_GAP_REASONS; i++)
        rt_buf_appendf(&b, "realtime_gaps_total{reason=\"%s\"} %" PRIu64 "\n", rt_gap_names[i],
                       (uint64_t)atomic_load_explicit(&s->stats.gaps[i], memory_order_relaxed));
    rt_histogram_sum_t ptw = {0}, fan = {0};
    for (unsigned i = 0; i < s->n_workers; i++) {
        rt__worker_publish_to_write(s->workers[i], &ptw);
        rt__broadcaster_fanout_time(rt__worker_broadcaster(s->workers[i]), &fan);
    }
    rt_histogram_prometheus(&b, "realtime_publish_to_write_seconds",
                            "From an event's accept to the last byte of one delivery handed to the kernel (live deliveries).", &ptw);
    rt_histogram_prometheus(&b, "realtime_fanout_seconds", "Time one worker takes to match one event and queue it to its subscribers.",
                            &fan);
    metric(&b, "realtime_broker_up", "gauge", "1 while the broker can publish and deliver (Redis reachable).");
    rt_buf_appendf(&b, "realtime_broker_up{broker=\"%s\"} %d\n", s->broker->ops->name, s->broker->ops->ready(s->broker) ? 1 : 0);
    metric(&b, "realtime_build_info", "gauge", "Always 1; the labels say which build runs.");
    rt_buf_appendf(&b, "realtime_build_info{version=\"%s\"} 1\n", RT_VERSION);
    process_metrics(&b);
    metric(&b, "realtime_uptime_seconds", "gauge", "Seconds since the server started.");
    rt_buf_appendf(&b, "realtime_uptime_seconds %.3f\n", ss.uptime_s);

    rt_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.base, b.len, NULL);
    rt_buf_free(&b);
}
