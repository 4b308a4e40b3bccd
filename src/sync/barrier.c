/* barrier.c - a reusable barrier on one futex word (see oxide/barrier.h).
 *
 * The state word (ox_barrier.state, 32 bits):
 *
 *   bits 24..31  generation: the round number, modulo 256
 *   bit  23      SLEEPERS: some waiter of this round sleeps (or is about to)
 *                on the word, so the leader must make the wake system call
 *   bits  0..22  arrived: threads that have arrived in this round
 *
 * Every change is a compare-and-swap, so each arrival is counted in exactly
 * one round: the n-th arrival does not increment the count but replaces
 * the word with (generation + 1, arrived 0, no sleepers) in the same step,
 * and becomes the leader. A waiter waits for the generation to move away
 * from the one it arrived in, or for the arrived count of that generation
 * to fall below its own arrival (arrivals only grow within a round, so
 * that means a later round with the same 8-bit generation). 8 bits alone
 * are not enough: with more threads than n, rounds go on without a waiter
 * whose round has ended, and one that was descheduled while 256 rounds
 * passed found its generation again and waited for a round it was not in.
 * When the last round was such a one it waited for ever (seen as a rare
 * timeout of barrier_more_threads_than_n, 6 threads on a barrier of 2).
 * The arrival check ends that wait at once when the word shows fewer
 * arrivals than it saw; if a later round with the same generation already
 * has as many, the waiter waits for that round to end instead.
 *
 * Happens-before: each arrival is a release RMW; the leader's CAS (acq_rel)
 * reads the end of that chain of RMWs, so it acquires every arrival; the
 * waiters' acquire load of the new generation then acquires the leader's
 * release. Every thread's writes before its wait are visible to every
 * thread after the round's wait.
 */
#include "oxide/barrier.h"

#include "../thread/park.h"

#define GENERATION_SHIFT 24
#define GENERATION_ONE   (1u << GENERATION_SHIFT)
#define SLEEPERS         (1u << 23)
#define ARRIVED_MASK     (SLEEPERS - 1)

static inline uint32_t generation_of(uint32_t state)
{
    return state >> GENERATION_SHIFT;
}

static inline uint32_t arrived_of(uint32_t state)
{
    return state & ARRIVED_MASK;
}

static inline bool has_sleepers(uint32_t state)
{
    return (state & SLEEPERS) != 0;
}

/* The word that starts the round after the one of state. */
static inline uint32_t next_round(uint32_t state)
{
    return (generation_of(state) + 1) << GENERATION_SHIFT; /* wraps out of the top: fine */
}

static const ox__wait_site barrier_site = {.what = "barrier"};

int ox_barrier_init(ox_barrier *b, uint32_t n)
{
    if (n > OX_BARRIER_MAX)
        return OX_EINVAL;
    b->n = n;
    atomic_store_explicit(&b->state, 0, memory_order_relaxed); /* ordered by the caller */
    return 0;
}

/* Whether the round of a waiter that arrived as arrival number mine of
 * generation my_generation has ended, as far as state shows (see the top). */
static inline bool round_ended(uint32_t state, uint32_t my_generation, uint32_t mine)
{
    return generation_of(state) != my_generation || arrived_of(state) < mine;
}

static void barrier_sleep(ox_barrier *b, uint32_t my_generation, uint32_t mine)
{
    ox__backoff backoff = {0};
    for (;;) {
        /* Acquire: pairs with the leader's release CAS (see the top). A
         * value from a later round does too: every later write of the word
         * is a read-modify-write, which continues that release sequence. */
        uint32_t state = atomic_load_explicit(&b->state, memory_order_acquire);
        if (round_ended(state, my_generation, mine))
            return;
        /* The others may be a few instructions behind: spin a little
         * before paying for a sleep and a wake. */
        if (!ox__backoff_is_completed(&backoff)) {
            ox__backoff_snooze_partner(&backoff);
            continue;
        }
        if (!has_sleepers(state)) {
            /* Relaxed: only tells the leader to wake; ordering comes from
             * the generation reload above. */
            if (!atomic_compare_exchange_weak_explicit(&b->state, &state, state | SLEEPERS,
                                                       memory_order_relaxed, memory_order_relaxed))
                continue;
            state |= SLEEPERS;
        }
        /* Sleeps only while the word is exactly state: a new arrival makes
         * it return early (we re-check), the leader's CAS makes it return or
         * is followed by its wake. */
        ox__park_wait(&b->state, state, OX_INSTANT_NEVER, &barrier_site, b);
    }
}

bool ox_barrier_wait(ox_barrier *b)
{
    uint32_t n = b->n;
    if (n > OX_BARRIER_MAX)
        ox_abort("ox_barrier_wait", "barrier %p is for %u threads, more than the %u supported",
                 (void *)b, n, OX_BARRIER_MAX);
    if (n == 0)
        n = 1; /* as Rust: a barrier for 0 threads lets everyone through as leader */
    uint32_t state = atomic_load_explicit(&b->state, memory_order_relaxed);
    for (;;) {
        bool last = arrived_of(state) + 1 >= n;
        uint32_t next = last ? next_round(state) : state + 1;
        /* Acq_rel: the release half publishes this thread's writes to the
         * leader (and through it to everyone); the acquire half lets the
         * leader see every earlier arrival's writes. */
        if (atomic_compare_exchange_weak_explicit(&b->state, &state, next, memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    if (arrived_of(state) + 1 >= n) {
        if (has_sleepers(state))
            ox__park_wake_all(&b->state);
        return true;
    }
    barrier_sleep(b, generation_of(state), arrived_of(state) + 1);
    return false;
}
