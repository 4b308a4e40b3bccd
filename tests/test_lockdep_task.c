/* The lock-order checker and the blocked dump with tasks: a report names
 * the tasks (not the worker threads that ran them), a cycle through a
 * task and a thread is found, and a task that suspends inside the checker
 * (waiting for the checker's own lock) and resumes on another worker still
 * records the edges of its own held locks. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include "check/lockdep.h"      /* white box: the generation and the pair cache */
#include "task/task_internal.h" /* white box: the worker a task runs on */

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ox_mutex m1 = OX_MUTEX_INIT, m2 = OX_MUTEX_INIT;
static int line_a1, line_a2, line_b1, line_b2;

static void *take_1_then_2(void *arg)
{
    (void)arg;
    line_a1 = __LINE__ + 1;
    CHECK_EQ(ox_mutex_lock(&m1), 0);
    line_a2 = __LINE__ + 1;
    CHECK_EQ(ox_mutex_lock(&m2), 0);
    ox_mutex_unlock(&m2);
    ox_mutex_unlock(&m1);
    return NULL;
}

static void *take_2_then_1(void *arg)
{
    (void)arg;
    line_b1 = __LINE__ + 1;
    CHECK_EQ(ox_mutex_lock(&m2), 0);
    ox_task_yield(); /* may move to the other worker while it holds m2 */
    line_b2 = __LINE__ + 1;
    CHECK_EQ(ox_mutex_lock(&m1), 0);
    ox_mutex_unlock(&m1);
    ox_mutex_unlock(&m2);
    return NULL;
}

static void check_site(const char *text, int line)
{
    char site[256];
    snprintf(site, sizeof site, "%s:%d", __FILE__, line);
    CHECK_CONTAINS(text, site);
}

/* ABBA in two tasks that ran one after the other: the report names each
 * task with its id, and no worker thread. */
OX_TEST(lockdep_abba_between_tasks_names_the_tasks)
{
    ox_runtime *rt = ox_test_runtime(2);
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_task_handle a = ox_test_spawn_named_on(rt, "task A", take_1_then_2, NULL);
    uint64_t id_a = ox_task_id(a.task);
    CHECK_EQ(ox_task_join(&a, NULL, NULL), 0);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    ox_task_handle b = ox_test_spawn_named_on(rt, "task B", take_2_then_1, NULL);
    uint64_t id_b = ox_task_id(b.task);
    CHECK_EQ(ox_task_join(&b, NULL, NULL), 0);
    CHECK_EQ(ox_lockdep_reports(), 1u);
    char *text = ox_test_stderr_text();
    char who[128];
    snprintf(who, sizeof who, "task 'task A' (id %llu) acquired mutex", (unsigned long long)id_a);
    CHECK_CONTAINS(text, who);
    snprintf(who, sizeof who, "task 'task B' (id %llu) acquired mutex", (unsigned long long)id_b);
    CHECK_CONTAINS(text, who);
    check_site(text, line_a1);
    check_site(text, line_a2);
    check_site(text, line_b1);
    check_site(text, line_b2);
    if (strstr(text, "oxide-worker") != NULL)
        ox_test_fail(__FILE__, __LINE__, "a worker thread is named in:\n%s", text);
    free(text);
    ox_runtime_shutdown(rt);
}

/* A real deadlock between a thread and a task: each holds one mutex and
 * waits for the other. The checker reports the cycle with the thread and
 * the task by name; the blocked dump shows both, each with the mutex it
 * waits for and the one it holds. */
static _Atomic int holding;
static int line_thread_holds, line_task_holds;

static void *thread_holds_1_wants_2(void *arg)
{
    (void)arg;
    line_thread_holds = __LINE__ + 1;
    CHECK_EQ(ox_mutex_lock(&m1), 0);
    atomic_fetch_add_explicit(&holding, 1, memory_order_acq_rel);
    while (atomic_load_explicit(&holding, memory_order_acquire) < 2)
        ox_thread_yield();
    (void)!ox_mutex_lock(&m2); /* never returns */
    return NULL;
}

static void *task_holds_2_wants_1(void *arg)
{
    (void)arg;
    line_task_holds = __LINE__ + 1;
    CHECK_EQ(ox_mutex_lock(&m2), 0);
    atomic_fetch_add_explicit(&holding, 1, memory_order_acq_rel);
    while (atomic_load_explicit(&holding, memory_order_acquire) < 2)
        ox_task_yield();
    (void)!ox_mutex_lock(&m1); /* never returns */
    return NULL;
}

OX_TEST(lockdep_deadlock_between_a_thread_and_a_task_is_reported)
{
    ox_runtime *rt = ox_test_runtime(2);
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_join_handle t = ox_test_spawn_named("thread T", thread_holds_1_wants_2, NULL);
    ox_task_handle k = ox_test_spawn_named_on(rt, "task K", task_holds_2_wants_1, NULL);
    uint64_t id_k = ox_task_id(k.task);
    ox_test_wait_blocked_on(&m1, 1); /* the task */
    ox_test_wait_blocked_on(&m2, 1); /* the thread */
    CHECK_EQ(ox_lockdep_reports(), 1u);
    char *text = ox_test_stderr_text();
    CHECK_CONTAINS(text, "oxide lockdep: possible deadlock");
    char who[128];
    snprintf(who, sizeof who, "thread 'thread T' (id %llu) waited for mutex",
             (unsigned long long)ox_thread_id(ox_join_handle_thread(&t)));
    char who_task[128];
    snprintf(who_task, sizeof who_task, "task 'task K' (id %llu) ", (unsigned long long)id_k);
    /* The edge closing the cycle was seen waiting; the other one either
     * waiting or acquiring, as the two raced. */
    if (strstr(text, who) == NULL) {
        snprintf(who, sizeof who, "thread 'thread T' (id %llu) ",
                 (unsigned long long)ox_thread_id(ox_join_handle_thread(&t)));
        CHECK_CONTAINS(text, who);
    }
    CHECK_CONTAINS(text, who_task);
    free(text);

    int count;
    char *dump = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&dump, &len);
    CHECK(f != NULL);
    count = ox_dump_blocked_threads(f);
    fclose(f);
    CHECK(count >= 2);
    char expect[512];
    snprintf(expect, sizeof expect, "  task 'task K' (id %llu) blocked on mutex %p, called at ",
             (unsigned long long)id_k, (void *)&m1);
    CHECK_CONTAINS(dump, expect);
    snprintf(expect, sizeof expect, "    holding mutex %p, locked at %s:%d\n", (void *)&m2,
             __FILE__, line_task_holds);
    CHECK_CONTAINS(strstr(dump, "  task 'task K'"), expect);
    snprintf(expect, sizeof expect, "  thread 'thread T' (id %llu) blocked on mutex %p",
             (unsigned long long)ox_thread_id(ox_join_handle_thread(&t)), (void *)&m2);
    CHECK_CONTAINS(dump, expect);
    snprintf(expect, sizeof expect, "    holding mutex %p, locked at %s:%d\n", (void *)&m1,
             __FILE__, line_thread_holds);
    CHECK_CONTAINS(strstr(dump, "  thread 'thread T'"), expect);
    free(dump);
    fflush(NULL);
    _exit(0); /* the two stay deadlocked: the runtime cannot be shut down */
}

/* ---- a task that suspends inside the checker ----
 * Tasks take pairs of six shared mutexes, always the lower index first:
 * every real edge goes upwards, so there is no cycle and no report is
 * right. A thread keeps the checker's lock busy and its pair caches stale
 * (each class registration bumps their generation), so the tasks' checks
 * go to the checker's lock, wait for it, and resume on either worker.
 * Reading the held locks through an address taken before that wait reads
 * the old worker's record, now another task's: an edge from a lock the
 * task does not hold, downwards, and a false report. */
#define SHARED 6
static ox_mutex shared[SHARED];

static void *take_ordered_pairs(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    long rounds = ox_test_scaled(10000);
    for (long r = 0; r < rounds; r++) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 16) % (SHARED - 1));
        int j = i + 1 + (int)((seed >> 8) % (unsigned)(SHARED - 1 - i));
        CHECK_EQ(ox_mutex_lock(&shared[i]), 0);
        CHECK_EQ(ox_mutex_lock(&shared[j]), 0);
        if (r % 4 == 0)
            ox_task_yield();
        ox_mutex_unlock(&shared[j]);
        ox_mutex_unlock(&shared[i]);
    }
    return NULL;
}

OX_TEST_OPTS(lockdep_task_resumed_on_another_worker_inside_the_checker, .timeout_s = 120)
{
    for (int i = 0; i < SHARED; i++)
        shared[i] = (ox_mutex)OX_MUTEX_INIT;
    ox_runtime *rt = ox_test_runtime(2);
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_test_stirrer stirrer;
    ox_test_stirrer_start(&stirrer);
    ox_task_handle hs[8];
    for (int i = 0; i < 8; i++)
        hs[i] = ox_test_spawn_named_on(rt, "pairs", take_ordered_pairs, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 8; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    ox_test_stirrer_stop(&stirrer);
    char *text = ox_test_stderr_text();
    if (ox_lockdep_reports() != 0)
        ox_test_fail(__FILE__, __LINE__, "a false report:\n%s", text);
    free(text);
    ox_runtime_shutdown(rt);
}

/* ---- the pair cache of a task that resumed on another worker ----
 * When add_edges has recorded (a, b), the cache of the thread that runs it
 * holds the pair. It used to keep the cache's address from before its wait
 * for the checker's lock (clang computed it once: aarch64 kept the thread
 * pointer, x86-64's shared library the __tls_get_addr result): a task
 * that resumed on another worker wrote the old worker's cache, racing with
 * the task running there. Each round makes every cached pair stale first
 * (a class registration bumps the generation), so only an entry that this
 * round's add_edges wrote, in the thread the task now runs on, passes. */
typedef struct own_pair {
    ox_mutex a, b;
} own_pair;

static _Atomic long moved_inside;
#define ENOUGH_MOVES 100

static void *record_own_pair(void *arg)
{
    static const ox_lock_class cls = {"unrelated", __FILE__, __LINE__};
    static int unrelated;
    own_pair *p = arg;
    /* Until enough moves inside the checker were seen, or the time budget
     * is used. */
    ox_test_budget b = ox_test_budget_start(1000, ox_test_scaled(2000000));
    for (long r = 0; ox_test_budget_more(&b, r) &&
                     atomic_load_explicit(&moved_inside, memory_order_relaxed) < ENOUGH_MOVES;
         r++) {
        ox_lock_class_register(&unrelated, &cls);
        uint64_t since = ox__lockdep_generation();
        CHECK_EQ(ox_mutex_lock(&p->a), 0);
        const void *before = ox__worker_current();
        /* b is this task's own: the lock cannot wait, only the checker's
         * lock can, so a move here happened inside the checker. */
        CHECK_EQ(ox_mutex_lock(&p->b), 0);
        if (ox__worker_current() != before)
            atomic_fetch_add_explicit(&moved_inside, 1, memory_order_relaxed);
        CHECK(ox__lockdep_pair_cached(&p->a, &p->b) >= since);
        ox_mutex_unlock(&p->b);
        ox_mutex_unlock(&p->a);
        if (r % 8 == 0)
            ox_task_yield(); /* spreads the tasks over both workers */
    }
    return NULL;
}

OX_TEST_OPTS(lockdep_task_that_moved_inside_the_checker_fills_its_own_cache, .timeout_s = 120)
{
    ox_runtime *rt = ox_test_runtime(2);
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_test_stirrer stirrer;
    ox_test_stirrer_start(&stirrer);
    enum { N = 8 };
    own_pair pairs[N];
    ox_task_handle hs[N];
    for (int i = 0; i < N; i++) {
        pairs[i] = (own_pair){OX_MUTEX_INIT, OX_MUTEX_INIT};
        hs[i] = ox_test_spawn_on(rt, record_own_pair, &pairs[i]);
    }
    for (int i = 0; i < N; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    ox_test_stirrer_stop(&stirrer);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    ox_runtime_shutdown(rt);
    /* Tasks move only when a worker runs dry or steals: one run in ten
     * under qemu saw no move in its budget. Then the check above is proven
     * only for tasks that stayed put: said, not failed (as
     * task_tls_cancellation_follows_a_task_moved_mid_function does). */
    long moved = atomic_load_explicit(&moved_inside, memory_order_relaxed);
    if (moved == 0)
        printf("no task resumed on another worker inside the checker: unproven in this run\n");
    else
        printf("tasks that resumed on another worker inside the checker: %ld\n", moved);
}
