/*
 * Latency histograms for /metrics, with buckets that double from 100 µs to 13.1 s (100 µs × 2^k), so a sample's
 * bucket is a division by a constant and a count of leading zeros, not a search: it is taken on the delivery path.
 * One writer each (a worker, or a broadcaster under its lock), so adding a sample is plain stores (relaxed
 * atomics: a scrape on another thread reads torn-free counts); a scrape sums the per-worker ones.
 */
#ifndef RT_UTIL_HISTOGRAM_H
#define RT_UTIL_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>
#include "util/buf.h"

#define RT_HISTOGRAM_BOUNDS 18

/** The upper bound of bucket i (< RT_HISTOGRAM_BOUNDS), in microseconds; the last bucket, +Inf, has none. */
#define RT_HISTOGRAM_BOUND_US(i) (100u << (i))

typedef struct st_rt_histogram_t {
    _Atomic uint64_t counts[RT_HISTOGRAM_BOUNDS + 1]; /* not cumulative; the last is +Inf */
    _Atomic uint64_t sum_us;
} rt_histogram_t;

typedef struct st_rt_histogram_sum_t {
    uint64_t counts[RT_HISTOGRAM_BOUNDS + 1];
    uint64_t sum_us;
} rt_histogram_sum_t;

/** Adds a sample of us microseconds (the histogram's one writer). */
void rt_histogram_add(rt_histogram_t *h, uint64_t us);
/** Adds h's counts into sum (any thread). */
void rt_histogram_sum(const rt_histogram_t *h, rt_histogram_sum_t *sum);
/** Appends sum as a Prometheus histogram in seconds: # HELP, # TYPE, _bucket{le=…}, _sum, _count. */
void rt_histogram_prometheus(rt_buf_t *out, const char *name, const char *help, const rt_histogram_sum_t *sum);

#endif
