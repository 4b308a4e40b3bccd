/* The blocked-thread dump (src/check/blocked.c, the registry in park.c):
 * called from signal handlers, read while the threads it prints keep
 * locking, and what it says about a blocked channel receiver. (The basic
 * output is covered in tests/test_lockdep.c.) */
#define _GNU_SOURCE /* fopencookie */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- issue 17 #1: a dump from a signal handler never waits for itself ---- */

static int handler_fd = -1;
static FILE *handler_file;
static volatile sig_atomic_t handler_rc_fd = 99, handler_rc_file = 99, handler_runs;

static void dump_in_handler(int signo)
{
    (void)signo;
    handler_rc_fd = ox_dump_blocked_threads_fd(handler_fd);
    handler_rc_file = ox_dump_blocked_threads(handler_file);
    handler_runs++;
}

/* A stream that raises the signal from inside the dump's first write: the
 * handler then runs on a thread that holds the thread registry. */
static volatile sig_atomic_t raised;

static ssize_t raise_on_write(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    (void)buf;
    if (!raised) {
        raised = 1;
        raise(SIGUSR2);
    }
    return (ssize_t)size;
}

OX_TEST_OPTS(blocked_dump_in_a_handler_that_interrupted_its_own_dump, .timeout_s = 20)
{
    FILE *fd_out = tmpfile();
    CHECK(fd_out != NULL);
    handler_fd = fileno(fd_out);
    handler_file = fopen("/dev/null", "w");
    CHECK(handler_file != NULL);
    /* The handler owns this stream (stdio in a handler is the caller's
     * business); unbuffered, so that no write allocates in the handler. */
    CHECK_EQ(setvbuf(handler_file, NULL, _IONBF, 0), 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dump_in_handler;
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(SIGUSR2, &sa, NULL), 0);

    _Atomic int done = 0;
    ox_join_handle p = ox_test_spawn_named("parked one", ox_test_park_until_done, &done);
    ox_test_wait_any_blocked(1);
    FILE *f = fopencookie(NULL, "w", (cookie_io_functions_t){.write = raise_on_write});
    CHECK(f != NULL);
    CHECK_EQ(setvbuf(f, NULL, _IONBF, 0), 0);
    CHECK_EQ(ox_dump_blocked_threads(f), 1); /* the handler ran inside it, and returned */
    fclose(f);
    CHECK_EQ(handler_runs, 1);
    CHECK_EQ(handler_rc_fd, -1);
    CHECK_EQ(handler_rc_file, -1);

    char text[512] = {0};
    CHECK(pread(handler_fd, text, sizeof text - 1, 0) > 0);
    CHECK_CONTAINS(text, "oxide: threads blocked in oxide:\n  (skipped: this thread is inside "
                         "the thread registry");
    /* Outside the registry, the same handler dumps in full. */
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(handler_rc_fd, 1);
    CHECK_EQ(handler_rc_file, 1);

    atomic_store_explicit(&done, 1, memory_order_release);
    ox_thread_unpark(ox_join_handle_thread(&p));
    ox_test_join(&p);
    fclose(handler_file);
    fclose(fd_out);
}

/* The review's program: a timer signal whose handler dumps, while this
 * thread dumps in a loop and other threads start, block and exit (registry
 * link and unlink). It hung within two dumps. */
static _Atomic int churning = 1;

static void *block_briefly_then_exit(void *arg)
{
    (void)arg;
    (void)ox_thread_park_timeout(OX_MICROS(20));
    return NULL;
}

static void *spawn_short_lived(void *arg)
{
    (void)arg;
    while (atomic_load_explicit(&churning, memory_order_acquire)) {
        ox_join_handle h = ox_thread_spawn(block_briefly_then_exit, NULL);
        ox_test_join(&h);
    }
    return NULL;
}

static void count_dump(int signo)
{
    (void)signo;
    if (ox_dump_blocked_threads_fd(handler_fd) >= 0)
        handler_runs++;
}

OX_TEST_OPTS(blocked_dump_from_a_timer_signal_while_dumping, .timeout_s = 60)
{
    handler_fd = open("/dev/null", O_WRONLY);
    CHECK(handler_fd >= 0);
    FILE *null = fopen("/dev/null", "w");
    CHECK(null != NULL);
    /* Only this thread takes the timer signal: the others inherit a mask
     * that blocks it. */
    sigset_t alrm;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &alrm, NULL), 0);
    ox_join_handle spawners[2];
    for (int i = 0; i < 2; i++)
        spawners[i] = ox_thread_spawn(spawn_short_lived, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_dump;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    CHECK_EQ(sigaction(SIGALRM, &sa, NULL), 0);
    struct itimerval every = {{0, 200}, {0, 200}}, off = {{0, 0}, {0, 0}};
    CHECK_EQ(setitimer(ITIMER_REAL, &every, NULL), 0);
    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &alrm, NULL), 0);
    long dumps = ox_test_scaled(3000);
    /* At least that many, and until a handler's dump went through: a scaled
     * count (CHAOS=1 runs 150) can end before the 200 us timer fires. */
    for (long i = 0; i < dumps || handler_runs == 0; i++)
        CHECK(ox_dump_blocked_threads(null) >= 0); /* this thread is never inside */
    CHECK_EQ(setitimer(ITIMER_REAL, &off, NULL), 0);
    atomic_store_explicit(&churning, 0, memory_order_release);
    for (int i = 0; i < 2; i++)
        ox_test_join(&spawners[i]);
    CHECK(handler_runs > 0);
    fclose(null);
    close(handler_fd);
}

/* ---- issue 17 #2: a consistent snapshot of threads that keep locking ----
 * Four threads take nested mutexes in a consistent order (contended: they
 * block and wake all the time) while this thread dumps in a loop. Every
 * lock the dump names must be one of ours, taken at one of our lines: a
 * torn entry would show another address, kind or line. ThreadSanitizer
 * checks that the dump's reads are synchronised. */
static ox_mutex nested[4] = {OX_MUTEX_INIT, OX_MUTEX_INIT, OX_MUTEX_INIT, OX_MUTEX_INIT};
#define CHURN_FILE "churn.c" /* the sites the lockers claim: line 1 or line 2 */

static void *lock_nested(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (atomic_load_explicit(&churning, memory_order_acquire)) {
        seed = seed * 1103515245u + 12345u;
        int first = (int)(seed >> 16) % 3;
        CHECK_EQ(ox_mutex_lock_at(&nested[first], CHURN_FILE, 1), 0);
        for (int k = first + 1; k < 4; k++)
            CHECK_EQ(ox_mutex_lock_at(&nested[k], CHURN_FILE, 2), 0);
        for (int k = 3; k >= first; k--)
            ox_mutex_unlock(&nested[k]);
    }
    return NULL;
}

static bool is_ours(const void *p)
{
    for (int i = 0; i < 4; i++)
        if (p == (const void *)&nested[i])
            return true;
    return false;
}

/* Checks every line of one dump; returns the number of "holding" lines. */
static int check_dump(char *text)
{
    int holding = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        void *p;
        char file[256];
        int at;
        if (sscanf(line, "    holding mutex %p, locked at %255[^:]:%d", &p, file, &at) == 3) {
            if (!is_ours(p) || strcmp(file, CHURN_FILE) != 0 || (at != 1 && at != 2))
                ox_test_fail(__FILE__, __LINE__, "a torn entry: \"%s\"", line);
            holding++;
        } else if (strstr(line, "holding") != NULL) {
            ox_test_fail(__FILE__, __LINE__, "a torn entry: \"%s\"", line);
        } else if (strstr(line, "blocked on") != NULL) {
            if (sscanf(line,
                       "  thread '<unnamed>' (id %*u) blocked on mutex %p, called at %255[^:]:%d",
                       &p, file, &at) != 3 ||
                !is_ours(p) || strcmp(file, CHURN_FILE) != 0 || (at != 1 && at != 2))
                ox_test_fail(__FILE__, __LINE__, "a torn wait: \"%s\"", line);
        }
    }
    return holding;
}

OX_TEST_OPTS(blocked_dump_reads_a_consistent_snapshot_of_locking_threads, .timeout_s = 60)
{
    atomic_store_explicit(&churning, 1, memory_order_release);
    ox_join_handle t[4];
    for (int i = 0; i < 4; i++)
        t[i] = ox_thread_spawn(lock_nested, (void *)(uintptr_t)(i + 1));
    long dumps = ox_test_scaled(4000), holding = 0;
    for (long i = 0; i < dumps; i++) {
        int count;
        char *text = ox_test_dump_blocked(&count);
        CHECK(count >= 0 && count <= 4);
        holding += check_dump(text);
        free(text);
    }
    atomic_store_explicit(&churning, 0, memory_order_release);
    for (int i = 0; i < 4; i++)
        ox_test_join(&t[i]);
    printf("%ld held locks seen in %ld dumps\n", holding, dumps);
}

/* ---- issue 10 6: a blocked receiver's call site and live senders ---- */

static int recv_line;

static void *receive_one(void *rx)
{
    uint64_t v;
    recv_line = __LINE__ + 1;
    CHECK_EQ(ox_receiver_recv(rx, &v), 0);
    CHECK_EQ(v, 7);
    return NULL;
}

OX_TEST(blocked_dump_shows_a_receivers_call_site_and_live_senders)
{
    size_t caps[] = {OX_UNBOUNDED, 4, 0};
    for (int k = 0; k < 3; k++) {
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(uint64_t), caps[k], &tx, &rx), 0);
        ox_sender *tx2 = ox_sender_clone(tx);
        ox_join_handle h = ox_test_spawn_named("rx", receive_one, rx);
        ox_test_wait_any_blocked(1);
        int count;
        char *text = ox_test_dump_blocked(&count);
        CHECK_EQ(count, 1);
        char expect[512];
        snprintf(expect, sizeof expect, "thread 'rx' (id %llu) blocked on channel recv ",
                 (unsigned long long)ox_thread_id(ox_join_handle_thread(&h)));
        CHECK_CONTAINS(text, expect);
        snprintf(expect, sizeof expect, ", called at %s:%d (2 senders still alive)\n", __FILE__,
                 recv_line);
        CHECK_CONTAINS(text, expect);
        free(text);

        ox_sender_drop(tx2); /* the usual culprit: one sender nobody dropped */
        text = ox_test_dump_blocked(&count);
        snprintf(expect, sizeof expect, ", called at %s:%d (1 sender still alive)\n", __FILE__,
                 recv_line);
        CHECK_CONTAINS(text, expect);
        free(text);

        uint64_t v = 7;
        CHECK_EQ(ox_sender_send(tx, &v), 0);
        ox_test_join(&h);
        ox_sender_drop(tx);
        ox_receiver_drop(rx);
    }
}
