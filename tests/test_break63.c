/* break63: the panic barrier (ox__unwind_begin_panic, src/panic/unwind.c)
 * against what a cleanup may do: condvar waits, dispersed readers,
 * downgrade, nested catches, cleanups pushed by cleanups, a record that
 * grows, tasks that move, try and timed locks under the checker, the
 * blocked dump. A lock taken before the panic and unlocked by hand in a
 * cleanup is poisoned; one the cleanup takes itself is not. All held on
 * the first form of the barrier (0deed07); test_break63_rust.c has the
 * three that did not. */
#include "helpers.h"
#include "oxide.h"
#include "runner.h"

#include "panic/unwind.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct k {
    ox_mutex p; /* taken before the panic */
    ox_mutex c; /* taken in a cleanup */
    ox_mutex c2;
    ox_rwlock l;
    ox_condvar cv;
    atomic_int stage;
    atomic_int seen_poisoned; /* what another thread saw while the cleanup waited */
};

/* ---- condvar wait in a cleanup on the pre-panic mutex ----
 * Rust: Condvar::wait releases the raw mutex unpoisoned; the same guard
 * comes back and its drop (panicking, made before) poisons. */
static void *notifier(void *arg)
{
    struct k *k = arg;
    while (atomic_load(&k->stage) == 0)
        ox_thread_yield();
    CHECK_EQ(ox_mutex_lock(&k->p), 0); /* the waiter released it */
    atomic_store(&k->seen_poisoned, ox_mutex_is_poisoned(&k->p));
    atomic_store(&k->stage, 2);
    ox_condvar_notify_all(&k->cv);
    ox_mutex_unlock(&k->p);
    return NULL;
}

static void wait_on_p_then_unlock(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->c), 0); /* one of the cleanup's own above */
    atomic_store(&k->stage, 1);
    while (atomic_load(&k->stage) != 2)
        CHECK_EQ(ox_condvar_wait(&k->cv, &k->p), 0);
    ox_mutex_unlock(&k->c);
    ox_mutex_unlock(&k->p);
}

static void *p_then_panic_wait(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->p), 0);
    ox_cleanup_push(wait_on_p_then_unlock, k);
    ox_panic("wait in the cleanup");
}

OX_TEST(break63_condvar_wait_in_a_cleanup_on_a_pre_panic_mutex)
{
    struct k k = {.p = OX_MUTEX_INIT, .c = OX_MUTEX_INIT, .cv = OX_CONDVAR_INIT};
    ox_join_handle h = ox_test_spawn_named("notifier", notifier, &k);
    CHECK_EQ(ox_catch_unwind(p_then_panic_wait, &k, NULL, NULL), OX_EPANICKED);
    ox_test_join(&h);
    CHECK_EQ(atomic_load(&k.seen_poisoned), 0); /* as Rust, during the wait */
    CHECK(ox_mutex_is_poisoned(&k.p));
    CHECK(!ox_mutex_is_poisoned(&k.c));
    CHECK_UNWOUND();
}

/* The cleanup's own mutex waited on, while the pre-panic one is held. */
static void *notifier_c(void *arg)
{
    struct k *k = arg;
    while (atomic_load(&k->stage) == 0)
        ox_thread_yield();
    CHECK_EQ(ox_mutex_lock(&k->c), 0);
    atomic_store(&k->stage, 2);
    ox_condvar_notify_all(&k->cv);
    ox_mutex_unlock(&k->c);
    return NULL;
}

static void wait_on_c(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->c), 0);
    CHECK_EQ(ox_mutex_lock(&k->c2), 0);
    atomic_store(&k->stage, 1);
    while (atomic_load(&k->stage) != 2)
        CHECK_EQ(ox_condvar_wait(&k->cv, &k->c), 0); /* c under c2 */
    ox_mutex_unlock(&k->c);                          /* not on top: slow path, above the barrier */
    ox_mutex_unlock(&k->p);                          /* below the barrier */
    ox_mutex_unlock(&k->c2);
}

static void *p_then_panic_wait_c(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->p), 0);
    ox_cleanup_push(wait_on_c, k);
    ox_panic("wait on the cleanup's own mutex");
}

OX_TEST(break63_condvar_wait_in_a_cleanup_on_its_own_mutex)
{
    struct k k = {
        .p = OX_MUTEX_INIT, .c = OX_MUTEX_INIT, .c2 = OX_MUTEX_INIT, .cv = OX_CONDVAR_INIT};
    ox_join_handle h = ox_test_spawn_named("notifier", notifier_c, &k);
    CHECK_EQ(ox_catch_unwind(p_then_panic_wait_c, &k, NULL, NULL), OX_EPANICKED);
    ox_test_join(&h);
    CHECK(ox_mutex_is_poisoned(&k.p));
    CHECK(!ox_mutex_is_poisoned(&k.c));
    CHECK(!ox_mutex_is_poisoned(&k.c2));
    CHECK_UNWOUND();
}

/* ---- rwlock: dispersed reader, downgrade, either-mode unlock ---- */
static void read_unlock_l(void *arg)
{
    ox_rwlock_read_unlock(&((struct k *)arg)->l);
}

static void *dispersed_read_then_panic(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_rwlock_read(&k->l), 0);
    CHECK_EQ(ox_test_rwlock_count(&k->l), 0u); /* in a slot */
    CHECK_EQ(ox_mutex_lock(&k->p), 0);         /* another entry between */
    ox_cleanup_push(read_unlock_l, k);
    ox_panic("dispersed reader");
}

OX_TEST(break63_dispersed_reader_unlocked_in_a_cleanup_is_released_unpoisoned)
{
    struct k k = {.p = OX_MUTEX_INIT, .l = OX_RWLOCK_INIT};
    ox_test_rwlock_disperse(&k.l);
    CHECK_EQ(ox_catch_unwind(dispersed_read_then_panic, &k, NULL, NULL), OX_EPANICKED);
    CHECK(!ox_rwlock_is_poisoned(&k.l));
    CHECK(ox_mutex_is_poisoned(&k.p)); /* released by the unwind */
    CHECK_EQ(ox_rwlock_try_write(&k.l), 0);
    ox_rwlock_write_unlock(&k.l);
    CHECK_UNWOUND();
}

static void downgrade_then_unlock(void *arg)
{
    struct k *k = arg;
    ox_rwlock_downgrade(&k->l);
    CHECK_EQ(ox_rwlock_read(&k->l), 0); /* a second read, above the barrier */
    ox_rwlock_unlock(&k->l);
    ox_rwlock_read_unlock(&k->l);
}

static void *write_then_panic_downgrade(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_rwlock_write(&k->l), 0);
    ox_cleanup_push(downgrade_then_unlock, k);
    ox_panic("downgrade in the cleanup");
}

/* Rust: RwLockWriteGuard::downgrade forgets the write guard (no poison.done),
 * and read guards never poison: not poisoned. oxide agrees. */
OX_TEST(break63_downgrade_in_a_cleanup_does_not_poison_as_rust)
{
    struct k k = {.l = OX_RWLOCK_INIT};
    CHECK_EQ(ox_catch_unwind(write_then_panic_downgrade, &k, NULL, NULL), OX_EPANICKED);
    CHECK(!ox_rwlock_is_poisoned(&k.l));
    CHECK_EQ(ox_rwlock_try_write(&k.l), 0);
    ox_rwlock_write_unlock(&k.l);
    CHECK_UNWOUND();
}

/* ---- nested catch in a cleanup, returning normally ---- */
static void *inner_takes_c_and_unlocks_p(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->c), 0);
    ox_mutex_unlock(&k->p); /* level L+1 frame, p below the barrier */
    return NULL;
}

static void nested_catch_cleanup(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_catch_unwind(inner_takes_c_and_unlocks_p, k, NULL, NULL), 0);
    CHECK(ox_thread_panicking());
    ox_mutex_unlock(&k->c); /* folded to the cleanup's level, above the barrier */
}

static void *p_then_panic_nested(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->p), 0);
    ox_cleanup_push(nested_catch_cleanup, k);
    ox_panic("nested catch in the cleanup");
}

OX_TEST(break63_nested_catch_in_a_cleanup)
{
    struct k k = {.p = OX_MUTEX_INIT, .c = OX_MUTEX_INIT};
    CHECK_EQ(ox_catch_unwind(p_then_panic_nested, &k, NULL, NULL), OX_EPANICKED);
    CHECK(ox_mutex_is_poisoned(&k.p));
    CHECK(!ox_mutex_is_poisoned(&k.c));
    CHECK_UNWOUND();
}

/* ---- a cleanup that pushes its own cleanup, popped or not ---- */
static void unlock_p(void *arg)
{
    ox_mutex_unlock(&((struct k *)arg)->p);
}

static void push_unlock_p_and_leave(void *arg)
{
    ox_cleanup_push(unlock_p, arg);
}

static void push_unlock_p_and_pop(void *arg)
{
    ox_cleanup_push(unlock_p, arg);
    ox_cleanup_pop(true);
}

static void *p_then_panic_push(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->p), 0);
    ox_cleanup_push(atomic_load(&k->stage) ? push_unlock_p_and_pop : push_unlock_p_and_leave, k);
    ox_panic("cleanup pushes a cleanup");
}

OX_TEST(break63_cleanup_pushes_a_cleanup_that_unlocks_a_pre_panic_lock)
{
    for (int pop = 0; pop < 2; pop++) {
        struct k k = {.p = OX_MUTEX_INIT};
        atomic_store(&k.stage, pop);
        CHECK_EQ(ox_catch_unwind(p_then_panic_push, &k, NULL, NULL), OX_EPANICKED);
        CHECK(ox_mutex_is_poisoned(&k.p)); /* Rust: made before, dropped panicking */
        CHECK_EQ(ox_mutex_try_lock(&k.p), OX_EPOISONED);
        ox_mutex_unlock(&k.p);
        CHECK_UNWOUND();
    }
}

/* ---- many locks: the record grows while the barrier is in it ---- */
enum { MANY = 40 };
struct many {
    ox_mutex pre[MANY];
    ox_mutex own[MANY];
    ox_rwlock wpre[4];
};

static void unlock_many(void *arg)
{
    struct many *m = arg;
    uint32_t x = 12345;
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(ox_mutex_lock(&m->own[i]), 0);
    /* interleave: unlock pre and own in a scrambled order */
    int order_pre[MANY], order_own[MANY];
    for (int i = 0; i < MANY; i++)
        order_pre[i] = order_own[i] = i;
    for (int i = MANY - 1; i > 0; i--) {
        int j = (int)(ox_test_rand(&x) % (uint32_t)(i + 1)), t = order_pre[i];
        order_pre[i] = order_pre[j];
        order_pre[j] = t;
        j = (int)(ox_test_rand(&x) % (uint32_t)(i + 1));
        t = order_own[i];
        order_own[i] = order_own[j];
        order_own[j] = t;
    }
    for (int i = 0; i < MANY; i++) {
        ox_mutex_unlock(&m->own[order_own[i]]);
        ox_mutex_unlock(&m->pre[order_pre[i]]);
    }
    for (int i = 0; i < 4; i++)
        ox_rwlock_unlock(&m->wpre[i]);
}

static void *many_then_panic(void *arg)
{
    struct many *m = arg;
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(ox_mutex_lock(&m->pre[i]), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_rwlock_write(&m->wpre[i]), 0);
    ox_cleanup_push(unlock_many, m);
    ox_panic("many");
}

OX_TEST(break63_many_locks_scrambled_unlocks_in_a_cleanup)
{
    static struct many m; /* zero: valid */
    CHECK_EQ(ox_catch_unwind(many_then_panic, &m, NULL, NULL), OX_EPANICKED);
    for (int i = 0; i < MANY; i++) {
        CHECK(ox_mutex_is_poisoned(&m.pre[i]));
        CHECK(!ox_mutex_is_poisoned(&m.own[i]));
    }
    for (int i = 0; i < 4; i++)
        CHECK(ox_rwlock_is_poisoned(&m.wpre[i]));
    CHECK_UNWOUND();
}

/* ---- tasks: a 4-entry inline record, moving between workers ---- */
struct tk {
    ox_mutex pre[3];
    ox_mutex own[3];
};

static void task_cleanup(void *arg)
{
    struct tk *t = arg;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(ox_mutex_lock(&t->own[i]), 0); /* grows past 4 */
    for (int r = 0; r < 6; r++) {
        if (r & 1)
            ox_task_yield();
        else
            CHECK_EQ(ox_task_sleep(OX_MICROS(30)), 0);
    }
    ox_mutex_unlock(&t->pre[1]);
    ox_mutex_unlock(&t->own[1]);
    CHECK_EQ(ox_task_sleep(OX_MICROS(30)), 0);
    ox_mutex_unlock(&t->own[2]);
    ox_mutex_unlock(&t->pre[0]);
    ox_task_yield();
    ox_mutex_unlock(&t->own[0]);
    ox_mutex_unlock(&t->pre[2]);
}

static void *task_body(void *arg)
{
    struct tk *t = arg;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(ox_mutex_lock(&t->pre[i]), 0);
    ox_cleanup_push(task_cleanup, t); /* the 4th entry: inline record full */
    ox_panic("task");
}

static void *task_checks(void *arg)
{
    (void)arg;
    CHECK_UNWOUND();
    return NULL;
}

OX_TEST(break63_tasks_full_inline_record_moving_cleanup)
{
    enum { TASKS = 16 };
    static struct tk t[TASKS];
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h[TASKS];
    for (int i = 0; i < TASKS; i++) {
        t[i] = (struct tk){0};
        h[i] = ox_test_spawn_on(rt, task_body, &t[i]);
    }
    for (int i = 0; i < TASKS; i++) {
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), OX_EPANICKED);
        for (int j = 0; j < 3; j++) {
            CHECK(ox_mutex_is_poisoned(&t[i].pre[j]));
            CHECK(!ox_mutex_is_poisoned(&t[i].own[j]));
        }
    }
    for (int i = 0; i < TASKS; i++)
        h[i] = ox_test_spawn_on(rt, task_checks, NULL);
    for (int i = 0; i < TASKS; i++)
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}

/* ---- try_lock / timeout / try_write in a cleanup; lockdep on ---- */
static void try_variants(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_mutex_try_lock(&k->p), OX_EBUSY); /* held below the barrier */
    CHECK_EQ(ox_mutex_try_lock(&k->c), 0);
    CHECK_EQ(ox_mutex_lock_timeout(&k->c2, OX_MILLIS(100)), 0);
    CHECK_EQ(ox_rwlock_try_write(&k->l), 0);
    ox_mutex_unlock(&k->c);
    ox_mutex_unlock(&k->p);
    ox_rwlock_write_unlock(&k->l);
    ox_mutex_unlock(&k->c2);
}

static void *p_then_panic_try(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->p), 0);
    ox_cleanup_push(try_variants, k);
    ox_panic("try variants");
}

OX_TEST(break63_try_and_timeout_locks_in_a_cleanup_with_lockdep)
{
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    struct k k = {.p = OX_MUTEX_INIT, .c = OX_MUTEX_INIT, .c2 = OX_MUTEX_INIT, .l = OX_RWLOCK_INIT};
    CHECK_EQ(ox_catch_unwind(p_then_panic_try, &k, NULL, NULL), OX_EPANICKED);
    CHECK(ox_mutex_is_poisoned(&k.p));
    CHECK(!ox_mutex_is_poisoned(&k.c));
    CHECK(!ox_mutex_is_poisoned(&k.c2));
    CHECK(!ox_rwlock_is_poisoned(&k.l));
    CHECK_EQ(ox_lockdep_mode_get(), OX_LOCKDEP_REPORT); /* no report */
    CHECK_UNWOUND();
}

/* ---- a pre-panic lock from an outer catch frame, two frames deep ---- */
static void *inner_push_then_panic(void *arg)
{
    ox_cleanup_push(unlock_p, arg);
    ox_panic("inner");
}

static void *outer_locks_and_catches(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->c), 0);
    CHECK_EQ(ox_catch_unwind(inner_push_then_panic, k, NULL, NULL), OX_EPANICKED);
    CHECK(!ox_thread_panicking());
    ox_mutex_unlock(&k->c); /* after the landing: no barrier, not panicking */
    return NULL;
}

OX_TEST(break63_lock_held_across_an_inner_catch_is_not_poisoned_after_landing)
{
    struct k k = {.p = OX_MUTEX_INIT, .c = OX_MUTEX_INIT};
    CHECK_EQ(ox_mutex_lock(&k.p), 0);
    CHECK_EQ(ox_catch_unwind(outer_locks_and_catches, &k, NULL, NULL), 0);
    CHECK(ox_mutex_is_poisoned(&k.p));
    CHECK(!ox_mutex_is_poisoned(&k.c));
    ox_mutex_clear_poison(&k.p);
    CHECK_UNWOUND();
}

/* ---- the blocked-thread dump of a thread blocked inside a panic cleanup:
 * the barrier is skipped, the pre-panic lock is listed. ---- */
static struct k dump_k = {.p = OX_MUTEX_INIT, .c = OX_MUTEX_INIT};

static void lock_c_blocks(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->c), 0); /* main holds it: blocks */
    ox_mutex_unlock(&k->c);
    ox_mutex_unlock(&k->p);
}

static void *p_then_panic_block(void *arg)
{
    struct k *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->p), 0);
    ox_cleanup_push(lock_c_blocks, k);
    ox_panic("blocks in the cleanup");
}

static void *thread_catches(void *arg)
{
    CHECK_EQ(ox_catch_unwind(p_then_panic_block, arg, NULL, NULL), OX_EPANICKED);
    CHECK_UNWOUND();
    return NULL;
}

OX_TEST_OPTS(break63_blocked_dump_of_a_thread_blocked_in_a_panic_cleanup, .timeout_s = 30)
{
    CHECK_EQ(ox_mutex_lock(&dump_k.c), 0);
    ox_join_handle h = ox_test_spawn_named("cleaner", thread_catches, &dump_k);
    ox_test_wait_blocked_on(&dump_k.c, 1);
    int count;
    char *text = ox_test_dump_blocked(&count);
    CHECK(count >= 1);
    char want[64];
    snprintf(want, sizeof want, "holding mutex %p", (void *)&dump_k.p);
    CHECK_CONTAINS(text, want);
    free(text);
    ox_mutex_unlock(&dump_k.c);
    ox_test_join(&h);
    CHECK(ox_mutex_is_poisoned(&dump_k.p));
    CHECK(!ox_mutex_is_poisoned(&dump_k.c));
}

/* ---- tasks: condvar waits (timing out) in a cleanup, on the pre-panic
 * mutex, with one of the cleanup's own mutexes held, moving workers ---- */
struct tcv {
    ox_mutex p, c;
    ox_condvar cv;
};

static void task_cv_cleanup(void *arg)
{
    struct tcv *t = arg;
    CHECK_EQ(ox_mutex_lock(&t->c), 0);
    for (int i = 0; i < 5; i++) {
        int rc = ox_condvar_wait_timeout(&t->cv, &t->p, OX_MICROS(40));
        CHECK(rc == OX_ETIMEDOUT || rc == 0);
        ox_task_yield();
    }
    ox_mutex_unlock(&t->c);
    ox_mutex_unlock(&t->p);
}

static void *task_cv_body(void *arg)
{
    struct tcv *t = arg;
    CHECK_EQ(ox_mutex_lock(&t->p), 0);
    ox_cleanup_push(task_cv_cleanup, t);
    ox_panic("task condvar cleanup");
}

OX_TEST_OPTS(break63_tasks_condvar_wait_in_a_cleanup, .timeout_s = 60)
{
    enum { TASKS = 12 };
    static struct tcv t[TASKS];
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h[TASKS];
    for (int i = 0; i < TASKS; i++) {
        t[i] = (struct tcv){.p = OX_MUTEX_INIT, .c = OX_MUTEX_INIT, .cv = OX_CONDVAR_INIT};
        h[i] = ox_test_spawn_on(rt, task_cv_body, &t[i]);
    }
    for (int i = 0; i < TASKS; i++) {
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), OX_EPANICKED);
        CHECK(ox_mutex_is_poisoned(&t[i].p));
        CHECK(!ox_mutex_is_poisoned(&t[i].c));
    }
    for (int i = 0; i < TASKS; i++)
        h[i] = ox_test_spawn_on(rt, task_checks, NULL);
    for (int i = 0; i < TASKS; i++)
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}
