/* break39: attacks on the rwlock unlocks' one look at the record
 * (6f2a28b). An unlock pops the thread's newest held-lock entry when it is
 * this lock in this mode (ox__held_drop_if_top); any other case goes the
 * slow way (ox__rwlock_read_unlock_slow, ox__rwlock_unlock_not_on_top),
 * which finds the lock's newest entry, checks its mode and aborts on
 * misuse. The release then tests the waiting bits before the lock-is-free
 * bits (ox__rwlock_released).
 *
 * What would break: a pop of an entry that is not this lock's (a cleanup's,
 * another lock's, this lock's in the other mode), which leaves the record
 * wrong for the next unlock or a panic's unwind; a misuse that the fast
 * path lets through and that takes another thread's reader count; a wake
 * skipped when the last reader leaves out of order. The tests read the
 * record itself (its depth and each lock's newest entry) after every step,
 * and check the lock words from other threads.
 */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "panic/unwind.h" /* white box: the live held-lock record */

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

static uint32_t depth(void)
{
    return ox__unwind_current()->depth;
}

/* The mode of the calling thread's newest entry for lock, NULL if none. */
static const ox__lock_ops *mode_of(const void *lock)
{
    const ox__unwind_entry *e = ox__held_find(lock);
    return e != NULL ? e->u.lock_ops : NULL;
}

static bool is_read_mode(const ox__lock_ops *ops)
{
    return ops == &ox__rwlock_read_ops || ops == &ox__rwlock_slot_read_ops ||
           ops == &ox__rwlock_own_read_ops;
}

static void *try_write_and_release(void *arg)
{
    ox_rwlock *l = arg;
    int rc = ox_rwlock_try_write(l);
    if (rc == 0 || rc == OX_EPOISONED)
        ox_rwlock_write_unlock(l);
    return (void *)(intptr_t)rc;
}

static void *try_read_and_release(void *arg)
{
    ox_rwlock *l = arg;
    int rc = ox_rwlock_try_read(l);
    if (rc == 0 || rc == OX_EPOISONED)
        ox_rwlock_read_unlock(l);
    return (void *)(intptr_t)rc;
}

/* What a try_write (or try_read) in another thread returns: whether the
 * calling thread's unlocks really released the word. */
static int try_write_elsewhere(ox_rwlock *l)
{
    void *rc = NULL;
    ox_join_handle h = ox_thread_spawn(try_write_and_release, l);
    CHECK_EQ(ox_thread_join(&h, &rc, NULL), 0);
    return (int)(intptr_t)rc;
}

static int try_read_elsewhere(ox_rwlock *l)
{
    void *rc = NULL;
    ox_join_handle h = ox_thread_spawn(try_read_and_release, l);
    CHECK_EQ(ox_thread_join(&h, &rc, NULL), 0);
    return (int)(intptr_t)rc;
}

/* ---- misuse that the fast path must not let through ---- */

/* The top entry is this lock, held for reading: a write unlock must not
 * pop it (the mode differs) and must abort with both modes named. */
OX_TEST_OPTS(break39_write_unlock_of_a_read_lock_on_top_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "is held for reading by thread 'main', not for writing")
{
    ox_rwlock l = OX_RWLOCK_INIT;
    CHECK_EQ(ox_rwlock_read(&l), 0);
    ox_rwlock_write_unlock(&l);
}

/* The same below another lock's entry: the slow path's check. */
OX_TEST_OPTS(break39_write_unlock_of_a_read_lock_below_another_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "is held for reading by thread 'main', not for writing")
{
    ox_rwlock a = OX_RWLOCK_INIT, b = OX_RWLOCK_INIT;
    CHECK_EQ(ox_rwlock_read(&a), 0);
    CHECK_EQ(ox_rwlock_write(&b), 0);
    ox_rwlock_write_unlock(&a);
}

/* Another thread holds l (for writing or reading) until the test's process
 * ends by the abort under test. */
struct holder {
    ox_rwlock *l;
    bool write;
    _Atomic int held;
};

static void *hold_until_the_abort(void *arg)
{
    struct holder *h = arg;
    CHECK_EQ(h->write ? ox_rwlock_write(h->l) : ox_rwlock_read(h->l), 0);
    atomic_store(&h->held, 1);
    for (;;)
        ox_thread_sleep(OX_SECS(1));
    return NULL;
}

static void hold_elsewhere(struct holder *h)
{
    ox_join_handle t = ox_thread_spawn(hold_until_the_abort, h);
    while (!atomic_load(&h->held))
        ox_thread_yield();
    ox_join_handle_drop(&t);
}

/* A second read unlock while another thread still reads: the state's
 * reader count is 1 (the other thread's), so only the record can tell the
 * unlock is wrong. Letting it through would release the other reader's
 * hold and let a writer in beside it. */
OX_TEST_OPTS(break39_second_read_unlock_beside_another_reader_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "unlocking an rwlock not held by this thread")
{
    static ox_rwlock l = OX_RWLOCK_INIT;
    static struct holder other = {&l, false, 0};
    hold_elsewhere(&other);
    CHECK_EQ(ox_rwlock_read(&l), 0);
    ox_rwlock_read_unlock(&l);
    ox_rwlock_read_unlock(&l); /* aborts */
}

/* A write unlock of a lock this thread never took, with a lock on top and
 * the other thread holding it for writing. */
OX_TEST_OPTS(break39_write_unlock_of_another_threads_write_lock_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "unlocking an rwlock not held by this thread")
{
    static ox_rwlock l = OX_RWLOCK_INIT, mine = OX_RWLOCK_INIT;
    static struct holder other = {&l, true, 0};
    hold_elsewhere(&other);
    CHECK_EQ(ox_rwlock_write(&mine), 0);
    ox_rwlock_write_unlock(&l); /* aborts */
}

/* ---- unlocks out of order keep the record exact ---- */

OX_TEST(break39_out_of_order_unlocks_leave_the_record_exact)
{
    ox_rwlock a = OX_RWLOCK_INIT, b = OX_RWLOCK_INIT, c = OX_RWLOCK_INIT;
    ox_mutex m = OX_MUTEX_INIT;
    const uint32_t base = depth();
    CHECK_EQ(ox_mutex_lock(&m), 0);
    CHECK_EQ(ox_rwlock_write(&a), 0);
    CHECK_EQ(ox_rwlock_read(&b), 0);
    CHECK_EQ(ox_rwlock_read(&b), 0); /* the same lock twice */
    CHECK_EQ(ox_rwlock_read(&c), 0);
    CHECK_EQ(depth(), base + 5);

    ox_rwlock_write_unlock(&a); /* under three entries */
    CHECK_EQ(depth(), base + 4);
    CHECK(mode_of(&a) == NULL);
    CHECK_EQ(try_write_elsewhere(&a), 0);

    ox_rwlock_read_unlock(&b); /* b's newer entry, under c's */
    CHECK_EQ(depth(), base + 3);
    CHECK(is_read_mode(mode_of(&b)));
    CHECK_EQ(try_write_elsewhere(&b), OX_EBUSY); /* still read once */
    CHECK_EQ(try_read_elsewhere(&b), 0);

    ox_mutex_unlock(&m); /* the oldest entry */
    CHECK_EQ(depth(), base + 2);
    CHECK(is_read_mode(mode_of(&b)));
    CHECK(is_read_mode(mode_of(&c)));

    ox_rwlock_read_unlock(&c); /* on top: the fast path */
    CHECK_EQ(depth(), base + 1);
    ox_rwlock_read_unlock(&b); /* on top now */
    CHECK_EQ(depth(), base);
    CHECK_EQ(try_write_elsewhere(&b), 0);
    CHECK_EQ(try_write_elsewhere(&c), 0);
    CHECK(!ox_rwlock_is_poisoned(&a));
    ox_rwlock_destroy(&a);
    ox_rwlock_destroy(&b);
    ox_rwlock_destroy(&c);
}

/* A cleanup's entry (a NULL object) on top: the unlocks of the locks under
 * it go the slow way and leave the cleanup where it is. The panic after
 * them runs the cleanup once and releases nothing else: a lock released
 * twice would abort or take a count that is not there, and a write lock
 * still in the record would be poisoned. */
struct under_cleanup {
    ox_rwlock a, b;
    int cleanups;
    uint32_t base;
};

static void count_cleanup(void *arg)
{
    ((struct under_cleanup *)arg)->cleanups++;
}

static void *unlock_under_a_cleanup_then_panic(void *arg)
{
    struct under_cleanup *u = arg;
    u->base = depth();
    CHECK_EQ(ox_rwlock_read(&u->a), 0);
    CHECK_EQ(ox_rwlock_write(&u->b), 0);
    ox_cleanup_push(count_cleanup, u);
    ox_rwlock_read_unlock(&u->a);
    ox_rwlock_write_unlock(&u->b);
    CHECK_EQ(depth(), u->base + 1);
    CHECK(mode_of(&u->a) == NULL && mode_of(&u->b) == NULL);
    ox_panic("with a cleanup pushed above two released locks");
}

OX_TEST(break39_unlocks_under_a_cleanup_leave_it_and_the_panic_releases_nothing_twice)
{
    ox_panic_hook old = ox_panic_set_hook(ox_test_quiet_hook);
    struct under_cleanup u = {OX_RWLOCK_INIT, OX_RWLOCK_INIT, 0, 0};
    const uint32_t outside = depth();
    CHECK_EQ(ox_catch_unwind(unlock_under_a_cleanup_then_panic, &u, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(u.cleanups, 1);
    CHECK_EQ(depth(), outside);
    CHECK(!ox_rwlock_is_poisoned(&u.a));
    CHECK(!ox_rwlock_is_poisoned(&u.b));
    CHECK_EQ(try_write_elsewhere(&u.a), 0);
    CHECK_EQ(try_write_elsewhere(&u.b), 0);
    ox_panic_set_hook(old);
}

/* A panic after unlocks out of order releases exactly the locks still
 * held, each in its mode: the write-held ones poisoned, the read-held
 * ones not, and every reader count back to 0. */
struct left_held {
    ox_rwlock a, b, c, released_early;
    ox_mutex m;
};

static void *panic_after_out_of_order_unlocks(void *arg)
{
    struct left_held *h = arg;
    CHECK_EQ(ox_rwlock_read(&h->a), 0);
    CHECK_EQ(ox_rwlock_write(&h->released_early), 0);
    CHECK_EQ(ox_rwlock_read(&h->b), 0);
    CHECK_EQ(ox_rwlock_write(&h->c), 0);
    CHECK_EQ(ox_rwlock_read(&h->a), 0); /* a again, above c */
    CHECK_EQ(ox_mutex_lock(&h->m), 0);
    ox_rwlock_read_unlock(&h->a);               /* the newer a, under m */
    ox_rwlock_write_unlock(&h->released_early); /* deep down */
    CHECK(is_read_mode(mode_of(&h->a)));        /* the older a stays */
    ox_panic("holding a, b (read), c (write) and m");
}

OX_TEST(break39_panic_after_out_of_order_unlocks_releases_exactly_what_is_held)
{
    ox_panic_hook old = ox_panic_set_hook(ox_test_quiet_hook);
    struct left_held h = {OX_RWLOCK_INIT, OX_RWLOCK_INIT, OX_RWLOCK_INIT, OX_RWLOCK_INIT,
                          OX_MUTEX_INIT};
    const uint32_t outside = depth();
    CHECK_EQ(ox_catch_unwind(panic_after_out_of_order_unlocks, &h, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(depth(), outside);
    CHECK(!ox_rwlock_is_poisoned(&h.a));
    CHECK(!ox_rwlock_is_poisoned(&h.b));
    CHECK(ox_rwlock_is_poisoned(&h.c));
    CHECK(!ox_rwlock_is_poisoned(&h.released_early));
    CHECK(ox_mutex_is_poisoned(&h.m));
    CHECK_EQ(ox_test_rwlock_count(&h.a), 0);
    CHECK_EQ(ox_test_rwlock_count(&h.b), 0);
    CHECK_EQ(try_write_elsewhere(&h.a), 0);
    CHECK_EQ(try_write_elsewhere(&h.b), 0);
    CHECK_EQ(try_write_elsewhere(&h.c), OX_EPOISONED);
    CHECK_EQ(try_write_elsewhere(&h.released_early), 0);
    ox_panic_set_hook(old);
}

/* ---- the last reader out of order wakes the writer ---- */

/* Two readers hold both locks, taken in opposite orders, and release the
 * older entry first (the slow path) and the newer last (the fast path),
 * while a writer waits on each lock. Whichever release is the last on a
 * lock must wake its writer: a timed write that times out is the lost
 * wake, failed by name. */
struct crossed {
    ox_rwlock a, b;
    _Atomic int ready, go;
    /* Writes into each lock: a's count by a's writer under a's write
     * lock, b's by b's (one counter for both would race). */
    long inside_a, inside_b;
};

struct crossed_reader {
    struct crossed *x;
    ox_rwlock *first, *second;
};

static void *crossed_reader(void *arg)
{
    struct crossed_reader *r = arg;
    const uint32_t base = depth();
    CHECK_EQ(ox_rwlock_read(r->first), 0);
    CHECK_EQ(ox_rwlock_read(r->second), 0);
    atomic_fetch_add(&r->x->ready, 1);
    while (!atomic_load(&r->x->go))
        ox_thread_yield();
    ox_rwlock_read_unlock(r->first); /* not on top */
    CHECK(mode_of(r->first) == NULL);
    ox_rwlock_read_unlock(r->second); /* on top */
    CHECK_EQ(depth(), base);
    return NULL;
}

static void *timed_writer(void *arg)
{
    ox_rwlock *l = ((void **)arg)[0];
    long *inside = ((void **)arg)[1];
    CHECK_EQ(ox_rwlock_write_timeout(l, ox_test_bound(OX_SECS(5))), 0);
    CHECK_EQ(ox_test_rwlock_count(l), 0);
    (*inside)++;
    ox_rwlock_write_unlock(l);
    return NULL;
}

OX_TEST_OPTS(break39_last_reader_leaving_out_of_order_wakes_the_writer, .timeout_s = 60)
{
    struct crossed x = {OX_RWLOCK_INIT, OX_RWLOCK_INIT, 0, 0, 0, 0};
    struct crossed_reader ab = {&x, &x.a, &x.b}, ba = {&x, &x.b, &x.a};
    void *wa[2] = {&x.a, &x.inside_a}, *wb[2] = {&x.b, &x.inside_b};
    ox_test_budget budget = ox_test_budget_start(50, ox_test_scaled(400));
    long rounds = 0;
    for (; ox_test_budget_more(&budget, rounds); rounds++) {
        atomic_store(&x.ready, 0);
        atomic_store(&x.go, 0);
        ox_join_handle r1 = ox_thread_spawn(crossed_reader, &ab);
        ox_join_handle r2 = ox_thread_spawn(crossed_reader, &ba);
        while (atomic_load(&x.ready) != 2)
            ox_thread_yield();
        ox_join_handle w1 = ox_thread_spawn(timed_writer, wa);
        ox_join_handle w2 = ox_thread_spawn(timed_writer, wb);
        ox_test_wait_blocked(&x.a, 1, NULL);
        ox_test_wait_blocked(&x.b, 1, NULL);
        atomic_store(&x.go, 1);
        CHECK_EQ(ox_thread_join(&r1, NULL, NULL), 0);
        CHECK_EQ(ox_thread_join(&r2, NULL, NULL), 0);
        CHECK_EQ(ox_thread_join(&w1, NULL, NULL), 0);
        CHECK_EQ(ox_thread_join(&w2, NULL, NULL), 0);
    }
    CHECK_EQ(x.inside_a, rounds);
    CHECK_EQ(x.inside_b, rounds);
}

/* ---- tasks and threads: guards held across yields, unlocked in any order ---- */

/* Each round takes up to three locks in a fixed order (no deadlock), each
 * for reading or writing, yields or sleeps while holding them (a task may
 * resume on the other worker, with the record it carries), and releases
 * them in a random order, checking the record after every unlock and the
 * locks' exclusion throughout. */
#define LOCKS 3

static struct {
    ox_rwlock l[LOCKS];
    _Atomic int readers[LOCKS], writers[LOCKS];
} shared = {{OX_RWLOCK_INIT, OX_RWLOCK_INIT, OX_RWLOCK_INIT}, {0}, {0}};

static void hold(int i, bool write)
{
    if (write) {
        CHECK_EQ(ox_rwlock_write(&shared.l[i]), 0);
        CHECK_EQ(atomic_fetch_add(&shared.writers[i], 1), 0);
        CHECK_EQ(atomic_load(&shared.readers[i]), 0);
    } else {
        CHECK_EQ(ox_rwlock_read(&shared.l[i]), 0);
        atomic_fetch_add(&shared.readers[i], 1);
        CHECK_EQ(atomic_load(&shared.writers[i]), 0);
    }
}

static void release(int i, bool write)
{
    if (write) {
        CHECK_EQ(atomic_fetch_sub(&shared.writers[i], 1), 1);
        ox_rwlock_write_unlock(&shared.l[i]);
    } else {
        CHECK(atomic_fetch_sub(&shared.readers[i], 1) >= 1);
        ox_rwlock_read_unlock(&shared.l[i]);
    }
}

static void pause_holding(uint32_t *seed)
{
    if (ox_task_current() == NULL) {
        ox_thread_yield();
        return;
    }
    if (ox_test_rand(seed) % 4 == 0)
        CHECK_EQ(ox_task_sleep(OX_MICROS(20)), 0);
    else
        ox_task_yield();
}

static void *guard_rounds(void *arg)
{
    uint32_t seed = 0x9e3779b9u * (uint32_t)(intptr_t)arg + 1;
    const uint32_t base = depth();
    ox_test_budget budget = ox_test_budget_start(200, ox_test_scaled(3000));
    for (long r = 0; ox_test_budget_more(&budget, r); r++) {
        bool held[LOCKS], write[LOCKS];
        uint32_t n = 0;
        for (int i = 0; i < LOCKS; i++) {
            uint32_t pick = ox_test_rand(&seed) % 3; /* skip, read, write */
            held[i] = pick != 0;
            write[i] = pick == 2;
            if (held[i]) {
                hold(i, write[i]);
                n++;
            }
        }
        CHECK_EQ(depth(), base + n);
        pause_holding(&seed);
        while (n > 0) {
            int i = (int)(ox_test_rand(&seed) % LOCKS);
            if (!held[i])
                continue;
            release(i, write[i]);
            held[i] = false;
            n--;
            CHECK_EQ(depth(), base + n);
            CHECK(mode_of(&shared.l[i]) == NULL);
            for (int j = 0; j < LOCKS; j++)
                if (held[j])
                    CHECK(write[j] ? mode_of(&shared.l[j]) == &ox__rwlock_write_ops
                                   : is_read_mode(mode_of(&shared.l[j])));
            if (n > 0 && ox_test_rand(&seed) % 2)
                pause_holding(&seed);
        }
    }
    return NULL;
}

OX_TEST_OPTS(break39_guards_across_yields_unlocked_in_any_order_by_tasks_and_threads,
             .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(2);
    ox_test_run_tasks_and_threads(rt, 6, 2, guard_rounds);
    ox_runtime_shutdown(rt);
    for (int i = 0; i < LOCKS; i++) {
        CHECK_EQ(ox_test_rwlock_count(&shared.l[i]), 0);
        CHECK_EQ(try_write_elsewhere(&shared.l[i]), 0);
    }
}
