/*
 * The history is a ring of event references in seq order. Seqs are consecutive and eviction is FIFO, so
 * the ring always holds the seqs [last_seq - count + 1, last_seq] and an event's slot follows from its seq.
 *
 * Channel streams (Centrifuge offsets and epochs). Each channel with events in the ring has a meta record:
 * its top offset, the number of its events still in the ring, and its epoch generation. Because eviction
 * removes each channel's oldest event first and stream_remove removes all of a channel's events, the kept
 * offsets of a channel are always exactly [top - count + 1, top]. The meta is dropped as soon as count
 * reaches 0, which keeps the map bounded by the ring size.
 *
 * Epoch rule: a channel's epoch is "<history epoch>" for generation 0 and "<history epoch>-<gen in hex>"
 * otherwise, where gen is a counter of the channel's hash bucket (EPOCH_BUCKETS of them) that is bumped
 * every time the meta of a channel in that bucket is dropped. A new meta takes the bucket's current
 * generation; a channel without meta reports that same generation (so a subscriber to a quiet channel keeps
 * its position when the first event arrives). A recreated channel therefore never reuses an epoch, and a
 * position taken before the drop is always seen as stale. A drop of another channel in the same bucket only
 * costs a spurious "stale" for positions held on channels that had no events at the time.
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "realtime/error.h"
#include "realtime/history.h"
#include "util/clock.h"
#include "util/map.h"
#include "util/mem.h"

#define DEFAULT_SIZE 10000
#define DEFAULT_TTL_MS 3600000
#define EPOCH_BUCKETS 1024
#define EPOCH_HEX 8

struct slot {
    rt_event_t *ev;
    int64_t at;       /* clock time of the append, for the TTL */
    uint64_t removed; /* bit i: ev->channels[i] was removed from this channel's stream (stream_remove) */
};

struct chan_meta {
    uint64_t top;   /* offset of the channel's newest event */
    uint64_t count; /* its events still in the ring (not removed) */
    uint64_t gen;   /* epoch generation */
};

struct st_rt_history_t {
    pthread_mutex_t mutex;
    struct slot *ring;
    size_t size, head, count; /* head: index of the oldest slot */
    size_t bytes;             /* the JSON of the events held (rt_history_bytes) */
    int64_t ttl_ms;
    rt_clock_fn clock;
    void *clock_ctx;
    uint64_t last_seq;
    rt_map_t ids;      /* event id -> event (borrowed from the ring) */
    rt_map_t channels; /* channel -> struct chan_meta */
    uint64_t gens[EPOCH_BUCKETS];
    char epoch[EPOCH_HEX + 1];
};

static void random_epoch(char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[EPOCH_HEX / 2];
    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        /* No entropy yet: the time still tells restarts apart. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint32_t x = (uint32_t)ts.tv_nsec * 2654435761u ^ (uint32_t)ts.tv_sec;
        memcpy(r, &x, sizeof(r));
    }
    for (size_t i = 0; i < sizeof(r); i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[EPOCH_HEX] = '\0';
}

rt_history_t *rt_history_new(const rt_history_config_t *cfg)
{
    rt_history_t *h = rt_mem_calloc(1, sizeof(*h));
    pthread_mutex_init(&h->mutex, NULL);
    h->size = cfg != NULL && cfg->size != 0 ? cfg->size : DEFAULT_SIZE;
    h->ttl_ms = cfg != NULL && cfg->ttl_ms > 0 ? cfg->ttl_ms : DEFAULT_TTL_MS;
    h->clock = cfg != NULL && cfg->clock != NULL ? cfg->clock : rt_clock_wall;
    h->clock_ctx = cfg != NULL ? cfg->clock_ctx : NULL;
    h->ring = rt_mem_calloc(h->size, sizeof(*h->ring));
    random_epoch(h->epoch);
    return h;
}

static void free_meta(const char *key, size_t len, void *value, void *ctx)
{
    free(value);
}

void rt_history_free(rt_history_t *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->count; i++)
        rt_event_unref(h->ring[(h->head + i) % h->size].ev);
    rt_map_foreach(&h->channels, free_meta, NULL);
    rt_map_clear(&h->channels);
    rt_map_clear(&h->ids);
    free(h->ring);
    pthread_mutex_destroy(&h->mutex);
    free(h);
}

const char *rt_history_epoch(const rt_history_t *h)
{
    return h->epoch;
}

static uint64_t *bucket_gen(rt_history_t *h, const char *channel, size_t len)
{
    return &h->gens[rt_hash(channel, len) & (EPOCH_BUCKETS - 1)];
}

/* "<epoch>" or "<epoch>-<gen in hex>". 8 + 1 + 14 hex digits fit rt_stream_pos_t.epoch: 2^56 drops in one
 * bucket is beyond any process's life, so the mask never bites in practice. */
static void format_epoch(const rt_history_t *h, uint64_t gen, char *out)
{
    memcpy(out, h->epoch, EPOCH_HEX + 1);
    if (gen == 0)
        return;
    gen &= (1ULL << 56) - 1;
    char digits[16];
    size_t n = 0;
    for (; gen != 0; gen >>= 4)
        digits[n++] = "0123456789abcdef"[gen & 15];
    char *p = out + EPOCH_HEX;
    *p++ = '-';
    while (n > 0)
        *p++ = digits[--n];
    *p = '\0';
}

/* Drops the channel's meta and bumps its bucket's generation, so the channel's next stream has a new epoch. */
static void drop_meta(rt_history_t *h, const char *channel, size_t len)
{
    free(rt_map_del(&h->channels, channel, len));
    (*bucket_gen(h, channel, len))++;
}

static struct slot *slot_at(rt_history_t *h, size_t i)
{
    return &h->ring[(h->head + i) % h->size];
}

static void evict_oldest(rt_history_t *h)
{
    struct slot *s = slot_at(h, 0);
    rt_event_t *ev = s->ev;
    for (size_t i = 0; i < ev->n_channels; i++) {
        if (s->removed & (1ULL << i))
            continue;
        size_t len = strlen(ev->channels[i]);
        struct chan_meta *m = rt_map_get(&h->channels, ev->channels[i], len);
        assert(m != NULL && m->count > 0);
        if (--m->count == 0)
            drop_meta(h, ev->channels[i], len);
    }
    if (rt_map_get(&h->ids, ev->id, ev->id_len) == ev)
        rt_map_del(&h->ids, ev->id, ev->id_len);
    h->bytes -= ev->json_len;
    rt_event_unref(ev);
    *s = (struct slot){0};
    h->head = (h->head + 1) % h->size;
    h->count--;
}

/* Lazy TTL: called with the lock held by every operation that reads or grows the ring. Returns the time. */
static int64_t expire(rt_history_t *h)
{
    int64_t now = h->clock(h->clock_ctx);
    while (h->count > 0 && now - slot_at(h, 0)->at > h->ttl_ms)
        evict_oldest(h);
    return now;
}

/* The tail of an append, lock held: accepts ev with seq (last_seq already advanced) and stores it. */
static inline void store(rt_history_t *h, rt_event_t *ev, uint64_t seq, const uint64_t *offsets, int64_t at,
                         void (*on_accept)(rt_event_t *ev, void *ctx), void *ctx)
{
    if (h->count == h->size)
        evict_oldest(h);
    rt_event_accept(ev, seq, offsets);
    *slot_at(h, h->count) = (struct slot){rt_event_ref(ev), at, 0};
    h->count++;
    h->bytes += ev->json_len;
    rt_map_put(&h->ids, ev->id, ev->id_len, ev);
    if (on_accept != NULL)
        on_accept(ev, ctx);
}

int rt_history_append(rt_history_t *h, rt_event_t *ev, rt_event_t **existing, void (*on_accept)(rt_event_t *ev, void *ctx),
                      void *ctx)
{
    uint64_t offsets[RT_EVENT_MAX_CHANNELS];
    assert(ev->json == NULL && ev->n_channels <= RT_EVENT_MAX_CHANNELS);
    pthread_mutex_lock(&h->mutex);
    int64_t now = expire(h);
    rt_event_t *prev = rt_map_get(&h->ids, ev->id, ev->id_len);
    if (prev != NULL) {
        if (existing != NULL)
            *existing = rt_event_ref(prev);
        pthread_mutex_unlock(&h->mutex);
        return RT_EEXIST;
    }
    /* Offsets first, eviction second: a channel shared with the evicted event keeps its meta (and epoch). */
    for (size_t i = 0; i < ev->n_channels; i++) {
        size_t len = strlen(ev->channels[i]);
        struct chan_meta *m = rt_map_get(&h->channels, ev->channels[i], len);
        if (m == NULL) {
            m = rt_mem_calloc(1, sizeof(*m));
            m->gen = *bucket_gen(h, ev->channels[i], len);
            rt_map_put(&h->channels, ev->channels[i], len, m);
        }
        offsets[i] = ++m->top;
        m->count++;
    }
    store(h, ev, ++h->last_seq, offsets, now, on_accept, ctx);
    pthread_mutex_unlock(&h->mutex);
    return 0;
}

/* Removes the channel's events from its stream and drops its meta (lock held; the channel has meta). */
static void remove_channel(rt_history_t *h, const char *channel, size_t len)
{
    for (size_t i = 0; i < h->count; i++) {
        struct slot *s = slot_at(h, i);
        int idx = rt_event_channel_index(s->ev, channel, len);
        if (idx >= 0)
            s->removed |= 1ULL << idx;
    }
    drop_meta(h, channel, len);
}

/*
 * A replica keeps the sequencer's numbers. A seq gap drops everything held, so the ring keeps consecutive seqs
 * and a resume across the gap is refused (RT_ERANGE) rather than silently short. A channel offset that does not
 * follow the channel's top restarts that channel's stream (new epoch), which keeps its kept offsets contiguous.
 */
int rt_history_append_at(rt_history_t *h, rt_event_t *ev, uint64_t seq, const uint64_t *offsets, int64_t at_ms,
                         void (*on_accept)(rt_event_t *ev, void *ctx), void *ctx)
{
    assert(ev->json == NULL && ev->n_channels <= RT_EVENT_MAX_CHANNELS);
    for (size_t i = 0; i < ev->n_channels; i++)
        if (offsets[i] == 0)
            return RT_EINVAL;
    pthread_mutex_lock(&h->mutex);
    int64_t now = expire(h);
    if (seq <= h->last_seq) {
        pthread_mutex_unlock(&h->mutex);
        return RT_ERANGE;
    }
    if (seq != h->last_seq + 1) {
        while (h->count > 0)
            evict_oldest(h);
        h->last_seq = seq - 1;
    }
    for (size_t i = 0; i < ev->n_channels; i++) {
        size_t len = strlen(ev->channels[i]);
        struct chan_meta *m = rt_map_get(&h->channels, ev->channels[i], len);
        if (m != NULL && offsets[i] != m->top + 1) {
            remove_channel(h, ev->channels[i], len);
            m = NULL;
        }
        if (m == NULL) {
            m = rt_mem_calloc(1, sizeof(*m));
            m->gen = *bucket_gen(h, ev->channels[i], len);
            rt_map_put(&h->channels, ev->channels[i], len, m);
        }
        m->top = offsets[i];
        m->count++;
    }
    h->last_seq = seq;
    store(h, ev, seq, offsets, at_ms > 0 && at_ms < now ? at_ms : now, on_accept, ctx);
    pthread_mutex_unlock(&h->mutex);
    return 0;
}

void rt_history_reset(rt_history_t *h, const char *epoch)
{
    pthread_mutex_lock(&h->mutex);
    while (h->count > 0)
        evict_oldest(h);
    h->last_seq = 0;
    /* A new epoch already tells every old position apart: channel generations start again at 0. */
    memset(h->gens, 0, sizeof(h->gens));
    if (epoch != NULL) {
        size_t n = strnlen(epoch, EPOCH_HEX);
        memcpy(h->epoch, epoch, n);
        h->epoch[n] = '\0';
    } else {
        random_epoch(h->epoch);
    }
    pthread_mutex_unlock(&h->mutex);
}

rt_event_t *rt_history_get(rt_history_t *h, const char *id, size_t len)
{
    pthread_mutex_lock(&h->mutex);
    expire(h);
    rt_event_t *ev = rt_map_get(&h->ids, id, len);
    if (ev != NULL)
        rt_event_ref(ev);
    pthread_mutex_unlock(&h->mutex);
    return ev;
}

uint64_t rt_history_last_seq(rt_history_t *h)
{
    pthread_mutex_lock(&h->mutex);
    uint64_t seq = h->last_seq;
    pthread_mutex_unlock(&h->mutex);
    return seq;
}

/* A size of the history (its count or bytes), read under the lock once expired events are gone. */
static size_t read_size(rt_history_t *h, const size_t *field)
{
    pthread_mutex_lock(&h->mutex);
    expire(h);
    size_t n = *field;
    pthread_mutex_unlock(&h->mutex);
    return n;
}

size_t rt_history_bytes(rt_history_t *h)
{
    return read_size(h, &h->bytes);
}

size_t rt_history_count(rt_history_t *h)
{
    return read_size(h, &h->count);
}

static void list_push(rt_event_list_t *out, size_t *cap, rt_event_t *ev)
{
    if (out->count == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        out->events = rt_mem_realloc(out->events, *cap * sizeof(*out->events));
    }
    out->events[out->count++] = rt_event_ref(ev);
}

/* Appends (references to) the events of ring positions [from, count) with seq <= upto (0 = any). Lock held. */
static void collect_from(rt_history_t *h, size_t from, uint64_t upto, rt_event_list_t *out)
{
    size_t cap = 0;
    for (size_t i = from; i < h->count; i++) {
        rt_event_t *ev = slot_at(h, i)->ev;
        if (upto != 0 && ev->seq > upto)
            break;
        list_push(out, &cap, ev);
    }
}

/*
 * Keeps the events of list that satisfy pred (NULL: all), in order, and drops the others. Called after the lock
 * is released: a predicate (a subscription's patterns and filters over every event of a resume) can take long,
 * and every publish waits on the lock. Under it a resume costs one reference per event in range.
 */
static void keep_matching(rt_event_list_t *list, rt_event_pred pred, void *ctx)
{
    if (pred == NULL)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < list->count; i++) {
        if (pred(list->events[i], ctx))
            list->events[kept++] = list->events[i];
        else
            rt_event_unref(list->events[i]);
    }
    list->count = kept;
}

int rt_history_after_id(rt_history_t *h, const char *after_id, uint64_t upto_seq, rt_event_pred pred, void *ctx,
                        rt_event_list_t *out)
{
    *out = (rt_event_list_t){0};
    pthread_mutex_lock(&h->mutex);
    expire(h);
    rt_event_t *ev = after_id != NULL ? rt_map_get(&h->ids, after_id, strlen(after_id)) : NULL;
    if (ev == NULL) {
        pthread_mutex_unlock(&h->mutex);
        return RT_ERANGE;
    }
    uint64_t first_seq = h->last_seq - h->count + 1;
    collect_from(h, (size_t)(ev->seq - first_seq) + 1, upto_seq, out);
    pthread_mutex_unlock(&h->mutex);
    keep_matching(out, pred, ctx);
    return 0;
}

int rt_history_after_seq(rt_history_t *h, uint64_t after_seq, rt_event_pred pred, void *ctx, rt_event_list_t *out)
{
    *out = (rt_event_list_t){0};
    pthread_mutex_lock(&h->mutex);
    expire(h);
    uint64_t first_seq = h->last_seq - h->count + 1;
    if (after_seq > h->last_seq || after_seq + 1 < first_seq) {
        pthread_mutex_unlock(&h->mutex);
        return RT_ERANGE;
    }
    collect_from(h, (size_t)(after_seq + 1 - first_seq), 0, out);
    pthread_mutex_unlock(&h->mutex);
    keep_matching(out, pred, ctx);
    return 0;
}

/* The channel's offset in the event at ring position i, or 0 when the event is not (or no longer) on it. */
static uint64_t offset_in(rt_history_t *h, size_t i, const char *channel, size_t len)
{
    struct slot *s = slot_at(h, i);
    int idx = rt_event_channel_index(s->ev, channel, len);
    if (idx < 0 || (s->removed & (1ULL << idx)))
        return 0;
    return s->ev->offsets[idx];
}

/*
 * Fills out with the channel's kept events, oldest first: the `n` newest of them when newest is true, the
 * `n` oldest otherwise (n at most the channel's count). Scans from the matching end of the ring and stops
 * once n are found.
 */
static void collect_channel(rt_history_t *h, const char *channel, size_t len, size_t n, bool newest, rt_event_list_t *out)
{
    *out = (rt_event_list_t){0};
    if (n == 0)
        return;
    out->events = rt_mem_alloc(n * sizeof(*out->events));
    for (size_t k = 0; k < h->count && out->count < n; k++) {
        size_t i = newest ? h->count - 1 - k : k;
        if (offset_in(h, i, channel, len) == 0)
            continue;
        rt_event_t *ev = rt_event_ref(slot_at(h, i)->ev);
        if (newest)
            out->events[n - 1 - out->count++] = ev;
        else
            out->events[out->count++] = ev;
    }
    assert(out->count == n);
}

static void reverse_list(rt_event_list_t *list)
{
    for (size_t i = 0, j = list->count; i + 1 < j; i++, j--) {
        rt_event_t *t = list->events[i];
        list->events[i] = list->events[j - 1];
        list->events[j - 1] = t;
    }
}

static void position(rt_history_t *h, const char *channel, size_t len, const struct chan_meta *m, rt_stream_pos_t *pos)
{
    pos->offset = m != NULL ? m->top : 0;
    format_epoch(h, m != NULL ? m->gen : *bucket_gen(h, channel, len), pos->epoch);
}

int rt_history_last(rt_history_t *h, const char *channel, size_t limit, rt_event_list_t *out)
{
    size_t len = strlen(channel);
    pthread_mutex_lock(&h->mutex);
    expire(h);
    struct chan_meta *m = rt_map_get(&h->channels, channel, len);
    size_t n = m == NULL ? 0 : m->count < limit ? (size_t)m->count : limit;
    collect_channel(h, channel, len, n, true, out);
    pthread_mutex_unlock(&h->mutex);
    return 0;
}

void rt_history_stream_top(rt_history_t *h, const char *channel, rt_stream_pos_t *pos)
{
    size_t len = strlen(channel);
    pthread_mutex_lock(&h->mutex);
    expire(h);
    position(h, channel, len, rt_map_get(&h->channels, channel, len), pos);
    pthread_mutex_unlock(&h->mutex);
}

int rt_history_stream_since(rt_history_t *h, const char *channel, const rt_stream_pos_t *pos, size_t limit,
                            rt_event_list_t *out)
{
    size_t len = strlen(channel);
    rt_stream_pos_t cur;
    *out = (rt_event_list_t){0};
    pthread_mutex_lock(&h->mutex);
    expire(h);
    struct chan_meta *m = rt_map_get(&h->channels, channel, len);
    position(h, channel, len, m, &cur);
    int ret = 0;
    /* An empty epoch matches any (Centrifuge: "req.epoch is empty or equals the current epoch"); an offset
     * beyond the top is a position this stream never had. */
    if ((pos->epoch[0] != '\0' && strcmp(pos->epoch, cur.epoch) != 0) || pos->offset > cur.offset) {
        ret = RT_ESTALE;
    } else if (m != NULL && pos->offset < m->top - m->count) {
        ret = RT_ERANGE;
    } else {
        uint64_t n = cur.offset - pos->offset;
        if (limit != 0 && n > limit)
            n = limit;
        /* The wanted events are the n oldest of the newest (top - offset): collect those, oldest first. */
        rt_event_list_t tail;
        collect_channel(h, channel, len, (size_t)(cur.offset - pos->offset), true, &tail);
        for (size_t i = n; i < tail.count; i++)
            rt_event_unref(tail.events[i]);
        tail.count = (size_t)n;
        *out = tail;
    }
    pthread_mutex_unlock(&h->mutex);
    return ret;
}

int rt_history_stream_read(rt_history_t *h, const char *channel, size_t limit, bool reverse, rt_event_list_t *out,
                           rt_stream_pos_t *pos)
{
    size_t len = strlen(channel);
    pthread_mutex_lock(&h->mutex);
    expire(h);
    struct chan_meta *m = rt_map_get(&h->channels, channel, len);
    if (pos != NULL)
        position(h, channel, len, m, pos);
    size_t n = m == NULL ? 0 : m->count < limit ? (size_t)m->count : limit;
    collect_channel(h, channel, len, n, reverse, out);
    pthread_mutex_unlock(&h->mutex);
    if (reverse)
        reverse_list(out);
    return 0;
}

void rt_history_stream_remove(rt_history_t *h, const char *channel)
{
    size_t len = strlen(channel);
    pthread_mutex_lock(&h->mutex);
    expire(h);
    if (rt_map_get(&h->channels, channel, len) != NULL)
        remove_channel(h, channel, len);
    pthread_mutex_unlock(&h->mutex);
}

void rt_event_list_free(rt_event_list_t *list)
{
    for (size_t i = 0; i < list->count; i++)
        rt_event_unref(list->events[i]);
    free(list->events);
    *list = (rt_event_list_t){0};
}
