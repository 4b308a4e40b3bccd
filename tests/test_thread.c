/* Threads: spawn, join, builder, current, ids, names, parking. */
#include "oxide.h"
#include "runner.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
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
    ox_thread_builder_stack_size(&b, 0);
    CHECK_EQ(ox_thread_builder_spawn(&b, count_up, NULL, &h), OX_EINVAL);
    ox_thread_builder_stack_size(&b, SIZE_MAX / 2);
    int rc = ox_thread_builder_spawn(&b, count_up, NULL, &h);
    CHECK(rc == EAGAIN || rc == ENOMEM || rc == EINVAL);
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
    _Atomic long turn; /* odd: the worker's turn; even: main's */
    long rounds;
};

static void *pong(void *arg)
{
    struct pingpong *pp = arg;
    for (long i = 0; i < pp->rounds; i++) {
        while (atomic_load_explicit(&pp->turn, memory_order_acquire) != 2 * i + 1)
            ox_thread_park();
        atomic_store_explicit(&pp->turn, 2 * i + 2, memory_order_release);
        ox_thread_unpark(pp->main_thread);
    }
    return NULL;
}

OX_TEST(thread_park_unpark_handoffs_are_never_lost)
{
    struct pingpong pp = {.main_thread = ox_thread_current(), .rounds = ox_test_scaled(20000)};
    ox_join_handle h = ox_thread_spawn(pong, &pp);
    ox_thread *worker = ox_join_handle_thread(&h);
    for (long i = 0; i < pp.rounds; i++) {
        atomic_store_explicit(&pp.turn, 2 * i + 1, memory_order_release);
        ox_thread_unpark(worker);
        while (atomic_load_explicit(&pp.turn, memory_order_acquire) != 2 * i + 2)
            ox_thread_park();
    }
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

OX_TEST(thread_available_parallelism_and_sleep)
{
    CHECK(ox_available_parallelism() >= 1);
    ox_instant t0 = ox_instant_now();
    ox_thread_sleep(OX_MILLIS(10));
    CHECK(ox_instant_diff(ox_instant_now(), t0) >= OX_MILLIS(10));
    ox_thread_sleep(-5); /* returns at once */
}
