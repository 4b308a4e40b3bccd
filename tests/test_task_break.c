/* Reproducers found by trying to break the task runtime (issue 13). */
#include "oxide.h"
#include "runner.h"

#include <stdatomic.h>
#include <stddef.h>

/* ---- shutdown and a task spawned while it runs ---- */

static _Atomic int child_ran;

static void *sleep_forever_child(void *arg)
{
    (void)arg;
    atomic_fetch_add(&child_ran, 1);
    (void)!ox_task_sleep(OX_SECS(3600));
    return NULL;
}

/* Aborted by the shutdown, it leaves work behind: a task spawned then. */
static void *spawn_on_abort(void *arg)
{
    _Atomic int *parked = arg;
    atomic_store(parked, 1);
    if (ox_task_sleep(OX_SECS(3600)) == OX_ECANCELED) {
        ox_task_handle h = ox_task_spawn(sleep_forever_child, NULL);
        ox_task_handle_drop(&h);
    }
    return NULL;
}

/* ox_runtime_shutdown aborts what is live when it starts, then waits for
 * every task: one spawned after that (here by a task it aborted) was
 * never aborted, and the shutdown waited for it forever. Now a task
 * spawned on a closing runtime starts aborted and never runs. */
OX_TEST_OPTS(runtime_shutdown_aborts_tasks_spawned_while_it_waits, .timeout_s = 10)
{
    ox_runtime_builder rb = OX_RUNTIME_BUILDER_INIT;
    rb.workers = 2;
    ox_runtime *rt;
    CHECK_EQ(ox_runtime_new(&rb, &rt), 0);
    static _Atomic int parked;
    ox_task_builder tb = OX_TASK_BUILDER_INIT;
    tb.runtime = rt;
    ox_task_handle h;
    CHECK_EQ(ox_task_builder_spawn(&tb, spawn_on_abort, (void *)&parked, &h), 0);
    while (atomic_load(&parked) == 0)
        ox_thread_sleep(OX_MILLIS(1));
    ox_runtime_shutdown(rt); /* hung: the child slept for an hour */
    CHECK_EQ(atomic_load(&child_ran), 0);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
}
