/* once.c - Once, OnceLock and LazyLock (see oxide/once.h).
 *
 * The state word of a Once (ox_once.state, 32 bits, a futex word):
 *
 *   INCOMPLETE --CAS--> RUNNING --CAS (a waiter arrives)--> QUEUED
 *   POISONED   --CAS--> RUNNING            (call_force only)
 *   RUNNING / QUEUED --swap--> COMPLETE    (the function returned)
 *   RUNNING / QUEUED --swap--> POISONED    (the function panicked)
 *
 * Exactly one thread moves the word out of INCOMPLETE or POISONED, and so
 * runs the function. Waiters move RUNNING to QUEUED before they sleep on the
 * word, so the runner knows whether the final swap must wake anyone: an
 * uncontended Once never makes a system call. COMPLETE is final.
 *
 * Panics: while the function runs, the runner has an entry in its unwind
 * record (ox__held_push) whose unwind hook swaps in POISONED and wakes the
 * waiters; the same entry lets a recursive call on the same Once from inside
 * the function be detected (it would wait for itself) and aborted.
 */
#include "oxide/once.h"

#include "oxide/panic.h"

#include "../panic/unwind.h"
#include "../thread/park.h"

#include <stddef.h>

static const ox__wait_site once_site = {.what = "once"};

/* Ends a run: publishes the final state and wakes the waiters if any. */
static void once_finish(ox_once *once, uint32_t final_state)
{
    /* Release: everything the function wrote happens-before any acquire
     * load that sees COMPLETE (the inline fast path, the waiters' reload
     * below). For POISONED it lets a later call_force see the partial
     * work of the panicked function. */
    uint32_t old = atomic_exchange_explicit(&once->state, final_state, memory_order_release);
    if (old == OX__ONCE_QUEUED)
        ox__park_wake_all(&once->state);
}

/* Called by a panic that unwinds through the running function: the entry is
 * already popped from the record. */
static void once_unwind(void *lock, unsigned tag)
{
    (void)tag;
    once_finish(lock, OX__ONCE_POISONED);
}

/* No poison function: the release itself poisons a Once (its initialiser
 * did not finish, whenever it started). */
static const ox__lock_ops once_ops = {.kind = "once", .release = once_unwind};

/* The out-of-line form of the inline fast path (for C++, function pointers). */
bool(ox_once_is_completed)(const ox_once *once)
{
    return ox__once_is_completed_inline(once);
}

/* What to run: exactly one of fn / force_fn is set. */
typedef struct once_job {
    void (*fn)(void *);
    void (*force_fn)(void *, const ox_once_state *);
    void *arg;
    const char *poison_message; /* what a non-force caller panics with */
} once_job;

OX_COLD static _Noreturn void once_recursion(const ox_once *once, const ox__unwind_entry *held,
                                             const char *file, int line)
{
    ox_abort("ox_once_call",
             "recursive call on Once %p at %s:%d from inside its own initialiser (started at "
             "%s:%d): it would wait for itself forever",
             (const void *)once, file ? file : "?", line, held->file ? held->file : "?",
             held->line);
}

static void once_run(ox_once *once, const once_job *job, const char *file, int line)
{
    if (job->fn == NULL && job->force_fn == NULL)
        ox_abort("ox_once_call", "NULL function for Once %p", (void *)once);
    /* Acquire: a COMPLETE seen here publishes the function's writes (pairs
     * with the release swap in once_finish). */
    uint32_t state = atomic_load_explicit(&once->state, memory_order_acquire);
    for (;;) {
        switch (state) {
        case OX__ONCE_COMPLETE:
            return;

        case OX__ONCE_POISONED:
            if (job->force_fn == NULL)
                ox__panic_at(file, line, 0, "%s", job->poison_message);
            /* call_force takes over a poisoned Once: */
            /* fall through */
        case OX__ONCE_INCOMPLETE: {
            /* Acquire on success: a POISONED word was released by the
             * panicked run, whose partial writes call_force may inspect. */
            if (!atomic_compare_exchange_weak_explicit(&once->state, &state, OX__ONCE_RUNNING,
                                                       memory_order_acquire, memory_order_acquire))
                continue; /* state now holds the fresh value */
            ox__held_push(once, &once_ops, file, line);
            if (job->force_fn != NULL) {
                ox_once_state s = {.poisoned = state == OX__ONCE_POISONED};
                job->force_fn(job->arg, &s);
            } else {
                job->fn(job->arg);
            }
            if (!ox__held_remove(once))
                ox_abort("ox_once_call", "the unwind record lost Once %p while its function ran",
                         (void *)once);
            once_finish(once, OX__ONCE_COMPLETE);
            return;
        }

        case OX__ONCE_RUNNING:
        case OX__ONCE_QUEUED: {
            /* Waiting for our own run would never end: the record knows. */
            const ox__unwind_entry *held = ox__held_find(once);
            if (held != NULL)
                once_recursion(once, held, file, line);
            ox__lock_before_block(once, &once_ops, file, line);
            if (state == OX__ONCE_RUNNING &&
                !atomic_compare_exchange_weak_explicit(&once->state, &state, OX__ONCE_QUEUED,
                                                       memory_order_acquire, memory_order_acquire))
                continue; /* it changed (maybe to COMPLETE: acquire, as above) */
            /* Sleeps only while the word is still QUEUED: the runner's swap
             * either happens first (the wait returns at once) or sees
             * QUEUED and wakes us. */
            ox__park_wait(&once->state, OX__ONCE_QUEUED, OX_INSTANT_NEVER, &once_site, once);
            /* Acquire: pairs with once_finish's release swap. */
            state = atomic_load_explicit(&once->state, memory_order_acquire);
            break;
        }

        default:
            ox_abort("ox_once_call", "Once %p has a corrupt state word %u", (void *)once,
                     (unsigned)state);
        }
    }
}

void ox__once_call_slow(ox_once *once, void (*fn)(void *), void *arg, const char *file, int line)
{
    once_job job = {
        .fn = fn, .arg = arg, .poison_message = "Once instance has previously been poisoned"};
    once_run(once, &job, file, line);
}

void ox__once_call_force_slow(ox_once *once, void (*fn)(void *, const ox_once_state *), void *arg,
                              const char *file, int line)
{
    once_job job = {.force_fn = fn, .arg = arg};
    once_run(once, &job, file, line);
}

/* ---- OnceLock: a Once run with call_force, so a panicking initialiser
 * leaves the cell empty and the next caller retries (Rust's OnceLock). ---- */

typedef struct once_lock_set_ctx {
    ox_once_lock *lock;
    void *value;
    bool stored;
} once_lock_set_ctx;

static void once_lock_store(void *arg, const ox_once_state *state)
{
    (void)state;
    once_lock_set_ctx *ctx = arg;
    ctx->lock->value = ctx->value; /* published by the Once's release */
    ctx->stored = true;
}

int ox_once_lock_set(ox_once_lock *lock, void *value)
{
    if (ox_once_is_completed(&lock->once))
        return OX_EALREADY;
    once_lock_set_ctx ctx = {.lock = lock, .value = value};
    ox__once_call_force_slow(&lock->once, once_lock_store, &ctx, __FILE__, __LINE__);
    return ctx.stored ? 0 : OX_EALREADY;
}

typedef struct once_lock_init_ctx {
    ox_once_lock *lock;
    void *(*init)(void *);
    void *arg;
} once_lock_init_ctx;

static void once_lock_run_init(void *arg, const ox_once_state *state)
{
    (void)state; /* a previous init panicked: nothing was stored, retry */
    once_lock_init_ctx *ctx = arg;
    ctx->lock->value = ctx->init(ctx->arg);
}

void *ox__once_lock_init_slow(ox_once_lock *lock, void *(*init)(void *), void *arg,
                              const char *file, int line)
{
    if (init == NULL)
        ox_abort("ox_once_lock_get_or_init", "NULL init function for OnceLock %p", (void *)lock);
    once_lock_init_ctx ctx = {.lock = lock, .init = init, .arg = arg};
    ox__once_call_force_slow(&lock->once, once_lock_run_init, &ctx, file, line);
    return lock->value; /* COMPLETE, seen with acquire by once_run */
}

void *ox_once_lock_take(ox_once_lock *lock)
{
    /* The caller guarantees exclusive access (Rust's &mut self), so plain
     * relaxed accesses suffice; the caller's own synchronisation orders
     * this against earlier and later users. */
    uint32_t state = atomic_load_explicit(&lock->once.state, memory_order_relaxed);
    if (state == OX__ONCE_RUNNING || state == OX__ONCE_QUEUED)
        ox_abort("ox_once_lock_take", "OnceLock %p is being initialised by another thread",
                 (void *)lock);
    void *value = state == OX__ONCE_COMPLETE ? lock->value : NULL;
    lock->value = NULL;
    atomic_store_explicit(&lock->once.state, OX__ONCE_INCOMPLETE, memory_order_relaxed);
    return value;
}

/* ---- LazyLock: a Once run with call, so a panicking initialiser poisons
 * it (Rust's LazyLock). ---- */

static void lazy_lock_run_init(void *arg)
{
    ox_lazy_lock *lazy = arg;
    lazy->value = lazy->init(lazy->arg); /* published by the Once's release */
}

void *ox__lazy_lock_init_slow(ox_lazy_lock *lazy, const char *file, int line)
{
    if (lazy->init == NULL)
        ox_abort("ox_lazy_lock_get", "LazyLock %p has no init function (use OX_LAZY_LOCK_INIT)",
                 (void *)lazy);
    once_job job = {.fn = lazy_lock_run_init,
                    .arg = lazy,
                    .poison_message = "LazyLock instance has previously been poisoned"};
    once_run(&lazy->once, &job, file, line);
    return lazy->value;
}
