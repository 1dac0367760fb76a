/*
 * `realtime genconfig`: a starter configuration that is secure as written (a random API key and token secret, no
 * anonymous reads but one example namespace) and loads as it is printed.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include "server/genconfig.h"

/* 32 random bytes as 64 hex digits into out[65]; -1 when the kernel has no randomness to give. */
static int random_hex(char out[65])
{
    unsigned char raw[32];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

int rt_genconfig(FILE *out)
{
    char key[65], secret[65];
    if (random_hex(key) != 0 || random_hex(secret) != 0)
        return -1;
    json_t *cfg = json_pack("{s:s,s:[s],s:s,s:[{s:s,s:b,s:b}],s:[s]}", "listen", "127.0.0.1:8080", "api_keys", key,
                            "token_secret", secret, "namespaces", "pattern", "public.>", "anonymous", 1, "history", 1,
                            "allowed_origins", "http://localhost:3000");
    char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(cfg);
    if (text == NULL)
        return -1;
    fprintf(out, "%s\n", text);
    free(text);
    return 0;
}
