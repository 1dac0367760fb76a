/*
 * Centrifuge presence and the registry of Centrifuge connections, shared by every worker.
 *
 * Each Centrifuge connection (WebSocket or uni_sse) registers a peer: its client id, user and conn_info, the
 * worker that owns it and a mailbox. Presence maps a channel to the peers subscribed to it. Everything is
 * behind one mutex: subscribes, unsubscribes and API calls are rare next to deliveries, which never come here.
 *
 * Work for a connection that another thread starts (join/leave pushes, the server API's disconnect, subscribe
 * and unsubscribe) is posted to the peer's mailbox. The owner drains it on its thread, in its `deliver` callback:
 * before the posting function returns when the poster runs on the same worker, otherwise at the owner worker's
 * next loop turn (the post queues a task on that worker and wakes it: rt__worker_run_soon).
 */
#ifndef RT_PROTOCOL_PRESENCE_H
#define RT_PROTOCOL_PRESENCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "realtime/bytes.h"

typedef struct st_rt_worker_t rt_worker_t;
typedef struct st_rt_cf_peer_t rt_cf_peer_t;

typedef enum {
    RT_CF_MAIL_PUSH,        /**< send `push` (a push body: {"channel":…,"join":…}) if still subscribed to `channel` */
    RT_CF_MAIL_DISCONNECT,  /**< disconnect with code and reason */
    RT_CF_MAIL_UNSUBSCRIBE, /**< server unsubscribe from `channel` (push code 2000) */
    RT_CF_MAIL_SUBSCRIBE,   /**< server-side subscribe to `channel` */
} rt_cf_mail_kind_t;

typedef struct st_rt_cf_mail_t {
    struct st_rt_cf_mail_t *next;
    rt_cf_mail_kind_t kind;
    char *channel;    /**< NULL for DISCONNECT */
    rt_bytes_t *push; /**< PUSH: the push body, shared */
    uint16_t code;    /**< DISCONNECT */
    char reason[124]; /**< DISCONNECT */
} rt_cf_mail_t;

/** Frees a mail list. */
void rt_cf_mail_free(rt_cf_mail_t *m);

/**
 * Registers a connection owned by worker (call on its thread). client, user ("" = anonymous) and conn_info
 * (compact JSON or NULL) are copied. deliver(owner) is called on worker's thread when mail arrives; it should take
 * the mail (rt_presence_take_mail). It may be called with no mail waiting.
 */
rt_cf_peer_t *rt_presence_register(const char *client, const char *user, const char *conn_info, rt_worker_t *worker,
                                   void (*deliver)(void *owner), void *owner);
/**
 * Removes the peer from every channel (leave pushes go out) and the registry, and frees it with its mail (on its
 * worker's thread; a delivery still queued there is cancelled).
 */
void rt_presence_unregister(rt_cf_peer_t *peer);
/** The peer's client id. */
const char *rt_presence_client(const rt_cf_peer_t *peer);

/** Takes the peer's mail, oldest first (owner thread); NULL when none. Free with rt_cf_mail_free. */
rt_cf_mail_t *rt_presence_take_mail(rt_cf_peer_t *peer);

/**
 * Adds the peer to channel's presence. With join_leave_push, a join push goes to every member of the channel that
 * asked for join/leave (the peer included when it did). wants_join_leave: this peer gets join/leave pushes.
 * here: the caller's worker (mail to peers on it is delivered before returning; NULL off the workers).
 */
void rt_presence_add(rt_cf_peer_t *peer, const char *channel, bool wants_join_leave, bool join_leave_push, rt_worker_t *here);
/** Removes the peer from channel's presence; with join_leave_push, a leave push goes to the members that asked. */
void rt_presence_remove(rt_cf_peer_t *peer, const char *channel, bool join_leave_push, rt_worker_t *here);

/** Centrifuge presence result: a new object {"<client>":{"user","client","conn_info"?},…} (empty when none). */
json_t *rt_presence_get(const char *channel);
/** Number of clients and of distinct users present in channel. */
void rt_presence_stats(const char *channel, size_t *num_clients, size_t *num_users);
/**
 * Active channels (with at least one subscriber) whose name matches pattern (NULL or "" = all; `*` matches any
 * run of characters, as in Centrifugo's glob): a new object {"<channel>":{"num_clients":N},…}.
 */
json_t *rt_presence_channels(const char *pattern);
/** Totals for /api/info. */
void rt_presence_totals(size_t *num_clients, size_t *num_users, size_t *num_channels, size_t *num_subs);

/**
 * Posts a copy of mail to every peer of `user` (NULL = any user) whose client id is `client` (NULL = any), except
 * those listed in `except` (client ids, may be NULL). Returns how many peers got it. Mail to peers on `here` is
 * delivered before returning.
 */
size_t rt_presence_post(const char *user, const char *client, const json_t *except, const rt_cf_mail_t *mail, rt_worker_t *here);

/** True when the glob pattern (`*` = any run, other characters literal) matches s. */
bool rt_presence_glob(const char *pattern, const char *s);

#endif
