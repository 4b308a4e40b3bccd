/* wait_list.h - a lock and a FIFO list of blocked waiters, for the
 * primitives that hand something to waiters in order (the semaphore,
 * Notify, watch, broadcast): the shape of Tokio's intrusive waiter lists.
 *
 * A waiter puts an ox__wait_node on its own stack (inside a record of the
 * primitive's), links it under the list's lock and sleeps on the node's
 * parker (ox__parker: every wait goes through park.h). A waker unlinks the
 * node under the lock and so *claims* it: from then on it owes the node
 * exactly one unpark, made after it drops the lock (no system call under
 * the lock). The stack-lifetime rule: a waiter whose wait ends any other
 * way (timeout, or a cancellation code from the parking layer) takes the
 * lock; if its node is still linked it unlinks it itself and leaves; if
 * not, it was claimed, so it waits for the claimer's unpark
 * (ox__wait_node_await_claim) before its frame may go. Claimed nodes are
 * chained through their next pointers into a wake list, woken with
 * ox__wait_wake_chain after the unlock.
 *
 * The lock is a three-state futex lock (as ox_mutex, without poisoning or
 * held-lock records: it is held only for a few pointer writes and copies,
 * never while blocking on anything else), on ox__park_wait.
 */
#ifndef OX_WAIT_LIST_H
#define OX_WAIT_LIST_H

#include "oxide/wait_list.h"

#include "park.h"

#include <stddef.h>

typedef struct ox__wait_node {
    struct ox__wait_node *next, *prev;
    ox__parker parker; /* one unpark, by whoever claims the node */
    bool linked;       /* on the list; read and written under the lock */
} ox__wait_node;

#define OX__WAIT_UNLOCKED  0u
#define OX__WAIT_LOCKED    1u
#define OX__WAIT_CONTENDED 2u /* held, and someone may sleep on the word */

void ox__wait_list_lock_slow(ox__wait_list *l);

static inline void ox__wait_list_lock(ox__wait_list *l)
{
    uint32_t expected = OX__WAIT_UNLOCKED;
    /* Acquire: pairs with the release swap in ox__wait_list_unlock. */
    if (!atomic_compare_exchange_strong_explicit(&l->lock, &expected, OX__WAIT_LOCKED,
                                                 memory_order_acquire, memory_order_relaxed))
        ox__wait_list_lock_slow(l);
}

static inline void ox__wait_list_unlock(ox__wait_list *l)
{
    /* Release: the list and the primitive's state written under the lock
     * happen-before the next holder's acquire. */
    if (atomic_exchange_explicit(&l->lock, OX__WAIT_UNLOCKED, memory_order_release) ==
        OX__WAIT_CONTENDED)
        ox__park_wake_one(&l->lock);
}

/* Caller holds the lock. A fresh node: no token, not linked. */
static inline void ox__wait_node_init(ox__wait_node *n)
{
    n->next = n->prev = NULL;
    atomic_init(&n->parker.state, OX__PARK_EMPTY);
    n->linked = false;
}

/* Caller holds the lock. */
void ox__wait_list_push(ox__wait_list *l, ox__wait_node *n);
void ox__wait_list_remove(ox__wait_list *l, ox__wait_node *n);

/* Caller holds the lock. Unlinks the oldest node (the caller claims it) and
 * returns it, or NULL. */
ox__wait_node *ox__wait_list_pop(ox__wait_list *l);

/* Caller holds the lock. Unlinks every node, claiming them all; returns
 * them as a wake chain (oldest first). */
ox__wait_node *ox__wait_list_take_all(ox__wait_list *l);

/* After the unlock: unparks every node of a chain of claimed nodes. */
void ox__wait_wake_chain(ox__wait_node *chain);

/* The waiter, without the lock: sleeps until claimed (0) or until the
 * deadline or a cancellation ends the wait (the parking layer's code). On
 * a nonzero return the node may or may not have been claimed meanwhile:
 * take the lock and look at linked. */
int ox__wait_node_sleep(ox__wait_node *n, ox_instant deadline, const ox__wait_site *site,
                        const void *object);

/* The waiter found its node claimed after a failed sleep: waits for the
 * claimer's unpark (it comes right after the claimer's unlock). Never
 * cancelled, whatever site says: the hand-off is under way. */
void ox__wait_node_await_claim(ox__wait_node *n, const ox__wait_site *site, const void *object);

/* An unwind cleanup (ox_cleanup_push) around a user callback that runs
 * under the lock (a channel's clone, a watch's modify function): if the
 * callback panics, the lock is released as the panic leaves, instead of
 * staying held for good. list is the ox__wait_list. */
void ox__wait_list_unlock_on_unwind(void *list);

/* A condition-variable-shaped wait for primitives whose state the lock
 * guards (watch, broadcast). The caller holds lock's lock and found
 * nothing to do: queues a node of its own on list (lock itself, or
 * another list guarded by the same lock), unlocks, sleeps, and locks
 * again. Returns 0 when claimed (something changed: look again), or the
 * parking layer's code (OX_ETIMEDOUT...) when the wait ended otherwise
 * with the node still queued (now removed: look once more, then report
 * it). The lock is held on return either way. At a cancellable site an
 * aborted task does not queue at all: OX_ECANCELED at once. */
int ox__wait_list_wait_locked(ox__wait_list *lock, ox__wait_list *list, ox_instant deadline,
                              const ox__wait_site *site, const void *object);

/* The whole wait of such a primitive: locks lock and calls poll(arg) under
 * it until poll returns anything but OX_EEMPTY ("nothing yet"), waiting on
 * list (as ox__wait_list_wait_locked) between calls; unlocks. Returns
 * poll's result, or, when a wait ended unclaimed (timeout, cancellation)
 * and poll still finds nothing, that wait's code. */
int ox__wait_list_wait_for(ox__wait_list *lock, ox__wait_list *list, ox_instant deadline,
                           const ox__wait_site *site, const void *object, int (*poll)(void *arg),
                           void *arg);

#endif
