/* Barrier: exactly one leader per round, nobody passes early, reusable
 * round after round, n == 0 behaves as 1, more threads than n. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define THREADS 4

static struct {
    ox_barrier barrier;
    long rounds;           /* at most (the arrays' length) */
    ox_test_budget budget; /* thread 0 says which round is the last */
    _Atomic long last;     /* that round, set before thread 0 arrives at it */
    _Atomic int *arrived;  /* per round: threads that reached the barrier */
    _Atomic int *leaders;  /* per round: threads told they lead */
    int (*slots)[THREADS]; /* per round, per thread: plain writes before the wait */
    _Atomic long early;    /* a thread passed before everyone arrived */
    _Atomic long unseen;   /* a plain write before the wait was not visible after */
} lr;

static void *leader_round_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (long r = 0; r < lr.rounds; r++) {
        if (id == 0 && !ox_test_budget_more(&lr.budget, r + 1))
            atomic_store(&lr.last, r); /* everyone reads it after this round's wait */
        lr.slots[r][id] = (int)r + 1;  /* plain: ordered only by the barrier */
        atomic_fetch_add_explicit(&lr.arrived[r], 1, memory_order_relaxed);
        /* Some threads dawdle, so that others arrive first and sleep. */
        if ((r + id) % 7 == 0)
            ox_thread_yield();
        bool leader = ox_barrier_wait(&lr.barrier);
        if (leader)
            atomic_fetch_add_explicit(&lr.leaders[r], 1, memory_order_relaxed);
        /* Everyone of this round arrived before anyone passes. */
        if (atomic_load_explicit(&lr.arrived[r], memory_order_relaxed) != THREADS)
            atomic_fetch_add(&lr.early, 1);
        /* ...and nobody of the next round can have arrived yet: it needs us. */
        if (r + 1 < lr.rounds &&
            atomic_load_explicit(&lr.arrived[r + 1], memory_order_relaxed) > THREADS - 1)
            atomic_fetch_add(&lr.early, 1);
        for (int t = 0; t < THREADS; t++)
            if (lr.slots[r][t] != (int)r + 1)
                atomic_fetch_add(&lr.unseen, 1);
        if (atomic_load(&lr.last) == r)
            break;
    }
    return NULL;
}

OX_TEST(barrier_one_leader_per_round_and_no_early_pass)
{
    lr.rounds = ox_test_scaled(3000);
    lr.budget = ox_test_budget_start(300, lr.rounds);
    lr.last = -1;
    lr.arrived = calloc((size_t)lr.rounds, sizeof *lr.arrived);
    lr.leaders = calloc((size_t)lr.rounds, sizeof *lr.leaders);
    lr.slots = calloc((size_t)lr.rounds, sizeof *lr.slots);
    CHECK(lr.arrived && lr.leaders && lr.slots);
    CHECK_EQ(ox_barrier_init(&lr.barrier, THREADS), 0);
    ox_join_handle h[THREADS];
    for (int t = 0; t < THREADS; t++)
        h[t] = ox_thread_spawn(leader_round_worker, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++)
        CHECK_EQ(ox_thread_join(&h[t], NULL, NULL), 0);
    long rounds = atomic_load(&lr.last) + 1;
    CHECK(rounds >= lr.budget.min);
    for (long r = 0; r < lr.rounds; r++) {
        CHECK_EQ(atomic_load(&lr.leaders[r]), r < rounds);
        CHECK_EQ(atomic_load(&lr.arrived[r]), r < rounds ? THREADS : 0);
    }
    CHECK_EQ(atomic_load(&lr.early), 0);
    CHECK_EQ(atomic_load(&lr.unseen), 0);
    free(lr.arrived);
    free(lr.leaders);
    free(lr.slots);
}

/* The first to arrive is released only after the late one arrives, which
 * it does once the first is blocked: a waiter really blocks (it does not
 * return after its spin). */
static ox_barrier pair = OX_BARRIER_INIT(2);
static _Atomic int late_arrived;

static void *late_arriver(void *arg)
{
    (void)arg;
    ox_test_wait_blocked(&pair, 1, NULL); /* the other one sleeps in its wait */
    atomic_store(&late_arrived, 1);
    return (void *)(intptr_t)ox_barrier_wait(&pair);
}

OX_TEST(barrier_waiter_blocks_until_the_last_arrives)
{
    ox_join_handle h = ox_thread_spawn(late_arriver, NULL);
    bool leader = ox_barrier_wait(&pair);
    CHECK_EQ(atomic_load(&late_arrived), 1);
    void *r = NULL;
    CHECK_EQ(ox_thread_join(&h, &r, NULL), 0);
    /* The late one arrived last, so it leads. */
    CHECK(!leader);
    CHECK_EQ((intptr_t)r, 1);
}

OX_TEST(barrier_of_zero_or_one_never_blocks)
{
    ox_barrier zero = OX_BARRIER_INIT(0), one = OX_BARRIER_INIT(1), z = {0};
    for (int i = 0; i < 1000; i++) {
        CHECK(ox_barrier_wait(&zero));
        CHECK(ox_barrier_wait(&one));
        CHECK(ox_barrier_wait(&z));
    }
}

OX_TEST(barrier_init_rejects_too_many_threads)
{
    ox_barrier b;
    CHECK_EQ(ox_barrier_init(&b, OX_BARRIER_MAX + 1), OX_EINVAL);
    CHECK_EQ(ox_barrier_init(&b, OX_BARRIER_MAX), 0);
    CHECK_EQ(ox_barrier_init(&b, 3), 0);
}

/* More threads than n: as in Rust, each round releases n of them; every
 * wait is counted in exactly one round, so leaders == waits / n. The waits
 * are tickets drawn from a shared even budget (a thread with a fixed count
 * of its own could be left without a partner at the end). */
static ox_barrier small = OX_BARRIER_INIT(2);
static _Atomic long small_tickets;
static _Atomic long small_leaders;

static void *small_worker(void *arg)
{
    long budget = (long)(intptr_t)arg;
    while (atomic_fetch_add(&small_tickets, 1) < budget)
        if (ox_barrier_wait(&small))
            atomic_fetch_add(&small_leaders, 1);
    return NULL;
}

OX_TEST(barrier_more_threads_than_n)
{
    long budget = 2 * ox_test_scaled(3000);
    ox_join_handle h[6];
    for (int t = 0; t < 6; t++)
        h[t] = ox_thread_spawn(small_worker, (void *)(intptr_t)budget);
    for (int t = 0; t < 6; t++)
        CHECK_EQ(ox_thread_join(&h[t], NULL, NULL), 0);
    CHECK_EQ(atomic_load(&small_leaders), budget / 2);
}

OX_TEST_OPTS(barrier_wait_on_oversized_static_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "more than the")
{
    ox_barrier b = OX_BARRIER_INIT(OX_BARRIER_MAX + 1);
    ox_barrier_wait(&b);
}
