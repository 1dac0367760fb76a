#include "realtime/error.h"

#define RT_ERRORS(X)                                                                                                           \
    X(RT_EINVAL, "invalid argument")                                                                                           \
    X(RT_ENOMEM, "out of memory")                                                                                              \
    X(RT_EAGAIN, "buffer full, try again")                                                                                     \
    X(RT_ENOENT, "not found")                                                                                                  \
    X(RT_EEXIST, "already exists")                                                                                             \
    X(RT_E2BIG, "too large")                                                                                                   \
    X(RT_ECLOSED, "closed")                                                                                                    \
    X(RT_EPERM, "not permitted")                                                                                               \
    X(RT_ERANGE, "older than history")                                                                                         \
    X(RT_ESTALE, "from another history epoch")

const char *rt_strerror(int err)
{
#define X(code, text)                                                                                                          \
    if (err == code)                                                                                                           \
        return text;
    RT_ERRORS(X)
#undef X
    return err == 0 ? "success" : "unknown error";
}

const char *rt_err_name(int err)
{
#define X(code, text)                                                                                                          \
    if (err == code)                                                                                                           \
        return #code;
    RT_ERRORS(X)
#undef X
    return err == 0 ? "OK" : "RT_EUNKNOWN";
}
