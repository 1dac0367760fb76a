#include <string.h>
#include <strings.h>
#include "realtime/error.h"
#include "server/api.h"
#include "server/auth.h"

bool rt_auth_equal(const char *given, size_t given_len, const char *secret, size_t secret_len)
{
    /* Walk the secret's length whatever was given, so the time says nothing about how much matched. */
    unsigned char diff = given_len != secret_len;
    for (size_t i = 0; i < secret_len; i++)
        diff |= (unsigned char)secret[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
    return diff == 0;
}

/* The key a request presents (trimmed), or NULL. */
static const char *presented_key(const rt_http_request_t *req, size_t *len)
{
    const char *v = rt_http_header(req, "authorization");
    if (v != NULL) {
        while (*v == ' ' || *v == '\t')
            v++;
        if (strncasecmp(v, "apikey", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
            v = NULL;
        else
            v += 6;
    }
    if (v == NULL)
        v = rt_http_header(req, "x-api-key");
    if (v == NULL)
        return NULL;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    *len = n;
    return n != 0 ? v : NULL;
}

int rt_auth_check_api_key(const rt_config_t *cfg, const rt_http_request_t *req, const char **why)
{
    if (cfg->insecure)
        return 0;
    size_t len = 0;
    const char *key = presented_key(req, &len);
    if (key == NULL) {
        *why = cfg->api_keys.n == 0 ? "the server API needs a key and none is configured: set api_keys (realtime genconfig writes one), or run with "
                                      "--insecure for local development"
                                    : "API key required: Authorization: apikey KEY, or X-API-Key: KEY";
        return RT_EPERM;
    }
    bool ok = false;
    for (size_t i = 0; i < cfg->api_keys.n; i++) /* no early exit: every key is compared */
        ok |= rt_auth_equal(key, len, cfg->api_keys.items[i], strlen(cfg->api_keys.items[i]));
    if (!ok) {
        *why = "invalid API key";
        return RT_EPERM;
    }
    return 0;
}

bool rt_auth_api(rt_conn_t *c, const rt_http_request_t *req)
{
    const char *why;
    if (rt_auth_check_api_key(rt_conn_server(c)->config, req, &why) == 0)
        return true;
    rt__api_error(c, 401, "unauthorized", "WWW-Authenticate: apikey\r\n", "%s", why);
    return false;
}
