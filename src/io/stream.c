/* stream.c - reading and writing a stream: a TCP socket, a pipe or any
 * descriptor handed over. */
#define _GNU_SOURCE
#include "io_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct buffer {
    void *data;
    size_t len;
} buffer;

static ssize_t attempt_read(int fd, void *ctx)
{
    buffer *b = ctx;
    return read(fd, b->data, b->len);
}

static ssize_t attempt_send(int fd, void *ctx)
{
    buffer *b = ctx;
    /* MSG_NOSIGNAL: a peer that has gone is EPIPE, not a signal that kills
     * the process. */
    return send(fd, b->data, b->len, MSG_NOSIGNAL);
}

/* A pipe (or any descriptor not a socket) has no MSG_NOSIGNAL: write(2)
 * to one whose reader has gone raises SIGPIPE at the calling thread, which
 * kills the process by default. So SIGPIPE is blocked around the write and
 * the one it raised is taken back before unblocking: the caller sees
 * EPIPE, as for a socket. A caller that blocks SIGPIPE itself keeps its own
 * arrangement (the signal stays pending for it, as without oxide). */
static ssize_t attempt_write(int fd, void *ctx)
{
    buffer *b = ctx;
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &pipe_only, &old) != 0 || sigismember(&old, SIGPIPE))
        return write(fd, b->data, b->len);
    ssize_t r = write(fd, b->data, b->len);
    int err = errno;
    if (r < 0 && err == EPIPE) {
        /* SIGPIPE was unblocked until now, so a pending one is ours. */
        const struct timespec now = {0, 0};
        while (sigtimedwait(&pipe_only, NULL, &now) < 0 && errno == EINTR)
            ;
    }
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return r;
}

int ox_socket_read_deadline(ox_socket *s, void *buf, size_t len, size_t *n, ox_instant deadline)
{
    buffer b = {buf, len};
    ssize_t r = 0;
    int rc = ox__io_run(s, OX__IO_READ, deadline, attempt_read, &b, len, &r);
    *n = rc == 0 ? (size_t)r : 0;
    return rc;
}

int ox_socket_read(ox_socket *s, void *buf, size_t len, size_t *n)
{
    return ox_socket_read_deadline(s, buf, len, n, OX_INSTANT_NEVER);
}

int ox_socket_write_deadline(ox_socket *s, const void *buf, size_t len, size_t *n,
                             ox_instant deadline)
{
    buffer b = {(void *)buf, len};
    ssize_t r = 0;
    int rc = ox__io_run(s, OX__IO_WRITE, deadline, s->is_socket ? attempt_send : attempt_write, &b,
                        0, &r);
    *n = rc == 0 ? (size_t)r : 0;
    return rc;
}

int ox_socket_write(ox_socket *s, const void *buf, size_t len, size_t *n)
{
    return ox_socket_write_deadline(s, buf, len, n, OX_INSTANT_NEVER);
}

int ox_socket_read_exact_deadline(ox_socket *s, void *buf, size_t len, ox_instant deadline)
{
    for (size_t done = 0, n; done < len; done += n) {
        int rc = ox_socket_read_deadline(s, (char *)buf + done, len - done, &n, deadline);
        if (rc != 0)
            return rc;
        if (n == 0)
            return OX_EEOF;
    }
    return 0;
}

int ox_socket_read_exact(ox_socket *s, void *buf, size_t len)
{
    return ox_socket_read_exact_deadline(s, buf, len, OX_INSTANT_NEVER);
}

int ox_socket_write_all_deadline(ox_socket *s, const void *buf, size_t len, ox_instant deadline)
{
    for (size_t done = 0, n; done < len; done += n) {
        int rc = ox_socket_write_deadline(s, (const char *)buf + done, len - done, &n, deadline);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int ox_socket_write_all(ox_socket *s, const void *buf, size_t len)
{
    return ox_socket_write_all_deadline(s, buf, len, OX_INSTANT_NEVER);
}
