/* break44: attacks on Arc's get_mut, downgrade, weak drop and upgrade, and
 * the alone last drop (helper, session 43). The held attacks assert Rust's
 * Arc semantics and pass; the misuse ones expect an abort. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <signal.h>
#include <stdatomic.h>

/* ---- misuse: get_mut after the last drop (a Weak keeps the memory) ----
 * strong is DEAD and weak is WEAK_MADE | 1 (the one Weak), which is what
 * get_mut expects of a live Arc with no Weak: it locks weak and returns
 * NULL instead of aborting as a clone or drop after the last drop does. */
OX_TEST_OPTS(break44_get_mut_after_last_drop_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "no strong reference left")
{
    long *p = ox_arc_new(sizeof *p, NULL);
    ox_weak *w = ox_arc_downgrade(p);
    ox_arc_drop(p);
    (void)ox_arc_get_mut(p); /* misuse: must abort */
    ox_weak_drop(w);
}

/* ---- misuse: try_unwrap after the last drop says "busy" ----
 * Its CAS from 0 fails on DEAD and it returns OX_EBUSY ("other strong
 * references exist: the caller still owns its reference"). */
OX_TEST_OPTS(break44_try_unwrap_after_last_drop_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "no strong reference left")
{
    long *p = ox_arc_new(sizeof *p, NULL);
    ox_weak *w = ox_arc_downgrade(p);
    ox_arc_drop(p);
    long out;
    int rc = ox_arc_try_unwrap(p, &out, sizeof out); /* misuse: must abort */
    (void)rc;
    ox_weak_drop(w);
}

/* ---- misuse, concurrent: get_mut after the last drop racing the Weak ----
 * One thread calls get_mut on the dead handle (misuse) while the holder of
 * the one Weak clones and drops it. get_mut locks weak (WEAK_MADE | 1 ->
 * LOCKED) and the clone's increment lands on LOCKED: ox_weak_clone aborts
 * blaming an overflow of the weak count, not the dead handle (and a drop
 * of the last Weak landing there would be overwritten by get_mut's store:
 * the block leaks). It should abort in get_mut, for the dead handle. */
static void *m3_weak_churn(void *arg)
{
    ox_weak *w = arg;
    for (;;) {
        ox_weak *c = ox_weak_clone(w);
        ox_weak_drop(c);
    }
    return NULL;
}

OX_TEST_OPTS(break44_get_mut_after_last_drop_racing_weak_clone_aborts, .timeout_s = 60,
             .expect_signal = SIGABRT, .expect_stderr = "no strong reference left")
{
    long *p = ox_arc_new(sizeof *p, NULL);
    ox_weak *w = ox_arc_downgrade(p);
    ox_arc_drop(p);
    ox_join_handle t = ox_thread_spawn(m3_weak_churn, w);
    ox_test_budget b = ox_test_budget_start(ox_test_scaled(100000), ox_test_scaled(50000000));
    for (long n = 0; ox_test_budget_more(&b, n); n++)
        CHECK(ox_arc_get_mut(p) == NULL); /* misuse: must abort */
    ox_test_fail(__FILE__, __LINE__, "get_mut after the last drop did not abort");
    (void)t;
}

/* ---- held: scoped threads downgrade, upgrade and clone one borrowed handle ---- */
static _Atomic long h1_drops;

static void h1_drop_fn(void *p)
{
    (void)p;
    atomic_fetch_add(&h1_drops, 1);
}

typedef struct h1_arg {
    long *p;
    ox_test_budget b;
} h1_arg;

static void *h1_churn(void *arg)
{
    h1_arg *a = arg;
    for (long n = 0; ox_test_budget_more(&a->b, n); n++) {
        ox_weak *w = ox_arc_downgrade(a->p); /* borrowed */
        long *q = ox_weak_upgrade(w);
        CHECK(q == a->p);
        ox_weak *w2 = ox_weak_clone(w);
        ox_weak_drop(w);
        long *q2 = ox_arc_clone(q);
        ox_arc_drop(q);
        CHECK(ox_weak_upgrade(w2) == a->p);
        ox_arc_drop(a->p); /* the upgrade's reference */
        ox_arc_drop(q2);
        ox_weak_drop(w2);
    }
    return NULL;
}

static void h1_body(ox_scope *s, void *arg)
{
    (void)ox_scope_spawn(s, h1_churn, arg);
    (void)ox_scope_spawn(s, h1_churn, arg);
}

OX_TEST_OPTS(break44_scoped_threads_downgrade_and_upgrade_a_borrowed_arc, .timeout_s = 60)
{
    atomic_store(&h1_drops, 0);
    h1_arg a = {.p = ox_arc_new(sizeof(long), h1_drop_fn),
                .b = ox_test_budget_start(ox_test_scaled(20000), ox_test_scaled(5000000))};
    ox_thread_scope(h1_body, &a);
    CHECK_EQ(atomic_load(&h1_drops), 0);
    CHECK_EQ(ox_arc_strong_count(a.p), 1);
    CHECK_EQ(ox_arc_weak_count(a.p), 0);
    CHECK(ox_arc_get_mut(a.p) == a.p);
    ox_arc_drop(a.p);
    CHECK_EQ(atomic_load(&h1_drops), 1);
}

/* ---- held: get_mut never says unique while another thread always holds a
 * strong or a Weak reference, trading one for the other ---- */
typedef struct h2_arg {
    long *q;
    _Atomic int stop;
    ox_test_budget b;
} h2_arg;

static void *h2_trade(void *arg)
{
    h2_arg *a = arg;
    long *q = a->q;
    for (long n = 0; ox_test_budget_more(&a->b, n); n++) {
        ox_weak *w = ox_arc_downgrade(q); /* holds q and w */
        ox_arc_drop(q);                   /* holds w */
        q = ox_weak_upgrade(w);           /* holds q and w */
        CHECK(q != NULL);
        *q = n;          /* a use ordered before the owner's mutation at the end */
        ox_weak_drop(w); /* holds q */
    }
    atomic_store(&a->stop, 1); /* before the drop: until then get_mut must fail */
    ox_arc_drop(q);
    return NULL;
}

OX_TEST_OPTS(break44_get_mut_never_unique_while_a_weak_or_strong_is_traded, .timeout_s = 60)
{
    atomic_store(&h1_drops, 0);
    long *p = ox_arc_new(sizeof *p, h1_drop_fn);
    h2_arg a = {.q = ox_arc_clone(p),
                .b = ox_test_budget_start(ox_test_scaled(20000), ox_test_scaled(5000000))};
    ox_join_handle t = ox_thread_spawn(h2_trade, &a);
    long *m;
    for (long tries = 1;; tries++) {
        /* Unique only once the trader dropped its last reference, which it
         * does after setting stop: get_mut's acquire orders that store. */
        if ((m = ox_arc_get_mut(p)) != NULL) {
            CHECK(atomic_load_explicit(&a.stop, memory_order_relaxed));
            break;
        }
        if (tries % 16 == 0)
            ox_weak_drop(ox_arc_downgrade(p));
    }
    *m = -1; /* after the trader's writes (TSan) */
    CHECK_EQ(ox_thread_join(&t, NULL, NULL), 0);
    CHECK_EQ(ox_arc_strong_count(p), 1);
    CHECK_EQ(ox_arc_weak_count(p), 0);
    ox_arc_drop(p);
    CHECK_EQ(atomic_load(&h1_drops), 1);
}

/* ---- held: the last drop races an upgrader's loop; once an upgrade fails
 * none succeeds again, drop_fn runs once, after the upgrader's uses ---- */
static _Atomic int h3_holding;
static _Atomic long h3_drops, h3_bad;

static void h3_drop_fn(void *p)
{
    if (atomic_load(&h3_holding) || *(long *)p != 0)
        atomic_fetch_add(&h3_bad, 1);
    atomic_fetch_add(&h3_drops, 1);
}

typedef struct h3_slot {
    _Atomic(long *) q; /* a strong reference handed to the upgrader */
    _Atomic int done;
    _Atomic int quit;
} h3_slot;

static void *h3_upgrader(void *arg)
{
    h3_slot *s = arg;
    for (;;) {
        long *q;
        while ((q = atomic_load_explicit(&s->q, memory_order_acquire)) == NULL)
            if (atomic_load(&s->quit))
                return NULL;
        atomic_store_explicit(&s->q, NULL, memory_order_relaxed);
        ox_weak *w = ox_arc_downgrade(q);
        ox_arc_drop(q);
        bool failed = false;
        for (int i = 0; i < 64; i++) {
            long *u = ox_weak_upgrade(w);
            if (u == NULL) {
                failed = true;
                continue;
            }
            if (failed)
                atomic_fetch_add(&h3_bad, 1000); /* resurrected */
            atomic_store(&h3_holding, 1);
            *u += 1;
            *u -= 1;
            atomic_store(&h3_holding, 0);
            ox_arc_drop(u);
        }
        ox_weak_drop(w);
        atomic_store_explicit(&s->done, 1, memory_order_release);
    }
}

OX_TEST_OPTS(break44_upgrades_racing_the_last_drop_never_resurrect, .timeout_s = 60)
{
    atomic_store(&h3_drops, 0);
    atomic_store(&h3_bad, 0);
    h3_slot s = {NULL, 0, 0};
    ox_join_handle t = ox_thread_spawn(h3_upgrader, &s);
    ox_test_budget b = ox_test_budget_start(ox_test_scaled(2000), ox_test_scaled(200000));
    long r;
    for (r = 0; ox_test_budget_more(&b, r); r++) {
        long *p = ox_arc_new(sizeof *p, h3_drop_fn);
        atomic_store_explicit(&s.done, 0, memory_order_relaxed);
        atomic_store_explicit(&s.q, ox_arc_clone(p), memory_order_release);
        for (volatile int i = 0; i < (int)(r % 32) * 8; i++)
            ;
        ox_arc_drop(p);
        while (!atomic_load_explicit(&s.done, memory_order_acquire))
            ;
    }
    atomic_store(&s.quit, 1);
    CHECK_EQ(ox_thread_join(&t, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&h3_drops), r);
    CHECK_EQ(atomic_load(&h3_bad), 0);
}
