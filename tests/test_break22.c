/* Reproducers from trying to break 36f0e6e (a task record keeps four
 * held-lock entries inline) and 3562def (a worker with an empty queue takes
 * a share of the injector). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: the unwind record, the idle count */

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

/* ---- a share of the injector is not stranded behind a task that computes ----
 * Two workers. One runs a task that yields in a loop: its queue is never
 * empty, so it never steals, and it looks only at the injector (every
 * 61st tick). The other sleeps. Each round spawns two tasks from this
 * thread, each of which computes, without yielding, until both have
 * started. Taken from the injector one at a time, the sleeper (woken by
 * the first push) runs one and the yielder's worker takes the other at its
 * 61st look. A worker that takes both as a share runs one and queues the
 * other behind it, where the yielder's worker never looks: the pair never
 * meets. */
static struct {
    ox_runtime *rt;
    _Atomic int stop, yielding;
    _Atomic int started; /* this round's computing tasks that have started */
    _Atomic long yields;
} share;

static void *yield_until_stopped(void *arg)
{
    (void)arg;
    atomic_store(&share.yielding, 1);
    while (!atomic_load(&share.stop)) {
        ox_test_spin_ns(20000); /* some work between yields */
        atomic_fetch_add(&share.yields, 1);
        ox_task_yield();
    }
    return NULL;
}

static void *compute_until_both_started(void *arg)
{
    long round = (long)(intptr_t)arg;
    atomic_fetch_add(&share.started, 1);
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(2000));
    while (atomic_load(&share.started) < 2)
        if (ox_instant_now().ns > give_up)
            ox_test_fail(__FILE__, __LINE__,
                         "round %ld: the other task, spawned from a thread with this one, never "
                         "started (stranded behind this one in its worker's queue?)",
                         round);
    return NULL;
}

/* Whether one worker is asleep (idle, no searcher): the other runs the
 * yielder. */
static bool one_asleep(void)
{
    /* Relaxed: a snapshot; a wrong guess only makes the round test less. */
    uint32_t s = atomic_load_explicit(&share.rt->sched, memory_order_relaxed);
    return (s & 0xffffu) == 0 && (s >> 16) == 1;
}

OX_TEST_OPTS(break22_a_share_of_the_injector_is_not_stranded_behind_a_computing_task,
             .timeout_s = 60)
{
    share.rt = ox_test_runtime(2);
    ox_task_handle y = ox_test_spawn_on(share.rt, yield_until_stopped, NULL);
    while (!atomic_load(&share.yielding))
        ox_thread_yield();
    long rounds = ox_test_scaled(20);
    if (rounds < 5)
        rounds = 5;
    for (long r = 0; r < rounds; r++) {
        int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(2000));
        while (!one_asleep() && ox_instant_now().ns < give_up)
            ox_thread_sleep(OX_MICROS(100));
        atomic_store(&share.started, 0);
        ox_task_handle h[2];
        for (int i = 0; i < 2; i++)
            h[i] = ox_test_spawn_on(share.rt, compute_until_both_started, (void *)(intptr_t)r);
        for (int i = 0; i < 2; i++)
            CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
        CHECK_EQ(atomic_load(&share.started), 2);
    }
    atomic_store(&share.stop, 1);
    CHECK_EQ(ox_task_join(&y, NULL, NULL), 0);
    fprintf(stderr, "%ld rounds, %ld yields\n", rounds, atomic_load(&share.yields));
    CHECK(atomic_load(&share.yields) > 0);
    ox_runtime_shutdown(share.rt);
}
