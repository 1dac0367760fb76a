#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "realtime/error.h"
#include "net/worker-private.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/mem.h"

#define LOG_PREFIX "worker"
#include "util/log.h"

/* Events dispatched (and tasks run) per loop turn before yielding to I/O, so a burst can't starve reads and writes. */
#define DISPATCH_BATCH 64

static void on_events(uv_async_t *a)
{
    rt_worker_t *w = a->data;
    rt_broadcaster_dispatch(w->broadcaster, DISPATCH_BATCH);
}

static void wakeup(void *ctx)
{
    rt_worker_t *w = ctx;
    uv_async_send(&w->events_async);
}

/* One task at a time, without the lock while it runs: a task may queue or cancel others. */
static void on_tasks(uv_async_t *a)
{
    rt_worker_t *w = a->data;
    for (unsigned i = 0; i < DISPATCH_BATCH; i++) {
        rt_worker_task_t *t = NULL;
        pthread_mutex_lock(&w->tasks_lock);
        if (!rt_list_empty(&w->tasks)) {
            t = RT_STRUCT_FROM_MEMBER(rt_worker_task_t, link, w->tasks.next);
            rt_list_unlink(&t->link);
        }
        pthread_mutex_unlock(&w->tasks_lock);
        if (t == NULL)
            return;
        t->cb(t);
    }
    uv_async_send(&w->tasks_async); /* more may be left: run them after this turn's I/O */
}

void rt__worker_run_soon(rt_worker_t *w, rt_worker_task_t *task)
{
    pthread_mutex_lock(&w->tasks_lock);
    bool queued = rt_list_linked(&task->link);
    if (!queued)
        rt_list_insert_tail(&w->tasks, &task->link);
    bool closed = w->tasks_closed;
    pthread_mutex_unlock(&w->tasks_lock);
    if (!queued && !closed)
        uv_async_send(&w->tasks_async);
}

static void on_gap(rt_worker_task_t *task)
{
    rt_worker_t *w = RT_STRUCT_FROM_MEMBER(rt_worker_t, gap_task, task);
    pthread_mutex_lock(&w->tasks_lock);
    uint64_t ticket = w->gap_asked;
    rt_gap_t reason = w->gap_reason;
    pthread_mutex_unlock(&w->tasks_lock);
    /* What came before the gap goes out first: the client sees its events, then the reset, then what follows. */
    rt_broadcaster_dispatch(w->broadcaster, 0);
    rt_list_t *l, *tmp;
    rt_list_foreach_safe(l, tmp, &w->conns)
    {
        rt_conn_t *c = RT_STRUCT_FROM_MEMBER(rt_conn_t, link, l);
        if (!c->closing && c->handler->on_gap != NULL)
            c->handler->on_gap(c, reason);
    }
    rt__conn_flush_pending(w);
    pthread_mutex_lock(&w->tasks_lock);
    w->gap_done = ticket;
    pthread_cond_broadcast(&w->gap_cond);
    pthread_mutex_unlock(&w->tasks_lock);
}

uint64_t rt__worker_post_gap(rt_worker_t *w, rt_gap_t reason)
{
    pthread_mutex_lock(&w->tasks_lock);
    uint64_t ticket = ++w->gap_asked;
    w->gap_reason = reason;
    pthread_mutex_unlock(&w->tasks_lock);
    w->gap_task.cb = on_gap;
    rt__worker_run_soon(w, &w->gap_task);
    return ticket;
}

bool rt__worker_wait_gap(rt_worker_t *w, uint64_t ticket, int64_t deadline_ms)
{
    pthread_mutex_lock(&w->tasks_lock);
    while (w->gap_done < ticket && !w->tasks_closed) {
        int64_t left = deadline_ms - rt_clock_mono_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&w->gap_cond, &w->tasks_lock, &ts);
    }
    bool done = w->gap_done >= ticket;
    pthread_mutex_unlock(&w->tasks_lock);
    return done;
}

void rt__worker_cancel(rt_worker_t *w, rt_worker_task_t *task)
{
    pthread_mutex_lock(&w->tasks_lock);
    if (rt_list_linked(&task->link))
        rt_list_unlink(&task->link);
    pthread_mutex_unlock(&w->tasks_lock);
}

static void on_flush_check(uv_check_t *h)
{
    rt__conn_flush_pending(h->data);
}

/* How often a failing accept is logged. */
#define ACCEPT_WARN_INTERVAL_MS 10000

static void on_connection(uv_stream_t *listener, int status)
{
    rt_worker_t *w = listener->data;
    if (status < 0) {
        /* At the open-file limit libuv accepts and closes what waits (its reserved-descriptor trick), so the loop
         * does not spin; say so once in a while, not once per refused client. */
        int64_t now = (int64_t)uv_now(&w->loop);
        w->accept_failures++;
        if (w->accept_warned_ms == 0 || now - w->accept_warned_ms >= ACCEPT_WARN_INTERVAL_MS) {
            RT_LOG_WARN("accept: %s (%llu times in the last %d s%s)", uv_strerror(status), (unsigned long long)w->accept_failures,
                        ACCEPT_WARN_INTERVAL_MS / 1000,
                        status == UV_EMFILE || status == UV_ENFILE ? "; at the open-file limit: connections over it are closed at once" : "");
            w->accept_warned_ms = now;
            w->accept_failures = 0;
        }
        return;
    }
    rt__conn_accept(w);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Ends the loop once every connection is gone (or the shutdown deadline passed). */
static void finish_if_drained(rt_worker_t *w, bool force)
{
    if (force) {
        rt_list_t *l, *tmp;
        rt_list_foreach_safe(l, tmp, &w->conns) rt_conn_close(RT_STRUCT_FROM_MEMBER(rt_conn_t, link, l));
    }
    if (!rt_list_empty(&w->conns) || w->holds != 0)
        return;
    close_handle((uv_handle_t *)&w->tick);
    close_handle((uv_handle_t *)&w->events_async);
    close_handle((uv_handle_t *)&w->stop_async);
    pthread_mutex_lock(&w->tasks_lock);
    w->tasks_closed = true;
    pthread_cond_broadcast(&w->gap_cond);
    pthread_mutex_unlock(&w->tasks_lock);
    close_handle((uv_handle_t *)&w->tasks_async);
    close_handle((uv_handle_t *)&w->flush_check);
}

static void on_tick(uv_timer_t *t)
{
    rt_worker_t *w = t->data;
    int64_t now = (int64_t)uv_now(&w->loop);
    rt_list_t *l, *tmp;
    rt_list_foreach_safe(l, tmp, &w->conns)
    {
        rt_conn_t *c = RT_STRUCT_FROM_MEMBER(rt_conn_t, link, l);
        if (c->handler->on_tick != NULL)
            c->handler->on_tick(c, now);
        rt__conn_trim(c);
    }
    /* Pings and timeout closes queued above go out now, not at the next wake-up. */
    rt__conn_flush_pending(w);
    if (w->stopping)
        finish_if_drained(w, now >= w->shutdown_deadline);
}

static void on_stop(uv_async_t *a)
{
    rt_worker_t *w = a->data;
    if (w->stopping)
        return;
    w->stopping = true;
    w->shutdown_deadline = (int64_t)uv_now(&w->loop) + (int64_t)(w->server->config->shutdown_timeout_s * 1000);
    close_handle((uv_handle_t *)&w->listener);
    /* Deliver what was accepted before telling clients goodbye. */
    rt_broadcaster_dispatch(w->broadcaster, 0);
    rt_list_t *l, *tmp;
    rt_list_foreach_safe(l, tmp, &w->conns)
    {
        rt_conn_t *c = RT_STRUCT_FROM_MEMBER(rt_conn_t, link, l);
        if (c->handler->on_shutdown != NULL)
            c->handler->on_shutdown(c);
        else
            rt_conn_close_after_flush(c);
    }
    rt__conn_flush_pending(w);
    uv_timer_set_repeat(&w->tick, 50); /* notice a drained worker quickly */
    uv_timer_again(&w->tick);
}

/* A bound (not yet listening) socket for the configured address; -1 with a message on failure. */
static int bind_socket(const rt_config_t *cfg, bool reuseport, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int r;
    if (strchr(cfg->host, ':') != NULL)
        r = uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&ss);
    else
        r = uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&ss);
    if (r != 0) {
        snprintf(err, errlen, "listen: bad address %s", cfg->host);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, (struct sockaddr *)&ss, ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) != 0) {
        snprintf(err, errlen, "listen %s:%d: %s", cfg->host, cfg->port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/*
 * A listening socket of our own, with SO_REUSEPORT, so every worker accepts on the same port. SO_REUSEPORT
 * would also let a second server (or a leftover one) bind the same port and silently take half the
 * connections, so the first worker first checks with a plain bind that nobody else holds it.
 */
static int open_listener(rt_worker_t *w, char *err, size_t errlen)
{
    const rt_config_t *cfg = w->server->config;
    if (w->index == 0) {
        int probe = bind_socket(cfg, false, err, errlen);
        if (probe < 0)
            return -1;
        close(probe);
    }
    int fd = bind_socket(cfg, true, err, errlen);
    if (fd < 0)
        return -1;
    int r;
    if (listen(fd, 4096) != 0) {
        snprintf(err, errlen, "listen %s:%d: %s", cfg->host, cfg->port, strerror(errno));
        close(fd);
        return -1;
    }
    if ((r = uv_tcp_open(&w->listener, fd)) != 0 || (r = uv_listen((uv_stream_t *)&w->listener, 4096, on_connection)) != 0) {
        snprintf(err, errlen, "listen: %s", uv_strerror(r));
        return -1;
    }
    return 0;
}

rt_worker_t *rt__worker_new(rt_server_t *s, unsigned index, char *err, size_t errlen)
{
    rt_worker_t *w = rt_mem_calloc(1, sizeof(*w));
    w->server = s;
    w->index = index;
    rt_list_init(&w->conns);
    rt_list_init(&w->pending_flush);
    rt_list_init(&w->pending_close);
    uv_loop_init(&w->loop);
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    if (open_listener(w, err, errlen) != 0) {
        uv_close((uv_handle_t *)&w->listener, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        free(w);
        return NULL;
    }
    /* The queue between the publish path and this loop holds a full history's worth of events. */
    w->queue_cap = s->config->history_size > 16384 ? s->config->history_size : 16384;
    rt_broadcaster_config_t bc = {.buffer = w->queue_cap, .wakeup = wakeup, .wakeup_ctx = w};
    w->broadcaster = rt_broadcaster_new(&bc);
    uv_async_init(&w->loop, &w->events_async, on_events);
    w->events_async.data = w;
    uv_async_init(&w->loop, &w->stop_async, on_stop);
    w->stop_async.data = w;
    pthread_mutex_init(&w->tasks_lock, NULL);
    pthread_cond_init(&w->gap_cond, NULL);
    rt_list_init(&w->tasks);
    uv_async_init(&w->loop, &w->tasks_async, on_tasks);
    w->tasks_async.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_check_init(&w->loop, &w->flush_check);
    w->flush_check.data = w;
    return w;
}

static void *worker_main(void *arg)
{
    rt_worker_t *w = arg;
    uv_timer_start(&w->tick, on_tick, 1000, 1000);
    uv_check_start(&w->flush_check, on_flush_check);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

int rt__worker_start(rt_worker_t *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : RT_ENOMEM;
}

void rt__worker_stop(rt_worker_t *w)
{
    uv_async_send(&w->stop_async);
}

void rt__worker_join(rt_worker_t *w)
{
    pthread_join(w->thread, NULL);
    rt_broadcaster_close(w->broadcaster);
    uv_loop_close(&w->loop);
}

void rt__worker_free(rt_worker_t *w)
{
    pthread_mutex_destroy(&w->tasks_lock);
    pthread_cond_destroy(&w->gap_cond);
    free(w);
}

rt_broadcaster_t *rt__worker_broadcaster(rt_worker_t *w)
{
    return w->broadcaster;
}

rt_server_t *rt__worker_server(rt_worker_t *w)
{
    return w->server;
}

size_t rt__worker_queued(rt_worker_t *w)
{
    rt_broadcaster_stats_t st;
    rt_broadcaster_stats(w->broadcaster, &st);
    return st.queued;
}

bool rt__worker_queue_full(rt_worker_t *w)
{
    return rt__worker_queued(w) + 1 >= w->queue_cap;
}

void rt__worker_hold(rt_worker_t *w)
{
    w->holds++;
}

void rt__worker_release(rt_worker_t *w)
{
    assert(w->holds != 0);
    w->holds--;
}

void rt__worker_publish_to_write(rt_worker_t *w, rt_histogram_sum_t *sum)
{
    rt_histogram_sum(&w->publish_to_write, sum);
}

uint64_t rt__worker_delivered(rt_worker_t *w)
{
    return atomic_load_explicit(&w->delivered, memory_order_relaxed);
}
