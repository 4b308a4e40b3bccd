/* break43: attacks on the "Arc alone" fast path (helper-75, session 42).
 * Found: the clone took strong == 0 and weak == 1 as "nobody else can
 * write the count" and stored 1; but a clone borrows its handle, and two
 * threads (scoped threads, or the owner and one borrower) may clone one
 * handle at once: both stored 1, a count was lost, and drop_fn ran while
 * the owner still held the value. The clone is a locked add again; only
 * the last drop, which takes its reference, keeps the store. The other
 * attacks held and are kept as tests. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <signal.h>
#include <stdatomic.h>

/* ---- found: two scoped threads clone one borrowed handle ----
 * The scope body owns the Arc; two scoped threads borrow it and clone and
 * drop in a loop. A lost clone makes some thread's drop look alone: drop_fn runs
 * while the owner (and maybe the other thread) still holds the value. */

static _Atomic int f1b_owner_holds;
static _Atomic long f1b_drops;

static void f1b_drop_fn(void *p)
{
    (void)p;
    atomic_fetch_add(&f1b_drops, 1);
    /* Fails the test (and ends the process) before the memory is freed. */
    if (atomic_load(&f1b_owner_holds))
        ox_test_fail(__FILE__, __LINE__, "drop_fn ran while the owner still holds the Arc");
}

typedef struct f1b_arg {
    long *p;
    ox_test_budget b;
} f1b_arg;

static void *f1b_clone_drop(void *arg)
{
    f1b_arg *a = arg;
    for (long n = 0; ox_test_budget_more(&a->b, n); n++) {
        long *c = ox_arc_clone(a->p); /* borrowed from the scope body */
        ox_arc_drop(c);
    }
    return NULL;
}

static void f1b_body(ox_scope *s, void *arg)
{
    f1b_arg *a = arg;
    (void)ox_scope_spawn(s, f1b_clone_drop, a);
    (void)ox_scope_spawn(s, f1b_clone_drop, a);
}

/* Runs body (which clones the Arc from several threads) in a scope, then
 * checks that the owner's reference is the only one left, and the last. */
static void clone_in_a_scope(void (*body)(ox_scope *, void *))
{
    atomic_store(&f1b_drops, 0);
    atomic_store(&f1b_owner_holds, 1);
    f1b_arg a = {.p = ox_arc_new(sizeof(long), f1b_drop_fn),
                 .b = ox_test_budget_start(ox_test_scaled(100000), ox_test_scaled(20000000))};
    ox_thread_scope(body, &a);
    CHECK_EQ(atomic_load(&f1b_drops), 0);
    CHECK_EQ(ox_arc_strong_count(a.p), 1);
    atomic_store(&f1b_owner_holds, 0);
    ox_arc_drop(a.p);
    CHECK_EQ(atomic_load(&f1b_drops), 1);
}

OX_TEST_OPTS(break43_scoped_threads_cloning_a_borrowed_arc_keep_it_alive, .timeout_s = 60)
{
    clone_in_a_scope(f1b_body);
}

/* ---- found: the owner and one borrower clone one handle ----
 * The owner itself clones and drops its handle while one scoped thread
 * clones and drops the same handle, borrowed. */

static void f1c_body(ox_scope *s, void *arg)
{
    f1b_arg *a = arg;
    (void)ox_scope_spawn(s, f1b_clone_drop, a);
    f1b_clone_drop(a); /* the owner, on its own handle */
}

OX_TEST_OPTS(break43_owner_and_one_borrower_cloning_keep_it_alive, .timeout_s = 60)
{
    clone_in_a_scope(f1c_body);
}

/* ==== held: attacks that came out right ==== */

/* H1: a Weak made inside drop_fn of an Arc dropped on the alone path: it
 * never upgrades, its counts read 0, it keeps the block, and a clone of
 * the dead handle is still caught (the count is DEAD, not the fast path). */
static ox_weak *h1_weak;

static void h1_drop_fn(void *p)
{
    h1_weak = ox_arc_downgrade(p); /* strong is DEAD already */
    CHECK(ox_weak_upgrade(h1_weak) == NULL);
}

OX_TEST(break43_weak_made_in_drop_fn_of_an_alone_arc_never_upgrades)
{
    long *p = ox_arc_new(sizeof *p, h1_drop_fn);
    ox_arc_drop(p); /* alone: store DEAD, drop_fn */
    CHECK(h1_weak != NULL);
    CHECK(ox_weak_upgrade(h1_weak) == NULL);
    CHECK_EQ(ox_weak_strong_count(h1_weak), 0);
    CHECK_EQ(ox_weak_weak_count(h1_weak), 0);
    ox_weak *w2 = ox_weak_clone(h1_weak);
    ox_weak_drop(w2);
    ox_weak_drop(h1_weak); /* frees the block (LeakSanitizer) */
}

OX_TEST_OPTS(break43_clone_after_alone_last_drop_kept_by_a_weak_from_drop_fn_aborts,
             .expect_signal = SIGABRT, .expect_stderr = "no strong reference left")
{
    long *p = ox_arc_new(sizeof *p, h1_drop_fn);
    ox_arc_drop(p);
    (void)!ox_arc_clone(p); /* misuse: the Weak keeps the memory; must abort */
    ox_weak_drop(h1_weak);
}

OX_TEST_OPTS(break43_drop_after_alone_last_drop_kept_by_a_weak_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "no strong reference left")
{
    long *p = ox_arc_new(sizeof *p, h1_drop_fn);
    ox_arc_drop(p);
    ox_arc_drop(p); /* misuse: one drop too many; must abort */
    ox_weak_drop(h1_weak);
}

/* H2: a Weak dropped in another thread: get_mut (which must now expect
 * WEAK_MADE | 1) succeeds once it is gone, and its acquire orders the
 * Weak holder's read before the owner's plain write (TSan). The Arc then
 * keeps working: clone, counts, into_inner. */
typedef struct h2_arg {
    long *p;
    ox_weak *w;
    long seen;
} h2_arg;

static void *h2_read_then_drop_weak(void *arg)
{
    h2_arg *a = arg;
    long *s = ox_weak_upgrade(a->w);
    CHECK(s != NULL);
    a->seen = *s;
    ox_arc_drop(s);
    ox_weak_drop(a->w);
    return NULL;
}

OX_TEST(break43_get_mut_after_a_weak_dropped_in_another_thread)
{
    for (int round = 0; round < ox_test_scaled(300); round++) {
        h2_arg a = {.p = ox_arc_new(sizeof(long), NULL)};
        *a.p = 7;
        a.w = ox_arc_downgrade(a.p);
        ox_join_handle t = ox_thread_spawn(h2_read_then_drop_weak, &a);
        long *m;
        while ((m = ox_arc_get_mut(a.p)) == NULL)
            ;
        *m = 8; /* the holder's read happens-before (TSan) */
        CHECK_EQ(ox_arc_weak_count(a.p), 0);
        CHECK_EQ(ox_arc_strong_count(a.p), 1);
        CHECK_EQ(ox_thread_join(&t, NULL, NULL), 0);
        CHECK_EQ(a.seen, 7);
        long *c = ox_arc_clone(a.p); /* never alone again: the locked add */
        CHECK_EQ(ox_arc_strong_count(a.p), 2);
        long out;
        CHECK(!ox_arc_into_inner(c, &out, sizeof out));
        CHECK(ox_arc_into_inner(a.p, &out, sizeof out));
        CHECK_EQ(out, 8);
    }
}

/* H3: weak's overflow limit with WEAK_MADE set: a downgrade at
 * WEAK_MAX passes, the next aborts; the counts read without the bit. */
OX_TEST_OPTS(break43_downgrade_past_weak_max_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "overflowed")
{
    void *p = ox_arc_new(8, NULL);
    ox_weak *w = ox_arc_downgrade(p);
    atomic_store(&ox__arc_header_of(p)->weak, OX__ARC_WEAK_MADE | OX__ARC_WEAK_MAX);
    CHECK_EQ(ox_arc_weak_count(p), OX__ARC_WEAK_MAX - 1);
    ox_weak *w2 = ox_arc_downgrade(p); /* to WEAK_MAX + 1: allowed */
    CHECK_EQ(ox_arc_weak_count(p), OX__ARC_WEAK_MAX);
    CHECK_EQ(ox_weak_weak_count(w2), OX__ARC_WEAK_MAX);
    (void)!ox_arc_downgrade(p); /* past it: aborts */
    ox_weak_drop(w);
}

/* H4: an Arc's clone handed through a channel-like hand-off (release/acquire
 * flag): the receiver's plain write is seen by the owner's alone last drop
 * (TSan), over many rounds; drop_fn exactly once per value. */
static _Atomic long h4_drops, h4_bad;

static void h4_drop_fn(void *p)
{
    if (*(long *)p != 99)
        atomic_fetch_add(&h4_bad, 1);
    atomic_fetch_add(&h4_drops, 1);
}

typedef struct h4_slot {
    _Atomic(long *) p;
    _Atomic int back;
} h4_slot;

static void *h4_receiver(void *arg)
{
    h4_slot *s = arg;
    for (;;) {
        long *q;
        while ((q = atomic_load_explicit(&s->p, memory_order_acquire)) == NULL)
            ;
        if (q == (long *)1)
            return NULL;
        atomic_store_explicit(&s->p, NULL, memory_order_relaxed);
        *q = 99;
        ox_arc_drop(q); /* the locked decrement: strong 1 -> 0 */
        atomic_store_explicit(&s->back, 1, memory_order_relaxed); /* no edge on purpose */
    }
}

OX_TEST(break43_alone_clone_handed_over_and_back)
{
    atomic_store(&h4_drops, 0);
    atomic_store(&h4_bad, 0);
    h4_slot s = {NULL, 0};
    ox_join_handle t = ox_thread_spawn(h4_receiver, &s);
    long rounds = ox_test_scaled(20000);
    for (long r = 0; r < rounds; r++) {
        long *p = ox_arc_new(sizeof *p, h4_drop_fn);
        atomic_store_explicit(&s.back, 0, memory_order_relaxed);
        atomic_store_explicit(&s.p, ox_arc_clone(p), memory_order_release);
        while (!atomic_load_explicit(&s.back, memory_order_relaxed))
            ;
        ox_arc_drop(p); /* alone again: the last drop's acquire orders *q = 99 */
    }
    atomic_store_explicit(&s.p, (long *)1, memory_order_release);
    CHECK_EQ(ox_thread_join(&t, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&h4_drops), rounds);
    CHECK_EQ(atomic_load(&h4_bad), 0);
}
