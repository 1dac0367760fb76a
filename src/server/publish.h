/*
 * Publishing from request handlers without blocking the worker: a job publishes its events in order through
 * rt_server_publish_async and calls back once when they are all done, on the worker it was made on. The handler
 * parks its HTTP request (rt_http_park) meanwhile and answers from the callback, if the connection is still there.
 */
#ifndef RT_SERVER_PUBLISH_H
#define RT_SERVER_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include "realtime/event.h"
#include "net/conn.h"

typedef struct st_rt_server_t rt_server_t;
typedef struct st_rt_publish_job_t rt_publish_job_t;

struct st_rt_publish_job_t {
    rt_server_t *server;
    rt_worker_t *worker;
    size_t n;
    rt_event_t **evs;     /**< the events to publish, in order: filled by the caller, released with the job */
    int *status;          /**< per event: 0, RT_EEXIST, or why it was not published (RT_EAGAIN; also for those a
                               failure before them left out, with stop_on_error) */
    rt_event_t **result;  /**< per published event: a reference to it (accepted) or to the original (RT_EEXIST) */
    bool stop_on_error;   /**< publish nothing after a failure (a batch that says what went out) */
    void (*cb)(rt_publish_job_t *job);
    void *data;           /**< the caller's */
    size_t _next;
    bool _stepping, _pending, _failed;
};

/** A job for n events made on c's worker; cb(job) will run there. The caller fills evs[0..n) (references it gives). */
rt_publish_job_t *rt__publish_job_new(rt_conn_t *c, size_t n, void (*cb)(rt_publish_job_t *job), void *data);
/**
 * Publishes the events in order and then calls cb(job) once (maybe before this returns, with the memory broker);
 * the job and everything in it are freed when cb returns. Worker thread.
 */
void rt__publish_job_start(rt_publish_job_t *job);

#endif
