/* Reproducers from trying to break direct hand-offs (runtime.c: a task
 * that suspends right after waking another switches straight to it). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <alloca.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- an overflow while switching straight to another task ----
 * The guard-page handler names the overflowing task from w->current. The
 * direct switch set w->current to the task switched to before the one
 * switching away had pushed its last frames (ox__ctx_switch's saved
 * registers): an overflow there was a bare SIGSEGV, the task unnamed.
 * Side a wakes side b (into the LIFO slot), then waits on a stack used
 * up to `pad` bytes: its wait switches straight to b. Each pad runs in a
 * forked child; every one that dies must die naming side a. */
#define SIDE_STACK ((size_t)64 * 1024)

static ox_sender *to_b, *to_a;
static ox_receiver *b_rx, *a_rx;
static size_t side_pad;

static int wait_deep(size_t pad)
{
    volatile char *buf = alloca(pad + 1);
    /* Touched from the top down, a page at most apart: a pad past the
     * stack's end stops in its guard page, not beyond. */
    for (size_t off = pad + 1; off > 0; off -= off > 1024 ? 1024 : off)
        buf[off - 1] = 1;
    buf[0] = 1;
    long v;
    int rc = ox_receiver_recv(a_rx, &v);
    return rc + buf[0] - 1; /* buf kept alive across the wait */
}

static void *side_a(void *arg)
{
    (void)arg;
    long v = 1;
    if (ox_sender_send(to_b, &v) != 0) /* b waits in its recv: woken into the slot */
        return (void *)1;
    return (void *)(intptr_t)wait_deep(side_pad);
}

static void *side_b(void *arg)
{
    (void)arg;
    long v;
    if (ox_receiver_recv(b_rx, &v) != 0)
        return (void *)1;
    v = 2;
    return (void *)(intptr_t)ox_sender_send(to_a, &v);
}

/* The child: b first (it parks in its recv), then a, on one worker. */
static _Noreturn void run_sides(size_t pad)
{
    side_pad = pad;
    ox_runtime_builder rb = OX_RUNTIME_BUILDER_INIT;
    rb.workers = 1;
    rb.stack_size = SIDE_STACK;
    ox_runtime *rt;
    if (ox_runtime_new(&rb, &rt) != 0 || ox_channel(sizeof(long), 0, &to_b, &b_rx) != 0 ||
        ox_channel(sizeof(long), 0, &to_a, &a_rx) != 0)
        _exit(3);
    ox_task_builder tb = OX_TASK_BUILDER_INIT;
    tb.runtime = rt;
    ox_task_handle hb, ha;
    tb.name = "side-b";
    if (ox_task_builder_spawn(&tb, side_b, NULL, &hb) != 0)
        _exit(3);
    tb.name = "side-a";
    if (ox_task_builder_spawn(&tb, side_a, NULL, &ha) != 0)
        _exit(3);
    void *ra = NULL, *rb_ = NULL;
    if (ox_task_join(&ha, &ra, NULL) != 0 || ox_task_join(&hb, &rb_, NULL) != 0 || ra != NULL ||
        rb_ != NULL)
        _exit(3);
    ox_sender_drop(to_a);
    ox_sender_drop(to_b);
    ox_receiver_drop(a_rx);
    ox_receiver_drop(b_rx);
    ox_runtime_shutdown(rt);
    _exit(0);
}

typedef enum { SIDES_RAN, SIDES_OVERFLOWED_NAMED, SIDES_DIED_OTHERWISE } sides_end;

static void run_sides_in_child(void *pad)
{
    run_sides(*(size_t *)pad);
}

static sides_end run_sides_forked(size_t pad)
{
    char err[4096];
    int status = ox_test_fork_stderr(run_sides_in_child, &pad, err, sizeof err);
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) != 0) /* 3: the scenario itself failed */
            ox_test_fail(__FILE__, __LINE__, "pad %zu: the sides failed: \"%s\"", pad, err);
        return SIDES_RAN;
    }
    if (strstr(err, "task 'side-a' has overflowed its stack") != NULL)
        return SIDES_OVERFLOWED_NAMED;
    ox_test_fail(__FILE__, __LINE__, "pad %zu: side a died by signal %d, unnamed: \"%s\"", pad,
                 WIFSIGNALED(status) ? WTERMSIG(status) : -1, err);
    return SIDES_DIED_OTHERWISE;
}

OX_TEST_OPTS(break12_overflow_while_switching_straight_to_another_task_names_it, .timeout_s = 180)
{
    if (ox_test_forks_hang_here())
        return;
#ifdef OX_TEST_BUILT_WITH_TSAN
    /* A child forked here that starts a runtime's thread hangs in TSan's
     * runtime (seen: the first child never ended). */
    printf("skipped under ThreadSanitizer: its forked children hang\n");
    return;
#endif
    /* The smallest pad that dies: the deepest frame of a's wait then just
     * reaches the guard page. Below it nothing dies; from it on, each pad
     * dies at an earlier deepest-yet frame of the wait, the direct switch's
     * among them. Steps under a page, so the first death is in the guard
     * page (a frame far past it is no task's: a sanitizer reports it). */
    size_t lo = 0, hi = 2048;
    CHECK(run_sides_forked(lo) == SIDES_RAN);
    while (run_sides_forked(hi) == SIDES_RAN) {
        lo = hi;
        hi += 2048;
        CHECK(hi < 64 * SIDE_STACK); /* it overflows somewhere */
    }
    while (hi - lo > 8) {
        size_t mid = lo + (hi - lo) / 2;
        if (run_sides_forked(mid) == SIDES_RAN)
            lo = mid;
        else
            hi = mid;
    }
    for (size_t pad = hi; pad < hi + 1024; pad += 8)
        CHECK(run_sides_forked(pad) == SIDES_OVERFLOWED_NAMED);
}

/* ---- two tasks trading by direct hand-offs leave the others a turn ----
 * Each trade wakes the other side into the LIFO slot and then waits: a
 * direct hand-off every time, were it not for the slot's limits (at most
 * OX__LIFO_MAX in a row; every OX__GLOBAL_EVERY-th run through the
 * scheduler). On one worker, while they trade, a task in the worker's
 * queue, a sleeper's timer and a task in the injector must each get their
 * turn: the traders stop only once all three have run, so starving any
 * one is a hang that the runner's timeout names. */
static ox_sender *trade_tx[2];
static ox_receiver *trade_rx[2];
static _Atomic int queued_ran, sleeper_ran, injected_ran;
static _Atomic long trades;
static ox_runtime *trade_rt;

static void *set_flag(void *arg)
{
    atomic_store((_Atomic int *)arg, 1);
    return NULL;
}

static void *sleep_then_set_flag(void *arg)
{
    CHECK_EQ(ox_task_sleep(OX_MILLIS(1)), 0);
    atomic_store((_Atomic int *)arg, 1);
    return NULL;
}

static bool others_all_ran(void)
{
    return atomic_load(&queued_ran) && atomic_load(&sleeper_ran) && atomic_load(&injected_ran);
}

/* Side 0 sends first; a value of -1 ends the trade. */
static void *trade_until_others_ran(void *arg)
{
    int side = (int)(intptr_t)arg;
    ox_task_handle queued = {0}, sleeper = {0};
    long v = 0;
    for (long round = 0;; round++) {
        if (side == 0) {
            if (round == 100) { /* trading by now: these wait behind it */
                queued = ox_test_spawn_on(trade_rt, set_flag, (void *)&queued_ran);
                sleeper = ox_test_spawn_on(trade_rt, sleep_then_set_flag, (void *)&sleeper_ran);
            }
            v = round >= 100 && others_all_ran() ? -1 : round;
            CHECK_EQ(ox_sender_send(trade_tx[0], &v), 0);
            if (v == -1)
                break;
            CHECK_EQ(ox_receiver_recv(trade_rx[0], &v), 0);
            CHECK_EQ(v, round);
        } else {
            CHECK_EQ(ox_receiver_recv(trade_rx[1], &v), 0);
            if (v == -1)
                break;
            CHECK_EQ(ox_sender_send(trade_tx[1], &v), 0);
        }
        atomic_fetch_add(&trades, 1);
    }
    if (side == 0) {
        CHECK_EQ(ox_task_join(&queued, NULL, NULL), 0);
        CHECK_EQ(ox_task_join(&sleeper, NULL, NULL), 0);
    }
    return NULL;
}

OX_TEST(break12_trading_by_direct_hand_offs_leaves_others_their_turn)
{
    ox_runtime *rt = trade_rt = ox_test_runtime(1);
    /* 0 sends on trade_tx[0] to 1's trade_rx[1], and back. */
    CHECK_EQ(ox_channel(sizeof(long), 0, &trade_tx[0], &trade_rx[1]), 0);
    CHECK_EQ(ox_channel(sizeof(long), 0, &trade_tx[1], &trade_rx[0]), 0);
    ox_task_handle b = ox_test_spawn_on(rt, trade_until_others_ran, (void *)1);
    ox_task_handle a = ox_test_spawn_on(rt, trade_until_others_ran, (void *)0);
    while (atomic_load(&trades) < 200)
        ox_thread_yield();
    /* From outside the runtime: through the injector. */
    ox_task_handle injected = ox_test_spawn_on(rt, set_flag, (void *)&injected_ran);
    CHECK_EQ(ox_task_join(&a, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&b, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&injected, NULL, NULL), 0);
    CHECK(others_all_ran());
    for (int i = 0; i < 2; i++) {
        ox_sender_drop(trade_tx[i]);
        ox_receiver_drop(trade_rx[i]);
    }
    ox_runtime_shutdown(rt);
}
