/* 11_task_shutdown.c - graceful shutdown of a task tree. A supervisor task
 * runs three workers in a task scope; each worker serves jobs from a shared
 * channel and keeps a task-local tally. To stop, main aborts the
 * supervisor: its wait ends with OX_ECANCELED, it closes the job channel,
 * and the workers drain what is queued, report, and return. The scope
 * guarantees that the supervisor returns only after every worker has. */
#include <oxide.h>
#include <stdint.h>
#include <stdio.h>

#define WORKERS 3

static ox_sender *jobs_tx;
static ox_receiver *jobs_rx;
static ox_sender *done_tx;
static ox_mutex print_lock = OX_MUTEX_INIT;

static void tally_init(long *t)
{
    *t = 0;
}

OX_TASK_LOCAL(tally, long, tally_init, NULL);

static void *worker(void *arg)
{
    long id = (long)(intptr_t)arg;
    ox_receiver *rx = ox_receiver_clone(jobs_rx);
    long job;
    /* Ends when the channel is closed and drained (OX_EDISCONNECTED). */
    while (ox_receiver_recv(rx, &job) == 0)
        *OX_TASK_LOCAL_GET(tally) += job;
    ox_receiver_drop(rx);
    if (ox_mutex_lock(&print_lock) != 0)
        ox_panic("poisoned");
    printf("worker %ld stopped\n", id);
    ox_mutex_unlock(&print_lock);
    long total = *OX_TASK_LOCAL_GET(tally);
    if (ox_sender_send(done_tx, &total) != 0)
        ox_panic("main stopped listening");
    return NULL;
}

static void supervise(ox_task_scope *scope, void *arg)
{
    (void)arg;
    for (long i = 0; i < WORKERS; i++)
        (void)ox_task_scope_spawn(scope, worker, (void *)(intptr_t)i); /* the scope joins it */
    /* Wait until told to stop: the abort ends this sleep. */
    while (ox_task_sleep(OX_SECS(3600)) == 0) {
    }
    printf("supervisor: shutting down\n");
    ox_sender_drop(jobs_tx); /* workers drain the queue, then stop */
    jobs_tx = NULL;
}

static void *supervisor(void *arg)
{
    ox_task_scope_run(supervise, arg); /* returns when all workers have */
    printf("supervisor: all workers stopped\n");
    return NULL;
}

int main(void)
{
    ox_receiver *done_rx;
    if (ox_channel(sizeof(long), 16, &jobs_tx, &jobs_rx) != 0 ||
        ox_channel(sizeof(long), OX_UNBOUNDED, &done_tx, &done_rx) != 0)
        return 1;
    ox_task_handle sup = ox_task_spawn(supervisor, NULL);
    for (long job = 1; job <= 100; job++)
        if (ox_sender_send(jobs_tx, &job) != 0)
            return 1;
    ox_task_abort(&sup); /* the signal to stop (a Ctrl-C handler would do this) */
    if (ox_task_join(&sup, NULL, NULL) != 0)
        return 1;
    ox_sender_drop(done_tx);
    long total = 0, t;
    while (ox_receiver_recv(done_rx, &t) == 0)
        total += t;
    ox_receiver_drop(done_rx);
    ox_receiver_drop(jobs_rx);
    printf("jobs served: sum 1..100 = %ld\n", total);
    return 0;
}
