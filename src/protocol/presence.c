/*
 * Presence and the Centrifuge connection registry: one process-wide table behind one mutex (see presence.h).
 * Mail for a peer on the caller's own worker is delivered right after the lock is released: the peer cannot go
 * away meanwhile, since only its own (this) thread frees it. A peer on another worker is queued there as a task
 * when its mailbox turns non-empty; it stays non-empty until that task (or an inline delivery) takes the mail,
 * so one queued task covers everything posted meanwhile. Unregistering cancels the task under the lock, after
 * which no poster can find the peer.
 *
 * With a cluster backend (rt_presence_set_cluster), every change of the table is told to it under the lock, so
 * the backend sees joins and leaves in the order they happened here.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "realtime/error.h"
#include "net/worker.h"
#include "protocol/presence.h"
#include "util/list.h"
#include "util/map.h"
#include "util/mem.h"

struct st_rt_cf_peer_t {
    rt_list_t link; /* in peers */
    char *client, *user, *conn_info;
    char *info; /* ClientInfo JSON, for the cluster backend */
    rt_worker_t *worker;
    rt_worker_task_t task; /* delivers on worker's thread; queued by posters on other threads */
    void (*deliver)(void *owner);
    void *owner;
    rt_cf_mail_t *mail_head, *mail_tail;
    char **channels; /* the channels it is present in */
    size_t n_channels, cap_channels;
};

typedef struct st_member_t {
    rt_cf_peer_t *peer;
    bool join_leave;
} member_t;

typedef struct st_chan_t {
    member_t *members;
    size_t n, cap;
} chan_t;

/* Peers to deliver to once the lock is released. */
typedef struct st_wake_list_t {
    rt_cf_peer_t **peers;
    size_t n, cap;
} wake_list_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static rt_list_t peers = {&peers, &peers};
static rt_map_t channels;
static const rt_presence_cluster_t *cluster; /* under lock */
static void *cluster_self;

void rt_cf_mail_free(rt_cf_mail_t *m)
{
    while (m != NULL) {
        rt_cf_mail_t *next = m->next;
        free(m->channel);
        if (m->push != NULL)
            rt_bytes_unref(m->push);
        free(m);
        m = next;
    }
}

static rt_cf_mail_t *mail_copy(const rt_cf_mail_t *src)
{
    rt_cf_mail_t *m = rt_mem_calloc(1, sizeof(*m));
    *m = *src;
    m->next = NULL;
    m->channel = src->channel != NULL ? rt_strdup(src->channel) : NULL;
    if (m->push != NULL)
        rt_bytes_ref(m->push);
    return m;
}

/*
 * Lock held. Queues a copy of mail for peer; remembers peers on `here` for delivery after unlocking, and has
 * the worker of a peer elsewhere deliver soon (unless mail already waits: then a delivery is on its way).
 */
static void post_locked(rt_cf_peer_t *peer, const rt_cf_mail_t *mail, rt_worker_t *here, wake_list_t *wake)
{
    rt_cf_mail_t *m = mail_copy(mail);
    bool had_mail = peer->mail_head != NULL;
    if (had_mail)
        peer->mail_tail->next = m;
    else
        peer->mail_head = m;
    peer->mail_tail = m;
    if (peer->worker != here) {
        if (!had_mail)
            rt__worker_run_soon(peer->worker, &peer->task);
        return;
    }
    for (size_t i = 0; i < wake->n; i++)
        if (wake->peers[i] == peer)
            return;
    if (wake->n == wake->cap) {
        wake->cap = wake->cap ? wake->cap * 2 : 8;
        wake->peers = rt_mem_realloc(wake->peers, wake->cap * sizeof(*wake->peers));
    }
    wake->peers[wake->n++] = peer;
}

static void wake_all(wake_list_t *wake)
{
    for (size_t i = 0; i < wake->n; i++)
        wake->peers[i]->deliver(wake->peers[i]->owner);
    free(wake->peers);
}

static void on_task(rt_worker_task_t *task)
{
    rt_cf_peer_t *p = RT_STRUCT_FROM_MEMBER(rt_cf_peer_t, task, task);
    p->deliver(p->owner);
}

/* ClientInfo JSON of a peer: {"user","client","conn_info"?}. */
static json_t *client_info(const rt_cf_peer_t *p)
{
    json_t *info = json_pack("{s:s,s:s}", "user", p->user, "client", p->client);
    if (info != NULL && p->conn_info != NULL) {
        json_t *ci = json_loads(p->conn_info, JSON_DECODE_ANY, NULL);
        if (ci != NULL)
            json_object_set_new(info, "conn_info", ci);
    }
    return info;
}

rt_cf_peer_t *rt_presence_register(const char *client, const char *user, const char *conn_info, rt_worker_t *worker,
                                   void (*deliver)(void *owner), void *owner)
{
    rt_cf_peer_t *p = rt_mem_calloc(1, sizeof(*p));
    p->client = rt_strdup(client);
    p->user = rt_strdup(user != NULL ? user : "");
    p->conn_info = conn_info != NULL ? rt_strdup(conn_info) : NULL;
    p->worker = worker;
    p->task.cb = on_task;
    p->deliver = deliver;
    p->owner = owner;
    json_t *info = client_info(p);
    p->info = info != NULL ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    if (p->info == NULL)
        p->info = rt_strdup("{}");
    pthread_mutex_lock(&lock);
    rt_list_insert_tail(&peers, &p->link);
    pthread_mutex_unlock(&lock);
    return p;
}

const char *rt_presence_client(const rt_cf_peer_t *peer)
{
    return peer->client;
}

rt_cf_mail_t *rt_presence_take_mail(rt_cf_peer_t *peer)
{
    pthread_mutex_lock(&lock);
    rt_cf_mail_t *m = peer->mail_head;
    peer->mail_head = peer->mail_tail = NULL;
    pthread_mutex_unlock(&lock);
    return m;
}

/* Lock held. Posts a join or leave push about p to the members of ch that asked for them. */
static void post_join_leave(chan_t *ch, const char *channel, const rt_cf_peer_t *p, const char *what, rt_worker_t *here,
                            wake_list_t *wake)
{
    bool any = false;
    for (size_t i = 0; i < ch->n && !any; i++)
        any = ch->members[i].join_leave;
    if (!any && cluster == NULL)
        return;
    json_t *body = json_pack("{s:s,s:{s:o}}", "channel", channel, what, "info", client_info(p));
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL)
        return;
    rt_cf_mail_t mail = {.kind = RT_CF_MAIL_PUSH, .channel = (char *)channel, .push = rt_bytes_new(text, strlen(text))};
    free(text);
    for (size_t i = 0; i < ch->n; i++)
        if (ch->members[i].join_leave)
            post_locked(ch->members[i].peer, &mail, here, wake);
    if (cluster != NULL)
        cluster->push(cluster_self, channel, mail.push);
    rt_bytes_unref(mail.push);
}

void rt_presence_add(rt_cf_peer_t *peer, const char *channel, bool wants_join_leave, bool join_leave_push, rt_worker_t *here)
{
    wake_list_t wake = {0};
    size_t len = strlen(channel);
    pthread_mutex_lock(&lock);
    chan_t *ch = rt_map_get(&channels, channel, len);
    if (ch == NULL) {
        ch = rt_mem_calloc(1, sizeof(*ch));
        rt_map_put(&channels, channel, len, ch);
    }
    if (ch->n == ch->cap) {
        ch->cap = ch->cap ? ch->cap * 2 : 4;
        ch->members = rt_mem_realloc(ch->members, ch->cap * sizeof(*ch->members));
    }
    ch->members[ch->n++] = (member_t){peer, wants_join_leave};
    if (peer->n_channels == peer->cap_channels) {
        peer->cap_channels = peer->cap_channels ? peer->cap_channels * 2 : 4;
        peer->channels = rt_mem_realloc(peer->channels, peer->cap_channels * sizeof(*peer->channels));
    }
    peer->channels[peer->n_channels++] = rt_strdup(channel);
    if (cluster != NULL)
        cluster->joined(cluster_self, channel, peer->client, peer->info);
    if (join_leave_push)
        post_join_leave(ch, channel, peer, "join", here, &wake);
    pthread_mutex_unlock(&lock);
    wake_all(&wake);
}

/* Lock held. Removes peer from channel; posts leave pushes. */
static void remove_locked(rt_cf_peer_t *peer, const char *channel, bool join_leave_push, rt_worker_t *here, wake_list_t *wake)
{
    size_t len = strlen(channel);
    chan_t *ch = rt_map_get(&channels, channel, len);
    if (ch == NULL)
        return;
    bool found = false;
    for (size_t i = 0; i < ch->n; i++) {
        if (ch->members[i].peer == peer) {
            ch->members[i] = ch->members[--ch->n];
            found = true;
            break;
        }
    }
    for (size_t i = 0; i < peer->n_channels; i++) {
        if (strcmp(peer->channels[i], channel) == 0) {
            free(peer->channels[i]);
            peer->channels[i] = peer->channels[--peer->n_channels];
            break;
        }
    }
    if (found && cluster != NULL)
        cluster->left(cluster_self, channel, peer->client, ch->n == 0);
    if (found && join_leave_push)
        post_join_leave(ch, channel, peer, "leave", here, wake); /* members elsewhere too: maybe none here */
    if (ch->n == 0) {
        rt_map_del(&channels, channel, len);
        free(ch->members);
        free(ch);
    }
}

void rt_presence_remove(rt_cf_peer_t *peer, const char *channel, bool join_leave_push, rt_worker_t *here)
{
    wake_list_t wake = {0};
    pthread_mutex_lock(&lock);
    remove_locked(peer, channel, join_leave_push, here, &wake);
    pthread_mutex_unlock(&lock);
    wake_all(&wake);
}

void rt_presence_unregister(rt_cf_peer_t *peer)
{
    /*
     * This runs in the connection's close callback, after the loop turn's output flush: pushes delivered inline
     * would wait in the buffers for the next wake-up. So the leave pushes reach every member, on this worker too,
     * through its worker's task queue (here = NULL: nothing is delivered inline, `none` stays empty).
     */
    wake_list_t none = {0};
    pthread_mutex_lock(&lock);
    while (peer->n_channels != 0) {
        char *ch = rt_strdup(peer->channels[peer->n_channels - 1]);
        remove_locked(peer, ch, true, NULL, &none);
        free(ch);
    }
    rt_list_unlink(&peer->link);
    rt__worker_cancel(peer->worker, &peer->task);
    pthread_mutex_unlock(&lock);
    rt_cf_mail_free(peer->mail_head);
    free(peer->channels);
    free(peer->client);
    free(peer->user);
    free(peer->conn_info);
    free(peer->info);
    free(peer);
}

json_t *rt_presence_get(const char *channel)
{
    json_t *out = json_object();
    pthread_mutex_lock(&lock);
    chan_t *ch = rt_map_get(&channels, channel, strlen(channel));
    for (size_t i = 0; ch != NULL && i < ch->n; i++)
        json_object_set_new(out, ch->members[i].peer->client, client_info(ch->members[i].peer));
    pthread_mutex_unlock(&lock);
    return out;
}

/* Counts distinct users among members (quadratic, but presence lists of one channel are small). */
static size_t distinct_users(const chan_t *ch)
{
    size_t users = 0;
    for (size_t i = 0; i < ch->n; i++) {
        size_t j = 0;
        while (j < i && strcmp(ch->members[j].peer->user, ch->members[i].peer->user) != 0)
            j++;
        users += j == i;
    }
    return users;
}

void rt_presence_stats(const char *channel, size_t *num_clients, size_t *num_users)
{
    pthread_mutex_lock(&lock);
    chan_t *ch = rt_map_get(&channels, channel, strlen(channel));
    *num_clients = ch != NULL ? ch->n : 0;
    *num_users = ch != NULL ? distinct_users(ch) : 0;
    pthread_mutex_unlock(&lock);
}

bool rt_presence_glob(const char *pattern, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s != '\0') {
        if (*pattern == '*') {
            star = pattern++;
            resume = s;
        } else if (*pattern == *s) {
            pattern++;
            s++;
        } else if (star != NULL) {
            pattern = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pattern == '*')
        pattern++;
    return *pattern == '\0';
}

typedef struct st_channels_ctx_t {
    const char *pattern;
    json_t *out;
} channels_ctx_t;

static void add_channel(const char *key, size_t len, void *value, void *ctx)
{
    channels_ctx_t *cc = ctx;
    const chan_t *ch = value;
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)len, key);
    if (cc->pattern == NULL || cc->pattern[0] == '\0' || rt_presence_glob(cc->pattern, name))
        json_object_set_new(cc->out, name, json_pack("{s:I}", "num_clients", (json_int_t)ch->n));
}

json_t *rt_presence_channels(const char *pattern)
{
    channels_ctx_t cc = {pattern, json_object()};
    pthread_mutex_lock(&lock);
    rt_map_foreach(&channels, add_channel, &cc);
    pthread_mutex_unlock(&lock);
    return cc.out;
}

void rt_presence_totals(size_t *num_clients, size_t *num_users, size_t *num_channels, size_t *num_subs)
{
    size_t clients = 0, users = 0, subs = 0;
    pthread_mutex_lock(&lock);
    for (rt_list_t *l = peers.next; l != &peers; l = l->next) {
        rt_cf_peer_t *p = RT_STRUCT_FROM_MEMBER(rt_cf_peer_t, link, l);
        clients++;
        subs += p->n_channels;
        rt_list_t *k = peers.next;
        while (k != l && strcmp(RT_STRUCT_FROM_MEMBER(rt_cf_peer_t, link, k)->user, p->user) != 0)
            k = k->next;
        users += k == l;
    }
    *num_channels = channels.count;
    pthread_mutex_unlock(&lock);
    *num_clients = clients;
    *num_users = users;
    *num_subs = subs;
}

static bool listed(const json_t *except, const char *client)
{
    size_t i;
    const json_t *v;
    json_array_foreach(except, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), client) == 0)
            return true;
    }
    return false;
}

size_t rt_presence_post(const char *user, const char *client, const json_t *except, const rt_cf_mail_t *mail, rt_worker_t *here)
{
    wake_list_t wake = {0};
    size_t n = 0;
    pthread_mutex_lock(&lock);
    for (rt_list_t *l = peers.next; l != &peers; l = l->next) {
        rt_cf_peer_t *p = RT_STRUCT_FROM_MEMBER(rt_cf_peer_t, link, l);
        if ((user != NULL && strcmp(p->user, user) != 0) || (client != NULL && strcmp(p->client, client) != 0))
            continue;
        if (except != NULL && listed(except, p->client))
            continue;
        post_locked(p, mail, here, &wake);
        n++;
    }
    pthread_mutex_unlock(&lock);
    wake_all(&wake);
    return n;
}

void rt_presence_set_cluster(const rt_presence_cluster_t *ops, void *self)
{
    pthread_mutex_lock(&lock);
    cluster = ops;
    cluster_self = ops != NULL ? self : NULL;
    pthread_mutex_unlock(&lock);
}

typedef struct st_foreach_ctx_t {
    void (*cb)(const char *channel, const char *client, const char *info, void *ctx);
    void *ctx;
} foreach_ctx_t;

static void foreach_channel(const char *key, size_t len, void *value, void *ctx)
{
    foreach_ctx_t *fc = ctx;
    const chan_t *ch = value;
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)len, key);
    for (size_t i = 0; i < ch->n; i++)
        fc->cb(name, ch->members[i].peer->client, ch->members[i].peer->info, fc->ctx);
}

void rt_presence_foreach_local(void (*cb)(const char *channel, const char *client, const char *info, void *ctx), void *ctx)
{
    foreach_ctx_t fc = {cb, ctx};
    pthread_mutex_lock(&lock);
    rt_map_foreach(&channels, foreach_channel, &fc);
    pthread_mutex_unlock(&lock);
}

/* The cluster backend, read under the lock: it stays valid while workers run (rt_presence_set_cluster). */
static const rt_presence_cluster_t *current_cluster(void **self)
{
    pthread_mutex_lock(&lock);
    const rt_presence_cluster_t *c = cluster;
    *self = cluster_self;
    pthread_mutex_unlock(&lock);
    return c;
}

void rt_presence_query(rt_worker_t *w, const char *channel, bool stats, rt_presence_cb cb, void *ctx)
{
    void *self;
    const rt_presence_cluster_t *c = current_cluster(&self);
    if (c != NULL) {
        c->query(self, w, channel, stats, cb, ctx);
        return;
    }
    json_t *res;
    if (stats) {
        size_t clients, users;
        rt_presence_stats(channel, &clients, &users);
        res = json_pack("{s:I,s:I}", "num_clients", (json_int_t)clients, "num_users", (json_int_t)users);
    } else {
        res = json_pack("{s:o}", "presence", rt_presence_get(channel));
    }
    char *text = res != NULL ? json_dumps(res, JSON_COMPACT) : NULL;
    json_decref(res);
    if (text != NULL)
        cb(ctx, 0, text, strlen(text));
    else
        cb(ctx, RT_ENOMEM, NULL, 0);
    free(text);
}

void rt_presence_control(rt_worker_t *w, const char *user, const char *client, const json_t *except, const rt_cf_mail_t *mail,
                         rt_presence_cb cb, void *ctx)
{
    rt_presence_post(user, client, except, mail, w);
    void *self;
    const rt_presence_cluster_t *c = current_cluster(&self);
    char *text = c != NULL ? rt_presence_control_encode(user, client, except, mail) : NULL;
    if (text == NULL) {
        cb(ctx, c != NULL ? RT_ENOMEM : 0, c != NULL ? NULL : "{}", c != NULL ? 0 : 2);
        return;
    }
    c->post(self, w, text, strlen(text), cb, ctx);
    free(text);
}

json_t *rt_presence_cluster_stats(void)
{
    void *self;
    const rt_presence_cluster_t *c = current_cluster(&self);
    return c != NULL ? c->stats(self) : NULL;
}

char *rt_presence_result(const char *const *infos, const size_t *lens, size_t n, bool stats, size_t *len)
{
    json_t *present = json_object(), *users = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *info = json_loadb(infos[i], lens[i], 0, NULL);
        const char *client = json_string_value(json_object_get(info, "client"));
        const char *user = json_string_value(json_object_get(info, "user"));
        if (client != NULL && user != NULL) {
            json_object_set(present, client, info);
            json_object_set_new(users, user, json_true());
        }
        json_decref(info);
    }
    json_t *res = stats ? json_pack("{s:I,s:I}", "num_clients", (json_int_t)json_object_size(present), "num_users",
                                    (json_int_t)json_object_size(users))
                        : json_pack("{s:O}", "presence", present);
    json_decref(present);
    json_decref(users);
    char *text = res != NULL ? json_dumps(res, JSON_COMPACT) : NULL;
    json_decref(res);
    if (text == NULL)
        text = rt_strdup("{}");
    *len = strlen(text);
    return text;
}

static const char *const mail_kinds[] = {"push", "disconnect", "unsubscribe", "subscribe"};

char *rt_presence_control_encode(const char *user, const char *client, const json_t *except, const rt_cf_mail_t *mail)
{
    if (mail->kind == RT_CF_MAIL_PUSH)
        return NULL; /* pushes travel as push messages */
    json_t *m = json_pack("{s:s}", "op", mail_kinds[mail->kind]);
    if (m == NULL)
        return NULL;
    if (user != NULL)
        json_object_set_new(m, "user", json_string(user));
    if (client != NULL)
        json_object_set_new(m, "client", json_string(client));
    if (json_is_array(except) && json_array_size(except) != 0)
        json_object_set_new(m, "except", json_deep_copy(except));
    if (mail->channel != NULL)
        json_object_set_new(m, "channel", json_string(mail->channel));
    if (mail->kind == RT_CF_MAIL_DISCONNECT) {
        json_object_set_new(m, "code", json_integer(mail->code));
        json_object_set_new(m, "reason", json_string(mail->reason));
    }
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    return text;
}

int rt_presence_control_apply(const char *text, size_t len)
{
    json_t *m = json_loadb(text, len, 0, NULL);
    const char *op = json_string_value(json_object_get(m, "op"));
    int kind = -1;
    for (int i = RT_CF_MAIL_DISCONNECT; op != NULL && i <= RT_CF_MAIL_SUBSCRIBE; i++)
        if (strcmp(op, mail_kinds[i]) == 0)
            kind = i;
    const char *channel = json_string_value(json_object_get(m, "channel"));
    const json_t *user = json_object_get(m, "user"), *client = json_object_get(m, "client");
    json_int_t code = json_integer_value(json_object_get(m, "code"));
    const char *reason = json_string_value(json_object_get(m, "reason"));
    bool ok = kind >= 0 && (user == NULL || json_is_string(user)) && (client == NULL || json_is_string(client)) &&
              (kind == RT_CF_MAIL_DISCONNECT ? code >= 3000 && code <= 4999 : channel != NULL);
    if (ok) {
        rt_cf_mail_t mail = {.kind = (rt_cf_mail_kind_t)kind, .channel = kind == RT_CF_MAIL_DISCONNECT ? NULL : (char *)channel,
                             .code = (uint16_t)code};
        snprintf(mail.reason, sizeof(mail.reason), "%s", reason != NULL ? reason : "");
        rt_presence_post(json_string_value(user), json_string_value(client), json_object_get(m, "except"), &mail, NULL);
    }
    json_decref(m);
    return ok ? 0 : -1;
}

void rt_presence_remote_push(const char *channel, const char *push, size_t len)
{
    wake_list_t none = {0};
    rt_cf_mail_t mail = {.kind = RT_CF_MAIL_PUSH, .channel = (char *)channel, .push = rt_bytes_new(push, len)};
    pthread_mutex_lock(&lock);
    chan_t *ch = rt_map_get(&channels, channel, strlen(channel));
    for (size_t i = 0; ch != NULL && i < ch->n; i++)
        if (ch->members[i].join_leave)
            post_locked(ch->members[i].peer, &mail, NULL, &none);
    pthread_mutex_unlock(&lock);
    rt_bytes_unref(mail.push);
}
