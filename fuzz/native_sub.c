/*
 * libFuzzer target: arbitrary bytes as a native subscription, both as a query string (/ws and /events)
 * and as a JSON subscribe message. Parsing must succeed with an owned subscription or fail with a
 * stable error code and a message, and never leak.
 */
/* fuzz-sources: ALL */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/error.h"
#include "protocol/native_sub.h"

#define CHECK(c) ((c) ? (void)0 : abort())

static void check_result(int r, rt_native_sub_t *sub, const rt_native_error_t *err)
{
    if (r == 0) {
        for (size_t i = 0; i < sub->n_channels; i++)
            CHECK(sub->channels[i] != NULL);
        rt_native_sub_dispose(sub);
    } else {
        CHECK(r == RT_EINVAL || r == RT_E2BIG || r == RT_EPERM);
        CHECK(err->code != NULL && err->message[0] != '\0');
        CHECK(sub->channels == NULL && sub->filter == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *query = malloc(size + 1);
    memcpy(query, data, size);
    query[size] = '\0';
    rt_native_sub_t sub;
    rt_native_error_t err;
    int r = rt_native_sub_from_query(query, &sub, &err);
    check_result(r, &sub, &err);
    free(query);

    json_t *msg = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (msg != NULL && json_is_object(msg)) {
        r = rt_native_sub_from_json(msg, &sub, &err);
        check_result(r, &sub, &err);
    }
    json_decref(msg);
    return 0;
}
