/*
 * What a running server can change without dropping a connection, and the SIGHUP that changes it: the
 * configuration is loaded again the way it was first (file, environment, the same flags); a configuration that
 * does not load or whose keys do not read leaves the running one as it is. Applied: log_level, api_keys, the token
 * keys and rules (token_secret, token_public_key, token_jwks_file, token_jwks_url, audience, issuer, leeway),
 * allowed_origins, namespaces, the limits, timeouts and sizes read per use. Not applied, and named in the log line:
 * listen, workers, mode, history_size, history_ttl, insecure, broker, redis_url (restart for those).
 *
 * The server's config, access and tokens are swapped whole (atomic pointers); what they replace is kept until the
 * server exits, so a worker that read the old pointer goes on safely with it.
 */
#ifndef RT_SERVER_RELOAD_H
#define RT_SERVER_RELOAD_H

#include <stddef.h>
#include "server/config.h"

typedef struct st_rt_server_t rt_server_t;
typedef struct st_rt_reload_t rt_reload_t;

/** Loads a configuration into cfg (defaults, then sources, then rt_config_finish): 0, or an error in err. */
typedef int (*rt_config_loader_t)(rt_config_t *cfg, void *ctx, char *err, size_t errlen);

/**
 * Sets s->config (cfg, which the caller owns and frees after rt__reload_free), s->access, s->tokens and
 * s->admission, and starts fetching token_jwks_url. NULL with a message when the token keys do not load.
 * load (may be NULL: no reloads) reads the configuration again on SIGHUP.
 */
rt_reload_t *rt__reload_new(rt_server_t *s, rt_config_t *cfg, rt_config_loader_t load, void *ctx, char *err, size_t errlen);
/** Loads the configuration again and applies it (SIGHUP). Main thread. */
void rt__reload_run(rt_reload_t *r);
/** Stops the JWKS fetch; call once no worker runs. Frees what reloads replaced and the current set, but cfg. */
void rt__reload_free(rt_reload_t *r);

#endif
