/* Guide §4: Send and Sync. Rust's compiler checks which values may move to
 * another thread (Send) and which may be shared between threads (Sync). A C
 * compiler checks neither: in C they are rules you keep, and oxide's
 * handles make them visible.
 *
 *  1. Send is a move: a heap value handed to another thread (through
 *     spawn's argument or a channel) belongs to the thread that receives
 *     it, which frees it; the sender forgets its pointer at once.
 *  2. Sync is sharing only what cannot race: data every thread may change
 *     sits behind a lock (Rust's Arc<Mutex<T>>), or is atomic, or is
 *     never changed.
 *  3. A handle has one owner. A channel end, a join handle, an Arc
 *     reference belongs to one thread; to share it, clone it
 *     (ox_sender_clone, ox_arc_clone) and give each thread its own, which
 *     that thread drops.
 *  4. What no compiler checks in C, a tool can: run with --racy, the
 *     threads update a plain long without the lock (Rust's Arc<Cell<i64>>,
 *     which does not compile because Cell is not Sync). Updates get lost,
 *     and ThreadSanitizer names the race:
 *
 *       make SAN=tsan CC=clang build/tsan/examples/04_send_sync
 *       build/tsan/examples/04_send_sync --racy
 *
 *     prints "WARNING: ThreadSanitizer: data race" with both threads'
 *     stacks (the write in add_racy, twice) and exits with status 66. The
 *     default run, which keeps the rules, is clean under ThreadSanitizer.
 */
#include <oxide.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- 1. Send: ownership moves with the message ---- */

struct job {
    int id;
    char what[32];
};

static void *worker(void *arg)
{
    ox_receiver *rx = arg; /* this thread's handle: it drops it */
    struct job *job;       /* the message is the pointer: it moves */
    int done = 0;
    OX_CHANNEL_FOR_EACH(rx, &job)
    {
        printf("worker: job %d \"%s\" done, freed\n", job->id, job->what);
        free(job); /* the worker owns it now: nobody else may */
        done++;
    }
    printf("worker: channel closed after %d jobs\n", done);
    ox_receiver_drop(rx);
    return NULL;
}

static void send_jobs(void)
{
    ox_sender *tx;
    ox_receiver *rx;
    if (ox_channel(sizeof(struct job *), OX_UNBOUNDED, &tx, &rx) != 0)
        ox_panic("cannot create the channel");
    ox_join_handle h = ox_thread_spawn(worker, rx); /* rx moves to the worker */
    rx = NULL;

    static const char *const what[] = {"resize images", "send invoices", "rotate logs"};
    for (int i = 0; i < 3; i++) {
        struct job *job = malloc(sizeof *job);
        if (job == NULL)
            ox_panic("out of memory");
        job->id = i + 1;
        snprintf(job->what, sizeof job->what, "%s", what[i]);
        if (ox_sender_send(tx, &job) != 0) {
            free(job); /* not sent: still ours (Rust's SendError gives it back) */
            ox_panic("the worker is gone");
        }
        job = NULL; /* moved: Rust would reject any later use */
    }
    ox_sender_drop(tx); /* closes the channel: the worker's loop ends */
    if (ox_thread_join(&h, NULL, NULL) != 0)
        ox_panic("the worker panicked"); /* Rust: join().unwrap() */
}

/* ---- 2 and 3. Sync: shared state behind a lock, one handle per thread ---- */

#define THREADS 4
#define ADDS    200000

struct counter {
    ox_barrier start; /* lets the threads begin together, so that they overlap */
    ox_mutex lock;
    long value;         /* guarded by lock */
    volatile long racy; /* guarded by nothing: for --racy only */
};

static void *add_locked(void *arg)
{
    struct counter *c = arg;          /* one Arc reference, owned by this thread */
    (void)ox_barrier_wait(&c->start); /* true in one thread: no use here */
    for (int i = 0; i < ADDS; i++) {
        if (ox_mutex_lock(&c->lock) != 0)
            ox_panic("PoisonError"); /* Rust: lock().unwrap() */
        c->value++;
        ox_mutex_unlock(&c->lock);
    }
    ox_arc_drop(c);
    return NULL;
}

static void *add_racy(void *arg)
{
    struct counter *c = arg;
    (void)ox_barrier_wait(&c->start);
    /* volatile makes each ++ a load and a store of its own, as unoptimised
     * code would; it does not make them atomic, so two threads overwrite
     * each other's updates. */
    for (int i = 0; i < ADDS; i++)
        c->racy++;
    ox_arc_drop(c);
    return NULL;
}

static void share_counter(bool racy)
{
    struct counter *c = ox_arc_new(sizeof *c, NULL); /* zeroed: the mutex is ready */
    if (ox_barrier_init(&c->start, THREADS) != 0)
        ox_panic("too many threads for a barrier");
    ox_join_handle h[THREADS];
    for (int i = 0; i < THREADS; i++)
        h[i] = ox_thread_spawn(racy ? add_racy : add_locked, ox_arc_clone(c));
    for (int i = 0; i < THREADS; i++)
        if (ox_thread_join(&h[i], NULL, NULL) != 0)
            ox_panic("a thread panicked"); /* Rust: join().unwrap() */

    long expected = (long)THREADS * ADDS;
    if (!racy) {
        /* Every thread has joined: main's reference is the only one. */
        printf("total = %ld (expected %ld), Arc references left: %zu\n", c->value, expected,
               ox_arc_strong_count(c));
    } else {
        long got = c->racy;
        printf("racy total = %ld (expected %ld): %ld updates lost\n", got, expected,
               expected - got);
    }
    ox_arc_drop(c);
}

int main(int argc, char **argv)
{
    bool racy = argc > 1 && strcmp(argv[1], "--racy") == 0;
    if (racy) {
        printf("Racy: %d threads add to a plain long with no lock (Rust would not compile "
               "this)\n",
               THREADS);
        fflush(stdout); /* before the race: TSan with halt_on_error=1 ends the run there */
        share_counter(true);
        return 0;
    }
    printf("Send: each job moves to the worker, which frees it\n");
    send_jobs();
    printf("Sync: %d threads share one counter behind a mutex, each with its own Arc\n", THREADS);
    share_counter(false);
    return 0;
}
