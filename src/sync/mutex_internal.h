/* mutex_internal.h - what condvar.c needs of the mutex: the raw release and
 * the re-acquire after a wait, without touching the held-lock record (the
 * condvar keeps the record itself). */
#ifndef OX_MUTEX_INTERNAL_H
#define OX_MUTEX_INTERNAL_H

#include "oxide/mutex.h"

#include "../panic/unwind.h"
#include "../thread/park.h"

/* The mutex state word (see mutex.c). */
#define OX__MUTEX_UNLOCKED  0u /* free */
#define OX__MUTEX_LOCKED    1u /* held; nobody sleeps on the word */
#define OX__MUTEX_CONTENDED 2u /* held; a thread may sleep on the word: unlock wakes one */

extern const ox__lock_ops ox__mutex_ops;

OX_COLD void ox__mutex_wake(ox_mutex *m);

/* Releases m (the caller has already dropped it from its record). */
static inline void ox__mutex_release(ox_mutex *m)
{
    /* Release: everything done while holding m happens-before the next
     * holder's acquire (the CAS or swap in mutex.c). Only a CONTENDED word
     * can have sleepers, so only then is a wake (a syscall) needed. */
    if (OX_UNLIKELY(atomic_exchange_explicit(&m->state, OX__MUTEX_UNLOCKED, memory_order_release) ==
                    OX__MUTEX_CONTENDED))
        ox__mutex_wake(m);
}

/* Acquires m after a condvar wait, leaving the word CONTENDED: the thread
 * may have been requeued from the condvar onto m, and other requeued
 * waiters may still sleep on m with nobody else to wake them, so its unlock
 * must wake the next. Does not touch the held-lock record. */
void ox__mutex_lock_after_wait(ox_mutex *m);

/* Acquires m as ox_mutex_lock does, without touching the record. */
void ox__mutex_lock_plain(ox_mutex *m, const char *file, int line);

#endif
