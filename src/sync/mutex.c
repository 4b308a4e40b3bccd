/* mutex.c - ox_mutex, a futex mutex with poisoning.
 *
 * The state word (the shape of Rust std's futex mutex):
 *   UNLOCKED  (0)  free
 *   LOCKED    (1)  held, and no thread sleeps on the word
 *   CONTENDED (2)  held, and some thread may sleep on the word
 * lock:   CAS UNLOCKED -> LOCKED (the fast path, inline in mutex.h).
 *         Failing that, spin while the word is LOCKED (the holder is
 *         probably running and about to leave), first busy-waiting, then
 *         yielding the CPU a few times (with more threads than CPUs the
 *         holder may need ours: this halves mutex_contended on 2 CPUs),
 *         taking the word whenever it is seen free; a lost race spins on.
 *         Then swap in CONTENDED: if the old value was UNLOCKED the lock is
 *         ours (CONTENDED, conservatively: another sleeper may exist), else
 *         sleep while the word stays CONTENDED, and repeat: spin, swap,
 *         sleep.
 * unlock: swap in UNLOCKED; wake one sleeper only if the old value was
 *         CONTENDED, so an uncontended unlock makes no system call.
 * A thread that has slept never sets LOCKED again (it cannot know whether
 * other sleepers remain), and nor does a condvar waiter re-acquiring after a
 * wait on a condvar that requeues (it may have been moved onto the word with
 * other waiters).
 *
 * The poison flag is a separate word: set by a panic unwinding through a
 * holder (before the release), cleared by ox_mutex_clear_poison. Relaxed,
 * as in Rust: it is only read and written around the lock's own
 * acquire/release, which orders it with the guarded data.
 */
#include "mutex_internal.h"

#include "../check/chaos.h"
#include "../check/lockdep.h"
#include "../thread/thread_internal.h"

/* Rounds of spinning (each a pause instruction) for a condvar waiter
 * re-taking the mutex: the notifier often still holds it for a moment. */
#define SPIN_ROUNDS 100

static const ox__wait_site mutex_site = {.what = "mutex"};

static void mutex_unwind(void *lock, unsigned tag)
{
    (void)tag; /* a mutex keeps no tag */
    ox_mutex *m = lock;
    atomic_store_explicit(&m->poisoned, 1, memory_order_relaxed);
    ox__mutex_release(m);
}

const ox__lock_ops ox__mutex_ops = {"mutex", mutex_unwind};

static inline int acquired(ox_mutex *m, const char *file, int line)
{
    ox__held_push(m, &ox__mutex_ops, file, line);
    return atomic_load_explicit(&m->poisoned, memory_order_relaxed) ? OX_EPOISONED : 0;
}

/* Spins while the holder runs, and takes m once it is free, setting the
 * word to take: LOCKED for a thread that has not slept, CONTENDED for one
 * that has (it cannot know whether other sleepers remain, so its unlock
 * must wake). Returns true once the caller holds m. Returns false, with the
 * word last seen in *seen, once spinning is pointless: someone sleeps on
 * the word (CONTENDED: the lock is handed on through wakes), or the backoff
 * is done (a few rounds of growing busy-waits, then a few yields of the
 * CPU: with more threads than CPUs, the holder may be waiting for one).
 *
 * Losing the race for a free word spins on: the winner runs, and will soon
 * leave. Going to sleep instead (swapping in CONTENDED) made every lost
 * race cost a futex wait, and the unlocks after it futex wakes: with four
 * threads on two CPUs (mutex_contended) about 1 500 waits and 3 000 wakes
 * a run where parking_lot, which spins on, makes 30 of each. */
static bool spin_and_take(ox_mutex *m, uint32_t take, uint32_t *seen)
{
    ox__backoff b = {0};
    for (;;) {
        uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
        /* Acquire: pairs with the release swap in ox__mutex_release. Strong:
         * a failure then leaves a held word in s. */
        if (s == OX__MUTEX_UNLOCKED &&
            atomic_compare_exchange_strong_explicit(&m->state, &s, take, memory_order_acquire,
                                                    memory_order_relaxed))
            return true;
        if (s == OX__MUTEX_CONTENDED || ox__backoff_is_completed(&b)) {
            *seen = s;
            return false;
        }
        ox__backoff_snooze_lock(&b);
    }
}

/* Returns 0 once the caller holds m (the word LOCKED or CONTENDED), or
 * OX_ETIMEDOUT. */
OX_COLD static int lock_contended(ox_mutex *m, ox_instant deadline, const char *file, int line)
{
    uint32_t s;
    if (spin_and_take(m, OX__MUTEX_LOCKED, &s))
        return 0;
    ox__lock_before_block(m, &ox__mutex_ops, file, line);
    for (;;) {
        OX__CHAOS_POINT(); /* between reading the word and swapping in CONTENDED */
        /* Acquire (when the old value was UNLOCKED): pairs with the release
         * in ox__mutex_release, as in spin_and_take. A CONTENDED word is
         * left as it is: the swap would only pull its line over for
         * nothing. */
        if (s != OX__MUTEX_CONTENDED &&
            atomic_exchange_explicit(&m->state, OX__MUTEX_CONTENDED, memory_order_acquire) ==
                OX__MUTEX_UNLOCKED)
            return 0;
        if (ox__park_wait(&m->state, OX__MUTEX_CONTENDED, deadline, &mutex_site, m) == OX_ETIMEDOUT)
            return OX_ETIMEDOUT; /* the word may stay CONTENDED: one wasted wake */
        if (spin_and_take(m, OX__MUTEX_CONTENDED, &s))
            return 0;
    }
}

void ox__mutex_wake(ox_mutex *m)
{
    OX__CHAOS_POINT(); /* between the unlock's release swap and its wake */
    ox__park_wake_one(&m->state);
}

void ox__mutex_lock_after_wait(ox_mutex *m)
{
    /* The notifier often still holds m for a moment: spin before sleeping. */
    for (int i = SPIN_ROUNDS; i > 0; i--) {
        if (atomic_load_explicit(&m->state, memory_order_relaxed) == OX__MUTEX_UNLOCKED)
            break;
        ox__cpu_relax();
    }
    for (;;) {
        /* Acquire: pairs with the release in ox__mutex_release. */
        if (atomic_exchange_explicit(&m->state, OX__MUTEX_CONTENDED, memory_order_acquire) ==
            OX__MUTEX_UNLOCKED)
            return;
        ox__park_wait(&m->state, OX__MUTEX_CONTENDED, OX_INSTANT_NEVER, &mutex_site, m);
    }
}

void ox__mutex_lock_plain(ox_mutex *m, const char *file, int line)
{
    if (OX_UNLIKELY(!ox__mutex_try_acquire(m)))
        lock_contended(m, OX_INSTANT_NEVER, file, line);
}

void ox_mutex_init(ox_mutex *m)
{
    atomic_init(&m->state, OX__MUTEX_UNLOCKED);
    atomic_init(&m->poisoned, 0);
}

void ox_mutex_destroy(ox_mutex *m)
{
    if (atomic_load_explicit(&m->state, memory_order_relaxed) != OX__MUTEX_UNLOCKED)
        ox_abort("ox_mutex_destroy", "destroying a locked mutex (%p)", (void *)m);
    ox__lockdep_retire(m);
}

int ox__mutex_lock_contended(ox_mutex *m, const char *file, int line)
{
    lock_contended(m, OX_INSTANT_NEVER, file, line);
    return acquired(m, file, line);
}

int ox_mutex_lock_at(ox_mutex *m, const char *file, int line)
{
    return ox__mutex_lock_inline(m, file, line);
}

int ox_mutex_try_lock_at(ox_mutex *m, const char *file, int line)
{
    if (!ox__mutex_try_acquire(m))
        return OX_EBUSY;
    /* _try: a trylock cannot deadlock, so the lock-order checker records no
     * edge into it. */
    ox__held_push_try(m, &ox__mutex_ops, file, line);
    return atomic_load_explicit(&m->poisoned, memory_order_relaxed) ? OX_EPOISONED : 0;
}

int ox_mutex_lock_deadline_at(ox_mutex *m, ox_instant deadline, const char *file, int line)
{
    if (OX_UNLIKELY(!ox__mutex_try_acquire(m)) && lock_contended(m, deadline, file, line) != 0)
        return OX_ETIMEDOUT;
    return acquired(m, file, line);
}

int ox_mutex_lock_timeout_at(ox_mutex *m, ox_nanos timeout, const char *file, int line)
{
    if (timeout < 0)
        return OX_EINVAL;
    return ox_mutex_lock_deadline_at(m, ox_instant_after(timeout), file, line);
}

int(ox_mutex_lock)(ox_mutex *m)
{
    return ox_mutex_lock_at(m, NULL, 0);
}

int(ox_mutex_try_lock)(ox_mutex *m)
{
    return ox_mutex_try_lock_at(m, NULL, 0);
}

int(ox_mutex_lock_timeout)(ox_mutex *m, ox_nanos timeout)
{
    return ox_mutex_lock_timeout_at(m, timeout, NULL, 0);
}

int(ox_mutex_lock_deadline)(ox_mutex *m, ox_instant deadline)
{
    return ox_mutex_lock_deadline_at(m, deadline, NULL, 0);
}

void ox__mutex_unlock_not_held(const ox_mutex *m)
{
    ox_abort("ox_mutex_unlock",
             "unlocking a mutex not held by this thread (mutex %p, thread '%s'%s)", (void *)m,
             ox__unit_thread_name_or_unnamed(),
             atomic_load_explicit(&m->state, memory_order_relaxed) == OX__MUTEX_UNLOCKED
                 ? ", and nobody holds it"
                 : "");
}

void(ox_mutex_unlock)(ox_mutex *m)
{
    ox__mutex_unlock_inline(m);
}

bool ox_mutex_is_poisoned(const ox_mutex *m)
{
    return atomic_load_explicit(&m->poisoned, memory_order_relaxed) != 0;
}

void ox_mutex_clear_poison(ox_mutex *m)
{
    atomic_store_explicit(&m->poisoned, 0, memory_order_relaxed);
}
