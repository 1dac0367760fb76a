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
 *
 * Cluster: with the redis broker, a cluster backend (src/broker/redis_presence.c) is attached with
 * rt_presence_set_cluster. Presence then also lives in Redis, shared by every node: this table tells the backend
 * each local join and leave, join/leave pushes also go to the other nodes, and rt_presence_query and
 * rt_presence_control answer and act across nodes. Without a backend (the memory broker) everything stays in this
 * process and both answer before they return.
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

/**
 * The outcome of rt_presence_query or rt_presence_control, on the caller's worker: status 0 with result (a JSON
 * object's text, len bytes, valid during the call) or RT_EAGAIN (the cluster backend could not reach Redis; result
 * NULL). Called exactly once, maybe before the function returns.
 */
typedef void (*rt_presence_cb)(void *ctx, int status, const char *result, size_t len);

/**
 * A cluster presence backend. joined, left and push are called with the presence lock held, from any thread: they
 * must not block or call back into presence (queue the work). query and post are called on worker w's thread and
 * complete through cb on w's thread exactly once. stats is called from any thread.
 */
typedef struct st_rt_presence_cluster_t {
    /** A local peer entered channel; info is its ClientInfo JSON ({"user","client","conn_info"?}). */
    void (*joined)(void *self, const char *channel, const char *client, const char *info);
    /** A local peer left channel; last: no local peer is left in it. */
    void (*left)(void *self, const char *channel, const char *client, bool last);
    /** A join or leave push body for channel, for the members on the other nodes. */
    void (*push)(void *self, const char *channel, rt_bytes_t *push);
    /** presence (stats false) or presence_stats of channel over every node: the result as rt_presence_query. */
    void (*query)(void *self, rt_worker_t *w, const char *channel, bool stats, rt_presence_cb cb, void *ctx);
    /** Sends a control message (rt_presence_control_encode) to the other nodes; result "{}" once sent. */
    void (*post)(void *self, rt_worker_t *w, const char *control, size_t len, rt_presence_cb cb, void *ctx);
    /** /api/stats "cluster": a new object, or NULL. */
    json_t *(*stats)(void *self);
} rt_presence_cluster_t;

/**
 * Attaches (ops non-NULL) or detaches the cluster backend. The backend must stay valid until it is detached, and
 * until no worker runs (a query may have read it just before). Main thread.
 */
void rt_presence_set_cluster(const rt_presence_cluster_t *ops, void *self);

/**
 * Calls cb for every local presence entry (channel, client id, ClientInfo JSON), with the presence lock held: cb
 * must not call presence. For a backend that rewrites this node's entries. Any thread.
 */
void rt_presence_foreach_local(void (*cb)(const char *channel, const char *client, const char *info, void *ctx), void *ctx);

/**
 * presence (stats false: {"presence":{"<client>":ClientInfo,…}}) or presence_stats ({"num_clients":N,"num_users":N})
 * of channel: from this process, or across nodes with a cluster backend. cb as rt_presence_cb. On w's thread.
 */
void rt_presence_query(rt_worker_t *w, const char *channel, bool stats, rt_presence_cb cb, void *ctx);

/**
 * rt_presence_post on this node (delivered at once to peers on w), then, with a cluster backend, on every other node
 * (cb once the control message went out; RT_EAGAIN when it could not). Result "{}". On w's thread.
 */
void rt_presence_control(rt_worker_t *w, const char *user, const char *client, const json_t *except, const rt_cf_mail_t *mail,
                         rt_presence_cb cb, void *ctx);

/** /api/stats "cluster" from the backend: a new object, or NULL without one. Any thread. */
json_t *rt_presence_cluster_stats(void);

/**
 * Builds a presence (stats false) or presence_stats result from ClientInfo JSON texts (one per present client,
 * unparsable ones skipped). Returns a malloc'ed string (free()) with *len.
 */
char *rt_presence_result(const char *const *infos, const size_t *lens, size_t n, bool stats, size_t *len);

/** Encodes a control message (what rt_presence_post takes) as compact JSON: a malloc'ed string, or NULL. */
char *rt_presence_control_encode(const char *user, const char *client, const json_t *except, const rt_cf_mail_t *mail);
/** Decodes a control message and posts it to this node's matching peers (off the workers). 0, or -1 when malformed. */
int rt_presence_control_apply(const char *text, size_t len);
/** A join or leave push from another node: posted to this node's members of channel that asked for them. */
void rt_presence_remote_push(const char *channel, const char *push, size_t len);

/** True when the glob pattern (`*` = any run, other characters literal) matches s. */
bool rt_presence_glob(const char *pattern, const char *s);

#endif
