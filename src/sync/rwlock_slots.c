/* rwlock_slots.c - the per-CPU reader slots (rwlock_slots.h). */
#define _GNU_SOURCE /* sched_getcpu */
#include "rwlock_slots.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

/* 64 lines of 8 slots: 4 KiB. CPUs beyond 64 share lines (correct, only
 * slower); a line full of held locks sends its readers to the count. */
enum { LINES = 64, SLOTS_PER_LINE = 8 };

typedef struct {
    _Alignas(64) _Atomic(uintptr_t) slot[SLOTS_PER_LINE];
} slot_line;

static slot_line table[LINES];

/* Set in a freed slot's lock address: a reader of that lock left it. */
#define LEFT ((uintptr_t)1)

/* Lines below this have been used: a writer reads only those. It only
 * grows, and is read far more often than written. */
static _Atomic(unsigned) lines_in_use;

unsigned ox__rw_slot_current_line(void)
{
    int cpu = sched_getcpu(); /* glibc reads it from rseq: no system call */
    return cpu < 0 ? 0 : (unsigned)cpu % LINES;
}

static void note_line_used(unsigned line)
{
    /* Seq_cst: ordered before the slot's take, so that a writer that misses
     * the take's line count misses the take too, and then the reader sees
     * the writer's mark (rwlock_slots.h). */
    unsigned seen = atomic_load_explicit(&lines_in_use, memory_order_seq_cst);
    while (seen <= line &&
           !atomic_compare_exchange_weak_explicit(&lines_in_use, &seen, line + 1,
                                                  memory_order_seq_cst, memory_order_seq_cst))
        ;
}

static _Atomic(uintptr_t) *slot_at(ox__rw_slot slot)
{
    return &table[slot / SLOTS_PER_LINE].slot[slot % SLOTS_PER_LINE];
}

bool ox__rw_slot_take(const void *lock, ox__rw_slot *slot)
{
    unsigned line = ox__rw_slot_current_line();
    note_line_used(line);
    /* Start where the lock's address points, so that readers of different
     * locks on one CPU rarely probe past each other. */
    unsigned first = (unsigned)((uintptr_t)lock / 64);
    for (unsigned i = 0; i < SLOTS_PER_LINE; i++) {
        ox__rw_slot s = line * SLOTS_PER_LINE + (first + i) % SLOTS_PER_LINE;
        _Atomic(uintptr_t) *p = slot_at(s);
        /* Relaxed peek: skip a held slot without a locked instruction. */
        uintptr_t free_slot = atomic_load_explicit(p, memory_order_relaxed);
        if ((free_slot == 0 || (free_slot & LEFT)) &&
            atomic_compare_exchange_strong_explicit(p, &free_slot, (uintptr_t)lock,
                                                    memory_order_seq_cst, memory_order_relaxed)) {
            *slot = s;
            return true;
        }
    }
    return false;
}

bool ox__rw_slot_leave(const void *lock, ox__rw_slot slot)
{
    uintptr_t held = (uintptr_t)lock;
    return atomic_compare_exchange_strong_explicit(slot_at(slot), &held, held | LEFT,
                                                   memory_order_release, memory_order_relaxed);
}

ox__rw_slot_seen ox__rw_slot_look(ox__rw_slot slot, const void *lock, unsigned scanners_line)
{
    _Atomic(uintptr_t) *p = slot_at(slot);
    uintptr_t seen = atomic_load_explicit(p, memory_order_seq_cst);
    if (seen == (uintptr_t)lock)
        return OX__RW_SLOT_HELD;
    if (seen != ((uintptr_t)lock | LEFT))
        return OX__RW_SLOT_NOTHING;
    /* Relaxed: the trace is a hint for the lock's mode and orders nothing.
     * A reader taking the slot meanwhile makes the clearing fail; it took it
     * after the load above, so it sees the writer's WRITE_LOCKED. */
    if (!atomic_compare_exchange_strong_explicit(p, &seen, 0, memory_order_relaxed,
                                                 memory_order_relaxed))
        return OX__RW_SLOT_NOTHING;
    return slot / SLOTS_PER_LINE != scanners_line ? OX__RW_SLOT_LEFT_ELSEWHERE
                                                  : OX__RW_SLOT_NOTHING;
}

ox__rw_slot ox__rw_slot_end(void)
{
    return atomic_load_explicit(&lines_in_use, memory_order_seq_cst) * SLOTS_PER_LINE;
}

bool ox__rw_slot_holds(ox__rw_slot slot, const void *lock)
{
    return atomic_load_explicit(slot_at(slot), memory_order_seq_cst) == (uintptr_t)lock;
}

bool ox__rw_slot_claim(ox__rw_slot slot, const void *lock)
{
    /* Acquire on failure: the reader left first, and its release in
     * ox__rw_slot_leave orders its reads before the writer's. On success
     * the reader still holds the lock; the count it gives back when it
     * leaves (a release) orders them instead. */
    uintptr_t held = (uintptr_t)lock;
    return atomic_compare_exchange_strong_explicit(slot_at(slot), &held, 0, memory_order_acquire,
                                                   memory_order_acquire);
}
