/*
 * The broadcaster: the seed's scenario, once-per-client delivery, per-channel clients, filters, back-pressure
 * (RT_EAGAIN, nothing dropped), send failures, unsubscribing inside send, close, and concurrent use.
 *
 * Most tests use wakeup mode and call rt_broadcaster_dispatch themselves, so every delivery happens at a
 * known point on the test thread; the thread-mode tests check the same outcomes after close.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/broadcaster.h"
#include "realtime/error.h"

/* For callbacks that may run on the delivery thread, where cmocka's longjmp must not be used. */
#define CHECK(cond)                                                                                                          \
    do {                                                                                                                     \
        if (!(cond)) {                                                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                                         \
            abort();                                                                                                         \
        }                                                                                                                    \
    } while (0)
#define CH(...) (const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)
#define MAX_REC 64

/* events */

static rt_event_t *mkev(const char *type, const char *const *channels, size_t n, const char *severity)
{
    json_t *data = severity ? json_pack("{s:s, s:s}", "id", "INC-123", "severity", severity) : json_pack("{s:s}", "id", "INC-123");
    rt_event_t *ev;
    char err[256];
    if (rt_event_new(NULL, type, channels, n, data, &ev, err, sizeof(err)) != 0)
        fail_msg("rt_event_new: %s", err);
    json_decref(data);
    return ev;
}

/* Broadcasts and drops the caller's reference, as a publisher does. */
static int publish(rt_broadcaster_t *b, rt_event_t *ev)
{
    int ret = rt_broadcaster_broadcast(b, ev);
    rt_event_unref(ev);
    return ret;
}

/* Compiles a simple-form filter (any thread). */
static rt_filter_t *filt(const char *text)
{
    json_error_t jerr;
    json_t *obj = json_loads(text, 0, &jerr);
    CHECK(obj != NULL);
    rt_filter_t *f;
    char err[256];
    if (rt_filter_compile_simple(obj, &f, err, sizeof(err)) != 0) {
        fprintf(stderr, "filter %s: %s\n", text, err);
        abort();
    }
    json_decref(obj);
    CHECK(f != NULL);
    return f;
}

/* a test client */

typedef struct st_tclient_t {
    rt_client_t super;
    rt_broadcaster_t *b;
    size_t calls;     /* send calls */
    size_t fail_from; /* send fails from this call on (1-based); 0 = never */
    size_t n;         /* recorded deliveries */
    struct {
        uint64_t seq;
        size_t ci;
        rt_subscription_t *sub;
        char type[32];
        char channel[64];
    } rec[MAX_REC];
    int closes, close_reason;
    rt_subscription_t *unsub_in_send; /* unsubscribed (once) from inside the next send */
    rt_client_t *remove_in_send;      /* removed (once) from inside the next send */
} tclient_t;

static int on_send(rt_client_t *client, rt_event_t *ev, rt_subscription_t *sub, size_t ci)
{
    tclient_t *c = (tclient_t *)client;
    c->calls++;
    CHECK(rt_subscription_client(sub) == client);
    CHECK(ci < ev->n_channels);
    CHECK(ev->seq != 0); /* accepted before anyone sees it */
    CHECK(ev->json != NULL);
    if (c->fail_from != 0 && c->calls >= c->fail_from)
        return -EPIPE;
    if (c->n < MAX_REC) {
        c->rec[c->n].seq = ev->seq;
        c->rec[c->n].ci = ci;
        c->rec[c->n].sub = sub;
        snprintf(c->rec[c->n].type, sizeof(c->rec[c->n].type), "%s", ev->type);
        snprintf(c->rec[c->n].channel, sizeof(c->rec[c->n].channel), "%s", ev->channels[ci]);
    }
    c->n++;
    if (c->unsub_in_send != NULL) {
        rt_subscription_t *s = c->unsub_in_send;
        c->unsub_in_send = NULL;
        rt_broadcaster_unsubscribe(c->b, s);
    }
    if (c->remove_in_send != NULL) {
        rt_client_t *r = c->remove_in_send;
        c->remove_in_send = NULL;
        rt_broadcaster_remove_client(c->b, r);
    }
    return 0;
}

static void on_close(rt_client_t *client, int reason)
{
    tclient_t *c = (tclient_t *)client;
    c->closes++;
    c->close_reason = reason;
}

static const rt_client_ops_t tclient_ops = {.send = on_send, .close = on_close};

static void tclient_init(tclient_t *c, rt_broadcaster_t *b, unsigned flags)
{
    memset(c, 0, sizeof(*c));
    c->super.ops = &tclient_ops;
    c->super.data = c;
    c->super.flags = flags;
    c->b = b;
}

/* wakeup mode */

static int wakeups;

static void on_wakeup(void *ctx)
{
    CHECK(ctx == &wakeups);
    wakeups++;
}

static rt_broadcaster_t *new_wakeup(size_t buffer)
{
    wakeups = 0;
    rt_broadcaster_config_t cfg = {.buffer = buffer, .wakeup = on_wakeup, .wakeup_ctx = &wakeups};
    return rt_broadcaster_new(&cfg);
}

static rt_broadcaster_stats_t stats_of(rt_broadcaster_t *b)
{
    rt_broadcaster_stats_t st;
    memset(&st, 0xa5, sizeof(st)); /* every field must be written */
    rt_broadcaster_stats(b, &st);
    return st;
}

/* The seed's example: ["incidents","system"] with {"severity":"SEV-1"}. */
static void seed_scenario(rt_broadcaster_t *b, tclient_t *c, bool dispatch)
{
    rt_subscription_t *sub = rt_broadcaster_subscribe(b, &c->super, CH("incidents", "system"), filt("{\"severity\":\"SEV-1\"}"));
    assert_non_null(sub);
    assert_int_equal(publish(b, mkev("incident.created", CH("incidents", "incidents.INC-123"), "SEV-1")), 0);
    assert_int_equal(publish(b, mkev("incident.created", CH("incidents", "incidents.INC-124"), "SEV-2")), 0);
    assert_int_equal(publish(b, mkev("incident.updated", CH("incidents.INC-123"), "SEV-1")), 0); /* channel not subscribed */
    assert_int_equal(publish(b, mkev("system.notification", CH("system"), "SEV-1")), 0);
    assert_int_equal(publish(b, mkev("system.notification", CH("system"), NULL)), 0); /* missing field: no match */
    if (dispatch)
        assert_int_equal(rt_broadcaster_dispatch(b, 0), 5);
}

static void check_seed_deliveries(tclient_t *c)
{
    assert_int_equal(c->n, 2);
    assert_string_equal(c->rec[0].type, "incident.created");
    assert_string_equal(c->rec[0].channel, "incidents");
    assert_int_equal(c->rec[0].ci, 0);
    assert_string_equal(c->rec[1].type, "system.notification");
    assert_string_equal(c->rec[1].channel, "system");
    assert_true(c->rec[0].seq < c->rec[1].seq);
}

static void test_seed_scenario_wakeup(void **state)
{
    rt_broadcaster_t *b = new_wakeup(0);
    tclient_t c;
    tclient_init(&c, b, 0);
    seed_scenario(b, &c, true);
    check_seed_deliveries(&c);
    rt_broadcaster_stats_t st = stats_of(b);
    assert_int_equal(st.published, 5);
    assert_int_equal(st.delivered, 2);
    assert_int_equal(st.refused, 0);
    assert_int_equal(st.queued, 0);
    rt_broadcaster_close(b);
    assert_int_equal(c.closes, 1);
    assert_int_equal(c.close_reason, RT_ECLOSED);
}

static void test_seed_scenario_thread(void **state)
{
    rt_broadcaster_t *b = rt_broadcaster_new(NULL);
    tclient_t c;
    tclient_init(&c, b, 0);
    seed_scenario(b, &c, false);
    rt_broadcaster_close(b); /* delivers what was accepted, then closes the client */
    check_seed_deliveries(&c);
    assert_int_equal(c.closes, 1);
}

static void test_dedup(void **state)
{
    rt_broadcaster_t *b = new_wakeup(0);
    tclient_t c, d;
    tclient_init(&c, b, 0);
    tclient_init(&d, b, 0);
    /* c reaches the event through both channels of one subscription, an exact + pattern one and `all` */
    rt_subscription_t *s1 = rt_broadcaster_subscribe(b, &c.super, CH("incidents", "incidents.INC-123"), NULL);
    rt_subscription_t *s2 = rt_broadcaster_subscribe(b, &c.super, CH("incidents.*", "incidents"), NULL);
    rt_subscription_t *s3 = rt_broadcaster_subscribe(b, &c.super, CH("all"), NULL);
    assert_non_null(s1);
    assert_non_null(s2);
    assert_non_null(s3);
    assert_non_null(rt_broadcaster_subscribe(b, &d.super, CH("incidents.>"), NULL));

    assert_int_equal(publish(b, mkev("incident.created", CH("incidents", "incidents.INC-123"), "SEV-1")), 0);
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 1);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.calls, 1);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.rec[0].channel, "incidents.INC-123");
    /* the next event is delivered once again (the per-event mark does not stick) */
    assert_int_equal(publish(b, mkev("incident.updated", CH("incidents", "incidents.INC-123"), "SEV-1")), 0);
    assert_int_equal(publish(b, mkev("system.notification", CH("system"), "SEV-1")), 0); /* only via `all` */
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 2);
    assert_int_equal(c.n, 3);
    assert_ptr_equal(c.rec[2].sub, s3);
    assert_int_equal(d.n, 2);
    assert_int_equal(stats_of(b).delivered, 5);
    rt_broadcaster_close(b);
    assert_int_equal(c.closes, 1); /* once, however many subscriptions */
    assert_int_equal(d.closes, 1);
}

static void test_per_channel(void **state)
{
    rt_broadcaster_t *b = new_wakeup(0);
    tclient_t c, e;
    tclient_init(&c, b, RT_CLIENT_PER_CHANNEL);
    tclient_init(&e, b, RT_CLIENT_PER_CHANNEL);
    /* Centrifuge style: one subscription per channel */
    rt_subscription_t *s1 = rt_broadcaster_subscribe(b, &c.super, CH("incidents"), NULL);
    rt_subscription_t *s2 = rt_broadcaster_subscribe(b, &c.super, CH("incidents.INC-123"), NULL);
    rt_subscription_t *s3 = rt_broadcaster_subscribe(b, &c.super, CH("timeline.INC-123"), NULL);
    assert_non_null(s1);
    assert_non_null(s2);
    assert_non_null(s3);
    rt_subscription_t *es = rt_broadcaster_subscribe(b, &e.super, CH("incidents.*", "system"), NULL);

    assert_int_equal(publish(b, mkev("incident.created", CH("incidents", "incidents.INC-123", "system"), "SEV-1")), 0);
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 1);
    assert_int_equal(c.n, 2); /* one per subscribed channel the event names */
    size_t seen = 0;
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(c.rec[i].seq, c.rec[0].seq);
        assert_ptr_equal(c.rec[i].sub, c.rec[i].ci == 0 ? s1 : s2);
        seen |= (size_t)1 << c.rec[i].ci;
    }
    assert_int_equal(seen, 3);
    assert_int_equal(e.n, 2);
    assert_int_equal(e.rec[0].ci + e.rec[1].ci, 1 + 2);
    assert_ptr_equal(e.rec[0].sub, es);

    /* filters apply per subscription */
    rt_broadcaster_unsubscribe(b, s2);
    assert_non_null(rt_broadcaster_subscribe(b, &c.super, CH("incidents.INC-123"), filt("{\"severity\":\"SEV-2\"}")));
    assert_int_equal(publish(b, mkev("incident.updated", CH("incidents", "incidents.INC-123"), "SEV-1")), 0);
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 1);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.rec[2].ci, 0);
    assert_int_equal(stats_of(b).delivered, 2 + 2 + 1 + 1);
    rt_broadcaster_close(b);
    assert_int_equal(c.closes, 1);
    assert_int_equal(e.closes, 1);
}

static void test_filters(void **state)
{
    rt_broadcaster_t *b = new_wakeup(0);
    tclient_t c, t, m;
    tclient_init(&c, b, 0);
    tclient_init(&t, b, 0);
    tclient_init(&m, b, 0);
    /* overlapping subscriptions with different filters: the one whose filter passes delivers, once */
    rt_subscription_t *sev2 = rt_broadcaster_subscribe(b, &c.super, CH("incidents"), filt("{\"severity\":\"SEV-2\"}"));
    rt_subscription_t *sev1 = rt_broadcaster_subscribe(b, &c.super, CH("incidents.*"), filt("{\"severity\":[\"SEV-1\",\"SEV-0\"]}"));
    assert_non_null(sev2);
    assert_non_null(sev1);
    assert_non_null(rt_broadcaster_subscribe(b, &t.super, CH("incidents"), filt("{\"type\":\"incident.created\"}")));
    assert_non_null(
        rt_broadcaster_subscribe(b, &m.super, CH("incidents"), filt("{\"type\":\"incident.created\",\"severity\":\"SEV-1\"}")));

    assert_int_equal(publish(b, mkev("incident.created", CH("incidents", "incidents.INC-123"), "SEV-1")), 0);
    assert_int_equal(publish(b, mkev("incident.updated", CH("incidents", "incidents.INC-123"), "SEV-2")), 0);
    assert_int_equal(publish(b, mkev("incident.created", CH("incidents", "incidents.INC-123"), "SEV-3")), 0);
    assert_int_equal(publish(b, mkev("incident.created", CH("incidents"), "SEV-1")), 0); /* only "incidents" */
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 4);

    assert_int_equal(c.n, 2);
    assert_ptr_equal(c.rec[0].sub, sev1);
    assert_ptr_equal(c.rec[1].sub, sev2);
    assert_int_equal(t.n, 3);
    assert_int_equal(m.n, 2);
    assert_true(m.rec[0].seq < m.rec[1].seq);
    rt_broadcaster_close(b);
}

static void test_buffer_full(void **state)
{
    rt_broadcaster_t *b = new_wakeup(3);
    tclient_t c;
    tclient_init(&c, b, 0);
    assert_non_null(rt_broadcaster_subscribe(b, &c.super, CH("incidents"), NULL));
    rt_event_t *evs[5];
    for (int i = 0; i < 5; i++)
        evs[i] = mkev("incident.updated", CH("incidents"), "SEV-1");
    for (int i = 0; i < 3; i++)
        assert_int_equal(rt_broadcaster_broadcast(b, evs[i]), 0);
    assert_int_equal(wakeups, 1); /* only when the queue became non-empty */
    assert_int_equal(rt_broadcaster_broadcast(b, evs[3]), RT_EAGAIN);
    assert_int_equal(evs[3]->seq, 0); /* refused: not accepted, not referenced (ASan would see the leak) */
    assert_int_equal(rt_broadcaster_broadcast(b, evs[3]), RT_EAGAIN);
    assert_int_equal(c.n, 0); /* nothing drains without dispatch */
    rt_broadcaster_stats_t st = stats_of(b);
    assert_int_equal(st.published, 3);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.queued, 3);
    assert_int_equal(st.delivered, 0);

    /* everything accepted is delivered, in order; then the publisher's retry succeeds */
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 3);
    assert_int_equal(c.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.rec[i].seq, evs[i]->seq);
    assert_int_equal(rt_broadcaster_broadcast(b, evs[3]), 0);
    assert_int_equal(rt_broadcaster_broadcast(b, evs[4]), 0);
    assert_int_equal(wakeups, 2);
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 2);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.rec[3].seq, evs[3]->seq);
    assert_int_equal(c.rec[4].seq, evs[4]->seq);
    assert_true(evs[3]->seq > evs[2]->seq && evs[4]->seq > evs[3]->seq);
    st = stats_of(b);
    assert_int_equal(st.published, 5);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.delivered, 5);
    assert_int_equal(st.queued, 0);
    for (int i = 0; i < 5; i++)
        rt_event_unref(evs[i]);
    rt_broadcaster_close(b);
}

static void test_dispatch_max_and_wakeup(void **state)
{
    rt_broadcaster_t *b = new_wakeup(10);
    tclient_t c;
    tclient_init(&c, b, 0);
    assert_non_null(rt_broadcaster_subscribe(b, &c.super, CH("a"), NULL));
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 0);
    assert_int_equal(wakeups, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(publish(b, mkev("incident.updated", CH("a"), NULL)), 0);
    assert_int_equal(wakeups, 1);
    /* a bounded dispatch asks to be woken again while events remain */
    assert_int_equal(rt_broadcaster_dispatch(b, 3), 3);
    assert_int_equal(wakeups, 2);
    assert_int_equal(stats_of(b).queued, 1);
    assert_int_equal(rt_broadcaster_dispatch(b, 3), 1);
    assert_int_equal(wakeups, 2);
    assert_int_equal(c.n, 4);
    rt_broadcaster_close(b);
}

static void test_seq(void **state)
{
    rt_broadcaster_t *b = new_wakeup(0);
    tclient_t c;
    tclient_init(&c, b, 0);
    assert_non_null(rt_broadcaster_subscribe(b, &c.super, CH("a"), NULL));
    rt_event_t *pre = mkev("incident.updated", CH("a"), NULL);
    rt_event_accept(pre, 1000, NULL); /* accepted by a history before: keeps its seq */
    assert_int_equal(publish(b, mkev("incident.updated", CH("a"), NULL)), 0);
    assert_int_equal(publish(b, pre), 0);
    assert_int_equal(publish(b, mkev("incident.updated", CH("a"), NULL)), 0);
    rt_broadcaster_dispatch(b, 0);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.rec[1].seq, 1000);
    assert_true(c.rec[0].seq != 0 && c.rec[2].seq > c.rec[0].seq);
    rt_broadcaster_close(b);
}

static void test_send_failure(void **state)
{
    rt_broadcaster_t *b = new_wakeup(0);
    tclient_t bad, good, pc;
    tclient_init(&bad, b, 0);
    tclient_init(&good, b, 0);
    tclient_init(&pc, b, RT_CLIENT_PER_CHANNEL);
    bad.fail_from = 2;
    pc.fail_from = 1;
    assert_non_null(rt_broadcaster_subscribe(b, &bad.super, CH("incidents"), NULL));
    assert_non_null(rt_broadcaster_subscribe(b, &bad.super, CH("incidents.*", "all"), NULL));
    assert_non_null(rt_broadcaster_subscribe(b, &good.super, CH("incidents"), NULL));
    assert_non_null(rt_broadcaster_subscribe(b, &pc.super, CH("incidents", "incidents.INC-1"), NULL));
    rt_broadcaster_stats_t st = stats_of(b);
    assert_int_equal(st.clients, 3);
    assert_int_equal(st.subscriptions, 4);

    assert_int_equal(publish(b, mkev("incident.created", CH("incidents", "incidents.INC-1"), NULL)), 0);
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 1);
    /* pc failed on its first channel: no second send, removed and closed once */
    assert_int_equal(pc.calls, 1);
    assert_int_equal(pc.closes, 1);
    assert_int_equal(bad.n, 1);
    assert_int_equal(bad.closes, 0);
    assert_int_equal(good.n, 1);
    st = stats_of(b);
    assert_int_equal(st.send_failures, 1);
    assert_int_equal(st.delivered, 2);
    assert_int_equal(st.clients, 2);
    assert_int_equal(st.subscriptions, 3);

    /* bad fails on its second event, reached through three entries: one send call, one close */
    assert_int_equal(publish(b, mkev("incident.updated", CH("incidents", "incidents.INC-1"), NULL)), 0);
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 1);
    assert_int_equal(bad.calls, 2);
    assert_int_equal(bad.closes, 1);
    assert_int_equal(bad.close_reason, RT_ECLOSED);
    assert_int_equal(good.n, 2);
    st = stats_of(b);
    assert_int_equal(st.send_failures, 2);
    assert_int_equal(st.delivered, 3);
    assert_int_equal(st.clients, 1);
    assert_int_equal(st.subscriptions, 1);
    assert_int_equal(st.channels, 1);
    assert_int_equal(st.patterns, 0);

    /* removed clients get nothing more, and are not closed again */
    assert_int_equal(publish(b, mkev("incident.updated", CH("incidents", "incidents.INC-1"), NULL)), 0);
    assert_int_equal(publish(b, mkev("system.notification", CH("system"), NULL)), 0);
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 2);
    assert_int_equal(bad.calls, 2);
    assert_int_equal(pc.calls, 1);
    assert_int_equal(good.n, 3);
    rt_broadcaster_close(b);
    assert_int_equal(bad.closes, 1);
    assert_int_equal(pc.closes, 1);
    assert_int_equal(good.closes, 1);
}

static void test_unsubscribe_inside_send(void **state)
{
    rt_broadcaster_t *b = new_wakeup(0);
    tclient_t pc, x, y, z;
    tclient_init(&pc, b, RT_CLIENT_PER_CHANNEL);
    tclient_init(&x, b, 0);
    tclient_init(&y, b, 0);
    tclient_init(&z, b, 0);
    /* pc unsubscribes its second channel's subscription while the first is being delivered */
    rt_subscription_t *pa = rt_broadcaster_subscribe(b, &pc.super, CH("a"), NULL);
    rt_subscription_t *pb = rt_broadcaster_subscribe(b, &pc.super, CH("b"), NULL);
    assert_non_null(pa);
    assert_non_null(pb);
    pc.unsub_in_send = pb;
    /* x, delivered first on "a", unsubscribes y's subscription (later on the same list) and removes z */
    rt_subscription_t *xs = rt_broadcaster_subscribe(b, &x.super, CH("a"), NULL);
    rt_subscription_t *ys = rt_broadcaster_subscribe(b, &y.super, CH("a"), NULL);
    assert_non_null(rt_broadcaster_subscribe(b, &z.super, CH("a.*", "b"), NULL));
    assert_non_null(xs);
    assert_non_null(ys);
    x.unsub_in_send = ys;
    x.remove_in_send = &z.super;

    assert_int_equal(publish(b, mkev("incident.updated", CH("a", "b", "a.c"), NULL)), 0);
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 1);
    assert_int_equal(pc.n, 1);
    assert_int_equal(pc.rec[0].ci, 0);
    assert_int_equal(x.n, 1);
    assert_int_equal(y.n, 0);
    assert_int_equal(z.n, 0);
    rt_broadcaster_stats_t st = stats_of(b);
    assert_int_equal(st.subscriptions, 2); /* pa, xs */
    assert_int_equal(st.clients, 2);
    assert_int_equal(st.channels, 1);
    assert_int_equal(st.patterns, 0);

    /* a client unsubscribing itself inside send gets nothing more from that subscription */
    x.unsub_in_send = xs;
    assert_int_equal(publish(b, mkev("incident.updated", CH("a"), NULL)), 0);
    assert_int_equal(publish(b, mkev("incident.updated", CH("a"), NULL)), 0);
    assert_int_equal(rt_broadcaster_dispatch(b, 0), 2);
    assert_int_equal(x.n, 2);
    assert_int_equal(pc.n, 3);
    st = stats_of(b);
    assert_int_equal(st.subscriptions, 1);
    assert_int_equal(st.clients, 1);
    rt_broadcaster_close(b);
    /* only clients still subscribed at close are closed */
    assert_int_equal(pc.closes, 1);
    assert_int_equal(x.closes, 0);
    assert_int_equal(y.closes, 0);
    assert_int_equal(z.closes, 0);
}

/* A client that frees itself in close, as a connection does. */
typedef struct {
    rt_client_t super;
    int *deliveries, *closes;
} heap_client_t;

static int heap_send(rt_client_t *client, rt_event_t *ev, rt_subscription_t *sub, size_t ci)
{
    (*((heap_client_t *)client)->deliveries)++;
    return 0;
}

static void heap_close(rt_client_t *client, int reason)
{
    heap_client_t *c = (heap_client_t *)client;
    (*c->closes)++;
    free(c);
}

static const rt_client_ops_t heap_ops = {.send = heap_send, .close = heap_close};

static void close_test(rt_broadcaster_t *b, bool dispatch_some)
{
    int deliveries = 0, closes = 0;
    heap_client_t *hc = calloc(1, sizeof(*hc));
    hc->super.ops = &heap_ops;
    hc->deliveries = &deliveries;
    hc->closes = &closes;
    assert_non_null(rt_broadcaster_subscribe(b, &hc->super, CH("a"), NULL));
    assert_non_null(rt_broadcaster_subscribe(b, &hc->super, CH("b.*"), NULL));
    assert_non_null(rt_broadcaster_subscribe(b, &hc->super, CH("all"), NULL));
    tclient_t c, none;
    tclient_init(&c, b, 0);
    tclient_init(&none, b, 0);
    none.super.ops = &(const rt_client_ops_t){.send = on_send}; /* no close op */
    assert_non_null(rt_broadcaster_subscribe(b, &c.super, CH("a", "b.x"), NULL));
    assert_non_null(rt_broadcaster_subscribe(b, &none.super, CH("a"), NULL));
    int accepted = 0;
    for (int i = 0; i < 200; i++) {
        int ret = publish(b, i % 2 ? mkev("incident.updated", CH("a"), NULL) : mkev("incident.updated", CH("b.x", "a"), NULL));
        if (ret == 0)
            accepted++;
        else
            assert_int_equal(ret, RT_EAGAIN);
    }
    if (dispatch_some)
        rt_broadcaster_dispatch(b, 10);
    rt_broadcaster_close(b); /* delivers everything accepted, then closes each client once */
    assert_int_equal(deliveries, accepted);
    assert_int_equal(c.n, accepted);
    assert_int_equal(none.n, accepted);
    assert_int_equal(closes, 1);
    assert_int_equal(c.closes, 1);
    for (size_t i = 1; i < MAX_REC; i++)
        assert_true(c.rec[i].seq > c.rec[i - 1].seq);
}

static void test_close_wakeup(void **state)
{
    rt_broadcaster_t *b = new_wakeup(150);
    close_test(b, true);
}

static void test_close_thread(void **state)
{
    close_test(rt_broadcaster_new(NULL), false);
}

static void test_subscribe_invalid(void **state)
{
    rt_broadcaster_t *b = new_wakeup(0);
    tclient_t c;
    tclient_init(&c, b, 0);
    /* the filter is freed on refusal (ASan: no leak) */
    assert_null(rt_broadcaster_subscribe(b, &c.super, NULL, 0, filt("{\"severity\":\"SEV-1\"}")));
    assert_null(rt_broadcaster_subscribe(b, &c.super, CH("a..b"), filt("{\"severity\":\"SEV-1\"}")));
    assert_null(rt_broadcaster_subscribe(b, &c.super, CH("ok", ">.a"), NULL));
    assert_null(rt_broadcaster_subscribe(b, &c.super, CH("ok", "a b"), NULL));
    assert_null(rt_broadcaster_subscribe(b, &c.super, CH("ok", NULL), NULL));
    assert_null(rt_broadcaster_subscribe(b, &c.super, CH(""), NULL));
    rt_broadcaster_stats_t st = stats_of(b);
    assert_int_equal(st.subscriptions, 0);
    assert_int_equal(st.clients, 0);
    assert_int_equal(st.channels, 0);
    rt_broadcaster_close(b);
    assert_int_equal(c.closes, 0); /* never subscribed */
}

static void test_stats_and_accessors(void **state)
{
    rt_broadcaster_t *b = new_wakeup(0);
    tclient_t c, d;
    tclient_init(&c, b, 0);
    tclient_init(&d, b, 0);
    rt_broadcaster_stats_t st = stats_of(b);
    assert_int_equal(st.published, 0);
    assert_int_equal(st.refused, 0);
    assert_int_equal(st.delivered, 0);
    assert_int_equal(st.send_failures, 0);
    assert_int_equal(st.clients, 0);
    assert_int_equal(st.subscriptions, 0);
    assert_int_equal(st.channels, 0);
    assert_int_equal(st.patterns, 0);
    assert_int_equal(st.queued, 0);

    rt_subscription_t *s1 = rt_broadcaster_subscribe(b, &c.super, CH("incidents", "system"), filt("{\"severity\":\"SEV-1\"}"));
    rt_subscription_t *s2 = rt_broadcaster_subscribe(b, &c.super, CH("incidents.*", "all"), NULL);
    rt_subscription_t *s3 = rt_broadcaster_subscribe(b, &d.super, CH("incidents", "incidents.*", "timeline.>", "all"), NULL);
    st = stats_of(b);
    assert_int_equal(st.clients, 2);
    assert_int_equal(st.subscriptions, 3);
    assert_int_equal(st.channels, 2);  /* incidents, system */
    assert_int_equal(st.patterns, 3);  /* incidents.*, timeline.>, all */

    assert_ptr_equal(rt_subscription_client(s1), &c.super);
    assert_ptr_equal(rt_subscription_client(s3), &d.super);
    assert_null(rt_subscription_data(s1));
    int tag;
    rt_subscription_set_data(s1, &tag);
    assert_ptr_equal(rt_subscription_data(s1), &tag);

    rt_event_t *sev1 = mkev("incident.created", CH("incidents"), "SEV-1"), *sev2 = mkev("incident.created", CH("incidents"), "SEV-2"),
               *tl = mkev("timeline.updated", CH("timeline.INC-1"), "SEV-1");
    assert_true(rt_subscription_matches(s1, sev1));
    assert_false(rt_subscription_matches(s1, sev2)); /* filter */
    assert_false(rt_subscription_matches(s1, tl));   /* channel */
    assert_true(rt_subscription_matches(s2, tl));    /* all */
    assert_true(rt_subscription_matches(s3, tl));
    assert_int_equal(rt_broadcaster_broadcast(b, sev1), 0);
    assert_int_equal(rt_broadcaster_broadcast(b, sev2), 0);
    assert_int_equal(stats_of(b).queued, 2);
    assert_int_equal(stats_of(b).published, 2);
    rt_broadcaster_dispatch(b, 0);
    st = stats_of(b);
    assert_int_equal(st.delivered, 4); /* c and d, twice each */
    assert_int_equal(st.queued, 0);
    rt_event_unref(sev1);
    rt_event_unref(sev2);
    rt_event_unref(tl);

    rt_broadcaster_unsubscribe(b, s2);
    st = stats_of(b);
    assert_int_equal(st.clients, 2);
    assert_int_equal(st.subscriptions, 2);
    assert_int_equal(st.patterns, 3); /* d still holds all three */
    rt_broadcaster_remove_client(b, &d.super);
    st = stats_of(b);
    assert_int_equal(st.clients, 1);
    assert_int_equal(st.subscriptions, 1);
    assert_int_equal(st.channels, 2);
    assert_int_equal(st.patterns, 0);
    rt_broadcaster_remove_client(b, &c.super);
    st = stats_of(b);
    assert_int_equal(st.clients, 0);
    assert_int_equal(st.subscriptions, 0);
    assert_int_equal(st.channels, 0);
    /* a removed client may subscribe again */
    assert_non_null(rt_broadcaster_subscribe(b, &d.super, CH("x"), NULL));
    assert_int_equal(stats_of(b).clients, 1);
    rt_broadcaster_close(b);
    assert_int_equal(c.closes, 0); /* remove_client does not close */
    assert_int_equal(d.closes, 1);
}

/* Concurrency: 4 publishers and 2 threads subscribing/unsubscribing, against the broadcaster's own thread. */

enum { N_PUB = 4, N_CHURN = 2, PER_PUB = 3000, CHURN_CLIENTS = 8 };

typedef struct {
    rt_client_t super;
    atomic_ulong *counter;
    uint64_t last_seq;
    uint64_t *next_per_pub; /* for the steady client: the next index expected from each publisher */
    unsigned long n;
} cclient_t;

static int csend(rt_client_t *client, rt_event_t *ev, rt_subscription_t *sub, size_t ci)
{
    cclient_t *c = (cclient_t *)client;
    /* Per connection, events arrive in seq order, each once (a per-channel client sees one seq per channel).
     * A violation fails the send: counted as a send failure, which the test requires to be zero. */
    if (ev->seq < c->last_seq || (ev->seq == c->last_seq && !(client->flags & RT_CLIENT_PER_CHANNEL)))
        return -EPROTO;
    c->last_seq = ev->seq;
    if (c->next_per_pub != NULL) {
        /* and each publisher's events in the order it published them, none missing */
        json_int_t pub = json_integer_value(json_object_get(ev->data, "pub")), i = json_integer_value(json_object_get(ev->data, "i"));
        if (pub < 0 || pub >= N_PUB || (uint64_t)i != c->next_per_pub[pub])
            return -EPROTO;
        c->next_per_pub[pub] = (uint64_t)i + 1;
    }
    c->n++;
    atomic_fetch_add(c->counter, 1);
    return 0;
}

static atomic_int cclient_closes;

static void cclose(rt_client_t *client, int reason)
{
    atomic_fetch_add(&cclient_closes, 1);
}

static const rt_client_ops_t cops = {.send = csend, .close = cclose};

typedef struct {
    rt_broadcaster_t *b;
    int id;
    atomic_ulong refused;
    atomic_bool *stop;
    atomic_ulong *churn_delivered;
    unsigned long churn_ops;
} thread_arg_t;

static void *publisher(void *p)
{
    thread_arg_t *a = p;
    char ch[32];
    snprintf(ch, sizeof(ch), "incidents.INC-%d", a->id);
    for (int i = 0; i < PER_PUB; i++) {
        json_t *data = json_pack("{s:i, s:i, s:s}", "pub", a->id, "i", i, "severity", i % 2 ? "SEV-1" : "SEV-2");
        rt_event_t *ev;
        char err[128];
        if (rt_event_new(NULL, "incident.updated", (const char *const[]){"incidents", ch}, 2, data, &ev, err, sizeof(err)) != 0)
            abort();
        json_decref(data);
        int ret;
        while ((ret = rt_broadcaster_broadcast(a->b, ev)) == RT_EAGAIN) {
            atomic_fetch_add(&a->refused, 1);
            sched_yield();
        }
        if (ret != 0)
            abort();
        rt_event_unref(ev);
    }
    return NULL;
}

static void *churner(void *p)
{
    thread_arg_t *a = p;
    cclient_t clients[CHURN_CLIENTS];
    rt_subscription_t *subs[CHURN_CLIENTS] = {0};
    memset(clients, 0, sizeof(clients));
    for (int i = 0; i < CHURN_CLIENTS; i++) {
        clients[i].super.ops = &cops;
        clients[i].super.flags = i % 3 == 0 ? RT_CLIENT_PER_CHANNEL : 0;
        clients[i].counter = a->churn_delivered;
    }
    static const char *const choices[][2] = {{"incidents", NULL}, {"incidents.*", NULL}, {"all", NULL},
                                             {"incidents", "incidents.>"}, {"incidents.INC-1", "system"}, {">", NULL}};
    unsigned x = 12345u + (unsigned)a->id;
    while (!atomic_load(a->stop)) {
        x = x * 1103515245u + 12345u;
        int k = (int)((x >> 8) % CHURN_CLIENTS);
        if (subs[k] != NULL) {
            if ((x >> 20) % 4 == 0)
                rt_broadcaster_remove_client(a->b, &clients[k].super);
            else
                rt_broadcaster_unsubscribe(a->b, subs[k]);
            subs[k] = NULL;
        } else {
            const char *const *c = choices[(x >> 16) % 6];
            rt_filter_t *f = (x >> 24) % 2 ? filt("{\"severity\":\"SEV-1\"}") : NULL;
            subs[k] = rt_broadcaster_subscribe(a->b, &clients[k].super, c, c[1] ? 2 : 1, f);
            if (subs[k] == NULL)
                abort();
        }
        if (a->churn_ops++ % 64 == 0) {
            rt_broadcaster_stats_t st;
            rt_broadcaster_stats(a->b, &st);
        }
        /* Churn as hard as publishers publish, not harder: under valgrind, which runs one thread at a time, churners
         * that never yield starved the delivery thread for minutes. */
        sched_yield();
    }
    for (int k = 0; k < CHURN_CLIENTS; k++)
        rt_broadcaster_remove_client(a->b, &clients[k].super);
    return NULL;
}

static void test_concurrent(void **state)
{
    rt_broadcaster_config_t cfg = {.buffer = 64}; /* small: publishers meet RT_EAGAIN and retry */
    rt_broadcaster_t *b = rt_broadcaster_new(&cfg);
    atomic_ulong steady_count = 0, steady_pc_count = 0, sev1_count = 0, churn_delivered = 0;
    atomic_bool stop = false;
    uint64_t next_per_pub[N_PUB] = {0};
    cclient_t steady = {.super = {.ops = &cops}, .counter = &steady_count, .next_per_pub = next_per_pub};
    cclient_t steady_pc = {.super = {.ops = &cops, .flags = RT_CLIENT_PER_CHANNEL}, .counter = &steady_pc_count};
    cclient_t sev1 = {.super = {.ops = &cops}, .counter = &sev1_count};
    atomic_store(&cclient_closes, 0);
    /* subscribed throughout: every event once (it reaches "incidents" three ways) */
    assert_non_null(rt_broadcaster_subscribe(b, &steady.super, CH("incidents", "incidents.*"), NULL));
    assert_non_null(rt_broadcaster_subscribe(b, &steady.super, CH("all"), NULL));
    /* per channel: two deliveries per event */
    assert_non_null(rt_broadcaster_subscribe(b, &steady_pc.super, CH("incidents"), NULL));
    assert_non_null(rt_broadcaster_subscribe(b, &steady_pc.super, CH("incidents.*"), NULL));
    /* filtered: the SEV-1 half */
    assert_non_null(rt_broadcaster_subscribe(b, &sev1.super, CH("incidents"), filt("{\"severity\":\"SEV-1\"}")));

    pthread_t pubs[N_PUB], churns[N_CHURN];
    thread_arg_t pa[N_PUB], ca[N_CHURN];
    for (int i = 0; i < N_CHURN; i++) {
        ca[i] = (thread_arg_t){.b = b, .id = i, .stop = &stop, .churn_delivered = &churn_delivered};
        assert_int_equal(pthread_create(&churns[i], NULL, churner, &ca[i]), 0);
    }
    for (int i = 0; i < N_PUB; i++) {
        pa[i] = (thread_arg_t){.b = b, .id = i};
        assert_int_equal(pthread_create(&pubs[i], NULL, publisher, &pa[i]), 0);
    }
    unsigned long refused = 0;
    for (int i = 0; i < N_PUB; i++) {
        pthread_join(pubs[i], NULL);
        refused += atomic_load(&pa[i].refused);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < N_CHURN; i++) {
        pthread_join(churns[i], NULL);
        assert_true(ca[i].churn_ops > 0);
    }

    /* wait for the delivery thread to drain; stats are consistent under the broadcaster's lock */
    rt_broadcaster_stats_t st;
    for (;;) {
        rt_broadcaster_stats(b, &st);
        if (st.queued == 0)
            break;
        sched_yield();
    }
    const unsigned long total = (unsigned long)N_PUB * PER_PUB;
    assert_int_equal(st.published, total);
    assert_int_equal(st.refused, refused);
    assert_int_equal(st.send_failures, 0);
    assert_int_equal(st.clients, 3);
    assert_int_equal(st.subscriptions, 5);
    assert_int_equal(st.channels, 1);
    assert_int_equal(st.patterns, 2);
    assert_int_equal(steady.n, total);
    assert_int_equal(steady_pc.n, 2 * total);
    assert_int_equal(sev1.n, total / 2);
    assert_int_equal(atomic_load(&steady_count) + atomic_load(&steady_pc_count) + atomic_load(&sev1_count), 3 * total + total / 2);
    for (int i = 0; i < N_PUB; i++)
        assert_int_equal(next_per_pub[i], PER_PUB);
    assert_int_equal(st.delivered, steady.n + steady_pc.n + sev1.n + atomic_load(&churn_delivered));
    rt_broadcaster_close(b);
    assert_int_equal(atomic_load(&cclient_closes), 3); /* churn clients were removed, not closed */
    print_message("concurrent: %lu events, %lu refused and retried, %lu churn deliveries\n", total, refused,
                  (unsigned long)atomic_load(&churn_delivered));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_scenario_wakeup),
        cmocka_unit_test(test_seed_scenario_thread),
        cmocka_unit_test(test_dedup),
        cmocka_unit_test(test_per_channel),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_buffer_full),
        cmocka_unit_test(test_dispatch_max_and_wakeup),
        cmocka_unit_test(test_seq),
        cmocka_unit_test(test_send_failure),
        cmocka_unit_test(test_unsubscribe_inside_send),
        cmocka_unit_test(test_close_wakeup),
        cmocka_unit_test(test_close_thread),
        cmocka_unit_test(test_subscribe_invalid),
        cmocka_unit_test(test_stats_and_accessors),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
