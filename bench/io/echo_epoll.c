/* echo_epoll.c - the `epoll` peer of the echo workloads, the floor: one
 * thread, one level-triggered epoll set, read what came and write it
 * back. No server does less per round trip.
 *
 *   echo-epoll PORT     listens on 127.0.0.1:PORT, prints "ready" once
 *                       it accepts, runs until killed.
 *
 * Reads go into one shared buffer, so an idle connection costs no buffer.
 * A write the socket does not take whole (not seen with the benchmark's
 * 64-byte messages, but an echo server must not drop bytes) keeps its rest
 * in a per-connection buffer, and the connection waits for EPOLLOUT
 * instead of reading until the rest is written. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "echo-epoll: %s: %s\n", what, strerror(errno));
    exit(1);
}

struct pending {
    char *data;
    size_t off, len;
};

static struct pending *pend; /* indexed by fd */
static int npend;

static void set_events(int ep, int fd, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) != 0)
        die("epoll_ctl");
}

static void drop(int fd)
{
    if (fd < npend) {
        free(pend[fd].data);
        pend[fd] = (struct pending){0};
    }
    close(fd); /* also removes it from the epoll set */
}

/* Writes data; keeps what the socket did not take. Returns -1 on error. */
static int send_or_keep(int ep, int fd, const char *data, size_t len)
{
    ssize_t w = write(fd, data, len);
    if (w < 0 && errno != EAGAIN)
        return -1;
    size_t done = w < 0 ? 0 : (size_t)w;
    if (done == len)
        return 0;
    if (fd >= npend) {
        int n = fd + 1024;
        pend = realloc(pend, (size_t)n * sizeof *pend);
        if (!pend)
            die("realloc");
        memset(pend + npend, 0, (size_t)(n - npend) * sizeof *pend);
        npend = n;
    }
    struct pending *p = &pend[fd];
    p->data = malloc(len - done);
    if (!p->data)
        die("malloc");
    memcpy(p->data, data + done, len - done);
    p->off = 0;
    p->len = len - done;
    set_events(ep, fd, EPOLLOUT);
    return 0;
}

/* EPOLLOUT: write the rest; once it is all out, read again. */
static int flush(int ep, int fd)
{
    struct pending *p = &pend[fd];
    ssize_t w = write(fd, p->data + p->off, p->len - p->off);
    if (w < 0)
        return errno == EAGAIN ? 0 : -1;
    p->off += (size_t)w;
    if (p->off == p->len) {
        free(p->data);
        *p = (struct pending){0};
        set_events(ep, fd, EPOLLIN);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: echo-epoll PORT\n");
        return 2;
    }
    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, SOMAXCONN) != 0)
        die("listen");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) != 0)
        die("epoll");
    printf("ready\n");
    fflush(stdout);

    static char buf[65536];
    struct epoll_event ev[256];
    for (;;) {
        int n = epoll_wait(ep, ev, 256, -1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int k = 0; k < n; k++) {
            int fd = ev[k].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) != 0)
                        die("epoll_ctl");
                }
                if (errno != EAGAIN && errno != ECONNABORTED)
                    perror("echo-epoll: accept4"); /* EMFILE: go on serving */
            } else if (fd < npend && pend[fd].data) {
                if (flush(ep, fd) != 0)
                    drop(fd);
            } else {
                ssize_t r = read(fd, buf, sizeof buf);
                if (r < 0 && errno == EAGAIN)
                    continue;
                if (r <= 0 || send_or_keep(ep, fd, buf, (size_t)r) != 0)
                    drop(fd);
            }
        }
    }
}
