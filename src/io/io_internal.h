/* io_internal.h - the socket record and the one wait loop every call of
 * src/io/ goes through. */
#ifndef OX_IO_INTERNAL_H
#define OX_IO_INTERNAL_H

#include "oxide/io.h"

#include "../task/task_internal.h"

#include <errno.h>
#include <sys/types.h>

struct ox_socket {
    ox__io_words words; /* first: the reactor's key is the record itself */
    int fd;
    bool is_socket; /* send(MSG_NOSIGNAL) works; else write(2) */
    /* A TCP socket: a read that returns less than it asked for took all
     * there was (ox__io_run). */
    bool short_read_drains;
    /* seq[OX__IO_READ] + 1 as loaded before the last read, if that read
     * was short on a socket whose short reads drain; else 0. */
    _Atomic uint32_t drained_at;
    /* The runtime whose reactor watches fd, or NULL: set once, by the
     * first task that waits on it. */
    _Atomic(ox_runtime *) watched_by;
    ox_socket *free_next; /* in the pool's free list, while unused */
};

/* errno after a failed system call (never 0, which would read as success).
 * Out of line and never merged, as ox__unit_task_get (unit.h says why):
 * errno is a thread-local, and a function that parks a task between two
 * system calls may resume on another worker thread. clang computed
 * errno's address once before ox__io_run's loop and read the first
 * worker's errno after a read on the second: a peer's ECONNRESET read as
 * that worker's stale EAGAIN, and the task waited for ever. */
int ox__io_errno(void) __attribute__((noinline));

/* A new non-blocking socket of type (SOCK_STREAM, SOCK_DGRAM) for addr's
 * family, in a record; OX_EINVAL for an address that is not IPv4 or IPv6. */
int ox__socket_open(const ox_sockaddr *addr, int type, ox_socket **out);

/* A record for fd (taken over), from the pool; ENOMEM if none. */
int ox__socket_new(int fd, bool is_socket, ox_socket **out);

/* One non-blocking attempt at an operation: a system call's result, -1
 * with errno set on failure. */
typedef ssize_t (*ox__io_attempt)(int fd, void *ctx);

/* Runs attempt until it succeeds or fails with something other than
 * EAGAIN or EINTR, waiting for s to be ready for dir (OX__IO_READ or
 * _WRITE) in between: as a task through the reactor, as a thread in poll.
 * Returns 0 with the attempt's result in *result, or OX_ETIMEDOUT,
 * OX_ECANCELED or errno. want: for a read of a stream, the bytes it asks
 * for (a shorter result drains a TCP socket); else 0. */
int ox__io_run(ox_socket *s, int dir, ox_instant deadline, ox__io_attempt attempt, void *ctx,
               size_t want, ssize_t *result);

/* Waits once for s to be ready for events (may return 0 spuriously). */
int ox__io_wait_ready(ox_socket *s, unsigned events, ox_instant deadline);

#endif
