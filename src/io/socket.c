/* socket.c - socket records, the wait loop every call goes through, and
 * descriptors that are not oxide's own.
 *
 * Records come from a pool and are never returned to the allocator: the
 * reactor's key for a descriptor is its record, and an event for a
 * descriptor that was just closed may still be in another worker's hands.
 * If the record is reused meanwhile, that event only wakes its new owner's
 * waiters spuriously, and they try their call again. */
#define _GNU_SOURCE
#include "io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static const ox__wait_site wait_sites[3] = {
    [OX__IO_READ] = {.what = "socket read", .cancellable = true},
    [OX__IO_WRITE] = {.what = "socket write", .cancellable = true},
    [OX__IO_ANY] = {.what = "descriptor readiness", .cancellable = true},
};

static const unsigned sys_events[3] = {
    [OX__IO_READ] = OX__SYS_READABLE,
    [OX__IO_WRITE] = OX__SYS_WRITABLE,
    [OX__IO_ANY] = OX__SYS_READABLE | OX__SYS_WRITABLE,
};

/* ---- the pool ---- */

#define POOL_CHUNK 64

/* Chunks are kept on a list (newest first) so that a runtime that shuts
 * down can find the records its reactor watches: ox__io_forget_runtime. */
typedef struct pool_chunk {
    struct pool_chunk *next;
    ox_socket records[POOL_CHUNK];
} pool_chunk;

static ox__spin pool_lock;
static ox_socket *pool_free;
static pool_chunk *pool_chunks;

int ox__socket_new(int fd, bool is_socket, ox_socket **out)
{
    ox__spin_lock(&pool_lock);
    ox_socket *s = pool_free;
    if (s != NULL)
        pool_free = s->free_next;
    ox__spin_unlock(&pool_lock);
    if (s == NULL) {
        pool_chunk *c = calloc(1, sizeof *c); /* never freed: see the top */
        if (c == NULL)
            return ENOMEM;
        ox_socket *chunk = c->records;
        for (size_t i = 1; i + 1 < POOL_CHUNK; i++)
            chunk[i].free_next = &chunk[i + 1];
        ox__spin_lock(&pool_lock);
        chunk[POOL_CHUNK - 1].free_next = pool_free;
        pool_free = &chunk[1];
        c->next = pool_chunks;
        pool_chunks = c;
        ox__spin_unlock(&pool_lock);
        s = &chunk[0];
    }
    s->fd = fd;
    s->is_socket = is_socket;
    s->short_read_drains = false; /* tcp.c sets it */
    s->free_next = NULL;
    /* Relaxed: the record is ours alone until it is handed out; a stale
     * event of its last descriptor may still set read_end, which only
     * costs the next short read its shortcut. */
    atomic_store_explicit(&s->drained_at, 0, memory_order_relaxed);
    atomic_store_explicit(&s->words.read_end, false, memory_order_relaxed);
    /* Relaxed: the record is ours alone until *out is published. */
    atomic_store_explicit(&s->watched_by, NULL, memory_order_relaxed);
    *out = s;
    return 0;
}

int ox__socket_open(const ox_sockaddr *addr, int type, ox_socket **out)
{
    if (addr == NULL || addr->len < sizeof(sa_family_t) || addr->len > sizeof addr->storage ||
        (addr->storage.ss_family != AF_INET && addr->storage.ss_family != AF_INET6))
        return OX_EINVAL;
    int fd = socket(addr->storage.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ox__io_errno();
    int rc = ox__socket_new(fd, true, out);
    if (rc != 0)
        close(fd);
    else /* TCP: see short_read_drains */
        (*out)->short_read_drains = type == SOCK_STREAM;
    return rc;
}

static void socket_free(ox_socket *s)
{
    ox__spin_lock(&pool_lock);
    s->free_next = pool_free;
    pool_free = s;
    ox__spin_unlock(&pool_lock);
}

/* rt is shutting down (its workers have stopped) and its reactor closes:
 * a socket it watched outlives it, so forget rt there. Otherwise closing
 * the socket would read the freed runtime, and a task of a later runtime
 * would park on the socket trusting a reactor that is gone, forever. */
void ox__io_forget_runtime(ox_runtime *rt)
{
    ox__spin_lock(&pool_lock);
    pool_chunk *chunks = pool_chunks;
    ox__spin_unlock(&pool_lock);
    /* Chunks are only ever added at the head: the list from here on is
     * stable without the lock. */
    for (pool_chunk *c = chunks; c != NULL; c = c->next)
        for (size_t i = 0; i < POOL_CHUNK; i++) {
            ox_runtime *expected = rt;
            /* Release: pairs with the acquire loads in watch() and
             * ox_socket_close, as the store in watch() does. */
            (void)atomic_compare_exchange_strong_explicit(&c->records[i].watched_by, &expected,
                                                          NULL, memory_order_release,
                                                          memory_order_relaxed);
        }
}

/* ---- waiting ---- */

/* Has rt's reactor watch s, unless some runtime already does.
 *
 * unpollable: epoll refuses (EPERM) a descriptor that poll(2) reports
 * always ready, a regular file or /dev/null handed to ox_socket_from_fd.
 * Its calls never return EAGAIN, so a task simply makes them, as a thread
 * does; the refusal is asked again at each call (one cheap system call). */
static int watch(ox_socket *s, ox_runtime *rt)
{
    /* Acquire: pairs with the CAS below; whoever set it watches s. A task
     * that sees it set before the winner's epoll_ctl is done loses no
     * event: adding a ready descriptor reports it at once. */
    if (atomic_load_explicit(&s->watched_by, memory_order_acquire) != NULL)
        return 0;
    ox_runtime *none = NULL;
    if (!atomic_compare_exchange_strong_explicit(&s->watched_by, &none, rt, memory_order_acq_rel,
                                                 memory_order_acquire))
        return 0;
    int rc = ox__reactor_watch(rt, s->fd, &s->words);
    if (rc != 0)
        atomic_store_explicit(&s->watched_by, NULL, memory_order_release);
    return rc;
}

__attribute__((noinline)) int ox__io_errno(void)
{
    int e = errno;
    /* So that the compiler cannot find the function pure and merge two
     * calls on either side of a park (io_internal.h says why it matters). */
    __asm__ volatile("" ::: "memory");
    return e != 0 ? e : EIO;
}

/* Whether a task may wait for s's next read event without reading first:
 * the last read was short on a socket whose short reads drain it, and the
 * read word has not moved since it was loaded before that read. Then the
 * read would fail with EAGAIN (as Tokio's PollEvented clears readiness
 * after a short read: one system call in three of an echo round trip).
 * Data that came after that read sent an edge after it, which moves the
 * word (so a wait on `seen` returns at once). But data that was already
 * there and that a short read stops before (urgent data's mark), or an
 * end of data (a peer's shutdown, an error) that came with the data,
 * sends no other edge: the reactor marks those (read_end), and the mark
 * is seen here whenever the bump that reported it is. */
static bool read_would_block(ox_socket *s, size_t drain_want, uint32_t seen)
{
    /* Relaxed: the caller's acquire load of seen orders both. A word at
     * UINT32_MAX would match drained_at's 0 ("no short read"): read then. */
    return drain_want != 0 && seen != UINT32_MAX &&
           atomic_load_explicit(&s->drained_at, memory_order_relaxed) == seen + 1 &&
           !atomic_load_explicit(&s->words.read_end, memory_order_relaxed);
}

int ox__io_run(ox_socket *s, int dir, ox_instant deadline, ox__io_attempt attempt, void *ctx,
               size_t want, ssize_t *result)
{
    ox_runtime *rt = ox__runtime_current();
    if (rt != NULL) {
        int rc = watch(s, rt);
        if (rc == EPERM)
            rt = NULL; /* never waits: see unpollable */
        else if (rc != 0)
            return rc;
    }
    /* The read's size where a short read drains s (TCP), else 0. */
    size_t drain_want = s->short_read_drains ? want : 0;
    int rc;
    for (;;) {
        /* Acquire: with the reactor's release bump, shows its read_end
         * (read_would_block). The word is loaded before the attempt; an
         * event after the attempt's EAGAIN moves it later, and the parking
         * lot orders that against the park (reactor.c). */
        uint32_t seen = atomic_load_explicit(&s->words.seq[dir], memory_order_acquire);
        if (rt == NULL || !read_would_block(s, drain_want, seen)) {
            ssize_t r = attempt(s->fd, ctx);
            if (r >= 0) {
                /* Relaxed: only this socket's readers use it, as a hint
                 * checked against the word. */
                if (drain_want != 0)
                    atomic_store_explicit(&s->drained_at,
                                          r > 0 && (size_t)r < drain_want ? seen + 1 : 0,
                                          memory_order_relaxed);
                *result = r;
                rc = 0;
                break;
            }
            int err = ox__io_errno(); /* not errno: see ox__io_errno */
            if (err == EINTR)
                continue;
            if (err != EAGAIN && err != EWOULDBLOCK) {
                rc = err;
                break;
            }
        }
        if (rt != NULL) {
            /* Entered after the attempt: the reactor bumps this word
             * whether or not it sees us, and the park checks it. */
            ox__io_words_enter(&s->words, dir);
            rc = ox__park_wait(&s->words.seq[dir], seen, deadline, &wait_sites[dir], s);
            ox__io_words_leave(&s->words, dir);
        } else {
            rc = ox__park_wait_fd(s->fd, sys_events[dir], deadline, &wait_sites[dir], s);
        }
        if (rc != 0)
            break;
    }
    return rc;
}

static bool ready_now(int fd, unsigned events)
{
    return ox__sys_fd_wait(fd, events, 0) == 0;
}

/* In a task: waits for a move of words' seq for events (one direction or
 * both), having checked that fd is not ready already. */
static int task_wait_ready(ox_socket *s, unsigned events, ox_instant deadline)
{
    int dir = events == OX__SYS_READABLE   ? OX__IO_READ
              : events == OX__SYS_WRITABLE ? OX__IO_WRITE
                                           : OX__IO_ANY;
    ox__io_words_enter(&s->words, dir); /* before the look at fd (reactor.c) */
    /* Relaxed: as in ox__io_run. */
    uint32_t seen = atomic_load_explicit(&s->words.seq[dir], memory_order_relaxed);
    int rc = ready_now(s->fd, events)
                 ? 0
                 : ox__park_wait(&s->words.seq[dir], seen, deadline, &wait_sites[dir], s);
    ox__io_words_leave(&s->words, dir);
    return rc;
}

static int check_events(unsigned events)
{
    return events != 0 && (events & ~(OX_IO_READABLE | OX_IO_WRITABLE)) == 0 ? 0 : OX_EINVAL;
}

/* OX_IO_* and OX__SYS_* have the same values. */
_Static_assert(OX_IO_READABLE == OX__SYS_READABLE && OX_IO_WRITABLE == OX__SYS_WRITABLE,
               "readiness masks");

int ox__io_wait_ready(ox_socket *s, unsigned events, ox_instant deadline)
{
    ox_runtime *rt = ox__runtime_current();
    if (rt == NULL)
        return ox__park_wait_fd(s->fd, events, deadline, &wait_sites[OX__IO_ANY], s);
    int rc = watch(s, rt);
    if (rc == EPERM)
        return 0; /* always ready: see unpollable */
    return rc != 0 ? rc : task_wait_ready(s, events, deadline);
}

int ox_socket_wait(ox_socket *s, unsigned events, ox_instant deadline)
{
    int rc = check_events(events);
    return rc != 0 ? rc : ox__io_wait_ready(s, events, deadline);
}

int ox_fd_wait(int fd, unsigned events, ox_instant deadline)
{
    int rc = check_events(events);
    if (rc != 0)
        return rc;
    ox_runtime *rt = ox__runtime_current();
    if (rt == NULL)
        return ox__park_wait_fd(fd, events, deadline, &wait_sites[OX__IO_ANY], NULL);
    /* Ready already: done, also in an aborted task (only a wait is a
     * cancellation point), and with no watch to set up. */
    if (ready_now(fd, events))
        return 0;
    /* The caller's fd may be watched already (as an ox_socket, or by a
     * task waiting here too), and the reactor keys on descriptors: watch a
     * duplicate of it, once, from a record of our own. */
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0)
        return ox__io_errno();
    ox_socket *s;
    rc = ox__socket_new(dup, false, &s);
    if (rc != 0) {
        close(dup);
        return rc;
    }
    ox__io_words_enter(&s->words, OX__IO_ANY);
    uint32_t seen = atomic_load_explicit(&s->words.seq[OX__IO_ANY], memory_order_relaxed);
    rc = ox__reactor_watch_once(rt, dup, events, &s->words);
    if (rc == 0) {
        rc =
            ox__park_wait(&s->words.seq[OX__IO_ANY], seen, deadline, &wait_sites[OX__IO_ANY], NULL);
        ox__reactor_unwatch(rt, dup);
    }
    ox__io_words_leave(&s->words, OX__IO_ANY);
    close(dup);
    socket_free(s);
    return rc;
}

/* ---- records ---- */

int ox_socket_from_fd(int fd, ox_socket **out)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return ox__io_errno();
    int type;
    socklen_t len = sizeof type;
    bool is_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
    return ox__socket_new(fd, is_socket, out);
}

int ox_socket_fd(const ox_socket *s)
{
    return s->fd;
}

int ox_socket_local_addr(const ox_socket *s, ox_sockaddr *out)
{
    out->len = sizeof out->storage;
    return getsockname(s->fd, (struct sockaddr *)&out->storage, &out->len) == 0 ? 0
                                                                                : ox__io_errno();
}

int ox_socket_peer_addr(const ox_socket *s, ox_sockaddr *out)
{
    out->len = sizeof out->storage;
    return getpeername(s->fd, (struct sockaddr *)&out->storage, &out->len) == 0 ? 0
                                                                                : ox__io_errno();
}

int ox_socket_shutdown(ox_socket *s, int how)
{
    return shutdown(s->fd, how) == 0 ? 0 : ox__io_errno();
}

void ox_socket_close(ox_socket *s)
{
    if (s == NULL)
        return;
    /* Acquire: pairs with watch()'s CAS. Unwatch explicitly: the kernel
     * drops a watch only when the last duplicate of fd is closed. */
    ox_runtime *rt = atomic_load_explicit(&s->watched_by, memory_order_acquire);
    if (rt != NULL)
        ox__reactor_unwatch(rt, s->fd);
    close(s->fd);
    socket_free(s);
}
