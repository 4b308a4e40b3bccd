/* list.c - the unbounded flavor: a linked list of blocks of BLOCK_CAP slots
 * (the design of crossbeam's and Rust std's mpmc/list.rs).
 *
 * State words. head and tail are indices shifted left by SHIFT; message i
 * lives in slot (i % LAP) of its block, and index LAP-1 of each lap is a
 * phantom "block change" position that no message uses: a thread that sees
 * it waits for the next block to be installed. Low bit (MARK_BIT):
 *   in tail: the channel is disconnected (no more sends);
 *   in head: the head block is known not to be the last one (so a receiver
 *            need not look at tail to know a message is there).
 * Each slot has a state byte that goes EMPTY -> WRITTEN (its sender, once
 * the message is in) -> READ (its receiver, once the message is out). Each
 * step is a plain release store: the two writers are ordered (the receiver
 * waits for WRITTEN with acquire), and nobody else writes the byte. So a
 * message costs two read-modify-writes: the sender's tail CAS and the
 * receiver's head CAS.
 *
 * Freeing a block. The receiver of a block's last slot (the "finisher")
 * knows that every slot was claimed; once it has its message it scans the
 * other states. All READ (acquire loads: every reader's copy happens-before
 * the free): it frees the block. Otherwise a reader is still copying (or
 * waiting for a slow sender): the block goes on the channel's pending stack
 * (linked through its next field, which nobody reads any more), and is
 * swept - freed once all READ - by the next finisher, by any receiver that
 * finds the channel empty (before it returns OX_EEMPTY / OX_EDISCONNECTED or
 * blocks), and at the latest with the channel. So once a receive has found
 * the channel drained, its memory is back with the allocator (but for the
 * head block and one spare).
 *
 * Memory. Blocks are allocated only by the sender that claims a block's last
 * slot (after winning the tail CAS: no speculative allocation that losers
 * throw away, the block churn of crossbeam#1119), and freed by the reader
 * of a block's last message once every reader of that block is done. One
 * drained block per channel is kept as a spare for the next allocation, so a
 * queue hovering around a block boundary does not call malloc at all; the
 * rest go back to the allocator as they drain (crossbeam#669).
 */
#include "chan_internal.h"

#include "../panic/unwind.h"

#include <stdlib.h>
#include <string.h>

#define LAP       64
#define BLOCK_CAP (LAP - 1)
#define SHIFT     1
#define MARK_BIT  ((size_t)1)

struct ox__block {
    _Atomic(struct ox__block *) next;
    _Atomic uint8_t state[BLOCK_CAP]; /* SLOT_EMPTY, SLOT_WRITTEN, SLOT_READ */
    /* BLOCK_CAP messages of elem_size bytes; 8-byte aligned. */
    _Alignas(8) unsigned char data[];
};

#define SLOT_EMPTY   0u
#define SLOT_WRITTEN 1u
#define SLOT_READ    2u

static _Atomic long blocks_live;

long ox__list_blocks_live(void)
{
    return atomic_load_explicit(&blocks_live, memory_order_relaxed);
}

size_t ox__list_block_bytes(size_t elem_size)
{
    return offsetof(struct ox__block, data) + BLOCK_CAP * elem_size;
}

static inline unsigned char *msg_at(const ox__chan *c, struct ox__block *b, size_t offset)
{
    return b->data + offset * c->elem_size;
}

static struct ox__block *block_new(ox__chan *c)
{
    /* Acquire: pairs with the release in block_release, so the last
     * reader's accesses happen-before we reset and reuse the block. */
    struct ox__block *b = atomic_exchange_explicit(&c->spare, NULL, memory_order_acquire);
    if (b) {
        /* Relaxed: the block is published by a release store of tail_block /
         * next before anyone else sees it. */
        atomic_store_explicit(&b->next, NULL, memory_order_relaxed);
        for (size_t i = 0; i < BLOCK_CAP; i++)
            atomic_store_explicit(&b->state[i], SLOT_EMPTY, memory_order_relaxed);
        return b;
    }
    b = calloc(1, ox__list_block_bytes(c->elem_size));
    if (!b)
        ox_abort("ox_sender_send", "out of memory growing unbounded channel %p", (void *)c);
    atomic_fetch_add_explicit(&blocks_live, 1, memory_order_relaxed);
    return b;
}

static void block_release(ox__chan *c, struct ox__block *b)
{
    struct ox__block *expected = NULL;
    /* Release: see block_new. */
    if (atomic_compare_exchange_strong_explicit(&c->spare, &expected, b, memory_order_release,
                                                memory_order_relaxed))
        return;
    free(b);
    atomic_fetch_sub_explicit(&blocks_live, 1, memory_order_relaxed);
}

static struct ox__block *wait_next(struct ox__block *b)
{
    ox__backoff bo = {0};
    for (;;) {
        /* Acquire: pairs with the release store of next by the sender that
         * installed it (its reset of the block is visible). */
        struct ox__block *next = atomic_load_explicit(&b->next, memory_order_acquire);
        if (next)
            return next;
        ox__backoff_snooze(&bo);
    }
}

enum { RESERVED = 1, NOT_READY = 0, DISCONNECTED = -1 };

static int start_send(ox__chan *c, struct ox__block **block_out, size_t *offset_out)
{
    ox__backoff bo = {0};
    /* Acquire: see the block installed with this index. */
    size_t tail = atomic_load_explicit(&c->tail, memory_order_acquire);
    struct ox__block *block = atomic_load_explicit(&c->tail_block, memory_order_acquire);
    for (;;) {
        if (tail & MARK_BIT)
            return DISCONNECTED;
        size_t offset = (tail >> SHIFT) % LAP;
        if (offset == BLOCK_CAP) {
            /* The claimer of the last slot is installing the next block. */
            ox__backoff_snooze(&bo);
            tail = atomic_load_explicit(&c->tail, memory_order_acquire);
            block = atomic_load_explicit(&c->tail_block, memory_order_acquire);
            continue;
        }
        if (block == NULL) {
            /* The very first message: install the first block. */
            struct ox__block *first = block_new(c), *expected = NULL;
            /* Release: publishes the zeroed block. */
            if (atomic_compare_exchange_strong_explicit(
                    &c->tail_block, &expected, first, memory_order_release, memory_order_relaxed)) {
                atomic_store_explicit(&c->head_block, first, memory_order_release);
                block = first;
            } else {
                block_release(c, first);
                /* Acquire: the winner's block, published by its release CAS. */
                tail = atomic_load_explicit(&c->tail, memory_order_acquire);
                block = atomic_load_explicit(&c->tail_block, memory_order_acquire);
                continue;
            }
        }
        /* SeqCst: orders the claim before the load of the receivers'
         * is_empty flag in notify (see waker.h). */
        if (atomic_compare_exchange_weak_explicit(&c->tail, &tail, tail + (1u << SHIFT),
                                                  memory_order_seq_cst, memory_order_acquire)) {
            if (offset + 1 == BLOCK_CAP) {
                /* We own the block change: install the next block, then
                 * step tail over the phantom index. Release: the block's
                 * reset is visible to whoever loads these. */
                struct ox__block *next = block_new(c);
                atomic_store_explicit(&c->tail_block, next, memory_order_release);
                atomic_fetch_add_explicit(&c->tail, 1u << SHIFT, memory_order_release);
                atomic_store_explicit(&block->next, next, memory_order_release);
            }
            *block_out = block;
            *offset_out = offset;
            return RESERVED;
        }
        block = atomic_load_explicit(&c->tail_block, memory_order_acquire);
        ox__backoff_spin(&bo);
    }
}

static int start_recv(ox__chan *c, struct ox__block **block_out, size_t *offset_out)
{
    ox__backoff bo = {0};
    /* Acquire: pairs with the release stores that install a block and step
     * head over a block change, so the block seen is the one head names. */
    size_t head = atomic_load_explicit(&c->head, memory_order_acquire);
    struct ox__block *block = atomic_load_explicit(&c->head_block, memory_order_acquire);
    for (;;) {
        size_t offset = (head >> SHIFT) % LAP;
        if (offset == BLOCK_CAP) {
            ox__backoff_snooze(&bo);
            head = atomic_load_explicit(&c->head, memory_order_acquire);
            block = atomic_load_explicit(&c->head_block, memory_order_acquire);
            continue;
        }
        size_t new_head = head + (1u << SHIFT);
        if (!(new_head & MARK_BIT)) {
            /* SeqCst: pairs with the senders' tail CAS and disconnect. */
            size_t tail = atomic_load_explicit(&c->tail, memory_order_seq_cst);
            if (head >> SHIFT == tail >> SHIFT)
                return (tail & MARK_BIT) ? DISCONNECTED : NOT_READY;
            if ((head >> SHIFT) / LAP != (tail >> SHIFT) / LAP)
                new_head |= MARK_BIT;
        }
        if (block == NULL) {
            /* The first sender is installing the first block. */
            ox__backoff_snooze(&bo);
            head = atomic_load_explicit(&c->head, memory_order_acquire);
            block = atomic_load_explicit(&c->head_block, memory_order_acquire);
            continue;
        }
        /* SeqCst: orders the claim as the other head/tail operations. */
        if (atomic_compare_exchange_weak_explicit(&c->head, &head, new_head, memory_order_seq_cst,
                                                  memory_order_acquire)) {
            if (offset + 1 == BLOCK_CAP) {
                struct ox__block *next = wait_next(block);
                size_t next_index = (new_head & ~MARK_BIT) + (1u << SHIFT);
                if (atomic_load_explicit(&next->next, memory_order_relaxed))
                    next_index |= MARK_BIT;
                /* Release: the next block's contents for later receivers
                 * that acquire head / head_block. */
                atomic_store_explicit(&c->head_block, next, memory_order_release);
                atomic_store_explicit(&c->head, next_index, memory_order_release);
            }
            *block_out = block;
            *offset_out = offset;
            return RESERVED;
        }
        block = atomic_load_explicit(&c->head_block, memory_order_acquire);
        ox__backoff_spin(&bo);
    }
}

/* True once every reader of the block but the finisher (the last slot's) has
 * stored READ. Acquire: pairs with each reader's release store, so its copy
 * happens-before our free (and, through its acquire of WRITTEN, its
 * sender's write too). */
static bool all_read(struct ox__block *b)
{
    for (size_t i = 0; i < BLOCK_CAP - 1; i++)
        if (atomic_load_explicit(&b->state[i], memory_order_acquire) != SLOT_READ)
            return false;
    return true;
}

static void push_pending(ox__chan *c, struct ox__block *b)
{
    struct ox__block *top = atomic_load_explicit(&c->pending, memory_order_relaxed);
    do
        atomic_store_explicit(&b->next, top, memory_order_relaxed);
    /* Release: publishes the link (and our scan's acquires) to the sweeper's
     * acquire exchange. Push-only CAS: no ABA. */
    while (!atomic_compare_exchange_weak_explicit(&c->pending, &top, b, memory_order_release,
                                                  memory_order_relaxed));
}

/* Frees the pending blocks whose readers are all done; puts back the rest.
 * Each sweeper owns the stack it took, so sweepers never share a block. */
OX_COLD static void sweep_pending(ox__chan *c)
{
    /* Acquire: pairs with push_pending's release. */
    struct ox__block *b = atomic_exchange_explicit(&c->pending, NULL, memory_order_acquire);
    while (b) {
        struct ox__block *next = atomic_load_explicit(&b->next, memory_order_relaxed);
        if (all_read(b))
            block_release(c, b);
        else
            push_pending(c, b);
        b = next;
    }
}

static inline void sweep_if_pending(ox__chan *c)
{
    /* Relaxed: a hint; the sweep's exchange synchronises. */
    if (OX_UNLIKELY(atomic_load_explicit(&c->pending, memory_order_relaxed) != NULL))
        sweep_pending(c);
}

/* The receiver of a block's last slot, done with its message. */
OX_COLD static void finish_block(ox__chan *c, struct ox__block *b)
{
    if (all_read(b))
        block_release(c, b);
    else
        push_pending(c, b);
    sweep_if_pending(c);
}

OX_COLD static void wait_written(struct ox__block *b, size_t offset)
{
    ox__backoff bo = {0};
    /* Acquire: as in read_slot. */
    while (atomic_load_explicit(&b->state[offset], memory_order_acquire) != SLOT_WRITTEN)
        ox__backoff_snooze(&bo);
}

static inline void read_slot(ox__chan *c, struct ox__block *b, size_t offset, void *out)
{
    /* Acquire: pairs with the sender's release store of WRITTEN, so its
     * message is visible. The sender claimed the slot before us, so it is
     * usually written already. */
    if (OX_UNLIKELY(atomic_load_explicit(&b->state[offset], memory_order_acquire) != SLOT_WRITTEN))
        wait_written(b, offset);
    OX__CHAOS_POINT(); /* slot claimed and written, message not read yet */
    ox__copy_msg(out, msg_at(c, b, offset), c->elem_size);
    if (offset + 1 == BLOCK_CAP) {
        finish_block(c, b);
        return;
    }
    /* Release: our copy happens-before the free (all_read's acquire). Our
     * last access to the block: the finisher may free it right after. */
    atomic_store_explicit(&b->state[offset], SLOT_READ, memory_order_release);
}

static inline void write_slot(ox__chan *c, struct ox__block *b, size_t offset, const void *msg)
{
    OX__CHAOS_POINT(); /* slot claimed, message not written yet */
    ox__copy_msg(msg_at(c, b, offset), msg, c->elem_size);
    /* Release: publishes the message to the receiver's acquire in
     * read_slot. A plain store: the flag is ours alone. */
    atomic_store_explicit(&b->state[offset], SLOT_WRITTEN, memory_order_release);
    ox__chan_notify_receivers(c);
}

OX_COLD static int send_slow(ox__chan *c, const void *msg)
{
    struct ox__block *b;
    size_t offset;
    if (start_send(c, &b, &offset) == DISCONNECTED)
        return OX_EDISCONNECTED;
    write_slot(c, b, offset, msg);
    return 0;
}

/* The fast path: not disconnected, not a block's last slot (its claimer
 * installs the next block), the first block exists, and the first claim
 * succeeds. The rest is start_send, which explains the orderings. */
int ox__list_send(ox__chan *c, const void *msg)
{
    size_t tail = atomic_load_explicit(&c->tail, memory_order_acquire);
    struct ox__block *b = atomic_load_explicit(&c->tail_block, memory_order_acquire);
    size_t offset = (tail >> SHIFT) % LAP;
    if (OX_LIKELY(!(tail & MARK_BIT) && offset + 1 < BLOCK_CAP && b != NULL) &&
        OX_LIKELY(atomic_compare_exchange_weak_explicit(
            &c->tail, &tail, tail + (1u << SHIFT), memory_order_seq_cst, memory_order_relaxed))) {
        write_slot(c, b, offset, msg);
        return 0;
    }
    return send_slow(c, msg);
}

static int recv_slow(ox__chan *c, void *out, bool block, ox_instant deadline, const char *file,
                     int line);

/* The fast path: a message is there (tail is past head), not at a block's
 * last slot (its claimer moves head to the next block), and the first claim
 * succeeds. The rest is start_recv, which explains the orderings. */
int ox__list_recv(ox__chan *c, void *out, bool block, ox_instant deadline, const char *file,
                  int line)
{
    size_t head = atomic_load_explicit(&c->head, memory_order_acquire);
    struct ox__block *b = atomic_load_explicit(&c->head_block, memory_order_acquire);
    size_t offset = (head >> SHIFT) % LAP;
    if (OX_LIKELY(offset + 1 < BLOCK_CAP && b != NULL)) {
        size_t new_head = head + (1u << SHIFT);
        bool ready = true;
        if (!(head & MARK_BIT)) {
            /* Relaxed: a hint. Any tail once loaded is at most the current
             * one, so a head below it has a message (its slot claimed, the
             * block there: the claim below and read_slot do the rest). */
            size_t tail = atomic_load_explicit(&c->tail_seen, memory_order_relaxed);
            if (head >> SHIFT >= tail >> SHIFT) {
                /* SeqCst: as in start_recv. */
                tail = atomic_load_explicit(&c->tail, memory_order_seq_cst);
                atomic_store_explicit(&c->tail_seen, tail, memory_order_relaxed);
            }
            ready = head >> SHIFT < tail >> SHIFT;
            if ((head >> SHIFT) / LAP != (tail >> SHIFT) / LAP)
                new_head |= MARK_BIT;
        }
        if (OX_LIKELY(ready) &&
            OX_LIKELY(atomic_compare_exchange_weak_explicit(
                &c->head, &head, new_head, memory_order_seq_cst, memory_order_relaxed))) {
            read_slot(c, b, offset, out);
            return 0;
        }
    }
    return recv_slow(c, out, block, deadline, file, line);
}

/* Whether a blocked receiver should retry instead of sleeping. */
static bool can_recv(const ox__chan *c)
{
    return !ox__list_is_empty(c) || ox__list_is_disconnected(c);
}

/* The messages from index head up to tail (mark bits ignored). */
static size_t messages_between(size_t head, size_t tail)
{
    tail >>= SHIFT;
    head >>= SHIFT;
    /* A phantom block-change index counts as the next block's first. */
    if (tail % LAP == LAP - 1)
        tail++;
    if (head % LAP == LAP - 1)
        head++;
    /* Rebase both on head's lap, then drop one phantom per lap. */
    size_t base = head / LAP * LAP;
    tail -= base;
    head -= base;
    return tail - head - tail / LAP;
}

/* The messages queued, for ox__chan_wait_for_batch: relaxed loads, since
 * it is only a hint; SIZE_MAX once disconnected. */
static size_t backlog(const ox__chan *c)
{
    size_t head = atomic_load_explicit(&c->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
    return (tail & MARK_BIT) ? SIZE_MAX : messages_between(head, tail);
}

OX_COLD static int recv_slow(ox__chan *c, void *out, bool block, ox_instant deadline,
                             const char *file, int line)
{
    struct ox__block *b;
    size_t offset;
    bool paced = false;
    for (;;) {
        ox__backoff bo = {0};
        for (;;) {
            int r = start_recv(c, &b, &offset);
            if (r == RESERVED) {
                read_slot(c, b, offset, out);
                return 0;
            }
            /* Empty (or done): a good moment to free what stragglers left
             * pending, so a drained channel's memory returns. Not on every
             * message: a preempted straggler can keep a block pending for a
             * while, and rescanning it per message would cost more than the
             * count this scheme saves. */
            if (r == DISCONNECTED) {
                sweep_if_pending(c);
                return OX_EDISCONNECTED;
            }
            if (!block) {
                sweep_if_pending(c);
                return OX_EEMPTY;
            }
            if (!paced) { /* empty: let a streaming sender get ahead first */
                paced = true;
                ox__chan_wait_for_batch(c, OX__CHAN_BATCH, backlog, deadline);
                continue;
            }
            if (ox__backoff_is_completed(&bo))
                break;
            ox__backoff_snooze_partner(&bo);
        }
        sweep_if_pending(c); /* before blocking, as above */
        int why = ox__chan_must_not_wait(deadline);
        if (why != 0)
            return why;

        ox__chan_wait(c, &c->receivers_w, can_recv, deadline, &ox__site_recv, file, line);
    }
}

size_t ox__list_len(const ox__chan *c)
{
    for (;;) {
        /* SeqCst: a consistent snapshot (tail re-read unchanged). */
        size_t tail = atomic_load_explicit(&c->tail, memory_order_seq_cst);
        size_t head = atomic_load_explicit(&c->head, memory_order_seq_cst);
        if (atomic_load_explicit(&c->tail, memory_order_seq_cst) != tail)
            continue;
        return messages_between(head, tail);
    }
}

bool ox__list_is_empty(const ox__chan *c)
{
    /* SeqCst: a blocked receiver's re-check after registering, ordered
     * against the senders' SeqCst claims (see ox__sync_waker_notify). */
    size_t head = atomic_load_explicit(&c->head, memory_order_seq_cst);
    size_t tail = atomic_load_explicit(&c->tail, memory_order_seq_cst);
    return head >> SHIFT == tail >> SHIFT;
}

bool ox__list_is_disconnected(const ox__chan *c)
{
    /* SeqCst: pairs with the SeqCst mark set by the disconnect, for the
     * same re-check. */
    return atomic_load_explicit(&c->tail, memory_order_seq_cst) & MARK_BIT;
}

void ox__list_disconnect_senders(ox__chan *c)
{
    /* SeqCst: receivers that find the list empty see the mark. */
    size_t old = atomic_fetch_or_explicit(&c->tail, MARK_BIT, memory_order_seq_cst);
    if (!(old & MARK_BIT))
        ox__sync_waker_disconnect(&c->receivers_w);
}

/* The last receiver is gone and tail is marked: nobody will receive what
 * is buffered, so it is destroyed and its blocks freed now rather than
 * when the last sender goes (as Rust std does). Senders that claimed a
 * slot before the mark may still be writing it, or installing the next
 * block; this waits for them. */
typedef struct discard_state {
    ox__chan *c;
    struct ox__block *b; /* the block holding head */
    size_t head, tail;
} discard_state;

/* Destroys the messages from d->head to d->tail and frees their blocks.
 * d->head moves past a message before its destructor runs, so if the
 * destructor panics, the unwind cleanup (discard_rest) resumes after it. */
static void discard_from(discard_state *d)
{
    ox__chan *c = d->c;
    while (d->head >> SHIFT != d->tail >> SHIFT) {
        size_t offset = (d->head >> SHIFT) % LAP;
        d->head += 1u << SHIFT;
        if (offset < BLOCK_CAP) {
            wait_written(d->b, offset);
            if (c->destroy)
                c->destroy(msg_at(c, d->b, offset));
        } else {
            struct ox__block *next = wait_next(d->b);
            block_release(c, d->b);
            d->b = next;
        }
    }
    if (d->b)
        block_release(c, d->b);
    d->b = NULL;
    /* Relaxed: read by the final free (after an acq_rel handshake) and by
     * len, which then reports an empty channel. */
    atomic_store_explicit(&c->head, d->head, memory_order_relaxed);
    sweep_if_pending(c);
}

static void discard_rest(void *d)
{
    discard_from(d);
}

static void discard_messages(ox__chan *c)
{
    ox__backoff bo = {0};
    /* Acquire: pairs with the release step over a block change, so the
     * block installed there is visible. */
    size_t tail = atomic_load_explicit(&c->tail, memory_order_acquire);
    while ((tail >> SHIFT) % LAP == BLOCK_CAP) { /* a block change in progress */
        ox__backoff_snooze(&bo);
        tail = atomic_load_explicit(&c->tail, memory_order_acquire);
    }
    /* Relaxed: only receivers write head, and the last receiver's drop
     * (acq_rel on the count) comes after every receive. */
    size_t head = atomic_load_explicit(&c->head, memory_order_relaxed) & ~MARK_BIT;
    /* Exchange, not load: a sender that saw no block and no mark may still
     * install the first block after this; the final free takes that one.
     * Acquire: pairs with the release store of head_block. */
    struct ox__block *b = atomic_exchange_explicit(&c->head_block, NULL, memory_order_acquire);
    while (b == NULL && head >> SHIFT != tail >> SHIFT) {
        /* Messages were claimed in a first block not yet published here. */
        ox__backoff_snooze(&bo);
        b = atomic_exchange_explicit(&c->head_block, NULL, memory_order_acquire);
    }
    discard_state d = {.c = c, .b = b, .head = head, .tail = tail};
    if (c->destroy)
        ox_cleanup_push(discard_rest, &d);
    discard_from(&d);
    if (c->destroy)
        ox__cleanup_pop_own(discard_rest, &d, false);
}

void ox__list_disconnect_receivers(ox__chan *c)
{
    /* SeqCst: ordered with the senders' claim CAS: a claim either came
     * first (its message is discarded below) or fails, and the sender keeps
     * its value. */
    atomic_fetch_or_explicit(&c->tail, MARK_BIT, memory_order_seq_cst);
    discard_messages(c);
}

void ox__list_free_messages(ox__chan *c)
{
    /* Single-threaded: the last handle is gone. */
    size_t head = atomic_load_explicit(&c->head, memory_order_relaxed) & ~MARK_BIT;
    size_t tail = atomic_load_explicit(&c->tail, memory_order_relaxed) & ~MARK_BIT;
    struct ox__block *b = atomic_load_explicit(&c->head_block, memory_order_relaxed);
    while (head != tail) {
        size_t offset = (head >> SHIFT) % LAP;
        if (offset < BLOCK_CAP) {
            if (c->destroy)
                c->destroy(msg_at(c, b, offset));
        } else {
            struct ox__block *next = atomic_load_explicit(&b->next, memory_order_relaxed);
            free(b);
            atomic_fetch_sub_explicit(&blocks_live, 1, memory_order_relaxed);
            b = next;
        }
        head += 1u << SHIFT;
    }
    if (b) {
        free(b);
        atomic_fetch_sub_explicit(&blocks_live, 1, memory_order_relaxed);
    }
    for (struct ox__block *p = atomic_load_explicit(&c->pending, memory_order_relaxed), *next; p;
         p = next) {
        next = atomic_load_explicit(&p->next, memory_order_relaxed);
        free(p);
        atomic_fetch_sub_explicit(&blocks_live, 1, memory_order_relaxed);
    }
    struct ox__block *spare = atomic_load_explicit(&c->spare, memory_order_relaxed);
    if (spare) {
        free(spare);
        atomic_fetch_sub_explicit(&blocks_live, 1, memory_order_relaxed);
    }
}
