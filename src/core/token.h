/*
 * Client JWTs, with the claims of Centrifugo's connection and subscription tokens that the server uses, verified
 * with a shared secret (HS256/384/512), a PEM public key or JWKS keys (RS256/384/512, PS256/384/512, ES256/384).
 * "none", unknown algorithms and an algorithm of another key kind than the key that would check it are refused
 * whatever the signature; signatures are compared in constant time; then aud, iss, exp and nbf are checked.
 */
#ifndef RT_CORE_TOKEN_H
#define RT_CORE_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Tokens longer than this are refused unread (RT_EINVAL). */
#define RT_TOKEN_MAX_LEN 16384
/** The largest JWKS document read from a file or fetched (1 MiB; identity providers publish a few KiB). */
#define RT_TOKEN_JWKS_MAX_BYTES (1024 * 1024)

typedef struct st_rt_token_claims_t {
    char *sub;       /**< the user id; "" when absent (anonymous user) */
    int64_t exp;     /**< unix seconds; 0 = no expiry */
    int64_t iat;     /**< unix seconds; 0 = absent */
    int64_t nbf;     /**< unix seconds; 0 = absent */
    bool admin;      /**< the claim "admin": true (only the JSON literal true counts) */
    char **channels; /**< NULL-terminated list from "channels" (server-side subscriptions); NULL when absent */
    size_t n_channels;
    char **subscribe; /**< NULL-terminated list from "subscribe" (channels and patterns the token may read); NULL when absent */
    size_t n_subscribe;
    char *info;    /**< compact JSON text of "info"; NULL when absent */
    char *channel; /**< "channel" (subscription tokens only: a connection token carrying it is invalid); NULL when absent */
} rt_token_claims_t;

/** What tokens are verified with and what they must say; every member may be NULL (0). */
typedef struct st_rt_token_config_t {
    const char *secret;          /**< HS256/384/512 shared secret */
    const char *public_key_file; /**< PEM public key or certificate: RS*, PS*, ES256/384 */
    const char *jwks_file;       /**< JWK set ({"keys":[...]}), keys chosen by "kid" */
    const char *audience;        /**< when set, the token's "aud" (string or array) must contain it */
    const char *issuer;          /**< when set, the token's "iss" must equal it */
    double leeway_s;             /**< clock skew allowed on exp and nbf */
} rt_token_config_t;

/** The keys and rules tokens are checked against; shared by every thread (see each function). */
typedef struct st_rt_token_verifier_t rt_token_verifier_t;

/**
 * Builds a verifier from cfg, reading the PEM and JWKS files now (cfg's strings are copied). Returns 0 with *out
 * (free with rt_token_verifier_free), or RT_EINVAL with a message naming the file and what is wrong with it.
 */
int rt_token_verifier_new(const rt_token_config_t *cfg, rt_token_verifier_t **out, char *err, size_t errlen);

/**
 * Replaces the JWKS keys with the set in `json` (a document fetched from token_jwks_url, or re-read), atomically:
 * a verification running meanwhile finishes with the keys it started with. On an error (RT_EINVAL with a message)
 * the old keys stay. Any thread.
 */
int rt_token_verifier_set_jwks(rt_token_verifier_t *v, const char *json, size_t len, char *err, size_t errlen);

/**
 * Gives dst the JWKS keys src holds now, unless dst has some already (a fetch into dst came first): for a
 * verifier rebuilt on reload, so that it need not wait for the next fetch. Any thread.
 */
void rt_token_verifier_adopt_jwks(rt_token_verifier_t *dst, rt_token_verifier_t *src);

/** Whether any token could verify: a secret, a public key or at least one JWKS key. NULL: false. Any thread. */
bool rt_token_verifier_has_keys(const rt_token_verifier_t *v);

/** Frees the verifier (NULL allowed); no verification may be running. */
void rt_token_verifier_free(rt_token_verifier_t *v);

/**
 * Verifies `token` at time `now_s` (unix seconds) and fills `claims` (zeroed first; free with
 * rt_token_claims_free(), also after a failure). The header's "alg" picks the key kind: HS* the secret only
 * (never a public key's text), RS* or PS* an RSA key, ES256/ES384 an EC key on P-256/P-384; "kid" picks the JWKS
 * key, else every key of the right kind is tried. Returns 0; RT_ERANGE when the token has expired (exp + leeway
 * <= now: Centrifuge answers "token expired"); RT_EINVAL for anything else (v NULL or without keys, malformed,
 * refused algorithm, unknown kid, bad signature, wrong aud or iss, not valid yet, a claim of the wrong type),
 * with a short reason in err. Any thread, concurrently with rt_token_verifier_set_jwks.
 */
int rt_token_verify(rt_token_verifier_t *v, const char *token, int64_t now_s, rt_token_claims_t *claims, char *err, size_t errlen);

/** How rt_token_sign_with signs; members may be NULL. */
typedef struct st_rt_token_signing_t {
    const char *alg;     /**< HS256/384/512, RS256/384/512, ES256, ES384; NULL: HS256 with a secret, RS256 or ES256
                              by the private key's kind */
    const char *secret;  /**< for HS* */
    const char *key_pem; /**< PEM private key text, for RS* and ES* */
    const char *kid;     /**< the header's "kid" */
    const char *aud;     /**< the "aud" claim */
    const char *iss;     /**< the "iss" claim */
} rt_token_signing_t;

/**
 * Signs `claims`: "sub" always, "iat", "exp" and "nbf" when non-zero, "admin" when true, "channels" and
 * "subscribe" when non-NULL, "info" (must be valid JSON text) and "channel" when non-NULL, and "aud" and "iss"
 * from how. On success *token is a new string (free()) and 0 is returned; RT_EINVAL with a message for a missing
 * or unusable secret or key, an algorithm that does not fit it, or invalid info JSON.
 */
int rt_token_sign_with(const rt_token_signing_t *how, const rt_token_claims_t *claims, char **token, char *err, size_t errlen);

/** rt_token_sign_with HS256 and `secret`, nothing else. */
int rt_token_sign(const char *secret, const rt_token_claims_t *claims, char **token);

/**
 * What the claims grant beyond admin, "subscribe" then "channels", as one new NULL-terminated list (free with
 * rt_token_grants_free), or NULL when they grant nothing; *n is its length.
 */
char **rt_token_grants(const rt_token_claims_t *claims, size_t *n);
/** Frees a list from rt_token_grants (NULL allowed). */
void rt_token_grants_free(char **list);

/** Frees what the claims own and zeroes them. */
void rt_token_claims_free(rt_token_claims_t *claims);

#endif
