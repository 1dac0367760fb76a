/*
 * Guard pages for parser tests (picohttpparser's habit): the input's last byte sits right before an
 * unreadable page, so a read past the end faults in any build. Include after <cmocka.h>.
 */
#ifndef TESTS_HARNESS_GUARD_PAGE_H
#define TESTS_HARNESS_GUARD_PAGE_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Copies len bytes so that the last one sits right before an unreadable page: any read past the
 * end faults, in release builds too. Free with guard_free(). */
static inline uint8_t *guard_copy(const void *src, size_t len, size_t *map_len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (len + page - 1) / page * page + page;
    uint8_t *base = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(base != MAP_FAILED);
    assert_int_equal(mprotect(base + n - page, page, PROT_NONE), 0);
    *map_len = n;
    uint8_t *p = base + n - page - len;
    if (len != 0)
        memcpy(p, src, len);
    return p;
}

static inline void guard_free(uint8_t *p, size_t len, size_t map_len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    munmap(p + len + page - map_len, map_len);
}

#endif
