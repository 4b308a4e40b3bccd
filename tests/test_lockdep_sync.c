/* The lock-order checker on oxide's own locks: ox_mutex, ox_rwlock and the
 * mutex a condvar re-takes. (tests/test_lockdep.c covers the checker
 * itself through a test-only lock.) */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ox_mutex m1 = OX_MUTEX_INIT, m2 = OX_MUTEX_INIT, m3 = OX_MUTEX_INIT;
static _Atomic int holding;

/* The guide's Thread A / Thread B with ox_mutex: each holds one mutex and
 * waits for the other. Abort mode ends the process at the report instead
 * of a hang. */
static void *hold_then_take(void *arg)
{
    ox_mutex *first = arg == NULL ? &m1 : &m2;
    ox_mutex *second = arg == NULL ? &m2 : &m1;
    (void)!ox_mutex_lock(first);
    atomic_fetch_add_explicit(&holding, 1, memory_order_acq_rel);
    while (atomic_load_explicit(&holding, memory_order_acquire) < 2)
        ox_thread_yield();
    (void)!ox_mutex_lock(second);
    ox_mutex_unlock(second);
    ox_mutex_unlock(first);
    return NULL;
}

OX_TEST_OPTS(lockdep_mutex_abba_deadlock_reported_without_hanging, .expect_signal = SIGABRT,
             .expect_stderr = "waited for mutex", .timeout_s = 10)
{
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_ABORT), 0);
    ox_join_handle a = ox_test_spawn_named("thread A", hold_then_take, NULL);
    ox_join_handle b = ox_test_spawn_named("thread B", hold_then_take, (void *)1);
    ox_test_join(&a);
    ox_test_join(&b);
    ox_test_fail(__FILE__, __LINE__, "the deadlock was not reported");
}

/* Locks a pair's first mutex, then its second, and unlocks both. */
typedef struct pair {
    ox_mutex *first, *second;
} pair;

static void *lock_pair(void *arg)
{
    const pair *p = arg;
    (void)!ox_mutex_lock(p->first);
    (void)!ox_mutex_lock(p->second);
    ox_mutex_unlock(p->second);
    ox_mutex_unlock(p->first);
    return NULL;
}

OX_TEST(lockdep_mutex_abbcca_reported)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_test_run_named("AB", lock_pair, &(pair){&m1, &m2});
    ox_test_run_named("BC", lock_pair, &(pair){&m2, &m3});
    CHECK_EQ(ox_lockdep_reports(), 0u);
    ox_test_run_named("CA", lock_pair, &(pair){&m3, &m1});
    CHECK_EQ(ox_lockdep_reports(), 1u);
    char *text = ox_test_stderr_text();
    CHECK_CONTAINS(text, "through 3 lock classes");
    CHECK_CONTAINS(text, "acquired mutex");
    CHECK_CONTAINS(text, "thread 'CA'");
    free(text);
}

/* A write lock held while a mutex is taken, and the mutex held while a
 * read lock is taken: an rwlock/mutex cycle. */
static ox_rwlock rw = OX_RWLOCK_INIT;

OX_TEST(lockdep_rwlock_mutex_cycle_reported)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    CHECK_EQ(ox_rwlock_write(&rw), 0);
    (void)!ox_mutex_lock(&m1);
    ox_mutex_unlock(&m1);
    ox_rwlock_write_unlock(&rw);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    (void)!ox_mutex_lock(&m1);
    CHECK_EQ(ox_rwlock_read(&rw), 0);
    ox_rwlock_read_unlock(&rw);
    ox_mutex_unlock(&m1);
    CHECK_EQ(ox_lockdep_reports(), 1u);
    char *text = ox_test_stderr_text();
    CHECK_CONTAINS(text, "rwlock");
    free(text);
}

#define MANY 100
static ox_mutex many[MANY];

static void *ordered_worker(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15u + 1;
    for (long r = 0; r < ox_test_scaled(200); r++) {
        int taken[MANY], n = 0;
        for (int i = 0; i < MANY; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (r % 50 == 0 || x % 3 == 0) {
                (void)!ox_mutex_lock(&many[i]);
                taken[n++] = i;
            }
        }
        while (n > 0)
            ox_mutex_unlock(&many[taken[--n]]);
    }
    return NULL;
}

OX_TEST(lockdep_mutex_100_in_consistent_order_not_reported)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_join_handle h[4];
    for (int i = 0; i < 4; i++)
        h[i] = ox_test_spawn_named("ordered", ordered_worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 4; i++)
        ox_test_join(&h[i]);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    char *text = ox_test_stderr_text();
    CHECK_STR(text, "");
    free(text);
}

/* A million mutexes initialised at one site are one class. */
OX_TEST(lockdep_mutex_class_by_site)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    enum { N = 1000000 };
    ox_mutex *table = calloc(N, sizeof *table);
    CHECK(table != NULL);
    for (int i = 0; i < N; i++) {
        ox_mutex_init(&table[i]);
        OX_LOCK_CLASS_INIT(&table[i]);
    }
    (void)!ox_mutex_lock(&m1); /* m1 -> table class, through table[10] */
    (void)!ox_mutex_lock(&table[10]);
    ox_mutex_unlock(&table[10]);
    ox_mutex_unlock(&m1);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    (void)!ox_mutex_lock(&table[999999]); /* table class -> m1: a cycle */
    (void)!ox_mutex_lock(&m1);
    ox_mutex_unlock(&m1);
    ox_mutex_unlock(&table[999999]);
    CHECK_EQ(ox_lockdep_reports(), 1u);
    char *text = ox_test_stderr_text();
    CHECK_CONTAINS(text, "'&table[i]' (class of ");
    free(text);
    free(table);
}

/* try_lock adds no edge into the lock it tries. */
OX_TEST(lockdep_mutex_try_lock_adds_no_edge)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    lock_pair(&(pair){&m1, &m2});
    (void)!ox_mutex_lock(&m2);
    CHECK_EQ(ox_mutex_try_lock(&m1), 0);
    ox_mutex_unlock(&m1);
    ox_mutex_unlock(&m2);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    free(ox_test_stderr_text());
}

/* The mutex a condvar re-takes after waiting is an acquisition too. */
static ox_condvar cv = OX_CONDVAR_INIT;
static _Atomic int ready;

static void *notify_later(void *arg)
{
    (void)arg;
    (void)!ox_mutex_lock(&m1);
    atomic_store(&ready, 1);
    ox_condvar_notify_all(&cv);
    ox_mutex_unlock(&m1);
    return NULL;
}

OX_TEST(lockdep_condvar_relock_records_order)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    lock_pair(&(pair){&m1, &m2}); /* m1 -> m2 */
    (void)!ox_mutex_lock(&m2);
    (void)!ox_mutex_lock(&m1); /* m2 -> m1 through a condvar's re-lock below too */
    ox_join_handle h = ox_test_spawn_named("notifier", notify_later, NULL);
    while (!atomic_load(&ready))
        CHECK_EQ(ox_condvar_wait(&cv, &m1), 0);
    ox_mutex_unlock(&m1);
    ox_mutex_unlock(&m2);
    ox_test_join(&h);
    CHECK_EQ(ox_lockdep_reports(), 1u);
    free(ox_test_stderr_text());
}

/* The blocked-thread dump names a thread waiting for a mutex. */
static void *wait_for_m3(void *arg)
{
    (void)arg;
    (void)!ox_mutex_lock(&m2);
    (void)!ox_mutex_lock(&m3);
    ox_mutex_unlock(&m3);
    ox_mutex_unlock(&m2);
    return NULL;
}

OX_TEST(blocked_dump_shows_mutex_waiter)
{
    (void)!ox_mutex_lock(&m3);
    ox_join_handle h = ox_test_spawn_named("mutex waiter", wait_for_m3, NULL);
    char *text = NULL;
    ox_instant give_up = ox_instant_after(ox_test_bound(OX_SECS(10)));
    for (;;) {
        size_t len;
        FILE *f = open_memstream(&text, &len);
        int n = ox_dump_blocked_threads(f);
        fclose(f);
        if (n >= 1 && strstr(text, "mutex waiter") != NULL)
            break;
        free(text);
        CHECK(ox_instant_now().ns < give_up.ns);
        ox_thread_sleep(OX_MILLIS(1));
    }
    CHECK_CONTAINS(text, "blocked on mutex");
    CHECK_CONTAINS(text, "test_lockdep_sync.c:");
    CHECK_CONTAINS(text, "holding mutex");
    free(text);
    ox_mutex_unlock(&m3);
    ox_test_join(&h);
}

/* Issue 10 5.4: destroying a lock forgets its address. Two locks in memory
 * that is then reused for two new locks (free and malloc do this; here one
 * buffer stands for the allocator, so the reuse is certain), taken in the
 * other order: without the forget, the new pair inherits the old edge and
 * the opposite order is reported as a cycle. */
OX_TEST(lockdep_destroy_forgets_the_address_for_the_next_lock)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    static union {
        ox_mutex m[2];
        ox_rwlock l[2];
    } heap;
    for (int round = 0; round < 2; round++) {
        ox_mutex *a = &heap.m[round], *b = &heap.m[1 - round]; /* swapped the second time */
        ox_mutex_init(a);
        ox_mutex_init(b);
        CHECK_EQ(ox_mutex_lock(a), 0);
        CHECK_EQ(ox_mutex_lock(b), 0);
        ox_mutex_unlock(b);
        ox_mutex_unlock(a);
        ox_mutex_destroy(a);
        ox_mutex_destroy(b);
    }
    for (int round = 0; round < 2; round++) {
        ox_rwlock *a = &heap.l[round], *b = &heap.l[1 - round];
        ox_rwlock_init(a);
        ox_rwlock_init(b);
        CHECK_EQ(ox_rwlock_write(a), 0);
        CHECK_EQ(ox_rwlock_read(b), 0);
        ox_rwlock_read_unlock(b);
        ox_rwlock_write_unlock(a);
        ox_rwlock_destroy(a);
        ox_rwlock_destroy(b);
    }
    char *text = ox_test_stderr_text();
    CHECK_EQ(ox_lockdep_reports(), 0u);
    CHECK(strstr(text, "possible deadlock") == NULL);
    free(text);
}
