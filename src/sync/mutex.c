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
 * unlock: until a thread has slept on the word, store UNLOCKED (below);
 *         from then on, swap in UNLOCKED and wake one sleeper only if the
 *         old value was CONTENDED, so an uncontended unlock makes no system
 *         call.
 * A thread that has slept never sets LOCKED again (it cannot know whether
 * other sleepers remain), and nor does a condvar waiter re-acquiring after a
 * wait on a condvar that requeues (it may have been moved onto the word with
 * other waiters).
 *
 * The unlock that stores. A swap is a locked instruction, and an
 * uncontended lock and unlock were two of them: 12 ns on AMD Zen 5, where
 * a store costs next to nothing. But a plain store cannot tell whether a
 * thread sleeps on the word. So:
 *   - A thread about to sleep on the word (enter_sleep) counts itself in
 *     the flags. Unless SWAP_FENCED is already set, it then sets
 *     SWAP_UNLOCK, bumps the global ox__mutex_arm.epoch, makes every
 *     running thread of the process pass a full barrier
 *     (ox__sys_fence_others: membarrier), and sets SWAP_FENCED. Only then
 *     does it write CONTENDED and sleep.
 *   - An unlock loads the epoch, then the flags. If SWAP_UNLOCK is set it
 *     swaps, as above. If not, it stores UNLOCKED and loads the epoch
 *     again: if it changed, it wakes one sleeper.
 * Against an arming thread's fence, one of two things holds for an unlock
 * that read the flags without SWAP_UNLOCK (and so the epoch before the
 * bump, mutex.h says why):
 *   - the store came before the barrier the fence forced on it: the
 *     sleeper's swap or futex compare sees UNLOCKED, and it does not sleep;
 *   - the second load came after it: it sees the bump, and wakes. The wake
 *     is needed: the store may have overwritten a CONTENDED, and the woken
 *     thread sets CONTENDED again when it takes the lock, so its unlock
 *     wakes the next.
 * Later sleepers that find SWAP_FENCED (acquire, paired with the release
 * that set it after the fence returned) are covered by the same bump: an
 * unlock that stores read its flags before SWAP_UNLOCK was set.
 * The second load is of the epoch, not of the flags, because after the
 * store another thread may take the mutex and free it (Rust allows that,
 * and so does a zero-initialised mutex that needs no destructor). A bump
 * by an unrelated mutex in those few instructions only costs a wake for
 * nobody.
 *
 * The last counted thread to leave (leave_sleep) clears both bits, so
 * unlocks store again once the contention is over: with four threads on
 * one mutex (mutex_contended), 10.4 ns an operation against 17.1 with the
 * bits kept set (docs/bench.md, session 25). The price is a fence at the
 * start of each spell of sleeping: 1 us, or about 50 us with another CPU
 * running the process on a 2-vCPU VM. Sleepers that a condvar requeued
 * onto the word counted nobody, so a requeue (ox__mutex_lock_after_wait)
 * makes the bits sticky (OX__MUTEX_SWAP_STICKY) until ox_mutex_init.
 * Without the fence (OX__MUTEX_EPOCH_NO_FENCE: an old kernel, a seccomp
 * filter) every unlock swaps; if it fails after start-up, see fence_lost.
 *
 * The poison flag is in the flags word: set by a panic unwinding through a
 * holder (before the release), cleared by ox_mutex_clear_poison. Relaxed,
 * as in Rust: it is only read and written around the lock's own
 * acquire/release, which orders it with the guarded data.
 */
#include "mutex_internal.h"

#include "../check/chaos.h"
#include "../check/lockdep.h"
#include "../sys/sys.h"
#include "../thread/thread_internal.h"

/* Rounds of spinning (each a pause instruction) for a condvar waiter
 * re-taking the mutex: the notifier often still holds it for a moment. */
#define SPIN_ROUNDS 100

static const ox__wait_site mutex_site = {.what = "mutex"};

_Static_assert(sizeof(ox__mutex_arm_line) == 64, "the epoch has its cache line to itself");
ox__mutex_arm_line ox__mutex_arm = {.epoch = OX__MUTEX_EPOCH_NO_FENCE};

/* Before any thread of the program can lock a mutex (constructor 101: with
 * oxide's other start-up work). Until then every unlock swaps. */
static bool fence_at_start; /* written once, by the constructor below */

__attribute__((constructor(101))) static void choose_unlock(void)
{
    /* Relaxed: no other thread locks an oxide mutex yet (a program that
     * dlopens oxide has its threads see this through dlopen's own
     * synchronisation). */
    fence_at_start = ox__sys_fence_others_enable();
    if (fence_at_start)
        atomic_fetch_and_explicit(&ox__mutex_arm.epoch, ~OX__MUTEX_EPOCH_NO_FENCE,
                                  memory_order_relaxed);
}

/* Set once the fence failed after start-up had found it (a seccomp filter
 * installed since): from then on no unlock stores, but one that stored
 * just before, racing a sleeper's check that no fence ordered, may never
 * wake it. So sleepers on any mutex look at the word again every
 * FENCE_LOST_POLL: a lost wake costs that much, and nothing hangs. */
static atomic_bool fence_lost;
#define FENCE_LOST_POLL OX_MILLIS(10)

static void lose_the_fence(void)
{
    /* Relaxed: a sleeper that misses the flag for a moment is one of those
     * the poll is for; the epoch's bit changes the unlocks from now on. */
    atomic_store_explicit(&fence_lost, true, memory_order_relaxed);
    atomic_fetch_or_explicit(&ox__mutex_arm.epoch, OX__MUTEX_EPOCH_NO_FENCE, memory_order_relaxed);
}

ox__fence_result ox__mutex_fence_others(void)
{
    if (!fence_at_start)
        return OX__FENCE_NEVER;
    /* Relaxed: the bit only says whether an earlier fence failed. */
    if (atomic_load_explicit(&ox__mutex_arm.epoch, memory_order_relaxed) & OX__MUTEX_EPOCH_NO_FENCE)
        return OX__FENCE_LOST;
    if (ox__sys_fence_others())
        return OX__FENCE_DONE;
    lose_the_fence();
    return OX__FENCE_LOST;
}

/* How long a sleeper on a mutex word may sleep before it looks again. */
static ox_instant sleep_until(ox_instant deadline)
{
    if (OX_LIKELY(!atomic_load_explicit(&fence_lost, memory_order_relaxed)))
        return deadline;
    ox_instant poll = ox_instant_after(FENCE_LOST_POLL);
    return poll.ns < deadline.ns ? poll : deadline;
}

/* Counts the calling thread among those that may sleep on m's word, and
 * makes every unlock of m swap the word while it is counted (see the top
 * of this file). Called before a thread writes CONTENDED into the word. */
static void enter_sleep(ox_mutex *m)
{
    /* Acquire: pairs with the release below, so a thread that sees
     * SWAP_FENCED is ordered after the fence that another thread made. The
     * bits cannot be cleared while this thread is counted (leave_sleep). */
    uint32_t f = atomic_fetch_add_explicit(&m->flags, OX__MUTEX_SLEEPER_ONE, memory_order_acquire);
    if (OX_LIKELY(f & OX__MUTEX_SWAP_FENCED))
        return;
    /* Relaxed: the epoch's release bump publishes it. */
    atomic_fetch_or_explicit(&m->flags, OX__MUTEX_SWAP_UNLOCK, memory_order_relaxed);
    /* Release: an unlock that reads the bumped epoch (acquire) also sees
     * SWAP_UNLOCK. The fence begins with a full barrier in this thread,
     * which makes both visible to every unlock it fences. */
    uint32_t epoch = atomic_fetch_add_explicit(&ox__mutex_arm.epoch, 2, memory_order_release);
    OX__CHAOS_POINT(); /* between the bump and the fence: an unlock may store here */
    if (!(epoch & OX__MUTEX_EPOCH_NO_FENCE) && !ox__sys_fence_others())
        lose_the_fence();
    atomic_fetch_or_explicit(&m->flags, OX__MUTEX_SWAP_FENCED, memory_order_release);
}

/* Uncounts the calling thread; the last one out lets unlocks store again,
 * unless a condvar may have requeued sleepers onto the word, who are
 * counted by nobody. Clearing the bits is safe when the count is 0: no
 * thread sleeps on the word or is about to (each counts itself first), and
 * a thread that counts itself before the clear makes it fail. */
static void leave_sleep(ox_mutex *m)
{
    /* Relaxed: the count orders nothing; the bits are read by unlocks
     * only for the pairing described at the top of this file. */
    uint32_t f = atomic_fetch_sub_explicit(&m->flags, OX__MUTEX_SLEEPER_ONE, memory_order_relaxed) -
                 OX__MUTEX_SLEEPER_ONE;
    /* A poison change between the two makes the exchange fail: the bits
     * then stay until the next spell of sleeping ends, which costs only
     * swaps. */
    if (f < OX__MUTEX_SLEEPER_ONE &&
        (f & (OX__MUTEX_SWAP_STICKY | OX__MUTEX_SWAP_FENCED)) == OX__MUTEX_SWAP_FENCED)
        atomic_compare_exchange_strong_explicit(
            &m->flags, &f, f & ~(OX__MUTEX_SWAP_UNLOCK | OX__MUTEX_SWAP_FENCED),
            memory_order_relaxed, memory_order_relaxed);
}

/* Relaxed: the release that follows (the unwind's, or the unlock's that
 * called for this) publishes the flag with the data. */
static void mutex_poison(void *lock)
{
    atomic_fetch_or_explicit(&((ox_mutex *)lock)->flags, OX__MUTEX_POISONED, memory_order_relaxed);
}

static void mutex_unwind_release(void *lock, unsigned tag)
{
    (void)tag; /* a mutex keeps no tag */
    ox__mutex_release(lock);
}

const ox__lock_ops ox__mutex_ops = {"mutex", mutex_unwind_release, mutex_poison};

static inline int acquired(ox_mutex *m, const char *file, int line)
{
    ox__held_push(m, &ox__mutex_ops, file, line);
    return ox__mutex_poison_result(m);
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

/* The sleeping part of lock_contended, between enter_sleep and leave_sleep:
 * s is the word last seen. Returns 0 once the caller holds m (the word
 * CONTENDED), or OX_ETIMEDOUT. */
static int sleep_and_take(ox_mutex *m, uint32_t s, ox_instant deadline)
{
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
        if (ox__park_wait(&m->state, OX__MUTEX_CONTENDED, sleep_until(deadline), &mutex_site, m) ==
                OX_ETIMEDOUT &&
            ox_instant_now().ns >= deadline.ns)
            return OX_ETIMEDOUT; /* the word may stay CONTENDED: one wasted wake */
        if (spin_and_take(m, OX__MUTEX_CONTENDED, &s))
            return 0;
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
    enter_sleep(m);
    int rc = sleep_and_take(m, s, deadline);
    leave_sleep(m);
    return rc;
}

void ox__mutex_wake(ox_mutex *m)
{
    OX__CHAOS_POINT(); /* between the unlock's release swap and its wake */
    ox__park_wake_one(&m->state);
}

void ox__mutex_lock_after_wait(ox_mutex *m)
{
    /* Before taking m as CONTENDED: the unlock that hands the wake on to
     * the waiters requeued onto m must swap, and so must theirs. Relaxed:
     * enter_sleep's fence or acquire orders what follows. */
    atomic_fetch_or_explicit(&m->flags, OX__MUTEX_SWAP_STICKY, memory_order_relaxed);
    enter_sleep(m);
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
            break;
        ox__park_wait(&m->state, OX__MUTEX_CONTENDED, sleep_until(OX_INSTANT_NEVER), &mutex_site,
                      m);
    }
    leave_sleep(m);
}

void ox__mutex_lock_plain(ox_mutex *m, const char *file, int line)
{
    if (OX_UNLIKELY(!ox__mutex_try_acquire(m)))
        lock_contended(m, OX_INSTANT_NEVER, file, line);
}

void ox_mutex_init(ox_mutex *m)
{
    atomic_init(&m->state, OX__MUTEX_UNLOCKED);
    atomic_init(&m->flags, 0);
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
    return ox__mutex_poison_result(m);
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
    return ox__mutex_poison_result(m) != 0;
}

void ox_mutex_clear_poison(ox_mutex *m)
{
    atomic_fetch_and_explicit(&m->flags, ~OX__MUTEX_POISONED, memory_order_relaxed);
}
