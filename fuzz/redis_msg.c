/*
 * libFuzzer target: arbitrary bytes as what Redis sends the redis broker, through its parsers (src/broker/
 * redis_script.c): RESP replies read by hiredis's own reader, each checked as a publish script reply, as a fan-out
 * message and, for an array, as XRANGE stream entries; the messages found go, in the replica's order
 * (rt__redis_decide), into a real history with rt_history_append_at as the subscriber thread does. The same bytes
 * are also parsed as one raw message and as a redis_url.
 *
 * Input: one configuration byte, then the bytes. Configuration bits: 0 a small max_event_bytes (64 bytes of
 * message), 1 a small history (4 events), 2-3 how many channels the publish reply is checked against.
 *
 * Checks, besides ASan/UBSan/LSan: a parsed message has a non-empty epoch without a space, seq > 0, 1 to 64
 * offsets all > 0 and its JSON inside the input after the header line; it prints back (canonical decimal) to a
 * message that parses to the same fields; a stream entry that parses has the id's seq; an event applied to history
 * gets the message's seq, and history's newest seq never goes backwards except after a reset.
 */
/* fuzz-sources: src/broker/redis_script.c src/core/event.c src/core/event_id.c src/core/channel.c src/core/history.c src/util/buf.c src/util/bytes.c src/util/clock.c src/util/map.c src/util/mem.c src/util/histogram.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "realtime/error.h"
#include "realtime/history.h"
#include "broker/redis-private.h"
#include "util/buf.h"

#define CHECK(c) ((c) ? (void)0 : abort())

static rt_history_t *history;
static char epoch[RT__REDIS_EPOCH_MAX + 1];
static uint64_t applied;
static unsigned accepted;

static void on_accept(rt_event_t *ev, void *ctx)
{
    accepted++;
}

static void check_msg(const char *p, size_t len, const rt__redis_msg_t *m)
{
    size_t elen = strlen(m->epoch);
    CHECK(elen > 0 && elen <= RT__REDIS_EPOCH_MAX && strchr(m->epoch, ' ') == NULL && memcmp(p, m->epoch, elen) == 0);
    CHECK(m->seq > 0 && m->ms >= 0 && m->flags <= 0xffff);
    CHECK(m->n_offsets >= 1 && m->n_offsets <= RT_EVENT_MAX_CHANNELS);
    for (size_t i = 0; i < m->n_offsets; i++)
        CHECK(m->offsets[i] > 0);
    CHECK(m->json > p && m->json[-1] == '\n' && m->json + m->json_len == p + len && m->json_len > 0);
    CHECK(memchr(p, '\n', (size_t)(m->json - 1 - p)) == NULL);

    /* The canonical form of the same message parses to the same fields. */
    rt_buf_t b = {0};
    rt_buf_appendf(&b, "%s %llu %lld %u ", m->epoch, (unsigned long long)m->seq, (long long)m->ms, m->flags);
    for (size_t i = 0; i < m->n_offsets; i++)
        rt_buf_appendf(&b, "%s%llu", i != 0 ? "," : "", (unsigned long long)m->offsets[i]);
    rt_buf_append(&b, "\n", 1);
    rt_buf_append(&b, m->json, m->json_len);
    rt__redis_msg_t again;
    CHECK(rt__redis_msg_parse(b.base, b.len, &again) == 0);
    CHECK(strcmp(again.epoch, m->epoch) == 0 && again.seq == m->seq && again.ms == m->ms && again.flags == m->flags);
    CHECK(again.n_offsets == m->n_offsets && memcmp(again.offsets, m->offsets, m->n_offsets * sizeof(uint64_t)) == 0);
    CHECK(again.json_len == m->json_len && memcmp(again.json, m->json, m->json_len) == 0);
    rt_buf_free(&b);
}

/* What the subscriber thread does with a message: decide, then append it at its seq (or reset to its epoch). */
static void replicate(const rt__redis_msg_t *m)
{
    rt__redis_action_t act = rt__redis_decide(epoch, applied, m->epoch, m->seq);
    if (act == RT__REDIS_SKIP)
        return;
    if (act == RT__REDIS_RESYNC) {
        rt_history_reset(history, m->epoch);
        snprintf(epoch, sizeof(epoch), "%s", m->epoch);
        applied = 0;
        CHECK(rt_history_last_seq(history) == 0);
    }
    uint64_t before = rt_history_last_seq(history);
    rt_event_t *ev = NULL;
    char err[256];
    int r = rt_event_parse(m->json, m->json_len, SIZE_MAX, &ev, err, sizeof(err));
    if (r == 0 && ev->n_channels == m->n_offsets) {
        ev->flags = m->flags & RT_EVENT_RAW_DATA;
        unsigned n = accepted;
        r = rt_history_append_at(history, ev, m->seq, m->offsets, m->ms, on_accept, NULL);
        if (r == 0) {
            CHECK(accepted == n + 1 && ev->seq == m->seq && rt_history_last_seq(history) == m->seq);
            for (size_t i = 0; i < ev->n_channels; i++)
                CHECK(ev->offsets[i] == m->offsets[i]);
        } else {
            CHECK(accepted == n && rt_history_last_seq(history) == before);
        }
    }
    rt_event_unref(ev);
    applied = m->seq;
}

static void check_reply(const redisReply *rep, size_t max_msg, size_t n_channels)
{
    if (rt__redis_publish_reply_valid(rep, n_channels)) {
        CHECK(rep->type == REDIS_REPLY_ARRAY && rep->elements >= 3 && rep->element[1]->integer > 0);
        CHECK(rep->element[2]->integer != 0 || rep->elements == 3 + n_channels);
    }
    rt__redis_msg_t m;
    int r = rt__redis_fanout_message(rep, max_msg, &m);
    if (r == 0) {
        check_msg(rep->element[2]->str, rep->element[2]->len, &m);
        CHECK(rep->element[2]->len <= max_msg);
        replicate(&m);
    }
    if (rep->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < rep->elements; i++) {
        uint64_t seq = 0;
        r = rt__redis_stream_entry(rep->element[i], max_msg, &seq, &m);
        if (r == 0) {
            CHECK(m.seq == seq);
            replicate(&m);
        }
    }
}

static void *(*default_create_array)(const redisReadTask *, int);

static void *create_small_array(const redisReadTask *task, int elements)
{
    return elements <= 1024 ? default_create_array(task, elements) : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t cfg = data[0];
    data++, size--;
    size_t max_msg = cfg & 1 ? 64 : RT__REDIS_HEADER_MAX + 65536;
    size_t n_channels = (cfg >> 2) & 3;
    history = rt_history_new(&(rt_history_config_t){.size = cfg & 2 ? 4 : 100});
    snprintf(epoch, sizeof(epoch), "%s", rt_history_epoch(history));
    applied = 0;
    accepted = 0;

    redisReader *reader = redisReaderCreate();
    CHECK(reader != NULL);
    /* hiredis 0.14 allocates any array a reply announces ("*4000000000": 32 GB), which is not the code under test. */
    static redisReplyObjectFunctions fns;
    if (default_create_array == NULL) {
        fns = *reader->fn;
        default_create_array = fns.createArray;
        fns.createArray = create_small_array;
    }
    reader->fn = &fns;
    if (redisReaderFeed(reader, (const char *)data, size) == REDIS_OK) {
        void *rep;
        while (redisReaderGetReply(reader, &rep) == REDIS_OK && rep != NULL) {
            check_reply(rep, max_msg, n_channels);
            freeReplyObject(rep);
        }
    }
    redisReaderFree(reader);

    rt__redis_msg_t m;
    if (rt__redis_msg_parse((const char *)data, size, &m) == 0) {
        check_msg((const char *)data, size, &m);
        replicate(&m);
    }
    rt_history_free(history);

    char *url = malloc(size + 1);
    memcpy(url, data, size);
    url[size] = '\0';
    rt__redis_url_t u;
    char err[128];
    if (rt__redis_url_parse(url, &u, err, sizeof(err)) == 0) {
        CHECK((u.host[0] != '\0') != (u.path[0] != '\0'));
        CHECK(u.port >= 1 && u.port <= 65535 && u.db >= 0 && u.db <= 1000000);
        CHECK(u.path[0] == '\0' || u.path[0] == '/');
    } else {
        CHECK(err[0] != '\0');
    }
    free(url);
    return 0;
}
