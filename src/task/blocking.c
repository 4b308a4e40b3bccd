/* blocking.c - the blocking pool: OS threads for the C calls that block
 * the thread (file I/O, a database client, sleep(3)), so that they do not
 * stop a worker. Tokio's spawn_blocking, Go's extra Ms for syscalls.
 *
 * A job is a task record that never gets a stack, joined with ox_task_join like
 * any task. Threads are started on demand, up to OX__BLOCKING_MAX, and
 * leave after OX__BLOCKING_KEEP_ALIVE without work. */
#include "task_internal.h"

#include "oxide/condvar.h"
#include "oxide/mutex.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OX__BLOCKING_MAX        512
#define OX__BLOCKING_KEEP_ALIVE OX_SECS(10)

static struct {
    ox_mutex lock;
    ox_condvar work; /* a job was queued */
    ox_task *head, *tail;
    size_t threads, idle;
    /* Wakes sent to idle threads and not yet taken by one: an idle thread
     * that was woken is on its way to a job already, and may not be
     * counted for the next one (jobs that wait for each other would then
     * share a thread: one waits forever). */
    size_t woken;
} pool = {.lock = OX_MUTEX_INIT};

static void run_job(ox_task *t)
{
    ox_panic_payload *p = NULL;
    t->outcome = ox_catch_unwind(t->fn, t->arg, &t->result, &p);
    /* Relaxed: published by ox__task_mark_finished. */
    atomic_store_explicit(&t->panic, p, memory_order_relaxed);
    ox__task_mark_finished(t);
    ox__task_release(t); /* the pool's reference */
}

static void *pool_thread(void *unused)
{
    (void)unused;
    if (ox_mutex_lock(&pool.lock) != 0)
        ox_mutex_clear_poison(&pool.lock); /* a job never runs under it */
    for (;;) {
        ox_task *t = pool.head;
        if (t == NULL) {
            pool.idle++;
            int rc = ox_condvar_wait_timeout(&pool.work, &pool.lock, OX__BLOCKING_KEEP_ALIVE);
            pool.idle--;
            if (pool.woken > 0)
                pool.woken--; /* ours, or one whose thread finds no job left */
            if (rc == OX_ETIMEDOUT && pool.head == NULL)
                break;
            continue;
        }
        pool.head = t->next;
        if (pool.head == NULL)
            pool.tail = NULL;
        ox_mutex_unlock(&pool.lock);
        run_job(t);
        if (ox_mutex_lock(&pool.lock) != 0)
            ox_mutex_clear_poison(&pool.lock);
    }
    pool.threads--;
    ox_mutex_unlock(&pool.lock);
    return NULL;
}

int ox_task_spawn_blocking(void *(*fn)(void *), void *arg, ox_task_handle *out)
{
    if (fn == NULL)
        return OX_EINVAL;
    ox_task *t = ox__task_alloc();
    if (t == NULL)
        return ENOMEM;
    t->fn = fn;
    t->arg = arg;
    atomic_init(&t->refs, 2); /* the handle's and the pool's */
    if (ox_mutex_lock(&pool.lock) != 0)
        ox_mutex_clear_poison(&pool.lock);
    t->next = NULL;
    if (pool.tail != NULL)
        pool.tail->next = t;
    else
        pool.head = t;
    pool.tail = t;
    /* An idle thread not yet woken for another job takes it, else a new
     * thread (at the maximum, the job waits for a busy thread). */
    bool wake = pool.idle > pool.woken;
    bool start = !wake && pool.threads < OX__BLOCKING_MAX;
    if (wake)
        pool.woken++;
    if (start)
        pool.threads++;
    ox_mutex_unlock(&pool.lock);
    if (start) {
        ox_thread_builder b = OX_THREAD_BUILDER_INIT;
        ox_thread_builder_name(&b, "oxide-blocking");
        ox_join_handle h;
        if (ox_thread_builder_spawn(&b, pool_thread, NULL, &h) == 0) {
            ox_join_handle_drop(&h);
        } else {
            /* The job waits for a thread that exists (or the next spawn's). */
            if (ox_mutex_lock(&pool.lock) != 0)
                ox_mutex_clear_poison(&pool.lock);
            pool.threads--;
            bool none = pool.threads == 0;
            ox_mutex_unlock(&pool.lock);
            if (none)
                ox_abort("ox_task_spawn_blocking", "cannot start a blocking-pool thread");
        }
    } else if (wake) {
        ox_condvar_notify_one(&pool.work);
    }
    out->task = t;
    return 0;
}
