/* Channel names and subscription patterns: the grammar of DESIGN.md and the matching rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "realtime/channel.h"

#define S(s) (s), strlen(s)

static void test_valid_names(void **state)
{
    static const char *const ok[] = {"incidents", "incidents.INC-123", "timeline.INC-123", "system", "all", "a",
                                     "0",         "A.b.C",             "a_b:c@d-e",        "x.y.z.w.v.u", "INC-1.__.--"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!rt_channel_valid(S(ok[i])))
            fail_msg("channel %s should be valid", ok[i]);
        if (!rt_pattern_valid(S(ok[i])))
            fail_msg("channel %s should be a valid pattern too", ok[i]);
        assert_false(rt_channel_is_pattern(S(ok[i])));
    }
}

static void test_invalid_names(void **state)
{
    static const char *const bad[] = {"",    ".",   "..",  "a.",   ".a",   "a..b",  "a b", "a/b", "a,b", "a#b", "a+b",
                                      "a$b", "é",   "a\t", "inc*", "a.b*", "a.*",   "*",   ">",   "a.>", "*.b", "a\"b",
                                      "a\\b", "a=b", "a?", "a%b", " a",  "a.b.", "a.*.c", "\x7f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (rt_channel_valid(S(bad[i])))
            fail_msg("channel \"%s\" should be invalid", bad[i]);
    /* An embedded NUL is a bad character, not a terminator: the length is what counts. */
    assert_false(rt_channel_valid("ab\0c", 4));
    assert_true(rt_channel_valid("ab\0c", 2));
    /* The length argument bounds the name: the trailing dot lies outside it. */
    assert_true(rt_channel_valid("abc.", 3));
    assert_false(rt_channel_valid("abc.", 4));
}

static void test_length_limit(void **state)
{
    char name[300];
    memset(name, 'x', sizeof(name));
    assert_true(rt_channel_valid(name, 255));
    assert_false(rt_channel_valid(name, 256));
    assert_true(rt_pattern_valid(name, 255));
    assert_false(rt_pattern_valid(name, 256));

    /* Many segments, 255 bytes in all: "x.x.x....x" (128 segments) */
    for (size_t i = 1; i < sizeof(name); i += 2)
        name[i] = '.';
    assert_true(rt_channel_valid(name, 255));
    assert_false(rt_channel_valid(name, 256)); /* ends with '.' */
    assert_false(rt_channel_valid(name, 257)); /* too long, although well formed */
    name[254] = '>';
    assert_true(rt_pattern_valid(name, 255));
    assert_true(rt_channel_is_pattern(name, 255));
    assert_false(rt_channel_valid(name, 255));
    name[256] = '>';
    assert_false(rt_pattern_valid(name, 257));
}

static void test_valid_patterns(void **state)
{
    static const char *const ok[] = {"*", ">", "a.*", "*.b", "a.>", "a.*.c", "*.*", "*.>", "a.*.>", "*.*.*", "incidents.*",
                                     "timeline.>"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!rt_pattern_valid(S(ok[i])))
            fail_msg("pattern %s should be valid", ok[i]);
        if (!rt_channel_is_pattern(S(ok[i])))
            fail_msg("%s is a pattern", ok[i]);
        if (rt_channel_valid(S(ok[i])))
            fail_msg("pattern %s is not a channel", ok[i]);
    }
}

static void test_invalid_patterns(void **state)
{
    static const char *const bad[] = {"",    ">.a", "a.>.b", "a*",  "*a",  "a.b*", "**",  ">>", "a.>>", "a..*",
                                      "*.",  ".*",  ">.",    "a.*b", "a.>b", "*>",  ">*",  "a.**", "> ", "a.*."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (rt_pattern_valid(S(bad[i])))
            fail_msg("pattern \"%s\" should be invalid", bad[i]);
}

static void test_is_pattern_and_all(void **state)
{
    assert_true(rt_channel_is_pattern(S("a.*")));
    assert_true(rt_channel_is_pattern(S("*.a")));
    assert_true(rt_channel_is_pattern(S("a.*.b")));
    assert_true(rt_channel_is_pattern(S(">")));
    assert_false(rt_channel_is_pattern(S("a")));
    assert_false(rt_channel_is_pattern(S("a.b")));
    assert_false(rt_channel_is_pattern(S("all")));
    /* only the given length is looked at */
    assert_false(rt_channel_is_pattern("a.*", 1));

    assert_true(rt_channel_is_all(S("all")));
    assert_true(rt_channel_is_all(S(RT_CHANNEL_ALL)));
    assert_false(rt_channel_is_all(S("al")));
    assert_false(rt_channel_is_all(S("alls")));
    assert_false(rt_channel_is_all(S("ALL")));
    assert_false(rt_channel_is_all(S("all.x")));
    assert_false(rt_channel_is_all(S("x.all")));
    assert_true(rt_channel_is_all("allx", 3));
}

typedef struct {
    const char *pattern, *channel;
    bool match;
} match_case_t;

static void test_match(void **state)
{
    static const match_case_t cases[] = {
        {"a", "a", true},
        {"a", "b", false},
        {"a", "a.b", false},
        {"a.b", "a", false},
        {"a.b", "a.b", true},
        {"a.b", "a.c", false},
        {"inc", "incidents", false},
        {"incidents", "inc", false},
        {"ab.c", "a.bc", false},
        {"*", "a", true},
        {"*", "INC-123", true},
        {"*", "a.b", false},
        {">", "a", true},
        {">", "a.b.c", true},
        {"a.>", "a", false}, /* '>' needs one or more segments */
        {"a.>", "a.b", true},
        {"a.>", "a.b.c.d", true},
        {"a.>", "b.c", false},
        {"a.>", "ab.c", false},
        {"a.>", "a", false},
        {"*.b", "a.b", true},
        {"*.b", "xyz.b", true},
        {"*.b", "a.c", false},
        {"*.b", "b", false},
        {"*.b", "a.b.c", false},
        {"*.b", "a.a.b", false},
        {"a.*", "a.b", true},
        {"a.*", "a", false},
        {"a.*", "a.b.c", false},
        {"a.*", "b.b", false},
        {"a.*.c", "a.x.c", true},
        {"a.*.c", "a.x.d", false},
        {"a.*.c", "a.c", false},
        {"*.*", "a.b", true},
        {"*.*", "a", false},
        {"*.*", "a.b.c", false},
        {"*.>", "a", false},
        {"*.>", "a.b", true},
        {"*.>", "a.b.c", true},
        {"a.*.>", "a.b", false},
        {"a.*.>", "a.b.c", true},
        {"incidents.*", "incidents.INC-123", true},
        {"incidents.*", "incidents", false},
        {"timeline.>", "timeline.INC-123", true},
        {"timeline.>", "timeline.INC-123.note", true},
        {"timeline.>", "timelines.INC-123", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const match_case_t *c = &cases[i];
        assert_true(rt_pattern_valid(S(c->pattern)));
        assert_true(rt_channel_valid(S(c->channel)));
        if (rt_pattern_match(S(c->pattern), S(c->channel)) != c->match)
            fail_msg("pattern %s vs channel %s: expected %s", c->pattern, c->channel, c->match ? "match" : "no match");
    }
}

static void test_match_respects_lengths(void **state)
{
    /* Neither side is read past its length (no NUL terminator needed). */
    const char buf[] = "a.b.c";
    assert_true(rt_pattern_match("a.*", 3, buf, 3));
    assert_false(rt_pattern_match("a.*", 3, buf, 5));
    assert_true(rt_pattern_match("a.*.c", 5, buf, 5));
    assert_true(rt_pattern_match("a.>xx", 3, buf, 5));
    assert_true(rt_pattern_match("a.bxx", 3, buf, 3));
    assert_false(rt_pattern_match("a.bxx", 4, buf, 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_names),    cmocka_unit_test(test_invalid_names),   cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_valid_patterns), cmocka_unit_test(test_invalid_patterns), cmocka_unit_test(test_is_pattern_and_all),
        cmocka_unit_test(test_match),          cmocka_unit_test(test_match_respects_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
