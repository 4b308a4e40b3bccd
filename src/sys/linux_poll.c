/* linux_poll.c - readiness on Linux: the task runtime's reactor waits in
 * epoll, is interrupted through an event flag (linux_event.c), and a plain
 * thread waits for one descriptor with poll(2). */
#define _GNU_SOURCE
#include "sys.h"

#include "oxide/base.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int ox__sys_poller_open(int *poller, int *waker)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return errno;
    int ev, rc = ox__sys_event_open(&ev);
    if (rc != 0) {
        close(ep);
        return rc;
    }
    /* The waker is the one registration whose key is NULL. Level-triggered:
     * it stays ready until a wait drains it. */
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) != 0) {
        int err = errno;
        ox__sys_event_close(ev);
        close(ep);
        return err;
    }
    *poller = ep;
    *waker = ev;
    return 0;
}

void ox__sys_poller_close(int poller, int waker)
{
    ox__sys_event_close(waker);
    close(poller);
}

int ox__sys_poller_add(int poller, int fd, void *key)
{
    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET,
                            .data.ptr = key};
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
    unsigned end = (ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP | EPOLLPRI))
                       ? OX__SYS_READABLE | OX__SYS_READ_END
                       : 0u;
    return both | end | ((ev & EPOLLIN) ? OX__SYS_READABLE : 0u) |
           ((ev & EPOLLOUT) ? OX__SYS_WRITABLE : 0u);
}

/* A deadline as poll(2)'s and epoll_wait's timeout: milliseconds, rounded
 * up so that a wait never ends early; -1 for none; 0 for a deadline at or
 * before now (and for one <= 0 without reading the clock: a look). */
static int timeout_ms(int64_t deadline_ns)
{
    if (deadline_ns == INT64_MAX)
        return -1;
    int64_t left = deadline_ns <= 0 ? 0 : deadline_ns - ox__sys_monotonic_ns();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* epoll_pwait2 (Linux 5.11) takes a nanosecond timeout; where the kernel
 * or an emulator lacks it, epoll_wait's milliseconds. */
static _Atomic bool no_pwait2;

static int epoll_wait_until(int poller, struct epoll_event *ev, int max, int64_t deadline_ns)
{
#ifdef SYS_epoll_pwait2
    /* Relaxed: a cache of what the kernel answered; a stale read only
     * costs one more ENOSYS. */
    if (deadline_ns != INT64_MAX && deadline_ns > 0 &&
        !atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        int64_t left = deadline_ns - ox__sys_monotonic_ns();
        if (left < 0)
            left = 0;
        struct timespec ts = {.tv_sec = left / 1000000000, .tv_nsec = left % 1000000000};
        long n = syscall(SYS_epoll_pwait2, poller, ev, max, &ts, NULL, (size_t)0);
        if (n >= 0 || errno != ENOSYS)
            return (int)n;
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
    }
#endif
    return epoll_wait(poller, ev, max, timeout_ms(deadline_ns));
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
            ox__sys_event_clear(waker);
            continue;
        }
        out[stored++] = (ox__sys_event){.key = ev[i].data.ptr, .ready = ready_of(ev[i].events)};
    }
    return stored;
}

int ox__sys_fd_wait(int fd, unsigned events, int64_t deadline_ns)
{
    struct pollfd p = {.fd = fd,
                       .events = (short)(((events & OX__SYS_READABLE) ? POLLIN : 0) |
                                         ((events & OX__SYS_WRITABLE) ? POLLOUT : 0))};
    for (;;) {
        int n = poll(&p, 1, timeout_ms(deadline_ns));
        if (n > 0)
            return 0; /* ready, or POLLERR/POLLHUP/POLLNVAL: the next call says which */
        if (n < 0 && errno != EINTR)
            return errno;
        if (n == 0 && timeout_ms(deadline_ns) == 0)
            return OX_ETIMEDOUT;
        /* EINTR, or poll woke a little before the deadline: again. */
    }
}
