/* An Arc alone (oxide/arc.h: one strong reference, and no Weak ever made)
 * is dropped for the last time with a plain store. These tests hold that
 * drop to the counts, to the ordering of the last drop, and to the one
 * thing that ends it for good: a downgrade. (Its clone is not a store:
 * break43.) */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>

static _Atomic long alone_drops;

static void count_alone_drop(void *p)
{
    (void)p;
    atomic_fetch_add(&alone_drops, 1);
}

/* The counts each store leaves, and drop_fn once, at the last drop. */
OX_TEST(arc_alone_last_drop_counts_as_the_shared_ones)
{
    atomic_store(&alone_drops, 0);
    long *p = ox_arc_new(sizeof *p, count_alone_drop);
    long *q = ox_arc_clone(p);
    CHECK(q == p);
    CHECK_EQ(ox_arc_strong_count(p), 2);
    long *r = ox_arc_clone(p);
    CHECK_EQ(ox_arc_strong_count(p), 3);
    ox_arc_drop(r);
    ox_arc_drop(q);
    CHECK_EQ(ox_arc_strong_count(p), 1);
    CHECK(ox_arc_get_mut(p) == p);
    CHECK_EQ(atomic_load(&alone_drops), 0);
    ox_arc_drop(p); /* alone: a store of DEAD, then drop_fn */
    CHECK_EQ(atomic_load(&alone_drops), 1);
}

/* A Weak, once made, marks the Arc for good: with the Weak gone the counts
 * read as before, and get_mut, try_unwrap and the last drop still work. */
OX_TEST(arc_a_weak_made_and_dropped_leaves_the_counts_right)
{
    atomic_store(&alone_drops, 0);
    long *p = ox_arc_new(sizeof *p, count_alone_drop);
    ox_weak_drop(ox_arc_downgrade(p));
    CHECK_EQ(ox_arc_weak_count(p), 0);
    CHECK_EQ(ox_arc_strong_count(p), 1);
    CHECK(ox_arc_get_mut(p) == p);
    long *q = ox_arc_clone(p);
    CHECK(ox_arc_get_mut(p) == NULL);
    ox_arc_drop(q);
    ox_weak *w = ox_arc_downgrade(p);
    CHECK_EQ(ox_arc_weak_count(p), 1);
    CHECK_EQ(ox_weak_weak_count(w), 1);
    ox_weak_drop(w);
    ox_arc_drop(p);
    CHECK_EQ(atomic_load(&alone_drops), 1);

    p = ox_arc_new(sizeof *p, count_alone_drop);
    ox_weak_drop(ox_arc_downgrade(p));
    long out;
    CHECK_EQ(ox_arc_try_unwrap(p, &out, sizeof out), 0);
    CHECK_EQ(atomic_load(&alone_drops), 1); /* moved out, not dropped */
}

/* ---- the race a downgrade must end ----
 * Each round, the owner makes an Arc, gives a clone to the dancer and
 * drops its own reference; the dancer meanwhile turns its reference into
 * a Weak, drops the strong one, upgrades, drops the Weak, and so on. If
 * the owner's drop loaded the strong count (0: the dancer held only the
 * Weak) and then the weak count (1: the Weak was upgraded and dropped in
 * between) and took the Arc as alone, drop_fn would run under the
 * dancer's upgraded reference. The chaos build waits between the two
 * loads. */

typedef struct weak_dancer {
    long *_Atomic given; /* the owner's clone, handed over */
    _Atomic int holds;   /* the dancer holds a strong reference */
    _Atomic int dancing; /* the dancer made its first Weak of this Arc */
    _Atomic long bad;    /* drop_fn ran while the dancer held one */
    _Atomic int stop;
} weak_dancer;

static weak_dancer dancer;

static void drop_fn_checks_the_dancer(void *p)
{
    (void)p;
    if (atomic_load(&dancer.holds))
        atomic_fetch_add(&dancer.bad, 1);
    atomic_fetch_add(&alone_drops, 1);
}

static void *dance_through_weak(void *arg)
{
    (void)arg;
    for (;;) {
        long *s;
        while ((s = atomic_exchange(&dancer.given, NULL)) == NULL)
            if (atomic_load(&dancer.stop))
                return NULL;
        atomic_store(&dancer.holds, 1);
        for (int i = 0; i < 64 && s != NULL; i++) {
            ox_weak *w = ox_arc_downgrade(s);
            atomic_store(&dancer.dancing, 1);
            atomic_store(&dancer.holds, 0);
            ox_arc_drop(s);
            s = ox_weak_upgrade(w); /* NULL once the owner dropped the last */
            if (s != NULL)
                atomic_store(&dancer.holds, 1);
            ox_weak_drop(w);
        }
        if (s != NULL) {
            atomic_store(&dancer.holds, 0);
            ox_arc_drop(s);
        }
    }
}

OX_TEST_OPTS(arc_upgrades_of_a_weak_since_dropped_are_never_lost, .timeout_s = 60)
{
    atomic_store(&alone_drops, 0);
    ox_join_handle t = ox_thread_spawn(dance_through_weak, NULL);
    ox_test_budget b = ox_test_budget_start(ox_test_scaled(2000), ox_test_scaled(200000));
    long n = 0;
    for (; ox_test_budget_more(&b, n); n++) {
        long *p = ox_arc_new(sizeof *p, drop_fn_checks_the_dancer);
        atomic_store(&dancer.dancing, 0);
        atomic_store(&dancer.given, ox_arc_clone(p));
        while (!atomic_load(&dancer.dancing)) /* drop in the middle of the dance */
            ;
        for (volatile int spin = 0; spin < (int)(n % 256); spin++)
            ;
        ox_arc_drop(p);
        while (atomic_load(&alone_drops) != n + 1) /* the dancer is done with it */
            ;
    }
    atomic_store(&dancer.stop, 1);
    CHECK_EQ(ox_thread_join(&t, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&dancer.bad), 0);
    CHECK_EQ(atomic_load(&alone_drops), n);
}

/* ---- the last drop's acquire ----
 * Another owner writes the value plainly and drops its reference; the
 * first owner learns that it is alone only from a relaxed flag, so its
 * last drop's load of the strong count is the only edge that orders the
 * write before drop_fn's read (ThreadSanitizer reports the write and the
 * read as a race if that load is relaxed). */

typedef struct written {
    long value;
} written;

static _Atomic long written_seen;

static void read_written(void *p)
{
    atomic_store(&written_seen, ((written *)p)->value);
}

typedef struct writer_arg {
    written *p;
    _Atomic int done;
} writer_arg;

static void *write_then_drop(void *arg)
{
    writer_arg *a = arg;
    a->p->value = 42;
    ox_arc_drop(a->p);
    atomic_store_explicit(&a->done, 1, memory_order_relaxed);
    return NULL;
}

OX_TEST(arc_alone_last_drop_sees_the_other_owners_writes)
{
    for (int round = 0; round < ox_test_scaled(200); round++) {
        written *p = ox_arc_new(sizeof *p, read_written);
        writer_arg a = {.p = ox_arc_clone(p)};
        ox_join_handle t = ox_thread_spawn(write_then_drop, &a);
        while (!atomic_load_explicit(&a.done, memory_order_relaxed))
            ;
        atomic_store(&written_seen, 0);
        ox_arc_drop(p); /* alone now: drop_fn reads the other owner's write */
        CHECK_EQ(atomic_load(&written_seen), 42);
        CHECK_EQ(ox_thread_join(&t, NULL, NULL), 0);
    }
}
