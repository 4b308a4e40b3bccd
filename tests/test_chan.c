/* Channels: flavors, disconnection, timeouts, iteration, destructors,
 * memory, misuse. Select is in test_chan_select.c. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include "chan/chan_internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const size_t flavors[] = {OX_UNBOUNDED, 0, 1, 16};
#define NFLAVORS (sizeof flavors / sizeof flavors[0])

OX_TEST(chan_bad_arguments)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(8, 4, NULL, &rx), OX_EINVAL);
    CHECK_EQ(ox_channel(0, 4, &tx, NULL), OX_EINVAL); /* zero-size messages are fine */
    CHECK_EQ(ox_channel(8, SIZE_MAX / 2, &tx, &rx), OX_EINVAL);
    CHECK_EQ(ox_channel(8, 4, &tx, &rx), 0);
    uint64_t v = 1;
    CHECK_EQ(ox_sender_send_timeout(tx, &v, -1), OX_EINVAL);
    CHECK_EQ(ox_receiver_recv_timeout(rx, &v, -1), OX_EINVAL);
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
}

OX_TEST(chan_basic_every_flavor)
{
    for (size_t f = 0; f < NFLAVORS; f++) {
        size_t cap = flavors[f];
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(int), cap, &tx, &rx), 0);
        CHECK_EQ(ox_receiver_capacity(rx), cap);
        CHECK_EQ(ox_sender_capacity(tx), cap);
        CHECK(ox_receiver_is_empty(rx));
        CHECK(ox_sender_is_empty(tx));
        CHECK_EQ(ox_receiver_is_full(rx), cap == 0); /* rendezvous: always full */
        int v = 5;
        if (cap == 0) {
            CHECK_EQ(ox_sender_try_send(tx, &v), OX_EFULL);
            CHECK(ox_sender_is_full(tx));
        } else {
            size_t n = cap == OX_UNBOUNDED ? 1000 : cap;
            for (size_t i = 0; i < n; i++) {
                v = (int)i;
                CHECK_EQ(ox_sender_try_send(tx, &v), 0);
            }
            CHECK_EQ(ox_sender_len(tx), n);
            CHECK_EQ(ox_receiver_len(rx), n);
            CHECK(!ox_receiver_is_empty(rx));
            CHECK(!ox_sender_is_empty(tx));
            CHECK_EQ(ox_receiver_is_full(rx), cap != OX_UNBOUNDED);
            if (cap != OX_UNBOUNDED) {
                CHECK(ox_sender_is_full(tx));
                CHECK_EQ(ox_sender_try_send(tx, &v), OX_EFULL);
            } else {
                CHECK(!ox_sender_is_full(tx));
            }
            for (size_t i = 0; i < n; i++) {
                CHECK_EQ(ox_receiver_try_recv(rx, &v), 0);
                CHECK_EQ(v, (int)i);
                CHECK_EQ(ox_receiver_len(rx), n - i - 1);
            }
        }
        CHECK_EQ(ox_receiver_try_recv(rx, &v), OX_EEMPTY);
        CHECK(ox_receiver_is_empty(rx));
        CHECK(ox_sender_is_empty(tx));
        ox_sender_drop(tx);
        CHECK_EQ(ox_receiver_try_recv(rx, &v), OX_EDISCONNECTED);
        CHECK_EQ(ox_receiver_recv(rx, &v), OX_EDISCONNECTED);
        ox_receiver_drop(rx);
    }
}

OX_TEST(chan_disconnect_drains_then_reports)
{
    for (size_t f = 0; f < NFLAVORS; f++) {
        if (flavors[f] == 0)
            continue;
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(int), flavors[f], &tx, &rx), 0);
        ox_sender *tx2 = ox_sender_clone(tx);
        int v = 7;
        CHECK_EQ(ox_sender_send(tx, &v), 0);
        ox_sender_drop(tx);
        v = 8;
        if (flavors[f] == 1)
            CHECK_EQ(ox_sender_try_send(tx2, &v), OX_EFULL);
        else
            CHECK_EQ(ox_sender_send(tx2, &v), 0);
        ox_sender_drop(tx2);
        int got = 0;
        CHECK_EQ(ox_receiver_recv(rx, &got), 0);
        CHECK_EQ(got, 7);
        if (flavors[f] != 1) {
            CHECK_EQ(ox_receiver_recv(rx, &got), 0);
            CHECK_EQ(got, 8);
        }
        CHECK_EQ(ox_receiver_recv(rx, &got), OX_EDISCONNECTED);
        CHECK_EQ(ox_receiver_recv_timeout(rx, &got, OX_MILLIS(10)), OX_EDISCONNECTED);
        ox_receiver_drop(rx);
    }
}

OX_TEST(chan_send_after_receivers_gone_hands_value_back)
{
    for (size_t f = 0; f < NFLAVORS; f++) {
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(uint64_t), flavors[f], &tx, &rx), 0);
        ox_receiver *rx2 = ox_receiver_clone(rx);
        ox_receiver_drop(rx);
        ox_receiver_drop(rx2);
        uint64_t v = 0x1234;
        CHECK_EQ(ox_sender_send(tx, &v), OX_EDISCONNECTED);
        CHECK_EQ(ox_sender_try_send(tx, &v), OX_EDISCONNECTED);
        CHECK_EQ(ox_sender_send_timeout(tx, &v, OX_MILLIS(5)), OX_EDISCONNECTED);
        CHECK_EQ(v, 0x1234); /* still the caller's */
        ox_sender_drop(tx);
    }
}

/* ---- 4 producers x 4 consumers: nothing lost, nothing duplicated,
 * per-sender FIFO, for every flavor ---- */

#define PRODUCERS 4
#define CONSUMERS 4

typedef struct mpmc_ctx {
    ox_sender *tx[PRODUCERS];
    ox_receiver *rx[CONSUMERS];
    long per_producer;
    _Atomic uint8_t *seen; /* [producer * per_producer + seq] */
    _Atomic long received;
    _Atomic int order_violations;
    int index;
    ox_test_budget budget; /* per producer: per_producer messages at most */
    long sent[PRODUCERS];  /* each producer's count, read after the join */
} mpmc_ctx;

typedef struct worker_arg {
    mpmc_ctx *ctx;
    int index;
} worker_arg;

static void *producer(void *arg)
{
    worker_arg *w = arg;
    long i = 0;
    for (; ox_test_budget_more(&w->ctx->budget, i); i++) {
        uint64_t msg = ((uint64_t)w->index << 32) | (uint64_t)i;
        if (ox_sender_send(w->ctx->tx[w->index], &msg) != 0)
            abort();
    }
    w->ctx->sent[w->index] = i; /* the join publishes it */
    ox_sender_drop(w->ctx->tx[w->index]);
    return NULL;
}

static void *consumer(void *arg)
{
    worker_arg *w = arg;
    mpmc_ctx *c = w->ctx;
    long last[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++)
        last[p] = -1;
    uint64_t msg;
    OX_CHANNEL_FOR_EACH(c->rx[w->index], &msg)
    {
        int p = (int)(msg >> 32);
        long seq = (long)(msg & 0xffffffffu);
        if (p >= PRODUCERS || seq >= c->per_producer) {
            atomic_fetch_add(&c->order_violations, 1000);
            continue;
        }
        if (seq <= last[p])
            atomic_fetch_add(&c->order_violations, 1);
        last[p] = seq;
        atomic_fetch_add_explicit(&c->seen[(long)p * c->per_producer + seq], 1,
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&c->received, 1, memory_order_relaxed);
    }
    ox_receiver_drop(c->rx[w->index]);
    return NULL;
}

static void run_mpmc(size_t cap, long per_producer)
{
    mpmc_ctx c = {.per_producer = per_producer, .budget = ox_test_budget_start(100, per_producer)};
    c.seen = calloc((size_t)(PRODUCERS * per_producer), 1);
    CHECK(c.seen != NULL);
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(uint64_t), cap, &tx, &rx), 0);
    for (int i = 0; i < PRODUCERS; i++)
        c.tx[i] = i == 0 ? tx : ox_sender_clone(tx);
    for (int i = 0; i < CONSUMERS; i++)
        c.rx[i] = i == 0 ? rx : ox_receiver_clone(rx);
    worker_arg pa[PRODUCERS], ca[CONSUMERS];
    ox_join_handle ph[PRODUCERS], ch[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        ca[i] = (worker_arg){&c, i};
        ch[i] = ox_thread_spawn(consumer, &ca[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pa[i] = (worker_arg){&c, i};
        ph[i] = ox_thread_spawn(producer, &pa[i]);
    }
    for (int i = 0; i < PRODUCERS; i++)
        CHECK_EQ(ox_thread_join(&ph[i], NULL, NULL), 0);
    for (int i = 0; i < CONSUMERS; i++)
        CHECK_EQ(ox_thread_join(&ch[i], NULL, NULL), 0);
    long sent = 0;
    for (int i = 0; i < PRODUCERS; i++)
        sent += c.sent[i];
    CHECK_EQ(atomic_load(&c.received), sent);
    CHECK_EQ(atomic_load(&c.order_violations), 0);
    /* Each message sent seen once, and none that was never sent. */
    for (long i = 0; i < PRODUCERS * per_producer; i++)
        if (atomic_load(&c.seen[i]) != (i % per_producer < c.sent[i / per_producer]))
            ox_test_fail(__FILE__, __LINE__, "message %ld seen %d times", i,
                         (int)atomic_load(&c.seen[i]));
    free(c.seen);
}

OX_TEST(chan_mpmc_unbounded_no_loss_fifo)
{
    run_mpmc(OX_UNBOUNDED, ox_test_scaled(100000));
}

OX_TEST(chan_mpmc_bounded0_no_loss_fifo)
{
    run_mpmc(0, ox_test_scaled(10000));
}

OX_TEST(chan_mpmc_bounded1_no_loss_fifo)
{
    run_mpmc(1, ox_test_scaled(20000));
}

OX_TEST(chan_mpmc_bounded16_no_loss_fifo)
{
    run_mpmc(16, ox_test_scaled(100000));
}

/* ---- disconnection racing blocked threads ---- */

static void *recv_expect_disconnect(void *arg)
{
    ox_receiver *rx = arg;
    uint64_t v;
    int rc = ox_receiver_recv(rx, &v);
    ox_receiver_drop(rx);
    return (void *)(intptr_t)rc;
}

static void *send_expect_disconnect(void *arg)
{
    ox_sender *tx = arg;
    uint64_t v = 99;
    int rc;
    /* Keep sending until the receivers' drop stops us: for bounded
     * channels the first sends fill the ring, then one blocks. */
    while ((rc = ox_sender_send(tx, &v)) == 0)
        ;
    ox_sender_drop(tx);
    return (void *)(intptr_t)rc;
}

OX_TEST(chan_disconnect_wakes_blocked_receivers)
{
    long rounds = ox_test_scaled(200);
    for (long r = 0; r < rounds; r++) {
        size_t cap = flavors[r % NFLAVORS];
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(uint64_t), cap, &tx, &rx), 0);
        ox_join_handle h[3];
        for (int i = 0; i < 3; i++)
            h[i] = ox_thread_spawn(recv_expect_disconnect, ox_receiver_clone(rx));
        if (r % 2)
            ox_thread_sleep(OX_MICROS(r % 7 * 50)); /* sometimes they are asleep */
        ox_sender_drop(tx);
        for (int i = 0; i < 3; i++) {
            void *res;
            CHECK_EQ(ox_thread_join(&h[i], &res, NULL), 0);
            CHECK_EQ((intptr_t)res, OX_EDISCONNECTED);
        }
        ox_receiver_drop(rx);
    }
}

OX_TEST(chan_disconnect_wakes_blocked_senders)
{
    long rounds = ox_test_scaled(200);
    for (long r = 0; r < rounds; r++) {
        size_t cap = (r % 3 == 0) ? 0 : (r % 3 == 1 ? 1 : 4);
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(uint64_t), cap, &tx, &rx), 0);
        ox_join_handle h[3];
        for (int i = 0; i < 3; i++)
            h[i] = ox_thread_spawn(send_expect_disconnect, ox_sender_clone(tx));
        ox_sender_drop(tx);
        /* Take a few, then leave. */
        uint64_t v;
        for (int i = 0; i < (int)(r % 5); i++) {
            CHECK_EQ(ox_receiver_recv(rx, &v), 0);
            CHECK_EQ(v, 99);
        }
        if (r % 2)
            ox_thread_sleep(OX_MICROS(r % 7 * 50));
        ox_receiver_drop(rx);
        for (int i = 0; i < 3; i++) {
            void *res;
            CHECK_EQ(ox_thread_join(&h[i], &res, NULL), 0);
            CHECK_EQ((intptr_t)res, OX_EDISCONNECTED);
        }
    }
}

/* ---- timeouts ---- */

static void check_elapsed(ox_instant start, ox_nanos want)
{
    ox_nanos took = ox_instant_diff(ox_instant_now(), start);
    if (took < want)
        ox_test_fail(__FILE__, __LINE__, "woke early: %lld < %lld ns", (long long)took,
                     (long long)want);
    /* "Wildly late" only: a loaded machine (or a sanitizer) can delay the
     * wake-up by a scheduler slice or several. */
    if (took > want + ox_test_bound(OX_SECS(1)))
        ox_test_fail(__FILE__, __LINE__, "woke late: %lld ns for %lld", (long long)took,
                     (long long)want);
}

OX_TEST(chan_timeouts_neither_early_nor_late)
{
    for (size_t f = 0; f < NFLAVORS; f++) {
        size_t cap = flavors[f];
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(uint64_t), cap, &tx, &rx), 0);
        uint64_t v = 1;
        ox_instant t0 = ox_instant_now();
        CHECK_EQ(ox_receiver_recv_timeout(rx, &v, OX_MILLIS(30)), OX_ETIMEDOUT);
        check_elapsed(t0, OX_MILLIS(30));
        t0 = ox_instant_now();
        CHECK_EQ(ox_receiver_recv_deadline(rx, &v, ox_instant_after(OX_MILLIS(20))), OX_ETIMEDOUT);
        check_elapsed(t0, OX_MILLIS(20));
        /* A deadline in the past returns at once. */
        t0 = ox_instant_now();
        CHECK_EQ(ox_receiver_recv_deadline(rx, &v, (ox_instant){0}), OX_ETIMEDOUT);
        CHECK_EQ(ox_receiver_recv_timeout(rx, &v, 0), OX_ETIMEDOUT);
        CHECK(ox_instant_diff(ox_instant_now(), t0) <
              ox_test_bound(OX_MILLIS(500))); /* did not block */
        if (cap != OX_UNBOUNDED) {
            for (size_t i = 0; i < cap; i++)
                CHECK_EQ(ox_sender_send(tx, &v), 0);
            t0 = ox_instant_now();
            CHECK_EQ(ox_sender_send_timeout(tx, &v, OX_MILLIS(30)), OX_ETIMEDOUT);
            check_elapsed(t0, OX_MILLIS(30));
            CHECK_EQ(ox_sender_send_deadline(tx, &v, (ox_instant){0}), OX_ETIMEDOUT);
            CHECK_EQ(ox_receiver_len(rx), cap);
        } else {
            CHECK_EQ(ox_sender_send_timeout(tx, &v, 0), 0);
        }
        ox_sender_drop(tx);
        ox_receiver_drop(rx);
    }
}

typedef struct late_send {
    ox_sender *tx;
    ox_thread *receiver;
} late_send;

static void *send_after_delay(void *arg)
{
    late_send *l = arg;
    ox_test_wait_thread_blocked(l->receiver, NULL); /* in its timed receive */
    uint64_t v = 77;
    int rc = ox_sender_send(l->tx, &v);
    ox_sender_drop(l->tx);
    return (void *)(intptr_t)rc;
}

OX_TEST(chan_recv_timeout_gets_late_message)
{
    for (size_t f = 0; f < NFLAVORS; f++) {
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(uint64_t), flavors[f], &tx, &rx), 0);
        late_send l = {tx, ox_thread_current()};
        ox_join_handle h = ox_thread_spawn(send_after_delay, &l);
        uint64_t v = 0;
        CHECK_EQ(ox_receiver_recv_timeout(rx, &v, ox_test_bound(OX_SECS(5))), 0);
        CHECK_EQ(v, 77);
        void *res;
        CHECK_EQ(ox_thread_join(&h, &res, NULL), 0);
        CHECK_EQ((intptr_t)res, 0);
        ox_receiver_drop(rx);
    }
}

/* ---- rendezvous ---- */

typedef struct rendezvous {
    ox_sender *tx;
    _Atomic int sent;
} rendezvous;

static void *rendezvous_sender(void *arg)
{
    rendezvous *r = arg;
    uint64_t v = 5;
    int rc = ox_sender_send(r->tx, &v);
    atomic_store(&r->sent, 1);
    return (void *)(intptr_t)rc;
}

OX_TEST(chan_rendezvous_send_waits_for_receiver)
{
    rendezvous r = {0};
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(uint64_t), 0, &r.tx, &rx), 0);
    ox_join_handle h = ox_thread_spawn(rendezvous_sender, &r);
    /* Until the sender blocks in its send, or (wrongly) returns from it. */
    ox_test_wait_thread_blocked(ox_join_handle_thread(&h), &r.sent);
    CHECK_EQ(atomic_load(&r.sent), 0); /* nobody took it yet */
    CHECK_EQ(ox_receiver_len(rx), 0);
    uint64_t v = 0;
    CHECK_EQ(ox_receiver_recv(rx, &v), 0);
    CHECK_EQ(v, 5);
    void *res;
    CHECK_EQ(ox_thread_join(&h, &res, NULL), 0);
    CHECK_EQ((intptr_t)res, 0);
    CHECK_EQ(atomic_load(&r.sent), 1);
    /* A receiver waiting: try_send succeeds only then. */
    CHECK_EQ(ox_sender_try_send(r.tx, &v), OX_EFULL);
    ox_sender_drop(r.tx);
    ox_receiver_drop(rx);
}

/* ---- iteration ---- */

OX_TEST(chan_try_iter_takes_what_is_ready)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(int), OX_UNBOUNDED, &tx, &rx), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(ox_sender_send(tx, &i), 0);
    int v, n = 0;
    OX_CHANNEL_TRY_FOR_EACH(rx, &v)
    {
        CHECK_EQ(v, n);
        n++;
    }
    CHECK_EQ(n, 10);
    OX_CHANNEL_TRY_FOR_EACH(rx, &v)
    n++;
    CHECK_EQ(n, 10); /* empty: stops at once, sender still alive */
    v = 10;
    CHECK_EQ(ox_sender_send(tx, &v), 0);
    ox_sender_drop(tx);
    OX_CHANNEL_FOR_EACH(rx, &v)
    {
        CHECK_EQ(v, 10);
        n++;
    }
    CHECK_EQ(n, 11);
    ox_receiver_drop(rx);
}

/* ---- destructors ---- */

static _Atomic int destroyed;
static _Atomic long destroyed_sum;

static void count_destroy(void *elem)
{
    uint64_t v;
    memcpy(&v, elem, sizeof v);
    atomic_fetch_add(&destroyed, 1);
    atomic_fetch_add(&destroyed_sum, (long)v);
}

OX_TEST(chan_destructor_runs_for_each_unread_message)
{
    size_t caps[] = {OX_UNBOUNDED, 50};
    for (int k = 0; k < 2; k++) {
        atomic_store(&destroyed, 0);
        atomic_store(&destroyed_sum, 0);
        ox_channel_options o = {sizeof(uint64_t), caps[k], count_destroy};
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel_with(&o, &tx, &rx), 0);
        long total = k == 0 ? 200 : 50, read = k == 0 ? 70 : 30;
        /* bounded: wrap the ring first so the unread span crosses the end */
        if (k == 1)
            for (uint64_t i = 0; i < 37; i++) {
                uint64_t x;
                CHECK_EQ(ox_sender_send(tx, &i), 0);
                CHECK_EQ(ox_receiver_recv(rx, &x), 0);
            }
        long expect_sum = 0;
        for (long i = 0; i < total; i++) {
            uint64_t v = (uint64_t)i;
            CHECK_EQ(ox_sender_send(tx, &v), 0);
            if (i >= read)
                expect_sum += i;
        }
        for (long i = 0; i < read; i++) {
            uint64_t v;
            CHECK_EQ(ox_receiver_recv(rx, &v), 0);
            CHECK_EQ(v, i);
        }
        CHECK_EQ(atomic_load(&destroyed), 0);
        /* Nobody can receive them any more: destroyed now, while a sender
         * still holds the channel (as Rust std does). */
        ox_receiver_drop(rx);
        CHECK_EQ(atomic_load(&destroyed), total - read);
        CHECK_EQ(atomic_load(&destroyed_sum), expect_sum);
        uint64_t late = 12345;
        CHECK_EQ(ox_sender_send(tx, &late), OX_EDISCONNECTED); /* handed back, not destroyed */
        CHECK_EQ(ox_sender_len(tx), 0);
        ox_sender_drop(tx);
        CHECK_EQ(atomic_load(&destroyed), total - read);
    }
}

/* Issue 17 #5: an element destructor that panics in the last receiver's
 * drop. The drop finishes on the unwind path: every other message is
 * destroyed, the receivers' side is finished (so the senders' last drop
 * frees the channel and, unbounded, its blocks), then the panic goes on to
 * the catch point. */
static _Atomic long panic_at = -1;

static void destroy_or_panic(void *elem)
{
    uint64_t v;
    memcpy(&v, elem, sizeof v);
    count_destroy(elem);
    if ((long)v == atomic_load(&panic_at))
        ox_panic("element %llu refuses to be destroyed", (unsigned long long)v);
}

static void *drop_receiver(void *rx)
{
    ox_receiver_drop(rx);
    return NULL;
}

OX_TEST(chan_panicking_element_destructor_still_frees_the_channel)
{
    size_t caps[] = {8, OX_UNBOUNDED};
    long totals[] = {8, 200}, panics_at[] = {2, 150}; /* unbounded: past the first block */
    for (int k = 0; k < 2; k++) {
        long blocks_before = ox__list_blocks_live();
        atomic_store(&destroyed, 0);
        atomic_store(&destroyed_sum, 0);
        atomic_store(&panic_at, panics_at[k]);
        ox_channel_options o = {sizeof(uint64_t), caps[k], destroy_or_panic};
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel_with(&o, &tx, &rx), 0);
        long expect_sum = 0;
        for (long i = 0; i < totals[k]; i++) {
            uint64_t v = (uint64_t)i;
            CHECK_EQ(ox_sender_send(tx, &v), 0);
            expect_sum += i;
        }
        ox_panic_payload *payload = NULL;
        CHECK_EQ(ox_catch_unwind(drop_receiver, rx, NULL, &payload), OX_EPANICKED);
        CHECK(strstr(payload->message, "refuses to be destroyed") != NULL);
        ox_panic_payload_free(payload);
        /* Every message went through its destructor once, the panicking one
         * included. */
        CHECK_EQ(atomic_load(&destroyed), totals[k]);
        CHECK_EQ(atomic_load(&destroyed_sum), expect_sum);
        uint64_t late = 1;
        CHECK_EQ(ox_sender_send(tx, &late), OX_EDISCONNECTED);
        ox_sender_drop(tx); /* frees the channel: LeakSanitizer checks it */
        CHECK_EQ(ox__list_blocks_live(), blocks_before);
    }
}

/* Senders keep sending while the last receiver goes: every message a send
 * accepted is either received or destroyed, exactly once; a send that
 * failed kept its value (not destroyed). */
typedef struct discard_arg {
    ox_sender *tx;
    uint64_t base;
    long accepted;
    uint64_t accepted_sum; /* wraps: compared modulo 2^64 */
} discard_arg;

static void *discard_sender(void *arg)
{
    discard_arg *d = arg;
    for (uint64_t i = 0;; i++) {
        uint64_t v = d->base + i;
        int rc = ox_sender_send_timeout(d->tx, &v, OX_MILLIS(1));
        if (rc == OX_EDISCONNECTED)
            break;
        if (rc == 0) {
            d->accepted++;
            d->accepted_sum += v;
        } else if (rc != OX_ETIMEDOUT)
            abort();
    }
    ox_sender_drop(d->tx);
    return NULL;
}

OX_TEST(chan_last_receiver_drop_races_with_senders)
{
    size_t caps[] = {OX_UNBOUNDED, 64, 1, 0};
    ox_test_budget budget = ox_test_budget_start(4, ox_test_scaled(40));
    for (int round = 0; ox_test_budget_more(&budget, round); round++) {
        size_t cap = caps[round % 4];
        atomic_store(&destroyed, 0);
        atomic_store(&destroyed_sum, 0);
        ox_channel_options o = {sizeof(uint64_t), cap, count_destroy};
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel_with(&o, &tx, &rx), 0);
        discard_arg d[3];
        ox_join_handle h[3];
        for (int i = 0; i < 3; i++) {
            d[i] = (discard_arg){ox_sender_clone(tx), (uint64_t)i << 32, 0, 0};
            h[i] = ox_thread_spawn(discard_sender, &d[i]);
        }
        ox_sender_drop(tx);
        long received = 0, want = 200 + round * 37;
        uint64_t v, received_sum = 0;
        while (received < want && ox_receiver_recv(rx, &v) == 0) {
            received++;
            received_sum += v;
        }
        ox_receiver_drop(rx);
        long accepted = 0;
        uint64_t accepted_sum = 0;
        for (int i = 0; i < 3; i++) {
            (void)!ox_thread_join(&h[i], NULL, NULL);
            accepted += d[i].accepted;
            accepted_sum += d[i].accepted_sum;
        }
        CHECK_EQ(received, want);
        CHECK_EQ(received + atomic_load(&destroyed), accepted);
        CHECK_EQ(received_sum + (uint64_t)atomic_load(&destroyed_sum), accepted_sum);
    }
}

OX_TEST(chan_unbounded_memory_returns_when_receivers_go)
{
    long base = ox__list_blocks_live();
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(uint64_t), OX_UNBOUNDED, &tx, &rx), 0);
    for (uint64_t i = 0; i < 100000; i++)
        CHECK_EQ(ox_sender_send(tx, &i), 0);
    CHECK(ox__list_blocks_live() - base > 1000);
    ox_receiver_drop(rx);
    /* The sender lives on; at most the spare block stays. */
    CHECK(ox__list_blocks_live() - base <= 1);
    uint64_t v = 1;
    CHECK_EQ(ox_sender_send(tx, &v), OX_EDISCONNECTED);
    ox_sender_drop(tx);
    CHECK_EQ(ox__list_blocks_live(), base);
}

/* ---- memory ---- */

OX_TEST(chan_idle_channel_is_small)
{
    CHECK(sizeof(ox__chan) <= 256);
}

OX_TEST(chan_unbounded_memory_returns_when_drained)
{
    long base = ox__list_blocks_live();
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(uint64_t), OX_UNBOUNDED, &tx, &rx), 0);
    CHECK_EQ(ox__list_blocks_live(), base); /* nothing until the first send */
    long n = 1000000;
    for (long i = 0; i < n; i++) {
        uint64_t v = (uint64_t)i;
        CHECK_EQ(ox_sender_send(tx, &v), 0);
    }
    long blocks = ox__list_blocks_live() - base;
    size_t bytes = (size_t)blocks * ox__list_block_bytes(sizeof(uint64_t));
    if (bytes > 12u * 1000 * 1000)
        ox_test_fail(__FILE__, __LINE__, "1M messages take %zu bytes", bytes);
    for (long i = 0; i < n; i++) {
        uint64_t v;
        CHECK_EQ(ox_receiver_recv(rx, &v), 0);
        CHECK_EQ(v, i);
    }
    /* The current block and one spare remain. */
    CHECK(ox__list_blocks_live() - base <= 2);
    /* Going back and forth across block boundaries allocates nothing. */
    for (long i = 0; i < 10000; i++) {
        uint64_t v = (uint64_t)i;
        CHECK_EQ(ox_sender_send(tx, &v), 0);
        CHECK_EQ(ox_receiver_recv(rx, &v), 0);
    }
    CHECK(ox__list_blocks_live() - base <= 2);
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
    CHECK_EQ(ox__list_blocks_live(), base);
}

/* Many receivers at once: a block's last reader may finish before another
 * reader of that block is done (the block then waits on the channel's
 * pending list); once a receive finds the channel empty, everything but the
 * current block and the spare is back with the allocator. */
typedef struct drain_arg {
    ox_sender *tx;
    ox_receiver *rx;
    long count;
    _Atomic long *received;
} drain_arg;

static void *drain_producer(void *arg)
{
    drain_arg *d = arg;
    for (long i = 0; i < d->count; i++) {
        uint64_t v = (uint64_t)i;
        if (ox_sender_send(d->tx, &v) != 0)
            abort();
    }
    ox_sender_drop(d->tx);
    return NULL;
}

static void *drain_consumer(void *arg)
{
    drain_arg *d = arg;
    uint64_t v;
    long n = 0;
    OX_CHANNEL_FOR_EACH(d->rx, &v)
    n++;
    atomic_fetch_add(d->received, n);
    ox_receiver_drop(d->rx);
    return NULL;
}

OX_TEST(chan_unbounded_memory_returns_after_concurrent_drain)
{
    long base = ox__list_blocks_live();
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(uint64_t), OX_UNBOUNDED, &tx, &rx), 0);
    long per = ox_test_scaled(100000);
    _Atomic long received = 0;
    drain_arg pa[4], ca[4];
    ox_join_handle ph[4], chs[4];
    for (int i = 0; i < 4; i++) {
        ca[i] = (drain_arg){NULL, ox_receiver_clone(rx), 0, &received};
        chs[i] = ox_thread_spawn(drain_consumer, &ca[i]);
    }
    for (int i = 0; i < 4; i++) {
        pa[i] = (drain_arg){ox_sender_clone(tx), NULL, per, &received};
        ph[i] = ox_thread_spawn(drain_producer, &pa[i]);
    }
    ox_sender_drop(tx);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_thread_join(&ph[i], NULL, NULL), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_thread_join(&chs[i], NULL, NULL), 0);
    CHECK_EQ(atomic_load(&received), 4 * per);
    uint64_t v;
    CHECK_EQ(ox_receiver_try_recv(rx, &v), OX_EDISCONNECTED);
    long left = ox__list_blocks_live() - base;
    if (left > 2)
        ox_test_fail(__FILE__, __LINE__, "%ld blocks still allocated after draining", left);
    ox_receiver_drop(rx);
    CHECK_EQ(ox__list_blocks_live(), base);
}

/* ---- misuse ---- */

OX_TEST_OPTS(chan_use_after_drop_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_sender_send: sender")
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(int), 4, &tx, &rx), 0);
    ox_sender *tx2 = ox_sender_clone(tx);
    ox_sender_drop(tx2);
    int v = 1;
    (void)!ox_sender_send(tx2, &v); /* the channel lives on: detected */
}

OX_TEST_OPTS(chan_double_drop_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "was already dropped")
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(int), OX_UNBOUNDED, &tx, &rx), 0);
    ox_receiver_drop(rx);
    ox_receiver_drop(rx);
}

OX_TEST_OPTS(chan_null_buffer_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_receiver_recv: NULL message buffer")
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(int), 0, &tx, &rx), 0);
    (void)!ox_receiver_recv(rx, NULL);
}

OX_TEST_OPTS(chan_null_handle_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_sender_try_send: NULL sender")
{
    int v = 0;
    (void)!ox_sender_try_send(NULL, &v);
}

/* A ring's slot is the stamp plus the message rounded to 8 bytes: 16 or 32
 * bytes (a power of two, found by a shift) for the sizes above, 24, 48 or
 * 112 here (found by a multiply). Every byte of every message, over several
 * laps of a 3-slot ring, and through a second thread. */
typedef struct odd_sizes {
    ox_sender *tx;
    size_t size;
} odd_sizes;

static void fill_message(unsigned char *buf, size_t size, unsigned seq)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = (unsigned char)(seq * 31u + i);
}

static void *send_odd_messages(void *arg)
{
    odd_sizes *o = arg;
    unsigned char buf[100];
    for (unsigned seq = 0; seq < 1000; seq++) {
        fill_message(buf, o->size, seq);
        CHECK_EQ(ox_sender_send(o->tx, buf), 0);
    }
    return NULL;
}

OX_TEST(chan_bounded_ring_keeps_messages_of_every_slot_size_whole)
{
    static const size_t sizes[] = {1, 12, 16, 40, 100};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizes[k], 3, &tx, &rx), 0);
        unsigned char want[100], got[100];
        for (unsigned seq = 0; seq < 10; seq++) { /* one at a time: laps */
            fill_message(want, sizes[k], seq);
            CHECK_EQ(ox_sender_send(tx, want), 0);
            CHECK_EQ(ox_receiver_recv(rx, got), 0);
            CHECK(memcmp(want, got, sizes[k]) == 0);
        }
        odd_sizes o = {tx, sizes[k]};
        ox_join_handle h = ox_thread_spawn(send_odd_messages, &o);
        for (unsigned seq = 0; seq < 1000; seq++) {
            fill_message(want, sizes[k], seq);
            CHECK_EQ(ox_receiver_recv(rx, got), 0);
            CHECK(memcmp(want, got, sizes[k]) == 0);
        }
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        ox_sender_drop(tx);
        ox_receiver_drop(rx);
    }
}

/* ---- typed convenience (issue 10, section 4) ---- */

struct point {
    long x, y, z;
};

static void *send_points(void *arg)
{
    ox_sender *tx = arg;
    for (long i = 0; i < 100; i++) {
        struct point p = {i, -i, i * i};
        CHECK_EQ(OX_SEND(tx, &p), 0);
    }
    ox_sender_drop(tx);
    return NULL;
}

OX_TEST(chan_typed_round_trip_every_flavor)
{
    for (size_t f = 0; f < NFLAVORS; f++) {
        ox_sender *tx;
        ox_receiver *rx;
        CHECK_EQ(OX_CHANNEL_OF(struct point, flavors[f], &tx, &rx), 0);
        CHECK_EQ(ox_sender_elem_size(tx), sizeof(struct point));
        CHECK_EQ(ox_receiver_elem_size(rx), sizeof(struct point));
        struct point p;
        CHECK_EQ(OX_TRY_RECV(rx, &p), OX_EEMPTY);
        CHECK_EQ(OX_RECV_TIMEOUT(rx, &p, OX_MILLIS(1)), OX_ETIMEDOUT);
        CHECK_EQ(OX_RECV_DEADLINE(rx, &p, ox_instant_now()), OX_ETIMEDOUT);
        if (flavors[f] == 1) {
            p = (struct point){7, 8, 9};
            CHECK_EQ(OX_TRY_SEND(tx, &p), 0);
            CHECK_EQ(OX_SEND_TIMEOUT(tx, &p, OX_MILLIS(1)), OX_ETIMEDOUT); /* full */
            CHECK_EQ(OX_SEND_DEADLINE(tx, &p, ox_instant_now()), OX_ETIMEDOUT);
            struct point q = {0, 0, 0};
            CHECK_EQ(OX_RECV(rx, &q), 0);
            CHECK(q.x == 7 && q.y == 8 && q.z == 9);
        }
        /* Whole values through every flavor (a thread, for rendezvous). */
        ox_join_handle h = ox_thread_spawn(send_points, tx);
        long n = 0;
        OX_CHANNEL_FOR_EACH_OF(rx, &p)
        {
            CHECK(p.x == n && p.y == -n && p.z == n * n);
            n++;
        }
        CHECK_EQ(n, 100);
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        ox_receiver_drop(rx);
    }
}

/* The example: a long sent on a channel of bytes went through as
 * its low byte (1000 arrived as 232). Now the call aborts, saying why. */
OX_TEST_OPTS(chan_typed_send_size_mismatch_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_sender_send_sized: a 8-byte message for sender")
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(OX_CHANNEL_OF(uint8_t, OX_UNBOUNDED, &tx, &rx), 0);
    int64_t v = 1000;
    (void)!OX_SEND(tx, &v);
}

OX_TEST_OPTS(chan_typed_recv_size_mismatch_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "of a channel of 8-byte elements")
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(OX_CHANNEL_OF(int64_t, 4, &tx, &rx), 0);
    int64_t v = 1000;
    CHECK_EQ(OX_SEND(tx, &v), 0);
    uint8_t small;
    (void)!OX_TRY_RECV(rx, &small); /* checked before anything is taken */
}

OX_TEST_OPTS(chan_typed_timeout_size_mismatch_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_receiver_recv_timeout_sized: a 4-byte message for receiver")
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(OX_CHANNEL_OF(int64_t, 0, &tx, &rx), 0);
    int32_t small;
    (void)!OX_RECV_TIMEOUT(rx, &small, OX_MILLIS(1));
}
