/* Attempts to break the reactor and sockets: each test here reproduced a
 * bug before its fix (see the comment on each). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- a pipe whose reader has gone: EPIPE, not SIGPIPE ---- */

static void *write_to_closed_pipe(void *arg)
{
    (void)arg;
    int p[2];
    CHECK_EQ(pipe(p), 0);
    close(p[0]);
    ox_socket *w;
    CHECK_EQ(ox_socket_from_fd(p[1], &w), 0);
    size_t n = 99;
    CHECK_EQ(ox_socket_write(w, "x", 1, &n), EPIPE);
    CHECK_EQ(ox_socket_write_all(w, "xy", 2), EPIPE);
    /* No SIGPIPE left pending either, to strike when the caller unblocks it. */
    sigset_t pending;
    CHECK_EQ(sigpending(&pending), 0);
    CHECK(!sigismember(&pending, SIGPIPE));
    ox_socket_close(w);
    return NULL;
}

OX_TEST(io_break_pipe_write_after_reader_closed_is_epipe_in_a_thread)
{
    write_to_closed_pipe(NULL);
}

OX_TEST(io_break_pipe_write_after_reader_closed_is_epipe_in_a_task)
{
    ox_test_run_alone(1, write_to_closed_pipe, NULL);
}

/* ---- ox_fd_wait in an aborted task, fd ready: completes ---- */

typedef struct ready_job {
    int fd;
    atomic_int started;
} ready_job;

static void *fd_wait_after_abort(void *arg)
{
    ready_job *j = arg;
    atomic_store(&j->started, 1);
    while (ox_task_sleep(OX_SECS(60)) != OX_ECANCELED)
        ;
    /* Readable already: the wait can complete at once, so it does. */
    CHECK_EQ(ox_fd_wait(j->fd, OX_IO_READABLE, OX_INSTANT_NEVER), 0);
    return NULL;
}

OX_TEST(io_break_fd_wait_in_an_aborted_task_completes_when_ready)
{
    ox_runtime *rt = ox_test_runtime(1);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    ready_job j = {.fd = sv[0]};
    ox_task_handle h = ox_test_spawn_on(rt, fd_wait_after_abort, &j);
    while (!atomic_load(&j.started))
        ox_thread_yield();
    ox_task_abort(&h);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    close(sv[0]);
    close(sv[1]);
    ox_runtime_shutdown(rt);
}

/* ---- a regular file handed over: works in a task as in a thread ---- */

static void *write_dev_null(void *arg)
{
    (void)arg;
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    ox_socket *s;
    CHECK_EQ(ox_socket_from_fd(fd, &s), 0);
    CHECK_EQ(ox_socket_write_all(s, "hello", 5), 0);
    CHECK_EQ(ox_socket_wait(s, OX_IO_WRITABLE, OX_INSTANT_NEVER), 0);
    ox_socket_close(s);
    return NULL;
}

OX_TEST(io_break_dev_null_in_a_thread)
{
    write_dev_null(NULL);
}

OX_TEST(io_break_dev_null_in_a_task)
{
    ox_test_run_alone(1, write_dev_null, NULL);
}

/* ---- a socket that outlives the runtime whose task waited on it ---- */

static void *accept_briefly(void *arg)
{
    ox_socket *l = arg;
    ox_socket *c;
    CHECK_EQ(ox_tcp_accept_deadline(l, &c, NULL, ox_instant_after(OX_MILLIS(1))), OX_ETIMEDOUT);
    return NULL;
}

OX_TEST(io_break_socket_closed_after_its_runtime_shut_down)
{
    ox_sockaddr addr;
    ox_socket *l = ox_test_listen("127.0.0.1:0", &addr);
    ox_test_run_alone(1, accept_briefly, l);
    ox_socket_close(l);
}

/* ...and is then used by a task of a second runtime. */
typedef struct accept_job {
    ox_socket *l;
    ox_sockaddr addr;
} accept_job;

static void *accept_one(void *arg)
{
    accept_job *j = arg;
    ox_socket *c;
    CHECK_EQ(ox_tcp_accept(j->l, &c, NULL), 0);
    ox_socket_close(c);
    return NULL;
}

OX_TEST_OPTS(io_break_socket_used_by_a_second_runtime_after_the_first, .timeout_s = 10)
{
    accept_job j;
    j.l = ox_test_listen("127.0.0.1:0", &j.addr);
    ox_test_run_alone(1, accept_briefly, j.l);

    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h = ox_test_spawn_on(rt, accept_one, &j);
    ox_thread_sleep(OX_MILLIS(20)); /* let it park (not needed to fail) */
    ox_socket *c;
    CHECK_EQ(ox_tcp_connect(&j.addr, &c), 0);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    ox_socket_close(c);
    ox_runtime_shutdown(rt);
    ox_socket_close(j.l);
}

/* ---- probes that held (kept as tests) ---- */

static void *thread_reads(void *arg)
{
    ox_socket *s = arg;
    char b;
    size_t n;
    CHECK_EQ(ox_socket_read(s, &b, 1, &n), 0);
    CHECK_EQ(n, 1u);
    return NULL;
}

OX_TEST(io_break_blocked_dump_shows_a_thread_in_a_socket_read)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ox_socket *s;
    CHECK_EQ(ox_socket_from_fd(sv[0], &s), 0);
    ox_join_handle h = ox_thread_spawn(thread_reads, s);
    FILE *f = tmpfile();
    CHECK(f != NULL);
    char text[4096] = "";
    while (strstr(text, "socket read") == NULL) {
        CHECK(ftruncate(fileno(f), 0) == 0);
        rewind(f);
        (void)ox_dump_blocked_threads(f);
        fflush(f);
        rewind(f);
        size_t got = fread(text, 1, sizeof text - 1, f);
        text[got] = '\0';
        ox_thread_sleep(OX_MILLIS(1));
    }
    CHECK_EQ(write(sv[1], "x", 1), 1);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    fclose(f);
    ox_socket_close(s);
    close(sv[1]);
}

enum { WAITERS = 24, ROUNDS = 50 };

typedef struct fd_waiters {
    int fd;
    atomic_int entered;
} fd_waiters;

static void *wait_readable(void *arg)
{
    fd_waiters *w = arg;
    atomic_fetch_add(&w->entered, 1);
    CHECK_EQ(ox_fd_wait(w->fd, OX_IO_READABLE, OX_INSTANT_NEVER), 0);
    return NULL;
}

OX_TEST(io_break_many_tasks_fd_wait_on_one_fd_all_wake)
{
    ox_runtime *rt = ox_test_runtime(2);
    for (int round = 0; round < ROUNDS; round++) {
        int sv[2];
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        fd_waiters w = {.fd = sv[0]};
        ox_task_handle h[WAITERS];
        for (int i = 0; i < WAITERS; i++)
            h[i] = ox_test_spawn_on(rt, wait_readable, &w);
        while (atomic_load(&w.entered) < WAITERS / 2 + round % (WAITERS / 2))
            ox_thread_yield();
        CHECK_EQ(write(sv[1], "x", 1), 1);
        for (int i = 0; i < WAITERS; i++)
            CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
        close(sv[0]);
        close(sv[1]);
    }
    ox_runtime_shutdown(rt);
}

typedef struct shared_reader {
    ox_socket *s;
    atomic_long bytes;
} shared_reader;

static void *read_until_eof(void *arg)
{
    shared_reader *r = arg;
    char buf[7];
    size_t n;
    while (ox_socket_read(r->s, buf, sizeof buf, &n) == 0 && n > 0)
        atomic_fetch_add(&r->bytes, (long)n);
    return NULL;
}

OX_TEST(io_break_two_tasks_read_one_socket_every_byte_once)
{
    enum { TOTAL = 20000 };
    ox_runtime *rt = ox_test_runtime(2);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    shared_reader r = {0};
    CHECK_EQ(ox_socket_from_fd(sv[0], &r.s), 0);
    ox_task_handle a = ox_test_spawn_on(rt, read_until_eof, &r),
                   b = ox_test_spawn_on(rt, read_until_eof, &r);
    for (int i = 0; i < TOTAL; i++)
        CHECK_EQ(write(sv[1], "y", 1), 1);
    CHECK_EQ(shutdown(sv[1], SHUT_WR), 0);
    CHECK_EQ(ox_task_join(&a, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&b, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&r.bytes), (long)TOTAL);
    ox_socket_close(r.s);
    close(sv[1]);
    ox_runtime_shutdown(rt);
}

typedef struct abort_read {
    ox_socket *s;
    atomic_int started;
} abort_read;

static void *read_after_abort(void *arg)
{
    abort_read *j = arg;
    atomic_store(&j->started, 1);
    while (ox_task_sleep(OX_SECS(60)) != OX_ECANCELED)
        ;
    char b[2];
    size_t n;
    CHECK_EQ(ox_socket_read(j->s, b, 2, &n), 0); /* data waits: completes */
    CHECK_EQ(n, 2u);
    CHECK_EQ(ox_socket_wait(j->s, OX_IO_READABLE | OX_IO_WRITABLE, OX_INSTANT_NEVER), 0);
    CHECK_EQ(ox_socket_read(j->s, b, 2, &n), OX_ECANCELED); /* would wait */
    return NULL;
}

OX_TEST(io_break_aborted_task_read_completes_when_data_waits)
{
    ox_runtime *rt = ox_test_runtime(1);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    abort_read j = {0};
    CHECK_EQ(ox_socket_from_fd(sv[0], &j.s), 0);
    CHECK_EQ(write(sv[1], "ab", 2), 2);
    ox_task_handle h = ox_test_spawn_on(rt, read_after_abort, &j);
    while (!atomic_load(&j.started))
        ox_thread_yield();
    ox_task_abort(&h);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    ox_socket_close(j.s);
    close(sv[1]);
    ox_runtime_shutdown(rt);
}

/* ---- a short read, then what no new edge announces ----
 * A task that read less than it asked for from a TCP socket waits for the
 * next read event instead of reading again into EAGAIN (ox__io_run). That
 * holds only if the short read took all there was. Two things break it,
 * each with an event that the reactor may handle before the short read
 * (here: the reader sleeps first, so the one worker's poller takes it):
 * a peer's shutdown that came with the data (the next read returns 0 at
 * once, and no other edge comes), and urgent data, whose mark stops a
 * read with data still queued behind it. The reactor marks both
 * (read_end); without the mark, each next read below waited for its
 * deadline. */
typedef struct short_read_job {
    ox_socket *listener;
    char got[16];
    size_t total, expect; /* reads until expect bytes, an end or an error */
    int last_rc;
} short_read_job;

static void *read_all_after_the_events(void *arg)
{
    short_read_job *j = arg;
    ox_socket *c;
    CHECK_EQ(ox_tcp_accept(j->listener, &c, NULL), 0);
    ox_instant deadline = ox_instant_after(OX_SECS(5));
    /* Watched from here (the data is there: no wait), so that the poller
     * handles the events while we sleep, before the first read. */
    CHECK_EQ(ox_socket_wait(c, OX_IO_READABLE, deadline), 0);
    CHECK_EQ(ox_task_sleep(OX_MILLIS(50)), 0);
    for (;;) {
        size_t n = 0;
        j->last_rc =
            ox_socket_read_deadline(c, j->got + j->total, sizeof j->got - j->total, &n, deadline);
        if (j->last_rc != 0 || n == 0)
            break;
        j->total += n;
        if (j->total >= j->expect)
            break;
    }
    ox_socket_close(c);
    return NULL;
}

static void short_read_then(bool urgent)
{
    ox_sockaddr addr;
    short_read_job j = {.expect = urgent ? 4 : sizeof j.got};
    j.listener = ox_test_listen("127.0.0.1:0", &addr);
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h = ox_test_spawn_on(rt, read_all_after_the_events, &j);
    ox_socket *peer;
    CHECK_EQ(ox_tcp_connect(&addr, &peer), 0);
    int fd = ox_socket_fd(peer);
    CHECK_EQ(send(fd, "ab", 2, 0), 2);
    if (urgent) { /* and no shutdown: its event would mark the socket too */
        CHECK_EQ(send(fd, "X", 1, MSG_OOB), 1); /* out of band: not in the stream */
        CHECK_EQ(send(fd, "cd", 2, 0), 2);
    } else {
        CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    }
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    CHECK_EQ(j.last_rc, 0); /* was OX_ETIMEDOUT */
    CHECK_EQ(j.total, urgent ? 4u : 2u);
    CHECK(memcmp(j.got, urgent ? "abcd" : "ab", j.total) == 0);
    ox_socket_close(peer);
    ox_socket_close(j.listener);
    ox_runtime_shutdown(rt);
}

OX_TEST_OPTS(io_break_short_read_then_the_peers_shutdown_reads_eof, .timeout_s = 20)
{
    short_read_then(false);
}

OX_TEST_OPTS(io_break_short_read_stopped_by_urgent_data_reads_the_rest, .timeout_s = 20)
{
    short_read_then(true);
}
