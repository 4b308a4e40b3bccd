/* break37: attacks on the mutex's store unlock (c301c86): an unlock stores
 * UNLOCKED while no thread sleeps on the word; a thread about to sleep
 * counts itself in the flags, sets SWAP_UNLOCK, fences every thread
 * (membarrier) and sets SWAP_FENCED; the last one out clears both bits
 * unless a condvar requeue made them sticky; poison lives in the same word.
 *
 * A lost wake hangs a test: the waits below give up after a few seconds
 * and fail by name (or the runner's timeout does). Every test also checks
 * mutual exclusion (a count of holders, and a non-atomic counter checked
 * afterwards) and that the flags' sleeper count is back to 0 at the end,
 * with both SWAP bits clear where nothing made them sticky (a count that
 * leaked keeps unlocks swapping; one that underflowed would clear the bits
 * under a sleeper).
 *
 * Paths: timed lockers that enter, fence, time out and leave while an
 * untimed one stays asleep (the bits must stay set under it); churn of
 * timed, untimed and try lockers with short holds (spells of sleeping
 * begin and end all the time, so stores race the fences); notify_all
 * requeueing waiters onto a freshly initialised mutex (store mode, not
 * sticky), which then goes quiet; tasks and threads on one mutex, timed
 * and untimed; panics unwinding through a holder while others sleep, with
 * ox_mutex_clear_poison racing the sleepers' count updates; a forked child
 * that inherits an armed mutex and then makes its own threads sleep (its
 * membarrier must still work); condvar waiters (sticky) sharing the mutex
 * with timed lockers; a seccomp filter installed after start-up that
 * denies membarrier (FOUND: the first sleeper aborted the process; fixed
 * by polling, see the last test).
 */
#define _GNU_SOURCE
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The flags' private bits (src/sync/mutex.c). */
#define SWAP_BITS   (OX__MUTEX_SWAP_UNLOCK | OX__MUTEX_SWAP_FENCED)
#define SWAP_STICKY 8u

static uint32_t flags_of(ox_mutex *m)
{
    return atomic_load(&m->flags);
}

static uint32_t sleepers_of(ox_mutex *m)
{
    return flags_of(m) >> 4;
}

static void lock(ox_mutex *m)
{
    (void)!ox_mutex_lock(m);
}

/* Waits until *flag reaches want, failing once nothing has moved for
 * 3 s: neither the flag nor *progress (the lock's count of holds; NULL:
 * the flag alone). A lost wake stops both; a slow run (the chaos build,
 * more threads than CPUs) only slows them. The failure shows the mutex. */
static void await_progress(_Atomic int *flag, int want, _Atomic long *progress, ox_mutex *m,
                           const char *what)
{
    long last = progress != NULL ? atomic_load(progress) : 0;
    int last_flag = atomic_load(flag);
    ox_instant until = ox_instant_after(OX_MILLIS(3000));
    while (atomic_load(flag) < want) {
        long now = progress != NULL ? atomic_load(progress) : 0;
        if (now != last || atomic_load(flag) != last_flag) {
            last = now;
            last_flag = atomic_load(flag);
            until = ox_instant_after(OX_MILLIS(3000));
        } else if (ox_instant_now().ns > until.ns) {
            uint32_t st = atomic_load(&m->state);
            uint32_t f = atomic_load(&m->flags);
            (void)ox_dump_blocked_threads(stderr);
            ox_test_fail(__FILE__, __LINE__,
                         "%s: %d of %d, no progress for 3 s (holds %ld; state %u, flags 0x%x: "
                         "%u counted)",
                         what, atomic_load(flag), want, now, st, f, f >> 4);
        }
        ox_thread_sleep(OX_MICROS(200));
    }
}

/* The checks of a quiet mutex: nobody counted, unlocked, and (unless a
 * requeue made them sticky) unlocks store again. */
static void check_quiet(ox_mutex *m, bool sticky_allowed)
{
    uint32_t f = flags_of(m);
    if ((f >> 4) != 0)
        ox_test_fail(__FILE__, __LINE__, "flags 0x%x: %u sleepers left counted", f, f >> 4);
    CHECK_EQ(atomic_load(&m->state), OX__MUTEX_UNLOCKED);
    if (!sticky_allowed && (f & (SWAP_BITS | SWAP_STICKY)) != 0)
        ox_test_fail(__FILE__, __LINE__, "flags 0x%x: swap bits left set with nobody counted", f);
}

/* A critical section: one holder at a time, and a non-atomic counter. */
struct guarded {
    ox_mutex m;
    _Atomic int inside;
    long counter; /* under m */
    _Atomic long taken;
    _Atomic long seen_sleepers; /* holders that saw a sleeper counted */
};

static void enter_critical(struct guarded *g, int64_t hold_ns)
{
    if (atomic_fetch_add(&g->inside, 1) != 0)
        ox_test_fail(__FILE__, __LINE__, "two holders of the mutex (flags 0x%x)", flags_of(&g->m));
    long c = g->counter;
    if (sleepers_of(&g->m) != 0)
        atomic_fetch_add_explicit(&g->seen_sleepers, 1, memory_order_relaxed);
    if (hold_ns > 0)
        ox_test_spin_ns(hold_ns);
    g->counter = c + 1;
    atomic_fetch_add(&g->inside, -1);
    atomic_fetch_add_explicit(&g->taken, 1, memory_order_relaxed);
}

/* A hold drawn from r: mostly none or a few microseconds, and now and
 * then long enough (20-60 us) for waiters to finish their backoff and
 * sleep, which starts a spell (a fence) that later ends. */
static int64_t hold_for(uint32_t r)
{
    switch ((r >> 8) % 16) {
    case 0:
        return 20000 + (int64_t)((r >> 12) % 40000);
    case 1:
    case 2:
    case 3:
        return (int64_t)((r >> 12) % 3000);
    default:
        return 0;
    }
}

/* ---- timed lockers leave while an untimed one sleeps ---- */

static struct {
    struct guarded g;
    _Atomic int sleeper_done;
    _Atomic int timeouts;
    int per_round;
} tl;

static void *untimed_sleeper(void *arg)
{
    (void)arg;
    lock(&tl.g.m);
    enter_critical(&tl.g, 0);
    ox_mutex_unlock(&tl.g.m);
    atomic_fetch_add(&tl.sleeper_done, 1);
    return NULL;
}

/* Timeouts on a held mutex while the untimed sleeper is asleep on it: each
 * enters, fences (or finds the bits fenced), sleeps, times out and leaves.
 * None of them may clear the bits under the sleeper. */
static void *timing_out(void *arg)
{
    bool check_bits = arg != NULL;
    uint32_t x = 0x2545f491u ^ (uint32_t)(uintptr_t)&x;
    if (x == 0)
        x = 1;
    for (int i = 0; i < tl.per_round; i++) {
        int rc = ox_mutex_lock_timeout(&tl.g.m, (ox_nanos)(ox_test_rand(&x) % 4000));
        if (rc == 0 || rc == OX_EPOISONED) {
            /* Only once the holder let go (the unlocked-early rounds). */
            enter_critical(&tl.g, 0);
            ox_mutex_unlock(&tl.g.m);
            continue;
        }
        if (rc != OX_ETIMEDOUT)
            ox_panic("lock_timeout: %d", rc);
        atomic_fetch_add(&tl.timeouts, 1);
        if (check_bits) {
            uint32_t f = flags_of(&tl.g.m);
            if ((f >> 4) < 1 || (f & OX__MUTEX_SWAP_UNLOCK) == 0)
                ox_test_fail(__FILE__, __LINE__,
                             "flags 0x%x after a timeout, with a thread asleep on the mutex", f);
        }
    }
    return NULL;
}

OX_TEST_OPTS(break37_timed_lockers_leave_while_one_sleeps, .timeout_s = 60)
{
    memset(&tl, 0, sizeof tl);
    long rounds = ox_test_scaled(300);
    if (rounds < 10)
        rounds = 10;
    tl.per_round = 6;
    for (long r = 0; r < rounds; r++) {
        lock(&tl.g.m);
        ox_join_handle s = ox_test_spawn_named("sleeper", untimed_sleeper, NULL);
        ox_test_wait_blocked_on(&tl.g.m, 1);
        bool early = (r % 3) == 2;
        /* In the early rounds the holder lets go while the timed locker
         * comes and goes: its leave races the unlock and the sleeper. */
        ox_join_handle t = ox_test_spawn_named("timed", timing_out, early ? NULL : (void *)1);
        if (!early) {
            ox_test_join(&t);
            uint32_t f = flags_of(&tl.g.m);
            if ((f >> 4) != 1 || (f & SWAP_BITS) != SWAP_BITS)
                ox_test_fail(__FILE__, __LINE__, "round %ld: flags 0x%x with one sleeper", r, f);
        } else {
            ox_test_spin_ns((r % 7) * 1000);
        }
        ox_mutex_unlock(&tl.g.m);
        await_progress(&tl.sleeper_done, (int)r + 1, NULL, &tl.g.m, "sleeper woken");
        ox_test_join(&s);
        if (early)
            ox_test_join(&t);
        check_quiet(&tl.g.m, false);
    }
    CHECK_EQ(tl.g.counter, atomic_load(&tl.g.taken));
    CHECK(atomic_load(&tl.timeouts) > 0);
}

/* ---- churn: timed, untimed and try lockers with short holds ---- */

enum { CHURNERS = 5 };

static struct {
    struct guarded g;
    long iters;
    _Atomic int done;
} ch;

static void *churn(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint32_t x = 0x9e3779b9u * (uint32_t)(me + 1);
    for (long i = 0; i < ch.iters; i++) {
        uint32_t r = ox_test_rand(&x);
        int rc;
        switch (me) {
        case 0: /* timed, often too short */
        case 1:
            rc = ox_mutex_lock_timeout(&ch.g.m, (ox_nanos)(r % 3000));
            if (rc == OX_ETIMEDOUT)
                continue;
            break;
        case 2: /* try */
            rc = ox_mutex_try_lock(&ch.g.m);
            if (rc == OX_EBUSY) {
                ox_test_spin_ns(200);
                continue;
            }
            break;
        default:
            rc = ox_mutex_lock(&ch.g.m);
            break;
        }
        if (rc != 0)
            ox_panic("lock: %d", rc);
        enter_critical(&ch.g, hold_for(r));
        /* Now and then the holder sleeps: lockers beside it then sleep too.
         * With only spinning holds, on a loaded machine the waiters' yields
         * handed the CPU to the holder and nobody slept (the check below
         * failed 3 runs of 5 beside two busy loops). */
        if ((r >> 20) % 64 == 0)
            ox_thread_sleep(OX_MICROS(200));
        ox_mutex_unlock(&ch.g.m);
        uint32_t gap = (r >> 16) % 16;
        if (gap == 0)
            ox_thread_yield();
        else if (gap < 4)
            ox_test_spin_ns(gap * 300);
    }
    atomic_fetch_add(&ch.done, 1);
    return NULL;
}

OX_TEST_OPTS(break37_churn_timed_untimed_and_try_lockers, .timeout_s = 60)
{
    memset(&ch, 0, sizeof ch);
    ch.iters = ox_test_scaled(50000);
    ox_join_handle h[CHURNERS];
    for (int i = 0; i < CHURNERS; i++)
        h[i] = ox_test_spawn_named("churn", churn, (void *)(intptr_t)i);
    await_progress(&ch.done, CHURNERS, &ch.g.taken, &ch.g.m, "churners done");
    for (int i = 0; i < CHURNERS; i++)
        ox_test_join(&h[i]);
    CHECK_EQ(ch.g.counter, atomic_load(&ch.g.taken));
    /* The test is only worth something if threads slept. */
    CHECK(atomic_load(&ch.g.seen_sleepers) > 0);
    check_quiet(&ch.g.m, false);
}

/* ---- notify_all requeues onto a fresh mutex, which then goes quiet ---- */

enum { RQ_WAITERS = 3 };

static struct {
    ox_mutex m;
    ox_condvar cv;
    int go;       /* under m */
    int finished; /* under m */
    _Atomic int done;
    int timed;
} rq;

static void *requeued_waiter(void *arg)
{
    (void)arg;
    lock(&rq.m);
    while (!rq.go) {
        if (rq.timed)
            (void)!ox_condvar_wait_timeout(&rq.cv, &rq.m, OX_MILLIS(3000));
        else
            (void)!ox_condvar_wait(&rq.cv, &rq.m);
    }
    rq.finished++;
    ox_mutex_unlock(&rq.m);
    atomic_fetch_add(&rq.done, 1);
    return NULL;
}

OX_TEST_OPTS(break37_requeue_onto_fresh_mutex_then_quiet, .timeout_s = 60)
{
    long rounds = ox_test_scaled(600);
    if (rounds < 12)
        rounds = 12;
    for (long r = 0; r < rounds; r++) {
        /* A fresh pair each round: the mutex in store mode, not sticky,
         * and the condvar not yet REQUEUED. */
        ox_mutex_init(&rq.m);
        ox_condvar_init(&rq.cv);
        rq.go = 0;
        rq.finished = 0;
        atomic_store(&rq.done, 0);
        rq.timed = (int)(r / 4) % 2;
        ox_join_handle w[RQ_WAITERS];
        for (int i = 0; i < RQ_WAITERS; i++)
            w[i] = ox_test_spawn_named("waiter", requeued_waiter, NULL);
        ox_test_wait_blocked_on(&rq.cv, RQ_WAITERS);
        CHECK_EQ(flags_of(&rq.m), 0u);
        switch (r % 4) {
        case 0: /* notify under the mutex */
            lock(&rq.m);
            rq.go = 1;
            ox_condvar_notify_all(&rq.cv);
            ox_mutex_unlock(&rq.m);
            break;
        case 1: /* notify after the unlock */
            lock(&rq.m);
            rq.go = 1;
            ox_mutex_unlock(&rq.m);
            ox_condvar_notify_all(&rq.cv);
            break;
        case 2: /* notify, then hold a while */
            lock(&rq.m);
            rq.go = 1;
            ox_condvar_notify_all(&rq.cv);
            ox_test_spin_ns(20000);
            ox_mutex_unlock(&rq.m);
            break;
        default: /* notify, unlock at once, lock and unlock again */
            lock(&rq.m);
            rq.go = 1;
            ox_condvar_notify_all(&rq.cv);
            ox_mutex_unlock(&rq.m);
            lock(&rq.m);
            ox_mutex_unlock(&rq.m);
            break;
        }
        /* Nobody else touches the mutex: the requeued waiters must hand the
         * wake on among themselves. */
        await_progress(&rq.done, RQ_WAITERS, NULL, &rq.m, "requeued waiters out");
        for (int i = 0; i < RQ_WAITERS; i++)
            ox_test_join(&w[i]);
        CHECK_EQ(rq.finished, RQ_WAITERS);
        check_quiet(&rq.m, true);
    }
}

/* ---- tasks and threads on one mutex ---- */

static struct {
    struct guarded g;
    long iters;
} mix;

static void *mixed_locker(void *arg)
{
    int i = (int)(intptr_t)arg;
    bool task = ox_task_current() != NULL;
    uint32_t x = 0x85ebca6bu * (uint32_t)(i + 1 + (task ? 16 : 0));
    for (long k = 0; k < mix.iters; k++) {
        uint32_t r = ox_test_rand(&x);
        int rc;
        if (i == 1 && (r & 1)) {
            rc = ox_mutex_lock_timeout(&mix.g.m, (ox_nanos)((r >> 4) % 5000));
            if (rc == OX_ETIMEDOUT)
                continue;
        } else {
            rc = ox_mutex_lock(&mix.g.m);
        }
        if (rc != 0)
            ox_panic("lock: %d", rc);
        enter_critical(&mix.g, hold_for(r));
        ox_mutex_unlock(&mix.g.m);
        if ((r >> 20) % 8 == 0) {
            if (task)
                ox_task_yield();
            else
                ox_thread_yield();
        }
    }
    return NULL;
}

OX_TEST_OPTS(break37_tasks_and_threads_on_one_mutex, .timeout_s = 60)
{
    memset(&mix, 0, sizeof mix);
    mix.iters = ox_test_scaled(15000);
    for (int workers = 1; workers <= 2; workers++) {
        ox_runtime *rt = ox_test_runtime((size_t)workers);
        ox_test_run_tasks_and_threads(rt, 3, 2, mixed_locker);
        ox_runtime_shutdown(rt);
        check_quiet(&mix.g.m, false);
    }
    CHECK_EQ(mix.g.counter, atomic_load(&mix.g.taken));
    CHECK(atomic_load(&mix.g.seen_sleepers) > 0);
}

/* ---- panics through holders, clear_poison, while others sleep ---- */

enum { POISONERS = 4 };

static struct {
    struct guarded g;
    int shadow; /* under m: whether the mutex should be poisoned */
    long iters;
    _Atomic long panics;
} pz;

static void check_poison_rc(int rc)
{
    if (rc != 0 && rc != OX_EPOISONED)
        ox_panic("lock: %d", rc);
    if ((rc == OX_EPOISONED) != (pz.shadow != 0))
        ox_test_fail(__FILE__, __LINE__,
                     "lock returned %d, but the mutex was %spoisoned (flags 0x%x)", rc,
                     pz.shadow ? "" : "not ", flags_of(&pz.g.m));
}

static void *lock_and_panic(void *arg)
{
    int64_t hold = (int64_t)(intptr_t)arg;
    int rc = ox_mutex_lock(&pz.g.m);
    check_poison_rc(rc);
    enter_critical(&pz.g, hold);
    pz.shadow = 1;
    ox_panic("boom while holding");
}

static void *poisoner(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint32_t x = 0xc2b2ae35u * (uint32_t)(me + 1);
    for (long i = 0; i < pz.iters; i++) {
        uint32_t r = ox_test_rand(&x);
        int64_t hold = hold_for(r);
        switch (r % 16) {
        case 0: /* panic while holding: poison, then release (mutex_unwind) */
            if (ox_catch_unwind(lock_and_panic, (void *)(intptr_t)hold, NULL, NULL) != OX_EPANICKED)
                ox_panic("no panic");
            atomic_fetch_add(&pz.panics, 1);
            break;
        case 1:
        case 2: { /* repair */
            int rc = ox_mutex_lock(&pz.g.m);
            check_poison_rc(rc);
            enter_critical(&pz.g, hold);
            pz.shadow = 0;
            ox_mutex_clear_poison(&pz.g.m);
            ox_mutex_unlock(&pz.g.m);
            break;
        }
        case 3: { /* timed */
            int rc = ox_mutex_lock_timeout(&pz.g.m, (ox_nanos)((r >> 4) % 4000));
            if (rc == OX_ETIMEDOUT)
                break;
            check_poison_rc(rc);
            enter_critical(&pz.g, hold);
            ox_mutex_unlock(&pz.g.m);
            break;
        }
        default: {
            int rc = ox_mutex_lock(&pz.g.m);
            check_poison_rc(rc);
            enter_critical(&pz.g, hold);
            ox_mutex_unlock(&pz.g.m);
            break;
        }
        }
    }
    return NULL;
}

OX_TEST_OPTS(break37_panics_and_clear_poison_while_others_sleep, .timeout_s = 60)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    memset(&pz, 0, sizeof pz);
    pz.iters = ox_test_scaled(15000);
    ox_join_handle h[POISONERS];
    for (int i = 0; i < POISONERS; i++)
        h[i] = ox_test_spawn_named("poisoner", poisoner, (void *)(intptr_t)i);
    for (int i = 0; i < POISONERS; i++)
        ox_test_join(&h[i]);
    CHECK(atomic_load(&pz.panics) > 0);
    CHECK(atomic_load(&pz.g.seen_sleepers) > 0);
    CHECK_EQ(pz.g.counter, atomic_load(&pz.g.taken));
    CHECK_EQ(ox_mutex_is_poisoned(&pz.g.m), pz.shadow != 0);
    /* A clear_poison or a poisoning between a leaver's count and its CAS
     * may leave the swap bits set (only slower): the count must be 0. */
    CHECK_EQ(sleepers_of(&pz.g.m), 0u);
    CHECK_EQ(atomic_load(&pz.g.m.state), OX__MUTEX_UNLOCKED);
}

/* ---- fork with an armed mutex ---- */

static struct {
    struct guarded g;
    _Atomic int sleeper_done;
} fk;

static void *fork_sleeper(void *arg)
{
    (void)arg;
    lock(&fk.g.m);
    enter_critical(&fk.g, 0);
    ox_mutex_unlock(&fk.g.m);
    atomic_fetch_add(&fk.sleeper_done, 1);
    return NULL;
}

#ifndef OX_TEST_BUILT_WITH_TSAN
static struct guarded child_g;

static void *child_contender(void *arg)
{
    struct guarded *g = arg;
    for (int i = 0; i < 3000; i++) {
        lock(&g->m);
        enter_critical(g, i % 5 == 0 ? 2000 : 0);
        ox_mutex_unlock(&g->m);
        if (i % 7 == 0)
            ox_thread_yield();
    }
    return NULL;
}
#endif

OX_TEST_OPTS(break37_forked_child_with_an_armed_mutex, .timeout_s = 60)
{
    if (ox_test_forks_hang_here())
        return;
    memset(&fk, 0, sizeof fk);
    lock(&fk.g.m);
    ox_join_handle s = ox_test_spawn_named("sleeper", fork_sleeper, NULL);
    ox_test_wait_blocked_on(&fk.g.m, 1);
    CHECK_EQ(sleepers_of(&fk.g.m), 1u);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The parent's sleeper is counted here too, for ever: unlocks of
         * this mutex swap in the child. This thread holds it (the forker). */
        if (sleepers_of(&fk.g.m) != 1 || (flags_of(&fk.g.m) & SWAP_BITS) != SWAP_BITS)
            _exit(3);
        ox_mutex_unlock(&fk.g.m);
#ifndef OX_TEST_BUILT_WITH_TSAN
        /* The child's threads sleep on the armed mutex and on a fresh one
         * (whose first sleeper fences: membarrier in the child). */
        for (int round = 0; round < 2; round++) {
            struct guarded *g = round == 0 ? &fk.g : &child_g;
            g->counter = 0;
            atomic_store(&g->taken, 0);
            ox_join_handle h = ox_thread_spawn(child_contender, g);
            child_contender(g);
            if (ox_thread_join(&h, NULL, NULL) != 0)
                _exit(4);
            if (g->counter != atomic_load(&g->taken) || g->counter != 6000)
                _exit(5);
        }
        if (sleepers_of(&fk.g.m) != 1 || sleepers_of(&child_g.m) != 0 ||
            (flags_of(&child_g.m) & SWAP_BITS) != 0)
            _exit(6);
#else
        lock(&fk.g.m);
        ox_mutex_unlock(&fk.g.m);
#endif
        _exit(0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    ox_mutex_unlock(&fk.g.m);
    await_progress(&fk.sleeper_done, 1, NULL, &fk.g.m, "parent's sleeper woken");
    ox_test_join(&s);
    check_quiet(&fk.g.m, false);
}

/* ---- condvar waiters (sticky) and timed lockers on one mutex ---- */

enum { CV_PARTIES = 3 };

static struct {
    struct guarded g;
    ox_condvar cv;
    int turn; /* under m */
    long handoffs;
    _Atomic int stop;
    _Atomic int done;
} cvm;

/* A ring of turns, each hand-off a notify_all: the others are requeued
 * onto the mutex. */
static void *ring(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < cvm.handoffs; i++) {
        lock(&cvm.g.m);
        while (cvm.turn != me)
            (void)!ox_condvar_wait(&cvm.cv, &cvm.g.m);
        enter_critical(&cvm.g, 0);
        cvm.turn = (me + 1) % CV_PARTIES;
        if (i % 2)
            ox_condvar_notify_all(&cvm.cv);
        ox_mutex_unlock(&cvm.g.m);
        if (!(i % 2))
            ox_condvar_notify_all(&cvm.cv);
    }
    atomic_fetch_add(&cvm.done, 1);
    return NULL;
}

static void *side_locker(void *arg)
{
    bool timed = arg != NULL;
    uint32_t x = timed ? 77u : 99u;
    while (!atomic_load_explicit(&cvm.stop, memory_order_relaxed)) {
        uint32_t r = ox_test_rand(&x);
        if (timed) {
            int rc = ox_mutex_lock_timeout(&cvm.g.m, (ox_nanos)(r % 3000));
            if (rc == OX_ETIMEDOUT)
                continue;
        } else {
            lock(&cvm.g.m);
        }
        enter_critical(&cvm.g, hold_for(r));
        ox_mutex_unlock(&cvm.g.m);
        ox_test_spin_ns((r >> 16) % 2000);
    }
    return NULL;
}

OX_TEST_OPTS(break37_requeued_waiters_share_mutex_with_timed_lockers, .timeout_s = 60)
{
    memset(&cvm, 0, sizeof cvm);
    cvm.handoffs = ox_test_scaled(3000);
    ox_join_handle side[2] = {ox_test_spawn_named("timed", side_locker, (void *)1),
                              ox_test_spawn_named("untimed", side_locker, NULL)};
    ox_join_handle h[CV_PARTIES];
    for (int i = 0; i < CV_PARTIES; i++)
        h[i] = ox_test_spawn_named("ring", ring, (void *)(intptr_t)i);
    await_progress(&cvm.done, CV_PARTIES, &cvm.g.taken, &cvm.g.m, "ring parties done");
    for (int i = 0; i < CV_PARTIES; i++)
        ox_test_join(&h[i]);
    atomic_store(&cvm.stop, 1);
    ox_test_join(&side[0]);
    ox_test_join(&side[1]);
    CHECK_EQ(cvm.g.counter, atomic_load(&cvm.g.taken));
    CHECK(atomic_load(&cvm.g.seen_sleepers) > 0);
    check_quiet(&cvm.g.m, true);
}

/* ---- a seccomp filter installed after start-up ----
 * FOUND (c301c86): the choice between storing and swapping is made once,
 * by a constructor (membarrier's registration). A program that installs a
 * seccomp filter later (a sandbox set up after initialisation, without
 * membarrier in its allow list) gets EPERM from the fence, and the first
 * thread to sleep on any mutex aborts the process ("membarrier failed
 * after its registration succeeded"). Before c301c86 nothing in a mutex
 * called membarrier, and the same program ran. The child below installs
 * such a filter (only membarrier denied) and makes one thread sleep on a
 * mutex (held for 20 ms): it must survive. Fixed since: a failed fence
 * turns store unlocks off, and sleepers look at the word every 10 ms
 * (fence_lost in src/sync/mutex.c). */

static struct guarded sc;
static _Atomic int sc_arrived;

static void *seccomp_contender(void *arg)
{
    (void)arg;
    atomic_store(&sc_arrived, 1);
    lock(&sc.m); /* held for 20 ms: this thread sleeps */
    enter_critical(&sc, 0);
    ox_mutex_unlock(&sc.m);
    return NULL;
}

OX_TEST_OPTS(break37_seccomp_filter_after_startup_denies_membarrier, .timeout_s = 60)
{
    if (ox_test_forks_hang_here())
        return;
    /* Forked before this process starts any thread (TSan's runtime runs
     * the child's threads only then). */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (!ox_test_deny_membarrier())
            _exit(7); /* no seccomp here: nothing to show */
        lock(&sc.m);
        ox_join_handle h = ox_thread_spawn(seccomp_contender, NULL);
        while (!atomic_load(&sc_arrived))
            ox_thread_yield();
        ox_thread_sleep(OX_MILLIS(20));
        ox_mutex_unlock(&sc.m);
        if (ox_thread_join(&h, NULL, NULL) != 0 || sc.counter != 1)
            _exit(4);
        _exit(0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 7) {
        printf("skipped: no seccomp filter could be installed\n");
        return;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        ox_test_fail(__FILE__, __LINE__,
                     "the child with a seccomp filter denying membarrier died (%s %d): a "
                     "contended lock aborted on the failed fence",
                     WIFSIGNALED(status) ? "signal" : "exit",
                     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}
