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

#include "../unit/unit.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* What a blocked thread waits for: shown by diagnostics. Static storage. */
typedef struct ox__wait_site {
    const char *what; /* "mutex", "condvar", "channel recv", ... */
    /* A task's wait here ends with OX_ECANCELED once the task is aborted
     * (a cancellation point). Only for waits whose callers pass that code
     * on to their own callers. */
    bool cancellable;
    /* Optional: writes a few words about object into buf (a channel: how
     * many senders are alive). Called by the blocked-thread dump while the
     * waiter is held inside ox__park_wait, so the object is alive; it must
     * only load atomics and format (it may run in a signal handler). */
    void (*describe)(const void *object, char *buf, size_t size);
    /* Its waiters are counted, so that its wakers may ask
     * ox__park_may_have_waiters() and skip a wake that would find nobody:
     * a futex wake is a system call (about 1 us on a VM) even then. */
    bool counted;
} ox__wait_site;

/* Blocks while *word == expected, until woken or the deadline passes.
 * May return spuriously: callers re-check their condition in a loop.
 * Returns 0, or OX_ETIMEDOUT once the deadline has passed, or (only in a
 * task, only at a cancellable site) OX_ECANCELED once the task is aborted.
 * In a task, the task is suspended and its worker runs other tasks. */
int ox__park_wait(_Atomic uint32_t *word, uint32_t expected, ox_instant deadline,
                  const ox__wait_site *site, const void *object);

/* A plain thread waits until fd is ready for events (OX__SYS_READABLE /
 * _WRITABLE in sys.h), as ox__park_wait, seen by the blocked dump the same
 * way. Returns 0 (ready, maybe spuriously), OX_ETIMEDOUT or an errno value.
 * Tasks wait for descriptors through the reactor instead (src/task). */
int ox__park_wait_fd(int fd, unsigned events, ox_instant deadline, const ox__wait_site *site,
                     const void *object);

/* ---- the registry of blocked threads (for ox_dump_blocked_threads) ----
 * A thread links a record of its own (thread-local) into a global list the
 * first time it blocks, and unlinks it when it exits. While the thread is in
 * ox__park_wait the record names the wait site and the object; the lock slow
 * path's ox__lock_before_block (or a channel receive) adds the caller's
 * file:line. */

#define OX__BLOCKED_HELD_MAX 16 /* held locks copied per thread; more are counted */

typedef struct ox__blocked_lock {
    const void *object;
    const char *kind; /* the lock kind's static name */
    const char *file; /* where it was taken, or NULL */
    int line;
} ox__blocked_lock;

/* One blocked thread or task, copied while it could not leave its wait
 * (so every field is from one moment; nothing points into its record). */
typedef struct ox__blocked_info {
    bool task;        /* a task (id and name are the task's), else a thread */
    const char *name; /* NULL: unnamed (lives as long as the thread or task waits) */
    uint64_t id;
    const ox__wait_site *site;
    const void *object;
    const char *file; /* the blocking call's site, or NULL (not known) */
    int line;
    char detail[64];     /* from site->describe, or "" */
    uint32_t held_count; /* oxide locks it holds (entries below: the newest) */
    ox__blocked_lock held[OX__BLOCKED_HELD_MAX];
} ox__blocked_info;

/* Calls fn for every thread blocked right now, with the registry locked,
 * then for every task blocked right now, with its wait queue's bucket
 * locked (fn must not block on other threads or tasks). Waits for the
 * registry while another thread holds it (briefly: a few pointer writes,
 * or a dump); returns -1 at once without calling fn if the calling thread
 * itself is inside the registry (a signal handler that interrupted its
 * dump, or its thread start or exit bookkeeping). A bucket still busy
 * after a short wait (held by the thread a signal handler interrupted, or
 * by a descheduled thread) is left out, and counted in *busy_buckets if
 * not NULL. Else returns the number of threads and tasks visited.
 * Async-signal-safe. */
int ox__park_visit_blocked(void (*fn)(const ox__blocked_info *, void *), void *ctx,
                           int *busy_buckets);

/* The calling thread or task is about to block on object (a lock, a
 * channel), called at file:line (file may be NULL). */
void ox__park_note_lock_site(const void *lock, const char *file, int line);

/* Where word falls among 2^bits places (the lot's buckets, the waiters'
 * counts): Fibonacci hashing, the top bits of the address times 2^64/phi,
 * which every bit of the address moves (words are 4-byte aligned and often
 * in arrays). */
static inline size_t ox__park_word_hash(const _Atomic uint32_t *word, unsigned bits)
{
    return (size_t)(((uint64_t)(uintptr_t)word * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - bits));
}

/* Whether a thread or task may be waiting on word at a counted site (see
 * ox__wait_site). The caller must have changed *word with a seq_cst
 * read-modify-write first: a waiter counts itself and then (after a
 * seq_cst fence) checks the word, so either this sees its count or it sees
 * the change and does not sleep. False only if nobody waits there; true
 * may be stale, or come from another word that shares the count. */
bool ox__park_may_have_waiters(const _Atomic uint32_t *word);

/* Wakes one / all threads waiting on word. Returns how many were woken
 * (where the platform can tell). */
int ox__park_wake_one(_Atomic uint32_t *word);
int ox__park_wake_all(_Atomic uint32_t *word);

/* If *from == expected: wakes one waiter of from and moves the others to
 * wait on to (so they queue for a mutex instead of stampeding: Condvar's
 * notify_all). Returns -1 if *from differed, else the number woken+moved. */
int ox__park_requeue(_Atomic uint32_t *from, uint32_t expected, _Atomic uint32_t *to);

/* ---- suspendable units: tasks ----
 * A thread blocks on the futex. A task must not: its worker has other
 * tasks to run. While a worker runs a task, ox__park_unit_get() names that
 * task's waiter record, and ox__park_wait queues the record in the
 * parking lot (park_lot.c), a table of wait queues keyed by the word's
 * address, as parking_lot's and Go's semaphore table are, and suspends the
 * task. Every wake looks in the lot before it wakes threads on the futex,
 * so threads and tasks wait on the same words and any may wake any. The
 * task runtime supplies how a unit is suspended, resumed and timed: the
 * layer below never calls the runtime by name. */
typedef struct ox__lot_waiter ox__lot_waiter;
struct ox__spin;

typedef struct ox__unit_ops {
    /* Switches away from the calling unit. Once it is off its stack, the
     * scheduler releases *unlock_after (the lot's bucket lock, so that no
     * waker can resume the unit before it has stopped running). Returns
     * when the unit is resumed. */
    void (*suspend)(ox__lot_waiter *w, struct ox__spin *unlock_after);
    /* Makes the unit runnable again. Any thread. */
    void (*resume)(ox__lot_waiter *w);
    /* Calls ox__park_lot_expire(w, OX_ETIMEDOUT) at the deadline, unless
     * disarmed first; disarm returns only when no such call is running. */
    void (*timer_arm)(ox__lot_waiter *w, ox_instant deadline);
    void (*timer_disarm)(ox__lot_waiter *w);
} ox__unit_ops;

/* One per task, reused by each of its waits (a task waits for one thing at
 * a time). Fields are the lot's; the runtime sets task, ops and unit
 * before the task first runs. */
struct ox__lot_waiter {
    /* First: the unit layer's view of the task (unit.h), which is what
     * ox__unit_task_running points to. Its held record is what the dump
     * reads under the bucket lock of a wait the task is linked in: the
     * scheduler releases that lock only after it saved the record. */
    ox__unit_task task;
    const ox__unit_ops *ops;
    void *unit; /* the task */
    /* From ox__park_note_lock_site: what the task is about to block on and
     * the call's site. Written by the task before it links (under the
     * bucket lock the dump takes). */
    const void *lock;
    const char *file;
    int line;
    _Atomic(_Atomic uint32_t *) word; /* the word of the current or last wait */
    ox__lot_waiter *next, *prev;      /* in the bucket, while linked */
    const ox__wait_site *site;
    const void *object;
    int wake_reason; /* 0, OX_ETIMEDOUT or OX_ECANCELED: set by whoever unlinks */
    /* In a bucket; written under that bucket's lock, but read by an
     * expirer that holds the bucket of this record's previous word while a
     * new wait links it elsewhere: atomic (see ox__park_lot_expire). */
    atomic_bool linked;
    bool expired;          /* this wait's deadline passed, maybe before linking */
    atomic_bool cancelled; /* the unit was aborted: cancellable waits end */
    /* NULL, or the flag of the unit's group (its runtime): once set, the
     * unit's cancellable waits end as if it had been aborted, and
     * ox__park_lot_cancel_group ends those under way. */
    const atomic_bool *group_cancelled;
};

/* Whether w's unit was aborted, or its group, read with order: relaxed
 * for a look (flags that are only ever set), seq_cst for a wait's check
 * under its bucket lock (park_lot.c says which pairs that closes). */
static inline bool ox__park_unit_cancelled_as(const ox__lot_waiter *w, memory_order order)
{
    return atomic_load_explicit(&w->cancelled, order) ||
           (w->group_cancelled != NULL && atomic_load_explicit(w->group_cancelled, order));
}

static inline bool ox__park_unit_cancelled(const ox__lot_waiter *w)
{
    return ox__park_unit_cancelled_as(w, memory_order_relaxed);
}

/* The running task's waiter record; NULL in a plain thread. The unit
 * layer keeps which task runs (set by the runtime's workers around each
 * task they run): its ox__unit_task is the waiter's first member. Read
 * through the unit's out-of-line getter, afresh at every call (unit.h
 * says why a task must never reuse a thread-local's address). */
static inline ox__lot_waiter *ox__park_unit_get(void)
{
    return (ox__lot_waiter *)(void *)ox__unit_task_get();
}

/* Makes w (NULL: none) the running task's waiter: the runtime's workers. */
static inline void ox__park_unit_set(ox__lot_waiter *w)
{
    ox__unit_task_running = w != NULL ? &w->task : NULL;
}

/* Ends w's wait early with reason OX_ETIMEDOUT (its timer fired) or
 * OX_ECANCELED (its unit was aborted: only a cancellable wait ends, and
 * every later cancellable wait returns at once). Any thread. */
void ox__park_lot_expire(ox__lot_waiter *w, int reason);

/* Ends the cancellable wait of every unit of group (see group_cancelled),
 * as ox__park_lot_expire(w, OX_ECANCELED) ends one. The caller has set
 * *group, with a seq_cst store: a wait that this walk does not find sees
 * the flag. Any thread. */
void ox__park_lot_cancel_group(const atomic_bool *group);

/* True in a task that has been aborted (or its runtime shut down): its
 * cancellation points return OX_ECANCELED instead of waiting. */
static inline bool ox__park_cancelled(void)
{
    const ox__lot_waiter *unit = ox__park_unit_get();
    return unit != NULL && ox__park_unit_cancelled(unit);
}

/* ox__park_wait and ox__park_wake_* for tasks (park.c dispatches). */
int ox__park_lot_wait(ox__lot_waiter *w, _Atomic uint32_t *word, uint32_t expected,
                      ox_instant deadline, const ox__wait_site *site, const void *object);
/* Unlinks and resumes up to n tasks waiting on word; returns how many. */
int ox__park_lot_wake(_Atomic uint32_t *word, int n);

/* Registers the lot's fork handlers: the forking thread holds every bucket
 * across the fork, so none is left locked in the child by a thread that
 * does not exist there. Called by park.c's, in the order it documents. */
void ox__park_lot_fork_handlers(void);

/* Calls fn for every task blocked right now (for the blocked dump), with
 * the task's bucket locked: the waiter, its object and its saved record
 * stay as they are until fn returns. A bucket that stays busy for a short
 * while is skipped (a signal handler may have interrupted its holder) and
 * counted in *busy. Returns the number of tasks visited.
 * Async-signal-safe. */
int ox__park_lot_visit(void (*fn)(const ox__lot_waiter *, void *), void *ctx, int *busy);

/* For tests. The buckets of the lot's table right now (it grows with the
 * waiters). And a new table of 2^bits buckets (at most 2^20) made current
 * now, with every waiter moved into it, as a growth does: returns 0,
 * OX_EINVAL or ENOMEM. The old table's memory is kept for the process's
 * life, so call it a bounded number of times. */
size_t ox__park_lot_buckets(void);
int ox__park_lot_rehash(unsigned bits);

/* A thread's park token (Rust's thread::park semantics). */
typedef struct ox__parker {
    _Atomic uint32_t state; /* OX__PARK_EMPTY / _NOTIFIED / _PARKED */
} ox__parker;

#define OX__PARK_EMPTY    0u         /* no token, nobody parked */
#define OX__PARK_NOTIFIED 1u         /* token present */
#define OX__PARK_PARKED   UINT32_MAX /* owner is (about to be) asleep, no token: EMPTY - 1 */

/* Consumes the token, waiting until the deadline for it. Called only by the
 * parker's owner. Returns 0 when the token was consumed, OX_ETIMEDOUT
 * otherwise (or OX_ECANCELED: an aborted task at a cancellable site). May return 0 spuriously only
 * if the token was consumed. */
int ox__parker_park(ox__parker *p, ox_instant deadline, const ox__wait_site *site,
                    const void *object);
/* Makes the token present; wakes the owner if parked. Any thread. */
void ox__parker_unpark(ox__parker *p);

/* Spinning before blocking: a bounded exponential backoff, as crossbeam's
 * Backoff. spin() busy-waits a little longer each step; snooze() spins for
 * the first steps, then yields the CPU. is_completed() tells when to block.
 * Under CPU load snooze() completes early: a yield that took a time slice
 * ends the backoff, and if another process took that slice, the thread's
 * waits skip yielding for a few milliseconds after it (backoff.c says why). */
typedef struct ox__backoff {
    unsigned step;
    /* Set by a partner wait's first spin step (ox__backoff_partner_spin_steps): */
    bool partner;       /* spin_steps and probe below are decided */
    bool probe;         /* this wait spins in full, to see whether spins pay again */
    uint8_t spin_steps; /* the spin steps this wait takes before it yields */
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

/* As snooze, for a wait that another thread's next step answers (a
 * message, a free slot, the barrier's last arrival) and that parks once
 * the backoff is completed. Its spin is as long as the thread has found
 * worth it: a thread whose partner waits are answered only after it
 * yields (the partner shares its CPU) spins less, down to none, and
 * yields at once (backoff.c says why). */
void ox__backoff_snooze_partner(ox__backoff *b);

/* Says that the partner wait b, just answered, waited while rivals on its
 * side took answers before it (several senders on a bounded(1) channel):
 * its thread's next partner wait spins in full, however b ended
 * (backoff.c says why). */
void ox__backoff_partner_wait_lost_to_rivals(const ox__backoff *b);

/* How many spin steps (1, 2, 4, ... pauses) the partner wait that b
 * belongs to takes before it yields, decided at the first call: for a
 * spin of one's own before ox__backoff_snooze_partner, which must call
 * this only once the wait has found its answer missing. */
unsigned ox__backoff_partner_spin_steps(ox__backoff *b);

/* As snooze, for waiting on a lock's holder (mutex, rwlock): busy-waits
 * only in the first OX__LOCK_SPIN_STEPS steps (2, 4, 8 pauses), then
 * yields, the shape of parking_lot's SpinWait. A critical section is a few
 * dozen instructions: a holder still there after that is most likely
 * descheduled, and our CPU is what it needs. The channel-length spin (127
 * pauses) cost mutex_contended 7.9 ns against 6.6 with 4 threads on 2 CPUs. */
#define OX__LOCK_SPIN_STEPS 3
void ox__backoff_snooze_lock(ox__backoff *b);

/* Yields the CPU; true if the yield took so long (over 50 us) that it
 * gave the CPU to a thread that kept it for a slice: a wait should then
 * sleep, so that its waker's wake-up preempts that thread (backoff.c). */
bool ox__yield_lost_cpu(void);

/* Whether the calling thread's waits skip their yields now, after a yield
 * whose slice another process took (backoff.c). For tests. */
bool ox__wait_yields_skipped(void);

static inline bool ox__backoff_is_completed(const ox__backoff *b)
{
    return b->step > OX__BACKOFF_YIELD_LIMIT;
}

#endif
