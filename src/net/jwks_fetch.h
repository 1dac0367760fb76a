/*
 * token_jwks_url: a background thread that fetches an identity provider's JWK set over HTTPS and hands it to the
 * token verifier, at startup and every refresh period. The server certificate is verified against OpenSSL's
 * default trust store (so SSL_CERT_FILE / SSL_CERT_DIR apply) and must name the URL's host. A failed fetch is
 * logged and keeps the keys of the last good one; until a first fetch succeeds it is retried every
 * RT_JWKS_RETRY_S seconds (or sooner with a shorter refresh period), and tokens that need those keys are refused.
 */
#ifndef RT_NET_JWKS_FETCH_H
#define RT_NET_JWKS_FETCH_H

#include "core/token.h"

/** Retry period before the first successful fetch, in seconds. */
#define RT_JWKS_RETRY_S 10.0

/** Connect, TLS handshake, request and response each have this long (seconds). */
#define RT_JWKS_TIMEOUT_S 10

typedef struct st_rt_jwks_fetch_t rt_jwks_fetch_t;

/**
 * Starts fetching `url` (https://host[:port][/path]) into `tokens`, which must outlive rt_jwks_fetch_stop, and
 * waits for the first fetch to end (up to RT_JWKS_TIMEOUT_S seconds; it goes on in the background after that).
 * Returns the fetcher, or NULL with a message for a URL it cannot use or a thread it cannot start.
 */
rt_jwks_fetch_t *rt_jwks_fetch_start(const char *url, double refresh_s, rt_token_verifier_t *tokens, char *err, size_t errlen);

/** Makes later fetches go into tokens (a verifier rebuilt by a reload); the old one must stay valid. */
void rt_jwks_fetch_retarget(rt_jwks_fetch_t *f, rt_token_verifier_t *tokens);

/** Stops the thread (cutting a fetch in progress short) and frees the fetcher; NULL allowed. */
void rt_jwks_fetch_stop(rt_jwks_fetch_t *f);

#endif
