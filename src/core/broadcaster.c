/*
 * The broadcaster: a bounded queue of accepted events in front of a subscription index.
 *
 * One recursive mutex guards the queue and the index. Fan-out of an event runs with it held, so
 * subscribe/unsubscribe from other threads wait for at most one event's fan-out; the dispatching thread
 * itself may re-enter (a send op that unsubscribes, or asks for stats). Subscriptions removed during a
 * fan-out are only marked dead and freed once it ends, so the index is never changed under iteration.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/broadcaster.h"
#include "realtime/channel.h"
#include "realtime/error.h"
#include "core/broadcaster-private.h"
#include "core/sub_index.h"
#include "util/clock.h"
#include "util/mem.h"

struct st_rt_broadcaster_t {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    rt_event_t **ring;
    size_t cap, head, count;
    uint64_t seq;  /* for events broadcast without a seq */
    uint64_t pass; /* fan-out counter: a client whose _mark equals it already got the current event */
    rt_sub_index_t *index;
    rt_subscription_t *dead;  /* removed during the current fan-out, freed after it */
    rt_client_t **failed;     /* clients whose send failed during the current fan-out */
    size_t n_failed, cap_failed;
    bool in_fanout, closing, own_thread;
    pthread_t thread;
    void (*wakeup)(void *);
    void *wakeup_ctx;
    size_t n_subs, n_clients;
    uint64_t published, refused, delivered, send_failures;
    rt_histogram_t fanout_time; /* per event, written under lock */
};

static void *delivery_thread(void *arg);

rt_broadcaster_t *rt_broadcaster_new(const rt_broadcaster_config_t *config)
{
    rt_broadcaster_t *b = rt_mem_calloc(1, sizeof(*b));
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&b->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    pthread_cond_init(&b->cond, NULL);
    b->cap = config && config->buffer ? config->buffer : RT_BROADCASTER_DEFAULT_BUFFER;
    b->ring = rt_mem_calloc(b->cap, sizeof(*b->ring));
    b->index = rt__sub_index_new();
    if (config && config->wakeup) {
        b->wakeup = config->wakeup;
        b->wakeup_ctx = config->wakeup_ctx;
    } else {
        b->own_thread = true;
        if (pthread_create(&b->thread, NULL, delivery_thread, b) != 0)
            abort();
    }
    return b;
}

static void free_sub(rt_subscription_t *sub)
{
    rt_filter_free(sub->filter);
    free(sub); /* channels and entries live in the same block */
}

/* One block per subscription: the struct, its index entries, the channel pointers and the names. Idle
 * connections are mostly their subscriptions, so fewer, smaller allocations matter at 100k connections. */
static rt_subscription_t *new_sub(const char *const *channels, size_t n)
{
    size_t names = 0;
    for (size_t i = 0; i < n; i++)
        names += strlen(channels[i]) + 1;
    size_t size = sizeof(rt_subscription_t) + n * (sizeof(rt_sub_entry_t) + sizeof(char *)) + names;
    rt_subscription_t *sub = rt_mem_calloc(1, size);
    sub->n_channels = n;
    sub->entries = (rt_sub_entry_t *)(sub + 1);
    sub->channels = (char **)(sub->entries + n);
    char *p = (char *)(sub->channels + n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(channels[i]) + 1;
        sub->channels[i] = memcpy(p, channels[i], len);
        p += len;
    }
    return sub;
}

rt_subscription_t *rt_broadcaster_subscribe(rt_broadcaster_t *b, rt_client_t *client, const char *const *channels, size_t n,
                                            rt_filter_t *filter)
{
    if (n == 0)
        goto Fail;
    for (size_t i = 0; i < n; i++)
        if (channels[i] == NULL || !rt_pattern_valid(channels[i], strlen(channels[i])))
            goto Fail;
    rt_subscription_t *sub = new_sub(channels, n);
    sub->client = client;
    sub->filter = filter;

    pthread_mutex_lock(&b->lock);
    if (b->closing) {
        pthread_mutex_unlock(&b->lock);
        sub->filter = NULL;
        free_sub(sub);
        goto Fail;
    }
    rt__sub_index_add(b->index, sub);
    if (client->_subs == NULL)
        b->n_clients++;
    sub->next_of_client = client->_subs;
    client->_subs = sub;
    b->n_subs++;
    pthread_mutex_unlock(&b->lock);
    return sub;

Fail:
    rt_filter_free(filter);
    return NULL;
}

/* Unlinks sub from its client and the index; frees it now, or after the fan-out in progress. Lock held. */
static void remove_sub(rt_broadcaster_t *b, rt_subscription_t *sub)
{
    rt_client_t *client = sub->client;
    for (rt_subscription_t **p = &client->_subs; *p != NULL; p = &(*p)->next_of_client) {
        if (*p == sub) {
            *p = sub->next_of_client;
            break;
        }
    }
    if (client->_subs == NULL)
        b->n_clients--;
    b->n_subs--;
    if (b->in_fanout) {
        sub->dead = true;
        sub->next_of_client = b->dead;
        b->dead = sub;
    } else {
        rt__sub_index_remove(b->index, sub);
        free_sub(sub);
    }
}

void rt_broadcaster_unsubscribe(rt_broadcaster_t *b, rt_subscription_t *sub)
{
    pthread_mutex_lock(&b->lock);
    remove_sub(b, sub);
    pthread_mutex_unlock(&b->lock);
}

void rt_broadcaster_remove_client(rt_broadcaster_t *b, rt_client_t *client)
{
    pthread_mutex_lock(&b->lock);
    while (client->_subs != NULL)
        remove_sub(b, client->_subs);
    pthread_mutex_unlock(&b->lock);
}

int rt_broadcaster_broadcast(rt_broadcaster_t *b, rt_event_t *ev)
{
    pthread_mutex_lock(&b->lock);
    if (b->closing) {
        pthread_mutex_unlock(&b->lock);
        return RT_ECLOSED;
    }
    if (b->count == b->cap) {
        b->refused++;
        pthread_mutex_unlock(&b->lock);
        return RT_EAGAIN;
    }
    if (ev->seq == 0)
        rt_event_accept(ev, ++b->seq, NULL);
    b->ring[(b->head + b->count) % b->cap] = rt_event_ref(ev);
    bool was_empty = b->count++ == 0;
    b->published++;
    if (b->own_thread)
        pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    if (was_empty && b->wakeup != NULL)
        b->wakeup(b->wakeup_ctx);
    return 0;
}

typedef struct st_fanout_t {
    rt_broadcaster_t *b;
    rt_event_t *ev;
} fanout_t;

static void on_visit(rt_subscription_t *sub, size_t ci, void *ctx)
{
    fanout_t *f = ctx;
    rt_client_t *client = sub->client;
    if (client->_failed)
        return;
    bool per_channel = (client->flags & RT_CLIENT_PER_CHANNEL) != 0;
    if (!per_channel && client->_mark == f->b->pass)
        return;
    if (!rt_filter_match(sub->filter, f->ev))
        return;
    if (!per_channel)
        client->_mark = f->b->pass;
    if (client->ops->send(client, f->ev, sub, ci) == 0) {
        f->b->delivered++;
        return;
    }
    f->b->send_failures++;
    client->_failed = true;
    if (f->b->n_failed == f->b->cap_failed) {
        f->b->cap_failed = f->b->cap_failed ? f->b->cap_failed * 2 : 8;
        f->b->failed = rt_mem_realloc(f->b->failed, f->b->cap_failed * sizeof(*f->b->failed));
    }
    f->b->failed[f->b->n_failed++] = client;
}

/* Fans one event out. Lock held. */
static void fanout(rt_broadcaster_t *b, rt_event_t *ev)
{
    fanout_t f = {b, ev};
    b->pass++;
    b->in_fanout = true;
    rt__sub_index_match(b->index, ev, on_visit, &f);
    b->in_fanout = false;
    for (size_t i = 0; i < b->n_failed; i++) {
        rt_client_t *client = b->failed[i];
        while (client->_subs != NULL)
            remove_sub(b, client->_subs);
        client->_failed = false;
        if (client->ops->close != NULL)
            client->ops->close(client, RT_ECLOSED);
    }
    b->n_failed = 0;
    while (b->dead != NULL) {
        rt_subscription_t *sub = b->dead;
        b->dead = sub->next_of_client;
        rt__sub_index_remove(b->index, sub);
        free_sub(sub);
    }
}

/* Pops and delivers one event; false when the queue is empty. Lock held. */
static bool dispatch_one(rt_broadcaster_t *b)
{
    if (b->count == 0)
        return false;
    rt_event_t *ev = b->ring[b->head];
    b->ring[b->head] = NULL;
    b->head = (b->head + 1) % b->cap;
    b->count--;
    int64_t start = rt_clock_mono_us();
    fanout(b, ev);
    rt_histogram_add(&b->fanout_time, (uint64_t)(rt_clock_mono_us() - start));
    rt_event_unref(ev);
    return true;
}

void rt__broadcaster_fanout_time(rt_broadcaster_t *b, rt_histogram_sum_t *sum)
{
    rt_histogram_sum(&b->fanout_time, sum); /* relaxed reads: no lock needed */
}

size_t rt_broadcaster_dispatch(rt_broadcaster_t *b, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&b->lock);
    while ((max == 0 || n < max) && dispatch_one(b))
        n++;
    bool more = b->count != 0;
    pthread_mutex_unlock(&b->lock);
    if (more && b->wakeup != NULL)
        b->wakeup(b->wakeup_ctx);
    return n;
}

static void *delivery_thread(void *arg)
{
    rt_broadcaster_t *b = arg;
    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (b->count == 0 && !b->closing)
            pthread_cond_wait(&b->cond, &b->lock);
        if (!dispatch_one(b) && b->closing)
            break;
        /* Let subscribers on other threads in between events. */
        pthread_mutex_unlock(&b->lock);
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

void rt_broadcaster_stats(rt_broadcaster_t *b, rt_broadcaster_stats_t *stats)
{
    pthread_mutex_lock(&b->lock);
    *stats = (rt_broadcaster_stats_t){.published = b->published,
                                      .refused = b->refused,
                                      .delivered = b->delivered,
                                      .send_failures = b->send_failures,
                                      .clients = b->n_clients,
                                      .subscriptions = b->n_subs,
                                      .queued = b->count};
    rt__sub_index_counts(b->index, &stats->channels, &stats->patterns);
    pthread_mutex_unlock(&b->lock);
}

void rt_broadcaster_foreach_channel(rt_broadcaster_t *b, void (*cb)(const char *channel, size_t len, size_t n, void *ctx),
                                    void *ctx)
{
    pthread_mutex_lock(&b->lock);
    rt__sub_index_foreach_channel(b->index, cb, ctx);
    pthread_mutex_unlock(&b->lock);
}

void *rt_subscription_data(const rt_subscription_t *sub)
{
    return sub->data;
}

void rt_subscription_set_data(rt_subscription_t *sub, void *data)
{
    sub->data = data;
}

rt_client_t *rt_subscription_client(const rt_subscription_t *sub)
{
    return sub->client;
}

bool rt_subscription_matches(const rt_subscription_t *sub, const rt_event_t *ev)
{
    return rt__sub_reaches(sub, ev) && rt_filter_match(sub->filter, ev);
}

typedef struct st_close_collect_t {
    rt_broadcaster_t *b;
    rt_client_t **clients;
    size_t n;
} close_collect_t;

/* Lists each client once: its _mark is set to the pass of the close, as a fan-out does. */
static void close_collect(rt_subscription_t *sub, size_t ci, void *ctx)
{
    close_collect_t *cc = ctx;
    rt_client_t *client = sub->client;
    if (client->_mark == cc->b->pass || cc->n == cc->b->n_clients)
        return;
    client->_mark = cc->b->pass;
    cc->clients[cc->n++] = client;
}

void rt_broadcaster_close(rt_broadcaster_t *b)
{
    pthread_mutex_lock(&b->lock);
    b->closing = true;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    if (b->own_thread)
        pthread_join(b->thread, NULL);
    else
        rt_broadcaster_dispatch(b, 0);

    /* Tell each remaining client once, after all its subscriptions are gone (close may free it). The clients are
     * found in the index (a list of every subscription would cost each one a link) and listed first: the index
     * changes as they go. */
    close_collect_t cc = {.b = b, .clients = rt_mem_alloc((b->n_clients + 1) * sizeof(rt_client_t *))};
    b->pass++;
    rt__sub_index_foreach(b->index, close_collect, &cc);
    for (size_t i = 0; i < cc.n; i++) {
        rt_client_t *client = cc.clients[i];
        if (client->_subs == NULL)
            continue; /* an earlier close op removed it */
        while (client->_subs != NULL)
            remove_sub(b, client->_subs);
        if (client->ops->close != NULL)
            client->ops->close(client, RT_ECLOSED);
    }
    free(cc.clients);
    rt__sub_index_free(b->index);
    free(b->ring);
    free(b->failed);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
}
