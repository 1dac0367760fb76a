/* Client addresses: parsing, CIDR matching as a table, X-Forwarded-For through trusted proxies; admission counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "net/addr.h"
#include "net/limits.h"

static rt_addr_t A(const char *s)
{
    rt_addr_t a;
    assert_true(rt_addr_parse(s, strlen(s), &a));
    return a;
}

static void test_parse_and_format(void **state)
{
    char buf[64];
    rt_addr_t a = A("192.0.2.7");
    rt_addr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "192.0.2.7");
    a = A("2001:db8::1");
    rt_addr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "2001:db8::1");
    assert_memory_equal(A("::ffff:192.0.2.7").b, A("192.0.2.7").b, 16); /* one address, however written */
    rt_addr_t x;
    const char *bad[] = {"", "192.0.2", "192.0.2.256", "[::1]", "::1/128", "host", "1.2.3.4 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (rt_addr_parse(bad[i], strlen(bad[i]), &x))
            fail_msg("parsed %s", bad[i]);
}

static void test_cidr(void **state)
{
    const struct {
        const char *net, *addr;
        bool in;
    } cases[] = {
        {"10.0.0.0/8", "10.255.1.2", true},     {"10.0.0.0/8", "11.0.0.1", false},
        {"10.1.2.3/8", "10.9.9.9", true},       /* host bits are ignored */
        {"192.168.1.0/25", "192.168.1.127", true}, {"192.168.1.0/25", "192.168.1.128", false},
        {"127.0.0.1", "127.0.0.1", true},       {"127.0.0.1", "127.0.0.2", false},
        {"0.0.0.0/0", "203.0.113.9", true},     {"0.0.0.0/0", "2001:db8::1", false}, /* IPv4 /0 is IPv4 only */
        {"fd00::/8", "fdab::1", true},          {"fd00::/8", "fe80::1", false},
        {"::/0", "2001:db8::1", true},          {"::1", "::1", true},
        {"2001:db8::/33", "2001:db8:7fff::1", true}, {"2001:db8::/33", "2001:db8:8000::1", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rt_cidr_t c;
        assert_true(rt_cidr_parse(cases[i].net, &c));
        rt_addr_t a = A(cases[i].addr);
        if (rt_cidr_match(&c, 1, &a) != cases[i].in)
            fail_msg("%s in %s: want %d", cases[i].addr, cases[i].net, cases[i].in);
    }
    const char *bad[] = {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8/8", "10.0.0/8", "/8", "10.0.0.0/-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (rt_cidr_valid(bad[i]))
            fail_msg("accepted %s", bad[i]);
}

static void test_forwarded_for(void **state)
{
    rt_cidr_t trusted[2];
    assert_true(rt_cidr_parse("127.0.0.1", &trusted[0]));
    assert_true(rt_cidr_parse("10.0.0.0/8", &trusted[1]));
    const struct {
        const char *xff, *want; /* want NULL: none found */
    } cases[] = {
        {"203.0.113.9", "203.0.113.9"},
        {"203.0.113.9, 10.0.0.5", "203.0.113.9"},          /* through an inner proxy */
        {"198.51.100.1, 203.0.113.9", "203.0.113.9"},      /* the client's own claim, left of it, is not believed */
        {"198.51.100.1,203.0.113.9,10.1.1.1, 127.0.0.1", "203.0.113.9"},
        {" 2001:db8::1 ", "2001:db8::1"},
        {"10.0.0.5", NULL},                                /* only proxies */
        {"unknown, 10.0.0.5", NULL},
        {"203.0.113.9:4711", NULL},                        /* not an address: nothing left of it counts */
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rt_addr_t got;
        bool found = rt_addr_forwarded_for(cases[i].xff, trusted, 2, &got);
        if (found != (cases[i].want != NULL))
            fail_msg("%s: found %d", cases[i].xff, found);
        if (found)
            assert_memory_equal(got.b, A(cases[i].want).b, 16);
    }
    rt_addr_t got;
    assert_false(rt_addr_forwarded_for(NULL, trusted, 2, &got));
}

static void test_admission(void **state)
{
    rt_admission_t *a = rt_admission_new(3, 2, NULL, 0);
    assert_true(rt_admission_per_address(a));
    assert_true(rt_admission_enter(a));
    assert_true(rt_admission_enter(a));
    assert_true(rt_admission_enter(a));
    assert_false(rt_admission_enter(a)); /* the fourth */
    rt_admission_leave(a);
    rt_admission_leave(a);
    assert_true(rt_admission_enter(a));
    bool over;
    rt_addr_t x = A("192.0.2.1"), y = A("192.0.2.2");
    rt_admission_slot_t *s1 = rt_admission_enter_addr(a, &x, &over);
    assert_false(over);
    rt_admission_slot_t *s2 = rt_admission_enter_addr(a, &x, &over);
    assert_false(over);
    rt_admission_slot_t *s3 = rt_admission_enter_addr(a, &x, &over);
    assert_true(over);
    rt_admission_slot_t *o = rt_admission_enter_addr(a, &y, &over);
    assert_false(over); /* another address has its own count */
    rt_admission_leave_addr(a, s3);
    rt_admission_leave_addr(a, s2);
    s2 = rt_admission_enter_addr(a, &x, &over);
    assert_false(over);
    /* an IPv6 client is counted by its /64 */
    rt_addr_t p = A("2001:db8:1:2::1"), q = A("2001:db8:1:2:ffff::9"), r = A("2001:db8:1:3::1");
    rt_admission_slot_t *v1 = rt_admission_enter_addr(a, &p, &over), *v2 = rt_admission_enter_addr(a, &q, &over);
    assert_ptr_equal(v1, v2);
    rt_admission_slot_t *v3 = rt_admission_enter_addr(a, &q, &over);
    assert_true(over);
    rt_admission_slot_t *w = rt_admission_enter_addr(a, &r, &over);
    assert_false(over);
    rt_admission_slot_t *all[] = {s1, s2, o, v1, v2, v3, w};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        rt_admission_leave_addr(a, all[i]);
    rt_admission_free(a); /* LeakSanitizer: every slot went with its last connection */

    a = rt_admission_new(0, 0, NULL, 0);
    assert_false(rt_admission_per_address(a));
    for (int i = 0; i < 1000; i++)
        assert_true(rt_admission_enter(a));
    rt_admission_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_format),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_forwarded_for),
        cmocka_unit_test(test_admission),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
