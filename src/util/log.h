/*
 * Logging to stderr with a level and a per-file prefix (the module): `#define LOG_PREFIX "ws"` before including.
 *
 * Every line starts with an RFC 3339 UTC timestamp with milliseconds. Two layouts (rt_log_format):
 *   text: 2026-12-07T23:38:27.123Z info  server: listening on 127.0.0.1:8080 (...)
 *   json: {"ts":"2026-12-07T23:38:27.123Z","level":"info","module":"server","msg":"listening on ..."}
 * Control characters in a message are escaped in both (a message never spans lines); in JSON, bytes that are not
 * UTF-8 become U+FFFD, so every line parses.
 *
 * Repeats are rate-limited: a message (the same module and format string, compared by pointer) logged more than
 * RT_LOG_REPEAT_MAX times within RT_LOG_REPEAT_WINDOW_MS is not written again until that window ends; then one
 * line says how many were suppressed. That line is written by the next rt_log of that message or by rt_log_tick,
 * whichever comes first. rt_log_record lines (the access log) are never limited.
 *
 * Any thread: the table of recent messages and the output are behind one mutex, taken only for messages at or
 * under rt_log_level.
 */
#ifndef RT_UTIL_LOG_H
#define RT_UTIL_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { RT_LOG_ERROR, RT_LOG_WARN, RT_LOG_INFO, RT_LOG_DEBUG };
enum { RT_LOG_TEXT, RT_LOG_JSON };

/** A message logged more often than this within one window is suppressed for the rest of it. */
#define RT_LOG_REPEAT_MAX 10
#define RT_LOG_REPEAT_WINDOW_MS 10000

/** Messages above this level are dropped (default RT_LOG_INFO). Set at startup, before workers run. */
extern int rt_log_level;
/** RT_LOG_TEXT (default) or RT_LOG_JSON. Set at startup, before workers run. */
extern int rt_log_format;

/** Logs one message (printf format), subject to the repeat limit. fmt and prefix must be static strings. */
void rt_log(int level, const char *prefix, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/**
 * Logs one line that is never rate-limited (the access log): text is the message of a text line; json_fields,
 * when not NULL, are extra members for a JSON line, already encoded ("\"status\":200,\"path\":\"/x\""), put after
 * "msg". Dropped above rt_log_level like any other.
 */
void rt_log_record(int level, const char *prefix, const char *text, const char *json_fields);
/** Writes the summary of every repeat window that has ended. Call about once a second (the main loop does). */
void rt_log_tick(void);
/** Writes the summary of every window with suppressed repeats, ended or not, and forgets them (at exit). */
void rt_log_flush(void);
/**
 * Appends s[0..len) to dst (size bytes, always NUL-terminated) as the inside of a JSON string: quotes, backslashes
 * and control characters escaped, invalid UTF-8 as \ufffd. Returns the length written (stops short at size).
 */
size_t rt_log_json_escape(char *dst, size_t size, const char *s, size_t len);

/** For tests: where lines go (NULL: stderr), and the clocks (NULL: the system's). */
void rt__log_set_output(FILE *out);
void rt__log_set_clocks(int64_t (*wall_ms)(void), int64_t (*mono_ms)(void));
/** Writes unix_ms as "2026-12-07T23:38:27.123Z" into buf (at least 25 bytes); returns 24. */
size_t rt__log_timestamp(char *buf, int64_t unix_ms);

#ifndef LOG_PREFIX
#define LOG_PREFIX "realtime"
#endif
#define RT_LOG_ERR(...) rt_log(RT_LOG_ERROR, LOG_PREFIX, __VA_ARGS__)
#define RT_LOG_WARN(...) rt_log(RT_LOG_WARN, LOG_PREFIX, __VA_ARGS__)
#define RT_LOG_INFO(...) rt_log(RT_LOG_INFO, LOG_PREFIX, __VA_ARGS__)
#define RT_LOG_DEBUG(...) rt_log(RT_LOG_DEBUG, LOG_PREFIX, __VA_ARGS__)

#endif
