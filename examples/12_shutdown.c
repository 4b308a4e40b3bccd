/* 12_shutdown.c - graceful shutdown (guide section 12): worker threads take
 * jobs from a shared channel and stop either on a shutdown message or when
 * the job channel is closed (every sender dropped). Results and "stopped"
 * notes come back on a second channel, which closes once every worker has
 * dropped its sender: the main thread knows then that all are done. */
#include <oxide.h>
#include <stdio.h>

#define WORKERS 3
#define JOBS    10

typedef enum { JOB, SHUTDOWN } command_kind;
typedef struct command {
    command_kind kind;
    long n;
} command;

typedef enum { RESULT, STOPPED_BY_MESSAGE, STOPPED_BY_CLOSE } report_kind;
typedef struct report {
    report_kind kind;
    long value;
} report;

typedef struct worker {
    ox_receiver *jobs;  /* owned by the worker */
    ox_sender *reports; /* owned by the worker */
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    report r = {STOPPED_BY_CLOSE, 0};
    command c;
    while (ox_receiver_recv(w->jobs, &c) == 0) {
        if (c.kind == SHUTDOWN) {
            r.kind = STOPPED_BY_MESSAGE;
            break;
        }
        report result = {RESULT, c.n * c.n};
        if (ox_sender_send(w->reports, &result) != 0)
            break; /* nobody reads the reports any more */
    }
    /* Either way: say why (if anybody still listens), then let go of both
     * channels. */
    (void)!ox_sender_send(w->reports, &r);
    ox_sender_drop(w->reports);
    ox_receiver_drop(w->jobs);
    return NULL;
}

static void run_phase(int by_message)
{
    ox_sender *jobs_tx, *reports_tx;
    ox_receiver *jobs_rx, *reports_rx;
    /* The job channel is bounded: back-pressure. */
    if (ox_channel(sizeof(command), 4, &jobs_tx, &jobs_rx) != 0 ||
        ox_channel(sizeof(report), OX_UNBOUNDED, &reports_tx, &reports_rx) != 0)
        ox_panic("cannot create the channels");

    worker w[WORKERS];
    ox_join_handle h[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        w[i].jobs = ox_receiver_clone(jobs_rx);
        w[i].reports = ox_sender_clone(reports_tx);
        h[i] = ox_thread_spawn(work, &w[i]);
    }
    /* The workers hold their own handles; ours would keep the channels
     * open forever. */
    ox_receiver_drop(jobs_rx);
    ox_sender_drop(reports_tx);

    for (long n = 1; n <= JOBS; n++) {
        command c = {JOB, n};
        if (ox_sender_send(jobs_tx, &c) != 0)
            ox_panic("every worker is gone");
    }
    if (by_message) {
        for (int i = 0; i < WORKERS; i++) {
            command c = {SHUTDOWN, 0};
            if (ox_sender_send(jobs_tx, &c) != 0)
                ox_panic("every worker is gone");
        }
    }
    ox_sender_drop(jobs_tx); /* closes the job channel */

    long sum = 0;
    int by_msg = 0, by_close = 0;
    report r;
    OX_CHANNEL_FOR_EACH(reports_rx, &r)
    {
        if (r.kind == RESULT)
            sum += r.value;
        else if (r.kind == STOPPED_BY_MESSAGE)
            by_msg++;
        else
            by_close++;
    }
    ox_receiver_drop(reports_rx);
    for (int i = 0; i < WORKERS; i++)
        if (ox_thread_join(&h[i], NULL, NULL) != 0)
            ox_panic("a thread panicked"); /* Rust: join().unwrap() */

    printf("sum of squares 1..%d = %ld\n", JOBS, sum);
    if (by_msg)
        printf("workers stopped by a shutdown message: %d\n", by_msg);
    if (by_close)
        printf("workers stopped because the job channel closed: %d\n", by_close);
}

int main(void)
{
    printf("Phase 1: shutdown messages\n");
    run_phase(1);
    printf("Phase 2: closing the job channel\n");
    run_phase(0);
    printf("All workers stopped cleanly.\n");
    return 0;
}
