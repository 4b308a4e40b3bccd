/* Reproducers from trying to break f09223c and 7bd578f (a worker out of
 * work searches 50 us before it sleeps, yielding its CPU between looks). */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- a thread that computes on a worker's CPU does not cost each wake a slice ----
 * A one-worker runtime whose worker shares its CPU with a thread that
 * computes without pause (pinned together: a container of one CPU, a
 * process under taskset, or just a busy neighbour). A searching worker
 * that yields gives that thread the CPU for its whole slice (milliseconds),
 * and still counts as the searcher, so nobody else is woken. The look
 * after the yield then finds what came meanwhile (the due timer, the
 * spawn), the search "succeeded", and the next idle searched again: every
 * wake-up cost a slice. A 500 us sleep ended 3.5 ms late each time, a
 * spawn-and-join from a thread took 4 ms a round, against 65 us and 47 us
 * with the 10 us spin before. The bound below, a median of 1 ms, is far
 * above either of those and far below a slice (4 ms at HZ=250). */
enum { NCPU_MAX = 1024 };

static struct {
    int cpu, other; /* the CPU the worker and the hog share; another, or -1 */
    _Atomic int stop, hogging;
} shared;

static void pick_cpus(void)
{
    cpu_set_t set;
    CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    shared.cpu = shared.other = -1;
    for (int c = 0; c < CPU_SETSIZE && c < NCPU_MAX; c++) {
        if (!CPU_ISSET(c, &set))
            continue;
        if (shared.cpu < 0)
            shared.cpu = c;
        else if (shared.other < 0)
            shared.other = c;
    }
    CHECK(shared.cpu >= 0);
}

static void *pin_worker(void *arg)
{
    (void)arg;
    ox_test_pin(0, shared.cpu); /* the calling thread: the runtime's one worker */
    return NULL;
}

static void *hog(void *arg)
{
    (void)arg;
    ox_test_pin(0, shared.cpu);
    atomic_store(&shared.hogging, 1);
    while (!atomic_load_explicit(&shared.stop, memory_order_relaxed))
        continue;
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t median(int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    return v[n / 2];
}

/* Starts the runtime with its worker on shared.cpu and the hog beside it;
 * this thread moves to another CPU, if there is one. */
static ox_runtime *start_beside_a_hog(ox_join_handle *hog_thread)
{
    pick_cpus();
    atomic_store(&shared.stop, 0);
    atomic_store(&shared.hogging, 0);
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle p = ox_test_spawn_on(rt, pin_worker, NULL);
    CHECK_EQ(ox_task_join(&p, NULL, NULL), 0);
    if (shared.other >= 0)
        ox_test_pin(0, shared.other);
    *hog_thread = ox_test_spawn_named("break23-hog", hog, NULL);
    while (!atomic_load(&shared.hogging))
        ox_thread_yield();
    ox_thread_sleep(OX_MILLIS(20)); /* the hog has used some of its CPU time */
    return rt;
}

static void stop_hog(ox_join_handle *hog_thread)
{
    atomic_store(&shared.stop, 1);
    ox_test_join(hog_thread);
}

enum { SLEEPS = 60, SLEEP_US = 500 };
static int64_t lateness[SLEEPS];

static void *sleep_and_measure(void *arg)
{
    (void)arg;
    for (int i = 0; i < SLEEPS; i++) {
        int64_t t0 = ox_instant_now().ns;
        CHECK_EQ(ox_task_sleep(OX_MICROS(SLEEP_US)), 0);
        lateness[i] = ox_instant_now().ns - t0 - (int64_t)SLEEP_US * 1000;
    }
    return NULL;
}

OX_TEST_OPTS(break23_a_busy_thread_on_the_worker_s_cpu_does_not_make_timers_a_slice_late,
             .timeout_s = 60)
{
    ox_join_handle hog_thread;
    ox_runtime *rt = start_beside_a_hog(&hog_thread);
    ox_task_handle h = ox_test_spawn_on(rt, sleep_and_measure, NULL);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    stop_hog(&hog_thread);
    ox_runtime_shutdown(rt);
    int64_t m = median(lateness, SLEEPS);
    fprintf(stderr, "%d sleeps of %d us beside a busy thread: median %lld us late, worst %lld\n",
            SLEEPS, SLEEP_US, (long long)(m / 1000), (long long)(lateness[SLEEPS - 1] / 1000));
    if (m > ox_test_bound(OX_MILLIS(1)))
        ox_test_fail(__FILE__, __LINE__,
                     "a %d us task sleep ends %lld us late (median) when a thread computes on "
                     "the worker's CPU: the search yields it a whole slice at each sleep",
                     SLEEP_US, (long long)(m / 1000));
}

enum { ROUNDS = 100 };

OX_TEST_OPTS(break23_a_busy_thread_on_the_worker_s_cpu_does_not_make_each_spawn_a_slice_late,
             .timeout_s = 60)
{
    ox_join_handle hog_thread;
    ox_runtime *rt = start_beside_a_hog(&hog_thread);
    static int64_t took[ROUNDS];
    static _Atomic int flag;
    for (int r = 0; r < ROUNDS; r++) {
        int64_t t0 = ox_instant_now().ns;
        ox_task_handle h = ox_test_spawn_on(rt, ox_test_set_flag, &flag);
        CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
        took[r] = ox_instant_now().ns - t0;
    }
    stop_hog(&hog_thread);
    ox_runtime_shutdown(rt);
    CHECK_EQ(atomic_load(&flag), 1);
    int64_t m = median(took, ROUNDS);
    fprintf(stderr, "%d spawn-and-join rounds beside a busy thread: median %lld us, worst %lld\n",
            ROUNDS, (long long)(m / 1000), (long long)(took[ROUNDS - 1] / 1000));
    if (m > ox_test_bound(OX_MILLIS(1)))
        ox_test_fail(__FILE__, __LINE__,
                     "a spawn from a thread and its join take %lld us (median) when a thread "
                     "computes on the worker's CPU: the search yields it a whole slice each time",
                     (long long)(m / 1000));
}
