/* probe_gap.h - how often an adaptive spin that has shrunk tries its full
 * length again (a probe): every OX__PROBE_GAP_MIN waits while probes are
 * answered, twice as seldom after each one that is not, up to every
 * OX__PROBE_GAP_MAX waits. So a thread whose spins stopped paying finds out
 * soon when they pay again, and under load, where probes fail, they cost
 * little. Used by the wait spin (wait_spin.c) and the partner spin of the
 * backoff (backoff.c); a thread's own state, never shared. */
#ifndef OX_PROBE_GAP_H
#define OX_PROBE_GAP_H

#include <stdbool.h>

#define OX__PROBE_GAP_MIN 8
#define OX__PROBE_GAP_MAX 1024

typedef struct ox__probe_gap {
    unsigned every;    /* waits from one probe to the next */
    unsigned waits_to; /* until the next probe */
} ox__probe_gap;

#define OX__PROBE_GAP_INIT                                                                         \
    {                                                                                              \
        OX__PROBE_GAP_MIN, OX__PROBE_GAP_MIN                                                       \
    }

/* Counts a wait of a shrunk spin; true if it is to probe. */
static inline bool ox__probe_due(ox__probe_gap *g)
{
    return --g->waits_to == 0;
}

/* A probe (or any full spin) was answered: probes come often again. */
static inline void ox__probe_answered(ox__probe_gap *g)
{
    g->every = g->waits_to = OX__PROBE_GAP_MIN;
}

/* A probe went unanswered: the next comes twice as many waits later. */
static inline void ox__probe_missed(ox__probe_gap *g)
{
    if (g->every < OX__PROBE_GAP_MAX)
        g->every *= 2;
    g->waits_to = g->every;
}

#endif
