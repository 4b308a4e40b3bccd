/* oxide/barrier.h - a reusable barrier (Rust's std::sync::Barrier).
 *
 *   static ox_barrier b = OX_BARRIER_INIT(4);
 *   ...in each of 4 threads:
 *   if (ox_barrier_wait(&b))
 *       puts("I am the leader of this round");
 *
 * n threads call ox_barrier_wait(); all block until the n-th arrives, then
 * all return and exactly one of them (the last to arrive) is told it is the
 * leader. The barrier is then ready for the next round at once: rounds are
 * told apart by a generation number. A barrier for 0 threads behaves as one
 * for 1 (every wait returns at once, as the leader), as in Rust.
 *
 * A zero-initialised barrier is a barrier for 0 (so, 1) threads. No destroy
 * is needed. At most OX_BARRIER_MAX threads.
 */
#ifndef OXIDE_BARRIER_H
#define OXIDE_BARRIER_H

#include "base.h"

#include <stdint.h>
#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* The most threads a barrier can gather (the arrival count has 23 bits of
 * the state word). */
#define OX_BARRIER_MAX ((1u << 23) - 1)

/* A reusable barrier for n threads (see the top of this file). */
typedef struct ox_barrier {
    OX__ATOMIC(uint32_t) state; /* private: see src/sync/barrier.c */
    uint32_t n;                 /* threads per round; set before any wait */
} ox_barrier;

/* clang-format off */
/* Static initialiser of a barrier for n_threads threads. */
#define OX_BARRIER_INIT(n_threads) {0, (n_threads)}
/* clang-format on */

/* Makes b a barrier for n threads (0 behaves as 1). Must not race with a
 * wait on b. Returns 0, or OX_EINVAL if n > OX_BARRIER_MAX. */
OX_MUST_USE int ox_barrier_init(ox_barrier *b, uint32_t n);

/* Blocks until n threads (counting the caller) have called it in this
 * round. Returns true in exactly one thread per round, the leader. Every
 * write made by any thread before its wait happens-before every thread's
 * return from that round's wait. b is borrowed. */
bool ox_barrier_wait(ox_barrier *b);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
