/* park.c - blocking and waking, the token parker, backoff.
 *
 * The parker's state word (Rust std's futex parker has the same shape):
 *   OX__PARK_EMPTY    no token
 *   OX__PARK_NOTIFIED token present
 *   OX__PARK_PARKED   the owner found no token and sleeps (or is about to)
 * park:   NOTIFIED -> EMPTY returns at once; EMPTY -> PARKED, then sleep
 *         until unpark sets NOTIFIED and take it (NOTIFIED -> EMPTY).
 * unpark: swap in NOTIFIED; only if the old state was PARKED is a wake
 *         (a syscall) needed.
 */
#include "park.h"

#include "../sys/sys.h"

/* What this thread is blocked on right now, for the blocked-thread
 * diagnosis; NULL when running. */
static _Thread_local const ox__wait_site *current_wait_site;
static _Thread_local const void *current_wait_object;

int ox__park_wait(_Atomic uint32_t *word, uint32_t expected, ox_instant deadline,
                  const ox__wait_site *site, const void *object)
{
    current_wait_site = site;
    current_wait_object = object;
    int rc = ox__sys_futex_wait(word, expected, deadline.ns);
    current_wait_site = NULL;
    current_wait_object = NULL;
    return rc;
}

int ox__park_wake_one(_Atomic uint32_t *word)
{
    return ox__sys_futex_wake(word, 1);
}

int ox__park_wake_all(_Atomic uint32_t *word)
{
    return ox__sys_futex_wake(word, INT32_MAX);
}

int ox__park_requeue(_Atomic uint32_t *from, uint32_t expected, _Atomic uint32_t *to)
{
    return ox__sys_futex_requeue(from, expected, 1, to);
}

int ox__parker_park(ox__parker *p, ox_instant deadline, const ox__wait_site *site,
                    const void *object)
{
    /* One step down: NOTIFIED -> EMPTY (token consumed) or EMPTY -> PARKED.
     * Only the owner parks, so the state cannot already be PARKED. Acquire:
     * consuming a token must see everything the unparking thread wrote
     * before its release swap in ox__parker_unpark. */
    if (atomic_fetch_sub_explicit(&p->state, 1, memory_order_acquire) == OX__PARK_NOTIFIED)
        return 0;
    uint32_t expected;
    for (;;) {
        int rc = ox__park_wait(&p->state, OX__PARK_PARKED, deadline, site, object);
        /* Acquire: pairs with the release swap in unpark (see above). */
        expected = OX__PARK_NOTIFIED;
        if (atomic_compare_exchange_strong_explicit(&p->state, &expected, OX__PARK_EMPTY,
                                                    memory_order_acquire, memory_order_relaxed))
            return 0;
        if (rc == OX_ETIMEDOUT) {
            /* Give up: PARKED -> EMPTY, unless an unpark races us, in which
             * case the token is ours after all. */
            uint32_t old =
                atomic_exchange_explicit(&p->state, OX__PARK_EMPTY, memory_order_acquire);
            return old == OX__PARK_NOTIFIED ? 0 : OX_ETIMEDOUT;
        }
        /* Spurious wake-up: still PARKED; sleep again. */
    }
}

void ox__parker_unpark(ox__parker *p)
{
    /* Release: everything before unpark happens-before the parked thread's
     * acquire when it consumes the token. */
    if (atomic_exchange_explicit(&p->state, OX__PARK_NOTIFIED, memory_order_release) ==
        OX__PARK_PARKED)
        ox__park_wake_one(&p->state);
}

void ox__backoff_snooze(ox__backoff *b)
{
    if (b->step <= OX__BACKOFF_SPIN_LIMIT) {
        for (unsigned i = 0; i < (1u << b->step); i++)
            ox__cpu_relax();
    } else {
        ox__sys_yield();
    }
    if (b->step <= OX__BACKOFF_YIELD_LIMIT)
        b->step++;
}
