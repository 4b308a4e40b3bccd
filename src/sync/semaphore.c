/* semaphore.c - ox_semaphore, a fair counting semaphore (Tokio's batch
 * semaphore, in C: permits in one atomic word, a FIFO of waiters under a
 * lock).
 *
 * The state word (ox_semaphore.state, a size_t):
 *   bits 2..   permits: free permits
 *   bit  1     CLOSED: acquires fail with OX_ECLOSED
 *   bit  0     WAITERS: the waiter list is not empty
 * Invariant (kept under the list's lock): WAITERS set => permits == 0.
 * A releaser hands permits to the queued waiters first and only the rest
 * goes to the word, and a waiter queues only after taking every free
 * permit. So a free permit means nobody waits, and the lock-free paths can
 * never overtake a queued waiter:
 *   acquire fast path: CAS permits -= n if permits >= n (never with WAITERS
 *                      set: permits is 0 then);
 *   release fast path: CAS permits += n if WAITERS is clear;
 * everything else runs under the list's lock. WAITERS changes only under
 * the lock, together with the list, so a releaser that sees it clear in its
 * CAS cannot strand a waiter: that waiter would have set it in the same
 * word before sleeping.
 *
 * Each waiter (a record on its own stack) asks for needed permits and has
 * remaining still to get; under the lock, releases decrease the head's
 * remaining and claim (unlink) it once it reaches 0. A waiter giving up
 * hands needed - remaining back through the same release path.
 */
#include "oxide/semaphore.h"

#include "../thread/wait_list.h"

#define WAITERS    ((size_t)1)
#define CLOSED     ((size_t)2)
#define PERMIT_ONE ((size_t)4)
#define FLAGS_MASK (WAITERS | CLOSED)

static inline size_t permits_of(size_t state)
{
    return state >> 2;
}

static inline bool is_closed(size_t state)
{
    return (state & CLOSED) != 0;
}

static inline bool has_waiters(size_t state)
{
    return (state & WAITERS) != 0;
}

/* Adding n permits would pass OX_SEMAPHORE_MAX_PERMITS. Written as a
 * subtraction: permits + n wraps for a huge n (a release of SIZE_MAX). */
static inline bool would_overflow(size_t state, size_t n)
{
    return n > OX_SEMAPHORE_MAX_PERMITS - permits_of(state);
}

typedef struct sem_waiter {
    ox__wait_node node; /* first: a node is cast back to its record */
    size_t needed;      /* permits asked for */
    size_t remaining;   /* permits still to get; written under the lock */
    bool closed;        /* claimed by ox_semaphore_close */
} sem_waiter;

/* A cancellation point: an aborted task's acquire returns OX_ECANCELED. */
static const ox__wait_site semaphore_site = {.what = "semaphore", .cancellable = true};

int ox_semaphore_init(ox_semaphore *s, size_t permits)
{
    if (permits > OX_SEMAPHORE_MAX_PERMITS)
        return OX_EINVAL;
    /* Relaxed: ordered by whatever publishes s to other threads. */
    atomic_store_explicit(&s->state, permits << 2, memory_order_relaxed);
    atomic_store_explicit(&s->waiters.lock, OX__WAIT_UNLOCKED, memory_order_relaxed);
    s->waiters.head = s->waiters.tail = NULL;
    return 0;
}

/* Returns 0 (taken), OX_EBUSY (not enough free) or OX_ECLOSED. */
static inline int try_take(ox_semaphore *s, size_t n)
{
    size_t state = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (is_closed(state))
            return OX_ECLOSED;
        if (permits_of(state) < n)
            return OX_EBUSY;
        /* Acquire: pairs with the release CAS in ox_semaphore_release (or
         * the lock's release, on the slow path): the releaser's writes
         * happen-before our use of the permits. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &state, state - n * PERMIT_ONE,
                                                  memory_order_acquire, memory_order_relaxed))
            return 0;
    }
}

int ox_semaphore_try_acquire(ox_semaphore *s, size_t n)
{
    if (n > OX_SEMAPHORE_MAX_PERMITS)
        return OX_EINVAL;
    return try_take(s, n);
}

/* Under the lock: gives n permits to the waiters, oldest first, claiming
 * each it completes onto *chain; the rest goes to the word, with WAITERS
 * set to whether the list is still non-empty. */
static void release_locked(ox_semaphore *s, size_t n, ox__wait_node **chain)
{
    ox__wait_node **tail = chain;
    while (*tail)
        tail = &(*tail)->next;
    while (n > 0 && s->waiters.head != NULL) {
        sem_waiter *w = (sem_waiter *)s->waiters.head;
        size_t give = n < w->remaining ? n : w->remaining;
        w->remaining -= give;
        n -= give;
        if (w->remaining == 0) {
            ox__wait_list_pop(&s->waiters);
            *tail = &w->node;
            tail = &w->node.next;
        }
    }
    size_t waiters = s->waiters.head != NULL ? WAITERS : 0;
    size_t state = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (would_overflow(state, n))
            ox_abort("ox_semaphore_release", "semaphore %p would hold more than %zu permits",
                     (void *)s, (size_t)OX_SEMAPHORE_MAX_PERMITS);
        size_t next = ((state & ~WAITERS) + n * PERMIT_ONE) | waiters;
        /* Release: the releaser's writes happen-before a fast-path
         * acquire's CAS that takes these permits. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &state, next, memory_order_release,
                                                  memory_order_relaxed))
            return;
    }
}

void ox_semaphore_release(ox_semaphore *s, size_t n)
{
    if (n == 0)
        return;
    size_t state = atomic_load_explicit(&s->state, memory_order_relaxed);
    while (!has_waiters(state)) {
        if (would_overflow(state, n))
            ox_abort("ox_semaphore_release", "semaphore %p would hold more than %zu permits",
                     (void *)s, (size_t)OX_SEMAPHORE_MAX_PERMITS);
        /* Release: pairs with the acquire CAS in try_take. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &state, state + n * PERMIT_ONE,
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
    ox__wait_node *chain = NULL;
    ox__wait_list_lock(&s->waiters);
    release_locked(s, n, &chain);
    ox__wait_list_unlock(&s->waiters);
    ox__wait_wake_chain(chain);
}

/* Under the lock: takes what is free, and queues w for the rest. Returns
 * 0 if all n were free (w not queued), OX_ECLOSED, OX_ECANCELED (an
 * aborted task that would have to wait: takes nothing), or OX_EBUSY
 * (queued). */
static int take_or_queue(ox_semaphore *s, sem_waiter *w)
{
    size_t state = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (is_closed(state))
            return OX_ECLOSED;
        size_t free = permits_of(state);
        if (free < w->needed && ox__park_cancelled())
            return OX_ECANCELED;
        size_t take = free < w->needed ? free : w->needed;
        size_t next =
            take == w->needed ? state - take * PERMIT_ONE : (state & FLAGS_MASK) | WAITERS;
        /* Acquire: as in try_take. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &state, next, memory_order_acquire,
                                                  memory_order_relaxed)) {
            w->remaining = w->needed - take;
            if (w->remaining == 0)
                return 0;
            ox__wait_list_push(&s->waiters, &w->node);
            return OX_EBUSY;
        }
    }
}

OX_COLD static int acquire_slow(ox_semaphore *s, size_t n, ox_instant deadline)
{
    sem_waiter w = {.needed = n, .remaining = n};
    ox__wait_node_init(&w.node);
    ox__wait_list_lock(&s->waiters);
    int rc = take_or_queue(s, &w);
    ox__wait_list_unlock(&s->waiters);
    if (rc != OX_EBUSY)
        return rc;
    rc = ox__wait_node_sleep(&w.node, deadline, &semaphore_site, s);
    if (rc != 0) {
        ox__wait_node *chain = NULL;
        ox__wait_list_lock(&s->waiters);
        bool queued = w.node.linked;
        if (queued) {
            ox__wait_list_remove(&s->waiters, &w.node);
            /* Hands on what we collected; also clears WAITERS if we were
             * the last waiter. */
            release_locked(s, w.needed - w.remaining, &chain);
        }
        ox__wait_list_unlock(&s->waiters);
        ox__wait_wake_chain(chain);
        if (queued)
            return rc;
        ox__wait_node_await_claim(&w.node, &semaphore_site, s);
    }
    /* Claimed: either every permit is ours, or close took back those we
     * had collected. The token's acquire orders the claimer's writes. */
    return w.closed ? OX_ECLOSED : 0;
}

int ox_semaphore_acquire_deadline(ox_semaphore *s, size_t n, ox_instant deadline)
{
    if (n > OX_SEMAPHORE_MAX_PERMITS)
        return OX_EINVAL;
    int rc = try_take(s, n);
    if (OX_LIKELY(rc != OX_EBUSY))
        return rc;
    return acquire_slow(s, n, deadline);
}

int ox_semaphore_acquire(ox_semaphore *s, size_t n)
{
    return ox_semaphore_acquire_deadline(s, n, OX_INSTANT_NEVER);
}

int ox_semaphore_acquire_timeout(ox_semaphore *s, size_t n, ox_nanos timeout)
{
    if (timeout < 0)
        return OX_EINVAL;
    return ox_semaphore_acquire_deadline(s, n, ox_instant_after(timeout));
}

size_t ox_semaphore_available(const ox_semaphore *s)
{
    /* Relaxed: a snapshot. */
    return permits_of(atomic_load_explicit(&s->state, memory_order_relaxed));
}

bool ox_semaphore_is_closed(const ox_semaphore *s)
{
    /* Acquire: pairs with the release in close, so a caller that sees
     * closed also sees what the closer wrote before closing. */
    return is_closed(atomic_load_explicit(&s->state, memory_order_acquire));
}

void ox_semaphore_close(ox_semaphore *s)
{
    ox__wait_list_lock(&s->waiters);
    ox__wait_node *chain = ox__wait_list_take_all(&s->waiters);
    size_t returned = 0;
    for (ox__wait_node *n = chain; n; n = n->next) {
        sem_waiter *w = (sem_waiter *)n;
        returned += w->needed - w->remaining; /* it leaves with none */
        w->closed = true;
    }
    size_t state = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        size_t next = ((state & ~WAITERS) | CLOSED) + returned * PERMIT_ONE;
        /* Release: pairs with the acquire in ox_semaphore_is_closed. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &state, next, memory_order_release,
                                                  memory_order_relaxed))
            break;
    }
    ox__wait_list_unlock(&s->waiters);
    ox__wait_wake_chain(chain);
}
