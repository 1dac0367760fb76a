/*
 * Client addresses for limits: an IPv4 or IPv6 address as 16 bytes (IPv4 as ::ffff:a.b.c.d), the networks of
 * trusted_proxies (CIDRs), and the X-Forwarded-For rule that finds a proxied client.
 */
#ifndef RT_NET_ADDR_H
#define RT_NET_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

typedef struct st_rt_addr_t {
    uint8_t b[16];
} rt_addr_t;

typedef struct st_rt_cidr_t {
    rt_addr_t net; /* host bits cleared */
    uint8_t bits;  /* prefix length over the 16 bytes (an IPv4 /8 is 104) */
} rt_cidr_t;

/** Parses "a.b.c.d" or an IPv6 address (no brackets) of len bytes. False when it is neither. */
bool rt_addr_parse(const char *s, size_t len, rt_addr_t *out);
/** Parses a CIDR ("10.0.0.0/8", "fd00::/8", or one address, all its bits). False when malformed. */
bool rt_cidr_parse(const char *s, rt_cidr_t *out);
/** rt_cidr_parse as a config item check. */
bool rt_cidr_valid(const char *s);
/** Whether addr is in one of nets[0..n). */
bool rt_cidr_match(const rt_cidr_t *nets, size_t n, const rt_addr_t *addr);
/** The address of a socket address (AF_INET or AF_INET6); false for other families. */
bool rt_addr_from_sockaddr(const struct sockaddr *sa, rt_addr_t *out);
/** Writes addr as text (IPv4 dotted for a mapped address) into buf. */
void rt_addr_format(const rt_addr_t *addr, char *buf, size_t size);
/**
 * The client of a request that came through trusted proxies: the rightmost X-Forwarded-For entry that is not a
 * trusted proxy (entries left of it could be written by the client itself). False, and *out untouched, when the
 * header is absent or holds no such entry that parses.
 */
bool rt_addr_forwarded_for(const char *xff, const rt_cidr_t *trusted, size_t n_trusted, rt_addr_t *out);

#endif
