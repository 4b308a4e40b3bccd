/* oxide/thread.h - spawning and joining threads, the builder, the current
 * thread, parking, sleeping, scoped threads.
 *
 * Ownership: an ox_join_handle owns the right to join its thread; joining or
 * dropping it gives that right up (a dropped handle detaches the thread, as in
 * Rust). An ox_thread * names a thread; ox_thread_current() and
 * ox_join_handle_thread() return borrowed pointers, ox_thread_clone() an
 * owned one that ox_thread_drop() releases.
 */
#ifndef OXIDE_THREAD_H
#define OXIDE_THREAD_H

#include "base.h"
#include "panic.h"

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* Longest thread name oxide keeps (bytes, without the NUL). The OS copy,
 * shown by top -H and gdb, is cut to 15 bytes; oxide keeps it whole. */
#define OX_THREAD_NAME_MAX 1024

/* A thread (opaque): ox_thread_current(), ox_join_handle_thread(). */
typedef struct ox_thread ox_thread;

/* The right to join one thread. Zero (OX_JOIN_HANDLE_NONE) once joined or
 * dropped, so a second join is caught. Do not copy a live handle: joining or
 * dropping a copy of a handle already joined or dropped aborts, saying
 * "joined twice". */
typedef struct ox_join_handle {
    ox_thread *thread;   /* private: use ox_join_handle_thread() */
    uint32_t generation; /* of the thread's record, to tell a stale copy */
} ox_join_handle;
#define OX_JOIN_HANDLE_NONE OX__ZEROED(ox_join_handle)

/* Starts fn(arg) on a new thread with the default stack size (the
 * platform's, or OX_MIN_STACK: see the builder). If the OS refuses the
 * thread, panics with "failed to spawn thread: <the OS's error>", as Rust's
 * thread::spawn (catchable with ox_catch_unwind); use
 * ox_thread_builder_spawn() to get an error code instead. A NULL fn is
 * misuse and aborts. */
ox_join_handle ox_thread_spawn(void *(*fn)(void *), void *arg);

/* Blocks until the thread ends. Returns 0 and its return value in *result
 * (if result is not NULL); or OX_EPANICKED, handing the panic payload to
 * *payload (freed here if payload is NULL); or OX_EDEADLK if the calling
 * thread is the one the handle names (the handle stays valid). The handle is
 * consumed on 0 and OX_EPANICKED. Joining a consumed handle aborts. */
OX_MUST_USE int ox_thread_join(ox_join_handle *handle, void **result, ox_panic_payload **payload);

/* Gives up the handle; the thread runs on detached. Aborts on a consumed
 * handle. */
void ox_join_handle_drop(ox_join_handle *handle);

/* True once the thread's function has returned or panicked, as Rust's
 * JoinHandle::is_finished: its thread-local destructors may still be
 * running, so a join may still block a moment. Does not block. */
bool ox_join_handle_is_finished(const ox_join_handle *handle);

/* The thread the handle names, borrowed for as long as the handle lives. */
ox_thread *ox_join_handle_thread(const ox_join_handle *handle);

/* ---- builder ---- */

/* Rust's thread::Builder: a name and a stack size for the next spawn. Set
 * it up with the functions below, from OX_THREAD_BUILDER_INIT. */
typedef struct ox_thread_builder {
    const char *name;    /* borrowed; copied at spawn. NULL: unnamed */
    size_t stack_size;   /* used if has_stack_size */
    bool has_stack_size; /* set by ox_thread_builder_stack_size() */
} ox_thread_builder;
/* A builder with no name and the default stack size. */
#define OX_THREAD_BUILDER_INIT OX__ZEROED(ox_thread_builder)

/* Sets the name (borrowed until spawn). */
void ox_thread_builder_name(ox_thread_builder *builder, const char *name);
/* Sets the stack size in bytes, as Rust's Builder::stack_size: raised to the
 * platform minimum (so 0 asks for the smallest stack), and tried as given
 * before being rounded up to whole pages only if the C library refuses it.
 * An absurd size fails at spawn with the OS's own errno (EAGAIN).
 * Without it, a spawned thread gets the platform's default stack, or
 * OX_MIN_STACK bytes if that environment variable holds a decimal number
 * other than 0 (read once, at the first spawn; Rust's RUST_MIN_STACK). */
void ox_thread_builder_stack_size(ox_thread_builder *builder, size_t bytes);

/* Spawns as ox_thread_spawn does, but returns failure instead of panicking:
 * OX_EINVAL (NULL fn), OX_ENAMETOOLONG, or the OS's errno (EAGAIN, ENOMEM,
 * ... e.g. for an absurd stack size). *out is set only on success. */
OX_MUST_USE int ox_thread_builder_spawn(const ox_thread_builder *builder, void *(*fn)(void *),
                                        void *arg, ox_join_handle *out);

/* ---- the current thread ---- */

/* The calling thread, also when oxide did not start it. Borrowed: valid until
 * the calling thread exits (including inside its thread-local destructors). */
ox_thread *ox_thread_current(void);

/* Another owner for t; release with ox_thread_drop(). */
OX_MUST_USE ox_thread *ox_thread_clone(ox_thread *t);
void ox_thread_drop(ox_thread *t);

/* A unique id, never reused within the process. The main thread's is 1
 * from the start of the process (as in Rust), whichever thread asked first;
 * other threads count from 2. */
uint64_t ox_thread_id(const ox_thread *t);

/* The full name, "main" for the main thread, NULL for an unnamed thread.
 * Borrowed from t. */
const char *ox_thread_name(const ox_thread *t);

/* ---- parking (Rust's token semantics) ----
 * Each thread has one token, initially absent. unpark makes it present;
 * park consumes it, waiting until it is present. So an unpark before a park
 * makes that park return at once. park may also return spuriously. */
void ox_thread_park(void);
/* As park, but gives up after timeout. Returns 0 when the token was
 * consumed, OX_ETIMEDOUT otherwise, OX_EINVAL for a negative timeout. */
int ox_thread_park_timeout(ox_nanos timeout);
/* Makes t's token present and wakes t if it is parked. Fine on a thread that
 * has finished. */
void ox_thread_unpark(ox_thread *t);

/* ---- time and scheduling ---- */
void ox_thread_sleep(ox_nanos duration);         /* negative: returns at once */
void ox_thread_sleep_until(ox_instant deadline); /* a past deadline: returns at once */
void ox_thread_yield(void);                      /* lets another thread run (sched_yield) */

/* How many threads can usefully run in parallel: the CPUs in this thread's
 * affinity mask, lowered by a cgroup CPU quota if one is set. At least 1. */
size_t ox_available_parallelism(void);

/* ---- scoped threads ----
 * ox_thread_scope(body, arg) runs body(scope, arg); threads spawned with
 * ox_scope_spawn() may borrow anything that outlives the ox_thread_scope() call.
 * Every such thread is joined before ox_thread_scope() returns, also when body
 * panics. Then: if body panicked, its panic continues; else if a thread that
 * was not joined by hand panicked, ox_thread_scope panics with
 * "a scoped thread panicked". Scoped handles are valid until ox_thread_scope()
 * returns. */
typedef struct ox_scope ox_scope;
/* The right to join one scoped thread (ox_scoped_join), until the scope
 * ends. */
typedef struct ox_scoped_handle {
    ox_thread *thread;   /* private */
    uint32_t generation; /* of the thread's record, to tell a stale handle */
} ox_scoped_handle;

/* Runs body(scope, arg) as described above; returns when body and every
 * thread spawned in the scope have finished. */
void ox_thread_scope(void (*body)(ox_scope *scope, void *arg), void *arg);

/* Spawns fn(arg) in the scope; panics like ox_thread_spawn if the OS refuses
 * the thread. May be called from any thread of the scope. */
ox_scoped_handle ox_scope_spawn(ox_scope *scope, void *(*fn)(void *), void *arg);
OX_MUST_USE int ox_scope_builder_spawn(ox_scope *scope, const ox_thread_builder *builder,
                                       void *(*fn)(void *), void *arg, ox_scoped_handle *out);

/* As ox_join_handle_is_finished, for a scoped thread not yet joined. */
bool ox_scoped_handle_is_finished(const ox_scoped_handle *handle);

/* Joins a scoped thread early: as ox_thread_join. A panic collected here is
 * not reported again by the scope. Joining a copy of a handle already joined
 * aborts ("joined twice"), and so does using a handle after its scope has
 * returned ("used after its scope ended"). */
OX_MUST_USE int ox_scoped_join(ox_scoped_handle *handle, void **result, ox_panic_payload **payload);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
