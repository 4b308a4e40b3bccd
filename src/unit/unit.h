/* unit.h - the current unit of execution: a thread, or the task that a
 * worker thread is running. Who it is (task or thread, id, name) and
 * which task runs, for every layer above: the parking layer, the panic
 * machinery, the thread layer, the checkers and the task runtime. It
 * calls nothing above sys/: the layers above publish into it (thread.c
 * its record's name, the runtime the task it switches to), so that they
 * can all ask it and call only downward (docs/layers.md).
 *
 * The held-lock and unwind record, which follows the unit too, is
 * declared in oxide/unwind_record.h (its fast paths inline into programs)
 * and defined in unit.c; the panic layer fills it, and a task's copy is
 * reachable from here (ox__unit_task.held) for the diagnostics.
 */
#ifndef OX_UNIT_H
#define OX_UNIT_H

#include "oxide/base.h"

#include <stdint.h>

struct ox__unwind_state;
struct ox__lock_ops;

/* What every layer below the runtime knows of a task. The runtime fills
 * it at spawn, before the task first runs; it is the first member of the
 * task's lot waiter (park.h), so a unit's task is its waiter. */
typedef struct ox__unit_task {
    const char *name; /* NULL: unnamed */
    uint64_t id;
    /* The task's held-lock record while it is not running (the runtime
     * saves it at every switch). */
    const struct ox__unwind_state *held;
} ox__unit_task;

/* The task the calling worker thread runs right now; NULL in a plain
 * thread (and in a worker's scheduler). Written by the runtime around
 * each task it runs. Read it only through ox__unit_task_get(). */
extern _Thread_local ox__unit_task *ox__unit_task_running;

/* ox__unit_task_running, read afresh. A task that blocks may resume on
 * another worker thread, and a compiler may compute a thread-local's
 * address once per function (aarch64 reads the thread pointer with mrs
 * and keeps it) and reuse it after the call in which the task moved: it
 * would read the old worker's value. An out-of-line call that is never
 * merged with another computes the address in the thread that runs it.
 * (The hot held-lock record uses a volatile asm instead:
 * ox__unwind_current.) */
ox__unit_task *ox__unit_task_get(void) __attribute__((noinline));

/* ---- the calling thread ----
 * Thread ids are unique and never reused; the main thread's is 1, as in
 * Rust, the others count from 2. */
#define OX__MAIN_THREAD_ID 1

/* A fresh id for a thread being created. */
uint64_t ox__unit_new_thread_id(void);

/* The calling thread's id: the one published by the thread layer, else
 * (a thread oxide did not start, before it has a record) one given now
 * and kept, so that the record made later has the same id. 1 in the main
 * thread. */
uint64_t ox__unit_thread_id(void);

/* The thread layer publishes the calling thread's identity when it sets
 * its current record (name: the record's, NULL if unnamed; it must stay
 * valid until unpublished) and withdraws it (name NULL, id 0) before the
 * record goes. */
void ox__unit_thread_publish(const char *name, uint64_t id);

/* The calling thread's name: the published one, "main" in the main thread
 * before it has a record, else NULL. */
const char *ox__unit_thread_name(void);
/* The same, "<unnamed>" instead of NULL. */
const char *ox__unit_thread_name_or_unnamed(void);

/* ---- the calling unit, thread or task ---- */
typedef struct ox__unit_who {
    bool task; /* a task: id and name are the task's */
    uint64_t id;
    const char *name; /* never NULL: "<unnamed>" */
} ox__unit_who;

/* Who is running: the task, if a task runs (its name and id are what the
 * user knows; the worker thread is an implementation detail), else the
 * thread. For messages: "%s '%s' (id %llu)", who.task ? "task" :
 * "thread", who.name, who.id. */
ox__unit_who ox__unit_current(void);

/* ---- hooks: what this layer's callers need from the layers above ----
 * A lower layer reaches a higher one only through a function the higher
 * one registered, never by name (docs/layers.md). */

/* The lock-order checker (src/check/lockdep.c) registers its two entry
 * points at startup. The held-lock record's paths call them through the
 * trampolines below, and only while ox__lockdep_on (unwind_record.h: the
 * switch is the checker's own, and that reference is what links the
 * checker, and its OX_LOCKDEP constructor, into a static program). */
typedef struct ox__lock_checker {
    /* The calling unit has just acquired lock (on top of its record). */
    void (*acquired)(const void *lock, const struct ox__lock_ops *ops, const char *file, int line);
    /* The calling unit is about to block waiting for lock. */
    void (*before_block)(const void *lock, const struct ox__lock_ops *ops, const char *file,
                         int line);
} ox__lock_checker;

void ox__unit_lock_checker_set(const ox__lock_checker *checker);
/* Calls the registered checker's before_block, if one is registered (the
 * acquisition's trampoline is ox__lockdep_acquired, named in
 * unwind_record.h because programs inline its call). */
void ox__unit_lock_before_block(const void *lock, const struct ox__lock_ops *ops, const char *file,
                                int line);

/* The end of a thread. What a thread holds belongs to five layers and is
 * released in this order: its thread-locals (whose destructors may still
 * block, take locks and ask the thread's name), its entry in the blocked
 * registry, its held-lock record, its line of rwlock reader slots, and its
 * thread record. Each layer
 * registers how it releases its part at startup (a constructor); this
 * layer makes sure the parts are released when a thread ends: oxide's own
 * threads release them before their start routine returns, and a thread
 * oxide did not start (or the main thread) once it has something to
 * release (ox__unit_exit_arm), from a pthread key (or atexit). check_locks
 * is false when the process is exiting, where holding a lock is legal. */
typedef enum ox__unit_exit_part {
    OX__UNIT_EXIT_TLS,
    OX__UNIT_EXIT_PARK,
    OX__UNIT_EXIT_RECORD,
    OX__UNIT_EXIT_READ_SLOTS,
    OX__UNIT_EXIT_THREAD,
    OX__UNIT_EXIT_PARTS
} ox__unit_exit_part;

typedef void ox__unit_exit_fn(bool check_locks);

void ox__unit_exit_register(ox__unit_exit_part part, ox__unit_exit_fn *release);

/* The calling thread now holds something to release at its end. Cheap
 * after the thread's first call. */
void ox__unit_exit_arm(void);

/* The calling thread is oxide's: its start routine calls
 * ox__unit_exit_now itself, and arming is a no-op until then. */
void ox__unit_exit_own(void);

/* Releases every part now, in order. From the start of the call the
 * thread counts as one oxide did not start: a part given to it while its
 * parts are released (by a detached thread's panic payload, whose drop
 * runs when the thread record goes) or later (by another library's key
 * destructor that touches a thread-local) arms the key anew. */
void ox__unit_exit_now(bool check_locks);

/* True once the process has begun exit() and the main thread's parts were
 * released: a panic in a later exit handler aborts instead of exiting
 * twice. */
bool ox__unit_process_exiting(void);

#endif
