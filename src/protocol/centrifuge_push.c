/*
 * Centrifuge publication encoding. The WebSocket push frame of (event, channel) is the one cached form the
 * others derive from: history and recovery replies copy the Publication object out of it, and the uni_sse
 * block is built from it, so the data and tags are rendered once per event and channel.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "realtime/error.h"
#include "protocol/centrifuge.h"
#include "transport/ws_codec.h"
#include "transport/ws_conn.h"
#include "util/mem.h"

static const char PUSH_HEAD[] = "{\"push\":{\"channel\":\"";
static const char PUB_KEY[] = "\",\"pub\":";
static const char SSE_HEAD[] = "data: {\"channel\":\"";

static int append_dump(const char *buffer, size_t size, void *data)
{
    rt_buf_append(data, buffer, size);
    return 0;
}

/* The text form of a scalar tag value; false for values that are not tags (null, arrays, objects). */
static bool append_tag_value(rt_buf_t *out, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_dump_callback(v, append_dump, out, JSON_ENCODE_ANY) == 0;
    case JSON_INTEGER:
        rt_buf_appendf(out, "\"%lld\"", (long long)json_integer_value(v));
        return true;
    case JSON_REAL: {
        char *t = json_dumps(v, JSON_ENCODE_ANY);
        if (t == NULL)
            return false;
        rt_buf_appendf(out, "\"%s\"", t);
        free(t);
        return true;
    }
    case JSON_TRUE:
        rt_buf_appends(out, "\"true\"");
        return true;
    case JSON_FALSE:
        rt_buf_appends(out, "\"false\"");
        return true;
    default:
        return false;
    }
}

/* {"type":"…", key: "text", …}: the event type, then data's top-level scalar members (a data "type" is shadowed). */
static void append_tags(rt_buf_t *out, const rt_event_t *ev)
{
    rt_buf_appendf(out, "{\"type\":\"%s\"", ev->type);
    const char *key;
    const json_t *v;
    if (json_is_object(ev->data)) {
        json_object_foreach((json_t *)ev->data, key, v) {
            if (strcmp(key, "type") == 0 || json_is_null(v) || json_is_array(v) || json_is_object(v))
                continue;
            rt_buf_append(out, ",", 1);
            json_t *k = json_string(key);
            int r = k != NULL ? json_dump_callback(k, append_dump, out, JSON_ENCODE_ANY) : -1;
            json_decref(k);
            rt_buf_append(out, ":", 1);
            if (r != 0 || !append_tag_value(out, v))
                rt_buf_appends(out, "\"\"");
        }
    }
    rt_buf_append(out, "}", 1);
}

static void append_pub_object(rt_buf_t *out, const rt_event_t *ev, size_t ci)
{
    rt_buf_appends(out, "{\"data\":");
    if (ev->flags & RT_EVENT_RAW_DATA) {
        if (json_dump_callback(ev->data, append_dump, out, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
            rt_buf_appends(out, "null");
    } else {
        rt_buf_append(out, ev->json, ev->json_len);
    }
    if (ev->offsets[ci] != 0)
        rt_buf_appendf(out, ",\"offset\":%llu", (unsigned long long)ev->offsets[ci]);
    rt_buf_appends(out, ",\"tags\":");
    append_tags(out, ev);
    rt_buf_append(out, "}", 1);
}

static rt_bytes_t *encode_frame(const rt_event_t *ev, size_t ci, void *ctx)
{
    rt_buf_t buf = {0};
    rt_buf_appends(&buf, PUSH_HEAD);
    rt_buf_appends(&buf, ev->channels[ci]);
    rt_buf_appends(&buf, PUB_KEY);
    append_pub_object(&buf, ev, ci);
    rt_buf_appends(&buf, "}}");
    rt_bytes_t *b = rt_ws_build_text_frame(buf.base, buf.len);
    rt_buf_free(&buf);
    return b;
}

rt_bytes_t *rt__cf_pub_frame(rt_event_t *ev, size_t ci)
{
    return rt_event_form(ev, RT_FORM_CENTRIFUGE_WS, ci, encode_frame, NULL);
}

/* The Publication object inside a cached frame. */
static void pub_slice(const rt_bytes_t *frame, const rt_event_t *ev, size_t ci, const char **p, size_t *len)
{
    unsigned l7 = (uint8_t)frame->data[1] & 0x7f;
    size_t h = l7 == 127 ? 10 : l7 == 126 ? 4 : 2;
    size_t head = sizeof(PUSH_HEAD) - 1 + strlen(ev->channels[ci]) + sizeof(PUB_KEY) - 1;
    *p = frame->data + h + head;
    *len = frame->len - h - head - 2; /* without the closing "}}" */
}

void rt__cf_append_pub(rt_buf_t *out, rt_event_t *ev, size_t ci)
{
    rt_bytes_t *frame = rt__cf_pub_frame(ev, ci);
    const char *p;
    size_t len;
    pub_slice(frame, ev, ci, &p, &len);
    rt_buf_append(out, p, len);
}

static rt_bytes_t *encode_sse(const rt_event_t *ev, size_t ci, void *ctx)
{
    const rt_bytes_t *frame = ctx;
    const char *p;
    size_t len;
    pub_slice(frame, ev, ci, &p, &len);
    rt_buf_t buf = {0};
    rt_buf_appends(&buf, SSE_HEAD);
    rt_buf_appends(&buf, ev->channels[ci]);
    rt_buf_appends(&buf, PUB_KEY);
    rt_buf_append(&buf, p, len);
    rt_buf_appends(&buf, "}\n\n");
    rt_bytes_t *b = rt_bytes_new(buf.base, buf.len);
    rt_buf_free(&buf);
    return b;
}

rt_bytes_t *rt__cf_pub_sse(rt_event_t *ev, size_t ci)
{
    rt_bytes_t *frame = rt__cf_pub_frame(ev, ci);
    return rt_event_form(ev, RT_FORM_CENTRIFUGE_SSE, ci, encode_sse, frame);
}

static uint64_t id_seed[2];
static atomic_uint_fast64_t id_counter;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

static void init_seed(void)
{
    if (getrandom(id_seed, sizeof(id_seed), GRND_NONBLOCK) != (ssize_t)sizeof(id_seed)) {
        id_seed[0] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull;
        id_seed[1] = (uint64_t)getpid() * 0xbf58476d1ce4e5b9ull;
    }
}

void rt__cf_make_client_id(char *buf)
{
    pthread_once(&id_once, init_seed);
    uint64_t k = atomic_fetch_add_explicit(&id_counter, 1, memory_order_relaxed) + 1;
    /* A random per-process prefix and a counter in the UUID v4 layout: unique in the process, unlikely to repeat
     * across nodes. */
    uint64_t hi = id_seed[0], lo = id_seed[1] ^ k;
    snprintf(buf, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(hi >> 32), (unsigned)(hi >> 16) & 0xffff,
             (unsigned)hi & 0xfff, (unsigned)(0x8000 | ((lo >> 48) & 0x3fff)), (unsigned long long)(lo & 0xffffffffffffull));
}

int rt__cf_make_event(const char *const *channels, size_t n, json_t *data, const char *type, rt_event_t **out, char *err,
                      size_t errlen)
{
    int r = rt_event_new(NULL, type != NULL ? type : "message.published", channels, n, data, out, err, errlen);
    if (r == 0)
        (*out)->flags |= RT_EVENT_RAW_DATA;
    return r;
}
