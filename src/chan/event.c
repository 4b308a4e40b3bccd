/* event.c - a receiver's event fd: a descriptor that a foreign event loop
 * (epoll, GLib, libuv) polls, readable while the channel has something to
 * receive (ox_receiver_event_fd in oxide/chan.h).
 *
 * The fd is an eventfd and event_set says whether it is set. Senders that
 * may have made the channel non-empty set it once (exchange event_set 0 ->
 * 1, then write); a try_recv that finds the channel empty clears it (read,
 * then event_set = 0) and then looks at the channel again, setting it anew
 * if something came meanwhile. All three steps are seq_cst, as is every
 * send's claim and the receivers' emptiness check, so no wake-up is lost:
 *   - a sender whose exchange saw 1 (set by someone before the clear's
 *     store of 0) made its message visible before that exchange, so the
 *     clearing receiver's re-check, after its store, sees the message;
 *   - a sender whose exchange saw 0 writes the fd after it: readable.
 * A fd that is readable with nothing to receive is possible (the message
 * went to another receiver) and harmless: the loop's try_recv finds it
 * empty, which clears it.
 *
 * Channels that never asked pay nothing more: senders already load the
 * receivers' waker word after each send (to see whether anyone waits);
 * OX__WAKER_OBSERVED in that word sends them to the slow path.
 */
#include "chan_internal.h"

#include "../common/dekker.h"
#include "../sys/sys.h"

/* Whether a receiver has something to take now: a message, a disconnect,
 * or (rendezvous) a sender waiting with its value. SeqCst loads in the
 * flavors' checks (see the top of the file). */
static bool can_take(ox__chan *c)
{
    switch (c->flavor) {
    case OX__FLAVOR_ARRAY:
        return !ox__array_is_empty(c) || ox__array_is_disconnected(c);
    case OX__FLAVOR_LIST:
        return !ox__list_is_empty(c) || ox__list_is_disconnected(c);
    case OX__FLAVOR_COUNT:
        return !ox__count_is_empty(c) || ox__count_is_disconnected(c);
    default: {
        ox__zero_lock(c);
        bool r = ox__waker_can_select(OX__ZERO_SENDERS(c)) || ox__zero_is_disconnected(c);
        ox__zero_unlock(c);
        return r;
    }
    }
}

void ox__chan_event_signal(ox__chan *c)
{
    /* SeqCst: see the top of the file. */
    if (atomic_exchange_explicit(&c->event_set, 1, memory_order_seq_cst) == 0)
        ox__sys_event_set(c->event_fd);
}

void ox__chan_event_rearm(ox__chan *c)
{
    ox__sys_event_clear(c->event_fd);
    /* SeqCst: see the top of the file. */
    OX__DEKKER_STORE(&c->event_set, 0);
    if (can_take(c))
        ox__chan_event_signal(c);
}

void ox__chan_notify_receivers_slow(ox__chan *c, uint32_t v)
{
    if (v & OX__WAKER_OBSERVED)
        ox__chan_event_signal(c);
    if (!(v & OX__WAKER_NO_WAITER))
        ox__sync_waker_notify_slow(&c->receivers_w);
}

int ox_receiver_event_fd(ox_receiver *rx, int *fd)
{
    ox__chan *c = ox__receiver_chan(rx, __func__);
    if (fd == NULL)
        return OX_EINVAL;
    ox__sync_waker *w = &c->receivers_w;
    if (ox__chan_observed(c)) {
        *fd = c->event_fd;
        return 0;
    }
    /* Opened outside the lock (a system call), closed again if another
     * receiver installed one first. */
    int e;
    int rc = ox__sys_event_open(&e);
    if (rc != 0)
        return rc;
    ox__list_lock(&w->lock); /* the rendezvous flavor's channel lock too */
    /* Relaxed: the word is only written under this lock. */
    uint32_t v = atomic_load_explicit(&w->is_empty, memory_order_relaxed);
    bool first = !(v & OX__WAKER_OBSERVED);
    if (first) {
        c->event_fd = e;
        atomic_store_explicit(&c->event_set, 0, memory_order_relaxed);
        /* SeqCst: publishes event_fd (a release) to senders and to
         * ox__chan_observed; and orders it before our re-check below
         * against the senders' claim-then-load (ox__chan_notify_receivers). */
        OX__DEKKER_STORE(&w->is_empty, v | OX__WAKER_OBSERVED);
    }
    ox__list_unlock(&w->lock);
    if (!first) {
        ox__sys_event_close(e);
        *fd = c->event_fd;
        return 0;
    }
    /* A send before our store did not see the flag: look ourselves. */
    if (can_take(c))
        ox__chan_event_signal(c);
    *fd = e;
    return 0;
}
