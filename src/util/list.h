/*
 * Intrusive doubly linked list (circular, with a sentinel head), after h2o's linklist.h.
 * Embed an rt_list_t in the element and get back to it with RT_STRUCT_FROM_MEMBER.
 */
#ifndef RT_UTIL_LIST_H
#define RT_UTIL_LIST_H

#include <assert.h>
#include <stdbool.h>

typedef struct st_rt_list_t {
    struct st_rt_list_t *next, *prev;
} rt_list_t;

static inline void rt_list_init(rt_list_t *head);
static inline bool rt_list_empty(const rt_list_t *head);
/** True when the node is linked into some list (nodes are zeroed or unlinked when not). */
static inline bool rt_list_linked(const rt_list_t *node);
static inline void rt_list_insert_tail(rt_list_t *head, rt_list_t *node);
static inline void rt_list_unlink(rt_list_t *node);
/** Moves every node of src, in order, to the tail of dst; src is left empty. O(1): a queue handed over under a
 * lock holds the lock for the splice only. */
static inline void rt_list_splice_tail(rt_list_t *dst, rt_list_t *src);

#define rt_list_foreach_safe(pos, tmp, head) for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

/* inline definitions */

static inline void rt_list_init(rt_list_t *head)
{
    head->next = head->prev = head;
}

static inline bool rt_list_empty(const rt_list_t *head)
{
    return head->next == head;
}

static inline bool rt_list_linked(const rt_list_t *node)
{
    return node->next != NULL;
}

static inline void rt_list_insert_tail(rt_list_t *head, rt_list_t *node)
{
    assert(!rt_list_linked(node));
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

static inline void rt_list_unlink(rt_list_t *node)
{
    node->next->prev = node->prev;
    node->prev->next = node->next;
    node->next = node->prev = NULL;
}

static inline void rt_list_splice_tail(rt_list_t *dst, rt_list_t *src)
{
    if (rt_list_empty(src))
        return;
    src->next->prev = dst->prev;
    dst->prev->next = src->next;
    src->prev->next = dst;
    dst->prev = src->prev;
    rt_list_init(src);
}

#endif
