/*
 * Publish jobs: the events of one request, published one after the other (each after the previous one completed,
 * so they get consecutive seqs in order, as the blocking path gave them), without recursion when the broker
 * completes at once.
 */
#include <stdlib.h>
#include "realtime/error.h"
#include "server/publish.h"
#include "server/server.h"
#include "util/mem.h"

rt_publish_job_t *rt__publish_job_new(rt_conn_t *c, size_t n, void (*cb)(rt_publish_job_t *job), void *data)
{
    rt_publish_job_t *job = rt_mem_calloc(1, sizeof(*job));
    job->server = rt_conn_server(c);
    job->worker = c->worker;
    job->n = n;
    job->evs = rt_mem_calloc(n != 0 ? n : 1, sizeof(*job->evs));
    job->status = rt_mem_calloc(n != 0 ? n : 1, sizeof(*job->status));
    job->result = rt_mem_calloc(n != 0 ? n : 1, sizeof(*job->result));
    job->cb = cb;
    job->data = data;
    return job;
}

static void finish(rt_publish_job_t *job)
{
    job->cb(job);
    for (size_t i = 0; i < job->n; i++) {
        rt_event_unref(job->evs[i]);
        rt_event_unref(job->result[i]);
    }
    free(job->evs);
    free(job->status);
    free(job->result);
    free(job);
}

static void step(rt_publish_job_t *job);

static void on_published(void *ctx, int status, rt_event_t *existing)
{
    rt_publish_job_t *job = ctx;
    size_t i = job->_next++;
    job->status[i] = status;
    job->result[i] = status == 0 ? rt_event_ref(job->evs[i]) : existing;
    if (status != 0 && status != RT_EEXIST)
        job->_failed = true;
    job->_pending = false;
    if (!job->_stepping)
        step(job);
}

static void step(rt_publish_job_t *job)
{
    job->_stepping = true;
    while (job->_next < job->n) {
        if (job->_failed && job->stop_on_error) {
            job->status[job->_next++] = RT_EAGAIN;
            continue;
        }
        job->_pending = true;
        rt_server_publish_async(job->server, job->worker, job->evs[job->_next], on_published, job);
        if (job->_pending) {
            job->_stepping = false; /* on_published goes on */
            return;
        }
    }
    job->_stepping = false;
    finish(job);
}

void rt__publish_job_start(rt_publish_job_t *job)
{
    step(job);
}
