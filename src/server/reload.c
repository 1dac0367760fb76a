#include <stdlib.h>
#include <string.h>
#include "net/jwks_fetch.h"
#include "net/limits.h"
#include "server/reload.h"
#include "server/server.h"
#include "util/mem.h"

#define LOG_PREFIX "server"
#include "util/log.h"

/* What one reload replaced: valid until the server exits, for the workers that still hold it. */
typedef struct st_retired_t {
    struct st_retired_t *next;
    rt_config_t *config; /* NULL: the caller's first one */
    rt_access_t *access;
    rt_token_verifier_t *tokens;
} retired_t;

struct st_rt_reload_t {
    rt_server_t *server;
    rt_config_t *first; /* the caller's */
    rt_config_loader_t load;
    void *ctx;
    rt_jwks_fetch_t *jwks;
    retired_t *retired;
};

static rt_access_t *access_new(const rt_config_t *cfg)
{
    rt_access_t *a = rt_mem_alloc(sizeof(*a));
    *a = (rt_access_t){.namespaces = cfg->namespaces, .n_namespaces = cfg->n_namespaces, .insecure = cfg->insecure};
    return a;
}

/* log_level and log_format (the config has checked both names). */
static void apply_log_level(const rt_config_t *cfg)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (cfg->log_level != NULL && strcmp(cfg->log_level, levels[i]) == 0)
            rt_log_level = RT_LOG_ERROR + i;
    rt_log_format = cfg->log_format != NULL && strcmp(cfg->log_format, "json") == 0 ? RT_LOG_JSON : RT_LOG_TEXT;
}

/* The limits and trusted proxies (checked when the configuration was loaded) into a. */
static void configure_admission(rt_admission_t *a, const rt_config_t *cfg)
{
    rt_cidr_t *trusted = rt_mem_calloc(cfg->trusted_proxies.n + 1, sizeof(*trusted));
    for (size_t i = 0; i < cfg->trusted_proxies.n; i++)
        rt_cidr_parse(cfg->trusted_proxies.items[i], &trusted[i]);
    rt_admission_configure(a, cfg->max_connections, cfg->max_connections_per_ip, trusted, cfg->trusted_proxies.n);
    free(trusted);
}

static bool same_string(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

rt_reload_t *rt__reload_new(rt_server_t *s, rt_config_t *cfg, rt_config_loader_t load, void *ctx, char *err, size_t errlen)
{
    rt_token_verifier_t *tokens;
    if (rt_server_tokens_new(cfg, &tokens, err, errlen) != 0)
        return NULL;
    rt_reload_t *r = rt_mem_calloc(1, sizeof(*r));
    *r = (rt_reload_t){.server = s, .first = cfg, .load = load, .ctx = ctx};
    if (cfg->token_jwks_url != NULL &&
        (r->jwks = rt_jwks_fetch_start(cfg->token_jwks_url, cfg->token_jwks_refresh_s, tokens, err, errlen)) == NULL) {
        rt_token_verifier_free(tokens);
        free(r);
        return NULL;
    }
    s->config = cfg;
    s->access = access_new(cfg);
    s->tokens = tokens;
    s->admission = rt_admission_new(0, 0, NULL, 0);
    configure_admission(s->admission, cfg);
    apply_log_level(cfg);
    return r;
}

/* Loads the next configuration; NULL (logged) when it does not load or its token keys do not. */
static rt_config_t *load_next(rt_reload_t *r, rt_token_verifier_t **tokens, char *changed, size_t changed_len, char *kept,
                              size_t kept_len)
{
    char err[512];
    rt_config_t *next = rt_mem_alloc(sizeof(*next));
    int ok = r->load(next, r->ctx, err, sizeof(err)) == 0;
    if (ok) {
        rt_config_reloadable(next, r->server->config, changed, changed_len, kept, kept_len);
        ok = rt_config_finish(next, err, sizeof(err)) == 0 && rt_server_tokens_new(next, tokens, err, sizeof(err)) == 0;
    }
    if (!ok) {
        RT_LOG_ERR("reload (SIGHUP): %s; the running configuration stays", err);
        rt_config_free(next);
        free(next);
        return NULL;
    }
    return next;
}

void rt__reload_run(rt_reload_t *r)
{
    rt_server_t *s = r->server;
    if (r->load == NULL) {
        RT_LOG_WARN("reload (SIGHUP): this server has no configuration source to load again");
        return;
    }
    char changed[1024], kept[256], err[512];
    rt_token_verifier_t *tokens;
    rt_config_t *next = load_next(r, &tokens, changed, sizeof(changed), kept, sizeof(kept)), *cur = s->config;
    if (next == NULL)
        return;
    rt_jwks_fetch_t *old_fetch = NULL;
    if (r->jwks != NULL && same_string(next->token_jwks_url, cur->token_jwks_url) &&
        next->token_jwks_refresh_s == cur->token_jwks_refresh_s) {
        /* The same key source: later fetches go to the new verifier, which starts with the keys fetched so far. */
        rt_jwks_fetch_retarget(r->jwks, tokens);
        rt_token_verifier_adopt_jwks(tokens, s->tokens);
    } else {
        rt_jwks_fetch_t *fetch = NULL;
        if (next->token_jwks_url != NULL &&
            (fetch = rt_jwks_fetch_start(next->token_jwks_url, next->token_jwks_refresh_s, tokens, err, sizeof(err))) == NULL) {
            RT_LOG_ERR("reload (SIGHUP): %s; the running configuration stays", err);
            rt_token_verifier_free(tokens);
            rt_config_free(next);
            free(next);
            return;
        }
        old_fetch = r->jwks;
        r->jwks = fetch;
    }
    retired_t *old = rt_mem_alloc(sizeof(*old));
    *old = (retired_t){.next = r->retired, .config = cur == r->first ? NULL : cur, .access = s->access, .tokens = s->tokens};
    r->retired = old;
    configure_admission(s->admission, next);
    s->tokens = tokens;
    s->access = access_new(next);
    s->config = next;
    apply_log_level(next);
    rt_jwks_fetch_stop(old_fetch);
    RT_LOG_INFO("reloaded the configuration (SIGHUP): %s%s%s%s", changed[0] ? "changed " : "nothing changed", changed,
                kept[0] ? "; not applied, restart to change: " : "", kept);
}

void rt__reload_free(rt_reload_t *r)
{
    if (r == NULL)
        return;
    rt_server_t *s = r->server;
    rt_jwks_fetch_stop(r->jwks);
    for (retired_t *o = r->retired, *next; o != NULL; o = next) {
        next = o->next;
        if (o->config != NULL) {
            rt_config_free(o->config);
            free(o->config);
        }
        free(o->access);
        rt_token_verifier_free(o->tokens);
        free(o);
    }
    free(s->access);
    rt_token_verifier_free(s->tokens);
    rt_admission_free(s->admission);
    if (s->config != r->first) {
        rt_config_free(s->config);
        free(s->config);
    }
    s->config = r->first;
    s->access = NULL;
    s->tokens = NULL;
    s->admission = NULL;
    free(r);
}
