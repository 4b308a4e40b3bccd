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

#include "../sys/sys.h"

#include <stdint.h>

/* A power of two. Each bucket's list is walked by every wake on it, and
 * each entry is another task's record: a cache miss. With ten thousand
 * tasks parked on their sockets, 256 buckets made that walk 40 entries and
 * a quarter of the echo server's CPU time; 4096 make it two or three (256
 * KiB of buckets, in zero pages until used). A table of per-address queues
 * that grows with the waiters, as parking_lot's, would do better still. */
#define LOT_BITS    12
#define LOT_BUCKETS (1 << LOT_BITS)

typedef struct bucket {
    _Alignas(64) ox__spin lock;
    ox__lot_waiter *head, *tail;
    /* How many are linked: written only under the lock (a load and a store,
     * no read-modify-write), read without it by the blocked dump to skip
     * empty buckets without taking thousands of locks. */
    _Atomic uint32_t linked;
} bucket;

static bucket lot[LOT_BUCKETS];

static bucket *bucket_of(const _Atomic uint32_t *word)
{
    /* Fibonacci hashing: words are 4-byte aligned and often in arrays. */
    uint64_t h = (uint64_t)(uintptr_t)word * UINT64_C(0x9E3779B97F4A7C15);
    return &lot[h >> (64 - LOT_BITS)];
}

static void count_linked(bucket *b, int32_t delta)
{
    /* Relaxed: under the bucket lock; the dump's unlocked read is a hint
     * (a task linked after it is not shown: the dump is not one instant). */
    uint32_t n = atomic_load_explicit(&b->linked, memory_order_relaxed);
    atomic_store_explicit(&b->linked, n + (uint32_t)delta, memory_order_relaxed);
}

static void link_waiter(bucket *b, ox__lot_waiter *w)
{
    w->next = NULL;
    w->prev = b->tail;
    if (b->tail != NULL)
        b->tail->next = w;
    else
        b->head = w;
    b->tail = w;
    /* Release: pairs with the acquire in ox__park_lot_expire, which may
     * hold another bucket's lock: one that sees this wait linked also sees
     * the word it stored before linking. */
    atomic_store_explicit(&w->linked, true, memory_order_release);
    count_linked(b, 1);
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

static bool is_cancelled(ox__lot_waiter *w)
{
    /* Seq_cst: with the seq_cst store of w->word below and in
     * ox__park_lot_expire, either the aborter sees the word we wait on, or
     * we see its flag (the two-sided store-then-load of a Dekker pair). */
    return atomic_load_explicit(&w->cancelled, memory_order_seq_cst);
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
     * find this wait's bucket to leave its mark (expired). */
    atomic_store_explicit(&w->word, word, memory_order_seq_cst);
    if (timed)
        w->ops->timer_arm(w, deadline);

    bucket *b = bucket_of(word);
    ox__spin_lock(&b->lock);
    int rc;
    /* Relaxed: the bucket lock orders us against the waker (see the top). */
    if (atomic_load_explicit(word, memory_order_relaxed) != expected) {
        rc = 0;
    } else if (w->expired) {
        rc = OX_ETIMEDOUT;
    } else if (cancellable && is_cancelled(w)) {
        rc = OX_ECANCELED;
    } else {
        w->wake_reason = 0;
        link_waiter(b, w);
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
    bucket *b = bucket_of(word);
    ox__spin_lock(&b->lock);
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
    bucket *b = bucket_of(word);
    ox__lot_waiter *woken = NULL, **tail = &woken;
    int count = 0;
    ox__spin_lock(&b->lock);
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

/* The bucket lock, unless it stays busy: its holder may be the thread a
 * signal handler running the dump interrupted, which would never let go.
 * Other holders keep it for a few pointer writes (or a task's switch). */
static bool lock_for_visit(bucket *b)
{
    for (unsigned i = 0; i < 64; i++) {
        if (ox__spin_try_lock(&b->lock))
            return true;
        ox__cpu_relax();
    }
    for (unsigned i = 0; i < 50; i++) {
        if (ox__spin_try_lock(&b->lock))
            return true;
        ox__sys_yield();
    }
    return false;
}

int ox__park_lot_visit(void (*fn)(const ox__lot_waiter *, void *), void *ctx, int *busy)
{
    int count = 0;
    for (int i = 0; i < LOT_BUCKETS; i++) {
        /* Relaxed: see count_linked. */
        if (atomic_load_explicit(&lot[i].linked, memory_order_relaxed) == 0)
            continue;
        if (!lock_for_visit(&lot[i])) {
            (*busy)++;
            continue;
        }
        for (const ox__lot_waiter *w = lot[i].head; w != NULL; w = w->next, count++)
            fn(w, ctx);
        ox__spin_unlock(&lot[i].lock);
    }
    return count;
}

/* ---- fork ---- */

static void lot_before_fork(void)
{
    for (int i = 0; i < LOT_BUCKETS; i++)
        ox__spin_lock(&lot[i].lock);
}

static void lot_after_fork_parent(void)
{
    for (int i = LOT_BUCKETS; i-- > 0;)
        ox__spin_unlock(&lot[i].lock);
}

static void lot_after_fork_child(void)
{
    /* The waiters were tasks of the parent's workers, which do not exist
     * here: forget them. */
    for (int i = LOT_BUCKETS; i-- > 0;) {
        lot[i].head = lot[i].tail = NULL;
        atomic_store_explicit(&lot[i].linked, 0, memory_order_relaxed);
        ox__spin_unlock(&lot[i].lock);
    }
}

void ox__park_lot_fork_handlers(void)
{
    ox__sys_atfork(lot_before_fork, lot_after_fork_parent, lot_after_fork_child);
}
