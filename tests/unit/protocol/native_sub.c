/*
 * Native subscriptions: the query form (URL decoding, channel lists, repeated filter keys, the tree filter),
 * the JSON form, error codes and messages, the `all` permission rules, tokens, and attaching with a resume
 * from history.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "realtime/error.h"
#include "protocol/native_sub.h"
#include "core/token.h"

static rt_event_t *mkev(const char *id, const char *type, const char *channel, const char *data_json)
{
    json_t *data = data_json ? json_loads(data_json, 0, NULL) : NULL;
    const char *channels[] = {channel};
    rt_event_t *ev;
    char err[256];
    if (rt_event_new(id, type, channels, 1, data, &ev, err, sizeof(err)) != 0)
        fail_msg("rt_event_new: %s", err);
    json_decref(data);
    rt_event_accept(ev, 1, NULL);
    return ev;
}

/* True when the subscription's filter accepts an event with this type and data. */
static bool passes(const rt_native_sub_t *sub, const char *type, const char *data_json)
{
    rt_event_t *ev = mkev(NULL, type, "incidents", data_json);
    bool ok = rt_filter_match(sub->filter, ev);
    rt_event_unref(ev);
    return ok;
}

static void parse_query_ok(const char *query, rt_native_sub_t *sub)
{
    rt_native_error_t err;
    int r = rt_native_sub_from_query(query, sub, &err);
    if (r != 0)
        fail_msg("%s: %s: %s", query ? query : "(null)", err.code, err.message);
}

static void test_query_channels(void **state)
{
    rt_native_sub_t sub;
    parse_query_ok("channels=incidents,system", &sub);
    assert_string_equal(sub.id, "query");
    assert_int_equal(sub.n_channels, 2);
    assert_string_equal(sub.channels[0], "incidents");
    assert_string_equal(sub.channels[1], "system");
    assert_null(sub.filter);
    assert_null(sub.last_event_id);
    assert_null(sub.token);
    rt_native_sub_dispose(&sub);

    /* URL-decoded (an encoded comma separates too), duplicates dropped, empty items and unknown parameters ignored,
     * the parameter may repeat; patterns are allowed. */
    parse_query_ok("x=1&channels=team%3Aops%2Cincidents.*,&channels=incidents.*,timeline.%3E&_=123", &sub);
    assert_int_equal(sub.n_channels, 3);
    assert_string_equal(sub.channels[0], "team:ops");
    assert_string_equal(sub.channels[1], "incidents.*");
    assert_string_equal(sub.channels[2], "timeline.>");
    rt_native_sub_dispose(&sub);

    /* No channels is not an error at this level; `all` is noticed. */
    parse_query_ok("", &sub);
    assert_int_equal(sub.n_channels, 0);
    rt_native_sub_dispose(&sub);
    parse_query_ok(NULL, &sub);
    assert_int_equal(sub.n_channels, 0);
    rt_native_sub_dispose(&sub);
    parse_query_ok("channels=all", &sub);
    rt_native_sub_dispose(&sub);
    rt_native_sub_dispose(&sub); /* twice is harmless */
}

static void test_query_resume_and_token(void **state)
{
    rt_native_sub_t sub;
    parse_query_ok("channels=incidents&last_event_id=evt-01JD%2B3&token=abc.def.ghi", &sub);
    assert_string_equal(sub.last_event_id, "evt-01JD+3");
    assert_string_equal(sub.token, "abc.def.ghi");
    rt_native_sub_dispose(&sub);
    parse_query_ok("channels=incidents&last_event_id=&token=", &sub);
    assert_null(sub.last_event_id);
    assert_null(sub.token);
    rt_native_sub_dispose(&sub);
}

static void test_query_bad_channel(void **state)
{
    rt_native_sub_t sub;
    rt_native_error_t err;
    assert_int_equal(rt_native_sub_from_query("channels=incidents,a..b", &sub, &err), RT_EINVAL);
    assert_string_equal(err.code, "invalid_channel");
    assert_non_null(strstr(err.message, "\"a..b\""));
    assert_int_equal(rt_native_error_status(&err), 400);
    assert_int_equal(sub.n_channels, 0); /* left empty */
    assert_null(sub.channels);

    assert_int_equal(rt_native_sub_from_query("channels=bad%20name", &sub, &err), RT_EINVAL);
    assert_string_equal(err.code, "invalid_channel");
    assert_non_null(strstr(err.message, "\"bad name\""));
    assert_int_equal(rt_native_sub_from_query("channels=a.*x", &sub, &err), RT_EINVAL);
    assert_int_equal(rt_native_sub_from_query("channels=a.>.b", &sub, &err), RT_EINVAL);
}

static void test_query_simple_filter(void **state)
{
    rt_native_sub_t sub;
    /* A repeated key is any-of; different keys are ANDed; values are URL-decoded. */
    parse_query_ok("channels=incidents&filter.severity=SEV-1&filter.severity=SEV%202&filter.type=incident.created", &sub);
    assert_non_null(sub.filter);
    assert_true(passes(&sub, "incident.created", "{\"severity\":\"SEV-1\"}"));
    assert_true(passes(&sub, "incident.created", "{\"severity\":\"SEV 2\"}"));
    assert_false(passes(&sub, "incident.created", "{\"severity\":\"SEV-3\"}"));
    assert_false(passes(&sub, "incident.updated", "{\"severity\":\"SEV-1\"}"));
    assert_false(passes(&sub, "incident.created", "{\"status\":\"open\"}")); /* missing field */
    rt_native_sub_dispose(&sub);

    /* Query values are text: they match a number whose JSON text equals them; dotted keys reach into data. */
    parse_query_ok("channels=incidents&filter.priority=1&filter.service.team=db", &sub);
    assert_true(passes(&sub, "incident.created", "{\"priority\":1,\"service\":{\"team\":\"db\"}}"));
    assert_true(passes(&sub, "incident.created", "{\"priority\":\"1\",\"service\":{\"team\":\"db\"}}"));
    assert_false(passes(&sub, "incident.created", "{\"priority\":2,\"service\":{\"team\":\"db\"}}"));
    rt_native_sub_dispose(&sub);

    rt_native_error_t err;
    assert_int_equal(rt_native_sub_from_query("channels=incidents&filter.=x", &sub, &err), RT_EINVAL);
    assert_string_equal(err.code, "invalid_filter");
}

static void test_query_tree_filter(void **state)
{
    rt_native_sub_t sub;
    /* {"op":"or","nodes":[{"key":"severity","cmp":"eq","val":"SEV-1"},{"key":"priority","cmp":"gte","val":"3"}]} */
    parse_query_ok("channels=incidents&filter=%7B%22op%22%3A%22or%22%2C%22nodes%22%3A%5B%7B%22key%22%3A%22severity%22%2C"
                   "%22cmp%22%3A%22eq%22%2C%22val%22%3A%22SEV-1%22%7D%2C%7B%22key%22%3A%22priority%22%2C%22cmp%22%3A%22gte%22"
                   "%2C%22val%22%3A%223%22%7D%5D%7D",
                   &sub);
    assert_true(passes(&sub, "incident.created", "{\"severity\":\"SEV-1\",\"priority\":1}"));
    assert_true(passes(&sub, "incident.created", "{\"severity\":\"SEV-2\",\"priority\":5}"));
    assert_false(passes(&sub, "incident.created", "{\"severity\":\"SEV-2\",\"priority\":2}"));
    rt_native_sub_dispose(&sub);

    /* Both forms together: ANDed. */
    parse_query_ok("channels=incidents&filter.type=sla.breach&filter={\"key\":\"severity\",\"cmp\":\"eq\",\"val\":\"SEV-1\"}", &sub);
    assert_true(passes(&sub, "sla.breach", "{\"severity\":\"SEV-1\"}"));
    assert_false(passes(&sub, "incident.created", "{\"severity\":\"SEV-1\"}"));
    assert_false(passes(&sub, "sla.breach", "{\"severity\":\"SEV-2\"}"));
    rt_native_sub_dispose(&sub);

    rt_native_error_t err;
    assert_int_equal(rt_native_sub_from_query("channels=incidents&filter=%7Bnot%20json", &sub, &err), RT_EINVAL);
    assert_string_equal(err.code, "invalid_filter");
    assert_non_null(strstr(err.message, "filter"));
    assert_int_equal(rt_native_sub_from_query("channels=incidents&filter={\"key\":\"severity\",\"cmp\":\"zz\",\"val\":\"1\"}", &sub, &err),
                     RT_EINVAL);
    assert_string_equal(err.code, "invalid_filter");
    assert_non_null(strstr(err.message, "zz"));
}

static int parse_json(const char *text, rt_native_sub_t *sub, rt_native_error_t *err)
{
    json_t *msg = json_loads(text, 0, NULL);
    assert_non_null(msg);
    int r = rt_native_sub_from_json(msg, sub, err);
    json_decref(msg);
    return r;
}

static void test_json_form(void **state)
{
    rt_native_sub_t sub;
    rt_native_error_t err;
    assert_int_equal(parse_json("{\"type\":\"subscribe\",\"id\":\"s1\",\"channels\":[\"incidents\",\"system\",\"incidents\"],"
                                "\"filters\":{\"severity\":[\"SEV-1\",\"SEV-2\"]},\"last_event_id\":\"evt-1\"}",
                                &sub, &err),
                     0);
    assert_string_equal(sub.id, "s1");
    assert_int_equal(sub.n_channels, 2);
    assert_string_equal(sub.channels[1], "system");
    assert_string_equal(sub.last_event_id, "evt-1");
    assert_null(sub.token);
    assert_true(passes(&sub, "incident.created", "{\"severity\":\"SEV-2\"}"));
    assert_false(passes(&sub, "incident.created", "{\"severity\":\"SEV-3\"}"));
    rt_native_sub_dispose(&sub);

    /* JSON values match by JSON type: "3" is not 3. The tree is `filter`. */
    assert_int_equal(parse_json("{\"channels\":[\"incidents\"],\"filters\":{\"priority\":3},"
                                "\"filter\":{\"op\":\"not\",\"nodes\":[{\"key\":\"type\",\"cmp\":\"eq\",\"val\":\"sla.breach\"}]}}",
                                &sub, &err),
                     0);
    assert_null(sub.id);
    assert_true(passes(&sub, "incident.created", "{\"priority\":3}"));
    assert_false(passes(&sub, "incident.created", "{\"priority\":\"3\"}"));
    assert_false(passes(&sub, "sla.breach", "{\"priority\":3}"));
    rt_native_sub_dispose(&sub);

    assert_int_equal(parse_json("{\"id\":\"s2\"}", &sub, &err), RT_EINVAL);
    assert_string_equal(err.code, "bad_request");
    assert_int_equal(parse_json("{\"channels\":[]}", &sub, &err), RT_EINVAL);
    assert_string_equal(err.code, "bad_request");
    assert_int_equal(parse_json("{\"channels\":[\"ok\",\"not ok\"]}", &sub, &err), RT_EINVAL);
    assert_string_equal(err.code, "invalid_channel");
    assert_non_null(strstr(err.message, "channels[1]"));
    assert_non_null(strstr(err.message, "\"not ok\""));
    assert_int_equal(parse_json("{\"channels\":[\"ok\",7]}", &sub, &err), RT_EINVAL);
    assert_string_equal(err.code, "invalid_channel");
    assert_int_equal(parse_json("{\"channels\":[\"ok\"],\"filters\":[1]}", &sub, &err), RT_EINVAL);
    assert_string_equal(err.code, "invalid_filter");
    assert_int_equal(parse_json("{\"channels\":[\"ok\"],\"filter\":{\"op\":\"xor\",\"nodes\":[]}}", &sub, &err), RT_EINVAL);
    assert_string_equal(err.code, "invalid_filter");
    assert_int_equal(parse_json("{\"channels\":[\"ok\"],\"id\":5}", &sub, &err), RT_EINVAL);
    assert_string_equal(err.code, "bad_request");
    assert_int_equal(parse_json("{\"channels\":[\"ok\"],\"last_event_id\":{}}", &sub, &err), RT_EINVAL);
    assert_string_equal(err.code, "bad_request");
    assert_int_equal(parse_json("[1]", &sub, &err), RT_EINVAL);
    assert_null(sub.channels);

    /* Too many channels. */
    json_t *msg = json_pack("{s:[]}", "channels");
    for (int i = 0; i <= RT_NATIVE_SUB_MAX_CHANNELS; i++)
        json_array_append_new(json_object_get(msg, "channels"), json_sprintf("c%d", i));
    assert_int_equal(rt_native_sub_from_json(msg, &sub, &err), RT_E2BIG);
    assert_string_equal(err.code, "limit_exceeded");
    json_decref(msg);
}

static void test_access_and_tokens(void **state)
{
    rt_token_verifier_t *tokens = NULL;
    char why[128];
    assert_int_equal(rt_token_verifier_new(&(rt_token_config_t){.secret = "s3cret"}, &tokens, why, sizeof(why)), 0);
    rt_namespace_t ns[] = {{.pattern = "public.>", .anonymous = true}};
    rt_access_t access = {.namespaces = ns, .n_namespaces = 1};
    rt_native_sub_t sub;
    rt_native_error_t err;
    rt_token_claims_t got;

    /* No token: anonymous. Only the anonymous namespace is readable, `all` never. */
    assert_int_equal(rt_native_check_token(tokens, NULL, &got, &err), 0);
    rt_grant_t anon = rt_native_grant(&got);
    assert_false(anon.admin);
    parse_query_ok("channels=public.status,public.*", &sub);
    assert_int_equal(rt_native_sub_check_access(&sub, &access, &anon, &err), 0);
    rt_native_sub_dispose(&sub);
    parse_query_ok("channels=public.status,incidents", &sub);
    assert_int_equal(rt_native_sub_check_access(&sub, &access, &anon, &err), RT_EPERM);
    assert_string_equal(err.code, "permission_denied");
    assert_non_null(strstr(err.message, "\"incidents\""));
    assert_int_equal(rt_native_error_status(&err), 403);
    rt_native_sub_dispose(&sub);
    parse_query_ok("channels=all", &sub);
    assert_int_equal(rt_native_sub_check_access(&sub, &access, NULL, &err), RT_EPERM);
    access.insecure = true; /* development mode opens everything */
    assert_int_equal(rt_native_sub_check_access(&sub, &access, NULL, &err), 0);
    access.insecure = false;
    rt_native_sub_dispose(&sub);

    /* A token with subscribe grants what its patterns cover, and no more. */
    char *token = NULL, *subscribe[] = {"incidents.*", NULL};
    rt_token_claims_t claims = {.sub = "ops", .exp = (int64_t)time(NULL) + 3600, .subscribe = subscribe, .n_subscribe = 1};
    assert_int_equal(rt_token_sign("s3cret", &claims, &token), 0);
    assert_int_equal(rt_native_check_token(tokens, token, &got, &err), 0);
    rt_grant_t g = rt_native_grant(&got);
    parse_query_ok("channels=incidents.INC-1,incidents.*", &sub);
    assert_int_equal(rt_native_sub_check_access(&sub, &access, &g, &err), 0);
    rt_native_sub_dispose(&sub);
    parse_query_ok("channels=incidents.>", &sub);
    assert_int_equal(rt_native_sub_check_access(&sub, &access, &g, &err), RT_EPERM);
    rt_native_sub_dispose(&sub);
    parse_query_ok("channels=all", &sub);
    assert_int_equal(rt_native_sub_check_access(&sub, &access, &g, &err), RT_EPERM);
    rt_native_sub_dispose(&sub);
    rt_token_claims_free(&got);
    free(token);

    /* An admin token reads everything. */
    claims = (rt_token_claims_t){.sub = "ops", .admin = true};
    assert_int_equal(rt_token_sign("s3cret", &claims, &token), 0);
    assert_int_equal(rt_native_check_token(tokens, token, &got, &err), 0);
    g = rt_native_grant(&got);
    assert_true(g.admin);
    parse_query_ok("channels=all,>", &sub);
    assert_int_equal(rt_native_sub_check_access(&sub, &access, &g, &err), 0);
    rt_native_sub_dispose(&sub);
    rt_token_claims_free(&got);
    free(token);

    /* A token that does not verify is refused, not taken as anonymous. */
    assert_int_equal(rt_token_sign("other", &claims, &token), 0);
    assert_int_equal(rt_native_check_token(tokens, token, &got, &err), RT_EPERM);
    assert_string_equal(err.code, "unauthorized");
    assert_int_equal(rt_native_error_status(&err), 401);
    assert_false(got.admin);
    rt_token_verifier_free(tokens); /* no key: no token can be verified */
    assert_int_equal(rt_native_check_token(NULL, token, &got, &err), RT_EPERM);
    assert_string_equal(err.code, "unauthorized");
    free(token);
}

static void noop_wakeup(void *ctx)
{
}

static int noop_send(rt_client_t *client, rt_event_t *ev, rt_subscription_t *sub, size_t ci)
{
    return 0;
}

static void append(rt_history_t *h, const char *id, const char *type, const char *channel, const char *data)
{
    json_t *d = json_loads(data, 0, NULL);
    const char *channels[] = {channel};
    rt_event_t *ev;
    assert_int_equal(rt_event_new(id, type, channels, 1, d, &ev, NULL, 0), 0);
    json_decref(d);
    assert_int_equal(rt_history_append(h, ev, NULL, NULL, NULL), 0);
    rt_event_unref(ev);
}

static void test_attach_and_resume(void **state)
{
    rt_broadcaster_config_t bc = {.wakeup = noop_wakeup};
    rt_broadcaster_t *b = rt_broadcaster_new(&bc);
    rt_history_t *h = rt_history_new(NULL);
    static const rt_client_ops_t ops = {.send = noop_send};
    rt_client_t client = {.ops = &ops};
    rt_native_sub_t sub;
    rt_subscription_t *s;
    rt_event_list_t replay;
    uint64_t upto;

    /* Empty history: a resume point can't be found. */
    parse_query_ok("channels=incidents.*&last_event_id=e1", &sub);
    assert_int_equal(rt_native_sub_attach(&sub, b, h, &client, &s, &replay, &upto), RT_ERANGE);
    assert_non_null(s);
    assert_null(sub.filter);
    assert_int_equal(upto, 0);
    rt_native_sub_dispose(&sub);
    rt_broadcaster_remove_client(b, &client);

    append(h, "e1", "incident.created", "incidents.A", "{\"severity\":\"SEV-1\"}");
    append(h, "e2", "incident.created", "incidents.B", "{\"severity\":\"SEV-2\"}");
    append(h, "e3", "incident.created", "system", "{\"severity\":\"SEV-1\"}");
    append(h, "e4", "incident.updated", "incidents.C", "{\"severity\":\"SEV-1\"}");

    /* The replay holds the matching events after the id, oldest first, and upto is the newest seq. */
    parse_query_ok("channels=incidents.*&filter.severity=SEV-1&last_event_id=e1", &sub);
    assert_int_equal(rt_native_sub_attach(&sub, b, h, &client, &s, &replay, &upto), 0);
    assert_int_equal(upto, 4);
    assert_int_equal(replay.count, 1);
    assert_string_equal(replay.events[0]->id, "e4");
    assert_true(rt_native_sub_pred(replay.events[0], s));
    rt_event_list_free(&replay);
    rt_native_sub_dispose(&sub);
    rt_broadcaster_stats_t st;
    rt_broadcaster_stats(b, &st);
    assert_int_equal(st.subscriptions, 1);
    rt_broadcaster_remove_client(b, &client);

    /* Without a resume point: no replay, upto still reported. */
    parse_query_ok("channels=system", &sub);
    assert_int_equal(rt_native_sub_attach(&sub, b, h, &client, &s, &replay, &upto), 0);
    assert_int_equal(replay.count, 0);
    assert_int_equal(upto, 4);
    rt_native_sub_dispose(&sub);
    rt_broadcaster_remove_client(b, &client);

    /* Unknown id: RT_ERANGE, still subscribed. */
    parse_query_ok("channels=system&last_event_id=nope", &sub);
    assert_int_equal(rt_native_sub_attach(&sub, b, h, &client, &s, &replay, &upto), RT_ERANGE);
    assert_int_equal(replay.count, 0);
    rt_broadcaster_stats(b, &st);
    assert_int_equal(st.subscriptions, 1);
    rt_native_sub_dispose(&sub);

    rt_broadcaster_close(b);
    rt_history_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_channels),    cmocka_unit_test(test_query_resume_and_token),
        cmocka_unit_test(test_query_bad_channel), cmocka_unit_test(test_query_simple_filter),
        cmocka_unit_test(test_query_tree_filter), cmocka_unit_test(test_json_form),
        cmocka_unit_test(test_access_and_tokens), cmocka_unit_test(test_attach_and_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
