/*
 * Linux doubles a process's descriptor table as descriptors pass 64, 128, 256, …; when several threads share the
 * table, each doubling waits for an RCU grace period (expand_fdtable calls synchronize_rcu), which stalls the
 * accepting worker for 5–20 ms: a burst of 2000 WebSocket handshakes had a p99 of 21 ms against nchan's 2 ms
 * (nginx workers are single-threaded). Growing the table once, before the workers start, takes every later
 * doubling off the accept path.
 */
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#include "net/fdtable.h"

int rt__fdtable_reserve(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < 2)
        return 0;
    int top = rl.rlim_cur > RT_FDTABLE_RESERVE_MAX ? RT_FDTABLE_RESERVE_MAX : (int)rl.rlim_cur;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* The lowest free descriptor at or above top - 1: the table grows to hold it, and keeps its size after. */
    int high = fcntl(fd, F_DUPFD_CLOEXEC, top - 1);
    close(fd);
    if (high < 0)
        return 0;
    close(high);
    return top;
}
