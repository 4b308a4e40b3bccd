/* oxide/watch.h - a single-value channel: one sender publishes the latest
 * value, many receivers see it and can wait for it to change (Tokio's
 * tokio::sync::watch, for threads and tasks alike).
 *
 *   ox_watch_sender *tx; ox_watch_receiver *rx;
 *   config c = load();
 *   ox_watch(sizeof c, &c, &tx, &rx);        // the channel now owns c
 *   // a reader thread:
 *   while (ox_watch_changed(rx) == 0) {      // blocks until a new value
 *       ox_watch_borrow(rx, &c);             // copies the latest out
 *       apply(&c);
 *   }                                        // OX_EDISCONNECTED: sender gone
 *   // the writer:
 *   ox_watch_send(tx, &new_config);
 *
 * The channel holds one value of a fixed size. Each send replaces it and
 * bumps a version; a receiver remembers the version it has seen, so it
 * learns that the value changed (not how often: intermediate values may be
 * skipped, by design) and always reads the latest. The initial value
 * counts as seen. A receiver made by ox_watch_subscribe has seen the value
 * current then; a clone has seen what its original had seen.
 *
 * When the sender is dropped, a receiver still gets a value it has not
 * seen (ox_watch_changed returns 0 once more), then OX_EDISCONNECTED; the
 * last value can still be borrowed. When every receiver is gone,
 * ox_watch_send fails with OX_EDISCONNECTED (ox_watch_send_replace still
 * stores), and ox_watch_closed wakes.
 *
 * Values are copied in and out. By default a borrow is a byte copy; a
 * value that owns resources needs options.clone (each borrow gets its own
 * clone) and options.destroy (run on a value replaced by a send, and on
 * the last value when the channel is freed). clone, destroy and a
 * send_modify function run with the channel's internal lock held: they
 * must not use this channel. If clone or modify panics, the lock is
 * released as the panic leaves and the channel stays usable; what modify
 * changed before panicking stays, counted as no change (no receiver is
 * woken), as with Tokio's send_modify. If destroy panics on the value a
 * send replaces, the send completes (the new value is in, receivers are
 * woken) and the panic goes on; if it panics on the last value as the
 * channel is freed, the channel is still freed.
 *
 * In a task (oxide/task.h) a blocking changed or closed suspends the task, not its
 * worker, and is a cancellation point: once the task is aborted, a call
 * that would wait returns OX_ECANCELED instead (one that can complete at
 * once still completes).
 *
 * Handles: one sender (as Tokio's, not clonable), any number of receivers;
 * each handle has one owner and is given up with *_drop; the channel is
 * freed with the last handle. A receiver handle may be shared by several
 * threads (they share its seen version). NULL or dropped handles abort
 * with the function's name while the channel lives.
 */
#ifndef OXIDE_WATCH_H
#define OXIDE_WATCH_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* The handles: opaque, one owner each (see above). */
typedef struct ox_watch_sender ox_watch_sender;
typedef struct ox_watch_receiver ox_watch_receiver;

/* What ox_watch_with makes: the value's size, the first value and the
 * hooks for values that own resources. */
typedef struct ox_watch_options {
    size_t elem_size;    /* bytes of the value, > 0 */
    const void *initial; /* elem_size bytes: the first value (the channel takes it) */
    /* Copies the value at src into dst (a borrower's buffer). NULL: a
     * byte copy. */
    void (*clone)(void *dst, const void *src);
    /* Destroys a value nobody will see any more. NULL: nothing to do. */
    void (*destroy)(void *value);
} ox_watch_options;

/* Creates a channel holding *initial and hands out its sender and first
 * receiver (owned by the caller). Returns 0; OX_EINVAL for a zero
 * elem_size or a NULL initial, tx or rx; ENOMEM. */
OX_MUST_USE int ox_watch(size_t elem_size, const void *initial, ox_watch_sender **tx,
                         ox_watch_receiver **rx);
OX_MUST_USE int ox_watch_with(const ox_watch_options *options, ox_watch_sender **tx,
                              ox_watch_receiver **rx);

/* A new receiver that has seen the current value (tx borrowed). */
OX_MUST_USE ox_watch_receiver *ox_watch_subscribe(ox_watch_sender *tx);
/* A new receiver that has seen what rx has seen (rx borrowed). */
OX_MUST_USE ox_watch_receiver *ox_watch_receiver_clone(ox_watch_receiver *rx);

/* Gives the handle up (taken). The sender's drop wakes the receivers
 * waiting for a change. */
void ox_watch_sender_drop(ox_watch_sender *tx);
void ox_watch_receiver_drop(ox_watch_receiver *rx);

/* Replaces the value with elem_size bytes from value (the channel takes
 * them; the old value is destroyed) and wakes every receiver waiting for
 * a change. Returns 0, or OX_EDISCONNECTED if no receiver is left (nothing
 * stored: value stays the caller's). Never blocks (beyond the short
 * internal lock). */
OX_MUST_USE int ox_watch_send(ox_watch_sender *tx, const void *value);
/* Stores the value even with no receiver; the old value is moved into
 * *old (the caller owns it) or destroyed if old is NULL. */
void ox_watch_send_replace(ox_watch_sender *tx, const void *value, void *old);
/* Calls modify(value, arg) on the stored value in place, then counts it
 * as a change and wakes the waiting receivers (Tokio's send_modify). */
void ox_watch_send_modify(ox_watch_sender *tx, void (*modify)(void *value, void *arg), void *arg);

/* Copies the current value into out (the caller owns the copy). borrow
 * leaves the receiver's seen version alone; borrow_and_update marks the
 * value as seen. The sender's borrow reads the value it last stored. */
void ox_watch_borrow(ox_watch_receiver *rx, void *out);
void ox_watch_borrow_and_update(ox_watch_receiver *rx, void *out);
void ox_watch_sender_borrow(ox_watch_sender *tx, void *out);

/* Waits until the value is one rx has not seen, and marks it seen (read it
 * with ox_watch_borrow). Returns 0; OX_EDISCONNECTED if the sender is gone
 * and rx has seen the last value. */
OX_MUST_USE int ox_watch_changed(ox_watch_receiver *rx);
/* As changed, giving up after timeout / at deadline with OX_ETIMEDOUT.
 * Negative timeout: OX_EINVAL. */
OX_MUST_USE int ox_watch_changed_timeout(ox_watch_receiver *rx, ox_nanos timeout);
OX_MUST_USE int ox_watch_changed_deadline(ox_watch_receiver *rx, ox_instant deadline);

/* Without waiting or marking: *changed tells whether the value is one rx
 * has not seen. Returns 0, or OX_EDISCONNECTED (and *changed false) if the
 * sender is gone and rx has seen the last value; OX_EINVAL if changed is
 * NULL. */
OX_MUST_USE int ox_watch_has_changed(ox_watch_receiver *rx, bool *changed);

/* Blocks until every receiver is gone (Tokio's Sender::closed). Returns 0,
 * or OX_ETIMEDOUT at the deadline. */
OX_MUST_USE int ox_watch_closed(ox_watch_sender *tx);
OX_MUST_USE int ox_watch_closed_deadline(ox_watch_sender *tx, ox_instant deadline);
/* True if no receiver is left. */
bool ox_watch_is_closed(ox_watch_sender *tx);
size_t ox_watch_receiver_count(ox_watch_sender *tx);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
