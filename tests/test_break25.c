/* Reproducers from trying to break 3648f33 and 4579bab (wait_spin.c: an
 * adaptive spin in time before a condvar or channel wait sleeps). */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "wait_spin_test.h" /* white box: the spin's budget and polls */

#include <stdatomic.h>
#include <stdint.h>

/* ---- a deadline long past: no spin, and no overflow ----
 * ox_instant is a plain int64 of CLOCK_MONOTONIC nanoseconds, and any
 * instant is a valid deadline (the futex and poll layers compare, or guard
 * deadline_ns <= 0, before they subtract). ox__wait_spin_begin computed
 * deadline - now, which overflows for a deadline far enough in the past
 * (UBSan: signed integer overflow); wrapped, the time left looked huge and
 * the wait spun its whole budget for a deadline that had long passed. */
static void *far_past_deadline_does_not_spin(void *arg)
{
    (void)arg;
    grow_the_budget();
    ox__wait_spin s;
    ox__wait_spin_begin(&s, (ox_instant){INT64_MIN});
    CHECK_EQ(s.budget_ns, 0);
    CHECK(!ox__wait_spin_poll(&s));
    ox__wait_spin_end(&s, false);
    grow_the_budget();
    ox__wait_spin_begin(&s, (ox_instant){INT64_MIN + 1});
    CHECK_EQ(s.budget_ns, 0);
    ox__wait_spin_end(&s, false);
    return NULL;
}

OX_TEST(break25_a_deadline_long_past_gets_no_spin_and_no_overflow)
{
    ox_test_run_named("break25", far_past_deadline_does_not_spin, NULL);
}

/* End to end: a condvar wait with such a deadline times out. */
static void *condvar_far_past_deadline(void *arg)
{
    (void)arg;
    static ox_mutex m = OX_MUTEX_INIT;
    static ox_condvar cv = OX_CONDVAR_INIT;
    grow_the_budget();
    (void)!ox_mutex_lock(&m);
    CHECK_EQ(ox_condvar_wait_deadline(&cv, &m, (ox_instant){INT64_MIN}), OX_ETIMEDOUT);
    CHECK_EQ(ox_condvar_wait_deadline(&cv, &m, (ox_instant){0}), OX_ETIMEDOUT);
    ox_mutex_unlock(&m);
    return NULL;
}

OX_TEST(break25_a_condvar_wait_with_a_deadline_long_past_times_out)
{
    ox_test_run_named("break25", condvar_far_past_deadline, NULL);
}

/* ---- the spin never runs past the wait's deadline ----
 * The budget was clamped to the time left at ox__wait_spin_begin, but
 * measured from the spin's first clock read, 16 polls later. A thread
 * preempted in between (here: a sleep stands for the preemption) then spun
 * the whole time left again after it ran on, past the deadline, by up to
 * the whole budget. Once the deadline and the budget have passed, the spin
 * must end at its next clock read: within 16 polls. (The deadline is 1 ms
 * away, far beyond the budget: under qemu a shorter one was sometimes
 * gone before begin read the clock.) */
static void *spin_stops_at_deadline_after_preemption(void *arg)
{
    (void)arg;
    int spun = 0; /* rounds with a budget: under qemu the time may be gone */
    for (int round = 0; round < 3; round++) {
        grow_the_budget();
        ox__wait_spin s;
        ox_instant deadline = ox_instant_after(OX_MILLIS(1));
        ox__wait_spin_begin(&s, deadline);
        spun += s.budget_ns > 0;
        /* Preempted right after begin, past the deadline. */
        while (ox_instant_now().ns < deadline.ns + OX_MICROS(10))
            ox_thread_sleep(OX_MICROS(50));
        long polls = 0;
        while (ox__wait_spin_poll(&s))
            CHECK(++polls < 100000000L);
        CHECK(polls <= 16);
        ox__wait_spin_end(&s, false);
    }
    CHECK(spun > 0);
    return NULL;
}

OX_TEST(break25_the_spin_ends_at_its_deadline_even_after_a_preemption)
{
    ox_test_run_named("break25", spin_stops_at_deadline_after_preemption, NULL);
}

/* ---- stress: a condvar semaphore, threads and tasks, one and all ----
 * Producers add a token and notify one (now and then all: the condvar
 * then requeues, and sleepers re-take the mutex as contended while
 * spinners re-take it plainly). Consumers, three threads (some with timed
 * waits) and two tasks on one worker, each take tokens until all are
 * taken. A notify lost between the spinning and the sleeping paths leaves a
 * consumer asleep with tokens left: the runner's timeout. Producers vary
 * their pace so that consumers' spins are answered, or not. */
enum { SEM_CONSUMERS = 5, SEM_PRODUCERS = 2 };

struct sem {
    ox_mutex m;
    ox_condvar cv;
    long tokens, left; /* left: tokens not yet taken (all produced or to come) */
    long taken[SEM_CONSUMERS];
    long per_producer;
};

struct consumer {
    struct sem *s;
    int id;
    bool timed;
};

static void *consume(void *arg)
{
    struct consumer *c = arg;
    struct sem *s = c->s;
    (void)!ox_mutex_lock(&s->m);
    for (;;) {
        while (s->tokens == 0 && s->left > 0) {
            int rc = c->timed ? ox_condvar_wait_timeout(&s->cv, &s->m, OX_MICROS(30 + c->id * 70))
                              : ox_condvar_wait(&s->cv, &s->m);
            CHECK(rc == 0 || rc == OX_ETIMEDOUT);
        }
        if (s->left == 0)
            break;
        s->tokens--;
        s->left--;
        s->taken[c->id]++;
        if (s->left == 0)
            ox_condvar_notify_all(&s->cv); /* the others stop */
    }
    ox_mutex_unlock(&s->m);
    return NULL;
}

static void *produce(void *arg)
{
    struct sem *s = arg;
    uint32_t x = 0x9e3779b9u ^ (uint32_t)(uintptr_t)&x;
    if (x == 0)
        x = 1;
    for (long i = 0; i < s->per_producer; i++) {
        uint32_t r = ox_test_rand(&x);
        if (r % 4 == 0)
            ox_test_spin_ns((int64_t)(r >> 8) % 20000);
        else if (r % 16 == 1)
            ox_thread_sleep(OX_MICROS((r >> 8) % 200));
        (void)!ox_mutex_lock(&s->m);
        s->tokens++;
        bool all = (r >> 4) % 8 == 0;
        if (r & 2)
            ox_mutex_unlock(&s->m);
        if (all)
            ox_condvar_notify_all(&s->cv);
        else
            ox_condvar_notify_one(&s->cv);
        if (!(r & 2))
            ox_mutex_unlock(&s->m);
    }
    return NULL;
}

OX_TEST(break25_condvar_semaphore_threads_and_tasks_lose_no_notify)
{
    static struct sem s = {.m = OX_MUTEX_INIT, .cv = OX_CONDVAR_INIT};
    s.per_producer = ox_test_scaled(20000);
    s.tokens = 0;
    s.left = s.per_producer * SEM_PRODUCERS;
    for (int i = 0; i < SEM_CONSUMERS; i++)
        s.taken[i] = 0;
    ox_runtime *rt = ox_test_runtime(1);
    static struct consumer cs[SEM_CONSUMERS];
    ox_join_handle th[3], ph[SEM_PRODUCERS];
    ox_task_handle tk[2];
    for (int i = 0; i < SEM_CONSUMERS; i++)
        cs[i] = (struct consumer){&s, i, i == 1 || i == 3};
    for (int i = 0; i < 3; i++)
        th[i] = ox_thread_spawn(consume, &cs[i]);
    for (int i = 0; i < 2; i++)
        tk[i] = ox_test_spawn_on(rt, consume, &cs[3 + i]);
    for (int i = 0; i < SEM_PRODUCERS; i++)
        ph[i] = ox_thread_spawn(produce, &s);
    for (int i = 0; i < SEM_PRODUCERS; i++)
        CHECK_EQ(ox_thread_join(&ph[i], NULL, NULL), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(ox_thread_join(&th[i], NULL, NULL), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(ox_task_join(&tk[i], NULL, NULL), 0);
    long sum = 0;
    for (int i = 0; i < SEM_CONSUMERS; i++)
        sum += s.taken[i];
    CHECK_EQ(sum, s.per_producer * SEM_PRODUCERS);
    CHECK_EQ(s.tokens, 0);
    ox_runtime_shutdown(rt);
}

/* ---- stress: aborted tasks and spinning threads on one condvar ----
 * Tasks wait on a condvar for a flag that never comes and are aborted;
 * meanwhile two threads ping-pong on the same condvar and mutex with
 * notify_all (so their waits are answered while spinning, and the condvar
 * requeues). Every aborted task's wait ends with OX_ECANCELED, and the
 * threads finish their hand-offs. */
struct mixed {
    ox_mutex m;
    ox_condvar cv;
    long turn; /* whose hand-off: even, thread 0; odd, thread 1 */
    long rounds;
    bool never;
    _Atomic int cancelled, waiting;
};

struct side {
    struct mixed *x;
    long me;
};

static void *pingpong(void *arg)
{
    struct mixed *x = ((struct side *)arg)->x;
    long me = ((struct side *)arg)->me;
    (void)!ox_mutex_lock(&x->m);
    while (x->turn < x->rounds) {
        while (x->turn % 2 != me && x->turn < x->rounds)
            CHECK_EQ(ox_condvar_wait(&x->cv, &x->m), 0);
        if (x->turn >= x->rounds)
            break;
        x->turn++;
        ox_condvar_notify_all(&x->cv);
    }
    ox_mutex_unlock(&x->m);
    return NULL;
}

static void *wait_forever(void *arg)
{
    struct mixed *x = arg;
    (void)!ox_mutex_lock(&x->m);
    atomic_fetch_add(&x->waiting, 1);
    int rc = 0;
    while (!x->never && rc == 0)
        rc = ox_condvar_wait(&x->cv, &x->m);
    ox_mutex_unlock(&x->m);
    CHECK_EQ(rc, OX_ECANCELED);
    atomic_fetch_add(&x->cancelled, 1);
    return NULL;
}

OX_TEST(break25_aborted_tasks_and_spinning_threads_share_a_condvar)
{
    static struct mixed x = {.m = OX_MUTEX_INIT, .cv = OX_CONDVAR_INIT};
    x.rounds = ox_test_scaled(40000);
    ox_runtime *rt = ox_test_runtime(1);
    static struct side sides[2];
    ox_join_handle th[2];
    for (long i = 0; i < 2; i++) {
        sides[i] = (struct side){&x, i};
        th[i] = ox_thread_spawn(pingpong, &sides[i]);
    }
    enum { TASKS = 40 };
    for (int i = 0; i < TASKS; i++) {
        ox_task_handle h = ox_test_spawn_on(rt, wait_forever, &x);
        while (atomic_load(&x.waiting) <= i)
            ox_thread_sleep(OX_MICROS(20));
        ox_thread_sleep(OX_MICROS(i % 5 * 40));
        ox_task_abort(&h);
        CHECK_EQ(ox_task_join(&h, NULL, NULL), 0);
    }
    for (int i = 0; i < 2; i++)
        CHECK_EQ(ox_thread_join(&th[i], NULL, NULL), 0);
    CHECK_EQ(atomic_load(&x.cancelled), TASKS);
    CHECK_EQ(x.turn, x.rounds);
    ox_runtime_shutdown(rt);
}

/* ---- timed waits never end early, whatever the spin's budget ----
 * With the budget grown (answered waits) and a probe's 50 us now and then,
 * timed condvar and channel waits of 1-100 us that nobody answers: each
 * OX_ETIMEDOUT comes at or after its deadline. */
static void *timed_waits_not_early(void *arg)
{
    (void)arg;
    static ox_mutex m = OX_MUTEX_INIT;
    static ox_condvar cv = OX_CONDVAR_INIT;
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(int), 0, &tx, &rx), 0);
    uint32_t x = 12345;
    long n = ox_test_scaled(2000);
    for (long i = 0; i < n; i++) {
        if (i % 64 == 0)
            grow_the_budget();
        ox_nanos t = OX_MICROS(1 + ox_test_rand(&x) % 100);
        ox_instant deadline = ox_instant_after(t);
        (void)!ox_mutex_lock(&m);
        int rc = ox_condvar_wait_deadline(&cv, &m, deadline);
        ox_mutex_unlock(&m);
        CHECK(rc == 0 || rc == OX_ETIMEDOUT);
        if (rc == OX_ETIMEDOUT)
            CHECK(ox_instant_now().ns >= deadline.ns);
        int v;
        deadline = ox_instant_after(t);
        rc = ox_receiver_recv_deadline(rx, &v, deadline);
        CHECK_EQ(rc, OX_ETIMEDOUT);
        CHECK(ox_instant_now().ns >= deadline.ns);
    }
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
    return NULL;
}

OX_TEST(break25_timed_waits_never_time_out_before_their_deadline)
{
    ox_test_run_named("break25", timed_waits_not_early, NULL);
}

/* ---- stress: a rendezvous channel, thread and task senders with
 * timeouts, a thread receiver with timeouts ----
 * Every send that returned 0 is received exactly once, and none that timed
 * out is: the spin's claim and a timeout's abort must not both win. */
enum { RV_SENDERS = 4 };

struct rv {
    ox_sender *tx[RV_SENDERS];
    long per_sender;
    long sent[RV_SENDERS];
    _Atomic int done;
};

struct rv_arg {
    struct rv *r;
    int id;
};

static void *rv_send(void *arg)
{
    struct rv_arg *a = arg;
    struct rv *r = a->r;
    uint32_t x = 77u + (uint32_t)a->id;
    long k = 0;
    for (long i = 0; i < r->per_sender; i++) {
        uint64_t msg = (uint64_t)a->id << 32 | (uint64_t)k;
        int rc = ox_sender_send_timeout(r->tx[a->id], &msg, OX_MICROS(ox_test_rand(&x) % 80));
        CHECK(rc == 0 || rc == OX_ETIMEDOUT);
        if (rc == 0)
            k++;
    }
    r->sent[a->id] = k;
    ox_sender_drop(r->tx[a->id]);
    return NULL;
}

OX_TEST(break25_rendezvous_with_timeouts_threads_and_tasks_each_message_once)
{
    static struct rv r;
    static struct rv_arg args[RV_SENDERS];
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(uint64_t), 0, &tx, &rx), 0);
    r.per_sender = ox_test_scaled(5000);
    for (int i = 0; i < RV_SENDERS; i++) {
        r.tx[i] = ox_sender_clone(tx);
        r.sent[i] = 0;
        args[i] = (struct rv_arg){&r, i};
    }
    ox_sender_drop(tx);
    ox_runtime *rt = ox_test_runtime(1);
    ox_join_handle th[2];
    ox_task_handle tk[2];
    for (int i = 0; i < 2; i++) {
        th[i] = ox_thread_spawn(rv_send, &args[i]);
        tk[i] = ox_test_spawn_on(rt, rv_send, &args[2 + i]);
    }
    long next[RV_SENDERS] = {0};
    uint32_t x = 991;
    for (;;) {
        uint64_t msg;
        int rc = ox_receiver_recv_timeout(rx, &msg, OX_MICROS(ox_test_rand(&x) % 60));
        if (rc == OX_ETIMEDOUT)
            continue;
        if (rc != 0)
            break;
        int id = (int)(msg >> 32);
        CHECK(id >= 0 && id < RV_SENDERS);
        CHECK_EQ((long)(msg & 0xffffffffu), next[id]);
        next[id]++;
    }
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(ox_thread_join(&th[i], NULL, NULL), 0);
        CHECK_EQ(ox_task_join(&tk[i], NULL, NULL), 0);
    }
    for (int i = 0; i < RV_SENDERS; i++)
        CHECK_EQ(next[i], r.sent[i]);
    ox_receiver_drop(rx);
    ox_runtime_shutdown(rt);
}
