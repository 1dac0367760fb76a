/*
 * Client JWTs (HS256 only), with the claims of Centrifugo's connection and subscription tokens that the server
 * uses. Verification checks the signature in constant time, then exp and nbf; `alg` other than HS256
 * (including "none") is refused whatever the signature.
 */
#ifndef RT_SERVER_TOKEN_H
#define RT_SERVER_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Tokens longer than this are refused unread (RT_EINVAL). */
#define RT_TOKEN_MAX_LEN 16384

typedef struct st_rt_token_claims_t {
    char *sub;       /**< the user id; "" when absent (anonymous user) */
    int64_t exp;     /**< unix seconds; 0 = no expiry */
    int64_t iat;     /**< unix seconds; 0 = absent */
    int64_t nbf;     /**< unix seconds; 0 = absent */
    bool admin;      /**< the claim "admin": true (only the JSON literal true counts) */
    char **channels; /**< NULL-terminated list from "channels" (server-side subscriptions); NULL when absent */
    size_t n_channels;
    char *info;    /**< compact JSON text of "info"; NULL when absent */
    char *channel; /**< "channel" (subscription tokens only: a connection token carrying it is invalid); NULL when absent */
} rt_token_claims_t;

/**
 * Verifies an HS256 token with `secret` at time `now_s` (unix seconds) and fills `claims` (zeroed first; free
 * with rt_token_claims_free(), also after a failure). Returns 0; RT_ERANGE when the token has expired (exp <=
 * now: Centrifuge answers "token expired"); RT_EINVAL for anything else (no secret, malformed, other
 * algorithm, bad signature, not valid yet, a claim of the wrong type), with a short reason in err.
 * Thread-safe.
 */
int rt_token_verify(const char *secret, const char *token, int64_t now_s, rt_token_claims_t *claims, char *err, size_t errlen);

/**
 * Signs `claims` with HS256: "sub" always, "iat", "exp" and "nbf" when non-zero, "admin" when true, "channels"
 * when non-NULL, "info" (must be valid JSON text) and "channel" when non-NULL. On success *token is a new
 * string (free()) and 0 is returned; RT_EINVAL for an empty secret or invalid info JSON.
 */
int rt_token_sign(const char *secret, const rt_token_claims_t *claims, char **token);

/** Frees what the claims own and zeroes them. */
void rt_token_claims_free(rt_token_claims_t *claims);

#endif
