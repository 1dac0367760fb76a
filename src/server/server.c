#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "realtime/error.h"
#include "net/worker.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/mem.h"

#define LOG_PREFIX "server"
#include "util/log.h"

/* Runs under the history lock, so every worker receives events in seq order. */
static void hand_to_workers(rt_event_t *ev, void *ctx)
{
    rt_server_t *s = ctx;
    for (unsigned i = 0; i < s->n_workers; i++) {
        if (rt_broadcaster_broadcast(rt__worker_broadcaster(s->workers[i]), ev) != 0) {
            atomic_fetch_add_explicit(&s->stats.dropped, 1, memory_order_relaxed);
            RT_LOG_WARN("worker %u queue full: event %s not delivered there", i, ev->id);
        }
    }
}

int rt_server_publish(rt_server_t *s, rt_event_t *ev, rt_event_t **existing)
{
    /* Refuse up front while any worker's queue is nearly full, so a publish is delivered everywhere or nowhere. */
    for (unsigned i = 0; i < s->n_workers; i++)
        if (rt__worker_queue_full(s->workers[i]))
            return RT_EAGAIN;
    int r = rt_history_append(s->history, ev, existing, hand_to_workers, s);
    if (r == 0)
        atomic_fetch_add_explicit(&s->stats.published, 1, memory_order_relaxed);
    return r;
}

typedef struct st_signal_ctx_t {
    rt_server_t *server;
    uv_signal_t sigint, sigterm;
    uv_timer_t deadline;
    int exit_code;
} signal_ctx_t;

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
    for (unsigned i = 0; i < s->n_workers; i++)
        rt__worker_stop(s->workers[i]);
    uv_signal_stop(&sc->sigint);
    uv_signal_stop(&sc->sigterm);
    uv_close((uv_handle_t *)&sc->sigint, NULL);
    uv_close((uv_handle_t *)&sc->sigterm, NULL);
    /* A backstop: the workers enforce shutdown_timeout_s themselves; this catches a stuck thread. */
    uv_timer_start(&sc->deadline, on_deadline, (uint64_t)(s->config->shutdown_timeout_s * 1000) + 5000, 0);
    uv_unref((uv_handle_t *)&sc->deadline);
}

int rt_server_run(rt_config_t *config)
{
    static const char *levels[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (config->log_level != NULL && strcmp(config->log_level, levels[i]) == 0)
            rt_log_level = i;
    signal(SIGPIPE, SIG_IGN);
    rt__http_init();

    rt_server_t *s = rt_mem_calloc(1, sizeof(*s));
    /* Signal handlers go in before any worker accepts, so a SIGTERM right after the first answer is graceful. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    signal_ctx_t sc = {.server = s};
    uv_signal_init(&loop, &sc.sigint);
    uv_signal_init(&loop, &sc.sigterm);
    uv_timer_init(&loop, &sc.deadline);
    sc.sigint.data = sc.sigterm.data = &sc;
    uv_signal_start(&sc.sigint, on_signal, SIGINT);
    uv_signal_start(&sc.sigterm, on_signal, SIGTERM);
    s->config = config;
    s->started_ms = rt_clock_mono_ms();
    rt_history_config_t hc = {.size = config->history_size, .ttl_ms = (int64_t)(config->history_ttl_s * 1000)};
    s->history = rt_history_new(&hc);
    s->workers = rt_mem_calloc(config->workers, sizeof(*s->workers));
    char err[256];
    for (unsigned i = 0; i < config->workers; i++) {
        if ((s->workers[i] = rt__worker_new(s, i, err, sizeof(err))) == NULL) {
            RT_LOG_ERR("%s", err);
            return 1;
        }
        s->n_workers++;
    }
    for (unsigned i = 0; i < s->n_workers; i++)
        rt__worker_start(s->workers[i]);
    RT_LOG_INFO("listening on %s:%d (%u workers, mode %s, history %zu events, epoch %s)", config->host, config->port, s->n_workers,
                config->mode == RT_MODE_HYBRID ? "hybrid" : config->mode == RT_MODE_WEBSOCKET ? "websocket" : "centrifuge",
                config->history_size, rt_history_epoch(s->history));

    uv_run(&loop, UV_RUN_DEFAULT);

    for (unsigned i = 0; i < s->n_workers; i++)
        rt__worker_join(s->workers[i]);
    uv_close((uv_handle_t *)&sc.deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    RT_LOG_INFO("stopped: %llu events published, %llu delivered", (unsigned long long)atomic_load(&s->stats.published),
                (unsigned long long)atomic_load(&s->stats.delivered));
    rt_history_free(s->history);
    free(s->workers);
    free(s);
    return 0;
}
