/* Guide §9-10: what concurrency costs, measured on this machine. The guide
 * says that creating a thread and switching between threads are expensive,
 * an uncontended lock is cheap, a channel operation is O(1), and tasks are
 * lighter than threads. This program times each, in nanoseconds per
 * operation:
 *
 *   - spawning a thread and joining it (an empty function);
 *   - locking and unlocking a mutex nobody else wants;
 *   - a send and a receive on a channel that never has to wait;
 *   - a context switch between two threads: pinned to one CPU, they take
 *     turns, each unparking the other and parking until its turn comes back;
 *   - for contrast, a task spawn + join, and a task switch: two tasks on a
 *     runtime with one worker thread take turns with ox_task_yield (the
 *     worker switches stacks itself; the kernel is not involved).
 *
 * Each operation runs in a loop for about BUDGET_MS, five times; the best
 * of the five is printed (the least disturbed by other programs). The
 * numbers vary from run to run and from machine to machine; the ratios
 * between them tell more. Build with -O2 (make does). */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET, sched_getcpu */
#include <oxide.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>

#define BUDGET_MS 20

/* ---- the timing loop ---- */

/* A measured operation: runs it n times, returns the nanoseconds taken. */
typedef double (*bench_fn)(long n);

static double elapsed_ns(ox_instant start)
{
    return (double)ox_instant_diff(ox_instant_now(), start);
}

/* Doubles n until a run takes a quarter of the budget, scales n to the
 * budget, then returns the best time per operation of five runs. */
static double per_op(bench_fn run)
{
    const double budget = (double)OX_MILLIS(BUDGET_MS);
    long n = 1;
    double ns;
    while ((ns = run(n)) < budget / 4 && n < (1L << 40))
        n *= 2;
    if (ns < budget) /* ns >= budget / 4 > 0 here, unless n reached its cap */
        n = (long)((double)n * budget / (ns > 1 ? ns : 1));
    double best = ns / (double)n;
    for (int i = 0; i < 5; i++) {
        double t = run(n) / (double)n;
        if (t < best)
            best = t;
    }
    return best;
}

/* ---- threads and locks ---- */

static void *nothing(void *arg)
{
    return arg;
}

static double thread_spawn_join(long n)
{
    ox_instant start = ox_instant_now();
    for (long i = 0; i < n; i++) {
        ox_join_handle h = ox_thread_spawn(nothing, NULL);
        if (ox_thread_join(&h, NULL, NULL) != 0)
            ox_panic("an empty thread panicked");
    }
    return elapsed_ns(start);
}

static ox_mutex lock = OX_MUTEX_INIT;
static long guarded; /* guarded by lock */

static double mutex_lock_unlock(long n)
{
    ox_instant start = ox_instant_now();
    for (long i = 0; i < n; i++) {
        if (ox_mutex_lock(&lock) != 0)
            ox_panic("PoisonError"); /* Rust: lock().unwrap() */
        guarded++;
        ox_mutex_unlock(&lock);
    }
    return elapsed_ns(start);
}

static double channel_send_recv(long n)
{
    ox_sender *tx;
    ox_receiver *rx;
    if (ox_channel(sizeof(long), 1, &tx, &rx) != 0)
        ox_panic("cannot create a channel");
    ox_instant start = ox_instant_now();
    for (long i = 0; i < n; i++) {
        long v;
        if (ox_sender_send(tx, &i) != 0 || ox_receiver_recv(rx, &v) != 0 || v != i)
            ox_panic("the channel lost a message");
    }
    double ns = elapsed_ns(start);
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
    return ns;
}

/* ---- a context switch: two threads on one CPU take turns ---- */

/* Each player makes its move, unparks the other and parks until the turn
 * is its own again. Both run on one CPU, so every hand-off is the kernel
 * switching from one thread to the other. */
struct table {
    _Atomic long turn;    /* the moves made so far: player 0 moves on even, 1 on odd */
    long moves;           /* when to stop */
    ox_thread *player[2]; /* borrowed from main's join handles */
    int cpu;              /* the CPU both run on; -1: not pinned */
    double ns;            /* player 0: the time its moves took */
};

struct seat {
    struct table *table;
    int me;
};

/* Runs the calling thread on cpu only. Returns false if the OS refuses. */
static bool pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0; /* 0: the calling thread */
}

static void *play(void *arg)
{
    const struct seat *seat = arg;
    struct table *t = seat->table;
    if (t->cpu >= 0 && !pin_to(t->cpu))
        t->cpu = -1; /* reported by main: the switches were not forced */
    ox_instant start = ox_instant_now();
    for (long move = seat->me; move < t->moves; move += 2) {
        /* Acquire: pairs with the other player's release store (or main's
         * first one), so its move, and main's writes of player[], are seen. */
        while (atomic_load_explicit(&t->turn, memory_order_acquire) != move)
            ox_thread_park(); /* until unparked (a wake-up may be spurious) */
        if (move == 0)
            start = ox_instant_now(); /* from the first move: both are running */
        /* Release: this move happens-before the other player's acquire. */
        atomic_store_explicit(&t->turn, move + 1, memory_order_release);
        ox_thread_unpark(t->player[1 - seat->me]);
    }
    if (seat->me == 0)
        t->ns = elapsed_ns(start);
    return NULL;
}

static int switch_cpu; /* the CPU for the players; -1 if they could not be pinned */

static double thread_switch(long n)
{
    struct table t = {.turn = -1, .moves = n, .cpu = switch_cpu};
    struct seat seats[2] = {{&t, 0}, {&t, 1}};
    ox_join_handle h[2];
    for (int i = 0; i < 2; i++)
        h[i] = ox_thread_spawn(play, &seats[i]);
    for (int i = 0; i < 2; i++)
        t.player[i] = ox_join_handle_thread(&h[i]);
    /* Release: publishes player[] with the first turn. */
    atomic_store_explicit(&t.turn, 0, memory_order_release);
    ox_thread_unpark(t.player[0]);
    for (int i = 0; i < 2; i++)
        if (ox_thread_join(&h[i], NULL, NULL) != 0)
            ox_panic("a player panicked");
    if (t.cpu < 0)
        switch_cpu = -1;
    return t.ns; /* about n hand-offs */
}

/* ---- tasks ---- */

static ox_runtime *one_worker; /* a runtime with a single worker thread */

static void *task_spawn_join_loop(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        ox_task_handle h = ox_task_spawn(nothing, NULL); /* on the current runtime */
        if (ox_task_join(&h, NULL, NULL) != 0)
            ox_panic("an empty task panicked");
    }
    return NULL;
}

/* Runs fn(arg) as a task on one_worker and waits for it (from main). */
static void run_task(void *(*fn)(void *), void *arg)
{
    ox_task_builder b = OX_TASK_BUILDER_INIT;
    b.runtime = one_worker;
    ox_task_handle h;
    if (ox_task_builder_spawn(&b, fn, arg, &h) != 0)
        ox_panic("cannot spawn a task");
    if (ox_task_join(&h, NULL, NULL) != 0)
        ox_panic("a task panicked");
}

static double task_spawn_join(long n)
{
    ox_instant start = ox_instant_now();
    run_task(task_spawn_join_loop, &n); /* counts one task spawn too many: n is large */
    return elapsed_ns(start);
}

static void *yield_loop(void *arg)
{
    long n = *(const long *)arg;
    for (long i = 0; i < n; i++)
        ox_task_yield(); /* the other task runs, then this one again */
    return NULL;
}

static void *two_yielders(void *arg)
{
    ox_task_handle a = ox_task_spawn(yield_loop, arg), b = ox_task_spawn(yield_loop, arg);
    if (ox_task_join(&a, NULL, NULL) != 0 || ox_task_join(&b, NULL, NULL) != 0)
        ox_panic("a task panicked");
    return NULL;
}

static double task_switch(long n)
{
    long each = n / 2 + 1; /* two tasks take turns: n switches in all */
    ox_instant start = ox_instant_now();
    run_task(two_yielders, &each);
    return elapsed_ns(start);
}

/* ---- the report ---- */

int main(void)
{
    ox_runtime_builder rb = OX_RUNTIME_BUILDER_INIT;
    rb.workers = 1;
    rb.name = "costs";
    if (ox_runtime_new(&rb, &one_worker) != 0)
        ox_panic("cannot start a runtime");
    switch_cpu = sched_getcpu(); /* -1 if unknown: then not pinned */

    double spawn = per_op(thread_spawn_join);
    double lock_ns = per_op(mutex_lock_unlock);
    double chan = per_op(channel_send_recv);
    double tswitch = per_op(thread_switch);
    double task_spawn = per_op(task_spawn_join);
    double task_sw = per_op(task_switch);
    ox_runtime_shutdown(one_worker);

    printf("What each operation costs on this machine (ns, best of 5 runs):\n");
    printf("  thread spawn + join:                   %10.1f ns\n", spawn);
    printf("  mutex lock + unlock, uncontended:      %10.1f ns\n", lock_ns);
    printf("  channel send + recv, no waiting:       %10.1f ns\n", chan);
    printf("  thread context switch (park/unpark):   %10.1f ns\n", tswitch);
    printf("  task spawn + join (one worker):        %10.1f ns\n", task_spawn);
    printf("  task switch (yield, one worker):       %10.1f ns\n", task_sw);
    if (switch_cpu < 0)
        printf("(the two threads could not be pinned to one CPU: their hand-offs may "
               "have been between CPUs)\n");
    printf("A thread spawn costs as much as %.1f task spawns; a thread switch, as %.1f task "
           "switches.\n",
           spawn / task_spawn, tswitch / task_sw);
    return 0;
}
