/*
 * Logging to stderr with a level and a per-file prefix: `#define LOG_PREFIX "ws"` before including.
 */
#ifndef RT_UTIL_LOG_H
#define RT_UTIL_LOG_H

enum { RT_LOG_ERROR, RT_LOG_WARN, RT_LOG_INFO, RT_LOG_DEBUG };

/** Messages above this level are dropped (default RT_LOG_INFO). */
extern int rt_log_level;

void rt_log(int level, const char *prefix, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#ifndef LOG_PREFIX
#define LOG_PREFIX "realtime"
#endif
#define RT_LOG_ERR(...) rt_log(RT_LOG_ERROR, LOG_PREFIX, __VA_ARGS__)
#define RT_LOG_WARN(...) rt_log(RT_LOG_WARN, LOG_PREFIX, __VA_ARGS__)
#define RT_LOG_INFO(...) rt_log(RT_LOG_INFO, LOG_PREFIX, __VA_ARGS__)
#define RT_LOG_DEBUG(...) rt_log(RT_LOG_DEBUG, LOG_PREFIX, __VA_ARGS__)

#endif
