/* record.c - task records: one small allocation per task, apart from its
 * stack, and reused by the worker that freed it.
 *
 * The record outlives the task's stack at both ends: a spawned task waits
 * in a queue, and a finished one waits for its join, with a record and no
 * stack (stack.c). In a spawn tree most live tasks are one or the other,
 * and a record is an eighth of the page a stack's first frames touch.
 *
 * Each worker keeps the records freed on it (by a join in one of its
 * tasks, or its retire of a detached task) for its next spawns: they are
 * in its CPU's cache, and reusing them takes no lock. Past 2 * CHAIN it
 * hands CHAIN of them, as one chain, to a shared pool, where a worker
 * whose own are used up takes a whole chain: one lock per CHAIN records
 * either way, for a worker that frees more than it spawns (its tasks join
 * what another worker's spawned). The allocator was a third of a spawn
 * and join: a record freed on another thread than its own arena's makes
 * glibc lock that arena and consolidate. On threads, the allocator has
 * them.
 *
 * The pool takes every chain during a burst and gives all but POOL_KEPT
 * back to the allocator only in idle time (ox__task_records_trim), as the
 * stack cache does its pages. Freeing them as they came past a cap made
 * glibc trim its heap and then grow it again for the next spawns: a
 * madvise with a TLB shootdown, and page faults, in the middle of skynet,
 * and under CPU load the shootdowns' interrupts were a sixth of its
 * profile. */
#include "sanitizer.h"
#include "task_internal.h"

#include <stdlib.h>
#include <string.h>

#define CHAIN     64
#define POOL_KEPT 4096 /* 2 MiB: the most kept past an idle visit */
/* A record ends after OX__TASK_UNWIND_INLINE of the unwind record's
 * inline entries, not all OX__UNWIND_INLINE of a thread's: they were
 * two thirds of the record, and a spawn tree keeps hundreds of thousands
 * of records alive (skynet: 230 MB at its peak, each new page a fault and,
 * from glibc's arenas, an mprotect). reset() sets the capacity, which
 * travels with the record into the live one and back (unwind.c's
 * move_record), so a task's fifth entry moves them all to the heap. */
#define RECORD_BYTES                                                                               \
    (offsetof(ox_task, unwind) + offsetof(ox__unwind_state, slots) +                               \
     (1 + OX__TASK_UNWIND_INLINE) * sizeof(ox__unwind_entry))
/* Records start on a cache line of their own: two workers write
 * neighbouring tasks' records. */
#define RECORD_SIZE ox__cache_lines(RECORD_BYTES)

/* Every field zero, but for the unwind record's bottom and inline
 * entries: they are read only below its depth (0 after ox__unwind_free),
 * and the bottom only in the live record, into which a task's inline
 * entries are copied (unwind.c's move_record); and the record's own inline
 * capacity. */
static void reset(ox_task *t)
{
    _Static_assert(offsetof(ox_task, unwind) + sizeof(ox__unwind_state) == sizeof(ox_task) &&
                       offsetof(ox__unwind_state, slots) + sizeof(((ox__unwind_state *)0)->slots) ==
                           sizeof(ox__unwind_state),
                   "the inline entries end the record");
    _Static_assert((offsetof(ox_task, unwind) + offsetof(ox__unwind_state, slots) - 1) /
                               OX__CACHE_LINE -
                           offsetof(ox_task, ctx) / OX__CACHE_LINE <=
                       1,
                   "what a switch touches spans two cache lines at most (task_internal.h)");
    _Static_assert(OX__TASK_UNWIND_INLINE <= OX__UNWIND_INLINE, "a task's inline entries fit");
    memset(t, 0, offsetof(ox_task, unwind) + offsetof(ox__unwind_state, slots));
    t->unwind.entries = ox__unwind_inline(&t->unwind);
    t->unwind.capacity = OX__TASK_UNWIND_INLINE;
}

static struct {
    ox__spin lock;
    ox__chains chains;
    _Atomic size_t draws; /* take_chain calls (locked_count.h) */
} pool;

/* A record kept for reuse: all but its links are out of bounds for
 * AddressSanitizer until it is reused (ox__task_alloc). */
static void keep(ox_task *t)
{
    ox__san_kept((char *)t + sizeof(ox__chain_link), RECORD_SIZE - sizeof(ox__chain_link));
}

static void release(void *t)
{
    ox__san_reused(t, RECORD_SIZE);
    free(t);
}

/* Fills w's empty stash with a chain from the pool, if it has one. */
static void take_chain(ox__worker *w)
{
    ox__spin_lock(&pool.lock);
    ox__chain_link *chain = ox__chains_pop(&pool.chains);
    ox__locked_count_add(&pool.draws, 1);
    ox__spin_unlock(&pool.lock);
    ox__stash_fill(&w->records, chain);
}

/* Moves CHAIN of w's records to the pool. */
static void give_chain(ox__worker *w)
{
    ox__chain_link *chain = ox__stash_cut(&w->records, CHAIN);
    ox__spin_lock(&pool.lock);
    ox__chains_push(&pool.chains, chain);
    ox__spin_unlock(&pool.lock);
}

size_t ox__task_records_pooled(void)
{
    return ox__chains_count(&pool.chains);
}

size_t ox__task_records_draws(void)
{
    return ox__locked_count(&pool.draws);
}

bool ox__task_records_trimmable(void)
{
    return ox__chains_over(&pool.chains, POOL_KEPT);
}

bool ox__task_records_trim(size_t most)
{
    for (size_t trimmed = 0; trimmed < most;) {
        ox__chain_link *chain = ox__chains_pop_over(&pool.lock, &pool.chains, POOL_KEPT);
        if (chain == NULL)
            return false;
        for (ox__chain_link *next; chain != NULL; chain = next, trimmed++) {
            next = chain->next;
            release(chain);
        }
    }
    return true;
}

ox_task *ox__task_alloc(void)
{
    ox__worker *w = ox__worker_current();
    ox_task *t = NULL;
    if (w != NULL) {
        if (w->records.count == 0)
            take_chain(w);
        t = ox__stash_pop(&w->records);
    }
    if (t != NULL)
        ox__san_reused(t, RECORD_SIZE);
    else
        t = ox__alloc_lines(RECORD_BYTES);
    if (t != NULL)
        reset(t);
    return t;
}

void ox__task_free(ox_task *t)
{
    /* A panic nobody joined goes with the record. Relaxed: we are the last
     * owner (ox__task_release's acquire). Its drop may not unwind through
     * the record's release: Rust aborts too ("thread result panicked on
     * drop"). */
    ox_panic_payload *unjoined = atomic_exchange_explicit(&t->panic, NULL, memory_order_relaxed);
    if (unjoined != NULL)
        ox__panic_payload_free_or_abort(unjoined, "ox_task_handle_drop",
                                        "the payload of a task that panicked and was not joined "
                                        "panicked on drop");
    ox__unwind_free(&t->unwind);
    free(t->name);
    ox__worker *w = ox__worker_current();
    if (w == NULL) {
        free(t);
        return;
    }
    ox__stash_push(&w->records, t);
    keep(t);
    if (w->records.count == 2 * CHAIN)
        give_chain(w);
}

void ox__task_records_flush(ox__worker *w)
{
    for (void *t; (t = ox__stash_pop(&w->records)) != NULL;)
        release(t);
}
