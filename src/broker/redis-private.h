/*
 * The redis broker's pure parts (src/broker/redis_script.c): the Lua publish script, the fan-out message format,
 * the URL parser and the replica's ordering decision. No I/O here, so tests/unit/broker/redis.c covers them.
 *
 * Keys (prefix RT__REDIS_PREFIX): "epoch" (string), "seq" (counter), "offsets" (hash channel -> offset),
 * "stream" (the event stream, entry ids "<seq>-0", field "m" = message), "ids" (hash id -> "<seq> <ms>"),
 * "idq" (list of "<seq> <id>", oldest first, at most history_size: bounds "ids"). Fan-out channel: "events".
 *
 * Message (stream field and PUBLISH payload): "<epoch> <seq> <ms> <flags> <offset>,<offset>,...\n<event JSON>",
 * offsets parallel to the event's channels; ms is the publisher's wall clock (the history TTL counts from it).
 */
#ifndef RT_BROKER_REDIS_PRIVATE_H
#define RT_BROKER_REDIS_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "realtime/event.h"

#define RT__REDIS_PREFIX "realtime:"
#define RT__REDIS_EPOCH_MAX 16
/* Bytes of a message header at most: epoch, seq, ms, flags and 64 offsets of 20 digits with separators. */
#define RT__REDIS_HEADER_MAX (RT__REDIS_EPOCH_MAX + 3 * 21 + RT_EVENT_MAX_CHANNELS * 21 + 2)

/**
 * The publish script. KEYS: epoch, seq, offsets, stream, ids, idq. ARGV: candidate epoch, seq floor, id, now ms,
 * ttl ms, history size, flags, event JSON, fan-out channel, then the event's channels. Creates the epoch when it is
 * missing (Redis lost its data: seq restarts above the floor, the publishing node's newest seq). Returns
 * {epoch, seq, 0, offset...} for a new event, {epoch, original seq, 1} for an id published within ttl.
 */
extern const char rt__redis_publish_lua[];
/** The epoch script: same KEYS[1..2] and ARGV[1..2]; creates the epoch when missing and returns it. */
extern const char rt__redis_epoch_lua[];
/**
 * The new-epoch script, for a master that lacks events this node had (a failover lost them): same KEYS and
 * ARGV[1..2], then ARGV[3] the epoch this node follows and ARGV[4] a second seq floor. When the epoch is still
 * ARGV[3], it becomes ARGV[1] with an empty stream, no offsets and no ids, and seq continues above the floors and
 * the current seq; otherwise (another node did it first) nothing changes. Returns the epoch.
 */
extern const char rt__redis_new_epoch_lua[];

/** A parsed redis_url. */
typedef struct st_rt__redis_url_t {
    char host[256];  /**< TCP host, or "" for a unix socket */
    int port;        /**< default 6379 */
    char path[256];  /**< unix socket path ("unix:///path") */
    char user[128];  /**< ACL user ("AUTH user password"), or "" */
    char password[256];
    int db;          /**< SELECT db when > 0 */
} rt__redis_url_t;

/** Parses "redis://[[user]:password@]host[:port][/db]" or "unix:///path[?db=N]". 0, or -1 with a message in err. */
int rt__redis_url_parse(const char *url, rt__redis_url_t *out, char *err, size_t errlen);

/** A fan-out message, pointing into the text it was parsed from. */
typedef struct st_rt__redis_msg_t {
    char epoch[RT__REDIS_EPOCH_MAX + 1];
    uint64_t seq;
    int64_t ms;
    unsigned flags;
    uint64_t offsets[RT_EVENT_MAX_CHANNELS];
    size_t n_offsets;
    const char *json;
    size_t json_len;
} rt__redis_msg_t;

/** Parses a message (see above): 0, or -1 when it is malformed (seq 0, an offset 0, no JSON, too many offsets). */
int rt__redis_msg_parse(const char *p, size_t len, rt__redis_msg_t *m);

struct redisReply;

/** Checks the publish script's reply: {epoch, seq, dup, offsets (n_channels of them when not dup)...}. */
bool rt__redis_publish_reply_valid(const struct redisReply *rep, size_t n_channels);

/**
 * Reads a reply on the subscriber connection: 0 with *m for a fan-out message ["message", channel, payload], 1 for
 * anything else (subscribe confirmations, pongs), -1 for a message whose payload is malformed or over max_msg bytes.
 */
int rt__redis_fanout_message(const struct redisReply *rep, size_t max_msg, rt__redis_msg_t *m);

/**
 * Reads one XRANGE entry [id, [field, value, ...]]: 0 with *seq (from the id) and *m (from field "m", whose seq must
 * be the id's), 1 when the entry does not have that shape (*seq untouched), -1 with *seq when its message is
 * missing, malformed or over max_msg bytes.
 */
int rt__redis_stream_entry(const struct redisReply *e, size_t max_msg, uint64_t *seq, rt__redis_msg_t *m);

/** What a replica does with the message carrying (epoch, seq), given its own epoch and newest applied seq. */
typedef enum {
    RT__REDIS_APPLY,  /**< the next seq: append it */
    RT__REDIS_SKIP,   /**< already applied (backfill overlap, or a duplicate): drop it */
    RT__REDIS_GAP,    /**< seqs were missed: backfill from the stream first (it holds this one too) */
    RT__REDIS_RESYNC, /**< another epoch: Redis lost its data; adopt its epoch, then backfill */
} rt__redis_action_t;

rt__redis_action_t rt__redis_decide(const char *local_epoch, uint64_t applied, const char *epoch, uint64_t seq);

/**
 * The event as published through Redis: {"id","type","timestamp","channels","data"} compact (no seq: that is
 * Redis's to assign). Returns a malloc'ed string (free()) or NULL when jansson cannot encode it.
 */
char *rt__redis_event_json(const rt_event_t *ev, size_t *len);

#endif
