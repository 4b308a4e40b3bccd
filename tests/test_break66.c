/* test_break66.c - helper-66's attacks on f24f00b (a panic payload whose
 * drop panics: dropped not panicking under a catch frame, aborting where
 * Rust aborts; joins hand the payload out last). Every test states the
 * Rust-like behaviour.
 *
 * Failing at f24f00b, fixed by giving a thread's outcome its own owners
 * (the thread and its join handle, or the scope at its end; not
 * ox_thread_clone's references, as Rust's Packet), the last of which
 * drops an unjoined payload, the thread itself before its thread-locals
 * are destroyed:
 *   break66_detached_thread_panicking_drop_at_exit_hook_names_the_thread
 *   break66_detached_thread_drop_at_exit_runs_as_that_thread
 *   break66_detached_thread_drop_at_exit_sees_its_thread_locals
 *   break66_thread_clone_does_not_keep_the_unjoined_payload
 *   break66_thread_clone_kept_forever_still_aborts_at_the_threads_end
 *   break66_thread_scope_aborts_without_waiting_for_the_others
 * Left alone: a task scope still waits for its running tasks before it
 * drops a finished task's unjoined payload (and aborts if that drop
 * panics), where Rust would abort at once.
 * Everything else held.
 */
#include "oxide/chan.h"
#include "oxide/mutex.h"
#include "oxide/panic.h"
#include "oxide/task.h"
#include "oxide/thread.h"
#include "oxide/tls.h"

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A hook that names the thread the panic came from, and its message. */
static void naming_hook(const ox_panic_payload *p)
{
    fprintf(stderr, "[hook: thread '%s': %s]\n", p->thread_name ? p->thread_name : "<unnamed>",
            p->message ? p->message : "<any>");
}

/* Spins (yielding) until *flag is set, or fails the test with what after
 * `seconds`. Not a sleep for synchronisation: a bound on a wait for
 * something that must happen. */
static void wait_flag(_Atomic int *flag, double seconds, const char *what)
{
    ox_instant deadline = ox_instant_after((ox_nanos)(seconds * 1e9));
    while (!*flag) {
        if (ox_instant_now().ns > deadline.ns)
            ox_test_fail(__FILE__, __LINE__, "timed out waiting for: %s", what);
        ox_thread_yield();
    }
}

static void task_wait_flag(_Atomic int *flag)
{
    while (!*flag)
        ox_task_yield();
}

static void drop_panics(void *value)
{
    (void)value;
    ox_panic("the payload's drop panics");
}

static void *panic_with_a_panicking_drop(void *arg)
{
    (void)arg;
    static int value;
    ox_panic_any("int", &value, drop_panics);
}

/* ===================== a detached thread's own exit ===================== */

/* The handle is dropped while the thread still runs: the thread's own end
 * drops the record's last reference, and with it the payload. Rust: the
 * spawned thread's main drops its Packet right after the catch_unwind,
 * still as itself; a panic out of the result's drop aborts ("thread result
 * panicked on drop"). */
static _Atomic int go;

static void *wait_then_panic_with_a_panicking_drop(void *arg)
{
    (void)arg;
    while (!go)
        ox_thread_yield();
    static int value;
    ox_panic_any("int", &value, drop_panics);
}

static void detach_and_release(const char *name, void *(*fn)(void *))
{
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_name(&b, name);
    ox_join_handle h;
    CHECK_EQ(ox_thread_builder_spawn(&b, fn, NULL, &h), 0);
    ox_join_handle_drop(&h); /* before it finishes: its own end is the last owner */
    go = 1;
}

OX_TEST_OPTS(break66_detached_thread_panicking_drop_at_its_exit_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "thread exit: the payload of a thread that panicked and was "
                              "not joined panicked on drop")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    detach_and_release("b66-detached", wait_then_panic_with_a_panicking_drop);
    for (;;)
        ox_thread_park(); /* the abort ends the process */
}

/* The same, and the hook for the drop's panic names the thread it ran in:
 * Rust prints "thread 'b66-detached' panicked at ...: the payload's drop
 * panics" before the abort. */
OX_TEST_OPTS(break66_detached_thread_panicking_drop_at_exit_hook_names_the_thread,
             .expect_signal = SIGABRT,
             .expect_stderr = "[hook: thread 'b66-detached': the payload's drop panics]")
{
    ox_panic_set_hook(naming_hook);
    detach_and_release("b66-detached", wait_then_panic_with_a_panicking_drop);
    for (;;)
        ox_thread_park();
}

/* A drop that does not panic, run by the detached thread's own end: it
 * still runs as that thread (Rust: the spawned thread's main drops its
 * Packet right after the catch_unwind, so thread::current() there is still
 * the thread, its name and id). */
static _Atomic uint64_t thread_id_in_fn, thread_id_in_drop;
static _Atomic int name_ok_in_drop, drop_done;

static void drop_looks_at_its_thread(void *value)
{
    (void)value;
    ox_thread *me = ox_thread_current();
    thread_id_in_drop = ox_thread_id(me);
    name_ok_in_drop = ox_thread_name(me) != NULL && strcmp(ox_thread_name(me), "b66-self") == 0;
    drop_done = 1;
}

static void *remember_id_then_panic(void *arg)
{
    (void)arg;
    thread_id_in_fn = ox_thread_id(ox_thread_current());
    while (!go)
        ox_thread_yield();
    static int value;
    ox_panic_any("int", &value, drop_looks_at_its_thread);
}

OX_TEST(break66_detached_thread_drop_at_exit_runs_as_that_thread)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    detach_and_release("b66-self", remember_id_then_panic);
    wait_flag(&drop_done, 5, "the payload's drop");
    CHECK_EQ(thread_id_in_drop, thread_id_in_fn);
    CHECK(name_ok_in_drop);
}

/* The same drop reads a thread-local the thread set: Rust drops the
 * Packet inside the thread's main, before the thread-locals' destructors
 * run, so the value is still there (no "accessed after its destruction"). */
static int tls_inits;
static void init_counted(int *v)
{
    tls_inits++;
    *v = 1;
}
OX_THREAD_LOCAL(tls_counted, int, init_counted, NULL);
static _Atomic int tls_in_drop;

static void drop_reads_a_thread_local(void *value)
{
    (void)value;
    tls_in_drop = *OX_TLS_GET(tls_counted);
    drop_done = 1;
}

static void *set_tls_then_panic(void *arg)
{
    (void)arg;
    *OX_TLS_GET(tls_counted) = 42;
    while (!go)
        ox_thread_yield();
    static int value;
    ox_panic_any("int", &value, drop_reads_a_thread_local);
}

OX_TEST(break66_detached_thread_drop_at_exit_sees_its_thread_locals)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    detach_and_release("b66-tls", set_tls_then_panic);
    wait_flag(&drop_done, 5, "the payload's drop");
    CHECK_EQ(tls_in_drop, 42);
    CHECK_EQ(tls_inits, 1);
}

/* A drop that catches a panic of its own at the detached thread's end:
 * fine, nothing aborts (Rust: the Packet's catch_unwind sees Ok). */
static _Atomic int caught_ok, panicking_in_drop = -1;

static void *panic_plain(void *arg)
{
    (void)arg;
    ox_panic("inner");
}

static void drop_catches_its_own(void *value)
{
    (void)value;
    panicking_in_drop = ox_thread_panicking();
    ox_panic_payload *p = NULL;
    caught_ok = ox_catch_unwind(panic_plain, NULL, NULL, &p) == OX_EPANICKED && p != NULL &&
                strcmp(p->message, "inner") == 0;
    ox_panic_payload_free(p);
    drop_done = 1;
}

static void *wait_then_panic_catching_drop(void *arg)
{
    (void)arg;
    while (!go)
        ox_thread_yield();
    static int value;
    ox_panic_any("int", &value, drop_catches_its_own);
}

OX_TEST(break66_detached_thread_drop_catching_its_own_panic_at_exit)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    detach_and_release("b66-catch", wait_then_panic_catching_drop);
    wait_flag(&drop_done, 5, "the payload's drop");
    CHECK(caught_ok);
    CHECK_EQ(panicking_in_drop, 0);
}

/* Drops at a detached thread's end that block: on a contended mutex (the
 * drop's thread parks after its park state was released), on a channel,
 * and one that holds more locks than the unwind record's inline entries
 * (it grows after the record was released). No abort, no leak (ASan). */
static ox_mutex contended = OX_MUTEX_INIT;
static ox_mutex many[24];
static _Atomic int exit_drop_started;
static ox_sender *exit_tx;
static ox_receiver *exit_rx;

static void drop_blocks_at_exit(void *value)
{
    (void)value;
    exit_drop_started = 1;
    CHECK_EQ(ox_mutex_lock(&contended), 0);
    ox_mutex_unlock(&contended);
    int got = 0;
    CHECK_EQ(ox_receiver_recv(exit_rx, &got), 0);
    CHECK_EQ(got, 11);
    for (int i = 0; i < 24; i++)
        CHECK_EQ(ox_mutex_lock(&many[i]), 0);
    for (int i = 24; i-- > 0;)
        ox_mutex_unlock(&many[i]);
    drop_done = 1;
}

static void *wait_then_panic_blocking_exit_drop(void *arg)
{
    (void)arg;
    while (!go)
        ox_thread_yield();
    static int value;
    ox_panic_any("int", &value, drop_blocks_at_exit);
}

OX_TEST(break66_detached_thread_drop_at_exit_that_blocks)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    for (int i = 0; i < 24; i++)
        many[i] = (ox_mutex)OX_MUTEX_INIT;
    CHECK_EQ(OX_CHANNEL_OF(int, 1, &exit_tx, &exit_rx), 0);
    CHECK_EQ(ox_mutex_lock(&contended), 0);
    detach_and_release("b66-blocks", wait_then_panic_blocking_exit_drop);
    wait_flag(&exit_drop_started, 5, "the drop to start");
    ox_mutex_unlock(&contended);
    int v = 11;
    CHECK_EQ(ox_sender_send(exit_tx, &v), 0);
    wait_flag(&drop_done, 5, "the payload's drop");
    ox_sender_drop(exit_tx);
    ox_receiver_drop(exit_rx);
}

/* A clone of the thread (ox_thread_clone, kept e.g. to unpark it) is not
 * the join handle: Rust's Thread does not own the result Packet, so once
 * the JoinHandle is dropped the unjoined payload is dropped at the
 * thread's end, whatever Thread clones live on. */
static _Atomic int counted_drops;
static void drop_counts(void *value)
{
    (void)value;
    counted_drops++;
}

static void *wait_then_panic_counted(void *arg)
{
    (void)arg;
    while (!go)
        ox_thread_yield();
    static int value;
    ox_panic_any("int", &value, drop_counts);
}

OX_TEST(break66_thread_clone_does_not_keep_the_unjoined_payload)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_join_handle h = ox_thread_spawn(wait_then_panic_counted, NULL);
    ox_thread *kept = ox_thread_clone(ox_join_handle_thread(&h));
    ox_join_handle_drop(&h);
    go = 1;
    wait_flag(&counted_drops, 1, "the unjoined payload dropped at the thread's end");
    ox_thread_drop(kept);
    CHECK_EQ(counted_drops, 1);
}

/* The same with a panicking drop: Rust aborts at the thread's end, not
 * at some later drop of a Thread clone elsewhere. Here the clone is kept
 * forever (as a registry of parked threads would): the abort must come. */
static _Atomic int main_done_waiting;
ox_thread *registry; /* extern: kept for good */
OX_TEST_OPTS(break66_thread_clone_kept_forever_still_aborts_at_the_threads_end,
             .expect_signal = SIGABRT, .expect_stderr = "panicked on drop")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_join_handle h = ox_thread_spawn(wait_then_panic_with_a_panicking_drop, NULL);
    registry = ox_thread_clone(ox_join_handle_thread(&h));
    ox_join_handle_drop(&h);
    go = 1;
    wait_flag(&main_done_waiting, 1, "the abort at the thread's end");
}

/* Many detached threads whose handle drop races their end: each payload
 * dropped exactly once, wherever the last reference goes (TSan: no race
 * on the record's payload). */
static void *panic_counted(void *arg)
{
    (void)arg;
    static int value;
    ox_panic_any("int", &value, drop_counts);
}

OX_TEST(break66_handle_drop_racing_the_threads_end_drops_once)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    int rounds = 200;
    for (int i = 0; i < rounds; i++) {
        ox_join_handle h = ox_thread_spawn(panic_counted, NULL);
        ox_join_handle_drop(&h);
    }
    ox_instant deadline = ox_instant_after(OX_SECS(10));
    while (counted_drops < rounds && ox_instant_now().ns < deadline.ns)
        ox_thread_yield();
    CHECK_EQ(counted_drops, rounds);
}

/* ====================== tasks: records and joins ====================== */

/* The handle is dropped while the task runs: the worker frees the record
 * when the task retires, outside any task. Rust-like: abort. */
static void *task_wait_then_panic(void *arg)
{
    (void)arg;
    task_wait_flag(&go);
    static int value;
    ox_panic_any("int", &value, drop_panics);
}

OX_TEST_OPTS(break66_task_record_freed_at_retire_with_panicking_drop_aborts,
             .expect_signal = SIGABRT,
             .expect_stderr = "the payload of a task that panicked and was not joined panicked "
                              "on drop")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h = ox_test_spawn_on(rt, task_wait_then_panic, NULL);
    ox_task_handle_drop(&h);
    go = 1;
    for (;;)
        ox_thread_park();
}

/* The same with a drop that catches its own panic: the worker goes on. */
static void *task_wait_then_panic_catching_drop(void *arg)
{
    (void)arg;
    task_wait_flag(&go);
    static int value;
    ox_panic_any("int", &value, drop_catches_its_own);
}

static void *return_7(void *arg)
{
    (void)arg;
    return (void *)7;
}

OX_TEST(break66_task_record_freed_at_retire_drop_catching_its_own_panic)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle h = ox_test_spawn_on(rt, task_wait_then_panic_catching_drop, NULL);
    ox_task_handle_drop(&h);
    go = 1;
    wait_flag(&drop_done, 5, "the payload's drop at the task's retire");
    CHECK(caught_ok);
    CHECK_EQ(panicking_in_drop, 0);
    ox_task_handle h2 = ox_test_spawn_on(rt, return_7, NULL);
    void *r = NULL;
    CHECK_EQ(ox_task_join(&h2, &r, NULL), 0);
    CHECK_EQ((intptr_t)r, 7);
    ox_runtime_shutdown(rt);
}

/* A join with a NULL payload, in a task, whose payload's drop blocks (it
 * yields, and waits on a channel fed by another task): the task may move
 * between workers inside the drop; the drop's panic is an ordinary panic
 * in the joining task, caught there; nothing is left in its record. */
static ox_sender *feed_tx;
static ox_receiver *feed_rx;

static void drop_blocks_then_panics(void *value)
{
    (void)value;
    for (int i = 0; i < 20; i++)
        ox_task_yield();
    int got = 0;
    CHECK_EQ(ox_receiver_recv(feed_rx, &got), 0);
    CHECK_EQ(got, 5);
    ox_panic("the blocking drop panics");
}

static void *panic_blocking_drop(void *arg)
{
    (void)arg;
    static int value;
    ox_panic_any("int", &value, drop_blocks_then_panics);
}

static void *feed(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++)
        ox_task_yield();
    int v = 5;
    CHECK_EQ(ox_sender_send(feed_tx, &v), 0);
    return NULL;
}

static void *join_null(void *h)
{
    (void)!ox_task_join(h, NULL, NULL);
    return NULL;
}

static void *joiner_task(void *arg)
{
    (void)arg;
    ox_task_handle b = ox_task_spawn(panic_blocking_drop, NULL);
    ox_task_handle f = ox_task_spawn(feed, NULL);
    while (!ox_task_is_finished(&b))
        ox_task_yield();
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(join_null, &b, NULL, &p), OX_EPANICKED);
    CHECK(p != NULL && p->message != NULL);
    CHECK(strcmp(p->message, "the blocking drop panics") == 0);
    ox_panic_payload_free(p);
    CHECK(b.task == NULL);
    CHECK_UNWOUND();
    CHECK_EQ(ox_task_join(&f, NULL, NULL), 0);
    return NULL;
}

OX_TEST(break66_task_join_null_payload_blocking_drop_panics_in_the_task)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    CHECK_EQ(OX_CHANNEL_OF(int, OX_UNBOUNDED, &feed_tx, &feed_rx), 0);
    ox_runtime *rt = ox_test_runtime(2);
    for (int i = 0; i < 20; i++) {
        ox_task_handle h = ox_test_spawn_on(rt, joiner_task, NULL);
        CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    }
    ox_runtime_shutdown(rt);
    ox_sender_drop(feed_tx);
    ox_receiver_drop(feed_rx);
}

/* A task drops the last handle of a finished, panicked task whose drop
 * yields many times (the record is freed on whichever worker the task is
 * on when the drop returns), then returns normally. */
static _Atomic int yielding_drops;
static void drop_yields(void *value)
{
    (void)value;
    for (int i = 0; i < 50; i++)
        ox_task_yield();
    yielding_drops++;
}

static void *panic_yielding_drop(void *arg)
{
    (void)arg;
    static int value;
    ox_panic_any("int", &value, drop_yields);
}

static void *drop_handle_task(void *arg)
{
    (void)arg;
    ox_task_handle b = ox_task_spawn(panic_yielding_drop, NULL);
    while (!ox_task_is_finished(&b))
        ox_task_yield();
    ox_task_handle_drop(&b);
    CHECK_UNWOUND();
    return NULL;
}

OX_TEST(break66_task_handle_drop_in_a_task_with_a_yielding_drop)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle hs[16];
    for (int i = 0; i < 16; i++)
        hs[i] = ox_test_spawn_on(rt, drop_handle_task, NULL);
    for (int i = 0; i < 16; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    /* After the shutdown: a worker may still hold the last reference to a
     * finished task (is_finished comes first), and drop its payload. */
    ox_runtime_shutdown(rt);
    CHECK_EQ(yielding_drops, 16);
}

/* ox_task_block_on with a NULL payload: the drop's panic is an ordinary
 * panic in the caller (Rust: the Err is dropped by the caller). */
static void *block_on_null(void *arg)
{
    (void)arg;
    (void)!ox_task_block_on(panic_with_a_panicking_drop, NULL, NULL, NULL);
    return NULL;
}

OX_TEST(break66_block_on_null_payload_drop_panics_in_the_caller)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(block_on_null, NULL, NULL, &p), OX_EPANICKED);
    CHECK(p != NULL && strcmp(p->message, "the payload's drop panics") == 0);
    ox_panic_payload_free(p);
    CHECK_UNWOUND();
}

/* A blocking-pool job whose handle is dropped before it ends: the pool
 * thread frees the record; its payload's drop panicking aborts. */
static void *blocking_wait_then_panic(void *arg)
{
    (void)arg;
    while (!go)
        ox_thread_yield();
    static int value;
    ox_panic_any("int", &value, drop_panics);
}

OX_TEST_OPTS(break66_blocking_job_unjoined_panicking_drop_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "the payload of a task that panicked and was not joined panicked "
                              "on drop")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_task_handle h;
    CHECK_EQ(ox_task_spawn_blocking(blocking_wait_then_panic, NULL, &h), 0);
    ox_task_handle_drop(&h);
    go = 1;
    for (;;)
        ox_thread_park();
}

/* ============================== join sets ============================== */

/* A set dropped with a finished, unjoined task whose payload's drop
 * panics: abort (nobody to hand the panic to). */
static _Atomic int set_task_panicking;
static void *flag_then_panic_with_a_panicking_drop(void *arg)
{
    (void)arg;
    set_task_panicking = 1;
    static int value;
    ox_panic_any("int", &value, drop_panics);
}

/* Finished or not when the set is dropped, the payload goes with the
 * set's reference (or the retire's) and its drop's panic aborts. */
OX_TEST_OPTS(break66_join_set_drop_with_unjoined_panicking_drop_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "panicked on drop")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_runtime *rt = ox_test_runtime(1);
    ox_join_set *set;
    CHECK_EQ(ox_join_set_new(&set), 0);
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    b.runtime = rt;
    CHECK_EQ(ox_join_set_spawn_with(set, &b, flag_then_panic_with_a_panicking_drop, NULL, NULL), 0);
    wait_flag(&set_task_panicking, 5, "the set's task to panic");
    ox_join_set_drop(set);
    for (;;)
        ox_thread_park();
}

/* join_next with a NULL payload: the drop's panic is an ordinary panic in
 * the caller, the task is taken out of the set, the other result stays. */
static void *join_next_null(void *set)
{
    (void)!ox_join_set_join_next(set, NULL, NULL, NULL);
    return NULL;
}

OX_TEST(break66_join_next_null_payload_drop_panics_in_the_caller)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_runtime *rt = ox_test_runtime(1);
    ox_join_set *set;
    CHECK_EQ(ox_join_set_new(&set), 0);
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    b.runtime = rt;
    CHECK_EQ(ox_join_set_spawn_with(set, &b, panic_with_a_panicking_drop, NULL, NULL), 0);
    CHECK_EQ(ox_join_set_spawn_with(set, &b, return_7, NULL, NULL), 0);
    int panics = 0, sevens = 0;
    while (ox_join_set_len(set) > 0) {
        /* one at a time: peek via a join with a payload would take it */
        ox_panic_payload *p = NULL;
        void *r = NULL;
        if (ox_catch_unwind(join_next_null, set, &r, &p) == OX_EPANICKED) {
            CHECK(strcmp(p->message, "the payload's drop panics") == 0);
            ox_panic_payload_free(p);
            panics++;
        } else {
            sevens++;
        }
    }
    CHECK_EQ(panics, 1);
    CHECK_EQ(sevens, 1);
    CHECK_EQ(ox_join_set_join_next(set, NULL, NULL, NULL), OX_EEMPTY);
    CHECK_UNWOUND();
    ox_join_set_drop(set);
    ox_runtime_shutdown(rt);
}

/* ================================ scopes ================================ */

/* ox_scoped_join with a NULL payload: the drop's panic is the body's
 * panic; the thread counts as joined (Rust: the scope resumes the body's
 * panic, not "a scoped thread panicked"). */
static void body_joins_null(ox_scope *scope, void *arg)
{
    (void)arg;
    ox_scoped_handle h = ox_scope_spawn(scope, panic_with_a_panicking_drop, NULL);
    (void)!ox_scoped_join(&h, NULL, NULL);
    CHECK(0); /* not reached */
}

static void *run_scope_joining_null(void *arg)
{
    (void)arg;
    ox_thread_scope(body_joins_null, NULL);
    return NULL;
}

OX_TEST(break66_scoped_join_null_payload_drop_panic_is_the_bodys)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(run_scope_joining_null, NULL, NULL, &p), OX_EPANICKED);
    CHECK(p != NULL && strcmp(p->message, "the payload's drop panics") == 0);
    ox_panic_payload_free(p);
    CHECK_UNWOUND();
}

/* A thread scope where one unjoined thread's payload drop panics while
 * another scoped thread still runs: Rust aborts as soon as the panicked
 * thread's result is dropped (its handle is gone, its thread ends), not
 * once every other scoped thread has ended. The other one gives up after a
 * second and exits 3: a scope that waited for it first fails the test. */
static void *run_for_a_second_then_exit_3(void *arg)
{
    (void)arg;
    ox_instant deadline = ox_instant_after(OX_SECS(1));
    while (ox_instant_now().ns < deadline.ns)
        ox_thread_yield();
    fprintf(stderr, "the scope waited for the other thread before aborting\n");
    _exit(3);
}

static void spawn_panicking_then_long(ox_scope *scope, void *arg)
{
    (void)arg;
    (void)ox_scope_spawn(scope, panic_with_a_panicking_drop, NULL);
    (void)ox_scope_spawn(scope, run_for_a_second_then_exit_3, NULL);
}

OX_TEST_OPTS(break66_thread_scope_aborts_without_waiting_for_the_others, .expect_signal = SIGABRT,
             .expect_stderr = "the payload of a thread that panicked and was not joined panicked "
                              "on drop")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_thread_scope(spawn_panicking_then_long, NULL);
}

/* ============================ nested payloads ============================ */

/* P1's drop panics with P2 (ox_panic_any) whose drop panics with P3: each
 * caught with a NULL payload one level up, an ordinary panic at every
 * level; nothing leaks (ASan), each drop runs once. */
static _Atomic int nested_drops;
static void drop_p2(void *value)
{
    (void)value;
    nested_drops++;
    ox_panic("P3");
}

static void drop_p1(void *value)
{
    (void)value;
    nested_drops++;
    static int v2;
    ox_panic_any("int", &v2, drop_p2);
}

static void *panic_p1(void *arg)
{
    (void)arg;
    static int v1;
    ox_panic_any("int", &v1, drop_p1);
}

static void *catch_null(void *arg)
{
    (void)arg;
    (void)!ox_catch_unwind(panic_p1, NULL, NULL, NULL);
    CHECK(0); /* not reached: the drop's panic goes up */
    return NULL;
}

static void *catch_null_twice(void *arg)
{
    (void)arg;
    /* catches P1 (drop: P2 raised), P2 goes up to the next catch */
    (void)!ox_catch_unwind(catch_null, NULL, NULL, NULL);
    CHECK(0);
    return NULL;
}

OX_TEST(break66_nested_panicking_drops_are_ordinary_panics)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(catch_null_twice, NULL, NULL, &p), OX_EPANICKED);
    CHECK(p != NULL && p->message != NULL && strcmp(p->message, "P3") == 0);
    ox_panic_payload_free(p);
    CHECK_EQ(nested_drops, 2);
    CHECK_UNWOUND();
}

/* The same nesting at an unjoined thread's record: abort naming the
 * record's case (not a double panic). */
static void *wait_then_panic_p1(void *arg)
{
    (void)arg;
    static int v1;
    ox_panic_any("int", &v1, drop_p1);
}

OX_TEST_OPTS(break66_nested_panicking_drop_at_handle_drop_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_join_handle_drop: the payload of a thread that panicked and was "
                              "not joined panicked on drop")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_join_handle h = ox_thread_spawn(wait_then_panic_p1, NULL);
    while (!ox_join_handle_is_finished(&h))
        ox_thread_yield();
    ox_join_handle_drop(&h);
}

/* ============================ the main thread ============================ */

/* The main thread's uncaught panic; its payload's drop spawns a thread and
 * joins it, and runs a task to its end: then exit 101 (Rust: lang_start
 * drops the payload after the panic ended; the drop may do anything). */
static void *send_99(void *tx)
{
    int v = 99;
    CHECK_EQ(ox_sender_send(tx, &v), 0);
    return NULL;
}

static void drop_uses_threads_and_tasks(void *value)
{
    (void)value;
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(OX_CHANNEL_OF(int, 1, &tx, &rx), 0);
    ox_join_handle h = ox_thread_spawn(send_99, tx);
    int got = 0;
    CHECK_EQ(ox_receiver_recv(rx, &got), 0);
    ox_test_join(&h);
    void *r = NULL;
    CHECK_EQ(ox_task_block_on(return_7, NULL, &r, NULL), 0);
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
    fprintf(stderr, "drop got %d and %d\n", got, (int)(intptr_t)r);
}

OX_TEST_OPTS(break66_main_top_payload_drop_uses_threads_and_tasks_exits_101, .expect_exit = 101,
             .expect_stderr = "drop got 99 and 7")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    static int value;
    ox_panic_any("int", &value, drop_uses_threads_and_tasks);
}

/* The main thread's uncaught panic whose drop takes a mutex that another
 * thread holds until it sees the drop running. */
static ox_mutex held = OX_MUTEX_INIT;
static _Atomic int drop_started, holder_has_it;

static void *hold_until_drop(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_mutex_lock(&held), 0);
    holder_has_it = 1;
    while (!drop_started)
        ox_thread_yield();
    ox_mutex_unlock(&held);
    return NULL;
}

static void drop_locks(void *value)
{
    (void)value;
    drop_started = 1;
    CHECK_EQ(ox_mutex_lock(&held), 0);
    ox_mutex_unlock(&held);
    fprintf(stderr, "drop locked and unlocked\n");
}

OX_TEST_OPTS(break66_main_top_payload_drop_that_blocks_on_a_lock_exits_101, .expect_exit = 101,
             .expect_stderr = "drop locked and unlocked")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_join_handle h = ox_thread_spawn(hold_until_drop, NULL);
    ox_join_handle_drop(&h);
    while (!holder_has_it)
        ox_thread_yield();
    static int value;
    ox_panic_any("int", &value, drop_locks);
}

/* ============================ runtime shutdown ============================ */

/* A task whose handle was dropped panics, with a payload whose drop
 * panics, as its runtime shuts down: the record goes at its retire inside
 * the shutdown; abort (not a hang, not an unwind through the shutdown). */
static void *panic_when_cancelled(void *arg)
{
    (void)arg;
    go = 1;
    while (!ox_task_is_cancelled())
        ox_task_yield();
    static int value;
    ox_panic_any("int", &value, drop_panics);
}

OX_TEST_OPTS(break66_unjoined_task_panicking_drop_during_shutdown_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "the payload of a task that panicked and was not joined panicked "
                              "on drop")
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h = ox_test_spawn_on(rt, panic_when_cancelled, NULL);
    ox_task_handle_drop(&h);
    wait_flag(&go, 5, "the task to run");
    ox_runtime_shutdown(rt);
    CHECK(0); /* not reached */
}

/* The same with a drop that returns normally: the shutdown completes, the
 * drop ran once. */
static void *count_when_cancelled(void *arg)
{
    (void)arg;
    go = 1;
    while (!ox_task_is_cancelled())
        ox_task_yield();
    static int value;
    ox_panic_any("int", &value, drop_counts);
}

OX_TEST(break66_unjoined_task_drop_during_shutdown_runs_once)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h = ox_test_spawn_on(rt, count_when_cancelled, NULL);
    ox_task_handle_drop(&h);
    wait_flag(&go, 5, "the task to run");
    ox_runtime_shutdown(rt);
    CHECK_EQ(counted_drops, 1);
}
