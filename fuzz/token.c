/*
 * libFuzzer target: arbitrary bytes as a client JWT, verified against a secret and against a JWK set (an RSA key
 * with kid "r", an EC P-256 key with kid "e"), and as a JWKS document for rt_token_verifier_set_jwks. Verification
 * must return 0, RT_ERANGE or RT_EINVAL with a reason, a failed JWKS replacement must keep the old keys, and
 * nothing may leak. The first byte picks the clock (0: 0, else 1800000000).
 */
/* fuzz-sources: src/core/token.c src/core/token_keys.c src/core/channel.c src/util/mem.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/error.h"
#include "core/token.h"

#define CHECK(c) ((c) ? (void)0 : abort())

static const char jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"0pFXCok4ZMyEIhuEqxa2AbefJYaIbkiIYbD6eTZa8mxLyXRNCFTJYiskyiMNLUY4fs4jy9bS_"
    "gcEkpJQ07nUYchCrHR5MPQGU_xkA24oDr2YmOPQoETTwpJCcV2bxpwYVpLAVTUBek4rUNfFURsSUNdcjAikbJkDvtHfQtYzFvEoXl_"
    "wLWC5YX4VrhIbXkqj7ROkL13KFxKb92saMMFFE7HYHt-ZslKLA4hotmt9kfY0toNDcpe9kv3yL6QPEWGaX7tvWgp-"
    "HesYbMVMuN0Uni5r0pNLQ8vqH8Axtm5kzS5Ghh4QoqxuOFWb4tVcBhYkjaUhpMqTHNolK2msKiuLmQ\",\"e\":\"AQAB\",\"kid\":\"r\"},{\"kty\":"
    "\"EC\",\"x\":\"iZQzxPr4tvYehIYjNyDGwvbOOkSVpVP0Y9nX9XhmGXM\",\"y\":\"PgQph67l04glaDiXvyZf6W7ikLxYpgdwyQD9_ucOPmg\",\"crv\":"
    "\"P-256\",\"kid\":\"e\",\"alg\":\"ES256\"}]}";

static rt_token_verifier_t *by_secret, *by_jwks;

static void verify(rt_token_verifier_t *v, const char *token, int64_t now)
{
    rt_token_claims_t claims;
    char err[128];
    int r = rt_token_verify(v, token, now, &claims, err, sizeof(err));
    CHECK(r == 0 || r == RT_EINVAL || r == RT_ERANGE);
    CHECK(r == 0 ? claims.sub != NULL : err[0] != '\0');
    for (size_t i = 0; r == 0 && i < claims.n_subscribe; i++)
        CHECK(claims.subscribe[i] != NULL);
    rt_token_claims_free(&claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (by_secret == NULL) {
        CHECK(rt_token_verifier_new(&(rt_token_config_t){.secret = "fuzz-secret", .leeway_s = 5}, &by_secret, err, sizeof(err)) ==
              0);
        CHECK(rt_token_verifier_new(&(rt_token_config_t){.audience = "rt", .issuer = "idp"}, &by_jwks, err, sizeof(err)) == 0);
        CHECK(rt_token_verifier_set_jwks(by_jwks, jwks, strlen(jwks), err, sizeof(err)) == 0);
    }
    if (size < 1)
        return 0;
    int64_t now = data[0] == 0 ? 0 : 1800000000;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    verify(by_secret, text, now);
    verify(by_jwks, text, now);

    rt_token_verifier_t *scratch;
    CHECK(rt_token_verifier_new(&(rt_token_config_t){0}, &scratch, err, sizeof(err)) == 0);
    int r = rt_token_verifier_set_jwks(scratch, (const char *)data + 1, size - 1, err, sizeof(err));
    CHECK(r == 0 ? rt_token_verifier_has_keys(scratch)
                 : (r == RT_EINVAL && err[0] != '\0' && !rt_token_verifier_has_keys(scratch)));
    verify(scratch, text, now);
    rt_token_verifier_free(scratch);
    free(text);
    return 0;
}
