/* The labels of the connection-level reasons (net/conn.h), apart from conn.c so that harnesses with a fake
 * connection layer link them too. */
#include "net/conn.h"

const char *const rt_gap_names[RT_GAP_REASONS] = {
    [RT_GAP_FAILOVER] = "failover",
    [RT_GAP_STREAM_TRIMMED] = "stream_trimmed",
    [RT_GAP_EPOCH_CHANGED] = "epoch_changed",
    [RT_GAP_UNREADABLE] = "unreadable_event",
};

const char *const rt_disconnect_names[RT_DISC_REASONS] = {
    [RT_DISC_CLIENT] = "client",
    [RT_DISC_CONNECTION_LOST] = "connection_lost",
    [RT_DISC_SHUTDOWN] = "shutdown",
    [RT_DISC_SLOW_CONSUMER] = "slow_consumer",
    [RT_DISC_PONG_TIMEOUT] = "pong_timeout",
    [RT_DISC_RATE_LIMIT] = "rate_limit",
    [RT_DISC_PROTOCOL_ERROR] = "protocol_error",
    [RT_DISC_MESSAGE_TOO_BIG] = "message_too_big",
    [RT_DISC_TOKEN] = "token",
    [RT_DISC_OTHER] = "other",
};
