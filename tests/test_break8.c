/* Breaking d51595d (a poller that leaves for a task wakes the idle worker
 * it sent to its futex): the poller is opened by the first descriptor a
 * runtime's tasks wait for, and a worker that went idle before that found
 * no poller to take, so it sleeps on its futex without asking for it. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: the worker a task runs on */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the first wait for a descriptor (src/task/reactor.c) ----
 * Two workers, both asleep on their futexes before any descriptor is
 * watched (nothing to poll yet). A task wakes a second one, which goes to
 * its own worker's LIFO slot and wakes nobody, then waits for a pipe: that
 * opens the poller, and the task parks. Its worker runs the second task,
 * which never parks until the first has read. The other worker must poll,
 * or the pipe's byte is seen only when the spinner gives up. */
static ox_notify go;
static _Atomic int reader_parked_soon, reader_done;
static int64_t give_up_ns;
static bool saw_reader;

static void *spin_when_told(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_notify_wait(&go), 0);
    while (!atomic_load(&reader_done) && ox_instant_now().ns < give_up_ns) {
    } /* never parks: it holds the worker that opened the poller */
    saw_reader = atomic_load(&reader_done);
    return NULL;
}

/* Whether w is on the idle list (white box: under the runtime's lock). */
static bool is_idle(ox_runtime *rt, ox__worker *w)
{
    ox__spin_lock(&rt->idle_lock);
    bool idle = w->idle;
    ox__spin_unlock(&rt->idle_lock);
    return idle;
}

static void *first_wait_for_a_pipe(void *arg)
{
    int fd = *(const int *)arg;
    ox_runtime *rt = ox_task_current()->rt;
    ox__worker *other = &rt->workers[ox__worker_current() == &rt->workers[0] ? 1 : 0];
    /* Asleep on its futex, with no poller to take. Idle as well: the wake
     * our own worker sent it on finding this task takes it off the list
     * first, and its sleep after that wake is the one to wait for. */
    for (;;) {
        ox_test_wait_blocked_on(other, 1);
        if (is_idle(rt, other))
            break;
        ox_thread_yield();
    }
    ox_notify_one(&go); /* the spinner: to this worker's slot, waking nobody */
    atomic_store(&reader_parked_soon, 1);
    /* No deadline: a timer would wake the other worker. */
    CHECK_EQ(ox_fd_wait(fd, OX_IO_READABLE, OX_INSTANT_NEVER), 0);
    atomic_store(&reader_done, 1);
    return NULL;
}

OX_TEST_OPTS(break8_first_descriptor_waited_for_is_polled_beside_a_long_task, .timeout_s = 120)
{
    int p[2];
    CHECK_EQ(pipe(p), 0);
    go = (ox_notify)OX_NOTIFY_INIT;
    give_up_ns = ox_instant_after(ox_test_bound(OX_SECS(5))).ns;
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle spinner = ox_test_spawn_on(rt, spin_when_told, NULL);
    ox_test_wait_blocked_on(&go, 1);
    ox_task_handle reader = ox_test_spawn_on(rt, first_wait_for_a_pipe, &p[0]);
    while (!atomic_load(&reader_parked_soon))
        ox_thread_yield();
    ox_thread_sleep(OX_MILLIS(20)); /* parked by now; either way it must finish */
    CHECK_EQ(write(p[1], "x", 1), 1);
    CHECK_EQ(ox_task_join(&spinner, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&reader, NULL, NULL), 0);
    CHECK(saw_reader); /* the read completed while the spinner held its worker */
    ox_runtime_shutdown(rt);
    close(p[0]);
    close(p[1]);
}

/* ---- a recycled task record (44e635c: its inline unwind entries stay) ----
 * A task panics holding many locks with cleanups pushed (its entries stay
 * in the record's inline array, below nothing: depth is 0 after the
 * unwind), or returns with cleanups still pushed (depth 5 at its end);
 * the next task, on the same record, holds one lock and blocks
 * on another, then panics. The blocked dump shows it holding one lock,
 * its unwind releases its two locks only (the first task's, which main
 * holds by then, stay locked and unpoisoned), no stale cleanup runs, and
 * the lock-order checker records no edge from the first task's locks (main
 * takes them after y: such an edge would close a cycle). */
#define STALE 12
static ox_mutex stale_locks[STALE];
static ox_mutex held_x, held_y;
static _Atomic int stale_cleanups;
static const void *record_first, *record_next;

static void count_stale_cleanup(void *arg)
{
    (void)arg;
    atomic_fetch_add(&stale_cleanups, 1);
}

static void *panic_holding_many(void *arg)
{
    (void)arg;
    record_first = ox_task_current();
    for (int i = 0; i < STALE; i++) {
        CHECK_EQ(ox_mutex_lock(&stale_locks[i]), 0);
        if (i % 4 == 0)
            ox_cleanup_push(count_stale_cleanup, NULL);
    }
    ox_panic("first task");
}

/* The other way to leave entries behind: return with cleanups pushed
 * (they are forgotten, as a thread's are), depth 5 at the end. */
static void *return_with_cleanups_pushed(void *arg)
{
    (void)arg;
    record_first = ox_task_current();
    for (int i = 0; i < 5; i++)
        ox_cleanup_push(count_stale_cleanup, NULL);
    return NULL;
}

static void *hold_x_block_on_y_panic(void *arg)
{
    (void)arg;
    record_next = ox_task_current();
    CHECK_EQ(ox_mutex_lock(&held_x), 0);
    CHECK_EQ(ox_mutex_lock(&held_y), 0); /* main holds y: blocks */
    ox_panic("next task");
}

/* Records are reused by the worker that freed them (record.c): the first
 * task is spawned and joined, and the next spawned, by a task on the
 * runtime's one worker, between main's steps. */
typedef struct record_pair {
    void *(*first)(void *);
    ox_sender *to_main;   /* the first task's outcome, then "next spawned" */
    ox_receiver *go_next; /* main has taken its locks */
    ox_task_handle next;
} record_pair;

static void *spawn_first_then_next(void *arg)
{
    record_pair *p = arg;
    ox_task_handle first = ox_task_spawn(p->first, NULL);
    long rc = ox_task_join(&first, NULL, NULL);
    CHECK_EQ(ox_sender_send(p->to_main, &rc), 0);
    long signal;
    CHECK_EQ(ox_receiver_recv(p->go_next, &signal), 0);
    p->next = ox_task_spawn(hold_x_block_on_y_panic, NULL);
    CHECK_EQ(ox_sender_send(p->to_main, &signal), 0);
    return NULL;
}

OX_TEST_OPTS(break8_recycled_task_record_shows_no_stale_entries, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(1);
    ox_test_capture_stderr();
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    int rounds = (int)ox_test_scaled(100), reused = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < STALE; i++)
            stale_locks[i] = (ox_mutex)OX_MUTEX_INIT;
        held_x = (ox_mutex)OX_MUTEX_INIT;
        held_y = (ox_mutex)OX_MUTEX_INIT;
        atomic_store(&stale_cleanups, 0);
        int cleanups = r % 2 ? (STALE + 3) / 4 : 0;
        record_pair pair = {.first = r % 2 ? panic_holding_many : return_with_cleanups_pushed};
        ox_receiver *from_pair;
        ox_sender *go_tx;
        CHECK_EQ(ox_channel(sizeof(long), 0, &pair.to_main, &from_pair), 0);
        CHECK_EQ(ox_channel(sizeof(long), 0, &go_tx, &pair.go_next), 0);
        ox_task_handle spawner = ox_test_spawn_on(rt, spawn_first_then_next, &pair);
        long first_rc, signal = 1;
        CHECK_EQ(ox_receiver_recv(from_pair, &first_rc), 0);
        CHECK_EQ(first_rc, r % 2 ? OX_EPANICKED : 0);
        CHECK_EQ(atomic_load(&stale_cleanups), cleanups);
        CHECK_EQ(ox_mutex_lock(&held_y), 0);
        for (int i = 0; i < STALE; i++) {
            ox_mutex_clear_poison(&stale_locks[i]);
            CHECK_EQ(ox_mutex_lock(&stale_locks[i]), 0);
        }
        CHECK_EQ(ox_sender_send(go_tx, &signal), 0);
        CHECK_EQ(ox_receiver_recv(from_pair, &signal), 0); /* next is spawned */
        CHECK_EQ(ox_task_join(&spawner, NULL, NULL), 0);
        ox_task_handle next = pair.next;
        ox_sender_drop(pair.to_main);
        ox_receiver_drop(from_pair);
        ox_sender_drop(go_tx);
        ox_receiver_drop(pair.go_next);
        ox_test_wait_blocked_on(&held_y, 1);
        int count;
        char *dump = ox_test_dump_blocked(&count);
        const char *task = strstr(dump, "  task ");
        CHECK(task != NULL);
        int holding = 0;
        for (const char *p = task; (p = strstr(p, "    holding ")) != NULL; p++)
            holding++;
        if (holding != 1)
            ox_test_fail(__FILE__, __LINE__, "the next task holds %d locks:\n%s", holding, dump);
        free(dump);
        ox_mutex_unlock(&held_y);
        CHECK_EQ(ox_task_join(&next, NULL, NULL), OX_EPANICKED);
        reused += record_first == record_next;
        CHECK_EQ(atomic_load(&stale_cleanups), cleanups); /* no stale one ran */
        CHECK(ox_mutex_is_poisoned(&held_x) && ox_mutex_is_poisoned(&held_y));
        for (int i = STALE; i-- > 0;) {
            CHECK(!ox_mutex_is_poisoned(&stale_locks[i]));
            ox_mutex_unlock(&stale_locks[i]); /* aborts if an unwind had released it */
        }
        CHECK_EQ(ox_lockdep_reports(), 0u);
    }
    printf("the next task reused the first one's record in %d of %d rounds\n", reused, rounds);
    CHECK(reused > 0); /* else it proved nothing */
    ox_runtime_shutdown(rt);
}
