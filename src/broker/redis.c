/*
 * The redis broker: Redis sequences events and keeps the durable stream; every node replicates it.
 *
 * Publishing (redis_publish.c): one EVALSHA of the publish script (redis_script.c) per event, pipelined on the
 * publisher loop's connection; the publish completes on its worker once this node has applied the seq it got
 * (read-your-writes), so no worker's loop ever waits for Redis.
 *
 * Delivery (one subscriber thread per node, the publisher's node included): SUBSCRIBE to the fan-out channel
 * first, then backfill from the stream (XRANGE from the next seq) while the fan-out messages wait in the socket,
 * then read them, skipping the seqs the backfill already applied. Each event is parsed, appended to the local
 * history with Redis's seq and offsets (rt_history_append_at) and handed to the workers under the history lock,
 * exactly like the memory broker. A gap in the fan-out is filled from the stream; a message from another epoch
 * (Redis lost its data and a new epoch was made) resets the local history to it. Any error drops both
 * connections, marks the broker not ready (/readyz 503, publishes 503) and reconnects with backoff.
 *
 * Sentinel mode (redis_sentinels): before each session the subscriber thread asks the sentinels for the master
 * (SENTINEL get-master-addr-by-name), checks that it is one (ROLE), and while following it asks again every
 * IDLE_CHECK_MS, so a failover ends the session (as does the old master's death) and the next one follows the new
 * master; the publisher loop reconnects to wherever the subscriber thread last found it. Each session starts by
 * checking that the master still has what this node saw and answered (its seq and the event id there); one that
 * lacks it (writes lost in a failover, a restart from an old snapshot) gets a new epoch: every node then resets.
 * Whatever this node cannot fill (that, a trimmed stream, an epoch change, an unreadable entry) is announced to
 * its live clients (rt__broker_gap): never a silent gap.
 *
 * Bounds: every blocking call has a timeout (connect 500 ms, commands 1 s); a fan-out message or stream entry is
 * at most max_event_bytes plus its header; the backfill reads pages of BACKFILL_PAGE entries; "ids" and "idq" hold
 * at most history_size entries and the stream about history_size (MAXLEN ~).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "realtime/error.h"
#include "broker/broker.h"
#include "broker/redis-broker.h"
#include "broker/redis_presence.h"
#include "net/worker.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/mem.h"

#define LOG_PREFIX "broker:redis"
#include "util/log.h"

#define CONNECT_TIMEOUT_MS 500
#define COMMAND_TIMEOUT_MS 1000
#define IDLE_CHECK_MS 1000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define SENTINEL_BACKOFF_MAX_MS 500 /* a failover is a matter of seconds: look for the new master often */
#define SENTINEL_TIMEOUT_MS 500
#define BACKFILL_PAGE 100

static const char *const key_names[RT__REDIS_K_COUNT] = {"epoch", "seq", "offsets", "stream", "ids", "idq"};

typedef rt__redis_broker_t redis_broker_t;

static void random_hex(char *out, size_t n)
{
    unsigned char r[16];
    if (getrandom(r, n / 2, 0) != (ssize_t)(n / 2)) {
        uint64_t x = (uint64_t)rt_clock_wall_ms() * 6364136223846793005ULL ^ (uint64_t)getpid();
        memcpy(r, &x, n / 2 < 8 ? n / 2 : 8);
    }
    for (size_t i = 0; i < n / 2; i++) {
        out[2 * i] = "0123456789abcdef"[r[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[r[i] & 15];
    }
    out[n] = '\0';
}

static redisReply *command(redisContext *c, int argc, const char **argv, const size_t *lens)
{
    return redisCommandArgv(c, argc, argv, lens);
}

/* Connects, with timeouts on connect and on every later call, then AUTH and SELECT as the URL says. */
static redisContext *connect_redis(redis_broker_t *r, char *err, size_t errlen)
{
    struct timeval ct = {0, CONNECT_TIMEOUT_MS * 1000}, tv = {COMMAND_TIMEOUT_MS / 1000, (COMMAND_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = r->url.path[0] != '\0' ? redisConnectUnixWithTimeout(r->url.path, ct)
                                             : redisConnectWithTimeout(r->url.host, r->url.port, ct);
    if (c == NULL) {
        snprintf(err, errlen, "cannot allocate a redis context");
        return NULL;
    }
    if (c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(err, errlen, "%s", c->errstr);
        redisFree(c);
        return NULL;
    }
    if (r->url.path[0] == '\0')
        redisEnableKeepAlive(c);
    char db[16];
    snprintf(db, sizeof(db), "%d", r->url.db);
    const char *auth[] = {"AUTH", r->url.user, r->url.password}, *select[] = {"SELECT", db};
    for (int step = 0; step < 2; step++) {
        redisReply *rep = NULL;
        if (step == 0 && r->url.password[0] != '\0')
            rep = r->url.user[0] != '\0' ? command(c, 3, auth, NULL) : command(c, 2, (const char *[]){"AUTH", r->url.password}, NULL);
        else if (step == 1 && r->url.db > 0)
            rep = command(c, 2, select, NULL);
        else
            continue;
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "%s: %s", step == 0 ? "AUTH" : "SELECT", rep != NULL ? rep->str : c->errstr);
            if (rep != NULL)
                freeReplyObject(rep);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(rep);
    }
    return c;
}

int rt__redis_script_args(redis_broker_t *r, const char *script, const char *sha, int n_extra, const char **extra,
                          const size_t *extra_lens, rt__redis_script_buf_t *buf, const char **argv, size_t *lens)
{
    random_hex(buf->epoch, 8);
    pthread_mutex_lock(&r->mutex);
    snprintf(buf->floor, sizeof(buf->floor), "%llu", (unsigned long long)r->applied);
    pthread_mutex_unlock(&r->mutex);
    int n = 0;
    argv[n++] = sha != NULL ? "EVALSHA" : "EVAL";
    argv[n++] = sha != NULL ? sha : script;
    argv[n++] = "6";
    for (int i = 0; i < RT__REDIS_K_COUNT; i++)
        argv[n++] = r->keys[i];
    argv[n++] = buf->epoch;
    argv[n++] = buf->floor;
    for (int i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    for (int i = 0; i < n_extra; i++, n++) {
        argv[n] = extra[i];
        lens[n] = extra_lens[i];
    }
    return n;
}

/* Runs a script (no extra arguments) on a blocking connection. */
static redisReply *run_script(redis_broker_t *r, redisContext *c, const char *script)
{
    const char *argv[RT__REDIS_SCRIPT_ARGS];
    size_t lens[RT__REDIS_SCRIPT_ARGS];
    rt__redis_script_buf_t buf;
    int n = rt__redis_script_args(r, script, NULL, 0, NULL, NULL, &buf, argv, lens);
    return command(c, n, argv, lens);
}

/* ---- replication (the subscriber thread) ---- */

static void set_position(redis_broker_t *r, const char *epoch, uint64_t applied)
{
    pthread_mutex_lock(&r->mutex);
    if (epoch != NULL)
        snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
    r->applied = applied;
    pthread_mutex_unlock(&r->mutex);
    rt__redis_pub_applied(r->pub);
}

/* Appends the message's event to history, which hands it to the workers. An unusable one is logged and counted as
 * applied: the next append then sees a gap and drops the history before it, so no resume silently skips it. */
static void apply(redis_broker_t *r, const rt__redis_msg_t *m)
{
    rt_server_t *s = r->super.server;
    rt_event_t *ev = NULL;
    char err[256] = "";
    int ret = rt_event_parse(m->json, m->json_len, SIZE_MAX, &ev, err, sizeof(err));
    if (ret == 0 && ev->n_channels != m->n_offsets) {
        snprintf(err, sizeof(err), "%zu offsets for %zu channels", m->n_offsets, ev->n_channels);
        ret = RT_EINVAL;
    } else if (ret == 0) {
        ev->flags = m->flags & RT_EVENT_RAW_DATA;
        if ((ret = rt_history_append_at(s->history, ev, m->seq, m->offsets, m->ms, rt__broker_deliver, s)) == 0)
            atomic_fetch_add_explicit(&s->stats.published, 1, memory_order_relaxed);
        else
            snprintf(err, sizeof(err), "%s", rt_strerror(ret));
    }
    if (ret == 0)
        snprintf(r->last_id, sizeof(r->last_id), "%.*s", (int)ev->id_len, ev->id);
    else
        r->last_id[0] = '\0';
    rt_event_unref(ev);
    if (ret != 0) {
        RT_LOG_ERR("event seq %llu not applied: %s", (unsigned long long)m->seq, err);
        rt__broker_gap(s, RT_GAP_UNREADABLE);
    }
    set_position(r, NULL, m->seq);
}

static int resync(redis_broker_t *r, redisContext *cmd);

/*
 * Reads the stream from the next seq to its end, applying each entry. Entries the stream no longer holds
 * (trimmed while this node was away) make a gap, which rt_history_append_at turns into a fresh history.
 */
static int backfill(redis_broker_t *r, redisContext *cmd)
{
    for (;;) {
        char start[32], count[16];
        snprintf(start, sizeof(start), "%llu-0", (unsigned long long)r->applied + 1);
        snprintf(count, sizeof(count), "%d", BACKFILL_PAGE);
        redisReply *rep = command(cmd, 6, (const char *[]){"XRANGE", r->keys[RT__REDIS_K_STREAM], start, "+", "COUNT", count}, NULL);
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
            RT_LOG_WARN("backfill: %s", rep == NULL ? cmd->errstr : rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
            if (rep != NULL)
                freeReplyObject(rep);
            return -1;
        }
        size_t n = rep->elements;
        uint64_t before = r->applied;
        for (size_t i = 0; i < n; i++) {
            redisReply *e = rep->element[i];
            uint64_t seq;
            rt__redis_msg_t m;
            int parsed = rt__redis_stream_entry(e, r->max_msg, &seq, &m);
            if (parsed > 0)
                continue;
            if (parsed < 0) {
                RT_LOG_ERR("stream entry %s is malformed or over max_event_bytes: skipped", e->element[0]->str);
                if (seq > r->applied) {
                    if (r->applied != 0)
                        rt__broker_gap(r->super.server, RT_GAP_UNREADABLE);
                    r->last_id[0] = '\0';
                    set_position(r, NULL, seq);
                }
                continue;
            }
            rt__redis_action_t act = rt__redis_decide(r->epoch, r->applied, m.epoch, m.seq);
            if (act == RT__REDIS_RESYNC) {
                freeReplyObject(rep);
                return -1; /* the epoch changed under us: start over */
            }
            if (act == RT__REDIS_GAP && r->applied != 0) {
                RT_LOG_WARN("events %llu..%llu are gone from the stream: history restarts at %llu",
                            (unsigned long long)r->applied + 1, (unsigned long long)m.seq - 1, (unsigned long long)m.seq);
                rt__broker_gap(r->super.server, RT_GAP_STREAM_TRIMMED);
            }
            if (act != RT__REDIS_SKIP)
                apply(r, &m);
        }
        freeReplyObject(rep);
        if (n < BACKFILL_PAGE)
            return 0;
        if (atomic_load(&r->stopping) || r->applied == before)
            return -1; /* no progress on a full page: never spin */
    }
}

/* Reads a reply holding an epoch; NULL (logged) when it is not one. */
static redisReply *epoch_reply(redisContext *cmd, redisReply *rep)
{
    if (rep == NULL || rep->type != REDIS_REPLY_STRING || rep->len == 0 || rep->len > RT__REDIS_EPOCH_MAX) {
        RT_LOG_WARN("epoch: %s", rep == NULL ? cmd->errstr : rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
        if (rep != NULL)
            freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/*
 * Whether Redis still holds what this node saw at seq (the event id there, "" when unknown): 1 when it lacks it
 * (its seq is behind, or another event has that seq: writes lost in a failover), 0 when it holds it or can no
 * longer tell (trimmed: the backfill sees that gap), -1 on error.
 */
static int lacks(redis_broker_t *r, redisContext *cmd, uint64_t seq, const char *id)
{
    if (seq == 0)
        return 0;
    redisReply *rep = command(cmd, 2, (const char *[]){"GET", r->keys[RT__REDIS_K_SEQ]}, NULL);
    if (rep == NULL || (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_NIL)) {
        if (rep != NULL)
            freeReplyObject(rep);
        return -1;
    }
    uint64_t top = rep->type == REDIS_REPLY_STRING ? strtoull(rep->str, NULL, 10) : 0;
    freeReplyObject(rep);
    if (top < seq) {
        RT_LOG_WARN("redis is at seq %llu, behind this node's %llu", (unsigned long long)top, (unsigned long long)seq);
        return 1;
    }
    if (id[0] == '\0')
        return 0;
    char at[32];
    snprintf(at, sizeof(at), "%llu-0", (unsigned long long)seq);
    if ((rep = command(cmd, 4, (const char *[]){"XRANGE", r->keys[RT__REDIS_K_STREAM], at, at}, NULL)) == NULL ||
        rep->type != REDIS_REPLY_ARRAY) {
        if (rep != NULL)
            freeReplyObject(rep);
        return -1;
    }
    int ret = 0;
    uint64_t eseq;
    rt__redis_msg_t m;
    if (rep->elements == 1 && rt__redis_stream_entry(rep->element[0], r->max_msg, &eseq, &m) == 0 && strcmp(m.epoch, r->epoch) == 0) {
        json_t *ev = json_loadb(m.json, m.json_len, 0, NULL);
        const char *got = json_string_value(json_object_get(ev, "id"));
        if (got != NULL && strcmp(got, id) != 0) {
            RT_LOG_WARN("redis has event %s at seq %llu where this node had %s", got, (unsigned long long)seq, id);
            ret = 1;
        }
        json_decref(ev);
    }
    freeReplyObject(rep);
    return ret;
}

/*
 * Adopts Redis's epoch (creating one when Redis lost its data), then backfills. Before that, when the epoch is the
 * one this node follows, checks that Redis still has the newest event this node applied and the newest one it
 * published: a master that lacks either (a failover promoted a replica that had not received them) gets a new
 * epoch, seqs continuing above them, so every node resets instead of reusing those seqs for other events.
 */
static int resync(redis_broker_t *r, redisContext *cmd)
{
    redisReply *rep = epoch_reply(cmd, run_script(r, cmd, rt__redis_epoch_lua));
    if (rep == NULL)
        return -1;
    rt_gap_t reason = RT_GAP_EPOCH_CHANGED;
    if (strcmp(rep->str, r->epoch) == 0) {
        char answered_id[RT_EVENT_ID_MAX + 1] = "", floor[24];
        uint64_t answered = 0;
        pthread_mutex_lock(&r->mutex);
        if (strcmp(r->answered_epoch, r->epoch) == 0 && r->answered > r->applied) {
            answered = r->answered;
            snprintf(answered_id, sizeof(answered_id), "%s", r->answered_id);
        }
        pthread_mutex_unlock(&r->mutex);
        int l = lacks(r, cmd, r->applied, r->last_id);
        if (l == 0)
            l = lacks(r, cmd, answered, answered_id);
        if (l < 0) {
            freeReplyObject(rep);
            return -1;
        }
        if (l > 0) {
            freeReplyObject(rep);
            snprintf(floor, sizeof(floor), "%llu", (unsigned long long)answered);
            const char *argv[RT__REDIS_SCRIPT_ARGS + 2], *extra[2] = {r->epoch, floor};
            size_t lens[RT__REDIS_SCRIPT_ARGS + 2], extra_lens[2] = {strlen(r->epoch), strlen(floor)};
            rt__redis_script_buf_t buf;
            int n = rt__redis_script_args(r, rt__redis_new_epoch_lua, NULL, 2, extra, extra_lens, &buf, argv, lens);
            if ((rep = epoch_reply(cmd, command(cmd, n, argv, lens))) == NULL)
                return -1;
            reason = RT_GAP_FAILOVER;
        }
    }
    if (strcmp(rep->str, r->epoch) != 0) {
        if (r->epoch[0] != '\0') {
            RT_LOG_WARN("redis epoch changed from %s to %s (%s): local history restarts", r->epoch, rep->str,
                        reason == RT_GAP_FAILOVER ? "the master lacks events this node had" : "redis lost its data?");
            rt__broker_gap(r->super.server, reason);
        }
        rt_history_reset(r->super.server->history, rep->str);
        r->last_id[0] = '\0';
        set_position(r, rep->str, 0);
    }
    freeReplyObject(rep);
    return backfill(r, cmd);
}

/* One fan-out message: ["message", channel, payload]. */
static int on_message(redis_broker_t *r, redisContext *cmd, redisReply *rep)
{
    rt__redis_msg_t m;
    int parsed = rt__redis_fanout_message(rep, r->max_msg, &m);
    if (parsed > 0)
        return 0; /* subscribe confirmations, pongs */
    if (parsed < 0) {
        /* The stream has the same entry; whatever comes next shows a gap and the backfill deals with it. */
        RT_LOG_ERR("fan-out message malformed or over max_event_bytes (%zu bytes): ignored", rep->element[2]->len);
        return 0;
    }
    switch (rt__redis_decide(r->epoch, r->applied, m.epoch, m.seq)) {
    case RT__REDIS_APPLY:
        apply(r, &m);
        return 0;
    case RT__REDIS_SKIP:
        return 0;
    case RT__REDIS_GAP:
        return backfill(r, cmd);
    case RT__REDIS_RESYNC:
        return resync(r, cmd);
    }
    return 0;
}

static void note_error(redis_broker_t *r, const char *what);

void rt__redis_master(redis_broker_t *r, char *host, size_t hostlen, int *port, unsigned *gen)
{
    pthread_mutex_lock(&r->mutex);
    snprintf(host, hostlen, "%s", r->url.host);
    *port = r->url.port;
    *gen = atomic_load(&r->master_gen);
    pthread_mutex_unlock(&r->mutex);
}

/* Asks the sentinels, in order, for the master's address: 0 with it in r->url (master_gen moves when it changed),
 * -1 with a message when none answers with one. Subscriber thread. */
static int ask_sentinels(redis_broker_t *r, char *err, size_t errlen)
{
    struct timeval ct = {0, CONNECT_TIMEOUT_MS * 1000}, tv = {0, SENTINEL_TIMEOUT_MS * 1000};
    snprintf(err, errlen, "no sentinel");
    for (size_t i = 0; i < r->n_sentinels; i++) {
        const rt__redis_addr_t *a = &r->sentinels[i];
        redisContext *c = redisConnectWithTimeout(a->host, a->port, ct);
        if (c == NULL || c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK) {
            snprintf(err, errlen, "sentinel %s:%d: %s", a->host, a->port, c != NULL ? c->errstr : "out of memory");
            if (c != NULL)
                redisFree(c);
            continue;
        }
        redisReply *rep = command(c, 3, (const char *[]){"SENTINEL", "get-master-addr-by-name", r->master_name}, NULL);
        int port = 0;
        bool ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[0]->type == REDIS_REPLY_STRING &&
                  rep->element[1]->type == REDIS_REPLY_STRING && rep->element[0]->len < sizeof(r->url.host) &&
                  (port = atoi(rep->element[1]->str)) > 0 && port <= 65535;
        if (ok) {
            pthread_mutex_lock(&r->mutex);
            if (strcmp(r->url.host, rep->element[0]->str) != 0 || r->url.port != port) {
                snprintf(r->url.host, sizeof(r->url.host), "%s", rep->element[0]->str);
                r->url.port = port;
                atomic_fetch_add(&r->master_gen, 1);
                RT_LOG_INFO("sentinel %s:%d: master %s is %s:%d", a->host, a->port, r->master_name, r->url.host, port);
            }
            pthread_mutex_unlock(&r->mutex);
        } else {
            snprintf(err, errlen, "sentinel %.100s:%d: %.100s", a->host, a->port,
                     rep == NULL                        ? c->errstr
                     : rep->type == REDIS_REPLY_NIL     ? "does not know that master name"
                     : rep->type == REDIS_REPLY_ERROR   ? rep->str
                                                        : "unexpected reply");
        }
        if (rep != NULL)
            freeReplyObject(rep);
        redisFree(c);
        if (ok)
            return 0;
    }
    return -1;
}

/* True when cmd is connected to a master (ROLE), else false with a message. */
static bool is_master(redis_broker_t *r, redisContext *cmd, char *err, size_t errlen)
{
    redisReply *rep = command(cmd, 1, (const char *[]){"ROLE"}, NULL);
    bool ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 && rep->element[0]->type == REDIS_REPLY_STRING &&
              strcmp(rep->element[0]->str, "master") == 0;
    if (!ok)
        snprintf(err, errlen, "%.100s:%d is not a master (%.100s)", r->url.host, r->url.port,
                 rep == NULL                                                                        ? cmd->errstr
                 : rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 && rep->element[0]->type == REDIS_REPLY_STRING ? rep->element[0]->str
                 : rep->type == REDIS_REPLY_ERROR                                                   ? rep->str
                                                                                                    : "unexpected ROLE reply");
    if (rep != NULL)
        freeReplyObject(rep);
    return ok;
}

/* Idle check: Redis still answers and still has our epoch (a FLUSHALL keeps connections open); with sentinels, the
 * master is still where they say and still a master. */
static int check(redis_broker_t *r, redisContext *cmd)
{
    if (r->n_sentinels != 0) {
        char err[256];
        unsigned gen = atomic_load(&r->master_gen);
        if (ask_sentinels(r, err, sizeof(err)) == 0 && atomic_load(&r->master_gen) != gen) {
            note_error(r, "the sentinels name another master");
            return -1;
        }
        if (!is_master(r, cmd, err, sizeof(err))) {
            note_error(r, err);
            return -1;
        }
    }
    redisReply *rep = command(cmd, 2, (const char *[]){"GET", r->keys[RT__REDIS_K_EPOCH]}, NULL);
    if (rep == NULL)
        return -1;
    bool same = rep->type == REDIS_REPLY_STRING && strcmp(rep->str, r->epoch) == 0;
    freeReplyObject(rep);
    return same ? 0 : resync(r, cmd);
}

static void note_error(redis_broker_t *r, const char *what)
{
    if (strcmp(r->last_error, what) != 0)
        RT_LOG_WARN("redis %s:%d: %s; retrying", r->url.path[0] ? r->url.path : r->url.host, r->url.port, what);
    snprintf(r->last_error, sizeof(r->last_error), "%s", what);
}

/* Connects, subscribes, catches up and then follows the fan-out until an error or stop. True if it got ready. */
static bool session(redis_broker_t *r)
{
    char err[256];
    bool was_ready = false;
    redisContext *sub = NULL, *cmd = NULL;
    if (r->n_sentinels != 0 && ask_sentinels(r, err, sizeof(err)) != 0) {
        note_error(r, err);
        goto Done;
    }
    sub = connect_redis(r, err, sizeof(err));
    cmd = sub != NULL ? connect_redis(r, err, sizeof(err)) : NULL;
    if (cmd == NULL || (r->n_sentinels != 0 && !is_master(r, cmd, err, sizeof(err)))) {
        note_error(r, err);
        goto Done;
    }
    /* Subscribe before the backfill: what is published meanwhile waits in the socket and is skipped by seq. */
    redisReply *rep = command(sub, 2, (const char *[]){"SUBSCRIBE", r->fanout}, NULL);
    bool subscribed = rep != NULL && rep->type == REDIS_REPLY_ARRAY;
    if (rep != NULL)
        freeReplyObject(rep);
    if (!subscribed || resync(r, cmd) != 0) {
        note_error(r, sub->err ? sub->errstr : cmd->err ? cmd->errstr : "subscribe or backfill failed");
        goto Done;
    }
    atomic_store(&r->ready, true);
    was_ready = true;
    r->last_error[0] = '\0';
    RT_LOG_INFO("following redis (epoch %s, seq %llu)", r->epoch, (unsigned long long)r->applied);
    int64_t last_check = rt_clock_mono_ms();
    while (!atomic_load(&r->stopping)) {
        void *reply = NULL;
        if (redisGetReplyFromReader(sub, &reply) != REDIS_OK)
            break;
        if (reply != NULL) {
            int rc = on_message(r, cmd, reply);
            freeReplyObject(reply);
            if (rc != 0)
                break;
            continue;
        }
        struct pollfd fds[2] = {{.fd = sub->fd, .events = POLLIN}, {.fd = r->wake_fd, .events = POLLIN}};
        int n = poll(fds, 2, IDLE_CHECK_MS);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && fds[0].revents != 0 && redisBufferRead(sub) != REDIS_OK)
            break;
        if (rt_clock_mono_ms() - last_check >= IDLE_CHECK_MS) {
            if (check(r, cmd) != 0)
                break;
            last_check = rt_clock_mono_ms();
        }
    }
    if (!atomic_load(&r->stopping))
        note_error(r, sub->err ? sub->errstr : cmd->err ? cmd->errstr : "connection lost");
Done:
    atomic_store(&r->ready, false);
    if (sub != NULL)
        redisFree(sub);
    if (cmd != NULL)
        redisFree(cmd);
    return was_ready;
}

static void *subscriber_main(void *arg)
{
    redis_broker_t *r = arg;
    int backoff = BACKOFF_MIN_MS, backoff_max = r->n_sentinels != 0 ? SENTINEL_BACKOFF_MAX_MS : BACKOFF_MAX_MS;
    while (!atomic_load(&r->stopping)) {
        if (session(r))
            backoff = BACKOFF_MIN_MS;
        if (atomic_load(&r->stopping))
            break;
        struct pollfd pfd = {.fd = r->wake_fd, .events = POLLIN};
        poll(&pfd, 1, backoff);
        backoff = backoff * 2 > backoff_max ? backoff_max : backoff * 2;
    }
    return NULL;
}

/* ---- lifecycle ---- */

static int redis_start(rt_broker_t *b)
{
    redis_broker_t *r = (redis_broker_t *)b;
    if (rt__redis_pub_start(r->pub) != 0 || rt__redis_presence_start(r->presence) != 0 ||
        pthread_create(&r->thread, NULL, subscriber_main, r) != 0)
        return RT_ENOMEM;
    r->thread_started = true;
    return 0;
}

static void redis_stop(rt_broker_t *b)
{
    redis_broker_t *r = (redis_broker_t *)b;
    if (atomic_exchange(&r->stopping, true))
        return;
    atomic_store(&r->ready, false);
    uint64_t one = 1;
    if (write(r->wake_fd, &one, sizeof(one)) < 0)
        RT_LOG_WARN("wake: %s", strerror(errno));
    if (r->thread_started)
        pthread_join(r->thread, NULL);
    rt__redis_pub_stop(r->pub);
    rt__redis_presence_stop(r->presence);
}

static bool redis_ready(rt_broker_t *b)
{
    return atomic_load(&((redis_broker_t *)b)->ready);
}

static void redis_free(rt_broker_t *b)
{
    redis_broker_t *r = (redis_broker_t *)b;
    redis_stop(b);
    rt__redis_pub_free(r->pub);
    rt__redis_presence_free(r->presence);
    close(r->wake_fd);
    pthread_mutex_destroy(&r->mutex);
    free(r);
}

static const rt_broker_ops_t redis_ops = {
    .name = "redis",
    .start = redis_start,
    .stop = redis_stop,
    .publish = rt__redis_publish,
    .publish_async = rt__redis_publish_async,
    .ready = redis_ready,
    .free = redis_free,
};

rt_broker_t *rt__broker_redis_new(rt_server_t *s, char *err, size_t errlen)
{
    const rt_config_t *cfg = s->config;
    rt__redis_url_t url;
    char msg[160];
    if (rt__redis_url_parse(cfg->redis_url != NULL ? cfg->redis_url : "redis://127.0.0.1:6379", &url, msg, sizeof(msg)) != 0) {
        snprintf(err, errlen, "redis_url: %s", msg);
        return NULL;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    if (EVP_Digest(rt__redis_publish_lua, strlen(rt__redis_publish_lua), digest, &dlen, EVP_sha1(), NULL) != 1 || dlen != 20) {
        snprintf(err, errlen, "redis broker: SHA-1 unavailable");
        return NULL;
    }
    int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake < 0) {
        snprintf(err, errlen, "redis broker: eventfd: %s", strerror(errno));
        return NULL;
    }
    redis_broker_t *r = rt_mem_calloc(1, sizeof(*r));
    r->super = (rt_broker_t){.ops = &redis_ops, .server = s};
    r->url = url;
    r->wake_fd = wake;
    for (unsigned i = 0; i < 20; i++)
        snprintf(r->sha + 2 * i, 3, "%02x", digest[i]);
    for (int i = 0; i < RT__REDIS_K_COUNT; i++)
        snprintf(r->keys[i], sizeof(r->keys[i]), RT__REDIS_PREFIX "%s", key_names[i]);
    snprintf(r->fanout, sizeof(r->fanout), RT__REDIS_PREFIX "events");
    snprintf(r->ttl_ms, sizeof(r->ttl_ms), "%lld", (long long)(cfg->history_ttl_s * 1000));
    snprintf(r->size, sizeof(r->size), "%zu", cfg->history_size != 0 ? cfg->history_size : 10000);
    r->max_msg = (cfg->max_event_bytes != 0 ? cfg->max_event_bytes : RT_EVENT_DEFAULT_MAX_BYTES) + RT__REDIS_HEADER_MAX;
    if (cfg->redis_sentinels.n > RT__REDIS_MAX_SENTINELS) {
        snprintf(err, errlen, "redis_sentinels: at most %d", RT__REDIS_MAX_SENTINELS);
        goto Fail;
    }
    for (size_t i = 0; i < cfg->redis_sentinels.n; i++) {
        rt__redis_addr_t *a = &r->sentinels[r->n_sentinels++];
        if (rt_config_parse_host_port(cfg->redis_sentinels.items[i], a->host, sizeof(a->host), &a->port) != 0) {
            snprintf(err, errlen, "redis_sentinels: %s is not host:port", cfg->redis_sentinels.items[i]);
            goto Fail;
        }
    }
    snprintf(r->master_name, sizeof(r->master_name), "%s", cfg->redis_master_name != NULL ? cfg->redis_master_name : "mymaster");
    if (r->n_sentinels != 0 && r->url.path[0] != '\0') {
        snprintf(err, errlen, "redis_sentinels: redis_url must be redis:// (a sentinel names a TCP address)");
        goto Fail;
    }
    pthread_mutex_init(&r->mutex, NULL);
    if ((r->pub = rt__redis_pub_new(r, err, errlen)) == NULL || (r->presence = rt__redis_presence_new(s, r, err, errlen)) == NULL) {
        if (r->pub != NULL)
            rt__redis_pub_free(r->pub);
        pthread_mutex_destroy(&r->mutex);
        goto Fail;
    }
    return &r->super;
Fail:
    close(wake);
    free(r);
    return NULL;
}
