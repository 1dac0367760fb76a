/*
 * The systemd readiness protocol (sd_notify(3)) without libsystemd: a datagram to the socket named by
 * $NOTIFY_SOCKET, which systemd sets for a Type=notify service. Outside systemd the variable is unset and
 * every call does nothing.
 */
#ifndef RT_SERVER_NOTIFY_H
#define RT_SERVER_NOTIFY_H

/**
 * Sends state ("READY=1", "STOPPING=1", "STATUS=...", several joined by '\n') to $NOTIFY_SOCKET: a socket path,
 * or an abstract socket name written with a leading '@'. Returns 1 when sent, 0 when NOTIFY_SOCKET is unset or
 * empty, or a negative errno (a bad address, a failed send); never blocks for long (a datagram on a local socket).
 * Any thread may call it.
 */
int rt__notify(const char *state);

#endif
