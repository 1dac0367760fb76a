/*
 * Centrifuge protocol pieces that need no network: publication encoding (event and raw data, tags, offsets, the
 * cached WebSocket frame and uni_sse block), history in Centrifuge shape (limit, reverse, since, bad positions),
 * error objects, client ids, and presence (members, stats, join/leave mail, channels, API mail, glob, delivery
 * through another worker's task queue).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/error.h"
#include "net/worker-private.h"
#include "protocol/centrifuge.h"
#include "protocol/presence.h"
#include "server/config.h"
#include "server/server.h"

static rt_event_t *mkev(const char *type, const char *const *channels, size_t n, const char *data_json, bool raw)
{
    json_t *data = data_json ? json_loads(data_json, JSON_DECODE_ANY, NULL) : NULL;
    rt_event_t *ev;
    char err[256];
    if (rt_event_new(NULL, type, channels, n, data, &ev, err, sizeof(err)) != 0)
        fail_msg("rt_event_new: %s", err);
    json_decref(data);
    if (raw)
        ev->flags |= RT_EVENT_RAW_DATA;
    return ev;
}

/* The payload of an unmasked single text frame, as parsed JSON. */
static json_t *frame_json(const rt_bytes_t *b)
{
    assert_true(b->len > 2);
    assert_int_equal((uint8_t)b->data[0], 0x81);
    unsigned l7 = (uint8_t)b->data[1] & 0x7f;
    size_t h = l7 == 127 ? 10 : l7 == 126 ? 4 : 2;
    json_error_t e;
    json_t *j = json_loadb(b->data + h, b->len - h, 0, &e);
    if (j == NULL)
        fail_msg("frame is not JSON: %s: %.*s", e.text, (int)(b->len - h), b->data + h);
    return j;
}

static void test_pub_frame_event(void **state)
{
    const char *chans[] = {"incidents", "incidents.INC-123"};
    rt_event_t *ev = mkev("incident.created", chans, 2,
                          "{\"id\":\"INC-123\",\"severity\":\"SEV-1\",\"priority\":1,\"ack\":false,\"ratio\":0.5,"
                          "\"type\":\"shadowed\",\"nested\":{\"a\":1},\"list\":[1],\"none\":null}",
                          false);
    uint64_t offsets[] = {7, 3};
    rt_event_accept(ev, 42, offsets);
    rt_bytes_t *f0 = rt__cf_pub_frame(ev, 0), *f1 = rt__cf_pub_frame(ev, 1);
    assert_ptr_equal(f0, rt__cf_pub_frame(ev, 0)); /* cached: encoded once per (event, channel) */
    json_t *j0 = frame_json(f0), *j1 = frame_json(f1);
    json_t *push = json_object_get(j0, "push");
    assert_string_equal(json_string_value(json_object_get(push, "channel")), "incidents");
    json_t *pub = json_object_get(push, "pub");
    assert_int_equal(json_integer_value(json_object_get(pub, "offset")), 7);
    /* data is the whole event JSON */
    json_t *data = json_object_get(pub, "data");
    assert_int_equal(json_integer_value(json_object_get(data, "seq")), 42);
    assert_string_equal(json_string_value(json_object_get(data, "type")), "incident.created");
    json_t *want_tags = json_loads("{\"type\":\"incident.created\",\"id\":\"INC-123\",\"severity\":\"SEV-1\",\"priority\":\"1\","
                                   "\"ack\":\"false\",\"ratio\":\"0.5\"}",
                                   0, NULL);
    assert_true(json_equal(json_object_get(pub, "tags"), want_tags));
    json_t *push1 = json_object_get(j1, "push");
    assert_string_equal(json_string_value(json_object_get(push1, "channel")), "incidents.INC-123");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(push1, "pub"), "offset")), 3);

    /* The Publication object alone, for history replies, and the uni_sse block. */
    rt_buf_t buf = {0};
    rt__cf_append_pub(&buf, ev, 1);
    json_t *p = json_loadb(buf.base, buf.len, 0, NULL);
    assert_non_null(p);
    assert_true(json_equal(p, json_object_get(push1, "pub")));
    rt_bytes_t *sse = rt__cf_pub_sse(ev, 1);
    assert_ptr_equal(sse, rt__cf_pub_sse(ev, 1));
    assert_true(sse->len > 8 && memcmp(sse->data, "data: ", 6) == 0 && memcmp(sse->data + sse->len - 2, "\n\n", 2) == 0);
    json_t *s = json_loadb(sse->data + 6, sse->len - 8, 0, NULL);
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "channel")), "incidents.INC-123");
    assert_true(json_equal(json_object_get(s, "pub"), p));
    json_decref(s);
    json_decref(p);
    rt_buf_free(&buf);
    json_decref(want_tags);
    json_decref(j0);
    json_decref(j1);
    rt_event_unref(ev);
}

static void test_pub_frame_raw(void **state)
{
    const char *chans[] = {"chat"};
    rt_event_t *ev = mkev("message.published", chans, 1, "{\"text\":\"hi \\\"there\\\"\",\"n\":2}", true);
    uint64_t off = 1;
    rt_event_accept(ev, 5, &off);
    json_t *j = frame_json(rt__cf_pub_frame(ev, 0));
    json_t *pub = json_object_get(json_object_get(j, "push"), "pub");
    json_t *want = json_loads("{\"text\":\"hi \\\"there\\\"\",\"n\":2}", 0, NULL);
    assert_true(json_equal(json_object_get(pub, "data"), want)); /* the data unchanged, not the event */
    assert_string_equal(json_string_value(json_object_get(json_object_get(pub, "tags"), "type")), "message.published");
    json_decref(want);
    json_decref(j);
    rt_event_unref(ev);

    /* A scalar raw payload and a big one (16-bit and 64-bit frame lengths). */
    ev = mkev("message.published", chans, 1, "42", true);
    rt_event_accept(ev, 6, &off);
    j = frame_json(rt__cf_pub_frame(ev, 0));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(j, "push"), "pub"), "data")), 42);
    json_decref(j);
    rt_event_unref(ev);
    size_t sizes[] = {300, 70000};
    for (size_t k = 0; k < 2; k++) {
        char *big = malloc(sizes[k] + 3);
        big[0] = '"';
        memset(big + 1, 'x', sizes[k]);
        strcpy(big + 1 + sizes[k], "\"");
        ev = mkev("message.published", chans, 1, big, true);
        rt_event_accept(ev, 7, &off);
        rt_buf_t buf = {0};
        rt__cf_append_pub(&buf, ev, 0);
        json_t *p = json_loadb(buf.base, buf.len, 0, NULL);
        assert_non_null(p);
        assert_int_equal(strlen(json_string_value(json_object_get(p, "data"))), sizes[k]);
        json_decref(p);
        rt_buf_free(&buf);
        rt_event_unref(ev);
        free(big);
    }
}

static json_t *history(rt_server_t *s, const char *req_json, int *code)
{
    json_t *req = json_loads(req_json, 0, NULL);
    assert_non_null(req);
    rt_buf_t out = {0};
    *code = rt__cf_history(s, req, &out);
    json_decref(req);
    json_t *res = *code == 0 ? json_loadb(out.base, out.len, 0, NULL) : NULL;
    if (*code == 0 && res == NULL)
        fail_msg("history result is not JSON: %.*s", (int)out.len, out.base);
    rt_buf_free(&out);
    return res;
}

/* The data.n of each publication (raw events). */
static void assert_ns(json_t *res, const int *want, size_t n)
{
    json_t *pubs = json_object_get(res, "publications");
    assert_int_equal(json_array_size(pubs), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(pubs, i), "data"), "n")), want[i]);
}

static void test_history(void **state)
{
    rt_history_config_t hc = {.size = 100};
    rt_server_t s = {.history = rt_history_new(&hc)};
    const char *chans[] = {"room"};
    for (int i = 1; i <= 5; i++) {
        char data[32];
        snprintf(data, sizeof(data), "{\"n\":%d}", i);
        rt_event_t *ev = mkev("message.published", chans, 1, data, true);
        assert_int_equal(rt_history_append(s.history, ev, NULL, NULL, NULL), 0);
        rt_event_unref(ev);
    }
    int code;
    json_t *r = history(&s, "{\"channel\":\"room\"}", &code);
    assert_int_equal(code, 0);
    assert_ns(r, NULL, 0); /* no limit: the position only */
    assert_int_equal(json_integer_value(json_object_get(r, "offset")), 5);
    assert_string_equal(json_string_value(json_object_get(r, "epoch")), rt_history_epoch(s.history));
    json_decref(r);

    r = history(&s, "{\"channel\":\"room\",\"limit\":2}", &code);
    assert_ns(r, (int[]){1, 2}, 2);
    json_decref(r);
    r = history(&s, "{\"channel\":\"room\",\"limit\":2,\"reverse\":true}", &code);
    assert_ns(r, (int[]){5, 4}, 2);
    json_decref(r);
    r = history(&s, "{\"channel\":\"room\",\"limit\":-1}", &code);
    assert_ns(r, (int[]){1, 2, 3, 4, 5}, 5);
    json_decref(r);
    r = history(&s, "{\"channel\":\"room\",\"limit\":-1,\"since\":{\"offset\":3}}", &code);
    assert_ns(r, (int[]){4, 5}, 2);
    json_decref(r);
    r = history(&s, "{\"channel\":\"room\",\"limit\":1,\"since\":{\"offset\":1}}", &code);
    assert_ns(r, (int[]){2}, 1);
    json_decref(r);
    r = history(&s, "{\"channel\":\"room\",\"limit\":10,\"since\":{\"offset\":4},\"reverse\":true}", &code);
    assert_ns(r, (int[]){3, 2, 1}, 3);
    json_decref(r);
    r = history(&s, "{\"channel\":\"nobody\",\"limit\":10}", &code);
    assert_int_equal(code, 0);
    assert_ns(r, NULL, 0);
    assert_int_equal(json_integer_value(json_object_get(r, "offset")), 0);
    json_decref(r);

    assert_null(history(&s, "{\"channel\":\"room\",\"limit\":5,\"since\":{\"offset\":1,\"epoch\":\"other\"}}", &code));
    assert_int_equal(code, RT_CF_ERR_UNRECOVERABLE_POSITION);
    assert_null(history(&s, "{\"channel\":\"room\",\"limit\":5,\"since\":{\"offset\":9}}", &code));
    assert_int_equal(code, RT_CF_ERR_UNRECOVERABLE_POSITION);
    assert_null(history(&s, "{\"limit\":5}", &code));
    assert_int_equal(code, RT_CF_ERR_BAD_REQUEST);
    assert_null(history(&s, "{\"channel\":\"a..b\"}", &code));
    assert_int_equal(code, RT_CF_ERR_UNKNOWN_CHANNEL);
    assert_null(history(&s, "{\"channel\":\"room\",\"limit\":\"5\"}", &code));
    assert_int_equal(code, RT_CF_ERR_BAD_REQUEST);
    rt_history_free(s.history);
}

static void test_errors_and_ids(void **state)
{
    rt_buf_t b = {0};
    rt__cf_append_error(&b, 103, NULL);
    rt_buf_append(&b, "", 1);
    assert_string_equal(b.base, "{\"code\":103,\"message\":\"permission denied\"}");
    b.len = 0;
    rt__cf_append_error(&b, 100, NULL);
    rt_buf_append(&b, "", 1);
    assert_string_equal(b.base, "{\"code\":100,\"message\":\"internal server error\",\"temporary\":true}");
    rt_buf_free(&b);
    assert_string_equal(rt__cf_disconnect_reason(3012), "no pong");
    assert_string_equal(rt__cf_disconnect_reason(3500), "invalid token");

    char a[40], c[40];
    rt__cf_make_client_id(a);
    rt__cf_make_client_id(c);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, c);
    assert_true(a[8] == '-' && a[13] == '-' && a[14] == '4' && a[18] == '-' && a[23] == '-');
}

typedef struct st_owner_t {
    int delivered;
} owner_t;

static void on_deliver(void *o)
{
    ((owner_t *)o)->delivered++;
}

/* Takes the peer's mail and returns how many PUSH mails name `what` ("join"/"leave") for channel. */
static int count_pushes(rt_cf_peer_t *p, const char *channel, const char *what)
{
    int n = 0;
    rt_cf_mail_t *m = rt_presence_take_mail(p);
    for (rt_cf_mail_t *x = m; x != NULL; x = x->next) {
        if (x->kind != RT_CF_MAIL_PUSH || strcmp(x->channel, channel) != 0)
            continue;
        json_t *j = json_loadb(x->push->data, x->push->len, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "channel")), channel);
        n += json_object_get(j, what) != NULL;
        json_decref(j);
    }
    rt_cf_mail_free(m);
    return n;
}

/* One turn of a worker's loop on this thread (its thread is not started): runs the tasks queued on it. */
static void run_worker(rt_worker_t *w)
{
    uv_run(&w->loop, UV_RUN_NOWAIT);
}

static void test_presence(void **state)
{
    /* Real workers on ephemeral ports, not started until the end: mail for peers elsewhere is queued on them. */
    rt_config_t cfg;
    rt_config_defaults(&cfg);
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = 0;
    rt_server_t srv = {.config = &cfg};
    char err[256];
    rt_worker_t *w1 = rt__worker_new(&srv, 0, err, sizeof(err)), *w2 = rt__worker_new(&srv, 1, err, sizeof(err));
    assert_non_null(w1);
    assert_non_null(w2);
    owner_t oa = {0}, ob = {0}, oc = {0};
    rt_cf_peer_t *a = rt_presence_register("ca", "alice", "{\"name\":\"Alice\"}", w1, on_deliver, &oa);
    rt_cf_peer_t *b = rt_presence_register("cb", "bob", NULL, w2, on_deliver, &ob);
    rt_cf_peer_t *c = rt_presence_register("cc", "alice", NULL, w1, on_deliver, &oc);
    assert_string_equal(rt_presence_client(a), "ca");

    rt_presence_add(a, "room", true, true, w1); /* a wants join/leave: its own join reaches it, inline (same worker) */
    assert_int_equal(oa.delivered, 1);
    assert_int_equal(count_pushes(a, "room", "join"), 1);
    rt_presence_add(b, "room", false, true, w1);
    assert_int_equal(ob.delivered, 0); /* b is on another worker and did not ask anyway */
    assert_null(rt_presence_take_mail(b));
    assert_int_equal(count_pushes(a, "room", "join"), 1);
    rt_presence_add(c, "room", false, true, w2); /* posted from w2: a (on w1) is not delivered to inline... */
    rt_presence_remove(c, "room", true, w2);
    rt_presence_add(c, "room", false, true, w2);
    assert_int_equal(oa.delivered, 2);
    run_worker(w2);
    assert_int_equal(oa.delivered, 2);
    run_worker(w1); /* ...but by w1 at its next loop turn, once for the three mails */
    assert_int_equal(oa.delivered, 3);
    assert_int_equal(count_pushes(a, "room", "join"), 2); /* and the leave between */
    run_worker(w1);
    assert_int_equal(oa.delivered, 3);
    rt_presence_add(c, "lobby", false, true, w1);

    size_t clients, users;
    rt_presence_stats("room", &clients, &users);
    assert_int_equal(clients, 3);
    assert_int_equal(users, 2);
    json_t *p = rt_presence_get("room");
    assert_int_equal(json_object_size(p), 3);
    json_t *want = json_loads("{\"user\":\"alice\",\"client\":\"ca\",\"conn_info\":{\"name\":\"Alice\"}}", 0, NULL);
    assert_true(json_equal(json_object_get(p, "ca"), want));
    json_decref(want);
    json_decref(p);

    json_t *ch = rt_presence_channels(NULL);
    assert_int_equal(json_object_size(ch), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(ch, "room"), "num_clients")), 3);
    json_decref(ch);
    ch = rt_presence_channels("lob*");
    assert_int_equal(json_object_size(ch), 1);
    json_decref(ch);
    size_t nc, nu, nch, ns;
    rt_presence_totals(&nc, &nu, &nch, &ns);
    assert_int_equal(nc, 3);
    assert_int_equal(nu, 2);
    assert_int_equal(nch, 2);
    assert_int_equal(ns, 4);

    /* API mail by user, by client, with a whitelist. */
    rt_cf_mail_t m = {.kind = RT_CF_MAIL_DISCONNECT, .code = 3503};
    assert_int_equal(rt_presence_post("alice", NULL, NULL, &m, NULL), 2);
    json_t *except = json_pack("[s]", "ca");
    assert_int_equal(rt_presence_post("alice", NULL, except, &m, NULL), 1);
    json_decref(except);
    assert_int_equal(rt_presence_post("alice", "cc", NULL, &m, NULL), 1);
    assert_int_equal(rt_presence_post("nobody", NULL, NULL, &m, NULL), 0);
    rt_cf_mail_t *got = rt_presence_take_mail(c);
    int n = 0;
    for (rt_cf_mail_t *x = got; x != NULL; x = x->next)
        n += x->kind == RT_CF_MAIL_DISCONNECT && x->code == 3503;
    assert_int_equal(n, 3);
    rt_cf_mail_free(got);
    rt_cf_mail_free(rt_presence_take_mail(a));
    run_worker(w1); /* a and c were queued by the first post; their mail is taken already */
    assert_int_equal(oa.delivered, 4);
    assert_int_equal(oc.delivered, 1);

    /* Leaving: b's unregister sends a leave to a only, through a's worker (unregistering never delivers inline). */
    rt_presence_unregister(b);
    assert_int_equal(oa.delivered, 4);
    run_worker(w1);
    assert_int_equal(oa.delivered, 5);
    assert_int_equal(count_pushes(a, "room", "leave"), 1);
    rt_presence_remove(c, "room", true, NULL);
    assert_int_equal(count_pushes(a, "room", "leave"), 1);
    rt_presence_stats("room", &clients, &users);
    assert_int_equal(clients, 1);
    /* A peer unregistered with a delivery still queued: the task is cancelled, never run on the freed peer. */
    assert_int_equal(rt_presence_post(NULL, "ca", NULL, &m, w2), 1);
    rt_presence_unregister(a);
    run_worker(w1);
    assert_int_equal(oa.delivered, 5);
    rt_presence_unregister(c);
    rt_presence_stats("room", &clients, &users);
    assert_int_equal(clients, 0);
    ch = rt_presence_channels(NULL);
    assert_int_equal(json_object_size(ch), 0); /* empty channels are dropped */
    json_decref(ch);

    rt_worker_t *workers[] = {w1, w2};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(rt__worker_start(workers[i]), 0);
        rt__worker_stop(workers[i]);
        rt__worker_join(workers[i]);
        rt__worker_free(workers[i]);
    }
    rt_config_free(&cfg);
}

static void test_glob(void **state)
{
    assert_true(rt_presence_glob("*", "anything"));
    assert_true(rt_presence_glob("news:*", "news:1"));
    assert_false(rt_presence_glob("news:*", "sport:1"));
    assert_true(rt_presence_glob("a*c*e", "abcde"));
    assert_false(rt_presence_glob("a*c*e", "abcdf"));
    assert_true(rt_presence_glob("exact", "exact"));
    assert_false(rt_presence_glob("exact", "exactly"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pub_frame_event), cmocka_unit_test(test_pub_frame_raw), cmocka_unit_test(test_history),
        cmocka_unit_test(test_errors_and_ids),  cmocka_unit_test(test_presence),      cmocka_unit_test(test_glob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
