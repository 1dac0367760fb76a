#include <assert.h>
#include <string.h>
#include "transport/ws_codec.h"

static int frame_error(rt_ws_frame_t *f, const char *why)
{
    f->close_code = RT_WS_CLOSE_PROTOCOL_ERROR;
    f->error = why;
    return -1;
}

int rt_ws_parse_frame(const uint8_t *buf, size_t len, rt_ws_frame_t *f)
{
    size_t hlen = 2;
    uint64_t plen;

    if (len < 2)
        return -2;
    f->fin = buf[0] >> 7;
    f->rsv = buf[0] & (RT_WS_RSV1 | RT_WS_RSV2 | RT_WS_RSV3);
    f->opcode = buf[0] & 0x0f;
    f->masked = buf[1] >> 7;
    plen = buf[1] & 0x7f;

    if ((f->rsv & ~f->allowed_rsv) != 0)
        return frame_error(f, "reserved bits set");
    switch (f->opcode) {
    case RT_WS_OP_CONTINUATION:
    case RT_WS_OP_TEXT:
    case RT_WS_OP_BINARY:
        break;
    case RT_WS_OP_CLOSE:
    case RT_WS_OP_PING:
    case RT_WS_OP_PONG:
        if (!f->fin)
            return frame_error(f, "fragmented control frame");
        if (plen > RT_WS_MAX_CONTROL_PAYLOAD)
            return frame_error(f, "control frame too long");
        break;
    default:
        return frame_error(f, "unknown opcode");
    }
    if (f->require_mask && !f->masked)
        return frame_error(f, "unmasked client frame");

    /* Section 5.2: "the minimal number of bytes MUST be used to encode the length". */
    if (plen == 126) {
        if (len < 4)
            return -2;
        plen = (uint64_t)buf[2] << 8 | buf[3];
        if (plen < 126)
            return frame_error(f, "length not minimally encoded");
        hlen = 4;
    } else if (plen == 127) {
        if (len < 10)
            return -2;
        plen = 0;
        for (size_t i = 2; i < 10; ++i)
            plen = plen << 8 | buf[i];
        if (plen >> 63)
            return frame_error(f, "64-bit length with the most significant bit set");
        if (plen <= 0xffff)
            return frame_error(f, "length not minimally encoded");
        hlen = 10;
    }
    if (f->masked) {
        if (len < hlen + 4)
            return -2;
        memcpy(f->mask, buf + hlen, 4);
        hlen += 4;
    } else {
        memset(f->mask, 0, 4);
    }
    f->payload_len = plen;
    return (int)hlen;
}

void rt_ws_unmask(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t offset)
{
    /* The mask rotated to start at p[0], repeated to 8 bytes, in memory order: the XOR below is then
     * the same whatever the host's byte order. */
    uint8_t m8[8];
    uint64_t m, w;
    size_t i = 0;

    for (size_t j = 0; j < 8; ++j)
        m8[j] = mask[(offset + j) & 3];
    memcpy(&m, m8, 8);
    for (; len - i >= 32; i += 32) {
        for (size_t k = 0; k < 32; k += 8) {
            memcpy(&w, p + i + k, 8);
            w ^= m;
            memcpy(p + i + k, &w, 8);
        }
    }
    for (; len - i >= 8; i += 8) {
        memcpy(&w, p + i, 8);
        w ^= m;
        memcpy(p + i, &w, 8);
    }
    for (; i < len; ++i)
        p[i] ^= m8[i & 7];
}

size_t rt_ws_frame_header(uint8_t out[RT_WS_MAX_SERVER_HEADER], uint8_t opcode, int fin, uint64_t payload_len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    assert(payload_len >> 63 == 0);
    out[1] = 127;
    for (int i = 0; i < 8; ++i)
        out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    return 10;
}

size_t rt_ws_client_frame(uint8_t *out, uint8_t opcode, int fin, const uint8_t mask[4], const void *payload, size_t len)
{
    size_t hlen = rt_ws_frame_header(out, opcode, fin, len);

    out[1] |= 0x80;
    memcpy(out + hlen, mask, 4);
    hlen += 4;
    if (len != 0) {
        memcpy(out + hlen, payload, len);
        rt_ws_unmask(out + hlen, len, mask, 0);
    }
    return hlen + len;
}

size_t rt_ws_close_payload(uint8_t out[RT_WS_MAX_CONTROL_PAYLOAD], uint16_t code, const char *reason, size_t reason_len)
{
    if (code == 0)
        return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (reason_len > RT_WS_MAX_CLOSE_REASON) {
        /* Cutting inside a character would make the peer fail us with 1007: back up to a lead byte. */
        reason_len = RT_WS_MAX_CLOSE_REASON;
        while (reason_len > 0 && ((uint8_t)reason[reason_len] & 0xc0) == 0x80)
            --reason_len;
    }
    if (reason_len != 0)
        memcpy(out + 2, reason, reason_len);
    return 2 + reason_len;
}

size_t rt_ws_close_frame(uint8_t out[2 + RT_WS_MAX_CONTROL_PAYLOAD], uint16_t code, const char *reason, size_t reason_len)
{
    size_t n = rt_ws_close_payload(out + 2, code, reason, reason_len);
    return rt_ws_frame_header(out, RT_WS_OP_CLOSE, 1, n) + n;
}

static int close_code_valid(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return 1; /* libraries, frameworks and applications */
    switch (code) {
    case 1000: case 1001: case 1002: case 1003:
    case 1007: case 1008: case 1009: case 1010: case 1011:
    case 1012: case 1013: case 1014:
        return 1;
    default:
        return 0; /* below 1000, reserved (1004), local-only (1005, 1006, 1015) or unassigned */
    }
}

int rt_ws_parse_close(const uint8_t *p, size_t len, rt_ws_close_t *c)
{
    c->reason = NULL;
    c->reason_len = 0;
    if (len == 0) {
        c->code = RT_WS_CLOSE_NO_STATUS;
        return 0;
    }
    c->error_code = RT_WS_CLOSE_PROTOCOL_ERROR;
    if (len == 1) {
        c->error = "close payload of 1 byte";
        return -1;
    }
    if (len > RT_WS_MAX_CONTROL_PAYLOAD) {
        c->error = "close payload too long";
        return -1;
    }
    c->code = (uint16_t)(p[0] << 8 | p[1]);
    if (!close_code_valid(c->code)) {
        c->error = "invalid close code";
        return -1;
    }
    if (rt_utf8_validate(p + 2, len - 2) != 0) {
        c->error_code = RT_WS_CLOSE_INVALID_DATA;
        c->error = "close reason is not UTF-8";
        return -1;
    }
    c->reason = p + 2;
    c->reason_len = len - 2;
    return 0;
}

static int msg_error(rt_ws_msg_t *m, uint16_t code, const char *why)
{
    m->close_code = code;
    m->error = why;
    return -1;
}

void rt_ws_msg_init(rt_ws_msg_t *m, uint64_t max_message_bytes)
{
    memset(m, 0, sizeof(*m));
    m->max_message_bytes = max_message_bytes;
    rt_utf8_init(&m->_utf8);
}

int rt_ws_msg_frame_begin(rt_ws_msg_t *m, const rt_ws_frame_t *f)
{
    assert(m->_frame_left == 0);
    m->_frame_opcode = f->opcode;
    m->_frame_fin = f->fin;
    m->_frame_left = f->payload_len;
    switch (f->opcode) {
    case RT_WS_OP_TEXT:
    case RT_WS_OP_BINARY:
        if (m->_opcode != 0)
            return msg_error(m, RT_WS_CLOSE_PROTOCOL_ERROR, "new message before the previous one ended");
        m->_opcode = f->opcode;
        m->_len = 0;
        rt_utf8_init(&m->_utf8);
        break;
    case RT_WS_OP_CONTINUATION:
        if (m->_opcode == 0)
            return msg_error(m, RT_WS_CLOSE_PROTOCOL_ERROR, "continuation frame without a message");
        break;
    default:
        return 0; /* control frames are whole (the parser checked) and leave the message alone */
    }
    if (m->max_message_bytes != 0 && f->payload_len > m->max_message_bytes - m->_len)
        return msg_error(m, RT_WS_CLOSE_TOO_BIG, "message too big");
    m->_len += f->payload_len;
    return 0;
}

int rt_ws_msg_frame_data(rt_ws_msg_t *m, const void *p, size_t len)
{
    assert(len <= m->_frame_left);
    m->_frame_left -= len;
    if (m->_opcode == RT_WS_OP_TEXT && !(m->_frame_opcode & 0x8) && rt_utf8_feed(&m->_utf8, p, len) != 0)
        return msg_error(m, RT_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
    return 0;
}

int rt_ws_msg_frame_end(rt_ws_msg_t *m)
{
    int op;

    assert(m->_frame_left == 0);
    if (m->_frame_opcode & 0x8)
        return m->_frame_opcode;
    if (!m->_frame_fin)
        return 0;
    op = m->_opcode;
    if (op == RT_WS_OP_TEXT && rt_utf8_finish(&m->_utf8) != 0)
        return msg_error(m, RT_WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence");
    m->_opcode = 0;
    m->_len = 0;
    return op;
}
