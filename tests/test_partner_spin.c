/* How long a partner wait spins (src/thread/backoff.c): each thread learns
 * it from how its partner waits ended. Answered after a yield: a step less
 * (the partner ran on this CPU, and the spin only kept it waiting).
 * Answered within the spin, or lost to rivals on its side: the full spin.
 * Parked: no change. A shortened spin now and then probes with the full
 * one.
 * White box: each test runs in a thread of its own (fresh thread-locals)
 * and ends its waits by hand, as a channel's wait would: it stops calling
 * ox__backoff_snooze_partner when the answer has come. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include "thread/park.h"
#include "thread/probe_gap.h"

enum {
    FULL_SPIN = OX__BACKOFF_SPIN_LIMIT + 1,
    DRIVE_S = 10, /* for yields that lose the CPU to a parallel test */
};

/* Starts a partner wait: the spin steps it takes. */
static unsigned wait_starts(ox__backoff *b)
{
    *b = (ox__backoff){0};
    return ox__backoff_partner_spin_steps(b);
}

/* Ends the wait as answered within its spin, after one spin step. */
static void answered_within_the_spin(ox__backoff *b)
{
    CHECK(b->spin_steps > 0);
    ox__backoff_snooze_partner(b);
    CHECK(b->step < FULL_SPIN);
}

/* Spins through every step of the wait's spin, as a wait whose answer is
 * still missing after each, and is then answered: before any yield. */
static void answered_after_the_last_spin_step(ox__backoff *b)
{
    unsigned steps = b->spin_steps;
    for (unsigned i = 0; i < steps; i++) {
        CHECK(b->step < steps);
        ox__backoff_snooze_partner(b);
    }
    CHECK_EQ(b->step, steps); /* spun all of it, nothing else yet */
}

/* Ends the wait as answered after its first yield; false if that yield
 * lost the CPU, which ends the backoff (it would park). */
static bool answered_after_a_yield(ox__backoff *b)
{
    while (b->step <= FULL_SPIN)
        ox__backoff_snooze_partner(b);
    return !ox__backoff_is_completed(b);
}

/* Ends the wait as parked: the backoff runs to completion. */
static void parked(ox__backoff *b)
{
    while (!ox__backoff_is_completed(b))
        ox__backoff_snooze_partner(b);
}

/* Starts the next wait, which must spin in full and not as a probe: the
 * thread has been taught the full spin. */
static void next_wait_spins_in_full(ox__backoff *b)
{
    CHECK_EQ(wait_starts(b), FULL_SPIN);
    CHECK(!b->probe);
}

/* Answers waits after a yield until a wait starts with `target` spin
 * steps; leaves b at that wait's start. Probes (full spins whose answer
 * also came after a yield) are passed over. */
static void shrink_to(ox__backoff *b, unsigned target)
{
    unsigned steps = wait_starts(b);
    CHECK_EQ(steps, FULL_SPIN);
    unsigned expected = FULL_SPIN;
    int64_t give_up = ox_instant_now().ns + OX_SECS(DRIVE_S);
    while (steps != target || b->probe) {
        CHECK(ox_instant_now().ns < give_up);
        if (answered_after_a_yield(b) && expected > 0)
            expected--;
        steps = wait_starts(b);
        if (!b->probe)
            CHECK_EQ(steps, expected);
    }
}

static void *shrinks(void *arg)
{
    (void)arg;
    ox__backoff b;
    shrink_to(&b, 0); /* checks each step on the way */
    return NULL;
}

OX_TEST_OPTS(partner_spin_loses_a_step_for_each_wait_answered_after_a_yield, .timeout_s = 30)
{
    ox_test_run_named("shrinks", shrinks, NULL);
}

static void *restored(void *arg)
{
    (void)arg;
    ox__backoff b;
    shrink_to(&b, 3);
    answered_within_the_spin(&b);
    next_wait_spins_in_full(&b);
    return NULL;
}

OX_TEST_OPTS(partner_spin_is_whole_again_after_a_wait_answered_within_it, .timeout_s = 30)
{
    ox_test_run_named("restored", restored, NULL);
}

static void *left_alone(void *arg)
{
    (void)arg;
    ox__backoff b;
    CHECK_EQ(wait_starts(&b), FULL_SPIN);
    parked(&b);
    CHECK_EQ(wait_starts(&b), FULL_SPIN);
    shrink_to(&b, 3);
    parked(&b);
    /* The next wait may be a probe, which hides the count; the one after
     * a parked probe is not. */
    if (wait_starts(&b) == FULL_SPIN && b.probe) {
        parked(&b);
        (void)wait_starts(&b);
    }
    CHECK(!b.probe);
    CHECK_EQ(b.spin_steps, 3);
    return NULL;
}

OX_TEST_OPTS(partner_spin_is_left_alone_by_a_wait_that_parked, .timeout_s = 30)
{
    ox_test_run_named("left-alone", left_alone, NULL);
}

static void *probes(void *arg)
{
    (void)arg;
    ox__backoff b;
    shrink_to(&b, 0);
    int waits = 0;
    while (!b.probe) {
        CHECK(++waits <= OX__PROBE_GAP_MAX);
        CHECK_EQ(b.spin_steps, 0);
        parked(&b);
        (void)wait_starts(&b);
    }
    CHECK_EQ(b.spin_steps, FULL_SPIN);
    answered_within_the_spin(&b); /* the partner answers on another CPU now */
    next_wait_spins_in_full(&b);
    return NULL;
}

OX_TEST_OPTS(partner_spin_cut_to_nothing_still_probes_with_the_full_spin, .timeout_s = 30)
{
    ox_test_run_named("probes", probes, NULL);
}

/* The answer found right after the last spin step came within the spin,
 * for a shortened spin and for the full one, whose last step leaves the
 * backoff where the yields start (helper-45: the full one shrank). */
static void *answered_at_the_end(void *arg)
{
    (void)arg;
    ox__backoff b;
    CHECK_EQ(wait_starts(&b), FULL_SPIN);
    answered_after_the_last_spin_step(&b);
    CHECK_EQ(wait_starts(&b), FULL_SPIN);
    shrink_to(&b, 3);
    answered_after_the_last_spin_step(&b);
    next_wait_spins_in_full(&b);
    return NULL;
}

OX_TEST_OPTS(partner_spin_answered_after_its_last_step_was_answered_within_it, .timeout_s = 30)
{
    ox_test_run_named("at-the-end", answered_at_the_end, NULL);
}

/* A probe answered after its last spin step restores the full spin, and a
 * later shrink still probes (helper-45: such a probe left the countdown at
 * 0, and the next wait wrapped it: no probe ever again). */
static void *probe_answered_at_the_end(void *arg)
{
    (void)arg;
    ox__backoff b;
    for (int round = 0; round < 2; round++) {
        shrink_to(&b, 0);
        int waits = 0;
        while (!b.probe) {
            CHECK(++waits <= OX__PROBE_GAP_MAX);
            parked(&b);
            (void)wait_starts(&b);
        }
        answered_after_the_last_spin_step(&b);
        next_wait_spins_in_full(&b);
    }
    return NULL;
}

OX_TEST_OPTS(partner_spin_probe_answered_after_its_last_step_leaves_probes_on, .timeout_s = 30)
{
    ox_test_run_named("probe-at-the-end", probe_answered_at_the_end, NULL);
}

/* A wait that lost its answers to rivals on its side (several senders on a
 * bounded(1) channel) brings the full spin back, however it ended: its
 * yields may have run the rivals, not a partner (chan_mpsc_bounded1 spun
 * to nothing and yielded ~200 000 times a run without this). */
static void *lost_to_rivals(void *arg)
{
    (void)arg;
    ox__backoff b;
    shrink_to(&b, 3);
    (void)answered_after_a_yield(&b); /* or parked: the same here */
    ox__backoff_partner_wait_lost_to_rivals(&b);
    next_wait_spins_in_full(&b);
    return NULL;
}

OX_TEST_OPTS(partner_spin_is_whole_again_after_a_wait_lost_to_rivals, .timeout_s = 30)
{
    ox_test_run_named("rivals", lost_to_rivals, NULL);
}

/* Only a partner wait's loss counts: a backoff that never started a
 * partner spin leaves the lesson of the thread's last partner wait. */
static void *rivals_of_another_wait(void *arg)
{
    (void)arg;
    ox__backoff b;
    shrink_to(&b, 3);
    int64_t give_up = ox_instant_now().ns + OX_SECS(DRIVE_S);
    for (;;) {
        CHECK(ox_instant_now().ns < give_up);
        unsigned before = b.spin_steps;
        bool was_probe = b.probe;
        bool after_a_yield = answered_after_a_yield(&b); /* else it parked */
        ox__backoff not_a_partner_wait = {0};
        ox__backoff_partner_wait_lost_to_rivals(&not_a_partner_wait);
        unsigned steps = wait_starts(&b);
        if (after_a_yield && !was_probe && !b.probe && before > 0) {
            CHECK_EQ(steps, before - 1);
            return NULL;
        }
    }
}

OX_TEST_OPTS(partner_spin_ignores_rivals_of_a_wait_that_is_no_partner_wait, .timeout_s = 30)
{
    ox_test_run_named("rivals-elsewhere", rivals_of_another_wait, NULL);
}

/* Through a real channel (src/chan/array.c's rivals check): a lone sender
 * and a lone receiver on a bounded(1) channel never lose to a rival, so
 * sharing one CPU, where each answer comes only after the waiter yields,
 * both still learn a shorter spin (helper-71: a check that counted every
 * wait as lost to rivals passed every channel test). Looking at the spin
 * starts a wait that ends at once, which restores the full spin: each
 * round of messages must shorten it again. */
enum { MESSAGES_A_ROUND = 8, ROUNDS = 3200 };

typedef struct one_cpu_pair {
    ox_sender *tx;
    ox_receiver *rx;
    int cpu;
    _Atomic bool sender_shortened, receiver_shortened;
} one_cpu_pair;

/* Whether the thread's next partner wait, looked at now, spins less than
 * in full (a probe tells nothing). */
static bool spin_is_short(void)
{
    ox__backoff b;
    unsigned steps = wait_starts(&b);
    return !b.probe && steps < FULL_SPIN;
}

static bool both_shortened(one_cpu_pair *p)
{
    return atomic_load(&p->sender_shortened) && atomic_load(&p->receiver_shortened);
}

/* Sends rounds of messages until both sides have seen a short spin, or
 * ROUNDS; then hangs up. */
static void *sender_side(void *arg)
{
    one_cpu_pair *p = arg;
    ox_test_pin(0, p->cpu);
    for (int r = 0; r < ROUNDS && !both_shortened(p); r++) {
        for (long i = 0; i < MESSAGES_A_ROUND; i++)
            CHECK_EQ(ox_sender_send(p->tx, &i), 0);
        if (spin_is_short())
            atomic_store(&p->sender_shortened, true);
    }
    ox_sender_drop(p->tx);
    return NULL;
}

static void *receiver_side(void *arg)
{
    one_cpu_pair *p = arg;
    ox_test_pin(0, p->cpu);
    long v;
    for (long i = 0; ox_receiver_recv(p->rx, &v) == 0; i++) {
        CHECK_EQ(v, i % MESSAGES_A_ROUND);
        if (v == MESSAGES_A_ROUND - 1 && spin_is_short())
            atomic_store(&p->receiver_shortened, true);
    }
    return NULL;
}

OX_TEST_OPTS(partner_spin_a_lone_sender_and_receiver_sharing_a_cpu_still_shorten_it,
             .timeout_s = 60)
{
    one_cpu_pair p = {.cpu = ox_test_first_allowed_cpu()};
    CHECK_EQ(ox_channel(sizeof(long), 1, &p.tx, &p.rx), 0);
    ox_join_handle r = ox_test_spawn_named("receiver", receiver_side, &p);
    ox_test_run_named("sender", sender_side, &p);
    ox_test_join(&r);
    ox_receiver_drop(p.rx);
    CHECK(atomic_load(&p.sender_shortened));
    CHECK(atomic_load(&p.receiver_shortened));
}
