#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include "../../harness/guard_page.h"
#include "transport/ws_codec.h"

static int parse_guarded(const void *s, size_t len, rt_ws_frame_t *f)
{
    size_t map_len;
    uint8_t *p = guard_copy(s, len, &map_len);
    int r = rt_ws_parse_frame(p, len, f);
    guard_free(p, len, map_len);
    return r;
}

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* RFC 6455 section 5.7 */
static const uint8_t hello_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t hel[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
static const uint8_t lo[] = {0x80, 0x02, 0x6c, 0x6f};
static const uint8_t ping_hello[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t pong_hello_masked[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t bin256[] = {0x82, 0x7e, 0x01, 0x00};
static const uint8_t bin64k[] = {0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};

static void expect_frame(const uint8_t *b, size_t len, int hlen, int fin, int op, int masked, uint64_t plen)
{
    rt_ws_frame_t f = {0};
    assert_int_equal(parse_guarded(b, len, &f), hlen);
    assert_int_equal(f.fin, fin);
    assert_int_equal(f.opcode, op);
    assert_int_equal(f.masked, masked);
    assert_int_equal(f.rsv, 0);
    assert_int_equal(f.payload_len, plen);
}

static void test_rfc_examples_parse(void **state)
{
    rt_ws_frame_t f = {0};
    uint8_t buf[16];

    expect_frame(hello_unmasked, sizeof(hello_unmasked), 2, 1, RT_WS_OP_TEXT, 0, 5);
    assert_memory_equal(hello_unmasked + 2, "Hello", 5);

    expect_frame(hello_masked, sizeof(hello_masked), 6, 1, RT_WS_OP_TEXT, 1, 5);
    f.require_mask = 1;
    assert_int_equal(rt_ws_parse_frame(hello_masked, sizeof(hello_masked), &f), 6);
    assert_memory_equal(f.mask, MASK, 4);
    memcpy(buf, hello_masked + 6, 5);
    rt_ws_unmask(buf, 5, f.mask, 0);
    assert_memory_equal(buf, "Hello", 5);

    expect_frame(hel, sizeof(hel), 2, 0, RT_WS_OP_TEXT, 0, 3);
    expect_frame(lo, sizeof(lo), 2, 1, RT_WS_OP_CONTINUATION, 0, 2);
    expect_frame(ping_hello, sizeof(ping_hello), 2, 1, RT_WS_OP_PING, 0, 5);
    expect_frame(pong_hello_masked, sizeof(pong_hello_masked), 6, 1, RT_WS_OP_PONG, 1, 5);
    expect_frame(bin256, sizeof(bin256), 4, 1, RT_WS_OP_BINARY, 0, 256);
    expect_frame(bin64k, sizeof(bin64k), 10, 1, RT_WS_OP_BINARY, 0, 65536);
}

static void test_rfc_examples_build(void **state)
{
    uint8_t out[RT_WS_MAX_HEADER + 8];

    assert_int_equal(rt_ws_frame_header(out, RT_WS_OP_TEXT, 1, 5), 2);
    assert_memory_equal(out, hello_unmasked, 2);
    assert_int_equal(rt_ws_frame_header(out, RT_WS_OP_TEXT, 0, 3), 2);
    assert_memory_equal(out, hel, 2);
    assert_int_equal(rt_ws_frame_header(out, RT_WS_OP_CONTINUATION, 1, 2), 2);
    assert_memory_equal(out, lo, 2);
    assert_int_equal(rt_ws_frame_header(out, RT_WS_OP_PING, 1, 5), 2);
    assert_memory_equal(out, ping_hello, 2);
    assert_int_equal(rt_ws_frame_header(out, RT_WS_OP_BINARY, 1, 256), 4);
    assert_memory_equal(out, bin256, 4);
    assert_int_equal(rt_ws_frame_header(out, RT_WS_OP_BINARY, 1, 65536), 10);
    assert_memory_equal(out, bin64k, 10);

    assert_int_equal(rt_ws_client_frame_size(5), sizeof(hello_masked));
    assert_int_equal(rt_ws_client_frame(out, RT_WS_OP_TEXT, 1, MASK, "Hello", 5), sizeof(hello_masked));
    assert_memory_equal(out, hello_masked, sizeof(hello_masked));
    assert_int_equal(rt_ws_client_frame(out, RT_WS_OP_PONG, 1, MASK, "Hello", 5), sizeof(pong_hello_masked));
    assert_memory_equal(out, pong_hello_masked, sizeof(pong_hello_masked));
}

static void test_header_sizes_and_boundaries(void **state)
{
    static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 0x7fffffffffffffffull};
    uint8_t out[RT_WS_MAX_SERVER_HEADER];
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); ++i) {
        size_t n = rt_ws_frame_header(out, RT_WS_OP_BINARY, 1, lens[i]);
        rt_ws_frame_t f = {0};
        assert_int_equal(n, rt_ws_frame_header_size(lens[i]));
        assert_int_equal(n, lens[i] < 126 ? 2 : lens[i] < 65536 ? 4 : 10);
        assert_int_equal(parse_guarded(out, n, &f), (int)n);
        assert_int_equal(f.payload_len, lens[i]);
    }
}

static void test_client_frame_roundtrip(void **state)
{
    static const size_t lens[] = {0, 1, 7, 125, 126, 65535, 65536, 70001};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); ++i) {
        uint8_t *payload = malloc(lens[i] + 1), *frame = malloc(rt_ws_client_frame_size(lens[i]));
        for (size_t j = 0; j < lens[i]; ++j)
            payload[j] = (uint8_t)(j * 31 + 7);
        size_t n = rt_ws_client_frame(frame, RT_WS_OP_BINARY, 1, MASK, payload, lens[i]);
        assert_int_equal(n, rt_ws_client_frame_size(lens[i]));
        rt_ws_frame_t f = {.require_mask = 1};
        int h = rt_ws_parse_frame(frame, n, &f);
        assert_int_equal(h, (int)(n - lens[i]));
        assert_int_equal(f.payload_len, lens[i]);
        assert_memory_equal(f.mask, MASK, 4);
        if (lens[i] > 0)
            assert_memory_not_equal(frame + h, payload, lens[i]);
        rt_ws_unmask(frame + h, lens[i], f.mask, 0);
        if (lens[i] > 0)
            assert_memory_equal(frame + h, payload, lens[i]);
        free(payload);
        free(frame);
    }
}

struct bad {
    const char *name;
    uint8_t b[14];
    size_t len;
    uint8_t require_mask;
    uint8_t allowed_rsv;
    size_t at; /* bytes the parser needs to see the error (fewer: -2) */
};

static const struct bad bad_frames[] = {
    {"rsv1", {0xc1, 0x00}, 2, 0, 0, 2},
    {"rsv2", {0xa1, 0x00}, 2, 0, 0, 2},
    {"rsv3", {0x91, 0x00}, 2, 0, 0, 2},
    {"rsv2 with rsv1 allowed", {0xa1, 0x00}, 2, 0, RT_WS_RSV1, 2},
    {"opcode 3", {0x83, 0x00}, 2, 0, 0, 2},
    {"opcode 7", {0x87, 0x00}, 2, 0, 0, 2},
    {"opcode 0xb", {0x8b, 0x00}, 2, 0, 0, 2},
    {"opcode 0xf", {0x8f, 0x00}, 2, 0, 0, 2},
    {"fragmented ping", {0x09, 0x00}, 2, 0, 0, 2},
    {"fragmented close", {0x08, 0x02, 0x03, 0xe8}, 4, 0, 0, 2},
    {"ping of 126", {0x89, 0x7e, 0x00, 0x7e}, 4, 0, 0, 2},
    {"pong of 127", {0x8a, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}, 10, 0, 0, 2},
    {"unmasked client text", {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'}, 7, 1, 0, 2},
    {"unmasked client ping", {0x89, 0x00}, 2, 1, 0, 2},
    {"16-bit length 125", {0x82, 0x7e, 0x00, 0x7d}, 4, 0, 0, 4},
    {"64-bit length 65535", {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 10, 0, 0, 10},
    {"64-bit length MSB", {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, 0, 0, 10},
    {"64-bit length all ones", {0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 10, 1, 0, 10},
};

static void test_invalid_frames(void **state)
{
    for (size_t i = 0; i < sizeof(bad_frames) / sizeof(bad_frames[0]); ++i) {
        const struct bad *t = &bad_frames[i];
        rt_ws_frame_t f = {.require_mask = t->require_mask, .allowed_rsv = t->allowed_rsv};
        print_message("%s\n", t->name);
        assert_int_equal(parse_guarded(t->b, t->len, &f), -1);
        assert_int_equal(f.close_code, RT_WS_CLOSE_PROTOCOL_ERROR);
        assert_non_null(f.error);
        /* with more bytes after it, the answer is the same */
        uint8_t more[32] = {0};
        memcpy(more, t->b, t->len);
        assert_int_equal(rt_ws_parse_frame(more, sizeof(more), &f), -1);
        /* inputs are left as the caller set them */
        assert_int_equal(f.require_mask, t->require_mask);
        assert_int_equal(f.allowed_rsv, t->allowed_rsv);
    }
}

static void test_allowed_and_legal_edges(void **state)
{
    rt_ws_frame_t f = {.allowed_rsv = RT_WS_RSV1};
    static const uint8_t rsv1[] = {0xc1, 0x00};
    assert_int_equal(parse_guarded(rsv1, 2, &f), 2);
    assert_int_equal(f.rsv, RT_WS_RSV1);

    static const uint8_t ping125[] = {0x89, 0x7d};
    f = (rt_ws_frame_t){0};
    assert_int_equal(parse_guarded(ping125, 2, &f), 2);
    assert_int_equal(f.payload_len, 125);

    /* Without require_mask, a masked frame is still parsed (a peer-agnostic parser). */
    f = (rt_ws_frame_t){0};
    assert_int_equal(parse_guarded(hello_masked, 6, &f), 6);
    /* An unmasked frame: mask reads as zero, not stale bytes. */
    memset(f.mask, 0xaa, 4);
    assert_int_equal(parse_guarded(hello_unmasked, 2, &f), 2);
    static const uint8_t zero[4] = {0};
    assert_memory_equal(f.mask, zero, 4);
}

/* Every prefix of a valid header is incomplete; the full header parses; and with the input right
 * against a guard page, the parser never reads beyond what it was given. */
static void test_incomplete_every_boundary(void **state)
{
    uint8_t frames[6][RT_WS_MAX_HEADER];
    size_t lens[6];
    static const uint64_t plens[3] = {5, 300, 70000};
    for (int i = 0; i < 3; ++i) {
        lens[2 * i] = rt_ws_frame_header(frames[2 * i], RT_WS_OP_TEXT, 1, plens[i]);
        lens[2 * i + 1] = rt_ws_frame_header(frames[2 * i + 1], RT_WS_OP_BINARY, 0, plens[i]);
        frames[2 * i + 1][1] |= 0x80;
        memcpy(frames[2 * i + 1] + lens[2 * i + 1], MASK, 4);
        lens[2 * i + 1] += 4;
    }
    for (int i = 0; i < 6; ++i) {
        for (size_t n = 0; n < lens[i]; ++n) {
            rt_ws_frame_t f = {.require_mask = (uint8_t)(i & 1)};
            assert_int_equal(parse_guarded(frames[i], n, &f), -2);
        }
        rt_ws_frame_t f = {.require_mask = (uint8_t)(i & 1)};
        assert_int_equal(parse_guarded(frames[i], lens[i], &f), (int)lens[i]);
        assert_int_equal(f.payload_len, plens[i / 2]);
        assert_int_equal(f.masked, i & 1);
    }
    /* Invalid frames: errors in the first two bytes are seen at 2 bytes; errors in the extended
     * length only once it is there. */
    for (size_t i = 0; i < sizeof(bad_frames) / sizeof(bad_frames[0]); ++i) {
        const struct bad *t = &bad_frames[i];
        for (size_t n = 0; n < t->len; ++n) {
            rt_ws_frame_t f = {.require_mask = t->require_mask, .allowed_rsv = t->allowed_rsv};
            int expect = n < t->at ? -2 : -1;
            assert_int_equal(parse_guarded(t->b, n, &f), expect);
        }
    }
}

static void test_unmask_pieces_and_alignment(void **state)
{
    uint8_t src[200], ref[200], buf[208];
    for (size_t i = 0; i < sizeof(src); ++i)
        src[i] = (uint8_t)(i * 13 + 5);
    for (size_t len = 0; len <= sizeof(src); len += (len < 40 ? 1 : 37)) {
        for (size_t i = 0; i < len; ++i)
            ref[i] = src[i] ^ MASK[i & 3];
        /* all start alignments */
        for (size_t align = 0; align < 8; ++align) {
            memcpy(buf + align, src, len);
            rt_ws_unmask(buf + align, len, MASK, 0);
            assert_memory_equal(buf + align, ref, len);
        }
        /* in two pieces cut at every position (odd offsets included), then three odd pieces */
        for (size_t cut = 0; cut <= len; ++cut) {
            memcpy(buf + 1, src, len);
            rt_ws_unmask(buf + 1, cut, MASK, 0);
            rt_ws_unmask(buf + 1 + cut, len - cut, MASK, cut);
            assert_memory_equal(buf + 1, ref, len);
        }
        if (len >= 12) {
            memcpy(buf + 3, src, len);
            rt_ws_unmask(buf + 3, 5, MASK, 0);
            rt_ws_unmask(buf + 8, 3, MASK, 5);
            rt_ws_unmask(buf + 11, len - 8, MASK, 8);
            assert_memory_equal(buf + 3, ref, len);
        }
    }
    /* Large offsets (past 4 GiB) only matter modulo 4. */
    memcpy(buf, src, 16);
    rt_ws_unmask(buf, 16, MASK, 0x100000003ull);
    for (size_t i = 0; i < 16; ++i)
        assert_int_equal(buf[i], src[i] ^ MASK[(i + 3) & 3]);
}

static void test_close_payload_build(void **state)
{
    uint8_t out[2 + RT_WS_MAX_CONTROL_PAYLOAD];
    char reason[200];

    assert_int_equal(rt_ws_close_payload(out, 0, "ignored", 7), 0);
    assert_int_equal(rt_ws_close_payload(out, 1000, NULL, 0), 2);
    assert_memory_equal(out, "\x03\xe8", 2);
    assert_int_equal(rt_ws_close_payload(out, 1008, "slow consumer", 13), 15);
    assert_memory_equal(out, "\x03\xf0slow consumer", 15);

    /* A reason over 123 bytes is cut; a 3-byte character straddling byte 123 goes entirely. */
    memset(reason, 'a', sizeof(reason));
    assert_int_equal(rt_ws_close_payload(out, 1002, reason, sizeof(reason)), 125);
    memcpy(reason + 121, "\xe2\x82\xac", 3); /* bytes 121..123 */
    size_t n = rt_ws_close_payload(out, 1002, reason, sizeof(reason));
    assert_int_equal(n, 2 + 121);
    rt_ws_close_t c;
    assert_int_equal(rt_ws_parse_close(out, n, &c), 0);
    assert_int_equal(c.code, 1002);
    memset(reason, 'a', sizeof(reason));
    memcpy(reason + 120, "\xe2\x82\xac", 3); /* ends exactly at 123: kept */
    assert_int_equal(rt_ws_close_payload(out, 1002, reason, sizeof(reason)), 125);

    n = rt_ws_close_frame(out, 1009, "too big", 7);
    assert_int_equal(n, 11);
    assert_memory_equal(out, "\x88\x09\x03\xf1too big", 11);
    assert_int_equal(rt_ws_close_frame(out, 0, NULL, 0), 2);
    assert_memory_equal(out, "\x88\x00", 2);
}

static void test_close_payload_parse(void **state)
{
    rt_ws_close_t c;
    uint8_t p[RT_WS_MAX_CONTROL_PAYLOAD + 1] = {0};

    assert_int_equal(rt_ws_parse_close(p, 0, &c), 0);
    assert_int_equal(c.code, RT_WS_CLOSE_NO_STATUS);
    assert_int_equal(c.reason_len, 0);

    p[0] = 0x03;
    assert_int_equal(rt_ws_parse_close(p, 1, &c), -1);
    assert_int_equal(c.error_code, RT_WS_CLOSE_PROTOCOL_ERROR);

    static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const unsigned bad[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); ++i) {
        p[0] = (uint8_t)(ok[i] >> 8), p[1] = (uint8_t)ok[i];
        assert_int_equal(rt_ws_parse_close(p, 2, &c), 0);
        assert_int_equal(c.code, ok[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        p[0] = (uint8_t)(bad[i] >> 8), p[1] = (uint8_t)bad[i];
        assert_int_equal(rt_ws_parse_close(p, 2, &c), -1);
        assert_int_equal(c.error_code, RT_WS_CLOSE_PROTOCOL_ERROR);
    }

    memcpy(p, "\x03\xe8" "bye \xe2\x82\xac", 9);
    assert_int_equal(rt_ws_parse_close(p, 9, &c), 0);
    assert_int_equal(c.reason_len, 7);
    assert_memory_equal(c.reason, "bye \xe2\x82\xac", 7);
    assert_int_equal(rt_ws_parse_close(p, 8, &c), -1); /* cut inside the euro sign */
    assert_int_equal(c.error_code, RT_WS_CLOSE_INVALID_DATA);
    memcpy(p, "\x03\xe8\xed\xa0\x80", 5); /* a surrogate */
    assert_int_equal(rt_ws_parse_close(p, 5, &c), -1);
    assert_int_equal(c.error_code, RT_WS_CLOSE_INVALID_DATA);
    /* an invalid code is reported before an invalid reason */
    memcpy(p, "\x03\xed\xff", 3);
    assert_int_equal(rt_ws_parse_close(p, 3, &c), -1);
    assert_int_equal(c.error_code, RT_WS_CLOSE_PROTOCOL_ERROR);
}

/* The receive loop of a server connection, over a whole byte stream. Records completed messages
 * and control frames as "T:<payload>" / "B:..." / "P:..." / "C:..." lines; returns the close code
 * that failed the stream, or 0. */
static int run_stream(const uint8_t *in, size_t len, uint64_t max, char *log, size_t logcap)
{
    rt_ws_msg_t m;
    uint8_t buf[256], msg[1024];
    size_t msg_len = 0, pos = 0;
    rt_ws_msg_init(&m, max);
    log[0] = '\0';
    while (pos < len) {
        rt_ws_frame_t f = {.require_mask = 1};
        int h = rt_ws_parse_frame(in + pos, len - pos, &f);
        if (h == -1)
            return f.close_code;
        assert_true(h > 0);
        if (rt_ws_msg_frame_begin(&m, &f) != 0)
            return m.close_code;
        assert_true(pos + h + f.payload_len <= len && f.payload_len <= sizeof(buf));
        memcpy(buf, in + pos + h, f.payload_len);
        pos += h + f.payload_len;
        /* unmask and feed in two pieces, the first one odd-sized, to exercise offsets */
        size_t cut = f.payload_len / 2 | 1;
        if (cut > f.payload_len)
            cut = f.payload_len;
        rt_ws_unmask(buf, cut, f.mask, 0);
        rt_ws_unmask(buf + cut, f.payload_len - cut, f.mask, cut);
        if (rt_ws_msg_frame_data(&m, buf, cut) != 0 || rt_ws_msg_frame_data(&m, buf + cut, f.payload_len - cut) != 0)
            return m.close_code;
        if (!(f.opcode & 8)) {
            memcpy(msg + msg_len, buf, f.payload_len);
            msg_len += f.payload_len;
        }
        int r = rt_ws_msg_frame_end(&m);
        if (r < 0)
            return m.close_code;
        const char *tag = r == RT_WS_OP_TEXT ? "T" : r == RT_WS_OP_BINARY ? "B" : r == RT_WS_OP_PING ? "P" : r == RT_WS_OP_PONG ? "O" : "C";
        if (r == 0)
            continue;
        size_t l = strlen(log);
        if (r & 8) {
            snprintf(log + l, logcap - l, "%s:%.*s|", tag, (int)f.payload_len, (const char *)buf);
        } else {
            snprintf(log + l, logcap - l, "%s:%.*s|", tag, (int)msg_len, (const char *)msg);
            msg_len = 0;
        }
    }
    return 0;
}

/* Appends a masked client frame to a stream. */
static size_t put(uint8_t *s, size_t pos, uint8_t op, int fin, const char *payload, size_t len)
{
    return pos + rt_ws_client_frame(s + pos, op, fin, MASK, payload, len);
}

static void test_assembler(void **state)
{
    uint8_t s[2048];
    char log[512];
    size_t n;

    n = put(s, 0, RT_WS_OP_TEXT, 1, "Hello", 5);
    n = put(s, n, RT_WS_OP_BINARY, 1, "\xff\x00", 2);
    n = put(s, n, RT_WS_OP_TEXT, 1, "", 0);
    assert_int_equal(run_stream(s, n, 0, log, sizeof(log)), 0);
    assert_string_equal(log, "T:Hello|B:\xff|T:|");

    /* fragmented, with pings and a pong between the fragments */
    n = put(s, 0, RT_WS_OP_TEXT, 0, "Hel", 3);
    n = put(s, n, RT_WS_OP_PING, 1, "p1", 2);
    n = put(s, n, RT_WS_OP_CONTINUATION, 0, "l", 1);
    n = put(s, n, RT_WS_OP_PONG, 1, "\xff", 1); /* control payloads are not text */
    n = put(s, n, RT_WS_OP_CONTINUATION, 0, "", 0);
    n = put(s, n, RT_WS_OP_CONTINUATION, 1, "o", 1);
    n = put(s, n, RT_WS_OP_CLOSE, 1, "\x03\xe8", 2);
    assert_int_equal(run_stream(s, n, 0, log, sizeof(log)), 0);
    assert_string_equal(log, "P:p1|O:\xff|T:Hello|C:\x03\xe8|");

    /* a 4-byte character split over three fragments */
    n = put(s, 0, RT_WS_OP_TEXT, 0, "\xf0\x9f", 2);
    n = put(s, n, RT_WS_OP_CONTINUATION, 0, "\x94", 1);
    n = put(s, n, RT_WS_OP_CONTINUATION, 1, "\xa5!", 2);
    assert_int_equal(run_stream(s, n, 0, log, sizeof(log)), 0);
    assert_string_equal(log, "T:\xf0\x9f\x94\xa5!|");

    /* continuation without a start */
    n = put(s, 0, RT_WS_OP_CONTINUATION, 1, "x", 1);
    assert_int_equal(run_stream(s, n, 0, log, sizeof(log)), RT_WS_CLOSE_PROTOCOL_ERROR);
    n = put(s, 0, RT_WS_OP_TEXT, 1, "a", 1);
    n = put(s, n, RT_WS_OP_CONTINUATION, 1, "x", 1);
    assert_int_equal(run_stream(s, n, 0, log, sizeof(log)), RT_WS_CLOSE_PROTOCOL_ERROR);
    assert_string_equal(log, "T:a|");

    /* a new data frame while a message is open */
    n = put(s, 0, RT_WS_OP_TEXT, 0, "a", 1);
    n = put(s, n, RT_WS_OP_TEXT, 1, "b", 1);
    assert_int_equal(run_stream(s, n, 0, log, sizeof(log)), RT_WS_CLOSE_PROTOCOL_ERROR);
    n = put(s, 0, RT_WS_OP_BINARY, 0, "a", 1);
    n = put(s, n, RT_WS_OP_PING, 1, "", 0);
    n = put(s, n, RT_WS_OP_BINARY, 1, "b", 1);
    assert_int_equal(run_stream(s, n, 0, log, sizeof(log)), RT_WS_CLOSE_PROTOCOL_ERROR);
    assert_string_equal(log, "P:|");

    /* invalid UTF-8 fails at the fragment that carries it, before the message ends */
    n = put(s, 0, RT_WS_OP_TEXT, 0, "ok", 2);
    n = put(s, n, RT_WS_OP_CONTINUATION, 0, "\xc0\xaf", 2);
    assert_int_equal(run_stream(s, n, 0, log, sizeof(log)), RT_WS_CLOSE_INVALID_DATA);
    /* a text message that ends inside a character */
    n = put(s, 0, RT_WS_OP_TEXT, 0, "ok", 2);
    n = put(s, n, RT_WS_OP_CONTINUATION, 1, "\xe2\x82", 2);
    assert_int_equal(run_stream(s, n, 0, log, sizeof(log)), RT_WS_CLOSE_INVALID_DATA);
    n = put(s, 0, RT_WS_OP_TEXT, 1, "\xed\xa0\x80", 3);
    assert_int_equal(run_stream(s, n, 0, log, sizeof(log)), RT_WS_CLOSE_INVALID_DATA);
    /* the same bytes in a binary message are fine */
    n = put(s, 0, RT_WS_OP_BINARY, 0, "ok", 2);
    n = put(s, n, RT_WS_OP_CONTINUATION, 1, "\xe2\x82", 2);
    assert_int_equal(run_stream(s, n, 0, log, sizeof(log)), 0);

    /* unmasked client frame through the whole loop */
    assert_int_equal(run_stream(hello_unmasked, sizeof(hello_unmasked), 0, log, sizeof(log)), RT_WS_CLOSE_PROTOCOL_ERROR);
}

static void test_assembler_size_limit(void **state)
{
    uint8_t s[512];
    char log[512];
    size_t n;

    n = put(s, 0, RT_WS_OP_TEXT, 1, "0123456789", 10);
    assert_int_equal(run_stream(s, n, 10, log, sizeof(log)), 0);
    assert_int_equal(run_stream(s, n, 9, log, sizeof(log)), RT_WS_CLOSE_TOO_BIG);

    /* the limit is on the whole message, across fragments; control frames do not count */
    n = put(s, 0, RT_WS_OP_TEXT, 0, "01234", 5);
    n = put(s, n, RT_WS_OP_PING, 1, "0123456789", 10);
    n = put(s, n, RT_WS_OP_CONTINUATION, 0, "567", 3);
    n = put(s, n, RT_WS_OP_CONTINUATION, 1, "89", 2);
    n = put(s, n, RT_WS_OP_TEXT, 1, "0123456789", 10); /* the next message starts from zero */
    assert_int_equal(run_stream(s, n, 10, log, sizeof(log)), 0);
    assert_string_equal(log, "P:0123456789|T:0123456789|T:0123456789|");
    assert_int_equal(run_stream(s, n, 9, log, sizeof(log)), RT_WS_CLOSE_TOO_BIG);
    assert_string_equal(log, "P:0123456789|");

    /* decided from the header alone: a 2^62-byte frame is refused before any payload */
    rt_ws_msg_t m;
    rt_ws_frame_t f = {.fin = 1, .opcode = RT_WS_OP_BINARY, .payload_len = 1ull << 62};
    rt_ws_msg_init(&m, 65536);
    assert_int_equal(rt_ws_msg_frame_begin(&m, &f), -1);
    assert_int_equal(m.close_code, RT_WS_CLOSE_TOO_BIG);
    /* and a huge second fragment does not wrap the running total */
    rt_ws_msg_init(&m, 65536);
    f = (rt_ws_frame_t){.fin = 0, .opcode = RT_WS_OP_BINARY, .payload_len = 100};
    assert_int_equal(rt_ws_msg_frame_begin(&m, &f), 0);
    assert_int_equal(rt_ws_msg_open(&m), RT_WS_OP_BINARY);
    uint8_t zeros[100] = {0};
    assert_int_equal(rt_ws_msg_frame_data(&m, zeros, 100), 0);
    assert_int_equal(rt_ws_msg_frame_end(&m), 0);
    f = (rt_ws_frame_t){.fin = 1, .opcode = RT_WS_OP_CONTINUATION, .payload_len = UINT64_MAX - 50};
    assert_int_equal(rt_ws_msg_frame_begin(&m, &f), -1);
    assert_int_equal(m.close_code, RT_WS_CLOSE_TOO_BIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples_parse),
        cmocka_unit_test(test_rfc_examples_build),
        cmocka_unit_test(test_header_sizes_and_boundaries),
        cmocka_unit_test(test_client_frame_roundtrip),
        cmocka_unit_test(test_invalid_frames),
        cmocka_unit_test(test_allowed_and_legal_edges),
        cmocka_unit_test(test_incomplete_every_boundary),
        cmocka_unit_test(test_unmask_pieces_and_alignment),
        cmocka_unit_test(test_close_payload_build),
        cmocka_unit_test(test_close_payload_parse),
        cmocka_unit_test(test_assembler),
        cmocka_unit_test(test_assembler_size_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
