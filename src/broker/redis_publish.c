/*
 * The redis broker's publisher loop: publishes never block a worker.
 *
 * A worker hands a publish (the event, its JSON, the caller's callback) to this loop, one thread with its own libuv
 * loop and one hiredis async connection, through a locked queue and a uv_async_t. The loop pipelines one EVALSHA of
 * the publish script per event on that connection, so a publish costs its worker no wait at all and the rate is
 * bound by Redis, not by the round trip (Redis runs the scripts in arrival order, so seqs follow that order). The
 * answer (seq and offsets, or the original seq of a repeated id) then waits, bounded by APPLY_WAIT_MS, until this
 * node's replica (the subscriber thread, redis.c) has applied that seq, which it says through
 * rt__redis_pub_applied; then the publish goes back to its worker as a task and the callback runs there. Waiting for
 * the replica keeps read-your-writes: a client that was answered finds the event in this node's history.
 *
 * This file is the broker's only binding to libuv (hiredis' libuv adapter), as src/net is the workers'.
 *
 * With sentinels the master's address is the subscriber thread's to find (rt__redis_master); a connection opened for
 * an older one, or answered READONLY (the master was demoted), is dropped and what it carried is sent again once.
 *
 * Failures: no connection, a write error, no answer within COMMAND_TIMEOUT_MS or a connect slower than
 * CONNECT_TIMEOUT_MS drop the connection; what was in flight on it is sent once more on a fresh one (the script is
 * idempotent by event id, so a publish that did run is answered with its seq), then completes with RT_EAGAIN (503).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>
#include "realtime/error.h"
#include "broker/redis-broker.h"
#include "net/worker.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/list.h"
#include "util/mem.h"

#define LOG_PREFIX "broker:redis"
#include "util/log.h"

#define CONNECT_TIMEOUT_MS 500
#define COMMAND_TIMEOUT_MS 1000
#define APPLY_WAIT_MS 1000
#define TICK_MS 50
#define EXTRA_ARGS 7

typedef struct st_pub_op_t {
    rt_worker_task_t task; /* completion on the worker */
    rt_list_t link;        /* in p->queue (under p->lock), then p->sent, p->retry or p->waiting (loop thread) */
    rt__redis_pub_t *pub;
    rt_worker_t *worker; /* NULL: a blocking publish (rt__redis_publish) waiting on p->done_cond */
    rt_event_t *ev;
    rt_broker_publish_cb cb;
    void *ctx;
    char *json;
    size_t json_len;
    char now[24], flags[16];
    int attempts;
    bool eval; /* NOSCRIPT seen: send the script's text */
    bool done; /* a blocking publish's result is in (under p->lock) */
    int64_t sent_ms, deadline_ms;
    int status;
    rt_event_t *existing;
    bool dup;
    uint64_t seq;
    char epoch[RT__REDIS_EPOCH_MAX + 1];
    uint64_t offsets[RT_EVENT_MAX_CHANNELS];
} pub_op_t;

struct st_rt__redis_pub_t {
    rt__redis_broker_t *r;
    uv_loop_t loop;
    uv_async_t wake; /* submissions, the replica moved, stop */
    uv_timer_t tick; /* timeouts; runs while something is in flight, waiting or connecting */
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t done_cond; /* blocking publishes */
    rt_list_t queue;          /* submitted, not taken by the loop yet (under lock) */
    bool stop_requested;      /* under lock: no more submissions */
    atomic_uint waiting_n;    /* ops in waiting, so the replica wakes the loop only when someone waits */
    /* Loop thread only. */
    redisAsyncContext *ac;
    unsigned ac_gen; /* the master generation (r->master_gen) ac was opened for */
    bool connected, stopped;
    int64_t connect_ms;
    rt_list_t sent;    /* in flight on ac, oldest first */
    rt_list_t retry;   /* their connection failed: to send again on a new one */
    rt_list_t waiting; /* answered, waiting until this node applied their seq */
};

static void on_done(rt_worker_task_t *task)
{
    pub_op_t *op = RT_STRUCT_FROM_MEMBER(pub_op_t, task, task);
    rt_worker_t *w = op->worker;
    op->cb(op->ctx, op->status, op->existing);
    rt_event_unref(op->ev);
    free(op->json);
    free(op);
    rt__worker_release(w);
}

/* Hands the result to the publisher: its worker's task queue, or the blocked thread. Any thread. */
static void finish(pub_op_t *op, int status)
{
    rt__redis_pub_t *p = op->pub;
    op->status = status;
    if (op->worker != NULL) {
        op->task.cb = on_done;
        rt__worker_run_soon(op->worker, &op->task);
        return;
    }
    pthread_mutex_lock(&p->lock);
    op->done = true;
    pthread_cond_broadcast(&p->done_cond);
    pthread_mutex_unlock(&p->lock);
}

/* An answered publish: ev takes the seq and offsets, or the original event is looked up (as the blocking path did). */
static void finish_answered(pub_op_t *op)
{
    rt_event_t *ev = op->ev;
    if (!op->dup) {
        rt_event_accept(ev, op->seq, op->offsets);
        finish(op, 0);
        return;
    }
    rt_event_t *orig = rt_history_get(op->pub->r->super.server->history, ev->id, ev->id_len);
    if (orig == NULL || orig->seq != op->seq) {
        /* Kept by Redis but no longer (or not yet) here: answer with the original seq all the same. */
        rt_event_unref(orig);
        rt_event_accept(ev, op->seq, NULL);
        orig = rt_event_ref(ev);
    }
    op->existing = orig;
    finish(op, RT_EEXIST);
}

static void arm_tick(rt__redis_pub_t *p);

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply *rep = reply;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        RT_LOG_WARN("publish connection: %s: %s", (const char *)privdata, rep->str);
        redisAsyncDisconnect(ac); /* what follows on it fails and is retried once */
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rt__redis_pub_t *p = ac->data;
    if (p->ac != ac)
        return;
    if (status != REDIS_OK) {
        RT_LOG_WARN("publish connection: %s", ac->errstr);
        p->ac = NULL; /* hiredis frees it */
        return;
    }
    p->connected = true;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rt__redis_pub_t *p = ac->data;
    if (status != REDIS_OK && !atomic_load(&p->r->stopping))
        RT_LOG_WARN("publish connection lost: %s", ac->errstr);
    if (p->ac == ac) {
        p->ac = NULL;
        p->connected = false;
    }
}

/* A new connection, with AUTH and SELECT queued before anything else; false when none can be made. */
static bool open_connection(rt__redis_pub_t *p)
{
    const rt__redis_url_t *u = &p->r->url; /* path, user, password and db never change; host and port may (sentinels) */
    char host[sizeof(u->host)];
    int port;
    rt__redis_master(p->r, host, sizeof(host), &port, &p->ac_gen);
    redisAsyncContext *ac = u->path[0] != '\0' ? redisAsyncConnectUnix(u->path) : redisAsyncConnect(host, port);
    if (ac == NULL || ac->err != 0) {
        RT_LOG_WARN("publish: cannot connect: %s", ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        return false;
    }
    ac->data = p;
    if (redisLibuvAttach(ac, &p->loop) != REDIS_OK) {
        RT_LOG_WARN("publish: cannot watch the connection");
        redisAsyncFree(ac);
        return false;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    p->ac = ac;
    p->connected = false;
    p->connect_ms = rt_clock_mono_ms();
    char db[16];
    snprintf(db, sizeof(db), "%d", u->db);
    if (u->password[0] != '\0') {
        const char *auth[] = {"AUTH", u->user, u->password}, *auth1[] = {"AUTH", u->password};
        redisAsyncCommandArgv(ac, on_setup_reply, "AUTH", u->user[0] != '\0' ? 3 : 2, u->user[0] != '\0' ? auth : auth1, NULL);
    }
    if (u->db > 0)
        redisAsyncCommandArgv(ac, on_setup_reply, "SELECT", 2, (const char *[]){"SELECT", db}, NULL);
    arm_tick(p);
    return true;
}

/* Drops the connection now: what is in flight on it comes back through on_reply with no reply. Loop thread. */
static void drop_connection(rt__redis_pub_t *p, const char *why)
{
    redisAsyncContext *ac = p->ac;
    if (ac == NULL)
        return;
    if (why != NULL)
        RT_LOG_WARN("publish connection: %s; dropping it", why);
    p->ac = NULL;
    p->connected = false;
    redisAsyncFree(ac);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

static void send_op(rt__redis_pub_t *p, pub_op_t *op)
{
    if (p->ac != NULL && p->ac_gen != atomic_load(&p->r->master_gen))
        drop_connection(p, "the sentinels name another master"); /* what was in flight there is retried */
    if (p->ac == NULL && !open_connection(p)) {
        finish(op, RT_EAGAIN);
        return;
    }
    rt__redis_broker_t *r = p->r;
    rt_event_t *ev = op->ev;
    const char *extra[EXTRA_ARGS + RT_EVENT_MAX_CHANNELS] = {ev->id, op->now, r->ttl_ms, r->size, op->flags, op->json, r->fanout};
    size_t lens[EXTRA_ARGS + RT_EVENT_MAX_CHANNELS] = {ev->id_len, strlen(op->now), strlen(r->ttl_ms), strlen(r->size),
                                                       strlen(op->flags), op->json_len, strlen(r->fanout)};
    for (size_t i = 0; i < ev->n_channels; i++) {
        extra[EXTRA_ARGS + i] = ev->channels[i];
        lens[EXTRA_ARGS + i] = strlen(ev->channels[i]);
    }
    const char *argv[RT__REDIS_SCRIPT_ARGS + EXTRA_ARGS + RT_EVENT_MAX_CHANNELS];
    size_t argl[RT__REDIS_SCRIPT_ARGS + EXTRA_ARGS + RT_EVENT_MAX_CHANNELS];
    rt__redis_script_buf_t buf;
    int n = rt__redis_script_args(r, rt__redis_publish_lua, op->eval ? NULL : r->sha, EXTRA_ARGS + (int)ev->n_channels, extra, lens,
                                  &buf, argv, argl);
    op->attempts++;
    if (redisAsyncCommandArgv(p->ac, on_reply, op, n, argv, argl) != REDIS_OK) {
        finish(op, RT_EAGAIN);
        return;
    }
    op->sent_ms = rt_clock_mono_ms();
    rt_list_insert_tail(&p->sent, &op->link);
    arm_tick(p);
}

/* True when this node has applied seq of epoch (or waiting is over). */
static bool applied(rt__redis_broker_t *r, const char *epoch, uint64_t seq)
{
    pthread_mutex_lock(&r->mutex);
    bool yes = strcmp(r->epoch, epoch) == 0 && r->applied >= seq;
    pthread_mutex_unlock(&r->mutex);
    return yes;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    pub_op_t *op = privdata;
    rt__redis_pub_t *p = op->pub;
    redisReply *rep = reply;
    rt_list_unlink(&op->link);
    if (rep == NULL) {
        /* The connection went (hiredis is freeing it): send again from the loop, on a new one, once. */
        if (op->attempts < 2 && !atomic_load(&p->r->stopping)) {
            rt_list_insert_tail(&p->retry, &op->link);
            uv_async_send(&p->wake);
        } else {
            RT_LOG_WARN("publish %s: %s", op->ev->id, ac->errstr[0] != '\0' ? ac->errstr : "connection closed");
            finish(op, RT_EAGAIN);
        }
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "READONLY", 8) == 0) {
        /* A replica now (a failover demoted it): nothing ran; send again on a connection to the current master. */
        if (op->attempts < 2 && !atomic_load(&p->r->stopping)) {
            rt_list_insert_tail(&p->retry, &op->link);
            uv_async_send(&p->wake);
        } else {
            RT_LOG_WARN("publish %s: %s", op->ev->id, rep->str);
            finish(op, RT_EAGAIN);
        }
        if (p->ac == ac)
            drop_connection(p, "READONLY (a replica)");
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 && !op->eval) {
        /* Redis restarted or flushed its script cache: EVAL sends the text and caches it again. */
        op->eval = true;
        op->attempts--;
        send_op(p, op);
        return;
    }
    if (!rt__redis_publish_reply_valid(rep, op->ev->n_channels)) {
        RT_LOG_ERR("publish %s: unexpected reply%s%s", op->ev->id, rep->type == REDIS_REPLY_ERROR ? ": " : "",
                   rep->type == REDIS_REPLY_ERROR ? rep->str : "");
        finish(op, RT_EAGAIN);
        return;
    }
    snprintf(op->epoch, sizeof(op->epoch), "%s", rep->element[0]->str);
    op->seq = (uint64_t)rep->element[1]->integer;
    op->dup = rep->element[2]->integer != 0;
    for (size_t i = 0; !op->dup && i < op->ev->n_channels; i++)
        op->offsets[i] = (uint64_t)rep->element[3 + i]->integer;
    if (!op->dup) {
        rt__redis_broker_t *r = p->r;
        pthread_mutex_lock(&r->mutex);
        if (strcmp(r->answered_epoch, op->epoch) != 0 || op->seq > r->answered) {
            snprintf(r->answered_epoch, sizeof(r->answered_epoch), "%s", op->epoch);
            snprintf(r->answered_id, sizeof(r->answered_id), "%.*s", (int)op->ev->id_len, op->ev->id);
            r->answered = op->seq;
        }
        pthread_mutex_unlock(&r->mutex);
    }
    if (applied(p->r, op->epoch, op->seq)) {
        finish_answered(op);
        return;
    }
    op->deadline_ms = rt_clock_mono_ms() + APPLY_WAIT_MS;
    rt_list_insert_tail(&p->waiting, &op->link);
    atomic_fetch_add(&p->waiting_n, 1);
    arm_tick(p);
}

/* Completes the waiting publishes this node has applied, or whose wait is over. */
static void check_waiting(rt__redis_pub_t *p, bool all)
{
    rt__redis_broker_t *r = p->r;
    int64_t now = rt_clock_mono_ms();
    rt_list_t ready;
    rt_list_init(&ready);
    rt_list_t *l, *tmp;
    pthread_mutex_lock(&r->mutex);
    rt_list_foreach_safe(l, tmp, &p->waiting)
    {
        pub_op_t *op = RT_STRUCT_FROM_MEMBER(pub_op_t, link, l);
        if (all || now >= op->deadline_ms || (strcmp(r->epoch, op->epoch) == 0 && r->applied >= op->seq)) {
            rt_list_unlink(&op->link);
            rt_list_insert_tail(&ready, &op->link);
        }
    }
    pthread_mutex_unlock(&r->mutex);
    rt_list_foreach_safe(l, tmp, &ready)
    {
        pub_op_t *op = RT_STRUCT_FROM_MEMBER(pub_op_t, link, l);
        rt_list_unlink(&op->link);
        atomic_fetch_sub(&p->waiting_n, 1);
        finish_answered(op);
    }
}

static void on_tick(uv_timer_t *t)
{
    rt__redis_pub_t *p = t->data;
    int64_t now = rt_clock_mono_ms();
    if (p->ac != NULL && !p->connected && now - p->connect_ms >= CONNECT_TIMEOUT_MS)
        drop_connection(p, "connect timed out");
    if (!rt_list_empty(&p->sent)) {
        pub_op_t *oldest = RT_STRUCT_FROM_MEMBER(pub_op_t, link, p->sent.next);
        if (now - oldest->sent_ms >= COMMAND_TIMEOUT_MS)
            drop_connection(p, "no answer in time");
    }
    check_waiting(p, false);
    if (rt_list_empty(&p->sent) && rt_list_empty(&p->waiting) && rt_list_empty(&p->retry) && (p->ac == NULL || p->connected))
        uv_timer_stop(&p->tick);
}

static void arm_tick(rt__redis_pub_t *p)
{
    if (!p->stopped && !uv_is_active((uv_handle_t *)&p->tick))
        uv_timer_start(&p->tick, on_tick, TICK_MS, TICK_MS);
}

/* Everything left completes: queued and unanswered ones with RT_EAGAIN, answered ones as published. */
static void shut_down(rt__redis_pub_t *p, rt_list_t *queued)
{
    p->stopped = true;
    rt_list_t *l, *tmp;
    rt_list_foreach_safe(l, tmp, queued)
    {
        pub_op_t *op = RT_STRUCT_FROM_MEMBER(pub_op_t, link, l);
        rt_list_unlink(&op->link);
        finish(op, RT_EAGAIN);
    }
    check_waiting(p, true);
    drop_connection(p, NULL); /* in-flight ones come back through on_reply: stopping, so RT_EAGAIN */
    rt_list_foreach_safe(l, tmp, &p->retry)
    {
        pub_op_t *op = RT_STRUCT_FROM_MEMBER(pub_op_t, link, l);
        rt_list_unlink(&op->link);
        finish(op, RT_EAGAIN);
    }
    uv_close((uv_handle_t *)&p->wake, NULL);
    uv_close((uv_handle_t *)&p->tick, NULL);
}

static void on_wake(uv_async_t *a)
{
    rt__redis_pub_t *p = a->data;
    if (p->stopped)
        return;
    rt_list_t queued;
    rt_list_init(&queued);
    pthread_mutex_lock(&p->lock);
    bool stop = p->stop_requested;
    rt_list_splice_tail(&queued, &p->queue);
    pthread_mutex_unlock(&p->lock);
    rt_list_t *l, *tmp;
    if (stop) {
        rt_list_splice_tail(&queued, &p->retry);
        shut_down(p, &queued);
        return;
    }
    /* Retries first: they were submitted earlier. */
    rt_list_foreach_safe(l, tmp, &p->retry)
    {
        rt_list_unlink(l);
        send_op(p, RT_STRUCT_FROM_MEMBER(pub_op_t, link, l));
    }
    rt_list_foreach_safe(l, tmp, &queued)
    {
        rt_list_unlink(l);
        send_op(p, RT_STRUCT_FROM_MEMBER(pub_op_t, link, l));
    }
    if (atomic_load(&p->waiting_n) != 0)
        check_waiting(p, false);
}

static void *pub_main(void *arg)
{
    rt__redis_pub_t *p = arg;
    uv_run(&p->loop, UV_RUN_DEFAULT);
    return NULL;
}

rt__redis_pub_t *rt__redis_pub_new(rt__redis_broker_t *r, char *err, size_t errlen)
{
    rt__redis_pub_t *p = rt_mem_calloc(1, sizeof(*p));
    p->r = r;
    int rc = uv_loop_init(&p->loop);
    if (rc != 0) {
        snprintf(err, errlen, "redis broker: publisher loop: %s", uv_strerror(rc));
        free(p);
        return NULL;
    }
    uv_async_init(&p->loop, &p->wake, on_wake);
    p->wake.data = p;
    uv_timer_init(&p->loop, &p->tick);
    p->tick.data = p;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->done_cond, NULL);
    rt_list_init(&p->queue);
    rt_list_init(&p->sent);
    rt_list_init(&p->retry);
    rt_list_init(&p->waiting);
    return p;
}

int rt__redis_pub_start(rt__redis_pub_t *p)
{
    if (pthread_create(&p->thread, NULL, pub_main, p) != 0)
        return RT_ENOMEM;
    p->started = true;
    return 0;
}

void rt__redis_pub_stop(rt__redis_pub_t *p)
{
    pthread_mutex_lock(&p->lock);
    bool already = p->stop_requested;
    p->stop_requested = true;
    if (!already && p->started)
        uv_async_send(&p->wake);
    pthread_mutex_unlock(&p->lock);
    if (!already && p->started)
        pthread_join(p->thread, NULL);
}

void rt__redis_pub_free(rt__redis_pub_t *p)
{
    if (!p->started) {
        /* Never ran: close the handles on this thread. */
        uv_close((uv_handle_t *)&p->wake, NULL);
        uv_close((uv_handle_t *)&p->tick, NULL);
        uv_run(&p->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&p->loop);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->done_cond);
    free(p);
}

void rt__redis_pub_applied(rt__redis_pub_t *p)
{
    if (atomic_load(&p->waiting_n) != 0)
        uv_async_send(&p->wake);
}

/* A publish ready to send, or NULL with *status when it cannot be taken now. Any thread. */
static pub_op_t *new_op(rt__redis_broker_t *r, rt_event_t *ev, int *status)
{
    rt_server_t *s = r->super.server;
    *status = RT_EAGAIN;
    if (!atomic_load(&r->ready) || atomic_load(&r->stopping))
        return NULL;
    for (unsigned i = 0; i < s->n_workers; i++)
        if (rt__worker_queue_full(s->workers[i]))
            return NULL;
    size_t json_len;
    char *json = rt__redis_event_json(ev, &json_len);
    if (json == NULL) {
        *status = RT_ENOMEM;
        return NULL;
    }
    pub_op_t *op = rt_mem_calloc(1, sizeof(*op));
    op->pub = r->pub;
    op->ev = rt_event_ref(ev);
    op->json = json;
    op->json_len = json_len;
    snprintf(op->now, sizeof(op->now), "%lld", (long long)rt_clock_wall_ms());
    snprintf(op->flags, sizeof(op->flags), "%u", ev->flags);
    return op;
}

static void free_op(pub_op_t *op)
{
    rt_event_unref(op->ev);
    free(op->json);
    free(op);
}

/* Queues op for the loop; false when the loop is stopping (op untouched). */
static bool submit(rt__redis_pub_t *p, pub_op_t *op)
{
    pthread_mutex_lock(&p->lock);
    bool ok = !p->stop_requested && p->started;
    if (ok) {
        rt_list_insert_tail(&p->queue, &op->link);
        uv_async_send(&p->wake); /* under the lock: the loop closes wake only after a last look at the queue */
    }
    pthread_mutex_unlock(&p->lock);
    return ok;
}

void rt__redis_publish_async(rt_broker_t *b, rt_worker_t *w, rt_event_t *ev, rt_broker_publish_cb cb, void *ctx)
{
    rt__redis_broker_t *r = (rt__redis_broker_t *)b;
    int status;
    pub_op_t *op = new_op(r, ev, &status);
    if (op == NULL) {
        cb(ctx, status, NULL);
        return;
    }
    op->worker = w;
    op->cb = cb;
    op->ctx = ctx;
    rt__worker_hold(w);
    if (!submit(r->pub, op)) {
        free_op(op);
        rt__worker_release(w);
        cb(ctx, RT_EAGAIN, NULL);
    }
}

int rt__redis_publish(rt_broker_t *b, rt_event_t *ev, rt_event_t **existing)
{
    rt__redis_broker_t *r = (rt__redis_broker_t *)b;
    rt__redis_pub_t *p = r->pub;
    int status;
    pub_op_t *op = new_op(r, ev, &status);
    if (op == NULL)
        return status;
    if (!submit(p, op)) {
        free_op(op);
        return RT_EAGAIN;
    }
    pthread_mutex_lock(&p->lock);
    while (!op->done)
        pthread_cond_wait(&p->done_cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    status = op->status;
    if (status == RT_EEXIST && existing != NULL)
        *existing = op->existing;
    else
        rt_event_unref(op->existing);
    free_op(op);
    return status;
}
