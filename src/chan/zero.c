/* zero.c - the rendezvous flavor (capacity 0; crossbeam's and Rust std's
 * mpmc/zero.rs).
 *
 * State: one spin lock guards two waiter lists (senders waiting with their
 * message, receivers waiting with their buffer) and the disconnected flag
 * (tail != 0). A send that finds a waiting receiver claims it, copies the
 * message straight into the receiver's buffer (its packet) and unparks it; a
 * receive that finds a waiting sender copies out of the sender's buffer the
 * same way. Otherwise the caller registers itself with its own buffer as the
 * packet and waits: whoever claims it does the copy before the unpark, and
 * the waiter does not return before that unpark (waker.h), so the copy
 * always targets a live stack frame, and a send that returns 0 has had its
 * value taken. A channel of zero-size messages works the same way with
 * nothing to copy (its buffers may be NULL).
 */
#include "chan_internal.h"

#include <string.h>

void ox__zero_lock(ox__chan *c)
{
    ox__list_lock(OX__ZERO_LOCK(c));
}

void ox__zero_unlock(ox__chan *c)
{
    ox__list_unlock(OX__ZERO_LOCK(c));
}

/* memcpy, except that a zero-size message may come with NULL buffers
 * (memcpy's pointers must be valid even for 0 bytes). */
static inline void copy_packet(const ox__chan *c, void *dst, const void *src)
{
    if (c->elem_size != 0)
        memcpy(dst, src, c->elem_size);
}

bool ox__zero_is_disconnected(const ox__chan *c)
{
    /* Relaxed: written and read under the lock (read without it only as a
     * hint). */
    return atomic_load_explicit(&c->tail, memory_order_relaxed) != 0;
}

/* Blocks as the registered waiter e of list w until claimed, disconnected or
 * the deadline; returns 0 (the partner did the copy), OX_EDISCONNECTED,
 * OX_ETIMEDOUT or OX_ECANCELED. Called with the lock held; returns without it. */
static int wait_as(ox__chan *c, ox__waker *w, ox__waiter *e, ox__ctx *cx, ox_instant deadline,
                   const ox__wait_site *site)
{
    /* A sender now waits: a receiver could take its value, so a loop
     * watching the receivers' event fd should look (event.c). Relaxed:
     * the word is written under the lock we hold. */
    bool observed =
        w == OX__ZERO_SENDERS(c) &&
        (atomic_load_explicit(&c->receivers_w.is_empty, memory_order_relaxed) & OX__WAKER_OBSERVED);
    ox__zero_unlock(c);
    if (observed)
        ox__chan_event_signal(c);
    uintptr_t sel = ox__ctx_wait_until(cx, deadline, site, c);
    if (sel == (uintptr_t)e)
        return 0; /* claimed and unlinked by the partner, who copied */
    ox__zero_lock(c);
    ox__waker_unregister(w, e);
    ox__zero_unlock(c);
    if (sel == OX__SEL_DISCONNECTED)
        return OX_EDISCONNECTED;
    return ox__park_cancelled() ? OX_ECANCELED : OX_ETIMEDOUT;
}

/* With the lock held and no partner waiting: the code to return instead of
 * waiting (unlocking first), or 0 if the caller should wait. would_block is
 * OX_EFULL for a sender, OX_EEMPTY for a receiver. */
static int cannot_wait(ox__chan *c, bool block, ox_instant deadline, int would_block)
{
    int rc = 0;
    if (ox__zero_is_disconnected(c))
        rc = OX_EDISCONNECTED;
    else if (!block)
        rc = would_block;
    else
        rc = ox__chan_must_not_wait(deadline);
    if (rc != 0)
        ox__zero_unlock(c);
    return rc;
}

int ox__zero_send(ox__chan *c, const void *msg, bool block, ox_instant deadline)
{
    ox__zero_lock(c);
    ox__waiter *r = ox__waker_try_select(OX__ZERO_RECEIVERS(c));
    if (r) {
        ox__zero_unlock(c);
        copy_packet(c, r->packet, msg);
        /* Release (inside the wake): the copy happens-before the receiver
         * returns with it. */
        ox__ctx_wake(r->cx);
        return 0;
    }
    int rc = cannot_wait(c, block, deadline, OX_EFULL);
    if (rc != 0)
        return rc;
    ox__ctx cx;
    ox__ctx_init(&cx, OX__ZERO_LOCK(c));
    ox__waiter e;
    /* The packet is read-only for a sender's waiter (receivers copy out of
     * it); the list's field is not const because receivers' packets are
     * written. A union drops the const without an integer round trip. */
    union {
        const void *in;
        void *packet;
    } m = {.in = msg};
    ox__waker_register(OX__ZERO_SENDERS(c), &e, &cx, m.packet);
    return wait_as(c, OX__ZERO_SENDERS(c), &e, &cx, deadline, &ox__site_send);
}

int ox__zero_recv(ox__chan *c, void *out, bool block, ox_instant deadline, const char *file,
                  int line)
{
    ox__zero_lock(c);
    ox__waiter *s = ox__waker_try_select(OX__ZERO_SENDERS(c));
    if (s) {
        ox__zero_unlock(c);
        copy_packet(c, out, s->packet);
        /* Release: our read of the sender's buffer is done before it may
         * reuse it. */
        ox__ctx_wake(s->cx);
        return 0;
    }
    int rc = cannot_wait(c, block, deadline, OX_EEMPTY);
    if (rc != 0)
        return rc;
    ox__ctx cx;
    ox__ctx_init(&cx, OX__ZERO_LOCK(c));
    ox__waiter e;
    ox__waker_register(OX__ZERO_RECEIVERS(c), &e, &cx, out);
    ox__park_note_lock_site(c, file, line);
    return wait_as(c, OX__ZERO_RECEIVERS(c), &e, &cx, deadline, &ox__site_recv);
}

void ox__zero_disconnect(ox__chan *c)
{
    ox__zero_lock(c);
    if (!ox__zero_is_disconnected(c)) {
        atomic_store_explicit(&c->tail, 1, memory_order_relaxed);
        ox__waker_disconnect(OX__ZERO_SENDERS(c));
        ox__waker_disconnect(OX__ZERO_RECEIVERS(c));
    }
    ox__zero_unlock(c);
}
