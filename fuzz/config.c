/*
 * libFuzzer target: arbitrary bytes as the server's configuration, through rt_config_load and rt_config_finish
 * (src/server/config.c): as the file named by --config, or as command-line flags.
 *
 * Input: one configuration byte, then the text. Bit 0 clear: the text is the --config file. Bit 0 set: the text is
 * argv, one argument per line, after the program name.
 *
 * Checks, besides ASan/UBSan/LSan: a refusal has a message, -2 only for argv, and a file error names the file; an
 * accepted configuration has a port in 0..65535 (0: any free one) and at least one worker; its dump is a JSON object that, given
 * back as a --config file, loads and finishes and dumps to the same text (secrets stay masked).
 */
/* fuzz-sources: src/server/config.c src/net/origin.c src/net/addr.c src/core/namespace.c src/core/access.c src/core/channel.c src/util/buf.c src/util/bytes.c src/util/clock.c src/util/error.c src/util/log.c src/util/map.c src/util/mem.c src/util/histogram.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <jansson.h>
#include "server/config.h"

#define CHECK(c) ((c) ? (void)0 : abort())

extern char **environ;

static bool verbose; /* FUZZ_VERBOSE=1 in the environment: print each load's result (to debug seeds) */
static int fd = -1;
static char path[64];

/* Makes the file at path hold text[0..len). */
static void write_file(const void *text, size_t len)
{
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(pwrite(fd, text, len, 0) == (ssize_t)len);
}

static void init(void)
{
    /* The environment is a configuration source too: none of it may leak into the runs. */
    for (char **e = environ; *e != NULL;) {
        if (strncmp(*e, "REALTIME_", 9) == 0) {
            char name[128];
            snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
            unsetenv(name);
        } else {
            e++;
        }
    }
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    fd = memfd_create("fuzz-config", 0);
    CHECK(fd >= 0);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
}

/* Loads with argv and finishes: 0 with *cfg filled (rt_config_free it), or the load's or finish's error. */
static int load(rt_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    rt_config_defaults(cfg);
    err[0] = '\0';
    int r = rt_config_load(cfg, argc - 1, argv + 1, err, errlen); /* argv[0] is the program */
    if (r == 0)
        r = rt_config_finish(cfg, err, errlen);
    return r;
}

static void check_accepted(rt_config_t *cfg)
{
    CHECK(cfg->port >= 0 && cfg->port <= 65535 && cfg->workers >= 1 && cfg->listen != NULL);
    char *dump = rt_config_dump(cfg);
    json_t *j = json_loads(dump, 0, NULL);
    CHECK(json_is_object(j));

    /* Secrets are dumped masked, and the mask is refused as a secret: give them back as some other secret. */
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), "***") == 0)
            json_object_set_new(j, key, json_string("fuzz-secret"));
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            if (json_is_string(item) && strcmp(json_string_value(item), "***") == 0)
                json_array_set_new(v, i, json_sprintf("fuzz-key-%zu", i));
        }
    }
    char *unmasked = json_dumps(j, 0);
    json_decref(j);
    write_file(unmasked, strlen(unmasked));
    free(unmasked);
    rt_config_t again;
    char err[512];
    char *argv[] = {"realtime", "--config", path, NULL};
    int r = load(&again, 3, argv, err, sizeof(err));
    if (r != 0) {
        fprintf(stderr, "dump does not load back: %s\n%s\n", err, dump);
        abort();
    }
    char *dump2 = rt_config_dump(&again);
    if (strcmp(dump, dump2) != 0) {
        fprintf(stderr, "dump changed on reload:\n%s\n%s\n", dump, dump2);
        abort();
    }
    free(dump2);
    rt_config_free(&again);
    free(dump);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0)
        init();
    if (size < 1)
        return 0;
    bool flags = data[0] & 1;
    data++, size--;

    rt_config_t cfg;
    char err[512];
    int r;
    if (!flags) {
        write_file(data, size);
        char *argv[] = {"realtime", "--config", path, NULL};
        r = load(&cfg, 3, argv, err, sizeof(err));
        if (verbose)
            fprintf(stderr, "load: %d %s\n", r, err);
        CHECK(r == 0 || r == -1);
    } else {
        /* One argument per line (a NUL ends one early, as it would in a real argv). */
        char *text = malloc(size + 1);
        memcpy(text, data, size);
        text[size] = '\0';
        char *argv[66] = {"realtime"};
        int argc = 1;
        for (char *p = text; argc < 65 && p <= text + size;) {
            char *nl = memchr(p, '\n', (size_t)(text + size - p));
            if (nl != NULL)
                *nl = '\0';
            argv[argc++] = p;
            if (nl == NULL)
                break;
            p = nl + 1;
        }
        argv[argc] = NULL;
        /* --config names our file, whose contents are the defaults' dump: what a flag may name is not fuzzed here. */
        rt_config_defaults(&cfg);
        CHECK(rt_config_finish(&cfg, err, sizeof(err)) == 0);
        char *defaults = rt_config_dump(&cfg);
        rt_config_free(&cfg);
        write_file(defaults, strlen(defaults));
        free(defaults);
        for (int i = 1; i < argc; i++)
            if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
                argv[++i] = path;
        r = load(&cfg, argc, argv, err, sizeof(err));
        if (verbose)
            fprintf(stderr, "load: %d %s\n", r, err);
        CHECK(r == 0 || r == -1 || r == -2);
        free(text);
    }
    if (r == 0)
        check_accepted(&cfg);
    else
        CHECK(err[0] != '\0');
    rt_config_free(&cfg);
    return 0;
}
