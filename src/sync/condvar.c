/* condvar.c - ox_condvar: a futex condition variable that requeues.
 *
 * One 64-bit word:
 *   bits 0-44   MUTEX_MASK  the tied mutex's address >> 3 (ox_mutex is
 *                           8-aligned; 45 bits cover a 48-bit address space);
 *                           0: no thread has waited yet; MUTEX_UNKNOWN: the
 *                           mutex's address did not fit (then notify_all
 *                           wakes everyone instead of requeueing)
 *   bit  45     REQUEUED: a notify_all has requeued waiters onto the mutex
 *               (sticky; see below)
 *   bits 46-63  the notify sequence, bumped by every notify (SEQ_ONE)
 * Waiters sleep on the word's upper 32-bit half (the sequence and the top of
 * the address, which does not change while tied), so a notify changes the
 * futex word and a waiter that read the sequence before releasing the mutex
 * cannot miss a notify that comes after (Rust std's futex condvar protocol).
 * A notify makes a wake (a system call) only if ox__park_may_have_waiters
 * says a waiter may sleep: its seq_cst change of the whole 64-bit word is
 * the store half of that pair, and waiters check the word's upper half
 * (the hardware orders a 64-bit change against a load of either half; C11
 * does not speak of mixed sizes).
 * The sequence is 18 bits: a waiter misses a notify only if exactly a
 * multiple of 2^18 notifies happen between its release of the mutex and its
 * futex wait.
 *
 * The sequence and the mutex share the word because notify_all needs both
 * the futex to requeue from and the mutex to requeue onto, and the condvar
 * has 8 bytes. A requeued waiter is woken by a mutex unlock only if the word
 * is CONTENDED; a condvar waiter that slept therefore re-takes the mutex as
 * a contended locker (ox__mutex_lock_after_wait), and so hands the wake on -
 * but only if the condvar has ever requeued (REQUEUED), as a waiter cannot
 * tell whether it was requeued. Without the bit (a condvar only ever
 * notified one at a time) it re-takes the mutex as any locker: a CONTENDED
 * word would cost its unlock a futex wake with nobody to wake (in
 * condvar_pingpong, on most hand-offs). notify_all sets the bit before its
 * first requeue; a requeued waiter wakes after that requeue (futex calls
 * order memory), so it sees the bit.
 */
#include "oxide/condvar.h"

#include "mutex_internal.h"

#include "../check/chaos.h"
#include "../thread/wait_spin.h"
#include "../thread/thread_internal.h"

#include <inttypes.h>
#include <stddef.h>

#define MUTEX_SHIFT   3
#define MUTEX_MASK    ((UINT64_C(1) << 45) - 1)
#define MUTEX_UNKNOWN MUTEX_MASK
#define REQUEUED      (UINT64_C(1) << 45)
#define SEQ_ONE       (UINT64_C(1) << 46)

_Static_assert(offsetof(ox_mutex, state) == 0, "the mutex futex word is at the mutex's address");
_Static_assert(_Alignof(ox_mutex) >= (1 << MUTEX_SHIFT), "ox_mutex must be 8-aligned");

/* A cancellation point: an aborted task's wait returns OX_ECANCELED. */
static const ox__wait_site condvar_site = {.what = "condvar", .cancellable = true, .counted = true};

static inline uint64_t mutex_field(const ox_mutex *m)
{
    uint64_t f = (uint64_t)(uintptr_t)m >> MUTEX_SHIFT;
    return f < MUTEX_UNKNOWN ? f : MUTEX_UNKNOWN;
}

/* The futex half of the word: its upper 32 bits. */
static inline _Atomic uint32_t *futex_word(ox_condvar *cv)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (_Atomic uint32_t *)(void *)&cv->state;
#else
    return (_Atomic uint32_t *)(void *)((char *)&cv->state + 4);
#endif
}

static inline uint32_t futex_value(uint64_t s)
{
    return (uint32_t)(s >> 32);
}

/* Whether a notify came since the sequence was seq. Relaxed: the waiter
 * re-takes the mutex afterwards, which orders the data. */
static inline bool notified_since(ox_condvar *cv, uint32_t seq)
{
    return futex_value(atomic_load_explicit(&cv->state, memory_order_relaxed)) != seq;
}

/* Ties cv to m (or checks that it is tied to m); returns the word. */
static uint64_t tie(ox_condvar *cv, ox_mutex *m, const char *function)
{
    uint64_t want = mutex_field(m);
    uint64_t s = atomic_load_explicit(&cv->state, memory_order_relaxed);
    for (;;) {
        uint64_t have = s & MUTEX_MASK;
        if (have == want)
            return s;
        uint64_t tied = want;
        if (have != 0) {
            if (have != MUTEX_UNKNOWN && want != MUTEX_UNKNOWN)
                ox_abort(function,
                         "condvar %p is used with two mutexes: 0x%" PRIx64
                         " and %p (a condvar works "
                         "with one mutex)",
                         (void *)cv, have << MUTEX_SHIFT, (void *)m);
            tied = MUTEX_UNKNOWN; /* cannot tell them apart: stop requeueing */
        }
        /* Relaxed: a notifier that must see the tie reads it after taking the
         * mutex that this thread releases after tying (see notify). */
        if (atomic_compare_exchange_weak_explicit(&cv->state, &s, (s & ~MUTEX_MASK) | tied,
                                                  memory_order_relaxed, memory_order_relaxed))
            return (s & ~MUTEX_MASK) | tied;
    }
}

static int wait(ox_condvar *cv, ox_mutex *m, ox_instant deadline, const char *file, int line,
                const char *function)
{
    uint64_t s = tie(cv, m, function);
    ox__held_place place;
    if (OX_UNLIKELY(!ox__held_take(m, &place)))
        ox_abort(function, "waiting on condvar %p with mutex %p, which thread '%s' does not hold",
                 (void *)cv, (void *)m, ox__unit_thread_name_or_unnamed());
    /* The sequence was read while m was held: a notify that follows a
     * change of the condition made under m changes it. */
    uint32_t seq = futex_value(s);
    ox__mutex_release(m);
    OX__CHAOS_POINT(); /* a notify may come before this thread sleeps */

    /* Spin first: a notify that comes soon is then seen without a sleep
     * and a wake-up (wait_spin.h). */
    ox__wait_spin spin;
    ox__wait_spin_begin(&spin, deadline);
    bool notified = notified_since(cv, seq);
    while (!notified && ox__wait_spin_poll(&spin))
        notified = notified_since(cv, seq);
    ox__wait_spin_end(&spin, notified);
    int rc = 0;
    if (!notified)
        rc = ox__park_wait(futex_word(cv), seq, deadline, &condvar_site, cv);

    OX__CHAOS_POINT(); /* woken (or not), before re-taking m */
    /* Only a thread that went to the kernel, on a condvar that has
     * requeued, can have been requeued onto m; any other re-takes m as any
     * locker. Relaxed: the bit was set before the requeue that moved this
     * thread (see the top of the file). */
    if (!notified && (atomic_load_explicit(&cv->state, memory_order_relaxed) & REQUEUED))
        ox__mutex_lock_after_wait(m);
    else
        ox__mutex_lock_plain(m, file, line);
    ox__held_push(m, &ox__mutex_ops, file, line);
    ox__held_put_back(place);
    if (rc == OX_ETIMEDOUT || rc == OX_ECANCELED)
        return rc;
    return ox_mutex_is_poisoned(m) ? OX_EPOISONED : 0;
}

int ox_condvar_wait_at(ox_condvar *cv, ox_mutex *m, const char *file, int line)
{
    return wait(cv, m, OX_INSTANT_NEVER, file, line, "ox_condvar_wait");
}

int ox_condvar_wait_deadline_at(ox_condvar *cv, ox_mutex *m, ox_instant deadline, const char *file,
                                int line)
{
    return wait(cv, m, deadline, file, line, "ox_condvar_wait_deadline");
}

int ox_condvar_wait_timeout_at(ox_condvar *cv, ox_mutex *m, ox_nanos timeout, const char *file,
                               int line)
{
    if (timeout < 0)
        return OX_EINVAL;
    return wait(cv, m, ox_instant_after(timeout), file, line, "ox_condvar_wait_timeout");
}

int ox_condvar_wait_while_at(ox_condvar *cv, ox_mutex *m, bool (*pred)(void *arg), void *arg,
                             const char *file, int line)
{
    if (pred == NULL)
        ox_abort("ox_condvar_wait_while", "NULL predicate");
    while (pred(arg)) {
        int rc = wait(cv, m, OX_INSTANT_NEVER, file, line, "ox_condvar_wait_while");
        if (rc == OX_EPOISONED || rc == OX_ECANCELED)
            return rc;
    }
    return 0;
}

int ox_condvar_wait_timeout_while_at(ox_condvar *cv, ox_mutex *m, ox_nanos timeout,
                                     bool (*pred)(void *arg), void *arg, const char *file, int line)
{
    if (pred == NULL)
        ox_abort("ox_condvar_wait_timeout_while", "NULL predicate");
    if (timeout < 0)
        return OX_EINVAL;
    /* One deadline for the whole wait: spurious wake-ups do not stretch it. */
    ox_instant deadline = ox_instant_after(timeout);
    while (pred(arg)) {
        int rc = wait(cv, m, deadline, file, line, "ox_condvar_wait_timeout_while");
        if (rc == OX_EPOISONED || rc == OX_ECANCELED)
            return rc;
        /* Rust re-checks the condition after the time is up. */
        if (rc == OX_ETIMEDOUT)
            return pred(arg) ? OX_ETIMEDOUT : 0;
    }
    return 0;
}

void ox_condvar_notify_one(ox_condvar *cv)
{
    /* No thread ever waited: nobody to wake. (A waiter ties the condvar
     * before it releases its mutex; a notifier that changed the condition
     * under that mutex afterwards sees the tie.) */
    if ((atomic_load_explicit(&cv->state, memory_order_relaxed) & MUTEX_MASK) == 0)
        return;
    /* SeqCst: the store half of the pair with a waiter's count
     * (ox__park_may_have_waiters); the mutex orders the condition's data. */
    atomic_fetch_add_explicit(&cv->state, SEQ_ONE, memory_order_seq_cst);
    OX__CHAOS_POINT(); /* between the sequence change and the wake */
    /* A waiter that spins sees the new sequence: only a sleeper needs the
     * wake, a system call. */
    if (ox__park_may_have_waiters(futex_word(cv)))
        ox__park_wake_one(futex_word(cv));
}

void ox_condvar_notify_all(ox_condvar *cv)
{
    uint64_t s = atomic_load_explicit(&cv->state, memory_order_relaxed);
    uint64_t field = s & MUTEX_MASK;
    if (field == 0)
        return;
    /* Relaxed, before the requeue: a requeued waiter reads the bit after
     * its wake-up, which follows the requeue. */
    if (field != MUTEX_UNKNOWN && !(s & REQUEUED))
        atomic_fetch_or_explicit(&cv->state, REQUEUED, memory_order_relaxed);
    /* SeqCst: as in notify_one. */
    s = atomic_fetch_add_explicit(&cv->state, SEQ_ONE, memory_order_seq_cst) + SEQ_ONE;
    if (!ox__park_may_have_waiters(futex_word(cv)))
        return;
    if (field == MUTEX_UNKNOWN) {
        ox__park_wake_all(futex_word(cv));
        return;
    }
    /* The mutex's futex word is at its address; only its address is used
     * here, never its memory (it may be gone if nobody waits). */
    /* The address was stored as an integer, for want of room. */
    /* NOLINTNEXTLINE(performance-no-int-to-ptr) */
    _Atomic uint32_t *target = (_Atomic uint32_t *)(uintptr_t)(field << MUTEX_SHIFT);
    while (ox__park_requeue(futex_word(cv), futex_value(s), target) < 0) {
        /* Another notify changed the word in between: the waiters this
         * notify must reach are still queued; requeue with the new value. */
        s = atomic_load_explicit(&cv->state, memory_order_relaxed);
    }
}

void ox_condvar_init(ox_condvar *cv)
{
    atomic_init(&cv->state, 0);
}

int(ox_condvar_wait)(ox_condvar *cv, ox_mutex *m)
{
    return ox_condvar_wait_at(cv, m, NULL, 0);
}

int(ox_condvar_wait_timeout)(ox_condvar *cv, ox_mutex *m, ox_nanos timeout)
{
    return ox_condvar_wait_timeout_at(cv, m, timeout, NULL, 0);
}

int(ox_condvar_wait_deadline)(ox_condvar *cv, ox_mutex *m, ox_instant deadline)
{
    return ox_condvar_wait_deadline_at(cv, m, deadline, NULL, 0);
}

int(ox_condvar_wait_while)(ox_condvar *cv, ox_mutex *m, bool (*pred)(void *arg), void *arg)
{
    return ox_condvar_wait_while_at(cv, m, pred, arg, NULL, 0);
}

int(ox_condvar_wait_timeout_while)(ox_condvar *cv, ox_mutex *m, ox_nanos timeout,
                                   bool (*pred)(void *arg), void *arg)
{
    return ox_condvar_wait_timeout_while_at(cv, m, timeout, pred, arg, NULL, 0);
}
