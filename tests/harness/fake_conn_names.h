/*
 * A fake connection layer for driving connection handlers (HTTP, WebSocket protocols) without sockets,
 * part 1 of 2: include this before #including the .c files under test, and tests/harness/fake_conn.h after them.
 *
 * The WebSocket handshake's replies and its switch away from HTTP normally go through the HTTP parser's state,
 * which a handler driven this way does not have: in the included files they call fakes that record the reply.
 *
 * fake_conn.h defines the connection functions (rt_conn_*, rt_conn_server, rt__worker_*) under their
 * real names, so that sources linked beside the test (a fuzz target lists its sources) call them too. A test
 * linked with librealtime.a, which holds the real ones, defines FAKE_CONN_BESIDE_LIBRARY before this file: the
 * fakes are then renamed, and only the included files call them.
 */
#ifndef TESTS_HARNESS_FAKE_CONN_NAMES_H
#define TESTS_HARNESS_FAKE_CONN_NAMES_H

#define rt_http_switch fake_http_switch
#define rt_http_respond fake_http_respond
#define rt_http_respond_error fake_http_respond_error

#ifdef FAKE_CONN_BESIDE_LIBRARY
#define rt_conn_send fake_conn_send
#define rt_conn_send_copy fake_conn_send_copy
#define rt_conn_close fake_conn_close
#define rt_conn_close_after_flush fake_conn_close_after_flush
#define rt_conn_now fake_conn_now
#define rt_conn_set_kind fake_conn_set_kind
#define rt_conn_count_delivered fake_conn_count_delivered
#define rt_conn_server fake_conn_server
#define rt_conn_peer fake_conn_peer
#define rt_conn_input_waiting fake_conn_input_waiting
#define rt_conn_pause_reading fake_conn_pause_reading
#define rt_conn_count_disconnect fake_conn_count_disconnect
#define rt_conn_note_close fake_conn_note_close
#define rt__conn_access fake_conn_access
#define rt__worker_broadcaster fake_worker_broadcaster
#define rt__worker_run_soon fake_worker_run_soon
#define rt__worker_cancel fake_worker_cancel
#endif

#endif
