/* Scoped threads: borrowing, joining everything (also when the body
 * panics), early joins, and panics reported after the joins. */
#include "oxide.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

struct shared {
    int data[8];
    _Atomic int finished;
};

static void *fill_slot(void *arg)
{
    int *slot = arg;
    ox_thread_sleep(OX_MILLIS(2)); /* still running when the body returns */
    *slot *= 10;
    return NULL;
}

static void fill_body(ox_scope *s, void *arg)
{
    int *data = arg; /* borrowed from the caller's stack */
    for (int i = 0; i < 8; i++)
        ox_scope_spawn(s, fill_slot, &data[i]);
}

OX_TEST(scope_threads_borrow_the_stack_and_are_all_joined)
{
    int data[8];
    for (int i = 0; i < 8; i++)
        data[i] = i;
    ox_thread_scope(fill_body, data);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(data[i], i * 10);
}

static void *count_done(void *arg)
{
    struct shared *sh = arg;
    ox_thread_sleep(OX_MILLIS(20));
    atomic_fetch_add(&sh->finished, 1);
    return NULL;
}

static void body_panics(ox_scope *s, void *arg)
{
    for (int i = 0; i < 3; i++)
        ox_scope_spawn(s, count_done, arg);
    ox_panic("body gives up");
}

static void *run_scope_with_panicking_body(void *arg)
{
    ox_thread_scope(body_panics, arg);
    return NULL;
}

OX_TEST(scope_joins_all_threads_when_the_body_panics)
{
    struct shared sh = {.finished = 0};
    ox_panic_payload *p;
    CHECK_EQ(ox_catch_unwind(run_scope_with_panicking_body, &sh, NULL, &p), OX_EPANICKED);
    /* RFC 3151: not waiting would be unsound; all three finished. */
    CHECK_EQ(atomic_load(&sh.finished), 3);
    CHECK_STR(p->message, "body gives up"); /* the body's own panic continues */
    ox_panic_payload_free(p);
}

static void *panics_in_scope(void *arg)
{
    (void)arg;
    ox_panic("scoped failure");
}

static void body_unjoined_panic(ox_scope *s, void *arg)
{
    ox_scope_spawn(s, panics_in_scope, NULL);
    ox_scope_spawn(s, count_done, arg);
}

static void *run_scope_unjoined(void *arg)
{
    ox_thread_scope(body_unjoined_panic, arg);
    return NULL;
}

OX_TEST(scope_reports_unjoined_panic_after_joining_all)
{
    struct shared sh = {.finished = 0};
    ox_panic_payload *p;
    CHECK_EQ(ox_catch_unwind(run_scope_unjoined, &sh, NULL, &p), OX_EPANICKED);
    CHECK_EQ(atomic_load(&sh.finished), 1);
    CHECK_STR(p->message, "a scoped thread panicked");
    ox_panic_payload_free(p);
}

static void *return_double(void *arg)
{
    return (void *)((intptr_t)arg * 2);
}

static void body_joins_early(ox_scope *s, void *arg)
{
    int *ok = arg;
    ox_scoped_handle h = ox_scope_spawn(s, return_double, (void *)21);
    ox_scoped_handle bad = ox_scope_spawn(s, panics_in_scope, NULL);
    void *r;
    CHECK_EQ(ox_scoped_join(&h, &r, NULL), 0);
    CHECK_EQ((intptr_t)r, 42);
    ox_panic_payload *p;
    CHECK_EQ(ox_scoped_join(&bad, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "scoped failure");
    ox_panic_payload_free(p);
    *ok = 1;
}

OX_TEST(scope_early_join_and_collected_panic_is_not_reported_again)
{
    int ok = 0;
    ox_thread_scope(body_joins_early, &ok); /* must not panic */
    CHECK_EQ(ok, 1);
}

struct nested {
    ox_scope *scope;
    _Atomic int leaves;
};

static void *leaf(void *arg)
{
    struct nested *n = arg;
    ox_thread_sleep(OX_MILLIS(5));
    atomic_fetch_add(&n->leaves, 1);
    return NULL;
}

static void *spawner(void *arg)
{
    struct nested *n = arg;
    for (int i = 0; i < 4; i++)
        ox_scope_spawn(n->scope, leaf, n);
    return NULL;
}

static void body_nested(ox_scope *s, void *arg)
{
    struct nested *n = arg;
    n->scope = s;
    for (int i = 0; i < 4; i++)
        ox_scope_spawn(s, spawner, n);
}

OX_TEST(scope_threads_may_spawn_into_the_scope)
{
    struct nested n = {.leaves = 0};
    for (int round = 0; round < 20; round++) {
        atomic_store(&n.leaves, 0);
        ox_thread_scope(body_nested, &n);
        CHECK_EQ(atomic_load(&n.leaves), 16);
    }
}

static void body_join_twice(ox_scope *s, void *arg)
{
    (void)arg;
    ox_scoped_handle h = ox_scope_spawn(s, return_double, NULL);
    CHECK_EQ(ox_scoped_join(&h, NULL, NULL), 0);
    (void)!ox_scoped_join(&h, NULL, NULL);
}

OX_TEST_OPTS(scope_join_twice_aborts, .expect_signal = SIGABRT, .expect_stderr = "already joined")
{
    ox_thread_scope(body_join_twice, NULL);
}

static _Atomic long total;
static void *add_range(void *arg)
{
    long *range = arg;
    long sum = 0;
    for (long i = range[0]; i < range[1]; i++)
        sum += i;
    atomic_fetch_add(&total, sum);
    return NULL;
}

static void body_sum(ox_scope *s, void *arg)
{
    long(*ranges)[2] = arg;
    for (int i = 0; i < 4; i++)
        ox_scope_spawn(s, add_range, ranges[i]);
}

OX_TEST(scope_parallel_sum_is_exact)
{
    long n = ox_test_scaled(4000000);
    long ranges[4][2];
    for (int i = 0; i < 4; i++) {
        ranges[i][0] = n / 4 * i;
        ranges[i][1] = i == 3 ? n : n / 4 * (i + 1);
    }
    ox_thread_scope(body_sum, ranges);
    CHECK_EQ(atomic_load(&total), n * (n - 1) / 2);
}

struct escaped {
    ox_scoped_handle handle;
};

static void body_lets_handle_escape(ox_scope *s, void *arg)
{
    struct escaped *e = arg;
    e->handle = ox_scope_spawn(s, return_double, NULL);
}

/* Rust's borrow checker forbids this; oxide names it instead of reporting
 * a join through a copy (the scope joined and freed the thread). */
OX_TEST_OPTS(scope_handle_used_after_scope_says_so, .expect_signal = SIGABRT,
             .expect_stderr = "used after its scope ended")
{
    struct escaped e;
    ox_thread_scope(body_lets_handle_escape, &e);
    (void)!ox_scoped_join(&e.handle, NULL, NULL);
}

static void body_join_copy_twice(ox_scope *s, void *arg)
{
    (void)arg;
    ox_scoped_handle h = ox_scope_spawn(s, return_double, NULL);
    ox_scoped_handle copy = h;
    CHECK_EQ(ox_scoped_join(&h, NULL, NULL), 0);
    (void)!ox_scoped_join(&copy, NULL, NULL);
}

OX_TEST_OPTS(scope_join_copy_twice_says_joined_twice, .expect_signal = SIGABRT,
             .expect_stderr = "ox_scoped_join: thread joined twice")
{
    ox_thread_scope(body_join_copy_twice, NULL);
}

/* ox_scope_builder_spawn: the builder's name reaches the thread, the
 * handle joins early with the result, and a bad builder (a name too long)
 * is refused with an error (nothing spawned) instead of an abort. */
static void *report_name(void *arg)
{
    (void)arg;
    const char *name = ox_thread_name(ox_thread_current());
    return (void *)(intptr_t)(name != NULL && strcmp(name, "scoped worker") == 0);
}

static void builder_body(ox_scope *s, void *arg)
{
    int *refused = arg;
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&b, "scoped worker");
    ox_scoped_handle h;
    CHECK_EQ(ox_scope_builder_spawn(s, &b, report_name, NULL, &h), 0);
    void *named = NULL;
    CHECK_EQ(ox_scoped_join(&h, &named, NULL), 0);
    CHECK_EQ((intptr_t)named, 1);
    /* A second one left for the scope to join. */
    CHECK_EQ(ox_scope_builder_spawn(s, &b, report_name, NULL, &h), 0);
    static char long_name[2048];
    memset(long_name, 'x', sizeof long_name - 1);
    ox_thread_builder bad = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&bad, long_name);
    *refused = ox_scope_builder_spawn(s, &bad, report_name, NULL, &h);
}

OX_TEST(scope_builder_spawn_names_and_refuses)
{
    int refused = 0;
    ox_thread_scope(builder_body, &refused);
    CHECK_EQ(refused, OX_ENAMETOOLONG);
}
