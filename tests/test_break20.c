/* Reproducers from trying to break the injector's batches (6770c30,
 * 1abc9c5: a full queue's overflow goes to the injector as an array of
 * task pointers, handed out one at a time) and the idle-time trim of the
 * record pool and the stack cache after 1 ms idle (fa4bf82). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: the pool, the cache, the injector */

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

/* ---- a ticker faster than 1 ms must not keep a burst's memory for ever ----
 * fa4bf82 gives back the pooled records and the warm stacks' pages only
 * once a worker has been idle for 1 ms without a break, and every task it
 * runs starts the millisecond again (found_work). A runtime that is idle
 * but for a timer every few hundred microseconds (a 1 kHz loop, a light
 * steady load) then keeps its last burst's records and stack pages for
 * ever: before, the pool had a cap and the stacks gave back their pages
 * at every idle visit. One worker, so that no other worker trims for it.
 * Nothing here draws on the pool or the cache after the burst. */
enum { RECORD_BURST = 10000, STACK_BURST = 1500, TICK_US = 300 };

static void *return_at_once(void *arg)
{
    return arg;
}

static _Atomic long holding;

static void *hold_until_disconnected(void *arg)
{
    atomic_fetch_add(&holding, 1);
    int v;
    return (void *)(intptr_t)ox_receiver_recv(arg, &v);
}

/* Leaves RECORD_BURST records in the pool (finished tasks joined at the
 * end) and STACK_BURST warm stacks in the cache (tasks alive together). */
static void burst(void)
{
    static ox_task_handle hs[RECORD_BURST];
    for (int i = 0; i < RECORD_BURST; i++)
        hs[i] = ox_task_spawn(return_at_once, NULL);
    for (int i = 0; i < RECORD_BURST; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(int), 1, &tx, &rx), 0);
    for (int i = 0; i < STACK_BURST; i++)
        hs[i] = ox_task_spawn(hold_until_disconnected, rx);
    ox_test_wait_count(&holding, STACK_BURST); /* each holds its stack */
    ox_sender_drop(tx);
    for (int i = 0; i < STACK_BURST; i++) {
        void *r = NULL;
        CHECK_EQ(ox_task_join(&hs[i], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, OX_EDISCONNECTED);
    }
    ox_receiver_drop(rx);
}

static void *burst_then_tick(void *arg)
{
    (void)arg;
    burst();
    fprintf(stderr, "after the burst: %zu records pooled, stacks trimmable: %d\n",
            ox__task_records_pooled(), ox__stack_cache_trimmable());
    /* Else the test tests nothing. */
    CHECK(ox__task_records_trimmable() && ox__stack_cache_trimmable());
    long ticks = 0, most = (long)(ox_test_bound(OX_MILLIS(2000)) / OX_MICROS(TICK_US));
    for (; ticks < most && (ox__task_records_trimmable() || ox__stack_cache_trimmable()); ticks++)
        CHECK_EQ(ox_task_sleep(OX_MICROS(TICK_US)), 0);
    fprintf(stderr, "after %ld ticks of %d us: %zu records pooled, stacks trimmable: %d\n", ticks,
            TICK_US, ox__task_records_pooled(), ox__stack_cache_trimmable());
    if (ox__task_records_trimmable() || ox__stack_cache_trimmable())
        ox_test_fail(__FILE__, __LINE__,
                     "%ld ticks of %d us, the worker idle but for them: still %zu records "
                     "pooled (%s), stacks %strimmable",
                     ticks, TICK_US, ox__task_records_pooled(),
                     ox__task_records_trimmable() ? "trimmable" : "kept",
                     ox__stack_cache_trimmable() ? "" : "not ");
    return NULL;
}

OX_TEST_OPTS(break20_a_ticker_faster_than_the_trim_delay_does_not_keep_a_burst_for_ever,
             .timeout_s = 60)
{
    ox_test_run_alone(1, burst_then_tick, NULL);
}

/* ---- an idle runtime after a burst sleeps: no worker wakes in a loop ----
 * Workers idle with memory to give back sleep until the trim delay is up
 * (fa4bf82), trim a batch per visit and then sleep for good. A deadline
 * in the past, or a trim that reports work it cannot do, would make them
 * spin: two workers busy-waiting cost about two CPU-seconds per second.
 * After the burst and its trim, 200 ms of idle must cost well under half
 * a CPU. */
static void *just_burst(void *arg)
{
    (void)arg;
    burst();
    return NULL;
}

static int64_t cpu_ns(void)
{
    struct rusage ru;
    CHECK_EQ(getrusage(RUSAGE_SELF, &ru), 0);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

OX_TEST_OPTS(break20_an_idle_runtime_after_a_burst_does_not_spin, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h = ox_test_spawn_on(rt, just_burst, NULL);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(5000));
    while ((ox__task_records_trimmable() || ox__stack_cache_trimmable()) &&
           ox_instant_now().ns < give_up)
        ox_thread_sleep(OX_MILLIS(1));
    CHECK(!ox__task_records_trimmable() && !ox__stack_cache_trimmable());
    ox_test_check_all_idle_no_searcher(rt);
    int64_t cpu0 = cpu_ns(), wall0 = ox_instant_now().ns;
    ox_thread_sleep(OX_MILLIS(200));
    int64_t cpu = cpu_ns() - cpu0, wall = ox_instant_now().ns - wall0;
    fprintf(stderr, "idle: %lld us of CPU in %lld us\n", (long long)(cpu / 1000),
            (long long)(wall / 1000));
    if (cpu * 2 > wall)
        ox_test_fail(__FILE__, __LINE__, "an idle runtime used %lld us of CPU in %lld us",
                     (long long)(cpu / 1000), (long long)(wall / 1000));
    ox_runtime_shutdown(rt);
}

/* ---- the injector's pop, white box: each task once, the kinds in turns ----
 * Batches (arrays, tasks[first, end)) and single tasks (linked through
 * their records) queued together: every pop takes one task, the kinds
 * alternate while both are queued, len counts what is left, and a used-up
 * batch is freed (LeakSanitizer checks that under ASan). */
enum { SINGLES = 5, BATCHES = 3 };

static ox__task_batch *fake_batch(ox_task *base, uint32_t n)
{
    ox__task_batch *b = calloc(1, sizeof *b);
    CHECK(b != NULL);
    for (uint32_t i = 0; i < n; i++)
        b->tasks[i] = &base[i];
    b->end = n;
    return b;
}

OX_TEST(break20_the_injector_hands_out_each_task_once_the_kinds_in_turns)
{
    static ox__injector q; /* zeroed: empty */
    const uint32_t per = OX__LOCAL_QUEUE / 2 + 1;
    ox_task *singles = calloc(SINGLES, sizeof *singles);
    ox_task *batched = calloc((size_t)BATCHES * per, sizeof *batched);
    CHECK(singles != NULL && batched != NULL);
    /* Batches as injector_push_batch links them (it is static to queue.c). */
    for (int i = 0; i < BATCHES; i++) {
        ox__task_batch *b = fake_batch(&batched[(size_t)i * per], per);
        if (q.batches_tail != NULL)
            q.batches_tail->next = b;
        else
            q.batches = b;
        q.batches_tail = b;
        atomic_store(&q.len, atomic_load(&q.len) + per);
    }
    for (int i = 0; i < SINGLES; i++)
        ox__injector_push(&q, &singles[i], &singles[i], 1);
    size_t total = SINGLES + (size_t)BATCHES * per;
    CHECK_EQ(atomic_load(&q.len), total);
    char *seen = calloc(total, 1);
    CHECK(seen != NULL);
    size_t singles_taken = 0, batched_taken = 0;
    int last_kind = -1;
    bool both_before_last = false;
    for (size_t popped = 0; popped < total; popped++) {
        bool both = singles_taken < SINGLES && batched_taken < total - SINGLES;
        ox_task *t = ox__injector_pop(&q);
        CHECK(t != NULL);
        int kind = t >= singles && t < singles + SINGLES; /* 1: a single */
        size_t index = kind ? (size_t)(t - singles) : SINGLES + (size_t)(t - batched);
        CHECK(index < total);
        CHECK_EQ(seen[index], 0);
        seen[index] = 1;
        if (kind) {
            CHECK_EQ(index, singles_taken); /* in order */
            singles_taken++;
        } else {
            CHECK_EQ(index, SINGLES + batched_taken); /* in order */
            batched_taken++;
        }
        /* While both kinds are queued, they take turns. */
        if (both && both_before_last && kind == last_kind)
            ox_test_fail(__FILE__, __LINE__, "pop %zu: two %s in a row with both kinds queued",
                         popped, kind ? "singles" : "batch tasks");
        last_kind = kind;
        both_before_last = both;
        CHECK_EQ(atomic_load(&q.len), total - popped - 1);
    }
    CHECK(ox__injector_pop(&q) == NULL);
    CHECK(q.batches == NULL && q.batches_tail == NULL && q.head == NULL && q.tail == NULL);
    free(seen);
    free(batched);
    free(singles);
}

/* ---- a task pushed from outside does not wait behind the overflow ----
 * One worker: a task spawns BURST tasks (its queue overflows: batches in
 * the injector), then has a thread spawn one more onto the runtime (a
 * single task in the injector) and waits for that spawn, without letting
 * the worker go. The kinds take turns in the injector, so the single one
 * starts among the first few hundred tasks, not behind all of the
 * batches' (as a FIFO of both kinds, before 6770c30, would have had it). */
enum { BURST = 3000 };

static _Atomic long order;
static _Atomic long single_at = -1;
static ox_runtime *fair_rt;
static ox_join_handle outside;

static void *count_start(void *arg)
{
    atomic_fetch_add(&order, 1);
    return arg;
}

static void *single_start(void *arg)
{
    atomic_store(&single_at, atomic_fetch_add(&order, 1));
    return arg;
}

static void *spawn_from_outside(void *arg)
{
    ox_task_handle h = ox_test_spawn_on(fair_rt, single_start, NULL);
    atomic_store((_Atomic int *)arg, 1);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    return NULL;
}

static void *burst_and_one_from_outside(void *arg)
{
    (void)arg;
    static ox_task_handle hs[BURST];
    for (int i = 0; i < BURST; i++)
        hs[i] = ox_task_spawn(count_start, NULL);
    _Atomic int pushed = 0;
    outside = ox_test_spawn_named("outside", spawn_from_outside, &pushed);
    while (!atomic_load(&pushed))
        ox_test_spin_ns(1000); /* holds the worker: nothing has started yet */
    CHECK_EQ(atomic_load(&order), 0);
    for (int i = 0; i < BURST; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    return NULL; /* the test joins the thread: a join here would hold the worker */
}

OX_TEST(break20_a_task_from_outside_takes_turns_with_the_overflow)
{
    ox_runtime *rt = fair_rt = ox_test_runtime(1);
    ox_task_handle h = ox_test_spawn_on(rt, burst_and_one_from_outside, NULL);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    ox_test_join(&outside);
    ox_runtime_shutdown(rt);
    long at = atomic_load(&single_at);
    fprintf(stderr, "the single task started %ld-th of %d\n", at + 1, BURST + 1);
    CHECK(at >= 0);
    if (at >= BURST / 2)
        ox_test_fail(__FILE__, __LINE__, "the single task started %ld-th of %d: behind the batches",
                     at + 1, BURST + 1);
}

/* ---- due sleepers do not wait behind the overflow ----
 * 1abc9c5: with a whole batch moved into the worker's queue every 61st
 * tick, the queue never left room, and due timers fired one per such
 * tick (timer.c), behind the burst. One worker: SLEEPERS tasks sleep
 * 1 ms, then BURST tasks of 2 us each are queued (most overflow to the
 * injector). Every sleeper must wake before half of the burst started. */
enum { SLEEPERS = 64, SPIN_NS = 2000 };

static _Atomic long armed;
static _Atomic long woke_at_most;

static void *spin_start(void *arg)
{
    atomic_fetch_add(&order, 1);
    ox_test_spin_ns(SPIN_NS);
    return arg;
}

static void *sleep_1ms(void *arg)
{
    atomic_fetch_add(&armed, 1);
    CHECK_EQ(ox_task_sleep(OX_MILLIS(1)), 0);
    long at = atomic_load(&order);
    long most = atomic_load(&woke_at_most);
    while (at > most && !atomic_compare_exchange_weak(&woke_at_most, &most, at))
        continue;
    return arg;
}

static void *sleepers_then_burst(void *arg)
{
    (void)arg;
    static ox_task_handle sleepers[SLEEPERS], hs[BURST];
    for (int i = 0; i < SLEEPERS; i++)
        sleepers[i] = ox_task_spawn(sleep_1ms, NULL);
    ox_test_wait_count(&armed, SLEEPERS);
    for (int i = 0; i < BURST; i++)
        hs[i] = ox_task_spawn(spin_start, NULL);
    for (int i = 0; i < BURST; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    for (int i = 0; i < SLEEPERS; i++)
        CHECK_EQ(ox_task_join(&sleepers[i], NULL, NULL), 0);
    return NULL;
}

OX_TEST(break20_due_sleepers_do_not_wait_behind_the_overflow)
{
    ox_test_run_alone(1, sleepers_then_burst, NULL);
    long at = atomic_load(&woke_at_most);
    fprintf(stderr, "the last sleeper woke after %ld of %d burst tasks started\n", at, BURST);
    if (at >= BURST / 2)
        ox_test_fail(__FILE__, __LINE__,
                     "a sleeper due after 1 ms woke after %ld of %d tasks of %d ns", at, BURST,
                     SPIN_NS);
}

/* ---- records trimmed between bursts are never still in use ----
 * fa4bf82 frees pooled records in idle time. Two runtimes (the pool and
 * the stack cache are the process's) each run rounds of a burst: joined
 * handles (records freed together, past POOL_KEPT), a JoinSet aborted
 * half way, detached tasks that outlive the round into the next gap,
 * aborted handles, and handles joined by a thread (records freed there,
 * to the allocator). Each gap lasts past the trim delay, so trims run
 * while the detached ones still finish and the other runtime bursts. A
 * record freed while still in use is a use-after-free for ASan and a
 * wrong result or count here; the last round's runtime is shut down at
 * once, its workers' trims racing their exits. */
enum { JOINED = 4500, IN_SET = 300, DETACHED = 300, ABORTED = 100, BY_THREAD = 100 };

static _Atomic long detached_runs;

static void *return_arg_after_a_yield(void *arg)
{
    ox_task_yield();
    return arg;
}

/* A detached sleeper's start: its delay, and its round's count of those
 * started. A round waits for all of them to start before it ends: a task
 * still queued when its runtime shuts down never runs (it is retired as
 * cancelled), which the count of runs below would take for a lost one. */
typedef struct detached_start {
    intptr_t delay_us;
    _Atomic int *started;
} detached_start;

static void *detached_sleeper(void *arg)
{
    const detached_start *d = arg;
    intptr_t delay_us = d->delay_us;
    atomic_fetch_add(d->started, 1);             /* d is the round's: not read after this */
    int rc = ox_task_sleep(OX_MICROS(delay_us)); /* past the round */
    CHECK(rc == 0 || rc == OX_ECANCELED);
    atomic_fetch_add(&detached_runs, 1);
    return NULL;
}

static void *sleep_long(void *arg)
{
    CHECK_EQ(ox_task_sleep(OX_MILLIS(60000)), OX_ECANCELED); /* aborted: it never ends */
    return arg;
}

static void *join_on_a_thread(void *arg)
{
    ox_task_handle *hs = arg;
    for (intptr_t i = 0; i < BY_THREAD; i++) {
        void *r = NULL;
        CHECK_EQ(ox_task_join(&hs[i], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, i);
    }
    return NULL;
}

static void *mixed_round(void *arg)
{
    (void)arg;
    ox_task_handle *hs = calloc(JOINED, sizeof *hs);
    ox_task_handle *by_thread = calloc(BY_THREAD, sizeof *by_thread);
    ox_task_handle aborted[ABORTED];
    CHECK(hs != NULL && by_thread != NULL);
    for (intptr_t i = 0; i < JOINED; i++)
        hs[i] = ox_task_spawn(return_arg_after_a_yield, (void *)i);
    _Atomic int started = 0;
    detached_start starts[DETACHED];
    for (intptr_t i = 0; i < DETACHED; i++) {
        starts[i] = (detached_start){(i * 7919) % 800, &started};
        ox_task_handle h = ox_task_spawn(detached_sleeper, &starts[i]);
        ox_task_handle_drop(&h);
    }
    for (intptr_t i = 0; i < BY_THREAD; i++)
        by_thread[i] = ox_task_spawn(return_arg_after_a_yield, (void *)i);
    ox_join_handle th = ox_test_spawn_named("joiner", join_on_a_thread, by_thread);
    for (int i = 0; i < ABORTED; i++)
        aborted[i] = ox_task_spawn(sleep_long, NULL);
    ox_join_set *set;
    CHECK_EQ(ox_join_set_new(&set), 0);
    for (intptr_t i = 0; i < IN_SET; i++)
        CHECK_EQ(ox_join_set_spawn(set, i % 2 ? sleep_long : return_arg_after_a_yield, (void *)i),
                 0);
    for (int i = 0; i < ABORTED; i++)
        ox_task_abort(&aborted[i]);
    for (intptr_t i = 0; i < JOINED; i++) {
        void *r = NULL;
        CHECK_EQ(ox_task_join(&hs[i], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, i);
    }
    ox_join_set_abort_all(set);
    size_t joined = 0;
    for (;;) {
        void *r = NULL;
        int rc = ox_join_set_join_next(set, &r, NULL, NULL);
        if (rc == OX_EEMPTY)
            break;
        CHECK(rc == 0 || rc == OX_ECANCELED);
        joined++;
    }
    CHECK_EQ(joined, (size_t)IN_SET);
    ox_join_set_drop(set);
    for (int i = 0; i < ABORTED; i++) {
        int rc = ox_task_join(&aborted[i], NULL, NULL);
        CHECK(rc == 0 || rc == OX_ECANCELED);
    }
    free(hs);
    /* Yields until the thread is done: its join then holds no worker. */
    while (!ox_join_handle_is_finished(&th))
        ox_task_yield();
    while (atomic_load(&started) < DETACHED) /* see detached_start */
        ox_task_yield();
    ox_test_join(&th);
    free(by_thread);
    return NULL;
}

static void *rounds_on(void *arg)
{
    size_t workers = (size_t)(intptr_t)arg;
    long rounds = ox_test_scaled(6) < 2 ? 2 : ox_test_scaled(6);
    ox_runtime *rt = ox_test_runtime(workers);
    for (long r = 0; r < rounds; r++) {
        ox_task_handle h = ox_test_spawn_on(rt, mixed_round, NULL);
        CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
        if (r + 1 < rounds)
            ox_thread_sleep(OX_MICROS(1500)); /* past the trim delay */
    }
    ox_runtime_shutdown(rt); /* at once: its workers may be trimming */
    return (void *)(intptr_t)rounds;
}

OX_TEST_OPTS(break20_records_trimmed_between_bursts_are_never_in_use, .timeout_s = 60)
{
    atomic_store(&detached_runs, 0);
    ox_join_handle other = ox_test_spawn_named("other-rt", rounds_on, (void *)(intptr_t)1);
    long rounds = (long)(intptr_t)rounds_on((void *)(intptr_t)2);
    void *other_rounds = NULL;
    CHECK_EQ(ox_thread_join(&other, &other_rounds, NULL), 0);
    /* Shutdown waits for the detached ones too. */
    CHECK_EQ(atomic_load(&detached_runs), (rounds + (long)(intptr_t)other_rounds) * DETACHED);
    fprintf(stderr, "records pooled at the end: %zu\n", ox__task_records_pooled());
}

/* ---- a worker asleep in the poller wakes to trim ----
 * One worker, and a task waiting in accept: the worker sleeps in the
 * reactor's epoll (reactor.c), not on its futex, with the earlier of the
 * next timer and the trim deadline (fa4bf82). After a burst it must wake
 * there to give the memory back, with a sleeper due after the trim
 * deadline (its timer is no earlier wake-up) and none after that. */
static ox_socket *trim_listener;

static void *accept_one(void *arg)
{
    (void)arg;
    ox_socket *c;
    CHECK_EQ(ox_tcp_accept(trim_listener, &c, NULL), 0);
    ox_socket_close(c);
    return NULL;
}

static void *sleep_long_enough(void *arg)
{
    CHECK_EQ(ox_task_sleep(OX_MILLIS(50)), 0);
    return arg;
}

OX_TEST_OPTS(break20_a_worker_asleep_in_the_poller_wakes_to_trim, .timeout_s = 60)
{
    ox_sockaddr addr;
    trim_listener = ox_test_listen("127.0.0.1:0", &addr);
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle acceptor = ox_test_spawn_on(rt, accept_one, NULL);
    ox_test_wait_tasks_blocked_at("socket read", 1); /* accept waits as a read */
    ox_task_handle h = ox_test_spawn_on(rt, just_burst, NULL);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    ox_task_handle sleeper = ox_test_spawn_on(rt, sleep_long_enough, NULL);
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(5000));
    while ((ox__task_records_trimmable() || ox__stack_cache_trimmable()) &&
           ox_instant_now().ns < give_up)
        ox_thread_sleep(OX_MILLIS(1));
    if (ox__task_records_trimmable() || ox__stack_cache_trimmable())
        ox_test_fail(__FILE__, __LINE__,
                     "the worker in the poller kept %zu records pooled, stacks %strimmable",
                     ox__task_records_pooled(), ox__stack_cache_trimmable() ? "" : "not ");
    CHECK_EQ(ox_task_join(&sleeper, NULL, NULL), 0);
    ox_socket *peer;
    CHECK_EQ(ox_tcp_connect(&addr, &peer), 0);
    CHECK_EQ(ox_task_join(&acceptor, NULL, NULL), 0);
    ox_socket_close(peer);
    ox_socket_close(trim_listener);
    ox_runtime_shutdown(rt);
}
