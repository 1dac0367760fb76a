/*
 * History: a bounded, ordered log of accepted events.
 *
 * Appending an event accepts it (rt_event_accept): it gets the next `seq` (strictly increasing within
 * an epoch) and, per channel, the next Centrifuge offset. The log keeps at most `size` events, none
 * older than `ttl_ms`. The epoch is a random string chosen when the history is created: a new process
 * (memory broker) means a new epoch, so resume points from before are recognised as lost.
 *
 * Channel streams: a channel's epoch is the history epoch until the channel loses all its events (evicted or
 * removed); its meta is then dropped and, when it gets events again, its stream restarts at offset 1 under a
 * fresh epoch ("<history epoch>-<generation>"), so positions from before are never mistaken for current ones.
 *
 * All functions are thread-safe (one internal mutex); results hold their own event references. Events older
 * than the TTL are evicted lazily, by every call that appends or queries.
 */
#ifndef REALTIME_HISTORY_H
#define REALTIME_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "realtime/event.h"

/** Injectable clock: returns wall-clock milliseconds since the Unix epoch. */
typedef int64_t (*rt_clock_fn)(void *ctx);

typedef struct st_rt_history_config_t {
    size_t size;        /**< events kept; default 10000 */
    int64_t ttl_ms;     /**< maximum age; default 3600000 (1 h); 0 = default */
    rt_clock_fn clock;  /**< NULL = wall clock */
    void *clock_ctx;
} rt_history_config_t;

typedef struct st_rt_history_t rt_history_t;

/** Events returned by a query, oldest first; free with rt_event_list_free. */
typedef struct st_rt_event_list_t {
    rt_event_t **events;
    size_t count;
} rt_event_list_t;

/**
 * Decides whether a history event belongs in a query's result (e.g. a subscription's channels and filter).
 * Runs with the history lock held: it must not call into the history.
 */
typedef bool (*rt_event_pred)(const rt_event_t *ev, void *ctx);

/** Creates a history (cfg NULL = defaults; size 0 = 10000). The epoch is 8 random hex characters. */
rt_history_t *rt_history_new(const rt_history_config_t *cfg);
/** Frees the history and drops its event references. */
void rt_history_free(rt_history_t *h);
/** The epoch string (stable for the life of h, except across rt_history_reset). */
const char *rt_history_epoch(const rt_history_t *h);

/**
 * Appends ev: accepts it (seq and offsets) and keeps a reference. When an event with the same id is still
 * in history, nothing is appended and RT_EEXIST is returned with *existing set to that event (a new reference):
 * publishing is idempotent. `on_accept`, when not NULL, is called with the accepted event while the history
 * lock is held, so callers can hand events on in seq order (ev is then the caller's to share).
 */
int rt_history_append(rt_history_t *h, rt_event_t *ev, rt_event_t **existing, void (*on_accept)(rt_event_t *ev, void *ctx),
                      void *ctx);

/**
 * Appends ev as a replica of an event sequenced elsewhere (the redis broker): it is accepted with the given seq
 * and per-channel offsets (ev->n_channels values, each >= 1) and kept with at_ms as its append time for the TTL
 * (0, or a time in the future = now). No idempotency check: the sequencer did it. seq must be above the newest
 * seq held, else RT_ERANGE and nothing is appended; when it skips seqs (events missed), every event held is
 * dropped first, so a resume from before the gap is refused instead of silently short. A channel whose offset
 * does not follow its newest one restarts its stream (new channel epoch). on_accept as in rt_history_append.
 * Returns 0, RT_ERANGE or RT_EINVAL (an offset of 0).
 */
int rt_history_append_at(rt_history_t *h, rt_event_t *ev, uint64_t seq, const uint64_t *offsets, int64_t at_ms,
                         void (*on_accept)(rt_event_t *ev, void *ctx), void *ctx);
/**
 * Drops every event and starts over under a new epoch: `epoch` (at most 8 characters are kept; it must differ from
 * every epoch this history had, e.g. the broker's new random one), or a random one when NULL. The newest seq is
 * then 0. rt_history_epoch's string changes in place.
 */
void rt_history_reset(rt_history_t *h, const char *epoch);
/** The event with that id, as a new reference, or NULL when it is not (or no longer) in history. */
rt_event_t *rt_history_get(rt_history_t *h, const char *id, size_t len);

/** The seq of the newest event appended (0 when none yet). */
uint64_t rt_history_last_seq(rt_history_t *h);

/**
 * Events after the one with id `after_id` that satisfy pred (NULL = all), oldest first, and up to `upto_seq`
 * (0 = the newest). RT_ERANGE when that id is not in history (unknown, garbage, evicted or from another
 * epoch: a resume there cannot be gap-free). The events are taken under the history's lock and pred runs after it
 * is released, so a slow predicate never holds up appends (and may itself call into h).
 */
int rt_history_after_id(rt_history_t *h, const char *after_id, uint64_t upto_seq, rt_event_pred pred, void *ctx,
                        rt_event_list_t *out);
/**
 * Events with seq > after_seq satisfying pred, oldest first (pred runs outside the lock, as for
 * rt_history_after_id). RT_ERANGE when events after after_seq were already evicted, or after_seq is beyond the
 * newest seq.
 */
int rt_history_after_seq(rt_history_t *h, uint64_t after_seq, rt_event_pred pred, void *ctx, rt_event_list_t *out);
/** The newest `limit` events of channel (oldest first; limit 0 = none). Unknown channel: empty list. Returns 0. */
int rt_history_last(rt_history_t *h, const char *channel, size_t limit, rt_event_list_t *out);

/** A channel's Centrifuge stream position: offset of its newest event and its epoch. */
typedef struct st_rt_stream_pos_t {
    uint64_t offset;
    char epoch[24];
} rt_stream_pos_t;

/** The channel's current stream position (offset 0 and the current epoch when it has no events). */
void rt_history_stream_top(rt_history_t *h, const char *channel, rt_stream_pos_t *pos);
/**
 * Centrifuge recovery: the channel's events with offset > pos->offset, oldest first, at most `limit` (0 = all).
 * An empty pos->epoch matches any epoch (as in Centrifuge). RT_ESTALE when pos->epoch is not the channel's
 * current epoch or pos->offset is beyond its top; RT_ERANGE when some events after pos->offset were evicted
 * (pos->offset + 1 < the oldest offset kept). out is empty on error.
 */
int rt_history_stream_since(rt_history_t *h, const char *channel, const rt_stream_pos_t *pos, size_t limit,
                            rt_event_list_t *out);
/**
 * Centrifuge history without `since`: limit 0 = none (just the position), SIZE_MAX = all; not reverse: the
 * oldest `limit` kept events, oldest first; reverse: the newest `limit`, newest first. pos (may be NULL) gets
 * the channel's current position. Returns 0.
 */
int rt_history_stream_read(rt_history_t *h, const char *channel, size_t limit, bool reverse, rt_event_list_t *out,
                           rt_stream_pos_t *pos);
/**
 * Removes the channel's events from its stream (Centrifugo history_remove): they no longer appear in channel
 * queries for it (last, stream_*), and the channel's next event starts a new stream (offset 1, new epoch).
 * Events stay in the log for their other channels and for after_id / after_seq resume.
 */
void rt_history_stream_remove(rt_history_t *h, const char *channel);

/** Number of events held. */
size_t rt_history_count(rt_history_t *h);
/** The JSON bytes of the events held (what they are delivered as; their memory is a few times that). */
size_t rt_history_bytes(rt_history_t *h);
/** Drops the references of a result list. */
void rt_event_list_free(rt_event_list_t *list);

#endif
