/* Barrier with more threads than n (n = 2, 3, 4): nobody passes before its
 * round is full. Each wait is an entry (counted before the wait) and an
 * exit (counted after it). An exit means its round ended, and every round
 * that ended had n entries counted, so exits never outrun n * (entries / n):
 * a thread that passed a round still short of arrivals breaks that bound.
 * Many rounds per thread also let the 8-bit generation wrap under a waiter
 * that was descheduled (the arrival check of 2a740fe). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "thread/park.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_THREADS 9

static void count_none(const ox__lot_waiter *w, void *ctx)
{
    (void)w;
    (void)ctx;
}

static struct {
    ox_barrier barrier;
    long n;
    long budget; /* total waits: a multiple of n, so every round fills */
    _Atomic long tickets;
    _Atomic long entries;
    _Atomic long exits;
    _Atomic long leaders;
    _Atomic long early; /* exits seen above n * (entries / n) */
} crowd;

static void *crowd_worker(void *arg)
{
    long id = (long)(intptr_t)arg;
    for (long i = 0; atomic_fetch_add(&crowd.tickets, 1) < crowd.budget; i++) {
        atomic_fetch_add(&crowd.entries, 1); /* seq_cst: before our arrival */
        if ((i + id) % 5 == 0)
            ox_thread_yield(); /* let others arrive first and sleep */
        bool leader = ox_barrier_wait(&crowd.barrier);
        long exited = atomic_fetch_add(&crowd.exits, 1) + 1;
        long entered = atomic_load(&crowd.entries);
        if (exited > crowd.n * (entered / crowd.n))
            atomic_fetch_add(&crowd.early, 1);
        if (leader)
            atomic_fetch_add(&crowd.leaders, 1);
    }
    return NULL;
}

static void crowd_run(long n, int threads)
{
    CHECK(threads <= MAX_THREADS);
    CHECK_EQ(ox_barrier_init(&crowd.barrier, (uint32_t)n), 0);
    crowd.n = n;
    crowd.budget = n * ox_test_scaled(2000);
    atomic_store(&crowd.tickets, 0);
    atomic_store(&crowd.entries, 0);
    atomic_store(&crowd.exits, 0);
    atomic_store(&crowd.leaders, 0);
    atomic_store(&crowd.early, 0);
    ox_join_handle h[MAX_THREADS];
    for (int t = 0; t < threads; t++)
        h[t] = ox_thread_spawn(crowd_worker, (void *)(intptr_t)t);
    for (int t = 0; t < threads; t++)
        CHECK_EQ(ox_thread_join(&h[t], NULL, NULL), 0);
    CHECK_EQ(atomic_load(&crowd.early), 0);
    CHECK_EQ(atomic_load(&crowd.exits), crowd.budget);
    CHECK_EQ(atomic_load(&crowd.leaders), crowd.budget / n);
}

OX_TEST_OPTS(break6_barrier_crowd_never_passes_a_short_round, .timeout_s = 60)
{
    crowd_run(2, 5);
    crowd_run(3, 7);
    crowd_run(4, 9);
}

/* fork while another thread replaces the parking lot's table and tasks wait
 * in it: the child finds the grow lock free and a table it can replace,
 * walk and use (a lock held across the fork, or a half-moved table, hangs
 * or crashes the child). */
static _Atomic int fork_churn_stop;

static void *fork_rehash_loop(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !atomic_load(&fork_churn_stop) && i < 2000; i++) {
        CHECK_EQ(ox__park_lot_rehash(6 + i % 4), 0);
        ox_thread_yield();
    }
    return NULL;
}

static void *fork_task_wait(void *arg)
{
    CHECK_EQ(ox_semaphore_acquire(arg, 1), 0);
    return NULL;
}

OX_TEST_OPTS(break6_fork_while_the_park_lot_table_changes, .timeout_s = 60)
{
    if (ox_test_forks_hang_here())
        return;
    enum { TASKS = 64 };
    static ox_semaphore sems[TASKS];
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle tasks[TASKS];
    for (int i = 0; i < TASKS; i++) {
        CHECK_EQ(ox_semaphore_init(&sems[i], 0), 0);
        tasks[i] = ox_test_spawn_on(rt, fork_task_wait, &sems[i]);
    }
    atomic_store(&fork_churn_stop, 0);
    ox_join_handle churner = ox_thread_spawn(fork_rehash_loop, NULL);
    long forks = ox_test_scaled(100);
    for (long i = 0; i < forks; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            /* The parent's waiters are forgotten: the walk finds none. */
            int busy = 0;
            int seen = ox__park_lot_visit(count_none, NULL, &busy);
            if (seen != 0 || busy != 0)
                _exit(3);
#ifndef OX_TEST_BUILT_WITH_TSAN
            /* The grow lock is free and the table can be replaced. Not
             * under TSan: clang 14's runtime does not hold its allocator
             * across fork, and a child whose parent's churner was inside
             * calloc at the fork waited in calloc forever (gdb: FutexWait <
             * SizeClassAllocator64::GetFromAllocator < user_calloc <
             * table_new), 1 run in 123 under load. glibc's malloc is
             * fork-safe; POSIX promises neither after a threaded fork. */
            if (ox__park_lot_rehash(8) != 0 || ox__park_lot_buckets() != 256)
                _exit(3);
#endif
            _exit(7);
        }
        int status;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    }
    atomic_store(&fork_churn_stop, 1);
    CHECK_EQ(ox_thread_join(&churner, NULL, NULL), 0);
    for (int i = 0; i < TASKS; i++)
        ox_semaphore_release(&sems[i], 1);
    for (int i = 0; i < TASKS; i++)
        CHECK_EQ(ox_task_join(&tasks[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}
