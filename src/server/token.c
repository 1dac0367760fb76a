#include <jansson.h>
#include <jwt.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "realtime/error.h"
#include "server/token.h"
#include "util/mem.h"

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (errlen != 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes unpadded base64url (what JWS uses); returns the decoded length, or -1. out needs len * 3 / 4 bytes. */
static long b64url_decode(const char *s, size_t len, unsigned char *out)
{
    if (len % 4 == 1)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    long n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

/*
 * Looks at the header ourselves before libjwt does: only {"alg":"HS256"} is acceptable, so "none", the other
 * HMACs and public-key algorithms (key confusion) are refused by name whatever libjwt would do with them.
 */
static int check_header(const char *seg, size_t len, char *err, size_t errlen)
{
    unsigned char *raw = rt_mem_alloc(len * 3 / 4 + 1);
    long n = b64url_decode(seg, len, raw);
    json_t *hdr = n < 0 ? NULL : json_loadb((const char *)raw, (size_t)n, 0, NULL);
    free(raw);
    if (!json_is_object(hdr)) {
        json_decref(hdr);
        return fail(err, errlen, RT_EINVAL, "malformed token header");
    }
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    int ret = 0;
    if (alg == NULL)
        ret = fail(err, errlen, RT_EINVAL, "token header has no alg");
    else if (strcmp(alg, "HS256") != 0)
        ret = fail(err, errlen, RT_EINVAL, "unsupported token algorithm \"%.16s\" (only HS256)", alg);
    json_decref(hdr);
    return ret;
}

/*
 * libjwt 1.10 compares HMAC signatures as base64 text with an early-exit compare; checking the MAC here first,
 * with CRYPTO_memcmp, means libjwt only ever compares signatures that already match.
 */
static int check_signature(const char *secret, const char *token, size_t signed_len, const char *sig, size_t sig_len)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[64];
    unsigned int want_len = 0;
    if (sig_len != 43) /* 32 bytes, unpadded */
        return -1;
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)token, signed_len, want, &want_len) == NULL)
        return -1;
    long n = b64url_decode(sig, sig_len, got);
    if (n != (long)want_len)
        return -1;
    return CRYPTO_memcmp(want, got, want_len) == 0 ? 0 : -1;
}

static int numeric_date(json_t *claims, const char *name, int64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(claims, name);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && isfinite(json_real_value(v)) && fabs(json_real_value(v)) < 1e15) {
        *out = (int64_t)floor(json_real_value(v));
        return 0;
    }
    return fail(err, errlen, RT_EINVAL, "token claim \"%s\" is not a number", name);
}

static int optional_string(json_t *claims, const char *name, char **out, char *err, size_t errlen)
{
    json_t *v = json_object_get(claims, name);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fail(err, errlen, RT_EINVAL, "token claim \"%s\" is not a string", name);
    *out = rt_strndup(json_string_value(v), json_string_length(v));
    return 0;
}

static int read_channels(json_t *claims, rt_token_claims_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(claims, "channels"), *ch;
    size_t i;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return fail(err, errlen, RT_EINVAL, "token claim \"channels\" is not an array");
    out->channels = rt_mem_calloc(json_array_size(v) + 1, sizeof(char *));
    json_array_foreach(v, i, ch)
    {
        if (!json_is_string(ch))
            return fail(err, errlen, RT_EINVAL, "token claim \"channels\" holds a non-string");
        out->channels[out->n_channels++] = rt_strndup(json_string_value(ch), json_string_length(ch));
    }
    return 0;
}

static int read_claims(json_t *claims, rt_token_claims_t *out, char *err, size_t errlen)
{
    int ret;
    if (!json_is_object(claims))
        return fail(err, errlen, RT_EINVAL, "malformed token claims");
    if ((ret = optional_string(claims, "sub", &out->sub, err, errlen)) != 0 ||
        (ret = optional_string(claims, "channel", &out->channel, err, errlen)) != 0 ||
        (ret = numeric_date(claims, "exp", &out->exp, err, errlen)) != 0 ||
        (ret = numeric_date(claims, "iat", &out->iat, err, errlen)) != 0 ||
        (ret = numeric_date(claims, "nbf", &out->nbf, err, errlen)) != 0 || (ret = read_channels(claims, out, err, errlen)) != 0)
        return ret;
    if (out->sub == NULL)
        out->sub = rt_strdup("");
    out->admin = json_is_true(json_object_get(claims, "admin"));
    json_t *info = json_object_get(claims, "info");
    if (info != NULL && !json_is_null(info)) {
        char *text = json_dumps(info, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL)
            return fail(err, errlen, RT_EINVAL, "token claim \"info\" cannot be encoded");
        out->info = rt_strdup(text);
        free(text);
    }
    return 0;
}

int rt_token_verify(const char *secret, const char *token, int64_t now_s, rt_token_claims_t *claims, char *err, size_t errlen)
{
    memset(claims, 0, sizeof(*claims));
    if (errlen != 0)
        err[0] = '\0';
    if (secret == NULL || secret[0] == '\0')
        return fail(err, errlen, RT_EINVAL, "no token secret configured");
    if (token == NULL || token[0] == '\0')
        return fail(err, errlen, RT_EINVAL, "empty token");
    size_t len = strnlen(token, RT_TOKEN_MAX_LEN + 1);
    if (len > RT_TOKEN_MAX_LEN)
        return fail(err, errlen, RT_EINVAL, "token too long");
    const char *dot1 = memchr(token, '.', len),
               *dot2 = dot1 == NULL ? NULL : memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return fail(err, errlen, RT_EINVAL, "malformed token");
    int ret;
    if ((ret = check_header(token, (size_t)(dot1 - token), err, errlen)) != 0)
        return ret;
    if (check_signature(secret, token, (size_t)(dot2 - token), dot2 + 1, len - (size_t)(dot2 + 1 - token)) != 0)
        return fail(err, errlen, RT_EINVAL, "bad token signature");

    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)strlen(secret)) != 0 || jwt == NULL)
        return fail(err, errlen, RT_EINVAL, "malformed token");
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        jwt_free(jwt);
        return fail(err, errlen, RT_EINVAL, "unsupported token algorithm");
    }
    char *grants = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    json_t *obj = grants == NULL ? NULL : json_loads(grants, 0, NULL);
    free(grants);
    ret = read_claims(obj, claims, err, errlen);
    json_decref(obj);
    if (ret != 0)
        return ret;
    if (claims->exp != 0 && claims->exp <= now_s)
        return fail(err, errlen, RT_ERANGE, "token expired");
    if (claims->nbf != 0 && claims->nbf > now_s)
        return fail(err, errlen, RT_EINVAL, "token not valid yet");
    return 0;
}

static json_t *claims_json(const rt_token_claims_t *c)
{
    json_t *obj = json_object();
    json_object_set_new(obj, "sub", json_string(c->sub != NULL ? c->sub : ""));
    if (c->iat != 0)
        json_object_set_new(obj, "iat", json_integer(c->iat));
    if (c->exp != 0)
        json_object_set_new(obj, "exp", json_integer(c->exp));
    if (c->nbf != 0)
        json_object_set_new(obj, "nbf", json_integer(c->nbf));
    if (c->admin)
        json_object_set_new(obj, "admin", json_true());
    if (c->channel != NULL)
        json_object_set_new(obj, "channel", json_string(c->channel));
    if (c->channels != NULL) {
        json_t *arr = json_array();
        for (size_t i = 0; c->channels[i] != NULL; i++)
            json_array_append_new(arr, json_string(c->channels[i]));
        json_object_set_new(obj, "channels", arr);
    }
    if (c->info != NULL) {
        json_t *info = json_loads(c->info, JSON_DECODE_ANY, NULL);
        if (info == NULL) {
            json_decref(obj);
            return NULL;
        }
        json_object_set_new(obj, "info", info);
    }
    return obj;
}

int rt_token_sign(const char *secret, const rt_token_claims_t *claims, char **token)
{
    *token = NULL;
    if (secret == NULL || secret[0] == '\0')
        return RT_EINVAL;
    json_t *obj = claims_json(claims);
    if (obj == NULL)
        return RT_EINVAL;
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    jwt_t *jwt = NULL;
    int ret = RT_EINVAL;
    if (text != NULL && jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, text) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) == 0) {
        char *out = jwt_encode_str(jwt);
        if (out != NULL) {
            *token = rt_strdup(out);
            free(out);
            ret = 0;
        }
    }
    if (jwt != NULL)
        jwt_free(jwt);
    free(text);
    return ret;
}

void rt_token_claims_free(rt_token_claims_t *claims)
{
    free(claims->sub);
    if (claims->channels != NULL)
        for (size_t i = 0; i < claims->n_channels; i++)
            free(claims->channels[i]);
    free(claims->channels);
    free(claims->info);
    free(claims->channel);
    memset(claims, 0, sizeof(*claims));
}
