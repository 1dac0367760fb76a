/*
 * A client connection: one TCP stream, its input leftovers and its outbound queue.
 *
 * What runs on the connection is a handler (HTTP/1, WebSocket, SSE) behind one vtable; a handler that
 * upgrades the connection swaps c->handler and c->proto. Everything here runs on the owning worker's
 * loop thread. Closing is two-phase: rt_conn_close stops I/O at once and frees the connection (and calls
 * handler->on_close) when libuv is done with the handle.
 *
 * Outbound data is a queue of shared, refcounted byte strings (rt_bytes_t): the same encoded event is
 * queued to every client that gets it. Queued data is flushed once per loop turn with writev.
 * The queue is bounded by the server's client_queue_bytes: rt_conn_send refuses beyond it and the
 * caller disconnects the slow consumer.
 */
#ifndef RT_NET_CONN_H
#define RT_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "realtime/bytes.h"
#include "util/buf.h"
#include "util/list.h"

typedef struct st_rt_conn_t rt_conn_t;
typedef struct st_rt_worker_t rt_worker_t;

/** Why a client connection (a stream: WebSocket or SSE) ended, for realtime_disconnects_total. */
typedef enum en_rt_disconnect_t {
    RT_DISC_CLIENT,          /**< the client closed it (a close frame, or its end of an event stream) */
    RT_DISC_CONNECTION_LOST, /**< the socket ended without a close frame */
    RT_DISC_SHUTDOWN,        /**< the server is stopping */
    RT_DISC_SLOW_CONSUMER,   /**< over client_queue_bytes */
    RT_DISC_PONG_TIMEOUT,    /**< no pong (WebSocket, Centrifuge) */
    RT_DISC_RATE_LIMIT,      /**< client_command_rate, a whole burst over */
    RT_DISC_PROTOCOL_ERROR,  /**< broken frames, bad UTF-8, Centrifuge protocol violations */
    RT_DISC_MESSAGE_TOO_BIG, /**< over max_message_bytes */
    RT_DISC_TOKEN,           /**< Centrifuge: invalid or expired token */
    RT_DISC_OTHER,
    RT_DISC_REASONS
} rt_disconnect_t;

/** The label of each reason in /metrics. */
extern const char *const rt_disconnect_names[RT_DISC_REASONS];

/** Why events were lost to this node's live clients (a gap it cannot fill), for resets and realtime_gaps_total. */
typedef enum en_rt_gap_t {
    RT_GAP_FAILOVER,       /**< the Redis master changed and lacks events this node had seen or answered */
    RT_GAP_STREAM_TRIMMED, /**< events missed while away are gone from the stream */
    RT_GAP_EPOCH_CHANGED,  /**< Redis lost its data (or another node saw a failover): a new epoch */
    RT_GAP_UNREADABLE,     /**< an event in the stream could not be applied */
    RT_GAP_REASONS
} rt_gap_t;

/** The label of each gap reason ("failover", "stream_trimmed", "epoch_changed", "unreadable_event"). */
extern const char *const rt_gap_names[RT_GAP_REASONS];

/** Connection kinds, for statistics. */
typedef enum { RT_CONN_HTTP, RT_CONN_WS, RT_CONN_SSE, RT_CONN_CENTRIFUGE, RT_CONN_UNI_SSE, RT_CONN_KINDS } rt_conn_kind_t;

typedef struct st_rt_conn_handler_t {
    /** Consumes input; returns bytes consumed (the rest is kept and offered again with more data), or -1 after
     * closing the connection. May swap the handler (then the rest goes to the new handler). */
    ssize_t (*on_data)(rt_conn_t *c, const char *buf, size_t len);
    /** Once a second: heartbeats and timeouts. */
    void (*on_tick)(rt_conn_t *c, int64_t now_ms);
    /** Graceful shutdown: tell the peer (WS close 1001, end of SSE stream) and close after the flush. */
    void (*on_shutdown)(rt_conn_t *c);
    /** The connection is going away: release c->proto (unsubscribe, free state). Called exactly once. */
    void (*on_close)(rt_conn_t *c);
    /** Peer closed its side (EOF); NULL = close the connection. */
    void (*on_eof)(rt_conn_t *c);
    /**
     * Events were lost to this node (rt__worker_post_gap): tell the client it must refetch (a reset, an
     * unsubscribe or a disconnect, as its protocol says). Every event queued before the gap has been delivered.
     * NULL = the connection carries no subscriptions (HTTP).
     */
    void (*on_gap)(rt_conn_t *c, rt_gap_t reason);
} rt_conn_handler_t;

typedef struct st_rt_out_t {
    rt_bytes_t *bytes;
    size_t off; /* bytes of it already written */
} rt_out_t;

struct st_rt_conn_t {
    rt_worker_t *worker;
    const rt_conn_handler_t *handler;
    void *proto;              /**< the handler's state */
    rt_list_t link;           /* in worker->conns */
    rt_list_t flush_link;     /* in worker->pending_flush while output waits */
    rt_out_t *outq;           /* ring of queued output; released when idle (flush, rt__conn_trim) */
    size_t queued_bytes;
    int64_t deadline_ms;      /**< handler-defined deadline checked in on_tick (0 = none) */
    uint32_t out_head, out_count, out_cap;
    uint8_t kind;             /**< rt_conn_kind_t */
    bool closing : 1;
    bool close_after_flush : 1;
    bool write_in_flight : 1;
    bool reading_paused : 1;
    bool out_drained : 1;     /* the output queue emptied since the last tick (conn.c: when the ring goes) */
    bool addr_pending : 1;    /* from a trusted proxy: counted per address once its first request names the client */
    bool has_addr_slot : 1;   /* allocated with its per-address count (conn.c), max_connections_per_ip being on */
    bool access_log : 1;      /* the server's access_log: the connection carries an access record (net/access_log.h) */
    uint8_t refused;          /* over a limit: rt_limit_t + 1 (rt_conn_refused); 0 when admitted */
    /* 96 bytes, so that with the libuv handle a connection is one 352-byte malloc chunk: it is most of what an
     * idle connection costs. Hence narrow flags, and input leftovers (rare: a read ending inside a frame) kept
     * apart, in a block hung on the handle (conn.c). */
};

/**
 * Queues b (takes a reference) for writing. Returns 0, or RT_E2BIG when the queue would exceed the
 * server's client_queue_bytes (nothing queued: the caller decides; for live events that is a slow consumer).
 * When force is true the limit is not applied (small control replies the protocol owes the peer).
 */
int rt_conn_send(rt_conn_t *c, rt_bytes_t *b, bool force);
/** Copies p into new bytes and queues them, ignoring the limit (small control replies). */
void rt_conn_send_copy(rt_conn_t *c, const void *p, size_t len);
/** Closes now: queued output is dropped. Safe to call more than once. */
void rt_conn_close(rt_conn_t *c);
/**
 * Ends the connection once queued output is written (also when nothing is queued: after the current callback).
 * Reading stops now and nothing more is queued. Then the connection lingers (conn.c): its write side is shut
 * down and input is read and dropped until the peer closes or lingering_timeout passes (at most lingering_bytes
 * of it), so that a peer still sending gets the reply rather than a reset. The handler's on_close runs when
 * lingering starts; no other handler callback runs after the flush.
 */
void rt_conn_close_after_flush(rt_conn_t *c);
/** Stops/resumes reading from the peer (back-pressure for pipelined requests). */
void rt_conn_pause_reading(rt_conn_t *c, bool pause);
/**
 * Whether input is waiting that the connection has not consumed yet: kept leftovers, or bytes in the
 * socket that the loop has not read (a syscall: for timeouts, not hot paths).
 */
bool rt_conn_input_waiting(rt_conn_t *c);
/** The monotonic milliseconds of the worker's loop (cached per loop turn). */
int64_t rt_conn_now(const rt_conn_t *c);
/** Writes the peer's "ip:port" into buf (for logs; a syscall, so not on hot paths). */
void rt_conn_peer(rt_conn_t *c, char *buf, size_t size);
/**
 * Counts n events delivered to this connection. A per-worker counter with a single writer, so the hot path
 * pays no contended atomic (summed by rt__worker_delivered for /api/stats).
 */
void rt_conn_count_delivered(rt_conn_t *c, unsigned n);
/**
 * The limit (rt_limit_t, net/limits.h) the connection went over when it was accepted (max_connections, or
 * max_connections_per_ip), or -1. Such a connection is answered 429 and closed.
 */
int rt_conn_refused(const rt_conn_t *c);
/**
 * For a connection from a trusted proxy: counts it against the client that X-Forwarded-For names (the proxy's
 * own address when it names none). Once per connection, at its first request; a no-op otherwise.
 */
void rt_conn_admit_forwarded(rt_conn_t *c, const char *forwarded_for);
/** Counts a client connection's end (realtime_disconnects_total{reason}). */
void rt_conn_count_disconnect(rt_conn_t *c, rt_disconnect_t reason);
/**
 * Says why the connection (a stream) ends, for the access log: a close code (WebSocket, Centrifuge; 0 for none) and
 * a reason (reason_len bytes, cut to fit). The first reason given wins. A no-op unless access_log is on.
 */
void rt_conn_note_close(rt_conn_t *c, unsigned code, const char *reason, size_t reason_len);
/** Sets the connection kind (updates the worker's connection counts). */
void rt_conn_set_kind(rt_conn_t *c, rt_conn_kind_t kind);

#endif
