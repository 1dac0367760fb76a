/* Who may read what: namespaces (first match wins, patterns reach every namespace they share a channel with) and grants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "core/access.h"

#define S(s) (s), strlen(s)

static rt_namespace_t ns[] = {
    {.pattern = "public.secret", .history = true},                      /* an exception before its parent */
    {.pattern = "public.>", .anonymous = true, .history = true},
    {.pattern = "ops.>", .admin_only = true, .history = true},
    {.pattern = "quiet.*", .anonymous = true, .history = false},
};
static const rt_access_t policy = {.namespaces = ns, .n_namespaces = sizeof(ns) / sizeof(ns[0])};

typedef struct {
    const char *name;
    bool anonymous, granted, admin; /* allowed for: no token; a token with subscribe [incidents.*, ops.x, public.secret]; admin */
} read_case_t;

static void test_read_table(void **state)
{
    static const char *const subscribe[] = {"incidents.*", "ops.x", "public.secret"};
    static const char *const channels[] = {"timeline.INC-1"};
    const rt_grant_t user = {.subscribe = subscribe, .n_subscribe = 3, .channels = channels, .n_channels = 1};
    const rt_grant_t admin = {.admin = true};
    static const read_case_t cases[] = {
        {"public.status", true, true, true},
        {"public.a.b", true, true, true},
        {"public.*", false, false, true},   /* reaches public.secret, which is not anonymous */
        {"public.>", false, false, true},
        {"public.secret", false, true, true},
        {"public.x.*", true, true, true},   /* under public.>, clear of public.secret */
        {"public", false, false, true},     /* public.> needs one more segment: defaults */
        {"incidents", false, false, true},
        {"incidents.INC-1", false, true, true},
        {"incidents.*", false, true, true},
        {"incidents.>", false, false, true}, /* deeper than what is granted */
        {"timeline.INC-1", false, true, true}, /* the channels claim */
        {"timeline.*", false, false, true},
        {"ops.x", false, false, true},      /* admin_only beats the subscribe grant */
        {"ops.*", false, false, true},
        {"quiet.a", true, true, true},
        {"quiet.*", true, true, true},
        {"quiet.a.b", false, false, true},  /* quiet.* is one segment: defaults */
        {"all", false, false, true},
        {">", false, false, true},
        {"*", false, false, true},
        {"*.status", false, false, true},   /* reaches public.status and incidents.status alike */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const read_case_t *c = &cases[i];
        const char *why = NULL, *ignored;
        bool got[3] = {rt_access_read(&policy, NULL, S(c->name), &why), rt_access_read(&policy, &user, S(c->name), &ignored),
                       rt_access_read(&policy, &admin, S(c->name), &ignored)};
        bool want[3] = {c->anonymous, c->granted, c->admin};
        for (int k = 0; k < 3; k++)
            if (got[k] != want[k])
                fail_msg("%s for %s: got %s, want %s", c->name, (const char *[]){"anonymous", "granted", "admin"}[k],
                         got[k] ? "allowed" : "refused", want[k] ? "allowed" : "refused");
        if (!got[0])
            assert_non_null(why); /* every refusal says why */
    }
}

static void test_insecure_opens_everything(void **state)
{
    rt_access_t open = policy;
    open.insecure = true;
    const char *why;
    assert_true(rt_access_read(&open, NULL, S("all"), &why));
    assert_true(rt_access_read(&open, NULL, S(">"), &why));
    assert_true(rt_access_read(&open, NULL, S("ops.x"), &why));
}

static void test_subscription_token_grants_one_channel(void **state)
{
    const rt_grant_t g = {.channel = "private.room"};
    const char *why;
    assert_true(rt_access_read(&policy, &g, S("private.room"), &why));
    assert_false(rt_access_read(&policy, &g, S("private.room2"), &why));
    assert_false(rt_access_read(&policy, &g, S("private.*"), &why));
    assert_string_equal(why, "the token does not grant this channel");
    /* no token (an empty grant) is told it needs one, not that its token falls short */
    const rt_grant_t none = {0};
    assert_false(rt_access_read(&policy, &none, S("private.room"), &why));
    assert_string_equal(why, "this channel needs a token that grants it");
}

static void test_namespace_of_and_flags(void **state)
{
    assert_ptr_equal(rt_namespace_of(&policy, S("public.secret")), &ns[0]); /* first match wins */
    assert_ptr_equal(rt_namespace_of(&policy, S("public.x")), &ns[1]);
    assert_ptr_equal(rt_namespace_of(&policy, S("quiet.a")), &ns[3]);
    const rt_namespace_t *d = rt_namespace_of(&policy, S("incidents"));
    assert_ptr_equal(d, &rt_namespace_defaults);
    assert_true(d->history && d->presence && d->join_leave && !d->anonymous && !d->client_publish && !d->admin_only);
    const size_t history = offsetof(rt_namespace_t, history);
    assert_true(rt_namespace_any_off(&policy, S("quiet.a"), history));
    assert_true(rt_namespace_any_off(&policy, S("*.a"), history)); /* reaches quiet.a */
    assert_true(rt_namespace_any_off(&policy, S(">"), history));
    assert_false(rt_namespace_any_off(&policy, S("public.>"), history));
    assert_false(rt_namespace_any_off(&policy, S("incidents.*"), history));
}

static void test_parse_and_print(void **state)
{
    char msg[256];
    rt_namespace_t *list;
    size_t n;
    json_t *arr = json_loads("[{\"pattern\":\"a.>\",\"anonymous\":true,\"history\":false},{\"pattern\":\"b\"}]", 0, NULL);
    assert_int_equal(rt_namespaces_parse(arr, &list, &n, msg, sizeof(msg)), 0);
    assert_int_equal(n, 2);
    assert_true(list[0].anonymous && !list[0].history && list[0].presence);
    assert_true(!list[1].anonymous && list[1].history);
    json_t *back = rt_namespaces_json(list, n);
    rt_namespace_t *again;
    size_t n2;
    assert_int_equal(rt_namespaces_parse(back, &again, &n2, msg, sizeof(msg)), 0);
    assert_int_equal(n2, 2);
    assert_memory_equal(&again[0].anonymous, &list[0].anonymous, sizeof(rt_namespace_t) - offsetof(rt_namespace_t, anonymous));
    rt_namespaces_free(again, n2);
    rt_namespaces_free(list, n);
    json_decref(back);
    json_decref(arr);
    arr = json_loads("[{\"pattern\":\"a\",\"pattern\":\"b\"}]", 0, NULL); /* jansson keeps the last: no leak either way */
    assert_int_equal(rt_namespaces_parse(arr, &list, &n, msg, sizeof(msg)), 0);
    assert_string_equal(list[0].pattern, "b");
    rt_namespaces_free(list, n);
    json_decref(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_table),
        cmocka_unit_test(test_insecure_opens_everything),
        cmocka_unit_test(test_subscription_token_grants_one_channel),
        cmocka_unit_test(test_namespace_of_and_flags),
        cmocka_unit_test(test_parse_and_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
