/*
 * Shared by the fuzz targets that watch a /connection/uni_sse stream (uni_sse.c, centrifugo_api.c): checks the
 * bytes the stream carries after its 200 head. Each block is `data: <one JSON object on one line>\n\n`; the first
 * is the connect push ({"connect":{client,version,ping,session…}}) or a disconnect; a disconnect
 * ({"disconnect":{"code":3000..4999,"reason":…}}) is the last; the others are pings ({}) or pushes on a channel
 * ({"channel":…,"pub"|"join"|"leave"|"subscribe"|"unsubscribe":{…}}), whose publication offsets only grow per
 * channel. The caller includes <jansson.h> and defines CHECK.
 */
#ifndef FUZZ_SSE_STREAM_H
#define FUZZ_SSE_STREAM_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include "realtime/channel.h"

#define SSE_MAX_CHANNELS 160

typedef struct {
    size_t pos;  /* the next unread byte */
    size_t blocks;
    bool ended;  /* a disconnect was seen */
    size_t n_seen;
    struct {
        char channel[RT_CHANNEL_MAX + 1];
        json_int_t offset;
    } seen[SSE_MAX_CHANNELS];
} sse_stream_t;

static void sse_check_pub_offset(sse_stream_t *s, const char *channel, json_int_t offset)
{
    CHECK(strlen(channel) <= RT_CHANNEL_MAX && offset > 0);
    size_t i = 0;
    while (i < s->n_seen && strcmp(s->seen[i].channel, channel) != 0)
        i++;
    if (i == s->n_seen) {
        CHECK(s->n_seen < SSE_MAX_CHANNELS);
        strcpy(s->seen[s->n_seen++].channel, channel);
    } else {
        CHECK(offset > s->seen[i].offset);
    }
    s->seen[i].offset = offset;
}

static void sse_check_push(sse_stream_t *s, json_t *j)
{
    static const char *const kinds[] = {"pub", "join", "leave", "subscribe", "unsubscribe"};
    CHECK(json_is_object(j) && !s->ended);
    json_t *v;
    if (s->blocks == 0) {
        CHECK(json_object_size(j) == 1);
        if ((v = json_object_get(j, "connect")) != NULL) {
            CHECK(json_is_string(json_object_get(v, "client")) && json_is_string(json_object_get(v, "version")) &&
                  json_is_integer(json_object_get(v, "ping")) && json_is_string(json_object_get(v, "session")));
            json_t *subs = json_object_get(v, "subs");
            CHECK(subs == NULL || json_is_object(subs));
            const char *ch;
            json_t *res;
            json_object_foreach(subs, ch, res) {
                CHECK(json_is_object(res));
                size_t i;
                json_t *pub;
                json_array_foreach(json_object_get(res, "publications"), i, pub)
                    sse_check_pub_offset(s, ch, json_integer_value(json_object_get(pub, "offset")));
            }
            s->blocks++;
            return;
        }
    }
    s->blocks++;
    if (json_object_size(j) == 0)
        return; /* ping */
    if ((v = json_object_get(j, "disconnect")) != NULL) {
        json_int_t code = json_integer_value(json_object_get(v, "code"));
        CHECK(json_object_size(j) == 1 && code >= 3000 && code <= 4999 && json_is_string(json_object_get(v, "reason")));
        s->ended = true;
        return;
    }
    const char *channel = json_string_value(json_object_get(j, "channel"));
    CHECK(channel != NULL && json_object_size(j) == 2);
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if ((v = json_object_get(j, kinds[k])) == NULL)
            continue;
        CHECK(json_is_object(v));
        if (k == 0)
            sse_check_pub_offset(s, channel, json_integer_value(json_object_get(v, "offset")));
        return;
    }
    CHECK(0); /* no known push */
}

/* Checks the blocks in b[s->pos..len): all complete (the fake connection never writes part of one). */
static void sse_check_blocks(sse_stream_t *s, const char *b, size_t len, bool verbose)
{
    while (s->pos < len) {
        const char *p = b + s->pos, *end = memmem(p, len - s->pos, "\n\n", 2);
        CHECK(end != NULL && end - p >= 6 && memcmp(p, "data: ", 6) == 0);
        if (verbose)
            fprintf(stderr, "< %.*s\n", (int)(end - p), p);
        p += 6;
        CHECK(memchr(p, '\n', (size_t)(end - p)) == NULL && memchr(p, '\r', (size_t)(end - p)) == NULL);
        json_t *j = json_loadb(p, (size_t)(end - p), JSON_REJECT_DUPLICATES, NULL);
        sse_check_push(s, j);
        json_decref(j);
        s->pos = (size_t)(end + 2 - b);
    }
}

#endif
