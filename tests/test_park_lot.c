/* The parking lot's table grows with its waiters (src/thread/park_lot.c):
 * waits, wakes, timeouts, aborts and the blocked dump all race a change of
 * table, and the table grows for many words but not for one. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include "thread/park.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct waiter_args {
    ox_semaphore sem; /* each task waits on its own: a word of its own */
    int kind;         /* what ends its wait, see wait_kind */
    _Atomic int rc;
} waiter_args;

/* A third of the tasks are released, a third time out, a third are
 * aborted: each way a moved waiter must be found again. */
enum wait_kind { RELEASED, TIMES_OUT, ABORTED };

static _Atomic long started;

static void *wait_on_own_semaphore(void *arg)
{
    waiter_args *w = arg;
    atomic_fetch_add(&started, 1);
    int rc = w->kind == TIMES_OUT ? ox_semaphore_acquire_timeout(&w->sem, 1, OX_MILLIS(200))
                                  : ox_semaphore_acquire(&w->sem, 1);
    atomic_store(&w->rc, rc);
    return NULL;
}

typedef struct waiters {
    size_t n;
    waiter_args *args;
    ox_task_handle *handles;
} waiters;

static waiters spawn_waiters(ox_runtime *rt, size_t n, bool all_released)
{
    waiters ws = {n, calloc(n, sizeof(waiter_args)), calloc(n, sizeof(ox_task_handle))};
    CHECK(ws.args != NULL && ws.handles != NULL);
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ(ox_semaphore_init(&ws.args[i].sem, 0), 0);
        ws.args[i].kind = all_released ? RELEASED : (int)(i % 3);
        atomic_init(&ws.args[i].rc, -1);
        ws.handles[i] = ox_test_spawn_on(rt, wait_on_own_semaphore, &ws.args[i]);
    }
    return ws;
}

/* Releases or aborts waiter i (one that times out is left alone). */
static void end_wait(waiters *ws, size_t i)
{
    if (ws->args[i].kind == RELEASED)
        ox_semaphore_release(&ws->args[i].sem, 1);
    else if (ws->args[i].kind == ABORTED)
        ox_task_abort(&ws->handles[i]);
}

/* Joins every waiter and checks that each wait ended the way it should. */
static void join_waiters(waiters *ws)
{
    long ended[3] = {0};
    for (size_t i = 0; i < ws->n; i++) {
        int joined = ox_task_join(&ws->handles[i], NULL, NULL);
        int kind = ws->args[i].kind, rc = atomic_load(&ws->args[i].rc);
        if (kind == ABORTED && joined == OX_ECANCELED) {
            CHECK_EQ(rc, -1); /* aborted before it ever ran */
            continue;
        }
        CHECK_EQ(joined, 0);
        /* An abort that came before the task's wait still ends the wait
         * with OX_ECANCELED. */
        CHECK_EQ(rc, kind == RELEASED ? 0 : kind == TIMES_OUT ? OX_ETIMEDOUT : OX_ECANCELED);
        ended[kind]++;
    }
    CHECK(ended[RELEASED] > 0);
    free(ws->args);
    free(ws->handles);
}

typedef struct churn {
    _Atomic int stop;
    long rehashes, dumps;
} churn;

/* Replaces the table over and over, as growths do, while the waits and
 * wakes run. Small tables (2^6 to 2^9 buckets): each old one is kept, and
 * 3000 of them are about 45 MiB. */
static void *rehash_until_stopped(void *arg)
{
    churn *c = arg;
    while (!atomic_load(&c->stop) && c->rehashes < 3000) {
        CHECK_EQ(ox__park_lot_rehash(6 + (unsigned)(c->rehashes % 4)), 0);
        c->rehashes++;
        ox_thread_yield();
    }
    return NULL;
}

/* Two tasks hand a turn back and forth through two semaphores: a stream
 * of waits and wakes on two words, each a lost wake away from a hang. */
typedef struct volley {
    ox_semaphore *mine, *theirs;
    long rounds;
} volley;

static void *volley_side(void *arg)
{
    volley *v = arg;
    for (long r = 0; r < v->rounds; r++) {
        CHECK_EQ(ox_semaphore_acquire(v->mine, 1), 0);
        ox_semaphore_release(v->theirs, 1);
    }
    return NULL;
}

/* Dumps the blocked tasks over and over while the table changes. */
static void *dump_until_stopped(void *arg)
{
    churn *c = arg;
    while (!atomic_load(&c->stop)) {
        int count = 0;
        char *text = ox_test_dump_blocked(&count);
        CHECK(text != NULL);
        CHECK(count >= 0);
        free(text);
        c->dumps++;
    }
    return NULL;
}

/* A waiter lost by a change of table (not moved, moved twice, looked up in
 * the old one) hangs its release or abort, or ends with the wrong code. */
OX_TEST_OPTS(park_lot_table_changes_while_tasks_wait_wake_time_out_and_abort, .timeout_s = 120)
{
    long scaled = ox_test_scaled(4000);
    size_t n = (size_t)(scaled < 400 ? 400 : scaled);
    ox_runtime *rt = ox_test_runtime(2);
    churn c = {0};
    ox_join_handle rehasher = ox_thread_spawn(rehash_until_stopped, &c);
    ox_join_handle dumper = ox_thread_spawn(dump_until_stopped, &c);
    enum { VOLLEYS = 4 };
    static ox_semaphore sems[VOLLEYS][2];
    volley v[VOLLEYS][2];
    ox_task_handle vh[VOLLEYS][2];
    for (int i = 0; i < VOLLEYS; i++) {
        for (int side = 0; side < 2; side++) /* side 0 serves first */
            CHECK_EQ(ox_semaphore_init(&sems[i][side], side == 0 ? 1 : 0), 0);
        for (int side = 0; side < 2; side++) {
            v[i][side] = (volley){&sems[i][side], &sems[i][!side], ox_test_scaled(20000)};
            vh[i][side] = ox_test_spawn_on(rt, volley_side, &v[i][side]);
        }
    }
    waiters ws = spawn_waiters(rt, n, false);
    /* Ended while the workers are still starting many of the waits. */
    for (size_t i = 0; i < n; i++)
        end_wait(&ws, i);
    join_waiters(&ws);
    for (int i = 0; i < VOLLEYS; i++)
        for (int side = 0; side < 2; side++)
            CHECK_EQ(ox_task_join(&vh[i][side], NULL, NULL), 0);
    atomic_store(&c.stop, 1);
    CHECK_EQ(ox_thread_join(&rehasher, NULL, NULL), 0);
    printf("%ld table changes, %ld dumps\n", c.rehashes, c.dumps);
    CHECK_EQ(ox_thread_join(&dumper, NULL, NULL), 0);
    CHECK(c.rehashes > 0 && c.dumps > 0);
    ox_runtime_shutdown(rt);
}

/* Waits until n tasks have started their waits and the blocked dump lists
 * at least n (those of other tests' runtimes aside: each test is its own
 * process). */
static void wait_parked(long n)
{
    while (atomic_load(&started) < n)
        ox_thread_yield();
    for (int count = 0; count < n;) {
        char *text = ox_test_dump_blocked(&count);
        free(text);
        ox_thread_yield();
    }
}

/* From a small table, waits on many words make it grow by itself. */
OX_TEST_OPTS(park_lot_grows_for_waits_on_many_words, .timeout_s = 60)
{
    CHECK_EQ(ox__park_lot_rehash(8), 0);
    ox_runtime *rt = ox_test_runtime(2);
    enum { N = 2000 }; /* about eight a bucket of 256 */
    waiters ws = spawn_waiters(rt, N, true);
    wait_parked(N);
    size_t grown = ox__park_lot_buckets();
    for (size_t i = 0; i < N; i++)
        end_wait(&ws, i);
    join_waiters(&ws);
    CHECK(grown > 256);
    ox_runtime_shutdown(rt);
}

static _Atomic uint32_t one_word;

static void *wait_on_one_word(void *arg)
{
    (void)arg;
    static const ox__wait_site site = {.what = "test word"};
    atomic_fetch_add(&started, 1);
    while (atomic_load(&one_word) == 0)
        (void)ox__park_wait(&one_word, 0, OX_INSTANT_NEVER, &site, NULL);
    return NULL;
}

/* Many waits on one word make one long list, which more buckets would not
 * shorten: the table must not grow for it. */
OX_TEST_OPTS(park_lot_does_not_grow_for_many_waits_on_one_word, .timeout_s = 60)
{
    CHECK_EQ(ox__park_lot_rehash(8), 0);
    ox_runtime *rt = ox_test_runtime(2);
    enum { N = 2000 };
    ox_task_handle *h = calloc(N, sizeof *h);
    CHECK(h != NULL);
    for (size_t i = 0; i < N; i++)
        h[i] = ox_test_spawn_on(rt, wait_on_one_word, NULL);
    wait_parked(N);
    CHECK_EQ(ox__park_lot_buckets(), 256u);
    atomic_store(&one_word, 1);
    (void)ox__park_wake_all(&one_word);
    for (size_t i = 0; i < N; i++)
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    free(h);
}
