/* Lock benchmarks (bench/WORKLOADS.md): mutex_uncontended, mutex_contended,
 * rwlock_read_heavy, condvar_pingpong. */
#include "harness.h"

#include "oxide.h"

#include <stdatomic.h>
#include <stdio.h>

/* Workers wait for this flag so that they start together (yielding: on a
 * machine with fewer CPUs than workers, spinning would delay the others). */
static _Atomic int start_flag;

static void wait_for_start(void)
{
    while (!atomic_load_explicit(&start_flag, memory_order_acquire))
        ox_thread_yield();
}

/* Runs fn(arg) on n threads, timing from the release of the start flag until
 * all have finished. Returns the elapsed nanoseconds. */
static uint64_t run_threads(int n, void *(*fn)(void *), void *arg)
{
    ox_join_handle h[8];
    atomic_store_explicit(&start_flag, 0, memory_order_relaxed);
    for (int i = 0; i < n; i++)
        h[i] = ox_thread_spawn(fn, arg);
    uint64_t t0 = ox_bench_now_ns();
    atomic_store_explicit(&start_flag, 1, memory_order_release);
    for (int i = 0; i < n; i++)
        (void)!ox_thread_join(&h[i], NULL, NULL);
    return ox_bench_now_ns() - t0;
}

/* ---- mutex ---- */

OX_BENCH(mutex_uncontended, "mutex_uncontended", "oxide")
{
    enum { COUNT = 10000000 };
    static ox_mutex m = OX_MUTEX_INIT;
    static uint64_t counter;
    counter = 0;
    uint64_t t0 = ox_bench_now_ns();
    for (int i = 0; i < COUNT; i++) {
        (void)!ox_mutex_lock(&m);
        counter++;
        ox_mutex_unlock(&m);
    }
    double ns = (double)(ox_bench_now_ns() - t0) / COUNT;
    if (counter != COUNT)
        fprintf(stderr, "mutex_uncontended: wrong count\n");
    return ns;
}

enum { CONTENDED_THREADS = 4, CONTENDED_PER_THREAD = 1000000 };

struct counted {
    ox_mutex m;
    uint64_t counter;
};

static void *contended_worker(void *arg)
{
    struct counted *c = arg;
    wait_for_start();
    for (int i = 0; i < CONTENDED_PER_THREAD; i++) {
        (void)!ox_mutex_lock(&c->m);
        c->counter++;
        ox_mutex_unlock(&c->m);
    }
    return NULL;
}

OX_BENCH(mutex_contended, "mutex_contended", "oxide")
{
    static struct counted c = {OX_MUTEX_INIT, 0};
    c.counter = 0;
    uint64_t ns = run_threads(CONTENDED_THREADS, contended_worker, &c);
    if (c.counter != (uint64_t)CONTENDED_THREADS * CONTENDED_PER_THREAD)
        fprintf(stderr, "mutex_contended: lost increments\n");
    return (double)ns / (CONTENDED_THREADS * CONTENDED_PER_THREAD);
}

/* ---- rwlock ---- */

enum { RW_THREADS = 4, RW_PER_THREAD = 1000000, RW_WRITE_EVERY = 100 };

struct guarded {
    ox_rwlock l;
    uint64_t value;
};

static void *read_heavy_worker(void *arg)
{
    struct guarded *g = arg;
    uint64_t seen = 0;
    wait_for_start();
    for (int i = 0; i < RW_PER_THREAD; i++) {
        if (i % RW_WRITE_EVERY == 0) {
            (void)!ox_rwlock_write(&g->l);
            g->value++;
            ox_rwlock_write_unlock(&g->l);
        } else {
            (void)!ox_rwlock_read(&g->l);
            seen += g->value;
            ox_rwlock_read_unlock(&g->l);
        }
    }
    OX_BENCH_KEEP(seen);
    return NULL;
}

OX_BENCH(rwlock_read_heavy, "rwlock_read_heavy", "oxide")
{
    static struct guarded g = {OX_RWLOCK_INIT, 0};
    g.value = 0;
    uint64_t ns = run_threads(RW_THREADS, read_heavy_worker, &g);
    if (g.value != (uint64_t)RW_THREADS * (RW_PER_THREAD / RW_WRITE_EVERY))
        fprintf(stderr, "rwlock_read_heavy: lost writes\n");
    return (double)ns / (RW_THREADS * RW_PER_THREAD);
}

/* The read path alone: one thread, nobody else near the lock. */
OX_BENCH(rwlock_uncontended_read, "rwlock_uncontended_read", "oxide")
{
    enum { COUNT = 10000000 };
    static struct guarded g = {OX_RWLOCK_INIT, 1};
    uint64_t seen = 0;
    uint64_t t0 = ox_bench_now_ns();
    for (int i = 0; i < COUNT; i++) {
        (void)!ox_rwlock_read(&g.l);
        seen += g.value;
        ox_rwlock_read_unlock(&g.l);
    }
    double ns = (double)(ox_bench_now_ns() - t0) / COUNT;
    if (seen != COUNT)
        fprintf(stderr, "rwlock_uncontended_read: wrong sum\n");
    return ns;
}

/* ---- condvar ---- */

enum { HANDOFFS = 100000 };

struct pingpong {
    ox_mutex m;
    ox_condvar cv;
    int turn; /* whose turn: 0 or 1 */
    int me;   /* only in the per-thread copy */
};

struct pingpong_side {
    struct pingpong *p;
    int me;
};

static bool not_my_turn(void *arg)
{
    const struct pingpong_side *s = arg;
    return s->p->turn != s->me;
}

static void *pingpong_side(void *arg)
{
    struct pingpong_side *s = arg;
    struct pingpong *p = s->p;
    wait_for_start();
    for (int i = 0; i < HANDOFFS / 2; i++) {
        (void)!ox_mutex_lock(&p->m);
        (void)!ox_condvar_wait_while(&p->cv, &p->m, not_my_turn, s);
        p->turn = !s->me;
        ox_mutex_unlock(&p->m);
        ox_condvar_notify_one(&p->cv);
    }
    return NULL;
}

OX_BENCH(condvar_pingpong, "condvar_pingpong", "oxide")
{
    static struct pingpong p = {OX_MUTEX_INIT, OX_CONDVAR_INIT, 0, 0};
    p.turn = 0;
    struct pingpong_side sides[2] = {{&p, 0}, {&p, 1}};
    ox_join_handle h[2];
    atomic_store_explicit(&start_flag, 0, memory_order_relaxed);
    for (int i = 0; i < 2; i++)
        h[i] = ox_thread_spawn(pingpong_side, &sides[i]);
    uint64_t t0 = ox_bench_now_ns();
    atomic_store_explicit(&start_flag, 1, memory_order_release);
    for (int i = 0; i < 2; i++)
        (void)!ox_thread_join(&h[i], NULL, NULL);
    return (double)(ox_bench_now_ns() - t0) / HANDOFFS;
}
