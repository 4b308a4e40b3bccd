/* A wait's yields under CPU load (src/thread/backoff.c): a yield whose slice
 * another process took makes the thread's waits skip their yields for a
 * while (they park, and the waker's wake-up brings them back at once); a
 * yield whose slice the program's own threads took does not (with more
 * threads than CPUs, yielding is how a waiter lets its partner run).
 * White box: a thread pinned to one CPU beside a busy process, or beside a
 * busy thread of its own, runs waiting backoffs by hand. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include "thread/park.h"

#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>

extern char **environ;

enum { BACKOFFS = 200, SLOW_NS = 50000 };

/* Runs one waiting backoff to its end (nothing answers it); returns
 * whether one of its steps lost the CPU for over 50 us. */
static bool backoff_lost_the_cpu(void)
{
    ox__backoff b = {0};
    bool lost = false;
    while (!ox__backoff_is_completed(&b)) {
        int64_t t0 = ox_instant_now().ns;
        ox__backoff_snooze(&b);
        lost |= ox_instant_now().ns - t0 > SLOW_NS;
    }
    return lost;
}

/* ---- beside another process ---- */

static void *wait_beside_a_busy_process(void *arg)
{
    (void)arg;
    int cpu = ox_test_first_allowed_cpu();
    char *argv[] = {"sh", "-c", "while :; do :; done", NULL};
    pid_t busy;
    CHECK_EQ(posix_spawnp(&busy, "sh", NULL, NULL, argv, environ), 0);
    ox_test_pin(busy, cpu);
    ox_test_pin(0, cpu);
    bool skipped = false;
    for (int i = 0; i < BACKOFFS && !skipped; i++) {
        (void)backoff_lost_the_cpu();
        skipped = ox__wait_yields_skipped();
    }
    kill(busy, SIGKILL);
    CHECK_EQ(waitpid(busy, NULL, 0), busy);
    CHECK(skipped);
    return NULL;
}

OX_TEST_OPTS(yield_a_slice_taken_by_another_process_makes_waits_skip_their_yields, .timeout_s = 60)
{
    if (ox_test_forks_hang_here())
        return;
    ox_test_run_named("beside-a-process", wait_beside_a_busy_process, NULL);
}

/* ---- beside threads of our own ---- */

/* Several, so that another process on the same CPU (a test running in
 * parallel) takes less than half of the slices our yields give away. */
enum { OWN_BUSY = 8, SLOW_BACKOFFS = 20 };

static struct {
    int cpu;
    _Atomic int stop, spinning;
} own;

static void *busy_thread(void *arg)
{
    (void)arg;
    ox_test_pin(0, own.cpu);
    atomic_fetch_add(&own.spinning, 1);
    while (!atomic_load_explicit(&own.stop, memory_order_relaxed))
        continue;
    return NULL;
}

static void *wait_beside_busy_threads(void *arg)
{
    (void)arg;
    own.cpu = ox_test_first_allowed_cpu();
    atomic_store(&own.stop, 0);
    atomic_store(&own.spinning, 0);
    ox_join_handle h[OWN_BUSY];
    for (int i = 0; i < OWN_BUSY; i++)
        h[i] = ox_test_spawn_named("busy-thread", busy_thread, NULL);
    while (atomic_load(&own.spinning) < OWN_BUSY)
        ox_thread_yield();
    ox_test_pin(0, own.cpu);
    int slow = 0, opened = 0;
    for (int i = 0; i < BACKOFFS && slow < SLOW_BACKOFFS; i++) {
        while (ox__wait_yields_skipped()) /* from a slice another process took */
            ox_thread_yield();
        if (backoff_lost_the_cpu()) {
            slow++;
            opened += ox__wait_yields_skipped();
        }
    }
    atomic_store(&own.stop, 1);
    for (int i = 0; i < OWN_BUSY; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    fprintf(stderr, "%d backoffs lost the CPU to our own threads; %d of them opened the window\n",
            slow, opened);
    CHECK(slow >= SLOW_BACKOFFS / 2); /* the yields did give the CPU away */
    CHECK(opened * 2 < slow);
    return NULL;
}

OX_TEST_OPTS(yield_a_slice_taken_by_our_own_threads_leaves_the_yields_on, .timeout_s = 60)
{
    ox_test_run_named("beside-threads", wait_beside_busy_threads, NULL);
}
