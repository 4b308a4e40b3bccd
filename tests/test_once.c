/* Once, OnceLock, LazyLock: exactly-once under contention, poisoning
 * through panics and recovery with call_force, set races, lazy statics. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8

/* ---- Once ---- */

static void count_call(void *arg)
{
    atomic_fetch_add_explicit((_Atomic int *)arg, 1, memory_order_relaxed);
}

OX_TEST(once_zero_initialised_and_static)
{
    static ox_once s = OX_ONCE_INIT;
    ox_once z;
    memset(&z, 0, sizeof z);
    _Atomic int calls = 0;
    CHECK(!ox_once_is_completed(&s));
    CHECK(!ox_once_is_completed(&z));
    ox_once_call(&s, count_call, &calls);
    ox_once_call(&s, count_call, &calls);
    ox_once_call(&z, count_call, &calls);
    ox_once_call(&z, count_call, &calls);
    CHECK_EQ(atomic_load(&calls), 2);
    CHECK(ox_once_is_completed(&s));
    CHECK(ox_once_is_completed(&z));
}

/* Many Onces, each raced by THREADS threads released together by a
 * barrier; the initialiser writes plain (non-atomic) data that every caller
 * reads after its call returns: a missing happens-before edge is a data race
 * (TSan) or a wrong value. */
typedef struct once_round {
    ox_once once;
    _Atomic int runs;
    int data[4]; /* written only by the initialiser */
} once_round;

static struct {
    once_round *rounds;
    long nrounds;          /* at most (the array's length) */
    ox_test_budget budget; /* racer 0 says which round is the last */
    _Atomic long last;     /* that round, set before racer 0 starts it */
    ox_barrier start;
    _Atomic long bad;
} race;

static void init_round(void *arg)
{
    once_round *r = arg;
    atomic_fetch_add_explicit(&r->runs, 1, memory_order_relaxed);
    /* Linger sometimes so that the others queue up and sleep. */
    if ((r - race.rounds) % 8 == 0)
        ox_thread_sleep(OX_MICROS(200));
    for (int i = 0; i < 4; i++)
        r->data[i] = (int)(r - race.rounds) + i;
}

static void *once_racer(void *arg)
{
    bool first = arg != NULL;
    for (long i = 0; i < race.nrounds; i++) {
        once_round *r = &race.rounds[i];
        if (first && !ox_test_budget_more(&race.budget, i + 1))
            atomic_store(&race.last, i); /* the others read it after the barrier */
        ox_barrier_wait(&race.start);
        ox_once_call(&r->once, init_round, r);
        CHECK(ox_once_is_completed(&r->once));
        for (int k = 0; k < 4; k++)
            if (r->data[k] != (int)i + k)
                atomic_fetch_add(&race.bad, 1);
        if (atomic_load(&race.last) == i)
            break;
    }
    return NULL;
}

OX_TEST(once_runs_exactly_once_under_contention)
{
    race.nrounds = ox_test_scaled(400);
    race.budget = ox_test_budget_start(50, race.nrounds);
    race.last = -1;
    race.rounds = calloc((size_t)race.nrounds, sizeof *race.rounds);
    CHECK(race.rounds != NULL);
    CHECK_EQ(ox_barrier_init(&race.start, THREADS), 0);
    ox_join_handle h[THREADS];
    for (int t = 0; t < THREADS; t++)
        h[t] = ox_thread_spawn(once_racer, t == 0 ? &race : NULL);
    for (int t = 0; t < THREADS; t++)
        CHECK_EQ(ox_thread_join(&h[t], NULL, NULL), 0);
    long rounds = atomic_load(&race.last) + 1;
    CHECK(rounds >= race.budget.min);
    for (long i = 0; i < race.nrounds; i++)
        CHECK_EQ(atomic_load(&race.rounds[i].runs), i < rounds);
    CHECK_EQ(atomic_load(&race.bad), 0);
    free(race.rounds);
}

static void panicking_init(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
    ox_panic("initialiser failed");
}

typedef struct call_args {
    ox_once *once;
    void (*fn)(void *);
    void *arg;
} call_args;

static void *call_once_in_catch(void *arg)
{
    call_args *c = arg;
    ox_once_call(c->once, c->fn, c->arg);
    return NULL;
}

typedef struct force_record {
    _Atomic int runs;
    bool saw_poison;
} force_record;

static void force_init(void *arg, const ox_once_state *state)
{
    force_record *r = arg;
    atomic_fetch_add(&r->runs, 1);
    r->saw_poison = ox_once_state_is_poisoned(state);
}

OX_TEST(once_panic_poisons_and_force_recovers)
{
    static ox_once once = OX_ONCE_INIT;
    _Atomic int runs = 0;
    call_args c = {&once, panicking_init, &runs};
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(call_once_in_catch, &c, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "initialiser failed");
    ox_panic_payload_free(p);
    CHECK_EQ(atomic_load(&runs), 1);
    CHECK(!ox_once_is_completed(&once));

    /* A plain call on a poisoned Once panics, as Rust's, at the caller. */
    c.fn = count_call;
    p = NULL;
    CHECK_EQ(ox_catch_unwind(call_once_in_catch, &c, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "Once instance has previously been poisoned");
    CHECK(strstr(p->file, "test_once.c") != NULL);
    ox_panic_payload_free(p);
    CHECK_EQ(atomic_load(&runs), 1);

    /* call_force runs, is told about the poison, and clears it. */
    force_record r = {0};
    ox_once_call_force(&once, force_init, &r);
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK(r.saw_poison);
    CHECK(ox_once_is_completed(&once));
    ox_once_call_force(&once, force_init, &r);
    ox_once_call(&once, count_call, &runs);
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK_EQ(atomic_load(&runs), 1);

    /* On a fresh Once, call_force is told there was no poison. */
    ox_once fresh = OX_ONCE_INIT;
    force_record r2 = {0};
    ox_once_call_force(&fresh, force_init, &r2);
    CHECK_EQ(atomic_load(&r2.runs), 1);
    CHECK(!r2.saw_poison);
}

/* The runner of a Once panics while others wait on it: every waiter wakes
 * and panics (poisoned), none runs its function; a later call_force runs. */
static ox_once wake_once;
static _Atomic int wake_waiter_runs;

static void slow_panicking_init(void *arg)
{
    (void)arg;
    /* Until all four waiters have queued behind this run. */
    ox_test_wait_blocked(&wake_once, 4, NULL);
    ox_panic("runner panics with waiters queued");
}

static void *wake_runner(void *arg)
{
    (void)arg;
    ox_once_call(&wake_once, slow_panicking_init, NULL);
    return NULL;
}

static void *wake_waiter(void *arg)
{
    (void)arg;
    while (atomic_load(&wake_once.state) == OX__ONCE_INCOMPLETE)
        ox_thread_yield(); /* arrive while the runner runs */
    ox_once_call(&wake_once, count_call, &wake_waiter_runs);
    return (void *)1; /* not reached: the Once is poisoned */
}

OX_TEST(once_panic_wakes_waiters_who_panic)
{
    ox_join_handle runner = ox_thread_spawn(wake_runner, NULL);
    ox_join_handle w[4];
    for (int i = 0; i < 4; i++)
        w[i] = ox_thread_spawn(wake_waiter, NULL);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_thread_join(&runner, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "runner panics with waiters queued");
    ox_panic_payload_free(p);
    for (int i = 0; i < 4; i++) {
        p = NULL;
        CHECK_EQ(ox_thread_join(&w[i], NULL, &p), OX_EPANICKED);
        CHECK_STR(p->message, "Once instance has previously been poisoned");
        ox_panic_payload_free(p);
    }
    CHECK_EQ(atomic_load(&wake_waiter_runs), 0);
    force_record r = {0};
    ox_once_call_force(&wake_once, force_init, &r);
    CHECK(r.saw_poison);
    CHECK(ox_once_is_completed(&wake_once));
}

/* A force waiter queued behind a panicking runner takes over. */
static ox_once takeover_once;

static void slow_panicking_init2(void *arg)
{
    (void)arg;
    while (atomic_load(&takeover_once.state) != OX__ONCE_QUEUED)
        ox_thread_yield();
    ox_panic("first runner fails");
}

static void *takeover_runner(void *arg)
{
    (void)arg;
    ox_once_call(&takeover_once, slow_panicking_init2, NULL);
    return NULL;
}

static void *takeover_forcer(void *arg)
{
    while (atomic_load(&takeover_once.state) == OX__ONCE_INCOMPLETE)
        ox_thread_yield();
    ox_once_call_force(&takeover_once, force_init, arg);
    return NULL;
}

OX_TEST(once_force_waiter_takes_over_after_panic)
{
    force_record r = {0};
    ox_join_handle runner = ox_thread_spawn(takeover_runner, NULL);
    ox_join_handle forcer = ox_thread_spawn(takeover_forcer, &r);
    CHECK_EQ(ox_thread_join(&runner, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(ox_thread_join(&forcer, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&r.runs), 1);
    CHECK(r.saw_poison);
    CHECK(ox_once_is_completed(&takeover_once));
}

static ox_once recursive_once;

static void recursive_init(void *arg)
{
    ox_once_call(&recursive_once, count_call, arg);
}

OX_TEST_OPTS(once_recursive_call_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "from inside its own initialiser")
{
    _Atomic int calls = 0;
    ox_once_call(&recursive_once, recursive_init, &calls);
}

/* A panic that the initialiser catches itself does not poison the Once. */
static void *panic_inside(void *arg)
{
    (void)arg;
    ox_panic("caught inside");
}

static void init_catching(void *arg)
{
    CHECK_EQ(ox_catch_unwind(panic_inside, NULL, NULL, NULL), OX_EPANICKED);
    atomic_fetch_add((_Atomic int *)arg, 1);
}

OX_TEST(once_inner_caught_panic_does_not_poison)
{
    ox_once once = OX_ONCE_INIT;
    _Atomic int calls = 0;
    ox_once_call(&once, init_catching, &calls);
    CHECK(ox_once_is_completed(&once));
    CHECK_EQ(atomic_load(&calls), 1);
}

/* ---- OnceLock ---- */

static struct {
    ox_once_lock lock;
    ox_barrier start;
    int values[THREADS];
    _Atomic int winners;
    _Atomic int losers;
    _Atomic long mismatches;
} set_race;

static void *set_racer(void *arg)
{
    int id = (int)(intptr_t)arg;
    ox_barrier_wait(&set_race.start);
    int rc = ox_once_lock_set(&set_race.lock, &set_race.values[id]);
    if (rc == 0) {
        atomic_fetch_add(&set_race.winners, 1);
        if (ox_once_lock_get(&set_race.lock) != &set_race.values[id])
            atomic_fetch_add(&set_race.mismatches, 1);
    } else {
        CHECK_EQ(rc, OX_EALREADY);
        atomic_fetch_add(&set_race.losers, 1);
        /* The winner's value is there, and it is not ours. */
        int *v = ox_once_lock_get(&set_race.lock);
        if (v == NULL || v == &set_race.values[id] || *v != (int)(v - set_race.values))
            atomic_fetch_add(&set_race.mismatches, 1);
    }
    return NULL;
}

OX_TEST(once_lock_set_race_has_one_winner)
{
    long rounds = ox_test_scaled(200);
    for (long r = 0; r < rounds; r++) {
        set_race.lock = (ox_once_lock)OX_ONCE_LOCK_INIT;
        atomic_store(&set_race.winners, 0);
        atomic_store(&set_race.losers, 0);
        for (int i = 0; i < THREADS; i++)
            set_race.values[i] = i;
        CHECK_EQ(ox_barrier_init(&set_race.start, THREADS), 0);
        ox_join_handle h[THREADS];
        for (int t = 0; t < THREADS; t++)
            h[t] = ox_thread_spawn(set_racer, (void *)(intptr_t)t);
        for (int t = 0; t < THREADS; t++)
            CHECK_EQ(ox_thread_join(&h[t], NULL, NULL), 0);
        CHECK_EQ(atomic_load(&set_race.winners), 1);
        CHECK_EQ(atomic_load(&set_race.losers), THREADS - 1);
    }
    CHECK_EQ(atomic_load(&set_race.mismatches), 0);
}

OX_TEST(once_lock_get_set_take)
{
    static ox_once_lock lock = OX_ONCE_LOCK_INIT;
    int a = 1, b = 2;
    CHECK(ox_once_lock_get(&lock) == NULL);
    CHECK(!ox_once_lock_is_set(&lock));
    CHECK_EQ(ox_once_lock_set(&lock, &a), 0);
    CHECK_EQ(ox_once_lock_set(&lock, &b), OX_EALREADY);
    CHECK(ox_once_lock_get(&lock) == &a);
    CHECK(ox_once_lock_is_set(&lock));
    CHECK(ox_once_lock_take(&lock) == &a);
    CHECK(ox_once_lock_get(&lock) == NULL);
    CHECK(ox_once_lock_take(&lock) == NULL);
    CHECK_EQ(ox_once_lock_set(&lock, &b), 0);
    CHECK(ox_once_lock_get(&lock) == &b);
}

static _Atomic int init_runs;
static int init_value = 42;

static void *slow_init(void *arg)
{
    atomic_fetch_add(&init_runs, 1);
    ox_thread_sleep(OX_MILLIS(5)); /* others pile up behind */
    return arg;
}

static ox_once_lock shared_cell = OX_ONCE_LOCK_INIT;

static void *get_or_init_racer(void *arg)
{
    (void)arg;
    return ox_once_lock_get_or_init(&shared_cell, slow_init, &init_value);
}

OX_TEST(once_lock_get_or_init_runs_init_once)
{
    ox_join_handle h[THREADS];
    for (int t = 0; t < THREADS; t++)
        h[t] = ox_thread_spawn(get_or_init_racer, NULL);
    for (int t = 0; t < THREADS; t++) {
        void *result = NULL;
        CHECK_EQ(ox_thread_join(&h[t], &result, NULL), 0);
        CHECK(result == &init_value);
    }
    CHECK_EQ(atomic_load(&init_runs), 1);
    CHECK(ox_once_lock_get(&shared_cell) == &init_value);
}

static void *panicking_value_init(void *arg)
{
    (void)arg;
    ox_panic("no value today");
}

static void *get_or_init_panicking(void *arg)
{
    return ox_once_lock_get_or_init((ox_once_lock *)arg, panicking_value_init, NULL);
}

OX_TEST(once_lock_init_panic_leaves_it_empty)
{
    ox_once_lock lock = OX_ONCE_LOCK_INIT;
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(get_or_init_panicking, &lock, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "no value today");
    ox_panic_payload_free(p);
    /* Not poisoned (as Rust's OnceLock): empty, and the next init runs. */
    CHECK(ox_once_lock_get(&lock) == NULL);
    CHECK(ox_once_lock_get_or_init(&lock, slow_init, &init_value) == &init_value);
    CHECK(ox_once_lock_get(&lock) == &init_value);
    int other = 7;
    CHECK_EQ(ox_once_lock_set(&lock, &other), OX_EALREADY);
}

/* ---- LazyLock ---- */

static _Atomic int table_builds;

static void *build_table(void *arg)
{
    atomic_fetch_add(&table_builds, 1);
    int n = (int)(intptr_t)arg;
    int *t = malloc((size_t)n * sizeof *t);
    CHECK(t != NULL);
    for (int i = 0; i < n; i++)
        t[i] = i * i;
    ox_thread_sleep(OX_MILLIS(2));
    return t;
}

static ox_lazy_lock squares = OX_LAZY_LOCK_INIT(build_table, (void *)(intptr_t)100);

static void *lazy_reader(void *arg)
{
    (void)arg;
    long sum = 0;
    for (int i = 0; i < 1000; i++) {
        const int *t = ox_lazy_lock_get(&squares);
        sum += t[i % 100];
    }
    return (void *)(intptr_t)sum;
}

OX_TEST(lazy_lock_computes_once_on_first_use)
{
    CHECK_EQ(atomic_load(&table_builds), 0);
    ox_join_handle h[THREADS];
    for (int t = 0; t < THREADS; t++)
        h[t] = ox_thread_spawn(lazy_reader, NULL);
    long expect = 0;
    for (int i = 0; i < 1000; i++)
        expect += (i % 100) * (i % 100);
    for (int t = 0; t < THREADS; t++) {
        void *r = NULL;
        CHECK_EQ(ox_thread_join(&h[t], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, expect);
    }
    CHECK_EQ(atomic_load(&table_builds), 1);
    free(ox_lazy_lock_get(&squares));
}

static void *lazy_panicking_init(void *arg)
{
    (void)arg;
    ox_panic("lazy init failed");
}

static ox_lazy_lock broken = OX_LAZY_LOCK_INIT(lazy_panicking_init, NULL);

static void *touch_broken(void *arg)
{
    (void)arg;
    return ox_lazy_lock_get(&broken);
}

OX_TEST(lazy_lock_panicking_init_poisons)
{
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(touch_broken, NULL, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "lazy init failed");
    ox_panic_payload_free(p);
    p = NULL;
    CHECK_EQ(ox_catch_unwind(touch_broken, NULL, NULL, &p), OX_EPANICKED);
    CHECK_STR(p->message, "LazyLock instance has previously been poisoned");
    ox_panic_payload_free(p);
}
