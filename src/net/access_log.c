#include <stdio.h>
#include <string.h>
#include "net/access_log.h"
#include "util/clock.h"
#include "util/log.h"

#define PATH_MAX_LOGGED 256

static const char *const transport_names[RT_CONN_KINDS] = {"http", "ws", "sse", "centrifuge", "uni_sse"};

/* The path as logged: at most PATH_MAX_LOGGED bytes, as sent (still %-encoded), with anything but printable ASCII
 * (and '"', '\') %-escaped, so that it needs no quoting in text and no escaping in JSON. */
static void clean_path(char *out, size_t size, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (path == NULL || path[0] == '\0')
        path = "-";
    for (const unsigned char *p = (const unsigned char *)path; *p != '\0' && o + 4 < size; p++) {
        if (*p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

void rt__access_log_request(rt_conn_t *c, const char *method, const char *path, int status, size_t bytes, int64_t start_us)
{
    rt_conn_access_t *a = rt__conn_access(c);
    if (a == NULL)
        return;
    char p[PATH_MAX_LOGGED * 3 + 4], m[32], text[1024], json[1024];
    double ms = (double)(rt_clock_mono_us() - start_us) / 1000.0;
    clean_path(p, sizeof(p), path);
    clean_path(m, sizeof(m), method);
    snprintf(text, sizeof(text), "%s %s %d bytes=%zu duration_ms=%.3f client=%s", m, p, status, bytes, ms, a->client);
    snprintf(json, sizeof(json),
             "\"kind\":\"http\",\"method\":\"%s\",\"path\":\"%s\",\"status\":%d,\"bytes\":%zu,\"duration_ms\":%.3f,\"client\":\"%s\"", m,
             p, status, bytes, ms, a->client);
    rt_log_record(RT_LOG_INFO, "access", text, json);
}

void rt__access_log_stream(rt_conn_t *c)
{
    rt_conn_access_t *a = rt__conn_access(c);
    if (a == NULL || a->logged || c->kind == RT_CONN_HTTP || c->kind >= RT_CONN_KINDS)
        return;
    a->logged = true;
    char reason[RT_ACCESS_REASON_MAX * 6 + 1], text[1024], json[1024];
    double ms = (double)(rt_clock_mono_us() - a->start_us) / 1000.0;
    const char *why = a->noted ? a->reason : "closed";
    /* The reason may come from the peer (a WebSocket close frame): escaped like a JSON string in both forms. */
    rt_log_json_escape(reason, sizeof(reason), why, strlen(why));
    snprintf(text, sizeof(text), "stream transport=%s duration_ms=%.3f bytes_in=%llu bytes_out=%llu code=%u reason=\"%s\" client=%s",
             transport_names[c->kind], ms, (unsigned long long)a->bytes_in, (unsigned long long)a->bytes_out, a->code, reason,
             a->client);
    snprintf(json, sizeof(json),
             "\"kind\":\"stream\",\"transport\":\"%s\",\"duration_ms\":%.3f,\"bytes_in\":%llu,\"bytes_out\":%llu,\"code\":%u,"
             "\"reason\":\"%s\",\"client\":\"%s\"",
             transport_names[c->kind], ms, (unsigned long long)a->bytes_in, (unsigned long long)a->bytes_out, a->code, reason,
             a->client);
    rt_log_record(RT_LOG_INFO, "access", text, json);
}
