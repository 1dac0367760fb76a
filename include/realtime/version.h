/* The version of realtime (the server and librealtime), in one place: the binary, the library's soname, the
 * Centrifuge connect reply and /metrics read it. */
#ifndef REALTIME_VERSION_H
#define REALTIME_VERSION_H

#define RT_VERSION "0.1.0"

#endif
