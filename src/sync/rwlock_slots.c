/* rwlock_slots.c - the per-CPU reader slots (rwlock_slots.h). */
#define _GNU_SOURCE /* sched_getcpu */
#include "rwlock_slots.h"

#include "../sys/sys.h"
#include "../thread/park.h"
#include "../unit/unit.h"
#include "oxide/rwlock.h"

#include <sched.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

/* 64 lines of 8 slots: 4 KiB. CPUs beyond 64 share lines (correct, only
 * slower); a line full of held locks sends its readers to the count. Then
 * 4096 own lines (rwlock.h: 256 KiB of zeroes, touched only as threads
 * take them): a thread beyond those, or a full line, sends its readers to
 * the count. Their tags end below 2^15, for the held-lock record's 16 bits. */
enum { LINES = 64, SLOTS_PER_LINE = 8, OWN_LINES = 4096 };
_Static_assert(OWN_LINES * 8 <= 65536, "own slots' tags fit 16 bits");
_Static_assert(sizeof(ox__rw_own_line) == 64 && offsetof(ox__rw_own_line, slot) == 8,
               "an own line is one cache line of 8 words, the first its count of leaves");

typedef struct {
    _Alignas(64) _Atomic(uintptr_t) slot[SLOTS_PER_LINE];
} slot_line;

static slot_line table[LINES];
ox__rw_own_line ox__rw_own_lines[OWN_LINES];
ox__rw_own_waiting_table ox__rw_own_waiting;

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

/* ---- own lines ---- */

/* Own lines below this have been given to a thread: a writer reads those.
 * It only grows. */
static _Atomic(unsigned) own_lines_in_use;

/* Lines whose threads have ended, for the next threads to take. Guarded by
 * a spin lock: a thread takes it twice in its life at most. */
static atomic_flag free_lines_lock = ATOMIC_FLAG_INIT;
static unsigned free_lines[OWN_LINES];
static unsigned free_line_count;

/* The calling thread's own line plus one; 0 before it has one, and
 * NO_LINE_LEFT once it found none. The record's rw_own_tag says the same
 * to the inline read (0 for both of those). */
enum { NO_LINE_LEFT = OWN_LINES + 1 };
static _Thread_local unsigned my_line_plus_one OX__TLS_FAST;

static void lock_free_lines(void)
{
    /* Acquire and release (below): the list and its count are handed from
     * holder to holder. */
    while (atomic_flag_test_and_set_explicit(&free_lines_lock, memory_order_acquire))
        sched_yield();
}

static void unlock_free_lines(void)
{
    atomic_flag_clear_explicit(&free_lines_lock, memory_order_release);
}

static unsigned adopt_line(void)
{
    lock_free_lines();
    unsigned line = NO_LINE_LEFT;
    if (free_line_count > 0) {
        line = free_lines[--free_line_count] + 1;
    } else {
        unsigned used = atomic_load_explicit(&own_lines_in_use, memory_order_relaxed);
        if (used < OWN_LINES) {
            /* Seq_cst, before this thread's first take in its order: a
             * writer whose fence comes after the take reads a count that
             * covers the line (ox__rw_own_slots_used). */
            atomic_store_explicit(&own_lines_in_use, used + 1, memory_order_seq_cst);
            line = used + 1;
        }
    }
    unlock_free_lines();
    my_line_plus_one = line;
    if (line != NO_LINE_LEFT) {
        ox__unwind_current()->rw_own_tag = ox__rw_own_tag(line - 1, 0);
        ox__unit_exit_arm(); /* give the line back when the thread ends */
    }
    return line;
}

/* At the end of the thread: its line goes to the next thread. Slots that
 * readers still hold (a task that moved to another worker) stay held until
 * those readers leave them; the next owner skips them. */
static void release_line(bool check_locks)
{
    (void)check_locks;
    unsigned line = my_line_plus_one;
    my_line_plus_one = 0;
    if (line == 0 || line == NO_LINE_LEFT)
        return;
    ox__unwind_current()->rw_own_tag = 0;
    lock_free_lines();
    free_lines[free_line_count++] = line - 1;
    unlock_free_lines();
}

__attribute__((constructor)) static void register_release_line(void)
{
    ox__unit_exit_register(OX__UNIT_EXIT_READ_SLOTS, release_line);
    /* A fork while another thread holds the list's lock would leave the
     * child's copy locked, or half updated: the forking thread holds it
     * across the fork instead. */
    ox__sys_atfork(lock_free_lines, unlock_free_lines, unlock_free_lines);
}

bool ox__rw_own_slot_take(const void *lock, uint32_t *tag)
{
    unsigned line = my_line_plus_one;
    if (OX_UNLIKELY(line == 0))
        line = adopt_line();
    if (OX_UNLIKELY(line == NO_LINE_LEFT))
        return false;
    for (unsigned i = 0; i < OX__RW_OWN_SLOTS_PER_LINE; i++) {
        _Atomic(uintptr_t) *slot = ox__rw_own_slot(ox__rw_own_tag(line - 1, i));
        /* As the inline take (rwlock.h), which says why. */
        if (atomic_load_explicit(slot, memory_order_acquire) == 0) {
            atomic_store_explicit(slot, (uintptr_t)lock, memory_order_release);
            *tag = ox__rw_own_tag(line - 1, i);
            return true;
        }
    }
    return false;
}

void ox__rw_own_left(uint32_t tag)
{
    /* Release: a writer that reads the new count (acquire) sees the
     * slot's store. */
    ox__rw_own_line *line = &ox__rw_own_lines[tag / 8];
    atomic_fetch_add_explicit(&line->leaves, 1, memory_order_release);
    ox__park_wake_all(&line->leaves);
}

void ox__rw_own_wait_begin(const void *lock)
{
    /* Relaxed: the fence that the caller makes next orders it. */
    atomic_fetch_add_explicit(ox__rw_own_waiting_for(lock), 1, memory_order_relaxed);
}

void ox__rw_own_wait_end(const void *lock)
{
    /* Relaxed: a leave that still sees the count only wakes for nothing. */
    atomic_fetch_sub_explicit(ox__rw_own_waiting_for(lock), 1, memory_order_relaxed);
}

int ox__rw_own_slot_wait(uint32_t tag, const void *lock, ox_instant deadline,
                         const struct ox__wait_site *site)
{
    ox__rw_own_line *line = &ox__rw_own_lines[tag / 8];
    for (;;) {
        /* Acquire: pairs with the leave's release increment; read before
         * the slot, so a leave after this load changes the word the wait
         * compares. */
        uint32_t seen = atomic_load_explicit(&line->leaves, memory_order_acquire);
        if (!ox__rw_own_slot_holds(tag, lock))
            return 0;
        if (ox__park_wait(&line->leaves, seen, deadline, site, lock) == OX_ETIMEDOUT)
            return OX_ETIMEDOUT;
    }
}

unsigned ox__rw_own_slots_used(void)
{
    return atomic_load_explicit(&own_lines_in_use, memory_order_seq_cst) *
           OX__RW_OWN_SLOTS_PER_LINE;
}

bool ox__rw_own_slot_holds(uint32_t tag, const void *lock)
{
    /* Acquire: a writer that finds the slot empty sees its reader's reads. */
    return atomic_load_explicit(ox__rw_own_slot(tag), memory_order_acquire) == (uintptr_t)lock;
}

/* ---- the CPUs' lines, and any slot ---- */

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
