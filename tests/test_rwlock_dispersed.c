/* RwLock readers in per-CPU slots (src/sync/rwlock.c, "Dispersed
 * readers"): once readers have overlapped they take slots instead of the
 * shared count, and a writer moves the readers it finds there into the
 * count. White-box where the count shows what happened. */
#define _GNU_SOURCE /* pthread_setaffinity_np via helpers */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

/* The slot the calling thread's newest read lock took (its record's tag). */
static unsigned my_newest_slot(void)
{
    const ox__unwind_state *u = ox__unwind_current();
    CHECK(u->depth > 0 && u->entries[u->depth - 1].u.lock_ops == &ox__rwlock_slot_read_ops);
    return u->entries[u->depth - 1].tag;
}

static void *write_times_out(void *arg)
{
    CHECK_EQ(ox_rwlock_write_timeout(arg, OX_MILLIS(5)), OX_ETIMEDOUT);
    return NULL;
}

OX_TEST(rwlock_dispersed_reader_leaves_the_count_alone_until_a_writer_moves_it)
{
    ox_rwlock l = OX_RWLOCK_INIT;
    ox_test_rwlock_disperse(&l);
    CHECK_EQ(ox_rwlock_read(&l), 0);
    (void)my_newest_slot();
    CHECK_EQ(ox_test_rwlock_count(&l), 0); /* in a slot, not in the count */
    /* The writer finds it in its slot, moves it into the count, gives up. */
    CHECK_EQ(ox_rwlock_try_write(&l), OX_EBUSY);
    CHECK_EQ(ox_test_rwlock_count(&l), 1);
    ox_join_handle w = ox_thread_spawn(write_times_out, &l);
    CHECK_EQ(ox_thread_join(&w, NULL, NULL), 0);
    CHECK_EQ(ox_test_rwlock_count(&l), 1);
    ox_rwlock_read_unlock(&l); /* its slot is gone: it gives back the count */
    CHECK_EQ(ox_test_rwlock_count(&l), 0);
    CHECK_EQ(ox_rwlock_try_write(&l), 0);
    ox_rwlock_write_unlock(&l);
    ox_rwlock_destroy(&l);
}

/* The accounting's corner: reader A is moved into the count, B takes the
 * slot A had, A's unlock frees that slot (B's), so B is now the one in the
 * count, and B's unlock gives the count back. */
struct crossing {
    ox_rwlock l;
    _Atomic int step;
    unsigned slot;
    int cpu;
};

static void wait_step(struct crossing *c, int step)
{
    while (atomic_load(&c->step) < step)
        ox_thread_yield();
}

static void *crossing_reader(void *arg)
{
    struct crossing *c = arg;
    ox_test_pin(0, c->cpu);
    CHECK_EQ(ox_rwlock_read(&c->l), 0);
    c->slot = my_newest_slot();
    atomic_store(&c->step, 1);
    wait_step(c, 2);
    ox_rwlock_read_unlock(&c->l);
    return NULL;
}

static void *try_write_fails(void *arg)
{
    CHECK_EQ(ox_rwlock_try_write(arg), OX_EBUSY);
    return NULL;
}

OX_TEST(rwlock_dispersed_reader_moved_then_its_slot_reused_still_counts_once)
{
    int cpu = ox_test_first_allowed_cpu();
    ox_test_pin(0, cpu);
    int crossed = 0;
    /* The slot is the lock's first probe in this CPU's line; another test's
     * reader may hold it, so try a few locks. */
    for (int attempt = 0; attempt < 50 && !crossed; attempt++) {
        struct crossing c = {.l = OX_RWLOCK_INIT, .cpu = cpu};
        ox_test_rwlock_disperse(&c.l);
        ox_join_handle a = ox_thread_spawn(crossing_reader, &c);
        wait_step(&c, 1);
        CHECK_EQ(ox_rwlock_write_timeout(&c.l, OX_MILLIS(2)), OX_ETIMEDOUT); /* moves A */
        CHECK_EQ(ox_test_rwlock_count(&c.l), 1);
        CHECK_EQ(ox_rwlock_read(&c.l), 0); /* B */
        crossed = my_newest_slot() == c.slot;
        atomic_store(&c.step, 2);
        CHECK_EQ(ox_thread_join(&a, NULL, NULL), 0);
        /* B still holds the lock, whichever slot it took. */
        ox_join_handle w = ox_thread_spawn(try_write_fails, &c.l);
        CHECK_EQ(ox_thread_join(&w, NULL, NULL), 0);
        ox_rwlock_read_unlock(&c.l);
        CHECK_EQ(ox_test_rwlock_count(&c.l), 0);
        CHECK_EQ(ox_rwlock_try_write(&c.l), 0);
        ox_rwlock_write_unlock(&c.l);
    }
    CHECK(crossed);
}

/* More readers on one CPU than its line has slots: the rest use the count,
 * and a writer waits for all of them. */
enum { CROWD = 12 };

struct crowd {
    ox_rwlock l;
    ox_barrier all_in, let_go;
    _Atomic int holding, writer_in;
    int cpu;
};

static void *crowd_reader(void *arg)
{
    struct crowd *c = arg;
    ox_test_pin(0, c->cpu);
    CHECK_EQ(ox_rwlock_read(&c->l), 0);
    atomic_fetch_add(&c->holding, 1);
    ox_barrier_wait(&c->all_in);
    ox_barrier_wait(&c->let_go);
    CHECK_EQ(atomic_load(&c->writer_in), 0);
    atomic_fetch_sub(&c->holding, 1);
    ox_rwlock_read_unlock(&c->l);
    return NULL;
}

static void *crowd_writer(void *arg)
{
    struct crowd *c = arg;
    CHECK_EQ(ox_rwlock_write(&c->l), 0);
    atomic_store(&c->writer_in, 1);
    CHECK_EQ(atomic_load(&c->holding), 0);
    ox_rwlock_write_unlock(&c->l);
    return NULL;
}

OX_TEST(rwlock_dispersed_readers_beyond_a_full_line_use_the_count)
{
    static struct crowd c;
    memset(&c, 0, sizeof c);
    ox_rwlock_init(&c.l);
    CHECK_EQ(ox_barrier_init(&c.all_in, CROWD + 1), 0);
    CHECK_EQ(ox_barrier_init(&c.let_go, CROWD + 1), 0);
    c.cpu = ox_test_first_allowed_cpu();
    ox_test_rwlock_disperse(&c.l);
    ox_join_handle r[CROWD];
    for (int i = 0; i < CROWD; i++)
        r[i] = ox_thread_spawn(crowd_reader, &c);
    ox_barrier_wait(&c.all_in);
    CHECK(ox_test_rwlock_count(&c.l) >= CROWD - 8); /* a line has 8 slots */
    ox_join_handle w = ox_thread_spawn(crowd_writer, &c);
    ox_test_spin_ns(OX_MILLIS(20)); /* the writer must still be waiting */
    ox_barrier_wait(&c.let_go);
    for (int i = 0; i < CROWD; i++)
        CHECK_EQ(ox_thread_join(&r[i], NULL, NULL), 0);
    CHECK_EQ(ox_thread_join(&w, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&c.writer_in), 1);
    CHECK_EQ(ox_test_rwlock_count(&c.l), 0);
    ox_rwlock_destroy(&c.l);
}

/* Readers and writers on both CPUs, and several threads on one: a writer
 * must never overlap a reader or another writer (a and b differ only
 * inside a write). */
struct mix {
    ox_rwlock l;
    uint64_t a, b;
    _Atomic int readers, writers;
    _Atomic long writes, slot_reads;
    ox_test_budget budget;
    int cpus[2];
    _Atomic int next;
};

static void *mix_worker(void *arg)
{
    struct mix *m = arg;
    int me = atomic_fetch_add(&m->next, 1);
    ox_test_pin(0, m->cpus[me % 3 == 0]); /* two threads on one CPU, one on the other */
    uint64_t seed = (uint64_t)me * 0x9e3779b97f4a7c15u + 1;
    for (long i = 0; ox_test_budget_more(&m->budget, i); i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        if ((seed >> 33) % 16 == 0) {
            int rc = (seed >> 40) % 4 == 0 ? ox_rwlock_try_write(&m->l) : ox_rwlock_write(&m->l);
            if (rc == OX_EBUSY)
                continue;
            if (atomic_fetch_add(&m->writers, 1) != 0 || atomic_load(&m->readers) != 0)
                ox_panic("a writer was not alone");
            m->a++;
            atomic_signal_fence(memory_order_seq_cst);
            m->b++;
            atomic_fetch_sub(&m->writers, 1);
            atomic_fetch_add(&m->writes, 1);
            ox_rwlock_write_unlock(&m->l);
        } else {
            CHECK_EQ(ox_rwlock_read(&m->l), 0);
            const ox__unwind_state *u = ox__unwind_current();
            if (u->entries[u->depth - 1].u.lock_ops == &ox__rwlock_slot_read_ops)
                atomic_fetch_add(&m->slot_reads, 1);
            atomic_fetch_add(&m->readers, 1);
            if (atomic_load(&m->writers) != 0 || m->a != m->b)
                ox_panic("a reader saw a writer");
            if (i % 64 == 0)
                ox_thread_yield(); /* hold it across a switch now and then */
            atomic_fetch_sub(&m->readers, 1);
            ox_rwlock_read_unlock(&m->l);
        }
    }
    return NULL;
}

OX_TEST(rwlock_dispersed_stress_readers_and_writers_on_shared_cpus)
{
    static struct mix m;
    memset(&m, 0, sizeof m);
    m.budget = ox_test_budget_start(5000, ox_test_scaled(400000));
    m.cpus[0] = ox_test_first_allowed_cpu();
    m.cpus[1] = ox_test_other_allowed_cpu(m.cpus[0]);
    ox_join_handle h[6];
    for (int i = 0; i < 6; i++)
        h[i] = ox_thread_spawn(mix_worker, &m);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
    CHECK(atomic_load(&m.slot_reads) > 0);
    CHECK(atomic_load(&m.writes) > 0);
    CHECK_EQ(m.a, (uint64_t)atomic_load(&m.writes));
    CHECK_EQ(m.a, m.b);
    CHECK_EQ(ox_test_rwlock_count(&m.l), 0);
    ox_rwlock_destroy(&m.l);
}

static void *panic_while_reading(void *arg)
{
    CHECK_EQ(ox_rwlock_read(arg), 0);
    (void)my_newest_slot();
    ox_panic("boom while reading");
}

OX_TEST(rwlock_dispersed_reader_panic_gives_its_slot_back)
{
    ox_panic_set_hook(ox_test_quiet_hook);
    static ox_rwlock l = OX_RWLOCK_INIT;
    ox_test_rwlock_disperse(&l);
    ox_join_handle h = ox_thread_spawn(panic_while_reading, &l);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), OX_EPANICKED);
    CHECK_EQ(ox_rwlock_try_write(&l), 0); /* a reader does not poison */
    ox_rwlock_write_unlock(&l);
    CHECK_EQ(ox_test_rwlock_count(&l), 0);
}

OX_TEST(rwlock_dispersed_readers_unlock_out_of_order_and_generically)
{
    ox_rwlock a = OX_RWLOCK_INIT, b = OX_RWLOCK_INIT;
    ox_test_rwlock_disperse(&a);
    ox_test_rwlock_disperse(&b);
    CHECK_EQ(ox_rwlock_read(&a), 0);
    CHECK_EQ(ox_rwlock_read(&b), 0);
    ox_rwlock_read_unlock(&a); /* not on top */
    CHECK_EQ(ox_rwlock_try_write(&a), 0);
    ox_rwlock_write_unlock(&a);
    CHECK_EQ(ox_rwlock_read(&a), 0);
    ox_rwlock_unlock(&b); /* the generic unlock, not on top */
    ox_rwlock_unlock(&a);
    CHECK_EQ(ox_rwlock_try_write(&a), 0);
    CHECK_EQ(ox_rwlock_try_write(&b), 0);
    ox_rwlock_write_unlock(&b);
    ox_rwlock_write_unlock(&a);
    CHECK_EQ(ox_test_rwlock_count(&a) + ox_test_rwlock_count(&b), 0);
}

OX_TEST_OPTS(rwlock_destroy_with_a_dispersed_reader_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "destroying an rwlock locked for reading")
{
    ox_rwlock l = OX_RWLOCK_INIT;
    ox_test_rwlock_disperse(&l);
    CHECK_EQ(ox_rwlock_read(&l), 0);
    ox_rwlock_destroy(&l);
}

OX_TEST_OPTS(rwlock_dispersed_reader_unlocked_as_writer_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "is held for reading by thread 'main', not for writing")
{
    ox_rwlock l = OX_RWLOCK_INIT;
    ox_test_rwlock_disperse(&l);
    CHECK_EQ(ox_rwlock_read(&l), 0);
    ox_rwlock_write_unlock(&l);
}

/* A writer that finds no reader in a slot, nor a trace of one on another
 * CPU's line, sends readers back to the count; they spread again once two
 * overlap there. */
OX_TEST(rwlock_dispersed_readers_gather_again_after_a_lone_write)
{
    ox_test_pin(0, ox_test_first_allowed_cpu()); /* its traces on its own line */
    ox_rwlock l = OX_RWLOCK_INIT;
    ox_test_rwlock_disperse(&l);
    CHECK(ox_test_rwlock_copy(&l));
    CHECK_EQ(ox_rwlock_write(&l), 0);
    ox_rwlock_write_unlock(&l);
    CHECK_EQ(atomic_load(&l.state) & OX__RW_DISPERSED, 0);
    CHECK(!ox_test_rwlock_copy(&l)); /* the inline read goes straight to the count */
    CHECK_EQ(ox_rwlock_read(&l), 0);
    CHECK_EQ(ox_test_rwlock_count(&l), 1); /* the count, not a slot */
    CHECK_EQ(ox_rwlock_read(&l), 0);
    CHECK(atomic_load(&l.state) & OX__RW_DISPERSED); /* overlapped */
    ox_rwlock_read_unlock(&l);
    ox_rwlock_read_unlock(&l);
    ox_test_rwlock_disperse(&l);
    CHECK_EQ(ox_rwlock_try_write(&l), 0); /* try_write gathers them too */
    ox_rwlock_write_unlock(&l);
    CHECK_EQ(atomic_load(&l.state) & OX__RW_DISPERSED, 0);
    CHECK(!ox_test_rwlock_copy(&l));
    CHECK_EQ(ox_test_rwlock_count(&l), 0);
}

/* The copy of DISPERSED only routes: a reader it sends the wrong way still
 * gets the lock, and one sent to the count on a dispersed lock sets the
 * copy again. (They differ for a moment when a reader disperses the
 * readers: it sets the bit, then the copy.) */
OX_TEST(rwlock_dispersed_copy_that_lags_only_reroutes_a_reader)
{
    ox_test_pin(0, ox_test_first_allowed_cpu());
    ox_rwlock l = OX_RWLOCK_INIT;
    ox_test_rwlock_disperse(&l);
    ox_test_rwlock_force_copy(&l, false); /* not set yet */
    CHECK_EQ(ox_rwlock_read(&l), 0);
    CHECK_EQ(ox_test_rwlock_count(&l), 1); /* through the count, which works on any lock */
    CHECK(ox_test_rwlock_copy(&l));        /* and it set the copy */
    ox_rwlock_read_unlock(&l);
    CHECK_EQ(ox_test_rwlock_count(&l), 0);
    CHECK_EQ(ox_rwlock_read(&l), 0);
    CHECK_EQ(ox_test_rwlock_count(&l), 0); /* now in a slot */
    (void)my_newest_slot();
    ox_rwlock_read_unlock(&l);

    CHECK_EQ(ox_rwlock_write(&l), 0); /* gathers them */
    ox_rwlock_write_unlock(&l);
    ox_test_rwlock_force_copy(&l, true); /* not cleared yet */
    CHECK_EQ(ox_rwlock_read(&l), 0);
    CHECK_EQ(ox_test_rwlock_count(&l), 1); /* the slot path found the bit clear */
    ox_rwlock_read_unlock(&l);
    CHECK_EQ(atomic_load(&l.state), 0);
    ox_test_rwlock_force_copy(&l, false);
    ox_rwlock_destroy(&l);
}

struct woken {
    ox_rwlock l;
    _Atomic int done;
    bool copy_when_in; /* the copy, once woken and holding the lock */
};

static void *write_once(void *arg)
{
    struct woken *w = arg;
    CHECK_EQ(ox_rwlock_write(&w->l), 0);
    w->copy_when_in = ox_test_rwlock_copy(&w->l);
    ox_rwlock_write_unlock(&w->l);
    atomic_store(&w->done, 1);
    return NULL;
}

/* Waking a writer bumps writer_notify by 2: its bit 0 is the copy, which
 * an odd step would flip (and send every later read to the slots). The
 * writer's own unlock bumps it again (it kept WRITERS_WAITING for writers
 * that might still sleep), so the copy is looked at in between. */
OX_TEST(rwlock_writer_wakes_leave_the_copy_alone)
{
    static struct woken w;
    for (int round = 0; round < 10; round++) {
        memset(&w, 0, sizeof w);
        ox_rwlock_init(&w.l);
        ox_test_rwlock_end_bias(&w.l);
        CHECK_EQ(ox_rwlock_read(&w.l), 0);
        uint32_t before = atomic_load(&w.l.writer_notify);
        ox_join_handle h = ox_thread_spawn(write_once, &w);
        ox_test_wait_blocked_on(&w.l, 1);
        ox_thread_sleep(OX_MILLIS(1)); /* from the registry into the futex */
        ox_rwlock_read_unlock(&w.l);   /* wakes it */
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        uint32_t step = atomic_load(&w.l.writer_notify) - before;
        CHECK(step > 0 && step % 2 == 0);
        CHECK(!w.copy_when_in);
        CHECK(!ox_test_rwlock_copy(&w.l));
        CHECK_EQ(ox_rwlock_read(&w.l), 0);
        CHECK_EQ(ox_test_rwlock_count(&w.l), 1); /* so the next read still uses the count */
        ox_rwlock_read_unlock(&w.l);
        ox_rwlock_destroy(&w.l);
    }
}

struct elsewhere {
    ox_rwlock l;
    int cpu;
};

static void *read_once_on(void *arg)
{
    struct elsewhere *e = arg;
    ox_test_pin(0, e->cpu);
    CHECK_EQ(ox_rwlock_read(&e->l), 0);
    (void)my_newest_slot();
    ox_rwlock_read_unlock(&e->l);
    return NULL;
}

/* Readers on another CPU that used the lock since the last write keep it
 * dispersed (their traces); a write with none since gathers them. */
OX_TEST(rwlock_dispersed_readers_stay_spread_while_another_cpu_reads)
{
    int mine = ox_test_first_allowed_cpu();
    static struct elsewhere e;
    memset(&e, 0, sizeof e);
    ox_rwlock_init(&e.l);
    e.cpu = ox_test_other_allowed_cpu(mine);
    ox_test_pin(0, mine);
    ox_test_rwlock_disperse(&e.l); /* traces on this CPU's line only */
    ox_join_handle h = ox_thread_spawn(read_once_on, &e);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(ox_rwlock_write(&e.l), 0);
    ox_rwlock_write_unlock(&e.l);
    if (e.cpu != mine) /* else the machine has one CPU for us: one line */
        CHECK(atomic_load(&e.l.state) & OX__RW_DISPERSED);
    CHECK_EQ(ox_rwlock_write(&e.l), 0); /* no reads since: gathered */
    ox_rwlock_write_unlock(&e.l);
    CHECK_EQ(atomic_load(&e.l.state) & OX__RW_DISPERSED, 0);
    ox_rwlock_destroy(&e.l);
}
