/* broadcast: every receiver gets every message in order, or is told
 * exactly how many it missed (received + missed == sent, per receiver,
 * under concurrent senders); disconnection both ways; the element clone
 * and destructor run so that nothing leaks or is freed twice. */
#include "helpers.h"
#include "oxide.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

OX_TEST(broadcast_every_receiver_gets_every_message)
{
    ox_broadcast_sender *tx;
    ox_broadcast_receiver *a, *b;
    CHECK_EQ(ox_broadcast(sizeof(int), 8, &tx, &a), 0);
    b = ox_broadcast_subscribe(tx);
    CHECK_EQ(ox_broadcast_receiver_count(tx), 2);
    int v = -1;
    CHECK_EQ(ox_broadcast_try_recv(a, &v, NULL), OX_EEMPTY);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(ox_broadcast_send(tx, &i), 0);
    ox_broadcast_receiver *late = ox_broadcast_resubscribe(a); /* sees only later ones */
    CHECK_EQ(ox_broadcast_len(a), 5);
    CHECK_EQ(ox_broadcast_len(late), 0);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(ox_broadcast_recv(a, &v, NULL), 0);
        CHECK_EQ(v, i);
        CHECK_EQ(ox_broadcast_try_recv(b, &v, NULL), 0);
        CHECK_EQ(v, i);
    }
    CHECK_EQ(ox_broadcast_recv_timeout(a, &v, NULL, OX_MILLIS(1)), OX_ETIMEDOUT);
    CHECK_EQ(ox_broadcast_recv_timeout(a, &v, NULL, -1), OX_EINVAL);
    int x = 42;
    CHECK_EQ(ox_broadcast_send(tx, &x), 0);
    CHECK_EQ(ox_broadcast_recv(late, &v, NULL), 0);
    CHECK_EQ(v, 42);
    ox_broadcast_receiver_drop(a);
    ox_broadcast_receiver_drop(b);
    ox_broadcast_receiver_drop(late);
    CHECK_EQ(ox_broadcast_send(tx, &x), OX_EDISCONNECTED);
    ox_broadcast_sender_drop(tx);
    CHECK_EQ(ox_broadcast(0, 8, &tx, &a), OX_EINVAL);
    CHECK_EQ(ox_broadcast(4, 0, &tx, &a), OX_EINVAL);
    CHECK_EQ(ox_broadcast(4, SIZE_MAX, &tx, &a), OX_EINVAL);
}

OX_TEST(broadcast_lagging_receiver_learns_how_many_it_missed)
{
    ox_broadcast_sender *tx;
    ox_broadcast_receiver *rx;
    CHECK_EQ(ox_broadcast(sizeof(int), 4, &tx, &rx), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(ox_broadcast_send(tx, &i), 0);
    CHECK_EQ(ox_broadcast_len(rx), 4);
    uint64_t missed = 0;
    int v = -1;
    CHECK_EQ(ox_broadcast_recv(rx, &v, &missed), OX_ELAGGED);
    CHECK_EQ(missed, 6);
    CHECK_EQ(v, -1);
    for (int i = 6; i < 10; i++) {
        CHECK_EQ(ox_broadcast_recv(rx, &v, &missed), 0);
        CHECK_EQ(v, i);
    }
    CHECK_EQ(ox_broadcast_try_recv(rx, &v, &missed), OX_EEMPTY);
    CHECK_STR(ox_strerror(OX_ELAGGED), "lagged: the receiver fell behind and missed messages");
    ox_broadcast_sender_drop(tx);
    CHECK_EQ(ox_broadcast_recv(rx, &v, &missed), OX_EDISCONNECTED);
    ox_broadcast_receiver_drop(rx);
}

/* The last sender's drop: receivers drain, then OX_EDISCONNECTED; a
 * blocked receiver is woken by it. */
static void *blocked_receiver(void *arg)
{
    int v;
    CHECK_EQ(ox_broadcast_recv(arg, &v, NULL), 0);
    CHECK_EQ(v, 7);
    CHECK_EQ(ox_broadcast_recv(arg, &v, NULL), OX_EDISCONNECTED);
    return NULL;
}

OX_TEST(broadcast_sender_drop_wakes_and_disconnects_after_drain)
{
    ox_broadcast_sender *tx;
    ox_broadcast_receiver *rx;
    CHECK_EQ(ox_broadcast(sizeof(int), 2, &tx, &rx), 0);
    ox_broadcast_sender *tx2 = ox_broadcast_sender_clone(tx);
    ox_join_handle h = ox_thread_spawn(blocked_receiver, rx);
    int seven = 7;
    CHECK_EQ(ox_broadcast_send(tx2, &seven), 0);
    ox_broadcast_sender_drop(tx2);
    ox_broadcast_sender_drop(tx); /* the receiver may be blocked by now */
    ox_test_join(&h);
    ox_broadcast_receiver_drop(rx);
}

OX_TEST_OPTS(broadcast_dropped_receiver_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_broadcast_try_recv: broadcast receiver")
{
    ox_broadcast_sender *tx;
    ox_broadcast_receiver *rx;
    CHECK_EQ(ox_broadcast(sizeof(int), 2, &tx, &rx), 0);
    ox_broadcast_receiver *rx2 = ox_broadcast_subscribe(tx);
    ox_broadcast_receiver_drop(rx2);
    int v;
    (void)!ox_broadcast_try_recv(rx2, &v, NULL); /* the channel lives: detected */
}

/* ---- owned elements: each message is a malloc'd counter ---- */

static _Atomic long live; /* element instances alive */

static void *make_elem(long value)
{
    long *p = malloc(sizeof *p);
    CHECK(p != NULL);
    *p = value;
    atomic_fetch_add(&live, 1);
    return p;
}

static void clone_elem(void *dst, const void *src)
{
    *(void **)dst = make_elem(**(long *const *)src);
}

static void destroy_elem(void *elem)
{
    free(*(void **)elem);
    atomic_fetch_sub(&live, 1);
}

OX_TEST(broadcast_clones_and_destroys_owned_messages)
{
    ox_broadcast_options o = {
        .elem_size = sizeof(void *), .capacity = 3, .clone = clone_elem, .destroy = destroy_elem};
    ox_broadcast_sender *tx;
    ox_broadcast_receiver *reader, *lagger, *leaver;
    CHECK_EQ(ox_broadcast_with(&o, &tx, &reader), 0);
    lagger = ox_broadcast_subscribe(tx);
    leaver = ox_broadcast_subscribe(tx);
    for (long i = 0; i < 5; i++) {
        void *e = make_elem(i);
        CHECK_EQ(ox_broadcast_send(tx, &e), 0); /* the channel owns e now */
        void *got;
        CHECK_EQ(ox_broadcast_recv(reader, &got, NULL), 0); /* a clone: others still to read */
        CHECK_EQ(*(long *)got, i);
        destroy_elem(&got);
    }
    /* 5 sent, capacity 3: 2 overwritten unread (destroyed), 3 kept. */
    CHECK_EQ(atomic_load(&live), 3);
    ox_broadcast_receiver_drop(leaver); /* the lagger still has to read them */
    CHECK_EQ(atomic_load(&live), 3);
    uint64_t missed;
    void *got;
    CHECK_EQ(ox_broadcast_recv(lagger, &got, &missed), OX_ELAGGED);
    CHECK_EQ(missed, 2);
    CHECK_EQ(ox_broadcast_recv(lagger, &got, NULL), 0); /* the last reader: taken, not cloned */
    CHECK_EQ(*(long *)got, 2);
    CHECK_EQ(atomic_load(&live), 3);
    destroy_elem(&got);
    /* The failed send leaves the value with the caller. */
    ox_broadcast_receiver_drop(reader);
    ox_broadcast_receiver_drop(lagger); /* its two unread ones go */
    CHECK_EQ(atomic_load(&live), 0);
    void *e = make_elem(99);
    CHECK_EQ(ox_broadcast_send(tx, &e), OX_EDISCONNECTED);
    destroy_elem(&e);
    ox_broadcast_sender_drop(tx);
    CHECK_EQ(atomic_load(&live), 0);
}

OX_TEST(broadcast_freed_channel_destroys_what_is_left)
{
    ox_broadcast_options o = {
        .elem_size = sizeof(void *), .capacity = 4, .clone = clone_elem, .destroy = destroy_elem};
    ox_broadcast_sender *tx;
    ox_broadcast_receiver *rx;
    CHECK_EQ(ox_broadcast_with(&o, &tx, &rx), 0);
    for (long i = 0; i < 3; i++) {
        void *e = make_elem(i);
        CHECK_EQ(ox_broadcast_send(tx, &e), 0);
    }
    ox_broadcast_sender_drop(tx);
    CHECK_EQ(atomic_load(&live), 3);
    ox_broadcast_receiver_drop(rx);
    CHECK_EQ(atomic_load(&live), 0);
}

/* ---- concurrent senders and receivers ---- */

#define SENDERS   2
#define RECEIVERS 3

typedef struct {
    uint32_t sender;
    uint32_t seq;
} stamp;

static struct {
    ox_broadcast_sender *tx[SENDERS];
    ox_broadcast_receiver *rx[RECEIVERS];
    long per_sender;
    bool slow; /* receivers dawdle: lag must happen and be counted */
} bc;

typedef struct {
    long received, missed, lagged_calls, order_errors;
    uint64_t hash; /* of the sequence received */
} rx_result;

static void *bc_sender(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    for (long i = 0; i < bc.per_sender; i++) {
        stamp s = {id, (uint32_t)i};
        CHECK_EQ(ox_broadcast_send(bc.tx[id], &s), 0);
        if (i % 64 == 0)
            ox_thread_yield();
    }
    ox_broadcast_sender_drop(bc.tx[id]);
    return NULL;
}

typedef struct {
    int index;
    rx_result res;
} rx_job;

static void *bc_receive_all(void *arg)
{
    rx_job *j = arg;
    ox_broadcast_receiver *rx = bc.rx[j->index];
    long last[SENDERS];
    for (int s = 0; s < SENDERS; s++)
        last[s] = -1;
    j->res.hash = 1469598103934665603ull;
    for (long n = 0;; n++) {
        stamp s;
        uint64_t missed = 0;
        int rc = n % 3 == 0 ? ox_broadcast_recv_timeout(rx, &s, &missed, OX_MICROS(100))
                            : ox_broadcast_recv(rx, &s, &missed);
        if (rc == OX_EDISCONNECTED)
            break;
        if (rc == OX_ETIMEDOUT)
            continue;
        if (rc == OX_ELAGGED) {
            j->res.missed += (long)missed;
            j->res.lagged_calls++;
            continue; /* a gap, but each sender's order still only moves forward */
        }
        CHECK_EQ(rc, 0);
        CHECK(s.sender < SENDERS);
        if (last[s.sender] >= 0 && (long)s.seq <= last[s.sender])
            j->res.order_errors++;
        last[s.sender] = (long)s.seq;
        j->res.received++;
        j->res.hash = (j->res.hash ^ ((uint64_t)s.sender << 32 | s.seq)) * 1099511628211ull;
        if (bc.slow && n % 50 == 0)
            ox_thread_sleep(OX_MICROS(200));
    }
    ox_broadcast_receiver_drop(rx);
    return NULL;
}

static void run_broadcast(size_t capacity, bool slow, rx_job jobs[RECEIVERS])
{
    bc.slow = slow;
    ox_broadcast_receiver *first;
    CHECK_EQ(ox_broadcast(sizeof(stamp), capacity, &bc.tx[0], &first), 0);
    bc.rx[0] = first;
    for (int i = 1; i < RECEIVERS; i++)
        bc.rx[i] = ox_broadcast_subscribe(bc.tx[0]);
    for (int i = 1; i < SENDERS; i++)
        bc.tx[i] = ox_broadcast_sender_clone(bc.tx[0]);
    ox_join_handle hr[RECEIVERS], hs[SENDERS];
    for (int i = 0; i < RECEIVERS; i++) {
        jobs[i] = (rx_job){.index = i};
        hr[i] = ox_thread_spawn(bc_receive_all, &jobs[i]);
    }
    for (int i = 0; i < SENDERS; i++)
        hs[i] = ox_thread_spawn(bc_sender, (void *)(uintptr_t)i);
    for (int i = 0; i < SENDERS; i++)
        ox_test_join(&hs[i]);
    for (int i = 0; i < RECEIVERS; i++)
        ox_test_join(&hr[i]);
    for (int i = 0; i < RECEIVERS; i++) {
        CHECK_EQ(jobs[i].res.order_errors, 0);
        /* Every message was received or counted as missed, exactly. */
        CHECK_EQ(jobs[i].res.received + jobs[i].res.missed, SENDERS * bc.per_sender);
    }
}

OX_TEST(broadcast_concurrent_no_lag_same_sequence_everywhere)
{
    bc.per_sender = ox_test_scaled(20000);
    rx_job jobs[RECEIVERS];
    run_broadcast((size_t)(SENDERS * bc.per_sender), false, jobs);
    for (int i = 0; i < RECEIVERS; i++) {
        CHECK_EQ(jobs[i].res.missed, 0);
        CHECK(jobs[i].res.hash == jobs[0].res.hash); /* one order for all */
    }
}

OX_TEST(broadcast_concurrent_lag_counted_exactly)
{
    bc.per_sender = ox_test_scaled(20000);
    rx_job jobs[RECEIVERS];
    run_broadcast(16, true, jobs);
    long lagged = 0;
    for (int i = 0; i < RECEIVERS; i++)
        lagged += jobs[i].res.lagged_calls;
    CHECK(lagged > 0); /* slow receivers on a ring of 16 must have lagged */
}

/* ---- a panicking clone ---- */

static _Atomic int bclones_to_fail;

static void clone_long_or_panic(void *dst, const void *src)
{
    if (atomic_fetch_sub(&bclones_to_fail, 1) > 0)
        ox_panic("clone failed");
    *(long *)dst = *(const long *)src;
}

static void *recv_panics(void *rx)
{
    long v;
    (void)!ox_broadcast_recv(rx, &v, NULL);
    return NULL;
}

/* clone runs under the channel's internal lock, and a panic in it left the
 * lock held: the next call on the channel hung for good. Now the message
 * stays unread and the channel usable. */
OX_TEST_OPTS(broadcast_panicking_clone_leaves_the_channel_usable, .timeout_s = 10)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_broadcast_options o = {
        .elem_size = sizeof(long), .capacity = 2, .clone = clone_long_or_panic};
    ox_broadcast_sender *tx;
    ox_broadcast_receiver *a, *b;
    CHECK_EQ(ox_broadcast_with(&o, &tx, &a), 0);
    b = ox_broadcast_subscribe(tx);
    long seven = 7, v = 0;
    CHECK_EQ(ox_broadcast_send(tx, &seven), 0);
    atomic_store(&bclones_to_fail, 1);
    CHECK_EQ(ox_catch_unwind(recv_panics, a, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(ox_broadcast_len(a), 1);            /* hung here; still unread */
    CHECK_EQ(ox_broadcast_recv(a, &v, NULL), 0); /* cloned: b still to read it */
    CHECK_EQ(v, 7);
    CHECK_EQ(ox_broadcast_recv(b, &v, NULL), 0);
    CHECK_EQ(v, 7);
    ox_broadcast_receiver_drop(a);
    ox_broadcast_receiver_drop(b);
    ox_broadcast_sender_drop(tx);
}

static _Atomic int bdestroys_to_fail;

static void destroy_long_or_panic(void *elem)
{
    (void)elem;
    if (atomic_fetch_sub(&bdestroys_to_fail, 1) > 0)
        ox_panic("destroy failed");
}

static void *send_one(void *tx)
{
    long v = 3;
    (void)!ox_broadcast_send(tx, &v);
    return NULL;
}

/* destroy of a message overwritten unread runs under the lock: a panic in
 * it left the lock held (the next call hung). Now the send completes as
 * the panic leaves: the old message counts as destroyed, the new one is
 * in. */
OX_TEST_OPTS(broadcast_panicking_destroy_in_a_send_still_sends, .timeout_s = 10)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_broadcast_options o = {
        .elem_size = sizeof(long), .capacity = 2, .destroy = destroy_long_or_panic};
    ox_broadcast_sender *tx;
    ox_broadcast_receiver *rx;
    CHECK_EQ(ox_broadcast_with(&o, &tx, &rx), 0);
    long v = 1;
    CHECK_EQ(ox_broadcast_send(tx, &v), 0);
    v = 2;
    CHECK_EQ(ox_broadcast_send(tx, &v), 0);
    atomic_store(&bdestroys_to_fail, 1);
    CHECK_EQ(ox_catch_unwind(send_one, tx, NULL, NULL), OX_EPANICKED); /* overwrites 1 */
    uint64_t missed = 0;
    CHECK_EQ(ox_broadcast_recv(rx, &v, &missed), OX_ELAGGED); /* hung here */
    CHECK_EQ(missed, 1);
    CHECK_EQ(ox_broadcast_recv(rx, &v, NULL), 0);
    CHECK_EQ(v, 2);
    CHECK_EQ(ox_broadcast_recv(rx, &v, NULL), 0);
    CHECK_EQ(v, 3);
    ox_broadcast_receiver_drop(rx);
    ox_broadcast_sender_drop(tx);
}

static _Atomic int dfail, ddestroyed;

static void count_destroy_or_panic(void *elem)
{
    (void)elem;
    atomic_fetch_add(&ddestroyed, 1);
    if (atomic_fetch_sub(&dfail, 1) > 0)
        ox_panic("destroy failed");
}

static void *drop_receiver(void *rx)
{
    ox_broadcast_receiver_drop(rx);
    return NULL;
}

/* A receiver's drop destroys the messages only it had left to read, under
 * the lock: a panic in destroy left the lock held (the next call hung) and
 * the rest undestroyed. Now the drop finishes on the unwind path. */
OX_TEST_OPTS(broadcast_panicking_destroy_in_a_receiver_drop_still_finishes, .timeout_s = 10)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_broadcast_options o = {
        .elem_size = sizeof(long), .capacity = 4, .destroy = count_destroy_or_panic};
    ox_broadcast_sender *tx;
    ox_broadcast_receiver *a, *b;
    CHECK_EQ(ox_broadcast_with(&o, &tx, &a), 0);
    b = ox_broadcast_subscribe(tx);
    long v = 1;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(ox_broadcast_send(tx, &v), 0);
    ox_broadcast_receiver_drop(a); /* b is the last reader of all 3 */
    atomic_store(&dfail, 1);
    CHECK_EQ(ox_catch_unwind(drop_receiver, b, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(ox_broadcast_receiver_count(tx), 0); /* hung here */
    CHECK_EQ(atomic_load(&ddestroyed), 3);        /* the rest too */
    ox_broadcast_sender_drop(tx);
}
