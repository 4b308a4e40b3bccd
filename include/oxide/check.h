/* oxide/check.h - correctness tooling: the lock-order checker and the
 * blocked-thread diagnosis.
 *
 * ---- The lock-order checker ("lockdep") ----
 * In the spirit of the Linux kernel's lockdep. While it is on, every oxide
 * lock acquisition (mutex, rwlock read or write, the mutex a condvar waits
 * with) records an edge "class H before class L" for each lock H the thread
 * already holds. The first time an edge closes a cycle in that graph, the
 * checker prints the cycle to stderr: for every edge, the lock kinds and
 * names, where the held lock was acquired and where the next one was
 * acquired (file:line), and the thread that did it. This catches the
 * Thread A / Thread B deadlock of the guide even in a run where the timing
 * happened to avoid it; and when the threads really are about to deadlock,
 * the edge is recorded before the thread blocks, so the report comes out
 * before the hang.
 *
 * Switching it on:
 *   OX_LOCKDEP=1 | on | report   report the first cycle, then keep running
 *   OX_LOCKDEP=abort             report the first cycle, then abort()
 *   OX_LOCKDEP=0 | off | (unset) off
 * read once at startup (any other value is reported on stderr and leaves the
 * checker off), or ox_lockdep_enable() at run time. After its first report
 * the checker switches itself off (as the kernel's does): later reports
 * would mostly be echoes of the first.
 *
 * Cost: off, one predictable branch on a global flag per acquisition. On,
 * an acquisition with no other lock held costs a function call; a nested
 * one a lookup per held lock under the checker's private lock.
 *
 * Lock classes: a lock registered with OX_LOCK_CLASS_INIT(&m) belongs to
 * the class of that call site (a static at the site is the key), so a
 * million mutexes initialised by one line in a loop are one class and an
 * order between any two of them is an order between the classes. A lock
 * never registered is a class of its own, keyed by its address. Register
 * after ox_lockdep_enable() (or with OX_LOCKDEP set): while the checker is
 * off, registration does nothing and costs one branch. If a lock's memory is
 * freed and reused for another lock, retire it first: ox_mutex_destroy()
 * and ox_rwlock_destroy() do, or call ox_lock_class_forget() (as the
 * kernel's lockdep_free_key_range). Otherwise the new lock inherits the old
 * class and its history, and the checker keeps the old lock's node and
 * edges for good.
 *
 * Same-class nesting (two locks of one class held at once: elements of one
 * array, parent and child nodes) is not a cycle by itself: the checker
 * records the order of the two *instances* (by address) in a separate
 * instance graph and reports a cycle among instances of a class, e.g.
 * a[1] then a[2] in one place and a[2] then a[1] in another. Locking
 * instances of one class in a consistent order (by index, by address,
 * hand over hand) is never reported.
 *
 * Read locks are treated as write locks: with a writer-preferring rwlock a
 * reader queued behind a waiting writer deadlocks like a writer does.
 * Trylocks add no edge into the lock they try (they cannot block), but a
 * lock taken by a trylock is held like any other: edges go out of it.
 */
#ifndef OXIDE_CHECK_H
#define OXIDE_CHECK_H

#include "base.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* What the lock-order checker does (OX_LOCKDEP, ox_lockdep_enable). */
typedef enum ox_lockdep_mode {
    OX_LOCKDEP_OFF = 0,
    OX_LOCKDEP_REPORT = 1, /* print the first cycle to stderr, continue */
    OX_LOCKDEP_ABORT = 2,  /* print the first cycle to stderr, then abort() */
} ox_lockdep_mode;

/* Switches the checker on (or off with OX_LOCKDEP_OFF). The graph recorded
 * so far is kept. Returns 0, or OX_EINVAL for an unknown mode. */
int ox_lockdep_enable(ox_lockdep_mode mode);

/* The current mode (OX_LOCKDEP_OFF after the first report). */
ox_lockdep_mode ox_lockdep_mode_get(void);

/* How many cycles the checker has reported in this process (0 or 1). */
unsigned ox_lockdep_reports(void);

/* A lock class: a static at the initialisation site. Use the macro. */
typedef struct ox_lock_class {
    const char *name; /* the expression passed to OX_LOCK_CLASS_INIT */
    const char *file; /* where OX_LOCK_CLASS_INIT was */
    int line;         /* ... and the line */
} ox_lock_class;

/* Puts lock (borrowed: any oxide lock) into class cls (static storage).
 * A no-op while the checker is off. Does not block (beyond the checker's
 * private lock) and never fails: out of memory aborts. */
void ox_lock_class_register(const void *lock, const ox_lock_class *cls);

/* Retires lock (call before its memory is reused; ox_mutex_destroy and
 * ox_rwlock_destroy call it): forgets its class, so the next lock at that
 * address starts as a class of its own, and frees the checker's node for
 * the lock and every edge into or out of it, so the checker's memory
 * follows the locks alive. A registered class itself stays. No-op when
 * off. */
void ox_lock_class_forget(const void *lock);

/* Registers the lock pointed to by lockp in the class of this line. */
#define OX_LOCK_CLASS_INIT(lockp)                                                                  \
    do {                                                                                           \
        static const ox_lock_class ox__lock_class_site_ = {#lockp, __FILE__, __LINE__};            \
        ox_lock_class_register((lockp), &ox__lock_class_site_);                                    \
    } while (0)

/* ---- Blocked-thread diagnosis ----
 * Prints every thread that is blocked in oxide right now, then every task
 * (lines that start with "task" instead of "thread"): its name and id,
 * what it waits for (mutex, condvar, channel recv, park, ...) and the
 * object's address, where it was called from (the file:line of the lock
 * call or of the channel receive), for a receiver how many senders of its
 * channel are still alive (the usual cause of a hang: a sender nobody
 * dropped), and the oxide locks it holds with their acquisition sites,
 * newest first (the 16 newest; older ones are counted).
 *
 * Each thread's lines are one consistent snapshot: the dump copies a
 * thread's record while that thread is held inside its wait (for the few
 * loads the copy takes), so no entry is torn or half-updated. The dump as a
 * whole is not one instant: a thread may wake or block while others are
 * copied. Does not block on the threads it prints.
 *
 * Signal handlers: ox_dump_blocked_threads_fd() is async-signal-safe and
 * may be called from any handler. It formats into a stack buffer and
 * write(2)s. It never waits for a lock its own thread holds: if the
 * handler interrupted this thread inside the thread registry (its own
 * dump, or its thread start or exit bookkeeping), it writes a "skipped"
 * line and returns -1. If another thread holds the registry, it waits for
 * that thread's short critical section. ox_dump_blocked_threads() behaves
 * the same, but writes through stdio, which is not async-signal-safe:
 * call it from a handler only if nothing the handler can interrupt uses
 * out; when it skips, it writes nothing to out.
 *
 * The tasks are read from the parking lot's wait queues, each with its
 * queue locked (so a task's lines are one snapshot too); a queue that
 * stays busy for a moment (its holder may be the thread a handler
 * interrupted) is left out, and a line says how many were.
 *
 * Both return the number of blocked threads and tasks printed, or -1 if
 * skipped. */
int ox_dump_blocked_threads(FILE *out);
/* The same dump written to fd with write(2): async-signal-safe (above). */
int ox_dump_blocked_threads_fd(int fd);

/* Opts in to printing the same dump to stderr when the process receives
 * signo (e.g. SIGUSR1); 0 removes the handler again. Also switched on at
 * startup by the environment variable OX_DUMP_SIGNAL=USR1 (or a number).
 * The handler is ox_dump_blocked_threads_fd(STDERR_FILENO), saving errno.
 * Returns 0, or errno from sigaction. */
int ox_dump_on_signal(int signo);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
