/*
 * libFuzzer target: arbitrary bytes through the WebSocket receive path (frame header parser,
 * unmasking, message assembler, UTF-8 validation, close payloads), with cross-checks that abort on
 * any disagreement: re-encoding a parsed header gives back the same bytes, unmasking in pieces
 * equals unmasking at once, a completed text message is valid UTF-8 and a 1007 is really invalid,
 * a valid close payload re-encodes to itself, incremental UTF-8 equals one-shot.
 *
 * Input: one configuration byte (bit 0 require_mask, bits 1-2 the message limit, bits 3-7 the
 * piece size for unmasking and feeding), then the byte stream a client would send.
 */
/* fuzz-sources: src/transport/ws_codec.c src/transport/utf8.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "transport/ws_codec.h"

#define CHECK(c) ((c) ? (void)0 : abort())

static uint8_t msg[65536];

static void check_header_reencodes(const uint8_t *in, int hlen, const rt_ws_frame_t *f)
{
    uint8_t out[RT_WS_MAX_HEADER];
    size_t n = rt_ws_frame_header(out, f->opcode, f->fin, f->payload_len);
    out[0] |= f->rsv;
    if (f->masked) {
        out[1] |= 0x80;
        memcpy(out + n, f->mask, 4);
        n += 4;
    }
    CHECK(n == (size_t)hlen && memcmp(out, in, n) == 0);
}

static void check_close(const uint8_t *p, size_t len)
{
    rt_ws_close_t c;
    uint8_t out[RT_WS_MAX_CONTROL_PAYLOAD];
    if (rt_ws_parse_close(p, len, &c) != 0) {
        CHECK(c.error_code == RT_WS_CLOSE_PROTOCOL_ERROR || c.error_code == RT_WS_CLOSE_INVALID_DATA);
        return;
    }
    if (len == 0) {
        CHECK(c.code == RT_WS_CLOSE_NO_STATUS);
        return;
    }
    size_t n = rt_ws_close_payload(out, c.code, (const char *)c.reason, c.reason_len);
    CHECK(n == len && memcmp(out, p, n) == 0);
}

static void check_utf8_splits(const uint8_t *p, size_t len, size_t piece)
{
    rt_utf8_t u;
    int r = 0;
    rt_utf8_init(&u);
    for (size_t i = 0; i < len; i += piece)
        r |= rt_utf8_feed(&u, p + i, len - i < piece ? len - i : piece);
    if (r == 0)
        r = rt_utf8_finish(&u);
    CHECK(r == rt_utf8_validate(p, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t limits[4] = {0, 16, 125, sizeof(msg)};
    rt_ws_msg_t m;
    uint8_t *buf;
    size_t pos = 0, msg_len = 0, piece;

    if (size < 1)
        return 0;
    piece = (size_t)(data[0] >> 3) + 1;
    uint8_t require_mask = data[0] & 1;
    uint64_t limit = limits[(data[0] >> 1) & 3];
    ++data, --size;
    check_utf8_splits(data, size, piece);

    /* A heap copy of exactly the input: ASan catches any read past it, and unmasking writes. */
    buf = malloc(size != 0 ? size : 1);
    if (size != 0)
        memcpy(buf, data, size);
    rt_ws_msg_init(&m, limit != 0 ? limit : sizeof(msg));

    while (pos < size) {
        rt_ws_frame_t f = {.require_mask = require_mask};
        int h = rt_ws_parse_frame(buf + pos, size - pos, &f);
        if (h == -2)
            break;
        if (h == -1) {
            CHECK(f.close_code == RT_WS_CLOSE_PROTOCOL_ERROR && f.error != NULL);
            break;
        }
        CHECK(h >= 2 && h <= RT_WS_MAX_HEADER && (size_t)h <= size - pos);
        CHECK(!require_mask || f.masked);
        check_header_reencodes(buf + pos, h, &f);
        pos += (size_t)h;
        if (rt_ws_msg_frame_begin(&m, &f) != 0) {
            CHECK(m.close_code == RT_WS_CLOSE_PROTOCOL_ERROR || m.close_code == RT_WS_CLOSE_TOO_BIG);
            break;
        }
        if (f.payload_len > size - pos)
            break; /* the rest of the frame never arrives */
        uint8_t *p = buf + pos;
        size_t plen = (size_t)f.payload_len;
        pos += plen;

        uint8_t *once = malloc(plen != 0 ? plen : 1);
        if (plen != 0)
            memcpy(once, p, plen);
        rt_ws_unmask(once, plen, f.mask, 0);
        int bad = 0;
        for (size_t off = 0; off < plen && !bad; off += piece) {
            size_t n = plen - off < piece ? plen - off : piece;
            rt_ws_unmask(p + off, n, f.mask, off);
            if (!(f.opcode & 8)) {
                memcpy(msg + msg_len, p + off, n); /* fits: the assembler enforces the limit */
                msg_len += n;
            }
            bad = rt_ws_msg_frame_data(&m, p + off, n) != 0;
        }
        CHECK(plen == 0 || memcmp(once, p, plen) == 0 || bad);
        free(once);
        if (bad) {
            CHECK(m.close_code == RT_WS_CLOSE_INVALID_DATA && rt_ws_msg_open(&m) == RT_WS_OP_TEXT);
            CHECK(rt_utf8_validate(msg, msg_len) != 0);
            break;
        }
        int r = rt_ws_msg_frame_end(&m);
        if (r < 0) {
            CHECK(m.close_code == RT_WS_CLOSE_INVALID_DATA && rt_utf8_validate(msg, msg_len) != 0);
            break;
        }
        if (r == RT_WS_OP_CLOSE)
            check_close(p, plen);
        if (r == RT_WS_OP_TEXT)
            CHECK(rt_utf8_validate(msg, msg_len) == 0);
        if (r == RT_WS_OP_TEXT || r == RT_WS_OP_BINARY) {
            CHECK(msg_len <= (limit != 0 ? limit : sizeof(msg)) && rt_ws_msg_open(&m) == 0);
            msg_len = 0;
        }
    }
    free(buf);
    return 0;
}
