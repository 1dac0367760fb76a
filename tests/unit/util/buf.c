/* Growable buffer: try_reserve never exceeds its limit (whatever size a peer asks for), appends, consume. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>
#include "realtime/error.h"
#include "util/buf.h"

static void test_try_reserve_within_limit(void **state)
{
    rt_buf_t b = {0};
    assert_int_equal(rt_buf_try_reserve(&b, 10, 1000), 0);
    assert_non_null(b.base);
    assert_true(b.cap >= 10 && b.cap <= 1000);
    assert_int_equal(b.len, 0);
    /* growing past the first allocation but not past the limit: capacity is clamped to the limit */
    assert_int_equal(rt_buf_try_reserve(&b, 700, 1000), 0);
    assert_true(b.cap >= 700 && b.cap <= 1000);
    memset(b.base, 'x', 700); /* the reserved room is really there (ASan checks) */
    b.len = 700;
    assert_int_equal(rt_buf_try_reserve(&b, 300, 1000), 0); /* exactly up to the limit */
    assert_int_equal(b.cap, 1000);
    memset(b.base + b.len, 'y', 300);
    b.len = 1000;
    assert_int_equal(rt_buf_try_reserve(&b, 0, 1000), 0);
    rt_buf_free(&b);
    assert_null(b.base);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void test_try_reserve_over_limit(void **state)
{
    rt_buf_t b = {0};
    assert_int_equal(rt_buf_try_reserve(&b, 1001, 1000), RT_E2BIG);
    assert_null(b.base); /* nothing allocated on refusal */
    assert_int_equal(b.cap, 0);

    rt_buf_append(&b, "hello", 5);
    size_t cap = b.cap;
    char *base = b.base;
    assert_int_equal(rt_buf_try_reserve(&b, 96, 100), RT_E2BIG); /* 5 + 96 > 100 */
    assert_int_equal(b.len, 5);
    assert_int_equal(b.cap, cap);
    assert_ptr_equal(b.base, base);
    assert_memory_equal(b.base, "hello", 5);
    assert_int_equal(rt_buf_try_reserve(&b, 95, 100), 0); /* 5 + 95 == 100 */

    /* sizes near SIZE_MAX (e.g. a 64-bit WebSocket length) must not wrap around the limit check */
    assert_int_equal(rt_buf_try_reserve(&b, SIZE_MAX, 1 << 20), RT_E2BIG);
    assert_int_equal(rt_buf_try_reserve(&b, SIZE_MAX - 2, 1 << 20), RT_E2BIG);
    assert_int_equal(rt_buf_try_reserve(&b, SIZE_MAX - 4, SIZE_MAX), RT_E2BIG);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.base, "hello", 5);
    rt_buf_free(&b);
}

static void test_limit_smaller_than_first_chunk(void **state)
{
    /* the first allocation would be 256 bytes; a limit of 16 caps it */
    rt_buf_t b = {0};
    assert_int_equal(rt_buf_try_reserve(&b, 10, 16), 0);
    assert_true(b.cap >= 10 && b.cap <= 16);
    assert_int_equal(rt_buf_try_reserve(&b, 16, 16), 0);
    assert_int_equal(b.cap, 16);
    assert_int_equal(rt_buf_try_reserve(&b, 17, 16), RT_E2BIG);
    rt_buf_free(&b);
}

static void test_append_and_consume(void **state)
{
    rt_buf_t b = {0};
    rt_buf_appends(&b, "abc");
    rt_buf_append(&b, "def", 3);
    rt_buf_appendf(&b, "-%d-%s", 42, "x");
    assert_int_equal(b.len, 11);
    assert_memory_equal(b.base, "abcdef-42-x", 11);
    rt_buf_appendf(&b, "%s", ""); /* empty output appends nothing */
    assert_int_equal(b.len, 11);

    rt_buf_consume(&b, 3);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.base, "def-42-x", 8);
    rt_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);

    /* growth well past the first chunk keeps the content */
    for (int i = 0; i < 1000; i++)
        rt_buf_appendf(&b, "%04d", i);
    assert_int_equal(b.len, 4000);
    assert_true(b.cap >= 4000);
    assert_memory_equal(b.base, "00000001", 8);
    assert_memory_equal(b.base + 3996, "0999", 4);
    rt_buf_free(&b);
    /* reusable after free */
    rt_buf_appends(&b, "again");
    assert_int_equal(b.len, 5);
    rt_buf_free(&b);
}

/* The hand-written encoder writes exactly what jansson's does (default flags) for every kind of character. */
static void test_json_string_as_jansson(void **state)
{
    static const char *cases[] = {
        "", "query", "a\"b", "back\\slash", "tab\tnl\ncr\rbs\bff\f", "\x01\x1f\x7f", "sl/ash", "caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x94\xa5",
        "\"\"", "end\\",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rt_buf_t b = {0};
        rt_buf_append_json_string(&b, cases[i]);
        json_t *j = json_string(cases[i]);
        char *want = json_dumps(j, JSON_ENCODE_ANY);
        assert_non_null(want);
        assert_int_equal(b.len, strlen(want));
        assert_memory_equal(b.base, want, b.len);
        free(want);
        json_decref(j);
        rt_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_try_reserve_within_limit),
        cmocka_unit_test(test_try_reserve_over_limit),
        cmocka_unit_test(test_limit_smaller_than_first_chunk),
        cmocka_unit_test(test_append_and_consume),
        cmocka_unit_test(test_json_string_as_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
