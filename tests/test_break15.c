/* Reproducers from trying to break two scheduler changes: the LIFO slot's
 * task, moved behind queued tasks after OX__LIFO_MAX runs, wakes an idle
 * worker (runtime.c find_work), and the search a worker does before it
 * sleeps also takes quick looks at the poller (search_before_sleep). Each
 * test makes work runnable where only another worker, or only the search,
 * can find it, and checks that it runs within a generous bound, and that
 * once everything is done no worker is still counted as a searcher. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: rt->sched */

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static uint32_t next_rand(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Spins about ns nanoseconds, without yielding. */
static void spin_ns(int64_t ns)
{
    int64_t until = ox_instant_now().ns + ns;
    while (ox_instant_now().ns < until)
        continue;
}

/* Spins (no yield, no park) until *flag reaches want, failing by name
 * after the bound: what sets it must run on another worker, or in the
 * runtime while this thread only watches. */
static void spin_until(const _Atomic long *flag, long want, const char *what, long round)
{
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(2000));
    /* Acquire: pairs with the release store of whoever sets it. */
    while (atomic_load_explicit(flag, memory_order_acquire) < want)
        if (ox_instant_now().ns > give_up)
            ox_test_fail(__FILE__, __LINE__, "round %ld: %s never ran (a lost wake-up)", round,
                         what);
}

/* As test_break14.c's: once all is done, every worker is idle and none is
 * still counted as a searcher (a leaked one makes every later wake a
 * no-op). Polls: the last worker may still be in its 10 us search. */
static void check_all_idle_no_searcher(ox_runtime *rt)
{
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(2000));
    uint32_t s;
    for (;;) {
        /* Relaxed: a snapshot, only compared with the final state. */
        s = atomic_load_explicit(&rt->sched, memory_order_relaxed);
        if ((s & 0xffffu) == 0 && (s >> 16) == rt->nworkers)
            return;
        if (ox_instant_now().ns > give_up)
            break;
        ox_thread_sleep(OX_MILLIS(1));
    }
    ox_test_fail(__FILE__, __LINE__, "idle runtime of %zu workers: %u searching, %u idle",
                 rt->nworkers, s & 0xffffu, s >> 16);
}

/* ---- a task that yields behind the LIFO slot's task is not stranded ----
 * The mirror of task_lifo_task_moved_behind_a_yielder_is_not_stranded: a
 * task wakes another into its worker's slot and yields. The slot's task
 * runs first (it has not run OX__LIFO_MAX times in a row), and spins until
 * the yielder has run on: only another worker can take the yielder from
 * the queue, while that worker sleeps. Each round the woken task then
 * hands the yielder back, so both end up on one worker, and the yielder
 * spins a random while first, so that the other is asleep in most rounds. */
static struct {
    ox_notify to_spinner, to_yielder;
    _Atomic long resumed; /* rounds in which the yielder ran on after its yield */
    _Atomic int stop;
    long rounds;
} yb;

static void *wakes_then_yields(void *arg)
{
    (void)arg;
    uint32_t x = 0x85ebca6bu;
    for (long r = 0; r < yb.rounds; r++) {
        /* Up to 30 us: the other worker, out of work, is searching, just
         * registering, or asleep (most rounds) when the round starts. */
        spin_ns((int64_t)(next_rand(&x) % 30000));
        ox_notify_one(&yb.to_spinner); /* into our worker's slot */
        ox_task_yield();               /* to the queue, behind the slot */
        /* Release: pairs with the spinner's acquire in spin_until. */
        atomic_store_explicit(&yb.resumed, r + 1, memory_order_release);
        CHECK_EQ(ox_notify_wait(&yb.to_yielder), 0);
    }
    atomic_store(&yb.stop, 1);
    ox_notify_one(&yb.to_spinner);
    return NULL;
}

static void *spins_until_the_yielder_ran(void *arg)
{
    (void)arg;
    for (long r = 0;; r++) {
        CHECK_EQ(ox_notify_wait(&yb.to_spinner), 0);
        if (atomic_load(&yb.stop))
            return NULL;
        spin_until(&yb.resumed, r + 1, "the task that yielded behind the LIFO slot", r);
        ox_notify_one(&yb.to_yielder); /* back to one worker */
    }
}

OX_TEST(break15_task_yielding_behind_the_lifo_slot_is_not_stranded)
{
    ox_runtime *rt = ox_test_runtime(2);
    yb.rounds = ox_test_scaled(2000);
    atomic_store(&yb.resumed, 0);
    atomic_store(&yb.stop, 0);
    ox_task_handle s = ox_test_spawn_on(rt, spins_until_the_yielder_ran, NULL);
    ox_task_handle y = ox_test_spawn_on(rt, wakes_then_yields, NULL);
    CHECK_EQ(ox_task_join(&y, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&s, NULL, NULL), 0);
    check_all_idle_no_searcher(rt);
    ox_runtime_shutdown(rt);
}

/* ---- a task's wait on another word than its last is woken ----
 * A task's lot record skips the seq_cst store of the word it waits on when
 * it waits on the same word again (park_lot.c, 8213cd0). Here a task waits
 * in turn on a notify (its context's word, on its stack) and on one of
 * three mutexes that a thread holds a while: every wait is on another word
 * than the last, so each must store its word, or the wake, which matches
 * waiters by their word, passes the task over. */
static struct {
    ox_notify go;
    ox_mutex m[3];
    _Atomic long acked;
} tw;

static void *waits_on_other_words(void *arg)
{
    long rounds = (long)(intptr_t)arg;
    for (long r = 0; r < rounds; r++) {
        CHECK_EQ(ox_notify_wait(&tw.go), 0);
        CHECK_EQ(ox_mutex_lock(&tw.m[r % 3]), 0); /* held by the thread: parks on its word */
        ox_mutex_unlock(&tw.m[r % 3]);
        /* Release: pairs with the thread's acquire in spin_until. */
        atomic_store_explicit(&tw.acked, r + 1, memory_order_release);
    }
    return NULL;
}

OX_TEST(break15_a_task_waiting_on_another_word_than_its_last_is_woken)
{
    ox_runtime *rt = ox_test_runtime(2);
    long rounds = ox_test_scaled(1000);
    for (int i = 0; i < 3; i++)
        ox_mutex_init(&tw.m[i]);
    atomic_store(&tw.acked, 0);
    ox_task_handle h = ox_test_spawn_on(rt, waits_on_other_words, (void *)(intptr_t)rounds);
    uint32_t x = 0x27d4eb2fu;
    for (long r = 0; r < rounds; r++) {
        CHECK_EQ(ox_mutex_lock(&tw.m[r % 3]), 0);
        ox_notify_one(&tw.go);
        spin_ns(5000 + (int64_t)(next_rand(&x) % 20000)); /* the task parks on the mutex */
        ox_mutex_unlock(&tw.m[r % 3]);
        spin_until(&tw.acked, r + 1, "the wake of a task's wait on a new word", r);
    }
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    check_all_idle_no_searcher(rt);
    ox_runtime_shutdown(rt);
}
