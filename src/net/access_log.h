/*
 * The access log (config access_log): one line per HTTP request answered and one per stream (WebSocket, SSE,
 * Centrifuge) when it ends; never a line per event. The module is "access", the level info, and the lines are
 * exempt from the repeat limit (util/log.h).
 *
 *   text: GET /api/stats 200 bytes=412 duration_ms=0.183 client=127.0.0.1:50312
 *         stream transport=ws duration_ms=5012.004 bytes_in=310 bytes_out=18233 code=1000 reason="..." client=...
 *   json: the same as fields: kind ("http" or "stream"), method, path, status, bytes, duration_ms, client;
 *         transport, bytes_in, bytes_out, code, reason.
 *
 * The path is the request's without its query string (a query may hold a token), bytes not printable in ASCII
 * %-escaped. The client is the peer's address (the proxy's, behind one).
 *
 * A connection carries an rt_conn_access_t only when access_log is on (conn.c allocates it with the connection);
 * with it off, the connection layer pays one flag test per read and per write, nothing per event.
 */
#ifndef RT_NET_ACCESS_LOG_H
#define RT_NET_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "net/conn.h"

#define RT_ACCESS_REASON_MAX 63

/** What the access log knows of a connection (only when access_log is on). Loop thread. */
typedef struct st_rt_conn_access_t {
    int64_t start_us;  /**< accepted, rt_clock_mono_us */
    uint64_t bytes_in, bytes_out;
    uint16_t code;     /**< the close code of a stream (WebSocket or Centrifuge), 0 when none */
    bool noted;        /**< code and reason are set: the first reason given wins */
    bool logged;       /**< the stream's line is written */
    char reason[RT_ACCESS_REASON_MAX + 1];
    char client[48];   /**< "ip:port", read at accept (after the close the socket no longer knows) */
} rt_conn_access_t;

/** The connection's access record, or NULL when access_log is off (conn.c). */
rt_conn_access_t *rt__conn_access(rt_conn_t *c);

/** Logs a request answered with status and bytes (head and body) on c; start_us is when it began. */
void rt__access_log_request(rt_conn_t *c, const char *method, const char *path, int status, size_t bytes, int64_t start_us);
/** Logs the end of the stream on c (a connection of kind other than HTTP), once. */
void rt__access_log_stream(rt_conn_t *c);

#endif
