/*
 * WebSocket (RFC 6455) framing, pure: parse frame headers in place, unmask payloads, build server
 * (unmasked) and client (masked) frames, build and check close payloads, and decide how frames
 * assemble into messages. No I/O and no allocation; the connection owns the bytes.
 *
 * Receiving loop of a server connection:
 *
 *     rt_ws_frame_t f = {.require_mask = 1};
 *     int n = rt_ws_parse_frame(buf, len, &f);        -2: read more; -1: close with f.close_code
 *     rt_ws_msg_frame_begin(&msg, &f);                -1: close with msg.close_code
 *     ... once f.payload_len bytes after the n header bytes are in: ...
 *     rt_ws_unmask(payload, f.payload_len, f.mask, 0);
 *     rt_ws_msg_frame_data(&msg, payload, f.payload_len);   -1: close 1007
 *     r = rt_ws_msg_frame_end(&msg);                  TEXT/BINARY: message complete, 0: more
 *                                                     fragments to come, CLOSE/PING/PONG: control
 */
#ifndef RT_TRANSPORT_WS_CODEC_H
#define RT_TRANSPORT_WS_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include "transport/utf8.h"

/* opcodes (RFC 6455 section 5.2) */
#define RT_WS_OP_CONTINUATION 0x0
#define RT_WS_OP_TEXT 0x1
#define RT_WS_OP_BINARY 0x2
#define RT_WS_OP_CLOSE 0x8
#define RT_WS_OP_PING 0x9
#define RT_WS_OP_PONG 0xa

/* RSV bits of the first header byte */
#define RT_WS_RSV1 0x40
#define RT_WS_RSV2 0x20
#define RT_WS_RSV3 0x10

/* close status codes (RFC 6455 section 7.4.1; 1012-1014 from the IANA registry) */
#define RT_WS_CLOSE_NORMAL 1000
#define RT_WS_CLOSE_GOING_AWAY 1001
#define RT_WS_CLOSE_PROTOCOL_ERROR 1002
#define RT_WS_CLOSE_UNSUPPORTED 1003
#define RT_WS_CLOSE_NO_STATUS 1005 /**< never sent: reported when a close frame has no payload */
#define RT_WS_CLOSE_ABNORMAL 1006  /**< never sent: connection dropped without a close frame */
#define RT_WS_CLOSE_INVALID_DATA 1007
#define RT_WS_CLOSE_POLICY 1008
#define RT_WS_CLOSE_TOO_BIG 1009
#define RT_WS_CLOSE_MANDATORY_EXT 1010
#define RT_WS_CLOSE_INTERNAL 1011

#define RT_WS_MAX_HEADER 14         /**< longest frame header: 2 + 8 (length) + 4 (mask) */
#define RT_WS_MAX_SERVER_HEADER 10  /**< longest unmasked frame header */
#define RT_WS_MAX_CONTROL_PAYLOAD 125
#define RT_WS_MAX_CLOSE_REASON 123  /**< a close payload is a 2-byte code plus at most 123 bytes */

/** A parsed frame header. */
typedef struct st_rt_ws_frame_t {
    /* Inputs: set by the caller, read but never written by rt_ws_parse_frame. */
    uint8_t require_mask; /**< 1 when parsing client frames: an unmasked frame is error 1002 */
    uint8_t allowed_rsv;  /**< RSV bits a negotiated extension defines (none yet: 0); others are 1002 */
    /* Outputs, valid when rt_ws_parse_frame returns > 0. */
    uint8_t fin;
    uint8_t rsv;
    uint8_t opcode;
    uint8_t masked;
    uint8_t mask[4]; /**< zero when not masked */
    uint64_t payload_len;
    /* Set when rt_ws_parse_frame returns -1. */
    uint16_t close_code;
    const char *error; /**< static string, for the close reason and logs */
} rt_ws_frame_t;

/**
 * Parses the frame header at buf[0..len). Returns the header length (2..14; the payload follows it),
 * -2 if more bytes are needed, or -1 if the frame is invalid: then f->close_code is 1002 and
 * f->error says why (RSV bits not in f->allowed_rsv, unknown opcode, fragmented control frame,
 * control payload over 125 bytes, length not minimally encoded, 64-bit length with the MSB set,
 * unmasked while f->require_mask). Errors visible in the first two bytes are reported without
 * waiting for the rest. Reads at most RT_WS_MAX_HEADER bytes and writes nothing but *f.
 */
int rt_ws_parse_frame(const uint8_t *buf, size_t len, rt_ws_frame_t *f);

/**
 * XORs p[0..len) in place with the mask; offset is the position of p[0] in the frame payload, so a
 * payload can be unmasked in pieces as it arrives. Works 8 bytes at a time; p needs no alignment.
 */
void rt_ws_unmask(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t offset);

/** Header length of an unmasked frame with this payload length: 2, 4 or 10. */
static inline size_t rt_ws_frame_header_size(uint64_t payload_len);
/**
 * Writes the header of an unmasked (server to client) frame and returns its length (2, 4 or 10).
 * The payload is not touched: encode header and payload once into one buffer and send the same
 * bytes to every client. payload_len must be < 2^63.
 */
size_t rt_ws_frame_header(uint8_t out[RT_WS_MAX_SERVER_HEADER], uint8_t opcode, int fin, uint64_t payload_len);

/** Bytes rt_ws_client_frame writes for a payload of len bytes. */
static inline size_t rt_ws_client_frame_size(uint64_t len);
/**
 * Writes a complete masked (client to server) frame: header, mask, then payload[0..len) masked with
 * `mask`. out must hold rt_ws_client_frame_size(len) bytes and not overlap payload. Returns the
 * bytes written. For tests and the benchmark load generator.
 */
size_t rt_ws_client_frame(uint8_t *out, uint8_t opcode, int fin, const uint8_t mask[4], const void *payload, size_t len);

/**
 * Writes a close payload: the code (big-endian) then the reason, cut to 123 bytes at a UTF-8
 * character boundary. code 0 writes an empty payload (no status). Returns the payload length.
 */
size_t rt_ws_close_payload(uint8_t out[RT_WS_MAX_CONTROL_PAYLOAD], uint16_t code, const char *reason, size_t reason_len);
/** As rt_ws_close_payload, with the 2-byte frame header in front: a complete close frame (≤ 127 bytes). */
size_t rt_ws_close_frame(uint8_t out[2 + RT_WS_MAX_CONTROL_PAYLOAD], uint16_t code, const char *reason, size_t reason_len);

/** A received close payload. */
typedef struct st_rt_ws_close_t {
    uint16_t code;         /**< the peer's code; RT_WS_CLOSE_NO_STATUS (1005) for an empty payload */
    const uint8_t *reason; /**< points into the payload; valid UTF-8 */
    size_t reason_len;
    uint16_t error_code; /**< on -1: the code to close with (1002 or 1007) */
    const char *error;   /**< on -1: static string */
} rt_ws_close_t;

/**
 * Checks a received (unmasked) close payload. Returns 0, or -1 with c->error_code 1002 for a
 * 1-byte payload or a code no endpoint may send (below 1000, 1004-1006, 1015-2999, 5000 and up), and
 * 1007 for a reason that is not UTF-8.
 */
int rt_ws_parse_close(const uint8_t *p, size_t len, rt_ws_close_t *c);

/**
 * Message assembly: which frames may follow which, the message size limit and UTF-8 of text
 * messages, checked incrementally so a bad message fails on its first bad fragment. The struct is
 * embedded in the connection; it decides, the connection keeps the bytes.
 */
typedef struct st_rt_ws_msg_t {
    uint64_t max_message_bytes; /**< limit on a whole message (all fragments); 0: none */
    uint16_t close_code;        /**< set when a call returns -1 */
    const char *error;          /**< set when a call returns -1: static string */
    uint64_t _len;              /* payload bytes of the open message, including the current frame */
    uint64_t _frame_left;       /* payload bytes of the current frame not yet passed to frame_data */
    uint8_t _opcode;            /* TEXT or BINARY while a message is open, else 0 */
    uint8_t _frame_opcode;
    uint8_t _frame_fin;
    rt_utf8_t _utf8;
} rt_ws_msg_t;

/** Initializes an assembler with no message open. */
void rt_ws_msg_init(rt_ws_msg_t *m, uint64_t max_message_bytes);
/**
 * Starts a frame whose header was just parsed. Control frames may come between the fragments of a
 * message and leave it untouched. Returns 0, or -1 with m->close_code: 1002 for a continuation
 * frame with no message open or a text/binary frame while one is open, 1009 when the message
 * would exceed max_message_bytes (decided from the header, before any payload is buffered).
 */
int rt_ws_msg_frame_begin(rt_ws_msg_t *m, const rt_ws_frame_t *f);
/**
 * The current frame's unmasked payload, in order, in pieces of any size (their total must be the
 * frame's payload_len). Text is validated as it comes. Returns 0, or -1 with close_code 1007.
 */
int rt_ws_msg_frame_data(rt_ws_msg_t *m, const void *p, size_t len);
/**
 * Ends the current frame. Returns RT_WS_OP_TEXT or RT_WS_OP_BINARY when it completed a message
 * (the assembler is then ready for the next one), 0 when more fragments must follow, the opcode of
 * a control frame (CLOSE, PING, PONG), or -1 with close_code 1007 when a text message ends inside a
 * UTF-8 sequence.
 */
int rt_ws_msg_frame_end(rt_ws_msg_t *m);
/** RT_WS_OP_TEXT or RT_WS_OP_BINARY while a fragmented message is open, else 0. */
static inline int rt_ws_msg_open(const rt_ws_msg_t *m);

/* inline definitions */

static inline size_t rt_ws_frame_header_size(uint64_t payload_len)
{
    return payload_len < 126 ? 2 : payload_len <= 0xffff ? 4 : 10;
}

static inline size_t rt_ws_client_frame_size(uint64_t len)
{
    return rt_ws_frame_header_size(len) + 4 + len;
}

static inline int rt_ws_msg_open(const rt_ws_msg_t *m)
{
    return m->_opcode;
}

#endif
