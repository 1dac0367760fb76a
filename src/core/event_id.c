#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "realtime/event.h"
#include "util/clock.h"

#define MS_BITS 50         /* 10 base32 characters: enough until the year 37648 */
#define COUNTER_HI_BITS 16 /* the 80-bit counter is hi:lo, hi holding the top 16 bits */
#define MAX_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */

/* Crockford's base32 alphabet is in ASCII order, so ids compare as text the way their numbers compare. */
static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static pthread_mutex_t id_mutex = PTHREAD_MUTEX_INITIALIZER;
static int64_t id_last_ms = -1;
static uint64_t id_hi, id_lo;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A random counter start for a new millisecond, with the top bit clear so that ~2^79 increments fit before
 * it would overflow. getrandom runs at most once per millisecond; its failure (no entropy source) falls back
 * to a clock-derived value, which only weakens unpredictability, never ordering. */
static void reseed(void)
{
    uint64_t r[2];
    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)&ts;
        r[0] = splitmix64(&x);
        r[1] = splitmix64(&x);
    }
    id_hi = r[0] & ((1u << (COUNTER_HI_BITS - 1)) - 1);
    id_lo = r[1];
}

void rt_event_generate_id(char *buf)
{
    int64_t now = rt_clock_wall_ms();
    if (now < 0)
        now = 0;
    pthread_mutex_lock(&id_mutex);
    if (now > id_last_ms) {
        id_last_ms = now;
        reseed();
    } else if (++id_lo == 0 && ++id_hi == (1u << COUNTER_HI_BITS)) {
        /* Counter exhausted within one millisecond (or a clock stuck behind): borrow the next millisecond. */
        id_last_ms++;
        reseed();
    }
    uint64_t ms = (uint64_t)id_last_ms, hi = id_hi, lo = id_lo;
    pthread_mutex_unlock(&id_mutex);

    if (ms >= (1ULL << MS_BITS))
        ms = (1ULL << MS_BITS) - 1;
    memcpy(buf, "evt-", 4);
    for (int i = 13; i >= 4; i--, ms >>= 5)
        buf[i] = crockford[ms & 31];
    for (int i = 29; i >= 14; i--) {
        buf[i] = crockford[lo & 31];
        lo = (lo >> 5) | (hi << 59);
        hi >>= 5;
    }
    buf[RT_EVENT_ID_GEN_LEN] = '\0';
}

static char *put_digits(char *p, int value, int n)
{
    for (int i = n - 1; i >= 0; i--, value /= 10)
        p[i] = (char)('0' + value % 10);
    return p + n;
}

void rt_format_timestamp(int64_t ms, char *buf)
{
    if (ms < 0)
        ms = 0;
    if (ms > MAX_MS)
        ms = MAX_MS;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char *p = put_digits(buf, tm.tm_year + 1900, 4);
    *p++ = '-';
    p = put_digits(p, tm.tm_mon + 1, 2);
    *p++ = '-';
    p = put_digits(p, tm.tm_mday, 2);
    *p++ = 'T';
    p = put_digits(p, tm.tm_hour, 2);
    *p++ = ':';
    p = put_digits(p, tm.tm_min, 2);
    *p++ = ':';
    p = put_digits(p, tm.tm_sec, 2);
    *p++ = '.';
    p = put_digits(p, (int)(ms % 1000), 3);
    *p++ = 'Z';
    *p = '\0';
}
