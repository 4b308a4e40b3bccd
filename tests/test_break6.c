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

#include <stdatomic.h>
#include <stdint.h>

#define MAX_THREADS 9

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
