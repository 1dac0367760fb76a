#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include <pthread.h>
#include "realtime/error.h"
#include "transport/ws_handshake.h"

/* RFC 6455 section 1.3 */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *len)
{
    while (*len != 0 && is_ows(**s)) {
        ++*s;
        --*len;
    }
    while (*len != 0 && is_ows((*s)[*len - 1]))
        --*len;
}

/* Calls match() on each element of a comma-separated list, spaces trimmed, empty elements skipped
 * (RFC 9110 section 5.6.1 allows them). Returns 1 as soon as one matches. */
static int list_any(const char *s, size_t len, int (*match)(const char *, size_t, const char *), const char *arg)
{
    const char *end;

    if (s == NULL)
        return 0;
    end = s + len;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *elem = s;
        size_t elen = (size_t)((comma != NULL ? comma : end) - s);
        trim(&elem, &elen);
        if (elen != 0 && match(elem, elen, arg))
            return 1;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    return 0;
}

static int match_icase(const char *s, size_t len, const char *token)
{
    return strlen(token) == len && strncasecmp(s, token, len) == 0;
}

static int match_exact(const char *s, size_t len, const char *token)
{
    return strlen(token) == len && memcmp(s, token, len) == 0;
}

int rt_ws_token_list_has(const char *s, size_t len, const char *token)
{
    return list_any(s, len, match_icase, token);
}

int rt_ws_handshake_offers_protocol(const rt_ws_handshake_req_t *req, const char *name)
{
    return list_any(req->protocol, req->protocol_len, match_exact, name);
}

static int is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* 16 bytes in base64 are 22 characters and "==". Padding bits in the 22nd character are not
 * checked: any decoder still gets 16 bytes from them. */
static int key_valid(const char *key, size_t len)
{
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; ++i)
        if (!is_b64(key[i]))
            return 0;
    return 1;
}

/*
 * EVP_Digest with EVP_sha1() looks the algorithm up and allocates a context on every call: about 8,000
 * instructions, an eighth of accepting a connection. The digest is fetched once and each thread keeps its
 * context, which leaves the hashing itself.
 */
static EVP_MD *sha1_md;
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;
static pthread_key_t sha1_ctx_key; /* each thread's context, freed when the thread ends */

static void free_ctx(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void fetch_sha1(void)
{
    sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL); /* kept for the life of the process */
    pthread_key_create(&sha1_ctx_key, free_ctx);
}

int rt_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    unsigned char in[64 + sizeof(WS_GUID)], digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;

    if (key_len > 64)
        return RT_EINVAL;
    pthread_once(&sha1_once, fetch_sha1);
    EVP_MD_CTX *sha1_ctx = pthread_getspecific(sha1_ctx_key);
    if (sha1_ctx == NULL) {
        if ((sha1_ctx = EVP_MD_CTX_new()) == NULL)
            return RT_ENOMEM;
        pthread_setspecific(sha1_ctx_key, sha1_ctx);
    }
    memcpy(in, key, key_len);
    memcpy(in + key_len, WS_GUID, sizeof(WS_GUID) - 1);
    if (sha1_md == NULL || EVP_DigestInit_ex2(sha1_ctx, sha1_md, NULL) != 1 ||
        EVP_DigestUpdate(sha1_ctx, in, key_len + sizeof(WS_GUID) - 1) != 1 || EVP_DigestFinal_ex(sha1_ctx, digest, &dlen) != 1 ||
        dlen != 20)
        return RT_EINVAL;
    EVP_EncodeBlock((unsigned char *)out, digest, 20); /* 28 characters and a NUL */
    return 0;
}

static int refuse(rt_ws_handshake_t *hs, int status, const char *why, const char *headers)
{
    hs->status = status;
    hs->error = why;
    hs->headers = headers;
    hs->accept[0] = '\0';
    return status;
}

int rt_ws_handshake_check(const rt_ws_handshake_req_t *req, rt_ws_handshake_t *hs)
{
    const char *s;
    size_t len;

    if (req->method == NULL || req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
        return refuse(hs, 405, "a WebSocket handshake must be a GET", "Allow: GET\r\n");
    if (req->http_major < 1 || (req->http_major == 1 && req->http_minor < 1))
        return refuse(hs, 400, "a WebSocket handshake needs HTTP/1.1", "");
    if (!rt_ws_token_list_has(req->upgrade, req->upgrade_len, "websocket"))
        return refuse(hs, 400, "Upgrade header does not name websocket", "");
    if (!rt_ws_token_list_has(req->connection, req->connection_len, "upgrade"))
        return refuse(hs, 400, "Connection header does not contain upgrade", "");

    s = req->version;
    len = req->version_len;
    if (s != NULL)
        trim(&s, &len);
    if (s == NULL || len == 0)
        return refuse(hs, 400, "missing Sec-WebSocket-Version", "");
    if (len != 2 || memcmp(s, "13", 2) != 0)
        return refuse(hs, 426, "unsupported Sec-WebSocket-Version", "Sec-WebSocket-Version: 13\r\n");

    s = req->key;
    len = req->key_len;
    if (s != NULL)
        trim(&s, &len);
    if (s == NULL || !key_valid(s, len))
        return refuse(hs, 400, "Sec-WebSocket-Key is not 16 bytes in base64", "");
    if (rt_ws_accept_key(s, len, hs->accept) != 0)
        return refuse(hs, 400, "cannot compute Sec-WebSocket-Accept", "");

    hs->status = 101;
    hs->error = NULL;
    hs->headers = "";
    return 101;
}

/* Appends len bytes at *at when they fit before end; false (nothing written) otherwise. */
static bool put(char **at, const char *end, const char *s, size_t len)
{
    if ((size_t)(end - *at) < len)
        return false;
    memcpy(*at, s, len);
    *at += len;
    return true;
}

#define PUT_LIT(at, end, lit) put(at, end, lit, sizeof(lit) - 1)

/* Built with memcpy, not snprintf: it runs once per connection, where snprintf cost 1,500 instructions. */
int rt_ws_handshake_response(char *buf, size_t cap, const rt_ws_handshake_t *hs, const char *protocol, const char *extra)
{
    char *at = buf;
    const char *end = buf + cap - (cap > 0); /* room for the NUL */
    bool ok = cap > 0 &&
              PUT_LIT(&at, end, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: ") &&
              put(&at, end, hs->accept, strlen(hs->accept)) && PUT_LIT(&at, end, "\r\n");
    if (ok && protocol != NULL)
        ok = PUT_LIT(&at, end, "Sec-WebSocket-Protocol: ") && put(&at, end, protocol, strlen(protocol)) &&
             PUT_LIT(&at, end, "\r\n");
    if (ok && extra != NULL)
        ok = put(&at, end, extra, strlen(extra));
    if (!ok || !PUT_LIT(&at, end, "\r\n"))
        return RT_E2BIG;
    *at = '\0';
    return (int)(at - buf);
}
