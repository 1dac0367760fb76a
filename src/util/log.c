#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "util/log.h"

int rt_log_level = RT_LOG_INFO;
int rt_log_format = RT_LOG_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* Room for a message, and for a whole line: a JSON-escaped message can grow six-fold, but lines stay bounded. */
#define MSG_MAX 2048
#define LINE_MAX 8192
/* Messages followed for repeats at once; past this (many distinct messages within a window) they go unlimited. */
#define REPEAT_SLOTS 256
#define REPEAT_PROBES 16
/* What a summary quotes of the last message shown before the suppression. */
#define REPEAT_TEXT_MAX 200

typedef struct st_repeat_t {
    const char *prefix, *fmt; /* the key, by pointer; NULL: free slot */
    int64_t window_start;
    unsigned count; /* messages in the window, shown or not */
    int level;
    char text[REPEAT_TEXT_MAX + 1]; /* the last one shown */
} repeat_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static repeat_t repeats[REPEAT_SLOTS]; /* guarded by lock */
static FILE *output;
static int64_t (*wall_clock)(void);
static int64_t (*mono_clock)(void);

void rt__log_set_output(FILE *out)
{
    output = out;
}

void rt__log_set_clocks(int64_t (*wall_ms)(void), int64_t (*mono_ms)(void))
{
    wall_clock = wall_ms;
    mono_clock = mono_ms;
}

static int64_t now_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    return wall_clock != NULL ? wall_clock() : now_of(CLOCK_REALTIME);
}

static int64_t mono_ms(void)
{
    return mono_clock != NULL ? mono_clock() : now_of(CLOCK_MONOTONIC);
}

/* Writes v as exactly n decimal digits (v < 10^n). */
static char *digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + n;
}

size_t rt__log_timestamp(char *buf, int64_t unix_ms)
{
    time_t sec = (time_t)(unix_ms / 1000);
    int ms = (int)(unix_ms % 1000);
    if (ms < 0)
        ms += 1000, sec--;
    struct tm tm;
    gmtime_r(&sec, &tm);
    char *p = buf;
    p = digits(p, (unsigned)(tm.tm_year + 1900) % 10000, 4), *p++ = '-';
    p = digits(p, (unsigned)tm.tm_mon + 1, 2), *p++ = '-';
    p = digits(p, (unsigned)tm.tm_mday, 2), *p++ = 'T';
    p = digits(p, (unsigned)tm.tm_hour, 2), *p++ = ':';
    p = digits(p, (unsigned)tm.tm_min, 2), *p++ = ':';
    p = digits(p, (unsigned)tm.tm_sec, 2), *p++ = '.';
    p = digits(p, (unsigned)ms, 3), *p++ = 'Z';
    *p = '\0';
    return (size_t)(p - buf);
}

/* Length of the valid UTF-8 sequence at s[0..len) (RFC 3629: no overlongs, surrogates or code points past
 * U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

size_t rt_log_json_escape(char *dst, size_t size, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0;
    if (size == 0)
        return 0;
    for (size_t i = 0; i < len;) {
        char esc[8];
        const char *piece = esc;
        size_t plen, adv = 1;
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, plen = 2;
        } else if (c == '\n') {
            piece = "\\n", plen = 2;
        } else if (c == '\r') {
            piece = "\\r", plen = 2;
        } else if (c == '\t') {
            piece = "\\t", plen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            plen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
        } else if (c < 0x80) {
            piece = (const char *)s + i, plen = 1;
        } else if ((adv = utf8_seq(s + i, len - i)) > 0) {
            piece = (const char *)s + i, plen = adv;
        } else {
            piece = "\\ufffd", plen = 6, adv = 1;
        }
        if (o + plen >= size)
            break;
        memcpy(dst + o, piece, plen);
        o += plen;
        i += adv;
    }
    dst[o] = '\0';
    return o;
}

/* The text layout's message: control characters as escapes, so that one message is one line. */
static size_t text_escape(char *dst, size_t size, const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            dst[o++] = '\\', dst[o++] = 'n';
        else if (c == '\r')
            dst[o++] = '\\', dst[o++] = 'r';
        else if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(dst + o, size - o, "\\x%02x", c);
        else
            dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return o;
}

/* Formats and writes one line; called with lock held. */
static void write_line(int level, const char *prefix, const char *msg, size_t len, const char *json_fields)
{
    char line[LINE_MAX], ts[32];
    size_t n;
    rt__log_timestamp(ts, wall_ms());
    if (rt_log_format == RT_LOG_JSON) {
        char module[128];
        rt_log_json_escape(module, sizeof(module), prefix, strlen(prefix));
        n = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"%s\",\"msg\":\"", ts,
                             level_names[level], module);
        /* Room is kept for the fields and the closing: a message is cut rather than the line left unparsable. */
        size_t fields = json_fields != NULL ? strlen(json_fields) + 1 : 0, tail = fields + 3;
        if (fields + 3 >= sizeof(line) - n)
            json_fields = NULL, fields = 0, tail = 3;
        n += rt_log_json_escape(line + n, sizeof(line) - n - tail, msg, len);
        n += (size_t)snprintf(line + n, sizeof(line) - n, "\"%s%s}\n", json_fields != NULL ? "," : "",
                              json_fields != NULL ? json_fields : "");
    } else {
        n = (size_t)snprintf(line, sizeof(line), "%s %-5s %s: ", ts, level_names[level], prefix);
        n += text_escape(line + n, sizeof(line) - n - 1, msg, len);
        line[n++] = '\n';
    }
    fwrite(line, 1, n, output != NULL ? output : stderr);
    fflush(output != NULL ? output : stderr);
}

/* Says how many repeats of r were suppressed, if any; called with lock held. */
static void summarize(repeat_t *r)
{
    if (r->count <= RT_LOG_REPEAT_MAX)
        return;
    char msg[REPEAT_TEXT_MAX + 96];
    int n = snprintf(msg, sizeof(msg), "repeated %u more times in %d s (not shown): %s", r->count - RT_LOG_REPEAT_MAX,
                     RT_LOG_REPEAT_WINDOW_MS / 1000, r->text);
    write_line(r->level, r->prefix, msg, n > 0 && (size_t)n < sizeof(msg) ? (size_t)n : strlen(msg), NULL);
}

static size_t slot_of(const char *prefix, const char *fmt)
{
    uint64_t h = ((uint64_t)(uintptr_t)fmt ^ ((uint64_t)(uintptr_t)prefix << 17)) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 56) % REPEAT_SLOTS;
}

/*
 * Counts one message against its window. Returns the slot to remember the shown text in (NULL: no need), and
 * sets *show. Called with lock held. A window that has ended is summarized here when its message comes again.
 */
static repeat_t *count_repeat(int level, const char *prefix, const char *fmt, bool *show)
{
    int64_t now = mono_ms();
    size_t h = slot_of(prefix, fmt);
    repeat_t *spare = NULL;
    *show = true;
    for (size_t i = 0; i < REPEAT_PROBES; i++) {
        repeat_t *r = &repeats[(h + i) % REPEAT_SLOTS];
        bool ended = r->fmt != NULL && now - r->window_start >= RT_LOG_REPEAT_WINDOW_MS;
        if (r->fmt == fmt && r->prefix == prefix) {
            if (ended) {
                summarize(r);
                r->window_start = now;
                r->count = 0;
            }
            r->level = level;
            if (++r->count > RT_LOG_REPEAT_MAX) {
                *show = false;
                return NULL;
            }
            return r->count == RT_LOG_REPEAT_MAX ? r : NULL;
        }
        if (spare == NULL && (r->fmt == NULL || ended))
            spare = r;
    }
    if (spare != NULL) {
        if (spare->fmt != NULL)
            summarize(spare); /* another message's window, ended: its summary is due anyway */
        *spare = (repeat_t){.prefix = prefix, .fmt = fmt, .window_start = now, .count = 1, .level = level};
    }
    return NULL; /* the table is full around this key: the message is not limited */
}

void rt_log(int level, const char *prefix, const char *fmt, ...)
{
    if (level > rt_log_level || level < RT_LOG_ERROR)
        return;
    char msg[MSG_MAX];
    bool show;
    pthread_mutex_lock(&lock);
    repeat_t *keep = count_repeat(level, prefix, fmt, &show);
    if (show) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        size_t len = n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
        if (n < 0)
            msg[0] = '\0';
        write_line(level, prefix, msg, len, NULL);
        if (keep != NULL) {
            size_t k = len < sizeof(keep->text) - 1 ? len : sizeof(keep->text) - 1;
            memcpy(keep->text, msg, k);
            keep->text[k] = '\0';
        }
    }
    pthread_mutex_unlock(&lock);
}

void rt_log_record(int level, const char *prefix, const char *text, const char *json_fields)
{
    if (level > rt_log_level || level < RT_LOG_ERROR)
        return;
    pthread_mutex_lock(&lock);
    write_line(level, prefix, text, strlen(text), json_fields);
    pthread_mutex_unlock(&lock);
}

static void sweep(bool all)
{
    int64_t now = mono_ms();
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < REPEAT_SLOTS; i++) {
        repeat_t *r = &repeats[i];
        if (r->fmt == NULL || (!all && now - r->window_start < RT_LOG_REPEAT_WINDOW_MS))
            continue;
        summarize(r);
        /* Forgotten: the next one starts a new window (lookups scan all their probes, so a hole does no harm). */
        r->fmt = r->prefix = NULL;
        r->count = 0;
    }
    pthread_mutex_unlock(&lock);
}

void rt_log_tick(void)
{
    sweep(false);
}

void rt_log_flush(void)
{
    sweep(true);
}
