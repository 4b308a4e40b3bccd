/* unit.c - the current unit of execution (see unit.h). */
#include "unit.h"

#include "oxide/unwind_record.h"

#include "../sys/sys.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

/* The running unit's held-lock and unwind record (unit.h): here, below
 * the panic layer that fills it and the parking layer that reads it for
 * the blocked dump. */
ox__unwind_entry ox__unwind_bottom[1] = {{.object = ox__unwind_bottom}};
_Thread_local _Alignas(OX__UNWIND_ALIGN) ox__unwind_state ox__unwind OX__TLS_FAST = {
    .entries = ox__unwind_bottom + 1, .slots[0].object = ox__unwind_bottom};
_Static_assert(OX__UNWIND_ALIGN % sizeof(ox__unwind_entry) == 0 &&
                   offsetof(ox__unwind_state, slots) % sizeof(ox__unwind_entry) == 0,
               "no inline entry of the live record straddles a cache line (unwind_record.h)");

ox__unwind_state *ox__unwind_current_slow(void)
{
    ox__unwind_state *s = &ox__unwind;
    /* Not a pure function: two calls are never merged into one. And the
     * "+r" hides that it returns &ox__unwind, which a compiler that sees
     * this body (clang in this file, or with LTO) would otherwise compute
     * in the caller once, before a wait (lockdep.c: pair_cache_get). */
    __asm__ volatile("" : "+r"(s) : : "memory");
    return s;
}

_Thread_local ox__unit_task *ox__unit_task_running;

ox__unit_task *ox__unit_task_get(void)
{
    ox__unit_task *task = ox__unit_task_running;
    /* Not a pure function: two calls are never merged into one. */
    __asm__ volatile("" ::: "memory");
    return task;
}

/* Ids are only unique, never ordering anything: relaxed. */
static _Atomic uint64_t next_thread_id = OX__MAIN_THREAD_ID + 1;

/* The calling thread's identity; id 0: none given yet. */
static _Thread_local const char *thread_name;
static _Thread_local uint64_t thread_id;

uint64_t ox__unit_new_thread_id(void)
{
    return atomic_fetch_add_explicit(&next_thread_id, 1, memory_order_relaxed);
}

uint64_t ox__unit_thread_id(void)
{
    if (thread_id == 0)
        thread_id = ox__sys_is_main_thread() ? OX__MAIN_THREAD_ID : ox__unit_new_thread_id();
    return thread_id;
}

void ox__unit_thread_publish(const char *name, uint64_t id)
{
    thread_name = name;
    thread_id = id;
}

const char *ox__unit_thread_name(void)
{
    if (thread_name != NULL)
        return thread_name;
    /* The main thread's record is always named "main"; before it has
     * one, the name is that all the same. */
    return ox__sys_is_main_thread() ? "main" : NULL;
}

const char *ox__unit_thread_name_or_unnamed(void)
{
    const char *name = ox__unit_thread_name();
    return name ? name : "<unnamed>";
}

ox__unit_who ox__unit_current(void)
{
    const ox__unit_task *task = ox__unit_task_get();
    if (task != NULL)
        return (ox__unit_who){true, task->id, task->name ? task->name : "<unnamed>"};
    return (ox__unit_who){false, ox__unit_thread_id(), ox__unit_thread_name_or_unnamed()};
}

/* ---- the lock-order checker's hooks ---- */

/* Set once, at startup, by the checker's constructor (before any thread
 * oxide starts). Relaxed: the checker it points to is static const data;
 * a unit that read NULL only misses edges, which the checker tolerates. */
static _Atomic(const ox__lock_checker *) lock_checker;

void ox__unit_lock_checker_set(const ox__lock_checker *checker)
{
    atomic_store_explicit(&lock_checker, checker, memory_order_relaxed);
}

/* Exported: ox__held_push calls it, inlined into programs. */
void ox__lockdep_acquired(const void *lock, const ox__lock_ops *ops, const char *file, int line)
{
    const ox__lock_checker *c = atomic_load_explicit(&lock_checker, memory_order_relaxed);
    if (c != NULL)
        c->acquired(lock, ops, file, line);
}

void ox__unit_lock_before_block(const void *lock, const ox__lock_ops *ops, const char *file,
                                int line)
{
    const ox__lock_checker *c = atomic_load_explicit(&lock_checker, memory_order_relaxed);
    if (c != NULL)
        c->before_block(lock, ops, file, line);
}

/* ---- the end of a thread ---- */

/* How each part is released: registered by constructors, before main
 * and before any thread oxide starts; relaxed for that reason. */
static _Atomic(ox__unit_exit_fn *) exit_release[OX__UNIT_EXIT_PARTS];

/* 0: nothing to release yet; 1: armed (the key, or atexit in main);
 * 2: an oxide thread, whose start routine releases its parts itself. */
static _Thread_local unsigned char exit_armed;

static atomic_bool process_exiting;

void ox__unit_exit_register(ox__unit_exit_part part, ox__unit_exit_fn *release)
{
    atomic_store_explicit(&exit_release[part], release, memory_order_relaxed);
}

void ox__unit_exit_now(bool check_locks)
{
    /* Disarmed first: a part runs the user's code (a thread-local's
     * destructor; the last drop of the thread record frees a detached
     * thread's panic payload, whose drop may touch a thread-local or ask
     * for the current thread), and what that code gives the thread after
     * its own part was released must arm the key anew. A part given to
     * the thread before its release (a destructor that blocks) is
     * released in this same pass; the key's round then finds nothing. */
    exit_armed = 0;
    for (int part = 0; part < OX__UNIT_EXIT_PARTS; part++) {
        ox__unit_exit_fn *release = atomic_load_explicit(&exit_release[part], memory_order_relaxed);
        if (release != NULL)
            release(check_locks);
    }
}

/* From the pthread key's destructor. Another key's destructor may run
 * after it (glibc runs them in key order, in up to
 * PTHREAD_DESTRUCTOR_ITERATIONS rounds) and touch a thread-local or
 * ox_thread_current() again: disarmed, that use arms the key anew and the
 * next round releases it, as Rust's TLS does. */
static void foreign_thread_exit(void)
{
    ox__unit_exit_now(true);
}

static void process_exit(void)
{
    /* Runs in whichever thread called exit() (normally main, returning).
     * The other threads are still running: their state is left alone.
     * Relaxed: the flag orders nothing; it is read by a panic in a later
     * exit handler of this same thread. */
    atomic_store_explicit(&process_exiting, true, memory_order_relaxed);
    if (exit_armed != 0)
        ox__unit_exit_now(false); /* exiting while holding a lock is legal */
}

void ox__unit_exit_arm(void)
{
    if (OX_LIKELY(exit_armed != 0))
        return;
    exit_armed = 1;
    if (ox__sys_is_main_thread()) {
        static atomic_flag registered = ATOMIC_FLAG_INIT;
        if (!atomic_flag_test_and_set_explicit(&registered, memory_order_relaxed))
            atexit(process_exit);
    } else {
        ox__sys_thread_exit_arm(foreign_thread_exit);
    }
}

void ox__unit_exit_own(void)
{
    exit_armed = 2;
}

bool ox__unit_process_exiting(void)
{
    return atomic_load_explicit(&process_exiting, memory_order_relaxed);
}
