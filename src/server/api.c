/*
 * The server API: publishing, history, stats, health and the index page.
 *
 * A publish request is validated whole before anything is published (a batch is all or nothing), then its
 * events go to the broker one by one, in order, so they get consecutive seqs (a publish job, server/publish.c): the
 * request is parked meanwhile and answered when the last one completed, so the worker's loop never waits for Redis.
 *
 * Statuses: 415 unsupported_media_type (not application/json), 400 invalid_json / invalid_event (the
 * message names the field, "events[3].type: …"), 413 payload_too_large (an event over max_event_bytes),
 * 413 limit_exceeded (a batch over max_batch: a size limit, like the body's), 503 unavailable with
 * Retry-After: 1 when the workers' queues are full (a batch stopped part-way lists what was published).
 * History: unknown channel → {"events":[]}; a `since` id not in history → 404 not_found.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "realtime/channel.h"
#include "realtime/error.h"
#include "broker/broker.h"
#include "net/worker.h"
#include "protocol/presence.h"
#include "server/api.h"
#include "server/publish.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/map.h"
#include "util/mem.h"

#define LOG_PREFIX "api"
#include "util/log.h"

#define HISTORY_DEFAULT_LIMIT 100
#define INDEX_MAX_BYTES (4 << 20)

void rt__api_error(rt_conn_t *c, int status, const char *code, const char *extra_headers, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        rt_http_respond_error(c, status, code, "(message not encodable)");
        return;
    }
    rt_http_respond(c, status, "application/json", text, strlen(text), extra_headers);
    free(text);
}

/* True when the Content-Type names application/json, with or without parameters such as charset. */
static bool is_json_content_type(const char *ct)
{
    if (ct == NULL)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* Validates one event object; on failure answers the request (naming the batch index when batch) and returns NULL. */
static rt_event_t *validate_event(rt_conn_t *c, json_t *obj, size_t max_bytes, long index)
{
    char err[256], where[32] = "";
    rt_event_t *ev;
    int r = rt_event_from_json(obj, max_bytes, &ev, err, sizeof(err));
    if (r == 0)
        return ev;
    const char *msg = err;
    if (index >= 0) {
        /* "type: …" becomes "events[3].type: …"; "event: …" (the whole object) becomes "events[3]: …". */
        bool whole = strncmp(err, "event: ", 7) == 0;
        snprintf(where, sizeof(where), "events[%ld]%s", index, whole ? ": " : ".");
        if (whole)
            msg += 7;
    }
    if (r == RT_E2BIG)
        rt__api_error(c, 413, "payload_too_large", NULL, "%s%s (max_event_bytes)", where, msg);
    else
        rt__api_error(c, 400, "invalid_event", NULL, "%s%s", where, msg);
    return NULL;
}

static json_t *published_entry(const rt_event_t *ev)
{
    return json_pack("{s:s%,s:I}", "id", ev->id, ev->id_len, "seq", (json_int_t)ev->seq);
}

/* A parked POST /api/events: its connection (NULL once gone) and whether it was a batch. */
typedef struct st_events_req_t {
    rt_conn_t *conn;
    bool batch;
} events_req_t;

static void on_events_req_gone(void *ctx)
{
    ((events_req_t *)ctx)->conn = NULL;
}

/* Every event went out: the {id,seq} list. One did not: 503, saying (for a batch) which went out before it. */
static void on_events_published(rt_publish_job_t *job)
{
    events_req_t *er = job->data;
    rt_conn_t *c = er->conn;
    bool batch = er->batch;
    free(er);
    if (c == NULL)
        return; /* the client left; what was published stays published */
    json_t *out = json_array();
    size_t i = 0;
    for (; i < job->n && (job->status[i] == 0 || job->status[i] == RT_EEXIST); i++)
        json_array_append_new(out, published_entry(job->result[i])); /* RT_EEXIST: the original seq */
    if (i == job->n) {
        if (batch)
            rt_http_respond_json(c, 200, json_pack("{s:o}", "events", out));
        else {
            rt_http_respond_json(c, 200, json_incref(json_array_get(out, 0)));
            json_decref(out);
        }
        return;
    }
    /* Nothing of evs[i..] went out. Say what did, so a source without its own ids can resume the batch. */
    int r = job->status[i];
    json_t *body = json_pack("{s:{s:s,s:s},s:o}", "error", "code", "unavailable", "message",
                             r == RT_EAGAIN ? "cannot publish now (event queues full or broker unreachable); retry later" : rt_strerror(r), "events", out);
    if (batch) {
        char msg[160];
        snprintf(msg, sizeof(msg), "cannot publish now: published %zu of %zu events (listed); retry the rest later", i, job->n);
        json_object_set_new(json_object_get(body, "error"), "message", json_string(msg));
    } else {
        json_object_del(body, "events");
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    rt_http_respond(c, 503, "application/json", text, strlen(text), "Retry-After: 1\r\n");
    free(text);
}

static void on_nothing(rt_publish_job_t *job)
{
}

void rt__api_events(rt_conn_t *c, rt_http_request_t *req)
{
    const rt_config_t *cfg = rt_conn_server(c)->config;
    if (!is_json_content_type(rt_http_header(req, "content-type"))) {
        rt__api_error(c, 415, "unsupported_media_type", NULL, "Content-Type must be application/json");
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb(req->body.base != NULL ? req->body.base : "", req->body.len, 0, &jerr);
    if (body == NULL) {
        rt__api_error(c, 400, "invalid_json", NULL, "invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        return;
    }
    if (!json_is_object(body)) {
        rt__api_error(c, 400, "invalid_event", NULL, "body: must be an event object or {\"events\":[…]}");
        json_decref(body);
        return;
    }
    /* An event has a type; {"events":[…]} without one is a batch. */
    json_t *list = json_object_get(body, "type") == NULL ? json_object_get(body, "events") : NULL;
    bool batch = list != NULL;
    size_t n = batch ? json_array_size(list) : 1;
    if (batch && (!json_is_array(list) || n == 0)) {
        rt__api_error(c, 400, "bad_request", NULL, "events: must be a non-empty array of events");
        json_decref(body);
        return;
    }
    if (n > cfg->max_batch) {
        rt__api_error(c, 413, "limit_exceeded", NULL, "events: %zu events in one batch, more than max_batch (%zu)", n,
                      cfg->max_batch);
        json_decref(body);
        return;
    }
    events_req_t *er = rt_mem_alloc(sizeof(*er));
    *er = (events_req_t){.conn = c, .batch = batch};
    rt_publish_job_t *job = rt__publish_job_new(c, n, on_events_published, er);
    job->stop_on_error = true;
    for (size_t i = 0; i < n; i++) {
        json_t *obj = batch ? json_array_get(list, i) : body;
        if ((job->evs[i] = validate_event(c, obj, cfg->max_event_bytes, batch ? (long)i : -1)) == NULL) {
            /* Answered; all or nothing: publish none, just release those made. */
            free(er);
            job->n = i;
            job->cb = on_nothing;
            job->_next = i;
            break;
        }
    }
    json_decref(body);
    if (job->cb == on_events_published)
        rt_http_park(c, on_events_req_gone, er); /* answered once the broker sequenced every event (Redis may be far) */
    rt__publish_job_start(job);
}



static bool on_channel(const rt_event_t *ev, void *ctx)
{
    return rt_event_channel_index(ev, ctx, strlen(ctx)) >= 0;
}

/* Parses a decimal count; false for anything else (sign, junk, overflow). */
static bool parse_count(const char *s, size_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (size_t)v;
    return true;
}

void rt__api_history(rt_conn_t *c, rt_http_request_t *req)
{
    rt_server_t *s = rt_conn_server(c);
    size_t qsize = strlen(req->query) + 1;
    char *channel = rt_mem_alloc(qsize), *since = rt_mem_alloc(qsize), *limit_text = rt_mem_alloc(qsize);
    size_t limit = HISTORY_DEFAULT_LIMIT;
    bool has_since = rt_http_query_get(req->query, "since", since, qsize) && since[0] != '\0';
    rt_event_list_t list = {0};
    if (!rt_http_query_get(req->query, "channel", channel, qsize) || channel[0] == '\0') {
        rt__api_error(c, 400, "bad_request", NULL, "channel: required");
        goto Done;
    }
    if (!rt_channel_valid(channel, strlen(channel))) {
        rt__api_error(c, 400, "invalid_channel", NULL, "channel: invalid channel \"%.80s\"", channel);
        goto Done;
    }
    if (rt_http_query_get(req->query, "limit", limit_text, qsize) && !parse_count(limit_text, &limit)) {
        rt__api_error(c, 400, "bad_request", NULL, "limit: must be a non-negative integer");
        goto Done;
    }
    if (limit > s->config->history_size)
        limit = s->config->history_size;
    if (has_since) {
        if (rt_history_after_id(s->history, since, 0, on_channel, channel, &list) != 0) {
            rt__api_error(c, 404, "not_found", NULL, "since: event not in history");
            goto Done;
        }
    } else {
        rt_history_last(s->history, channel, limit, &list);
    }
    /* After `since`, the oldest `limit` (pages forward); without it, rt_history_last took the newest. */
    size_t n = list.count < limit ? list.count : limit;
    rt_buf_t out = {0};
    rt_buf_appends(&out, "{\"events\":[");
    for (size_t i = 0; i < n; i++) {
        if (i != 0)
            rt_buf_append(&out, ",", 1);
        rt_buf_append(&out, list.events[i]->json, list.events[i]->json_len);
    }
    rt_buf_appends(&out, "]}");
    rt_http_respond(c, 200, "application/json", out.base, out.len, NULL);
    rt_buf_free(&out);
Done:
    rt_event_list_free(&list);
    free(channel);
    free(since);
    free(limit_text);
}

void rt__stats_snapshot(rt_server_t *s, rt_stats_snapshot_t *out)
{
    rt_server_stats_t *st = &s->stats;
    *out = (rt_stats_snapshot_t){0};
    for (int k = 0; k < RT_CONN_KINDS; k++) {
        out->connections[k] = atomic_load_explicit(&st->connections[k], memory_order_relaxed);
        if (k != RT_CONN_HTTP)
            out->clients += out->connections[k];
    }
    for (unsigned i = 0; i < s->n_workers; i++) {
        rt_broadcaster_stats_t bs;
        rt_broadcaster_stats(rt__worker_broadcaster(s->workers[i]), &bs);
        out->subscriptions += bs.subscriptions;
        out->channels += bs.channels;
        out->patterns += bs.patterns;
        out->worker_queued += bs.queued;
    }
    out->published = atomic_load_explicit(&st->published, memory_order_relaxed);
    out->delivered = rt_server_delivered(s);
    out->dropped = atomic_load_explicit(&st->dropped, memory_order_relaxed);
    out->replayed = atomic_load_explicit(&st->replayed, memory_order_relaxed);
    out->slow_disconnects = atomic_load_explicit(&st->slow_disconnects, memory_order_relaxed);
    out->send_failures = atomic_load_explicit(&st->send_failures, memory_order_relaxed);
    out->queued_bytes = atomic_load_explicit(&st->queued_bytes, memory_order_relaxed);
    out->history_events = rt_history_count(s->history);
    out->history_bytes = rt_history_bytes(s->history);
    for (int i = 0; i < RT_LIMITS; i++)
        out->limited[i] = atomic_load_explicit(&st->limited[i], memory_order_relaxed);
    out->uptime_s = (double)(rt_clock_mono_ms() - s->started_ms) / 1000.0;
}

/* /api/stats "channel_list": the most subscribed channels and patterns, summed over the workers. */
#define CHANNEL_LIST_MAX 100

typedef struct st_channel_count_t {
    const char *name;
    size_t len, n;
} channel_count_t;

typedef struct st_channel_sum_t {
    rt_map_t counts; /* name -> (uintptr_t) subscriptions */
    channel_count_t *list;
    size_t n;
} channel_sum_t;

static void add_channel(const char *channel, size_t len, size_t n, void *ctx)
{
    channel_sum_t *cs = ctx;
    uintptr_t had = (uintptr_t)rt_map_get(&cs->counts, channel, len);
    rt_map_put(&cs->counts, channel, len, (void *)(had + n));
}

static void list_channel(const char *key, size_t len, void *value, void *ctx)
{
    channel_sum_t *cs = ctx;
    cs->list[cs->n++] = (channel_count_t){key, len, (size_t)(uintptr_t)value};
}

static int by_subscribers(const void *a, const void *b)
{
    const channel_count_t *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    int r = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
    return r != 0 ? r : x->len < y->len ? -1 : x->len > y->len;
}

/*
 * Computed per request, never on the delivery path: each worker's index is walked once under its lock (that
 * worker's deliveries wait meanwhile, in proportion to its channels and pattern subscriptions).
 */
static json_t *channel_list(rt_server_t *s, size_t *total)
{
    channel_sum_t cs = {0};
    for (unsigned i = 0; i < s->n_workers; i++)
        rt_broadcaster_foreach_channel(rt__worker_broadcaster(s->workers[i]), add_channel, &cs);
    cs.list = rt_mem_alloc((cs.counts.count + 1) * sizeof(*cs.list));
    rt_map_foreach(&cs.counts, list_channel, &cs);
    qsort(cs.list, cs.n, sizeof(*cs.list), by_subscribers);
    json_t *out = json_array();
    for (size_t i = 0; i < cs.n && i < CHANNEL_LIST_MAX; i++)
        json_array_append_new(out, json_pack("{s:s%,s:I}", "channel", cs.list[i].name, cs.list[i].len, "subscribers",
                                             (json_int_t)cs.list[i].n));
    *total = cs.n;
    free(cs.list);
    rt_map_clear(&cs.counts);
    return out;
}

/* This node as /api/stats "nodes" lists it (the redis broker adds "cluster": every live node, from Redis). */
static json_t *node_json(rt_server_t *s)
{
    char host[256] = "localhost", name[320];
    if (gethostname(host, sizeof(host) - 1) != 0)
        strcpy(host, "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(name, sizeof(name), "%s:%d", host, s->config->port);
    const char *state = atomic_load(&s->stopping) ? "stopping" : s->broker->ops->ready(s->broker) ? "ok" : "unreachable";
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "name", name, "listen", s->config->listen, "broker", s->broker->ops->name,
                     "broker_state", state, "workers", (json_int_t)s->n_workers, "epoch", rt_history_epoch(s->history));
}

void rt__api_stats(rt_conn_t *c, rt_http_request_t *req)
{
    rt_stats_snapshot_t ss;
    rt__stats_snapshot(rt_conn_server(c), &ss);
    json_t *conns = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "total", (json_int_t)ss.clients, "ws", (json_int_t)ss.connections[RT_CONN_WS],
                              "sse", (json_int_t)ss.connections[RT_CONN_SSE], "centrifuge",
                              (json_int_t)ss.connections[RT_CONN_CENTRIFUGE], "uni_sse",
                              (json_int_t)ss.connections[RT_CONN_UNI_SSE], "http", (json_int_t)ss.connections[RT_CONN_HTTP]);
    json_t *events = json_pack("{s:I,s:I,s:I,s:I}", "published", (json_int_t)ss.published, "delivered", (json_int_t)ss.delivered,
                               "dropped", (json_int_t)ss.dropped, "replayed", (json_int_t)ss.replayed);
    /* Gaps this node could not fill, each announced to its live clients (docs/redis.md). */
    json_t *gaps = json_object();
    for (int i = 0; i < RT_GAP_REASONS; i++)
        json_object_set_new(gaps, rt_gap_names[i],
                            json_integer((json_int_t)atomic_load_explicit(&rt_conn_server(c)->stats.gaps[i], memory_order_relaxed)));
    json_object_set_new(events, "gaps", gaps);
    json_t *limited = json_object();
    for (int i = 0; i < RT_LIMITS; i++)
        json_object_set_new(limited, rt_limit_names[i], json_integer((json_int_t)ss.limited[i]));
    json_t *clients = json_pack("{s:I,s:I,s:o}", "slow_disconnects", (json_int_t)ss.slow_disconnects, "send_failures",
                                (json_int_t)ss.send_failures, "limited", limited);
    size_t listed;
    json_t *channels = channel_list(rt_conn_server(c), &listed);
    json_t *body = json_pack("{s:o,s:I,s:I,s:o,s:I,s:o,s:o,s:I,s:I,s:I,s:I,s:[o]}", "connections", conns, "subscriptions",
                             (json_int_t)ss.subscriptions, "channels", (json_int_t)ss.channels, "channel_list", channels,
                             "channel_list_total", (json_int_t)listed, "events", events, "clients", clients, "queued_bytes",
                             (json_int_t)ss.queued_bytes, "history_events", (json_int_t)ss.history_events, "history_bytes",
                             (json_int_t)ss.history_bytes, "uptime_s", (json_int_t)ss.uptime_s, "nodes", node_json(rt_conn_server(c)));
    json_t *cluster = rt_presence_cluster_stats(); /* the redis broker: every live node, from the last heartbeat */
    if (cluster != NULL && body != NULL)
        json_object_set_new(body, "cluster", cluster);
    else
        json_decref(cluster);
    rt_http_respond_json(c, 200, body);
}

void rt__api_healthz(rt_conn_t *c, rt_http_request_t *req)
{
    static const char body[] = "{\"status\":\"ok\"}";
    rt_http_respond(c, 200, "application/json", body, sizeof(body) - 1, NULL);
}

void rt__api_readyz(rt_conn_t *c, rt_http_request_t *req)
{
    static const char body[] = "{\"status\":\"ready\"}";
    rt_server_t *s = rt_conn_server(c);
    if (atomic_load(&s->stopping))
        rt__api_error(c, 503, "unavailable", NULL, "server is shutting down");
    else if (!rt_server_ready(s))
        rt__api_error(c, 503, "unavailable", "Retry-After: 1\r\n", "broker %s unreachable", s->broker->ops->name);
    else
        rt_http_respond(c, 200, "application/json", body, sizeof(body) - 1, NULL);
}

static const char builtin_index[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>realtime</title></head>\n<body>\n"
    "<h1>realtime</h1>\n<p>The dashboard (web/index.html) is not installed. Endpoints:</p>\n<ul>\n"
    "<li><code>GET /events?channels=…</code> Server-Sent Events</li>\n"
    "<li><code>GET /ws</code> native WebSocket</li>\n"
    "<li><code>GET /connection/websocket</code>, <code>/connection/uni_sse</code> Centrifuge</li>\n"
    "<li><code>POST /api/events</code>, <code>GET /api/history</code>, <a href=\"/api/stats\">/api/stats</a>, "
    "<a href=\"/metrics\">/metrics</a>, <a href=\"/healthz\">/healthz</a></li>\n"
    "</ul>\n</body></html>\n";

/* Reads path whole (at most INDEX_MAX_BYTES); NULL when it can't. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    rt_buf_t b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len + n <= INDEX_MAX_BYTES)
        rt_buf_append(&b, chunk, n);
    bool ok = !ferror(f) && n == 0;
    fclose(f);
    if (!ok) {
        rt_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.base != NULL ? b.base : rt_strdup("");
}

/*
 * The page is read on each request (it is small, and edits show without a restart): from web/ in the working
 * directory, else from the source tree the binary was built in (build/<mode>/realtime → ../../web).
 */
void rt__api_index(rt_conn_t *c, rt_http_request_t *req)
{
    size_t len = 0;
    char *page = read_file("web/index.html", &len);
    if (page == NULL) {
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 32);
        char *slash = n > 0 ? memrchr(exe, '/', (size_t)n) : NULL;
        if (slash != NULL) {
            strcpy(slash, "/../../web/index.html");
            page = read_file(exe, &len);
        }
    }
    if (page != NULL) {
        rt_http_respond(c, 200, "text/html; charset=utf-8", page, len, "Cache-Control: no-cache\r\n");
        free(page);
    } else {
        rt_http_respond(c, 200, "text/html; charset=utf-8", builtin_index, sizeof(builtin_index) - 1, NULL);
    }
}
