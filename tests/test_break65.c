/* test_break65.c - helper-65's attacks on b7746a7 (ox__cleanup_pop_own
 * after a user callback) and b674692 (the payload of a panic that reached
 * the top of a thread, dropped while still panicking). Every test states
 * the Rust-like behaviour.
 *
 * b7746a7 held: no false positive, and no misuse got past the check.
 * b674692 broke four, now fixed by dropping that payload not panicking,
 * under a catch frame that aborts only if a panic escapes the drop:
 *   break65_payload_drop_that_catches_its_own_panic_exits_101
 *   break65_payload_drop_catching_via_lazy_tls_init_panic_exits_101
 *   break65_payload_drop_sees_the_thread_not_panicking
 *   break65_payload_drop_panic_runs_the_hook_then_aborts
 * Older bugs it found, fixed with them: a join whose payload's drop
 * panicked left the handle live (the payload is now handed on last), and
 * ox_panic_payload_free leaked the payload's memory when the drop
 * panicked (it now frees that first):
 *   break65_thread_join_whose_payload_drop_panics_spends_the_handle
 *   break65_caught_panic_whose_payload_drop_panics_leaks_nothing (ASan)
 *   break65_joined_payload_whose_drop_panics_is_an_ordinary_panic (ASan)
 *   break65_joined_task_payload_whose_drop_panics_is_an_ordinary_panic (ASan)
 */
#include "oxide/arc.h"
#include "oxide/broadcast.h"
#include "oxide/chan.h"
#include "oxide/condvar.h"
#include "oxide/mutex.h"
#include "oxide/panic.h"
#include "oxide/task.h"
#include "oxide/tls.h"
#include "oxide/watch.h"

#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static _Atomic int ran;
static _Atomic int destroyed;

static void count_cleanup(void *arg)
{
    (void)arg;
    ran++;
}

static void *panic_with_cleanup(void *arg)
{
    ox_cleanup_push(count_cleanup, arg);
    ox_panic("inner panic");
    return NULL;
}

/* Catches a panic of its own, with a cleanup inside the caught region. */
static void catch_own_panic(void)
{
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(panic_with_cleanup, NULL, NULL, &p), OX_EPANICKED);
    CHECK(p != NULL);
    ox_panic_payload_free(p);
}

/* ======================= b7746a7: false positives ======================= */

/* ---- thread-local initialisers ---- */

static void init_catching(int *v)
{
    catch_own_panic();
    *v = 7;
}
OX_THREAD_LOCAL(tls_catching, int, init_catching, NULL);

OX_TEST(break65_tls_init_that_catches_its_own_panic_is_fine)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    CHECK_EQ(*OX_TLS_GET(tls_catching), 7);
    CHECK_EQ(ran, 1);
    CHECK_UNWOUND();
}

static _Atomic int panicky_inits;
static void init_panicking_once(int *v)
{
    ox_cleanup_push(count_cleanup, NULL);
    if (panicky_inits++ == 0)
        ox_panic("first init fails");
    ox_cleanup_pop(false);
    *v = 9;
}
OX_THREAD_LOCAL(tls_panicky, int, init_panicking_once, NULL);

static void *get_panicky(void *arg)
{
    (void)arg;
    return OX_TLS_GET(tls_panicky);
}

OX_TEST(break65_tls_init_that_panics_propagates_and_reruns)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    CHECK_EQ(ox_catch_unwind(get_panicky, NULL, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(ran, 1); /* the init's own cleanup ran, no abort */
    CHECK_UNWOUND();
    CHECK_EQ(*OX_TLS_GET(tls_panicky), 9);
    CHECK_EQ(panicky_inits, 2);
    CHECK_UNWOUND();
}

static void init_c(int *v)
{
    ox_cleanup_push(count_cleanup, NULL);
    *v = 3;
    ox_cleanup_pop(true);
}
OX_THREAD_LOCAL(tls_c, int, init_c, NULL);
static void init_b(int *v)
{
    *v = *OX_TLS_GET(tls_c) * 10;
}
OX_THREAD_LOCAL(tls_b, int, init_b, NULL);
static void init_a(int *v)
{
    ox_cleanup_push(count_cleanup, NULL);
    *v = *OX_TLS_GET(tls_b) + 1;
    ox_cleanup_pop(true);
}
OX_THREAD_LOCAL(tls_a, int, init_a, NULL);

OX_TEST(break65_nested_tls_inits_each_with_cleanups)
{
    CHECK_EQ(*OX_TLS_GET(tls_a), 31);
    CHECK_EQ(ran, 2);
    CHECK_UNWOUND();
}

static void init_in_cleanup(int *v)
{
    CHECK(ox_thread_panicking());
    *v = 42;
}
OX_THREAD_LOCAL(tls_in_cleanup, int, init_in_cleanup, NULL);

static void cleanup_touching_tls(void *arg)
{
    *(int *)arg = *OX_TLS_GET(tls_in_cleanup);
}

static void *panic_with_tls_cleanup(void *arg)
{
    ox_cleanup_push(cleanup_touching_tls, arg);
    ox_panic("outer");
    return NULL;
}

OX_TEST(break65_tls_first_touched_in_a_panic_cleanup)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    int got = 0;
    CHECK_EQ(ox_catch_unwind(panic_with_tls_cleanup, &got, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(got, 42);
    CHECK_UNWOUND();
}

static void init_in_hook(int *v)
{
    ox_cleanup_push(count_cleanup, NULL);
    *v = 5;
    ox_cleanup_pop(true);
}
OX_THREAD_LOCAL(tls_in_hook, int, init_in_hook, NULL);
static _Atomic int hook_saw;
static void hook_touching_tls(const ox_panic_payload *p)
{
    (void)p;
    hook_saw = *OX_TLS_GET(tls_in_hook);
}

static void *just_panic(void *arg)
{
    (void)arg;
    ox_panic("plain");
    return NULL;
}

OX_TEST(break65_tls_first_touched_in_the_hook)
{
    ox_panic_set_hook(hook_touching_tls);
    CHECK_EQ(ox_catch_unwind(just_panic, NULL, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(hook_saw, 5);
    CHECK_EQ(ran, 1);
    CHECK_UNWOUND();
}

/* ---- Arc drops ---- */

static void leaf_drop(void *payload)
{
    (void)payload;
    destroyed++;
}

static void drop_inner_arc(void *payload)
{
    void **inner = payload;
    ox_cleanup_push(count_cleanup, NULL);
    if (*inner)
        ox_arc_drop(*inner);
    ox_cleanup_pop(true);
    destroyed++;
}

OX_TEST(break65_arc_drop_that_drops_arcs_nested)
{
    void **a = ox_arc_new(sizeof(void *), drop_inner_arc);
    void **b = ox_arc_new(sizeof(void *), drop_inner_arc);
    int *c = ox_arc_new(sizeof(int), leaf_drop);
    *b = c;
    *a = b;
    ox_arc_drop(a);
    CHECK_EQ(destroyed, 3);
    CHECK_EQ(ran, 2);
    CHECK_UNWOUND();
}

static void drop_panicking(void *payload)
{
    (void)payload;
    destroyed++;
    ox_panic("drop panics");
}

static void *drop_arc(void *p)
{
    ox_arc_drop(p);
    return NULL;
}

OX_TEST(break65_arc_drop_that_panics_propagates_and_frees)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    int *p = ox_arc_new(sizeof(int), drop_panicking);
    ox_weak *w = ox_arc_downgrade(p);
    CHECK_EQ(ox_catch_unwind(drop_arc, p, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(destroyed, 1);
    CHECK_EQ(ox_weak_strong_count(w), 0u);
    ox_weak_drop(w); /* frees the block: ASan checks nothing leaks */
    CHECK_UNWOUND();
}

static void drop_catching(void *payload)
{
    (void)payload;
    catch_own_panic();
    destroyed++;
}

static void cleanup_dropping_arc(void *p)
{
    ox_arc_drop(p);
}

static void *panic_dropping_arc(void *p)
{
    ox_cleanup_push(cleanup_dropping_arc, p);
    ox_panic("outer");
    return NULL;
}

OX_TEST(break65_arc_dropped_in_a_panic_cleanup)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    void **a = ox_arc_new(sizeof(void *), drop_inner_arc);
    *a = ox_arc_new(sizeof(int), leaf_drop);
    CHECK_EQ(ox_catch_unwind(panic_dropping_arc, a, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(destroyed, 2);
    CHECK_UNWOUND();
}

OX_TEST(break65_arc_drop_that_catches_its_own_panic)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    int *p = ox_arc_new(sizeof(int), drop_catching);
    ox_arc_drop(p);
    CHECK_EQ(destroyed, 1);
    CHECK_EQ(ran, 1);
    CHECK_UNWOUND();
}

/* A drop that unlocks a mutex its caller locked before the drop, and
 * waits on a condvar (the lock's entry is taken and put back). */
static ox_mutex m = OX_MUTEX_INIT;
static ox_condvar cv = OX_CONDVAR_INIT;

static void drop_with_locks(void *payload)
{
    (void)payload;
    ox_cleanup_push(count_cleanup, NULL);
    CHECK_EQ(ox_condvar_wait_timeout(&cv, &m, 1000), OX_ETIMEDOUT);
    ox_cleanup_pop(true);
    ox_mutex_unlock(&m); /* taken by the caller */
    destroyed++;
}

OX_TEST(break65_arc_drop_that_waits_and_unlocks_the_callers_lock)
{
    CHECK_EQ(ox_mutex_lock(&m), 0);
    ox_cleanup_push(count_cleanup, NULL);
    int *p = ox_arc_new(sizeof(int), drop_with_locks);
    ox_arc_drop(p);
    CHECK_EQ(destroyed, 1);
    CHECK_EQ(ran, 1);
    ox_cleanup_pop(true);
    CHECK_EQ(ran, 2);
    CHECK_UNWOUND();
}

/* ---- channel destructors ---- */

static void elem_destroy(void *e)
{
    (void)e;
    destroyed++;
}

static ox_receiver *make_chan(size_t cap, void (*destroy)(void *), int n)
{
    ox_channel_options o = {.elem_size = sizeof(void *), .capacity = cap, .destroy = destroy};
    ox_sender *tx;
    ox_receiver *rx;
    CHECK(ox_channel_with(&o, &tx, &rx) == 0);
    for (int i = 0; i < n; i++) {
        void *v = NULL;
        CHECK(ox_sender_send(tx, &v) == 0);
    }
    ox_sender_drop(tx);
    return rx;
}

/* Each message carries a receiver of another channel, dropped by the
 * destructor (a nested discard with its own cleanup). */
static void destroy_dropping_rx(void *e)
{
    ox_receiver *inner = *(ox_receiver **)e;
    ox_cleanup_push(count_cleanup, NULL);
    if (inner)
        ox_receiver_drop(inner);
    ox_cleanup_pop(true);
    destroyed++;
}

static void nested_discard(size_t cap)
{
    ox_channel_options o = {
        .elem_size = sizeof(void *), .capacity = cap, .destroy = destroy_dropping_rx};
    ox_sender *tx;
    ox_receiver *rx;
    CHECK(ox_channel_with(&o, &tx, &rx) == 0);
    for (int i = 0; i < 2; i++) {
        ox_receiver *inner = make_chan(cap, elem_destroy, 3);
        CHECK(ox_sender_send(tx, &inner) == 0);
    }
    ox_receiver_drop(rx);
    ox_sender_drop(tx);
    CHECK_EQ(destroyed, 2 + 2 * 3);
    CHECK_EQ(ran, 2);
    CHECK_UNWOUND();
}

OX_TEST(break65_unbounded_destructor_drops_another_channel)
{
    nested_discard(OX_UNBOUNDED);
}

OX_TEST(break65_bounded_destructor_drops_another_channel)
{
    nested_discard(4);
}

static void cleanup_dropping_rx(void *rx)
{
    ox_receiver_drop(rx);
}

static void *panic_dropping_rx(void *rx)
{
    ox_cleanup_push(cleanup_dropping_rx, rx);
    ox_panic("outer");
    return NULL;
}

OX_TEST(break65_channel_dropped_in_a_panic_cleanup)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    CHECK_EQ(
        ox_catch_unwind(panic_dropping_rx, make_chan(OX_UNBOUNDED, elem_destroy, 3), NULL, NULL),
        OX_EPANICKED);
    CHECK_EQ(ox_catch_unwind(panic_dropping_rx, make_chan(8, elem_destroy, 3), NULL, NULL),
             OX_EPANICKED);
    CHECK_EQ(destroyed, 6);
    CHECK_UNWOUND();
}

static _Atomic int destroy_calls;
static void destroy_panicking_first(void *e)
{
    (void)e;
    if (destroy_calls++ == 0)
        ox_panic("destroy panics");
    destroyed++;
}

static void *drop_rx(void *rx)
{
    ox_receiver_drop(rx);
    return NULL;
}

static void panicking_destroy(size_t cap)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    CHECK_EQ(ox_catch_unwind(drop_rx, make_chan(cap, destroy_panicking_first, 4), NULL, NULL),
             OX_EPANICKED);
    CHECK_EQ(destroy_calls, 4);
    CHECK_EQ(destroyed, 3);
    CHECK_UNWOUND();
}

OX_TEST(break65_unbounded_destructor_that_panics_destroys_the_rest)
{
    panicking_destroy(OX_UNBOUNDED);
}

OX_TEST(break65_bounded_destructor_that_panics_destroys_the_rest)
{
    panicking_destroy(8);
}

static void destroy_catching(void *e)
{
    (void)e;
    catch_own_panic();
    destroyed++;
}

OX_TEST(break65_channel_destructor_that_catches_its_own_panic)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_receiver_drop(make_chan(OX_UNBOUNDED, destroy_catching, 2));
    ox_receiver_drop(make_chan(4, destroy_catching, 2));
    CHECK_EQ(destroyed, 4);
    CHECK_EQ(ran, 4);
    CHECK_UNWOUND();
}

/* ---- watch and broadcast ---- */

static void modify_catching(void *value, void *arg)
{
    (void)arg;
    catch_own_panic();
    *(int *)value += 1;
}

static void modify_panicking(void *value, void *arg)
{
    (void)arg;
    *(int *)value += 100;
    ox_panic("modify panics");
}

static void clone_catching(void *dst, const void *src)
{
    catch_own_panic();
    *(int *)dst = *(const int *)src;
}

struct modify_call {
    ox_watch_sender *tx;
};
static void *modify_panic(void *a)
{
    ox_watch_send_modify(((struct modify_call *)a)->tx, modify_panicking, NULL);
    return NULL;
}

OX_TEST(break65_watch_modify_and_clone_that_catch_or_panic)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    int init = 1;
    ox_watch_options o = {.elem_size = sizeof(int), .initial = &init, .clone = clone_catching};
    ox_watch_sender *tx;
    ox_watch_receiver *rx;
    CHECK(ox_watch_with(&o, &tx, &rx) == 0);
    ox_watch_send_modify(tx, modify_catching, NULL);
    int out = 0;
    ox_watch_borrow(rx, &out);
    CHECK_EQ(out, 2);
    CHECK_EQ(ran, 2);
    struct modify_call mc = {tx};
    CHECK_EQ(ox_catch_unwind(modify_panic, &mc, NULL, NULL), OX_EPANICKED);
    ox_watch_borrow(rx, &out); /* the lock was released as the panic left */
    CHECK_EQ(out, 102);
    CHECK_UNWOUND();
    ox_watch_receiver_drop(rx);
    ox_watch_sender_drop(tx);
}

OX_TEST(break65_broadcast_clone_that_catches_its_own_panic)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_broadcast_options o = {
        .elem_size = sizeof(int), .capacity = 4, .clone = clone_catching, .destroy = elem_destroy};
    ox_broadcast_sender *tx;
    ox_broadcast_receiver *rx;
    CHECK(ox_broadcast_with(&o, &tx, &rx) == 0);
    ox_broadcast_receiver *rx2 = ox_broadcast_subscribe(tx); /* so that rx clones */
    int v = 11, out = 0;
    CHECK(ox_broadcast_send(tx, &v) == 0);
    CHECK(ox_broadcast_send(tx, &v) == 0);
    CHECK(ox_broadcast_recv(rx, &out, NULL) == 0);
    CHECK_EQ(out, 11);
    CHECK_EQ(ran, 1);
    ox_broadcast_receiver_drop(rx);
    ox_broadcast_receiver_drop(rx2); /* both messages now unread by anyone: destroyed */
    ox_broadcast_sender_drop(tx);
    CHECK_EQ(destroyed, 2);
    CHECK_UNWOUND();
}

/* ---- tasks: inits and drops that yield, and may move worker ---- */

static void local_init_yielding(long *v)
{
    ox_cleanup_push(count_cleanup, NULL);
    for (int i = 0; i < 5; i++)
        ox_task_yield();
    ox_cleanup_pop(true);
    *v = 77;
}
OX_TASK_LOCAL(yielding_local, long, local_init_yielding, NULL);

static void drop_yielding(void *payload)
{
    (void)payload;
    ox_cleanup_push(count_cleanup, NULL);
    for (int i = 0; i < 5; i++)
        ox_task_yield();
    ox_cleanup_pop(true);
    destroyed++;
}

static void *task_body(void *arg)
{
    (void)arg;
    CHECK_EQ(*OX_TASK_LOCAL_GET(yielding_local), 77);
    ox_arc_drop(ox_arc_new(sizeof(int), drop_yielding));
    CHECK_UNWOUND();
    return NULL;
}

OX_TEST(break65_task_local_init_and_arc_drop_that_yield)
{
    enum { TASKS = 16 };
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle hs[TASKS];
    for (int i = 0; i < TASKS; i++)
        hs[i] = ox_test_spawn_on(rt, task_body, NULL);
    for (int i = 0; i < TASKS; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    CHECK_EQ(ran, 2 * TASKS);
    CHECK_EQ(destroyed, TASKS);
}

static void local_init_panicking(long *v)
{
    (void)v;
    ox_task_yield();
    ox_panic("task-local init panics");
}
OX_TASK_LOCAL(panicking_local, long, local_init_panicking, NULL);

static void *task_touching_panicking_local(void *arg)
{
    (void)arg;
    (void)OX_TASK_LOCAL_GET(panicking_local);
    return NULL;
}

OX_TEST(break65_task_local_init_that_panics_is_an_ordinary_task_panic)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h = ox_test_spawn_on(rt, task_touching_panicking_local, NULL);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), OX_EPANICKED);
    ox_runtime_shutdown(rt);
}

/* ---- misuse that must still be caught ---- */

/* Pops oxide's entry, then pushes one of its own: the newest cleanup is
 * then not oxide's. */
static void init_swapping(int *v)
{
    *v = 1;
    ox_cleanup_pop(false);
    ox_cleanup_push(count_cleanup, v);
}
OX_THREAD_LOCAL(tls_swapping, int, init_swapping, NULL);

OX_TEST_OPTS(break65_tls_init_that_swaps_the_cleanup_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "returned with its cleanups unbalanced")
{
    (void)OX_TLS_GET(tls_swapping);
}

/* Pops oxide's entry from inside a nested catch region that then panics. */
static void *pop_then_panic(void *arg)
{
    (void)arg;
    ox_cleanup_pop(false);
    ox_panic("after the pop");
    return NULL;
}

static void drop_popping_in_catch(void *payload)
{
    (void)payload;
    CHECK_EQ(ox_catch_unwind(pop_then_panic, NULL, NULL, NULL), OX_EPANICKED);
}

OX_TEST_OPTS(break65_arc_drop_popping_oxides_cleanup_in_a_catch_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "returned with its cleanups unbalanced")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_cleanup_push(count_cleanup, NULL);
    ox_arc_drop(ox_arc_new(sizeof(int), drop_popping_in_catch));
}

/* A destructor run in a panic cleanup (above the barrier) that leaves a
 * cleanup pushed. */
static void destroy_leaving(void *e)
{
    (void)e;
    ox_cleanup_push(count_cleanup, NULL);
}

OX_TEST_OPTS(break65_destructor_leaving_a_cleanup_during_a_panic_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "returned with its cleanups unbalanced")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    (void)!ox_catch_unwind(panic_dropping_rx, make_chan(4, destroy_leaving, 1), NULL, NULL);
}

/* ======================= b674692: the payload's drop ======================= */

static void payload_drop_catching(void *value)
{
    (void)value;
    ox_panic_payload *p = NULL;
    int rc = ox_catch_unwind(just_panic, NULL, NULL, &p);
    ox_panic_payload_free(p);
    fprintf(stderr, "payload drop caught its panic: %s\n", rc == OX_EPANICKED ? "yes" : "no");
}

/* Rust: lang_start's catch_unwind(main).unwrap_or(101) drops the payload
 * after the panic has ended (panic count 0): a drop that catches a panic
 * of its own is fine, and the process exits with 101. */
OX_TEST_OPTS(break65_payload_drop_that_catches_its_own_panic_exits_101, .expect_exit = 101,
             .expect_stderr = "payload drop caught its panic: yes")
{
    static int value;
    ox_panic_any("int", &value, payload_drop_catching);
}

static _Atomic int lazy_inits;
static void init_panicking_first(int *v)
{
    if (lazy_inits++ == 0)
        ox_panic("lazy init fails");
    *v = 8;
}
OX_THREAD_LOCAL(tls_lazy, int, init_panicking_first, NULL);

static void *get_lazy(void *arg)
{
    (void)arg;
    return OX_TLS_GET(tls_lazy);
}

static void payload_drop_with_lazy(void *value)
{
    (void)value;
    int rc = ox_catch_unwind(get_lazy, NULL, NULL, NULL);
    fprintf(stderr, "payload drop: first get %s, then %d\n", rc == OX_EPANICKED ? "panicked" : "ok",
            *OX_TLS_GET(tls_lazy));
}

/* The same through a library-shaped path: a lazily initialised value
 * whose initialiser fails once, retried under a catch. */
OX_TEST_OPTS(break65_payload_drop_catching_via_lazy_tls_init_panic_exits_101, .expect_exit = 101,
             .expect_stderr = "payload drop: first get panicked, then 8")
{
    static int value;
    ox_panic_any("int", &value, payload_drop_with_lazy);
}

static void payload_drop_reporting_panicking(void *value)
{
    (void)value;
    fprintf(stderr, "in payload drop: panicking=%d\n", (int)ox_thread_panicking());
}

/* Rust: std::thread::panicking() is false in the drop of main's payload
 * (the panic was caught by lang_start; only then is the payload dropped).
 * oxide's own doc: "True while the calling thread is running panic
 * cleanups" - the payload's drop is not one. */
OX_TEST_OPTS(break65_payload_drop_sees_the_thread_not_panicking, .expect_exit = 101,
             .expect_stderr = "in payload drop: panicking=0")
{
    static int value;
    ox_panic_any("int", &value, payload_drop_reporting_panicking);
}

static _Atomic int hook_calls;
static void counting_hook(const ox_panic_payload *p)
{
    (void)p;
    fprintf(stderr, "hook call %d\n", ++hook_calls);
}

static void payload_drop_panics(void *value)
{
    (void)value;
    ox_panic("the payload's drop panics");
}

/* Rust: the drop's panic is an ordinary panic (count 0): the hook runs
 * for it, then lang_start's outer catch_unwind aborts with "fatal runtime
 * error: drop of the panic payload panicked". */
OX_TEST_OPTS(break65_payload_drop_panic_runs_the_hook_then_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "hook call 2")
{
    ox_panic_set_hook(counting_hook);
    static int value;
    ox_panic_any("int", &value, payload_drop_panics);
}

/* A drop that uses thread-locals, Arcs, locks and channels: fine. */
OX_THREAD_LOCAL(tls_in_payload_drop, int, init_in_hook, NULL);
static void payload_drop_busy(void *value)
{
    (void)value;
    int t = *OX_TLS_GET(tls_in_payload_drop);
    void **a = ox_arc_new(sizeof(void *), drop_inner_arc);
    *a = ox_arc_new(sizeof(int), leaf_drop);
    ox_arc_drop(a);
    ox_receiver_drop(make_chan(4, elem_destroy, 2));
    CHECK_EQ(ox_mutex_lock(&m), 0);
    ox_mutex_unlock(&m);
    CHECK(!ox_mutex_is_poisoned(&m));
    fprintf(stderr, "busy payload drop: tls=%d destroyed=%d\n", t, (int)destroyed);
}

OX_TEST_OPTS(break65_busy_payload_drop_at_main_top_exits_101, .expect_exit = 101,
             .expect_stderr = "busy payload drop: tls=5 destroyed=4")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    static int value;
    ox_panic_any("int", &value, payload_drop_busy);
}

/* ox_panic_resume at the top of main with a payload whose drop panics:
 * Rust's resume_unwind reaches lang_start the same way: abort. */
static void *panic_any_dropping(void *arg)
{
    (void)arg;
    static int value;
    ox_panic_any("int", &value, payload_drop_panics);
    return NULL;
}

OX_TEST_OPTS(break65_resume_at_main_top_with_panicking_drop_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "the drop of the panic payload that reached the top of the thread "
                              "panicked")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(panic_any_dropping, NULL, NULL, &p), OX_EPANICKED);
    ox_panic_resume(p);
}

/* A thread oxide started panics; the joiner drops the payload: an ordinary
 * panic in the joiner (Rust: JoinHandle::join returns Err(payload); its
 * drop that panics is a plain panic), caught here. */
static void *join_dropping(void *h)
{
    CHECK_EQ(ox_thread_join(h, NULL, NULL), OX_EPANICKED);
    return NULL;
}

OX_TEST(break65_joined_payload_whose_drop_panics_is_an_ordinary_panic)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_join_handle h = ox_thread_spawn(panic_any_dropping, NULL);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(join_dropping, &h, NULL, &p), OX_EPANICKED);
    CHECK(strstr(p->message, "the payload's drop panics") != NULL);
    ox_panic_payload_free(p);
    CHECK_UNWOUND();
}

static void *free_payload(void *p)
{
    ox_panic_payload_free(p);
    return NULL;
}

/* The same with a task. */
OX_TEST(break65_joined_task_payload_whose_drop_panics_is_an_ordinary_panic)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h = ox_test_spawn_on(rt, panic_any_dropping, NULL);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_task_join(&h, NULL, &p), OX_EPANICKED);
    ox_panic_payload *second = NULL;
    CHECK_EQ(ox_catch_unwind(free_payload, p, NULL, &second), OX_EPANICKED);
    ox_panic_payload_free(second);
    ox_runtime_shutdown(rt);
    CHECK_UNWOUND();
}

/* A foreign pthread's panic with no catch point and a panicking drop:
 * aborts (Rust: a panic escaping an extern "C" thread function aborts). */
static void *foreign(void *arg)
{
    (void)arg;
    static int value;
    ox_panic_any("int", &value, payload_drop_panics);
    return NULL;
}

OX_TEST_OPTS(break65_foreign_thread_panicking_payload_drop_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "the drop of the panic payload that reached the top")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, foreign, NULL), 0);
    pthread_join(t, NULL);
}

/* A panic in an atexit handler of the main thread (exiting): aborts. */
static void atexit_panics(void)
{
    static int value;
    ox_panic_any("int", &value, payload_drop_panics);
}

OX_TEST_OPTS(break65_atexit_panic_with_panicking_drop_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "the drop of the panic payload that reached the top")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    atexit(atexit_panics);
    (void)OX_TLS_GET(tls_c); /* arms oxide's own exit handler after ours: it runs first */
    exit(0);
}

/* A caught panic whose payload's drop panics, caught one level up: Rust's
 * Box<dyn Any> is still deallocated as that second panic unwinds; nothing
 * may leak (ASan). Pre-existing: ox_panic_payload_free returns through the
 * panic before free(message/thread_name/payload). */
static void *catch_and_drop(void *arg)
{
    (void)arg;
    (void)!ox_catch_unwind(panic_any_dropping, NULL, NULL, NULL); /* drops the payload */
    return NULL;
}

OX_TEST(break65_caught_panic_whose_payload_drop_panics_leaks_nothing)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(catch_and_drop, NULL, NULL, &p), OX_EPANICKED);
    ox_panic_payload_free(p);
    CHECK_UNWOUND();
}

/* Pre-existing (not these commits): ox_thread_join(h, NULL, NULL) frees
 * the payload inside ox__thread_collect, after the OS join but before it
 * marks the handle spent and drops the record. A drop that panics leaves
 * h live (a later join or drop would pthread_join/detach a thread already
 * joined) and leaks the record. Rust's join consumes the handle first and
 * hands the payload back; its drop panics in the caller. */
OX_TEST(break65_thread_join_whose_payload_drop_panics_spends_the_handle)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_join_handle h = ox_thread_spawn(panic_any_dropping, NULL);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(join_dropping, &h, NULL, &p), OX_EPANICKED);
    ox_panic_payload_free(p);
    CHECK(h.thread == NULL);
}
