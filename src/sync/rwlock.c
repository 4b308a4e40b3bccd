/* rwlock.c - ox_rwlock, a writer-preferring futex reader-writer lock.
 *
 * Two 32-bit words. `state`:
 *   bits 0-23  READERS_MASK     readers holding the lock through the count,
 *                               plus readers that are passing through the
 *                               fast path (see below); bit 23
 *                               (READER_OVERFLOW) set means too many
 *   bit 24     OWN_SLOTS_USED   a reader has taken an own slot (see below)
 *   bit 25     BIASED           no writer has taken the lock yet: readers
 *                               take a slot of their own thread (see below)
 *   bit 26     DISPERSED        readers have overlapped: they take reader
 *                               slots instead of the count (see below)
 *   bit 27     WRITER_WOKEN     a sleeping writer was woken to take the
 *                               lock: readers stay out until a writer has
 *   bit 28     POISONED         a panic unwound through a write lock
 *   bit 29     WRITE_LOCKED     a writer holds the lock
 *   bit 30     READERS_WAITING  readers sleep on `state`
 *   bit 31     WRITERS_WAITING  writers sleep on `writer_notify`
 * `writer_notify` is a counter: bumped (by 4) before each writer wake-up, so
 * a writer about to sleep notices a wake it would otherwise miss. Its bit 0
 * (NOTIFY_DISPERSED) copies DISPERSED, and its bit 1 (NOTIFY_BIASED)
 * BIASED, for the inline read to choose its way without loading the state
 * (rwlock.h says why).
 *
 * Read lock (fast path): one fetch_add of a reader, like Go's RWMutex, not a
 * compare-exchange loop; under contention it never retries. If the old value
 * shows a writer holding or waiting (or too many readers), the reader was not
 * admitted: it gives the count back (as a read unlock does, waking whoever
 * that unlock would wake) and takes the slow path. So the reader count may
 * briefly include such passers-through, also while WRITE_LOCKED is set; a
 * writer only takes the lock when the count is 0.
 * Write lock: CAS from 0 to WRITE_LOCKED; else set WRITERS_WAITING, spin
 * and yield a little, then sleep on writer_notify. WRITERS_WAITING keeps new
 * readers out: writer preference. It is set before the spin, not after (as
 * Rust std does): a writer that yields unmarked lets readers keep coming.
 * Unlock (read or write): whoever leaves the lock unlocked (no readers, no
 * writer) with a waiting bit set wakes: a writer first (trading
 * WRITERS_WAITING for WRITER_WOKEN), and if no writer was actually asleep,
 * all readers (clearing READERS_WAITING). This is the protocol of Rust std's
 * futex RwLock, with the reader fast path, the poison bit and WRITER_WOKEN
 * added.
 *
 * WRITER_WOKEN closes the gap between a writer's wake-up and its taking the
 * lock, which readers would otherwise fill (and, with readers that keep
 * overlapping, fill again on every wake-up: the writer starves). It is
 * cleared by the first writer to take the lock, by the waker itself if no
 * writer was asleep after all, or by a writer that times out. While it is
 * set the lock can only be held by readers passing through the fast path,
 * so writers poll instead of sleeping, and unlocks wake nobody.
 *
 * A writer that times out clears WRITERS_WAITING (and WRITER_WOKEN) and
 * wakes a writer and the readers, who decide again (other writers set the
 * bit again): a bit left behind would keep readers out while other readers
 * hold the lock.
 *
 * Dispersed readers. Readers that share the count pull its cache line from
 * CPU to CPU on every lock and unlock: four threads on two CPUs taking a
 * read lock around one load took 50 ns a lock that way, against 13.5 on one
 * CPU. So once a reader finds another reader holding the lock, it sets
 * DISPERSED, and from then on readers take a slot in their CPU's line of a
 * table shared by all rwlocks (rwlock_slots.h), and then read the state: if
 * a writer holds or waits for the lock, they leave the slot and queue as
 * before. A writer that takes the lock (WRITE_LOCKED) then reads every slot
 * in use: the slot's take and the state's modifications are sequentially
 * consistent, so either the reader saw WRITE_LOCKED or the writer sees the
 * slot. Readers still in slots are moved into the count (the count first,
 * then the slot freed), and the writer trades WRITE_LOCKED for
 * WRITERS_WAITING and waits for the count to drain as for any reader. A
 * reader whose slot is no longer its lock's when it leaves was moved (or a
 * reader that took the slot after the move freed it for it): it gives back
 * one count. Per lock, the count then equals the readers in the count plus,
 * for each slot, its readers minus one if it still holds the lock. A reader
 * leaving its slot leaves a trace there (the lock's address with the low
 * bit set); a writer clears the traces it finds, and if it finds neither a
 * reader nor a trace on another CPU's line, clears DISPERSED
 * (settle_dispersal): readers use the count again until two of them
 * overlap there again. So the slots cost only locks that readers on
 * several CPUs use; each write to one takes the slow path and scans one
 * cache line per CPU in use.
 *
 * Biased readers. A lock made by OX_RWLOCK_INIT or ox_rwlock_init starts
 * BIASED, with its copy set. Its readers write the lock's address into a
 * slot of their thread's own line (rwlock_slots.h) with a plain store, put
 * only a compiler barrier before their load of the state, and are in if
 * it still shows BIASED, OWN_SLOTS_USED and no writer or waiting writer;
 * they leave with a plain store too. So a read costs no locked instruction
 * at all, where the count costs two on a shared line. The inline path
 * (rwlock.h) tries the first slot of the thread's line; the thread's first
 * read, a busy first slot and the lock's first reader come here
 * (ox__rwlock_read_biased). That first reader sets OWN_SLOTS_USED, once,
 * before its take. The writer pays instead (end_bias), if OWN_SLOTS_USED
 * is set; otherwise no reader has taken an own slot nor will (a reader
 * that sets the bit after the writer's compare-exchange finds
 * WRITE_LOCKED), and it just clears the bias. It takes the lock from a
 * zero count as usual (WRITE_LOCKED, BIASED left set), counts itself among
 * the writers waiting for own slots of the lock, and makes every running
 * thread of the process pass a full barrier (membarrier:
 * fence_biased_readers) before it reads the own lines.
 *  - A reader whose state load missed WRITE_LOCKED passed that barrier
 *    after its take, so the scan sees its slot; one whose load came after
 *    the barrier sees WRITE_LOCKED and leaves.
 *  - A reader whose leave the scan missed stored it after the barrier, so
 *    its next load sees the writer counted, and it bumps its line's word
 *    and wakes whoever sleeps there. (Writers are counted by a hash of
 *    their lock's address: a writer of another lock that shares the count
 *    costs a leave that wake, a microsecond, while it waits.) A writer that
 *    finds a reader in a slot sets WRITERS_WAITING (later readers wait
 *    behind it, and the reader itself aborts if it reads again rather than
 *    deadlock) and sleeps on that line's word until the slot is left.
 * A writer never claims an own slot: a plain leave could not tell it was
 * claimed. Once no own slot holds the lock, the writer clears BIASED and
 * its copy: the lock works as below from then on, and BIASED is never set
 * again, since the fence costs 1 to 50 us, which a lock that is written
 * now and then must not pay on each write. A writer that gives up first (a
 * timeout, a try_write) leaves BIASED set, and the next writer does it all
 * again; one that will not wait and already sees a reader in a slot gives
 * up before the fence. Without a fence at start-up, readers never take an
 * own slot. If it fails later (a seccomp filter), readers stop taking own
 * slots, and the first writer of a lock whose readers took some before
 * cannot exclude them: it aborts with a message.
 *
 * The copy of DISPERSED in writer_notify is set and cleared right after
 * the bit itself, by a reader that holds the lock or a writer that holds
 * it, so the two differ only for a moment, and only as a route: a reader
 * sent to the slots by a stale copy finds the bit clear in its ordered load
 * and uses the count; one sent to the count finds DISPERSED in the count's
 * old value, keeps its count (correct on any lock) and sets the copy.
 *
 * The fast paths of read, write and their unlocks (the own slot's store
 * and load, the fetch_add, the CAS, the releases and the held-record
 * bookkeeping) are inline functions in
 * oxide/rwlock.h, with the bit constants; this file has the slow paths.
 */
#include "oxide/rwlock.h"

#include "../panic/unwind.h"
#include "../thread/park.h"
#include "../check/chaos.h"
#include "../check/lockdep.h"
#include "../thread/thread_internal.h"
#include "mutex_internal.h"
#include "rwlock_slots.h"

/* The bits are defined in oxide/rwlock.h, for the inline fast paths. */
#define READER          OX__RW_READER
#define READERS_MASK    OX__RW_READERS_MASK
#define READER_OVERFLOW OX__RW_READER_OVERFLOW
#define MAX_READERS     (READER_OVERFLOW - 1)
#define WRITER_WOKEN    OX__RW_WRITER_WOKEN
#define POISONED        OX__RW_POISONED
#define WRITE_LOCKED    OX__RW_WRITE_LOCKED
#define READERS_WAITING OX__RW_READERS_WAITING
#define WRITERS_WAITING OX__RW_WRITERS_WAITING
#define READ_BLOCKERS   OX__RW_READ_BLOCKERS
#define DISPERSED       OX__RW_DISPERSED
#define BIASED          OX__RW_BIASED
#define OWN_SLOTS_USED  OX__RW_OWN_SLOTS_USED

/* writer_notify: the copy of DISPERSED in bit 0, the wake count above it. */
#define NOTIFY_DISPERSED OX__RW_NOTIFY_DISPERSED
#define NOTIFY_BIASED    OX__RW_NOTIFY_BIASED
#define NOTIFY_ONE       4u

static inline uint32_t readers(uint32_t s)
{
    return s & READERS_MASK;
}

static inline bool is_unlocked(uint32_t s)
{
    return (s & (READERS_MASK | WRITE_LOCKED)) == 0;
}

static inline bool is_read_lockable(uint32_t s)
{
    return (s & (WRITE_LOCKED | WRITERS_WAITING | WRITER_WOKEN)) == 0 && readers(s) < MAX_READERS;
}

static inline int poison_code(uint32_t s)
{
    return (s & POISONED) ? OX_EPOISONED : 0;
}

static const ox__wait_site read_site = {.what = "rwlock read"};
static const ox__wait_site write_site = {.what = "rwlock write", .counted = true};

/* ---- waking ---- */

/* Wakes the readers that sleep on the state (s: the state as last read),
 * unless one of the bits in unless is set: then they stay asleep behind a
 * writer, whose unlock wakes them. */
static void wake_readers(ox_rwlock *l, uint32_t s, uint32_t unless)
{
    /* Relaxed: no data is handed over; the woken readers acquire through
     * the state as usual. */
    while ((s & READERS_WAITING) && !(s & unless)) {
        if (atomic_compare_exchange_weak_explicit(&l->state, &s, s & ~READERS_WAITING,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            ox__park_wake_all(&l->state);
            return;
        }
    }
}

/* Wakes one sleeping writer; true if one was asleep. */
static bool wake_writer(ox_rwlock *l)
{
    /* Release: a writer going to sleep reads writer_notify (acquire) before it
     * re-checks the state; if it read the old count, its futex wait sees the
     * new one and returns at once. SeqCst: the store half of the pair with
     * a sleeping writer's count (ox__park_may_have_waiters). */
    atomic_fetch_add_explicit(&l->writer_notify, NOTIFY_ONE, memory_order_seq_cst);
    OX__CHAOS_POINT(); /* between the notify count and the wake */
    /* A writer that still spins (WRITERS_WAITING is set before the spin)
     * needs no wake, a system call. */
    if (!ox__park_may_have_waiters(&l->writer_notify))
        return false;
    return ox__park_wake_one(&l->writer_notify) > 0;
}

/* Called by whoever left the lock unlocked with waiters (s: the state it
 * left). Relaxed: the woken threads order themselves with the lock's holders
 * through their own acquire CAS on the state. */
void ox__rwlock_wake(ox_rwlock *l, uint32_t s)
{
    for (;;) {
        if (!is_unlocked(s))
            return; /* taken again (or a reader passing through): its unlock wakes */
        if (s & WRITER_WOKEN)
            return; /* a woken writer is on its way and will take the lock */
        if (s & WRITERS_WAITING) {
            if (!atomic_compare_exchange_weak_explicit(&l->state, &s,
                                                       (s & ~WRITERS_WAITING) | WRITER_WOKEN,
                                                       memory_order_relaxed, memory_order_relaxed))
                continue;
            if (wake_writer(l))
                return; /* it takes the lock; its unlock will wake the readers */
            /* No writer was asleep (they timed out, or are about to retry and
             * will see the bumped writer_notify): open the gate again and let
             * the readers in. */
            s = atomic_fetch_and_explicit(&l->state, ~WRITER_WOKEN, memory_order_relaxed) &
                ~WRITER_WOKEN;
            if (!is_unlocked(s))
                return;
        }
        if (s & READERS_WAITING) {
            if (!atomic_compare_exchange_weak_explicit(&l->state, &s, s & ~READERS_WAITING,
                                                       memory_order_relaxed, memory_order_relaxed))
                continue;
            ox__park_wake_all(&l->state);
        }
        return;
    }
}

/* Gives back one reader count: a read unlock, or a reader turned away by
 * the fast path. */
static inline void reader_release(ox_rwlock *l)
{
    /* Release: the reader's reads happen-before the next writer's acquire CAS
     * (all later modifications are read-modify-writes, which continue the
     * release sequence). */
    ox__rwlock_released(l, atomic_fetch_sub_explicit(&l->state, READER, memory_order_release) -
                               READER);
}

static inline void writer_release(ox_rwlock *l)
{
    /* Release: the writer's writes happen-before the next acquire of the
     * state by a reader (fast-path fetch_add, slow-path CAS) or writer. */
    ox__rwlock_released(
        l, atomic_fetch_sub_explicit(&l->state, WRITE_LOCKED, memory_order_release) - WRITE_LOCKED);
}

/* Gives back a dispersed reader's slot, or its count if a writer moved it
 * there. */
static void leave_slot(ox_rwlock *l, ox__rw_slot slot)
{
    if (!ox__rw_slot_leave(l, slot))
        reader_release(l);
}

static void read_unwind(void *lock, unsigned tag)
{
    (void)tag; /* the count's readers keep no slot */
    reader_release(lock);
}

static void slot_read_unwind(void *lock, unsigned slot)
{
    leave_slot(lock, slot);
}

static void own_read_unwind(void *lock, unsigned tag)
{
    ox__rw_own_leave(lock, tag);
}

/* Relaxed: published by the release in writer_release (the unwind's, or
 * the write unlock's that called for this). */
static void write_poison(void *lock)
{
    atomic_fetch_or_explicit(&((ox_rwlock *)lock)->state, POISONED, memory_order_relaxed);
}

static void write_unwind_release(void *lock, unsigned tag)
{
    (void)tag;
    writer_release(lock);
}

/* Readers never poison: no poison function. */
const ox__lock_ops ox__rwlock_read_ops = {"rwlock (read)", read_unwind, NULL};
/* A dispersed reader's entry: its tag is its slot. */
const ox__lock_ops ox__rwlock_slot_read_ops = {"rwlock (read)", slot_read_unwind, NULL};
/* A biased reader's entry: its tag is its own slot's. */
const ox__lock_ops ox__rwlock_own_read_ops = {"rwlock (read)", own_read_unwind, NULL};
const ox__lock_ops ox__rwlock_write_ops = {"rwlock (write)", write_unwind_release, write_poison};

/* ---- read ---- */

static uint32_t spin_read(ox_rwlock *l)
{
    /* Spin while a writer holds the lock or is about to (it marks itself
     * first, then spins: write_contended) and no reader sleeps: the writer
     * is probably running and about to leave. */
    ox__backoff b = {0};
    for (;;) {
        uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
        if (!(s & (WRITE_LOCKED | WRITERS_WAITING | WRITER_WOKEN)) || (s & READERS_WAITING) ||
            ox__backoff_is_completed(&b))
            return s;
        ox__backoff_snooze_lock(&b);
    }
}

OX_COLD _Noreturn static void too_many_readers(ox_rwlock *l)
{
    ox_abort("ox_rwlock_read", "rwlock %p: more than %u readers", (void *)l, MAX_READERS);
}

static bool is_read_mode(const ox__lock_ops *mode)
{
    return mode == &ox__rwlock_read_ops || mode == &ox__rwlock_slot_read_ops ||
           mode == &ox__rwlock_own_read_ops;
}

/* Whether the calling thread holds l for reading. */
static bool holds_for_reading(const ox_rwlock *l)
{
    const ox__unwind_entry *e = ox__held_find(l);
    return e != NULL && is_read_mode(e->u.lock_ops);
}

/* A fast path admitted nobody (and gave back what it took). Returns 0 /
 * OX_EPOISONED once a reader, or OX_ETIMEDOUT. */
OX_COLD static int read_contended(ox_rwlock *l, ox_instant deadline, const char *file, int line)
{
    bool checked = false;
    ox__backoff poll = {0};
    uint32_t s = spin_read(l);
    for (;;) {
        OX__CHAOS_POINT(); /* between reading the state and acting on it */
        if (is_read_lockable(s)) {
            /* Acquire: pairs with the release in writer_release. */
            if (atomic_compare_exchange_weak_explicit(&l->state, &s, s + READER,
                                                      memory_order_acquire, memory_order_relaxed))
                return poison_code(s);
            continue;
        }
        if ((s & (WRITE_LOCKED | WRITERS_WAITING | WRITER_WOKEN)) == WRITE_LOCKED &&
            holds_for_reading(l)) {
            /* This thread holds l for reading (in a slot, or the writer could
             * not have set WRITE_LOCKED): the writer is scanning the slots,
             * finds this thread's and gives WRITE_LOCKED back. No deadlock,
             * and nobody may wake a sleep here (a try_write wakes no one). */
            ox__backoff_snooze(&poll);
            s = atomic_load_explicit(&l->state, memory_order_relaxed);
            continue;
        }
        if (readers(s) >= MAX_READERS && !(s & (WRITE_LOCKED | WRITERS_WAITING)))
            too_many_readers(l);
        if (!(s & READERS_WAITING)) {
            if (!atomic_compare_exchange_weak_explicit(&l->state, &s, s | READERS_WAITING,
                                                       memory_order_relaxed, memory_order_relaxed))
                continue;
            s |= READERS_WAITING;
        }
        if (!checked) {
            ox__lock_before_block(l, &ox__rwlock_read_ops, file, line);
            checked = true;
        }
        if (ox__park_wait(&l->state, s, deadline, &read_site, l) == OX_ETIMEDOUT)
            return OX_ETIMEDOUT; /* READERS_WAITING may stay: one wasted wake */
        s = spin_read(l);
    }
}

static inline int read_lock(ox_rwlock *l, ox_instant deadline, const char *file, int line)
{
    /* Acquire: pairs with the release in writer_release (the last writer's
     * writes are visible to the reader). */
    uint32_t old = atomic_fetch_add_explicit(&l->state, READER, memory_order_acquire);
    int rc = poison_code(old);
    if (OX_UNLIKELY(old & READ_BLOCKERS)) {
        reader_release(l);
        rc = read_contended(l, deadline, file, line);
        if (rc == OX_ETIMEDOUT)
            return rc;
    }
    ox__held_push(l, &ox__rwlock_read_ops, file, line);
    return rc;
}

static int read_contended_then_push(ox_rwlock *l, const char *file, int line)
{
    int rc = read_contended(l, OX_INSTANT_NEVER, file, line);
    ox__held_push(l, &ox__rwlock_read_ops, file, line);
    return rc;
}

/* The inline fast path's fetch_add found a writer, or other readers, or
 * readers dispersed (old: the state before it). */
int ox__rwlock_read_crowded(ox_rwlock *l, uint32_t old, const char *file, int line)
{
    if (old & READ_BLOCKERS) {
        reader_release(l);
        return read_contended_then_push(l, file, line);
    }
    /* Readers overlap: from now on they take slots. (Or they do already,
     * and the copy that sent this reader here lagged.) Relaxed: a mode,
     * which the dispersed path's own loads and stores order. The copy is
     * set while this reader holds the lock, so no writer clears the two
     * meanwhile. */
    if (!(old & DISPERSED))
        atomic_fetch_or_explicit(&l->state, DISPERSED, memory_order_relaxed);
    if (!(atomic_load_explicit(&l->writer_notify, memory_order_relaxed) & NOTIFY_DISPERSED))
        atomic_fetch_or_explicit(&l->writer_notify, NOTIFY_DISPERSED, memory_order_relaxed);
    ox__held_push(l, &ox__rwlock_read_ops, file, line);
    return poison_code(old);
}

/* A read lock on a biased lock, in a slot of the thread's own (this file's
 * header). Returns false, holding nothing, if the reader must go another
 * way: no fence in this process, no free own slot, or the lock no longer
 * biased. */
static bool read_own_slot(ox_rwlock *l, uint32_t route, const char *file, int line, int *rc)
{
    /* Relaxed: NO_FENCE is set before any reader runs if start-up found no
     * fence; set later, writers of locks that have OWN_SLOTS_USED abort
     * (fence_biased_readers), and no other lock gets the bit. */
    if (atomic_load_explicit(&ox__mutex_arm.epoch, memory_order_relaxed) & OX__MUTEX_EPOCH_NO_FENCE)
        return false;
    /* Only onto a biased lock: a bit set after a writer ended the bias would
     * stay, and send every write of the lock to the slow path. Relaxed: the
     * writer's compare-exchange and this are ordered on the word itself: if
     * it came first, the load below sees WRITE_LOCKED. */
    while (!(route & OWN_SLOTS_USED))
        if (!(route & BIASED) ||
            atomic_compare_exchange_weak_explicit(&l->state, &route, route | OWN_SLOTS_USED,
                                                  memory_order_relaxed, memory_order_relaxed))
            break;
    if (!(route & BIASED))
        return false;
    uint32_t tag;
    if (!ox__rw_own_slot_take(l, &tag))
        return false;
    /* As the inline path (oxide/rwlock.h), which says why. */
    atomic_signal_fence(memory_order_seq_cst);
    OX__CHAOS_POINT(); /* between the take and the load: a writer may mark here */
    uint32_t s = atomic_load_explicit(&l->state, memory_order_acquire);
    if (OX_LIKELY((s & (READ_BLOCKERS | BIASED)) == BIASED)) {
        ox__held_push_tagged(l, &ox__rwlock_own_read_ops, (uint16_t)tag, file, line);
        *rc = poison_code(s);
        return true;
    }
    ox__rw_own_leave(l, tag);
    return false;
}

int ox__rwlock_read_biased(ox_rwlock *l, const char *file, int line)
{
    /* Relaxed: a route, as the copy; each way loads the state again, in
     * order. */
    uint32_t route = atomic_load_explicit(&l->state, memory_order_relaxed);
    int rc;
    if ((route & BIASED) && read_own_slot(l, route, file, line, &rc))
        return rc;
    if (route & DISPERSED)
        return ox__rwlock_read_dispersed(l, file, line);
    return ox__rwlock_read_counted(l, file, line);
}

/* A read lock once readers are dispersed (this file's header). */
int ox__rwlock_read_dispersed(ox_rwlock *l, const char *file, int line)
{
    ox__rw_slot slot;
    if (ox__rw_slot_take(l, &slot)) {
        /* Seq_cst: after the take in the single total order, so either this
         * load sees a writer's WRITE_LOCKED (or the DISPERSED it cleared
         * since), or that writer's scan sees the slot (move_slot_readers).
         * It is an acquire as well: pairs with the release in
         * writer_release. */
        uint32_t s = atomic_load_explicit(&l->state, memory_order_seq_cst);
        if (OX_LIKELY((s & (READ_BLOCKERS | DISPERSED)) == DISPERSED)) {
            /* The slot goes in with the entry: the push's lock-order hook
             * may block, and a task may resume on another worker (break33). */
            ox__held_push_tagged(l, &ox__rwlock_slot_read_ops, (uint16_t)slot, file, line);
            return poison_code(s);
        }
        leave_slot(l, slot);
        if (s & READ_BLOCKERS)
            return read_contended_then_push(l, file, line);
    }
    /* This CPU's line is full, or a writer has gathered the readers again. */
    return ox__rwlock_read_counted(l, file, line);
}

int ox_rwlock_read_at(ox_rwlock *l, const char *file, int line)
{
    return ox__rwlock_read_inline(l, file, line);
}

int ox_rwlock_read_deadline_at(ox_rwlock *l, ox_instant deadline, const char *file, int line)
{
    return read_lock(l, deadline, file, line);
}

int ox_rwlock_read_timeout_at(ox_rwlock *l, ox_nanos timeout, const char *file, int line)
{
    if (timeout < 0)
        return OX_EINVAL;
    return read_lock(l, ox_instant_after(timeout), file, line);
}

int ox_rwlock_try_read_at(ox_rwlock *l, const char *file, int line)
{
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    while (is_read_lockable(s)) {
        /* Acquire: pairs with the release in writer_release. */
        if (atomic_compare_exchange_weak_explicit(&l->state, &s, s + READER, memory_order_acquire,
                                                  memory_order_relaxed)) {
            ox__held_push_try(l, &ox__rwlock_read_ops, file, line);
            return poison_code(s);
        }
    }
    return OX_EBUSY;
}

/* ---- write ---- */

/* Spins, then yields, while the lock is held and this writer's mark
 * (WRITERS_WAITING) stands; returns the state when that changes or the
 * backoff is spent. Only called once the writer is marked, so readers stay
 * out while it yields: on a loaded machine a yield can last long (a writer
 * that yielded unmarked was seen letting readers in for ~115 ms). */
static uint32_t spin_write(ox_rwlock *l)
{
    ox__backoff b = {0};
    for (;;) {
        uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
        if (is_unlocked(s) || !(s & WRITERS_WAITING) || (s & WRITER_WOKEN) ||
            ox__backoff_is_completed(&b))
            return s;
        ox__backoff_snooze_lock(&b);
    }
}

OX_COLD _Noreturn static void fence_lost(const ox_rwlock *l)
{
    ox_abort("ox_rwlock_write",
             "rwlock %p: the process-wide memory barrier (membarrier) failed after start-up "
             "(a seccomp filter installed since? allow membarrier in it), and readers took "
             "slots of their own in this lock before: the writer cannot exclude them",
             (const void *)l);
}

/* Makes each running thread pass a full barrier (see end_bias). */
static void fence_biased_readers(const ox_rwlock *l)
{
    /* NEVER: no reader took an own slot (read_biased). */
    if (ox__mutex_fence_others() == OX__FENCE_LOST)
        fence_lost(l);
}

/* Whether an own slot holds l as far as this thread sees, with no fence:
 * a reader, or one passing through on its way to the count. */
static bool own_reader_seen(const ox_rwlock *l)
{
    for (unsigned i = 0, n = ox__rw_own_slots_used(); i < n; i++)
        if (ox__rw_own_slot_holds(ox__rw_own_tag_of(i), l))
            return true;
    return false;
}

static const ox__wait_site own_slots_site = {.what = "rwlock write (readers in own slots)"};

/* The writer that holds l ends its bias: no reader holds an own slot of it
 * now, and none will take one (each loads the state after its take and
 * finds WRITE_LOCKED, then BIASED clear). Returns 0. */
static int clear_bias(ox_rwlock *l)
{
    /* Relaxed: the write unlock's release publishes it. */
    atomic_fetch_and_explicit(&l->state, ~(BIASED | OWN_SLOTS_USED), memory_order_relaxed);
    atomic_fetch_and_explicit(&l->writer_notify, ~NOTIFY_BIASED, memory_order_relaxed);
    return 0;
}

/* This thread has set WRITE_LOCKED on a lock with BIASED set (this file's
 * header, "Biased readers"; s: the state it took the lock from). Waits, if
 * may_wait, until no reader holds l in an own slot, then clears the bias:
 * returns 0. Otherwise returns OX_EBUSY, or OX_ETIMEDOUT at deadline, with
 * BIASED still set and WRITE_LOCKED still held. */
static int end_bias(ox_rwlock *l, uint32_t s, bool may_wait, ox_instant deadline, const char *file,
                    int line)
{
    if (!(s & OWN_SLOTS_USED))
        return clear_bias(l);
    /* A writer that will not wait (a try_write, a deadline already passed)
     * and sees a reader in an own slot gives up before the fence, which
     * would otherwise cost every try of a loop of them an interrupt on
     * each CPU that runs the process. What it sees is there: only the
     * stores it may not see yet need the fence. */
    if ((!may_wait || ox_instant_now().ns >= deadline.ns) && own_reader_seen(l))
        return may_wait ? OX_ETIMEDOUT : OX_EBUSY;
    /* Counted first, then the fence: a reader whose take this scan misses
     * had its state load after the fence, which sees WRITE_LOCKED; one whose
     * leave the scan misses sees the count, and wakes this writer. */
    ox__rw_own_wait_begin(l);
    fence_biased_readers(l);
    int rc = 0;
    for (unsigned i = 0, n = ox__rw_own_slots_used(); i < n && rc == 0; i++) {
        uint32_t tag = ox__rw_own_tag_of(i);
        if (!ox__rw_own_slot_holds(tag, l))
            continue;
        if (!may_wait) {
            rc = OX_EBUSY;
            break;
        }
        /* Readers that come now wait behind this writer; one that holds l
         * already (maybe in this very slot) and asks again would wait for
         * it forever, and aborts instead (ox__lock_before_block), as this
         * writer does if it is that reader. Relaxed: a mark. */
        atomic_fetch_or_explicit(&l->state, WRITERS_WAITING, memory_order_relaxed);
        ox__lock_before_block(l, &ox__rwlock_write_ops, file, line);
        rc = ox__rw_own_slot_wait(tag, l, deadline, &own_slots_site);
    }
    ox__rw_own_wait_end(l);
    return rc != 0 ? rc : clear_bias(l);
}

/* This thread has just set WRITE_LOCKED on a dispersed lock. Readers that
 * took a slot before may still hold it: moves each into the count, and
 * returns how many it moved (0: the write lock is this thread's). Sets
 * *read_elsewhere if readers on other CPUs used slots since the last write
 * (their traces). */
static unsigned move_slot_readers(ox_rwlock *l, bool *read_elsewhere)
{
    unsigned moved = 0;
    unsigned my_line = ox__rw_slot_current_line();
    *read_elsewhere = false;
    ox__rw_slot end = ox__rw_slot_end();
    for (ox__rw_slot slot = 0; slot < end; slot++) {
        ox__rw_slot_seen seen = ox__rw_slot_look(slot, l, my_line);
        if (seen == OX__RW_SLOT_LEFT_ELSEWHERE)
            *read_elsewhere = true;
        if (seen != OX__RW_SLOT_HELD)
            continue;
        /* The count first: once the slot is freed, the reader's leave fails
         * and gives a count back. Relaxed: while WRITE_LOCKED is set, no
         * thread takes the lock on the count's word. */
        atomic_fetch_add_explicit(&l->state, READER, memory_order_relaxed);
        if (ox__rw_slot_claim(slot, l))
            moved++;
        else /* it left first (its release pairs with the claim's acquire) */
            atomic_fetch_sub_explicit(&l->state, READER, memory_order_relaxed);
    }
    return moved;
}

/* After move_slot_readers found readers: gives WRITE_LOCKED back, and sets
 * mark (WRITERS_WAITING for a writer that waits for them, 0 for a try_write
 * that gives up). Returns the new state. */
static uint32_t give_back_to_readers(ox_rwlock *l, uint32_t mark)
{
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    /* Relaxed: this writer wrote nothing under the lock. */
    while (!atomic_compare_exchange_weak_explicit(&l->state, &s, (s & ~WRITE_LOCKED) | mark,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
    return (s & ~WRITE_LOCKED) | mark;
}

/* This thread holds the write lock, and move_slot_readers found no reader
 * in a slot. Unless readers on other CPUs have used slots since the last
 * write (read_elsewhere), readers go back to the count until they overlap
 * there again: a lock used by one thread at a time, or by threads that
 * share a CPU, stops paying for the slots. No reader can hold a slot once
 * DISPERSED is clear: a dispersed reader requires the bit in its ordered
 * load, and one that passed that load before this writer's WRITE_LOCKED
 * took its slot before the scan, which would have seen it. also: bits to
 * clear in any case (try_write ends a WRITER_WOKEN turn here). Relaxed: the
 * write unlock's release publishes them. */
static void settle_dispersal(ox_rwlock *l, bool read_elsewhere, uint32_t also)
{
    uint32_t clear = also | (read_elsewhere ? 0 : DISPERSED);
    if (clear != 0)
        atomic_fetch_and_explicit(&l->state, ~clear, memory_order_relaxed);
    /* The copy too (relaxed, as the bit; a writer asleep on writer_notify
     * just looks again). */
    if (!read_elsewhere &&
        (atomic_load_explicit(&l->writer_notify, memory_order_relaxed) & NOTIFY_DISPERSED))
        atomic_fetch_and_explicit(&l->writer_notify, ~NOTIFY_DISPERSED, memory_order_relaxed);
}

/* Counts the readers that hold l through slots (for ox_rwlock_destroy's
 * check). */
static unsigned slot_readers(const ox_rwlock *l)
{
    unsigned n = 0;
    for (ox__rw_slot slot = 0, end = ox__rw_slot_end(); slot < end; slot++)
        n += ox__rw_slot_holds(slot, l);
    for (unsigned i = 0, own = ox__rw_own_slots_used(); i < own; i++)
        n += ox__rw_own_slot_holds(ox__rw_own_tag_of(i), l);
    return n;
}

/* A writer timed out. It may have been the only writer waiting: its
 * WRITERS_WAITING would then keep readers out for nothing (and deadlock a
 * thread that holds a read lock and waits for another reader). So clear the
 * bit and let every sleeper decide again: other writers set it again. */
OX_COLD static void write_gave_up(ox_rwlock *l)
{
    /* Relaxed: no data is handed over; the woken threads acquire through the
     * state as usual. */
    uint32_t s = atomic_fetch_and_explicit(&l->state, ~(WRITERS_WAITING | WRITER_WOKEN),
                                           memory_order_relaxed) &
                 ~(WRITERS_WAITING | WRITER_WOKEN);
    wake_writer(l);
    wake_readers(l, s, 0);
}

/* Returns 0 / OX_EPOISONED once the writer, or OX_ETIMEDOUT. */
OX_COLD static int write_contended(ox_rwlock *l, ox_instant deadline, const char *file, int line)
{
    /* Once this writer has slept, a wake-up may have cleared WRITERS_WAITING
     * although other writers still sleep: it keeps the bit set when it takes
     * the lock, so its unlock wakes them. */
    uint32_t other_writers_waiting = 0;
    bool checked = false;
    bool spun = false; /* since the last sleep */
    ox__backoff poll = {0};
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    for (;;) {
        if (is_unlocked(s)) {
            /* Acquire: pairs with the release in reader_release and
             * writer_release. Seq_cst: a dispersed reader's state load is
             * ordered against it (move_slot_readers). Taking the lock ends a
             * WRITER_WOKEN turn, whichever writer was woken. */
            if (!atomic_compare_exchange_weak_explicit(
                    &l->state, &s, (s & ~WRITER_WOKEN) | WRITE_LOCKED | other_writers_waiting,
                    memory_order_seq_cst, memory_order_relaxed))
                continue;
            int rc = poison_code(s);
            if ((s & BIASED) && end_bias(l, s, true, deadline, file, line) == OX_ETIMEDOUT) {
                /* Relaxed: this writer wrote nothing under the lock. */
                atomic_fetch_and_explicit(&l->state, ~WRITE_LOCKED, memory_order_relaxed);
                write_gave_up(l);
                return OX_ETIMEDOUT;
            }
            if (!(s & DISPERSED))
                return rc;
            bool read_elsewhere;
            if (move_slot_readers(l, &read_elsewhere) == 0) {
                settle_dispersal(l, read_elsewhere, 0);
                return rc;
            }
            /* Readers still hold it: wait for them as for any readers. */
            s = give_back_to_readers(l, WRITERS_WAITING);
            other_writers_waiting = WRITERS_WAITING;
            continue;
        }
        if (s & WRITER_WOKEN) {
            /* A writer's turn: readers passing through hold the lock for a
             * moment, and their unlock wakes nobody. Poll. But readers that
             * a try_write moved into the count (it leaves WRITER_WOKEN as it
             * was) may hold it for long: once the poll is spent, end the turn
             * and wait marked, as any writer, so that their unlock wakes a
             * writer (and a timed wait keeps its deadline). */
            if (!ox__backoff_is_completed(&poll)) {
                ox__backoff_snooze(&poll);
                s = atomic_load_explicit(&l->state, memory_order_relaxed);
                continue;
            }
            /* Relaxed: a mark; no data is handed over. */
            if (atomic_compare_exchange_weak_explicit(&l->state, &s,
                                                      (s & ~WRITER_WOKEN) | WRITERS_WAITING,
                                                      memory_order_relaxed, memory_order_relaxed))
                s = (s & ~WRITER_WOKEN) | WRITERS_WAITING;
            continue;
        }
        if (!(s & WRITERS_WAITING) &&
            !atomic_compare_exchange_weak_explicit(&l->state, &s, s | WRITERS_WAITING,
                                                   memory_order_relaxed, memory_order_relaxed))
            continue;
        other_writers_waiting = WRITERS_WAITING;
        if (!spun) {
            /* Marked first, then spin: the holders are likely to leave
             * soon, and no new reader gets in meanwhile. */
            spun = true;
            s = spin_write(l);
            continue;
        }
        /* Acquire: pairs with the release increment in wake_writer. Read
         * before the state is checked again, so a wake between that check and
         * the sleep changes the word the sleep compares. */
        uint32_t seq = atomic_load_explicit(&l->writer_notify, memory_order_acquire);
        OX__CHAOS_POINT(); /* a wake_writer here must still reach the sleep below */
        s = atomic_load_explicit(&l->state, memory_order_relaxed);
        if (is_unlocked(s) || !(s & WRITERS_WAITING) || (s & WRITER_WOKEN))
            continue;
        if (!checked) {
            ox__lock_before_block(l, &ox__rwlock_write_ops, file, line);
            checked = true;
        }
        if (ox__park_wait(&l->writer_notify, seq, deadline, &write_site, l) == OX_ETIMEDOUT) {
            write_gave_up(l);
            return OX_ETIMEDOUT;
        }
        spun = false; /* spin and poll again after a wake-up */
        poll = (ox__backoff){0};
        s = atomic_load_explicit(&l->state, memory_order_relaxed);
    }
}

static inline int write_lock(ox_rwlock *l, ox_instant deadline, const char *file, int line)
{
    uint32_t expected = 0;
    int rc = 0;
    /* Acquire: pairs with the release in reader_release and writer_release. */
    if (OX_UNLIKELY(!atomic_compare_exchange_strong_explicit(
            &l->state, &expected, WRITE_LOCKED, memory_order_acquire, memory_order_relaxed))) {
        rc = write_contended(l, deadline, file, line);
        if (rc == OX_ETIMEDOUT)
            return rc;
    }
    ox__held_push(l, &ox__rwlock_write_ops, file, line);
    return rc;
}

int ox__rwlock_write_contended(ox_rwlock *l, const char *file, int line)
{
    int rc = write_contended(l, OX_INSTANT_NEVER, file, line);
    ox__held_push(l, &ox__rwlock_write_ops, file, line);
    return rc;
}

int ox_rwlock_write_at(ox_rwlock *l, const char *file, int line)
{
    return ox__rwlock_write_inline(l, file, line);
}

int ox_rwlock_write_deadline_at(ox_rwlock *l, ox_instant deadline, const char *file, int line)
{
    return write_lock(l, deadline, file, line);
}

int ox_rwlock_write_timeout_at(ox_rwlock *l, ox_nanos timeout, const char *file, int line)
{
    if (timeout < 0)
        return OX_EINVAL;
    return write_lock(l, ox_instant_after(timeout), file, line);
}

/* A try_write found readers in slots after it set WRITE_LOCKED: gives the
 * lock back, with mark (see give_back_to_readers), and fails. */
static int try_write_gives_back(ox_rwlock *l, uint32_t mark)
{
    /* Readers hold it; their unlocks wake whom they must. */
    uint32_t now = give_back_to_readers(l, mark);
    ox__rwlock_released(l, now);
    /* But readers that came while WRITE_LOCKED stood may sleep
     * (READERS_WAITING), and no writer waits for the readers that hold it:
     * let them in now, not when those leave. */
    wake_readers(l, now, WRITE_LOCKED | WRITERS_WAITING | WRITER_WOKEN);
    return OX_EBUSY;
}

int ox_rwlock_try_write_at(ox_rwlock *l, const char *file, int line)
{
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    while (is_unlocked(s)) {
        /* Taking the lock ends a WRITER_WOKEN turn; but on a dispersed lock
         * this writer may give it back, so it keeps the bit until it knows:
         * the woken writer may give up meanwhile (write_gave_up clears it),
         * and a bit set back from s would then keep readers out with no
         * writer on its way. */
        uint32_t ended = (s & (DISPERSED | BIASED)) ? 0 : WRITER_WOKEN;
        /* Acquire: pairs with the release in reader_release and
         * writer_release. Seq_cst: as in write_contended. */
        if (atomic_compare_exchange_weak_explicit(&l->state, &s, (s & ~ended) | WRITE_LOCKED,
                                                  memory_order_seq_cst, memory_order_relaxed)) {
            bool read_elsewhere = false;
            if (((s & BIASED) && end_bias(l, s, false, OX_INSTANT_NEVER, file, line) != 0) ||
                ((s & DISPERSED) && move_slot_readers(l, &read_elsewhere) != 0))
                return try_write_gives_back(l, 0);
            if (s & (DISPERSED | BIASED))
                settle_dispersal(l, read_elsewhere, WRITER_WOKEN);
            ox__held_push_try(l, &ox__rwlock_write_ops, file, line);
            return poison_code(s);
        }
    }
    return OX_EBUSY;
}

/* ---- unlock, downgrade ---- */

OX_COLD _Noreturn static void not_held(const char *function, const ox_rwlock *l,
                                       const ox__lock_ops *want, const ox__lock_ops *have)
{
    if (have == NULL)
        ox_abort(function, "unlocking an rwlock not held by this thread (rwlock %p, thread '%s')",
                 (const void *)l, ox__unit_thread_name_or_unnamed());
    ox_abort(function, "rwlock %p is held %s by thread '%s', not %s", (const void *)l,
             have == &ox__rwlock_write_ops ? "for writing" : "for reading",
             ox__unit_thread_name_or_unnamed(),
             want == &ox__rwlock_read_ops ? "for reading" : "for writing");
}

/* Forgets e, the calling thread's newest entry for l, and releases l in
 * the entry's mode. */
static void release_entry(ox_rwlock *l, const ox__unwind_entry *e)
{
    const ox__lock_ops *mode = e->u.lock_ops;
    unsigned tag = e->tag;
    ox__held_remove(l);
    if (mode == &ox__rwlock_own_read_ops)
        ox__rw_own_leave(l, tag);
    else if (mode == &ox__rwlock_slot_read_ops)
        leave_slot(l, tag);
    else if (mode == &ox__rwlock_read_ops)
        reader_release(l);
    else
        writer_release(l);
}

void ox__rwlock_read_unlock_slow(ox_rwlock *l)
{
    const ox__unwind_entry *e = ox__held_find(l);
    if (e == NULL || !is_read_mode(e->u.lock_ops))
        not_held("ox_rwlock_read_unlock", l, &ox__rwlock_read_ops, e ? e->u.lock_ops : NULL);
    release_entry(l, e);
}

void ox__rwlock_unlock_not_on_top(ox_rwlock *l, const ox__lock_ops *want, const char *function)
{
    const ox__unwind_entry *e = ox__held_find(l);
    const ox__lock_ops *mode = e ? e->u.lock_ops : NULL;
    if (mode != want)
        not_held(function, l, want, mode);
    ox__held_remove(l);
}

void(ox_rwlock_read_unlock)(ox_rwlock *l)
{
    ox__rwlock_read_unlock_inline(l);
}

void(ox_rwlock_write_unlock)(ox_rwlock *l)
{
    ox__rwlock_write_unlock_inline(l);
}

void ox_rwlock_unlock(ox_rwlock *l)
{
    const ox__unwind_entry *e = ox__held_find(l);
    if (OX_UNLIKELY(e == NULL))
        not_held("ox_rwlock_unlock", l, NULL, NULL);
    release_entry(l, e);
}

void ox_rwlock_downgrade(ox_rwlock *l)
{
    const ox__unwind_entry *e = ox__held_find(l);
    if (e == NULL || e->u.lock_ops != &ox__rwlock_write_ops)
        ox_abort("ox_rwlock_downgrade", "rwlock %p is not held for writing by thread '%s'",
                 (void *)l, ox__unit_thread_name_or_unnamed());
    /* The entry stays where it is (the acquisition order is unchanged); only
     * its mode changes. The record is this thread's own, so writing through
     * the pointer is safe. */
    ((ox__unwind_entry *)e)->u.lock_ops = &ox__rwlock_read_ops;
    /* Release: the writes made under the write lock happen-before the
     * readers admitted from now on. One step: WRITE_LOCKED off, one reader
     * on, so no writer can get in between. */
    uint32_t s = atomic_fetch_sub_explicit(&l->state, WRITE_LOCKED - READER, memory_order_release) -
                 (WRITE_LOCKED - READER);
    /* With a writer waiting, readers stay behind it (writer preference). */
    wake_readers(l, s, WRITERS_WAITING);
}

/* ---- the rest ---- */

void ox_rwlock_init(ox_rwlock *l)
{
    atomic_init(&l->state, BIASED);
    atomic_init(&l->writer_notify, NOTIFY_BIASED);
}

void ox_rwlock_destroy(ox_rwlock *l)
{
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    if (s & WRITE_LOCKED)
        ox_abort("ox_rwlock_destroy", "destroying an rwlock locked for writing (%p)", (void *)l);
    unsigned held_by = readers(s) + ((s & (DISPERSED | BIASED)) ? slot_readers(l) : 0);
    if (held_by != 0)
        ox_abort("ox_rwlock_destroy", "destroying an rwlock locked for reading (%p, %u readers)",
                 (void *)l, held_by);
    ox__lockdep_retire(l);
}

bool ox_rwlock_is_poisoned(const ox_rwlock *l)
{
    return (atomic_load_explicit(&l->state, memory_order_relaxed) & POISONED) != 0;
}

void ox_rwlock_clear_poison(ox_rwlock *l)
{
    atomic_fetch_and_explicit(&l->state, ~POISONED, memory_order_relaxed);
}

int(ox_rwlock_read)(ox_rwlock *l)
{
    return ox_rwlock_read_at(l, NULL, 0);
}

int(ox_rwlock_write)(ox_rwlock *l)
{
    return ox_rwlock_write_at(l, NULL, 0);
}

int(ox_rwlock_try_read)(ox_rwlock *l)
{
    return ox_rwlock_try_read_at(l, NULL, 0);
}

int(ox_rwlock_try_write)(ox_rwlock *l)
{
    return ox_rwlock_try_write_at(l, NULL, 0);
}

int(ox_rwlock_read_timeout)(ox_rwlock *l, ox_nanos timeout)
{
    return ox_rwlock_read_timeout_at(l, timeout, NULL, 0);
}

int(ox_rwlock_write_timeout)(ox_rwlock *l, ox_nanos timeout)
{
    return ox_rwlock_write_timeout_at(l, timeout, NULL, 0);
}

int(ox_rwlock_read_deadline)(ox_rwlock *l, ox_instant deadline)
{
    return ox_rwlock_read_deadline_at(l, deadline, NULL, 0);
}

int(ox_rwlock_write_deadline)(ox_rwlock *l, ox_instant deadline)
{
    return ox_rwlock_write_deadline_at(l, deadline, NULL, 0);
}
