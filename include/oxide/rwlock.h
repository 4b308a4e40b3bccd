/* oxide/rwlock.h - ox_rwlock: many readers or one writer, with poisoning,
 * as Rust's std::sync::RwLock, plus a downgrade from write to read as
 * parking_lot has.
 *
 * 8 bytes, valid when zero-initialised (or OX_RWLOCK_INIT).
 *
 * Writer-preferring: once a writer waits, new readers wait behind it, so a
 * stream of overlapping readers cannot starve a writer. As a consequence a
 * thread that already holds a read lock and asks for another one while a
 * writer waits would deadlock; oxide detects that (the thread holds the lock
 * it would wait for) and aborts with a message, as it does for a thread
 * write-locking a lock it holds in any mode.
 *
 * Biased to readers: a lock made by OX_RWLOCK_INIT or ox_rwlock_init starts
 * biased. Its readers write the lock's address into a slot of their own
 * thread and read the state, with no locked instruction on the way in, and
 * its first writer makes every running thread of the process pass a memory
 * barrier (membarrier on Linux: 1 to 50 us) before it looks at those slots.
 * That writer ends the bias for good: from then on the lock works as below.
 *
 * Readers that overlap: once two readers hold a lock at the same time, its
 * readers take a slot in their CPU's cache line of a table all rwlocks
 * share, instead of one count that every reader's CPU would write, and its
 * writers read the lines in use (one per CPU) before they enter. Reads on
 * several CPUs then scale; each write costs that scan. A writer that finds
 * no reader in a slot sends readers back to the count, until two overlap
 * again.
 *
 * Poisoning: a panic that unwinds through a write lock releases and poisons
 * it; one that unwinds through a read lock only releases it (readers cannot
 * have broken the data). Every lock function then returns OX_EPOISONED with
 * the lock held, until ox_rwlock_clear_poison().
 *
 * Unlocking: ox_rwlock_read_unlock / ox_rwlock_write_unlock say the mode and
 * abort if the calling thread does not hold the lock in that mode;
 * ox_rwlock_unlock releases whichever mode the thread holds (the most recent
 * acquisition, if it holds several read locks). All abort if the thread does
 * not hold the lock.
 *
 * The lock functions are macros that record the call site; real functions of
 * the same names exist too. ox_rwlock_read, ox_rwlock_write and their
 * unlocks expand to inline fast paths with the held-lock bookkeeping and no
 * call into the library: a biased read is a store and a load each way, and
 * any other read or write one atomic read-modify-write each way; once
 * readers have overlapped on an unbiased lock, reads call into the library
 * for their slot.
 */
#ifndef OXIDE_RWLOCK_H
#define OXIDE_RWLOCK_H

#include "base.h"
#include "unwind_record.h"

#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* A readers-writer lock (see the top of this file). */
typedef struct ox_rwlock {
    OX__ATOMIC(uint32_t) state;         /* readers, writer, waiting and poison bits: rwlock.c */
    OX__ATOMIC(uint32_t) writer_notify; /* futex word writers sleep on, and a copy: rwlock.c */
} ox_rwlock;

/* ---- private: what the inline fast paths below need (not API) ---- */

/* BIASED, a bit of the state word: readers take a slot of their own thread
 * (rwlock.c). Outside the C-only part: OX_RWLOCK_INIT sets it. */
#define OX__RW_BIASED (1u << 25)
/* writer_notify's low bits route the inline read, which looks there (below
 * says why): DISPERSED, a copy of the state's bit; BIASED, set while the
 * state's is. The wake count above them goes up in steps of 4. */
#define OX__RW_NOTIFY_DISPERSED 1u
#define OX__RW_NOTIFY_BIASED    2u

#ifndef __cplusplus

/* The state word (documented in src/sync/rwlock.c). */
#define OX__RW_READER          1u
#define OX__RW_READERS_MASK    ((1u << 24) - 1)
#define OX__RW_READER_OVERFLOW (1u << 23)
#define OX__RW_OWN_SLOTS_USED  (1u << 24)
#define OX__RW_DISPERSED       (1u << 26)
#define OX__RW_WRITER_WOKEN    (1u << 27)
#define OX__RW_POISONED        (1u << 28)
#define OX__RW_WRITE_LOCKED    (1u << 29)
#define OX__RW_READERS_WAITING (1u << 30)
#define OX__RW_WRITERS_WAITING (1u << 31)
/* What turns a reader away from the fast path (looked at in the old value). */
#define OX__RW_READ_BLOCKERS                                                                       \
    (OX__RW_WRITE_LOCKED | OX__RW_WRITERS_WAITING | OX__RW_WRITER_WOKEN | OX__RW_READER_OVERFLOW)

/* The own lines of reader slots (src/sync/rwlock_slots.h): one cache line
 * per thread, a count of leaves that a waiting writer sleeps on, then the
 * slots. A slot holds the address of the biased lock one reader holds, or
 * 0. Its tag, which the reader's record entry keeps, is its index in the
 * table as an array of words: line * 8 + 1 + i, never 0. */
#define OX__RW_OWN_SLOTS_PER_LINE 7u
typedef struct ox__rw_own_line {
    OX__ALIGNAS(64) OX__ATOMIC(uint32_t) leaves;
    OX__ATOMIC(uintptr_t) slot[OX__RW_OWN_SLOTS_PER_LINE];
} ox__rw_own_line;
extern ox__rw_own_line ox__rw_own_lines[];

static inline OX__ATOMIC(uintptr_t) * ox__rw_own_slot(uint32_t tag)
{
    return &ox__rw_own_lines[tag / 8].slot[tag % 8 - 1];
}

/* Writers waiting for readers to leave their own slots, counted by a hash
 * of the lock's address: a biased read unlock reads its lock's count, so a
 * writer that waits (as long as a reader holds on) costs the unlocks of
 * other locks nothing, unless they share its count. A writer changes a
 * count only while it ends a lock's bias. */
#define OX__RW_OWN_WAITING_COUNTS 64u
typedef struct ox__rw_own_waiting_table {
    OX__ALIGNAS(64) OX__ATOMIC(uint32_t) writers[OX__RW_OWN_WAITING_COUNTS];
} ox__rw_own_waiting_table;
extern ox__rw_own_waiting_table ox__rw_own_waiting;

static inline OX__ATOMIC(uint32_t) * ox__rw_own_waiting_for(const void *lock)
{
    return &ox__rw_own_waiting.writers[(uintptr_t)lock / 64 % OX__RW_OWN_WAITING_COUNTS];
}

extern const ox__lock_ops ox__rwlock_read_ops, ox__rwlock_slot_read_ops, ox__rwlock_own_read_ops,
    ox__rwlock_write_ops;

/* The slow paths (rwlock.c). ox__rwlock_read_crowded: the fast path's
 * fetch_add found a writer (gives the count back and waits), other readers
 * (disperses the readers) or dispersed readers (sets the copy that routes
 * reads); ox__rwlock_read_dispersed: the read lock once readers are
 * dispersed; ox__rwlock_read_biased: a biased lock's read that the inline
 * path could not take (the thread's first, a busy first slot, the lock's
 * first reader, a writer); the write one waits. Each records the lock and
 * returns 0 or OX_EPOISONED. ox__rwlock_read_unlock_slow releases a
 * dispersed reader, or a read lock not on top of the record;
 * ox__rwlock_unlock_not_on_top removes a write lock from further down. Both
 * abort if the thread does not hold the lock in that mode.
 * ox__rw_own_left wakes the writers waiting for readers in own slots, after
 * a leave of the slot at tag. */
int ox__rwlock_read_crowded(ox_rwlock *l, uint32_t old, const char *file, int line);
int ox__rwlock_read_dispersed(ox_rwlock *l, const char *file, int line);
int ox__rwlock_read_biased(ox_rwlock *l, const char *file, int line);
void ox__rwlock_read_unlock_slow(ox_rwlock *l);
OX_COLD int ox__rwlock_write_contended(ox_rwlock *l, const char *file, int line);
OX_COLD void ox__rwlock_unlock_not_on_top(ox_rwlock *l, const ox__lock_ops *mode,
                                          const char *function);
OX_COLD void ox__rw_own_left(uint32_t tag);
/* Wakes a writer or the readers; s is the state the release left. */
OX_COLD void ox__rwlock_wake(ox_rwlock *l, uint32_t s);

/* Empties the own slot at tag, which holds lock: every biased reader's
 * leave (the unlock, a reader turned away, the library's unlocks and
 * unwinds). Release: the
 * reader's reads happen-before the acquire load of a writer that finds the
 * slot empty. Then a compiler barrier only, and relaxed: a writer that
 * waits for own slots counts itself, fences every thread, then reads the
 * slots; so either it sees this store or the load below sees its count,
 * and the reader wakes it. Nothing of the lock is touched after the store
 * (its writer may free it): the count is found from its address. */
static inline void ox__rw_own_leave(const void *lock, uint32_t tag)
{
    atomic_store_explicit(ox__rw_own_slot(tag), 0, memory_order_release);
    atomic_signal_fence(memory_order_seq_cst);
    if (OX_UNLIKELY(atomic_load_explicit(ox__rw_own_waiting_for(lock), memory_order_relaxed)))
        ox__rw_own_left(tag);
}

/* After a release that left state s: someone must be woken if a waiting
 * bit is set and the lock is now free (no readers, no writer). The waiting
 * bits are tested first: with none set, as in every release of a lock that
 * no thread waits for, that is one test and one branch. */
static inline void ox__rwlock_released(ox_rwlock *l, uint32_t s)
{
    if (OX_UNLIKELY((s & (OX__RW_READERS_WAITING | OX__RW_WRITERS_WAITING)) != 0) &&
        (s & (OX__RW_READERS_MASK | OX__RW_WRITE_LOCKED)) == 0)
        ox__rwlock_wake(l, s);
}

/* A read lock through the reader count: the inline path, and a dispersed
 * reader that finds no slot or finds the readers gathered again. */
OX_MUST_USE static inline int ox__rwlock_read_counted(ox_rwlock *l, const char *file, int line)
{
    /* Acquire: pairs with the release in the write unlock (the last
     * writer's writes are visible to the reader). One fetch_add, as Go's
     * RLock: a reader turned away gives the count back in the slow path. */
    uint32_t old = atomic_fetch_add_explicit(&l->state, OX__RW_READER, memory_order_acquire);
    if (OX_UNLIKELY(old & (OX__RW_READ_BLOCKERS | OX__RW_READERS_MASK | OX__RW_DISPERSED)))
        return ox__rwlock_read_crowded(l, old, file, line);
    ox__held_push(l, &ox__rwlock_read_ops, file, line);
    return (old & OX__RW_POISONED) ? OX_EPOISONED : 0;
}

/* A read lock of a biased lock in the first slot of the thread's own line
 * (rwlock.c, "Biased readers"): a plain store and a load, no locked
 * instruction. */
OX_MUST_USE static inline int ox__rwlock_read_own(ox_rwlock *l, const char *file, int line)
{
    uint32_t tag = ox__unwind_current()->rw_own_tag;
    /* Only this thread fills a slot of its line, and only the reader
     * holding one empties it, from any thread (a task). Acquire and
     * release, free on x86: a reader that left this slot from another
     * thread, its leave, this take and a writer of its lock that reads
     * this take's value are then in one chain of happens-before. */
    if (OX_LIKELY(tag != 0) &&
        OX_LIKELY(atomic_load_explicit(ox__rw_own_slot(tag), memory_order_acquire) == 0)) {
        atomic_store_explicit(ox__rw_own_slot(tag), (uintptr_t)l, memory_order_release);
        /* A compiler barrier only: a writer that ends the bias marks the
         * lock, then makes every running thread pass a full barrier, then
         * reads the slots; so either the load below sees its mark or its
         * scan sees this slot. Acquire: no writer has written under a lock
         * that is still biased, but it keeps the reader's reads after the
         * load, at no cost on x86. */
        atomic_signal_fence(memory_order_seq_cst);
#ifdef OX_CHAOS
        ox__chaos_point(); /* between the take and the load: a writer may mark here */
#endif
        uint32_t s = atomic_load_explicit(&l->state, memory_order_acquire);
        if (OX_LIKELY((s & (OX__RW_READ_BLOCKERS | OX__RW_BIASED | OX__RW_OWN_SLOTS_USED)) ==
                      (OX__RW_BIASED | OX__RW_OWN_SLOTS_USED))) {
            ox__held_push_tagged(l, &ox__rwlock_own_read_ops, (uint16_t)tag, file, line);
            return (s & OX__RW_POISONED) ? OX_EPOISONED : 0;
        }
        /* A writer, or the lock's first own reader: leave (a writer's scan
         * may have seen the slot and be waiting for it), and let the
         * library see. */
        ox__rw_own_leave(l, tag);
    }
    return ox__rwlock_read_biased(l, file, line);
}

OX_MUST_USE static inline int ox__rwlock_read_inline(ox_rwlock *l, const char *file, int line)
{
    /* Biased readers take a slot of their own thread's; once readers have
     * overlapped on an unbiased lock, they take per-CPU slots instead of
     * the shared count (rwlock.c). Which way to go is read from the copies
     * in writer_notify, not from the state: in a loop of reads on x86, a
     * load of the word that the last unlock's fetch_sub wrote cost 3 ns a
     * read (it waits for that locked instruction), and a load of the other
     * word of the same cache line nothing measurable. Relaxed: only a
     * route; each way reads the state again, in order. */
    uint32_t route = atomic_load_explicit(&l->writer_notify, memory_order_relaxed);
    if (route & OX__RW_NOTIFY_BIASED)
        return ox__rwlock_read_own(l, file, line);
    if (OX_UNLIKELY(route & OX__RW_NOTIFY_DISPERSED))
        return ox__rwlock_read_dispersed(l, file, line);
    return ox__rwlock_read_counted(l, file, line);
}

static inline void ox__rwlock_read_unlock_inline(ox_rwlock *l)
{
    ox__unwind_state *s = ox__unwind_current();
    int32_t newest = ox__held_newest(s);
    const ox__unwind_entry *e = &s->entries[newest];
    if (OX_LIKELY(e->object == l)) {
        if (e->u.lock_ops == &ox__rwlock_own_read_ops) {
            s->depth = (uint32_t)newest;
            ox__rw_own_leave(l, e->tag);
            return;
        }
        if (e->u.lock_ops == &ox__rwlock_read_ops) {
            s->depth = (uint32_t)newest;
            /* Release: the reader's reads happen-before the next writer's
             * acquire CAS (all later modifications are read-modify-writes,
             * which continue the release sequence). */
            ox__rwlock_released(
                l, atomic_fetch_sub_explicit(&l->state, OX__RW_READER, memory_order_release) -
                       OX__RW_READER);
            return;
        }
    }
    ox__rwlock_read_unlock_slow(l); /* a dispersed reader, or not on top */
}

OX_MUST_USE static inline int ox__rwlock_write_inline(ox_rwlock *l, const char *file, int line)
{
    uint32_t expected = 0;
    /* Acquire: pairs with the release in the read and write unlocks. From
     * 0 only: a lock whose readers take slots has DISPERSED or BIASED set,
     * and its writers look at the slots in the slow path. */
    if (OX_UNLIKELY(!atomic_compare_exchange_strong_explicit(
            &l->state, &expected, OX__RW_WRITE_LOCKED, memory_order_acquire, memory_order_relaxed)))
        return ox__rwlock_write_contended(l, file, line);
    ox__held_push(l, &ox__rwlock_write_ops, file, line);
    return 0;
}

static inline void ox__rwlock_write_unlock_inline(ox_rwlock *l)
{
    if (!ox__held_drop_if_top(l, &ox__rwlock_write_ops))
        ox__rwlock_unlock_not_on_top(l, &ox__rwlock_write_ops, "ox_rwlock_write_unlock");
    /* Release: the writer's writes happen-before the next acquire of the
     * state by a reader (fast-path fetch_add, slow-path CAS) or writer. */
    ox__rwlock_released(
        l, atomic_fetch_sub_explicit(&l->state, OX__RW_WRITE_LOCKED, memory_order_release) -
               OX__RW_WRITE_LOCKED);
}
#endif /* !__cplusplus */

/* ---- the API ---- */

/* Static initialiser: a lock biased to its readers until its first write
 * (rwlock.c). A zero-filled ox_rwlock is equally valid, but not biased. */
#define OX_RWLOCK_INIT                                                                             \
    {                                                                                              \
        OX__RW_BIASED, OX__RW_NOTIFY_BIASED                                                        \
    }

/* (Re)initialises an unlocked, unpoisoned rwlock (only while no thread
 * uses it). */
void ox_rwlock_init(ox_rwlock *l);
/* Aborts if l is locked in any mode. Frees nothing. With the lock-order
 * checker on, forgets l's address as ox_mutex_destroy does. */
void ox_rwlock_destroy(ox_rwlock *l);

/* Shared access. Blocks while a writer holds or waits for the lock. Returns
 * 0 or OX_EPOISONED (held either way). */
#ifdef __cplusplus
#define ox_rwlock_read(l) ox_rwlock_read_at((l), __FILE__, __LINE__)
#else
#define ox_rwlock_read(l) ox__rwlock_read_inline((l), __FILE__, __LINE__)
#endif
OX_MUST_USE int ox_rwlock_read_at(ox_rwlock *l, const char *file, int line);
OX_MUST_USE int(ox_rwlock_read)(ox_rwlock *l);

/* Exclusive access. Blocks while anyone holds the lock. 0 or OX_EPOISONED. */
#ifdef __cplusplus
#define ox_rwlock_write(l) ox_rwlock_write_at((l), __FILE__, __LINE__)
#else
#define ox_rwlock_write(l) ox__rwlock_write_inline((l), __FILE__, __LINE__)
#endif
OX_MUST_USE int ox_rwlock_write_at(ox_rwlock *l, const char *file, int line);
OX_MUST_USE int(ox_rwlock_write)(ox_rwlock *l);

/* Non-blocking forms: 0 / OX_EPOISONED (held) or OX_EBUSY (not held). */
#define ox_rwlock_try_read(l)  ox_rwlock_try_read_at((l), __FILE__, __LINE__)
#define ox_rwlock_try_write(l) ox_rwlock_try_write_at((l), __FILE__, __LINE__)
OX_MUST_USE int ox_rwlock_try_read_at(ox_rwlock *l, const char *file, int line);
OX_MUST_USE int ox_rwlock_try_write_at(ox_rwlock *l, const char *file, int line);
OX_MUST_USE int(ox_rwlock_try_read)(ox_rwlock *l);
OX_MUST_USE int(ox_rwlock_try_write)(ox_rwlock *l);

/* Timed forms: as above, or OX_ETIMEDOUT (not held) once the timeout or the
 * deadline (CLOCK_MONOTONIC) passes. A negative timeout returns OX_EINVAL
 * without trying; a huge one waits forever. */
#define ox_rwlock_read_timeout(l, t)   ox_rwlock_read_timeout_at((l), (t), __FILE__, __LINE__)
#define ox_rwlock_write_timeout(l, t)  ox_rwlock_write_timeout_at((l), (t), __FILE__, __LINE__)
#define ox_rwlock_read_deadline(l, d)  ox_rwlock_read_deadline_at((l), (d), __FILE__, __LINE__)
#define ox_rwlock_write_deadline(l, d) ox_rwlock_write_deadline_at((l), (d), __FILE__, __LINE__)
OX_MUST_USE int ox_rwlock_read_timeout_at(ox_rwlock *l, ox_nanos timeout, const char *file,
                                          int line);
OX_MUST_USE int ox_rwlock_write_timeout_at(ox_rwlock *l, ox_nanos timeout, const char *file,
                                           int line);
OX_MUST_USE int ox_rwlock_read_deadline_at(ox_rwlock *l, ox_instant deadline, const char *file,
                                           int line);
OX_MUST_USE int ox_rwlock_write_deadline_at(ox_rwlock *l, ox_instant deadline, const char *file,
                                            int line);
OX_MUST_USE int(ox_rwlock_read_timeout)(ox_rwlock *l, ox_nanos timeout);
OX_MUST_USE int(ox_rwlock_write_timeout)(ox_rwlock *l, ox_nanos timeout);
OX_MUST_USE int(ox_rwlock_read_deadline)(ox_rwlock *l, ox_instant deadline);
OX_MUST_USE int(ox_rwlock_write_deadline)(ox_rwlock *l, ox_instant deadline);

/* Releases a read lock / the write lock / whichever this thread holds. */
#ifdef __cplusplus
#define ox_rwlock_read_unlock(l)  (ox_rwlock_read_unlock)(l)
#define ox_rwlock_write_unlock(l) (ox_rwlock_write_unlock)(l)
#else
#define ox_rwlock_read_unlock(l)  ox__rwlock_read_unlock_inline(l)
#define ox_rwlock_write_unlock(l) ox__rwlock_write_unlock_inline(l)
#endif
void(ox_rwlock_read_unlock)(ox_rwlock *l);
void(ox_rwlock_write_unlock)(ox_rwlock *l);
void ox_rwlock_unlock(ox_rwlock *l);

/* Turns the calling thread's write lock into a read lock without letting
 * any writer in between, and wakes the readers waiting (unless a writer may
 * be waiting too: then they stay behind it). "May": a writer that had to
 * wait for the lock keeps the waiting mark when it takes it, since others
 * may wait with it, as Rust std's futex RwLock does; so after such a write
 * new readers wait until this read lock is released. Aborts if the thread
 * does not hold l for writing. */
void ox_rwlock_downgrade(ox_rwlock *l);

/* Whether a panic poisoned l (a writer unwound; readers never poison) and
 * nobody cleared it since. A snapshot. */
bool ox_rwlock_is_poisoned(const ox_rwlock *l);

/* Marks l as not poisoned: the holder has repaired the data. */
void ox_rwlock_clear_poison(ox_rwlock *l);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
