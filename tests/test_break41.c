/* break41: attacks on the Arc count stored minus one and signed, whose
 * clone and drop test only its sign (helper-61, session 31). Found: a clone
 * through a pointer that holds no reference, racing the last drop, took
 * the count from -1 to 0 (gcc's clone tests the new count), and with its
 * drop back to -1 both threads claimed the value: drop_fn ran twice. The
 * claim is now a CAS from -1. */
#define _GNU_SOURCE
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a stray clone racing the last drop ----
 * Thread B (the misuse) waits until the count reads 0 (the last drop has
 * decremented), then clones, and (stray_drops) drops its clone at once. A
 * Weak keeps the memory, so the count can be checked. Every run must
 * abort, at the clone (the count is DEAD, or clang's clone saw -1) or at
 * the drop's claim (gcc's clone took -1 to 0), and drop_fn must never run
 * twice. Each run is a child process, since each aborts. */

typedef struct stray_result {
    _Atomic long drop_fn_runs; /* in the current child */
    _Atomic long twice;        /* children in which drop_fn ran twice */
} stray_result;

static stray_result *stray_out;
static void *stray_p;
static _Atomic int stray_ready;
static bool stray_drops;

static void count_drop_fn(void *p)
{
    (void)p;
    if (atomic_fetch_add(&stray_out->drop_fn_runs, 1) == 1)
        atomic_fetch_add(&stray_out->twice, 1);
}

static void *stray_cloner(void *arg)
{
    (void)arg;
    atomic_store(&stray_ready, 1);
    while (ox_arc_strong_count(stray_p) != 0)
        ;
    void *q = ox_arc_clone(stray_p); /* the misuse: after the last drop */
    if (stray_drops)
        ox_arc_drop(q);
    return NULL;
}

static void stray_child(void *unused)
{
    (void)unused;
    stray_p = ox_arc_new(8, count_drop_fn);
    ox_weak *w = ox_arc_downgrade(stray_p);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, stray_cloner, NULL), 0);
    while (!atomic_load(&stray_ready))
        ;
    for (volatile int i = 0; i < 200; i++)
        ;
    ox_arc_drop(stray_p); /* the last drop */
    pthread_join(t, NULL);
    ox_weak_drop(w);
    _exit(0); /* not caught */
}

static void race_stray_clones(bool drops)
{
    stray_drops = drops;
    stray_out =
        mmap(NULL, sizeof *stray_out, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(stray_out != MAP_FAILED);
    ox_test_budget b = ox_test_budget_start_s(ox_test_scaled(200), ox_test_scaled(1000), 4.0);
    long runs = 0, uncaught = 0;
    for (; ox_test_budget_more(&b, runs); runs++) {
        atomic_store(&stray_out->drop_fn_runs, 0);
        char buf[4096];
        int status = ox_test_fork_stderr(stray_child, NULL, buf, sizeof buf);
        bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
                       strstr(buf, "no strong reference left") != NULL;
        if (!aborted && uncaught++ == 0)
            fprintf(stderr, "run %ld not caught (status 0x%x): %s\n", runs, status, buf);
    }
    CHECK_EQ(uncaught, 0);
    CHECK_EQ(atomic_load(&stray_out->twice), 0);
    munmap(stray_out, sizeof *stray_out);
}

OX_TEST_OPTS(break41_clone_racing_the_last_drop_always_aborts, .timeout_s = 60)
{
    race_stray_clones(false);
}

OX_TEST_OPTS(break41_clone_and_drop_racing_the_last_drop_never_run_drop_fn_twice, .timeout_s = 60)
{
    race_stray_clones(true);
}

/* ---- the overflow boundary ----
 * From OX__ARC_MAX_REFCOUNT + 1 references, gcc's clone aborts as Rust's
 * does. clang's tests the old count's sign and lets this one more clone
 * through (the count wraps to PTRDIFF_MIN, and reads as 0); then the drop
 * finds the wrapped count and aborts as an overflow too, not as a misuse. */
OX_TEST_OPTS(break41_clone_past_the_limit_aborts_as_overflow, .expect_signal = SIGABRT,
             .expect_stderr = "overflowed")
{
    void *p = ox_arc_new(8, NULL);
    ox_weak *w = ox_arc_downgrade(p);
    ox_test_arc_set_strong(p, OX__ARC_MAX_REFCOUNT + 1);
    void *extra = ox_arc_clone(p); /* gcc: aborts here */
    ox_arc_drop(extra);            /* clang: aborts here */
    ox_weak_drop(w);
}

/* ---- held: races that came out right (TSan and ASan clean) ----
 * Owners write the payload plainly, then give up their reference by drop,
 * into_inner or try_unwrap, racing a Weak that upgrades, writes, reads the
 * counts and gives up again: the value goes to exactly one place (a
 * winner or drop_fn), and every owner's write is visible there. With the
 * claim's acquire made relaxed, TSan reports the first test. */
#define HELD_N 3

typedef struct val {
    long slot[HELD_N + 1]; /* plain writes, one per owner (HELD_N: the held_upgrader) */
    long round;
} val;

static _Atomic long held_drops, held_bad;

static void held_check_drop(void *p)
{
    val *v = p;
    for (int i = 0; i <= HELD_N; i++)
        if (v->slot[i] != 0 && v->slot[i] != v->round)
            atomic_fetch_add(&held_bad, 1);
    atomic_fetch_add(&held_drops, 1);
}

typedef struct owner_arg {
    val *v;
    ox_weak *w;
    int id;
    int mode; /* 0 drop, 1 into_inner, 2 try_unwrap spin then drop */
    _Atomic int *winners;
    val out;
} owner_arg;

static void *held_owner(void *arg)
{
    owner_arg *a = arg;
    a->v->slot[a->id] = a->v->round; /* plain write before giving up */
    switch (a->mode) {
    case 0:
        ox_arc_drop(a->v);
        break;
    case 1:
        if (ox_arc_into_inner(a->v, &a->out, sizeof a->out)) {
            atomic_fetch_add(a->winners, 1);
            for (int i = 0; i < HELD_N; i++)
                if (a->out.slot[i] != a->out.round)
                    atomic_fetch_add(&held_bad, 1);
        }
        break;
    case 2:
        if (ox_arc_try_unwrap(a->v, &a->out, sizeof a->out) == 0) {
            atomic_fetch_add(a->winners, 1);
            for (int i = 0; i < HELD_N; i++)
                if (a->out.slot[i] != a->out.round)
                    atomic_fetch_add(&held_bad, 1);
        } else
            ox_arc_drop(a->v);
        break;
    }
    return NULL;
}

static void *held_upgrader(void *arg)
{
    owner_arg *a = arg;
    for (int i = 0; i < 50; i++) {
        val *v = ox_weak_upgrade(a->w);
        if (v == NULL)
            break;
        v->slot[HELD_N] = v->round; /* plain write by an upgraded owner */
        (void)ox_weak_strong_count(a->w);
        (void)ox_weak_weak_count(a->w);
        if (a->mode == 1) {
            val out;
            if (ox_arc_into_inner(v, &out, sizeof out))
                atomic_fetch_add(a->winners, 1);
        } else
            ox_arc_drop(v);
    }
    ox_weak_drop(a->w);
    return NULL;
}

static void held_round(int mode, long r)
{
    _Atomic int winners = 0;
    val *v = ox_arc_new(sizeof *v, held_check_drop);
    v->round = r + 1;
    owner_arg args[HELD_N + 1];
    ox_join_handle h[HELD_N + 1];
    args[HELD_N] = (owner_arg){.w = ox_arc_downgrade(v), .mode = mode, .winners = &winners};
    for (int i = 0; i < HELD_N; i++)
        args[i] = (owner_arg){
            .v = i == 0 ? v : ox_arc_clone(v), .id = i, .mode = mode, .winners = &winners};
    h[HELD_N] = ox_thread_spawn(held_upgrader, &args[HELD_N]);
    for (int i = 0; i < HELD_N; i++)
        h[i] = ox_thread_spawn(held_owner, &args[i]);
    for (int i = 0; i <= HELD_N; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    long d = atomic_load(&held_drops);
    if (mode == 0)
        CHECK_EQ(winners, 0);
    else
        CHECK(winners <= 1);
    /* the value went to exactly one place: a winner or drop_fn */
    CHECK_EQ(winners + d, 1);
    atomic_store(&held_drops, 0);
}

OX_TEST(break41_held_drop_into_inner_try_unwrap_race_upgrade)
{
    /* A budget per mode: 3000 rounds of each took 93-116 s under qemu
     * (the aarch64 suites), against a 120 s timeout. */
    for (int mode = 0; mode < 3; mode++) {
        ox_test_budget b = ox_test_budget_start_s(ox_test_scaled(200), ox_test_scaled(3000), 3.0);
        for (long r = 0; ox_test_budget_more(&b, r); r++)
            held_round(mode, r);
    }
    CHECK_EQ(atomic_load(&held_bad), 0);
}

/* get_mut and strong_count == 1 after the other owners dropped in other
 * threads: their plain writes happen-before the sole owner's. */
static void *held_write_and_drop(void *p)
{
    val *v = p;
    v->slot[1] = 7;
    ox_arc_drop(v);
    return NULL;
}

OX_TEST(break41_held_get_mut_and_count_after_drops)
{
    for (long r = 0; r < ox_test_scaled(3000); r++) {
        val *v = ox_arc_new(sizeof *v, NULL);
        ox_join_handle h = ox_thread_spawn(held_write_and_drop, ox_arc_clone(v));
        if (r % 2) {
            val *m;
            while ((m = ox_arc_get_mut(v)) == NULL)
                ;
            m->slot[1] = 8;
        } else {
            while (ox_arc_strong_count(v) != 1)
                ;
            CHECK_EQ(v->slot[1], 7);
        }
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        ox_arc_drop(v);
    }
}
