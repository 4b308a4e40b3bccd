/* Reproducers from trying to break four commits: stacks and records moved
 * between workers as whole chains (task_internal.h, stack.c, record.c),
 * the lot's skipped Dekker store for a wait on the same word as the last,
 * a task in a channel context woken by a store and the lot's wake
 * (waker.h ox__ctx_wake), and task ids taken 1024 at a time by a worker. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "task/task_internal.h" /* white box: the chain lists */

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- chains: each head's chain_count is its length, the count the sum ----
 * Random cuts, pushes, pops, fills and single pushes over a pool of items,
 * and evict_cached's split (pop a chain, push back its tail with one less).
 * After every step: each chain's count is its length, the shared count is
 * their sum, a stash's count is its length, and every item is in exactly
 * one place. A wrong chain_count would make a stash's count lie, and a
 * stack or record be lost or handed out twice. */
enum { CHAIN_ITEMS = 300 };

typedef struct item {
    ox__chain_link link;
    int where; /* 0 nowhere yet; visits counted by the check */
} item;

static unsigned stash_len(const ox__stash *s)
{
    unsigned n = 0;
    for (const ox__chain_link *l = s->head; l != NULL; l = l->next)
        n++;
    return n;
}

static void check_chains(const ox__chains *c, const ox__stash *a, const ox__stash *b,
                         item items[CHAIN_ITEMS], unsigned held)
{
    size_t total = 0;
    for (int i = 0; i < CHAIN_ITEMS; i++)
        items[i].where = 0;
    for (const ox__chain_link *h = c->head; h != NULL; h = h->next_chain) {
        unsigned n = 0;
        for (const ox__chain_link *l = h; l != NULL; l = l->next, n++)
            ((item *)(void *)l)->where++;
        CHECK_EQ(h->chain_count, n);
        total += n;
    }
    CHECK_EQ(ox__chains_count(c), total);
    for (const ox__chain_link *l = a->head; l != NULL; l = l->next)
        ((item *)(void *)l)->where++;
    for (const ox__chain_link *l = b->head; l != NULL; l = l->next)
        ((item *)(void *)l)->where++;
    CHECK_EQ(a->count, stash_len(a));
    CHECK_EQ(b->count, stash_len(b));
    unsigned placed = 0;
    for (int i = 0; i < CHAIN_ITEMS; i++) {
        CHECK(items[i].where <= 1); /* never in two places */
        placed += (unsigned)items[i].where;
    }
    CHECK_EQ(placed + held, CHAIN_ITEMS);
}

OX_TEST(break13_chain_counts_always_match_chain_lengths)
{
    static item items[CHAIN_ITEMS];
    ox__chains c = {0};
    ox__stash a = {0}, b = {0};
    item *out[CHAIN_ITEMS]; /* popped one at a time, held by "a task" */
    unsigned held = 0;
    for (int i = 0; i < CHAIN_ITEMS; i++)
        ox__stash_push(&a, &items[i]);
    uint32_t x = 12345;
    for (int step = 0; step < 20000; step++) {
        ox__stash *s = ox_test_rand(&x) & 1 ? &a : &b;
        switch (ox_test_rand(&x) % 7) {
        case 0: { /* give a cut of the stash */
            ox__chain_link *chain = ox__stash_cut(s, ox_test_rand(&x) % 80);
            if (chain != NULL)
                ox__chains_push(&c, chain);
            break;
        }
        case 1: /* an empty stash takes a chain */
            if (s->count == 0)
                ox__stash_fill(s, ox__chains_pop(&c));
            break;
        case 2: { /* evict_cached: one off a chain, the rest stays */
            item *one = ox__chains_pop_one(&c);
            if (one != NULL)
                out[held++] = one;
            break;
        }
        case 3: /* one given alone, as a chain of one */
            if (held > 0) {
                ox__stash alone = {0};
                ox__stash_push(&alone, out[--held]);
                ox__chains_push(&c, ox__stash_cut(&alone, 1));
            }
            break;
        case 4: /* a task takes one */
            if (s->count > 0)
                out[held++] = ox__stash_pop(s);
            break;
        default: /* a task frees one */
            if (held > 0)
                ox__stash_push(s, out[--held]);
            break;
        }
        check_chains(&c, &a, &b, items, held);
    }
}

/* ---- stacks past the guarded budget are never two tasks' at once ----
 * With a budget of 24 guarded stacks, rounds of 160 live default-size
 * tasks (on two workers: stashes of 8-16, the rest given to the shared
 * cache as chains, slab stacks past that) and a few of twice the size
 * (evict_cached pops one stack off a cached chain). While all are alive,
 * no two may share a stack (the address of a local of the same frame) or
 * a record, and each task's canary on its stack must survive its wait. */
enum { LIVE = 160, BIG = 6, ROUNDS = 8, CANARY = 256 };

typedef struct live_job {
    _Atomic long started;
    ox_receiver *gate; /* one message per task lets it finish */
    uintptr_t local[LIVE + BIG];
    uintptr_t record[LIVE + BIG];
} live_job;

typedef struct live_arg {
    live_job *job;
    int i;
} live_arg;

static void *live_task(void *p)
{
    live_arg *a = p;
    volatile unsigned char canary[CANARY];
    for (int k = 0; k < CANARY; k++)
        canary[k] = (unsigned char)(a->i * 7 + k);
    a->job->local[a->i] = (uintptr_t)&canary[0];
    a->job->record[a->i] = (uintptr_t)ox_task_current();
    /* Release: the slots are read after the count (ox_test_wait_count). */
    atomic_fetch_add_explicit(&a->job->started, 1, memory_order_release);
    int v;
    if (ox_receiver_recv(a->job->gate, &v) != 0)
        return (void *)1;
    for (int k = 0; k < CANARY; k++)
        if (canary[k] != (unsigned char)(a->i * 7 + k))
            return (void *)2;
    return NULL;
}

static int cmp_uintptr(const void *x, const void *y)
{
    uintptr_t a = *(const uintptr_t *)x, b = *(const uintptr_t *)y;
    return a < b ? -1 : a > b;
}

static void check_distinct(const uintptr_t *v, size_t n, uintptr_t apart)
{
    uintptr_t *s = malloc(n * sizeof *s);
    CHECK(s != NULL);
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_uintptr);
    for (size_t i = 1; i < n; i++)
        CHECK(s[i] - s[i - 1] >= apart);
    free(s);
}

static void *live_rounds(void *unused)
{
    (void)unused;
    static live_job job;
    static live_arg args[LIVE + BIG];
    ox_sender *tx;
    CHECK_EQ(ox_channel(sizeof(int), LIVE + BIG, &tx, &job.gate), 0);
    ox_task_handle h[LIVE + BIG];
    for (int round = 0; round < ROUNDS; round++) {
        atomic_store_explicit(&job.started, 0, memory_order_relaxed);
        for (int i = 0; i < LIVE + BIG; i++) {
            args[i] = (live_arg){&job, i};
            ox_task_builder b = OX_TASK_BUILDER_INIT;
            b.stack_size = i < LIVE ? 0 : 2 * OX_TASK_DEFAULT_STACK;
            CHECK_EQ(ox_task_builder_spawn(&b, live_task, &args[i], &h[i]), 0);
        }
        ox_test_wait_count(&job.started, LIVE + BIG);
        /* Every one holds its stack and record now. */
        check_distinct(job.local, LIVE + BIG, 4096);
        check_distinct(job.record, LIVE + BIG, 64);
        for (int i = 0; i < LIVE + BIG; i++)
            CHECK_EQ(ox_sender_send(tx, &i), 0);
        for (int i = 0; i < LIVE + BIG; i++) {
            void *r = (void *)3;
            CHECK_EQ(ox_task_join(&h[i], &r, NULL), 0);
            CHECK(r == NULL);
        }
        /* Let the workers idle (trim moves warm chains to cold). */
        CHECK_EQ(ox_task_sleep(OX_MILLIS(round % 2 ? 12 : 0)), 0);
    }
    ox_sender_drop(tx);
    ox_receiver_drop(job.gate);
    return NULL;
}

OX_TEST_OPTS(break13_stacks_past_the_guarded_budget_are_never_shared, .timeout_s = 60)
{
    CHECK_EQ(setenv("OX_TASK_GUARDED_STACKS", "24", 1), 0); /* this process only */
    CHECK(ox_test_run_alone(2, live_rounds, NULL) == NULL);
    /* A second runtime reuses what the first one's shutdown cached. */
    CHECK(ox_test_run_alone(2, live_rounds, NULL) == NULL);
}

/* ---- task ids: the first is 1, all unique across workers and threads ----
 * Two spawner tasks (one on each worker, most likely) and two threads each
 * spawn 1500 tasks (more than one worker's block of 1024); each task
 * reports its own id, which must match its handle's; all ids unique. */
enum { ID_SPAWNERS = 4, ID_EACH = 1500 };

static ox_runtime *id_rt;
static uint64_t ids[ID_SPAWNERS][ID_EACH];

static void *report_id(void *unused)
{
    (void)unused;
    return (void *)(uintptr_t)ox_task_id(ox_task_current());
}

static void *spawn_ids(void *arg)
{
    int k = (int)(intptr_t)arg;
    for (int i = 0; i < ID_EACH; i++) {
        ox_task_builder b = OX_TASK_BUILDER_INIT;
        b.runtime = id_rt;
        ox_task_handle h;
        CHECK_EQ(ox_task_builder_spawn(&b, report_id, NULL, &h), 0);
        ids[k][i] = ox_task_id(h.task);
        void *r = NULL;
        CHECK_EQ(ox_task_join(&h, &r, NULL), 0);
        CHECK_EQ((uint64_t)(uintptr_t)r, ids[k][i]);
        CHECK(ids[k][i] >= 1);
    }
    return NULL;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

OX_TEST(break13_task_ids_are_unique_across_workers_and_threads_and_start_at_1)
{
    id_rt = ox_test_runtime(2);
    ox_task_handle first = ox_test_spawn_on(id_rt, report_id, NULL);
    CHECK_EQ(ox_task_id(first.task), 1); /* the process's first task */
    void *r = NULL;
    CHECK_EQ(ox_task_join(&first, &r, NULL), 0);
    CHECK_EQ((uintptr_t)r, 1);
    ox_task_handle t0 = ox_test_spawn_on(id_rt, spawn_ids, (void *)0);
    ox_task_handle t1 = ox_test_spawn_on(id_rt, spawn_ids, (void *)1);
    ox_join_handle th2 = ox_test_spawn_named("ids-2", spawn_ids, (void *)2);
    ox_join_handle th3 = ox_test_spawn_named("ids-3", spawn_ids, (void *)3);
    CHECK_EQ(ox_task_join(&t0, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&t1, NULL, NULL), 0);
    ox_test_join(&th2);
    ox_test_join(&th3);
    ox_runtime_shutdown(id_rt);
    uint64_t *all = &ids[0][0];
    qsort(all, ID_SPAWNERS * ID_EACH, sizeof *all, cmp_u64);
    CHECK(all[0] > 1); /* 1 was the first task's */
    for (size_t i = 1; i < (size_t)ID_SPAWNERS * ID_EACH; i++)
        CHECK(all[i] != all[i - 1]);
}

/* ---- an abort of a task that waits again and again on the same word ----
 * The lot skips the Dekker store of the word when the task's last wait
 * was on the same one: a loop on a recv (its context at the same place on
 * the stack), on a sleep (its record's word), or on a select. Aborted at
 * a random moment, from a thread or from a task, the loop must always end
 * with OX_ECANCELED (a lost abort hangs: the runner's timeout names the
 * test). The feeder keeps the looper waking and waiting again. */
enum { ABORT_ROUNDS = 150 };

typedef struct looper {
    int kind; /* 0 recv, 1 sleep, 2 select */
    ox_receiver *rx, *rx2;
    _Atomic long laps;
} looper;

static void *loop_on_one_word(void *p)
{
    looper *l = p;
    for (;;) {
        int rc;
        long v;
        if (l->kind == 0) {
            rc = ox_receiver_recv(l->rx, &v);
        } else if (l->kind == 1) {
            rc = ox_task_sleep(OX_MICROS(20));
        } else {
            long v2;
            ox_select_op ops[] = {OX_SELECT_RECV(l->rx, &v), OX_SELECT_RECV(l->rx2, &v2)};
            size_t index;
            rc = ox_select(ops, 2, &index);
        }
        if (rc != 0)
            return (void *)(intptr_t)rc;
        /* Relaxed: a count of laps for the aborter to wait on. */
        atomic_fetch_add_explicit(&l->laps, 1, memory_order_relaxed);
    }
}

typedef struct feeder {
    ox_sender *tx;
    uint32_t seed;
} feeder;

/* Sends with pauses (so that the looper waits in between) until the
 * looper's receiver goes. */
static void *feed(void *p)
{
    feeder *f = p;
    for (long v = 0;; v++) {
        if (ox_sender_send(f->tx, &v) != 0)
            break;
        if (ox_test_rand(&f->seed) % 4 == 0)
            ox_task_yield();
    }
    ox_sender_drop(f->tx);
    return NULL;
}

static void abort_rounds(ox_runtime *rt, bool from_task)
{
    uint32_t x = 777;
    for (int round = 0; round < ABORT_ROUNDS; round++) {
        looper l = {.kind = round % 3};
        ox_sender *tx, *tx2;
        CHECK_EQ(ox_channel(sizeof(long), round % 2, &tx, &l.rx), 0);
        CHECK_EQ(ox_channel(sizeof(long), 0, &tx2, &l.rx2), 0);
        feeder f = {tx, ox_test_rand(&x) | 1};
        ox_task_handle fh = ox_test_spawn_on(rt, feed, &f);
        ox_task_handle h = ox_test_spawn_on(rt, loop_on_one_word, &l);
        /* Some laps first (the looper then re-waits on the same word),
         * then a random pause. Relaxed: a count. */
        long laps = 1 + ox_test_rand(&x) % 20;
        while (atomic_load_explicit(&l.laps, memory_order_relaxed) < laps) {
            if (from_task)
                ox_task_yield();
            else
                ox_thread_yield();
        }
        for (uint32_t spin = ox_test_rand(&x) % 20000; spin > 0; spin--)
            atomic_signal_fence(memory_order_seq_cst);
        ox_task_abort(&h);
        void *r = NULL;
        CHECK_EQ(ox_task_join(&h, &r, NULL), 0);
        CHECK_EQ((intptr_t)r, OX_ECANCELED);
        ox_receiver_drop(l.rx); /* the feeder's send fails: it ends */
        ox_receiver_drop(l.rx2);
        ox_sender_drop(tx2);
        CHECK_EQ(ox_task_join(&fh, NULL, NULL), 0);
    }
}

OX_TEST_OPTS(break13_an_abort_always_ends_a_task_looping_on_one_word_from_a_thread, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(2);
    abort_rounds(rt, false);
    ox_runtime_shutdown(rt);
}

static void *abort_rounds_task(void *rt)
{
    abort_rounds(rt, true);
    return NULL;
}

OX_TEST_OPTS(break13_an_abort_always_ends_a_task_looping_on_one_word_from_a_task, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle h = ox_test_spawn_on(rt, abort_rounds_task, rt);
    CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}

/* ---- a shutdown of a runtime whose tasks loop on one word ----
 * ox__park_lot_cancel_group against the skipped store: a shutdown at a
 * random moment must end every looper with OX_ECANCELED (or before it
 * ran), and return. */
enum { SHUTDOWN_ROUNDS = 40, LOOPERS = 6 };

OX_TEST_OPTS(break13_a_shutdown_always_ends_tasks_looping_on_one_word, .timeout_s = 60)
{
    uint32_t x = 4242;
    for (int round = 0; round < SHUTDOWN_ROUNDS; round++) {
        ox_runtime *rt = ox_test_runtime(2);
        looper l[LOOPERS];
        ox_sender *tx[LOOPERS], *tx2[LOOPERS];
        feeder f[LOOPERS];
        ox_task_handle h[LOOPERS], fh[LOOPERS];
        /* Kept until the loopers are joined: a feeder aborted in its send
         * drops its own, which must not end a looper's recv
         * (OX_EDISCONNECTED). */
        ox_sender *keep[LOOPERS];
        for (int i = 0; i < LOOPERS; i++) {
            l[i] = (looper){.kind = i % 3};
            CHECK_EQ(ox_channel(sizeof(long), (size_t)(i % 2), &tx[i], &l[i].rx), 0);
            CHECK_EQ(ox_channel(sizeof(long), 0, &tx2[i], &l[i].rx2), 0);
            keep[i] = ox_sender_clone(tx[i]);
            f[i] = (feeder){tx[i], ox_test_rand(&x) | 1};
            fh[i] = ox_test_spawn_on(rt, feed, &f[i]);
            h[i] = ox_test_spawn_on(rt, loop_on_one_word, &l[i]);
        }
        /* Relaxed: a count. */
        while (atomic_load_explicit(&l[0].laps, memory_order_relaxed) < 3)
            ox_thread_yield();
        for (uint32_t spin = ox_test_rand(&x) % 50000; spin > 0; spin--)
            atomic_signal_fence(memory_order_seq_cst);
        ox_runtime_shutdown(rt);
        for (int i = 0; i < LOOPERS; i++) {
            void *r = NULL;
            int rc = ox_task_join(&h[i], &r, NULL);
            CHECK(rc == OX_ECANCELED || (rc == 0 && (intptr_t)r == OX_ECANCELED));
            /* A feeder aborted in its send drops its sender; one aborted
             * before it ran never did. */
            rc = ox_task_join(&fh[i], NULL, NULL);
            CHECK(rc == 0 || rc == OX_ECANCELED);
            if (rc == OX_ECANCELED)
                ox_sender_drop(tx[i]);
            ox_sender_drop(keep[i]);
            ox_receiver_drop(l[i].rx);
            ox_receiver_drop(l[i].rx2);
            ox_sender_drop(tx2[i]);
        }
    }
}

/* ---- hand-offs racing timeouts and aborts: each message exactly once ----
 * On a rendezvous channel a send returns 0 exactly when a receive returned
 * that message. Senders and receivers (tasks on two workers, and a
 * thread) use tiny timeouts, so claims race the waiters' own aborts, and
 * a stale wake of a claimer meets the waiter's next wait at the same
 * address: the count and order of what arrived must be what the sends
 * reported. */
enum { HANDOFFS = 4000 };

/* A timeout of a few microseconds, doubled for each one in a row that
 * expired (up to about 4 ms): the first tries race the partner's claim,
 * and the exchange still progresses under qemu. With tiny timeouts only,
 * both sides could sit at 1 us together (the sender's v and the
 * receiver's count pick them, and advance only on success), and under
 * qemu, where a hand-off takes longer than that, they never met: these
 * tests ran past the aarch64 suites' 240 s. */
static ox_nanos backoff_timeout(long base_us, unsigned expired_in_a_row)
{
    return OX_MICROS(base_us) << (expired_in_a_row < 12 ? expired_in_a_row : 12);
}

/* Sends msg, with a timeout from base_us backing off (or, if !timed,
 * without one), until the send succeeds. */
static void send_with_backoff(ox_sender *tx, long msg, bool timed, long base_us)
{
    for (unsigned expired = 0;; expired++) {
        int rc = timed ? ox_sender_send_timeout(tx, &msg, backoff_timeout(base_us, expired))
                       : ox_sender_send(tx, &msg);
        if (rc == 0)
            return;
        CHECK_EQ(rc, OX_ETIMEDOUT);
        ox_task_yield(); /* a task must not spin on a task it woke (docs/tasks.md) */
    }
}

typedef struct handoff {
    ox_sender *tx;
    ox_receiver *rx;
    long sent_ok, received;
    bool send_times_out, recv_times_out;
    _Atomic int done;
} handoff;

static void *handoff_send(void *p)
{
    handoff *h = p;
    for (long v = 0; v < HANDOFFS; v++) {
        send_with_backoff(h->tx, v, h->send_times_out, 1 + v % 7 * 3);
        h->sent_ok++;
    }
    ox_sender_drop(h->tx);
    return NULL;
}

static void *handoff_recv(void *p)
{
    handoff *h = p;
    unsigned expired = 0;
    for (;;) {
        long v;
        int rc = h->recv_times_out
                     ? ox_receiver_recv_timeout(h->rx, &v,
                                                backoff_timeout(1 + h->received % 5 * 4, expired))
                     : ox_receiver_recv(h->rx, &v);
        if (rc == OX_EDISCONNECTED)
            break;
        if (rc == OX_ETIMEDOUT) {
            expired++;
            ox_task_yield(); /* as above */
            continue;
        }
        expired = 0;
        CHECK_EQ(rc, 0);
        CHECK_EQ(v, h->received); /* each once, in order */
        h->received++;
    }
    ox_receiver_drop(h->rx);
    return NULL;
}

static void run_handoff(ox_runtime *rt, bool send_task, bool recv_task, int timeouts)
{
    handoff h = {.send_times_out = timeouts & 1, .recv_times_out = timeouts & 2};
    CHECK_EQ(ox_channel(sizeof(long), 0, &h.tx, &h.rx), 0);
    ox_task_handle st = {0}, rt_ = {0};
    ox_join_handle sth, rth;
    if (send_task)
        st = ox_test_spawn_on(rt, handoff_send, &h);
    else
        sth = ox_test_spawn_named("handoff-send", handoff_send, &h);
    if (recv_task)
        rt_ = ox_test_spawn_on(rt, handoff_recv, &h);
    else
        rth = ox_test_spawn_named("handoff-recv", handoff_recv, &h);
    if (send_task)
        CHECK_EQ(ox_task_join(&st, NULL, NULL), 0);
    else
        ox_test_join(&sth);
    if (recv_task)
        CHECK_EQ(ox_task_join(&rt_, NULL, NULL), 0);
    else
        ox_test_join(&rth);
    CHECK_EQ(h.sent_ok, HANDOFFS);
    CHECK_EQ(h.received, HANDOFFS);
}

OX_TEST_OPTS(break13_rendezvous_with_timeouts_hands_each_message_over_once, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(2);
    for (int timeouts = 1; timeouts < 4; timeouts++) {
        run_handoff(rt, true, true, timeouts);
        run_handoff(rt, true, false, timeouts);
        run_handoff(rt, false, true, timeouts);
    }
    ox_runtime_shutdown(rt);
}

/* ---- an abort racing a claim of a task's rendezvous receive ----
 * A thread sends on a rendezvous channel with a short timeout while the
 * receiving task is aborted at a random moment. A send that returned 0
 * was received: the aborted receive must then return the message, not
 * OX_ECANCELED (the claim won; the task waits for the claimer's wake). */
typedef struct claim_race {
    ox_sender *tx;
    ox_receiver *rx;
    long got;
    _Atomic int stop;
} claim_race;

static void *claim_recv(void *p)
{
    claim_race *c = p;
    for (;;) {
        long v;
        int rc = ox_receiver_recv(c->rx, &v);
        if (rc != 0)
            return (void *)(intptr_t)rc;
        CHECK_EQ(v, c->got);
        c->got++;
    }
}

static void *claim_send(void *p)
{
    claim_race *c = p;
    long v = 0;
    /* Relaxed: a stop request; the join orders the result. */
    while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
        int rc = ox_sender_send_timeout(c->tx, &v, OX_MICROS(30));
        if (rc == 0)
            v++;
    }
    return (void *)(intptr_t)v;
}

OX_TEST_OPTS(break13_an_abort_racing_a_claim_never_loses_the_message, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(2);
    uint32_t x = 99;
    for (int round = 0; round < 100; round++) {
        claim_race c = {0};
        CHECK_EQ(ox_channel(sizeof(long), 0, &c.tx, &c.rx), 0);
        ox_join_handle s = ox_test_spawn_named("claim-send", claim_send, &c);
        ox_task_handle r = ox_test_spawn_on(rt, claim_recv, &c);
        for (uint32_t spin = ox_test_rand(&x) % 200000; spin > 0; spin--)
            atomic_signal_fence(memory_order_seq_cst);
        ox_task_abort(&r);
        void *rc = NULL;
        int jr = ox_task_join(&r, &rc, NULL);
        atomic_store_explicit(&c.stop, 1, memory_order_relaxed);
        void *sent = NULL;
        CHECK_EQ(ox_thread_join(&s, &sent, NULL), 0);
        if (jr == OX_ECANCELED) { /* aborted before it ran */
            CHECK_EQ((intptr_t)sent, 0);
        } else {
            CHECK_EQ(jr, 0);
            CHECK_EQ((intptr_t)rc, OX_ECANCELED);
            CHECK_EQ(c.got, (intptr_t)sent);
        }
        ox_sender_drop(c.tx);
        ox_receiver_drop(c.rx);
    }
    ox_runtime_shutdown(rt);
}

/* ---- select over several channels with timeouts, fed by tasks and threads ----
 * A task selects over three rendezvous channels with tiny timeouts; two
 * tasks and a thread send on them with timeouts. Every send that returned
 * 0 was received once, by exactly the case it was sent on. */
enum { SEL_EACH = 1500 };

typedef struct sel_feed {
    ox_sender *tx;
    long id, sent;
} sel_feed;

static void *sel_send(void *p)
{
    sel_feed *f = p;
    for (long v = 0; v < SEL_EACH; v++) {
        send_with_backoff(f->tx, f->id << 32 | v, true, 1 + v % 3 * 10);
        f->sent++;
    }
    ox_sender_drop(f->tx);
    return NULL;
}

typedef struct sel_job {
    ox_receiver *rx[3];
    long next[3];
} sel_job;

static void *sel_recv(void *p)
{
    sel_job *j = p;
    int open = 3;
    unsigned expired = 0;
    while (open > 0) {
        long v[3] = {-1, -1, -1};
        ox_select_op ops[3];
        for (int i = 0; i < 3; i++)
            ops[i] = j->rx[i] != NULL ? OX_SELECT_RECV(j->rx[i], &v[i]) : OX_SELECT_NEVER;
        size_t index = 9;
        int rc =
            ox_select_timeout(ops, 3, backoff_timeout(1 + j->next[0] % 4 * 5, expired), &index);
        if (rc == OX_ETIMEDOUT) {
            expired++;
            /* A task must not spin on a task it woke: that one waits in
             * this worker's LIFO slot, unstolen (docs/tasks.md). */
            ox_task_yield();
            continue;
        }
        expired = 0;
        CHECK(index < 3);
        if (rc == OX_EDISCONNECTED) {
            ox_receiver_drop(j->rx[index]);
            j->rx[index] = NULL;
            open--;
            continue;
        }
        CHECK_EQ(rc, 0);
        CHECK_EQ(v[index] >> 32, (long)index);
        CHECK_EQ(v[index] & 0xffffffff, j->next[index]);
        j->next[index]++;
    }
    return NULL;
}

OX_TEST_OPTS(break13_select_with_timeouts_gets_each_message_once_on_its_case, .timeout_s = 60)
{
    ox_runtime *rt = ox_test_runtime(2);
    sel_job j = {0};
    sel_feed f[3];
    for (int i = 0; i < 3; i++) {
        f[i] = (sel_feed){.id = i};
        CHECK_EQ(ox_channel(sizeof(long), 0, &f[i].tx, &j.rx[i]), 0);
    }
    ox_task_handle r = ox_test_spawn_on(rt, sel_recv, &j);
    ox_task_handle s0 = ox_test_spawn_on(rt, sel_send, &f[0]);
    ox_task_handle s1 = ox_test_spawn_on(rt, sel_send, &f[1]);
    ox_join_handle s2 = ox_test_spawn_named("sel-send", sel_send, &f[2]);
    CHECK_EQ(ox_task_join(&s0, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&s1, NULL, NULL), 0);
    ox_test_join(&s2);
    CHECK_EQ(ox_task_join(&r, NULL, NULL), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(f[i].sent, SEL_EACH);
        CHECK_EQ(j.next[i], SEL_EACH);
    }
    ox_runtime_shutdown(rt);
}
