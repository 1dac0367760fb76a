/*
 * Cluster-wide Centrifuge presence and server API control for the redis broker (src/broker/redis_presence.c,
 * docs/redis.md "Presence and control across nodes"). Internal to src/broker.
 *
 * One thread with its own libuv loop and two hiredis async connections (commands; SUBSCRIBE to the cluster
 * channel) keeps this node's presence entries in Redis, beats this node's heartbeat, answers presence queries
 * from Redis for every node and carries join/leave pushes and control messages (disconnect, subscribe,
 * unsubscribe) between nodes. It is the presence table's cluster backend (protocol/presence.h): workers hand it
 * work through a locked queue and get answers back as tasks, so no worker waits for Redis.
 */
#ifndef RT_BROKER_REDIS_PRESENCE_H
#define RT_BROKER_REDIS_PRESENCE_H

#include <stddef.h>
#include "broker/redis-private.h"

typedef struct st_rt_server_t rt_server_t;
typedef struct st_rt__redis_presence_t rt__redis_presence_t;

/** Heartbeat period, and how long a node's entries count after its last heartbeat (3 periods). */
#define RT__REDIS_PRESENCE_HEARTBEAT_MS 2000
#define RT__REDIS_PRESENCE_EXPIRY_MS (3 * RT__REDIS_PRESENCE_HEARTBEAT_MS)

/** The heartbeat script (see redis_presence.c): KEYS nodes, nodeinfo; ARGV node, ttl ms, info, wipe, prefixes, bye. */
extern const char rt__redis_heartbeat_lua[];
/** The presence script: KEYS the channel's presence hash, nodes; returns the ClientInfo texts of live nodes' entries. */
extern const char rt__redis_presence_lua[];

typedef struct st_rt__redis_broker_t rt__redis_broker_t;

/**
 * The presence backend of server s on the broker's Redis (its redis_url, or with sentinels the master the broker
 * follows: connections move when it does); not started. NULL with a message. Main thread.
 */
rt__redis_presence_t *rt__redis_presence_new(rt_server_t *s, rt__redis_broker_t *broker, char *err, size_t errlen);
/** Starts its thread and attaches it to the presence table: 0 or RT_ENOMEM. Main thread. */
int rt__redis_presence_start(rt__redis_presence_t *p);
/**
 * Stops it: this node's entries are removed from Redis when it can answer within 500 ms (else they expire),
 * queries and control messages in flight complete with RT_EAGAIN, and later ones fail at once. Main thread.
 */
void rt__redis_presence_stop(rt__redis_presence_t *p);
/** Detaches it from the presence table and frees it: after stop, once no worker runs. */
void rt__redis_presence_free(rt__redis_presence_t *p);

#endif
