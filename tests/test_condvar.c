/* Condvar: hand-offs never lost (notify_one and notify_all), the requeue
 * path, timeouts, wait_while, poisoning, misuse. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

OX_TEST(condvar_size_and_zero_init)
{
    CHECK(sizeof(ox_condvar) <= 8);
    ox_condvar cv;
    memset(&cv, 0, sizeof cv);
    ox_condvar_notify_one(&cv); /* nobody waits: nothing happens */
    ox_condvar_notify_all(&cv);
    ox_mutex m = OX_MUTEX_INIT;
    (void)!ox_mutex_lock(&m);
    CHECK_EQ(ox_condvar_wait_timeout(&cv, &m, OX_MILLIS(1)), OX_ETIMEDOUT);
    ox_mutex_unlock(&m); /* held again, and recorded as held */
}

OX_TEST(condvar_timeout_neither_early_nor_late)
{
    static ox_condvar cv = OX_CONDVAR_INIT;
    ox_mutex m = OX_MUTEX_INIT;
    (void)!ox_mutex_lock(&m);
    ox_instant t0 = ox_instant_now();
    CHECK_EQ(ox_condvar_wait_timeout(&cv, &m, OX_MILLIS(50)), OX_ETIMEDOUT);
    ox_nanos waited = ox_instant_diff(ox_instant_now(), t0);
    CHECK(waited >= OX_MILLIS(50));
    CHECK(waited < ox_test_bound(OX_MILLIS(1000)));
    CHECK_EQ(ox_condvar_wait_deadline(&cv, &m, ox_instant_now()), OX_ETIMEDOUT);
    CHECK_EQ(ox_condvar_wait_timeout(&cv, &m, -1), OX_EINVAL);
    CHECK_EQ(ox_mutex_try_lock(&m), OX_EBUSY); /* still held by us */
    ox_mutex_unlock(&m);
}

/* ---- hand-offs ---- */

struct flag {
    ox_mutex m;
    ox_condvar cv;
    int value;
};

static bool flag_unset(void *arg)
{
    return ((struct flag *)arg)->value == 0;
}

static void *set_flag_later(void *arg)
{
    struct flag *f = arg;
    ox_test_wait_blocked(&f->cv, 1, NULL); /* the other waits in wait_while */
    (void)!ox_mutex_lock(&f->m);
    f->value = 1;
    ox_mutex_unlock(&f->m);
    ox_condvar_notify_one(&f->cv);
    return NULL;
}

OX_TEST(condvar_wait_while_returns_when_predicate_false)
{
    struct flag f = {OX_MUTEX_INIT, OX_CONDVAR_INIT, 0};
    ox_join_handle h = ox_thread_spawn(set_flag_later, &f);
    (void)!ox_mutex_lock(&f.m);
    CHECK_EQ(ox_condvar_wait_while(&f.cv, &f.m, flag_unset, &f), 0);
    CHECK_EQ(f.value, 1);
    /* Predicate already false: no wait at all. */
    CHECK_EQ(ox_condvar_wait_while(&f.cv, &f.m, flag_unset, &f), 0);
    ox_mutex_unlock(&f.m);
    (void)!ox_thread_join(&h, NULL, NULL);
}

static void *poison_it(void *arg)
{
    (void)!ox_mutex_lock((ox_mutex *)arg);
    ox_panic("poison");
}

/* A predicate of wait_while that panics: it runs with the mutex held (the
 * first call, and after a wake-up), so the unwind releases and poisons the
 * mutex; the condvar stays usable with its mutex. */
struct panicky_pred {
    ox_mutex m;
    ox_condvar cv;
    int calls, panic_at;
};

static bool pred_panics_at(void *arg)
{
    struct panicky_pred *p = arg;
    if (++p->calls == p->panic_at)
        ox_panic("predicate panics on call %d", p->calls);
    return true;
}

static void *wait_with_panicky_pred(void *arg)
{
    struct panicky_pred *p = arg;
    (void)!ox_mutex_lock(&p->m);
    (void)!ox_condvar_wait_while(&p->cv, &p->m, pred_panics_at, p);
    ox_mutex_unlock(&p->m); /* not reached */
    return NULL;
}

OX_TEST(condvar_wait_while_predicate_panics)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    for (int panic_at = 1; panic_at <= 2; panic_at++) {
        struct panicky_pred p = {OX_MUTEX_INIT, OX_CONDVAR_INIT, 0, panic_at};
        ox_join_handle h = ox_thread_spawn(wait_with_panicky_pred, &p);
        if (panic_at == 2) { /* the second call follows a wake-up */
            ox_test_wait_blocked(&p.cv, 1, NULL);
            (void)!ox_mutex_lock(&p.m);
            ox_mutex_unlock(&p.m);
            ox_condvar_notify_one(&p.cv);
        }
        ox_panic_payload *payload = NULL;
        CHECK_EQ(ox_thread_join(&h, NULL, &payload), OX_EPANICKED);
        CHECK(strstr(payload->message, "predicate panics") != NULL);
        ox_panic_payload_free(payload);
        CHECK_EQ(p.calls, panic_at);
        CHECK(ox_mutex_is_poisoned(&p.m));
        CHECK_EQ(ox_mutex_try_lock(&p.m), OX_EPOISONED); /* released by the unwind */
        ox_mutex_clear_poison(&p.m);
        CHECK_EQ(ox_condvar_wait_timeout(&p.cv, &p.m, OX_MILLIS(1)), OX_ETIMEDOUT);
        ox_mutex_unlock(&p.m);
    }
}

OX_TEST(condvar_wait_reports_poisoned_mutex)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    struct flag f = {OX_MUTEX_INIT, OX_CONDVAR_INIT, 0};
    CHECK_EQ(ox_catch_unwind(poison_it, &f.m, NULL, NULL), OX_EPANICKED);
    ox_join_handle h = ox_thread_spawn(set_flag_later, &f);
    CHECK_EQ(ox_mutex_lock(&f.m), OX_EPOISONED);
    int rc = 0;
    while (f.value == 0 && rc == 0)
        rc = ox_condvar_wait(&f.cv, &f.m);
    CHECK_EQ(rc, OX_EPOISONED);
    ox_mutex_unlock(&f.m);
    (void)!ox_thread_join(&h, NULL, NULL);
    /* wait_while stops at the poison, as Rust's does. */
    f.value = 0;
    h = ox_thread_spawn(set_flag_later, &f);
    (void)!ox_mutex_lock(&f.m);
    CHECK_EQ(ox_condvar_wait_while(&f.cv, &f.m, flag_unset, &f), OX_EPOISONED);
    ox_mutex_unlock(&f.m);
    (void)!ox_thread_join(&h, NULL, NULL);
}

/* A bounded queue: producers and consumers, two condvars on one mutex.
 * Every item produced is consumed exactly once; a lost notify hangs the test
 * (the runner's timeout fails it). */
enum { QCAP = 4 };

struct queue {
    ox_mutex m;
    ox_condvar not_empty, not_full;
    long items[QCAP];
    int head, len;
    long per_producer;
    bool use_all;
    long consumed_sum;
    long consumed_count;
    long total;
};

static void *producer(void *arg)
{
    struct queue *q = arg;
    for (long i = 1; i <= q->per_producer; i++) {
        (void)!ox_mutex_lock(&q->m);
        while (q->len == QCAP)
            (void)!ox_condvar_wait(&q->not_full, &q->m);
        q->items[(q->head + q->len++) % QCAP] = i;
        if (q->use_all)
            ox_condvar_notify_all(&q->not_empty); /* under the lock: requeue path */
        ox_mutex_unlock(&q->m);
        if (!q->use_all)
            ox_condvar_notify_one(&q->not_empty);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct queue *q = arg;
    for (;;) {
        (void)!ox_mutex_lock(&q->m);
        while (q->len == 0 && q->consumed_count < q->total)
            (void)!ox_condvar_wait(&q->not_empty, &q->m);
        if (q->len == 0) { /* all consumed */
            ox_mutex_unlock(&q->m);
            ox_condvar_notify_all(&q->not_empty);
            return NULL;
        }
        long v = q->items[q->head];
        q->head = (q->head + 1) % QCAP;
        q->len--;
        q->consumed_sum += v;
        q->consumed_count++;
        bool done = q->consumed_count == q->total;
        if (q->use_all)
            ox_condvar_notify_all(&q->not_full);
        ox_mutex_unlock(&q->m);
        if (!q->use_all)
            ox_condvar_notify_one(&q->not_full);
        if (done)
            ox_condvar_notify_all(&q->not_empty); /* release the other consumers */
    }
}

static void run_queue(bool use_all)
{
    static struct queue q;
    memset(&q, 0, sizeof q);
    q.use_all = use_all;
    q.per_producer = ox_test_scaled(20000);
    q.total = 2 * q.per_producer;
    ox_join_handle h[4];
    h[0] = ox_thread_spawn(producer, &q);
    h[1] = ox_thread_spawn(producer, &q);
    h[2] = ox_thread_spawn(consumer, &q);
    h[3] = ox_thread_spawn(consumer, &q);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(q.consumed_count, q.total);
    CHECK_EQ(q.consumed_sum, 2 * (q.per_producer * (q.per_producer + 1) / 2));
}

OX_TEST(condvar_handoffs_never_lost_notify_one)
{
    run_queue(false);
}

/* A gate: GATE_WAITERS threads wait on one condvar, and each round the
 * opener lets them all through with a single notify_all, once it has seen
 * every one of them waiting (a waiter counts itself under the mutex that
 * its wait releases, so all are inside the wait then). A notify_all that
 * wakes fewer than all leaves the rest asleep: the runner's timeout fails
 * the test. Departures are reported on a condvar of their own, so no
 * waiter's notify can stand in for the opener's. */
enum { GATE_WAITERS = 4 };

struct gate {
    ox_mutex m;
    ox_condvar open_cv, report_cv;
    long round;
    int waiting, departed;
    long rounds;
};

static void *gate_waiter(void *arg)
{
    struct gate *g = arg;
    (void)!ox_mutex_lock(&g->m);
    for (long r = 1; r <= g->rounds; r++) {
        g->waiting++;
        ox_condvar_notify_one(&g->report_cv);
        while (g->round < r)
            (void)!ox_condvar_wait(&g->open_cv, &g->m);
        g->departed++;
        ox_condvar_notify_one(&g->report_cv);
    }
    ox_mutex_unlock(&g->m);
    return NULL;
}

OX_TEST(condvar_handoffs_never_lost_notify_all)
{
    run_queue(true);

    static struct gate g;
    memset(&g, 0, sizeof g);
    g.rounds = ox_test_scaled(500);
    ox_join_handle h[GATE_WAITERS];
    for (int i = 0; i < GATE_WAITERS; i++)
        h[i] = ox_thread_spawn(gate_waiter, &g);
    (void)!ox_mutex_lock(&g.m);
    for (long r = 1; r <= g.rounds; r++) {
        while (g.waiting < GATE_WAITERS)
            (void)!ox_condvar_wait(&g.report_cv, &g.m);
        g.waiting = 0;
        g.departed = 0;
        g.round = r;
        ox_condvar_notify_all(&g.open_cv); /* the only notify of open_cv */
        while (g.departed < GATE_WAITERS)
            (void)!ox_condvar_wait(&g.report_cv, &g.m);
    }
    ox_mutex_unlock(&g.m);
    for (int i = 0; i < GATE_WAITERS; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
}

/* notify_all with several sleepers while the notifier holds the mutex: one
 * is woken, the others are requeued onto the mutex and must each be woken
 * by a mutex unlock in turn. Every round, every waiter must come through. */
enum { GEN_WAITERS = 5 };

struct gen {
    ox_mutex m;
    ox_condvar cv;
    long generation;
    int arrived;  /* waiters of this generation that are waiting */
    int departed; /* waiters that saw the new generation */
    long rounds;
};

static void *gen_waiter(void *arg)
{
    struct gen *g = arg;
    for (long r = 0; r < g->rounds; r++) {
        (void)!ox_mutex_lock(&g->m);
        long mine = g->generation;
        g->arrived++;
        ox_condvar_notify_all(&g->cv); /* tell the leader */
        while (g->generation == mine)
            (void)!ox_condvar_wait(&g->cv, &g->m);
        g->departed++;
        ox_condvar_notify_all(&g->cv);
        ox_mutex_unlock(&g->m);
    }
    return NULL;
}

OX_TEST(condvar_notify_all_requeue_wakes_everyone)
{
    static struct gen g;
    memset(&g, 0, sizeof g);
    g.rounds = ox_test_scaled(2000);
    ox_join_handle h[GEN_WAITERS];
    for (int i = 0; i < GEN_WAITERS; i++)
        h[i] = ox_thread_spawn(gen_waiter, &g);
    for (long r = 0; r < g.rounds; r++) {
        (void)!ox_mutex_lock(&g.m);
        while (g.arrived < GEN_WAITERS)
            (void)!ox_condvar_wait(&g.cv, &g.m);
        /* Let them fall asleep now and then, so that the requeue finds
         * sleepers rather than spinners. */
        if (r % 8 == 0) {
            ox_mutex_unlock(&g.m);
            ox_thread_sleep(OX_MILLIS(1));
            (void)!ox_mutex_lock(&g.m);
        }
        g.arrived = 0;
        g.departed = 0;
        g.generation++;
        ox_condvar_notify_all(&g.cv); /* mutex held: the requeue path */
        while (g.departed < GEN_WAITERS)
            (void)!ox_condvar_wait(&g.cv, &g.m);
        ox_mutex_unlock(&g.m);
    }
    for (int i = 0; i < GEN_WAITERS; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(g.generation, g.rounds);
}

/* ---- misuse ---- */

OX_TEST_OPTS(condvar_wait_without_mutex_held_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "which thread 'main' does not hold")
{
    ox_condvar cv = OX_CONDVAR_INIT;
    ox_mutex m = OX_MUTEX_INIT;
    (void)!ox_condvar_wait(&cv, &m);
}

OX_TEST_OPTS(condvar_two_mutexes_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "is used with two mutexes")
{
    ox_condvar cv = OX_CONDVAR_INIT;
    ox_mutex a = OX_MUTEX_INIT, b = OX_MUTEX_INIT;
    (void)!ox_mutex_lock(&a);
    (void)!ox_condvar_wait_timeout(&cv, &a, OX_MILLIS(1));
    ox_mutex_unlock(&a);
    (void)!ox_mutex_lock(&b);
    (void)!ox_condvar_wait_timeout(&cv, &b, OX_MILLIS(1));
}

OX_TEST(condvar_init_unties)
{
    ox_condvar cv = OX_CONDVAR_INIT;
    ox_mutex a = OX_MUTEX_INIT, b = OX_MUTEX_INIT;
    (void)!ox_mutex_lock(&a);
    CHECK_EQ(ox_condvar_wait_timeout(&cv, &a, OX_MILLIS(1)), OX_ETIMEDOUT);
    ox_mutex_unlock(&a);
    ox_condvar_init(&cv);
    (void)!ox_mutex_lock(&b);
    CHECK_EQ(ox_condvar_wait_timeout(&cv, &b, OX_MILLIS(1)), OX_ETIMEDOUT);
    ox_mutex_unlock(&b);
}

/* Timed waits mixed with notify_one and notify_all: every hand-off still
 * arrives (the waiter re-checks after a timeout), nothing hangs. */
struct timed_box {
    ox_mutex m;
    ox_condvar cv;
    long produced, consumed;
    long total;
    _Atomic long timeouts;
};

static void *timed_consumer(void *arg)
{
    struct timed_box *b = arg;
    (void)!ox_mutex_lock(&b->m);
    while (b->consumed < b->total) {
        if (b->produced > b->consumed) {
            b->consumed++;
            ox_condvar_notify_all(&b->cv);
            continue;
        }
        if (ox_condvar_wait_timeout(&b->cv, &b->m, OX_MICROS(50)) == OX_ETIMEDOUT)
            atomic_fetch_add(&b->timeouts, 1);
    }
    ox_mutex_unlock(&b->m);
    ox_condvar_notify_all(&b->cv);
    return NULL;
}

static void *timed_producer(void *arg)
{
    struct timed_box *b = arg;
    for (long i = 0; i < b->total / 2; i++) {
        (void)!ox_mutex_lock(&b->m);
        while (b->produced - b->consumed >= 2)
            (void)!ox_condvar_wait(&b->cv, &b->m);
        b->produced++;
        ox_mutex_unlock(&b->m);
        if (i % 2)
            ox_condvar_notify_one(&b->cv);
        else
            ox_condvar_notify_all(&b->cv);
    }
    return NULL;
}

struct handoff {
    ox_mutex m;
    ox_condvar forth, back;
    bool consumer_waiting;
    long item, total, consumed_sum;
};

static void *handoff_consumer(void *arg)
{
    struct handoff *hf = arg;
    (void)!ox_mutex_lock(&hf->m);
    for (long i = 1; i <= hf->total; i++) {
        hf->consumer_waiting = true;
        ox_condvar_notify_all(&hf->back);
        while (hf->item != i) {
            int rc = ox_condvar_wait_timeout(&hf->forth, &hf->m, INT64_MAX);
            if (rc != 0)
                ox_panic("wait_timeout(INT64_MAX) returned %d", rc);
        }
        hf->consumed_sum += hf->item;
    }
    ox_mutex_unlock(&hf->m);
    return NULL;
}

OX_TEST(condvar_timed_waits_with_notifies)
{
    static struct timed_box b;
    memset(&b, 0, sizeof b);
    b.total = 2 * ox_test_scaled(20000);
    ox_join_handle h[4];
    h[0] = ox_thread_spawn(timed_consumer, &b);
    h[1] = ox_thread_spawn(timed_consumer, &b);
    h[2] = ox_thread_spawn(timed_producer, &b);
    h[3] = ox_thread_spawn(timed_producer, &b);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(b.produced, b.total);
    CHECK_EQ(b.consumed, b.total);

    /* The 50 us waits above would hide a lost notify_one (the timeout wakes
     * the waiter anyway). Here each item is handed to a consumer that is
     * inside a timed wait that never ends by itself (INT64_MAX): the
     * producer notifies only after seeing it waiting, with notify_one, so
     * only that notify can wake it. */
    static struct handoff hf;
    memset(&hf, 0, sizeof hf);
    hf.total = ox_test_scaled(2000);
    ox_join_handle c = ox_thread_spawn(handoff_consumer, &hf);
    (void)!ox_mutex_lock(&hf.m);
    for (long i = 1; i <= hf.total; i++) {
        while (!hf.consumer_waiting)
            CHECK_EQ(ox_condvar_wait_timeout(&hf.back, &hf.m, INT64_MAX), 0);
        hf.consumer_waiting = false;
        hf.item = i;
        ox_condvar_notify_one(&hf.forth);
    }
    ox_mutex_unlock(&hf.m);
    CHECK_EQ(ox_thread_join(&c, NULL, NULL), 0);
    CHECK_EQ(hf.consumed_sum, hf.total * (hf.total + 1) / 2);
}

/* ---- a wait inside ox_catch_unwind (issue 10, bug 1) ---- */

struct caught_wait {
    ox_mutex m;
    ox_condvar cv;
};

static void *wait_then_panic(void *arg)
{
    struct caught_wait *w = arg;
    CHECK_EQ(ox_condvar_wait_timeout(&w->cv, &w->m, OX_MILLIS(1)), OX_ETIMEDOUT);
    ox_panic("after the wait");
}

static void *try_lock_elsewhere(void *arg)
{
    ox_mutex *m = arg;
    int rc = ox_mutex_try_lock(m);
    if (rc == 0 || rc == OX_EPOISONED)
        ox_mutex_unlock(m);
    return (void *)(intptr_t)rc;
}

/* main takes m at catch level 0 and waits with it at level 1: the re-taken
 * m still belongs to level 0, so the panic at level 1 must neither release
 * nor poison it (before the fix it did both, another thread's try_lock then
 * succeeded while main believed it held m, and main's unlock aborted). */
OX_TEST(condvar_wait_in_catch_keeps_the_outer_lock)
{
    static struct caught_wait w = {OX_MUTEX_INIT, OX_CONDVAR_INIT};
    CHECK_EQ(ox_mutex_lock(&w.m), 0);
    CHECK_EQ(ox_catch_unwind(wait_then_panic, &w, NULL, NULL), OX_EPANICKED);
    CHECK(!ox_mutex_is_poisoned(&w.m));
    ox_join_handle h = ox_thread_spawn(try_lock_elsewhere, &w.m);
    void *rc;
    CHECK_EQ(ox_thread_join(&h, &rc, NULL), 0);
    CHECK_EQ((intptr_t)rc, OX_EBUSY); /* still ours */
    ox_mutex_unlock(&w.m);            /* and still recorded as ours */
    h = ox_thread_spawn(try_lock_elsewhere, &w.m);
    CHECK_EQ(ox_thread_join(&h, &rc, NULL), 0);
    CHECK_EQ((intptr_t)rc, 0);
}

static void *lock_wait_then_panic(void *arg)
{
    struct caught_wait *w = arg;
    static ox_mutex inner = OX_MUTEX_INIT;
    CHECK_EQ(ox_mutex_lock(&inner), 0); /* level 1, above m in the record */
    CHECK_EQ(ox_condvar_wait_timeout(&w->cv, &w->m, OX_MILLIS(1)), OX_ETIMEDOUT);
    ox_panic("after the wait, holding inner");
}

/* The same with a lock of the inner level on top of m: the panic releases
 * that one (and poisons it), and m keeps its place below it. */
OX_TEST(condvar_wait_in_catch_keeps_the_record_in_order)
{
    static struct caught_wait w = {OX_MUTEX_INIT, OX_CONDVAR_INIT};
    CHECK_EQ(ox_mutex_lock(&w.m), 0);
    CHECK_EQ(ox_catch_unwind(lock_wait_then_panic, &w, NULL, NULL), OX_EPANICKED);
    CHECK(!ox_mutex_is_poisoned(&w.m));
    ox_join_handle h = ox_thread_spawn(try_lock_elsewhere, &w.m);
    void *rc;
    CHECK_EQ(ox_thread_join(&h, &rc, NULL), 0);
    CHECK_EQ((intptr_t)rc, OX_EBUSY);
    ox_mutex_unlock(&w.m);
}

/* ---- wait_timeout_while (issue 10, section 4) ---- */

struct nagger {
    struct flag *f;
    _Atomic bool stop;
};

/* Notifies over and over without ever setting the flag. */
static void *nag(void *arg)
{
    struct nagger *n = arg;
    while (!atomic_load(&n->stop)) {
        ox_condvar_notify_all(&n->f->cv);
        ox_thread_yield();
    }
    return NULL;
}

OX_TEST(condvar_wait_timeout_while)
{
    struct flag f = {OX_MUTEX_INIT, OX_CONDVAR_INIT, 0};
    (void)!ox_mutex_lock(&f.m);
    CHECK_EQ(ox_condvar_wait_timeout_while(&f.cv, &f.m, -1, flag_unset, &f), OX_EINVAL);
    /* Notifies that leave the predicate true are absorbed until the time is
     * up; m is held again then. */
    struct nagger n = {&f, false};
    ox_join_handle h = ox_thread_spawn(nag, &n);
    CHECK_EQ(ox_condvar_wait_timeout_while(&f.cv, &f.m, OX_MILLIS(30), flag_unset, &f),
             OX_ETIMEDOUT);
    CHECK_EQ(f.value, 0);
    atomic_store(&n.stop, true);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(ox_mutex_try_lock(&f.m), OX_EBUSY); /* ours */
    /* The predicate turning false ends the wait long before the timeout. */
    h = ox_thread_spawn(set_flag_later, &f);
    CHECK_EQ(ox_condvar_wait_timeout_while(&f.cv, &f.m, OX_SECS(600), flag_unset, &f), 0);
    CHECK_EQ(f.value, 1);
    /* Already false: returns at once, even with a zero timeout. */
    CHECK_EQ(ox_condvar_wait_timeout_while(&f.cv, &f.m, 0, flag_unset, &f), 0);
    ox_mutex_unlock(&f.m);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);

    /* Poisoning is reported as by wait_while. */
    ox_panic_set_hook(ox_test_quiet_hook);
    CHECK_EQ(ox_catch_unwind(poison_it, &f.m, NULL, NULL), OX_EPANICKED);
    f.value = 0;
    h = ox_thread_spawn(set_flag_later, &f);
    CHECK_EQ(ox_mutex_lock(&f.m), OX_EPOISONED);
    CHECK_EQ(ox_condvar_wait_timeout_while(&f.cv, &f.m, OX_SECS(600), flag_unset, &f),
             OX_EPOISONED);
    ox_mutex_unlock(&f.m);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
}

/* Two sides hand a turn back and forth, notifying after the unlock as
 * condvar_pingpong does: each notify is the only one that can wake the
 * other side, so a notify lost between a waiter's spin and its sleep
 * hangs the test, and the runner's timeout fails it. Threads spin before
 * they sleep (wait_spin.c), tasks never do: the three pairings cover the
 * waits answered while spinning, the sleeps, and both at once. */
struct turns {
    ox_mutex m;
    ox_condvar cv;
    int turn;
    long handoffs;
};

struct turn_side {
    struct turns *t;
    int me;
};

static void *take_turns(void *arg)
{
    struct turn_side *s = arg;
    struct turns *t = s->t;
    for (long i = 0; i < t->handoffs; i++) {
        (void)!ox_mutex_lock(&t->m);
        while (t->turn != s->me)
            (void)!ox_condvar_wait(&t->cv, &t->m);
        t->turn = !s->me;
        ox_mutex_unlock(&t->m);
        ox_condvar_notify_one(&t->cv);
    }
    return NULL;
}

/* side 0 and side 1 each a task (on a runtime of two workers) or a
 * thread. */
static void run_turns(bool task0, bool task1)
{
    static struct turns t;
    memset(&t, 0, sizeof t);
    t.handoffs = ox_test_scaled(20000);
    struct turn_side sides[2] = {{&t, 0}, {&t, 1}};
    bool as_task[2] = {task0, task1};
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle th[2];
    ox_join_handle h[2];
    for (int i = 0; i < 2; i++) {
        if (as_task[i])
            th[i] = ox_test_spawn_on(rt, take_turns, &sides[i]);
        else
            h[i] = ox_thread_spawn(take_turns, &sides[i]);
    }
    for (int i = 0; i < 2; i++)
        CHECK_EQ(as_task[i] ? ox_task_join(&th[i], NULL, NULL) : ox_thread_join(&h[i], NULL, NULL),
                 0);
    ox_runtime_shutdown(rt);
    CHECK_EQ(t.turn, 0);
}

OX_TEST(condvar_turns_never_lose_a_notify_threads)
{
    run_turns(false, false);
}

OX_TEST(condvar_turns_never_lose_a_notify_tasks)
{
    run_turns(true, true);
}

OX_TEST(condvar_turns_never_lose_a_notify_task_and_thread)
{
    run_turns(true, false);
}
