#include <inttypes.h>
#include "util/histogram.h"

static void bump(_Atomic uint64_t *v, uint64_t by)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + by, memory_order_relaxed);
}

void rt_histogram_add(rt_histogram_t *h, uint64_t us)
{
    /* Bucket k holds (100 × 2^(k-1), 100 × 2^k]: with q = (us - 1) / 100 that is the k with 2^(k-1) <= q < 2^k,
     * the bit length of q; bucket 0 holds up to 100 µs. */
    uint64_t q = us > 100 ? (us - 1) / 100 : 0;
    unsigned k = q == 0 ? 0 : 64 - (unsigned)__builtin_clzll(q);
    bump(&h->counts[k < RT_HISTOGRAM_BOUNDS ? k : RT_HISTOGRAM_BOUNDS], 1);
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
        rt_buf_appendf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, RT_HISTOGRAM_BOUND_US(i) / 1e6, cumulative);
    }
    cumulative += sum->counts[RT_HISTOGRAM_BOUNDS];
    rt_buf_appendf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.6f\n%s_count %" PRIu64 "\n", name, cumulative, name,
                   sum->sum_us / 1e6, name, cumulative);
}
