/*
 * Subscription index: exact, pattern and `all` matching, overlapping patterns, pruning on removal, and a
 * randomised comparison against rt_pattern_match. Includes the .c to check that removal frees the trie.
 * Events are built by hand: the index reads only their channels.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include "core/sub_index.c"

/* A subscription as the broadcaster builds it: channels copied, one entry per channel. */
static rt_subscription_t *mk_subv(const char *const *channels, size_t n)
{
    rt_subscription_t *sub = rt_mem_calloc(1, sizeof(*sub));
    sub->n_channels = n;
    sub->channels = rt_mem_alloc(n * sizeof(*sub->channels));
    sub->entries = rt_mem_calloc(n, sizeof(*sub->entries));
    for (size_t i = 0; i < n; i++) {
        assert_true(rt_pattern_valid(channels[i], strlen(channels[i])));
        sub->channels[i] = rt_strdup(channels[i]);
    }
    return sub;
}
#define mk_sub(...) mk_subv((const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static void free_sub(rt_subscription_t *sub)
{
    for (size_t i = 0; i < sub->n_channels; i++)
        free(sub->channels[i]);
    free(sub->channels);
    free(sub->entries);
    free(sub);
}

#define EVENT(...) ((rt_event_t){.channels = (const char *const[]){__VA_ARGS__}, .n_channels = sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)})

typedef struct {
    size_t n;
    struct {
        rt_subscription_t *sub;
        size_t ci;
    } v[4096];
} visits_t;

static void record(rt_subscription_t *sub, size_t ci, void *ctx)
{
    visits_t *vs = ctx;
    assert_true(vs->n < sizeof(vs->v) / sizeof(vs->v[0]));
    vs->v[vs->n].sub = sub;
    vs->v[vs->n].ci = ci;
    vs->n++;
}

static size_t match(rt_sub_index_t *idx, rt_event_t ev, visits_t *vs)
{
    vs->n = 0;
    rt__sub_index_match(idx, &ev, record, vs);
    return vs->n;
}

static size_t times(const visits_t *vs, rt_subscription_t *sub, size_t ci)
{
    size_t n = 0;
    for (size_t i = 0; i < vs->n; i++)
        n += vs->v[i].sub == sub && vs->v[i].ci == ci;
    return n;
}

static void counts(rt_sub_index_t *idx, size_t channels, size_t patterns)
{
    size_t c, p;
    rt__sub_index_counts(idx, &c, &p);
    assert_int_equal(c, channels);
    assert_int_equal(p, patterns);
}

/* Everything removed: no buckets, no trie nodes below the root, no pattern counts. */
static void assert_index_empty(rt_sub_index_t *idx)
{
    counts(idx, 0, 0);
    assert_int_equal(idx->exact.count, 0);
    assert_int_equal(idx->root.children.count, 0);
    assert_null(idx->root.star);
    assert_int_equal(idx->root.n_patterns, 0);
    assert_int_equal(idx->n_patterns, 0);
    assert_true(rt_list_empty(&idx->root.here));
    assert_true(rt_list_empty(&idx->root.rest));
    assert_true(rt_list_empty(&idx->all));
}

static visits_t vs;

static void test_exact(void **state)
{
    rt_sub_index_t *idx = rt__sub_index_new();
    rt_subscription_t *a = mk_sub("incidents"), *b = mk_sub("incidents", "system"), *c = mk_sub("incidents.INC-123");
    rt__sub_index_add(idx, a);
    rt__sub_index_add(idx, b);
    rt__sub_index_add(idx, c);
    counts(idx, 3, 0);

    assert_int_equal(match(idx, EVENT("incidents", "incidents.INC-123"), &vs), 3);
    assert_int_equal(times(&vs, a, 0), 1);
    assert_int_equal(times(&vs, b, 0), 1);
    assert_int_equal(times(&vs, c, 1), 1);

    assert_int_equal(match(idx, EVENT("system"), &vs), 1);
    assert_int_equal(times(&vs, b, 0), 1);
    assert_int_equal(match(idx, EVENT("timeline.INC-123"), &vs), 0);
    assert_int_equal(match(idx, EVENT("incident"), &vs), 0);
    assert_int_equal(match(idx, EVENT("incidents.INC"), &vs), 0);
    /* the channel index is that of the event's channel, whatever the position in the subscription */
    assert_int_equal(match(idx, EVENT("x", "y", "system"), &vs), 1);
    assert_int_equal(times(&vs, b, 2), 1);

    rt__sub_index_remove(idx, a);
    counts(idx, 3, 0); /* b still holds "incidents" */
    assert_int_equal(match(idx, EVENT("incidents"), &vs), 1);
    assert_int_equal(times(&vs, b, 0), 1);
    rt__sub_index_remove(idx, b);
    counts(idx, 1, 0);
    assert_int_equal(match(idx, EVENT("incidents", "system"), &vs), 0);
    rt__sub_index_remove(idx, c);
    assert_index_empty(idx);
    free_sub(a);
    free_sub(b);
    free_sub(c);
    rt__sub_index_free(idx);
}

static void test_patterns(void **state)
{
    rt_sub_index_t *idx = rt__sub_index_new();
    rt_subscription_t *star = mk_sub("incidents.*"), *rest = mk_sub("timeline.>"), *lead = mk_sub("*.b"), *any = mk_sub(">"),
                      *one = mk_sub("*"), *mid = mk_sub("a.*.c");
    rt_subscription_t *subs[] = {star, rest, lead, any, one, mid};
    for (size_t i = 0; i < 6; i++)
        rt__sub_index_add(idx, subs[i]);
    counts(idx, 0, 6);

    assert_int_equal(match(idx, EVENT("incidents.INC-1"), &vs), 2);
    assert_int_equal(times(&vs, star, 0), 1);
    assert_int_equal(times(&vs, any, 0), 1);

    assert_int_equal(match(idx, EVENT("incidents"), &vs), 2); /* '*' and '>' only */
    assert_int_equal(times(&vs, one, 0), 1);
    assert_int_equal(times(&vs, any, 0), 1);

    assert_int_equal(match(idx, EVENT("timeline"), &vs), 2); /* "timeline.>" needs one more segment */
    assert_int_equal(times(&vs, rest, 0), 0);
    assert_int_equal(match(idx, EVENT("timeline.INC-1"), &vs), 2);
    assert_int_equal(times(&vs, rest, 0), 1);
    assert_int_equal(match(idx, EVENT("timeline.INC-1.note.x"), &vs), 2);
    assert_int_equal(times(&vs, rest, 0), 1);
    assert_int_equal(times(&vs, any, 0), 1);

    assert_int_equal(match(idx, EVENT("a.b"), &vs), 2);
    assert_int_equal(times(&vs, lead, 0), 1);
    assert_int_equal(match(idx, EVENT("a.b.c"), &vs), 2);
    assert_int_equal(times(&vs, mid, 0), 1);
    assert_int_equal(match(idx, EVENT("a.b.b"), &vs), 1);
    assert_int_equal(times(&vs, any, 0), 1);

    /* two channels of one event: one visit per reached (subscription, channel) */
    assert_int_equal(match(idx, EVENT("incidents", "incidents.INC-1"), &vs), 4);
    assert_int_equal(times(&vs, one, 0), 1);
    assert_int_equal(times(&vs, any, 0), 1);
    assert_int_equal(times(&vs, star, 1), 1);
    assert_int_equal(times(&vs, any, 1), 1);

    for (size_t i = 0; i < 6; i++)
        rt__sub_index_remove(idx, subs[i]);
    assert_index_empty(idx);
    assert_int_equal(match(idx, EVENT("incidents", "a.b.c", "timeline.x"), &vs), 0);
    for (size_t i = 0; i < 6; i++)
        free_sub(subs[i]);
    rt__sub_index_free(idx);
}

static void test_all(void **state)
{
    rt_sub_index_t *idx = rt__sub_index_new();
    rt_subscription_t *all1 = mk_sub("all"), *all2 = mk_sub("all"), *exact = mk_sub("all.x");
    rt__sub_index_add(idx, all1);
    rt__sub_index_add(idx, all2);
    rt__sub_index_add(idx, exact);
    counts(idx, 1, 1); /* "all" counts as one pattern, however many subscribe */
    /* `all` reaches every event once, with channel index 0, however many channels the event names */
    assert_int_equal(match(idx, EVENT("incidents", "incidents.INC-1", "system"), &vs), 2);
    assert_int_equal(times(&vs, all1, 0), 1);
    assert_int_equal(times(&vs, all2, 0), 1);
    assert_int_equal(match(idx, EVENT("all.x"), &vs), 3);
    assert_int_equal(times(&vs, exact, 0), 1);
    rt__sub_index_remove(idx, all1);
    counts(idx, 1, 1);
    rt__sub_index_remove(idx, all2);
    counts(idx, 1, 0);
    assert_int_equal(match(idx, EVENT("incidents"), &vs), 0);
    rt__sub_index_remove(idx, exact);
    assert_index_empty(idx);
    free_sub(all1);
    free_sub(all2);
    free_sub(exact);
    rt__sub_index_free(idx);
}

static void test_overlapping(void **state)
{
    rt_sub_index_t *idx = rt__sub_index_new();
    /* one subscription with several channels that reach the same event channel, and several subscriptions */
    rt_subscription_t *multi = mk_sub("a.b", "a.*", "a.>", "*.b", ">", "all");
    rt_subscription_t *dup = mk_sub("a.*"), *other = mk_sub("a.*.>");
    rt__sub_index_add(idx, multi);
    rt__sub_index_add(idx, dup);
    rt__sub_index_add(idx, other);
    counts(idx, 1, 6); /* a.*, a.>, *.b, >, a.*.>, all */

    /* the index reports each entry: the broadcaster dedups per client */
    assert_int_equal(match(idx, EVENT("a.b"), &vs), 7);
    assert_int_equal(times(&vs, multi, 0), 6);
    assert_int_equal(times(&vs, dup, 0), 1);
    assert_int_equal(match(idx, EVENT("a.b.c"), &vs), 4); /* a.>, >, all; other's a.*.> */
    assert_int_equal(times(&vs, multi, 0), 3);
    assert_int_equal(times(&vs, other, 0), 1);

    /* removing one of two subscriptions to a pattern keeps the pattern */
    rt__sub_index_remove(idx, dup);
    counts(idx, 1, 6);
    assert_int_equal(match(idx, EVENT("a.x"), &vs), 4); /* a.*, a.>, >, all */
    assert_int_equal(times(&vs, multi, 0), 4);
    rt__sub_index_remove(idx, multi);
    counts(idx, 0, 1);
    assert_int_equal(match(idx, EVENT("a.b.c"), &vs), 1);
    assert_int_equal(times(&vs, other, 0), 1);
    rt__sub_index_remove(idx, other);
    assert_index_empty(idx);
    free_sub(multi);
    free_sub(dup);
    free_sub(other);
    rt__sub_index_free(idx);
}

static void test_dead_skipped_and_double_remove(void **state)
{
    rt_sub_index_t *idx = rt__sub_index_new();
    rt_subscription_t *a = mk_sub("x", "y.*"), *b = mk_sub("x");
    rt__sub_index_add(idx, a);
    rt__sub_index_add(idx, b);
    a->dead = true; /* unsubscribed during a fan-out: still linked, never visited */
    assert_int_equal(match(idx, EVENT("x", "y.z"), &vs), 1);
    assert_int_equal(times(&vs, b, 0), 1);
    rt__sub_index_remove(idx, a);
    rt__sub_index_remove(idx, a); /* entries already unlinked: a no-op */
    counts(idx, 1, 0);
    rt__sub_index_remove(idx, b);
    assert_index_empty(idx);
    free_sub(a);
    free_sub(b);
    rt__sub_index_free(idx);
}

/* rt__sub_index_foreach_channel, summed by name as /api/stats does it. */
typedef struct {
    char names[16][32];
    size_t n[16], count;
} channel_sums_t;

static void sum_channel(const char *channel, size_t len, size_t n, void *ctx)
{
    channel_sums_t *cs = ctx;
    size_t i = 0;
    while (i < cs->count && (strlen(cs->names[i]) != len || memcmp(cs->names[i], channel, len) != 0))
        i++;
    if (i == cs->count) {
        assert_true(cs->count < 16 && len < 32);
        memcpy(cs->names[i], channel, len);
        cs->names[i][len] = '\0';
        cs->n[cs->count++] = 0;
    }
    cs->n[i] += n;
}

static size_t sum_of(const channel_sums_t *cs, const char *name)
{
    for (size_t i = 0; i < cs->count; i++)
        if (strcmp(cs->names[i], name) == 0)
            return cs->n[i];
    return 0;
}

static void test_foreach_channel(void **state)
{
    rt_sub_index_t *idx = rt__sub_index_new();
    rt_subscription_t *a = mk_sub("incidents", "incidents.>", "all"), *b = mk_sub("incidents", "timeline.*"),
                      *c = mk_sub("incidents.>"), *d = mk_sub("system");
    rt__sub_index_add(idx, a);
    rt__sub_index_add(idx, b);
    rt__sub_index_add(idx, c);
    rt__sub_index_add(idx, d);
    d->dead = true; /* not counted */
    channel_sums_t cs = {0};
    rt__sub_index_foreach_channel(idx, sum_channel, &cs);
    assert_int_equal(cs.count, 4);
    assert_int_equal(sum_of(&cs, "incidents"), 2);
    assert_int_equal(sum_of(&cs, "incidents.>"), 2);
    assert_int_equal(sum_of(&cs, "timeline.*"), 1);
    assert_int_equal(sum_of(&cs, "all"), 1);
    assert_int_equal(sum_of(&cs, "system"), 0);
    rt__sub_index_remove(idx, a);
    rt__sub_index_remove(idx, b);
    rt__sub_index_remove(idx, c);
    rt__sub_index_remove(idx, d);
    cs = (channel_sums_t){0};
    rt__sub_index_foreach_channel(idx, sum_channel, &cs);
    assert_int_equal(cs.count, 0);
    free_sub(a);
    free_sub(b);
    free_sub(c);
    free_sub(d);
    rt__sub_index_free(idx);
}

static void test_pruning(void **state)
{
    rt_sub_index_t *idx = rt__sub_index_new();
    rt_subscription_t *deep = mk_sub("a.b.c.d.*"), *shallow = mk_sub("a.b.>"), *sib = mk_sub("a.x.*");
    rt__sub_index_add(idx, deep);
    rt__sub_index_add(idx, shallow);
    rt__sub_index_add(idx, sib);
    trie_node_t *a = rt_map_get(&idx->root.children, "a", 1);
    assert_non_null(a);
    assert_int_equal(a->n_patterns, 3);
    assert_int_equal(a->children.count, 2); /* b, x */

    rt__sub_index_remove(idx, deep);
    /* c, d and the star below them are gone; b stays for a.b.> */
    trie_node_t *b = rt_map_get(&a->children, "b", 1);
    assert_non_null(b);
    assert_int_equal(b->children.count, 0);
    assert_null(b->star);
    assert_int_equal(a->n_patterns, 2);
    assert_int_equal(match(idx, EVENT("a.b.c.d.e"), &vs), 1);
    assert_int_equal(times(&vs, shallow, 0), 1);

    rt__sub_index_remove(idx, sib);
    assert_int_equal(a->children.count, 1);
    rt__sub_index_remove(idx, shallow);
    assert_index_empty(idx);

    /* re-adding after everything was pruned rebuilds the path */
    rt__sub_index_add(idx, deep);
    assert_int_equal(match(idx, EVENT("a.b.c.d.e"), &vs), 1);
    assert_int_equal(times(&vs, deep, 0), 1);
    rt__sub_index_remove(idx, deep);
    assert_index_empty(idx);
    free_sub(deep);
    free_sub(shallow);
    free_sub(sib);
    rt__sub_index_free(idx);
}

static void test_free_with_entries(void **state)
{
    /* Freeing the index with subscriptions still indexed frees its own buckets and nodes (ASan: no leak). */
    rt_sub_index_t *idx = rt__sub_index_new();
    rt_subscription_t *s = mk_sub("a", "b.*.c", "d.>", "all", "*");
    rt__sub_index_add(idx, s);
    rt__sub_index_free(idx);
    free_sub(s);
}

static void test_many_subscriptions(void **state)
{
    enum { N_EXACT = 10000, N_PAT = 1000 };
    rt_sub_index_t *idx = rt__sub_index_new();
    rt_subscription_t **subs = test_calloc(N_EXACT + N_PAT + 1, sizeof(*subs));
    char name[64];
    for (size_t i = 0; i < N_EXACT; i++) {
        snprintf(name, sizeof(name), "ch.%zu", i);
        subs[i] = mk_sub(name);
        rt__sub_index_add(idx, subs[i]);
    }
    for (size_t i = 0; i < N_PAT; i++) {
        snprintf(name, sizeof(name), "p.%zu.*", i);
        subs[N_EXACT + i] = mk_sub(name);
        rt__sub_index_add(idx, subs[N_EXACT + i]);
    }
    subs[N_EXACT + N_PAT] = mk_sub("p.>");
    rt__sub_index_add(idx, subs[N_EXACT + N_PAT]);
    counts(idx, N_EXACT, N_PAT + 1);

    /* Only the reached subscriptions are visited, never the 11001 others. */
    assert_int_equal(match(idx, EVENT("ch.5", "p.7.x"), &vs), 3);
    assert_int_equal(times(&vs, subs[5], 0), 1);
    assert_int_equal(times(&vs, subs[N_EXACT + 7], 1), 1);
    assert_int_equal(times(&vs, subs[N_EXACT + N_PAT], 1), 1);
    assert_int_equal(match(idx, EVENT("ch.10000", "q.7.x"), &vs), 0);
    for (size_t i = 0; i < N_EXACT; i += 997) {
        snprintf(name, sizeof(name), "ch.%zu", i);
        assert_int_equal(match(idx, EVENT(name), &vs), 1);
        assert_ptr_equal(vs.v[0].sub, subs[i]);
    }

    for (size_t i = 0; i < N_EXACT + N_PAT + 1; i++) {
        rt__sub_index_remove(idx, subs[i]);
        free_sub(subs[i]);
    }
    assert_index_empty(idx);
    test_free(subs);
    rt__sub_index_free(idx);
}

/* Randomised: the index must report exactly the (entry, channel) pairs rt_pattern_match accepts. */
static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void random_name(char *buf, size_t size, bool pattern)
{
    static const char *const segs[] = {"a", "b", "c", "*", ">"};
    size_t nseg = 1 + rnd() % 4, len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < nseg; i++) {
        const char *s = segs[rnd() % (pattern ? (i + 1 == nseg ? 5 : 4) : 3)];
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? "." : "", s);
    }
    if (pattern && rnd() % 20 == 0)
        snprintf(buf, size, "all");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Distinct exact channels and patterns over the live subscriptions, computed the slow way. */
static void expected_counts(rt_subscription_t **subs, size_t n, size_t *channels, size_t *patterns)
{
    char **exact = test_calloc(n * 3 + 1, sizeof(char *)), **pats = test_calloc(n * 3 + 1, sizeof(char *));
    size_t ne = 0, np = 0;
    for (size_t i = 0; i < n; i++) {
        if (subs[i] == NULL)
            continue;
        for (size_t j = 0; j < subs[i]->n_channels; j++) {
            char *c = subs[i]->channels[j];
            if (rt_channel_is_pattern(c, strlen(c)) || rt_channel_is_all(c, strlen(c)))
                pats[np++] = c;
            else
                exact[ne++] = c;
        }
    }
    qsort(exact, ne, sizeof(char *), cmp_str);
    qsort(pats, np, sizeof(char *), cmp_str);
    *channels = *patterns = 0;
    for (size_t i = 0; i < ne; i++)
        *channels += i == 0 || strcmp(exact[i], exact[i - 1]) != 0;
    for (size_t i = 0; i < np; i++)
        *patterns += i == 0 || strcmp(pats[i], pats[i - 1]) != 0;
    test_free(exact);
    test_free(pats);
}

static void check_event(rt_sub_index_t *idx, rt_subscription_t **subs, size_t n, const char *const *chs, size_t nch)
{
    rt_event_t ev = {.channels = chs, .n_channels = nch};
    vs.n = 0;
    rt__sub_index_match(idx, &ev, record, &vs);
    size_t expected_total = 0;
    for (size_t i = 0; i < n; i++) {
        rt_subscription_t *s = subs[i];
        if (s == NULL)
            continue;
        for (size_t ci = 0; ci < nch; ci++) {
            size_t expect = 0;
            for (size_t j = 0; j < s->n_channels; j++) {
                const char *p = s->channels[j];
                if (rt_channel_is_all(p, strlen(p)))
                    expect += ci == 0;
                else
                    expect += rt_pattern_match(p, strlen(p), chs[ci], strlen(chs[ci]));
            }
            if (times(&vs, s, ci) != expect)
                fail_msg("sub %zu (%s...) channel %s: %zu visits, expected %zu", i, s->channels[0], chs[ci], times(&vs, s, ci),
                         expect);
            expected_total += expect;
        }
        /* rt__sub_reaches agrees with the index */
        bool reached = false;
        for (size_t ci = 0; ci < nch; ci++)
            reached |= times(&vs, s, ci) != 0;
        assert_int_equal(rt__sub_reaches(s, &ev), reached);
    }
    assert_int_equal(vs.n, expected_total);
}

static void test_randomised(void **state)
{
    enum { N = 150, ROUNDS = 3000 };
    rt_sub_index_t *idx = rt__sub_index_new();
    rt_subscription_t *subs[N] = {0};
    char names[3][64], evnames[3][64];
    for (size_t round = 0; round < ROUNDS; round++) {
        size_t k = rnd() % N;
        if (subs[k] != NULL) {
            rt__sub_index_remove(idx, subs[k]);
            free_sub(subs[k]);
            subs[k] = NULL;
        } else {
            size_t nch = 1 + rnd() % 3;
            const char *chs[3];
            for (size_t j = 0; j < nch; j++) {
                random_name(names[j], sizeof(names[j]), rnd() % 2);
                chs[j] = names[j];
            }
            subs[k] = mk_subv(chs, nch);
            rt__sub_index_add(idx, subs[k]);
        }
        size_t ec, ep, c, p;
        expected_counts(subs, N, &ec, &ep);
        rt__sub_index_counts(idx, &c, &p);
        assert_int_equal(c, ec);
        assert_int_equal(p, ep);

        size_t nev = 1 + rnd() % 3;
        const char *evchs[3];
        for (size_t j = 0; j < nev; j++) {
            random_name(evnames[j], sizeof(evnames[j]), false);
            evchs[j] = evnames[j];
        }
        check_event(idx, subs, N, evchs, nev);
    }
    for (size_t i = 0; i < N; i++) {
        if (subs[i] != NULL) {
            rt__sub_index_remove(idx, subs[i]);
            free_sub(subs[i]);
        }
    }
    assert_index_empty(idx);
    rt__sub_index_free(idx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact),        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_all),          cmocka_unit_test(test_overlapping),
        cmocka_unit_test(test_dead_skipped_and_double_remove), cmocka_unit_test(test_foreach_channel), cmocka_unit_test(test_pruning),
        cmocka_unit_test(test_free_with_entries), cmocka_unit_test(test_many_subscriptions),
        cmocka_unit_test(test_randomised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
