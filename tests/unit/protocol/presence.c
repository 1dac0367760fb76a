/*
 * The presence table's cluster side, without Redis: results built from ClientInfo texts, control messages encoded
 * and applied (reaching the matching peers' mailboxes), remote join/leave pushes, and a fake backend attached with
 * rt_presence_set_cluster seeing every join, leave and push, answering queries and control in place of this node.
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
#include "protocol/presence.h"
#include "server/config.h"
#include "server/server.h"

static void on_deliver(void *o)
{
}

static void test_result(void **state)
{
    const char *infos[] = {"{\"user\":\"alice\",\"client\":\"c1\",\"conn_info\":{\"n\":1}}", "{\"user\":\"bob\",\"client\":\"c2\"}",
                           "{\"user\":\"alice\",\"client\":\"c3\"}", "not json", "{\"client\":\"no user\"}"};
    size_t lens[5];
    for (size_t i = 0; i < 5; i++)
        lens[i] = strlen(infos[i]);
    size_t len;
    char *text = rt_presence_result(infos, lens, 5, true, &len);
    assert_string_equal(text, "{\"num_clients\":3,\"num_users\":2}");
    assert_int_equal(len, strlen(text));
    free(text);
    text = rt_presence_result(infos, lens, 5, false, &len);
    json_t *got = json_loads(text, 0, NULL), *want = json_loads("{\"presence\":{\"c1\":{\"user\":\"alice\",\"client\":\"c1\","
                                                               "\"conn_info\":{\"n\":1}},\"c2\":{\"user\":\"bob\",\"client\":\"c2\"},"
                                                               "\"c3\":{\"user\":\"alice\",\"client\":\"c3\"}}}",
                                                               0, NULL);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    free(text);
    text = rt_presence_result(NULL, NULL, 0, false, &len);
    assert_string_equal(text, "{\"presence\":{}}");
    free(text);
}

/* Takes p's mail: how many of kind (and channel when given). */
static int count_mail(rt_cf_peer_t *p, rt_cf_mail_kind_t kind, const char *channel)
{
    int n = 0;
    rt_cf_mail_t *m = rt_presence_take_mail(p);
    for (rt_cf_mail_t *x = m; x != NULL; x = x->next)
        n += x->kind == kind && (channel == NULL || (x->channel != NULL && strcmp(x->channel, channel) == 0));
    rt_cf_mail_free(m);
    return n;
}

/* What the fake backend saw. */
typedef struct st_fake_t {
    char log[1024];
    int queries, posts;
    char last_post[256];
} fake_t;

static void fake_joined(void *self, const char *channel, const char *client, const char *info)
{
    fake_t *f = self;
    snprintf(f->log + strlen(f->log), sizeof(f->log) - strlen(f->log), "+%s/%s%s;", channel, client, info);
}

static void fake_left(void *self, const char *channel, const char *client, bool last)
{
    fake_t *f = self;
    snprintf(f->log + strlen(f->log), sizeof(f->log) - strlen(f->log), "-%s/%s%s;", channel, client, last ? "!" : "");
}

static void fake_push(void *self, const char *channel, rt_bytes_t *push)
{
    fake_t *f = self;
    json_t *j = json_loadb(push->data, push->len, 0, NULL);
    snprintf(f->log + strlen(f->log), sizeof(f->log) - strlen(f->log), "p%s/%s;", channel,
             json_object_get(j, "join") != NULL ? "join" : "leave");
    json_decref(j);
}

static void fake_query(void *self, rt_worker_t *w, const char *channel, bool stats, rt_presence_cb cb, void *ctx)
{
    ((fake_t *)self)->queries++;
    cb(ctx, 0, "{\"num_clients\":7,\"num_users\":5}", 32);
}

static void fake_post(void *self, rt_worker_t *w, const char *control, size_t len, rt_presence_cb cb, void *ctx)
{
    fake_t *f = self;
    f->posts++;
    snprintf(f->last_post, sizeof(f->last_post), "%.*s", (int)len, control);
    cb(ctx, RT_EAGAIN, NULL, 0);
}

static json_t *fake_stats(void *self)
{
    return json_pack("{s:i}", "nodes_alive", 2);
}

static const rt_presence_cluster_t fake_ops = {
    .joined = fake_joined, .left = fake_left, .push = fake_push, .query = fake_query, .post = fake_post, .stats = fake_stats,
};

typedef struct st_answer_t {
    int calls, status;
    char text[256];
} answer_t;

static void on_answer(void *ctx, int status, const char *result, size_t len)
{
    answer_t *a = ctx;
    a->calls++;
    a->status = status;
    snprintf(a->text, sizeof(a->text), "%.*s", (int)len, result != NULL ? result : "");
}

static void test_cluster(void **state)
{
    rt_config_t cfg;
    rt_config_defaults(&cfg);
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = 0;
    rt_server_t srv = {.config = &cfg};
    char err[256];
    rt_worker_t *w = rt__worker_new(&srv, 0, err, sizeof(err));
    assert_non_null(w);
    int o;
    rt_cf_peer_t *a = rt_presence_register("ca", "alice", "{\"n\":1}", w, on_deliver, &o);
    rt_cf_peer_t *b = rt_presence_register("cb", "bob", NULL, w, on_deliver, &o);

    /* No backend: answers come from here, before the call returns; control is applied here. */
    rt_presence_add(a, "room", true, true, w);
    assert_int_equal(count_mail(a, RT_CF_MAIL_PUSH, "room"), 1); /* a's own join */
    answer_t ans = {0};
    rt_presence_query(w, "room", true, on_answer, &ans);
    assert_int_equal(ans.calls, 1);
    assert_string_equal(ans.text, "{\"num_clients\":1,\"num_users\":1}");
    rt_cf_mail_t dm = {.kind = RT_CF_MAIL_DISCONNECT, .code = 4000};
    snprintf(dm.reason, sizeof(dm.reason), "go");
    ans = (answer_t){0};
    rt_presence_control(w, "bob", NULL, NULL, &dm, on_answer, &ans);
    assert_int_equal(ans.calls, 1);
    assert_int_equal(ans.status, 0);
    assert_string_equal(ans.text, "{}");
    assert_int_equal(count_mail(b, RT_CF_MAIL_DISCONNECT, NULL), 1);
    assert_null(rt_presence_cluster_stats());

    /* With a backend: every change and push is told to it, under the lock, in order. */
    fake_t f = {0};
    rt_presence_set_cluster(&fake_ops, &f);
    rt_presence_add(b, "room", false, true, w);
    rt_presence_remove(b, "room", true, w);
    rt_presence_add(b, "lobby", false, false, w);
    rt_presence_unregister(b); /* leaves lobby, the last one there (unregistering always tells leaves) */
    assert_string_equal(f.log, "+room/cb{\"user\":\"bob\",\"client\":\"cb\"};proom/join;-room/cb;proom/leave;"
                               "+lobby/cb{\"user\":\"bob\",\"client\":\"cb\"};-lobby/cb!;plobby/leave;");
    assert_int_equal(count_mail(a, RT_CF_MAIL_PUSH, "room"), 2); /* bob's join and leave reached a here too */
    ans = (answer_t){0};
    rt_presence_query(w, "room", true, on_answer, &ans);
    assert_int_equal(f.queries, 1);
    assert_string_equal(ans.text, "{\"num_clients\":7,\"num_users\":5}");
    ans = (answer_t){0};
    json_t *except = json_pack("[s]", "cx");
    rt_presence_control(w, "alice", "ca", except, &dm, on_answer, &ans);
    json_decref(except);
    assert_int_equal(ans.status, RT_EAGAIN); /* the backend could not send it: said so */
    assert_int_equal(count_mail(a, RT_CF_MAIL_DISCONNECT, NULL), 1); /* applied here all the same */
    json_t *sent = json_loads(f.last_post, 0, NULL),
           *want = json_loads("{\"op\":\"disconnect\",\"user\":\"alice\",\"client\":\"ca\",\"except\":[\"cx\"],\"code\":4000,\"reason\":\"go\"}", 0, NULL);
    assert_true(json_equal(sent, want));
    json_decref(sent);
    json_decref(want);
    json_t *st = rt_presence_cluster_stats();
    assert_int_equal(json_integer_value(json_object_get(st, "nodes_alive")), 2);
    json_decref(st);

    /* A control message from another node reaches the matching peers here; a malformed one is refused. */
    assert_int_equal(rt_presence_control_apply(f.last_post, strlen(f.last_post)), 0);
    assert_int_equal(count_mail(a, RT_CF_MAIL_DISCONNECT, NULL), 1);
    rt_cf_mail_t um = {.kind = RT_CF_MAIL_UNSUBSCRIBE, .channel = "room"};
    char *text = rt_presence_control_encode("alice", NULL, NULL, &um);
    assert_string_equal(text, "{\"op\":\"unsubscribe\",\"user\":\"alice\",\"channel\":\"room\"}");
    assert_int_equal(rt_presence_control_apply(text, strlen(text)), 0);
    assert_int_equal(count_mail(a, RT_CF_MAIL_UNSUBSCRIBE, "room"), 1);
    free(text);
    const char *bad[] = {"", "[]", "{\"op\":\"push\",\"channel\":\"room\"}", "{\"op\":\"subscribe\",\"user\":\"alice\"}",
                         "{\"op\":\"disconnect\",\"user\":\"alice\",\"code\":1000}", "{\"op\":\"unsubscribe\",\"user\":5,\"channel\":\"x\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rt_presence_control_apply(bad[i], strlen(bad[i])), -1);
    assert_null(rt_presence_take_mail(a));

    /* A join/leave push from another node goes to the members here that asked for them. */
    rt_presence_remote_push("room", "{\"channel\":\"room\",\"join\":{}}", 27);
    rt_presence_remote_push("elsewhere", "{}", 2);
    assert_int_equal(count_mail(a, RT_CF_MAIL_PUSH, "room"), 1);

    rt_presence_set_cluster(NULL, NULL);
    f.log[0] = '\0';
    rt_presence_unregister(a);
    assert_string_equal(f.log, "");
    assert_int_equal(rt__worker_start(w), 0);
    rt__worker_stop(w);
    rt__worker_join(w);
    rt__worker_free(w);
    rt_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_result), cmocka_unit_test(test_cluster)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
