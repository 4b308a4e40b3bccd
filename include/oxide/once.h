/* oxide/once.h - one-time initialisation: Once, OnceLock and LazyLock
 * (Rust's std::sync::Once, OnceLock and LazyLock).
 *
 * All three are valid when zero-initialised (LazyLock needs its init
 * function, so it has only a static initialiser) and need no constructor
 * and no destroy: a `static ox_once once;` at file scope is ready to use.
 *
 *   static ox_once once = OX_ONCE_INIT;
 *   ox_once_call(&once, init_tables, NULL);      // runs init_tables once
 *
 *   static ox_once_lock config = OX_ONCE_LOCK_INIT;
 *   cfg *c = ox_once_lock_get_or_init(&config, load_config, "app.conf");
 *
 *   static ox_lazy_lock table = OX_LAZY_LOCK_INIT(build_table, NULL);
 *   const int *t = ox_lazy_lock_get(&table);      // computed on first use
 *
 * Panics: if the function run by ox_once_call() panics, the Once is
 * poisoned (as in Rust): the threads waiting for it wake up and panic too,
 * and every later ox_once_call() panics; ox_once_call_force() runs anyway
 * and clears the poison when it succeeds. OnceLock is never poisoned (as in
 * Rust): when its initialiser panics the next caller simply tries again.
 * LazyLock is poisoned like Once.
 *
 * Calling ox_once_call() on a Once from inside its own initialiser (in the
 * same thread) would wait for itself forever: it aborts with a message
 * naming both call sites instead.
 */
#ifndef OXIDE_ONCE_H
#define OXIDE_ONCE_H

#include "base.h"

#include <stdint.h>
#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* ---- Once ---- */

/* The state word (private; see src/sync/once.c for the transitions). */
enum {
    OX__ONCE_INCOMPLETE = 0, /* nobody has run the function yet (zero-initialised) */
    OX__ONCE_POISONED = 1,   /* the function panicked; nobody runs it now */
    OX__ONCE_RUNNING = 2,    /* a thread runs the function, nobody waits */
    OX__ONCE_QUEUED = 3,     /* a thread runs the function, others wait on the word */
    OX__ONCE_COMPLETE = 4,   /* done: everything it wrote is published */
};

/* Rust's Once (see the top of this file); zero-initialised or OX_ONCE_INIT. */
typedef struct ox_once {
    OX__ATOMIC(uint32_t) state; /* OX__ONCE_*: private */
} ox_once;

/* Static initialiser; a zero-filled ox_once is equally valid. */
/* clang-format off */
#define OX_ONCE_INIT {0}
/* clang-format on */

/* What ox_once_call_force() tells its function. */
typedef struct ox_once_state {
    bool poisoned; /* read it with ox_once_state_is_poisoned() */
} ox_once_state;

/* True if the Once was poisoned when this call started (a previous
 * function panicked). */
static inline bool ox_once_state_is_poisoned(const ox_once_state *state)
{
    return state->poisoned;
}

/* Runs fn(arg) if no function has completed on once yet; exactly one caller
 * across all threads runs it. Blocks while another thread runs it; returns
 * once a function has completed, with everything it wrote visible
 * (acquire). Panics (ox_panic) if once is poisoned, or becomes poisoned
 * while this caller waits. once and arg are borrowed.
 * Aborts if called on once from inside its own function. */
#define ox_once_call(once, fn, arg) ox__once_call_at((once), (fn), (arg), __FILE__, __LINE__)

/* As ox_once_call(), but also runs when once is poisoned, telling fn whether
 * it was (ox_once_state_is_poisoned); when fn returns the Once is complete
 * and the poison is gone. If fn panics, once stays poisoned. */
#define ox_once_call_force(once, fn, arg)                                                          \
    ox__once_call_force_at((once), (fn), (arg), __FILE__, __LINE__)

/* True once a function has completed on once (acquire: what it wrote is
 * then visible). False while running and when poisoned. Never blocks.
 * A macro over an inline fast path in C; a real function too. */
bool(ox_once_is_completed)(const ox_once *once);
#ifndef __cplusplus
static inline bool ox__once_is_completed_inline(const ox_once *once)
{
    /* Acquire: pairs with the release store of COMPLETE in once.c, so a
     * caller that sees true also sees what the function wrote. */
    return atomic_load_explicit(&once->state, memory_order_acquire) == OX__ONCE_COMPLETE;
}
#define ox_once_is_completed(once) ox__once_is_completed_inline(once)
#endif

/* The out-of-line slow paths (once.c); use the macros above. */
OX_COLD void ox__once_call_slow(ox_once *once, void (*fn)(void *), void *arg, const char *file,
                                int line);
OX_COLD void ox__once_call_force_slow(ox_once *once, void (*fn)(void *, const ox_once_state *),
                                      void *arg, const char *file, int line);

static inline void ox__once_call_at(ox_once *once, void (*fn)(void *), void *arg, const char *file,
                                    int line)
{
    if (OX_LIKELY(ox_once_is_completed(once)))
        return;
    ox__once_call_slow(once, fn, arg, file, line);
}

static inline void ox__once_call_force_at(ox_once *once, void (*fn)(void *, const ox_once_state *),
                                          void *arg, const char *file, int line)
{
    if (OX_LIKELY(ox_once_is_completed(once)))
        return;
    ox__once_call_force_slow(once, fn, arg, file, line);
}

/* ---- OnceLock: a cell written at most once, holding a void * ---- */

/* Rust's OnceLock<*mut T>: zero-initialised or OX_ONCE_LOCK_INIT. */
typedef struct ox_once_lock {
    ox_once once; /* private */
    void *value;  /* private: written before once completes, read after */
} ox_once_lock;

/* Static initialiser; a zero-filled ox_once_lock is equally valid. */
/* clang-format off */
#define OX_ONCE_LOCK_INIT {OX_ONCE_INIT, NULL}
/* clang-format on */

/* The value, or NULL if none is set yet (or NULL was set: see
 * ox_once_lock_is_set). Never blocks. */
static inline void *ox_once_lock_get(const ox_once_lock *lock)
{
    return ox_once_is_completed(&lock->once) ? lock->value : NULL;
}

/* True once a value has been set. Never blocks. */
static inline bool ox_once_lock_is_set(const ox_once_lock *lock)
{
    return ox_once_is_completed(&lock->once);
}

/* Stores value if the cell is empty. Returns 0 when this call stored it;
 * OX_EALREADY when the cell already held a value (value is not stored and
 * stays the caller's). If another thread is initialising the cell, waits
 * for it first. value is taken on success (the cell does not free it). */
OX_MUST_USE int ox_once_lock_set(ox_once_lock *lock, void *value);

/* The value, computing it with init(arg) first if the cell is empty.
 * Exactly one caller runs init; concurrent callers block until it returns
 * and get its value. If init panics the cell stays empty (not poisoned)
 * and the panic continues in the caller; a later caller tries again.
 * Aborts if init calls get_or_init on the same cell. */
#define ox_once_lock_get_or_init(lock, init, arg)                                                  \
    ox__once_lock_get_or_init_at((lock), (init), (arg), __FILE__, __LINE__)

OX_COLD void *ox__once_lock_init_slow(ox_once_lock *lock, void *(*init)(void *), void *arg,
                                      const char *file, int line);

static inline void *ox__once_lock_get_or_init_at(ox_once_lock *lock, void *(*init)(void *),
                                                 void *arg, const char *file, int line)
{
    if (OX_LIKELY(ox_once_is_completed(&lock->once)))
        return lock->value;
    return ox__once_lock_init_slow(lock, init, arg, file, line);
}

/* Empties the cell and returns the value it held (NULL if none), as Rust's
 * OnceLock::take(&mut self): the caller must have exclusive access - no
 * other thread may use the cell during the call. The value is handed to the
 * caller. */
OX_MUST_USE void *ox_once_lock_take(ox_once_lock *lock);

/* ---- LazyLock: a value computed on first access ---- */

/* Rust's LazyLock: made with OX_LAZY_LOCK_INIT, which names the function. */
typedef struct ox_lazy_lock {
    ox_once once;          /* private */
    void *value;           /* private */
    void *(*init)(void *); /* private */
    void *arg;             /* private */
} ox_lazy_lock;

/* A lazy static: init(arg) runs on the first ox_lazy_lock_get(). */
/* clang-format off */
#define OX_LAZY_LOCK_INIT(init_fn, init_arg) {OX_ONCE_INIT, NULL, (init_fn), (init_arg)}
/* clang-format on */

/* The value, computing it on the first call (exactly once across threads;
 * concurrent first callers block until it is ready). If init panics the
 * LazyLock is poisoned, as Rust's: this call and every later one panic. */
#define ox_lazy_lock_get(lazy) ox__lazy_lock_get_at((lazy), __FILE__, __LINE__)

OX_COLD void *ox__lazy_lock_init_slow(ox_lazy_lock *lazy, const char *file, int line);

static inline void *ox__lazy_lock_get_at(ox_lazy_lock *lazy, const char *file, int line)
{
    if (OX_LIKELY(ox_once_is_completed(&lazy->once)))
        return lazy->value;
    return ox__lazy_lock_init_slow(lazy, file, line);
}

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
