/*
 * Workers: one thread per worker, each with its own libuv loop, SO_REUSEPORT listener, connections and
 * broadcaster (the subscription index of its own connections). Events reach a worker through its
 * broadcaster's queue; the broadcaster wakes the loop with a uv_async_t. Other work for a worker's
 * connections is handed over as tasks (rt__worker_run_soon), run on its thread at its next loop turn.
 */
#ifndef RT_NET_WORKER_H
#define RT_NET_WORKER_H

#include "util/histogram.h"
#include <stdbool.h>
#include <stdint.h>
#include "realtime/broadcaster.h"
#include "net/conn.h"

typedef struct st_rt_server_t rt_server_t;

/**
 * A callback to run on a worker's thread, embedded in the object it works on. Zero it, then set cb. Queued at
 * most once: queueing a task that is already queued does nothing, and it is off the queue when cb runs.
 */
typedef struct st_rt_worker_task_t {
    rt_list_t link; /* in the worker's queue while queued (guarded by the worker's tasks lock) */
    void (*cb)(struct st_rt_worker_task_t *task);
} rt_worker_task_t;

/** Creates worker number index of server s, with its listener bound; NULL with a message on failure. */
rt_worker_t *rt__worker_new(rt_server_t *s, unsigned index, char *err, size_t errlen);
/** Starts the worker's thread. */
int rt__worker_start(rt_worker_t *w);
/** Asks the worker to shut down gracefully (any thread). */
void rt__worker_stop(rt_worker_t *w);
/** Waits for the worker thread to end (its counters stay readable until rt__worker_free). */
void rt__worker_join(rt_worker_t *w);
/** Frees a joined worker. */
void rt__worker_free(rt_worker_t *w);
/** The worker's broadcaster (its subscription index). */
rt_broadcaster_t *rt__worker_broadcaster(rt_worker_t *w);
/** The server of a worker. */
rt_server_t *rt__worker_server(rt_worker_t *w);
/** Number of events waiting in the worker's queue. */
size_t rt__worker_queued(rt_worker_t *w);
/** Events delivered to the worker's connections so far (any thread). */
uint64_t rt__worker_delivered(rt_worker_t *w);
/** Adds the worker's publish-to-write times (realtime_publish_to_write_seconds) to sum. Any thread. */
void rt__worker_publish_to_write(rt_worker_t *w, rt_histogram_sum_t *sum);
/** True when the worker's queue has no room for another event. */
bool rt__worker_queue_full(rt_worker_t *w);
/** Queues task to run on w's thread soon (any thread) and wakes w; nothing when task is already queued. */
void rt__worker_run_soon(rt_worker_t *w, rt_worker_task_t *task);
/**
 * Takes task off w's queue if it is on it. On w's thread (only there can the task not be running meanwhile):
 * call it before freeing a task that may be queued.
 */
void rt__worker_cancel(rt_worker_t *w, rt_worker_task_t *task);
/**
 * Keeps w's loop from ending at shutdown until the matching rt__worker_release: for work started on w whose
 * completion comes back to w as a task (a publish waiting for Redis). Connections may still be closed meanwhile,
 * the shutdown deadline included; only the loop (and so its task queue) stays. On w's thread.
 */
void rt__worker_hold(rt_worker_t *w);
/** Ends one rt__worker_hold. On w's thread. */
void rt__worker_release(rt_worker_t *w);
/**
 * Announces a gap to every connection of w (their handler's on_gap): at its next loop turn w first delivers every
 * event queued so far, then tells its connections. Returns a ticket for rt__worker_wait_gap. Any thread but w's.
 */
uint64_t rt__worker_post_gap(rt_worker_t *w, rt_gap_t reason);
/** Waits until w ran the announcement of ticket, or until deadline (rt_clock_mono_ms); false when it did not. */
bool rt__worker_wait_gap(rt_worker_t *w, uint64_t ticket, int64_t deadline_ms);

#endif
