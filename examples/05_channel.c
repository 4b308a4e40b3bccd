/* 05_channel.c - the guide's section 5 mpsc program: two producers with
 * sleeps, a consumer iterating until every sender is gone.
 *
 * Messages are copied by value: here each is a `const char *` pointing to a
 * string literal, so the channel's element size is sizeof(const char *). */
#include <oxide.h>
#include <stdio.h>

typedef struct producer {
    ox_sender *tx; /* owned by the producer: dropped when it is done */
    const char *const *vals;
    ox_nanos pause;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (const char *const *v = p->vals; *v; v++) {
        if (ox_sender_send(p->tx, v) != 0)
            break; /* the receiver is gone */
        ox_thread_sleep(p->pause);
    }
    ox_sender_drop(p->tx); /* Rust drops tx when the closure ends */
    return NULL;
}

int main(void)
{
    ox_sender *tx;
    ox_receiver *rx;
    if (ox_channel(sizeof(const char *), OX_UNBOUNDED, &tx, &rx) != 0)
        return 1;
    ox_sender *tx2 = ox_sender_clone(tx); /* a second producer */

    static const char *const vals1[] = {"hi", "from", "the", "thread 1", NULL};
    static const char *const vals2[] = {"more", "messages", "for", "you (thread 2)", NULL};
    producer p1 = {tx, vals1, OX_MILLIS(200)};
    producer p2 = {tx2, vals2, OX_MILLIS(250)};
    ox_join_handle h1 = ox_thread_spawn(produce, &p1);
    ox_join_handle h2 = ox_thread_spawn(produce, &p2);

    /* recv blocks until a message arrives; the loop ends when both
     * senders are dropped and everything sent was received. */
    const char *received;
    OX_CHANNEL_FOR_EACH(rx, &received)
    {
        printf("Got: %s\n", received);
    }
    printf("Channel closed.\n");

    ox_receiver_drop(rx);
    if (ox_thread_join(&h1, NULL, NULL) != 0)
        ox_panic("a thread panicked"); /* Rust: join().unwrap() */
    if (ox_thread_join(&h2, NULL, NULL) != 0)
        ox_panic("a thread panicked"); /* Rust: join().unwrap() */
    return 0;
}
