/* JoinSet, task scopes, task-locals and the blocking pool. */
#include "oxide.h"
#include "runner.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- JoinSet ---- */

static ox_receiver *gates[8]; /* task i finishes when gate i opens */

static void *wait_for_gate(void *arg)
{
    intptr_t i = (intptr_t)arg;
    long v;
    if (ox_receiver_recv(gates[i], &v) == OX_ECANCELED)
        return (void *)(intptr_t)-1;
    return (void *)(i * 10);
}

OX_TEST(join_set_returns_tasks_in_completion_order)
{
    ox_join_set *set;
    CHECK_EQ(ox_join_set_new(&set), 0);
    ox_sender *open[8];
    uint64_t ids[8];
    for (intptr_t i = 0; i < 8; i++) {
        CHECK_EQ(ox_channel(sizeof(long), 1, &open[i], &gates[i]), 0);
        ox_task_builder b = OX_TASK_BUILDER_INIT;
        CHECK_EQ(ox_join_set_spawn_with(set, &b, wait_for_gate, (void *)i, &ids[i]), 0);
    }
    CHECK_EQ(ox_join_set_len(set), 8);
    /* Open the gates in a scrambled order; join_next must follow it. */
    static const int order[8] = {5, 2, 7, 0, 3, 6, 1, 4};
    for (int k = 0; k < 8; k++) {
        long v = 1;
        CHECK_EQ(ox_sender_send(open[order[k]], &v), 0);
        void *r = NULL;
        uint64_t id = 0;
        CHECK_EQ(ox_join_set_join_next(set, &r, NULL, &id), 0);
        CHECK_EQ((intptr_t)r, order[k] * 10);
        CHECK_EQ(id, ids[order[k]]);
    }
    CHECK_EQ(ox_join_set_len(set), 0);
    CHECK_EQ(ox_join_set_join_next(set, NULL, NULL, NULL), OX_EEMPTY);
    for (int i = 0; i < 8; i++) {
        ox_sender_drop(open[i]);
        ox_receiver_drop(gates[i]);
    }
    ox_join_set_drop(set);
}

/* Several finished before the owner looks: join_next still gives them in
 * the order they finished (a queue, not a stack). One worker, so a task's
 * finish (retire) is over before the next task runs. */
static ox_receiver *later_gates[8];
static _Atomic int returning[8]; /* task i is about to return */

static void *wait_for_later_gate(void *arg)
{
    intptr_t i = (intptr_t)arg;
    long v;
    CHECK_EQ(ox_receiver_recv(later_gates[i], &v), 0);
    atomic_store(&returning[i], 1);
    return (void *)(i * 10);
}

OX_TEST(join_set_queues_tasks_finished_before_join_next_in_order)
{
    ox_runtime_builder rb = OX_RUNTIME_BUILDER_INIT;
    rb.workers = 1;
    ox_runtime *rt;
    CHECK_EQ(ox_runtime_new(&rb, &rt), 0);
    ox_join_set *set;
    CHECK_EQ(ox_join_set_new(&set), 0);
    ox_sender *open[8];
    for (intptr_t i = 0; i < 8; i++) {
        CHECK_EQ(ox_channel(sizeof(long), 1, &open[i], &later_gates[i]), 0);
        ox_task_builder b = OX_TASK_BUILDER_INIT;
        b.runtime = rt;
        CHECK_EQ(ox_join_set_spawn_with(set, &b, wait_for_later_gate, (void *)i, NULL), 0);
    }
    static const int order[8] = {3, 6, 0, 5, 1, 7, 4, 2};
    for (int k = 0; k < 8; k++) {
        long v = 1;
        CHECK_EQ(ox_sender_send(open[order[k]], &v), 0);
        while (!atomic_load(&returning[order[k]])) /* then it retires before the next runs */
            ox_thread_yield();
    }
    for (int k = 0; k < 8; k++) {
        void *r = NULL;
        CHECK_EQ(ox_join_set_join_next(set, &r, NULL, NULL), 0);
        CHECK_EQ((intptr_t)r, order[k] * 10);
    }
    CHECK_EQ(ox_join_set_join_next(set, NULL, NULL, NULL), OX_EEMPTY);
    for (int i = 0; i < 8; i++) {
        ox_sender_drop(open[i]);
        ox_receiver_drop(later_gates[i]);
    }
    ox_join_set_drop(set);
    ox_runtime_shutdown(rt);
}

OX_TEST(join_set_abort_all_ends_every_waiting_task)
{
    ox_join_set *set;
    CHECK_EQ(ox_join_set_new(&set), 0);
    ox_sender *open[8];
    for (intptr_t i = 0; i < 8; i++) {
        CHECK_EQ(ox_channel(sizeof(long), 1, &open[i], &gates[i]), 0);
        CHECK_EQ(ox_join_set_spawn(set, wait_for_gate, (void *)i), 0);
    }
    ox_thread_sleep(OX_MILLIS(2));
    ox_join_set_abort_all(set);
    int cancelled = 0;
    int rc;
    void *r;
    while ((rc = ox_join_set_join_next(set, &r, NULL, NULL)) != OX_EEMPTY) {
        /* Each either never ran (OX_ECANCELED) or saw its recv cancelled. */
        CHECK(rc == OX_ECANCELED || (rc == 0 && (intptr_t)r == -1));
        cancelled++;
    }
    CHECK_EQ(cancelled, 8);
    for (int i = 0; i < 8; i++) {
        ox_sender_drop(open[i]);
        ox_receiver_drop(gates[i]);
    }
    ox_join_set_drop(set);
}

static _Atomic int finished_after_drop;
/* Tasks of the set that have begun: one aborted before it ever runs never
 * runs at all, so the drop must wait until every one is inside. */
static _Atomic int started_before_drop;

static void *sleep_then_count(void *arg)
{
    (void)arg;
    atomic_fetch_add(&started_before_drop, 1);
    int rc = ox_task_sleep(OX_SECS(3600));
    atomic_fetch_add(&finished_after_drop, rc == OX_ECANCELED);
    return NULL;
}

static void *panic_in_set(void *arg)
{
    (void)arg;
    atomic_fetch_add(&started_before_drop, 1);
    ox_panic("set member fails");
}

OX_TEST(join_set_drop_aborts_what_is_left_and_frees_everything)
{
    ox_panic_set_hook(NULL);
    ox_join_set *set;
    CHECK_EQ(ox_join_set_new(&set), 0);
    for (int i = 0; i < 20; i++)
        CHECK_EQ(ox_join_set_spawn(set, sleep_then_count, NULL), 0);
    CHECK_EQ(ox_join_set_spawn(set, panic_in_set, NULL), 0); /* its payload must be freed */
    /* Not a fixed head start: under an emulator or a loaded machine some
     * tasks have not run after milliseconds, and those the drop aborts
     * before they start never run (so would never count). */
    while (atomic_load(&started_before_drop) < 21)
        ox_thread_sleep(OX_MILLIS(1));
    ox_join_set_drop(set);
    while (atomic_load(&finished_after_drop) < 20)
        ox_thread_sleep(OX_MILLIS(1));
    /* LeakSanitizer (asan suite) checks that the set, the records and the
     * payload were freed once the last task finished. */
    ox_thread_sleep(OX_MILLIS(5));
}

/* ---- task scope ---- */

typedef struct {
    long parts[16]; /* on the caller's stack: borrowed by the tasks */
} scope_data;

static void *fill_part(void *arg)
{
    long *slot = arg;
    ox_task_yield();
    *slot = 7;
    return NULL;
}

static void scope_body(ox_task_scope *scope, void *arg)
{
    scope_data *d = arg;
    for (int i = 0; i < 16; i++)
        (void)ox_task_scope_spawn(scope, fill_part, &d->parts[i]);
}

OX_TEST(task_scope_joins_every_task_before_it_returns)
{
    for (int round = 0; round < 50; round++) {
        scope_data d;
        memset(&d, 0, sizeof d);
        ox_task_scope_run(scope_body, &d);
        for (int i = 0; i < 16; i++)
            CHECK_EQ(d.parts[i], 7);
    }
}

static void *fail_scoped(void *arg)
{
    (void)arg;
    ox_panic("scoped task fails");
}

static void scope_with_failure(ox_task_scope *scope, void *arg)
{
    (void)arg;
    (void)ox_task_scope_spawn(scope, fail_scoped, NULL);
}

typedef struct scope_call {
    void (*run)(ox_task_scope *scope, void *arg);
} scope_call;

static void *run_scope(void *arg)
{
    const scope_call *body = arg;
    ox_task_scope_run(body->run, NULL);
    return NULL;
}

/* Runs body in a task scope (from this thread), which must panic with
 * message. */
static void check_scope_panics(void (*body)(ox_task_scope *, void *), const char *message)
{
    ox_panic_set_hook(NULL);
    scope_call b = {body};
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(run_scope, &b, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, message);
    ox_panic_payload_free(p);
}

OX_TEST(task_scope_reports_a_task_panic_not_joined_by_hand)
{
    check_scope_panics(scope_with_failure, "a scoped task panicked");
}

static void scope_joining_by_hand(ox_task_scope *scope, void *arg)
{
    (void)arg;
    ox_task_handle h = ox_task_scope_spawn(scope, fail_scoped, NULL);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_task_join(&h, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "scoped task fails");
    ox_panic_payload_free(p);
}

OX_TEST(task_scope_does_not_report_a_panic_joined_by_hand)
{
    ox_panic_set_hook(NULL);
    ox_task_scope_run(scope_joining_by_hand, NULL); /* must not panic */
}

/* A scoped task whose stack cannot be mapped never runs: the work the
 * body lent it was not done, so the scope says so, as for a panic; unless
 * the body joined it by hand and so saw ENOMEM itself. */
static _Atomic int unmappable_ran;

static void *note_it_ran(void *arg)
{
    (void)arg;
    atomic_store(&unmappable_ran, 1);
    return NULL;
}

static ox_task_handle spawn_unmappable(ox_task_scope *scope)
{
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    b.stack_size = (size_t)1 << 62; /* past any address space */
    ox_task_handle h;
    CHECK_EQ(ox_task_scope_builder_spawn(scope, &b, note_it_ran, NULL, &h), 0);
    return h;
}

static void scope_with_unmappable(ox_task_scope *scope, void *arg)
{
    (void)arg;
    (void)spawn_unmappable(scope);
}

OX_TEST(task_scope_reports_a_task_that_got_no_stack)
{
    check_scope_panics(scope_with_unmappable, "a scoped task got no stack and never ran");
    CHECK_EQ(atomic_load(&unmappable_ran), 0);
}

static void scope_joining_unmappable_by_hand(ox_task_scope *scope, void *arg)
{
    (void)arg;
    ox_task_handle h = spawn_unmappable(scope);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), ENOMEM);
}

OX_TEST(task_scope_does_not_report_a_task_without_stack_joined_by_hand)
{
    ox_panic_set_hook(NULL);
    ox_task_scope_run(scope_joining_unmappable_by_hand, NULL); /* must not panic */
    CHECK_EQ(atomic_load(&unmappable_ran), 0);
}

/* ---- task-locals ---- */

static _Atomic int locals_destroyed;

static void counter_init(long *v)
{
    *v = 100;
}

static void counter_destroy(long *v)
{
    CHECK(*v >= 100);
    atomic_fetch_add(&locals_destroyed, 1);
}

OX_TASK_LOCAL(per_task_counter, long, counter_init, counter_destroy);

static void *bump_local(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        (*OX_TASK_LOCAL_GET(per_task_counter))++;
        ox_task_yield(); /* other tasks bump theirs meanwhile, maybe on this worker */
    }
    return (void *)(intptr_t)*OX_TASK_LOCAL_GET(per_task_counter);
}

OX_TEST(task_locals_are_per_task_and_destroyed_at_return)
{
    enum { TASKS = 32 };
    ox_task_handle hs[TASKS];
    for (int i = 0; i < TASKS; i++)
        hs[i] = ox_task_spawn(bump_local, (void *)(intptr_t)(i * 3));
    for (int i = 0; i < TASKS; i++) {
        void *r;
        CHECK_EQ(ox_task_join(&hs[i], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, 100 + i * 3);
    }
    CHECK_EQ(atomic_load(&locals_destroyed), TASKS);
}

OX_TEST_OPTS(task_local_outside_a_task_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "task-local 'per_task_counter' used outside a task")
{
    (*OX_TASK_LOCAL_GET(per_task_counter))++;
}

/* ---- the blocking pool ---- */

static void *blocking_sleep(void *arg)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 20000000};
    nanosleep(&ts, NULL); /* a real blocking call: must not stall the workers */
    return arg;
}

static void *tick(void *arg)
{
    (void)arg;
    return NULL;
}

static void *spawn_blocking_and_keep_working(void *arg)
{
    (void)arg;
    ox_task_handle hs[8];
    for (intptr_t i = 0; i < 8; i++)
        CHECK_EQ(ox_task_spawn_blocking(blocking_sleep, (void *)i, &hs[i]), 0);
    /* The workers stay free: many small tasks run while the pool sleeps. */
    for (int i = 0; i < 100; i++) {
        ox_task_handle t = ox_task_spawn(tick, NULL);
        CHECK_EQ(ox_task_join(&t, NULL, NULL), 0);
    }
    for (intptr_t i = 0; i < 8; i++) {
        void *r;
        CHECK_EQ(ox_task_join(&hs[i], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, i);
    }
    return NULL;
}

OX_TEST(task_spawn_blocking_runs_off_the_workers_and_joins_from_a_task)
{
    void *r;
    CHECK_EQ(ox_task_block_on(spawn_blocking_and_keep_working, NULL, &r, NULL), 0);
}

static void *sleep_then_return(void *arg)
{
    if (ox_task_sleep((ox_nanos)(intptr_t)arg) != 0)
        return NULL;
    return arg;
}

static void *join_next_until_deadline(void *unused)
{
    (void)unused;
    ox_join_set *set;
    CHECK_EQ(ox_join_set_new(&set), 0);
    CHECK_EQ(ox_join_set_spawn(set, sleep_then_return, (void *)(intptr_t)OX_MILLIS(1)), 0);
    CHECK_EQ(ox_join_set_spawn(set, sleep_then_return, (void *)(intptr_t)OX_SECS(3600)), 0);
    void *r = NULL;
    /* The quick one comes back; the other outlives the deadline and stays. */
    CHECK_EQ(ox_join_set_join_next_deadline(set, &r, NULL, NULL, ox_instant_after(OX_SECS(60))), 0);
    CHECK_EQ((intptr_t)r, (intptr_t)OX_MILLIS(1));
    CHECK_EQ(ox_join_set_join_next_deadline(set, &r, NULL, NULL, ox_instant_after(OX_MILLIS(20))),
             OX_ETIMEDOUT);
    CHECK_EQ(ox_join_set_len(set), 1u);
    ox_join_set_abort_all(set);
    CHECK_EQ(ox_join_set_join_next_deadline(set, &r, NULL, NULL, ox_instant_after(OX_SECS(60))), 0);
    CHECK(r == NULL); /* its sleep returned OX_ECANCELED */
    CHECK_EQ(ox_join_set_join_next_deadline(set, &r, NULL, NULL, OX_INSTANT_NEVER), OX_EEMPTY);
    ox_join_set_drop(set);
    return NULL;
}

OX_TEST(join_set_join_next_deadline_times_out_and_keeps_the_rest)
{
    void *r;
    CHECK_EQ(ox_task_block_on(join_next_until_deadline, NULL, &r, NULL), 0);
}
