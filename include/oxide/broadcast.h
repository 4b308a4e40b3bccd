/* oxide/broadcast.h - a bounded multi-producer, multi-consumer broadcast
 * channel: every receiver gets every message (Tokio's tokio::sync::broadcast,
 * for threads and tasks alike).
 *
 *   ox_broadcast_sender *tx; ox_broadcast_receiver *rx1;
 *   ox_broadcast(sizeof(event), 16, &tx, &rx1);
 *   ox_broadcast_receiver *rx2 = ox_broadcast_subscribe(tx);
 *   ox_broadcast_send(tx, &ev);              // both rx1 and rx2 will get it
 *   uint64_t missed;
 *   int rc = ox_broadcast_recv(rx2, &ev, &missed);
 *   if (rc == OX_ELAGGED) ...                // missed messages were skipped
 *
 * The channel keeps the last capacity messages in a ring. A receiver reads
 * them in order from where it joined (a new receiver sees only messages
 * sent after it subscribed). A sender never waits: when the ring is full
 * it overwrites the oldest message, and a receiver that had not read that
 * one yet has *lagged*: its next recv returns OX_ELAGGED with the number
 * of messages it missed in *missed, and moves it to the oldest message
 * still kept, which the following recv returns. So a receiver gets every
 * message in order, or learns exactly how many it lost and where.
 *
 * Values are copied in and out (a fixed element size per channel). By
 * default a receiver gets a byte copy. A message that owns resources
 * needs options.clone (each receiver gets its own clone; the last receiver
 * to read a message takes the channel's instance itself, uncloned) and
 * options.destroy (run on the channel's instance when it is overwritten
 * unread, when every receiver that could read it is gone, and when the
 * channel is freed). clone and destroy run with the channel's internal
 * lock held: they must not use this channel. If clone panics, the lock is
 * released as the panic leaves, the message stays unread by that receiver
 * and the channel usable. If destroy panics on a message a send
 * overwrites, the send completes (the new message is in) and the panic
 * goes on; if it panics in a receiver's drop, the drop still finishes
 * (destroying the rest) as the panic leaves.
 *
 * In a task (oxide/task.h) a blocking recv suspends the task, not its
 * worker, and is a cancellation point: once the task is aborted, a call
 * that would wait returns OX_ECANCELED instead (one that can complete at
 * once still completes).
 *
 * Handles and disconnection, as oxide's other channels. Each handle has
 * one owner; *_clone / subscribe make another; *_drop gives one up. When
 * the last sender is dropped, receivers read what is left, then get
 * OX_EDISCONNECTED. With no receiver left, send fails with
 * OX_EDISCONNECTED and the value stays the caller's. When the last handle
 * of both kinds is gone the channel is freed. A handle may be used by
 * several threads at once (threads sharing one receiver split its messages
 * between them). NULL or dropped handles abort with the function's name
 * (a dropped handle's memory is kept by its channel until it is freed, so
 * this is detected while the channel lives).
 */
#ifndef OXIDE_BROADCAST_H
#define OXIDE_BROADCAST_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* The handles: opaque, one owner each (see above). */
typedef struct ox_broadcast_sender ox_broadcast_sender;
typedef struct ox_broadcast_receiver ox_broadcast_receiver;

/* What ox_broadcast_with makes: the message size, the ring's capacity and
 * the hooks for messages that own resources. */
typedef struct ox_broadcast_options {
    size_t elem_size; /* bytes per message, > 0 */
    size_t capacity;  /* messages kept, > 0 */
    /* Copies the message at src into dst for one receiver (dst is the
     * receiver's buffer). NULL: a byte copy. */
    void (*clone)(void *dst, const void *src);
    /* Destroys the channel's instance of a message nobody will read any
     * more. NULL: nothing to destroy. */
    void (*destroy)(void *elem);
} ox_broadcast_options;

/* Creates a channel and hands out its first sender and receiver (owned by
 * the caller). Returns 0; OX_EINVAL for a zero elem_size or capacity, NULL
 * tx or rx, or a ring size that overflows; ENOMEM. */
OX_MUST_USE int ox_broadcast(size_t elem_size, size_t capacity, ox_broadcast_sender **tx,
                             ox_broadcast_receiver **rx);
OX_MUST_USE int ox_broadcast_with(const ox_broadcast_options *options, ox_broadcast_sender **tx,
                                  ox_broadcast_receiver **rx);

/* Another sender (tx borrowed, the result owned). */
OX_MUST_USE ox_broadcast_sender *ox_broadcast_sender_clone(ox_broadcast_sender *tx);
/* A new receiver that sees the messages sent from now on (Tokio's
 * subscribe / resubscribe). The argument is borrowed. */
OX_MUST_USE ox_broadcast_receiver *ox_broadcast_subscribe(ox_broadcast_sender *tx);
OX_MUST_USE ox_broadcast_receiver *ox_broadcast_resubscribe(ox_broadcast_receiver *rx);

/* Gives the handle up (taken). A receiver's unread messages no longer
 * wait for it (those only it still had to read are destroyed). */
void ox_broadcast_sender_drop(ox_broadcast_sender *tx);
void ox_broadcast_receiver_drop(ox_broadcast_receiver *rx);

/* Copies elem_size bytes from msg into the ring (the channel now owns
 * them) for every receiver subscribed now, overwriting the oldest message
 * if the ring is full, and wakes the waiting receivers. Never blocks
 * (beyond the short internal lock). Returns 0, or OX_EDISCONNECTED if
 * there is no receiver (nothing copied: msg stays the caller's). */
OX_MUST_USE int ox_broadcast_send(ox_broadcast_sender *tx, const void *msg);

/* Receives the next message into out (the caller owns it). Blocks while
 * there is none and a sender lives. Returns 0; OX_ELAGGED if messages were
 * overwritten before this receiver read them: *missed (if missed is not
 * NULL) gets how many, out is untouched, and the next recv returns the
 * oldest message kept; OX_EDISCONNECTED once every sender is gone and
 * nothing is left to read. */
OX_MUST_USE int ox_broadcast_recv(ox_broadcast_receiver *rx, void *out, uint64_t *missed);
/* As recv, but never blocks: OX_EEMPTY when nothing is there to read. */
OX_MUST_USE int ox_broadcast_try_recv(ox_broadcast_receiver *rx, void *out, uint64_t *missed);
/* As recv, giving up after timeout / at deadline with OX_ETIMEDOUT.
 * Negative timeout: OX_EINVAL. */
OX_MUST_USE int ox_broadcast_recv_timeout(ox_broadcast_receiver *rx, void *out, uint64_t *missed,
                                          ox_nanos timeout);
OX_MUST_USE int ox_broadcast_recv_deadline(ox_broadcast_receiver *rx, void *out, uint64_t *missed,
                                           ox_instant deadline);

/* Messages rx has yet to read (at most the capacity). */
size_t ox_broadcast_len(ox_broadcast_receiver *rx);
/* Receivers subscribed now. */
size_t ox_broadcast_receiver_count(ox_broadcast_sender *tx);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
