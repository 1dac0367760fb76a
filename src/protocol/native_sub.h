/*
 * Native subscriptions, shared by /ws and /events: parsing one from a query string or from a /ws
 * subscribe message, the `all` permission check, and attaching it to a broadcaster with a resume
 * from history.
 *
 * The query form: channels=a,b (comma separated; the parameter may repeat), filter.<key>=<value>
 * (simple form; a repeated key is any-of), filter=<JSON tree> (tree form; both forms together are
 * ANDed), last_event_id=<id>, token=<JWT>. Other parameters are ignored.
 * The JSON form: {"id","channels":[…],"filters":{…},"filter":{…},"last_event_id"}; other members
 * (such as "type") are ignored.
 */
#ifndef RT_PROTOCOL_NATIVE_SUB_H
#define RT_PROTOCOL_NATIVE_SUB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "realtime/broadcaster.h"
#include "realtime/filter.h"
#include "realtime/history.h"
#include "core/access.h"
#include "net/http.h"
#include "server/config.h"
#include "core/token.h"

#define RT_NATIVE_SUB_MAX_CHANNELS 256 /**< channels (or patterns) in one subscription */
#define RT_NATIVE_SUB_ID_MAX 128       /**< bytes in a subscription id */

/** A failure: a stable DESIGN.md error code and a message for the peer. */
typedef struct st_rt_native_error_t {
    const char *code; /**< "bad_request", "invalid_channel", "invalid_filter", "limit_exceeded", "unauthorized",
                           "permission_denied"; static string */
    char message[256];
} rt_native_error_t;

/** A parsed subscription. Owns everything it points to; release with rt_native_sub_dispose. */
typedef struct st_rt_native_sub_t {
    char *id;              /**< subscription id: rt_native_query_id for the query form; NULL when a message had none */
    char **channels;       /**< valid channels or patterns, without duplicates, in the order given */
    size_t n_channels;     /**< may be 0 for the query form (no channels= parameter) */
    rt_filter_t *filter;   /**< NULL = every event; set to NULL once ownership passes (rt_native_sub_attach does) */
    char *last_event_id;   /**< resume point, or NULL */
    char *token;           /**< the query's token=, or NULL (the JSON form carries none) */
} rt_native_sub_t;

/**
 * "query", the id of the query form's subscription: static, so that the one subscription most connections hold
 * costs no string. Free ids with rt_native_sub_free_id, which knows it.
 */
extern const char rt_native_query_id[];

/** Frees a subscription id (NULL and rt_native_query_id are not freed). */
static inline void rt_native_sub_free_id(char *id)
{
    if (id != rt_native_query_id)
        free(id);
}

/**
 * Parses a query string (without the '?'; NULL or "" allowed). Returns 0, or RT_EINVAL / RT_E2BIG with err
 * filled (and *out left empty). A subscription with no channels is not an error here: /events refuses it,
 * /ws allows it.
 */
int rt_native_sub_from_query(const char *query, rt_native_sub_t *out, rt_native_error_t *err);
/** Parses a /ws subscribe message (a JSON object). "channels" must be a non-empty array. Same results. */
int rt_native_sub_from_json(const json_t *msg, rt_native_sub_t *out, rt_native_error_t *err);
/** Frees what sub owns and empties it (safe on an empty or already disposed struct). */
void rt_native_sub_dispose(rt_native_sub_t *sub);

/** The connection's token: the query's `token`, else `Authorization: Bearer TOKEN`; NULL when neither. */
const char *rt_native_token(const rt_native_sub_t *sub, const rt_http_request_t *req);
/**
 * Verifies a connection's token (NULL = none: anonymous, claims zeroed). A token that is given must verify:
 * RT_EPERM with code "unauthorized" otherwise (also when no key is configured). Returns 0 with *claims (free
 * with rt_token_claims_free; also safe after a failure).
 */
int rt_native_check_token(rt_token_verifier_t *tokens, const char *token, rt_token_claims_t *claims, rt_native_error_t *err);
/** What verified claims grant, as a view into them (valid while they are). */
rt_grant_t rt_native_grant(const rt_token_claims_t *claims);
/**
 * Checks that grant g (NULL = anonymous) may read every channel and pattern of the subscription
 * (rt_access_read). Returns 0, or RT_EPERM with code "permission_denied" naming the first refused channel.
 */
int rt_native_sub_check_access(const rt_native_sub_t *sub, const rt_access_t *a, const rt_grant_t *g, rt_native_error_t *err);
/** Checks the subscription's channel count against max_channels: 0, or RT_E2BIG with code "limit_exceeded". */
int rt_native_sub_check_size(const rt_native_sub_t *sub, size_t max_channels, rt_native_error_t *err);

/**
 * Drops the resume point when a channel or pattern of the subscription reaches a namespace without history: no
 * replay can be complete there. Returns true when it did (the client must be told: reset "history_disabled").
 */
bool rt_native_sub_drop_resume(rt_native_sub_t *sub, const rt_access_t *a);

/** The HTTP status for err's code: 401 unauthorized, 403 permission_denied, 400 otherwise. */
int rt_native_error_status(const rt_native_error_t *err);

/** rt_event_pred over a subscription (ctx is the rt_subscription_t): its channels and filter. */
bool rt_native_sub_pred(const rt_event_t *ev, void *ctx);

/**
 * Subscribes client on b with sub's channels and filter (the filter passes to the subscription), then, when
 * sub->last_event_id is set, reads from history h the matching events after it, up to the newest seq at the
 * moment of subscribing. Must run on the thread that dispatches b, so that no live event is delivered between
 * subscribing and reading history; live events with seq <= *upto are already covered by the replay (or were
 * sent before) and must be skipped by the caller.
 * Returns 0 with *out_sub, *replay (oldest first; empty without a resume point; free with rt_event_list_free)
 * and *upto; RT_ERANGE when the resume point is not in history (subscribed all the same: send a reset, then
 * live events); RT_EINVAL when the broadcaster refused the subscription (closed).
 */
int rt_native_sub_attach(rt_native_sub_t *sub, rt_broadcaster_t *b, rt_history_t *h, rt_client_t *client,
                         rt_subscription_t **out_sub, rt_event_list_t *replay, uint64_t *upto);

#endif
