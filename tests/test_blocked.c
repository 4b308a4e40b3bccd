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

/* ---- issue 13: blocked tasks are in the dump ----
 * Three tasks on two workers: 'holder' holds task_outer while it waits on
 * a condvar (with task_inner), 'waiter' waits for task_outer, 'rx' waits on
 * a channel. Each is listed as a task, with its name and id, its wait site
 * and call site, and the locks it holds. */
static ox_mutex task_outer = OX_MUTEX_INIT, task_inner = OX_MUTEX_INIT;
static ox_condvar task_cv = OX_CONDVAR_INIT;
static bool task_go; /* under task_inner */
static int holder_line, waiter_line, task_recv_line, cv_line;

static void *hold_outer_then_wait(void *arg)
{
    (void)arg;
    holder_line = __LINE__ + 1;
    CHECK_EQ(ox_mutex_lock(&task_outer), 0);
    CHECK_EQ(ox_mutex_lock(&task_inner), 0);
    while (!task_go) {
        cv_line = __LINE__ + 1;
        CHECK_EQ(ox_condvar_wait(&task_cv, &task_inner), 0);
    }
    ox_mutex_unlock(&task_inner);
    ox_mutex_unlock(&task_outer);
    return NULL;
}

static void *wait_for_outer(void *arg)
{
    (void)arg;
    waiter_line = __LINE__ + 1;
    CHECK_EQ(ox_mutex_lock(&task_outer), 0);
    ox_mutex_unlock(&task_outer);
    return NULL;
}

static void *task_receive_one(void *rx)
{
    uint64_t v;
    task_recv_line = __LINE__ + 1;
    CHECK_EQ(ox_receiver_recv(rx, &v), 0);
    CHECK_EQ(v, 9);
    return NULL;
}

/* The same dump through the fd variant (what a signal handler uses). */
static char *dump_fd_text(int *count)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    *count = ox_dump_blocked_threads_fd(fileno(f));
    long n = lseek(fileno(f), 0, SEEK_END);
    CHECK(n > 0);
    char *text = calloc((size_t)n + 1, 1);
    CHECK(text != NULL);
    CHECK_EQ(pread(fileno(f), text, (size_t)n, 0), n);
    fclose(f);
    return text;
}

static void check_task_lines(const char *text, ox_task_handle *hs)
{
    char expect[512];
    snprintf(expect, sizeof expect,
             "  task 'holder' (id %llu) blocked on condvar %p\n"
             "    holding mutex %p, locked at %s:%d\n",
             (unsigned long long)ox_task_id(hs[0].task), (void *)&task_cv, (void *)&task_outer,
             __FILE__, holder_line);
    CHECK_CONTAINS(text, expect);
    snprintf(
        expect, sizeof expect, "  task 'waiter' (id %llu) blocked on mutex %p, called at %s:%d\n",
        (unsigned long long)ox_task_id(hs[1].task), (void *)&task_outer, __FILE__, waiter_line);
    CHECK_CONTAINS(text, expect);
    snprintf(expect, sizeof expect, "  task 'rx' (id %llu) blocked on channel recv ",
             (unsigned long long)ox_task_id(hs[2].task));
    CHECK_CONTAINS(text, expect);
    snprintf(expect, sizeof expect, ", called at %s:%d (1 sender still alive)\n", __FILE__,
             task_recv_line);
    CHECK_CONTAINS(strstr(text, "  task 'rx'"), expect);
}

OX_TEST_OPTS(blocked_dump_lists_tasks_with_site_and_held_locks, .timeout_s = 60)
{
    ox_runtime_builder rb = OX_RUNTIME_BUILDER_INIT;
    rb.workers = 2;
    ox_runtime *rt;
    CHECK_EQ(ox_runtime_new(&rb, &rt), 0);
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(uint64_t), 4, &tx, &rx), 0);
    ox_task_handle hs[3];
    hs[0] = ox_test_spawn_named_on(rt, "holder", hold_outer_then_wait, NULL);
    ox_test_wait_blocked_on(&task_cv, 1); /* holds task_outer from here on */
    hs[1] = ox_test_spawn_named_on(rt, "waiter", wait_for_outer, NULL);
    hs[2] = ox_test_spawn_named_on(rt, "rx", task_receive_one, rx);
    ox_test_wait_blocked_on(&task_outer, 1);
    ox_test_wait_blocked_at("channel recv", 1);

    int count;
    char *text = ox_test_dump_blocked(&count);
    CHECK(count >= 3); /* and the idle workers, as threads */
    check_task_lines(text, hs);
    free(text);
    text = dump_fd_text(&count);
    CHECK(count >= 3);
    check_task_lines(text, hs);
    free(text);

    CHECK_EQ(ox_mutex_lock(&task_inner), 0);
    task_go = true;
    ox_condvar_notify_all(&task_cv);
    ox_mutex_unlock(&task_inner);
    uint64_t v = 9;
    CHECK_EQ(ox_sender_send(tx, &v), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    text = ox_test_dump_blocked(&count);
    CHECK(strstr(text, "  task '") == NULL); /* none is left blocked */
    free(text);
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
    ox_runtime_shutdown(rt);
}

/* Tasks that keep taking nested mutexes (contended: they suspend and are
 * woken all the time, and move between the two workers) while this thread
 * dumps in a loop: every task line and every lock it names must be one of
 * ours at one of our lines, as for threads above. ThreadSanitizer checks
 * that reading a blocked task's record is synchronised with the task. */
static _Atomic long task_holding_seen;

static void check_task_dump(char *text)
{
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        void *p;
        char file[256];
        int at;
        if (sscanf(line, "    holding mutex %p, locked at %255[^:]:%d", &p, file, &at) == 3) {
            if (!is_ours(p) || strcmp(file, CHURN_FILE) != 0 || (at != 1 && at != 2))
                ox_test_fail(__FILE__, __LINE__, "a torn entry: \"%s\"", line);
            atomic_fetch_add_explicit(&task_holding_seen, 1, memory_order_relaxed);
        } else if (strstr(line, "holding") != NULL) {
            ox_test_fail(__FILE__, __LINE__, "a torn entry: \"%s\"", line);
        } else if (strncmp(line, "  task ", 7) == 0) {
            if (sscanf(line, "  task 'churn' (id %*u) blocked on mutex %p, called at %255[^:]:%d",
                       &p, file, &at) != 3 ||
                !is_ours(p) || strcmp(file, CHURN_FILE) != 0 || (at != 1 && at != 2))
                ox_test_fail(__FILE__, __LINE__, "a torn task wait: \"%s\"", line);
        }
    }
}

static void *lock_nested_task(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (atomic_load_explicit(&churning, memory_order_acquire)) {
        seed = seed * 1103515245u + 12345u;
        int first = (int)(seed >> 16) % 3;
        CHECK_EQ(ox_mutex_lock_at(&nested[first], CHURN_FILE, 1), 0);
        for (int k = first + 1; k < 4; k++)
            CHECK_EQ(ox_mutex_lock_at(&nested[k], CHURN_FILE, 2), 0);
        ox_task_yield(); /* let another task queue behind us, maybe on the other worker */
        for (int k = 3; k >= first; k--)
            ox_mutex_unlock(&nested[k]);
    }
    return NULL;
}

OX_TEST_OPTS(blocked_dump_reads_a_consistent_snapshot_of_locking_tasks, .timeout_s = 120)
{
    ox_runtime_builder rb = OX_RUNTIME_BUILDER_INIT;
    rb.workers = 2;
    ox_runtime *rt;
    CHECK_EQ(ox_runtime_new(&rb, &rt), 0);
    atomic_store_explicit(&churning, 1, memory_order_release);
    ox_task_handle t[6];
    for (int i = 0; i < 6; i++)
        t[i] = ox_test_spawn_named_on(rt, "churn", lock_nested_task, (void *)(uintptr_t)(i + 1));
    long dumps = ox_test_scaled(3000), tasks_seen = 0;
    /* At least that many, and until a dump showed a blocked task: a scaled
     * count (CHAOS=1 runs 150) can end before the first task blocks. A
     * dump that never shows one fails by the runner's timeout. */
    for (long i = 0; i < dumps || tasks_seen == 0; i++) {
        int count;
        char *text = ox_test_dump_blocked(&count);
        CHECK(count >= 0);
        if (strstr(text, "  task 'churn'") != NULL)
            tasks_seen++;
        check_task_dump(text);
        free(text);
    }
    atomic_store_explicit(&churning, 0, memory_order_release);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(ox_task_join(&t[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    printf("%ld dumps showed a blocked task, %ld held locks seen\n", tasks_seen,
           atomic_load(&task_holding_seen));
    CHECK(tasks_seen > 0);
}

/* The timer signal's handler dumps on whichever thread it lands: the
 * workers too, maybe while they hold a wait queue's bucket (in the middle
 * of a task's wait, wake or switch). A bucket the interrupted thread holds
 * is skipped after a short wait, never waited for forever. */
static _Atomic long any_thread_dumps;

static void dump_on_any_thread(int signo)
{
    (void)signo;
    if (ox_dump_blocked_threads_fd(handler_fd) >= 0)
        atomic_fetch_add_explicit(&any_thread_dumps, 1, memory_order_relaxed);
}

OX_TEST_OPTS(blocked_dump_from_a_timer_signal_on_workers_running_tasks, .timeout_s = 120)
{
    handler_fd = open("/dev/null", O_WRONLY);
    CHECK(handler_fd >= 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dump_on_any_thread;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    CHECK_EQ(sigaction(SIGALRM, &sa, NULL), 0);
    ox_runtime_builder rb = OX_RUNTIME_BUILDER_INIT;
    rb.workers = 2;
    ox_runtime *rt;
    CHECK_EQ(ox_runtime_new(&rb, &rt), 0);
    atomic_store_explicit(&churning, 1, memory_order_release);
    ox_task_handle t[6];
    for (int i = 0; i < 6; i++)
        t[i] = ox_test_spawn_named_on(rt, "churn", lock_nested_task, (void *)(uintptr_t)(i + 1));
    struct itimerval every = {{0, 500}, {0, 500}}, off = {{0, 0}, {0, 0}};
    CHECK_EQ(setitimer(ITIMER_REAL, &every, NULL), 0);
    long want = ox_test_scaled(2000);
    while (atomic_load_explicit(&any_thread_dumps, memory_order_relaxed) < want)
        ox_thread_sleep(OX_MILLIS(1));
    CHECK_EQ(setitimer(ITIMER_REAL, &off, NULL), 0);
    atomic_store_explicit(&churning, 0, memory_order_release);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(ox_task_join(&t[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    close(handler_fd);
}

/* ---- a thread oxide did not start leaves the registry at its end ----
 * Its record is a thread-local, linked into the registry when it first
 * blocks; the unit layer's exit key must unlink it (the registry's part of
 * a thread's end, src/unit/unit.h), though the thread never asked for an
 * oxide thread record. Left linked, the next thread that glibc gives the
 * same stack links the same record again: the list loops, and a dump
 * hangs or counts threads that are gone. */
static ox_mutex foreign_gate = OX_MUTEX_INIT;

static void *foreign_block_once(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_mutex_lock(&foreign_gate), 0);
    ox_mutex_unlock(&foreign_gate);
    return NULL;
}

OX_TEST_OPTS(blocked_registry_forgets_foreign_threads_that_exit, .timeout_s = 60)
{
    for (int round = 0; round < 20; round++) {
        CHECK_EQ(ox_mutex_lock(&foreign_gate), 0);
        pthread_t t[3];
        for (int i = 0; i < 3; i++)
            CHECK_EQ(pthread_create(&t[i], NULL, foreign_block_once, NULL), 0);
        ox_test_wait_any_blocked(3); /* all three wait for the gate */
        int count;
        char *text = ox_test_dump_blocked(&count);
        CHECK_EQ(count, 3);
        CHECK(strstr(text, "<unnamed>") != NULL);
        free(text);
        ox_mutex_unlock(&foreign_gate);
        for (int i = 0; i < 3; i++)
            CHECK_EQ(pthread_join(t[i], NULL), 0);
        text = ox_test_dump_blocked(&count);
        CHECK_EQ(count, 0); /* gone, and the list still ends */
        free(text);
    }
}
