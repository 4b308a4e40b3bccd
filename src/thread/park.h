/* park.h - the one interface through which oxide blocks.
 *
 * Every blocking wait in oxide (locks, condvars, channels, Once, Barrier,
 * thread parking) goes through ox__park_wait() on a 32-bit word, and every
 * wake through ox__park_wake(). Today a waiter is an OS thread and the word
 * is a futex; a task runtime can later suspend a task here instead (keyed by
 * the word's address) without touching the primitives built on top.
 *
 * The same layer records what a thread is blocked on, for diagnostics, and
 * is where schedule perturbation for stress testing hooks in.
 */
#ifndef OX_PARK_H
#define OX_PARK_H

#include "oxide/base.h"

#include <stdatomic.h>
#include <stdint.h>

/* What a blocked thread waits for: shown by diagnostics. Static storage. */
typedef struct ox__wait_site {
    const char *what; /* "mutex", "condvar", "channel recv", ... */
} ox__wait_site;

/* Blocks while *word == expected, until woken or the deadline passes.
 * May return spuriously: callers re-check their condition in a loop.
 * Returns 0, or OX_ETIMEDOUT once the deadline has passed. */
int ox__park_wait(_Atomic uint32_t *word, uint32_t expected, ox_instant deadline,
                  const ox__wait_site *site, const void *object);

/* ---- the registry of blocked threads (for ox_dump_blocked_threads) ----
 * A thread links a record of its own (thread-local) into a global list the
 * first time it blocks, and unlinks it when it exits. While the thread is in
 * ox__park_wait the record names the wait site and the object; the lock slow
 * path's ox__lock_before_block adds the caller's file:line. */
struct ox__unwind_state;

typedef struct ox__blocked_info {
    const char *name; /* NULL: unnamed */
    uint64_t id;
    const ox__wait_site *site;
    const void *object;
    const char *file; /* the lock call's site, or NULL (not a lock wait) */
    int line;
    const struct ox__unwind_state *held; /* the thread's held-lock record */
} ox__blocked_info;

/* Calls fn for every thread blocked right now, with the registry locked (fn
 * must not block). With try_only, gives up at once if the registry is busy
 * (from a signal handler) and returns -1; else returns the count visited. */
int ox__park_visit_blocked(bool try_only, void (*fn)(const ox__blocked_info *, void *), void *ctx);

/* The calling thread is about to block for lock, called at file:line. */
void ox__park_note_lock_site(const void *lock, const char *file, int line);

/* The calling thread is exiting: unlinks its record for good. */
void ox__park_thread_exit(void);

/* Wakes one / all threads waiting on word. Returns how many were woken
 * (where the platform can tell). */
int ox__park_wake_one(_Atomic uint32_t *word);
int ox__park_wake_all(_Atomic uint32_t *word);

/* If *from == expected: wakes one waiter of from and moves the others to
 * wait on to (so they queue for a mutex instead of stampeding: Condvar's
 * notify_all). Returns -1 if *from differed, else the number woken+moved. */
int ox__park_requeue(_Atomic uint32_t *from, uint32_t expected, _Atomic uint32_t *to);

/* A thread's park token (Rust's thread::park semantics). */
typedef struct ox__parker {
    _Atomic uint32_t state; /* OX__PARK_EMPTY / _NOTIFIED / _PARKED */
} ox__parker;

#define OX__PARK_EMPTY    0u         /* no token, nobody parked */
#define OX__PARK_NOTIFIED 1u         /* token present */
#define OX__PARK_PARKED   UINT32_MAX /* owner is (about to be) asleep, no token: EMPTY - 1 */

/* Consumes the token, waiting until the deadline for it. Called only by the
 * parker's owner. Returns 0 when the token was consumed, OX_ETIMEDOUT
 * otherwise. May return 0 spuriously only if the token was consumed. */
int ox__parker_park(ox__parker *p, ox_instant deadline, const ox__wait_site *site,
                    const void *object);
/* Makes the token present; wakes the owner if parked. Any thread. */
void ox__parker_unpark(ox__parker *p);

/* Spinning before blocking: a bounded exponential backoff, as crossbeam's
 * Backoff. spin() busy-waits a little longer each step; snooze() spins for
 * the first steps, then yields the CPU. is_completed() tells when to block. */
typedef struct ox__backoff {
    unsigned step;
} ox__backoff;

#define OX__BACKOFF_SPIN_LIMIT  6
#define OX__BACKOFF_YIELD_LIMIT 10

static inline void ox__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

static inline void ox__backoff_spin(ox__backoff *b)
{
    unsigned step = b->step < OX__BACKOFF_SPIN_LIMIT ? b->step : OX__BACKOFF_SPIN_LIMIT;
    for (unsigned i = 0; i < (1u << step); i++)
        ox__cpu_relax();
    if (b->step <= OX__BACKOFF_SPIN_LIMIT)
        b->step++;
}

void ox__backoff_snooze(ox__backoff *b);

/* As snooze, for waiting on a lock's holder (mutex, rwlock): busy-waits
 * only in the first OX__LOCK_SPIN_STEPS steps (2, 4, 8 pauses), then
 * yields, the shape of parking_lot's SpinWait. A critical section is a few
 * dozen instructions: a holder still there after that is most likely
 * descheduled, and our CPU is what it needs. The channel-length spin (127
 * pauses) cost mutex_contended 7.9 ns against 6.6 with 4 threads on 2 CPUs. */
#define OX__LOCK_SPIN_STEPS 3
void ox__backoff_snooze_lock(ox__backoff *b);

static inline bool ox__backoff_is_completed(const ox__backoff *b)
{
    return b->step > OX__BACKOFF_YIELD_LIMIT;
}

#endif
