#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/channel.h"
#include "realtime/error.h"
#include "realtime/event.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/mem.h"

#define TYPE_MESSAGE "type: must be domain.action in lower case (e.g. incident.created)"
#define TIMESTAMP_MESSAGE "timestamp: must be RFC 3339 (e.g. 2026-11-28T04:00:00.123Z)"
#define CHANNELS_MESSAGE "channels: must be an array of 1..64 channel names"
#define NAME_SHOWN_MAX 64 /* bytes of a bad channel name quoted in an error message */

/* What an event is made of before it is validated and laid out in one allocation. */
struct fields {
    const char *id; /* NULL = generate */
    size_t id_len;
    const char *type;
    size_t type_len;
    const char *ts; /* NULL = now */
    size_t ts_len;
    const char *ch[RT_EVENT_MAX_CHANNELS];
    size_t ch_len[RT_EVENT_MAX_CHANNELS];
    size_t n;
    json_t *data; /* borrowed; NULL = JSON null */
};

static int fail(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* Messages go into JSON error bodies: keep them printable ASCII even when they quote input (the JSON
         * parser's "near '...'" may hold invalid UTF-8, and truncation may cut a character). */
        for (char *p = err; *p != '\0'; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
    }
    return code;
}

/* Copies at most NAME_SHOWN_MAX bytes of a rejected name for an error message (fail() masks what is not
 * printable ASCII, including embedded NULs, which are replaced here). */
static void show_name(char *dst, const char *s, size_t len)
{
    size_t n = len < NAME_SHOWN_MAX ? len : NAME_SHOWN_MAX;
    for (size_t i = 0; i < n; i++)
        dst[i] = s[i] != '\0' ? s[i] : '?';
    strcpy(dst + n, len > n ? "..." : "");
}

int rt_event_type_valid(const char *type, size_t len)
{
    if (len == 0 || len > RT_EVENT_TYPE_MAX)
        return 0;
    size_t segments = 0;
    for (size_t i = 0; i < len;) {
        if (!(type[i] >= 'a' && type[i] <= 'z'))
            return 0;
        for (i++; i < len && type[i] != '.'; i++)
            if (!((type[i] >= 'a' && type[i] <= 'z') || (type[i] >= '0' && type[i] <= '9') || type[i] == '_'))
                return 0;
        segments++;
        if (i < len && ++i == len) /* trailing dot */
            return 0;
    }
    return segments >= 2;
}

static int digits(const char *s, size_t n, int *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        *v = *v * 10 + (s[i] - '0');
    }
    return 1;
}

/* RFC 3339 section 5.6 date-time: full-date "T" full-time, with range checks (leap years, second 60). */
static bool timestamp_valid(const char *s, size_t len)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year, mon, day, hour, min, sec;
    if (len < 20 || len >= sizeof(((rt_event_t *)0)->timestamp))
        return false;
    if (!digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &mon) || s[7] != '-' || !digits(s + 8, 2, &day) ||
        (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &hour) || s[13] != ':' || !digits(s + 14, 2, &min) ||
        s[16] != ':' || !digits(s + 17, 2, &sec))
        return false;
    if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || hour > 23 || min > 59 || sec > 60)
        return false;
    if (mon == 2 && day == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
        return false;
    size_t i = 19;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return false;
    }
    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z'))
        return true;
    int oh, om;
    return i + 6 == len && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2, &oh) && s[i + 3] == ':' &&
           digits(s + i + 4, 2, &om) && oh <= 23 && om <= 59;
}

static int validate(const struct fields *f, char *err, size_t errlen)
{
    if (f->id != NULL) {
        if (f->id_len == 0 || f->id_len > RT_EVENT_ID_MAX)
            return fail(err, errlen, RT_EINVAL, "id: must be 1..%d bytes", RT_EVENT_ID_MAX);
        /* Control characters would break SSE's `id:` line (and NUL our C strings). */
        for (size_t i = 0; i < f->id_len; i++)
            if ((unsigned char)f->id[i] < 0x20 || f->id[i] == 0x7f)
                return fail(err, errlen, RT_EINVAL, "id: must not contain control characters");
    }
    if (f->type == NULL)
        return fail(err, errlen, RT_EINVAL, "type: is required");
    if (!rt_event_type_valid(f->type, f->type_len))
        return fail(err, errlen, RT_EINVAL, TYPE_MESSAGE);
    if (f->ts != NULL && !timestamp_valid(f->ts, f->ts_len))
        return fail(err, errlen, RT_EINVAL, TIMESTAMP_MESSAGE);
    if (f->n == 0 || f->n > RT_EVENT_MAX_CHANNELS)
        return fail(err, errlen, RT_EINVAL, CHANNELS_MESSAGE);
    for (size_t i = 0; i < f->n; i++) {
        char shown[NAME_SHOWN_MAX + 4];
        if (f->ch[i] == NULL)
            return fail(err, errlen, RT_EINVAL, "channels[%zu]: must be a string", i);
        if (!rt_channel_valid(f->ch[i], f->ch_len[i])) {
            show_name(shown, f->ch[i], f->ch_len[i]);
            return fail(err, errlen, RT_EINVAL, "channels[%zu]: invalid channel name \"%s\"", i, shown);
        }
        if (rt_channel_is_all(f->ch[i], f->ch_len[i]))
            return fail(err, errlen, RT_EINVAL, "channels[%zu]: \"all\" is not publishable", i);
        for (size_t j = 0; j < i; j++) {
            if (f->ch_len[j] == f->ch_len[i] && memcmp(f->ch[j], f->ch[i], f->ch_len[i]) == 0) {
                show_name(shown, f->ch[i], f->ch_len[i]);
                return fail(err, errlen, RT_EINVAL, "channels[%zu]: duplicate channel \"%s\"", i, shown);
            }
        }
    }
    return 0;
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* Lays the event out in one allocation: struct, form cache, offsets, channel pointers, then the strings. */
static rt_event_t *create(const struct fields *f)
{
    char gen_id[RT_EVENT_ID_GEN_LEN + 1];
    const char *id = f->id;
    size_t id_len = f->id_len;
    if (id == NULL) {
        rt_event_generate_id(gen_id);
        id = gen_id;
        id_len = RT_EVENT_ID_GEN_LEN;
    }
    size_t n = f->n;
    size_t forms_off = align8(sizeof(rt_event_t));
    size_t offsets_off = forms_off + align8(RT_FORM_COUNT * n * sizeof(void *_Atomic));
    size_t chans_off = offsets_off + n * sizeof(uint64_t);
    size_t strings_off = chans_off + n * sizeof(char *);
    size_t total = strings_off + id_len + 1 + f->type_len + 1;
    for (size_t i = 0; i < n; i++)
        total += f->ch_len[i] + 1;

    char *base = rt_mem_alloc(total);
    rt_event_t *ev = (rt_event_t *)base;
    memset(ev, 0, sizeof(*ev));
    atomic_init(&ev->_refcnt, 1);
    ev->_forms = (void *_Atomic *)(base + forms_off);
    for (size_t i = 0; i < RT_FORM_COUNT * n; i++)
        atomic_init(&ev->_forms[i], NULL);
    ev->_offsets = (uint64_t *)(base + offsets_off);
    memset(ev->_offsets, 0, n * sizeof(uint64_t));
    ev->offsets = ev->_offsets;

    char *p = base + strings_off;
    memcpy(p, id, id_len);
    p[id_len] = '\0';
    ev->id = p;
    ev->id_len = id_len;
    p += id_len + 1;
    memcpy(p, f->type, f->type_len);
    p[f->type_len] = '\0';
    ev->type = p;
    p += f->type_len + 1;
    const char **chans = (const char **)(base + chans_off);
    for (size_t i = 0; i < n; i++) {
        memcpy(p, f->ch[i], f->ch_len[i]);
        p[f->ch_len[i]] = '\0';
        chans[i] = p;
        p += f->ch_len[i] + 1;
    }
    ev->channels = chans;
    ev->n_channels = n;

    if (f->ts != NULL) {
        memcpy(ev->timestamp, f->ts, f->ts_len);
        ev->timestamp[f->ts_len] = '\0';
    } else {
        rt_format_timestamp(rt_clock_wall_ms(), ev->timestamp);
    }
    ev->data = f->data != NULL ? json_incref(f->data) : json_null();
    return ev;
}

struct counter {
    size_t n, limit;
};

static int count_bytes(const char *buffer, size_t size, void *data)
{
    struct counter *c = data;
    c->n += size;
    return c->n > c->limit ? -1 : 0; /* stop encoding as soon as the limit is passed */
}

int rt_event_from_json(json_t *obj, size_t max_bytes, rt_event_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!json_is_object(obj))
        return fail(err, errlen, RT_EINVAL, "event: must be a JSON object");
    struct fields f = {0};
    json_t *v;
    if ((v = json_object_get(obj, "id")) != NULL && !json_is_null(v)) {
        if (!json_is_string(v))
            return fail(err, errlen, RT_EINVAL, "id: must be a string");
        f.id = json_string_value(v);
        f.id_len = json_string_length(v);
    }
    if ((v = json_object_get(obj, "type")) != NULL) {
        if (!json_is_string(v))
            return fail(err, errlen, RT_EINVAL, TYPE_MESSAGE);
        f.type = json_string_value(v);
        f.type_len = json_string_length(v);
    }
    if ((v = json_object_get(obj, "timestamp")) != NULL && !json_is_null(v)) {
        if (!json_is_string(v))
            return fail(err, errlen, RT_EINVAL, TIMESTAMP_MESSAGE);
        f.ts = json_string_value(v);
        f.ts_len = json_string_length(v);
    }
    if ((v = json_object_get(obj, "channels")) == NULL)
        return fail(err, errlen, RT_EINVAL, "channels: is required");
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > RT_EVENT_MAX_CHANNELS)
        return fail(err, errlen, RT_EINVAL, CHANNELS_MESSAGE);
    f.n = json_array_size(v);
    for (size_t i = 0; i < f.n; i++) {
        json_t *c = json_array_get(v, i);
        if (!json_is_string(c))
            return fail(err, errlen, RT_EINVAL, "channels[%zu]: must be a string", i);
        f.ch[i] = json_string_value(c);
        f.ch_len[i] = json_string_length(c);
    }
    f.data = json_object_get(obj, "data");
    int ret = validate(&f, err, errlen);
    if (ret != 0)
        return ret;

    struct counter c = {0, max_bytes != 0 ? max_bytes : RT_EVENT_DEFAULT_MAX_BYTES};
    if (json_dump_callback(obj, count_bytes, &c, JSON_COMPACT) != 0 || c.n > c.limit) {
        if (c.n > c.limit)
            return fail(err, errlen, RT_E2BIG, "event: larger than %zu bytes", c.limit);
        return fail(err, errlen, RT_EINVAL, "event: cannot be encoded as JSON");
    }
    *out = create(&f);
    return 0;
}

int rt_event_parse(const char *text, size_t len, size_t max_bytes, rt_event_t **out, char *err, size_t errlen)
{
    json_error_t jerr;
    *out = NULL;
    json_t *obj = json_loadb(text, len, 0, &jerr);
    if (obj == NULL)
        return fail(err, errlen, RT_EINVAL, "invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
    int ret = rt_event_from_json(obj, max_bytes, out, err, errlen);
    json_decref(obj);
    return ret;
}

int rt_event_new(const char *id, const char *type, const char *const *channels, size_t n_channels, json_t *data,
                 rt_event_t **out, char *err, size_t errlen)
{
    *out = NULL;
    struct fields f = {.id = id, .id_len = id ? strlen(id) : 0, .type = type, .type_len = type ? strlen(type) : 0, .data = data};
    if (n_channels == 0 || n_channels > RT_EVENT_MAX_CHANNELS || channels == NULL)
        return fail(err, errlen, RT_EINVAL, CHANNELS_MESSAGE);
    f.n = n_channels;
    for (size_t i = 0; i < n_channels; i++) {
        f.ch[i] = channels[i];
        f.ch_len[i] = channels[i] ? strlen(channels[i]) : 0;
    }
    int ret = validate(&f, err, errlen);
    if (ret != 0)
        return ret;
    *out = create(&f);
    return 0;
}

static void append_json_string(rt_buf_t *buf, const char *s, size_t len)
{
    rt_buf_append(buf, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            rt_buf_append(buf, s + start, i - start);
            rt_buf_append(buf, "\\", 1);
            start = i;
        }
    }
    rt_buf_append(buf, s + start, len - start);
    rt_buf_append(buf, "\"", 1);
}

static int append_dump(const char *buffer, size_t size, void *data)
{
    rt_buf_append(data, buffer, size);
    return 0;
}

void rt_event_accept(rt_event_t *ev, uint64_t seq, const uint64_t *offsets)
{
    assert(ev->_json == NULL && seq != 0);
    ev->seq = seq;
    ev->_accepted_us = (uint32_t)rt_clock_mono_us() | 1;
    if (offsets != NULL)
        memcpy(ev->_offsets, offsets, ev->n_channels * sizeof(uint64_t));

    /* The id is the only member that may need escaping: validation rejects control characters in it, and
     * type, timestamp and channel names are plain ASCII without quotes or backslashes. */
    rt_buf_t buf = {0};
    rt_buf_appends(&buf, "{\"id\":");
    append_json_string(&buf, ev->id, ev->id_len);
    rt_buf_appendf(&buf, ",\"type\":\"%s\",\"timestamp\":\"%s\",\"channels\":[", ev->type, ev->timestamp);
    for (size_t i = 0; i < ev->n_channels; i++) {
        rt_buf_append(&buf, i ? ",\"" : "\"", i ? 2 : 1);
        rt_buf_appends(&buf, ev->channels[i]);
        rt_buf_append(&buf, "\"", 1);
    }
    rt_buf_appends(&buf, "],\"data\":");
    if (json_dump_callback(ev->data, append_dump, &buf, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        rt_buf_appends(&buf, "null"); /* only on encoder failure (e.g. a NaN real): keep the event well-formed */
    rt_buf_appendf(&buf, ",\"seq\":%llu}", (unsigned long long)seq);
    rt_buf_append(&buf, "", 1);
    ev->_json = buf.base;
    ev->json = buf.base;
    ev->json_len = buf.len - 1;
}

rt_event_t *rt_event_ref(rt_event_t *ev)
{
    atomic_fetch_add_explicit(&ev->_refcnt, 1, memory_order_relaxed);
    return ev;
}

void rt_event_unref(rt_event_t *ev)
{
    if (ev == NULL || atomic_fetch_sub_explicit(&ev->_refcnt, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < RT_FORM_COUNT * ev->n_channels; i++) {
        rt_bytes_t *b = atomic_load_explicit(&ev->_forms[i], memory_order_acquire);
        if (b != NULL)
            rt_bytes_unref(b);
    }
    json_decref(ev->data);
    free(ev->_json);
    free(ev);
}

rt_bytes_t *rt_event_form(rt_event_t *ev, unsigned form, size_t channel_index, rt_event_encode_cb cb, void *ctx)
{
    assert(form < RT_FORM_COUNT && channel_index < ev->n_channels);
    void *_Atomic *slot = &ev->_forms[form * ev->n_channels + channel_index];
    void *cur = atomic_load_explicit(slot, memory_order_acquire);
    if (cur != NULL)
        return cur;
    rt_bytes_t *mine = cb(ev, channel_index, ctx);
    if (mine == NULL)
        return NULL;
    mine->_stamp_us = ev->_accepted_us; /* for realtime_publish_to_write_seconds (conn.c) */
    /* Encoding twice on a race is cheaper than a lock on every delivery; the loser drops its copy. */
    if (atomic_compare_exchange_strong_explicit(slot, &cur, mine, memory_order_acq_rel, memory_order_acquire))
        return mine;
    rt_bytes_unref(mine);
    return cur;
}

int rt_event_channel_index(const rt_event_t *ev, const char *channel, size_t len)
{
    for (size_t i = 0; i < ev->n_channels; i++)
        if (strnlen(ev->channels[i], len + 1) == len && memcmp(ev->channels[i], channel, len) == 0)
            return (int)i;
    return -1;
}
