/*
 * The broadcaster: subscriptions by channel, pattern and filter, and fan-out of events to clients.
 *
 * A client is a struct of operations (send, close) plus user data, so transports and tests plug in the
 * same way. rt_broadcaster_broadcast queues an event without blocking; delivery happens on the
 * dispatching thread: the broadcaster's own thread by default, or the owner's thread when the config
 * names a wakeup callback (the server's workers dispatch on their event loops this way).
 *
 * Each client gets an event once, however many of its channels and subscriptions match, unless it sets
 * RT_CLIENT_PER_CHANNEL (Centrifuge semantics: one delivery per subscribed channel the event names).
 */
#ifndef REALTIME_BROADCASTER_H
#define REALTIME_BROADCASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "realtime/event.h"
#include "realtime/filter.h"

#define RT_BROADCASTER_DEFAULT_BUFFER 1000
#define RT_CLIENT_PER_CHANNEL 0x1u

typedef struct st_rt_broadcaster_t rt_broadcaster_t;
typedef struct st_rt_client_t rt_client_t;
typedef struct st_rt_subscription_t rt_subscription_t;

typedef struct st_rt_client_ops_t {
    /**
     * Delivers ev, matched by sub on ev->channels[channel_index]. Runs on the dispatching thread. Returns 0,
     * or a negative error: the client is then removed from the broadcaster (all its subscriptions), counted
     * as a send failure, and its close op is called.
     */
    int (*send)(rt_client_t *client, rt_event_t *ev, rt_subscription_t *sub, size_t channel_index);
    /** Called once when the broadcaster drops the client (send failure or close); NULL = nothing to do. */
    void (*close)(rt_client_t *client, int reason);
} rt_client_ops_t;

struct st_rt_client_t {
    const rt_client_ops_t *ops;
    void *data;
    unsigned flags; /**< RT_CLIENT_* */
    /* private: owned by the broadcaster the client subscribes with (ordered to keep the struct at 40 bytes) */
    bool _failed;
    uint64_t _mark;
    rt_subscription_t *_subs;
};

typedef struct st_rt_broadcaster_config_t {
    size_t buffer; /**< events queued before broadcast returns RT_EAGAIN; 0 = RT_BROADCASTER_DEFAULT_BUFFER */
    /** NULL: the broadcaster runs its own delivery thread. Otherwise called (from any thread) when events are
     * queued; the owner then calls rt_broadcaster_dispatch on its own thread. */
    void (*wakeup)(void *ctx);
    void *wakeup_ctx;
} rt_broadcaster_config_t;

typedef struct st_rt_broadcaster_stats_t {
    uint64_t published;     /**< events accepted by broadcast */
    uint64_t refused;       /**< broadcasts refused with RT_EAGAIN (buffer full) */
    uint64_t delivered;     /**< successful send calls */
    uint64_t send_failures; /**< failed send calls (each removed a client) */
    size_t clients;
    size_t subscriptions;
    size_t channels;        /**< distinct exact channels subscribed */
    size_t patterns;        /**< distinct patterns subscribed (`all` counts as one) */
    size_t queued;          /**< events waiting for dispatch */
} rt_broadcaster_stats_t;

/** Creates a broadcaster (config NULL = defaults: buffer 1000, own thread). */
rt_broadcaster_t *rt_broadcaster_new(const rt_broadcaster_config_t *config);

/**
 * Subscribes client to channels (names or patterns; `all` = every event), narrowed by filter (NULL = none;
 * ownership passes to the subscription). Returns the subscription, or NULL when a channel is invalid, n is 0
 * or the broadcaster is closed (the filter is freed then too). Any thread; a client belongs to one broadcaster.
 */
rt_subscription_t *rt_broadcaster_subscribe(rt_broadcaster_t *b, rt_client_t *client, const char *const *channels, size_t n,
                                            rt_filter_t *filter);
/** Removes a subscription (any thread, also from inside send); it is freed before this returns or, inside send, after the fan-out. */
void rt_broadcaster_unsubscribe(rt_broadcaster_t *b, rt_subscription_t *sub);
/** Removes all of client's subscriptions (the close op is not called). */
void rt_broadcaster_remove_client(rt_broadcaster_t *b, rt_client_t *client);

/**
 * Queues ev for delivery (a reference is taken). Never blocks on delivery. Returns 0, RT_EAGAIN when the
 * buffer is full (nothing queued: the publisher may retry) or RT_ECLOSED. An event not yet accepted
 * (seq 0) is accepted here with the broadcaster's own sequence.
 */
int rt_broadcaster_broadcast(rt_broadcaster_t *b, rt_event_t *ev);

/** Delivers up to max queued events (0 = all) on the calling thread; returns how many. For wakeup mode. */
size_t rt_broadcaster_dispatch(rt_broadcaster_t *b, size_t max);

/** Fills stats (any thread). */
void rt_broadcaster_stats(rt_broadcaster_t *b, rt_broadcaster_stats_t *stats);

/**
 * Calls cb for the subscribed channels and patterns (as subscribed: `incidents`, `incidents.>`, `all`) with a
 * number of live subscriptions on each; a channel may be reported more than once (patterns once per subscription),
 * so the caller sums by name. For monitoring: it holds b's lock for one pass over the index, delaying this
 * broadcaster's deliveries meanwhile, and cb must not call b. Any thread.
 */
void rt_broadcaster_foreach_channel(rt_broadcaster_t *b, void (*cb)(const char *channel, size_t len, size_t n, void *ctx),
                                    void *ctx);

/** The user pointer of a subscription (NULL until set). */
void *rt_subscription_data(const rt_subscription_t *sub);
void rt_subscription_set_data(rt_subscription_t *sub, void *data);
/** The client a subscription belongs to. */
rt_client_t *rt_subscription_client(const rt_subscription_t *sub);
/** True when sub's channels and filter accept ev (history replay uses this to pick events). */
bool rt_subscription_matches(const rt_subscription_t *sub, const rt_event_t *ev);

/**
 * Stops accepting events, delivers every event already accepted, calls each remaining client's close op,
 * stops the delivery thread and frees the broadcaster and its subscriptions. Not from inside send.
 */
void rt_broadcaster_close(rt_broadcaster_t *b);

#endif
