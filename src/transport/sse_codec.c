#include <stdio.h>
#include <string.h>
#include "transport/sse_codec.h"

#define ID_PREFIX "id: "
#define EVENT_PREFIX "event: "
#define DATA_PREFIX "data: "
#define COMMENT_PREFIX ": "
#define LEN(s) (sizeof(s) - 1)

static int field_ok(const char *s, size_t len)
{
    return memchr(s, '\n', len) == NULL && memchr(s, '\r', len) == NULL && memchr(s, '\0', len) == NULL;
}

/* Length of the line starting at s (before its terminator) and, in *next, where the following line
 * starts; CRLF, LF and CR all end a line, as the client's parser reads them. */
static size_t line_len(const char *s, const char *end, const char **next)
{
    const char *p = s;
    while (p != end && *p != '\n' && *p != '\r')
        ++p;
    *next = p;
    if (p != end) {
        ++*next;
        if (*p == '\r' && *next != end && **next == '\n')
            ++*next;
    }
    return (size_t)(p - s);
}

/* Bytes for `prefix` before each line of text and one LF after it. Every line break starts a new
 * line, so an empty text is one empty line and a trailing break gives a last empty line: the
 * client, joining lines with LF, gets the text back (with LF for every kind of break). */
static size_t lines_size(const char *text, size_t len, size_t prefix_len)
{
    size_t lines = 1, break_bytes = 0;

    if (text == NULL)
        return prefix_len + 1;

    /* The event JSON normally has no line breaks at all: two memchr()s and done. */
    if (len == 0 || (memchr(text, '\n', len) == NULL && memchr(text, '\r', len) == NULL))
        return prefix_len + len + 1;
    for (size_t i = 0; i < len; ++i) {
        if (text[i] == '\n' || text[i] == '\r') {
            ++lines;
            ++break_bytes;
            if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n') {
                ++break_bytes;
                ++i;
            }
        }
    }
    return lines * (prefix_len + 1) + len - break_bytes;
}

static char *write_lines(char *o, const char *text, size_t len, const char *prefix, size_t prefix_len)
{
    const char *p, *end, *next;

    if (text == NULL)
        text = "";
    p = text;
    end = text + len;
    for (;;) {
        size_t n = line_len(p, end, &next);
        memcpy(o, prefix, prefix_len);
        o += prefix_len;
        if (n != 0)
            memcpy(o, p, n);
        o += n;
        *o++ = '\n';
        if (p + n == end)
            return o; /* no line break after this line: it was the last */
        p = next;
    }
}

size_t rt_sse_event_size(const rt_sse_event_t *ev)
{
    size_t n = 1; /* the blank line */

    if (ev->id != NULL) {
        if (!field_ok(ev->id, ev->id_len))
            return 0;
        n += LEN(ID_PREFIX) + ev->id_len + 1;
    }
    if (ev->type != NULL) {
        if (!field_ok(ev->type, ev->type_len))
            return 0;
        n += LEN(EVENT_PREFIX) + ev->type_len + 1;
    }
    return n + lines_size(ev->data, ev->data_len, LEN(DATA_PREFIX));
}

static char *write_field(char *o, const char *prefix, size_t prefix_len, const char *s, size_t len)
{
    memcpy(o, prefix, prefix_len);
    o += prefix_len;
    if (len != 0)
        memcpy(o, s, len);
    o += len;
    *o++ = '\n';
    return o;
}

size_t rt_sse_event_write(char *buf, const rt_sse_event_t *ev)
{
    char *o = buf;

    if (ev->id != NULL)
        o = write_field(o, ID_PREFIX, LEN(ID_PREFIX), ev->id, ev->id_len);
    if (ev->type != NULL)
        o = write_field(o, EVENT_PREFIX, LEN(EVENT_PREFIX), ev->type, ev->type_len);
    o = write_lines(o, ev->data, ev->data_len, DATA_PREFIX, LEN(DATA_PREFIX));
    *o++ = '\n';
    return (size_t)(o - buf);
}

rt_bytes_t *rt_sse_event_bytes(const rt_sse_event_t *ev)
{
    size_t n = rt_sse_event_size(ev);
    rt_bytes_t *b;

    if (n == 0)
        return NULL;
    b = rt_bytes_new(NULL, n);
    rt_sse_event_write(b->data, ev);
    return b;
}

size_t rt_sse_comment_size(const char *text, size_t len)
{
    return lines_size(text, len, LEN(COMMENT_PREFIX)) + 1;
}

size_t rt_sse_comment_write(char *buf, const char *text, size_t len)
{
    char *o = write_lines(buf, text, len, COMMENT_PREFIX, LEN(COMMENT_PREFIX));
    *o++ = '\n';
    return (size_t)(o - buf);
}
