/* Reproducers from trying to break two commits: a single send or receive
 * claimed by a plain store under its waiter list's lock (2ad9014, waker.h:
 * ctx.claim_lock), and a direct hand-off past the LIFO limit that goes on
 * when the queue is empty (69d0ffe, runtime.c direct_successor). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- churn: every accepted send received exactly once ----
 * One channel (rendezvous, or an array of capacity 1 or 2), and on it at
 * once: sender and receiver tasks on two workers, aborted at random
 * moments and replaced; two sender and two receiver threads. Each
 * operation is picked at random: a plain blocking one (a single-op
 * context, claimed by a store under the list's lock), one with a timeout
 * of a few microseconds (its own abort races the claim), or a timed
 * select over the channel and a channel that never gets ready (a context
 * in two lists, claimed by CAS, in the same list as the single-op ones).
 * Every send uses a fresh value. A round ends with a disconnect that races the
 * waiters' timeouts: by the senders (the receivers drain and see it), or
 * by the receivers (the senders see it). Then:
 *   - no value is received twice, and none that its send did not accept
 *     (a timed-out, aborted or disconnected send whose value arrived
 *     anyway: a claim of a waiter that had already left);
 *   - after a senders' disconnect, every accepted value was received (a
 *     claim that a leaving waiter did not see: a lost message); after a
 *     receivers' one, at most the capacity's worth stays unreceived (a
 *     rendezvous send that returned 0 was received).
 * A claim under another lock than the waiter's abort, or an abort without
 * the lock, breaks the first or the second (seen with a spin between the
 * load and the store of the claim and of the abort, to widen the window:
 * the test fails within a round then, and passes with the right locks). */
enum { CHURN_VALUES = 1 << 15, CHURN_TASKS = 5, CHURN_THREADS = 4, CHURN_ABORTS = 16 };

typedef struct churn {
    ox_sender *tx;      /* the controller's, cloned for each sender */
    ox_receiver *rx;    /* the controller's, cloned for each receiver */
    ox_receiver *never; /* the select's other case: nobody sends */
    _Atomic uint32_t next;
    _Atomic int stop_send, stop_recv;
    _Atomic unsigned char ok[CHURN_VALUES];
    _Atomic unsigned char got[CHURN_VALUES];
    _Atomic long bad;                /* a received value out of range */
    _Atomic int recv_live;           /* receivers not yet ended */
    _Atomic long expired, cancelled; /* for BREAK18_DEBUG */
} churn;

/* What the controller sends to end receivers blocked in a plain receive
 * once the values are used up (their senders gone, its own sender kept). */
#define CHURN_NUDGE UINT32_MAX

typedef struct churn_worker {
    churn *c;
    ox_sender *tx;
    ox_receiver *rx;
    uint32_t seed;
} churn_worker;

/* A few microseconds: the waiter's own abort races a partner's claim. */
static ox_nanos tiny(uint32_t *x)
{
    uint32_t r = ox_test_rand(x);
    return r % 4 == 0 ? OX_MICROS(1 + r % 40) : OX_MICROS(1 + r % 4);
}

static void *churn_send(void *p)
{
    churn_worker *w = p;
    churn *c = w->c;
    for (;;) {
        /* Relaxed: a stop request; the joins order the results. */
        if (atomic_load_explicit(&c->stop_send, memory_order_relaxed))
            break;
        uint32_t v = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
        if (v >= CHURN_VALUES)
            break;
        int rc;
        uint32_t how = ox_test_rand(&w->seed) % 3;
        if (how == 0) {
            rc = ox_sender_send(w->tx, &v);
        } else if (how == 1) {
            rc = ox_sender_send_timeout(w->tx, &v, tiny(&w->seed));
        } else {
            uint32_t never;
            ox_select_op ops[] = {OX_SELECT_SEND(w->tx, &v), OX_SELECT_RECV(c->never, &never)};
            size_t index = 9;
            rc = ox_select_timeout(ops, 2, tiny(&w->seed), &index);
            if (rc != OX_ETIMEDOUT && rc != OX_ECANCELED)
                CHECK_EQ(index, 0);
        }
        if (rc == 0) {
            atomic_store_explicit(&c->ok[v], 1, memory_order_relaxed);
            continue;
        }
        if (rc == OX_ETIMEDOUT) {
            atomic_fetch_add_explicit(&c->expired, 1, memory_order_relaxed);
            ox_task_yield(); /* a task must not spin on a task it woke */
            continue;
        }
        CHECK(rc == OX_ECANCELED || rc == OX_EDISCONNECTED);
        if (rc == OX_ECANCELED)
            atomic_fetch_add_explicit(&c->cancelled, 1, memory_order_relaxed);
        break;
    }
    ox_sender_drop(w->tx);
    return NULL;
}

static void *churn_recv(void *p)
{
    churn_worker *w = p;
    churn *c = w->c;
    for (;;) {
        /* Relaxed: as in churn_send. */
        if (atomic_load_explicit(&c->stop_recv, memory_order_relaxed))
            break;
        uint32_t v = UINT32_MAX;
        int rc;
        uint32_t how = ox_test_rand(&w->seed) % 3;
        if (how == 0) {
            rc = ox_receiver_recv(w->rx, &v);
        } else if (how == 1) {
            rc = ox_receiver_recv_timeout(w->rx, &v, tiny(&w->seed));
        } else {
            uint32_t never;
            ox_select_op ops[] = {OX_SELECT_RECV(w->rx, &v), OX_SELECT_RECV(c->never, &never)};
            size_t index = 9;
            rc = ox_select_timeout(ops, 2, tiny(&w->seed), &index);
            if (rc != OX_ETIMEDOUT && rc != OX_ECANCELED)
                CHECK_EQ(index, 0);
        }
        if (rc == 0) {
            if (v == CHURN_NUDGE)
                continue;
            if (v < CHURN_VALUES)
                atomic_fetch_add_explicit(&c->got[v], 1, memory_order_relaxed);
            else
                atomic_fetch_add_explicit(&c->bad, 1, memory_order_relaxed);
            continue;
        }
        if (rc == OX_ETIMEDOUT) {
            atomic_fetch_add_explicit(&c->expired, 1, memory_order_relaxed);
            ox_task_yield();
            continue;
        }
        CHECK(rc == OX_ECANCELED || rc == OX_EDISCONNECTED);
        if (rc == OX_ECANCELED)
            atomic_fetch_add_explicit(&c->cancelled, 1, memory_order_relaxed);
        break;
    }
    ox_receiver_drop(w->rx);
    /* Release: the counts above come before the controller's join. */
    atomic_fetch_sub_explicit(&c->recv_live, 1, memory_order_release);
    return NULL;
}

/* Worker i of a round: the first nsend send, the others receive. */
static int nsend;

static bool sends(int i)
{
    return i < nsend;
}

static void churn_start(churn *c, churn_worker *w, int i, uint32_t *x)
{
    *w = (churn_worker){.c = c, .seed = ox_test_rand(x) | 1};
    if (sends(i))
        w->tx = ox_sender_clone(c->tx);
    else {
        w->rx = ox_receiver_clone(c->rx);
        atomic_fetch_add_explicit(&c->recv_live, 1, memory_order_relaxed);
    }
}

static void churn_round(ox_runtime *rt, size_t cap, bool senders_end, uint32_t *x)
{
    nsend = 1 + (int)(ox_test_rand(x) % (CHURN_TASKS - 1)); /* 1 to 4 of 5 */
    static churn c;
    c.next = 0;
    c.stop_send = c.stop_recv = 0;
    c.bad = 0;
    c.recv_live = 0;
    c.expired = c.cancelled = 0;
    for (int v = 0; v < CHURN_VALUES; v++) {
        atomic_store_explicit(&c.ok[v], 0, memory_order_relaxed);
        atomic_store_explicit(&c.got[v], 0, memory_order_relaxed);
    }
    ox_sender *never_tx;
    CHECK_EQ(ox_channel(sizeof(uint32_t), cap, &c.tx, &c.rx), 0);
    CHECK_EQ(ox_channel(sizeof(uint32_t), 0, &never_tx, &c.never), 0);

    churn_worker tw[CHURN_TASKS], thw[CHURN_THREADS];
    ox_task_handle th[CHURN_TASKS];
    for (int i = 0; i < CHURN_TASKS; i++) {
        churn_start(&c, &tw[i], i, x);
        th[i] = ox_test_spawn_on(rt, sends(i) ? churn_send : churn_recv, &tw[i]);
    }
    ox_join_handle threads[CHURN_THREADS];
    int keep = nsend;
    for (int i = 0; i < CHURN_THREADS; i++) {
        nsend = i + (i + 1) % 2; /* even threads send, odd ones receive */
        churn_start(&c, &thw[i], i, x);
        nsend = keep;
        threads[i] = ox_test_spawn_named(i % 2 == 0 ? "churn-send" : "churn-recv",
                                         i % 2 == 0 ? churn_send : churn_recv, &thw[i]);
    }
    /* Aborts at random moments, each task replaced by a fresh one of its
     * kind, while the values last (the senders stop at CHURN_VALUES). */
    for (int aborts = 0; aborts < CHURN_ABORTS; aborts++) {
        ox_test_spin_ns((int64_t)(ox_test_rand(x) % 400000));
        int i = (int)(ox_test_rand(x) % CHURN_TASKS);
        ox_task_abort(&th[i]);
        int rc = ox_task_join(&th[i], NULL, NULL);
        if (rc == OX_ECANCELED) { /* aborted before it ran: drops nothing */
            if (sends(i)) {
                ox_sender_drop(tw[i].tx);
            } else {
                ox_receiver_drop(tw[i].rx);
                atomic_fetch_sub_explicit(&c.recv_live, 1, memory_order_relaxed);
            }
        } else {
            CHECK_EQ(rc, 0);
        }
        churn_start(&c, &tw[i], i, x);
        th[i] = ox_test_spawn_on(rt, sends(i) ? churn_send : churn_recv, &tw[i]);
    }

    /* The end: one side stops and drops, the other sees the disconnect. */
    if (senders_end) {
        atomic_store_explicit(&c.stop_send, 1, memory_order_relaxed);
        ox_sender_drop(c.tx);
    } else {
        atomic_store_explicit(&c.stop_recv, 1, memory_order_relaxed);
        ox_receiver_drop(c.rx);
        /* Receivers in a plain receive, their senders gone with the
         * values used up, wait for one more message: a nudge each. */
        uint32_t nudge = CHURN_NUDGE;
        while (atomic_load_explicit(&c.recv_live, memory_order_acquire) > 0)
            if (ox_sender_send_timeout(c.tx, &nudge, OX_MICROS(200)) == OX_EDISCONNECTED)
                break;
    }
    for (int i = 0; i < CHURN_TASKS; i++)
        CHECK_EQ(ox_task_join(&th[i], NULL, NULL), 0);
    for (int i = 0; i < CHURN_THREADS; i++)
        ox_test_join(&threads[i]);
    if (senders_end)
        ox_receiver_drop(c.rx);
    else
        ox_sender_drop(c.tx);
    ox_sender_drop(never_tx);
    ox_receiver_drop(c.never);

    CHECK_EQ(atomic_load(&c.bad), 0);
    long accepted = 0, received = 0;
    for (int v = 0; v < CHURN_VALUES; v++) {
        unsigned ok = atomic_load_explicit(&c.ok[v], memory_order_relaxed);
        unsigned got = atomic_load_explicit(&c.got[v], memory_order_relaxed);
        if (got > ok)
            ox_test_fail(__FILE__, __LINE__,
                         "capacity %zu: value %d received %u times, its send accepted %u", cap, v,
                         got, ok);
        if (senders_end && got != ok)
            ox_test_fail(__FILE__, __LINE__,
                         "capacity %zu: value %d accepted by its send but never received", cap, v);
        accepted += ok;
        received += got;
    }
    CHECK(accepted - received <= (long)cap);
    if (getenv("BREAK18_DEBUG"))
        fprintf(stderr, "cap %zu %s: accepted %ld received %ld next %u expired %ld cancelled %ld\n",
                cap, senders_end ? "senders end" : "receivers end", accepted, received,
                (unsigned)atomic_load(&c.next), atomic_load(&c.expired), atomic_load(&c.cancelled));
}

static void churn_rounds(int rounds_each)
{
    ox_runtime *rt = ox_test_runtime(2);
    uint32_t x = 20261130;
    static const size_t caps[] = {0, 1, 2};
    for (int round = 0; round < rounds_each; round++)
        for (int k = 0; k < 3; k++)
            churn_round(rt, caps[k], (round + k) % 2 == 0, &x);
    ox_runtime_shutdown(rt);
}

OX_TEST_OPTS(break18_churn_with_aborts_timeouts_and_selects_receives_each_send_once,
             .timeout_s = 60)
{
    churn_rounds((int)ox_test_scaled(6));
}

/* ---- two tasks that ping-pong for ever starve nothing else ----
 * A and B pass a counter back and forth over two rendezvous channels (each
 * hand-off a direct switch to the LIFO slot's task, past OX__LIFO_MAX when
 * the queue is empty) until every outsider has run: a task A spawned (the
 * local queue), one spawned from a thread (the injector), one sleeping
 * (a timer), one waiting for a pipe that a thread writes to (the poller).
 * A starved outsider keeps the two going for ever: the runner's timeout
 * fails the test. On one worker, the queued task must also run within a
 * few hand-offs, the injector's within a few of the scheduler's
 * every-61st looks. Then the same on two workers. */
enum { OUTSIDERS = 4, QUEUED_BOUND = 12, INJECTED_BOUND = 4 * 61 };

static struct pingpong {
    ox_sender *ab_tx, *ba_tx;
    ox_receiver *ab_rx, *ba_rx;
    _Atomic long handoffs;
    _Atomic int outsiders_done;
    _Atomic long queued_at, injected_at; /* hand-offs at the spawn */
    _Atomic long queued_waited, injected_ran;
    int pipe[2];
} pp;

static long pp_handoffs(void)
{
    /* Relaxed: a count the outsiders only compare. */
    return atomic_load_explicit(&pp.handoffs, memory_order_relaxed);
}

static void pp_outsider_done(void)
{
    atomic_fetch_add_explicit(&pp.outsiders_done, 1, memory_order_relaxed);
}

static void *pp_queued(void *unused)
{
    (void)unused;
    atomic_store(&pp.queued_waited, pp_handoffs() - atomic_load(&pp.queued_at));
    pp_outsider_done();
    return NULL;
}

static void *pp_injected(void *unused)
{
    (void)unused;
    atomic_store(&pp.injected_ran, pp_handoffs());
    pp_outsider_done();
    return NULL;
}

static void *pp_sleeper(void *unused)
{
    (void)unused;
    CHECK_EQ(ox_task_sleep(OX_MILLIS(2)), 0);
    pp_outsider_done();
    return NULL;
}

static void *pp_reader(void *unused)
{
    (void)unused;
    CHECK_EQ(ox_fd_wait(pp.pipe[0], OX_IO_READABLE, OX_INSTANT_NEVER), 0);
    pp_outsider_done();
    return NULL;
}

static void *pp_b(void *unused)
{
    (void)unused;
    long n;
    while (ox_receiver_recv(pp.ab_rx, &n) == 0) {
        atomic_fetch_add_explicit(&pp.handoffs, 1, memory_order_relaxed);
        n++;
        if (ox_sender_send(pp.ba_tx, &n) != 0)
            break;
    }
    ox_sender_drop(pp.ba_tx);
    return NULL;
}

static void *pp_a(void *unused)
{
    (void)unused;
    ox_task_handle b = ox_task_spawn(pp_b, NULL);
    ox_task_handle sleeper = ox_task_spawn(pp_sleeper, NULL);
    ox_task_handle reader = ox_task_spawn(pp_reader, NULL);
    ox_task_handle queued = {0};
    bool spawned = false;
    long n = 0;
    while (atomic_load_explicit(&pp.outsiders_done, memory_order_relaxed) < OUTSIDERS) {
        CHECK_EQ(ox_sender_send(pp.ab_tx, &n), 0);
        long back;
        CHECK_EQ(ox_receiver_recv(pp.ba_rx, &back), 0);
        CHECK_EQ(back, n + 1);
        n = back;
        atomic_fetch_add_explicit(&pp.handoffs, 1, memory_order_relaxed);
        if (!spawned && pp_handoffs() >= 100) {
            atomic_store(&pp.queued_at, pp_handoffs());
            queued = ox_task_spawn(pp_queued, NULL);
            spawned = true;
        }
    }
    ox_sender_drop(pp.ab_tx); /* B sees the disconnect */
    CHECK_EQ(ox_task_join(&b, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&sleeper, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&reader, NULL, NULL), 0);
    CHECK(spawned);
    CHECK_EQ(ox_task_join(&queued, NULL, NULL), 0);
    return NULL;
}

static void pingpong_with_outsiders(size_t workers)
{
    memset(&pp, 0, sizeof pp);
    CHECK_EQ(ox_channel(sizeof(long), 0, &pp.ab_tx, &pp.ab_rx), 0);
    CHECK_EQ(ox_channel(sizeof(long), 0, &pp.ba_tx, &pp.ba_rx), 0);
    CHECK_EQ(pipe(pp.pipe), 0);
    ox_runtime *rt = ox_test_runtime(workers);
    ox_task_handle a = ox_test_spawn_on(rt, pp_a, NULL);
    while (pp_handoffs() < 200)
        ox_thread_yield();
    ox_task_handle injected = ox_test_spawn_on(rt, pp_injected, NULL);
    /* Read after the push: were this thread preempted in between, the
     * wait measured would only be shorter than the real one. */
    atomic_store(&pp.injected_at, pp_handoffs());
    while (pp_handoffs() < 300)
        ox_thread_yield();
    CHECK_EQ(write(pp.pipe[1], "x", 1), 1);
    CHECK_EQ(ox_task_join(&a, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&injected, NULL, NULL), 0);
    long injected_waited = atomic_load(&pp.injected_ran) - atomic_load(&pp.injected_at);
    if (getenv("BREAK18_DEBUG"))
        fprintf(stderr, "%zu workers: %ld hand-offs, queued waited %ld, injected %ld\n", workers,
                pp_handoffs(), atomic_load(&pp.queued_waited), injected_waited);
    /* With two workers the other one may take an outsider and then not
     * get a CPU for a while (two CPUs, this thread polling): no bound. */
    if (workers == 1) {
        CHECK(atomic_load(&pp.queued_waited) <= QUEUED_BOUND);
        CHECK(injected_waited <= INJECTED_BOUND);
    }
    ox_runtime_shutdown(rt);
    close(pp.pipe[0]);
    close(pp.pipe[1]);
    ox_receiver_drop(pp.ab_rx);
    ox_receiver_drop(pp.ba_rx);
}

OX_TEST(break18_a_pingpong_for_ever_starves_no_queue_injector_timer_or_poller)
{
    pingpong_with_outsiders(1);
    pingpong_with_outsiders(2);
}
