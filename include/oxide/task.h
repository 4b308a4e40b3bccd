/* oxide/task.h - tasks: C functions in plain blocking style, run by a few
 * worker threads (Go's model, not async/await).
 *
 * A task blocks the way a thread does: on an oxide mutex, rwlock, condvar,
 * Once, Barrier, channel, select, on ox_task_join or ox_task_sleep. Where
 * a thread would sleep in the kernel, the task is suspended instead and its
 * worker runs other tasks; the same call from a thread blocks the thread.
 * Threads and tasks may share any primitive, in any mix.
 *
 * Do not make blocking system calls in a task (read on a socket, sleep(3),
 * a pthread mutex): they stop the whole worker.
 *
 * Ownership and panics follow threads (oxide/thread.h): an ox_task_handle
 * owns the right to join; dropping it detaches the task. A panic in a task
 * releases and poisons the locks it holds and is handed over by join.
 *
 * Cancellation (libdill's way): ox_task_abort() makes the task's next
 * cancellation point that would wait return OX_ECANCELED at once (or end
 * its wait early), and every one after it, until the task returns. A call
 * that can complete without waiting still completes. The cancellation
 * points: ox_task_sleep, ox_task_sleep_until, ox_task_join; channel
 * send and receive (blocking, _timeout, _deadline) and ox_select,
 * ox_select_timeout, ox_select_deadline; ox_condvar_wait and its timed
 * and _while forms (which return with the mutex re-taken, as on a
 * timeout). Calls that cannot return an error (a plain ox_mutex_lock,
 * ox_once_call, ox_barrier_wait) are not, and a task that never reaches a
 * cancellation point cannot be aborted: it runs until it returns.
 *
 * Stacks: each task has its own from its first run until it returns
 * (queued and finished tasks hold none), reserved at its full size and
 * committed page by page as it is touched. The first 16 384 live stacks have a guard
 * page, and an overflow is reported at the faulting access with the
 * task's name. Each guard costs two of the kernel's vm.max_map_count
 * mappings (65 530 by default), so further default-size stacks come from
 * slabs without guards, and their overflow is reported when the task next
 * switches, which may be after it has overwritten memory below its stack.
 * OX_TASK_GUARDED_STACKS=N in the environment sets the 16 384. A task
 * whose stack cannot be mapped when it is to start never runs: its join
 * returns ENOMEM.
 *
 * Thread-locals (OX_THREAD_LOCAL, _Thread_local) in a task are those of
 * the worker running it at that moment, which can change at every blocking
 * call; a task's own state belongs in its argument.
 */
#ifndef OXIDE_TASK_H
#define OXIDE_TASK_H

#include "base.h"
#include "panic.h"

#ifdef __cplusplus
extern "C" {
#endif

OX__API_BEGIN

/* A task: its record is shared by the task, its handle and the runtime.
 * Names one task; see ox_task_current(). */
typedef struct ox_task ox_task;
/* A set of worker threads that run tasks (ox_runtime_new). */
typedef struct ox_runtime ox_runtime;

/* The right to join one task. Zero (OX_TASK_HANDLE_NONE) once joined or
 * dropped, so a second join is caught. Do not copy a live handle. */
typedef struct ox_task_handle {
    ox_task *task; /* the task, or NULL once joined or dropped */
} ox_task_handle;
#define OX_TASK_HANDLE_NONE ((ox_task_handle){0})

/* ---- runtimes ---- */

/* How ox_runtime_new starts a runtime. Start from OX_RUNTIME_BUILDER_INIT. */
typedef struct ox_runtime_builder {
    size_t workers;    /* 0: ox_available_parallelism() */
    size_t stack_size; /* each task's default stack; 0: OX_TASK_DEFAULT_STACK */
    const char *name;  /* borrowed; the workers are "<name>-<n>". NULL: "oxide-worker" */
} ox_runtime_builder;
/* A builder with every field at its default. */
#define OX_RUNTIME_BUILDER_INIT ((ox_runtime_builder){0})

/* Reserved (not committed) per task unless the builder says otherwise:
 * pages are committed as the task touches them. */
#define OX_TASK_DEFAULT_STACK ((size_t)256 * 1024)

/* Starts a runtime's workers. Returns 0, OX_EINVAL, OX_ENAMETOOLONG or
 * the OS's errno. */
OX_MUST_USE int ox_runtime_new(const ox_runtime_builder *builder, ox_runtime **out);

/* Aborts every task of the runtime that has not finished (and every task
 * spawned on it from then on: it never runs, its join returns
 * OX_ECANCELED), waits until all have returned, stops the workers and frees the runtime. Handles
 * still held stay joinable. Call from a thread, not from one of its tasks. */
void ox_runtime_shutdown(ox_runtime *rt);

/* The runtime ox_task_spawn uses outside a task: started on first use with
 * ox_available_parallelism() workers, never shut down. */
ox_runtime *ox_runtime_default(void);

/* ---- spawning and joining ---- */

/* Starts fn(arg) as a task: on the current task's runtime inside a task,
 * else on the default runtime. Aborts on failure (NULL fn, no memory for
 * its record; a stack that cannot be mapped when it starts shows at its
 * join, see the top of this file). */
ox_task_handle ox_task_spawn(void *(*fn)(void *), void *arg);

/* How a task is spawned. Start from OX_TASK_BUILDER_INIT. */
typedef struct ox_task_builder {
    const char *name;    /* borrowed; copied at spawn. NULL: unnamed */
    size_t stack_size;   /* 0: the runtime's default */
    ox_runtime *runtime; /* NULL: as ox_task_spawn */
} ox_task_builder;
/* A builder with every field at its default. */
#define OX_TASK_BUILDER_INIT ((ox_task_builder){0})

/* As ox_task_spawn, reporting failure: OX_EINVAL (NULL fn), OX_ENAMETOOLONG
 * (a name longer than OX_THREAD_NAME_MAX), ENOMEM (no memory for the
 * task's record; its stack is mapped when it first runs, see the top of
 * this file). *out set on success. */
OX_MUST_USE int ox_task_builder_spawn(const ox_task_builder *builder, void *(*fn)(void *),
                                      void *arg, ox_task_handle *out);

/* Waits until the task has returned (suspending a task, blocking a
 * thread). Returns 0 and fn's result in *result (if not NULL); or
 * OX_EPANICKED, handing the payload to *payload (freed if NULL); or
 * OX_ECANCELED if the task was aborted before it ever ran; or ENOMEM if
 * no stack could be mapped for it, so it never ran. These consume
 * the handle. In a task that is itself aborted, returns OX_ECANCELED
 * without waiting and the handle stays valid. OX_EDEADLK: a task joining
 * itself. Joining a consumed handle aborts. */
OX_MUST_USE int ox_task_join(ox_task_handle *handle, void **result, ox_panic_payload **payload);

/* Gives up the handle; the task runs on, detached. */
void ox_task_handle_drop(ox_task_handle *handle);

/* True once the task has returned or panicked. Does not block. */
bool ox_task_is_finished(const ox_task_handle *handle);

/* Requests cancellation (see the top of this file). Any thread or task;
 * the handle stays valid. Aborting a finished task does nothing. */
void ox_task_abort(const ox_task_handle *handle);

/* Runs fn(arg) as a task on the default runtime and waits for it: the way
 * from a thread (main) into tasks. Returns as ox_task_join. */
OX_MUST_USE int ox_task_block_on(void *(*fn)(void *), void *arg, void **result,
                                 ox_panic_payload **payload);

/* ---- the current task ---- */

/* The task running this code, or NULL in a thread. Borrowed: valid until
 * the task returns. */
ox_task *ox_task_current(void);
/* A unique id, never reused; the first task is 1. */
uint64_t ox_task_id(const ox_task *task);
/* The name, or NULL for an unnamed task. Borrowed from the task. */
const char *ox_task_name(const ox_task *task);
/* True once the current task has been aborted; false in a thread. */
bool ox_task_is_cancelled(void);

/* Lets the other runnable tasks of this worker run first; in a thread,
 * ox_thread_yield(). */
void ox_task_yield(void);
/* Sleeps for duration (suspending a task; in a thread, as
 * ox_thread_sleep). Returns 0, or OX_ECANCELED at once or early when the
 * task is aborted. A negative duration returns at once. */
OX_MUST_USE int ox_task_sleep(ox_nanos duration);
OX_MUST_USE int ox_task_sleep_until(ox_instant deadline);

/* ---- the blocking pool ---- */

/* Runs fn(arg) on a pool thread, for C calls that block their thread
 * (file I/O, a database client, sleep(3)): a task must not make them
 * itself. Join the handle as a task's (from a task or a thread); abort
 * does nothing to it. Threads are started on demand (up to 512) and leave
 * after 10 s without work: up to 512 jobs run at once, so jobs that wait
 * for each other (a reader and its writer) do not wait forever. Returns 0, OX_EINVAL (NULL fn) or
 * ENOMEM. */
OX_MUST_USE int ox_task_spawn_blocking(void *(*fn)(void *), void *arg, ox_task_handle *out);

/* ---- JoinSet ---- */

/* A set of tasks joined in the order they finish (Tokio's JoinSet). Made
 * by ox_join_set_new, given up by ox_join_set_drop. */
typedef struct ox_join_set ox_join_set; /* opaque; owned by whoever made it */

/* A new, empty set. Returns 0 or ENOMEM. */
OX_MUST_USE int ox_join_set_new(ox_join_set **out);
/* Spawns fn(arg) into the set (as ox_task_spawn / ox_task_builder_spawn;
 * *id, if not NULL, gets the task's id). Returns as ox_task_builder_spawn. */
OX_MUST_USE int ox_join_set_spawn(ox_join_set *set, void *(*fn)(void *), void *arg);
OX_MUST_USE int ox_join_set_spawn_with(ox_join_set *set, const ox_task_builder *builder,
                                       void *(*fn)(void *), void *arg, uint64_t *id);
/* Waits for the next task of the set to finish and hands over its outcome
 * as ox_task_join does (0, OX_EPANICKED, OX_ECANCELED for a task
 * aborted before it ran, or ENOMEM for one that got no stack); *id (if not NULL) names it.
 * OX_EEMPTY: the set has no tasks left. A cancellation point: OX_ECANCELED in an aborted task. */
OX_MUST_USE int ox_join_set_join_next(ox_join_set *set, void **result, ox_panic_payload **payload,
                                      uint64_t *id);
/* As ox_join_set_join_next, giving up at deadline with OX_ETIMEDOUT (the
 * tasks still running stay in the set): Tokio's timeout(join_next()). */
OX_MUST_USE int ox_join_set_join_next_deadline(ox_join_set *set, void **result,
                                               ox_panic_payload **payload, uint64_t *id,
                                               ox_instant deadline);
/* Tasks spawned and not yet returned by join_next. */
size_t ox_join_set_len(ox_join_set *set);
/* Aborts every task of the set that is still running; join_next still
 * returns each of them. */
void ox_join_set_abort_all(ox_join_set *set);
/* Aborts what still runs and gives the set up: its tasks are detached. */
void ox_join_set_drop(ox_join_set *set);

/* ---- task scopes (thread::scope for tasks) ----
 * ox_task_scope_run(body, arg) runs body(scope, arg); tasks spawned into
 * the scope may borrow anything that outlives the call. All are joined
 * before it returns, also when body panics. Then: if body panicked, its
 * panic continues; else if a task that was not joined by hand panicked,
 * ox_task_scope_run panics with "a scoped task panicked", or if one got
 * no stack and so never ran, with "a scoped task got no stack and never
 * ran". Scoped handles
 * are valid until ox_task_scope_run returns (join them early with
 * ox_task_join, or leave them: nothing needs dropping). The wait at the
 * end is not a cancellation point: the borrows forbid leaving early. */

/* A task scope, alive for one ox_task_scope_run call. */
typedef struct ox_task_scope ox_task_scope;
/* Runs body(scope, arg) and joins every task spawned into the scope (see
 * above). Blocks (suspends a task). */
void ox_task_scope_run(void (*body)(ox_task_scope *scope, void *arg), void *arg);
/* Spawns fn(arg) into the scope; aborts like ox_task_spawn on failure. The
 * handle is valid until the scope ends. */
ox_task_handle ox_task_scope_spawn(ox_task_scope *scope, void *(*fn)(void *), void *arg);
/* As ox_task_scope_spawn, with a builder, reporting failure as
 * ox_task_builder_spawn does. */
OX_MUST_USE int ox_task_scope_builder_spawn(ox_task_scope *scope, const ox_task_builder *builder,
                                            void *(*fn)(void *), void *arg, ox_task_handle *out);

/* ---- task-locals (Tokio's task_local!) ----
 *   static void init_buf(struct buf *b) { ... }
 *   OX_TASK_LOCAL(request_buf, struct buf, init_buf, free_buf);
 *   struct buf *b = OX_TASK_LOCAL_GET(request_buf);
 * Each task has its own value: zeroed, then init (may be NULL) on the
 * task's first access; destroy (may be NULL) runs in the task after its
 * function returns or panics, newest first. If init panics, the next
 * access runs it again. Using one outside a task, or from its own
 * destructor, aborts with a message. */

/* private: what OX_TASK_LOCAL declares (not API) */
typedef struct ox__task_local_key {
    const char *name;
    size_t size;
    void (*init)(void *value);
    void (*destroy)(void *value);
} ox__task_local_key;
void *ox__task_local_get(const ox__task_local_key *key);

/* Declares the task-local `name` of type `type` (see above); init and
 * destroy take a `type *` and may be NULL. */
#define OX_TASK_LOCAL(name, type, init, destroy)                                                   \
    static void name##__ox_task_init(void *v)                                                      \
    {                                                                                              \
        void (*fn)(type *) = (init);                                                               \
        if (fn)                                                                                    \
            fn((type *)v);                                                                         \
    }                                                                                              \
    static void name##__ox_task_destroy(void *v)                                                   \
    {                                                                                              \
        void (*fn)(type *) = (destroy);                                                            \
        if (fn)                                                                                    \
            fn((type *)v);                                                                         \
    }                                                                                              \
    static const ox__task_local_key name##__ox_task_key = {                                        \
        #name, sizeof(type), name##__ox_task_init, name##__ox_task_destroy};                       \
    static inline type *name##__ox_task_get(void)                                                  \
    {                                                                                              \
        return (type *)ox__task_local_get(&name##__ox_task_key);                                   \
    }                                                                                              \
    static inline type *name##__ox_task_get(void)

/* The current task's instance of `name` (a `type *`). */
#define OX_TASK_LOCAL_GET(name) (name##__ox_task_get())

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
