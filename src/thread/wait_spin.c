/* wait_spin.c - the adaptive spin before a sleep (wait_spin.h).
 *
 * Each thread keeps a spin budget in nanoseconds. A wait answered while
 * spinning doubles it (at least to SPIN_GROWN_NS, at most SPIN_MAX_NS); a
 * wait that had to sleep halves it, down to 0 (look once, then sleep). A
 * loaded machine, or waits longer than the budget, thus bring a thread to
 * sleeping at once within a few waits.
 *
 * Halving alone never finds its way back: once both sides of a hand-off
 * sleep, each waits for the other's wake-up (10-20 us on an idle VM), and
 * a short spin never sees the answer. So now and then a wait probes: it
 * spins PROBE_NS, longer than such a wake-up. If the probe is answered,
 * the budget is back at its cap, and the other side, which now finds this
 * one awake, is answered within its own spin. condvar_pingpong on an idle
 * 2-vCPU VM went from 10-26 us a hand-off (both sides asleep, as with
 * parking_lot) to 0.1-0.9 us. A probe that was not answered doubles the
 * number of waits until the next one (probe_gap.h), so under load, where
 * probes fail, they cost little.
 *
 * The cap is well below a probe: once both sides are awake an answer
 * takes a microsecond or less. A longer cap burns CPU where a condvar's
 * waiters see notifies meant for others: four idle workers of a pool, fed
 * a job every 10-40 us by notify_one, all spun all the time at a 50 us cap
 * (1.0 CPU of the 2, against 0.15-0.5 for the old 5 us spin); at 10 us
 * they use 0.4-0.5. */
#include "wait_spin.h"

#include "park.h"
#include "probe_gap.h"

#include "oxide/base.h"

#define SPIN_GROWN_NS   1000 /* an answered wait raises the budget at least to this */
#define SPIN_MAX_NS     10000
#define SPIN_FLOOR_NS   250   /* a halved budget below this is 0 */
#define PROBE_NS        50000 /* above an idle CPU's wake-up on a VM */
#define POLLS_PER_CLOCK 16    /* pauses between clock reads */

static _Thread_local int64_t budget_ns = SPIN_GROWN_NS;
static _Thread_local ox__probe_gap probe_gap = OX__PROBE_GAP_INIT;

void ox__wait_spin_begin(ox__wait_spin *s, ox_instant deadline)
{
    if (ox__park_unit_get() != NULL) {
        *s = (ox__wait_spin){.task = true};
        return;
    }
    *s = (ox__wait_spin){.budget_ns = budget_ns};
    if (budget_ns < PROBE_NS && ox__probe_due(&probe_gap)) {
        s->budget_ns = PROBE_NS;
        s->probe = true;
    }
    if (deadline.ns != OX_INSTANT_NEVER.ns && s->budget_ns > 0) {
        /* The spin is timed from here, not from poll's first clock read:
         * a thread preempted in between would otherwise spin the time
         * left over again, past the deadline. Compared before subtracting:
         * any instant is a deadline, and one far in the past would
         * overflow deadline - now. */
        int64_t now = ox_instant_now().ns;
        s->start_ns = now;
        if (deadline.ns <= now)
            s->budget_ns = 0;
        else if (deadline.ns - now < s->budget_ns)
            s->budget_ns = deadline.ns - now;
    }
}

bool ox__wait_spin_poll(ox__wait_spin *s)
{
    if (s->budget_ns == 0)
        return false;
    if (++s->polls % POLLS_PER_CLOCK == 0) {
        int64_t now = ox_instant_now().ns;
        if (s->start_ns == 0)
            s->start_ns = now;
        else if (now - s->start_ns >= s->budget_ns)
            return false;
    }
    ox__cpu_relax();
    return true;
}

void ox__wait_spin_end(const ox__wait_spin *s, bool answered)
{
    if (s->task)
        return;
    if (answered) {
        /* From the larger of the two: a probe's, or the thread's when a
         * deadline cut this wait's spin short (that teaches nothing
         * about how long a spin should be). */
        int64_t grown = (s->budget_ns > budget_ns ? s->budget_ns : budget_ns) * 2;
        budget_ns = grown < SPIN_GROWN_NS ? SPIN_GROWN_NS
                    : grown > SPIN_MAX_NS ? SPIN_MAX_NS
                                          : grown;
    } else {
        budget_ns = budget_ns / 2 < SPIN_FLOOR_NS ? 0 : budget_ns / 2;
    }
    if (s->probe) {
        if (answered)
            ox__probe_answered(&probe_gap);
        else
            ox__probe_missed(&probe_gap);
    }
}
