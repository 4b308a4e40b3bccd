/* rwlock_slots.h - the reader slots that an rwlock's readers spread over once
 * they overlap (rwlock.c says when and why).
 *
 * One table for all rwlocks: a cache line of slots per CPU. A slot holds the
 * address of the lock one reader holds; or that address with its low bit
 * set, a trace left by a reader that has left (free, like 0). Readers on different
 * CPUs write different lines, so they do not pull one cache line back and
 * forth as they would on the lock's own reader count. A writer finds the
 * readers of its lock by reading every line in use. */
#ifndef OX_SYNC_RWLOCK_SLOTS_H
#define OX_SYNC_RWLOCK_SLOTS_H

#include <stdbool.h>

/* A slot's number; fits the held-lock record's 16-bit tag. */
typedef unsigned ox__rw_slot;

/* Takes a free slot in the calling CPU's line for lock, and returns true with
 * its number in *slot; false if that line is full. Sequentially consistent,
 * so that a load of the lock's state that follows it is ordered after it (the
 * writer's side is in ox__rw_slot_end). */
bool ox__rw_slot_take(const void *lock, ox__rw_slot *slot);

/* Frees slot if it still holds lock, leaving a trace (release: the
 * reader's reads happen-before a writer's acquire of the slot). Returns
 * false if a writer has moved this reader into the lock's count since
 * (rwlock.c). */
bool ox__rw_slot_leave(const void *lock, ox__rw_slot slot);

/* One past the highest slot any reader has used: where a writer's scan ends.
 * Sequentially consistent, and so are the loads in ox__rw_slot_holds: a
 * writer that reads them after marking the lock (in the state's single total
 * order) sees every slot taken before a reader read the state unmarked. */
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

/* Frees slot if it holds lock, for a writer moving that reader into the
 * lock's count; false if the reader left first. */
bool ox__rw_slot_claim(ox__rw_slot slot, const void *lock);

#endif
