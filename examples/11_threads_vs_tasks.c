/* 11_threads_vs_tasks.c - guide section 11: the same I/O-shaped job run by
 * 10 000 threads and by 10 000 tasks. Each job "waits for I/O" (a 20 ms
 * sleep), then does a little work and reports on a channel. A thread's
 * sleep holds an OS thread and its stack the whole time; a task's frees
 * its worker for the others, so 10 000 tasks need only the workers and a
 * small stack each. Prints the wall time and the memory each model took
 * (peak resident memory above the starting point, from /proc). */
#include <oxide.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define JOBS 10000

static ox_sender *results; /* cloned by each job */

static long resident_kib(void)
{
    /* VmHWM: the peak resident set, so a model's high-water mark shows even
     * after it has finished. Reset between the models (clear_refs). */
    FILE *f = fopen("/proc/self/status", "r");
    long kib = -1;
    char line[256];
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib;
}

static void reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f != NULL) {
        fputs("5", f); /* 5: reset the peak resident set to the current one */
        fclose(f);
    }
}

static void *job(void *arg)
{
    ox_sender *tx = arg;
    /* "Waiting for I/O": in a task this suspends the task only. */
    if (ox_task_sleep(OX_MILLIS(20)) != 0) { /* aborted: nothing to report */
        ox_sender_drop(tx);
        return NULL;
    }
    long one = 1;
    if (ox_sender_send(tx, &one) != 0)
        ox_panic("nobody counts the results");
    ox_sender_drop(tx);
    return NULL;
}

static long collect(ox_receiver *rx)
{
    long sum = 0, v;
    while (ox_receiver_recv(rx, &v) == 0) /* until every job dropped its sender */
        sum += v;
    return sum;
}

typedef struct outcome {
    long done;
    double ms;
    long kib;
} outcome;

static outcome with_threads(void)
{
    ox_receiver *rx;
    if (ox_channel(sizeof(long), OX_UNBOUNDED, &results, &rx) != 0)
        ox_panic("no channel");
    reset_peak();
    long before = resident_kib();
    ox_instant start = ox_instant_now();
    static ox_join_handle handles[JOBS];
    ox_thread_builder b = OX_THREAD_BUILDER_INIT;
    ox_thread_builder_stack_size(&b, 64 * 1024); /* already generous for this job */
    int spawned = 0;
    for (int i = 0; i < JOBS; i++) {
        if (ox_thread_builder_spawn(&b, job, ox_sender_clone(results), &handles[i]) != 0)
            break; /* the OS may refuse that many threads: report what ran */
        spawned++;
    }
    ox_sender_drop(results);
    for (int i = 0; i < spawned; i++)
        if (ox_thread_join(&handles[i], NULL, NULL) != 0)
            ox_panic("a job thread failed");
    long done = collect(rx);
    ox_receiver_drop(rx);
    return (outcome){done, ox_instant_diff(ox_instant_now(), start) / 1e6, resident_kib() - before};
}

static outcome with_tasks(void)
{
    ox_receiver *rx;
    if (ox_channel(sizeof(long), OX_UNBOUNDED, &results, &rx) != 0)
        ox_panic("no channel");
    (void)ox_runtime_default(); /* start the workers before measuring */
    reset_peak();
    long before = resident_kib();
    ox_instant start = ox_instant_now();
    ox_join_set *set;
    if (ox_join_set_new(&set) != 0)
        ox_panic("no memory");
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    b.stack_size = 64 * 1024;
    for (int i = 0; i < JOBS; i++)
        if (ox_join_set_spawn_with(set, &b, job, ox_sender_clone(results), NULL) != 0)
            ox_panic("cannot spawn a task");
    ox_sender_drop(results);
    long done = collect(rx);
    int rc;
    while ((rc = ox_join_set_join_next(set, NULL, NULL, NULL)) != OX_EEMPTY)
        if (rc != 0)
            ox_panic("a job task failed: %s", ox_strerror(rc));
    ox_join_set_drop(set);
    ox_receiver_drop(rx);
    return (outcome){done, ox_instant_diff(ox_instant_now(), start) / 1e6, resident_kib() - before};
}

int main(int argc, char **argv)
{
    /* --brief: only the lines that do not depend on the machine (tests). */
    bool brief = argc > 1 && strcmp(argv[1], "--brief") == 0;
    outcome t = with_threads();
    outcome k = with_tasks();
    printf("threads: %ld of %d jobs done\n", t.done, JOBS);
    printf("tasks:   %ld of %d jobs done\n", k.done, JOBS);
    if (!brief) {
        printf("threads: %8.1f ms, %7ld KiB more memory at the peak\n", t.ms, t.kib);
        printf("tasks:   %8.1f ms, %7ld KiB more memory at the peak\n", k.ms, k.kib);
    }
    return 0;
}
