/* Tokio's sync set from tasks: tasks and threads mixed on a semaphore, a
 * Notify, a broadcast and a watch channel (the one parking interface), and
 * an abort ending each of their waits with OX_ECANCELED without losing a
 * permit. */
#include "helpers.h"
#include "oxide.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>

/* ---- a semaphore shared by tasks and threads ---- */

#define PERMITS 3

static struct {
    ox_semaphore sem;
    ox_test_budget budget; /* rounds per task or thread */
    _Atomic long in_use, over;
} ms = {.sem = OX_SEMAPHORE_INIT(PERMITS)};

static void *use_permits(void *arg)
{
    size_t n = 1 + (size_t)(uintptr_t)arg % PERMITS;
    for (long i = 0; ox_test_budget_more(&ms.budget, i); i++) {
        CHECK_EQ(ox_semaphore_acquire(&ms.sem, n), 0);
        if (atomic_fetch_add(&ms.in_use, (long)n) + (long)n > PERMITS)
            atomic_fetch_add(&ms.over, 1);
        if (i % 8 == 0) {
            if (ox_task_current())
                ox_task_yield(); /* hold the permits across a switch */
            else
                ox_thread_yield();
        }
        atomic_fetch_sub(&ms.in_use, (long)n);
        ox_semaphore_release(&ms.sem, n);
    }
    return NULL;
}

OX_TEST(tokio_sync_semaphore_tasks_and_threads_conserve_permits)
{
    ox_runtime *rt = ox_test_runtime(2);
    ms.budget = ox_test_budget_start(200, ox_test_scaled(5000));
    enum { TASKS = 12, THREADS = 2 };
    ox_test_run_tasks_and_threads(rt, TASKS, THREADS, use_permits);
    CHECK_EQ(atomic_load(&ms.over), 0);
    CHECK_EQ(ox_semaphore_available(&ms.sem), PERMITS);
    ox_runtime_shutdown(rt);
}

/* ---- Notify ping-pong between a task and a thread ---- */

static struct {
    ox_notify ping, pong;
    long rounds;
    long turn; /* plain: handed over by the notifies */
} tp;

static void *task_ponger(void *arg)
{
    (void)arg;
    for (long i = 0; i < tp.rounds; i++) {
        CHECK_EQ(ox_notify_wait(&tp.ping), 0);
        CHECK_EQ(tp.turn, 2 * i + 1);
        tp.turn++;
        ox_notify_one(&tp.pong);
    }
    return NULL;
}

OX_TEST(tokio_sync_notify_between_a_task_and_a_thread)
{
    ox_runtime *rt = ox_test_runtime(2);
    tp.rounds = ox_test_scaled(5000);
    ox_task_handle h = ox_test_spawn_on(rt, task_ponger, NULL);
    for (long i = 0; i < tp.rounds; i++) {
        CHECK_EQ(tp.turn, 2 * i);
        tp.turn++;
        ox_notify_one(&tp.ping);
        CHECK_EQ(ox_notify_wait(&tp.pong), 0);
    }
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    CHECK_EQ(tp.turn, 2 * tp.rounds);
    ox_runtime_shutdown(rt);
}

/* ---- a thread broadcasts, tasks receive; a thread watches, tasks wait ---- */

static void *count_broadcast(void *arg)
{
    ox_broadcast_receiver *rx = arg;
    long got = 0, missed_total = 0, last = -1;
    for (;;) {
        long v;
        uint64_t missed = 0;
        int rc = ox_broadcast_recv(rx, &v, &missed);
        if (rc == OX_EDISCONNECTED)
            break;
        if (rc == OX_ELAGGED) {
            missed_total += (long)missed;
            continue;
        }
        CHECK_EQ(rc, 0);
        CHECK(v > last);
        last = v;
        got++;
    }
    ox_broadcast_receiver_drop(rx);
    return (void *)(intptr_t)(got + missed_total);
}

static void *watch_until_closed(void *arg)
{
    ox_watch_receiver *rx = arg;
    long last = 0;
    int rc;
    while ((rc = ox_watch_changed(rx)) == 0) {
        long v;
        ox_watch_borrow_and_update(rx, &v);
        CHECK(v > last);
        last = v;
    }
    CHECK_EQ(rc, OX_EDISCONNECTED);
    ox_watch_receiver_drop(rx);
    return (void *)(intptr_t)last;
}

OX_TEST(tokio_sync_channels_from_a_thread_to_tasks)
{
    ox_runtime *rt = ox_test_runtime(2);
    enum { TASKS = 6 };
    long sends = ox_test_scaled(20000);
    ox_broadcast_sender *btx;
    ox_broadcast_receiver *brx;
    CHECK_EQ(ox_broadcast(sizeof(long), 8, &btx, &brx), 0);
    long zero = 0;
    ox_watch_sender *wtx;
    ox_watch_receiver *wrx;
    CHECK_EQ(ox_watch(sizeof(long), &zero, &wtx, &wrx), 0);
    ox_task_handle b[TASKS], w[TASKS];
    for (int i = 0; i < TASKS; i++) {
        b[i] = ox_test_spawn_on(rt, count_broadcast, ox_broadcast_subscribe(btx));
        w[i] = ox_test_spawn_on(rt, watch_until_closed, ox_watch_subscribe(wtx));
    }
    ox_broadcast_receiver_drop(brx);
    ox_watch_receiver_drop(wrx);
    for (long v = 1; v <= sends; v++) {
        CHECK_EQ(ox_broadcast_send(btx, &v), 0);
        CHECK_EQ(ox_watch_send(wtx, &v), 0);
        if (v % 64 == 0)
            ox_thread_yield();
    }
    ox_broadcast_sender_drop(btx);
    ox_watch_sender_drop(wtx);
    for (int i = 0; i < TASKS; i++) {
        void *r;
        CHECK_EQ(ox_task_join(&b[i], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, sends); /* received + missed == sent */
        CHECK_EQ(ox_task_join(&w[i], &r, NULL), 0);
        CHECK_EQ((intptr_t)r, sends); /* saw the last value */
    }
    ox_runtime_shutdown(rt);
}

/* ---- abort at each wait ---- */

enum point { AT_ACQUIRE, AT_NOTIFY, AT_TICKET, AT_BROADCAST, AT_CHANGED, AT_CLOSED, POINTS };

static struct {
    ox_semaphore sem;
    ox_notify notify;
    ox_broadcast_sender *btx;
    ox_broadcast_receiver *brx;
    ox_watch_sender *wtx;
    ox_watch_receiver *wrx;
    _Atomic int arrived;
} ab;

static void *block_at(void *arg)
{
    enum point at = (enum point)(intptr_t)arg;
    atomic_fetch_add(&ab.arrived, 1);
    long v;
    int rc = -1;
    switch (at) {
    case AT_ACQUIRE:
        rc = ox_semaphore_acquire(&ab.sem, 3); /* 1 free: takes it, waits for 2 */
        break;
    case AT_NOTIFY:
        rc = ox_notify_wait(&ab.notify);
        break;
    case AT_TICKET: {
        ox_notified t = ox_notify_notified(&ab.notify);
        rc = ox_notified_wait(&t);
        break;
    }
    case AT_BROADCAST:
        rc = ox_broadcast_recv(ab.brx, &v, NULL);
        break;
    case AT_CHANGED:
        rc = ox_watch_changed(ab.wrx);
        break;
    case AT_CLOSED:
        rc = ox_watch_closed(ab.wtx);
        break;
    default:
        break;
    }
    CHECK(ox_task_is_cancelled());
    /* Every wait after it fails at once too, without taking anything. */
    CHECK_EQ(ox_semaphore_acquire(&ab.sem, 2), OX_ECANCELED);
    CHECK_EQ(ox_notify_wait(&ab.notify), OX_ECANCELED);
    return (void *)(intptr_t)rc;
}

OX_TEST(tokio_sync_abort_ends_every_wait_with_ecanceled)
{
    ox_runtime *rt = ox_test_runtime(2);
    for (int at = 0; at < POINTS; at++) {
        CHECK_EQ(ox_semaphore_init(&ab.sem, 1), 0);
        ab.notify = (ox_notify)OX_NOTIFY_INIT;
        long zero = 0;
        CHECK_EQ(ox_broadcast(sizeof(long), 4, &ab.btx, &ab.brx), 0);
        CHECK_EQ(ox_watch(sizeof(long), &zero, &ab.wtx, &ab.wrx), 0);
        atomic_store(&ab.arrived, 0);
        ox_task_handle h = ox_test_spawn_on(rt, block_at, (void *)(intptr_t)at);
        void *r = ox_test_abort_at_its_wait(&h, &ab.arrived);
        if ((intptr_t)r != OX_ECANCELED)
            ox_test_fail(__FILE__, __LINE__, "point %d returned %ld", at, (long)(intptr_t)r);
        /* The acquire handed back the permit it had collected. */
        CHECK_EQ(ox_semaphore_available(&ab.sem), 1);
        ox_broadcast_sender_drop(ab.btx);
        ox_broadcast_receiver_drop(ab.brx);
        ox_watch_sender_drop(ab.wtx);
        ox_watch_receiver_drop(ab.wrx);
    }
    ox_runtime_shutdown(rt);
}

/* An aborted task's call that can complete without waiting completes. */
static void *ready_while_cancelled(void *arg)
{
    atomic_store((_Atomic int *)arg, 1);
    while (!ox_task_is_cancelled())
        ox_task_yield();
    CHECK_EQ(ox_semaphore_acquire(&ab.sem, 1), 0);
    ox_semaphore_release(&ab.sem, 1);
    CHECK_EQ(ox_notify_wait(&ab.notify), 0); /* the stored permit */
    long v;
    CHECK_EQ(ox_broadcast_recv(ab.brx, &v, NULL), 0);
    CHECK_EQ(v, 9);
    CHECK_EQ(ox_watch_changed(ab.wrx), 0);
    CHECK_EQ(ox_broadcast_recv(ab.brx, &v, NULL), OX_ECANCELED);
    return NULL;
}

OX_TEST(tokio_sync_cancelled_call_that_need_not_wait_completes)
{
    ox_runtime *rt = ox_test_runtime(2);
    CHECK_EQ(ox_semaphore_init(&ab.sem, 1), 0);
    ab.notify = (ox_notify)OX_NOTIFY_INIT;
    long zero = 0, nine = 9;
    CHECK_EQ(ox_broadcast(sizeof(long), 4, &ab.btx, &ab.brx), 0);
    CHECK_EQ(ox_watch(sizeof(long), &zero, &ab.wtx, &ab.wrx), 0);
    ox_notify_one(&ab.notify);
    CHECK_EQ(ox_broadcast_send(ab.btx, &nine), 0);
    CHECK_EQ(ox_watch_send(ab.wtx, &nine), 0);
    _Atomic int started = 0;
    ox_task_handle h = ox_test_spawn_on(rt, ready_while_cancelled, &started);
    while (!atomic_load(&started))
        ox_thread_yield();
    ox_task_abort(&h);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    ox_broadcast_sender_drop(ab.btx);
    ox_broadcast_receiver_drop(ab.brx);
    ox_watch_sender_drop(ab.wtx);
    ox_watch_receiver_drop(ab.wrx);
    ox_runtime_shutdown(rt);
}
