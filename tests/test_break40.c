/* break40: attacks on the rwlock unlocks' one-look record check
 * (ox__held_drop_if_top, 6f2a28b/5cab335) and the release's reordered
 * test (waiting bits first, then "free").
 *
 * The record is checked entry by entry after every step of a sequence of
 * nested, non-LIFO and mixed-mode unlocks (same lock twice for reading,
 * read of one lock with write of another, a mutex or a cleanup on top, a
 * downgraded entry); a later panic must then release exactly the locks
 * still held, poisoning the write-held ones and not the read-held ones.
 * Misuse must still abort with its message. Readers and writers churn on
 * two locks released out of order (a lost wake stops the progress count and
 * the watchdog fails by name). Panics inside ox_catch_unwind release
 * several read locks while writers are parked on them. Tasks hold guards
 * across yields, sleeps and blocking waits, migrate, and unlock out of
 * order; their record must stay exact.
 */
#define _GNU_SOURCE
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include "panic/unwind.h"       /* white box: the live held-lock record */
#include "task/task_internal.h" /* white box: the worker a task runs on */

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the record, entry by entry ---- */

typedef struct want {
    const void *object;
    const ox__lock_ops *ops; /* NULL: any read mode (counted or slot) */
} want;

static bool is_read(const ox__lock_ops *ops)
{
    return ops == &ox__rwlock_read_ops || ops == &ox__rwlock_slot_read_ops ||
           ops == &ox__rwlock_own_read_ops;
}

/* How many entries the calling thread's (or task's) record holds. */
static uint32_t record_len(void)
{
    uint32_t n;
    (void)ox__held_entries(&n);
    return n;
}

/* The record must be exactly ws[0..n) (oldest first). */
static void check_record_at(const char *file, int line, const want *ws, uint32_t n)
{
    uint32_t have;
    const ox__unwind_entry *e = ox__held_entries(&have);
    if (have != n)
        ox_test_fail(file, line, "record has %u entries, want %u", have, n);
    for (uint32_t i = 0; i < n; i++) {
        if (e[i].object != ws[i].object)
            ox_test_fail(file, line, "entry %u: object %p, want %p", i, e[i].object, ws[i].object);
        if (ws[i].ops == NULL ? !is_read(e[i].u.lock_ops) : e[i].u.lock_ops != ws[i].ops)
            ox_test_fail(file, line, "entry %u (%p): wrong mode", i, ws[i].object);
    }
}
#define CHECK_RECORD(...)                                                                          \
    do {                                                                                           \
        const want ws_[] = {__VA_ARGS__};                                                          \
        check_record_at(__FILE__, __LINE__, ws_, sizeof ws_ / sizeof ws_[0]);                      \
    } while (0)
#define CHECK_RECORD_EMPTY() check_record_at(__FILE__, __LINE__, NULL, 0)

#define R(l)                                                                                       \
    {                                                                                              \
        (l), NULL                                                                                  \
    }
#define W(l)                                                                                       \
    {                                                                                              \
        (l), &ox__rwlock_write_ops                                                                 \
    }
#define M(m)                                                                                       \
    {                                                                                              \
        (m), &ox__mutex_ops                                                                        \
    }

static void rd(ox_rwlock *l)
{
    CHECK_EQ(ox_rwlock_read(l), 0);
}
static void wr(ox_rwlock *l)
{
    CHECK_EQ(ox_rwlock_write(l), 0);
}
static void lk(ox_mutex *m)
{
    CHECK_EQ(ox_mutex_lock(m), 0);
}

/* l is free: a writer gets in at once, and it is not poisoned. */
static void check_free(ox_rwlock *l)
{
    CHECK_EQ(ox_rwlock_try_write(l), 0);
    ox_rwlock_write_unlock(l);
    CHECK_EQ(ox_test_rwlock_count(l), 0);
}

static int cleanup_runs;
static void count_cleanup(void *arg)
{
    (void)arg;
    cleanup_runs++;
}

/* The sequences, with the record checked after each step. Runs in a
 * thread or a task (yield_between: yields between the steps). */
struct seq_arg {
    ox_rwlock a, b, c;
    ox_mutex m;
    bool yield_between;
};

static void step(struct seq_arg *p)
{
    if (p->yield_between && ox__worker_current() != NULL)
        ox_task_yield();
}

static void *sequences(void *arg)
{
    struct seq_arg *p = arg;
    ox_rwlock *a = &p->a, *b = &p->b, *c = &p->c;
    ox_mutex *m = &p->m;

    /* Nested reads of one lock (the second disperses), released in order. */
    rd(a), step(p);
    rd(a), step(p);
    CHECK_RECORD(R(a), R(a));
    ox_rwlock_read_unlock(a), step(p);
    CHECK_RECORD(R(a));
    ox_rwlock_read_unlock(a), step(p);
    CHECK_RECORD_EMPTY();
    check_free(a);

    /* Read a, write b; a released first (not on top), then b on top. */
    rd(a), wr(b), step(p);
    CHECK_RECORD(R(a), W(b));
    ox_rwlock_read_unlock(a), step(p);
    CHECK_RECORD(W(b));
    ox_rwlock_write_unlock(b), step(p);
    CHECK_RECORD_EMPTY();
    check_free(a), check_free(b);

    /* Write a, read b; a released first, from below. */
    wr(a), rd(b), step(p);
    CHECK_RECORD(W(a), R(b));
    ox_rwlock_write_unlock(a), step(p);
    CHECK_RECORD(R(b));
    check_free(a);
    ox_rwlock_read_unlock(b);
    CHECK_RECORD_EMPTY();

    /* Read a, mutex on top: read unlock from below; then the mutex. */
    rd(a), lk(m), step(p);
    CHECK_RECORD(R(a), M(m));
    ox_rwlock_read_unlock(a), step(p);
    CHECK_RECORD(M(m));
    ox_mutex_unlock(m);
    CHECK_RECORD_EMPTY();

    /* Mutex, then write a, then read b: the mutex leaves from below. */
    lk(m), wr(a), rd(b), step(p);
    ox_mutex_unlock(m), step(p);
    CHECK_RECORD(W(a), R(b));
    ox_rwlock_read_unlock(b), step(p);
    CHECK_RECORD(W(a));
    ox_rwlock_write_unlock(a);
    CHECK_RECORD_EMPTY();

    /* A cleanup on top of a read and of a write. */
    rd(a), wr(b);
    ox_cleanup_push(count_cleanup, NULL), step(p);
    ox_rwlock_read_unlock(a), step(p);
    ox_rwlock_write_unlock(b), step(p);
    CHECK_EQ(record_len(), 1); /* the cleanup's */
    ox_cleanup_pop(false);
    CHECK_RECORD_EMPTY();
    check_free(a), check_free(b);

    /* A downgraded entry: released by the read unlock's fast path. */
    wr(a), rd(b);
    ox_rwlock_downgrade(a); /* a is below b */
    CHECK_RECORD({a, &ox__rwlock_read_ops}, R(b));
    ox_rwlock_read_unlock(b), step(p);
    CHECK_RECORD({a, &ox__rwlock_read_ops});
    ox_rwlock_read_unlock(a);
    CHECK_RECORD_EMPTY();
    check_free(a), check_free(b);

    /* Three reads of a interleaved with b and c, released in a scrambled
     * order, each by ox_rwlock_read_unlock or ox_rwlock_unlock. */
    rd(a), rd(b), rd(a), wr(c), rd(a), step(p);
    CHECK_RECORD(R(a), R(b), R(a), W(c), R(a));
    ox_rwlock_read_unlock(b), step(p);
    CHECK_RECORD(R(a), R(a), W(c), R(a));
    ox_rwlock_unlock(c), step(p);
    CHECK_RECORD(R(a), R(a), R(a));
    ox_rwlock_read_unlock(a);
    ox_rwlock_unlock(a), step(p);
    ox_rwlock_read_unlock(a);
    CHECK_RECORD_EMPTY();
    check_free(a), check_free(b), check_free(c);
    return NULL;
}

OX_TEST(break40_record_exact_after_nested_mixed_and_out_of_order_unlocks)
{
    struct seq_arg *p = calloc(1, sizeof *p);
    CHECK(p != NULL);
    (void)sequences(p);
    ox_test_run_named("seq", sequences, p);
    free(p);
}

/* Then a panic: after a scrambled history, it must release exactly what
 * is still held: poison the write-held, not the read-held, and leave what
 * was released earlier alone. */
struct panic_arg {
    ox_rwlock r1, r2, w1, w2, gone;
    ox_mutex m, mgone;
};

/* The record check above wants a NULL object for the cleanup with any mode:
 * is_read fails for it, so check_record_at gets a variant. */
#undef CHECK_RECORD

static void check_record_cleanup_at(const char *file, int line, const want *ws, uint32_t n)
{
    uint32_t have;
    const ox__unwind_entry *e = ox__held_entries(&have);
    if (have != n)
        ox_test_fail(file, line, "record has %u entries, want %u", have, n);
    for (uint32_t i = 0; i < n; i++) {
        if (e[i].object != ws[i].object)
            ox_test_fail(file, line, "entry %u: object %p, want %p", i, e[i].object, ws[i].object);
        if (ws[i].object == NULL)
            continue;
        if (ws[i].ops == NULL ? !is_read(e[i].u.lock_ops) : e[i].u.lock_ops != ws[i].ops)
            ox_test_fail(file, line, "entry %u (%p): wrong mode", i, ws[i].object);
    }
}
#define CHECK_RECORD(...)                                                                          \
    do {                                                                                           \
        const want ws_[] = {__VA_ARGS__};                                                          \
        check_record_cleanup_at(__FILE__, __LINE__, ws_, sizeof ws_ / sizeof ws_[0]);              \
    } while (0)

static void *scrambled_then_panic2(void *arg)
{
    struct panic_arg *p = arg;
    rd(&p->r1), lk(&p->mgone), wr(&p->w1), rd(&p->gone), rd(&p->r1);
    ox_cleanup_push(count_cleanup, NULL);
    lk(&p->m), rd(&p->r2), wr(&p->w2), rd(&p->gone);
    ox_rwlock_read_unlock(&p->gone);
    ox_mutex_unlock(&p->mgone);
    ox_rwlock_read_unlock(&p->r1);
    ox_rwlock_read_unlock(&p->gone);
    CHECK_RECORD(R(&p->r1), W(&p->w1), {NULL, NULL}, M(&p->m), R(&p->r2), W(&p->w2));
    ox_panic("scrambled");
}

OX_TEST(break40_panic_after_scrambled_unlocks_releases_exactly_the_held)
{
    ox_panic_hook old = ox_panic_set_hook(ox_test_quiet_hook);
    struct panic_arg *p = calloc(1, sizeof *p);
    CHECK(p != NULL);
    for (int round = 0; round < 2; round++) {
        cleanup_runs = 0;
        ox_panic_payload *pp = NULL;
        CHECK_EQ(ox_catch_unwind(scrambled_then_panic2, p, NULL, &pp), OX_EPANICKED);
        ox_panic_payload_free(pp);
        CHECK_RECORD_EMPTY();
        CHECK_EQ(cleanup_runs, 1);
        CHECK(ox_rwlock_is_poisoned(&p->w1));
        CHECK(ox_rwlock_is_poisoned(&p->w2));
        CHECK(!ox_rwlock_is_poisoned(&p->r1));
        CHECK(!ox_rwlock_is_poisoned(&p->r2));
        CHECK(!ox_rwlock_is_poisoned(&p->gone));
        CHECK(ox_mutex_is_poisoned(&p->m));
        CHECK(!ox_mutex_is_poisoned(&p->mgone));
        ox_rwlock *all[] = {&p->r1, &p->r2, &p->w1, &p->w2, &p->gone};
        for (int i = 0; i < 5; i++) {
            int rc = ox_rwlock_try_write(all[i]);
            CHECK(rc == 0 || rc == OX_EPOISONED);
            ox_rwlock_write_unlock(all[i]);
            CHECK_EQ(ox_test_rwlock_count(all[i]), 0);
            ox_rwlock_clear_poison(all[i]);
        }
        CHECK(ox_mutex_try_lock(&p->m) == OX_EPOISONED);
        ox_mutex_unlock(&p->m);
        ox_mutex_clear_poison(&p->m);
        CHECK_EQ(ox_mutex_try_lock(&p->mgone), 0);
        ox_mutex_unlock(&p->mgone);
    }
    free(p);
    ox_panic_set_hook(old);
}

/* ---- misuse still aborts ---- */

OX_TEST_OPTS(break40_read_unlock_of_write_below_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "is held for writing by thread 'main', not for reading")
{
    static ox_rwlock l, other;
    wr(&l);
    rd(&other);
    ox_rwlock_read_unlock(&l);
}

OX_TEST_OPTS(break40_double_read_unlock_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_rwlock_read_unlock: unlocking an rwlock not held by this thread")
{
    static ox_rwlock l, other;
    rd(&other);
    rd(&l);
    ox_rwlock_read_unlock(&l);
    ox_rwlock_read_unlock(&l);
}

OX_TEST_OPTS(break40_double_write_unlock_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_rwlock_write_unlock: unlocking an rwlock not held by this thread")
{
    static ox_rwlock l;
    wr(&l);
    ox_rwlock_write_unlock(&l);
    ox_rwlock_write_unlock(&l);
}

OX_TEST_OPTS(break40_read_unlock_under_a_cleanup_not_held_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "ox_rwlock_read_unlock: unlocking an rwlock not held by this thread")
{
    static ox_rwlock l;
    ox_cleanup_push(count_cleanup, NULL);
    ox_rwlock_read_unlock(&l);
}

OX_TEST_OPTS(break40_mutex_unlock_of_an_rwlock_entry_on_top_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "not held")
{
    /* A mutex not held while a read lock is on top: the mutex's check
     * compares objects only, so it must not pop the rwlock's entry. */
    static ox_rwlock l;
    static ox_mutex m;
    rd(&l);
    ox_mutex_unlock(&m);
}

/* ---- churn on two locks, released out of order ---- */

struct churn {
    ox_rwlock a, b;
    _Atomic long progress;
    _Atomic int stop;
    _Atomic int writers_in; /* writers inside a (or b): at most 1 */
    long shared_a, shared_b;
    _Atomic long bad;
};

static void *churn_reader(void *arg)
{
    struct churn *c = arg;
    uint32_t x = (uint32_t)(uintptr_t)&x | 1;
    while (!atomic_load(&c->stop)) {
        rd(&c->a);
        rd(&c->b);
        long va = c->shared_a, vb = c->shared_b;
        /* Nested: disperses a (try: a blocking one behind a waiting writer
         * would deadlock, which oxide aborts on by design). */
        if (ox_test_rand(&x) % 4 == 0 && ox_rwlock_try_read(&c->a) != 0)
            (void)0;
        if (va != c->shared_a || vb != c->shared_b)
            atomic_fetch_add(&c->bad, 1);
        ox_test_spin_ns(ox_test_rand(&x) % 2000);
        switch (ox_test_rand(&x) % 3) {
        case 0:
            ox_rwlock_read_unlock(&c->a); /* under b: out of order */
            ox_rwlock_read_unlock(&c->b);
            break;
        case 1:
            ox_rwlock_read_unlock(&c->b);
            ox_rwlock_read_unlock(&c->a);
            break;
        default:
            ox_rwlock_unlock(&c->a);
            ox_rwlock_unlock(&c->b);
        }
        if (record_len() == 1) /* the nested read */
            ox_rwlock_read_unlock(&c->a);
        if (record_len() != 0)
            atomic_fetch_add(&c->bad, 1000);
        atomic_fetch_add(&c->progress, 1);
    }
    return NULL;
}

static void *churn_writer(void *arg)
{
    struct churn *c = arg;
    uint32_t x = (uint32_t)(uintptr_t)&x | 1;
    while (!atomic_load(&c->stop)) {
        bool both = ox_test_rand(&x) % 2;
        wr(&c->a);
        if (both)
            wr(&c->b);
        if (atomic_fetch_add(&c->writers_in, 1) != 0)
            atomic_fetch_add(&c->bad, 1);
        c->shared_a++;
        if (both)
            c->shared_b++;
        ox_test_spin_ns(ox_test_rand(&x) % 1000);
        atomic_fetch_sub(&c->writers_in, 1);
        if (!both) {
            ox_rwlock_write_unlock(&c->a);
        } else if (ox_test_rand(&x) % 2) {
            ox_rwlock_write_unlock(&c->a); /* under b: not on top */
            ox_rwlock_write_unlock(&c->b);
        } else {
            ox_rwlock_unlock(&c->b);
            ox_rwlock_unlock(&c->a);
        }
        if (record_len() != 0)
            atomic_fetch_add(&c->bad, 1000);
        atomic_fetch_add(&c->progress, 1);
    }
    return NULL;
}

OX_TEST_OPTS(break40_churn_two_locks_out_of_order_no_lost_wake, .timeout_s = 60)
{
    struct churn *c = calloc(1, sizeof *c);
    CHECK(c != NULL);
    enum { NR = 4, NW = 3 };
    ox_join_handle hs[NR + NW];
    for (int i = 0; i < NR; i++)
        hs[i] = ox_test_spawn_named("reader", churn_reader, c);
    for (int i = 0; i < NW; i++)
        hs[NR + i] = ox_test_spawn_named("writer", churn_writer, c);
    ox_test_budget b = ox_test_budget_start(1, 1 << 30);
    long last = atomic_load(&c->progress);
    ox_instant stalled_since = ox_instant_now();
    while (!ox_test_budget_spent(&b)) {
        ox_thread_sleep(OX_MILLIS(10));
        long now = atomic_load(&c->progress);
        if (now != last) {
            last = now;
            stalled_since = ox_instant_now();
        } else if (ox_instant_diff(ox_instant_now(), stalled_since) > ox_test_bound(OX_SECS(4))) {
            ox_test_fail(__FILE__, __LINE__,
                         "no progress for 4 s: lost wake? a=%#x b=%#x progress=%ld",
                         atomic_load(&c->a.state), atomic_load(&c->b.state), now);
        }
    }
    atomic_store(&c->stop, 1);
    /* The joins themselves under a watchdog: a parked one never returns. */
    ox_instant until = ox_instant_after(ox_test_bound(OX_SECS(5)));
    for (int i = 0; i < NR + NW; i++) {
        while (!ox_join_handle_is_finished(&hs[i])) {
            if (ox_instant_diff(ox_instant_now(), until) > 0)
                ox_test_fail(__FILE__, __LINE__, "thread %d parked after stop: a=%#x b=%#x", i,
                             atomic_load(&c->a.state), atomic_load(&c->b.state));
            ox_thread_sleep(OX_MILLIS(1));
        }
        ox_test_join(&hs[i]);
    }
    CHECK_EQ(atomic_load(&c->bad), 0);
    printf("%ld rounds\n", atomic_load(&c->progress));
    check_free(&c->a);
    check_free(&c->b);
    free(c);
}

/* ---- panics while holding several read locks, writers parked ---- */

struct pr {
    ox_rwlock l[4];
    _Atomic int writers_done;
    _Atomic int go;
};

static void *hold_reads_and_panic(void *arg)
{
    struct pr *p = arg;
    rd(&p->l[0]), rd(&p->l[1]), rd(&p->l[0]), rd(&p->l[2]), rd(&p->l[3]), rd(&p->l[1]);
    ox_rwlock_read_unlock(&p->l[2]); /* out of order, before the panic */
    atomic_store(&p->go, 1);
    /* Writers queue on all four (l[2] is free: its writer gets in). */
    for (int i = 0; i < 4; i++)
        if (i != 2)
            ox_test_wait_blocked_on(&p->l[i], 1);
    ox_panic("readers unwind");
}

static void *one_writer(void *arg)
{
    ox_rwlock *l = arg;
    int rc = ox_rwlock_write_timeout(l, ox_test_bound(OX_SECS(10)));
    CHECK_EQ(rc, 0); /* readers never poison; a lost wake times out */
    ox_rwlock_write_unlock(l);
    return NULL;
}

struct pr_writer {
    struct pr *p;
    int i;
};

static void *pr_writer(void *arg)
{
    struct pr_writer *w = arg;
    while (!atomic_load(&w->p->go))
        ox_thread_sleep(OX_MICROS(50));
    one_writer(&w->p->l[w->i]);
    atomic_fetch_add(&w->p->writers_done, 1);
    return NULL;
}

OX_TEST_OPTS(break40_panic_with_several_reads_lets_parked_writers_in, .timeout_s = 60)
{
    ox_panic_hook old = ox_panic_set_hook(ox_test_quiet_hook);
    for (int round = 0; round < 20; round++) {
        struct pr *p = calloc(1, sizeof *p);
        CHECK(p != NULL);
        if (round % 2)
            ox_test_rwlock_disperse(&p->l[3]);
        struct pr_writer ws[4];
        ox_join_handle hs[4];
        for (int i = 0; i < 4; i++) {
            ws[i] = (struct pr_writer){p, i};
            hs[i] = ox_test_spawn_named("writer", pr_writer, &ws[i]);
        }
        ox_panic_payload *pp = NULL;
        CHECK_EQ(ox_catch_unwind(hold_reads_and_panic, p, NULL, &pp), OX_EPANICKED);
        ox_panic_payload_free(pp);
        CHECK_RECORD_EMPTY();
        for (int i = 0; i < 4; i++)
            ox_test_join(&hs[i]);
        CHECK_EQ(atomic_load(&p->writers_done), 4);
        for (int i = 0; i < 4; i++) {
            CHECK(!ox_rwlock_is_poisoned(&p->l[i]));
            check_free(&p->l[i]);
        }
        free(p);
    }
    ox_panic_set_hook(old);
}

/* ---- tasks: guards across yields, sleeps and blocking waits ---- */

struct tshare {
    ox_rwlock a, b, hot;
    _Atomic long moved, bad, progress;
};

static ox__worker *where(void)
{
    return ox__worker_current();
}

/* Timed, so that a lost wake fails by name, not by the runner's timeout. */
static void trd(ox_rwlock *l)
{
    CHECK_EQ(ox_rwlock_read_timeout(l, ox_test_bound(OX_SECS(10))), 0);
}
static void twr(ox_rwlock *l)
{
    CHECK_EQ(ox_rwlock_write_timeout(l, ox_test_bound(OX_SECS(10))), 0);
}

static void *task_rounds(void *arg)
{
    struct tshare *t = arg;
    uint32_t x = (uint32_t)(uintptr_t)&x | 1;
    ox_test_budget bud = ox_test_budget_start(50, ox_test_scaled(3000));
    for (long r = 0; ox_test_budget_more(&bud, r); r++) {
        ox__worker *w0 = where();
        trd(&t->a);
        ox_task_yield();
        /* A blocking wait: hot is fought over by write. */
        if (ox_test_rand(&x) % 2) {
            twr(&t->hot);
            ox_task_yield();
        } else {
            trd(&t->hot);
            if (ox_test_rand(&x) % 4 == 0)
                (void)!ox_task_sleep(OX_MICROS(20));
        }
        trd(&t->b);
        bool nested = ox_rwlock_try_read(&t->a) == 0; /* (a blocking one may deadlock) */
        if (where() != w0)
            atomic_fetch_add(&t->moved, 1);
        uint32_t n;
        const ox__unwind_entry *e = ox__held_entries(&n);
        if (n != 3u + nested || e[0].object != &t->a || e[1].object != &t->hot ||
            e[2].object != &t->b || (nested && e[3].object != &t->a))
            atomic_fetch_add(&t->bad, 1);
        /* Release out of order, with yields between. */
        ox_rwlock_unlock(&t->hot);
        ox_task_yield();
        ox_rwlock_read_unlock(&t->a);
        if (nested)
            ox_rwlock_read_unlock(&t->a);
        e = ox__held_entries(&n);
        if (n != 1 || e[0].object != &t->b || !is_read(e[0].u.lock_ops))
            atomic_fetch_add(&t->bad, 1);
        ox_task_yield();
        ox_rwlock_read_unlock(&t->b);
        if (record_len() != 0)
            atomic_fetch_add(&t->bad, 1);
        atomic_fetch_add(&t->progress, 1);
    }
    return NULL;
}

static void *thread_writer_rounds(void *arg)
{
    struct tshare *t = arg;
    ox_test_budget bud = ox_test_budget_start(50, ox_test_scaled(3000));
    for (long r = 0; ox_test_budget_more(&bud, r); r++) {
        ox_rwlock *l = r % 3 == 0 ? &t->a : r % 3 == 1 ? &t->b : &t->hot;
        CHECK_EQ(ox_rwlock_write_timeout(l, ox_test_bound(OX_SECS(10))), 0);
        ox_rwlock_write_unlock(l);
    }
    return NULL;
}

OX_TEST_OPTS(break40_tasks_hold_guards_across_yields_and_waits, .timeout_s = 90)
{
    struct tshare *t = calloc(1, sizeof *t);
    CHECK(t != NULL);
    ox_runtime *rt = ox_test_runtime(3);
    enum { N = 8 };
    ox_task_handle hs[N];
    for (int i = 0; i < N; i++)
        hs[i] = ox_test_spawn_on(rt, task_rounds, t);
    ox_join_handle th = ox_test_spawn_named("writer", thread_writer_rounds, t);
    for (int i = 0; i < N; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    ox_test_join(&th);
    ox_runtime_shutdown(rt);
    printf("%ld rounds, %ld resumed on another worker\n", atomic_load(&t->progress),
           atomic_load(&t->moved));
    CHECK_EQ(atomic_load(&t->bad), 0);
    check_free(&t->a), check_free(&t->b), check_free(&t->hot);
    free(t);
}

/* The sequences as a task, yielding between steps. */
OX_TEST_OPTS(break40_record_sequences_in_a_task_with_yields, .timeout_s = 60)
{
    struct seq_arg *p = calloc(1, sizeof *p);
    CHECK(p != NULL);
    p->yield_between = true;
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle hs[4];
    struct seq_arg *ps[4];
    for (int i = 0; i < 4; i++) {
        ps[i] = calloc(1, sizeof *ps[i]);
        CHECK(ps[i] != NULL);
        ps[i]->yield_between = true;
        hs[i] = ox_test_spawn_on(rt, sequences, ps[i]);
    }
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
        free(ps[i]);
    }
    ox_runtime_shutdown(rt);
    free(p);
}

/* ---- each unlock path wakes what is parked ---- */

struct parked {
    ox_rwlock a, b;
    ox_mutex m;
    _Atomic int done;
};

static void *timed_reader(void *arg)
{
    struct parked *p = arg;
    CHECK_EQ(ox_rwlock_read_timeout(&p->a, ox_test_bound(OX_SECS(5))), 0);
    ox_rwlock_read_unlock(&p->a);
    atomic_fetch_add(&p->done, 1);
    return NULL;
}

static void *timed_writer(void *arg)
{
    struct parked *p = arg;
    CHECK_EQ(ox_rwlock_write_timeout(&p->a, ox_test_bound(OX_SECS(5))), 0);
    ox_rwlock_write_unlock(&p->a);
    atomic_fetch_add(&p->done, 1);
    return NULL;
}

/* How main holds a and gives it back; other locks sit on top of it. */
enum {
    VIA_WRITE_UNDER_B,
    VIA_UNLOCK_WRITE_UNDER_M,
    VIA_READ_UNDER_M,
    VIA_READ_UNDER_CLEANUP,
    VIA_UNLOCK_READ_UNDER_B,
    VIA_READ_ON_TOP,
    VIA_WRITE_ON_TOP,
    VIA_DISPERSED_READ_UNDER_B,
    VIA_COUNT
};

static void nothing(void *arg)
{
    (void)arg;
}

OX_TEST_OPTS(break40_every_unlock_path_wakes_the_parked, .timeout_s = 90)
{
    for (int via = 0; via < VIA_COUNT; via++) {
        for (int kind = 0; kind < 2; kind++) { /* parked: readers (if write-held) or writers */
            bool write_held = via == VIA_WRITE_UNDER_B || via == VIA_UNLOCK_WRITE_UNDER_M ||
                              via == VIA_WRITE_ON_TOP;
            struct parked *p = calloc(1, sizeof *p);
            CHECK(p != NULL);
            if (via == VIA_DISPERSED_READ_UNDER_B)
                ox_test_rwlock_disperse(&p->a);
            if (write_held)
                wr(&p->a);
            else
                rd(&p->a);
            switch (via) {
            case VIA_WRITE_UNDER_B:
            case VIA_UNLOCK_READ_UNDER_B:
            case VIA_DISPERSED_READ_UNDER_B:
                wr(&p->b);
                break;
            case VIA_UNLOCK_WRITE_UNDER_M:
            case VIA_READ_UNDER_M:
                lk(&p->m);
                break;
            case VIA_READ_UNDER_CLEANUP:
                ox_cleanup_push(nothing, NULL);
                break;
            default:
                break;
            }
            int n = write_held && kind == 0 ? 3 : 2;
            ox_join_handle hs[3];
            for (int i = 0; i < n; i++)
                hs[i] = ox_test_spawn_named(
                    "parked", write_held && kind == 0 ? timed_reader : timed_writer, p);
            ox_test_wait_blocked_on(&p->a, n);
            switch (via) {
            case VIA_UNLOCK_WRITE_UNDER_M:
            case VIA_UNLOCK_READ_UNDER_B:
                ox_rwlock_unlock(&p->a);
                break;
            default:
                if (write_held)
                    ox_rwlock_write_unlock(&p->a);
                else
                    ox_rwlock_read_unlock(&p->a);
            }
            ox_instant until = ox_instant_after(ox_test_bound(OX_SECS(3)));
            while (atomic_load(&p->done) < n) {
                if (ox_instant_diff(ox_instant_now(), until) > 0)
                    ox_test_fail(__FILE__, __LINE__,
                                 "via %d kind %d: %d of %d parked still waiting, state %#x", via,
                                 kind, n - atomic_load(&p->done), n, atomic_load(&p->a.state));
                ox_thread_sleep(OX_MICROS(100));
            }
            for (int i = 0; i < n; i++)
                ox_test_join(&hs[i]);
            switch (via) {
            case VIA_WRITE_UNDER_B:
            case VIA_UNLOCK_READ_UNDER_B:
            case VIA_DISPERSED_READ_UNDER_B:
                CHECK_RECORD(W(&p->b));
                ox_rwlock_write_unlock(&p->b);
                break;
            case VIA_UNLOCK_WRITE_UNDER_M:
            case VIA_READ_UNDER_M:
                CHECK_RECORD(M(&p->m));
                ox_mutex_unlock(&p->m);
                break;
            case VIA_READ_UNDER_CLEANUP:
                ox_cleanup_pop(false);
                break;
            default:
                break;
            }
            CHECK_RECORD_EMPTY();
            check_free(&p->a);
            free(p);
        }
    }
}
