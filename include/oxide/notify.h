/* oxide/notify.h - ox_notify: wake one waiter or all of them, with Tokio's
 * permit semantics (tokio::sync::Notify, for threads and tasks alike).
 *
 *   static ox_notify ready = OX_NOTIFY_INIT;
 *   // consumer                        // producer
 *   ox_notify_wait(&ready);            publish(data);
 *   use(data);                         ox_notify_one(&ready);
 *
 * A Notify has no mutex and no predicate of its own; it is a wake-up
 * channel with a memory of at most one wake-up:
 *   - ox_notify_one wakes the oldest waiter (FIFO). With nobody waiting it
 *     stores a permit instead (at most one: storing twice still stores
 *     one), and the next wait consumes it and returns at once. So a
 *     notify_one that races ahead of the wait is never lost.
 *   - ox_notify_waiters wakes every thread waiting at that moment and
 *     stores nothing: a wait that starts later blocks. To not miss one
 *     that comes between checking your condition and waiting, take a
 *     ticket before checking (Tokio's notified()): a ticket's wait returns
 *     at once if notify_waiters was called after the ticket was taken.
 *
 *     ox_notified t = ox_notify_notified(&n);  // before the check
 *     if (!condition())
 *         ox_notified_wait(&t);
 *
 * In a task (oxide/task.h) a blocking wait suspends the task, not its
 * worker, and is a cancellation point: once the task is aborted, a call
 * that would wait returns OX_ECANCELED instead (one that can complete at
 * once still completes).
 *
 * Everything the notifier wrote before notifying happens-before the
 * return of the wait it ends (or consumes its permit).
 *
 * Valid when zero-initialised (or OX_NOTIFY_INIT); no destructor. All
 * functions borrow the Notify; it must outlive every call on it.
 */
#ifndef OXIDE_NOTIFY_H
#define OXIDE_NOTIFY_H

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

/* A Notify: a state word and the list of waiters (both private). */
typedef struct ox_notify {
    OX__ATOMIC(uint64_t) state; /* private: see src/sync/notify.c */
    ox__wait_list waiters;      /* private */
} ox_notify;

/* clang-format off */
/* The static initialiser: no permit, nobody waiting (as zero). */
#define OX_NOTIFY_INIT {0, OX__WAIT_LIST_INIT}
/* clang-format on */

/* A ticket: remembers which notify_waiters calls have already happened.
 * A plain value, owned by the caller; needs no cleanup. */
typedef struct ox_notified {
    ox_notify *notify;   /* borrowed */
    uint64_t generation; /* the notify_waiters calls made before the ticket */
} ox_notified;

/* Wakes the oldest waiter, or stores a permit if nobody waits. Never
 * blocks (beyond the short internal lock). */
void ox_notify_one(ox_notify *n);

/* Wakes every waiter waiting now, and every ticket taken before this call;
 * stores no permit. Never blocks (beyond the short internal lock). */
void ox_notify_waiters(ox_notify *n);

/* Blocks until a notify_one picks this caller or its stored permit is
 * consumed, or a notify_waiters happens. Returns 0 (never spuriously), or
 * OX_ECANCELED in an aborted task. */
OX_MUST_USE int ox_notify_wait(ox_notify *n);
/* As ox_notify_wait, giving up after timeout / at deadline: returns
 * OX_ETIMEDOUT then (no permit consumed). Negative timeout: OX_EINVAL. */
OX_MUST_USE int ox_notify_wait_timeout(ox_notify *n, ox_nanos timeout);
OX_MUST_USE int ox_notify_wait_deadline(ox_notify *n, ox_instant deadline);

/* Consumes the stored permit if there is one: returns 0, else OX_EBUSY.
 * Never blocks. */
OX_MUST_USE int ox_notify_try_wait(ox_notify *n);

/* Takes a ticket (Tokio's Notify::notified()). */
ox_notified ox_notify_notified(ox_notify *n);

/* As ox_notify_wait*, but also returns 0 at once if ox_notify_waiters was
 * called since t was taken (then no permit is consumed). t is borrowed
 * and may be waited on again (it still remembers the same point). */
OX_MUST_USE int ox_notified_wait(const ox_notified *t);
OX_MUST_USE int ox_notified_wait_timeout(const ox_notified *t, ox_nanos timeout);
OX_MUST_USE int ox_notified_wait_deadline(const ox_notified *t, ox_instant deadline);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
