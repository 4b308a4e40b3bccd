/* Reproducers found by trying to break the task runtime, second round:
 * join against finish (the WATCHED word), the reactor's poller. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- joins racing a task's finish ---- */

static void *ret_arg(void *arg)
{
    return arg;
}

static void *yield_then_ret(void *arg)
{
    if (((uintptr_t)arg & 3) == 0)
        ox_task_yield();
    return arg;
}

/* A task that joins the handle it is given (a second joiner of one task). */
static void *join_given(void *arg)
{
    ox_task_handle *h = arg;
    void *r = NULL;
    CHECK_EQ(ox_task_join(h, &r, NULL), 0);
    return r;
}

static void *task_spawns_and_joins(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    ox_task_handle h = ox_task_spawn(yield_then_ret, (void *)i);
    void *r = NULL;
    CHECK_EQ(ox_task_join(&h, &r, NULL), 0);
    CHECK(r == (void *)i);
    ox_task_handle b;
    CHECK_EQ(ox_task_spawn_blocking(ret_arg, (void *)(i + 1), &b), 0);
    CHECK_EQ(ox_task_join(&b, &r, NULL), 0);
    CHECK(r == (void *)(i + 1));
    return (void *)i;
}

typedef struct scope_round {
    uintptr_t i;
    ox_task_handle target;
} scope_round;

/* Scope end (a thread, or a task) and a task's hand join wait for the
 * same task at once. */
static void scope_two_joiners(ox_task_scope *scope, void *arg)
{
    scope_round *sr = arg;
    sr->target = ox_task_scope_spawn(scope, yield_then_ret, (void *)sr->i);
    ox_task_handle joiner = ox_task_scope_spawn(scope, join_given, &sr->target);
    (void)joiner; /* joined by the scope's end */
}

static void *scope_in_task(void *arg)
{
    ox_task_scope_run(scope_two_joiners, arg);
    return NULL;
}

/* Every way to wait for a task's end, against the end itself, many times:
 * a lost wake-up (the finishing task missing a WATCHED joiner) hangs the
 * test. */
OX_TEST_OPTS(task_joins_of_every_kind_race_the_finish, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(2);
    ox_test_budget b = ox_test_budget_start(300, ox_test_scaled(5000));
    long r;
    for (r = 0; ox_test_budget_more(&b, r); r++) {
        uintptr_t i = (uintptr_t)r * 4;
        /* A thread joins a task that may finish before or during it. */
        ox_task_handle h = ox_test_spawn_on(rt, yield_then_ret, (void *)i);
        void *res = NULL;
        if (r & 1)
            while (!ox_task_is_finished(&h) && (r & 2))
                ;
        CHECK_EQ(ox_task_join(&h, &res, NULL), 0);
        CHECK(res == (void *)i);
        /* A task joins a task and a blocking job; a thread joins it. */
        h = ox_test_spawn_on(rt, task_spawns_and_joins, (void *)i);
        CHECK_EQ(ox_task_join(&h, &res, NULL), 0);
        /* A blocking job joined by a thread. */
        CHECK_EQ(ox_task_spawn_blocking(ret_arg, (void *)i, &h), 0);
        CHECK_EQ(ox_task_join(&h, &res, NULL), 0);
        CHECK(res == (void *)i);
        /* Scope end in a thread and in a task, each with a hand join too. */
        scope_round sr = {.i = i};
        ox_task_scope_run(scope_two_joiners, &sr);
        h = ox_test_spawn_on(rt, scope_in_task, &sr);
        CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    }
    CHECK(r >= b.min); /* the least that proves the claim, or max if smaller */
    ox_runtime_shutdown(rt);
}

/* ---- the reactor's poller ---- */

static void *wait_fd_forever(void *arg)
{
    int fd = (int)(intptr_t)arg;
    return (void *)(intptr_t)ox_fd_wait(fd, OX_IO_READABLE, OX_INSTANT_NEVER);
}

static void *wait_fd_briefly(void *arg)
{
    int fd = (int)(intptr_t)arg;
    return (void *)(intptr_t)ox_fd_wait(fd, OX_IO_READABLE, ox_instant_after(OX_MICROS(200)));
}

/* The only worker sleeps in the poller (a task waits on a pipe): every
 * task a thread spawns must wake it through the poller's eventfd, and
 * an earlier timer too. */
static void spawns_into_a_polling_runtime(size_t workers)
{
    ox_runtime *rt = ox_test_runtime(workers);
    int p[2];
    CHECK_EQ(pipe(p), 0);
    ox_task_handle waiter = ox_test_spawn_on(rt, wait_fd_forever, (void *)(intptr_t)p[0]);
    ox_test_budget b = ox_test_budget_start(300, ox_test_scaled(5000));
    long r;
    for (r = 0; ox_test_budget_more(&b, r); r++) {
        ox_task_handle h =
            ox_test_spawn_on(rt, (r & 1) ? ret_arg : wait_fd_briefly, (void *)(intptr_t)p[0]);
        void *res = NULL;
        CHECK_EQ(ox_task_join(&h, &res, NULL), 0);
        CHECK(res == ((r & 1) ? (void *)(intptr_t)p[0] : (void *)(intptr_t)OX_ETIMEDOUT));
    }
    CHECK(r >= b.min); /* the least that proves the claim, or max if smaller */
    CHECK(!ox_task_is_finished(&waiter));
    CHECK_EQ(write(p[1], "x", 1), 1);
    void *res = NULL;
    CHECK_EQ(ox_task_join(&waiter, &res, NULL), 0);
    CHECK(res == NULL);
    ox_runtime_shutdown(rt);
    close(p[0]);
    close(p[1]);
}

OX_TEST_OPTS(spawns_from_a_thread_wake_the_only_worker_in_the_poller, .timeout_s = 60)
{
    spawns_into_a_polling_runtime(1);
}

/* The same with one worker in the poller and one on its futex: each wake
 * must reach the one it picked, by the poller's event or the futex. */
OX_TEST_OPTS(spawns_from_a_thread_wake_workers_in_the_poller_or_on_the_futex, .timeout_s = 60)
{
    spawns_into_a_polling_runtime(2);
}

/* A runtime shut down while its workers sleep in the poller (or on their
 * futex, one of each), many times over. */
OX_TEST_OPTS(shutdown_while_workers_sleep_in_the_poller, .timeout_s = 60)
{
    int p[2];
    CHECK_EQ(pipe(p), 0);
    ox_test_budget b = ox_test_budget_start(50, ox_test_scaled(500));
    long r;
    for (r = 0; ox_test_budget_more(&b, r); r++) {
        ox_runtime *rt = ox_test_runtime(1 + (size_t)(r & 1));
        ox_task_handle h = ox_test_spawn_on(rt, wait_fd_briefly, (void *)(intptr_t)p[0]);
        void *res = NULL;
        CHECK_EQ(ox_task_join(&h, &res, NULL), 0);
        CHECK(res == (void *)(intptr_t)OX_ETIMEDOUT);
        if (r & 2) { /* and one still waiting: shutdown aborts it */
            h = ox_test_spawn_on(rt, wait_fd_forever, (void *)(intptr_t)p[0]);
            ox_task_handle_drop(&h);
        }
        ox_runtime_shutdown(rt);
    }
    CHECK(r >= b.min);
    close(p[0]);
    close(p[1]);
}

static ox_sockaddr full_listener;

static int connect_within(ox_nanos timeout)
{
    ox_socket *s = NULL;
    int rc = ox_tcp_connect_deadline(&full_listener, &s, ox_instant_after(timeout));
    CHECK(s == NULL || rc == 0);
    if (s != NULL)
        ox_socket_close(s); /* its connection stays in the listener's queue */
    return rc;
}

static void *connect_briefly(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)connect_within(OX_MILLIS(20));
}

/* A connect that never completes (a listener whose queue is full drops
 * the SYNs) ends at its deadline, in tasks (several at once on one
 * worker) and in a thread. */
OX_TEST_OPTS(connect_to_a_full_listener_ends_at_its_deadline, .timeout_s = 30)
{
    ox_sockaddr any;
    CHECK_EQ(ox_sockaddr_parse("127.0.0.1:0", &any), 0);
    ox_socket *l;
    CHECK_EQ(ox_tcp_listen(&any, 0, &l), 0);
    CHECK_EQ(ox_socket_local_addr(l, &full_listener), 0);
    /* Fill the queue: until a connect given ample time times out. */
    int filled = 0;
    while (filled < 8 && connect_within(ox_test_bound(OX_MILLIS(200))) == 0)
        filled++;
    CHECK(filled < 8);
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h[4];
    for (int i = 0; i < 4; i++)
        h[i] = ox_test_spawn_on(rt, connect_briefly, NULL);
    CHECK_EQ((intptr_t)connect_briefly(NULL), OX_ETIMEDOUT);
    for (int i = 0; i < 4; i++) {
        void *res = NULL;
        CHECK_EQ(ox_task_join(&h[i], &res, NULL), 0);
        CHECK_EQ((intptr_t)res, OX_ETIMEDOUT);
    }
    ox_runtime_shutdown(rt);
    ox_socket_close(l);
}

/* ---- the blocked dump against tasks parking and waking ---- */

static struct {
    ox_mutex m;
    long count; /* guarded by m */
    _Atomic int stop;
} dp = {.m = OX_MUTEX_INIT};

static void *park_and_wake(void *arg)
{
    long laps = 0;
    while (!atomic_load(&dp.stop)) {
        if (((uintptr_t)arg + (uintptr_t)laps) & 1) {
            CHECK_EQ(ox_task_sleep(OX_MICROS(20)), 0);
        } else {
            CHECK_EQ(ox_mutex_lock(&dp.m), 0);
            dp.count++;
            ox_task_yield(); /* others queue on the mutex meanwhile */
            ox_mutex_unlock(&dp.m);
        }
        laps++;
    }
    return (void *)laps;
}

/* The dump skips buckets whose count of linked tasks reads 0, without
 * their lock: under ThreadSanitizer, that count and the lists it guards
 * against tasks that link and unlink (sleeps, timers firing, a mutex). */
OX_TEST_OPTS(blocked_dump_while_tasks_link_and_unlink, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(2);
    enum { TASKS = 8 };
    ox_task_handle h[TASKS];
    for (int i = 0; i < TASKS; i++)
        h[i] = ox_test_spawn_on(rt, park_and_wake, (void *)(intptr_t)i);
    ox_test_budget b = ox_test_budget_start(50, ox_test_scaled(2000));
    long r;
    int seen_tasks = 0;
    /* And until a dump listed a parked task (the chaos build's rounds can
     * end before the first parks; one that never shows fails by timeout). */
    for (r = 0; ox_test_budget_more(&b, r) || seen_tasks == 0; r++) {
        int count = 0;
        char *text = ox_test_dump_blocked(&count);
        CHECK(text != NULL);
        if (strstr(text, "task") != NULL)
            seen_tasks++;
        free(text);
    }
    atomic_store(&dp.stop, 1);
    long laps = 0;
    for (int i = 0; i < TASKS; i++) {
        void *res = NULL;
        CHECK_EQ(ox_task_join(&h[i], &res, NULL), 0);
        laps += (long)(intptr_t)res;
    }
    CHECK_EQ(ox_mutex_lock(&dp.m), 0);
    CHECK(dp.count <= laps);
    ox_mutex_unlock(&dp.m);
    CHECK(r >= b.min);
    CHECK(seen_tasks > 0); /* the dump did list parked tasks */
    ox_runtime_shutdown(rt);
}

/* ---- the blocking pool: a job queued while the idle threads are woken ---- */

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Pool threads idle in their condvar wait, as the dump lists them. */
static int idle_pool_threads(void)
{
    int count = 0;
    char *text = ox_test_dump_blocked(&count);
    int n = count_of(text, "oxide-blocking");
    free(text);
    return n;
}

static void *meet_at_barrier(void *arg)
{
    (void)ox_barrier_wait(arg);
    return NULL;
}

/* Blocking jobs that wait for each other (a reader and its writer, say)
 * each need a thread of their own, which the pool starts up to 512. With
 * k threads idle, k + 1 jobs spawned at once: the pool counted threads
 * it had already woken for earlier jobs as still idle, started no thread
 * for the last job, and the k threads waited at the barrier for it
 * forever. */
OX_TEST(blocking_jobs_that_wait_for_each_other_each_get_a_thread)
{
    enum { ROUNDS = 12 };
    for (int r = 0; r < ROUNDS; r++) {
        int k = idle_pool_threads();
        int jobs = k + 1;
        ox_barrier *b = malloc(sizeof *b);
        CHECK(b != NULL);
        CHECK_EQ(ox_barrier_init(b, (unsigned)jobs), 0);
        ox_task_handle h[64];
        CHECK(jobs <= 64);
        for (int i = 0; i < jobs; i++)
            CHECK_EQ(ox_task_spawn_blocking(meet_at_barrier, b, &h[i]), 0);
        for (int i = 0; i < jobs; i++)
            CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
        free(b);
        /* Until the threads are back in their wait: the next round's k. */
        while (idle_pool_threads() < jobs)
            ox_thread_yield();
    }
}
