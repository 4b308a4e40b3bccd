/* bench_task.c - the task workloads of bench/WORKLOADS.md (issue 13). Each
 * round builds a runtime with 2 workers and drives the workload from a
 * task on it, as the Go peer does from its main goroutine and the Tokio
 * peer from a spawned task; the driver reads the clock. Every workload
 * checks its result and exits 1 when it is wrong, so none can skip its
 * work. A workload that cannot run here says why on stderr and returns
 * NAN, which the harness prints as no line at all. */
#include "harness.h"
#include "oxide.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORKERS 2

_Noreturn static void fail(const char *workload, const char *what)
{
    fprintf(stderr, "bench_task: %s: %s\n", workload, what);
    exit(1);
}

typedef struct drive {
    double (*fn)(void);
    double result;
} drive;

static void *drive_task(void *arg)
{
    drive *d = arg;
    d->result = d->fn();
    return NULL;
}

/* Runs fn as a task on a fresh runtime of WORKERS workers; returns its
 * result. Starting and stopping the runtime are outside fn's timing. */
static double on_runtime(double (*fn)(void))
{
    ox_runtime_builder rb = OX_RUNTIME_BUILDER_INIT;
    rb.workers = WORKERS;
    ox_runtime *rt;
    if (ox_runtime_new(&rb, &rt) != 0)
        fail("runtime", "ox_runtime_new failed");
    drive d = {fn, 0};
    ox_task_builder tb = OX_TASK_BUILDER_INIT;
    tb.runtime = rt;
    ox_task_handle h;
    if (ox_task_builder_spawn(&tb, drive_task, &d, &h) != 0 || ox_task_join(&h, NULL, NULL) != 0)
        fail("runtime", "the driver task did not run to its end");
    ox_runtime_shutdown(rt);
    return d.result;
}

#define TASK_BENCH(fname, workload)                                                                \
    static double fname(void);                                                                     \
    OX_BENCH(fname##__bench, workload, "oxide")                                                    \
    {                                                                                              \
        return on_runtime(fname);                                                                  \
    }

/* ---- task_spawn_join ---- */

#define SPAWN_BATCH   1000
#define SPAWN_BATCHES 100

static void *return_arg(void *arg)
{
    return arg;
}

TASK_BENCH(spawn_join, "task_spawn_join")
static double spawn_join(void)
{
    ox_task_handle h[SPAWN_BATCH];
    uint64_t sum = 0;
    uint64_t t0 = ox_bench_now_ns();
    for (int b = 0; b < SPAWN_BATCHES; b++) {
        for (uintptr_t i = 0; i < SPAWN_BATCH; i++)
            h[i] = ox_task_spawn(return_arg, (void *)(i + 1));
        for (int i = 0; i < SPAWN_BATCH; i++) {
            void *r;
            if (ox_task_join(&h[i], &r, NULL) != 0)
                fail("task_spawn_join", "join failed");
            sum += (uintptr_t)r;
        }
    }
    uint64_t t1 = ox_bench_now_ns();
    if (sum != (uint64_t)SPAWN_BATCHES * SPAWN_BATCH * (SPAWN_BATCH + 1) / 2)
        fail("task_spawn_join", "wrong sum of results");
    return (double)(t1 - t0) / (SPAWN_BATCHES * SPAWN_BATCH);
}

/* ---- task_yield_1pair, task_yield_1000pairs ---- */

static void *yielder(void *arg)
{
    long n = *(const long *)arg, i;
    for (i = 0; i < n; i++)
        ox_task_yield();
    return (void *)(uintptr_t)i;
}

/* 2 * pairs tasks each yield n times; op = one round of a pair (both of
 * its tasks yield once), so ns = elapsed / (pairs * n). */
static double yield_pairs(long pairs, long n, const char *workload)
{
    long tasks = 2 * pairs;
    ox_task_handle *h = calloc((size_t)tasks, sizeof *h);
    if (h == NULL)
        fail(workload, "out of memory");
    uint64_t t0 = ox_bench_now_ns();
    for (long i = 0; i < tasks; i++)
        h[i] = ox_task_spawn(yielder, &n);
    uint64_t yields = 0;
    for (long i = 0; i < tasks; i++) {
        void *r;
        if (ox_task_join(&h[i], &r, NULL) != 0)
            fail(workload, "join failed");
        yields += (uintptr_t)r;
    }
    uint64_t t1 = ox_bench_now_ns();
    free(h);
    if (yields != (uint64_t)tasks * (uint64_t)n)
        fail(workload, "wrong yield count");
    return (double)(t1 - t0) / ((double)pairs * (double)n);
}

TASK_BENCH(yield_1pair, "task_yield_1pair")
static double yield_1pair(void)
{
    return yield_pairs(1, 200000, "task_yield_1pair");
}

TASK_BENCH(yield_1000pairs, "task_yield_1000pairs")
static double yield_1000pairs(void)
{
    return yield_pairs(1000, 1000, "task_yield_1000pairs");
}

/* ---- task_skynet ---- */

#define SKYNET_LEAVES 1000000u
#define SKYNET_DIV    10u
#define SKYNET_TASKS  1111111u /* 1 + 10 + ... + 10^6 */

typedef struct sky {
    uint64_t num, size;
} sky;

/* A node spawns its 10 children with their arguments on its own stack
 * (it joins them all before it returns) and adds up what they return. */
static void *skynet(void *arg)
{
    const sky *s = arg;
    if (s->size == 1)
        return (void *)(uintptr_t)s->num;
    sky kids[SKYNET_DIV];
    ox_task_handle h[SKYNET_DIV];
    uint64_t step = s->size / SKYNET_DIV;
    for (unsigned i = 0; i < SKYNET_DIV; i++) {
        kids[i] = (sky){s->num + i * step, step};
        h[i] = ox_task_spawn(skynet, &kids[i]);
    }
    uint64_t sum = 0;
    for (unsigned i = 0; i < SKYNET_DIV; i++) {
        void *r;
        if (ox_task_join(&h[i], &r, NULL) != 0)
            fail("task_skynet", "join failed");
        sum += (uintptr_t)r;
    }
    return (void *)(uintptr_t)sum;
}

TASK_BENCH(skynet_run, "task_skynet")
static double skynet_run(void)
{
    sky root = {0, SKYNET_LEAVES};
    void *r;
    uint64_t t0 = ox_bench_now_ns();
    ox_task_handle h = ox_task_spawn(skynet, &root);
    if (ox_task_join(&h, &r, NULL) != 0)
        fail("task_skynet", "join failed");
    uint64_t t1 = ox_bench_now_ns();
    if ((uintptr_t)r != (uint64_t)SKYNET_LEAVES * (SKYNET_LEAVES - 1) / 2)
        fail("task_skynet", "wrong sum");
    return (double)(t1 - t0) / SKYNET_TASKS;
}

/* ---- task_mutex_64 ---- */

#define MUTEX_TASKS 64
#define MUTEX_OPS   20000

typedef struct counted {
    ox_mutex m;
    uint64_t count;
} counted;

static void *incrementer(void *arg)
{
    counted *c = arg;
    for (int i = 0; i < MUTEX_OPS; i++) {
        if (ox_mutex_lock(&c->m) != 0)
            fail("task_mutex_64", "lock failed");
        c->count++;
        ox_mutex_unlock(&c->m);
    }
    return NULL;
}

TASK_BENCH(mutex_64, "task_mutex_64")
static double mutex_64(void)
{
    counted c = {OX_MUTEX_INIT, 0};
    ox_task_handle h[MUTEX_TASKS];
    uint64_t t0 = ox_bench_now_ns();
    for (int i = 0; i < MUTEX_TASKS; i++)
        h[i] = ox_task_spawn(incrementer, &c);
    for (int i = 0; i < MUTEX_TASKS; i++)
        if (ox_task_join(&h[i], NULL, NULL) != 0)
            fail("task_mutex_64", "join failed");
    uint64_t t1 = ox_bench_now_ns();
    if (c.count != (uint64_t)MUTEX_TASKS * MUTEX_OPS)
        fail("task_mutex_64", "wrong count");
    ox_mutex_destroy(&c.m);
    return (double)(t1 - t0) / ((double)MUTEX_TASKS * MUTEX_OPS);
}

/* ---- task_chan_pingpong ---- */

#define PINGPONG_TRIPS 100000

typedef struct pingpong {
    ox_sender *there_tx, *back_tx;
    ox_receiver *there_rx, *back_rx;
} pingpong;

static void *ponger(void *arg)
{
    const pingpong *p = arg;
    uint64_t v;
    for (int i = 0; i < PINGPONG_TRIPS; i++)
        if (ox_receiver_recv(p->there_rx, &v) != 0 || ox_sender_send(p->back_tx, &v) != 0)
            fail("task_chan_pingpong", "B's recv or send failed");
    return NULL;
}

TASK_BENCH(chan_pingpong, "task_chan_pingpong")
static double chan_pingpong(void)
{
    pingpong p;
    if (ox_channel(sizeof(uint64_t), 0, &p.there_tx, &p.there_rx) != 0 ||
        ox_channel(sizeof(uint64_t), 0, &p.back_tx, &p.back_rx) != 0)
        fail("task_chan_pingpong", "ox_channel failed");
    uint64_t sum = 0;
    uint64_t t0 = ox_bench_now_ns();
    ox_task_handle h = ox_task_spawn(ponger, &p);
    for (uint64_t i = 0; i < PINGPONG_TRIPS; i++) {
        uint64_t v = i;
        if (ox_sender_send(p.there_tx, &v) != 0 || ox_receiver_recv(p.back_rx, &v) != 0)
            fail("task_chan_pingpong", "A's send or recv failed");
        sum += v;
    }
    if (ox_task_join(&h, NULL, NULL) != 0)
        fail("task_chan_pingpong", "join failed");
    uint64_t t1 = ox_bench_now_ns();
    if (sum != (uint64_t)PINGPONG_TRIPS * (PINGPONG_TRIPS - 1) / 2)
        fail("task_chan_pingpong", "wrong sum");
    ox_sender_drop(p.there_tx);
    ox_sender_drop(p.back_tx);
    ox_receiver_drop(p.there_rx);
    ox_receiver_drop(p.back_rx);
    return (double)(t1 - t0) / PINGPONG_TRIPS;
}

/* ---- task_sleep_p99_ns (the value is nanoseconds, not per op) ---- */

#define SLEEPERS 100000
#define SLEEP_NS 1000000

static void *sleeper(void *arg)
{
    int64_t *lateness = arg;
    uint64_t start = ox_bench_now_ns();
    if (ox_task_sleep(SLEEP_NS) != 0)
        fail("task_sleep_p99_ns", "sleep failed");
    *lateness = (int64_t)(ox_bench_now_ns() - start) - SLEEP_NS;
    return NULL;
}

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

TASK_BENCH(sleep_p99, "task_sleep_p99_ns")
static double sleep_p99(void)
{
    int64_t *lateness = malloc(SLEEPERS * sizeof *lateness);
    ox_task_handle *h = malloc(SLEEPERS * sizeof *h);
    if (lateness == NULL || h == NULL)
        fail("task_sleep_p99_ns", "out of memory");
    for (int i = 0; i < SLEEPERS; i++)
        lateness[i] = -1; /* a task that never ran would leave this */
    for (int i = 0; i < SLEEPERS; i++)
        h[i] = ox_task_spawn(sleeper, &lateness[i]);
    for (int i = 0; i < SLEEPERS; i++)
        if (ox_task_join(&h[i], NULL, NULL) != 0)
            fail("task_sleep_p99_ns", "join failed");
    qsort(lateness, SLEEPERS, sizeof *lateness, compare_i64);
    if (lateness[0] < 0)
        fail("task_sleep_p99_ns", "a sleep returned early, or a task never ran");
    double p99 = (double)lateness[SLEEPERS / 100 * 99];
    free(lateness);
    free(h);
    return p99;
}

/* ---- task_idle_bytes, task_1M_blocked_bytes (the value is bytes) ---- */

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f == NULL || fscanf(f, "%lu %lu", &size, &resident) != 2)
        fail("rss", "cannot read /proc/self/statm");
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

typedef struct blocked {
    ox_receiver *rx;
    _Atomic long waiting;
} blocked;

static void *blocked_task(void *arg)
{
    blocked *b = arg;
    /* Relaxed: a count the driver polls; the receive is the hand-over. */
    atomic_fetch_add_explicit(&b->waiting, 1, memory_order_relaxed);
    uint64_t v;
    if (ox_receiver_recv(b->rx, &v) != 0)
        return NULL;
    return (void *)(uintptr_t)(v + 1);
}

/* n tasks block on one rendezvous channel's receive; returns the RSS growth per task
 * once all are blocked, then sends each a value and joins them all, and
 * checks that every one received exactly one. NAN when the n tasks cannot
 * exist at once (spawning failed): then it says so on stderr. */
static double blocked_bytes(long n, const char *workload)
{
    ox_task_handle *h = malloc((size_t)n * sizeof *h);
    if (h == NULL)
        fail(workload, "out of memory");
    memset(h, 0, (size_t)n * sizeof *h); /* touched before the first reading */
    blocked b;
    ox_sender *tx;
    /* Rendezvous: a send hands its value to a waiting receiver and
     * allocates nothing, so the release works even when spawning stopped
     * at the kernel's mapping limit. */
    if (ox_channel(sizeof(uint64_t), 0, &tx, &b.rx) != 0)
        fail(workload, "ox_channel failed");
    atomic_init(&b.waiting, 0);
    size_t before = rss_bytes();
    long spawned = 0;
    int rc = 0;
    while (spawned < n) {
        ox_task_builder tb = OX_TASK_BUILDER_INIT;
        if ((rc = ox_task_builder_spawn(&tb, blocked_task, &b, &h[spawned])) != 0)
            break;
        spawned++;
    }
    while (atomic_load_explicit(&b.waiting, memory_order_relaxed) < spawned)
        (void)!ox_task_sleep(OX_MILLIS(1));
    (void)!ox_task_sleep(OX_MILLIS(20)); /* the last ones get from the count into the wait */
    size_t after = rss_bytes();
    for (uint64_t i = 0; i < (uint64_t)spawned; i++)
        if (ox_sender_send(tx, &i) != 0)
            fail(workload, "send failed");
    uint64_t sum = 0;
    for (long i = 0; i < spawned; i++) {
        void *r;
        if (ox_task_join(&h[i], &r, NULL) != 0)
            fail(workload, "join failed");
        sum += (uintptr_t)r;
    }
    if (sum != (uint64_t)spawned * ((uint64_t)spawned + 1) / 2)
        fail(workload, "a task did not receive exactly one value");
    ox_sender_drop(tx);
    ox_receiver_drop(b.rx);
    free(h);
    if (rc != 0) {
        fprintf(stderr,
                "# skipped %s oxide: spawning task %ld of %ld failed with %s (each task's "
                "guarded stack is 2 kernel mappings; vm.max_map_count caps them); the %ld "
                "spawned were released and finished\n",
                workload, spawned + 1, n, ox_strerror(rc), spawned);
        return NAN;
    }
    return ((double)after - (double)before) / (double)n;
}

TASK_BENCH(idle_bytes, "task_idle_bytes")
static double idle_bytes(void)
{
    return blocked_bytes(10000, "task_idle_bytes");
}

TASK_BENCH(blocked_1m, "task_1M_blocked_bytes")
static double blocked_1m(void)
{
    return blocked_bytes(1000000, "task_1M_blocked_bytes");
}
