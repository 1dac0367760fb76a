/* Events: validation with exact messages, rendering, ids, timestamps, the form cache and refcounts across threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "realtime/error.h"
#include "realtime/event.h"

static char err[256];

/* Parses text with the default size limit; returns the code, leaving the message in err. */
static int parse(const char *text, rt_event_t **ev)
{
    err[0] = '\0';
    return rt_event_parse(text, strlen(text), 0, ev, err, sizeof(err));
}

/* Asserts that text is rejected with RT_EINVAL and exactly this message. */
static void expect_invalid(const char *text, const char *message)
{
    rt_event_t *ev = (rt_event_t *)1;
    int ret = parse(text, &ev);
    if (ret != RT_EINVAL || strcmp(err, message) != 0)
        fail_msg("%s\n  got %d \"%s\"\n  want RT_EINVAL \"%s\"", text, ret, err, message);
    assert_null(ev);
}

static rt_event_t *expect_ok(const char *text)
{
    rt_event_t *ev = NULL;
    int ret = parse(text, &ev);
    if (ret != 0)
        fail_msg("%s rejected: %d %s", text, ret, err);
    assert_non_null(ev);
    return ev;
}

static void test_parse_full_event(void **state)
{
    rt_event_t *ev = expect_ok("{\"id\":\"evt-01JD3Q8Z4K\",\"type\":\"incident.created\",\"timestamp\":\"2026-11-28T04:00:00.123Z\","
                               "\"channels\":[\"incidents\",\"incidents.INC-123\"],"
                               "\"data\":{\"id\":\"INC-123\",\"severity\":\"SEV-1\",\"status\":\"open\"}}");
    assert_string_equal(ev->id, "evt-01JD3Q8Z4K");
    assert_int_equal(ev->id_len, 14);
    assert_string_equal(ev->type, "incident.created");
    assert_string_equal(ev->timestamp, "2026-11-28T04:00:00.123Z");
    assert_int_equal(ev->n_channels, 2);
    assert_string_equal(ev->channels[0], "incidents");
    assert_string_equal(ev->channels[1], "incidents.INC-123");
    assert_string_equal(json_string_value(json_object_get(ev->data, "severity")), "SEV-1");
    assert_int_equal(ev->seq, 0);
    assert_null(ev->json);
    assert_int_equal(ev->offsets[0], 0);
    assert_int_equal(ev->offsets[1], 0);
    assert_int_equal(rt_event_channel_index(ev, "incidents.INC-123", 17), 1);
    assert_int_equal(rt_event_channel_index(ev, "incidents.INC-123xyz", 17), 1);
    assert_int_equal(rt_event_channel_index(ev, "incidents", 9), 0);
    assert_int_equal(rt_event_channel_index(ev, "incident", 8), -1);
    assert_int_equal(rt_event_channel_index(ev, "incidents\0more", 14), -1);
    rt_event_unref(ev);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_defaults(void **state)
{
    char before[32], after[32];
    rt_format_timestamp(now_ms(), before);
    /* No id, timestamp or data; a publisher's seq and unknown members are ignored. */
    rt_event_t *ev = expect_ok("{\"type\":\"sla.breach\",\"channels\":[\"system\"],\"seq\":99,\"extra\":{\"x\":1}}");
    rt_format_timestamp(now_ms(), after);
    assert_int_equal(ev->id_len, RT_EVENT_ID_GEN_LEN);
    assert_int_equal(strlen(ev->id), RT_EVENT_ID_GEN_LEN);
    assert_memory_equal(ev->id, "evt-", 4);
    assert_int_equal(strlen(ev->timestamp), 24);
    assert_true(strcmp(before, ev->timestamp) <= 0 && strcmp(ev->timestamp, after) <= 0);
    assert_true(json_is_null(ev->data));
    assert_int_equal(ev->seq, 0);
    rt_event_accept(ev, 7, NULL);
    assert_int_equal(ev->seq, 7);
    assert_non_null(strstr(ev->json, "\"data\":null,\"seq\":7}"));
    rt_event_unref(ev);

    /* null id and timestamp mean absent too. */
    ev = expect_ok("{\"id\":null,\"timestamp\":null,\"type\":\"a.b\",\"channels\":[\"c\"]}");
    assert_int_equal(ev->id_len, RT_EVENT_ID_GEN_LEN);
    assert_int_equal(strlen(ev->timestamp), 24);
    rt_event_unref(ev);
}

static void test_id_rules(void **state)
{
    char text[512], id[200];
    expect_invalid("{\"id\":\"\",\"type\":\"a.b\",\"channels\":[\"c\"]}", "id: must be 1..128 bytes");
    memset(id, 'x', 129);
    id[129] = '\0';
    snprintf(text, sizeof(text), "{\"id\":\"%s\",\"type\":\"a.b\",\"channels\":[\"c\"]}", id);
    expect_invalid(text, "id: must be 1..128 bytes");
    id[128] = '\0';
    snprintf(text, sizeof(text), "{\"id\":\"%s\",\"type\":\"a.b\",\"channels\":[\"c\"]}", id);
    rt_event_t *ev = expect_ok(text);
    assert_int_equal(ev->id_len, 128);
    rt_event_unref(ev);
    /* 64 two-byte characters are 128 bytes: the limit counts bytes. */
    char *p = text + sprintf(text, "{\"id\":\"");
    for (int i = 0; i < 65; i++)
        p += sprintf(p, "\xc3\xa9");
    sprintf(p, "\",\"type\":\"a.b\",\"channels\":[\"c\"]}");
    expect_invalid(text, "id: must be 1..128 bytes");
    expect_invalid("{\"id\":5,\"type\":\"a.b\",\"channels\":[\"c\"]}", "id: must be a string");
    expect_invalid("{\"id\":\"a\\nb\",\"type\":\"a.b\",\"channels\":[\"c\"]}", "id: must not contain control characters");
    expect_invalid("{\"id\":\"a\\u007fb\",\"type\":\"a.b\",\"channels\":[\"c\"]}", "id: must not contain control characters");
    /* \u0000 is refused by the JSON parser itself. */
    ev = (rt_event_t *)1;
    assert_int_equal(parse("{\"id\":\"a\\u0000b\",\"type\":\"a.b\",\"channels\":[\"c\"]}", &ev), RT_EINVAL);
    assert_null(ev);
    assert_memory_equal(err, "invalid JSON: ", 14);
}

#define TYPE_MSG "type: must be domain.action in lower case (e.g. incident.created)"

static void test_type_rules(void **state)
{
    static const char *const bad[] = {"incident",  "Incident.created", "incident.", ".incident", "incident..created", "1nc.x",
                                      "a.B",       "a.b-c",            "a._b",      "a.1b",      "a b.c",             "",
                                      "incident.créé", "a.b.",         "."};
    static const char *const good[] = {"incident.created", "a.b", "a1_.b", "a.b.c", "system.notification", "x.y_z9"};
    char text[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "{\"type\":\"%s\",\"channels\":[\"c\"]}", bad[i]);
        expect_invalid(text, TYPE_MSG);
        assert_false(rt_event_type_valid(bad[i], strlen(bad[i])));
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), "{\"type\":\"%s\",\"channels\":[\"c\"]}", good[i]);
        rt_event_unref(expect_ok(text));
        assert_true(rt_event_type_valid(good[i], strlen(good[i])));
    }
    /* 64 bytes is the limit. */
    char type[80];
    memset(type, 'a', 65);
    type[1] = '.';
    type[64] = '\0';
    assert_true(rt_event_type_valid(type, 64));
    type[64] = 'a';
    type[65] = '\0';
    assert_false(rt_event_type_valid(type, 65));
    snprintf(text, sizeof(text), "{\"type\":\"%s\",\"channels\":[\"c\"]}", type);
    expect_invalid(text, TYPE_MSG);
    /* The length bounds the check. */
    assert_true(rt_event_type_valid("a.bC", 3));
    assert_false(rt_event_type_valid("a.b\0c", 5));
    expect_invalid("{\"type\":3,\"channels\":[\"c\"]}", TYPE_MSG);
    expect_invalid("{\"channels\":[\"c\"]}", "type: is required");
}

#define TS_MSG "timestamp: must be RFC 3339 (e.g. 2026-11-28T04:00:00.123Z)"

static void test_timestamp_rules(void **state)
{
    static const char *const good[] = {"2026-11-28T04:00:00.123Z",     "2026-11-28T04:00:00Z",
                                       "2026-11-28t04:00:00z",         "2026-11-28T04:00:00+05:30",
                                       "2026-11-28T04:00:00.123456+00:00", "2026-11-28T04:00:00.123456789-08:00",
                                       "2024-02-29T00:00:00Z",         "2000-02-29T23:59:59Z",
                                       "2016-12-31T23:59:60Z",         "1985-04-12T23:20:50.52Z"};
    static const char *const bad[] = {"2026-11-28",           "2026-13-01T00:00:00Z",       "2026-00-01T00:00:00Z",
                                      "2025-02-29T00:00:00Z", "1900-02-29T00:00:00Z",       "2026-04-31T00:00:00Z",
                                      "2026-11-28T24:00:00Z", "2026-11-28T04:60:00Z",       "2026-11-28T04:00:61Z",
                                      "2026-11-28T04:00:00",  "2026-11-28T04:00:00.Z",      "2026-11-28 04:00:00Z",
                                      "2026-11-28T04:00:00+0530", "2026-11-28T04:00:00+24:00", "2026-11-28T04:00:00Zx",
                                      "26-11-28T04:00:00Z",   "2026-11-28T04:00:00.1234567890123456789Z", "",
                                      "2026-1-28T04:00:00Z",  "2026-11-28T04:00:00.12a3Z"};
    char text[256];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), "{\"type\":\"a.b\",\"timestamp\":\"%s\",\"channels\":[\"c\"]}", good[i]);
        rt_event_t *ev = expect_ok(text);
        assert_string_equal(ev->timestamp, good[i]); /* kept as given */
        rt_event_unref(ev);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "{\"type\":\"a.b\",\"timestamp\":\"%s\",\"channels\":[\"c\"]}", bad[i]);
        expect_invalid(text, TS_MSG);
    }
    expect_invalid("{\"type\":\"a.b\",\"timestamp\":1764302400,\"channels\":[\"c\"]}", TS_MSG);
}

#define CH_MSG "channels: must be an array of 1..64 channel names"

static void test_channel_rules(void **state)
{
    expect_invalid("{\"type\":\"a.b\"}", "channels: is required");
    expect_invalid("{\"type\":\"a.b\",\"channels\":\"c\"}", CH_MSG);
    expect_invalid("{\"type\":\"a.b\",\"channels\":[]}", CH_MSG);
    expect_invalid("{\"type\":\"a.b\",\"channels\":[\"a\",\"b\",\"a..b\"]}", "channels[2]: invalid channel name \"a..b\"");
    expect_invalid("{\"type\":\"a.b\",\"channels\":[\"all\"]}", "channels[0]: \"all\" is not publishable");
    expect_invalid("{\"type\":\"a.b\",\"channels\":[\"x\",\"all\"]}", "channels[1]: \"all\" is not publishable");
    expect_invalid("{\"type\":\"a.b\",\"channels\":[\"x\",\"y\",\"x\"]}", "channels[2]: duplicate channel \"x\"");
    expect_invalid("{\"type\":\"a.b\",\"channels\":[\"x\",7]}", "channels[1]: must be a string");
    expect_invalid("{\"type\":\"a.b\",\"channels\":[\"incidents.*\"]}", "channels[0]: invalid channel name \"incidents.*\"");
    /* Non-ASCII and control bytes are masked in messages; long names are cut. */
    expect_invalid("{\"type\":\"a.b\",\"channels\":[\"caf\xc3\xa9\\t\"]}", "channels[0]: invalid channel name \"caf???\"");
    char text[4096], want[256];
    char *p = text + sprintf(text, "{\"type\":\"a.b\",\"channels\":[\"");
    memset(p, 'a', 300);
    sprintf(p + 300, "\"]}");
    sprintf(want, "channels[0]: invalid channel name \"%.64s...\"", p);
    expect_invalid(text, want);

    /* 64 channels pass, 65 do not. */
    p = text + sprintf(text, "{\"type\":\"a.b\",\"channels\":[");
    for (int i = 0; i < 64; i++)
        p += sprintf(p, "%s\"c%d\"", i ? "," : "", i);
    sprintf(p, "]}");
    rt_event_t *ev = expect_ok(text);
    assert_int_equal(ev->n_channels, 64);
    assert_string_equal(ev->channels[63], "c63");
    rt_event_unref(ev);
    sprintf(p, ",\"c64\"]}");
    expect_invalid(text, CH_MSG);
}

static void test_not_an_object_or_bad_json(void **state)
{
    expect_invalid("[1,2]", "event: must be a JSON object");
    rt_event_t *ev = (rt_event_t *)1;
    assert_int_equal(parse("{\"type\":", &ev), RT_EINVAL);
    assert_null(ev);
    assert_memory_equal(err, "invalid JSON: ", 14);
    assert_int_equal(parse("{\"type\":\"a.b\",\"channels\":[\"c\"]} x", &ev), RT_EINVAL);
    assert_memory_equal(err, "invalid JSON: ", 14);
    assert_int_equal(parse("", &ev), RT_EINVAL);
    /* The parser quotes the input near the error; messages stay printable ASCII (they end up in JSON). */
    assert_int_equal(parse("{\"id\":\"q\\\xd7\x8a\xa3\"}", &ev), RT_EINVAL);
    assert_memory_equal(err, "invalid JSON: ", 14);
    assert_non_null(strchr(err, '?'));
    for (const char *c = err; *c; c++)
        assert_true(*c >= 0x20 && *c < 0x7f);
    /* A NULL err buffer is allowed. */
    assert_int_equal(rt_event_parse("[]", 2, 0, &ev, NULL, 0), RT_EINVAL);
}

static void test_size_limit(void **state)
{
    const char *text = "{\"type\":\"a.b\",\"channels\":[\"c\"],\"data\":{\"k\":\"0123456789\"}}";
    size_t size = strlen(text); /* already compact */
    rt_event_t *ev = NULL;
    assert_int_equal(rt_event_parse(text, size, size, &ev, err, sizeof(err)), 0);
    rt_event_unref(ev);
    assert_int_equal(rt_event_parse(text, size, size - 1, &ev, err, sizeof(err)), RT_E2BIG);
    assert_null(ev);
    char want[64];
    snprintf(want, sizeof(want), "event: larger than %zu bytes", size - 1);
    assert_string_equal(err, want);
    /* Whitespace does not count: the compact JSON is measured. */
    const char *spaced = "{ \"type\" : \"a.b\" ,  \"channels\" : [ \"c\" ] , \"data\" : { \"k\" : \"0123456789\" } }";
    assert_int_equal(rt_event_parse(spaced, strlen(spaced), size, &ev, err, sizeof(err)), 0);
    rt_event_unref(ev);

    /* 0 means the default (65536). */
    size_t big = RT_EVENT_DEFAULT_MAX_BYTES;
    char *huge = malloc(big + 100);
    int n = sprintf(huge, "{\"type\":\"a.b\",\"channels\":[\"c\"],\"data\":\"");
    memset(huge + n, 'x', big);
    strcpy(huge + n + big, "\"}");
    assert_int_equal(rt_event_parse(huge, strlen(huge), 0, &ev, err, sizeof(err)), RT_E2BIG);
    assert_int_equal(rt_event_parse(huge, strlen(huge), SIZE_MAX, &ev, err, sizeof(err)), 0);
    assert_int_equal(json_string_length(ev->data), big);
    rt_event_unref(ev);
    free(huge);
}

static void test_from_json_shares_data(void **state)
{
    json_t *obj = json_pack("{s:s, s:[s], s:{s:i}}", "type", "a.b", "channels", "c", "data", "n", 1);
    json_t *data = json_object_get(obj, "data");
    rt_event_t *ev = NULL;
    assert_int_equal(rt_event_from_json(obj, 0, &ev, err, sizeof(err)), 0);
    assert_ptr_equal(ev->data, data);
    assert_int_equal(obj->refcount, 1);
    json_decref(obj); /* the event keeps data alive */
    assert_int_equal(json_integer_value(json_object_get(ev->data, "n")), 1);
    rt_event_unref(ev);

    json_t *scalar = json_integer(3);
    assert_int_equal(rt_event_from_json(scalar, 0, &ev, err, sizeof(err)), RT_EINVAL);
    assert_string_equal(err, "event: must be a JSON object");
    json_decref(scalar);
}

static void test_new(void **state)
{
    const char *chans[] = {"incidents", "system"};
    rt_event_t *ev = NULL;
    assert_int_equal(rt_event_new(NULL, "incident.updated", chans, 2, NULL, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev->id_len, RT_EVENT_ID_GEN_LEN);
    assert_true(json_is_null(ev->data));
    assert_string_equal(ev->channels[1], "system");
    rt_event_unref(ev);

    json_t *data = json_string("hello");
    assert_int_equal(rt_event_new("my-id", "a.b", chans, 1, data, &ev, err, sizeof(err)), 0);
    json_decref(data);
    assert_string_equal(ev->id, "my-id");
    assert_string_equal(json_string_value(ev->data), "hello");
    rt_event_unref(ev);

    const char *bad[] = {"ok", "a..b"};
    assert_int_equal(rt_event_new(NULL, "a.b", bad, 2, NULL, &ev, err, sizeof(err)), RT_EINVAL);
    assert_string_equal(err, "channels[1]: invalid channel name \"a..b\"");
    assert_null(ev);
    const char *with_null[] = {"ok", NULL};
    assert_int_equal(rt_event_new(NULL, "a.b", with_null, 2, NULL, &ev, err, sizeof(err)), RT_EINVAL);
    assert_string_equal(err, "channels[1]: must be a string");
    assert_int_equal(rt_event_new(NULL, "a.b", chans, 0, NULL, &ev, err, sizeof(err)), RT_EINVAL);
    assert_string_equal(err, CH_MSG);
    assert_int_equal(rt_event_new(NULL, NULL, chans, 1, NULL, &ev, err, sizeof(err)), RT_EINVAL);
    assert_string_equal(err, "type: is required");
    assert_int_equal(rt_event_new("", "a.b", chans, 1, NULL, &ev, err, sizeof(err)), RT_EINVAL);
    assert_string_equal(err, "id: must be 1..128 bytes");
    /* The message is cut to the buffer and stays NUL-terminated. */
    char small[8];
    assert_int_equal(rt_event_new("", "a.b", chans, 1, NULL, &ev, small, sizeof(small)), RT_EINVAL);
    assert_string_equal(small, "id: mus");
}

static void test_accept_renders_json(void **state)
{
    rt_event_t *ev = expect_ok("{\"id\":\"q\\\"uo\\\\te\\u00e9\",\"type\":\"incident.created\",\"timestamp\":\"2026-11-28T04:00:00.123Z\","
                               "\"channels\":[\"incidents\",\"incidents.INC-123\"],\"data\":{ \"a\" : [1, 2.5, true, null] }}");
    uint64_t offsets[2] = {5, 9};
    rt_event_accept(ev, 42, offsets);
    offsets[0] = 77; /* copied */
    assert_int_equal(ev->seq, 42);
    assert_int_equal(ev->offsets[0], 5);
    assert_int_equal(ev->offsets[1], 9);
    const char *want = "{\"id\":\"q\\\"uo\\\\te\xc3\xa9\",\"type\":\"incident.created\",\"timestamp\":\"2026-11-28T04:00:00.123Z\","
                       "\"channels\":[\"incidents\",\"incidents.INC-123\"],\"data\":{\"a\":[1,2.5,true,null]},\"seq\":42}";
    assert_string_equal(ev->json, want);
    assert_int_equal(ev->json_len, strlen(want));
    /* And it reads back as the same event. */
    json_t *back = json_loads(ev->json, 0, NULL);
    assert_non_null(back);
    assert_string_equal(json_string_value(json_object_get(back, "id")), "q\"uo\\te\xc3\xa9");
    assert_int_equal(json_integer_value(json_object_get(back, "seq")), 42);
    json_decref(back);
    rt_event_unref(ev);

    /* Scalar data, max seq. */
    ev = expect_ok("{\"id\":\"x\",\"type\":\"a.b\",\"timestamp\":\"2026-11-28T04:00:00Z\",\"channels\":[\"c\"],\"data\":\"s\"}");
    rt_event_accept(ev, UINT64_MAX, NULL);
    assert_string_equal(ev->json, "{\"id\":\"x\",\"type\":\"a.b\",\"timestamp\":\"2026-11-28T04:00:00Z\",\"channels\":[\"c\"],"
                                  "\"data\":\"s\",\"seq\":18446744073709551615}");
    assert_int_equal(ev->offsets[0], 0);
    rt_event_unref(ev);
}

static void test_format_timestamp(void **state)
{
    char buf[25];
    rt_format_timestamp(0, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    rt_format_timestamp(1795838400123, buf);
    assert_string_equal(buf, "2026-11-28T04:00:00.123Z");
    rt_format_timestamp(1709251199999, buf);
    assert_string_equal(buf, "2024-02-29T23:59:59.999Z");
    rt_format_timestamp(-5, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    rt_format_timestamp(INT64_MAX, buf);
    assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
}

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static void check_id_shape(const char *id)
{
    assert_int_equal(strlen(id), RT_EVENT_ID_GEN_LEN);
    assert_memory_equal(id, "evt-", 4);
    for (size_t i = 4; i < RT_EVENT_ID_GEN_LEN; i++)
        if (strchr(crockford, id[i]) == NULL)
            fail_msg("bad character in %s", id);
}

#define N_IDS 10000

static void test_generated_ids_sort(void **state)
{
    static char ids[N_IDS][RT_EVENT_ID_GEN_LEN + 1];
    for (int i = 0; i < N_IDS; i++)
        rt_event_generate_id(ids[i]);
    for (int i = 0; i < N_IDS; i++) {
        check_id_shape(ids[i]);
        if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
            fail_msg("ids out of order at %d: %s then %s", i, ids[i - 1], ids[i]);
    }
    /* The time part is the current millisecond. */
    int64_t ms = 0;
    char id[RT_EVENT_ID_GEN_LEN + 1];
    int64_t t0 = now_ms();
    rt_event_generate_id(id);
    for (int i = 4; i < 14; i++)
        ms = ms * 32 + (strchr(crockford, id[i]) - crockford);
    assert_true(ms >= t0 && ms <= now_ms() + 1);
}

#define ID_THREADS 4

static char thread_ids[ID_THREADS][N_IDS][RT_EVENT_ID_GEN_LEN + 1];

static void *gen_ids(void *arg)
{
    char(*ids)[RT_EVENT_ID_GEN_LEN + 1] = arg;
    for (int i = 0; i < N_IDS; i++)
        rt_event_generate_id(ids[i]);
    return NULL;
}

static int cmp_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_generated_ids_threads(void **state)
{
    pthread_t th[ID_THREADS];
    for (int t = 0; t < ID_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, gen_ids, thread_ids[t]), 0);
    for (int t = 0; t < ID_THREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < ID_THREADS; t++)
        for (int i = 1; i < N_IDS; i++)
            assert_true(strcmp(thread_ids[t][i - 1], thread_ids[t][i]) < 0);
    qsort(thread_ids, ID_THREADS * N_IDS, RT_EVENT_ID_GEN_LEN + 1, cmp_ids);
    char(*all)[RT_EVENT_ID_GEN_LEN + 1] = thread_ids[0];
    for (int i = 1; i < ID_THREADS * N_IDS; i++)
        if (strcmp(all[i - 1], all[i]) == 0)
            fail_msg("duplicate id %s", all[i]);
}

/* The form cache: threads race on the first use of one slot. */

#define FORM_THREADS 8

struct race {
    rt_event_t *ev;
    pthread_barrier_t barrier;
    atomic_int encodes;
    rt_bytes_t *got[FORM_THREADS];
};

static rt_bytes_t *encode(const rt_event_t *ev, size_t channel_index, void *ctx)
{
    struct race *r = ctx;
    int n = atomic_fetch_add(&r->encodes, 1);
    char text[64];
    int len = snprintf(text, sizeof(text), "%s#%zu#%d", ev->channels[channel_index], channel_index, n);
    return rt_bytes_new(text, (size_t)len);
}

struct racer {
    struct race *race;
    int index;
};

static void *race_form(void *arg)
{
    struct racer *me = arg;
    pthread_barrier_wait(&me->race->barrier);
    me->race->got[me->index] = rt_event_form(me->race->ev, RT_FORM_CENTRIFUGE_WS, 1, encode, me->race);
    return NULL;
}

static void test_form_cache_race(void **state)
{
    for (int round = 0; round < 50; round++) {
        struct race r = {.ev = expect_ok("{\"type\":\"a.b\",\"channels\":[\"c0\",\"c1\"]}")};
        atomic_init(&r.encodes, 0);
        rt_event_accept(r.ev, 1, NULL);
        pthread_barrier_init(&r.barrier, NULL, FORM_THREADS);
        pthread_t th[FORM_THREADS];
        struct racer racers[FORM_THREADS];
        for (int i = 0; i < FORM_THREADS; i++) {
            racers[i] = (struct racer){&r, i};
            assert_int_equal(pthread_create(&th[i], NULL, race_form, &racers[i]), 0);
        }
        for (int i = 0; i < FORM_THREADS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&r.barrier);
        int encodes = atomic_load(&r.encodes);
        assert_true(encodes >= 1 && encodes <= FORM_THREADS);
        for (int i = 1; i < FORM_THREADS; i++)
            assert_ptr_equal(r.got[i], r.got[0]);
        assert_int_equal(atomic_load(&r.got[0]->_refcnt), 1); /* only the cache holds it; losers' copies are gone */
        assert_memory_equal(r.got[0]->data, "c1#1#", 5);
        /* Cached from now on. */
        assert_ptr_equal(rt_event_form(r.ev, RT_FORM_CENTRIFUGE_WS, 1, encode, &r), r.got[0]);
        assert_int_equal(atomic_load(&r.encodes), encodes);
        rt_event_unref(r.ev); /* frees the cached bytes (ASan reports leaks otherwise) */
    }
}

static rt_bytes_t *encode_null(const rt_event_t *ev, size_t channel_index, void *ctx)
{
    ++*(int *)ctx;
    return NULL;
}

static void test_form_slots(void **state)
{
    struct race r = {.ev = expect_ok("{\"type\":\"a.b\",\"channels\":[\"c0\",\"c1\"]}")};
    atomic_init(&r.encodes, 0);
    rt_event_accept(r.ev, 1, NULL);
    rt_bytes_t *native = rt_event_form(r.ev, RT_FORM_NATIVE_WS, 0, encode, &r);
    rt_bytes_t *sse = rt_event_form(r.ev, RT_FORM_SSE, 0, encode, &r);
    rt_bytes_t *c0 = rt_event_form(r.ev, RT_FORM_CENTRIFUGE_SSE, 0, encode, &r);
    rt_bytes_t *c1 = rt_event_form(r.ev, RT_FORM_CENTRIFUGE_SSE, 1, encode, &r);
    assert_int_equal(atomic_load(&r.encodes), 4);
    assert_true(native != sse && c0 != c1 && sse != c0);
    assert_string_equal(c0->data, "c0#0#2");
    assert_string_equal(c1->data, "c1#1#3");
    assert_ptr_equal(rt_event_form(r.ev, RT_FORM_SSE, 0, encode, &r), sse);
    assert_int_equal(atomic_load(&r.encodes), 4);
    /* A failed encode is not cached. */
    int calls = 0;
    assert_null(rt_event_form(r.ev, RT_FORM_NATIVE_WS, 1, encode_null, &calls));
    assert_null(rt_event_form(r.ev, RT_FORM_NATIVE_WS, 1, encode_null, &calls));
    assert_int_equal(calls, 2);
    /* A reference taken on a form outlives the event. */
    rt_bytes_t *kept = rt_bytes_ref(sse);
    rt_event_unref(r.ev);
    assert_string_equal(kept->data, "c0#0#1");
    rt_bytes_unref(kept);
}

#define REF_THREADS 4
#define REF_LOOPS 100000

static atomic_int ref_mismatches;

/* No cmocka asserts off the main thread: they longjmp. */
static void *ref_unref(void *arg)
{
    rt_event_t *ev = arg;
    for (int i = 0; i < REF_LOOPS; i++) {
        rt_event_t *r = rt_event_ref(ev);
        if (r != ev)
            atomic_fetch_add(&ref_mismatches, 1);
        rt_event_unref(r);
    }
    rt_event_unref(ev); /* the reference the main thread took for us */
    return NULL;
}

static void test_refcount_threads(void **state)
{
    rt_event_t *ev = expect_ok("{\"type\":\"a.b\",\"channels\":[\"c\"],\"data\":[1,2,3]}");
    rt_event_accept(ev, 1, NULL);
    pthread_t th[REF_THREADS];
    for (int i = 0; i < REF_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, ref_unref, rt_event_ref(ev)), 0);
    for (int i = 0; i < REF_THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&ref_mismatches), 0);
    assert_int_equal(atomic_load(&ev->_refcnt), 1);
    rt_event_unref(ev);
    rt_event_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full_event),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_id_rules),
        cmocka_unit_test(test_type_rules),
        cmocka_unit_test(test_timestamp_rules),
        cmocka_unit_test(test_channel_rules),
        cmocka_unit_test(test_not_an_object_or_bad_json),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_from_json_shares_data),
        cmocka_unit_test(test_new),
        cmocka_unit_test(test_accept_renders_json),
        cmocka_unit_test(test_format_timestamp),
        cmocka_unit_test(test_generated_ids_sort),
        cmocka_unit_test(test_generated_ids_threads),
        cmocka_unit_test(test_form_cache_race),
        cmocka_unit_test(test_form_slots),
        cmocka_unit_test(test_refcount_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
