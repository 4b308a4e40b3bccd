/* The adaptive spin before a sleep (src/thread/wait_spin.c). White box:
 * each test runs on a new thread, whose spin state starts afresh, and
 * plays waits out by hand (begin, then end as answered or not), checking
 * the budgets the policy hands out. Then two waits end to end: a far-off
 * answer must not keep a condvar or channel waiter spinning. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "wait_spin_test.h"

#include <time.h>

/* Unanswered, a new thread's budget halves to 0 (look once) before its
 * first probe, and a probe spins longer than any wait before it. */
static void *unanswered_waits_fall_to_looking_once(void *arg)
{
    (void)arg;
    ox__wait_spin s = one_wait(false);
    CHECK(s.budget_ns > 0);
    CHECK(!s.probe);
    int64_t before = s.budget_ns;
    int waits = 1;
    for (; before > 0; waits++) {
        s = one_wait(false);
        CHECK(!s.probe);
        CHECK(s.budget_ns * 2 <= before);
        before = s.budget_ns;
    }
    CHECK(waits < 16);
    while (!(s = one_wait(false)).probe) {
        CHECK_EQ(s.budget_ns, 0);
        CHECK(++waits < 64);
    }
    CHECK(s.budget_ns >= 10000); /* above an idle CPU's wake-up */
    return NULL;
}

OX_TEST(wait_spin_unanswered_waits_fall_to_looking_once_then_probe)
{
    ox_test_run_named("wait-spin", unanswered_waits_fall_to_looking_once, NULL);
}

/* With every wait unanswered, each gap between probes is at least twice
 * the one before, until a cap: a loaded machine pays for ever fewer. */
static void *failed_probes_come_ever_less_often(void *arg)
{
    (void)arg;
    int gaps[10], n = 0, since = 0;
    for (int i = 0; i < 20000 && n < 10; i++) {
        since++;
        if (one_wait(false).probe) {
            gaps[n++] = since;
            since = 0;
        }
    }
    CHECK_EQ(n, 10);
    for (int i = 2; i < 6; i++)
        CHECK(gaps[i] >= 2 * gaps[i - 1]);
    CHECK(gaps[9] == gaps[8]); /* capped */
    CHECK(gaps[9] <= 4096);
    return NULL;
}

OX_TEST(wait_spin_failed_probes_come_ever_less_often_up_to_a_cap)
{
    ox_test_run_named("wait-spin", failed_probes_come_ever_less_often, NULL);
}

/* An answered probe (the other side was awake after all) brings the spin
 * back at once: the next wait spins as long as any wait but a probe may.
 * And the probes start again at the shortest gap. */
static void *answered_probe_brings_the_spin_back(void *arg)
{
    (void)arg;
    int64_t longest = 0;
    ox__wait_spin s;
    for (int i = 0; i < 64; i++) { /* the longest spin between probes */
        s = one_wait(true);
        if (!s.probe && s.budget_ns > longest)
            longest = s.budget_ns;
    }
    CHECK(longest > 0);
    /* Fail two probes: the gap grows. */
    for (int probes = 0; probes < 2;)
        probes += one_wait(false).probe;
    ox__wait_spin_begin(&s, OX_INSTANT_NEVER);
    for (int i = 0; !s.probe; i++) {
        CHECK(i < 4096);
        ox__wait_spin_end(&s, false);
        ox__wait_spin_begin(&s, OX_INSTANT_NEVER);
    }
    ox__wait_spin_end(&s, true);
    s = one_wait(true);
    CHECK(!s.probe);
    CHECK_EQ(s.budget_ns, longest);
    int next_gap = 1;
    while (!(s = one_wait(true)).probe)
        next_gap++;
    CHECK(next_gap <= 8);
    return NULL;
}

OX_TEST(wait_spin_an_answered_probe_brings_the_spin_back)
{
    ox_test_run_named("wait-spin", answered_probe_brings_the_spin_back, NULL);
}

/* Answered waits grow the budget between probes, up to a cap: at least an
 * idle CPU's wake-up on a VM (10 us) is not needed there, as both sides
 * are awake, but a millisecond would be a bug. */
static void *answered_waits_grow_the_spin(void *arg)
{
    (void)arg;
    int64_t before = 0;
    for (int i = 0; i < 64; i++) {
        ox__wait_spin s = one_wait(true);
        if (s.probe)
            continue;
        CHECK(s.budget_ns >= before);
        before = s.budget_ns;
    }
    CHECK(before >= 4000);
    CHECK(before <= 1000000);
    return NULL;
}

OX_TEST(wait_spin_answered_waits_grow_the_spin_up_to_a_cap)
{
    ox_test_run_named("wait-spin", answered_waits_grow_the_spin, NULL);
}

/* A wait's spin ends by its deadline, and poll spins out the budget. */
static void *spin_respects_deadline_and_budget(void *arg)
{
    (void)arg;
    ox__wait_spin s;
    ox__wait_spin_begin(&s, ox_instant_now());
    CHECK_EQ(s.budget_ns, 0);
    CHECK(!ox__wait_spin_poll(&s));
    ox__wait_spin_end(&s, false);
    grow_the_budget();
    /* The budget is now at its cap (10 us); the deadline cuts it. (Not
     * checked for > 0: under qemu the 5 us may be gone already.) */
    ox__wait_spin_begin(&s, ox_instant_after(OX_MICROS(5)));
    CHECK(s.budget_ns <= 5000);
    ox__wait_spin_end(&s, true);
    ox__wait_spin_begin(&s, OX_INSTANT_NEVER);
    int64_t budget = s.budget_ns;
    CHECK(budget > 0);
    int64_t t0 = ox_instant_now().ns;
    long polls = 0;
    while (ox__wait_spin_poll(&s))
        CHECK(++polls < 100000000L);
    CHECK(ox_instant_now().ns - t0 >= budget);
    ox__wait_spin_end(&s, false);
    return NULL;
}

OX_TEST(wait_spin_ends_by_the_deadline_and_spends_its_budget)
{
    ox_test_run_named("wait-spin", spin_respects_deadline_and_budget, NULL);
}

/* A task never spins: it parks, and its worker runs the task that will
 * answer. Nor does a task's wait change its worker thread's budget. */
static void *task_looks_once(void *arg)
{
    (void)arg;
    ox__wait_spin s;
    for (int i = 0; i < 32; i++) {
        ox__wait_spin_begin(&s, OX_INSTANT_NEVER);
        CHECK_EQ(s.budget_ns, 0);
        CHECK(!s.probe);
        ox__wait_spin_end(&s, i % 2 == 0);
    }
    return NULL;
}

OX_TEST(wait_spin_a_task_does_not_spin)
{
    (void)ox_test_run_alone(1, task_looks_once, NULL);
}

/* ---- end to end: a far-off answer is slept for, not spun for ---- */

static int64_t thread_cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

enum { FAR_WAITS = 20, FAR_WAIT_MS = 5 };

struct far {
    ox_mutex m;
    ox_condvar cv;
    int turn;
    ox_sender *tx;
};

static void *answer_late(void *arg)
{
    struct far *f = arg;
    for (int i = 1; i <= FAR_WAITS; i++) {
        ox_thread_sleep(OX_MILLIS(FAR_WAIT_MS));
        (void)!ox_mutex_lock(&f->m);
        f->turn = i;
        ox_mutex_unlock(&f->m);
        ox_condvar_notify_one(&f->cv);
        CHECK_EQ(ox_sender_send(f->tx, &i), 0);
    }
    return NULL;
}

/* Each of the waits below lasts 5 ms; spinning through them would cost the
 * waiter ~200 ms of CPU. The waiter must sleep through nearly all of it. */
OX_TEST(wait_spin_far_off_answers_are_slept_for)
{
    static struct far f = {OX_MUTEX_INIT, OX_CONDVAR_INIT, 0, NULL};
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(int), 0, &f.tx, &rx), 0);
    ox_join_handle h = ox_thread_spawn(answer_late, &f);
    int64_t cpu0 = thread_cpu_ns();
    for (int i = 1; i <= FAR_WAITS; i++) {
        (void)!ox_mutex_lock(&f.m);
        while (f.turn < i)
            (void)!ox_condvar_wait(&f.cv, &f.m);
        ox_mutex_unlock(&f.m);
        int got;
        CHECK_EQ(ox_receiver_recv(rx, &got), 0);
        CHECK_EQ(got, i);
    }
    int64_t spent = thread_cpu_ns() - cpu0;
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    ox_sender_drop(f.tx);
    ox_receiver_drop(rx);
    /* 2 x 20 waits: a few probes and spins of tens of us each, against
     * 100 ms for a spin that does not stop. */
    CHECK(spent < ox_test_bound(OX_MILLIS(40)));
}

/* A timed wait whose deadline cut its spin short, and which was answered
 * all the same, must not shrink the thread's spin: it learnt that spinning
 * pays, not that a shorter spin will do. */
static void *answered_short_deadline_keeps_the_spin(void *arg)
{
    (void)arg;
    grow_the_budget();
    ox__wait_spin s;
    while ((s = one_wait(true)).probe)
        ;
    int64_t cap = s.budget_ns;
    for (int i = 0; i < 16; i++) {
        ox__wait_spin_begin(&s, ox_instant_after(OX_MICROS(1)));
        CHECK(s.budget_ns <= 1000);
        ox__wait_spin_end(&s, true);
    }
    while ((s = one_wait(true)).probe)
        ;
    CHECK_EQ(s.budget_ns, cap);
    return NULL;
}

OX_TEST(wait_spin_an_answered_wait_cut_by_its_deadline_keeps_the_spin)
{
    ox_test_run_named("wait-spin", answered_short_deadline_keeps_the_spin, NULL);
}
