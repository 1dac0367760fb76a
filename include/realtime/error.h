/*
 * Error codes. Functions return 0 on success or a negative RT_E* value. The values are negated
 * errno numbers, the same as libuv's UV_E* on Linux, so libuv errors pass straight through.
 */
#ifndef REALTIME_ERROR_H
#define REALTIME_ERROR_H

#include <errno.h>

#define RT_EINVAL (-EINVAL)     /**< invalid argument or input */
#define RT_ENOMEM (-ENOMEM)     /**< out of memory */
#define RT_EAGAIN (-EAGAIN)     /**< buffer full: try again later (nothing was dropped) */
#define RT_ENOENT (-ENOENT)     /**< not found */
#define RT_EEXIST (-EEXIST)     /**< already exists (e.g. an event id still in history) */
#define RT_E2BIG (-E2BIG)       /**< over a size limit */
#define RT_ECLOSED (-ESHUTDOWN) /**< the object was closed */
#define RT_EPERM (-EPERM)       /**< not allowed */
#define RT_ERANGE (-ERANGE)     /**< resume point older than what history keeps */
#define RT_ESTALE (-ESTALE)     /**< resume point from another history epoch */

/** A short English description of err ("unknown error" for values not listed above). */
const char *rt_strerror(int err);
/** The symbolic name of err, e.g. "RT_EAGAIN". */
const char *rt_err_name(int err);

#endif
