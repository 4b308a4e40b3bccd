/* The lock-order checker and the blocked-thread diagnosis.
 *
 * Named by scenario as the kernel's lockdep selftests (AA, ABBA, ABBCCA).
 * Until oxide's own locks are in the tree, the checker is driven through a
 * test-only lock built on the same hooks every oxide lock uses
 * (ox__held_push / ox__held_remove / ox__lock_before_block / ox__park_wait),
 * so what is tested is exactly what a mutex feeds the checker. */
#define _GNU_SOURCE
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include "panic/unwind.h"
#include "thread/park.h"
#include "check/lockdep.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a test-only lock: a three-state futex mutex on the hooks ---- */
typedef struct fake_lock {
    _Atomic uint32_t word; /* 0 unlocked, 1 locked, 2 locked with waiters */
} fake_lock;

static void fake_release(fake_lock *l)
{
    if (atomic_exchange_explicit(&l->word, 0, memory_order_release) == 2)
        ox__park_wake_one(&l->word);
}

static void fake_unwind_release(void *l, unsigned tag)
{
    (void)tag;
    fake_release(l);
}

static const ox__lock_ops fake_ops = {"fake lock", fake_unwind_release, NULL};
static const ox__wait_site fake_site = {.what = "fake lock"};

static void fake_lock_at(fake_lock *l, const char *file, int line)
{
    uint32_t unlocked = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->word, &unlocked, 1, memory_order_acquire,
                                                 memory_order_relaxed)) {
        ox__lock_before_block(l, &fake_ops, file, line);
        while (atomic_exchange_explicit(&l->word, 2, memory_order_acquire) != 0)
            ox__park_wait(&l->word, 2, OX_INSTANT_NEVER, &fake_site, l);
    }
    ox__held_push(l, &fake_ops, file, line);
}
#define fake_lock(l) fake_lock_at((l), __FILE__, __LINE__)

static bool fake_trylock(fake_lock *l)
{
    uint32_t unlocked = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->word, &unlocked, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        return false;
    ox__held_push_try(l, &fake_ops, __FILE__, __LINE__);
    return true;
}

static void fake_unlock(fake_lock *l)
{
    if (!ox__held_remove(l))
        ox_abort("fake_unlock", "unlocking a fake lock not held by this thread");
    fake_release(l);
}

/* ---- helpers ---- */

static char *site(int line)
{
    static char buf[4][64];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "test_lockdep.c:%d", line);
    return b;
}

/* ---- ABBA ---- */

static fake_lock m1, m2, m3;
static int line_a1, line_a2, line_b1, line_b2;

static void *take_1_then_2(void *arg)
{
    (void)arg;
    line_a1 = __LINE__ + 1;
    fake_lock(&m1);
    line_a2 = __LINE__ + 1;
    fake_lock(&m2);
    fake_unlock(&m2);
    fake_unlock(&m1);
    return NULL;
}

static void *take_2_then_1(void *arg)
{
    (void)arg;
    line_b1 = __LINE__ + 1;
    fake_lock(&m2);
    line_b2 = __LINE__ + 1;
    fake_lock(&m1);
    fake_unlock(&m1);
    fake_unlock(&m2);
    return NULL;
}

/* The guide's Thread A / Thread B, in a run that did not deadlock (the
 * threads ran one after the other): the order is still reported, with both
 * sites of both edges and both thread names. */
OX_TEST(lockdep_abba_reported_when_the_run_did_not_deadlock)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_test_run_named("thread A", take_1_then_2, NULL);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    ox_test_run_named("thread B", take_2_then_1, NULL);
    CHECK_EQ(ox_lockdep_reports(), 1u);
    CHECK_EQ(ox_lockdep_mode_get(), OX_LOCKDEP_OFF); /* off after the first report */
    char *text = ox_test_stderr_text();
    CHECK_CONTAINS(text, "oxide lockdep: possible deadlock");
    CHECK_CONTAINS(text, "through 2 lock classes");
    CHECK_CONTAINS(text, "thread 'thread A'");
    CHECK_CONTAINS(text, "thread 'thread B'");
    CHECK_CONTAINS(text, "fake lock");
    CHECK_CONTAINS(text, site(line_a1));
    CHECK_CONTAINS(text, site(line_a2));
    CHECK_CONTAINS(text, site(line_b1));
    CHECK_CONTAINS(text, site(line_b2));
    free(text);
}

/* The two threads really deadlock: each holds one lock and waits for the
 * other. The checker sees the second wait close the cycle before that
 * thread blocks, reports, and (abort mode) ends the process instead of
 * hanging until the runner's timeout. */
static _Atomic int holding;

static void *hold_then_take(void *arg)
{
    fake_lock *first = arg == NULL ? &m1 : &m2;
    fake_lock *second = arg == NULL ? &m2 : &m1;
    fake_lock(first);
    atomic_fetch_add_explicit(&holding, 1, memory_order_acq_rel);
    while (atomic_load_explicit(&holding, memory_order_acquire) < 2)
        ox_thread_yield();
    fake_lock(second); /* one of the two never gets past this line */
    fake_unlock(second);
    fake_unlock(first);
    return NULL;
}

OX_TEST_OPTS(lockdep_abba_deadlock_reported_before_hanging, .expect_signal = SIGABRT,
             .expect_stderr = "OX_LOCKDEP=abort", .timeout_s = 10)
{
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_ABORT), 0);
    ox_join_handle a = ox_test_spawn_named("thread A", hold_then_take, NULL);
    ox_join_handle b = ox_test_spawn_named("thread B", hold_then_take, (void *)1);
    ox_test_join(&a);
    ox_test_join(&b);
    ox_test_fail(__FILE__, __LINE__, "the deadlock was not reported");
}

/* The same without abort mode: the report comes out before the hang (the
 * checker cannot prevent the deadlock, only name it). The test reads the
 * report while the two threads are stuck, then ends the process. */
OX_TEST(lockdep_abba_report_printed_while_the_threads_hang)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_join_handle a = ox_test_spawn_named("thread A", hold_then_take, NULL);
    ox_join_handle b = ox_test_spawn_named("thread B", hold_then_take, (void *)1);
    ox_instant give_up = ox_instant_after(ox_test_bound(OX_SECS(5)));
    while (ox_lockdep_reports() == 0 && ox_instant_now().ns < give_up.ns)
        ox_thread_sleep(OX_MILLIS(1));
    CHECK_EQ(ox_lockdep_reports(), 1u);
    char *text = ox_test_stderr_text();
    CHECK_CONTAINS(text, "waited for fake lock");
    CHECK_CONTAINS(text, "thread 'thread A'");
    CHECK_CONTAINS(text, "thread 'thread B'");
    free(text);
    ox_join_handle_drop(&a);
    ox_join_handle_drop(&b);
    fflush(NULL);
    _exit(0); /* the two threads stay deadlocked */
}

/* ---- ABBCCA: a cycle through three classes, three threads ---- */

/* Takes a pair's first lock, then its second, and releases both. */
typedef struct pair {
    fake_lock *first, *second;
} pair;

static void *take_pair(void *arg)
{
    const pair *p = arg;
    fake_lock(p->first);
    fake_lock(p->second);
    fake_unlock(p->second);
    fake_unlock(p->first);
    return NULL;
}

OX_TEST(lockdep_abbcca_three_lock_cycle_reported)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_test_run_named("AB", take_1_then_2, NULL);
    ox_test_run_named("BC", take_pair, &(pair){&m2, &m3});
    CHECK_EQ(ox_lockdep_reports(), 0u);
    ox_test_run_named("CA", take_pair, &(pair){&m3, &m1});
    CHECK_EQ(ox_lockdep_reports(), 1u);
    char *text = ox_test_stderr_text();
    CHECK_CONTAINS(text, "through 3 lock classes");
    CHECK_CONTAINS(text, "thread 'AB'");
    CHECK_CONTAINS(text, "thread 'BC'");
    CHECK_CONTAINS(text, "thread 'CA'");
    free(text);
}

/* ---- no false positives ---- */

#define MANY 100
static fake_lock many[MANY];

/* Takes a random increasing subset of many[], sometimes all 100 at once,
 * nested; the order is always by index. */
static void *consistent_order_worker(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15u + 1;
    long rounds = ox_test_scaled(300);
    for (long r = 0; r < rounds; r++) {
        int taken[MANY], n = 0;
        for (int i = 0; i < MANY; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (r % 50 == 0 || x % 4 == 0) {
                fake_lock(&many[i]);
                taken[n++] = i;
            }
        }
        if (r % 2) { /* release newest first, or oldest first: any order is fine */
            while (n > 0)
                fake_unlock(&many[taken[--n]]);
        } else {
            for (int i = 0; i < n; i++)
                fake_unlock(&many[taken[i]]);
        }
    }
    return NULL;
}

OX_TEST(lockdep_consistent_order_of_100_locks_not_reported)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_join_handle h[4];
    for (int i = 0; i < 4; i++)
        h[i] = ox_test_spawn_named("ordered", consistent_order_worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 4; i++)
        ox_test_join(&h[i]);
    /* And the same locks re-taken in the same order, again and again. */
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < MANY; i++)
            fake_lock(&many[i]);
        for (int i = MANY; i-- > 0;)
            fake_unlock(&many[i]);
    }
    CHECK_EQ(ox_lockdep_reports(), 0u);
    CHECK_EQ(ox_lockdep_mode_get(), OX_LOCKDEP_REPORT);
    char *text = ox_test_stderr_text();
    CHECK_STR(text, "");
    free(text);
}

/* A trylock cannot deadlock: taking m1 by trylock while holding m2 adds no
 * edge m2 -> m1, so the usual m1 -> m2 elsewhere is no cycle. */
OX_TEST(lockdep_trylock_adds_no_edge_into_the_lock)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_test_run_named("thread A", take_1_then_2, NULL);
    fake_lock(&m2);
    CHECK(fake_trylock(&m1));
    fake_unlock(&m1);
    fake_unlock(&m2);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    free(ox_test_stderr_text());
}

/* ...but a lock taken by trylock is held like any other: taking m1 while
 * holding it (trylocked) records m3 -> m1, which closes m1 -> m3 -> ... */
OX_TEST(lockdep_edges_out_of_a_trylocked_lock_count)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    fake_lock(&m1);
    fake_lock(&m3); /* m1 -> m3 */
    fake_unlock(&m3);
    fake_unlock(&m1);
    CHECK(fake_trylock(&m3));
    fake_lock(&m1); /* m3 -> m1: a cycle */
    fake_unlock(&m1);
    fake_unlock(&m3);
    CHECK_EQ(ox_lockdep_reports(), 1u);
    free(ox_test_stderr_text());
}

/* ---- classes by initialisation site ---- */

#define ARRAY 10000
static fake_lock arr[ARRAY], other;

static void init_array(void)
{
    for (int i = 0; i < ARRAY; i++)
        OX_LOCK_CLASS_INIT(&arr[i]); /* one site: one class for all of them */
}

/* Two runs: other, then arr[5]; arr[7], then other. */
static void other_first_then_array_first(void)
{
    ox_test_run_named("other first", take_pair, &(pair){&other, &arr[5]});
    ox_test_run_named("array first", take_pair, &(pair){&arr[7], &other});
}

/* other -> arr[5] and arr[7] -> other involve different instances, but one
 * class: a thread doing the second with arr[5] would deadlock the first. */
OX_TEST(lockdep_class_by_init_site_links_instances)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    init_array();
    other_first_then_array_first();
    CHECK_EQ(ox_lockdep_reports(), 1u);
    char *text = ox_test_stderr_text();
    CHECK_CONTAINS(text, "'&arr[i]' (class of ");
    free(text);
}

/* Without registration each lock is its own class: the same two runs are
 * not a cycle (arr[5] and arr[7] are unrelated locks). */
OX_TEST(lockdep_unregistered_locks_are_their_own_class)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    other_first_then_array_first();
    CHECK_EQ(ox_lockdep_reports(), 0u);
    free(ox_test_stderr_text());
}

/* Same-class nesting in a consistent order (hand over hand along the
 * array, or by index) is not a cycle. */
OX_TEST(lockdep_same_class_nested_in_order_not_reported)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    init_array();
    for (int r = 0; r < 3; r++) {
        fake_lock(&arr[0]);
        for (int i = 1; i < 200; i++) { /* hand over hand */
            fake_lock(&arr[i]);
            fake_unlock(&arr[i - 1]);
        }
        fake_unlock(&arr[199]);
        fake_lock(&arr[3]); /* by index, some apart */
        fake_lock(&arr[50]);
        fake_lock(&arr[9000]);
        fake_unlock(&arr[3]);
        fake_unlock(&arr[9000]);
        fake_unlock(&arr[50]);
    }
    CHECK_EQ(ox_lockdep_reports(), 0u);
    free(ox_test_stderr_text());
}

/* ...but the two instances of one class taken in both orders are. */
OX_TEST(lockdep_same_class_inverted_reported)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    init_array();
    fake_lock(&arr[1]);
    fake_lock(&arr[2]);
    fake_unlock(&arr[2]);
    fake_unlock(&arr[1]);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    fake_lock(&arr[2]);
    fake_lock(&arr[1]);
    fake_unlock(&arr[1]);
    fake_unlock(&arr[2]);
    CHECK_EQ(ox_lockdep_reports(), 1u);
    char *text = ox_test_stderr_text();
    CHECK_CONTAINS(text, "through 2 locks of one class");
    free(text);
}

/* ox_lock_class_forget: a lock at a reused address starts afresh. */
OX_TEST(lockdep_forget_starts_a_new_class)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    fake_lock(&m1);
    fake_lock(&m2);
    fake_unlock(&m2);
    fake_unlock(&m1);
    ox_lock_class_forget(&m1); /* "freed", and a new lock lives there */
    fake_lock(&m2);
    fake_lock(&m1);
    fake_unlock(&m1);
    fake_unlock(&m2);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    free(ox_test_stderr_text());
}

/* Issue 17 #4: short-lived unregistered locks, retired with forget, do not
 * make the checker's memory grow: 64 alive at a time, thousands in total.
 * Each is taken between two long-lived locks and after the one made before
 * it, so retiring a lock removes edges in and out of it, also to another
 * short-lived lock. (Always new lock last: each search stays short.) */
static void churn_locks(fake_lock **ring, long n, long *made)
{
    enum { ALIVE = 64 };
    for (long i = 0; i < n; i++, (*made)++) {
        size_t slot = (size_t)(*made % ALIVE), prev = (size_t)((*made + ALIVE - 1) % ALIVE);
        if (ring[slot] != NULL) {
            ox_lock_class_forget(ring[slot]);
            free(ring[slot]);
        }
        ring[slot] = calloc(1, sizeof *ring[slot]);
        CHECK(ring[slot] != NULL);
        fake_lock(&m1);
        if (ring[prev] != NULL)
            fake_lock(ring[prev]);
        fake_lock(ring[slot]);
        fake_lock(&m2);
        fake_unlock(&m2);
        fake_unlock(ring[slot]);
        if (ring[prev] != NULL)
            fake_unlock(ring[prev]);
        fake_unlock(&m1);
    }
}

OX_TEST(lockdep_retired_locks_give_their_memory_back)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    fake_lock *ring[64] = {0};
    long made = 0;
    churn_locks(ring, 2000, &made);
    size_t warm = ox__lockdep_bytes();
    churn_locks(ring, ox_test_scaled(40000), &made);
    size_t later = ox__lockdep_bytes();
    free(ox_test_stderr_text()); /* our own failure messages go to stderr */
    CHECK_EQ(ox_lockdep_reports(), 0u);
    /* Bounded by the locks alive, not by the locks ever made (with
     * append-only nodes and edges it grew some twentyfold here). */
    if (later > 2 * warm)
        ox_test_fail(__FILE__, __LINE__, "the graph grew from %zu to %zu bytes", warm, later);
    for (int i = 0; i < 64; i++) {
        ox_lock_class_forget(ring[i]);
        free(ring[i]);
    }
}

/* Off: nothing is recorded, so the same ABBA is not reported. */
OX_TEST(lockdep_off_by_default_records_nothing)
{
    CHECK_EQ(ox_lockdep_mode_get(), getenv("OX_LOCKDEP") ? ox_lockdep_mode_get() : OX_LOCKDEP_OFF);
    if (getenv("OX_LOCKDEP") != NULL)
        return; /* the probe below, started with a value */
    take_1_then_2(NULL);
    take_2_then_1(NULL);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    CHECK_EQ(ox_lockdep_enable((ox_lockdep_mode)7), OX_EINVAL);
}

/* ---- the environment ---- */

static char *run_self_with_env(const char *test, const char *var, const char *value, char **err)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0);
    self[n] = '\0';
    CHECK_EQ(setenv(var, value, 1), 0);
    char *argv[] = {self, "--one", (char *)test, NULL};
    char *out = NULL;
    int status = ox_test_run_program(argv, 20, &out, err);
    CHECK(status != -1);
    unsetenv(var);
    return out;
}

static void *take_1_then_2_then_2_then_1(void *arg)
{
    take_1_then_2(arg);
    take_2_then_1(arg);
    return NULL;
}

/* Started by the tests below with OX_LOCKDEP set. */
OX_TEST(lockdep_env_probe)
{
    printf("mode %d\n", (int)ox_lockdep_mode_get());
    fflush(stdout);
    if (ox_lockdep_mode_get() != OX_LOCKDEP_OFF)
        take_1_then_2_then_2_then_1(NULL);
    printf("reports %u\n", ox_lockdep_reports());
}

OX_TEST(lockdep_env_values)
{
    char *err = NULL;
    char *out = run_self_with_env("lockdep_env_probe", "OX_LOCKDEP", "report", &err);
    CHECK_CONTAINS(out, "mode 1\nreports 1");
    CHECK_CONTAINS(err, "possible deadlock");
    free(out), free(err);
    out = run_self_with_env("lockdep_env_probe", "OX_LOCKDEP", "1", &err);
    CHECK_CONTAINS(out, "mode 1\n");
    free(out), free(err);
    out = run_self_with_env("lockdep_env_probe", "OX_LOCKDEP", "abort", &err);
    CHECK_CONTAINS(out, "mode 2\n");
    CHECK(strstr(out, "reports") == NULL); /* aborted at the cycle */
    CHECK_CONTAINS(err, "aborting at the first lock-order cycle");
    free(out), free(err);
    out = run_self_with_env("lockdep_env_probe", "OX_LOCKDEP", "0", &err);
    CHECK_CONTAINS(out, "mode 0\nreports 0");
    free(out), free(err);
}

OX_TEST(lockdep_env_unknown_value_is_reported)
{
    char *err = NULL;
    char *out = run_self_with_env("lockdep_env_probe", "OX_LOCKDEP", "yes please", &err);
    CHECK_CONTAINS(out, "mode 0\n");
    CHECK_CONTAINS(err, "OX_LOCKDEP='yes please' is not one of");
    free(out), free(err);
    out = run_self_with_env("lockdep_env_probe", "OX_DUMP_SIGNAL", "USR9", &err);
    CHECK_CONTAINS(err, "OX_DUMP_SIGNAL='USR9' is not");
    free(out), free(err);
}

/* ---- blocked-thread diagnosis ---- */

static fake_lock wanted, kept;
static int line_kept, line_wanted;

static void *keep_then_want(void *arg)
{
    (void)arg;
    line_kept = __LINE__ + 1;
    fake_lock(&kept);
    line_wanted = __LINE__ + 1;
    fake_lock(&wanted); /* blocks: main holds it */
    fake_unlock(&wanted);
    fake_unlock(&kept);
    return NULL;
}

OX_TEST(blocked_dump_names_thread_object_site_and_held_locks)
{
    int count;
    char *text = ox_test_dump_blocked(&count);
    CHECK_EQ(count, 0);
    CHECK_CONTAINS(text, "(none)");
    free(text);

    fake_lock(&wanted);
    _Atomic int done = 0;
    ox_join_handle w = ox_test_spawn_named("waiter", keep_then_want, NULL);
    ox_join_handle p = ox_test_spawn_named("sleeper", ox_test_park_until_done, &done);
    ox_test_wait_any_blocked(2);
    text = ox_test_dump_blocked(&count);
    CHECK_EQ(count, 2);
    char expect[256];
    snprintf(expect, sizeof expect, "thread 'waiter' (id %llu) blocked on fake lock %p",
             (unsigned long long)ox_thread_id(ox_join_handle_thread(&w)), (void *)&wanted);
    CHECK_CONTAINS(text, expect);
    snprintf(expect, sizeof expect, "%s\n    holding fake lock %p, locked at ", site(line_wanted),
             (void *)&kept);
    CHECK_CONTAINS(text, expect); /* ", called at <dir>/test_lockdep.c:N" */
    snprintf(expect, sizeof expect, "%s\n", site(line_kept));
    CHECK_CONTAINS(text, expect);
    CHECK_CONTAINS(text, "thread 'sleeper'");
    CHECK_CONTAINS(text, "blocked on thread park");
    free(text);

    fake_unlock(&wanted);
    ox_test_join(&w);
    atomic_store_explicit(&done, 1, memory_order_release);
    ox_thread_unpark(ox_join_handle_thread(&p));
    ox_test_join(&p);
    text = ox_test_dump_blocked(&count);
    CHECK_EQ(count, 0);
    free(text);
}

OX_TEST(blocked_dump_on_signal_when_opted_in)
{
    ox_test_capture_stderr();
    CHECK_EQ(ox_dump_on_signal(SIGUSR1), 0);
    _Atomic int done = 0;
    ox_join_handle p = ox_test_spawn_named("parked one", ox_test_park_until_done, &done);
    ox_test_wait_any_blocked(1);
    CHECK_EQ(raise(SIGUSR1), 0);
    char *text = ox_test_stderr_text();
    CHECK_CONTAINS(text, "oxide: threads blocked in oxide:\n  thread 'parked one'");
    CHECK_CONTAINS(text, "blocked on thread park");
    free(text);
    CHECK_EQ(ox_dump_on_signal(0), 0);
    atomic_store_explicit(&done, 1, memory_order_release);
    ox_thread_unpark(ox_join_handle_thread(&p));
    ox_test_join(&p);
}

OX_TEST(blocked_dump_signal_from_env)
{
    char *err = NULL;
    char *out = run_self_with_env("blocked_dump_signal_probe", "OX_DUMP_SIGNAL", "USR1", &err);
    CHECK_CONTAINS(err, "thread 'parked one'");
    free(out), free(err);
}

/* Started by the test above: a dump by signal, from the environment only. */
OX_TEST(blocked_dump_signal_probe)
{
    if (getenv("OX_DUMP_SIGNAL") == NULL)
        return;
    _Atomic int done = 0;
    ox_join_handle p = ox_test_spawn_named("parked one", ox_test_park_until_done, &done);
    ox_test_wait_any_blocked(1);
    CHECK_EQ(raise(SIGUSR1), 0);
    atomic_store_explicit(&done, 1, memory_order_release);
    ox_thread_unpark(ox_join_handle_thread(&p));
    ox_test_join(&p);
}
