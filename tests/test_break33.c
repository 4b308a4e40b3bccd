/* break33: attacks on three recent changes.
 *
 * 0365f03: the live held-lock record (ox__unwind) starts a cache line. The
 * alignment is checked where panic_record_starts_a_cache_line_in_every_thread
 * does not look: in a task, before and after it moves between workers.
 *
 * 93f3271: on x86-64 ox__held_record writes an entry as two 16-byte stores,
 * (object, ops) and (file, line | level << 32 | tag 0). Every field of
 * every entry is read back: at lines 0, -1, INT_MIN, INT_MAX, a NULL file,
 * at catch levels 0..3, in the inline entries and past them in a grown
 * array, over slots whose old bytes were dirtied first (the tag must be
 * zeroed, the level not leak from garbage). Then the paths that rely on a
 * field surviving: a dispersed reader's slot (its tag, set after the push)
 * through a task's fifth entry (the push grows the record), a move to
 * another worker and a panic; a condvar wait that takes the mutex's entry
 * out and puts it back under a lock of a deeper catch level; a lock left
 * to the enclosing catch level; the "would deadlock" message reading the
 * site of an entry written at INT_MAX.
 *
 * f0f790b + 65371bd: a blocked channel thread yields up to 4 times after
 * its spin. Lost wakeups (a claim between the last poll and the park) in
 * rendezvous ping-pong, oversubscribed mpsc and select over four
 * channels, every wait bounded so that a lost wake fails instead of
 * hanging; timed waits' overshoot, tiny timeouts included; a disconnection
 * landing anywhere in the spin, yields or park.
 */
#define _GNU_SOURCE
#include "oxide.h"
#include "helpers.h"
#include "runner.h"

#include "panic/unwind.h"       /* white box: the live held-lock record */
#include "task/task_internal.h" /* white box: the worker a task runs on */

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- 0365f03: alignment in a task ---- */

static void *task_record_alignment(void *arg)
{
    _Atomic long *bad = arg;
    for (int i = 0; i < 200; i++) {
        if ((uintptr_t)ox__unwind_current() % OX__UNWIND_ALIGN != 0)
            atomic_fetch_add(bad, 1);
        if (i % 2)
            ox_task_yield();
        else
            CHECK_EQ(ox_task_sleep(OX_MICROS(20)), 0);
    }
    return NULL;
}

OX_TEST(break33_record_starts_a_cache_line_in_tasks_across_workers)
{
    ox_runtime *rt = ox_test_runtime(2);
    _Atomic long bad = 0;
    ox_task_handle h[4];
    for (int i = 0; i < 4; i++)
        h[i] = ox_test_spawn_on(rt, task_record_alignment, &bad);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_task_join(&h[i], NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    CHECK_EQ(atomic_load(&bad), 0);
}

/* ---- 93f3271: every field of every entry ---- */

#define NLOCKS 40 /* past the 16 inline entries: the record grows twice */

static const char *const sites[] = {"a.c", NULL, "b.c", "c.c"};
static const int lines[] = {0, -1, INT_MIN, INT_MAX, 1, 65535, 65536, -65536};

struct fields {
    ox_mutex m[NLOCKS];
    int levels[NLOCKS];
    int next;
};

static void check_entries(struct fields *f)
{
    uint32_t n;
    const ox__unwind_entry *e = ox__held_entries(&n);
    CHECK_EQ(n, (uint32_t)f->next);
    for (int i = 0; i < f->next; i++) {
        CHECK(e[i].object == &f->m[i]);
        CHECK(e[i].u.lock_ops == &ox__mutex_ops);
        CHECK(e[i].file == sites[i % 4]);
        CHECK_EQ(e[i].line, lines[i % 8]);
        CHECK_EQ(e[i].level, f->levels[i]);
        CHECK_EQ(e[i].tag, 0);
    }
}

/* Dirties the record's next slot (and, when the push will grow it, nothing
 * else is there to dirty), so that a field the push does not write shows. */
static void dirty_next_slot(void)
{
    ox__unwind_state *s = ox__unwind_current();
    if (s->depth < s->capacity)
        memset(&s->entries[s->depth], 0xa5, sizeof s->entries[0]);
}

static void *lock_some(void *arg)
{
    struct fields *f = arg;
    int level = ox__unwind_current()->level;
    for (int k = 0; k < NLOCKS / 4; k++) {
        int i = f->next;
        dirty_next_slot();
        if (i % 3 == 0)
            CHECK_EQ(ox_mutex_try_lock_at(&f->m[i], sites[i % 4], lines[i % 8]), 0);
        else
            CHECK_EQ(ox_mutex_lock_at(&f->m[i], sites[i % 4], lines[i % 8]), 0);
        f->levels[i] = level;
        f->next++;
        check_entries(f);
    }
    if (f->next < NLOCKS) {
        void *r;
        CHECK_EQ(ox_catch_unwind(lock_some, f, &r, NULL), 0);
        /* Returned: what the deeper level left is ours now. */
        for (int i = 0; i < NLOCKS; i++)
            if (f->levels[i] > level)
                f->levels[i] = level;
        check_entries(f);
    }
    return NULL;
}

static void *entry_fields(void *arg)
{
    (void)arg;
    struct fields *f = calloc(1, sizeof *f);
    CHECK(f != NULL);
    lock_some(f);
    check_entries(f);
    for (int i = NLOCKS; i-- > 0;)
        ox_mutex_unlock(&f->m[i]);
    uint32_t n;
    (void)ox__held_entries(&n);
    CHECK_EQ(n, 0);
    /* Again, over the grown array's dirty slots. */
    memset(f, 0, sizeof *f);
    lock_some(f);
    check_entries(f);
    for (int i = NLOCKS; i-- > 0;)
        ox_mutex_unlock(&f->m[i]);
    free(f);
    return NULL;
}

OX_TEST(break33_entry_fields_survive_the_push_at_every_level_and_depth)
{
    entry_fields(NULL);
    ox_join_handle h = ox_thread_spawn(entry_fields, NULL);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    /* In a task, whose record has 4 inline entries, moving between workers. */
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle t = ox_test_spawn_on(rt, entry_fields, NULL);
    CHECK_EQ(ox_task_join(&t, NULL, NULL), 0);
    ox_runtime_shutdown(rt);
}

/* A panic at level 3 releases exactly the entries pushed at level 3, found
 * by the level the push wrote: locks of levels 0..2 stay held, not
 * poisoned. */
struct levels {
    ox_mutex m[4];
    int base; /* the catch level the test runs at */
};

static void *lock_at_level(void *arg)
{
    struct levels *l = arg;
    int depth = ox__unwind_current()->level - l->base;
    CHECK_EQ(ox_mutex_lock_at(&l->m[depth], depth % 2 ? NULL : "x.c", depth ? -depth : INT_MAX), 0);
    CHECK_EQ(ox__held_find(&l->m[depth])->level, ox__unwind_current()->level);
    if (depth == 3)
        ox_panic("at level 3");
    ox_panic_payload *p = NULL;
    CHECK_EQ(ox_catch_unwind(lock_at_level, l, NULL, &p), depth == 2 ? OX_EPANICKED : 0);
    ox_panic_payload_free(p);
    if (depth == 2) {
        CHECK(ox_mutex_is_poisoned(&l->m[3]));
        CHECK(ox__held_find(&l->m[3]) == NULL);
        CHECK_EQ(ox_mutex_try_lock(&l->m[3]), OX_EPOISONED); /* released */
        ox_mutex_unlock(&l->m[3]);
    }
    /* Locks of this level and deeper ones that returned are ours now. */
    for (int i = depth; i < 3; i++) {
        CHECK(!ox_mutex_is_poisoned(&l->m[i]));
        const ox__unwind_entry *e = ox__held_find(&l->m[i]);
        CHECK(e != NULL);
        CHECK_EQ(e->level, ox__unwind_current()->level);
        CHECK_EQ(e->line, i ? -i : INT_MAX);
        CHECK(e->file == (i % 2 ? NULL : "x.c") || (e->file && strcmp(e->file, "x.c") == 0));
        CHECK_EQ(e->tag, 0);
    }
    return NULL;
}

OX_TEST(break33_panic_releases_only_its_levels_entries)
{
    ox_panic_hook old = ox_panic_set_hook(ox_test_quiet_hook);
    struct levels l = {.base = ox__unwind_current()->level};
    for (int round = 0; round < 50; round++) {
        dirty_next_slot();
        lock_at_level(&l);
        for (int i = 3; i-- > 0;) {
            CHECK(!ox_mutex_is_poisoned(&l.m[i]));
            ox_mutex_unlock(&l.m[i]);
        }
        ox_mutex_clear_poison(&l.m[3]);
    }
    uint32_t n;
    (void)ox__held_entries(&n);
    CHECK_EQ(n, 0);
    ox_panic_set_hook(old);
}

/* ---- the dispersed reader's tag, through a task's record ---- */

struct disp {
    ox_rwlock l;
    ox_mutex m[4];
    bool panic;
    _Atomic long wrong;
};

static void *read_dispersed_fifth(void *arg)
{
    struct disp *d = arg;
    for (int i = 0; i < 4; i++)
        CHECK_EQ(ox_mutex_lock(&d->m[i]), 0);
    dirty_next_slot();
    CHECK_EQ(ox_rwlock_read(&d->l), 0); /* the fifth entry: the push grows the record */
    const ox__unwind_entry *e = ox__held_find(&d->l);
    CHECK(e != NULL);
    if (e->u.lock_ops != &ox__rwlock_slot_read_ops)
        atomic_fetch_add(&d->wrong, 1); /* not dispersed: the test proves less */
    CHECK_EQ(e->level, ox__unwind_current()->level);
    for (int i = 0; i < 3; i++)
        ox_task_yield(); /* perhaps to the other worker */
    CHECK_EQ(ox_task_sleep(OX_MICROS(50)), 0);
    for (int i = 0; i < 4; i++)
        ox_mutex_unlock(&d->m[i]);
    if (d->panic)
        ox_panic("holding a dispersed read lock");
    ox_rwlock_read_unlock(&d->l);
    return NULL;
}

static void *dispersed_rounds(void *arg)
{
    struct disp *d = arg;
    for (int round = 0; round < 40; round++) {
        ox_test_rwlock_disperse(&d->l);
        d->panic = round % 2;
        ox_panic_payload *p = NULL;
        int rc = ox_catch_unwind(read_dispersed_fifth, d, NULL, &p);
        CHECK_EQ(rc, d->panic ? OX_EPANICKED : 0);
        ox_panic_payload_free(p);
        /* The reader's slot was left by the tag its entry carried: a
         * writer gets in. A wrong tag leaves the slot held (or aborts). */
        CHECK_EQ(ox_rwlock_write_timeout(&d->l, ox_test_bound(OX_SECS(2))), 0);
        ox_rwlock_write_unlock(&d->l);
        CHECK(!ox_rwlock_is_poisoned(&d->l)); /* a reader does not poison */
    }
    return NULL;
}

OX_TEST(break33_dispersed_reader_tag_survives_grow_switch_and_panic)
{
    ox_panic_hook old = ox_panic_set_hook(ox_test_quiet_hook);
    struct disp *d = calloc(1, sizeof *d);
    CHECK(d != NULL);
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle t = ox_test_spawn_on(rt, dispersed_rounds, d);
    CHECK_EQ(ox_task_join(&t, NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    /* And in a thread. */
    ox_join_handle h = ox_thread_spawn(dispersed_rounds, d);
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&d->wrong), 0);
    free(d);
    ox_panic_set_hook(old);
}

/* ---- the dispersed reader's tag when the push's checker hook blocks ----
 * ox__rwlock_read_dispersed takes the record's address, pushes, then sets
 * entries[at].tag through that address. With the lock-order checker on,
 * the push calls the checker, which may wait for its own lock (a task
 * parks there and may resume on the other worker): the address is then
 * the old worker's live record, another task's, and the tag goes there.
 * Our entry keeps the tag the push wrote (0 since 93f3271), so the unlock
 * leaves slot 0 instead of ours: the count is decremented instead
 * (a reader that never counted), and our slot stays held. Each task
 * holds its own mutex and reads its own rwlock, so nothing here waits
 * but the checker's lock, which an ox_test_stirrer keeps busy. */
/* Counters: relaxed; moved_inside only bounds the rounds, and slot_reads
 * is read after the joins, which order it. */
static _Atomic long moved_inside, slot_reads;

struct own_read {
    ox_mutex a;
    ox_rwlock l;
};

static void *read_own_dispersed(void *arg)
{
    static const ox_lock_class cls = {"unrelated33", __FILE__, __LINE__};
    static int unrelated;
    struct own_read *p = arg;
    ox_test_budget b = ox_test_budget_start(300, ox_test_scaled(200000));
    for (long r = 0; ox_test_budget_more(&b, r) &&
                     atomic_load_explicit(&moved_inside, memory_order_relaxed) < 50;
         r++) {
        ox_test_rwlock_disperse(&p->l);
        ox_lock_class_register(&unrelated, &cls); /* the pair caches go stale */
        CHECK_EQ(ox_mutex_lock(&p->a), 0);
        const void *before = ox__worker_current();
        CHECK_EQ(ox_rwlock_read(&p->l), 0);
        if (ox__worker_current() != before)
            atomic_fetch_add_explicit(&moved_inside, 1, memory_order_relaxed);
        const ox__unwind_entry *e = ox__held_find(&p->l);
        CHECK(e != NULL);
        if (e->u.lock_ops == &ox__rwlock_slot_read_ops)
            atomic_fetch_add_explicit(&slot_reads, 1, memory_order_relaxed);
        ox_rwlock_read_unlock(&p->l);
        ox_mutex_unlock(&p->a);
        /* The reader is gone: no count, no slot; a writer gets in. */
        CHECK_EQ(ox_test_rwlock_count(&p->l), 0);
        CHECK_EQ(ox_rwlock_write_timeout(&p->l, ox_test_bound(OX_SECS(2))), 0);
        ox_rwlock_write_unlock(&p->l);
        if (r % 8 == 0)
            ox_task_yield(); /* spreads the tasks over both workers */
    }
    return NULL;
}

OX_TEST_OPTS(break33_dispersed_tag_lands_in_own_record_when_the_checker_waits, .timeout_s = 120)
{
    ox_runtime *rt = ox_test_runtime(2);
    CHECK_EQ(ox_lockdep_enable(OX_LOCKDEP_REPORT), 0);
    ox_test_stirrer stirrer;
    ox_test_stirrer_start(&stirrer);
    enum { N = 8 };
    struct own_read *p = calloc(N, sizeof *p);
    CHECK(p != NULL);
    ox_task_handle hs[N];
    for (int i = 0; i < N; i++)
        hs[i] = ox_test_spawn_on(rt, read_own_dispersed, &p[i]);
    for (int i = 0; i < N; i++)
        CHECK_EQ(ox_task_join(&hs[i], NULL, NULL), 0);
    ox_test_stirrer_stop(&stirrer);
    ox_runtime_shutdown(rt);
    CHECK_EQ(ox_lockdep_reports(), 0u);
    CHECK(atomic_load(&slot_reads) > 0);
    free(p);
}

/* ---- a condvar wait puts the entry back at its place and level ---- */

struct cvl {
    ox_mutex m, inner;
    ox_condvar cv;
};

static void *wait_in_deeper_level(void *arg)
{
    struct cvl *c = arg;
    CHECK_EQ(ox_mutex_lock_at(&c->inner, NULL, -7), 0);
    CHECK_EQ(ox_condvar_wait_timeout_at(&c->cv, &c->m, OX_MICROS(200), "wait.c", INT_MAX),
             OX_ETIMEDOUT);
    uint32_t n;
    const ox__unwind_entry *e = ox__held_entries(&n);
    CHECK(n >= 2);
    /* m is below inner again, at its own level, with the wait's site. */
    CHECK(e[n - 2].object == &c->m);
    CHECK_EQ(e[n - 2].level, ox__unwind_current()->level - 1);
    CHECK(e[n - 2].file != NULL && strcmp(e[n - 2].file, "wait.c") == 0);
    CHECK_EQ(e[n - 2].line, INT_MAX);
    CHECK_EQ(e[n - 2].tag, 0);
    CHECK(e[n - 1].object == &c->inner);
    CHECK(e[n - 1].file == NULL);
    CHECK_EQ(e[n - 1].line, -7);
    CHECK_EQ(e[n - 1].level, ox__unwind_current()->level);
    ox_panic("after the wait");
}

static void *condvar_level_rounds(void *arg)
{
    struct cvl *c = arg;
    for (int round = 0; round < 20; round++) {
        CHECK_EQ(ox_mutex_lock(&c->m), 0);
        ox_panic_payload *p = NULL;
        CHECK_EQ(ox_catch_unwind(wait_in_deeper_level, c, NULL, &p), OX_EPANICKED);
        ox_panic_payload_free(p);
        /* The panic took inner (its level), not m (the enclosing one). */
        CHECK(ox_mutex_is_poisoned(&c->inner));
        ox_mutex_clear_poison(&c->inner);
        CHECK(!ox_mutex_is_poisoned(&c->m));
        CHECK(ox__held_find(&c->m) != NULL);
        CHECK(ox__held_find(&c->inner) == NULL);
        ox_mutex_unlock(&c->m);
    }
    return NULL;
}

OX_TEST(break33_condvar_wait_keeps_the_entry_level_under_a_deeper_lock)
{
    ox_panic_hook old = ox_panic_set_hook(ox_test_quiet_hook);
    struct cvl c = {0};
    condvar_level_rounds(&c);
    ox_runtime *rt = ox_test_runtime(2);
    ox_task_handle t = ox_test_spawn_on(rt, condvar_level_rounds, &c);
    CHECK_EQ(ox_task_join(&t, NULL, NULL), 0);
    ox_runtime_shutdown(rt);
    ox_panic_set_hook(old);
}

/* The "would deadlock" message reads the held entry's site, written by the
 * vector store: INT_MAX must come back as INT_MAX, not mixed with the level. */
static void *relock_deep(void *arg)
{
    ox_mutex *m = arg;
    CHECK_EQ(ox_mutex_lock_at(m, "site33.c", INT_MAX), 0);
    CHECK_EQ(ox_mutex_lock(m), 0); /* aborts */
    return NULL;
}

static void *nest(void *arg)
{
    return relock_deep(arg);
}

OX_TEST_OPTS(break33_deadlock_message_reads_the_pushed_site, .expect_signal = SIGABRT,
             .expect_stderr = "(locked at site33.c:2147483647)")
{
    static ox_mutex m;
    CHECK_EQ(ox_catch_unwind(nest, &m, NULL, NULL), 0);
}

/* ---- f0f790b + 65371bd: the channel wait's yields ---- */

/* One side of a channel pair, counting what went wrong (pong and echo). */
struct pp {
    ox_sender *tx;
    ox_receiver *rx;
    long n;
    _Atomic long failures;
};

static void *pong(void *arg)
{
    struct pp *p = arg;
    for (long i = 0; i < p->n; i++) {
        long v;
        int rc = ox_receiver_recv_timeout(p->rx, &v, ox_test_bound(OX_SECS(5)));
        if (rc != 0 || v != i) {
            atomic_fetch_add(&p->failures, 1);
            return NULL;
        }
        v++;
        if (ox_sender_send_timeout(p->tx, &v, ox_test_bound(OX_SECS(5))) != 0) {
            atomic_fetch_add(&p->failures, 1);
            return NULL;
        }
    }
    return NULL;
}

/* Rendezvous ping-pong: every message is a wait answered after the spin
 * about as often as during it, so claims land between the yields' last
 * poll and the park. A lost wake shows as a 5 s timeout. */
OX_TEST(break33_rendezvous_pingpong_loses_no_wake)
{
    struct pp a = {.n = 20000}, b = {.n = 20000};
    CHECK_EQ(ox_channel(sizeof(long), 0, &a.tx, &b.rx), 0);
    CHECK_EQ(ox_channel(sizeof(long), 0, &b.tx, &a.rx), 0);
    ox_join_handle h = ox_thread_spawn(pong, &b);
    for (long i = 0; i < a.n; i++) {
        long v = i;
        CHECK_EQ(ox_sender_send_timeout(a.tx, &v, ox_test_bound(OX_SECS(5))), 0);
        CHECK_EQ(ox_receiver_recv_timeout(a.rx, &v, ox_test_bound(OX_SECS(5))), 0);
        CHECK_EQ(v, i + 1);
    }
    CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&b.failures), 0);
    ox_sender_drop(a.tx);
    ox_sender_drop(b.tx);
    ox_receiver_drop(a.rx);
    ox_receiver_drop(b.rx);
}

#define SENDERS 5
#define PER     4000

struct mpsc {
    ox_sender *tx[SENDERS];
    int id;
    _Atomic int next_id;
    _Atomic long failures;
};

static void *mpsc_sender(void *arg)
{
    struct mpsc *m = arg;
    int id = atomic_fetch_add(&m->next_id, 1);
    for (long i = 0; i < PER; i++) {
        long v = (long)id << 32 | i;
        if (ox_sender_send_timeout(m->tx[id], &v, ox_test_bound(OX_SECS(5))) != 0) {
            atomic_fetch_add(&m->failures, 1);
            break;
        }
    }
    ox_sender_drop(m->tx[id]);
    return NULL;
}

/* Five senders and a receiver on a machine of fewer CPUs, capacity 0 and
 * 1: the load the yields were added for. Per-sender order, no loss, no
 * duplicate, disconnection seen after the last message. */
OX_TEST(break33_oversubscribed_mpsc_delivers_all_in_order)
{
    for (size_t cap = 0; cap < 2; cap++) {
        struct mpsc m = {0};
        ox_receiver *rx;
        CHECK_EQ(ox_channel(sizeof(long), cap, &m.tx[0], &rx), 0);
        for (int i = 1; i < SENDERS; i++)
            m.tx[i] = ox_sender_clone(m.tx[0]);
        ox_join_handle h[SENDERS];
        for (int i = 0; i < SENDERS; i++)
            h[i] = ox_thread_spawn(mpsc_sender, &m);
        long next[SENDERS] = {0};
        for (long got = 0; got < (long)SENDERS * PER; got++) {
            long v;
            CHECK_EQ(ox_receiver_recv_timeout(rx, &v, ox_test_bound(OX_SECS(5))), 0);
            int id = (int)(v >> 32);
            CHECK(id >= 0 && id < SENDERS);
            CHECK_EQ(v & 0xffffffffl, next[id]);
            next[id]++;
        }
        long v;
        CHECK_EQ(ox_receiver_recv_timeout(rx, &v, ox_test_bound(OX_SECS(5))), OX_EDISCONNECTED);
        for (int i = 0; i < SENDERS; i++)
            CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
        CHECK_EQ(atomic_load(&m.failures), 0);
        ox_receiver_drop(rx);
    }
}

/* One receiver selects over four rendezvous channels, each fed by its own
 * thread: a claim by any of them may come during the yields. */
#define SEL 4

struct sel_feed {
    ox_sender *tx;
    long base;
    _Atomic long *failures;
};

static void *sel_sender(void *arg)
{
    struct sel_feed *f = arg;
    for (long i = 0; i < PER; i++) {
        long v = f->base + i;
        if (ox_sender_send_timeout(f->tx, &v, ox_test_bound(OX_SECS(5))) != 0) {
            atomic_fetch_add(f->failures, 1);
            break;
        }
    }
    ox_sender_drop(f->tx);
    return NULL;
}

OX_TEST(break33_select_over_four_channels_loses_no_wake)
{
    _Atomic long failures = 0;
    struct sel_feed f[SEL];
    ox_receiver *rx[SEL];
    ox_join_handle h[SEL];
    for (int i = 0; i < SEL; i++) {
        CHECK_EQ(ox_channel(sizeof(long), 0, &f[i].tx, &rx[i]), 0);
        f[i].base = (long)i << 32;
        f[i].failures = &failures;
    }
    for (int i = 0; i < SEL; i++)
        h[i] = ox_thread_spawn(sel_sender, &f[i]);
    long next[SEL] = {0};
    long got[SEL];
    int open = SEL;
    bool closed[SEL] = {false};
    while (open > 0) {
        ox_select_op ops[SEL];
        size_t map[SEL], n = 0;
        for (int i = 0; i < SEL; i++)
            if (!closed[i]) {
                map[n] = (size_t)i;
                ops[n++] = OX_SELECT_RECV(rx[i], &got[i]);
            }
        size_t which = SIZE_MAX;
        int rc = ox_select_timeout(ops, n, ox_test_bound(OX_SECS(5)), &which);
        CHECK(which < n);
        int i = (int)map[which];
        if (rc == OX_EDISCONNECTED) {
            CHECK_EQ(next[i], PER);
            closed[i] = true;
            open--;
            continue;
        }
        CHECK_EQ(rc, 0);
        CHECK_EQ(got[i], ((long)i << 32) + next[i]);
        next[i]++;
    }
    for (int i = 0; i < SEL; i++) {
        CHECK_EQ(ox_thread_join(&h[i], NULL, NULL), 0);
        ox_receiver_drop(rx[i]);
    }
    CHECK_EQ(atomic_load(&failures), 0);
}

/* Timed waits that nobody answers end near their deadline: the yields are
 * skipped once it has passed and add at most a few yields before it. Tiny
 * timeouts (ending within the spin) and ones ending within the yields. */
static void note_overshoot(int64_t *worst, ox_instant t0, ox_nanos timeout)
{
    int64_t took = ox_instant_now().ns - t0.ns;
    CHECK(took >= timeout);
    if (took - timeout > *worst)
        *worst = took - timeout;
}

OX_TEST(break33_unanswered_timed_waits_end_near_their_deadline)
{
    ox_sender *tx;
    ox_receiver *rx;
    CHECK_EQ(ox_channel(sizeof(long), 0, &tx, &rx), 0);
    static const ox_nanos timeouts[] = {0, 1, 500, 5000, 20000, 60000, 200000, 1000000};
    int64_t worst = 0;
    for (int round = 0; round < 30; round++) {
        for (size_t k = 0; k < sizeof timeouts / sizeof timeouts[0]; k++) {
            long v = 1;
            ox_instant t0 = ox_instant_now();
            int rc = k % 2 ? ox_receiver_recv_timeout(rx, &v, timeouts[k])
                           : ox_sender_send_timeout(tx, &v, timeouts[k]);
            CHECK_EQ(rc, OX_ETIMEDOUT);
            note_overshoot(&worst, t0, timeouts[k]);
            ox_select_op op = OX_SELECT_RECV(rx, &v);
            size_t which;
            t0 = ox_instant_now();
            CHECK_EQ(ox_select_timeout(&op, 1, timeouts[k], &which), OX_ETIMEDOUT);
            note_overshoot(&worst, t0, timeouts[k]);
            /* A select with no live case waits out its deadline the same way. */
            ox_select_op none = OX_SELECT_RECV(NULL, &v);
            t0 = ox_instant_now();
            CHECK_EQ(ox_select_timeout(&none, 1, timeouts[k], &which), OX_ETIMEDOUT);
            note_overshoot(&worst, t0, timeouts[k]);
        }
    }
    /* A slice or two of a loaded machine, not the tens of ms a wait that
     * kept yielding past its deadline under load would take. */
    CHECK(worst < ox_test_bound(OX_MILLIS(50)));
    ox_sender_drop(tx);
    ox_receiver_drop(rx);
}

/* A disconnection lands at every point of a waiter's spin, yields and
 * park: the waiter returns OX_EDISCONNECTED, promptly, never times out. */
struct disc {
    ox_receiver *rx;
    ox_sender *tx;
    bool send_side;
    _Atomic int started;
    int rc;
    int64_t woke_at;
};

static void *disc_waiter(void *arg)
{
    struct disc *d = arg;
    long v = 0;
    atomic_store(&d->started, 1);
    d->rc = d->send_side ? ox_sender_send_timeout(d->tx, &v, ox_test_bound(OX_SECS(5)))
                         : ox_receiver_recv_timeout(d->rx, &v, ox_test_bound(OX_SECS(5)));
    d->woke_at = ox_instant_now().ns;
    return NULL;
}

OX_TEST(break33_disconnection_during_the_yields_wakes_the_waiter)
{
    int64_t worst = 0;
    for (int round = 0; round < 300; round++) {
        struct disc d = {.send_side = round % 2};
        CHECK_EQ(ox_channel(sizeof(long), 0, &d.tx, &d.rx), 0);
        ox_join_handle h = ox_thread_spawn(disc_waiter, &d);
        while (!atomic_load(&d.started))
            ;
        ox_test_spin_ns((round / 2 % 30) * 2000); /* 0-58 us: spin, yields, park */
        int64_t dropped_at = ox_instant_now().ns;
        if (d.send_side)
            ox_receiver_drop(d.rx);
        else
            ox_sender_drop(d.tx);
        CHECK_EQ(ox_thread_join(&h, NULL, NULL), 0);
        CHECK_EQ(d.rc, OX_EDISCONNECTED);
        if (d.woke_at - dropped_at > worst)
            worst = d.woke_at - dropped_at;
        if (d.send_side)
            ox_sender_drop(d.tx);
        else
            ox_receiver_drop(d.rx);
    }
    CHECK(worst < ox_test_bound(OX_MILLIS(500)));
}

/* Tasks and threads on one channel pair: a task's wait parks at once
 * (a task switch), a thread's spins and yields; a lost wake either way
 * shows as a timeout. One worker, so a task that yielded the worker
 * thread instead of parking would starve its partner task. */
static void *echo(void *arg)
{
    struct pp *m = arg;
    for (long i = 0; i < m->n; i++) {
        long v;
        if (ox_receiver_recv_timeout(m->rx, &v, ox_test_bound(OX_SECS(5))) != 0 ||
            ox_sender_send_timeout(m->tx, &v, ox_test_bound(OX_SECS(5))) != 0) {
            atomic_fetch_add(&m->failures, 1);
            return NULL;
        }
    }
    return NULL;
}

static void *ask(void *arg)
{
    struct pp *m = arg;
    for (long i = 0; i < m->n; i++) {
        long v = i;
        if (ox_sender_send_timeout(m->tx, &v, ox_test_bound(OX_SECS(5))) != 0 ||
            ox_receiver_recv_timeout(m->rx, &v, ox_test_bound(OX_SECS(5))) != 0 || v != i) {
            atomic_fetch_add(&m->failures, 1);
            return NULL;
        }
    }
    return NULL;
}

OX_TEST(break33_task_and_thread_waits_on_one_channel_pair)
{
    for (int shape = 0; shape < 3; shape++) {
        struct pp a = {.n = 3000}, b = {.n = 3000};
        CHECK_EQ(ox_channel(sizeof(long), 0, &a.tx, &b.rx), 0);
        CHECK_EQ(ox_channel(sizeof(long), 0, &b.tx, &a.rx), 0);
        ox_runtime *rt = ox_test_runtime(1);
        /* shape 0: two tasks on one worker; 1: a thread answers a task;
         * 2: a task answers a thread. */
        ox_join_handle th =
            shape == 0 ? (ox_join_handle){0}
                       : ox_thread_spawn(shape == 1 ? echo : ask, shape == 1 ? (void *)&b : &a);
        ox_task_handle t1 = ox_test_spawn_on(rt, shape == 1 ? ask : echo, shape == 1 ? &a : &b);
        ox_task_handle t2 = shape == 0 ? ox_test_spawn_on(rt, ask, &a) : (ox_task_handle){0};
        CHECK_EQ(ox_task_join(&t1, NULL, NULL), 0);
        if (shape == 0)
            CHECK_EQ(ox_task_join(&t2, NULL, NULL), 0);
        else
            CHECK_EQ(ox_thread_join(&th, NULL, NULL), 0);
        ox_runtime_shutdown(rt);
        CHECK_EQ(atomic_load(&a.failures), 0);
        CHECK_EQ(atomic_load(&b.failures), 0);
        ox_sender_drop(a.tx);
        ox_sender_drop(b.tx);
        ox_receiver_drop(a.rx);
        ox_receiver_drop(b.rx);
    }
}
