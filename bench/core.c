/*
 * Micro-benchmark of the core delivery path: rt_broadcaster_broadcast + dispatch (queue, subscription index
 * match, filter evaluation, per-client dedup, send) with 10,000 subscriptions over 1,000 channels.
 *
 *   build/release/bench/core [seconds]      (default 2; at most 60)
 *
 * Wakeup mode with dispatch on the main thread, so one thread does all the work and nothing else is timed.
 * Events are built and accepted before the clock starts and broadcast repeatedly (a broadcast takes a
 * reference), so parsing and JSON rendering are not part of the figure. Clients count and return.
 * Prints one line: events/s and deliveries/s over wall time, and the CPU time used; on a busy machine the
 * rate per CPU second (also printed) is the steadier figure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "realtime.h"

enum {
    N_CHANNELS = 1000,
    N_SUBS = 10000,
    N_PATTERN_SUBS = 10, /* dashboards on "incidents.*"; the rest are exact */
    N_EVENTS = 4096,     /* distinct prepared events, cycled */
    BATCH = 256,         /* broadcasts between dispatches */
};

static const char *const severities[] = {"SEV-1", "SEV-2", "SEV-3", "SEV-4"};

typedef struct {
    rt_client_t super;
    unsigned long n;
} counting_client_t;

static unsigned long total_sends;

static int count_send(rt_client_t *client, rt_event_t *ev, rt_subscription_t *sub, size_t ci)
{
    ((counting_client_t *)client)->n++;
    total_sends++;
    return 0;
}

static const rt_client_ops_t count_ops = {.send = count_send};

static void no_wakeup(void *ctx)
{
}

static double now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static rt_filter_t *severity_filter(size_t k)
{
    /* a mix: one severity, two severities (any-of), severity + type, or no filter */
    json_t *spec;
    switch (k % 4) {
    case 0:
        spec = json_pack("{s:s}", "severity", "SEV-1");
        break;
    case 1:
        spec = json_pack("{s:[s,s]}", "severity", "SEV-1", "SEV-2");
        break;
    case 2:
        spec = json_pack("{s:s, s:s}", "severity", severities[k / 4 % 4], "type", "incident.updated");
        break;
    default:
        return NULL;
    }
    rt_filter_t *f;
    char err[256];
    if (rt_filter_compile_simple(spec, &f, err, sizeof(err)) != 0) {
        fprintf(stderr, "filter: %s\n", err);
        exit(1);
    }
    json_decref(spec);
    return f;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    if (!(seconds > 0) || seconds > 60)
        seconds = 2.0;

    rt_broadcaster_config_t cfg = {.buffer = RT_BROADCASTER_DEFAULT_BUFFER, .wakeup = no_wakeup};
    rt_broadcaster_t *b = rt_broadcaster_new(&cfg);
    static char channel_names[N_CHANNELS][32];
    for (size_t i = 0; i < N_CHANNELS; i++)
        snprintf(channel_names[i], sizeof(channel_names[i]), "incidents.INC-%zu", i);

    counting_client_t *clients = calloc(N_SUBS, sizeof(*clients));
    for (size_t i = 0; i < N_SUBS; i++) {
        clients[i].super.ops = &count_ops;
        const char *ch = i < N_PATTERN_SUBS ? "incidents.*" : channel_names[i % N_CHANNELS];
        if (rt_broadcaster_subscribe(b, &clients[i].super, &ch, 1, severity_filter(i)) == NULL) {
            fprintf(stderr, "subscribe %s failed\n", ch);
            return 1;
        }
    }

    static rt_event_t *events[N_EVENTS];
    static const char *const types[] = {"incident.created", "incident.updated", "timeline.updated", "sla.breach"};
    for (size_t i = 0; i < N_EVENTS; i++) {
        const char *chs[2] = {"incidents", channel_names[rnd() % N_CHANNELS]};
        json_t *data = json_pack("{s:s, s:s, s:s}", "id", chs[1] + 10, "severity", severities[rnd() % 4], "status", "open");
        char err[256];
        if (rt_event_new(NULL, types[rnd() % 4], chs, 2, data, &events[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "event: %s\n", err);
            return 1;
        }
        json_decref(data);
        rt_event_accept(events[i], i + 1, NULL);
    }

    unsigned long n_events = 0;
    double start = now_s(CLOCK_MONOTONIC), cpu_start = now_s(CLOCK_PROCESS_CPUTIME_ID), elapsed;
    do {
        for (size_t i = 0; i < BATCH; i++) {
            if (rt_broadcaster_broadcast(b, events[n_events % N_EVENTS]) != 0)
                break; /* RT_EAGAIN: dispatch, then go on */
            n_events++;
        }
        rt_broadcaster_dispatch(b, 0);
        elapsed = now_s(CLOCK_MONOTONIC) - start;
    } while (elapsed < seconds);
    double cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;

    rt_broadcaster_stats_t st;
    rt_broadcaster_stats(b, &st);
    if (st.delivered != total_sends || st.published != n_events || st.queued != 0) {
        fprintf(stderr, "inconsistent: delivered %llu sends %lu published %llu events %lu\n", (unsigned long long)st.delivered,
                total_sends, (unsigned long long)st.published, n_events);
        return 1;
    }
    printf("core: %d subscriptions over %d channels with filters: %.0f events/s, %.0f deliveries/s (%lu events, %lu "
           "deliveries in %.2f s, 1 thread, %.2f s CPU: %.0f events/CPU-s)\n",
           N_SUBS, N_CHANNELS, n_events / elapsed, total_sends / elapsed, n_events, total_sends, elapsed, cpu, n_events / cpu);

    rt_broadcaster_close(b);
    for (size_t i = 0; i < N_EVENTS; i++)
        rt_event_unref(events[i]);
    free(clients);
    return 0;
}
