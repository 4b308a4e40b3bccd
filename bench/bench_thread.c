/* Thread benchmarks (bench/WORKLOADS.md): spawn_join, scoped_spawn_join,
 * tls_access, and the memory of a join handle plus its thread record. */
#include "harness.h"

#include "oxide.h"
#include "thread/thread_internal.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>

static void *empty(void *arg)
{
    return arg;
}

OX_BENCH(spawn_join, "spawn_join", "oxide")
{
    enum { COUNT = 20000 };
    uint64_t t0 = ox_bench_now_ns();
    for (int i = 0; i < COUNT; i++) {
        ox_join_handle h = ox_thread_spawn(empty, NULL);
        (void)!ox_thread_join(&h, NULL, NULL);
    }
    return (double)(ox_bench_now_ns() - t0) / COUNT;
}

static void *add_one(void *arg)
{
    atomic_fetch_add_explicit((_Atomic long *)arg, 1, memory_order_relaxed);
    return NULL;
}

static void spawn_four(ox_scope *s, void *counter)
{
    for (int i = 0; i < 4; i++)
        ox_scope_spawn(s, add_one, counter);
}

OX_BENCH(scoped_spawn_join, "scoped_spawn_join", "oxide")
{
    enum { SCOPES = 5000 };
    _Atomic long counter = 0;
    uint64_t t0 = ox_bench_now_ns();
    for (int i = 0; i < SCOPES; i++)
        ox_thread_scope(spawn_four, (void *)&counter);
    double ns = (double)(ox_bench_now_ns() - t0) / (SCOPES * 4);
    if (atomic_load(&counter) != SCOPES * 4)
        fprintf(stderr, "scoped_spawn_join: lost increments\n");
    return ns;
}

static void one(int *v)
{
    *v = 1;
}
OX_THREAD_LOCAL(bench_tls, int, one, NULL);

OX_BENCH(tls_access, "tls_access", "oxide")
{
    enum { COUNT = 100000000 };
    long sum = 0;
    uint64_t t0 = ox_bench_now_ns();
    for (long i = 0; i < COUNT; i++) {
        /* The barrier makes every iteration read through the accessor,
         * exactly as the c-thread-local peer reads its variable. */
        __asm__ __volatile__("" ::: "memory");
        sum += *OX_TLS_GET(bench_tls);
    }
    double ns = (double)(ox_bench_now_ns() - t0) / COUNT;
    OX_BENCH_KEEP(sum);
    return ns;
}

/* Not a time: bytes of a running thread's record, as the allocator hands
 * them out (the join handle itself is one pointer, on the caller's side). */
OX_BENCH(thread_memory, "mem_join_handle_and_record_bytes", "oxide")
{
    ox_join_handle h = ox_thread_spawn(empty, NULL);
    size_t bytes = sizeof h + malloc_usable_size(h.thread);
    (void)!ox_thread_join(&h, NULL, NULL);
    return (double)bytes;
}
