/* oxide/unwind_record.h - PRIVATE: the per-thread record of held locks, in a
 * public header only so that the lock fast paths (mutex.h, rwlock.h) can be
 * inlined into the caller, as arc.h does with its counts. Nothing here is
 * API: the names are ox__-prefixed, the layout changes with the library
 * version, and only oxide's own headers may use it. The full story is in
 * src/panic/unwind.h.
 */
#ifndef OXIDE_UNWIND_RECORD_H
#define OXIDE_UNWIND_RECORD_H

#include "base.h"

/* C only: C++ calls the out-of-line lock functions (see base.h). */
#ifndef __cplusplus
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

OX__API_BEGIN

/* How a kind of lock is released by a panic. One static instance per kind
 * (and per mode: an rwlock has one for read, one for write). */
typedef struct ox__lock_ops {
    const char *kind; /* "mutex", "rwlock (write)", ... for messages */
    /* Releases the lock for a panic's unwind, without poisoning it. tag:
     * the entry's tag (below). */
    void (*release)(void *lock, unsigned tag);
    /* Poisons the lock, which stays held: before the unwind releases a lock
     * taken before the panic, or an unlock by hand of one in the panic
     * hook or a cleanup releases it (Rust poisons a guard dropped while
     * panicking, unless it was made then; src/panic/unwind.c). NULL for a
     * kind or mode that does not poison. */
    void (*poison)(void *lock);
} ox__lock_ops;

typedef struct ox__unwind_entry {
    /* The lock; NULL in a cleanup's entry, so that an unlock's check of the
     * top entry compares this one word (a lock is never at NULL). */
    void *object;
    union {
        const ox__lock_ops *lock_ops; /* a lock's entry */
        void (*cleanup)(void *);      /* a cleanup's entry */
    } u;
    union {
        const char *file; /* a lock's acquisition site, for diagnostics; may be NULL */
        void *arg;        /* a cleanup's argument */
    };
    int line;
    uint16_t level; /* catch level when pushed */
    uint16_t tag;   /* the lock kind's own note: a dispersed reader's slot */
} ox__unwind_entry;

/* Whether e records a held lock (else a cleanup). The object tells: no
 * separate kind field, which would be one more store per lock. */
static inline bool ox__entry_is_lock(const ox__unwind_entry *e)
{
    return e->object != NULL;
}

#define OX__UNWIND_INLINE 16

typedef struct ox__catch_frame ox__catch_frame;

/* Below the first entry of the live record's entries is one more slot:
 * the bottom, whose object is ox__unwind_bottom, where no lock can be. An
 * unlock then compares its lock with the newest entry's object without
 * first testing that the depth is not 0: with no entry it reads the
 * bottom, which matches no lock, not even a NULL one, so the depth never
 * drops below 0. The bottom is slot 0 of the live record's slots, slot 0
 * of a heap array, or, before a thread's first entry, ox__unwind_bottom
 * itself, an array of the bottom alone. (A saved task record's slot 0 is
 * never read: its inline entries are copied into the live record's.) */
extern ox__unwind_entry ox__unwind_bottom[1];

typedef struct ox__unwind_state {
    /* slots + 1; a heap array's second slot once deeper; or
     * ox__unwind_bottom + 1 with capacity 0 before the first entry. */
    ox__unwind_entry *entries;
    uint32_t depth;
    uint32_t capacity;
    uint16_t level;     /* active catch frames */
    uint16_t panicking; /* running panic cleanups right now */
    /* The first slot of the thread's own line of rwlock reader slots, as
     * a tag (rwlock.h); 0 until its first biased read. The thread's, not a
     * task's: a task switch moves the fields around it, not this one. */
    uint32_t rw_own_tag;
    ox__catch_frame *catch_top;
    /* The bottom, then the inline entries. */
    ox__unwind_entry slots[1 + OX__UNWIND_INLINE];
} ox__unwind_state;

/* s's inline entries: its slots above the bottom. */
static inline ox__unwind_entry *ox__unwind_inline(ox__unwind_state *s)
{
    return &s->slots[1];
}

/* The live record starts a cache line, so that no entry (32 bytes) is
 * split across two lines. Left to the linker, the record fell 24 bytes
 * into a line: the first entry's 16-byte store of object and ops was split
 * in two lines, which cost an uncontended lock and unlock 0.5 ns of its 14
 * on AMD Zen 5 (docs/bench.md, session 21). */
#define OX__UNWIND_ALIGN 64

/* initial-exec unless OX_DLOPEN_SAFE: see OX__TLS_FAST in base.h. */
extern _Thread_local _Alignas(OX__UNWIND_ALIGN) ox__unwind_state ox__unwind OX__TLS_FAST;

/* The calling thread's record. Every access goes through here rather than
 * &ox__unwind: compilers treat the thread pointer as constant within a
 * function and may keep &ox__unwind in a register across a call, but a
 * task that blocks in that call can resume on another worker thread, where
 * the cached address is another thread's record. The volatile asm computes
 * the address afresh at each use (the initial-exec sequence the compiler
 * would emit); the memory clobber keeps it from moving across the call. */
ox__unwind_state *ox__unwind_current_slow(void) __attribute__((noinline));

static inline ox__unwind_state *ox__unwind_current(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(OX_DLOPEN_SAFE)
    ox__unwind_state *s;
    __asm__ volatile("movq %%fs:0, %0\n\taddq ox__unwind@gottpoff(%%rip), %0"
                     : "=r"(s)
                     :
                     : "memory");
    return s;
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(OX_DLOPEN_SAFE)
    ox__unwind_state *s;
    uintptr_t offset;
    __asm__ volatile("mrs %0, tpidr_el0\n\t"
                     "adrp %1, :gottprel:ox__unwind\n\t"
                     "ldr %1, [%1, #:gottprel_lo12:ox__unwind]\n\t"
                     "add %0, %0, %1"
                     : "=&r"(s), "=&r"(offset)
                     :
                     : "memory");
    return s;
#else
    /* Elsewhere (OX_DLOPEN_SAFE, other targets): an out-of-line call,
     * which computes the address in the thread that makes it. */
    return ox__unwind_current_slow();
#endif
}

void ox__unwind_grow(void);
OX_COLD bool ox__unwind_remove_slow(ox__unwind_state *s, const void *object);

/* The lock-order checker's switch and its acquisition hook (src/check/
 * lockdep.h documents them). Declared here because ox__held_push inlines
 * into programs: with the checker off, the hook costs one predictable branch
 * on a global that is never written after startup. */
extern atomic_bool ox__lockdep_on;
OX_COLD void ox__lockdep_acquired(const void *lock, const ox__lock_ops *ops, const char *file,
                                  int line);

/* Records that the calling thread now holds lock, with the lock kind's tag
 * (the common part of the ox__held_push functions). The entry is whole
 * when this returns: nothing after it may block before the tag is in, or
 * a task could resume on another worker, whose live record is another
 * task's (break33). */
static inline void ox__held_record(void *lock, const ox__lock_ops *ops, uint16_t tag,
                                   const char *file, int line)
{
    ox__unwind_state *s = ox__unwind_current();
    if (OX_UNLIKELY(s->depth == s->capacity))
        ox__unwind_grow(); /* also on a thread's first entry */
    ox__unwind_entry *e = &s->entries[s->depth++];
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* The entry as two 16-byte stores (object and ops; file, line, level
     * and tag) instead of five. The stores sit between the lock's
     * compare-exchange and the unlock's exchange, which waits for them to
     * drain: with four threads on one mutex (mutex_contended on AMD Zen 5)
     * the five took 20.1 ns an operation, the two 18.8, parking_lot 16.9;
     * an uncontended lock stayed at 12.6 either way. */
    typedef uint64_t ox__u64x2 __attribute__((vector_size(16)));
    _Static_assert(offsetof(ox__unwind_entry, u) == 8 && offsetof(ox__unwind_entry, file) == 16 &&
                       offsetof(ox__unwind_entry, line) == 24 &&
                       offsetof(ox__unwind_entry, level) == 28 &&
                       offsetof(ox__unwind_entry, tag) == 30,
                   "the two halves of an entry, as the stores below write them");
    const ox__u64x2 lock_and_ops = {(uintptr_t)lock, (uintptr_t)ops};
    const ox__u64x2 site_level_and_tag = {
        (uintptr_t)file, (uint32_t)line | (uint64_t)s->level << 32 | (uint64_t)tag << 48};
    __builtin_memcpy(e, &lock_and_ops, sizeof lock_and_ops);
    __builtin_memcpy(&e->file, &site_level_and_tag, sizeof site_level_and_tag);
#else
    e->object = lock;
    e->u.lock_ops = ops;
    e->file = file;
    e->line = line;
    e->level = s->level;
    e->tag = tag;
#endif
}

/* Records that the calling thread now holds lock, acquired by a call that
 * could have blocked (lock, lock_timeout, a condvar re-locking its mutex).
 * With the lock-order checker on, this is where it learns the order. */
static inline void ox__held_push_tagged(void *lock, const ox__lock_ops *ops, uint16_t tag,
                                        const char *file, int line)
{
    ox__held_record(lock, ops, tag, file, line);
#ifndef OX_NO_LOCKDEP_HOOK /* only to measure what the branch costs */
    /* Relaxed: see ox__lockdep_on in src/check/lockdep.h. */
    if (OX_UNLIKELY(atomic_load_explicit(&ox__lockdep_on, memory_order_relaxed)))
        ox__lockdep_acquired(lock, ops, file, line);
#endif
}

/* ox__held_push_tagged for the kinds that keep no tag. */
static inline void ox__held_push(void *lock, const ox__lock_ops *ops, const char *file, int line)
{
    ox__held_push_tagged(lock, ops, 0, file, line);
}

/* The same for a lock taken by a try_lock: a trylock cannot deadlock, so
 * the lock-order checker records no edge into it (edges out of it, to locks
 * taken while it is held, are recorded as usual). */
static inline void ox__held_push_try(void *lock, const ox__lock_ops *ops, const char *file,
                                     int line)
{
    ox__held_record(lock, ops, 0, file, line);
}

/* The index of s's newest entry, or -1 (the bottom's) if it has none.
 * The unlocks compare that entry and store the index as the new depth,
 * so that the store's value comes straight from the load of the depth:
 * decrementing the depth after the compare cost an uncontended lock and
 * unlock 6% (3.00 ns against 2.82 on AMD Zen 5; docs/bench.md, session
 * 35). The depth never nears INT32_MAX: each entry is 32 bytes. */
static inline int32_t ox__held_newest(const ox__unwind_state *s)
{
    return (int32_t)(s->depth - 1);
}

/* Forgets the calling thread's newest entry if it is lock held through
 * ops (for a kind with several modes, such as the rwlock's read and write)
 * and returns true; returns false and changes nothing otherwise. One look
 * at the thread pointer for both the check and the drop: each look is two
 * instructions and a load that the compiler may not merge (see
 * ox__unwind_current). */
static inline bool ox__held_drop_if_top(const void *lock, const ox__lock_ops *ops)
{
    ox__unwind_state *s = ox__unwind_current();
    int32_t newest = ox__held_newest(s);
    if (OX_LIKELY(s->entries[newest].object == lock && s->entries[newest].u.lock_ops == ops)) {
        s->depth = (uint32_t)newest;
        return true;
    }
    return false;
}

/* Forgets that the calling thread holds lock. Returns false if it did not
 * hold it (the caller reports the misuse). A cleanup's entry has a NULL
 * object: comparing the object is enough to tell a lock's entry from it. */
static inline bool ox__held_remove(const void *lock)
{
    ox__unwind_state *s = ox__unwind_current();
    int32_t newest = ox__held_newest(s);
    if (OX_LIKELY(s->entries[newest].object == lock)) {
        s->depth = (uint32_t)newest;
        return true;
    }
    return ox__unwind_remove_slow(s, lock);
}

OX__API_END
#endif /* !__cplusplus */
#endif
