/*
 * The redis broker's state, shared by its two halves: replication (redis.c: the subscriber thread, lifecycle) and
 * publishing (redis_publish.c: the publisher loop). Internal to src/broker.
 */
#ifndef RT_BROKER_REDIS_BROKER_H
#define RT_BROKER_REDIS_BROKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "broker/broker.h"
#include "broker/redis-private.h"

enum { RT__REDIS_K_EPOCH, RT__REDIS_K_SEQ, RT__REDIS_K_OFFSETS, RT__REDIS_K_STREAM, RT__REDIS_K_IDS, RT__REDIS_K_IDQ, RT__REDIS_K_COUNT };

/** Arguments of a script call besides the extras: command, script, key count, keys, candidate epoch, seq floor. */
#define RT__REDIS_SCRIPT_ARGS (3 + RT__REDIS_K_COUNT + 2)

typedef struct st_rt__redis_pub_t rt__redis_pub_t;
typedef struct st_rt__redis_presence_t rt__redis_presence_t;

#define RT__REDIS_MAX_SENTINELS 16

/** A host and port (a sentinel's). */
typedef struct st_rt__redis_addr_t {
    char host[256];
    int port;
} rt__redis_addr_t;

typedef struct st_rt__redis_broker_t {
    rt_broker_t super;
    rt__redis_url_t url;
    char keys[RT__REDIS_K_COUNT][32];
    char fanout[32];
    char sha[41];
    char ttl_ms[24], size[24];
    size_t max_msg;
    rt__redis_pub_t *pub; /* the publisher loop (redis_publish.c) */
    rt__redis_presence_t *presence; /* cluster presence and control (redis_presence.c) */
    pthread_t thread;
    bool thread_started;
    int wake_fd;
    atomic_bool stopping, ready;
    /* The replica's position: written by the subscriber thread under mutex, read by the publisher loop. */
    pthread_mutex_t mutex;
    char epoch[RT__REDIS_EPOCH_MAX + 1];
    uint64_t applied;
    char last_error[128]; /* subscriber thread only: the last connection error, logged once per change */
    char last_id[RT_EVENT_ID_MAX + 1]; /* subscriber thread only: the id of the event at seq applied ("" unknown) */
    /* Sentinel mode (n_sentinels > 0): the subscriber thread asks them for the master and writes its address into
     * url.host and url.port under mutex, moving master_gen; the publisher loop reads them under mutex. */
    rt__redis_addr_t sentinels[RT__REDIS_MAX_SENTINELS];
    size_t n_sentinels;
    char master_name[128];
    atomic_uint master_gen;
    /* Under mutex: the newest seq Redis gave one of this node's publishes, its id and epoch (the publisher loop
     * writes them), so that a master that lacks it after a failover is noticed although it was never applied here. */
    uint64_t answered;
    char answered_id[RT_EVENT_ID_MAX + 1];
    char answered_epoch[RT__REDIS_EPOCH_MAX + 1];
} rt__redis_broker_t;

/** Scratch space for the candidate epoch and the seq floor, which rt__redis_script_args points into. */
typedef struct st_rt__redis_script_buf_t {
    char epoch[9], floor[24];
} rt__redis_script_buf_t;

/**
 * Fills argv/lens (room for RT__REDIS_SCRIPT_ARGS + n_extra) for EVALSHA sha (EVAL script when sha is NULL) with the
 * broker's keys, a fresh candidate epoch and this node's seq floor, then the extras. Returns the count. Any thread.
 */
int rt__redis_script_args(rt__redis_broker_t *r, const char *script, const char *sha, int n_extra, const char **extra,
                          const size_t *extra_lens, rt__redis_script_buf_t *buf, const char **argv, size_t *lens);

/** Copies the master's address (url.host, url.port) and its generation under r->mutex. Any thread. */
void rt__redis_master(rt__redis_broker_t *r, char *host, size_t hostlen, int *port, unsigned *gen);

/** The publisher loop of r (not started); NULL with a message. Main thread. */
rt__redis_pub_t *rt__redis_pub_new(rt__redis_broker_t *r, char *err, size_t errlen);
/** Starts its thread: 0 or RT_ENOMEM. */
int rt__redis_pub_start(rt__redis_pub_t *p);
/**
 * Stops it (after r->stopping is set and the subscriber thread is joined): publishes not sent yet or without an
 * answer complete with RT_EAGAIN, answered ones waiting for this node complete as published. Main thread.
 */
void rt__redis_pub_stop(rt__redis_pub_t *p);
/** Frees a stopped (or never started) publisher loop. */
void rt__redis_pub_free(rt__redis_pub_t *p);
/** The replica's position moved: wakes publishes waiting for it. Subscriber thread. */
void rt__redis_pub_applied(rt__redis_pub_t *p);
/** rt_broker_ops_t.publish_async and .publish of the redis broker. */
void rt__redis_publish_async(rt_broker_t *b, rt_worker_t *w, rt_event_t *ev, rt_broker_publish_cb cb, void *ctx);
int rt__redis_publish(rt_broker_t *b, rt_event_t *ev, rt_event_t **existing);

#endif
