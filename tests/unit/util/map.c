/* String hash map: put/get/del, full-hash collisions, growth, and backward-shift deletion against a reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "util/map.h"

#define S(s) (s), strlen(s)
#define V(n) ((void *)(uintptr_t)(n))

/*
 * Checks the structural invariants: count matches the occupied slots, every key is found from its home slot
 * without crossing an empty slot (what backward-shift deletion must preserve), and the load stays <= 3/4.
 */
static void check_invariants(const rt_map_t *m)
{
    if (m->cap == 0) {
        assert_int_equal(m->count, 0);
        return;
    }
    assert_int_equal(m->cap & (m->cap - 1), 0);
    assert_true(m->count * 4 <= m->cap * 3);
    size_t mask = m->cap - 1, n = 0;
    for (size_t i = 0; i < m->cap; i++) {
        const rt_map_entry_t *e = &m->slots[i];
        if (e->key == NULL)
            continue;
        n++;
        assert_int_equal(e->hash, rt_hash(e->key, e->key_len));
        for (size_t j = e->hash & mask; j != i; j = (j + 1) & mask)
            if (m->slots[j].key == NULL)
                fail_msg("key %s at slot %zu unreachable from home %zu", e->key, i, (size_t)(e->hash & mask));
        assert_ptr_equal(rt_map_get(m, e->key, e->key_len), e->value);
    }
    assert_int_equal(n, m->count);
}

static void test_empty(void **state)
{
    rt_map_t m = {0};
    assert_null(rt_map_get(&m, S("x")));
    assert_null(rt_map_del(&m, S("x")));
    check_invariants(&m);
    rt_map_clear(&m);
    assert_int_equal(m.count, 0);
}

static void test_put_get_del(void **state)
{
    rt_map_t m = {0};
    assert_null(rt_map_put(&m, S("incidents"), V(1)));
    assert_null(rt_map_put(&m, S("system"), V(2)));
    assert_null(rt_map_put(&m, "", 0, V(3))); /* the empty key is a key like any other */
    assert_int_equal(m.count, 3);
    assert_ptr_equal(rt_map_get(&m, S("incidents")), V(1));
    assert_ptr_equal(rt_map_get(&m, S("system")), V(2));
    assert_ptr_equal(rt_map_get(&m, "", 0), V(3));
    assert_null(rt_map_get(&m, S("incident")));
    assert_null(rt_map_get(&m, S("incidentsX")));

    /* replacing returns the old value and does not add an entry */
    assert_ptr_equal(rt_map_put(&m, S("system"), V(22)), V(2));
    assert_int_equal(m.count, 3);
    assert_ptr_equal(rt_map_get(&m, S("system")), V(22));

    /* keys are (pointer, length): no NUL needed, and the map keeps its own copy */
    char buf[] = "incidents.INC-1";
    assert_ptr_equal(rt_map_get(&m, buf, 9), V(1));
    assert_null(rt_map_put(&m, buf, 13, V(4)));
    memset(buf, 'z', sizeof(buf) - 1);
    assert_ptr_equal(rt_map_get(&m, S("incidents.INC")), V(4));

    assert_ptr_equal(rt_map_del(&m, S("incidents")), V(1));
    assert_null(rt_map_del(&m, S("incidents")));
    assert_null(rt_map_get(&m, S("incidents")));
    assert_ptr_equal(rt_map_get(&m, S("incidents.INC")), V(4));
    assert_int_equal(m.count, 3);
    check_invariants(&m);
    rt_map_clear(&m);
    assert_int_equal(m.count, 0);
    assert_int_equal(m.cap, 0);
    /* reusable after clear */
    assert_null(rt_map_put(&m, S("again"), V(5)));
    assert_ptr_equal(rt_map_get(&m, S("again")), V(5));
    rt_map_clear(&m);
}

static void test_fnv1a(void **state)
{
    /* FNV-1a 32 reference values */
    assert_int_equal(rt_hash("", 0), 0x811c9dc5u);
    assert_int_equal(rt_hash(S("a")), 0xe40c292cu);
    assert_int_equal(rt_hash(S("foobar")), 0xbf9cf968u);
}

/* Pairs with equal 32-bit FNV-1a hashes: they share a home slot at every capacity. */
static const char *const collisions[][2] = {
    {"costarring", "liquid"}, {"declinate", "macallums"}, {"altarage", "zinke"}, {"altarages", "zinkes"},
    {"k32728", "k261234"},    {"k32729", "k261235"},      {"k32724", "k261238"}, {"k32725", "k261239"},
};

static void test_full_hash_collisions(void **state)
{
    rt_map_t m = {0};
    size_t n = sizeof(collisions) / sizeof(collisions[0]);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rt_hash(S(collisions[i][0])), rt_hash(S(collisions[i][1])));
        assert_null(rt_map_put(&m, S(collisions[i][0]), V(2 * i + 1)));
        assert_null(rt_map_put(&m, S(collisions[i][1]), V(2 * i + 2)));
    }
    assert_int_equal(m.count, 2 * n);
    check_invariants(&m);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(rt_map_get(&m, S(collisions[i][0])), V(2 * i + 1));
        assert_ptr_equal(rt_map_get(&m, S(collisions[i][1])), V(2 * i + 2));
    }
    /* delete the first of each pair: the second must still be found (it was shifted back or stays reachable) */
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(rt_map_del(&m, S(collisions[i][0])), V(2 * i + 1));
        check_invariants(&m);
        assert_null(rt_map_get(&m, S(collisions[i][0])));
        assert_ptr_equal(rt_map_get(&m, S(collisions[i][1])), V(2 * i + 2));
    }
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(rt_map_del(&m, S(collisions[i][1])), V(2 * i + 2));
    assert_int_equal(m.count, 0);
    for (size_t i = 0; i < m.cap; i++)
        assert_null(m.slots[i].key);
    rt_map_clear(&m);
}

/* Keys whose home slot is the last one, so their probe run wraps around the end of the table. */
static void test_wraparound(void **state)
{
    rt_map_t m = {0};
    char keys[5][16];
    size_t found = 0;
    /* capacity stays 8 for up to 6 entries; pick 5 keys with home slot 7 */
    for (unsigned i = 0; found < 5; i++) {
        snprintf(keys[found], sizeof(keys[found]), "w%u", i);
        if ((rt_hash(S(keys[found])) & 7) == 7)
            found++;
    }
    for (size_t i = 0; i < 5; i++)
        assert_null(rt_map_put(&m, S(keys[i]), V(i + 1)));
    assert_int_equal(m.cap, 8);
    check_invariants(&m);
    /* delete from the middle of the wrapped run, then the head */
    assert_ptr_equal(rt_map_del(&m, S(keys[2])), V(3));
    check_invariants(&m);
    assert_ptr_equal(rt_map_del(&m, S(keys[0])), V(1));
    check_invariants(&m);
    assert_ptr_equal(rt_map_get(&m, S(keys[1])), V(2));
    assert_ptr_equal(rt_map_get(&m, S(keys[3])), V(4));
    assert_ptr_equal(rt_map_get(&m, S(keys[4])), V(5));
    rt_map_clear(&m);
}

static void count_cb(const char *key, size_t len, void *value, void *ctx)
{
    unsigned char *seen = ctx;
    size_t i = (uintptr_t)value;
    char expect[32];
    snprintf(expect, sizeof(expect), "key-%zu", i);
    assert_int_equal(len, strlen(expect));
    assert_memory_equal(key, expect, len);
    seen[i]++;
}

static void test_growth_and_foreach(void **state)
{
    enum { N = 20000 };
    rt_map_t m = {0};
    char key[32];
    size_t last_cap = 0;
    for (size_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key-%zu", i);
        assert_null(rt_map_put(&m, S(key), V(i)));
        if (m.cap != last_cap) {
            assert_true(last_cap == 0 ? m.cap == 8 : m.cap == last_cap * 2);
            last_cap = m.cap;
        }
    }
    assert_int_equal(m.count, N);
    check_invariants(&m);
    for (size_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key-%zu", i);
        assert_ptr_equal(rt_map_get(&m, S(key)), V(i));
    }
    unsigned char *seen = test_calloc(N, 1);
    rt_map_foreach(&m, count_cb, seen);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    test_free(seen);
    /* delete every other key, check the rest */
    for (size_t i = 0; i < N; i += 2) {
        snprintf(key, sizeof(key), "key-%zu", i);
        assert_ptr_equal(rt_map_del(&m, S(key)), V(i));
    }
    assert_int_equal(m.count, N / 2);
    check_invariants(&m);
    for (size_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key-%zu", i);
        if (i % 2)
            assert_ptr_equal(rt_map_get(&m, S(key)), V(i));
        else
            assert_null(rt_map_get(&m, S(key)));
    }
    rt_map_clear(&m);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/*
 * Random put/get/del against a plain array. A small key space keeps the table dense with long probe runs and
 * frequent deletions in their middle, which is where a wrong backward shift loses or duplicates keys.
 */
static void randomised(uint64_t seed, size_t nkeys, size_t ops)
{
    rng_state = seed;
    rt_map_t m = {0};
    uintptr_t *ref = test_calloc(nkeys, sizeof(*ref)); /* 0 = absent */
    char key[32];
    size_t live = 0;
    for (size_t op = 0; op < ops; op++) {
        size_t k = rnd() % nkeys;
        size_t klen = (size_t)snprintf(key, sizeof(key), "%zx", k * 2654435761u);
        switch (rnd() % 3) {
        case 0: {
            uintptr_t v = (uintptr_t)(op + 1);
            void *old = rt_map_put(&m, key, klen, V(v));
            assert_ptr_equal(old, ref[k] ? V(ref[k]) : NULL);
            live += ref[k] == 0;
            ref[k] = v;
        } break;
        case 1: {
            void *old = rt_map_del(&m, key, klen);
            assert_ptr_equal(old, ref[k] ? V(ref[k]) : NULL);
            live -= ref[k] != 0;
            ref[k] = 0;
        } break;
        default:
            assert_ptr_equal(rt_map_get(&m, key, klen), ref[k] ? V(ref[k]) : NULL);
        }
        assert_int_equal(m.count, live);
        if (nkeys <= 64 || op % 97 == 0)
            check_invariants(&m);
    }
    check_invariants(&m);
    for (size_t k = 0; k < nkeys; k++) {
        size_t klen = (size_t)snprintf(key, sizeof(key), "%zx", k * 2654435761u);
        assert_ptr_equal(rt_map_get(&m, key, klen), ref[k] ? V(ref[k]) : NULL);
    }
    test_free(ref);
    rt_map_clear(&m);
}

static void test_randomised_small(void **state)
{
    for (uint64_t seed = 1; seed <= 20; seed++)
        randomised(seed * 0x9e3779b97f4a7c15ull, 12, 20000);
}

static void test_randomised_large(void **state)
{
    randomised(42, 700, 200000);
    randomised(7, 5000, 200000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),      cmocka_unit_test(test_put_get_del),        cmocka_unit_test(test_fnv1a),
        cmocka_unit_test(test_full_hash_collisions), cmocka_unit_test(test_wraparound), cmocka_unit_test(test_growth_and_foreach),
        cmocka_unit_test(test_randomised_small),     cmocka_unit_test(test_randomised_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
