/* spin.h - a tiny internal spin lock for sections of a few pointer writes
 * (the parking lot's buckets, the task runtime's queues). It never blocks
 * in the kernel, so it may be taken in the parking layer itself, below
 * every futex-based lock; a waiter yields the CPU after a short spin in
 * case the holder was preempted. */
#ifndef OX_SPIN_H
#define OX_SPIN_H

#include "park.h"

#include "../sys/sys.h"

#include <stdatomic.h>

typedef struct ox__spin {
    atomic_bool held;
} ox__spin;

/* order: acquire, or seq_cst where the lock's exchange must also take its
 * place in the single order of seq_cst operations (the parking lot's
 * buckets: park_lot.c's ox__park_lot_cancel_group says why). */
static inline bool ox__spin_try_lock_ordered(ox__spin *s, memory_order order)
{
    /* Acquire (at least): pairs with the release in ox__spin_unlock, so
     * the previous holder's writes are visible to us. */
    return !atomic_exchange_explicit(&s->held, true, order);
}

static inline bool ox__spin_try_lock(ox__spin *s)
{
    return ox__spin_try_lock_ordered(s, memory_order_acquire);
}

static inline void ox__spin_lock_ordered(ox__spin *s, memory_order order)
{
    unsigned spins = 0;
    while (!ox__spin_try_lock_ordered(s, order)) {
        /* Relaxed: only waits for the word to look free before retrying
         * the exchange, which is what orders. */
        while (atomic_load_explicit(&s->held, memory_order_relaxed)) {
            if (++spins < 64)
                ox__cpu_relax();
            else
                ox__sys_yield();
        }
    }
}

static inline void ox__spin_lock(ox__spin *s)
{
    ox__spin_lock_ordered(s, memory_order_acquire);
}

static inline void ox__spin_unlock(ox__spin *s)
{
    /* Release: our writes under the lock happen-before the next holder's
     * acquire. */
    atomic_store_explicit(&s->held, false, memory_order_release);
}

#endif
