/* History: ring and TTL eviction, idempotent appends, resume by id and seq, Centrifuge streams, concurrency. */
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
#include "realtime/history.h"

struct fake_clock {
    int64_t now;
};

static int64_t fake_now(void *ctx)
{
    return ((struct fake_clock *)ctx)->now;
}

/* An event on the comma-separated channels, with the given id (NULL = generated). */
static rt_event_t *make(const char *id, const char *channels)
{
    char buf[256], err[128];
    const char *names[RT_EVENT_MAX_CHANNELS];
    size_t n = 0;
    snprintf(buf, sizeof(buf), "%s", channels);
    for (char *save, *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
        names[n++] = tok;
    rt_event_t *ev = NULL;
    if (rt_event_new(id, "test.event", names, n, NULL, &ev, err, sizeof(err)) != 0)
        fail_msg("rt_event_new: %s", err);
    return ev;
}

/* Appends a new event and drops the caller's reference; returns the (borrowed) event, kept alive by h. */
static rt_event_t *add(rt_history_t *h, const char *id, const char *channels)
{
    rt_event_t *ev = make(id, channels);
    assert_int_equal(rt_history_append(h, ev, NULL, NULL, NULL), 0);
    rt_event_unref(ev);
    return ev;
}

/* Asserts the list holds exactly the events with these seqs, in order, then frees it. */
static void expect_seqs(rt_event_list_t *list, size_t n, const uint64_t *seqs)
{
    if (list->count != n)
        fail_msg("got %zu events, want %zu", list->count, n);
    for (size_t i = 0; i < n; i++)
        if (list->events[i]->seq != seqs[i])
            fail_msg("event %zu has seq %llu, want %llu", i, (unsigned long long)list->events[i]->seq, (unsigned long long)seqs[i]);
    rt_event_list_free(list);
    assert_int_equal(list->count, 0);
    assert_null(list->events);
}

#define EXPECT_SEQS(list, ...)                                                                                                 \
    do {                                                                                                                       \
        const uint64_t want_[] = {__VA_ARGS__};                                                                                \
        expect_seqs(list, sizeof(want_) / sizeof(want_[0]), want_);                                                           \
    } while (0)

static void test_epoch_and_defaults(void **state)
{
    rt_history_t *h = rt_history_new(NULL), *h2 = rt_history_new(NULL);
    const char *e = rt_history_epoch(h);
    assert_int_equal(strlen(e), 8);
    assert_int_equal(strspn(e, "0123456789abcdef"), 8);
    assert_string_not_equal(e, rt_history_epoch(h2));
    assert_int_equal(rt_history_last_seq(h), 0);
    assert_int_equal(rt_history_count(h), 0);
    for (int i = 0; i < 10001; i++)
        add(h, NULL, "c");
    assert_int_equal(rt_history_count(h), 10000); /* default size */
    assert_int_equal(rt_history_last_seq(h), 10001);
    rt_history_free(h);
    rt_history_free(h2);
}

static void test_wrap_around(void **state)
{
    rt_history_config_t cfg = {.size = 5};
    rt_history_t *h = rt_history_new(&cfg);
    char id[16];
    for (int i = 1; i <= 12; i++) {
        snprintf(id, sizeof(id), "e%d", i);
        rt_event_t *ev = add(h, id, "c");
        assert_int_equal(ev->seq, i);
        assert_int_equal(ev->offsets[0], i);
    }
    assert_int_equal(rt_history_count(h), 5);
    assert_int_equal(rt_history_last_seq(h), 12);
    rt_event_list_t list;
    assert_int_equal(rt_history_after_seq(h, 7, NULL, NULL, &list), 0);
    EXPECT_SEQS(&list, 8, 9, 10, 11, 12);
    assert_int_equal(rt_history_after_seq(h, 10, NULL, NULL, &list), 0);
    EXPECT_SEQS(&list, 11, 12);
    assert_int_equal(rt_history_after_seq(h, 12, NULL, NULL, &list), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(rt_history_after_seq(h, 6, NULL, NULL, &list), RT_ERANGE);
    assert_int_equal(list.count, 0);
    assert_int_equal(rt_history_after_seq(h, 0, NULL, NULL, &list), RT_ERANGE);
    assert_int_equal(rt_history_after_seq(h, 13, NULL, NULL, &list), RT_ERANGE);
    assert_int_equal(rt_history_last(h, "c", 100, &list), 0);
    EXPECT_SEQS(&list, 8, 9, 10, 11, 12);
    assert_int_equal(rt_history_after_id(h, "e7", 0, NULL, NULL, &list), RT_ERANGE);
    assert_int_equal(rt_history_after_id(h, "e8", 0, NULL, NULL, &list), 0);
    EXPECT_SEQS(&list, 9, 10, 11, 12);
    rt_history_free(h);
}

static void test_ttl(void **state)
{
    struct fake_clock clk = {1000000};
    rt_history_config_t cfg = {.size = 100, .ttl_ms = 1000, .clock = fake_now, .clock_ctx = &clk};
    rt_history_t *h = rt_history_new(&cfg);
    add(h, "a", "c");
    add(h, "b", "c");
    clk.now += 500;
    add(h, "c", "c");
    clk.now += 500; /* a and b are exactly 1000 ms old: kept */
    assert_int_equal(rt_history_count(h), 3);
    clk.now += 1; /* now 1001 ms: gone, lazily, on the next query */
    rt_event_list_t list;
    assert_int_equal(rt_history_after_id(h, "a", 0, NULL, NULL, &list), RT_ERANGE);
    assert_int_equal(rt_history_count(h), 1);
    assert_int_equal(rt_history_after_seq(h, 2, NULL, NULL, &list), 0);
    EXPECT_SEQS(&list, 3);
    assert_int_equal(rt_history_after_seq(h, 1, NULL, NULL, &list), RT_ERANGE);
    clk.now += 500;
    assert_int_equal(rt_history_count(h), 0);
    assert_int_equal(rt_history_last(h, "c", 10, &list), 0);
    assert_int_equal(list.count, 0);
    /* With nothing left, resuming from the newest seq is still gap-free. */
    assert_int_equal(rt_history_after_seq(h, 3, NULL, NULL, &list), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(rt_history_after_seq(h, 2, NULL, NULL, &list), RT_ERANGE);
    /* An expired id may be published again. */
    rt_event_t *ev = add(h, "a", "c");
    assert_int_equal(ev->seq, 4);
    /* A clock going backwards evicts nothing. */
    clk.now -= 100000;
    assert_int_equal(rt_history_count(h), 1);
    rt_history_free(h);
}

struct accepted {
    int calls;
    rt_event_t *last;
};

static void on_accept(rt_event_t *ev, void *ctx)
{
    struct accepted *a = ctx;
    a->calls++;
    a->last = ev;
    assert_non_null(ev->json); /* already accepted */
}

static void test_idempotent_append(void **state)
{
    rt_history_config_t cfg = {.size = 3};
    rt_history_t *h = rt_history_new(&cfg);
    struct accepted acc = {0};
    rt_event_t *first = make("dup", "c");
    assert_int_equal(rt_history_append(h, first, NULL, on_accept, &acc), 0);
    assert_int_equal(acc.calls, 1);
    assert_ptr_equal(acc.last, first);
    assert_int_equal(first->seq, 1);
    assert_non_null(strstr(first->json, "\"seq\":1}"));

    rt_event_t *again = make("dup", "c,d"), *existing = NULL;
    assert_int_equal(rt_history_append(h, again, &existing, on_accept, &acc), RT_EEXIST);
    assert_ptr_equal(existing, first);
    assert_int_equal(existing->seq, 1);
    assert_int_equal(acc.calls, 1);
    assert_int_equal(again->seq, 0); /* not accepted */
    assert_null(again->json);
    assert_int_equal(rt_history_count(h), 1);
    assert_int_equal(rt_history_last_seq(h), 1);
    rt_event_unref(existing);
    /* existing may be NULL. */
    assert_int_equal(rt_history_append(h, again, NULL, NULL, NULL), RT_EEXIST);

    /* Once evicted, the id is free again. */
    add(h, NULL, "c");
    add(h, NULL, "c");
    add(h, NULL, "c");
    assert_int_equal(rt_history_append(h, again, NULL, on_accept, &acc), 0);
    assert_int_equal(again->seq, 5);
    assert_int_equal(acc.calls, 2);
    rt_event_unref(again);
    rt_event_unref(first);
    rt_history_free(h);
}

static bool on_channel(const rt_event_t *ev, void *ctx)
{
    return rt_event_channel_index(ev, ctx, strlen(ctx)) >= 0;
}

static void test_after_id(void **state)
{
    rt_history_config_t cfg = {.size = 4};
    rt_history_t *h = rt_history_new(&cfg);
    add(h, "e1", "a");
    add(h, "e2", "b");
    add(h, "e3", "a,b");
    add(h, "e4", "a");
    rt_event_list_t list;
    assert_int_equal(rt_history_after_id(h, "e1", 0, NULL, NULL, &list), 0);
    EXPECT_SEQS(&list, 2, 3, 4);
    assert_int_equal(rt_history_after_id(h, "e1", 0, on_channel, "b", &list), 0);
    EXPECT_SEQS(&list, 2, 3);
    assert_int_equal(rt_history_after_id(h, "e1", 3, NULL, NULL, &list), 0);
    EXPECT_SEQS(&list, 2, 3);
    assert_int_equal(rt_history_after_id(h, "e4", 0, NULL, NULL, &list), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(rt_history_after_id(h, "nope", 0, NULL, NULL, &list), RT_ERANGE);
    assert_int_equal(list.count, 0);
    assert_int_equal(rt_history_after_id(h, "", 0, NULL, NULL, &list), RT_ERANGE);
    assert_int_equal(rt_history_after_id(h, NULL, 0, NULL, NULL, &list), RT_ERANGE);
    add(h, "e5", "b"); /* evicts e1 */
    assert_int_equal(rt_history_after_id(h, "e1", 0, NULL, NULL, &list), RT_ERANGE);
    assert_int_equal(rt_history_after_id(h, "e2", 0, NULL, NULL, &list), 0);
    EXPECT_SEQS(&list, 3, 4, 5);
    /* Results hold their own references: they outlive the history. */
    assert_int_equal(rt_history_after_id(h, "e3", 0, NULL, NULL, &list), 0);
    rt_history_free(h);
    assert_string_equal(list.events[0]->id, "e4");
    EXPECT_SEQS(&list, 4, 5);
}

/* A predicate that appends to the history it is filtering, from another thread, and says whether that append went
 * through within a second: it cannot while the resume holds the history's lock. */
struct append_probe {
    rt_history_t *h;
    pthread_t thread;
    int calls, appended_while_filtering;
};

static void *append_other(void *arg)
{
    add(((struct append_probe *)arg)->h, NULL, "other");
    return NULL;
}

static bool probe_pred(const rt_event_t *ev, void *ctx)
{
    struct append_probe *p = ctx;
    if (p->calls++ == 0) {
        assert_int_equal(pthread_create(&p->thread, NULL, append_other, p), 0);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        p->appended_while_filtering = pthread_timedjoin_np(p->thread, NULL, &until) == 0;
    }
    return true;
}

/* After the resume: the append of a probe that timed out goes through once the lock is free. */
static void finish_probe(struct append_probe *p)
{
    if (!p->appended_while_filtering)
        pthread_join(p->thread, NULL);
}

/* A resume's filtering (patterns and filters over every event in range) runs outside the history lock: a
 * publish meanwhile is not held up by it. */
static void test_replay_filters_outside_the_lock(void **state)
{
    rt_history_config_t cfg = {.size = 16};
    rt_history_t *h = rt_history_new(&cfg);
    add(h, "r1", "a");
    add(h, "r2", "a");
    add(h, "r3", "a");
    struct append_probe p = {.h = h};
    rt_event_list_t list;
    assert_int_equal(rt_history_after_id(h, "r1", 0, probe_pred, &p, &list), 0);
    finish_probe(&p);
    assert_true(p.appended_while_filtering);
    EXPECT_SEQS(&list, 2, 3); /* what was there when the resume began */
    assert_int_equal(rt_history_count(h), 4);
    p = (struct append_probe){.h = h};
    assert_int_equal(rt_history_after_seq(h, 1, probe_pred, &p, &list), 0);
    finish_probe(&p);
    assert_true(p.appended_while_filtering);
    EXPECT_SEQS(&list, 2, 3, 4);
    rt_history_free(h);
}

static void expect_pos(rt_history_t *h, const char *channel, uint64_t offset, const char *epoch)
{
    rt_stream_pos_t pos;
    rt_history_stream_top(h, channel, &pos);
    assert_int_equal(pos.offset, offset);
    assert_string_equal(pos.epoch, epoch);
}

static void test_channel_offsets(void **state)
{
    rt_history_t *h = rt_history_new(NULL);
    const char *epoch = rt_history_epoch(h);
    rt_event_t *e1 = add(h, NULL, "a"), *e2 = add(h, NULL, "a,b"), *e3 = add(h, NULL, "b"), *e4 = add(h, NULL, "c,b,a");
    assert_int_equal(e1->offsets[0], 1);
    assert_int_equal(e2->offsets[0], 2);
    assert_int_equal(e2->offsets[1], 1);
    assert_int_equal(e3->offsets[0], 2);
    assert_int_equal(e4->offsets[0], 1);
    assert_int_equal(e4->offsets[1], 3);
    assert_int_equal(e4->offsets[2], 3);
    assert_int_equal(e4->seq, 4);
    expect_pos(h, "a", 3, epoch);
    expect_pos(h, "b", 3, epoch);
    expect_pos(h, "c", 1, epoch);
    expect_pos(h, "never", 0, epoch);
    rt_history_free(h);
}

static rt_stream_pos_t pos_of(uint64_t offset, const char *epoch)
{
    rt_stream_pos_t pos = {.offset = offset};
    snprintf(pos.epoch, sizeof(pos.epoch), "%s", epoch);
    return pos;
}

static void test_stream_since(void **state)
{
    rt_history_config_t cfg = {.size = 4};
    rt_history_t *h = rt_history_new(&cfg);
    const char *epoch = rt_history_epoch(h);
    for (int i = 0; i < 6; i++)
        add(h, NULL, i == 2 ? "a,x" : "a"); /* seqs 1..6, offsets on a 1..6; 3..6 kept */
    rt_event_list_t list;
    rt_stream_pos_t pos = pos_of(3, epoch);
    assert_int_equal(rt_history_stream_since(h, "a", &pos, 0, &list), 0);
    EXPECT_SEQS(&list, 4, 5, 6);
    assert_int_equal(rt_history_stream_since(h, "a", &pos, 2, &list), 0);
    EXPECT_SEQS(&list, 4, 5);
    pos = pos_of(2, epoch); /* 3 is the oldest kept: still gap-free */
    assert_int_equal(rt_history_stream_since(h, "a", &pos, 0, &list), 0);
    assert_int_equal(list.events[0]->offsets[0], 3);
    EXPECT_SEQS(&list, 3, 4, 5, 6);
    pos = pos_of(1, epoch); /* 2 was evicted */
    assert_int_equal(rt_history_stream_since(h, "a", &pos, 0, &list), RT_ERANGE);
    assert_int_equal(list.count, 0);
    pos = pos_of(0, epoch);
    assert_int_equal(rt_history_stream_since(h, "a", &pos, 0, &list), RT_ERANGE);
    pos = pos_of(6, epoch);
    assert_int_equal(rt_history_stream_since(h, "a", &pos, 0, &list), 0);
    assert_int_equal(list.count, 0);
    pos = pos_of(5, "0000000z");
    assert_int_equal(rt_history_stream_since(h, "a", &pos, 0, &list), RT_ESTALE);
    assert_int_equal(list.count, 0);
    pos = pos_of(5, "_");
    assert_int_equal(rt_history_stream_since(h, "a", &pos, 0, &list), RT_ESTALE);
    pos = pos_of(7, epoch); /* beyond the top */
    assert_int_equal(rt_history_stream_since(h, "a", &pos, 0, &list), RT_ESTALE);
    pos = pos_of(5, ""); /* empty epoch: any */
    assert_int_equal(rt_history_stream_since(h, "a", &pos, 0, &list), 0);
    EXPECT_SEQS(&list, 6);
    /* x: offset 1 is in history (seq 3) */
    pos = pos_of(0, epoch);
    assert_int_equal(rt_history_stream_since(h, "x", &pos, 0, &list), 0);
    EXPECT_SEQS(&list, 3);
    /* A channel without events: position 0 in its epoch is fine, anything else is stale. */
    assert_int_equal(rt_history_stream_since(h, "quiet", &pos, 0, &list), 0);
    assert_int_equal(list.count, 0);
    pos = pos_of(1, epoch);
    assert_int_equal(rt_history_stream_since(h, "quiet", &pos, 0, &list), RT_ESTALE);
    rt_history_free(h);
}

static void test_epoch_renewal(void **state)
{
    rt_history_config_t cfg = {.size = 3};
    rt_history_t *h = rt_history_new(&cfg);
    const char *epoch = rt_history_epoch(h);
    add(h, NULL, "a");
    add(h, NULL, "a");
    expect_pos(h, "a", 2, epoch);
    /* A subscriber to a quiet channel keeps its position when the first event arrives. */
    rt_stream_pos_t quiet;
    rt_history_stream_top(h, "b", &quiet);
    add(h, NULL, "b");
    rt_event_list_t list;
    assert_int_equal(rt_history_stream_since(h, "b", &quiet, 0, &list), 0);
    EXPECT_SEQS(&list, 3);
    /* Evict all of a's events: its meta goes, and its next stream has a new epoch. */
    add(h, NULL, "b");
    add(h, NULL, "b");
    rt_stream_pos_t gone;
    rt_history_stream_top(h, "a", &gone);
    assert_int_equal(gone.offset, 0);
    assert_string_not_equal(gone.epoch, epoch);
    assert_memory_equal(gone.epoch, epoch, 8);
    rt_stream_pos_t old = pos_of(2, epoch);
    assert_int_equal(rt_history_stream_since(h, "a", &old, 0, &list), RT_ESTALE);
    rt_event_t *ev = add(h, NULL, "a");
    assert_int_equal(ev->offsets[0], 1); /* a new stream */
    expect_pos(h, "a", 1, gone.epoch);   /* the epoch announced while it was empty */
    assert_int_equal(rt_history_stream_since(h, "a", &gone, 0, &list), 0);
    EXPECT_SEQS(&list, 6);
    assert_int_equal(rt_history_stream_since(h, "a", &old, 0, &list), RT_ESTALE);
    /* b never lost its events: same epoch as before. */
    expect_pos(h, "b", 3, epoch);

    /* Size 1: a channel that names every event never loses its meta (offsets are taken before eviction). */
    rt_history_config_t one = {.size = 1};
    rt_history_t *h1 = rt_history_new(&one);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(add(h1, NULL, "s")->offsets[0], i);
    expect_pos(h1, "s", 3, rt_history_epoch(h1));
    rt_history_free(h1);
    rt_history_free(h);
}

static void test_last(void **state)
{
    rt_history_t *h = rt_history_new(NULL);
    add(h, NULL, "a");
    add(h, NULL, "b");
    add(h, NULL, "a,b");
    add(h, NULL, "a");
    add(h, NULL, "b");
    add(h, NULL, "a");
    rt_event_list_t list;
    assert_int_equal(rt_history_last(h, "a", 3, &list), 0);
    EXPECT_SEQS(&list, 3, 4, 6);
    assert_int_equal(rt_history_last(h, "a", 100, &list), 0);
    EXPECT_SEQS(&list, 1, 3, 4, 6);
    assert_int_equal(rt_history_last(h, "b", 1, &list), 0);
    EXPECT_SEQS(&list, 5);
    assert_int_equal(rt_history_last(h, "a", 0, &list), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(rt_history_last(h, "unknown", 10, &list), 0);
    assert_int_equal(list.count, 0);
    rt_history_free(h);
}

static void test_stream_read(void **state)
{
    rt_history_t *h = rt_history_new(NULL);
    for (int i = 0; i < 5; i++)
        add(h, NULL, i % 2 ? "a" : "a,b"); /* a: seqs 1..5; b: 1, 3, 5 */
    rt_event_list_t list;
    rt_stream_pos_t pos;
    assert_int_equal(rt_history_stream_read(h, "a", 2, false, &list, &pos), 0);
    assert_int_equal(pos.offset, 5);
    assert_string_equal(pos.epoch, rt_history_epoch(h));
    EXPECT_SEQS(&list, 1, 2);
    assert_int_equal(rt_history_stream_read(h, "a", 2, true, &list, &pos), 0);
    EXPECT_SEQS(&list, 5, 4);
    assert_int_equal(rt_history_stream_read(h, "b", SIZE_MAX, true, &list, NULL), 0);
    EXPECT_SEQS(&list, 5, 3, 1);
    assert_int_equal(rt_history_stream_read(h, "b", SIZE_MAX, false, &list, &pos), 0);
    assert_int_equal(pos.offset, 3);
    EXPECT_SEQS(&list, 1, 3, 5);
    assert_int_equal(rt_history_stream_read(h, "a", 0, false, &list, &pos), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(pos.offset, 5);
    assert_int_equal(rt_history_stream_read(h, "none", 10, false, &list, &pos), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(pos.offset, 0);
    rt_history_free(h);
}

static void test_stream_remove(void **state)
{
    rt_history_config_t cfg = {.size = 4};
    rt_history_t *h = rt_history_new(&cfg);
    const char *epoch = rt_history_epoch(h);
    add(h, "e1", "a,b");
    add(h, "e2", "a");
    add(h, "e3", "b,a");
    rt_history_stream_remove(h, "a");
    rt_history_stream_remove(h, "never-seen"); /* no-op */
    rt_event_list_t list;
    assert_int_equal(rt_history_last(h, "a", 10, &list), 0);
    assert_int_equal(list.count, 0);
    rt_stream_pos_t top;
    rt_history_stream_top(h, "a", &top);
    assert_int_equal(top.offset, 0);
    assert_string_not_equal(top.epoch, epoch);
    rt_stream_pos_t old = pos_of(3, epoch);
    assert_int_equal(rt_history_stream_since(h, "a", &old, 0, &list), RT_ESTALE);
    /* Other channels and resume by id are untouched. */
    assert_int_equal(rt_history_last(h, "b", 10, &list), 0);
    EXPECT_SEQS(&list, 1, 3);
    expect_pos(h, "b", 2, epoch);
    assert_int_equal(rt_history_count(h), 3);
    assert_int_equal(rt_history_after_id(h, "e1", 0, NULL, NULL, &list), 0);
    EXPECT_SEQS(&list, 2, 3);
    /* The next event on a starts a new stream; evicting the removed ones later leaves it alone. */
    assert_int_equal(add(h, "e4", "a")->offsets[0], 1);
    expect_pos(h, "a", 1, top.epoch);
    add(h, "e5", "a"); /* evicts e1 */
    add(h, "e6", "c"); /* evicts e2 */
    add(h, "e7", "c"); /* evicts e3 */
    expect_pos(h, "a", 2, top.epoch);
    assert_int_equal(rt_history_stream_since(h, "a", &top, 0, &list), 0);
    EXPECT_SEQS(&list, 4, 5);
    assert_int_equal(rt_history_last(h, "b", 10, &list), 0);
    assert_int_equal(list.count, 0);
    rt_history_free(h);
}

#define APPEND_THREADS 4
#define APPENDS 5000

struct order {
    uint64_t seqs[APPEND_THREADS * APPENDS];
    size_t n;
};

static void record(rt_event_t *ev, void *ctx)
{
    struct order *o = ctx;
    o->seqs[o->n++] = ev->seq; /* under the history lock */
}

struct appender {
    rt_history_t *h;
    struct order *order;
    uint64_t seqs[APPENDS];
    int failures;
};

static void *append_many(void *arg)
{
    struct appender *a = arg;
    for (int i = 0; i < APPENDS; i++) {
        const char *chans[] = {"shared", i % 2 ? "odd" : "even"};
        rt_event_t *ev = NULL;
        if (rt_event_new(NULL, "load.test", chans, 2, NULL, &ev, NULL, 0) != 0 ||
            rt_history_append(a->h, ev, NULL, record, a->order) != 0)
            a->failures++;
        a->seqs[i] = ev != NULL ? ev->seq : 0;
        rt_event_unref(ev);
    }
    return NULL;
}

static void test_concurrent_appends(void **state)
{
    rt_history_config_t cfg = {.size = 1000};
    rt_history_t *h = rt_history_new(&cfg);
    static struct order order;
    static struct appender ap[APPEND_THREADS];
    pthread_t th[APPEND_THREADS];
    for (int t = 0; t < APPEND_THREADS; t++) {
        ap[t] = (struct appender){.h = h, .order = &order};
        assert_int_equal(pthread_create(&th[t], NULL, append_many, &ap[t]), 0);
    }
    for (int t = 0; t < APPEND_THREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < APPEND_THREADS; t++) {
        assert_int_equal(ap[t].failures, 0);
        for (int i = 1; i < APPENDS; i++)
            assert_true(ap[t].seqs[i] > ap[t].seqs[i - 1]);
    }
    /* on_accept saw every seq exactly once, in order. */
    assert_int_equal(order.n, APPEND_THREADS * APPENDS);
    for (size_t i = 0; i < order.n; i++)
        assert_int_equal(order.seqs[i], i + 1);
    assert_int_equal(rt_history_last_seq(h), APPEND_THREADS * APPENDS);
    assert_int_equal(rt_history_count(h), 1000);
    /* The shared channel's offsets equal the seqs; its stream is contiguous. */
    rt_stream_pos_t pos;
    rt_history_stream_top(h, "shared", &pos);
    assert_int_equal(pos.offset, APPEND_THREADS * APPENDS);
    rt_event_list_t list;
    pos.offset -= 1000;
    assert_int_equal(rt_history_stream_since(h, "shared", &pos, 0, &list), 0);
    assert_int_equal(list.count, 1000);
    for (size_t i = 0; i < list.count; i++)
        assert_int_equal(list.events[i]->offsets[0], list.events[i]->seq);
    rt_event_list_free(&list);
    rt_history_free(h);
}

/* Replica appends (rt_history_append_at): the sequencer's seq and offsets are kept; a seq gap drops what is held. */
static int seen_seqs[16], n_seen;

static void note_seq(rt_event_t *ev, void *ctx)
{
    seen_seqs[n_seen++] = (int)ev->seq;
}

static void append_at_ok(rt_history_t *h, const char *id, const char *channels, uint64_t seq, const uint64_t *offsets,
                         int64_t at)
{
    rt_event_t *ev = make(id, channels);
    assert_int_equal(rt_history_append_at(h, ev, seq, offsets, at, note_seq, NULL), 0);
    assert_int_equal(ev->seq, seq);
    rt_event_unref(ev);
}

static void test_append_at(void **state)
{
    struct fake_clock clk = {1000000};
    rt_history_config_t cfg = {.size = 10, .ttl_ms = 1000, .clock = fake_now, .clock_ctx = &clk};
    rt_history_t *h = rt_history_new(&cfg);
    n_seen = 0;
    /* A replica starts wherever the stream is: seq 41, channel offsets 7 and 3. */
    append_at_ok(h, "a", "x,y", 41, (const uint64_t[]){7, 3}, 0);
    append_at_ok(h, "b", "x", 42, (const uint64_t[]){8}, 0);
    assert_int_equal(rt_history_last_seq(h), 42);
    assert_int_equal(n_seen, 2);
    assert_int_equal(seen_seqs[0], 41);
    rt_event_list_t list;
    assert_int_equal(rt_history_after_id(h, "a", 0, NULL, NULL, &list), 0);
    EXPECT_SEQS(&list, 42);
    rt_stream_pos_t pos;
    rt_history_stream_top(h, "x", &pos);
    assert_int_equal(pos.offset, 8);
    char epoch_x[sizeof(pos.epoch)];
    strcpy(epoch_x, pos.epoch);
    pos.offset = 6;
    assert_int_equal(rt_history_stream_since(h, "x", &pos, 0, &list), 0);
    EXPECT_SEQS(&list, 41, 42);
    pos.offset = 5; /* offset 6 was never held: a gap */
    assert_int_equal(rt_history_stream_since(h, "x", &pos, 0, &list), RT_ERANGE);
    rt_event_t *got = rt_history_get(h, "b", 1);
    assert_non_null(got);
    assert_int_equal(got->seq, 42);
    rt_event_unref(got);
    assert_null(rt_history_get(h, "zz", 2));

    /* Old or repeated seqs are refused, and so is an offset of 0. */
    rt_event_t *ev = make("c", "x");
    assert_int_equal(rt_history_append_at(h, ev, 42, (const uint64_t[]){9}, 0, note_seq, NULL), RT_ERANGE);
    assert_int_equal(rt_history_append_at(h, ev, 43, (const uint64_t[]){0}, 0, note_seq, NULL), RT_EINVAL);
    rt_event_unref(ev);
    assert_int_equal(n_seen, 2);

    /* A channel offset that skips restarts that channel's stream under a new epoch; y is untouched. */
    append_at_ok(h, "c", "x", 43, (const uint64_t[]){20}, 0);
    rt_history_stream_top(h, "x", &pos);
    assert_int_equal(pos.offset, 20);
    assert_string_not_equal(pos.epoch, epoch_x);
    assert_int_equal(rt_history_last(h, "x", 10, &list), 0);
    EXPECT_SEQS(&list, 43);
    assert_int_equal(rt_history_last(h, "y", 10, &list), 0);
    EXPECT_SEQS(&list, 41);

    /* A seq gap drops everything held: resuming from before it is refused, never silently short. */
    append_at_ok(h, "d", "y", 50, (const uint64_t[]){9}, 0);
    assert_int_equal(rt_history_count(h), 1);
    assert_int_equal(rt_history_after_id(h, "c", 0, NULL, NULL, &list), RT_ERANGE);
    assert_int_equal(rt_history_after_seq(h, 43, NULL, NULL, &list), RT_ERANGE);
    assert_int_equal(rt_history_after_seq(h, 49, NULL, NULL, &list), 0);
    EXPECT_SEQS(&list, 50);

    /* at_ms is the event's time for the TTL: an event stamped 900 ms ago expires 100 ms later. */
    append_at_ok(h, "e", "y", 60, (const uint64_t[]){10}, clk.now - 900);
    clk.now += 100;
    assert_int_equal(rt_history_count(h), 1);
    clk.now += 1;
    assert_null(rt_history_get(h, "e", 1));
    assert_int_equal(rt_history_count(h), 0);
    rt_history_free(h);
}

static void test_reset(void **state)
{
    rt_history_t *h = rt_history_new(NULL);
    add(h, "a", "x");
    add(h, "b", "x");
    rt_stream_pos_t pos;
    rt_history_stream_top(h, "x", &pos);
    assert_int_equal(pos.offset, 2);
    rt_history_reset(h, "feedbeef-and-more");
    assert_string_equal(rt_history_epoch(h), "feedbeef");
    assert_int_equal(rt_history_count(h), 0);
    assert_int_equal(rt_history_last_seq(h), 0);
    assert_null(rt_history_get(h, "a", 1));
    rt_stream_pos_t now;
    rt_history_stream_top(h, "x", &now);
    assert_int_equal(now.offset, 0);
    assert_string_equal(now.epoch, "feedbeef");
    /* A position from before the reset is stale, not a gap-free resume. */
    rt_event_list_t list;
    assert_int_equal(rt_history_stream_since(h, "x", &pos, 0, &list), RT_ESTALE);
    rt_event_t *ev = add(h, "a", "x");
    assert_int_equal(ev->seq, 1);
    rt_history_reset(h, NULL);
    assert_string_not_equal(rt_history_epoch(h), "feedbeef");
    assert_int_equal(strlen(rt_history_epoch(h)), 8);
    rt_history_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoch_and_defaults), cmocka_unit_test(test_wrap_around),   cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_idempotent_append),  cmocka_unit_test(test_after_id),      cmocka_unit_test(test_channel_offsets),
        cmocka_unit_test(test_stream_since),       cmocka_unit_test(test_epoch_renewal), cmocka_unit_test(test_last),
        cmocka_unit_test(test_stream_read),        cmocka_unit_test(test_stream_remove), cmocka_unit_test(test_concurrent_appends),
        cmocka_unit_test(test_append_at),          cmocka_unit_test(test_reset),
        cmocka_unit_test(test_replay_filters_outside_the_lock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
