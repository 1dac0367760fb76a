/*
 * Server configuration: one JSON file (--config FILE), every key also a `--key value` flag and a
 * REALTIME_KEY environment variable (upper case, '-' and '.' as '_'); flag > env > file > default.
 * Durations are seconds (numbers, fractions allowed); sizes are bytes.
 */
#ifndef RT_SERVER_CONFIG_H
#define RT_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/access.h"

typedef enum { RT_MODE_HYBRID, RT_MODE_WEBSOCKET, RT_MODE_CENTRIFUGE } rt_mode_t;

/** A list of strings from a JSON array, or from comma-separated text in flags and env. */
typedef struct st_rt_strlist_t {
    char **items; /**< NULL-terminated (NULL when empty) */
    size_t n;
} rt_strlist_t;

typedef struct st_rt_config_t {
    char *listen;              /**< "host:port"; default "127.0.0.1:8080" */
    char host[64];             /**< parsed from listen */
    int port;
    unsigned workers;          /**< default: one per core */
    rt_mode_t mode;            /**< default hybrid */
    double heartbeat_s;        /**< 25 */
    double pong_timeout_s;     /**< 10 */
    size_t history_size;       /**< 10000 */
    double history_ttl_s;      /**< 3600 */
    size_t max_event_bytes;    /**< 65536 */
    size_t max_body_bytes;     /**< 1 MiB */
    size_t max_batch;          /**< 1000 */
    size_t max_message_bytes;  /**< 65536 */
    size_t client_queue_bytes; /**< 1 MiB */
    size_t max_header_bytes;   /**< 16384: request line + headers, else 431 */
    double header_timeout_s;   /**< 10: a request's headers must arrive within it */
    double idle_timeout_s;     /**< 60: keep-alive connections idle this long are closed */
    double lingering_timeout_s; /**< 2: input read and dropped this long after a closing reply (0: off) */
    size_t lingering_bytes;    /**< 1 MiB: at most this much of it (0: off) */
    double shutdown_timeout_s; /**< 10: graceful shutdown deadline */
    bool insecure;             /**< development mode: API without key, every read allowed, any Origin */
    rt_namespace_t *namespaces; /**< from "namespaces": channel options by pattern, first match wins */
    size_t n_namespaces;
    rt_strlist_t api_keys;     /**< from "api_keys": [..] or a comma-separated flag/env */
    rt_strlist_t allowed_origins; /**< Origins browsers may use the server from ("*": any); none by default */
    size_t max_connections;    /**< 0: up to the open-file limit */
    size_t max_connections_per_ip; /**< 0: no limit */
    rt_strlist_t trusted_proxies; /**< CIDRs whose X-Forwarded-For names the client */
    size_t max_subscriptions;  /**< 128 per connection */
    size_t max_channels_per_subscribe; /**< 64 */
    size_t client_command_rate; /**< 50 WebSocket messages/s per connection; 0: no limit */
    size_t client_command_burst; /**< 100 */
    char *token_secret;        /**< HS256/384/512 secret for client JWTs; NULL = none */
    char *token_public_key;    /**< PEM file with the public key for RS*, PS*, ES256/384 client JWTs; NULL = none */
    char *token_jwks_file;     /**< JWK set file, keys chosen by kid; NULL = none */
    char *token_jwks_url;      /**< https:// URL of a JWK set, fetched in the background; NULL = none */
    double token_jwks_refresh_s; /**< 300: how often token_jwks_url is fetched again */
    char *token_audience;      /**< a token's aud must contain it; NULL = aud not checked */
    char *token_issuer;        /**< a token's iss must equal it; NULL = iss not checked */
    double token_leeway_s;     /**< 0: clock skew allowed on a token's exp and nbf */
    double centrifuge_ping_s;  /**< 25 */
    double centrifuge_pong_s;  /**< 8 */
    char *broker;              /**< "memory" (default) or "redis" */
    char *redis_url;           /**< default "redis://127.0.0.1:6379" */
    rt_strlist_t redis_sentinels; /**< host:port of Redis Sentinels; none: redis_url is the master */
    char *redis_master_name;   /**< the master's name in the sentinels; default "mymaster" */
    char *log_level;           /**< error|warn|info|debug; default info */
    char *log_format;          /**< text (default) or json (rt_log_format) */
    bool access_log;           /**< a line per HTTP request answered and per stream closed; default false */
} rt_config_t;

/** Splits "host:port" ("[v6]:port") into host and port (1..65535); 0, or -1 when it is not of that form. */
int rt_config_parse_host_port(const char *s, char *host, size_t hostlen, int *port);
/** Fills cfg with the defaults. */
void rt_config_defaults(rt_config_t *cfg);
/**
 * Applies, in order of precedence, the file named by --config (or REALTIME_CONFIG), the REALTIME_* environment
 * and the --key value flags in argv[0..argc). Returns 0, or a negative value with a message in err naming the
 * key ("--workers: must be an integer between 1 and 256", "config.json: line 3, column 5: ...",
 * "config.json: unknown key \"foo\""): -2 when the error is in argv (a usage error: unknown option, missing
 * or invalid flag value, stray argument), -1 for the file or the environment. Empty REALTIME_* variables count
 * as unset. Call rt_config_defaults() first.
 */
int rt_config_load(rt_config_t *cfg, int argc, char **argv, char *err, size_t errlen);
/** Checks cross-field rules and derives host/port; 0 or -1 with a message. */
int rt_config_finish(rt_config_t *cfg, char *err, size_t errlen);
/** Writes the effective configuration as JSON (secrets masked) to a new string (free()). */
char *rt_config_dump(const rt_config_t *cfg);
/**
 * For a reload: names in changed (comma-separated) the keys whose value next changes from cur, and for the keys a
 * running server cannot change (listen, workers, mode, history_size, history_ttl, insecure, broker, redis_url)
 * puts cur's value back into next and names them in kept instead. Both finished (rt_config_finish); finish next
 * again after, for what it derives from the values put back (host and port from listen).
 */
void rt_config_reloadable(rt_config_t *next, const rt_config_t *cur, char *changed, size_t changed_len, char *kept, size_t kept_len);
/** Prints one entry per key (flag, argument, meaning, env variable, default) for --help. */
void rt_config_usage(FILE *out);

/** One configuration key as `realtime serve --help` and the realtime.json(5) page describe it. */
typedef struct st_rt_config_key_doc_t {
    const char *name; /**< the key in the file: "max_event_bytes" */
    char flag[64];    /**< the flag without its dashes: "max-event-bytes" */
    char env[80];     /**< "REALTIME_MAX_EVENT_BYTES" */
    const char *arg;  /**< the value's placeholder: "BYTES" */
    const char *def;  /**< the default as written ("65536"), or how it is derived ("one per online CPU", "none") */
    const char *help; /**< what the key does, one sentence */
    char value[256];  /**< what a value must be: "a size in bytes between 256 and 67108864 (suffixes K, M, G allowed)" */
    bool in_file;     /**< false for "config", which only a flag or the environment can set */
} rt_config_key_doc_t;

/** Fills doc for the i-th key (in --help order); false when i is past the last key. Static strings; any thread. */
bool rt_config_key_doc(size_t i, rt_config_key_doc_t *doc);
/** Frees what the config owns. */
void rt_config_free(rt_config_t *cfg);

#endif
