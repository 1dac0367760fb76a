#include <stdlib.h>
#include <string.h>
#include "realtime/channel.h"
#include "core/sub_index.h"
#include "util/mem.h"

typedef struct st_bucket_t {
    rt_list_t subs;
} bucket_t;

typedef struct st_trie_node_t {
    struct st_trie_node_t *parent;
    char *segment;       /* key in the parent's children (or "*"), NULL for the root */
    rt_map_t children;   /* segment -> node */
    struct st_trie_node_t *star;
    rt_list_t here;      /* patterns ending at this node */
    rt_list_t rest;      /* patterns ending with '>' right after this node */
    size_t n_patterns;   /* patterns whose entry sits here or below; the node goes when it reaches 0 */
} trie_node_t;

struct st_rt_sub_index_t {
    rt_map_t exact; /* channel -> bucket_t */
    trie_node_t root;
    rt_list_t all;
    size_t n_patterns; /* distinct pattern endpoints in use */
};

static void node_init(trie_node_t *n, trie_node_t *parent, const char *seg, size_t len)
{
    *n = (trie_node_t){.parent = parent, .segment = seg ? rt_strndup(seg, len) : NULL};
    rt_list_init(&n->here);
    rt_list_init(&n->rest);
}

rt_sub_index_t *rt__sub_index_new(void)
{
    rt_sub_index_t *idx = rt_mem_calloc(1, sizeof(*idx));
    node_init(&idx->root, NULL, NULL, 0);
    rt_list_init(&idx->all);
    return idx;
}

static void free_bucket(const char *key, size_t len, void *value, void *ctx)
{
    free(value);
}

static void free_node_children(trie_node_t *n);

static void free_child(const char *key, size_t len, void *value, void *ctx)
{
    free_node_children(value);
    free(value);
}

static void free_node_children(trie_node_t *n)
{
    rt_map_foreach(&n->children, free_child, NULL);
    rt_map_clear(&n->children);
    if (n->star != NULL) {
        free_node_children(n->star);
        free(n->star);
    }
    free(n->segment);
}

void rt__sub_index_free(rt_sub_index_t *idx)
{
    rt_map_foreach(&idx->exact, free_bucket, NULL);
    rt_map_clear(&idx->exact);
    free_node_children(&idx->root);
    free(idx);
}

static size_t segment_at(const char *s, size_t len, size_t pos)
{
    const char *dot = memchr(s + pos, '.', len - pos);
    return dot ? (size_t)(dot - s) - pos : len - pos;
}

/* Finds or creates the trie node for the pattern's segments before a trailing '>' (or all of them). */
static trie_node_t *trie_descend(trie_node_t *n, const char *p, size_t len, bool *rest)
{
    *rest = false;
    for (size_t pos = 0; pos < len;) {
        size_t sl = segment_at(p, len, pos);
        if (sl == 1 && p[pos] == '>') {
            *rest = true;
            break;
        }
        trie_node_t *child;
        if (sl == 1 && p[pos] == '*') {
            if (n->star == NULL) {
                n->star = rt_mem_alloc(sizeof(*n->star));
                node_init(n->star, n, "*", 1);
            }
            child = n->star;
        } else if ((child = rt_map_get(&n->children, p + pos, sl)) == NULL) {
            child = rt_mem_alloc(sizeof(*child));
            node_init(child, n, p + pos, sl);
            rt_map_put(&n->children, p + pos, sl, child);
        }
        n = child;
        pos += sl + 1;
    }
    return n;
}

void rt__sub_index_add(rt_sub_index_t *idx, rt_subscription_t *sub)
{
    for (size_t i = 0; i < sub->n_channels; i++) {
        const char *ch = sub->channels[i];
        size_t len = strlen(ch);
        rt_sub_entry_t *e = &sub->entries[i];
        e->sub = sub;
        if (rt_channel_is_all(ch, len)) {
            rt_list_insert_tail(&idx->all, &e->link);
        } else if (rt_channel_is_pattern(ch, len)) {
            bool rest;
            trie_node_t *n = trie_descend(&idx->root, ch, len, &rest);
            rt_list_t *list = rest ? &n->rest : &n->here;
            if (rt_list_empty(list))
                idx->n_patterns++;
            for (trie_node_t *up = n; up != NULL; up = up->parent)
                up->n_patterns++;
            rt_list_insert_tail(list, &e->link);
        } else {
            bucket_t *b = rt_map_get(&idx->exact, ch, len);
            if (b == NULL) {
                b = rt_mem_alloc(sizeof(*b));
                rt_list_init(&b->subs);
                rt_map_put(&idx->exact, ch, len, b);
            }
            rt_list_insert_tail(&b->subs, &e->link);
        }
    }
}

/* Frees trie nodes that no longer lead to any pattern, from n up towards the root. */
static void trie_prune(trie_node_t *n)
{
    while (n->parent != NULL && n->n_patterns == 0) {
        trie_node_t *parent = n->parent;
        if (parent->star == n)
            parent->star = NULL;
        else
            rt_map_del(&parent->children, n->segment, strlen(n->segment));
        free_node_children(n);
        free(n);
        n = parent;
    }
}

void rt__sub_index_remove(rt_sub_index_t *idx, rt_subscription_t *sub)
{
    for (size_t i = 0; i < sub->n_channels; i++) {
        const char *ch = sub->channels[i];
        size_t len = strlen(ch);
        rt_sub_entry_t *e = &sub->entries[i];
        if (!rt_list_linked(&e->link))
            continue;
        /* Entries do not point to their list (8 bytes each): alone in it, both neighbours are its head. */
        bool last = e->link.next == e->link.prev;
        rt_list_unlink(&e->link);
        if (rt_channel_is_all(ch, len))
            continue;
        if (rt_channel_is_pattern(ch, len)) {
            bool rest;
            trie_node_t *n = trie_descend(&idx->root, ch, len, &rest); /* finds: the nodes of a linked entry exist */
            if (last)
                idx->n_patterns--;
            for (trie_node_t *up = n; up != NULL; up = up->parent)
                up->n_patterns--;
            trie_prune(n);
        } else if (last) {
            free(rt_map_del(&idx->exact, ch, len));
        }
    }
}

static void visit_list(rt_list_t *list, size_t ci, rt_sub_visit_cb cb, void *ctx)
{
    for (rt_list_t *l = list->next; l != list; l = l->next) {
        rt_sub_entry_t *e = RT_STRUCT_FROM_MEMBER(rt_sub_entry_t, link, l);
        if (!e->sub->dead)
            cb(e->sub, ci, ctx);
    }
}

static void trie_match(trie_node_t *n, const char *ch, size_t len, size_t pos, size_t ci, rt_sub_visit_cb cb, void *ctx)
{
    if (pos > len) {
        visit_list(&n->here, ci, cb, ctx);
        return;
    }
    visit_list(&n->rest, ci, cb, ctx);
    size_t sl = segment_at(ch, len, pos);
    trie_node_t *child = n->children.count ? rt_map_get(&n->children, ch + pos, sl) : NULL;
    if (child != NULL)
        trie_match(child, ch, len, pos + sl + 1, ci, cb, ctx);
    if (n->star != NULL)
        trie_match(n->star, ch, len, pos + sl + 1, ci, cb, ctx);
}

void rt__sub_index_match(rt_sub_index_t *idx, const rt_event_t *ev, rt_sub_visit_cb cb, void *ctx)
{
    for (size_t ci = 0; ci < ev->n_channels; ci++) {
        const char *ch = ev->channels[ci];
        size_t len = strlen(ch);
        bucket_t *b = rt_map_get(&idx->exact, ch, len);
        if (b != NULL)
            visit_list(&b->subs, ci, cb, ctx);
        if (idx->root.n_patterns != 0)
            trie_match(&idx->root, ch, len, 0, ci, cb, ctx);
    }
    visit_list(&idx->all, 0, cb, ctx);
}

typedef struct st_foreach_t {
    rt_sub_visit_cb cb;
    void *ctx;
} foreach_t;

static void foreach_bucket(const char *key, size_t len, void *value, void *ctx)
{
    foreach_t *f = ctx;
    visit_list(&((bucket_t *)value)->subs, 0, f->cb, f->ctx);
}

static void foreach_node(trie_node_t *n, foreach_t *f);

static void foreach_child(const char *key, size_t len, void *value, void *ctx)
{
    foreach_node(value, ctx);
}

static void foreach_node(trie_node_t *n, foreach_t *f)
{
    visit_list(&n->here, 0, f->cb, f->ctx);
    visit_list(&n->rest, 0, f->cb, f->ctx);
    rt_map_foreach(&n->children, foreach_child, f);
    if (n->star != NULL)
        foreach_node(n->star, f);
}

void rt__sub_index_foreach(rt_sub_index_t *idx, rt_sub_visit_cb cb, void *ctx)
{
    foreach_t f = {cb, ctx};
    rt_map_foreach(&idx->exact, foreach_bucket, &f);
    foreach_node(&idx->root, &f);
    visit_list(&idx->all, 0, cb, ctx);
}

typedef struct st_foreach_channel_t {
    rt_sub_channel_cb cb;
    void *ctx;
} foreach_channel_t;

static void channel_bucket(const char *key, size_t len, void *value, void *ctx)
{
    foreach_channel_t *f = ctx;
    rt_list_t *list = &((bucket_t *)value)->subs;
    size_t n = 0;
    for (rt_list_t *l = list->next; l != list; l = l->next)
        n += !RT_STRUCT_FROM_MEMBER(rt_sub_entry_t, link, l)->sub->dead;
    if (n > 0)
        f->cb(key, len, n, f->ctx);
}

/* A pattern entry's text: the subscription's channel that the entry was made for. */
static void pattern_list(rt_list_t *list, foreach_channel_t *f)
{
    for (rt_list_t *l = list->next; l != list; l = l->next) {
        rt_sub_entry_t *e = RT_STRUCT_FROM_MEMBER(rt_sub_entry_t, link, l);
        if (e->sub->dead)
            continue;
        const char *p = e->sub->channels[e - e->sub->entries];
        f->cb(p, strlen(p), 1, f->ctx);
    }
}

static void pattern_node(trie_node_t *n, foreach_channel_t *f);

static void pattern_child(const char *key, size_t len, void *value, void *ctx)
{
    pattern_node(value, ctx);
}

static void pattern_node(trie_node_t *n, foreach_channel_t *f)
{
    pattern_list(&n->here, f);
    pattern_list(&n->rest, f);
    rt_map_foreach(&n->children, pattern_child, f);
    if (n->star != NULL)
        pattern_node(n->star, f);
}

void rt__sub_index_foreach_channel(rt_sub_index_t *idx, rt_sub_channel_cb cb, void *ctx)
{
    foreach_channel_t f = {cb, ctx};
    rt_map_foreach(&idx->exact, channel_bucket, &f);
    pattern_node(&idx->root, &f);
    pattern_list(&idx->all, &f);
}

bool rt__sub_reaches(const rt_subscription_t *sub, const rt_event_t *ev)
{
    for (size_t i = 0; i < sub->n_channels; i++) {
        const char *p = sub->channels[i];
        size_t plen = strlen(p);
        if (rt_channel_is_all(p, plen))
            return true;
        for (size_t ci = 0; ci < ev->n_channels; ci++)
            if (rt_pattern_match(p, plen, ev->channels[ci], strlen(ev->channels[ci])))
                return true;
    }
    return false;
}

void rt__sub_index_counts(const rt_sub_index_t *idx, size_t *channels, size_t *patterns)
{
    *channels = idx->exact.count;
    *patterns = idx->n_patterns + !rt_list_empty(&idx->all);
}
