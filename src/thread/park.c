/* park.c - blocking and waking, the token parker.
 *
 * The parker's state word (Rust std's futex parker has the same shape):
 *   OX__PARK_EMPTY    no token
 *   OX__PARK_NOTIFIED token present
 *   OX__PARK_PARKED   the owner found no token and sleeps (or is about to)
 * park:   NOTIFIED -> EMPTY returns at once; EMPTY -> PARKED, then sleep
 *         until unpark sets NOTIFIED and take it (NOTIFIED -> EMPTY).
 * unpark: swap in NOTIFIED; only if the old state was PARKED is a wake
 *         (a syscall) needed.
 */
#include "park.h"

#include "oxide/unwind_record.h"

#include "../check/chaos.h"
#include "../common/cache_line.h"
#include "../common/dekker.h"
#include "../sys/sys.h"
#include "../unit/unit.h"

#include <signal.h>

/* ---- the registry of blocked threads ----
 * Each thread's record is thread-local; it is linked into the list the
 * first time the thread blocks (a blocking call is slow anyway) and
 * unlinked at the thread's end (registry_thread_exit) before its storage goes away.
 * The list is guarded by a spinlock, not a futex lock: a signal handler
 * must be able to take it, and it is held only for a few pointer writes or
 * one dump.
 *
 * Reading another thread's record: a dumper *pins* the record, then loads
 * site. The owner, leaving ox__park_wait, clears site and then waits until
 * the record is unpinned. Both pairs are seq_cst, so either the dumper sees
 * site NULL (and reads nothing) or the owner sees the pin (and stays in
 * ox__park_wait until the dumper is done). While pinned with site set, the
 * owner is inside ox__park_wait: its record, its held-lock record and the
 * object it waits on (a channel it holds a handle to) cannot change or go
 * away, so the dumper copies them whole, with no torn entry. The owner
 * wrote them before its release store of site, which the dumper's load
 * acquires; the dumper's release unpin pairs with the owner's acquire load
 * of pins, ordering the dumper's reads before the owner's next writes. */
typedef struct wait_record {
    _Atomic(const ox__wait_site *) site; /* non-NULL while in ox__park_wait */
    _Atomic(const void *) object;
    _Atomic uint32_t pins; /* dumpers reading this record right now */
    const void *lock;      /* from ox__park_note_lock_site */
    const char *file;
    int line;
    const char *name;
    uint64_t id;
    const ox__unwind_state *held; /* this thread's held-lock record */
    struct wait_record *prev, *next;
    bool linked;
    bool retired; /* the thread is exiting: never link again */
} wait_record;

static _Thread_local wait_record my_record;
static wait_record *registry_head;
static atomic_flag registry_busy = ATOMIC_FLAG_INIT;
/* Set while this thread holds (or is taking) the registry lock: a signal
 * handler on the same thread must not wait for it. */
static _Thread_local volatile sig_atomic_t in_registry;

static bool registry_try_lock(void)
{
    /* Acquire: pairs with the release in registry_unlock. */
    return !atomic_flag_test_and_set_explicit(&registry_busy, memory_order_acquire);
}

static void registry_lock(void)
{
    in_registry = 1;
    /* Compiler-only: the flag is set before the lock is tried, as a signal
     * handler on this thread sees it. */
    atomic_signal_fence(memory_order_seq_cst);
    while (!registry_try_lock())
        ox__sys_yield();
}

static void registry_unlock(void)
{
    /* Release: our registry changes happen-before the next holder's
     * acquire in registry_try_lock. */
    atomic_flag_clear_explicit(&registry_busy, memory_order_release);
    atomic_signal_fence(memory_order_seq_cst);
    in_registry = 0;
}

OX_COLD static void registry_link(wait_record *r)
{
    ox__unit_exit_arm(); /* a thread oxide did not start unlinks at its end too */
    /* The name stays valid while we are linked: the thread record that
     * holds it is released after the registry (unit.h). */
    r->name = ox__unit_thread_name();
    r->id = ox__unit_thread_id();
    r->held = ox__unwind_current();
    registry_lock();
    r->prev = NULL;
    r->next = registry_head;
    if (registry_head != NULL)
        registry_head->prev = r;
    registry_head = r;
    r->linked = true;
    registry_unlock();
}

/* The registry's part of a thread's end (unit.h): unlinks the thread's
 * record before its storage goes away. */
static void registry_thread_exit(bool check_locks)
{
    (void)check_locks;
    wait_record *r = &my_record;
    r->retired = true;
    if (!r->linked)
        return;
    registry_lock();
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        registry_head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->linked = false;
    registry_unlock();
}

/* Before main, as every part's registration (unit.h). */
__attribute__((constructor(101))) static void register_registry_thread_exit(void)
{
    ox__unit_exit_register(OX__UNIT_EXIT_PARK, registry_thread_exit);
}

/* ---- fork ----
 * The registry lock is never held across fork (docs/threads.md): the
 * forking thread takes it first, so no other thread is inside it at the
 * moment of the fork. In the child only the forking thread exists: the
 * registry keeps its record alone (the others' thread-local records are
 * copies of memory nobody owns any more). */
static void registry_before_fork(void)
{
    registry_lock();
}

static void registry_after_fork_parent(void)
{
    registry_unlock();
}

static void registry_after_fork_child(void)
{
    wait_record *r = &my_record;
    registry_head = NULL;
    if (r->linked) {
        r->prev = r->next = NULL;
        registry_head = r;
    }
    /* No dumper exists in the child to unpin it. */
    atomic_store_explicit(&r->pins, 0, memory_order_relaxed);
    registry_unlock();
}

/* Registered first of oxide's fork handlers (constructor 101; the checker's
 * is 102), so that its prepare runs last: the forking thread takes the
 * checker's lock and the parking lot's buckets before the registry's. The
 * other order deadlocked: holding the registry, the forker waited for the
 * checker's lock, whose holder could not link into the registry to block
 * (nor could the forker itself, parking for the first time). */
__attribute__((constructor(101))) static void registry_fork_handlers(void)
{
    ox__sys_atfork(registry_before_fork, registry_after_fork_parent, registry_after_fork_child);
    ox__park_lot_fork_handlers();
}

void ox__park_note_lock_site(const void *lock, const char *file, int line)
{
    ox__lot_waiter *unit = ox__park_unit_get();
    if (unit != NULL) { /* a task: its waiter, not its worker's record */
        unit->lock = lock;
        unit->file = file;
        unit->line = line;
        return;
    }
    wait_record *r = &my_record;
    r->lock = lock;
    r->file = file;
    r->line = line;
}

/* The newest OX__BLOCKED_HELD_MAX locks of s, counting the rest. */
static void copy_held(const ox__unwind_state *s, ox__blocked_info *info)
{
    for (uint32_t i = s->depth; i-- > 0;) {
        const ox__unwind_entry *e = &s->entries[i];
        if (!ox__entry_is_lock(e))
            continue;
        if (info->held_count < OX__BLOCKED_HELD_MAX)
            info->held[info->held_count] =
                (ox__blocked_lock){e->object, e->u.lock_ops->kind, e->file, e->line};
        info->held_count++;
    }
}

/* Copies r into info if its thread is blocked; false if it is not. */
static bool snapshot(wait_record *r, ox__blocked_info *info)
{
    /* SeqCst, both: see "Reading another thread's record" above. */
    atomic_fetch_add_explicit(&r->pins, 1, memory_order_seq_cst);
    const ox__wait_site *site = atomic_load_explicit(&r->site, memory_order_seq_cst);
    if (site != NULL) {
        /* Relaxed: stored before site, which we loaded seq_cst (acquire). */
        const void *object = atomic_load_explicit(&r->object, memory_order_relaxed);
        *info = (ox__blocked_info){
            .name = r->name,
            .id = r->id,
            .site = site,
            .object = object,
            .file = r->lock == object ? r->file : NULL, /* a stale site is not shown */
            .line = r->line,
        };
        if (site->describe != NULL)
            site->describe(object, info->detail, sizeof info->detail);
        copy_held(r->held, info);
    }
    /* Release: our reads above happen-before the owner's acquire load of
     * pins that lets it leave ox__park_wait. */
    atomic_fetch_sub_explicit(&r->pins, 1, memory_order_release);
    return site != NULL;
}

struct task_visit {
    void (*fn)(const ox__blocked_info *, void *);
    void *ctx;
    ox__blocked_info info;
};

/* A task linked in the lot, its bucket locked by ox__park_lot_visit: it
 * cannot be unlinked, so it cannot run, and every field below (and the
 * object it waits on) stays as it was when it linked. Its held-lock
 * record was saved into w->held before the bucket was unlocked. */
static void visit_task(const ox__lot_waiter *w, void *arg)
{
    struct task_visit *v = arg;
    ox__blocked_info *info = &v->info;
    *info = (ox__blocked_info){
        .task = true,
        .name = w->task.name,
        .id = w->task.id,
        .site = w->site,
        .object = w->object,
        .file = w->lock == w->object ? w->file : NULL, /* a stale site is not shown */
        .line = w->line,
    };
    if (w->site->describe != NULL)
        w->site->describe(w->object, info->detail, sizeof info->detail);
    if (w->task.held != NULL)
        copy_held(w->task.held, info);
    v->fn(info, v->ctx);
}

int ox__park_visit_blocked(void (*fn)(const ox__blocked_info *, void *), void *ctx,
                           int *busy_buckets)
{
    if (in_registry)
        return -1; /* we interrupted this very thread inside the registry */
    registry_lock();
    int count = 0;
    ox__blocked_info info;
    for (wait_record *r = registry_head; r != NULL; r = r->next) {
        if (!snapshot(r, &info))
            continue;
        fn(&info, ctx);
        count++;
    }
    registry_unlock();
    /* Tasks after the registry is let go: a bucket is never waited for
     * with the registry held (a forking thread holds every bucket while it
     * waits for the registry). */
    struct task_visit v = {.fn = fn, .ctx = ctx};
    int busy = 0;
    count += ox__park_lot_visit(visit_task, &v, &busy);
    if (busy_buckets != NULL)
        *busy_buckets = busy;
    return count;
}

/* The owner leaves ox__park_wait only when no dumper is reading its record:
 * a dumper's copy is a handful of loads, so this yields at most briefly. */
OX_COLD static void wait_unpinned(wait_record *r)
{
    /* Acquire: pairs with the dumper's release unpin in snapshot(). */
    while (atomic_load_explicit(&r->pins, memory_order_acquire) != 0)
        ox__sys_yield();
}

/* The calling thread enters a wait at site: visible to the dumper until
 * wait_leave. */
static wait_record *wait_enter(const ox__wait_site *site, const void *object)
{
    wait_record *r = &my_record;
    if (OX_UNLIKELY(!r->linked) && !r->retired)
        registry_link(r);
    OX__CHAOS_POINT();
    atomic_store_explicit(&r->object, object, memory_order_relaxed);
    /* Release: publishes the record's fields and the held-lock record to
     * a dumper's acquire load of site. */
    atomic_store_explicit(&r->site, site, memory_order_release);
    return r;
}

static void wait_leave(wait_record *r)
{
    /* SeqCst, both: see "Reading another thread's record" above. */
    OX__DEKKER_STORE(&r->site, NULL);
    if (OX_UNLIKELY(atomic_load_explicit(&r->pins, memory_order_seq_cst) != 0))
        wait_unpinned(r);
    OX__CHAOS_POINT();
}

static int wait_on_word(_Atomic uint32_t *word, uint32_t expected, ox_instant deadline,
                        const ox__wait_site *site, const void *object)
{
    ox__lot_waiter *unit = ox__park_unit_get();
    if (unit != NULL)
        return ox__park_lot_wait(unit, word, expected, deadline, site, object);
    wait_record *r = wait_enter(site, object);
    int rc = ox__sys_futex_wait(word, expected, deadline.ns);
    wait_leave(r);
    return rc;
}

/* ---- the waiters' count, for ox__park_may_have_waiters ----
 * Waiters at a counted site count themselves in a slot chosen by the
 * word's address. Slots are few and shared: two words in one slot only
 * cost each other's wakers a wake that finds nobody. A forked child keeps
 * the counts of threads it does not have, with the same cost. */
#define WAITER_SLOT_BITS 8

static struct {
    _Alignas(OX__CACHE_LINE) _Atomic uint32_t count;
} waiter_slots[1u << WAITER_SLOT_BITS];

static _Atomic uint32_t *waiter_count(const _Atomic uint32_t *word)
{
    return &waiter_slots[ox__park_word_hash(word, WAITER_SLOT_BITS)].count;
}

int ox__park_wait(_Atomic uint32_t *word, uint32_t expected, ox_instant deadline,
                  const ox__wait_site *site, const void *object)
{
    if (!site->counted)
        return wait_on_word(word, expected, deadline, site, object);
    _Atomic uint32_t *count = waiter_count(word);
    /* The count, then the word's check (in the futex or the lot), with a
     * seq_cst fence between them. The waker changes the word and then loads
     * the count, both seq_cst (ox__park_may_have_waiters): if its load
     * follows the fence in the single total order, it sees this add (the
     * add is before the fence), else the check after the fence sees its
     * change. The fence gives the order, so the add is relaxed; the check
     * is the kernel's or the lot's, so it cannot be a seq_cst load. */
    atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    int rc = wait_on_word(word, expected, deadline, site, object);
    /* Relaxed: a waker that still sees the count only makes a wake for
     * nobody. */
    atomic_fetch_sub_explicit(count, 1, memory_order_relaxed);
    return rc;
}

bool ox__park_may_have_waiters(const _Atomic uint32_t *word)
{
    /* SeqCst: see ox__park_wait. */
    return atomic_load_explicit(waiter_count(word), memory_order_seq_cst) != 0;
}

int ox__park_wait_fd(int fd, unsigned events, ox_instant deadline, const ox__wait_site *site,
                     const void *object)
{
    wait_record *r = wait_enter(site, object);
    int rc = ox__sys_fd_wait(fd, events, deadline.ns);
    wait_leave(r);
    return rc;
}

int ox__park_wake_one(_Atomic uint32_t *word)
{
    if (ox__park_lot_wake(word, 1) == 1)
        return 1;
    return ox__sys_futex_wake(word, 1);
}

int ox__park_wake_all(_Atomic uint32_t *word)
{
    return ox__park_lot_wake(word, INT32_MAX) + ox__sys_futex_wake(word, INT32_MAX);
}

int ox__park_requeue(_Atomic uint32_t *from, uint32_t expected, _Atomic uint32_t *to)
{
    /* Tasks are woken rather than moved: each then queues on the mutex by
     * itself. Only threads get the kernel's requeue. */
    int tasks = ox__park_lot_wake(from, INT32_MAX);
    int threads = ox__sys_futex_requeue(from, expected, 1, to);
    /* -1 (the word changed) makes the caller retry, also for the threads. */
    return threads < 0 ? -1 : tasks + threads;
}

int ox__parker_park(ox__parker *p, ox_instant deadline, const ox__wait_site *site,
                    const void *object)
{
    /* One step down: NOTIFIED -> EMPTY (token consumed) or EMPTY -> PARKED.
     * Only the owner parks, so the state cannot already be PARKED. Acquire:
     * consuming a token must see everything the unparking thread wrote
     * before its release swap in ox__parker_unpark. */
    if (atomic_fetch_sub_explicit(&p->state, 1, memory_order_acquire) == OX__PARK_NOTIFIED)
        return 0;
    uint32_t expected;
    for (;;) {
        int rc = ox__park_wait(&p->state, OX__PARK_PARKED, deadline, site, object);
        /* Acquire: pairs with the release swap in unpark (see above). */
        expected = OX__PARK_NOTIFIED;
        if (atomic_compare_exchange_strong_explicit(&p->state, &expected, OX__PARK_EMPTY,
                                                    memory_order_acquire, memory_order_relaxed))
            return 0;
        if (rc == OX_ETIMEDOUT || rc == OX_ECANCELED) {
            /* Give up: PARKED -> EMPTY, unless an unpark races us, in which
             * case the token is ours after all. */
            uint32_t old =
                atomic_exchange_explicit(&p->state, OX__PARK_EMPTY, memory_order_acquire);
            return old == OX__PARK_NOTIFIED ? 0 : rc;
        }
        /* Spurious wake-up: still PARKED; sleep again. */
    }
}

void ox__parker_unpark(ox__parker *p)
{
    /* Release: everything before unpark happens-before the parked thread's
     * acquire when it consumes the token. */
    if (atomic_exchange_explicit(&p->state, OX__PARK_NOTIFIED, memory_order_release) ==
        OX__PARK_PARKED)
        ox__park_wake_one(&p->state);
}
