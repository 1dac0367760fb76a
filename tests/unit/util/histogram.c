/* Histogram buckets (100 µs doubling to 13.1 s): a sample lands in the first bucket whose bound it does not exceed; the
 * exposition is cumulative. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "util/histogram.h"

static void test_buckets(void **state)
{
    rt_histogram_t h = {0};
    const struct {
        uint64_t us;
        unsigned bucket;
    } cases[] = {{0, 0},         {100, 0},       {101, 1},        {200, 1},        {201, 2},        {400, 2},
                 {401, 3},       {800, 3},       {801, 4},        {6553600, 16},   {6553601, 17},   {13107200, 17},
                 {13107201, 18}, {UINT64_MAX / 2, 18}};
    /* and at every bound, on either side */
    for (unsigned b = 0; b < RT_HISTOGRAM_BOUNDS; b++) {
        rt_histogram_t at = {0};
        rt_histogram_add(&at, RT_HISTOGRAM_BOUND_US(b));
        rt_histogram_add(&at, RT_HISTOGRAM_BOUND_US(b) + 1);
        assert_int_equal(atomic_load(&at.counts[b]), 1);
        assert_int_equal(atomic_load(&at.counts[b + 1]), 1);
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rt_histogram_t one = {0};
        rt_histogram_add(&one, cases[i].us);
        for (unsigned b = 0; b <= RT_HISTOGRAM_BOUNDS; b++)
            if (atomic_load(&one.counts[b]) != (b == cases[i].bucket))
                fail_msg("%llu us: bucket %u holds %llu", (unsigned long long)cases[i].us, b, (unsigned long long)atomic_load(&one.counts[b]));
    }
    rt_histogram_add(&h, 50);
    rt_histogram_add(&h, 3000);
    rt_histogram_add(&h, 20000000);
    rt_histogram_sum_t sum = {0};
    rt_histogram_sum(&h, &sum);
    rt_histogram_sum(&h, &sum); /* sums add up: two workers with the same samples */
    assert_int_equal(sum.sum_us, 2 * (50 + 3000 + 20000000));
    rt_buf_t out = {0};
    rt_histogram_prometheus(&out, "x_seconds", "help", &sum);
    rt_buf_append(&out, "", 1);
    assert_non_null(strstr(out.base, "# TYPE x_seconds histogram\n"));
    assert_non_null(strstr(out.base, "x_seconds_bucket{le=\"0.0001\"} 2\n"));
    assert_non_null(strstr(out.base, "x_seconds_bucket{le=\"0.0032\"} 4\n"));  /* cumulative */
    assert_non_null(strstr(out.base, "x_seconds_bucket{le=\"13.1072\"} 4\n"));
    assert_non_null(strstr(out.base, "x_seconds_bucket{le=\"+Inf\"} 6\n"));
    assert_non_null(strstr(out.base, "x_seconds_count 6\n"));
    assert_non_null(strstr(out.base, "x_seconds_sum 40.006100\n"));
    rt_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_buckets)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
