/* Timeouts at their extremes: INT64_MAX on every timed call (a timeout that
 * must mean "for ever", not overflow into the past), each call woken by a
 * partner once it is seen blocked; and a timed receive racing the drop of
 * the last sender. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define FOREVER ((ox_instant){INT64_MAX})

/* The partner: takes its hold (if any), says so, waits until the caller is
 * blocked, then lets it through. */
typedef struct partner {
    void (*hold)(struct partner *);
    void (*release)(struct partner *);
    ox_thread *caller;
    _Atomic int held;
    ox_mutex m;
    ox_rwlock l;
    ox_condvar cv;
    bool flag;
    ox_sender *tx;
    ox_receiver *rx;
} partner;

static void *partner_main(void *arg)
{
    partner *p = arg;
    if (p->hold)
        p->hold(p);
    atomic_store(&p->held, 1);
    ox_test_wait_thread_blocked(p->caller, NULL);
    p->release(p);
    return NULL;
}

/* Starts the partner and returns once its hold is taken. */
static ox_join_handle start(partner *p, void (*hold)(partner *), void (*release)(partner *))
{
    p->hold = hold;
    p->release = release;
    p->caller = ox_thread_current();
    atomic_store(&p->held, 0);
    ox_join_handle h = ox_thread_spawn(partner_main, p);
    while (!atomic_load(&p->held))
        ox_thread_yield();
    return h;
}

static void finish(ox_join_handle *h)
{
    CHECK_EQ(ox_thread_join(h, NULL, NULL), 0);
}

static void hold_mutex(partner *p)
{
    (void)!ox_mutex_lock(&p->m);
}
static void release_mutex(partner *p)
{
    ox_mutex_unlock(&p->m);
}
static void hold_read(partner *p)
{
    (void)!ox_rwlock_read(&p->l);
}
static void hold_write(partner *p)
{
    (void)!ox_rwlock_write(&p->l);
}
static void release_rwlock(partner *p)
{
    ox_rwlock_unlock(&p->l);
}
static void set_flag_notify(partner *p)
{
    (void)!ox_mutex_lock(&p->m);
    p->flag = true;
    ox_mutex_unlock(&p->m);
    ox_condvar_notify_one(&p->cv);
}
static void unpark_caller(partner *p)
{
    ox_thread_unpark(p->caller);
}
static void send_one(partner *p)
{
    int v = 5;
    CHECK_EQ(ox_sender_send(p->tx, &v), 0);
}
static void recv_one(partner *p)
{
    int v = 0;
    CHECK_EQ(ox_receiver_recv(p->rx, &v), 0);
    CHECK_EQ(v, 6);
}

static bool flag_clear(void *arg)
{
    return !((partner *)arg)->flag;
}

OX_TEST(timeouts_int64_max_on_locks)
{
    static partner p;
    memset(&p, 0, sizeof p);
    for (int deadline = 0; deadline < 2; deadline++) { /* _timeout(INT64_MAX), _deadline */
        ox_join_handle h = start(&p, hold_mutex, release_mutex);
        CHECK_EQ(deadline ? ox_mutex_lock_deadline(&p.m, FOREVER)
                          : ox_mutex_lock_timeout(&p.m, INT64_MAX),
                 0);
        ox_mutex_unlock(&p.m);
        finish(&h);

        h = start(&p, hold_read, release_rwlock);
        CHECK_EQ(deadline ? ox_rwlock_write_deadline(&p.l, FOREVER)
                          : ox_rwlock_write_timeout(&p.l, INT64_MAX),
                 0);
        ox_rwlock_write_unlock(&p.l);
        finish(&h);

        h = start(&p, hold_write, release_rwlock);
        CHECK_EQ(deadline ? ox_rwlock_read_deadline(&p.l, FOREVER)
                          : ox_rwlock_read_timeout(&p.l, INT64_MAX),
                 0);
        ox_rwlock_read_unlock(&p.l);
        finish(&h);
    }
}

OX_TEST(timeouts_int64_max_on_condvar_and_park)
{
    static partner p;
    memset(&p, 0, sizeof p);
    for (int kind = 0; kind < 3; kind++) {
        p.flag = false;
        (void)!ox_mutex_lock(&p.m);
        ox_join_handle h = start(&p, NULL, set_flag_notify);
        if (kind == 2) {
            CHECK_EQ(ox_condvar_wait_timeout_while(&p.cv, &p.m, INT64_MAX, flag_clear, &p), 0);
        } else {
            while (!p.flag)
                CHECK_EQ(kind == 0 ? ox_condvar_wait_timeout(&p.cv, &p.m, INT64_MAX)
                                   : ox_condvar_wait_deadline(&p.cv, &p.m, FOREVER),
                         0);
        }
        CHECK(p.flag);
        ox_mutex_unlock(&p.m);
        finish(&h);
    }
    ox_join_handle h = start(&p, NULL, unpark_caller);
    CHECK_EQ(ox_thread_park_timeout(INT64_MAX), 0);
    finish(&h);
}

/* The four timed ways to wait for one channel operation, each of which
 * must mean "for ever": kind 0 the channel's _timeout call (INT64_MAX), 1
 * its _deadline call, 2 and 3 a select on the one op (the same two). */
static int select_forever(ox_select_op *op, int kind)
{
    size_t idx = 9;
    return kind == 2 ? ox_select_timeout(op, 1, INT64_MAX, &idx)
                     : ox_select_deadline(op, 1, FOREVER, &idx);
}

static int recv_forever(ox_receiver *rx, int *v, int kind)
{
    ox_select_op op = OX_SELECT_RECV(rx, v);
    return kind == 0   ? ox_receiver_recv_timeout(rx, v, INT64_MAX)
           : kind == 1 ? ox_receiver_recv_deadline(rx, v, FOREVER)
                       : select_forever(&op, kind);
}

static int send_forever(ox_sender *tx, const int *v, int kind)
{
    ox_select_op op = OX_SELECT_SEND(tx, v);
    return kind == 0   ? ox_sender_send_timeout(tx, v, INT64_MAX)
           : kind == 1 ? ox_sender_send_deadline(tx, v, FOREVER)
                       : select_forever(&op, kind);
}

OX_TEST(timeouts_int64_max_on_channels_and_select)
{
    static const size_t caps[] = {OX_UNBOUNDED, 0, 1};
    static partner p;
    memset(&p, 0, sizeof p);
    for (int c = 0; c < 3; c++) {
        CHECK_EQ(ox_channel(sizeof(int), caps[c], &p.tx, &p.rx), 0);
        for (int kind = 0; kind < 4; kind++) {
            int v = 0;
            ox_join_handle h = start(&p, NULL, send_one);
            CHECK_EQ(recv_forever(p.rx, &v, kind), 0);
            CHECK_EQ(v, 5);
            finish(&h);
        }
        /* Sends that must wait: a full bounded channel, or a rendezvous. */
        if (caps[c] != OX_UNBOUNDED) {
            for (int kind = 0; kind < 4; kind++) {
                int v = 6;
                if (caps[c] == 1)
                    CHECK_EQ(ox_sender_try_send(p.tx, &v), 0); /* full */
                ox_join_handle h = start(&p, NULL, recv_one);
                CHECK_EQ(send_forever(p.tx, &v, kind), 0);
                finish(&h);
                if (caps[c] == 1) { /* our message is in the slot now */
                    CHECK_EQ(ox_receiver_try_recv(p.rx, &v), 0);
                    CHECK_EQ(v, 6);
                }
            }
        }
        ox_sender_drop(p.tx);
        ox_receiver_drop(p.rx);
    }
}

/* Timed receives race the drop of the last sender, at staggered moments:
 * each returns the message, OX_ETIMEDOUT or (once the sender is gone and
 * the channel drained) OX_EDISCONNECTED; the receiver never hangs and gets
 * the message if one was sent. */
typedef struct last_sender {
    ox_sender *tx;
    long round;
    int sent; /* 1 if a message went in before the drop */
} last_sender;

static void *send_then_drop(void *arg)
{
    last_sender *l = arg;
    int v = 1;
    if (l->round % 3 == 0) /* (a rendezvous takes it only from a waiting receiver) */
        l->sent = ox_sender_try_send(l->tx, &v) == 0;
    if (l->round % 4 == 1)
        ox_thread_sleep(OX_MICROS(l->round * 7 % 200));
    ox_sender_drop(l->tx);
    return NULL;
}

OX_TEST(timeouts_timed_recv_races_last_sender_drop)
{
    static const size_t caps[] = {OX_UNBOUNDED, 0, 1, 16};
    ox_test_budget budget = ox_test_budget_start(40, ox_test_scaled(200));
    for (long r = 0; ox_test_budget_more(&budget, r); r++) {
        size_t cap = caps[r % 4];
        ox_receiver *rx;
        last_sender l = {.round = r};
        CHECK_EQ(ox_channel(sizeof(int), cap, &l.tx, &rx), 0);
        ox_join_handle h = ox_thread_spawn(send_then_drop, &l);
        int got = 0, rc;
        long messages = 0;
        while ((rc = ox_receiver_recv_timeout(rx, &got, OX_MICROS(r % 5 * 30))) !=
               OX_EDISCONNECTED) {
            if (rc == 0)
                messages++;
            else
                CHECK_EQ(rc, OX_ETIMEDOUT);
        }
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        CHECK_EQ(messages, l.sent); /* nothing lost, nothing made up */
        CHECK_EQ(ox_receiver_try_recv(rx, &got), OX_EDISCONNECTED);
        ox_receiver_drop(rx);
    }
}
