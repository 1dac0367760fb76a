/*
 * A WebSocket connection (RFC 6455) after the handshake: frame parsing, message assembly, UTF-8
 * checks, ping/pong, the close handshake, heartbeats, and the outbound path. What the messages mean
 * is a protocol's business (native /ws, Centrifuge), plugged in through rt_ws_protocol_t, so both
 * share one state machine.
 */
#ifndef RT_TRANSPORT_WS_CONN_H
#define RT_TRANSPORT_WS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "realtime/bytes.h"
#include "net/conn.h"
#include "net/http.h"

typedef struct st_rt_ws_t rt_ws_t;

typedef struct st_rt_ws_protocol_t {
    const char *name;
    rt_conn_kind_t kind;
    /** Send WebSocket ping frames every heartbeat and close 1008 "pong timeout" without a pong (native /ws).
     * Centrifuge does its own application-level pings instead. */
    bool ping_frames;
    /**
     * Non-zero: the protocol's state (this many bytes, zeroed, 16-byte aligned) is
     * allocated with the connection's, in one block (at 10k+ idle connections, a malloc chunk less each);
     * rt_ws_state() gives it to on_open, which returns it, and it is freed with the connection: on_close must not
     * free it. The rt_ws_t sits at RT_WS_EMBED_OFFSET(state_size) after it (see rt_ws_of_state). 0: on_open
     * allocates the state itself.
     */
    size_t state_size;
    /** After the 101 is queued: returns the protocol's state, or NULL to close with 1011. */
    void *(*on_open)(rt_ws_t *ws, const rt_http_request_t *req);
    /** A complete, valid UTF-8 text message (not NUL-terminated; it points into the input and is valid only during
     * the call). Returns 0, or a close code (1000..4999) to close with. */
    int (*on_message)(rt_ws_t *ws, void *state, const char *msg, size_t len);
    /** Once a second (NULL = nothing). */
    void (*on_tick)(rt_ws_t *ws, void *state, int64_t now_ms);
    /** Graceful server shutdown (NULL = close 1001 "server shutting down"). */
    void (*on_shutdown)(rt_ws_t *ws, void *state);
    /** The connection is gone: unsubscribe and free state. Called exactly once when on_open succeeded. */
    void (*on_close)(rt_ws_t *ws, void *state);
    /** Events were lost to this node (rt_conn_handler_t.on_gap); NULL = nothing to tell. Not after a close. */
    void (*on_gap)(rt_ws_t *ws, void *state, rt_gap_t reason);
} rt_ws_protocol_t;

/**
 * Performs the handshake for req on c (checks per RFC 6455; on failure answers 400/405/426 with the error
 * JSON and returns -1), then switches c to WebSocket with protocol p. Returns 0 on success.
 */
int rt_ws_accept(rt_conn_t *c, const rt_http_request_t *req, const rt_ws_protocol_t *p);

/** Frames p[0..len) as one text message and queues it (control replies: not subject to the queue limit). */
void rt_ws_send_text(rt_ws_t *ws, const char *p, size_t len);
/**
 * Queues an already framed message (e.g. an event's cached wire form, shared by all clients). Returns 0, or
 * RT_E2BIG when over client_queue_bytes: the connection is then closed with 1008 "slow consumer" and counted.
 * RT_ECLOSED (nothing queued) once the connection is closing: no data frame may follow our close frame.
 */
int rt_ws_send_frame(rt_ws_t *ws, rt_bytes_t *frame);
/**
 * As rt_ws_send_frame, but over client_queue_bytes it returns RT_E2BIG without closing: the caller falls back
 * (a history replay that does not fit ends with a reset instead). RT_ECLOSED once closing.
 */
int rt_ws_try_send_frame(rt_ws_t *ws, rt_bytes_t *frame);
/** Builds a complete unmasked text frame (header and payload) as new shared bytes. */
rt_bytes_t *rt_ws_build_text_frame(const char *p, size_t len);
typedef enum en_rt_ws_rate_t {
    RT_WS_RATE_OK,      /**< within client_command_rate and its burst */
    RT_WS_RATE_REFUSED, /**< over it: refuse the command (limit_exceeded), keep the connection */
    RT_WS_RATE_CUT,     /**< still sending a whole burst after being refused: close (1008, Centrifuge 3013) */
} rt_ws_rate_t;

/** Takes one command from the connection's allowance (client_command_rate, client_command_burst). */
rt_ws_rate_t rt_ws_rate_take(rt_ws_t *ws);
/** Starts the close handshake: sends a close frame with code and reason, closes when the peer answers (or soon). */
void rt_ws_close(rt_ws_t *ws, uint16_t code, const char *reason);
/** True once the connection is ending (our close frame sent, or closing): nothing more goes out. */
bool rt_ws_is_closing(const rt_ws_t *ws);
/** The underlying connection. */
rt_conn_t *rt_ws_conn(rt_ws_t *ws);
/** The protocol state returned by on_open (during on_open: the embedded state of a protocol with state_size). */
void *rt_ws_state(rt_ws_t *ws);

/** Where the rt_ws_t follows a protocol state embedded with it (rt_ws_protocol_t.state_size): 8-byte aligned,
 * all that either needs (pointers and 64-bit integers; no long double). */
#define RT_WS_EMBED_OFFSET(state_size) (((size_t)(state_size) + 7) & ~(size_t)7)

/** The connection of an embedded protocol state (state_size: the protocol's), without a pointer in the state. */
static inline rt_ws_t *rt_ws_of_state(void *state, size_t state_size)
{
    return (rt_ws_t *)((char *)state + RT_WS_EMBED_OFFSET(state_size));
}

#endif
