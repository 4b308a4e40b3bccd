/* 12_select_signals.c - two channel idioms of Go and crossbeam, with the
 * shutdown of guide section 12: a select loop that switches a case off once
 * its channel is drained (Go sets the channel to nil; here the op's handle
 * becomes NULL), and signals that carry no data on channels of zero-size
 * messages (Rust's Sender<()>, Go's chan struct{}): "both feeds are
 * drained" and the shutdown signal. */
#include <oxide.h>
#include <stdint.h>
#include <stdio.h>

#define PER_FEED 10

typedef struct feed {
    ox_sender *tx; /* owned by the feeding thread */
    uint64_t first;
} feed;

static void *run_feed(void *arg)
{
    feed *f = arg;
    for (uint64_t i = 0; i < PER_FEED; i++) {
        uint64_t v = f->first + 2 * i;
        if (ox_sender_send(f->tx, &v) != 0)
            break; /* the collector is gone */
    }
    ox_sender_drop(f->tx); /* closes the channel: drained once read */
    return NULL;
}

typedef struct collector {
    ox_receiver *evens, *odds; /* uint64_t messages; owned by the collector */
    ox_receiver *stop;         /* zero-size: the shutdown signal */
    ox_sender *drained;        /* zero-size: "both feeds are drained" */
} collector;

static void *collect(void *arg)
{
    collector *c = arg;
    static const char *const names[] = {"evens", "odds"};
    uint64_t even, odd, sum = 0;
    int count = 0, feeds = 2;
    ox_select_op ops[] = {
        OX_SELECT_RECV(c->evens, &even), OX_SELECT_RECV(c->odds, &odd),
        OX_SELECT_RECV(c->stop, NULL), /* zero-size messages: no buffer */
    };
    for (;;) {
        size_t i;
        int rc = ox_select(ops, 3, &i);
        if (i == 2) { /* the stop signal, or its channel closed */
            printf("collector: stop signal received\n");
            break;
        }
        if (rc == OX_EDISCONNECTED) {
            printf("collector: %s drained, case switched off\n", names[i]);
            ops[i].rx = NULL; /* never chosen again; the indices stay */
            if (--feeds == 0 && ox_sender_send(c->drained, NULL) != 0)
                ox_panic("main is gone");
            continue;
        }
        sum += i == 0 ? even : odd;
        count++;
    }
    printf("collector: %d numbers, sum %llu\n", count, (unsigned long long)sum);
    ox_receiver_drop(c->evens);
    ox_receiver_drop(c->odds);
    ox_receiver_drop(c->stop);
    ox_sender_drop(c->drained);
    return NULL;
}

int main(void)
{
    ox_sender *drained_tx;
    ox_receiver *drained_rx;
    ox_sender *stop_tx;
    collector c;
    feed evens = {.first = 0}, odds = {.first = 1};
    /* Zero-size messages (element size 0): the send and receive buffers
     * are NULL. The stop channel is a rendezvous: its send returns once the
     * collector has taken the signal. */
    if (ox_channel(sizeof(uint64_t), 2, &evens.tx, &c.evens) != 0 ||
        ox_channel(sizeof(uint64_t), 2, &odds.tx, &c.odds) != 0 ||
        ox_channel(0, 0, &stop_tx, &c.stop) != 0 || ox_channel(0, 1, &drained_tx, &drained_rx) != 0)
        ox_panic("cannot create the channels");
    c.drained = drained_tx;

    ox_join_handle fe = ox_thread_spawn(run_feed, &evens);
    ox_join_handle fo = ox_thread_spawn(run_feed, &odds);
    ox_join_handle co = ox_thread_spawn(collect, &c);

    if (ox_receiver_recv(drained_rx, NULL) != 0)
        ox_panic("the collector is gone");
    printf("main: feeds drained, sending the stop signal\n");
    if (ox_sender_send(stop_tx, NULL) != 0)
        ox_panic("the collector is gone");
    if (ox_thread_join(&co, NULL, NULL) != 0)
        ox_panic("the collector panicked"); /* Rust: join().unwrap() */
    printf("main: collector stopped\n");

    if (ox_thread_join(&fe, NULL, NULL) != 0 || ox_thread_join(&fo, NULL, NULL) != 0)
        ox_panic("a feed panicked");
    ox_sender_drop(stop_tx);
    ox_receiver_drop(drained_rx);
    return 0;
}
