#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "net/addr.h"
#include "net/origin.h"
#include "server/config.h"
#include "util/log.h"
#include "util/mem.h"

/*
 * One row per key: the file, the environment and the flags all go through set_value() with the row, so the
 * three sources parse and validate identically, and --help and the defaults come from the same rows.
 */
enum key_type {
    K_FILE, K_UINT, K_COUNT, K_BYTES, K_SECONDS, K_BOOL, K_MODE, K_CHOICE, K_STRING, K_SECRET,
    K_LIST,         /* rt_strlist_t; items checked by item_check when set */
    K_SECRET_LIST,  /* rt_strlist_t printed masked */
    K_NAMESPACES
};

typedef struct st_cfg_key_t {
    const char *name;
    enum key_type type;
    size_t offset;
    double min, max;                                    /* numeric types */
    const char *const *choices;                         /* K_MODE (index = rt_mode_t), K_CHOICE; NULL-terminated */
    const char *(*check)(const char *, char *, size_t); /* K_STRING: extra validation, returns NULL or a message */
    bool (*item_check)(const char *);                   /* K_LIST: whether an item is valid */
    const char *item_help;                              /* K_LIST, K_SECRET_LIST: what an item must be */
    bool fixed;                                         /* a reload (SIGHUP) cannot change it: restart */
    const char *arg;                                    /* placeholder in --help */
    const char *def;                                    /* the default as it would be written; NULL: none or derived */
    const char *def_help;                               /* how to describe a derived default */
    const char *help;
} cfg_key_t;

/* What check-config prints for a secret; refused as a value, so its output never loads a secret of "***". */
#define SECRET_MASK "***"

#define F(field) offsetof(rt_config_t, field)
#define MIB (1024.0 * 1024)
#define DAY 86400.0

static const char *const mode_names[] = {"hybrid", "websocket", "centrifuge", NULL};
static const char *const broker_names[] = {"memory", "redis", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_format_names[] = {"text", "json", NULL}; /* index = RT_LOG_TEXT, RT_LOG_JSON */

static int parse_listen(const char *s, char *host, size_t hostlen, int *port, char *msg, size_t n);

static const char *check_listen(const char *s, char *msg, size_t n)
{
    char host[64];
    int port;
    return parse_listen(s, host, sizeof(host), &port, msg, n) == 0 ? NULL : msg;
}

static const char *check_redis_url(const char *s, char *msg, size_t n)
{
    if (strncmp(s, "redis://", 8) == 0 || strncmp(s, "unix://", 7) == 0)
        return NULL;
    snprintf(msg, n, "must be a redis://host:port[/db] or unix:///path URL");
    return msg;
}

/* A sentinel address: host:port (IPv6 as [addr]:port), the port 1..65535. */
static bool sentinel_addr_valid(const char *s)
{
    char host[256];
    int port;
    return rt_config_parse_host_port(s, host, sizeof(host), &port) == 0;
}

static const char *check_https_url(const char *s, char *msg, size_t n)
{
    if (strncmp(s, "https://", 8) == 0 && s[8] != '\0' && s[8] != '/')
        return NULL;
    snprintf(msg, n, "must be an https:// URL");
    return msg;
}

static const cfg_key_t keys[] = {
    {"config", K_FILE, 0, .arg = "FILE", .def_help = "none", .help = "JSON configuration file (a flag or REALTIME_CONFIG only)"},
    {"listen", K_STRING, F(listen), .check = check_listen, .fixed = true, .arg = "ADDR", .def = "127.0.0.1:8080",
     .help = "address to listen on: IPv4:port, [IPv6]:port, localhost:port or :port (all interfaces)"},
    {"workers", K_UINT, F(workers), 1, 256, .fixed = true, .arg = "N", .def_help = "one per online CPU",
     .help = "worker threads, each with its own event loop and SO_REUSEPORT listener"},
    {"mode", K_MODE, F(mode), .choices = mode_names, .fixed = true, .arg = "MODE", .def = "hybrid",
     .help = "websocket (/ws, /events), centrifuge (Centrifuge endpoints) or hybrid (both)"},
    {"heartbeat", K_SECONDS, F(heartbeat_s), 0.01, DAY, .arg = "SECONDS", .def = "25",
     .help = "/ws ping frame and SSE ': ping' interval"},
    {"pong_timeout", K_SECONDS, F(pong_timeout_s), 0.01, DAY, .arg = "SECONDS", .def = "10",
     .help = "a /ws client that does not answer a ping within this is closed (1008)"},
    {"history_size", K_COUNT, F(history_size), 1, 100000000, .fixed = true, .arg = "N", .def = "10000",
     .help = "events kept in history for resume and /api/history"},
    {"history_ttl", K_SECONDS, F(history_ttl_s), 0.001, 365 * DAY, .fixed = true, .arg = "SECONDS", .def = "3600",
     .help = "events older than this leave history"},
    {"max_event_bytes", K_BYTES, F(max_event_bytes), 256, 64 * MIB, .arg = "BYTES", .def = "65536",
     .help = "largest accepted event (its whole JSON)"},
    {"max_body_bytes", K_BYTES, F(max_body_bytes), 256, 1024 * MIB, .arg = "BYTES", .def = "1048576",
     .help = "largest HTTP request body (413 above)"},
    {"max_batch", K_COUNT, F(max_batch), 1, 1000000, .arg = "N", .def = "1000",
     .help = "most events in one POST /api/events batch"},
    {"max_message_bytes", K_BYTES, F(max_message_bytes), 256, 64 * MIB, .arg = "BYTES", .def = "65536",
     .help = "largest message a WebSocket client may send (1009 above)"},
    {"client_queue_bytes", K_BYTES, F(client_queue_bytes), 4096, 1024 * MIB, .arg = "BYTES", .def = "1048576",
     .help = "outbound queue per client; a client that falls further behind is disconnected"},
    {"max_header_bytes", K_BYTES, F(max_header_bytes), 1024, MIB, .arg = "BYTES", .def = "16384",
     .help = "largest request line plus headers (431 above)"},
    {"header_timeout", K_SECONDS, F(header_timeout_s), 0.01, DAY, .arg = "SECONDS", .def = "10",
     .help = "a request's headers must arrive within this"},
    {"idle_timeout", K_SECONDS, F(idle_timeout_s), 0.01, DAY, .arg = "SECONDS", .def = "60",
     .help = "idle keep-alive HTTP connections are closed after this"},
    {"lingering_timeout", K_SECONDS, F(lingering_timeout_s), 0, 3600, .arg = "SECONDS", .def = "2",
     .help = "after a reply that ends a connection, input is still read and dropped this long so the reply is not lost "
             "to a reset (0: close at once)"},
    {"lingering_bytes", K_BYTES, F(lingering_bytes), 0, 1024 * MIB, .arg = "BYTES", .def = "1048576",
     .help = "most input read and dropped while lingering; past it nothing more is read until lingering_timeout "
             "closes (0: close at once)"},
    {"shutdown_timeout", K_SECONDS, F(shutdown_timeout_s), 0, DAY, .arg = "SECONDS", .def = "10",
     .help = "graceful shutdown deadline on SIGTERM/SIGINT"},
    {"insecure", K_BOOL, F(insecure), .fixed = true, .arg = "BOOL", .def = "false",
     .help = "development only: no API key, any channel (all too) without a token, any Origin; logged as a warning"},
    {"namespaces", K_NAMESPACES, 0, .arg = "JSON", .def_help = "none",
     .help = "channel options by pattern, first match wins: [{\"pattern\":\"public.>\",\"anonymous\":true}, ...]; keys "
             "pattern, anonymous, history, presence, join_leave, client_publish, admin_only"},
    {"api_keys", K_SECRET_LIST, F(api_keys), .arg = "K1,K2", .def_help = "none", .item_help = "non-empty keys without spaces",
     .help = "keys accepted by the server API (Authorization: apikey KEY or X-API-Key); a JSON array in the file"},
    {"allowed_origins", K_LIST, F(allowed_origins), .item_check = rt_origin_entry_valid, .arg = "O1,O2",
     .def_help = "none (any in insecure mode)", .item_help = "origins such as https://app.example.com, https://*.example.com or *",
     .help = "web pages (by Origin) that may use the server from a browser: CORS on /events, /connection/uni_sse and "
             "/api/*, WebSocket upgrades; the server's own origin is always allowed"},
    {"max_connections", K_COUNT, F(max_connections), 0, 100000000, .arg = "N", .def = "0",
     .help = "connections in all, over every worker (0: up to the open-file limit); 429 limit_exceeded beyond"},
    {"max_connections_per_ip", K_COUNT, F(max_connections_per_ip), 0, 100000000, .arg = "N", .def = "0",
     .help = "connections from one client address (an IPv6 /64), 0 = no limit; behind a proxy see trusted_proxies"},
    {"trusted_proxies", K_LIST, F(trusted_proxies), .item_check = rt_cidr_valid, .arg = "CIDR1,CIDR2", .def_help = "none",
     .item_help = "addresses or networks such as 127.0.0.1, 10.0.0.0/8 or fd00::/8",
     .help = "proxies whose X-Forwarded-For names the client address that max_connections_per_ip counts"},
    {"max_subscriptions", K_COUNT, F(max_subscriptions), 1, 128, .arg = "N", .def = "128",
     .help = "subscriptions one connection may hold (/ws subscribe ids, Centrifuge channels)"},
    {"max_channels_per_subscribe", K_COUNT, F(max_channels_per_subscribe), 1, 256, .arg = "N", .def = "64",
     .help = "channels and patterns in one subscribe (/ws, /events)"},
    {"client_command_rate", K_COUNT, F(client_command_rate), 0, 1000000, .arg = "N", .def = "50",
     .help = "messages per second a WebSocket client may send, on average (0 = no limit)"},
    {"client_command_burst", K_COUNT, F(client_command_burst), 1, 1000000, .arg = "N", .def = "100",
     .help = "messages a WebSocket client may send at once above client_command_rate"},
    {"token_secret", K_SECRET, F(token_secret), .arg = "SECRET", .def_help = "none",
     .help = "HS256/384/512 secret that client JWTs are verified with"},
    {"token_public_key", K_STRING, F(token_public_key), .arg = "FILE", .def_help = "none",
     .help = "PEM public key (or certificate) that RS*, PS*, ES256 and ES384 client JWTs are verified with"},
    {"token_jwks_file", K_STRING, F(token_jwks_file), .arg = "FILE", .def_help = "none",
     .help = "JWK set file ({\"keys\":[...]}) that client JWTs are verified with, the key chosen by kid"},
    {"token_jwks_url", K_STRING, F(token_jwks_url), .check = check_https_url, .arg = "URL", .def_help = "none",
     .help = "https:// URL of a JWK set (an identity provider's jwks_uri), fetched at startup and every token_jwks_refresh"},
    {"token_jwks_refresh", K_SECONDS, F(token_jwks_refresh_s), 1, DAY, .arg = "SECONDS", .def = "300",
     .help = "how often token_jwks_url is fetched again; a failed fetch keeps the keys from the last one"},
    {"token_audience", K_STRING, F(token_audience), .arg = "AUD", .def_help = "none",
     .help = "client JWTs must carry this in their aud claim"},
    {"token_issuer", K_STRING, F(token_issuer), .arg = "ISS", .def_help = "none",
     .help = "client JWTs must carry this as their iss claim"},
    {"token_leeway", K_SECONDS, F(token_leeway_s), 0, DAY, .arg = "SECONDS", .def = "0",
     .help = "clock skew allowed when checking a client JWT's exp and nbf"},
    {"centrifuge_ping", K_SECONDS, F(centrifuge_ping_s), 0.01, DAY, .arg = "SECONDS", .def = "25",
     .help = "Centrifuge protocol ping interval"},
    {"centrifuge_pong", K_SECONDS, F(centrifuge_pong_s), 0.01, DAY, .arg = "SECONDS", .def = "8",
     .help = "Centrifuge pong timeout (disconnect 3012)"},
    {"broker", K_CHOICE, F(broker), .choices = broker_names, .fixed = true, .arg = "NAME", .def = "memory",
     .help = "memory (single node) or redis (several nodes)"},
    {"redis_url", K_STRING, F(redis_url), .check = check_redis_url, .fixed = true, .arg = "URL", .def = "redis://127.0.0.1:6379",
     .help = "Redis server for broker=redis (with redis_sentinels: only its password and db are used)"},
    {"redis_sentinels", K_LIST, F(redis_sentinels), .item_check = sentinel_addr_valid, .fixed = true, .arg = "H1:P1,H2:P2",
     .def_help = "none", .item_help = "host:port of a Redis Sentinel",
     .help = "Redis Sentinels that name the master for broker=redis (asked in order; the node follows a failover)"},
    {"redis_master_name", K_STRING, F(redis_master_name), .fixed = true, .arg = "NAME", .def = "mymaster",
     .help = "the master's name in the sentinels (SENTINEL get-master-addr-by-name)"},
    {"log_level", K_CHOICE, F(log_level), .choices = level_names, .arg = "LEVEL", .def = "info",
     .help = "error, warn, info or debug"},
    {"log_format", K_CHOICE, F(log_format), .choices = log_format_names, .arg = "FORMAT", .def = "text",
     .help = "text (timestamp, level, module: message) or json (one object per line: ts, level, module, msg)"},
    {"access_log", K_BOOL, F(access_log), .arg = "BOOL", .def = "false",
     .help = "log each HTTP request answered and each stream (WebSocket, SSE) when it closes; never a query string"},
};

#undef F

static void format(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void format(char *buf, size_t n, const char *fmt, ...)
{
    if (n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* Key names compare with '-' and '.' as '_', ignoring case: --max-event-bytes, max_event_bytes, MAX_EVENT_BYTES. */
static char norm(char c)
{
    return c == '-' || c == '.' ? '_' : (char)tolower((unsigned char)c);
}

static const cfg_key_t *find_key(const char *name, size_t len)
{
    for (size_t i = 0; i < RT_ARRAY_SIZE(keys); i++) {
        const char *k = keys[i].name;
        size_t j = 0;
        while (j < len && k[j] != '\0' && norm(name[j]) == k[j])
            j++;
        if (j == len && k[j] == '\0')
            return &keys[i];
    }
    return NULL;
}

/* The closest key within edit distance 2, for "did you mean" hints. */
static const char *suggest(const char *name, size_t len)
{
    const char *best = NULL;
    size_t best_d = 3, row[64];
    if (len >= RT_ARRAY_SIZE(row) - 1)
        return NULL;
    for (size_t i = 0; i < RT_ARRAY_SIZE(keys); i++) {
        const char *k = keys[i].name;
        size_t klen = strlen(k);
        for (size_t j = 0; j <= klen; j++)
            row[j] = j;
        for (size_t a = 1; a <= len; a++) {
            size_t diag = row[0];
            row[0] = a;
            for (size_t b = 1; b <= klen; b++) {
                size_t up = row[b], d = diag + (norm(name[a - 1]) != k[b - 1]);
                if (up + 1 < d)
                    d = up + 1;
                if (row[b - 1] + 1 < d)
                    d = row[b - 1] + 1;
                row[b] = d;
                diag = up;
            }
        }
        if (row[klen] < best_d) {
            best_d = row[klen];
            best = k;
        }
    }
    return best;
}

static void expectation(const cfg_key_t *k, char *msg, size_t n)
{
    switch (k->type) {
    case K_UINT:
    case K_COUNT:
        format(msg, n, "must be an integer between %.15g and %.15g", k->min, k->max);
        break;
    case K_BYTES:
        format(msg, n, "must be a size in bytes between %.15g and %.15g (suffixes K, M, G allowed)", k->min, k->max);
        break;
    case K_SECONDS:
        format(msg, n, "must be a duration in seconds between %.15g and %.15g (suffixes ms, s, m, h allowed)", k->min, k->max);
        break;
    case K_BOOL:
        format(msg, n, "must be true or false");
        break;
    case K_MODE:
    case K_CHOICE: {
        size_t off = 0;
        format(msg, n, "must be one of ");
        for (size_t i = 0; k->choices[i] != NULL && (off = strlen(msg)) < n; i++)
            format(msg + off, n - off, "%s%s", i == 0 ? "" : ", ", k->choices[i]);
    } break;
    case K_LIST:
    case K_SECRET_LIST:
        format(msg, n, "must be a list of %s (comma-separated in flags and env)", k->item_help);
        break;
    default:
        format(msg, n, "must be a string");
        break;
    }
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < RT_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, true;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, true;
    }
    return false;
}

/* Parses a number with an optional unit suffix: K/M/G (KiB/MiB/GiB) for sizes, ms/s/m/h for durations. */
static bool parse_number(const cfg_key_t *k, const char *s, double *out)
{
    if (!isdigit((unsigned char)s[0]) && !(s[0] == '.' && isdigit((unsigned char)s[1])))
        return false;
    char *end;
    double v;
    if (k->type == K_SECONDS) {
        v = strtod(s, &end);
    } else {
        for (end = (char *)s; isdigit((unsigned char)*end); end++)
            ;
        if (end - s > 15)
            return false;
        v = (double)strtoull(s, NULL, 10);
    }
    double mult = 1;
    if (k->type == K_BYTES) {
        static const char *const units[] = {"k", "kib", "m", "mib", "g", "gib"};
        for (size_t i = 0; i < RT_ARRAY_SIZE(units); i++)
            if (strcasecmp(end, units[i]) == 0)
                mult = pow(1024, (double)(i / 2 + 1)), end += strlen(end);
    } else if (k->type == K_SECONDS) {
        static const char *const units[] = {"ms", "s", "m", "h"};
        static const double mults[] = {0.001, 1, 60, 3600};
        for (size_t i = 0; i < RT_ARRAY_SIZE(units); i++)
            if (strcmp(end, units[i]) == 0)
                mult = mults[i], end += strlen(end);
    }
    if (*end != '\0' || !isfinite(v))
        return false;
    *out = v * mult;
    return true;
}

static void set_string(char **field, const char *value)
{
    free(*field);
    *field = value == NULL ? NULL : rt_strdup(value);
}

static void free_list(rt_strlist_t *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->items[i]);
    free(list->items);
    *list = (rt_strlist_t){0};
}

static bool valid_list_item(const cfg_key_t *k, const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f || s[i] == ',')
            return false;
    if (k->item_check == NULL)
        return true;
    char *item = rt_strndup(s, len);
    bool ok = k->item_check(item);
    free(item);
    return ok;
}

/* Sets a list from a JSON array, or from comma-separated text (spaces around items are ignored). */
static int set_list(const cfg_key_t *k, rt_strlist_t *list, const char *text, json_t *arr)
{
    size_t cap = 1, n = 0;
    if (arr != NULL) {
        cap += json_array_size(arr);
    } else {
        for (const char *p = text; *p != '\0'; p++)
            cap += *p == ',';
        cap++;
    }
    char **items = rt_mem_calloc(cap, sizeof(char *));
    if (arr != NULL) {
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *v = json_array_get(arr, i);
            if (!json_is_string(v) || !valid_list_item(k, json_string_value(v), json_string_length(v)))
                goto Invalid;
            items[n++] = rt_strdup(json_string_value(v));
        }
    } else if (strspn(text, " \t") != strlen(text)) {
        for (const char *p = text;; p++) {
            size_t len = strcspn(p, ",");
            const char *s = p, *e = p + len;
            while (s < e && (*s == ' ' || *s == '\t'))
                s++;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (!valid_list_item(k, s, (size_t)(e - s)))
                goto Invalid;
            items[n++] = rt_strndup(s, (size_t)(e - s));
            p += len;
            if (*p == '\0')
                break;
        }
    }
    free_list(list);
    *list = (rt_strlist_t){n ? items : NULL, n};
    if (n == 0)
        free(items);
    return 0;
Invalid:
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
    return -1;
}

static int set_namespaces(rt_config_t *cfg, json_t *arr, char *msg, size_t n)
{
    rt_namespace_t *list;
    size_t count;
    if (rt_namespaces_parse(arr, &list, &count, msg, n) != 0)
        return -1;
    rt_namespaces_free(cfg->namespaces, cfg->n_namespaces);
    cfg->namespaces = list;
    cfg->n_namespaces = count;
    return 0;
}

/*
 * Sets one key from text (flags, env, a JSON string) or a JSON value; 0, or -1 with msg describing what the
 * key accepts. Numbers in the file may be JSON numbers or strings with units ("64K", "25s").
 */
static int set_value(rt_config_t *cfg, const cfg_key_t *k, const char *text, json_t *jv, char *msg, size_t n)
{
    char *field = (char *)cfg + k->offset;
    double num = 0;
    bool b;
    if (jv != NULL) {
        if (json_is_string(jv)) {
            text = json_string_value(jv);
        } else if (k->type == K_BOOL && json_is_boolean(jv)) {
            text = json_is_true(jv) ? "true" : "false";
        } else if ((k->type == K_LIST || k->type == K_SECRET_LIST) && json_is_array(jv)) {
            if (set_list(k, (rt_strlist_t *)field, NULL, jv) == 0)
                return 0;
            goto Invalid;
        } else if (k->type == K_NAMESPACES) {
            return set_namespaces(cfg, jv, msg, n);
        } else if ((k->type == K_SECRET || k->type == K_STRING) && json_is_null(jv)) {
            set_string((char **)field, NULL); /* unset, as check-config prints it */
            return 0;
        } else if (((k->type == K_UINT || k->type == K_COUNT || k->type == K_BYTES) && json_is_integer(jv)) ||
                   (k->type == K_SECONDS && json_is_number(jv))) {
            num = json_number_value(jv);
            if (json_is_integer(jv) && json_integer_value(jv) > 1000000000000000LL)
                goto Invalid;
            goto Number;
        } else {
            goto Invalid;
        }
    }
    switch (k->type) {
    case K_UINT:
    case K_COUNT:
    case K_BYTES:
    case K_SECONDS:
        if (!parse_number(k, text, &num))
            goto Invalid;
        goto Number;
    case K_BOOL:
        if (!parse_bool(text, &b))
            goto Invalid;
        *(bool *)field = b;
        return 0;
    case K_MODE:
    case K_CHOICE:
        for (size_t i = 0; k->choices[i] != NULL; i++) {
            if (strcmp(text, k->choices[i]) == 0) {
                if (k->type == K_MODE)
                    *(rt_mode_t *)field = (rt_mode_t)i;
                else
                    set_string((char **)field, text);
                return 0;
            }
        }
        goto Invalid;
    case K_LIST:
    case K_SECRET_LIST:
        if (set_list(k, (rt_strlist_t *)field, text, NULL) != 0)
            goto Invalid;
        return 0;
    case K_SECRET:
        if (strcmp(text, SECRET_MASK) == 0) {
            format(msg, n, "\"%s\" is the mask check-config prints in place of a secret: write the secret itself", SECRET_MASK);
            return -1;
        }
        for (const char *p = text; *p != '\0'; p++) {
            if ((unsigned char)*p <= ' ' || *p == 0x7f) {
                /* A placeholder ("<replace: ...>") or a pasted line break, never a secret one meant. */
                format(msg, n, "must not contain spaces or control characters (write the output of openssl rand -hex 32)");
                return -1;
            }
        }
        set_string((char **)field, text[0] == '\0' ? NULL : text);
        return 0;
    case K_STRING:
        if (k->check != NULL && k->check(text, msg, n) != NULL)
            return -1;
        set_string((char **)field, text);
        return 0;
    case K_NAMESPACES: {
        json_error_t jerr;
        json_t *arr = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (arr == NULL) {
            format(msg, n, "not valid JSON: %s", jerr.text);
            return -1;
        }
        int r = set_namespaces(cfg, arr, msg, n);
        json_decref(arr);
        return r;
    }
    case K_FILE:
        return 0;
    }
Number:
    if (!(num >= k->min && num <= k->max))
        goto Invalid;
    if (k->type == K_SECONDS) {
        *(double *)field = num;
    } else {
        if (num != floor(num))
            goto Invalid;
        if (k->type == K_UINT)
            *(unsigned *)field = (unsigned)num;
        else
            *(size_t *)field = (size_t)num;
    }
    return 0;
Invalid:
    expectation(k, msg, n);
    return -1;
}

void rt_config_defaults(rt_config_t *cfg)
{
    char msg[256];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < RT_ARRAY_SIZE(keys); i++) {
        if (keys[i].def != NULL && set_value(cfg, &keys[i], keys[i].def, NULL, msg, sizeof(msg)) != 0) {
            fprintf(stderr, "realtime: bad built-in default for %s: %s\n", keys[i].name, msg);
            abort();
        }
    }
}

static int load_file(rt_config_t *cfg, const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), *v;
    const char *name;
    char msg[256];
    int ret = 0;
    if (root == NULL) {
        if (jerr.line > 0)
            format(err, errlen, "%s: line %d, column %d: %s", path, jerr.line, jerr.column, jerr.text);
        else
            format(err, errlen, "%s: %s", path, jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        format(err, errlen, "%s: must hold a JSON object", path);
        json_decref(root);
        return -1;
    }
    json_object_foreach(root, name, v)
    {
        const cfg_key_t *k = find_key(name, strlen(name));
        const char *hint = k == NULL ? suggest(name, strlen(name)) : NULL;
        if (k == NULL) {
            format(err, errlen, "%s: unknown key \"%s\"%s%s%s", path, name, hint ? " (did you mean \"" : "", hint ? hint : "",
                   hint ? "\"?)" : "");
            ret = -1;
        } else if (k->type == K_FILE) {
            format(err, errlen, "%s: \"%s\" can only be given as --config or REALTIME_CONFIG", path, name);
            ret = -1;
        } else if (set_value(cfg, k, NULL, v, msg, sizeof(msg)) != 0) {
            format(err, errlen, "%s: %s: %s", path, name, msg);
            ret = -1;
        }
        if (ret != 0)
            break;
    }
    json_decref(root);
    return ret;
}

static int load_env(rt_config_t *cfg, char *err, size_t errlen)
{
    char env[96], msg[256];
    for (size_t i = 0; i < RT_ARRAY_SIZE(keys); i++) {
        if (keys[i].type == K_FILE)
            continue;
        size_t len = (size_t)snprintf(env, sizeof(env), "REALTIME_%s", keys[i].name);
        for (size_t j = 0; j < len; j++)
            env[j] = (char)toupper((unsigned char)env[j]);
        /* An empty variable counts as unset: compose files and init scripts export empty placeholders. */
        const char *value = getenv(env);
        if (value == NULL || value[0] == '\0')
            continue;
        if (set_value(cfg, &keys[i], value, NULL, msg, sizeof(msg)) != 0) {
            format(err, errlen, "%s: %s", env, msg);
            return -1;
        }
    }
    return 0;
}

/* Splits argv[*i] into key and value, consuming the next argument as the value when needed. */
static int next_flag(int argc, char **argv, int *i, const cfg_key_t **key, const char **value, char *err, size_t errlen)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
        format(err, errlen, "unexpected argument \"%s\"", arg);
        return -2;
    }
    const char *name = arg + 2, *eq = strchr(name, '=');
    int len = eq != NULL ? (int)(eq - name) : (int)strlen(name);
    if ((*key = find_key(name, (size_t)len)) == NULL) {
        const char *hint = suggest(name, (size_t)len);
        char dashed[64] = "";
        for (size_t j = 0; hint != NULL && hint[j] != '\0' && j < sizeof(dashed) - 1; j++)
            dashed[j] = hint[j] == '_' ? '-' : hint[j], dashed[j + 1] = '\0';
        format(err, errlen, "--%.*s: unknown option%s%s%s", len, name, hint ? " (did you mean --" : "", dashed, hint ? "?)" : "");
        return -2;
    }
    bool b;
    if (eq != NULL) {
        *value = eq + 1;
    } else if ((*key)->type == K_BOOL) {
        *value = *i + 1 < argc && parse_bool(argv[*i + 1], &b) ? argv[++*i] : "true";
    } else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
        *value = argv[++*i];
    } else {
        format(err, errlen, "--%.*s: missing value", len, name);
        return -2;
    }
    return len;
}

int rt_config_load(rt_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    const cfg_key_t *k;
    const char *value, *path = getenv("REALTIME_CONFIG");
    char msg[256];
    int len;
    if (path != NULL && path[0] == '\0')
        path = NULL;
    /* First pass: syntax, and where the file is, since the file ranks below env and flags. */
    for (int i = 0; i < argc; i++) {
        if ((len = next_flag(argc, argv, &i, &k, &value, err, errlen)) < 0)
            return len;
        if (k->type == K_FILE)
            path = value;
    }
    if (path != NULL && load_file(cfg, path, err, errlen) != 0)
        return -1;
    if (load_env(cfg, err, errlen) != 0)
        return -1;
    for (int i = 0; i < argc; i++) {
        const char *name = argv[i] + 2;
        len = next_flag(argc, argv, &i, &k, &value, err, errlen);
        if (set_value(cfg, k, value, NULL, msg, sizeof(msg)) != 0) {
            format(err, errlen, "--%.*s: %s", len, name, msg);
            return -2;
        }
    }
    return 0;
}

int rt_config_parse_host_port(const char *s, char *host, size_t hostlen, int *port)
{
    const char *h = s, *colon;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = s + 1, hlen = (size_t)(close - h), colon = close + 1;
    } else {
        if ((colon = strrchr(s, ':')) == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return -1;
        hlen = (size_t)(colon - s);
    }
    const char *p = colon + 1;
    size_t plen = strspn(p, "0123456789");
    if (hlen == 0 || hlen >= hostlen || memchr(h, ' ', hlen) != NULL || plen == 0 || plen > 5 || p[plen] != '\0' || atoi(p) < 1 ||
        atoi(p) > 65535)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = atoi(p);
    return 0;
}

static int parse_listen(const char *s, char *host, size_t hostlen, int *port, char *msg, size_t n)
{
    const char *h = s, *p;
    size_t hlen;
    bool v6 = s[0] == '[';
    if (v6) {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            format(msg, n, "must be [IPv6 address]:port, e.g. [::1]:8080");
            return -1;
        }
        h = s + 1, hlen = (size_t)(close - h), p = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL) {
            format(msg, n, "must be host:port, e.g. 127.0.0.1:8080");
            return -1;
        }
        if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
            format(msg, n, "IPv6 addresses need brackets, e.g. [::1]:8080");
            return -1;
        }
        hlen = (size_t)(colon - s), p = colon + 1;
    }
    size_t plen = strspn(p, "0123456789");
    if (plen == 0 || plen > 5 || p[plen] != '\0' || atoi(p) > 65535) {
        format(msg, n, "port must be a number between 0 and 65535");
        return -1;
    }
    *port = atoi(p);
    if (hlen >= hostlen || hlen >= 64) {
        format(msg, n, "host is too long");
        return -1;
    }
    char buf[64];
    memcpy(buf, h, hlen);
    buf[hlen] = '\0';
    if (v6) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, buf, &a6) != 1) {
            format(msg, n, "\"%s\" is not an IPv6 address", buf);
            return -1;
        }
    } else if (hlen == 0) {
        strcpy(buf, "0.0.0.0");
    } else if (strcasecmp(buf, "localhost") == 0) {
        strcpy(buf, "127.0.0.1");
    } else {
        struct in_addr a4;
        if (inet_pton(AF_INET, buf, &a4) != 1) {
            format(msg, n, "host must be an IPv4 address, [IPv6 address] or localhost, not \"%s\"", buf);
            return -1;
        }
    }
    strcpy(host, buf);
    return 0;
}

int rt_config_finish(rt_config_t *cfg, char *err, size_t errlen)
{
    char msg[256];
    if (cfg->listen == NULL ||
        parse_listen(cfg->listen, cfg->host, sizeof(cfg->host), &cfg->port, msg, sizeof(msg)) != 0) {
        format(err, errlen, "listen: %s", cfg->listen == NULL ? "missing" : msg);
        return -1;
    }
    if (cfg->workers == 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers = ncpu < 1 ? 1 : ncpu > 256 ? 256 : (unsigned)ncpu;
    }
    if (cfg->max_body_bytes < cfg->max_event_bytes) {
        format(err, errlen, "max_body_bytes (%zu) must be at least max_event_bytes (%zu)", cfg->max_body_bytes,
               cfg->max_event_bytes);
        return -1;
    }
    if (cfg->client_queue_bytes < cfg->max_event_bytes) {
        format(err, errlen,
               "client_queue_bytes (%zu) must be at least max_event_bytes (%zu): such an event could never be delivered",
               cfg->client_queue_bytes, cfg->max_event_bytes);
        return -1;
    }
    return 0;
}

static json_t *value_json(const rt_config_t *cfg, const cfg_key_t *k)
{
    const char *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case K_UINT:
        return json_integer(*(const unsigned *)field);
    case K_COUNT:
    case K_BYTES:
        return json_integer((json_int_t) * (const size_t *)field);
    case K_SECONDS:
        return json_real(*(const double *)field);
    case K_BOOL:
        return json_boolean(*(const bool *)field);
    case K_MODE:
        return json_string(k->choices[*(const rt_mode_t *)field]);
    case K_SECRET:
        return *(char *const *)field != NULL ? json_string(SECRET_MASK) : json_null();
    case K_NAMESPACES:
        return rt_namespaces_json(cfg->namespaces, cfg->n_namespaces);
    case K_LIST:
    case K_SECRET_LIST: {
        const rt_strlist_t *list = (const rt_strlist_t *)field;
        json_t *arr = json_array();
        for (size_t i = 0; i < list->n; i++)
            json_array_append_new(arr, json_string(k->type == K_SECRET_LIST ? SECRET_MASK : list->items[i]));
        return arr;
    }
    default:
        return *(char *const *)field != NULL ? json_string(*(char *const *)field) : json_null();
    }
}

char *rt_config_dump(const rt_config_t *cfg)
{
    json_t *obj = json_object();
    for (size_t i = 0; i < RT_ARRAY_SIZE(keys); i++)
        if (keys[i].type != K_FILE)
            json_object_set_new(obj, keys[i].name, value_json(cfg, &keys[i]));
    char *text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(obj);
    char *out = rt_strdup(text != NULL ? text : "{}");
    free(text);
    return out;
}

bool rt_config_key_doc(size_t i, rt_config_key_doc_t *doc)
{
    if (i >= RT_ARRAY_SIZE(keys))
        return false;
    const cfg_key_t *k = &keys[i];
    size_t j;
    for (j = 0; k->name[j] != '\0' && j + 1 < sizeof(doc->flag); j++) {
        doc->flag[j] = k->name[j] == '_' ? '-' : k->name[j];
        doc->env[j] = (char)toupper((unsigned char)k->name[j]);
    }
    doc->flag[j] = doc->env[j] = '\0';
    memmove(doc->env + 9, doc->env, j + 1);
    memcpy(doc->env, "REALTIME_", 9);
    doc->name = k->name;
    doc->arg = k->arg;
    doc->def = k->def != NULL ? k->def : k->def_help;
    doc->help = k->help;
    doc->in_file = k->type != K_FILE;
    char msg[sizeof(doc->value) + 8];
    if (k->type == K_NAMESPACES)
        format(msg, sizeof(msg), "must be a JSON array of objects (in flags and env, its JSON text)");
    else if (k->type == K_FILE)
        format(msg, sizeof(msg), "must be a file name");
    else
        expectation(k, msg, sizeof(msg));
    format(doc->value, sizeof(doc->value), "%s", strncmp(msg, "must be ", 8) == 0 ? msg + 8 : msg);
    return true;
}

/* Whether a and b hold the same value for k, secrets compared as themselves (the dump masks them). */
static bool same_value(const rt_config_t *a, const rt_config_t *b, const cfg_key_t *k)
{
    const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
    if (k->type == K_SECRET) {
        const char *x = *(char *const *)fa, *y = *(char *const *)fb;
        return x == y || (x != NULL && y != NULL && strcmp(x, y) == 0);
    }
    if (k->type == K_SECRET_LIST) {
        const rt_strlist_t *x = (const rt_strlist_t *)fa, *y = (const rt_strlist_t *)fb;
        if (x->n != y->n)
            return false;
        for (size_t i = 0; i < x->n; i++)
            if (strcmp(x->items[i], y->items[i]) != 0)
                return false;
        return true;
    }
    json_t *x = value_json(a, k), *y = value_json(b, k);
    bool same = json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return same;
}

/* Appends name to the comma-separated list in buf. */
static void add_name(char *buf, size_t n, const char *name)
{
    size_t len = strlen(buf);
    if (len < n)
        snprintf(buf + len, n - len, "%s%s", len ? ", " : "", name);
}

void rt_config_reloadable(rt_config_t *next, const rt_config_t *cur, char *changed, size_t changed_len, char *kept, size_t kept_len)
{
    changed[0] = kept[0] = '\0';
    for (size_t i = 0; i < RT_ARRAY_SIZE(keys); i++) {
        const cfg_key_t *k = &keys[i];
        if (k->type == K_FILE || same_value(next, cur, k))
            continue;
        if (!k->fixed) {
            add_name(changed, changed_len, k->name);
            continue;
        }
        add_name(kept, kept_len, k->name);
        json_t *v = value_json(cur, k); /* a fixed key is never a secret: its dump is its value */
        char msg[256];
        set_value(next, k, NULL, v, msg, sizeof(msg));
        json_decref(v);
    }
}

void rt_config_usage(FILE *out)
{
    rt_config_key_doc_t d;
    for (size_t i = 0; rt_config_key_doc(i, &d); i++)
        fprintf(out, "  --%s %s  (REALTIME_%s, default %s)\n      %s\n", d.flag, d.arg, d.env + 9, d.def, d.help);
}

void rt_config_free(rt_config_t *cfg)
{
    for (size_t i = 0; i < RT_ARRAY_SIZE(keys); i++) {
        switch (keys[i].type) {
        case K_STRING:
        case K_SECRET:
        case K_CHOICE:
            set_string((char **)((char *)cfg + keys[i].offset), NULL);
            break;
        case K_LIST:
        case K_SECRET_LIST:
            free_list((rt_strlist_t *)((char *)cfg + keys[i].offset));
            break;
        default:
            break;
        }
    }
    rt_namespaces_free(cfg->namespaces, cfg->n_namespaces);
    cfg->namespaces = NULL;
    cfg->n_namespaces = 0;
}
