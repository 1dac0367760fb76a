/*
 * The seed package's usage example, in C: a broadcaster, one client subscribed to "incidents" and "system"
 * for SEV-1 events only, and three events, of which the client must get exactly two.
 *
 *   make example          (or: build/release/examples/seed_usage)
 *
 * Exits 0 when exactly the expected events were delivered, 1 otherwise.
 */
#include <stdio.h>
#include <string.h>
#include "realtime.h"

/* A client is a struct of operations plus user data: here, a console "connection" that prints and counts. */
typedef struct st_console_client_t {
    rt_client_t super; /* first, so the broadcaster's rt_client_t * is also ours */
    const char *user;
    int delivered;
    char types[8][RT_EVENT_TYPE_MAX + 1];
    int closed;
} console_client_t;

/* Runs on the broadcaster's delivery thread. A real transport would queue ev's encoded form for writing. */
static int console_send(rt_client_t *client, rt_event_t *ev, rt_subscription_t *sub, size_t channel_index)
{
    console_client_t *c = client->data;
    printf("%s <- [%s] %s\n", c->user, ev->channels[channel_index], ev->json);
    if (c->delivered < 8)
        snprintf(c->types[c->delivered], sizeof(c->types[0]), "%s", ev->type);
    c->delivered++;
    return 0; /* an error here would make the broadcaster drop the client and call close */
}

static void console_close(rt_client_t *client, int reason)
{
    console_client_t *c = client->data;
    printf("%s closed (%s)\n", c->user, rt_err_name(reason));
    c->closed++;
}

static const rt_client_ops_t console_ops = {.send = console_send, .close = console_close};

/* Builds and broadcasts one event; returns 0 or an RT_E* error. */
static int broadcast(rt_broadcaster_t *b, const char *id, const char *type, const char *const *channels, size_t n, json_t *data)
{
    rt_event_t *ev;
    char err[256];
    int ret = rt_event_new(id, type, channels, n, data, &ev, err, sizeof(err));
    json_decref(data); /* the event took its own reference */
    if (ret != 0) {
        fprintf(stderr, "event %s: %s\n", id, err);
        return ret;
    }
    ret = rt_broadcaster_broadcast(b, ev); /* never blocks: RT_EAGAIN if the 1000-event buffer is full */
    rt_event_unref(ev);                    /* the broadcaster holds its own reference while queued */
    if (ret != 0)
        fprintf(stderr, "broadcast %s: %s\n", id, rt_strerror(ret));
    return ret;
}

int main(void)
{
    /* broadcaster := realtime.NewBroadcaster() */
    rt_broadcaster_t *b = rt_broadcaster_new(NULL);

    /* client := &MyWebSocketClient{id: "user123"} */
    console_client_t client = {.super = {.ops = &console_ops}, .user = "user123"};
    client.super.data = &client;

    /* broadcaster.Subscribe(client, []string{"incidents", "system"}, map[string]string{"severity": "SEV-1"}) */
    json_t *spec = json_pack("{s:s}", "severity", "SEV-1");
    rt_filter_t *filter;
    char err[256];
    if (rt_filter_compile_simple(spec, &filter, err, sizeof(err)) != 0) {
        fprintf(stderr, "filter: %s\n", err);
        return 1;
    }
    json_decref(spec);
    const char *const channels[] = {"incidents", "system"};
    rt_subscription_t *sub = rt_broadcaster_subscribe(b, &client.super, channels, 2, filter); /* owns filter now */
    if (sub == NULL) {
        fprintf(stderr, "subscribe failed\n");
        return 1;
    }

    /* broadcaster.Broadcast(&realtime.Event{...}): a SEV-1 incident (delivered), a SEV-2 one (filtered out),
     * and a SEV-1 system notification (delivered). */
    const char *const incident_channels[] = {"incidents", "incidents.INC-123"};
    const char *const incident2_channels[] = {"incidents", "incidents.INC-124"};
    const char *const system_channels[] = {"system"};
    int ret = 0;
    ret |= broadcast(b, "evt-123", "incident.created", incident_channels, 2,
                     json_pack("{s:s, s:s, s:s, s:s}", "id", "INC-123", "severity", "SEV-1", "status", "open", "title",
                               "Checkout API returning 500s"));
    ret |= broadcast(b, "evt-124", "incident.created", incident2_channels, 2,
                     json_pack("{s:s, s:s, s:s}", "id", "INC-124", "severity", "SEV-2", "status", "open"));
    ret |= broadcast(b, "evt-125", "system.notification", system_channels, 1,
                     json_pack("{s:s, s:s}", "severity", "SEV-1", "message", "Maintenance window starts in 10 minutes"));

    rt_broadcaster_stats_t stats;
    rt_broadcaster_stats(b, &stats);
    printf("published %llu, subscriptions %zu, channels %zu\n", (unsigned long long)stats.published, stats.subscriptions,
           stats.channels);

    /* Close delivers everything already accepted, then closes each client once. */
    rt_broadcaster_close(b);

    bool ok = ret == 0 && client.delivered == 2 && strcmp(client.types[0], "incident.created") == 0 &&
              strcmp(client.types[1], "system.notification") == 0 && client.closed == 1 && stats.published == 3;
    printf("%s: %d deliveries (expected 2: incident.created evt-123, system.notification evt-125)\n", ok ? "OK" : "FAIL",
           client.delivered);
    return ok ? 0 : 1;
}
