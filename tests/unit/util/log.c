/* Logging: RFC 3339 timestamps, the text and JSON layouts, escaping (control characters, quotes, bad UTF-8), the
 * repeat limit with its summary line (at the next repeat, on the tick, at the flush), and threads logging at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util/log.h"

static int64_t fake_wall = 1796687907123; /* 2026-12-07T23:58:27.123Z */
static int64_t fake_mono = 1000000;

static int64_t wall(void)
{
    return fake_wall;
}

static int64_t mono(void)
{
    return fake_mono;
}

static char *out_text;
static size_t out_len;
static FILE *out;

static int setup(void **state)
{
    rt_log_flush(); /* nothing left from a previous test */
    out = open_memstream(&out_text, &out_len);
    rt__log_set_output(out);
    rt__log_set_clocks(wall, mono);
    rt_log_level = RT_LOG_INFO;
    rt_log_format = RT_LOG_TEXT;
    return 0;
}

static int teardown(void **state)
{
    rt_log_flush();
    rt__log_set_output(NULL);
    rt__log_set_clocks(NULL, NULL);
    fclose(out);
    free(out_text);
    rt_log_format = RT_LOG_TEXT;
    return 0;
}

/* What was written so far (the stream stays open). */
static const char *written(void)
{
    fflush(out);
    return out_text;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

static size_t count_of(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_timestamp(void **state)
{
    char buf[32];
    assert_int_equal(rt__log_timestamp(buf, 1796687907123), 24);
    assert_string_equal(buf, "2026-12-07T23:58:27.123Z");
    rt__log_timestamp(buf, 0);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    rt__log_timestamp(buf, 951782400005); /* a leap day, 5 ms */
    assert_string_equal(buf, "2000-02-29T00:00:00.005Z");
}

static void test_text_line(void **state)
{
    rt_log(RT_LOG_INFO, "server", "listening on %s:%d", "127.0.0.1", 8080);
    rt_log(RT_LOG_WARN, "ws", "two\nlines\tand \x01 bell");
    rt_log(RT_LOG_DEBUG, "ws", "not at info");
    assert_string_equal(written(), "2026-12-07T23:58:27.123Z info  server: listening on 127.0.0.1:8080\n"
                                   "2026-12-07T23:58:27.123Z warn  ws: two\\nlines\\x09and \\x01 bell\n");
}

static void test_json_line(void **state)
{
    rt_log_format = RT_LOG_JSON;
    rt_log(RT_LOG_ERROR, "api", "quote \" backslash \\ newline \n tab \t nul-ish \x1f del \x7f é bad \xff\xfe end");
    const char *line = written();
    assert_int_equal(count_lines(line), 1);
    json_error_t err;
    json_t *j = json_loads(line, 0, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "ts")), "2026-12-07T23:58:27.123Z");
    assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(j, "module")), "api");
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "quote \" backslash \\ newline \n tab \t nul-ish \x1f del \x7f \xc3\xa9 bad \xef\xbf\xbd\xef\xbf\xbd end");
    assert_int_equal(json_object_size(j), 4);
    /* the member order is the documented one */
    assert_true(strncmp(line, "{\"ts\":", 6) == 0);
    assert_non_null(strstr(line, "\"level\":\"error\",\"module\":\"api\",\"msg\":"));
    json_decref(j);
}

static void test_json_record_fields(void **state)
{
    rt_log_format = RT_LOG_JSON;
    rt_log_record(RT_LOG_INFO, "access", "GET / 200", "\"kind\":\"http\",\"status\":200");
    json_t *j = json_loads(written(), 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "GET / 200");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "http");
    json_decref(j);
}

static void test_json_long_message_stays_valid(void **state)
{
    rt_log_format = RT_LOG_JSON;
    char *big = malloc(5000);
    memset(big, '"', 4999); /* each one escapes to two bytes: cut, but the line still parses */
    big[4999] = '\0';
    rt_log(RT_LOG_INFO, "x", "%s", big);
    json_t *j = json_loads(written(), 0, NULL);
    assert_non_null(j);
    assert_true(strlen(json_string_value(json_object_get(j, "msg"))) > 500);
    json_decref(j);
    free(big);
}

static void test_json_escape_bounds(void **state)
{
    char buf[8];
    /* never writes past size, never cuts an escape in half */
    assert_int_equal(rt_log_json_escape(buf, sizeof(buf), "ab\"cd\"e", 8), 6);
    assert_string_equal(buf, "ab\\\"cd");
    assert_int_equal(rt_log_json_escape(buf, sizeof(buf), "\x01", 1), 6);
    assert_string_equal(buf, "\\u0001");
    /* overlong, surrogate and truncated sequences are not UTF-8 */
    char big[64];
    rt_log_json_escape(big, sizeof(big), "\xc0\xaf|\xed\xa0\x80|\xe2\x82", 9);
    assert_string_equal(big, "\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd");
    rt_log_json_escape(big, sizeof(big), "\xe2\x82\xac \xf0\x9f\x98\x80", 8);
    assert_string_equal(big, "\xe2\x82\xac \xf0\x9f\x98\x80");
}

static void log_repeat(int i)
{
    rt_log(RT_LOG_WARN, "conn", "accept failed: %d", i);
}

static void test_repeats_suppressed_then_summarized(void **state)
{
    for (int i = 0; i < 50; i++)
        log_repeat(i);
    rt_log(RT_LOG_WARN, "conn", "another message"); /* another format string: its own count */
    const char *s = written();
    assert_int_equal(count_of(s, "accept failed: "), RT_LOG_REPEAT_MAX);
    assert_non_null(strstr(s, "accept failed: 9\n"));
    assert_null(strstr(s, "accept failed: 10\n"));
    assert_non_null(strstr(s, "another message"));
    assert_null(strstr(s, "repeated"));
    /* the window has not ended: the tick says nothing yet */
    fake_mono += RT_LOG_REPEAT_WINDOW_MS - 1;
    rt_log_tick();
    assert_null(strstr(written(), "repeated"));
    /* it ends: the next repeat writes the summary first, then starts a new window */
    fake_mono += 1;
    log_repeat(100);
    s = written();
    assert_non_null(strstr(s, "warn  conn: repeated 40 more times in 10 s (not shown): accept failed: 9\n"));
    assert_non_null(strstr(s, "accept failed: 100\n"));
    assert_true(strstr(s, "repeated 40") < strstr(s, "accept failed: 100"));
    assert_int_equal(count_of(s, "repeated"), 1);
}

static void test_repeats_summarized_by_tick(void **state)
{
    for (int i = 0; i < 12; i++)
        log_repeat(i);
    assert_null(strstr(written(), "repeated"));
    fake_mono += RT_LOG_REPEAT_WINDOW_MS;
    rt_log_tick();
    assert_non_null(strstr(written(), "repeated 2 more times in 10 s (not shown): accept failed: 9\n"));
    rt_log_tick(); /* once */
    assert_int_equal(count_of(written(), "repeated"), 1);
    /* after the window: shown again */
    log_repeat(77);
    assert_non_null(strstr(written(), "accept failed: 77\n"));
}

static void test_no_summary_without_suppression(void **state)
{
    for (int i = 0; i < RT_LOG_REPEAT_MAX; i++)
        log_repeat(i);
    fake_mono += RT_LOG_REPEAT_WINDOW_MS;
    rt_log_tick();
    rt_log_flush();
    assert_int_equal(count_of(written(), "accept failed"), RT_LOG_REPEAT_MAX);
    assert_null(strstr(written(), "repeated"));
}

static void test_flush_summarizes_open_windows(void **state)
{
    for (int i = 0; i < 15; i++)
        log_repeat(i);
    rt_log_flush();
    assert_non_null(strstr(written(), "repeated 5 more times"));
}

static void test_records_never_limited(void **state)
{
    for (int i = 0; i < 100; i++)
        rt_log_record(RT_LOG_INFO, "access", "GET / 200", NULL);
    assert_int_equal(count_of(written(), "GET / 200"), 100);
    assert_null(strstr(written(), "repeated"));
}

static void test_levels_filtered_before_counting(void **state)
{
    for (int i = 0; i < 30; i++)
        rt_log(RT_LOG_DEBUG, "ws", "debug %d", i);
    rt_log_flush();
    assert_true(written() == NULL || written()[0] == '\0');
}

static void test_json_summary(void **state)
{
    rt_log_format = RT_LOG_JSON;
    for (int i = 0; i < 11; i++)
        log_repeat(i);
    rt_log_flush();
    const char *s = strstr(written(), "{\"ts\"");
    size_t lines = 0;
    for (const char *p = s; p != NULL && *p != '\0'; lines++) {
        const char *nl = strchr(p, '\n');
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, NULL);
        assert_non_null(j);
        if (lines == RT_LOG_REPEAT_MAX)
            assert_string_equal(json_string_value(json_object_get(j, "msg")), "repeated 1 more times in 10 s (not shown): accept failed: 9");
        json_decref(j);
        p = nl + 1;
    }
    assert_int_equal(lines, RT_LOG_REPEAT_MAX + 1);
}

#define THREADS 8
#define PER_THREAD 200

static void *log_thread(void *arg)
{
    for (int i = 0; i < PER_THREAD; i++) {
        rt_log(RT_LOG_INFO, "w", "same message from thread %d", (int)(intptr_t)arg);
        rt_log_record(RT_LOG_INFO, "access", "record", NULL);
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, log_thread, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    rt_log_flush();
    const char *s = written();
    /* whole lines only, the limit applied across threads, the rest counted in one summary */
    assert_int_equal(count_of(s, "info  w: same message from thread"), RT_LOG_REPEAT_MAX); /* and once quoted in the summary */
    assert_int_equal(count_of(s, "same message from thread"), RT_LOG_REPEAT_MAX + 1);
    assert_int_equal(count_of(s, ": record\n"), THREADS * PER_THREAD);
    char want[96];
    snprintf(want, sizeof(want), "repeated %d more times", THREADS * PER_THREAD - RT_LOG_REPEAT_MAX);
    assert_non_null(strstr(s, want));
    assert_int_equal(count_lines(s), RT_LOG_REPEAT_MAX + THREADS * PER_THREAD + 1);
    for (const char *p = s; *p != '\0'; p = strchr(p, '\n') + 1)
        assert_true(strncmp(p, "2026-12-07T23:58:27.123Z info  ", 31) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_timestamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_record_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_long_message_stays_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_escape_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeats_suppressed_then_summarized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeats_summarized_by_tick, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_summary_without_suppression, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_summarizes_open_windows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_never_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels_filtered_before_counting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_summary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
