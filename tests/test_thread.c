/* Threads: spawn, join, builder, current, ids, names, parking. */
#define _GNU_SOURCE /* pthread_getattr_np, to see a thread's stack size */
#include "oxide.h"
#include "runner.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *return_arg_plus_one(void *arg)
{
    return (void *)((intptr_t)arg + 1);
}

OX_TEST(thread_join_returns_result)
{
    ox_join_handle h = ox_thread_spawn(return_arg_plus_one, (void *)41);
    void *result = NULL;
    CHECK_EQ(ox_thread_join(&h, &result, NULL), 0);
    CHECK_EQ((intptr_t)result, 42);
    CHECK(h.thread == NULL);
}

static void *panic_with_number(void *arg)
{
    ox_panic("boom %d", (int)(intptr_t)arg);
}

OX_TEST(thread_join_reports_panic_payload)
{
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&b, "exploder");
    ox_join_handle h;
    CHECK_EQ(ox_thread_builder_spawn(&b, panic_with_number, (void *)7, &h), 0);
    ox_panic_payload *p = NULL;
    void *result = (void *)1;
    CHECK_EQ(ox_thread_join(&h, &result, &p), OX_EPANICKED);
    CHECK(p != NULL);
    CHECK_STR(p->message, "boom 7");
    CHECK_STR(p->thread_name, "exploder");
    CHECK(strstr(p->file, "test_thread.c") != NULL);
    CHECK(p->line > 0);
    CHECK(result == (void *)1); /* untouched on panic */
    ox_panic_payload_free(p);
}

OX_TEST_OPTS(thread_join_twice_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "already joined or dropped")
{
    ox_join_handle h = ox_thread_spawn(return_arg_plus_one, NULL);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    (void)!ox_thread_join(&h, NULL, NULL);
}

OX_TEST_OPTS(thread_spawn_null_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_thread_spawn: NULL thread function")
{
    ox_thread_spawn(NULL, NULL);
}

static void *join_self(void *arg)
{
    ox_join_handle *self = arg;
    while (__atomic_load_n(&self->thread, __ATOMIC_ACQUIRE) == NULL) /* stored by the spawner */
        ox_thread_yield();
    return (void *)(intptr_t)ox_thread_join(self, NULL, NULL);
}

OX_TEST(thread_join_self_is_deadlock_error)
{
    static ox_join_handle self;
    ox_join_handle h = ox_thread_spawn(join_self, &self);
    /* Hand the thread a copy of its own handle: joining it is EDEADLK. */
    __atomic_store_n(&self.thread, h.thread, __ATOMIC_RELEASE);
    void *rc;
    CHECK_EQ(ox_thread_join(&h, &rc, NULL), 0);
    CHECK_EQ((intptr_t)rc, OX_EDEADLK);
}

static void *slow_return(void *arg)
{
    ox_thread_park(); /* until unparked */
    return arg;
}

OX_TEST(thread_is_finished_and_unpark)
{
    ox_join_handle h = ox_thread_spawn(slow_return, (void *)5);
    CHECK(!ox_join_handle_is_finished(&h));
    ox_thread_unpark(ox_join_handle_thread(&h));
    while (!ox_join_handle_is_finished(&h))
        ox_thread_yield();
    void *r;
    CHECK_EQ(ox_thread_join(&h, &r, NULL), 0);
    CHECK_EQ((intptr_t)r, 5);
}

static void *count_up(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
    return NULL;
}

OX_TEST(thread_detached_runs_to_completion)
{
    static _Atomic int done;
    for (int i = 0; i < 8; i++) {
        ox_join_handle h = ox_thread_spawn(count_up, &done);
        ox_join_handle_drop(&h);
        CHECK(h.thread == NULL);
    }
    while (atomic_load(&done) < 8)
        ox_thread_sleep(OX_MILLIS(1));
}

static void *report_current(void *arg)
{
    ox_thread *me = ox_thread_current();
    uint64_t *out = arg;
    out[0] = ox_thread_id(me);
    out[1] = ox_thread_name(me) ? strlen(ox_thread_name(me)) : 0;
    return (void *)ox_thread_name(me);
}

OX_TEST(thread_current_ids_unique_and_names)
{
    ox_thread *main_thread = ox_thread_current();
    CHECK_STR(ox_thread_name(main_thread), "main");
    CHECK(ox_thread_current() == main_thread);
    uint64_t seen[16][2];
    for (int i = 0; i < 16; i++) {
        ox_join_handle h = ox_thread_spawn(report_current, seen[i]);
        void *name;
        CHECK_EQ(ox_thread_join(&h, &name, NULL), 0);
        CHECK(name == NULL); /* unnamed */
        CHECK(seen[i][0] != ox_thread_id(main_thread));
        for (int j = 0; j < i; j++)
            CHECK(seen[i][0] != seen[j][0]);
    }
}

static void *long_name_check(void *arg)
{
    (void)arg;
    char os_name[32] = {0};
    FILE *f = fopen("/proc/thread-self/comm", "r");
    if (f) {
        if (!fgets(os_name, sizeof os_name, f))
            os_name[0] = '\0';
        fclose(f);
    }
    os_name[strcspn(os_name, "\n")] = '\0';
    CHECK_STR(os_name, "a-rather-long-t"); /* 15 bytes for the OS */
    CHECK_STR(ox_thread_name(ox_thread_current()), "a-rather-long-thread-name"); /* whole */
    return NULL;
}

OX_TEST(thread_builder_names_os_thread)
{
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&b, "a-rather-long-thread-name");
    ox_join_handle h;
    CHECK_EQ(ox_thread_builder_spawn(&b, long_name_check, NULL, &h), 0);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
}

OX_TEST(thread_builder_rejects_bad_input)
{
    ox_join_handle h = OX_JOIN_HANDLE_NONE;
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    CHECK_EQ(ox_thread_builder_spawn(&b, NULL, NULL, &h), OX_EINVAL);
    /* An absurd size is tried as given, and the OS's errno comes back, as
     * in Rust. */
    ox_thread_builder_stack_size(&b, SIZE_MAX / 2);
    CHECK_EQ(ox_thread_builder_spawn(&b, count_up, NULL, &h), EAGAIN);
    CHECK(h.thread == NULL);

    static char long_name[OX_THREAD_NAME_MAX + 2];
    memset(long_name, 'x', sizeof long_name - 1);
    b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&b, long_name);
    CHECK_EQ(ox_thread_builder_spawn(&b, count_up, NULL, &h), OX_ENAMETOOLONG);
    CHECK(strlen(ox_strerror(OX_ENAMETOOLONG)) > 0);
}

static void *deep_recursion_ok(void *arg)
{
    volatile char big[512 * 1024]; /* needs more than a small stack */
    big[0] = 1;
    big[sizeof big - 1] = 2;
    return (void *)(intptr_t)(big[0] + big[sizeof big - 1] + (intptr_t)arg);
}

OX_TEST(thread_builder_stack_size)
{
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_stack_size(&b, 4 << 20);
    ox_join_handle h;
    CHECK_EQ(ox_thread_builder_spawn(&b, deep_recursion_ok, NULL, &h), 0);
    void *r;
    CHECK_EQ(ox_thread_join(&h, &r, NULL), 0);
    CHECK_EQ((intptr_t)r, 3);
    /* A tiny request is rounded up to the platform minimum, as in Rust. */
    static _Atomic int ran;
    ox_thread_builder_stack_size(&b, 1);
    CHECK_EQ(ox_thread_builder_spawn(&b, count_up, (void *)&ran, &h), 0);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&ran), 1);
}

OX_TEST(thread_park_token_semantics)
{
    /* An unpark before park makes the next park return at once... */
    ox_thread_unpark(ox_thread_current());
    ox_instant t0 = ox_instant_now();
    ox_thread_park();
    /* ...and consumes the token: the next park_timeout times out. */
    CHECK_EQ(ox_thread_park_timeout(OX_MILLIS(20)), OX_ETIMEDOUT);
    ox_nanos waited = ox_instant_diff(ox_instant_now(), t0);
    CHECK(waited >= OX_MILLIS(20));
    /* Tokens do not accumulate. */
    ox_thread_unpark(ox_thread_current());
    ox_thread_unpark(ox_thread_current());
    CHECK_EQ(ox_thread_park_timeout(OX_MILLIS(1)), 0);
    CHECK_EQ(ox_thread_park_timeout(OX_MILLIS(1)), OX_ETIMEDOUT);
    CHECK_EQ(ox_thread_park_timeout(-1), OX_EINVAL);
}

struct pingpong {
    ox_thread *main_thread;
    _Atomic long turn; /* odd: the worker's turn; even: main's; or PINGPONG_OVER */
};

/* Main ends a ping-pong on a time budget (see ox_test_budget). */
#define PINGPONG_OVER (-1L)

/* Waits (parking or yielding) for the worker's turn of round i; false when
 * main ends the game instead. */
static bool worker_turn(struct pingpong *pp, long i, bool park)
{
    for (;;) {
        /* Acquire: pairs with main's release store of the turn. */
        long t = atomic_load_explicit(&pp->turn, memory_order_acquire);
        if (t == 2 * i + 1 || t == PINGPONG_OVER)
            return t == 2 * i + 1;
        if (park)
            ox_thread_park();
        else
            ox_thread_yield();
    }
}

static void *pong(void *arg)
{
    struct pingpong *pp = arg;
    for (long i = 0; worker_turn(pp, i, true); i++) {
        atomic_store_explicit(&pp->turn, 2 * i + 2, memory_order_release);
        ox_thread_unpark(pp->main_thread);
    }
    return NULL;
}

/* The unpark comes first: the worker waits for its turn without parking,
 * then parks once, and the token left by the unpark must let it through. */
static void *park_after_unpark(void *arg)
{
    struct pingpong *pp = arg;
    for (long i = 0; worker_turn(pp, i, false); i++) {
        ox_thread_park(); /* consumes the token of this round's unpark */
        atomic_store_explicit(&pp->turn, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

OX_TEST(thread_park_unpark_handoffs_are_never_lost)
{
    struct pingpong pp = {.main_thread = ox_thread_current()};
    ox_join_handle h = ox_thread_spawn(pong, &pp);
    ox_thread *worker = ox_join_handle_thread(&h);
    ox_test_budget budget = ox_test_budget_start(1000, ox_test_scaled(20000));
    for (long i = 0; ox_test_budget_more(&budget, i); i++) {
        atomic_store_explicit(&pp.turn, 2 * i + 1, memory_order_release);
        ox_thread_unpark(worker);
        while (atomic_load_explicit(&pp.turn, memory_order_acquire) != 2 * i + 2)
            ox_thread_park();
    }
    atomic_store_explicit(&pp.turn, PINGPONG_OVER, memory_order_release);
    ox_thread_unpark(worker);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);

    /* An unpark that finds the thread not parked must leave it a token: a
     * lost one leaves the worker parked for ever (the runner's timeout). */
    struct pingpong early = {0};
    h = ox_thread_spawn(park_after_unpark, &early);
    worker = ox_join_handle_thread(&h);
    budget = ox_test_budget_start(100, ox_test_scaled(2000));
    for (long i = 0; ox_test_budget_more(&budget, i); i++) {
        ox_thread_unpark(worker); /* before the worker may park */
        atomic_store_explicit(&early.turn, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&early.turn, memory_order_acquire) != 2 * i + 2)
            ox_thread_yield();
    }
    atomic_store_explicit(&early.turn, PINGPONG_OVER, memory_order_release);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
}

OX_TEST(thread_unpark_finished_thread_is_fine)
{
    ox_join_handle h = ox_thread_spawn(return_arg_plus_one, NULL);
    ox_thread *t = ox_thread_clone(ox_join_handle_thread(&h));
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    ox_thread_unpark(t); /* the record outlives the thread while cloned */
    ox_thread_drop(t);
}

OX_TEST(thread_sleep_until_a_deadline)
{
    ox_instant t0 = ox_instant_now();
    ox_thread_sleep_until(ox_instant_after(OX_MILLIS(10)));
    CHECK(ox_instant_diff(ox_instant_now(), t0) >= OX_MILLIS(10));
    /* A deadline in the past (or now) returns at once. */
    t0 = ox_instant_now();
    ox_thread_sleep_until((ox_instant){0});
    ox_thread_sleep_until(t0);
    CHECK(ox_instant_diff(ox_instant_now(), t0) < ox_test_bound(OX_SECS(1)));
}

OX_TEST(thread_available_parallelism_and_sleep)
{
    CHECK(ox_available_parallelism() >= 1);
    ox_instant t0 = ox_instant_now();
    ox_thread_sleep(OX_MILLIS(10));
    CHECK(ox_instant_diff(ox_instant_now(), t0) >= OX_MILLIS(10));
    ox_thread_sleep(-5); /* returns at once */
}

/* ---- issue 10, section 3 ---- */

static void *my_id(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)ox_thread_id(ox_thread_current());
}

/* The main thread is 1 even when another thread asked for its id first
 * (before: the first thread to ask got 1). */
OX_TEST(thread_main_is_id_1_from_the_start)
{
    ox_join_handle h = ox_thread_spawn(my_id, NULL);
    void *id;
    CHECK_EQ(ox_thread_join(&h, &id, NULL), 0);
    CHECK((uintptr_t)id >= 2);
    CHECK_EQ(ox_thread_id(ox_thread_current()), 1);
    h = ox_thread_spawn(my_id, NULL);
    void *id2;
    CHECK_EQ(ox_thread_join(&h, &id2, NULL), 0);
    CHECK((uintptr_t)id2 > (uintptr_t)id);
}

/* The size of the calling thread's stack, as the C library set it up. */
static void *stack_size_of_me(void *arg)
{
    (void)arg;
    pthread_attr_t attr;
    size_t size = 0;
    CHECK_EQ(pthread_getattr_np(pthread_self(), &attr), 0);
    CHECK_EQ(pthread_attr_getstacksize(&attr, &size), 0);
    pthread_attr_destroy(&attr);
    return (void *)(uintptr_t)size;
}

static size_t spawned_stack_size(const ox_thread_builder *b)
{
    ox_join_handle h;
    CHECK_EQ(ox_thread_builder_spawn(b, stack_size_of_me, NULL, &h), 0);
    void *size;
    CHECK_EQ(ox_thread_join(&h, &size, NULL), 0);
    return (size_t)(uintptr_t)size;
}

/* Rust: stack_size(0) spawns (the minimum); before, OX_EINVAL. A size that
 * is not a whole number of pages is passed as given (glibc takes it and
 * aligns it down by a few bytes, as it does for Rust). */
OX_TEST(thread_stack_size_zero_is_clamped_and_odd_sizes_work)
{
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_stack_size(&b, 0);
    CHECK(spawned_stack_size(&b) >= (size_t)PTHREAD_STACK_MIN);
    ox_thread_builder_stack_size(&b, (3 << 20) + 1);
    CHECK(spawned_stack_size(&b) >= (3 << 20));
    ox_thread_builder_stack_size(&b, (4 << 20) + 4095);
    ox_join_handle h;
    CHECK_EQ(ox_thread_builder_spawn(&b, deep_recursion_ok, NULL, &h), 0);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
}

#define BIG_STACK ((size_t)48 << 20) /* more than any platform default */

static void scope_stack_body(ox_scope *scope, void *arg)
{
    ox_scoped_handle h = ox_scope_spawn(scope, stack_size_of_me, NULL);
    void *size;
    CHECK_EQ(ox_scoped_join(&h, &size, NULL), 0);
    *(size_t *)arg = (size_t)(uintptr_t)size;
}

/* OX_MIN_STACK (Rust's RUST_MIN_STACK) sets the default stack of spawned
 * and scoped threads; an explicit builder size still wins. The variable is
 * read at the first spawn, and every test runs in a fresh process. */
OX_TEST(thread_min_stack_env_sets_the_default_stack)
{
    char value[32];
    snprintf(value, sizeof value, "%zu", BIG_STACK);
    CHECK_EQ(setenv("OX_MIN_STACK", value, 1), 0);
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    CHECK(spawned_stack_size(&b) >= BIG_STACK);
    ox_join_handle h = ox_thread_spawn(stack_size_of_me, NULL);
    void *size;
    CHECK_EQ(ox_thread_join(&h, &size, NULL), 0);
    CHECK((size_t)(uintptr_t)size >= BIG_STACK);
    size_t scoped = 0;
    ox_thread_scope(scope_stack_body, &scoped);
    CHECK(scoped >= BIG_STACK);
    ox_thread_builder_stack_size(&b, 1 << 20);
    CHECK(spawned_stack_size(&b) < BIG_STACK);
}

static void *pthread_default_stack(void *arg)
{
    return stack_size_of_me(arg);
}

OX_TEST(thread_min_stack_env_that_does_not_parse_is_ignored)
{
    CHECK_EQ(setenv("OX_MIN_STACK", "lots", 1), 0);
    pthread_t t;
    void *os_default;
    CHECK_EQ(pthread_create(&t, NULL, pthread_default_stack, NULL), 0);
    CHECK_EQ(pthread_join(t, &os_default), 0);
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    CHECK_EQ(spawned_stack_size(&b), (size_t)(uintptr_t)os_default);
}

static void *spawn_one(void *arg)
{
    (void)arg;
    ox_join_handle h = ox_thread_spawn(count_up, NULL);
    ox_join_handle_drop(&h); /* not reached */
    return NULL;
}

static void spawn_in_scope(ox_scope *scope, void *arg)
{
    (void)arg;
    (void)ox_scope_spawn(scope, count_up, NULL); /* panics */
}

static void *scope_that_spawns(void *arg)
{
    ox_thread_scope(spawn_in_scope, arg);
    return NULL;
}

static void quiet(const ox_panic_payload *p)
{
    (void)p;
}

/* A spawn the OS refuses: ox_thread_spawn and ox_scope_spawn panic with
 * Rust's message (catchable; before, the process aborted), the builder
 * returns the errno. An absurd OX_MIN_STACK makes the OS refuse. */
OX_TEST(thread_spawn_failure_panics_and_the_builder_returns_the_error)
{
    CHECK_EQ(setenv("OX_MIN_STACK", "1125899906842624", 1), 0); /* 1 PiB */
    ox_panic_set_hook(quiet);
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_join_handle h = OX_JOIN_HANDLE_NONE;
    CHECK_EQ(ox_thread_builder_spawn(&b, count_up, NULL, &h), EAGAIN);
    CHECK(h.thread == NULL);
    char expected[128];
    snprintf(expected, sizeof expected, "failed to spawn thread: %s", ox_strerror(EAGAIN));
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(spawn_one, NULL, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, expected);
    ox_panic_payload_free(p);
    p = NULL;
    CHECK_EQ(ox_catch_unwind(scope_that_spawns, NULL, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, expected);
    ox_panic_payload_free(p);
    /* An explicit size is not the default: it still works. */
    static _Atomic int ran;
    ox_thread_builder_stack_size(&b, 1 << 20);
    CHECK_EQ(ox_thread_builder_spawn(&b, count_up, (void *)&ran, &h), 0);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&ran), 1);
}

/* ---- is_finished turns true before the thread-local destructors run ---- */

static _Atomic bool seen_finished;

static void wait_until_seen(int *v)
{
    (void)v;
    /* Before the fix is_finished waited for this destructor, which waits
     * for is_finished: a deadlock, failed by the runner's timeout. */
    while (!atomic_load(&seen_finished))
        ox_thread_yield();
}

OX_THREAD_LOCAL(slow_goodbye, int, NULL, wait_until_seen);

static void *touch_slow_goodbye(void *arg)
{
    *OX_TLS_GET(slow_goodbye) = 1;
    return arg;
}

OX_TEST(thread_is_finished_before_thread_local_destructors)
{
    ox_join_handle h = ox_thread_spawn(touch_slow_goodbye, (void *)7);
    while (!ox_join_handle_is_finished(&h))
        ox_thread_yield();
    atomic_store(&seen_finished, true);
    void *r;
    CHECK_EQ(ox_thread_join(&h, &r, NULL), 0);
    CHECK_EQ((intptr_t)r, 7);
}

struct scoped_finish {
    _Atomic bool go;
};

static void *wait_for_go(void *arg)
{
    struct scoped_finish *f = arg;
    while (!atomic_load(&f->go))
        ox_thread_yield();
    return NULL;
}

static void scoped_finish_body(ox_scope *scope, void *arg)
{
    struct scoped_finish *f = arg;
    ox_scoped_handle h = ox_scope_spawn(scope, wait_for_go, f);
    CHECK(!ox_scoped_handle_is_finished(&h)); /* it waits for go */
    atomic_store(&f->go, true);
    while (!ox_scoped_handle_is_finished(&h))
        ox_thread_yield();
    CHECK_EQ(ox_scoped_join(&h, NULL, NULL), 0);
    /* And with a thread-local destructor that waits to be seen. */
    ox_scoped_handle h2 = ox_scope_spawn(scope, touch_slow_goodbye, NULL);
    while (!ox_scoped_handle_is_finished(&h2))
        ox_thread_yield();
    atomic_store(&seen_finished, true);
}

OX_TEST(thread_scoped_handles_have_is_finished)
{
    struct scoped_finish f = {false};
    ox_thread_scope(scoped_finish_body, &f);
}

/* A copy of a handle joined through the other copy: the record is gone
 * (recycled), so the OS join would fail with "No such process" or worse;
 * oxide says what happened. */
OX_TEST_OPTS(thread_join_copy_of_joined_handle_says_joined_twice, .expect_signal = SIGABRT,
             .expect_stderr = "ox_thread_join: thread joined twice")
{
    ox_join_handle h = ox_thread_spawn(return_arg_plus_one, NULL);
    ox_join_handle copy = h;
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    /* Another thread's record may now sit where the joined one was. */
    ox_join_handle other = ox_thread_spawn(return_arg_plus_one, NULL);
    (void)!ox_thread_join(&copy, NULL, NULL);
    (void)!ox_thread_join(&other, NULL, NULL);
}

/* The record is still alive (an ox_thread_clone keeps it): the handle's own
 * mark catches the second join. */
OX_TEST_OPTS(thread_join_copy_while_record_alive_says_joined_twice, .expect_signal = SIGABRT,
             .expect_stderr = "ox_thread_join: thread joined twice")
{
    ox_join_handle h = ox_thread_spawn(return_arg_plus_one, NULL);
    ox_thread *kept = ox_thread_clone(ox_join_handle_thread(&h));
    ox_join_handle copy = h;
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    (void)!ox_thread_join(&copy, NULL, NULL);
    ox_thread_drop(kept);
}

/* Whether the detached thread has ended (record retired) or not (the
 * handle's mark), the message names the copy. */
OX_TEST_OPTS(thread_join_copy_of_dropped_handle_says_so, .expect_signal = SIGABRT,
             .expect_stderr = "is a copy of a handle that was already")
{
    ox_join_handle h = ox_thread_spawn(return_arg_plus_one, NULL);
    ox_join_handle copy = h;
    ox_join_handle_drop(&h);
    (void)!ox_thread_join(&copy, NULL, NULL);
}
