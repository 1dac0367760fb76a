/*
 * The server side of the WebSocket opening handshake (RFC 6455 section 4.2): decide whether an
 * HTTP request is a valid upgrade, compute Sec-WebSocket-Accept, write the 101 response. The HTTP
 * layer parses the request (llhttp) and hands over the header values; nothing here reads a socket.
 */
#ifndef RT_TRANSPORT_WS_HANDSHAKE_H
#define RT_TRANSPORT_WS_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

/**
 * The request fields the handshake looks at, pointing into the request (not copied). A header that
 * is absent has base NULL (or len 0). A header that appears several times is passed as its values
 * joined with ", " (RFC 9110 section 5.3), which is how the HTTP layer should combine Connection.
 */
typedef struct st_rt_ws_handshake_req_t {
    const char *method;
    size_t method_len;
    uint8_t http_major, http_minor; /**< from the request line: below 1.1 is refused (400) */
    const char *upgrade;            /**< Upgrade: must list "websocket" (case-insensitive) */
    size_t upgrade_len;
    const char *connection; /**< Connection: a token list that must contain "upgrade" (any case) */
    size_t connection_len;
    const char *version; /**< Sec-WebSocket-Version: must be 13 */
    size_t version_len;
    const char *key; /**< Sec-WebSocket-Key: base64 of 16 bytes */
    size_t key_len;
    const char *protocol; /**< Sec-WebSocket-Protocol: the subprotocols offered, optional */
    size_t protocol_len;
} rt_ws_handshake_req_t;

/** The decision. */
typedef struct st_rt_ws_handshake_t {
    int status;             /**< 101 (accept), 400, 405 or 426 */
    const char *error;      /**< when status != 101: why (static string, for the body and logs) */
    const char *headers;    /**< when status != 101: header lines the error response must carry
                                 ("Allow: GET\r\n" for 405, "Sec-WebSocket-Version: 13\r\n" for 426,
                                 "" otherwise) */
    char accept[29];        /**< when status == 101: Sec-WebSocket-Accept, NUL-terminated */
} rt_ws_handshake_t;

/**
 * Checks the request in the order: method (405 unless GET), HTTP version, Upgrade and Connection
 * (400), Sec-WebSocket-Version (missing 400, not 13 426), Sec-WebSocket-Key (400 unless it decodes
 * to exactly 16 bytes). On success computes the accept value (SHA-1 of key and the RFC's GUID, in
 * base64). Returns hs->status.
 */
int rt_ws_handshake_check(const rt_ws_handshake_req_t *req, rt_ws_handshake_t *hs);

/**
 * Computes Sec-WebSocket-Accept for a key (as sent, surrounding spaces excluded) into out (28
 * characters and a NUL). Returns 0, or RT_EINVAL if the digest could not be computed.
 */
int rt_ws_accept_key(const char *key, size_t key_len, char out[29]);

/** 1 if the Sec-WebSocket-Protocol list in req offers `name` (compared exactly, as RFC 6455 says), else 0. */
int rt_ws_handshake_offers_protocol(const rt_ws_handshake_req_t *req, const char *name);

/**
 * Writes the 101 Switching Protocols response for an accepted handshake into buf[0..cap):
 * Upgrade, Connection, Sec-WebSocket-Accept, then Sec-WebSocket-Protocol if `protocol` is not NULL
 * (one the client offered), then `extra` (NULL or complete header lines, each ending in CRLF), then
 * the blank line. Returns the length, or RT_E2BIG if cap is too small (nothing useful is written).
 */
int rt_ws_handshake_response(char *buf, size_t cap, const rt_ws_handshake_t *hs, const char *protocol, const char *extra);

/** 1 if the comma-separated token list s[0..len) contains token (ASCII case-insensitive), else 0. */
int rt_ws_token_list_has(const char *s, size_t len, const char *token);

#endif
