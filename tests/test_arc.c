/* Arc and Weak: counts, drop exactly once under concurrent clone/drop,
 * upgrade never resurrects, get_mut, overflow and underflow abort. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4

typedef struct payload {
    _Atomic int dropped; /* set by drop_fn: an upgrade must never see it */
    long slots[THREADS]; /* plain writes by the owners, read by drop_fn */
    long expect;
} payload;

static _Atomic long drops;
static _Atomic long drop_errors;

static void count_drop(void *p)
{
    payload *v = p;
    if (atomic_exchange(&v->dropped, 1) != 0)
        atomic_fetch_add(&drop_errors, 1);
    /* Every owner's plain write before its drop is visible here (the
     * release decrement + acquire fence edge). */
    for (int t = 0; t < THREADS; t++)
        if (v->expect != 0 && v->slots[t] != v->expect)
            atomic_fetch_add(&drop_errors, 1);
    atomic_fetch_add(&drops, 1);
}

OX_TEST(arc_counts_clone_drop)
{
    payload *p = ox_arc_new(sizeof *p, count_drop);
    CHECK(p != NULL);
    CHECK_EQ((uintptr_t)p % _Alignof(max_align_t), 0);
    CHECK_EQ(atomic_load(&p->dropped), 0); /* zeroed */
    CHECK_EQ(p->slots[0], 0);
    CHECK_EQ(ox_arc_strong_count(p), 1);
    CHECK_EQ(ox_arc_weak_count(p), 0);
    payload *q = ox_arc_clone(p);
    CHECK(q == p);
    CHECK(ox_arc_ptr_eq(p, q));
    CHECK_EQ(ox_arc_strong_count(p), 2);
    ox_arc_drop(q);
    CHECK_EQ(ox_arc_strong_count(p), 1);
    CHECK_EQ(atomic_load(&drops), 0);
    ox_arc_drop(p);
    CHECK_EQ(atomic_load(&drops), 1);
    CHECK_EQ(atomic_load(&drop_errors), 0);
}

OX_TEST(arc_zero_size_and_null_drop_fn)
{
    void *a = ox_arc_new(0, NULL);
    void *b = ox_arc_new(0, NULL);
    CHECK(a != NULL && b != NULL && !ox_arc_ptr_eq(a, b));
    ox_arc_drop(ox_arc_clone(a));
    ox_arc_drop(a);
    ox_arc_drop(b);
    /* A large, odd size is zeroed and aligned too. */
    unsigned char *big = ox_arc_new(100003, NULL);
    CHECK_EQ((uintptr_t)big % _Alignof(max_align_t), 0);
    for (size_t i = 0; i < 100003; i++)
        CHECK_EQ(big[i], 0);
    ox_arc_drop(big);
}

OX_TEST(arc_weak_upgrade_fails_after_last_drop)
{
    payload *p = ox_arc_new(sizeof *p, count_drop);
    ox_weak *w = ox_arc_downgrade(p);
    CHECK_EQ(ox_arc_weak_count(p), 1);
    CHECK_EQ(ox_weak_strong_count(w), 1);
    CHECK_EQ(ox_weak_weak_count(w), 1);
    ox_weak *w2 = ox_weak_clone(w);
    CHECK(w2 == w);
    CHECK_EQ(ox_arc_weak_count(p), 2);

    payload *u = ox_weak_upgrade(w);
    CHECK(u == p);
    CHECK_EQ(ox_arc_strong_count(p), 2);
    ox_arc_drop(u);
    ox_arc_drop(p);
    CHECK_EQ(atomic_load(&drops), 1); /* dropped though Weaks remain */
    CHECK(ox_weak_upgrade(w) == NULL);
    CHECK(ox_weak_upgrade(w) == NULL); /* still gone: no resurrection */
    CHECK_EQ(ox_weak_strong_count(w), 0);
    CHECK_EQ(ox_weak_weak_count(w), 0);
    ox_weak_drop(w2);
    ox_weak_drop(w); /* frees: the leak checker of the ASan suite knows */
    ox_weak_drop(NULL);
    CHECK_EQ(atomic_load(&drops), 1);
    CHECK_EQ(atomic_load(&drop_errors), 0);
}

OX_TEST(arc_get_mut_only_when_unique)
{
    long *p = ox_arc_new(sizeof *p, NULL);
    CHECK(ox_arc_get_mut(p) == p);
    *(long *)ox_arc_get_mut(p) = 5;
    long *q = ox_arc_clone(p);
    CHECK(ox_arc_get_mut(p) == NULL);
    ox_arc_drop(q);
    CHECK(ox_arc_get_mut(p) == p);
    ox_weak *w = ox_arc_downgrade(p);
    CHECK(ox_arc_get_mut(p) == NULL); /* a Weak could upgrade at any time */
    ox_weak_drop(w);
    CHECK(ox_arc_get_mut(p) == p);
    CHECK_EQ(ox_arc_weak_count(p), 0);
    CHECK_EQ(*p, 5);
    ox_arc_drop(p);
}

/* Many owners clone and drop concurrently while a Weak holder upgrades; the
 * last drop runs drop_fn exactly once, after every owner's writes, and no
 * upgrade succeeds on a dropped value. */
typedef struct churn_arg {
    payload *p; /* one strong reference, owned by the worker */
    int id;
    long iters;
} churn_arg;

static void *churn_worker(void *arg)
{
    churn_arg *a = arg;
    for (long i = 0; i < a->iters; i++) {
        payload *c = ox_arc_clone(a->p);
        if (atomic_load_explicit(&c->dropped, memory_order_relaxed))
            atomic_fetch_add(&drop_errors, 1);
        ox_arc_drop(c);
    }
    a->p->slots[a->id] = a->p->expect; /* plain write, then our last drop */
    ox_arc_drop(a->p);
    return NULL;
}

static void *upgrader(void *arg)
{
    ox_weak *w = arg;
    long ok = 0;
    for (;;) {
        payload *p = ox_weak_upgrade(w);
        if (p == NULL)
            break;
        if (atomic_load_explicit(&p->dropped, memory_order_relaxed))
            atomic_fetch_add(&drop_errors, 1); /* resurrected */
        ok++;
        ox_arc_drop(p);
    }
    ox_weak_drop(w);
    return (void *)(intptr_t)ok;
}

OX_TEST(arc_drop_runs_once_under_concurrent_clone_drop)
{
    ox_test_budget budget = ox_test_budget_start(20, ox_test_scaled(200));
    long iters = ox_test_scaled(2000);
    for (long r = 0; ox_test_budget_more(&budget, r); r++) {
        payload *p = ox_arc_new(sizeof *p, count_drop);
        p->expect = r + 1;
        churn_arg args[THREADS];
        ox_join_handle h[THREADS];
        ox_join_handle up = ox_thread_spawn(upgrader, ox_arc_downgrade(p));
        for (int t = 0; t < THREADS; t++) {
            args[t] = (churn_arg){.p = ox_arc_clone(p), .id = t, .iters = iters};
            h[t] = ox_thread_spawn(churn_worker, &args[t]);
        }
        ox_arc_drop(p); /* the workers (and the upgrader) now decide who is last */
        for (int t = 0; t < THREADS; t++)
            CHECK_EQ(ox_thread_join(&h[t], NULL, NULL), 0);
        CHECK_EQ(ox_thread_join(&up, NULL, NULL), 0);
        CHECK_EQ(atomic_load(&drops), r + 1);
    }
    CHECK_EQ(atomic_load(&drop_errors), 0);
}

/* Two long-lived threads race one step per round: each spins until main
 * opens the round, so both reach the race window together (spawning a pair
 * of threads per round takes far longer than the window). */
typedef struct race_pair {
    _Atomic long round;     /* opened by main: r + 1 for round r */
    _Atomic long done;      /* each thread adds 1 when its step of the round is done */
    ox_thread *main_thread; /* parks while the two race, unparked by the second */
    void *arc;              /* this round's strong reference, for one side */
    ox_weak *w;             /* this round's Weak, for the other side */
    _Atomic long upgraded, missed;
} race_pair;

/* Main ends the race on a time budget (see ox_test_budget) by opening
 * this round instead of the next. */
#define RACE_OVER (-1L)

/* Waits until main opens round r; false when main ends the race instead. */
static bool wait_round(race_pair *rp, long r)
{
    /* Acquire: pairs with main's release store, which published arc and w. */
    for (int spins = 0;; spins++) {
        long open = atomic_load_explicit(&rp->round, memory_order_acquire);
        if (open == r + 1 || open == RACE_OVER)
            return open == r + 1;
        if (spins > 1000)
            ox_thread_yield();
    }
}

/* Round r delays one side by a few busy steps: over the rounds the offset
 * sweeps from "the upgrade side first" to "the drop side first". */
static void stagger(long r, bool first_side)
{
    long d = r % 512 - 256;
    for (volatile long i = first_side ? d : -d; i > 0; i--)
        continue;
}

/* Main opens the round and sleeps (leaving both CPUs to the racers) until
 * both sides are done. */
static void open_round(race_pair *rp, long r)
{
    atomic_store_explicit(&rp->round, r + 1, memory_order_release);
    while (atomic_load(&rp->done) != 2 * (r + 1))
        ox_thread_park();
}

static void step_done(race_pair *rp, long n)
{
    if (atomic_fetch_add(&rp->done, n) + n == 2 * atomic_load(&rp->round))
        ox_thread_unpark(rp->main_thread);
}

/* The last strong drop races an upgrade: either the upgrade wins (and the
 * value lives until the upgrader drops it) or it returns NULL; drop_fn runs
 * exactly once either way, never before an upgrader's use. */
static void *drop_side(void *arg)
{
    race_pair *rp = arg;
    for (long r = 0; wait_round(rp, r); r++) {
        stagger(r, true);
        ox_arc_drop(rp->arc);
        step_done(rp, 1);
    }
    return NULL;
}

static void *upgrade_side(void *arg)
{
    race_pair *rp = arg;
    for (long r = 0; wait_round(rp, r); r++) {
        stagger(r, false);
        payload *p = ox_weak_upgrade(rp->w);
        if (p != NULL) {
            if (atomic_load(&p->dropped))
                atomic_fetch_add(&drop_errors, 1);
            atomic_fetch_add(&rp->upgraded, 1);
            ox_arc_drop(p);
        } else {
            atomic_fetch_add(&rp->missed, 1);
        }
        ox_weak_drop(rp->w);
        step_done(rp, 1);
    }
    return NULL;
}

OX_TEST(arc_upgrade_races_last_drop)
{
    static race_pair rp;
    rp.main_thread = ox_thread_current();
    ox_join_handle a = ox_thread_spawn(upgrade_side, &rp);
    ox_join_handle b = ox_thread_spawn(drop_side, &rp);
    /* The stagger sweeps 512 offsets, but on a loaded machine preemption
     * decides the order more than the stagger does: at least 128 rounds,
     * and on past the budget until both outcomes were seen. */
    ox_test_budget budget = ox_test_budget_start(128, ox_test_scaled(20000));
    long r = 0;
    for (; ox_test_budget_more(&budget, r) ||
           (r < budget.max && (atomic_load(&rp.upgraded) == 0 || atomic_load(&rp.missed) == 0));
         r++) {
        payload *p = ox_arc_new(sizeof *p, count_drop);
        rp.w = ox_arc_downgrade(p);
        rp.arc = p;
        open_round(&rp, r);
        CHECK_EQ(atomic_load(&drops), r + 1);
    }
    atomic_store_explicit(&rp.round, RACE_OVER, memory_order_release);
    CHECK_EQ(ox_thread_join(&a, NULL, NULL), 0);
    CHECK_EQ(ox_thread_join(&b, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&drop_errors), 0);
    printf("upgrade won %ld of %ld rounds\n", atomic_load(&rp.upgraded), r);
    /* The stagger sweeps the offset both ways, so both outcomes occur:
     * else the race was never run. */
    CHECK(atomic_load(&rp.upgraded) > 0);
    CHECK(atomic_load(&rp.missed) > 0);
}

/* get_mut races a downgrade by another owner: whenever get_mut says unique,
 * no Weak or other strong reference may exist at that moment. The other
 * owner is a long-lived thread that starts its step as main starts trying. */
typedef struct gm_state {
    race_pair rp;
    _Atomic int weak_dropped; /* the other owner is giving its Weak up */
} gm_state;

static void *downgrade_then_drop(void *arg)
{
    gm_state *s = arg;
    for (long r = 0; wait_round(&s->rp, r); r++) {
        ox_weak *w = ox_arc_downgrade(s->rp.arc);
        ox_arc_drop(s->rp.arc);
        ox_thread_yield();
        atomic_store(&s->weak_dropped, 1);
        ox_weak_drop(w);
        step_done(&s->rp, 2);
    }
    return NULL;
}

OX_TEST(arc_get_mut_races_downgrade)
{
    static gm_state s;
    s.rp.main_thread = ox_thread_current();
    long bad = 0;
    ox_join_handle h = ox_thread_spawn(downgrade_then_drop, &s);
    ox_test_budget budget = ox_test_budget_start(100, ox_test_scaled(5000));
    for (long r = 0; ox_test_budget_more(&budget, r); r++) {
        long *p = ox_arc_new(sizeof *p, NULL);
        s.rp.arc = ox_arc_clone(p);
        atomic_store(&s.weak_dropped, 0);
        /* Release: publishes arc to the other owner's wait_round. */
        atomic_store_explicit(&s.rp.round, r + 1, memory_order_release);
        while (ox_arc_get_mut(p) == NULL)
            ox_thread_yield();
        /* Unique: the other owner's Weak must be on its way out. */
        if (!atomic_load(&s.weak_dropped))
            bad++;
        *p = r; /* exclusive: a plain write */
        while (atomic_load(&s.rp.done) != 2 * (r + 1))
            ox_thread_park();
        ox_arc_drop(p);
    }
    atomic_store_explicit(&s.rp.round, RACE_OVER, memory_order_release);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(bad, 0);
}

OX_TEST_OPTS(arc_overflow_aborts, .expect_signal = SIGABRT, .expect_stderr = "overflowed")
{
    void *p = ox_arc_new(8, NULL);
    /* At the limit, instead of cloning 2^63 times. */
    ox_test_arc_set_strong(p, OX__ARC_MAX_REFCOUNT);
    (void)!ox_arc_clone(p); /* MAX + 1: the last one allowed, as Rust */
    (void)!ox_arc_clone(p); /* aborts (built with gcc) */
    (void)!ox_arc_clone(p); /* clang tests the old count's sign: one later */
}

OX_TEST(arc_count_near_limit_is_fine)
{
    void *p = ox_arc_new(8, NULL);
    ox_test_arc_set_strong(p, OX__ARC_MAX_REFCOUNT - 10);
    for (int i = 0; i < 5; i++)
        ox_arc_drop(ox_arc_clone(p));
    CHECK_EQ(ox_arc_strong_count(p), OX__ARC_MAX_REFCOUNT - 10);
    ox_test_arc_set_strong(p, 1);
    ox_arc_drop(p);
}

OX_TEST_OPTS(arc_drop_too_many_times_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "dropped more times than cloned")
{
    void *p = ox_arc_new(8, NULL);
    ox_weak *w = ox_arc_downgrade(p); /* keeps the memory, so the check can see it */
    ox_arc_drop(p);
    ox_arc_drop(p);
    ox_weak_drop(w);
}

/* The clone's check is the sign of the count it made: the last drop stores
 * a count far below zero, so a clone after it is caught too. */
OX_TEST_OPTS(arc_clone_after_last_drop_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "no strong reference left")
{
    void *p = ox_arc_new(8, NULL);
    ox_weak *w = ox_arc_downgrade(p); /* keeps the memory, so the check can see it */
    ox_arc_drop(p);
    (void)!ox_arc_clone(p);
    ox_weak_drop(w);
}

/* Many stray drops keep the count negative: each one is caught. */
OX_TEST_OPTS(arc_into_inner_after_last_drop_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "dropped more times than cloned")
{
    long *p = ox_arc_new(sizeof *p, NULL);
    ox_weak *w = ox_arc_downgrade(p);
    long out;
    CHECK(ox_arc_into_inner(p, &out, sizeof out));
    (void)!ox_arc_into_inner(p, &out, sizeof out);
    ox_weak_drop(w);
}

/* After try_unwrap and into_inner took the value, the counts read as
 * Rust's do (0 strong, and 0 weak while no strong remains), and nothing
 * upgrades. */
OX_TEST(arc_counts_after_the_value_is_taken)
{
    long *p = ox_arc_new(sizeof *p, NULL);
    ox_weak *w = ox_arc_downgrade(p);
    long out;
    CHECK_EQ(ox_arc_try_unwrap(p, &out, sizeof out), 0);
    CHECK_EQ(ox_weak_strong_count(w), 0);
    CHECK_EQ(ox_weak_weak_count(w), 0);
    CHECK(ox_weak_upgrade(w) == NULL);
    ox_weak_drop(w);

    p = ox_arc_new(sizeof *p, NULL);
    w = ox_arc_downgrade(p);
    long *q = ox_weak_upgrade(w);
    CHECK(q == p);
    CHECK_EQ(ox_weak_strong_count(w), 2);
    CHECK(!ox_arc_into_inner(q, &out, sizeof out));
    CHECK_EQ(ox_weak_strong_count(w), 1);
    CHECK_EQ(ox_weak_weak_count(w), 1);
    CHECK(ox_arc_into_inner(p, &out, sizeof out));
    CHECK_EQ(ox_weak_strong_count(w), 0);
    CHECK(ox_weak_upgrade(w) == NULL);
    ox_weak_drop(w);
}

OX_TEST_OPTS(arc_upgrade_overflow_aborts, .expect_signal = SIGABRT, .expect_stderr = "overflowed")
{
    void *p = ox_arc_new(8, NULL);
    ox_weak *w = ox_arc_downgrade(p);
    ox_test_arc_set_strong(p, OX__ARC_MAX_REFCOUNT + 1);
    (void)!ox_weak_upgrade(w);
}

OX_TEST_OPTS(arc_weak_overflow_aborts, .expect_signal = SIGABRT, .expect_stderr = "overflowed")
{
    void *p = ox_arc_new(8, NULL);
    ox_weak *w = ox_arc_downgrade(p);
    atomic_store(&ox__arc_header_of(p)->weak, OX__ARC_WEAK_MADE | (OX__ARC_WEAK_MAX + 1));
    (void)!ox_weak_clone(w);
}

/* ---- a drop_fn that panics (issue 10, bug 3) ---- */

static void panicking_drop(void *p)
{
    (void)p;
    ox_panic("drop_fn fails");
}

static void *drop_arc(void *p)
{
    ox_arc_drop(p);
    return NULL;
}

/* The strong references' shared weak count is given up on the unwind path
 * too, as Rust's drop_slow does: before the fix it stayed, so the block was
 * never freed (valgrind: definitely lost; LeakSanitizer in the asan suite). */
OX_TEST(arc_drop_fn_panic_still_releases_the_block)
{
    int *v = ox_arc_new(sizeof *v, panicking_drop);
    ox_weak *w = ox_arc_downgrade(v);
    const ox__arc_header *h = (const ox__arc_header *)(const void *)w;
    CHECK_EQ(atomic_load(&h->weak), OX__ARC_WEAK_MADE | 2); /* w and the strong references' one */
    CHECK_EQ(ox_catch_unwind(drop_arc, v, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(atomic_load(&h->weak), OX__ARC_WEAK_MADE | 1); /* only w keeps the block now */
    CHECK(ox_weak_upgrade(w) == NULL);
    ox_weak_drop(w); /* frees it */

    /* Without a Weak, the block is freed by the unwinding drop itself
     * (LeakSanitizer checks this one). */
    v = ox_arc_new(sizeof *v, panicking_drop);
    CHECK_EQ(ox_catch_unwind(drop_arc, v, NULL, NULL), OX_EPANICKED);
}

/* ---- Weak::new, try_unwrap, into_inner (issue 10, section 4) ---- */

OX_TEST(arc_empty_weak_never_upgrades)
{
    ox_weak *w = ox_weak_new();
    CHECK(w != NULL);
    CHECK(ox_weak_upgrade(w) == NULL);
    CHECK_EQ(ox_weak_strong_count(w), 0);
    CHECK_EQ(ox_weak_weak_count(w), 0);
    ox_weak *w2 = ox_weak_clone(w);
    CHECK(ox_weak_upgrade(w2) == NULL);
    ox_weak_drop(w2);
    ox_weak_drop(w);
    ox_weak_drop(ox_weak_new()); /* many may exist; none allocates */
}

static _Atomic int unwrap_drops;

static void count_unwrap_drop(void *p)
{
    (void)p;
    atomic_fetch_add(&unwrap_drops, 1);
}

typedef struct pair {
    long a, b;
} pair;

OX_TEST(arc_try_unwrap_only_for_the_last_strong_reference)
{
    pair *p = ox_arc_new(sizeof *p, count_unwrap_drop);
    p->a = 1;
    p->b = 2;
    pair *p2 = ox_arc_clone(p);
    pair out = {0, 0};
    CHECK_EQ(ox_arc_try_unwrap(p, &out, sizeof out), OX_EBUSY); /* p2 exists */
    CHECK_EQ(out.a, 0);
    CHECK_EQ(ox_arc_strong_count(p), 2); /* nothing happened */
    ox_arc_drop(p2);
    ox_weak *w = ox_arc_downgrade(p);
    CHECK_EQ(ox_arc_try_unwrap(p, &out, sizeof out), 0); /* a Weak does not count */
    CHECK_EQ(out.a, 1);
    CHECK_EQ(out.b, 2);
    CHECK_EQ(atomic_load(&unwrap_drops), 0); /* moved out, not dropped */
    CHECK(ox_weak_upgrade(w) == NULL);
    CHECK_EQ(ox_weak_strong_count(w), 0);
    ox_weak_drop(w); /* frees the block (LeakSanitizer checks) */
}

OX_TEST_OPTS(arc_try_unwrap_size_mismatch_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_arc_try_unwrap: a 4-byte buffer for the 16-byte value")
{
    pair *p = ox_arc_new(sizeof *p, NULL);
    int small;
    (void)!ox_arc_try_unwrap(p, &small, sizeof small);
}

#define INTO_INNER_ROUNDS 500

struct into_inner_race {
    ox_barrier *start;
    long *value;
    _Atomic int winners;
    _Atomic long sum;
};

static void *race_into_inner(void *arg)
{
    struct into_inner_race *r = arg;
    long *mine = r->value; /* one of the clones main made for us */
    ox_barrier_wait(r->start);
    long got = -1;
    if (ox_arc_into_inner(mine, &got, sizeof got)) {
        atomic_fetch_add(&r->winners, 1);
        atomic_fetch_add(&r->sum, got);
    } else {
        CHECK_EQ(got, -1); /* untouched */
    }
    return NULL;
}

/* When every owner calls into_inner, exactly one gets the value, however
 * they race; drop_fn never runs. */
OX_TEST(arc_into_inner_gives_the_value_to_exactly_one_owner)
{
    ox_test_budget budget = ox_test_budget_start(50, ox_test_scaled(INTO_INNER_ROUNDS));
    for (long i = 0; ox_test_budget_more(&budget, i); i++) {
        ox_barrier start = OX_BARRIER_INIT(THREADS);
        struct into_inner_race r = {.start = &start};
        r.value = ox_arc_new(sizeof(long), count_unwrap_drop);
        *r.value = i + 1;
        ox_join_handle h[THREADS];
        for (int t = 0; t < THREADS; t++)
            (void)!ox_arc_clone(r.value); /* the thread's reference */
        for (int t = 0; t < THREADS; t++)
            h[t] = ox_thread_spawn(race_into_inner, &r);
        long got = 0;
        /* Our own reference is the fifth owner: give it up the same way. */
        if (ox_arc_into_inner(r.value, &got, sizeof got)) {
            atomic_fetch_add(&r.winners, 1);
            atomic_fetch_add(&r.sum, got);
        }
        for (int t = 0; t < THREADS; t++)
            CHECK_EQ(ox_thread_join(&h[t], NULL, NULL), 0);
        CHECK_EQ(atomic_load(&r.winners), 1);
        CHECK_EQ(atomic_load(&r.sum), i + 1);
    }
    CHECK_EQ(atomic_load(&unwrap_drops), 0);
}
