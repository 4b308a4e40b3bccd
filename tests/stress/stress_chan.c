/* stress_chan - channels of every flavor (unbounded, rendezvous, bounded 1,
 * bounded N) with several senders and receivers, mixing blocking, try and
 * timed operations and select over two channels.
 *
 * Invariants: no message lost or duplicated (a seen-bitmap and a count),
 * each receiver sees each sender's messages in increasing order (per-sender
 * FIFO), receivers get OX_EDISCONNECTED only after every sender is gone and
 * everything was drained; when the receivers go first, every sender's send
 * ends with OX_EDISCONNECTED instead of hanging. */
#include "stress.h"

#include <stdatomic.h>

enum { MAX_SENDERS = 4, MAX_RECEIVERS = 4 };

typedef struct round_ctx {
    ox_sender *tx[2]; /* two channels: receivers may select over both */
    ox_receiver *rx[2];
    long per_sender;
    _Atomic uint8_t *seen;
    _Atomic int senders_done;
    int senders;
    bool early_drop; /* receivers stop early: senders must see disconnection */
} round_ctx;

typedef struct actor {
    round_ctx *c;
    int id;
    ox_sender *tx;      /* owned clone */
    ox_receiver *rx[2]; /* owned clones */
    long received, sent;
    stress_rng rng;
} actor;

static int send_one(actor *a, const uint64_t *msg)
{
    int rc;
    switch (stress_below(&a->rng, 4)) {
    case 0:
        while ((rc = ox_sender_try_send(a->tx, msg)) == OX_EFULL)
            ox_thread_yield();
        return rc;
    case 1:
        while ((rc = ox_sender_send_timeout(a->tx, msg, OX_MICROS(stress_below(&a->rng, 100)))) ==
               OX_ETIMEDOUT)
            ;
        return rc;
    default:
        return ox_sender_send(a->tx, msg);
    }
}

static void *send_all(void *arg)
{
    actor *a = arg;
    for (long seq = 0; seq < a->c->per_sender; seq++) {
        uint64_t msg = (uint64_t)a->id << 32 | (uint64_t)seq;
        int rc = send_one(a, &msg);
        if (rc == OX_EDISCONNECTED) {
            STRESS_CHECK(a->c->early_drop, "send: disconnected while receivers live");
            break;
        }
        STRESS_CHECK(rc == 0, "send: %s", ox_strerror(rc));
        a->sent++;
    }
    /* Counted before the drop: a receiver that sees the disconnection
     * must see the count (the channel's disconnect orders the two). */
    atomic_fetch_add_explicit(&a->c->senders_done, 1, memory_order_relaxed);
    ox_sender_drop(a->tx);
    return NULL;
}

/* Receives one message from either channel; returns 0, or OX_EDISCONNECTED
 * once both are drained and disconnected. */
static int recv_one(actor *a, uint64_t *msg, bool *open)
{
    int rc;
    for (;;) {
        int which = open[0] && open[1] ? (int)stress_below(&a->rng, 2) : open[0] ? 0 : 1;
        if (!open[0] && !open[1])
            return OX_EDISCONNECTED;
        switch (stress_below(&a->rng, 5)) {
        case 0:
            rc = ox_receiver_try_recv(a->rx[which], msg);
            if (rc == OX_EEMPTY) {
                ox_thread_yield();
                continue;
            }
            break;
        case 1:
            rc = ox_receiver_recv_timeout(a->rx[which], msg, OX_MICROS(stress_below(&a->rng, 100)));
            if (rc == OX_ETIMEDOUT)
                continue;
            break;
        case 2:
            if (open[0] && open[1]) {
                ox_select_op ops[2] = {OX_SELECT_RECV(a->rx[0], msg),
                                       OX_SELECT_RECV(a->rx[1], msg)};
                size_t index;
                rc = ox_select(ops, 2, &index);
                which = (int)index;
                break;
            }
            /* fall through */
        default:
            rc = ox_receiver_recv(a->rx[which], msg);
            break;
        }
        if (rc == OX_EDISCONNECTED) {
            open[which] = false;
            continue;
        }
        return rc;
    }
}

static void *recv_all(void *arg)
{
    actor *a = arg;
    round_ctx *c = a->c;
    long last[MAX_SENDERS];
    for (int i = 0; i < MAX_SENDERS; i++)
        last[i] = -1;
    bool open[2] = {true, true};
    long stop_after = c->early_drop ? (long)stress_below(&a->rng, (uint32_t)c->per_sender) : -1;
    for (;;) {
        if (a->received == stop_after)
            break;
        uint64_t msg;
        int rc = recv_one(a, &msg, open);
        if (rc == OX_EDISCONNECTED) {
            int done = atomic_load_explicit(&c->senders_done, memory_order_relaxed);
            STRESS_CHECK(done == c->senders, "disconnected with %d of %d senders live",
                         c->senders - done, c->senders);
            break;
        }
        STRESS_CHECK(rc == 0, "recv: %s", ox_strerror(rc));
        int sender = (int)(msg >> 32);
        long seq = (long)(msg & 0xffffffffu);
        STRESS_CHECK(sender >= 0 && sender < MAX_SENDERS && seq < c->per_sender,
                     "garbage message %llx", (unsigned long long)msg);
        STRESS_CHECK(seq > last[sender], "sender %d: %ld after %ld (FIFO broken)", sender, seq,
                     last[sender]);
        last[sender] = seq;
        uint8_t was = atomic_exchange_explicit(&c->seen[sender * c->per_sender + seq], 1,
                                               memory_order_relaxed);
        STRESS_CHECK(was == 0, "message %d/%ld received twice", sender, seq);
        a->received++;
    }
    ox_receiver_drop(a->rx[0]);
    ox_receiver_drop(a->rx[1]);
    return NULL;
}

static size_t pick_capacity(stress_rng *rng)
{
    switch (stress_below(rng, 4)) {
    case 0:
        return OX_UNBOUNDED;
    case 1:
        return 0;
    case 2:
        return 1;
    default:
        return 2 + stress_below(rng, 64);
    }
}

int main(int argc, char **argv)
{
    stress_init(argc, argv, "stress_chan");
    stress_rng rng = stress_rng_for(0);
    ox_instant start = ox_instant_now();
    long rounds = 0;
    do {
        int ns = 1 + (int)stress_below(&rng, MAX_SENDERS);
        int nr = 1 + (int)stress_below(&rng, MAX_RECEIVERS);
        round_ctx c = {.senders = ns,
                       .per_sender = 50 + stress_below(&rng, 2000),
                       .early_drop = stress_below(&rng, 6) == 0};
        for (int k = 0; k < 2; k++)
            STRESS_CHECK(ox_channel(sizeof(uint64_t), pick_capacity(&rng), &c.tx[k], &c.rx[k]) == 0,
                         "ox_channel");
        c.seen = calloc((size_t)(MAX_SENDERS * c.per_sender), 1);
        STRESS_CHECK(c.seen != NULL, "out of memory");
        actor a[MAX_SENDERS + MAX_RECEIVERS];
        ox_join_handle h[MAX_SENDERS + MAX_RECEIVERS];
        for (int i = 0; i < ns + nr; i++) {
            a[i] = (actor){.c = &c,
                           .id = i < ns ? i : i - ns,
                           .rng = stress_rng_for((uint64_t)rounds * 16 + (uint64_t)i + 1)};
            if (i < ns) {
                a[i].tx = ox_sender_clone(c.tx[i % 2]);
            } else {
                a[i].rx[0] = ox_receiver_clone(c.rx[0]);
                a[i].rx[1] = ox_receiver_clone(c.rx[1]);
            }
        }
        /* The originals go before the threads start, so disconnection
         * depends on the actors alone. */
        for (int k = 0; k < 2; k++) {
            ox_sender_drop(c.tx[k]);
            ox_receiver_drop(c.rx[k]);
        }
        for (int i = 0; i < ns + nr; i++)
            h[i] = stress_spawn(i < ns ? send_all : recv_all, &a[i]);
        long sent = 0, received = 0;
        for (int i = 0; i < ns + nr; i++) {
            stress_join(&h[i]);
            sent += a[i].sent;
            received += a[i].received;
        }
        if (!c.early_drop) {
            STRESS_CHECK(sent == ns * c.per_sender, "sent %ld of %ld", sent, ns * c.per_sender);
            STRESS_CHECK(received == sent, "received %ld of %ld sent", received, sent);
            for (long i = 0; i < ns * c.per_sender; i++)
                STRESS_CHECK(c.seen[i] == 1, "message %ld/%ld lost", i / c.per_sender,
                             i % c.per_sender);
        } else {
            STRESS_CHECK(received <= sent, "received %ld > sent %ld", received, sent);
            /* Receivers that stop early leave messages unread, but each
             * channel is FIFO and every message taken out is counted: what
             * was received of one sender is a prefix of what it sent, so a
             * gap is a lost message. */
            for (int i = 0; i < ns; i++) {
                long got = 0;
                while (got < c.per_sender && c.seen[i * c.per_sender + got])
                    got++;
                STRESS_CHECK(got <= a[i].sent, "sender %d: %ld received of %ld sent", i, got,
                             a[i].sent);
                for (long k = got; k < c.per_sender; k++)
                    STRESS_CHECK(c.seen[i * c.per_sender + k] == 0,
                                 "message %d/%ld lost: %ld was received after it", i, got, k);
            }
        }
        free(c.seen);
        rounds++;
    } while (stress_time_left(start));
    printf("ok stress_chan seed=%" PRIu64 " rounds=%ld\n", stress_seed, rounds);
    return 0;
}
