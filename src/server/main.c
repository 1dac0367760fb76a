/*
 * The realtime binary: serve (the default), publish, token, check-config, genconfig, version, and the hidden
 * `man 1|5`, which prints the manual pages. The help texts are in src/server/usage.c.
 * Exit codes: 0 ok, 1 runtime failure, 2 usage error.
 */
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "realtime/version.h"
#include "llhttp.h"
#include "server/config.h"
#include "server/genconfig.h"
#include "server/server.h"
#include "server/usage.h"
#include "core/token.h"
#include "util/buf.h"
#include "util/mem.h"


enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define MAX_REPLY_BYTES (16 * 1024 * 1024)

static void usage(const char *cmd)
{
    rt__usage_command(stdout, rt__usage_find(cmd));
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("realtime: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

/*
 * Matches argv[*i] against --name: returns 1 with *val (the rest after '=', or the next argument, consumed),
 * 0 when argv[*i] is something else, -1 when the value is missing.
 */
static int match_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
        return 0;
    if (a[2 + n] == '=') {
        *val = a + 3 + n;
        return 1;
    }
    if (a[2 + n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        usage_error("--%s: missing value", name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

/* How serve loaded its configuration, to load it again on SIGHUP. */
typedef struct st_serve_args_t {
    int argc;
    char **argv;
} serve_args_t;

static int load_config(rt_config_t *cfg, void *ctx, char *err, size_t errlen)
{
    const serve_args_t *a = ctx;
    rt_config_defaults(cfg);
    if (rt_config_load(cfg, a->argc, a->argv, err, errlen) != 0 || rt_config_finish(cfg, err, errlen) != 0)
        return -1;
    return 0;
}

static int cmd_serve(int argc, char **argv, bool check_only)
{
    if (wants_help(argc, argv)) {
        usage(check_only ? "check-config" : "serve");
        return EXIT_OK;
    }
    rt_config_t cfg;
    char err[512];
    rt_config_defaults(&cfg);
    int ret = rt_config_load(&cfg, argc, argv, err, sizeof(err));
    if (ret == 0 && rt_config_finish(&cfg, err, sizeof(err)) != 0)
        ret = -1;
    rt_token_verifier_t *tokens = NULL; /* check-config reads the key files the server would */
    if (ret == 0 && check_only && rt_server_tokens_new(&cfg, &tokens, err, sizeof(err)) != 0)
        ret = -1;
    rt_token_verifier_free(tokens);
    if (ret != 0) {
        fprintf(stderr, "realtime: %s\n", err);
        rt_config_free(&cfg);
        return ret == -2 && !check_only ? EXIT_USAGE : EXIT_FAIL;
    }
    if (check_only) {
        char *dump = rt_config_dump(&cfg);
        printf("%s\n", dump); /* stdout stays a config file: the verdict goes to stderr */
        fprintf(stderr, "realtime: configuration ok\n");
        free(dump);
        ret = EXIT_OK;
    } else {
        serve_args_t args = {argc, argv};
        ret = rt_server_run(&cfg, load_config, &args);
    }
    rt_config_free(&cfg);
    return ret;
}

/* A comma-separated list as a NULL-terminated array pointing into *copy (free() both). */
static char **split_list(const char *text, char **copy, size_t *n)
{
    *copy = rt_strdup(text);
    char **list = rt_mem_calloc(strlen(text) / 2 + 2, sizeof(char *));
    for (char *save = NULL, *tok = strtok_r(*copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
        list[(*n)++] = tok;
    return list;
}

/* A PEM private key file, read whole (64 KiB is past any RSA or EC key); NULL with errno set on failure. */
static char *read_key_file(const char *path)
{
    enum { MAX_PEM = 65536 };
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *pem = rt_mem_alloc(MAX_PEM + 1);
    size_t n = fread(pem, 1, MAX_PEM + 1, f);
    bool bad = ferror(f) != 0 || n > MAX_PEM;
    fclose(f);
    if (bad) {
        free(pem);
        errno = EFBIG;
        return NULL;
    }
    pem[n] = '\0';
    return pem;
}

static int cmd_token(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        usage("token");
        return EXIT_OK;
    }
    const char *secret = getenv("REALTIME_TOKEN_SECRET"), *key_file = NULL, *sub = NULL, *ttl = "3600", *channels = NULL,
               *subscribe = NULL, *info_text = NULL, *channel = NULL;
    rt_token_signing_t how = {0};
    const struct {
        const char *name;
        const char **value;
    } opts[] = {{"secret", &secret},   {"key", &key_file},         {"alg", &how.alg},   {"kid", &how.kid},
                {"aud", &how.aud},     {"iss", &how.iss},          {"sub", &sub},       {"ttl", &ttl},
                {"channels", &channels}, {"subscribe", &subscribe}, {"info", &info_text}, {"channel", &channel}};
    rt_token_claims_t claims = {0};
    for (int i = 0; i < argc; i++) {
        int m = 0;
        for (size_t j = 0; j < RT_ARRAY_SIZE(opts) && m == 0; j++)
            m = match_opt(argc, argv, &i, opts[j].name, opts[j].value);
        if (m < 0)
            return EXIT_USAGE;
        if (m == 0 && strcmp(argv[i], "--admin") == 0)
            claims.admin = true;
        else if (m == 0)
            return usage_error("token: unknown option \"%s\" (see realtime token --help)", argv[i]);
    }
    if (key_file == NULL && (secret == NULL || secret[0] == '\0'))
        return usage_error("token: --secret (or REALTIME_TOKEN_SECRET) or --key is required");
    if (sub == NULL)
        return usage_error("token: --sub is required");
    char *end;
    errno = 0;
    long long ttl_s = strtoll(ttl, &end, 10);
    if (ttl[0] == '\0' || *end != '\0' || errno != 0 || ttl_s < 0 || ttl_s > 100LL * 365 * 86400)
        return usage_error("token: --ttl: must be a number of seconds between 0 and 3153600000");
    json_t *info = info_text != NULL ? json_loads(info_text, JSON_DECODE_ANY, NULL) : NULL;
    if (info_text != NULL && info == NULL)
        return usage_error("token: --info: not valid JSON");
    json_decref(info);
    char *pem = key_file != NULL ? read_key_file(key_file) : NULL;
    if (key_file != NULL && pem == NULL) {
        fprintf(stderr, "realtime: token: %s: cannot read: %s\n", key_file, strerror(errno));
        return EXIT_FAIL;
    }

    how.secret = secret;
    how.key_pem = pem;
    claims.sub = (char *)sub;
    claims.info = (char *)info_text;
    claims.channel = (char *)channel;
    claims.iat = (int64_t)time(NULL);
    claims.exp = ttl_s != 0 ? claims.iat + ttl_s : 0;
    char *channels_copy = NULL, *subscribe_copy = NULL, *token = NULL, err[256];
    if (channels != NULL)
        claims.channels = split_list(channels, &channels_copy, &claims.n_channels);
    if (subscribe != NULL)
        claims.subscribe = split_list(subscribe, &subscribe_copy, &claims.n_subscribe);
    int ret = rt_token_sign_with(&how, &claims, &token, err, sizeof(err));
    free(claims.channels);
    free(claims.subscribe);
    free(channels_copy);
    free(subscribe_copy);
    free(pem);
    if (ret != 0) {
        fprintf(stderr, "realtime: token: %s\n", err);
        return EXIT_FAIL;
    }
    printf("%s\n", token);
    free(token);
    return EXIT_OK;
}

typedef struct st_url_t {
    char host[256];
    char port[8];
    char path[512]; /* prefix without the trailing '/' */
} url_t;

static int parse_url(const char *s, url_t *u)
{
    if (strncmp(s, "https://", 8) == 0)
        return usage_error("publish: --url: https is not supported (use http:// to the server or a local proxy)");
    if (strncmp(s, "http://", 7) == 0)
        s += 7;
    else if (strstr(s, "://") != NULL)
        return usage_error("publish: --url: only http:// URLs are supported");
    size_t alen = strcspn(s, "/?#");
    const char *auth = s, *host = s, *port = NULL;
    size_t hlen;
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (close == NULL)
            return usage_error("publish: --url: unterminated [IPv6 address]");
        host = auth + 1, hlen = (size_t)(close - host);
        if (close + 1 < auth + alen) {
            if (close[1] != ':')
                return usage_error("publish: --url: bad authority");
            port = close + 2;
        }
    } else {
        const char *colon = memchr(auth, ':', alen);
        hlen = colon != NULL ? (size_t)(colon - auth) : alen;
        port = colon != NULL ? colon + 1 : NULL;
    }
    size_t plen = port != NULL ? (size_t)(auth + alen - port) : 0;
    if (hlen == 0 || hlen >= sizeof(u->host))
        return usage_error("publish: --url: missing or too long host");
    if (port != NULL && (plen == 0 || plen >= sizeof(u->port) || strspn(port, "0123456789") < plen))
        return usage_error("publish: --url: bad port");
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';
    snprintf(u->port, sizeof(u->port), "%.*s", port != NULL ? (int)plen : 2, port != NULL ? port : "80");
    const char *path = s + alen;
    size_t path_len = strcspn(path, "?#");
    while (path_len > 0 && path[path_len - 1] == '/')
        path_len--;
    if (path_len >= sizeof(u->path))
        return usage_error("publish: --url: path too long");
    memcpy(u->path, path, path_len);
    u->path[path_len] = '\0';
    return 0;
}

static int connect_to(const url_t *u, double timeout_s)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int gai = getaddrinfo(u->host, u->port, &hints, &res), fd = -1;
    if (gai != 0) {
        fprintf(stderr, "realtime: publish: %s: %s\n", u->host, gai_strerror(gai));
        return -1;
    }
    /* On Linux SO_SNDTIMEO also bounds connect(), so one pair of timeouts covers the whole exchange. */
    struct timeval tv = {.tv_sec = (time_t)timeout_s, .tv_usec = (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
    int saved = 0;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol)) < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "realtime: publish: cannot connect to %s:%s: %s\n", u->host, u->port,
                saved == EINPROGRESS || saved == EAGAIN ? "timed out" : strerror(saved));
    return fd;
}

typedef struct st_reply_t {
    rt_buf_t body;
    bool complete;
    bool too_big;
} reply_t;

static int on_reply_body(llhttp_t *p, const char *at, size_t len)
{
    reply_t *r = p->data;
    if (rt_buf_try_reserve(&r->body, len, MAX_REPLY_BYTES) != 0) {
        r->too_big = true;
        return -1;
    }
    memcpy(r->body.base + r->body.len, at, len);
    r->body.len += len;
    return 0;
}

static int on_reply_complete(llhttp_t *p)
{
    ((reply_t *)p->data)->complete = true;
    return HPE_PAUSED;
}

/* Sends one request and reads the reply; returns the HTTP status, or -1 (reported on stderr). */
static int http_post(const url_t *u, const char *api_key, const char *body, size_t body_len, double timeout_s, reply_t *reply)
{
    int fd = connect_to(u, timeout_s);
    if (fd < 0)
        return -1;
    rt_buf_t req = {0};
    bool v6 = strchr(u->host, ':') != NULL;
    rt_buf_appendf(&req,
                   "POST %s/api/events HTTP/1.1\r\nHost: %s%s%s:%s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n",
                   u->path, v6 ? "[" : "", u->host, v6 ? "]" : "", u->port, body_len);
    if (api_key != NULL && api_key[0] != '\0')
        rt_buf_appendf(&req, "X-API-Key: %s\r\n", api_key);
    rt_buf_appendf(&req, "User-Agent: realtime/%s\r\nAccept: application/json\r\nConnection: close\r\n\r\n", RT_VERSION);
    rt_buf_append(&req, body, body_len);
    int status = -1;
    for (size_t off = 0; off < req.len;) {
        ssize_t n = send(fd, req.base + off, req.len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "realtime: publish: send: %s\n", n < 0 && errno == EAGAIN ? "timed out" : strerror(errno));
            goto Exit;
        }
        off += (size_t)n;
    }

    llhttp_settings_t settings;
    llhttp_settings_init(&settings);
    settings.on_body = on_reply_body;
    settings.on_message_complete = on_reply_complete;
    llhttp_t parser;
    llhttp_init(&parser, HTTP_RESPONSE, &settings);
    parser.data = reply;
    char buf[16384];
    llhttp_errno_t perr = HPE_OK;
    while (!reply->complete) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "realtime: publish: receive: %s\n", errno == EAGAIN ? "timed out" : strerror(errno));
            goto Exit;
        }
        perr = n == 0 ? llhttp_finish(&parser) : llhttp_execute(&parser, buf, (size_t)n);
        if (perr != HPE_OK && perr != HPE_PAUSED) {
            fprintf(stderr, "realtime: publish: %s\n", reply->too_big ? "reply too large" : "malformed HTTP reply");
            goto Exit;
        }
        if (n == 0)
            break;
    }
    if (!reply->complete) {
        fprintf(stderr, "realtime: publish: connection closed before the reply was complete\n");
        goto Exit;
    }
    status = parser.status_code;
Exit:
    rt_buf_free(&req);
    close(fd);
    return status;
}

static char *read_stream(FILE *f)
{
    rt_buf_t b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rt_buf_append(&b, chunk, n);
    rt_buf_append(&b, "", 1);
    return b.base;
}

/* Builds the request body from --file or from --type/--channel/--data/--id; NULL after reporting a usage error. */
static char *publish_body(const char *file, const char *type, json_t *channels, const char *data, const char *id)
{
    json_error_t jerr;
    if (file != NULL) {
        if (type != NULL || json_array_size(channels) != 0 || data != NULL || id != NULL) {
            usage_error("publish: --file cannot be combined with --type, --channel, --data or --id");
            return NULL;
        }
        FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
        if (f == NULL) {
            usage_error("publish: %s: %s", file, strerror(errno));
            return NULL;
        }
        char *text = read_stream(f);
        if (f != stdin)
            fclose(f);
        json_t *j = json_loads(text, 0, &jerr);
        if (!json_is_object(j)) {
            usage_error("publish: %s: %s", file, j == NULL ? jerr.text : "must hold a JSON object");
            json_decref(j);
            free(text);
            return NULL;
        }
        json_decref(j);
        return text; /* sent as written, so the server sees exactly the publisher's bytes */
    }
    if (type == NULL || json_array_size(channels) == 0) {
        usage_error("publish: --type and at least one --channel are required (or --file)");
        return NULL;
    }
    json_t *ev = json_object();
    if (id != NULL)
        json_object_set_new(ev, "id", json_string(id));
    json_object_set_new(ev, "type", json_string(type));
    json_object_set(ev, "channels", channels);
    if (data != NULL) {
        json_t *d = json_loads(data, JSON_DECODE_ANY, &jerr);
        if (d == NULL) {
            usage_error("publish: --data: not valid JSON: %s", jerr.text);
            json_decref(ev);
            return NULL;
        }
        json_object_set_new(ev, "data", d);
    }
    char *text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    return text;
}

static void add_channels(json_t *arr, const char *list)
{
    for (const char *p = list; *p != '\0';) {
        size_t n = strcspn(p, ",");
        if (n > 0)
            json_array_append_new(arr, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
}

static int cmd_publish(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        usage("publish");
        return EXIT_OK;
    }
    const char *url = getenv("REALTIME_URL"), *key = getenv("REALTIME_API_KEY"), *type = NULL, *data = NULL, *id = NULL,
               *file = NULL, *timeout = "10", *v;
    json_t *channels = json_array();
    int ret = EXIT_USAGE;
    for (int i = 0, m = 0; i < argc; i++) {
        if ((m = match_opt(argc, argv, &i, "url", &v)) > 0)
            url = v;
        else if (m == 0 && (m = match_opt(argc, argv, &i, "api-key", &v)) > 0)
            key = v;
        else if (m == 0 && (m = match_opt(argc, argv, &i, "type", &v)) > 0)
            type = v;
        else if (m == 0 && (m = match_opt(argc, argv, &i, "channel", &v)) > 0)
            add_channels(channels, v);
        else if (m == 0 && (m = match_opt(argc, argv, &i, "channels", &v)) > 0)
            add_channels(channels, v);
        else if (m == 0 && (m = match_opt(argc, argv, &i, "data", &v)) > 0)
            data = v;
        else if (m == 0 && (m = match_opt(argc, argv, &i, "id", &v)) > 0)
            id = v;
        else if (m == 0 && (m = match_opt(argc, argv, &i, "file", &v)) > 0)
            file = v;
        else if (m == 0 && (m = match_opt(argc, argv, &i, "timeout", &v)) > 0)
            timeout = v;
        else if (m == 0) {
            usage_error("publish: unknown option \"%s\" (see realtime publish --help)", argv[i]);
            goto Exit;
        }
        if (m < 0)
            goto Exit;
    }
    char *end;
    double timeout_s = strtod(timeout, &end);
    if (timeout[0] == '\0' || *end != '\0' || !(timeout_s >= 0.001 && timeout_s <= 3600)) {
        usage_error("publish: --timeout: must be a number of seconds between 0.001 and 3600");
        goto Exit;
    }
    url_t u;
    if (parse_url(url != NULL && url[0] != '\0' ? url : "http://127.0.0.1:8080", &u) != 0)
        goto Exit;
    char *body = publish_body(file, type, channels, data, id);
    if (body == NULL)
        goto Exit;
    reply_t reply;
    memset(&reply, 0, sizeof(reply));
    int status = http_post(&u, key, body, strlen(body), timeout_s, &reply);
    free(body);
    if (status < 0) {
        ret = EXIT_FAIL;
    } else {
        fwrite(reply.body.base, 1, reply.body.len, stdout);
        if (reply.body.len == 0 || reply.body.base[reply.body.len - 1] != '\n')
            fputc('\n', stdout);
        if (status < 200 || status > 299)
            fprintf(stderr, "realtime: publish: HTTP %d\n", status);
        ret = status >= 200 && status <= 299 ? EXIT_OK : EXIT_FAIL;
    }
    rt_buf_free(&reply.body);
Exit:
    json_decref(channels);
    return ret;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;
    if (cmd == NULL || cmd[0] == '-') {
        if (cmd != NULL && (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)) {
            rt__usage_main(stdout);
            return EXIT_OK;
        }
        if (cmd != NULL && strcmp(cmd, "--version") == 0) {
            printf("realtime %s\n", RT_VERSION);
            return EXIT_OK;
        }
        return cmd_serve(argc - 1, argv + 1, false);
    }
    argc -= 2, argv += 2;
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc, argv, false);
    if (strcmp(cmd, "check-config") == 0)
        return cmd_serve(argc, argv, true);
    if (strcmp(cmd, "publish") == 0)
        return cmd_publish(argc, argv);
    if (strcmp(cmd, "token") == 0)
        return cmd_token(argc, argv);
    if (strcmp(cmd, "genconfig") == 0) {
        if (wants_help(argc, argv)) {
            usage("genconfig");
            return EXIT_OK;
        }
        if (argc != 0)
            return usage_error("genconfig: unexpected argument \"%s\"", argv[0]);
        if (rt_genconfig(stdout) != 0) {
            fprintf(stderr, "realtime: genconfig: no random bytes from the kernel\n");
            return EXIT_FAIL;
        }
        return EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0) {
        if (wants_help(argc, argv)) {
            usage("version");
            return EXIT_OK;
        }
        if (argc != 0)
            return usage_error("version: unexpected argument \"%s\"", argv[0]);
        printf("realtime %s\n", RT_VERSION);
        return EXIT_OK;
    }
    /* Hidden: the manual pages, from the same tables as --help (make writes them, make install installs them). */
    if (strcmp(cmd, "man") == 0) {
        if (argc != 1 || rt__manpage(stdout, argv[0], RT_VERSION) != 0)
            return usage_error("man: expected a section, 1 or 5");
        return EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0) {
        rt__usage_main(stdout);
        return EXIT_OK;
    }
    usage_error("unknown command \"%s\" (see realtime --help)", cmd);
    return EXIT_USAGE;
}
