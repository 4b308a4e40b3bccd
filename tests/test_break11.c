/* Reproducers from trying to break task records apart from their stacks
 * (record.c; a task takes its stack at its first run) and the limit on
 * due timers fired at once (timer.c: no more than the worker's queue has
 * room for). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: which stack a task got */

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

/* ---- a due timer behind a queue that stays full ----
 * Timers fire only as many at a time as the worker's queue has room for.
 * A worker whose queue is never drained fires them only at its every-61st
 * look, and with a queue that is full then too, fired none at all: the
 * sleeper below, on a runtime of one worker, slept until the tasks that
 * each spawn their successor (one per slot of the queue) gave up, however
 * long its deadline had passed. Each link checks whether the sleeper woke; they give up after
 * GIVE_UP spawns, hundreds of milliseconds past the sleeper's 1 ms even
 * at a fast spawn, so the test ends either way. */
#define CHAINS  OX__LOCAL_QUEUE /* every slot of the worker's queue */
#define GIVE_UP 1000000

static _Atomic int sleeper_woke;
static _Atomic long links_spawned, spawned_at_wake;

static void *chain_link(void *arg)
{
    (void)arg;
    /* Relaxed: a count and a flag read as hints; the test's assertion
     * reads them after the joins and the shutdown. */
    if (atomic_load_explicit(&sleeper_woke, memory_order_relaxed) == 0 &&
        atomic_fetch_add_explicit(&links_spawned, 1, memory_order_relaxed) < GIVE_UP) {
        ox_task_handle h = ox_task_spawn(chain_link, NULL);
        ox_task_handle_drop(&h);
    }
    return NULL;
}

static void *sleep_behind_full_queue(void *arg)
{
    (void)arg;
    /* The queue is empty (this task came from the injector) and takes all
     * CHAINS without overflowing; each link run then leaves it full. */
    for (int i = 0; i < CHAINS; i++) {
        ox_task_handle h = ox_task_spawn(chain_link, NULL);
        ox_task_handle_drop(&h);
    }
    CHECK_EQ(ox_task_sleep(OX_MILLIS(1)), 0);
    atomic_store_explicit(&spawned_at_wake,
                          atomic_load_explicit(&links_spawned, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&sleeper_woke, 1, memory_order_relaxed);
    return NULL;
}

OX_TEST_OPTS(break11_due_timer_fires_while_the_queue_stays_full, .timeout_s = 60)
{
    ox_test_run_alone(1, sleep_behind_full_queue, NULL);
    long at = atomic_load_explicit(&spawned_at_wake, memory_order_relaxed);
    if (at >= GIVE_UP)
        ox_test_fail(__FILE__, __LINE__,
                     "the sleeper woke only after the %d links gave up (%ld spawns)", CHAINS, at);
}

/* ---- a stack size that wraps ----
 * A stack size past the address space never gets a stack, and its join
 * says ENOMEM (test_task.c tries 2^62). One within a page of SIZE_MAX
 * wrapped when the stack's header and the rounding to pages were added
 * to it: a mapping of the guard page alone, with the header written into
 * it, and the worker died of SIGSEGV at the task's first run. */
static void *must_not_run(void *arg)
{
    atomic_store_explicit((_Atomic int *)arg, 1, memory_order_relaxed);
    return NULL;
}

OX_TEST(break11_stack_size_near_size_max_joins_with_enomem)
{
    ox_runtime *rt = ox_test_runtime(1);
    _Atomic int ran = 0;
    const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4000, SIZE_MAX - 64};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ox_task_builder b = OX_TASK_BUILDER_INIT;
        b.runtime = rt;
        b.stack_size = sizes[i];
        ox_task_handle h;
        CHECK_EQ(ox_task_builder_spawn(&b, must_not_run, (void *)&ran, &h), 0);
        CHECK_EQ(ox_task_join(&h, NULL, NULL), ENOMEM);
    }
    CHECK_EQ(atomic_load(&ran), 0);
    ox_runtime_shutdown(rt);
}

/* ---- records of tasks that never ran, reused at once ----
 * A JoinSet's tasks, every third with a stack that cannot be mapped, each
 * round spawned and joined from a task so that the records come back
 * through the worker's own stash: join_next hands each outcome over once,
 * ENOMEM exactly for the tasks that got no stack and each other task's
 * own result, whichever record it reused. Then an abort_all over a set of
 * both kinds: every task is still returned once, ENOMEM, OX_ECANCELED or
 * its result. */
#define SET_ROUNDS 200
#define SET_TASKS  48

static void *own_index(void *arg)
{
    return arg;
}

static void *join_sets_with_stackless_tasks(void *arg)
{
    (void)arg;
    for (int round = 0; round < SET_ROUNDS; round++) {
        ox_join_set *set;
        CHECK_EQ(ox_join_set_new(&set), 0);
        uint64_t ids[SET_TASKS];
        for (uintptr_t i = 0; i < SET_TASKS; i++) {
            ox_task_builder b = OX_TASK_BUILDER_INIT;
            if (i % 3 == 0)
                b.stack_size = (size_t)1 << 62; /* past any address space */
            CHECK_EQ(ox_join_set_spawn_with(set, &b, own_index, (void *)i, &ids[i]), 0);
        }
        if (round % 2 == 1)
            ox_join_set_abort_all(set);
        int seen[SET_TASKS] = {0};
        for (int n = 0; n < SET_TASKS; n++) {
            void *result = NULL;
            uint64_t id = 0;
            int rc = ox_join_set_join_next(set, &result, NULL, &id);
            int i = 0;
            while (i < SET_TASKS && ids[i] != id)
                i++;
            CHECK(i < SET_TASKS);
            CHECK_EQ(seen[i]++, 0);
            if (i % 3 == 0)
                CHECK(rc == ENOMEM || (round % 2 == 1 && rc == OX_ECANCELED));
            else if (rc == 0)
                CHECK_EQ((intptr_t)result, i);
            else
                CHECK(round % 2 == 1 && rc == OX_ECANCELED);
        }
        CHECK_EQ(ox_join_set_join_next(set, NULL, NULL, NULL), OX_EEMPTY);
        ox_join_set_drop(set);
    }
    return NULL;
}

OX_TEST_OPTS(break11_join_set_hands_each_stackless_task_over_once, .timeout_s = 60)
{
    ox_test_run_alone(2, join_sets_with_stackless_tasks, NULL);
}

/* ---- shutdown with tasks that never ran ----
 * Detached tasks, some that can get no stack, some blocking-pool jobs
 * whose records come from the same stashes, spawned from a task and left
 * queued when the runtime shuts down: the shutdown ends them all (aborted
 * before they run, or ENOMEM), and under LeakSanitizer no record, name or
 * stack is left behind. Counts that every task that ran, ran once. */
#define LEFT_TASKS 300

static _Atomic int left_ran;

static void *count_run(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&left_ran, 1, memory_order_relaxed);
    return NULL;
}

static void *spawn_and_leave(void *arg)
{
    (void)arg;
    for (int i = 0; i < LEFT_TASKS; i++) {
        ox_task_builder b = OX_TASK_BUILDER_INIT;
        b.name = i % 2 ? "left-behind" : NULL;
        if (i % 3 == 0)
            b.stack_size = (size_t)1 << 62;
        ox_task_handle h;
        CHECK_EQ(ox_task_builder_spawn(&b, count_run, NULL, &h), 0);
        ox_task_handle_drop(&h);
        if (i % 10 == 0) {
            CHECK_EQ(ox_task_spawn_blocking(count_run, NULL, &h), 0);
            CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
        }
    }
    return NULL;
}

OX_TEST(break11_shutdown_with_stackless_and_queued_tasks_leaks_nothing)
{
    for (int round = 0; round < 20; round++) {
        atomic_store(&left_ran, 0);
        ox_test_run_alone(2, spawn_and_leave, NULL);
        /* The blocking jobs all ran; of the others, at most those with a
         * stack. */
        int ran = atomic_load(&left_ran);
        CHECK(ran >= LEFT_TASKS / 10);
        CHECK(ran <= LEFT_TASKS / 10 + LEFT_TASKS - LEFT_TASKS / 3);
    }
}

/* ---- an overflow on a recycled stack ----
 * The guard-page report names the task from w->current->stack: a named
 * task whose stack another named task used first (names left the stack's
 * top, so named tasks take cached stacks now) is reported by its own
 * name. One worker, so the second takes the stack the first gave back. */
static ox__stack *first_stack;

static void *note_own_stack(void *arg)
{
    (void)arg;
    first_stack = ox_task_current()->stack; /* white box */
    return NULL;
}

static volatile int recycled_depth = 1 << 30; /* volatile: the recursion looks finite */

static void *recurse_on_recycled(void *arg)
{
    if ((intptr_t)arg == 0)
        CHECK(ox_task_current()->stack == first_stack); /* the stack is a recycled one */
    volatile char buf[1024];
    buf[0] = (char)(intptr_t)arg;
    if ((intptr_t)arg < recycled_depth)
        recurse_on_recycled((void *)((intptr_t)arg + 1));
    return (void *)(intptr_t)buf[0];
}

OX_TEST_OPTS(break11_overflow_on_a_recycled_stack_names_its_own_task, .expect_signal = SIGABRT,
             .expect_stderr = "task 'deep-second' has overflowed its stack")
{
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h = ox_test_spawn_named_on(rt, "first-user", note_own_stack, NULL);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    CHECK(first_stack != NULL);
    h = ox_test_spawn_named_on(rt, "deep-second", recurse_on_recycled, NULL);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0); /* never returns: the overflow aborts */
}
