/* Reproducers from trying to break d65db52: one rule for the LIFO slot's
 * limit (slot_may_run, for find_work and direct hand-offs alike; the
 * slot's task, passed over, always wakes a worker as it goes to the
 * queue) and the counts kept under a lock (common/locked_count.h). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: the injector, the idle count */

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

/* ---- hand-offs with nothing queued still let a timer and the injector in ----
 * Two tasks that wake each other in turn on one worker, with its queue
 * empty: the slot's limit then never passes them over (slot_may_run lets
 * the slot's task run on, the count starting over), and every hand-off is
 * direct, without the scheduler. Only the every-61st tick, which a direct
 * hand-off must leave to the scheduler, fires due timers and looks at the
 * injector: a sleeper and a task spawned from this thread must run, or
 * the pair never stops (the runner's timeout fails the test). */
static struct {
    ox_notify to_a, to_b;
    _Atomic int slept, injected, started;
    _Atomic long handoffs;
} pair;

static bool pair_done(void)
{
    return atomic_load(&pair.slept) && atomic_load(&pair.injected);
}

static void *pair_b(void *arg)
{
    (void)arg;
    for (;;) {
        CHECK_EQ(ox_notify_wait(&pair.to_b), 0);
        bool stop = pair_done();
        atomic_fetch_add(&pair.handoffs, 1);
        ox_notify_one(&pair.to_a); /* A into this worker's LIFO slot */
        if (stop)
            return NULL;
    }
}

static void *pair_a(void *arg)
{
    (void)arg;
    ox_task_handle sleeper = ox_task_spawn(ox_test_sleep_1ms_then_set_flag, &pair.slept);
    ox_task_handle b = ox_task_spawn(pair_b, NULL);
    /* Both run (the sleeper to its sleep) before the hand-offs begin: the
     * queue is empty from then on. */
    ox_task_yield();
    ox_task_yield();
    atomic_store(&pair.started, 1);
    for (;;) {
        bool stop = pair_done();
        ox_notify_one(&pair.to_b); /* B into the LIFO slot (or a permit) */
        if (stop)
            break;
        CHECK_EQ(ox_notify_wait(&pair.to_a), 0);
    }
    CHECK_EQ(ox_task_join(&b, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&sleeper, NULL, NULL), 0);
    return NULL;
}

OX_TEST_OPTS(break21_handoffs_with_nothing_queued_let_a_timer_and_the_injector_in, .timeout_s = 20)
{
    ox_runtime *rt = ox_test_runtime(1); /* nobody else to fire the timer or take the injected */
    ox_task_handle a = ox_test_spawn_on(rt, pair_a, NULL);
    while (!atomic_load(&pair.started))
        ox_thread_yield();
    /* From this thread: through the injector, while the pair hands off. */
    ox_task_handle injected = ox_test_spawn_on(rt, ox_test_set_flag, &pair.injected);
    CHECK_EQ(ox_task_join(&injected, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&a, NULL, NULL), 0);
    fprintf(stderr, "hand-offs: %ld\n", atomic_load(&pair.handoffs));
    CHECK(atomic_load(&pair.handoffs) >= 1);
    ox_runtime_shutdown(rt);
}

/* ---- the slot's task, passed over for the injector, is not stranded ----
 * Two workers. Two tasks hand off to each other on one of them, its queue
 * empty, while the other sleeps. A task put in the injector without a
 * wake-up (white box: as if its pusher's wake had gone to a worker that
 * went back to sleep before the push was visible) is found by the pair's
 * worker on its every-61st tick, and runs before the slot's task, which
 * goes to the queue. The injected task then computes until the pair has
 * made progress: only the sleeping worker can run the moved task, so the
 * move must wake it (slot_to_queue). Each round waits until the other
 * worker is idle again before it injects. */
enum { STRAND_STEPS = 4 };

static struct {
    ox_notify a, b;
    ox_runtime *rt;
    _Atomic long handoffs;
    _Atomic int stop, injected_running;
    /* Written only by the pair's task that holds the turn. */
    long round, rounds;
    ox_task_handle injected[64];
} strand;

static void *compute_until_the_pair_moves(void *arg)
{
    long round = (long)(intptr_t)arg;
    long from = atomic_load(&strand.handoffs);
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(2000));
    while (atomic_load(&strand.handoffs) < from + STRAND_STEPS)
        if (ox_instant_now().ns > give_up)
            ox_test_fail(__FILE__, __LINE__,
                         "round %ld: the task passed over for the injector never ran (%ld "
                         "hand-offs, the other worker asleep)",
                         round, atomic_load(&strand.handoffs) - from);
    atomic_store(&strand.injected_running, 0);
    return NULL;
}

/* Whether the runtime's other worker is asleep (idle, no searcher). */
static bool other_asleep(void)
{
    /* Relaxed: a snapshot; a wrong guess only makes the round test less. */
    uint32_t s = atomic_load_explicit(&strand.rt->sched, memory_order_relaxed);
    return (s & 0xffffu) == 0 && (s >> 16) == 1;
}

static void inject_silently(void)
{
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    b.runtime = strand.rt;
    ox_task *t;
    CHECK_EQ(ox__task_create(&b, compute_until_the_pair_moves, (void *)(intptr_t)strand.round, &t),
             0);
    ox__runtime_task_started(strand.rt);
    atomic_store(&strand.injected_running, 1);
    /* As ox__task_schedule from outside the runtime, but without its wake. */
    ox__injector_push(&strand.rt->injector, t, t, 1);
    strand.injected[strand.round] = (ox_task_handle){.task = t};
    strand.round++;
}

static void *strand_side(void *arg)
{
    bool starts = arg != NULL;
    ox_notify *mine = starts ? &strand.a : &strand.b, *other = starts ? &strand.b : &strand.a;
    if (!starts)
        CHECK_EQ(ox_notify_wait(mine), 0);
    for (;;) {
        if (atomic_load(&strand.stop)) {
            ox_notify_one(other);
            return NULL;
        }
        atomic_fetch_add(&strand.handoffs, 1);
        if (!atomic_load(&strand.injected_running)) {
            if (strand.round == strand.rounds) {
                atomic_store(&strand.stop, 1);
                ox_notify_one(other);
                return NULL;
            }
            if (other_asleep())
                inject_silently();
        }
        ox_notify_one(other); /* into our LIFO slot */
        CHECK_EQ(ox_notify_wait(mine), 0);
    }
}

OX_TEST_OPTS(break21_the_slot_task_passed_over_for_the_injector_is_not_stranded, .timeout_s = 30)
{
    strand.rt = ox_test_runtime(2);
    strand.rounds = ox_test_scaled(40);
    if (strand.rounds < 4)
        strand.rounds = 4;
    if (strand.rounds > 64)
        strand.rounds = 64;
    ox_task_handle a = ox_test_spawn_on(strand.rt, strand_side, &strand);
    ox_task_handle b = ox_test_spawn_on(strand.rt, strand_side, NULL);
    CHECK_EQ(ox_task_join(&a, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&b, NULL, NULL), 0);
    for (long i = 0; i < strand.round; i++)
        CHECK_EQ(ox_task_join(&strand.injected[i], NULL, NULL), 0);
    fprintf(stderr, "%ld rounds, %ld hand-offs\n", strand.round, atomic_load(&strand.handoffs));
    CHECK_EQ(strand.round, strand.rounds);
    ox_runtime_shutdown(strand.rt);
}
