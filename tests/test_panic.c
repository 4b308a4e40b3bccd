/* Panics: catch_unwind, payloads, the hook, cleanups and held locks
 * released in reverse order, exit code 101, double panics. */
#include "helpers.h"
#include "oxide.h"
#include "runner.h"

#include "panic/unwind.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void *returns_seven(void *arg)
{
    (void)arg;
    return (void *)7;
}

static void *panics_with_arg(void *arg)
{
    ox_panic("panicked with %s", (const char *)arg);
}

OX_TEST(panic_catch_unwind_ok_and_err)
{
    void *r = NULL;
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(returns_seven, NULL, &r, &p), 0);
    CHECK_EQ((intptr_t)r, 7);
    CHECK(p == NULL);
    CHECK_EQ(ox_catch_unwind(panics_with_arg, "xyz", &r, &p), OX_EPANICKED);
    CHECK_STR(p->message, "panicked with xyz");
    CHECK_STR(p->thread_name, "main");
    ox_panic_payload_free(p);
    /* A NULL payload pointer frees it for us (checked by the leak checker). */
    CHECK_EQ(ox_catch_unwind(panics_with_arg, "again", NULL, NULL), OX_EPANICKED);
}

static void *nested_inner(void *arg)
{
    int *depth = arg;
    *depth += 1;
    ox_panic("inner");
}

static void *nested_outer(void *arg)
{
    ox_panic_payload *p;
    CHECK_EQ(ox_catch_unwind(nested_inner, arg, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "inner");
    ox_panic_payload_free(p);
    /* The outer frame is still in place: this panic lands there. */
    ox_panic("outer");
}

OX_TEST(panic_catch_frames_nest)
{
    int depth = 0;
    ox_panic_payload *p;
    CHECK_EQ(ox_catch_unwind(nested_outer, &depth, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "outer");
    CHECK_EQ(depth, 1);
    ox_panic_payload_free(p);
}

/* A stand-in lock that records its unwind calls, to check the record without
 * depending on the real locks. */
struct fake_lock {
    int held;
    int poisoned;
    char name;
};
static char unwind_log[64];
static size_t unwind_log_len;

static void log_event(char c)
{
    if (unwind_log_len < sizeof unwind_log - 1)
        unwind_log[unwind_log_len++] = c;
}

static void fake_release(void *lock, unsigned tag)
{
    (void)tag;
    struct fake_lock *l = lock;
    l->held = 0;
    log_event(l->name);
}

static void fake_poison(void *lock)
{
    ((struct fake_lock *)lock)->poisoned = 1;
}
static const ox__lock_ops fake_ops = {"fake lock", fake_release, fake_poison};

static void fake_lock_acquire(struct fake_lock *l)
{
    l->held = 1;
    ox__held_push(l, &fake_ops, __FILE__, __LINE__);
}

static void fake_lock_release(struct fake_lock *l)
{
    CHECK(ox__held_remove(l));
    l->held = 0;
}

static void log_cleanup(void *arg)
{
    log_event(*(char *)arg);
}

static struct fake_lock lock_a = {.name = 'A'}, lock_b = {.name = 'B'}, lock_c = {.name = 'C'},
                        lock_outer = {.name = 'O'};

static void *take_locks_and_panic(void *arg)
{
    (void)arg;
    static char one = '1', two = '2', gone = 'x';
    fake_lock_acquire(&lock_a);
    ox_cleanup_push(log_cleanup, &one);
    fake_lock_acquire(&lock_b);
    ox_cleanup_push(log_cleanup, &gone);
    ox_cleanup_pop(false); /* popped: must not run */
    ox_cleanup_push(log_cleanup, &two);
    fake_lock_acquire(&lock_c);
    fake_lock_release(&lock_b); /* out of order release */
    ox_panic("with locks held");
}

OX_TEST(panic_releases_locks_and_runs_cleanups_in_reverse_order)
{
    fake_lock_acquire(&lock_outer); /* held outside the region: untouched */
    unwind_log_len = 0;
    CHECK_EQ(ox_catch_unwind(take_locks_and_panic, NULL, NULL, NULL), OX_EPANICKED);
    unwind_log[unwind_log_len] = '\0';
    CHECK_STR(unwind_log, "C21A");
    CHECK(!lock_a.held && lock_a.poisoned);
    CHECK(!lock_b.poisoned); /* released before the panic */
    CHECK(!lock_c.held && lock_c.poisoned);
    CHECK(lock_outer.held && !lock_outer.poisoned);
    fake_lock_release(&lock_outer);
}

static void *leave_lock_held(void *arg)
{
    fake_lock_acquire(arg);
    return NULL;
}

static void *release_outer_then_panic(void *arg)
{
    (void)arg;
    fake_lock_release(&lock_outer); /* taken outside this frame */
    fake_lock_acquire(&lock_b);
    ox_panic("after releasing an outer lock");
}

OX_TEST(panic_levels_survive_out_of_frame_locking)
{
    /* A lock taken in a frame that returned belongs to the enclosing
     * region: a later, separate panic must not release it. */
    CHECK_EQ(ox_catch_unwind(leave_lock_held, &lock_a, NULL, NULL), 0);
    CHECK_EQ(ox_catch_unwind(panics_with_arg, "x", NULL, NULL), OX_EPANICKED);
    CHECK(lock_a.held && !lock_a.poisoned);
    fake_lock_release(&lock_a);

    /* Releasing a lock from outside the frame, then taking another inside:
     * the inner one is still unwound. */
    fake_lock_acquire(&lock_outer);
    CHECK_EQ(ox_catch_unwind(release_outer_then_panic, NULL, NULL, NULL), OX_EPANICKED);
    CHECK(!lock_b.held && lock_b.poisoned);
    uint32_t n;
    ox__held_entries(&n);
    CHECK_EQ(n, 0);
}

OX_TEST_OPTS(panic_record_detects_self_deadlock, .expect_signal = SIGABRT,
             .expect_stderr = "would deadlock")
{
    fake_lock_acquire(&lock_a);
    ox__lock_before_block(&lock_a, &fake_ops, "here.c", 12);
}

static int hook_calls;
static char hook_message[64];
static void counting_hook(const ox_panic_payload *p)
{
    hook_calls++;
    snprintf(hook_message, sizeof hook_message, "%s", p->message);
}

OX_TEST(panic_hook_is_called_before_unwinding)
{
    ox_panic_hook old = ox_panic_set_hook(counting_hook);
    CHECK(old == ox_panic_default_hook);
    CHECK_EQ(ox_catch_unwind(panics_with_arg, "hooked", NULL, NULL), OX_EPANICKED);
    CHECK_EQ(hook_calls, 1);
    CHECK_STR(hook_message, "panicked with hooked");
    CHECK(ox_panic_set_hook(NULL) == counting_hook);
    CHECK(ox_panic_set_hook(NULL) == ox_panic_default_hook);
}

OX_TEST_OPTS(panic_default_hook_format, .expect_stderr = "\nthread 'worker' (")
{
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&b, "worker");
    ox_join_handle h;
    CHECK_EQ(ox_thread_builder_spawn(&b, panics_with_arg, "fmt", &h), 0);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(ox_catch_unwind(panics_with_arg, "unnamed", NULL, NULL), OX_EPANICKED);
}

static void *resume_payload(void *arg)
{
    ox_panic_resume(arg);
}

OX_TEST(panic_resume_does_not_call_hook_again)
{
    ox_panic_payload *p;
    ox_panic_set_hook(counting_hook);
    CHECK_EQ(ox_catch_unwind(panics_with_arg, "first", NULL, &p), OX_EPANICKED);
    CHECK_EQ(hook_calls, 1);
    ox_panic_payload *again;
    CHECK_EQ(ox_catch_unwind(resume_payload, p, NULL, &again), OX_EPANICKED);
    CHECK(again == p);
    CHECK_EQ(hook_calls, 1);
    ox_panic_payload_free(again);
}

OX_TEST_OPTS(panic_in_main_without_catch_exits_101, .expect_exit = 101,
             .expect_stderr = "main gives up\nnote: run with `OX_BACKTRACE=1`")
{
    fake_lock_acquire(&lock_a);
    ox_panic("main gives up");
}

static void panicking_cleanup(void *arg)
{
    (void)arg;
    ox_panic("second panic, from a cleanup");
}

static void *panic_with_bad_cleanup(void *arg)
{
    (void)arg;
    ox_cleanup_push(panicking_cleanup, NULL);
    ox_panic("first");
}

OX_TEST_OPTS(panic_while_panicking_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "panicked while processing a panic")
{
    (void)!ox_catch_unwind(panic_with_bad_cleanup, NULL, NULL, NULL);
}

OX_TEST_OPTS(panic_cleanup_pop_without_push_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_cleanup_pop: no cleanup is pushed")
{
    ox_cleanup_pop(true);
}

static void *thread_exits_holding_lock(void *arg)
{
    (void)arg;
    fake_lock_acquire(&lock_c);
    return NULL;
}

OX_TEST_OPTS(panic_thread_exit_holding_lock_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "exits holding fake lock")
{
    ox_join_handle h = ox_thread_spawn(thread_exits_holding_lock, NULL);
    (void)!ox_thread_join(&h, NULL, NULL);
}

OX_TEST(panic_thread_panicking_flag)
{
    CHECK(!ox_thread_panicking());
}

static void check_panicking(void *arg)
{
    *(int *)arg = ox_thread_panicking();
}

static void *panic_with_flag_cleanup(void *arg)
{
    ox_cleanup_push(check_panicking, arg);
    ox_panic("flag");
}

OX_TEST(panic_thread_panicking_true_in_cleanup)
{
    int seen = 0;
    CHECK_EQ(ox_catch_unwind(panic_with_flag_cleanup, &seen, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(seen, 1);
    CHECK(!ox_thread_panicking());
}

static void *many_locks_then_panic(void *arg)
{
    struct fake_lock *locks = arg;
    for (int i = 0; i < 100; i++)
        fake_lock_acquire(&locks[i]);
    ox_panic("deep");
}

OX_TEST(panic_record_grows_past_inline_capacity)
{
    static struct fake_lock locks[100];
    for (int i = 0; i < 100; i++)
        locks[i].name = 'a';
    CHECK_EQ(ox_catch_unwind(many_locks_then_panic, locks, NULL, NULL), OX_EPANICKED);
    for (int i = 0; i < 100; i++)
        CHECK(!locks[i].held && locks[i].poisoned);
}

/* The live record starts a cache line in every thread (unwind_record.h
 * says why): the main thread, a thread oxide started, one it did not. */
static void *record_alignment(void *arg)
{
    (void)arg;
    return (void *)((uintptr_t)ox__unwind_current() % OX__UNWIND_ALIGN);
}

OX_TEST(panic_record_starts_a_cache_line_in_every_thread)
{
    CHECK_EQ((uintptr_t)record_alignment(NULL), 0);
    void *misalignment = (void *)1;
    ox_join_handle h = ox_thread_spawn(record_alignment, NULL);
    CHECK_EQ(ox_thread_join(&h, &misalignment, NULL), 0);
    CHECK_EQ((uintptr_t)misalignment, 0);
    pthread_t foreign;
    misalignment = (void *)1;
    CHECK_EQ(pthread_create(&foreign, NULL, record_alignment, NULL), 0);
    CHECK_EQ(pthread_join(foreign, &misalignment), 0);
    CHECK_EQ((uintptr_t)misalignment, 0);
}

static void *foreign_panics(void *arg)
{
    (void)arg;
    ox_panic("no catch point here");
}

OX_TEST_OPTS(panic_in_foreign_thread_without_catch_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "has no catch point")
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, foreign_panics, NULL), 0);
    pthread_join(t, NULL);
}

struct storm {
    struct fake_lock locks[4];
    _Atomic long caught;
};

static void *panic_every_other(void *arg)
{
    long *i = arg;
    if (*i % 2)
        ox_panic("odd %ld", *i);
    return NULL;
}

static void *storm_worker(void *arg)
{
    struct storm *st = arg;
    long rounds = ox_test_scaled(20000);
    for (long i = 0; i < rounds; i++) {
        ox_panic_payload *p = NULL;
        int rc = ox_catch_unwind(panic_every_other, &i, NULL, &p);
        CHECK_EQ(rc, i % 2 ? OX_EPANICKED : 0);
        if (p) {
            CHECK(strncmp(p->message, "odd ", 4) == 0);
            ox_panic_payload_free(p);
            atomic_fetch_add_explicit(&st->caught, 1, memory_order_relaxed);
        }
    }
    uint32_t n;
    ox__held_entries(&n);
    CHECK_EQ(n, 0);
    return NULL;
}

OX_TEST(panic_storm_in_many_threads_keeps_records_separate)
{
    static struct storm st;
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_join_handle h[4];
    for (int i = 0; i < 4; i++)
        h[i] = ox_thread_spawn(storm_worker, &st);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(atomic_load(&st.caught), 4 * (ox_test_scaled(20000) / 2));
}
