/* test_payload_drop.c - a panic payload whose drop function panics, where
 * oxide drops it on nobody's behalf: the record of a thread or task that
 * nobody joined, a scope's unjoined thread or task. Rust aborts there
 * ("thread result panicked on drop"): there is no caller to hand a second
 * panic to, and unwinding would leave the record or the scope half done.
 * Where a join drops it for a caller that did not want it, it is an
 * ordinary panic in the joiner, after the handle is spent (test_break65). */
#include "oxide/panic.h"
#include "oxide/task.h"
#include "oxide/thread.h"

#include "helpers.h"

static void drop_panics(void *value)
{
    (void)value;
    ox_panic("the payload's drop panics");
}

static void *panic_with_a_panicking_drop(void *arg)
{
    (void)arg;
    static int value;
    ox_panic_any("int", &value, drop_panics);
}

OX_TEST_OPTS(payload_drop_of_an_unjoined_thread_aborts_at_the_handle_drop, .expect_signal = SIGABRT,
             .expect_stderr = "ox_join_handle_drop: the payload of a thread that panicked and was "
                              "not joined panicked on drop")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_join_handle h = ox_thread_spawn(panic_with_a_panicking_drop, NULL);
    while (!ox_join_handle_is_finished(&h))
        ox_thread_yield();
    /* The record's last owner is now this handle: the drop runs here. */
    ox_join_handle_drop(&h);
}

static void spawn_one_unjoined(ox_scope *scope, void *arg)
{
    (void)arg;
    (void)ox_scope_spawn(scope, panic_with_a_panicking_drop, NULL);
}

OX_TEST_OPTS(payload_drop_of_an_unjoined_scoped_thread_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "the payload of a thread that panicked and was not joined panicked "
                              "on drop")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_thread_scope(spawn_one_unjoined, NULL);
}

static void spawn_one_unjoined_task(ox_task_scope *scope, void *arg)
{
    (void)arg;
    (void)ox_task_scope_spawn(scope, panic_with_a_panicking_drop, NULL);
}

static void *run_task_scope(void *arg)
{
    (void)arg;
    ox_task_scope_run(spawn_one_unjoined_task, NULL);
    return NULL;
}

OX_TEST_OPTS(payload_drop_of_an_unjoined_scoped_task_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_task_scope: the payload of a scoped task that panicked and "
                              "was not joined panicked on drop")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h = ox_test_spawn_on(rt, run_task_scope, NULL);
    (void)!ox_task_join(&h, NULL, NULL);
}

OX_TEST_OPTS(payload_drop_of_an_unjoined_task_aborts_with_its_record, .expect_signal = SIGABRT,
             .expect_stderr = "the payload of a task that panicked and was not joined panicked "
                              "on drop")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h = ox_test_spawn_on(rt, panic_with_a_panicking_drop, NULL);
    while (!ox_task_is_finished(&h))
        ox_thread_yield();
    /* The record goes with its last reference, and its payload with it:
     * this drop's, or the worker's if it has not yet let go of the task
     * (is_finished comes first). Either aborts, in its own thread. */
    ox_task_handle_drop(&h);
    for (;;)
        ox_thread_park();
}

/* A payload whose drop panics, dropped by a join for a caller that did not
 * ask for it: an ordinary panic in the joiner, once the handle is spent,
 * and the record's memory is not leaked (ASan). */
static void *join_without_the_payload(void *h)
{
    (void)!ox_thread_join(h, NULL, NULL);
    return NULL;
}

OX_TEST(payload_drop_in_a_join_is_an_ordinary_panic_after_the_handle_is_spent)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_join_handle h = ox_thread_spawn(panic_with_a_panicking_drop, NULL);
    ox_panic_payload *second = NULL;
    CHECK_EQ(ox_catch_unwind(join_without_the_payload, &h, NULL, &second), OX_EPANICKED);
    CHECK(strstr(second->message, "the payload's drop panics") != NULL);
    ox_panic_payload_free(second);
    CHECK(h.thread == NULL);
    CHECK_UNWOUND();
}
