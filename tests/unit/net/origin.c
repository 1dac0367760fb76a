/* The Origin rules, as a table: listed, globbed, same-origin, insecure, malformed, and absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "net/origin.h"

static void test_check(void **state)
{
    char *list[] = {"https://app.example.com", "http://localhost:3000", "https://*.corp.example", "null"};
    const struct {
        const char *origin, *host;
        bool any;
        rt_origin_verdict_t want;
    } cases[] = {
        {NULL, "rt.example.com", false, RT_ORIGIN_ABSENT},
        {NULL, NULL, true, RT_ORIGIN_ABSENT},
        {"https://app.example.com", "rt.example.com", false, RT_ORIGIN_ALLOWED},
        {"HTTPS://APP.EXAMPLE.COM", "rt.example.com", false, RT_ORIGIN_ALLOWED}, /* case does not matter */
        {"http://app.example.com", "rt.example.com", false, RT_ORIGIN_FOREIGN},  /* the scheme does */
        {"https://app.example.com:8443", "rt.example.com", false, RT_ORIGIN_FOREIGN}, /* and the port */
        {"https://app.example.com.evil.net", "rt.example.com", false, RT_ORIGIN_FOREIGN},
        {"http://localhost:3000", "127.0.0.1:8080", false, RT_ORIGIN_ALLOWED},
        {"http://localhost:3001", "127.0.0.1:8080", false, RT_ORIGIN_FOREIGN},
        {"https://ops.corp.example", "x", false, RT_ORIGIN_ALLOWED},
        {"https://a.b.corp.example", "x", false, RT_ORIGIN_ALLOWED},
        {"https://corp.example", "x", false, RT_ORIGIN_FOREIGN},     /* the star stands for at least one character */
        {"https://.corp.example", "x", false, RT_ORIGIN_FOREIGN},
        {"https://ops.corp.example:1", "x", false, RT_ORIGIN_FOREIGN}, /* the star covers no port */
        {"https://evil.net/.corp.example", "x", false, RT_ORIGIN_FOREIGN},
        {"http://ops.corp.example", "x", false, RT_ORIGIN_FOREIGN},
        {"null", "x", false, RT_ORIGIN_ALLOWED}, /* listed */
        /* the server's own origin, as the Host header names it */
        {"http://127.0.0.1:8080", "127.0.0.1:8080", false, RT_ORIGIN_ALLOWED},
        {"https://RT.example.com", "rt.example.com", false, RT_ORIGIN_ALLOWED},
        {"http://127.0.0.1:8081", "127.0.0.1:8080", false, RT_ORIGIN_FOREIGN},
        {"http://127.0.0.1:8080", NULL, false, RT_ORIGIN_FOREIGN},
        {"http://127.0.0.1:8080/", "127.0.0.1:8080", false, RT_ORIGIN_FOREIGN}, /* an origin has no path */
        {"127.0.0.1:8080", "127.0.0.1:8080", false, RT_ORIGIN_FOREIGN},
        /* insecure allows any well-formed origin, never one that could not be echoed safely */
        {"https://evil.net", "x", true, RT_ORIGIN_ALLOWED},
        {"", "x", false, RT_ORIGIN_FOREIGN},
        {"https://a b", "x", true, RT_ORIGIN_FOREIGN},
        {"https://a\r\nSet-Cookie: x", "x", true, RT_ORIGIN_FOREIGN},
        {"https://\xc3\xa9.example", "x", true, RT_ORIGIN_FOREIGN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rt_origin_verdict_t got = rt_origin_check(list, 4, cases[i].any, cases[i].origin, cases[i].host);
        if (got != cases[i].want)
            fail_msg("case %zu: %s (host %s, any %d): got %d, want %d", i, cases[i].origin ? cases[i].origin : "(none)",
                     cases[i].host ? cases[i].host : "(none)", cases[i].any, got, cases[i].want);
    }
    /* "*" allows every origin; an empty list none but the server's own */
    char *star[] = {"*"};
    assert_int_equal(rt_origin_check(star, 1, false, "https://anything.example", "x"), RT_ORIGIN_ALLOWED);
    assert_int_equal(rt_origin_check(NULL, 0, false, "https://anything.example", "x"), RT_ORIGIN_FOREIGN);
    /* the longest echoed origin, and one past it */
    char longest[RT_ORIGIN_MAX + 2] = "https://";
    memset(longest + 8, 'a', RT_ORIGIN_MAX - 8);
    longest[RT_ORIGIN_MAX] = '\0';
    assert_int_equal(rt_origin_check(star, 1, false, longest, "x"), RT_ORIGIN_ALLOWED);
    longest[RT_ORIGIN_MAX] = 'a';
    longest[RT_ORIGIN_MAX + 1] = '\0';
    assert_int_equal(rt_origin_check(star, 1, false, longest, "x"), RT_ORIGIN_FOREIGN);
}

static void test_entry_valid(void **state)
{
    const char *good[] = {"*", "null", "https://app.example.com", "http://localhost:3000", "https://*.example.com",
                          "http://[::1]:8080"};
    const char *bad[] = {"", "app.example.com", "https://", "https://app.example.com/", "https://app.example.com/x",
                         "ht*ps://x.example", "https://*.*.example", "https://a b", "://x", "**"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!rt_origin_entry_valid(good[i]))
            fail_msg("refused %s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (rt_origin_entry_valid(bad[i]))
            fail_msg("accepted %s", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_entry_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
