/* Stress from trying to break 29ecfcb (a blocked channel thread spins,
 * then parks, with no yields between), 53ea1d0 (the spin's cap between
 * probes is 10 us) and 3484ab1 + 81d26c5 (a sender in a bounded ring of
 * 1 MiB or more prefetches the slot 32 ahead). None of these found a bug;
 * they are kept as regression tests of what the changes must not break. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "chan/chan_internal.h" /* white box: whether a ring prefetches */

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    CHECK_EQ(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- a blocked thread sleeps: the spin ends, and no yield loop follows ----
 * A receiver thread blocks on a bounded, a rendezvous channel and a select
 * of both for about 100 ms each; its own CPU time over each wait must be a
 * small part of that (the spin is 10 us, a probe 50 us). A wait that never
 * parked would use the whole 100 ms. */
struct sleeper {
    ox_receiver *rx_bounded, *rx_zero;
    _Atomic int stage; /* the receiver is about to wait for the stage-th time */
    int64_t cpu_ns[3];
};

static void *sleeper_recv(void *arg)
{
    struct sleeper *s = arg;
    uint64_t v = 0;
    for (int stage = 0; stage < 3; stage++) {
        atomic_store(&s->stage, stage + 1);
        int64_t t0 = thread_cpu_ns();
        if (stage == 0) {
            CHECK_EQ(ox_receiver_recv(s->rx_bounded, &v), 0);
        } else if (stage == 1) {
            CHECK_EQ(ox_receiver_recv(s->rx_zero, &v), 0);
        } else {
            uint64_t a = 0, b = 0;
            ox_select_op ops[2] = {OX_SELECT_RECV(s->rx_bounded, &a),
                                   OX_SELECT_RECV(s->rx_zero, &b)};
            size_t index = 9;
            CHECK_EQ(ox_select(ops, 2, &index), 0);
            CHECK_EQ(index, 1);
            v = b;
        }
        s->cpu_ns[stage] = thread_cpu_ns() - t0;
        CHECK_EQ(v, (uint64_t)stage + 100);
    }
    return NULL;
}

OX_TEST(break26_a_blocked_channel_thread_sleeps_instead_of_spinning)
{
    static struct sleeper s;
    ox_sender *tx_bounded, *tx_zero;
    CHECK_EQ(ox_channel(sizeof(uint64_t), 4, &tx_bounded, &s.rx_bounded), 0);
    CHECK_EQ(ox_channel(sizeof(uint64_t), 0, &tx_zero, &s.rx_zero), 0);
    atomic_store(&s.stage, 0);
    ox_join_handle h = ox_thread_spawn(sleeper_recv, &s);
    for (int stage = 0; stage < 3; stage++) {
        while (atomic_load(&s.stage) != stage + 1)
            ox_thread_yield();
        ox_thread_sleep(OX_MILLIS(100));
        uint64_t v = (uint64_t)stage + 100;
        CHECK_EQ(ox_sender_send(stage == 0 ? tx_bounded : tx_zero, &v), 0);
    }
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    for (int stage = 0; stage < 3; stage++)
        CHECK(s.cpu_ns[stage] < OX_MILLIS(30));
    ox_sender_drop(tx_bounded);
    ox_sender_drop(tx_zero);
    ox_receiver_drop(s.rx_bounded);
    ox_receiver_drop(s.rx_zero);
}

/* The same for a run of short timed waits on an empty channel: each ends
 * at its deadline, never before, and together they sleep most of the time
 * (the spin falls to a look, probes come ever less often). */
static void *timed_waits_sleep(void *arg)
{
    ox_receiver *rx = arg;
    int64_t cpu0 = thread_cpu_ns();
    ox_instant t0 = ox_instant_now();
    int rounds = 200;
    for (int i = 0; i < rounds; i++) {
        uint64_t v;
        ox_instant before = ox_instant_now();
        CHECK_EQ(ox_receiver_recv_timeout(rx, &v, OX_MICROS(300)), OX_ETIMEDOUT);
        CHECK(ox_instant_now().ns - before.ns >= OX_MICROS(300));
    }
    int64_t wall = ox_instant_now().ns - t0.ns;
    int64_t cpu = thread_cpu_ns() - cpu0;
    CHECK(cpu < wall / 2);
    return NULL;
}

OX_TEST(break26_short_timed_waits_end_at_their_deadlines_and_mostly_sleep)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(uint64_t), 0, &tx, &rx), 0);
    ox_join_handle h = ox_thread_spawn(timed_waits_sleep, rx);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
}

/* ---- disconnect while the other side spins or sleeps ----
 * A thread blocks in a send (full ring or rendezvous) or a receive (empty
 * ring or rendezvous); the other side's last handle is dropped after a
 * delay that lands in the spin (0-15 us) or after it (a sleep). Every
 * blocked call must return OX_EDISCONNECTED. */
struct disc {
    ox_sender *tx;
    ox_receiver *rx;
    int sending;
    _Atomic int arrived;
    int rc;
};

static void *disc_block(void *arg)
{
    struct disc *d = arg;
    uint64_t v = 1;
    atomic_store(&d->arrived, 1);
    if (d->sending) {
        d->rc = ox_sender_send(d->tx, &v);
        ox_sender_drop(d->tx);
    } else {
        d->rc = ox_receiver_recv(d->rx, &v);
        ox_receiver_drop(d->rx);
    }
    return NULL;
}

OX_TEST(break26_disconnect_while_a_thread_spins_or_sleeps_in_a_wait)
{
    uint32_t x = 4242;
    long rounds = ox_test_scaled(200);
    for (long i = 0; i < rounds; i++) {
        static struct disc d;
        size_t cap = (size_t)(i % 2); /* rendezvous or a ring of one */
        CHECK_EQ(ox_channel(sizeof(uint64_t), cap, &d.tx, &d.rx), 0);
        d.sending = (int)((i / 2) % 2);
        atomic_store(&d.arrived, 0);
        d.rc = -1;
        if (d.sending && cap == 1) {
            uint64_t v = 0;
            CHECK_EQ(ox_sender_send(d.tx, &v), 0); /* full */
        }
        ox_join_handle h = ox_thread_spawn(disc_block, &d);
        while (!atomic_load(&d.arrived))
            ox_test_spin_ns(100);
        uint32_t r = ox_test_rand(&x) % 64;
        if (r < 48)
            ox_test_spin_ns((int64_t)r * 300); /* inside the spin, mostly */
        else
            ox_thread_sleep(OX_MICROS(r * 4)); /* after it */
        if (d.sending)
            ox_receiver_drop(d.rx);
        else
            ox_sender_drop(d.tx);
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        CHECK_EQ(d.rc, OX_EDISCONNECTED);
    }
}

/* ---- select over rendezvous and small rings, threads and tasks ----
 * Two thread receivers select over three channels (two rendezvous, one ring
 * of one) with short timeouts; two thread senders and two task senders
 * (one worker) each send a numbered stream into one channel, some with
 * timeouts. Each sent message is received exactly once, each sender's in
 * order per channel, and the receivers see every channel's disconnect. */
enum { SEL_CHANS = 3, SEL_SENDERS = 4, SEL_RECEIVERS = 2 };

struct sel {
    ox_sender *tx[SEL_SENDERS];
    ox_receiver *rx[SEL_RECEIVERS][SEL_CHANS];
    long per_sender;
    long sent[SEL_SENDERS];
    _Atomic long received[SEL_SENDERS];
    _Atomic long sum[SEL_SENDERS];
};

struct sel_arg {
    struct sel *s;
    int id;
};

static void *sel_send(void *arg)
{
    struct sel_arg *a = arg;
    struct sel *s = a->s;
    uint32_t x = 31u + (uint32_t)a->id;
    long k = 0;
    for (long i = 0; i < s->per_sender; i++) {
        uint64_t msg = (uint64_t)a->id << 32 | (uint64_t)k;
        int rc = a->id % 2
                     ? ox_sender_send(s->tx[a->id], &msg)
                     : ox_sender_send_timeout(s->tx[a->id], &msg, OX_MICROS(ox_test_rand(&x) % 40));
        CHECK(rc == 0 || rc == OX_ETIMEDOUT);
        if (rc == 0)
            k++;
    }
    s->sent[a->id] = k;
    ox_sender_drop(s->tx[a->id]);
    return NULL;
}

static void *sel_recv(void *arg)
{
    struct sel_arg *a = arg;
    struct sel *s = a->s;
    uint64_t buf[SEL_CHANS];
    ox_select_op ops[SEL_CHANS];
    for (int c = 0; c < SEL_CHANS; c++)
        ops[c] = OX_SELECT_RECV(s->rx[a->id][c], &buf[c]);
    int live = SEL_CHANS;
    uint32_t x = 7u + (uint32_t)a->id;
    while (live > 0) {
        size_t index = SEL_CHANS;
        int rc = a->id == 0
                     ? ox_select(ops, SEL_CHANS, &index)
                     : ox_select_timeout(ops, SEL_CHANS, OX_MICROS(ox_test_rand(&x) % 50), &index);
        if (rc == OX_ETIMEDOUT)
            continue;
        CHECK(index < SEL_CHANS);
        if (rc == OX_EDISCONNECTED) {
            ops[index] = OX_SELECT_NEVER;
            live--;
            continue;
        }
        CHECK_EQ(rc, 0);
        int id = (int)(buf[index] >> 32);
        CHECK(id >= 0 && id < SEL_SENDERS);
        CHECK_EQ(id % SEL_CHANS, (int)index);
        atomic_fetch_add(&s->received[id], 1);
        atomic_fetch_add(&s->sum[id], (long)(buf[index] & 0xffffffffu));
    }
    for (int c = 0; c < SEL_CHANS; c++)
        ox_receiver_drop(s->rx[a->id][c]);
    return NULL;
}

OX_TEST(break26_select_over_rendezvous_threads_and_tasks_each_message_once)
{
    static struct sel s;
    static struct sel_arg sargs[SEL_SENDERS], rargs[SEL_RECEIVERS];
    ox_sender *tx[SEL_CHANS];
    ox_receiver *rx[SEL_CHANS];
    for (int c = 0; c < SEL_CHANS; c++)
        CHECK_EQ(ox_channel(sizeof(uint64_t), c == 2 ? 1 : 0, &tx[c], &rx[c]), 0);
    /* Sender i sends into channel i % 3: channel 0 gets two senders. */
    for (int i = 0; i < SEL_SENDERS; i++) {
        s.tx[i] = ox_sender_clone(tx[i % SEL_CHANS]);
        s.sent[i] = 0;
        atomic_store(&s.received[i], 0);
        atomic_store(&s.sum[i], 0);
        sargs[i] = (struct sel_arg){&s, i};
    }
    for (int r = 0; r < SEL_RECEIVERS; r++) {
        for (int c = 0; c < SEL_CHANS; c++)
            s.rx[r][c] = ox_receiver_clone(rx[c]);
        rargs[r] = (struct sel_arg){&s, r};
    }
    for (int c = 0; c < SEL_CHANS; c++) {
        ox_sender_drop(tx[c]);
        ox_receiver_drop(rx[c]);
    }
    s.per_sender = ox_test_scaled(4000);
    ox_runtime *rt = ox_test_runtime(1);
    ox_join_handle rth[SEL_RECEIVERS], sth[2];
    ox_task_handle stk[2];
    for (int r = 0; r < SEL_RECEIVERS; r++)
        rth[r] = ox_thread_spawn(sel_recv, &rargs[r]);
    sth[0] = ox_thread_spawn(sel_send, &sargs[0]);
    stk[0] = ox_test_spawn_on(rt, sel_send, &sargs[1]);
    sth[1] = ox_thread_spawn(sel_send, &sargs[2]);
    stk[1] = ox_test_spawn_on(rt, sel_send, &sargs[3]);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(ox_thread_join(&sth[i], NULL, NULL), 0);
        CHECK_EQ(ox_task_join(&stk[i], NULL, NULL), 0);
    }
    for (int r = 0; r < SEL_RECEIVERS; r++)
        CHECK_EQ(ox_thread_join(&rth[r], NULL, NULL), 0);
    for (int i = 0; i < SEL_SENDERS; i++) {
        long n = s.sent[i];
        CHECK_EQ(atomic_load(&s.received[i]), n);
        CHECK_EQ(atomic_load(&s.sum[i]), n * (n - 1) / 2);
    }
    ox_runtime_shutdown(rt);
}

/* ---- a large ring: the sender's prefetch ahead ----
 * Rings at and around the 1 MiB threshold, with odd capacities, large odd
 * element sizes, capacities at and just above the prefetch distance (32),
 * and a ring of one huge element. A sender thread streams several laps
 * through each, each message's bytes a function of its number; the
 * receiver checks every byte, then the sender drops the channel with
 * messages still buffered, which the receiver drains before
 * OX_EDISCONNECTED. (Under ASan a prefetch or slot computed past the ring
 * would be a report if it were a load; the checks catch a wrong slot.) */
struct ring_cfg {
    size_t elem, cap;
    bool prefetch;
};

struct ring_run {
    ox_sender *tx;
    const struct ring_cfg *cfg;
    long messages;
};

static unsigned char byte_of(long n, size_t i)
{
    return (unsigned char)((uint64_t)n * 131u + i * 7u + (i >> 8));
}

static void fill(unsigned char *buf, size_t elem, long n)
{
    size_t head = elem < sizeof n ? elem : sizeof n;
    memcpy(buf, &n, head);
    for (size_t i = head; i < elem; i++)
        buf[i] = byte_of(n, i);
}

static void *ring_send(void *arg)
{
    struct ring_run *r = arg;
    unsigned char *buf = malloc(r->cfg->elem);
    CHECK(buf != NULL);
    for (long n = 0; n < r->messages; n++) {
        fill(buf, r->cfg->elem, n);
        CHECK_EQ(ox_sender_send(r->tx, buf), 0);
    }
    ox_sender_drop(r->tx);
    free(buf);
    return NULL;
}

OX_TEST(break26_large_rings_prefetching_ahead_keep_every_message_intact)
{
    static const struct ring_cfg cfgs[] = {
        {8, 65535, false},          /* 16-byte slots: just under 1 MiB */
        {8, 65536, true},           /* exactly 1 MiB */
        {8, 65537, true},           /* odd, just over */
        {4093, 257, true},          /* odd element, 4104-byte slots */
        {40001, 33, true},          /* 33 slots: only index 0 prefetches */
        {40001, 32, true},          /* 32 slots: none does */
        {(size_t)1 << 20, 1, true}, /* one huge element */
        {1, 65537, true},           /* a 1-byte message in each 16-byte slot */
    };
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
        const struct ring_cfg *cfg = &cfgs[k];
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(cfg->elem, cfg->cap, &tx, &rx), 0);
        CHECK_EQ(((ox__handle *)(void *)tx)->chan->prefetch, cfg->prefetch);
        /* Two laps and a bit, at least: the wrap-around is where a slot
         * computed wrong would show. */
        long messages = ox_test_scaled(1 << 20) / (long)(cfg->elem + 8);
        if (messages < (long)cfg->cap * 2 + 5)
            messages = (long)cfg->cap * 2 + 5;
        static struct ring_run run;
        run = (struct ring_run){tx, cfg, messages};
        ox_join_handle h = ox_thread_spawn(ring_send, &run);
        unsigned char *got = malloc(cfg->elem);
        CHECK(got != NULL);
        unsigned char *want = malloc(cfg->elem);
        CHECK(want != NULL);
        uint32_t x = 5;
        long n = 0;
        for (;; n++) {
            /* Now and then let the sender fill the ring (and block). */
            if (ox_test_rand(&x) % 4096 == 0)
                ox_thread_sleep(OX_MICROS(200));
            int rc = ox_receiver_recv(rx, got);
            if (rc == OX_EDISCONNECTED)
                break;
            CHECK_EQ(rc, 0);
            fill(want, cfg->elem, n);
            CHECK(memcmp(got, want, cfg->elem) == 0);
        }
        CHECK_EQ(n, messages);
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        free(got);
        free(want);
        ox_receiver_drop(rx);
    }
}
