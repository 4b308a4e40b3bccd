/* Channels of zero-size messages (Rust's Sender<()>, Go's chan struct{}):
 * every flavor, NULL message pointers, timeouts, disconnection, select,
 * destructors, and no buffer memory that grows with the messages. */
#include "oxide.h"
#include "runner.h"

#include "chan/chan_internal.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const size_t caps[] = {OX_UNBOUNDED, 0, 1, 16};
#define NCAPS (sizeof caps / sizeof caps[0])

/* The single-threaded contract of one capacity. */
static void basic_round(size_t cap)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(0, cap, &tx, &rx), 0);
    CHECK(ox_sender_capacity(tx) == cap);
    CHECK_EQ(ox_receiver_len(rx), 0);
    CHECK(ox_receiver_is_empty(rx));
    CHECK_EQ(ox_receiver_try_recv(rx, NULL), OX_EEMPTY);
    CHECK_EQ(ox_receiver_recv_timeout(rx, NULL, OX_MILLIS(5)), OX_ETIMEDOUT);
    if (cap == 0) {
        /* Rendezvous: nobody receiving, so nothing can be sent. */
        CHECK_EQ(ox_sender_try_send(tx, NULL), OX_EFULL);
        CHECK_EQ(ox_sender_send_timeout(tx, NULL, OX_MILLIS(5)), OX_ETIMEDOUT);
        CHECK(ox_sender_is_full(tx));
    } else {
        size_t fill = cap == OX_UNBOUNDED ? 1000 : cap;
        for (size_t i = 0; i < fill; i++)
            CHECK_EQ(ox_sender_try_send(tx, NULL), 0);
        CHECK_EQ(ox_sender_len(tx), fill);
        CHECK(!ox_receiver_is_empty(rx));
        if (cap != OX_UNBOUNDED) {
            CHECK(ox_sender_is_full(tx));
            CHECK_EQ(ox_sender_try_send(tx, NULL), OX_EFULL);
            CHECK_EQ(ox_sender_send_timeout(tx, NULL, OX_MILLIS(5)), OX_ETIMEDOUT);
            CHECK_EQ(ox_sender_send_deadline(tx, NULL, (ox_instant){0}), OX_ETIMEDOUT);
        } else {
            CHECK(!ox_sender_is_full(tx));
        }
        /* Non-NULL buffers are accepted too, and nothing is written. */
        unsigned char canary = 0xa5;
        CHECK_EQ(ox_receiver_recv(rx, &canary), 0);
        CHECK_EQ(canary, 0xa5);
        CHECK_EQ(ox_receiver_len(rx), fill - 1);
        /* The last sender goes: the rest drains, then disconnected. */
        ox_sender_drop(tx);
        for (size_t i = 1; i < fill; i++)
            CHECK_EQ(ox_receiver_try_recv(rx, NULL), 0);
        CHECK_EQ(ox_receiver_try_recv(rx, NULL), OX_EDISCONNECTED);
        CHECK_EQ(ox_receiver_recv(rx, NULL), OX_EDISCONNECTED);
        ox_receiver_drop(rx);
        CHECK_EQ(ox_channel(0, cap, &tx, &rx), 0);
    }
    /* The last receiver goes: sends fail. */
    ox_receiver_drop(rx);
    CHECK_EQ(ox_sender_send(tx, NULL), OX_EDISCONNECTED);
    CHECK_EQ(ox_sender_try_send(tx, NULL), OX_EDISCONNECTED);
    ox_sender_drop(tx);
}

OX_TEST(chan_zero_size_every_flavor)
{
    for (size_t i = 0; i < NCAPS; i++)
        basic_round(caps[i]);
}

/* A zero-size channel with a capacity is a counter: an unbounded one
 * allocates no blocks however many messages it holds, and a bounded one
 * no ring (a ring for 2^40 messages would not fit in memory). */
OX_TEST(chan_zero_size_buffers_no_memory)
{
    long blocks = ox__list_blocks_live();
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(0, OX_UNBOUNDED, &tx, &rx), 0);
    long n = ox_test_scaled(1000000);
    for (long i = 0; i < n; i++)
        CHECK_EQ(ox_sender_send(tx, NULL), 0);
    CHECK_EQ(ox_receiver_len(rx), n);
    CHECK_EQ(ox__list_blocks_live(), blocks);
    for (long i = 0; i < n; i++)
        CHECK_EQ(ox_receiver_recv(rx, NULL), 0);
    CHECK_EQ(ox_receiver_try_recv(rx, NULL), OX_EEMPTY);
    ox_sender_drop(tx);
    ox_receiver_drop(rx);

    size_t huge = (size_t)1 << 40;
    CHECK_EQ(ox_channel(0, huge, &tx, &rx), 0);
    for (long i = 0; i < 100000; i++)
        CHECK_EQ(ox_sender_try_send(tx, NULL), 0);
    CHECK_EQ(ox_sender_len(tx), 100000);
    CHECK(!ox_sender_is_full(tx));
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
}

static _Atomic long destroyed;
static _Atomic long destroyed_non_null;

static void count_destroy(void *elem)
{
    atomic_fetch_add(&destroyed, 1);
    if (elem != NULL)
        atomic_fetch_add(&destroyed_non_null, 1);
}

/* As for messages with bytes: the destructor runs once per message still
 * buffered when the last receiver goes (with NULL: there is nothing to
 * point at), never for received ones. */
OX_TEST(chan_zero_size_destructor_per_unread_message)
{
    size_t bounded[] = {OX_UNBOUNDED, 16};
    for (int k = 0; k < 2; k++) {
        atomic_store(&destroyed, 0);
        ox_channel_options o = {.elem_size = 0, .capacity = bounded[k], .destroy = count_destroy};
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel_with(&o, &tx, &rx), 0);
        for (int i = 0; i < 5; i++)
            CHECK_EQ(ox_sender_send(tx, NULL), 0);
        CHECK_EQ(ox_receiver_recv(rx, NULL), 0);
        CHECK_EQ(ox_receiver_recv(rx, NULL), 0);
        CHECK_EQ(atomic_load(&destroyed), 0);
        ox_receiver_drop(rx);
        CHECK_EQ(atomic_load(&destroyed), 3);
        CHECK_EQ(ox_sender_len(tx), 0);
        ox_sender_drop(tx);
        CHECK_EQ(atomic_load(&destroyed), 3);
    }
    CHECK_EQ(atomic_load(&destroyed_non_null), 0);
}

/* A destructor that panics in the last receiver's drop (issue 17 #5, for
 * zero-size messages): the others are still destroyed, each once, the
 * channel is freed with the last sender (LeakSanitizer checks), and the
 * panic reaches the catch point. */
static _Atomic long panic_on_call = -1;

static void destroy_or_panic(void *elem)
{
    long call = atomic_fetch_add(&destroyed, 1);
    if (elem != NULL)
        atomic_fetch_add(&destroyed_non_null, 1);
    if (call == atomic_load(&panic_on_call))
        ox_panic("signal %ld refuses to be destroyed", call);
}

static void *drop_receiver(void *rx)
{
    ox_receiver_drop(rx);
    return NULL;
}

OX_TEST(chan_zero_size_panicking_destructor_still_frees_the_channel)
{
    size_t bounded[] = {OX_UNBOUNDED, 16};
    for (int k = 0; k < 2; k++) {
        atomic_store(&destroyed, 0);
        atomic_store(&panic_on_call, 3);
        ox_channel_options o = {
            .elem_size = 0, .capacity = bounded[k], .destroy = destroy_or_panic};
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel_with(&o, &tx, &rx), 0);
        for (int i = 0; i < 10; i++)
            CHECK_EQ(ox_sender_send(tx, NULL), 0);
        ox_panic_payload *payload = NULL;
        CHECK_EQ(ox_catch_unwind(drop_receiver, rx, NULL, &payload), OX_EPANICKED);
        CHECK(strstr(payload->message, "refuses to be destroyed") != NULL);
        ox_panic_payload_free(payload);
        CHECK_EQ(atomic_load(&destroyed), 10);
        CHECK_EQ(ox_sender_len(tx), 0);
        CHECK_EQ(ox_sender_send(tx, NULL), OX_EDISCONNECTED);
        ox_sender_drop(tx);
    }
    CHECK_EQ(atomic_load(&destroyed_non_null), 0);
}

/* ---- threads ---- */

#define PAYLOADS 4096

/* One producer writes a plain (non-atomic) payload, then signals with a
 * zero-size message; the consumer reads the payload after each receive.
 * The signal must carry the write (under TSan a missing happens-before is
 * a reported race; without it the value check can fail). */
typedef struct signal_ctx {
    ox_sender *tx;
    ox_receiver *rx;
    ox_test_budget budget;
    long n; /* what it sent, for after the join */
    long payload[PAYLOADS];
} signal_ctx;

static void *signal_producer(void *arg)
{
    signal_ctx *s = arg;
    long i = 0;
    for (; ox_test_budget_more(&s->budget, i); i++) {
        s->payload[i % PAYLOADS] = i + 1;
        if (ox_sender_send(s->tx, NULL) != 0)
            abort();
        /* Reuse a slot only after the consumer has read it: the consumer
         * answers every PAYLOADS / 2 messages. */
        if (i % (PAYLOADS / 2) == PAYLOADS / 2 - 1 && ox_receiver_recv(s->rx, NULL) != 0)
            abort();
    }
    s->n = i;
    ox_sender_drop(s->tx);
    return NULL;
}

OX_TEST(chan_zero_size_send_happens_before_recv)
{
    /* One budget for every capacity: each gets its minimum. */
    ox_test_budget budget = ox_test_budget_start(200, ox_test_scaled(40000));
    for (size_t c = 0; c < NCAPS; c++) {
        signal_ctx *s = calloc(1, sizeof *s);
        CHECK(s != NULL);
        ox_sender *ack_tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(0, caps[c], &s->tx, &rx), 0);
        CHECK_EQ(ox_channel(0, OX_UNBOUNDED, &ack_tx, &s->rx), 0);
        s->budget = budget;
        ox_join_handle h = ox_thread_spawn(signal_producer, s);
        long got = 0;
        while (ox_receiver_recv(rx, NULL) == 0) {
            CHECK_EQ(s->payload[got % PAYLOADS], got + 1);
            got++;
            if (got % (PAYLOADS / 2) == 0)
                CHECK_EQ(ox_sender_send(ack_tx, NULL), 0);
        }
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        CHECK_EQ(got, s->n);
        ox_receiver_drop(rx);
        ox_sender_drop(ack_tx);
        ox_receiver_drop(s->rx);
        free(s);
    }
}

/* Four producers and four consumers: every signal sent is received exactly
 * once (counts conserved), and every consumer ends on disconnection. */
typedef struct mpmc_zs {
    ox_sender *tx[4];
    ox_receiver *rx[4];
    ox_test_budget budget; /* per producer */
    _Atomic long received, sent;
    _Atomic int slot;
} mpmc_zs;

static void *zs_producer(void *arg)
{
    mpmc_zs *m = arg;
    int i = atomic_fetch_add(&m->slot, 1);
    long k = 0;
    for (; ox_test_budget_more(&m->budget, k); k++) {
        /* Mix blocking, try and timed sends. */
        int rc;
        if (k % 3 == 0)
            rc = ox_sender_send(m->tx[i], NULL);
        else if (k % 3 == 1)
            while ((rc = ox_sender_try_send(m->tx[i], NULL)) == OX_EFULL)
                ox_thread_yield();
        else
            while ((rc = ox_sender_send_timeout(m->tx[i], NULL, OX_MICROS(50))) == OX_ETIMEDOUT)
                ;
        if (rc != 0)
            abort();
    }
    atomic_fetch_add(&m->sent, k);
    ox_sender_drop(m->tx[i]);
    return NULL;
}

static void *zs_consumer(void *arg)
{
    mpmc_zs *m = arg;
    int i = atomic_fetch_add(&m->slot, 1) - 4;
    long got = 0;
    for (;;) {
        int rc = got % 2 ? ox_receiver_recv(m->rx[i], NULL)
                         : ox_receiver_recv_timeout(m->rx[i], NULL, OX_MICROS(50));
        if (rc == OX_ETIMEDOUT)
            continue;
        if (rc == OX_EDISCONNECTED)
            break;
        if (rc != 0)
            abort();
        got++;
    }
    atomic_fetch_add(&m->received, got);
    ox_receiver_drop(m->rx[i]);
    return NULL;
}

OX_TEST(chan_zero_size_mpmc_counts_conserved)
{
    /* One deadline for every capacity: each gets its minimum. */
    ox_test_budget budget = ox_test_budget_start(100, LONG_MAX);
    for (size_t c = 0; c < NCAPS; c++) {
        mpmc_zs m = {.budget = budget};
        m.budget.max = ox_test_scaled(caps[c] == 0 ? 5000 : 30000);
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(0, caps[c], &tx, &rx), 0);
        for (int i = 0; i < 4; i++) {
            m.tx[i] = i == 0 ? tx : ox_sender_clone(tx);
            m.rx[i] = i == 0 ? rx : ox_receiver_clone(rx);
        }
        ox_join_handle h[8];
        for (int i = 0; i < 4; i++)
            h[i] = ox_thread_spawn(zs_producer, &m);
        while (atomic_load(&m.slot) < 4)
            ox_thread_yield();
        for (int i = 4; i < 8; i++)
            h[i] = ox_thread_spawn(zs_consumer, &m);
        for (int i = 0; i < 8; i++)
            CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
        CHECK_EQ(atomic_load(&m.received), atomic_load(&m.sent));
        CHECK(atomic_load(&m.sent) >= 4 * m.budget.min);
    }
}

typedef struct side {
    ox_sender *tx;
    ox_receiver *rx;
} side;

static void *recv_until_disconnected(void *arg)
{
    side *s = arg;
    int rc = ox_receiver_recv(s->rx, NULL);
    return (void *)(intptr_t)rc;
}

static void *send_until_disconnected(void *arg)
{
    side *s = arg;
    int rc;
    while ((rc = ox_sender_send(s->tx, NULL)) == 0)
        ;
    return (void *)(intptr_t)rc;
}

/* A receiver blocked on an empty channel and a sender blocked on a full
 * one wake with OX_EDISCONNECTED when the other side goes. */
OX_TEST(chan_zero_size_disconnect_wakes_blocked)
{
    for (size_t c = 0; c < NCAPS; c++) {
        side s;
        CHECK_EQ(ox_channel(0, caps[c], &s.tx, &s.rx), 0);
        ox_join_handle h = ox_thread_spawn(recv_until_disconnected, &s);
        ox_thread_sleep(OX_MILLIS(10)); /* usually blocked by now; either way it must end */
        ox_sender_drop(s.tx);
        void *rc;
        CHECK_EQ(ox_thread_join(&h, &rc, NULL), 0);
        CHECK_EQ((intptr_t)rc, OX_EDISCONNECTED);
        ox_receiver_drop(s.rx);

        if (caps[c] == OX_UNBOUNDED)
            continue; /* its sends never block */
        CHECK_EQ(ox_channel(0, caps[c], &s.tx, &s.rx), 0);
        h = ox_thread_spawn(send_until_disconnected, &s);
        ox_thread_sleep(OX_MILLIS(10));
        ox_receiver_drop(s.rx);
        CHECK_EQ(ox_thread_join(&h, &rc, NULL), 0);
        CHECK_EQ((intptr_t)rc, OX_EDISCONNECTED);
        ox_sender_drop(s.tx);
    }
}

/* ---- select ---- */

typedef struct zs_feeder {
    ox_sender *tx;   /* sends signals while the budget lasts, then drops tx */
    ox_receiver *rx; /* or receives until disconnected, then drops rx */
    const ox_test_budget *budget;
    long n; /* what it sent or received, for after the join */
} zs_feeder;

static void *zs_feed(void *arg)
{
    zs_feeder *f = arg;
    long i = 0;
    if (f->tx) {
        for (; ox_test_budget_more(f->budget, i); i++)
            if (ox_sender_send(f->tx, NULL) != 0)
                abort();
    } else {
        for (int rc; (rc = ox_receiver_recv(f->rx, NULL)) != OX_EDISCONNECTED; i++)
            if (rc != 0)
                abort();
    }
    f->n = i;
    if (f->tx)
        ox_sender_drop(f->tx);
    else
        ox_receiver_drop(f->rx);
    return NULL;
}

/* One thread selects receives (NULL buffers) over zero-size channels of
 * every flavor fed by four threads, switching each case off (NULL handle)
 * once its channel reports disconnection: every signal arrives once. */
OX_TEST(chan_zero_size_select_receives_every_flavor)
{
    ox_test_budget budget = ox_test_budget_start(200, ox_test_scaled(20000));
    ox_receiver *rx[NCAPS];
    zs_feeder f[NCAPS];
    ox_join_handle h[NCAPS];
    ox_select_op ops[NCAPS];
    for (size_t i = 0; i < NCAPS; i++) {
        ox_sender *tx;
        CHECK_EQ(ox_channel(0, caps[i], &tx, &rx[i]), 0);
        f[i] = (zs_feeder){.tx = tx, .budget = &budget};
        h[i] = ox_thread_spawn(zs_feed, &f[i]);
        ops[i] = OX_SELECT_RECV(rx[i], NULL);
    }
    long got[NCAPS] = {0};
    size_t live = NCAPS;
    while (live > 0) {
        size_t idx;
        int rc = live % 2 ? ox_select(ops, NCAPS, &idx)
                          : ox_select_timeout(ops, NCAPS, ox_test_bound(OX_SECS(60)), &idx);
        CHECK(idx < NCAPS);
        CHECK(ops[idx].rx != NULL); /* a disabled case is never chosen */
        if (rc == OX_EDISCONNECTED) {
            ops[idx].rx = NULL;
            live--;
            continue;
        }
        CHECK_EQ(rc, 0);
        got[idx]++;
    }
    for (size_t i = 0; i < NCAPS; i++) {
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
        CHECK_EQ(got[i], f[i].n);
        ox_receiver_drop(rx[i]);
    }
}

/* Sends through select (NULL buffers) to receiving threads on the bounded
 * flavors and a rendezvous partner. */
OX_TEST(chan_zero_size_select_sends_every_flavor)
{
    const size_t scaps[] = {0, 1, 16, OX_UNBOUNDED};
    ox_test_budget budget = ox_test_budget_start(200, ox_test_scaled(20000));
    ox_sender *tx[4];
    zs_feeder f[4];
    ox_join_handle h[4];
    ox_select_op ops[4];
    for (int i = 0; i < 4; i++) {
        ox_receiver *rx;
        CHECK_EQ(ox_channel(0, scaps[i], &tx[i], &rx), 0);
        f[i] = (zs_feeder){.rx = rx};
        h[i] = ox_thread_spawn(zs_feed, &f[i]);
        ops[i] = OX_SELECT_SEND(tx[i], NULL);
    }
    long sent[4] = {0};
    for (int live = 4; live > 0;) {
        size_t idx;
        CHECK_EQ(ox_select(ops, 4, &idx), 0);
        CHECK(idx < 4 && ops[idx].tx != NULL);
        if (!ox_test_budget_more(&budget, ++sent[idx])) {
            ops[idx] = OX_SELECT_NEVER; /* done with it: switch it off */
            live--;
        }
    }
    size_t idx = 99;
    CHECK_EQ(ox_select_try(ops, 4, &idx), OX_EBUSY); /* all off */
    CHECK_EQ(idx, 99);
    for (int i = 0; i < 4; i++) {
        ox_sender_drop(tx[i]); /* the receiver's end: it has them all */
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
        CHECK_EQ(sent[i], f[i].n);
    }
}

/* A select on an empty zero-size channel times out, and wakes with
 * OX_EDISCONNECTED when the senders go. */
OX_TEST(chan_zero_size_select_timeout_and_disconnect)
{
    for (size_t c = 0; c < NCAPS; c++) {
        side s;
        CHECK_EQ(ox_channel(0, caps[c], &s.tx, &s.rx), 0);
        ox_select_op ops[] = {OX_SELECT_RECV(s.rx, NULL)};
        size_t idx = 7;
        CHECK_EQ(ox_select_try(ops, 1, &idx), OX_EBUSY);
        CHECK_EQ(ox_select_timeout(ops, 1, OX_MILLIS(5), &idx), OX_ETIMEDOUT);
        CHECK_EQ(idx, 7);
        ox_sender_drop(s.tx);
        CHECK_EQ(ox_select(ops, 1, &idx), OX_EDISCONNECTED);
        CHECK_EQ(idx, 0);
        ox_receiver_drop(s.rx);
    }
}

OX_TEST_OPTS(chan_null_buffer_still_aborts_with_bytes, .expect_signal = SIGABRT,
             .expect_stderr = "ox_sender_send: NULL message buffer")
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(1, OX_UNBOUNDED, &tx, &rx), 0);
    (void)!ox_sender_send(tx, NULL);
}

OX_TEST_OPTS(chan_select_null_buffer_still_aborts_with_bytes, .expect_signal = SIGABRT,
             .expect_stderr = "ox_select_try: op 1 has a NULL message buffer")
{
    ox_sender *tx, *tx0;
    ox_receiver *rx, *rx0;
    CHECK_EQ(ox_channel(0, 1, &tx0, &rx0), 0);
    CHECK_EQ(ox_channel(4, 1, &tx, &rx), 0);
    ox_select_op ops[] = {OX_SELECT_RECV(rx0, NULL), OX_SELECT_RECV(rx, NULL)};
    size_t idx;
    (void)!ox_select_try(ops, 2, &idx);
}
