/* The sd_notify protocol without libsystemd: unset is a no-op, a path and an abstract name both receive the state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "server/notify.h"

/* A datagram socket bound to name ("/path" or "@abstract"), as systemd's notify socket is. */
static int bind_dgram(const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)), 0);
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    assert_true(n >= 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void test_unset_is_a_no_op(void **state)
{
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(rt__notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(rt__notify("READY=1"), 0);
}

static void test_path_socket(void **state)
{
    char dir[] = "/tmp/rt-notify-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/notify", dir);
    int fd = bind_dgram(path);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(rt__notify("READY=1\nSTATUS=listening on 127.0.0.1:8080"), 1);
    expect_datagram(fd, "READY=1\nSTATUS=listening on 127.0.0.1:8080");
    assert_int_equal(rt__notify("STOPPING=1"), 1);
    expect_datagram(fd, "STOPPING=1");
    close(fd);
    unlink(path);
    /* Nobody listens there any more: an error, not a crash or a hang. */
    assert_true(rt__notify("STOPPING=1") < 0);
    rmdir(dir);
}

static void test_abstract_socket(void **state)
{
    char name[64];
    snprintf(name, sizeof(name), "@rt-notify-test-%d", (int)getpid());
    int fd = bind_dgram(name);
    setenv("NOTIFY_SOCKET", name, 1);
    assert_int_equal(rt__notify("READY=1"), 1);
    expect_datagram(fd, "READY=1");
    close(fd);
}

static void test_bad_addresses(void **state)
{
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    assert_int_equal(rt__notify("READY=1"), -EINVAL);
    char long_path[200];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    setenv("NOTIFY_SOCKET", long_path, 1);
    assert_int_equal(rt__notify("READY=1"), -EINVAL);
    unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unset_is_a_no_op),
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_bad_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
