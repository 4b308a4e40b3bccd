/* Reproducers from trying to break direct yields (ee16010, runtime.c's
 * yield_successor: a yield switches straight to the local queue's head,
 * and the task it switched to pushes the yielder to the back of the queue
 * as it lands). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "panic/unwind.h"       /* white box: the live held-lock record */
#include "task/task_internal.h" /* white box: a task's stack, the worker */

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a stolen yielder runs on one worker at a time, on an intact stack ----
 * Tasks that yield in a loop on two workers, some also sleeping now and
 * then, so that a worker runs out and steals from the other's queue, where
 * the yielders are pushed by their successors as they land (a stress
 * test: a yielder queued while on its stack was caught in about one run
 * of the three rounds in six, by a SIGSEGV). A yielder
 * pushed before it is off its stack would be resumed by the thief from a
 * context not yet saved, or on a stack the other worker still writes:
 * each task checks that a canary on its stack survives every yield, that
 * it never runs twice at once, and that it does not change workers
 * between two of its own yields. */
enum { STEAL_TASKS = 8, CANARY_WORDS = 32 };

static struct {
    _Atomic int inside[STEAL_TASKS];
    _Atomic long migrations, yields;
} steal;

static void *yield_with_a_canary(void *arg)
{
    int id = (int)(intptr_t)arg;
    volatile uint64_t canary[CANARY_WORDS];
    for (int k = 0; k < CANARY_WORDS; k++)
        canary[k] = ((uint64_t)id << 32) ^ (uint64_t)k * 0x9e3779b97f4a7c15u;
    long rounds = ox_test_scaled(4000) * (1 + id % 3);
    uint32_t rng = (uint32_t)id * 2654435761u | 1u;
    /* The worker, not pthread_self(): a const function, whose call the
     * compiler may hoist out of the loop, across the yields. */
    const ox__worker *last = ox__worker_current();
    for (long i = 0; i < rounds; i++) {
        CHECK_EQ(atomic_exchange(&steal.inside[id], 1), 0);
        const ox__worker *now = ox__worker_current();
        if (now != last)
            atomic_fetch_add_explicit(&steal.migrations, 1, memory_order_relaxed);
        last = now;
        for (int k = 0; k < CANARY_WORDS; k++)
            CHECK_EQ(canary[k], ((uint64_t)id << 32) ^ (uint64_t)k * 0x9e3779b97f4a7c15u);
        uint32_t r = ox_test_rand(&rng);
        if (r % 64 == 0)
            ox_test_spin_ns(2000); /* the other worker may steal meanwhile */
        CHECK(ox__worker_current() == now);
        atomic_store(&steal.inside[id], 0);
        if (r % 32 == 1)
            CHECK_EQ(ox_task_sleep(OX_MICROS(5)), 0); /* this worker may run out */
        else
            ox_task_yield();
        atomic_fetch_add_explicit(&steal.yields, 1, memory_order_relaxed);
    }
    return NULL;
}

static void *spawn_canary_yielders(void *arg)
{
    (void)arg;
    ox_task_handle h[STEAL_TASKS];
    for (int i = 0; i < STEAL_TASKS; i++)
        h[i] = ox_task_spawn(yield_with_a_canary, (void *)(intptr_t)i); /* our queue */
    for (int i = 0; i < STEAL_TASKS; i++)
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    return NULL;
}

OX_TEST(break19_a_stolen_yielder_runs_on_one_worker_at_a_time_on_an_intact_stack)
{
    for (int round = 0; round < 10; round++)
        ox_test_run_alone(2, spawn_canary_yielders, NULL);
    printf("%ld yields, %ld moves between workers\n", atomic_load(&steal.yields),
           atomic_load(&steal.migrations));
}

/* ---- after a direct yield, the task switched to is the current one ----
 * Four tasks on one worker yield to each other; one is aborted from this
 * thread meanwhile. The task a yield lands in must be the current task
 * (ox_task_current, its task-locals, its own cancellation): the worker's
 * running unit follows the direct switch, so no task ever sees another's
 * record, value or abort. The aborted one yields until it sees it. */
enum { CURRENT_TASKS = 4 };

static void set_minus_one(int *v)
{
    *v = -1;
}

OX_TASK_LOCAL(yielder_id, int, set_minus_one, NULL);

static struct {
    ox_task *self[CURRENT_TASKS];
    _Atomic long started;
} cur;

static void *yield_as_myself(void *arg)
{
    int id = (int)(intptr_t)arg;
    ox_task *self = ox_task_current();
    cur.self[id] = self;
    CHECK_EQ(*OX_TASK_LOCAL_GET(yielder_id), -1);
    *OX_TASK_LOCAL_GET(yielder_id) = id;
    atomic_fetch_add(&cur.started, 1);
    long rounds = ox_test_scaled(20000);
    for (long i = 0; id == 0 ? !ox_task_is_cancelled() : i < rounds; i++) {
        ox_task_yield();
        CHECK(ox_task_current() == self);
        CHECK_EQ(*OX_TASK_LOCAL_GET(yielder_id), id);
        if (id != 0)
            CHECK(!ox_task_is_cancelled());
    }
    return NULL;
}

OX_TEST(break19_a_direct_yield_lands_in_its_successor_s_current_locals_and_abort)
{
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h[CURRENT_TASKS];
    for (int i = 0; i < CURRENT_TASKS; i++)
        h[i] = ox_test_spawn_on(rt, yield_as_myself, (void *)(intptr_t)i);
    ox_test_wait_count(&cur.started, CURRENT_TASKS);
    ox_thread_sleep(OX_MILLIS(1)); /* a while of direct yields */
    ox_task_abort(&h[0]);
    for (int i = 0; i < CURRENT_TASKS; i++)
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}

/* ---- a yielder's held locks stay its own, in the dump and in a panic ----
 * Three tasks on one worker each lock a mutex of their own, yield to each
 * other many times (each yield a direct switch, but every 61st), then
 * block on a channel still holding it. After each yield the live held-lock
 * record must hold the task's own mutex and no other's (white box), the
 * blocked-thread dump must show each holding its own mutex and nothing
 * else, and a, woken, panics holding its mutex: its unwind poisons its
 * own mutex only. Three, not two: with two tasks alternating, the yield
 * that goes through the scheduler (every 61st, an odd number) is always
 * made by the task whose record is live, so a direct yield that kept the
 * record of the task before it went unseen at the end. */
enum { HOLDERS = 3 };

static struct {
    ox_mutex lock[HOLDERS];
    ox_sender *tx[HOLDERS];
    ox_receiver *rx[HOLDERS];
    _Atomic long yields;
} held = {.lock = {OX_MUTEX_INIT, OX_MUTEX_INIT, OX_MUTEX_INIT}};

static void *yield_holding_a_lock(void *arg)
{
    int id = (int)(intptr_t)arg;
    CHECK_EQ(ox_mutex_lock(&held.lock[id]), 0);
    long rounds = ox_test_scaled(20000);
    for (long i = 0; i < rounds; i++) {
        ox_task_yield();
        for (int k = 0; k < HOLDERS; k++)
            CHECK((ox__held_find(&held.lock[k]) != NULL) == (k == id)); /* white box */
        atomic_fetch_add_explicit(&held.yields, 1, memory_order_relaxed);
    }
    int v;
    CHECK_EQ(ox_receiver_recv(held.rx[id], &v), 0);
    if (id == 0)
        ox_panic("yielder a panics holding its lock");
    ox_mutex_unlock(&held.lock[id]);
    return NULL;
}

/* The mutexes the dump says task name holds, as a bit set (bit i:
 * held.lock[i]; bit HOLDERS: any other lock). */
static unsigned held_in_dump(const char *dump, const char *name)
{
    unsigned seen = 0;
    bool in_task = false;
    char pattern[64];
    (void)snprintf(pattern, sizeof pattern, "  task '%s' ", name);
    char *text = strdup(dump);
    CHECK(text != NULL);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "    ", 4) != 0) {
            in_task = strncmp(line, pattern, strlen(pattern)) == 0;
            continue;
        }
        void *p;
        if (!in_task || sscanf(line, "    holding mutex %p", &p) != 1)
            continue;
        unsigned bit = HOLDERS;
        for (unsigned k = 0; k < HOLDERS; k++)
            if (p == (void *)&held.lock[k])
                bit = k;
        seen |= 1u << bit;
    }
    free(text);
    return seen;
}

OX_TEST(break19_a_yielder_s_held_locks_stay_its_own_in_the_dump_and_a_panic)
{
    static const char *const names[HOLDERS] = {"yielder-a", "yielder-b", "yielder-c"};
    for (int i = 0; i < HOLDERS; i++)
        CHECK_EQ(ox_channel(sizeof(int), 1, &held.tx[i], &held.rx[i]), 0);
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h[HOLDERS];
    for (int i = 0; i < HOLDERS; i++)
        h[i] = ox_test_spawn_named_on(rt, names[i], yield_holding_a_lock, (void *)(intptr_t)i);
    ox_test_wait_tasks_blocked_at("channel recv", HOLDERS);
    CHECK_EQ(atomic_load(&held.yields), HOLDERS * ox_test_scaled(20000));
    int count;
    char *dump = ox_test_dump_blocked(&count);
    for (int i = 0; i < HOLDERS; i++) {
        unsigned seen = held_in_dump(dump, names[i]);
        if (seen != 1u << i)
            ox_test_fail(__FILE__, __LINE__, "%s holds %#x (want %#x):\n%s", names[i], seen,
                         1u << i, dump);
    }
    free(dump);
    ox_panic_hook old = ox_panic_set_hook(NULL);
    int v = 1;
    for (int i = 0; i < HOLDERS; i++)
        CHECK_EQ(ox_sender_send(held.tx[i], &v), 0);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_task_join(&h[0], NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "yielder a panics holding its lock");
    ox_panic_payload_free(p);
    for (int i = 1; i < HOLDERS; i++)
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    (void)ox_panic_set_hook(old);
    CHECK_EQ(ox_mutex_try_lock(&held.lock[0]), OX_EPOISONED); /* by a's unwind */
    ox_mutex_clear_poison(&held.lock[0]);
    ox_mutex_unlock(&held.lock[0]);
    for (int i = 1; i < HOLDERS; i++) {
        CHECK_EQ(ox_mutex_try_lock(&held.lock[i]), 0); /* unlocked by its task, never poisoned */
        ox_mutex_unlock(&held.lock[i]);
    }
    for (int i = 0; i < HOLDERS; i++) {
        ox_sender_drop(held.tx[i]);
        ox_receiver_drop(held.rx[i]);
    }
    ox_runtime_shutdown(rt);
}

/* ---- a yield's successor that cannot start is retired ----
 * A task spawned from a task is queued behind it and has never run: a
 * yield does not switch to it but puts it in the LIFO slot, where the
 * scheduler starts it. One aborted before it ran, or whose stack cannot
 * be mapped, never starts: the scheduler retires it, and the yielder goes
 * on. Each such task is spawned right before a yield, alone in the queue,
 * so that the yield pops it: after the yield it has finished (one worker),
 * and its join says why it never ran. */
static void *must_not_run(void *arg)
{
    atomic_store((_Atomic int *)arg, 1);
    return NULL;
}

static void *spawn_unstartable_then_yield(void *arg)
{
    (void)arg;
    ox_runtime *rt = ox_task_current()->rt; /* white box */
    _Atomic int ran = 0;
    long rounds = ox_test_scaled(300);
    for (long i = 0; i < rounds; i++) {
        ox_task_builder b = OX_TASK_BUILDER_INIT;
        b.runtime = rt;
        bool huge = i % 2 == 1;
        if (huge)
            b.stack_size = (size_t)1 << 62; /* past any address space */
        ox_task_handle h;
        CHECK_EQ(ox_task_builder_spawn(&b, must_not_run, (void *)&ran, &h), 0);
        if (!huge)
            ox_task_abort(&h);
        ox_task_yield();
        CHECK(ox_task_is_finished(&h));
        CHECK_EQ(ox_task_join(&h, NULL, NULL), huge ? ENOMEM : OX_ECANCELED);
    }
    CHECK_EQ(atomic_load(&ran), 0);
    return NULL;
}

OX_TEST(break19_a_yield_s_successor_that_cannot_start_is_retired)
{
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h = ox_test_spawn_on(rt, spawn_unstartable_then_yield, NULL);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    ox_test_check_all_idle_no_searcher(rt);
    ox_runtime_shutdown(rt); /* every task retired, or this waits for ever */
}

/* ---- queue order through direct yields, a wake and a spawn ----
 * On one worker, three tasks yield in turns (a, b, c). In round 5 a wakes
 * a waiting task w (into the LIFO slot) before it yields: w runs next,
 * before b, as the scheduler would take it. In round 10 a spawns a task n
 * (queued behind c): n, which never ran, runs after c's yield and before
 * a's next turn, where the queue has it. The log must be exactly that. */
enum { ORDER_ROUNDS = 15 };

static struct {
    char log[4 * ORDER_ROUNDS + 8];
    int len;
    ox_sender *to_w;
    ox_receiver *w_rx;
    bool w_waits;
} order;

static void *order_waiter(void *arg)
{
    (void)arg;
    int v;
    order.w_waits = true; /* one worker: plain */
    CHECK_EQ(ox_receiver_recv(order.w_rx, &v), 0);
    order.log[order.len++] = 'w';
    return NULL;
}

static void *order_new(void *arg)
{
    (void)arg;
    order.log[order.len++] = 'n';
    return NULL;
}

static void *order_yielder(void *arg)
{
    char me = (char)(intptr_t)arg;
    ox_task_handle n = {0};
    for (int round = 0; round < ORDER_ROUNDS; round++) {
        order.log[order.len++] = me;
        if (me == 'a' && round == 5) {
            int v = 1;
            CHECK_EQ(ox_sender_send(order.to_w, &v), 0); /* w: our LIFO slot */
        }
        if (me == 'a' && round == 10)
            n = ox_task_spawn(order_new, NULL);
        ox_task_yield();
    }
    if (me == 'a')
        CHECK_EQ(ox_task_join(&n, NULL, NULL), 0);
    return NULL;
}

static void *start_order(void *arg)
{
    (void)arg;
    ox_task_handle w = ox_task_spawn(order_waiter, NULL);
    while (!order.w_waits)
        ox_task_yield(); /* w runs and waits */
    ox_task_handle h[3];
    for (int i = 0; i < 3; i++)
        h[i] = ox_task_spawn(order_yielder, (void *)(intptr_t)("abc"[i]));
    for (int i = 0; i < 3; i++)
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&w, NULL, NULL), 0);
    return NULL;
}

OX_TEST(break19_direct_yields_keep_the_scheduler_s_order_for_a_wake_and_a_spawn)
{
    CHECK_EQ(ox_channel(sizeof(int), 1, &order.to_w, &order.w_rx), 0);
    ox_test_run_alone(1, start_order, NULL);
    char want[sizeof order.log];
    int len = 0;
    for (int round = 0; round < ORDER_ROUNDS; round++) {
        for (int k = 0; k < 3; k++) {
            want[len++] = "abc"[k];
            if (k == 0 && round == 5)
                want[len++] = 'w';
        }
        if (round == 10)
            want[len++] = 'n';
    }
    want[len] = '\0';
    order.log[order.len] = '\0';
    CHECK_STR(order.log, want);
    ox_sender_drop(order.to_w);
    ox_receiver_drop(order.w_rx);
}

/* ---- shutdown ends tasks that only yield, on every worker ----
 * Tasks spawned from a task and from this thread yield until aborted,
 * detached; shutdown aborts them all and waits until each has retired. A
 * yielder that its successor failed to queue would never retire: shutdown
 * would wait for ever (the runner's timeout). */
enum { SHUTDOWN_TASKS = 16 };

static struct {
    _Atomic long started;
    _Atomic int ended;
} down;

static void *yield_until_aborted(void *arg)
{
    (void)arg;
    atomic_fetch_add(&down.started, 1);
    while (!ox_task_is_cancelled())
        ox_task_yield();
    atomic_fetch_add(&down.ended, 1);
    return NULL;
}

static void *spawn_local_yielders(void *arg)
{
    (void)arg;
    for (int i = 0; i < SHUTDOWN_TASKS / 2; i++) {
        ox_task_handle h = ox_task_spawn(yield_until_aborted, NULL);
        ox_task_handle_drop(&h);
    }
    return NULL;
}

OX_TEST(break19_shutdown_ends_tasks_that_only_yield_on_every_worker)
{
    for (int round = 0; round < 10; round++) {
        atomic_store(&down.started, 0);
        atomic_store(&down.ended, 0);
        ox_runtime *rt = ox_test_runtime(2);
        ox_task_handle s = ox_test_spawn_on(rt, spawn_local_yielders, NULL);
        CHECK_EQ(ox_task_join(&s, NULL, NULL), 0);
        for (int i = 0; i < SHUTDOWN_TASKS / 2; i++) {
            ox_task_handle h = ox_test_spawn_on(rt, yield_until_aborted, NULL);
            ox_task_handle_drop(&h);
        }
        ox_test_wait_count(&down.started, SHUTDOWN_TASKS);
        ox_thread_sleep(OX_MICROS(200 * round));
        ox_runtime_shutdown(rt);
        CHECK_EQ(atomic_load(&down.ended), SHUTDOWN_TASKS);
    }
}

/* ---- an unguarded overflow is seen at a direct yield, naming the task ----
 * With no guarded stacks (budget 0), a task's overflow into its slab
 * stack's red zone is seen when it switches away (check_stack). A task
 * that overflows and then yields with another task queued switches
 * straight to that one, which checks it as it lands: the abort must name
 * the overflowing task. */
static struct {
    const char *bottom;
    _Atomic int resumed;
} deep;

static void *recurse_then_yield(void *arg)
{
    volatile char buf[512];
    buf[0] = (char)(intptr_t)arg;
    if ((const char *)__builtin_frame_address(0) - deep.bottom > 6 * 1024) {
        recurse_then_yield((void *)((intptr_t)arg + 1));
    } else {
        ox_task_yield(); /* the other task is queued: a direct switch */
        atomic_store(&deep.resumed, 1);
    }
    return (void *)(intptr_t)buf[0];
}

static void *deep_yielder(void *arg)
{
    (void)arg;
    const ox_task *self = ox_task_current();
    CHECK(self->stack->guard_size == 0); /* white box: a slab stack */
    deep.bottom = self->stack->base;
    return recurse_then_yield((void *)(intptr_t)0);
}

static void *yield_forever(void *arg)
{
    (void)arg;
    while (!ox_task_is_cancelled())
        ox_task_yield();
    return NULL;
}

static void *start_deep_and_other(void *arg)
{
    (void)arg;
    /* The other task runs first (it has a stack when the deep one yields
     * to it: a direct switch), then the deep one, queued behind it. */
    ox_task_handle o = ox_task_spawn(yield_forever, NULL);
    ox_task_handle_drop(&o);
    ox_task_yield();
    ox_task_builder d = OX_TASK_BUILDER_INIT;
    d.name = "deep-yielder";
    ox_task_handle h;
    CHECK_EQ(ox_task_builder_spawn(&d, deep_yielder, NULL, &h), 0);
    int rc = ox_task_join(&h, NULL, NULL); /* never returns: the overflow aborts */
    return (void *)(intptr_t)rc;
}

OX_TEST_OPTS(break19_an_unguarded_overflow_is_seen_at_a_direct_yield_naming_the_task,
             .expect_signal = SIGABRT,
             .expect_stderr = "task 'deep-yielder' has overflowed its stack (an unguarded stack")
{
    CHECK_EQ(setenv("OX_TASK_GUARDED_STACKS", "0", 1), 0); /* this process only */
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h = ox_test_spawn_on(rt, start_deep_and_other, NULL);
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(1000));
    while (ox_instant_now().ns < give_up && !ox_task_is_finished(&h))
        ox_thread_sleep(OX_MILLIS(1));
    ox_test_fail(__FILE__, __LINE__, "no overflow reported (the deep task %s)",
                 atomic_load(&deep.resumed) ? "resumed" : "never resumed");
}
