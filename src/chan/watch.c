/* watch.c - the watch channel (Tokio's watch, in C).
 *
 * One lock (the waiter list's) guards the value, its version, the counts
 * and two waiter lists: receivers waiting for a change (the lock's own
 * list) and the sender waiting for the receivers to go (closed_waiters,
 * also guarded by that lock). The value is copied in and out under the
 * lock, so a reader never sees half of a send. version counts the sends;
 * a receiver's seen is the version it last marked. Every change wakes all
 * change waiters: each of them wants to know.
 */
#include "oxide/watch.h"

#include "oxide/panic.h"

#include "../panic/unwind.h"
#include "../thread/wait_list.h"
#include "lock_chan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TX_MAGIC   0x6f787774u /* "oxwt" */
#define RX_MAGIC   0x6f787772u /* "oxwr" */
#define DEAD_MAGIC 0xdeadc4a1u

typedef struct watch watch;
typedef ox__lchan_handle handle; /* a receiver's seen: the version last marked seen */

struct ox_watch_sender {
    handle h;
};
struct ox_watch_receiver {
    handle h;
};

static const ox__lchan_kind tx_kind = {TX_MAGIC, DEAD_MAGIC, "watch sender"};
static const ox__lchan_kind rx_kind = {RX_MAGIC, DEAD_MAGIC, "watch receiver"};

struct watch {
    ox__wait_list lock;           /* guards all below; its list: change waiters */
    ox__wait_list closed_waiters; /* the sender in ox_watch_closed; lock unused */
    size_t elem_size;
    void (*clone)(void *dst, const void *src);
    void (*destroy)(void *value);
    uint64_t version;
    bool sender_alive;
    size_t receivers;
    handle *graveyard;
    unsigned char *value;
};

/* Cancellation points: an aborted task's wait returns OX_ECANCELED. */
static const ox__wait_site changed_site = {.what = "watch changed", .cancellable = true};
static const ox__wait_site closed_site = {.what = "watch closed", .cancellable = true};

static inline watch *sender_chan(const ox_watch_sender *tx, const char *function)
{
    return ox__lchan_of(tx ? &tx->h : NULL, &tx_kind, function);
}

static inline watch *receiver_chan(const ox_watch_receiver *rx, const char *function)
{
    return ox__lchan_of(rx ? &rx->h : NULL, &rx_kind, function);
}

static void free_memory(void *channel)
{
    watch *c = channel;
    ox__lchan_free_graveyard(c->graveyard);
    free(c->value);
    free(c);
}

static void free_channel(watch *c)
{
    if (c->destroy) {
        /* A destroy that panics: the memory is freed as the panic leaves. */
        ox_cleanup_push(free_memory, c);
        c->destroy(c->value);
        ox__cleanup_pop_own(free_memory, c, false);
    }
    free_memory(c);
}

int ox_watch_with(const ox_watch_options *o, ox_watch_sender **tx, ox_watch_receiver **rx)
{
    if (!o || !tx || !rx || o->elem_size == 0 || !o->initial)
        return OX_EINVAL;
    watch *c = calloc(1, sizeof *c);
    handle *t = malloc(sizeof *t), *r = malloc(sizeof *r);
    unsigned char *value = malloc(o->elem_size);
    if (!c || !t || !r || !value) {
        free(c);
        free(t);
        free(r);
        free(value);
        return ENOMEM;
    }
    memcpy(value, o->initial, o->elem_size);
    c->value = value;
    c->elem_size = o->elem_size;
    c->clone = o->clone;
    c->destroy = o->destroy;
    c->sender_alive = true;
    c->receivers = 1;
    *t = (handle){.magic = TX_MAGIC};
    *r = (handle){.magic = RX_MAGIC};
    t->chan = r->chan = c; /* owned by its handles from now on */
    /* Published to other threads by whatever hands them the handles. */
    *tx = (ox_watch_sender *)t;
    *rx = (ox_watch_receiver *)r;
    return 0;
}

int ox_watch(size_t elem_size, const void *initial, ox_watch_sender **tx, ox_watch_receiver **rx)
{
    ox_watch_options o = {.elem_size = elem_size, .initial = initial};
    return ox_watch_with(&o, tx, rx);
}

/* Under the lock: a receiver that has seen `seen`. */
static ox_watch_receiver *new_receiver(watch *c, uint64_t seen, const char *function)
{
    handle *h = ox__lchan_handle_new(&c->graveyard, c, RX_MAGIC, seen, function);
    c->receivers++;
    return (ox_watch_receiver *)h;
}

ox_watch_receiver *ox_watch_subscribe(ox_watch_sender *tx)
{
    watch *c = sender_chan(tx, __func__);
    ox__wait_list_lock(&c->lock);
    ox_watch_receiver *rx = new_receiver(c, c->version, __func__);
    ox__wait_list_unlock(&c->lock);
    return rx;
}

ox_watch_receiver *ox_watch_receiver_clone(ox_watch_receiver *rx)
{
    watch *c = receiver_chan(rx, __func__);
    ox__wait_list_lock(&c->lock);
    ox_watch_receiver *copy = new_receiver(c, rx->h.seen, __func__);
    ox__wait_list_unlock(&c->lock);
    return copy;
}

void ox_watch_sender_drop(ox_watch_sender *tx)
{
    watch *c = sender_chan(tx, __func__);
    ox__wait_list_lock(&c->lock);
    ox__lchan_bury(&c->graveyard, &tx->h, DEAD_MAGIC);
    c->sender_alive = false;
    ox__wait_node *chain = ox__wait_list_take_all(&c->lock);
    bool last = c->receivers == 0;
    ox__wait_list_unlock(&c->lock);
    ox__wait_wake_chain(chain);
    if (last)
        free_channel(c);
}

void ox_watch_receiver_drop(ox_watch_receiver *rx)
{
    watch *c = receiver_chan(rx, __func__);
    ox__wait_list_lock(&c->lock);
    ox__lchan_bury(&c->graveyard, &rx->h, DEAD_MAGIC);
    ox__wait_node *chain = NULL;
    if (--c->receivers == 0)
        chain = ox__wait_list_take_all(&c->closed_waiters);
    bool last = c->receivers == 0 && !c->sender_alive;
    ox__wait_list_unlock(&c->lock);
    ox__wait_wake_chain(chain);
    if (last)
        free_channel(c);
}

/* Under the lock: the value changed; returns the waiters to wake. */
static ox__wait_node *changed_locked(watch *c)
{
    c->version++;
    return ox__wait_list_take_all(&c->lock);
}

/* Under the lock: stores value, counts the change, unlocks and wakes the
 * change waiters. */
static void store_and_unlock(watch *c, const void *value)
{
    memcpy(c->value, value, c->elem_size);
    ox__wait_node *chain = changed_locked(c);
    ox__wait_list_unlock(&c->lock);
    ox__wait_wake_chain(chain);
}

typedef struct storing {
    watch *c;
    const void *value;
} storing;

/* The old value's destroy panicked: it counts as destroyed, and the send
 * completes as the panic leaves (as in Tokio, where the old value is
 * dropped once the new one is in). */
static void store_on_unwind(void *arg)
{
    storing *s = arg;
    store_and_unlock(s->c, s->value);
}

/* Under the lock: replaces the value, moving the old one into *old or
 * destroying it; then unlocks and wakes. */
static void replace_and_unlock(watch *c, const void *value, void *old)
{
    if (old) {
        memcpy(old, c->value, c->elem_size);
    } else if (c->destroy) {
        storing s = {c, value};
        ox_cleanup_push(store_on_unwind, &s);
        c->destroy(c->value);
        ox__cleanup_pop_own(store_on_unwind, &s, false);
    }
    store_and_unlock(c, value);
}

int ox_watch_send(ox_watch_sender *tx, const void *value)
{
    watch *c = sender_chan(tx, __func__);
    if (!value)
        ox_abort(__func__, "NULL value");
    ox__wait_list_lock(&c->lock);
    if (c->receivers == 0) {
        ox__wait_list_unlock(&c->lock);
        return OX_EDISCONNECTED;
    }
    replace_and_unlock(c, value, NULL);
    return 0;
}

void ox_watch_send_replace(ox_watch_sender *tx, const void *value, void *old)
{
    watch *c = sender_chan(tx, __func__);
    if (!value)
        ox_abort(__func__, "NULL value");
    ox__wait_list_lock(&c->lock);
    replace_and_unlock(c, value, old);
}

void ox_watch_send_modify(ox_watch_sender *tx, void (*modify)(void *value, void *arg), void *arg)
{
    watch *c = sender_chan(tx, __func__);
    if (!modify)
        ox_abort(__func__, "NULL modify function");
    ox__wait_list_lock(&c->lock);
    /* A modify that panics leaves its changes, counted as no change and
     * announced to nobody, and the channel usable (Tokio's send_modify). */
    ox_cleanup_push(ox__wait_list_unlock_on_unwind, &c->lock);
    modify(c->value, arg);
    ox__cleanup_pop_own(ox__wait_list_unlock_on_unwind, &c->lock, false);
    ox__wait_node *chain = changed_locked(c);
    ox__wait_list_unlock(&c->lock);
    ox__wait_wake_chain(chain);
}

/* Under the lock. */
static void copy_out(watch *c, void *out)
{
    if (!c->clone) {
        memcpy(out, c->value, c->elem_size);
        return;
    }
    ox_cleanup_push(ox__wait_list_unlock_on_unwind, &c->lock); /* a clone may panic */
    c->clone(out, c->value);
    ox__cleanup_pop_own(ox__wait_list_unlock_on_unwind, &c->lock, false);
}

static void borrow(ox_watch_receiver *rx, void *out, bool update, const char *function)
{
    watch *c = receiver_chan(rx, function);
    if (!out)
        ox_abort(function, "NULL buffer");
    ox__wait_list_lock(&c->lock);
    copy_out(c, out);
    if (update)
        rx->h.seen = c->version;
    ox__wait_list_unlock(&c->lock);
}

void ox_watch_borrow(ox_watch_receiver *rx, void *out)
{
    borrow(rx, out, false, __func__);
}

void ox_watch_borrow_and_update(ox_watch_receiver *rx, void *out)
{
    borrow(rx, out, true, __func__);
}

void ox_watch_sender_borrow(ox_watch_sender *tx, void *out)
{
    watch *c = sender_chan(tx, __func__);
    if (!out)
        ox_abort(__func__, "NULL buffer");
    ox__wait_list_lock(&c->lock);
    copy_out(c, out);
    ox__wait_list_unlock(&c->lock);
}

int ox_watch_has_changed(ox_watch_receiver *rx, bool *changed)
{
    watch *c = receiver_chan(rx, __func__);
    if (changed == NULL)
        return OX_EINVAL;
    ox__wait_list_lock(&c->lock);
    bool unseen = rx->h.seen != c->version;
    bool gone = !c->sender_alive;
    ox__wait_list_unlock(&c->lock);
    *changed = unseen;
    return !unseen && gone ? OX_EDISCONNECTED : 0;
}

/* Under the lock: 0 (and marked seen) if a version rx has not seen is
 * there, OX_EDISCONNECTED if none will come, else OX_EEMPTY. */
static int poll_changed(void *arg)
{
    handle *rx = arg;
    const watch *c = rx->chan;
    if (rx->seen != c->version) {
        rx->seen = c->version;
        return 0;
    }
    return c->sender_alive ? OX_EEMPTY : OX_EDISCONNECTED;
}

static int changed_until(ox_watch_receiver *rx, ox_instant deadline, const char *function)
{
    watch *c = receiver_chan(rx, function);
    return ox__wait_list_wait_for(&c->lock, &c->lock, deadline, &changed_site, c, poll_changed,
                                  &rx->h);
}

int ox_watch_changed_deadline(ox_watch_receiver *rx, ox_instant deadline)
{
    return changed_until(rx, deadline, __func__);
}

int ox_watch_changed(ox_watch_receiver *rx)
{
    return changed_until(rx, OX_INSTANT_NEVER, __func__);
}

int ox_watch_changed_timeout(ox_watch_receiver *rx, ox_nanos timeout)
{
    if (timeout < 0)
        return OX_EINVAL;
    return changed_until(rx, ox_instant_after(timeout), __func__);
}

/* Under the lock: 0 once every receiver is gone, else OX_EEMPTY. */
static int poll_closed(void *arg)
{
    const watch *c = arg;
    return c->receivers == 0 ? 0 : OX_EEMPTY;
}

int ox_watch_closed_deadline(ox_watch_sender *tx, ox_instant deadline)
{
    watch *c = sender_chan(tx, __func__);
    return ox__wait_list_wait_for(&c->lock, &c->closed_waiters, deadline, &closed_site, c,
                                  poll_closed, c);
}

int ox_watch_closed(ox_watch_sender *tx)
{
    return ox_watch_closed_deadline(tx, OX_INSTANT_NEVER);
}

bool ox_watch_is_closed(ox_watch_sender *tx)
{
    return ox_watch_receiver_count(tx) == 0;
}

size_t ox_watch_receiver_count(ox_watch_sender *tx)
{
    watch *c = sender_chan(tx, __func__);
    ox__wait_list_lock(&c->lock);
    size_t n = c->receivers;
    ox__wait_list_unlock(&c->lock);
    return n;
}
