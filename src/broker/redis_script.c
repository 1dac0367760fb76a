/*
 * The redis broker's pure parts: the Lua scripts, the message format, the URL and the replica's ordering rule.
 *
 * One script does a whole publish, so Redis executes it atomically: the idempotency check, the seq and the
 * channel offsets, the stream entry and the fan-out happen together or not at all, and every node sees the
 * PUBLISHes in seq order. The stream entry is written before the PUBLISH, so a replica that sees a gap in the
 * fan-out always finds the missing events (and the one in hand) in the stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "broker/redis-private.h"

#define ENSURE_EPOCH_LUA                                                                                                       \
    "local function ensure_epoch()\n"                                                                                          \
    "  local e = redis.call('GET', KEYS[1])\n"                                                                                 \
    "  if not e then\n"                                                                                                        \
    "    e = ARGV[1]\n"                                                                                                        \
    "    redis.call('SET', KEYS[1], e)\n"                                                                                      \
    "    redis.call('DEL', KEYS[3], KEYS[4], KEYS[5], KEYS[6])\n"                                                              \
    "    redis.call('SET', KEYS[2], ARGV[2])\n"                                                                                \
    "  end\n"                                                                                                                  \
    "  return e\n"                                                                                                             \
    "end\n"

const char rt__redis_epoch_lua[] = ENSURE_EPOCH_LUA "return ensure_epoch()\n";

const char rt__redis_new_epoch_lua[] =
    ENSURE_EPOCH_LUA
    "if redis.call('GET', KEYS[1]) == ARGV[3] then\n"
    "  local seq = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "  local floor = math.max(seq, tonumber(ARGV[2]), tonumber(ARGV[4]))\n"
    "  redis.call('SET', KEYS[1], ARGV[1])\n"
    "  redis.call('DEL', KEYS[3], KEYS[4], KEYS[5], KEYS[6])\n"
    "  redis.call('SET', KEYS[2], string.format('%d', floor))\n"
    "  return ARGV[1]\n"
    "end\n"
    "return ensure_epoch()\n";

/* Numbers are formatted with %d: Lua 5.1's default %.14g would print large seqs in exponent form. */
const char rt__redis_publish_lua[] =
    ENSURE_EPOCH_LUA
    "local epoch = ensure_epoch()\n"
    "local id, now, ttl, size = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local prev = redis.call('HGET', KEYS[5], id)\n"
    "if prev then\n"
    "  local sp = string.find(prev, ' ', 1, true)\n"
    "  if sp and now - tonumber(string.sub(prev, sp + 1)) <= ttl then\n"
    "    return {epoch, tonumber(string.sub(prev, 1, sp - 1)), 1}\n"
    "  end\n"
    "end\n"
    "local seq = redis.call('INCR', KEYS[2])\n"
    "local sseq = string.format('%d', seq)\n"
    "local offs, strs = {}, {}\n"
    "for i = 10, #ARGV do\n"
    "  local o = redis.call('HINCRBY', KEYS[3], ARGV[i], 1)\n"
    "  offs[#offs + 1] = o\n"
    "  strs[#strs + 1] = string.format('%d', o)\n"
    "end\n"
    "local msg = epoch .. ' ' .. sseq .. ' ' .. ARGV[4] .. ' ' .. ARGV[7] .. ' ' .. table.concat(strs, ',') .. '\\n' .. ARGV[8]\n"
    "redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], sseq .. '-0', 'm', msg)\n"
    "redis.call('HSET', KEYS[5], id, sseq .. ' ' .. ARGV[4])\n"
    "if redis.call('RPUSH', KEYS[6], sseq .. ' ' .. id) > size then\n"
    "  local old = redis.call('LPOP', KEYS[6])\n"
    "  local sp = string.find(old, ' ', 1, true)\n"
    "  local oid = string.sub(old, sp + 1)\n"
    "  local cur = redis.call('HGET', KEYS[5], oid)\n"
    /* An id published again after its TTL has a newer entry: only the entry of the popped publish goes. */
    "  if cur and string.sub(cur, 1, string.find(cur, ' ', 1, true) - 1) == string.sub(old, 1, sp - 1) then\n"
    "    redis.call('HDEL', KEYS[5], oid)\n"
    "  end\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[9], msg)\n"
    "local out = {epoch, seq, 0}\n"
    "for i = 1, #offs do out[#out + 1] = offs[i] end\n"
    "return out\n";

static int fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

/* Copies [p, p+n) into out (cap bytes) as a NUL-terminated string; false when it does not fit. */
static bool copy_part(char *out, size_t cap, const char *p, size_t n)
{
    if (n >= cap)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static bool parse_int(const char *p, size_t n, long min, long max, long *out)
{
    if (n == 0 || n > 9)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

int rt__redis_url_parse(const char *url, rt__redis_url_t *out, char *err, size_t errlen)
{
    *out = (rt__redis_url_t){.port = 6379};
    long v;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7, *q = strchr(path, '?');
        size_t n = q != NULL ? (size_t)(q - path) : strlen(path);
        if (n == 0 || path[0] != '/' || !copy_part(out->path, sizeof(out->path), path, n))
            return fail(err, errlen, "unix:// needs an absolute socket path");
        if (q != NULL) {
            if (strncmp(q, "?db=", 4) != 0 || !parse_int(q + 4, strlen(q + 4), 0, 1000000, &v))
                return fail(err, errlen, "unix:// takes only ?db=N");
            out->db = (int)v;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return fail(err, errlen, "must start with redis:// or unix://");
    const char *p = url + 8, *end = p + strcspn(p, "/");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL)
            return fail(err, errlen, "credentials must be [user]:password@");
        if (!copy_part(out->user, sizeof(out->user), p, (size_t)(colon - p)) ||
            !copy_part(out->password, sizeof(out->password), colon + 1, (size_t)(at - colon - 1)))
            return fail(err, errlen, "user or password too long");
        p = at + 1;
    }
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *host_end = colon != NULL ? colon : end;
    if (host_end == p || !copy_part(out->host, sizeof(out->host), p, (size_t)(host_end - p)))
        return fail(err, errlen, "missing or too long host");
    if (colon != NULL) {
        if (!parse_int(colon + 1, (size_t)(end - colon - 1), 1, 65535, &v))
            return fail(err, errlen, "port must be 1..65535");
        out->port = (int)v;
    }
    if (*end == '/' && end[1] != '\0') {
        if (!parse_int(end + 1, strlen(end + 1), 0, 1000000, &v))
            return fail(err, errlen, "database must be a number");
        out->db = (int)v;
    }
    return 0;
}

/* Reads a decimal uint64 ending at a separator in [p, end); returns the position after it, or NULL. */
static const char *read_u64(const char *p, const char *end, char sep, uint64_t *out)
{
    uint64_t v = 0;
    const char *start = p;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
            return NULL;
        v = v * 10 + d;
    }
    if (p == start || p == end || *p != sep)
        return NULL;
    *out = v;
    return p + 1;
}

int rt__redis_msg_parse(const char *p, size_t len, rt__redis_msg_t *m)
{
    const char *end = p + len, *sp = memchr(p, ' ', len);
    if (sp == NULL || sp == p || (size_t)(sp - p) > RT__REDIS_EPOCH_MAX)
        return -1;
    /* Printable ASCII only: a NUL would cut the epoch short, and epochs are compared and logged as strings. */
    for (const char *c = p; c < sp; c++)
        if (*c <= ' ' || *c > '~')
            return -1;
    memcpy(m->epoch, p, (size_t)(sp - p));
    m->epoch[sp - p] = '\0';
    uint64_t ms, flags;
    if ((p = read_u64(sp + 1, end, ' ', &m->seq)) == NULL || m->seq == 0 || (p = read_u64(p, end, ' ', &ms)) == NULL ||
        ms > INT64_MAX || (p = read_u64(p, end, ' ', &flags)) == NULL || flags > 0xffff)
        return -1;
    m->ms = (int64_t)ms;
    m->flags = (unsigned)flags;
    /* Offsets: one or more, comma-separated, ending the header line. */
    m->n_offsets = 0;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL || nl + 1 == end)
        return -1;
    for (char sep = ','; sep == ',';) {
        if (m->n_offsets == RT_EVENT_MAX_CHANNELS)
            return -1;
        const char *comma = memchr(p, ',', (size_t)(nl - p));
        sep = comma != NULL ? ',' : '\n';
        uint64_t off;
        if ((p = read_u64(p, nl + 1, sep, &off)) == NULL || off == 0)
            return -1;
        m->offsets[m->n_offsets++] = off;
    }
    p = nl;
    m->json = p + 1;
    m->json_len = (size_t)(end - p - 1);
    return 0;
}

rt__redis_action_t rt__redis_decide(const char *local_epoch, uint64_t applied, const char *epoch, uint64_t seq)
{
    if (strcmp(local_epoch, epoch) != 0)
        return RT__REDIS_RESYNC;
    if (seq <= applied)
        return RT__REDIS_SKIP;
    return seq == applied + 1 ? RT__REDIS_APPLY : RT__REDIS_GAP;
}

char *rt__redis_event_json(const rt_event_t *ev, size_t *len)
{
    json_t *channels = json_array();
    for (size_t i = 0; i < ev->n_channels; i++)
        json_array_append_new(channels, json_string(ev->channels[i]));
    json_t *obj = json_pack("{s:s%,s:s,s:s,s:o,s:O}", "id", ev->id, ev->id_len, "type", ev->type, "timestamp", ev->timestamp,
                            "channels", channels, "data", ev->data);
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(obj);
    if (text != NULL)
        *len = strlen(text);
    return text;
}

bool rt__redis_publish_reply_valid(const struct redisReply *rep, size_t n_channels)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 || rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[0]->len == 0 || rep->element[0]->len > RT__REDIS_EPOCH_MAX || rep->element[1]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->integer <= 0 || rep->element[2]->type != REDIS_REPLY_INTEGER)
        return false;
    if (rep->element[2]->integer != 0)
        return true;
    if (rep->elements != 3 + n_channels)
        return false;
    for (size_t i = 0; i < n_channels; i++)
        if (rep->element[3 + i]->type != REDIS_REPLY_INTEGER || rep->element[3 + i]->integer <= 0)
            return false;
    return true;
}

int rt__redis_fanout_message(const struct redisReply *rep, size_t max_msg, rt__redis_msg_t *m)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rep->element[0]->str, "message") != 0 || rep->element[2]->type != REDIS_REPLY_STRING)
        return 1;
    if (rep->element[2]->len > max_msg || rt__redis_msg_parse(rep->element[2]->str, rep->element[2]->len, m) != 0)
        return -1;
    return 0;
}

int rt__redis_stream_entry(const struct redisReply *e, size_t max_msg, uint64_t *seq, rt__redis_msg_t *m)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[1]->type != REDIS_REPLY_ARRAY)
        return 1;
    *seq = strtoull(e->element[0]->str, NULL, 10);
    const redisReply *fields = e->element[1], *msg = NULL;
    for (size_t f = 0; f + 1 < fields->elements; f += 2)
        if (fields->element[f]->type == REDIS_REPLY_STRING && strcmp(fields->element[f]->str, "m") == 0)
            msg = fields->element[f + 1];
    if (msg == NULL || msg->type != REDIS_REPLY_STRING || msg->len > max_msg || rt__redis_msg_parse(msg->str, msg->len, m) != 0 ||
        m->seq != *seq)
        return -1;
    return 0;
}
