/*
 * Client JWTs: sign/verify round trip, expiry, nbf and leeway, bad signatures, claim types; every algorithm with its
 * key (RSA and EC keys made here, JWKS documents built here); "none", key-kind confusion, kid selection, aud and
 * iss, and JWKS replacement (kept on a bad document, and concurrent with verification).
 */
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
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
#include <unistd.h>
#include <openssl/hmac.h>
#include <stdatomic.h>
#include "realtime/error.h"
#include "core/token.h"
#include "util/mem.h"

#define NOW 1800000000LL
#define SECRET "0123456789abcdef0123456789abcdef"

static char err[256];
static rt_token_verifier_t *hs; /* SECRET only */

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

static rt_token_verifier_t *new_verifier(const rt_token_config_t *cfg)
{
    rt_token_verifier_t *v = NULL;
    if (rt_token_verifier_new(cfg, &v, err, sizeof(err)) != 0)
        fail_msg("verifier: %s", err);
    return v;
}

static int verify(const char *token, rt_token_claims_t *c)
{
    err[0] = '\0';
    return rt_token_verify(hs, token, NOW, c, err, sizeof(err));
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
    rt_token_verifier_t *other = new_verifier(&(rt_token_config_t){.secret = "another secret"});
    assert_int_equal(rt_token_verify(other, token, NOW, &out, err, sizeof(err)), RT_EINVAL);
    assert_string_equal(err, "bad token signature");
    rt_token_claims_free(&out);
    rt_token_verifier_free(other);
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
    assert_int_equal(rt_token_verify(hs, token, NOW - 1, &out, err, sizeof(err)), 0);
    rt_token_claims_free(&out);
    free(token);

    in.exp = 0;
    in.nbf = NOW + 30;
    assert_int_equal(rt_token_sign(SECRET, &in, &token), 0);
    assert_int_equal(verify(token, &out), RT_EINVAL);
    assert_string_equal(err, "token not valid yet");
    rt_token_claims_free(&out);
    assert_int_equal(rt_token_verify(hs, token, NOW + 30, &out, err, sizeof(err)), 0);
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

static void test_hmac_algorithms(void **state)
{
    rt_token_claims_t out;
    char *token = sign_raw(JWT_ALG_NONE, NULL, "{\"sub\":\"mallory\",\"admin\":true}");
    assert_int_equal(token[strlen(token) - 1], '.'); /* unsigned */
    assert_int_equal(verify(token, &out), RT_EINVAL);
    assert_string_equal(err, "unsupported token algorithm \"none\"");
    assert_false(out.admin);
    rt_token_claims_free(&out);
    free(token);

    static const jwt_alg_t hmacs[] = {JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512};
    for (size_t i = 0; i < 3; i++) {
        token = sign_raw(hmacs[i], SECRET, "{\"sub\":\"alice\"}");
        assert_int_equal(verify(token, &out), 0);
        assert_string_equal(out.sub, "alice");
        rt_token_claims_free(&out);
        free(token);
    }
    token = sign_raw(JWT_ALG_HS512, "not the secret", "{\"sub\":\"alice\"}");
    assert_int_equal(verify(token, &out), RT_EINVAL);
    assert_string_equal(err, "bad token signature");
    rt_token_claims_free(&out);
    free(token);
}

static void test_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.e30.sig",
        "e30.e30.",
        "..",
        "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.x",
        "W10.e30.c2ln",                                    /* header [] */
        "eyJhbGciOjF9.e30.c2ln",                           /* alg 1 */
        "e30.e30.c2ln",                                    /* no alg */
        "eyJhbGciOiJIUzI1NiJ9.e30.c2!n",                   /* bad base64 signature */
        "eyJhbGciOiJIUzI1NiJ9.e30.c",                      /* a base64 length that cannot be */
        "eyJhbGciOiJIUzI1NiIsImtpZCI6MX0.e30.c2ln",        /* kid 1 */
        "eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiYiJdfQ.e30.c2ln", /* crit */
    };
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

    /* no secret or key configured: nothing verifies */
    rt_token_claims_t in = {.sub = "alice"};
    char *token = NULL;
    assert_int_equal(rt_token_sign(SECRET, &in, &token), 0);
    rt_token_verifier_t *none = new_verifier(&(rt_token_config_t){.secret = ""});
    assert_false(rt_token_verifier_has_keys(none));
    assert_false(rt_token_verifier_has_keys(NULL));
    assert_int_equal(rt_token_verify(NULL, token, NOW, &out, err, sizeof(err)), RT_EINVAL);
    assert_int_equal(rt_token_verify(none, token, NOW, &out, err, sizeof(err)), RT_EINVAL);
    assert_string_equal(err, "no token secret or key configured or fetched");
    rt_token_claims_free(&out);
    rt_token_verifier_free(none);
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
        {"{\"sub\":\"x\",\"channels\":[\"a\",1]}", "token claim \"channels\" holds something that is not a channel or pattern"},
        {"{\"sub\":\"x\",\"channel\":[]}", "token claim \"channel\" is not a string"},
        {"{\"sub\":\"x\",\"subscribe\":[\"a..b\"]}", "token claim \"subscribe\" holds something that is not a channel or pattern"},
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

/* ---- public keys ---- */

static EVP_PKEY *rsa_key, *rsa_key2, *ec256_key, *ec384_key;
static char rsa_pub_file[64] = "/tmp/rt-token-rsa-XXXXXX", ec256_pub_file[64] = "/tmp/rt-token-ec-XXXXXX";
static char *rsa_pub_pem; /* the PEM text of rsa_key's public half, as an attacker would use it for HMAC */

static char *b64url(const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(n * 4 / 3 + 4), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        if (i + 1 < n)
            *o++ = tab[(v >> 6) & 63];
        if (i + 2 < n)
            *o++ = tab[v & 63];
    }
    *o = '\0';
    return out;
}

static char *pem_text(EVP_PKEY *k, bool private)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_true(private ? PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) : PEM_write_bio_PUBKEY(bio, k));
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

static void write_file(char *path_template, const char *text)
{
    int fd = mkstemp(path_template);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
}

/*
 * A token signed here with OpenSSL, independently of the code under test: RS* and PS* with an RSA key, ES* as raw
 * r || s, HS* with `secret` (any bytes, e.g. a PEM text). header: the JSON header, written as given.
 */
static char *sign_with(const char *header, const char *payload, const char *alg, EVP_PKEY *key, const char *secret)
{
    char *h = b64url((const unsigned char *)header, strlen(header)), *p = b64url((const unsigned char *)payload, strlen(payload));
    size_t data_len = strlen(h) + 1 + strlen(p);
    char *data = malloc(data_len + 1);
    sprintf(data, "%s.%s", h, p);
    const EVP_MD *md = strstr(alg, "256") ? EVP_sha256() : strstr(alg, "384") ? EVP_sha384() : EVP_sha512();
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    if (alg[0] == 'H') {
        unsigned int n = 0;
        assert_non_null(HMAC(md, secret, (int)strlen(secret), (unsigned char *)data, data_len, sig, &n));
        sig_len = n;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx;
        assert_int_equal(EVP_DigestSignInit(ctx, &pctx, md, NULL, key), 1);
        if (alg[0] == 'P') {
            assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0);
            assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0);
        }
        assert_int_equal(EVP_DigestSign(ctx, sig, &sig_len, (unsigned char *)data, data_len), 1);
        EVP_MD_CTX_free(ctx);
        if (alg[0] == 'E') { /* DER to r || s */
            const unsigned char *q = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sig_len);
            int half = strstr(alg, "256") ? 32 : 48;
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, half);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + half, half);
            sig_len = (size_t)(2 * half);
            ECDSA_SIG_free(es);
        }
    }
    char *s64 = b64url(sig, sig_len), *token = malloc(data_len + strlen(s64) + 2);
    sprintf(token, "%s.%s", data, s64);
    free(h), free(p), free(data), free(s64);
    return token;
}

static char *sign_alg(const char *alg, const char *kid, EVP_PKEY *key, const char *payload)
{
    char header[128];
    if (kid != NULL)
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
    else
        snprintf(header, sizeof(header), "{\"alg\":\"%s\"}", alg);
    return sign_with(header, payload, alg, key, SECRET);
}

static char *bn_b64(EVP_PKEY *k, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    unsigned char buf[512];
    int n = pad != 0 ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64url(buf, (size_t)n);
}

/* One JWK for k with the given members (extra: more JSON members, e.g. ",\"alg\":\"RS256\"", or ""). */
static void jwk(char *out, size_t n, EVP_PKEY *k, const char *kid, const char *extra)
{
    if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA) {
        char *nn = bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0), *e = bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0);
        snprintf(out, n, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s}", kid, nn, e, extra);
        free(nn), free(e);
    } else {
        int bits = EVP_PKEY_get_bits(k);
        char *x = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, bits / 8), *y = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, bits / 8);
        snprintf(out, n, "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-%d\",\"x\":\"%s\",\"y\":\"%s\"%s}", kid, bits, x, y, extra);
        free(x), free(y);
    }
}

static int group_setup(void **state)
{
    hs = new_verifier(&(rt_token_config_t){.secret = SECRET});
    rsa_key = EVP_RSA_gen(2048);
    rsa_key2 = EVP_RSA_gen(2048);
    ec256_key = EVP_EC_gen("P-256");
    ec384_key = EVP_EC_gen("P-384");
    assert_true(rsa_key && rsa_key2 && ec256_key && ec384_key);
    rsa_pub_pem = pem_text(rsa_key, false);
    write_file(rsa_pub_file, rsa_pub_pem);
    char *ec = pem_text(ec256_key, false);
    write_file(ec256_pub_file, ec);
    free(ec);
    return 0;
}

static int group_teardown(void **state)
{
    rt_token_verifier_free(hs);
    EVP_PKEY_free(rsa_key), EVP_PKEY_free(rsa_key2), EVP_PKEY_free(ec256_key), EVP_PKEY_free(ec384_key);
    unlink(rsa_pub_file), unlink(ec256_pub_file);
    free(rsa_pub_pem);
    return 0;
}

static void expect(rt_token_verifier_t *v, const char *token, int want, const char *want_err)
{
    rt_token_claims_t out;
    int r = rt_token_verify(v, token, NOW, &out, err, sizeof(err));
    if (r != want)
        fail_msg("verify gave %d (%s), wanted %d", r, err, want);
    if (want_err != NULL)
        assert_string_equal(err, want_err);
    rt_token_claims_free(&out);
}

static void test_every_public_alg(void **state)
{
    char keys[16384], a[4096], b[4096];
    jwk(a, sizeof(a), rsa_key, "r1", "");
    jwk(b, sizeof(b), ec384_key, "e384", ",\"use\":\"sig\",\"alg\":\"ES384\"");
    snprintf(keys, sizeof(keys), "{\"keys\":[%s,%s]}", a, b);
    rt_token_verifier_t *pem = new_verifier(&(rt_token_config_t){.public_key_file = rsa_pub_file});
    rt_token_verifier_t *ec = new_verifier(&(rt_token_config_t){.public_key_file = ec256_pub_file});
    rt_token_verifier_t *jwks = new_verifier(&(rt_token_config_t){0});
    assert_false(rt_token_verifier_has_keys(jwks));
    assert_int_equal(rt_token_verifier_set_jwks(jwks, keys, strlen(keys), err, sizeof(err)), 0);
    assert_true(rt_token_verifier_has_keys(jwks) && rt_token_verifier_has_keys(pem));
    static const char *const rsa_algs[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"};
    for (size_t i = 0; i < RT_ARRAY_SIZE(rsa_algs); i++) {
        char *t = sign_alg(rsa_algs[i], NULL, rsa_key, "{\"sub\":\"alice\"}");
        expect(pem, t, 0, NULL);
        expect(jwks, t, 0, NULL); /* no kid: the RSA key of the set */
        expect(ec, t, RT_EINVAL, NULL);
        free(t);
        t = sign_alg(rsa_algs[i], "r1", rsa_key, "{\"sub\":\"alice\"}");
        expect(jwks, t, 0, NULL);
        free(t);
        t = sign_alg(rsa_algs[i], NULL, rsa_key2, "{\"sub\":\"alice\"}"); /* someone else's key */
        expect(pem, t, RT_EINVAL, "bad token signature");
        free(t);
    }
    char *t = sign_alg("ES256", NULL, ec256_key, "{\"sub\":\"bob\"}");
    expect(ec, t, 0, NULL);
    expect(pem, t, RT_EINVAL, "no key configured for token algorithm ES256");  /* an RSA key only */
    expect(jwks, t, RT_EINVAL, "no key configured for token algorithm ES256"); /* P-384 is not ES256's curve */
    free(t);
    t = sign_alg("ES384", "e384", ec384_key, "{\"sub\":\"bob\"}");
    expect(jwks, t, 0, NULL);
    free(t);
    t = sign_alg("ES384", NULL, ec384_key, "{\"sub\":\"bob\"}");
    expect(jwks, t, 0, NULL);
    free(t);
    /* libjwt's signatures (what `realtime token --key` makes) verify too */
    char *priv = pem_text(ec384_key, true), *token = NULL;
    rt_token_claims_t in = {.sub = "carol", .admin = true}, out;
    assert_int_equal(rt_token_sign_with(&(rt_token_signing_t){.key_pem = priv, .kid = "e384"}, &in, &token, err, sizeof(err)), 0);
    assert_int_equal(rt_token_verify(jwks, token, NOW, &out, err, sizeof(err)), 0);
    assert_true(out.admin);
    rt_token_claims_free(&out);
    free(token);
    free(priv);
    rt_token_verifier_free(pem);
    rt_token_verifier_free(ec);
    rt_token_verifier_free(jwks);
}

static void test_key_confusion(void **state)
{
    /* HS256 with the public key's PEM text as the secret: the classic RS-to-HS downgrade */
    char *forged = sign_with("{\"alg\":\"HS256\"}", "{\"sub\":\"mallory\",\"admin\":true}", "HS256", NULL, rsa_pub_pem);
    rt_token_verifier_t *pem = new_verifier(&(rt_token_config_t){.public_key_file = rsa_pub_file});
    expect(pem, forged, RT_EINVAL, "HS256 token but no token secret configured");
    rt_token_verifier_t *both = new_verifier(&(rt_token_config_t){.secret = SECRET, .public_key_file = rsa_pub_file});
    expect(both, forged, RT_EINVAL, "bad token signature");
    free(forged);

    /* an RS token whose kid names an EC key, and JWKs whose alg or use disagree */
    char keys[16384], a[4096], b[4096], c[4096];
    jwk(a, sizeof(a), ec256_key, "ec", "");
    jwk(b, sizeof(b), rsa_key, "only384", ",\"alg\":\"RS384\"");
    jwk(c, sizeof(c), rsa_key2, "enc", ",\"use\":\"enc\"");
    snprintf(keys, sizeof(keys), "{\"keys\":[%s,%s,%s]}", a, b, c);
    rt_token_verifier_t *jwks = new_verifier(&(rt_token_config_t){0});
    assert_int_equal(rt_token_verifier_set_jwks(jwks, keys, strlen(keys), err, sizeof(err)), 0);
    char *t = sign_alg("RS256", "ec", rsa_key, "{\"sub\":\"x\"}");
    expect(jwks, t, RT_EINVAL, "token key \"ec\" refused: the key is EC, the algorithm is not");
    free(t);
    t = sign_alg("RS256", "only384", rsa_key, "{\"sub\":\"x\"}");
    expect(jwks, t, RT_EINVAL, "token key \"only384\" refused: the key is for another algorithm");
    free(t);
    t = sign_alg("RS384", "only384", rsa_key, "{\"sub\":\"x\"}");
    expect(jwks, t, 0, NULL);
    free(t);
    t = sign_alg("RS256", "enc", rsa_key2, "{\"sub\":\"x\"}");
    expect(jwks, t, RT_EINVAL, "token key \"enc\" refused: the key is not a signing key");
    free(t);
    t = sign_alg("RS256", NULL, rsa_key2, "{\"sub\":\"x\"}"); /* no kid: the encryption key is not tried either */
    expect(jwks, t, RT_EINVAL, "no key configured for token algorithm RS256");
    free(t);
    /* an ES256 signature presented as ES384 */
    t = sign_alg("ES256", "ec", ec256_key, "{\"sub\":\"x\"}");
    char *dot = strchr(t, '.');
    char *h = b64url((const unsigned char *)"{\"alg\":\"ES384\",\"kid\":\"ec\"}", 26), *relabelled = malloc(strlen(t) + 64);
    sprintf(relabelled, "%s%s", h, dot);
    expect(jwks, relabelled, RT_EINVAL, "token key \"ec\" refused: the key's curve does not match the algorithm");
    free(h), free(relabelled), free(t);
    rt_token_verifier_free(pem);
    rt_token_verifier_free(both);
    rt_token_verifier_free(jwks);
}

static void test_kid(void **state)
{
    char keys[16384], a[4096], b[4096];
    jwk(a, sizeof(a), rsa_key, "one", "");
    jwk(b, sizeof(b), rsa_key2, "two", "");
    snprintf(keys, sizeof(keys), "{\"keys\":[%s,%s]}", a, b);
    rt_token_verifier_t *v = new_verifier(&(rt_token_config_t){0});
    assert_int_equal(rt_token_verifier_set_jwks(v, keys, strlen(keys), err, sizeof(err)), 0);
    char *t = sign_alg("RS256", "two", rsa_key, "{\"sub\":\"x\"}"); /* signed by one, labelled two */
    expect(v, t, RT_EINVAL, "bad token signature");
    free(t);
    t = sign_alg("RS256", "three", rsa_key, "{\"sub\":\"x\"}");
    expect(v, t, RT_EINVAL, "unknown token key id \"three\"");
    free(t);
    t = sign_alg("RS256", NULL, rsa_key2, "{\"sub\":\"x\"}"); /* no kid: both keys are tried */
    expect(v, t, 0, NULL);
    free(t);
    /* a PEM key has no kid: with one configured, an unknown kid falls back to it */
    rt_token_verifier_t *pem = new_verifier(&(rt_token_config_t){.public_key_file = rsa_pub_file});
    t = sign_alg("RS256", "whatever", rsa_key, "{\"sub\":\"x\"}");
    expect(pem, t, 0, NULL);
    free(t);
    rt_token_verifier_free(pem);
    rt_token_verifier_free(v);
}

static void test_audience_issuer(void **state)
{
    rt_token_verifier_t *v = new_verifier(
        &(rt_token_config_t){.public_key_file = rsa_pub_file, .audience = "realtime", .issuer = "https://idp.example/"});
    static const struct {
        const char *payload;
        int ret;
        const char *err;
    } cases[] = {
        {"{\"aud\":\"realtime\",\"iss\":\"https://idp.example/\"}", 0, NULL},
        {"{\"aud\":[\"other\",\"realtime\"],\"iss\":\"https://idp.example/\"}", 0, NULL},
        {"{\"aud\":\"other\",\"iss\":\"https://idp.example/\"}", RT_EINVAL, "token audience does not match"},
        {"{\"aud\":[\"other\",5],\"iss\":\"https://idp.example/\"}", RT_EINVAL, "token audience does not match"},
        {"{\"iss\":\"https://idp.example/\"}", RT_EINVAL, "token has no aud"},
        {"{\"aud\":\"realtime\",\"iss\":\"https://evil.example/\"}", RT_EINVAL, "token issuer does not match"},
        {"{\"aud\":\"realtime\"}", RT_EINVAL, "token has no iss"},
    };
    for (size_t i = 0; i < RT_ARRAY_SIZE(cases); i++) {
        char *t = sign_alg("RS256", NULL, rsa_key, cases[i].payload);
        expect(v, t, cases[i].ret, cases[i].err);
        free(t);
    }
    rt_token_verifier_free(v);
    /* not configured: not checked */
    char *t = sign_alg("HS256", NULL, NULL, "{\"aud\":\"anything\",\"iss\":\"anyone\"}");
    expect(hs, t, 0, NULL);
    free(t);
}

static void test_leeway(void **state)
{
    rt_token_verifier_t *v = new_verifier(&(rt_token_config_t){.secret = SECRET, .leeway_s = 10});
    char payload[128], *t;
    snprintf(payload, sizeof(payload), "{\"exp\":%lld}", NOW - 9);
    t = sign_alg("HS256", NULL, NULL, payload);
    expect(v, t, 0, NULL);
    expect(hs, t, RT_ERANGE, "token expired");
    free(t);
    snprintf(payload, sizeof(payload), "{\"exp\":%lld}", NOW - 10);
    t = sign_alg("HS256", NULL, NULL, payload);
    expect(v, t, RT_ERANGE, "token expired");
    free(t);
    snprintf(payload, sizeof(payload), "{\"nbf\":%lld}", NOW + 10);
    t = sign_alg("HS256", NULL, NULL, payload);
    expect(v, t, 0, NULL);
    expect(hs, t, RT_EINVAL, "token not valid yet");
    free(t);
    t = sign_alg("HS256", NULL, NULL, "{\"exp\":9223372036854775807}"); /* no overflow with the leeway (UBSan) */
    expect(v, t, 0, NULL);
    free(t);
    snprintf(payload, sizeof(payload), "{\"nbf\":%lld}", NOW + 11);
    t = sign_alg("HS256", NULL, NULL, payload);
    expect(v, t, RT_EINVAL, "token not valid yet");
    free(t);
    rt_token_verifier_free(v);
}

static void test_jwks_swap(void **state)
{
    char one[16384], two[16384], a[4096];
    jwk(a, sizeof(a), rsa_key, "a", "");
    snprintf(one, sizeof(one), "{\"keys\":[%s,{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", a); /* oct keys are skipped */
    jwk(a, sizeof(a), rsa_key2, "b", "");
    snprintf(two, sizeof(two), "{\"keys\":[%s]}", a);
    rt_token_verifier_t *v = new_verifier(&(rt_token_config_t){0});
    char *ta = sign_alg("RS256", "a", rsa_key, "{\"sub\":\"x\"}"), *tb = sign_alg("RS256", "b", rsa_key2, "{\"sub\":\"x\"}");
    assert_int_equal(rt_token_verifier_set_jwks(v, one, strlen(one), err, sizeof(err)), 0);
    expect(v, ta, 0, NULL);
    expect(v, tb, RT_EINVAL, "unknown token key id \"b\"");
    assert_int_equal(rt_token_verifier_set_jwks(v, two, strlen(two), err, sizeof(err)), 0);
    expect(v, ta, RT_EINVAL, "unknown token key id \"a\"");
    expect(v, tb, 0, NULL);

    static const struct {
        const char *doc, *err;
    } bad[] = {
        {"<html>", "not JSON: line 1: '[' or '{' expected near '<'"},
        {"{\"keys\":{}}", "not a JWK set (no \"keys\" array)"},
        {"{\"keys\":[]}", "no RSA or EC key in the set"},
        {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", "no RSA or EC key in the set"},
        {"{\"keys\":[{\"n\":\"AQAB\"}]}", "key 0: no \"kty\""},
        {"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
         "key 0 (kid \"k\"): RSA key of 17 bits (at least 2048 needed)"},
        {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}", "key 0: bad \"n\" or \"e\""},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
         "key 0: bad \"crv\" (P-256, P-384), \"x\" or \"y\""},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
         "key 0: bad \"crv\" (P-256, P-384), \"x\" or \"y\""},
        {"{\"keys\":[{\"kty\":\"RSA\",\"kid\":7}]}", "key 0: \"kid\", \"alg\" and \"use\" must be strings"},
    };
    for (size_t i = 0; i < RT_ARRAY_SIZE(bad); i++) {
        assert_int_equal(rt_token_verifier_set_jwks(v, bad[i].doc, strlen(bad[i].doc), err, sizeof(err)), RT_EINVAL);
        assert_string_equal(err, bad[i].err);
        expect(v, tb, 0, NULL); /* the old set stays */
    }
    /* a point not on the curve */
    char *x = bn_b64(ec256_key, OSSL_PKEY_PARAM_EC_PUB_X, 32), off[512];
    snprintf(off, sizeof(off), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}", x, x);
    assert_int_equal(rt_token_verifier_set_jwks(v, off, strlen(off), err, sizeof(err)), RT_EINVAL);
    free(x);
    free(ta);
    free(tb);
    rt_token_verifier_free(v);
}

typedef struct st_race_t {
    rt_token_verifier_t *v;
    const char *token;
    atomic_int failures;
} race_t;

static void *verify_loop(void *arg)
{
    race_t *r = arg;
    char e[128];
    for (int i = 0; i < 300; i++) {
        rt_token_claims_t out;
        if (rt_token_verify(r->v, r->token, NOW, &out, e, sizeof(e)) != 0)
            atomic_fetch_add(&r->failures, 1);
        rt_token_claims_free(&out);
    }
    return NULL;
}

/* Verifications keep working (and ASan sees no use after free) while the set is replaced under them. */
static void test_jwks_swap_concurrent(void **state)
{
    char doc[2][16384], a[4096], b[4096];
    jwk(a, sizeof(a), ec256_key, "k", "");
    jwk(b, sizeof(b), rsa_key2, "other", "");
    snprintf(doc[0], sizeof(doc[0]), "{\"keys\":[%s]}", a);
    snprintf(doc[1], sizeof(doc[1]), "{\"keys\":[%s,%s]}", b, a);
    race_t r = {.v = new_verifier(&(rt_token_config_t){0})};
    assert_int_equal(rt_token_verifier_set_jwks(r.v, doc[0], strlen(doc[0]), err, sizeof(err)), 0);
    char *t = sign_alg("ES256", "k", ec256_key, "{\"sub\":\"x\"}");
    r.token = t;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, verify_loop, &r);
    for (int i = 0; i < 200; i++)
        assert_int_equal(rt_token_verifier_set_jwks(r.v, doc[i & 1], strlen(doc[i & 1]), err, sizeof(err)), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r.failures), 0);
    free(t);
    rt_token_verifier_free(r.v);
}

static void test_config_files(void **state)
{
    rt_token_verifier_t *v = (rt_token_verifier_t *)1;
    assert_int_equal(rt_token_verifier_new(&(rt_token_config_t){.public_key_file = "/nonexistent.pem"}, &v, err, sizeof(err)),
                     RT_EINVAL);
    assert_null(v);
    assert_string_equal(err, "/nonexistent.pem: cannot read: No such file or directory");
    char junk[64] = "/tmp/rt-token-junk-XXXXXX";
    write_file(junk, "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n");
    assert_int_equal(rt_token_verifier_new(&(rt_token_config_t){.public_key_file = junk}, &v, err, sizeof(err)), RT_EINVAL);
    assert_non_null(strstr(err, ": not a PEM public key or certificate"));
    assert_int_equal(rt_token_verifier_new(&(rt_token_config_t){.jwks_file = junk}, &v, err, sizeof(err)), RT_EINVAL);
    assert_true(strncmp(err, junk, strlen(junk)) == 0 && strstr(err, "not JSON") != NULL);
    unlink(junk);

    EVP_PKEY *small = EVP_RSA_gen(1024);
    char *pem = pem_text(small, false), smallf[64] = "/tmp/rt-token-small-XXXXXX";
    write_file(smallf, pem);
    assert_int_equal(rt_token_verifier_new(&(rt_token_config_t){.public_key_file = smallf}, &v, err, sizeof(err)), RT_EINVAL);
    assert_non_null(strstr(err, ": RSA key of 1024 bits (at least 2048 needed)"));
    unlink(smallf);
    free(pem);
    EVP_PKEY_free(small);

    char keys[16384], a[4096], jf[64] = "/tmp/rt-token-jwks-XXXXXX";
    jwk(a, sizeof(a), rsa_key, "f", "");
    snprintf(keys, sizeof(keys), "{\"keys\":[%s]}", a);
    write_file(jf, keys);
    v = new_verifier(&(rt_token_config_t){.jwks_file = jf});
    char *t = sign_alg("RS512", "f", rsa_key, "{\"sub\":\"x\"}");
    expect(v, t, 0, NULL);
    free(t);
    rt_token_verifier_free(v);
    unlink(jf);
}

static void test_sign_with_keys(void **state)
{
    char *rsa = pem_text(rsa_key, true), *ec = pem_text(ec256_key, true), *token = NULL;
    rt_token_claims_t in = {.sub = "dave"}, out;
    char *sub[] = {"incidents.*", "system", NULL};
    in.subscribe = sub;
    in.n_subscribe = 2;
    rt_token_verifier_t *v = new_verifier(&(rt_token_config_t){.public_key_file = rsa_pub_file, .audience = "rt", .issuer = "me"});
    assert_int_equal(
        rt_token_sign_with(&(rt_token_signing_t){.key_pem = rsa, .aud = "rt", .iss = "me"}, &in, &token, err, sizeof(err)), 0);
    assert_non_null(strstr(token, "eyJhbGciOiJSUzI1NiIs")); /* {"alg":"RS256", */
    assert_int_equal(rt_token_verify(v, token, NOW, &out, err, sizeof(err)), 0);
    assert_int_equal(out.n_subscribe, 2);
    assert_string_equal(out.subscribe[0], "incidents.*");
    rt_token_claims_free(&out);
    free(token);
    static const char *const algs[] = {"RS384", "RS512"};
    for (size_t i = 0; i < 2; i++) {
        rt_token_signing_t how = {.key_pem = rsa, .alg = algs[i], .aud = "rt", .iss = "me"};
        assert_int_equal(rt_token_sign_with(&how, &in, &token, err, sizeof(err)), 0);
        assert_int_equal(rt_token_verify(v, token, NOW, &out, err, sizeof(err)), 0);
        rt_token_claims_free(&out);
        free(token);
    }
    rt_token_verifier_free(v);

    v = new_verifier(&(rt_token_config_t){.public_key_file = ec256_pub_file});
    assert_int_equal(rt_token_sign_with(&(rt_token_signing_t){.key_pem = ec}, &in, &token, err, sizeof(err)), 0);
    assert_non_null(strstr(token, "eyJhbGciOiJFUzI1NiIs")); /* {"alg":"ES256", */
    assert_int_equal(rt_token_verify(v, token, NOW, &out, err, sizeof(err)), 0);
    rt_token_claims_free(&out);
    free(token);
    rt_token_verifier_free(v);

    static const struct {
        rt_token_signing_t how;
        const char *err;
    } bad[] = {
        {{.key_pem = "junk"}, "not a PEM private key"},
        {{.alg = "ES256", .key_pem = NULL, .secret = SECRET}, "ES256 needs a private key"},
        {{.alg = "HS384"}, "HS384 needs a secret"},
        {{.alg = "PS256", .secret = SECRET}, "cannot sign with algorithm \"PS256\""},
        {{.alg = "none", .secret = SECRET}, "cannot sign with algorithm \"none\""},
    };
    for (size_t i = 0; i < RT_ARRAY_SIZE(bad); i++) {
        assert_int_equal(rt_token_sign_with(&bad[i].how, &in, &token, err, sizeof(err)), RT_EINVAL);
        assert_null(token);
        assert_string_equal(err, bad[i].err);
    }
    rt_token_signing_t mismatch = {.alg = "ES256", .key_pem = rsa};
    assert_int_equal(rt_token_sign_with(&mismatch, &in, &token, err, sizeof(err)), RT_EINVAL);
    assert_string_equal(err, "ES256: the key is RSA, the algorithm is not");
    free(rsa);
    free(ec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_minimal_claims),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_hmac_algorithms),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_claim_types),
        cmocka_unit_test(test_sign_errors),
        cmocka_unit_test(test_every_public_alg),
        cmocka_unit_test(test_key_confusion),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_audience_issuer),
        cmocka_unit_test(test_leeway),
        cmocka_unit_test(test_jwks_swap),
        cmocka_unit_test(test_jwks_swap_concurrent),
        cmocka_unit_test(test_config_files),
        cmocka_unit_test(test_sign_with_keys),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
