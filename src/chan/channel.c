/* channel.c - the public send/receive calls: argument checks, then the
 * flavor. */
#include "chan_internal.h"

OX_COLD static _Noreturn void null_buffer(const char *function)
{
    ox_abort(function, "NULL message buffer");
}

/* A NULL buffer is fine for zero-size messages (nothing is copied); the
 * element size is only looked at when the pointer is NULL. */
static inline ox__chan *sender_checked(const ox_sender *tx, const void *msg, const char *function)
{
    ox__chan *c = ox__sender_chan(tx, function);
    if (OX_UNLIKELY(!msg) && c->elem_size != 0)
        null_buffer(function);
    return c;
}

static inline ox__chan *receiver_checked(const ox_receiver *rx, const void *out,
                                         const char *function)
{
    ox__chan *c = ox__receiver_chan(rx, function);
    if (OX_UNLIKELY(!out) && c->elem_size != 0)
        null_buffer(function);
    return c;
}

int ox_sender_send(ox_sender *tx, const void *msg)
{
    return ox__chan_send(sender_checked(tx, msg, __func__), msg, true, OX_INSTANT_NEVER);
}

int ox_sender_try_send(ox_sender *tx, const void *msg)
{
    return ox__chan_send(sender_checked(tx, msg, __func__), msg, false, OX_INSTANT_NEVER);
}

int ox_sender_send_deadline(ox_sender *tx, const void *msg, ox_instant deadline)
{
    return ox__chan_send(sender_checked(tx, msg, __func__), msg, true, deadline);
}

int ox_sender_send_timeout(ox_sender *tx, const void *msg, ox_nanos timeout)
{
    ox__chan *c = sender_checked(tx, msg, __func__);
    if (timeout < 0)
        return OX_EINVAL;
    return ox__chan_send(c, msg, true, ox_instant_after(timeout));
}

int ox_receiver_recv_at(ox_receiver *rx, void *out, const char *file, int line)
{
    return ox__chan_recv(receiver_checked(rx, out, "ox_receiver_recv"), out, true, OX_INSTANT_NEVER,
                         file, line);
}

/* The functions behind the macros of the same name (chan.h), for callers
 * that take their address or were built before the macros. */
int(ox_receiver_recv)(ox_receiver *rx, void *out)
{
    return ox_receiver_recv_at(rx, out, NULL, 0);
}

/* A try_recv that finds the channel empty clears the receivers' event fd,
 * if one was asked for (event.c): a cold path, after the flavor's. */
static inline int try_recv_done(ox__chan *c, int rc)
{
    if (OX_UNLIKELY(rc == OX_EEMPTY) && ox__chan_observed(c))
        ox__chan_event_rearm(c);
    return rc;
}

int ox_receiver_try_recv(ox_receiver *rx, void *out)
{
    ox__chan *c = receiver_checked(rx, out, __func__);
    return try_recv_done(c, ox__chan_recv(c, out, false, OX_INSTANT_NEVER, NULL, 0));
}

int ox_receiver_recv_deadline_at(ox_receiver *rx, void *out, ox_instant deadline, const char *file,
                                 int line)
{
    return ox__chan_recv(receiver_checked(rx, out, "ox_receiver_recv_deadline"), out, true,
                         deadline, file, line);
}

int(ox_receiver_recv_deadline)(ox_receiver *rx, void *out, ox_instant deadline)
{
    return ox_receiver_recv_deadline_at(rx, out, deadline, NULL, 0);
}

int ox_receiver_recv_timeout_at(ox_receiver *rx, void *out, ox_nanos timeout, const char *file,
                                int line)
{
    ox__chan *c = receiver_checked(rx, out, "ox_receiver_recv_timeout");
    if (timeout < 0)
        return OX_EINVAL;
    return ox__chan_recv(c, out, true, ox_instant_after(timeout), file, line);
}

int(ox_receiver_recv_timeout)(ox_receiver *rx, void *out, ox_nanos timeout)
{
    return ox_receiver_recv_timeout_at(rx, out, timeout, NULL, 0);
}

/* ---- with the caller's element size, checked at every call ---- */

OX_COLD static _Noreturn void size_mismatch(const void *handle, const char *kind, size_t size,
                                            size_t elem_size, const char *function)
{
    ox_abort(function, "a %zu-byte message for %s %p of a channel of %zu-byte elements", size, kind,
             handle, elem_size);
}

static inline ox__chan *sender_sized(const ox_sender *tx, const void *msg, size_t size,
                                     const char *function)
{
    ox__chan *c = sender_checked(tx, msg, function);
    if (OX_UNLIKELY(size != c->elem_size))
        size_mismatch(tx, "sender", size, c->elem_size, function);
    return c;
}

static inline ox__chan *receiver_sized(const ox_receiver *rx, const void *out, size_t size,
                                       const char *function)
{
    ox__chan *c = receiver_checked(rx, out, function);
    if (OX_UNLIKELY(size != c->elem_size))
        size_mismatch(rx, "receiver", size, c->elem_size, function);
    return c;
}

int ox_sender_send_sized(ox_sender *tx, const void *msg, size_t size)
{
    return ox__chan_send(sender_sized(tx, msg, size, __func__), msg, true, OX_INSTANT_NEVER);
}

int ox_sender_try_send_sized(ox_sender *tx, const void *msg, size_t size)
{
    return ox__chan_send(sender_sized(tx, msg, size, __func__), msg, false, OX_INSTANT_NEVER);
}

int ox_sender_send_timeout_sized(ox_sender *tx, const void *msg, size_t size, ox_nanos timeout)
{
    ox__chan *c = sender_sized(tx, msg, size, __func__);
    if (timeout < 0)
        return OX_EINVAL;
    return ox__chan_send(c, msg, true, ox_instant_after(timeout));
}

int ox_sender_send_deadline_sized(ox_sender *tx, const void *msg, size_t size, ox_instant deadline)
{
    return ox__chan_send(sender_sized(tx, msg, size, __func__), msg, true, deadline);
}

int ox_receiver_recv_sized(ox_receiver *rx, void *out, size_t size)
{
    return ox__chan_recv(receiver_sized(rx, out, size, __func__), out, true, OX_INSTANT_NEVER, NULL,
                         0);
}

int ox_receiver_try_recv_sized(ox_receiver *rx, void *out, size_t size)
{
    ox__chan *c = receiver_sized(rx, out, size, __func__);
    return try_recv_done(c, ox__chan_recv(c, out, false, OX_INSTANT_NEVER, NULL, 0));
}

int ox_receiver_recv_timeout_sized(ox_receiver *rx, void *out, size_t size, ox_nanos timeout)
{
    ox__chan *c = receiver_sized(rx, out, size, __func__);
    if (timeout < 0)
        return OX_EINVAL;
    return ox__chan_recv(c, out, true, ox_instant_after(timeout), NULL, 0);
}

int ox_receiver_recv_deadline_sized(ox_receiver *rx, void *out, size_t size, ox_instant deadline)
{
    return ox__chan_recv(receiver_sized(rx, out, size, __func__), out, true, deadline, NULL, 0);
}

size_t ox_sender_elem_size(const ox_sender *tx)
{
    return ox__sender_chan(tx, __func__)->elem_size;
}

size_t ox_receiver_elem_size(const ox_receiver *rx)
{
    return ox__receiver_chan(rx, __func__)->elem_size;
}

/* ---- state ---- */

static size_t chan_len(const ox__chan *c)
{
    switch (c->flavor) {
    case OX__FLAVOR_ARRAY:
        return ox__array_len(c);
    case OX__FLAVOR_LIST:
        return ox__list_len(c);
    case OX__FLAVOR_COUNT:
        return ox__count_len(c);
    default:
        return 0;
    }
}

static bool chan_is_empty(const ox__chan *c)
{
    switch (c->flavor) {
    case OX__FLAVOR_ARRAY:
        return ox__array_is_empty(c);
    case OX__FLAVOR_LIST:
        return ox__list_is_empty(c);
    case OX__FLAVOR_COUNT:
        return ox__count_is_empty(c);
    default:
        return true;
    }
}

static bool chan_is_full(const ox__chan *c)
{
    switch (c->flavor) {
    case OX__FLAVOR_ARRAY:
        return ox__array_is_full(c);
    case OX__FLAVOR_LIST:
        return false;
    case OX__FLAVOR_COUNT:
        return ox__count_is_full(c);
    default:
        return true;
    }
}

size_t ox_sender_len(const ox_sender *tx)
{
    return chan_len(ox__sender_chan(tx, __func__));
}

size_t ox_receiver_len(const ox_receiver *rx)
{
    return chan_len(ox__receiver_chan(rx, __func__));
}

size_t ox_sender_capacity(const ox_sender *tx)
{
    return ox__sender_chan(tx, __func__)->cap;
}

size_t ox_receiver_capacity(const ox_receiver *rx)
{
    return ox__receiver_chan(rx, __func__)->cap;
}

bool ox_sender_is_empty(const ox_sender *tx)
{
    return chan_is_empty(ox__sender_chan(tx, __func__));
}

bool ox_receiver_is_empty(const ox_receiver *rx)
{
    return chan_is_empty(ox__receiver_chan(rx, __func__));
}

bool ox_sender_is_full(const ox_sender *tx)
{
    return chan_is_full(ox__sender_chan(tx, __func__));
}

bool ox_receiver_is_full(const ox_receiver *rx)
{
    return chan_is_full(ox__receiver_chan(rx, __func__));
}
