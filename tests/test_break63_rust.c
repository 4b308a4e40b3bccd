/* break63, Rust's rule: a guard dropped while the thread panics poisons
 * its lock unless the guard was made while panicking. Each test failed on
 * the first form of the barrier (0deed07), pushed only around each
 * cleanup: a lock a cleanup took counted as taken before the panic once
 * that cleanup returned, and the hook ran with no barrier. */
#include "helpers.h"
#include "oxide.h"
#include "runner.h"

#include "panic/unwind.h"

#include <stdint.h>

struct km {
    ox_mutex p; /* taken before the panic */
    ox_mutex c; /* taken in a cleanup */
    ox_mutex c2;
    ox_rwlock l;
    ox_condvar cv;
    atomic_int stage;
    atomic_int seen_poisoned; /* what another thread saw while the cleanup waited */
};

/* ---- Rust mismatch 1: a lock a cleanup takes and leaves held ----
 * Rust: a guard made while panicking records panicking = true, and its
 * drop never poisons, whenever it happens during the unwind (e.g. a Drop
 * that stashes the guard into another value the unwind drops later). oxide
 * releases it through the unwind, poisoned. */
static void take_c_and_keep(void *arg)
{
    CHECK_EQ(ox_mutex_lock(&((struct km *)arg)->c), 0);
}

static void *keep_then_panic(void *arg)
{
    ox_cleanup_push(take_c_and_keep, arg);
    ox_panic("cleanup keeps c");
}

OX_TEST(break63_rust_lock_made_in_a_cleanup_and_released_by_the_unwind_is_not_poisoned)
{
    struct km k = {.c = OX_MUTEX_INIT};
    CHECK_EQ(ox_catch_unwind(keep_then_panic, &k, NULL, NULL), OX_EPANICKED);
    CHECK(!ox_mutex_is_poisoned(&k.c)); /* Rust: guard made while panicking */
    CHECK_UNWOUND();
}

/* ---- Rust mismatch 2: taken in one cleanup, unlocked by hand in the
 * next one (which the first pushed). Rust: the guard was made while
 * panicking: no poison. oxide: it now lies under the second cleanup's
 * barrier and is poisoned. */
static void unlock_c(void *arg)
{
    ox_mutex_unlock(&((struct km *)arg)->c);
}

static void take_c_push_unlocker(void *arg)
{
    CHECK_EQ(ox_mutex_lock(&((struct km *)arg)->c), 0);
    ox_cleanup_push(unlock_c, arg);
}

static void *two_stage_then_panic(void *arg)
{
    ox_cleanup_push(take_c_push_unlocker, arg);
    ox_panic("two-stage cleanup");
}

OX_TEST(break63_rust_lock_made_in_a_cleanup_unlocked_in_a_later_cleanup_is_not_poisoned)
{
    struct km k = {.c = OX_MUTEX_INIT};
    CHECK_EQ(ox_catch_unwind(two_stage_then_panic, &k, NULL, NULL), OX_EPANICKED);
    CHECK(!ox_mutex_is_poisoned(&k.c)); /* Rust: guard made while panicking */
    CHECK_UNWOUND();
}

/* ---- Rust mismatch 3: a pre-panic lock unlocked by hand in the panic
 * hook. Rust: the hook runs while panicking (thread::panicking() is
 * true); a guard made before the panic and dropped in the hook (taken out
 * of a thread-local, say) poisons. oxide runs the hook with no barrier
 * pushed: the unlock takes the fast path and releases it unpoisoned. */
static ox_mutex hook_mutex = OX_MUTEX_INIT;
static atomic_int hook_saw_panicking;

static void unlocking_hook(const ox_panic_payload *p)
{
    (void)p;
    atomic_store(&hook_saw_panicking, ox_thread_panicking());
    ox_mutex_unlock(&hook_mutex);
}

static void *hook_mutex_then_panic(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_mutex_lock(&hook_mutex), 0);
    ox_panic("the hook unlocks");
}

OX_TEST(break63_rust_pre_panic_lock_unlocked_in_the_panic_hook_is_poisoned)
{
    ox_panic_set_hook(unlocking_hook);
    CHECK_EQ(ox_catch_unwind(hook_mutex_then_panic, NULL, NULL, NULL), OX_EPANICKED);
    ox_panic_set_hook(NULL);
    CHECK(atomic_load(&hook_saw_panicking));  /* the hook runs while panicking */
    CHECK(ox_mutex_is_poisoned(&hook_mutex)); /* Rust: guard dropped while panicking */
    CHECK_UNWOUND();
}
