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
