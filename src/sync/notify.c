/* notify.c - ox_notify, Tokio's Notify: one stored permit, FIFO waiters.
 *
 * The state word (ox_notify.state, 64 bits):
 *   bits 2..63  generation: ox_notify_waiters calls so far (a ticket
 *               remembers it; 2^62 calls never wrap in practice)
 *   bits 0..1   EMPTY     no permit, nobody waits
 *               WAITING   the waiter list is not empty (no permit then)
 *               NOTIFIED  a permit is stored (nobody waits then)
 * WAITING is entered and left only under the list's lock, together with
 * the list, and so is every generation change. Outside the lock only
 * EMPTY <-> NOTIFIED moves (notify_one storing a permit, a waiter taking
 * it), by CAS. So a notify_one that sees EMPTY and stores a permit cannot
 * strand a waiter: that waiter would have moved the word to WAITING first,
 * under the lock, and then our CAS would fail.
 *
 * Happens-before: storing a permit is a release CAS, taking it an acquire
 * CAS. A waiter picked from the list gets the notifier's writes through the
 * lock and its node's unpark token. A generation change is a release
 * write; a ticket's check loads it with acquire.
 */
#include "oxide/notify.h"

#include "../thread/wait_list.h"

#define EMPTY          ((uint64_t)0)
#define WAITING        ((uint64_t)1)
#define NOTIFIED       ((uint64_t)2)
#define STATE_MASK     ((uint64_t)3)
#define GENERATION_ONE ((uint64_t)4)

static inline uint64_t state_of(uint64_t s)
{
    return s & STATE_MASK;
}

static inline uint64_t generation_of(uint64_t s)
{
    return s >> 2;
}

static inline uint64_t with_state(uint64_t s, uint64_t state)
{
    return (s & ~STATE_MASK) | state;
}

/* A cancellation point: an aborted task's wait returns OX_ECANCELED. */
static const ox__wait_site notify_site = {.what = "notify", .cancellable = true};

/* Tries to take the stored permit: true if taken. *s is the word, updated. */
static inline bool take_permit(ox_notify *n, uint64_t *s)
{
    while (state_of(*s) == NOTIFIED) {
        /* Acquire: pairs with the release CAS that stored the permit. */
        if (atomic_compare_exchange_weak_explicit(&n->state, s, with_state(*s, EMPTY),
                                                  memory_order_acquire, memory_order_relaxed))
            return true;
    }
    return false;
}

void ox_notify_one(ox_notify *n)
{
    uint64_t s = atomic_load_explicit(&n->state, memory_order_relaxed);
    while (state_of(s) != WAITING) {
        /* Release: pairs with the acquire in take_permit. */
        if (atomic_compare_exchange_weak_explicit(&n->state, &s, with_state(s, NOTIFIED),
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
    ox__wait_list_lock(&n->waiters);
    s = atomic_load_explicit(&n->state, memory_order_relaxed);
    ox__wait_node *picked = NULL;
    if (state_of(s) == WAITING) {
        picked = ox__wait_list_pop(&n->waiters);
        if (n->waiters.head == NULL)
            /* Relaxed: WAITING is left only under the lock, so nothing else
             * writes the word now; the unlock orders it. */
            atomic_store_explicit(&n->state, with_state(s, EMPTY), memory_order_relaxed);
    } else {
        /* The waiters left (timed out) meanwhile: store the permit. */
        while (!atomic_compare_exchange_weak_explicit(&n->state, &s, with_state(s, NOTIFIED),
                                                      memory_order_release, memory_order_relaxed))
            ;
    }
    ox__wait_list_unlock(&n->waiters);
    if (picked)
        picked->next = NULL; /* a chain of one */
    ox__wait_wake_chain(picked);
}

void ox_notify_waiters(ox_notify *n)
{
    ox__wait_list_lock(&n->waiters);
    uint64_t s = atomic_load_explicit(&n->state, memory_order_relaxed);
    ox__wait_node *chain = NULL;
    if (state_of(s) == WAITING) {
        chain = ox__wait_list_take_all(&n->waiters);
        /* Release: pairs with the acquire loads of a ticket's check. Only
         * lock holders write a WAITING word. */
        atomic_store_explicit(&n->state, with_state(s + GENERATION_ONE, EMPTY),
                              memory_order_release);
    } else {
        /* A permit may be stored or taken concurrently: add, keep it. */
        atomic_fetch_add_explicit(&n->state, GENERATION_ONE, memory_order_release);
    }
    ox__wait_list_unlock(&n->waiters);
    ox__wait_wake_chain(chain);
}

int ox_notify_try_wait(ox_notify *n)
{
    uint64_t s = atomic_load_explicit(&n->state, memory_order_relaxed);
    return take_permit(n, &s) ? 0 : OX_EBUSY;
}

ox_notified ox_notify_notified(ox_notify *n)
{
    /* Acquire: pairs with the release bump in notify_waiters. A ticket
     * that already counts a notify_waiters call will not be woken by it,
     * so the condition the caller checks next must show what that call's
     * notifier wrote before it. */
    uint64_t s = atomic_load_explicit(&n->state, memory_order_acquire);
    return (ox_notified){n, generation_of(s)};
}

/* Returns 0 (notified) or the parking layer's code. */
static int wait_generation(ox_notify *n, uint64_t generation, ox_instant deadline)
{
    /* Acquire: pairs with the release generation bump in notify_waiters. */
    uint64_t s = atomic_load_explicit(&n->state, memory_order_acquire);
    if (take_permit(n, &s) || generation_of(s) != generation)
        return 0;
    ox__wait_node node;
    ox__wait_node_init(&node);
    ox__wait_list_lock(&n->waiters);
    s = atomic_load_explicit(&n->state, memory_order_relaxed);
    for (;;) {
        if (generation_of(s) != generation || take_permit(n, &s)) {
            ox__wait_list_unlock(&n->waiters); /* the lock orders the bump */
            return 0;
        }
        if (ox__park_cancelled()) {
            ox__wait_list_unlock(&n->waiters);
            return OX_ECANCELED; /* nothing to take, and an aborted task does not wait */
        }
        if (state_of(s) == WAITING)
            break;
        /* EMPTY -> WAITING. Relaxed: under the lock; the permit (the only
         * other writer) is re-checked if the CAS fails. */
        if (atomic_compare_exchange_weak_explicit(&n->state, &s, with_state(s, WAITING),
                                                  memory_order_relaxed, memory_order_relaxed))
            break;
    }
    ox__wait_list_push(&n->waiters, &node);
    ox__wait_list_unlock(&n->waiters);
    int rc = ox__wait_node_sleep(&node, deadline, &notify_site, n);
    if (rc == 0)
        return 0;
    ox__wait_list_lock(&n->waiters);
    if (node.linked) {
        ox__wait_list_remove(&n->waiters, &node);
        if (n->waiters.head == NULL) {
            s = atomic_load_explicit(&n->state, memory_order_relaxed);
            /* Relaxed: a WAITING word is written only under the lock. */
            atomic_store_explicit(&n->state, with_state(s, EMPTY), memory_order_relaxed);
        }
        ox__wait_list_unlock(&n->waiters);
        return rc;
    }
    ox__wait_list_unlock(&n->waiters);
    /* Picked just as the wait ended: the notification is ours, not lost. */
    ox__wait_node_await_claim(&node, &notify_site, n);
    return 0;
}

int ox_notified_wait_deadline(const ox_notified *t, ox_instant deadline)
{
    return wait_generation(t->notify, t->generation, deadline);
}

int ox_notified_wait(const ox_notified *t)
{
    return ox_notified_wait_deadline(t, OX_INSTANT_NEVER);
}

int ox_notified_wait_timeout(const ox_notified *t, ox_nanos timeout)
{
    if (timeout < 0)
        return OX_EINVAL;
    return ox_notified_wait_deadline(t, ox_instant_after(timeout));
}

int ox_notify_wait_deadline(ox_notify *n, ox_instant deadline)
{
    ox_notified t = ox_notify_notified(n);
    return ox_notified_wait_deadline(&t, deadline);
}

int ox_notify_wait(ox_notify *n)
{
    return ox_notify_wait_deadline(n, OX_INSTANT_NEVER);
}

int ox_notify_wait_timeout(ox_notify *n, ox_nanos timeout)
{
    if (timeout < 0)
        return OX_EINVAL;
    return ox_notify_wait_deadline(n, ox_instant_after(timeout));
}
