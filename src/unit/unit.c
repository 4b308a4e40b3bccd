/* unit.c - the current unit of execution (see unit.h). */
#include "unit.h"

#include "oxide/unwind_record.h"

#include "../sys/sys.h"

#include <stdatomic.h>

/* The running unit's held-lock and unwind record (unit.h): here, below
 * the panic layer that fills it and the parking layer that reads it for
 * the blocked dump. */
_Thread_local ox__unwind_state ox__unwind OX__TLS_FAST;

ox__unwind_state *ox__unwind_current_slow(void)
{
    ox__unwind_state *s = &ox__unwind;
    /* Not a pure function: two calls are never merged into one. */
    __asm__ volatile("" ::: "memory");
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
