/* Reproducers from trying to break the task record's layout for the switch
 * (6b475cb: a copy of the stack's overflow floor in the record), the
 * runtime's cache-line groups (a368d27, 4c7b96f) and the guarded stacks
 * mapped sixteen at a time (b37bc27, c232821): the guarded budget is one
 * for the process, shared by every runtime's workers. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: which stack a task got */

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the budget's last batch per worker counts every runtime's workers ----
 * c232821: a worker's stash is unseen by other workers, so the budget's
 * last 16 per worker are mapped a stack at a time (docs/tasks.md). It
 * counted the workers of the mapping worker's own runtime only. With a
 * budget of 16 and two runtimes of one worker each, the first runtime's
 * first task mapped all 16 in one batch: 15 sat in its worker's stash
 * while every task of the other runtime got a slab stack, without a guard
 * page, the budget used up. One task at a time (no racing spawns): the
 * live tasks hold exactly the budget's 16 guarded stacks. */
enum { SHARED_BUDGET = 16, FIRST = 1, ON_B = 20, MORE_ON_A = 4 };
enum { HELD = FIRST + ON_B + MORE_ON_A };

static struct {
    ox_receiver *gate;
    _Atomic long started;
    size_t guard[HELD];
} held;

static void *hold_a_stack(void *arg)
{
    int i = (int)(intptr_t)arg;
    held.guard[i] = ox_task_current()->stack->guard_size; /* white box */
    atomic_fetch_add(&held.started, 1);
    int v;
    return (void *)(intptr_t)ox_receiver_recv(held.gate, &v);
}

/* Spawns tasks [from, to) on rt and waits until each holds its stack. */
static void hold_on(ox_runtime *rt, ox_task_handle *h, int from, int to)
{
    for (int i = from; i < to; i++)
        h[i] = ox_test_spawn_on(rt, hold_a_stack, (void *)(intptr_t)i);
    ox_test_wait_count(&held.started, to);
}

OX_TEST(break17_the_guarded_budget_is_shared_by_every_runtime_s_workers)
{
    char budget[16];
    (void)snprintf(budget, sizeof budget, "%d", SHARED_BUDGET);
    CHECK_EQ(setenv("OX_TASK_GUARDED_STACKS", budget, 1), 0); /* this process only */
    ox_runtime *a = ox_test_runtime(1), *b = ox_test_runtime(1);
    ox_sender *tx;
    CHECK_EQ(ox_channel(sizeof(int), 1, &tx, &held.gate), 0);
    ox_task_handle h[HELD];
    hold_on(a, h, 0, FIRST);
    hold_on(b, h, FIRST, FIRST + ON_B);
    hold_on(a, h, FIRST + ON_B, HELD);
    int guarded_a = 0, guarded_b = 0;
    for (int i = 0; i < HELD; i++) {
        bool on_b = i >= FIRST && i < FIRST + ON_B;
        guarded_a += !on_b && held.guard[i] != 0;
        guarded_b += on_b && held.guard[i] != 0;
    }
    if (guarded_a + guarded_b != SHARED_BUDGET)
        ox_test_fail(__FILE__, __LINE__,
                     "%d live guarded stacks (%d on a, %d on b), budget %d: %d are stashed unused",
                     guarded_a + guarded_b, guarded_a, guarded_b, SHARED_BUDGET,
                     SHARED_BUDGET - guarded_a - guarded_b);
    ox_sender_drop(tx);
    for (int i = 0; i < HELD; i++) {
        void *r = NULL;
        CHECK_EQ(ox_task_join(&h[i], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, OX_EDISCONNECTED);
    }
    ox_receiver_drop(held.gate);
    ox_runtime_shutdown(a);
    ox_runtime_shutdown(b);
}

/* ---- an unguarded overflow seen at a direct hand-off, on a reused record ----
 * 6b475cb: check_stack compares a task's saved stack pointer with the
 * floor copied into its record when it took its stack. Here the record
 * is one a task of the other kind (a guarded stack of another size,
 * floor 0) left on the worker, and the overflowing task's switch is a
 * direct hand-off (it wakes a waiter into the LIFO slot, then waits):
 * the task it hands the worker to checks it as it lands (landed). The
 * overflow must be reported there, naming the task. A budget of 0 gives
 * every default-size task a slab stack. */
static struct {
    ox_runtime *rt;
    ox_sender *to_waiter, *to_deep;
    ox_receiver *waiter_rx, *deep_rx;
    const ox_task *guarded_record;
    _Atomic int guarded_done, waiter_resumed;
    const char *bottom;
} hand;

static void *waiter(void *arg)
{
    (void)arg;
    int v;
    CHECK_EQ(ox_receiver_recv(hand.waiter_rx, &v), 0);
    atomic_store(&hand.waiter_resumed, 1); /* only if the overflow went unseen */
    return NULL;
}

static void *on_a_guarded_stack(void *arg)
{
    (void)arg;
    hand.guarded_record = ox_task_current();
    CHECK(ox_task_current()->stack->guard_size != 0); /* white box */
    atomic_store(&hand.guarded_done, 1);
    return NULL;
}

/* Recurses until its frame is 6 KiB above the stack's bottom (in the red
 * zone, inside the stack: room for the wake and the wait below it), then
 * hands the worker to the waiter. */
static void *recurse_then_hand_off(void *arg)
{
    volatile char buf[512];
    buf[0] = (char)(intptr_t)arg;
    if ((const char *)__builtin_frame_address(0) - hand.bottom > 6 * 1024) {
        recurse_then_hand_off((void *)((intptr_t)arg + 1));
    } else {
        int v = 1;
        CHECK_EQ(ox_sender_send(hand.to_waiter, &v), 0); /* the waiter: our LIFO slot */
        if (ox_receiver_recv(hand.deep_rx, &v) == 0)     /* never sent: the hand-off */
            buf[1] = (char)v;
    }
    return (void *)(intptr_t)buf[0];
}

static void *deep(void *arg)
{
    (void)arg;
    const ox_task *self = ox_task_current();
    CHECK(self == hand.guarded_record);  /* white box: the guarded task's record */
    CHECK(self->stack->guard_size == 0); /* white box: a slab stack */
    hand.bottom = self->stack->base;
    return recurse_then_hand_off((void *)(intptr_t)0);
}

static void *set_up(void *arg)
{
    (void)arg;
    ox_task_handle w = ox_test_spawn_on(hand.rt, waiter, NULL);
    ox_task_handle_drop(&w);
    /* Detached: its record is freed on this worker as it retires. */
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    b.runtime = hand.rt;
    b.stack_size = 2 * OX_TASK_DEFAULT_STACK;
    ox_task_handle g;
    CHECK_EQ(ox_task_builder_spawn(&b, on_a_guarded_stack, NULL, &g), 0);
    ox_task_handle_drop(&g);
    while (!atomic_load(&hand.guarded_done)) /* one worker: it retires before we run */
        ox_task_yield();
    ox_task_builder d = OX_TASK_BUILDER_INIT;
    d.runtime = hand.rt;
    d.name = "deep-hand-off";
    ox_task_handle h;
    CHECK_EQ(ox_task_builder_spawn(&d, deep, NULL, &h), 0); /* takes the freed record */
    ox_task_handle_drop(&h);
    return NULL;
}

OX_TEST_OPTS(break17_an_unguarded_overflow_is_seen_at_a_hand_off_on_a_reused_record,
             .expect_signal = SIGABRT,
             .expect_stderr = "task 'deep-hand-off' has overflowed its stack (an unguarded stack")
{
    CHECK_EQ(setenv("OX_TASK_GUARDED_STACKS", "0", 1), 0); /* this process only */
    hand.rt = ox_test_runtime(1);
    CHECK_EQ(ox_channel(sizeof(int), 1, &hand.to_waiter, &hand.waiter_rx), 0);
    CHECK_EQ(ox_channel(sizeof(int), 1, &hand.to_deep, &hand.deep_rx), 0);
    ox_task_handle h = ox_test_spawn_on(hand.rt, set_up, NULL);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(1000));
    while (ox_instant_now().ns < give_up && !atomic_load(&hand.waiter_resumed))
        ox_thread_sleep(OX_MILLIS(1));
    ox_test_fail(__FILE__, __LINE__, "no overflow reported (the waiter %s)",
                 atomic_load(&hand.waiter_resumed) ? "resumed" : "never resumed");
}
