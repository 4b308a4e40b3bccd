/* Notify: Tokio's permit semantics (notify_one stores one permit, at most
 * one; notify_waiters stores none and wakes only current waiters and older
 * tickets), FIFO order, and no lost wake-up under stress, with timeouts. */
#include "helpers.h"
#include "oxide.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>

OX_TEST(notify_one_stores_a_single_permit)
{
    ox_notify n = {0};
    CHECK_EQ(ox_notify_try_wait(&n), OX_EBUSY);
    ox_notify_one(&n);
    ox_notify_one(&n); /* still one permit */
    CHECK_EQ(ox_notify_try_wait(&n), 0);
    CHECK_EQ(ox_notify_try_wait(&n), OX_EBUSY);
    ox_notify_one(&n);
    CHECK_EQ(ox_notify_wait(&n), 0); /* consumes it without blocking */
    CHECK_EQ(ox_notify_wait_timeout(&n, OX_MILLIS(1)), OX_ETIMEDOUT);
    CHECK_EQ(ox_notify_wait_timeout(&n, -1), OX_EINVAL);
}

OX_TEST(notify_waiters_stores_nothing_but_wakes_older_tickets)
{
    static ox_notify n = OX_NOTIFY_INIT;
    ox_notified before = ox_notify_notified(&n);
    ox_notify_waiters(&n);
    CHECK_EQ(ox_notify_try_wait(&n), OX_EBUSY);                       /* no permit */
    CHECK_EQ(ox_notify_wait_timeout(&n, OX_MILLIS(1)), OX_ETIMEDOUT); /* a new wait blocks */
    CHECK_EQ(ox_notified_wait(&before), 0); /* the older ticket does not */
    CHECK_EQ(ox_notified_wait(&before), 0); /* and keeps its point */
    ox_notified after = ox_notify_notified(&n);
    CHECK_EQ(ox_notified_wait_timeout(&after, OX_MILLIS(1)), OX_ETIMEDOUT);
    /* A permit stored by notify_one survives a notify_waiters. */
    ox_notify_one(&n);
    ox_notify_waiters(&n);
    CHECK_EQ(ox_notify_try_wait(&n), 0);
}

typedef struct {
    ox_notify *n;
    _Atomic int done;
    int rc;
} wait_job;

static void *waiter(void *arg)
{
    wait_job *j = arg;
    j->rc = ox_notify_wait(j->n);
    atomic_store(&j->done, 1);
    return NULL;
}

OX_TEST(notify_one_wakes_oldest_waiter_first)
{
    static ox_notify n;
    wait_job a = {.n = &n}, b = {.n = &n};
    ox_join_handle ha = ox_thread_spawn(waiter, &a);
    ox_test_wait_blocked_on(&n, 1);
    ox_join_handle hb = ox_thread_spawn(waiter, &b);
    ox_test_wait_blocked_on(&n, 2);
    ox_notify_one(&n);
    ox_test_join(&ha);
    CHECK_EQ(a.rc, 0);
    CHECK_EQ(atomic_load(&b.done), 0); /* one notify, one waiter woken, no permit left over */
    CHECK_EQ(ox_notify_try_wait(&n), OX_EBUSY);
    ox_notify_one(&n);
    ox_test_join(&hb);
    CHECK_EQ(b.rc, 0);
}

OX_TEST(notify_waiters_wakes_every_current_waiter)
{
    static ox_notify n;
    enum { K = 5 };
    wait_job j[K];
    ox_join_handle h[K];
    for (int i = 0; i < K; i++) {
        j[i] = (wait_job){.n = &n};
        h[i] = ox_thread_spawn(waiter, &j[i]);
    }
    ox_test_wait_blocked_on(&n, K);
    ox_notify_waiters(&n);
    for (int i = 0; i < K; i++) {
        ox_test_join(&h[i]);
        CHECK_EQ(j[i].rc, 0);
    }
    CHECK_EQ(ox_notify_try_wait(&n), OX_EBUSY);
}

/* Two threads take turns through two Notifies, with no flag of their own:
 * a lost notify_one hangs them (the runner's timeout names the test), and
 * the plain turn counter checks that each wake-up carries the other's
 * writes (TSan). Half the waits time out and retry, so the timeout paths
 * (a waiter leaving just as it is picked) run too. */
static struct {
    ox_notify ping, pong;
    _Atomic long last; /* the last round, stored before main's ping of it */
    long turn;         /* plain: handed over by the notifies */
    _Atomic long bad;
} pp = {.last = -1};

static void wait_retrying(ox_notify *n, long i)
{
    if (i % 2)
        CHECK_EQ(ox_notify_wait(n), 0);
    else
        while (ox_notify_wait_timeout(n, OX_MICROS(i % 7 * 10)) == OX_ETIMEDOUT)
            ;
}

static void *ponger(void *arg)
{
    (void)arg;
    for (long i = 0;; i++) {
        wait_retrying(&pp.ping, i);
        if (pp.turn != 2 * i + 1)
            atomic_fetch_add(&pp.bad, 1);
        pp.turn++;
        ox_notify_one(&pp.pong);
        if (atomic_load(&pp.last) == i)
            return NULL;
    }
}

OX_TEST(notify_one_never_lost_in_ping_pong)
{
    ox_test_budget budget = ox_test_budget_start(300, ox_test_scaled(3000));
    ox_join_handle h = ox_thread_spawn(ponger, NULL);
    long rounds = 0;
    for (bool more = true; more; rounds++) {
        long i = rounds;
        more = ox_test_budget_more(&budget, i + 1);
        if (!more)
            atomic_store(&pp.last, i); /* the ponger reads it after this ping */
        if (pp.turn != 2 * i)
            atomic_fetch_add(&pp.bad, 1);
        pp.turn++;
        ox_notify_one(&pp.ping);
        wait_retrying(&pp.pong, i + 1);
    }
    ox_test_join(&h);
    CHECK_EQ(atomic_load(&pp.bad), 0);
    CHECK_EQ(pp.turn, 2 * rounds);
}

/* Many producers, one consumer, counted work: notify_one after each
 * increment must wake the consumer or leave a permit for it. */
static struct {
    ox_notify n;
    _Atomic long pending;
    ox_test_budget budget;  /* increments per producer */
    _Atomic long announced; /* increments, summed over the finished producers */
    _Atomic int finished;   /* producers that announced their count */
} mp;

static void *producer(void *arg)
{
    (void)arg;
    bool more = true;
    for (long i = 0; more; i++) {
        more = ox_test_budget_more(&mp.budget, i + 1);
        if (!more) {
            /* The last: its count is announced before its increment, and
             * no notify is added to the one that follows it. */
            atomic_fetch_add(&mp.announced, i + 1);
            atomic_fetch_add(&mp.finished, 1);
        }
        atomic_fetch_add(&mp.pending, 1);
        ox_notify_one(&mp.n);
        if (i % 16 == 0)
            ox_thread_yield();
    }
    return NULL;
}

OX_TEST(notify_one_never_lost_with_many_producers)
{
    enum { P = 3 };
    mp.budget = ox_test_budget_start(3000, ox_test_scaled(30000));
    ox_join_handle h[P];
    for (int i = 0; i < P; i++)
        h[i] = ox_thread_spawn(producer, NULL);
    long got = 0;
    for (;;) {
        long now = atomic_exchange(&mp.pending, 0);
        got += now;
        if (atomic_load(&mp.finished) == P && got == atomic_load(&mp.announced))
            break;
        if (now == 0)
            CHECK_EQ(ox_notify_wait(&mp.n), 0);
    }
    for (int i = 0; i < P; i++)
        ox_test_join(&h[i]);
    CHECK_EQ(got, atomic_load(&mp.announced));
    CHECK(got >= P * mp.budget.min);
}

/* Rounds announced with notify_waiters: waiters take a ticket before they
 * check the round, so one announced between check and wait is not missed
 * (it would hang). */
static struct {
    ox_notify n;
    _Atomic long epoch;
    _Atomic long arrived;
    long rounds;
} ep;

static void *epoch_waiter(void *arg)
{
    (void)arg;
    for (long r = 1; r <= ep.rounds; r++) {
        for (;;) {
            ox_notified t = ox_notify_notified(&ep.n);
            if (atomic_load(&ep.epoch) >= r)
                break;
            CHECK_EQ(ox_notified_wait(&t), 0);
        }
        atomic_fetch_add(&ep.arrived, 1);
    }
    return NULL;
}

OX_TEST(notify_waiters_with_tickets_never_missed)
{
    enum { W = 3 };
    ep.rounds = ox_test_scaled(5000);
    ox_join_handle h[W];
    for (int i = 0; i < W; i++)
        h[i] = ox_thread_spawn(epoch_waiter, NULL);
    for (long r = 1; r <= ep.rounds; r++) {
        atomic_store(&ep.epoch, r);
        ox_notify_waiters(&ep.n);
        while (atomic_load(&ep.arrived) < W * r)
            ox_thread_yield();
    }
    for (int i = 0; i < W; i++)
        ox_test_join(&h[i]);
    CHECK_EQ(atomic_load(&ep.arrived), W * ep.rounds);
    CHECK_EQ(ox_notify_try_wait(&ep.n), OX_EBUSY); /* notify_waiters left no permit */
}
