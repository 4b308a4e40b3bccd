/* oxide/semaphore.h - a counting semaphore with fair FIFO hand-off (Tokio's
 * tokio::sync::Semaphore, for threads and tasks alike).
 *
 *   static ox_semaphore slots = OX_SEMAPHORE_INIT(4);
 *   ox_semaphore_acquire(&slots, 1);   // blocks while all 4 are out
 *   ...use one of 4 connections...
 *   ox_semaphore_release(&slots, 1);
 *
 * A semaphore holds a number of permits. Acquiring n takes n of them,
 * waiting until there are enough; releasing n gives n back (or adds new
 * ones: nothing checks that the releaser acquired them, as Tokio's
 * add_permits). Permits are never created or lost otherwise.
 *
 * Fairness, as Tokio's batch semaphore: waiters are served in arrival
 * order, and released permits go to the oldest waiter first, even in part:
 * a waiter for 10 that holds 3 keeps them while it waits for 7 more, and a
 * later acquire of 1 queues behind it instead of taking the next permit.
 * So a large acquire is not starved by a stream of small ones. A waiter that
 * gives up (timeout) hands what it had collected to the waiters behind it.
 *
 * Closing (ox_semaphore_close, Tokio's close) makes every waiting and every
 * later acquire return OX_ECLOSED; permits can still be released and
 * counted.
 *
 * In a task (oxide/task.h) a blocking acquire suspends the task, not its
 * worker, and is a cancellation point: once the task is aborted, a call
 * that would wait returns OX_ECANCELED instead (one that can complete at
 * once still completes).
 *
 * A semaphore is valid when zero-initialised (no permits, open) and needs
 * no destructor; OX_SEMAPHORE_INIT(n) starts it with n permits. All
 * functions borrow the semaphore; it must outlive every call on it.
 */
#ifndef OXIDE_SEMAPHORE_H
#define OXIDE_SEMAPHORE_H

#include "base.h"
#include "wait_list.h"

#include <stdint.h>
#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* The most permits a semaphore holds (as Tokio's MAX_PERMITS). */
#define OX_SEMAPHORE_MAX_PERMITS (SIZE_MAX >> 3)

/* A semaphore: its permits and flags, and the list of waiters (both
 * private). */
typedef struct ox_semaphore {
    OX__ATOMIC(size_t) state; /* private: permits and flags, see src/sync/semaphore.c */
    ox__wait_list waiters;    /* private */
} ox_semaphore;

/* clang-format off */
/* The static initialiser: an open semaphore with permits permits. */
#define OX_SEMAPHORE_INIT(permits) {((size_t)(permits)) << 2, OX__WAIT_LIST_INIT}
/* clang-format on */

/* Makes s an open semaphore with permits permits. Must not race with any
 * other call on s. Returns 0, or OX_EINVAL if permits >
 * OX_SEMAPHORE_MAX_PERMITS. */
OX_MUST_USE int ox_semaphore_init(ox_semaphore *s, size_t permits);

/* Takes n permits, blocking until they are all the caller's. Returns 0;
 * OX_ECLOSED if s is or gets closed first (the caller then holds none of
 * them); OX_EINVAL if n > OX_SEMAPHORE_MAX_PERMITS. n == 0 returns 0 at
 * once (OX_ECLOSED if closed). The permits collected happen-after the
 * release that gave them. */
OX_MUST_USE int ox_semaphore_acquire(ox_semaphore *s, size_t n);

/* As ox_semaphore_acquire, giving up after timeout / at deadline: returns
 * OX_ETIMEDOUT then, holding none of the n (permits it had collected go to
 * the next waiters). If the last permit arrives just as the time runs out,
 * the acquire succeeds (0). A negative timeout returns OX_EINVAL. */
OX_MUST_USE int ox_semaphore_acquire_timeout(ox_semaphore *s, size_t n, ox_nanos timeout);
OX_MUST_USE int ox_semaphore_acquire_deadline(ox_semaphore *s, size_t n, ox_instant deadline);

/* Takes n permits if that can be done now, without waiting. Returns 0;
 * OX_EBUSY if there are fewer than n free (a try never jumps the queue:
 * while anyone waits, no permits are free); OX_ECLOSED; OX_EINVAL. Never
 * blocks. */
OX_MUST_USE int ox_semaphore_try_acquire(ox_semaphore *s, size_t n);

/* Gives n permits back (or adds n new ones), waking the waiters they
 * complete, oldest first. Never blocks (beyond the semaphore's own short
 * internal lock). Aborts if the total would exceed OX_SEMAPHORE_MAX_PERMITS. */
void ox_semaphore_release(ox_semaphore *s, size_t n);

/* The permits free right now (a snapshot). */
size_t ox_semaphore_available(const ox_semaphore *s);

/* Closes s: every waiter returns OX_ECLOSED, and so does every later
 * acquire and try. Permits released afterwards are still counted. */
void ox_semaphore_close(ox_semaphore *s);
bool ox_semaphore_is_closed(const ox_semaphore *s);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
