/* Server configuration: defaults, file < env < flag precedence, every value error message, listen parsing, dump. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "server/config.h"
#include "util/log.h"

extern char **environ;

#define LOAD(cfg, err, ...) load_args(cfg, err, (char *[]){__VA_ARGS__, NULL})

static char errbuf[512];

static int load_args(rt_config_t *cfg, char *err, char **argv)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    err[0] = '\0';
    return rt_config_load(cfg, argc, argv, err, sizeof(errbuf));
}

/* Every test starts from an environment without REALTIME_* variables, whatever the shell had. */
static int clear_env(void **state)
{
    char *names[256];
    size_t n = 0;
    for (char **e = environ; *e != NULL && n < 256; e++)
        if (strncmp(*e, "REALTIME_", 9) == 0)
            names[n++] = strndup(*e, strcspn(*e, "="));
    for (size_t i = 0; i < n; i++) {
        unsetenv(names[i]);
        free(names[i]);
    }
    return 0;
}

static char *write_file(const char *text)
{
    char *path = strdup("/tmp/rt-config-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    rt_config_t c;
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, NULL), 0);
    assert_int_equal(rt_config_finish(&c, errbuf, sizeof(errbuf)), 0);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8080);
    assert_false(c.insecure); /* nothing is open for where the server listens */
    assert_null(c.namespaces);
    assert_int_equal(c.n_namespaces, 0);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c.workers, ncpu < 1 ? 1 : ncpu > 256 ? 256 : ncpu);
    assert_int_equal(c.mode, RT_MODE_HYBRID);
    assert_true(c.heartbeat_s == 25 && c.pong_timeout_s == 10 && c.history_ttl_s == 3600);
    assert_int_equal(c.history_size, 10000);
    assert_int_equal(c.max_event_bytes, 65536);
    assert_int_equal(c.max_body_bytes, 1048576);
    assert_int_equal(c.max_batch, 1000);
    assert_int_equal(c.max_message_bytes, 65536);
    assert_int_equal(c.client_queue_bytes, 1048576);
    assert_int_equal(c.max_header_bytes, 16384);
    assert_true(c.header_timeout_s == 10 && c.idle_timeout_s == 60 && c.shutdown_timeout_s == 10);
    assert_true(c.lingering_timeout_s == 2);
    assert_int_equal(c.lingering_bytes, 1048576);
    assert_null(c.api_keys.items);
    assert_int_equal(c.api_keys.n, 0);
    assert_null(c.token_secret);
    assert_true(c.centrifuge_ping_s == 25 && c.centrifuge_pong_s == 8);
    assert_string_equal(c.broker, "memory");
    assert_string_equal(c.redis_url, "redis://127.0.0.1:6379");
    assert_string_equal(c.log_level, "info");
    rt_config_free(&c);
}

static void test_precedence(void **state)
{
    char *path = write_file("{\"workers\": 2, \"heartbeat\": 5, \"mode\": \"websocket\"}");
    char cfgflag[64];
    snprintf(cfgflag, sizeof(cfgflag), "--config=%s", path);
    rt_config_t c;

    /* file only: file beats defaults */
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--config", path), 0);
    assert_int_equal(c.workers, 2);
    assert_true(c.heartbeat_s == 5);
    assert_int_equal(c.mode, RT_MODE_WEBSOCKET);
    rt_config_free(&c);

    /* env beats file */
    setenv("REALTIME_WORKERS", "3", 1);
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, cfgflag), 0);
    assert_int_equal(c.workers, 3);
    assert_true(c.heartbeat_s == 5);
    rt_config_free(&c);

    /* flag beats env, in either position relative to --config */
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--workers", "4", "--config", path), 0);
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.mode, RT_MODE_WEBSOCKET);
    rt_config_free(&c);

    /* REALTIME_CONFIG names the file when --config is absent; --config wins over it */
    unsetenv("REALTIME_WORKERS");
    setenv("REALTIME_CONFIG", path, 1);
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, NULL), 0);
    assert_int_equal(c.workers, 2);
    rt_config_free(&c);
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--config", "/nonexistent/rt.json"), -1);
    assert_non_null(strstr(errbuf, "/nonexistent/rt.json: "));
    rt_config_free(&c);
    unsetenv("REALTIME_CONFIG");

    /* an empty variable counts as unset */
    setenv("REALTIME_WORKERS", "", 1);
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--config", path), 0);
    assert_int_equal(c.workers, 2);
    rt_config_free(&c);
    unsetenv("REALTIME_WORKERS");

    unlink(path);
    free(path);
}

static void test_flag_forms(void **state)
{
    rt_config_t c;
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--max-event-bytes", "1000", "--max_body_bytes=2M", "--insecure", "--insecure", "off",
                          "--heartbeat", "500ms", "--history-ttl=2h", "--pong-timeout", "1.5", "--listen",
                          "0.0.0.0:1", "--listen", "127.0.0.1:9"),
                     0);
    assert_int_equal(c.max_event_bytes, 1000);
    assert_int_equal(c.max_body_bytes, 2 * 1024 * 1024);
    assert_false(c.insecure); /* the last one wins */
    assert_true(c.heartbeat_s == 0.5);
    assert_true(c.history_ttl_s == 7200);
    assert_true(c.pong_timeout_s == 1.5);
    assert_string_equal(c.listen, "127.0.0.1:9"); /* the last one wins */
    assert_int_equal(rt_config_finish(&c, errbuf, sizeof(errbuf)), 0);
    rt_config_free(&c);

    /* a bare bool flag followed by another flag */
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--insecure", "--workers", "7", "--max-event-bytes=64k"), 0);
    assert_true(c.insecure);
    assert_int_equal(c.workers, 7);
    assert_int_equal(c.max_event_bytes, 65536);
    assert_int_equal(rt_config_finish(&c, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(c.workers, 7);
    rt_config_free(&c);

    /* lingering: units, and 0 (off) allowed for both */
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--lingering-timeout", "500ms", "--lingering-bytes", "256K"), 0);
    assert_true(c.lingering_timeout_s == 0.5);
    assert_int_equal(c.lingering_bytes, 256 * 1024);
    assert_int_equal(LOAD(&c, errbuf, "--lingering-timeout", "0", "--lingering-bytes", "0"), 0);
    assert_true(c.lingering_timeout_s == 0);
    assert_int_equal(c.lingering_bytes, 0);
    assert_int_equal(LOAD(&c, errbuf, "--lingering-timeout", "2h"), -2);
    assert_non_null(strstr(errbuf, "--lingering-timeout"));
    rt_config_free(&c);
}

static void test_api_keys(void **state)
{
    rt_config_t c;
    setenv("REALTIME_API_KEYS", "a,b", 1);
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, NULL), 0);
    assert_int_equal(c.api_keys.n, 2);
    assert_string_equal(c.api_keys.items[0], "a");
    assert_string_equal(c.api_keys.items[1], "b");
    assert_null(c.api_keys.items[2]);
    /* the flag replaces the env list entirely; spaces around items are dropped */
    assert_int_equal(LOAD(&c, errbuf, "--api-keys", " k1 , k2,k3 "), 0);
    assert_int_equal(c.api_keys.n, 3);
    assert_string_equal(c.api_keys.items[0], "k1");
    assert_string_equal(c.api_keys.items[2], "k3");
    assert_null(c.api_keys.items[3]);
    assert_int_equal(LOAD(&c, errbuf, "--api-keys", "a,,b"), -2);
    assert_string_equal(errbuf, "--api-keys: must be a list of non-empty keys without spaces (comma-separated in flags and env)");
    assert_int_equal(LOAD(&c, errbuf, "--api-keys", "a b"), -2);
    assert_int_equal(c.api_keys.n, 2); /* the env list, re-applied; the failed flag changed nothing */
    assert_string_equal(c.api_keys.items[1], "b");
    rt_config_free(&c);
    unsetenv("REALTIME_API_KEYS");

    char *path = write_file("{\"api_keys\": [\"x\", \"y\"]}");
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--config", path), 0);
    assert_int_equal(c.api_keys.n, 2);
    assert_string_equal(c.api_keys.items[1], "y");
    rt_config_free(&c);
    unlink(path);
    free(path);
    path = write_file("{\"api_keys\": [\"x\", 3]}");
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--config", path), -1);
    assert_non_null(strstr(errbuf, ": api_keys: must be a list of non-empty keys"));
    rt_config_free(&c);
    unlink(path);
    free(path);
}

/* A placeholder left in place of the token secret (the example config's has spaces) does not load as the secret. */
static void test_secret_placeholder_refused(void **state)
{
    rt_config_t c;
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--token-secret", "<replace: another openssl rand -hex 32>"), -2);
    assert_non_null(strstr(errbuf, "--token-secret: must not contain spaces"));
    assert_null(c.token_secret);
    assert_int_equal(LOAD(&c, errbuf, "--token-secret", "0123456789abcdef"), 0);
    assert_string_equal(c.token_secret, "0123456789abcdef");
    rt_config_free(&c);
}

static void test_allowed_origins(void **state)
{
    rt_config_t c;
    rt_config_defaults(&c);
    assert_int_equal(c.allowed_origins.n, 0);
    assert_int_equal(LOAD(&c, errbuf, "--allowed-origins", "https://app.example.com, https://*.corp.example"), 0);
    assert_int_equal(c.allowed_origins.n, 2);
    assert_string_equal(c.allowed_origins.items[1], "https://*.corp.example");
    /* an entry that could never match a browser's Origin is refused with what an entry looks like */
    assert_int_equal(LOAD(&c, errbuf, "--allowed-origins", "app.example.com"), -2);
    assert_non_null(strstr(errbuf, "--allowed-origins: must be a list of origins such as https://app.example.com"));
    assert_int_equal(LOAD(&c, errbuf, "--allowed-origins", "https://app.example.com/"), -2);
    /* origins are not secrets: the dump shows them */
    assert_int_equal(LOAD(&c, errbuf, "--allowed-origins", "*"), 0);
    assert_int_equal(rt_config_finish(&c, errbuf, sizeof(errbuf)), 0);
    char *text = rt_config_dump(&c);
    json_t *j = json_loads(text, 0, NULL);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "allowed_origins"), 0)), "*");
    json_decref(j);
    free(text);
    rt_config_free(&c);
}

static void test_redis_sentinels(void **state)
{
    rt_config_t c;
    rt_config_defaults(&c);
    assert_int_equal(c.redis_sentinels.n, 0);
    assert_string_equal(c.redis_master_name, "mymaster");
    assert_int_equal(LOAD(&c, errbuf, "--redis-sentinels", "10.0.0.1:26379, sentinel-b:26380,[::1]:26381", "--redis-master-name", "rt"), 0);
    assert_int_equal(c.redis_sentinels.n, 3);
    assert_string_equal(c.redis_sentinels.items[2], "[::1]:26381");
    assert_string_equal(c.redis_master_name, "rt");
    const char *bad[] = {"10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536", ":26379", "::1:26379", "host:port", "[::1]26379"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(LOAD(&c, errbuf, "--redis-sentinels", (char *)bad[i]), -2);
        assert_non_null(strstr(errbuf, "--redis-sentinels: must be a list of host:port of a Redis Sentinel"));
    }
    char host[64];
    int port;
    assert_int_equal(rt_config_parse_host_port("[fd00::5]:26379", host, sizeof(host), &port), 0);
    assert_string_equal(host, "fd00::5");
    assert_int_equal(port, 26379);
    rt_config_free(&c);
}

struct flag_case {
    const char *flag, *value, *message;
};

static void test_flag_errors(void **state)
{
    static const struct flag_case cases[] = {
        {"--workers", "abc", "--workers: must be an integer between 1 and 256"},
        {"--workers", "0", "--workers: must be an integer between 1 and 256"},
        {"--workers", "257", "--workers: must be an integer between 1 and 256"},
        {"--workers", "1.5", "--workers: must be an integer between 1 and 256"},
        {"--workers", "-3", "--workers: must be an integer between 1 and 256"},
        {"--history-size", "0", "--history-size: must be an integer between 1 and 100000000"},
        {"--max-event-bytes", "10",
         "--max-event-bytes: must be a size in bytes between 256 and 67108864 (suffixes K, M, G allowed)"},
        {"--max_event_bytes", "64X",
         "--max_event_bytes: must be a size in bytes between 256 and 67108864 (suffixes K, M, G allowed)"},
        {"--heartbeat", "0", "--heartbeat: must be a duration in seconds between 0.01 and 86400 (suffixes ms, s, m, h allowed)"},
        {"--heartbeat", "abc", "--heartbeat: must be a duration in seconds between 0.01 and 86400 (suffixes ms, s, m, h allowed)"},
        {"--heartbeat", "nan", "--heartbeat: must be a duration in seconds between 0.01 and 86400 (suffixes ms, s, m, h allowed)"},
        {"--insecure", "maybe", "unexpected argument \"maybe\""},
        {"--insecure=maybe", NULL, "--insecure: must be true or false"},
        {"--mode", "fast", "--mode: must be one of hybrid, websocket, centrifuge"},
        {"--broker", "kafka", "--broker: must be one of memory, redis"},
        {"--log-level", "loud", "--log-level: must be one of error, warn, info, debug"},
        {"--redis-url", "http://x", "--redis-url: must be a redis://host:port[/db] or unix:///path URL"},
        {"--listen", "1.2.3.4", "--listen: must be host:port, e.g. 127.0.0.1:8080"},
        {"--listen", "::1:8080", "--listen: IPv6 addresses need brackets, e.g. [::1]:8080"},
        {"--listen", "127.0.0.1:65536", "--listen: port must be a number between 0 and 65535"},
        {"--listen", "127.0.0.1:", "--listen: port must be a number between 0 and 65535"},
        {"--listen", "127.0.0.1:80x", "--listen: port must be a number between 0 and 65535"},
        {"--listen", "example.com:80", "--listen: host must be an IPv4 address, [IPv6 address] or localhost, not \"example.com\""},
        {"--listen", "256.1.1.1:80", "--listen: host must be an IPv4 address, [IPv6 address] or localhost, not \"256.1.1.1\""},
        {"--listen", "[::1]8080", "--listen: must be [IPv6 address]:port, e.g. [::1]:8080"},
        {"--listen", "[zz::1]:80", "--listen: \"zz::1\" is not an IPv6 address"},
        {"--wrokers", "3", "--wrokers: unknown option (did you mean --workers?)"},
        {"--max-evnt-bytes", "3", "--max-evnt-bytes: unknown option (did you mean --max-event-bytes?)"},
        {"--bogus-thing", "1", "--bogus-thing: unknown option"},
        {"serve", NULL, "unexpected argument \"serve\""},
        {"-w", "1", "unexpected argument \"-w\""},
        {"--workers", NULL, "--workers: missing value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rt_config_t c;
        rt_config_defaults(&c);
        int ret = cases[i].value != NULL ? LOAD(&c, errbuf, (char *)cases[i].flag, (char *)cases[i].value)
                                         : LOAD(&c, errbuf, (char *)cases[i].flag);
        if (ret != -2 || strcmp(errbuf, cases[i].message) != 0)
            fail_msg("%s %s: got %d \"%s\", want -2 \"%s\"", cases[i].flag, cases[i].value ? cases[i].value : "", ret, errbuf,
                     cases[i].message);
        rt_config_free(&c);
    }
    /* a value that starts with "--" is never taken as a value */
    rt_config_t c;
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--listen", "--workers", "2"), -2);
    assert_string_equal(errbuf, "--listen: missing value");
    rt_config_free(&c);
}

static void test_env_errors(void **state)
{
    rt_config_t c;
    setenv("REALTIME_WORKERS", "x", 1);
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, NULL), -1);
    assert_string_equal(errbuf, "REALTIME_WORKERS: must be an integer between 1 and 256");
    rt_config_free(&c);
    unsetenv("REALTIME_WORKERS");
    setenv("REALTIME_MAX_EVENT_BYTES", "100", 1);
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, NULL), -1);
    assert_string_equal(errbuf,
                        "REALTIME_MAX_EVENT_BYTES: must be a size in bytes between 256 and 67108864 (suffixes K, M, G allowed)");
    /* the flag is applied after the env, but the env error stops loading first */
    assert_int_equal(LOAD(&c, errbuf, "--max-event-bytes", "4096"), -1);
    rt_config_free(&c);
    setenv("REALTIME_MAX_EVENT_BYTES", "4K", 1);
    setenv("REALTIME_INSECURE", "yes", 1);
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, NULL), 0);
    assert_int_equal(c.max_event_bytes, 4096);
    assert_true(c.insecure);
    rt_config_free(&c);
    unsetenv("REALTIME_MAX_EVENT_BYTES");
    unsetenv("REALTIME_INSECURE");
}

static void expect_file_error(const char *json, const char *suffix)
{
    char *path = write_file(json), want[512];
    snprintf(want, sizeof(want), "%s: %s", path, suffix);
    rt_config_t c;
    rt_config_defaults(&c);
    int ret = LOAD(&c, errbuf, "--config", path);
    if (ret != -1 || strncmp(errbuf, want, strlen(want)) != 0)
        fail_msg("%s: got %d \"%s\", want -1 \"%s...\"", json, ret, errbuf, want);
    rt_config_free(&c);
    unlink(path);
    free(path);
}

static void test_file_errors(void **state)
{
    expect_file_error("{\"workers\": \"x\"}", "workers: must be an integer between 1 and 256");
    expect_file_error("{\"workers\": 2.5}", "workers: must be an integer between 1 and 256");
    expect_file_error("{\"workers\": -1}", "workers: must be an integer between 1 and 256");
    expect_file_error("{\"workers\": 1e300}", "workers: must be an integer between 1 and 256");
    expect_file_error("{\"insecure\": 1}", "insecure: must be true or false");
    expect_file_error("{\"token_secret\": \"***\"}", "token_secret: \"***\" is the mask check-config prints");
    expect_file_error("{\"namespaces\": {}}", "namespaces: must be a JSON array of objects");
    expect_file_error("{\"namespaces\": [{\"anonymous\": true}]}", "namespaces: entry 0 has no \"pattern\"");
    expect_file_error("{\"namespaces\": [{\"pattern\": \"a\"}, {\"pattern\": \"b.>.c\"}]}",
                      "namespaces: entry 1: \"pattern\" must be a channel name or pattern");
    expect_file_error("{\"namespaces\": [{\"pattern\": \"a\", \"histroy\": false}]}",
                      "namespaces: entry 0: unknown option \"histroy\"");
    expect_file_error("{\"namespaces\": [{\"pattern\": \"a\", \"history\": 0}]}",
                      "namespaces: entry 0: \"history\" must be true or false");
    expect_file_error("{\"mode\": 3}", "mode: must be one of hybrid, websocket, centrifuge");
    expect_file_error("{\"listen\": 8080}", "listen: must be a string");
    expect_file_error("{\"heartbeat\": \"1d\"}", "heartbeat: must be a duration in seconds between 0.01 and 86400");
    expect_file_error("{\"foo\": 1}", "unknown key \"foo\"");
    expect_file_error("{\"heartbaet\": 1}", "unknown key \"heartbaet\" (did you mean \"heartbeat\"?)");
    expect_file_error("{\"config\": \"other.json\"}", "\"config\" can only be given as --config or REALTIME_CONFIG");
    expect_file_error("[1, 2]", "must hold a JSON object");
    expect_file_error("{\n  \"workers\": 2,\n  \"mode\" \"hybrid\"\n}", "line 3, column ");
    expect_file_error("{\"workers\": 2, \"workers\": 3}", "line 1, column ");
    expect_file_error("", "line 1, column ");
}

static void test_file_values(void **state)
{
    char *path =
        write_file("{\"heartbeat\": \"500ms\", \"history_ttl\": 90.5, \"max_body_bytes\": \"2M\", \"token_secret\": \"s3\","
                   " \"insecure\": true, \"mode\": \"centrifuge\", \"listen\": \"[::1]:9\","
                   " \"namespaces\": [{\"pattern\": \"public.>\", \"anonymous\": true, \"history\": false}],"
                   " \"broker\": \"redis\", \"redis_url\": \"redis://10.0.0.1:6380/2\", \"log_level\": \"debug\"}");
    rt_config_t c;
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--config", path), 0);
    assert_true(c.heartbeat_s == 0.5);
    assert_true(c.history_ttl_s == 90.5);
    assert_int_equal(c.max_body_bytes, 2 * 1024 * 1024);
    assert_string_equal(c.token_secret, "s3");
    assert_true(c.insecure);
    assert_int_equal(c.mode, RT_MODE_CENTRIFUGE);
    assert_int_equal(c.n_namespaces, 1);
    assert_string_equal(c.namespaces[0].pattern, "public.>");
    assert_true(c.namespaces[0].anonymous && !c.namespaces[0].history && c.namespaces[0].presence && c.namespaces[0].join_leave);
    assert_false(c.namespaces[0].client_publish || c.namespaces[0].admin_only);
    assert_string_equal(c.broker, "redis");
    assert_string_equal(c.redis_url, "redis://10.0.0.1:6380/2");
    int saved = rt_log_level;
    assert_int_equal(rt_config_finish(&c, errbuf, sizeof(errbuf)), 0);
    assert_string_equal(c.log_level, "debug");
    assert_int_equal(rt_log_level, saved); /* the running server applies it (server/reload.c), not finishing */
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.port, 9);
    /* an empty secret from a flag means none */
    assert_int_equal(LOAD(&c, errbuf, "--token-secret="), 0);
    assert_null(c.token_secret);
    rt_config_free(&c);
    unlink(path);
    free(path);
}

struct listen_case {
    const char *listen, *host;
    int port;
};

static void test_listen(void **state)
{
    static const struct listen_case cases[] = {
        {"127.0.0.1:8080", "127.0.0.1", 8080},
        {"127.1.2.3:1", "127.1.2.3", 1},
        {"0.0.0.0:80", "0.0.0.0", 80},
        {"10.0.0.1:65535", "10.0.0.1", 65535},
        {"128.0.0.1:80", "128.0.0.1", 80},
        {":9000", "0.0.0.0", 9000},
        {"localhost:8081", "127.0.0.1", 8081},
        {"LocalHost:0", "127.0.0.1", 0},
        {"[::1]:8080", "::1", 8080},
        {"[::]:8080", "::", 8080},
        {"[::ffff:127.0.0.1]:80", "::ffff:127.0.0.1", 80},
        {"[2001:db8::1]:443", "2001:db8::1", 443},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rt_config_t c;
        rt_config_defaults(&c);
        assert_int_equal(LOAD(&c, errbuf, "--listen", (char *)cases[i].listen), 0);
        if (rt_config_finish(&c, errbuf, sizeof(errbuf)) != 0)
            fail_msg("%s: %s", cases[i].listen, errbuf);
        assert_string_equal(c.host, cases[i].host);
        assert_int_equal(c.port, cases[i].port);
        rt_config_free(&c);
    }
    /* finish also validates a listen set directly */
    rt_config_t c;
    rt_config_defaults(&c);
    free(c.listen);
    c.listen = strdup("nope");
    assert_int_equal(rt_config_finish(&c, errbuf, sizeof(errbuf)), -1);
    assert_string_equal(errbuf, "listen: must be host:port, e.g. 127.0.0.1:8080");
    rt_config_free(&c);
}

static void test_finish_rules(void **state)
{
    rt_config_t c;
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--max-body-bytes", "1000"), 0);
    assert_int_equal(rt_config_finish(&c, errbuf, sizeof(errbuf)), -1);
    assert_string_equal(errbuf, "max_body_bytes (1000) must be at least max_event_bytes (65536)");
    rt_config_free(&c);

    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--client-queue-bytes", "8K"), 0);
    assert_int_equal(rt_config_finish(&c, errbuf, sizeof(errbuf)), -1);
    assert_non_null(strstr(errbuf, "client_queue_bytes (8192) must be at least max_event_bytes (65536)"));
    rt_config_free(&c);
}

static void test_dump_masks_secrets(void **state)
{
    rt_config_t c;
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--token-secret", "supersecret", "--api-keys", "key-one,key-two", "--mode", "websocket"), 0);
    assert_int_equal(rt_config_finish(&c, errbuf, sizeof(errbuf)), 0);
    char *text = rt_config_dump(&c);
    assert_null(strstr(text, "supersecret"));
    assert_null(strstr(text, "key-one"));
    assert_null(strstr(text, "key-two"));
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "token_secret")), "***");
    json_t *keys = json_object_get(j, "api_keys");
    assert_int_equal(json_array_size(keys), 2);
    assert_string_equal(json_string_value(json_array_get(keys, 0)), "***");
    assert_string_equal(json_string_value(json_object_get(j, "listen")), "127.0.0.1:8080");
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "websocket");
    assert_null(json_object_get(j, "port")); /* derived values are not keys: the dump must load back */
    assert_int_equal(json_integer_value(json_object_get(j, "workers")), c.workers);
    assert_int_equal(json_integer_value(json_object_get(j, "max_event_bytes")), 65536);
    assert_true(json_real_value(json_object_get(j, "heartbeat")) == 25);
    assert_null(json_object_get(j, "loopback"));
    assert_null(json_object_get(j, "host"));
    assert_true(json_is_false(json_object_get(j, "insecure")));
    assert_null(json_object_get(j, "config"));
    json_decref(j);
    free(text);
    rt_config_free(&c);

    rt_config_defaults(&c);
    text = rt_config_dump(&c);
    j = json_loads(text, 0, NULL);
    assert_true(json_is_null(json_object_get(j, "token_secret")));
    assert_int_equal(json_array_size(json_object_get(j, "api_keys")), 0);
    json_decref(j);
    free(text);
    rt_config_free(&c);
}

/* check-config's output is a config: loaded back it gives the same dump (secrets aside, which it masks). */
static void test_dump_loads_back(void **state)
{
    rt_config_t c;
    rt_config_defaults(&c);
    assert_int_equal(LOAD(&c, errbuf, "--listen", "127.0.0.1:9123", "--workers", "3", "--namespaces",
                          "[{\"pattern\":\"public.>\",\"anonymous\":true},{\"pattern\":\"ops.*\",\"admin_only\":true}]",
                          "--heartbeat", "1.5"),
                     0);
    assert_int_equal(rt_config_finish(&c, errbuf, sizeof(errbuf)), 0);
    char *text = rt_config_dump(&c), *path = write_file(text);
    rt_config_t back;
    rt_config_defaults(&back);
    if (LOAD(&back, errbuf, "--config", path) != 0 || rt_config_finish(&back, errbuf, sizeof(errbuf)) != 0)
        fail_msg("the dump does not load back: %s\n%s", errbuf, text);
    char *again = rt_config_dump(&back);
    assert_string_equal(again, text);
    assert_int_equal(back.n_namespaces, 2);
    assert_true(back.namespaces[1].admin_only && !back.namespaces[1].anonymous);
    free(again);
    free(text);
    unlink(path);
    free(path);
    rt_config_free(&back);
    rt_config_free(&c);
}

static void test_usage(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    rt_config_usage(f);
    fclose(f);
    assert_non_null(
        strstr(text, "  --max-event-bytes BYTES  (REALTIME_MAX_EVENT_BYTES, default 65536)\n      largest accepted event"));
    assert_non_null(strstr(text, "  --listen ADDR  (REALTIME_LISTEN, default 127.0.0.1:8080)\n"));
    assert_non_null(strstr(text, "  --api-keys K1,K2  (REALTIME_API_KEYS, default none)\n"));
    assert_non_null(strstr(text, "  --workers N  (REALTIME_WORKERS, default one per online CPU)\n"));
    assert_non_null(strstr(text, "  --config FILE  (REALTIME_CONFIG, default none)\n"));
    /* one entry per key: every line is either an entry or its indented help */
    size_t entries = 0;
    for (const char *p = text; (p = strstr(p, "\n  --")) != NULL; p++)
        entries++;
    /* the first entry has no preceding newline; the dump holds every key but "config" */
    rt_config_t c;
    rt_config_defaults(&c);
    char *dump = rt_config_dump(&c);
    json_t *j = json_loads(dump, 0, NULL);
    assert_int_equal(entries + 1, json_object_size(j) + 1);
    json_decref(j);
    free(dump);
    rt_config_free(&c);
    free(text);
}

/* The rows behind --help also feed realtime.json(5): names, flag and env spellings, what a value must be. */
static void test_key_doc(void **state)
{
    rt_config_key_doc_t d;
    size_t n = 0, found = 0;
    for (; rt_config_key_doc(n, &d); n++) {
        assert_non_null(d.help);
        assert_non_null(d.def);
        assert_true(strncmp(d.env, "REALTIME_", 9) == 0);
        if (strcmp(d.name, "max_event_bytes") == 0) {
            found++;
            assert_string_equal(d.flag, "max-event-bytes");
            assert_string_equal(d.env, "REALTIME_MAX_EVENT_BYTES");
            assert_string_equal(d.def, "65536");
            assert_string_equal(d.value, "a size in bytes between 256 and 67108864 (suffixes K, M, G allowed)");
            assert_true(d.in_file);
        } else if (strcmp(d.name, "config") == 0) {
            found++;
            assert_false(d.in_file);
        } else if (strcmp(d.name, "mode") == 0) {
            found++;
            assert_string_equal(d.value, "one of hybrid, websocket, centrifuge");
        }
    }
    assert_int_equal(found, 3);
    assert_false(rt_config_key_doc(n, &d));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_precedence, clear_env),
        cmocka_unit_test_setup(test_flag_forms, clear_env),
        cmocka_unit_test_setup(test_api_keys, clear_env),
        cmocka_unit_test_setup(test_allowed_origins, clear_env),
        cmocka_unit_test_setup(test_secret_placeholder_refused, clear_env),
        cmocka_unit_test_setup(test_redis_sentinels, clear_env),
        cmocka_unit_test_setup(test_flag_errors, clear_env),
        cmocka_unit_test_setup(test_env_errors, clear_env),
        cmocka_unit_test_setup(test_file_errors, clear_env),
        cmocka_unit_test_setup(test_file_values, clear_env),
        cmocka_unit_test_setup(test_listen, clear_env),
        cmocka_unit_test_setup(test_finish_rules, clear_env),
        cmocka_unit_test_setup(test_dump_masks_secrets, clear_env),
        cmocka_unit_test_setup(test_dump_loads_back, clear_env),
        cmocka_unit_test_setup(test_usage, clear_env),
        cmocka_unit_test_setup(test_key_doc, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
