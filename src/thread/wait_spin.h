/* wait_spin.h - spinning before a sleep, for a wait that another thread answers
 * (a condvar's notify, a channel's hand-off).
 *
 * A sleep and its wake-up cost microseconds, and on an idle VM the wake-up
 * of a sleeping CPU costs 10-20 us: when two threads hand work back and
 * forth, a waiter that spins until the answer comes lets both stay awake
 * and each hand-off take a fraction of a microsecond. When the answer is
 * far off, or the answering thread is not running (a loaded machine),
 * spinning only burns the CPU it needs. So each thread adapts its spin to
 * what its recent waits saw (wait_spin.c says how).
 *
 *     ox__wait_spin s;
 *     ox__wait_spin_begin(&s, deadline);
 *     while (!(answered = ...) && ox__wait_spin_poll(&s))
 *         ;
 *     ox__wait_spin_end(&s, answered);
 *     if (!answered) ... sleep ...
 */
#ifndef OX_WAIT_SPIN_H
#define OX_WAIT_SPIN_H

#include "oxide/base.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ox__wait_spin {
    int64_t budget_ns; /* this wait's spin, 0: look once */
    int64_t start_ns;  /* of the spin: at begin if the wait has a deadline,
                        * else read at the first clock check */
    unsigned polls;
    bool probe; /* a long spin, to find out whether spinning pays again */
    bool task;  /* a task's wait: no spin, and nothing to learn from it */
} ox__wait_spin;

/* Sets this wait's budget from the calling thread's recent waits, and
 * never past the wait's deadline. A task does not spin: its answer most
 * often comes from a task queued behind it on its own worker. */
void ox__wait_spin_begin(ox__wait_spin *s, ox_instant deadline);

/* One pause of the spin; false once the budget is spent (without a
 * pause). */
bool ox__wait_spin_poll(ox__wait_spin *s);

/* Records how the wait went: answered while spinning or not. */
void ox__wait_spin_end(const ox__wait_spin *s, bool answered);

#endif
