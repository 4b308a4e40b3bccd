/* select.c - waiting on several channel operations (crossbeam's select.rs).
 *
 * 1. Try every operation once, in a fresh random order (fairness: each
 *    ready operation is equally likely to win, as in Go).
 * 2. If none was ready and the caller blocks: register one waiter per
 *    operation, all sharing one context, in the op array the caller passed
 *    (on its stack); if an operation turns out ready while registering, abort
 *    the wait. Then wait until some channel claims the context.
 * 3. Unregister everything. If a rendezvous partner claimed us, it already
 *    copied the message (into our buffer, or out of it): done. If a buffered
 *    channel woke us, try that operation; otherwise start over at 1.
 *
 * A disabled op (no handle: Go's nil channel, crossbeam's never()) takes no
 * part: the permutation holds only the live ops. With none live there is
 * nothing that could ever complete, and the select only waits for its
 * deadline: OX_EBUSY at once for a try, OX_ETIMEDOUT for a timed select,
 * and forever for ox_select (Go's `select {}`), visibly: the blocked-thread
 * dump shows the wait as "select with no live cases", and the lock-order
 * checker, when on, reports it as it starts.
 */
#include "chan_internal.h"

#include "../check/lockdep.h"

#include <stdlib.h>

/* The private part of an ox_select_op. */
typedef struct op_priv {
    ox__waiter w;    /* cx NULL: not registered */
    uintptr_t order; /* position k holds the index of the k-th op to try */
} op_priv;

_Static_assert(sizeof(op_priv) <= sizeof(((ox_select_op *)0)->ox__priv),
               "ox_select_op has room for its waiter record");

static inline op_priv *priv(ox_select_op *op)
{
    return (op_priv *)(void *)op->ox__priv;
}

static _Thread_local uint64_t rng_state;

static uint64_t next_random(void)
{
    uint64_t x = rng_state;
    if (x == 0) {
        x = (uint64_t)ox_instant_now().ns ^ ((uint64_t)(uintptr_t)&rng_state << 16) ^
            0x9e3779b97f4a7c15u;
        if (x == 0)
            x = 1;
    }
    /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1du;
}

void ox__select_seed(uint64_t seed)
{
    rng_state = seed != 0 ? seed : 1; /* 0 would mean "seed from the clock" */
}

static inline bool op_is_live(const ox_select_op *op)
{
    return op->tx != NULL || op->rx != NULL;
}

static inline ox__chan *op_chan(const ox_select_op *op)
{
    return op->tx ? op->tx->h.chan : op->rx->h.chan;
}

enum { WOULD_BLOCK = -1 };

/* One non-blocking attempt: 0, OX_EDISCONNECTED or WOULD_BLOCK. */
static int op_try(ox_select_op *op)
{
    int rc = op->tx ? ox__chan_send(op_chan(op), op->buf, false, OX_INSTANT_NEVER)
                    : ox__chan_recv(op_chan(op), op->buf, false, OX_INSTANT_NEVER, NULL, 0);
    return rc == OX_EFULL || rc == OX_EEMPTY ? WOULD_BLOCK : rc;
}

/* Registers op's waiter; true if op is ready now (or its channel
 * disconnected), so that waiting would be wrong. */
static bool op_register(ox_select_op *op, ox__ctx *cx)
{
    ox__waiter *e = &priv(op)->w;
    e->cx = NULL;
    e->next = e->prev = e;
    ox__chan *c = op_chan(op);
    bool ready;
    switch (c->flavor) {
    case OX__FLAVOR_ARRAY:
        if (op->rx) {
            ox__sync_waker_register(&c->receivers_w, e, cx);
            return !ox__array_is_empty(c) || ox__array_is_disconnected(c);
        }
        ox__sync_waker_register(&c->senders_w, e, cx);
        return !ox__array_is_full(c) || ox__array_is_disconnected(c);
    case OX__FLAVOR_COUNT:
        if (op->rx) {
            ox__sync_waker_register(&c->receivers_w, e, cx);
            return !ox__count_is_empty(c) || ox__count_is_disconnected(c);
        }
        ox__sync_waker_register(&c->senders_w, e, cx);
        return !ox__count_is_full(c) || ox__count_is_disconnected(c);
    case OX__FLAVOR_LIST:
        if (op->rx) {
            ox__sync_waker_register(&c->receivers_w, e, cx);
            return !ox__list_is_empty(c) || ox__list_is_disconnected(c);
        }
        return true; /* an unbounded send is always ready */
    default:
        ox__zero_lock(c);
        if (op->rx) {
            ox__waker_register(OX__ZERO_RECEIVERS(c), e, cx, op->buf);
            ready = ox__waker_can_select(OX__ZERO_SENDERS(c));
        } else {
            ox__waker_register(OX__ZERO_SENDERS(c), e, cx, op->buf);
            ready = ox__waker_can_select(OX__ZERO_RECEIVERS(c));
        }
        ready = ready || ox__zero_is_disconnected(c);
        /* A waiting send: see wait_as in zero.c. Relaxed: written under
         * the lock we hold. */
        bool observed =
            op->tx && (atomic_load_explicit(&c->receivers_w.is_empty, memory_order_relaxed) &
                       OX__WAKER_OBSERVED);
        ox__zero_unlock(c);
        if (observed)
            ox__chan_event_signal(c);
        return ready;
    }
}

static void op_unregister(ox_select_op *op)
{
    ox__waiter *e = &priv(op)->w;
    if (!e->cx)
        return;
    ox__chan *c = op_chan(op);
    switch (c->flavor) {
    case OX__FLAVOR_ARRAY:
    case OX__FLAVOR_LIST:
    case OX__FLAVOR_COUNT:
        ox__sync_waker_unregister(op->rx ? &c->receivers_w : &c->senders_w, e);
        break;
    default:
        ox__zero_lock(c);
        ox__waker_unregister(op->rx ? OX__ZERO_RECEIVERS(c) : OX__ZERO_SENDERS(c), e);
        ox__zero_unlock(c);
        break;
    }
}

static void check_ops(ox_select_op *ops, size_t n, const char *function)
{
    if (n && !ops)
        ox_abort(function, "NULL op array");
    for (size_t i = 0; i < n; i++) {
        ox_select_op *op = &ops[i];
        if (op->tx != NULL && op->rx != NULL)
            ox_abort(function, "op %zu names both a sender and a receiver", i);
        if (!op_is_live(op))
            continue; /* disabled */
        const ox__chan *c =
            op->tx ? ox__sender_chan(op->tx, function) : ox__receiver_chan(op->rx, function);
        if (!op->buf && c->elem_size != 0)
            ox_abort(function, "op %zu has a NULL message buffer", i);
    }
}

/* A cancellation point in a task, as the other selects. */
static const ox__wait_site site_no_live_cases = {.what = "select with no live cases",
                                                 .cancellable = true};

/* No op can ever complete: waits for the deadline (forever for
 * OX_INSTANT_NEVER), where the blocked-thread dump shows it; in a task,
 * until the task is aborted (OX_ECANCELED). */
OX_COLD static int select_nothing(const ox_select_op *ops, bool block, ox_instant deadline)
{
    if (!block)
        return OX_EBUSY;
    /* Relaxed: see ox__lockdep_on in src/check/lockdep.h. */
    if (deadline.ns == OX_INSTANT_NEVER.ns &&
        atomic_load_explicit(&ox__lockdep_on, memory_order_relaxed))
        ox__lockdep_blocks_forever(site_no_live_cases.what, ops);
    /* A word nobody else knows: only the deadline, an abort of the task,
     * or a spurious wake-up (hence the loop) ends the wait. */
    _Atomic uint32_t never = 0;
    for (;;) {
        int why = ox__chan_must_not_wait(deadline);
        if (why != 0)
            return why;
        ox__park_wait(&never, 0, deadline, &site_no_live_cases, ops);
    }
}

static int run_select(ox_select_op *ops, size_t n, bool block, ox_instant deadline, size_t *index,
                      const char *function)
{
    check_ops(ops, n, function);
    if (!index)
        ox_abort(function, "NULL index");

    /* The live ops, in a fresh uniform permutation (Fisher-Yates) for this
     * call: position k < live holds the index of the k-th op to try. */
    size_t live = 0;
    for (size_t i = 0; i < n; i++)
        if (op_is_live(&ops[i]))
            priv(&ops[live++])->order = i;
    if (live == 0)
        return select_nothing(ops, block, deadline);
    for (size_t k = live - 1; k > 0; k--) {
        size_t j = (size_t)(next_random() % (k + 1));
        uintptr_t t = priv(&ops[k])->order;
        priv(&ops[k])->order = priv(&ops[j])->order;
        priv(&ops[j])->order = t;
    }

    for (;;) {
        for (size_t k = 0; k < live; k++) {
            size_t i = priv(&ops[k])->order;
            int rc = op_try(&ops[i]);
            if (rc != WOULD_BLOCK) {
                *index = i;
                return rc;
            }
        }
        if (!block)
            return OX_EBUSY;
        int why = ox__chan_must_not_wait(deadline);
        if (why != 0)
            return why;

        ox__ctx cx;
        ox__ctx_init(&cx, NULL); /* in several lists: claimed by CAS */
        size_t registered = 0;
        bool ready = false;
        while (registered < live && !ready) {
            size_t i = priv(&ops[registered])->order;
            registered++;
            ready = op_register(&ops[i], &cx);
            /* Relaxed: a hint to stop early; the wait below decides. */
            if (atomic_load_explicit(&cx.select, memory_order_relaxed) != OX__SEL_WAITING)
                break;
        }
        OX__CHAOS_POINT(); /* registered on every channel, not yet waiting */
        uintptr_t sel = ready ? ox__ctx_abort_now(&cx, &ox__site_select, ops)
                              : ox__ctx_wait_until(&cx, deadline, &ox__site_select, ops);
        for (size_t k = 0; k < registered; k++)
            op_unregister(&ops[priv(&ops[k])->order]);

        if (sel == OX__SEL_ABORTED || sel == OX__SEL_DISCONNECTED)
            continue; /* try again: a disconnected op reports it then */
        for (size_t k = 0; k < registered; k++) {
            size_t i = priv(&ops[k])->order;
            if ((uintptr_t)&priv(&ops[i])->w != sel)
                continue;
            if (op_chan(&ops[i])->flavor == OX__FLAVOR_ZERO) {
                *index = i; /* the partner did the copy */
                return 0;
            }
            int rc = op_try(&ops[i]);
            if (rc != WOULD_BLOCK) {
                *index = i;
                return rc;
            }
            break;
        }
    }
}

int ox_select(ox_select_op *ops, size_t n, size_t *index)
{
    return run_select(ops, n, true, OX_INSTANT_NEVER, index, __func__);
}

int ox_select_deadline(ox_select_op *ops, size_t n, ox_instant deadline, size_t *index)
{
    return run_select(ops, n, true, deadline, index, __func__);
}

int ox_select_timeout(ox_select_op *ops, size_t n, ox_nanos timeout, size_t *index)
{
    if (timeout < 0) {
        check_ops(ops, n, __func__);
        return OX_EINVAL;
    }
    return run_select(ops, n, true, ox_instant_after(timeout), index, __func__);
}

int ox_select_try(ox_select_op *ops, size_t n, size_t *index)
{
    return run_select(ops, n, false, OX_INSTANT_NEVER, index, __func__);
}
