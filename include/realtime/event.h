/*
 * Events: what publishers send and clients receive.
 *
 * An event is created (parsed from JSON or built from fields), validated, then accepted once by
 * whoever orders events (the history, or a broadcaster without one), which gives it its `seq` and
 * per-channel offsets and renders its JSON. From then on it is immutable and may be shared by any
 * number of threads; it lives while references are held (rt_event_ref / rt_event_unref).
 */
#ifndef REALTIME_EVENT_H
#define REALTIME_EVENT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "realtime/bytes.h"

#define RT_EVENT_ID_MAX 128             /**< bytes in an event id */
#define RT_EVENT_TYPE_MAX 64            /**< bytes in an event type */
#define RT_EVENT_MAX_CHANNELS 64        /**< channels one event may name */
#define RT_EVENT_DEFAULT_MAX_BYTES 65536 /**< default limit on the whole event JSON */
#define RT_EVENT_ID_GEN_LEN 30          /**< length of a generated id ("evt-" + 26 characters) */

/** Wire forms cached on an event; each is encoded at most once per event (per channel where it names one). */
enum {
    RT_FORM_NATIVE_WS,      /**< /ws text frame carrying {"type":"event","event":…} */
    RT_FORM_SSE,            /**< /events block: id, event, data lines */
    RT_FORM_CENTRIFUGE_WS,  /**< Centrifuge pub push for one channel, as a complete WebSocket text frame */
    RT_FORM_CENTRIFUGE_SSE, /**< Centrifuge pub push for one channel, as a uni_sse block */
    RT_FORM_COUNT
};

/** rt_event_t.flags */
#define RT_EVENT_RAW_DATA 0x1u /**< from the Centrifugo API (/api/publish, client publish): a Centrifuge publication's data is
                                    `data` itself, not the whole event */

typedef struct st_rt_event_t rt_event_t;

/** Encodes one wire form of ev for the channel at channel_index; returns new bytes (refcount 1). */
typedef rt_bytes_t *(*rt_event_encode_cb)(const rt_event_t *ev, size_t channel_index, void *ctx);

struct st_rt_event_t {
    /* Read-only for everyone once the event is created. */
    const char *id;
    size_t id_len;
    const char *type;
    char timestamp[40];          /**< RFC 3339 UTC with milliseconds, or the publisher's RFC 3339 text (<= 39 bytes) */
    const char *const *channels; /**< 1..RT_EVENT_MAX_CHANNELS valid channel names */
    size_t n_channels;
    json_t *data;                /**< never NULL (JSON null when absent); never modified */
    unsigned flags;              /**< RT_EVENT_*; 0 when created; set by the creator before the event is published */
    /* Set once by rt_event_accept. */
    uint64_t seq;                /**< 0 until accepted */
    const uint64_t *offsets;     /**< Centrifuge offset per channel, parallel to channels */
    const char *json;            /**< the event as delivered, with "seq": NUL-terminated */
    size_t json_len;
    /* private */
    atomic_uint _refcnt;
    uint32_t _accepted_us; /* monotonic µs (low 32 bits, never 0) when accepted: stamped on its wire forms */
    void *_Atomic *_forms; /* RT_FORM_COUNT * n_channels cached rt_bytes_t pointers */
    uint64_t *_offsets;
    char *_json;
};

/**
 * Validates a decoded JSON object as an event and creates it with refcount 1 (not yet accepted). Rules:
 *  - `id`: string of 1..RT_EVENT_ID_MAX bytes without control characters; absent or null = generated.
 *  - `type`: see rt_event_type_valid; required.
 *  - `timestamp`: RFC 3339 text of at most 39 bytes, kept as given; absent or null = now (UTC, ms).
 *  - `channels`: array of 1..RT_EVENT_MAX_CHANNELS valid channel names, no duplicates, not `all`.
 *  - `data`: any JSON; absent = null. Other members (including a publisher's `seq`) are ignored.
 *  - the object's compact JSON is at most max_bytes (0 = RT_EVENT_DEFAULT_MAX_BYTES, SIZE_MAX = no limit).
 * Returns 0, RT_EINVAL or RT_E2BIG; on failure *out is NULL and err (when errlen > 0) gets a NUL-terminated
 * ASCII message naming the field, e.g. `channels[2]: invalid channel name "a..b"`. Any thread.
 * The object is not modified; `data` is shared (reference taken) and must not be modified afterwards.
 */
int rt_event_from_json(json_t *obj, size_t max_bytes, rt_event_t **out, char *err, size_t errlen);
/** Like rt_event_from_json, from JSON text (invalid JSON is RT_EINVAL with the parser's message). */
int rt_event_parse(const char *text, size_t len, size_t max_bytes, rt_event_t **out, char *err, size_t errlen);
/**
 * Creates an event from fields: id NULL means generate one; the timestamp is now; data NULL means JSON null
 * (otherwise a reference is taken). Validates like rt_event_from_json (no size limit).
 */
int rt_event_new(const char *id, const char *type, const char *const *channels, size_t n_channels, json_t *data,
                 rt_event_t **out, char *err, size_t errlen);

/**
 * Accepts the event: sets seq (>= 1; 0 means "not accepted") and the per-channel offsets (copied; NULL = all
 * zero) and renders `json`: {"id","type","timestamp","channels","data","seq"}, compact, in that order.
 * Called exactly once, by the thread that orders events, before the event is shared.
 */
void rt_event_accept(rt_event_t *ev, uint64_t seq, const uint64_t *offsets);

/** Takes a reference (any thread). */
rt_event_t *rt_event_ref(rt_event_t *ev);
/** Drops a reference (any thread; NULL is ignored); the last one frees the event and its cached forms. */
void rt_event_unref(rt_event_t *ev);

/**
 * Returns the cached wire form `form` for the channel at channel_index (use 0 for forms that do not depend
 * on the channel), encoding it with cb on first use. The result is borrowed: valid while the caller holds a
 * reference to ev; take rt_bytes_ref to keep it longer. Thread-safe: when two threads race on the first use,
 * both encode and one result is kept (the other is unreferenced). When cb returns NULL, nothing is cached and
 * NULL is returned. form < RT_FORM_COUNT and channel_index < n_channels.
 */
rt_bytes_t *rt_event_form(rt_event_t *ev, unsigned form, size_t channel_index, rt_event_encode_cb cb, void *ctx);

/** Index of channel in ev->channels, or -1. */
int rt_event_channel_index(const rt_event_t *ev, const char *channel, size_t len);

/**
 * Writes a new unique id, time-sortable as text in generation order within this process:
 * "evt-" + 10 Crockford base32 characters of milliseconds + 16 of an 80-bit counter that is reseeded
 * randomly when the millisecond advances and incremented otherwise (also when the clock goes back: the
 * last millisecond is kept). buf holds at least RT_EVENT_ID_GEN_LEN + 1 bytes; NUL-terminated. Any thread.
 */
void rt_event_generate_id(char *buf);
/**
 * Formats unix milliseconds as RFC 3339 UTC with milliseconds ("2026-11-28T04:00:00.123Z"); buf >= 25 bytes.
 * ms is clamped to years 1970..9999.
 */
void rt_format_timestamp(int64_t ms, char *buf);
/** True when type matches `segment(.segment)+`, segment `[a-z][a-z0-9_]*`, at most RT_EVENT_TYPE_MAX bytes. */
int rt_event_type_valid(const char *type, size_t len);

#endif
