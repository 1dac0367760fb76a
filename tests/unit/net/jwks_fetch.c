/*
 * token_jwks_url: which URLs the fetcher takes and what it makes of them (host, port, path, IP or name for the
 * certificate check), and that a fetcher whose server is unreachable starts, logs and stops promptly without keys.
 * Fetching over TLS, refresh and keeping keys on a failure are in tests/e2e/tokens.test.js.
 */
#include "net/jwks_fetch.c" /* first: cmocka defines a fail() macro */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static void test_urls(void **state)
{
    static const struct {
        const char *url, *host, *port, *path;
        bool ip;
    } good[] = {
        {"https://idp.example.com/.well-known/jwks.json", "idp.example.com", "443", "/.well-known/jwks.json", false},
        {"https://idp.example.com", "idp.example.com", "443", "/", false},
        {"https://127.0.0.1:8443/keys?v=2#frag", "127.0.0.1", "8443", "/keys?v=2", true},
        {"https://[::1]:9443/k", "::1", "9443", "/k", true},
        {"https://[::1]", "::1", "443", "/", true},
    };
    for (size_t i = 0; i < RT_ARRAY_SIZE(good); i++) {
        rt_jwks_fetch_t f = {0};
        char err[128];
        if (parse_url(&f, good[i].url, err, sizeof(err)) != 0)
            fail_msg("%s: %s", good[i].url, err);
        assert_string_equal(f.host, good[i].host);
        assert_string_equal(f.port, good[i].port);
        assert_string_equal(f.path, good[i].path);
        assert_int_equal(f.host_is_ip, good[i].ip);
        free(f.path);
    }
    static const struct {
        const char *url, *err;
    } bad[] = {
        {"http://idp.example.com/jwks", "token_jwks_url: must be an https:// URL"},
        {"https://user:pw@idp.example.com/jwks", "token_jwks_url: user information is not supported"},
        {"https:///jwks", "token_jwks_url: missing or too long host"},
        {"https://idp.example.com:/jwks", "token_jwks_url: bad port"},
        {"https://idp.example.com:44x3/jwks", "token_jwks_url: bad port"},
        {"https://idp.example.com:123456/jwks", "token_jwks_url: bad port"},
        {"https://[::1/jwks", "token_jwks_url: bad [IPv6 address]"},
        {"https://[::1]x/jwks", "token_jwks_url: bad [IPv6 address]"},
    };
    for (size_t i = 0; i < RT_ARRAY_SIZE(bad); i++) {
        rt_jwks_fetch_t f = {0};
        char err[128] = "";
        assert_int_equal(parse_url(&f, bad[i].url, err, sizeof(err)), -1);
        assert_string_equal(err, bad[i].err);
        assert_null(f.path);
    }
}

/* Nothing listens on port 1: the first fetch fails at once, start returns, and stop ends the retry wait. */
static void test_unreachable(void **state)
{
    rt_token_verifier_t *v = NULL;
    char err[256];
    assert_int_equal(rt_token_verifier_new(&(rt_token_config_t){0}, &v, err, sizeof(err)), 0);
    int64_t t0 = rt_clock_mono_ms();
    rt_jwks_fetch_t *f = rt_jwks_fetch_start("https://127.0.0.1:1/jwks", 300, v, err, sizeof(err));
    assert_non_null(f);
    assert_false(rt_token_verifier_has_keys(v));
    rt_jwks_fetch_stop(f);
    /* Well before the retry (RT_JWKS_RETRY_S): stop cut the wait short. Not tighter: under valgrind on a busy
     * machine, setting up TLS alone has taken 2 s. */
    assert_true(rt_clock_mono_ms() - t0 < (int64_t)(RT_JWKS_RETRY_S * 1000) * 8 / 10);
    assert_null(rt_jwks_fetch_start("http://127.0.0.1/jwks", 300, v, err, sizeof(err)));
    assert_string_equal(err, "token_jwks_url: must be an https:// URL");
    rt_token_verifier_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
