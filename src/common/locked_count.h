/* locked_count.h - a count that only the holders of one lock change, and
 * that others read without the lock as a hint (is there work, has
 * anything been drawn). A change is a load and a store, not an atomic
 * read-modify-write: the lock already orders the writers. */
#ifndef OX_COMMON_LOCKED_COUNT_H
#define OX_COMMON_LOCKED_COUNT_H

#include <stdatomic.h>
#include <stddef.h>

/* Relaxed, here and in the changes: a reader takes a hint, and whatever
 * it must see besides the count is ordered by the code that reads it
 * (the runtime's idle protocol, a retry under the lock). */
static inline size_t ox__locked_count(const _Atomic size_t *count)
{
    return atomic_load_explicit(count, memory_order_relaxed);
}

/* The caller holds the lock. */
static inline void ox__locked_count_add(_Atomic size_t *count, size_t n)
{
    atomic_store_explicit(count, ox__locked_count(count) + n, memory_order_relaxed);
}

/* The caller holds the lock. */
static inline void ox__locked_count_sub(_Atomic size_t *count, size_t n)
{
    atomic_store_explicit(count, ox__locked_count(count) - n, memory_order_relaxed);
}

#endif
