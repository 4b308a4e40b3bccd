/* break42: attacks on the biased rwlock reader, second round (d2f7912..):
 * counts of waiting writers per lock-address hash, the no-fence give-up of
 * writers that will not wait, acquire/release takes, OWN_SLOTS_USED only
 * onto a biased lock. */
#define _GNU_SOURCE
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "../src/sync/rwlock_slots.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static uint32_t st(ox_rwlock *l)
{
    return atomic_load(&l->state);
}

/* ---- A: many locks, some sharing a count of waiting writers ---- */

/* Locks laid out so that several share a count (same 64-byte line, or
 * 4096 bytes apart) and others do not. */
enum { MA_LOCKS = 10, MA_READERS = 3, MA_WRITERS = 2 };
static const size_t ma_offset[MA_LOCKS] = {0,    8,  16,        24,      4096,
                                           4104, 64, 4096 + 64, 128 + 8, 8192 + 128};
static _Alignas(4096) char ma_arena[3 * 4096];
static struct {
    long a, b;
    _Atomic int readers_in;
    _Atomic int writer_in;
} ma_data[MA_LOCKS];
static _Atomic int ma_stop;
static _Atomic long ma_reads, ma_bad;

static ox_rwlock *ma_lock(int i)
{
    return (ox_rwlock *)(ma_arena + ma_offset[i]);
}

static void ma_enter_read(int i)
{
    atomic_fetch_add(&ma_data[i].readers_in, 1);
    if (atomic_load(&ma_data[i].writer_in) || ma_data[i].a != ma_data[i].b)
        atomic_fetch_add(&ma_bad, 1);
}

static void ma_leave_read(int i)
{
    if (atomic_load(&ma_data[i].writer_in) || ma_data[i].a != ma_data[i].b)
        atomic_fetch_add(&ma_bad, 1);
    atomic_fetch_sub(&ma_data[i].readers_in, 1);
}

static void *ma_reader(void *arg)
{
    uint32_t x = 0x9e3779b9u * (uint32_t)(uintptr_t)arg + 7;
    while (!atomic_load(&ma_stop)) {
        int i = (int)(ox_test_rand(&x) % MA_LOCKS);
        int j = i + 1 + (int)(ox_test_rand(&x) % MA_LOCKS); /* ascending: no cycle */
        bool two = j < MA_LOCKS && (ox_test_rand(&x) & 1);
        CHECK_EQ(ox_rwlock_read(ma_lock(i)), 0);
        ma_enter_read(i);
        if (two) {
            CHECK_EQ(ox_rwlock_read(ma_lock(j)), 0);
            ma_enter_read(j);
        }
        uint32_t r = ox_test_rand(&x) % 16;
        if (r == 0)
            ox_thread_sleep(OX_MICROS(50));
        else if (r < 4)
            ox_thread_yield();
        if (two) {
            ma_leave_read(j);
            if (ox_test_rand(&x) & 1) {
                ma_leave_read(i);
                ox_rwlock_read_unlock(ma_lock(i)); /* not on top: library leave */
                ox_rwlock_read_unlock(ma_lock(j));
                atomic_fetch_add(&ma_reads, 1);
                continue;
            }
            ox_rwlock_read_unlock(ma_lock(j));
        }
        ma_leave_read(i);
        if (ox_test_rand(&x) & 1)
            ox_rwlock_read_unlock(ma_lock(i));
        else
            ox_rwlock_unlock(ma_lock(i));
        atomic_fetch_add(&ma_reads, 1);
    }
    return NULL;
}

static void ma_write_body(int i)
{
    atomic_store(&ma_data[i].writer_in, 1);
    if (atomic_load(&ma_data[i].readers_in) != 0)
        atomic_fetch_add(&ma_bad, 1);
    ma_data[i].a++;
    ox_thread_yield();
    ma_data[i].b++;
    if (atomic_load(&ma_data[i].readers_in) != 0)
        atomic_fetch_add(&ma_bad, 1);
    atomic_store(&ma_data[i].writer_in, 0);
}

/* One first write of lock i, in mode (0 write, 1 timed, 2 try loop, 3
 * write_timeout(0) loop), until it gets in. */
static void ma_write_once(int i, int mode, uint32_t *x)
{
    ox_rwlock *l = ma_lock(i);
    for (;;) {
        int rc;
        switch (mode) {
        case 0:
            rc = ox_rwlock_write(l);
            break;
        case 1:
            rc = ox_rwlock_write_timeout(l, OX_MICROS(1 + ox_test_rand(x) % 300));
            break;
        case 2:
            rc = ox_rwlock_try_write(l);
            break;
        default:
            rc = ox_rwlock_write_timeout(l, 0);
            break;
        }
        if (rc == 0)
            break;
        CHECK(rc == OX_EBUSY || rc == OX_ETIMEDOUT);
        if (mode >= 2 && (ox_test_rand(x) & 3) == 0)
            ox_thread_yield();
    }
    ma_write_body(i);
    ox_rwlock_write_unlock(l);
}

static void *ma_writer(void *arg)
{
    int w = (int)(intptr_t)arg;
    uint32_t x = 0x85ebca6bu * (uint32_t)(w + 3);
    for (int i = w; i < MA_LOCKS; i += MA_WRITERS) {
        ma_write_once(i, (int)(ox_test_rand(&x) % 4), &x);
        /* and a few more, biased or not by now */
        for (int k = 0; k < 3; k++)
            ma_write_once(i, (int)(ox_test_rand(&x) % 4), &x);
    }
    return NULL;
}

OX_TEST_OPTS(break42_writers_of_locks_sharing_counts_exclude_readers, .timeout_s = 60)
{
    ox_test_budget b = ox_test_budget_start(3, ox_test_scaled(300));
    long rounds = 0;
    for (; ox_test_budget_more(&b, rounds); rounds++) {
        for (int i = 0; i < MA_LOCKS; i++)
            ox_rwlock_init(ma_lock(i));
        atomic_store(&ma_stop, 0);
        ox_join_handle r[MA_READERS], w[MA_WRITERS];
        for (int t = 0; t < MA_READERS; t++)
            r[t] = ox_thread_spawn(ma_reader, (void *)(uintptr_t)(t + 1 + rounds * 8));
        ox_thread_sleep(OX_MICROS(200)); /* the readers take own slots first */
        for (int t = 0; t < MA_WRITERS; t++)
            w[t] = ox_thread_spawn(ma_writer, (void *)(intptr_t)t);
        for (int t = 0; t < MA_WRITERS; t++)
            CHECK_EQ(ox_thread_join(&w[t], NULL, NULL), 0);
        atomic_store(&ma_stop, 1);
        for (int t = 0; t < MA_READERS; t++)
            CHECK_EQ(ox_thread_join(&r[t], NULL, NULL), 0);
        for (int i = 0; i < MA_LOCKS; i++) {
            uint32_t s = st(ma_lock(i));
            if (s & (OX__RW_BIASED | OX__RW_OWN_SLOTS_USED | OX__RW_WRITE_LOCKED |
                     OX__RW_READERS_MASK | OX__RW_WRITERS_WAITING | OX__RW_WRITER_WOKEN))
                ox_test_fail(__FILE__, __LINE__, "round %ld lock %d: state %#x left", rounds, i, s);
            ox_rwlock_destroy(ma_lock(i));
        }
        for (unsigned c = 0; c < OX__RW_OWN_WAITING_COUNTS; c++)
            CHECK_EQ(atomic_load(&ox__rw_own_waiting.writers[c]), 0);
    }
    CHECK_EQ(atomic_load(&ma_bad), 0);
    CHECK(atomic_load(&ma_reads) > 0);
    printf("rounds %ld reads %ld\n", rounds, atomic_load(&ma_reads));
}

/* ---- B: the writer frees the lock the moment the slot is empty ---- */

static struct {
    ox_rwlock *l;
    _Atomic int held, release, how;
} fr;

static void *fr_reader(void *arg)
{
    (void)arg;
    ox_rwlock *l = fr.l;
    CHECK_EQ(ox_rwlock_read(l), 0);
    const ox__unwind_state *u = ox__unwind_current();
    CHECK(u->entries[u->depth - 1].u.lock_ops == &ox__rwlock_own_read_ops);
    atomic_store(&fr.held, 1);
    while (!atomic_load(&fr.release))
        ;
    if (atomic_load(&fr.how))
        ox_rwlock_unlock(l);
    else
        ox_rwlock_read_unlock(l);
    return NULL;
}

static void *fr_writer(void *arg)
{
    ox_rwlock *l = fr.l;
    CHECK_EQ(ox_rwlock_write(l), 0);
    ox_rwlock_write_unlock(l);
    ox_rwlock_destroy(l);
    CHECK_EQ(munmap(arg, 4096), 0); /* any touch of l by the reader now faults */
    return NULL;
}

OX_TEST_OPTS(break42_writer_unmaps_the_lock_as_soon_as_its_reader_leaves, .timeout_s = 60)
{
    for (int round = 0; round < 300; round++) {
        void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(page != MAP_FAILED);
        fr.l = (ox_rwlock *)((char *)page + 64 * (round % 64));
        ox_rwlock_init(fr.l);
        atomic_store(&fr.held, 0);
        atomic_store(&fr.release, 0);
        atomic_store(&fr.how, round & 1);
        ox_join_handle r = ox_thread_spawn(fr_reader, NULL);
        while (!atomic_load(&fr.held))
            ox_thread_yield();
        ox_join_handle w = ox_thread_spawn(fr_writer, page);
        ox_test_wait_blocked_on(fr.l, 1);
        atomic_store(&fr.release, 1);
        CHECK_EQ(ox_thread_join(&w, NULL, NULL), 0);
        CHECK_EQ(ox_thread_join(&r, NULL, NULL), 0);
    }
}

/* ---- C: writers that will not wait, against readers in own slots ---- */

enum { TW_LOCKS = 64, TW_READERS = 2 };
static struct {
    ox_rwlock locks[TW_LOCKS];
    long a[TW_LOCKS], b[TW_LOCKS];
    _Atomic int readers_in[TW_LOCKS];
    _Atomic int writer_in[TW_LOCKS];
    _Atomic int at;
    _Atomic long bad, reads, busy, timedout;
} tw;

static void *tw_reader(void *arg)
{
    uint32_t x = 0x27d4eb2du * (uint32_t)(uintptr_t)arg + 1;
    for (;;) {
        int at = atomic_load(&tw.at);
        if (at >= TW_LOCKS)
            return NULL;
        int i = at + (int)(ox_test_rand(&x) % 2);
        /* Not the last lock: on one CPU, readers that yield inside their
         * reads of it would hold it whenever the polling writer runs (a
         * livelock of polling, as before writers that will not wait gave
         * up without the fence). */
        if (i >= TW_LOCKS - 1) {
            ox_thread_yield();
            continue;
        }
        CHECK_EQ(ox_rwlock_read(&tw.locks[i]), 0);
        atomic_fetch_add(&tw.readers_in[i], 1);
        if (atomic_load(&tw.writer_in[i]) || tw.a[i] != tw.b[i])
            atomic_fetch_add(&tw.bad, 1);
        if ((ox_test_rand(&x) & 7) == 0)
            ox_thread_yield();
        if (atomic_load(&tw.writer_in[i]) || tw.a[i] != tw.b[i])
            atomic_fetch_add(&tw.bad, 1);
        atomic_fetch_sub(&tw.readers_in[i], 1);
        ox_rwlock_read_unlock(&tw.locks[i]);
        atomic_fetch_add(&tw.reads, 1);
    }
}

OX_TEST_OPTS(break42_try_and_zero_timeout_writers_against_biased_readers, .timeout_s = 60)
{
    ox_test_budget b = ox_test_budget_start(3, ox_test_scaled(100));
    long rounds = 0;
    uint32_t x = 12345;
    for (; ox_test_budget_more(&b, rounds); rounds++) {
        for (int i = 0; i < TW_LOCKS; i++)
            ox_rwlock_init(&tw.locks[i]);
        atomic_store(&tw.at, 0);
        ox_join_handle r[TW_READERS];
        for (int t = 0; t < TW_READERS; t++)
            r[t] = ox_thread_spawn(tw_reader, (void *)(uintptr_t)(t + 1 + rounds * 4));
        for (int i = 0; i < TW_LOCKS; i++) {
            ox_rwlock *l = &tw.locks[i];
            int rc;
            long tries = 0;
            do {
                rc =
                    (ox_test_rand(&x) & 1) ? ox_rwlock_try_write(l) : ox_rwlock_write_timeout(l, 0);
                if (rc == OX_EBUSY)
                    atomic_fetch_add(&tw.busy, 1);
                else if (rc == OX_ETIMEDOUT)
                    atomic_fetch_add(&tw.timedout, 1);
                else
                    CHECK_EQ(rc, 0);
                if (rc != 0 && ++tries % 64 == 0)
                    ox_thread_yield();
            } while (rc != 0);
            atomic_store(&tw.writer_in[i], 1);
            if (atomic_load(&tw.readers_in[i]) != 0)
                atomic_fetch_add(&tw.bad, 1);
            tw.a[i]++;
            ox_thread_yield();
            tw.b[i]++;
            if (atomic_load(&tw.readers_in[i]) != 0)
                atomic_fetch_add(&tw.bad, 1);
            atomic_store(&tw.writer_in[i], 0);
            ox_rwlock_write_unlock(l);
            atomic_store(&tw.at, i + 1);
        }
        for (int t = 0; t < TW_READERS; t++)
            CHECK_EQ(ox_thread_join(&r[t], NULL, NULL), 0);
        for (int i = 0; i < TW_LOCKS; i++) {
            uint32_t s = st(&tw.locks[i]);
            if (s & (OX__RW_WRITE_LOCKED | OX__RW_READERS_MASK | OX__RW_WRITERS_WAITING |
                     OX__RW_WRITER_WOKEN | OX__RW_BIASED | OX__RW_OWN_SLOTS_USED))
                ox_test_fail(__FILE__, __LINE__, "round %ld lock %d: state %#x", rounds, i, s);
        }
    }
    CHECK_EQ(atomic_load(&tw.bad), 0);
    printf("rounds %ld reads %ld busy %ld timedout %ld\n", rounds, atomic_load(&tw.reads),
           atomic_load(&tw.busy), atomic_load(&tw.timedout));
}

/* ---- D: readers that queue behind a give-up ---- */

/* One reader holds a biased lock in its own slot; a blocking writer waits
 * for it (WRITERS_WAITING), more readers queue behind (READERS_WAITING);
 * pollers try_write / write_timeout(0) meanwhile can't get in (WRITE_LOCKED
 * is held by the waiting writer). Variant: no blocking writer, readers
 * queued behind a timed writer that gave up. All must finish. */
static struct {
    ox_rwlock l;
    _Atomic int hold, go, done_readers, readers_in, writer_in;
    _Atomic long bad;
} q;

static void *q_holder(void *arg)
{
    (void)arg;
    CHECK_EQ(ox_rwlock_read(&q.l), 0);
    atomic_fetch_add(&q.readers_in, 1);
    atomic_store(&q.hold, 1);
    while (!atomic_load(&q.go))
        ox_thread_sleep(OX_MICROS(100));
    atomic_fetch_sub(&q.readers_in, 1);
    ox_rwlock_read_unlock(&q.l);
    return NULL;
}

static void *q_reader(void *arg)
{
    (void)arg;
    for (int k = 0; k < 50; k++) {
        CHECK_EQ(ox_rwlock_read(&q.l), 0);
        atomic_fetch_add(&q.readers_in, 1);
        if (atomic_load(&q.writer_in))
            atomic_fetch_add(&q.bad, 1);
        atomic_fetch_sub(&q.readers_in, 1);
        ox_rwlock_read_unlock(&q.l);
    }
    atomic_fetch_add(&q.done_readers, 1);
    return NULL;
}

static void *q_poller(void *arg)
{
    uint32_t x = (uint32_t)(uintptr_t)arg * 77 + 1;
    while (atomic_load(&q.done_readers) < 2) {
        int rc = (ox_test_rand(&x) & 1)
                     ? ox_rwlock_try_write(&q.l)
                     : ox_rwlock_write_timeout(&q.l, (ox_test_rand(&x) & 1) ? 0 : OX_MICROS(20));
        if (rc == 0) {
            atomic_store(&q.writer_in, 1);
            if (atomic_load(&q.readers_in))
                atomic_fetch_add(&q.bad, 1);
            atomic_store(&q.writer_in, 0);
            ox_rwlock_write_unlock(&q.l);
        } else {
            CHECK(rc == OX_EBUSY || rc == OX_ETIMEDOUT);
        }
    }
    return NULL;
}

OX_TEST_OPTS(break42_readers_queued_behind_give_ups_all_get_in, .timeout_s = 60)
{
    for (int round = 0; round < 60; round++) {
        ox_rwlock_init(&q.l);
        atomic_store(&q.hold, 0);
        atomic_store(&q.go, 0);
        atomic_store(&q.done_readers, 0);
        ox_join_handle h = ox_thread_spawn(q_holder, NULL);
        while (!atomic_load(&q.hold))
            ox_thread_yield();
        ox_join_handle p = ox_thread_spawn(q_poller, (void *)(uintptr_t)(round + 1));
        ox_join_handle r1 = ox_thread_spawn(q_reader, NULL);
        ox_join_handle r2 = ox_thread_spawn(q_reader, NULL);
        ox_thread_sleep(OX_MICROS(300 + 100 * (round % 5)));
        atomic_store(&q.go, 1);
        CHECK_EQ(ox_thread_join(&r1, NULL, NULL), 0);
        CHECK_EQ(ox_thread_join(&r2, NULL, NULL), 0);
        CHECK_EQ(ox_thread_join(&p, NULL, NULL), 0);
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        uint32_t s = st(&q.l);
        if (s & (OX__RW_WRITE_LOCKED | OX__RW_READERS_MASK | OX__RW_WRITERS_WAITING |
                 OX__RW_WRITER_WOKEN))
            ox_test_fail(__FILE__, __LINE__, "round %d: state %#x", round, s);
        CHECK_EQ(ox_rwlock_try_write(&q.l), 0);
        ox_rwlock_write_unlock(&q.l);
    }
    CHECK_EQ(atomic_load(&q.bad), 0);
}

/* ---- E: OWN_SLOTS_USED never outlives BIASED ---- */

enum { OS_LOCKS = 128 };
static struct {
    ox_rwlock locks[OS_LOCKS];
    _Atomic int go, done;
} os_;

static void *os_reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&os_.go))
        ;
    for (int i = 0; i < OS_LOCKS; i++) {
        CHECK_EQ(ox_rwlock_read(&os_.locks[i]), 0);
        ox_rwlock_read_unlock(&os_.locks[i]);
    }
    atomic_fetch_add(&os_.done, 1);
    return NULL;
}

OX_TEST_OPTS(break42_own_slots_used_never_outlives_the_bias, .timeout_s = 60)
{
    ox_test_budget b = ox_test_budget_start(2, ox_test_scaled(200));
    long rounds = 0, stale = 0;
    for (; ox_test_budget_more(&b, rounds); rounds++) {
        for (int i = 0; i < OS_LOCKS; i++)
            ox_rwlock_init(&os_.locks[i]);
        atomic_store(&os_.go, 0);
        atomic_store(&os_.done, 0);
        ox_join_handle r = ox_thread_spawn(os_reader, NULL);
        atomic_store(&os_.go, 1);
        for (int i = 0; i < OS_LOCKS; i++) {
            CHECK_EQ(ox_rwlock_write(&os_.locks[i]), 0);
            ox_rwlock_write_unlock(&os_.locks[i]);
        }
        CHECK_EQ(ox_thread_join(&r, NULL, NULL), 0);
        for (int i = 0; i < OS_LOCKS; i++) {
            uint32_t s = st(&os_.locks[i]);
            if ((s & OX__RW_OWN_SLOTS_USED) && !(s & OX__RW_BIASED))
                stale++;
        }
    }
    CHECK_EQ(stale, 0);
}

/* ---- F: the last leave of a reader that reads no more wakes its writer ---- */

/* Each round: readers of four fresh biased locks (two share a count with
 * each other, through one 64-byte line; one shares with them from 4096
 * bytes away; one has a count of its own) take each lock once, hold it a
 * random moment, leave it (inline unlock, the library's, or out of order)
 * and never read it again; a writer per lock starts at a random moment.
 * A leave that reads another count than its writer's, or misses it, leaves
 * that writer asleep for good: the round's watchdog fails the test. */
enum { LW_LOCKS = 4, LW_READERS = 2 };
static const size_t lw_offset[LW_LOCKS] = {0, 8, 4096 + 16, 8192 + 64 * 5};
static _Alignas(4096) char lw_arena[3 * 4096];
static _Atomic int lw_finished;
static _Atomic int lw_readers_in[LW_LOCKS], lw_writer_in[LW_LOCKS];
static _Atomic long lw_bad;

static ox_rwlock *lw_lock(int i)
{
    return (ox_rwlock *)(lw_arena + lw_offset[i]);
}

struct lw_arg {
    uint32_t seed;
    int who;
};

static void *lw_reader(void *arg)
{
    struct lw_arg *a = arg;
    uint32_t x = a->seed;
    /* Two locks at a time, ascending, each read once. */
    for (int i = 0; i < LW_LOCKS; i += 2) {
        int j = i + 1;
        CHECK_EQ(ox_rwlock_read(lw_lock(i)), 0);
        atomic_fetch_add(&lw_readers_in[i], 1);
        CHECK_EQ(ox_rwlock_read(lw_lock(j)), 0);
        atomic_fetch_add(&lw_readers_in[j], 1);
        if (atomic_load(&lw_writer_in[i]) || atomic_load(&lw_writer_in[j]))
            atomic_fetch_add(&lw_bad, 1);
        ox_test_spin_ns((int64_t)(ox_test_rand(&x) % 20000));
        if (atomic_load(&lw_writer_in[i]) || atomic_load(&lw_writer_in[j]))
            atomic_fetch_add(&lw_bad, 1);
        atomic_fetch_sub(&lw_readers_in[i], 1);
        atomic_fetch_sub(&lw_readers_in[j], 1);
        switch (ox_test_rand(&x) % 3) {
        case 0:
            ox_rwlock_read_unlock(lw_lock(j));
            ox_rwlock_read_unlock(lw_lock(i));
            break;
        case 1:
            ox_rwlock_read_unlock(lw_lock(i)); /* out of order: the library's leave */
            ox_rwlock_read_unlock(lw_lock(j));
            break;
        default:
            ox_rwlock_unlock(lw_lock(j));
            ox_rwlock_unlock(lw_lock(i));
            break;
        }
    }
    return NULL;
}

static void *lw_writer(void *arg)
{
    struct lw_arg *a = arg;
    uint32_t x = a->seed;
    int i = a->who;
    ox_test_spin_ns((int64_t)(ox_test_rand(&x) % 20000));
    CHECK_EQ(ox_rwlock_write(lw_lock(i)), 0);
    atomic_store(&lw_writer_in[i], 1);
    if (atomic_load(&lw_readers_in[i]) != 0)
        atomic_fetch_add(&lw_bad, 1);
    atomic_store(&lw_writer_in[i], 0);
    ox_rwlock_write_unlock(lw_lock(i));
    atomic_fetch_add(&lw_finished, 1);
    return NULL;
}

OX_TEST_OPTS(break42_last_leave_wakes_the_writer_of_its_lock, .timeout_s = 60)
{
    CHECK(ox__rw_own_waiting_for(lw_lock(0)) == ox__rw_own_waiting_for(lw_lock(1)));
    CHECK(ox__rw_own_waiting_for(lw_lock(0)) == ox__rw_own_waiting_for(lw_lock(2)));
    CHECK(ox__rw_own_waiting_for(lw_lock(0)) != ox__rw_own_waiting_for(lw_lock(3)));
    ox_test_budget b = ox_test_budget_start(200, ox_test_scaled(3000));
    long rounds = 0;
    uint32_t x = 99;
    static struct lw_arg ra[LW_READERS], wa[LW_LOCKS];
    for (; ox_test_budget_more(&b, rounds); rounds++) {
        for (int i = 0; i < LW_LOCKS; i++)
            ox_rwlock_init(lw_lock(i));
        atomic_store(&lw_finished, 0);
        ox_join_handle r[LW_READERS], w[LW_LOCKS];
        for (int t = 0; t < LW_READERS; t++) {
            ra[t] = (struct lw_arg){ox_test_rand(&x) | 1, t};
            r[t] = ox_thread_spawn(lw_reader, &ra[t]);
        }
        for (int i = 0; i < LW_LOCKS; i++) {
            wa[i] = (struct lw_arg){ox_test_rand(&x) | 1, i};
            w[i] = ox_thread_spawn(lw_writer, &wa[i]);
        }
        for (int t = 0; t < LW_READERS; t++)
            CHECK_EQ(ox_thread_join(&r[t], NULL, NULL), 0);
        /* The readers are gone: every writer must finish now. */
        ox_instant until = ox_instant_after(OX_SECS(3));
        while (atomic_load(&lw_finished) < LW_LOCKS) {
            if (ox_instant_now().ns > until.ns) {
                for (int i = 0; i < LW_LOCKS; i++)
                    fprintf(stderr, "lock %d state %#x count %u\n", i, st(lw_lock(i)),
                            atomic_load(ox__rw_own_waiting_for(lw_lock(i))));
                ox_test_fail(__FILE__, __LINE__,
                             "round %ld: a writer still asleep 3 s after its readers left", rounds);
            }
            ox_thread_sleep(OX_MICROS(100));
        }
        for (int i = 0; i < LW_LOCKS; i++)
            CHECK_EQ(ox_thread_join(&w[i], NULL, NULL), 0);
    }
    CHECK_EQ(atomic_load(&lw_bad), 0);
    printf("rounds %ld\n", rounds);
}
