/* counter.c - channel creation, handles and lifetime (crossbeam's
 * counter.rs).
 *
 * senders / receivers count live handles. The drop that takes a count to
 * zero disconnects that side; then whichever side finishes second (the one
 * that sees destroy_claimed already set by the other) frees the channel.
 *
 * Handles: the first sender and receiver are embedded in the channel; clones
 * are small heap records. A dropped handle gets OX__DEAD_MAGIC and goes to
 * the channel's graveyard, where a later clone may recycle it; all of them
 * are freed with the channel. So while the channel lives, a dropped handle's
 * memory is still ours and its magic tells that it is dead.
 */
#include "chan_internal.h"

#include "../panic/unwind.h"
#include "../sys/sys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A blocked receiver's channel, for the blocked-thread dump: alive, since
 * the receiver holds a handle while it waits. A receiver that hangs usually
 * waits for a sender that nobody dropped. */
static void describe_recv(const void *object, char *buf, size_t size)
{
    const ox__chan *c = object;
    /* Relaxed: a diagnostic count, read once. */
    uint32_t n = atomic_load_explicit(&c->senders, memory_order_relaxed);
    snprintf(buf, size, "%u sender%s still alive", (unsigned)n, n == 1 ? "" : "s");
}

/* Cancellation points: an aborted task's wait here ends (see waker.c). */
const ox__wait_site ox__site_send = {.what = "channel send", .cancellable = true};
const ox__wait_site ox__site_recv = {
    .what = "channel recv", .cancellable = true, .describe = describe_recv};
const ox__wait_site ox__site_select = {.what = "channel select", .cancellable = true};

_Static_assert(sizeof(ox__chan) <= 256, "an idle channel fits in 256 bytes");

int ox_channel_with(const ox_channel_options *options, ox_sender **tx, ox_receiver **rx)
{
    if (!options || !tx || !rx)
        return OX_EINVAL;
    size_t elem = options->elem_size, cap = options->capacity;
    uint8_t flavor = cap == 0              ? OX__FLAVOR_ZERO
                     : elem == 0           ? OX__FLAVOR_COUNT
                     : cap == OX_UNBOUNDED ? OX__FLAVOR_LIST
                                           : OX__FLAVOR_ARRAY;
    size_t extra = 0, slot = 0;
    if (flavor == OX__FLAVOR_ARRAY) {
        if (elem > SIZE_MAX / 2 || cap > SIZE_MAX / 8)
            return OX_EINVAL;
        slot = (sizeof(size_t) + elem + sizeof(size_t) - 1) & ~(sizeof(size_t) - 1);
        if (cap > (SIZE_MAX - sizeof(ox__chan)) / slot)
            return OX_EINVAL;
        extra = cap * slot;
    } else if (flavor == OX__FLAVOR_LIST && elem > (SIZE_MAX - 128) / 64) {
        return OX_EINVAL;
    }
    ox__chan *c = ox__alloc_lines(sizeof(ox__chan) + extra);
    if (!c)
        return ENOMEM;
    memset(c, 0, sizeof *c);
    atomic_init(&c->tail, 0);
    atomic_init(&c->head, 0);
    atomic_init(&c->tail_block, NULL);
    atomic_init(&c->head_block, NULL);
    atomic_init(&c->spare, NULL);
    atomic_init(&c->tail_seen, 0);
    atomic_init(&c->pending, NULL);
    c->receivers_w = (ox__sync_waker)OX__SYNC_WAKER_INIT;
    c->senders_w = (ox__sync_waker)OX__SYNC_WAKER_INIT;
    c->elem_size = elem;
    c->cap = cap;
    c->slot_size = slot;
    c->destroy = options->destroy;
    c->flavor = flavor;
    atomic_init(&c->destroy_claimed, 0);
    atomic_init(&c->senders, 1);
    atomic_init(&c->receivers, 1);
    atomic_init(&c->graveyard_lock, 0);
    c->graveyard = NULL;
    c->tx0.h = (ox__handle){OX__TX_MAGIC, c, NULL};
    c->rx0.h = (ox__handle){OX__RX_MAGIC, c, NULL};
    if (flavor == OX__FLAVOR_ARRAY) {
        c->ring = (unsigned char *)c + sizeof(ox__chan);
        ox__array_init(c);
    }
    *tx = &c->tx0;
    *rx = &c->rx0;
    return 0;
}

int ox_channel(size_t elem_size, size_t capacity, ox_sender **tx, ox_receiver **rx)
{
    ox_channel_options o = {.elem_size = elem_size, .capacity = capacity, .destroy = NULL};
    return ox_channel_with(&o, tx, rx);
}

OX_COLD _Noreturn void ox__bad_handle(const ox__handle *h, const char *function, const char *kind)
{
    if (!h)
        ox_abort(function, "NULL %s", kind);
    else if (h->magic == OX__DEAD_MAGIC)
        ox_abort(function, "%s %p was already dropped", kind, (const void *)h);
    else
        ox_abort(function, "%p is not a %s (or was freed with its channel)", (const void *)h, kind);
}

static ox__handle *new_handle(ox__chan *c, uint32_t magic, const char *function)
{
    ox__list_lock(&c->graveyard_lock);
    ox__handle *h = c->graveyard;
    if (h)
        c->graveyard = h->next_dead;
    ox__list_unlock(&c->graveyard_lock);
    if (!h)
        h = malloc(sizeof *h);
    if (!h)
        ox_abort(function, "out of memory");
    else
        *h = (ox__handle){magic, c, NULL};
    return h;
}

ox_sender *ox_sender_clone(ox_sender *tx)
{
    ox__chan *c = ox__sender_chan(tx, __func__);
    /* Relaxed: a new handle is made from a live one, which keeps the channel
     * alive; ordering comes with passing the handle to another thread. */
    atomic_fetch_add_explicit(&c->senders, 1, memory_order_relaxed);
    return (ox_sender *)new_handle(c, OX__TX_MAGIC, __func__);
}

ox_receiver *ox_receiver_clone(ox_receiver *rx)
{
    ox__chan *c = ox__receiver_chan(rx, __func__);
    atomic_fetch_add_explicit(&c->receivers, 1, memory_order_relaxed);
    return (ox_receiver *)new_handle(c, OX__RX_MAGIC, __func__);
}

static void free_channel(ox__chan *c)
{
    switch (c->flavor) {
    case OX__FLAVOR_ARRAY:
        ox__array_free_messages(c);
        break;
    case OX__FLAVOR_LIST:
        ox__list_free_messages(c);
        break;
    default: /* rendezvous: nothing buffered; zero-size: the last receiver
                took the count */
        break;
    }
    if (ox__chan_observed(c))
        ox__sys_event_close(c->event_fd);
    for (ox__handle *h = c->graveyard, *next; h; h = next) {
        next = h->next_dead;
        if (h != &c->tx0.h && h != &c->rx0.h)
            free(h);
    }
    free(c);
}

/* Marks h dead and parks it in the graveyard (embedded handles are marked
 * only). Done before the count drops, while the channel surely lives. */
static void bury(ox__chan *c, ox__handle *h)
{
    h->magic = OX__DEAD_MAGIC;
    if (h == &c->tx0.h || h == &c->rx0.h)
        return;
    ox__list_lock(&c->graveyard_lock);
    h->next_dead = c->graveyard;
    c->graveyard = h;
    ox__list_unlock(&c->graveyard_lock);
}

static void side_finished(ox__chan *c)
{
    /* AcqRel: the first side's last uses happen-before the second side's
     * free, and vice versa. */
    if (atomic_exchange_explicit(&c->destroy_claimed, 1, memory_order_acq_rel))
        free_channel(c);
}

/* The unwind cleanup of a last receiver's drop whose element destructor
 * panicked: the flavor's own cleanup has destroyed the other messages;
 * this side is finished all the same, so the channel is freed. */
static void side_finished_on_unwind(void *c)
{
    side_finished(c);
}

/* The last handle of one side is gone: disconnect the channel for the other
 * side, then free it once both sides have finished. */
static void last_of_side(ox__chan *c, bool senders)
{
    /* The last receiver destroys what is buffered; a destructor may panic. */
    bool may_panic = !senders && c->destroy != NULL;
    if (may_panic)
        ox_cleanup_push(side_finished_on_unwind, c);
    switch (c->flavor) {
    case OX__FLAVOR_ARRAY:
        ox__array_disconnect(c);
        if (!senders)
            ox__array_discard_messages(c);
        break;
    case OX__FLAVOR_LIST:
        if (senders)
            ox__list_disconnect_senders(c);
        else
            ox__list_disconnect_receivers(c);
        break;
    case OX__FLAVOR_COUNT:
        ox__count_disconnect(c, !senders);
        break;
    default:
        ox__zero_disconnect(c);
        break;
    }
    if (may_panic)
        ox__cleanup_pop_own(side_finished_on_unwind, c, false);
    /* Disconnected: readable for a loop that waits on the receivers' event
     * fd (the flavor's seq_cst mark comes first; see event.c). */
    if (senders && ox__chan_observed(c))
        ox__chan_event_signal(c);
    side_finished(c);
}

void ox_sender_drop(ox_sender *tx)
{
    ox__chan *c = ox__sender_chan(tx, __func__);
    bury(c, &tx->h);
    /* AcqRel: every sender's sends happen-before the disconnect and the
     * free that the last drop performs. */
    if (atomic_fetch_sub_explicit(&c->senders, 1, memory_order_acq_rel) == 1)
        last_of_side(c, true);
}

void ox_receiver_drop(ox_receiver *rx)
{
    ox__chan *c = ox__receiver_chan(rx, __func__);
    bury(c, &rx->h);
    /* AcqRel: as for senders above. */
    if (atomic_fetch_sub_explicit(&c->receivers, 1, memory_order_acq_rel) == 1)
        last_of_side(c, false);
}
