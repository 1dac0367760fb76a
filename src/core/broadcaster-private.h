/* What the server reads of a broadcaster beyond the public API (include/realtime/broadcaster.h): for /metrics. */
#ifndef RT_CORE_BROADCASTER_PRIVATE_H
#define RT_CORE_BROADCASTER_PRIVATE_H

#include "realtime/broadcaster.h"
#include "util/histogram.h"

/** Adds the broadcaster's fan-out times (one sample per event: matching and queueing to every subscriber) to sum. */
void rt__broadcaster_fanout_time(rt_broadcaster_t *b, rt_histogram_sum_t *sum);

#endif
