/*
 * libFuzzer target: arbitrary bytes as a published event (rt_event_parse), with cross-checks that abort on
 * any disagreement: an accepted event renders JSON that parses back to the same id, type, timestamp,
 * channels and seq and is itself a valid event; every error message is JSON-encodable (it goes into
 * `{"error":{"message":…}}`); channel_index finds every channel; the form cache returns the first encoding.
 *
 * Input: the event text; its first byte also picks the size limit (small limits exercise RT_E2BIG).
 */
/* fuzz-sources: src/core/event.c src/core/event_id.c src/core/channel.c src/util/buf.c src/util/bytes.c src/util/clock.c src/util/mem.c src/util/histogram.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/error.h"
#include "realtime/event.h"

#define CHECK(c) ((c) ? (void)0 : abort())

static rt_bytes_t *encode(const rt_event_t *ev, size_t channel_index, void *ctx)
{
    return rt_bytes_new(ev->channels[channel_index], strlen(ev->channels[channel_index]));
}

static void check_rendered(const rt_event_t *ev)
{
    CHECK(strlen(ev->json) == ev->json_len);
    json_error_t jerr;
    json_t *back = json_loadb(ev->json, ev->json_len, 0, &jerr);
    CHECK(back != NULL);
    CHECK(strcmp(json_string_value(json_object_get(back, "id")), ev->id) == 0);
    CHECK(strcmp(json_string_value(json_object_get(back, "type")), ev->type) == 0);
    CHECK(strcmp(json_string_value(json_object_get(back, "timestamp")), ev->timestamp) == 0);
    CHECK((uint64_t)json_integer_value(json_object_get(back, "seq")) == ev->seq);
    json_t *chans = json_object_get(back, "channels");
    CHECK(json_array_size(chans) == ev->n_channels);
    for (size_t i = 0; i < ev->n_channels; i++)
        CHECK(strcmp(json_string_value(json_array_get(chans, i)), ev->channels[i]) == 0);
    CHECK(json_equal(json_object_get(back, "data"), ev->data));

    rt_event_t *again = NULL;
    char err[256];
    CHECK(rt_event_from_json(back, SIZE_MAX, &again, err, sizeof(err)) == 0);
    CHECK(again->id_len == ev->id_len && memcmp(again->id, ev->id, ev->id_len) == 0);
    rt_event_unref(again);
    json_decref(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t max_bytes = size > 0 && data[0] < 16 ? (size_t)data[0] * 16 : 0;
    rt_event_t *ev = (rt_event_t *)1;
    char err[256];
    int ret = rt_event_parse((const char *)data, size, max_bytes, &ev, err, sizeof(err));
    if (ret != 0) {
        CHECK(ret == RT_EINVAL || ret == RT_E2BIG);
        CHECK(ev == NULL);
        json_t *msg = json_string(err); /* NULL when err is not valid UTF-8 */
        CHECK(msg != NULL);
        json_decref(msg);
        return 0;
    }
    CHECK(ev->n_channels >= 1 && ev->n_channels <= RT_EVENT_MAX_CHANNELS);
    CHECK(ev->id_len >= 1 && ev->id_len <= RT_EVENT_ID_MAX && rt_event_type_valid(ev->type, strlen(ev->type)));
    uint64_t offsets[RT_EVENT_MAX_CHANNELS];
    for (size_t i = 0; i < ev->n_channels; i++) {
        offsets[i] = i + 1;
        CHECK(rt_event_channel_index(ev, ev->channels[i], strlen(ev->channels[i])) == (int)i);
    }
    rt_event_accept(ev, (uint64_t)size + 1, offsets);
    check_rendered(ev);
    rt_bytes_t *b = rt_event_form(ev, RT_FORM_CENTRIFUGE_WS, ev->n_channels - 1, encode, NULL);
    CHECK(b != NULL && rt_event_form(ev, RT_FORM_CENTRIFUGE_WS, ev->n_channels - 1, encode, NULL) == b);
    rt_event_unref(ev);
    return 0;
}
