#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "realtime/error.h"
#include "broker/broker.h"
#include "net/fdtable.h"
#include "net/worker.h"
#include "transport/ws_handshake.h"
#include "server/notify.h"
#include "server/reload.h"
#include "server/routes.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/mem.h"

#define LOG_PREFIX "server"
#include "util/log.h"

/* The broker orders events and hands them to the workers (src/broker/memory.c is the single-node path). */
int rt_server_publish(rt_server_t *s, rt_event_t *ev, rt_event_t **existing)
{
    return s->broker->ops->publish(s->broker, ev, existing);
}

void rt_server_publish_async(rt_server_t *s, rt_worker_t *w, rt_event_t *ev, void (*cb)(void *ctx, int status, rt_event_t *existing),
                             void *ctx)
{
    if (s->broker->ops->publish_async != NULL) {
        s->broker->ops->publish_async(s->broker, w, ev, cb, ctx);
        return;
    }
    rt_event_t *existing = NULL;
    int r = s->broker->ops->publish(s->broker, ev, &existing);
    cb(ctx, r, r == RT_EEXIST ? existing : NULL);
}

bool rt_server_ready(rt_server_t *s)
{
    return !atomic_load(&s->stopping) && s->broker->ops->ready(s->broker);
}

typedef struct st_signal_ctx_t {
    rt_server_t *server;
    rt_reload_t *reload;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t deadline;
    uv_timer_t log_tick; /* summaries of suppressed log repeats (util/log.h) */
    int exit_code;
} signal_ctx_t;

static void on_hup(uv_signal_t *h, int signum)
{
    signal_ctx_t *sc = h->data;
    if (!atomic_load(&sc->server->stopping))
        rt__reload_run(sc->reload);
}

static void on_log_tick(uv_timer_t *t)
{
    rt_log_tick();
}

static void on_deadline(uv_timer_t *t)
{
    RT_LOG_ERR("shutdown deadline passed; exiting");
    exit(1);
}

static void on_signal(uv_signal_t *h, int signum)
{
    signal_ctx_t *sc = h->data;
    rt_server_t *s = sc->server;
    if (atomic_exchange(&s->stopping, true))
        return;
    RT_LOG_INFO("%s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    rt__notify("STOPPING=1");
    for (unsigned i = 0; i < s->n_workers; i++)
        rt__worker_stop(s->workers[i]);
    uv_signal_stop(&sc->sigint);
    uv_signal_stop(&sc->sigterm);
    uv_close((uv_handle_t *)&sc->sigint, NULL);
    uv_close((uv_handle_t *)&sc->sigterm, NULL);
    uv_close((uv_handle_t *)&sc->sighup, NULL); /* no reloads while stopping; and the loop ends with its handles */
    signal(SIGHUP, SIG_IGN);                      /* closing it put back the default action, which would kill us */
    /* A backstop: the workers enforce shutdown_timeout_s themselves; this catches a stuck thread. */
    uv_timer_start(&sc->deadline, on_deadline, (uint64_t)(s->config->shutdown_timeout_s * 1000) + 5000, 0);
    uv_unref((uv_handle_t *)&sc->deadline);
}

uint64_t rt_server_delivered(rt_server_t *s)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < s->n_workers; i++)
        n += rt__worker_delivered(s->workers[i]);
    return n;
}

int rt_server_tokens_new(const rt_config_t *cfg, rt_token_verifier_t **out, char *err, size_t errlen)
{
    rt_token_config_t tc = {.secret = cfg->token_secret,
                            .public_key_file = cfg->token_public_key,
                            .jwks_file = cfg->token_jwks_file,
                            .audience = cfg->token_audience,
                            .issuer = cfg->token_issuer,
                            .leeway_s = cfg->token_leeway_s};
    return rt_token_verifier_new(&tc, out, err, errlen);
}

int rt_server_run(rt_config_t *config, rt_config_loader_t load, void *load_ctx)
{
    signal(SIGPIPE, SIG_IGN);
    rt__fdtable_reserve(); /* while this is the only thread */
    rt__http_init(&rt_router);
    /* OpenSSL initialises itself (error strings, digest tables, ~2 MB of code) on first use: do it now, not
     * inside the first client's handshake, so it is neither that client's latency nor counted against it. */
    char accept[29];
    rt_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);

    rt_server_t *s = rt_mem_calloc(1, sizeof(*s));
    /* Signal handlers go in before any worker accepts, so a SIGTERM right after the first answer is graceful. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    signal_ctx_t sc = {.server = s};
    uv_signal_init(&loop, &sc.sigint);
    uv_signal_init(&loop, &sc.sigterm);
    uv_signal_init(&loop, &sc.sighup);
    uv_timer_init(&loop, &sc.deadline);
    uv_timer_init(&loop, &sc.log_tick);
    uv_timer_start(&sc.log_tick, on_log_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&sc.log_tick);
    sc.sigint.data = sc.sigterm.data = sc.sighup.data = &sc;
    uv_signal_start(&sc.sigint, on_signal, SIGINT);
    uv_signal_start(&sc.sigterm, on_signal, SIGTERM);
    uv_signal_start(&sc.sighup, on_hup, SIGHUP);
    char err[512];
    if ((sc.reload = rt__reload_new(s, config, load, load_ctx, err, sizeof(err))) == NULL) {
        RT_LOG_ERR("%s", err);
        return 1;
    }
    if (config->insecure)
        RT_LOG_WARN("insecure mode: the server API needs no key, any client may read any channel (all too) and any "
                    "web page may connect; for local development only");
    s->started_ms = rt_clock_mono_ms();
    rt_history_config_t hc = {.size = config->history_size, .ttl_ms = (int64_t)(config->history_ttl_s * 1000)};
    s->history = rt_history_new(&hc);
    s->workers = rt_mem_calloc(config->workers, sizeof(*s->workers));
    for (unsigned i = 0; i < config->workers; i++) {
        if ((s->workers[i] = rt__worker_new(s, i, err, sizeof(err))) == NULL) {
            RT_LOG_ERR("%s", err);
            return 1;
        }
        s->n_workers++;
    }
    if (config->broker != NULL && strcmp(config->broker, "redis") == 0) {
        if ((s->broker = rt__broker_redis_new(s, err, sizeof(err))) == NULL) {
            RT_LOG_ERR("%s", err);
            return 1;
        }
    } else {
        s->broker = rt__broker_memory_new(s);
    }
    for (unsigned i = 0; i < s->n_workers; i++)
        rt__worker_start(s->workers[i]);
    RT_LOG_INFO("listening on %s:%d (%u workers, mode %s, broker %s, history %zu events, epoch %s)", config->host, config->port,
                s->n_workers,
                config->mode == RT_MODE_HYBRID ? "hybrid" : config->mode == RT_MODE_WEBSOCKET ? "websocket" : "centrifuge",
                s->broker->ops->name, config->history_size, rt_history_epoch(s->history));
    /* After the workers run (a broker may deliver events, a replica's backfill, as soon as it starts) and after the
     * line above, which reads the history epoch that a replica replaces. */
    if (s->broker->ops->start(s->broker) != 0) {
        RT_LOG_ERR("broker %s failed to start", s->broker->ops->name);
        return 1;
    }
    /* Type=notify: systemd starts what depends on us once the listeners are bound and the broker runs. */
    char status[160];
    snprintf(status, sizeof(status), "READY=1\nSTATUS=listening on %s:%d", config->host, config->port);
    int nret = rt__notify(status);
    if (nret < 0)
        RT_LOG_WARN("NOTIFY_SOCKET: cannot notify systemd: %s", strerror(-nret));

    uv_run(&loop, UV_RUN_DEFAULT);

    /* No new events while the workers drain; publishes still in flight answer 503. */
    s->broker->ops->stop(s->broker);
    for (unsigned i = 0; i < s->n_workers; i++)
        rt__worker_join(s->workers[i]);
    s->broker->ops->free(s->broker);
    uv_close((uv_handle_t *)&sc.deadline, NULL);
    uv_close((uv_handle_t *)&sc.log_tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    RT_LOG_INFO("stopped: %llu events published, %llu delivered", (unsigned long long)atomic_load(&s->stats.published),
                (unsigned long long)rt_server_delivered(s));
    rt_log_flush();
    for (unsigned i = 0; i < s->n_workers; i++)
        rt__worker_free(s->workers[i]);
    rt_history_free(s->history);
    rt__reload_free(sc.reload);
    free(s->workers);
    free(s);
    return 0;
}
