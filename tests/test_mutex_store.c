/* The mutex's unlock that stores (src/sync/mutex.c, "The unlock that
 * stores"): an unlock stores UNLOCKED until a thread sleeps on the word;
 * a sleeper first counts itself, sets SWAP_UNLOCK and fences the process;
 * the last sleeper out lets unlocks store again, unless a condvar requeued
 * onto the word.
 *
 * A wake that the store lost leaves a sleeper asleep: the relays below then
 * hang, and the runner's timeout fails them by name. The chaos build
 * perturbs the unlock between its load of the flags and its store, the
 * window a sleeper must arm in. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include "sync/mutex_internal.h" /* white box: the flags' bits */

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

static uint32_t flags_of(ox_mutex *m)
{
    return atomic_load(&m->flags);
}

static uint32_t sleepers_of(ox_mutex *m)
{
    return flags_of(m) / OX__MUTEX_SLEEPER_ONE;
}

enum { SWAP_BITS = OX__MUTEX_SWAP_UNLOCK | OX__MUTEX_SWAP_FENCED };

/* ---- the bits through one spell of sleeping ---- */

struct spell {
    ox_mutex m;
    _Atomic int locked;
    _Atomic uint32_t flags_while_slept; /* seen by the holder, with one sleeper */
    _Atomic int sleeper_in;
};

static void *hold_until_one_sleeps(void *arg)
{
    struct spell *s = arg;
    (void)!ox_mutex_lock(&s->m);
    atomic_store(&s->locked, 1);
    ox_test_wait_blocked(&s->m, 1, &s->sleeper_in);
    atomic_store(&s->flags_while_slept, flags_of(&s->m));
    ox_mutex_unlock(&s->m);
    return NULL;
}

/* Locks s->m while hold_until_one_sleeps holds it, so that this thread
 * sleeps on it once; returns what the lock returned, with m held. */
static int sleep_once_on(struct spell *s)
{
    atomic_store(&s->locked, 0);
    atomic_store(&s->sleeper_in, 0);
    ox_join_handle h = ox_thread_spawn(hold_until_one_sleeps, s);
    while (!atomic_load(&s->locked))
        ox_thread_yield();
    int rc = ox_mutex_lock(&s->m);
    atomic_store(&s->sleeper_in, 1);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    return rc;
}

OX_TEST(mutex_unlock_swaps_only_while_a_thread_sleeps_on_the_word)
{
    struct spell s = {.m = OX_MUTEX_INIT};
    (void)!ox_mutex_lock(&s.m);
    ox_mutex_unlock(&s.m);
    CHECK_EQ(flags_of(&s.m), 0u); /* nobody slept: the unlock stored */

    CHECK_EQ(sleep_once_on(&s), 0);
    /* While this thread slept: counted, the bits set and fenced. */
    uint32_t seen = atomic_load(&s.flags_while_slept);
    CHECK_EQ(seen / OX__MUTEX_SLEEPER_ONE, 1u);
    CHECK_EQ(seen & SWAP_BITS, (uint32_t)SWAP_BITS);
    CHECK_EQ(seen & OX__MUTEX_SWAP_STICKY, 0u);
    /* The last sleeper out cleared them: unlocks store again. */
    CHECK_EQ(flags_of(&s.m), 0u);
    ox_mutex_unlock(&s.m);
    CHECK_EQ(flags_of(&s.m), 0u);
}

OX_TEST(mutex_poison_survives_the_swap_bits_coming_and_going)
{
    struct spell s = {.m = OX_MUTEX_INIT};
    CHECK_EQ(sleep_once_on(&s), 0);
    ox_mutex_unlock(&s.m);
    /* Poisoned while the bits are clear, then slept on: both survive. */
    atomic_fetch_or(&s.m.flags, OX__MUTEX_POISONED);
    CHECK_EQ(sleep_once_on(&s), OX_EPOISONED);
    CHECK_EQ(atomic_load(&s.flags_while_slept) & (SWAP_BITS | OX__MUTEX_POISONED),
             (uint32_t)(SWAP_BITS | OX__MUTEX_POISONED));
    CHECK_EQ(flags_of(&s.m), (uint32_t)OX__MUTEX_POISONED);
    ox_mutex_clear_poison(&s.m);
    ox_mutex_unlock(&s.m);
    CHECK_EQ(flags_of(&s.m), 0u);
}

/* ---- relays over fresh mutexes: every hand-off is a first sleep ---- */

struct relay {
    _Atomic(ox_mutex *) current; /* the round's mutex, on the heap */
    _Atomic long held;           /* the round whose mutex the holder has locked */
    _Atomic long taken;          /* the round whose mutex the taker got (and freed) */
    ox_test_budget budget;
    _Atomic long rounds;
};

/* Locks a new mutex each round, lets the taker queue on it, and lets go
 * after a delay that varies, so that the unlock meets the taker's arming
 * at every point: before it, inside its fence, after its sleep. */
static void *relay_holder(void *arg)
{
    struct relay *r = arg;
    long round = 0;
    for (; ox_test_budget_more(&r->budget, round); round++) {
        ox_mutex *m = malloc(sizeof *m);
        CHECK(m != NULL);
        ox_mutex_init(m);
        (void)!ox_mutex_lock(m);
        atomic_store(&r->current, m);
        atomic_store(&r->held, round + 1);
        for (volatile long spin = 0; spin < (round % 7) * 300; spin++)
            continue;
        if (round % 5 == 0)
            ox_thread_yield();
        /* The taker frees m as soon as it has it: the unlock must not read
         * m after its store (ASan and TSan see it if it does). */
        ox_mutex_unlock(m);
        while (atomic_load(&r->taken) <= round)
            ox_thread_yield();
    }
    atomic_store(&r->rounds, round);
    atomic_store(&r->held, -1);
    return NULL;
}

static void *relay_taker(void *arg)
{
    struct relay *r = arg;
    for (long round = 0;; round++) {
        long held;
        while ((held = atomic_load(&r->held)) <= round && held >= 0)
            ox_thread_yield();
        if (held < 0)
            return NULL;
        ox_mutex *m = atomic_load(&r->current);
        (void)!ox_mutex_lock(m);
        ox_mutex_unlock(m);
        CHECK_EQ(sleepers_of(m), 0u);
        free(m);
        atomic_store(&r->taken, round + 1);
    }
}

OX_TEST(mutex_unlock_racing_the_first_sleeper_still_wakes_it)
{
    static struct relay r;
    atomic_store(&r.held, 0);
    atomic_store(&r.taken, 0);
    r.budget = ox_test_budget_start(1500, ox_test_scaled(20000));
    ox_join_handle taker = ox_thread_spawn(relay_taker, &r);
    ox_join_handle holder = ox_thread_spawn(relay_holder, &r);
    CHECK_EQ(ox_thread_join(&holder, NULL, NULL), 0);
    CHECK_EQ(ox_thread_join(&taker, NULL, NULL), 0);
    CHECK(atomic_load(&r.rounds) > 0);
    CHECK_EQ(atomic_load(&r.taken), atomic_load(&r.rounds));
}

/* ---- spells of contention, with quiet between ---- */

struct spells {
    ox_mutex m;
    long counter; /* guarded by m: lost increments mean two holders */
    int inside;
    ox_test_budget budget;
    _Atomic long done;
};

static void *spell_worker(void *arg)
{
    struct spells *s = arg;
    long i = 0;
    for (; ox_test_budget_more(&s->budget, i); i++) {
        int rc =
            (i % 3 == 2) ? ox_mutex_lock_timeout(&s->m, OX_MICROS(i % 50)) : ox_mutex_lock(&s->m);
        if (rc == OX_ETIMEDOUT)
            continue;
        if (s->inside++ != 0)
            ox_panic("two threads inside");
        s->counter++;
        if (i % 64 == 0)
            ox_thread_sleep(OX_MICROS(50)); /* a long hold: the others sleep */
        s->inside--;
        ox_mutex_unlock(&s->m);
        if (i % 256 == 0)
            ox_thread_sleep(OX_MICROS(200)); /* a quiet spell: the bits clear */
    }
    atomic_fetch_add(&s->done, i);
    return NULL;
}

OX_TEST(mutex_spells_of_sleeping_with_store_unlocks_between)
{
    static struct spells s;
    ox_mutex_init(&s.m);
    s.counter = 0;
    s.inside = 0;
    atomic_store(&s.done, 0);
    s.budget = ox_test_budget_start(1500, ox_test_scaled(40000));
    ox_join_handle h[3];
    for (int i = 0; i < 3; i++)
        h[i] = ox_thread_spawn(spell_worker, &s);
    /* Counts, with the threads at work: the lock does not see them. */
    long locks = 0;
    for (; ox_test_budget_more(&s.budget, locks); locks++) {
        (void)!ox_mutex_lock(&s.m);
        s.counter++;
        ox_mutex_unlock(&s.m);
    }
    for (int i = 0; i < 3; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK(s.counter >= locks);
    CHECK_EQ(sleepers_of(&s.m), 0u);
    CHECK_EQ(flags_of(&s.m) & OX__MUTEX_SWAP_STICKY, 0u);
    CHECK_EQ(flags_of(&s.m) & SWAP_BITS, 0u); /* nobody sleeps now */
}

/* ---- a condvar's requeue makes the swap sticky ---- */

struct requeue {
    ox_mutex m;
    ox_condvar cv;
    int go;
    _Atomic int woke;
};

static void *requeue_waiter(void *arg)
{
    struct requeue *q = arg;
    (void)!ox_mutex_lock(&q->m);
    while (!q->go)
        (void)!ox_condvar_wait(&q->cv, &q->m);
    atomic_fetch_add(&q->woke, 1);
    ox_mutex_unlock(&q->m);
    return NULL;
}

OX_TEST(mutex_requeued_sleepers_keep_the_swap_until_init)
{
    enum { WAITERS = 4 };
    for (int round = 0; round < 20; round++) {
        struct requeue q = {.m = OX_MUTEX_INIT, .cv = OX_CONDVAR_INIT};
        ox_join_handle h[WAITERS];
        for (int i = 0; i < WAITERS; i++)
            h[i] = ox_thread_spawn(requeue_waiter, &q);
        ox_test_wait_blocked(&q.cv, WAITERS, NULL);
        (void)!ox_mutex_lock(&q.m);
        q.go = 1;
        ox_condvar_notify_all(&q.cv); /* under the mutex: the waiters are requeued onto it */
        ox_mutex_unlock(&q.m);
        for (int i = 0; i < WAITERS; i++)
            CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
        CHECK_EQ(atomic_load(&q.woke), WAITERS);
        CHECK_EQ(sleepers_of(&q.m), 0u);
        /* Sticky once a waiter re-took the mutex after a requeue. */
        CHECK_EQ(flags_of(&q.m) & (SWAP_BITS | OX__MUTEX_SWAP_STICKY),
                 (uint32_t)(SWAP_BITS | OX__MUTEX_SWAP_STICKY));
        ox_mutex_init(&q.m);
        CHECK_EQ(flags_of(&q.m), 0u);
    }
}
