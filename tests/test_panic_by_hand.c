/* Locks unlocked by hand in a cleanup that a panic runs. Rust poisons a
 * mutex (or an rwlock held for writing) whose guard is dropped while the
 * thread panics, unless the guard was made during the panic; oxide poisons
 * a lock taken before the panic and unlocked by hand in a cleanup, and not
 * one the cleanup takes and releases itself. */
#include "helpers.h"
#include "oxide.h"
#include "runner.h"

#include "panic/unwind.h"

#include <stdint.h>

struct locks {
    ox_mutex m;
    ox_rwlock l;
    char log[8];
    int logged;
};

static void note(struct locks *k, char c)
{
    if (k->logged < (int)sizeof k->log - 1)
        k->log[k->logged++] = c;
}

static void unlock_mutex(void *arg)
{
    ox_mutex_unlock(&((struct locks *)arg)->m);
}

static void *mutex_then_panic(void *arg)
{
    struct locks *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->m), 0);
    ox_cleanup_push(unlock_mutex, k);
    ox_panic("with the mutex held");
}

OX_TEST(mutex_unlocked_by_hand_in_a_panic_cleanup_is_poisoned)
{
    struct locks k = {.m = OX_MUTEX_INIT};
    CHECK_EQ(ox_catch_unwind(mutex_then_panic, &k, NULL, NULL), OX_EPANICKED);
    CHECK(ox_mutex_is_poisoned(&k.m));
    CHECK_EQ(ox_mutex_try_lock(&k.m), OX_EPOISONED); /* released, poisoned */
    ox_mutex_unlock(&k.m);
    CHECK_UNWOUND();
}

static void write_unlock(void *arg)
{
    ox_rwlock_write_unlock(&((struct locks *)arg)->l);
}

static void *write_then_panic(void *arg)
{
    struct locks *k = arg;
    CHECK_EQ(ox_rwlock_write(&k->l), 0);
    ox_cleanup_push(write_unlock, k);
    ox_panic("with the write lock held");
}

OX_TEST(rwlock_write_unlocked_by_hand_in_a_panic_cleanup_is_poisoned)
{
    struct locks k = {.l = OX_RWLOCK_INIT};
    CHECK_EQ(ox_catch_unwind(write_then_panic, &k, NULL, NULL), OX_EPANICKED);
    CHECK(ox_rwlock_is_poisoned(&k.l));
    CHECK_EQ(ox_rwlock_try_write(&k.l), OX_EPOISONED);
    ox_rwlock_write_unlock(&k.l);
    CHECK_UNWOUND();
}

/* ox_rwlock_unlock, which finds the mode in the record, poisons the same. */
static void any_unlock(void *arg)
{
    ox_rwlock_unlock(&((struct locks *)arg)->l);
}

static void *write_then_panic_any_unlock(void *arg)
{
    struct locks *k = arg;
    CHECK_EQ(ox_rwlock_write(&k->l), 0);
    ox_cleanup_push(any_unlock, k);
    ox_panic("with the write lock held");
}

OX_TEST(rwlock_unlocked_in_either_mode_by_hand_in_a_panic_cleanup_is_poisoned)
{
    struct locks k = {.l = OX_RWLOCK_INIT};
    CHECK_EQ(ox_catch_unwind(write_then_panic_any_unlock, &k, NULL, NULL), OX_EPANICKED);
    CHECK(ox_rwlock_is_poisoned(&k.l));
    CHECK_EQ(ox_rwlock_try_write(&k.l), OX_EPOISONED);
    ox_rwlock_write_unlock(&k.l);
    CHECK_UNWOUND();
}

static void read_unlock(void *arg)
{
    ox_rwlock_read_unlock(&((struct locks *)arg)->l);
}

static void *read_then_panic(void *arg)
{
    struct locks *k = arg;
    CHECK_EQ(ox_rwlock_read(&k->l), 0);
    ox_cleanup_push(read_unlock, k);
    ox_panic("with a read lock held");
}

OX_TEST(rwlock_read_unlocked_by_hand_in_a_panic_cleanup_is_not_poisoned)
{
    struct locks k = {.l = OX_RWLOCK_INIT};
    CHECK_EQ(ox_catch_unwind(read_then_panic, &k, NULL, NULL), OX_EPANICKED);
    CHECK(!ox_rwlock_is_poisoned(&k.l));
    CHECK_EQ(ox_rwlock_try_write(&k.l), 0); /* the read lock was released */
    ox_rwlock_write_unlock(&k.l);
    CHECK_UNWOUND();
}

/* Taken and released inside the cleanup: a guard made while panicking.
 * Each lock once on top of the record (the fast unlock) and once under the
 * other (the slow one, which looks for the barrier). */
static void lock_and_unlock_both(void *arg)
{
    struct locks *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->m), 0);
    CHECK_EQ(ox_rwlock_write(&k->l), 0);
    ox_mutex_unlock(&k->m);
    ox_rwlock_write_unlock(&k->l);
    CHECK_EQ(ox_rwlock_write(&k->l), 0);
    CHECK_EQ(ox_mutex_lock(&k->m), 0);
    ox_rwlock_write_unlock(&k->l);
    ox_mutex_unlock(&k->m);
    note(k, 'c');
}

static void *cleanup_that_locks_then_panic(void *arg)
{
    ox_cleanup_push(lock_and_unlock_both, arg);
    ox_panic("the cleanup locks");
}

OX_TEST(locks_a_panic_cleanup_takes_and_releases_are_not_poisoned)
{
    struct locks k = {.m = OX_MUTEX_INIT, .l = OX_RWLOCK_INIT};
    CHECK_EQ(ox_catch_unwind(cleanup_that_locks_then_panic, &k, NULL, NULL), OX_EPANICKED);
    CHECK_STR(k.log, "c");
    CHECK(!ox_mutex_is_poisoned(&k.m));
    CHECK(!ox_rwlock_is_poisoned(&k.l));
    CHECK_UNWOUND();
}

/* The mutex is taken outside the catch frame, so the unwind does not
 * release it; the cleanup does, and that poisons it, as dropping the
 * moved-in guard while panicking does in Rust. */
static void *outer_mutex_cleanup_then_panic(void *arg)
{
    ox_cleanup_push(unlock_mutex, arg);
    ox_panic("the cleanup unlocks a lock from outside");
}

OX_TEST(a_lock_from_outside_the_frame_unlocked_in_a_panic_cleanup_is_poisoned)
{
    struct locks k = {.m = OX_MUTEX_INIT};
    CHECK_EQ(ox_mutex_lock(&k.m), 0);
    CHECK_EQ(ox_catch_unwind(outer_mutex_cleanup_then_panic, &k, NULL, NULL), OX_EPANICKED);
    CHECK(ox_mutex_is_poisoned(&k.m));
    CHECK_EQ(ox_mutex_try_lock(&k.m), OX_EPOISONED);
    ox_mutex_unlock(&k.m);
    CHECK_UNWOUND();
}

/* A lock the cleanup leaves held is above the barrier, and the unwind
 * releases it next, unpoisoned: Rust drops such a guard (made while
 * panicking, kept in a value the unwind drops later) without poisoning. */
static void lock_and_keep(void *arg)
{
    CHECK_EQ(ox_mutex_lock(&((struct locks *)arg)->m), 0);
}

static void *cleanup_keeps_a_lock_then_panic(void *arg)
{
    ox_cleanup_push(lock_and_keep, arg);
    ox_panic("the cleanup keeps a lock");
}

OX_TEST(a_lock_a_panic_cleanup_keeps_is_released_by_the_unwind_unpoisoned)
{
    struct locks k = {.m = OX_MUTEX_INIT};
    CHECK_EQ(ox_catch_unwind(cleanup_keeps_a_lock_then_panic, &k, NULL, NULL), OX_EPANICKED);
    CHECK(!ox_mutex_is_poisoned(&k.m));
    CHECK_EQ(ox_mutex_try_lock(&k.m), 0); /* released */
    ox_mutex_unlock(&k.m);
    CHECK_UNWOUND();
}

/* ox_cleanup_pop in a panic's cleanup pops the next older cleanup (the
 * barrier is not one), which then does not run a second time. */
static void note_x(void *arg)
{
    note(arg, 'x');
}

static void note_y_and_pop(void *arg)
{
    note(arg, 'y');
    ox_cleanup_pop(true);
}

static void *two_cleanups_then_panic(void *arg)
{
    ox_cleanup_push(note_x, arg);
    ox_cleanup_push(note_y_and_pop, arg);
    ox_panic("two cleanups");
}

OX_TEST(cleanup_pop_in_a_panic_cleanup_pops_the_older_cleanup)
{
    struct locks k = {0};
    CHECK_EQ(ox_catch_unwind(two_cleanups_then_panic, &k, NULL, NULL), OX_EPANICKED);
    CHECK_STR(k.log, "yx");
    CHECK_UNWOUND();
}

/* The same in a task whose cleanup sleeps first: the barrier travels with
 * the task's record if it resumes on the other worker. */
static void sleep_then_unlock(void *arg)
{
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_task_sleep(OX_MICROS(50)), 0);
    unlock_mutex(arg);
}

static void *task_mutex_then_panic(void *arg)
{
    struct locks *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->m), 0);
    ox_cleanup_push(sleep_then_unlock, k);
    ox_panic("a task with the mutex held");
}

static void *task_checks_its_record(void *arg)
{
    (void)arg;
    CHECK_UNWOUND();
    return NULL;
}

OX_TEST(a_task_unlocking_by_hand_in_a_sleeping_panic_cleanup_poisons)
{
    enum { TASKS = 8 };
    struct locks k[TASKS];
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h[TASKS];
    for (int i = 0; i < TASKS; i++) {
        k[i] = (struct locks){.m = OX_MUTEX_INIT};
        h[i] = ox_test_spawn_on(rt, task_mutex_then_panic, &k[i]);
    }
    for (int i = 0; i < TASKS; i++) {
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), OX_EPANICKED);
        CHECK(ox_mutex_is_poisoned(&k[i].m));
        CHECK_EQ(ox_mutex_try_lock(&k[i].m), OX_EPOISONED);
        ox_mutex_unlock(&k[i].m);
    }
    for (int i = 0; i < TASKS; i++)
        h[i] = ox_test_spawn_on(rt, task_checks_its_record, NULL);
    for (int i = 0; i < TASKS; i++)
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}
