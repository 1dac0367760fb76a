#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include "transport/sse_codec.h"

/* A buffer of exactly n bytes ending right before an unwritable page: writing past the size the
 * codec computed faults. */
static char *guard_alloc(size_t n, size_t *map_len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), m = (n + page - 1) / page * page + page;
    char *base = mmap(NULL, m, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(base != MAP_FAILED);
    assert_int_equal(mprotect(base + m - page, page, PROT_NONE), 0);
    *map_len = m;
    return base + m - page - n;
}

static void guard_free(char *p, size_t n, size_t map_len)
{
    munmap(p + n + (size_t)sysconf(_SC_PAGESIZE) - map_len, map_len);
}

/* Encodes ev into an exact-size guarded buffer; returns a malloc'ed NUL-terminated copy. */
static char *encode(const rt_sse_event_t *ev)
{
    size_t n = rt_sse_event_size(ev), map_len;
    assert_true(n > 0);
    char *p = guard_alloc(n, &map_len);
    assert_int_equal(rt_sse_event_write(p, ev), n);
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    guard_free(p, n, map_len);
    return s;
}

static void expect_event(const rt_sse_event_t *ev, const char *expect)
{
    char *s = encode(ev);
    assert_string_equal(s, expect);
    free(s);
}

static void test_event_blocks(void **state)
{
    rt_sse_event_t ev = {
        .id = "evt-01JD3Q8Z4K", .id_len = 14, .type = "incident.created", .type_len = 16,
        .data = "{\"id\":\"evt-01JD3Q8Z4K\",\"seq\":7}", .data_len = 31,
    };
    expect_event(&ev, "id: evt-01JD3Q8Z4K\nevent: incident.created\ndata: {\"id\":\"evt-01JD3Q8Z4K\",\"seq\":7}\n\n");

    ev.id = NULL;
    ev.type = "reset", ev.type_len = 5;
    ev.data = "{\"reason\":\"history_unavailable\"}", ev.data_len = strlen(ev.data);
    expect_event(&ev, "event: reset\ndata: {\"reason\":\"history_unavailable\"}\n\n");

    ev.type = NULL;
    ev.data = "x", ev.data_len = 1;
    expect_event(&ev, "data: x\n\n");

    ev.data = NULL, ev.data_len = 0;
    expect_event(&ev, "data: \n\n");

    /* only the given lengths are used */
    ev = (rt_sse_event_t){.id = "12345", .id_len = 2, .type = "abcdef", .type_len = 3, .data = "xyz", .data_len = 1};
    expect_event(&ev, "id: 12\nevent: abc\ndata: x\n\n");
}

static void test_data_lines(void **state)
{
    static const struct {
        const char *data, *expect;
    } cases[] = {
        {"a\nb", "data: a\ndata: b\n\n"},
        {"a\r\nb", "data: a\ndata: b\n\n"},
        {"a\rb", "data: a\ndata: b\n\n"},
        {"a\n", "data: a\ndata: \n\n"},
        {"\n", "data: \ndata: \n\n"},
        {"\r\n", "data: \ndata: \n\n"},
        {"\n\r", "data: \ndata: \ndata: \n\n"},
        {"a\n\nb", "data: a\ndata: \ndata: b\n\n"},
        {"a\r\r\nb\r", "data: a\ndata: \ndata: b\ndata: \n\n"},
        {"", "data: \n\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        rt_sse_event_t ev = {.data = cases[i].data, .data_len = strlen(cases[i].data)};
        expect_event(&ev, cases[i].expect);
    }
}

/* The client side, after the HTML standard's "interpret an event stream": returns the data
 * buffer of the single event in s (lines joined with LF), or NULL. */
static char *client_data(const char *s, size_t len)
{
    char *data = malloc(len + 1);
    size_t n = 0;
    int have = 0;
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *e = p;
        while (e < end && *e != '\n' && *e != '\r')
            ++e;
        if (e == end)
            break; /* an unterminated line is discarded */
        if (e > p + 6 && memcmp(p, "data: ", 6) == 0) {
            memcpy(data + n, p + 6, (size_t)(e - p - 6));
            n += (size_t)(e - p - 6);
            data[n++] = '\n';
            have = 1;
        } else if (e == p + 6 && memcmp(p, "data: ", 6) == 0) {
            data[n++] = '\n';
            have = 1;
        } else if (e == p && have) {
            data[n - 1] = '\0'; /* dispatch: drop the last LF */
            return data;
        }
        p = e + 1;
        if (*e == '\r' && p < end && *p == '\n')
            ++p;
    }
    free(data);
    return NULL;
}

static void test_roundtrip_through_a_client_parser(void **state)
{
    static const char alphabet[] = "ab\r\n{}\"";
    char data[12], norm[12];
    /* every string of up to 5 symbols from a small alphabet with both kinds of line breaks */
    for (unsigned len = 0; len <= 5; ++len) {
        unsigned combos = 1;
        for (unsigned i = 0; i < len; ++i)
            combos *= sizeof(alphabet) - 1;
        for (unsigned c = 0; c < combos; ++c) {
            unsigned x = c;
            for (unsigned i = 0; i < len; ++i, x /= sizeof(alphabet) - 1)
                data[i] = alphabet[x % (sizeof(alphabet) - 1)];
            /* what the client must see: every CRLF, CR and LF as LF */
            size_t m = 0;
            for (unsigned i = 0; i < len; ++i) {
                if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
                    continue;
                norm[m++] = data[i] == '\r' ? '\n' : data[i];
            }
            norm[m] = '\0';
            rt_sse_event_t ev = {.id = "1", .id_len = 1, .type = "t.x", .type_len = 3, .data = data, .data_len = len};
            char *s = encode(&ev);
            char *got = client_data(s, strlen(s));
            assert_non_null(got);
            assert_string_equal(got, norm);
            free(got);
            free(s);
        }
    }
}

static void test_refuses_field_injection(void **state)
{
    static const char *bad[] = {"a\nb", "a\rb", "a\r\n", "\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        rt_sse_event_t ev = {.id = bad[i], .id_len = strlen(bad[i]), .data = "{}", .data_len = 2};
        assert_int_equal(rt_sse_event_size(&ev), 0);
        assert_null(rt_sse_event_bytes(&ev));
        ev = (rt_sse_event_t){.type = bad[i], .type_len = strlen(bad[i]), .data = "{}", .data_len = 2};
        assert_int_equal(rt_sse_event_size(&ev), 0);
        assert_null(rt_sse_event_bytes(&ev));
    }
    rt_sse_event_t ev = {.id = "a\0b", .id_len = 3, .data = "{}", .data_len = 2};
    assert_int_equal(rt_sse_event_size(&ev), 0);
}

static void test_bytes(void **state)
{
    rt_sse_event_t ev = {.id = "e1", .id_len = 2, .type = "sla.breach", .type_len = 10, .data = "{}", .data_len = 2};
    rt_bytes_t *b = rt_sse_event_bytes(&ev);
    assert_non_null(b);
    assert_int_equal(b->len, rt_sse_event_size(&ev));
    assert_memory_equal(b->data, "id: e1\nevent: sla.breach\ndata: {}\n\n", b->len);
    assert_ptr_equal(rt_bytes_ref(b), b);
    rt_bytes_unref(b);
    rt_bytes_unref(b);
}

static void test_comment_and_retry(void **state)
{
    char buf[64];
    size_t map_len, n = rt_sse_comment_size("ping", 4);
    assert_int_equal(n, RT_SSE_PING_LEN);
    char *p = guard_alloc(n, &map_len);
    assert_int_equal(rt_sse_comment_write(p, "ping", 4), n);
    assert_memory_equal(p, RT_SSE_PING, n);
    guard_free(p, n, map_len);
    assert_string_equal(RT_SSE_PING, ": ping\n\n");

    n = rt_sse_comment_write(buf, "a\nb", 3);
    assert_int_equal(n, rt_sse_comment_size("a\nb", 3));
    assert_memory_equal(buf, ": a\n: b\n\n", n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_blocks),
        cmocka_unit_test(test_data_lines),
        cmocka_unit_test(test_roundtrip_through_a_client_parser),
        cmocka_unit_test(test_refuses_field_injection),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_comment_and_retry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
