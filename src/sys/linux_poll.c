/* linux_poll.c - readiness on Linux: the task runtime's reactor waits in
 * epoll, is interrupted through an eventfd, and a plain thread waits for
 * one descriptor with poll(2). */
#define _GNU_SOURCE
#include "sys.h"

#include "oxide/base.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int ox__sys_poller_open(int *poller, int *waker)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return errno;
    int ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ev < 0) {
        int err = errno;
        close(ep);
        return err;
    }
    /* The waker is the one registration whose key is NULL. Level-triggered:
     * it stays ready until a wait drains it. */
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) != 0) {
        int err = errno;
        close(ev);
        close(ep);
        return err;
    }
    *poller = ep;
    *waker = ev;
    return 0;
}

void ox__sys_poller_close(int poller, int waker)
{
    close(waker);
    close(poller);
}

int ox__sys_poller_add(int poller, int fd, void *key)
{
    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = key};
    return epoll_ctl(poller, EPOLL_CTL_ADD, fd, &e) == 0 ? 0 : errno;
}

static uint32_t epoll_events_of(unsigned events)
{
    return ((events & OX__SYS_READABLE) ? EPOLLIN | EPOLLRDHUP : 0u) |
           ((events & OX__SYS_WRITABLE) ? EPOLLOUT : 0u);
}

int ox__sys_poller_add_once(int poller, int fd, unsigned events, void *key)
{
    struct epoll_event e = {.events = epoll_events_of(events) | EPOLLONESHOT, .data.ptr = key};
    return epoll_ctl(poller, EPOLL_CTL_ADD, fd, &e) == 0 ? 0 : errno;
}

void ox__sys_poller_del(int poller, int fd)
{
    (void)epoll_ctl(poller, EPOLL_CTL_DEL, fd, NULL);
}

static unsigned ready_of(uint32_t ev)
{
    /* An error or hang-up is "ready" both ways: the next read or write
     * returns it instead of blocking. */
    unsigned both = (ev & (EPOLLERR | EPOLLHUP)) ? OX__SYS_READABLE | OX__SYS_WRITABLE : 0u;
    return both | ((ev & (EPOLLIN | EPOLLRDHUP)) ? OX__SYS_READABLE : 0u) |
           ((ev & EPOLLOUT) ? OX__SYS_WRITABLE : 0u);
}

/* epoll_pwait2 (Linux 5.11) takes a nanosecond timeout; where the kernel
 * or an emulator lacks it, epoll_wait's milliseconds, rounded up so that
 * a timer never fires early. */
static _Atomic bool no_pwait2;

static int epoll_wait_until(int poller, struct epoll_event *ev, int max, int64_t deadline_ns)
{
    if (deadline_ns == INT64_MAX)
        return epoll_wait(poller, ev, max, -1);
    if (deadline_ns <= 0) /* a look, no wait: no clock read */
        return epoll_wait(poller, ev, max, 0);
    int64_t left = deadline_ns - ox__sys_monotonic_ns();
    if (left < 0)
        left = 0;
#ifdef SYS_epoll_pwait2
    /* Relaxed: a cache of what the kernel answered; a stale read only
     * costs one more ENOSYS. */
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = left / 1000000000, .tv_nsec = left % 1000000000};
        long n = syscall(SYS_epoll_pwait2, poller, ev, max, &ts, NULL, (size_t)0);
        if (n >= 0 || errno != ENOSYS)
            return (int)n;
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
    }
#endif
    int64_t ms = (left + 999999) / 1000000;
    return epoll_wait(poller, ev, max, ms > INT_MAX ? INT_MAX : (int)ms);
}

int ox__sys_poller_wait(int poller, int waker, ox__sys_event *out, int max, int64_t deadline_ns)
{
    struct epoll_event ev[64];
    if (max > 64)
        max = 64;
    int n = epoll_wait_until(poller, ev, max, deadline_ns);
    int stored = 0;
    for (int i = 0; i < n; i++) {
        if (ev[i].data.ptr == NULL) { /* the waker: drain it */
            uint64_t count;
            (void)!read(waker, &count, sizeof count);
            continue;
        }
        out[stored++] = (ox__sys_event){.key = ev[i].data.ptr, .ready = ready_of(ev[i].events)};
    }
    return stored;
}

void ox__sys_poller_wake(int waker)
{
    uint64_t one = 1;
    /* EAGAIN (the counter is full) still leaves it readable: enough. */
    (void)!write(waker, &one, sizeof one);
}

int ox__sys_fd_wait(int fd, unsigned events, int64_t deadline_ns)
{
    struct pollfd p = {.fd = fd,
                       .events = (short)(((events & OX__SYS_READABLE) ? POLLIN : 0) |
                                         ((events & OX__SYS_WRITABLE) ? POLLOUT : 0))};
    for (;;) {
        int timeout = -1;
        if (deadline_ns != INT64_MAX) {
            int64_t left = deadline_ns - ox__sys_monotonic_ns();
            if (left <= 0)
                left = 0;
            int64_t ms = (left + 999999) / 1000000;
            timeout = ms > INT_MAX ? INT_MAX : (int)ms;
        }
        int n = poll(&p, 1, timeout);
        if (n > 0)
            return 0; /* ready, or POLLERR/POLLHUP/POLLNVAL: the next call says which */
        if (n < 0 && errno != EINTR)
            return errno;
        if (n == 0 && (deadline_ns == INT64_MAX || ox__sys_monotonic_ns() >= deadline_ns))
            return OX_ETIMEDOUT;
        /* EINTR, or poll woke a little before the deadline: again. */
    }
}
