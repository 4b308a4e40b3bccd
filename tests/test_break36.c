/* break36: attacks on the counted waits (293eb80, 1e5a117, df5eccd): a
 * condvar's notify and an rwlock's writer wake skip their wake when
 * ox__park_may_have_waiters finds no waiter counted in the word's slot.
 *
 * A skipped wake that a sleeper needed hangs a test (the runner's timeout
 * fails it by name, or a watchdog fails it with what is still out). Each
 * test also checks that the count went back to nothing once every waiter
 * left: a count that leaks only costs wakes, but one decremented twice
 * (an abort, a timeout, a requeue) would make a later sleeper invisible.
 *
 * Paths: condvars whose futex words share one count slot, relayed by
 * threads and tasks while timed waiters on a third come and go; aborted
 * and shut-down tasks in condvar waits (1 and 2 workers); notify_all
 * requeues mixed with notify_one hand-offs of permits, threads and tasks;
 * a three-party ring of timed waits on a one-worker runtime; rwlock
 * writers timing out while readers come and go, with an untimed writer
 * (thread and task) that must get through; a forked child relaying on a
 * condvar whose slot the parent's sleeper keeps counted.
 */
#define _GNU_SOURCE
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include "thread/park.h" /* white box: ox__park_may_have_waiters */

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- shared helpers ---- */

/* The futex word a condvar's waiters sleep on (condvar.c: the upper half
 * of its state). */
static _Atomic uint32_t *cv_word(ox_condvar *cv)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (_Atomic uint32_t *)(void *)&cv->state;
#else
    return (_Atomic uint32_t *)(void *)((char *)&cv->state + 4);
#endif
}

/* The count slot of a word, as park.c chooses it (256 slots, Fibonacci
 * hashing of the address). Checked against the library below. */
static unsigned slot_of(const void *word)
{
    uint64_t h = (uint64_t)(uintptr_t)word * UINT64_C(0x9E3779B97F4A7C15);
    return (unsigned)(h >> 56);
}

static void lock(ox_mutex *m)
{
    (void)!ox_mutex_lock(m);
}

/* ---- condvars sharing a count slot ---- */

enum { POOL = 4096, SHARED = 5 };

/* A pool of condvars, five of them picked with one count slot. */
static ox_condvar pool[POOL];

struct relay {
    ox_mutex own;
    ox_mutex *m; /* own, or the mutex the condvar is tied to */
    ox_condvar *cv;
    int turn;
    long handoffs;
};

struct relay_side {
    struct relay *r;
    int me;
};

/* Turns handed back and forth, the notify after the unlock: each notify is
 * the only one that wakes the other side. */
static void *relay_turns(void *arg)
{
    struct relay_side *s = arg;
    struct relay *r = s->r;
    for (long i = 0; i < r->handoffs; i++) {
        lock(r->m);
        while (r->turn != s->me)
            (void)!ox_condvar_wait(r->cv, r->m);
        r->turn = !s->me;
        ox_mutex_unlock(r->m);
        ox_condvar_notify_one(r->cv);
    }
    return NULL;
}

struct churn {
    ox_mutex m;
    ox_condvar *cv;
    _Atomic int stop;
    _Atomic long timeouts;
};

/* Timed waits that nobody notifies, with gaps: the shared slot's count
 * goes up and down (relaxed decrements) while the relays read it. */
static void *churn_waits(void *arg)
{
    struct churn *c = arg;
    uint32_t x = 0x9e3779b9u ^ (uint32_t)(uintptr_t)&x;
    if (x == 0)
        x = 1;
    while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
        lock(&c->m);
        int rc = ox_condvar_wait_timeout(c->cv, &c->m, (ox_nanos)(ox_test_rand(&x) % 40000));
        ox_mutex_unlock(&c->m);
        if (rc == OX_ETIMEDOUT)
            atomic_fetch_add_explicit(&c->timeouts, 1, memory_order_relaxed);
        uint32_t gap = ox_test_rand(&x) % 8;
        if (gap == 0)
            ox_thread_yield();
        else
            ox_test_spin_ns(gap * 500);
    }
    return NULL;
}

static void *churn_waits_task(void *arg)
{
    struct churn *c = arg;
    while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
        lock(&c->m);
        int rc = ox_condvar_wait_timeout(c->cv, &c->m, OX_MICROS(20));
        ox_mutex_unlock(&c->m);
        if (rc == OX_ETIMEDOUT)
            atomic_fetch_add_explicit(&c->timeouts, 1, memory_order_relaxed);
        ox_task_yield();
    }
    return NULL;
}

/* Picks SHARED condvars of the pool whose words share a slot. */
static void pick_shared(ox_condvar *out[SHARED])
{
    unsigned want = slot_of(cv_word(&pool[0]));
    int n = 0;
    for (int i = 0; i < POOL && n < SHARED; i++)
        if (slot_of(cv_word(&pool[i])) == want)
            out[n++] = &pool[i];
    CHECK_EQ(n, SHARED);
}

static struct {
    ox_mutex m;
    ox_condvar *cv;
    int go;
} sleeper;

static void *sleep_until_go(void *arg)
{
    (void)arg;
    lock(&sleeper.m);
    while (!sleeper.go)
        (void)!ox_condvar_wait(sleeper.cv, &sleeper.m);
    ox_mutex_unlock(&sleeper.m);
    return NULL;
}

OX_TEST_OPTS(break36_relays_on_condvars_sharing_a_slot_with_timed_churn, .timeout_s = 60)
{
    ox_condvar *cv[SHARED];
    pick_shared(cv);
    /* The slot is the library's: a thread asleep on one is seen through
     * another. */
    memset(&sleeper, 0, sizeof sleeper);
    sleeper.cv = cv[4];
    ox_join_handle sh = ox_test_spawn_named("sleeper", sleep_until_go, NULL);
    ox_test_wait_blocked_on(cv[4], 1);
    for (int i = 0; i < 4; i++)
        CHECK(ox__park_may_have_waiters(cv_word(cv[i])));
    lock(&sleeper.m);
    sleeper.go = 1;
    ox_mutex_unlock(&sleeper.m);
    ox_condvar_notify_one(cv[4]);
    ox_test_join(&sh);
    CHECK(!ox__park_may_have_waiters(cv_word(cv[0])));

    ox_runtime *rt = ox_test_runtime(2);
    static struct relay r[3];
    static struct churn c;
    memset(r, 0, sizeof r);
    memset(&c, 0, sizeof c);
    c.cv = cv[3];
    for (int i = 0; i < 3; i++) {
        r[i].m = &r[i].own;
        r[i].cv = cv[i];
        r[i].handoffs = ox_test_scaled(12000);
    }
    struct relay_side sides[3][2];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++)
            sides[i][k] = (struct relay_side){&r[i], k};
    ox_join_handle churners[2] = {ox_test_spawn_named("churn 0", churn_waits, &c),
                                  ox_test_spawn_named("churn 1", churn_waits, &c)};
    ox_task_handle churn_task = ox_test_spawn_on(rt, churn_waits_task, &c);
    /* Relay 0: two threads. Relay 1: a task and a thread. Relay 2: two
     * tasks. */
    ox_join_handle t0[2] = {ox_test_spawn_named("relay 0.0", relay_turns, &sides[0][0]),
                            ox_test_spawn_named("relay 0.1", relay_turns, &sides[0][1])};
    ox_task_handle k1 = ox_test_spawn_on(rt, relay_turns, &sides[1][0]);
    ox_join_handle t1 = ox_test_spawn_named("relay 1.1", relay_turns, &sides[1][1]);
    ox_task_handle k2[2] = {ox_test_spawn_on(rt, relay_turns, &sides[2][0]),
                            ox_test_spawn_on(rt, relay_turns, &sides[2][1])};
    ox_test_join(&t0[0]);
    ox_test_join(&t0[1]);
    CHECK_EQ(ox_task_join(&k1, NULL, NULL), 0);
    ox_test_join(&t1);
    CHECK_EQ(ox_task_join(&k2[0], NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&k2[1], NULL, NULL), 0);
    atomic_store(&c.stop, 1);
    ox_test_join(&churners[0]);
    ox_test_join(&churners[1]);
    CHECK_EQ(ox_task_join(&churn_task, NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(r[i].turn, 0);
    CHECK(atomic_load(&c.timeouts) > 0);
    /* Everybody left: the shared count is back to nothing. */
    CHECK(!ox__park_may_have_waiters(cv_word(cv[0])));
}

/* ---- aborted tasks in condvar waits ---- */

struct abort_round {
    ox_mutex m;
    ox_condvar cv;
    int flag;
    _Atomic int arrived;
};

static struct abort_round ar;

static void *wait_flag_task(void *arg)
{
    intptr_t kind = (intptr_t)arg;
    lock(&ar.m);
    atomic_fetch_add(&ar.arrived, 1);
    int rc = 0;
    while (!ar.flag && rc != OX_ECANCELED) {
        if (kind == 0)
            rc = ox_condvar_wait(&ar.cv, &ar.m);
        else if (kind == 1)
            rc = ox_condvar_wait_timeout(&ar.cv, &ar.m, OX_SECS(600));
        else
            rc = ox_condvar_wait_deadline(&ar.cv, &ar.m, ox_instant_after(OX_MICROS(30)));
    }
    ox_mutex_unlock(&ar.m);
    return (void *)(intptr_t)rc;
}

static void *wait_flag_thread(void *arg)
{
    (void)arg;
    lock(&ar.m);
    atomic_fetch_add(&ar.arrived, 1);
    while (!ar.flag)
        (void)!ox_condvar_wait(&ar.cv, &ar.m);
    ox_mutex_unlock(&ar.m);
    return NULL;
}

/* Each round: two tasks (untimed, long-timed or short-deadline waits) and
 * a thread wait for a flag; the flag's notify (one or all) and the
 * tasks' aborts race, in a random order and spacing. The thread must be
 * woken; each task returns 0 or OX_ECANCELED. The count is checked empty
 * between rounds. */
static void abort_rounds(size_t workers)
{
    ox_runtime *rt = ox_test_runtime(workers);
    uint32_t x = 12345u + (uint32_t)workers;
    ox_test_budget b = ox_test_budget_start(30, ox_test_scaled(1500));
    long cancelled = 0;
    long r;
    for (r = 0; ox_test_budget_more(&b, r); r++) {
        memset(&ar, 0, sizeof ar);
        ox_task_handle t[2] = {ox_test_spawn_on(rt, wait_flag_task, (void *)(intptr_t)(r % 3)),
                               ox_test_spawn_on(rt, wait_flag_task, (void *)(intptr_t)0)};
        ox_join_handle h = ox_thread_spawn(wait_flag_thread, NULL);
        while (atomic_load(&ar.arrived) < 3)
            ox_thread_yield();
        uint32_t how = ox_test_rand(&x);
        ox_test_spin_ns((int64_t)(how % 64) * 250);
        bool abort_first = how & 0x100;
        if (abort_first) {
            ox_task_abort(&t[0]);
            ox_task_abort(&t[1]);
        }
        lock(&ar.m);
        ar.flag = 1;
        ox_mutex_unlock(&ar.m);
        /* With the flag set, notify_all is the only correct notify for
         * three waiters; notify_one first (wakes one), then all. */
        if (how & 0x200)
            ox_condvar_notify_one(&ar.cv);
        ox_condvar_notify_all(&ar.cv);
        if (!abort_first) {
            ox_task_abort(&t[0]);
            ox_task_abort(&t[1]);
        }
        for (int i = 0; i < 2; i++) {
            void *res = NULL;
            int jrc = ox_task_join(&t[i], &res, NULL);
            CHECK(jrc == 0 || jrc == OX_ECANCELED);
            if (jrc == 0) {
                int rc = (int)(intptr_t)res;
                CHECK(rc == 0 || rc == OX_ECANCELED || rc == OX_ETIMEDOUT);
                cancelled += rc == OX_ECANCELED;
            }
        }
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        CHECK(!ox__park_may_have_waiters(cv_word(&ar.cv)));
    }
    /* The last shape: tasks asleep in the wait when the runtime shuts
     * down (a group cancel), a thread asleep beside them. */
    memset(&ar, 0, sizeof ar);
    ox_task_handle t[2] = {ox_test_spawn_on(rt, wait_flag_task, (void *)(intptr_t)0),
                           ox_test_spawn_on(rt, wait_flag_task, (void *)(intptr_t)1)};
    ox_join_handle h = ox_thread_spawn(wait_flag_thread, NULL);
    /* The blocked list names tasks too: two tasks and the thread. */
    ox_test_wait_tasks_blocked_at("condvar", 2);
    ox_test_wait_blocked_on(&ar.cv, 3);
    CHECK(ox__park_may_have_waiters(cv_word(&ar.cv)));
    ox_runtime_shutdown(rt);
    for (int i = 0; i < 2; i++) {
        void *res = NULL;
        CHECK_EQ(ox_task_join(&t[i], &res, NULL), 0);
        CHECK_EQ((int)(intptr_t)res, OX_ECANCELED);
    }
    /* The thread still sleeps, counted: one notify reaches it. */
    CHECK(ox__park_may_have_waiters(cv_word(&ar.cv)));
    lock(&ar.m);
    ar.flag = 1;
    ox_mutex_unlock(&ar.m);
    ox_condvar_notify_one(&ar.cv);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK(!ox__park_may_have_waiters(cv_word(&ar.cv)));
    CHECK(r >= 30);
    (void)cancelled;
}

OX_TEST_OPTS(break36_aborted_condvar_tasks_one_worker, .timeout_s = 60)
{
    abort_rounds(1);
}

OX_TEST_OPTS(break36_aborted_condvar_tasks_two_workers, .timeout_s = 60)
{
    abort_rounds(2);
}

/* ---- permits: notify_all requeues, then notify_one hand-offs ---- */

enum { CONSUMERS = 5 };

static struct permits {
    ox_mutex m;
    ox_condvar cv;
    long available; /* under m */
    long taken;     /* under m */
    long per_consumer;
    _Atomic int done;
} pm;

static void *take_permits(void *arg)
{
    (void)arg;
    for (long i = 0; i < pm.per_consumer; i++) {
        lock(&pm.m);
        while (pm.available == 0)
            (void)!ox_condvar_wait(&pm.cv, &pm.m);
        pm.available--;
        pm.taken++;
        ox_mutex_unlock(&pm.m);
    }
    atomic_fetch_add(&pm.done, 1);
    return NULL;
}

/* A semaphore on a condvar: each permit posted with a notify_one (inside
 * the lock or after it), or a batch posted with one notify_all, which
 * requeues the sleeping threads onto the mutex (and wakes the tasks);
 * batches are followed at once by single posts, while the requeued still
 * sleep on the mutex, counted in the condvar's slot. Every permit must be
 * taken: a lost hand-off leaves a consumer asleep with a permit free. */
OX_TEST_OPTS(break36_permits_notify_all_requeue_then_notify_one, .timeout_s = 60)
{
    memset(&pm, 0, sizeof pm);
    pm.per_consumer = ox_test_scaled(8000);
    ox_runtime *rt = ox_test_runtime(2);
    ox_join_handle th[3];
    ox_task_handle tk[2];
    for (int i = 0; i < 3; i++)
        th[i] = ox_test_spawn_named("consumer", take_permits, NULL);
    for (int i = 0; i < 2; i++)
        tk[i] = ox_test_spawn_on(rt, take_permits, NULL);
    long total = pm.per_consumer * CONSUMERS;
    long posted = 0;
    uint32_t x = 777;
    while (posted < total) {
        uint32_t how = ox_test_rand(&x);
        long batch = 1 + (long)(how % CONSUMERS);
        if (batch > total - posted)
            batch = total - posted;
        if (how & 0x100) {
            lock(&pm.m);
            pm.available += batch;
            ox_condvar_notify_all(&pm.cv); /* inside: the requeued sleep on the mutex */
            ox_mutex_unlock(&pm.m);
            posted += batch;
            batch = (how & 0x200) && posted < total ? 1 : 0;
        }
        for (long k = 0; k < batch; k++) {
            lock(&pm.m);
            pm.available++;
            if (how & 0x400)
                ox_condvar_notify_one(&pm.cv);
            ox_mutex_unlock(&pm.m);
            if (!(how & 0x400))
                ox_condvar_notify_one(&pm.cv);
            posted++;
        }
        if ((how & 0x3800) == 0)
            ox_thread_yield();
    }
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_SECS(20));
    while (atomic_load(&pm.done) < CONSUMERS) {
        if (ox_instant_now().ns > give_up) {
            lock(&pm.m);
            long avail = pm.available, taken = pm.taken;
            ox_mutex_unlock(&pm.m);
            ox_test_fail(__FILE__, __LINE__,
                         "%d of %d consumers done; %ld permits free, %ld of %ld taken",
                         atomic_load(&pm.done), CONSUMERS, avail, taken, total);
        }
        ox_thread_sleep(OX_MILLIS(1));
    }
    for (int i = 0; i < 3; i++)
        ox_test_join(&th[i]);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(ox_task_join(&tk[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    CHECK_EQ(pm.available, 0);
    CHECK_EQ(pm.taken, total);
    CHECK(!ox__park_may_have_waiters(cv_word(&pm.cv)));
}

/* ---- a ring of timed waits on a one-worker runtime ---- */

static struct ring {
    ox_mutex m;
    ox_condvar cv;
    int turn; /* under m */
    long rounds;
    _Atomic long timeouts;
} rg;

/* Party me waits for its turn with timed waits (short and random, or a
 * deadline far off), passes it on and notifies everyone (one notify_one
 * would be lost on the wrong party). A party that misses its wake still
 * polls on its timeouts; party 0 never times out, so a lost wake there
 * hangs. */
static void *ring_party(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint32_t x = 99u + (uint32_t)me;
    for (long i = 0; i < rg.rounds; i++) {
        lock(&rg.m);
        while (rg.turn != me) {
            ox_nanos t = me == 0 ? OX_SECS(600) : (ox_nanos)(ox_test_rand(&x) % 30000);
            if (ox_condvar_wait_timeout(&rg.cv, &rg.m, t) == OX_ETIMEDOUT)
                atomic_fetch_add_explicit(&rg.timeouts, 1, memory_order_relaxed);
        }
        rg.turn = (me + 1) % 3;
        bool inside = ox_test_rand(&x) & 1;
        if (inside)
            ox_condvar_notify_all(&rg.cv);
        ox_mutex_unlock(&rg.m);
        if (!inside)
            ox_condvar_notify_all(&rg.cv);
    }
    return NULL;
}

static void run_ring(bool thread_party0)
{
    memset(&rg, 0, sizeof rg);
    rg.rounds = ox_test_scaled(8000);
    ox_runtime *rt = ox_test_runtime(1);
    ox_task_handle t1 = ox_test_spawn_on(rt, ring_party, (void *)(intptr_t)1);
    ox_task_handle t2 = ox_test_spawn_on(rt, ring_party, (void *)(intptr_t)2);
    if (thread_party0) {
        ring_party((void *)(intptr_t)0);
    } else {
        ox_task_handle t0 = ox_test_spawn_on(rt, ring_party, (void *)(intptr_t)0);
        CHECK_EQ(ox_task_join(&t0, NULL, NULL), 0);
    }
    CHECK_EQ(ox_task_join(&t1, NULL, NULL), 0);
    CHECK_EQ(ox_task_join(&t2, NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    CHECK_EQ(rg.turn, 0);
    CHECK(!ox__park_may_have_waiters(cv_word(&rg.cv)));
}

OX_TEST_OPTS(break36_ring_of_timed_waits_tasks_one_worker, .timeout_s = 60)
{
    run_ring(false);
}

OX_TEST_OPTS(break36_ring_of_timed_waits_thread_and_tasks_one_worker, .timeout_s = 60)
{
    run_ring(true);
}

/* ---- rwlock writers timing out while readers come and go ---- */

static ox_rwlock rw_pool[1024];

static struct rw {
    ox_rwlock *l;
    _Atomic int readers_in; /* readers inside */
    _Atomic int writer_in;  /* writers inside */
    _Atomic long violations;
    _Atomic int stop;
    _Atomic long timeouts, timed_wins, reads;
    long untimed_target;
    long untimed_done; /* under the write lock */
    _Atomic int untimed_finished;
} rw;

static void yield_any(void)
{
    if (ox_task_current() != NULL)
        ox_task_yield();
    else
        ox_thread_yield();
}

static void *rw_reader(void *arg)
{
    uint32_t x = 31u + (uint32_t)(intptr_t)arg;
    while (!atomic_load_explicit(&rw.stop, memory_order_relaxed)) {
        int rc;
        uint32_t how = ox_test_rand(&x);
        if (how & 1)
            rc = ox_rwlock_read_timeout(rw.l, (ox_nanos)(how % 50000));
        else
            rc = ox_rwlock_read(rw.l);
        if (rc == OX_ETIMEDOUT)
            continue;
        atomic_fetch_add(&rw.readers_in, 1);
        if (atomic_load(&rw.writer_in) != 0)
            atomic_fetch_add(&rw.violations, 1);
        ox_test_spin_ns((int64_t)((how >> 8) % 16) * 200);
        atomic_fetch_sub(&rw.readers_in, 1);
        ox_rwlock_read_unlock(rw.l);
        atomic_fetch_add_explicit(&rw.reads, 1, memory_order_relaxed);
        if ((how & 0x7000) == 0)
            yield_any();
    }
    return NULL;
}

static void write_inside(void)
{
    if (atomic_fetch_add(&rw.writer_in, 1) != 0 || atomic_load(&rw.readers_in) != 0)
        atomic_fetch_add(&rw.violations, 1);
    ox_test_spin_ns(300);
    atomic_fetch_sub(&rw.writer_in, 1);
}

static void *rw_timed_writer(void *arg)
{
    uint32_t x = 71u + (uint32_t)(intptr_t)arg;
    while (!atomic_load_explicit(&rw.stop, memory_order_relaxed)) {
        int rc = ox_rwlock_write_timeout(rw.l, (ox_nanos)(ox_test_rand(&x) % 60000));
        if (rc == OX_ETIMEDOUT) {
            atomic_fetch_add_explicit(&rw.timeouts, 1, memory_order_relaxed);
            continue;
        }
        write_inside();
        ox_rwlock_write_unlock(rw.l);
        atomic_fetch_add_explicit(&rw.timed_wins, 1, memory_order_relaxed);
    }
    return NULL;
}

/* Untimed: a lost writer wake strands it. */
static void *rw_untimed_writer(void *arg)
{
    (void)arg;
    for (;;) {
        (void)!ox_rwlock_write(rw.l);
        write_inside();
        bool last = ++rw.untimed_done >= rw.untimed_target;
        ox_rwlock_write_unlock(rw.l);
        if (last) {
            atomic_fetch_add(&rw.untimed_finished, 1);
            return NULL;
        }
        yield_any();
    }
}

/* Readers (timed and untimed) come and go while a timed writer gives up
 * over and over (write_gave_up wakes a writer, or finds none counted);
 * two untimed writers (a thread and a task) must each get through, and no
 * reader may be left behind a WRITERS_WAITING with no writer. tasks: the
 * readers and the timed writer are tasks too. shared: the lock's
 * writer_notify shares its count slot with a condvar whose timed waits
 * come and go. */
static void run_rw(size_t workers, bool tasks, bool shared)
{
    memset(&rw, 0, sizeof rw);
    rw.l = &rw_pool[0];
    static struct churn c;
    memset(&c, 0, sizeof c);
    ox_join_handle churner = {0};
    if (shared) {
        unsigned want = slot_of(cv_word(&pool[0]));
        for (int i = 0; i < 1024; i++)
            if (slot_of(&rw_pool[i].writer_notify) == want) {
                rw.l = &rw_pool[i];
                break;
            }
        CHECK_EQ(slot_of(&rw.l->writer_notify), want);
        c.cv = &pool[0];
        churner = ox_test_spawn_named("churn", churn_waits, &c);
    }
    rw.untimed_target = ox_test_scaled(5000);
    ox_runtime *rt = ox_test_runtime(workers);
    ox_join_handle readers[2];
    ox_task_handle reader_tasks[2];
    ox_join_handle timed = {0};
    ox_task_handle timed_tasks[2];
    for (int i = 0; i < 2; i++) {
        if (tasks)
            reader_tasks[i] = ox_test_spawn_on(rt, rw_reader, (void *)(intptr_t)i);
        else
            readers[i] = ox_test_spawn_named("reader", rw_reader, (void *)(intptr_t)i);
    }
    if (!tasks)
        timed = ox_test_spawn_named("timed writer", rw_timed_writer, (void *)0);
    timed_tasks[0] = ox_test_spawn_on(rt, rw_timed_writer, (void *)1);
    if (tasks)
        timed_tasks[1] = ox_test_spawn_on(rt, rw_timed_writer, (void *)2);
    ox_task_handle untimed_task = ox_test_spawn_on(rt, rw_untimed_writer, NULL);
    ox_join_handle untimed = ox_test_spawn_named("untimed writer", rw_untimed_writer, NULL);
    int64_t give_up = ox_instant_now().ns + ox_test_bound(OX_SECS(20));
    while (atomic_load(&rw.untimed_finished) < 2) {
        if (ox_instant_now().ns > give_up) {
            uint32_t s = atomic_load_explicit(&rw.l->state, memory_order_relaxed);
            uint32_t n = atomic_load_explicit(&rw.l->writer_notify, memory_order_relaxed);
            ox_test_fail(__FILE__, __LINE__,
                         "untimed writers stuck: %ld of %ld; state 0x%x notify %u, count %d",
                         rw.untimed_done, rw.untimed_target, (unsigned)s, (unsigned)n,
                         (int)ox__park_may_have_waiters(&rw.l->writer_notify));
        }
        ox_thread_sleep(OX_MILLIS(1));
    }
    CHECK_EQ(ox_task_join(&untimed_task, NULL, NULL), 0);
    ox_test_join(&untimed);
    atomic_store(&rw.stop, 1);
    for (int i = 0; i < 2; i++) {
        if (tasks)
            CHECK_EQ(ox_task_join(&reader_tasks[i], NULL, NULL), 0);
        else
            ox_test_join(&readers[i]);
    }
    if (!tasks)
        ox_test_join(&timed);
    CHECK_EQ(ox_task_join(&timed_tasks[0], NULL, NULL), 0);
    if (tasks)
        CHECK_EQ(ox_task_join(&timed_tasks[1], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    if (shared) {
        atomic_store(&c.stop, 1);
        ox_test_join(&churner);
    }
    CHECK_EQ(atomic_load(&rw.violations), 0);
    CHECK(rw.untimed_done >= rw.untimed_target);
    CHECK(atomic_load(&rw.reads) > 0);
    /* Nobody holds or waits: the lock is free of every bit but the
     * dispersal's, and no writer is counted. */
    uint32_t s = atomic_load(&rw.l->state);
    CHECK_EQ(s & ~(uint32_t)OX__RW_DISPERSED, 0);
    CHECK(!ox__park_may_have_waiters(&rw.l->writer_notify));
    CHECK_EQ(ox_rwlock_try_write(rw.l), 0);
    ox_rwlock_write_unlock(rw.l);
}

OX_TEST_OPTS(break36_rwlock_writers_time_out_while_readers_churn, .timeout_s = 60)
{
    run_rw(1, false, false);
}

OX_TEST_OPTS(break36_rwlock_writers_time_out_tasks_two_workers, .timeout_s = 60)
{
    run_rw(2, true, false);
}

OX_TEST_OPTS(break36_rwlock_writers_time_out_slot_shared_with_condvar, .timeout_s = 60)
{
    run_rw(2, false, true);
}

/* ---- fork: the child's counts keep the parent's sleepers ---- */

#ifndef OX_TEST_BUILT_WITH_TSAN
static struct relay child_relay;
#endif
static ox_condvar fork_cv[2];

OX_TEST_OPTS(break36_forked_child_relays_on_a_condvar, .timeout_s = 60)
{
    if (ox_test_forks_hang_here())
        return;
    /* A sleeper in the parent, counted in its condvar's slot at the fork;
     * the child relays on that condvar and on another (count 0). */
    memset(&sleeper, 0, sizeof sleeper);
    sleeper.cv = &fork_cv[0];
    ox_join_handle sh = ox_test_spawn_named("sleeper", sleep_until_go, NULL);
    ox_test_wait_blocked_on(&fork_cv[0], 1);
    for (int round = 0; round < 2; round++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            /* The parent's sleeper is not here, but its count is. */
            if (!ox__park_may_have_waiters(cv_word(&fork_cv[0])))
                _exit(3);
#ifndef OX_TEST_BUILT_WITH_TSAN
            /* The child's own waiters, on the sleeper's condvar, then on
             * another. */
            memset(&child_relay, 0, sizeof child_relay);
            /* fork_cv[0] is tied to the sleeper's mutex. */
            child_relay.m = round == 0 ? &sleeper.m : &child_relay.own;
            child_relay.cv = &fork_cv[round];
            child_relay.handoffs = ox_test_scaled(3000);
            struct relay_side sides[2] = {{&child_relay, 0}, {&child_relay, 1}};
            ox_join_handle h = ox_thread_spawn(relay_turns, &sides[1]);
            relay_turns(&sides[0]);
            if (ox_thread_join(&h, NULL, NULL) != 0 || child_relay.turn != 0)
                _exit(4);
#else
            /* TSan's runtime starts no thread after a threaded fork: only
             * the notifies, with nobody to wake. */
            ox_condvar_notify_one(&fork_cv[0]);
            ox_condvar_notify_all(&fork_cv[0]);
#endif
            _exit(0);
        }
        int status = 0;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
    }
    lock(&sleeper.m);
    sleeper.go = 1;
    ox_mutex_unlock(&sleeper.m);
    ox_condvar_notify_all(&fork_cv[0]);
    ox_test_join(&sh);
    CHECK(!ox__park_may_have_waiters(cv_word(&fork_cv[0])));
}
