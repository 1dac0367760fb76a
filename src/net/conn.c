#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include "realtime/error.h"
#include "net/access_log.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/limits.h"
#include "net/worker-private.h"
#include "server/server.h"
#include "util/clock.h"
#include "util/mem.h"

#define LOG_PREFIX "conn"
#include "util/log.h"

/*
 * The libuv handle lives beside the public part so that only src/net sees <uv.h>. Its data field, which libuv
 * leaves to us, holds the input leftovers (an rt_buf_t, NULL when there are none): see input_of.
 */
typedef struct st_conn_impl_t {
    uv_tcp_t tcp;
    rt_conn_t super;
    /* Only when connections are counted per address (max_connections_per_ip): this one's count, or NULL. So a
     * server without that limit pays nothing for it per connection. After it (or in its place), only with
     * access_log on, the connection's rt_conn_access_t (access_of). */
    rt_admission_slot_t *slot[];
} conn_impl_t;

_Static_assert(_Alignof(rt_conn_access_t) <= _Alignof(rt_admission_slot_t *), "the access record follows the slot");

#define MAX_IOV 64

static conn_impl_t *impl_of(rt_conn_t *c)
{
    return RT_STRUCT_FROM_MEMBER(conn_impl_t, super, c);
}

/* Unconsumed input carried to the next read, or NULL. */
static rt_buf_t *input_of(rt_conn_t *c)
{
    return impl_of(c)->tcp.data;
}

static rt_conn_access_t *access_of(rt_conn_t *c)
{
    return (rt_conn_access_t *)&impl_of(c)->slot[rt_admission_per_address(c->worker->server->admission) ? 1 : 0];
}

rt_conn_access_t *rt__conn_access(rt_conn_t *c)
{
    return c->access_log ? access_of(c) : NULL;
}

void rt_conn_note_close(rt_conn_t *c, unsigned code, const char *reason, size_t reason_len)
{
    if (!c->access_log)
        return;
    rt_conn_access_t *a = access_of(c);
    if (a->noted)
        return;
    a->noted = true;
    a->code = (uint16_t)code;
    if (reason_len > RT_ACCESS_REASON_MAX)
        reason_len = RT_ACCESS_REASON_MAX;
    memcpy(a->reason, reason, reason_len);
    a->reason[reason_len] = '\0';
}

static void note_error(rt_conn_t *c, const char *what, int err)
{
    char msg[RT_ACCESS_REASON_MAX + 1];
    int n = snprintf(msg, sizeof(msg), "%s%s", what, err != 0 ? uv_err_name(err) : "");
    rt_conn_note_close(c, 0, msg, n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

/* Bytes written to or read from the peer, for the access log: a flag test when it is off. */
static void count_io(rt_conn_t *c, size_t in, size_t out)
{
    if (c->access_log) {
        access_of(c)->bytes_in += in;
        access_of(c)->bytes_out += out;
    }
}

static rt_server_stats_t *stats_of(rt_conn_t *c)
{
    return &c->worker->server->stats;
}

rt_server_t *rt_conn_server(const rt_conn_t *c)
{
    return c->worker->server;
}

int64_t rt_conn_now(const rt_conn_t *c)
{
    return (int64_t)uv_now(&c->worker->loop);
}

void rt_conn_count_delivered(rt_conn_t *c, unsigned n)
{
    _Atomic uint64_t *d = &c->worker->delivered;
    atomic_store_explicit(d, atomic_load_explicit(d, memory_order_relaxed) + n, memory_order_relaxed);
}

void rt_conn_count_disconnect(rt_conn_t *c, rt_disconnect_t reason)
{
    atomic_fetch_add_explicit(&stats_of(c)->disconnects[reason], 1, memory_order_relaxed);
}

void rt_conn_set_kind(rt_conn_t *c, rt_conn_kind_t kind)
{
    atomic_fetch_sub_explicit(&stats_of(c)->connections[c->kind], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&stats_of(c)->connections[kind], 1, memory_order_relaxed);
    c->kind = kind;
}

static void schedule_flush(rt_conn_t *c)
{
    if (!rt_list_linked(&c->flush_link))
        rt_list_insert_tail(&c->worker->pending_flush, &c->flush_link);
}

int rt_conn_send(rt_conn_t *c, rt_bytes_t *b, bool force)
{
    if (c->closing || c->close_after_flush)
        return 0; /* nothing more goes out on a connection that is ending */
    size_t limit = c->worker->server->config->client_queue_bytes;
    if (!force && c->queued_bytes + b->len > limit)
        return RT_E2BIG;
    if (c->out_count == c->out_cap) {
        uint32_t cap = c->out_cap ? c->out_cap * 2 : 4;
        rt_out_t *q = rt_mem_alloc(cap * sizeof(*q));
        for (uint32_t i = 0; i < c->out_count; i++)
            q[i] = c->outq[(c->out_head + i) % c->out_cap];
        free(c->outq);
        c->outq = q;
        c->out_head = 0;
        c->out_cap = cap;
    }
    c->outq[(c->out_head + c->out_count++) % c->out_cap] = (rt_out_t){rt_bytes_ref(b), 0};
    c->queued_bytes += b->len;
    atomic_fetch_add_explicit(&stats_of(c)->queued_bytes, (int_fast64_t)b->len, memory_order_relaxed);
    schedule_flush(c);
    return 0;
}

void rt_conn_send_copy(rt_conn_t *c, const void *p, size_t len)
{
    rt_bytes_t *b = rt_bytes_new(p, len);
    rt_conn_send(c, b, true);
    rt_bytes_unref(b);
}

/* A delivery handed to the kernel this long after its event was accepted is a replay, not a live delivery. */
#define LIVE_DELIVERY_US 60000000u

/* One write in this many (a power of two) is looked at for a sample of realtime_publish_to_write_seconds. */
#define PUBLISH_TO_WRITE_SAMPLING 8u

/*
 * The sample of one write of n bytes: the first entry of the queue, if the write completes it and it is an event's
 * wire form (stamped when the event was accepted). The time is the clock read once per loop turn when the turn's
 * writes start (rt__conn_flush_pending), or read now for a write that completed later. Apart from consume, which
 * runs on every write, so that the loop there stays as it was.
 */
__attribute__((noinline)) static void sample_publish_to_write(rt_conn_t *c, size_t n)
{
    const rt_out_t *o = &c->outq[c->out_head];
    if (o->bytes->_stamp_us == 0 || n < o->bytes->len - o->off)
        return;
    rt_worker_t *w = c->worker;
    uint32_t age = (w->flushing ? w->turn_us : (uint32_t)rt_clock_mono_us()) - o->bytes->_stamp_us;
    if (age < LIVE_DELIVERY_US)
        rt_histogram_add(&w->publish_to_write, age);
}

/* Drops n bytes from the head of the queue: written to the socket, or dropped when written is false. */
static void consume(rt_conn_t *c, size_t n, bool written)
{
    atomic_fetch_sub_explicit(&stats_of(c)->queued_bytes, (int_fast64_t)n, memory_order_relaxed);
    c->queued_bytes -= n;
    if (written && n != 0 && (++c->worker->writes_seen & (PUBLISH_TO_WRITE_SAMPLING - 1)) == 0)
        sample_publish_to_write(c, n);
    while (n > 0) {
        rt_out_t *o = &c->outq[c->out_head];
        size_t left = o->bytes->len - o->off;
        if (n < left) {
            o->off += n;
            return;
        }
        n -= left;
        rt_bytes_unref(o->bytes);
        c->out_head = (c->out_head + 1) % c->out_cap;
        c->out_count--;
    }
}

static size_t gather(rt_conn_t *c, uv_buf_t *iov, size_t *total)
{
    size_t n = c->out_count < MAX_IOV ? c->out_count : MAX_IOV;
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        rt_out_t *o = &c->outq[(c->out_head + i) % c->out_cap];
        iov[i] = uv_buf_init(o->bytes->data + o->off, (unsigned)(o->bytes->len - o->off));
        *total += iov[i].len;
    }
    return n;
}

static void flush(rt_conn_t *c);
static void linger(rt_conn_t *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void release_ring(rt_conn_t *c)
{
    free(c->outq);
    c->outq = NULL;
    c->out_cap = 0;
    c->out_head = 0;
}

typedef struct st_write_req_t {
    uv_write_t req;
    size_t total;
} write_req_t;

static void on_write(uv_write_t *req, int status)
{
    rt_conn_t *c = req->data;
    size_t written = RT_STRUCT_FROM_MEMBER(write_req_t, req, req)->total;
    free(RT_STRUCT_FROM_MEMBER(write_req_t, req, req));
    c->write_in_flight = false;
    if (status < 0 || c->closing) {
        if (!c->closing) {
            note_error(c, "write failed: ", status);
            rt_conn_close(c);
        }
        return;
    }
    count_io(c, 0, written);
    consume(c, written, true);
    flush(c);
}

/*
 * Writes as much as the socket takes now with one writev (uv_try_write); what is left goes out with one
 * uv_write whose completion writes the rest, so a connection never has more than one write in flight.
 */
static void flush(rt_conn_t *c)
{
    if (c->closing || c->write_in_flight)
        return;
    uv_stream_t *stream = (uv_stream_t *)&impl_of(c)->tcp;
    while (c->out_count > 0) {
        uv_buf_t iov[MAX_IOV];
        size_t total, n = gather(c, iov, &total);
        int r = uv_try_write(stream, iov, (unsigned)n);
        if (r == UV_EAGAIN)
            r = 0;
        if (r < 0) {
            note_error(c, "write failed: ", r);
            rt_conn_close(c);
            return;
        }
        count_io(c, 0, (size_t)r);
        consume(c, (size_t)r, true);
        if ((size_t)r < total)
            break;
    }
    if (c->out_count > 0) {
        uv_buf_t iov[MAX_IOV];
        size_t total, n = gather(c, iov, &total);
        write_req_t *wr = rt_mem_alloc(sizeof(*wr));
        wr->req.data = c;
        wr->total = total;
        if (uv_write(&wr->req, stream, iov, (unsigned)n, on_write) != 0) {
            free(wr);
            rt_conn_close(c);
            return;
        }
        c->write_in_flight = true;
        return;
    }
    if (c->close_after_flush) {
        linger(c);
        return;
    }
    /* The first time the queue empties after a tick, the ring goes at once: most connections get a burst (the
     * handshake and its replies, an event) and then nothing for a while, and rings kept until the tick by a burst
     * of new connections would leave the heap fragmented once freed. One that fills again before the tick keeps
     * it (rt__conn_trim decides then), so a busy connection reallocates it at most twice per tick. */
    if (!c->out_drained) {
        c->out_drained = true;
        release_ring(c);
    }
}

void rt__conn_trim(rt_conn_t *c)
{
    /* An idle connection keeps no output ring: at 10k+ connections those bytes are most of what an idle
     * connection costs. */
    c->out_drained = false;
    if (c->out_count == 0 && c->outq != NULL && !c->write_in_flight)
        release_ring(c);
}

static void on_closed(uv_handle_t *h);

void rt__conn_flush_pending(rt_worker_t *w)
{
    if (!rt_list_empty(&w->pending_flush)) {
        w->turn_us = (uint32_t)rt_clock_mono_us() | 1;
        w->flushing = true;
    }
    while (!rt_list_empty(&w->pending_flush)) {
        rt_conn_t *c = RT_STRUCT_FROM_MEMBER(rt_conn_t, flush_link, w->pending_flush.next);
        rt_list_unlink(&c->flush_link);
        flush(c);
    }
    w->flushing = false;
    while (!rt_list_empty(&w->pending_close)) {
        rt_conn_t *c = RT_STRUCT_FROM_MEMBER(rt_conn_t, flush_link, w->pending_close.next);
        rt_list_unlink(&c->flush_link);
        uv_close((uv_handle_t *)&impl_of(c)->tcp, on_closed);
    }
}

static void release_input(rt_conn_t *c)
{
    rt_buf_t *in = input_of(c);
    if (in != NULL) {
        rt_buf_free(in);
        free(in);
        impl_of(c)->tcp.data = NULL;
    }
}

static void on_closed(uv_handle_t *h)
{
    conn_impl_t *impl = RT_STRUCT_FROM_MEMBER(conn_impl_t, tcp, h);
    rt_conn_t *c = &impl->super;
    rt__access_log_stream(c);
    if (c->handler->on_close != NULL)
        c->handler->on_close(c);
    if (c->out_count > 0)
        consume(c, c->queued_bytes, false);
    atomic_fetch_sub_explicit(&stats_of(c)->connections[c->kind], 1, memory_order_relaxed);
    rt_admission_t *adm = c->worker->server->admission;
    rt_admission_leave(adm);
    if (c->has_addr_slot && impl->slot[0] != NULL)
        rt_admission_leave_addr(adm, impl->slot[0]);
    free(c->outq);
    release_input(c);
    free(impl);
}

void rt_conn_close(rt_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (rt_list_linked(&c->flush_link))
        rt_list_unlink(&c->flush_link);
    rt_list_unlink(&c->link);
    if (c->worker->in_read) {
        /* uv_close during the poll phase scans the whole batch of ready events for this fd (libuv's
         * uv__platform_invalidate_fd): 4,000 instructions per connection when many hang up at once. After
         * the poll phase there is no batch to scan; until then the handle reads nothing more. */
        uv_read_stop((uv_stream_t *)&impl_of(c)->tcp);
        rt_list_insert_tail(&c->worker->pending_close, &c->flush_link);
        return;
    }
    uv_close((uv_handle_t *)&impl_of(c)->tcp, on_closed);
}

/*
 * The close happens in flush(), once the queue is empty: also when it is empty already, so that lingering, which
 * releases the handler's state, never starts inside one of the handler's own callbacks.
 */
void rt_conn_close_after_flush(rt_conn_t *c)
{
    if (c->closing || c->close_after_flush)
        return;
    c->close_after_flush = true;
    rt_conn_pause_reading(c, true);
    schedule_flush(c);
}

/*
 * Lingering close (nginx's lingering_close). Closing a socket whose receive queue still holds data makes the
 * kernel answer with a reset instead of a FIN, and a reset destroys whatever of our last reply the peer has not
 * read yet: a client still sending a 2 MiB body gets ECONNRESET instead of the 413, a WebSocket client still
 * sending an oversized message never sees the close frame 1009. So once the last byte is written, the connection
 * shuts down its sending side (the FIN goes out behind the reply), then reads and drops input until the peer
 * closes (EOF) or lingering_timeout passes, and only then closes. Past lingering_bytes it reads no more but still
 * waits for the deadline: the peer's writes then block instead of failing, so it can read our reply.
 *
 * While lingering the connection runs linger_handler: the handler it had is done (its on_close runs when
 * lingering starts, so subscriptions and protocol state go at once) and sees none of the dropped input.
 * Nothing more is written (close_after_flush stays set, so rt_conn_send queues nothing). Graceful shutdown closes
 * lingering connections at once. The time bound is checked on every read and on the worker's tick.
 */
typedef struct st_linger_t {
    size_t bytes_left;
} linger_t;

static ssize_t linger_on_data(rt_conn_t *c, const char *buf, size_t len)
{
    linger_t *l = c->proto;
    if (rt_conn_now(c) >= c->deadline_ms) {
        rt_conn_close(c);
        return -1;
    }
    if (len > l->bytes_left) {
        /* Closing now would reset a peer that is still sending, and a client whose write fails first may never
         * read our reply (node does that): so nothing more is read, and the deadline closes the connection. */
        RT_LOG_DEBUG("lingering: %zu bytes dropped, reading no more", c->worker->server->config->lingering_bytes);
        l->bytes_left = 0;
        c->reading_paused = true;
        uv_read_stop((uv_stream_t *)&impl_of(c)->tcp);
        return (ssize_t)len;
    }
    l->bytes_left -= len;
    return (ssize_t)len;
}

static void linger_on_tick(rt_conn_t *c, int64_t now_ms)
{
    if (now_ms >= c->deadline_ms)
        rt_conn_close(c);
}

static void linger_on_shutdown(rt_conn_t *c)
{
    rt_conn_close(c);
}

static void linger_on_close(rt_conn_t *c)
{
    free(c->proto);
}

static const rt_conn_handler_t linger_handler = {
    .on_data = linger_on_data,
    .on_tick = linger_on_tick,
    .on_shutdown = linger_on_shutdown,
    .on_close = linger_on_close,
    /* no on_eof: the peer closed its side, so the connection closes */
};

/* The last byte of a closing connection is written: linger, or close when lingering is off or impossible. */
static void linger(rt_conn_t *c)
{
    const rt_config_t *cfg = c->worker->server->config;
    uv_stream_t *stream = (uv_stream_t *)&impl_of(c)->tcp;
    uv_os_fd_t fd;
    if (c->handler == &linger_handler)
        return;
    if (cfg->lingering_timeout_s <= 0 || cfg->lingering_bytes == 0 || uv_fileno((uv_handle_t *)stream, &fd) != 0 ||
        shutdown(fd, SHUT_WR) != 0) {
        rt_conn_close(c);
        return;
    }
    rt__access_log_stream(c); /* the stream is over: lingering is the connection's business */
    if (c->handler->on_close != NULL)
        c->handler->on_close(c);
    release_input(c); /* the rest of a request or frame that will never be handled */
    linger_t *l = rt_mem_alloc(sizeof(*l));
    l->bytes_left = cfg->lingering_bytes;
    c->handler = &linger_handler;
    c->proto = l;
    c->deadline_ms = rt_conn_now(c) + (int64_t)(cfg->lingering_timeout_s * 1000);
    c->reading_paused = false;
    /* Fails when the peer's EOF was read already: then there is nothing to wait for. */
    if (uv_read_start(stream, on_alloc, on_read) != 0)
        rt_conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    rt_conn_t *c = &RT_STRUCT_FROM_MEMBER(conn_impl_t, tcp, h)->super;
    *buf = uv_buf_init(c->worker->rbuf, sizeof(c->worker->rbuf));
}

/* Offers input to the handler until it takes no more; handlers may switch (an upgrade) on the way. */
static size_t feed(rt_conn_t *c, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len && !c->closing && !c->reading_paused) {
        const rt_conn_handler_t *h = c->handler;
        ssize_t n = h->on_data(c, data + off, len - off);
        if (n < 0)
            return len;
        off += (size_t)n;
        if (n == 0 && c->handler == h)
            break;
    }
    return off;
}

static size_t input_limit(rt_conn_t *c)
{
    const rt_config_t *cfg = c->worker->server->config;
    size_t m = cfg->max_message_bytes > cfg->max_header_bytes ? cfg->max_message_bytes : cfg->max_header_bytes;
    return m + 65536;
}

/* Feeds the leftovers (plus new data) and keeps what is still unconsumed; none left, they are released. */
static void feed_buffered(rt_conn_t *c)
{
    rt_buf_t *in = input_of(c);
    size_t used = feed(c, in->base, in->len);
    if (c->closing)
        return;
    rt_buf_consume(in, used);
    if (in->len == 0)
        release_input(c);
}

/* Keeps p[0..len) for the next read: bounded by the input limit (false: over it). */
static bool keep_input(rt_conn_t *c, const char *p, size_t len)
{
    rt_buf_t *in = input_of(c);
    if (in == NULL)
        impl_of(c)->tcp.data = in = rt_mem_calloc(1, sizeof(*in));
    if (rt_buf_try_reserve(in, len, input_limit(c)) != 0)
        return false;
    rt_buf_append(in, p, len);
    return true;
}

static void read_input(rt_conn_t *c, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0) {
        note_error(c, nread == UV_EOF ? "client closed the connection" : "read failed: ", nread == UV_EOF ? 0 : (int)nread);
        if (nread == UV_EOF && c->handler->on_eof != NULL)
            c->handler->on_eof(c);
        else
            rt_conn_close(c);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    count_io(c, (size_t)nread, 0);
    if (input_of(c) == NULL) {
        size_t used = feed(c, buf->base, (size_t)nread);
        if (c->closing || used == (size_t)nread)
            return;
        if (!keep_input(c, buf->base + used, (size_t)nread - used))
            goto Overflow;
    } else {
        if (!keep_input(c, buf->base, (size_t)nread))
            goto Overflow;
        feed_buffered(c);
    }
    return;
Overflow:
    RT_LOG_DEBUG("input over the limit, closing");
    rt_conn_note_close(c, 0, "input over the limit", 20);
    rt_conn_close(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    rt_conn_t *c = &RT_STRUCT_FROM_MEMBER(conn_impl_t, tcp, stream)->super;
    c->worker->in_read = true;
    read_input(c, nread, buf);
    c->worker->in_read = false;
}

void rt_conn_pause_reading(rt_conn_t *c, bool pause)
{
    if (c->closing || c->reading_paused == pause)
        return;
    c->reading_paused = pause;
    uv_stream_t *stream = (uv_stream_t *)&impl_of(c)->tcp;
    if (pause) {
        uv_read_stop(stream);
    } else {
        uv_read_start(stream, on_alloc, on_read);
        if (input_of(c) != NULL)
            feed_buffered(c);
    }
}

bool rt_conn_input_waiting(rt_conn_t *c)
{
    uv_os_fd_t fd;
    char byte;
    if (input_of(c) != NULL && input_of(c)->len > 0)
        return true;
    if (c->closing || uv_fileno((uv_handle_t *)&impl_of(c)->tcp, &fd) != 0)
        return false;
    return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

void rt_conn_peer(rt_conn_t *c, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&impl_of(c)->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(buf, size, "%s:%d", ip, port);
}

/* Marks the connection over a limit: its first request is answered 429 (rt_conn_refused). */
static void refuse(rt_conn_t *c, rt_limit_t limit)
{
    c->refused = (uint8_t)(limit + 1);
    rt_server_count_limit(c->worker->server, limit);
}

/* The socket's peer; all zeros when it is gone already or not IP (such connections are counted together). */
static void peer_of(rt_conn_t *c, rt_addr_t *out)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&impl_of(c)->tcp, (struct sockaddr *)&ss, &sl) != 0 || !rt_addr_from_sockaddr((struct sockaddr *)&ss, out))
        memset(out, 0, sizeof(*out));
}

/* Counts the connection against client's address (max_connections_per_ip). */
static void count_address(rt_conn_t *c, const rt_addr_t *client)
{
    bool over;
    impl_of(c)->slot[0] = rt_admission_enter_addr(c->worker->server->admission, client, &over);
    if (over)
        refuse(c, RT_LIMIT_CONNECTIONS_PER_IP);
}

/* Counts the connection against its address, the peer's; a trusted proxy's client is known at its first request. */
static void admit_peer(rt_conn_t *c)
{
    rt_addr_t peer;
    peer_of(c, &peer);
    if (rt_admission_trusts(c->worker->server->admission, &peer))
        c->addr_pending = true;
    else
        count_address(c, &peer);
}

void rt_conn_admit_forwarded(rt_conn_t *c, const char *forwarded_for)
{
    if (!c->addr_pending)
        return;
    c->addr_pending = false;
    size_t n_trusted;
    const rt_cidr_t *trusted = rt_admission_trusted(c->worker->server->admission, &n_trusted);
    rt_addr_t client;
    if (!rt_addr_forwarded_for(forwarded_for, trusted, n_trusted, &client))
        peer_of(c, &client); /* no client named: the proxy's own count */
    count_address(c, &client);
}

int rt_conn_refused(const rt_conn_t *c)
{
    return c->refused == 0 ? -1 : c->refused - 1;
}

void rt__conn_accept(rt_worker_t *w)
{
    rt_admission_t *adm = w->server->admission;
    bool per_addr = rt_admission_per_address(adm), access_log = w->server->config->access_log;
    conn_impl_t *impl = rt_mem_calloc(1, sizeof(*impl) + (per_addr ? sizeof(impl->slot[0]) : 0) +
                                             (access_log ? sizeof(rt_conn_access_t) : 0));
    rt_conn_t *c = &impl->super;
    c->worker = w;
    uv_tcp_init(&w->loop, &impl->tcp);
    if (uv_accept((uv_stream_t *)&w->listener, (uv_stream_t *)&impl->tcp) != 0) {
        uv_close((uv_handle_t *)&impl->tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(&impl->tcp, 1);
    if (access_log) {
        c->access_log = true;
        access_of(c)->start_us = rt_clock_mono_us();
        rt_conn_peer(c, access_of(c)->client, sizeof(access_of(c)->client));
    }
    c->kind = RT_CONN_HTTP;
    atomic_fetch_add_explicit(&w->server->stats.connections[RT_CONN_HTTP], 1, memory_order_relaxed);
    c->has_addr_slot = per_addr;
    if (!rt_admission_enter(adm))
        refuse(c, RT_LIMIT_CONNECTIONS);
    else if (per_addr)
        admit_peer(c);
    rt_list_insert_tail(&w->conns, &c->link);
    rt_http_start(c);
    uv_read_start((uv_stream_t *)&impl->tcp, on_alloc, on_read);
}
