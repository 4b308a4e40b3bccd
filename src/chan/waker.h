/* waker.h - blocking and waking for channels (after crossbeam's
 * context.rs and waker.rs).
 *
 * A thread about to block creates an ox__ctx on its stack and registers one
 * ox__waiter record (also on its stack) per operation it waits for, in the
 * waker list of the channel side that can complete it. A thread that makes an
 * operation possible selects one waiter: it claims the waiter's context by a
 * CAS of ctx.select from OX__SEL_WAITING to the waiter's address (the
 * "operation" that woke it), or to OX__SEL_DISCONNECTED; then unparks it.
 *
 * A waiter registered for one operation only (a plain send or receive, not a
 * select) sits in one list, so that list's lock can guard its select word:
 * its claimer, holding the lock, claims it with a plain store, and the
 * waiter aborts under the same lock. That saves the claim's atomic
 * read-modify-write on every hand-off (ctx.claim_lock says which lock). A
 * select's context is in the lists of several channels, under several
 * locks, and is claimed by CAS.
 *
 * Stack-lifetime rule (what makes stack records safe). Only the waiter itself
 * sets OX__SEL_ABORTED. Whoever else wins the CAS owes the waiter exactly one
 * unpark of ctx.parker, and the waiter does not leave (its stack frame stays)
 * until it has consumed that token. So the claimer may still touch the context
 * and the waiter's packet between its CAS and its unpark (the rendezvous
 * flavor copies the message then). Entries still in a list are touched by
 * others only under that list's lock, and the waiter removes its entries under
 * the lock before it returns.
 */
#ifndef OX_CHAN_WAKER_H
#define OX_CHAN_WAKER_H

#include "../thread/park.h"

#include <stdatomic.h>
#include <stdint.h>

/* ctx.select: who completed the wait. Other values: the ox__waiter * of the
 * operation that was selected. */
#define OX__SEL_WAITING      ((uintptr_t)0)
#define OX__SEL_ABORTED      ((uintptr_t)1) /* by the waiter itself: timeout or ready */
#define OX__SEL_DISCONNECTED ((uintptr_t)2)

typedef struct ox__ctx {
    _Atomic uintptr_t select;
    /* A thread's token (Rust's park/unpark). A task does not take tokens:
     * it waits in the lot for parker.state to become OX__PARK_NOTIFIED,
     * which its claimer stores (ox__ctx_wake). The token's exchange on
     * each side and the consuming CAS would add three atomic
     * read-modify-writes to every hand-off between tasks; the futex-free
     * wait that the token saves a thread (no wake call unless PARKED)
     * means nothing to a task, whose wake is the lot's anyway. */
    ox__parker parker;
    const void *thread; /* ox__self(): a waiter is never selected by itself */
    /* The lock of the one list the waiter is in (a single operation), which
     * then guards select; NULL for a select, whose claims are CASes. */
    _Atomic uint32_t *claim_lock;
    bool task; /* the waiter is a task */
} ox__ctx;

typedef struct ox__waiter {
    struct ox__waiter *next, *prev;
    ox__ctx *cx;  /* NULL: not registered anywhere */
    void *packet; /* rendezvous: the waiter's message buffer; else NULL */
} ox__waiter;

/* A list of waiters, FIFO. Guarded by a lock held by the caller. */
typedef struct ox__waker {
    ox__waiter *head, *tail;
} ox__waker;

/* A waker with its own lock and a lock-free "anybody there?" word, so that a
 * sender with nobody to wake pays one load. The word (is_empty) holds
 * OX__WAKER_NO_WAITER while the list is empty, plus OX__WAKER_OBSERVED
 * once an observer wants to hear of every notify (a receiver's event fd,
 * event.c: only on a channel's receivers' waker); exactly
 * OX__WAKER_NO_WAITER means a notify has nothing to do. Written under
 * lock, read without. */
#define OX__WAKER_NO_WAITER 1u
#define OX__WAKER_OBSERVED  2u
typedef struct ox__sync_waker {
    _Atomic uint32_t lock;
    _Atomic uint32_t is_empty;
    ox__waker waker;
} ox__sync_waker;

#define OX__SYNC_WAKER_INIT                                                                        \
    {                                                                                              \
        0, 1,                                                                                      \
        {                                                                                          \
            NULL, NULL                                                                             \
        }                                                                                          \
    }

/* An identity of the calling thread, or task, cheap to get. */
const void *ox__self(void);
/* The same, given the caller's unit (ox__park_unit_get()). */
const void *ox__self_of(const ox__lot_waiter *unit);

/* A tiny test-and-test-and-set lock for the waiter lists: held for a few
 * pointer updates, never while blocking. (Not thread/spin.h's ox__spin: a
 * bare word, which the channels' layouts keep, and a backoff that snoozes.) */
static inline bool ox__list_try_lock(_Atomic uint32_t *lock)
{
    /* Acquire: the holder's writes under the lock happen-before ours; pairs
     * with the release store in ox__list_unlock. */
    return atomic_load_explicit(lock, memory_order_relaxed) == 0 &&
           atomic_exchange_explicit(lock, 1, memory_order_acquire) == 0;
}
void ox__list_lock_slow(_Atomic uint32_t *lock);
static inline void ox__list_lock(_Atomic uint32_t *lock)
{
    if (!ox__list_try_lock(lock))
        ox__list_lock_slow(lock);
}
static inline void ox__list_unlock(_Atomic uint32_t *lock)
{
    /* Release: publishes the list updates to the next holder. */
    atomic_store_explicit(lock, 0, memory_order_release);
}

/* claim_lock: the lock of the one list the waiter will be in, or NULL if
 * it registers in several (a select). */
static inline void ox__ctx_init(ox__ctx *cx, _Atomic uint32_t *claim_lock)
{
    atomic_init(&cx->select, OX__SEL_WAITING);
    cx->claim_lock = claim_lock;
    atomic_init(&cx->parker.state, OX__PARK_EMPTY);
    const ox__lot_waiter *unit = ox__park_unit_get();
    cx->task = unit != NULL;
    cx->thread = ox__self_of(unit);
}

/* The claimer's side, once it is done with the waiter's packet: the one
 * wake it owes (the stack-lifetime rule). After it the waiter may be
 * gone: the lot's wake uses the word's address only. */
static inline void ox__ctx_wake(ox__ctx *cx)
{
    if (cx->task) {
        /* Release: our claim and copy happen-before the waiter's acquire
         * load of the word (ox__ctx_wait_until). */
        atomic_store_explicit(&cx->parker.state, OX__PARK_NOTIFIED, memory_order_release);
        ox__park_lot_wake(&cx->parker.state, 1);
    } else {
        ox__parker_unpark(&cx->parker);
    }
}

/* The waiter's side: tries to set select from WAITING to sel (the waiter
 * aborting its own wait). Returns the value select holds afterwards. */
static inline uintptr_t ox__ctx_try_abort(ox__ctx *cx)
{
    if (cx->claim_lock != NULL) {
        ox__list_lock(cx->claim_lock);
        /* Relaxed: under the lock that every writer of select holds. */
        uintptr_t sel = atomic_load_explicit(&cx->select, memory_order_relaxed);
        if (sel == OX__SEL_WAITING) {
            sel = OX__SEL_ABORTED;
            atomic_store_explicit(&cx->select, sel, memory_order_relaxed);
        }
        ox__list_unlock(cx->claim_lock);
        return sel;
    }
    uintptr_t expected = OX__SEL_WAITING;
    /* Acquire on failure: the claimer's writes before its CAS (e.g. a
     * rendezvous message) become visible; the token adds the rest. */
    if (atomic_compare_exchange_strong_explicit(&cx->select, &expected, OX__SEL_ABORTED,
                                                memory_order_acq_rel, memory_order_acquire))
        return OX__SEL_ABORTED;
    return expected;
}

/* Waits until the context is selected or the deadline passes (then aborts
 * it). A thread spins, then parks (no yields: waker.c says why); a task
 * parks at once. Returns the selection; if another thread made it, its
 * unpark token has been consumed (the stack-lifetime rule). */
uintptr_t ox__ctx_wait_until(ox__ctx *cx, ox_instant deadline, const ox__wait_site *site,
                             const void *object);

/* After sel was made by someone else (not OX__SEL_ABORTED): waits for the
 * claimer's unpark. */
void ox__ctx_await_token(ox__ctx *cx, const ox__wait_site *site, const void *object);

/* The claimer's side, under the list's lock: tries to claim cx for sel. */
static inline bool ox__ctx_try_claim(ox__ctx *cx, uintptr_t sel)
{
    if (cx->claim_lock != NULL) {
        /* Relaxed load: select changes only under the lock we hold. Release
         * store: the claimer's channel writes happen-before the waiter's
         * acquire load of select, as the CAS below makes them. */
        if (atomic_load_explicit(&cx->select, memory_order_relaxed) != OX__SEL_WAITING)
            return false;
        atomic_store_explicit(&cx->select, sel, memory_order_release);
        return true;
    }
    uintptr_t expected = OX__SEL_WAITING;
    /* AcqRel: the claimer's channel writes happen-before the waiter's load
     * of select (with the token's release/acquire for the rest). */
    return atomic_compare_exchange_strong_explicit(&cx->select, &expected, sel,
                                                   memory_order_acq_rel, memory_order_relaxed);
}

/* ---- plain wakers (caller holds the lock) ---- */
void ox__waker_register(ox__waker *w, ox__waiter *e, ox__ctx *cx, void *packet);
/* Removes e if it is still listed. */
void ox__waker_unregister(ox__waker *w, ox__waiter *e);
/* Claims the oldest waiter of another thread and unlinks it; returns it (its
 * context must be woken, ox__ctx_wake, by the caller once done with the packet), or
 * NULL if none could be claimed. */
ox__waiter *ox__waker_try_select(ox__waker *w);
/* True if a waiter of another thread is still waiting. */
bool ox__waker_can_select(const ox__waker *w);
/* Claims every waiter for OX__SEL_DISCONNECTED and wakes it. Entries stay
 * listed; their owners unregister. */
void ox__waker_disconnect(ox__waker *w);

/* ---- sync wakers (own lock) ---- */
void ox__sync_waker_register(ox__sync_waker *w, ox__waiter *e, ox__ctx *cx);
void ox__sync_waker_unregister(ox__sync_waker *w, ox__waiter *e);
void ox__sync_waker_notify_slow(ox__sync_waker *w);
void ox__sync_waker_disconnect(ox__sync_waker *w);

/* Wakes one waiter if there is any. Called after every send (receivers'
 * waker) or receive (senders' waker): one seq_cst load when nobody waits. */
static inline void ox__sync_waker_notify(ox__sync_waker *w)
{
    /* SeqCst: pairs with the seq_cst store of is_empty = 0 in register and
     * the channel's seq_cst head/tail updates: either this load sees the
     * waiter, or the waiter's re-check of the channel (after registering)
     * sees our message. */
    if (!(atomic_load_explicit(&w->is_empty, memory_order_seq_cst) & OX__WAKER_NO_WAITER))
        ox__sync_waker_notify_slow(w);
}

#endif
