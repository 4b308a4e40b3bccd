/* Reproducers from trying to break 36f0e6e (a task record keeps four
 * held-lock entries inline) and 3562def (a worker with an empty queue takes
 * a share of the injector). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: the unwind record, the idle count */

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- a share of the injector is not stranded behind a task that computes ----
 * Two workers. One runs a task that yields in a loop: its queue is never
 * empty, so it never steals, and it looks only at the injector (every
 * 61st tick). The other sleeps. Each round spawns two tasks from this
 * thread, each of which computes, without yielding, until both have
 * started. Taken from the injector one at a time, the sleeper (woken by
 * the first push) runs one and the yielder's worker takes the other at its
 * 61st look. A worker that takes both as a share runs one and queues the
 * other behind it, where the yielder's worker never looks: the pair never
 * meets. */
static struct {
    ox_runtime *rt;
    _Atomic int stop, yielding;
    _Atomic int started; /* this round's computing tasks that have started */
    _Atomic long yields;
} share;

static void *yield_until_stopped(void *arg)
{
    (void)arg;
    atomic_store(&share.yielding, 1);
    while (!atomic_load(&share.stop)) {
        ox_test_spin_ns(20000); /* some work between yields */
        atomic_fetch_add(&share.yields, 1);
        ox_task_yield();
    }
    return NULL;
}

static void *compute_until_both_started(void *arg)
{
    long round = (long)(intptr_t)arg;
    atomic_fetch_add(&share.started, 1);
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(2000));
    while (atomic_load(&share.started) < 2)
        if (ox_instant_now().ns > give_up)
            ox_test_fail(__FILE__, __LINE__,
                         "round %ld: the other task, spawned from a thread with this one, never "
                         "started (stranded behind this one in its worker's queue?)",
                         round);
    return NULL;
}

/* Whether one worker is asleep (idle, no searcher): the other runs the
 * yielder. */
static bool one_asleep(void)
{
    /* Relaxed: a snapshot; a wrong guess only makes the round test less. */
    uint32_t s = atomic_load_explicit(&share.rt->sched, memory_order_relaxed);
    return (s & 0xffffu) == 0 && (s >> 16) == 1;
}

OX_TEST_OPTS(break22_a_share_of_the_injector_is_not_stranded_behind_a_computing_task,
             .timeout_s = 60)
{
    share.rt = ox_test_runtime(2);
    ox_task_handle y = ox_test_spawn_on(share.rt, yield_until_stopped, NULL);
    while (!atomic_load(&share.yielding))
        ox_thread_yield();
    long rounds = ox_test_scaled(20);
    if (rounds < 5)
        rounds = 5;
    for (long r = 0; r < rounds; r++) {
        int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(2000));
        while (!one_asleep() && ox_instant_now().ns < give_up)
            ox_thread_sleep(OX_MICROS(100));
        atomic_store(&share.started, 0);
        ox_task_handle h[2];
        for (int i = 0; i < 2; i++)
            h[i] = ox_test_spawn_on(share.rt, compute_until_both_started, (void *)(intptr_t)r);
        for (int i = 0; i < 2; i++)
            CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
        CHECK_EQ(atomic_load(&share.started), 2);
    }
    atomic_store(&share.stop, 1);
    CHECK_EQ(ox_task_join(&y, NULL, NULL), 0);
    fprintf(stderr, "%ld rounds, %ld yields\n", rounds, atomic_load(&share.yields));
    CHECK(atomic_load(&share.yields) > 0);
    ox_runtime_shutdown(share.rt);
}

/* ---- a task's record past its four inline entries ----
 * A task record keeps OX__TASK_UNWIND_INLINE held-lock entries; the fifth
 * moves them to the heap (record.c, unwind.c). Each test below holds more
 * than that across suspensions on two workers, and checks the record
 * entry by entry: what any part reads or writes past a task record's
 * fourth entry, or a capacity lost on the way, shows up here (and past the
 * record's end, to AddressSanitizer). */
#define DEEP (OX__TASK_UNWIND_INLINE + 3)

/* The calling task's record holds exactly the objects of want[0, n), in
 * that order (NULL: a cleanup's entry), at catch level levels[i]. */
static void check_record(void *const *want, const uint16_t *levels, uint32_t n, int line)
{
    ox__unwind_state *s = ox__unwind_current();
    if (s->depth != n)
        ox_test_fail(__FILE__, line, "depth %u, want %u", s->depth, n);
    if (s->depth > s->capacity)
        ox_test_fail(__FILE__, line, "depth %u past capacity %u", s->depth, s->capacity);
    if (s->entries == ox__unwind_inline(s) && s->capacity > OX__TASK_UNWIND_INLINE)
        ox_test_fail(__FILE__, line, "a task record with %u entries inline", s->capacity);
    for (uint32_t i = 0; i < n; i++) {
        if (s->entries[i].object != want[i])
            ox_test_fail(__FILE__, line, "entry %u is %p, want %p", i, s->entries[i].object,
                         want[i]);
        if (s->entries[i].level != levels[i])
            ox_test_fail(__FILE__, line, "entry %u at level %u, want %u", i,
                         (unsigned)s->entries[i].level, (unsigned)levels[i]);
    }
}

/* Suspends once, a yield or a short sleep by turns: the task may resume
 * on the other worker. */
static void suspend(int i)
{
    if (i % 2 == 0)
        ox_task_yield();
    else
        CHECK_EQ(ox_task_sleep(OX_MICROS(1)), 0);
}

/* ---- nested catch frames, a condvar wait and a panic past four entries ----
 * A task pushes a cleanup and takes DEEP - 1 mutexes (the record moves to
 * the heap), then in a catch frame takes three more, waits on a condvar
 * with one of the outer mutexes (its entry is taken out and put back in
 * place: condvar.c) and panics. The panic releases and poisons only the
 * inner three; the outer entries, the cleanup and their levels are intact,
 * across suspensions, and the record of the next task on the same record
 * starts inline again. */
enum { NEST_TASKS = 4, INNER = 3 };

static struct nest {
    ox_mutex outer[DEEP - 1], inner[INNER];
    ox_condvar cv;
    _Atomic int cleanups;
    uint16_t base; /* the task's catch level (its own frame's, task.c) */
} nests[NEST_TASKS];

static void nest_cleanup(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
}

static void *nest_inner(void *arg)
{
    struct nest *n = arg;
    void *want[1 + DEEP - 1 + INNER];
    uint16_t levels[1 + DEEP - 1 + INNER];
    want[0] = NULL;
    levels[0] = n->base;
    for (int i = 0; i < DEEP - 1; i++) {
        want[1 + i] = &n->outer[i];
        levels[1 + i] = n->base;
    }
    for (int i = 0; i < INNER; i++) {
        CHECK_EQ(ox_mutex_lock(&n->inner[i]), 0);
        want[DEEP + i] = &n->inner[i];
        levels[DEEP + i] = (uint16_t)(n->base + 1);
        suspend(i);
        check_record(want, levels, (uint32_t)(DEEP + i + 1), __LINE__);
    }
    /* Out of the record and back into the same place, maybe elsewhere. */
    int rc = ox_condvar_wait_timeout(&n->cv, &n->outer[1], OX_MICROS(1));
    CHECK(rc == 0 || rc == OX_ETIMEDOUT);
    check_record(want, levels, DEEP + INNER, __LINE__);
    ox_panic("inner");
}

static void *nest_task(void *arg)
{
    struct nest *n = arg;
    ox__unwind_state *s = ox__unwind_current();
    CHECK_EQ(s->depth, 0u);
    CHECK_EQ(s->capacity, (uint32_t)OX__TASK_UNWIND_INLINE);
    CHECK(s->entries == ox__unwind_inline(s));
    n->base = s->level;
    void *want[DEEP];
    uint16_t levels[DEEP];
    for (int i = 0; i < DEEP; i++)
        levels[i] = n->base;
    ox_cleanup_push(nest_cleanup, &n->cleanups);
    want[0] = NULL;
    for (int i = 0; i < DEEP - 1; i++) {
        CHECK_EQ(ox_mutex_lock(&n->outer[i]), 0);
        want[1 + i] = &n->outer[i];
        suspend(i);
        check_record(want, levels, (uint32_t)(i + 2), __LINE__);
    }
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(nest_inner, n, NULL, &p), OX_EPANICKED);
    ox_panic_payload_free(p);
    suspend(1);
    check_record(want, levels, DEEP, __LINE__);
    for (int i = 0; i < INNER; i++) {
        CHECK(ox_mutex_is_poisoned(&n->inner[i]));
        ox_mutex_clear_poison(&n->inner[i]);
        CHECK_EQ(ox_mutex_try_lock(&n->inner[i]), 0); /* released */
        ox_mutex_unlock(&n->inner[i]);
    }
    CHECK_EQ(atomic_load(&n->cleanups), 0); /* the outer region's */
    for (int i = DEEP - 2; i >= 0; i--) {
        CHECK(!ox_mutex_is_poisoned(&n->outer[i]));
        ox_mutex_unlock(&n->outer[i]);
        suspend(i);
        check_record(want, levels, (uint32_t)(i + 1), __LINE__);
    }
    ox_cleanup_pop(true);
    CHECK_EQ(atomic_load(&n->cleanups), 1);
    atomic_store(&n->cleanups, 0);
    CHECK_EQ(ox__unwind_current()->depth, 0u);
    return NULL;
}

static void *nest_rounds(void *arg)
{
    struct nest *n = arg;
    long rounds = ox_test_scaled(40);
    if (rounds < 4)
        rounds = 4;
    for (long r = 0; r < rounds; r++) {
        ox_task_handle h = ox_task_spawn(nest_task, n);
        CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    }
    return NULL;
}

OX_TEST_OPTS(break22_nested_catch_frames_and_a_condvar_wait_past_a_task_s_inline_entries,
             .timeout_s = 60)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle hs[NEST_TASKS];
    for (int i = 0; i < NEST_TASKS; i++) {
        for (int j = 0; j < DEEP - 1; j++)
            nests[i].outer[j] = (ox_mutex)OX_MUTEX_INIT;
        for (int j = 0; j < INNER; j++)
            nests[i].inner[j] = (ox_mutex)OX_MUTEX_INIT;
        nests[i].cv = (ox_condvar)OX_CONDVAR_INIT;
        hs[i] = ox_test_spawn_on(rt, nest_rounds, &nests[i]);
    }
    for (int i = 0; i < NEST_TASKS; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}

/* ---- the dump, the checker and an abort see a deep task record ----
 * A task takes DEEP mutexes in order, moving between them, then blocks on
 * a gate this thread holds. The blocked dump lists every one it holds (it
 * reads the saved record, on the heap by then). With the lock-order
 * checker on, a second task that takes the last of them and then the
 * first closes a cycle only through the edge from the first task's
 * entry 0 to its entry DEEP - 1: one report. Then the first task is
 * aborted in a sleep while it still holds them all, and releases them. */
static ox_mutex chain[DEEP], gate = OX_MUTEX_INIT;
static _Atomic int chain_holding;

static void *hold_chain(void *arg)
{
    (void)arg;
    void *want[DEEP];
    uint16_t levels[DEEP];
    for (int i = 0; i < DEEP; i++)
        levels[i] = ox__unwind_current()->level;
    for (int i = 0; i < DEEP; i++) {
        CHECK_EQ(ox_mutex_lock(&chain[i]), 0);
        want[i] = &chain[i];
        suspend(i);
        check_record(want, levels, (uint32_t)(i + 1), __LINE__);
    }
    atomic_store(&chain_holding, 1);
    CHECK_EQ(ox_mutex_lock(&gate), 0); /* blocks: the dump looks now */
    ox_mutex_unlock(&gate);
    check_record(want, levels, DEEP, __LINE__);
    atomic_store(&chain_holding, 2);
    /* Aborted in this sleep, still holding them all. */
    CHECK_EQ(ox_task_sleep(OX_SECS(60)), OX_ECANCELED);
    check_record(want, levels, DEEP, __LINE__);
    for (int i = DEEP - 1; i >= 0; i--)
        ox_mutex_unlock(&chain[i]);
    return NULL;
}

static void *last_then_first(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_mutex_lock(&chain[DEEP - 1]), 0);
    CHECK_EQ(ox_mutex_lock(&chain[0]), 0);
    ox_mutex_unlock(&chain[0]);
    ox_mutex_unlock(&chain[DEEP - 1]);
    return NULL;
}

OX_TEST_OPTS(break22_the_dump_the_checker_and_an_abort_see_a_deep_task_record, .timeout_s = 60)
{
    for (int i = 0; i < DEEP; i++)
        chain[i] = (ox_mutex)OX_MUTEX_INIT;
    ox_runtime *rt = ox_test_runtime(2);
    CHECK_EQ(ox_mutex_lock(&gate), 0);
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_task_handle h = ox_test_spawn_on(rt, hold_chain, NULL);
    ox_test_wait_tasks_blocked_at("mutex", 1);
    CHECK_EQ(atomic_load(&chain_holding), 1);
    int count = 0;
    char *dump = ox_test_dump_blocked(&count);
    CHECK(count >= 1);
    for (int i = 0; i < DEEP; i++) {
        char held[64];
        snprintf(held, sizeof held, "holding mutex %p", (void *)&chain[i]);
        CHECK_CONTAINS(dump, held);
    }
    free(dump);
    ox_mutex_unlock(&gate);
    ox_test_wait_tasks_blocked_at("task sleep", 1);
    CHECK_EQ(atomic_load(&chain_holding), 2);
    ox_task_abort(&h);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    ox_task_handle k = ox_test_spawn_on(rt, last_then_first, NULL);
    CHECK_EQ(ox_task_join(&k, NULL, NULL), 0);
    char *text = ox_test_stderr_text();
    CHECK_EQ(ox_lockdep_reports(), 1u);
    CHECK_CONTAINS(text, "oxide lockdep: possible deadlock");
    free(text);
    for (int i = 0; i < DEEP; i++) {
        CHECK_EQ(ox_mutex_try_lock(&chain[i]), 0); /* all released */
        ox_mutex_unlock(&chain[i]);
    }
    ox_runtime_shutdown(rt);
}
