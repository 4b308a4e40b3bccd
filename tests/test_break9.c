/* Reproducers from trying to break the runtime's shutdown by counters and
 * a closing flag (runtime.c's "counting unfinished tasks", park_lot.c's
 * ox__park_lot_cancel_group) and the join marks of a task's end (task.c's
 * ox__task_mark_finished). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: the finished word, the lot */

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- shutdown returns only once every task of every kind has ----
 * Tasks in every kind of wait, cancellable or not, tasks that keep moving
 * between workers, tasks that spawn more when they are aborted, tasks that
 * a task of another runtime started (counted in outside_started) and a
 * task of ours waited for: when ox_runtime_shutdown returns, no code of
 * any of them may still run (alive), and every handle must say finished.
 * A sum of the workers' counts that read zero too early would free the
 * runtime under a running task (AddressSanitizer) or leave one alive. */
enum { SK_KINDS = 17, SK_HANDLES = 512 };

/* No cancellation point: an abort or a shutdown must not end it. */
static const ox__wait_site plain_wait_site = {.what = "test wait, not cancellable"};

/* Waits, not cancellably, until *word is non-zero; such a wait must never
 * return OX_ECANCELED, whatever ends the task's other waits. */
static void wait_plainly(_Atomic uint32_t *word)
{
    while (atomic_load(word) == 0)
        CHECK(ox__park_wait(word, 0, OX_INSTANT_NEVER, &plain_wait_site, NULL) != OX_ECANCELED);
}

/* A thread that holds a plain lock and a word at zero from before a
 * shutdown into it: tasks blocked on them, not cancellably, keep the
 * shutdown waiting until it lets go, a moment after it began. */
typedef struct holder {
    ox_mutex *lock;
    long *count; /* counted under lock */
    _Atomic uint32_t *word;
    ox_semaphore holding;
    _Atomic int shutting; /* set just before the shutdown is called */
} holder;

static void *hold_into_shutdown(void *arg)
{
    holder *h = arg;
    CHECK_EQ(ox_mutex_lock(h->lock), 0);
    (*h->count)++;
    ox_semaphore_release(&h->holding, 1);
    while (!atomic_load(&h->shutting))
        ox_thread_sleep(OX_MICROS(50));
    ox_thread_sleep(OX_MILLIS(1)); /* the walk is most likely over */
    atomic_store(h->word, 1);
    ox__park_wake_all(h->word);
    ox_mutex_unlock(h->lock);
    return NULL;
}

static void holder_start(holder *h, ox_mutex *lock, long *count, _Atomic uint32_t *word,
                         ox_join_handle *thread)
{
    *h = (holder){.lock = lock, .count = count, .word = word};
    atomic_store(word, 0);
    CHECK_EQ(ox_semaphore_init(&h->holding, 0), 0);
    *thread = ox_thread_spawn(hold_into_shutdown, h);
    CHECK_EQ(ox_semaphore_acquire(&h->holding, 1), 0);
}

static struct {
    ox_runtime *rt, *other;
    ox_mutex lock; /* guards handles and n */
    ox_task_handle handles[SK_HANDLES];
    int n;
    long held_count; /* counted under held, by its holder thread and a task */
    ox_mutex held;   /* held by a thread into the shutdown: a plain lock */
    ox_semaphore never;
    ox_condvar cv;
    ox_mutex cv_lock;
    ox_sender *tx;
    ox_receiver *rx;
    int pipe[2];
    _Atomic uint32_t word; /* held at 0 into the shutdown */
    ox_mutex panic_lock;   /* held by a task that panics when aborted */
    _Atomic int alive, arrived, ran_after_held, cleanups, panicked;
} sk = {.lock = OX_MUTEX_INIT,
        .held = OX_MUTEX_INIT,
        .cv_lock = OX_MUTEX_INIT,
        .panic_lock = OX_MUTEX_INIT};

static void keep(ox_task_handle h)
{
    CHECK_EQ(ox_mutex_lock(&sk.lock), 0);
    CHECK(sk.n < SK_HANDLES);
    sk.handles[sk.n++] = h;
    ox_mutex_unlock(&sk.lock);
}

static void *sk_task(void *arg);

/* Spawns a task of kind on rt, keeping its handle (a closing runtime's
 * new task starts aborted: it must still be waited for). */
static void spawn_kind(ox_runtime *rt, intptr_t kind)
{
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    b.runtime = rt;
    ox_task_handle h;
    CHECK_EQ(ox_task_builder_spawn(&b, sk_task, (void *)kind, &h), 0);
    keep(h);
}

static void *sleep_until_aborted(void *arg)
{
    (void)arg;
    atomic_fetch_add(&sk.alive, 1);
    while (ox_task_sleep(OX_SECS(3600)) == 0) {
    }
    atomic_fetch_sub(&sk.alive, 1);
    return NULL;
}

typedef struct cross {
    ox_semaphore spawned;
} cross;

/* On the other runtime: spawns a task on sk.rt (outside_started), then
 * lets the task of sk.rt that waits for it go on. */
static void *spawn_back(void *arg)
{
    cross *c = arg;
    /* Kind 0's steps, not counted as one of the first SK_KINDS arrivals
     * (the shutdown waits for those, not for this one). */
    spawn_kind(sk.rt, 2 * SK_KINDS);
    ox_semaphore_release(&c->spawned, 1);
    return NULL;
}

static void scope_of_sleepers(ox_task_scope *scope, void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        (void)ox_task_scope_spawn(scope, sleep_until_aborted, NULL);
}

static void *job_briefly(void *arg)
{
    (void)arg;
    ox_thread_sleep(OX_MICROS(300));
    return NULL;
}

static void count_cleanup(void *arg)
{
    (void)arg;
    atomic_fetch_add(&sk.cleanups, 1);
}

/* Yields (and so may move to another worker) between its catch frame's
 * setjmp and the panic that lands there. */
static void *yield_then_panic(void *arg)
{
    ox_task_yield();
    ox_panic("nested %d", (int)(intptr_t)arg);
}

static void *catch_nested(void *arg)
{
    intptr_t depth = (intptr_t)arg;
    if (depth == 0)
        return yield_then_panic(arg);
    ox_task_yield();
    ox_panic_payload *p = NULL;
    void *result = NULL;
    int rc = ox_catch_unwind(catch_nested, (void *)(depth - 1), &result, &p);
    if (depth == 1) { /* the innermost frame catches the panic */
        CHECK_EQ(rc, OX_EPANICKED);
        CHECK(p != NULL);
        ox_panic_payload_free(p);
    } else {
        CHECK_EQ(rc, 0);
        CHECK_EQ((intptr_t)result, depth - 1);
    }
    return (void *)depth;
}

static void *sk_task(void *arg)
{
    intptr_t kind = (intptr_t)arg;
    atomic_fetch_add(&sk.alive, 1);
    if (kind < SK_KINDS) /* one of the first tasks, not a child */
        atomic_fetch_add(&sk.arrived, 1);
    switch (kind % SK_KINDS) {
    case 0: /* sleeps; aborted, it spawns a child, which starts aborted */
        CHECK_EQ(ox_task_sleep(OX_SECS(3600)), OX_ECANCELED);
        if (kind < SK_KINDS)
            spawn_kind(sk.rt, kind + SK_KINDS);
        break;
    case 1: /* never waits: yields, moving between workers, until aborted */
        while (!ox_task_is_cancelled())
            ox_task_yield();
        if (kind < SK_KINDS)
            spawn_kind(sk.rt, kind + SK_KINDS);
        break;
    case 2:
        CHECK_EQ(ox_semaphore_acquire(&sk.never, 1), OX_ECANCELED);
        break;
    case 3: /* a plain lock, no cancellation point: the shutdown must wait */
        CHECK_EQ(ox_mutex_lock(&sk.held), 0);
        sk.held_count++;
        ox_mutex_unlock(&sk.held);
        atomic_fetch_add(&sk.ran_after_held, 1);
        /* The runtime closes while it waited: its next wait ends at once. */
        CHECK_EQ(ox_task_sleep(OX_SECS(3600)), OX_ECANCELED);
        break;
    case 4: {
        CHECK_EQ(ox_mutex_lock(&sk.cv_lock), 0);
        int rc;
        while ((rc = ox_condvar_wait(&sk.cv, &sk.cv_lock)) == 0) {
        }
        CHECK_EQ(rc, OX_ECANCELED);
        ox_mutex_unlock(&sk.cv_lock);
        break;
    }
    case 5: {
        long v;
        CHECK_EQ(ox_receiver_recv(sk.rx, &v), OX_ECANCELED);
        break;
    }
    case 6: { /* waits for a task of the other runtime, which spawns on ours */
        cross c;
        CHECK_EQ(ox_semaphore_init(&c.spawned, 0), 0);
        ox_task_builder b = OX_TASK_BUILDER_INIT;
        b.runtime = sk.other;
        ox_task_handle h;
        CHECK_EQ(ox_task_builder_spawn(&b, spawn_back, &c, &h), 0);
        /* Not cancellable here: c lives on this stack. */
        while (ox_semaphore_acquire(&c.spawned, 1) != 0) {
        }
        int rc;
        /* OX_ECANCELED with the handle kept: this task was aborted. */
        while ((rc = ox_task_join(&h, NULL, NULL)) == OX_ECANCELED && h.task != NULL) {
        }
        CHECK_EQ(rc, 0);
        CHECK_EQ(ox_task_sleep(OX_SECS(3600)), OX_ECANCELED);
        break;
    }
    case 7: { /* a set whose member sleeps; dropped when aborted */
        ox_join_set *set;
        CHECK_EQ(ox_join_set_new(&set), 0);
        CHECK_EQ(ox_join_set_spawn(set, sleep_until_aborted, NULL), 0);
        /* Shutdown aborts the member too: if its end comes first, the
         * member is there to take, and a call that need not wait returns
         * it rather than OX_ECANCELED (once in ~40 loaded tsan runs). */
        int rc = ox_join_set_join_next(set, NULL, NULL, NULL);
        CHECK(rc == OX_ECANCELED || rc == 0);
        ox_join_set_drop(set);
        break;
    }
    case 8: /* a scope's end is no cancellation point; its tasks are aborted */
        ox_task_scope_run(scope_of_sleepers, NULL);
        break;
    case 9: { /* a blocking job: its join is cancellable, the job runs on */
        ox_task_handle job;
        CHECK_EQ(ox_task_spawn_blocking(job_briefly, NULL, &job), 0);
        int rc = ox_task_join(&job, NULL, NULL);
        CHECK(rc == 0 || rc == OX_ECANCELED);
        if (job.task != NULL) /* this task was aborted: the handle is kept */
            ox_task_handle_drop(&job);
        CHECK_EQ(ox_task_sleep(OX_SECS(3600)), OX_ECANCELED);
        break;
    }
    case 10:
        CHECK_EQ(ox_fd_wait(sk.pipe[0], OX_IO_READABLE, OX_INSTANT_NEVER), OX_ECANCELED);
        break;
    case 11: /* timed waits that keep expiring, racing the walk */
        for (;;) {
            int rc = ox_task_sleep(OX_MICROS(20));
            if (rc != 0) {
                CHECK_EQ(rc, OX_ECANCELED);
                break;
            }
        }
        break;
    case 12: { /* joins a sleeping task; aborted, it leaves it to the shutdown */
        ox_task_handle h = ox_task_spawn(sleep_until_aborted, NULL);
        /* OX_ECANCELED either way: this task was aborted (the handle is
         * kept), or the child was, before it ran (the handle is consumed). */
        int rc = ox_task_join(&h, NULL, NULL);
        CHECK(rc == 0 || rc == OX_ECANCELED);
        if (h.task != NULL)
            ox_task_handle_drop(&h);
        break;
    }
    case 13: { /* a timed semaphore wait, repeated */
        int rc;
        while ((rc = ox_semaphore_acquire_timeout(&sk.never, 1, OX_MICROS(30))) == OX_ETIMEDOUT) {
        }
        CHECK_EQ(rc, OX_ECANCELED);
        break;
    }
    case 14: /* a plain wait, held into the shutdown: it must not end early */
        wait_plainly(&sk.word);
        CHECK_EQ(ox_task_sleep(OX_SECS(3600)), OX_ECANCELED);
        break;
    case 15: /* aborted, it panics holding a lock, with a cleanup pushed */
        CHECK_EQ(ox_mutex_lock(&sk.panic_lock), 0);
        ox_cleanup_push(count_cleanup, NULL);
        if (ox_task_sleep(OX_SECS(3600)) == OX_ECANCELED) {
            atomic_fetch_add(&sk.panicked, 1);
            atomic_fetch_sub(&sk.alive, 1);
            ox_panic("aborted by the shutdown");
        }
        CHECK(false);
        break;
    case 16: /* catch frames on a task that moves between setjmp and panic */
        while (!ox_task_is_cancelled()) {
            void *result = NULL;
            CHECK_EQ(ox_catch_unwind(catch_nested, (void *)3, &result, NULL), 0);
            CHECK_EQ((intptr_t)result, 3);
        }
        break;
    }
    atomic_fetch_sub(&sk.alive, 1);
    return NULL;
}

OX_TEST_OPTS(runtime_shutdown_returns_after_every_task_of_every_kind, .timeout_s = 60)
{
    ox_panic_hook old_hook = ox_panic_set_hook(ox_test_quiet_hook);
    ox_test_budget b = ox_test_budget_start(20, ox_test_scaled(200));
    long r;
    for (r = 0; ox_test_budget_more(&b, r); r++) {
        sk.rt = ox_test_runtime(1 + (size_t)(r % 3));
        sk.other = ox_test_runtime(1);
        sk.n = 0;
        sk.held_count = 0;
        atomic_store(&sk.alive, 0);
        atomic_store(&sk.arrived, 0);
        atomic_store(&sk.ran_after_held, 0);
        atomic_store(&sk.cleanups, 0);
        atomic_store(&sk.panicked, 0);
        CHECK_EQ(ox_semaphore_init(&sk.never, 0), 0);
        ox_condvar_init(&sk.cv);
        CHECK_EQ(ox_channel(sizeof(long), 4, &sk.tx, &sk.rx), 0);
        CHECK_EQ(pipe(sk.pipe), 0);
        holder hold;
        ox_join_handle holder_thread;
        holder_start(&hold, &sk.held, &sk.held_count, &sk.word, &holder_thread);
        for (intptr_t k = 0; k < SK_KINDS; k++)
            spawn_kind(sk.rt, k);
        /* Every other round the shutdown races the tasks' first steps. */
        if (r % 2 == 0) {
            while (atomic_load(&sk.arrived) < SK_KINDS)
                ox_thread_sleep(OX_MICROS(100));
            ox_thread_sleep(OX_MICROS(500));
        }
        atomic_store(&hold.shutting, 1);
        ox_runtime_shutdown(sk.rt);
        CHECK_EQ(atomic_load(&sk.alive), 0);
        /* The panicking task's unwind released its lock (poisoned) and ran
         * its cleanup. */
        CHECK_EQ(atomic_load(&sk.cleanups), atomic_load(&sk.panicked));
        CHECK_EQ(ox_mutex_try_lock(&sk.panic_lock), atomic_load(&sk.panicked) ? OX_EPOISONED : 0);
        ox_mutex_clear_poison(&sk.panic_lock);
        ox_mutex_unlock(&sk.panic_lock);
        ox_test_join(&holder_thread);
        CHECK_EQ(sk.held_count, 1 + atomic_load(&sk.ran_after_held));
        if (r % 2 == 0) /* it was in the plain lock before the shutdown */
            CHECK_EQ(atomic_load(&sk.ran_after_held), 1);
        ox_runtime_shutdown(sk.other);
        for (int i = 0; i < sk.n; i++) {
            CHECK(ox_task_is_finished(&sk.handles[i]));
            ox_panic_payload *p = NULL;
            int rc = ox_task_join(&sk.handles[i], NULL, &p);
            CHECK(rc == 0 || rc == OX_ECANCELED || (rc == OX_EPANICKED && p != NULL));
            if (p != NULL)
                ox_panic_payload_free(p);
        }
        ox_sender_drop(sk.tx);
        ox_receiver_drop(sk.rx);
        close(sk.pipe[0]);
        close(sk.pipe[1]);
    }
    CHECK(r >= b.min);
    (void)ox_panic_set_hook(old_hook);
}

/* ---- a task's end and every mix of waiters ----
 * A waiter marks the finished word with its kind's bit before it sleeps
 * (a task's: wake the lot; a thread's: make the futex call), and the end
 * makes only the wake-ups the marks ask for. Threads and tasks, several
 * of each, wait for one task through ox__task_wait_finished while it ends
 * at a random moment (before any waits, while they mark, after): each
 * must return, and see it finished. */
enum { MW_THREADS = 3, MW_TASKS = 4 };
static const ox__wait_site mw_site = {.what = "test wait for a task's end"};

static struct {
    ox_task *target;
    _Atomic int returned;
} mw;

static void *wait_target(void *arg)
{
    (void)arg;
    CHECK_EQ(ox__task_wait_finished(mw.target, &mw_site), 0);
    CHECK(ox__task_has_finished(mw.target));
    atomic_fetch_add(&mw.returned, 1);
    return NULL;
}

static void *end_after_yields(void *arg)
{
    for (intptr_t i = 0; i < (intptr_t)arg; i++)
        ox_task_yield();
    return NULL;
}

OX_TEST_OPTS(task_end_wakes_every_mix_of_thread_and_task_waiters, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(2);
    ox_runtime *target_rt = ox_test_runtime(1);
    ox_test_budget b = ox_test_budget_start(200, ox_test_scaled(3000));
    long r;
    for (r = 0; ox_test_budget_more(&b, r); r++) {
        atomic_store(&mw.returned, 0);
        int threads = (int)(r % (MW_THREADS + 1));
        int tasks = (int)((r / (MW_THREADS + 1)) % (MW_TASKS + 1));
        ox_task_handle target = ox_test_spawn_on(target_rt, end_after_yields, (void *)(r % 7 * 3));
        mw.target = target.task; /* the handle keeps it alive */
        ox_join_handle th[MW_THREADS];
        ox_task_handle tk[MW_TASKS];
        for (int i = 0; i < threads; i++)
            th[i] = ox_thread_spawn(wait_target, NULL);
        for (int i = 0; i < tasks; i++)
            tk[i] = ox_test_spawn_on(rt, wait_target, NULL);
        for (int i = 0; i < threads; i++)
            ox_test_join(&th[i]);
        for (int i = 0; i < tasks; i++)
            CHECK_EQ(ox_task_join(&tk[i], NULL, NULL), 0);
        CHECK_EQ(atomic_load(&mw.returned), threads + tasks);
        CHECK_EQ(ox_task_join(&target, NULL, NULL), 0);
    }
    CHECK(r >= b.min);
    ox_runtime_shutdown(rt);
    ox_runtime_shutdown(target_rt);
}

/* ---- the shutdown's walk of the lot, racing everything else there ----
 * The walk locks every bucket of the current table under the grow lock.
 * Meanwhile the table is rehashed (its waiters move), tasks are aborted
 * one by one, timed waits expire, and a task waits in a plain lock, which
 * the walk must leave alone: that task may return from the lock only
 * holding it (the count under it adds up). Many words, so many buckets. */
enum { LW_TASKS = 96 };

static struct {
    ox_semaphore sems[LW_TASKS];
    ox_task_handle h[LW_TASKS];
    ox_mutex plain;
    long plain_count, plain_ran; /* guarded by plain */
    _Atomic uint32_t word;       /* held at 0 into the shutdown */
    _Atomic int alive, arrived, stop;
} lw = {.plain = OX_MUTEX_INIT};

static void *lw_task(void *arg)
{
    intptr_t i = (intptr_t)arg;
    atomic_fetch_add(&lw.alive, 1);
    atomic_fetch_add(&lw.arrived, 1);
    if (i == 0) {
        CHECK_EQ(ox_mutex_lock(&lw.plain), 0);
        lw.plain_count++;
        lw.plain_ran = 1;
        ox_mutex_unlock(&lw.plain);
    } else if (i == 1) {
        wait_plainly(&lw.word);
    } else if (i % 3 == 0) {
        int rc;
        while ((rc = ox_semaphore_acquire_timeout(&lw.sems[i], 1, OX_MICROS(i * 7))) ==
               OX_ETIMEDOUT) {
        }
        CHECK_EQ(rc, OX_ECANCELED);
    } else {
        CHECK_EQ(ox_semaphore_acquire(&lw.sems[i], 1), OX_ECANCELED);
    }
    atomic_fetch_sub(&lw.alive, 1);
    return NULL;
}

static void *rehash_until_stop(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !atomic_load(&lw.stop); i++)
        CHECK_EQ(ox__park_lot_rehash(4 + i % 6), 0);
    return NULL;
}

static void *abort_until_stop(void *arg)
{
    (void)arg;
    for (unsigned i = 1; !atomic_load(&lw.stop); i = (i * 7 + 3) % LW_TASKS) {
        ox_task_abort(&lw.h[i]); /* the plain waits (0, 1) must not end */
        ox_thread_yield();
    }
    return NULL;
}

OX_TEST_OPTS(runtime_shutdown_walk_races_rehash_aborts_and_timeouts, .timeout_s = 60)
{
    size_t buckets = ox__park_lot_buckets();
    unsigned bits = 0;
    while (((size_t)1 << bits) < buckets)
        bits++;
    ox_test_budget b = ox_test_budget_start(10, ox_test_scaled(100));
    long r;
    for (r = 0; ox_test_budget_more(&b, r); r++) {
        ox_runtime *rt = ox_test_runtime(2);
        atomic_store(&lw.alive, 0);
        atomic_store(&lw.arrived, 0);
        atomic_store(&lw.stop, 0);
        lw.plain_count = 0;
        lw.plain_ran = 0;
        holder hold;
        ox_join_handle holder_thread;
        holder_start(&hold, &lw.plain, &lw.plain_count, &lw.word, &holder_thread);
        for (int i = 0; i < LW_TASKS; i++) {
            CHECK_EQ(ox_semaphore_init(&lw.sems[i], 0), 0);
            lw.h[i] = ox_test_spawn_on(rt, lw_task, (void *)(intptr_t)i);
        }
        while (atomic_load(&lw.arrived) < LW_TASKS)
            ox_thread_sleep(OX_MICROS(100));
        ox_join_handle rehasher = ox_thread_spawn(rehash_until_stop, NULL);
        ox_join_handle aborter = ox_thread_spawn(abort_until_stop, NULL);
        ox_thread_sleep(OX_MICROS(200));
        atomic_store(&hold.shutting, 1);
        ox_runtime_shutdown(rt);
        CHECK_EQ(atomic_load(&lw.alive), 0);
        atomic_store(&lw.stop, 1);
        ox_test_join(&rehasher);
        ox_test_join(&aborter);
        ox_test_join(&holder_thread);
        /* It was in the lock before the shutdown: it must have taken it. */
        CHECK_EQ(lw.plain_ran, 1);
        CHECK_EQ(lw.plain_count, 2);
        for (int i = 0; i < LW_TASKS; i++) {
            CHECK(ox_task_is_finished(&lw.h[i]));
            CHECK_EQ(ox_task_join(&lw.h[i], NULL, NULL), 0);
        }
    }
    CHECK(r >= b.min);
    CHECK_EQ(ox__park_lot_rehash(bits), 0); /* as the other tests found it */
}

/* ---- a shutdown called from a task of a runtime that shuts down ----
 * A task of rt B shuts down rt A (allowed: not one of A's own tasks), and
 * B is shut down meanwhile. A's wait for its tasks is no cancellation
 * point, so B's abort must not cut it short: A's tasks have all ended when
 * it returns, and B's shutdown waits for it. */
static _Atomic int nested_alive, nested_arrived;

static void *nested_sleeper(void *arg)
{
    (void)arg;
    atomic_fetch_add(&nested_alive, 1);
    atomic_fetch_add(&nested_arrived, 1);
    CHECK_EQ(ox_task_sleep(OX_SECS(3600)), OX_ECANCELED);
    ox_thread_sleep(OX_MICROS(200)); /* keeps A's shutdown waiting a moment */
    atomic_fetch_sub(&nested_alive, 1);
    return NULL;
}

static void *shut_down_arg(void *arg)
{
    atomic_store(&nested_arrived, -1000);
    ox_runtime_shutdown(arg);
    CHECK_EQ(atomic_load(&nested_alive), 0);
    return NULL;
}

OX_TEST_OPTS(runtime_shutdown_from_a_task_of_a_closing_runtime, .timeout_s = 30)
{
    ox_test_budget b = ox_test_budget_start(20, ox_test_scaled(200));
    long r;
    for (r = 0; ox_test_budget_more(&b, r); r++) {
        ox_runtime *a = ox_test_runtime(2), *bb = ox_test_runtime(1);
        atomic_store(&nested_alive, 0);
        atomic_store(&nested_arrived, 0);
        ox_task_handle h[8];
        for (int i = 0; i < 8; i++)
            h[i] = ox_test_spawn_on(a, nested_sleeper, NULL);
        while (atomic_load(&nested_arrived) < 8)
            ox_thread_sleep(OX_MICROS(100));
        ox_task_handle s = ox_test_spawn_on(bb, shut_down_arg, a);
        while (atomic_load(&nested_arrived) >= 0)
            ox_thread_yield();
        if (r % 2)
            ox_thread_sleep(OX_MICROS(100));
        ox_runtime_shutdown(bb);
        CHECK_EQ(atomic_load(&nested_alive), 0);
        CHECK_EQ(ox_task_join(&s, NULL, NULL), 0);
        for (int i = 0; i < 8; i++)
            CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    }
    CHECK(r >= b.min);
}

/* ---- the shutdown's sum, while aborted tasks spawn and retire ----
 * Every task, once aborted, spawns a child (which starts aborted) and
 * returns: during the shutdown, parents retire and children start on
 * every worker, and each retire wakes the shutdown to sum again. The sum
 * reads the retired counts before the started ones: a child's start comes
 * before its parent's retire, so a sum that reads that retire reads the
 * start too. Read the other way round, a sum could read a child's start
 * as missing and its parent's retire as done: zero, with the child alive,
 * and the runtime freed under it. (That window is a few loads wide: with
 * the sums swapped this test still passed, in the chaos build too. It
 * holds the invariant, not the order.) */
enum { SP_TASKS = 256 };
static _Atomic int sp_arrived;

static void *sp_child(void *arg)
{
    (void)arg;
    return NULL;
}

static void *spawn_child_once_aborted(void *arg)
{
    ox_task_handle *child = arg;
    atomic_fetch_add(&sp_arrived, 1);
    while (!ox_task_is_cancelled())
        ox_task_yield();
    *child = ox_task_spawn(sp_child, NULL);
    return NULL;
}

OX_TEST_OPTS(runtime_shutdown_sums_while_aborted_tasks_spawn_and_retire, .timeout_s = 60)
{
    static ox_task_handle parents[SP_TASKS], children[SP_TASKS];
    ox_test_budget b = ox_test_budget_start(20, ox_test_scaled(400));
    long r;
    for (r = 0; ox_test_budget_more(&b, r); r++) {
        ox_runtime *rt = ox_test_runtime(2 + (size_t)(r % 2));
        atomic_store(&sp_arrived, 0);
        for (int i = 0; i < SP_TASKS; i++)
            parents[i] = ox_test_spawn_on(rt, spawn_child_once_aborted, &children[i]);
        while (atomic_load(&sp_arrived) < SP_TASKS)
            ox_thread_yield();
        ox_runtime_shutdown(rt);
        for (int i = 0; i < SP_TASKS; i++) {
            CHECK_EQ(ox_task_join(&parents[i], NULL, NULL), 0);
            /* Spawned before its parent returned: finished with the rest. */
            CHECK(ox_task_is_finished(&children[i]));
            CHECK_EQ(ox_task_join(&children[i], NULL, NULL), OX_ECANCELED);
        }
    }
    CHECK(r >= b.min);
}

/* ---- waits that start while the shutdown walks the lot ----
 * Tasks wait again and again, untimed, each on a semaphore of its own
 * that two threads keep releasing until a task sees the shutdown begin;
 * then nobody releases any more. A wait that read the closing flag unset and linked
 * itself where the walk does not look (a bucket it passed as empty, say)
 * would sleep for ever, and the shutdown with it: the runner's timeout
 * names the test. */
enum { PW_TASKS = 64, PW_PUMPS = 2 };

static struct {
    ox_semaphore sems[PW_TASKS];
    _Atomic int arrived, stop;
} pw;

static void *acquire_until_aborted(void *arg)
{
    ox_semaphore *s = arg;
    atomic_fetch_add(&pw.arrived, 1);
    int rc;
    while ((rc = ox_semaphore_acquire(s, 1)) == 0) {
    }
    CHECK_EQ(rc, OX_ECANCELED);
    return NULL;
}

/* Stops the pumps once it sees its runtime closing: most likely while the
 * shutdown walks the lot. */
static void *stop_pumps_at_shutdown(void *arg)
{
    (void)arg;
    atomic_fetch_add(&pw.arrived, 1);
    while (!ox_task_is_cancelled())
        ox_task_yield();
    atomic_store(&pw.stop, 1);
    return NULL;
}

static void *pump_until_stop(void *arg)
{
    unsigned i = (unsigned)(intptr_t)arg;
    while (!atomic_load(&pw.stop)) {
        i = i * 1103515245u + 12345u;
        ox_semaphore_release(&pw.sems[(i >> 8) % PW_TASKS], 1);
    }
    return NULL;
}

OX_TEST_OPTS(runtime_shutdown_ends_waits_that_start_while_it_walks, .timeout_s = 60)
{
    ox_test_budget b = ox_test_budget_start(30, ox_test_scaled(300));
    long r;
    for (r = 0; ox_test_budget_more(&b, r); r++) {
        ox_runtime *rt = ox_test_runtime(2);
        atomic_store(&pw.arrived, 0);
        atomic_store(&pw.stop, 0);
        ox_task_handle h[PW_TASKS];
        for (int i = 0; i < PW_TASKS; i++) {
            CHECK_EQ(ox_semaphore_init(&pw.sems[i], 0), 0);
            h[i] = ox_test_spawn_on(rt, acquire_until_aborted, &pw.sems[i]);
        }
        ox_join_handle pumps[PW_PUMPS];
        for (int i = 0; i < PW_PUMPS; i++)
            pumps[i] = ox_thread_spawn(pump_until_stop, (void *)(intptr_t)(i + 1));
        ox_task_handle sentinel = ox_test_spawn_on(rt, stop_pumps_at_shutdown, NULL);
        while (atomic_load(&pw.arrived) < PW_TASKS + 1)
            ox_thread_yield();
        ox_thread_sleep(OX_MICROS(200));
        ox_runtime_shutdown(rt);
        CHECK_EQ(ox_task_join(&sentinel, NULL, NULL), 0);
        for (int i = 0; i < PW_PUMPS; i++)
            ox_test_join(&pumps[i]);
        for (int i = 0; i < PW_TASKS; i++)
            CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    }
    CHECK(r >= b.min);
}
