/* rwlock_slots.h - the reader slots that an rwlock's readers spread over once
 * they overlap (rwlock.c says when and why).
 *
 * One table for all rwlocks: a cache line of slots per CPU. A slot holds the
 * address of the lock one reader holds; or that address with its low bit
 * set, a trace left by a reader that has left (free, like 0). Readers on different
 * CPUs write different lines, so they do not pull one cache line back and
 * forth as they would on the lock's own reader count. A writer finds the
 * readers of its lock by reading every line in use.
 *
 * Own slots, for the readers of a biased lock: a line of slots per thread
 * (oxide/rwlock.h: ox__rw_own_lines). Only the thread that owns a line
 * fills its slots, and only the reader that holds a slot empties it (a task
 * may from another worker thread), so both are plain stores, not
 * compare-exchanges; a writer never claims an own slot, it waits for its
 * reader to leave (rwlock.c). A line goes back to a free list when its
 * thread ends, and the next thread to take one reuses it; a slot still held
 * is skipped until its reader leaves. A slot is named by its tag
 * (ox__rw_own_tag). */
#ifndef OX_SYNC_RWLOCK_SLOTS_H
#define OX_SYNC_RWLOCK_SLOTS_H

#include "oxide/rwlock.h"

#include <stdbool.h>

/* A slot of a CPU's line: its number, which fits the held-lock record's
 * 16-bit tag. */
typedef unsigned ox__rw_slot;

/* The tag of own line line's slot i (oxide/rwlock.h). */
static inline uint32_t ox__rw_own_tag(unsigned line, unsigned i)
{
    return line * 8 + 1 + i;
}

/* Takes a free slot in the calling CPU's line for lock, and returns true with
 * its number in *slot; false if that line is full. Sequentially consistent,
 * so that a load of the lock's state that follows it is ordered after it (the
 * writer's side is in ox__rw_slot_end). */
bool ox__rw_slot_take(const void *lock, ox__rw_slot *slot);

/* Takes a free slot in the calling thread's own line for lock, and returns
 * true with its tag in *tag; false if the line is full or no line is left.
 * A release store: the caller's next load of the lock's state may be
 * ordered before it, unless a writer makes every thread pass a barrier
 * (ox__sys_fence_others) after it marks the lock and before it reads the
 * slots (rwlock.c). */
bool ox__rw_own_slot_take(const void *lock, uint32_t *tag);

/* ox__rw_own_leave(lock, tag) empties an own slot: oxide/rwlock.h. */

/* A writer of lock that will wait for its readers in own slots, and the
 * end of that. Between the two, every own leave of lock (and of the locks
 * that share its count) bumps its line's count and wakes the line's
 * sleepers: the writer begins, then fences every thread, so a leave either
 * was visible to its scan or sees it waiting. */
void ox__rw_own_wait_begin(const void *lock);
void ox__rw_own_wait_end(const void *lock);

/* Waits, between those two, until the own slot at tag no longer holds
 * lock: 0, or OX_ETIMEDOUT at deadline. site and object name the wait for
 * the blocked dump. Acquire: the reader's reads happen-before the writer's
 * return. */
struct ox__wait_site;
int ox__rw_own_slot_wait(uint32_t tag, const void *lock, ox_instant deadline,
                         const struct ox__wait_site *site);

/* How many own slots the lines given to threads hold, which a writer of a
 * biased lock reads after its fence (seq_cst: adopt_line says why); and
 * the tag of the i-th of them. */
unsigned ox__rw_own_slots_used(void);

static inline uint32_t ox__rw_own_tag_of(unsigned i)
{
    return ox__rw_own_tag(i / OX__RW_OWN_SLOTS_PER_LINE, i % OX__RW_OWN_SLOTS_PER_LINE);
}

/* Whether the own slot at tag holds lock right now (an acquire load). */
bool ox__rw_own_slot_holds(uint32_t tag, const void *lock);

/* Frees a CPU line's slot if it still holds lock, leaving a trace (release:
 * the reader's reads happen-before a writer's acquire of the slot). Returns
 * false if a writer has moved this reader into the lock's count since
 * (rwlock.c). */
bool ox__rw_slot_leave(const void *lock, ox__rw_slot slot);

/* One past the highest CPU line's slot any reader has used: where a
 * writer's scan ends. Sequentially consistent, and so are the loads in
 * ox__rw_slot_holds: a writer that reads them after marking the lock (in the
 * state's single total order) sees every slot taken before a reader read
 * the state unmarked. */
ox__rw_slot ox__rw_slot_end(void);

/* Whether slot holds lock right now (a sequentially consistent load). */
bool ox__rw_slot_holds(ox__rw_slot slot, const void *lock);

/* What a writer's scan finds of its lock in a slot. */
typedef enum {
    OX__RW_SLOT_NOTHING,        /* free, another lock's, or a trace on the
                                   scanning thread's own line */
    OX__RW_SLOT_HELD,           /* a reader of the lock holds it */
    OX__RW_SLOT_LEFT_ELSEWHERE, /* a reader of the lock left it since the last
                                   scan, on another CPU's line */
} ox__rw_slot_seen;

/* Looks at slot for a writer of lock on scanners_line, with one
 * sequentially consistent load (see ox__rw_slot_end). It clears a trace of
 * lock it finds, on any line, so that the next scan sees only readers that
 * came since: a writer learns whether readers on other CPUs still use the
 * lock. */
ox__rw_slot_seen ox__rw_slot_look(ox__rw_slot slot, const void *lock, unsigned scanners_line);

/* The calling thread's CPU's line (for ox__rw_slot_look). */
unsigned ox__rw_slot_current_line(void);

/* Frees a CPU line's slot if it holds lock, for a writer moving that
 * reader into the lock's count; false if the reader left first. */
bool ox__rw_slot_claim(ox__rw_slot slot, const void *lock);

#endif
