/* The store half of oxide's store-then-load pairs (src/common/dekker.h):
 * two threads each store their flag and load the other's, and at least
 * one must see the other's store. A plain seq_cst store fails this under
 * qemu-user on an x86-64 host (the aarch64 suite), where the runtime's
 * only polling worker then slept through every wake-up. */
#include "oxide.h"
#include "runner.h"

#include "common/dekker.h"

#include <sched.h>
#include <stdatomic.h>

typedef struct sides {
    _Atomic uint32_t flag[2];
    uint32_t seen[2];      /* what each side loaded of the other's flag */
    _Atomic long go, done; /* round the second side may start / has ended; -1: stop */
} sides;

static void store_then_load(sides *s, int me)
{
    OX__DEKKER_STORE(&s->flag[me], 1);
    s->seen[me] = atomic_load_explicit(&s->flag[1 - me], memory_order_seq_cst);
}

static void wait_for(_Atomic long *word, long value)
{
    /* Yields: on a busy machine the other side may need this CPU. */
    for (unsigned spins = 0; atomic_load(word) != value; spins++)
        if (spins % 64 == 63)
            sched_yield();
}

static void *second_side(void *arg)
{
    sides *s = arg;
    for (long r = 1;; r++) {
        for (unsigned spins = 0; atomic_load(&s->go) != r; spins++) {
            if (atomic_load(&s->go) < 0)
                return NULL;
            if (spins % 64 == 63)
                sched_yield();
        }
        store_then_load(s, 1);
        atomic_store(&s->done, r);
    }
}

OX_TEST(store_then_load_pairs_never_both_miss)
{
    static sides s;
    ox_join_handle other = ox_thread_spawn(second_side, &s);
    ox_test_budget b = ox_test_budget_start(1000, ox_test_scaled(100000));
    long r, both_missed = 0;
    for (r = 1; ox_test_budget_more(&b, r - 1); r++) {
        atomic_store(&s.flag[0], 0);
        atomic_store(&s.flag[1], 0);
        atomic_store(&s.go, r); /* seq_cst: the resets come first */
        store_then_load(&s, 0);
        wait_for(&s.done, r);
        both_missed += s.seen[0] == 0 && s.seen[1] == 0;
    }
    atomic_store(&s.go, -1);
    CHECK_EQ(ox_thread_join(&other, NULL, NULL), 0);
    CHECK(r - 1 >= b.min);
    CHECK_EQ(both_missed, 0);
}
