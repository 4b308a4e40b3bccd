/* Signals as channel messages and Notify wake-ups (oxide/signal.h): a
 * raised signal reaches a thread and a task, every delivery is one
 * message (none lost while threads raise concurrently), every listener
 * gets each delivery, a handler installed before still runs, and once
 * nobody listens the signal does what it did before (here: ends the
 * process). */
#include "oxide.h"
#include "runner.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* Receives one signal, failing the test if none comes in time. */
static int recv_signal(ox_receiver *rx)
{
    int sig = 0;
    CHECK_EQ(ox_receiver_recv_timeout(rx, &sig, ox_test_bound(OX_SECS(10))), 0);
    return sig;
}

OX_TEST(signal_channel_gets_raise_and_kill)
{
    int sigs[] = {SIGUSR1};
    ox_receiver *rx;
    CHECK_EQ(ox_signal_channel(sigs, 1, &rx), 0);
    CHECK_EQ(raise(SIGUSR1), 0); /* thread-directed */
    CHECK_EQ(recv_signal(rx), SIGUSR1);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0); /* process-directed */
    CHECK_EQ(recv_signal(rx), SIGUSR1);
    int extra;
    CHECK_EQ(ox_receiver_try_recv(rx, &extra), OX_EEMPTY);
    ox_receiver_drop(rx);
}

OX_TEST(signal_channel_rejects_what_cannot_be_listened_to)
{
    ox_receiver *rx = NULL;
    int bad[] = {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, 0, -1, 65};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(ox_signal_channel(&bad[i], 1, &rx), OX_EINVAL);
        CHECK_EQ(ox_signal_notify(bad[i], &(ox_notify){0}), OX_EINVAL);
    }
    int ok[] = {SIGUSR1};
    CHECK_EQ(ox_signal_channel(ok, 0, &rx), OX_EINVAL);
    CHECK_EQ(ox_signal_channel(NULL, 1, &rx), OX_EINVAL);
    CHECK_EQ(ox_signal_channel(ok, 1, NULL), OX_EINVAL);
    CHECK(rx == NULL);
    ox_notify n = OX_NOTIFY_INIT;
    CHECK_EQ(ox_signal_notify_remove(SIGUSR1, &n), OX_EINVAL); /* never added */
}

OX_TEST(signal_channel_of_several_signals_counts_each_delivery)
{
    int sigs[] = {SIGUSR1, SIGUSR2, SIGHUP};
    ox_receiver *rx;
    CHECK_EQ(ox_signal_channel(sigs, 3, &rx), 0);
    /* raise() runs the handler before it returns: three deliveries. */
    for (int i = 0; i < 3; i++)
        CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(raise(SIGHUP), 0);
    int seen[65] = {0};
    for (int i = 0; i < 5; i++)
        seen[recv_signal(rx)]++;
    CHECK_EQ(seen[SIGUSR1], 3);
    CHECK_EQ(seen[SIGUSR2], 1);
    CHECK_EQ(seen[SIGHUP], 1);
    ox_receiver_drop(rx);
}

/* Two channels and a Notify on one signal: each gets every delivery. */
OX_TEST(signal_reaches_every_listener)
{
    int sigs[] = {SIGUSR2};
    ox_receiver *a, *b;
    ox_notify n = OX_NOTIFY_INIT;
    CHECK_EQ(ox_signal_channel(sigs, 1, &a), 0);
    CHECK_EQ(ox_signal_channel(sigs, 1, &b), 0);
    CHECK_EQ(ox_signal_notify(SIGUSR2, &n), 0);
    for (int round = 0; round < 20; round++) {
        CHECK_EQ(raise(SIGUSR2), 0);
        CHECK_EQ(recv_signal(a), SIGUSR2);
        CHECK_EQ(recv_signal(b), SIGUSR2);
        CHECK_EQ(ox_notify_wait_timeout(&n, ox_test_bound(OX_SECS(10))), 0);
    }
    CHECK_EQ(ox_signal_notify_remove(SIGUSR2, &n), 0);
    CHECK_EQ(ox_signal_notify_remove(SIGUSR2, &n), OX_EINVAL);
    ox_receiver_drop(a);
    /* b still listens: a delivery reaches it, and the dead a is skipped. */
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(recv_signal(b), SIGUSR2);
    ox_receiver_drop(b);
}

/* ---- tasks ---- */

static void *task_recv_signal(void *arg)
{
    return (void *)(intptr_t)recv_signal(arg);
}

static void *task_wait_notify(void *arg)
{
    return (void *)(intptr_t)ox_notify_wait(arg);
}

OX_TEST(signal_wakes_a_task_through_a_channel_and_a_notify)
{
    int sigs[] = {SIGTERM};
    ox_receiver *rx;
    static ox_notify n = OX_NOTIFY_INIT;
    CHECK_EQ(ox_signal_channel(sigs, 1, &rx), 0);
    CHECK_EQ(ox_signal_notify(SIGINT, &n), 0);
    ox_runtime_builder rb = OX_RUNTIME_BUILDER_INIT;
    rb.workers = 1;
    ox_runtime *rt;
    CHECK_EQ(ox_runtime_new(&rb, &rt), 0);
    ox_task_builder tb = OX_TASK_BUILDER_INIT;
    tb.runtime = rt;
    ox_task_handle h1, h2;
    CHECK_EQ(ox_task_builder_spawn(&tb, task_recv_signal, rx, &h1), 0);
    CHECK_EQ(ox_task_builder_spawn(&tb, task_wait_notify, &n, &h2), 0);
    /* Whether the tasks wait yet or not, the message and the permit keep. */
    CHECK_EQ(kill(getpid(), SIGTERM), 0);
    CHECK_EQ(kill(getpid(), SIGINT), 0);
    void *r1, *r2;
    CHECK_EQ(ox_task_join(&h1, &r1, NULL), 0);
    CHECK_EQ(ox_task_join(&h2, &r2, NULL), 0);
    CHECK_EQ((intptr_t)r1, SIGTERM);
    CHECK_EQ((intptr_t)r2, 0);
    ox_runtime_shutdown(rt);
    CHECK_EQ(ox_signal_notify_remove(SIGINT, &n), 0);
    ox_receiver_drop(rx);
}

/* ---- no delivery lost: threads raise concurrently ---- */

typedef struct raiser {
    long rounds;
} raiser;

static void *raise_many(void *arg)
{
    const raiser *r = arg;
    for (long i = 0; i < r->rounds; i++) {
        CHECK_EQ(raise(SIGUSR1), 0);
        CHECK_EQ(raise(SIGUSR2), 0);
    }
    return NULL;
}

OX_TEST(signal_deliveries_from_racing_threads_are_all_received)
{
    int sigs[] = {SIGUSR1, SIGUSR2};
    ox_receiver *rx;
    CHECK_EQ(ox_signal_channel(sigs, 2, &rx), 0);
    raiser r = {.rounds = ox_test_scaled(2000)};
    ox_join_handle h[3];
    for (int i = 0; i < 3; i++)
        h[i] = ox_thread_spawn(raise_many, &r);
    long usr1 = 0, usr2 = 0;
    for (long i = 0; i < 6 * r.rounds; i++) {
        int sig = recv_signal(rx);
        usr1 += sig == SIGUSR1;
        usr2 += sig == SIGUSR2;
    }
    for (int i = 0; i < 3; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(usr1, 3 * r.rounds);
    CHECK_EQ(usr2, 3 * r.rounds);
    int extra;
    CHECK_EQ(ox_receiver_try_recv(rx, &extra), OX_EEMPTY);
    ox_receiver_drop(rx);
}

/* ---- the previous action ---- */

static _Atomic int user_handler_calls;

static void user_handler(int sig)
{
    (void)sig;
    atomic_fetch_add_explicit(&user_handler_calls, 1, memory_order_relaxed);
}

OX_TEST(signal_chains_to_the_handler_installed_before)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = user_handler;
    CHECK_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
    int sigs[] = {SIGUSR1};
    ox_receiver *rx;
    CHECK_EQ(ox_signal_channel(sigs, 1, &rx), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(recv_signal(rx), SIGUSR1);
    CHECK_EQ(atomic_load(&user_handler_calls), 1);
    /* Once nobody listens, the user's handler is back alone. */
    ox_receiver_drop(rx);
    CHECK_EQ(raise(SIGUSR1), 0); /* found by the dispatcher: restored */
    for (int i = 0; i < 1000 && atomic_load(&user_handler_calls) < 2; i++)
        ox_thread_sleep(OX_MILLIS(1));
    CHECK_EQ(atomic_load(&user_handler_calls), 2);
    struct sigaction now;
    for (int i = 0; i < 10000; i++) { /* the dispatcher restores it soon */
        CHECK_EQ(sigaction(SIGUSR1, NULL, &now), 0);
        if (!(now.sa_flags & SA_SIGINFO) && now.sa_handler == user_handler)
            break;
        ox_thread_sleep(OX_MILLIS(1));
    }
    CHECK(!(now.sa_flags & SA_SIGINFO) && now.sa_handler == user_handler);
}

/* A signal nobody listens to any more is raised again with its default
 * action: SIGUSR1's ends the process. */
OX_TEST_OPTS(signal_with_its_receiver_dropped_takes_the_default_action, .expect_signal = SIGUSR1)
{
    int sigs[] = {SIGUSR1};
    ox_receiver *rx;
    CHECK_EQ(ox_signal_channel(sigs, 1, &rx), 0);
    ox_receiver_drop(rx);
    CHECK_EQ(raise(SIGUSR1), 0);
    ox_thread_sleep(ox_test_bound(OX_SECS(5))); /* ends before this */
}

OX_TEST_OPTS(signal_notify_removed_puts_the_default_back_at_once, .expect_signal = SIGUSR2)
{
    ox_notify n = OX_NOTIFY_INIT;
    CHECK_EQ(ox_signal_notify(SIGUSR2, &n), 0);
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(ox_notify_wait_timeout(&n, ox_test_bound(OX_SECS(10))), 0);
    CHECK_EQ(ox_signal_notify_remove(SIGUSR2, &n), 0);
    CHECK_EQ(raise(SIGUSR2), 0); /* the default action, in this very call */
}
