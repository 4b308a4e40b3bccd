/* break64: the one-barrier-per-panic form (a310d00) against foreign
 * threads, the main thread's exit 101, ox_panic_resume, hooks that lock,
 * push and pop, Once/TLS in cleanups, scopes, tasks that are aborted. */
#include "helpers.h"
#include "oxide.h"
#include "runner.h"

#include "panic/unwind.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void quiet_hook(const ox_panic_payload *p)
{
    (void)p;
}

/* ---- a thread oxide did not start, record at inline capacity ---- */
struct fk {
    ox_mutex m;
    atomic_int count;
    atomic_int poisoned_in_cleanup;
    int ok;
};

static void count_cleanup(void *arg)
{
    struct fk *k = arg;
    atomic_fetch_add(&k->count, 1);
}

static void unlock_m_cleanup(void *arg)
{
    struct fk *k = arg;
    ox_mutex_unlock(&k->m);
    atomic_store(&k->poisoned_in_cleanup, ox_mutex_is_poisoned(&k->m));
}

static void *fk_body(void *arg)
{
    struct fk *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->m), 0);
    ox_cleanup_push(unlock_m_cleanup, k);
    while (ox_test_held_depth() < OX__UNWIND_INLINE)
        ox_cleanup_push(count_cleanup, k);
    ox_panic("foreign");
}

static void *foreign_thread(void *arg)
{
    struct fk *k = arg;
    for (int round = 0; round < 3; round++) {
        k->m = (ox_mutex)OX_MUTEX_INIT;
        atomic_store(&k->count, 0);
        CHECK_EQ(ox_catch_unwind(fk_body, k, NULL, NULL), OX_EPANICKED);
        CHECK_UNWOUND();
        CHECK_EQ(atomic_load(&k->count), OX__UNWIND_INLINE - 2);
        CHECK(atomic_load(&k->poisoned_in_cleanup));
        CHECK_EQ(ox_mutex_try_lock(&k->m), OX_EPOISONED);
        ox_mutex_unlock(&k->m);
        CHECK_UNWOUND();
    }
    k->ok = 1;
    return NULL;
}

OX_TEST(break64_foreign_pthread_catch_at_inline_capacity)
{
    ox_panic_set_hook(quiet_hook);
    static struct fk k;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, foreign_thread, &k), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK(k.ok);
}

static void *foreign_no_catch(void *arg)
{
    struct fk *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->m), 0);
    ox_cleanup_push(unlock_m_cleanup, k);
    ox_panic("foreign, uncaught");
}

OX_TEST_OPTS(break64_foreign_pthread_without_catch_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "no catch point")
{
    static struct fk k;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, foreign_no_catch, &k), 0);
    pthread_join(t, NULL);
}

/* ---- the main thread's exit 101, record at inline capacity ---- */
static struct fk main_k;

static void main_atexit(void)
{
    fprintf(stderr, "atexit depth=%u panicking=%d poisoned=%d count=%d\n", ox_test_held_depth(),
            ox_thread_panicking(), atomic_load(&main_k.poisoned_in_cleanup),
            atomic_load(&main_k.count));
}

OX_TEST_OPTS(break64_main_top_exit_101_at_inline_capacity, .expect_exit = 101,
             .expect_stderr = "atexit depth=0 panicking=0 poisoned=1 count=14")
{
    ox_panic_set_hook(quiet_hook);
    atexit(main_atexit);
    CHECK_EQ(ox_mutex_lock(&main_k.m), 0);
    ox_cleanup_push(unlock_m_cleanup, &main_k);
    while (ox_test_held_depth() < OX__UNWIND_INLINE)
        ox_cleanup_push(count_cleanup, &main_k);
    ox_panic("main gives up");
}

/* ---- ox_panic_resume ---- */
static void *just_panic(void *arg)
{
    (void)arg;
    ox_panic("first");
}

static ox_panic_payload *resume_payload;
static void *resume_body(void *arg)
{
    struct fk *k = arg;
    CHECK_EQ(ox_mutex_lock(&k->m), 0);
    ox_cleanup_push(unlock_m_cleanup, k);
    while (ox_test_held_depth() < OX__UNWIND_INLINE)
        ox_cleanup_push(count_cleanup, k);
    ox_panic_resume(resume_payload);
}

OX_TEST(break64_resume_poisons_and_leaves_no_barrier)
{
    ox_panic_set_hook(quiet_hook);
    static struct fk k;
    CHECK_EQ(ox_catch_unwind(just_panic, NULL, NULL, &resume_payload), OX_EPANICKED);
    CHECK_UNWOUND();
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(resume_body, &k, NULL, &p), OX_EPANICKED);
    CHECK(p == resume_payload);
    ox_panic_payload_free(p);
    CHECK_UNWOUND();
    CHECK(atomic_load(&k.poisoned_in_cleanup));
    CHECK_EQ(atomic_load(&k.count), OX__UNWIND_INLINE - 2);
}

/* ---- hook or cleanup popping when only the barrier is there ---- */
static void popping_hook(const ox_panic_payload *p)
{
    (void)p;
    ox_cleanup_pop(true);
}

OX_TEST_OPTS(break64_hook_cleanup_pop_with_only_the_barrier_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_cleanup_pop: no cleanup is pushed")
{
    ox_panic_set_hook(popping_hook);
    static ox_mutex m;
    CHECK_EQ(ox_mutex_lock(&m), 0);
    (void)!ox_catch_unwind(just_panic, NULL, NULL, NULL);
}

static void pop_false_cleanup(void *arg)
{
    (void)arg;
    ox_cleanup_pop(false);
}

static void *push_popper_and_panic(void *arg)
{
    (void)arg;
    ox_cleanup_push(pop_false_cleanup, NULL);
    ox_panic("x");
}

OX_TEST_OPTS(break64_cleanup_pop_with_only_the_barrier_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_cleanup_pop: no cleanup is pushed")
{
    ox_panic_set_hook(quiet_hook);
    (void)!ox_catch_unwind(push_popper_and_panic, NULL, NULL, NULL);
}

/* ---- a hook that locks, keeps, pushes, and unlocks a pre-panic lock ---- */
static struct hk {
    ox_mutex pre, hook_kept, hook_unlocked;
    ox_rwlock w;
    int order[8];
    int n;
    int pre_poisoned_in_hook;
} hk;

static void hk_hook_cleanup(void *arg)
{
    (void)arg;
    hk.order[hk.n++] = 1;
}

static void hk_region_cleanup(void *arg)
{
    (void)arg;
    hk.order[hk.n++] = 2;
    /* the hook's lock is released already (it lay above the barrier) */
    CHECK_EQ(ox_mutex_try_lock(&hk.hook_kept), 0);
    ox_mutex_unlock(&hk.hook_kept);
}

static void locking_hook(const ox_panic_payload *p)
{
    (void)p;
    CHECK(ox_thread_panicking());
    CHECK_EQ(ox_mutex_lock(&hk.hook_unlocked), 0);
    CHECK_EQ(ox_mutex_lock(&hk.hook_kept), 0);
    ox_mutex_unlock(&hk.pre); /* below the barrier: poisons */
    hk.pre_poisoned_in_hook = ox_mutex_is_poisoned(&hk.pre);
    ox_mutex_unlock(&hk.hook_unlocked);
    ox_cleanup_push(hk_hook_cleanup, NULL);
    ox_rwlock_write_unlock(&hk.w); /* below, under the hook's entries */
}

static void *hk_body(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_mutex_lock(&hk.pre), 0);
    CHECK_EQ(ox_rwlock_write(&hk.w), 0);
    ox_cleanup_push(hk_region_cleanup, NULL);
    ox_panic("hook locks");
}

OX_TEST(break64_hook_takes_keeps_pushes_and_unlocks)
{
    ox_panic_set_hook(locking_hook);
    CHECK_EQ(ox_catch_unwind(hk_body, NULL, NULL, NULL), OX_EPANICKED);
    ox_panic_set_hook(quiet_hook);
    CHECK_UNWOUND();
    CHECK_EQ(hk.n, 2);
    CHECK_EQ(hk.order[0], 1);
    CHECK_EQ(hk.order[1], 2);
    CHECK(hk.pre_poisoned_in_hook);
    CHECK(ox_mutex_is_poisoned(&hk.pre));
    CHECK(ox_rwlock_is_poisoned(&hk.w));
    CHECK(!ox_mutex_is_poisoned(&hk.hook_kept));
    CHECK(!ox_mutex_is_poisoned(&hk.hook_unlocked));
}

/* ---- Once and TLS initialisers run in a cleanup ---- */
static ox_once cl_once = OX_ONCE_INIT;
static ox_mutex cl_pre;
static int tls_inits;

static void tls_init(int *v)
{
    tls_inits++;
    CHECK(ox_thread_panicking());
    *v = 7;
}
OX_THREAD_LOCAL(cl_tls, int, tls_init, NULL);

static void once_fn(void *arg)
{
    (void)arg;
    CHECK_EQ(*OX_TLS_GET(cl_tls), 7);
    ox_mutex_unlock(&cl_pre); /* before the panic: poisons */
}

static void once_cleanup(void *arg)
{
    (void)arg;
    ox_once_call(&cl_once, once_fn, NULL);
}

static void *once_body(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_mutex_lock(&cl_pre), 0);
    ox_cleanup_push(once_cleanup, NULL);
    ox_panic("once");
}

static void *once_thread(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_catch_unwind(once_body, NULL, NULL, NULL), OX_EPANICKED);
    CHECK_UNWOUND();
    CHECK(ox_once_is_completed(&cl_once));
    CHECK(ox_mutex_is_poisoned(&cl_pre));
    CHECK_EQ(tls_inits, 1);
    return NULL;
}

OX_TEST(break64_once_and_tls_initialised_in_a_cleanup)
{
    ox_panic_set_hook(quiet_hook);
    ox_join_handle h = ox_thread_spawn(once_thread, NULL);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
}

/* ---- a Once initialiser that panics: poisoned, record empty ---- */
static ox_once p_once = OX_ONCE_INIT;
static void panicking_once_fn(void *arg)
{
    (void)arg;
    ox_panic("once init");
}
static void *p_once_body(void *arg)
{
    (void)arg;
    int rc = ox_mutex_lock(&cl_pre);
    CHECK(rc == 0 || rc == OX_EPOISONED);
    ox_once_call(&p_once, panicking_once_fn, NULL);
    return NULL;
}

OX_TEST(break64_once_initialiser_panics)
{
    ox_panic_set_hook(quiet_hook);
    cl_pre = (ox_mutex)OX_MUTEX_INIT;
    CHECK_EQ(ox_catch_unwind(p_once_body, NULL, NULL, NULL), OX_EPANICKED);
    CHECK_UNWOUND();
    CHECK(ox_mutex_is_poisoned(&cl_pre));
    CHECK_EQ(ox_catch_unwind(p_once_body, NULL, NULL, NULL), OX_EPANICKED); /* poisoned once */
    CHECK_UNWOUND();
}

/* ---- scope re-raise ---- */
static ox_mutex sc_m;
static int sc_poisoned_in_cleanup;
static void sc_cleanup(void *arg)
{
    (void)arg;
    ox_mutex_unlock(&sc_m);
    sc_poisoned_in_cleanup = ox_mutex_is_poisoned(&sc_m);
}
static void *sc_child(void *arg)
{
    (void)arg;
    ox_panic("child");
}
static void sc_scope_body(ox_scope *scope, void *arg)
{
    (void)arg;
    (void)ox_scope_spawn(scope, sc_child, NULL);
}
static void quiet_hook_cleanup_dummy(void *arg)
{
    (void)arg;
}
static void *sc_body(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_mutex_lock(&sc_m), 0);
    ox_cleanup_push(sc_cleanup, NULL);
    while (ox_test_held_depth() < OX__UNWIND_INLINE)
        ox_cleanup_push(quiet_hook_cleanup_dummy, NULL);
    ox_thread_scope(sc_scope_body, NULL);
    return NULL;
}

OX_TEST(break64_scope_reraise_poisons_at_inline_capacity)
{
    ox_panic_set_hook(quiet_hook);
    CHECK_EQ(ox_catch_unwind(sc_body, NULL, NULL, NULL), OX_EPANICKED);
    CHECK_UNWOUND();
    CHECK(sc_poisoned_in_cleanup);
}

/* ---- tasks: hook and cleanups that block; the task aborted meanwhile ---- */
struct ta {
    ox_mutex pre[2];
    ox_mutex own;
    atomic_int in_cleanup;
    atomic_int sleep_rc;
    atomic_int poisoned;
    atomic_int depth_after;
};

static void ta_cleanup(void *arg)
{
    struct ta *t = arg;
    CHECK_EQ(ox_mutex_lock(&t->own), 0);
    atomic_store(&t->in_cleanup, 1);
    int rc = 0;
    for (int i = 0; i < 200 && rc == 0; i++)
        rc = ox_task_sleep(OX_MICROS(200));
    atomic_store(&t->sleep_rc, rc);
    ox_task_yield();
    ox_mutex_unlock(&t->pre[0]);
    atomic_store(&t->poisoned, ox_mutex_is_poisoned(&t->pre[0]));
}

static void yielding_hook(const ox_panic_payload *p)
{
    (void)p;
    for (int i = 0; i < 3; i++)
        ox_task_yield();
}

static void *ta_inner(void *arg)
{
    struct ta *t = arg;
    CHECK_EQ(ox_mutex_lock(&t->pre[0]), 0);
    CHECK_EQ(ox_mutex_lock(&t->pre[1]), 0);
    ox_cleanup_push(ta_cleanup, t);
    /* the task's inline record (4) is full with the catch's nothing + 3 */
    ox_cleanup_push(quiet_hook_cleanup_dummy, NULL);
    ox_panic("task");
}

static void *ta_body(void *arg)
{
    struct ta *t = arg;
    int rc = ox_catch_unwind(ta_inner, t, NULL, NULL);
    atomic_store(&t->depth_after, (int)ox_test_held_depth() + (ox_thread_panicking() ? 100 : 0));
    return (void *)(intptr_t)rc;
}

OX_TEST_OPTS(break64_task_aborted_while_its_cleanup_sleeps, .timeout_s = 60)
{
    ox_panic_set_hook(yielding_hook);
    enum { TASKS = 8 };
    static struct ta t[TASKS];
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h[TASKS];
    for (int i = 0; i < TASKS; i++) {
        t[i] = (struct ta){0};
        atomic_store(&t[i].depth_after, -1);
        h[i] = ox_test_spawn_on(rt, ta_body, &t[i]);
    }
    for (int i = 0; i < TASKS; i++) {
        while (!atomic_load(&t[i].in_cleanup))
            ox_thread_yield();
        ox_task_abort(&h[i]);
    }
    for (int i = 0; i < TASKS; i++) {
        void *r = NULL;
        int rc = ox_task_join(&h[i], &r, NULL);
        CHECK(rc == 0 || rc == OX_ECANCELED);
        if (rc == 0)
            CHECK_EQ((intptr_t)r, OX_EPANICKED);
        CHECK_EQ(atomic_load(&t[i].depth_after), 0);
        CHECK(atomic_load(&t[i].poisoned));
        CHECK(ox_mutex_is_poisoned(&t[i].pre[1]));
        CHECK(!ox_mutex_is_poisoned(&t[i].own));
        CHECK_EQ(ox_mutex_try_lock(&t[i].own), 0);
        ox_mutex_unlock(&t[i].own);
    }
    ox_runtime_shutdown(rt);
    ox_panic_set_hook(quiet_hook);
}

/* ---- lockdep on, hook takes a lock in the opposite order ---- */
static ox_mutex ld_a, ld_b;
static void ld_hook(const ox_panic_payload *p)
{
    (void)p;
    CHECK_EQ(ox_mutex_lock(&ld_a), 0); /* b held (below the barrier), then a */
    ox_mutex_unlock(&ld_a);
    ox_mutex_unlock(&ld_b);
}
static void *ld_body(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_mutex_lock(&ld_b), 0);
    ox_panic("ld");
}
OX_TEST(break64_lockdep_hook_orders)
{
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_panic_set_hook(ld_hook);
    CHECK_EQ(ox_catch_unwind(ld_body, NULL, NULL, NULL), OX_EPANICKED);
    ox_panic_set_hook(quiet_hook);
    CHECK_UNWOUND();
    CHECK(ox_mutex_is_poisoned(&ld_b));
    CHECK(!ox_mutex_is_poisoned(&ld_a));
    CHECK_EQ(ox_lockdep_reports(), 0u);
}

/* ---- a channel's element destructor panics in the last receiver's drop;
 * the rest are destroyed in the channel's cleanup, one of them unlocking
 * a pre-panic mutex by hand ---- */
static ox_mutex ch_m;
static atomic_int ch_destroyed;
static int ch_poisoned_in_destroy;
static void ch_destroy(void *elem)
{
    int v = *(int *)elem;
    atomic_fetch_add(&ch_destroyed, 1);
    if (v == 0)
        ox_panic("destroy 0");
    if (v == 2) {
        CHECK(ox_thread_panicking());
        ox_mutex_unlock(&ch_m);
        ch_poisoned_in_destroy = ox_mutex_is_poisoned(&ch_m);
    }
}

static size_t ch_capacity;
static void *ch_body(void *arg)
{
    (void)arg;
    ox_channel_options o = {
        .elem_size = sizeof(int), .capacity = ch_capacity, .destroy = ch_destroy};
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel_with(&o, &tx, &rx), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(ox_sender_send(tx, &i), 0);
    CHECK_EQ(ox_mutex_lock(&ch_m), 0);
    while (ox_test_held_depth() < OX__UNWIND_INLINE - 1)
        ox_cleanup_push(quiet_hook_cleanup_dummy, NULL);
    ox_cleanup_push(quiet_hook_cleanup_dummy, NULL); /* 16: the barrier grows it */
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
    return NULL;
}

OX_TEST(break64_channel_destroy_panics_in_drop)
{
    ox_panic_set_hook(quiet_hook);
    size_t caps[] = {OX_UNBOUNDED, 8, 5};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        ch_capacity = caps[c];
        ch_m = (ox_mutex)OX_MUTEX_INIT;
        atomic_store(&ch_destroyed, 0);
        ch_poisoned_in_destroy = 0;
        CHECK_EQ(ox_catch_unwind(ch_body, NULL, NULL, NULL), OX_EPANICKED);
        CHECK_UNWOUND();
        CHECK_EQ(atomic_load(&ch_destroyed), 5);
        CHECK(ch_poisoned_in_destroy);
        CHECK_EQ(ox_mutex_try_lock(&ch_m), OX_EPOISONED);
        ox_mutex_unlock(&ch_m);
    }
}
