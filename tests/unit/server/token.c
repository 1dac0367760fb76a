/* Client JWTs: sign/verify round trip, expiry and nbf, bad signatures, alg none and other algorithms, claim types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jwt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/error.h"
#include "server/token.h"

#define NOW 1800000000LL
#define SECRET "0123456789abcdef0123456789abcdef"

static char err[256];

/* A token with arbitrary claims JSON and algorithm, made by libjwt directly (what an attacker or a misconfigured
 * issuer could send). */
static char *sign_raw(jwt_alg_t alg, const char *key, const char *claims_json)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, claims_json), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0), 0);
    char *out = jwt_encode_str(jwt);
    assert_non_null(out);
    jwt_free(jwt);
    return out;
}

static int verify(const char *token, rt_token_claims_t *c)
{
    err[0] = '\0';
    return rt_token_verify(SECRET, token, NOW, c, err, sizeof(err));
}

static void test_round_trip(void **state)
{
    char *chans[] = {"incidents", "system", NULL};
    rt_token_claims_t in = {.sub = "alice",
                            .iat = NOW - 10,
                            .exp = NOW + 60,
                            .admin = true,
                            .channels = chans,
                            .n_channels = 2,
                            .info = "{\"name\": \"Alice\", \"team\": [1, 2]}"};
    char *token = NULL;
    assert_int_equal(rt_token_sign(SECRET, &in, &token), 0);
    assert_non_null(token);
    assert_int_equal(strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."), strlen(token));

    rt_token_claims_t out;
    assert_int_equal(verify(token, &out), 0);
    assert_string_equal(out.sub, "alice");
    assert_int_equal(out.exp, NOW + 60);
    assert_int_equal(out.iat, NOW - 10);
    assert_int_equal(out.nbf, 0);
    assert_true(out.admin);
    assert_int_equal(out.n_channels, 2);
    assert_string_equal(out.channels[0], "incidents");
    assert_string_equal(out.channels[1], "system");
    assert_null(out.channels[2]);
    assert_string_equal(out.info, "{\"name\":\"Alice\",\"team\":[1,2]}");
    assert_null(out.channel);
    rt_token_claims_free(&out);
    assert_null(out.sub);

    /* the same token with another secret */
    assert_int_equal(rt_token_verify("another secret", token, NOW, &out, err, sizeof(err)), RT_EINVAL);
    assert_string_equal(err, "bad token signature");
    rt_token_claims_free(&out);
    free(token);
}

static void test_minimal_claims(void **state)
{
    rt_token_claims_t in = {0}, out;
    char *token = NULL;
    assert_int_equal(rt_token_sign(SECRET, &in, &token), 0);
    assert_int_equal(verify(token, &out), 0);
    assert_string_equal(out.sub, ""); /* anonymous */
    assert_int_equal(out.exp, 0);
    assert_false(out.admin);
    assert_null(out.channels);
    assert_null(out.info);
    rt_token_claims_free(&out);
    free(token);

    /* a subscription token's channel claim comes back */
    in.sub = "bob";
    in.channel = "incidents.INC-1";
    assert_int_equal(rt_token_sign(SECRET, &in, &token), 0);
    assert_int_equal(verify(token, &out), 0);
    assert_string_equal(out.channel, "incidents.INC-1");
    rt_token_claims_free(&out);
    free(token);
}

static void test_expiry(void **state)
{
    rt_token_claims_t in = {.sub = "alice", .exp = NOW - 1}, out;
    char *token = NULL;
    assert_int_equal(rt_token_sign(SECRET, &in, &token), 0);
    assert_int_equal(verify(token, &out), RT_ERANGE);
    assert_string_equal(err, "token expired");
    rt_token_claims_free(&out);
    free(token);

    in.exp = NOW; /* exp is the first second the token is no longer valid */
    assert_int_equal(rt_token_sign(SECRET, &in, &token), 0);
    assert_int_equal(verify(token, &out), RT_ERANGE);
    rt_token_claims_free(&out);
    assert_int_equal(rt_token_verify(SECRET, token, NOW - 1, &out, err, sizeof(err)), 0);
    rt_token_claims_free(&out);
    free(token);

    in.exp = 0;
    in.nbf = NOW + 30;
    assert_int_equal(rt_token_sign(SECRET, &in, &token), 0);
    assert_int_equal(verify(token, &out), RT_EINVAL);
    assert_string_equal(err, "token not valid yet");
    rt_token_claims_free(&out);
    assert_int_equal(rt_token_verify(SECRET, token, NOW + 30, &out, err, sizeof(err)), 0);
    rt_token_claims_free(&out);
    free(token);

    /* fractional NumericDate, as some issuers write */
    token = sign_raw(JWT_ALG_HS256, SECRET, "{\"sub\":\"x\",\"exp\":1800000000.5}");
    assert_int_equal(verify(token, &out), RT_ERANGE);
    rt_token_claims_free(&out);
    free(token);
}

static void test_bad_signature(void **state)
{
    rt_token_claims_t a = {.sub = "alice"}, b = {.sub = "mallory", .admin = true}, out;
    char *ta = NULL, *tb = NULL;
    assert_int_equal(rt_token_sign(SECRET, &a, &ta), 0);
    assert_int_equal(rt_token_sign(SECRET, &b, &tb), 0);

    /* mallory's claims with alice's signature */
    char spliced[1024];
    const char *sig_a = strrchr(ta, '.');
    snprintf(spliced, sizeof(spliced), "%.*s%s", (int)(strrchr(tb, '.') - tb), tb, sig_a);
    assert_int_equal(verify(spliced, &out), RT_EINVAL);
    assert_string_equal(err, "bad token signature");
    rt_token_claims_free(&out);

    /* one flipped signature character, and a truncated signature */
    snprintf(spliced, sizeof(spliced), "%s", ta);
    char *last = spliced + strlen(spliced) - 2;
    *last = *last == 'A' ? 'B' : 'A';
    assert_int_equal(verify(spliced, &out), RT_EINVAL);
    rt_token_claims_free(&out);
    snprintf(spliced, sizeof(spliced), "%s", ta);
    spliced[strlen(spliced) - 1] = '\0';
    assert_int_equal(verify(spliced, &out), RT_EINVAL);
    rt_token_claims_free(&out);
    /* no signature at all */
    snprintf(spliced, sizeof(spliced), "%.*s", (int)(sig_a - ta + 1), ta);
    assert_int_equal(verify(spliced, &out), RT_EINVAL);
    rt_token_claims_free(&out);
    free(ta);
    free(tb);
}

static void test_other_algorithms(void **state)
{
    rt_token_claims_t out;
    char *token = sign_raw(JWT_ALG_NONE, NULL, "{\"sub\":\"mallory\",\"admin\":true}");
    assert_int_equal(token[strlen(token) - 1], '.'); /* unsigned */
    assert_int_equal(verify(token, &out), RT_EINVAL);
    assert_string_equal(err, "unsupported token algorithm \"none\" (only HS256)");
    assert_false(out.admin);
    rt_token_claims_free(&out);
    free(token);

    token = sign_raw(JWT_ALG_HS512, SECRET, "{\"sub\":\"alice\"}");
    assert_int_equal(verify(token, &out), RT_EINVAL);
    assert_string_equal(err, "unsupported token algorithm \"HS512\" (only HS256)");
    rt_token_claims_free(&out);
    free(token);

    token = sign_raw(JWT_ALG_HS384, SECRET, "{\"sub\":\"alice\"}");
    assert_int_equal(verify(token, &out), RT_EINVAL);
    rt_token_claims_free(&out);
    free(token);
}

static void test_malformed(void **state)
{
    static const char *const bad[] = {
        "", "abc", "a.b", "a.b.c.d", "!!!.e30.sig", "e30.e30.", "..", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.x"};
    rt_token_claims_t out;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (verify(bad[i], &out) != RT_EINVAL)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_true(err[0] != '\0');
        rt_token_claims_free(&out);
    }
    char *huge = malloc(RT_TOKEN_MAX_LEN + 2);
    memset(huge, 'a', RT_TOKEN_MAX_LEN + 1);
    huge[RT_TOKEN_MAX_LEN + 1] = '\0';
    assert_int_equal(verify(huge, &out), RT_EINVAL);
    assert_string_equal(err, "token too long");
    rt_token_claims_free(&out);
    free(huge);

    /* no secret configured: nothing verifies */
    rt_token_claims_t in = {.sub = "alice"};
    char *token = NULL;
    assert_int_equal(rt_token_sign(SECRET, &in, &token), 0);
    assert_int_equal(rt_token_verify(NULL, token, NOW, &out, err, sizeof(err)), RT_EINVAL);
    assert_int_equal(rt_token_verify("", token, NOW, &out, err, sizeof(err)), RT_EINVAL);
    assert_string_equal(err, "no token secret configured");
    rt_token_claims_free(&out);
    free(token);
}

static void test_claim_types(void **state)
{
    rt_token_claims_t out;
    char *token = sign_raw(JWT_ALG_HS256, SECRET, "{\"sub\":\"x\",\"admin\":\"true\"}");
    assert_int_equal(verify(token, &out), 0);
    assert_false(out.admin); /* only the literal true grants admin */
    rt_token_claims_free(&out);
    free(token);

    token = sign_raw(JWT_ALG_HS256, SECRET, "{\"sub\":\"x\",\"admin\":true}");
    assert_int_equal(verify(token, &out), 0);
    assert_true(out.admin);
    rt_token_claims_free(&out);
    free(token);

    static const struct {
        const char *json, *err;
    } bad[] = {
        {"{\"sub\":5}", "token claim \"sub\" is not a string"},
        {"{\"sub\":\"x\",\"exp\":\"tomorrow\"}", "token claim \"exp\" is not a number"},
        {"{\"sub\":\"x\",\"nbf\":true}", "token claim \"nbf\" is not a number"},
        {"{\"sub\":\"x\",\"channels\":\"a,b\"}", "token claim \"channels\" is not an array"},
        {"{\"sub\":\"x\",\"channels\":[\"a\",1]}", "token claim \"channels\" holds a non-string"},
        {"{\"sub\":\"x\",\"channel\":[]}", "token claim \"channel\" is not a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        token = sign_raw(JWT_ALG_HS256, SECRET, bad[i].json);
        assert_int_equal(verify(token, &out), RT_EINVAL);
        assert_string_equal(err, bad[i].err);
        rt_token_claims_free(&out);
        free(token);
    }
}

static void test_sign_errors(void **state)
{
    rt_token_claims_t in = {.sub = "alice", .info = "{not json"};
    char *token = (char *)1;
    assert_int_equal(rt_token_sign(SECRET, &in, &token), RT_EINVAL);
    assert_null(token);
    in.info = NULL;
    assert_int_equal(rt_token_sign("", &in, &token), RT_EINVAL);
    assert_int_equal(rt_token_sign(NULL, &in, &token), RT_EINVAL);
    assert_null(token);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_minimal_claims),   cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_bad_signature), cmocka_unit_test(test_other_algorithms), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_claim_types),   cmocka_unit_test(test_sign_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
