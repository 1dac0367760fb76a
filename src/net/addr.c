#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "net/addr.h"

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool rt_addr_parse(const char *s, size_t len, rt_addr_t *out)
{
    char text[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(text))
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    struct in_addr v4;
    if (inet_pton(AF_INET, text, &v4) == 1) {
        memcpy(out->b, V4_MAPPED, 12);
        memcpy(out->b + 12, &v4, 4);
        return true;
    }
    return inet_pton(AF_INET6, text, out->b) == 1;
}

bool rt_cidr_parse(const char *s, rt_cidr_t *out)
{
    const char *slash = strchr(s, '/');
    size_t len = slash != NULL ? (size_t)(slash - s) : strlen(s);
    rt_cidr_t c;
    if (!rt_addr_parse(s, len, &c.net))
        return false;
    bool v4 = memchr(s, ':', len) == NULL;
    unsigned max = v4 ? 32 : 128, bits = max;
    if (slash != NULL) {
        char *end;
        unsigned long v = strtoul(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || v > max)
            return false;
        bits = (unsigned)v;
    }
    c.bits = (uint8_t)(v4 ? bits + 96 : bits);
    for (unsigned i = c.bits; i < 128; i++)
        c.net.b[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    if (out != NULL)
        *out = c;
    return true;
}

bool rt_cidr_valid(const char *s)
{
    return rt_cidr_parse(s, NULL);
}

bool rt_cidr_match(const rt_cidr_t *nets, size_t n, const rt_addr_t *addr)
{
    for (size_t i = 0; i < n; i++) {
        unsigned full = nets[i].bits / 8, rest = nets[i].bits % 8;
        if (memcmp(nets[i].net.b, addr->b, full) != 0)
            continue;
        if (rest == 0 || ((addr->b[full] ^ nets[i].net.b[full]) & (uint8_t)(0xff00u >> rest)) == 0)
            return true;
    }
    return false;
}

bool rt_addr_from_sockaddr(const struct sockaddr *sa, rt_addr_t *out)
{
    if (sa->sa_family == AF_INET) {
        memcpy(out->b, V4_MAPPED, 12);
        memcpy(out->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

void rt_addr_format(const rt_addr_t *addr, char *buf, size_t size)
{
    char text[INET6_ADDRSTRLEN] = "?";
    if (memcmp(addr->b, V4_MAPPED, 12) == 0)
        inet_ntop(AF_INET, addr->b + 12, text, sizeof(text));
    else
        inet_ntop(AF_INET6, addr->b, text, sizeof(text));
    snprintf(buf, size, "%s", text);
}

bool rt_addr_forwarded_for(const char *xff, const rt_cidr_t *trusted, size_t n_trusted, rt_addr_t *out)
{
    if (xff == NULL)
        return false;
    /* From the right: each hop appends the address it got the request from. */
    const char *end = xff + strlen(xff);
    while (end > xff) {
        const char *start = end;
        while (start > xff && start[-1] != ',')
            start--;
        const char *s = start, *e = end;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        rt_addr_t a;
        if (!rt_addr_parse(s, (size_t)(e - s), &a))
            return false; /* not an address (a port, "unknown"): nothing left of it can be trusted */
        if (!rt_cidr_match(trusted, n_trusted, &a)) {
            *out = a;
            return true;
        }
        end = start > xff ? start - 1 : xff;
    }
    return false;
}
