/* waker.c - waiter lists and the wait/claim protocol; see waker.h. */
#include "waker.h"

#include "../common/dekker.h"
#include "../thread/wait_spin.h"

#include <stddef.h>

static _Thread_local char self_anchor;

const void *ox__self_of(const ox__lot_waiter *unit)
{
    /* A task is its own unit: two tasks on one worker thread must be able
     * to rendezvous with each other. */
    return unit != NULL ? (const void *)unit : &self_anchor;
}

const void *ox__self(void)
{
    return ox__self_of(ox__park_unit_get());
}

OX_COLD void ox__list_lock_slow(_Atomic uint32_t *lock)
{
    ox__backoff b = {0};
    while (!ox__list_try_lock(lock))
        ox__backoff_snooze(&b);
}

/* ---- waiting ---- */

/* Waiting for the token of a claimer that already chose us is never
 * cancelled: the claimer is finishing the hand-off right now. */
static const ox__wait_site token_site = {.what = "channel hand-off"};

/* Whether a task's claimer has woken it (ox__ctx_wake). Acquire: pairs
 * with the release store there. */
static bool task_woken(ox__ctx *cx)
{
    return atomic_load_explicit(&cx->parker.state, memory_order_acquire) == OX__PARK_NOTIFIED;
}

void ox__ctx_await_token(ox__ctx *cx, const ox__wait_site *site, const void *object)
{
    (void)site;
    /* The claimer wakes us right after its CAS (and a memcpy, for a
     * rendezvous): spin briefly so that it need not make a futex call. */
    for (int i = 0; i < 200; i++) {
        if (atomic_load_explicit(&cx->parker.state, memory_order_relaxed) == OX__PARK_NOTIFIED)
            break;
        ox__cpu_relax();
    }
    if (!cx->task) {
        (void)ox__parker_park(&cx->parker, OX_INSTANT_NEVER, &token_site, object);
        return;
    }
    while (!task_woken(cx))
        (void)ox__park_wait(&cx->parker.state, OX__PARK_EMPTY, OX_INSTANT_NEVER, &token_site,
                            object);
}

uintptr_t ox__ctx_wait_until(ox__ctx *cx, ox_instant deadline, const ox__wait_site *site,
                             const void *object)
{
    uintptr_t sel;
    /* A task goes straight to parking: the task that would answer may be
     * queued behind it on this very worker, and parking is a task switch,
     * not a system call. */
    if (cx->task)
        goto park;
    /* Spin before sleeping: a futex wake costs the waker microseconds,
     * while the other side usually answers much sooner (wait_spin.h). The
     * spin polls at every pause: only a claimer writes select, so a
     * read-only poll of our own context costs no cache traffic, and the
     * claim is seen within one pause. */
    ox__wait_spin spin;
    ox__wait_spin_begin(&spin, deadline);
    do {
        /* Acquire: pairs with the claimer's acq_rel CAS. */
        sel = atomic_load_explicit(&cx->select, memory_order_acquire);
        if (sel != OX__SEL_WAITING) {
            ox__wait_spin_end(&spin, true);
            goto selected;
        }
    } while (ox__wait_spin_poll(&spin));
    ox__wait_spin_end(&spin, false);
    /* Then a few yields, as crossbeam's Backoff: with more threads than
     * CPUs (four senders and a receiver on two) the thread that would
     * answer may be waiting for our CPU, and a yield runs it without the
     * sleep and the wake's system call. chan_mpsc_bounded0 on a 2-vCPU AMD
     * Zen 5, 5 alternating rounds: 716-975 ns a message against 1 540-
     * 1 858 without them (crossbeam 922-1 087). The yields are load-aware
     * (park.h): one that lost the CPU for a slice ends them, and after a
     * slice lost to another process the thread's waits skip them for a
     * while, since under load a thread that yields sits behind the busy
     * ones while a sleeper's wake-up preempts them. Without that guard,
     * yields here made chan_mpsc_bounded0 under two busy loops take 3-40
     * us a message (29ecfcb); with it, 2.7-3.4 us against 2.3-3.7 without
     * yields (crossbeam 3.1-4.2). */
    ox__backoff yields = {.step = OX__BACKOFF_SPIN_LIMIT + 1}; /* past its spin: yields only */
    while (!ox__backoff_is_completed(&yields) &&
           (deadline.ns == OX_INSTANT_NEVER.ns || ox_instant_now().ns < deadline.ns)) {
        ox__backoff_snooze(&yields);
        /* Acquire: pairs with the claimer's acq_rel CAS, as in the spin. */
        sel = atomic_load_explicit(&cx->select, memory_order_acquire);
        if (sel != OX__SEL_WAITING)
            goto selected;
    }
park:
    for (;;) {
        sel = atomic_load_explicit(&cx->select, memory_order_acquire);
        if (sel != OX__SEL_WAITING)
            goto selected;
        if (ox__park_cancelled() ||
            (deadline.ns != OX_INSTANT_NEVER.ns && ox_instant_now().ns >= deadline.ns)) {
            sel = ox__ctx_try_abort(cx);
            if (sel == OX__SEL_ABORTED)
                return sel;
            goto selected;
        }
        if (cx->task) {
            /* Woken, timed out, cancelled or woken by another's stale wake
             * (ox__ctx_wake): the word and the loop tell which. */
            (void)ox__park_wait(&cx->parker.state, OX__PARK_EMPTY, deadline, site, object);
            if (task_woken(cx))
                break;
        } else if (ox__parker_park(&cx->parker, deadline, site, object) == 0) {
            break;
        }
    }
    /* Only a claimer wakes us, after its CAS: relaxed, because the wake's
     * acquire (of the word, or of the token) already made the CAS's value
     * visible. */
    return atomic_load_explicit(&cx->select, memory_order_relaxed);
selected:
    if (sel != OX__SEL_ABORTED)
        ox__ctx_await_token(cx, site, object);
    return sel;
}

/* ---- plain wakers ---- */

static inline bool is_listed(const ox__waiter *e)
{
    return e->next != e;
}

static void unlink_waiter(ox__waker *w, ox__waiter *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        w->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        w->tail = e->prev;
    e->next = e->prev = e; /* not listed */
}

void ox__waker_register(ox__waker *w, ox__waiter *e, ox__ctx *cx, void *packet)
{
    e->cx = cx;
    e->packet = packet;
    e->next = NULL;
    e->prev = w->tail;
    if (w->tail)
        w->tail->next = e;
    else
        w->head = e;
    w->tail = e;
}

void ox__waker_unregister(ox__waker *w, ox__waiter *e)
{
    if (is_listed(e))
        unlink_waiter(w, e);
}

ox__waiter *ox__waker_try_select(ox__waker *w)
{
    const void *self = ox__self();
    for (ox__waiter *e = w->head; e; e = e->next) {
        if (e->cx->thread != self && ox__ctx_try_claim(e->cx, (uintptr_t)e)) {
            unlink_waiter(w, e);
            return e;
        }
    }
    return NULL;
}

bool ox__waker_can_select(const ox__waker *w)
{
    const void *self = ox__self();
    for (const ox__waiter *e = w->head; e; e = e->next) {
        /* Relaxed: a hint; the claim itself is a CAS. */
        if (e->cx->thread != self &&
            atomic_load_explicit(&e->cx->select, memory_order_relaxed) == OX__SEL_WAITING)
            return true;
    }
    return false;
}

void ox__waker_disconnect(ox__waker *w)
{
    /* The waiters stay listed, so each stays valid (it must take our lock to
     * unregister) while we walk on past it. */
    for (ox__waiter *e = w->head; e; e = e->next) {
        if (ox__ctx_try_claim(e->cx, OX__SEL_DISCONNECTED))
            ox__ctx_wake(e->cx);
    }
}

/* ---- sync wakers ---- */

static inline void update_is_empty(ox__sync_waker *w)
{
    /* Relaxed: the word is only written under the lock we hold. */
    uint32_t observed =
        atomic_load_explicit(&w->is_empty, memory_order_relaxed) & OX__WAKER_OBSERVED;
    /* SeqCst, the store half of a store-then-load pair (dekker.h): see
     * ox__sync_waker_notify. */
    OX__DEKKER_STORE(&w->is_empty, (w->waker.head == NULL ? OX__WAKER_NO_WAITER : 0u) | observed);
}

void ox__sync_waker_register(ox__sync_waker *w, ox__waiter *e, ox__ctx *cx)
{
    ox__list_lock(&w->lock);
    ox__waker_register(&w->waker, e, cx, NULL);
    update_is_empty(w);
    ox__list_unlock(&w->lock);
}

void ox__sync_waker_unregister(ox__sync_waker *w, ox__waiter *e)
{
    ox__list_lock(&w->lock);
    ox__waker_unregister(&w->waker, e);
    update_is_empty(w);
    ox__list_unlock(&w->lock);
}

void ox__sync_waker_notify_slow(ox__sync_waker *w)
{
    ox__list_lock(&w->lock);
    ox__waiter *e = NULL;
    if (w->waker.head) {
        e = ox__waker_try_select(&w->waker);
        update_is_empty(w);
    }
    ox__list_unlock(&w->lock);
    /* e is unlinked and claimed by us: its owner waits for this token before
     * its stack frame goes, so e and its context are still valid here. */
    if (e)
        ox__ctx_wake(e->cx);
}

void ox__sync_waker_disconnect(ox__sync_waker *w)
{
    ox__list_lock(&w->lock);
    ox__waker_disconnect(&w->waker);
    update_is_empty(w);
    ox__list_unlock(&w->lock);
}
