/* lockdep.h - the lock-order checker's internal interface (the checker is
 * described in include/oxide/check.h).
 *
 * The held-lock record (src/panic/unwind.h) reaches the checker through
 * the hooks it registers with the unit layer (ox__lock_checker in
 * src/unit/unit.h): ox__held_push() after every acquisition and
 * ox__lock_before_block() before a lock's slow path blocks. Both test
 * ox__lockdep_on first, so a run with the checker off pays one predictable
 * branch on a global that is never written after startup. The layers
 * above (sync, chan) include this header for the rest.
 */
#ifndef OX_LOCKDEP_H
#define OX_LOCKDEP_H

#include "oxide/base.h"

#include <stdatomic.h>
#include <stdint.h>

#include "oxide/check.h"
#include "oxide/unwind_record.h"

/* Declared in oxide/unwind_record.h, because ox__held_push inlines into
 * programs:
 *   ox__lockdep_on - true while the checker is on; defined here, so that
 *     every program whose locks read it links the checker (and its
 *     OX_LOCKDEP constructor), also statically. Read relaxed: switching
 *     the checker on while locks are held elsewhere only means those
 *     acquisitions were not seen, which the checker tolerates (an unseen
 *     edge is a missed report, never a false one).
 *   ox__lockdep_acquired(lock, ops, file, line) - the unit layer's
 *     trampoline to the registered checker: the calling unit has just
 *     acquired lock (already on top of its held record), and the checker
 *     records an edge from every other lock it holds. */

/* An oxide lock is being destroyed (ox_mutex_destroy, ox_rwlock_destroy):
 * with the checker on, its address is forgotten as by
 * ox_lock_class_forget, so that a lock made later at the same address (free
 * then malloc) does not inherit its edges, and the graph's memory follows
 * the locks alive. Off, one branch. */
static inline void ox__lockdep_retire(const void *lock)
{
    /* Relaxed: see ox__lockdep_on above. */
    if (OX_UNLIKELY(atomic_load_explicit(&ox__lockdep_on, memory_order_relaxed)))
        ox_lock_class_forget(lock);
}

/* For tests: the bytes the checker's graphs and maps hold allocated. */
size_t ox__lockdep_bytes(void);

/* For tests: the class generation now (bumped by every register and
 * forget), and the generation under which the calling thread's cache of
 * recorded pairs holds (held, lock), 0 if it does not. */
uint64_t ox__lockdep_generation(void);
uint64_t ox__lockdep_pair_cached(const void *held, const void *lock);

/* The calling thread is about to block on something nothing can ever end
 * (what: e.g. "select with no live cases"): reports it, with the locks the
 * thread holds, and aborts in OX_LOCKDEP=abort mode. Not a cycle: the
 * checker stays on. */
OX_COLD void ox__lockdep_blocks_forever(const char *what, const void *object);

#endif
