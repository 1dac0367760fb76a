#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "realtime/error.h"
#include "transport/ws_handshake.h"

#define S(lit) lit, sizeof(lit) - 1

/* The request of RFC 6455 section 1.3. */
static rt_ws_handshake_req_t good_req(void)
{
    rt_ws_handshake_req_t r = {
        .method = "GET",
        .method_len = 3,
        .http_major = 1,
        .http_minor = 1,
        .upgrade = S("websocket"),
        .connection = S("Upgrade"),
        .version = S("13"),
        .key = S("dGhlIHNhbXBsZSBub25jZQ=="),
    };
    return r;
}

static void test_rfc_accept_key(void **state)
{
    char out[29];
    assert_int_equal(rt_ws_accept_key(S("dGhlIHNhbXBsZSBub25jZQ=="), out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* a different key gives a different answer (the key is really hashed) */
    assert_int_equal(rt_ws_accept_key(S("x3JJHMbDL1EzLkh9GBhXDw=="), out), 0);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

static void test_accept_and_response(void **state)
{
    rt_ws_handshake_req_t req = good_req();
    rt_ws_handshake_t hs;
    char buf[512];
    static const char expect[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                 "Upgrade: websocket\r\n"
                                 "Connection: Upgrade\r\n"
                                 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                 "\r\n";

    assert_int_equal(rt_ws_handshake_check(&req, &hs), 101);
    assert_int_equal(hs.status, 101);
    assert_null(hs.error);
    assert_string_equal(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    int n = rt_ws_handshake_response(buf, sizeof(buf), &hs, NULL, NULL);
    assert_int_equal(n, sizeof(expect) - 1);
    assert_memory_equal(buf, expect, sizeof(expect) - 1);

    /* every buffer too small is refused; the exact size (plus the NUL) works */
    for (size_t cap = 0; cap <= (size_t)n; ++cap)
        assert_int_equal(rt_ws_handshake_response(buf, cap, &hs, NULL, NULL), RT_E2BIG);
    assert_int_equal(rt_ws_handshake_response(buf, (size_t)n + 1, &hs, NULL, NULL), n);

    n = rt_ws_handshake_response(buf, sizeof(buf), &hs, "centrifuge-json", "X-Node: a\r\n");
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                             "Sec-WebSocket-Protocol: centrifuge-json\r\n"
                             "X-Node: a\r\n"
                             "\r\n");
}

static int check_connection(const char *value)
{
    rt_ws_handshake_req_t req = good_req();
    rt_ws_handshake_t hs;
    req.connection = value;
    req.connection_len = value != NULL ? strlen(value) : 0;
    return rt_ws_handshake_check(&req, &hs);
}

static void test_connection_tokens(void **state)
{
    static const char *ok[] = {"Upgrade", "upgrade", "UPGRADE", "keep-alive, Upgrade", "Upgrade, keep-alive",
                               "keep-alive,upgrade", " , Upgrade ,", "\tupgrade\t", "close, keep-alive, Upgrade, foo"};
    static const char *bad[] = {NULL, "", "keep-alive", "Upgraded", "upgrad", "xupgrade", "up grade", "keep-alive; Upgrade",
                                ",,,"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); ++i)
        assert_int_equal(check_connection(ok[i]), 101);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        assert_int_equal(check_connection(bad[i]), 400);

    assert_int_equal(rt_ws_token_list_has(S("a, b ,c"), "B"), 1);
    assert_int_equal(rt_ws_token_list_has(S("a, b ,c"), "c"), 1);
    assert_int_equal(rt_ws_token_list_has(S("a, bc"), "b"), 0);
    /* only the given length is read */
    assert_int_equal(rt_ws_token_list_has("upgrade", 6, "upgrade"), 0);
}

static void test_refusals(void **state)
{
    rt_ws_handshake_req_t req;
    rt_ws_handshake_t hs;

    req = good_req();
    req.method = "POST", req.method_len = 4;
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 405);
    assert_string_equal(hs.headers, "Allow: GET\r\n");
    assert_non_null(hs.error);
    req.method = "get", req.method_len = 3; /* methods are case-sensitive */
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 405);
    req.method = NULL, req.method_len = 0;
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 405);

    req = good_req();
    req.http_minor = 0;
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 400);
    req.http_major = 2, req.http_minor = 0;
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 101);

    req = good_req();
    req.upgrade = NULL, req.upgrade_len = 0;
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 400);
    assert_string_equal(hs.headers, "");
    req.upgrade = "h2c", req.upgrade_len = 3;
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 400);
    req.upgrade = "WebSocket", req.upgrade_len = 9;
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 101);

    /* version: 426 with the header naming the one we speak */
    static const char *versions_426[] = {"8", "7", "12", "14", "13, 8", "013"};
    for (size_t i = 0; i < sizeof(versions_426) / sizeof(versions_426[0]); ++i) {
        req = good_req();
        req.version = versions_426[i], req.version_len = strlen(versions_426[i]);
        assert_int_equal(rt_ws_handshake_check(&req, &hs), 426);
        assert_string_equal(hs.headers, "Sec-WebSocket-Version: 13\r\n");
        assert_string_equal(hs.accept, "");
    }
    req = good_req();
    req.version = " 13 ", req.version_len = 4;
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 101);
    req.version = NULL, req.version_len = 0;
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 400);
    req.version = "  ", req.version_len = 2;
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 400);

    /* key: exactly 16 bytes of base64 */
    static const char *bad_keys[] = {"", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===",
                                     "dGhlIHNhbXBsZSBub25jZ===", "dGhlIHNhbXBsZSBub25j*Q==", "dGhlIHNhbXBsZSBub25jZQA=",
                                     "dGhlIHNhbXBsZSBub25jZWZn", "dGhlIHNhbXBsZSBub25jZQ==dGhl", "dGhlIHNhbXBs ZSBub25jZQ=="};
    for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); ++i) {
        req = good_req();
        req.key = bad_keys[i], req.key_len = strlen(bad_keys[i]);
        assert_int_equal(rt_ws_handshake_check(&req, &hs), 400);
    }
    req = good_req();
    req.key = NULL, req.key_len = 0;
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 400);
    req.key = " dGhlIHNhbXBsZSBub25jZQ== ", req.key_len = 26;
    assert_int_equal(rt_ws_handshake_check(&req, &hs), 101);
    assert_string_equal(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_subprotocols(void **state)
{
    rt_ws_handshake_req_t req = good_req();
    assert_int_equal(rt_ws_handshake_offers_protocol(&req, "chat"), 0);
    req.protocol = "centrifuge-protobuf, chat";
    req.protocol_len = strlen(req.protocol);
    assert_int_equal(rt_ws_handshake_offers_protocol(&req, "chat"), 1);
    assert_int_equal(rt_ws_handshake_offers_protocol(&req, "centrifuge-protobuf"), 1);
    assert_int_equal(rt_ws_handshake_offers_protocol(&req, "Chat"), 0);
    assert_int_equal(rt_ws_handshake_offers_protocol(&req, "centrifuge"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_accept_key),
        cmocka_unit_test(test_accept_and_response),
        cmocka_unit_test(test_connection_tokens),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_subprotocols),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
