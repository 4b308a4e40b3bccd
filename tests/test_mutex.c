/* Mutex: locking, poisoning, timeouts, misuse, the scope guard, stress. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

OX_TEST(mutex_size_and_zero_init)
{
    CHECK(sizeof(ox_mutex) <= 8);
    ox_mutex zero;
    memset(&zero, 0, sizeof zero);
    CHECK_EQ(ox_mutex_lock(&zero), 0);
    ox_mutex_unlock(&zero);
    static ox_mutex s = OX_MUTEX_INIT;
    CHECK_EQ(ox_mutex_try_lock(&s), 0);
    CHECK_EQ(ox_mutex_try_lock(&s), OX_EBUSY);
    ox_mutex_unlock(&s);
    ox_mutex_destroy(&s);
}

OX_TEST(mutex_real_functions_exist)
{
    ox_mutex m = OX_MUTEX_INIT;
    int (*lock)(ox_mutex *) = ox_mutex_lock;
    int (*try_lock)(ox_mutex *) = ox_mutex_try_lock;
    CHECK_EQ(lock(&m), 0);
    CHECK_EQ(try_lock(&m), OX_EBUSY);
    ox_mutex_unlock(&m);
    CHECK_EQ((ox_mutex_lock_timeout)(&m, OX_MILLIS(1)), 0);
    ox_mutex_unlock(&m);
    CHECK_EQ((ox_mutex_lock_deadline)(&m, OX_INSTANT_NEVER), 0);
    ox_mutex_unlock(&m);
}

/* ---- poisoning ---- */

struct poison_data {
    ox_mutex m;
    int value;
};

static void *panic_while_holding(void *arg)
{
    struct poison_data *d = arg;
    (void)!ox_mutex_lock(&d->m);
    d->value = 42;
    ox_panic("boom while holding the mutex");
}

OX_TEST(mutex_panic_poisons_and_data_survives)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    struct poison_data d = {OX_MUTEX_INIT, 0};
    ox_join_handle h = ox_thread_spawn(panic_while_holding, &d);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), OX_EPANICKED);
    CHECK(ox_mutex_is_poisoned(&d.m));
    /* Locking a poisoned mutex acquires it and says so. */
    CHECK_EQ(ox_mutex_lock(&d.m), OX_EPOISONED);
    CHECK_EQ(d.value, 42);
    CHECK_EQ(ox_mutex_try_lock(&d.m), OX_EBUSY); /* really held */
    ox_mutex_unlock(&d.m);
    CHECK_EQ(ox_mutex_try_lock(&d.m), OX_EPOISONED);
    ox_mutex_unlock(&d.m);
    CHECK_EQ(ox_mutex_lock_timeout(&d.m, OX_MILLIS(10)), OX_EPOISONED);
    ox_mutex_clear_poison(&d.m);
    CHECK(!ox_mutex_is_poisoned(&d.m));
    ox_mutex_unlock(&d.m);
    CHECK_EQ(ox_mutex_lock(&d.m), 0);
    ox_mutex_unlock(&d.m);
}

static void *panic_inside_scope(void *arg)
{
    OX_MUTEX_SCOPE((ox_mutex *)arg)
    {
        ox_panic("boom in a scope");
    }
    return NULL;
}

OX_TEST(mutex_scope_panic_releases_once_and_poisons)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_mutex m = OX_MUTEX_INIT;
    ox_join_handle h = ox_thread_spawn(panic_inside_scope, &m);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(ox_mutex_try_lock(&m), OX_EPOISONED);
    ox_mutex_unlock(&m);
}

static void *catch_target(void *arg)
{
    (void)!ox_mutex_lock((ox_mutex *)arg);
    ox_panic("caught");
}

OX_TEST(mutex_catch_unwind_releases_and_poisons)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_mutex m = OX_MUTEX_INIT;
    CHECK_EQ(ox_catch_unwind(catch_target, &m, NULL, NULL), OX_EPANICKED);
    CHECK(ox_mutex_is_poisoned(&m));
    CHECK_EQ(ox_mutex_try_lock(&m), OX_EPOISONED); /* released by the unwind */
    ox_mutex_unlock(&m);
}

/* ---- misuse ---- */

OX_TEST_OPTS(mutex_unlock_not_held_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_mutex_unlock: unlocking a mutex not held by this thread")
{
    ox_mutex m = OX_MUTEX_INIT;
    ox_mutex_unlock(&m);
}

/* A cleanup whose argument is the mutex's address is not the mutex: the
 * unlock's check of the top entry must not take one for the other. */
struct noted {
    ox_mutex m; /* first: the struct's address is the mutex's */
    void *seen;
};

static void note_cleanup(void *arg)
{
    ((struct noted *)arg)->seen = arg;
}

OX_TEST(mutex_unlock_under_a_cleanup_with_its_address)
{
    struct noted x = {OX_MUTEX_INIT, NULL};
    CHECK_EQ(ox_mutex_lock(&x.m), 0);
    ox_cleanup_push(note_cleanup, &x.m);
    ox_mutex_unlock(&x.m); /* the lock's entry is under the cleanup's */
    CHECK_EQ(ox_mutex_try_lock(&x.m), 0);
    ox_mutex_unlock(&x.m);
    ox_cleanup_pop(true); /* still there, with its argument */
    CHECK(x.seen == (void *)&x.m);
}

OX_TEST_OPTS(mutex_unlock_not_held_under_a_cleanup_with_its_address_aborts,
             .expect_signal = SIGABRT,
             .expect_stderr = "ox_mutex_unlock: unlocking a mutex not held by this thread")
{
    static struct noted x = {OX_MUTEX_INIT, NULL};
    ox_cleanup_push(note_cleanup, &x.m);
    ox_mutex_unlock(&x.m);
}

static void *lock_and_return(void *arg)
{
    (void)!ox_mutex_lock((ox_mutex *)arg);
    ox_mutex_unlock((ox_mutex *)arg);
    return NULL;
}

OX_TEST_OPTS(mutex_double_unlock_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "unlocking a mutex not held by this thread")
{
    static ox_mutex m = OX_MUTEX_INIT;
    ox_join_handle h = ox_thread_spawn(lock_and_return, &m);
    (void)!ox_thread_join(&h, NULL, NULL);
    (void)!ox_mutex_lock(&m);
    ox_mutex_unlock(&m);
    ox_mutex_unlock(&m);
}

struct holder {
    ox_mutex m;
    _Atomic int locked;
};

static void *hold_until_told(void *arg)
{
    struct holder *h = arg;
    (void)!ox_mutex_lock(&h->m);
    atomic_store(&h->locked, 1);
    while (atomic_load(&h->locked) != 2)
        ox_thread_sleep(OX_MILLIS(1));
    ox_mutex_unlock(&h->m);
    return NULL;
}

OX_TEST_OPTS(mutex_unlock_held_by_other_thread_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "unlocking a mutex not held by this thread")
{
    static struct holder hd = {OX_MUTEX_INIT, 0};
    ox_join_handle h = ox_thread_spawn(hold_until_told, &hd);
    while (atomic_load(&hd.locked) != 1)
        ox_thread_yield();
    ox_mutex_unlock(&hd.m);
    ox_join_handle_drop(&h);
}

OX_TEST_OPTS(mutex_destroy_locked_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_mutex_destroy: destroying a locked mutex")
{
    ox_mutex m = OX_MUTEX_INIT;
    (void)!ox_mutex_lock(&m);
    ox_mutex_destroy(&m);
}

OX_TEST_OPTS(mutex_recursive_lock_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "would deadlock", .timeout_s = 10)
{
    ox_mutex m = OX_MUTEX_INIT;
    (void)!ox_mutex_lock(&m);
    (void)!ox_mutex_lock(&m);
}

OX_TEST(mutex_recursive_try_lock_is_busy)
{
    ox_mutex m = OX_MUTEX_INIT;
    (void)!ox_mutex_lock(&m);
    CHECK_EQ(ox_mutex_try_lock(&m), OX_EBUSY);
    ox_mutex_unlock(&m);
}

/* ---- timeouts ---- */

OX_TEST(mutex_negative_timeout_is_einval)
{
    ox_mutex m = OX_MUTEX_INIT;
    CHECK_EQ(ox_mutex_lock_timeout(&m, -1), OX_EINVAL);
    CHECK_EQ(ox_mutex_try_lock(&m), 0); /* the failed call did not take it */
    ox_mutex_unlock(&m);
}

OX_TEST(mutex_timeout_neither_early_nor_late)
{
    struct holder hd = {OX_MUTEX_INIT, 0};
    ox_join_handle h = ox_thread_spawn(hold_until_told, &hd);
    while (atomic_load(&hd.locked) != 1)
        ox_thread_yield();
    ox_instant t0 = ox_instant_now();
    CHECK_EQ(ox_mutex_lock_timeout(&hd.m, OX_MILLIS(50)), OX_ETIMEDOUT);
    ox_nanos waited = ox_instant_diff(ox_instant_now(), t0);
    CHECK(waited >= OX_MILLIS(50));
    CHECK(waited < ox_test_bound(OX_MILLIS(1000)));
    /* A deadline in the past fails at once. */
    CHECK_EQ(ox_mutex_lock_deadline(&hd.m, ox_instant_now()), OX_ETIMEDOUT);
    CHECK_EQ(ox_mutex_lock_timeout(&hd.m, 0), OX_ETIMEDOUT);
    atomic_store(&hd.locked, 2);
    /* A huge timeout saturates to "forever" and then succeeds. */
    CHECK_EQ(ox_mutex_lock_timeout(&hd.m, INT64_MAX), 0);
    ox_mutex_unlock(&hd.m);
    (void)!ox_thread_join(&h, NULL, NULL);
}

/* The holder lets go only once the waiter is blocked on the mutex (or has
 * returned, which it must not do while the holder holds the lock). */
struct waits_for_holder {
    ox_mutex m;
    _Atomic int locked, leaving, waiter_returned;
};

static void *hold_until_waiter_blocks(void *arg)
{
    struct waits_for_holder *w = arg;
    (void)!ox_mutex_lock(&w->m);
    atomic_store(&w->locked, 1);
    ox_test_wait_blocked(&w->m, 1, &w->waiter_returned);
    atomic_store(&w->leaving, 1);
    ox_mutex_unlock(&w->m);
    return NULL;
}

OX_TEST(mutex_lock_waits_for_holder)
{
    for (int timed = 0; timed < 2; timed++) {
        struct waits_for_holder w = {.m = OX_MUTEX_INIT};
        ox_join_handle h = ox_thread_spawn(hold_until_waiter_blocks, &w);
        while (!atomic_load(&w.locked))
            ox_thread_yield();
        CHECK_EQ(timed ? ox_mutex_lock_timeout(&w.m, INT64_MAX) : ox_mutex_lock(&w.m), 0);
        atomic_store(&w.waiter_returned, 1);
        CHECK_EQ(atomic_load(&w.leaving), 1); /* we got it only when the holder let go */
        ox_mutex_unlock(&w.m);
        (void)!ox_thread_join(&h, NULL, NULL);
    }
}

/* ---- the scope guard ---- */

static int scoped_early_return(ox_mutex *m, int x)
{
    OX_MUTEX_SCOPE(m)
    {
        if (x > 0)
            return x;
    }
    return -1;
}

OX_TEST(mutex_scope_unlocks_on_every_exit)
{
    ox_mutex m = OX_MUTEX_INIT;
    CHECK_EQ(scoped_early_return(&m, 5), 5);
    CHECK_EQ(ox_mutex_try_lock(&m), 0);
    ox_mutex_unlock(&m);
    CHECK_EQ(scoped_early_return(&m, 0), -1);
    CHECK_EQ(ox_mutex_try_lock(&m), 0);
    ox_mutex_unlock(&m);
    int runs = 0;
    for (int i = 0; i < 3; i++) {
        OX_MUTEX_SCOPE(&m)
        {
            runs++;
            CHECK_EQ(ox_mutex_try_lock(&m), OX_EBUSY);
            if (i == 1)
                break; /* leaves the scope, not the loop */
        }
    }
    CHECK_EQ(runs, 3);
    CHECK_EQ(ox_mutex_try_lock(&m), 0);
    ox_mutex_unlock(&m);
}

/* ---- stress ---- */

struct stress {
    ox_mutex m;
    long counter;          /* plain: a missing happens-before is a race TSan sees */
    _Atomic int inside;    /* relaxed: the compiler may not fold it away */
    ox_test_budget budget; /* iterations per thread */
    _Atomic long done;     /* iterations, summed over the threads */
};

static void *stress_worker(void *arg)
{
    struct stress *s = arg;
    long i = 0;
    for (; ox_test_budget_more(&s->budget, i); i++) {
        if (i % 64 == 0) {
            if (ox_mutex_lock_timeout(&s->m, ox_test_bound(OX_SECS(10))) != 0)
                ox_panic("lock_timeout failed");
        } else if (i % 16 == 0) {
            while (ox_mutex_try_lock(&s->m) != 0)
                ox_thread_yield();
        } else {
            (void)!ox_mutex_lock(&s->m);
        }
        /* A holder stays inside a moment, looking out for company: a lock
         * that lets two in is seen at once, not only by a lost count. */
        if (atomic_fetch_add_explicit(&s->inside, 1, memory_order_relaxed) != 0)
            ox_panic("two threads inside the mutex");
        s->counter++;
        for (int k = 0; k < 4; k++)
            if (atomic_load_explicit(&s->inside, memory_order_relaxed) != 1)
                ox_panic("two threads inside the mutex");
        atomic_fetch_sub_explicit(&s->inside, 1, memory_order_relaxed);
        ox_mutex_unlock(&s->m);
    }
    atomic_fetch_add(&s->done, i);
    return NULL;
}

OX_TEST(mutex_stress_counter_4_threads)
{
    struct stress s = {OX_MUTEX_INIT, 0, 0, ox_test_budget_start(20000, ox_test_scaled(1000000)),
                       0};
    ox_join_handle h[4];
    for (int i = 0; i < 4; i++)
        h[i] = ox_thread_spawn(stress_worker, &s);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(s.counter, atomic_load(&s.done));
    ox_mutex_destroy(&s.m);
}

/* Short timeouts under contention: a waiter that gives up must not leave
 * the mutex unable to wake the others (a hang fails by the runner's
 * timeout), and exclusion holds. */
struct mtimeouts {
    ox_mutex m;
    int inside;
    long counter;
    _Atomic long timed_out;
    ox_test_budget budget; /* iterations per thread */
    _Atomic long done;     /* iterations, summed over the threads */
};

static void *mutex_timeout_worker(void *arg)
{
    struct mtimeouts *t = arg;
    long i = 0;
    for (; ox_test_budget_more(&t->budget, i); i++) {
        int rc = (i & 1) ? ox_mutex_lock_timeout(&t->m, OX_MICROS(i % 100)) : ox_mutex_lock(&t->m);
        if (rc == OX_ETIMEDOUT) {
            atomic_fetch_add(&t->timed_out, 1);
            continue;
        }
        if (t->inside++ != 0)
            ox_panic("two threads inside");
        t->counter++;
        if (i % 16 == 0)
            ox_thread_yield(); /* hold it a while: make the others wait */
        t->inside--;
        ox_mutex_unlock(&t->m);
    }
    atomic_fetch_add(&t->done, i);
    return NULL;
}

OX_TEST(mutex_stress_short_timeouts)
{
    static struct mtimeouts t;
    memset(&t, 0, sizeof t);
    t.budget = ox_test_budget_start(2000, ox_test_scaled(100000));
    ox_join_handle h[4];
    for (int i = 0; i < 4; i++)
        h[i] = ox_thread_spawn(mutex_timeout_worker, &t);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(t.counter + atomic_load(&t.timed_out), atomic_load(&t.done));
    CHECK_EQ(ox_mutex_try_lock(&t.m), 0);
    ox_mutex_unlock(&t.m);
}
