/* oxide/chan.h - channels: unbounded, bounded and rendezvous, with
 * disconnection, timeouts, iteration and select.
 *
 * Rust's std::sync::mpsc (and crossbeam-channel's multi-consumer model) in C:
 *
 *   ox_sender *tx; ox_receiver *rx;
 *   ox_channel(sizeof(int), OX_UNBOUNDED, &tx, &rx);
 *   int v = 42;
 *   ox_sender_send(tx, &v);          // copies sizeof(int) bytes in
 *   int got;
 *   ox_receiver_recv(rx, &got);      // copies them out
 *
 * Values are copied in and out by value: every channel has a fixed element
 * size, and a message costs no allocation of its own (unbounded channels
 * grow in blocks of 63 slots that are freed again as they drain).
 *
 * In a task (oxide/task.h) a blocking send, receive or select suspends the
 * task, not its worker, and is a cancellation point: once the task is
 * aborted, a call that would wait returns OX_ECANCELED instead.
 *
 * Zero-size messages (Rust's Sender<()>, Go's chan struct{}): an element
 * size of 0 makes a channel of bare signals ("done", "tick", "stop"). It
 * carries a count and no bytes: every flavor, timeout, select and
 * disconnection works as for any size, no buffer memory grows with the
 * messages (a bounded or unbounded one is a counter in the channel itself),
 * and the message pointers may be NULL (nothing is read or written):
 *
 *   ox_channel(0, OX_UNBOUNDED, &stop_tx, &stop_rx);
 *   ox_sender_send(stop_tx, NULL);   ...   ox_receiver_recv(stop_rx, NULL);
 *
 * As with any message, a send happens-before the receive that takes it.
 *
 * Flavors, chosen by the capacity:
 *   OX_UNBOUNDED  send never blocks (a linked list of blocks);
 *   N >= 1        send blocks while N messages are buffered (a ring of slots);
 *   0             rendezvous: send blocks until a receiver takes the value
 *                 straight from the sender's buffer.
 *
 * Handles and ownership. ox_channel() hands out one sender and one receiver.
 * Each handle has one owner; *_clone() makes another owned handle, *_drop()
 * gives one up. Any number of senders and receivers may exist (multi-producer,
 * multi-consumer: every message goes to exactly one receiver). When the last
 * sender is dropped, receivers still get every buffered message, then
 * OX_EDISCONNECTED. When the last receiver is dropped, send fails with
 * OX_EDISCONNECTED and the value stays the caller's (nothing was copied),
 * and the messages still buffered are destroyed right then (the element
 * destructor runs on each; an unbounded channel's blocks are freed), as in
 * Rust std: nobody can receive them any more. When the last handle of
 * either kind is gone, the channel is freed.
 *
 * A handle may be used from any thread, by several threads at once (a handle
 * is shared the way &Sender is shared in Rust); dropping it must happen after
 * every use of it, like any free().
 *
 * Misuse. Passing NULL or a handle that was already dropped aborts with
 * "<function>: ..." naming the function. What is checked: every handle keeps
 * a magic word that drop overwrites, and a dropped handle's memory stays owned
 * by its channel (recycled by a later clone) until the channel is freed; so a
 * dropped handle used while its channel still lives aborts (unless a later
 * clone recycled that very handle, which is then valid again). Not checked:
 * using a handle after its channel was freed (every handle of both kinds
 * dropped): that memory is gone, and AddressSanitizer reports it. A NULL
 * message buffer aborts too (it is fine for zero-size messages). Bad values
 * (negative timeout, a capacity whose buffer would not fit in memory) return
 * OX_EINVAL.
 *
 * A blocking call spins, then sleeps on a futex: a hand-off between two
 * running threads usually costs no system call. The spin adapts to the
 * thread's recent waits (at most 10 us; now and then 50 us, to find out
 * whether the other side is awake); in a task a blocking call never spins.
 */
#ifndef OXIDE_CHAN_H
#define OXIDE_CHAN_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif
OX__API_BEGIN

/* The capacity of an unbounded channel. */
#define OX_UNBOUNDED SIZE_MAX

/* The two kinds of handle on a channel (opaque; see "Handles and
 * ownership" at the top of this file). */
typedef struct ox_sender ox_sender;
typedef struct ox_receiver ox_receiver;

/* What ox_channel_with() makes. */
typedef struct ox_channel_options {
    size_t elem_size; /* bytes per message; 0: bare signals (see above) */
    size_t capacity;  /* OX_UNBOUNDED, 0 (rendezvous) or N */
    /* Called on each message still buffered when the last receiver is
     * dropped (by the thread dropping it), so none is leaked. NULL: nothing
     * to destroy. Never called on messages that were received, or whose
     * send failed. Zero-size messages: called once per message, with NULL.
     * If it panics, the drop still finishes on the way out
     * (Rust's mpmc leaks here instead): the remaining messages are
     * destroyed, the receivers' side is finished so that the channel is
     * freed with the last sender, and then the panic goes on to its catch
     * point. A second destructor that panics during that is a panic while
     * panicking: the process aborts. */
    void (*destroy)(void *elem);
} ox_channel_options;

/* Creates a channel and hands out its first sender and receiver (both owned
 * by the caller). Returns 0; OX_EINVAL if tx or rx is NULL, or the capacity
 * times the element size overflows; ENOMEM. elem_size may be 0. */
OX_MUST_USE int ox_channel(size_t elem_size, size_t capacity, ox_sender **tx, ox_receiver **rx);
OX_MUST_USE int ox_channel_with(const ox_channel_options *options, ox_sender **tx,
                                ox_receiver **rx);

/* Another owned handle to the same channel (borrowing tx/rx). Aborts if the
 * handle was dropped, or on out-of-memory. */
OX_MUST_USE ox_sender *ox_sender_clone(ox_sender *tx);
OX_MUST_USE ox_receiver *ox_receiver_clone(ox_receiver *rx);

/* Gives the handle up (takes it). The last sender's drop disconnects the
 * receivers (they drain, then get OX_EDISCONNECTED); the last receiver's drop
 * disconnects the senders; blocked calls on the other side wake up. Dropping a
 * dropped handle aborts. */
void ox_sender_drop(ox_sender *tx);
void ox_receiver_drop(ox_receiver *rx);

/* ---- sending: msg points to elem_size bytes, borrowed (copied in); NULL
 * is allowed only when elem_size is 0 ----
 * Return 0 once the value is in the channel (for a rendezvous channel: once a
 * receiver has taken it). OX_EDISCONNECTED: every receiver is gone; nothing
 * was copied, the value is still the caller's. */

/* Blocks while the channel is full. */
OX_MUST_USE int ox_sender_send(ox_sender *tx, const void *msg);
/* Never blocks: OX_EFULL if there is no room (rendezvous: no receiver
 * waiting). */
OX_MUST_USE int ox_sender_try_send(ox_sender *tx, const void *msg);
/* Blocks at most timeout (OX_ETIMEDOUT); negative: OX_EINVAL. A zero timeout
 * tries once. */
OX_MUST_USE int ox_sender_send_timeout(ox_sender *tx, const void *msg, ox_nanos timeout);
/* Blocks until the deadline at most; one in the past tries once. */
OX_MUST_USE int ox_sender_send_deadline(ox_sender *tx, const void *msg, ox_instant deadline);

/* ---- receiving: out points to elem_size writable bytes (NULL allowed
 * when elem_size is 0) ----
 * Return 0 with the message copied to out. OX_EDISCONNECTED: every sender is
 * gone and nothing is buffered (out untouched). */

/* Blocks while the channel is empty. A blocking receive that finds a
 * buffered channel empty while senders are streaming into it (a message
 * arrives within 50 ns, and more keep coming) first lets them get up to
 * 1024 messages ahead, or until they slow down, about 10 us at most:
 * reading right behind a writer moves every cache line between the cores
 * several times, and measured 3-6x slower. A hand-off waits one 50 ns look
 * at most (one microsecond if it lands inside that look). */
OX_MUST_USE int ox_receiver_recv(ox_receiver *rx, void *out);
/* Never blocks: OX_EEMPTY if nothing is ready. */
OX_MUST_USE int ox_receiver_try_recv(ox_receiver *rx, void *out);
/* Blocks at most timeout (OX_ETIMEDOUT); negative: OX_EINVAL. */
OX_MUST_USE int ox_receiver_recv_timeout(ox_receiver *rx, void *out, ox_nanos timeout);
OX_MUST_USE int ox_receiver_recv_deadline(ox_receiver *rx, void *out, ox_instant deadline);

/* ---- typed convenience: the size checked at every call ----
 * The calls above copy the channel's element size, whatever the buffer
 * really holds: a buffer of the wrong type is silently truncated or
 * overrun. These take the size of the caller's type and abort, naming the
 * call and both sizes, when it differs from the channel's element size:
 *
 *   ox_sender *tx; ox_receiver *rx;
 *   OX_CHANNEL_OF(struct point, 16, &tx, &rx);  // element size: the type's
 *   struct point p = {1, 2};
 *   OX_SEND(tx, &p);                            // sizeof p, checked
 *   OX_RECV(rx, &p);
 *
 * The macros take the size from the pointer's type (sizeof *msg), so pass a
 * typed pointer, not a void * (-Wpointer-arith, part of -Wpedantic, rejects
 * sizeof on void; without it the size is 1 and the check aborts). Each
 * argument is evaluated once. The *_sized functions are the same calls with
 * the size given by hand. Same results as the unchecked calls. */
#define OX_CHANNEL_OF(type, capacity, tx, rx) ox_channel(sizeof(type), (capacity), (tx), (rx))
#define OX_SEND(tx, msg)                      ox_sender_send_sized((tx), (msg), sizeof *(msg))
#define OX_TRY_SEND(tx, msg)                  ox_sender_try_send_sized((tx), (msg), sizeof *(msg))
#define OX_SEND_TIMEOUT(tx, msg, timeout)                                                          \
    ox_sender_send_timeout_sized((tx), (msg), sizeof *(msg), (timeout))
#define OX_SEND_DEADLINE(tx, msg, deadline)                                                        \
    ox_sender_send_deadline_sized((tx), (msg), sizeof *(msg), (deadline))
#define OX_RECV(rx, out)     ox_receiver_recv_sized((rx), (out), sizeof *(out))
#define OX_TRY_RECV(rx, out) ox_receiver_try_recv_sized((rx), (out), sizeof *(out))
#define OX_RECV_TIMEOUT(rx, out, timeout)                                                          \
    ox_receiver_recv_timeout_sized((rx), (out), sizeof *(out), (timeout))
#define OX_RECV_DEADLINE(rx, out, deadline)                                                        \
    ox_receiver_recv_deadline_sized((rx), (out), sizeof *(out), (deadline))
/* OX_CHANNEL_FOR_EACH with the check. */
#define OX_CHANNEL_FOR_EACH_OF(rx, out) while (OX_RECV((rx), (out)) == 0)

/* The calls behind the typed macros: as ox_sender_send() and the others,
 * after aborting if size is not the channel's element size. */
OX_MUST_USE int ox_sender_send_sized(ox_sender *tx, const void *msg, size_t size);
OX_MUST_USE int ox_sender_try_send_sized(ox_sender *tx, const void *msg, size_t size);
OX_MUST_USE int ox_sender_send_timeout_sized(ox_sender *tx, const void *msg, size_t size,
                                             ox_nanos timeout);
OX_MUST_USE int ox_sender_send_deadline_sized(ox_sender *tx, const void *msg, size_t size,
                                              ox_instant deadline);
OX_MUST_USE int ox_receiver_recv_sized(ox_receiver *rx, void *out, size_t size);
OX_MUST_USE int ox_receiver_try_recv_sized(ox_receiver *rx, void *out, size_t size);
OX_MUST_USE int ox_receiver_recv_timeout_sized(ox_receiver *rx, void *out, size_t size,
                                               ox_nanos timeout);
OX_MUST_USE int ox_receiver_recv_deadline_sized(ox_receiver *rx, void *out, size_t size,
                                                ox_instant deadline);

/* The element size the channel was created with. */
size_t ox_sender_elem_size(const ox_sender *tx);
size_t ox_receiver_elem_size(const ox_receiver *rx);

/* The blocking receives are macros that pass their call site along, as
 * ox_mutex_lock does: ox_dump_blocked_threads() shows it for a receiver
 * that is blocked (oxide/check.h). The functions above stay callable (by
 * address, or as (ox_receiver_recv)(rx, out)) and show no site. */
#define ox_receiver_recv(rx, out) ox_receiver_recv_at((rx), (out), __FILE__, __LINE__)
#define ox_receiver_recv_timeout(rx, out, timeout)                                                 \
    ox_receiver_recv_timeout_at((rx), (out), (timeout), __FILE__, __LINE__)
#define ox_receiver_recv_deadline(rx, out, deadline)                                               \
    ox_receiver_recv_deadline_at((rx), (out), (deadline), __FILE__, __LINE__)
OX_MUST_USE int ox_receiver_recv_at(ox_receiver *rx, void *out, const char *file, int line);
OX_MUST_USE int ox_receiver_recv_timeout_at(ox_receiver *rx, void *out, ox_nanos timeout,
                                            const char *file, int line);
OX_MUST_USE int ox_receiver_recv_deadline_at(ox_receiver *rx, void *out, ox_instant deadline,
                                             const char *file, int line);

/* ---- state (a snapshot: other threads may change it at once) ---- */
size_t ox_sender_len(const ox_sender *tx);          /* messages buffered; 0 for rendezvous */
size_t ox_receiver_len(const ox_receiver *rx);      /* the same, through a receiver */
size_t ox_sender_capacity(const ox_sender *tx);     /* N, 0, or OX_UNBOUNDED */
size_t ox_receiver_capacity(const ox_receiver *rx); /* the same, through a receiver */
bool ox_sender_is_empty(const ox_sender *tx);       /* rendezvous: always true */
bool ox_receiver_is_empty(const ox_receiver *rx);   /* the same, through a receiver */
bool ox_sender_is_full(const ox_sender *tx);        /* rendezvous: always true; unbounded: never */
bool ox_receiver_is_full(const ox_receiver *rx);    /* the same, through a receiver */

/* ---- event-loop interop: a receiver as a file descriptor ----
 * For a program whose thread runs a foreign event loop (epoll, GLib, libuv)
 * and cannot block in ox_receiver_recv:
 *
 *   int fd;
 *   ox_receiver_event_fd(rx, &fd);       // add fd to the loop, for reading
 *   // when the loop says fd is readable:
 *   while (ox_receiver_try_recv(rx, &msg) == 0)
 *       handle(msg);                     // until OX_EEMPTY (or disconnected)
 *
 * The fd is readable while the channel has something for a receiver: a
 * buffered message, a disconnection (every sender gone: try_recv says
 * OX_EDISCONNECTED, and the fd stays readable), or, for a rendezvous
 * channel, a sender waiting with its value (which try_recv then takes; a
 * try_send into such a channel still fails, since nobody waits to
 * receive). A try_recv that returns OX_EEMPTY clears it: level-triggered
 * as the loop sees it, so a loop that drains the channel after each wake
 * never misses a message and never spins. It may rarely be readable with
 * nothing to take (another receiver was faster); try_recv then clears it.
 * Only ox_receiver_try_recv (and OX_TRY_RECV) clears it; the blocking
 * receives and select do not.
 *
 * Returns 0 and the fd in *fd: the same fd for every call on any receiver
 * of the channel. It belongs to the channel: do not read, write or close
 * it; it is closed when the channel is freed (every sender and receiver
 * dropped), so take it out of the loop before dropping the last handle.
 * OX_EINVAL if fd is NULL; errno if the eventfd cannot be made (EMFILE).
 * Channels that never ask for one pay nothing for it. */
OX_MUST_USE int ox_receiver_event_fd(ox_receiver *rx, int *fd);

/* ---- iteration ----
 * OX_CHANNEL_FOR_EACH(rx, &v) { ... } receives into v until the channel is
 * disconnected and drained (Rust's `for v in rx`); break leaves early.
 * OX_CHANNEL_TRY_FOR_EACH(rx, &v) { ... } receives what is ready without
 * blocking and stops at the first OX_EEMPTY or OX_EDISCONNECTED (try_iter). */
#define OX_CHANNEL_FOR_EACH(rx, out)     while (ox_receiver_recv((rx), (out)) == 0)
#define OX_CHANNEL_TRY_FOR_EACH(rx, out) while (ox_receiver_try_recv((rx), (out)) == 0)

/* ---- select ----
 * Waits on several operations at once and completes exactly one of them:
 *
 *   uint64_t a; int b = 7;
 *   ox_select_op ops[] = {OX_SELECT_RECV(rx1, &a), OX_SELECT_SEND(tx2, &b)};
 *   size_t i;
 *   int rc = ox_select(ops, 2, &i);   // ops[i] happened (rc 0) or found its
 *                                     // channel disconnected (rc OX_EDISCONNECTED)
 *
 * Any mix of sends and receives on any channels (a handle may appear more
 * than once). When several operations are ready, each is equally likely to be
 * chosen (the order is a fresh random permutation on every call, as in Go and
 * crossbeam). A disconnected channel counts as ready: the operation reports
 * OX_EDISCONNECTED and did nothing. The op array is borrowed and must stay in
 * place during the call (while blocked, the waiter records live in it).
 *
 * Disabled cases. An op with no handle (tx and rx both NULL: OX_SELECT_NEVER,
 * or OX_SELECT_RECV / OX_SELECT_SEND given a NULL handle) can never complete
 * (Go's nil channel, crossbeam's never()): it stays in the array, keeps its
 * index, and is never chosen. So one op array can serve a whole loop, cases
 * switched off and on by setting their handle:
 *
 *   if (rc == OX_EDISCONNECTED) ops[i].rx = NULL;   // drained: stop asking
 *
 * The empty select. With no live op (n == 0, or all disabled) nothing can
 * ever complete: ox_select_try returns OX_EBUSY (Go's `select { default: }`);
 * ox_select_timeout / _deadline wait until the deadline, then return
 * OX_ETIMEDOUT; ox_select blocks forever (Go's `select {}`; in a task, until
 * the task is aborted: OX_ECANCELED). That is almost always a bug, so it is
 * made visible: ox_dump_blocked_threads shows the thread as blocked on
 * "select with no live cases", and the lock-order checker, when on, reports
 * it as it starts (OX_LOCKDEP=abort aborts).
 */
typedef struct ox_select_op {
    ox_sender *tx;     /* a send: the sender (rx NULL) */
    ox_receiver *rx;   /* a receive: the receiver (tx NULL) */
    void *buf;         /* send: the value (read); receive: where it goes */
    void *ox__priv[5]; /* internal: the waiter record while blocked */
} ox_select_op;

/* A select operation: send msg (borrowed; read when the send happens) with
 * sender, or receive into out with receiver. Use them in the ops array. In
 * C++17, which has no designated initialisers, they are built by an inline
 * function. */
#ifdef __cplusplus
/* C++17 has no designated initialisers: the same ops, built by functions. */
static inline ox_select_op ox__select_op(ox_sender *tx, ox_receiver *rx, void *buf)
{
    ox_select_op op = {};
    op.tx = tx;
    op.rx = rx;
    op.buf = buf;
    return op;
}
#define OX_SELECT_SEND(sender, msg)   ox__select_op((sender), NULL, (void *)(msg))
#define OX_SELECT_RECV(receiver, out) ox__select_op(NULL, (receiver), (out))
#else
#define OX_SELECT_SEND(sender, msg)   ((ox_select_op){.tx = (sender), .buf = (void *)(msg)})
#define OX_SELECT_RECV(receiver, out) ((ox_select_op){.rx = (receiver), .buf = (out)})
#endif
/* A disabled case: never chosen (crossbeam's never(), a nil channel in Go). */
#define OX_SELECT_NEVER OX_SELECT_RECV(NULL, NULL)

/* Block until one operation completes. *index gets the chosen operation's
 * index; returns 0 (it happened) or OX_EDISCONNECTED (its channel is
 * disconnected: nothing sent or received). With no live op, blocks forever
 * (see above). ops may be NULL when n is 0. Aborts on a malformed op (both
 * tx and rx, a NULL buf for a message of nonzero size, a dropped handle) or
 * a NULL index. */
OX_MUST_USE int ox_select(ox_select_op *ops, size_t n, size_t *index);
/* As ox_select, giving up with OX_ETIMEDOUT after timeout / at deadline
 * (negative timeout: OX_EINVAL); *index is then untouched. */
OX_MUST_USE int ox_select_timeout(ox_select_op *ops, size_t n, ox_nanos timeout, size_t *index);
OX_MUST_USE int ox_select_deadline(ox_select_op *ops, size_t n, ox_instant deadline, size_t *index);
/* Never blocks: OX_EBUSY if no operation is ready (or none is live);
 * *index is then untouched. */
OX_MUST_USE int ox_select_try(ox_select_op *ops, size_t n, size_t *index);

OX__API_END

#ifdef __cplusplus
}
#endif
#endif
