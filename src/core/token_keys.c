#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "realtime/error.h"
#include "core/token-private.h"
#include "util/mem.h"

/* RFC 7518 section 3.1; ES512 (P-521) is left out as no identity provider we know of issues it. */
static const rt_token_alg_t algs[] = {
    {.name = "HS256", .kind = RT_TOKEN_KEY_HMAC, .md = EVP_sha256},
    {.name = "HS384", .kind = RT_TOKEN_KEY_HMAC, .md = EVP_sha384},
    {.name = "HS512", .kind = RT_TOKEN_KEY_HMAC, .md = EVP_sha512},
    {.name = "RS256", .kind = RT_TOKEN_KEY_RSA, .md = EVP_sha256},
    {.name = "RS384", .kind = RT_TOKEN_KEY_RSA, .md = EVP_sha384},
    {.name = "RS512", .kind = RT_TOKEN_KEY_RSA, .md = EVP_sha512},
    {.name = "PS256", .kind = RT_TOKEN_KEY_RSA, .md = EVP_sha256, .pss = 1},
    {.name = "PS384", .kind = RT_TOKEN_KEY_RSA, .md = EVP_sha384, .pss = 1},
    {.name = "PS512", .kind = RT_TOKEN_KEY_RSA, .md = EVP_sha512, .pss = 1},
    {.name = "ES256", .kind = RT_TOKEN_KEY_EC, .md = EVP_sha256, .ec_bits = 256},
    {.name = "ES384", .kind = RT_TOKEN_KEY_EC, .md = EVP_sha384, .ec_bits = 384},
};

/* JWA requires RSA keys of 2048 bits or more (RFC 7518 section 3.3). */
#define MIN_RSA_BITS 2048

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (errlen != 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return RT_EINVAL;
}

const rt_token_alg_t *rt__token_alg(const char *name)
{
    for (size_t i = 0; i < RT_ARRAY_SIZE(algs); i++)
        if (strcmp(algs[i].name, name) == 0)
            return &algs[i];
    return NULL;
}

/* Fills kind and ec_bits from pkey (which the key takes over on success); refuses what no algorithm here can use. */
static int adopt_pkey(EVP_PKEY *pkey, rt_token_key_t *key, char *err, size_t errlen)
{
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(pkey) < MIN_RSA_BITS)
            return fail(err, errlen, "RSA key of %d bits (at least %d needed)", EVP_PKEY_get_bits(pkey), MIN_RSA_BITS);
        key->kind = RT_TOKEN_KEY_RSA;
    } else if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
        char group[64] = "";
        EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL);
        if (strcmp(group, "prime256v1") == 0)
            key->ec_bits = 256;
        else if (strcmp(group, "secp384r1") == 0)
            key->ec_bits = 384;
        else
            return fail(err, errlen, "EC key on curve %s (only P-256 and P-384)", group[0] != '\0' ? group : "?");
        key->kind = RT_TOKEN_KEY_EC;
    } else {
        return fail(err, errlen, "unsupported key type %s (only RSA and EC)", EVP_PKEY_get0_type_name(pkey));
    }
    key->pkey = pkey;
    return 0;
}

/* "PUBLIC KEY" and "RSA PUBLIC KEY" go through the decoder; identity providers also hand out certificates. */
static EVP_PKEY *read_pem(FILE *f)
{
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL, EVP_PKEY_PUBLIC_KEY, NULL, NULL);
    if (dctx != NULL && !OSSL_DECODER_from_fp(dctx, f))
        pkey = NULL;
    OSSL_DECODER_CTX_free(dctx);
    if (pkey == NULL) {
        rewind(f);
        X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
        pkey = cert != NULL ? X509_get_pubkey(cert) : NULL;
        X509_free(cert);
    }
    return pkey;
}

int rt__token_key_load_pem(const char *path, rt_token_key_t *key, char *err, size_t errlen)
{
    char why[160];
    memset(key, 0, sizeof(*key));
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return fail(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    EVP_PKEY *pkey = read_pem(f);
    fclose(f);
    if (pkey == NULL) {
        ERR_clear_error();
        return fail(err, errlen, "%s: not a PEM public key or certificate", path);
    }
    if (adopt_pkey(pkey, key, why, sizeof(why)) != 0) {
        EVP_PKEY_free(pkey);
        return fail(err, errlen, "%s: %s", path, why);
    }
    return 0;
}

int rt__token_key_read_private(const char *pem, rt_token_key_t *key, char *err, size_t errlen)
{
    memset(key, 0, sizeof(*key));
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (pkey == NULL) {
        ERR_clear_error();
        return fail(err, errlen, "not a PEM private key");
    }
    if (adopt_pkey(pkey, key, err, errlen) != 0) {
        EVP_PKEY_free(pkey);
        return RT_EINVAL;
    }
    return 0;
}

/* A JWK member holding base64url bytes (2048 characters at most: a 12288-bit modulus), or NULL. */
static unsigned char *jwk_bytes(json_t *jwk, const char *name, size_t *len)
{
    json_t *v = json_object_get(jwk, name);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 2048)
        return NULL;
    unsigned char *out = rt_mem_alloc(json_string_length(v) * 3 / 4 + 1);
    long n = rt__token_b64url_decode(json_string_value(v), json_string_length(v), out);
    if (n <= 0) {
        free(out);
        return NULL;
    }
    *len = (size_t)n;
    return out;
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_from_jwk(json_t *jwk)
{
    size_t n_len = 0, e_len = 0;
    unsigned char *n = jwk_bytes(jwk, "n", &n_len), *e = jwk_bytes(jwk, "e", &e_len);
    BIGNUM *bn = n != NULL ? BN_bin2bn(n, (int)n_len, NULL) : NULL, *be = e != NULL ? BN_bin2bn(e, (int)e_len, NULL) : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bn != NULL && be != NULL && bld != NULL && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        pkey = pkey_from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return pkey;
}

/* The public point as an uncompressed SEC1 octet string, 0x04 || x || y; x and y must be exactly the curve's size. */
static EVP_PKEY *ec_from_jwk(json_t *jwk)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    size_t size = crv == NULL ? 0 : strcmp(crv, "P-256") == 0 ? 32 : strcmp(crv, "P-384") == 0 ? 48 : 0;
    size_t x_len = 0, y_len = 0;
    unsigned char *x = jwk_bytes(jwk, "x", &x_len), *y = jwk_bytes(jwk, "y", &y_len), point[1 + 2 * 48];
    EVP_PKEY *pkey = NULL;
    if (size != 0 && x != NULL && y != NULL && x_len == size && y_len == size) {
        point[0] = 0x04;
        memcpy(point + 1, x, size);
        memcpy(point + 1 + size, y, size);
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        if (bld != NULL && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, crv, 0) &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size))
            pkey = pkey_from_params("EC", bld);
        OSSL_PARAM_BLD_free(bld);
    }
    free(x);
    free(y);
    return pkey;
}

static int optional_member(json_t *jwk, const char *name, char **out)
{
    json_t *v = json_object_get(jwk, name);
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = rt_strndup(json_string_value(v), json_string_length(v));
    return 0;
}

/* One RSA or EC JWK (RFC 7517 section 4, RFC 7518 section 6). */
static int key_from_jwk(json_t *jwk, const char *kty, rt_token_key_t *key, char *err, size_t errlen)
{
    char why[160];
    memset(key, 0, sizeof(*key));
    if (optional_member(jwk, "kid", &key->kid) != 0 || optional_member(jwk, "alg", &key->alg) != 0 ||
        optional_member(jwk, "use", &key->use) != 0) {
        rt__token_key_dispose(key);
        return fail(err, errlen, "\"kid\", \"alg\" and \"use\" must be strings");
    }
    EVP_PKEY *pkey = strcmp(kty, "RSA") == 0 ? rsa_from_jwk(jwk) : ec_from_jwk(jwk);
    if (pkey == NULL) {
        rt__token_key_dispose(key);
        return fail(err, errlen, strcmp(kty, "RSA") == 0 ? "bad \"n\" or \"e\"" : "bad \"crv\" (P-256, P-384), \"x\" or \"y\"");
    }
    if (adopt_pkey(pkey, key, why, sizeof(why)) != 0) {
        EVP_PKEY_free(pkey);
        rt__token_key_dispose(key);
        return fail(err, errlen, "%s", why);
    }
    return 0;
}

int rt__token_keyset_parse(const char *json, size_t len, rt_token_keyset_t **out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr), *jwk;
    json_t *keys = json_object_get(doc, "keys");
    size_t i;
    char why[192];
    *out = NULL;
    if (doc == NULL) {
        fail(err, errlen, "not JSON: line %d: %s", jerr.line, jerr.text);
        return RT_EINVAL;
    }
    if (!json_is_array(keys)) {
        json_decref(doc);
        return fail(err, errlen, "not a JWK set (no \"keys\" array)");
    }
    rt_token_keyset_t *set = rt_mem_calloc(1, sizeof(*set) + json_array_size(keys) * sizeof(set->keys[0]));
    atomic_init(&set->refs, 1);
    json_array_foreach(keys, i, jwk)
    {
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        if (kty == NULL) {
            fail(err, errlen, "key %zu: no \"kty\"", i);
            goto Fail;
        }
        if (strcmp(kty, "RSA") != 0 && strcmp(kty, "EC") != 0)
            continue; /* "oct" (a shared secret is never taken from a key set), "OKP" */
        if (key_from_jwk(jwk, kty, &set->keys[set->n], why, sizeof(why)) != 0) {
            const char *kid = json_string_value(json_object_get(jwk, "kid"));
            fail(err, errlen, "key %zu%s%.64s%s: %s", i, kid ? " (kid \"" : "", kid ? kid : "", kid ? "\")" : "", why);
            goto Fail;
        }
        set->n++;
    }
    json_decref(doc);
    if (set->n == 0) {
        rt__token_keyset_release(set);
        return fail(err, errlen, "no RSA or EC key in the set");
    }
    *out = set;
    return 0;
Fail:
    ERR_clear_error();
    json_decref(doc);
    rt__token_keyset_release(set);
    return RT_EINVAL;
}

void rt__token_keyset_retain(rt_token_keyset_t *set)
{
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
}

void rt__token_keyset_release(rt_token_keyset_t *set)
{
    if (set == NULL || atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < set->n; i++)
        rt__token_key_dispose(&set->keys[i]);
    free(set);
}

void rt__token_key_dispose(rt_token_key_t *key)
{
    EVP_PKEY_free(key->pkey);
    free(key->kid);
    free(key->alg);
    free(key->use);
    memset(key, 0, sizeof(*key));
}

const char *rt__token_key_refuses(const rt_token_key_t *key, const rt_token_alg_t *alg)
{
    if (key->kind != alg->kind)
        return key->kind == RT_TOKEN_KEY_RSA ? "the key is RSA, the algorithm is not" : "the key is EC, the algorithm is not";
    if (alg->kind == RT_TOKEN_KEY_EC && key->ec_bits != alg->ec_bits)
        return "the key's curve does not match the algorithm";
    if (key->alg != NULL && strcmp(key->alg, alg->name) != 0)
        return "the key is for another algorithm";
    if (key->use != NULL && strcmp(key->use, "sig") != 0)
        return "the key is not a signing key";
    return NULL;
}

int rt__token_check_hmac(const rt_token_alg_t *alg, const unsigned char *secret, size_t secret_len, const char *data,
                         size_t data_len, const unsigned char *sig, size_t sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(alg->md(), secret, (int)secret_len, (const unsigned char *)data, data_len, mac, &mac_len) == NULL)
        return -1;
    return sig_len == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0 ? 0 : -1;
}

/* JWS carries ECDSA signatures as r || s, each the curve's size (RFC 7518 section 3.4); OpenSSL wants DER. */
static int ecdsa_der(const unsigned char *sig, size_t half, unsigned char **der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
    int len = -1;
    if (es != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* es owns them */
        len = i2d_ECDSA_SIG(es, der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return len;
}

int rt__token_check_pkey(const rt_token_alg_t *alg, const rt_token_key_t *key, const char *data, size_t data_len,
                         const unsigned char *sig, size_t sig_len)
{
    unsigned char *der = NULL;
    if (alg->kind == RT_TOKEN_KEY_EC) {
        size_t half = (size_t)alg->ec_bits / 8;
        int n = sig_len == 2 * half ? ecdsa_der(sig, half, &der) : -1;
        if (n <= 0)
            return -1;
        sig = der, sig_len = (size_t)n;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, &pctx, alg->md(), NULL, key->pkey) == 1;
    /* PS*: MGF1 with the same digest (OpenSSL's default) and a salt as long as the digest (RFC 7518 section 3.5). */
    if (ok && alg->pss)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
    ok = ok && EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)data, data_len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    if (!ok)
        ERR_clear_error(); /* a forged signature must not leave errors behind for this thread's next OpenSSL call */
    return ok ? 0 : -1;
}
