/*
 * loadgen: subscriber/publisher load generator for realtime and nchan (loopback only).
 *
 * The parent samples the server's memory, forks subscriber workers (bench/lg_sub.c.h, one epoll loop
 * and at most ~15k connections each, because a process may hold only 20,000 open files here), waits
 * until they are connected, samples memory again, publishes events at a fixed rate from its own epoll
 * loop (bench/lg_pub.c.h), waits for the deliveries, collects the workers' histograms over pipes and
 * prints one JSON line. Exit status 0 only when every subscriber connected and every delivery arrived.
 *
 *   loadgen --target realtime|nchan --url 127.0.0.1:PORT --transport ws|sse|centrifuge
 *           --subs N --events M --rate R [--server-pid PID] ...     (--help lists all)
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sched.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "lg_common.h"
#include "lg_sub.c.h"
#include "lg_pub.c.h"

#define REP_ID_BASE 0x20000000u
#define MAX_PROCS 64

typedef struct st_srv_sample_t {
    uint64_t rss_kb, pss_kb;
    double cpu_s;
    int nproc;
} srv_sample_t;

typedef struct st_parent_t {
    lg_config_t cfg;
    int ep;
    pid_t pids[MAX_PROCS];
    int ctl[MAX_PROCS], rep[MAX_PROCS];
    int alive[MAX_PROCS];
    lg_report_t rep_last[MAX_PROCS];
} parent_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen [options]\n"
               "  --target realtime|nchan   server kind (default realtime)\n"
               "  --url 127.0.0.1:PORT      server address, loopback only (default 127.0.0.1:8080)\n"
               "  --transport ws|sse|centrifuge  subscriber protocol (default ws; centrifuge: realtime only)\n"
               "  --channel NAME            channel (default bench)\n"
               "  --subs N                  subscribers (default 100)\n"
               "  --procs N                 worker processes (default: one per 15000 subscribers)\n"
               "  --per-ip N                connections per source address 127.0.0.2, .3, ... (default 10000)\n"
               "  --src-offset N            start the source addresses at 127.0.0.(2 + N) (default 0)\n"
               "  --connect-rate R          new connections per second (default 5000)\n"
               "  --inflight N              handshakes in flight per worker (default 256)\n"
               "  --connect-timeout S       seconds for the connect phase (default 60)\n"
               "  --events M                events to publish (default 100; 0: connect only)\n"
               "  --pub-url 127.0.0.1:PORT  publish through this address instead of --url (another node)\n"
               "  --observe                 publish nothing: expect --events published by another loadgen\n"
               "  --rate R                  events per second (default 100)\n"
               "  --rates R1,R2,...         saturation search: one step per rate, each --step-s long, one JSON line\n"
               "                            each; stops at the first step with loss or a disconnect, or at\n"
               "                            the second in a row that falls behind: p99 over --max-p99-ms, or\n"
               "                            publishes or deliveries under 80 %% of the asked rate\n"
               "  --step-s S                seconds per step (default 3; at least 10 events a step)\n"
               "  --max-p99-ms MS           p99 that ends the search (default 1000)\n"
               "  --pub-conns N             keep-alive publisher connections (default 4)\n"
               "  --payload B               pad each event with B bytes (default 0)\n"
               "  --settle S                idle seconds after connecting, before sampling memory (default 0.5)\n"
               "  --drain S                 stop waiting after S seconds without a delivery (default 3)\n"
               "  --timeout S               hard bound on the whole run (default 300)\n"
               "  --server-pid PID          server process (children summed) for RSS and CPU; repeatable\n"
               "  --quiet                   no diagnostics on stderr\n");
}

static int parse_addr(const char *url, uint32_t *host_out, int *port_out)
{
    char host[64];
    if (strncmp(url, "http://", 7) == 0)
        url += 7;
    const char *colon = strrchr(url, ':');
    if (colon == NULL || (size_t)(colon - url) >= sizeof(host))
        return -1;
    memcpy(host, url, (size_t)(colon - url));
    host[colon - url] = '\0';
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct in_addr a;
    int port = atoi(colon + 1);
    if (inet_pton(AF_INET, host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127 || port <= 0 || port > 65535)
        return -1; /* loopback only */
    *host_out = a.s_addr;
    *port_out = port;
    return 0;
}

static int parse_url(lg_config_t *cfg, const char *url)
{
    return parse_addr(url, &cfg->host, &cfg->port);
}

static int parse_args(lg_config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        {"target", 1, NULL, 'T'},       {"url", 1, NULL, 'u'},      {"transport", 1, NULL, 't'},
        {"channel", 1, NULL, 'c'},      {"subs", 1, NULL, 's'},     {"procs", 1, NULL, 'P'},
        {"per-ip", 1, NULL, 'I'},       {"connect-rate", 1, NULL, 'C'}, {"inflight", 1, NULL, 'F'},
        {"connect-timeout", 1, NULL, 'O'}, {"events", 1, NULL, 'e'}, {"rate", 1, NULL, 'r'},
        {"pub-conns", 1, NULL, 'p'},    {"payload", 1, NULL, 'B'},  {"settle", 1, NULL, 'S'},
        {"drain", 1, NULL, 'D'},        {"timeout", 1, NULL, 'X'},  {"server-pid", 1, NULL, 'W'},
        {"src-offset", 1, NULL, 'o'},   {"rates", 1, NULL, 'R'},    {"step-s", 1, NULL, 'y'},
        {"max-p99-ms", 1, NULL, 'm'},   {"pub-url", 1, NULL, 'U'},  {"observe", 0, NULL, 'Q'},
        {"quiet", 0, NULL, 'q'},        {"help", 0, NULL, 'h'},     {NULL, 0, NULL, 0}};
    *cfg = (lg_config_t){.target = LG_TARGET_REALTIME, .transport = LG_TR_WS, .channel = "bench", .subs = 100,
                         .per_ip = 10000, .connect_rate = 5000, .inflight = 256, .connect_timeout_s = 60,
                         .events = 100, .rate = 100, .pub_conns = 4, .settle_s = 0.5, .drain_s = 3, .timeout_s = 300,
                         .step_s = 3, .max_p99_ms = 1000};
    parse_url(cfg, "127.0.0.1:8080");
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'T':
            if (strcmp(optarg, "realtime") == 0)
                cfg->target = LG_TARGET_REALTIME;
            else if (strcmp(optarg, "nchan") == 0)
                cfg->target = LG_TARGET_NCHAN;
            else
                return -1;
            break;
        case 'u':
            if (parse_url(cfg, optarg) != 0) {
                fprintf(stderr, "loadgen: --url must be 127.x.y.z:PORT (loopback only)\n");
                return -1;
            }
            break;
        case 't':
            if (strcmp(optarg, "ws") == 0)
                cfg->transport = LG_TR_WS;
            else if (strcmp(optarg, "sse") == 0)
                cfg->transport = LG_TR_SSE;
            else if (strcmp(optarg, "centrifuge") == 0)
                cfg->transport = LG_TR_CENTRIFUGE;
            else
                return -1;
            break;
        case 'U':
            if (parse_addr(optarg, &cfg->pub_host, &cfg->pub_port) != 0) {
                fprintf(stderr, "loadgen: --pub-url must be 127.x.y.z:PORT (loopback only)\n");
                return -1;
            }
            break;
        case 'Q': cfg->observe = 1; break;
        case 'c': cfg->channel = optarg; break;
        case 's': cfg->subs = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'P': cfg->procs = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'I': cfg->per_ip = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'C': cfg->connect_rate = atof(optarg); break;
        case 'F': cfg->inflight = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'O': cfg->connect_timeout_s = atof(optarg); break;
        case 'e': cfg->events = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'r': cfg->rate = atof(optarg); break;
        case 'p': cfg->pub_conns = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'B': cfg->payload = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'S': cfg->settle_s = atof(optarg); break;
        case 'D': cfg->drain_s = atof(optarg); break;
        case 'X': cfg->timeout_s = atof(optarg); break;
        case 'W':
            for (char *s = optarg; *s && cfg->n_server_pids < 8;) {
                cfg->server_pids[cfg->n_server_pids++] = (int)strtol(s, &s, 10);
                while (*s == ',')
                    s++;
            }
            break;
        case 'o': cfg->src_offset = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'R':
            for (char *s = optarg; *s && cfg->n_rates < 32;) {
                double r = strtod(s, &s);
                if (r <= 0)
                    return -1;
                cfg->rates[cfg->n_rates++] = r;
                while (*s == ',')
                    s++;
            }
            break;
        case 'y': cfg->step_s = atof(optarg); break;
        case 'm': cfg->max_p99_ms = atof(optarg); break;
        case 'q': cfg->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (optind != argc || (cfg->observe && cfg->n_rates > 0))
        return -1;
    if (cfg->pub_port == 0)
        cfg->pub_host = cfg->host, cfg->pub_port = cfg->port;
    if (cfg->procs == 0)
        cfg->procs = cfg->subs == 0 ? 1 : (cfg->subs + 14999) / 15000;
    if (cfg->procs > MAX_PROCS || cfg->per_ip == 0 || cfg->connect_rate <= 0 || cfg->inflight == 0 || cfg->rate <= 0 || cfg->step_s <= 0 ||
        cfg->pub_conns == 0 || cfg->pub_conns > 256 || cfg->payload > (1u << 20) || strlen(cfg->channel) > 200 ||
        cfg->timeout_s <= 0 || (cfg->transport == LG_TR_CENTRIFUGE && cfg->target == LG_TARGET_NCHAN))
        return -1;
    if (cfg->src_offset + (cfg->subs ? cfg->subs - 1 : 0) / cfg->per_ip > 252) {
        fprintf(stderr, "loadgen: source addresses would go past 127.0.0.254: raise --per-ip or lower --src-offset\n");
        return -1;
    }
    return 0;
}

/* On-CPU time of every thread of a process in ns resolution (schedstat), or -1 where unavailable;
 * /proc/PID/stat counts in clock ticks, too coarse for a one-second step. */
static double thread_cpu_s(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    struct dirent *de;
    double total = 0;
    int n = 0;
    while ((de = readdir(d)) != NULL && n < 4096) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        char p2[320];
        unsigned long long ns = 0;
        snprintf(p2, sizeof(p2), "/proc/%d/task/%s/schedstat", pid, de->d_name);
        FILE *f = fopen(p2, "r");
        if (f == NULL)
            continue;
        if (fscanf(f, "%llu", &ns) == 1)
            total += (double)ns / 1e9, n++;
        fclose(f);
    }
    closedir(d);
    return n > 0 ? total : -1;
}

/* Server memory and CPU: the given processes and all their descendants, summed. RSS counts pages
 * shared between nginx's master and workers once per process; PSS splits them. */
static void sample_server(const lg_config_t *cfg, srv_sample_t *s)
{
    enum { MAXP = 8192 };
    static int pid[MAXP], ppid[MAXP], in[MAXP];
    static double cpu[MAXP];
    int np = 0;
    memset(s, 0, sizeof(*s));
    if (cfg->n_server_pids == 0)
        return;
    DIR *d = opendir("/proc");
    struct dirent *de;
    long hz = sysconf(_SC_CLK_TCK);
    while (d != NULL && (de = readdir(d)) != NULL && np < MAXP) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        char path[300], buf[1024];
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        int pp = 0;
        if (rp == NULL || sscanf(rp + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &pp, &ut, &st) != 3)
            continue;
        pid[np] = atoi(de->d_name);
        ppid[np] = pp;
        cpu[np] = (double)(ut + st) / (double)hz;
        in[np] = 0;
        for (int k = 0; k < cfg->n_server_pids; k++)
            if (pid[np] == cfg->server_pids[k])
                in[np] = 1;
        np++;
    }
    if (d != NULL)
        closedir(d);
    for (int changed = 1, round = 0; changed && round < 16; round++) {
        changed = 0;
        for (int i = 0; i < np; i++)
            for (int j = 0; j < np && !in[i]; j++)
                if (in[j] && ppid[i] == pid[j])
                    in[i] = changed = 1;
    }
    for (int i = 0; i < np; i++) {
        if (!in[i])
            continue;
        char path[64], line[256];
        s->nproc++;
        double sched = thread_cpu_s(pid[i]);
        s->cpu_s += sched >= 0 ? sched : cpu[i];
        snprintf(path, sizeof(path), "/proc/%d/status", pid[i]);
        FILE *f = fopen(path, "r");
        while (f != NULL && fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "VmRSS:", 6) == 0)
                s->rss_kb += strtoull(line + 6, NULL, 10);
        if (f != NULL)
            fclose(f);
        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid[i]);
        f = fopen(path, "r");
        while (f != NULL && fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "Pss:", 4) == 0)
                s->pss_kb += strtoull(line + 4, NULL, 10);
        if (f != NULL)
            fclose(f);
    }
}

static void read_report(parent_t *P, uint32_t w)
{
    lg_report_t r;
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = read(P->rep[w], (char *)&r + got, sizeof(r) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            epoll_ctl(P->ep, EPOLL_CTL_DEL, P->rep[w], NULL);
            P->alive[w] = 0;
            return;
        }
        got += (size_t)n;
    }
    if (r.magic == LG_REPORT_MAGIC && r.worker == w)
        P->rep_last[w] = r;
}

static void spawn_workers(parent_t *P)
{
    const lg_config_t *cfg = &P->cfg;
    uint32_t per = cfg->subs / cfg->procs, extra = cfg->subs % cfg->procs, first = 0;
    for (uint32_t w = 0; w < cfg->procs; w++) {
        uint32_t n = per + (w < extra);
        int c[2], r[2];
        if (pipe2(c, O_CLOEXEC) != 0 || pipe2(r, O_CLOEXEC) != 0) {
            perror("loadgen: pipe");
            exit(2);
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("loadgen: fork");
            exit(2);
        }
        if (pid == 0) {
            close(P->ep);
            for (uint32_t k = 0; k < w; k++)
                close(P->ctl[k]), close(P->rep[k]);
            close(c[1]);
            close(r[0]);
            sub_worker_run(cfg, w, first, n, c[0], r[1]);
        }
        close(c[0]);
        close(r[1]);
        P->pids[w] = pid;
        P->ctl[w] = c[1];
        P->rep[w] = r[0];
        P->alive[w] = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = REP_ID_BASE + w};
        epoll_ctl(P->ep, EPOLL_CTL_ADD, r[0], &ev);
        first += n;
    }
}

/* One turn of the parent loop: worker reports and publisher responses. */
static void parent_poll(parent_t *P, publisher_t *pub, int timeout_ms)
{
    struct epoll_event evs[64];
    int ne = epoll_wait(P->ep, evs, 64, timeout_ms);
    for (int k = 0; k < ne; k++) {
        uint32_t id = evs[k].data.u32;
        if (id >= PUB_ID_BASE && pub != NULL)
            pub_on_readable(pub, id - PUB_ID_BASE);
        else if (id >= REP_ID_BASE && id < REP_ID_BASE + MAX_PROCS)
            read_report(P, id - REP_ID_BASE);
    }
}

static int all_reached(parent_t *P, uint32_t phase)
{
    for (uint32_t w = 0; w < P->cfg.procs; w++)
        if (P->alive[w] && P->rep_last[w].phase < phase)
            return 0;
    return 1;
}

static uint64_t sum_received(parent_t *P)
{
    uint64_t s = 0;
    for (uint32_t w = 0; w < P->cfg.procs; w++)
        s += P->rep_last[w].received;
    return s;
}

static void poll_until(parent_t *P, publisher_t *pub, uint64_t until)
{
    for (uint64_t now = now_ns(); now < until; now = now_ns()) {
        uint64_t left_ms = (until - now) / 1000000 + 1;
        parent_poll(P, pub, left_ms > 50 ? 50 : (int)left_ms);
    }
}

/* What one publish step measured, besides the workers' counters. */
typedef struct st_step_t {
    int index; /* -1 outside a --rates search */
    double rate;
    uint32_t events;
    double srv_cpu, cli_cpu, phase_s;
} step_t;

/* What the connect phase measured. */
typedef struct st_run_t {
    srv_sample_t before, after;
    double srv_connect_cpu, cli_connect_cpu;
    uint64_t t_start;
} run_t;

/* Publishes st->events at st->rate (event numbers continue from *seq) and waits for the deliveries;
 * bounded by `deadline`. */
static void run_publish(parent_t *P, publisher_t *pub, const step_t *st, uint32_t *seq, uint64_t established, uint64_t deadline)
{
    uint64_t t0 = now_ns();
    uint32_t sent = 0;
    while (now_ns() < deadline) {
        double due_d = (double)(now_ns() - t0) / 1e9 * st->rate + 1;
        uint32_t due = due_d > st->events ? st->events : (uint32_t)due_d;
        while (sent < due && pub_send(pub, *seq + 1) == 0)
            sent++, (*seq)++;
        if (sent == st->events && pub->inflight == 0)
            break;
        parent_poll(P, pub, 1);
    }
    uint64_t expected = (uint64_t)pub->ok * established, last = sum_received(P), last_change = now_ns();
    while (now_ns() < deadline && sum_received(P) < expected && now_ns() - last_change < (uint64_t)(P->cfg.drain_s * 1e9)) {
        parent_poll(P, pub, 20);
        if (sum_received(P) != last)
            last = sum_received(P), last_change = now_ns();
    }
}

/* Asks every worker for its counters ('R'); they restart their delivery counters afterwards. */
static void snapshot_workers(parent_t *P, uint32_t snap, publisher_t *pub)
{
    for (uint32_t w = 0; w < P->cfg.procs; w++)
        if (P->alive[w] && write(P->ctl[w], "R", 1) != 1)
            P->alive[w] = 0;
    uint64_t until = now_ns() + 10000000000ull;
    for (;;) {
        uint32_t w;
        for (w = 0; w < P->cfg.procs; w++)
            if (P->alive[w] && P->rep_last[w].snap < snap)
                break;
        if (w == P->cfg.procs || now_ns() >= until)
            break;
        parent_poll(P, pub, 50);
    }
}

static void stop_workers(parent_t *P)
{
    for (uint32_t w = 0; w < P->cfg.procs; w++)
        if (P->alive[w] && write(P->ctl[w], "S", 1) != 1)
            P->alive[w] = 0;
    uint64_t until = now_ns() + 10000000000ull;
    while (!all_reached(P, LG_PHASE_FINAL) && now_ns() < until)
        parent_poll(P, NULL, 50);
    for (uint32_t w = 0; w < P->cfg.procs; w++) {
        if (P->rep_last[w].phase != LG_PHASE_FINAL && !P->cfg.quiet)
            fprintf(stderr, "loadgen: worker %u sent no final report\n", w);
        kill(P->pids[w], SIGKILL); /* already exiting after its final report; never left behind */
        waitpid(P->pids[w], NULL, 0);
        close(P->ctl[w]);
        close(P->rep[w]);
    }
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static void totals(parent_t *P, lg_report_t *t, uint64_t *cstart, uint64_t *cend)
{
    memset(t, 0, sizeof(*t));
    *cstart = UINT64_MAX;
    *cend = 0;
    for (uint32_t w = 0; w < P->cfg.procs; w++) {
        lg_report_t *r = &P->rep_last[w];
        t->established += r->established, t->failed += r->failed, t->retries += r->retries;
        t->disconnects += r->disconnects, t->received += r->received, t->dups += r->dups, t->reorders += r->reorders;
        t->bad += r->bad, t->pongs += r->pongs;
        if (r->connect_start_ns && r->connect_start_ns < *cstart)
            *cstart = r->connect_start_ns;
        if (r->connect_end_ns > *cend)
            *cend = r->connect_end_ns;
        if (r->last_rx_ns > t->last_rx_ns)
            t->last_rx_ns = r->last_rx_ns;
        hist_merge(&t->lat, &r->lat);
        hist_merge(&t->conn, &r->conn);
    }
}

/* Memory growth per connection in bytes as JSON text: null without a server pid or connections. */
static const char *per_conn(const lg_config_t *cfg, uint64_t after_kb, uint64_t before_kb, uint64_t conns)
{
    static char buf[2][32];
    static int k;
    k ^= 1;
    if (cfg->n_server_pids == 0 || conns == 0)
        return "null";
    snprintf(buf[k], sizeof(buf[k]), "%.0f", ((double)after_kb - (double)before_kb) * 1024 / (double)conns);
    return buf[k];
}

/* Prints one JSON line; returns 1 when the run (or step) was clean: all connected, nothing lost. */
static int print_result(parent_t *P, publisher_t *pub, const run_t *run, const step_t *st)
{
    const lg_config_t *cfg = &P->cfg;
    static const char *tn[] = {"ws", "sse", "centrifuge"};
    static lg_report_t t;
    uint64_t cstart, cend;
    totals(P, &t, &cstart, &cend);
    uint32_t published = pub ? pub->ok : 0, perr = pub ? pub->sent - pub->ok : 0;
    uint64_t expected = (uint64_t)published * t.established, lost = expected > t.received ? expected - t.received : 0;
    double connect_s = cend > cstart ? (double)(cend - cstart) / 1e9 : 0;
    double deliver_s = pub && t.last_rx_ns > pub->t_first ? (double)(t.last_rx_ns - pub->t_first) / 1e9 : 0;
    double publish_s = pub && pub->t_last_done > pub->t_first ? (double)(pub->t_last_done - pub->t_first) / 1e9 : 0;
    /* Utilisation over the delivery window (first publish to last delivery): the step's tail, waiting
     * for stragglers and collecting reports, is idle time that would dilute it. */
    double busy_s = deliver_s > 0 ? deliver_s : st->phase_s;
    int ok = t.established == cfg->subs && lost == 0 && t.dups == 0 && t.disconnects == 0 &&
             (st->events == 0 || (published == st->events && perr == 0));
    long ncpu = 0;
    cpu_set_t cs;
    if (sched_getaffinity(0, sizeof(cs), &cs) == 0)
        ncpu = CPU_COUNT(&cs);
    struct in_addr a = {.s_addr = cfg->host};
    printf("{\"target\":\"%s\",\"transport\":\"%s\",\"url\":\"%s:%d\",\"channel\":\"%s\",\"subs\":%u,\"procs\":%u,",
           cfg->target == LG_TARGET_NCHAN ? "nchan" : "realtime", tn[cfg->transport], inet_ntoa(a), cfg->port, cfg->channel,
           cfg->subs, cfg->procs);
    if (st->index >= 0)
        printf("\"step\":%d,", st->index);
    printf("\"connections\":%llu,\"connect_failed\":%llu,\"connect_retries\":%llu,\"connect_s\":%.3f,\"connect_rate\":%.1f,"
           "\"connect_ms\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f},\"server_connect_cpu_s\":%.3f,\"client_connect_cpu_s\":%.3f,"
           "\"client_connect_cpu_pct\":%.1f,",
           (unsigned long long)t.established, (unsigned long long)t.failed, (unsigned long long)t.retries, connect_s,
           connect_s > 0 ? t.established / connect_s : 0, us(hist_quantile(&t.conn, 0.5)) / 1000,
           us(hist_quantile(&t.conn, 0.99)) / 1000, us(t.conn.max) / 1000, run->srv_connect_cpu, run->cli_connect_cpu,
           connect_s > 0 ? run->cli_connect_cpu / connect_s * 100 : 0);
    printf("\"events\":%u,\"rate\":%.1f,\"published\":%u,\"publish_errors\":%u,\"publish_conn_errors\":%u,\"publish_s\":%.3f,"
           "\"publish_rate\":%.1f,\"publish_rtt_us\":{\"p50\":%.1f,\"p99\":%.1f},",
           st->events, st->rate, published, perr, pub ? pub->conn_errors : 0, publish_s, publish_s > 0 && published > 1 ? (published - 1) / publish_s : 0,
           pub ? us(hist_quantile(&pub->rtt, 0.5)) : 0, pub ? us(hist_quantile(&pub->rtt, 0.99)) : 0);
    printf("\"expected\":%llu,\"received\":%llu,\"lost\":%llu,\"loss\":%.6f,\"dups\":%llu,\"reorders\":%llu,\"disconnects\":%llu,"
           "\"bad\":%llu,\"pongs\":%llu,\"delivered_per_s\":%.1f,",
           (unsigned long long)expected, (unsigned long long)t.received, (unsigned long long)lost,
           expected ? (double)lost / (double)expected : 0, (unsigned long long)t.dups, (unsigned long long)t.reorders,
           (unsigned long long)t.disconnects, (unsigned long long)t.bad, (unsigned long long)t.pongs,
           deliver_s > 0 ? t.received / deliver_s : 0);
    printf("\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f},",
           us(hist_quantile(&t.lat, 0.5)), us(hist_quantile(&t.lat, 0.9)), us(hist_quantile(&t.lat, 0.99)),
           us(hist_quantile(&t.lat, 0.999)), us(t.lat.max), t.lat.count ? us(t.lat.sum / t.lat.count) : 0);
    const srv_sample_t *b = &run->before, *f = &run->after;
    printf("\"server_procs\":%d,\"server_rss_kb\":{\"before\":%llu,\"after\":%llu},\"server_pss_kb\":{\"before\":%llu,\"after\":%llu},"
           "\"rss_per_conn_b\":%s,\"pss_per_conn_b\":%s,\"server_cpu_s\":%.3f,\"server_cpu_pct\":%.1f,",
           f->nproc, (unsigned long long)b->rss_kb, (unsigned long long)f->rss_kb, (unsigned long long)b->pss_kb,
           (unsigned long long)f->pss_kb, per_conn(cfg, f->rss_kb, b->rss_kb, t.established),
           per_conn(cfg, f->pss_kb, b->pss_kb, t.established), st->srv_cpu, busy_s > 0 ? st->srv_cpu / busy_s * 100 : 0);
    printf("\"client_cpu_s\":%.3f,\"client_cpu_pct\":%.1f,\"client_cpus\":%ld,\"wall_s\":%.3f,\"ok\":%s}\n", st->cli_cpu,
           busy_s > 0 ? st->cli_cpu / busy_s * 100 : 0, ncpu, (double)(now_ns() - run->t_start) / 1e9,
           ok ? "true" : "false");
    fflush(stdout);
    return ok;
}

/* Client CPU so far: this process plus the workers' last reports. */
static double client_cpu(parent_t *P)
{
    double c = cpu_self_s();
    for (uint32_t w = 0; w < P->cfg.procs; w++)
        c += P->rep_last[w].cpu_s;
    return c;
}

/* Whether a saturation search stops after this step. Loss or a lost subscriber stops it at once; a
 * step that merely fell behind (p99 over the bound, the publisher or the deliveries under 80 % of the
 * asked rate) stops it only when the next step does too, so one stall from a neighbour on a shared
 * machine does not end the search early. */
static int step_breaks(parent_t *P, publisher_t *pub, const step_t *st, uint64_t established, int ok, int *bad_run,
                       uint64_t *disconnects)
{
    lg_report_t t;
    uint64_t cs, ce;
    totals(P, &t, &cs, &ce);
    double pub_s = pub->t_last_done > pub->t_first ? (double)(pub->t_last_done - pub->t_first) / 1e9 : 0;
    double deliver_s = t.last_rx_ns > pub->t_first ? (double)(t.last_rx_ns - pub->t_first) / 1e9 : 0;
    int hard = (uint64_t)pub->ok * established > t.received || t.disconnects > *disconnects;
    int behind = !ok || hist_quantile(&t.lat, 0.99) > (uint64_t)(P->cfg.max_p99_ms * 1e6) ||
                 (pub_s > 0 && (pub->ok > 1 ? pub->ok - 1 : 0) / pub_s < 0.8 * st->rate) ||
                 (deliver_s > 0 && t.received / deliver_s < 0.8 * st->rate * (double)established);
    *disconnects = t.disconnects;
    *bad_run = behind ? *bad_run + 1 : 0;
    return hard || *bad_run >= 2;
}

/* Runs every publish step (one unless --rates); returns 1 when all were clean. */
/*
 * --observe: someone else publishes --events on the channel (another loadgen, through another node: a cluster
 * run). Waits for them (the latency is the publisher's "t" stamp: one CLOCK_MONOTONIC on the machine), until all
 * arrived, or --drain seconds pass without a delivery once they started, or the deadline.
 */
static int run_observe(parent_t *P, run_t *run, uint64_t established, uint64_t deadline)
{
    lg_config_t *cfg = &P->cfg;
    static publisher_t elsewhere; /* no connections: what print_result reads of a publisher */
    elsewhere.sent = elsewhere.ok = cfg->events;
    elsewhere.t_first = now_ns();
    step_t st = {.index = -1, .rate = cfg->rate, .events = cfg->events};
    srv_sample_t s0, s1;
    sample_server(cfg, &s0);
    double c0 = client_cpu(P);
    uint64_t expected = (uint64_t)cfg->events * established, last = 0, last_change = now_ns();
    while (now_ns() < deadline && sum_received(P) < expected &&
           (sum_received(P) == 0 || now_ns() - last_change < (uint64_t)(cfg->drain_s * 1e9))) {
        parent_poll(P, NULL, 20);
        if (sum_received(P) != last)
            last = sum_received(P), last_change = now_ns();
    }
    snapshot_workers(P, 1, NULL);
    sample_server(cfg, &s1);
    st.phase_s = (double)(now_ns() - elsewhere.t_first) / 1e9;
    st.srv_cpu = s1.cpu_s - s0.cpu_s;
    st.cli_cpu = client_cpu(P) - c0;
    return print_result(P, &elsewhere, run, &st);
}

static int run_steps(parent_t *P, run_t *run, uint64_t established, uint64_t deadline)
{
    lg_config_t *cfg = &P->cfg;
    static publisher_t pub;
    int n = cfg->n_rates > 0 ? cfg->n_rates : 1, all_ok = 1, bad_run = 0;
    uint64_t disconnects = 0;
    uint32_t seq = 0;
    if (pub_init(&pub, cfg, P->ep) != 0) {
        fprintf(stderr, "loadgen: cannot connect the publisher to the server\n");
        return 0;
    }
    for (int k = 0; k < n && now_ns() < deadline; k++) {
        step_t st = {.index = cfg->n_rates > 0 ? k : -1, .rate = cfg->n_rates > 0 ? cfg->rates[k] : cfg->rate};
        st.events = cfg->n_rates > 0 ? (uint32_t)(st.rate * cfg->step_s + 0.5) : cfg->events;
        if (cfg->n_rates > 0 && st.events < 10)
            st.events = 10;
        pub.sent = pub.ok = pub.errors = pub.conn_errors = 0;
        pub.t_first = pub.t_last_done = 0;
        memset(&pub.rtt, 0, sizeof(pub.rtt));
        srv_sample_t s0, s1;
        sample_server(cfg, &s0);
        double c0 = client_cpu(P);
        uint64_t tp0 = now_ns(), step_dl = tp0 + (uint64_t)((st.events / st.rate * 3 + cfg->drain_s + 10) * 1e9);
        run_publish(P, &pub, &st, &seq, established, step_dl < deadline ? step_dl : deadline);
        snapshot_workers(P, (uint32_t)k + 1, &pub);
        sample_server(cfg, &s1);
        st.phase_s = (double)(now_ns() - tp0) / 1e9;
        st.srv_cpu = s1.cpu_s - s0.cpu_s;
        st.cli_cpu = client_cpu(P) - c0;
        int ok = print_result(P, &pub, run, &st);
        all_ok &= ok;
        if (cfg->n_rates > 0 && step_breaks(P, &pub, &st, established, ok, &bad_run, &disconnects))
            break;
    }
    pub_free(&pub);
    return all_ok;
}

int main(int argc, char **argv)
{
    static parent_t P;
    lg_config_t *cfg = &P.cfg;
    if (parse_args(cfg, argc, argv) != 0) {
        usage(stderr);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if ((rlim_t)(cfg->subs / cfg->procs + 64) > rl.rlim_cur) {
            fprintf(stderr, "loadgen: %u subscribers per process exceed the open-file limit %llu: raise --procs\n",
                    cfg->subs / cfg->procs + 1, (unsigned long long)rl.rlim_cur);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    run_t run = {.t_start = now_ns()};
    uint64_t deadline = run.t_start + (uint64_t)(cfg->timeout_s * 1e9);
    sample_server(cfg, &run.before);
    P.ep = epoll_create1(EPOLL_CLOEXEC);
    spawn_workers(&P);

    /* Connect phase: the workers ramp on their own; wait for each to say it is done. */
    uint64_t cdl = now_ns() + (uint64_t)((cfg->connect_timeout_s + 10) * 1e9);
    while (!all_reached(&P, LG_PHASE_CONNECTED) && now_ns() < cdl && now_ns() < deadline)
        parent_poll(&P, NULL, 50);
    srv_sample_t connected;
    sample_server(cfg, &connected);
    poll_until(&P, NULL, now_ns() + (uint64_t)(cfg->settle_s * 1e9));
    sample_server(cfg, &run.after);
    run.srv_connect_cpu = connected.cpu_s - run.before.cpu_s;

    uint64_t established = 0;
    for (uint32_t w = 0; w < cfg->procs; w++)
        established += P.rep_last[w].established, run.cli_connect_cpu += P.rep_last[w].cpu_connected_s;
    int ok;
    if (cfg->events > 0 && established > 0) {
        ok = cfg->observe ? run_observe(&P, &run, established, deadline) : run_steps(&P, &run, established, deadline);
        stop_workers(&P);
    } else {
        step_t st = {.index = -1, .rate = cfg->rate};
        stop_workers(&P);
        ok = print_result(&P, NULL, &run, &st);
    }
    return ok ? 0 : 1;
}
