/* bench_chan.c - the channel workloads of bench/WORKLOADS.md (after
 * crossbeam-channel's benchmarks), plus two memory measurements. */
#include "harness.h"
#include "oxide.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BIG   1000000L /* unbounded, boundedN */
#define SMALL 400000L  /* bounded0, bounded1 */

typedef struct run {
    ox_sender *tx;
    ox_receiver *rx;
    long count; /* per thread */
    _Atomic int go;
} run;

static void wait_go(run *r)
{
    while (!atomic_load_explicit(&r->go, memory_order_acquire))
        ox_thread_yield();
}

static void *sender_thread(void *arg)
{
    run *r = arg;
    ox_sender *tx = ox_sender_clone(r->tx);
    /* A local: r lives on the main thread's stack, next to what its receive
     * loop writes, and reading it per message measured false sharing. */
    long count = r->count;
    wait_go(r);
    for (long i = 0; i < count; i++) {
        uint64_t v = (uint64_t)i;
        if (ox_sender_send(tx, &v) != 0)
            abort();
    }
    ox_sender_drop(tx);
    return NULL;
}

static void *receiver_thread(void *arg)
{
    run *r = arg;
    ox_receiver *rx = ox_receiver_clone(r->rx);
    long count = r->count; /* as in sender_thread */
    wait_go(r);
    uint64_t v, sum = 0;
    for (long i = 0; i < count; i++) {
        if (ox_receiver_recv(rx, &v) != 0)
            abort();
        sum += v;
    }
    OX_BENCH_KEEP(sum);
    ox_receiver_drop(rx);
    return NULL;
}

static void make(run *r, size_t cap)
{
    if (ox_channel(sizeof(uint64_t), cap, &r->tx, &r->rx) != 0)
        abort();
    atomic_init(&r->go, 0);
}

static void unmake(run *r)
{
    ox_sender_drop(r->tx);
    ox_receiver_drop(r->rx);
}

static double seq(size_t cap, long n)
{
    run r;
    make(&r, cap);
    uint64_t t0 = ox_bench_now_ns(), v, sum = 0;
    for (long i = 0; i < n; i++) {
        v = (uint64_t)i;
        if (ox_sender_send(r.tx, &v) != 0)
            abort();
    }
    for (long i = 0; i < n; i++) {
        if (ox_receiver_recv(r.rx, &v) != 0)
            abort();
        sum += v;
    }
    uint64_t t1 = ox_bench_now_ns();
    OX_BENCH_KEEP(sum);
    unmake(&r);
    return (double)(t1 - t0) / (double)n;
}

/* nsend sender threads; nrecv receiver threads, or the main thread if 0. */
static double threaded(size_t cap, long n, int nsend, int nrecv)
{
    run r;
    make(&r, cap);
    r.count = n / nsend;
    run rr = r; /* same channel, receivers' per-thread count */
    rr.count = nrecv ? n / nrecv : n;
    ox_join_handle s[4], q[4];
    for (int i = 0; i < nsend; i++)
        s[i] = ox_thread_spawn(sender_thread, &r);
    for (int i = 0; i < nrecv; i++)
        q[i] = ox_thread_spawn(receiver_thread, &rr);
    ox_thread_sleep(OX_MILLIS(1));
    uint64_t t0 = ox_bench_now_ns();
    atomic_store_explicit(&r.go, 1, memory_order_release);
    atomic_store_explicit(&rr.go, 1, memory_order_release);
    if (nrecv == 0) {
        uint64_t v, sum = 0;
        for (long i = 0; i < n; i++) {
            if (ox_receiver_recv(r.rx, &v) != 0)
                abort();
            sum += v;
        }
        OX_BENCH_KEEP(sum);
    }
    for (int i = 0; i < nsend; i++)
        (void)!ox_thread_join(&s[i], NULL, NULL);
    for (int i = 0; i < nrecv; i++)
        (void)!ox_thread_join(&q[i], NULL, NULL);
    uint64_t t1 = ox_bench_now_ns();
    unmake(&r);
    return (double)(t1 - t0) / (double)n;
}

#define CHAN_BENCH(shape, flavor, cap, n, ...)                                                     \
    OX_BENCH(bench_chan_##shape##_##flavor, "chan_" #shape "_" #flavor, "oxide")                   \
    {                                                                                              \
        return __VA_ARGS__;                                                                        \
    }

CHAN_BENCH(seq, unbounded, OX_UNBOUNDED, BIG, seq(OX_UNBOUNDED, BIG))
CHAN_BENCH(seq, boundedN, BIG, BIG, seq(BIG, BIG))
CHAN_BENCH(spsc, unbounded, OX_UNBOUNDED, BIG, threaded(OX_UNBOUNDED, BIG, 1, 0))
CHAN_BENCH(spsc, bounded0, 0, SMALL, threaded(0, SMALL, 1, 0))
CHAN_BENCH(spsc, bounded1, 1, SMALL, threaded(1, SMALL, 1, 0))
CHAN_BENCH(spsc, boundedN, BIG, BIG, threaded(BIG, BIG, 1, 0))
CHAN_BENCH(mpsc, unbounded, OX_UNBOUNDED, BIG, threaded(OX_UNBOUNDED, BIG, 4, 0))
CHAN_BENCH(mpsc, bounded0, 0, SMALL, threaded(0, SMALL, 4, 0))
CHAN_BENCH(mpsc, bounded1, 1, SMALL, threaded(1, SMALL, 4, 0))
CHAN_BENCH(mpsc, boundedN, BIG, BIG, threaded(BIG, BIG, 4, 0))
CHAN_BENCH(mpmc, unbounded, OX_UNBOUNDED, BIG, threaded(OX_UNBOUNDED, BIG, 4, 4))
CHAN_BENCH(mpmc, bounded0, 0, SMALL, threaded(0, SMALL, 4, 4))
CHAN_BENCH(mpmc, bounded1, 1, SMALL, threaded(1, SMALL, 4, 4))
CHAN_BENCH(mpmc, boundedN, BIG, BIG, threaded(BIG, BIG, 4, 4))

#define ROUND_TRIPS 50000L

typedef struct pingpong {
    ox_sender *a_tx, *b_tx;
    ox_receiver *a_rx, *b_rx;
    _Atomic int go;
} pingpong;

static void *ponger(void *arg)
{
    pingpong *p = arg;
    /* Locals, as in sender_thread: p is on the main thread's stack, next
     * to the value its loop writes on every round trip. */
    ox_receiver *a_rx = p->a_rx;
    ox_sender *b_tx = p->b_tx;
    while (!atomic_load_explicit(&p->go, memory_order_acquire))
        ox_thread_yield();
    uint64_t v;
    for (long i = 0; i < ROUND_TRIPS; i++) {
        if (ox_receiver_recv(a_rx, &v) != 0 || ox_sender_send(b_tx, &v) != 0)
            abort();
    }
    return NULL;
}

OX_BENCH(bench_chan_pingpong, "chan_pingpong", "oxide")
{
    pingpong p;
    if (ox_channel(sizeof(uint64_t), 1, &p.a_tx, &p.a_rx) != 0 ||
        ox_channel(sizeof(uint64_t), 1, &p.b_tx, &p.b_rx) != 0)
        abort();
    atomic_init(&p.go, 0);
    ox_join_handle h = ox_thread_spawn(ponger, &p);
    ox_thread_sleep(OX_MILLIS(1));
    uint64_t t0 = ox_bench_now_ns();
    atomic_store_explicit(&p.go, 1, memory_order_release);
    for (long i = 0; i < ROUND_TRIPS; i++) {
        uint64_t v = (uint64_t)i;
        if (ox_sender_send(p.a_tx, &v) != 0 || ox_receiver_recv(p.b_rx, &v) != 0 ||
            v != (uint64_t)i)
            abort();
    }
    (void)!ox_thread_join(&h, NULL, NULL);
    uint64_t t1 = ox_bench_now_ns();
    ox_sender_drop(p.a_tx);
    ox_sender_drop(p.b_tx);
    ox_receiver_drop(p.a_rx);
    ox_receiver_drop(p.b_rx);
    return (double)(t1 - t0) / ROUND_TRIPS;
}

/* ---- memory (not ns: the value is bytes per message / bytes left) ----
 * Heap in use (mallinfo2) while an unbounded channel holds 1 000 000
 * 8-byte messages, per message; and what stays allocated once drained. */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* One fill and drain: returns heap bytes per message while full, and sets
 * *left to the bytes still allocated once drained (channel still open). */
static double fill_and_drain(size_t *left)
{
    size_t before = heap_in_use();
    run r;
    make(&r, OX_UNBOUNDED);
    for (long i = 0; i < BIG; i++) {
        uint64_t v = (uint64_t)i;
        (void)!ox_sender_send(r.tx, &v);
    }
    size_t full = heap_in_use();
    uint64_t v;
    for (long i = 0; i < BIG; i++)
        (void)!ox_receiver_recv(r.rx, &v);
    *left = heap_in_use() - before;
    unmake(&r);
    return (double)(full - before) / (double)BIG;
}

/* A first fill and drain leaves up to 7 freed blocks in glibc's per-thread
 * cache (tcache), which mallinfo counts as in use though the channel let
 * them go; the figures come from a second one, which starts with that
 * cache already full. */
static double measured_fill_and_drain(size_t *left)
{
    (void)fill_and_drain(left);
    return fill_and_drain(left);
}

OX_BENCH(bench_chan_mem_full, "chan_mem_unbounded_1M_bytes_per_msg", "oxide")
{
    size_t left;
    return measured_fill_and_drain(&left);
}

OX_BENCH(bench_chan_mem_drained, "chan_mem_unbounded_drained_bytes", "oxide")
{
    size_t left;
    (void)measured_fill_and_drain(&left);
    return (double)left;
}
