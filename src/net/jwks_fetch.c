#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "llhttp.h"
#include "realtime/error.h"
#include "net/jwks_fetch.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/mem.h"

#define LOG_PREFIX "jwks"
#include "util/log.h"

struct st_rt_jwks_fetch_t {
    char *url; /* for logs */
    char host[256], port[8], *path;
    bool host_is_ip;
    double refresh_s;
    rt_token_verifier_t *tokens; /* guarded by lock: a reload retargets it (rt_jwks_fetch_retarget) */
    SSL_CTX *ssl_ctx;
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop, first_done and fd */
    pthread_cond_t wake;  /* stop, or the first fetch done */
    bool stop;
    bool first_done;
    int fd; /* the connection of a fetch in progress, or -1: stop shuts it down to end a blocked read */
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* https://host[:port][/path], host a name, an IPv4 address or a [bracketed] IPv6 address; no userinfo. */
static int parse_url(rt_jwks_fetch_t *f, const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "https://", 8) != 0)
        return fail(err, errlen, "token_jwks_url: must be an https:// URL");
    const char *auth = url + 8, *path = auth + strcspn(auth, "/?#"), *host = auth, *port = NULL;
    size_t hlen;
    if (memchr(auth, '@', (size_t)(path - auth)) != NULL)
        return fail(err, errlen, "token_jwks_url: user information is not supported");
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', (size_t)(path - auth));
        if (close == NULL || (close + 1 < path && close[1] != ':'))
            return fail(err, errlen, "token_jwks_url: bad [IPv6 address]");
        host = auth + 1, hlen = (size_t)(close - host), port = close + 1 < path ? close + 2 : NULL;
    } else {
        const char *colon = memchr(auth, ':', (size_t)(path - auth));
        hlen = (size_t)((colon != NULL ? colon : path) - auth), port = colon != NULL ? colon + 1 : NULL;
    }
    size_t plen = port != NULL ? (size_t)(path - port) : 0;
    if (hlen == 0 || hlen >= sizeof(f->host))
        return fail(err, errlen, "token_jwks_url: missing or too long host");
    if (port != NULL && (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen))
        return fail(err, errlen, "token_jwks_url: bad port");
    memcpy(f->host, host, hlen);
    f->host[hlen] = '\0';
    snprintf(f->port, sizeof(f->port), "%.*s", port != NULL ? (int)plen : 3, port != NULL ? port : "443");
    unsigned char addr[16];
    f->host_is_ip = inet_pton(AF_INET, f->host, addr) == 1 || inet_pton(AF_INET6, f->host, addr) == 1;
    f->path = rt_strndup(path[0] == '/' ? path : "/", path[0] == '/' ? strcspn(path, "#") : 1);
    return 0;
}

/* On Linux SO_SNDTIMEO also bounds connect(), so one pair of timeouts covers every blocking call. */
static int connect_tcp(rt_jwks_fetch_t *f, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int gai = getaddrinfo(f->host, f->port, &hints, &res), fd = -1, saved = 0;
    if (gai != 0)
        return fail(err, errlen, "%s: %s", f->host, gai_strerror(gai));
    struct timeval tv = {.tv_sec = RT_JWKS_TIMEOUT_S};
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol)) < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return fail(err, errlen, "cannot connect to %s:%s: %s", f->host, f->port,
                    saved == EINPROGRESS || saved == EAGAIN ? "timed out" : strerror(saved));
    return fd;
}

typedef struct st_response_t {
    rt_buf_t *body;
    bool too_big;
} response_t;

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    response_t *r = p->data;
    if (rt_buf_try_reserve(r->body, len, RT_TOKEN_JWKS_MAX_BYTES) != 0) {
        r->too_big = true;
        return -1;
    }
    memcpy(r->body->base + r->body->len, at, len);
    r->body->len += len;
    return 0;
}

static int on_complete(llhttp_t *p)
{
    return HPE_PAUSED;
}

/* Sends the request and reads the response into body; a whole response must arrive within the deadline. */
static int exchange(rt_jwks_fetch_t *f, SSL *ssl, rt_buf_t *body, char *err, size_t errlen)
{
    char req[1024], buf[16384];
    bool v6 = strchr(f->host, ':') != NULL, default_port = strcmp(f->port, "443") == 0;
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nAccept: application/json\r\nUser-Agent: realtime\r\n"
                     "Connection: close\r\n\r\n",
                     f->path, v6 ? "[" : "", f->host, v6 ? "]" : "", default_port ? "" : ":", default_port ? "" : f->port);
    if (n <= 0 || (size_t)n >= sizeof(req))
        return fail(err, errlen, "URL too long");
    if (SSL_write(ssl, req, n) != n)
        return fail(err, errlen, "sending the request failed");
    llhttp_settings_t settings;
    llhttp_settings_init(&settings);
    settings.on_body = on_body;
    settings.on_message_complete = on_complete;
    llhttp_t parser;
    llhttp_init(&parser, HTTP_RESPONSE, &settings);
    response_t r = {.body = body};
    parser.data = &r;
    /* on_complete pauses the parser: HPE_PAUSED is a whole response. */
    int64_t deadline = rt_clock_mono_ms() + 3 * RT_JWKS_TIMEOUT_S * 1000;
    llhttp_errno_t e = HPE_OK;
    while (e == HPE_OK) {
        if (rt_clock_mono_ms() > deadline)
            return fail(err, errlen, "response took longer than %d s", 3 * RT_JWKS_TIMEOUT_S);
        int got = SSL_read(ssl, buf, sizeof(buf));
        /* The end of the stream completes a response without a length; a cut-short one stays HPE_OK or fails. */
        e = got > 0 ? llhttp_execute(&parser, buf, (size_t)got) : llhttp_finish(&parser);
        if (got <= 0 && e == HPE_OK)
            return fail(err, errlen, "connection closed before the response ended");
    }
    if (r.too_big)
        return fail(err, errlen, "response larger than %d bytes", RT_TOKEN_JWKS_MAX_BYTES);
    if (e != HPE_PAUSED)
        return fail(err, errlen, "bad HTTP response: %s", llhttp_errno_name(e));
    if (parser.status_code != 200)
        return fail(err, errlen, "HTTP status %d", parser.status_code);
    return 0;
}

void rt_jwks_fetch_retarget(rt_jwks_fetch_t *f, rt_token_verifier_t *tokens)
{
    pthread_mutex_lock(&f->lock);
    f->tokens = tokens;
    pthread_mutex_unlock(&f->lock);
}

static void set_fd(rt_jwks_fetch_t *f, int fd)
{
    pthread_mutex_lock(&f->lock);
    f->fd = fd;
    pthread_mutex_unlock(&f->lock);
}

/* One fetch: TCP, TLS with the server's certificate checked for the host, then the HTTP exchange. */
static int fetch(rt_jwks_fetch_t *f, rt_buf_t *body, char *err, size_t errlen)
{
    int fd = connect_tcp(f, err, errlen);
    if (fd < 0)
        return -1;
    set_fd(f, fd);
    SSL *ssl = SSL_new(f->ssl_ctx);
    int ret = -1;
    X509_VERIFY_PARAM *param = ssl != NULL ? SSL_get0_param(ssl) : NULL;
    if (param == NULL || SSL_set_fd(ssl, fd) != 1 ||
        (f->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, f->host) : X509_VERIFY_PARAM_set1_host(param, f->host, 0)) != 1 ||
        (!f->host_is_ip && SSL_set_tlsext_host_name(ssl, f->host) != 1)) {
        fail(err, errlen, "TLS setup failed");
    } else if (SSL_connect(ssl) != 1) {
        long v = SSL_get_verify_result(ssl);
        unsigned long e = ERR_peek_last_error();
        fail(err, errlen, "TLS handshake with %s:%s failed: %s", f->host, f->port,
             v != X509_V_OK ? X509_verify_cert_error_string(v)
             : e != 0       ? ERR_reason_error_string(e)
                            : "connection closed");
    } else {
        ret = exchange(f, ssl, body, err, errlen);
        SSL_shutdown(ssl);
    }
    ERR_clear_error();
    SSL_free(ssl);
    set_fd(f, -1);
    close(fd);
    return ret;
}

/* Waits on f->wake, with f->lock held, until *flag or s seconds have passed. */
static void wait_until(rt_jwks_fetch_t *f, const bool *flag, double s)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)s;
    until.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
    if (until.tv_nsec >= 1000000000L)
        until.tv_sec++, until.tv_nsec -= 1000000000L;
    while (!*flag && pthread_cond_timedwait(&f->wake, &f->lock, &until) != ETIMEDOUT)
        ;
}

/* Marks the first fetch done, then sleeps up to s seconds; true when told to stop. */
static bool wait_or_stop(rt_jwks_fetch_t *f, double s)
{
    pthread_mutex_lock(&f->lock);
    f->first_done = true;
    pthread_cond_broadcast(&f->wake);
    wait_until(f, &f->stop, s);
    bool stop = f->stop;
    pthread_mutex_unlock(&f->lock);
    return stop;
}

static void *run(void *arg)
{
    rt_jwks_fetch_t *f = arg;
    bool have_keys = false;
    double wait_s;
    do {
        rt_buf_t body = {0};
        char err[256], why[256];
        int r = fetch(f, &body, err, sizeof(err));
        pthread_mutex_lock(&f->lock);
        rt_token_verifier_t *tokens = f->tokens; /* one retired by a reload stays valid: the server keeps it */
        pthread_mutex_unlock(&f->lock);
        if (r == 0 && rt_token_verifier_set_jwks(tokens, body.base != NULL ? body.base : "", body.len, why, sizeof(why)) != 0)
            r = -1, snprintf(err, sizeof(err), "%s", why);
        rt_buf_free(&body);
        wait_s = r == 0 || have_keys || f->refresh_s < RT_JWKS_RETRY_S ? f->refresh_s : RT_JWKS_RETRY_S;
        if (r == 0 && !have_keys)
            RT_LOG_INFO("%s: keys loaded; refreshed every %.0f s", f->url, f->refresh_s);
        else if (r == 0)
            RT_LOG_DEBUG("%s: keys refreshed", f->url);
        else if (have_keys)
            RT_LOG_WARN("%s: %s; keeping the keys of the last fetch", f->url, err);
        else
            RT_LOG_WARN("%s: %s; no keys from it yet, retrying in %.0f s", f->url, err, wait_s);
        have_keys = have_keys || r == 0;
    } while (!wait_or_stop(f, wait_s));
    return NULL;
}

static void free_fetch(rt_jwks_fetch_t *f)
{
    SSL_CTX_free(f->ssl_ctx);
    pthread_cond_destroy(&f->wake);
    pthread_mutex_destroy(&f->lock);
    free(f->path);
    free(f->url);
    free(f);
}

rt_jwks_fetch_t *rt_jwks_fetch_start(const char *url, double refresh_s, rt_token_verifier_t *tokens, char *err, size_t errlen)
{
    rt_jwks_fetch_t *f = rt_mem_calloc(1, sizeof(*f));
    f->url = rt_strdup(url);
    f->refresh_s = refresh_s;
    f->tokens = tokens;
    f->fd = -1;
    pthread_mutex_init(&f->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (parse_url(f, url, err, errlen) != 0) {
        free_fetch(f);
        return NULL;
    }
    f->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (f->ssl_ctx == NULL || SSL_CTX_set_default_verify_paths(f->ssl_ctx) != 1 ||
        SSL_CTX_set_min_proto_version(f->ssl_ctx, TLS1_2_VERSION) != 1) {
        fail(err, errlen, "token_jwks_url: cannot set up TLS");
        free_fetch(f);
        return NULL;
    }
    SSL_CTX_set_verify(f->ssl_ctx, SSL_VERIFY_PEER, NULL);
    int e = pthread_create(&f->thread, NULL, run, f);
    if (e != 0) {
        fail(err, errlen, "token_jwks_url: cannot start a thread: %s", strerror(e));
        free_fetch(f);
        return NULL;
    }
    /* Clients connecting in the first moments should find the keys: give the first fetch a moment to finish. */
    pthread_mutex_lock(&f->lock);
    wait_until(f, &f->first_done, RT_JWKS_TIMEOUT_S);
    pthread_mutex_unlock(&f->lock);
    return f;
}

void rt_jwks_fetch_stop(rt_jwks_fetch_t *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    if (f->fd >= 0)
        shutdown(f->fd, SHUT_RDWR);
    pthread_cond_broadcast(&f->wake);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    free_fetch(f);
}
