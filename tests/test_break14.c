/* Reproducers from trying to break the search before sleeping (runtime.c
 * search_before_sleep: a worker out of work polls for 10 us as the
 * searcher, and while one searches ox__runtime_wake_idle wakes nobody),
 * and the relaxed load of a channel context's selection after its wake
 * (waker.c ox__ctx_wait_until). Each test gives work to a runtime at
 * random moments relative to a worker's search (while it searches, between
 * the search and its registration as idle, while it sleeps) and checks
 * that the work runs within a generous bound, and that once everything is
 * done no worker is still counted as a searcher. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Spins (no yield, no park) until *flag is set, failing after the bound:
 * the work that sets it must run on another worker, or in the runtime
 * while this thread only watches. */
static void spin_until_set(const _Atomic int *flag, const char *what, long round)
{
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(2000));
    /* Acquire: pairs with the release store of the work that sets it. */
    while (atomic_load_explicit(flag, memory_order_acquire) == 0)
        if (ox_instant_now().ns > give_up)
            ox_test_fail(__FILE__, __LINE__, "%s of round %ld never ran (a lost wake-up)", what,
                         round);
}

/* ---- a child spawned by a busy task runs on another worker ----
 * A parent task spins (never letting its worker go) and spawns a child on
 * its own worker's queue at random moments after the previous child ended,
 * then spins until the child ran: only another worker can run it, and that
 * worker is then searching, between its search and its registration, or
 * asleep. Some children sleep a few microseconds first, so that a timer
 * comes due during a search, or sets the sleeper's deadline. */
typedef struct child_round {
    _Atomic int ran;
    int64_t sleep_ns;
} child_round;

static void *child_sets_flag(void *arg)
{
    child_round *c = arg;
    if (c->sleep_ns > 0)
        CHECK_EQ(ox_task_sleep(c->sleep_ns), 0);
    /* Release: pairs with spin_until_set's acquire. */
    atomic_store_explicit(&c->ran, 1, memory_order_release);
    return NULL;
}

/* A child that has not run, and sleeps up to 30 us first in a quarter of
 * the rounds. */
static void child_init(child_round *c, uint32_t *x)
{
    uint32_t v = ox_test_rand(x);
    c->sleep_ns = v % 4 == 0 ? (int64_t)(v >> 8) % 30000 : 0;
    atomic_init(&c->ran, 0);
}

typedef struct parent_job {
    ox_runtime *rt;
    uint32_t seed;
} parent_job;

static void *parent_spawns_and_spins(void *arg)
{
    parent_job *job = arg;
    ox_test_budget b = ox_test_budget_start(300, ox_test_scaled(20000));
    uint32_t x = job->seed;
    for (long r = 0; ox_test_budget_more(&b, r); r++) {
        child_round c;
        child_init(&c, &x);
        ox_task_handle h = ox_test_spawn_on(job->rt, child_sets_flag, &c);
        spin_until_set(&c.ran, "a child task", r);
        CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
        /* Up to 25 us: inside the other worker's search, after it, or
         * during one of the 8 sleeps without a search. */
        ox_test_spin_ns((int64_t)(ox_test_rand(&x) % 25000));
    }
    return NULL;
}

static void busy_parent_round(size_t workers)
{
    ox_runtime *rt = ox_test_runtime(workers);
    parent_job job = {.rt = rt, .seed = 0x9e3779b9u ^ (uint32_t)workers};
    ox_task_handle h = ox_test_spawn_on(rt, parent_spawns_and_spins, &job);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    ox_test_check_all_idle_no_searcher(rt);
    ox_runtime_shutdown(rt);
}

OX_TEST(break14_busy_task_child_runs_on_the_searching_or_sleeping_worker_2)
{
    busy_parent_round(2);
}

OX_TEST(break14_busy_task_child_runs_on_the_searching_or_sleeping_worker_4)
{
    busy_parent_round(4);
}

/* ---- a thread's spawns reach a runtime whose workers search or sleep ----
 * A thread spawns one task at a time at random moments after the last one
 * ran, and waits for it to run: the push goes to the injector while a
 * worker may be the searcher (the wake is then skipped), between its search
 * and idle_register, or asleep. One worker: nobody else can run it. */
static void thread_spawns_round(size_t workers)
{
    ox_runtime *rt = ox_test_runtime(workers);
    ox_test_budget b = ox_test_budget_start(300, ox_test_scaled(20000));
    uint32_t x = 0x2545f491u ^ (uint32_t)workers;
    for (long r = 0; ox_test_budget_more(&b, r); r++) {
        child_round c;
        child_init(&c, &x);
        ox_task_handle h = ox_test_spawn_on(rt, child_sets_flag, &c);
        spin_until_set(&c.ran, "a spawned task", r);
        ox_task_handle_drop(&h);
        ox_test_spin_ns((int64_t)(ox_test_rand(&x) % 25000));
    }
    ox_test_check_all_idle_no_searcher(rt);
    ox_runtime_shutdown(rt);
}

OX_TEST(break14_thread_spawn_reaches_a_searching_or_sleeping_worker_1)
{
    thread_spawns_round(1);
}

OX_TEST(break14_thread_spawn_reaches_a_searching_or_sleeping_worker_2)
{
    thread_spawns_round(2);
}

OX_TEST(break14_thread_spawn_reaches_a_searching_or_sleeping_worker_4)
{
    thread_spawns_round(4);
}

/* ---- a timer armed by a worker that then stays busy ----
 * A task sleeps a few microseconds (its worker arms the timer, perhaps
 * while the other worker searches: that arm's wake is then skipped) and a
 * second task, spawned right behind it, spins until the sleeper is done:
 * when both land on one worker only the other worker can fire the timer. */
typedef struct sleeper_round {
    child_round sleeper;
    _Atomic int hog_done;
    long round;
} sleeper_round;

static void *hog_until_sleeper_done(void *arg)
{
    sleeper_round *s = arg;
    spin_until_set(&s->sleeper.ran, "a due timer", s->round);
    atomic_store_explicit(&s->hog_done, 1, memory_order_release);
    return NULL;
}

static void timer_round(size_t workers)
{
    ox_runtime *rt = ox_test_runtime(workers);
    ox_test_budget b = ox_test_budget_start(300, ox_test_scaled(10000));
    uint32_t x = 0x1b873593u ^ (uint32_t)workers;
    for (long r = 0; ox_test_budget_more(&b, r); r++) {
        sleeper_round s = {.round = r};
        s.sleeper.sleep_ns = 1 + (int64_t)(ox_test_rand(&x) % 30000);
        atomic_init(&s.sleeper.ran, 0);
        atomic_init(&s.hog_done, 0);
        ox_task_handle t = ox_test_spawn_on(rt, child_sets_flag, &s.sleeper);
        ox_task_handle h = ox_test_spawn_on(rt, hog_until_sleeper_done, &s);
        spin_until_set(&s.hog_done, "the hog", r);
        CHECK_EQ(ox_task_join(&t, NULL, NULL), 0);
        CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
        ox_test_spin_ns((int64_t)(ox_test_rand(&x) % 25000));
    }
    ox_test_check_all_idle_no_searcher(rt);
    ox_runtime_shutdown(rt);
}

OX_TEST(break14_timer_armed_by_a_worker_that_stays_busy_fires_2)
{
    timer_round(2);
}

/* ---- readiness while one worker searches and another polls ----
 * A task waits on a pipe (the poller's work, invisible to a search); a
 * thread writes a byte at random moments and, in the same round, spawns a
 * short task, so that one worker runs it and then searches while another
 * sleeps in the poller. The reader must see every byte within the bound. */
typedef struct pipe_job {
    int rd;
    long rounds_read;
    _Atomic long acked;
} pipe_job;

static void *pipe_reader(void *arg)
{
    pipe_job *p = arg;
    for (;;) {
        char byte;
        ssize_t n = read(p->rd, &byte, 1);
        if (n == 1) {
            if (byte == 'q')
                return NULL;
            p->rounds_read++;
            /* Release: pairs with the writer's acquire. */
            atomic_store_explicit(&p->acked, p->rounds_read, memory_order_release);
            continue;
        }
        CHECK_EQ(n, -1);
        CHECK(errno == EAGAIN);
        CHECK_EQ(ox_fd_wait(p->rd, OX_IO_READABLE, ox_instant_after(ox_test_bound(OX_SECS(2)))), 0);
    }
}

static void pipe_round(size_t workers)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    CHECK_EQ(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    ox_runtime *rt = ox_test_runtime(workers);
    pipe_job p = {.rd = fds[0]};
    atomic_init(&p.acked, 0);
    ox_task_handle reader = ox_test_spawn_on(rt, pipe_reader, &p);
    ox_test_budget b = ox_test_budget_start(300, ox_test_scaled(10000));
    uint32_t x = 0x68e31da4u ^ (uint32_t)workers;
    long r;
    for (r = 0; ox_test_budget_more(&b, r); r++) {
        child_round c = {.sleep_ns = 0};
        atomic_init(&c.ran, 0);
        ox_task_handle h = ox_test_spawn_on(rt, child_sets_flag, &c);
        ox_test_spin_ns((int64_t)(ox_test_rand(&x) % 15000));
        CHECK_EQ(write(fds[1], "x", 1), 1);
        spin_until_set(&c.ran, "a short task", r);
        ox_task_handle_drop(&h);
        int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_MILLIS(2000));
        /* Acquire: pairs with the reader's release. */
        while (atomic_load_explicit(&p.acked, memory_order_acquire) != r + 1)
            if (ox_instant_now().ns > give_up)
                ox_test_fail(__FILE__, __LINE__, "byte %ld never read (a lost readiness)", r);
        ox_test_spin_ns((int64_t)(ox_test_rand(&x) % 25000));
    }
    CHECK_EQ(write(fds[1], "q", 1), 1);
    CHECK_EQ(ox_task_join(&reader, NULL, NULL), 0);
    CHECK_EQ(p.rounds_read, r);
    ox_test_check_all_idle_no_searcher(rt);
    ox_runtime_shutdown(rt);
    close(fds[0]);
    close(fds[1]);
}

/* One worker: while it searches nobody polls, and the search does not see
 * the descriptor; after it, the worker must sleep in the poller. */
OX_TEST(break14_pipe_readiness_while_a_worker_searches_1)
{
    pipe_round(1);
}

OX_TEST(break14_pipe_readiness_while_a_worker_searches_2)
{
    pipe_round(2);
}

OX_TEST(break14_pipe_readiness_while_a_worker_searches_3)
{
    pipe_round(3);
}

/* ---- a rendezvous copy is seen by a waiter woken by the claimer ----
 * ox__ctx_wait_until returns the selection with a relaxed load after the
 * wake's acquire: the claimer's copy into the waiter's buffer (zero.c)
 * must still happen-before the waiter's read of it. Tasks receive what
 * threads send, and threads what tasks send, 64-byte messages whose every
 * word is checked; TSan reports the copy as a race if the wake did not
 * order it. */
enum { MSG_WORDS = 8 };
typedef struct msg {
    uint64_t w[MSG_WORDS];
} msg;

typedef struct rdv_job {
    ox_sender *tx;
    ox_receiver *rx;
    long n;
    uint64_t id;
} rdv_job;

static void *rdv_send(void *arg)
{
    rdv_job *j = arg;
    for (long k = 0; k < j->n; k++) {
        msg m;
        for (int i = 0; i < MSG_WORDS; i++)
            m.w[i] = (j->id << 48) ^ ((uint64_t)k << 8) ^ (uint64_t)i;
        CHECK_EQ(ox_sender_send(j->tx, &m), 0);
    }
    ox_sender_drop(j->tx);
    return NULL;
}

static void *rdv_recv(void *arg)
{
    rdv_job *j = arg;
    for (long k = 0; k < j->n; k++) {
        msg m;
        memset(&m, 0xa5, sizeof m);
        CHECK_EQ(ox_receiver_recv(j->rx, &m), 0);
        for (int i = 0; i < MSG_WORDS; i++)
            CHECK_EQ(m.w[i], (j->id << 48) ^ ((uint64_t)k << 8) ^ (uint64_t)i);
    }
    ox_receiver_drop(j->rx);
    return NULL;
}

static void rendezvous_round(size_t workers)
{
    ox_runtime *rt = ox_test_runtime(workers);
    long n = ox_test_scaled(20000);
    rdv_job to_task = {.n = n, .id = 1}, to_thread = {.n = n, .id = 2};
    CHECK_EQ(ox_channel(sizeof(msg), 0, &to_task.tx, &to_task.rx), 0);
    CHECK_EQ(ox_channel(sizeof(msg), 0, &to_thread.tx, &to_thread.rx), 0);
    ox_task_handle receiver = ox_test_spawn_on(rt, rdv_recv, &to_task);
    ox_task_handle sender = ox_test_spawn_on(rt, rdv_send, &to_thread);
    ox_join_handle ts = ox_test_spawn_named("rdv-send", rdv_send, &to_task);
    ox_join_handle tr = ox_test_spawn_named("rdv-recv", rdv_recv, &to_thread);
    ox_test_join(&ts);
    ox_test_join(&tr);
    CHECK_EQ(ox_task_join(&receiver, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&sender, NULL, NULL), 0);
    ox_test_check_all_idle_no_searcher(rt);
    ox_runtime_shutdown(rt);
}

OX_TEST(break14_rendezvous_copy_is_seen_after_the_wake_1)
{
    rendezvous_round(1);
}

OX_TEST(break14_rendezvous_copy_is_seen_after_the_wake_2)
{
    rendezvous_round(2);
}
