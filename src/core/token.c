#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <math.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "realtime/channel.h"
#include "realtime/error.h"
#include "core/token.h"
#include "core/token-private.h"
#include "util/mem.h"

struct st_rt_token_verifier_t {
    char *secret; /* NULL: HS* tokens are refused */
    rt_token_key_t pem;
    char *audience, *issuer;
    int64_t leeway_s;
    /* Held only to swap jwks or take a reference to it, never during a signature check. */
    pthread_mutex_t lock;
    rt_token_keyset_t *jwks;
    atomic_size_t n_jwks;
};

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

long rt__token_b64url_decode(const char *s, size_t len, unsigned char *out)
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

/* A base64url JSON segment, decoded and parsed; NULL when it is not a JSON object. */
static json_t *segment_json(const char *seg, size_t len)
{
    unsigned char *raw = rt_mem_alloc(len * 3 / 4 + 1);
    long n = rt__token_b64url_decode(seg, len, raw);
    json_t *obj = n < 0 ? NULL : json_loadb((const char *)raw, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/*
 * The header names the algorithm, and so the kind of key; it is read before anything else so that "none" and
 * unknown algorithms are refused by name whatever the rest says. "crit" names extensions we do not implement,
 * which RFC 7515 section 4.1.11 says must make the token invalid. *kid is a copy (free()).
 */
static int read_header(const char *seg, size_t len, const rt_token_alg_t **alg, char **kid, char *err, size_t errlen)
{
    json_t *hdr = segment_json(seg, len);
    if (hdr == NULL)
        return fail(err, errlen, RT_EINVAL, "malformed token header");
    const char *name = json_string_value(json_object_get(hdr, "alg"));
    json_t *k = json_object_get(hdr, "kid");
    int ret = 0;
    if (name == NULL)
        ret = fail(err, errlen, RT_EINVAL, "token header has no alg");
    else if ((*alg = rt__token_alg(name)) == NULL)
        ret = fail(err, errlen, RT_EINVAL, "unsupported token algorithm \"%.16s\"", name);
    else if (json_object_get(hdr, "crit") != NULL)
        ret = fail(err, errlen, RT_EINVAL, "token header has unsupported critical extensions");
    else if (k != NULL && !json_is_string(k))
        ret = fail(err, errlen, RT_EINVAL, "token header kid is not a string");
    else if (k != NULL)
        *kid = rt_strndup(json_string_value(k), json_string_length(k));
    json_decref(hdr);
    return ret;
}

typedef struct st_signed_t {
    const rt_token_alg_t *alg;
    const char *kid;  /* NULL: none in the header */
    const char *data; /* header.payload */
    size_t data_len;
    const unsigned char *sig;
    size_t sig_len;
} signed_t;

/* 1 when `key` is of the right kind and its signature matches, 0 when it is not, -1 when the key refuses. */
static int try_key(const signed_t *t, const rt_token_key_t *key)
{
    if (rt__token_key_refuses(key, t->alg) != NULL)
        return -1;
    return rt__token_check_pkey(t->alg, key, t->data, t->data_len, t->sig, t->sig_len) == 0;
}

/*
 * Public keys: a kid found in the JWKS picks that key alone, and a key that refuses the algorithm (another kind,
 * a JWK "alg" or "use" that disagrees) fails the token rather than falling back. Without a kid (or with one the
 * set does not know, when a PEM key is configured, which has none) every key of the right kind is tried.
 */
static int check_public(rt_token_verifier_t *v, const signed_t *t, char *err, size_t errlen)
{
    pthread_mutex_lock(&v->lock);
    rt_token_keyset_t *set = v->jwks;
    if (set != NULL)
        rt__token_keyset_retain(set);
    pthread_mutex_unlock(&v->lock);

    const rt_token_key_t *by_kid = NULL;
    for (size_t i = 0; t->kid != NULL && set != NULL && i < set->n && by_kid == NULL; i++)
        if (set->keys[i].kid != NULL && strcmp(set->keys[i].kid, t->kid) == 0)
            by_kid = &set->keys[i];
    int ret, tried = 0, ok = 0;
    if (by_kid != NULL) {
        const char *why = rt__token_key_refuses(by_kid, t->alg);
        if (why != NULL) {
            ret = fail(err, errlen, RT_EINVAL, "token key \"%.64s\" refused: %s", t->kid, why);
            goto Done;
        }
        tried = 1;
        ok = try_key(t, by_kid) == 1;
    } else if (t->kid != NULL && v->pem.pkey == NULL) {
        ret = fail(err, errlen, RT_EINVAL, "unknown token key id \"%.64s\"", t->kid);
        goto Done;
    } else {
        int r = v->pem.pkey != NULL ? try_key(t, &v->pem) : -1;
        tried += r >= 0, ok = r == 1;
        for (size_t i = 0; t->kid == NULL && set != NULL && i < set->n && !ok; i++) {
            r = try_key(t, &set->keys[i]);
            tried += r >= 0, ok = r == 1;
        }
    }
    if (tried == 0)
        ret = fail(err, errlen, RT_EINVAL, "no key configured for token algorithm %s", t->alg->name);
    else
        ret = ok ? 0 : fail(err, errlen, RT_EINVAL, "bad token signature");
Done:
    rt__token_keyset_release(set);
    return ret;
}

/* HS* uses the secret and nothing else: a public key's PEM text as an HMAC key is the classic key confusion. */
static int check_signature(rt_token_verifier_t *v, const signed_t *t, char *err, size_t errlen)
{
    if (t->alg->kind != RT_TOKEN_KEY_HMAC)
        return check_public(v, t, err, errlen);
    if (v->secret == NULL)
        return fail(err, errlen, RT_EINVAL, "%s token but no token secret configured", t->alg->name);
    if (rt__token_check_hmac(t->alg, (const unsigned char *)v->secret, strlen(v->secret), t->data, t->data_len, t->sig,
                             t->sig_len) != 0)
        return fail(err, errlen, RT_EINVAL, "bad token signature");
    return 0;
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

/* A claim that is a list of channel names or patterns ("channels", "subscribe"): NULL-terminated in *out. */
static int read_channel_list(json_t *claims, const char *name, char ***out, size_t *n, char *err, size_t errlen)
{
    json_t *v = json_object_get(claims, name), *ch;
    size_t i;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return fail(err, errlen, RT_EINVAL, "token claim \"%s\" is not an array", name);
    *out = rt_mem_calloc(json_array_size(v) + 1, sizeof(char *));
    json_array_foreach(v, i, ch)
    {
        if (!json_is_string(ch) || !rt_pattern_valid(json_string_value(ch), json_string_length(ch)))
            return fail(err, errlen, RT_EINVAL, "token claim \"%s\" holds something that is not a channel or pattern", name);
        (*out)[(*n)++] = rt_strndup(json_string_value(ch), json_string_length(ch));
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
        (ret = numeric_date(claims, "nbf", &out->nbf, err, errlen)) != 0 ||
        (ret = read_channel_list(claims, "channels", &out->channels, &out->n_channels, err, errlen)) != 0 ||
        (ret = read_channel_list(claims, "subscribe", &out->subscribe, &out->n_subscribe, err, errlen)) != 0)
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

/* "aud" is a string or an array of strings (RFC 7519 section 4.1.3); "iss" a string. */
static int check_audience_issuer(const rt_token_verifier_t *v, json_t *payload, char *err, size_t errlen)
{
    json_t *aud = json_object_get(payload, "aud"), *a;
    size_t i;
    bool found = false;
    if (v->audience != NULL) {
        if (json_is_string(aud))
            found = strcmp(json_string_value(aud), v->audience) == 0;
        json_array_foreach(aud, i, a)
        {
            found = found || (json_is_string(a) && strcmp(json_string_value(a), v->audience) == 0);
        }
        if (!found)
            return fail(err, errlen, RT_EINVAL, aud == NULL ? "token has no aud" : "token audience does not match");
    }
    const char *iss = json_string_value(json_object_get(payload, "iss"));
    if (v->issuer != NULL && (iss == NULL || strcmp(iss, v->issuer) != 0))
        return fail(err, errlen, RT_EINVAL, iss == NULL ? "token has no iss" : "token issuer does not match");
    return 0;
}

int rt_token_verify(rt_token_verifier_t *v, const char *token, int64_t now_s, rt_token_claims_t *claims, char *err, size_t errlen)
{
    memset(claims, 0, sizeof(*claims));
    if (errlen != 0)
        err[0] = '\0';
    if (!rt_token_verifier_has_keys(v))
        return fail(err, errlen, RT_EINVAL, "no token secret or key configured or fetched");
    if (token == NULL || token[0] == '\0')
        return fail(err, errlen, RT_EINVAL, "empty token");
    size_t len = strnlen(token, RT_TOKEN_MAX_LEN + 1);
    if (len > RT_TOKEN_MAX_LEN)
        return fail(err, errlen, RT_EINVAL, "token too long");
    const char *dot1 = memchr(token, '.', len),
               *dot2 = dot1 == NULL ? NULL : memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return fail(err, errlen, RT_EINVAL, "malformed token");
    signed_t t = {.data = token, .data_len = (size_t)(dot2 - token)};
    char *kid = NULL;
    int ret = read_header(token, (size_t)(dot1 - token), &t.alg, &kid, err, errlen);
    size_t sig_text = len - (size_t)(dot2 + 1 - token);
    unsigned char *sig = rt_mem_alloc(sig_text * 3 / 4 + 1);
    long sig_len = rt__token_b64url_decode(dot2 + 1, sig_text, sig);
    if (ret == 0 && sig_len <= 0)
        ret = fail(err, errlen, RT_EINVAL, "malformed token signature");
    t.kid = kid, t.sig = sig, t.sig_len = (size_t)sig_len;
    if (ret == 0)
        ret = check_signature(v, &t, err, errlen);
    free(sig);
    free(kid);
    if (ret != 0)
        return ret;

    json_t *payload = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    ret = read_claims(payload, claims, err, errlen);
    if (ret == 0)
        ret = check_audience_issuer(v, payload, err, errlen);
    json_decref(payload);
    if (ret != 0)
        return ret;
    if (claims->exp != 0 && claims->exp <= now_s - v->leeway_s) /* exp may be any int64: no sum with it */
        return fail(err, errlen, RT_ERANGE, "token expired");
    if (claims->nbf != 0 && claims->nbf > now_s + v->leeway_s)
        return fail(err, errlen, RT_EINVAL, "token not valid yet");
    return 0;
}

/* A JWKS file is small (a few keys); anything past this is not one. */
static char *read_small_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail(err, errlen, RT_EINVAL, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    char *text = rt_mem_alloc(RT_TOKEN_JWKS_MAX_BYTES + 1);
    *len = fread(text, 1, RT_TOKEN_JWKS_MAX_BYTES + 1, f);
    bool bad = ferror(f) != 0 || *len > RT_TOKEN_JWKS_MAX_BYTES;
    fclose(f);
    if (bad) {
        fail(err, errlen, RT_EINVAL, "%s: unreadable or larger than %d bytes", path, RT_TOKEN_JWKS_MAX_BYTES);
        free(text);
        return NULL;
    }
    return text;
}

int rt_token_verifier_new(const rt_token_config_t *cfg, rt_token_verifier_t **out, char *err, size_t errlen)
{
    rt_token_verifier_t *v = rt_mem_calloc(1, sizeof(*v));
    pthread_mutex_init(&v->lock, NULL);
    v->secret = cfg->secret != NULL && cfg->secret[0] != '\0' ? rt_strdup(cfg->secret) : NULL;
    v->audience = cfg->audience != NULL ? rt_strdup(cfg->audience) : NULL;
    v->issuer = cfg->issuer != NULL ? rt_strdup(cfg->issuer) : NULL;
    v->leeway_s = (int64_t)cfg->leeway_s;
    *out = NULL;
    int ret = 0;
    if (cfg->public_key_file != NULL)
        ret = rt__token_key_load_pem(cfg->public_key_file, &v->pem, err, errlen);
    if (ret == 0 && cfg->jwks_file != NULL) {
        size_t len = 0;
        char *text = read_small_file(cfg->jwks_file, &len, err, errlen), why[256];
        ret = text == NULL ? RT_EINVAL : rt_token_verifier_set_jwks(v, text, len, why, sizeof(why));
        if (text != NULL && ret != 0)
            fail(err, errlen, ret, "%s: %s", cfg->jwks_file, why);
        free(text);
    }
    if (ret != 0) {
        rt_token_verifier_free(v);
        return ret;
    }
    *out = v;
    return 0;
}

int rt_token_verifier_set_jwks(rt_token_verifier_t *v, const char *json, size_t len, char *err, size_t errlen)
{
    rt_token_keyset_t *set;
    int ret = rt__token_keyset_parse(json, len, &set, err, errlen);
    if (ret != 0)
        return ret;
    pthread_mutex_lock(&v->lock);
    rt_token_keyset_t *old = v->jwks;
    v->jwks = set;
    atomic_store(&v->n_jwks, set->n);
    pthread_mutex_unlock(&v->lock);
    rt__token_keyset_release(old); /* freed here, or by the last verification still using it */
    return 0;
}

void rt_token_verifier_adopt_jwks(rt_token_verifier_t *dst, rt_token_verifier_t *src)
{
    pthread_mutex_lock(&src->lock);
    rt_token_keyset_t *set = src->jwks;
    if (set != NULL)
        rt__token_keyset_retain(set);
    pthread_mutex_unlock(&src->lock);
    if (set == NULL)
        return;
    pthread_mutex_lock(&dst->lock);
    bool take = dst->jwks == NULL;
    if (take) {
        dst->jwks = set;
        atomic_store(&dst->n_jwks, set->n);
    }
    pthread_mutex_unlock(&dst->lock);
    if (!take)
        rt__token_keyset_release(set);
}

bool rt_token_verifier_has_keys(const rt_token_verifier_t *v)
{
    return v != NULL && (v->secret != NULL || v->pem.pkey != NULL || atomic_load(&v->n_jwks) != 0);
}

void rt_token_verifier_free(rt_token_verifier_t *v)
{
    if (v == NULL)
        return;
    free(v->secret);
    rt__token_key_dispose(&v->pem);
    free(v->audience);
    free(v->issuer);
    rt__token_keyset_release(v->jwks);
    pthread_mutex_destroy(&v->lock);
    free(v);
}

static void channel_list_json(json_t *obj, const char *name, char *const *list)
{
    if (list == NULL)
        return;
    json_t *arr = json_array();
    for (size_t i = 0; list[i] != NULL; i++)
        json_array_append_new(arr, json_string(list[i]));
    json_object_set_new(obj, name, arr);
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
    channel_list_json(obj, "channels", c->channels);
    channel_list_json(obj, "subscribe", c->subscribe);
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

/* The algorithm to sign with: the one asked for, else by the secret or the private key's kind. */
static const rt_token_alg_t *signing_alg(const rt_token_signing_t *how, const rt_token_key_t *key, char *err, size_t errlen)
{
    const rt_token_alg_t *alg = how->alg != NULL ? rt__token_alg(how->alg) : NULL;
    const char *why;
    if (how->alg == NULL)
        alg = rt__token_alg(key->pkey == NULL               ? "HS256"
                            : key->kind == RT_TOKEN_KEY_RSA ? "RS256"
                            : key->ec_bits == 384           ? "ES384"
                                                            : "ES256");
    if (alg == NULL || alg->pss) /* libjwt 1.10 has no PS* */
        fail(err, errlen, RT_EINVAL, "cannot sign with algorithm \"%.16s\"", how->alg);
    else if (alg->kind == RT_TOKEN_KEY_HMAC && (how->secret == NULL || how->secret[0] == '\0'))
        fail(err, errlen, RT_EINVAL, "%s needs a secret", alg->name);
    else if (alg->kind != RT_TOKEN_KEY_HMAC && key->pkey == NULL)
        fail(err, errlen, RT_EINVAL, "%s needs a private key", alg->name);
    else if (alg->kind != RT_TOKEN_KEY_HMAC && (why = rt__token_key_refuses(key, alg)) != NULL)
        fail(err, errlen, RT_EINVAL, "%s: %s", alg->name, why);
    else
        return alg;
    return NULL;
}

int rt_token_sign_with(const rt_token_signing_t *how, const rt_token_claims_t *claims, char **token, char *err, size_t errlen)
{
    rt_token_key_t key = {0};
    *token = NULL;
    if (how->key_pem != NULL && rt__token_key_read_private(how->key_pem, &key, err, errlen) != 0)
        return RT_EINVAL;
    const rt_token_alg_t *alg = signing_alg(how, &key, err, errlen);
    rt__token_key_dispose(&key);
    if (alg == NULL)
        return RT_EINVAL;
    json_t *obj = claims_json(claims);
    if (obj == NULL)
        return fail(err, errlen, RT_EINVAL, "info is not valid JSON");
    if (how->aud != NULL)
        json_object_set_new(obj, "aud", json_string(how->aud));
    if (how->iss != NULL)
        json_object_set_new(obj, "iss", json_string(how->iss));
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    const char *k = alg->kind == RT_TOKEN_KEY_HMAC ? how->secret : how->key_pem;
    jwt_t *jwt = NULL;
    int ret = fail(err, errlen, RT_EINVAL, "signing failed");
    if (text != NULL && jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, text) == 0 &&
        (how->kid == NULL || jwt_add_header(jwt, "kid", how->kid) == 0) &&
        jwt_set_alg(jwt, jwt_str_alg(alg->name), (const unsigned char *)k, (int)strlen(k)) == 0) {
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

int rt_token_sign(const char *secret, const rt_token_claims_t *claims, char **token)
{
    rt_token_signing_t how = {.alg = "HS256", .secret = secret};
    return rt_token_sign_with(&how, claims, token, NULL, 0);
}

char **rt_token_grants(const rt_token_claims_t *c, size_t *n)
{
    *n = 0;
    if (c->n_subscribe + c->n_channels == 0)
        return NULL;
    char **list = rt_mem_calloc(c->n_subscribe + c->n_channels + 1, sizeof(char *));
    for (size_t i = 0; i < c->n_subscribe; i++)
        list[(*n)++] = rt_strdup(c->subscribe[i]);
    for (size_t i = 0; i < c->n_channels; i++)
        list[(*n)++] = rt_strdup(c->channels[i]);
    return list;
}

void rt_token_grants_free(char **list)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        free(list[i]);
    free(list);
}

void rt_token_claims_free(rt_token_claims_t *claims)
{
    free(claims->sub);
    for (size_t i = 0; i < claims->n_channels; i++)
        free(claims->channels[i]);
    free(claims->channels);
    for (size_t i = 0; i < claims->n_subscribe; i++)
        free(claims->subscribe[i]);
    free(claims->subscribe);
    free(claims->info);
    free(claims->channel);
    memset(claims, 0, sizeof(*claims));
}
