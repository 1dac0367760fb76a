/*
 * Presence and the Centrifuge connection registry: one process-wide table behind one mutex (see presence.h).
 * Mail for a peer on the caller's own worker is delivered right after the lock is released: the peer cannot go
 * away meanwhile, since only its own (this) thread frees it. A peer on another worker is queued there as a task
 * when its mailbox turns non-empty; it stays non-empty until that task (or an inline delivery) takes the mail,
 * so one queued task covers everything posted meanwhile. Unregistering cancels the task under the lock, after
 * which no poster can find the peer.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/worker.h"
#include "protocol/presence.h"
#include "util/list.h"
#include "util/map.h"
#include "util/mem.h"

struct st_rt_cf_peer_t {
    rt_list_t link; /* in peers */
    char *client, *user, *conn_info;
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

/* Lock held. Posts a join or leave push about p to the members of ch that asked for them. */
static void post_join_leave(chan_t *ch, const char *channel, const rt_cf_peer_t *p, const char *what, rt_worker_t *here,
                            wake_list_t *wake)
{
    bool any = false;
    for (size_t i = 0; i < ch->n && !any; i++)
        any = ch->members[i].join_leave;
    if (!any)
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
    if (ch->n == 0) {
        rt_map_del(&channels, channel, len);
        free(ch->members);
        free(ch);
        return;
    }
    if (found && join_leave_push)
        post_join_leave(ch, channel, peer, "leave", here, wake);
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
