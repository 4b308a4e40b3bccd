/* Tasks: spawn and join, panics, yield fairness, sleep, abort at the
 * cancellation points, and tasks and threads mixed on the same mutex,
 * condvar and channel (the one parking interface). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "panic/unwind.h"       /* white box: the live held-lock record */
#include "task/task_internal.h" /* white box: which stack a task got */
#ifdef OX_TEST_BUILT_WITH_ASAN
#include <sanitizer/asan_interface.h>
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *double_it(void *arg)
{
    CHECK(ox_task_current() != NULL);
    return (void *)((intptr_t)arg * 2);
}

OX_TEST(task_join_returns_the_result)
{
    ox_task_handle hs[100];
    for (intptr_t i = 0; i < 100; i++)
        hs[i] = ox_task_spawn(double_it, (void *)i);
    for (intptr_t i = 0; i < 100; i++) {
        void *r = NULL;
        CHECK_EQ(ox_task_join(&hs[i], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, 2 * i);
        CHECK(hs[i].task == NULL);
    }
    CHECK(ox_task_current() == NULL);
}

static void *panics(void *arg)
{
    (void)arg;
    ox_panic("task says no");
}

OX_TEST(task_panic_is_handed_to_join)
{
    ox_panic_set_hook(NULL);
    ox_task_handle h = ox_task_spawn(panics, NULL);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_task_join(&h, NULL, &p), OX_EPANICKED);
    CHECK(p != NULL);
    CHECK_STR(p->message, "task says no");
    ox_panic_payload_free(p);
}

/* ---- a mutex shared by tasks and threads ---- */

static struct {
    ox_mutex m;
    long counter;          /* plain: only the mutex orders it */
    ox_test_budget budget; /* rounds per task or thread */
    _Atomic long done;     /* rounds, summed over them all */
} shared = {.m = OX_MUTEX_INIT};

static void *add_under_lock(void *arg)
{
    (void)arg;
    long i = 0;
    for (; ox_test_budget_more(&shared.budget, i); i++) {
        CHECK_EQ(ox_mutex_lock(&shared.m), 0);
        long v = shared.counter;
        if (i % 16 == 0)
            ox_task_yield(); /* hold the lock across a switch: others must wait */
        shared.counter = v + 1;
        ox_mutex_unlock(&shared.m);
    }
    atomic_fetch_add(&shared.done, i);
    return NULL;
}

OX_TEST(task_and_thread_mutex_counts_are_exact)
{
    ox_runtime *rt = ox_test_runtime(2);
    shared.budget = ox_test_budget_start(500, ox_test_scaled(20000));
    enum { TASKS = 16, THREADS = 2 };
    ox_test_run_tasks_and_threads(rt, TASKS, THREADS, add_under_lock);
    CHECK_EQ(shared.counter, atomic_load(&shared.done));
    ox_runtime_shutdown(rt);
}

/* ---- channels between tasks and threads ---- */

static void *forward(void *arg)
{
    ox_receiver *rx = ((void **)arg)[0];
    ox_sender *tx = ((void **)arg)[1];
    long v;
    while (ox_receiver_recv(rx, &v) == 0)
        CHECK_EQ(ox_sender_send(tx, &v), 0);
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
    return NULL;
}

OX_TEST(task_pipeline_of_rendezvous_channels_loses_nothing)
{
    /* thread -> task -> task -> ... -> thread, every hop a rendezvous. */
    ox_runtime *rt = ox_test_runtime(2);
    enum { STAGES = 50 };
    ox_test_budget budget = ox_test_budget_start(100, ox_test_scaled(4000));
    ox_sender *first_tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(long), 0, &first_tx, &rx), 0);
    ox_task_handle hs[STAGES];
    void *args[STAGES][2];
    for (int i = 0; i < STAGES; i++) {
        ox_sender *tx;
        ox_receiver *next_rx;
        CHECK_EQ(ox_channel(sizeof(long), i % 3 == 0 ? 0 : 4, &tx, &next_rx), 0);
        args[i][0] = rx;
        args[i][1] = tx;
        hs[i] = ox_test_spawn_on(rt, forward, args[i]);
        rx = next_rx;
    }
    long sum = 0, n = 0;
    for (; ox_test_budget_more(&budget, n); n++) {
        long i = n;
        CHECK_EQ(ox_sender_send(first_tx, &i), 0);
        long v;
        CHECK_EQ(ox_receiver_recv(rx, &v), 0);
        CHECK_EQ(v, i); /* FIFO through every stage */
        sum += v;
    }
    ox_sender_drop(first_tx);
    long v;
    CHECK_EQ(ox_receiver_recv(rx, &v), OX_EDISCONNECTED);
    for (int i = 0; i < STAGES; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    ox_receiver_drop(rx);
    CHECK_EQ(sum, n * (n - 1) / 2);
    ox_runtime_shutdown(rt);
}

/* ---- condvar: tasks wait, a thread notifies ---- */

static struct {
    ox_mutex m;
    ox_condvar cv;
    long ready; /* guarded by m */
    long seen;  /* guarded by m */
} cvs = {.m = OX_MUTEX_INIT};

static void *wait_for_ready(void *arg)
{
    long want = (long)(intptr_t)arg;
    CHECK_EQ(ox_mutex_lock(&cvs.m), 0);
    while (cvs.ready < want)
        CHECK_EQ(ox_condvar_wait(&cvs.cv, &cvs.m), 0);
    cvs.seen++;
    ox_mutex_unlock(&cvs.m);
    return NULL;
}

OX_TEST(task_condvar_notify_all_from_a_thread_wakes_every_task)
{
    ox_runtime *rt = ox_test_runtime(2);
    enum { TASKS = 200 };
    ox_task_handle hs[TASKS];
    for (int i = 0; i < TASKS; i++)
        hs[i] = ox_test_spawn_on(rt, wait_for_ready, (void *)(intptr_t)(i % 5 + 1));
    for (long step = 1; step <= 5; step++) {
        ox_thread_sleep(OX_MILLIS(1));
        CHECK_EQ(ox_mutex_lock(&cvs.m), 0);
        cvs.ready = step;
        ox_mutex_unlock(&cvs.m);
        ox_condvar_notify_all(&cvs.cv);
    }
    for (int i = 0; i < TASKS; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    CHECK_EQ(cvs.seen, TASKS);
    ox_runtime_shutdown(rt);
}

/* ---- yield: a task that keeps yielding cannot starve another ---- */

static _Atomic int stop_spinning;

static void *yield_until_stopped(void *arg)
{
    long *yields = arg;
    while (!atomic_load(&stop_spinning)) {
        ox_task_yield();
        (*yields)++;
    }
    return NULL;
}

OX_TEST(task_yield_lets_others_run)
{
    ox_runtime *rt = ox_test_runtime(1); /* one worker: only yield can let the other task in */
    long yields = 0;
    ox_task_handle spinner = ox_test_spawn_on(rt, yield_until_stopped, &yields);
    ox_task_handle stopper = ox_test_spawn_on(rt, ox_test_set_flag, &stop_spinning);
    CHECK_EQ(ox_task_join(&stopper, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&spinner, NULL, NULL), 0);
    CHECK(yields >= 1);
    ox_runtime_shutdown(rt);
}

/* ---- a local queue's overflow: every task runs once ----
 * Spawning past a worker's queue (OX__LOCAL_QUEUE) moves half of it to the injector
 * as a batch, an array that the workers take one task at a time
 * (queue.c). Each task must run exactly once, with one worker and with
 * two that steal and take from the batches at the same time. */
#define OVERFLOW_TASKS 3000

static _Atomic int overflow_runs[OVERFLOW_TASKS];

static void *count_my_run(void *arg)
{
    atomic_fetch_add(&overflow_runs[(intptr_t)arg], 1);
    return arg;
}

static void *spawn_past_the_queue(void *arg)
{
    (void)arg;
    static ox_task_handle hs[OVERFLOW_TASKS];
    for (intptr_t i = 0; i < OVERFLOW_TASKS; i++)
        hs[i] = ox_task_spawn(count_my_run, (void *)i);
    for (intptr_t i = 0; i < OVERFLOW_TASKS; i++) {
        void *r = NULL;
        CHECK_EQ(ox_task_join(&hs[i], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, i);
    }
    return NULL;
}

OX_TEST(task_overflowing_spawns_each_run_once)
{
    for (size_t workers = 1; workers <= 2; workers++) {
        for (int i = 0; i < OVERFLOW_TASKS; i++)
            atomic_store(&overflow_runs[i], 0);
        ox_test_run_alone(workers, spawn_past_the_queue, NULL);
        for (int i = 0; i < OVERFLOW_TASKS; i++)
            CHECK_EQ(atomic_load(&overflow_runs[i]), 1);
    }
}

/* ---- a burst's records go back to the allocator once the workers idle ----
 * Records freed in a burst all go to the shared pool (record.c); an idle
 * visit gives back all but 4096 (POOL_KEPT) once its worker has been idle
 * for a millisecond. 10 000 finished tasks wait for their joins, so
 * their records are freed together. */
#define RECORD_BURST 10000
#define POOL_KEPT    4096

static void *join_a_burst(void *arg)
{
    (void)arg;
    static ox_task_handle hs[RECORD_BURST];
    for (intptr_t i = 0; i < RECORD_BURST; i++)
        hs[i] = ox_task_spawn(count_my_run, (void *)(i % OVERFLOW_TASKS));
    for (int i = 0; i < RECORD_BURST; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    return NULL;
}

OX_TEST_OPTS(task_a_burst_of_records_is_given_back_when_idle, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h = ox_test_spawn_on(rt, join_a_burst, NULL);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    size_t peak = ox__task_records_pooled();
    /* The workers idle now: within a few milliseconds (more under a
     * sanitizer or qemu) they have given back all but the kept ones. */
    for (int i = 0; i < 5000 && ox__task_records_pooled() > POOL_KEPT; i++)
        ox_thread_sleep(OX_MILLIS(1));
    fprintf(stderr, "records pooled: %zu after the burst, %zu after idling\n", peak,
            ox__task_records_pooled());
    CHECK(ox__task_records_pooled() <= POOL_KEPT);
    ox_runtime_shutdown(rt);
}

/* ---- yields take turns: each yield runs the queue's head ----
 * A yield switches straight to the task the scheduler would take next
 * (runtime.c's yield_successor), and the yielder goes to the back of the
 * queue. On one worker, tasks that only yield then run in strict turns:
 * every window of TURN_TASKS log entries holds each task once. A yielder
 * put back in front, or dropped, breaks the turns or hangs. */
#define TURN_TASKS  4
#define TURN_YIELDS 300

static struct {
    _Atomic int log[TURN_TASKS * (TURN_YIELDS + 1)];
    _Atomic int len;
} turns;

static void *take_turns(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i <= TURN_YIELDS; i++) {
        atomic_store(&turns.log[atomic_fetch_add(&turns.len, 1)], id);
        if (i < TURN_YIELDS)
            ox_task_yield();
    }
    return NULL;
}

static void *spawn_turn_takers(void *arg)
{
    (void)arg;
    /* Spawned from a task: queued on this worker, in order. */
    ox_task_handle hs[TURN_TASKS];
    for (int i = 0; i < TURN_TASKS; i++)
        hs[i] = ox_task_spawn(take_turns, (void *)(intptr_t)i);
    for (int i = 0; i < TURN_TASKS; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    return NULL;
}

OX_TEST(task_yields_take_strict_turns_on_one_worker)
{
    ox_test_run_alone(1, spawn_turn_takers, NULL);
    int len = atomic_load(&turns.len);
    CHECK_EQ(len, TURN_TASKS * (TURN_YIELDS + 1));
    for (int start = 0; start + TURN_TASKS <= len; start++) {
        unsigned seen = 0;
        for (int k = start; k < start + TURN_TASKS; k++)
            seen |= 1u << atomic_load(&turns.log[k]);
        CHECK_EQ(seen, (1u << TURN_TASKS) - 1);
    }
}

/* ---- yielders cannot starve a timer or the injector ----
 * Two tasks that yield to each other keep the queue non-empty, so each
 * yield switches straight to the other. Every OX__GLOBAL_EVERY-th tick
 * must still go through the scheduler, which fires due timers and looks
 * at the injector: a sleeping task and a task spawned from a thread must
 * run, or the yielders never stop (the runner's timeout fails the test). */
static struct {
    _Atomic int slept, injected, started;
} starve;

static void *yield_until_both_ran(void *arg)
{
    long *yields = arg;
    while (!atomic_load(&starve.slept) || !atomic_load(&starve.injected)) {
        ox_task_yield();
        (*yields)++;
    }
    return NULL;
}

static void *start_yielders_and_sleeper(void *arg)
{
    (void)arg;
    long yields[2] = {0, 0};
    ox_task_handle sleeper = ox_task_spawn(ox_test_sleep_1ms_then_set_flag, &starve.slept);
    ox_task_handle a = ox_task_spawn(yield_until_both_ran, &yields[0]);
    ox_task_handle b = ox_task_spawn(yield_until_both_ran, &yields[1]);
    atomic_store(&starve.started, 1);
    CHECK_EQ(ox_task_join(&a, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&b, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&sleeper, NULL, NULL), 0);
    CHECK(yields[0] >= 1 && yields[1] >= 1);
    return NULL;
}

OX_TEST(task_yielders_cannot_starve_a_timer_or_the_injector)
{
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle start = ox_test_spawn_on(rt, start_yielders_and_sleeper, NULL);
    while (!atomic_load(&starve.started))
        ox_thread_yield();
    /* From this thread: through the injector, while the yielders run. */
    ox_task_handle injected = ox_test_spawn_on(rt, ox_test_set_flag, &starve.injected);
    CHECK_EQ(ox_task_join(&injected, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&start, NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}

/* ---- the LIFO slot: hand-offs between two tasks cannot starve the queue ----
 * A wake puts the woken task in its worker's LIFO slot, which runs next.
 * Two tasks that wake each other in turn would keep the slot full for
 * ever; after a few runs in a row the slot's task goes to the back of the
 * queue instead, so a task queued behind them runs. */

static struct {
    ox_notify to_a, to_b;
    _Atomic int stop;
    long handoffs; /* written by A and B in turn: the notifies order it */
} lifo;

static void *handoff_b(void *arg)
{
    (void)arg;
    for (;;) {
        CHECK_EQ(ox_notify_wait(&lifo.to_b), 0);
        bool stop = atomic_load(&lifo.stop);
        lifo.handoffs++;
        ox_notify_one(&lifo.to_a); /* A into this worker's LIFO slot */
        if (stop)
            return NULL;
    }
}

static void *handoff_a(void *arg)
{
    (void)arg;
    /* Both queued on this worker, behind this task: B, then the stopper. */
    ox_task_handle b = ox_task_spawn(handoff_b, NULL);
    ox_task_handle stopper = ox_task_spawn(ox_test_set_flag, &lifo.stop);
    for (;;) {
        bool stop = atomic_load(&lifo.stop);
        ox_notify_one(&lifo.to_b); /* B into the LIFO slot (or a permit) */
        if (stop)
            break;
        CHECK_EQ(ox_notify_wait(&lifo.to_a), 0);
    }
    CHECK_EQ(ox_task_join(&b, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&stopper, NULL, NULL), 0);
    return NULL;
}

OX_TEST(task_lifo_handoffs_cannot_starve_the_queue)
{
    ox_runtime_builder rb = OX_RUNTIME_BUILDER_INIT;
    rb.workers = 1; /* no other worker to steal the stopper */
    ox_runtime *rt;
    CHECK_EQ(ox_runtime_new(&rb, &rt), 0);
    ox_task_handle a = ox_test_spawn_on(rt, handoff_a, NULL);
    /* A starving stopper never runs: the runner's timeout fails the test. */
    CHECK_EQ(ox_task_join(&a, NULL, NULL), 0);
    fprintf(stderr, "handoffs before the stopper ran: %ld\n", lifo.handoffs);
    /* The slot gives way after OX__LIFO_MAX (3) runs in a row, so the
     * stopper runs after a few hand-offs, not after dozens (a limit seen
     * only by the scheduler's every-61st look would allow that). */
    CHECK(lifo.handoffs >= 1);
    CHECK(lifo.handoffs <= 12);
    ox_runtime_shutdown(rt);
}

/* ---- the LIFO slot's task, moved behind a yielder, is not stranded ----
 * After OX__LIFO_MAX runs of the slot in a row, the slot's task goes to
 * the back of the queue. If a task that just yielded is in front of it and
 * then computes without yielding again, only another worker can run the
 * moved task: one must be woken for it. Here two tasks pass a ball on one
 * worker (each wake hands over directly) a random number of times; then
 * the holder wakes the other into the slot, yields, and spins until the
 * other has run, while the second worker sleeps. */
enum { BALL_PASSING, FINAL_WOKEN, FINAL_DONE };

typedef struct ball_side {
    ox_notify *mine, *other;
    bool starts;
} ball_side;

static struct {
    ox_notify a, b;
    _Atomic int state, stop;
    /* Written only by the ball's holder: the notifies hand them over. */
    long round, rounds, passes_left;
    uint32_t rng;
} ball;

static void *pass_the_ball(void *arg)
{
    const ball_side *me = arg;
    if (!me->starts)
        CHECK_EQ(ox_notify_wait(me->mine), 0);
    for (;;) {
        if (atomic_load(&ball.stop))
            return NULL;
        if (atomic_load(&ball.state) == FINAL_WOKEN) {
            /* Release: pairs with the holder's acquire load. */
            atomic_store_explicit(&ball.state, FINAL_DONE, memory_order_release);
            CHECK_EQ(ox_notify_wait(me->mine), 0);
            continue;
        }
        if (ball.passes_left > 0) { /* the other into the slot, and over to it */
            ball.passes_left--;
            ox_notify_one(me->other);
            CHECK_EQ(ox_notify_wait(me->mine), 0);
            continue;
        }
        atomic_store(&ball.state, FINAL_WOKEN);
        ox_notify_one(me->other); /* into the slot */
        ox_task_yield();          /* to the queue: in front of the other if it is moved */
        int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(2000));
        /* Acquire: pairs with the other's release store. */
        while (atomic_load_explicit(&ball.state, memory_order_acquire) != FINAL_DONE)
            if (ox_instant_now().ns > give_up)
                ox_test_fail(__FILE__, __LINE__,
                             "round %ld: the task moved out of the LIFO slot never ran",
                             ball.round);
        atomic_store(&ball.state, BALL_PASSING);
        if (++ball.round == ball.rounds) {
            atomic_store(&ball.stop, 1);
            ox_notify_one(me->other);
            return NULL;
        }
        ball.passes_left = ox_test_rand(&ball.rng) % 8;
    }
}

OX_TEST(task_lifo_task_moved_behind_a_yielder_is_not_stranded)
{
    ox_runtime *rt = ox_test_runtime(2);
    ball.rounds = ox_test_scaled(20000);
    ball.rng = 0x9e3779b9u;
    ball_side a = {&ball.a, &ball.b, true}, b = {&ball.b, &ball.a, false};
    ox_task_handle ha = ox_test_spawn_on(rt, pass_the_ball, &a);
    ox_task_handle hb = ox_test_spawn_on(rt, pass_the_ball, &b);
    CHECK_EQ(ox_task_join(&ha, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&hb, NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}

/* ---- sleep and abort ---- */

static void *sleep_long(void *arg)
{
    (void)arg;
    int rc = ox_task_sleep(OX_SECS(3600));
    CHECK(ox_task_is_cancelled());
    /* Every later cancellation point fails too. */
    CHECK_EQ(ox_task_sleep(OX_MILLIS(1)), OX_ECANCELED);
    return (void *)(intptr_t)rc;
}

OX_TEST(task_abort_ends_a_sleep_with_ecanceled)
{
    ox_task_handle h = ox_task_spawn(sleep_long, NULL);
    /* A handshake, not a sleep: aborted before it runs, the task would
     * never run (and its join would say OX_ECANCELED). */
    ox_test_wait_tasks_blocked_at("task sleep", 1);
    CHECK(!ox_task_is_finished(&h));
    ox_task_abort(&h);
    void *r = NULL;
    CHECK_EQ(ox_task_join(&h, &r, NULL), 0);
    CHECK_EQ((intptr_t)r, OX_ECANCELED);
}

static void *sleep_a_little(void *arg)
{
    ox_nanos d = (ox_nanos)(intptr_t)arg;
    ox_instant before = ox_instant_now();
    CHECK_EQ(ox_task_sleep(d), 0);
    CHECK(ox_instant_diff(ox_instant_now(), before) >= d);
    return NULL;
}

OX_TEST(task_sleeps_end_no_earlier_than_asked)
{
    enum { TASKS = 500 };
    ox_task_handle hs[TASKS];
    for (int i = 0; i < TASKS; i++)
        hs[i] = ox_task_spawn(sleep_a_little, (void *)(intptr_t)OX_MICROS(100 * (i % 50)));
    for (int i = 0; i < TASKS; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
}

/* ---- a task's held-lock record follows it across workers ---- */

static ox_mutex pair[2] = {OX_MUTEX_INIT, OX_MUTEX_INIT};

static void *lock_hop_unlock(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        ox_mutex *m = &pair[i % 2];
        CHECK_EQ(ox_mutex_lock(m), 0);
        ox_task_yield(); /* may resume on the other worker */
        ox_task_yield();
        ox_mutex_unlock(m); /* aborts if the record stayed behind */
    }
    return NULL;
}

OX_TEST(task_held_locks_follow_the_task_between_workers)
{
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle hs[8];
    for (int i = 0; i < 8; i++)
        hs[i] = ox_test_spawn_on(rt, lock_hop_unlock, NULL);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}

OX_TEST_OPTS(task_stack_overflow_is_reported_with_the_task_name, .expect_signal = SIGABRT,
             .expect_stderr = "task 'deep' has overflowed its stack")
{
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    b.name = "deep";
    b.stack_size = 64 * 1024;
    ox_task_handle h;
    CHECK_EQ(ox_task_builder_spawn(&b, ox_test_recurse, NULL, &h), 0);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0); /* never returns: the overflow aborts */
}

/* ---- abort at every cancellation point ---- */

enum cancel_point {
    AT_RECV,
    AT_RECV_TIMEOUT,
    AT_SEND_FULL,
    AT_SEND_RENDEZVOUS,
    AT_RECV_RENDEZVOUS,
    AT_SELECT,
    AT_CONDVAR,
    AT_JOIN,
    AT_SLEEP,
    CANCEL_POINTS
};

static struct {
    ox_sender *tx;
    ox_receiver *rx;
    ox_sender *tx0;
    ox_receiver *rx0;
    ox_mutex m;
    ox_condvar cv;
    ox_task_handle sleeper;
    _Atomic int arrived;
} cp = {.m = OX_MUTEX_INIT};

static void *sleep_forever(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)ox_task_sleep(OX_SECS(3600));
}

/* Blocks at one cancellation point; returns what it returned, then checks
 * that the next cancellation point fails at once too. */
static void *block_at(void *arg)
{
    enum cancel_point at = (enum cancel_point)(intptr_t)arg;
    long v = 7;
    int rc = -1;
    atomic_fetch_add(&cp.arrived, 1);
    switch (at) {
    case AT_RECV:
        rc = ox_receiver_recv(cp.rx, &v);
        break;
    case AT_RECV_TIMEOUT:
        rc = ox_receiver_recv_timeout(cp.rx, &v, OX_SECS(3600));
        break;
    case AT_SEND_FULL:
        while ((rc = ox_sender_send(cp.tx, &v)) == 0) {
        } /* the channel holds 4: the fifth send waits */
        break;
    case AT_SEND_RENDEZVOUS:
        rc = ox_sender_send(cp.tx0, &v);
        break;
    case AT_RECV_RENDEZVOUS:
        rc = ox_receiver_recv(cp.rx0, &v);
        break;
    case AT_SELECT: {
        ox_select_op ops[2] = {OX_SELECT_RECV(cp.rx0, &v), OX_SELECT_RECV(cp.rx0, &v)};
        size_t index;
        rc = ox_select(ops, 1, &index);
        break;
    }
    case AT_CONDVAR:
        CHECK_EQ(ox_mutex_lock(&cp.m), 0);
        rc = ox_condvar_wait(&cp.cv, &cp.m);
        ox_mutex_unlock(&cp.m); /* the wait re-took it even when cancelled */
        break;
    case AT_JOIN:
        rc = ox_task_join(&cp.sleeper, NULL, NULL);
        break;
    case AT_SLEEP:
        rc = ox_task_sleep(OX_SECS(3600));
        break;
    default:
        break;
    }
    CHECK(ox_task_is_cancelled());
    CHECK_EQ(ox_receiver_recv(cp.rx0, &v), OX_ECANCELED); /* and every one after */
    return (void *)(intptr_t)rc;
}

OX_TEST(task_abort_ends_every_cancellation_point)
{
    for (int at = 0; at < CANCEL_POINTS; at++) {
        CHECK_EQ(ox_channel(sizeof(long), 4, &cp.tx, &cp.rx), 0);
        CHECK_EQ(ox_channel(sizeof(long), 0, &cp.tx0, &cp.rx0), 0);
        cp.sleeper = ox_task_spawn(sleep_forever, NULL);
        atomic_store(&cp.arrived, 0);
        ox_task_handle h = ox_task_spawn(block_at, (void *)(intptr_t)at);
        void *r = ox_test_abort_at_its_wait(&h, &cp.arrived);
        if ((intptr_t)r != OX_ECANCELED)
            ox_test_fail(__FILE__, __LINE__, "point %d returned %ld", at, (long)(intptr_t)r);
        ox_task_abort(&cp.sleeper);
        r = NULL;
        CHECK_EQ(ox_task_join(&cp.sleeper, &r, NULL), 0);
        CHECK_EQ((intptr_t)r, OX_ECANCELED);
        ox_sender_drop(cp.tx);
        ox_receiver_drop(cp.rx);
        ox_sender_drop(cp.tx0);
        ox_receiver_drop(cp.rx0);
    }
}

static void *recv_ready_while_cancelled(void *arg)
{
    atomic_store((_Atomic int *)arg, 1);
    while (!ox_task_is_cancelled())
        ox_task_yield();
    long v = 0;
    /* A message is there: the call need not wait, so it completes. */
    CHECK_EQ(ox_receiver_recv(cp.rx, &v), 0);
    CHECK_EQ(v, 42);
    CHECK_EQ(ox_receiver_recv(cp.rx, &v), OX_ECANCELED);
    return NULL;
}

OX_TEST(task_cancelled_call_that_need_not_wait_completes)
{
    CHECK_EQ(ox_channel(sizeof(long), 4, &cp.tx, &cp.rx), 0);
    long v = 42;
    CHECK_EQ(ox_sender_send(cp.tx, &v), 0);
    _Atomic int running = 0;
    ox_task_handle h = ox_task_spawn(recv_ready_while_cancelled, (void *)&running);
    while (!atomic_load(&running))
        ox_thread_yield();
    ox_task_abort(&h);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    ox_sender_drop(cp.tx);
    ox_receiver_drop(cp.rx);
}

static void *never_runs(void *arg)
{
    atomic_store((_Atomic int *)arg, 1);
    return NULL;
}

static _Atomic int release_spinner;

static void *spin_until_released(void *arg)
{
    (void)arg;
    while (!atomic_load(&release_spinner)) {
    } /* never blocks: the worker is ours until released */
    return NULL;
}

OX_TEST(task_aborted_before_it_runs_never_runs)
{
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle spinner = ox_test_spawn_on(rt, spin_until_released, NULL);
    _Atomic int ran = 0;
    ox_task_handle h = ox_test_spawn_on(rt, never_runs, (void *)&ran);
    ox_task_abort(&h);
    atomic_store(&release_spinner, 1);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), OX_ECANCELED);
    CHECK_EQ(atomic_load(&ran), 0);
    CHECK_EQ(ox_task_join(&spinner, NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}

/* ---- records kept for reuse (record.c) ----
 * A worker keeps the records freed on it and hands them to its next
 * spawns. While kept, a record is out of bounds for AddressSanitizer, so
 * that a use after free of a task record is still reported. */
static void *report_own_record(void *arg)
{
    (void)arg;
    return ox_task_current();
}

static void *spawn_twice_on_one_worker(void *arg)
{
    (void)arg;
    void *first = NULL, *second = NULL;
    ox_task_handle h = ox_task_spawn(report_own_record, NULL);
    CHECK_EQ(ox_task_join(&h, &first, NULL), 0); /* freed here, on our worker */
#ifdef OX_TEST_BUILT_WITH_ASAN
    CHECK(__asan_address_is_poisoned((char *)first + offsetof(ox_task, id)));
#endif
    h = ox_task_spawn(report_own_record, NULL); /* runs on its record: reused */
    CHECK_EQ(ox_task_join(&h, &second, NULL), 0);
    CHECK(first == second);
    return NULL;
}

OX_TEST(task_records_are_reused_by_their_worker_and_poisoned_while_kept)
{
    ox_test_run_alone(1, spawn_twice_on_one_worker, NULL);
}

/* ---- direct hand-offs (runtime.c) ----
 * On one worker, two tasks trade messages over rendezvous channels: each
 * send wakes the other into the LIFO slot, and the sender's next receive
 * hands the worker straight to it. Each holds a mutex of its own across
 * every hand-off, and one panics at the end: its unwind must release and
 * poison its own mutex, not the other's (the held-lock record follows the
 * task through a direct switch), and every message arrives in order. */
typedef struct handoff_side {
    ox_mutex lock;
    const ox_mutex *others; /* the other side's lock */
    ox_sender *tx;
    ox_receiver *rx;
    bool sends_first, panics;
    long traded;
} handoff_side;

static void *trade_holding_a_lock(void *arg)
{
    handoff_side *s = arg;
    long rounds = ox_test_scaled(20000);
    CHECK_EQ(ox_mutex_lock(&s->lock), 0);
    for (long i = 0; i < rounds; i++) {
        long v = i;
        if (s->sends_first) {
            CHECK_EQ(ox_sender_send(s->tx, &v), 0);
            CHECK_EQ(ox_receiver_recv(s->rx, &v), 0);
        } else {
            CHECK_EQ(ox_receiver_recv(s->rx, &v), 0);
            CHECK_EQ(v, i);
            CHECK_EQ(ox_sender_send(s->tx, &v), 0);
        }
        CHECK_EQ(v, i);
        /* White box: after every hand-off the live held-lock record is
         * ours. The end alone can miss a record that stayed put: in a
         * ping-pong whose every switch is direct but the scheduler's
         * every 61st (odd), the records come back to their owners. */
        CHECK(ox__held_find(&s->lock) != NULL);
        CHECK(ox__held_find(s->others) == NULL);
        s->traded++;
    }
    if (s->panics)
        ox_panic("a trading task panics holding its lock");
    ox_mutex_unlock(&s->lock);
    return NULL;
}

OX_TEST(task_direct_hand_offs_keep_each_task_its_own_held_locks)
{
    ox_runtime *rt = ox_test_runtime(1);
    handoff_side a = {.lock = OX_MUTEX_INIT, .sends_first = true, .panics = true};
    handoff_side b = {.lock = OX_MUTEX_INIT, .others = &a.lock};
    a.others = &b.lock;
    CHECK_EQ(ox_channel(sizeof(long), 0, &a.tx, &b.rx), 0);
    CHECK_EQ(ox_channel(sizeof(long), 0, &b.tx, &a.rx), 0);
    ox_panic_hook old = ox_panic_set_hook(NULL);
    ox_task_handle ha = ox_test_spawn_on(rt, trade_holding_a_lock, &a);
    ox_task_handle hb = ox_test_spawn_on(rt, trade_holding_a_lock, &b);
    CHECK_EQ(ox_task_join(&hb, NULL, NULL), 0);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_task_join(&ha, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "a trading task panics holding its lock");
    ox_panic_payload_free(p);
    (void)ox_panic_set_hook(old);
    CHECK_EQ(a.traded, b.traded);
    CHECK_EQ(a.traded, ox_test_scaled(20000));
    CHECK_EQ(ox_mutex_try_lock(&a.lock), OX_EPOISONED); /* released by its unwind */
    ox_mutex_clear_poison(&a.lock);
    ox_mutex_unlock(&a.lock);
    CHECK_EQ(ox_mutex_try_lock(&b.lock), 0); /* unlocked by b, never poisoned */
    ox_mutex_unlock(&b.lock);
    ox_sender_drop(a.tx);
    ox_sender_drop(b.tx);
    ox_receiver_drop(a.rx);
    ox_receiver_drop(b.rx);
    ox_runtime_shutdown(rt);
}

/* A task takes its stack when it first runs: one whose stack cannot be
 * mapped never runs, and its join says ENOMEM; the worker goes on. */
OX_TEST(task_whose_stack_cannot_be_mapped_never_runs_and_joins_with_enomem)
{
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    b.runtime = rt;
    b.stack_size = (size_t)1 << 62; /* past any address space */
    _Atomic int ran = 0;
    ox_task_handle h;
    CHECK_EQ(ox_task_builder_spawn(&b, never_runs, (void *)&ran, &h), 0);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), ENOMEM);
    CHECK_EQ(atomic_load(&ran), 0);
    ox_task_handle next = ox_test_spawn_on(rt, never_runs, (void *)&ran);
    CHECK_EQ(ox_task_join(&next, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&ran), 1);
    ox_runtime_shutdown(rt);
}

/* ---- many blocked tasks: past the guarded-stack budget into slabs ---- */

static ox_receiver *million_rx;

static void *block_on_million_rx(void *arg)
{
    (void)arg;
    long v;
    return (void *)(intptr_t)ox_receiver_recv(million_rx, &v);
}

OX_TEST_OPTS(task_a_million_blocked_at_once_all_finish, .timeout_s = 240)
{
    /* A million in the plain builds; fewer where each task costs far more
     * (sanitizers' per-fiber state, qemu's emulation). Every count is past
     * the 16 384 guarded stacks, so slab stacks are exercised too. On a
     * loaded machine the spawning stops when its budget is used (the
     * wake-up and joins take about as long again), past 100 000 tasks. */
    long scaled = ox_test_scaled(1000);
    long n = scaled >= 1000 ? 1000000 : scaled >= 500 ? 100000 : 4000;
    if (getenv("OX_TEST_WRAPPER") != NULL) /* under qemu */
        n /= 10;
    /* Where fewer than the guarded budget run, lower it: slabs are used. */
    if (n <= 100000)
        CHECK_EQ(setenv("OX_TASK_GUARDED_STACKS", "1000", 1), 0);
    ox_test_budget budget = ox_test_budget_start_s(n < 100000 ? n : 100000, n, 80);
    ox_sender *tx;
    CHECK_EQ(ox_channel(sizeof(long), 0, &tx, &million_rx), 0);
    ox_task_handle *hs = malloc((size_t)n * sizeof *hs);
    CHECK(hs != NULL);
    long spawned = 0;
    for (; ox_test_budget_more(&budget, spawned); spawned++)
        hs[spawned] = ox_task_spawn(block_on_million_rx, NULL);
    printf("%ld tasks blocked at once\n", spawned);
    n = spawned;
    /* Release them all at once: each receive sees the disconnection. */
    ox_sender_drop(tx);
    for (long i = 0; i < n; i++) {
        void *r = NULL;
        CHECK_EQ(ox_task_join(&hs[i], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, OX_EDISCONNECTED);
    }
    free(hs);
    ox_receiver_drop(million_rx);
}

/* ---- stacks from the cache, warm and cold ---- */

#define BURST_STACK ((size_t)32 * 1024)

static ox_receiver *burst_rx;

/* Waits until its whole burst is alive, then fills part of its stack with
 * a pattern of its own and reads it back across a switch. */
static _Atomic long burst_started;

static void *fill_own_stack(void *arg)
{
    atomic_fetch_add(&burst_started, 1);
    long v;
    CHECK_EQ(ox_receiver_recv(burst_rx, &v), OX_EDISCONNECTED);
    volatile unsigned char buf[BURST_STACK];
    unsigned char seed = (unsigned char)(uintptr_t)arg;
    for (size_t i = 0; i < BURST_STACK; i++)
        buf[i] = (unsigned char)(seed + i);
    ox_task_yield();
    for (size_t i = 0; i < BURST_STACK; i++)
        if (buf[i] != (unsigned char)(seed + i))
            return (void *)(uintptr_t)1;
    return NULL;
}

/* Two bursts larger than the cache's warm part: the second runs on stacks
 * whose pages the cache gave back after the first (src/task/stack.c). */
OX_TEST(task_stacks_from_the_cold_cache_run_tasks_again)
{
    ox_runtime *rt = ox_test_runtime(1);
    enum { BURST = 3000 };
    static ox_task_handle hs[BURST];
    for (int round = 0; round < 2; round++) {
        ox_sender *tx;
        CHECK_EQ(ox_channel(sizeof(long), 0, &tx, &burst_rx), 0);
        atomic_store(&burst_started, 0);
        for (uintptr_t i = 0; i < BURST; i++)
            hs[i] = ox_test_spawn_on(rt, fill_own_stack, (void *)i);
        ox_test_wait_count(&burst_started, BURST); /* each holds a stack */
        ox_sender_drop(tx);
        for (int i = 0; i < BURST; i++) {
            void *r = (void *)(uintptr_t)2;
            CHECK_EQ(ox_task_join(&hs[i], &r, NULL), 0);
            CHECK(r == NULL);
        }
        ox_receiver_drop(burst_rx);
    }
    ox_runtime_shutdown(rt);
}

static const char *slab_bottom;

/* Recurses until its frame is within 4 KiB of the stack's bottom (inside
 * the red zone, still inside the stack), then switches. */
static void *recurse_then_yield(void *arg)
{
    volatile char buf[512];
    buf[0] = (char)(intptr_t)arg;
    if ((const char *)buf - slab_bottom > 4096)
        recurse_then_yield((void *)((intptr_t)arg + 1));
    else
        ox_task_yield(); /* switch with the stack pointer deep down */
    return (void *)(intptr_t)buf[0];
}

static void *overflow_unguarded(void *arg)
{
    (void)arg;
    const ox_task *self = ox_task_current();
    CHECK(self->stack->guard_size == 0); /* white box: the guarded budget is used up */
    slab_bottom = self->stack->base;
    return recurse_then_yield((void *)(intptr_t)0);
}

static _Atomic long budget_filled;

static void *fill_guarded_budget(void *arg)
{
    (void)arg;
    atomic_fetch_add(&budget_filled, 1);
    long v;
    return (void *)(intptr_t)ox_receiver_recv(million_rx, &v);
}

OX_TEST_OPTS(task_overflow_of_an_unguarded_stack_is_reported, .expect_signal = SIGABRT,
             .expect_stderr = "task 'deep-slab' has overflowed its stack", .timeout_s = 120)
{
    /* Use up the guarded budget so that the next task gets a slab stack. */
    CHECK_EQ(setenv("OX_TASK_GUARDED_STACKS", "16", 1), 0); /* this process only */
    ox_sender *tx;
    CHECK_EQ(ox_channel(sizeof(long), 0, &tx, &million_rx), 0);
    for (long i = 0; i < 16 + 64; i++) {
        ox_task_handle h = ox_task_spawn(fill_guarded_budget, NULL);
        ox_task_handle_drop(&h);
    }
    ox_test_wait_count(&budget_filled, 16 + 64); /* each holds a stack */
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    b.name = "deep-slab";
    ox_task_handle h;
    CHECK_EQ(ox_task_builder_spawn(&b, overflow_unguarded, NULL, &h), 0);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0); /* never returns: the overflow aborts */
    ox_sender_drop(tx);
}
