/* oxide/panic.h - panics, catching them, the panic hook, unwind cleanups.
 *
 * ox_panic() ends the current unit of work: it calls the panic hook, then
 * unwinds (longjmp) to the nearest catch point - the entry of a thread
 * started by oxide, or ox_catch_unwind().
 *
 * What a panic cleans up, in reverse order of acquisition/registration:
 *   - every oxide lock taken inside the unwound region and still held is
 *     released; a mutex, or an rwlock held for writing, is poisoned (an
 *     rwlock held for reading is released without poisoning, as in Rust);
 *   - every cleanup registered with ox_cleanup_push() inside the region and
 *     not yet popped runs.
 * What a panic does NOT clean up: memory, file descriptors and anything else
 * the unwound frames own; __attribute__((cleanup)) handlers of the unwound
 * frames (longjmp skips them); locks that are not oxide's (pthread mutexes);
 * thread-locals (they are destroyed when the thread exits, panic or not).
 * Register an ox_cleanup_push() for anything that must not leak.
 *
 * A panic in the main thread with no catch point releases the above, then
 * ends the process with exit(101), as Rust does. A panic in a thread oxide did
 * not start, with no catch point, aborts (Rust aborts when a panic reaches a
 * foreign frame). A panic while a panic is being cleaned up aborts.
 */
#ifndef OXIDE_PANIC_H
#define OXIDE_PANIC_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* What a panic hands over: owned by whoever receives it (from ox_thread_join,
 * ox_catch_unwind, ...) and freed with ox_panic_payload_free(). */
typedef struct ox_panic_payload {
    char *message;     /* the formatted message */
    const char *file;  /* where ox_panic was called (static string) */
    int line;          /* ... and the line */
    char *thread_name; /* the panicking thread's name, or NULL if unnamed */
} ox_panic_payload;

/* Frees a payload; NULL is ignored. */
void ox_panic_payload_free(ox_panic_payload *payload);

/* Panics with a printf-style message, recording the caller's file and line. */
#define ox_panic(...) ox__panic_at(__FILE__, __LINE__, __VA_ARGS__)

OX__NORETURN void ox__panic_at(const char *file, int line, const char *fmt, ...) OX_PRINTF(3, 4);

/* Continues unwinding with a payload taken from a join or catch (taken: the
 * payload is owned by the panic from now on). The hook is not called again,
 * as with Rust's resume_unwind. */
OX__NORETURN void ox_panic_resume(ox_panic_payload *payload);

/* Runs fn(arg). Returns 0 and stores fn's result in *result (if result is not
 * NULL) when fn returns; returns OX_EPANICKED when fn panicked, handing the
 * payload to *payload (or freeing it if payload is NULL). Nests. */
OX_MUST_USE int ox_catch_unwind(void *(*fn)(void *), void *arg, void **result,
                                ox_panic_payload **payload);

/* The panic hook runs in the panicking thread before unwinding. The default
 * prints, like Rust:  thread '<name>' panicked at <file>:<line>:\n<message>
 * ox_panic_set_hook returns the previous hook; NULL restores the default. */
typedef void (*ox_panic_hook)(const ox_panic_payload *payload);
ox_panic_hook ox_panic_set_hook(ox_panic_hook hook);
void ox_panic_default_hook(const ox_panic_payload *payload);

/* True while the calling thread is running panic cleanups. */
bool ox_thread_panicking(void);

/* Registers fn(arg) to run if a panic unwinds past this point before the
 * matching ox_cleanup_pop(). Cleanups nest and run in reverse order,
 * interleaved with the release of oxide locks in exact reverse order of
 * acquisition. Does not allocate for the first few dozen entries. */
void ox_cleanup_push(void (*fn)(void *), void *arg);

/* Removes the most recently pushed cleanup of this thread, running it first
 * if run is true. Aborts if this thread has no cleanup pushed. */
void ox_cleanup_pop(bool run);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
