/* arc_clone_drop (bench/WORKLOADS.md): clone then drop a reference-counted
 * handle in one thread, 10 000 000 times. "oxide" uses ox_arc_clone /
 * ox_arc_drop; "c-atomic" is the bare floor the target is measured against:
 * atomic_fetch_add(relaxed) + atomic_fetch_sub(release), with an acquire
 * (fence, or a load under TSan) when it reaches 0. */
#include "harness.h"

#include "oxide.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

enum { ARC_COUNT = 10000000, WARMUP = 1000000 };

OX_BENCH(arc_clone_drop_oxide, "arc_clone_drop", "oxide")
{
    long *data = ox_arc_new(sizeof *data, NULL);
    /* Untimed warm-up, the same for both implementations (the first
     * workload of a run otherwise pays for the CPU clocking up). */
    for (int i = 0; i < WARMUP; i++)
        ox_arc_drop(ox_arc_clone(data));
    uint64_t t0 = ox_bench_now_ns();
    for (int i = 0; i < ARC_COUNT; i++) {
        long *c = ox_arc_clone(data);
        OX_BENCH_KEEP(c);
        ox_arc_drop(c);
    }
    double ns = (double)(ox_bench_now_ns() - t0) / ARC_COUNT;
    if (ox_arc_strong_count(data) != 1)
        fprintf(stderr, "arc_clone_drop: the count drifted\n");
    ox_arc_drop(data);
    return ns;
}

/* The baseline: a heap counter, as an Arc's. */
typedef struct counted {
    _Atomic size_t count;
    long value;
} counted;

static void counted_release(counted *c)
{
    if (atomic_fetch_sub_explicit(&c->count, 1, memory_order_release) != 1)
        return;
#if defined(__SANITIZE_THREAD__)
    (void)atomic_load_explicit(&c->count, memory_order_acquire);
#else
    atomic_thread_fence(memory_order_acquire);
#endif
    free(c);
}

OX_BENCH(arc_clone_drop_c_atomic, "arc_clone_drop", "c-atomic")
{
    counted *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    atomic_init(&c->count, 1);
    for (int i = 0; i < WARMUP; i++) {
        atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
        counted_release(c);
    }
    uint64_t t0 = ox_bench_now_ns();
    for (int i = 0; i < ARC_COUNT; i++) {
        atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
        OX_BENCH_KEEP(c);
        counted_release(c);
    }
    double ns = (double)(ox_bench_now_ns() - t0) / ARC_COUNT;
    counted_release(c);
    return ns;
}
