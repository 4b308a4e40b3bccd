/* task_internal.h - the task record, the runtime and its workers, shared
 * by the files of src/task/. */
#ifndef OX_TASK_INTERNAL_H
#define OX_TASK_INTERNAL_H

#include "oxide/once.h"
#include "oxide/task.h"
#include "oxide/thread.h"

#include "../common/cache_line.h"
#include "../panic/unwind.h"
#include "../thread/park.h"
#include "../thread/spin.h"
#include "context.h"
#include "free_list.h"

#include <stdatomic.h>
#include <stdint.h>

/* A task's stack: this header sits at the top of its mapping, and the
 * stack grows down from just below it (stack.c).
 *
 *   base                 base+guard                     base+total
 *   | guard (PROT_NONE) | stack, growing down ...  | ox__stack |
 *
 * A task takes one when it first runs and gives it back when it returns,
 * so that spawned tasks still queued, and finished tasks not yet joined,
 * hold no stack: a spawn tree keeps far fewer stacks alive than tasks. */
typedef struct ox__stack {
    ox__chain_link link; /* first: in a free list (ox__stash, ox__chains) */
    void *base;
    size_t total;
    size_t guard_size; /* 0: in a slab, unguarded */
} ox__stack;

/* Held locks and cleanups a task keeps in its record before they move to
 * the heap (record.c). */
#define OX__TASK_UNWIND_INLINE 4

/* One per task, its own allocation (record.c). Shared by the task, its
 * handle and the runtime; freed when the last reference goes. */
struct ox_task {
    ox__lot_waiter waiter; /* first: the lot hands it back to resume() */
    _Atomic uint32_t refs;
    _Atomic uint32_t finished;   /* OX__TASK_RUNNING...: join waits on it (task.c) */
    _Atomic uint32_t sleep_word; /* never changes: a sleep waits on it until its deadline */
    ox_runtime *rt;
    void *(*fn)(void *);
    void *arg;
    void *result;
    /* Taken by exchange: a scope's end and a hand join may race for it. */
    _Atomic(ox_panic_payload *) panic;
    int outcome; /* 0, OX_EPANICKED, OX_ECANCELED or ENOMEM */
    /* An ENOMEM outcome was handed over: a scope's end and a hand join may
     * race for it, as for the panic (ox__task_collect). */
    atomic_bool no_stack_taken;
    struct ox_join_set *set; /* the JoinSet (or scope) it was spawned into, or NULL */
    ox_task *set_prev, *set_next;
    struct ox__task_local *locals; /* task-locals touched, newest first (local.c) */
    bool scoped;                   /* its handle borrows its scope's reference */
    uint64_t id;
    char *name;    /* NULL or its own allocation */
    ox_task *next; /* in a run queue list (injector) */
    /* The timer of the current timed wait (timer.c). */
    int64_t timer_deadline;
    size_t timer_slot; /* index in the heap + 1; 0: not armed */
    size_t stack_size;
    /* What every switch reads and writes, together and beside the unwind
     * record's header (two cache lines, see record.c's check): with
     * thousands of runnable tasks, each line a switch touches is a cache
     * miss. The unwind record ends the task, and a record is allocated
     * only as far as its first OX__TASK_UNWIND_INLINE inline entries,
     * which are not cleared for reuse (record.c). */
    ox__ctx ctx;
    struct ox__worker *worker; /* the worker running it, while it runs */
    ox__stack *stack;          /* from its first run until it returns, else NULL */
    uintptr_t stack_floor;     /* ox__stack_floor(stack), while it has one */
    void *san_fiber;           /* ThreadSanitizer's fiber (sanitizer.h) */
    void *san_fake_stack;      /* AddressSanitizer's, while switched out */
    ox__unwind_state unwind;   /* held locks and catch frames, while not running */
};

static inline ox_task *ox__task_of(ox__lot_waiter *w)
{
    return (ox_task *)w->unit;
}

/* ---- run queues (queue.c) ---- */
#define OX__LOCAL_QUEUE 256 /* a power of two */

/* A worker's own queue: the owner pushes at tail and pops at head; other
 * workers steal from head. One atomic head serves both, so every take is a
 * CAS and a stealer that read stale slots fails its CAS. */
typedef struct ox__local_queue {
    _Alignas(OX__CACHE_LINE) _Atomic uint32_t head;
    _Alignas(OX__CACHE_LINE) _Atomic uint32_t tail;
    _Atomic(ox_task *) slots[OX__LOCAL_QUEUE];
} ox__local_queue;

/* A full local queue's overflow, as the task pointers themselves: the
 * worker that takes it reads no task record under the injector's lock. */
typedef struct ox__task_batch {
    struct ox__task_batch *next;
    uint32_t first, end; /* the tasks still in it: tasks[first, end) */
    ox_task *tasks[OX__LOCAL_QUEUE / 2 + 1];
} ox__task_batch;

/* Tasks pushed from outside a worker (linked through their records), and
 * the local queues' overflows (batches). */
typedef struct ox__injector {
    ox__spin lock;
    ox_task *head, *tail;
    ox__task_batch *batches, *batches_tail;
    bool batch_turn;    /* with both kinds queued, they take turns */
    _Atomic size_t len; /* tasks, of both kinds (common/locked_count.h) */
} ox__injector;

typedef struct ox__worker {
    ox__local_queue queue;
    ox_runtime *rt;
    ox_task *lifo;      /* the task woken last by this worker: runs next */
    unsigned lifo_runs; /* how often in a row the LIFO slot ran */
    unsigned ticks;
    /* Tasks this worker started (spawned from its tasks) and retired: only
     * it writes them, shutdown sums them (runtime.c). */
    _Atomic uint64_t started, retired;
    /* Task records, and default-size stacks (guarded, and from slabs),
     * freed here and reused here first (record.c, stack.c). */
    ox__stash records, stacks, slab_stacks;
    uint64_t next_task_id, task_ids_end; /* ids it may give (task.c) */
    unsigned searches_to_skip;           /* before its next search before sleeping */
    int64_t quiet_since; /* since when its idle visits saw no draws (below); 0: not yet */
    size_t draws_seen;   /* the pool's and cache's draws at its last idle visit */
    size_t index;
    ox__ctx sched_ctx;
    ox_task *current;
    uint32_t rng; /* here, beside after: no padding after either */
    /* What the task that just switched back asked the scheduler to do. */
    enum { OX__AFTER_NONE, OX__AFTER_YIELD, OX__AFTER_SUSPEND, OX__AFTER_EXIT } after;
    ox__spin *after_unlock;
    /* The task that handed this worker straight to the current one, whose
     * bucket lock (after_unlock) the current one releases as it lands
     * (runtime.c). */
    ox_task *handed_from;
    ox__unwind_state saved_unwind; /* the worker thread's own record, while a task runs */
    _Atomic uint32_t sleep_word;   /* 1: told to wake up */
    /* Sleeping in the reactor's poller rather than on sleep_word: a waker
     * must interrupt the poll (reactor.c). */
    atomic_bool polling;
    bool idle;
    bool searching; /* woken to look for work, none found yet */
    struct ox__worker *idle_next;
    ox_join_handle thread;
    void *alt_stack;
    void *san_fiber, *san_fake_stack;
    const void *sched_stack_bottom; /* for AddressSanitizer */
    size_t sched_stack_size;
} ox__worker;

struct ox_runtime {
    /* Read by every look for work, written once. The lines below each
     * change at their own pace: `sched` with every task made runnable,
     * the injector with every push from outside. Sharing a line made
     * every worker's look at the injector a cache miss (perf on skynet:
     * ox__injector_pop at 3% for a queue that is always empty). */
    ox__worker *workers;
    size_t nworkers;
    size_t stack_size;
    /* The reactor (reactor.c), opened by the first task that waits for a
     * descriptor. One worker at a time polls it (io_claimed, below). */
    ox__spin io_open_lock;
    _Atomic int io_poller; /* -1 until open */
    int io_waker;
    _Alignas(OX__CACHE_LINE) ox__injector injector;
    /* Idle workers, a stack under idle_lock. sched counts them (high half)
     * and the workers woken to look for work that have not found any yet
     * (low half): while one is searching, nobody wakes another (runtime.c). */
    _Alignas(OX__CACHE_LINE) ox__spin idle_lock;
    ox__worker *idle_head;
    _Atomic uint32_t sched;
    /* Shutdown has begun: every task's cancellable waits end, and a new
     * task starts aborted (its waiter's group_cancelled). Read by every
     * spawn and retire, written once: on a line of its own. */
    _Alignas(OX__CACHE_LINE) atomic_bool closing;
    /* Tasks started from outside the workers (threads, other runtimes);
     * with the workers' counts, how many are unfinished (runtime.c). */
    _Alignas(OX__CACHE_LINE) _Atomic uint64_t outside_started;
    _Atomic uint32_t live_word; /* bumped by each retire once closing */
    /* Threads outside the runtime between making a task runnable and
     * waking a worker for it: the task may meanwhile end, and the runtime
     * be shut down; shutdown waits for them before it frees (runtime.c). */
    _Atomic uint32_t outside_wakers;
    _Atomic bool shutting_down;
    /* Timers (timer.c): a binary min-heap of tasks by deadline. */
    _Alignas(OX__CACHE_LINE) ox__spin timer_lock;
    ox_task **timers;
    size_t ntimers, timers_cap;
    _Atomic int64_t next_deadline; /* INT64_MAX: none */
    /* Who polls the reactor (reactor.c). */
    _Alignas(OX__CACHE_LINE) _Atomic uint32_t io_claimed; /* OX__POLL_FREE, _LOOKING or _SLEEPING */
    _Atomic bool io_wanted; /* an idle worker found the poller taken (reactor.c) */
    char name[];
};

void ox__queue_push(ox__worker *w, ox_task *t); /* owner only */
ox_task *ox__queue_pop(ox__worker *w);          /* owner only */
/* Half of victim's queue, at most `most` tasks: returns the first and
 * queues the rest on thief's; NULL if victim's queue is empty. */
ox_task *ox__queue_steal(ox__worker *thief, ox__worker *victim, uint32_t most);
bool ox__queue_is_empty(const ox__worker *w);
/* How many more tasks w's queue takes before it overflows (owner only). */
size_t ox__queue_room(const ox__worker *w);
void ox__injector_push(ox__injector *q, ox_task *first, ox_task *last, size_t n);
ox_task *ox__injector_pop(ox__injector *q);
/* Up to most tasks into out, in order, under one lock; how many. */
size_t ox__injector_pop_many(ox__injector *q, ox_task **out, size_t most);

/* ---- scheduling (runtime.c) ---- */
/* The worker whose scheduler runs on this OS thread, or NULL. */
ox__worker *ox__worker_current(void);
/* Makes t runnable: on the calling worker's LIFO slot if it belongs to the
 * same runtime, else on the injector; wakes an idle worker if needed. */
void ox__task_schedule(ox_task *t, bool lifo);
/* From a running task: back to the scheduler, which does `after`. */
void ox__task_switch_out(ox_task *t, int after, ox__spin *unlock);
/* Wakes one idle worker of rt, if any sleeps. */
void ox__runtime_wake_idle(ox_runtime *rt);
/* Counts a task that starts on rt (shutdown waits for it: runtime.c). */
void ox__runtime_task_started(ox_runtime *rt);
/* Drops a reference to t; the last frees it. */
void ox__task_release(ox_task *t);
extern const ox__unit_ops ox__task_unit_ops;

/* ---- timers (timer.c) ---- */
void ox__timer_arm(ox__lot_waiter *w, ox_instant deadline);
void ox__timer_disarm(ox__lot_waiter *w);
/* Expires w's runtime's due timers, as many as w's LIFO slot and queue
 * take without overflowing but at least one (the rest stay due, for the
 * next call); returns the next deadline (INT64_MAX: none; a past one if
 * some stayed due). */
int64_t ox__timers_fire(ox__worker *w);

/* ---- the reactor (reactor.c) ---- */
enum { OX__POLL_FREE, OX__POLL_LOOKING, OX__POLL_SLEEPING };
/* Per watched descriptor: one word per direction (OX__IO_READ, _WRITE),
 * bumped at every readiness event. A task that found the descriptor not
 * ready waits for its word to move, through the parking layer. The words
 * must live in memory that is never freed while the runtime runs: an
 * event for a descriptor just closed may still be on its way (io/). */
enum { OX__IO_READ, OX__IO_WRITE, OX__IO_ANY };
typedef struct ox__io_words {
    _Atomic uint32_t seq[3];
    /* Tasks inside a wait on seq[i] (ox__io_words_enter): an event wakes
     * the parking lot for a word only then (a wake walks a bucket of
     * other tasks' records: most of the reactor's cost with ten thousand
     * connections), and bumps seq[OX__IO_ANY] only then. */
    _Atomic uint32_t waiters[3];
    /* The poller reported OX__SYS_READ_END: set before the bump of
     * seq[OX__IO_READ] that reports it (release), never cleared while the
     * descriptor lives (ox__io_run). */
    atomic_bool read_end;
} ox__io_words;

/* A task is about to load seq[dir] and then maybe park on it / is done
 * with it. The seq_cst fence pairs with the reactor's (reactor.c). */
static inline void ox__io_words_enter(ox__io_words *words, int dir)
{
    atomic_fetch_add_explicit(&words->waiters[dir], 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
}

static inline void ox__io_words_leave(ox__io_words *words, int dir)
{
    /* Relaxed: a late decrement only costs the reactor one needless wake. */
    atomic_fetch_sub_explicit(&words->waiters[dir], 1, memory_order_relaxed);
}

/* Watches fd, edge-triggered, for rt's tasks; opens rt's reactor if need
 * be. Returns 0 or an errno value. */
int ox__reactor_watch(ox_runtime *rt, int fd, ox__io_words *words);
/* Watches fd once for events (OX__SYS_READABLE / _WRITABLE); the waiter
 * enters OX__IO_ANY and waits on seq[OX__IO_ANY].
 * ox__reactor_unwatch must follow. */
int ox__reactor_watch_once(ox_runtime *rt, int fd, unsigned events, ox__io_words *words);
void ox__reactor_unwatch(ox_runtime *rt, int fd);
/* rt shuts down: the sockets its reactor watched forget it (io/socket.c). */
void ox__io_forget_runtime(ox_runtime *rt);
/* The runtime of the running task, or NULL in a thread. */
ox_runtime *ox__runtime_current(void);

/* For the workers (runtime.c). A quick look for ready descriptors, if no
 * other worker is polling: wakes their tasks (onto w's LIFO slot and
 * queue); returns whether any woke. */
bool ox__reactor_poll_now(ox__worker *w);
/* w is idle: if it can take the poller, sleeps in it until an event, a
 * wake (ox__reactor_wake_worker) or the deadline, and returns true after
 * idle_leave(w) and waking the ready tasks; returns false at once if the
 * poller is not open or another worker holds it. */
bool ox__reactor_sleep(ox__worker *w, int64_t deadline, void (*idle_leave)(ox__worker *));
/* After w->sleep_word was set: wakes w if it sleeps in the poller and
 * returns true; false if it does not (it sleeps on its futex, or will see
 * sleep_word before it sleeps). */
bool ox__reactor_wake_worker(ox__worker *w);
void ox__reactor_close(ox_runtime *rt);

/* ---- spawning (task.c) ---- */
/* A task record for fn(arg) as the builder says, not yet runnable (so that
 * the caller can attach it to a set first). */
int ox__task_create(const ox_task_builder *b, void *(*fn)(void *), void *arg, ox_task **out);
/* Makes a created task runnable. */
void ox__task_start(ox_task *t);
/* Readies t for its first run, on w: gives it a stack. True, or false with
 * t->outcome set (aborted before it ran: OX_ECANCELED; no stack could be
 * mapped: ENOMEM), and t still to retire. */
bool ox__task_prepare(ox__worker *w, ox_task *t);
/* t->finished: RUNNING, or FINISHED, or RUNNING with the bits of who waits.
 * A thread that waits for a task sleeps on the futex, which only a wake-up
 * system call ends; a task waits in the parking lot, which a wake in user
 * space ends. Each marks the word before it waits, so that a task that
 * nobody waits for finishes without touching either (most tasks, when
 * joins come after their ends: the lot's bucket lock and hashing were a
 * tenth of a spawn and join), and one that only tasks wait for without
 * the system call. */
enum {
    OX__TASK_RUNNING = 0,
    OX__TASK_FINISHED = 1,
    OX__TASK_TASK_WATCHES = 2,   /* a task waits in the lot */
    OX__TASK_THREAD_WATCHES = 4, /* a thread waits on the futex */
};
/* Publishes t's outcome and wakes whoever waits for it. */
void ox__task_mark_finished(ox_task *t);
/* Whether t has finished; acquire: its outcome is then visible. */
bool ox__task_has_finished(ox_task *t);
/* Waits for t to finish, at site; returns 0, or OX_ECANCELED if site is
 * cancellable and the calling task was aborted. */
int ox__task_wait_finished(ox_task *t, const ox__wait_site *site);
/* Hands over t's outcome as ox_task_join does (the caller releases), but
 * a panic's payload always in *payload: the caller hands it on with
 * ox__panic_payload_hand after the release, since its drop may panic. A
 * panic's payload, and an ENOMEM, go to the first caller only: a later
 * one gets a NULL payload, and 0 for the ENOMEM. */
int ox__task_collect(ox_task *t, void **result, ox_panic_payload **payload);

/* ---- sets (join_set.c) ---- */
/* t, of set, has finished: called by retire before join can see it. */
void ox__join_set_task_done(struct ox_join_set *set, ox_task *t);

/* ---- task-locals (local.c) ---- */
/* Destroys the calling task's task-locals, newest first. */
void ox__task_locals_destroy(ox_task *t);

/* ---- task records (record.c) ---- */
/* A zeroed record, or NULL if out of memory. */
ox_task *ox__task_alloc(void);
void ox__task_free(ox_task *t);
/* w stops: frees the records it kept. */
void ox__task_records_flush(ox__worker *w);
/* Frees up to `most` of the pooled records beyond those kept for the next
 * burst; false if none is left to free. For idle time, as
 * ox__stack_cache_trim. */
bool ox__task_records_trim(size_t most);
/* Whether ox__task_records_trim has work (a hint). */
bool ox__task_records_trimmable(void);
/* How many times a worker has asked the pool for records (a hint: a burst
 * under way, if it grows). */
size_t ox__task_records_draws(void);
/* How many records the shared pool holds (a hint; for tests). */
size_t ox__task_records_pooled(void);

/* ---- stacks (stack.c) ---- */
/* A stack of at least size bytes, fresh or recycled; NULL if none can be
 * mapped. On w, the calling worker. */
ox__stack *ox__stack_get(ox__worker *w, size_t size);
/* Gives back a stack whose task has returned, on w, the calling worker. */
void ox__stack_put(ox__worker *w, ox__stack *s);
/* The lowest usable address of s; its top is s itself. */
static inline char *ox__stack_lo(const ox__stack *s)
{
    return (char *)s->base + s->guard_size;
}
/* Its usable size, from ox__stack_lo up to the header. */
static inline size_t ox__stack_size(const ox__stack *s)
{
    return (size_t)((const char *)s - ox__stack_lo(s));
}
/* Gives back the pages of up to `most` cached stacks beyond those kept
 * warm; false if none is left to give back. For a worker about to sleep,
 * and one that stops (no idle visit follows to give them back). */
bool ox__stack_cache_trim(size_t most);
/* Whether ox__stack_cache_trim has work (a hint). */
bool ox__stack_cache_trimmable(void);
/* How many times a worker has taken stacks from the shared cache (a hint,
 * as ox__task_records_draws). */
size_t ox__stack_cache_draws(void);
/* Hands w's own cached stacks to the shared cache: w stops. */
void ox__stack_cache_flush(ox__worker *w);
void ox__stack_guard_install(void);
/* The lowest stack pointer a task may switch away with on s: one below it,
 * in a slab stack's red zone, means it has overflowed (stack.c says when
 * this is seen). 0 for a guarded stack, whose guard page catches it. */
uintptr_t ox__stack_floor(const ox__stack *s);

#endif
