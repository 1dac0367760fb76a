/*
 * loadgen subscriber worker: one forked process, one epoll loop, up to ~15k subscriber connections.
 * Opens connections at a set rate from source addresses 127.0.0.2, .3, ..., speaks the WebSocket
 * client side (RFC 6455: masked frames, ping -> pong), SSE (with chunked transfer decoding) or the
 * Centrifuge JSON protocol over WebSocket, and records publish -> receive latency of every event it
 * gets from the "t":<ns> field the publisher put in the event data. Included once, by loadgen.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "lg_common.h"

enum { SC_IDLE, SC_CONNECTING, SC_HANDSHAKE, SC_OPEN, SC_READY, SC_DEAD };
enum { CH_SIZE, CH_EXT, CH_DATA, CH_CRLF, CH_EOF };

#define SUB_CTL_ID UINT32_MAX
#define SUB_MAX_CARRY (1u << 20)
#define SUB_MAX_RETRIES 3
/* RFC 6455 section 1.3: the accept value for the sample key below. Every connection sends the same
 * key; the server does not care, and a fixed key lets us check the answer without SHA-1. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

typedef struct st_sub_conn_t {
    int fd;
    uint8_t state, chunked, chunk_state, retries;
    uint32_t chunk_left;
    uint32_t last_n;
    uint32_t carry_len, carry_cap;
    char *carry;
    uint64_t t_start;
} sub_conn_t;

typedef struct st_sub_worker_t {
    const lg_config_t *cfg;
    uint32_t first, n; /* global connection indices [first, first + n) */
    sub_conn_t *c;
    int ep, ctl, rep;
    char *rbuf;
    size_t rcap;
    uint32_t next, inflight, cap;
    uint32_t *retry_q, retry_len;
    double rate;
    uint64_t xs;
    char req[768];
    size_t req_len;
    lg_report_t r;
} sub_worker_t;

static void sub_fail(sub_worker_t *w, uint32_t i, int retry);

static int is_ws(const lg_config_t *cfg)
{
    return cfg->transport != LG_TR_SSE;
}

static void build_request(sub_worker_t *w)
{
    const lg_config_t *cfg = w->cfg;
    char path[384];
    if (cfg->target == LG_TARGET_NCHAN)
        snprintf(path, sizeof(path), "/sub/%s", cfg->channel);
    else if (cfg->transport == LG_TR_WS)
        snprintf(path, sizeof(path), "/ws?channels=%s", cfg->channel);
    else if (cfg->transport == LG_TR_SSE)
        snprintf(path, sizeof(path), "/events?channels=%s", cfg->channel);
    else
        snprintf(path, sizeof(path), "/connection/websocket");
    struct in_addr a = {.s_addr = cfg->host};
    if (is_ws(cfg))
        w->req_len = (size_t)snprintf(w->req, sizeof(w->req),
                                      "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                      "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
                                      path, inet_ntoa(a), cfg->port);
    else
        w->req_len = (size_t)snprintf(w->req, sizeof(w->req),
                                      "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n", path,
                                      inet_ntoa(a), cfg->port);
}

static uint32_t xorshift(sub_worker_t *w)
{
    w->xs ^= w->xs << 13;
    w->xs ^= w->xs >> 7;
    w->xs ^= w->xs << 17;
    return (uint32_t)w->xs;
}

/* Sends one masked client frame; control replies and the Centrifuge handshake are small, so a short
 * write is counted as bad rather than queued. */
static void ws_send(sub_worker_t *w, sub_conn_t *c, int opcode, const char *pl, size_t len)
{
    uint8_t f[1024];
    size_t h = 2;
    if (len > sizeof(f) - 8) {
        w->r.bad++;
        return;
    }
    f[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        f[1] = (uint8_t)(0x80 | len);
    } else {
        f[1] = 0x80 | 126;
        f[2] = (uint8_t)(len >> 8);
        f[3] = (uint8_t)len;
        h = 4;
    }
    uint32_t m = xorshift(w);
    memcpy(f + h, &m, 4);
    for (size_t k = 0; k < len; k++)
        f[h + 4 + k] = (uint8_t)pl[k] ^ f[h + (k & 3)];
    ssize_t wr = write(c->fd, f, h + 4 + len);
    if (wr != (ssize_t)(h + 4 + len))
        w->r.bad++;
}

static void mark_ready(sub_worker_t *w, sub_conn_t *c, uint64_t now)
{
    c->state = SC_READY;
    w->inflight--;
    w->r.established++;
    hist_add(&w->r.conn, now - c->t_start);
}

static const char *skip_ws(const char *q, const char *end)
{
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    return q;
}

static const char *parse_u64(const char *q, const char *end, uint64_t *v, int *digits)
{
    *v = 0;
    *digits = 0;
    while (q < end && *q >= '0' && *q <= '9') {
        *v = *v * 10 + (uint64_t)(*q - '0');
        q++;
        (*digits)++;
    }
    return q;
}

/* Every "t":<ns> in a message is one delivery; "n":<seq> right after it detects duplicates. */
static void scan_deliveries(sub_worker_t *w, sub_conn_t *c, const char *p, size_t len, uint64_t now)
{
    const char *q = p, *end = p + len;
    while (q < end && (q = memmem(q, (size_t)(end - q), "\"t\":", 4)) != NULL) {
        uint64_t t, n;
        int d;
        q = parse_u64(skip_ws(q + 4, end), end, &t, &d);
        if (d == 0) {
            w->r.bad++;
            continue;
        }
        hist_add(&w->r.lat, now > t ? now - t : 0);
        w->r.received++;
        if (w->r.first_rx_ns == 0)
            w->r.first_rx_ns = now;
        w->r.last_rx_ns = now;
        q = skip_ws(q, end);
        if (q < end && *q == ',') {
            q = skip_ws(q + 1, end);
            if (end - q > 4 && memcmp(q, "\"n\":", 4) == 0) {
                q = parse_u64(skip_ws(q + 4, end), end, &n, &d);
                if (d > 0 && n == c->last_n)
                    w->r.dups++;
                else if (d > 0 && n < c->last_n)
                    w->r.reorders++;
                else if (d > 0)
                    c->last_n = (uint32_t)n;
            }
        }
    }
}

static void on_message(sub_worker_t *w, uint32_t i, const char *p, size_t len, uint64_t now)
{
    sub_conn_t *c = &w->c[i];
    const lg_config_t *cfg = w->cfg;
    if (cfg->transport == LG_TR_CENTRIFUGE && len == 2 && p[0] == '{' && p[1] == '}') {
        ws_send(w, c, 1, "{}", 2); /* server ping: answer with the empty pong */
        w->r.pongs++;
        return;
    }
    if (c->state == SC_OPEN) {
        /* realtime /ws announces the query subscription; Centrifuge answers the subscribe (id 2). */
        if (memmem(p, len, "\"error\"", 7) != NULL) {
            sub_fail(w, i, 0);
            return;
        }
        if ((cfg->transport == LG_TR_WS && memmem(p, len, "\"subscribed\"", 12) != NULL) ||
            (cfg->transport == LG_TR_CENTRIFUGE && memmem(p, len, "\"id\":2", 6) != NULL))
            mark_ready(w, c, now);
    }
    scan_deliveries(w, c, p, len, now);
}

/* Parses server frames in [p, p+len); returns bytes consumed, or -1 when the connection was closed. */
static ssize_t ws_process(sub_worker_t *w, uint32_t i, char *p, size_t len, uint64_t now)
{
    size_t off = 0;
    while (len - off >= 2) {
        uint8_t b0 = (uint8_t)p[off], b1 = (uint8_t)p[off + 1];
        uint64_t plen = b1 & 0x7f;
        size_t h = 2;
        if (plen == 126) {
            if (len - off < 4)
                break;
            plen = ((uint64_t)(uint8_t)p[off + 2] << 8) | (uint8_t)p[off + 3];
            h = 4;
        } else if (plen == 127) {
            if (len - off < 10)
                break;
            plen = 0;
            for (int k = 0; k < 8; k++)
                plen = (plen << 8) | (uint8_t)p[off + 2 + k];
            h = 10;
        }
        if (b1 & 0x80)
            h += 4;
        if (plen > SUB_MAX_CARRY / 2) {
            w->r.bad++;
            sub_fail(w, i, 0);
            return -1;
        }
        if (len - off < h + plen)
            break;
        char *pl = p + off + h;
        if (b1 & 0x80)
            for (uint64_t k = 0; k < plen; k++)
                pl[k] ^= p[off + h - 4 + (k & 3)];
        switch (b0 & 0x0f) {
        case 0:
        case 1:
        case 2:
            on_message(w, i, pl, plen, now);
            if (w->c[i].state == SC_DEAD)
                return -1;
            break;
        case 8:
            sub_fail(w, i, 0);
            return -1;
        case 9:
            ws_send(w, &w->c[i], 0xA, pl, plen);
            w->r.pongs++;
            break;
        default:
            break;
        }
        off += h + plen;
    }
    return (ssize_t)off;
}

/* SSE: every "data:" line is one message. Returns bytes consumed (whole lines). */
static ssize_t sse_process(sub_worker_t *w, uint32_t i, char *p, size_t len, uint64_t now)
{
    size_t off = 0;
    while (off < len) {
        char *nl = memchr(p + off, '\n', len - off);
        if (nl == NULL)
            break;
        size_t ll = (size_t)(nl - (p + off));
        if (ll >= 5 && memcmp(p + off, "data:", 5) == 0) {
            on_message(w, i, p + off + 5, ll - 5, now);
            if (w->c[i].state == SC_DEAD)
                return -1;
        }
        off += ll + 1;
    }
    return (ssize_t)off;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Removes chunked transfer framing in place; returns the length of the payload left at p. */
static size_t dechunk(sub_conn_t *c, char *p, size_t len)
{
    size_t in = 0, out = 0;
    while (in < len) {
        switch (c->chunk_state) {
        case CH_SIZE:
        case CH_EXT: {
            char ch = p[in++];
            int v = hexval(ch);
            if (ch == '\n')
                c->chunk_state = c->chunk_left == 0 ? CH_EOF : CH_DATA;
            else if (c->chunk_state == CH_SIZE && v >= 0)
                c->chunk_left = c->chunk_left * 16 + (uint32_t)v;
            else if (ch != '\r')
                c->chunk_state = CH_EXT;
            break;
        }
        case CH_DATA: {
            size_t k = len - in < c->chunk_left ? len - in : c->chunk_left;
            memmove(p + out, p + in, k);
            in += k;
            out += k;
            c->chunk_left -= (uint32_t)k;
            if (c->chunk_left == 0)
                c->chunk_state = CH_CRLF;
            break;
        }
        case CH_CRLF:
            if (p[in++] == '\n')
                c->chunk_state = CH_SIZE;
            break;
        default:
            in = len;
            break;
        }
    }
    return out;
}

static int save_carry(sub_conn_t *c, const char *p, size_t len)
{
    if (len > SUB_MAX_CARRY)
        return -1;
    if (len > c->carry_cap) {
        uint32_t cap = c->carry_cap ? c->carry_cap : 256;
        while (cap < len)
            cap *= 2;
        char *nc = realloc(c->carry, cap);
        if (nc == NULL)
            return -1;
        c->carry = nc;
        c->carry_cap = cap;
    }
    memcpy(c->carry, p, len);
    c->carry_len = (uint32_t)len;
    return 0;
}

static void sub_close(sub_worker_t *w, sub_conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    free(c->carry);
    c->carry = NULL;
    c->carry_len = c->carry_cap = 0;
}

/* A connection failed or was closed. Before it is established it is retried (a full accept queue
 * refuses some connects during a fast ramp); after, it counts as a disconnect. */
static void sub_fail(sub_worker_t *w, uint32_t i, int retry)
{
    sub_conn_t *c = &w->c[i];
    int was = c->state;
    sub_close(w, c);
    c->state = SC_DEAD;
    if (was == SC_READY) {
        w->r.disconnects++;
        return;
    }
    if (was == SC_DEAD || was == SC_IDLE)
        return;
    w->inflight--;
    if (retry && c->retries < SUB_MAX_RETRIES) {
        c->retries++;
        c->state = SC_IDLE;
        w->r.retries++;
        w->retry_q[w->retry_len++] = i;
    } else {
        w->r.failed++;
    }
}

static void sub_start(sub_worker_t *w, uint32_t i)
{
    const lg_config_t *cfg = w->cfg;
    sub_conn_t *c = &w->c[i];
    uint32_t gi = w->first + i, one = 1;
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000002u + cfg->src_offset + gi / cfg->per_ip)};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port), .sin_addr.s_addr = cfg->host};
    c->chunked = c->chunk_state = 0;
    c->chunk_left = c->last_n = 0;
    c->state = SC_CONNECTING;
    c->t_start = now_ns();
    w->inflight++;
    w->r.attempts++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        sub_fail(w, i, 0);
        return;
    }
    /* Let connect() pick the port, so each source address gets the whole ephemeral range. */
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = i};
    if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 && errno != EINPROGRESS) ||
        epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        sub_fail(w, i, errno == ECONNREFUSED || errno == EAGAIN);
}

static void sub_on_writable(sub_worker_t *w, uint32_t i)
{
    sub_conn_t *c = &w->c[i];
    int err = 0;
    socklen_t el = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0 ||
        write(c->fd, w->req, w->req_len) != (ssize_t)w->req_len) {
        sub_fail(w, i, 1);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->state = SC_HANDSHAKE;
}

/* Handles the response head; returns its length, 0 if incomplete, -1 if refused. */
static ssize_t sub_handshake(sub_worker_t *w, uint32_t i, char *p, size_t len, uint64_t now)
{
    sub_conn_t *c = &w->c[i];
    const lg_config_t *cfg = w->cfg;
    char *e = memmem(p, len, "\r\n\r\n", 4);
    if (e == NULL)
        return len > 16384 ? -1 : 0;
    size_t hl = (size_t)(e - p) + 4;
    int st = http_status(p, hl);
    if (is_ws(cfg) ? (st != 101 || memmem(p, hl, WS_ACCEPT, strlen(WS_ACCEPT)) == NULL) : st != 200) {
        if (!cfg->quiet && w->r.failed == 0)
            fprintf(stderr, "loadgen: subscriber refused: %.*s\n", (int)(memchr(p, '\r', hl) ? (char *)memchr(p, '\r', hl) - p : 0), p);
        return -1;
    }
    c->chunked = !is_ws(cfg) && find_ci(p, hl, "transfer-encoding: chunked") != NULL;
    c->state = SC_OPEN;
    if (cfg->transport == LG_TR_CENTRIFUGE) {
        char f[512];
        int fl = snprintf(f, sizeof(f), "{\"id\":1,\"connect\":{\"name\":\"loadgen\"}}\n{\"id\":2,\"subscribe\":{\"channel\":\"%s\"}}",
                          cfg->channel);
        ws_send(w, c, 1, f, (size_t)fl);
    } else if (cfg->target == LG_TARGET_NCHAN || cfg->transport == LG_TR_SSE) {
        mark_ready(w, c, now);
    }
    return (ssize_t)hl;
}

static void sub_on_readable(sub_worker_t *w, uint32_t i)
{
    sub_conn_t *c = &w->c[i];
    size_t c0 = c->carry_len;
    if (c0)
        memcpy(w->rbuf, c->carry, c0);
    ssize_t n = read(c->fd, w->rbuf + c0, w->rcap - c0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        sub_fail(w, i, 1);
        return;
    }
    uint64_t now = now_ns();
    char *p = w->rbuf;
    size_t len = c0 + (size_t)n;
    if (c->state == SC_HANDSHAKE) {
        ssize_t hl = sub_handshake(w, i, p, len, now);
        if (hl < 0) {
            c->retries = SUB_MAX_RETRIES;
            sub_fail(w, i, 0);
            return;
        }
        if (hl == 0) {
            if (save_carry(c, p, len) != 0)
                sub_fail(w, i, 0);
            return;
        }
        p += hl;
        len -= (size_t)hl;
        if (c->chunked)
            len = dechunk(c, p, len);
    } else if (c->chunked) {
        len = c0 + dechunk(c, p + c0, (size_t)n);
    }
    ssize_t used = is_ws(w->cfg) ? ws_process(w, i, p, len, now) : sse_process(w, i, p, len, now);
    if (used < 0)
        return;
    if (c->chunk_state == CH_EOF) {
        sub_fail(w, i, 0);
        return;
    }
    if (save_carry(c, p + used, len - (size_t)used) != 0)
        sub_fail(w, i, 0);
}

static void sub_report(sub_worker_t *w, uint32_t phase)
{
    w->r.phase = phase;
    w->r.cpu_s = cpu_self_s();
    if (write_all(w->rep, &w->r, sizeof(w->r)) != 0)
        _exit(3); /* parent gone */
}

/* Ramps connections; returns 1 when every connection is established or has failed. */
static int sub_ramp(sub_worker_t *w, uint64_t t0, uint64_t now)
{
    double allowed_d = (double)(now - t0) / 1e9 * w->rate + 1;
    uint32_t allowed = allowed_d > w->n ? w->n : (uint32_t)allowed_d;
    while (w->retry_len > 0 && w->inflight < w->cap)
        sub_start(w, w->retry_q[--w->retry_len]);
    while (w->next < allowed && w->inflight < w->cap)
        sub_start(w, w->next++);
    if (now - t0 > (uint64_t)(w->cfg->connect_timeout_s * 1e9)) {
        for (uint32_t i = 0; i < w->n; i++)
            if (w->c[i].state != SC_READY && w->c[i].state != SC_DEAD) {
                w->c[i].retries = SUB_MAX_RETRIES;
                if (w->c[i].state == SC_IDLE)
                    w->c[i].state = SC_DEAD, w->r.failed++;
                else
                    sub_fail(w, i, 0);
            }
        w->next = w->n;
        w->retry_len = 0;
    }
    return w->next == w->n && w->retry_len == 0 && w->inflight == 0;
}

static void sub_worker_run(const lg_config_t *cfg, uint32_t worker, uint32_t first, uint32_t n, int ctl, int rep)
{
    static sub_worker_t w;
    struct epoll_event evs[1024];
    w.cfg = cfg;
    w.first = first;
    w.n = n;
    w.ctl = ctl;
    w.rep = rep;
    w.c = calloc(n ? n : 1, sizeof(*w.c));
    w.retry_q = calloc(n ? n : 1, sizeof(*w.retry_q));
    w.rcap = 256 * 1024 + SUB_MAX_CARRY;
    w.rbuf = malloc(w.rcap);
    w.rate = cfg->connect_rate / cfg->procs;
    w.cap = cfg->inflight;
    w.xs = 0x9e3779b97f4a7c15ull ^ ((uint64_t)getpid() << 16);
    w.r.magic = LG_REPORT_MAGIC;
    w.r.worker = worker;
    w.ep = epoll_create1(EPOLL_CLOEXEC);
    if (w.c == NULL || w.retry_q == NULL || w.rbuf == NULL || w.ep < 0)
        _exit(4);
    for (uint32_t i = 0; i < n; i++)
        w.c[i].fd = -1;
    build_request(&w);
    struct epoll_event cev = {.events = EPOLLIN, .data.u32 = SUB_CTL_ID};
    epoll_ctl(w.ep, EPOLL_CTL_ADD, ctl, &cev);

    uint64_t t0 = now_ns(), next_report = t0, hard_end = t0 + (uint64_t)((cfg->timeout_s + 30) * 1e9);
    uint32_t phase = LG_PHASE_CONNECTING;
    w.r.connect_start_ns = t0;
    for (uint64_t now = t0; now < hard_end; now = now_ns()) {
        if (phase == LG_PHASE_CONNECTING && sub_ramp(&w, t0, now)) {
            phase = LG_PHASE_CONNECTED;
            w.r.connect_end_ns = now_ns();
            w.r.cpu_connected_s = cpu_self_s();
            sub_report(&w, phase);
            next_report = now + 100000000u;
        }
        int ne = epoll_wait(w.ep, evs, 1024, phase == LG_PHASE_CONNECTING ? 1 : 50);
        for (int k = 0; k < ne; k++) {
            uint32_t i = evs[k].data.u32;
            if (i == SUB_CTL_ID) {
                char cmd = 0;
                ssize_t r = read(ctl, &cmd, 1);
                if (r == 1 && cmd == 'S') {
                    sub_report(&w, LG_PHASE_FINAL);
                    _exit(0);
                }
                if (r == 1 && cmd == 'R') {
                    w.r.snap++;
                    sub_report(&w, phase);
                    w.r.received = w.r.dups = w.r.reorders = w.r.bad = w.r.first_rx_ns = w.r.last_rx_ns = 0;
                    memset(&w.r.lat, 0, sizeof(w.r.lat));
                }
                if (r == 0)
                    _exit(2);
                continue;
            }
            if (w.c[i].state == SC_CONNECTING && (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                sub_on_writable(&w, i);
            else if (w.c[i].fd >= 0 && w.c[i].state != SC_CONNECTING)
                sub_on_readable(&w, i);
        }
        if (now_ns() >= next_report) {
            sub_report(&w, phase);
            next_report = now_ns() + 100000000u;
        }
    }
    _exit(5);
}
