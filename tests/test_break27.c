/* Stress from trying to break c7893b7 (a bounded ring finds a
 * power-of-two slot by a shift) and ac733d9 (a yield whose slice another
 * process took makes the thread's waits skip their yields for 5 ms).
 * Tried: every message size from 1 to 130 bytes over rings of 1, 2, 3 and
 * 7 slots, filled and drained for three laps (white box: the shift is
 * log2 of a power-of-two slot, 0 otherwise), and 4 and 64 KiB messages
 * (and 8 bytes less) through a thread; buffered messages of odd and
 * power-of-two sizes freed by the destructor on the last drop; select over
 * rings of odd slot sizes; hand-offs over bounded(1), rendezvous,
 * unbounded and zero-size channels and a barrier by threads pinned to one
 * CPU beside a busy process (their waits skip their yields and park); and
 * a fork from such a thread whose child hands off again. None of these
 * found a bug; they are kept as regression tests of what the changes must
 * not break. */
#include "oxide.h"
#include "helpers.h"
#include "runner.h"
#include "chan/chan_internal.h" /* white box: the slot size and shift */
#include "thread/park.h"        /* white box: ox__wait_yields_skipped */

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The byte at offset i of message number n. */
static unsigned char pattern(size_t n, size_t i)
{
    return (unsigned char)(n * 131 + i * 7 + 1);
}

static void fill(unsigned char *m, size_t size, size_t n)
{
    for (size_t i = 0; i < size; i++)
        m[i] = pattern(n, i);
}

static void check_message(const unsigned char *m, size_t size, size_t n)
{
    for (size_t i = 0; i < size; i++)
        CHECK_EQ(m[i], pattern(n, i));
}

/* ---- every message size over rings of a few slots ---- */

OX_TEST(break27_every_message_size_keeps_its_slot)
{
    static const size_t caps[] = {1, 2, 3, 7};
    unsigned char in[136], out[136];
    for (size_t size = 1; size <= 130; size++) {
        for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
            size_t cap = caps[k];
            ox_sender *tx;
            ox_receiver *rx;
            CHECK_EQ(ox_channel(size, cap, &tx, &rx), 0);
            ox__chan *c = ox__sender_chan(tx, "test");
            CHECK_EQ(c->slot_size % 8, 0);
            CHECK(c->slot_size >= size + 8 && c->slot_size < size + 16);
            if ((c->slot_size & (c->slot_size - 1)) == 0)
                CHECK_EQ((size_t)1 << c->slot_shift, c->slot_size);
            else
                CHECK_EQ(c->slot_shift, 0);
            size_t sent = 0, got = 0;
            for (int lap = 0; lap < 3; lap++) {
                /* Full, so that every slot holds a message at once. */
                for (size_t i = 0; i < cap; i++) {
                    fill(in, size, sent);
                    CHECK_EQ(ox_sender_try_send(tx, in), 0);
                    sent++;
                }
                fill(in, size, sent);
                CHECK_EQ(ox_sender_try_send(tx, in), OX_EFULL);
                /* Half out, half in again: the head and tail are mid-ring. */
                for (size_t i = 0; i < (cap + 1) / 2; i++) {
                    memset(out, 0xEE, sizeof out);
                    CHECK_EQ(ox_receiver_try_recv(rx, out), 0);
                    check_message(out, size, got++);
                    CHECK_EQ(out[size], 0xEE); /* no more than size bytes */
                }
                for (size_t i = 0; i < (cap + 1) / 2; i++) {
                    fill(in, size, sent);
                    CHECK_EQ(ox_sender_try_send(tx, in), 0);
                    sent++;
                }
                for (size_t i = 0; i < cap; i++) {
                    CHECK_EQ(ox_receiver_try_recv(rx, out), 0);
                    check_message(out, size, got++);
                }
                CHECK_EQ(ox_receiver_try_recv(rx, out), OX_EEMPTY);
            }
            CHECK_EQ(got, sent);
            ox_sender_drop(tx);
            ox_receiver_drop(rx);
        }
    }
}

/* Large messages, a power-of-two slot (64 KiB) and one just past it,
 * through a thread that sends two laps of a 3-slot ring. */
struct big {
    ox_sender *tx;
    size_t size;
};

static void *send_big(void *arg)
{
    struct big *b = arg;
    unsigned char *in = malloc(b->size);
    CHECK(in != NULL);
    for (size_t n = 0; n < 6; n++) {
        fill(in, b->size, n);
        CHECK_EQ(ox_sender_send(b->tx, in), 0);
    }
    free(in);
    ox_sender_drop(b->tx);
    return NULL;
}

OX_TEST(break27_large_messages_keep_their_slots)
{
    static const size_t sizes[] = {4088, 4096, 65528, 65536};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        struct big b = {.size = sizes[k]};
        ox_receiver *rx;
        CHECK_EQ(ox_channel(b.size, 3, &b.tx, &rx), 0);
        ox__chan *c = ox__sender_chan(b.tx, "test");
        if (b.size % 4096 == 4088)
            CHECK_EQ((size_t)1 << c->slot_shift, c->slot_size);
        else
            CHECK_EQ(c->slot_shift, 0);
        ox_join_handle h = ox_test_spawn_named("big-sender", send_big, &b);
        unsigned char *out = malloc(b.size);
        CHECK(out != NULL);
        for (size_t n = 0; n < 6; n++) {
            CHECK_EQ(ox_receiver_recv(rx, out), 0);
            check_message(out, b.size, n);
        }
        CHECK_EQ(ox_receiver_recv(rx, out), OX_EDISCONNECTED);
        free(out);
        ox_test_join(&h);
        ox_receiver_drop(rx);
    }
}

/* ---- buffered messages freed by the destructor ---- */

static struct {
    size_t size;
    _Atomic long calls;
    unsigned long seen; /* bit n: message n was destroyed */
} destroyed;

static void destroy_message(void *elem)
{
    const unsigned char *m = elem;
    /* Which message: the first byte names it (pattern(n, 0) = n*131+1). */
    size_t n = 0;
    while (n < 64 && pattern(n, 0) != m[0])
        n++;
    CHECK(n < 64);
    check_message(m, destroyed.size, n);
    CHECK(!(destroyed.seen & (1UL << n)));
    destroyed.seen |= 1UL << n;
    atomic_fetch_add(&destroyed.calls, 1);
}

OX_TEST(break27_buffered_messages_of_any_slot_size_are_destroyed_once)
{
    static const size_t sizes[] = {1, 8, 12, 24, 40, 56, 100, 120, 248, 1000};
    unsigned char in[1000], out[1000];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (size_t skip = 0; skip < 5; skip++) {
            size_t size = sizes[k];
            ox_channel_options o = {.elem_size = size, .capacity = 5, .destroy = destroy_message};
            ox_sender *tx;
            ox_receiver *rx;
            CHECK_EQ(ox_channel_with(&o, &tx, &rx), 0);
            destroyed.size = size;
            destroyed.seen = 0;
            atomic_store(&destroyed.calls, 0);
            /* skip messages through first, so the buffered ones wrap. */
            size_t n = 0;
            for (size_t i = 0; i < skip; i++) {
                fill(in, size, n++);
                CHECK_EQ(ox_sender_try_send(tx, in), 0);
                CHECK_EQ(ox_receiver_try_recv(rx, out), 0);
            }
            size_t first = n;
            for (size_t i = 0; i < 4; i++) {
                fill(in, size, n++);
                CHECK_EQ(ox_sender_try_send(tx, in), 0);
            }
            ox_sender_drop(tx); /* disconnected with four buffered */
            ox_receiver_drop(rx);
            CHECK_EQ(atomic_load(&destroyed.calls), 4);
            CHECK_EQ(destroyed.seen, 0xFUL << first);
        }
    }
}

/* ---- select over rings of odd slot sizes ---- */

enum { SELECT_MESSAGES = 3000 };

struct odd_pair {
    ox_sender *tx[2];
    size_t size[2];
};

static void *send_odd_pair(void *arg)
{
    struct odd_pair *p = arg;
    unsigned char in[100];
    for (size_t n = 0; n < SELECT_MESSAGES; n++) {
        int which = (int)(n % 3 == 0);
        fill(in, p->size[which], n);
        CHECK_EQ(ox_sender_send(p->tx[which], in), 0);
    }
    ox_sender_drop(p->tx[0]);
    ox_sender_drop(p->tx[1]);
    return NULL;
}

OX_TEST(break27_select_over_odd_slot_rings_keeps_every_message)
{
    struct odd_pair p = {.size = {12, 100}};
    ox_receiver *rx[2];
    CHECK_EQ(ox_channel(12, 1, &p.tx[0], &rx[0]), 0);
    CHECK_EQ(ox_channel(100, 3, &p.tx[1], &rx[1]), 0);
    ox_join_handle h = ox_test_spawn_named("odd-sender", send_odd_pair, &p);
    unsigned char a[12], b[100];
    size_t next[2] = {1, 0}; /* the next message number on each channel */
    int live = 2;
    while (live > 0) {
        ox_select_op ops[2] = {OX_SELECT_RECV(rx[0], a), OX_SELECT_RECV(rx[1], b)};
        ox_select_op never = OX_SELECT_NEVER;
        if (next[0] == SIZE_MAX)
            ops[0] = never;
        if (next[1] == SIZE_MAX)
            ops[1] = never;
        size_t index = 9;
        int rc = ox_select(ops, 2, &index);
        CHECK(index < 2);
        if (rc == OX_EDISCONNECTED) {
            next[index] = SIZE_MAX;
            live--;
            continue;
        }
        CHECK_EQ(rc, 0);
        check_message(index == 0 ? a : b, p.size[index], next[index]);
        /* Channel 1 carries the multiples of 3, channel 0 the rest. */
        next[index] += index == 1 ? 3 : (next[index] % 3 == 1 ? 1 : 2);
    }
    ox_test_join(&h);
    ox_receiver_drop(rx[0]);
    ox_receiver_drop(rx[1]);
}

/* ---- hand-offs by threads whose waits skip their yields ---- */

enum { ROUNDS = 3000 };

struct barrier_partner {
    int cpu;
    ox_barrier *barrier;
};

/* ROUNDS round trips over two channels of this size and capacity. */
static int ping_pong(int cpu, size_t size, size_t cap)
{
    ox_sender *q_tx, *a_tx;
    ox_receiver *q_rx, *a_rx;
    CHECK_EQ(ox_channel(size, cap, &q_tx, &q_rx), 0);
    CHECK_EQ(ox_channel(size, cap, &a_tx, &a_rx), 0);
    ox_test_answerer p = {.cpu = cpu, .tx = a_tx, .rx = q_rx};
    ox_join_handle h = ox_test_spawn_named("answer", ox_test_answer, &p);
    int skipped = 0;
    for (uint64_t i = 0; i < ROUNDS; i++) {
        uint64_t m[4] = {i * 2, i, i, i};
        CHECK_EQ(ox_sender_send(q_tx, size ? m : NULL), 0);
        CHECK_EQ(ox_receiver_recv(a_rx, size ? m : NULL), 0);
        if (size)
            CHECK_EQ(m[0], i * 2 + 1);
        if (size > 8)
            CHECK_EQ(m[2], i);
        skipped |= ox__wait_yields_skipped();
    }
    ox_sender_drop(q_tx);
    uint64_t m_end[4];
    CHECK_EQ(ox_receiver_recv(a_rx, size ? m_end : NULL), OX_EDISCONNECTED);
    ox_receiver_drop(a_rx);
    ox_test_join(&h);
    return skipped | atomic_load(&p.yields_skipped);
}

static void *barrier_partner(void *arg)
{
    struct barrier_partner *p = arg;
    ox_test_pin(0, p->cpu);
    for (int i = 0; i < ROUNDS; i++)
        (void)ox_barrier_wait(p->barrier);
    return NULL;
}

static int hand_offs(int cpu)
{
    int skipped = 0;
    skipped += ping_pong(cpu, 8, 1);
    skipped += ping_pong(cpu, 24, 1);
    skipped += ping_pong(cpu, 8, 0);
    skipped += ping_pong(cpu, 8, OX_UNBOUNDED);
    skipped += ping_pong(cpu, 0, 1);
    ox_barrier b;
    CHECK_EQ(ox_barrier_init(&b, 2), 0);
    struct barrier_partner p = {.cpu = cpu, .barrier = &b};
    ox_join_handle h = ox_test_spawn_named("barrier", barrier_partner, &p);
    for (int i = 0; i < ROUNDS; i++)
        (void)ox_barrier_wait(&b);
    ox_test_join(&h);
    return skipped;
}

/* A child forked by a thread whose window may be open (its thread-locals
 * are the parent thread's) hands off too. Not under TSan: its runtime
 * refuses threads in the child of a multi-threaded process. */
static void fork_and_hand_off(int cpu)
{
#ifndef OX_TEST_BUILT_WITH_TSAN
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        (void)ping_pong(cpu, 8, 1);
        (void)ping_pong(cpu, 8, 0);
        _exit(0);
    }
    int status = 0;
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
#else
    (void)cpu;
#endif
}

static void *hand_off_beside_a_busy_process(void *arg)
{
    (void)arg;
    int cpu = ox_test_first_allowed_cpu();
    ox_test_pin(0, cpu);
    /* The busy process inherits the CPU, and ends itself after a minute
     * should this test die first. */
    pid_t busy = fork();
    CHECK(busy >= 0);
    if (busy == 0) {
        alarm(60);
        for (;;)
            continue;
    }
    int skipped = hand_offs(cpu);
    fork_and_hand_off(cpu);
    kill(busy, SIGKILL);
    CHECK_EQ(waitpid(busy, NULL, 0), busy);
    fprintf(stderr, "%d of 5 ping-pongs saw a wait skip its yields\n", skipped);
    return NULL;
}

OX_TEST_OPTS(break27_hand_offs_beside_a_busy_process_all_arrive, .timeout_s = 60)
{
    if (ox_test_forks_hang_here())
        return;
    ox_test_run_named("beside-a-process", hand_off_beside_a_busy_process, NULL);
}
