/* Channel select: readiness, fairness, blocking, timeouts, disconnection,
 * rendezvous hand-offs through select. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fairness_round(size_t nready, size_t nidle, long rounds)
{
    size_t n = nready + nidle;
    ox_sender *tx[4];
    ox_receiver *rx[4];
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(ox_channel(sizeof(uint64_t), OX_UNBOUNDED, &tx[i], &rx[i]), 0);
    /* ready channels hold one message each, refilled after every select */
    for (size_t i = 0; i < nready; i++) {
        uint64_t v = i;
        CHECK_EQ(ox_sender_send(tx[i], &v), 0);
    }
    long count[4] = {0};
    uint64_t out[4];
    for (long r = 0; r < rounds; r++) {
        ox_select_op ops[4];
        /* idle ops first and interleaved, so position does not favour */
        for (size_t i = 0; i < n; i++)
            ops[i] = OX_SELECT_RECV(rx[(i + 1) % n], &out[i]);
        size_t idx = 99;
        int rc = r % 2 ? ox_select(ops, n, &idx) : ox_select_try(ops, n, &idx);
        CHECK_EQ(rc, 0);
        size_t ch = (idx + 1) % n;
        CHECK(ch < nready);
        CHECK_EQ(out[idx], ch);
        count[ch]++;
        CHECK_EQ(ox_sender_send(tx[ch], &out[idx]), 0);
    }
    double even = (double)rounds / (double)nready;
    for (size_t i = 0; i < nready; i++)
        if (count[i] < even * 0.85 || count[i] > even * 1.15)
            ox_test_fail(__FILE__, __LINE__, "op %zu chosen %ld times of %ld (even: %.0f)", i,
                         count[i], rounds, even);
    for (size_t i = 0; i < n; i++) {
        ox_sender_drop(tx[i]);
        ox_receiver_drop(rx[i]);
    }
}

OX_TEST(chan_select_is_fair_between_ready_ops)
{
    long rounds = ox_test_scaled(30000);
    if (rounds < 3000)
        rounds = 3000;
    fairness_round(2, 0, rounds);
    fairness_round(2, 1, rounds);
    fairness_round(3, 1, rounds);
}

OX_TEST(chan_select_try_and_timeout_when_nothing_ready)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(int), 1, &tx, &rx), 0);
    ox_sender *tx0;
    ox_receiver *rx0;
    CHECK_EQ(ox_channel(sizeof(int), 0, &tx0, &rx0), 0);
    int a, b = 3;
    CHECK_EQ(ox_sender_send(tx, &b), 0); /* full */
    ox_select_op ops[] = {OX_SELECT_SEND(tx, &b), OX_SELECT_RECV(rx0, &a), OX_SELECT_SEND(tx0, &b)};
    size_t idx = 42;
    CHECK_EQ(ox_select_try(ops, 3, &idx), OX_EBUSY);
    CHECK_EQ(idx, 42);
    ox_instant t0 = ox_instant_now();
    CHECK_EQ(ox_select_timeout(ops, 3, OX_MILLIS(30), &idx), OX_ETIMEDOUT);
    ox_nanos took = ox_instant_diff(ox_instant_now(), t0);
    CHECK(took >= OX_MILLIS(30));
    CHECK(took < OX_MILLIS(30) + ox_test_bound(OX_SECS(1))); /* not wildly late */
    CHECK_EQ(ox_select_deadline(ops, 3, (ox_instant){0}, &idx), OX_ETIMEDOUT);
    CHECK_EQ(ox_select_timeout(ops, 3, -1, &idx), OX_EINVAL);
    CHECK_EQ(ox_select_try(ops, 0, &idx), OX_EBUSY); /* the empty select: see below */
    /* now make room: the send is chosen */
    CHECK_EQ(ox_receiver_recv(rx, &a), 0);
    CHECK_EQ(ox_select_timeout(ops, 3, ox_test_bound(OX_SECS(5)), &idx), 0);
    CHECK_EQ(idx, 0);
    CHECK_EQ(ox_receiver_len(rx), 1);
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
    ox_sender_drop(tx0);
    ox_receiver_drop(rx0);
}

OX_TEST(chan_select_reports_disconnected_as_ready)
{
    ox_sender *tx1, *tx2;
    ox_receiver *rx1, *rx2;
    CHECK_EQ(ox_channel(sizeof(int), 4, &tx1, &rx1), 0);
    CHECK_EQ(ox_channel(sizeof(int), OX_UNBOUNDED, &tx2, &rx2), 0);
    ox_sender_drop(tx2);
    int a, b;
    ox_select_op ops[] = {OX_SELECT_RECV(rx1, &a), OX_SELECT_RECV(rx2, &b)};
    size_t idx;
    CHECK_EQ(ox_select(ops, 2, &idx), OX_EDISCONNECTED);
    CHECK_EQ(idx, 1);
    ox_receiver_drop(rx1);
    int v = 1;
    ox_select_op sops[] = {OX_SELECT_SEND(tx1, &v)};
    CHECK_EQ(ox_select(sops, 1, &idx), OX_EDISCONNECTED);
    CHECK_EQ(idx, 0);
    ox_sender_drop(tx1);
    ox_receiver_drop(rx2);
}

typedef struct feeder {
    ox_sender *tx;
    ox_receiver *rx; /* or a receiver, for rendezvous sends through select */
    long n;
    int drop_only;
    ox_thread *waiter;            /* drop_only: drops once this thread blocks */
    const ox_test_budget *budget; /* a sender sends n, or fewer by this */
    long done;                    /* what it sent or received, for after the join */
} feeder;

static void *feed(void *arg)
{
    feeder *f = arg;
    if (f->drop_only) {
        ox_test_wait_thread_blocked(f->waiter, NULL);
        ox_sender_drop(f->tx);
        return NULL;
    }
    long i = 0;
    if (f->tx) {
        for (; i < f->n && (f->budget == NULL || ox_test_budget_more(f->budget, i)); i++) {
            uint64_t v = (uint64_t)i;
            if (ox_sender_send(f->tx, &v) != 0)
                abort();
        }
    } else { /* until the selecting sender stops: each value in order */
        uint64_t v;
        for (int rc; (rc = ox_receiver_recv(f->rx, &v)) != OX_EDISCONNECTED; i++)
            if (rc != 0 || v != (uint64_t)i)
                abort();
    }
    f->done = i;
    if (f->tx)
        ox_sender_drop(f->tx);
    else
        ox_receiver_drop(f->rx);
    return NULL;
}

/* One thread selects over receives from four channels of every flavor fed
 * by four threads, until all four disconnect: every message arrives once,
 * in order per channel. */
OX_TEST(chan_select_blocking_receives_every_flavor)
{
    size_t caps[] = {OX_UNBOUNDED, 0, 1, 8};
    long n = ox_test_scaled(20000);
    ox_test_budget budget = ox_test_budget_start(200, n);
    ox_sender *tx[4];
    ox_receiver *rx[4];
    feeder f[4];
    ox_join_handle h[4];
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(ox_channel(sizeof(uint64_t), caps[i], &tx[i], &rx[i]), 0);
        f[i] = (feeder){.tx = tx[i], .n = n, .budget = &budget};
        h[i] = ox_thread_spawn(feed, &f[i]);
    }
    uint64_t next[4] = {0}, out[4];
    int live = 4;
    bool open[4] = {true, true, true, true};
    while (live > 0) {
        ox_select_op ops[4];
        size_t map[4], k = 0;
        for (int i = 0; i < 4; i++)
            if (open[i]) {
                map[k] = (size_t)i;
                ops[k] = OX_SELECT_RECV(rx[i], &out[k]);
                k++;
            }
        size_t idx;
        int rc = ox_select(ops, k, &idx);
        size_t ch = map[idx];
        if (rc == OX_EDISCONNECTED) {
            open[ch] = false;
            live--;
            continue;
        }
        CHECK_EQ(rc, 0);
        CHECK_EQ(out[idx], next[ch]);
        next[ch]++;
    }
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
        CHECK_EQ(next[i], f[i].done);
        ox_receiver_drop(rx[i]);
    }
}

/* Sends through select to receivers of every bounded flavor, including a
 * rendezvous partner that takes the value straight from our buffer. */
OX_TEST(chan_select_blocking_sends_every_flavor)
{
    size_t caps[] = {0, 1, 8};
    ox_test_budget budget = ox_test_budget_start(200, ox_test_scaled(20000));
    ox_sender *tx[3];
    ox_receiver *rx[3];
    feeder f[3];
    ox_join_handle h[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ox_channel(sizeof(uint64_t), caps[i], &tx[i], &rx[i]), 0);
        f[i] = (feeder){.rx = rx[i]};
        h[i] = ox_thread_spawn(feed, &f[i]);
    }
    uint64_t next[3] = {0};
    for (;;) {
        ox_select_op ops[3];
        size_t map[3], k = 0;
        for (int i = 0; i < 3; i++)
            if (ox_test_budget_more(&budget, (long)next[i])) {
                map[k] = (size_t)i;
                ops[k] = OX_SELECT_SEND(tx[i], &next[i]);
                k++;
            }
        if (k == 0)
            break;
        size_t idx;
        CHECK_EQ(ox_select(ops, k, &idx), 0);
        next[map[idx]]++;
    }
    for (int i = 0; i < 3; i++) {
        ox_sender_drop(tx[i]); /* the receiver's end: it has them all */
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
        CHECK_EQ(f[i].done, next[i]);
    }
}

OX_TEST(chan_select_wakes_on_disconnect)
{
    size_t caps[] = {OX_UNBOUNDED, 0, 1};
    for (int c = 0; c < 3; c++) {
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(uint64_t), caps[c], &tx, &rx), 0);
        feeder f = {.tx = tx, .drop_only = 1, .waiter = ox_thread_current()};
        ox_join_handle h = ox_thread_spawn(feed, &f);
        uint64_t v;
        ox_select_op ops[] = {OX_SELECT_RECV(rx, &v)};
        size_t idx;
        CHECK_EQ(ox_select_timeout(ops, 1, ox_test_bound(OX_SECS(10)), &idx), OX_EDISCONNECTED);
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        ox_receiver_drop(rx);
    }
}

/* Two selecting threads pair up on rendezvous channels: one offers a send
 * on A and a receive on B, the other the reverse. Exactly one op of each
 * completes per round and the values match. */
typedef struct pair_arg {
    ox_sender *tx;
    ox_receiver *rx;
    const ox_test_budget *budget;
    long sent, received;
} pair_arg;

/* Selects until its budget is used, or until the other one stopped (and
 * dropped its ends, so that both ops of this one report disconnection);
 * then drops its own ends. */
static void *pair_selector(void *arg)
{
    pair_arg *p = arg;
    for (long r = 0; ox_test_budget_more(p->budget, r);) {
        uint64_t out = (uint64_t)p->sent, in = 0;
        ox_select_op ops[] = {OX_SELECT_SEND(p->tx, &out), OX_SELECT_RECV(p->rx, &in)};
        size_t idx;
        int rc = ox_select(ops, 2, &idx);
        if (rc == OX_EDISCONNECTED)
            break;
        if (rc != 0)
            return (void *)1;
        if (idx == 0)
            p->sent++;
        else {
            if (in != (uint64_t)p->received)
                return (void *)2;
            p->received++;
        }
        r++;
    }
    ox_sender_drop(p->tx);
    ox_receiver_drop(p->rx);
    return NULL;
}

OX_TEST(chan_select_rendezvous_between_two_selectors)
{
    ox_sender *ta, *tb;
    ox_receiver *ra, *rb;
    CHECK_EQ(ox_channel(sizeof(uint64_t), 0, &ta, &ra), 0);
    CHECK_EQ(ox_channel(sizeof(uint64_t), 0, &tb, &rb), 0);
    ox_test_budget budget = ox_test_budget_start(100, ox_test_scaled(5000));
    pair_arg p1 = {ta, rb, &budget, 0, 0}, p2 = {tb, ra, &budget, 0, 0};
    ox_join_handle h1 = ox_thread_spawn(pair_selector, &p1);
    ox_join_handle h2 = ox_thread_spawn(pair_selector, &p2);
    void *r1, *r2;
    CHECK_EQ(ox_thread_join(&h1, &r1, NULL), 0);
    CHECK_EQ(ox_thread_join(&h2, &r2, NULL), 0);
    CHECK(r1 == NULL);
    CHECK(r2 == NULL);
    CHECK_EQ(p1.sent, p2.received);
    CHECK_EQ(p2.sent, p1.received);
    /* Each pairs once per round: both did as many. */
    CHECK_EQ(p1.sent + p1.received, p2.sent + p2.received);
    CHECK(p1.sent + p1.received >= budget.min);
}

OX_TEST_OPTS(chan_select_malformed_op_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_select: op 0 names both a sender and a receiver")
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(int), 1, &tx, &rx), 0);
    int v;
    ox_select_op ops[] = {{.tx = tx, .rx = rx, .buf = &v}};
    size_t idx;
    (void)!ox_select(ops, 1, &idx);
}

/* ---- disabled cases (Go's nil channel, crossbeam's never()) ---- */

/* A disabled case keeps its index and is never chosen, whatever the
 * permutation; switching cases off and on needs no rebuilt array. */
OX_TEST(chan_select_disabled_cases_are_never_chosen)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(int), OX_UNBOUNDED, &tx, &rx), 0);
    int v = 5, out = 0;
    CHECK_EQ(ox_sender_send(tx, &v), 0);
    ox_select_op ops[] = {OX_SELECT_NEVER, OX_SELECT_RECV(rx, &out), OX_SELECT_SEND(NULL, &v),
                          OX_SELECT_RECV(NULL, NULL)};
    size_t idx = 99;
    for (int round = 0; round < 200; round++) {
        CHECK_EQ(ox_select_try(ops, 4, &idx), 0);
        CHECK_EQ(idx, 1);
        CHECK_EQ(out, 5);
        CHECK_EQ(ox_sender_send(tx, &v), 0);
    }
    /* Off: nothing live, though a message is waiting. */
    ops[1].rx = NULL;
    idx = 99;
    CHECK_EQ(ox_select_try(ops, 4, &idx), OX_EBUSY);
    CHECK_EQ(idx, 99);
    CHECK_EQ(ox_select_timeout(ops, 4, OX_MILLIS(1), &idx), OX_ETIMEDOUT);
    CHECK_EQ(ox_receiver_len(rx), 1);
    /* Another case on: an always-ready unbounded send at index 2. */
    ops[2].tx = tx;
    CHECK_EQ(ox_select(ops, 4, &idx), 0);
    CHECK_EQ(idx, 2);
    CHECK_EQ(ox_receiver_len(rx), 2);
    /* Both on: both get chosen. */
    ops[1].rx = rx;
    bool seen[4] = {false};
    for (int round = 0; round < 400; round++) {
        CHECK_EQ(ox_select_try(ops, 4, &idx), 0);
        CHECK(idx == 1 || idx == 2);
        seen[idx] = true;
    }
    CHECK(seen[1] && seen[2]);
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
}

typedef struct drain_feeder {
    ox_sender *tx;
    const ox_test_budget *budget;
    long n; /* what it sent, for after the join */
} drain_feeder;

static void *feed_and_close(void *arg)
{
    drain_feeder *f = arg;
    long i = 0;
    for (; ox_test_budget_more(f->budget, i); i++) {
        uint64_t v = (uint64_t)i;
        if (ox_sender_send(f->tx, &v) != 0)
            abort();
    }
    f->n = i;
    ox_sender_drop(f->tx);
    return NULL;
}

/* Go's idiom: a loop over one op array that sets a case's channel to nil
 * once it is drained, until every case is off. Three feeders on channels
 * of three flavors; every message arrives once and in order. */
OX_TEST(chan_select_loop_switches_drained_cases_off)
{
    const size_t caps[] = {OX_UNBOUNDED, 0, 4};
    ox_test_budget budget = ox_test_budget_start(200, ox_test_scaled(20000));
    ox_receiver *rx[3];
    drain_feeder f[3];
    ox_join_handle h[3];
    uint64_t out[3], next[3] = {0};
    ox_select_op ops[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ox_channel(sizeof(uint64_t), caps[i], &f[i].tx, &rx[i]), 0);
        f[i].budget = &budget;
        h[i] = ox_thread_spawn(feed_and_close, &f[i]);
        ops[i] = OX_SELECT_RECV(rx[i], &out[i]);
    }
    int live = 3;
    while (live > 0) {
        size_t idx;
        int rc = ox_select(ops, 3, &idx);
        CHECK(idx < 3 && ops[idx].rx != NULL);
        if (rc == OX_EDISCONNECTED) {
            ops[idx].rx = NULL; /* drained: switch the case off */
            live--;
            continue;
        }
        CHECK_EQ(rc, 0);
        CHECK_EQ(out[idx], next[idx]);
        next[idx]++;
    }
    size_t idx = 99;
    CHECK_EQ(ox_select_try(ops, 3, &idx), OX_EBUSY);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
        CHECK_EQ(next[i], f[i].n);
        ox_receiver_drop(rx[i]);
    }
}

/* ---- the empty select ---- */

OX_TEST(chan_select_empty_try_busy_timed_waits)
{
    size_t idx = 99;
    CHECK_EQ(ox_select_try(NULL, 0, &idx), OX_EBUSY);
    ox_select_op off[] = {OX_SELECT_NEVER, OX_SELECT_RECV(NULL, NULL)};
    CHECK_EQ(ox_select_try(off, 2, &idx), OX_EBUSY);
    /* Timed: waits the whole time (never less), then times out. */
    ox_instant t0 = ox_instant_now();
    CHECK_EQ(ox_select_timeout(off, 2, OX_MILLIS(20), &idx), OX_ETIMEDOUT);
    CHECK(ox_instant_diff(ox_instant_now(), t0) >= OX_MILLIS(20));
    t0 = ox_instant_now();
    CHECK_EQ(ox_select_deadline(NULL, 0, ox_instant_after(OX_MILLIS(20)), &idx), OX_ETIMEDOUT);
    CHECK(ox_instant_diff(ox_instant_now(), t0) >= OX_MILLIS(20));
    CHECK_EQ(ox_select_deadline(off, 2, (ox_instant){0}, &idx), OX_ETIMEDOUT);
    CHECK_EQ(ox_select_timeout(off, 2, 0, &idx), OX_ETIMEDOUT);
    CHECK_EQ(ox_select_timeout(NULL, 0, -1, &idx), OX_EINVAL);
    CHECK_EQ(idx, 99);
}

static void *select_forever(void *arg)
{
    ox_select_op *ops = arg;
    size_t idx;
    (void)!ox_select(ops, 2, &idx);
    abort(); /* never returns */
}

/* Polls the blocked-thread dump until it contains needle. */
static char *dump_until(const char *needle)
{
    ox_instant give_up = ox_instant_after(ox_test_bound(OX_SECS(20)));
    for (;;) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        CHECK(f != NULL);
        ox_dump_blocked_threads(f);
        fclose(f);
        if (strstr(text, needle) != NULL)
            return text;
        free(text);
        CHECK(ox_instant_now().ns < give_up.ns);
        ox_thread_sleep(OX_MILLIS(1));
    }
}

/* ox_select with nothing live blocks forever (Go's select {}), and the
 * blocked-thread dump names it. The test ends with the thread still
 * blocked: the process exit takes it. */
OX_TEST(chan_select_empty_blocks_forever_named_in_dump)
{
    static ox_select_op ops[2]; /* zeroed: both disabled */
    ox_join_handle h = ox_test_spawn_named("forever", select_forever, ops);
    char expect[160];
    snprintf(expect, sizeof expect,
             "thread 'forever' (id %llu) blocked on select with no live cases %p",
             (unsigned long long)ox_thread_id(ox_join_handle_thread(&h)), (void *)ops);
    char *text = dump_until(expect);
    free(text);
    ox_thread_sleep(OX_MILLIS(20));
    CHECK(!ox_join_handle_is_finished(&h));
    ox_join_handle_drop(&h);
}

/* With the lock-order checker on, a select that can never return is
 * reported as it starts, with the locks the thread holds; the checker
 * stays on (it is not a cycle). */
OX_TEST(chan_select_empty_reported_by_lockdep)
{
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_test_capture_stderr();
    static ox_select_op ops[2];
    ops[0] = OX_SELECT_NEVER;
    ops[1] = OX_SELECT_RECV(NULL, NULL);
    ox_join_handle h = ox_test_spawn_named("forever", select_forever, ops);
    free(dump_until("select with no live cases"));
    char *text = ox_test_stderr_text();
    char expect[160];
    snprintf(expect, sizeof expect,
             "oxide lockdep: thread 'forever' (id %llu) blocks forever: select with no live "
             "cases %p\n",
             (unsigned long long)ox_thread_id(ox_join_handle_thread(&h)), (void *)ops);
    CHECK_CONTAINS(text, expect);
    free(text);
    CHECK_EQ(ox_lockdep_mode_get(), OX_LOCKDEP_REPORT);
    CHECK_EQ(ox_lockdep_reports(), 0);
    /* A timed empty select ends: nothing to report. */
    ox_test_capture_stderr();
    size_t idx;
    CHECK_EQ(ox_select_timeout(ops, 2, OX_MILLIS(1), &idx), OX_ETIMEDOUT);
    text = ox_test_stderr_text();
    CHECK(strstr(text, "blocks forever") == NULL);
    free(text);
    ox_join_handle_drop(&h);
}

OX_TEST_OPTS(
    chan_select_empty_aborts_under_lockdep_abort, .expect_signal = SIGABRT,
    .expect_stderr = "blocks forever: select with no live cases (nil)\n     while holding mutex ")
{
    static ox_mutex m = OX_MUTEX_INIT;
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_ABORT), 0);
    CHECK_EQ(ox_mutex_lock(&m), 0);
    size_t idx;
    (void)!ox_select(NULL, 0, &idx);
}

/* In a task, the empty select is a cancellation point like any select:
 * an abort ends it with OX_ECANCELED. */
static void *select_nothing_in_task(void *arrived)
{
    atomic_store((_Atomic int *)arrived, 1);
    size_t idx;
    return (void *)(intptr_t)ox_select(NULL, 0, &idx);
}

OX_TEST(chan_select_empty_in_task_ends_on_abort)
{
    _Atomic int arrived = 0;
    ox_task_handle h = ox_task_spawn(select_nothing_in_task, (void *)&arrived);
    CHECK_EQ((intptr_t)ox_test_abort_at_its_wait(&h, &arrived), OX_ECANCELED);
}

/* A timed select races a sender that sends at staggered moments: each
 * select either takes the next message or times out without taking one, so
 * the receiver sees 0, 1, 2, ... with nothing lost or doubled. */
typedef struct stagger_sender {
    ox_sender *tx;
    ox_test_budget budget;
    long n; /* what it sent, for after the join */
} stagger_sender;

static void *send_staggered(void *arg)
{
    stagger_sender *s = arg;
    long i = 0;
    for (; ox_test_budget_more(&s->budget, i); i++) {
        /* Sleeps about as long as the receiver's timeouts, now and then, so
         * that sends land before, during and just after its waits. */
        if (i % 4 == 0)
            ox_thread_sleep(OX_MICROS(i * 13 % 300));
        uint64_t v = (uint64_t)i;
        if (ox_sender_send(s->tx, &v) != 0)
            abort();
    }
    s->n = i;
    ox_sender_drop(s->tx);
    return NULL;
}

OX_TEST(chan_select_timeout_races_an_arriving_sender)
{
    size_t caps[] = {OX_UNBOUNDED, 0, 1};
    /* One budget for all three: each capacity gets its minimum. */
    ox_test_budget budget = ox_test_budget_start(50, ox_test_scaled(1000));
    for (int c = 0; c < 3; c++) {
        stagger_sender s = {.budget = budget};
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(uint64_t), caps[c], &s.tx, &rx), 0);
        ox_join_handle h = ox_thread_spawn(send_staggered, &s);
        uint64_t v = 0, next = 0;
        long timeouts = 0;
        ox_select_op ops[] = {OX_SELECT_RECV(rx, &v)};
        for (;;) {
            size_t idx = 9;
            int rc = ox_select_timeout(ops, 1, OX_MICROS(20 + (long)(next % 7) * 40), &idx);
            if (rc == OX_ETIMEDOUT) {
                CHECK_EQ(idx, 9);
                timeouts++;
                continue;
            }
            if (rc == OX_EDISCONNECTED)
                break;
            CHECK_EQ(rc, 0);
            CHECK_EQ(idx, 0);
            CHECK_EQ(v, next);
            next++;
        }
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        CHECK_EQ(next, (uint64_t)s.n);
        ox_receiver_drop(rx);
        printf("capacity %zu: %ld timeouts for %ld messages\n", caps[c], timeouts, s.n);
    }
}

/* A select blocked sending (full bounded channel, or rendezvous with nobody
 * receiving) wakes with OX_EDISCONNECTED when the last receiver is dropped. */
typedef struct drop_receiver {
    ox_receiver *rx;
    ox_thread *waiter;
} drop_receiver;

static void *drop_receiver_when_blocked(void *arg)
{
    drop_receiver *d = arg;
    ox_test_wait_thread_blocked(d->waiter, NULL);
    ox_receiver_drop(d->rx);
    return NULL;
}

OX_TEST(chan_select_blocked_send_wakes_when_last_receiver_drops)
{
    size_t caps[] = {0, 1};
    for (int c = 0; c < 2; c++) {
        ox_sender *tx;
        drop_receiver d = {.waiter = ox_thread_current()};
        CHECK_EQ(ox_channel(sizeof(uint64_t), caps[c], &tx, &d.rx), 0);
        uint64_t v = 1;
        if (caps[c] == 1)
            CHECK_EQ(ox_sender_try_send(tx, &v), 0); /* now full */
        ox_join_handle h = ox_thread_spawn(drop_receiver_when_blocked, &d);
        ox_select_op ops[] = {OX_SELECT_SEND(tx, &v)};
        size_t idx = 9;
        CHECK_EQ(ox_select(ops, 1, &idx), OX_EDISCONNECTED);
        CHECK_EQ(idx, 0);
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        ox_sender_drop(tx);
    }
}

/* A send and a receive on the same rendezvous channel in one select: the
 * select must not hand the message to itself. Alone it times out; with a
 * receiving partner, the send is the one that completes. */
typedef struct partner {
    ox_receiver *rx;
    ox_thread *waiter;
    uint64_t got;
} partner;

static void *receive_when_blocked(void *arg)
{
    partner *p = arg;
    ox_test_wait_thread_blocked(p->waiter, NULL);
    if (ox_receiver_recv(p->rx, &p->got) != 0)
        abort();
    return NULL;
}

OX_TEST(chan_select_does_not_pair_with_itself)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(uint64_t), 0, &tx, &rx), 0);
    uint64_t out = 7, in = 0;
    ox_select_op ops[] = {OX_SELECT_SEND(tx, &out), OX_SELECT_RECV(rx, &in)};
    size_t idx = 9;
    CHECK_EQ(ox_select_try(ops, 2, &idx), OX_EBUSY);
    CHECK_EQ(ox_select_timeout(ops, 2, OX_MILLIS(20), &idx), OX_ETIMEDOUT);
    CHECK_EQ(idx, 9);
    CHECK_EQ(in, 0);
    partner p = {.rx = rx, .waiter = ox_thread_current()};
    ox_join_handle h = ox_thread_spawn(receive_when_blocked, &p);
    CHECK_EQ(ox_select(ops, 2, &idx), 0);
    CHECK_EQ(idx, 0);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(p.got, 7);
    CHECK_EQ(in, 0);
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
}

/* The same handle twice in one select: one message is taken once, by one
 * of the two operations; the other's buffer is untouched. */
OX_TEST(chan_select_same_handle_twice)
{
    size_t caps[] = {OX_UNBOUNDED, 1, 16};
    for (int c = 0; c < 3; c++) {
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(uint64_t), caps[c], &tx, &rx), 0);
        for (int round = 0; round < 100; round++) {
            uint64_t v = (uint64_t)round + 100, a = 0, b = 0;
            CHECK_EQ(ox_sender_send(tx, &v), 0);
            ox_select_op ops[] = {OX_SELECT_RECV(rx, &a), OX_SELECT_RECV(rx, &b)};
            size_t idx = 9;
            CHECK_EQ(ox_select(ops, 2, &idx), 0);
            CHECK(idx < 2);
            CHECK_EQ(idx == 0 ? a : b, v);
            CHECK_EQ(idx == 0 ? b : a, 0);
            CHECK_EQ(ox_select_try(ops, 2, &idx), OX_EBUSY); /* nothing doubled */
        }
        /* Two sends on the same sender into one free slot: one goes. */
        if (caps[c] == 1) {
            uint64_t x = 1, y = 2, got = 0;
            ox_select_op ops[] = {OX_SELECT_SEND(tx, &x), OX_SELECT_SEND(tx, &y)};
            size_t idx = 9;
            CHECK_EQ(ox_select(ops, 2, &idx), 0);
            CHECK_EQ(ox_select_try(ops, 2, &idx), OX_EBUSY); /* full now */
            CHECK_EQ(ox_receiver_try_recv(rx, &got), 0);
            CHECK_EQ(got, idx == 0 ? 1 : 2);
            CHECK_EQ(ox_receiver_try_recv(rx, &got), OX_EEMPTY);
        }
        ox_sender_drop(tx);
        ox_receiver_drop(rx);
    }
}
