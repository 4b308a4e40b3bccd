/* break35: attacks on the mutex's spin that takes the word (8d1d52c:
 * spin_and_take, a lost race for a free word spins on; a woken thread takes
 * the word as CONTENDED).
 *
 * A lost wakeup here strands a sleeper on a word that is not CONTENDED with
 * nobody awake who will make it so: fresh lockers then take LOCKED, unlock
 * without a wake, and the sleeper sleeps on once they stop. So every test
 * ends with the contenders running out one by one (the last sleepers have
 * nobody left to rescue them), and a watchdog polls for the end instead of
 * joining blindly: a thread still out after a generous bound fails the test
 * with the word's value. Exclusion is checked with a plain (non-atomic)
 * inside flag and counter, poisoning exactly (EPOISONED iff a panic since
 * the last clear), and the word must be UNLOCKED once everyone is done.
 *
 * Paths: more threads than CPUs mixing untimed, timed (0 to 50 us, and
 * deadlines), and try locks; condvar notify_all (which requeues the
 * waiters onto the word) against plain and timed lockers and timed condvar
 * waits; tasks and threads on one word; panics while holding under
 * contention.
 */
#define _GNU_SOURCE
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

/* ---- the watchdog ---- */

/* Waits until *finished reaches n, failing (with the word) if it does not
 * within ox_test_bound(15 s): the budgets below end every worker within
 * about 2 s (times the timeout scale), so a worker still out by then is
 * stuck. */
static void watch(const _Atomic int *finished, int n, ox_mutex *m, const char *what)
{
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_SECS(15));
    while (atomic_load(finished) < n) {
        if (ox_instant_now().ns > give_up)
            ox_test_fail(__FILE__, __LINE__, "%s: %d of %d workers done after the bound; word %u",
                         what, atomic_load(finished), n,
                         (unsigned)atomic_load_explicit(&m->state, memory_order_relaxed));
        ox_thread_sleep(OX_MILLIS(1));
    }
}

/* The word once everyone is done: released, so UNLOCKED. */
static void check_quiet(ox_mutex *m)
{
    CHECK_EQ(atomic_load_explicit(&m->state, memory_order_relaxed), OX__MUTEX_UNLOCKED);
    CHECK_EQ(ox_mutex_try_lock(m), 0);
    ox_mutex_unlock(m);
}

/* ---- more threads than CPUs: untimed, timed, deadline and try locks ---- */

enum { MIX_THREADS = 8 };

struct mix {
    ox_mutex m;
    int inside;   /* under m */
    long counter; /* under m */
    ox_test_budget budget;
    _Atomic long taken, timed_out, busy;
    _Atomic int finished;
};

static struct mix mix;

static void mix_hold(uint32_t *x)
{
    if (mix.inside++ != 0)
        ox_panic("two holders");
    mix.counter++;
    uint32_t r = ox_test_rand(x) % 32;
    if (r == 0)
        ox_thread_yield(); /* the others' spins end: they sleep */
    else if (r < 8)
        ox_test_spin_ns(r * 200);
    mix.inside--;
    ox_mutex_unlock(&mix.m);
}

static void *mix_worker(void *arg)
{
    uint32_t x = 0x9e3779b9u ^ (uint32_t)(uintptr_t)arg * 2654435761u;
    if (x == 0)
        x = 1;
    long i = 0, taken = 0;
    for (; ox_test_budget_more(&mix.budget, i); i++) {
        uint32_t r = ox_test_rand(&x);
        int rc;
        switch (r % 6) {
        case 0:
        case 1:
            rc = ox_mutex_lock(&mix.m);
            break;
        case 2:
            rc = ox_mutex_lock_timeout(&mix.m, OX_MICROS((r >> 8) % 50));
            break;
        case 3:
            rc = ox_mutex_lock_timeout(&mix.m, 0);
            break;
        case 4:
            rc = ox_mutex_lock_deadline(&mix.m, ox_instant_after(OX_MICROS((r >> 8) % 20)));
            break;
        default:
            rc = ox_mutex_try_lock(&mix.m);
            break;
        }
        if (rc == OX_ETIMEDOUT) {
            atomic_fetch_add(&mix.timed_out, 1);
            continue;
        }
        if (rc == OX_EBUSY) {
            atomic_fetch_add(&mix.busy, 1);
            continue;
        }
        CHECK_EQ(rc, 0);
        taken++;
        mix_hold(&x);
    }
    /* The tail: untimed locks only, while the others run out. */
    for (int k = 0; k < 50; k++) {
        CHECK_EQ(ox_mutex_lock(&mix.m), 0);
        taken++;
        mix_hold(&x);
    }
    atomic_fetch_add(&mix.taken, taken);
    atomic_fetch_add(&mix.finished, 1);
    return NULL;
}

OX_TEST(break35_mutex_timed_untimed_try_oversubscribed)
{
    memset(&mix, 0, sizeof mix);
    ox_mutex_init(&mix.m);
    mix.budget = ox_test_budget_start_s(2000, ox_test_scaled(40000), 0.3);
    ox_join_handle h[MIX_THREADS];
    for (int i = 0; i < MIX_THREADS; i++)
        h[i] = ox_thread_spawn(mix_worker, (void *)(uintptr_t)(i + 1));
    watch(&mix.finished, MIX_THREADS, &mix.m, "mixed lockers");
    for (int i = 0; i < MIX_THREADS; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(mix.counter, atomic_load(&mix.taken));
    CHECK_EQ(mix.inside, 0);
    check_quiet(&mix.m);
}

/* ---- condvar notify_all (requeue onto the word) against lockers ---- */

enum { CV_WAITERS = 4, CV_LOCKERS = 3, CV_TASK_BIT = 1 << 16 };

struct cvmix {
    ox_mutex m;
    ox_condvar cv;
    int inside;      /* under m */
    long counter;    /* under m */
    long generation; /* under m */
    int stop;        /* under m */
    ox_test_budget budget;
    _Atomic long taken, seen, timed_out;
    _Atomic int finished, waited; /* waited: waiters that waited at least once */
};

static struct cvmix cvm;

static void cv_enter(void)
{
    if (cvm.inside++ != 0)
        ox_panic("two holders");
    cvm.counter++;
}

static void *cv_waiter(void *arg)
{
    uint32_t x = 0x85ebca6bu ^ (uint32_t)(uintptr_t)arg * 2246822519u;
    long taken = 0, seen = 0;
    bool waited = false, last_wait_saw_a_change = false;
    CHECK_EQ(ox_mutex_lock(&cvm.m), 0);
    for (;;) {
        cv_enter();
        taken++;
        if (cvm.stop) {
            /* The generation read before the last wait was read before the
             * stop, which moves the generation: that wait must see it. A
             * waiter that first locks after the stop never waits. */
            if (waited)
                CHECK(last_wait_saw_a_change);
            cvm.inside--;
            break;
        }
        long g = cvm.generation;
        cvm.inside--;
        int rc;
        if (ox_test_rand(&x) % 3 == 0)
            rc = ox_condvar_wait_timeout(&cvm.cv, &cvm.m, OX_MICROS(ox_test_rand(&x) % 100));
        else
            rc = ox_condvar_wait(&cvm.cv, &cvm.m);
        CHECK(rc == 0 || rc == OX_ETIMEDOUT);
        if (rc == OX_ETIMEDOUT)
            atomic_fetch_add(&cvm.timed_out, 1);
        waited = true;
        last_wait_saw_a_change = cvm.generation != g;
        if (last_wait_saw_a_change)
            seen++;
    }
    ox_mutex_unlock(&cvm.m);
    atomic_fetch_add(&cvm.taken, taken);
    atomic_fetch_add(&cvm.seen, seen);
    if (waited)
        atomic_fetch_add(&cvm.waited, 1);
    atomic_fetch_add(&cvm.finished, 1);
    return NULL;
}

static void *cv_locker(void *arg)
{
    uint32_t x = 0xc2b2ae35u ^ (uint32_t)(uintptr_t)arg * 3266489917u;
    long taken = 0;
    for (long i = 0; ox_test_budget_more(&cvm.budget, i); i++) {
        uint32_t r = ox_test_rand(&x);
        int rc = r % 3 == 0   ? ox_mutex_lock_timeout(&cvm.m, OX_MICROS((r >> 8) % 30))
                 : r % 3 == 1 ? ox_mutex_try_lock(&cvm.m)
                              : ox_mutex_lock(&cvm.m);
        if (rc == OX_ETIMEDOUT || rc == OX_EBUSY)
            continue;
        CHECK_EQ(rc, 0);
        cv_enter();
        taken++;
        if ((r >> 16) % 16 == 0) {
            if ((uintptr_t)arg & CV_TASK_BIT)
                ox_task_yield();
            else
                ox_thread_yield();
        }
        cvm.inside--;
        ox_mutex_unlock(&cvm.m);
    }
    atomic_fetch_add(&cvm.taken, taken);
    atomic_fetch_add(&cvm.finished, 1);
    return NULL;
}

static void *cv_notifier(void *arg)
{
    (void)arg;
    uint32_t x = 0x27d4eb2fu;
    long taken = 0;
    for (long i = 0; ox_test_budget_more(&cvm.budget, i); i++) {
        CHECK_EQ(ox_mutex_lock(&cvm.m), 0);
        cv_enter();
        taken++;
        cvm.generation++;
        bool inside = ox_test_rand(&x) & 1;
        if (inside)
            ox_condvar_notify_all(&cvm.cv); /* the waiters are requeued onto a held word */
        cvm.inside--;
        ox_mutex_unlock(&cvm.m);
        if (!inside)
            ox_condvar_notify_all(&cvm.cv);
        if (i % 8 == 0)
            ox_thread_yield();
    }
    CHECK_EQ(ox_mutex_lock(&cvm.m), 0);
    cv_enter();
    taken++;
    cvm.stop = 1;
    cvm.generation++;
    ox_condvar_notify_all(&cvm.cv);
    cvm.inside--;
    ox_mutex_unlock(&cvm.m);
    atomic_fetch_add(&cvm.taken, taken);
    atomic_fetch_add(&cvm.finished, 1);
    return NULL;
}

OX_TEST(break35_condvar_notify_all_requeue_vs_lockers)
{
    memset(&cvm, 0, sizeof cvm);
    ox_mutex_init(&cvm.m);
    ox_condvar_init(&cvm.cv);
    cvm.budget = ox_test_budget_start_s(500, ox_test_scaled(6000), 0.3);
    enum { N = CV_WAITERS + CV_LOCKERS + 1 };
    ox_join_handle h[N];
    int k = 0;
    for (int i = 0; i < CV_WAITERS; i++)
        h[k++] = ox_thread_spawn(cv_waiter, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < CV_LOCKERS; i++)
        h[k++] = ox_thread_spawn(cv_locker, (void *)(uintptr_t)(i + 1));
    h[k++] = ox_thread_spawn(cv_notifier, NULL);
    watch(&cvm.finished, N, &cvm.m, "condvar waiters and lockers");
    for (int i = 0; i < N; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(cvm.counter, atomic_load(&cvm.taken));
    CHECK_EQ(cvm.inside, 0);
    /* Every waiter that waited saw at least the final generation (the
     * stop); one spawned late may have found the stop and never waited. */
    CHECK(atomic_load(&cvm.seen) >= atomic_load(&cvm.waited));
    check_quiet(&cvm.m);
}

/* The same with tasks among the waiters and the lockers: notify_all wakes
 * the tasks (each queues on the word by itself) and requeues the threads. */
OX_TEST(break35_condvar_notify_all_tasks_and_threads_vs_lockers)
{
    memset(&cvm, 0, sizeof cvm);
    ox_mutex_init(&cvm.m);
    ox_condvar_init(&cvm.cv);
    cvm.budget = ox_test_budget_start_s(500, ox_test_scaled(6000), 0.3);
    ox_runtime *rt = ox_test_runtime(2);
    enum { TASKS = 3, THREADS = 5, N = TASKS + THREADS };
    ox_task_handle ts[TASKS];
    ox_join_handle th[THREADS];
    /* Tasks: two waiters, a locker. Threads: two waiters, two lockers, the
     * notifier. */
    ts[0] = ox_test_spawn_on(rt, cv_waiter, (void *)(uintptr_t)(CV_TASK_BIT | 1));
    ts[1] = ox_test_spawn_on(rt, cv_waiter, (void *)(uintptr_t)(CV_TASK_BIT | 2));
    ts[2] = ox_test_spawn_on(rt, cv_locker, (void *)(uintptr_t)(CV_TASK_BIT | 3));
    th[0] = ox_thread_spawn(cv_waiter, (void *)(uintptr_t)4);
    th[1] = ox_thread_spawn(cv_waiter, (void *)(uintptr_t)5);
    th[2] = ox_thread_spawn(cv_locker, (void *)(uintptr_t)6);
    th[3] = ox_thread_spawn(cv_locker, (void *)(uintptr_t)7);
    th[4] = ox_thread_spawn(cv_notifier, NULL);
    watch(&cvm.finished, N, &cvm.m, "condvar tasks, threads and lockers");
    for (int i = 0; i < TASKS; i++)
        CHECK_EQ(ox_task_join(&ts[i], NULL, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(ox_thread_join(&th[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    CHECK_EQ(cvm.counter, atomic_load(&cvm.taken));
    CHECK_EQ(cvm.inside, 0);
    CHECK(atomic_load(&cvm.seen) >= atomic_load(&cvm.waited));
    check_quiet(&cvm.m);
}

/* ---- tasks and threads on one word ---- */

enum { TT_TASKS = 4, TT_THREADS = 4, TASK_BIT = 1 << 16 };

struct tasks_threads {
    ox_mutex m;
    int inside;   /* under m */
    long counter; /* under m */
    ox_test_budget budget;
    _Atomic long taken, timed_out;
    _Atomic int finished;
};

static struct tasks_threads tt;

static void *tt_worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    bool task = (id & TASK_BIT) != 0;
    uint32_t x = 0x165667b1u ^ (uint32_t)id * 2654435761u;
    long taken = 0;
    for (long i = 0; ox_test_budget_more(&tt.budget, i); i++) {
        uint32_t r = ox_test_rand(&x);
        int rc = r % 4 == 0   ? ox_mutex_lock_timeout(&tt.m, OX_MICROS((r >> 8) % 40))
                 : r % 4 == 1 ? ox_mutex_try_lock(&tt.m)
                              : ox_mutex_lock(&tt.m);
        if (rc == OX_ETIMEDOUT) {
            atomic_fetch_add(&tt.timed_out, 1);
            continue;
        }
        if (rc == OX_EBUSY)
            continue;
        CHECK_EQ(rc, 0);
        if (tt.inside++ != 0)
            ox_panic("two holders");
        tt.counter++;
        taken++;
        if ((r >> 16) % 16 == 0) {
            /* Hold it while off the CPU: the others spin out and sleep (a
             * task in the parking lot, a thread on the futex). */
            if (task)
                ox_task_yield();
            else
                ox_thread_yield();
        }
        tt.inside--;
        ox_mutex_unlock(&tt.m);
        if (task && (r >> 20) % 8 == 0)
            ox_task_yield();
    }
    atomic_fetch_add(&tt.taken, taken);
    atomic_fetch_add(&tt.finished, 1);
    return NULL;
}

OX_TEST(break35_mutex_tasks_and_threads_one_word)
{
    memset(&tt, 0, sizeof tt);
    ox_mutex_init(&tt.m);
    tt.budget = ox_test_budget_start_s(1000, ox_test_scaled(20000), 0.3);
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle ts[TT_TASKS];
    ox_join_handle th[TT_THREADS];
    for (int i = 0; i < TT_TASKS; i++)
        ts[i] = ox_test_spawn_on(rt, tt_worker, (void *)(uintptr_t)(TASK_BIT | (i + 1)));
    for (int i = 0; i < TT_THREADS; i++)
        th[i] = ox_thread_spawn(tt_worker, (void *)(uintptr_t)(i + 1));
    watch(&tt.finished, TT_TASKS + TT_THREADS, &tt.m, "tasks and threads");
    for (int i = 0; i < TT_TASKS; i++)
        CHECK_EQ(ox_task_join(&ts[i], NULL, NULL), 0);
    for (int i = 0; i < TT_THREADS; i++)
        CHECK_EQ(ox_thread_join(&th[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    CHECK_EQ(tt.counter, atomic_load(&tt.taken));
    CHECK_EQ(tt.inside, 0);
    check_quiet(&tt.m);
}

/* ---- panics while holding, under contention ---- */

enum { PZ_THREADS = 6 };

struct poison_mix {
    ox_mutex m;
    int inside;   /* under m */
    long counter; /* under m */
    int expected; /* under m: a panic released m since the last clear */
    ox_test_budget budget;
    _Atomic long taken, panics, poisoned_seen, missed, spurious;
    _Atomic int finished;
};

static struct poison_mix pz;

/* Under m, with what the lock returned: the flag must say exactly what
 * happened since the last clear. */
static void pz_check(int rc)
{
    if (pz.inside++ != 0)
        ox_panic("two holders");
    pz.counter++;
    if (pz.expected && rc != OX_EPOISONED)
        atomic_fetch_add(&pz.missed, 1);
    if (!pz.expected && rc != 0)
        atomic_fetch_add(&pz.spurious, 1);
    if (rc == OX_EPOISONED)
        atomic_fetch_add(&pz.poisoned_seen, 1);
}

static void *pz_panic_holding(void *arg)
{
    (void)arg;
    int rc = ox_mutex_lock(&pz.m);
    pz_check(rc);
    pz.expected = 1;
    pz.inside--;
    ox_panic("boom while holding (expected)");
}

static void *pz_worker(void *arg)
{
    uint32_t x = 0xd3a2646cu ^ (uint32_t)(uintptr_t)arg * 2246822519u;
    bool panicker = (uintptr_t)arg <= 2;
    long taken = 0;
    for (long i = 0; ox_test_budget_more(&pz.budget, i); i++) {
        uint32_t r = ox_test_rand(&x);
        if (panicker && r % 16 == 0) {
            CHECK_EQ(ox_catch_unwind(pz_panic_holding, NULL, NULL, NULL), OX_EPANICKED);
            atomic_fetch_add(&pz.panics, 1);
            taken++;
            continue;
        }
        int rc = r % 4 == 0   ? ox_mutex_lock_timeout(&pz.m, OX_MICROS((r >> 8) % 40))
                 : r % 4 == 1 ? ox_mutex_try_lock(&pz.m)
                              : ox_mutex_lock(&pz.m);
        if (rc == OX_ETIMEDOUT || rc == OX_EBUSY)
            continue;
        pz_check(rc);
        taken++;
        if ((r >> 12) % 16 == 0)
            ox_thread_yield();
        if (rc == OX_EPOISONED && (r >> 16) % 4 == 0) {
            ox_mutex_clear_poison(&pz.m);
            pz.expected = 0;
        }
        pz.inside--;
        ox_mutex_unlock(&pz.m);
    }
    atomic_fetch_add(&pz.taken, taken);
    atomic_fetch_add(&pz.finished, 1);
    return NULL;
}

OX_TEST(break35_mutex_poison_under_contention)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    memset(&pz, 0, sizeof pz);
    ox_mutex_init(&pz.m);
    pz.budget = ox_test_budget_start_s(1000, ox_test_scaled(10000), 0.3);
    ox_join_handle h[PZ_THREADS];
    for (int i = 0; i < PZ_THREADS; i++)
        h[i] = ox_thread_spawn(pz_worker, (void *)(uintptr_t)(i + 1));
    watch(&pz.finished, PZ_THREADS, &pz.m, "poisoners and lockers");
    for (int i = 0; i < PZ_THREADS; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(pz.counter, atomic_load(&pz.taken));
    CHECK_EQ(pz.inside, 0);
    CHECK_EQ(atomic_load(&pz.missed), 0);
    CHECK_EQ(atomic_load(&pz.spurious), 0);
    CHECK(atomic_load(&pz.panics) > 0);
    CHECK(atomic_load(&pz.poisoned_seen) > 0);
    CHECK_EQ(ox_mutex_is_poisoned(&pz.m), pz.expected);
    ox_mutex_clear_poison(&pz.m);
    check_quiet(&pz.m);
}

/* ---- a woken sleeper that loses the free word to a fresh locker ---- */

/* Three threads asleep on a held word; a racer spins on try_lock while
 * the holder lets go, so the woken sleeper most often finds the word taken
 * again (LOCKED, by a thread that never slept) and spins on. The racer's
 * unlock then wakes nobody: the woken sleeper must take the word as
 * CONTENDED, so that its own unlock wakes the next, and so on to the last.
 * A woken sleeper taking LOCKED strands the other two (the watchdog). */
enum { WL_SLEEPERS = 3 };

struct woken_loser {
    ox_mutex m;
    int inside;   /* under m */
    long counter; /* under m */
    _Atomic int racing, finished;
};

static struct woken_loser wl;

static void wl_hold(int64_t ns)
{
    if (wl.inside++ != 0)
        ox_panic("two holders");
    wl.counter++;
    ox_test_spin_ns(ns);
    wl.inside--;
    ox_mutex_unlock(&wl.m);
}

static void *wl_sleeper(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_mutex_lock(&wl.m), 0);
    wl_hold(1000);
    atomic_fetch_add(&wl.finished, 1);
    return NULL;
}

static void *wl_racer(void *arg)
{
    (void)arg;
    atomic_store(&wl.racing, 1);
    while (ox_mutex_try_lock(&wl.m) != 0)
        ox_test_spin_ns(50);
    wl_hold(20000); /* long enough for the woken sleeper to spin out its yields */
    atomic_fetch_add(&wl.finished, 1);
    return NULL;
}

OX_TEST(break35_mutex_woken_loser_hands_the_wake_on)
{
    memset(&wl, 0, sizeof wl);
    ox_mutex_init(&wl.m);
    long rounds = ox_test_scaled(40) < 4 ? 4 : ox_test_scaled(40);
    long expected = 0;
    for (long r = 0; r < rounds; r++) {
        atomic_store(&wl.finished, 0);
        atomic_store(&wl.racing, 0);
        CHECK_EQ(ox_mutex_lock(&wl.m), 0);
        ox_join_handle h[WL_SLEEPERS + 1];
        for (int i = 0; i < WL_SLEEPERS; i++)
            h[i] = ox_thread_spawn(wl_sleeper, NULL);
        ox_test_wait_blocked_on(&wl.m, WL_SLEEPERS);
        CHECK_EQ(atomic_load_explicit(&wl.m.state, memory_order_relaxed), OX__MUTEX_CONTENDED);
        h[WL_SLEEPERS] = ox_thread_spawn(wl_racer, NULL);
        while (atomic_load(&wl.racing) == 0)
            ox_thread_yield();
        ox_mutex_unlock(&wl.m);
        watch(&wl.finished, WL_SLEEPERS + 1, &wl.m, "woken sleepers behind a racer");
        for (int i = 0; i < WL_SLEEPERS + 1; i++)
            CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
        expected += WL_SLEEPERS + 1;
        CHECK_EQ(wl.counter, expected);
        check_quiet(&wl.m);
    }
}
