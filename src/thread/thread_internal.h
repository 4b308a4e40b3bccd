/* thread_internal.h - the thread record shared by thread.c, scope.c, tls.c
 * and the panic machinery. */
#ifndef OX_THREAD_INTERNAL_H
#define OX_THREAD_INTERNAL_H

#include "oxide/thread.h"

#include "../sys/sys.h"
#include "park.h"

#include <stdatomic.h>

/* One per thread, shared by the thread itself, its join handle (or scope)
 * and any ox_thread_clone() owners; freed when the last reference goes. */
struct ox_thread {
    _Atomic uint32_t refs;
    ox__parker parker;
    uint64_t id;
    char *name; /* NULL, "main", or points into name_storage */

    /* Filled by the thread before it ends; read by the joiner after the OS
     * join, which orders the two. */
    int outcome; /* 0 or OX_EPANICKED */
    void *result;
    ox_panic_payload *panic;
    _Atomic uint32_t finished; /* 1 once the function has returned: is_finished */

    ox__sys_thread os;
    void *(*fn)(void *);
    void *arg;

    /* Scoped threads only. */
    struct ox_thread *scope_next;
    _Atomic uint32_t join_claimed; /* 1 once someone has joined or is joining */

    char name_storage[];
};

/* Starts a thread as described by builder. Returns 0 and the new record
 * with two references (the thread's and the caller's), or an error code. */
int ox__thread_start(const ox_thread_builder *builder, void *(*fn)(void *), void *arg,
                     ox_thread **out);

/* Panics as Rust's spawn does when the OS refuses a thread (rc: its errno). */
_Noreturn void ox__thread_spawn_failed(int rc);

/* Waits for t's OS thread and collects its outcome: as ox_thread_join. */
int ox__thread_collect(ox_thread *t, void **result, ox_panic_payload **payload);

/* The calling thread's name without creating its record: NULL if unnamed
 * (never NULL in the main thread, which is "main"). */
const char *ox__thread_current_name(void);
const char *ox__thread_current_name_or_unnamed(void);

/* True once the process has begun exit() and oxide's exit handler ran. */
bool ox__thread_is_exiting(void);

/* Makes sure the calling thread's per-thread state is released when it
 * exits, also if oxide did not start it. Cheap after the first call. */
void ox__thread_exit_arm(void);

/* tls.c: destroys the calling thread's thread-locals, newest first. */
void ox__tls_run_destructors(void);

#endif
