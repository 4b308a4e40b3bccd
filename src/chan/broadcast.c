/* broadcast.c - the broadcast channel (Tokio's broadcast, in C).
 *
 * One lock (the waiter list's) guards the whole channel: the ring, the
 * positions, the counts and the waiter list. Messages are numbered from 0;
 * tail is the number the next send gets, and message p lives in slot
 * p % capacity until message p + capacity overwrites it. So the messages
 * kept are [oldest, tail) with oldest = max(tail - capacity, 0), and a
 * receiver whose next position is below oldest has lagged by the
 * difference.
 *
 * Each slot counts the receivers that still have to read its message
 * (rem, set to the number of receivers at send time: exactly those whose
 * position is at or before it). A reader that finds rem == 1 is the last
 * one and takes the channel's instance itself; other readers clone it. A
 * receiver being dropped counts itself off every message it has not read.
 * A message whose count reaches 0 without being taken, or which is
 * overwritten still held (its laggards skipped it), is destroyed.
 *
 * Waiting receivers are woken all at once by a send (each wants the
 * message) and by the last sender's drop.
 */
#include "oxide/broadcast.h"

#include "oxide/panic.h"

#include "../panic/unwind.h"
#include "../thread/wait_list.h"
#include "lock_chan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TX_MAGIC   0x6f786274u /* "oxbt" */
#define RX_MAGIC   0x6f786272u /* "oxbr" */
#define DEAD_MAGIC 0xdeadbca5u

typedef struct bcast bcast;
typedef ox__lchan_handle handle; /* a receiver's next: the next message it reads */

struct ox_broadcast_sender {
    handle h;
};
struct ox_broadcast_receiver {
    handle h;
};

static const ox__lchan_kind tx_kind = {TX_MAGIC, DEAD_MAGIC, "broadcast sender"};
static const ox__lchan_kind rx_kind = {RX_MAGIC, DEAD_MAGIC, "broadcast receiver"};

typedef struct slot {
    uint64_t pos; /* the message in the slot */
    size_t rem;   /* receivers that have yet to read it */
    bool full;    /* holds the channel's instance (not yet taken or destroyed) */
} slot;

struct bcast {
    ox__wait_list lock; /* guards everything below; its list holds waiting receivers */
    size_t elem_size, capacity;
    void (*clone)(void *dst, const void *src);
    void (*destroy)(void *elem);
    uint64_t tail;
    size_t senders, receivers;
    handle *graveyard;
    slot *slots;
    unsigned char *data; /* capacity * elem_size */
};

/* A cancellation point: an aborted task's recv returns OX_ECANCELED. */
static const ox__wait_site recv_site = {.what = "broadcast recv", .cancellable = true};

static inline void *slot_data(const bcast *c, uint64_t pos)
{
    return c->data + (size_t)(pos % c->capacity) * c->elem_size;
}

static inline uint64_t oldest_of(const bcast *c)
{
    return c->tail > c->capacity ? c->tail - c->capacity : 0;
}

static inline bcast *sender_chan(const ox_broadcast_sender *tx, const char *function)
{
    return ox__lchan_of(tx ? &tx->h : NULL, &tx_kind, function);
}

static inline bcast *receiver_chan(const ox_broadcast_receiver *rx, const char *function)
{
    return ox__lchan_of(rx ? &rx->h : NULL, &rx_kind, function);
}

static void free_channel(bcast *c)
{
    for (uint64_t p = oldest_of(c); p < c->tail; p++) {
        slot *s = &c->slots[p % c->capacity];
        if (s->full && c->destroy)
            c->destroy(slot_data(c, p));
    }
    ox__lchan_free_graveyard(c->graveyard);
    free(c->slots);
    free(c->data);
    free(c);
}

int ox_broadcast_with(const ox_broadcast_options *o, ox_broadcast_sender **tx,
                      ox_broadcast_receiver **rx)
{
    if (!o || !tx || !rx || o->elem_size == 0 || o->capacity == 0 ||
        o->capacity > SIZE_MAX / o->elem_size || o->capacity > SIZE_MAX / sizeof(slot))
        return OX_EINVAL;
    bcast *c = calloc(1, sizeof *c);
    handle *t = malloc(sizeof *t), *r = malloc(sizeof *r);
    if (c) {
        c->slots = calloc(o->capacity, sizeof(slot));
        c->data = malloc(o->capacity * o->elem_size);
    }
    if (!c || !t || !r || !c->slots || !c->data) {
        if (c) {
            free(c->slots);
            free(c->data);
        }
        free(c);
        free(t);
        free(r);
        return ENOMEM;
    }
    c->elem_size = o->elem_size;
    c->capacity = o->capacity;
    c->clone = o->clone;
    c->destroy = o->destroy;
    c->senders = c->receivers = 1;
    *t = (handle){.magic = TX_MAGIC};
    *r = (handle){.magic = RX_MAGIC};
    t->chan = r->chan = c; /* owned by its handles from now on */
    /* Published to other threads by whatever hands them the handles. */
    *tx = (ox_broadcast_sender *)t;
    *rx = (ox_broadcast_receiver *)r;
    return 0;
}

int ox_broadcast(size_t elem_size, size_t capacity, ox_broadcast_sender **tx,
                 ox_broadcast_receiver **rx)
{
    ox_broadcast_options o = {.elem_size = elem_size, .capacity = capacity};
    return ox_broadcast_with(&o, tx, rx);
}

ox_broadcast_sender *ox_broadcast_sender_clone(ox_broadcast_sender *tx)
{
    bcast *c = sender_chan(tx, __func__);
    ox__wait_list_lock(&c->lock);
    c->senders++;
    handle *h = ox__lchan_handle_new(&c->graveyard, c, TX_MAGIC, 0, __func__);
    ox__wait_list_unlock(&c->lock);
    return (ox_broadcast_sender *)h;
}

static ox_broadcast_receiver *subscribe(bcast *c, const char *function)
{
    ox__wait_list_lock(&c->lock);
    c->receivers++;
    /* Its next is tail: counted in no message sent before now. */
    handle *h = ox__lchan_handle_new(&c->graveyard, c, RX_MAGIC, c->tail, function);
    ox__wait_list_unlock(&c->lock);
    return (ox_broadcast_receiver *)h;
}

ox_broadcast_receiver *ox_broadcast_subscribe(ox_broadcast_sender *tx)
{
    return subscribe(sender_chan(tx, __func__), __func__);
}

ox_broadcast_receiver *ox_broadcast_resubscribe(ox_broadcast_receiver *rx)
{
    return subscribe(receiver_chan(rx, __func__), __func__);
}

void ox_broadcast_sender_drop(ox_broadcast_sender *tx)
{
    bcast *c = sender_chan(tx, __func__);
    ox__wait_list_lock(&c->lock);
    ox__lchan_bury(&c->graveyard, &tx->h, DEAD_MAGIC);
    ox__wait_node *chain = NULL;
    if (--c->senders == 0)
        chain = ox__wait_list_take_all(&c->lock); /* they drain, then see it */
    bool last = c->senders == 0 && c->receivers == 0;
    ox__wait_list_unlock(&c->lock);
    ox__wait_wake_chain(chain);
    if (last)
        free_channel(c);
}

/* A receiver leaving: it is counted off the messages from p on. */
typedef struct leaving {
    bcast *c;
    handle *h;
    uint64_t p;
} leaving;

static bool leave_and_unlock(leaving *l, bool guard);

/* A destroy panicked: the drop finishes as the panic leaves (a second
 * panicking destroy aborts, as any panic while panicking). */
static void leave_on_unwind(void *arg)
{
    leaving *l = arg;
    if (leave_and_unlock(l, false))
        free_channel(l->c);
}

/* Under the lock: counts the receiver off every message from l->p on
 * (p advances first, so a destroy that panics is not run again),
 * destroying those nobody else will read; buries it and unlocks. Returns
 * whether the channel is to be freed now. */
static bool leave_and_unlock(leaving *l, bool guard)
{
    bcast *c = l->c;
    guard = guard && c->destroy;
    if (guard)
        ox_cleanup_push(leave_on_unwind, l);
    while (l->p < c->tail) {
        uint64_t p = l->p++;
        slot *s = &c->slots[p % c->capacity];
        if (--s->rem == 0 && s->full) {
            s->full = false;
            if (c->destroy)
                c->destroy(slot_data(c, p));
        }
    }
    if (guard)
        ox__cleanup_pop_own(leave_on_unwind, l, false);
    ox__lchan_bury(&c->graveyard, l->h, DEAD_MAGIC);
    c->receivers--;
    bool last = c->senders == 0 && c->receivers == 0;
    ox__wait_list_unlock(&c->lock);
    return last;
}

void ox_broadcast_receiver_drop(ox_broadcast_receiver *rx)
{
    bcast *c = receiver_chan(rx, __func__);
    ox__wait_list_lock(&c->lock);
    uint64_t oldest = oldest_of(c);
    leaving l = {c, &rx->h, rx->h.next > oldest ? rx->h.next : oldest};
    if (leave_and_unlock(&l, true))
        free_channel(c);
}

/* Under the lock: puts msg in the next slot (for every receiver there is
 * now), unlocks and wakes the waiting receivers. */
static void publish_and_unlock(bcast *c, const void *msg)
{
    slot *s = &c->slots[c->tail % c->capacity];
    memcpy(slot_data(c, c->tail), msg, c->elem_size);
    s->pos = c->tail++;
    s->rem = c->receivers;
    s->full = true;
    ox__wait_node *chain = ox__wait_list_take_all(&c->lock);
    ox__wait_list_unlock(&c->lock);
    ox__wait_wake_chain(chain);
}

typedef struct publishing {
    bcast *c;
    const void *msg;
} publishing;

/* The destroy of the message being overwritten panicked: it counts as
 * destroyed, and the send completes as the panic leaves. */
static void publish_on_unwind(void *arg)
{
    publishing *p = arg;
    publish_and_unlock(p->c, p->msg);
}

int ox_broadcast_send(ox_broadcast_sender *tx, const void *msg)
{
    bcast *c = sender_chan(tx, __func__);
    if (!msg)
        ox_abort(__func__, "NULL message buffer");
    ox__wait_list_lock(&c->lock);
    if (c->receivers == 0) {
        ox__wait_list_unlock(&c->lock);
        return OX_EDISCONNECTED;
    }
    if (c->slots[c->tail % c->capacity].full && c->destroy) {
        /* Overwritten unread: its laggards will be told. */
        publishing p = {c, msg};
        ox_cleanup_push(publish_on_unwind, &p);
        c->destroy(slot_data(c, c->tail));
        ox__cleanup_pop_own(publish_on_unwind, &p, false);
    }
    publish_and_unlock(c, msg);
    return 0;
}

/* Under the lock: 0, OX_ELAGGED, OX_EDISCONNECTED, or OX_EEMPTY (nothing
 * yet, a sender lives). */
static int take_locked(bcast *c, handle *rx, void *out, uint64_t *missed)
{
    if (rx->next >= c->tail)
        return c->senders == 0 ? OX_EDISCONNECTED : OX_EEMPTY;
    uint64_t oldest = oldest_of(c);
    if (rx->next < oldest) {
        if (missed)
            *missed = oldest - rx->next;
        rx->next = oldest;
        return OX_ELAGGED;
    }
    slot *s = &c->slots[rx->next % c->capacity];
    void *data = slot_data(c, rx->next);
    if (s->rem == 1) {
        memcpy(out, data, c->elem_size); /* the last reader takes it */
        s->full = false;
    } else if (c->clone) {
        /* A clone that panics leaves the message unread (rem and next
         * unchanged) and the channel usable. */
        ox_cleanup_push(ox__wait_list_unlock_on_unwind, &c->lock);
        c->clone(out, data);
        ox__cleanup_pop_own(ox__wait_list_unlock_on_unwind, &c->lock, false);
    } else {
        memcpy(out, data, c->elem_size);
    }
    s->rem--;
    rx->next++;
    return 0;
}

struct take {
    bcast *c;
    handle *rx;
    void *out;
    uint64_t *missed;
};

static int poll_take(void *arg)
{
    struct take *t = arg;
    return take_locked(t->c, t->rx, t->out, t->missed);
}

static int recv_until(ox_broadcast_receiver *rx, void *out, uint64_t *missed, ox_instant deadline,
                      const char *function)
{
    bcast *c = receiver_chan(rx, function);
    if (!out)
        ox_abort(function, "NULL message buffer");
    struct take t = {c, &rx->h, out, missed};
    return ox__wait_list_wait_for(&c->lock, &c->lock, deadline, &recv_site, c, poll_take, &t);
}

int ox_broadcast_recv_deadline(ox_broadcast_receiver *rx, void *out, uint64_t *missed,
                               ox_instant deadline)
{
    return recv_until(rx, out, missed, deadline, __func__);
}

int ox_broadcast_recv(ox_broadcast_receiver *rx, void *out, uint64_t *missed)
{
    return recv_until(rx, out, missed, OX_INSTANT_NEVER, __func__);
}

int ox_broadcast_recv_timeout(ox_broadcast_receiver *rx, void *out, uint64_t *missed,
                              ox_nanos timeout)
{
    if (timeout < 0)
        return OX_EINVAL;
    return recv_until(rx, out, missed, ox_instant_after(timeout), __func__);
}

int ox_broadcast_try_recv(ox_broadcast_receiver *rx, void *out, uint64_t *missed)
{
    bcast *c = receiver_chan(rx, __func__);
    if (!out)
        ox_abort(__func__, "NULL message buffer");
    ox__wait_list_lock(&c->lock);
    int rc = take_locked(c, &rx->h, out, missed);
    ox__wait_list_unlock(&c->lock);
    return rc;
}

size_t ox_broadcast_len(ox_broadcast_receiver *rx)
{
    bcast *c = receiver_chan(rx, __func__);
    ox__wait_list_lock(&c->lock);
    uint64_t oldest = oldest_of(c);
    uint64_t from = rx->h.next > oldest ? rx->h.next : oldest;
    size_t n = (size_t)(c->tail - from);
    ox__wait_list_unlock(&c->lock);
    return n;
}

size_t ox_broadcast_receiver_count(ox_broadcast_sender *tx)
{
    bcast *c = sender_chan(tx, __func__);
    ox__wait_list_lock(&c->lock);
    size_t n = c->receivers;
    ox__wait_list_unlock(&c->lock);
    return n;
}
