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
#include <stdint.h>

OX__API_BEGIN

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

/* initial-exec: a direct %fs-relative access, in the library and in the
 * programs that inline the lock fast paths, instead of a __tls_get_addr
 * call on every lock. (The cost: liboxide.so cannot be dlopen'ed late into
 * a process whose static TLS space is exhausted.) */
extern _Thread_local ox__unwind_state ox__unwind __attribute__((tls_model("initial-exec")));

void ox__unwind_grow(void);
OX_COLD bool ox__unwind_remove_slow(ox__unwind_state *s, const void *object);

/* The lock-order checker's switch and its acquisition hook (src/check/
 * lockdep.h documents them). Declared here because ox__held_push inlines
 * into programs: with the checker off, the hook costs one predictable branch
 * on a global that is never written after startup. */
extern atomic_bool ox__lockdep_on;
OX_COLD void ox__lockdep_acquired(const void *lock, const ox__lock_ops *ops, const char *file,
                                  int line);

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
    /* Relaxed: see ox__lockdep_on in src/check/lockdep.h. */
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

OX__API_END
#endif /* !__cplusplus */
#endif
