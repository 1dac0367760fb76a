/*
 * Subscription index: which subscriptions an event's channels reach.
 *
 * Exact channels are found by hash, patterns by a trie of segments (`*` = one segment, `>` = the rest),
 * `all` subscriptions sit on their own list. Matching one event costs in proportion to the channels it
 * names, the trie depth, and the subscriptions it reaches, never to the total number of subscriptions.
 * Not thread-safe: the broadcaster serialises access.
 */
#ifndef RT_CORE_SUB_INDEX_H
#define RT_CORE_SUB_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include "realtime/broadcaster.h"
#include "util/list.h"
#include "util/map.h"

typedef struct st_rt_sub_index_t rt_sub_index_t;

/** One channel of a subscription, linked into the index list for that channel or pattern (found again from the
 * channel on removal: no pointer to the list's owner, as one entry per subscribed channel adds up). */
typedef struct st_rt_sub_entry_t {
    rt_list_t link;
    rt_subscription_t *sub;
} rt_sub_entry_t;

struct st_rt_subscription_t {
    rt_client_t *client;
    rt_subscription_t *next_of_client;
    rt_filter_t *filter;
    void *data;
    uint32_t n_channels;
    bool dead; /* unsubscribed during a fan-out; freed after it */
    char **channels;
    rt_sub_entry_t *entries; /* one per channel */
};

/** Called for each (subscription, event channel index) reached; `all` subscriptions get channel index 0. */
typedef void (*rt_sub_visit_cb)(rt_subscription_t *sub, size_t channel_index, void *ctx);

rt_sub_index_t *rt__sub_index_new(void);
void rt__sub_index_free(rt_sub_index_t *idx);
/** Links every channel entry of sub (channels must be valid patterns). */
void rt__sub_index_add(rt_sub_index_t *idx, rt_subscription_t *sub);
/** Unlinks sub's entries, deleting buckets and trie nodes left empty. */
void rt__sub_index_remove(rt_sub_index_t *idx, rt_subscription_t *sub);
/** Calls cb once for every linked entry (a subscription once per channel; channel index 0). Callbacks must not add
 * or remove entries. */
void rt__sub_index_foreach(rt_sub_index_t *idx, rt_sub_visit_cb cb, void *ctx);
/** Visits every subscription entry ev reaches. Callbacks must not add or remove entries. */
void rt__sub_index_match(rt_sub_index_t *idx, const rt_event_t *ev, rt_sub_visit_cb cb, void *ctx);
/** True when one of sub's channels reaches one of ev's channels. */
bool rt__sub_reaches(const rt_subscription_t *sub, const rt_event_t *ev);
/** Called with a channel or pattern as subscribed and a number of live subscriptions on it. */
typedef void (*rt_sub_channel_cb)(const char *channel, size_t len, size_t n, void *ctx);
/**
 * Reports every subscribed channel and pattern with its live subscriptions: an exact channel once with its count,
 * a pattern (and `all`) once per subscription with 1 (the caller sums). Costs one pass over the index.
 */
void rt__sub_index_foreach_channel(rt_sub_index_t *idx, rt_sub_channel_cb cb, void *ctx);
/** Distinct exact channels and patterns currently indexed (`all` counts as a pattern). */
void rt__sub_index_counts(const rt_sub_index_t *idx, size_t *channels, size_t *patterns);

#endif
