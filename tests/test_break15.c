/* A reproducer written while trying to break the lot's skipped word store
 * (8213cd0), which no fast test caught as a mutation: a task whose waits
 * alternate between words must be woken by each, within a generous bound,
 * and once everything is done no worker is still counted as a searcher. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>

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
        ox_test_spin_ns(5000 +
                        (int64_t)(ox_test_rand(&x) % 20000)); /* the task parks on the mutex */
        ox_mutex_unlock(&tw.m[r % 3]);
        spin_until(&tw.acked, r + 1, "the wake of a task's wait on a new word", r);
    }
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    ox_test_check_all_idle_no_searcher(rt);
    ox_runtime_shutdown(rt);
}
