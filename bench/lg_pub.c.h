/*
 * loadgen publisher: runs in the parent's epoll loop. Sends events at a fixed rate over a few
 * keep-alive HTTP/1.1 connections from 127.0.0.1, one request in flight per connection, each event
 * stamped with its send time ("t": CLOCK_MONOTONIC ns, the clock the subscribers read). realtime gets
 * POST /api/events, nchan POST /pub/<channel>. Included once, by loadgen.c.
 */
#define PUB_ID_BASE 0x40000000u

typedef struct st_pub_conn_t {
    int fd, busy;
    uint64_t sent_at;
    size_t len;
    char buf[8192];
} pub_conn_t;

typedef struct st_publisher_t {
    const lg_config_t *cfg;
    int ep;
    pub_conn_t *c;
    uint32_t n;
    uint32_t sent, ok, errors, conn_errors, reconnects, inflight;
    uint64_t t_first, t_last_done;
    int last_error_status;
    char *pad;
    lg_hist_t rtt;
} publisher_t;

static int pub_connect(publisher_t *p, uint32_t k)
{
    pub_conn_t *c = &p->c[k];
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->cfg->pub_port), .sin_addr.s_addr = p->cfg->pub_host};
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) != 0) {
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int fl = 1;
    ioctl(c->fd, FIONBIO, &fl);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = PUB_ID_BASE + k};
    epoll_ctl(p->ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->busy = 0;
    c->len = 0;
    return 0;
}

static int pub_init(publisher_t *p, const lg_config_t *cfg, int ep)
{
    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
    p->ep = ep;
    p->n = cfg->pub_conns;
    p->c = calloc(p->n, sizeof(*p->c));
    p->pad = calloc(1, cfg->payload + 1);
    if (p->c == NULL || p->pad == NULL)
        return -1;
    memset(p->pad, 'x', cfg->payload);
    for (uint32_t k = 0; k < p->n; k++)
        if (pub_connect(p, k) != 0)
            return -1;
    return 0;
}

/* Drops connection k and opens a new one; a request in flight on it counts as failed. */
static void pub_reconnect(publisher_t *p, uint32_t k, const char *why)
{
    pub_conn_t *c = &p->c[k];
    if (c->busy) {
        if (p->conn_errors++ == 0 && !p->cfg->quiet)
            fprintf(stderr, "loadgen: publish connection lost with a request in flight (%s, %.1f ms after sending)\n", why,
                    (double)(now_ns() - c->sent_at) / 1e6);
        p->errors++;
        p->inflight--;
    }
    epoll_ctl(p->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->busy = 0;
    p->reconnects++;
    if (p->reconnects < 10000)
        pub_connect(p, k);
}

/* Whether an idle connection can take a request: nothing to read on it, not even the server's FIN. */
static int pub_usable(const pub_conn_t *c)
{
    char b;
    return recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Sends event number seq (1-based) on an idle connection; returns 0, or -1 when none is idle. */
static int pub_send(publisher_t *p, uint32_t seq)
{
    const lg_config_t *cfg = p->cfg;
    uint32_t k;
    for (k = 0; k < p->n; k++)
        if (p->c[k].fd >= 0 && !p->c[k].busy)
            break;
    if (k == p->n)
        return -1;
    /* The server closes keep-alive connections left idle (the spare ones here, used only when the first are
     * busy): one whose FIN came since the last poll would answer this request with a reset. Checked before
     * reuse, as curl does; a connection the server closed while idle is no error. */
    if (!pub_usable(&p->c[k])) {
        pub_reconnect(p, k, "closed while idle");
        if (p->c[k].fd < 0)
            return -1;
    }
    pub_conn_t *c = &p->c[k];
    char body[512 + 256], req[1024 + 256];
    char *big = NULL, *bp = body;
    size_t blen_max = sizeof(body);
    if (cfg->payload > 256) {
        blen_max = cfg->payload + 512;
        big = bp = malloc(blen_max + 1024);
        if (big == NULL)
            return -1;
    }
    uint64_t t = now_ns();
    const char *padk = cfg->payload ? ",\"p\":\"" : "", *pade = cfg->payload ? "\"" : "";
    int bl;
    if (cfg->target == LG_TARGET_NCHAN)
        bl = snprintf(bp, blen_max, "{\"t\":%llu,\"n\":%u%s%s%s}", (unsigned long long)t, seq, padk, p->pad, pade);
    else
        bl = snprintf(bp, blen_max, "{\"type\":\"bench.tick\",\"channels\":[\"%s\"],\"data\":{\"t\":%llu,\"n\":%u%s%s%s}}",
                      cfg->channel, (unsigned long long)t, seq, padk, p->pad, pade);
    struct in_addr a = {.s_addr = cfg->host};
    int hl = snprintf(req, sizeof(req),
                      "POST %s%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
                      cfg->target == LG_TARGET_NCHAN ? "/pub/" : "/api/events",
                      cfg->target == LG_TARGET_NCHAN ? cfg->channel : "", inet_ntoa(a), cfg->port, bl);
    struct iovec iov[2] = {{req, (size_t)hl}, {bp, (size_t)bl}};
    ssize_t wr = writev(c->fd, iov, 2);
    free(big);
    p->sent++;
    if (p->t_first == 0)
        p->t_first = t;
    if (wr != hl + bl) {
        p->errors++;
        pub_reconnect(p, k, wr < 0 ? strerror(errno) : "short write");
        return 0;
    }
    c->busy = 1;
    c->sent_at = t;
    p->inflight++;
    return 0;
}

/* Reads a response: status line, Content-Length or chunked body. One request in flight, so the
 * buffer holds at most one response. */
static void pub_on_readable(publisher_t *p, uint32_t k)
{
    pub_conn_t *c = &p->c[k];
    ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        pub_reconnect(p, k, n == 0 ? "closed by the server" : strerror(errno));
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    char *e = strstr(c->buf, "\r\n\r\n");
    if (e == NULL) {
        if (c->len >= sizeof(c->buf) - 1)
            pub_reconnect(p, k, "response head too large");
        return;
    }
    size_t hl = (size_t)(e - c->buf) + 4, blen = 0;
    const char *cl = find_ci(c->buf, hl, "\r\ncontent-length:");
    if (cl != NULL) {
        blen = strtoul(cl + 17, NULL, 10);
        if (c->len < hl + blen)
            return;
    } else if (find_ci(c->buf, hl, "\r\ntransfer-encoding: chunked") != NULL) {
        if (c->len < hl + 5 || memcmp(c->buf + c->len - 5, "0\r\n\r\n", 5) != 0)
            return;
    }
    int st = http_status(c->buf, hl);
    uint64_t now = now_ns();
    if (!c->busy) {
        pub_reconnect(p, k, "unexpected response"); /* an answer to nothing: start over */
        return;
    }
    c->busy = 0;
    p->inflight--;
    p->t_last_done = now;
    hist_add(&p->rtt, now - c->sent_at);
    if (st >= 200 && st < 300) {
        p->ok++;
    } else {
        if (p->errors == 0 && !p->cfg->quiet)
            fprintf(stderr, "loadgen: publish answered %d: %.*s\n", st, (int)(c->len > 300 ? 300 : c->len), c->buf);
        p->errors++;
        p->last_error_status = st;
    }
    int close_after = find_ci(c->buf, hl, "\r\nconnection: close") != NULL;
    c->len = 0;
    if (close_after)
        pub_reconnect(p, k, "connection: close");
}

static void pub_free(publisher_t *p)
{
    for (uint32_t k = 0; k < p->n; k++)
        if (p->c[k].fd >= 0)
            close(p->c[k].fd);
    free(p->c);
    free(p->pad);
}
