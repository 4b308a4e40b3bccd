/* park_lot.c - where tasks wait: a table of wait queues keyed by the
 * address of the word they wait on (see "suspendable units" in park.h).
 *
 * Each bucket has a spin lock and a list of waiter records. A waiter
 * checks *word == expected and links itself under the bucket lock, and the
 * scheduler releases that lock only after the task has switched away. A
 * waker changes the word before it calls ox__park_wake_*, then takes the
 * same lock to unlink waiters. So either the waiter's check comes after
 * the waker's unlock (it sees the new value and does not sleep) or the
 * waiter is linked before the waker looks (and is found): no wake is lost,
 * as with the futex, whose kernel-side check has the same shape.
 *
 * Waking always takes the bucket lock, even in a program with no tasks.
 * Gating it on a "waiters present" count would need a store-load fence on
 * both sides (the waiter's count and the waker's word), and every wake
 * already comes with a system call for the threads that sleep on the
 * futex: an uncontended lock is noise next to it.
 */
#include "park.h"
#include "spin.h"

#include "../check/chaos.h"
#include "../common/cache_line.h"
#include "../common/dekker.h"
#include "../sys/sys.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* The table of buckets grows with the waiters, as parking_lot's does: each
 * bucket's list is walked by every wake on it, and each entry is another
 * task's record, a cache miss. A million tasks blocked in joins (the
 * skynet tree) made the first table's walks a sixth of all the CPU time.
 *
 * It starts with 4096 buckets (256 KiB, zero pages until used) and grows
 * fourfold when a list gets long with waits on different words (a long
 * list of waits on one word, a busy condvar, gains nothing from more
 * buckets). The grower holds every bucket lock of the old table while it
 * moves the waiters, then publishes the new table; a locker that took an
 * old bucket's lock checks the table is still current and else retries.
 * Old tables are never freed (a locker may still be spinning on one of
 * their locks) and stay reachable through `older`. Growth stops at
 * MAX_BITS: 85 MiB of address space for all the tables a process can
 * make, touched only where buckets were used (and once by each growth's
 * locking of the old table). */
#define FIRST_BITS 12
#define MAX_BITS   20
#define LONG_LIST  8 /* a list this long (and 16, 32...) is looked at */

typedef struct bucket {
    _Alignas(OX__CACHE_LINE) ox__spin lock;
    ox__lot_waiter *head, *tail;
    /* How many are linked: written only under the lock (a load and a store,
     * no read-modify-write), read without it by the blocked dump to skip
     * empty buckets without taking thousands of locks. */
    _Atomic uint32_t linked;
} bucket;

typedef struct lot_table {
    bucket *buckets;
    unsigned bits;
    struct lot_table *older; /* the table this one replaced */
} lot_table;

static bucket first_buckets[1u << FIRST_BITS];

/* Read by every wait and wake, written only when the table grows: on a
 * cache line of its own. Among other globals, a neighbour's writes (a
 * task id counter shared the line) made task_spawn_join 12% slower. */
static struct {
    _Alignas(OX__CACHE_LINE) _Atomic(lot_table *) current_table;
    /* Set (to the table that should grow) by a wait that linked into a
     * long list of different words; acted on by the next wait or wake
     * that holds no bucket lock. */
    _Atomic(lot_table *) grow_wanted;
    lot_table first_table;
} lot = {&lot.first_table, NULL, {first_buckets, FIRST_BITS, NULL}};
/* Held by the grower, the dump's visit and fork: one table change at a
 * time, and none while they walk every bucket. */
static ox__spin grow_lock;

static size_t table_size(const lot_table *t)
{
    return (size_t)1 << t->bits;
}

static bucket *bucket_in(const lot_table *t, const _Atomic uint32_t *word)
{
    return &t->buckets[ox__park_word_hash(word, t->bits)];
}

/* Locks and returns word's bucket in the current table. order: acquire,
 * or seq_cst for a wait, which checks its unit's abort flags under the
 * lock (see the lock below). */
static bucket *lock_bucket(const _Atomic uint32_t *word, memory_order order)
{
    for (;;) {
        /* Acquire: pairs with the release in move_to, so a new table's
         * buckets, filled before it was published, are seen filled. */
        lot_table *t = atomic_load_explicit(&lot.current_table, memory_order_acquire);
        bucket *b = bucket_in(t, word);
        /* A wait's seq_cst, not only acquire: ox__park_lot_cancel_group
         * passes a bucket whose lock it reads free (a seq_cst load, after
         * its group's flag was set); a wait that locks after that read then
         * checks the flag after it in the single order, and sees it. Wakes
         * and expiries check no flag: acquire. (The same instruction on
         * x86-64; a stronger one on aarch64.) */
        ox__spin_lock_ordered(&b->lock, order);
        /* Relaxed: a grower publishes the new table while it holds every
         * old bucket lock, and our acquire of b's lock came after its
         * release of it: then this load sees the new table. */
        if (atomic_load_explicit(&lot.current_table, memory_order_relaxed) == t)
            return b;
        ox__spin_unlock(&b->lock);
    }
}

static void count_linked(bucket *b, int32_t delta)
{
    /* Relaxed: under the bucket lock; the dump's unlocked read is a hint
     * (a task linked after it is not shown: the dump is not one instant). */
    uint32_t n = atomic_load_explicit(&b->linked, memory_order_relaxed);
    atomic_store_explicit(&b->linked, n + (uint32_t)delta, memory_order_relaxed);
}

static void append(bucket *b, ox__lot_waiter *w)
{
    w->next = NULL;
    w->prev = b->tail;
    if (b->tail != NULL)
        b->tail->next = w;
    else
        b->head = w;
    b->tail = w;
    count_linked(b, 1);
}

static void link_waiter(bucket *b, ox__lot_waiter *w)
{
    append(b, w);
    /* Release: pairs with the acquire in ox__park_lot_expire, which may
     * hold another bucket's lock: one that sees this wait linked also sees
     * the word it stored before linking. */
    atomic_store_explicit(&w->linked, true, memory_order_release);
}

static void unlink_waiter(bucket *b, ox__lot_waiter *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        b->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        b->tail = w->prev;
    /* Relaxed: read under this bucket's lock, which orders it. */
    atomic_store_explicit(&w->linked, false, memory_order_relaxed);
    count_linked(b, -1);
}

/* ---- growing the table ---- */

/* Called with b locked, just after w linked into it: whether b's list is
 * long with waits on other words than w's, so that more buckets would
 * shorten it. Looked at only when the length reaches LONG_LIST, twice
 * that, and so on, so the walk costs O(1) per wait on average. */
static bool crowded(const bucket *b, const ox__lot_waiter *w)
{
    /* Relaxed: under the lock (see count_linked). */
    uint32_t n = atomic_load_explicit(&b->linked, memory_order_relaxed);
    if (n < LONG_LIST || (n & (n - 1)) != 0)
        return false;
    /* Relaxed: word is stable while linked, written before linking. */
    _Atomic uint32_t *word = atomic_load_explicit(&w->word, memory_order_relaxed);
    uint32_t same = 0;
    for (const ox__lot_waiter *v = b->head; v != NULL; v = v->next)
        same += atomic_load_explicit(&v->word, memory_order_relaxed) == word;
    return same <= n / 2;
}

static lot_table *table_new(unsigned bits)
{
    size_t n = (size_t)1 << bits;
    /* calloc: a large block comes from fresh zero pages, touched only where
     * a bucket is used (ox__alloc_lines would not say so). Over-allocated
     * to align the buckets to a line. */
    unsigned char *raw = calloc(1, sizeof(lot_table) + OX__CACHE_LINE + n * sizeof(bucket));
    if (raw == NULL)
        return NULL;
    unsigned char *at = raw + sizeof(lot_table);
    at += ox__cache_lines((uintptr_t)at) - (uintptr_t)at;
    lot_table *t = (lot_table *)(void *)raw;
    t->buckets = (bucket *)(void *)at;
    t->bits = bits;
    return t;
}

/* Moves every waiter of old, the current table, into t and makes t
 * current. The caller holds grow_lock and no bucket lock. */
static void move_to(lot_table *old, lot_table *t)
{
    t->older = old;
    size_t n = table_size(old);
    for (size_t i = 0; i < n; i++)
        ox__spin_lock(&old->buckets[i].lock);
    /* Nobody is inside an old bucket now, and nobody sees t yet. Each list
     * is moved in order, so waits on one word keep theirs. */
    for (size_t i = 0; i < n; i++) {
        bucket *b = &old->buckets[i];
        for (ox__lot_waiter *w = b->head, *next; w != NULL; w = next) {
            next = w->next;
            /* Relaxed: stable while linked. */
            append(bucket_in(t, atomic_load_explicit(&w->word, memory_order_relaxed)), w);
        }
        b->head = b->tail = NULL;
        /* Relaxed: under the lock (see count_linked). */
        atomic_store_explicit(&b->linked, 0, memory_order_relaxed);
    }
    /* Release: pairs with the acquire in lock_bucket (t's lists are seen
     * as filled above); our unlocks below order it before any later holder
     * of an old bucket lock, which then retries on t. */
    atomic_store_explicit(&lot.current_table, t, memory_order_release);
    for (size_t i = n; i-- > 0;)
        ox__spin_unlock(&old->buckets[i].lock);
}

/* Replaces old by a table four times its size (unless it is no longer
 * current, or another thread is changing it, or it is at MAX_BITS, or
 * memory is short: the old table keeps working). The caller holds no
 * bucket lock. */
OX_COLD static void grow(lot_table *old)
{
    if (!ox__spin_try_lock(&grow_lock))
        return;
    /* Relaxed: only this thread publishes while it holds grow_lock. */
    if (atomic_load_explicit(&lot.current_table, memory_order_relaxed) == old &&
        old->bits < MAX_BITS) {
        lot_table *t = table_new(old->bits + 2 > MAX_BITS ? MAX_BITS : old->bits + 2);
        if (t != NULL)
            move_to(old, t);
    }
    /* Relaxed: a hint. Cleared only if it still names old: a request for
     * the new table stands. */
    atomic_compare_exchange_strong_explicit(&lot.grow_wanted, &old, NULL, memory_order_relaxed,
                                            memory_order_relaxed);
    ox__spin_unlock(&grow_lock);
}

int ox__park_lot_rehash(unsigned bits)
{
    if (bits < 1 || bits > MAX_BITS)
        return OX_EINVAL;
    lot_table *t = table_new(bits);
    if (t == NULL)
        return ENOMEM;
    ox__spin_lock(&grow_lock);
    /* Relaxed: only this thread publishes while it holds grow_lock. */
    move_to(atomic_load_explicit(&lot.current_table, memory_order_relaxed), t);
    ox__spin_unlock(&grow_lock);
    return 0;
}

/* Grows the table if a wait asked for it. The caller holds no bucket lock. */
static inline void grow_if_wanted(void)
{
    /* Relaxed: a hint (see lot.grow_wanted); grow takes its own locks. */
    lot_table *t = atomic_load_explicit(&lot.grow_wanted, memory_order_relaxed);
    if (OX_UNLIKELY(t != NULL))
        grow(t);
}

static bool is_cancelled(ox__lot_waiter *w)
{
    /* Seq_cst: with the seq_cst store of w->word below and in
     * ox__park_lot_expire, either the aborter sees the word we wait on, or
     * we see its flag (the two-sided store-then-load of a Dekker pair).
     * The group's flag: see ox__park_lot_cancel_group. */
    return ox__park_unit_cancelled_as(w, memory_order_seq_cst);
}

int ox__park_lot_wait(ox__lot_waiter *w, _Atomic uint32_t *word, uint32_t expected,
                      ox_instant deadline, const ox__wait_site *site, const void *object)
{
    bool cancellable = site->cancellable;
    if (cancellable && is_cancelled(w))
        return OX_ECANCELED;
    bool timed = deadline.ns != INT64_MAX;
    if (timed && deadline.ns <= ox_instant_now().ns)
        return OX_ETIMEDOUT;
    w->site = site;
    w->object = object;
    /* Seq_cst: see is_cancelled. Also orders after this record's last
     * unlink, for an aborter that reads it (ox__park_lot_expire). Stored
     * before the timer is armed: an expiry that comes before we link must
     * find this wait's bucket to leave its mark (expired).
     * Not stored again when the last wait was on the same word (a task
     * parking in a loop, with its parker at the same place on its stack):
     * the check of the flags under the bucket lock, after its seq_cst
     * exchange, closes the pair then. If that check misses an abort, the
     * aborter's seq_cst flag store comes after it in the single order, and
     * so after our earlier seq_cst store of this word: its load of the
     * word sees it, and it looks in this bucket, after we linked. Only we
     * write w->word: the relaxed load reads our own last store. */
    if (atomic_load_explicit(&w->word, memory_order_relaxed) != word)
        OX__DEKKER_STORE(&w->word, word);
    if (timed)
        w->ops->timer_arm(w, deadline);

    grow_if_wanted();
    bucket *b = lock_bucket(word, memory_order_seq_cst);
    int rc;
    /* Relaxed: the bucket lock orders us against the waker (see the top). */
    if (atomic_load_explicit(word, memory_order_relaxed) != expected) {
        rc = 0;
    } else if (w->expired) {
        rc = OX_ETIMEDOUT;
    } else if (cancellable && is_cancelled(w)) {
        rc = OX_ECANCELED;
    } else {
        OX__CHAOS_POINT(); /* checked, not linked yet: an abort or a shutdown may come */
        w->wake_reason = 0;
        link_waiter(b, w);
        if (OX_UNLIKELY(crowded(b, w)))
            /* Relaxed: a hint (see lot.grow_wanted). */
            atomic_store_explicit(&lot.grow_wanted,
                                  atomic_load_explicit(&lot.current_table, memory_order_relaxed),
                                  memory_order_relaxed);
        w->ops->suspend(w, &b->lock); /* the scheduler unlocks b */
        /* Whoever resumed us unlinked us and set the reason. */
        rc = w->wake_reason;
        goto done;
    }
    ox__spin_unlock(&b->lock);
done:
    if (timed) {
        /* After disarm no expiry is running, so expired is ours again. */
        w->ops->timer_disarm(w);
        w->expired = false;
    }
    return rc;
}

void ox__park_lot_expire(ox__lot_waiter *w, int reason)
{
    /* Seq_cst: see is_cancelled (the aborter set the flag just before). */
    _Atomic uint32_t *word = atomic_load_explicit(&w->word, memory_order_seq_cst);
    if (word == NULL)
        return; /* never waited: its first cancellable wait sees the flag */
    bucket *b = lock_bucket(word, memory_order_acquire);
    /* Relaxed: a change of word is a new wait, whose own checks under its
     * bucket lock see the flag; a timer is disarmed before its wait ends. */
    if (atomic_load_explicit(&w->word, memory_order_relaxed) != word) {
        ox__spin_unlock(&b->lock);
        return;
    }
    if (reason == OX_ETIMEDOUT)
        w->expired = true;
    /* The record may be starting a new wait on another word right now (it
     * stores the word after our check above, then links in that word's
     * bucket, under a lock we do not hold). Acquire: pairs with the release
     * in link_waiter, so if we see that link we also see the new word, and
     * leave the record alone: linked here means linked in this bucket. Only
     * then are site and the list ours to read and change. */
    bool here = atomic_load_explicit(&w->linked, memory_order_acquire) &&
                atomic_load_explicit(&w->word, memory_order_relaxed) == word;
    bool wake = here && (reason == OX_ETIMEDOUT || w->site->cancellable);
    if (wake) {
        unlink_waiter(b, w);
        w->wake_reason = reason;
    }
    ox__spin_unlock(&b->lock);
    if (wake)
        w->ops->resume(w);
}

int ox__park_lot_wake(_Atomic uint32_t *word, int n)
{
    grow_if_wanted();
    bucket *b = lock_bucket(word, memory_order_acquire);
    ox__lot_waiter *woken = NULL, **tail = &woken;
    int count = 0;
    for (ox__lot_waiter *w = b->head, *next; w != NULL && count < n; w = next) {
        next = w->next;
        /* Relaxed: stable while linked, written before linking. */
        if (atomic_load_explicit(&w->word, memory_order_relaxed) != word)
            continue;
        unlink_waiter(b, w);
        w->next = NULL;
        *tail = w;
        tail = &w->next;
        count++;
    }
    ox__spin_unlock(&b->lock);
    /* Resume outside the lock: an unlinked waiter is ours alone until it
     * runs again, and resuming takes the runtime's queue locks. */
    for (ox__lot_waiter *w = woken, *next; w != NULL; w = next) {
        next = w->next;
        w->ops->resume(w);
    }
    return count;
}

/* A waiter that read the group's flag unset (it was set after that read)
 * links under its bucket's lock. The walk passes a bucket without writing
 * to it (the table may have a million buckets, and no shutdown should
 * touch them all) only if a seq_cst load, after the flag's seq_cst store,
 * finds its lock free and then nobody linked. A waiter whose seq_cst
 * exchange takes the lock after that load comes after the flag's store in
 * the single order, so its check under the lock sees the flag; one that
 * took it before has released it, and the load, an acquire too, reads
 * that release or a later one, so it sees the waiter's count. (Skipping
 * on the count alone missed a waiter between its check and its link: the
 * chaos point there catches that.) The grow lock keeps the table from
 * changing under the walk. */
void ox__park_lot_cancel_group(const atomic_bool *group)
{
    ox__lot_waiter *ended = NULL;
    ox__spin_lock(&grow_lock);
    /* Acquire: see lock_bucket. */
    const lot_table *t = atomic_load_explicit(&lot.current_table, memory_order_acquire);
    for (size_t i = 0; i < table_size(t); i++) {
        bucket *b = &t->buckets[i];
        /* Relaxed count: read after the acquire (and seq_cst) load. */
        if (!atomic_load_explicit(&b->lock.held, memory_order_seq_cst) &&
            atomic_load_explicit(&b->linked, memory_order_relaxed) == 0)
            continue;
        ox__spin_lock(&b->lock);
        for (ox__lot_waiter *w = b->head, *next; w != NULL; w = next) {
            next = w->next;
            if (w->group_cancelled != group || !w->site->cancellable)
                continue;
            unlink_waiter(b, w);
            w->wake_reason = OX_ECANCELED;
            w->next = ended;
            ended = w;
        }
        ox__spin_unlock(&b->lock);
    }
    ox__spin_unlock(&grow_lock);
    /* Resumed outside the locks, as by ox__park_lot_wake: each is ours
     * alone until it runs again. */
    for (ox__lot_waiter *w = ended, *next; w != NULL; w = next) {
        next = w->next;
        w->ops->resume(w);
    }
}

/* The lock, unless it stays busy: its holder may be the thread a signal
 * handler running the dump interrupted, which would never let go. Other
 * holders keep a bucket's lock for a few pointer writes (or a task's
 * switch), the grow lock for one growth. */
static bool lock_for_visit(ox__spin *lock)
{
    for (unsigned i = 0; i < 64; i++) {
        if (ox__spin_try_lock(lock))
            return true;
        ox__cpu_relax();
    }
    for (unsigned i = 0; i < 50; i++) {
        if (ox__spin_try_lock(lock))
            return true;
        ox__sys_yield();
    }
    return false;
}

int ox__park_lot_visit(void (*fn)(const ox__lot_waiter *, void *), void *ctx, int *busy)
{
    /* The grow lock keeps the table from changing under the walk. */
    bool steady = lock_for_visit(&grow_lock);
    /* Acquire: see lock_bucket. */
    const lot_table *t = atomic_load_explicit(&lot.current_table, memory_order_acquire);
    int count = 0;
    for (size_t i = 0; i < table_size(t); i++) {
        bucket *b = &t->buckets[i];
        /* Relaxed: see count_linked. */
        if (atomic_load_explicit(&b->linked, memory_order_relaxed) == 0)
            continue;
        if (!steady || !lock_for_visit(&b->lock)) {
            (*busy)++;
            continue;
        }
        for (const ox__lot_waiter *w = b->head; w != NULL; w = w->next, count++)
            fn(w, ctx);
        ox__spin_unlock(&b->lock);
    }
    if (steady)
        ox__spin_unlock(&grow_lock);
    return count;
}

size_t ox__park_lot_buckets(void)
{
    /* Acquire: see lock_bucket. */
    return table_size(atomic_load_explicit(&lot.current_table, memory_order_acquire));
}

/* ---- fork ---- */

/* The table, which grow_lock keeps current from before the fork to after. */
static lot_table *forking_table(void)
{
    /* Relaxed: read under grow_lock, which the last grower released. */
    return atomic_load_explicit(&lot.current_table, memory_order_relaxed);
}

static void lot_before_fork(void)
{
    ox__spin_lock(&grow_lock);
    lot_table *t = forking_table();
    for (size_t i = 0; i < table_size(t); i++)
        ox__spin_lock(&t->buckets[i].lock);
}

static void lot_after_fork_parent(void)
{
    lot_table *t = forking_table();
    for (size_t i = table_size(t); i-- > 0;)
        ox__spin_unlock(&t->buckets[i].lock);
    ox__spin_unlock(&grow_lock);
}

static void lot_after_fork_child(void)
{
    /* The waiters were tasks of the parent's workers, which do not exist
     * here: forget them. */
    lot_table *t = forking_table();
    for (size_t i = table_size(t); i-- > 0;) {
        bucket *b = &t->buckets[i];
        b->head = b->tail = NULL;
        /* Relaxed: the child has no other thread yet. */
        atomic_store_explicit(&b->linked, 0, memory_order_relaxed);
        ox__spin_unlock(&b->lock);
    }
    /* Relaxed: no other thread exists in the child yet. */
    atomic_store_explicit(&lot.grow_wanted, NULL, memory_order_relaxed);
    ox__spin_unlock(&grow_lock);
}

void ox__park_lot_fork_handlers(void)
{
    ox__sys_atfork(lot_before_fork, lot_after_fork_parent, lot_after_fork_child);
}
