/* break31: rwlock readers that go back to the count (80032b8, 7cd327b: a
 * writer that finds no reader in a slot and no trace on another CPU's line
 * clears DISPERSED) and a woken writer whose poll is spent (a7ef476). The
 * lock here keeps switching between the count and the slots: readers
 * overlap (DISPERSED set), a lone writer gathers them again, and the next
 * lone writer takes the inline CAS from 0, which scans nothing. Many locks
 * share the slot lines and are reinitialised at the same addresses with
 * traces left in the table. The invariants: a writer is never beside a
 * reader or another writer, every thread gets through (a lost wake-up
 * hangs the test until the runner's timeout), and the count and the slots
 * are empty at the end (ox_rwlock_destroy counts both). */
#define _GNU_SOURCE
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

static uint32_t state_of(ox_rwlock *l)
{
    return atomic_load(&l->state);
}

/* ---- one lock, gathered and dispersed again and again ---- */

struct churn {
    ox_rwlock l;
    uint64_t a, b;
    _Atomic int readers, writers;
    _Atomic long writes, gathered;
    ox_test_budget budget;
    int cpus[2];
    _Atomic int next;
};

static void churn_read_section(struct churn *c)
{
    atomic_fetch_add(&c->readers, 1);
    if (atomic_load(&c->writers) != 0 || c->a != c->b)
        ox_panic("a reader saw a writer");
    atomic_fetch_sub(&c->readers, 1);
}

static void churn_write_section(struct churn *c)
{
    if (atomic_fetch_add(&c->writers, 1) != 0 || atomic_load(&c->readers) != 0)
        ox_panic("a writer was not alone");
    if (!(state_of(&c->l) & OX__RW_DISPERSED))
        atomic_fetch_add(&c->gathered, 1);
    c->a++;
    atomic_signal_fence(memory_order_seq_cst);
    c->b++;
    atomic_fetch_sub(&c->writers, 1);
    atomic_fetch_add(&c->writes, 1);
}

static void *churn_worker(void *arg)
{
    struct churn *c = arg;
    int me = atomic_fetch_add(&c->next, 1);
    ox_test_pin(0, c->cpus[me % 2]);
    uint32_t x = (uint32_t)me * 2654435761u + 11;
    for (long i = 0; ox_test_budget_more(&c->budget, i); i++) {
        uint32_t r = ox_test_rand(&x);
        ox_nanos t = (ox_nanos)(r >> 20) % OX_MICROS(30);
        int rc;
        switch (r % 16) {
        case 0:
        case 1:
        case 2:
            /* The inline CAS from 0 right after a gathering write. */
            CHECK_EQ(ox_rwlock_write(&c->l), 0);
            churn_write_section(c);
            ox_rwlock_write_unlock(&c->l);
            break;
        case 3:
            if ((rc = ox_rwlock_write_timeout(&c->l, t)) == OX_ETIMEDOUT)
                break;
            CHECK_EQ(rc, 0);
            churn_write_section(c);
            ox_rwlock_unlock(&c->l);
            break;
        case 4:
            if (ox_rwlock_try_write(&c->l) != 0)
                break;
            churn_write_section(c);
            ox_rwlock_write_unlock(&c->l);
            break;
        case 5:
            CHECK_EQ(ox_rwlock_write(&c->l), 0);
            churn_write_section(c);
            atomic_fetch_add(&c->readers, 1);
            ox_rwlock_downgrade(&c->l);
            if (atomic_load(&c->writers) != 0 || c->a != c->b)
                ox_panic("a downgraded writer saw a writer");
            atomic_fetch_sub(&c->readers, 1);
            ox_rwlock_read_unlock(&c->l);
            break;
        case 6:
            if ((rc = ox_rwlock_read_timeout(&c->l, t)) == OX_ETIMEDOUT)
                break;
            CHECK_EQ(rc, 0);
            churn_read_section(c);
            ox_rwlock_read_unlock(&c->l);
            break;
        case 7:
            if (ox_rwlock_try_read(&c->l) != 0)
                break;
            churn_read_section(c);
            ox_rwlock_unlock(&c->l);
            break;
        case 8:
            /* A second read lock, by try_read (a blocking one would
             * deadlock behind a waiting writer). */
            CHECK_EQ(ox_rwlock_read(&c->l), 0);
            if (ox_rwlock_try_read(&c->l) == 0) {
                churn_read_section(c);
                ox_rwlock_read_unlock(&c->l);
            }
            churn_read_section(c);
            ox_rwlock_read_unlock(&c->l);
            break;
        default:
            CHECK_EQ(ox_rwlock_read(&c->l), 0);
            churn_read_section(c);
            if (i % 32 == 0)
                ox_thread_yield(); /* held across a switch: readers overlap */
            churn_read_section(c);
            ox_rwlock_read_unlock(&c->l);
            break;
        }
    }
    return NULL;
}

OX_TEST_OPTS(break31_readers_gathered_and_dispersed_again_keep_writers_alone, .timeout_s = 30)
{
    static struct churn c;
    memset(&c, 0, sizeof c);
    ox_rwlock_init(&c.l);
    c.cpus[0] = ox_test_first_allowed_cpu();
    c.cpus[1] = ox_test_other_allowed_cpu(c.cpus[0]);
    c.budget = ox_test_budget_start(20000, ox_test_scaled(300000));
    ox_join_handle h[4];
    for (int i = 0; i < 4; i++)
        h[i] = ox_thread_spawn(churn_worker, &c);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK(atomic_load(&c.writes) > 0);
    CHECK(atomic_load(&c.gathered) > 0); /* writers did gather the readers */
    CHECK_EQ(state_of(&c.l) & (OX__RW_READERS_MASK | OX__RW_WRITE_LOCKED), 0);
    CHECK_EQ(ox_rwlock_try_write(&c.l), 0);
    ox_rwlock_write_unlock(&c.l);
    ox_rwlock_destroy(&c.l);
}

/* ---- many locks on the same lines, reinitialised at the same addresses ---- */

enum { NLOCKS = 12 }; /* more than a line's 8 slots: lines fill up */

struct many {
    ox_rwlock l[NLOCKS];
    uint64_t a[NLOCKS], b[NLOCKS];
    _Atomic int readers[NLOCKS], writers[NLOCKS];
    _Atomic int round_go, round_done;
    ox_test_budget budget;
    int cpus[2];
    _Atomic int next;
};

static void many_read_section(struct many *m, int k)
{
    atomic_fetch_add(&m->readers[k], 1);
    if (atomic_load(&m->writers[k]) != 0 || m->a[k] != m->b[k])
        ox_panic("a reader of lock %d saw a writer", k);
}

static void many_read_leave(struct many *m, int k)
{
    atomic_fetch_sub(&m->readers[k], 1);
}

static void many_write_section(struct many *m, int k)
{
    if (atomic_fetch_add(&m->writers[k], 1) != 0 || atomic_load(&m->readers[k]) != 0)
        ox_panic("a writer of lock %d was not alone", k);
    m->a[k]++;
    atomic_signal_fence(memory_order_seq_cst);
    m->b[k]++;
    atomic_fetch_sub(&m->writers[k], 1);
}

static void many_one_round(struct many *m, uint32_t *x, long iters)
{
    for (long i = 0; i < iters; i++) {
        uint32_t r = ox_test_rand(x);
        int first = (int)(r % NLOCKS);
        switch ((r >> 8) % 8) {
        case 0:
            CHECK_EQ(ox_rwlock_write(&m->l[first]), 0);
            many_write_section(m, first);
            ox_rwlock_write_unlock(&m->l[first]);
            break;
        case 1:
            if (ox_rwlock_try_write(&m->l[first]) == 0) {
                many_write_section(m, first);
                ox_rwlock_write_unlock(&m->l[first]);
            }
            break;
        default: {
            /* Hold read locks on up to all of them at once (ascending, so
             * no cycle): more than a line holds. Blocking reads only for
             * the first; the rest by try_read or by read in order. */
            int n = 1 + (int)((r >> 12) % NLOCKS);
            int held[NLOCKS];
            int nh = 0;
            for (int k = first; k < NLOCKS && nh < n; k++) {
                if (ox_rwlock_read(&m->l[k]) != 0)
                    ox_panic("read");
                many_read_section(m, k);
                held[nh++] = k;
            }
            if ((r >> 20) % 4 == 0)
                ox_thread_yield();
            for (int j = nh; j-- > 0;) {
                many_read_leave(m, held[j]);
                if ((r >> 24) & 1)
                    ox_rwlock_read_unlock(&m->l[held[j]]);
                else
                    ox_rwlock_unlock(&m->l[held[j]]);
            }
            break;
        }
        }
    }
}

static void *many_worker(void *arg)
{
    struct many *m = arg;
    int me = atomic_fetch_add(&m->next, 1);
    ox_test_pin(0, m->cpus[me % 2]);
    uint32_t x = (uint32_t)me * 2246822519u + 3;
    for (int round = 1;; round++) {
        int go;
        while ((go = atomic_load(&m->round_go)) >= 0 && go < round)
            ox_thread_yield();
        if (go < 0)
            return NULL;
        many_one_round(m, &x, 1500);
        atomic_fetch_add(&m->round_done, 1);
    }
}

OX_TEST_OPTS(break31_locks_sharing_lines_and_addresses_keep_writers_alone, .timeout_s = 30)
{
    static struct many m;
    memset(&m, 0, sizeof m);
    m.cpus[0] = ox_test_first_allowed_cpu();
    m.cpus[1] = ox_test_other_allowed_cpu(m.cpus[0]);
    m.budget = ox_test_budget_start(4, ox_test_scaled(100));
    ox_join_handle h[4];
    for (int i = 0; i < 4; i++)
        h[i] = ox_thread_spawn(many_worker, &m);
    long round = 0;
    for (; ox_test_budget_more(&m.budget, round); round++) {
        /* New locks at the old addresses: the table still has the old
         * ones' traces (and nothing else: destroy counted the slots). */
        for (int k = 0; k < NLOCKS; k++)
            ox_rwlock_init(&m.l[k]);
        atomic_store(&m.round_go, (int)round + 1);
        while (atomic_load(&m.round_done) < 4 * ((int)round + 1))
            ox_thread_yield();
        for (int k = 0; k < NLOCKS; k++) {
            CHECK_EQ(state_of(&m.l[k]) & (OX__RW_READERS_MASK | OX__RW_WRITE_LOCKED |
                                          OX__RW_WRITERS_WAITING | OX__RW_WRITER_WOKEN),
                     0);
            ox_rwlock_destroy(&m.l[k]);
        }
    }
    atomic_store(&m.round_go, -1);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
}

/* ---- woken writers whose poll is spent, with timeouts ---- */

struct turns {
    ox_rwlock l;
    _Atomic int readers, writers;
    ox_test_budget budget;
    int cpus[2];
    _Atomic int next;
};

static void turns_read(struct turns *t)
{
    atomic_fetch_add(&t->readers, 1);
    if (atomic_load(&t->writers) != 0)
        ox_panic("a reader saw a writer");
    atomic_fetch_sub(&t->readers, 1);
}

static void turns_write(struct turns *t)
{
    if (atomic_fetch_add(&t->writers, 1) != 0 || atomic_load(&t->readers) != 0)
        ox_panic("a writer was not alone");
    atomic_fetch_sub(&t->writers, 1);
}

static void *turns_worker(void *arg)
{
    struct turns *t = arg;
    int me = atomic_fetch_add(&t->next, 1);
    ox_test_pin(0, t->cpus[me % 2]);
    uint32_t x = (uint32_t)me * 3266489917u + 5;
    for (long i = 0; ox_test_budget_more(&t->budget, i); i++) {
        uint32_t r = ox_test_rand(&x);
        int rc;
        switch (r % 8) {
        case 0:
            /* A blocking writer: must always get in. */
            CHECK_EQ(ox_rwlock_write(&t->l), 0);
            turns_write(t);
            ox_rwlock_write_unlock(&t->l);
            break;
        case 1:
        case 2:
            /* Timed writers that give up while others sleep or poll. */
            if ((rc = ox_rwlock_write_timeout(&t->l, (ox_nanos)(r >> 16) % OX_MICROS(20))) ==
                OX_ETIMEDOUT)
                break;
            CHECK_EQ(rc, 0);
            turns_write(t);
            ox_rwlock_write_unlock(&t->l);
            break;
        case 3:
            /* A try_write moves slot readers into the count and leaves a
             * woken writer's turn standing. */
            if (ox_rwlock_try_write(&t->l) == 0) {
                turns_write(t);
                ox_rwlock_write_unlock(&t->l);
            }
            break;
        default:
            /* Readers that hold long enough for a woken writer's poll to
             * run out. */
            CHECK_EQ(ox_rwlock_read(&t->l), 0);
            turns_read(t);
            if ((r >> 12) % 4 == 0)
                ox_test_spin_ns(OX_MICROS(20));
            else
                ox_thread_yield();
            turns_read(t);
            ox_rwlock_read_unlock(&t->l);
            break;
        }
    }
    return NULL;
}

OX_TEST_OPTS(break31_woken_writers_polls_spent_and_timeouts_strand_nobody, .timeout_s = 30)
{
    static struct turns t;
    memset(&t, 0, sizeof t);
    ox_rwlock_init(&t.l);
    t.cpus[0] = ox_test_first_allowed_cpu();
    t.cpus[1] = ox_test_other_allowed_cpu(t.cpus[0]);
    t.budget = ox_test_budget_start(3000, ox_test_scaled(30000));
    ox_join_handle h[6];
    for (int i = 0; i < 6; i++)
        h[i] = ox_thread_spawn(turns_worker, &t);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK_EQ(state_of(&t.l) & (OX__RW_READERS_MASK | OX__RW_WRITE_LOCKED | OX__RW_WRITER_WOKEN), 0);
    /* A bit left behind keeps nobody out: a reader and a writer get in. */
    CHECK_EQ(ox_rwlock_read(&t.l), 0);
    ox_rwlock_read_unlock(&t.l);
    CHECK_EQ(ox_rwlock_write(&t.l), 0);
    ox_rwlock_write_unlock(&t.l);
    ox_rwlock_destroy(&t.l);
}

/* ---- a reader with a stale view of DISPERSED ---- */

static void *write_times_out(void *arg)
{
    CHECK_EQ(ox_rwlock_write_timeout(arg, OX_MILLIS(2)), OX_ETIMEDOUT);
    return NULL;
}

/* The inline read path loads the state relaxed and, seeing DISPERSED,
 * calls ox__rwlock_read_dispersed. By then a writer may have gathered the
 * readers back into the count: calling it on a lock whose DISPERSED is
 * clear is what such a reader does. It must end up in the count, where the
 * inline write CAS (which scans no slot) sees it. */
OX_TEST(break31_stale_dispersed_reader_on_a_gathered_lock_uses_the_count)
{
    ox_rwlock l = OX_RWLOCK_INIT;
    ox_test_rwlock_end_bias(&l);
    CHECK_EQ(ox__rwlock_read_dispersed(&l, __FILE__, __LINE__), 0);
    const ox__unwind_state *u = ox__unwind_current();
    CHECK(u->entries[u->depth - 1].u.lock_ops == &ox__rwlock_read_ops);
    CHECK_EQ(state_of(&l) & OX__RW_READERS_MASK, 1);
    CHECK_EQ(ox_rwlock_try_write(&l), OX_EBUSY);
    ox_join_handle w = ox_thread_spawn(write_times_out, &l);
    CHECK_EQ(ox_thread_join(&w, NULL, NULL), 0);
    ox_rwlock_read_unlock(&l);
    CHECK_EQ(state_of(&l), 0);
    /* Its trace is left; the lock works on. */
    CHECK_EQ(ox_rwlock_write(&l), 0);
    ox_rwlock_write_unlock(&l);
    ox_rwlock_destroy(&l);
}

struct stale {
    ox_rwlock l;
    _Atomic int writing, reader_in;
};

static void *stale_reader(void *arg)
{
    struct stale *s = arg;
    CHECK_EQ(ox__rwlock_read_dispersed(&s->l, __FILE__, __LINE__), 0);
    if (atomic_load(&s->writing))
        ox_panic("a stale dispersed reader got in beside a writer");
    atomic_store(&s->reader_in, 1);
    ox_rwlock_read_unlock(&s->l);
    return NULL;
}

/* The writer took the lock by the inline CAS from 0 (no scan): a reader
 * with a stale DISPERSED must wait for it. */
OX_TEST_OPTS(break31_stale_dispersed_reader_waits_for_an_unscanned_writer, .timeout_s = 10)
{
    static struct stale s;
    memset(&s, 0, sizeof s);
    ox_rwlock_init(&s.l);
    CHECK_EQ(ox_rwlock_write(&s.l), 0);
    atomic_store(&s.writing, 1);
    ox_join_handle h = ox_thread_spawn(stale_reader, &s);
    for (int i = 0; i < 50; i++) {
        ox_thread_sleep(OX_MICROS(100));
        CHECK_EQ(atomic_load(&s.reader_in), 0);
    }
    atomic_store(&s.writing, 0);
    ox_rwlock_write_unlock(&s.l);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&s.reader_in), 1);
    CHECK_EQ(state_of(&s.l) & (OX__RW_READERS_MASK | OX__RW_WRITE_LOCKED), 0);
    ox_rwlock_destroy(&s.l);
}

/* ---- a line full of traces, and of other locks' readers ---- */

/* Eight readers of a lock leave their traces in one line; the lock is
 * destroyed and a new one made at its address. Its readers take those
 * traces as free slots; its writers clear them; and a writer never gets in
 * beside a reader in a slot. */
OX_TEST(break31_lock_at_an_old_address_reuses_its_traces)
{
    static ox_rwlock l;
    int cpu = ox_test_first_allowed_cpu();
    ox_test_pin(0, cpu);
    for (int round = 0; round < 3; round++) {
        ox_rwlock_init(&l);
        ox_test_rwlock_end_bias(&l);
        CHECK_EQ(ox_rwlock_read(&l), 0);
        CHECK_EQ(ox_rwlock_read(&l), 0); /* overlap: dispersed */
        CHECK(state_of(&l) & OX__RW_DISPERSED);
        for (int i = 0; i < 8; i++) /* a line's worth, the rest in the count */
            CHECK_EQ(ox_rwlock_read(&l), 0);
        for (int i = 0; i < 10; i++)
            ox_rwlock_read_unlock(&l);
        CHECK_EQ(state_of(&l) & OX__RW_READERS_MASK, 0);
        /* A reader in a slot (a trace's), then a writer: it must find it. */
        CHECK_EQ(ox_rwlock_read(&l), 0);
        CHECK_EQ(ox_rwlock_try_write(&l), OX_EBUSY);
        CHECK_EQ(state_of(&l) & OX__RW_READERS_MASK, 1);
        ox_rwlock_read_unlock(&l);
        CHECK_EQ(state_of(&l) & OX__RW_READERS_MASK, 0);
        CHECK_EQ(ox_rwlock_try_write(&l), 0);
        ox_rwlock_write_unlock(&l);
        ox_rwlock_destroy(&l);
    }
    /* Traces of l stay behind; a lock of the next round starts clean. */
    ox_rwlock_init(&l);
    CHECK_EQ(ox_rwlock_write(&l), 0);
    ox_rwlock_write_unlock(&l);
    CHECK_EQ(state_of(&l), 0);
    ox_rwlock_destroy(&l);
}
