/* free_list.h - free task records and stacks: a worker's own stash, and
 * chains of them shared by the workers under a lock (record.c, stack.c). */
#ifndef OX_TASK_FREE_LIST_H
#define OX_TASK_FREE_LIST_H

#include "../common/locked_count.h"
#include "../thread/spin.h"

#include <stdatomic.h>
#include <stdbool.h>
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
    _Atomic size_t count; /* items in all chains (locked_count.h) */
} ox__chains;

static inline size_t ox__chains_count(const ox__chains *c)
{
    return ox__locked_count(&c->count);
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
    ox__locked_count_add(&c->count, chain->chain_count);
}

static inline ox__chain_link *ox__chains_pop(ox__chains *c)
{
    ox__chain_link *chain = c->head;
    if (chain != NULL) {
        c->head = chain->next_chain;
        ox__locked_count_sub(&c->count, chain->chain_count);
    }
    return chain;
}

/* Whether c holds more than keep items: what an idle visit gives back
 * (record.c, stack.c). A hint without c's lock. */
static inline bool ox__chains_over(const ox__chains *c, size_t keep)
{
    return ox__chains_count(c) > keep;
}

/* The first chain of c if it holds more than keep items, else NULL. Takes
 * lock, which guards c, unless the hint says there is nothing over keep. */
static inline ox__chain_link *ox__chains_pop_over(ox__spin *lock, ox__chains *c, size_t keep)
{
    if (!ox__chains_over(c, keep))
        return NULL;
    ox__spin_lock(lock);
    ox__chain_link *chain = ox__chains_over(c, keep) ? ox__chains_pop(c) : NULL;
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
