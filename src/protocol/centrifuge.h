/*
 * Centrifuge client protocol v2 (JSON), shared by GET /connection/websocket (centrifuge.c) and
 * /connection/uni_sse (uni_sse.c); the server API is in centrifuge_api.c. See docs/protocol.md and
 * /work/shared/centrifuge-v2.md.
 *
 * A connection is one broadcaster client with RT_CLIENT_PER_CHANNEL: one rt_subscription_t per subscribed
 * channel (with the compiled `tf` filter), so an event naming two subscribed channels arrives once per
 * channel, each publication with that channel's offset. The transport (WebSocket or SSE) is a small vtable.
 *
 * Publications: an event published through /api/events is, on each channel, {"data":<the event JSON>,
 * "offset":N,"tags":{"type":…, <top-level scalar data fields as strings>}}; an event flagged
 * RT_EVENT_RAW_DATA (/api/publish, /api/broadcast, client publish) has its `data` as the publication data.
 * The push for (event, channel) is encoded once and cached on the event (RT_FORM_CENTRIFUGE_WS / _SSE).
 */
#ifndef RT_PROTOCOL_CENTRIFUGE_H
#define RT_PROTOCOL_CENTRIFUGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "realtime/broadcaster.h"
#include "realtime/event.h"
#include "net/conn.h"
#include "net/http.h"
#include "protocol/presence.h"
#include "util/buf.h"

#define RT_CF_EXPIRED_CLOSE_DELAY_MS 25000 /**< a connection or subscription not refreshed this long after expiry ends */
#define RT_CF_CONNECT_TIMEOUT_MS 15000     /**< no connect command within this: close 3502 "stale" */

/* Reply error codes (centrifuge-v2.md section 9.1). */
enum {
    RT_CF_ERR_INTERNAL = 100,
    RT_CF_ERR_UNAUTHORIZED = 101,
    RT_CF_ERR_UNKNOWN_CHANNEL = 102,
    RT_CF_ERR_PERMISSION_DENIED = 103,
    RT_CF_ERR_METHOD_NOT_FOUND = 104,
    RT_CF_ERR_ALREADY_SUBSCRIBED = 105,
    RT_CF_ERR_LIMIT_EXCEEDED = 106,
    RT_CF_ERR_BAD_REQUEST = 107,
    RT_CF_ERR_NOT_AVAILABLE = 108,
    RT_CF_ERR_TOKEN_EXPIRED = 109,
    RT_CF_ERR_TOO_MANY_REQUESTS = 111,
    RT_CF_ERR_UNRECOVERABLE_POSITION = 112,
};

/* Disconnect codes (section 9.3). A function returning an int code uses >= 3000 for "disconnect with this code". */
enum {
    RT_CF_DISC_SHUTDOWN = 3001,
    RT_CF_DISC_INTERNAL = 3004,
    RT_CF_DISC_EXPIRED = 3005,
    RT_CF_DISC_SLOW = 3008,
    RT_CF_DISC_INSUFFICIENT_STATE = 3010,
    RT_CF_DISC_NO_PONG = 3012,
    RT_CF_DISC_TOO_MANY_REQUESTS = 3013,
    RT_CF_DISC_INVALID_TOKEN = 3500,
    RT_CF_DISC_BAD_REQUEST = 3501,
    RT_CF_DISC_STALE = 3502,
    RT_CF_DISC_FORCE = 3503,
};

typedef struct st_rt_cf_t rt_cf_t;
typedef struct st_rt_server_t rt_server_t;

typedef struct st_rt_cf_transport_t {
    /** A push: body is the Push object without the {"push":…} wrapper (the WebSocket adds it, uni_sse does not). */
    void (*send_push)(rt_cf_t *cf, const char *body, size_t len);
    /** Queues the cached publication push of ev on its channel ci. 0, RT_ECLOSED, or RT_E2BIG (slow: closing). */
    int (*send_pub)(rt_cf_t *cf, rt_event_t *ev, size_t ci);
    /** Ends the connection with a disconnect code and reason. */
    void (*disconnect)(rt_cf_t *cf, uint16_t code, const char *reason);
} rt_cf_transport_t;

typedef struct st_rt_cf_sub_t {
    char *channel;
    rt_subscription_t *sub; /* NULL once the broadcaster dropped the client */
    uint64_t seq_mark;      /* live events with seq <= this were covered when subscribing: skipped */
    int64_t expire_at_ms;   /* subscription token expiry (wall clock), 0 = none */
    bool join_leave;        /* the client asked for join/leave pushes */
    bool server_side;
} rt_cf_sub_t;

struct st_rt_cf_t {
    rt_client_t client;
    const rt_cf_transport_t *t;
    void *transport;
    rt_conn_t *conn;
    rt_server_t *server;
    rt_broadcaster_t *broadcaster;
    rt_cf_peer_t *peer; /* registered once connected */
    char client_id[40];
    char *user;         /* "" = anonymous */
    char *conn_info;    /* compact JSON from the token's info claim, or NULL */
    rt_cf_sub_t **subs;
    size_t n_subs, cap_subs;
    int64_t expire_at_ms; /* connection token expiry (wall clock), 0 = none */
    bool connected;
    bool admin;
    char **granted;       /* the token's "subscribe" and "channels" claims (NULL-terminated), or NULL */
    size_t n_granted;
    bool detached;        /* the broadcaster dropped the client */
};

/** The message for a reply error code ("permission denied"). */
const char *rt__cf_error_message(int code);
/** The reason for a disconnect code ("invalid token"). */
const char *rt__cf_disconnect_reason(int code);
/** Appends {"code":N,"message":"…"[,"temporary":true]} (temporary for 100 and 111). */
void rt__cf_append_error(rt_buf_t *out, int code, const char *message);

/* centrifuge_push.c: publication encoding. */

/** The cached WebSocket frame of the pub push of ev on channel ci (borrowed; NULL on encoder failure). */
rt_bytes_t *rt__cf_pub_frame(rt_event_t *ev, size_t ci);
/** The cached uni_sse block `data: {"channel":…,"pub":…}\n\n` of ev on channel ci (borrowed). */
rt_bytes_t *rt__cf_pub_sse(rt_event_t *ev, size_t ci);
/** Appends the Publication object of ev on channel ci ({"data","offset","tags"}), from the cached frame. */
void rt__cf_append_pub(rt_buf_t *out, rt_event_t *ev, size_t ci);
/** Writes a new unique client id (UUID v4 format) into buf (>= 37 bytes). */
void rt__cf_make_client_id(char *buf);

/* centrifuge_sub.c: the connection's shared state machine (loop thread of its worker). */

/** Sets up cf on connection c with transport t. */
void rt__cf_init(rt_cf_t *cf, rt_conn_t *c, const rt_cf_transport_t *t, void *transport);
/**
 * Authenticates a connect request's token (NULL = none): sets user, conn_info, expiry and admin. Returns 0, an
 * error code (109 expired, 101 anonymous refused) or a disconnect code (3500 invalid token). *token_channels gets
 * the token's `channels` claim (a new array of strings, or NULL).
 */
int rt__cf_authenticate(rt_cf_t *cf, const char *token, json_t **token_channels);
/**
 * The code for a token that cannot be checked because no key is loaded: while keys are to come from
 * token_jwks_url (not fetched yet) that is temporary, RT_CF_ERR_INTERNAL (the client retries); else otherwise.
 */
int rt__cf_no_keys(const rt_cf_t *cf, int otherwise);
/** Verifies a subscription token for channel: 0 (with *expire_at_ms set), a Centrifuge error code or a disconnect code. */
int rt__cf_check_sub_token(rt_cf_t *cf, const char *channel, const char *token, int64_t *expire_at_ms);
/** Marks cf connected: client id, presence registration. */
void rt__cf_connected(rt_cf_t *cf);
/**
 * Subscribes to channel with request req (Centrifuge SubscribeRequest fields: recover, offset, epoch, join_leave,
 * tf, token; others ignored) and appends the SubscribeResult object to out. Returns 0, an error code or a
 * disconnect code (>= 3000). On 0 the caller sends the reply, then calls rt__cf_subscribed.
 */
int rt__cf_subscribe(rt_cf_t *cf, const char *channel, const json_t *req, bool server_side, rt_buf_t *out);
/**
 * Server-side subscriptions at connect: subscribes each of channels (a JSON array of names; NULL = none),
 * recovering from positions[channel] ({recover, offset, epoch}) when given, and appends ,"subs":{…} to out
 * when any succeeded. The caller sends the connect result, then calls rt__cf_subscribed for each subscription.
 */
void rt__cf_server_subs(rt_cf_t *cf, const json_t *channels, const json_t *positions, rt_buf_t *out);
/** After the subscribe reply went out: presence and join pushes. */
void rt__cf_subscribed(rt_cf_t *cf, const char *channel);
/** Unsubscribes channel (nothing when not subscribed); with push, sends an unsubscribe push with code 2000. */
void rt__cf_unsubscribe(rt_cf_t *cf, const char *channel, bool push);
/** The subscription to channel, or NULL. */
rt_cf_sub_t *rt__cf_find_sub(rt_cf_t *cf, const char *channel);
/**
 * Events were lost to this node: every client-side subscription gets an unsubscribe push 2500 "insufficient state"
 * (the client subscribes again and recovers, recovered=false). Returns 0, or RT_CF_DISC_INSUFFICIENT_STATE (3010)
 * for the transport to disconnect with when the connection holds server-side subscriptions.
 */
int rt__cf_gap(rt_cf_t *cf);
/** Once a second: connection and subscription expiry. Returns a disconnect code or 0. */
int rt__cf_tick(rt_cf_t *cf, int64_t now_wall_ms);
/** Releases everything (broadcaster, presence, subscriptions). cf itself is the caller's. */
void rt__cf_dispose(rt_cf_t *cf);

/* Shared with the server API: history of a channel, Centrifuge shape. */

/**
 * Runs a history request ({"channel","limit","since":{offset,epoch},"reverse"}) and appends the HistoryResult
 * object ({"publications":[…],"epoch","offset"}) to out. Returns 0 or an error code (107, 112).
 */
int rt__cf_history(rt_server_t *s, const json_t *req, rt_buf_t *out);
/** Creates the event /api/publish or a client publish makes: type tags.type or message.published, RT_EVENT_RAW_DATA. */
int rt__cf_make_event(const char *const *channels, size_t n, json_t *data, const char *type, rt_event_t **out, char *err,
                      size_t errlen);

#endif
