/* loadgen.c - the client of the I/O benchmarks (bench/WORKLOADS.md, "I/O").
 * Plain epoll and pthreads, nothing of oxide, so every server meets the
 * same client. It runs on the same 2 CPUs as the server, so it also reads
 * the server's CPU time from /proc: CPU per round trip counts as much as
 * throughput.
 *
 *   loadgen echo -n NAME -i IMPL -p PORT -c CONNS [-d SECS] [-w WARM]
 *                [-t THREADS] [-s SERVER_PID]
 *       CONNS connections to 127.0.0.1:PORT; each sends a 64-byte message,
 *       waits for all 64 bytes to come back (and checks them), sends the
 *       next. WARM seconds (default 1) of load are not counted, then SECS
 *       (default 5) are. Prints bench lines (workload<TAB>IMPL<TAB>value):
 *         io_NAME_ns_per_rt      measured wall time / round trips completed
 *         io_NAME_p99_ns         99th percentile of the round trip times
 *         io_NAME_cpu_ns_per_rt  server CPU (user + system) / round trips
 *         io_NAME_bytes          server's largest VmRSS seen while measuring
 *       (the last two only with -s). The server's CPU and memory are those
 *       of SERVER_PID plus its direct children (nginx's workers).
 *   loadgen cpu PID     prints the CPU time, in ns, that PID and its direct
 *                       children have used (run-io.sh brackets wrk with it)
 *   loadgen wait PORT   waits up to 10 s for 127.0.0.1:PORT to accept
 *
 * The soft RLIMIT_NOFILE is raised to CONNS + 64 when it is lower; the
 * hard limit must allow it. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MSG = 64, MAX_THREADS = 16, MAX_FAMILY = 64 };
enum { WARMUP, MEASURE, STOP };

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "loadgen: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- the server's CPU time and memory, from /proc ----------------------- */

/* utime + stime of every thread of process PID, in ns, and its parent's
 * pid; -1 when the process is gone. */
static int64_t proc_cpu_ns(int pid, int *ppid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Field 2, the command name, may hold spaces and parentheses: the
     * fields go on after the last ')'. Then: 3 state, 4 ppid, 5-8 (int),
     * 9-13 (unsigned), 14 utime, 15 stime, in clock ticks. */
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p ||
        sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", ppid, &ut, &st) != 3)
        return -1;
    return (int64_t)(ut + st) * (1000000000 / sysconf(_SC_CLK_TCK));
}

/* PID and its direct children, into out[]; returns how many. */
static int family(int pid, int *out)
{
    int n = 0, ppid;
    out[n++] = pid;
    DIR *d = opendir("/proc");
    if (!d)
        die("opendir /proc");
    for (struct dirent *e; (e = readdir(d)) != NULL && n < MAX_FAMILY;) {
        int c = atoi(e->d_name);
        if (c > 0 && c != pid && proc_cpu_ns(c, &ppid) >= 0 && ppid == pid)
            out[n++] = c;
    }
    closedir(d);
    return n;
}

static int64_t family_cpu_ns(const int *pids, int n)
{
    int64_t sum = 0;
    int ppid;
    for (int i = 0; i < n; i++) {
        int64_t ns = proc_cpu_ns(pids[i], &ppid);
        if (ns < 0 && i == 0)
            die("the server is gone");
        sum += ns > 0 ? ns : 0;
    }
    return sum;
}

static int64_t family_rss_bytes(const int *pids, int n)
{
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", pids[i]);
        FILE *f = fopen(path, "r");
        long kb;
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
                sum += (int64_t)kb * 1024;
        if (f)
            fclose(f);
    }
    return sum;
}

/* ---- connections ------------------------------------------------------- */

static int connect_to(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct conn {
    int fd;
    unsigned got;      /* bytes of the echo received so far */
    unsigned char seq; /* every byte of the message in flight */
    uint64_t sent_at;
    unsigned char buf[MSG];
};

struct worker {
    pthread_t thread;
    int ep;
    struct conn *conns;
    int n;
    uint64_t *lat; /* round trip times completed while measuring, ns */
    size_t nlat, cap;
    size_t warm; /* round trips completed in the warm-up */
};

/* WARMUP, MEASURE, STOP: set by main, read by the workers. Relaxed: a
 * worker only needs to see the change soon; nothing is published with it
 * (main reads the workers' results after joining them). */
static atomic_int phase;

static void send_msg(struct conn *c)
{
    unsigned char msg[MSG];
    memset(msg, ++c->seq, MSG);
    c->got = 0;
    c->sent_at = now_ns();
    /* One 64-byte message in flight on an empty socket buffer: a short
     * write cannot happen, and if it did the numbers would be wrong. */
    if (write(c->fd, msg, MSG) != MSG)
        die("write");
}

static void record(struct worker *w, uint64_t ns)
{
    if (w->nlat == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 1 << 16;
        w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
        if (!w->lat)
            die("realloc");
    }
    w->lat[w->nlat++] = ns;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    struct epoll_event ev[256];
    for (int i = 0; i < w->n; i++)
        send_msg(&w->conns[i]);
    while (atomic_load_explicit(&phase, memory_order_relaxed) != STOP) {
        int n = epoll_wait(w->ep, ev, 256, 10);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int k = 0; k < n; k++) {
            struct conn *c = ev[k].data.ptr;
            ssize_t r = read(c->fd, c->buf + c->got, MSG - c->got);
            if (r < 0 && errno == EAGAIN)
                continue;
            if (r <= 0) {
                fprintf(stderr, "loadgen: the server closed a connection\n");
                exit(1);
            }
            c->got += (unsigned)r;
            if (c->got < MSG)
                continue;
            uint64_t t = now_ns();
            for (int i = 0; i < MSG; i++)
                if (c->buf[i] != c->seq) {
                    fprintf(stderr, "loadgen: the echo differs from the message\n");
                    exit(1);
                }
            int ph = atomic_load_explicit(&phase, memory_order_relaxed);
            if (ph == MEASURE)
                record(w, t - c->sent_at);
            else if (ph == WARMUP)
                w->warm++;
            send_msg(c);
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void raise_nofile(rlim_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit");
    if (rl.rlim_cur >= need)
        return;
    if (rl.rlim_max < need) {
        fprintf(stderr, "loadgen: RLIMIT_NOFILE hard limit %llu < %llu needed\n",
                (unsigned long long)rl.rlim_max, (unsigned long long)need);
        exit(1);
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("setrlimit");
}

static int echo(int argc, char **argv)
{
    const char *name = NULL, *impl = NULL;
    int port = 0, conns = 0, secs = 5, warm = 1, threads = 1, server = 0;
    for (int opt; (opt = getopt(argc, argv, "n:i:p:c:d:w:t:s:")) != -1;) {
        switch (opt) {
        case 'n':
            name = optarg;
            break;
        case 'i':
            impl = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            conns = atoi(optarg);
            break;
        case 'd':
            secs = atoi(optarg);
            break;
        case 'w':
            warm = atoi(optarg);
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 's':
            server = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (!name || !impl || port <= 0 || conns <= 0 || secs <= 0 || warm < 0 || threads <= 0 ||
        threads > MAX_THREADS || threads > conns) {
        fprintf(stderr, "loadgen echo: bad or missing options\n");
        return 2;
    }
    raise_nofile((rlim_t)conns + 64);

    /* Connect everything first, one at a time: a burst of 10 000 SYNs
     * would only overflow the server's backlog and retry after 1 s.
     * Connection i belongs to worker i % threads. The sockets stay
     * blocking: a worker reads only what epoll says is there and writes
     * 64 bytes into an empty socket buffer. */
    struct worker w[MAX_THREADS] = {0};
    for (int t = 0; t < threads; t++) {
        w[t].n = (conns - t + threads - 1) / threads;
        w[t].conns = calloc((size_t)w[t].n, sizeof *w[t].conns);
        w[t].ep = epoll_create1(EPOLL_CLOEXEC);
        if (!w[t].conns || w[t].ep < 0)
            die("calloc or epoll_create1");
    }
    for (int i = 0; i < conns; i++) {
        struct worker *wk = &w[i % threads];
        struct conn *c = &wk->conns[i / threads];
        int one = 1;
        if ((c->fd = connect_to(port)) < 0)
            die("connect");
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(wk->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            die("epoll_ctl");
    }

    for (int t = 0; t < threads; t++)
        if (pthread_create(&w[t].thread, NULL, run_worker, &w[t]) != 0)
            die("pthread_create");
    sleep_ns((uint64_t)warm * 1000000000u);

    int pids[MAX_FAMILY], npids = server ? family(server, pids) : 0;
    int64_t cpu0 = npids ? family_cpu_ns(pids, npids) : 0, rss = 0;
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)secs * 1000000000u;
    atomic_store_explicit(&phase, MEASURE, memory_order_relaxed);
    /* The resident set is sampled every 100 ms; the largest counts. */
    for (uint64_t t = t0; t < end; t = now_ns()) {
        sleep_ns(end - t < 100000000u ? end - t : 100000000u);
        int64_t r = npids ? family_rss_bytes(pids, npids) : 0;
        rss = r > rss ? r : rss;
    }
    atomic_store_explicit(&phase, STOP, memory_order_relaxed);
    uint64_t t1 = now_ns();
    int64_t cpu1 = npids ? family_cpu_ns(pids, npids) : 0;

    size_t total = 0, warmed = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(w[t].thread, NULL);
        total += w[t].nlat;
        warmed += w[t].warm;
    }
    if (total == 0) {
        fprintf(stderr, "loadgen: no round trip completed in %d s (%zu in the warm-up)\n", secs,
                warmed);
        return 1;
    }
    uint64_t *lat = malloc(total * sizeof *lat);
    if (!lat)
        die("malloc");
    for (int t = 0, k = 0; t < threads; t++) {
        memcpy(lat + k, w[t].lat, w[t].nlat * sizeof *lat);
        k += (int)w[t].nlat;
        free(w[t].lat);
    }
    qsort(lat, total, sizeof *lat, cmp_u64);
    uint64_t p99 = lat[(total * 99 + 99) / 100 - 1];

    printf("io_%s_ns_per_rt\t%s\t%.1f\n", name, impl, (double)(t1 - t0) / (double)total);
    printf("io_%s_p99_ns\t%s\t%llu\n", name, impl, (unsigned long long)p99);
    if (npids) {
        printf("io_%s_cpu_ns_per_rt\t%s\t%.1f\n", name, impl,
               (double)(cpu1 - cpu0) / (double)total);
        printf("io_%s_bytes\t%s\t%lld\n", name, impl, (long long)rss);
    }
    for (int t = 0; t < threads; t++) {
        for (int i = 0; i < w[t].n; i++)
            close(w[t].conns[i].fd);
        free(w[t].conns);
    }
    free(lat);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "echo") == 0)
        return echo(argc - 1, argv + 1);
    if (argc == 3 && strcmp(argv[1], "cpu") == 0) {
        int pids[MAX_FAMILY], n = family(atoi(argv[2]), pids);
        printf("%lld\n", (long long)family_cpu_ns(pids, n));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "wait") == 0) {
        for (int i = 0; i < 200; i++, sleep_ns(50000000)) {
            int fd = connect_to(atoi(argv[2]));
            if (fd >= 0) {
                close(fd);
                return 0;
            }
        }
        fprintf(stderr, "loadgen: nothing accepts on port %s\n", argv[2]);
        return 1;
    }
    fprintf(stderr, "usage: loadgen echo -n NAME -i IMPL -p PORT -c CONNS [-d SECS] [-w WARM] "
                    "[-t THREADS] [-s SERVER_PID]\n"
                    "       loadgen cpu PID\n"
                    "       loadgen wait PORT\n");
    return 2;
}
