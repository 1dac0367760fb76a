/*
 * Clocks. Time-dependent modules take an rt_clock_fn so tests can inject time.
 */
#ifndef RT_UTIL_CLOCK_H
#define RT_UTIL_CLOCK_H

#include <stdint.h>
#include "realtime/history.h"

/** Wall-clock milliseconds since the Unix epoch. */
int64_t rt_clock_wall_ms(void);
/** Monotonic milliseconds. */
int64_t rt_clock_mono_ms(void);
/** Monotonic microseconds (for durations finer than the loop's cached milliseconds). */
int64_t rt_clock_mono_us(void);
/** rt_clock_fn adapter for rt_clock_wall_ms. */
int64_t rt_clock_wall(void *ctx);

#endif
