/*
 * loadgen shared definitions: configuration, the latency histogram and the report a subscriber worker
 * sends its parent over a pipe. Included once, by bench/loadgen.c (each bench .c file is its own program).
 */
#ifndef LG_COMMON_H
#define LG_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

enum { LG_TARGET_REALTIME, LG_TARGET_NCHAN };
enum { LG_TR_WS, LG_TR_SSE, LG_TR_CENTRIFUGE };

typedef struct st_lg_config_t {
    int target, transport;
    uint32_t host;      /* target address, network order, always 127.x.y.z */
    int port;
    uint32_t pub_host;  /* where events are published (--pub-url; default the target) */
    int pub_port;
    int observe;        /* --observe: publish nothing, expect --events published by someone else */
    const char *channel;
    uint32_t subs;       /* subscribers to open */
    uint32_t procs;      /* subscriber worker processes */
    uint32_t per_ip;     /* connections per source address 127.0.0.2, .3, ... */
    uint32_t src_offset; /* first source address is 127.0.0.2 + src_offset */
    double connect_rate; /* new connections per second, all workers together */
    uint32_t inflight;   /* handshakes in flight per worker */
    double connect_timeout_s;
    uint32_t events;     /* events to publish */
    double rate;         /* events per second */
    double rates[32];    /* --rates: a step per rate, stopping at the first that breaks */
    int n_rates;
    double step_s;       /* seconds of publishing per step */
    double max_p99_ms;   /* a step whose p99 exceeds this breaks the search */
    uint32_t pub_conns;  /* keep-alive publisher connections */
    uint32_t payload;    /* approximate event body size in bytes (padding) */
    double settle_s;     /* idle time after connecting, before the RSS sample and the first publish */
    double drain_s;      /* give up waiting for deliveries after this long without progress */
    double timeout_s;    /* hard bound on the whole run */
    int server_pids[8];
    int n_server_pids;
    int quiet;
} lg_config_t;

/* Log-bucket histogram of nanoseconds: values below 16 exact, then 16 sub-buckets per power of two
 * (resolution about 6 %), up to 2^64. 1024 buckets, so a merge is a plain loop. */
#define LG_HIST_N 1024

typedef struct st_lg_hist_t {
    uint64_t count, sum, min, max;
    uint64_t b[LG_HIST_N];
} lg_hist_t;

static inline unsigned hist_index(uint64_t v)
{
    if (v < 16)
        return (unsigned)v;
    unsigned msb = 63 - (unsigned)__builtin_clzll(v), shift = msb - 4;
    return (shift + 1) * 16 + (unsigned)((v >> shift) & 15);
}

static inline uint64_t hist_upper(unsigned idx)
{
    if (idx < 16)
        return idx;
    unsigned shift = idx / 16 - 1, sub = idx % 16;
    return ((uint64_t)(16 + sub) << shift) + (((uint64_t)1 << shift) - 1);
}

static inline void hist_add(lg_hist_t *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->sum += v;
}

static inline void hist_merge(lg_hist_t *dst, const lg_hist_t *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
    for (unsigned i = 0; i < LG_HIST_N; i++)
        dst->b[i] += src->b[i];
}

/* The value at quantile q, as the upper edge of its bucket (never above the recorded maximum). */
static inline uint64_t hist_quantile(const lg_hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999), seen = 0;
    if (rank < 1)
        rank = 1;
    for (unsigned i = 0; i < LG_HIST_N; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t u = hist_upper(i);
            return u > h->max ? h->max : u;
        }
    }
    return h->max;
}

enum { LG_PHASE_CONNECTING, LG_PHASE_CONNECTED, LG_PHASE_FINAL };

/* What a worker tells its parent: sent every 100 ms, on the parent's 'R' (end of a rate step: then the
 * delivery counters restart from zero) and once more, final, on the parent's 'S'. */
typedef struct st_lg_report_t {
    uint32_t magic, worker, phase, snap; /* snap: answers to the parent's 'R' so far */
    uint64_t established, failed, attempts, retries, disconnects;
    uint64_t received, dups, reorders, pongs, bad;
    uint64_t first_rx_ns, last_rx_ns;
    uint64_t connect_start_ns, connect_end_ns;
    double cpu_connected_s, cpu_s; /* own CPU time when connected, and now */
    lg_hist_t lat;                 /* publish -> receive */
    lg_hist_t conn;                /* connect start -> subscription confirmed */
} lg_report_t;

#define LG_REPORT_MAGIC 0x4c475250u

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double cpu_self_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Writes all of buf to a blocking fd; 0 on success. */
static inline int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Finds needle in [p, p+len), case-insensitively for ASCII letters. */
static inline const char *find_ci(const char *p, size_t len, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= len; i++) {
        size_t j = 0;
        while (j < nl) {
            char a = p[i + j], b = needle[j];
            if (a >= 'A' && a <= 'Z')
                a = (char)(a + 32);
            if (b >= 'A' && b <= 'Z')
                b = (char)(b + 32);
            if (a != b)
                break;
            j++;
        }
        if (j == nl)
            return p + i;
    }
    return NULL;
}

/* HTTP status code from "HTTP/1.x NNN ...", or -1. */
static inline int http_status(const char *p, size_t len)
{
    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
        return -1;
    int s = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        s = s * 10 + (p[i] - '0');
    }
    return s;
}

#endif
