/* replay.c - the op-script interpreter that replays: the script's "threads"
 * are tasks on a runtime with ONE worker thread, so the same input runs the
 * same interleaving every time and a crashing input reproduces.
 *
 * Why it is deterministic. Every task of the run (a root, 2-4 scripts, a
 * watchdog) runs on the one worker of a runtime made for this run. The
 * worker picks the next task from its LIFO slot, its queue and the
 * injector; only these tasks fill them (the root is the only task pushed
 * from outside, before anything else runs), in an order fixed by the
 * script. No call has a timeout (no timers), nothing goes to the blocking
 * pool, and select's random permutation is seeded from the input
 * (ox__select_seed). So the choice of the next task at every blocking point
 * and every yield is a function of the input. The interleaving is steered
 * by the input: explicit yield ops, and a scheduler stream seeded from the
 * header that adds yields between ops and picks which task to abort when
 * all are blocked. Not promised: the same interleaving from another build
 * or version of oxide (a change in the scheduler's policy changes which
 * interleaving an input means), or anything about the OS threads of a
 * multi-worker runtime (see fuzz_sync.c for real threads).
 *
 * Input layout: byte 0 the script count (2-4), byte 1 the bounded
 * channel's capacity (1-4), bytes 2-3 the scheduler seed; then two bytes
 * per operation (opcode, argument), dealt to the scripts in turn, at most
 * MAX_OPS each.
 *
 * The world: three channels of messages with a destructor (0: bounded,
 * 1: unbounded, 2: rendezvous), each script holding up to two senders and
 * two receivers of each; one mutex with a condvar and a token count; one
 * Once; shared Arc and Weak slots. Every message owns a heap token, so a
 * message lost or destroyed twice shows as a leak or a double free
 * (AddressSanitizer) as well as in the state table.
 *
 * Invariants (each aborts with "fuzz_replay: invariant failed"):
 *   messages  each is received, destroyed by the channel, or given back by
 *             a failed send, exactly once; per sender and receiver, FIFO;
 *             a bounded channel never holds more than its capacity; a
 *             select never pairs with itself; try_recv is EEMPTY only when
 *             nothing is buffered, try_send EFULL only when full;
 *             EDISCONNECTED only when the other side is all gone
 *   deadlock  when every script is blocked (the watchdog sees the worker
 *             with nothing else to run), each blocked call must have a
 *             reason: a receiver only on an empty channel with senders, a
 *             sender only on a full one with receivers, no rendezvous
 *             sender and receiver blocked on the same channel, no condvar
 *             waiter while a notified token is pending, nobody on the
 *             mutex or the Once. A wait without a reason is a lost wakeup.
 *             Then the watchdog aborts one blocked script (seeded choice),
 *             whose call returns OX_ECANCELED, and the run goes on.
 *   mutex     one holder at a time (also while it yields inside);
 *             OX_EPOISONED exactly when a panic left it poisoned
 *   Once      the initialiser runs alone, never after completion; a call
 *             returns only once complete, panics only if poisoned
 *   Arc       the counts match the slots holding references; the value is
 *             destroyed exactly when the last strong reference goes;
 *             upgrade succeeds exactly while a strong reference lives
 *   panics    a script that panics at its task boundary is joined as
 *             OX_EPANICKED, its handles dropped by its cleanup
 */
#include "replay.h"

#include "oxide.h"

#include "task/task_internal.h" /* the worker's queues: is anything runnable? */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* src/chan/chan_internal.h, whose names clash with task_internal.h's. */
void ox__select_seed(uint64_t seed);

enum {
    MAX_TASKS = 4,
    MAX_OPS = 64,
    NCHAN = 3,
    SLOTS = 2,
    MAX_MSGS = MAX_TASKS * MAX_OPS * NCHAN,
    ARC_SLOTS = 4,
    MAX_ARCS = MAX_TASKS * MAX_OPS,
};
enum { CH_BOUNDED, CH_UNBOUNDED, CH_ZERO };

#define REPLAY_CHECK(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_replay: invariant failed at %s:%d: %s\n", __FILE__, __LINE__,    \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- the world ---- */

enum msg_state { M_UNUSED, M_SENDING, M_SENT, M_RECEIVED, M_DESTROYED, M_RETURNED };
enum wait_kind { W_NONE, W_SEND, W_RECV, W_SELECT, W_CV, W_CV_GEN, W_LOCK, W_ONCE };

#define TOKEN_MAGIC 0x746f6b6eu

typedef struct token {
    uint32_t id;
    uint32_t magic;
} token;

typedef struct msg {
    uint32_t id;
    uint16_t sender;
    uint16_t seq; /* per sender and channel */
    token *tok;
} msg;

typedef struct script {
    int id;
    const uint8_t *ops; /* pairs: opcode, argument */
    size_t n_ops;
    ox_task_handle handle;
    ox_sender *tx[NCHAN][SLOTS];
    ox_receiver *rx[NCHAN][SLOTS];
    uint16_t seq[NCHAN];
    int last_seen[NCHAN][MAX_TASKS];
    enum wait_kind wait;
    int wait_chan;
    unsigned wait_mask; /* select: bit 2c a send on c, bit 2c+1 a receive */
    long cv_gen0;       /* a gen waiter: the generation it waits to move on from */
    bool done, aborted, expect_panic;
} script;

typedef struct arc_obj {
    uint32_t id;
    uint32_t magic;
} arc_obj;

typedef struct arc_model {
    int strong, weak;
    bool dropped;
} arc_model;

static struct world {
    int n;
    uint64_t rng;
    uint64_t trace;
    enum ox_replay_fault fault;
    bool verbose;
    ox_replay_result res;
    script s[MAX_TASKS];
    int done_count;
    /* channels */
    size_t cap;
    ox_sender *tx0[NCHAN];
    ox_receiver *rx0[NCHAN];
    int tx_live[NCHAN], rx_live[NCHAN];
    long buffered[NCHAN]; /* M_SENT messages of the buffered channels */
    uint32_t next_msg;
    uint8_t state[MAX_MSGS], chan_of[MAX_MSGS];
    long tokens_live;
    bool lost_one;
    /* mutex and condvar */
    ox_mutex m;
    ox_condvar cv, cv_gen_cv;
    int holder; /* script id, -1: free */
    bool poisoned;
    long cv_tokens;
    long cv_gen; /* bumped by each notify_all of cv_gen_cv */
    /* Once */
    ox_once once;
    bool once_complete, once_poisoned, once_running;
    long once_epoch; /* times it was poisoned */
    /* Arc */
    void *strong[ARC_SLOTS];
    ox_weak *weak[ARC_SLOTS];
    int weak_id[ARC_SLOTS];
    arc_model arcs[MAX_ARCS];
    uint32_t next_arc;
} W;

static uint64_t next_rand(void)
{
    uint64_t x = W.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    W.rng = x;
    return x * 0x2545f4914f6cdd1du;
}

/* FNV-1a over what happened: who, which op, the outcome, a value. */
static void trace(int who, int op, int code, long value)
{
    const long parts[4] = {who, op, code, value};
    for (int i = 0; i < 4; i++) {
        uint64_t v = (uint64_t)parts[i];
        for (int b = 0; b < 8; b++) {
            W.trace ^= (v >> (8 * b)) & 0xff;
            W.trace *= 0x100000001b3u;
        }
    }
    if (W.verbose)
        fprintf(stderr, "fuzz_replay: script %d op %d code %d -> %ld\n", who, op, code, value);
}

/* ---- messages ---- */

static msg make_msg(script *t, int c)
{
    uint32_t id = W.next_msg++;
    REPLAY_CHECK(id < MAX_MSGS);
    token *tok = malloc(sizeof *tok);
    REPLAY_CHECK(tok != NULL);
    *tok = (token){.id = id, .magic = TOKEN_MAGIC};
    W.tokens_live++;
    W.state[id] = M_SENDING;
    W.chan_of[id] = (uint8_t)c;
    W.res.messages++;
    return (msg){.id = id, .sender = (uint16_t)t->id, .seq = t->seq[c]++, .tok = tok};
}

static void free_token(const msg *m)
{
    REPLAY_CHECK(m->tok != NULL && m->tok->magic == TOKEN_MAGIC && m->tok->id == m->id);
    m->tok->magic = 0;
    free(m->tok);
    W.tokens_live--;
}

static void msg_destroy(void *elem)
{
    const msg *m = elem;
    REPLAY_CHECK(m->id < W.next_msg);
    uint8_t st = W.state[m->id];
    REPLAY_CHECK(st == M_SENT || st == M_SENDING);
    if (st == M_SENT && W.chan_of[m->id] != CH_ZERO)
        W.buffered[W.chan_of[m->id]]--;
    W.state[m->id] = M_DESTROYED;
    free_token(m);
}

/* The sender's side of a send that returned rc. */
static void send_done(script *t, msg *m, int rc)
{
    int c = W.chan_of[m->id];
    uint8_t st = W.state[m->id];
    if (rc == 0) {
        /* A rendezvous receiver or the last receiver's drop may have
         * taken it before the sender ran again. */
        REPLAY_CHECK(st == M_SENDING || st == M_RECEIVED || st == M_DESTROYED);
        if (st == M_SENDING) {
            W.state[m->id] = M_SENT;
            if (c != CH_ZERO) {
                W.buffered[c]++;
                REPLAY_CHECK(c != CH_BOUNDED || W.buffered[c] <= (long)W.cap);
            }
        }
        return;
    }
    REPLAY_CHECK(st == M_SENDING); /* a failed send moved nothing */
    if (rc == OX_EDISCONNECTED)
        REPLAY_CHECK(W.rx_live[c] == 0);
    if (rc == OX_ECANCELED)
        REPLAY_CHECK(t->aborted);
    W.state[m->id] = M_RETURNED;
    free_token(m);
}

/* The receiver's side of a receive on c that got *m. */
static void recv_done(script *t, int c, const msg *m)
{
    REPLAY_CHECK(m->id < W.next_msg && W.chan_of[m->id] == c);
    REPLAY_CHECK(m->sender < W.n);
    uint8_t st = W.state[m->id];
    REPLAY_CHECK(st == M_SENDING || st == M_SENT);          /* not twice, not a given-back one */
    REPLAY_CHECK((int)m->seq > t->last_seen[c][m->sender]); /* per-sender FIFO */
    t->last_seen[c][m->sender] = m->seq;
    if (W.fault == OX_REPLAY_LOSE_MESSAGE && !W.lost_one) {
        W.lost_one = true; /* the planted bug: forget this message */
        free_token(m);
        return;
    }
    if (st == M_SENT && c != CH_ZERO)
        W.buffered[c]--;
    W.state[m->id] = M_RECEIVED;
    free_token(m);
}

static void recv_failed(script *t, int c, int rc)
{
    if (rc == OX_EDISCONNECTED)
        REPLAY_CHECK(W.tx_live[c] == 0 && (c == CH_ZERO || W.buffered[c] == 0));
    else
        REPLAY_CHECK(rc == OX_ECANCELED && t->aborted);
}

static ox_sender *tx_of(script *t, int c)
{
    return t->tx[c][0] ? t->tx[c][0] : t->tx[c][1];
}

static ox_receiver *rx_of(script *t, int c)
{
    return t->rx[c][0] ? t->rx[c][0] : t->rx[c][1];
}

/* ---- the operations: each returns true if the script must stop ---- */

enum {
    OP_SEND,
    OP_RECV,
    OP_TRY_SEND,
    OP_TRY_RECV,
    OP_SELECT,
    OP_SELECT_TRY,
    OP_DROP_TX,
    OP_DROP_RX,
    OP_CLONE_TX,
    OP_CLONE_RX,
    OP_LOCK,
    OP_TRY_LOCK,
    OP_CV_WAIT,
    OP_CV_NOTIFY,
    OP_ONCE,
    OP_ARC,
    OP_PANIC,
    OP_YIELD,
    N_OPS
};

static void yield_n(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ox_task_yield();
}

static bool op_send(script *t, int c)
{
    ox_sender *tx = tx_of(t, c);
    if (tx == NULL)
        return false;
    msg m = make_msg(t, c);
    t->wait = W_SEND;
    t->wait_chan = c;
    int rc = ox_sender_send(tx, &m);
    t->wait = W_NONE;
    REPLAY_CHECK(rc == 0 || rc == OX_EDISCONNECTED || rc == OX_ECANCELED);
    trace(t->id, OP_SEND, rc, m.id);
    send_done(t, &m, rc);
    return rc == OX_ECANCELED;
}

static bool op_recv(script *t, int c)
{
    ox_receiver *rx = rx_of(t, c);
    if (rx == NULL)
        return false;
    msg m;
    t->wait = W_RECV;
    t->wait_chan = c;
    int rc = ox_receiver_recv(rx, &m);
    t->wait = W_NONE;
    trace(t->id, OP_RECV, rc, rc == 0 ? (long)m.id : -1);
    if (rc == 0)
        recv_done(t, c, &m);
    else
        recv_failed(t, c, rc);
    return rc == OX_ECANCELED;
}

static void op_try_send(script *t, int c)
{
    ox_sender *tx = tx_of(t, c);
    if (tx == NULL)
        return;
    long before = W.buffered[c];
    msg m = make_msg(t, c);
    int rc = ox_sender_try_send(tx, &m);
    REPLAY_CHECK(rc == 0 || rc == OX_EFULL || rc == OX_EDISCONNECTED);
    trace(t->id, OP_TRY_SEND, rc, m.id);
    if (c == CH_BOUNDED && W.rx_live[c] > 0)
        REPLAY_CHECK((rc == OX_EFULL) == (before == (long)W.cap));
    if (c == CH_UNBOUNDED)
        REPLAY_CHECK(rc != OX_EFULL);
    send_done(t, &m, rc);
}

static void op_try_recv(script *t, int c)
{
    ox_receiver *rx = rx_of(t, c);
    if (rx == NULL)
        return;
    msg m;
    int rc = ox_receiver_try_recv(rx, &m);
    REPLAY_CHECK(rc == 0 || rc == OX_EEMPTY || rc == OX_EDISCONNECTED);
    trace(t->id, OP_TRY_RECV, rc, rc == 0 ? (long)m.id : -1);
    if (rc == OX_EEMPTY)
        REPLAY_CHECK(c == CH_ZERO || W.buffered[c] == 0);
    if (rc == 0)
        recv_done(t, c, &m);
    else if (rc == OX_EDISCONNECTED)
        recv_failed(t, c, rc);
}

/* Would a live op of a select (or a plain call) on c be ready? Only for the
 * buffered channels: a rendezvous is judged at deadlocks only. */
static void check_not_ready(bool send, int c)
{
    if (send) {
        REPLAY_CHECK(W.rx_live[c] > 0); /* else: ready, disconnected */
        REPLAY_CHECK(c != CH_UNBOUNDED);
        REPLAY_CHECK(c != CH_BOUNDED || W.buffered[c] == (long)W.cap);
    } else {
        REPLAY_CHECK(W.tx_live[c] > 0);
        REPLAY_CHECK(c == CH_ZERO || W.buffered[c] == 0);
    }
}

static bool op_select(script *t, unsigned arg, bool blocking)
{
    ox_select_op ops[2 * NCHAN + 1];
    msg out[2 * NCHAN + 1];
    msg in[2 * NCHAN + 1];
    int chan[2 * NCHAN + 1];
    bool is_send[2 * NCHAN + 1];
    size_t k = 0;
    unsigned mask = arg & 0x3f;
    if (mask == 0)
        mask = 2u << (2 * ((arg >> 6) % NCHAN)); /* a receive on one channel */
    for (int c = 0; c < NCHAN; c++) {
        if (mask & (1u << (2 * c))) {
            ox_sender *tx = tx_of(t, c);
            chan[k] = c;
            is_send[k] = true;
            if (tx != NULL) {
                out[k] = make_msg(t, c);
                ops[k] = OX_SELECT_SEND(tx, &out[k]);
            } else {
                ops[k] = OX_SELECT_NEVER;
            }
            k++;
        }
        if (mask & (2u << (2 * c))) {
            chan[k] = c;
            is_send[k] = false;
            ops[k] = OX_SELECT_RECV(rx_of(t, c), &in[k]);
            k++;
        }
    }
    /* The same receiver twice (allowed): the op asked for is the first. */
    if ((arg & 0x80) && (arg & 0x3f) != 0)
        for (size_t j = 0; j < k; j++)
            if (!is_send[j]) {
                chan[k] = chan[j];
                is_send[k] = false;
                ops[k] = OX_SELECT_RECV(ops[j].rx, &in[k]);
                k++;
                break;
            }
    unsigned live = 0;
    for (size_t j = 0; j < k; j++)
        if (ops[j].tx != NULL || ops[j].rx != NULL)
            live |= (is_send[j] ? 1u : 2u) << (2 * chan[j]);
    size_t idx = SIZE_MAX;
    int rc;
    if (blocking) {
        t->wait = W_SELECT;
        t->wait_mask = live;
        rc = ox_select(ops, k, &idx);
        t->wait = W_NONE;
        REPLAY_CHECK(rc == 0 || rc == OX_EDISCONNECTED || rc == OX_ECANCELED);
    } else {
        rc = ox_select_try(ops, k, &idx);
        REPLAY_CHECK(rc == 0 || rc == OX_EDISCONNECTED || rc == OX_EBUSY);
    }
    bool done = rc == 0 || rc == OX_EDISCONNECTED;
    if (done)
        REPLAY_CHECK(idx < k && (ops[idx].tx != NULL || ops[idx].rx != NULL));
    trace(t->id, blocking ? OP_SELECT : OP_SELECT_TRY, rc,
          done ? (long)idx * 100000 + (rc == 0 && !is_send[idx] ? (long)in[idx].id : 0) : -1);
    if (rc == OX_EBUSY)
        for (size_t j = 0; j < k; j++)
            if (ops[j].tx != NULL || ops[j].rx != NULL)
                check_not_ready(is_send[j], chan[j]);
    if (done && !is_send[idx]) {
        if (rc == 0) {
            /* Never paired with one of its own sends (rendezvous). */
            for (size_t j = 0; j < k; j++)
                REPLAY_CHECK(!is_send[j] || ops[j].tx == NULL || out[j].id != in[idx].id);
            recv_done(t, chan[idx], &in[idx]);
            if (blocking)
                W.res.selects++;
        } else {
            recv_failed(t, chan[idx], rc);
        }
    }
    for (size_t j = 0; j < k; j++)
        if (is_send[j] && ops[j].tx != NULL) {
            bool this_one = done && j == idx;
            if (this_one && rc == 0 && blocking)
                W.res.selects++;
            send_done(t, &out[j], this_one ? rc : OX_EBUSY);
        }
    return rc == OX_ECANCELED;
}

static void op_drop_tx(script *t, int c, int slot)
{
    if (t->tx[c][slot] == NULL)
        return;
    ox_sender_drop(t->tx[c][slot]);
    t->tx[c][slot] = NULL;
    W.tx_live[c]--;
    trace(t->id, OP_DROP_TX, c, W.tx_live[c]);
}

static void op_drop_rx(script *t, int c, int slot)
{
    if (t->rx[c][slot] == NULL)
        return;
    ox_receiver_drop(t->rx[c][slot]);
    t->rx[c][slot] = NULL;
    W.rx_live[c]--;
    trace(t->id, OP_DROP_RX, c, W.rx_live[c]);
    if (W.rx_live[c] == 0) /* the last receiver destroyed what was buffered */
        REPLAY_CHECK(W.buffered[c] == 0);
}

static void op_clone(script *t, int c, bool tx)
{
    int from = (tx ? t->tx[c][0] != NULL : t->rx[c][0] != NULL) ? 0 : 1, to = 1 - from;
    if (tx && t->tx[c][from] != NULL && t->tx[c][to] == NULL) {
        t->tx[c][to] = ox_sender_clone(t->tx[c][from]);
        W.tx_live[c]++;
    } else if (!tx && t->rx[c][from] != NULL && t->rx[c][to] == NULL) {
        t->rx[c][to] = ox_receiver_clone(t->rx[c][from]);
        W.rx_live[c]++;
    } else {
        return;
    }
    trace(t->id, tx ? OP_CLONE_TX : OP_CLONE_RX, c, 0);
}

/* Takes the mutex (possibly blocking) and checks exclusion and poison. */
static void lock(script *t)
{
    t->wait = W_LOCK;
    int rc = ox_mutex_lock(&W.m);
    t->wait = W_NONE;
    REPLAY_CHECK(rc == (W.poisoned ? OX_EPOISONED : 0));
    REPLAY_CHECK(W.holder == -1);
    W.holder = t->id;
}

static void unlock(script *t)
{
    REPLAY_CHECK(W.holder == t->id);
    W.holder = -1;
    ox_mutex_unlock(&W.m);
}

static void op_lock(script *t, unsigned arg)
{
    lock(t);
    if (arg & 1)
        yield_n(1 + (arg >> 1) % 3); /* others queue up on the mutex meanwhile */
    trace(t->id, OP_LOCK, 0, W.poisoned);
    unlock(t);
}

static void op_try_lock(script *t)
{
    int rc = ox_mutex_try_lock(&W.m);
    trace(t->id, OP_TRY_LOCK, rc, W.holder);
    if (rc == OX_EBUSY) {
        REPLAY_CHECK(W.holder != -1);
        return;
    }
    REPLAY_CHECK(rc == (W.poisoned ? OX_EPOISONED : 0));
    REPLAY_CHECK(W.holder == -1);
    W.holder = t->id;
    unlock(t);
}

/* Two condvars on the one mutex, so that no notify can wake a waiter for
 * the other predicate: cv waiters take a token each (notify_one per token,
 * or notify_all); gen waiters wait for the generation to move (notify_all,
 * which must wake every one of them). */
static bool op_cv_wait(script *t, unsigned arg)
{
    bool gen = arg & 1;
    lock(t);
    long gen0 = W.cv_gen;
    t->cv_gen0 = gen0;
    while (gen ? W.cv_gen == gen0 : W.cv_tokens == 0) {
        W.holder = -1;
        t->wait = gen ? W_CV_GEN : W_CV;
        int rc = ox_condvar_wait(gen ? &W.cv_gen_cv : &W.cv, &W.m);
        t->wait = W_NONE;
        REPLAY_CHECK(W.holder == -1);
        W.holder = t->id;
        trace(t->id, OP_CV_WAIT, rc, gen ? W.cv_gen : W.cv_tokens);
        if (rc == OX_ECANCELED) {
            REPLAY_CHECK(t->aborted);
            /* We may have swallowed a notify meant for a token: pass it on,
             * as a waiter that gives up must. */
            if (!gen && W.cv_tokens > 0)
                ox_condvar_notify_one(&W.cv);
            unlock(t);
            return true;
        }
        REPLAY_CHECK(rc == (W.poisoned ? OX_EPOISONED : 0));
        W.res.cv_waits++;
    }
    if (!gen)
        W.cv_tokens--;
    unlock(t);
    return false;
}

static void op_cv_notify(script *t, unsigned arg)
{
    lock(t);
    unsigned how = arg % 3;
    if (how == 2)
        W.cv_gen++;
    else
        W.cv_tokens++;
    trace(t->id, OP_CV_NOTIFY, (int)how, how == 2 ? W.cv_gen : W.cv_tokens);
    if (W.fault != OX_REPLAY_SKIP_NOTIFY) {
        if (how == 0)
            ox_condvar_notify_one(&W.cv);
        else if (how == 1)
            ox_condvar_notify_all(&W.cv);
        else
            ox_condvar_notify_all(&W.cv_gen_cv);
    }
    unlock(t);
}

/* ---- Once ---- */

typedef struct once_arg {
    unsigned yields;
    bool panic, force;
} once_arg;

static void once_body(const once_arg *a)
{
    REPLAY_CHECK(!W.once_complete && !W.once_running);
    W.once_running = true;
    yield_n(a->yields); /* others arrive and wait meanwhile */
    REPLAY_CHECK(W.once_running && !W.once_complete);
    W.once_running = false;
    if (a->panic) {
        W.once_poisoned = true;
        W.once_epoch++;
        W.res.once_panics++;
        W.res.panics++;
        ox_panic("fuzz_replay: a Once initialiser panics");
    }
    W.once_complete = true;
    W.once_poisoned = false;
}

static void once_init(void *arg)
{
    REPLAY_CHECK(!W.once_poisoned);
    once_body(arg);
}

static void once_init_force(void *arg, const ox_once_state *state)
{
    REPLAY_CHECK(ox_once_state_is_poisoned(state) == W.once_poisoned);
    once_body(arg);
}

static void *call_once(void *arg)
{
    const once_arg *a = arg;
    if (a->force)
        ox_once_call_force(&W.once, once_init_force, arg);
    else
        ox_once_call(&W.once, once_init, arg);
    return NULL;
}

static void op_once(script *t, unsigned arg)
{
    once_arg a = {.yields = (arg >> 2) & 3, .panic = arg & 1, .force = arg & 2};
    bool was_poisoned = W.once_poisoned;
    long epoch = W.once_epoch;
    t->wait = W_ONCE;
    int rc = ox_catch_unwind(call_once, &a, NULL, NULL);
    t->wait = W_NONE;
    trace(t->id, OP_ONCE, rc, W.once_complete);
    if (rc == 0)
        REPLAY_CHECK(W.once_complete);
    else
        REPLAY_CHECK(rc == OX_EPANICKED && ((was_poisoned && !a.force) || W.once_epoch != epoch));
    REPLAY_CHECK(ox_once_is_completed(&W.once) == W.once_complete);
}

/* ---- Arc ---- */

#define ARC_MAGIC 0x61726321u

static void arc_drop_fn(void *payload)
{
    arc_obj *o = payload;
    REPLAY_CHECK(o->magic == ARC_MAGIC && o->id < W.next_arc);
    arc_model *a = &W.arcs[o->id];
    REPLAY_CHECK(a->strong == 0 && !a->dropped);
    a->dropped = true;
    o->magic = 0;
    W.res.arc_drops++;
}

static arc_model *model_of(void *payload)
{
    arc_obj *o = payload;
    REPLAY_CHECK(o->magic == ARC_MAGIC && o->id < W.next_arc);
    return &W.arcs[o->id];
}

static void arc_strong_drop(int i)
{
    arc_model *a = model_of(W.strong[i]);
    a->strong--;
    if (W.fault == OX_REPLAY_DOUBLE_ARC)
        a->strong--; /* the planted bug: the model counts the drop twice */
    ox_arc_drop(W.strong[i]);
    W.strong[i] = NULL;
    REPLAY_CHECK(a->dropped == (a->strong == 0));
}

static void op_arc(script *t, unsigned arg)
{
    unsigned sub = arg & 7, i = (arg >> 3) & 3, j = (arg >> 5) & 3;
    long v = -1;
    switch (sub) {
    case 0: { /* new, into strong slot i */
        if (W.strong[i] != NULL || W.next_arc >= MAX_ARCS)
            return;
        arc_obj *o = ox_arc_new(sizeof *o, arc_drop_fn);
        *o = (arc_obj){.id = W.next_arc++, .magic = ARC_MAGIC};
        W.arcs[o->id] = (arc_model){.strong = 1};
        W.strong[i] = o;
        v = o->id;
        break;
    }
    case 1: /* clone strong i into strong j */
        if (W.strong[i] == NULL || W.strong[j] != NULL)
            return;
        W.strong[j] = ox_arc_clone(W.strong[i]);
        REPLAY_CHECK(W.strong[j] == W.strong[i]);
        v = ++model_of(W.strong[j])->strong;
        break;
    case 2: /* drop strong i */
        if (W.strong[i] == NULL)
            return;
        arc_strong_drop((int)i);
        break;
    case 3: /* downgrade strong i into weak j */
        if (W.strong[i] == NULL || W.weak[j] != NULL)
            return;
        W.weak[j] = ox_arc_downgrade(W.strong[i]);
        W.weak_id[j] = (int)((arc_obj *)W.strong[i])->id;
        v = ++model_of(W.strong[i])->weak;
        break;
    case 4: { /* upgrade weak j into strong i */
        if (W.weak[j] == NULL || W.strong[i] != NULL)
            return;
        arc_model *a = &W.arcs[W.weak_id[j]];
        W.strong[i] = ox_weak_upgrade(W.weak[j]);
        REPLAY_CHECK((W.strong[i] != NULL) == (a->strong > 0));
        if (W.strong[i] != NULL) {
            REPLAY_CHECK(model_of(W.strong[i]) == a);
            a->strong++;
        }
        v = W.strong[i] != NULL;
        break;
    }
    case 5: /* drop weak j */
        if (W.weak[j] == NULL)
            return;
        W.arcs[W.weak_id[j]].weak--;
        ox_weak_drop(W.weak[j]);
        W.weak[j] = NULL;
        break;
    case 6: /* the counts, through strong i and weak j */
        if (W.strong[i] != NULL) {
            arc_model *m = model_of(W.strong[i]);
            REPLAY_CHECK(ox_arc_strong_count(W.strong[i]) == (size_t)m->strong);
            REPLAY_CHECK(ox_arc_weak_count(W.strong[i]) == (size_t)m->weak);
        }
        if (W.weak[j] != NULL)
            REPLAY_CHECK(ox_weak_strong_count(W.weak[j]) == (size_t)W.arcs[W.weak_id[j]].strong);
        break;
    default: { /* get_mut through strong i: only when it is the one reference */
        if (W.strong[i] == NULL)
            return;
        arc_model *u = model_of(W.strong[i]);
        void *p = ox_arc_get_mut(W.strong[i]);
        REPLAY_CHECK((p != NULL) == (u->strong == 1 && u->weak == 0));
        v = p != NULL;
        break;
    }
    }
    trace(t->id, OP_ARC, (int)sub, v);
}

/* ---- panics ---- */

static void *panic_holding_lock(void *arg)
{
    script *t = arg;
    lock(t);
    W.poisoned = true; /* the unwinding below poisons and releases it */
    W.holder = -1;
    W.res.panics++;
    ox_panic("fuzz_replay: script %d panics holding the mutex", t->id);
}

static void op_panic(script *t, unsigned arg)
{
    switch (arg % 8) {
    case 0: /* uncaught: ends the script at its task boundary */
        trace(t->id, OP_PANIC, 0, 0);
        t->expect_panic = true;
        panic_holding_lock(t);
        break;
    case 1:
    case 2:
    case 3: { /* caught inside the script, which goes on */
        int rc = ox_catch_unwind(panic_holding_lock, t, NULL, NULL);
        REPLAY_CHECK(rc == OX_EPANICKED);
        REPLAY_CHECK(ox_mutex_is_poisoned(&W.m));
        trace(t->id, OP_PANIC, 1, rc);
        break;
    }
    default:
        ox_mutex_clear_poison(&W.m);
        W.poisoned = false;
        trace(t->id, OP_PANIC, 2, 0);
        break;
    }
}

/* ---- scripts ---- */

static bool run_op(script *t, unsigned code, unsigned arg)
{
    int c = (int)(arg % NCHAN);
    switch (code % N_OPS) {
    case OP_SEND:
        return op_send(t, c);
    case OP_RECV:
        return op_recv(t, c);
    case OP_TRY_SEND:
        op_try_send(t, c);
        break;
    case OP_TRY_RECV:
        op_try_recv(t, c);
        break;
    case OP_SELECT:
        return op_select(t, arg, true);
    case OP_SELECT_TRY:
        return op_select(t, arg, false);
    case OP_DROP_TX:
        op_drop_tx(t, c, (int)(arg >> 7));
        break;
    case OP_DROP_RX:
        op_drop_rx(t, c, (int)(arg >> 7));
        break;
    case OP_CLONE_TX:
        op_clone(t, c, true);
        break;
    case OP_CLONE_RX:
        op_clone(t, c, false);
        break;
    case OP_LOCK:
        op_lock(t, arg);
        break;
    case OP_TRY_LOCK:
        op_try_lock(t);
        break;
    case OP_CV_WAIT:
        return op_cv_wait(t, arg);
    case OP_CV_NOTIFY:
        op_cv_notify(t, arg);
        break;
    case OP_ONCE:
        op_once(t, arg);
        break;
    case OP_ARC:
        op_arc(t, arg);
        break;
    case OP_PANIC:
        op_panic(t, arg);
        break;
    default:
        yield_n(1 + arg % 4);
        trace(t->id, OP_YIELD, 0, 0);
        break;
    }
    return false;
}

/* Runs when the script returns, and when it panics past its task boundary:
 * gives its handles up, which may disconnect the others. */
static void script_end(void *arg)
{
    script *t = arg;
    for (int c = 0; c < NCHAN; c++)
        for (int k = 0; k < SLOTS; k++) {
            op_drop_tx(t, c, k);
            op_drop_rx(t, c, k);
        }
    t->done = true;
    W.done_count++;
    trace(t->id, -1, t->expect_panic, t->aborted);
}

static void *script_main(void *arg)
{
    script *t = arg;
    ox_cleanup_push(script_end, t);
    for (size_t i = 0; i < t->n_ops; i++) {
        if ((next_rand() & 3) == 0)
            ox_task_yield(); /* the scheduler stream's own interleaving */
        W.res.ops++;
        if (run_op(t, t->ops[2 * i], t->ops[2 * i + 1]))
            break; /* aborted: it stops */
    }
    ox_cleanup_pop(true);
    return NULL;
}

/* ---- the watchdog: every script blocked ---- */

static bool other_blocked_on(const script *self, int c, bool send)
{
    unsigned bit = (send ? 1u : 2u) << (2 * c);
    for (int i = 0; i < W.n; i++) {
        const script *o = &W.s[i];
        if (o == self || o->done)
            continue;
        if ((o->wait == (send ? W_SEND : W_RECV) && o->wait_chan == c) ||
            (o->wait == W_SELECT && (o->wait_mask & bit)))
            return true;
    }
    return false;
}

/* A blocked call on c must have a reason to wait (see the top). */
static void check_blocked_on(const script *t, int c, bool send)
{
    check_not_ready(send, c);
    if (c == CH_ZERO)
        REPLAY_CHECK(!other_blocked_on(t, c, !send)); /* a partner waits: lost wakeup */
}

static bool runnable_tasks_queued(void)
{
    ox__worker *wk = ox__worker_current();
    return wk->lifo != NULL || !ox__queue_is_empty(wk) ||
           atomic_load_explicit(&wk->rt->injector.len, memory_order_relaxed) != 0;
}

static void all_blocked(void)
{
    script *blocked[MAX_TASKS];
    int nb = 0;
    W.res.deadlocks++;
    for (int i = 0; i < W.n; i++) {
        script *t = &W.s[i];
        if (t->done)
            continue;
        switch (t->wait) {
        case W_SEND:
        case W_RECV:
            check_blocked_on(t, t->wait_chan, t->wait == W_SEND);
            break;
        case W_SELECT:
            for (int c = 0; c < NCHAN; c++)
                for (int d = 0; d < 2; d++)
                    if (t->wait_mask & (1u << (2 * c + d)))
                        check_blocked_on(t, c, d == 0);
            break;
        case W_CV:
            REPLAY_CHECK(W.cv_tokens == 0); /* else a notify was lost */
            break;
        case W_CV_GEN:
            REPLAY_CHECK(W.cv_gen == t->cv_gen0); /* else notify_all missed it */
            break;
        default: /* the mutex's holder and the Once's runner never block */
            fprintf(stderr, "fuzz_replay: script %d blocked in wait kind %d\n", i, t->wait);
            REPLAY_CHECK(t->wait != W_LOCK && t->wait != W_ONCE && t->wait != W_NONE);
        }
        blocked[nb++] = t;
    }
    REPLAY_CHECK(nb > 0);
    script *victim = blocked[next_rand() % (uint64_t)nb];
    trace(victim->id, -2, victim->wait, nb);
    victim->aborted = true;
    ox_task_abort(&victim->handle);
}

static void *watchdog_main(void *unused)
{
    (void)unused;
    while (W.done_count < W.n) {
        ox_task_yield();
        /* We run again with nothing queued before us: every unfinished
         * script (and the root, in join) is suspended. */
        if (!runnable_tasks_queued() && W.done_count < W.n)
            all_blocked();
    }
    return NULL;
}

/* ---- the run ---- */

static void *root_main(void *unused)
{
    (void)unused;
    ox__select_seed(W.rng | 1);
    for (int c = 0; c < NCHAN; c++) {
        ox_channel_options o = {.elem_size = sizeof(msg),
                                .capacity = c == CH_BOUNDED     ? W.cap
                                            : c == CH_UNBOUNDED ? OX_UNBOUNDED
                                                                : 0,
                                .destroy = msg_destroy};
        REPLAY_CHECK(ox_channel_with(&o, &W.tx0[c], &W.rx0[c]) == 0);
        for (int i = 0; i < W.n; i++) {
            W.s[i].tx[c][0] = ox_sender_clone(W.tx0[c]);
            W.s[i].rx[c][0] = ox_receiver_clone(W.rx0[c]);
        }
        ox_sender_drop(W.tx0[c]);
        ox_receiver_drop(W.rx0[c]);
        W.tx_live[c] = W.rx_live[c] = W.n;
    }
    for (int i = 0; i < W.n; i++)
        W.s[i].handle = ox_task_spawn(script_main, &W.s[i]);
    ox_task_handle wd = ox_task_spawn(watchdog_main, NULL);
    for (int i = 0; i < W.n; i++) {
        int rc = ox_task_join(&W.s[i].handle, NULL, NULL);
        REPLAY_CHECK(rc == (W.s[i].expect_panic ? OX_EPANICKED : 0));
        REPLAY_CHECK(W.s[i].done);
    }
    REPLAY_CHECK(ox_task_join(&wd, NULL, NULL) == 0);
    return NULL;
}

static void check_end(void)
{
    for (uint32_t id = 0; id < W.next_msg; id++) {
        uint8_t st = W.state[id];
        if (st != M_RECEIVED && st != M_DESTROYED && st != M_RETURNED)
            fprintf(stderr, "fuzz_replay: message %u ends in state %d\n", id, st);
        REPLAY_CHECK(st == M_RECEIVED || st == M_DESTROYED || st == M_RETURNED);
    }
    REPLAY_CHECK(W.tokens_live == 0);
    for (int c = 0; c < NCHAN; c++)
        REPLAY_CHECK(W.tx_live[c] == 0 && W.rx_live[c] == 0 && W.buffered[c] == 0);
    REPLAY_CHECK(W.holder == -1 && ox_mutex_is_poisoned(&W.m) == W.poisoned);
    REPLAY_CHECK(ox_mutex_try_lock(&W.m) == (W.poisoned ? OX_EPOISONED : 0));
    ox_mutex_unlock(&W.m);
    REPLAY_CHECK(!W.once_running && ox_once_is_completed(&W.once) == W.once_complete);
    for (int i = 0; i < ARC_SLOTS; i++) {
        if (W.strong[i] != NULL)
            arc_strong_drop(i);
        if (W.weak[i] != NULL) {
            W.arcs[W.weak_id[i]].weak--;
            ox_weak_drop(W.weak[i]);
            W.weak[i] = NULL;
        }
    }
    for (uint32_t id = 0; id < W.next_arc; id++)
        REPLAY_CHECK(W.arcs[id].dropped && W.arcs[id].strong == 0 && W.arcs[id].weak == 0);
}

static void silent_hook(const ox_panic_payload *payload)
{
    (void)payload; /* the panics here are on purpose */
}

void ox_replay_run(const uint8_t *data, size_t size, enum ox_replay_fault fault,
                   ox_replay_result *out)
{
    memset(&W, 0, sizeof W);
    memset(out, 0, sizeof *out);
    if (size < 4)
        return;
    W.fault = fault;
    W.verbose = getenv("OX_REPLAY_VERBOSE") != NULL;
    W.n = 2 + data[0] % 3;
    W.cap = 1 + data[1] % 4;
    /* splitmix64 of the seed bytes: never 0, and nearby seeds differ. */
    uint64_t z = (uint64_t)data[2] | (uint64_t)data[3] << 8 | (uint64_t)W.n << 16;
    z += 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    W.rng = (z ^ (z >> 31)) | 1;
    W.trace = 0xcbf29ce484222325u;
    W.holder = -1;
    static uint8_t ops[MAX_TASKS][2 * MAX_OPS];
    for (int i = 0; i < W.n; i++) {
        W.s[i].id = i;
        W.s[i].ops = ops[i];
        for (int c = 0; c < NCHAN; c++)
            for (int k = 0; k < MAX_TASKS; k++)
                W.s[i].last_seen[c][k] = -1;
    }
    for (size_t p = 0; 4 + 2 * p + 1 < size; p++) {
        script *t = &W.s[p % (size_t)W.n];
        if (t->n_ops == MAX_OPS)
            break;
        ops[t->id][2 * t->n_ops] = data[4 + 2 * p];
        ops[t->id][2 * t->n_ops + 1] = data[4 + 2 * p + 1];
        t->n_ops++;
    }

    ox_panic_hook old_hook = ox_panic_set_hook(silent_hook);
    ox_runtime_builder b = OX_RUNTIME_BUILDER_INIT;
    b.workers = 1; /* the whole point: one thread runs every task */
    b.name = "replay";
    ox_runtime *rt;
    REPLAY_CHECK(ox_runtime_new(&b, &rt) == 0);
    ox_task_builder tb = OX_TASK_BUILDER_INIT;
    tb.runtime = rt;
    ox_task_handle root;
    REPLAY_CHECK(ox_task_builder_spawn(&tb, root_main, NULL, &root) == 0);
    REPLAY_CHECK(ox_task_join(&root, NULL, NULL) == 0);
    ox_runtime_shutdown(rt);
    ox_panic_set_hook(old_hook);

    check_end();
    trace(-3, (int)W.next_msg, (int)W.next_arc, W.res.deadlocks);
    W.res.trace = W.trace;
    *out = W.res;
}
