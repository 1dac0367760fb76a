/*
 * Brokers: where published events are sequenced and how they reach this node's history and workers.
 *
 * Every publish goes through rt_server_publish to the server's broker. Whatever the broker, an event reaches
 * the local history (seq, offsets) and then every worker's broadcaster, in seq order, through
 * rt__broker_deliver called under the history lock: local history stays the source for resume, replay and
 * Centrifuge recovery on every node.
 *
 *  - memory: the local history is the sequencer; a publish appends and hands over in the caller's thread.
 *  - redis: Redis is the sequencer and the durable stream (src/broker/redis.c, docs/redis.md); each node
 *    replicates it into its history from one subscriber thread.
 *
 * The boundary follows nchan's nchan_store_t: a table of operations chosen once from the configuration.
 */
#ifndef RT_BROKER_BROKER_H
#define RT_BROKER_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include "realtime/event.h"
#include "net/conn.h"

typedef struct st_rt_server_t rt_server_t;
typedef struct st_rt_broker_t rt_broker_t;
typedef struct st_rt_worker_t rt_worker_t;

/**
 * Completion of an asynchronous publish, on the worker given to publish_async: status 0 (ev is accepted: seq,
 * offsets), RT_EEXIST with existing (a reference the callee now owns: the original, accepted event) or RT_EAGAIN
 * (nothing was published; existing is NULL). Called exactly once, maybe before publish_async returns.
 */
typedef void (*rt_broker_publish_cb)(void *ctx, int status, rt_event_t *existing);

typedef struct st_rt_broker_ops_t {
    const char *name;
    /** Starts background work (threads, connections); called once the workers run. 0 or a negative RT_E*. */
    int (*start)(rt_broker_t *b);
    /** Stops background work and waits for it; publish fails with RT_EAGAIN afterwards. Main thread. */
    void (*stop)(rt_broker_t *b);
    /**
     * Publishes ev (created, not accepted): on success ev is accepted (seq, offsets) and 0 is returned. RT_EEXIST
     * with *existing (a new reference to the original, accepted event) when its id was published within history;
     * RT_EAGAIN when the event cannot be taken now (queues full, broker unreachable): nothing was published.
     * Any thread (workers call it from their loops).
     */
    int (*publish)(rt_broker_t *b, rt_event_t *ev, rt_event_t **existing);
    /**
     * Publishes ev like publish, without blocking the caller: cb(ctx, …) runs later on worker w's thread, once the
     * event is sequenced and this node has applied it (or the broker gave up). The broker holds a reference to ev
     * until then and keeps w's loop running (rt__worker_hold) while the publish is outstanding, so cb always runs.
     * On w's thread. NULL when the broker has none: rt_server_publish_async then calls publish and cb at once.
     */
    void (*publish_async)(rt_broker_t *b, rt_worker_t *w, rt_event_t *ev, rt_broker_publish_cb cb, void *ctx);
    /** True while publishing can succeed and live events flow (for /readyz). Any thread. */
    bool (*ready)(rt_broker_t *b);
    /** Frees the broker (after stop, once no thread can publish). */
    void (*free)(rt_broker_t *b);
} rt_broker_ops_t;

struct st_rt_broker_t {
    const rt_broker_ops_t *ops;
    rt_server_t *server;
};

/** The embedded broker: the server's history sequences events. Never fails. */
rt_broker_t *rt__broker_memory_new(rt_server_t *s);
/** The Redis broker for s->config (redis_url, history_size, history_ttl_s, max_event_bytes); NULL with a message. */
rt_broker_t *rt__broker_redis_new(rt_server_t *s, char *err, size_t errlen);

/**
 * Hands an accepted event to every worker of the server `ctx` (an rt_server_t *); the on_accept callback of the
 * history, so it runs under the history lock and workers receive events in seq order. A worker whose queue is
 * full misses the event (counted in stats.dropped, logged).
 */
void rt__broker_deliver(rt_event_t *ev, void *ctx);

/**
 * Events were lost to this node and cannot be filled: counts the gap and tells every live client of every worker
 * (rt__worker_post_gap), each after the events it was already given, and waits (up to about a second) until the
 * workers did, so what is delivered next comes after the announcement. From a broker's thread, never a worker's.
 */
void rt__broker_gap(rt_server_t *s, rt_gap_t reason);

#endif
