/* backoff.c - spinning and yielding before a wait parks (park.h's
 * ox__backoff), and how a yield under CPU load ends that wait early. */
#include "park.h"
#include "probe_gap.h"

#include "../check/chaos.h"
#include "../sys/sys.h"
#include "../unit/unit.h"

/* Yielding under CPU load. On an idle machine a yield returns within a
 * microsecond or two (nobody else wants the CPU, or a partner runs briefly
 * and answers). When other processes compete for the CPUs, the scheduler
 * hands each of them a whole time slice before we run again: a yield that
 * returns after SLOW_YIELD_NS with our wait still unanswered gave the CPU
 * to someone who did not help us, and each further yield costs as much.
 * Then parking is the better wait: the waker's futex wake puts us back on
 * a CPU as soon as the answer exists, instead of after the others' slices.
 * So a slow yield completes the backoff (the caller parks).
 *
 * Whose slice was it? If the process's own threads used less than half
 * the time the yield took, the CPU went to another process: for
 * FOREIGN_WINDOW_NS afterwards this thread's waits skip their yields
 * altogether (spin, then park), and the first wait after the window
 * probes with a yield again. Under two busy loops a two-thread ping-pong
 * over bounded(1) channels otherwise lost a slice on most waits: it used
 * 0.15 CPUs and took 3.0-6.7 us a round trip. A slow yield that ran the
 * program's own threads (more of them than CPUs) opens no window: an
 * earlier window that opened on every slow yield made quiet
 * chan_mpsc_bounded0 and _bounded1 1.3-1.6x slower (docs/bench.md).
 * (The process's time counts its threads on every CPU: with many CPUs
 * and a busy program, a slice lost to another process may pass for its
 * own, and the waits go on yielding, as they did before the window.)
 * Lock waits (snooze_lock) keep plain yields: a lock's holder is
 * mid-critical-section, and its waiters would park on every contended
 * acquisition. */
#define SLOW_YIELD_NS     50000   /* 50 us: far above a bare sched_yield */
#define FOREIGN_WINDOW_NS 5000000 /* 5 ms: a few time slices */
static _Thread_local int64_t foreign_yield_at = INT64_MIN / 2;

static inline bool in_foreign_window(int64_t now_ns)
{
    return now_ns - foreign_yield_at < FOREIGN_WINDOW_NS;
}

bool ox__yield_lost_cpu(void)
{
    int64_t t0 = ox_instant_now().ns;
    ox__sys_yield();
    return ox_instant_now().ns - t0 > SLOW_YIELD_NS;
}

/* ox__yield_lost_cpu for a wait's backoff, with the window above: true
 * (without yielding, inside the window) when the backoff should end. The
 * process's CPU time is a system call to read, so it is read only around
 * the yields of a thread that saw a slow one in the last SUSPECT_NS: a
 * quiet machine's yields never pay for it (reading it around every yield
 * made quiet chan_spsc_bounded1 2x slower), and under load the window
 * opens one wait later. (Only after two slow yields in a row, it opened
 * too seldom: under load fast and slow yields alternate.) */
#define SUSPECT_NS 100000000 /* 100 ms */
static _Thread_local int64_t slow_yield_at = INT64_MIN / 2;

static bool wait_yield_lost_cpu(void)
{
    int64_t t0 = ox_instant_now().ns;
    if (in_foreign_window(t0))
        return true;
    bool measured = t0 - slow_yield_at < SUSPECT_NS;
    int64_t cpu0 = measured ? ox__sys_process_cpu_ns() : 0;
    ox__sys_yield();
    int64_t t1 = ox_instant_now().ns;
    if (t1 - t0 <= SLOW_YIELD_NS)
        return false;
    slow_yield_at = t1;
    if (measured && ox__sys_process_cpu_ns() - cpu0 < (t1 - t0) / 2)
        foreign_yield_at = t1;
    return true;
}

bool ox__wait_yields_skipped(void)
{
    return in_foreign_window(ox_instant_now().ns);
}

/* One backoff step: in the first spin_steps steps, busy-waits
 * first_spin << step pauses; after them, yields the CPU (load_aware: see
 * wait_yield_lost_cpu). */
static void snooze(ox__backoff *b, unsigned spin_steps, unsigned first_spin, bool load_aware)
{
    OX__CHAOS_POINT();
    /* The unit is asked only where the answer matters: not in a lock's
     * spin steps, which a thread takes on every contended acquisition. */
    if ((load_aware || b->step >= spin_steps) && ox__park_unit_get() != NULL) {
        /* A task does not spin long or yield its worker's CPU to wait:
         * the task it waits for is most often queued behind it on this
         * very worker (the channel spin of 127 pauses made a two-task
         * ping-pong over a bounded channel cost 9 us a switch). The caller
         * parks, which runs it; one that cannot park (a slot being
         * written) comes back here, one pause a time. A lock keeps its
         * short spin: its holder may be running on another worker. */
        ox__cpu_relax();
        b->step = OX__BACKOFF_YIELD_LIMIT + 1;
        return;
    }
    if (b->step < spin_steps) {
        for (unsigned i = 0; i < (first_spin << b->step); i++)
            ox__cpu_relax();
    } else if (load_aware && b->step <= OX__BACKOFF_YIELD_LIMIT) {
        /* Only while the caller may still stop and park: a caller that
         * snoozes on past completion (a spin lock, a slot being written)
         * waits for a thread that is mid-operation, and keeps yielding. */
        if (wait_yield_lost_cpu()) {
            b->step = OX__BACKOFF_YIELD_LIMIT + 1;
            return;
        }
    } else {
        ox__sys_yield();
    }
    if (b->step <= OX__BACKOFF_YIELD_LIMIT)
        b->step++;
}

void ox__backoff_snooze(ox__backoff *b)
{
    snooze(b, OX__BACKOFF_SPIN_LIMIT + 1, 1, true); /* 1, 2, ..., 64 pauses */
}

/* Partner waits: how long to spin. The spin (1 + 2 + ... + 64 pauses,
 * about 1.2 us on a 2-vCPU AMD VM) pays when the partner runs on another
 * CPU and answers within it. When the two share a CPU (pinned there, or
 * put there by the scheduler under load) the partner cannot answer until
 * the waiter yields, and the spin is pure delay: chan_pingpong with both
 * threads on one CPU took 4.3 us a round trip, against crossbeam's 3.8,
 * Rust std's 2.5 (which parks after its spin, without yields) and flume's
 * 1.5 (which parks at once).
 *
 * So each thread keeps the number of spin steps its partner waits take,
 * and learns from how each wait ended, at its next partner wait:
 *   - answered within its spin: the full spin again;
 *   - answered after a yield: one step less (the longest one left, half
 *     the spin). The yield ran whoever answered on this CPU; the spin
 *     only kept it waiting.
 *   - parked: no change. A spin that ran out says nothing by itself:
 *     with four receivers on one channel, three spins of every message
 *     run out while their partners run elsewhere (a rule that shortened
 *     the spin on those made chan_mpmc_bounded1 under two busy loops 2x
 *     slower).
 *   - answered after rivals on its side took the answers before it (the
 *     caller says so, ox__backoff_partner_wait_lost_to_rivals): the full
 *     spin again, however it ended. Answers were coming from a partner
 *     that runs, and a yield that let ours through may have run a rival,
 *     not the partner. With four senders on a bounded(1) channel the
 *     after-a-yield rule alone drove the senders' spins to nothing, and
 *     they yielded ~200 000 times a run (chan_mpsc_bounded1 1.1-1.6x
 *     crossbeam on a 2-vCPU EPYC VM whose CPUs pass a line slowly).
 * Now and then a shortened wait probes with the full spin (probe_gap.h),
 * so a thread whose partner has moved to another CPU finds the spin
 * again, and a probe on a shared CPU costs little. */
#define PARTNER_FULL_SPIN (OX__BACKOFF_SPIN_LIMIT + 1)
typedef enum { ENDED_IN_SPIN, ENDED_AFTER_YIELD, ENDED_PARKED } partner_wait_end;
static _Thread_local uint8_t partner_spin_steps = PARTNER_FULL_SPIN;
static _Thread_local partner_wait_end last_partner_wait = ENDED_PARKED;
static _Thread_local ox__probe_gap partner_probe_gap = OX__PROBE_GAP_INIT;

unsigned ox__backoff_partner_spin_steps(ox__backoff *b)
{
    if (b->partner)
        return b->spin_steps;
    if (last_partner_wait == ENDED_IN_SPIN) {
        partner_spin_steps = PARTNER_FULL_SPIN;
        ox__probe_answered(&partner_probe_gap);
    } else if (last_partner_wait == ENDED_AFTER_YIELD && partner_spin_steps > 0) {
        partner_spin_steps--;
    }
    last_partner_wait = ENDED_IN_SPIN; /* until snooze_partner says otherwise */
    b->partner = true;
    b->probe = partner_spin_steps < PARTNER_FULL_SPIN && ox__probe_due(&partner_probe_gap);
    b->spin_steps = b->probe ? PARTNER_FULL_SPIN : partner_spin_steps;
    return b->spin_steps;
}

void ox__backoff_snooze_partner(ox__backoff *b)
{
    /* A task never spins to wait (snooze), and teaches its worker's thread
     * nothing about its own waits. */
    if (ox__park_unit_get() != NULL) {
        snooze(b, PARTNER_FULL_SPIN, 1, true);
        return;
    }
    if (b->step == ox__backoff_partner_spin_steps(b)) { /* the spin ran out */
        if (b->probe)
            ox__probe_missed(&partner_probe_gap);
        b->step = PARTNER_FULL_SPIN; /* on to the yields */
    }
    /* Judged before the step: the one that spins the last 64 pauses ends
     * at PARTNER_FULL_SPIN too, and an answer found after it came within
     * the spin (helper-45). */
    bool yields = b->step >= PARTNER_FULL_SPIN;
    snooze(b, PARTNER_FULL_SPIN, 1, true);
    if (yields)
        last_partner_wait = ox__backoff_is_completed(b) ? ENDED_PARKED : ENDED_AFTER_YIELD;
}

void ox__backoff_partner_wait_lost_to_rivals(const ox__backoff *b)
{
    /* Only a partner wait set last_partner_wait: another wait's end would
     * overwrite the lesson of the thread's previous one. */
    if (b->partner)
        last_partner_wait = ENDED_IN_SPIN;
}

void ox__backoff_snooze_lock(ox__backoff *b)
{
    snooze(b, OX__LOCK_SPIN_STEPS, 2, false); /* 2, 4, 8 pauses */
}
