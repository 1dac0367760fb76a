/*
 * Content filters: the simple form (JSON and query pairs) and the Centrifuge tree form, matched against
 * events built by hand; every comparison, absent fields, type mismatches, bounds and malformed input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/error.h"
#include "realtime/filter.h"
#include "core/filter-private.h"

static const char *const channels[] = {"incidents", "incidents.INC-123"};
static rt_event_t ev;

static const char DATA[] = "{\"id\":\"INC-123\",\"severity\":\"SEV-1\",\"status\":\"open\",\"priority\":1,\"score\":2.5,"
                           "\"ratio\":0.1,\"whole\":100.0,\"huge\":1e20,\"ok\":true,\"closed\":false,\"count\":\"10\","
                           "\"num_str\":\"3\",\"word\":\"abc\",\"empty\":\"\",\"neg\":-7,\"big\":9007199254740993,"
                           "\"service\":{\"team\":\"core\",\"tier\":{\"level\":3,\"name\":\"gold\"}},"
                           "\"tags\":[\"a\",\"b\"],\"nothing\":null}";

static int setup(void **state)
{
    memset(&ev, 0, sizeof(ev));
    ev.id = "evt-1";
    ev.id_len = 5;
    ev.type = "incident.created";
    ev.channels = channels;
    ev.n_channels = 2;
    json_error_t jerr;
    ev.data = json_loads(DATA, 0, &jerr);
    return ev.data == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    json_decref(ev.data);
    return 0;
}

static json_t *J(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (j == NULL)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    return j;
}

static bool matches_on(rt_filter_t *f, const rt_event_t *e)
{
    bool m = rt_filter_match(f, e);
    rt_filter_free(f);
    return m;
}

static rt_filter_t *simple(const char *text)
{
    json_t *j = J(text);
    rt_filter_t *f = NULL;
    char err[256] = "";
    int r = rt_filter_compile_simple(j, &f, err, sizeof(err));
    json_decref(j);
    if (r != 0)
        fail_msg("compile_simple %s: %d %s", text, r, err);
    return f;
}

static rt_filter_t *tree(const char *text)
{
    json_t *j = J(text);
    rt_filter_t *f = NULL;
    char err[256] = "";
    int r = rt_filter_compile_tree(j, &f, err, sizeof(err));
    json_decref(j);
    if (r != 0)
        fail_msg("compile_tree %s: %d %s", text, r, err);
    assert_non_null(f);
    return f;
}

/* Query pairs given as key, value, key, value, ..., NULL. */
static rt_filter_t *query(const char *key, ...)
{
    rt_filter_pair_t pairs[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, key);
    for (const char *k = key; k != NULL; k = va_arg(ap, const char *)) {
        pairs[n].key = k;
        pairs[n++].value = va_arg(ap, const char *);
    }
    va_end(ap);
    rt_filter_t *f = NULL;
    char err[256] = "";
    int r = rt_filter_compile_query(pairs, n, &f, err, sizeof(err));
    if (r != 0)
        fail_msg("compile_query: %d %s", r, err);
    return f;
}

#define MS(text) matches_on(simple(text), &ev)
#define MT(text) matches_on(tree(text), &ev)
#define MQ(...) matches_on(query(__VA_ARGS__, NULL), &ev)

/* Compile errors: the code, *out left NULL, and the message. */
static char err_buf[512];

static int simple_err(const char *text)
{
    json_t *j = J(text);
    rt_filter_t *f = (rt_filter_t *)1;
    err_buf[0] = '\0';
    int r = rt_filter_compile_simple(j, &f, err_buf, sizeof(err_buf));
    json_decref(j);
    assert_null(f);
    return r;
}

static int simple_err_json(json_t *j)
{
    rt_filter_t *f = (rt_filter_t *)1;
    err_buf[0] = '\0';
    int r = rt_filter_compile_simple(j, &f, err_buf, sizeof(err_buf));
    json_decref(j);
    if (r == 0)
        rt_filter_free(f);
    else
        assert_null(f);
    return r;
}

static int tree_err_json(json_t *j)
{
    rt_filter_t *f = (rt_filter_t *)1;
    err_buf[0] = '\0';
    int r = rt_filter_compile_tree(j, &f, err_buf, sizeof(err_buf));
    json_decref(j);
    if (r == 0)
        rt_filter_free(f);
    else
        assert_null(f);
    return r;
}

static int tree_err(const char *text)
{
    return tree_err_json(J(text));
}

static int query_err(const rt_filter_pair_t *pairs, size_t n)
{
    rt_filter_t *f = (rt_filter_t *)1;
    err_buf[0] = '\0';
    int r = rt_filter_compile_query(pairs, n, &f, err_buf, sizeof(err_buf));
    if (r == 0)
        rt_filter_free(f);
    else
        assert_null(f);
    return r;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- NULL and empty filters ---- */

static void test_null_matches_all(void **state)
{
    assert_true(rt_filter_match(NULL, &ev));
    rt_filter_t *f = (rt_filter_t *)1;
    json_t *empty = json_object();
    assert_int_equal(rt_filter_compile_simple(empty, &f, NULL, 0), 0);
    assert_null(f);
    json_decref(empty);
    f = (rt_filter_t *)1;
    assert_int_equal(rt_filter_compile_query(NULL, 0, &f, NULL, 0), 0);
    assert_null(f);
    rt_filter_free(NULL);
    /* a filter does not match a NULL event */
    rt_filter_t *t = tree("{\"key\":\"x\",\"cmp\":\"nex\"}");
    assert_false(rt_filter_match(t, NULL));
    rt_filter_free(t);
}

/* ---- simple form from JSON ---- */

static void test_simple_match(void **state)
{
    assert_true(MS("{\"severity\":\"SEV-1\"}"));
    assert_false(MS("{\"severity\":\"SEV-2\"}"));
    assert_false(MS("{\"severity\":\"sev-1\"}"));
    assert_true(MS("{\"severity\":\"SEV-1\",\"status\":\"open\"}")); /* AND */
    assert_false(MS("{\"severity\":\"SEV-1\",\"status\":\"closed\"}"));
    assert_true(MS("{\"severity\":[\"SEV-2\",\"SEV-1\"]}")); /* any of */
    assert_false(MS("{\"severity\":[\"SEV-2\",\"SEV-3\"]}"));
    assert_true(MS("{\"type\":\"incident.created\"}"));
    assert_false(MS("{\"type\":\"incident.updated\"}"));
    assert_true(MS("{\"type\":[\"incident.updated\",\"incident.created\"],\"severity\":\"SEV-1\"}"));
    assert_true(MS("{\"empty\":\"\"}"));
    assert_true(MS("{\"service.team\":\"core\"}"));
    assert_false(MS("{\"service.team\":\"edge\"}"));
    assert_true(MS("{\"service.tier.level\":3}"));
    assert_true(MS("{\"service.tier.name\":\"gold\"}"));
}

static void test_simple_types(void **state)
{
    assert_true(MS("{\"priority\":1}"));
    assert_true(MS("{\"priority\":1.0}")); /* numbers compare by value */
    assert_false(MS("{\"priority\":\"1\"}"));
    assert_false(MS("{\"priority\":true}"));
    assert_false(MS("{\"priority\":2}"));
    assert_true(MS("{\"num_str\":\"3\"}"));
    assert_false(MS("{\"num_str\":3}")); /* "3" does not match 3 */
    assert_true(MS("{\"score\":2.5}"));
    assert_false(MS("{\"score\":\"2.5\"}"));
    assert_true(MS("{\"whole\":100}"));
    assert_true(MS("{\"big\":9007199254740993}"));
    assert_false(MS("{\"big\":9007199254740992}")); /* integers compare exactly */
    assert_true(MS("{\"ok\":true}"));
    assert_false(MS("{\"ok\":false}"));
    assert_false(MS("{\"ok\":\"true\"}"));
    assert_false(MS("{\"ok\":1}"));
    assert_true(MS("{\"closed\":false}"));
    assert_false(MS("{\"closed\":0}"));
    assert_true(MS("{\"priority\":[\"1\",true,1]}")); /* a mixed list: the number 1 matches */
    assert_false(MS("{\"priority\":[\"1\",true]}"));
}

static void test_simple_absent(void **state)
{
    assert_false(MS("{\"missing\":\"x\"}"));
    assert_false(MS("{\"severity\":\"SEV-1\",\"missing\":\"x\"}"));
    assert_false(MS("{\"service.missing\":\"x\"}"));
    assert_false(MS("{\"severity.x\":\"SEV-1\"}")); /* a path through a string */
    assert_false(MS("{\"tags\":\"a\"}"));           /* an array field is not a scalar */
    assert_false(MS("{\"tags\":[\"a\",\"b\"]}"));
    assert_false(MS("{\"service\":\"core\"}")); /* an object field */
    assert_false(MS("{\"nothing\":\"null\"}"));

    /* data that is not an object, or null */
    rt_event_t e = ev;
    e.data = json_string("SEV-1");
    assert_false(matches_on(simple("{\"severity\":\"SEV-1\"}"), &e));
    assert_true(matches_on(simple("{\"type\":\"incident.created\"}"), &e));
    json_decref(e.data);
    e.data = NULL;
    assert_false(matches_on(simple("{\"severity\":\"SEV-1\"}"), &e));
    e.type = NULL;
    assert_false(matches_on(simple("{\"type\":\"incident.created\"}"), &e));
    /* `type` is the event type, never data.type */
    e = ev;
    e.data = J("{\"type\":\"other.thing\"}");
    assert_false(matches_on(simple("{\"type\":\"other.thing\"}"), &e));
    json_decref(e.data);
}

/* ---- simple form from a query string ---- */

static void test_query(void **state)
{
    assert_true(MQ("severity", "SEV-1"));
    assert_false(MQ("severity", "SEV-2"));
    assert_true(MQ("severity", "SEV-2", "severity", "SEV-1")); /* repeated key: any of */
    assert_false(MQ("severity", "SEV-2", "severity", "SEV-3"));
    assert_true(MQ("severity", "SEV-1", "status", "open")); /* AND across keys */
    assert_false(MQ("severity", "SEV-1", "status", "closed"));
    assert_true(MQ("severity", "SEV-2", "status", "open", "severity", "SEV-1"));
    assert_true(MQ("type", "incident.created"));
    assert_true(MQ("service.team", "core"));
    assert_true(MQ("service.tier.level", "3"));
    /* number and bool fields match their JSON text */
    assert_true(MQ("priority", "1"));
    assert_false(MQ("priority", "1.0"));
    assert_false(MQ("priority", "01"));
    assert_true(MQ("score", "2.5"));
    assert_true(MQ("ratio", "0.1"));
    assert_true(MQ("whole", "100.0"));
    assert_false(MQ("whole", "100"));
    assert_true(MQ("huge", "1e20"));
    assert_true(MQ("neg", "-7"));
    assert_true(MQ("big", "9007199254740993"));
    assert_true(MQ("ok", "true"));
    assert_false(MQ("ok", "1"));
    assert_true(MQ("closed", "false"));
    assert_true(MQ("num_str", "3"));
    assert_true(MQ("empty", ""));
    assert_false(MQ("missing", ""));
    assert_false(MQ("tags", "a"));
    assert_false(MQ("nothing", "null"));
    assert_false(MQ("service", "core"));
}

/* ---- tree form: every comparison ---- */

static void test_tree_eq_neq(void **state)
{
    assert_true(MT("{\"key\":\"severity\",\"cmp\":\"eq\",\"val\":\"SEV-1\"}"));
    assert_false(MT("{\"key\":\"severity\",\"cmp\":\"eq\",\"val\":\"SEV-2\"}"));
    assert_false(MT("{\"key\":\"missing\",\"cmp\":\"eq\",\"val\":\"x\"}"));
    assert_false(MT("{\"key\":\"missing\",\"cmp\":\"eq\",\"val\":\"\"}"));
    assert_true(MT("{\"key\":\"empty\",\"cmp\":\"eq\",\"val\":\"\"}"));
    /* values compare as text: "3" equals both the string "3" and the number 3 */
    assert_true(MT("{\"key\":\"num_str\",\"cmp\":\"eq\",\"val\":\"3\"}"));
    assert_true(MT("{\"key\":\"service.tier.level\",\"cmp\":\"eq\",\"val\":\"3\"}"));
    assert_true(MT("{\"key\":\"service.tier.level\",\"cmp\":\"eq\",\"val\":3}")); /* a JSON number val: its text */
    assert_true(MT("{\"key\":\"priority\",\"cmp\":\"eq\",\"val\":\"1\"}"));
    assert_false(MT("{\"key\":\"priority\",\"cmp\":\"eq\",\"val\":\"1.0\"}"));
    assert_false(MT("{\"key\":\"priority\",\"cmp\":\"eq\",\"val\":1.0}"));
    assert_true(MT("{\"key\":\"whole\",\"cmp\":\"eq\",\"val\":100.0}"));
    assert_true(MT("{\"key\":\"ok\",\"cmp\":\"eq\",\"val\":\"true\"}"));
    assert_true(MT("{\"key\":\"ok\",\"cmp\":\"eq\",\"val\":true}"));
    assert_true(MT("{\"key\":\"closed\",\"cmp\":\"eq\",\"val\":\"false\"}"));
    assert_false(MT("{\"key\":\"tags\",\"cmp\":\"eq\",\"val\":\"a\"}"));
    assert_true(MT("{\"key\":\"type\",\"cmp\":\"eq\",\"val\":\"incident.created\"}"));

    assert_true(MT("{\"key\":\"severity\",\"cmp\":\"neq\",\"val\":\"SEV-2\"}"));
    assert_false(MT("{\"key\":\"severity\",\"cmp\":\"neq\",\"val\":\"SEV-1\"}"));
    assert_false(MT("{\"key\":\"priority\",\"cmp\":\"neq\",\"val\":\"1\"}"));
    /* neq is not-eq: it holds for an absent field (as in Centrifuge) */
    assert_true(MT("{\"key\":\"missing\",\"cmp\":\"neq\",\"val\":\"x\"}"));
    assert_true(MT("{\"key\":\"nothing\",\"cmp\":\"neq\",\"val\":\"x\"}"));
    assert_true(MT("{\"key\":\"tags\",\"cmp\":\"neq\",\"val\":\"a\"}"));
}

static void test_tree_in_nin(void **state)
{
    assert_true(MT("{\"key\":\"severity\",\"cmp\":\"in\",\"vals\":[\"SEV-2\",\"SEV-1\"]}"));
    assert_false(MT("{\"key\":\"severity\",\"cmp\":\"in\",\"vals\":[\"SEV-2\",\"SEV-3\"]}"));
    assert_true(MT("{\"key\":\"priority\",\"cmp\":\"in\",\"vals\":[\"2\",\"1\"]}"));
    assert_true(MT("{\"key\":\"priority\",\"cmp\":\"in\",\"vals\":[2,1]}"));
    assert_true(MT("{\"key\":\"ok\",\"cmp\":\"in\",\"vals\":[true]}"));
    assert_false(MT("{\"key\":\"missing\",\"cmp\":\"in\",\"vals\":[\"\",\"x\"]}"));
    assert_true(MT("{\"key\":\"type\",\"cmp\":\"in\",\"vals\":[\"incident.created\",\"sla.breach\"]}"));

    assert_true(MT("{\"key\":\"severity\",\"cmp\":\"nin\",\"vals\":[\"SEV-2\",\"SEV-3\"]}"));
    assert_false(MT("{\"key\":\"severity\",\"cmp\":\"nin\",\"vals\":[\"SEV-2\",\"SEV-1\"]}"));
    assert_false(MT("{\"key\":\"priority\",\"cmp\":\"nin\",\"vals\":[\"1\"]}"));
    assert_true(MT("{\"key\":\"missing\",\"cmp\":\"nin\",\"vals\":[\"x\"]}"));
    assert_true(MT("{\"key\":\"missing\",\"cmp\":\"nin\",\"vals\":[\"\"]}"));
}

static void test_tree_ex_nex(void **state)
{
    assert_true(MT("{\"key\":\"severity\",\"cmp\":\"ex\"}"));
    assert_true(MT("{\"key\":\"empty\",\"cmp\":\"ex\"}"));
    assert_true(MT("{\"key\":\"closed\",\"cmp\":\"ex\"}"));
    assert_true(MT("{\"key\":\"priority\",\"cmp\":\"ex\"}"));
    assert_true(MT("{\"key\":\"service.team\",\"cmp\":\"ex\"}"));
    assert_true(MT("{\"key\":\"type\",\"cmp\":\"ex\"}"));
    assert_false(MT("{\"key\":\"missing\",\"cmp\":\"ex\"}"));
    assert_false(MT("{\"key\":\"nothing\",\"cmp\":\"ex\"}")); /* null, array and object are not scalars */
    assert_false(MT("{\"key\":\"tags\",\"cmp\":\"ex\"}"));
    assert_false(MT("{\"key\":\"service\",\"cmp\":\"ex\"}"));

    assert_false(MT("{\"key\":\"severity\",\"cmp\":\"nex\"}"));
    assert_false(MT("{\"key\":\"type\",\"cmp\":\"nex\"}"));
    assert_true(MT("{\"key\":\"missing\",\"cmp\":\"nex\"}"));
    assert_true(MT("{\"key\":\"service.tier.missing\",\"cmp\":\"nex\"}"));
    assert_true(MT("{\"key\":\"nothing\",\"cmp\":\"nex\"}"));
    assert_true(MT("{\"key\":\"tags\",\"cmp\":\"nex\"}"));
    /* protobuf-style empty members are tolerated */
    assert_true(MT("{\"op\":\"\",\"key\":\"missing\",\"cmp\":\"nex\",\"val\":\"\",\"vals\":[],\"nodes\":[]}"));
}

static void test_tree_sw_ew_ct(void **state)
{
    assert_true(MT("{\"key\":\"type\",\"cmp\":\"sw\",\"val\":\"incident.\"}"));
    assert_false(MT("{\"key\":\"type\",\"cmp\":\"sw\",\"val\":\"timeline.\"}"));
    assert_true(MT("{\"key\":\"type\",\"cmp\":\"sw\",\"val\":\"incident.created\"}"));
    assert_false(MT("{\"key\":\"type\",\"cmp\":\"sw\",\"val\":\"incident.created.x\"}"));
    assert_true(MT("{\"key\":\"severity\",\"cmp\":\"sw\",\"val\":\"\"}"));
    assert_false(MT("{\"key\":\"missing\",\"cmp\":\"sw\",\"val\":\"\"}"));
    assert_true(MT("{\"key\":\"score\",\"cmp\":\"sw\",\"val\":\"2.\"}")); /* a number's text */

    assert_true(MT("{\"key\":\"type\",\"cmp\":\"ew\",\"val\":\".created\"}"));
    assert_false(MT("{\"key\":\"type\",\"cmp\":\"ew\",\"val\":\".updated\"}"));
    assert_false(MT("{\"key\":\"word\",\"cmp\":\"ew\",\"val\":\"xabc\"}"));
    assert_true(MT("{\"key\":\"ok\",\"cmp\":\"ew\",\"val\":\"ue\"}"));
    assert_false(MT("{\"key\":\"missing\",\"cmp\":\"ew\",\"val\":\"x\"}"));

    assert_true(MT("{\"key\":\"id\",\"cmp\":\"ct\",\"val\":\"C-1\"}"));
    assert_true(MT("{\"key\":\"id\",\"cmp\":\"ct\",\"val\":\"INC-123\"}"));
    assert_false(MT("{\"key\":\"id\",\"cmp\":\"ct\",\"val\":\"INC-1234\"}"));
    assert_false(MT("{\"key\":\"id\",\"cmp\":\"ct\",\"val\":\"inc\"}"));
    assert_true(MT("{\"key\":\"empty\",\"cmp\":\"ct\",\"val\":\"\"}"));
    assert_true(MT("{\"key\":\"big\",\"cmp\":\"ct\",\"val\":\"740993\"}"));
    assert_false(MT("{\"key\":\"missing\",\"cmp\":\"ct\",\"val\":\"\"}"));
}

static void test_tree_numeric(void **state)
{
    /* number fields */
    assert_true(MT("{\"key\":\"priority\",\"cmp\":\"lt\",\"val\":\"2\"}"));
    assert_false(MT("{\"key\":\"priority\",\"cmp\":\"lt\",\"val\":\"1\"}"));
    assert_true(MT("{\"key\":\"priority\",\"cmp\":\"lte\",\"val\":\"1\"}"));
    assert_false(MT("{\"key\":\"priority\",\"cmp\":\"lte\",\"val\":\"0.5\"}"));
    assert_true(MT("{\"key\":\"priority\",\"cmp\":\"gt\",\"val\":\"0.5\"}"));
    assert_false(MT("{\"key\":\"priority\",\"cmp\":\"gt\",\"val\":\"1\"}"));
    assert_true(MT("{\"key\":\"priority\",\"cmp\":\"gte\",\"val\":\"1.0\"}"));
    assert_false(MT("{\"key\":\"priority\",\"cmp\":\"gte\",\"val\":\"1.5\"}"));
    assert_true(MT("{\"key\":\"score\",\"cmp\":\"gt\",\"val\":2}"));
    assert_true(MT("{\"key\":\"score\",\"cmp\":\"lt\",\"val\":\"2.51\"}"));
    assert_true(MT("{\"key\":\"neg\",\"cmp\":\"lt\",\"val\":\"-6.5\"}"));
    assert_true(MT("{\"key\":\"huge\",\"cmp\":\"gte\",\"val\":\"1E+20\"}"));
    assert_true(MT("{\"key\":\"big\",\"cmp\":\"gt\",\"val\":\"9007199254740992\"}")); /* exact beyond 2^53 */
    assert_false(MT("{\"key\":\"big\",\"cmp\":\"gt\",\"val\":\"9007199254740993\"}"));
    assert_true(MT("{\"key\":\"service.tier.level\",\"cmp\":\"gte\",\"val\":\"3\"}"));
    /* strings holding a number compare numerically: "10" > "9" although it sorts before it as text */
    assert_true(MT("{\"key\":\"count\",\"cmp\":\"gt\",\"val\":\"9\"}"));
    assert_true(MT("{\"key\":\"count\",\"cmp\":\"lte\",\"val\":\"10\"}"));
    assert_false(MT("{\"key\":\"count\",\"cmp\":\"lt\",\"val\":\"10\"}"));
    /* non-numeric fields and absent fields never match */
    assert_false(MT("{\"key\":\"word\",\"cmp\":\"gt\",\"val\":\"0\"}"));
    assert_false(MT("{\"key\":\"word\",\"cmp\":\"lt\",\"val\":\"0\"}"));
    assert_false(MT("{\"key\":\"empty\",\"cmp\":\"gte\",\"val\":\"0\"}"));
    assert_false(MT("{\"key\":\"ok\",\"cmp\":\"gte\",\"val\":\"0\"}"));
    assert_false(MT("{\"key\":\"missing\",\"cmp\":\"lt\",\"val\":\"100\"}"));
    assert_false(MT("{\"key\":\"tags\",\"cmp\":\"gt\",\"val\":\"-100\"}"));
    assert_false(MT("{\"key\":\"type\",\"cmp\":\"gt\",\"val\":\"0\"}"));
}

static void test_tree_logic(void **state)
{
    const char *t = "{\"key\":\"severity\",\"cmp\":\"eq\",\"val\":\"SEV-1\"}";
    const char *f = "{\"key\":\"severity\",\"cmp\":\"eq\",\"val\":\"SEV-2\"}";
    char buf[512];
#define LOGIC(op, a, b) (snprintf(buf, sizeof(buf), "{\"op\":\"" op "\",\"nodes\":[%s,%s]}", a, b), MT(buf))
    assert_true(LOGIC("and", t, t));
    assert_false(LOGIC("and", t, f));
    assert_false(LOGIC("and", f, t));
    assert_true(LOGIC("or", t, f));
    assert_true(LOGIC("or", f, t));
    assert_false(LOGIC("or", f, f));
#undef LOGIC
    assert_true(MT("{\"op\":\"and\",\"nodes\":[{\"key\":\"status\",\"cmp\":\"eq\",\"val\":\"open\"}]}"));
    assert_true(MT("{\"op\":\"or\",\"nodes\":[{\"key\":\"status\",\"cmp\":\"eq\",\"val\":\"open\"}]}"));
    assert_false(MT("{\"op\":\"not\",\"nodes\":[{\"key\":\"status\",\"cmp\":\"eq\",\"val\":\"open\"}]}"));
    assert_true(MT("{\"op\":\"not\",\"nodes\":[{\"key\":\"status\",\"cmp\":\"eq\",\"val\":\"closed\"}]}"));
    assert_true(MT("{\"op\":\"not\",\"nodes\":[{\"op\":\"not\",\"nodes\":[{\"key\":\"ok\",\"cmp\":\"eq\",\"val\":\"true\"}]}]}"));
    /* the appendix example, and a nested mix */
    assert_true(MT("{\"op\":\"and\",\"nodes\":[{\"key\":\"type\",\"cmp\":\"sw\",\"val\":\"incident.\"},"
                   "{\"key\":\"severity\",\"cmp\":\"in\",\"vals\":[\"SEV-1\",\"SEV-2\"]}]}"));
    assert_false(MT("{\"op\":\"and\",\"nodes\":[{\"key\":\"type\",\"cmp\":\"sw\",\"val\":\"timeline.\"},"
                    "{\"key\":\"severity\",\"cmp\":\"in\",\"vals\":[\"SEV-1\",\"SEV-2\"]}]}"));
    assert_true(MT("{\"op\":\"or\",\"nodes\":[{\"key\":\"status\",\"cmp\":\"eq\",\"val\":\"closed\"},"
                   "{\"op\":\"and\",\"nodes\":[{\"key\":\"service.team\",\"cmp\":\"eq\",\"val\":\"core\"},"
                   "{\"op\":\"not\",\"nodes\":[{\"key\":\"priority\",\"cmp\":\"gt\",\"val\":\"3\"}]}]}]}"));
    assert_false(MT("{\"op\":\"or\",\"nodes\":[{\"key\":\"status\",\"cmp\":\"eq\",\"val\":\"closed\"},"
                    "{\"op\":\"and\",\"nodes\":[{\"key\":\"service.team\",\"cmp\":\"eq\",\"val\":\"core\"},"
                    "{\"op\":\"not\",\"nodes\":[{\"key\":\"priority\",\"cmp\":\"gt\",\"val\":\"0\"}]}]}]}"));
    /* unknown members are ignored; null members are absent */
    assert_true(MT("{\"key\":\"severity\",\"cmp\":\"eq\",\"val\":\"SEV-1\",\"extra\":1,\"op\":null,\"vals\":null}"));
}

static void test_and(void **state)
{
    assert_null(rt_filter_and(NULL, NULL));
    rt_filter_t *a = simple("{\"severity\":\"SEV-1\"}");
    assert_ptr_equal(rt_filter_and(a, NULL), a);
    assert_ptr_equal(rt_filter_and(NULL, a), a);
    rt_filter_free(a);

    /* simple AND tree */
    rt_filter_t *f = rt_filter_and(simple("{\"severity\":\"SEV-1\"}"), tree("{\"key\":\"priority\",\"cmp\":\"lt\",\"val\":\"5\"}"));
    assert_true(rt_filter_match(f, &ev));
    rt_filter_free(f);
    f = rt_filter_and(simple("{\"severity\":\"SEV-1\"}"), tree("{\"key\":\"priority\",\"cmp\":\"gt\",\"val\":\"5\"}"));
    assert_false(rt_filter_match(f, &ev));
    rt_filter_free(f);

    /* ANDs of ANDs flatten; each part still counts */
    rt_filter_t *l = simple("{\"severity\":\"SEV-1\",\"status\":\"open\"}");
    rt_filter_t *r = query("ok", "true", "priority", "1", NULL);
    f = rt_filter_and(l, r);
    assert_int_equal(f->op, RT_FILTER_OP_AND);
    assert_int_equal(f->logic.n, 4);
    assert_true(rt_filter_match(f, &ev));
    f = rt_filter_and(f, query("status", "closed", NULL));
    assert_int_equal(f->logic.n, 5);
    assert_false(rt_filter_match(f, &ev));
    rt_filter_free(f);
    f = rt_filter_and(tree("{\"op\":\"or\",\"nodes\":[{\"key\":\"x\",\"cmp\":\"ex\"},{\"key\":\"ok\",\"cmp\":\"ex\"}]}"),
                      simple("{\"closed\":false}"));
    assert_true(rt_filter_match(f, &ev));
    rt_filter_free(f);
}

/* ---- text forms and number parsing ---- */

static void test_number_text(void **state)
{
    static const struct {
        const char *json, *text;
    } cases[] = {
        {"0", "0"},
        {"-7", "-7"},
        {"9223372036854775807", "9223372036854775807"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"1.0", "1.0"},
        {"0.1", "0.1"},
        {"2.50", "2.5"},
        {"1e20", "1e20"},
        {"1.5e-7", "1.5e-7"},
        {"-0.0", "-0.0"},
        {"100.0", "100.0"},
        {"0.30000000000000004", "0.30000000000000004"},
        {"1e300", "1e300"},
        {"123456.789", "123456.789"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = J(cases[i].json);
        char buf[RT__FILTER_NUM_TEXT_MAX];
        size_t len = rt__filter_format_number(j, buf);
        assert_string_equal(buf, cases[i].text);
        assert_int_equal(len, strlen(cases[i].text));
        json_decref(j);
    }

    rt_filter_num_t n;
    assert_true(rt__filter_parse_number("42", 2, &n));
    assert_true(n.is_int);
    assert_true(n.i == 42);
    assert_true(rt__filter_parse_number("-1.5e3", 6, &n));
    assert_false(n.is_int);
    assert_true(n.d == -1500.0);
    assert_true(rt__filter_parse_number("+.5", 3, &n));
    assert_true(n.d == 0.5);
    assert_true(rt__filter_parse_number("5.", 2, &n));
    assert_true(rt__filter_parse_number("99999999999999999999", 20, &n)); /* past int64: a double */
    assert_false(n.is_int);
    static const char *const bad[] = {"",   "-",  ".",    "e5",  "1e",  "1e+",  "abc", "1x",
                                      " 1", "1 ", "0x10", "nan", "inf", "1..2", "--1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(rt__filter_parse_number(bad[i], strlen(bad[i]), &n));
    assert_false(rt__filter_parse_number("1\0002", 3, &n));
}

/* ---- errors: malformed input ---- */

static void test_simple_malformed(void **state)
{
    assert_int_equal(simple_err("[1]"), RT_EINVAL);
    assert_string_equal(err_buf, "filters: must be a JSON object");
    assert_int_equal(simple_err("\"severity\""), RT_EINVAL);
    rt_filter_t *f = (rt_filter_t *)1;
    assert_int_equal(rt_filter_compile_simple(NULL, &f, NULL, 0), RT_EINVAL); /* NULL err is fine */
    assert_null(f);

    static const char *const bad_values[] = {"{\"severity\":null}",
                                             "{\"severity\":{}}",
                                             "{\"severity\":{\"a\":1}}",
                                             "{\"severity\":[\"SEV-1\",[\"SEV-2\"]]}",
                                             "{\"severity\":[\"SEV-1\",null]}",
                                             "{\"severity\":[{}]}"};
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        assert_int_equal(simple_err(bad_values[i]), RT_EINVAL);
        assert_string_equal(err_buf, "filters.severity: value must be a string, number, bool or array of them");
    }
    assert_int_equal(simple_err("{\"severity\":[]}"), RT_EINVAL);
    assert_string_equal(err_buf, "filters.severity: array of values must not be empty");
    /* an error in a later key frees what was compiled before it (ASan checks) */
    assert_int_equal(simple_err("{\"a\":\"x\",\"b\":[1,2],\"c\":null}"), RT_EINVAL);
    assert_string_equal(err_buf, "filters.c: value must be a string, number, bool or array of them");

    assert_int_equal(simple_err("{\"\":\"x\"}"), RT_EINVAL);
    assert_string_equal(err_buf, "filters: empty key");
    assert_int_equal(simple_err("{\"a..b\":\"x\"}"), RT_EINVAL);
    assert_string_equal(err_buf, "filters: invalid key \"a..b\" (empty segment)");
    assert_int_equal(simple_err("{\".a\":\"x\"}"), RT_EINVAL);
    assert_int_equal(simple_err("{\"a.\":\"x\"}"), RT_EINVAL);
    assert_int_equal(simple_err("{\".\":\"x\"}"), RT_EINVAL);
    json_t *o = json_object();
    json_object_setn_new(o, "a\0b", 3, json_string("x"));
    assert_int_equal(simple_err_json(o), RT_EINVAL);
    assert_string_equal(err_buf, "filters: key contains a NUL byte");
}

static void test_tree_malformed(void **state)
{
    static const struct {
        const char *json, *msg;
    } cases[] = {
        {"[]", "filter: must be a JSON object"},
        {"\"eq\"", "filter: must be a JSON object"},
        {"{\"key\":\"a\",\"cmp\":\"foo\",\"val\":\"x\"}", "filter: unknown cmp \"foo\""},
        {"{\"key\":\"a\",\"cmp\":\"EQ\",\"val\":\"x\"}", "filter: unknown cmp \"EQ\""},
        {"{\"op\":\"xor\",\"nodes\":[]}", "filter: unknown op \"xor\""},
        {"{\"op\":1}", "filter: op must be a string"},
        {"{\"key\":\"a\",\"val\":\"x\"}", "filter: a leaf needs cmp"},
        {"{}", "filter: a leaf needs cmp"},
        {"{\"key\":\"a\",\"cmp\":7,\"val\":\"x\"}", "filter: cmp must be a string"},
        {"{\"cmp\":\"eq\",\"val\":\"x\"}", "filter: a leaf needs key, a string"},
        {"{\"key\":1,\"cmp\":\"eq\",\"val\":\"x\"}", "filter: a leaf needs key, a string"},
        {"{\"key\":\"\",\"cmp\":\"ex\"}", "filter: empty key"},
        {"{\"key\":\"a..b\",\"cmp\":\"ex\"}", "filter: invalid key \"a..b\" (empty segment)"},
        {"{\"key\":\"a\",\"cmp\":\"eq\"}", "filter: \"eq\" needs val"},
        {"{\"key\":\"a\",\"cmp\":\"gt\",\"vals\":[\"1\"]}", "filter: \"gt\" needs val"},
        {"{\"key\":\"a\",\"cmp\":\"eq\",\"val\":\"x\",\"vals\":[\"y\"]}", "filter: \"eq\" takes val, not vals"},
        {"{\"key\":\"a\",\"cmp\":\"in\",\"val\":\"x\"}", "filter: \"in\" needs vals, an array"},
        {"{\"key\":\"a\",\"cmp\":\"nin\",\"vals\":\"x\"}", "filter: \"nin\" needs vals, an array"},
        {"{\"key\":\"a\",\"cmp\":\"in\",\"vals\":[]}", "filter: \"in\" needs at least one value in vals"},
        {"{\"key\":\"a\",\"cmp\":\"in\",\"vals\":[\"x\"],\"val\":\"y\"}", "filter: \"in\" takes vals, not val"},
        {"{\"key\":\"a\",\"cmp\":\"ex\",\"val\":\"x\"}", "filter: \"ex\" takes no val or vals"},
        {"{\"key\":\"a\",\"cmp\":\"nex\",\"vals\":[\"x\"]}", "filter: \"nex\" takes no val or vals"},
        {"{\"key\":\"a\",\"cmp\":\"eq\",\"val\":{}}", "filter: val must be a string, number or bool"},
        {"{\"key\":\"a\",\"cmp\":\"eq\",\"val\":[\"x\"]}", "filter: val must be a string, number or bool"},
        {"{\"key\":\"a\",\"cmp\":\"in\",\"vals\":[\"x\",null]}", "filter: each of vals must be a string, number or bool"},
        {"{\"key\":\"a\",\"cmp\":\"in\",\"vals\":[[\"x\"]]}", "filter: each of vals must be a string, number or bool"},
        {"{\"key\":\"a\",\"cmp\":\"lt\",\"val\":\"abc\"}", "filter: val must be a number for a numeric comparison, not \"abc\""},
        {"{\"key\":\"a\",\"cmp\":\"gte\",\"val\":true}", "filter: val must be a number for a numeric comparison, not \"true\""},
        {"{\"key\":\"a\",\"cmp\":\"lte\",\"val\":\"\"}", "filter: val must be a number for a numeric comparison, not \"\""},
        {"{\"key\":\"a\",\"cmp\":\"eq\",\"val\":\"x\",\"nodes\":[{}]}", "filter: a leaf (no op) must not have nodes"},
        {"{\"op\":\"and\"}", "filter: \"and\" needs at least one node"},
        {"{\"op\":\"or\",\"nodes\":[]}", "filter: \"or\" needs at least one node"},
        {"{\"op\":\"and\",\"nodes\":{}}", "filter: nodes must be an array"},
        {"{\"op\":\"not\",\"nodes\":[]}", "filter: \"not\" needs exactly one node"},
        {"{\"op\":\"not\",\"nodes\":[{\"key\":\"a\",\"cmp\":\"ex\"},{\"key\":\"b\",\"cmp\":\"ex\"}]}",
         "filter: \"not\" needs exactly one node"},
        {"{\"op\":\"and\",\"key\":\"a\",\"nodes\":[{\"key\":\"a\",\"cmp\":\"ex\"}]}",
         "filter: \"and\" must not have key, cmp, val or vals"},
        {"{\"op\":\"or\",\"nodes\":[1]}", "filter.nodes[0]: must be a JSON object"},
        {"{\"op\":\"or\",\"nodes\":[{\"key\":\"a\",\"cmp\":\"ex\"},{\"key\":\"a\",\"cmp\":\"foo\"}]}",
         "filter.nodes[1]: unknown cmp \"foo\""},
        {"{\"op\":\"and\",\"nodes\":[{\"key\":\"a\",\"cmp\":\"ex\"},{\"op\":\"not\",\"nodes\":[{\"key\":\"a\",\"cmp\":\"eq\"}]}]}",
         "filter.nodes[1].nodes[0]: \"eq\" needs val"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = tree_err(cases[i].json);
        if (r != RT_EINVAL || strcmp(err_buf, cases[i].msg) != 0)
            fail_msg("%s: got %d \"%s\", want RT_EINVAL \"%s\"", cases[i].json, r, err_buf, cases[i].msg);
    }
    rt_filter_t *f = (rt_filter_t *)1;
    assert_int_equal(rt_filter_compile_tree(NULL, &f, NULL, 0), RT_EINVAL);
    assert_null(f);
}

static void test_query_malformed(void **state)
{
    rt_filter_pair_t p[2] = {{"severity", "SEV-1"}, {NULL, "x"}};
    assert_int_equal(query_err(p, 2), RT_EINVAL);
    assert_string_equal(err_buf, "filter: pair 1 has no key or value");
    p[1] = (rt_filter_pair_t){"status", NULL};
    assert_int_equal(query_err(p, 2), RT_EINVAL);
    p[1] = (rt_filter_pair_t){"", "x"};
    assert_int_equal(query_err(p, 2), RT_EINVAL);
    assert_string_equal(err_buf, "filter: empty key");
    p[1] = (rt_filter_pair_t){"a.", "x"};
    assert_int_equal(query_err(p, 2), RT_EINVAL);
    assert_int_equal(query_err(NULL, 1), RT_EINVAL);
}

/* ---- errors: bounds (the limit passes, one over fails) ---- */

static void test_bound_keys(void **state)
{
    json_t *o = json_object();
    for (int i = 0; i < RT_FILTER_MAX_KEYS; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        json_object_set_new(o, k, json_string("v"));
    }
    assert_int_equal(simple_err_json(json_incref(o)), 0);
    json_object_set_new(o, "one_more", json_string("v"));
    assert_int_equal(simple_err_json(o), RT_E2BIG);
    assert_string_equal(err_buf, "filters: more than 32 keys");

    rt_filter_pair_t pairs[RT_FILTER_MAX_KEYS + 2];
    char keys[RT_FILTER_MAX_KEYS + 2][16];
    for (int i = 0; i < RT_FILTER_MAX_KEYS + 2; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i < RT_FILTER_MAX_KEYS ? i : 0); /* the last two repeat k0 */
        pairs[i] = (rt_filter_pair_t){keys[i], "v"};
    }
    assert_int_equal(query_err(pairs, RT_FILTER_MAX_KEYS + 2), 0); /* 32 distinct keys */
    snprintf(keys[RT_FILTER_MAX_KEYS + 1], sizeof(keys[0]), "extra");
    assert_int_equal(query_err(pairs, RT_FILTER_MAX_KEYS + 2), RT_E2BIG);
    assert_string_equal(err_buf, "filter: more than 32 keys");
}

static void test_bound_values(void **state)
{
    /* simple: values of all keys together */
    json_t *o = json_object(), *a = json_array(), *b = json_array();
    for (int i = 0; i < RT_FILTER_MAX_VALUES - 1; i++)
        json_array_append_new(a, json_integer(i));
    json_object_set_new(o, "a", a);
    json_object_set_new(o, "b", b);
    json_array_append_new(b, json_string("x"));
    assert_int_equal(simple_err_json(json_incref(o)), 0);
    json_array_append_new(b, json_string("y"));
    assert_int_equal(simple_err_json(o), RT_E2BIG);
    assert_string_equal(err_buf, "filters: more than 256 values");

    /* query: pairs */
    rt_filter_pair_t pairs[RT_FILTER_MAX_VALUES + 1];
    for (int i = 0; i < RT_FILTER_MAX_VALUES + 1; i++)
        pairs[i] = (rt_filter_pair_t){i % 2 ? "severity" : "status", "v"};
    assert_int_equal(query_err(pairs, RT_FILTER_MAX_VALUES), 0);
    assert_int_equal(query_err(pairs, RT_FILTER_MAX_VALUES + 1), RT_E2BIG);
    assert_string_equal(err_buf, "filter: more than 256 values");

    /* tree: vals of all leaves together, plus each val */
    json_t *vals = json_array();
    for (int i = 0; i < RT_FILTER_MAX_VALUES - 1; i++)
        json_array_append_new(vals, json_sprintf("v%d", i));
    json_t *t = json_pack("{s:s,s:[{s:s,s:s,s:O},{s:s,s:s,s:s}]}", "op", "or", "nodes", "key", "a", "cmp", "in", "vals", vals,
                          "key", "b", "cmp", "eq", "val", "x");
    assert_non_null(t);
    assert_int_equal(tree_err_json(json_incref(t)), 0);
    json_array_append_new(vals, json_string("one more"));
    assert_int_equal(tree_err_json(t), RT_E2BIG);
    assert_string_equal(err_buf, "filter: more than 256 values");
    json_decref(vals);
}

static void test_bound_value_len(void **state)
{
    char *ok = repeat('v', RT_FILTER_MAX_VALUE_LEN), *big = repeat('v', RT_FILTER_MAX_VALUE_LEN + 1);

    assert_int_equal(simple_err_json(json_pack("{s:s}", "severity", ok)), 0);
    assert_int_equal(simple_err_json(json_pack("{s:[s,s]}", "severity", "x", big)), RT_E2BIG);
    assert_string_equal(err_buf, "filters.severity: value longer than 1024 bytes");

    rt_filter_pair_t p = {"severity", ok};
    assert_int_equal(query_err(&p, 1), 0);
    p.value = big;
    assert_int_equal(query_err(&p, 1), RT_E2BIG);
    assert_string_equal(err_buf, "filter.severity: value longer than 1024 bytes");

    assert_int_equal(tree_err_json(json_pack("{s:s,s:s,s:s}", "key", "a", "cmp", "ct", "val", ok)), 0);
    assert_int_equal(tree_err_json(json_pack("{s:s,s:s,s:s}", "key", "a", "cmp", "ct", "val", big)), RT_E2BIG);
    assert_string_equal(err_buf, "filter: value longer than 1024 bytes");
    assert_int_equal(tree_err_json(json_pack("{s:s,s:s,s:[s]}", "key", "a", "cmp", "nin", "vals", big)), RT_E2BIG);

    /* keys: the same bound, in every form */
    assert_int_equal(simple_err_json(json_pack("{s:s}", ok, "x")), 0);
    assert_int_equal(simple_err_json(json_pack("{s:s}", big, "x")), RT_E2BIG);
    assert_string_equal(err_buf, "filters: key longer than 1024 bytes");
    p = (rt_filter_pair_t){big, "x"};
    assert_int_equal(query_err(&p, 1), RT_E2BIG);
    assert_int_equal(tree_err_json(json_pack("{s:s,s:s}", "key", big, "cmp", "ex")), RT_E2BIG);
    assert_string_equal(err_buf, "filter: key longer than 1024 bytes");
    free(ok);
    free(big);
}

static void test_bound_key_segments(void **state)
{
    const char *eight = "a.b.c.d.e.f.g.h", *nine = "a.b.c.d.e.f.g.h.i";
    assert_int_equal(simple_err_json(json_pack("{s:s}", eight, "x")), 0);
    assert_int_equal(simple_err_json(json_pack("{s:s}", nine, "x")), RT_E2BIG);
    assert_string_equal(err_buf, "filters: key \"a.b.c.d.e.f.g.h.i\" has more than 8 segments");
    rt_filter_pair_t p = {nine, "x"};
    assert_int_equal(query_err(&p, 1), RT_E2BIG);
    assert_int_equal(tree_err_json(json_pack("{s:s,s:s}", "key", nine, "cmp", "ex")), RT_E2BIG);

    /* an eight-segment path really resolves */
    rt_event_t e = ev;
    e.data = J("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":\"deep\"}}}}}}}}");
    assert_true(matches_on(query(eight, "deep", NULL), &e));
    assert_false(matches_on(query(eight, "shallow", NULL), &e));
    json_decref(e.data);
}

/* A chain of `not`s `levels` deep around one leaf. */
static json_t *not_chain(int levels)
{
    json_t *n = json_pack("{s:s,s:s}", "key", "missing", "cmp", "ex");
    for (int i = 1; i < levels; i++)
        n = json_pack("{s:s,s:[o]}", "op", "not", "nodes", n);
    return n;
}

static void test_bound_depth(void **state)
{
    json_t *j = not_chain(RT_FILTER_MAX_DEPTH);
    rt_filter_t *f = NULL;
    assert_int_equal(rt_filter_compile_tree(j, &f, NULL, 0), 0);
    assert_true(rt_filter_match(f, &ev)); /* seven nots around false: true */
    rt_filter_free(f);
    json_decref(j);

    assert_int_equal(tree_err_json(not_chain(RT_FILTER_MAX_DEPTH + 1)), RT_E2BIG);
    assert_string_equal(err_buf, "filter.nodes[0].nodes[0].nodes[0].nodes[0].nodes[0].nodes[0].nodes[0].nodes[0]: "
                                 "nested deeper than 8 levels");
    assert_int_equal(tree_err_json(not_chain(1000)), RT_E2BIG);
}

static void test_bound_nodes(void **state)
{
    /* an OR over 127 leaves is 128 nodes */
    json_t *nodes = json_array();
    for (int i = 0; i < RT_FILTER_MAX_NODES - 1; i++)
        json_array_append_new(nodes, json_pack("{s:s,s:s}", "key", "missing", "cmp", "ex"));
    json_t *t = json_pack("{s:s,s:O}", "op", "or", "nodes", nodes);
    rt_filter_t *f = NULL;
    assert_int_equal(rt_filter_compile_tree(t, &f, NULL, 0), 0);
    assert_false(rt_filter_match(f, &ev));
    rt_filter_free(f);
    json_decref(t);

    json_array_append_new(nodes, json_pack("{s:s,s:s}", "key", "ok", "cmp", "ex"));
    assert_int_equal(tree_err_json(json_pack("{s:s,s:O}", "op", "or", "nodes", nodes)), RT_E2BIG);
    assert_string_equal(err_buf, "filter: more than 128 nodes");

    /* spread over levels: and(or(64 leaves), or(64 leaves)) is 131 nodes */
    json_t *half = json_array();
    for (int i = 0; i < 64; i++)
        json_array_append_new(half, json_pack("{s:s,s:s}", "key", "a", "cmp", "ex"));
    t = json_pack("{s:s,s:[{s:s,s:O},{s:s,s:O}]}", "op", "and", "nodes", "op", "or", "nodes", half, "op", "or", "nodes", half);
    assert_int_equal(tree_err_json(t), RT_E2BIG);
    assert_string_equal(err_buf, "filter: more than 128 nodes");
    json_decref(half);
    json_decref(nodes);
}

/* ---- concurrency: one filter, one event, many threads ---- */

static rt_filter_t *shared_filter;

static void *match_many(void *arg)
{
    long bad = 0;
    for (int i = 0; i < 20000; i++)
        bad += !rt_filter_match(shared_filter, &ev);
    return (void *)bad;
}

static void test_threads(void **state)
{
    shared_filter =
        rt_filter_and(tree("{\"op\":\"and\",\"nodes\":[{\"key\":\"type\",\"cmp\":\"sw\",\"val\":\"incident.\"},"
                           "{\"key\":\"ratio\",\"cmp\":\"eq\",\"val\":\"0.1\"},{\"key\":\"count\",\"cmp\":\"gt\",\"val\":\"9\"}]}"),
                      query("service.team", "core", "score", "2.5", NULL));
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, match_many, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *bad;
        pthread_join(th[i], &bad);
        assert_int_equal((long)bad, 0);
    }
    rt_filter_free(shared_filter);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_matches_all),
        cmocka_unit_test(test_simple_match),
        cmocka_unit_test(test_simple_types),
        cmocka_unit_test(test_simple_absent),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_tree_eq_neq),
        cmocka_unit_test(test_tree_in_nin),
        cmocka_unit_test(test_tree_ex_nex),
        cmocka_unit_test(test_tree_sw_ew_ct),
        cmocka_unit_test(test_tree_numeric),
        cmocka_unit_test(test_tree_logic),
        cmocka_unit_test(test_and),
        cmocka_unit_test(test_number_text),
        cmocka_unit_test(test_simple_malformed),
        cmocka_unit_test(test_tree_malformed),
        cmocka_unit_test(test_query_malformed),
        cmocka_unit_test(test_bound_keys),
        cmocka_unit_test(test_bound_values),
        cmocka_unit_test(test_bound_value_len),
        cmocka_unit_test(test_bound_key_segments),
        cmocka_unit_test(test_bound_depth),
        cmocka_unit_test(test_bound_nodes),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
