/*
 * Cluster-wide presence for the redis broker (redis_presence.h, docs/redis.md).
 *
 * Redis holds, per channel, a hash "presence:<channel>" of client id -> "<node> <ClientInfo JSON>", written by the
 * node that owns the client; "nodes" (sorted set, node -> expiry in Redis's clock) says which nodes are alive and
 * "nodeinfo" (hash, node -> JSON counts) what they hold; "nodechans:<node>" (set) lists the channels a node has
 * entries in, so its entries can be removed without a scan. Every RT__REDIS_PRESENCE_HEARTBEAT_MS the heartbeat
 * script pushes this node's expiry out by RT__REDIS_PRESENCE_EXPIRY_MS and removes the entries of every node whose
 * expiry passed; the presence script reads a channel's hash and keeps the entries of live nodes only, so a dead
 * node's clients vanish from answers once its expiry passes, whoever sweeps it.
 *
 * Consistency: this node's changes go out in the order the presence table made them, on one connection. A fresh
 * connection (and a heartbeat that finds this node expired, i.e. swept) wipes this node's entries and rewrites them
 * from the table: what was lost with a connection comes back, and a change queued meanwhile is applied after.
 *
 * Join/leave pushes and control messages travel on the pub/sub channel "cluster" as "<node> P <channel>\n<push>" and
 * "<node> C\n<control JSON>"; a node ignores its own. A push published while a node's subscriber connection is down
 * is lost to it (as the events fan-out would be, without a stream to fill the gap).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <uv.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>
#include "realtime/error.h"
#include "broker/redis-broker.h"
#include "broker/redis_presence.h"
#include "net/worker.h"
#include "protocol/presence.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/list.h"
#include "util/mem.h"

#define LOG_PREFIX "broker:redis:presence"
#include "util/log.h"

#define CONNECT_TIMEOUT_MS 500
#define COMMAND_TIMEOUT_MS 1000
#define GOODBYE_WAIT_MS 500
#define TICK_MS 100
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define KEY_MAX (sizeof(RT__REDIS_PREFIX) + 16 + 256)

/* Lua: Redis's clock (every node agrees on it); effects replication for writes after TIME on Redis 5. */
#define LUA_PROLOGUE                                                                                                    \
    "if redis.replicate_commands then redis.replicate_commands() end\n"                                                 \
    "local t = redis.call('TIME')\n"                                                                                    \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/*
 * KEYS[1] nodes, KEYS[2] nodeinfo. ARGV: node, expiry ms, info JSON, wipe ("1": rewrite from scratch), presence key
 * prefix, nodechans key prefix, bye ("1": this node leaves). Returns {resync, {node, info, ...}} for the live nodes;
 * resync is 1 when this node's entries were wiped (asked, or swept as expired) and must be written again.
 */
const char rt__redis_heartbeat_lua[] = LUA_PROLOGUE
    "local function wipe(node)\n"
    "  local set = ARGV[6] .. node\n"
    "  local mine = node .. ' '\n"
    "  for _, ch in ipairs(redis.call('SMEMBERS', set)) do\n"
    "    local key = ARGV[5] .. ch\n"
    "    local all = redis.call('HGETALL', key)\n"
    "    for i = 1, #all, 2 do\n"
    "      if string.sub(all[i + 1], 1, #mine) == mine then redis.call('HDEL', key, all[i]) end\n"
    "    end\n"
    "  end\n"
    "  redis.call('DEL', set)\n"
    "end\n"
    "local node = ARGV[1]\n"
    "if ARGV[7] == '1' then\n"
    "  wipe(node)\n"
    "  redis.call('ZREM', KEYS[1], node)\n"
    "  redis.call('HDEL', KEYS[2], node)\n"
    "  return {0, {}}\n"
    "end\n"
    "local prev = redis.call('ZSCORE', KEYS[1], node)\n"
    "local resync = 0\n"
    "if ARGV[4] == '1' or not prev or tonumber(prev) <= now then\n"
    "  wipe(node)\n"
    "  resync = 1\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), node)\n"
    "redis.call('HSET', KEYS[2], node, ARGV[3])\n"
    "for _, d in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do\n"
    "  wipe(d)\n"
    "  redis.call('ZREM', KEYS[1], d)\n"
    "  redis.call('HDEL', KEYS[2], d)\n"
    "end\n"
    "local out = {}\n"
    "for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do\n"
    "  out[#out + 1] = n\n"
    "  out[#out + 1] = redis.call('HGET', KEYS[2], n) or '{}'\n"
    "end\n"
    "return {resync, out}\n";

/* KEYS[1] the channel's presence hash, KEYS[2] nodes. Returns the ClientInfo texts of entries of live nodes. */
const char rt__redis_presence_lua[] = LUA_PROLOGUE
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "local alive, out = {}, {}\n"
    "for i = 1, #all, 2 do\n"
    "  local v = all[i + 1]\n"
    "  local sp = string.find(v, ' ', 1, true)\n"
    "  if sp then\n"
    "    local node = string.sub(v, 1, sp - 1)\n"
    "    local a = alive[node]\n"
    "    if a == nil then\n"
    "      local sc = redis.call('ZSCORE', KEYS[2], node)\n"
    "      a = (sc and tonumber(sc) > now) or false\n"
    "      alive[node] = a\n"
    "    end\n"
    "    if a then out[#out + 1] = string.sub(v, sp + 1) end\n"
    "  end\n"
    "end\n"
    "return out\n";

typedef enum { OP_JOINED, OP_LEFT, OP_PUSH, OP_QUERY, OP_POST } op_kind_t;

typedef struct st_op_t {
    rt_worker_task_t task; /* the completion of a query or post, on its worker */
    rt_list_t link;        /* in p->queue (under p->lock), then p->sent (loop thread) */
    rt__redis_presence_t *p;
    op_kind_t kind;
    bool stats, last;
    char *channel, *client;
    char *data; /* JOINED: "<node> <info>"; PUSH and POST: the message */
    size_t data_len;
    rt_worker_t *worker;
    rt_presence_cb cb;
    void *ctx;
    int status;
    char *result;
    size_t result_len;
    int64_t sent_ms;
} op_t;

/* One hiredis async connection and its reconnect state (loop thread). */
typedef struct st_conn_t {
    rt__redis_presence_t *p;
    const char *what;
    redisAsyncContext *ac;
    bool up;
    int64_t since, retry_at;
    int backoff;
    unsigned gen; /* the master generation (with sentinels) the connection was opened for */
} conn_t;

struct st_rt__redis_presence_t {
    rt_server_t *s;
    rt__redis_broker_t *broker; /* where the master is (rt__redis_master: it moves with a Sentinel failover) */
    rt__redis_url_t url;
    char node[17], name[320];
    char k_nodes[48], k_nodeinfo[48], p_presence[48], p_nodechans[48], fanout[48];
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    rt_list_t queue;     /* under lock */
    bool stop_requested; /* under lock: no more work is taken */
    json_t *cluster;     /* under lock: the live nodes at the last heartbeat */
    int64_t cluster_ms;  /* under lock: when that was (monotonic), 0 = never */
    /* Loop thread only. */
    conn_t cmd, sub;
    rt_list_t sent; /* queries and posts waiting for their reply, oldest first */
    bool beat_in_flight, wipe_next;
    int64_t beat_sent_ms, next_beat_ms;
    bool closing, closed;
    int64_t close_at;
};

static void free_op(op_t *op)
{
    free(op->channel);
    free(op->client);
    free(op->data);
    free(op->result);
    free(op);
}

static void on_op_done(rt_worker_task_t *task)
{
    op_t *op = RT_STRUCT_FROM_MEMBER(op_t, task, task);
    rt_worker_t *w = op->worker;
    op->cb(op->ctx, op->status, op->result, op->result_len);
    free_op(op);
    rt__worker_release(w);
}

/* Completes a query or post on its worker (any thread but the worker's own: always through its task queue). */
static void finish(op_t *op, int status)
{
    op->status = status;
    op->task.cb = on_op_done;
    rt__worker_run_soon(op->worker, &op->task);
}

/* ---- connections ---- */

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply *rep = reply;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        RT_LOG_WARN("%s: %s", (const char *)privdata, rep->str);
        redisAsyncDisconnect(ac);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    conn_t *c = ac->data;
    if (c->ac != ac)
        return;
    if (status != REDIS_OK) {
        RT_LOG_DEBUG("%s connection: %s", c->what, ac->errstr);
        c->ac = NULL; /* hiredis frees it */
        c->retry_at = rt_clock_mono_ms() + c->backoff;
        return;
    }
    c->up = true;
    c->backoff = BACKOFF_MIN_MS;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    conn_t *c = ac->data;
    if (c->ac != ac)
        return;
    if (status != REDIS_OK && !c->p->closing)
        RT_LOG_WARN("%s connection lost: %s", c->what, ac->errstr);
    c->ac = NULL;
    c->up = false;
    c->retry_at = rt_clock_mono_ms() + c->backoff;
}

static void drop(conn_t *c, const char *why)
{
    redisAsyncContext *ac = c->ac;
    if (ac == NULL)
        return;
    if (why != NULL)
        RT_LOG_WARN("%s connection: %s; dropping it", c->what, why);
    c->ac = NULL;
    c->up = false;
    c->retry_at = rt_clock_mono_ms() + c->backoff;
    c->backoff = c->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff * 2;
    redisAsyncFree(ac); /* what waits on it gets its callback with no reply */
}

static void on_cluster_message(redisAsyncContext *ac, void *reply, void *privdata);

/* A new command connection: its first heartbeat (at once) wipes this node's entries, then they are written again. */
static void fresh_commands(rt__redis_presence_t *p)
{
    p->wipe_next = true;
    p->next_beat_ms = 0;
    p->beat_in_flight = false;
}

/* A new connection with AUTH and SELECT queued first; the subscriber one subscribes to the cluster channel. */
static bool open_conn(conn_t *c)
{
    rt__redis_presence_t *p = c->p;
    const rt__redis_url_t *u = &p->url;
    char host[sizeof(u->host)];
    int port;
    rt__redis_master(p->broker, host, sizeof(host), &port, &c->gen);
    redisAsyncContext *ac = u->path[0] != '\0' ? redisAsyncConnectUnix(u->path) : redisAsyncConnect(host, port);
    if (ac == NULL || ac->err != 0 || redisLibuvAttach(ac, &p->loop) != REDIS_OK) {
        RT_LOG_DEBUG("%s: cannot connect: %s", c->what, ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        c->retry_at = rt_clock_mono_ms() + c->backoff;
        return false;
    }
    ac->data = c;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    c->up = false;
    c->since = rt_clock_mono_ms();
    if (u->password[0] != '\0') {
        const char *auth[] = {"AUTH", u->user, u->password}, *auth1[] = {"AUTH", u->password};
        redisAsyncCommandArgv(ac, on_setup_reply, "AUTH", u->user[0] != '\0' ? 3 : 2, u->user[0] != '\0' ? auth : auth1, NULL);
    }
    if (u->db > 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", u->db);
        redisAsyncCommandArgv(ac, on_setup_reply, "SELECT", 2, (const char *[]){"SELECT", db}, NULL);
    }
    if (c == &p->sub)
        redisAsyncCommandArgv(ac, on_cluster_message, p, 2, (const char *[]){"SUBSCRIBE", p->fanout}, NULL);
    else
        fresh_commands(p);
    return true;
}

/* ---- this node's entries ---- */

static void send_joined(rt__redis_presence_t *p, const char *channel, const char *client, const char *value, size_t len)
{
    char key[KEY_MAX], set[KEY_MAX];
    snprintf(key, sizeof(key), "%s%s", p->p_presence, channel);
    snprintf(set, sizeof(set), "%s%s", p->p_nodechans, p->node);
    redisAsyncCommandArgv(p->cmd.ac, NULL, NULL, 4, (const char *[]){"HSET", key, client, value},
                          (const size_t[]){4, strlen(key), strlen(client), len});
    redisAsyncCommandArgv(p->cmd.ac, NULL, NULL, 3, (const char *[]){"SADD", set, channel}, NULL);
}

static void rewrite_entry(const char *channel, const char *client, const char *info, void *ctx)
{
    rt__redis_presence_t *p = ctx;
    char *value;
    int n = asprintf(&value, "%s %s", p->node, info);
    if (n < 0)
        return;
    send_joined(p, channel, client, value, (size_t)n);
    free(value);
}

/* This node's counts, as the heartbeat stores them in nodeinfo: counters only (every 2 s, so nothing that walks the
 * presence table, whose distinct-user count is quadratic). */
static char *node_info(rt__redis_presence_t *p)
{
    rt_server_stats_t *st = &p->s->stats;
    int64_t clients = 0, n[RT_CONN_KINDS];
    for (int k = 0; k < RT_CONN_KINDS; k++) {
        n[k] = atomic_load_explicit(&st->connections[k], memory_order_relaxed);
        if (k != RT_CONN_HTTP)
            clients += n[k];
    }
    json_t *info = json_pack("{s:s,s:I,s:I,s:I}", "name", p->name, "clients", (json_int_t)clients, "centrifuge_clients",
                             (json_int_t)(n[RT_CONN_CENTRIFUGE] + n[RT_CONN_UNI_SSE]), "subscriptions",
                             (json_int_t)atomic_load_explicit(&st->subscriptions, memory_order_relaxed));
    char *text = info != NULL ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    return text;
}

/* The live nodes of a heartbeat reply ({node, info, ...}) as /api/stats "cluster" shows them. */
static json_t *cluster_json(rt__redis_presence_t *p, const redisReply *list)
{
    json_t *nodes = json_array();
    json_int_t clients = 0, cf_clients = 0;
    for (size_t i = 0; i + 1 < list->elements; i += 2) {
        const redisReply *id = list->element[i], *info = list->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || info->type != REDIS_REPLY_STRING)
            continue;
        json_t *n = json_loadb(info->str, info->len, 0, NULL);
        if (!json_is_object(n)) {
            json_decref(n);
            n = json_object();
        }
        json_object_set_new(n, "id", json_stringn(id->str, id->len));
        clients += json_integer_value(json_object_get(n, "clients"));
        cf_clients += json_integer_value(json_object_get(n, "centrifuge_clients"));
        json_array_append_new(nodes, n);
    }
    return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:o}", "node", p->node, "heartbeat_ms", (json_int_t)RT__REDIS_PRESENCE_HEARTBEAT_MS,
                     "expiry_ms", (json_int_t)RT__REDIS_PRESENCE_EXPIRY_MS, "nodes_alive", (json_int_t)json_array_size(nodes),
                     "clients", clients, "centrifuge_clients", cf_clients, "nodes", nodes);
}

static void on_beat_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    rt__redis_presence_t *p = privdata;
    redisReply *rep = reply;
    p->beat_in_flight = false;
    if (rep == NULL || ac != p->cmd.ac)
        return; /* the connection went: the next one starts with a wipe */
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_ARRAY) {
        RT_LOG_WARN("heartbeat: unexpected reply%s%s", rep->type == REDIS_REPLY_ERROR ? ": " : "",
                    rep->type == REDIS_REPLY_ERROR ? rep->str : "");
        p->wipe_next = true;
        return;
    }
    if (rep->element[0]->integer == 1)
        rt_presence_foreach_local(rewrite_entry, p); /* in order before anything changed since: see the top */
    json_t *cluster = cluster_json(p, rep->element[1]);
    pthread_mutex_lock(&p->lock);
    json_decref(p->cluster);
    p->cluster = cluster;
    p->cluster_ms = rt_clock_mono_ms();
    pthread_mutex_unlock(&p->lock);
}

static void send_beat(rt__redis_presence_t *p, bool bye, redisCallbackFn *cb)
{
    char *info = node_info(p);
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", RT__REDIS_PRESENCE_EXPIRY_MS);
    const char *argv[] = {"EVAL", rt__redis_heartbeat_lua, "2", p->k_nodes, p->k_nodeinfo, p->node, ttl, info != NULL ? info : "{}",
                          p->wipe_next ? "1" : "0", p->p_presence, p->p_nodechans, bye ? "1" : "0"};
    redisAsyncCommandArgv(p->cmd.ac, cb, p, (int)RT_ARRAY_SIZE(argv), argv, NULL);
    free(info);
    p->wipe_next = false;
    p->beat_in_flight = true;
    p->beat_sent_ms = rt_clock_mono_ms();
    p->next_beat_ms = p->beat_sent_ms + RT__REDIS_PRESENCE_HEARTBEAT_MS;
}

/* ---- queries, posts and the cluster channel ---- */

static void on_op_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    op_t *op = privdata;
    redisReply *rep = reply;
    rt_list_unlink(&op->link);
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        if (rep != NULL)
            RT_LOG_WARN("%s: %s", op->kind == OP_QUERY ? "presence" : "control", rep->str);
        finish(op, RT_EAGAIN);
        return;
    }
    if (op->kind == OP_POST) {
        op->result = rt_strdup("{}");
        op->result_len = 2;
        finish(op, 0);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY) {
        finish(op, RT_EAGAIN);
        return;
    }
    const char **infos = rt_mem_calloc(rep->elements + 1, sizeof(*infos));
    size_t *lens = rt_mem_calloc(rep->elements + 1, sizeof(*lens)), n = 0;
    for (size_t i = 0; i < rep->elements; i++) {
        if (rep->element[i]->type == REDIS_REPLY_STRING) {
            infos[n] = rep->element[i]->str;
            lens[n++] = rep->element[i]->len;
        }
    }
    op->result = rt_presence_result(infos, lens, n, op->stats, &op->result_len);
    free(infos);
    free(lens);
    finish(op, 0);
}

static void send_op(rt__redis_presence_t *p, op_t *op)
{
    bool reply = op->kind == OP_QUERY || op->kind == OP_POST;
    if (p->cmd.ac == NULL || p->closing) {
        /* Changes are rewritten when a connection comes (it starts with a wipe); pushes are lost. */
        if (reply)
            finish(op, RT_EAGAIN);
        else
            free_op(op);
        return;
    }
    char key[KEY_MAX];
    switch (op->kind) {
    case OP_JOINED:
        send_joined(p, op->channel, op->client, op->data, op->data_len);
        break;
    case OP_LEFT:
        snprintf(key, sizeof(key), "%s%s", p->p_presence, op->channel);
        redisAsyncCommandArgv(p->cmd.ac, NULL, NULL, 3, (const char *[]){"HDEL", key, op->client}, NULL);
        if (op->last) {
            snprintf(key, sizeof(key), "%s%s", p->p_nodechans, p->node);
            redisAsyncCommandArgv(p->cmd.ac, NULL, NULL, 3, (const char *[]){"SREM", key, op->channel}, NULL);
        }
        break;
    case OP_PUSH:
    case OP_POST:
        redisAsyncCommandArgv(p->cmd.ac, reply ? on_op_reply : NULL, op, 3, (const char *[]){"PUBLISH", p->fanout, op->data},
                              (const size_t[]){7, strlen(p->fanout), op->data_len});
        break;
    case OP_QUERY:
        snprintf(key, sizeof(key), "%s%s", p->p_presence, op->channel);
        redisAsyncCommandArgv(p->cmd.ac, on_op_reply, op, 5, (const char *[]){"EVAL", rt__redis_presence_lua, "2", key, p->k_nodes},
                              NULL);
        break;
    }
    if (reply) {
        op->sent_ms = rt_clock_mono_ms();
        rt_list_insert_tail(&p->sent, &op->link);
    } else {
        free_op(op);
    }
}

/* A message on the cluster channel: ["message", channel, "<node> P <channel>\n<push>" | "<node> C\n<control>"]. */
static void on_cluster_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    rt__redis_presence_t *p = privdata;
    redisReply *rep = reply;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rep->element[0]->str, "message") != 0 || rep->element[2]->type != REDIS_REPLY_STRING)
        return; /* subscribe confirmations; the connection going */
    const char *m = rep->element[2]->str, *end = m + rep->element[2]->len;
    const char *sp = memchr(m, ' ', (size_t)(end - m)), *nl = memchr(m, '\n', (size_t)(end - m));
    if (sp == NULL || nl == NULL || sp > nl || end - sp < 3)
        goto Bad;
    if ((size_t)(sp - m) == strlen(p->node) && memcmp(m, p->node, (size_t)(sp - m)) == 0)
        return; /* ours: applied here already */
    if (sp[1] == 'P' && sp[2] == ' ' && nl - (sp + 3) > 0 && nl - (sp + 3) < 256) {
        char channel[256];
        snprintf(channel, sizeof(channel), "%.*s", (int)(nl - (sp + 3)), sp + 3);
        rt_presence_remote_push(channel, nl + 1, (size_t)(end - nl - 1));
        return;
    }
    if (sp[1] == 'C' && sp + 2 == nl && rt_presence_control_apply(nl + 1, (size_t)(end - nl - 1)) == 0)
        return;
Bad:
    RT_LOG_WARN("cluster message malformed (%zu bytes): ignored", rep->element[2]->len);
}

/* ---- the loop ---- */

static void close_all(rt__redis_presence_t *p)
{
    if (p->closed)
        return;
    p->closed = true;
    drop(&p->cmd, NULL);
    drop(&p->sub, NULL);
    uv_close((uv_handle_t *)&p->wake, NULL);
    uv_close((uv_handle_t *)&p->tick, NULL);
}

static void on_goodbye(redisAsyncContext *ac, void *reply, void *privdata)
{
    rt__redis_presence_t *p = privdata;
    p->close_at = 0; /* the next tick closes (not from inside hiredis' callback) */
}

static void on_tick(uv_timer_t *t)
{
    rt__redis_presence_t *p = t->data;
    int64_t now = rt_clock_mono_ms();
    if (p->closing) {
        if (now >= p->close_at)
            close_all(p);
        return;
    }
    conn_t *conns[] = {&p->cmd, &p->sub};
    for (int i = 0; i < 2; i++) {
        conn_t *c = conns[i];
        if (c->ac == NULL && now >= c->retry_at)
            open_conn(c);
        else if (c->ac != NULL && !c->up && now - c->since >= CONNECT_TIMEOUT_MS)
            drop(c, "connect timed out");
        else if (c->ac != NULL && c->gen != atomic_load(&p->broker->master_gen))
            drop(c, "the master moved (sentinel)");
    }
    if (p->cmd.ac != NULL && p->cmd.up) {
        bool late = p->beat_in_flight && now - p->beat_sent_ms >= COMMAND_TIMEOUT_MS;
        if (!late && !rt_list_empty(&p->sent))
            late = now - RT_STRUCT_FROM_MEMBER(op_t, link, p->sent.next)->sent_ms >= COMMAND_TIMEOUT_MS;
        if (late)
            drop(&p->cmd, "no answer in time");
        else if (!p->beat_in_flight && now >= p->next_beat_ms)
            send_beat(p, false, on_beat_reply);
    }
}

static void on_wake(uv_async_t *a)
{
    rt__redis_presence_t *p = a->data;
    if (p->closing)
        return;
    rt_list_t queued;
    rt_list_init(&queued);
    pthread_mutex_lock(&p->lock);
    bool stop = p->stop_requested;
    rt_list_splice_tail(&queued, &p->queue);
    pthread_mutex_unlock(&p->lock);
    rt_list_t *l, *tmp;
    rt_list_foreach_safe(l, tmp, &queued)
    {
        rt_list_unlink(l);
        send_op(p, RT_STRUCT_FROM_MEMBER(op_t, link, l));
    }
    if (!stop)
        return;
    /* Leave Redis tidy (this node's entries gone at once, not at expiry) if it answers soon; then close. */
    p->closing = true;
    p->close_at = rt_clock_mono_ms() + GOODBYE_WAIT_MS;
    if (p->cmd.ac != NULL && p->cmd.up)
        send_beat(p, true, on_goodbye);
    else
        p->close_at = 0;
}

static void *presence_main(void *arg)
{
    rt__redis_presence_t *p = arg;
    uv_run(&p->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- the backend (protocol/presence.h), called from workers and under the presence lock ---- */

/* Queues op for the loop; false (op untouched) once stopping. */
static bool submit(rt__redis_presence_t *p, op_t *op)
{
    pthread_mutex_lock(&p->lock);
    bool ok = p->started && !p->stop_requested;
    if (ok) {
        rt_list_insert_tail(&p->queue, &op->link);
        uv_async_send(&p->wake);
    }
    pthread_mutex_unlock(&p->lock);
    return ok;
}

static op_t *new_op(rt__redis_presence_t *p, op_kind_t kind, const char *channel)
{
    op_t *op = rt_mem_calloc(1, sizeof(*op));
    op->p = p;
    op->kind = kind;
    op->channel = channel != NULL ? rt_strdup(channel) : NULL;
    return op;
}

/* Formats the data op carries (a message, a hash value); false, with op freed, when memory runs out. */
__attribute__((format(printf, 2, 3))) static bool format_data(op_t *op, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&op->data, fmt, ap);
    va_end(ap);
    if (n < 0) {
        op->data = NULL;
        free_op(op);
        return false;
    }
    op->data_len = (size_t)n;
    return true;
}

static void submit_or_drop(rt__redis_presence_t *p, op_t *op)
{
    if (!submit(p, op))
        free_op(op);
}

static void be_joined(void *self, const char *channel, const char *client, const char *info)
{
    rt__redis_presence_t *p = self;
    op_t *op = new_op(p, OP_JOINED, channel);
    op->client = rt_strdup(client);
    if (format_data(op, "%s %s", p->node, info))
        submit_or_drop(p, op);
}

static void be_left(void *self, const char *channel, const char *client, bool last)
{
    rt__redis_presence_t *p = self;
    op_t *op = new_op(p, OP_LEFT, channel);
    op->client = rt_strdup(client);
    op->last = last;
    submit_or_drop(p, op);
}

static void be_push(void *self, const char *channel, rt_bytes_t *push)
{
    rt__redis_presence_t *p = self;
    op_t *op = new_op(p, OP_PUSH, NULL);
    if (format_data(op, "%s P %s\n%.*s", p->node, channel, (int)push->len, (const char *)push->data))
        submit_or_drop(p, op);
}

/* Submits a query or post made on w: its callback runs on w (RT_EAGAIN at once when stopping). */
static void submit_answered(rt__redis_presence_t *p, op_t *op, rt_worker_t *w, rt_presence_cb cb, void *ctx)
{
    op->worker = w;
    op->cb = cb;
    op->ctx = ctx;
    rt__worker_hold(w);
    if (!submit(p, op)) {
        free_op(op);
        rt__worker_release(w);
        cb(ctx, RT_EAGAIN, NULL, 0);
    }
}

static void be_query(void *self, rt_worker_t *w, const char *channel, bool stats, rt_presence_cb cb, void *ctx)
{
    rt__redis_presence_t *p = self;
    op_t *op = new_op(p, OP_QUERY, channel);
    op->stats = stats;
    submit_answered(p, op, w, cb, ctx);
}

static void be_post(void *self, rt_worker_t *w, const char *control, size_t len, rt_presence_cb cb, void *ctx)
{
    rt__redis_presence_t *p = self;
    op_t *op = new_op(p, OP_POST, NULL);
    if (!format_data(op, "%s C\n%.*s", p->node, (int)len, control)) {
        cb(ctx, RT_ENOMEM, NULL, 0);
        return;
    }
    submit_answered(p, op, w, cb, ctx);
}

static json_t *be_stats(void *self)
{
    rt__redis_presence_t *p = self;
    pthread_mutex_lock(&p->lock);
    json_t *c = p->cluster != NULL ? json_deep_copy(p->cluster) : NULL;
    int64_t at = p->cluster_ms;
    pthread_mutex_unlock(&p->lock);
    if (c == NULL)
        return json_pack("{s:s,s:I,s:I,s:I,s:I,s:[],s:n}", "node", p->node, "heartbeat_ms", (json_int_t)RT__REDIS_PRESENCE_HEARTBEAT_MS,
                         "expiry_ms", (json_int_t)RT__REDIS_PRESENCE_EXPIRY_MS, "nodes_alive", (json_int_t)0, "clients",
                         (json_int_t)0, "nodes", "age_ms");
    json_object_set_new(c, "age_ms", json_integer((json_int_t)(rt_clock_mono_ms() - at)));
    return c;
}

static const rt_presence_cluster_t backend = {
    .joined = be_joined,
    .left = be_left,
    .push = be_push,
    .query = be_query,
    .post = be_post,
    .stats = be_stats,
};

/* ---- lifecycle ---- */

rt__redis_presence_t *rt__redis_presence_new(rt_server_t *s, rt__redis_broker_t *broker, char *err, size_t errlen)
{
    rt__redis_presence_t *p = rt_mem_calloc(1, sizeof(*p));
    const rt__redis_url_t *url = &broker->url;
    p->broker = broker;
    p->s = s;
    p->url = *url;
    int rc = uv_loop_init(&p->loop);
    if (rc != 0) {
        snprintf(err, errlen, "redis broker: presence loop: %s", uv_strerror(rc));
        free(p);
        return NULL;
    }
    unsigned char r[8];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t x = (uint64_t)rt_clock_wall_ms() * 6364136223846793005ULL ^ (uint64_t)getpid();
        memcpy(r, &x, sizeof(r));
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(p->node + 2 * i, 3, "%02x", r[i]);
    char host[256] = "localhost";
    if (gethostname(host, sizeof(host) - 1) != 0)
        strcpy(host, "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(p->name, sizeof(p->name), "%s:%d", host, s->config->port);
    snprintf(p->k_nodes, sizeof(p->k_nodes), RT__REDIS_PREFIX "nodes");
    snprintf(p->k_nodeinfo, sizeof(p->k_nodeinfo), RT__REDIS_PREFIX "nodeinfo");
    snprintf(p->p_presence, sizeof(p->p_presence), RT__REDIS_PREFIX "presence:");
    snprintf(p->p_nodechans, sizeof(p->p_nodechans), RT__REDIS_PREFIX "nodechans:");
    snprintf(p->fanout, sizeof(p->fanout), RT__REDIS_PREFIX "cluster");
    uv_async_init(&p->loop, &p->wake, on_wake);
    p->wake.data = p;
    uv_timer_init(&p->loop, &p->tick);
    p->tick.data = p;
    pthread_mutex_init(&p->lock, NULL);
    rt_list_init(&p->queue);
    rt_list_init(&p->sent);
    p->cmd = (conn_t){.p = p, .what = "presence", .backoff = BACKOFF_MIN_MS};
    p->sub = (conn_t){.p = p, .what = "cluster subscriber", .backoff = BACKOFF_MIN_MS};
    return p;
}

int rt__redis_presence_start(rt__redis_presence_t *p)
{
    uv_timer_start(&p->tick, on_tick, 0, TICK_MS);
    if (pthread_create(&p->thread, NULL, presence_main, p) != 0)
        return RT_ENOMEM;
    pthread_mutex_lock(&p->lock);
    p->started = true;
    pthread_mutex_unlock(&p->lock);
    rt_presence_set_cluster(&backend, p);
    RT_LOG_INFO("cluster presence: node %s (%s), heartbeat %d ms, expiry %d ms", p->node, p->name,
                RT__REDIS_PRESENCE_HEARTBEAT_MS, RT__REDIS_PRESENCE_EXPIRY_MS);
    return 0;
}

void rt__redis_presence_stop(rt__redis_presence_t *p)
{
    pthread_mutex_lock(&p->lock);
    bool already = p->stop_requested, started = p->started;
    p->stop_requested = true;
    if (!already && started)
        uv_async_send(&p->wake);
    pthread_mutex_unlock(&p->lock);
    if (!already && started)
        pthread_join(p->thread, NULL);
}

void rt__redis_presence_free(rt__redis_presence_t *p)
{
    rt_presence_set_cluster(NULL, NULL);
    rt__redis_presence_stop(p);
    if (!p->started) {
        uv_close((uv_handle_t *)&p->wake, NULL);
        uv_close((uv_handle_t *)&p->tick, NULL);
        uv_run(&p->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&p->loop);
    json_decref(p->cluster);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
