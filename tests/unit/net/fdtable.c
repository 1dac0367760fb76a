/* The descriptor table is grown once to the open-file limit (capped), so later doublings stay off the accept path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include "net/fdtable.h"

/* The table's size as the kernel reports it (FDSize in /proc/self/status); -1 when unreadable. */
static int fd_table_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int size = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "FDSize: %d", &size) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return size;
}

/* Runs first: in a fresh process the table starts at 64 or so (under valgrind, larger: it keeps descriptors at
 * the top) and holds a lowered limit's worth of descriptors at once. */
static void test_grows_to_the_limit(void **state)
{
    struct rlimit rl, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    int before = fd_table_size();
    if (before < 0 || rl.rlim_cur <= 1000)
        skip(); /* no /proc here, or a limit too low to tell growth from the start size */
    low = rl;
    low.rlim_cur = 1000;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    assert_int_equal(rt__fdtable_reserve(), 1000);
    assert_true(fd_table_size() >= 1000);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);

    int want = rl.rlim_cur > RT_FDTABLE_RESERVE_MAX ? RT_FDTABLE_RESERVE_MAX : (int)rl.rlim_cur;
    assert_int_equal(rt__fdtable_reserve(), want);
    assert_true(fd_table_size() >= want);
}

static void test_capped(void **state)
{
    struct rlimit rl, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max <= RT_FDTABLE_RESERVE_MAX)
        skip(); /* cannot raise the limit past the cap here */
    low = rl;
    low.rlim_cur = (rlim_t)RT_FDTABLE_RESERVE_MAX * 2;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    assert_int_equal(rt__fdtable_reserve(), RT_FDTABLE_RESERVE_MAX);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grows_to_the_limit),
        cmocka_unit_test(test_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
