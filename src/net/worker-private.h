/* The worker's fields, shared by worker.c and conn.c only (and unit tests that turn a worker's loop by hand). */
#ifndef RT_NET_WORKER_PRIVATE_H
#define RT_NET_WORKER_PRIVATE_H

#include <pthread.h>
#include <uv.h>
#include "net/worker.h"
#include "util/histogram.h"

struct st_rt_worker_t {
    rt_server_t *server;
    unsigned index;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t events_async; /* the broadcaster queued events */
    uv_async_t stop_async;
    uv_async_t tasks_async; /* rt__worker_run_soon queued tasks */
    pthread_mutex_t tasks_lock;
    rt_list_t tasks; /* rt_worker_task_t, oldest first; guarded by tasks_lock */
    bool tasks_closed; /* under tasks_lock: tasks_async is closed (the loop is ending); nothing runs any more */
    /* Gap announcements (rt__worker_post_gap), under tasks_lock: asked and done tickets, the latest reason. */
    rt_worker_task_t gap_task;
    pthread_cond_t gap_cond;
    uint64_t gap_asked, gap_done;
    rt_gap_t gap_reason;
    uv_timer_t tick;
    uv_check_t flush_check;  /* flushes queued output once per loop turn, after I/O callbacks */
    rt_broadcaster_t *broadcaster;
    rt_list_t conns;
    rt_list_t pending_flush;
    /* Connections closed inside a read callback, uv_close'd after the poll phase (see rt_conn_close). */
    rt_list_t pending_close;
    bool in_read;
    pthread_t thread;
    bool stopping;
    unsigned holds; /* rt__worker_hold: outstanding work whose completion is a task on this loop */
    int64_t shutdown_deadline;
    size_t queue_cap;
    int64_t accept_warned_ms;  /* when a failed accept was last logged (rate-limited: at the descriptor cap, many) */
    uint64_t accept_failures;  /* since then */
    _Atomic uint64_t delivered; /* written only by this worker's thread (see rt_conn_count_delivered) */
    rt_histogram_t publish_to_write; /* accept to last byte written, per delivery (conn.c); this thread writes it */
    uint32_t turn_us;                /* the clock when this loop turn's writes started (conn.c) */
    bool flushing;                   /* inside rt__conn_flush_pending: turn_us is current */
    uint32_t writes_seen;            /* writes, for sampling publish_to_write (conn.c) */
    /* Reads land here and are parsed in place; only an incomplete tail is copied to the connection. */
    char rbuf[65536];
};

/** Sets up a connection accepted on the worker's listener (conn.c). */
void rt__conn_accept(rt_worker_t *w);
/** Releases an idle connection's output ring (conn.c; called from the worker's tick). */
void rt__conn_trim(rt_conn_t *c);
/** Writes out every connection's queued output (conn.c). */
void rt__conn_flush_pending(rt_worker_t *w);

#endif
