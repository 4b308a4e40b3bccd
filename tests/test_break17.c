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
