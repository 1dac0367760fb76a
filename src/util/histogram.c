#include <inttypes.h>
#include "util/histogram.h"

const uint32_t rt_histogram_bounds_us[RT_HISTOGRAM_BOUNDS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

static void bump(_Atomic uint64_t *v, uint64_t by)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + by, memory_order_relaxed);
}

void rt_histogram_add(rt_histogram_t *h, uint64_t us)
{
    unsigned lo = 0, hi = RT_HISTOGRAM_BOUNDS; /* the first bound >= us, or RT_HISTOGRAM_BOUNDS (+Inf) */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (us <= rt_histogram_bounds_us[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    bump(&h->counts[lo], 1);
    bump(&h->sum_us, us);
}

void rt_histogram_sum(const rt_histogram_t *h, rt_histogram_sum_t *sum)
{
    for (unsigned i = 0; i <= RT_HISTOGRAM_BOUNDS; i++)
        sum->counts[i] += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    sum->sum_us += atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

void rt_histogram_prometheus(rt_buf_t *out, const char *name, const char *help, const rt_histogram_sum_t *sum)
{
    rt_buf_appendf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cumulative = 0;
    for (unsigned i = 0; i < RT_HISTOGRAM_BOUNDS; i++) {
        cumulative += sum->counts[i];
        rt_buf_appendf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, rt_histogram_bounds_us[i] / 1e6, cumulative);
    }
    cumulative += sum->counts[RT_HISTOGRAM_BOUNDS];
    rt_buf_appendf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.6f\n%s_count %" PRIu64 "\n", name, cumulative, name,
                   sum->sum_us / 1e6, name, cumulative);
}
