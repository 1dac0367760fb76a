/*
 * Limits that keep one client from taking what others need (DESIGN "Trust and authorization", Limits): the names
 * every refusal is counted under, and admission, which counts connections in all and per client address.
 *
 * Admission runs at accept and close only (a mutex then, never on the delivery path). A client address is the
 * socket's peer, except from a trusted proxy, whose clients are named by X-Forwarded-For once a request arrives.
 * An IPv6 client is counted by its /64, which is what one host or customer usually gets.
 */
#ifndef RT_NET_LIMITS_H
#define RT_NET_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include "net/addr.h"

typedef enum en_rt_limit_t {
    RT_LIMIT_CONNECTIONS,
    RT_LIMIT_CONNECTIONS_PER_IP,
    RT_LIMIT_SUBSCRIPTIONS,
    RT_LIMIT_CHANNELS_PER_SUBSCRIBE,
    RT_LIMIT_COMMAND_RATE,
    RT_LIMITS
} rt_limit_t;

/** The configuration key of each limit, which is also its label in /metrics and /api/stats. */
extern const char *const rt_limit_names[RT_LIMITS];

typedef struct st_rt_admission_t rt_admission_t;
/** One address's count, held by each of its connections. */
typedef struct st_rt_admission_slot_t rt_admission_slot_t;

/** max_connections and max_per_ip 0 mean no limit; trusted[0..n_trusted) is copied. */
rt_admission_t *rt_admission_new(size_t max_connections, size_t max_per_ip, const rt_cidr_t *trusted, size_t n_trusted);
void rt_admission_free(rt_admission_t *a);
/**
 * Sets new limits and trusted proxies (a reload); connections already counted stay counted. Turning
 * max_connections_per_ip on counts only connections accepted from then on. One thread at a time (the main one).
 */
void rt_admission_configure(rt_admission_t *a, size_t max_connections, size_t max_per_ip, const rt_cidr_t *trusted, size_t n_trusted);
/** Whether connections are counted per address (so each needs its slot). */
bool rt_admission_per_address(const rt_admission_t *a);
/** Whether peer is a trusted proxy. */
bool rt_admission_trusts(const rt_admission_t *a, const rt_addr_t *peer);
/** The trusted proxies, for rt_addr_forwarded_for. */
const rt_cidr_t *rt_admission_trusted(const rt_admission_t *a, size_t *n);
/** Counts a connection in the total; false when that makes more than max_connections (it is counted still). */
bool rt_admission_enter(rt_admission_t *a);
/** Uncounts a connection counted by rt_admission_enter. */
void rt_admission_leave(rt_admission_t *a);
/**
 * Counts a connection from addr; its slot, to give back to rt_admission_leave_addr. *over is set when that makes
 * more than max_per_ip (the connection is counted still, until it leaves).
 */
rt_admission_slot_t *rt_admission_enter_addr(rt_admission_t *a, const rt_addr_t *addr, bool *over);
void rt_admission_leave_addr(rt_admission_t *a, rt_admission_slot_t *slot);

#endif
