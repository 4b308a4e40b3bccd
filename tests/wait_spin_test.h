/* wait_spin_test.h - waits played out by hand on the adaptive spin
 * (src/thread/wait_spin.c), for its white-box tests. */
#ifndef OX_WAIT_SPIN_TEST_H
#define OX_WAIT_SPIN_TEST_H

#include "thread/wait_spin.h"

/* One wait with no deadline, ended as answered or not: its budget. */
static inline ox__wait_spin one_wait(bool answered)
{
    ox__wait_spin s;
    ox__wait_spin_begin(&s, OX_INSTANT_NEVER);
    ox__wait_spin_end(&s, answered);
    return s;
}

/* Grows the calling thread's budget to its cap (answered waits). */
static inline void grow_the_budget(void)
{
    for (int i = 0; i < 64; i++)
        (void)one_wait(true);
}

#endif
