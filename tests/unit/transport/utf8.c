#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include "../../harness/guard_page.h"
#include "transport/utf8.h"

static int validate_guarded(const void *s, size_t len)
{
    size_t map_len;
    uint8_t *p = guard_copy(s, len, &map_len);
    int r = rt_utf8_validate(p, len);
    guard_free(p, len, map_len);
    return r;
}

/* An independent decoder: decode each sequence to its code point, then apply RFC 3629's rules. */
static int ref_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t k;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07;
        } else {
            return -1;
        }
        if (i + k >= n)
            return -1;
        for (size_t j = 1; j <= k; ++j) {
            if ((s[i + j] & 0xc0) != 0x80)
                return -1;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < (k == 1 ? 0x80u : k == 2 ? 0x800u : 0x10000u) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        i += k + 1;
    }
    return 0;
}

struct vec {
    const char *s;
    size_t len;
};
#define V(lit) {lit, sizeof(lit) - 1}

static const struct vec valid[] = {
    V(""),
    V("hello, world"),
    V("\x7f"),
    V("\xc2\x80"),                 /* U+0080 */
    V("\xdf\xbf"),                 /* U+07FF */
    V("\xe0\xa0\x80"),             /* U+0800 */
    V("\xed\x9f\xbf"),             /* U+D7FF, last before the surrogates */
    V("\xee\x80\x80"),             /* U+E000, first after */
    V("\xef\xbf\xbd"),             /* U+FFFD */
    V("\xef\xbf\xbf"),             /* U+FFFF */
    V("\xf0\x90\x80\x80"),         /* U+10000 */
    V("\xf4\x8f\xbf\xbf"),         /* U+10FFFF */
    V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), /* "kosme" in Greek (Autobahn 6.2) */
    V("{\"type\":\"incident.created\",\"data\":{\"title\":\"D\xc3\xa9j\xc3\xa0 vu \xe2\x82\xac \xf0\x9f\x94\xa5\"}}"),
};

static const struct vec invalid[] = {
    V("\x80"),                 /* stray continuation */
    V("\xbf"),
    V("\xc0\x80"),             /* overlong NUL */
    V("\xc1\xbf"),             /* overlong U+007F */
    V("\xe0\x80\x80"),         /* overlong 3-byte */
    V("\xe0\x9f\xbf"),         /* overlong U+07FF */
    V("\xf0\x80\x80\x80"),     /* overlong 4-byte */
    V("\xf0\x8f\xbf\xbf"),     /* overlong U+FFFF */
    V("\xed\xa0\x80"),         /* U+D800 */
    V("\xed\xbf\xbf"),         /* U+DFFF */
    V("\xed\xa0\x80\xed\xb0\x80"), /* a surrogate pair, CESU-8 style */
    V("\xf4\x90\x80\x80"),     /* U+110000 */
    V("\xf5\x80\x80\x80"),
    V("\xf7\xbf\xbf\xbf"),
    V("\xf8\x88\x80\x80\x80"), /* 5-byte form */
    V("\xfe"),
    V("\xff"),
    V("\xe2\x82"),             /* truncated at the end */
    V("\xf0\x9f\x98"),
    V("\xc3"),
    V("\xe2\x41\x82"),         /* lead then ASCII */
    V("abc\xc3(def"),
    V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited"), /* Autobahn 6.3 */
};

static void test_vectors(void **state)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); ++i) {
        assert_int_equal(validate_guarded(valid[i].s, valid[i].len), 0);
        assert_int_equal(ref_valid((const uint8_t *)valid[i].s, valid[i].len), 0);
    }
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); ++i) {
        assert_int_equal(validate_guarded(invalid[i].s, invalid[i].len), -1);
        assert_int_equal(ref_valid((const uint8_t *)invalid[i].s, invalid[i].len), -1);
    }
}

/* Feeds s in three pieces cut at i and j; the verdict must not depend on where the cuts are. */
static int split3(const struct vec *v, size_t i, size_t j)
{
    rt_utf8_t u;
    rt_utf8_init(&u);
    int r = rt_utf8_feed(&u, v->s, i);
    r |= rt_utf8_feed(&u, v->s + i, j - i);
    r |= rt_utf8_feed(&u, v->s + j, v->len - j);
    return r != 0 ? -1 : rt_utf8_finish(&u);
}

static void test_split_everywhere(void **state)
{
    for (size_t k = 0; k < sizeof(valid) / sizeof(valid[0]); ++k)
        for (size_t i = 0; i <= valid[k].len; ++i)
            for (size_t j = i; j <= valid[k].len; ++j)
                assert_int_equal(split3(&valid[k], i, j), 0);
    for (size_t k = 0; k < sizeof(invalid) / sizeof(invalid[0]); ++k)
        for (size_t i = 0; i <= invalid[k].len; ++i)
            for (size_t j = i; j <= invalid[k].len; ++j)
                assert_int_equal(split3(&invalid[k], i, j), -1);
}

static void test_byte_at_a_time_prefix_state(void **state)
{
    /* A valid text fed a byte at a time is "so far so good" at every step, but only finishes
     * cleanly at code point boundaries. */
    static const uint8_t s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\xa5z";
    static const int boundary[] = {1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1};
    rt_utf8_t u;
    rt_utf8_init(&u);
    for (size_t i = 0; i < sizeof(s) - 1; ++i) {
        assert_int_equal(rt_utf8_feed(&u, s + i, 1), 0);
        assert_int_equal(rt_utf8_finish(&u), boundary[i] ? 0 : -1);
    }
}

static void test_fail_fast_and_sticky(void **state)
{
    rt_utf8_t u;
    rt_utf8_init(&u);
    assert_int_equal(rt_utf8_feed(&u, "ok \xe2\x82", 5), 0);
    /* The bad byte fails the fragment it is in, before the message ends. */
    assert_int_equal(rt_utf8_feed(&u, "A more text", 11), -1);
    assert_int_equal(rt_utf8_feed(&u, "fine", 4), -1);
    assert_int_equal(rt_utf8_finish(&u), -1);
    rt_utf8_init(&u);
    assert_int_equal(rt_utf8_feed(&u, "fine", 4), 0);
    assert_int_equal(rt_utf8_finish(&u), 0);
    assert_int_equal(rt_utf8_feed(&u, NULL, 0), 0);
}

static void test_ascii_fast_path_positions(void **state)
{
    /* A non-ASCII byte at each position of long ASCII runs, at every alignment: the 8-byte
     * loop must hand over to the byte loop wherever it is. */
    uint8_t buf[80];
    for (size_t pos = 0; pos + 4 <= sizeof(buf); ++pos) {
        memset(buf, 'x', sizeof(buf));
        buf[pos] = 0xff;
        for (size_t off = 0; off < 8 && off <= pos; ++off)
            assert_int_equal(validate_guarded(buf + off, sizeof(buf) - off), -1);
        memcpy(buf + pos, "\xf0\x9f\x94\xa5", 4);
        for (size_t off = 0; off < 8 && off <= pos; ++off)
            assert_int_equal(validate_guarded(buf + off, sizeof(buf) - off), 0);
        /* truncated at the very end of the buffer */
        assert_int_equal(validate_guarded(buf, pos + 3), -1);
        assert_int_equal(validate_guarded(buf, pos + 4), 0);
    }
}

static void test_exhaustive_against_reference(void **state)
{
    uint8_t s[4];
    for (unsigned a = 0; a < 256; ++a) {
        s[0] = (uint8_t)a;
        assert_int_equal(rt_utf8_validate(s, 1), ref_valid(s, 1));
        for (unsigned b = 0; b < 256; ++b) {
            s[1] = (uint8_t)b;
            assert_int_equal(rt_utf8_validate(s, 2), ref_valid(s, 2));
        }
    }
    for (unsigned a = 0xe0; a < 0x100; ++a)
        for (unsigned b = 0x70; b < 0xd0; ++b)
            for (unsigned c = 0x70; c < 0xd0; ++c) {
                s[0] = (uint8_t)a, s[1] = (uint8_t)b, s[2] = (uint8_t)c;
                assert_int_equal(rt_utf8_validate(s, 3), ref_valid(s, 3));
            }
    static const uint8_t edge[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff};
    for (unsigned a = 0xf0; a < 0x100; ++a)
        for (size_t b = 0; b < sizeof(edge); ++b)
            for (size_t c = 0; c < sizeof(edge); ++c)
                for (size_t d = 0; d < sizeof(edge); ++d) {
                    s[0] = (uint8_t)a, s[1] = edge[b], s[2] = edge[c], s[3] = edge[d];
                    assert_int_equal(rt_utf8_validate(s, 4), ref_valid(s, 4));
                }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_byte_at_a_time_prefix_state),
        cmocka_unit_test(test_fail_fast_and_sticky),
        cmocka_unit_test(test_ascii_fast_path_positions),
        cmocka_unit_test(test_exhaustive_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
