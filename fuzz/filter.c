/*
 * libFuzzer target: arbitrary bytes as a filter in every form, matched against fixed events, with
 * cross-checks that abort on any disagreement: a failed compile returns RT_EINVAL or RT_E2BIG with a
 * message and no filter; matching is deterministic; {"op":"not","nodes":[T]} matches exactly when T
 * does not; rt_filter_and(A, B) matches exactly when both do.
 *
 * Input: JSON text (any value), compiled as the simple form and as the tree form. The same bytes are
 * also read as a query string (k=v&k=v...) and compiled with rt_filter_compile_query.
 */
/* fuzz-sources: src/core/filter_compile.c src/core/filter_eval.c src/util/mem.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/error.h"
#include "realtime/filter.h"

#define CHECK(c) ((c) ? (void)0 : abort())
#define N_EVENTS 4

static const char *const channels[] = {"incidents", "incidents.INC-123"};
static rt_event_t events[N_EVENTS];

static void init_events(void)
{
    static const struct {
        const char *type, *data;
    } defs[N_EVENTS] = {
        {"incident.created", "{\"id\":\"INC-123\",\"severity\":\"SEV-1\",\"status\":\"open\",\"priority\":1,\"score\":2.5,"
                             "\"ok\":true,\"closed\":false,\"count\":\"10\",\"service\":{\"team\":\"core\",\"tier\":{\"level\":3}},"
                             "\"tags\":[\"a\",\"b\"],\"nothing\":null,\"empty\":\"\"}"},
        {"sla.breach", "{\"severity\":\"SEV-2\",\"priority\":-9223372036854775808,\"score\":1e300,\"ratio\":0.1,"
                       "\"big\":9223372036854775807,\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":\"deep\"}}}}}}}}"},
        {"system.notification", "null"},
        {"timeline.updated", "[1,2,{\"severity\":\"SEV-1\"}]"},
    };
    for (size_t i = 0; i < N_EVENTS; i++) {
        events[i].id = "evt-fuzz";
        events[i].id_len = 8;
        events[i].type = defs[i].type;
        events[i].channels = channels;
        events[i].n_channels = 2;
        events[i].data = json_loads(defs[i].data, JSON_DECODE_ANY, NULL);
        CHECK(events[i].data != NULL);
    }
}

static void check_failure(int r, rt_filter_t *f, const char *err)
{
    CHECK(r == RT_EINVAL || r == RT_E2BIG);
    CHECK(f == NULL);
    CHECK(err[0] != '\0');
}

/* Matches f against every event twice (same answers), writing the results into out (may be NULL). */
static void match_all(const rt_filter_t *f, bool *out)
{
    for (size_t i = 0; i < N_EVENTS; i++) {
        bool m = rt_filter_match(f, &events[i]);
        CHECK(m == rt_filter_match(f, &events[i]));
        if (out != NULL)
            out[i] = m;
    }
}

static rt_filter_t *compile_simple(const json_t *j, bool *res)
{
    char err[256] = "";
    rt_filter_t *f = (rt_filter_t *)&err; /* must be overwritten */
    int r = rt_filter_compile_simple(j, &f, err, sizeof(err));
    if (r != 0) {
        check_failure(r, f, err);
        return NULL;
    }
    CHECK(f != NULL || json_object_size(j) == 0);
    match_all(f, res);
    return f;
}

static rt_filter_t *compile_tree(const json_t *j, bool *res)
{
    char err[256] = "";
    rt_filter_t *f = (rt_filter_t *)&err;
    int r = rt_filter_compile_tree(j, &f, err, sizeof(err));
    if (r != 0) {
        check_failure(r, f, err);
        return NULL;
    }
    CHECK(f != NULL);
    match_all(f, res);
    return f;
}

/* The tree wrapped in a "not" matches exactly the events the tree does not (when both compile). */
static void check_not(json_t *j, const bool *res)
{
    json_t *not = json_pack("{s:s,s:[O]}", "op", "not", "nodes", j);
    bool neg[N_EVENTS];
    rt_filter_t *f = compile_tree(not, neg);
    json_decref(not );
    if (f == NULL)
        return; /* one level or one node too many */
    for (size_t i = 0; i < N_EVENTS; i++)
        CHECK(neg[i] == !res[i]);
    rt_filter_free(f);
}

/* Reads the input as a query string: pairs split at '&', key and value at the first '='. */
static void fuzz_query(const uint8_t *data, size_t size)
{
    rt_filter_pair_t pairs[300];
    size_t n = 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    for (char *p = text; n < sizeof(pairs) / sizeof(pairs[0]);) {
        char *amp = strchr(p, '&'), *eq;
        if (amp != NULL)
            *amp = '\0';
        if ((eq = strchr(p, '=')) != NULL) {
            *eq = '\0';
            pairs[n++] = (rt_filter_pair_t){p, eq + 1};
        }
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    char err[256] = "";
    rt_filter_t *f = (rt_filter_t *)&err;
    int r = rt_filter_compile_query(pairs, n, &f, err, sizeof(err));
    if (r != 0)
        check_failure(r, f, err);
    else
        CHECK(f != NULL || n == 0);
    if (r == 0) {
        match_all(f, NULL);
        rt_filter_free(f);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        init_events();
        ready = true;
    }

    fuzz_query(data, size);

    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (j == NULL)
        return 0;
    bool res_simple[N_EVENTS], res_tree[N_EVENTS];
    rt_filter_t *s = compile_simple(j, res_simple), *t = compile_tree(j, res_tree);
    if (t != NULL)
        check_not(j, res_tree);

    /* The AND of both forms (either may be NULL: a NULL filter matches everything). */
    bool sim_ok = s != NULL || (json_is_object(j) && json_object_size(j) == 0);
    if (sim_ok && t != NULL) {
        rt_filter_t *both = rt_filter_and(s, t);
        for (size_t i = 0; i < N_EVENTS; i++)
            CHECK(rt_filter_match(both, &events[i]) == ((s == NULL || res_simple[i]) && res_tree[i]));
        rt_filter_free(both);
    } else {
        rt_filter_free(s);
        rt_filter_free(t);
    }
    json_decref(j);
    return 0;
}
