/*
 * The running server: configuration, history and workers, and the publish path they share.
 */
#ifndef RT_SERVER_SERVER_H
#define RT_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "realtime/event.h"
#include "realtime/history.h"
#include "core/access.h"
#include "core/token.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/limits.h"
#include "server/config.h"
#include "server/reload.h"

typedef struct st_rt_server_t rt_server_t;
typedef struct st_rt_broker_t rt_broker_t;

/** Counters shared by all workers (relaxed atomics). */
typedef struct st_rt_server_stats_t {
    atomic_uint_fast64_t published, dropped, slow_disconnects, send_failures, replayed;
    atomic_int_fast64_t connections[RT_CONN_KINDS];
    atomic_int_fast64_t subscriptions;
    atomic_int_fast64_t queued_bytes;
    atomic_uint_fast64_t limited[RT_LIMITS]; /**< refusals by limit (rt_limit_t) */
    atomic_uint_fast64_t disconnects[RT_DISC_REASONS]; /**< client connections ended, by reason */
    atomic_uint_fast64_t gaps[RT_GAP_REASONS];         /**< gaps announced to live clients, by reason */
} rt_server_stats_t;

/*
 * config, access and tokens are replaced whole on SIGHUP (src/server/reload.c): read each pointer once where
 * consistency matters. What a reload replaces stays valid until the server exits (reload.c keeps it), so a
 * worker may go on using what it read.
 */
struct st_rt_server_t {
    rt_config_t *_Atomic config;
    rt_access_t *_Atomic access; /**< who may read what: the config's namespaces and insecure, for every protocol */
    rt_token_verifier_t *_Atomic tokens; /**< client JWT keys and rules, for every protocol (rt_server_tokens_new) */
    rt_admission_t *admission;   /**< connection counts against max_connections and max_connections_per_ip */
    rt_history_t *history;
    rt_broker_t *broker; /**< sequences published events and feeds history and workers (src/broker/broker.h) */
    rt_worker_t **workers;
    unsigned n_workers;
    rt_server_stats_t stats;
    int64_t started_ms;
    atomic_bool stopping;
};

/**
 * Publishes an accepted-to-be event through the broker: it is sequenced (seq, offsets; ev is accepted), appended
 * to history and handed to every worker, in seq order. Returns 0; RT_EEXIST with *existing (a reference) when the
 * id is still in history (idempotent re-publish: nothing delivered again); RT_EAGAIN when the event cannot be taken
 * now: the workers' queues are full, or the redis broker is unreachable (nothing published). Any worker thread;
 * with the redis broker it blocks for one Redis round trip: request handlers use rt_server_publish_async.
 */
int rt_server_publish(rt_server_t *s, rt_event_t *ev, rt_event_t **existing);

/**
 * Publishes ev as rt_server_publish does without blocking worker w's loop: cb(ctx, status, existing) runs on w's
 * thread exactly once with what rt_server_publish would have returned (existing, for RT_EEXIST, is a reference the
 * callback owns). With the memory broker cb runs before this returns; with the redis broker after Redis answered
 * and this node applied the event. ev must stay referenced by the caller until cb. On w's thread.
 */
void rt_server_publish_async(rt_server_t *s, rt_worker_t *w, rt_event_t *ev, void (*cb)(void *ctx, int status, rt_event_t *existing),
                             void *ctx);

/** Readiness for /readyz: not shutting down, and the broker can publish and deliver (Redis reachable). Any thread. */
bool rt_server_ready(rt_server_t *s);

/** Events delivered to clients so far, summed over the workers. */
uint64_t rt_server_delivered(rt_server_t *s);

/**
 * Builds the token verifier the configuration describes (token_secret, token_public_key, token_jwks_file,
 * token_audience, token_issuer, token_leeway; token_jwks_url is fetched by the running server). Returns 0 with
 * *out, or RT_EINVAL with a message naming the file and what is wrong with it.
 */
int rt_server_tokens_new(const rt_config_t *cfg, rt_token_verifier_t **out, char *err, size_t errlen);

/**
 * Runs the server until SIGTERM/SIGINT and a graceful shutdown; returns the process exit code. On SIGHUP the
 * configuration is loaded again with load(…, load_ctx) (NULL: no reloads) and applied (src/server/reload.h).
 */
int rt_server_run(rt_config_t *config, rt_config_loader_t load, void *load_ctx);

/** Counts a refusal by limit l (stats.limited, /metrics). */
static inline void rt_server_count_limit(rt_server_t *s, rt_limit_t l)
{
    atomic_fetch_add_explicit(&s->stats.limited[l], 1, memory_order_relaxed);
}

/** The server a connection belongs to. */
rt_server_t *rt_conn_server(const rt_conn_t *c);

#endif
