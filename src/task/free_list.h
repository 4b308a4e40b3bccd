/* free_list.h - free task records and stacks: a worker's own stash, and
 * chains of them shared by the workers under a lock (record.c, stack.c). */
#ifndef OX_TASK_FREE_LIST_H
#define OX_TASK_FREE_LIST_H

#include "../thread/spin.h"

#include <stdatomic.h>
#include <stddef.h>

/* What a free record or stack begins with: its link in a free list, and
 * when it heads a chain (a list cut off whole, below), the chain's length
 * and the next chain. */
typedef struct ox__chain_link {
    void *next;
    struct ox__chain_link *next_chain;
    unsigned chain_count;
} ox__chain_link;

/* A list of free records or stacks, linked through their first word: a
 * worker's own (record.c, stack.c). */
typedef struct ox__stash {
    void *head;
    unsigned count;
} ox__stash;

static inline void ox__stash_push(ox__stash *s, void *item)
{
    ((ox__chain_link *)item)->next = s->head;
    s->head = item;
    s->count++;
}

static inline void *ox__stash_pop(ox__stash *s)
{
    ox__chain_link *item = s->head;
    if (item != NULL) {
        s->head = item->next;
        s->count--;
    }
    return item;
}

/* Chains of free items, shared by the workers under a lock. A worker
 * moves a batch to or from it as one chain: the lock is held for a few
 * pointer writes, never while walking items. Walking 64 stacks' headers
 * (a cache miss each, on pages of their own) under the shared stack lock
 * made the other worker spin there for a tenth of skynet. */
typedef struct ox__chains {
    ox__chain_link *head;
    _Atomic size_t count; /* items in all chains: written under the lock, read as a hint */
} ox__chains;

static inline size_t ox__chains_count(const ox__chains *c)
{
    /* Relaxed: the lock orders its writes; readers outside it take a hint. */
    return atomic_load_explicit(&c->count, memory_order_relaxed);
}

/* Cuts the first n items of s (all, if it has fewer) off as a chain;
 * NULL if s is empty. Walks them: call it outside the lock. */
static inline ox__chain_link *ox__stash_cut(ox__stash *s, unsigned n)
{
    ox__chain_link *chain = s->head, *last = chain;
    if (chain == NULL || n == 0)
        return NULL;
    unsigned taken = 1;
    for (; taken < n && last->next != NULL; taken++)
        last = last->next;
    s->head = last->next;
    s->count -= taken;
    last->next = NULL;
    chain->chain_count = taken;
    return chain;
}

/* Makes the empty s hold chain (NULL: stays empty). */
static inline void ox__stash_fill(ox__stash *s, ox__chain_link *chain)
{
    s->head = chain;
    s->count = chain != NULL ? chain->chain_count : 0;
}

/* The caller holds c's lock, for the pushes and pops below. */
static inline void ox__chains_push(ox__chains *c, ox__chain_link *chain)
{
    chain->next_chain = c->head;
    c->head = chain;
    atomic_store_explicit(&c->count, ox__chains_count(c) + chain->chain_count,
                          memory_order_relaxed);
}

static inline ox__chain_link *ox__chains_pop(ox__chains *c)
{
    ox__chain_link *chain = c->head;
    if (chain != NULL) {
        c->head = chain->next_chain;
        atomic_store_explicit(&c->count, ox__chains_count(c) - chain->chain_count,
                              memory_order_relaxed);
    }
    return chain;
}

/* The first chain of c if c holds more than keep items, else NULL: what
 * an idle visit gives back (record.c, stack.c). Takes lock, which guards
 * c, unless the count (a hint) says there is nothing over keep. */
static inline ox__chain_link *ox__chains_pop_over(ox__spin *lock, ox__chains *c, size_t keep)
{
    if (ox__chains_count(c) <= keep)
        return NULL;
    ox__spin_lock(lock);
    ox__chain_link *chain = ox__chains_count(c) > keep ? ox__chains_pop(c) : NULL;
    ox__spin_unlock(lock);
    return chain;
}

/* One item off the first chain, the rest of which stays a chain; NULL if
 * c is empty. */
static inline void *ox__chains_pop_one(ox__chains *c)
{
    ox__chain_link *chain = ox__chains_pop(c);
    if (chain != NULL && chain->next != NULL) {
        ox__chain_link *rest = chain->next;
        rest->chain_count = chain->chain_count - 1;
        ox__chains_push(c, rest);
    }
    return chain;
}

#endif
