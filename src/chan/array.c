/* array.c - the bounded flavor: a ring of cap slots with per-slot stamps
 * (Dmitry Vyukov's bounded MPMC queue, as crossbeam's and Rust std's
 * mpmc/array.rs).
 *
 * State words. head and tail are positions: {lap, index} packed as
 * lap * one_lap + index, where one_lap = 2 * mark_bit is a power of two above
 * cap. tail also carries mark_bit: set once the channel is disconnected.
 * Each slot has a stamp:
 *   stamp == tail       the slot is free for the sender at position tail;
 *   stamp == head + 1   the slot holds the message for the receiver at head.
 * A sender claims position tail by CAS on tail, writes the message and
 * publishes it with stamp = tail + 1 (release); a receiver claims head by
 * CAS, reads and frees the slot with stamp = head + one_lap (the position the
 * next lap's sender will hold).
 * Full: a slot's stamp is one lap behind tail and head + one_lap == tail.
 * Empty: the head slot's stamp == head and tail == head.
 */
#include "chan_internal.h"

#include "../panic/unwind.h"

#include <string.h>

#define STAMP_SIZE sizeof(size_t)

/* The address of a slot is on the critical path of every send and
 * receive (position -> slot -> stamp load), so a power-of-two slot (an
 * 8-byte message's is 16 bytes) is found by a shift rather than a multiply:
 * chan_seq_boundedN took 20.1-21.4 ns a message, against 21.8-23.8. The
 * branch is the same for every call on a channel, so it is predicted. */
static inline unsigned char *slot_at(const ox__chan *c, size_t index)
{
    if (OX_LIKELY(c->slot_shift != 0))
        return c->ring + (index << c->slot_shift);
    return c->ring + index * c->slot_size;
}

static inline _Atomic size_t *stamp_of(unsigned char *slot)
{
    return (_Atomic size_t *)(void *)slot;
}

/* A large ring streams through memory: every message's slot misses the
 * cache, and the locked claim (a full barrier) keeps the CPU from loading
 * the next slots early on its own. So a sender prefetches, for writing,
 * the slot PREFETCH_SLOTS ahead of the one it claimed. (chan_seq_boundedN,
 * a ring of 10^6 8-byte messages: 23.6 -> 22.2 ns a message; 16 to 128
 * slots ahead were alike, 8 a little slower.) A receiver does not: the
 * same prefetch on its side gained another 1.2 ns there, but where the
 * receiver keeps up with a sender (chan_spsc_boundedN) it took the lines
 * the sender was about to write, and the rounds spread from 11 to 27 ns
 * (11.2-11.4 with the sender's prefetch alone). A ring that fits in the
 * caches gains nothing, so only rings of PREFETCH_MIN_RING bytes or more
 * prefetch. */
enum { PREFETCH_SLOTS = 32, PREFETCH_MIN_RING = 1 << 20 };

/* The slot to prefetch from the one at index, or NULL. (A function that
 * only prefetches counts as free of effects, and gcc and clang drop the
 * call: the prefetch itself is written at the call site.) */
static inline const unsigned char *slot_ahead(const ox__chan *c, size_t index)
{
    if (c->prefetch && index + PREFETCH_SLOTS < c->cap)
        return slot_at(c, index + PREFETCH_SLOTS);
    return NULL;
}

int ox__array_init(ox__chan *c)
{
    size_t mark = 1;
    while (mark < c->cap + 1)
        mark <<= 1;
    c->mark_bit = mark;
    c->one_lap = mark << 1;
    c->prefetch = c->cap * c->slot_size >= PREFETCH_MIN_RING;
    c->slot_shift = 0;
    if ((c->slot_size & (c->slot_size - 1)) == 0)
        while (((size_t)1 << c->slot_shift) < c->slot_size)
            c->slot_shift++;
    for (size_t i = 0; i < c->cap; i++)
        atomic_init(stamp_of(slot_at(c, i)), i);
    return 0;
}

enum { RESERVED = 1, NOT_READY = 0, DISCONNECTED = -1 };

static int start_send(ox__chan *c, unsigned char **slot_out, size_t *stamp_out)
{
    ox__backoff b = {0};
    size_t tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
    for (;;) {
        if (tail & c->mark_bit)
            return DISCONNECTED;
        size_t index = tail & (c->mark_bit - 1);
        size_t lap = tail & ~(c->one_lap - 1);
        unsigned char *slot = slot_at(c, index);
        /* Acquire: pairs with the receiver's release store of the stamp
         * that freed the slot, so its read of the old message is done. */
        size_t stamp = atomic_load_explicit(stamp_of(slot), memory_order_acquire);
        if (tail == stamp) {
            size_t next = index + 1 < c->cap ? tail + 1 : lap + c->one_lap;
            /* SeqCst: orders the claim before the load of the receivers'
             * is_empty flag in notify (see waker.h); the message itself is
             * published by the stamp. */
            if (atomic_compare_exchange_weak_explicit(&c->tail, &tail, next, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                *slot_out = slot;
                *stamp_out = tail + 1;
                return RESERVED;
            }
            ox__backoff_spin(&b);
        } else if (stamp + c->one_lap == tail + 1) {
            /* The slot is one lap behind: full, unless a receiver has just
             * claimed it. SeqCst: pairs with the receivers' head CAS. */
            size_t head = atomic_load_explicit(&c->head, memory_order_seq_cst);
            if (head + c->one_lap == tail)
                return NOT_READY;
            ox__backoff_spin(&b);
            tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
        } else {
            /* Another sender claimed the slot and has not published yet. */
            ox__backoff_snooze(&b);
            tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
        }
    }
}

static int start_recv(ox__chan *c, unsigned char **slot_out, size_t *stamp_out)
{
    ox__backoff b = {0};
    size_t head = atomic_load_explicit(&c->head, memory_order_relaxed);
    for (;;) {
        size_t index = head & (c->mark_bit - 1);
        size_t lap = head & ~(c->one_lap - 1);
        unsigned char *slot = slot_at(c, index);
        /* Acquire: pairs with the sender's release store of the stamp, so
         * the message it wrote is visible. */
        size_t stamp = atomic_load_explicit(stamp_of(slot), memory_order_acquire);
        if (head + 1 == stamp) {
            size_t next = index + 1 < c->cap ? head + 1 : lap + c->one_lap;
            /* SeqCst: orders the claim before the load of the senders'
             * is_empty flag in notify. */
            if (atomic_compare_exchange_weak_explicit(&c->head, &head, next, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                *slot_out = slot;
                *stamp_out = head + c->one_lap;
                return RESERVED;
            }
            ox__backoff_spin(&b);
        } else if (stamp == head) {
            /* SeqCst: pairs with the senders' tail CAS. */
            size_t tail = atomic_load_explicit(&c->tail, memory_order_seq_cst);
            if ((tail & ~c->mark_bit) == head)
                return (tail & c->mark_bit) ? DISCONNECTED : NOT_READY;
            ox__backoff_spin(&b);
            head = atomic_load_explicit(&c->head, memory_order_relaxed);
        } else {
            ox__backoff_snooze(&b);
            head = atomic_load_explicit(&c->head, memory_order_relaxed);
        }
    }
}

static inline void write_slot(ox__chan *c, unsigned char *slot, size_t stamp, const void *msg)
{
    OX__CHAOS_POINT(); /* slot claimed, message not written yet */
    ox__copy_msg(slot + STAMP_SIZE, msg, c->elem_size);
    /* Release: publishes the message; pairs with start_recv's acquire. */
    atomic_store_explicit(stamp_of(slot), stamp, memory_order_release);
    ox__chan_notify_receivers(c);
}

static inline void read_slot(ox__chan *c, unsigned char *slot, size_t stamp, void *out)
{
    OX__CHAOS_POINT(); /* slot claimed, message not read yet */
    ox__copy_msg(out, slot + STAMP_SIZE, c->elem_size);
    /* Release: our read is done before the next lap's sender writes. */
    atomic_store_explicit(stamp_of(slot), stamp, memory_order_release);
    ox__sync_waker_notify(&c->senders_w);
}

/* The position after pos: the next index, or index 0 of the next lap. */
static inline size_t next_pos(const ox__chan *c, size_t pos)
{
    size_t index = pos & (c->mark_bit - 1);
    return index + 1 < c->cap ? pos + 1 : (pos & ~(c->one_lap - 1)) + c->one_lap;
}

/* The messages from position head up to tail (tail's mark ignored). Equal
 * indices mean empty, or full when the laps differ. */
static size_t messages_between(const ox__chan *c, size_t head, size_t tail)
{
    size_t hix = head & (c->mark_bit - 1);
    size_t tix = tail & (c->mark_bit - 1);
    if (hix < tix)
        return tix - hix;
    if (hix > tix)
        return c->cap - hix + tix;
    return (tail & ~c->mark_bit) == head ? 0 : c->cap;
}

/* The position at tail (head), without the disconnect mark: where a wait
 * starts. Relaxed: it orders nothing. A stale position only ends the spin
 * below early (the retry re-reads everything) or misjudges whether rivals
 * took the answers first. */
static size_t position(const ox__chan *c, const _Atomic size_t *pos)
{
    return atomic_load_explicit(pos, memory_order_relaxed) & ~c->mark_bit;
}

/* The first wait of a blocking send (receive) that found the ring full
 * (empty) at position p: spins while the slot at p still holds the stamp
 * that says so, p - lag, polling it at every pause for at most the
 * backoff's spin phase.
 *
 * Why not re-run start_send / start_recv after each backoff step, as
 * crossbeam does: those also read the other side's position word, which
 * pulls that line into our cache, so that the other side's next CAS on it
 * waits for our copy to be invalidated. That is one cache-line trip more per
 * hand-off, and on a two-core VM it tripled a bounded(1) ping-pong (~290 vs
 * ~100 ns a round trip). The stamp is where the other side's progress shows
 * first, and polling it every pause instead of at exponentially spaced
 * retries also notices it sooner. A disconnect does not touch the stamp: the
 * retry after the spin sees the mark. Relaxed: only a hint; the retry loads
 * the stamp again with acquire. */
static void spin_while_slot_unchanged(const ox__chan *c, size_t p, size_t lag, ox__backoff *b)
{
    OX__CHAOS_POINT();
    if (ox__park_unit_get() != NULL)
        return; /* a task: the other side may be queued behind us (pace.c) */
    _Atomic size_t *stamp = stamp_of(slot_at(c, p & (c->mark_bit - 1)));
    if (atomic_load_explicit(stamp, memory_order_relaxed) + lag != p)
        return; /* not a wait: no spin to decide */
    for (unsigned steps = ox__backoff_partner_spin_steps(b); b->step < steps; b->step++) {
        for (unsigned i = 0; i < (1u << b->step); i++) {
            ox__cpu_relax();
            if (atomic_load_explicit(stamp, memory_order_relaxed) + lag != p)
                return;
        }
    }
}

static int send_slow(ox__chan *c, const void *msg, bool block, ox_instant deadline);
static int recv_slow(ox__chan *c, void *out, bool block, ox_instant deadline, const char *file,
                     int line);

/* The fast paths: the slot at tail (head) is ready and the first claim
 * succeeds. Everything else (contention, full, empty, disconnected) goes to
 * the slow path, which starts over with start_send / start_recv. The
 * orderings are those of start_send / start_recv, which explain them. */
int ox__array_send(ox__chan *c, const void *msg, bool block, ox_instant deadline)
{
    size_t tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
    unsigned char *slot = slot_at(c, tail & (c->mark_bit - 1));
    /* A marked (disconnected) tail never equals a stamp: stamps are below
     * mark_bit within their lap. */
    if (OX_LIKELY(atomic_load_explicit(stamp_of(slot), memory_order_acquire) == tail) &&
        OX_LIKELY(atomic_compare_exchange_weak_explicit(
            &c->tail, &tail, next_pos(c, tail), memory_order_seq_cst, memory_order_relaxed))) {
        const unsigned char *ahead = slot_ahead(c, tail & (c->mark_bit - 1));
        if (ahead)
            __builtin_prefetch(ahead, 1);
        write_slot(c, slot, tail + 1, msg);
        return 0;
    }
    return send_slow(c, msg, block, deadline);
}

int ox__array_recv(ox__chan *c, void *out, bool block, ox_instant deadline, const char *file,
                   int line)
{
    size_t head = atomic_load_explicit(&c->head, memory_order_relaxed);
    unsigned char *slot = slot_at(c, head & (c->mark_bit - 1));
    if (OX_LIKELY(atomic_load_explicit(stamp_of(slot), memory_order_acquire) == head + 1) &&
        OX_LIKELY(atomic_compare_exchange_weak_explicit(
            &c->head, &head, next_pos(c, head), memory_order_seq_cst, memory_order_relaxed))) {
        read_slot(c, slot, head + c->one_lap, out);
        return 0;
    }
    return recv_slow(c, out, block, deadline, file, line);
}

/* Whether a blocked sender / receiver should retry instead of sleeping. */
static bool can_send(const ox__chan *c)
{
    return !ox__array_is_full(c) || ox__array_is_disconnected(c);
}

static bool can_recv(const ox__chan *c)
{
    return !ox__array_is_empty(c) || ox__array_is_disconnected(c);
}

OX_COLD static int send_slow(ox__chan *c, const void *msg, bool block, ox_instant deadline)
{
    unsigned char *slot;
    size_t stamp;
    for (;;) {
        ox__backoff b = {0};
        size_t waited_at = position(c, &c->tail);
        if (block) /* full: the slot's stamp is tail - (one_lap - 1) */
            spin_while_slot_unchanged(c, waited_at, c->one_lap - 1, &b);
        for (;;) {
            int r = start_send(c, &slot, &stamp);
            if (r == RESERVED) {
                if (stamp - 1 != waited_at) /* other senders took the slot first */
                    ox__backoff_partner_wait_lost_to_rivals(&b);
                write_slot(c, slot, stamp, msg);
                return 0;
            }
            if (r == DISCONNECTED)
                return OX_EDISCONNECTED;
            if (!block)
                return OX_EFULL;
            if (ox__backoff_is_completed(&b))
                break;
            ox__backoff_snooze_partner(&b);
        }
        int why = ox__chan_must_not_wait(deadline);
        if (why != 0)
            return why;

        ox__chan_wait(c, &c->senders_w, can_send, deadline, &ox__site_send, NULL, 0);
    }
}

/* The messages queued, for ox__chan_wait_for_batch: relaxed loads, since
 * it is only a hint; SIZE_MAX once disconnected. */
static size_t backlog(const ox__chan *c)
{
    size_t head = atomic_load_explicit(&c->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
    return (tail & c->mark_bit) ? SIZE_MAX : messages_between(c, head, tail);
}

OX_COLD static int recv_slow(ox__chan *c, void *out, bool block, ox_instant deadline,
                             const char *file, int line)
{
    unsigned char *slot;
    size_t stamp;
    /* Rings too small to hold a batch of a few lines are hand-offs. */
    bool paced = c->cap < 8;
    for (;;) {
        ox__backoff b = {0};
        size_t waited_at = position(c, &c->head);
        if (block && paced) /* empty: the slot's stamp is head */
            spin_while_slot_unchanged(c, waited_at, 0, &b);
        for (;;) {
            int r = start_recv(c, &slot, &stamp);
            if (r == RESERVED) {
                if (stamp - c->one_lap != waited_at) /* other receivers took it first */
                    ox__backoff_partner_wait_lost_to_rivals(&b);
                read_slot(c, slot, stamp, out);
                return 0;
            }
            if (r == DISCONNECTED)
                return OX_EDISCONNECTED;
            if (!block)
                return OX_EEMPTY;
            if (!paced) { /* empty: let a streaming sender get ahead first */
                paced = true;
                ox__chan_wait_for_batch(c,
                                        c->cap / 2 < OX__CHAN_BATCH ? c->cap / 2 : OX__CHAN_BATCH,
                                        backlog, deadline);
                continue;
            }
            if (ox__backoff_is_completed(&b))
                break;
            ox__backoff_snooze_partner(&b);
        }
        int why = ox__chan_must_not_wait(deadline);
        if (why != 0)
            return why;

        ox__chan_wait(c, &c->receivers_w, can_recv, deadline, &ox__site_recv, file, line);
    }
}

size_t ox__array_len(const ox__chan *c)
{
    for (;;) {
        /* SeqCst: a consistent snapshot (tail re-read unchanged). */
        size_t tail = atomic_load_explicit(&c->tail, memory_order_seq_cst);
        size_t head = atomic_load_explicit(&c->head, memory_order_seq_cst);
        if (atomic_load_explicit(&c->tail, memory_order_seq_cst) != tail)
            continue;
        return messages_between(c, head, tail);
    }
}

bool ox__array_is_empty(const ox__chan *c)
{
    /* SeqCst: the re-check after registering (see ox__sync_waker_notify). */
    size_t head = atomic_load_explicit(&c->head, memory_order_seq_cst);
    size_t tail = atomic_load_explicit(&c->tail, memory_order_seq_cst);
    return (tail & ~c->mark_bit) == head;
}

bool ox__array_is_full(const ox__chan *c)
{
    /* SeqCst: as in ox__array_is_empty (a blocked sender's re-check). */
    size_t tail = atomic_load_explicit(&c->tail, memory_order_seq_cst);
    size_t head = atomic_load_explicit(&c->head, memory_order_seq_cst);
    return head + c->one_lap == (tail & ~c->mark_bit);
}

bool ox__array_is_disconnected(const ox__chan *c)
{
    /* SeqCst: pairs with the SeqCst mark in ox__array_disconnect, for the
     * same re-check. */
    return atomic_load_explicit(&c->tail, memory_order_seq_cst) & c->mark_bit;
}

void ox__array_disconnect(ox__chan *c)
{
    /* SeqCst: a sender's CAS on tail fails from now on; a receiver that
     * finds the ring empty sees the mark. */
    size_t old = atomic_fetch_or_explicit(&c->tail, c->mark_bit, memory_order_seq_cst);
    if (!(old & c->mark_bit)) {
        ox__sync_waker_disconnect(&c->senders_w);
        ox__sync_waker_disconnect(&c->receivers_w);
    }
}

/* The unwind cleanup of a discard whose element destructor panicked: head
 * is already past that element, so this destroys the rest. */
static void discard_rest(void *c)
{
    ox__array_discard_messages(c);
}

void ox__array_discard_messages(ox__chan *c)
{
    /* Relaxed: only receivers write head, and the last receiver's drop
     * (acq_rel on the count) comes after every receive. The tail is
     * marked, so no sender can claim a slot any more: it is final. */
    size_t head = atomic_load_explicit(&c->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&c->tail, memory_order_relaxed) & ~c->mark_bit;
    if (c->destroy)
        ox_cleanup_push(discard_rest, c);
    ox__backoff b = {0};
    while (head != tail) {
        unsigned char *slot = slot_at(c, head & (c->mark_bit - 1));
        /* Acquire: pairs with the sender's release store of the stamp. */
        if (atomic_load_explicit(stamp_of(slot), memory_order_acquire) != head + 1) {
            ox__backoff_snooze(&b); /* claimed before the mark, not written yet */
            continue;
        }
        head = next_pos(c, head);
        /* Relaxed: read by discard_rest in this thread if the destructor
         * panics, by the final free (after an acq_rel handshake) and by
         * len, which then reports an empty channel. */
        atomic_store_explicit(&c->head, head, memory_order_relaxed);
        if (c->destroy)
            c->destroy(slot + STAMP_SIZE);
    }
    if (c->destroy)
        ox__cleanup_pop_own(discard_rest, c, false);
}

void ox__array_free_messages(ox__chan *c)
{
    if (!c->destroy)
        return;
    size_t hix = atomic_load_explicit(&c->head, memory_order_relaxed) & (c->mark_bit - 1);
    size_t len = ox__array_len(c);
    for (size_t i = 0; i < len; i++) {
        size_t index = hix + i < c->cap ? hix + i : hix + i - c->cap;
        c->destroy(slot_at(c, index) + STAMP_SIZE);
    }
}
