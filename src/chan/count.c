/* count.c - the zero-size flavor: a bounded or unbounded channel whose
 * messages have no bytes (Rust's Sender<()>, Go's chan struct{}). Such a
 * message is only the fact that it was sent, so the channel is a counter:
 * no slots, no blocks, no memory that grows with the messages. (A
 * rendezvous channel of zero-size messages stays with zero.c, which buffers
 * nothing anyway.)
 *
 * State word: tail holds count << SHIFT | MARK.
 *   count  the messages buffered (at most the capacity; an "unbounded"
 *          channel stops at SIZE_MAX >> 1, which no program reaches);
 *   MARK   the channel is disconnected (either side: the side still there
 *          is the one that sees it).
 * A send adds ONE by CAS unless marked or full; a receive subtracts ONE
 * unless the count is 0 (marked and 0: disconnected and drained). Every
 * change is a read-modify-write of the one word, so a receive that takes a
 * count synchronises with every send before it (a release sequence): a
 * "done" signal carries the sender's writes to the receiver, as a message
 * with bytes does. Blocking and waking use the same wakers as array.c.
 */
#include "chan_internal.h"

#include "../panic/unwind.h"

#define SHIFT     1
#define MARK      ((size_t)1)
#define ONE       ((size_t)1 << SHIFT)
#define MAX_COUNT (SIZE_MAX >> SHIFT)

enum { NOT_READY = -1 };

static inline size_t count_of(size_t state)
{
    return state >> SHIFT;
}

/* The count at which a send blocks. */
static inline size_t limit(const ox__chan *c)
{
    return c->cap < MAX_COUNT ? c->cap : MAX_COUNT;
}

/* One attempt: 0, OX_EDISCONNECTED or NOT_READY (full). */
static int try_send(ox__chan *c)
{
    /* SeqCst (load and CAS): decisions are made on values in the single
     * total order, which the waker protocol needs (a waiter's re-check after
     * registering, ox__sync_waker_notify); the successful CAS also releases
     * what the sender wrote before it (see the top of the file). */
    size_t s = atomic_load_explicit(&c->tail, memory_order_seq_cst);
    size_t max = limit(c);
    OX__CHAOS_POINT(); /* count seen, not claimed yet */
    for (;;) {
        if (s & MARK)
            return OX_EDISCONNECTED;
        if (count_of(s) >= max)
            return NOT_READY;
        if (atomic_compare_exchange_weak_explicit(&c->tail, &s, s + ONE, memory_order_seq_cst,
                                                  memory_order_seq_cst)) {
            ox__chan_notify_receivers(c);
            return 0;
        }
    }
}

/* One attempt: 0, OX_EDISCONNECTED (drained) or NOT_READY (empty). */
static int try_recv(ox__chan *c)
{
    /* SeqCst: as in try_send; the successful CAS acquires the senders'
     * writes. */
    size_t s = atomic_load_explicit(&c->tail, memory_order_seq_cst);
    OX__CHAOS_POINT(); /* count seen, not taken yet */
    for (;;) {
        if (count_of(s) == 0)
            return (s & MARK) ? OX_EDISCONNECTED : NOT_READY;
        if (atomic_compare_exchange_weak_explicit(&c->tail, &s, s - ONE, memory_order_seq_cst,
                                                  memory_order_seq_cst)) {
            ox__sync_waker_notify(&c->senders_w);
            return 0;
        }
    }
}

/* Whether a blocked sender / receiver should retry instead of sleeping. */
static bool can_send(const ox__chan *c)
{
    return !ox__count_is_full(c) || ox__count_is_disconnected(c);
}

static bool can_recv(const ox__chan *c)
{
    return !ox__count_is_empty(c) || ox__count_is_disconnected(c);
}

/* The blocking loop shared by both directions: try, back off, then sleep on
 * w until woken or the deadline, and try again. */
static int run(ox__chan *c, int (*attempt)(ox__chan *c), int would_block, bool block,
               ox_instant deadline, ox__sync_waker *w, bool (*ready)(const ox__chan *c),
               const ox__wait_site *site, const char *file, int line)
{
    for (;;) {
        ox__backoff b = {0};
        for (;;) {
            int rc = attempt(c);
            if (rc != NOT_READY)
                return rc;
            if (!block)
                return would_block;
            if (ox__backoff_is_completed(&b))
                break;
            ox__backoff_snooze_partner(&b);
        }
        int why = ox__chan_must_not_wait(deadline); /* cancelled, or too late */
        if (why != 0)
            return why;
        ox__chan_wait(c, w, ready, deadline, site, file, line);
    }
}

int ox__count_send(ox__chan *c, bool block, ox_instant deadline)
{
    return run(c, try_send, OX_EFULL, block, deadline, &c->senders_w, can_send, &ox__site_send,
               NULL, 0);
}

int ox__count_recv(ox__chan *c, bool block, ox_instant deadline, const char *file, int line)
{
    return run(c, try_recv, OX_EEMPTY, block, deadline, &c->receivers_w, can_recv, &ox__site_recv,
               file, line);
}

size_t ox__count_len(const ox__chan *c)
{
    /* SeqCst: a snapshot in the same order as the operations. */
    return count_of(atomic_load_explicit(&c->tail, memory_order_seq_cst));
}

bool ox__count_is_empty(const ox__chan *c)
{
    return ox__count_len(c) == 0;
}

bool ox__count_is_full(const ox__chan *c)
{
    return c->cap != OX_UNBOUNDED && ox__count_len(c) >= limit(c);
}

bool ox__count_is_disconnected(const ox__chan *c)
{
    /* SeqCst: pairs with the SeqCst mark in ox__count_disconnect, for a
     * blocked caller's re-check. */
    return atomic_load_explicit(&c->tail, memory_order_seq_cst) & MARK;
}

/* The last receiver is gone and the word is marked: nobody can receive
 * what is buffered (Rust std drops those messages here), so the count goes
 * to zero, one message per destructor call. Only this thread changes the
 * word now (senders' CASes fail on the mark; the senders' last drop may set
 * the mark again, an RMW that changes nothing), so each step is a plain
 * store made before the call: if a destructor panics, the unwind cleanup
 * goes on from the next message, as array.c's discard does. */
static void discard(ox__chan *c);

static void discard_rest(void *c)
{
    discard(c);
}

static void discard(ox__chan *c)
{
    if (!c->destroy) {
        /* Relaxed: see above; len reports an empty channel from now on. */
        atomic_store_explicit(&c->tail, MARK, memory_order_relaxed);
        return;
    }
    ox_cleanup_push(discard_rest, c);
    /* Relaxed: see above (the final free reads it after an acq_rel
     * handshake). */
    size_t s;
    while (count_of(s = atomic_load_explicit(&c->tail, memory_order_relaxed)) > 0) {
        atomic_store_explicit(&c->tail, s - ONE, memory_order_relaxed);
        c->destroy(NULL);
    }
    ox__cleanup_pop_own(discard_rest, c, false);
}

void ox__count_disconnect(ox__chan *c, bool receivers_gone)
{
    /* SeqCst: ordered with every send and receive CAS: each came before the
     * mark (and counts) or fails on it. */
    size_t old = atomic_fetch_or_explicit(&c->tail, MARK, memory_order_seq_cst);
    if (!(old & MARK)) {
        ox__sync_waker_disconnect(&c->senders_w);
        ox__sync_waker_disconnect(&c->receivers_w);
    }
    if (receivers_gone)
        discard(c);
}
