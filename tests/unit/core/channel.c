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

typedef struct {
    const char *granted, *requested;
    bool covers;
} cover_case_t;

/* Grant coverage, the rule that decides reads (DESIGN "Trust and authorization"). */
static void test_covers(void **state)
{
    static const cover_case_t cases[] = {
        {"incidents", "incidents", true},
        {"incidents", "incidents.INC-1", false},
        {"incidents.INC-1", "incidents.*", false}, /* one channel granted, all of them asked */
        {"incidents.*", "incidents.*", true},
        {"incidents.>", "incidents.*", true},
        {">", "incidents.*", true},
        {"incidents.*", "incidents.INC-1", true},
        {"incidents.*", "incidents", false}, /* '*' is exactly one segment */
        {"incidents.*", "incidents.a.b", false},
        {"incidents.*", "incidents.>", false}, /* '>' reaches deeper than '*' */
        {"incidents.>", "incidents.>", true},
        {"incidents.>", "incidents.a.b.c", true},
        {"incidents.>", "incidents", false}, /* '>' is one or more segments */
        {"incidents.>", "incidents.*.x", true},
        {">", ">", true},
        {">", "a", true},
        {">", "a.b.c", true},
        {"*", "a", true},
        {"*", "*", true},
        {"*", ">", false},
        {"*", "a.b", false},
        {"*.b", "a.*", false},
        {"a.*", "*.b", false},
        {"*.*", "a.*", true},
        {"*.*", "*.*", true},
        {"*.*", "a.>", false},
        {"*.>", "a.>", true},
        {"*.>", ">", false}, /* '>' alone matches one-segment channels, '*.>' needs two */
        {"a.*.c", "a.b.c", true},
        {"a.*.c", "a.*.c", true},
        {"a.*.c", "a.*.*", false},
        {"a.b", "a.bc", false},
        {"a.bc", "a.b", false},
        {"timeline.>", "timelines.x", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const cover_case_t *c = &cases[i];
        if (rt_pattern_covers(S(c->granted), S(c->requested)) != c->covers)
            fail_msg("%s covers %s: expected %s", c->granted, c->requested, c->covers ? "yes" : "no");
    }
}

/* Every pattern over segments {a, b, *, >} of 1..3 segments, written into out[]; returns how many. */
static size_t small_patterns(char out[][8], bool wildcards)
{
    static const char segs[] = {'a', 'b', '*', '>'};
    size_t nseg = wildcards ? 4 : 3, n = 0;
    for (size_t depth = 1; depth <= 4; depth++) {
        size_t total = 1;
        for (size_t d = 0; d < depth; d++)
            total *= nseg;
        for (size_t k = 0; k < total; k++) {
            char buf[8];
            size_t len = 0, x = k;
            for (size_t d = 0; d < depth; d++, x /= nseg) {
                if (d != 0)
                    buf[len++] = '.';
                buf[len++] = wildcards ? segs[x % nseg] : "abc"[x % nseg];
            }
            if ((wildcards && depth > 3) || !rt_pattern_valid(buf, len))
                continue;
            memcpy(out[n], buf, len);
            out[n++][len] = '\0';
        }
    }
    return n;
}

/*
 * Checked against the definition on a small universe: granted covers requested exactly when every channel of up to
 * 4 segments over {a, b, c} that requested matches, granted matches too; and two patterns intersect exactly when
 * some such channel matches both. (Patterns have at most 3 segments, so one more segment and a third name 'c'
 * are enough for a counterexample to show.)
 */
static void test_covers_and_intersects_by_definition(void **state)
{
    static char pats[512][8], chans[256][8];
    size_t np = small_patterns(pats, true), nc = small_patterns(chans, false);
    assert_true(np == 52 && nc == 120); /* 4 + 12 + 36 patterns; 3 + 9 + 27 + 81 channels */
    for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < np; j++) {
            bool covers = true, meets = false;
            for (size_t k = 0; k < nc; k++) {
                bool in_r = rt_pattern_match(S(pats[j]), S(chans[k])), in_g = rt_pattern_match(S(pats[i]), S(chans[k]));
                covers &= !in_r || in_g;
                meets |= in_r && in_g;
            }
            if (rt_pattern_covers(S(pats[i]), S(pats[j])) != covers)
                fail_msg("%s covers %s: definition says %s", pats[i], pats[j], covers ? "yes" : "no");
            if (rt_pattern_intersects(S(pats[i]), S(pats[j])) != meets)
                fail_msg("%s intersects %s: definition says %s", pats[i], pats[j], meets ? "yes" : "no");
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_names),    cmocka_unit_test(test_invalid_names),   cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_valid_patterns), cmocka_unit_test(test_invalid_patterns), cmocka_unit_test(test_is_pattern_and_all),
        cmocka_unit_test(test_match),          cmocka_unit_test(test_match_respects_lengths),
        cmocka_unit_test(test_covers), cmocka_unit_test(test_covers_and_intersects_by_definition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
