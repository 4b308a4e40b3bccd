/* mutex_internal.h - what condvar.c needs of the mutex: the re-acquire after
 * a wait, without touching the held-lock record (the condvar keeps the
 * record itself). The state constants and the raw release
 * (ox__mutex_release) are in oxide/mutex.h, for the inline fast paths. */
#ifndef OX_MUTEX_INTERNAL_H
#define OX_MUTEX_INTERNAL_H

#include "oxide/mutex.h"

#include "../panic/unwind.h"
#include "../thread/park.h"

/* The flags' bits that only mutex.c uses (the others are in oxide/mutex.h,
 * for the inline unlock). */
#define OX__MUTEX_SWAP_STICKY 8u  /* a condvar may have requeued sleepers onto the word */
#define OX__MUTEX_SLEEPER_ONE 16u /* one thread between enter_sleep and leave_sleep */

/* Acquires m after a condvar wait, leaving the word CONTENDED: the thread
 * may have been requeued from the condvar onto m, and other requeued
 * waiters may still sleep on m with nobody else to wake them, so its unlock
 * must wake the next. Does not touch the held-lock record. */
void ox__mutex_lock_after_wait(ox_mutex *m);

/* Acquires m as ox_mutex_lock does, without touching the record. */
void ox__mutex_lock_plain(ox_mutex *m, const char *file, int line);

/* The process-wide fence (ox__sys_fence_others) for another user than the
 * mutex (the rwlock's biased readers), with the mutex's record of whether
 * it works: OX__FENCE_NEVER if start-up found none (then nobody relied on
 * it), OX__FENCE_DONE once every running thread has passed a barrier,
 * OX__FENCE_LOST if it failed, now or since start-up (a seccomp filter
 * installed later; the mutex then stops storing, as after its own
 * failure). Whether to rely on it: the epoch's NO_FENCE bit is clear. */
typedef enum { OX__FENCE_NEVER, OX__FENCE_DONE, OX__FENCE_LOST } ox__fence_result;
ox__fence_result ox__mutex_fence_others(void);

#endif
