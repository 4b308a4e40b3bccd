/* chaos.h - seeded schedule perturbation for stress testing.
 *
 * Built with -DOX_CHAOS (make CHAOS=1, into build/chaos/), every
 * OX__CHAOS_POINT() may yield the CPU or sleep a few microseconds (one
 * perturbation in 16 sleeps 1-20 us, the others yield), chosen
 * by a per-thread random stream derived from one seed. This widens the
 * windows between an atomic step and the next, so interleavings that a
 * quiet machine almost never produces (a waker between a waiter's check and
 * its sleep, a thief between two CASes) show up in seconds. Without
 * OX_CHAOS the macro is empty: zero cost.
 *
 * The seed comes from OX_CHAOS_SEED (a decimal number) or, if unset, from
 * the clock; the process prints it on stderr at start-up
 *   oxide chaos: seed 1234 (replay with OX_CHAOS_SEED=1234)
 * Thread i (in the order threads first reach a chaos point or fork) draws
 * from the stream seed + i; a forked child derives a seed of its own from
 * its parent's (chaos.c). The OS scheduler still varies, so a replay re-creates
 * the same perturbation, which usually is enough to bring a failure back.
 * OX_CHAOS_RATE=N (default 32) perturbs about one point in N.
 *
 * Where the points go (one line each, no logic around them):
 *   park.c        before a thread sleeps and after it wakes (done);
 *   backoff.c     in every snooze of a backoff (done);
 *   locks         after a failed fast-path CAS, before the slow path
 *                 decides to spin or park; between an unlock's release
 *                 store and its wake call; in a condvar wait between
 *                 releasing the mutex and parking, and after waking
 *                 before re-locking;
 *   rwlock        between reading the state and the CAS that acts on it
 *                 (reader count, writer-waiting bit);
 *   once/barrier  before the state transition CAS, and before waking;
 *   channels      between reserving a slot (the CAS on head/tail) and
 *                 writing/reading the slot's message and stamp; in the
 *                 waker, between registering a waiter and re-checking the
 *                 channel; before a disconnect marks the channel; in
 *                 select, between registering on several channels and
 *                 selecting one.
 * A point costs nothing in a normal build, so put one wherever a comment
 * says "another thread may run here".
 */
#ifndef OX_CHAOS_H
#define OX_CHAOS_H

#include <stdint.h>

#ifdef OX_CHAOS
void ox__chaos_point(void);
/* The calling thread's next draw from its stream, as a point makes it
 * (exposed for tests/test_chaos.c). */
uint64_t ox__chaos_draw(void);
#define OX__CHAOS_POINT() ox__chaos_point()
#else
#define OX__CHAOS_POINT() ((void)0)
#endif

#endif
