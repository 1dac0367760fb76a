/*
 * Server API authentication: `Authorization: apikey KEY` or `X-API-Key: KEY`, compared in constant time
 * with each configured key. No key is needed in insecure mode only; with
 * no key configured every call is refused.
 */
#ifndef RT_SERVER_AUTH_H
#define RT_SERVER_AUTH_H

#include <stdbool.h>
#include "net/http.h"
#include "server/config.h"

/**
 * Checks the request's API key against cfg. Returns 0, or RT_EPERM with *why set to a static message for the
 * 401 reply.
 */
int rt_auth_check_api_key(const rt_config_t *cfg, const rt_http_request_t *req, const char **why);
/** rt_auth_check_api_key, answering 401 unauthorized (with WWW-Authenticate) when refused; true when allowed. */
bool rt_auth_api(rt_conn_t *c, const rt_http_request_t *req);
/** True when the strings are equal; the time taken depends only on the length of `secret`. */
bool rt_auth_equal(const char *given, size_t given_len, const char *secret, size_t secret_len);

#endif
