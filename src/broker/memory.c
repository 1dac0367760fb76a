/*
 * The memory broker: the server's history is the sequencer, so a publish is one history append whose on_accept
 * hands the event to the workers. This is the single-node path and the default; it allocates nothing itself.
 * rt__broker_deliver and rt__broker_gap, the hand-over every broker uses, live here too.
 */
#include <stdlib.h>
#include "realtime/error.h"
#include "broker/broker.h"
#include "net/worker.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/mem.h"

#define LOG_PREFIX "broker:memory"
#include "util/log.h"

void rt__broker_deliver(rt_event_t *ev, void *ctx)
{
    rt_server_t *s = ctx;
    for (unsigned i = 0; i < s->n_workers; i++) {
        if (rt_broadcaster_broadcast(rt__worker_broadcaster(s->workers[i]), ev) != 0) {
            atomic_fetch_add_explicit(&s->stats.dropped, 1, memory_order_relaxed);
            RT_LOG_WARN("worker %u queue full: event %s not delivered there", i, ev->id);
        }
    }
}

#define GAP_WAIT_MS 1000

void rt__broker_gap(rt_server_t *s, rt_gap_t reason)
{
    atomic_fetch_add_explicit(&s->stats.gaps[reason], 1, memory_order_relaxed);
    if (atomic_load(&s->stopping))
        return;
    RT_LOG_WARN("events lost (%s): live clients are told to refetch", rt_gap_names[reason]);
    uint64_t tickets[s->n_workers];
    for (unsigned i = 0; i < s->n_workers; i++)
        tickets[i] = rt__worker_post_gap(s->workers[i], reason);
    int64_t deadline = rt_clock_mono_ms() + GAP_WAIT_MS;
    for (unsigned i = 0; i < s->n_workers; i++)
        if (!rt__worker_wait_gap(s->workers[i], tickets[i], deadline))
            RT_LOG_WARN("worker %u did not announce the gap within %d ms", i, GAP_WAIT_MS);
}

static int memory_publish(rt_broker_t *b, rt_event_t *ev, rt_event_t **existing)
{
    rt_server_t *s = b->server;
    /* Refuse up front while any worker's queue is nearly full, so a publish is delivered everywhere or nowhere. */
    for (unsigned i = 0; i < s->n_workers; i++)
        if (rt__worker_queue_full(s->workers[i]))
            return RT_EAGAIN;
    int r = rt_history_append(s->history, ev, existing, rt__broker_deliver, s);
    if (r == 0)
        atomic_fetch_add_explicit(&s->stats.published, 1, memory_order_relaxed);
    return r;
}

static int memory_start(rt_broker_t *b)
{
    return 0;
}

static void memory_stop(rt_broker_t *b)
{
}

static bool memory_ready(rt_broker_t *b)
{
    return true;
}

static void memory_free(rt_broker_t *b)
{
    free(b);
}

static const rt_broker_ops_t memory_ops = {
    .name = "memory",
    .start = memory_start,
    .stop = memory_stop,
    .publish = memory_publish,
    .ready = memory_ready,
    .free = memory_free,
};

rt_broker_t *rt__broker_memory_new(rt_server_t *s)
{
    rt_broker_t *b = rt_mem_alloc(sizeof(*b));
    *b = (rt_broker_t){.ops = &memory_ops, .server = s};
    return b;
}
