/* chan_internal.h - the channel object shared by the flavor files
 * (array.c bounded, list.c unbounded, zero.c rendezvous), counter.c (handles
 * and lifetime), channel.c (the public calls) and select.c.
 *
 * One allocation per channel: this struct (256 bytes: a senders' cache line,
 * a receivers' cache line, two lines of read-mostly fields and handles),
 * followed, for a bounded channel, by its ring of slots. An unbounded channel
 * allocates its first block on the first send. A channel of zero-size
 * messages with a capacity (count.c) is this struct alone, for good.
 */
#ifndef OX_CHAN_INTERNAL_H
#define OX_CHAN_INTERNAL_H

#include "oxide/chan.h"
#include "oxide/panic.h" /* cleanups: an element destructor may panic */

#include "../check/chaos.h" /* OX__CHAOS_POINT at decision points */
#include "../common/cache_line.h"
#include "waker.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* COUNT: zero-size messages, bounded or unbounded (a rendezvous channel of
 * zero-size messages is ZERO, which needs no buffer anyway). */
enum { OX__FLAVOR_ARRAY, OX__FLAVOR_LIST, OX__FLAVOR_ZERO, OX__FLAVOR_COUNT };

/* Handle magics: a live sender / receiver, and a dropped one. */
#define OX__TX_MAGIC   0x6f787478u /* "oxtx" */
#define OX__RX_MAGIC   0x6f787278u /* "oxrx" */
#define OX__DEAD_MAGIC 0xdeadc4a7u

/* Senders and receivers have the same shape; the magic tells them apart. */
typedef struct ox__handle {
    uint32_t magic;
    struct ox__chan *chan;
    struct ox__handle *next_dead; /* in chan->graveyard once dropped */
} ox__handle;

struct ox_sender {
    ox__handle h;
};
struct ox_receiver {
    ox__handle h;
};

struct ox__block;

typedef struct ox__chan {
    /* Senders' line: written by every send. receivers_w sits here because
     * senders read its is_empty flag after every send. */
    _Alignas(OX__CACHE_LINE) _Atomic size_t tail;
    _Atomic(struct ox__block *) tail_block; /* list */
    ox__sync_waker receivers_w;             /* receivers waiting for a message */
    /* A receiver's event fd (event.c), valid once receivers_w says
     * OX__WAKER_OBSERVED; set: 1 while a sender has set it and no receiver
     * has cleared it since. Here because senders write it. */
    int event_fd;
    _Atomic uint32_t event_set;

    /* Receivers' line. */
    _Alignas(OX__CACHE_LINE) _Atomic size_t head;
    _Atomic(struct ox__block *) head_block; /* list */
    ox__sync_waker senders_w;               /* senders waiting for room (array) */
    _Atomic(struct ox__block *) spare;      /* list: one drained block kept for reuse */
    /* list: a tail a receiver loaded (tail only grows, so head below it
     * means a message is there without touching the senders' line). */
    _Atomic size_t tail_seen;
    /* list: fully claimed blocks some reader was still busy with (list.c) */
    _Atomic(struct ox__block *) pending;

    /* Read-mostly. */
    _Alignas(OX__CACHE_LINE) size_t elem_size;
    size_t cap;          /* N, 0 or OX_UNBOUNDED */
    size_t one_lap;      /* array: index + one_lap is the same slot one lap on */
    size_t mark_bit;     /* array: the disconnected bit of tail */
    size_t slot_size;    /* array: bytes per slot (stamp + message, rounded) */
    unsigned char *ring; /* array: the slots, just after this struct */
    void (*destroy)(void *elem);
    uint8_t flavor;
    bool prefetch;                   /* array: the ring is large: prefetch ahead (array.c) */
    uint8_t slot_shift;              /* array: log2(slot_size) if a power of two, else 0 */
    _Atomic uint8_t destroy_claimed; /* the second side to finish frees */
    _Atomic uint32_t senders;        /* live sender handles */
    _Atomic uint32_t receivers;      /* live receiver handles */
    _Atomic uint32_t graveyard_lock;
    ox__handle *graveyard; /* dropped handles, recycled by clones */
    struct ox_sender tx0;  /* the first handles live here */
    struct ox_receiver rx0;
} ox__chan;

/* ---- flavors ----
 * send/recv: block false tries once (OX_EFULL / OX_EEMPTY); true waits until
 * the deadline (OX_ETIMEDOUT). OX_EDISCONNECTED as the public calls. */
int ox__array_init(ox__chan *c);
int ox__array_send(ox__chan *c, const void *msg, bool block, ox_instant deadline);
int ox__array_recv(ox__chan *c, void *out, bool block, ox_instant deadline, const char *file,
                   int line);
size_t ox__array_len(const ox__chan *c);
bool ox__array_is_empty(const ox__chan *c);
bool ox__array_is_full(const ox__chan *c);
bool ox__array_is_disconnected(const ox__chan *c);
void ox__array_disconnect(ox__chan *c);
/* The last receiver is gone (after disconnect): destroys what is buffered,
 * waiting for senders still writing a slot they claimed. */
void ox__array_discard_messages(ox__chan *c);
/* The last handle is gone: destroys what is still buffered. */
void ox__array_free_messages(ox__chan *c);

int ox__list_send(ox__chan *c, const void *msg);
int ox__list_recv(ox__chan *c, void *out, bool block, ox_instant deadline, const char *file,
                  int line);
size_t ox__list_len(const ox__chan *c);
bool ox__list_is_empty(const ox__chan *c);
bool ox__list_is_disconnected(const ox__chan *c);
void ox__list_disconnect_senders(ox__chan *c);
/* Also destroys what is buffered and frees its blocks, as
 * ox__array_discard_messages. */
void ox__list_disconnect_receivers(ox__chan *c);
void ox__list_free_messages(ox__chan *c);
/* Blocks currently allocated by all unbounded channels (tests, bench). */
long ox__list_blocks_live(void);
size_t ox__list_block_bytes(size_t elem_size);

int ox__zero_send(ox__chan *c, const void *msg, bool block, ox_instant deadline);
int ox__zero_recv(ox__chan *c, void *out, bool block, ox_instant deadline, const char *file,
                  int line);
void ox__zero_disconnect(ox__chan *c);
/* For select, under the channel's lock. */
void ox__zero_lock(ox__chan *c);
void ox__zero_unlock(ox__chan *c);
bool ox__zero_is_disconnected(const ox__chan *c);

/* The zero-size flavor (count.c): no message bytes, so no msg / out. */
int ox__count_send(ox__chan *c, bool block, ox_instant deadline);
int ox__count_recv(ox__chan *c, bool block, ox_instant deadline, const char *file, int line);
size_t ox__count_len(const ox__chan *c);
bool ox__count_is_empty(const ox__chan *c);
bool ox__count_is_full(const ox__chan *c);
bool ox__count_is_disconnected(const ox__chan *c);
/* One side's last handle is gone; receivers_gone: also destroys what is
 * buffered (c->destroy once per message, with NULL). */
void ox__count_disconnect(ox__chan *c, bool receivers_gone);

/* The rendezvous flavor's state: lock and lists reuse the waker fields. */
#define OX__ZERO_LOCK(c)      (&(c)->receivers_w.lock)
#define OX__ZERO_SENDERS(c)   (&(c)->senders_w.waker)
#define OX__ZERO_RECEIVERS(c) (&(c)->receivers_w.waker)

/* ---- handles (counter.c) ----
 * The checks run on every call, so they are inline: one compare of the
 * magic; the abort is out of line. */
OX_COLD _Noreturn void ox__bad_handle(const ox__handle *h, const char *function,
                                      const char *kind) OX_NORETURN;

static inline ox__chan *ox__sender_chan(const ox_sender *tx, const char *function)
{
    if (OX_UNLIKELY(!tx || tx->h.magic != OX__TX_MAGIC))
        ox__bad_handle(tx ? &tx->h : NULL, function, "sender");
    return tx->h.chan;
}

static inline ox__chan *ox__receiver_chan(const ox_receiver *rx, const char *function)
{
    if (OX_UNLIKELY(!rx || rx->h.magic != OX__RX_MAGIC))
        ox__bad_handle(rx ? &rx->h : NULL, function, "receiver");
    return rx->h.chan;
}

/* Copies one message. The element size is a runtime value, so a plain
 * memcpy is a library call; the common sizes get a fixed-size copy that the
 * compiler turns into one or two moves. */
static inline void ox__copy_msg(void *dst, const void *src, size_t size)
{
    /* Tests rather than a switch: a switch becomes an indirect jump. */
    if (OX_LIKELY(size == 8))
        memcpy(dst, src, 8);
    else if (size == 4)
        memcpy(dst, src, 4);
    else if (size == 16)
        memcpy(dst, src, 16);
    else
        memcpy(dst, src, size);
}

/* ---- a receiver's event fd (event.c) ---- */
/* Sets the event fd (once until the next clear). The caller saw
 * OX__WAKER_OBSERVED. */
void ox__chan_event_signal(ox__chan *c);
/* A try_recv found the channel empty: clears the fd, then sets it again
 * if a message (or a disconnect) came meanwhile. */
void ox__chan_event_rearm(ox__chan *c);
/* After a send that may have made the channel non-empty: wakes a waiting
 * receiver and sets the event fd, as the word says (v, loaded). */
void ox__chan_notify_receivers_slow(ox__chan *c, uint32_t v);

/* Whether a receiver asked for an event fd. Acquire: pairs with the
 * seq_cst store that published event_fd (event.c). */
static inline bool ox__chan_observed(const ox__chan *c)
{
    return atomic_load_explicit(&c->receivers_w.is_empty, memory_order_acquire) &
           OX__WAKER_OBSERVED;
}

/* Called after every send of the buffered flavors: one seq_cst load when
 * nobody waits and nobody asked for an event fd, the same load as a plain
 * ox__sync_waker_notify. */
static inline void ox__chan_notify_receivers(ox__chan *c)
{
    /* SeqCst: as in ox__sync_waker_notify, which this replaces; also
     * pairs with the seq_cst store of OX__WAKER_OBSERVED (event.c):
     * either this load sees it, or the installer's re-check sees our
     * message. */
    uint32_t v = atomic_load_explicit(&c->receivers_w.is_empty, memory_order_seq_cst);
    if (v != OX__WAKER_NO_WAITER)
        ox__chan_notify_receivers_slow(c, v);
}

/* ---- dispatch ----
 * Inline, so that a public call is the handle check and one direct call
 * into the flavor (a tail jump). The zero-size flavor hides behind the
 * rendezvous test rather than in a case of its own: four cases may become
 * a jump table, an indirect jump on every send of every flavor. */
static inline int ox__chan_send(ox__chan *c, const void *msg, bool block, ox_instant deadline)
{
    switch (c->flavor) {
    case OX__FLAVOR_ARRAY:
        return ox__array_send(c, msg, block, deadline);
    case OX__FLAVOR_LIST:
        return ox__list_send(c, msg);
    default:
        if (c->flavor == OX__FLAVOR_ZERO)
            return ox__zero_send(c, msg, block, deadline);
        return ox__count_send(c, block, deadline);
    }
}

/* file:line: the receive's call site, shown by the blocked-thread dump if it
 * blocks (NULL: not known). */
static inline int ox__chan_recv(ox__chan *c, void *out, bool block, ox_instant deadline,
                                const char *file, int line)
{
    switch (c->flavor) {
    case OX__FLAVOR_ARRAY:
        return ox__array_recv(c, out, block, deadline, file, line);
    case OX__FLAVOR_LIST:
        return ox__list_recv(c, out, block, deadline, file, line);
    default:
        if (c->flavor == OX__FLAVOR_ZERO)
            return ox__zero_recv(c, out, block, deadline, file, line);
        return ox__count_recv(c, block, deadline, file, line);
    }
}

extern const ox__wait_site ox__site_send, ox__site_recv, ox__site_select;

/* Seeds the calling thread's stream of select permutations (else seeded from
 * the clock on first use), so that which ready operation a select picks
 * depends only on the seed and the selects made since: the replaying fuzzer
 * (tests/fuzz/replay.c) runs every select on one worker thread. */
void ox__select_seed(uint64_t seed);

static inline bool ox__deadline_passed(ox_instant deadline)
{
    return deadline.ns != OX_INSTANT_NEVER.ns && ox_instant_now().ns >= deadline.ns;
}

/* Why a blocking operation that would wait must not: OX_ECANCELED (an
 * aborted task: channel operations are cancellation points), OX_ETIMEDOUT
 * (the deadline passed), or 0 (it may wait). */
static inline int ox__chan_must_not_wait(ox_instant deadline)
{
    if (ox__park_cancelled())
        return OX_ECANCELED;
    return ox__deadline_passed(deadline) ? OX_ETIMEDOUT : 0;
}

/* The waiter found the operation ready after registering: aborts its own
 * wait, unless someone claimed it first (then it takes their token). */
static inline uintptr_t ox__ctx_abort_now(ox__ctx *cx, const ox__wait_site *site,
                                          const void *object)
{
    uintptr_t sel = ox__ctx_try_abort(cx);
    if (sel != OX__SEL_ABORTED)
        ox__ctx_await_token(cx, site, object);
    return sel;
}

/* Before a blocking receive waits on an empty channel: while the senders
 * are streaming, lets them get `batch` messages ahead (pace.c says why).
 * backlog(c): the messages queued now, from relaxed loads (a hint);
 * SIZE_MAX once disconnected. */
#define OX__CHAN_BATCH 1024
void ox__chan_wait_for_batch(const ox__chan *c, size_t batch, size_t (*backlog)(const ox__chan *c),
                             ox_instant deadline);

/* One blocking step of a send or receive that found its channel full or
 * empty: registers on w, re-checks with ready(c) (a peer that made room or
 * sent before seeing us registered did not wake us), waits until woken or
 * the deadline, and unregisters unless the waker already did (a notify
 * unlinks the entry it selects). The caller then retries its operation.
 * file:line is the blocking call's site, for the blocked-thread dump. */
static inline void ox__chan_wait(ox__chan *c, ox__sync_waker *w, bool (*ready)(const ox__chan *c),
                                 ox_instant deadline, const ox__wait_site *site, const char *file,
                                 int line)
{
    ox__park_note_lock_site(c, file, line);
    ox__ctx cx;
    ox__ctx_init(&cx, &w->lock);
    ox__waiter e;
    ox__sync_waker_register(w, &e, &cx);
    uintptr_t sel;
    if (ready(c))
        sel = ox__ctx_abort_now(&cx, site, c);
    else
        sel = ox__ctx_wait_until(&cx, deadline, site, c);
    if (sel != (uintptr_t)&e)
        ox__sync_waker_unregister(w, &e);
}

#endif
