/* Trying to break 5bcf6f6 (a partner wait's spin shrinks when its answers
 * come after a yield; src/thread/backoff.c), helper-45.
 *
 * It found that a full spin (a probe's too) answered right after its last
 * spin step, before any yield, was taken for a wait answered after a
 * yield: the spin shrank, and such a probe left the probe countdown at 0,
 * so the thread never probed again. The white-box reproducers are in
 * test_partner_spin.c.
 *
 * Here, black box: hand-offs over every channel kind and a barrier by
 * threads pinned to one CPU (the spin shrinks), then with a partner on
 * another CPU, alternating; receive and send timeouts and disconnects
 * while the spin is short; select; tasks and threads on the same
 * channels; a task's receive aborted; many senders and receivers on one
 * CPU. None of these found a bug; they are kept as regression tests of
 * what the change must not break. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

/* ---- black box: hand-offs, pinned ---- */

enum { ROUNDS = 2000 };

/* rounds round trips with a partner on cpu; every other receive has a
 * timeout (generous: the partner always answers). */
static void ping_pong(int cpu, size_t size, size_t cap, int rounds)
{
    ox_sender *q_tx, *a_tx;
    ox_receiver *q_rx, *a_rx;
    CHECK_EQ(ox_channel(size, cap, &q_tx, &q_rx), 0);
    CHECK_EQ(ox_channel(size, cap, &a_tx, &a_rx), 0);
    ox_test_answerer p = {.cpu = cpu, .tx = a_tx, .rx = q_rx};
    ox_join_handle h = ox_test_spawn_named("answer", ox_test_answer, &p);
    for (uint64_t i = 0; i < (uint64_t)rounds; i++) {
        uint64_t m[4] = {i * 2, i, i, i};
        if (i % 2)
            CHECK_EQ(ox_sender_send_timeout(q_tx, size ? m : NULL, OX_SECS(30)), 0);
        else
            CHECK_EQ(ox_sender_send(q_tx, size ? m : NULL), 0);
        if (i % 2)
            CHECK_EQ(ox_receiver_recv_timeout(a_rx, size ? m : NULL, OX_SECS(30)), 0);
        else
            CHECK_EQ(ox_receiver_recv(a_rx, size ? m : NULL), 0);
        if (size) {
            CHECK_EQ(m[0], i * 2 + 1);
            CHECK_EQ(m[1], i);
        }
    }
    ox_sender_drop(q_tx);
    uint64_t end[4];
    CHECK_EQ(ox_receiver_recv(a_rx, size ? end : NULL), OX_EDISCONNECTED);
    ox_receiver_drop(a_rx);
    ox_test_join(&h);
}

static const struct {
    size_t size, cap;
} kinds[] = {{8, 0}, {8, 1}, {8, 2}, {32, 5}, {8, OX_UNBOUNDED}, {0, 1}, {0, 0}, {0, OX_UNBOUNDED}};

static void *alternating(void *arg)
{
    (void)arg;
    int here = ox_test_first_allowed_cpu();
    int there = ox_test_other_allowed_cpu(here);
    ox_test_pin(0, here);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (int phase = 0; phase < 4; phase++)
            ping_pong(phase % 2 ? there : here, kinds[k].size, kinds[k].cap, ROUNDS / 4);
    }
    return NULL;
}

OX_TEST_OPTS(break28_hand_offs_with_a_partner_on_this_then_another_cpu_all_arrive, .timeout_s = 120)
{
    ox_test_run_named("alternating", alternating, NULL);
}

/* ---- timeouts and disconnects with a shortened spin ---- */

struct late {
    int cpu;
    ox_sender *tx;
    int what; /* 0: send one message late; 1: drop the sender */
};

static void *late_partner(void *arg)
{
    struct late *l = arg;
    ox_test_pin(0, l->cpu);
    ox_thread_sleep(OX_MILLIS(2));
    if (l->what == 0) {
        uint64_t m[4] = {77, 0, 0, 0};
        CHECK_EQ(ox_sender_send(l->tx, ox_sender_elem_size(l->tx) ? m : NULL), 0);
    }
    ox_sender_drop(l->tx);
    return NULL;
}

static void *short_spin_waits(void *arg)
{
    (void)arg;
    int here = ox_test_first_allowed_cpu();
    ox_test_pin(0, here);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t size = kinds[k].size, cap = kinds[k].cap;
        /* Teach this thread a short spin: a partner on its own CPU. */
        ping_pong(here, size, cap, 200);
        uint64_t m[4] = {0};
        /* Nobody sends: the timeout ends the wait. */
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(size, cap, &tx, &rx), 0);
        for (int i = 0; i < 3; i++)
            CHECK_EQ(ox_receiver_recv_timeout(rx, size ? m : NULL, OX_MILLIS(1)), OX_ETIMEDOUT);
        /* A full bounded channel: a send times out. */
        if (cap != OX_UNBOUNDED && cap > 0) {
            for (size_t i = 0; i < cap; i++)
                CHECK_EQ(ox_sender_try_send(tx, size ? m : NULL), 0);
            CHECK_EQ(ox_sender_send_timeout(tx, size ? m : NULL, OX_MILLIS(1)), OX_ETIMEDOUT);
            for (size_t i = 0; i < cap; i++)
                CHECK_EQ(ox_receiver_try_recv(rx, size ? m : NULL), 0);
        }
        if (cap == 0)
            CHECK_EQ(ox_sender_send_timeout(tx, size ? m : NULL, OX_MILLIS(1)), OX_ETIMEDOUT);
        /* A message that comes late, from the same CPU, then a disconnect. */
        struct late l = {.cpu = here, .tx = tx, .what = 0};
        ox_join_handle h = ox_test_spawn_named("late", late_partner, &l);
        memset(m, 0, sizeof m);
        CHECK_EQ(ox_receiver_recv(rx, size ? m : NULL), 0);
        if (size)
            CHECK_EQ(m[0], 77);
        CHECK_EQ(ox_receiver_recv(rx, size ? m : NULL), OX_EDISCONNECTED);
        ox_test_join(&h);
        ox_receiver_drop(rx);
        /* A disconnect alone ends a blocked receive. */
        ping_pong(here, size, cap, 200);
        CHECK_EQ(ox_channel(size, cap, &tx, &rx), 0);
        l = (struct late){.cpu = here, .tx = tx, .what = 1};
        h = ox_test_spawn_named("dropper", late_partner, &l);
        CHECK_EQ(ox_receiver_recv_timeout(rx, size ? m : NULL, OX_SECS(30)), OX_EDISCONNECTED);
        ox_test_join(&h);
        ox_receiver_drop(rx);
    }
    return NULL;
}

OX_TEST_OPTS(break28_timeouts_and_disconnects_end_waits_with_a_short_spin, .timeout_s = 120)
{
    ox_test_run_named("short-spin", short_spin_waits, NULL);
}

/* ---- barriers with more threads than CPUs, pinned and not ---- */

struct barrier_run {
    ox_barrier *b;
    int cpu; /* -1: not pinned */
    _Atomic int leaders;
    _Atomic int passed;
};

enum { BARRIER_THREADS = 6, BARRIER_ROUNDS = 1500 };

static void *barrier_member(void *arg)
{
    struct barrier_run *r = arg;
    if (r->cpu >= 0)
        ox_test_pin(0, r->cpu);
    for (int i = 0; i < BARRIER_ROUNDS; i++) {
        /* Everyone of round i has passed the counter before anyone of
         * round i + 1 adds to it. */
        int before = atomic_fetch_add(&r->passed, 1);
        CHECK(before < (i + 1) * BARRIER_THREADS);
        if (ox_barrier_wait(r->b))
            atomic_fetch_add(&r->leaders, 1);
        CHECK(atomic_load(&r->passed) >= (i + 1) * BARRIER_THREADS);
    }
    return NULL;
}

static void barrier_rounds(int cpu)
{
    ox_barrier b;
    CHECK_EQ(ox_barrier_init(&b, BARRIER_THREADS), 0);
    struct barrier_run r = {.b = &b, .cpu = cpu};
    ox_join_handle h[BARRIER_THREADS];
    for (int i = 0; i < BARRIER_THREADS; i++)
        h[i] = ox_test_spawn_named("member", barrier_member, &r);
    for (int i = 0; i < BARRIER_THREADS; i++)
        ox_test_join(&h[i]);
    CHECK_EQ(atomic_load(&r.leaders), BARRIER_ROUNDS);
    CHECK_EQ(atomic_load(&r.passed), BARRIER_ROUNDS * BARRIER_THREADS);
}

OX_TEST_OPTS(break28_barrier_of_more_threads_than_cpus_has_one_leader_a_round, .timeout_s = 120)
{
    barrier_rounds(ox_test_first_allowed_cpu());
    barrier_rounds(-1);
}

/* ---- select over several channels, pinned ---- */

struct selector {
    int cpu;
    ox_sender *tx[3];
    ox_receiver *back;
};

enum { SELECT_ROUNDS = 1500 };

/* Sends message i on channel i % 3, then waits for its echo. */
static void *select_sender(void *arg)
{
    struct selector *s = arg;
    ox_test_pin(0, s->cpu);
    for (uint64_t i = 0; i < SELECT_ROUNDS; i++) {
        size_t size = ox_sender_elem_size(s->tx[i % 3]);
        uint64_t m = i;
        CHECK_EQ(ox_sender_send(s->tx[i % 3], size ? &m : NULL), 0);
        uint64_t e = 0;
        CHECK_EQ(ox_receiver_recv(s->back, &e), 0);
        CHECK_EQ(e, i);
    }
    for (int k = 0; k < 3; k++)
        ox_sender_drop(s->tx[k]);
    ox_receiver_drop(s->back);
    return NULL;
}

static void *selecting(void *arg)
{
    (void)arg;
    int here = ox_test_first_allowed_cpu();
    int there = ox_test_other_allowed_cpu(here);
    ox_test_pin(0, here);
    for (int pass = 0; pass < 2; pass++) {
        ox_receiver *rx[3];
        ox_sender *back_tx;
        struct selector s = {.cpu = pass ? there : here};
        CHECK_EQ(ox_channel(8, 1, &s.tx[0], &rx[0]), 0);
        CHECK_EQ(ox_channel(8, 0, &s.tx[1], &rx[1]), 0);
        CHECK_EQ(ox_channel(0, OX_UNBOUNDED, &s.tx[2], &rx[2]), 0);
        CHECK_EQ(ox_channel(8, 1, &back_tx, &s.back), 0);
        ox_join_handle h = ox_test_spawn_named("select-sender", select_sender, &s);
        for (uint64_t i = 0; i < SELECT_ROUNDS; i++) {
            uint64_t got[2] = {UINT64_MAX, UINT64_MAX};
            ox_select_op ops[3] = {OX_SELECT_RECV(rx[0], &got[0]), OX_SELECT_RECV(rx[1], &got[1]),
                                   OX_SELECT_RECV(rx[2], NULL)};
            size_t which = 99;
            int rc =
                i % 2 ? ox_select_timeout(ops, 3, OX_SECS(30), &which) : ox_select(ops, 3, &which);
            CHECK_EQ(rc, 0);
            CHECK_EQ(which, (size_t)(i % 3));
            if (which < 2)
                CHECK_EQ(got[which], i);
            CHECK_EQ(ox_sender_send(back_tx, &i), 0);
        }
        ox_test_join(&h);
        for (int k = 0; k < 3; k++)
            ox_receiver_drop(rx[k]);
        ox_sender_drop(back_tx);
    }
    return NULL;
}

OX_TEST_OPTS(break28_select_hand_offs_pinned_and_not_keep_every_message, .timeout_s = 120)
{
    ox_test_run_named("selecting", selecting, NULL);
}

/* ---- tasks and threads on the same channels ---- */

struct mix {
    ox_sender *tx;
    ox_receiver *rx;
};

enum { MIX_MESSAGES = 3000 };

/* Tasks and threads alike: receive a number, send it on. */
static void *relay(void *arg)
{
    struct mix *mx = arg;
    uint64_t m;
    while (ox_receiver_recv(mx->rx, &m) == 0)
        if (ox_sender_send(mx->tx, &m) != 0)
            break;
    return NULL;
}

static void *mixed(void *arg)
{
    (void)arg;
    ox_test_pin(0, ox_test_first_allowed_cpu());
    static const size_t caps[] = {0, 1, 3, OX_UNBOUNDED};
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        ox_sender *in_tx, *out_tx;
        ox_receiver *in_rx, *out_rx;
        CHECK_EQ(ox_channel(8, caps[k], &in_tx, &in_rx), 0);
        CHECK_EQ(ox_channel(8, caps[k], &out_tx, &out_rx), 0);
        struct mix mx = {.tx = out_tx, .rx = in_rx};
        ox_runtime *rt = ox_test_runtime(1);
        ox_task_handle t[2];
        ox_join_handle h[2];
        for (int i = 0; i < 2; i++) {
            t[i] = ox_test_spawn_on(rt, relay, &mx);
            h[i] = ox_test_spawn_named("relay", relay, &mx);
        }
        uint64_t sum = 0;
        for (uint64_t i = 1; i <= MIX_MESSAGES; i++) {
            CHECK_EQ(ox_sender_send(in_tx, &i), 0);
            if (i % 4 == 0) {
                for (int j = 0; j < 4; j++) {
                    uint64_t m = 0;
                    CHECK_EQ(ox_receiver_recv_timeout(out_rx, &m, OX_SECS(30)), 0);
                    sum += m;
                }
            }
        }
        CHECK_EQ(sum, (uint64_t)MIX_MESSAGES * (MIX_MESSAGES + 1) / 2);
        ox_sender_drop(in_tx);
        /* The relays see the disconnect; out has no more messages. */
        for (int i = 0; i < 2; i++) {
            ox_test_join(&h[i]);
            CHECK_EQ(ox_task_join(&t[i], NULL, NULL), 0);
        }
        ox_receiver_drop(in_rx);
        ox_sender_drop(out_tx);
        uint64_t m;
        CHECK_EQ(ox_receiver_try_recv(out_rx, &m), OX_EDISCONNECTED);
        ox_receiver_drop(out_rx);
        ox_runtime_shutdown(rt);
    }
    return NULL;
}

OX_TEST_OPTS(break28_tasks_and_threads_relay_on_the_same_channels, .timeout_s = 120)
{
    ox_test_run_named("mixed", mixed, NULL);
}

/* ---- a task's wait aborted; the channel goes on between threads ---- */

struct blocked {
    ox_receiver *rx;
    _Atomic int arrived;
};

static void *recv_in_task(void *arg)
{
    struct blocked *bl = arg;
    uint64_t m[4];
    atomic_store(&bl->arrived, 1);
    return (void *)(intptr_t)ox_receiver_recv(bl->rx, ox_receiver_elem_size(bl->rx) ? m : NULL);
}

static void *aborted(void *arg)
{
    (void)arg;
    int here = ox_test_first_allowed_cpu();
    ox_test_pin(0, here);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t size = kinds[k].size, cap = kinds[k].cap;
        ping_pong(here, size, cap, 100); /* a short spin for this thread */
        ox_sender *tx;
        struct blocked bl = {0};
        CHECK_EQ(ox_channel(size, cap, &tx, &bl.rx), 0);
        ox_runtime *rt = ox_test_runtime(1);
        ox_task_handle h = ox_test_spawn_on(rt, recv_in_task, &bl);
        CHECK_EQ((intptr_t)ox_test_abort_at_its_wait(&h, &bl.arrived), OX_ECANCELED);
        ox_runtime_shutdown(rt);
        /* The aborted waiter left nothing behind: a thread's message goes
         * to this thread's receive. */
        struct late l = {.cpu = here, .tx = tx, .what = 0};
        ox_join_handle j = ox_test_spawn_named("late", late_partner, &l);
        uint64_t m[4] = {0};
        CHECK_EQ(ox_receiver_recv_timeout(bl.rx, size ? m : NULL, OX_SECS(30)), 0);
        if (size)
            CHECK_EQ(m[0], 77);
        CHECK_EQ(ox_receiver_recv(bl.rx, size ? m : NULL), OX_EDISCONNECTED);
        ox_test_join(&j);
        ox_receiver_drop(bl.rx);
    }
    return NULL;
}

OX_TEST_OPTS(break28_aborted_task_receive_leaves_the_channel_to_threads, .timeout_s = 120)
{
    ox_test_run_named("aborted", aborted, NULL);
}

/* ---- many receivers and senders on one CPU, then senders apart ---- */

struct mpmc {
    int cpu;      /* the receivers' */
    int send_cpu; /* the senders' */
    ox_sender *tx;
    ox_receiver *rx;
    _Atomic uint64_t sum;
    _Atomic int count;
};

enum { MPMC_PER_SENDER = 2000, MPMC_SENDERS = 2, MPMC_RECEIVERS = 4 };

static void *mpmc_send(void *arg)
{
    struct mpmc *q = arg;
    ox_test_pin(0, q->send_cpu);
    ox_sender *tx = ox_sender_clone(q->tx);
    for (uint64_t i = 1; i <= MPMC_PER_SENDER; i++)
        CHECK_EQ(ox_sender_send(tx, &i), 0);
    ox_sender_drop(tx);
    return NULL;
}

static void *mpmc_recv(void *arg)
{
    struct mpmc *q = arg;
    ox_test_pin(0, q->cpu);
    ox_receiver *rx = ox_receiver_clone(q->rx);
    uint64_t m;
    while (ox_receiver_recv(rx, &m) == 0) {
        atomic_fetch_add(&q->sum, m);
        atomic_fetch_add(&q->count, 1);
    }
    ox_receiver_drop(rx);
    return NULL;
}

OX_TEST_OPTS(break28_mpmc_on_one_cpu_delivers_every_message_once, .timeout_s = 120)
{
    static const size_t caps[] = {0, 1, 2, OX_UNBOUNDED};
    int here = ox_test_first_allowed_cpu();
    int there = ox_test_other_allowed_cpu(here);
    for (int apart = 0; apart < 2; apart++) {
        for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
            struct mpmc q = {.cpu = here, .send_cpu = apart ? there : here};
            CHECK_EQ(ox_channel(8, caps[k], &q.tx, &q.rx), 0);
            ox_join_handle r[MPMC_RECEIVERS], s[MPMC_SENDERS];
            for (int i = 0; i < MPMC_RECEIVERS; i++)
                r[i] = ox_test_spawn_named("mpmc-recv", mpmc_recv, &q);
            for (int i = 0; i < MPMC_SENDERS; i++)
                s[i] = ox_test_spawn_named("mpmc-send", mpmc_send, &q);
            for (int i = 0; i < MPMC_SENDERS; i++)
                ox_test_join(&s[i]);
            ox_sender_drop(q.tx);
            for (int i = 0; i < MPMC_RECEIVERS; i++)
                ox_test_join(&r[i]);
            ox_receiver_drop(q.rx);
            CHECK_EQ(atomic_load(&q.count), MPMC_SENDERS * MPMC_PER_SENDER);
            CHECK_EQ(atomic_load(&q.sum),
                     (uint64_t)MPMC_SENDERS * MPMC_PER_SENDER * (MPMC_PER_SENDER + 1) / 2);
        }
    }
}
