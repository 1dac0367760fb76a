/* Redis broker, pure parts: URL parsing, the fan-out message format, the replica's ordering rule, the event JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/event.h"
#include "broker/redis-private.h"

static void test_url(void **state)
{
    rt__redis_url_t u;
    char err[160];
    assert_int_equal(rt__redis_url_parse("redis://127.0.0.1:6380", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_int_equal(rt__redis_url_parse("redis://localhost", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6379);
    assert_int_equal(rt__redis_url_parse("redis://:s3cret@h:1/2", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "s3cret");
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 1);
    assert_int_equal(u.db, 2);
    assert_int_equal(rt__redis_url_parse("redis://bob:pw@h/", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "bob");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 0);
    assert_int_equal(rt__redis_url_parse("unix:///run/redis.sock?db=3", &u, err, sizeof(err)), 0);
    assert_string_equal(u.path, "/run/redis.sock");
    assert_string_equal(u.host, "");
    assert_int_equal(u.db, 3);
    const char *bad[] = {"http://h", "redis://", "redis://h:0", "redis://h:65536", "redis://h:x", "redis://h/db",
                         "redis://pw@h", "unix://", "unix://rel", "unix:///s?x=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (rt__redis_url_parse(bad[i], &u, err, sizeof(err)) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_true(err[0] != '\0');
    }
}

static int parse(const char *s, rt__redis_msg_t *m)
{
    return rt__redis_msg_parse(s, strlen(s), m);
}

static void test_msg(void **state)
{
    rt__redis_msg_t m;
    const char *ok = "ab12cd34 42 1764300000123 1 7,1,18446744073709551615\n{\"id\":\"x\"}";
    assert_int_equal(parse(ok, &m), 0);
    assert_string_equal(m.epoch, "ab12cd34");
    assert_int_equal(m.seq, 42);
    assert_int_equal(m.ms, 1764300000123LL);
    assert_int_equal(m.flags, 1);
    assert_int_equal(m.n_offsets, 3);
    assert_int_equal(m.offsets[0], 7);
    assert_int_equal(m.offsets[1], 1);
    assert_true(m.offsets[2] == UINT64_MAX);
    assert_int_equal(m.json_len, 10);
    assert_memory_equal(m.json, "{\"id\":\"x\"}", 10);
    /* The JSON may hold anything, newlines included; only the first line is the header. */
    assert_int_equal(parse("e 1 0 0 5\n{\"a\":\"\\n\"}\n", &m), 0);
    assert_int_equal(m.n_offsets, 1);
    assert_int_equal(m.json_len, 11);

    const char *bad[] = {
        "",                                      /* empty */
        "e 1 0 0 5",                             /* no JSON line */
        "e 1 0 0 5\n",                           /* empty JSON */
        "e 0 0 0 5\n{}",                         /* seq 0 */
        "e 1 0 0 0\n{}",                         /* offset 0 */
        "e 1 0 0 \n{}",                          /* no offsets */
        "e 1 0 0 5,\n{}",                        /* trailing comma */
        "e 1 0 0 5,,6\n{}",                      /* empty offset */
        " 1 0 0 5\n{}",                          /* empty epoch */
        "0123456789abcdefX 1 0 0 5\n{}",         /* epoch too long */
        "e 1x 0 0 5\n{}",                        /* junk in seq */
        "e 18446744073709551616 0 0 5\n{}",      /* seq overflows */
        "e 1 9223372036854775808 0 5\n{}",       /* ms beyond int64 */
        "e 1 0 65536 5\n{}",                     /* flags too large */
        "e 1 0 0 5 6\n{}",                       /* space in offsets */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse(bad[i], &m) != -1)
            fail_msg("accepted message %zu: %s", i, bad[i]);
    /* The epoch is printable ASCII: a NUL in it (found by fuzz/redis_msg) made "\0" an empty epoch string. */
    assert_int_equal(rt__redis_msg_parse("\0 1 0 0 5\n{}", 12, &m), -1);
    assert_int_equal(rt__redis_msg_parse("a\0b 1 0 0 5\n{}", 14, &m), -1);
    assert_int_equal(parse("a\tb 1 0 0 5\n{}", &m), -1);
    assert_int_equal(parse("a\x7f 1 0 0 5\n{}", &m), -1);
    /* At most RT_EVENT_MAX_CHANNELS offsets. */
    char big[2048];
    size_t n = (size_t)snprintf(big, sizeof(big), "e 1 0 0 ");
    for (int i = 0; i < RT_EVENT_MAX_CHANNELS; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s1", i ? "," : "");
    snprintf(big + n, sizeof(big) - n, "\n{}");
    assert_int_equal(parse(big, &m), 0);
    assert_int_equal(m.n_offsets, RT_EVENT_MAX_CHANNELS);
    snprintf(big + n, sizeof(big) - n, ",1\n{}");
    assert_int_equal(parse(big, &m), -1);
    /* The longest header fits the bound the broker adds to max_event_bytes. */
    assert_true(RT__REDIS_HEADER_MAX >= 16 + 1 + 20 + 1 + 20 + 1 + 5 + 1 + RT_EVENT_MAX_CHANNELS * 21);
}

static void test_decide(void **state)
{
    assert_int_equal(rt__redis_decide("e", 0, "e", 1), RT__REDIS_APPLY);
    assert_int_equal(rt__redis_decide("e", 41, "e", 42), RT__REDIS_APPLY);
    assert_int_equal(rt__redis_decide("e", 42, "e", 42), RT__REDIS_SKIP);
    assert_int_equal(rt__redis_decide("e", 42, "e", 7), RT__REDIS_SKIP);
    assert_int_equal(rt__redis_decide("e", 42, "e", 44), RT__REDIS_GAP);
    assert_int_equal(rt__redis_decide("e", 0, "e", 5), RT__REDIS_GAP);
    /* Another epoch wins over any seq comparison: the local state is from a Redis that no longer exists. */
    assert_int_equal(rt__redis_decide("e", 42, "f", 43), RT__REDIS_RESYNC);
    assert_int_equal(rt__redis_decide("", 0, "f", 1), RT__REDIS_RESYNC);
}

/* The JSON sent through Redis parses back into the same event (id, type, timestamp, channels, data). */
static void test_event_json(void **state)
{
    char err[256];
    const char *text = "{\"id\":\"evt-1\",\"type\":\"incident.created\",\"timestamp\":\"2026-11-28T04:00:00.123+02:00\","
                       "\"channels\":[\"incidents\",\"incidents.INC-1\"],\"data\":{\"sev\":\"SEV-1\",\"n\":[1,2.5,null]},\"seq\":99}";
    rt_event_t *ev, *back;
    assert_int_equal(rt_event_parse(text, strlen(text), 0, &ev, err, sizeof(err)), 0);
    size_t len;
    char *json = rt__redis_event_json(ev, &len);
    assert_non_null(json);
    assert_int_equal(len, strlen(json));
    assert_null(strstr(json, "\"seq\""));
    assert_int_equal(rt_event_parse(json, len, 0, &back, err, sizeof(err)), 0);
    assert_string_equal(back->id, ev->id);
    assert_string_equal(back->type, ev->type);
    assert_string_equal(back->timestamp, "2026-11-28T04:00:00.123+02:00");
    assert_int_equal(back->n_channels, 2);
    assert_string_equal(back->channels[1], "incidents.INC-1");
    assert_true(json_equal(back->data, ev->data));
    free(json);
    rt_event_unref(back);
    rt_event_unref(ev);
}

/* The scripts name the keys and arguments the C side passes, in that order. */
static void test_scripts(void **state)
{
    assert_non_null(strstr(rt__redis_publish_lua, "redis.call('INCR', KEYS[2])"));
    assert_non_null(strstr(rt__redis_publish_lua, "'XADD', KEYS[4], 'MAXLEN', '~', ARGV[6]"));
    assert_non_null(strstr(rt__redis_publish_lua, "redis.call('PUBLISH', ARGV[9], msg)"));
    assert_non_null(strstr(rt__redis_publish_lua, "for i = 10, #ARGV do"));
    /* The stream entry is written before the fan-out, so a gap in the fan-out is always in the stream. */
    assert_true(strstr(rt__redis_publish_lua, "'XADD'") < strstr(rt__redis_publish_lua, "'PUBLISH'"));
    assert_non_null(strstr(rt__redis_epoch_lua, "return ensure_epoch()"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url),        cmocka_unit_test(test_msg),     cmocka_unit_test(test_decide),
        cmocka_unit_test(test_event_json), cmocka_unit_test(test_scripts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
