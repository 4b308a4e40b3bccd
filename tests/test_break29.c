/* helper-46's attempt to break 9e52cd2 (a partner wait answered right
 * after its full spin's last step counts as answered within it) and
 * 9543333 (one probe schedule, probe_gap.h, for the wait spin and the
 * partner spin; claimed: no behaviour change).
 * White box, in the style of test_wait_spin.c and test_partner_spin.c:
 * each test runs in a thread of its own (fresh thread-locals) and drives
 * long pseudo-random sequences of waits against a reference model written
 * from the code before 9543333 (wait_spin.c's probe_every/waits_to, and
 * backoff.c's partner_probe_every/partner_waits_to_probe), checking every
 * wait's probe flag and spin. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "wait_spin_test.h"

#include "thread/park.h"
#include "thread/probe_gap.h"

enum {
    FULL_SPIN = OX__BACKOFF_SPIN_LIMIT + 1,
    OLD_PROBE_MIN = 8,    /* the removed PROBE_EVERY_MIN, PARTNER_PROBE_MIN */
    OLD_PROBE_MAX = 1024, /* the removed PROBE_EVERY_MAX, PARTNER_PROBE_MAX */
    WAITS = 200000,
};

static uint64_t next_random(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* The old probe countdown of either spin, as it was written before 9543333. */
struct old_gap {
    unsigned every, waits_to;
};

static void old_gap_ended(struct old_gap *g, bool answered)
{
    g->every = answered                       ? OLD_PROBE_MIN
               : g->every * 2 > OLD_PROBE_MAX ? OLD_PROBE_MAX
                                              : g->every * 2;
    g->waits_to = g->every;
}

/* --- the wait spin (condvar, channel waker) --------------------------- */

/* Waits with no deadline, a deadline already past (a probe cut to
 * nothing), or a near one, each ended answered or not at random: every
 * wait's probe flag and (without a deadline) budget are those of the code
 * before 9543333, and probes keep coming (no countdown wraps). */
static void *wait_spin_like_before(void *arg)
{
    (void)arg;
    struct old_gap g = {OLD_PROBE_MIN, OLD_PROBE_MIN};
    int64_t budget = 1000; /* SPIN_GROWN_NS */
    uint64_t x = 0x9e52cd29543333ull;
    int since_probe = 0;
    for (int i = 0; i < WAITS; i++) {
        uint64_t r = next_random(&x);
        /* Mostly unanswered, so that the gap reaches its cap too. */
        bool answered = (r & 7) < ((i / 20000) % 2 ? 6u : 1u);
        unsigned kind = (r >> 8) % 8; /* 0: past deadline, 1: near, else none */
        ox_instant deadline = OX_INSTANT_NEVER;
        int64_t now = ox_instant_now().ns;
        if (kind == 0)
            deadline.ns = now - 1000;
        else if (kind == 1)
            deadline.ns = now + 200;
        ox__wait_spin s;
        ox__wait_spin_begin(&s, deadline);
        bool probe = budget < 50000 && --g.waits_to == 0;
        CHECK_EQ(s.probe, probe);
        CHECK(!s.task);
        if (kind >= 2)
            CHECK_EQ(s.budget_ns, probe ? 50000 : budget);
        if (kind == 0)
            CHECK_EQ(s.budget_ns, 0);
        ox__wait_spin_end(&s, answered);
        if (answered) {
            int64_t grown = (s.budget_ns > budget ? s.budget_ns : budget) * 2;
            budget = grown < 1000 ? 1000 : grown > 10000 ? 10000 : grown;
        } else {
            budget = budget / 2 < 250 ? 0 : budget / 2;
        }
        if (probe)
            old_gap_ended(&g, answered);
        since_probe = probe ? 0 : since_probe + 1;
        CHECK(since_probe < OLD_PROBE_MAX);
    }
    return NULL;
}

OX_TEST_OPTS(break29_wait_spin_probes_and_budgets_as_before_the_shared_schedule, .timeout_s = 60)
{
    ox_test_run_named("break29-wait", wait_spin_like_before, NULL);
}

/* A thread that only ever misses: probes at gaps of 8, 16, ..., 1024 and
 * then every 1024 waits for good, far past the point where an unsigned
 * countdown run past 0 would show (UINT_MAX waits without a probe). */
static void *wait_spin_missed_probes_cap(void *arg)
{
    (void)arg;
    unsigned expect = OX__PROBE_GAP_MIN;
    int since = 0, probes = 0;
    for (int i = 0; i < 40000; i++) {
        since++;
        if (one_wait(false).probe) {
            CHECK_EQ((unsigned)since, expect);
            since = 0;
            probes++;
            expect = expect * 2 > OX__PROBE_GAP_MAX ? OX__PROBE_GAP_MAX : expect * 2;
        }
    }
    CHECK(probes >= 30);
    return NULL;
}

OX_TEST_OPTS(break29_wait_spin_missed_probes_double_to_the_cap_and_stay, .timeout_s = 60)
{
    ox_test_run_named("break29-cap", wait_spin_missed_probes_cap, NULL);
}

/* --- the partner spin (backoff.c) -------------------------------------- */

enum old_end { OLD_IN_SPIN, OLD_AFTER_YIELD, OLD_PARKED };

struct old_partner {
    unsigned steps;
    enum old_end last;
    struct old_gap g;
};

/* The old partner_spin_steps, at a wait's start: its probe and spin. */
static void old_partner_start(struct old_partner *m, bool *probe, unsigned *spin)
{
    if (m->last == OLD_IN_SPIN) {
        m->steps = FULL_SPIN;
        m->g.every = m->g.waits_to = OLD_PROBE_MIN;
    } else if (m->last == OLD_AFTER_YIELD && m->steps > 0) {
        m->steps--;
    }
    m->last = OLD_IN_SPIN;
    *probe = m->steps < FULL_SPIN && --m->g.waits_to == 0;
    *spin = *probe ? FULL_SPIN : m->steps;
}

/* Partner waits ended at random: answered within the spin (after any of
 * its steps, the last one included, by snooze_partner or by array.c's own
 * spin loop that steps b->step itself), after one or more yields, or
 * parked. Each wait's probe flag and spin are the old code's (with
 * 9e52cd2's judgement: a wait that never yielded ended in its spin), and
 * a shrunk thread keeps probing. */
static void *partner_spin_like_before(void *arg)
{
    (void)arg;
    struct old_partner m = {FULL_SPIN, OLD_PARKED, {OLD_PROBE_MIN, OLD_PROBE_MIN}};
    uint64_t x = 0x46464646deadbeefull;
    for (int i = 0; i < WAITS / 10; i++) {
        uint64_t r = next_random(&x);
        bool probe;
        unsigned spin;
        old_partner_start(&m, &probe, &spin);
        ox__backoff b = {0};
        CHECK_EQ(ox__backoff_partner_spin_steps(&b), spin);
        CHECK_EQ(b.probe, probe);
        CHECK_EQ(b.spin_steps, spin);
        /* Mostly after a yield, so that the spin shrinks and probes run. */
        unsigned how = r % 16;
        bool own_loop = (r >> 4) & 1; /* array.c's spin_while_slot_unchanged */
        if (own_loop) {
            unsigned upto = how < 3 ? (unsigned)((r >> 8) % (spin + 1)) : spin;
            while (b.step < upto)
                b.step++;
        }
        if (how < 3) { /* answered within the spin, maybe after its last step */
            unsigned upto = (unsigned)((r >> 12) % (spin + 1));
            if ((r >> 20) % 4 == 0)
                upto = spin;
            while (b.step < upto)
                ox__backoff_snooze_partner(&b);
            CHECK(b.step <= spin);
            m.last = OLD_IN_SPIN;
            continue;
        }
        /* Through the spin: the call that finds it run out. */
        bool ran_out = false;
        unsigned yields = how < 13 ? 1 + (unsigned)((r >> 12) % 3) : 100;
        unsigned yielded = 0;
        while (!ox__backoff_is_completed(&b) && yielded < yields) {
            bool at_end = b.step == spin && !ran_out;
            bool before = b.step >= FULL_SPIN || at_end;
            ox__backoff_snooze_partner(&b);
            if (at_end) {
                ran_out = true;
                if (probe)
                    old_gap_ended(&m.g, false);
            }
            if (before)
                yielded++;
        }
        CHECK(ran_out);
        m.last = ox__backoff_is_completed(&b) ? OLD_PARKED : OLD_AFTER_YIELD;
    }
    return NULL;
}

OX_TEST_OPTS(break29_partner_spin_probes_and_spins_as_before_the_shared_schedule, .timeout_s = 120)
{
    ox_test_run_named("break29-partner", partner_spin_like_before, NULL);
}

/* A shrunk thread whose probes all run out (parked): each gap twice the
 * last, up to 1024, then 1024 for good; a probe answered after its last
 * step (the case 9e52cd2 fixed) brings the full spin back. */
static void *partner_gap_cap_then_reset(void *arg)
{
    (void)arg;
    ox__backoff b = {0};
    /* Shrink to 0: every wait answered after a yield that kept the CPU. */
    int64_t give_up = ox_instant_now().ns + OX_SECS(20);
    while (ox__backoff_partner_spin_steps(&b) != 0 || b.probe) {
        CHECK(ox_instant_now().ns < give_up);
        while (b.step <= FULL_SPIN && !ox__backoff_is_completed(&b))
            ox__backoff_snooze_partner(&b);
        b = (ox__backoff){0};
    }
    for (int round = 0; round < 2; round++) {
        /* The first probe's gap is the shrink's business; those after it
         * double up to 1024 waits. */
        unsigned expect = 0; /* set at the second probe */
        int since = 0, probes = 0;
        /* b is at a wait's start, not a probe. */
        for (;;) {
            CHECK(++since <= OX__PROBE_GAP_MAX);
            if (b.probe) {
                if (probes == 1) {
                    /* The shrink may have missed probes (under load a
                     * yield that loses the CPU does not shrink the spin,
                     * and probes run out meanwhile): the gap starts where
                     * they left it, a power of two from 16 to 1024. */
                    CHECK(since >= 2 * OX__PROBE_GAP_MIN && since <= OX__PROBE_GAP_MAX &&
                          (since & (since - 1)) == 0);
                    expect = (unsigned)since;
                } else if (probes > 1) {
                    CHECK_EQ((unsigned)since, expect);
                }
                expect = expect * 2 > OX__PROBE_GAP_MAX ? OX__PROBE_GAP_MAX : expect * 2;
                since = 0;
                if (++probes == 14)
                    break;
            }
            while (!ox__backoff_is_completed(&b))
                ox__backoff_snooze_partner(&b);
            b = (ox__backoff){0};
            (void)ox__backoff_partner_spin_steps(&b);
        }
        /* b is a probe: answered right after its last spin step. */
        CHECK_EQ(b.spin_steps, FULL_SPIN);
        while (b.step < FULL_SPIN)
            ox__backoff_snooze_partner(&b);
        b = (ox__backoff){0};
        CHECK_EQ(ox__backoff_partner_spin_steps(&b), FULL_SPIN);
        CHECK(!b.probe);
        /* Shrink back to 0 for the next round. */
        give_up = ox_instant_now().ns + OX_SECS(20);
        while (ox__backoff_partner_spin_steps(&b) != 0 || b.probe) {
            CHECK(ox_instant_now().ns < give_up);
            while (b.step <= FULL_SPIN && !ox__backoff_is_completed(&b))
                ox__backoff_snooze_partner(&b);
            b = (ox__backoff){0};
        }
    }
    return NULL;
}

OX_TEST_OPTS(break29_partner_spin_missed_probes_cap_and_an_answer_at_the_end_resets,
             .timeout_s = 120)
{
    ox_test_run_named("break29-partner-cap", partner_gap_cap_then_reset, NULL);
}
