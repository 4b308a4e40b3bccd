/* oxide/condvar.h - ox_condvar: condition variables for ox_mutex, as Rust's
 * std::sync::Condvar.
 *
 * 8 bytes, valid when zero-initialised (or OX_CONDVAR_INIT). Waits use
 * CLOCK_MONOTONIC deadlines. A wait may return spuriously (without a
 * notify): check the condition in a loop, or use ox_condvar_wait_while.
 *
 * A condvar is tied to the first mutex it is used with and stays tied to it
 * (as Rust's pthread-based Condvar was): waiting with a different mutex
 * aborts with a message. ox_condvar_init() unties it (only while no thread
 * waits).
 *
 * In a task (oxide/task.h) a wait suspends the task, and is a cancellation
 * point: an aborted task's wait returns OX_ECANCELED with the mutex held
 * again, as after a timeout.
 *
 * notify_all does not wake a herd that then fights for the mutex: it wakes
 * one waiter and moves the others onto the mutex's wait queue, so they are
 * woken one by one as the mutex is unlocked (FUTEX_CMP_REQUEUE, as
 * parking_lot and glibc do).
 */
#ifndef OXIDE_CONDVAR_H
#define OXIDE_CONDVAR_H

#include "base.h"
#include "mutex.h"

#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* A condition variable (see the top of this file). */
typedef struct ox_condvar {
    OX__ALIGNAS(8) OX__ATOMIC(uint64_t) state; /* the tied mutex and a notify sequence: condvar.c */
} ox_condvar;

/* Static initialiser; a zero-filled ox_condvar is equally valid. */
#define OX_CONDVAR_INIT                                                                            \
    {                                                                                              \
        0                                                                                          \
    }

/* (Re)initialises cv and unties it from its mutex, so that it may be used
 * with another one. Only while no thread waits on it. */
void ox_condvar_init(ox_condvar *cv);

/* Atomically releases m (which the calling thread must hold: aborts
 * otherwise) and blocks until notified (or spuriously woken), then takes m
 * again. Returns 0, or OX_EPOISONED if m is poisoned when re-taken (held
 * either way, as for ox_mutex_lock). The re-taken m keeps its place in the
 * thread's record of held locks: if m was locked outside an
 * ox_catch_unwind and the wait is inside it, a panic there does not release
 * or poison m, which still belongs to the outer code. */
#define ox_condvar_wait(cv, m) ox_condvar_wait_at((cv), (m), __FILE__, __LINE__)
OX_MUST_USE int ox_condvar_wait_at(ox_condvar *cv, ox_mutex *m, const char *file, int line);
OX_MUST_USE int(ox_condvar_wait)(ox_condvar *cv, ox_mutex *m);

/* As ox_condvar_wait, but gives up after timeout / at deadline: returns
 * OX_ETIMEDOUT then (m is held again all the same; the timeout is reported
 * in preference to poisoning, which ox_mutex_is_poisoned still tells). A
 * negative timeout returns OX_EINVAL at once, m still held and never
 * released. */
#define ox_condvar_wait_timeout(cv, m, t)                                                          \
    ox_condvar_wait_timeout_at((cv), (m), (t), __FILE__, __LINE__)
OX_MUST_USE int ox_condvar_wait_timeout_at(ox_condvar *cv, ox_mutex *m, ox_nanos timeout,
                                           const char *file, int line);
OX_MUST_USE int(ox_condvar_wait_timeout)(ox_condvar *cv, ox_mutex *m, ox_nanos timeout);

/* As ox_condvar_wait_timeout, with a deadline on CLOCK_MONOTONIC. */
#define ox_condvar_wait_deadline(cv, m, d)                                                         \
    ox_condvar_wait_deadline_at((cv), (m), (d), __FILE__, __LINE__)
OX_MUST_USE int ox_condvar_wait_deadline_at(ox_condvar *cv, ox_mutex *m, ox_instant deadline,
                                            const char *file, int line);
OX_MUST_USE int(ox_condvar_wait_deadline)(ox_condvar *cv, ox_mutex *m, ox_instant deadline);

/* Waits while pred(arg) is true (pred is called with m held; spurious
 * wake-ups are absorbed). Returns 0 with m held and pred false, or
 * OX_EPOISONED as soon as a re-take finds m poisoned (m held, pred not
 * checked again), as Rust's wait_while returns the PoisonError. */
#define ox_condvar_wait_while(cv, m, pred, arg)                                                    \
    ox_condvar_wait_while_at((cv), (m), (pred), (arg), __FILE__, __LINE__)
OX_MUST_USE int ox_condvar_wait_while_at(ox_condvar *cv, ox_mutex *m, bool (*pred)(void *arg),
                                         void *arg, const char *file, int line);
OX_MUST_USE int(ox_condvar_wait_while)(ox_condvar *cv, ox_mutex *m, bool (*pred)(void *arg),
                                       void *arg);

/* Waits while pred(arg) is true, for at most timeout in all (Rust's
 * wait_timeout_while). Returns 0 with pred false; OX_ETIMEDOUT once the
 * timeout has passed with pred still true (pred is checked one last time
 * after the timeout, so a change that came just in time counts);
 * OX_EPOISONED as ox_condvar_wait_while; OX_EINVAL for a negative timeout
 * (m held and never released). m is held on every return. */
#define ox_condvar_wait_timeout_while(cv, m, t, pred, arg)                                         \
    ox_condvar_wait_timeout_while_at((cv), (m), (t), (pred), (arg), __FILE__, __LINE__)
OX_MUST_USE int ox_condvar_wait_timeout_while_at(ox_condvar *cv, ox_mutex *m, ox_nanos timeout,
                                                 bool (*pred)(void *arg), void *arg,
                                                 const char *file, int line);
OX_MUST_USE int(ox_condvar_wait_timeout_while)(ox_condvar *cv, ox_mutex *m, ox_nanos timeout,
                                               bool (*pred)(void *arg), void *arg);

/* Wakes one waiting thread, if any. Need not hold the mutex. Never blocks. */
void ox_condvar_notify_one(ox_condvar *cv);

/* Wakes every waiting thread (one now, the others as the mutex frees up).
 * Need not hold the mutex. Never blocks. */
void ox_condvar_notify_all(ox_condvar *cv);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
