/* unwind.h - the per-thread unwind record: held oxide locks and user
 * cleanups, in one stack, in the order they were taken or registered.
 *
 * Every oxide lock pushes an entry when acquired and removes it when
 * released. A panic walks the stack from the top down to its catch point,
 * releasing (and poisoning, where the lock kind poisons) each lock and running
 * each user cleanup - exact reverse order. The same record tells an unlock
 * whether the caller holds the lock (misuse aborts), lets a lock detect
 * self-deadlock on its slow path, and feeds the lock-order checker.
 *
 * Entries carry the catch level (number of active ox_catch_unwind frames)
 * at which they were pushed; a panic unwinds the entries whose level is at
 * least that of the frame it lands in. Locks may be released in any order,
 * so entries are removed from the middle when needed; levels stay sorted
 * because a frame that returns normally folds its leftover entries into the
 * enclosing level.
 */
#ifndef OX_UNWIND_H
#define OX_UNWIND_H

#include "oxide/base.h"

#include "../check/lockdep.h"

#include <stdint.h>

/* How a kind of lock is released by a panic. One static instance per kind
 * (and per mode: an rwlock has one for read, one for write). */
typedef struct ox__lock_ops {
    const char *kind;           /* "mutex", "rwlock (write)", ... for messages */
    void (*unwind)(void *lock); /* release after a panic; poisons if the kind does */
} ox__lock_ops;

typedef struct ox__unwind_entry {
    void *object; /* the lock, or the cleanup's argument */
    union {
        const ox__lock_ops *lock_ops; /* kind == OX__ENTRY_LOCK */
        void (*cleanup)(void *);      /* kind == OX__ENTRY_CLEANUP */
    } u;
    const char *file; /* acquisition site, for diagnostics; may be NULL */
    int line;
    uint16_t level; /* catch level when pushed */
    uint16_t kind;
} ox__unwind_entry;

enum { OX__ENTRY_LOCK = 1, OX__ENTRY_CLEANUP = 2 };

#define OX__UNWIND_INLINE 16

typedef struct ox__catch_frame ox__catch_frame;

typedef struct ox__unwind_state {
    ox__unwind_entry *entries; /* inline_entries, or a heap array once deeper */
    uint32_t depth;
    uint32_t capacity;
    uint16_t level;     /* active catch frames */
    uint16_t panicking; /* running panic cleanups right now */
    ox__catch_frame *catch_top;
    ox__unwind_entry inline_entries[OX__UNWIND_INLINE];
} ox__unwind_state;

/* initial-exec: a direct %fs-relative access even inside the shared
 * library, instead of a __tls_get_addr call on every lock. */
extern _Thread_local ox__unwind_state ox__unwind __attribute__((tls_model("initial-exec")));

void ox__unwind_grow(void);
OX_COLD bool ox__unwind_remove_slow(ox__unwind_state *s, const void *object);

/* Records that the calling thread now holds lock (the common part of
 * ox__held_push and ox__held_push_try). */
static inline void ox__held_record(void *lock, const ox__lock_ops *ops, const char *file, int line)
{
    ox__unwind_state *s = &ox__unwind;
    if (OX_UNLIKELY(s->depth == s->capacity))
        ox__unwind_grow(); /* also sets entries on a thread's first lock */
    ox__unwind_entry *e = &s->entries[s->depth++];
    e->object = lock;
    e->u.lock_ops = ops;
    e->file = file;
    e->line = line;
    e->level = s->level;
    e->kind = OX__ENTRY_LOCK;
}

/* Records that the calling thread now holds lock, acquired by a call that
 * could have blocked (lock, lock_timeout, a condvar re-locking its mutex).
 * With the lock-order checker on, this is where it learns the order. */
static inline void ox__held_push(void *lock, const ox__lock_ops *ops, const char *file, int line)
{
    ox__held_record(lock, ops, file, line);
#ifndef OX_NO_LOCKDEP_HOOK /* only to measure what the branch costs */
    if (OX_UNLIKELY(atomic_load_explicit(&ox__lockdep_on, memory_order_relaxed)))
        ox__lockdep_acquired(lock, ops, file, line);
#endif
}

/* The same for a lock taken by a try_lock: a trylock cannot deadlock, so
 * the lock-order checker records no edge into it (edges out of it, to locks
 * taken while it is held, are recorded as usual). */
static inline void ox__held_push_try(void *lock, const ox__lock_ops *ops, const char *file,
                                     int line)
{
    ox__held_record(lock, ops, file, line);
}

/* Forgets that the calling thread holds lock. Returns false if it did not
 * hold it (the caller reports the misuse). */
static inline bool ox__held_remove(const void *lock)
{
    ox__unwind_state *s = &ox__unwind;
    if (OX_LIKELY(s->depth > 0 && s->entries[s->depth - 1].object == lock &&
                  s->entries[s->depth - 1].kind == OX__ENTRY_LOCK)) {
        s->depth--;
        return true;
    }
    return ox__unwind_remove_slow(s, lock);
}

/* The entry for lock if the calling thread holds it, else NULL. O(depth):
 * for slow paths (self-deadlock detection) and diagnostics. */
const ox__unwind_entry *ox__held_find(const void *lock);

/* Every lock's slow path calls this before it blocks. If the calling thread
 * already holds the lock it would wait forever: aborts naming the lock and
 * both sites (Rust leaves this to deadlock or panic). The lock-order checker
 * hooks in here too, so a potential deadlock is reported before it
 * happens. file may be NULL. */
void ox__lock_before_block(const void *lock, const ox__lock_ops *ops, const char *file, int line);

/* The calling thread's held entries, bottom first (for the lock-order
 * checker and diagnostics). */
const ox__unwind_entry *ox__held_entries(uint32_t *count);

/* Frees what the exiting thread's record allocated. With check_locks,
 * first aborts if the thread still holds an oxide lock (it would stay locked
 * forever); not at process exit, where exiting with a lock held is legal. */
void ox__unwind_thread_exit(bool check_locks);

/* ---- used by panic.c ---- */
struct ox_panic_payload;

/* Releases and runs the entries of the region being unwound, then jumps to
 * the innermost catch frame with payload (taken). With no catch frame: exits
 * the process with code 101 in the main thread, aborts elsewhere. */
_Noreturn void ox__unwind_and_land(struct ox_panic_payload *payload);

#endif
