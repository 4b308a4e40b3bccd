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
 * A mutex, or an rwlock held for writing, that the hook or a cleanup
 * unlocks by hand is poisoned if it was taken before the panic (inside the
 * region or not), as Rust poisons a guard dropped while panicking; one
 * taken during the panic, by the hook or a cleanup, is not, whether it is
 * unlocked by hand or left for the unwind to release (Rust: a guard made
 * while panicking does not poison).
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
 * ox_catch_unwind, ...) and freed with ox_panic_payload_free(). A panic
 * carries either a message (ox_panic) or a typed value (ox_panic_any), as
 * Rust's Box<dyn Any + Send> holds a String or any other type. */
typedef struct ox_panic_payload {
    char *message;     /* the formatted message; NULL for a typed payload */
    const char *file;  /* where the panic was raised (static string) */
    int line;          /* ... the line */
    int column;        /* ... and the column; 0 where the compiler gives none */
    char *thread_name; /* the panicking thread's name, or NULL if unnamed */
    long os_tid;       /* the panicking thread's OS id (gettid), as Rust prints */
    const char *type;  /* typed payload (ox_panic_any): the type name as written; else NULL */
    void *value;       /* typed payload: the value, owned by the payload; else NULL */
    void (*drop)(void *value); /* typed payload: frees value, once (ox_panic_payload_free) */
} ox_panic_payload;

/* Frees a payload, running a typed payload's drop on its value exactly once;
 * NULL is ignored. */
void ox_panic_payload_free(ox_panic_payload *payload);

/* Where the compiler offers a column: __builtin_COLUMN() (clang; g++ in
 * C++). gcc (12) has none in C: the column is then 0 and the hook prints
 * file:line: only. */
#if defined(__has_builtin)
#if __has_builtin(__builtin_COLUMN)
#define OX__PANIC_HAVE_COLUMN 1
#endif
#endif

#ifdef OX__PANIC_HAVE_COLUMN
/* The same two macros as below, with the column. __builtin_COLUMN() is
 * expanded from an object-like macro so that it names the first character
 * of the ox_panic token, as Rust's column names the start of panic! (inside a
 * function-like macro it names the closing parenthesis); a second,
 * function-like macro then takes the arguments and closes the call. */
#define ox_panic     ox__panic_at(__FILE__, __LINE__, __builtin_COLUMN(), OX__PANIC_ARGS
#define ox_panic_any ox__panic_any_at(__FILE__, __LINE__, __builtin_COLUMN(), OX__PANIC_ANY_ARGS
#define OX__PANIC_ARGS(...) __VA_ARGS__)
#define OX__PANIC_ANY_ARGS(type_name, value, drop) #type_name, (value), (drop))
#else
/* Panics with a printf-style message, recording the caller's file, line and
 * column (Rust's panic!). */
#define ox_panic(...) ox__panic_at(__FILE__, __LINE__, 0, __VA_ARGS__)

/* Panics with a typed value instead of a message (Rust's panic_any):
 *     ox_panic_any(struct parse_error, e, free);
 * The payload's type tag is the type name as written ("struct parse_error"),
 * value is owned by the panic from now on, and drop (NULL: nothing to free)
 * frees it exactly once, when the payload is freed. The default hook prints
 * "Box<dyn Any>" for the message, as Rust does. */
#define ox_panic_any(type_name, value, drop)                                                       \
    ox__panic_any_at(__FILE__, __LINE__, 0, #type_name, (value), (drop))
#endif

OX__NORETURN void ox__panic_at(const char *file, int line, int column, const char *fmt, ...)
    OX_PRINTF(4, 5);
OX__NORETURN void ox__panic_any_at(const char *file, int line, int column, const char *type,
                                   void *value, void (*drop)(void *));

/* Rust's downcast_ref: the payload's value as a T * if it is a typed payload
 * whose tag is T's name as written, else NULL (also for a message payload:
 * test payload->message for that).
 *     struct parse_error *e = ox_panic_downcast_ref(p, struct parse_error);
 * Tags are compared as strings: spell the type the same way on both sides. */
#define ox_panic_downcast_ref(payload, type_name)                                                  \
    ((type_name *)ox_panic_payload_downcast((payload), #type_name))

/* The value of a typed payload whose tag equals type (strcmp), else NULL.
 * Borrowed from the payload. */
void *ox_panic_payload_downcast(const ox_panic_payload *payload, const char *type);

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
 * prints what Rust 1.95 prints, in one write to stderr:
 *     (empty line)
 *     thread '<name>' (<os tid>) panicked at <file>:<line>:<column>:
 *     <message>                       ("Box<dyn Any>" for a typed payload)
 * then, after the first panic of the process only,
 *     note: run with `OX_BACKTRACE=1` environment variable to display a backtrace
 * With OX_BACKTRACE=1 (any value but 0 and full) every panic ends instead with
 * "stack backtrace:" and the frames from the panic down to main or the
 * thread's entry; OX_BACKTRACE=full prints every frame with its address. See
 * docs/panics.md.
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
