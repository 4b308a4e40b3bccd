/* RwLock readers of a biased lock (src/sync/rwlock.c, "Biased readers"): a
 * lock from OX_RWLOCK_INIT or ox_rwlock_init takes its readers in slots of
 * their thread's own line, with plain stores; its first writer fences every
 * thread, waits for the readers it finds there, and ends the bias.
 * White-box where the state and the held-lock record show what happened. */
#define _GNU_SOURCE /* pthread_setaffinity_np via helpers */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "../src/sync/rwlock_slots.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

static uint32_t state_of(ox_rwlock *l)
{
    return atomic_load(&l->state);
}

/* Whether the calling thread's newest read lock sits in an own slot. */
static bool newest_read_in_own_slot(void)
{
    const ox__unwind_state *u = ox__unwind_current();
    CHECK(u->depth > 0);
    const ox__unwind_entry *e = &u->entries[u->depth - 1];
    return e->u.lock_ops == &ox__rwlock_own_read_ops;
}

OX_TEST(rwlock_biased_reader_takes_an_own_slot_and_the_first_writer_ends_the_bias)
{
    ox_rwlock l = OX_RWLOCK_INIT;
    CHECK(state_of(&l) & OX__RW_BIASED);
    CHECK(ox_test_rwlock_copy(&l));
    CHECK_EQ(ox_rwlock_read(&l), 0);
    CHECK(newest_read_in_own_slot());
    CHECK_EQ(ox_test_rwlock_count(&l), 0);
    ox_rwlock_read_unlock(&l);
    CHECK_EQ(ox_rwlock_write(&l), 0);
    CHECK_EQ(state_of(&l), OX__RW_WRITE_LOCKED); /* no bias, no mark left */
    CHECK(!ox_test_rwlock_copy(&l));
    ox_rwlock_write_unlock(&l);
    CHECK_EQ(ox_rwlock_read(&l), 0); /* through the count from now on */
    CHECK_EQ(ox_test_rwlock_count(&l), 1);
    ox_rwlock_read_unlock(&l);
    ox_rwlock_destroy(&l);
    /* ox_rwlock_init biases a used lock again; a zeroed one is not biased. */
    ox_rwlock_init(&l);
    CHECK_EQ(state_of(&l), OX__RW_BIASED);
    memset(&l, 0, sizeof l);
    CHECK_EQ(ox_rwlock_read(&l), 0);
    CHECK_EQ(ox_test_rwlock_count(&l), 1);
    ox_rwlock_read_unlock(&l);
}

/* More nested read locks than an own line has slots: the rest go to the
 * count (and, once two overlap there, to a CPU's line), and the unlocks
 * give each back where it came from. */
OX_TEST(rwlock_biased_reads_beyond_a_full_line_use_the_count)
{
    /* On one CPU throughout: the last read past the line takes a slot in
     * this CPU's line, and a writer on another CPU would see it as a reader
     * elsewhere and keep the lock dispersed (seen once in the aarch64 suite
     * under qemu, before this pin). Each test runs in its own process. */
    ox_test_pin(0, ox_test_first_allowed_cpu());
    ox_rwlock l = OX_RWLOCK_INIT;
    enum { NESTED = 10 };
    int in_own = 0;
    for (int i = 0; i < NESTED; i++) {
        CHECK_EQ(ox_rwlock_read(&l), 0);
        in_own += newest_read_in_own_slot();
    }
    CHECK(in_own >= 1 && in_own < NESTED);
    CHECK(ox_test_rwlock_count(&l) >= 1 && ox_test_rwlock_count(&l) <= (uint32_t)(NESTED - in_own));
    for (int i = 0; i < NESTED; i++)
        ox_rwlock_unlock(&l); /* the generic unlock, newest first */
    CHECK_EQ(ox_test_rwlock_count(&l), 0);
    CHECK_EQ(ox_rwlock_try_write(&l), 0); /* nobody left in an own slot */
    ox_rwlock_write_unlock(&l);
    CHECK_EQ(state_of(&l), 0); /* a lone writer on the readers' CPU gathers them */
}

struct biased_pair {
    ox_rwlock l;
    int data; /* written by the main thread under its read lock's end */
    int seen; /* what the writer read */
    _Atomic bool in;
    ox_nanos timeout; /* 0: untimed */
    int rc;
};

static void *write_and_read_data(void *arg)
{
    struct biased_pair *p = arg;
    p->rc = p->timeout ? ox_rwlock_write_timeout(&p->l, p->timeout) : ox_rwlock_write(&p->l);
    if (p->rc == 0) {
        atomic_store(&p->in, true);
        p->seen = p->data;
        ox_rwlock_write_unlock(&p->l);
    }
    return NULL;
}

/* The writer finds the reader in its own slot, marks itself waiting (new
 * readers stay out), sleeps, and is woken by the reader's plain leave; it
 * sees what the reader wrote before leaving (release, acquire). */
/* Each way out of an own slot wakes the writer waiting for it: the inline
 * unlock, and the library's leave (ox_rwlock_unlock, an unlock out of
 * order), which a reader turned away by a writer also takes. */
OX_TEST(rwlock_biased_writer_sleeps_until_the_reader_leaves_its_own_slot)
{
    static struct biased_pair p;
    ox_rwlock other = OX_RWLOCK_INIT;
    for (int round = 0; round < 6; round++) {
        memset(&p, 0, sizeof p);
        ox_rwlock_init(&p.l);
        CHECK_EQ(ox_rwlock_read(&p.l), 0);
        ox_join_handle h = ox_thread_spawn(write_and_read_data, &p);
        ox_test_wait_blocked_on(&p.l, 1);
        CHECK(!atomic_load(&p.in));
        uint32_t s = state_of(&p.l);
        CHECK_EQ(s & (OX__RW_WRITE_LOCKED | OX__RW_WRITERS_WAITING | OX__RW_BIASED),
                 OX__RW_WRITE_LOCKED | OX__RW_WRITERS_WAITING | OX__RW_BIASED);
        CHECK_EQ(ox_rwlock_try_read(&p.l), OX_EBUSY); /* writer preference */
        p.data = 40 + round;
        if (round % 3 == 0) {
            ox_rwlock_read_unlock(&p.l); /* wakes it */
        } else if (round % 3 == 1) {
            ox_rwlock_unlock(&p.l);
        } else {
            CHECK_EQ(ox_rwlock_read(&other), 0);
            ox_rwlock_read_unlock(&p.l); /* not on top */
            ox_rwlock_read_unlock(&other);
        }
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        CHECK_EQ(p.rc, 0);
        CHECK_EQ(p.seen, 40 + round);
        CHECK_EQ(state_of(&p.l) & (OX__RW_BIASED | OX__RW_WRITE_LOCKED), 0);
        ox_rwlock_destroy(&p.l);
    }
}

/* A timed writer gives up while the reader stays: the lock is left biased
 * and unlocked, the reader keeps it, and the next writer ends the bias. */
OX_TEST(rwlock_biased_timed_writer_gives_up_and_leaves_the_bias)
{
    static struct biased_pair p;
    memset(&p, 0, sizeof p);
    ox_rwlock_init(&p.l);
    p.timeout = OX_MILLIS(20);
    CHECK_EQ(ox_rwlock_read(&p.l), 0);
    ox_join_handle h = ox_thread_spawn(write_and_read_data, &p);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(p.rc, OX_ETIMEDOUT);
    CHECK_EQ(state_of(&p.l), OX__RW_BIASED | OX__RW_OWN_SLOTS_USED); /* no writer, no mark */
    CHECK_EQ(ox_rwlock_read(&p.l), 0);                               /* readers are let in again */
    CHECK(newest_read_in_own_slot());
    CHECK_EQ(ox_rwlock_try_write(&p.l), OX_EBUSY);
    CHECK_EQ(state_of(&p.l), OX__RW_BIASED | OX__RW_OWN_SLOTS_USED);
    ox_rwlock_read_unlock(&p.l);
    ox_rwlock_read_unlock(&p.l);
    CHECK_EQ(ox_rwlock_try_write(&p.l), 0);
    CHECK_EQ(state_of(&p.l), OX__RW_WRITE_LOCKED);
    ox_rwlock_write_unlock(&p.l);
}

static void *read_panics(void *arg)
{
    CHECK_EQ(ox_rwlock_read(arg), 0);
    CHECK(newest_read_in_own_slot());
    ox_panic("a reader of a biased lock panics");
}

/* A panic unwinds through a biased read lock: the slot is left, the lock
 * is not poisoned, and a writer gets in at once. */
OX_TEST(rwlock_biased_reader_panic_leaves_its_slot)
{
    static ox_rwlock l = OX_RWLOCK_INIT;
    ox_panic_set_hook(ox_test_quiet_hook);
    ox_join_handle h = ox_thread_spawn(read_panics, &l);
    ox_panic_payload *payload = NULL;
    CHECK_EQ(ox_thread_join(&h, NULL, &payload), OX_EPANICKED);
    ox_panic_payload_free(payload);
    CHECK(!ox_rwlock_is_poisoned(&l));
    CHECK_EQ(ox_rwlock_try_write(&l), 0);
    ox_rwlock_write_unlock(&l);
}

static void *read_once_biased(void *arg)
{
    CHECK_EQ(ox_rwlock_read(arg), 0);
    bool own = newest_read_in_own_slot();
    ox_rwlock_read_unlock(arg);
    return (void *)(uintptr_t)own;
}

/* A thread's own line goes back when it ends: more threads than there are
 * lines, one after another, each find one. */
OX_TEST_OPTS(rwlock_biased_lines_of_ended_threads_are_reused, .timeout_s = 60)
{
    static ox_rwlock l = OX_RWLOCK_INIT;
    for (int i = 0; i < 4096 + 200; i++) {
        ox_join_handle h = ox_thread_spawn(read_once_biased, &l);
        void *own = NULL;
        CHECK_EQ(ox_thread_join(&h, &own, NULL), 0);
        if (own == NULL)
            ox_test_fail(__FILE__, __LINE__, "thread %d found no own line", i);
    }
}

/* A task takes a biased read lock, blocks, and may resume on another
 * worker, where it leaves the slot (of the first worker's line): the
 * writers that wait for it are woken all the same. */
static struct {
    ox_rwlock locks[64];
    int data[64];
    _Atomic int readers_in[64];
} hop;

static void *hopping_reader(void *arg)
{
    int i = (int)(intptr_t)arg;
    CHECK_EQ(ox_rwlock_read(&hop.locks[i]), 0);
    atomic_fetch_add(&hop.readers_in[i], 1);
    int before = hop.data[i];
    ox_thread_sleep(OX_MILLIS(1)); /* a task parks: it may resume elsewhere */
    CHECK_EQ(hop.data[i], before);
    atomic_fetch_sub(&hop.readers_in[i], 1);
    ox_rwlock_read_unlock(&hop.locks[i]);
    return NULL;
}

static void *hop_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 64; i++) {
        CHECK_EQ(ox_rwlock_write(&hop.locks[i]), 0);
        CHECK_EQ(atomic_load(&hop.readers_in[i]), 0);
        hop.data[i]++;
        ox_rwlock_write_unlock(&hop.locks[i]);
    }
    return NULL;
}

OX_TEST_OPTS(rwlock_biased_task_leaves_its_slot_from_another_worker, .timeout_s = 60)
{
    for (int i = 0; i < 64; i++)
        ox_rwlock_init(&hop.locks[i]);
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle tasks[64];
    for (int i = 0; i < 64; i++)
        tasks[i] = ox_test_spawn_on(rt, hopping_reader, (void *)(intptr_t)i);
    ox_join_handle w = ox_thread_spawn(hop_writer, NULL);
    for (int i = 0; i < 64; i++)
        CHECK_EQ(ox_task_join(&tasks[i], NULL, NULL), 0);
    CHECK_EQ(ox_thread_join(&w, NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    for (int i = 0; i < 64; i++) {
        CHECK_EQ(hop.data[i], 1);
        CHECK_EQ(state_of(&hop.locks[i]) & (OX__RW_BIASED | OX__RW_WRITE_LOCKED), 0);
    }
}

/* ---- writers ending the bias while readers come and go ---- */

/* Readers chase the writer through an array of fresh biased locks, so
 * that most first writes race readers taking and leaving own slots. Each
 * lock guards a pair the writer keeps equal; readers count themselves in;
 * a writer inside beside a reader (a missed slot, or a reader let in past
 * WRITE_LOCKED) shows as a torn pair or a non-zero count. */
enum { CHASE_LOCKS = 256, CHASE_READERS = 3 };

static struct {
    ox_rwlock locks[CHASE_LOCKS];
    struct {
        long a, b;
    } pair[CHASE_LOCKS];
    _Atomic int readers_in[CHASE_LOCKS];
    _Atomic int writer_at; /* the lock the writer takes next; CHASE_LOCKS: done */
    _Atomic long reads, torn;
} chase;

static void *chasing_reader(void *arg)
{
    uint32_t x = 0x9e3779b9u * (uint32_t)(uintptr_t)arg + 1;
    for (;;) {
        int at = atomic_load(&chase.writer_at);
        if (at >= CHASE_LOCKS)
            return NULL;
        int i = at + (int)(ox_test_rand(&x) % 3); /* at, or just ahead of it */
        if (i >= CHASE_LOCKS)
            continue;
        CHECK_EQ(ox_rwlock_read(&chase.locks[i]), 0);
        atomic_fetch_add(&chase.readers_in[i], 1);
        if (chase.pair[i].a != chase.pair[i].b)
            atomic_fetch_add(&chase.torn, 1);
        atomic_fetch_sub(&chase.readers_in[i], 1);
        ox_rwlock_read_unlock(&chase.locks[i]);
        atomic_fetch_add(&chase.reads, 1);
    }
}

OX_TEST_OPTS(rwlock_biased_first_writers_exclude_readers_they_race, .timeout_s = 60)
{
    ox_test_budget b = ox_test_budget_start(3, ox_test_scaled(20));
    long rounds = 0;
    for (; ox_test_budget_more(&b, rounds); rounds++) {
        for (int i = 0; i < CHASE_LOCKS; i++)
            ox_rwlock_init(&chase.locks[i]);
        atomic_store(&chase.writer_at, 0);
        ox_join_handle r[CHASE_READERS];
        for (int t = 0; t < CHASE_READERS; t++)
            r[t] = ox_thread_spawn(chasing_reader, (void *)(uintptr_t)(t + 1));
        for (int i = 0; i < CHASE_LOCKS; i++) {
            CHECK_EQ(ox_rwlock_write(&chase.locks[i]), 0);
            if (atomic_load(&chase.readers_in[i]) != 0)
                ox_test_fail(__FILE__, __LINE__, "lock %d: a reader inside beside the writer", i);
            chase.pair[i].a++;
            ox_thread_yield(); /* a reader that got in would see the pair torn */
            chase.pair[i].b++;
            ox_rwlock_write_unlock(&chase.locks[i]);
            atomic_store(&chase.writer_at, i + 1);
        }
        for (int t = 0; t < CHASE_READERS; t++)
            CHECK_EQ(ox_thread_join(&r[t], NULL, NULL), 0);
        for (int i = 0; i < CHASE_LOCKS; i++)
            CHECK_EQ(state_of(&chase.locks[i]) & (OX__RW_BIASED | OX__RW_READERS_MASK), 0);
    }
    CHECK_EQ(atomic_load(&chase.torn), 0);
    CHECK(atomic_load(&chase.reads) > 0);
}

/* ---- misuse ---- */

static void *write_blocks(void *arg)
{
    CHECK_EQ(ox_rwlock_write(arg), 0);
    ox_rwlock_write_unlock(arg);
    return NULL;
}

/* A reader in an own slot asks again while the writer waits for that very
 * slot: it would wait for itself. */
OX_TEST_OPTS(rwlock_biased_reader_reading_again_behind_its_writer_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "would deadlock")
{
    static ox_rwlock l = OX_RWLOCK_INIT;
    CHECK_EQ(ox_rwlock_read(&l), 0);
    ox_join_handle h = ox_thread_spawn(write_blocks, &l);
    ox_test_wait_blocked_on(&l, 1);
    (void)!ox_rwlock_read(&l);
    (void)!ox_thread_join(&h, NULL, NULL);
}

OX_TEST_OPTS(rwlock_biased_reader_asking_to_write_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "would deadlock")
{
    static ox_rwlock l = OX_RWLOCK_INIT;
    CHECK_EQ(ox_rwlock_read(&l), 0);
    (void)!ox_rwlock_write(&l);
}

OX_TEST_OPTS(rwlock_destroy_with_a_biased_reader_aborts, .expect_signal = SIGABRT,
             .expect_stderr = "destroying an rwlock locked for reading")
{
    static ox_rwlock l = OX_RWLOCK_INIT;
    CHECK_EQ(ox_rwlock_read(&l), 0);
    ox_rwlock_destroy(&l);
}

/* ---- the store-buffer race: a reader's take against a writer's mark ----
 *
 * A reader stores into its own slot and loads the state with no fence
 * between; a writer sets WRITE_LOCKED and scans. Without the writer's
 * process-wide fence, x86 lets both miss each other (the reader's store
 * still in its store buffer when the scan runs). The two start each round
 * together on a fresh lock, then stay inside a while, each checking the
 * other's flag (sequentially consistent, so that if both are inside at
 * once, one of them sees the other). */
static struct {
    ox_rwlock l;
    _Atomic long round; /* the reader's and the writer's go */
    _Atomic int done;   /* both finished the round */
    _Atomic bool reader_in, writer_in;
    _Atomic long overlaps;
    long rounds;
} sb;

static void stay_inside(_Atomic bool *me, _Atomic bool *other)
{
    atomic_store(me, true);
    for (int i = 0; i < 200; i++)
        if (atomic_load(other))
            atomic_fetch_add(&sb.overlaps, 1);
    atomic_store(me, false);
}

static void *sb_reader(void *arg)
{
    (void)arg;
    for (long r = 1; r <= sb.rounds; r++) {
        while (atomic_load_explicit(&sb.round, memory_order_acquire) != r)
            ;
        CHECK_EQ(ox_rwlock_read(&sb.l), 0);
        stay_inside(&sb.reader_in, &sb.writer_in);
        ox_rwlock_read_unlock(&sb.l);
        atomic_fetch_add(&sb.done, 1);
    }
    return NULL;
}

OX_TEST_OPTS(rwlock_biased_reader_and_first_writer_starting_together_never_overlap, .timeout_s = 60)
{
    sb.rounds = ox_test_scaled(20000);
    ox_join_handle h = ox_thread_spawn(sb_reader, NULL);
    for (long r = 1; r <= sb.rounds; r++) {
        ox_rwlock_init(&sb.l);
        atomic_store(&sb.done, 0);
        atomic_store_explicit(&sb.round, r, memory_order_release);
        CHECK_EQ(ox_rwlock_write(&sb.l), 0);
        stay_inside(&sb.writer_in, &sb.reader_in);
        ox_rwlock_write_unlock(&sb.l);
        while (atomic_load(&sb.done) != 1)
            ;
    }
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&sb.overlaps), 0);
}

/* ---- what a writer that waits, or gives up, costs the readers ---- */

/* Two biased locks on different cache lines, so on different counts of
 * waiting writers (ox__rw_own_waiting_for). */
static struct {
    _Alignas(64) ox_rwlock l;
} ww_lock[2] = {{OX_RWLOCK_INIT}, {OX_RWLOCK_INIT}};
static _Atomic int ww_release, ww_held;

static void *ww_hold_first(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_rwlock_read(&ww_lock[0].l), 0);
    CHECK(newest_read_in_own_slot());
    atomic_store(&ww_held, 1);
    while (!atomic_load(&ww_release))
        ox_thread_sleep(OX_MILLIS(1));
    ox_rwlock_read_unlock(&ww_lock[0].l);
    return NULL;
}

static void *ww_write_first(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_rwlock_write(&ww_lock[0].l), 0);
    ox_rwlock_write_unlock(&ww_lock[0].l);
    return NULL;
}

/* While the first writer of one lock waits for a reader in its own slot
 * (for as long as that reader stays), the biased unlocks of another lock
 * go on as before: they bump no line's count of leaves and wake nobody.
 * (One count for all locks made each of them a futex wake, 1.5 us.) */
OX_TEST(rwlock_biased_writer_waiting_on_one_lock_leaves_other_unlocks_alone)
{
    CHECK(ox__rw_own_waiting_for(&ww_lock[0].l) != ox__rw_own_waiting_for(&ww_lock[1].l));
    ox_join_handle h = ox_thread_spawn(ww_hold_first, NULL);
    while (!atomic_load(&ww_held))
        ox_thread_sleep(OX_MICROS(100));
    ox_join_handle w = ox_thread_spawn(ww_write_first, NULL);
    ox_test_wait_blocked_on(&ww_lock[0].l, 1);
    CHECK(atomic_load(ox__rw_own_waiting_for(&ww_lock[0].l)) == 1);
    CHECK_EQ(ox_rwlock_read(&ww_lock[1].l), 0);
    CHECK(newest_read_in_own_slot());
    ox_rwlock_read_unlock(&ww_lock[1].l);
    uint32_t tag = ox__unwind_current()->rw_own_tag;
    uint32_t leaves = atomic_load(&ox__rw_own_lines[tag / 8].leaves);
    for (int i = 0; i < 10000; i++) {
        CHECK_EQ(ox_rwlock_read(&ww_lock[1].l), 0);
        ox_rwlock_read_unlock(&ww_lock[1].l);
    }
    CHECK_EQ(atomic_load(&ox__rw_own_lines[tag / 8].leaves), leaves);
    atomic_store(&ww_release, 1);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(ox_thread_join(&w, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&ww_lock[0].l.state) & OX__RW_BIASED, 0);
}

static struct {
    ox_rwlock l;
    _Atomic int reader_in, stop, counted;
} poll_w = {OX_RWLOCK_INIT, 0, 0, 0};

static void *poll_hold(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_rwlock_read(&poll_w.l), 0);
    CHECK(newest_read_in_own_slot());
    atomic_store(&poll_w.reader_in, 1);
    while (!atomic_load(&poll_w.stop))
        ox_thread_sleep(OX_MILLIS(1));
    ox_rwlock_read_unlock(&poll_w.l);
    return NULL;
}

static void *poll_watch(void *arg)
{
    (void)arg;
    while (!atomic_load(&poll_w.stop))
        if (atomic_load_explicit(ox__rw_own_waiting_for(&poll_w.l), memory_order_relaxed) != 0)
            atomic_store(&poll_w.counted, 1);
    return NULL;
}

/* A try_write, or a write whose deadline has passed, that finds a reader
 * in an own slot gives up without counting itself as waiting and without
 * the fence (a watcher on the other CPU sees the count stay 0): a loop of
 * them polling a read-held biased lock would otherwise make every running
 * thread pass a barrier on each try. The lock stays biased, and the
 * reader in its slot. */
OX_TEST(rwlock_biased_writers_that_will_not_wait_give_up_without_the_fence)
{
    ox_join_handle h = ox_thread_spawn(poll_hold, NULL);
    while (!atomic_load(&poll_w.reader_in))
        ox_thread_sleep(OX_MICROS(100));
    ox_join_handle watch = ox_thread_spawn(poll_watch, NULL);
    for (int i = 0; i < 2000; i++) {
        CHECK_EQ(ox_rwlock_try_write(&poll_w.l), OX_EBUSY);
        CHECK_EQ(ox_rwlock_write_timeout(&poll_w.l, 0), OX_ETIMEDOUT);
    }
    atomic_store(&poll_w.stop, 1);
    CHECK_EQ(ox_thread_join(&watch, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&poll_w.counted), 0);
    CHECK_EQ(atomic_load(&poll_w.l.state) & (OX__RW_BIASED | OX__RW_WRITE_LOCKED), OX__RW_BIASED);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(ox_rwlock_try_write(&poll_w.l), 0); /* the reader gone, it ends the bias */
    CHECK_EQ(atomic_load(&poll_w.l.state), OX__RW_WRITE_LOCKED);
    ox_rwlock_write_unlock(&poll_w.l);
}
