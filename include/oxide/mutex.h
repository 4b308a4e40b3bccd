/* oxide/mutex.h - ox_mutex: mutual exclusion with poisoning, as Rust's
 * std::sync::Mutex (without the data: the mutex guards what you decide).
 *
 * A mutex is 8 bytes (a 32-bit futex word and a word of flags), valid when
 * zero-initialised (or with OX_MUTEX_INIT), and needs no destructor unless
 * you want the "destroying a locked mutex" check (ox_mutex_destroy).
 *
 * Poisoning, as in Rust: if a panic unwinds while a thread holds the mutex,
 * the mutex is released and poisoned. Locking a poisoned mutex still
 * acquires it and returns OX_EPOISONED (Rust's PoisonError carries the
 * guard); ox_mutex_clear_poison() marks it healthy again.
 *
 * Misuse aborts with a message: unlocking a mutex the calling thread does not
 * hold, destroying a locked mutex, and locking (blocking) a mutex the calling
 * thread already holds (it would wait forever; try_lock just returns
 * OX_EBUSY).
 *
 * The lock functions are macros that record the call site (shown by the
 * self-deadlock and lock-order diagnostics); real functions of the same
 * names exist too, e.g. for taking their address: (ox_mutex_lock)(&m).
 * ox_mutex_lock and ox_mutex_unlock expand to inline fast paths (an
 * uncontended lock + unlock is one atomic instruction, a store and the
 * held-lock bookkeeping, with no call into the library; while a thread
 * sleeps on the mutex, unlock is a second atomic instruction).
 */
#ifndef OXIDE_MUTEX_H
#define OXIDE_MUTEX_H

#include "base.h"
#include "unwind_record.h"

#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* A mutex (see the top of this file). */
typedef struct ox_mutex {
    /* Aligned to 8 so that a condvar can store its address in 45 bits. */
    OX__ALIGNAS(8) OX__ATOMIC(uint32_t) state; /* see src/sync/mutex.c */
    OX__ATOMIC(uint32_t) flags;                /* poisoned, and how unlock releases */
} ox_mutex;

/* ---- private: what the inline fast paths below need (not API) ---- */
#ifndef __cplusplus

/* The state word (see src/sync/mutex.c). */
#define OX__MUTEX_UNLOCKED  0u /* free */
#define OX__MUTEX_LOCKED    1u /* held; nobody sleeps on the word */
#define OX__MUTEX_CONTENDED 2u /* held; a thread may sleep on the word: unlock wakes one */

/* The flags word (see src/sync/mutex.c). */
#define OX__MUTEX_POISONED    1u /* a panic unwound through a holder */
#define OX__MUTEX_SWAP_UNLOCK 2u /* a thread may sleep on the word: unlock swaps it */
#define OX__MUTEX_SWAP_FENCED 4u /* ... and every unlock that stores has been fenced */

/* Bumped by 2 (release) by every thread that arms a mutex's swap, before
 * its fence: an unlock that stores compares it before and after, since it
 * may not read the mutex again once it is released. Bit 0: no fence in
 * this process (set until oxide's start-up found one), so every unlock
 * swaps. On a cache line of its own: written once a spell of contention,
 * read by every unlock. */
#define OX__MUTEX_EPOCH_NO_FENCE 1u
typedef struct ox__mutex_arm_line {
    OX__ALIGNAS(64) OX__ATOMIC(uint32_t) epoch;
    char unused[60];
} ox__mutex_arm_line;
extern ox__mutex_arm_line ox__mutex_arm;

extern const ox__lock_ops ox__mutex_ops;
/* The lock's slow path: the CAS failed. Returns as ox_mutex_lock. */
OX_COLD int ox__mutex_lock_contended(ox_mutex *m, const char *file, int line);
OX_COLD void ox__mutex_wake(ox_mutex *m);
OX_COLD OX__NORETURN void ox__mutex_unlock_not_held(const ox_mutex *m);

static inline bool ox__mutex_try_acquire(ox_mutex *m)
{
    uint32_t expected = OX__MUTEX_UNLOCKED;
    /* Acquire: pairs with the release swap in ox__mutex_release, so the
     * previous holder's writes are visible to us. */
    return atomic_compare_exchange_strong_explicit(&m->state, &expected, OX__MUTEX_LOCKED,
                                                   memory_order_acquire, memory_order_relaxed);
}

/* What a lock of m returns: OX_EPOISONED or 0. Relaxed: see the poison
 * flag in src/sync/mutex.c. */
static inline int ox__mutex_poison_result(const ox_mutex *m)
{
    return (atomic_load_explicit(&m->flags, memory_order_relaxed) & OX__MUTEX_POISONED)
               ? OX_EPOISONED
               : 0;
}

/* Releases m (the caller has already dropped it from its record). */
static inline void ox__mutex_release(ox_mutex *m)
{
    /* Until a thread sleeps on m, unlock is a plain store: no thread can
     * be asleep to need a wake. A would-be sleeper first sets SWAP_UNLOCK,
     * bumps the epoch, then fences every running thread (membarrier), then
     * checks the word: either this store is visible to its check, or the
     * epoch's second load, after the store, sees the bump and wakes it.
     * That load is of the epoch, not of m: once the store is done another
     * thread may take m and free it. Acquire: a bump read here comes with
     * its SWAP_UNLOCK, so flags that lack the bit were read with an epoch
     * from before it. The signal fence keeps the compiler from lifting the
     * second load above the store; the CPU may, and the sleeper's fence
     * covers that (src/sync/mutex.c, "The unlock that stores"). */
    uint32_t epoch = atomic_load_explicit(&ox__mutex_arm.epoch, memory_order_acquire);
    if (OX_LIKELY(
            !(epoch & OX__MUTEX_EPOCH_NO_FENCE) &&
            !(atomic_load_explicit(&m->flags, memory_order_relaxed) & OX__MUTEX_SWAP_UNLOCK))) {
#ifdef OX_CHAOS
        ox__chaos_point(); /* a sleeper may arm between the flags' load and the store */
#endif
        /* Release: as the swap below. */
        atomic_store_explicit(&m->state, OX__MUTEX_UNLOCKED, memory_order_release);
        atomic_signal_fence(memory_order_seq_cst);
        if (OX_UNLIKELY(atomic_load_explicit(&ox__mutex_arm.epoch, memory_order_relaxed) != epoch))
            ox__mutex_wake(m); /* only m's address: the wake never reads it */
        return;
    }
    /* Release: everything done while holding m happens-before the next
     * holder's acquire (the CAS or swap in mutex.c). Only a CONTENDED word
     * can have sleepers, so only then is a wake (a syscall) needed. */
    if (OX_UNLIKELY(atomic_exchange_explicit(&m->state, OX__MUTEX_UNLOCKED, memory_order_release) ==
                    OX__MUTEX_CONTENDED))
        ox__mutex_wake(m);
}

/* ox_mutex_lock's fast path: the CAS, and the record of the held lock. */
OX_MUST_USE static inline int ox__mutex_lock_inline(ox_mutex *m, const char *file, int line)
{
    if (OX_UNLIKELY(!ox__mutex_try_acquire(m)))
        return ox__mutex_lock_contended(m, file, line);
    ox__held_push(m, &ox__mutex_ops, file, line);
    return ox__mutex_poison_result(m);
}

static inline void ox__mutex_unlock_inline(ox_mutex *m)
{
    if (OX_UNLIKELY(!ox__held_remove(m)))
        ox__mutex_unlock_not_held(m);
    ox__mutex_release(m);
}
#endif /* !__cplusplus */

/* ---- the API ---- */

/* Static initialiser; a zero-filled ox_mutex is equally valid. */
#define OX_MUTEX_INIT                                                                              \
    {                                                                                              \
        0, 0                                                                                       \
    }

/* (Re)initialises an unlocked, unpoisoned mutex. */
void ox_mutex_init(ox_mutex *m);

/* Checks that m is not locked (aborts with "destroying a locked mutex"
 * otherwise). Frees nothing: a mutex owns no resources. With the lock-order
 * checker on, also forgets m's address (ox_lock_class_forget), so a mutex
 * made later at the same address starts with no lock-order history: call
 * it before freeing a mutex whose memory may be reused. */
void ox_mutex_destroy(ox_mutex *m);

/* Blocks until the calling thread holds m. Returns 0, or OX_EPOISONED when m
 * is poisoned (held all the same). Aborts if the thread already holds m. */
#ifdef __cplusplus
#define ox_mutex_lock(m) ox_mutex_lock_at((m), __FILE__, __LINE__)
#else
#define ox_mutex_lock(m) ox__mutex_lock_inline((m), __FILE__, __LINE__)
#endif
OX_MUST_USE int ox_mutex_lock_at(ox_mutex *m, const char *file, int line);
OX_MUST_USE int(ox_mutex_lock)(ox_mutex *m);

/* Takes m if it is free, never blocks. Returns 0 (held), OX_EPOISONED (held,
 * poisoned) or OX_EBUSY (not held). */
#define ox_mutex_try_lock(m) ox_mutex_try_lock_at((m), __FILE__, __LINE__)
OX_MUST_USE int ox_mutex_try_lock_at(ox_mutex *m, const char *file, int line);
OX_MUST_USE int(ox_mutex_try_lock)(ox_mutex *m);

/* As ox_mutex_lock, but gives up after timeout (or at deadline, on
 * CLOCK_MONOTONIC): then returns OX_ETIMEDOUT and does not hold m. A negative
 * timeout returns OX_EINVAL without trying; a huge one waits forever. */
#define ox_mutex_lock_timeout(m, timeout)                                                          \
    ox_mutex_lock_timeout_at((m), (timeout), __FILE__, __LINE__)
OX_MUST_USE int ox_mutex_lock_timeout_at(ox_mutex *m, ox_nanos timeout, const char *file, int line);
OX_MUST_USE int(ox_mutex_lock_timeout)(ox_mutex *m, ox_nanos timeout);

/* As ox_mutex_lock_timeout, with a deadline on CLOCK_MONOTONIC. */
#define ox_mutex_lock_deadline(m, deadline)                                                        \
    ox_mutex_lock_deadline_at((m), (deadline), __FILE__, __LINE__)
OX_MUST_USE int ox_mutex_lock_deadline_at(ox_mutex *m, ox_instant deadline, const char *file,
                                          int line);
OX_MUST_USE int(ox_mutex_lock_deadline)(ox_mutex *m, ox_instant deadline);

/* Releases m. Aborts if the calling thread does not hold it. Wakes one
 * waiter if there is one. */
#ifdef __cplusplus
#define ox_mutex_unlock(m) (ox_mutex_unlock)(m)
#else
#define ox_mutex_unlock(m) ox__mutex_unlock_inline(m)
#endif
void(ox_mutex_unlock)(ox_mutex *m);

/* Whether a panic poisoned m (and nobody cleared it since). A snapshot. */
bool ox_mutex_is_poisoned(const ox_mutex *m);

/* Marks m as not poisoned: the holder has repaired the data. */
void ox_mutex_clear_poison(ox_mutex *m);

/* ---- scoped guard ----
 *   OX_MUTEX_SCOPE(&m) { ... }
 * locks m (a poisoned mutex is taken all the same; ask ox_mutex_is_poisoned()
 * inside) and unlocks it when control leaves the block by any way but a
 * panic: the end, break, continue, return, goto out of it. A panic releases
 * (and poisons) it through the unwind record instead, so it is never
 * released twice. Sugar over ox_mutex_lock/ox_mutex_unlock. */
typedef struct ox__mutex_guard {
    ox_mutex *mutex;
    int pass;
} ox__mutex_guard;

static inline ox__mutex_guard ox__mutex_guard_acquire(ox_mutex *m, const char *file, int line)
{
#ifdef __cplusplus
    (void)!ox_mutex_lock_at(m, file, line); /* a poisoned mutex is taken all the same */
#else
    (void)!ox__mutex_lock_inline(m, file, line);
#endif
    return OX__COMPOUND(ox__mutex_guard, m, 0);
}

static inline void ox__mutex_guard_release(ox__mutex_guard *g)
{
    ox_mutex_unlock(g->mutex);
}

#define OX__CAT2(a, b) a##b
#define OX__CAT(a, b)  OX__CAT2(a, b)
/* OX_MUTEX_SCOPE(&m) { ... }: m is held inside the block (see above). */
#define OX_MUTEX_SCOPE(m)                                                                          \
    for (ox__mutex_guard OX__CAT(ox__guard_, __LINE__)                                             \
             __attribute__((cleanup(ox__mutex_guard_release))) =                                   \
                 ox__mutex_guard_acquire((m), __FILE__, __LINE__);                                 \
         OX__CAT(ox__guard_, __LINE__).pass == 0; OX__CAT(ox__guard_, __LINE__).pass = 1)

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
